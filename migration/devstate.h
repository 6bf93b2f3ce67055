/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devstate.h - the device state xenram saves for `xl save` / `xl migrate`
 * (xen-save-devices-state) and loads with -incoming fd:N.
 *
 * libxc moves the guest's RAM; what the device model must carry itself is
 * how that RAM is laid out in its own terms: the RAM blocks (main RAM,
 * VRAM, ROMs, hot-plugged DIMMs) with their ram_addr offsets and lengths,
 * where each is mapped in guest-physical space, which ones were hot-plugged
 * (and through which xenstore slot), and the dirty-log state.  The byte
 * format is specified in docs/devstate.md.
 *
 * Reading is all-or-nothing: a truncated, corrupted (CRC), inconsistent or
 * wrong-version stream is refused with a message that says what was wrong,
 * and the caller receives nothing to apply.
 */
#ifndef XENRAM_MIGRATION_DEVSTATE_H
#define XENRAM_MIGRATION_DEVSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVSTATE_VERSION        1
#define DEVSTATE_IDSTR_MAX      255     /* bytes, without the NUL */
#define DEVSTATE_MAX_BLOCKS     1024
#define DEVSTATE_MAX_RANGES     64      /* guest-physical mappings per block */
#define DEVSTATE_NO_SLOT        UINT32_MAX
/*
 * The block flags a stream may carry: RAM_RESIZEABLE, RAM_HOTPLUGGED,
 * RAM_OWN_HOST, RAM_READONLY, RAM_XEN_POPULATE of memory/ramblock.h
 * (migration/layout.c checks the two agree).  Any other bit is refused.
 */
#define DEVSTATE_BLOCK_FLAGS    0x1fu

/* Where a piece of a block appears in guest-physical space. */
typedef struct DevStateRange {
    uint64_t gpa;               /* guest-physical start, page-aligned */
    uint64_t size;              /* bytes, page-aligned, non-zero */
    uint64_t offset;            /* into the block, page-aligned */
} DevStateRange;

typedef struct DevStateBlock {
    char idstr[DEVSTATE_IDSTR_MAX + 1];
    uint64_t offset;            /* ram_addr */
    uint64_t used_length;
    uint64_t max_length;
    uint32_t flags;             /* RAM_* of memory/ramblock.h */
    uint32_t hotplug_slot;      /* xenstore slot, or DEVSTATE_NO_SLOT */
    uint32_t nranges;
    DevStateRange *ranges;
} DevStateBlock;

typedef struct DevState {
    bool global_dirty_log;      /* xen-set-global-dirty-log was on */
    bool vram_tracking;         /* track_dirty_vram active on a range */
    uint64_t vram_first_pfn;
    uint64_t vram_npages;
    uint32_t nblocks;
    DevStateBlock *blocks;
} DevState;

/*
 * Whether the @len bytes at @name are a RAM block name a peer may send:
 * 1 to DEVSTATE_IDSTR_MAX bytes, each printable ASCII from ' ' to '~'
 * (docs/devstate.md).  Apply it wherever a block name comes from outside.
 */
bool devstate_name_valid(const char *name, size_t len);

/* Free what devstate_read() allocated (or a DevState built by hand). */
void devstate_free(DevState *ds);

/*
 * Check @ds for consistency: names valid (devstate_name_valid()) and
 * unique, only known flags, sizes page-aligned and non-zero, used <= max,
 * ranges inside their block, no two blocks overlapping in ram_addr space,
 * no two ranges overlapping in guest-physical space, one block per slot,
 * counts within the limits above.  O(n log n) in blocks and ranges.  0,
 * -ENOMEM, or -EINVAL with the reason in @err.
 */
int devstate_validate(const DevState *ds, char *err, size_t errlen);

/*
 * Serialise @ds (validated first) into a malloc'ed buffer.  0 and
 * *@buf and *@len, or -EINVAL (with @err) / -ENOMEM.
 */
int devstate_encode(const DevState *ds, uint8_t **buf, size_t *len,
                    char *err, size_t errlen);

/*
 * Parse @len bytes at @buf into *@ds.  0, or -EINVAL (malformed,
 * inconsistent, bad CRC), -EPROTO (unknown version), -ENODATA
 * (truncated), -ENOMEM; @err says what exactly.  *@ds is untouched on
 * failure.
 */
int devstate_decode(const uint8_t *buf, size_t len, DevState *ds,
                    char *err, size_t errlen);

/* Encode and write everything to @fd (handles short writes).  0 or -errno. */
int devstate_write(int fd, const DevState *ds, char *err, size_t errlen);

/*
 * Read @fd to its end (at most 16 MiB) and decode.  0 or -errno as for
 * devstate_decode(), or the read error.
 */
int devstate_read(int fd, DevState *ds, char *err, size_t errlen);

#endif /* XENRAM_MIGRATION_DEVSTATE_H */
