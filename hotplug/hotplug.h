/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotplug.h - RAM hotplug and unplug, requested through xenstore.
 *
 * The toolstack asks for memory in numbered *slots* under
 *
 *   /local/domain/0/device-model/<domid>/memory/<slot>/
 *
 * (size, start or "auto", action = add | remove); xenram validates the
 * request, acts, and answers in the same directory (state = online |
 * removed | error, error = a sentence).  The protocol is specified in
 * docs/hotplug.md; this header is the reference of the C interface the
 * device model wires in.
 *
 * Adding a slot: validate (alignment, the hotplug window, overlap with
 * anything mapped or reserved, the domain's maximum memory, the configured
 * cap) -> populate the frames at gfn = gpa >> 12 (unless incoming) -> map
 * them through the mapcache -> add a RAM_HOTPLUGGED RAMBlock (the dirty
 * bitmaps grow under RCU, the new range is marked dirty for every client,
 * ram_block_added notifiers run) -> add its RAM region to the tree at gpa
 * (listeners see region_add) -> answer.  Removing: refused while a DMA
 * mapping holds any of it -> the region leaves the tree -> the block is
 * removed (ram_block_removed notifiers, freed after a grace period) -> the
 * mapcache drops the range -> the frames are released -> answer.  Any
 * failure undoes what was done: a refused request changes nothing.
 *
 * Hot-plugged blocks are populated here, explicitly, at their
 * guest-physical address: ram_block_add() chooses their ram_addr, which is
 * not their gpa, so they never carry RAM_XEN_POPULATE (the Xen listener
 * would populate gfn = ram_addr >> 12).
 *
 * Concurrency contract:
 *  - Requests (hotplug_add/remove/restore/restore_slots/restore_undo/
 *    process/handle_watch) are serialised by the Hotplug's own mutex and
 *    may come from any RCU-registered thread that is not inside a
 *    read-side critical section (remove waits for grace periods).  They take, in this order,
 *    that mutex, the RAMList mutex and the region context's lock: never
 *    call them from a RAMBlock notifier or a MemoryListener callback.
 *  - Readers keep running through a request and never wait for it:
 *    lookups in the FlatView, the RAMList and the mapcache, and dirty bit
 *    updates, are lock-free (memory/, dirty/).
 *  - hotplug_block_slot() is lock-free (RCU) and may be called with the
 *    RAMList mutex held, e.g. while capturing the device state.
 *
 * Errors: functions return 0 or -errno; those that talk to a person also
 * write a sentence into @err (@errlen bytes; 256 are always enough) that
 * says what was wrong and what to do, which the xenstore protocol copies
 * into memory/<slot>/error.
 */
#ifndef XENRAM_HOTPLUG_HOTPLUG_H
#define XENRAM_HOTPLUG_HOTPLUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/mapcache.h"
#include "memory/ramblock.h"
#include "memory/region.h"
#include "xen/xen.h"

/* Slots 0 .. HOTPLUG_MAX_SLOTS - 1 (QEMU's -m slots= allows 256 too). */
#define HOTPLUG_MAX_SLOTS    256
/* hotplug_block_slot() of a block that is not a hot-plugged slot. */
#define HOTPLUG_NO_SLOT      UINT32_MAX
/* hotplug_add() @gpa: let xenram place the memory in the window. */
#define HOTPLUG_AUTO         UINT64_MAX
/* Default alignment of automatic placement: Linux's x86-64 memory block. */
#define HOTPLUG_DEFAULT_ALIGN ((uint64_t)128 << 20)

typedef struct Hotplug Hotplug;

/* A guest-physical range [start, end) no slot may overlap. */
typedef struct HotplugRange {
    uint64_t start, end;
    const char *name;           /* for messages, e.g. "PCI hole" */
} HotplugRange;

typedef struct HotplugConfig {
    XenHandles *xh;             /* the domain's handles (populate, info) */
    RAMList *ram;               /* the guest's RAMList */
    MemoryContext *ctx;         /* the region tree's context (of @ram) */
    AddressSpace *as;           /* guest-physical space: overlap checks */
    MemoryRegion *root;         /* @as's root: the slots' regions go here */
    /*
     * The mapcache of guest-physical space: new frames are mapped through
     * it, and a range with DMA mappings is not removed.  May be NULL (no
     * mapping, no DMA check: for tests of the rest).
     */
    MapCache *mc;
    uint32_t domid;
    /* The only domain whose requests are obeyed (the toolstack's): 0. */
    uint32_t toolstack_domid;
    /* The hotplug window [window_start, window_end): page-aligned. */
    uint64_t window_start, window_end;
    /*
     * Cap on all slots together, in bytes (maxmem - RAM); 0: none, unless
     * @max_set, which makes 0 a cap too (a maxmem no larger than RAM).
     */
    uint64_t max_bytes;
    bool max_set;
    /* Alignment of automatic placement (power of two); 0: the default. */
    uint64_t align;
    /* Number of slots (0 .. nr_slots - 1); 0: HOTPLUG_MAX_SLOTS. */
    uint32_t nr_slots;
    /* Ranges no slot may overlap besides what the region tree maps. */
    const HotplugRange *reserved;
    unsigned int nr_reserved;
    /* Incoming migration: frames exist already; nothing is populated. */
    bool incoming;
    /*
     * The domain's maximum (pages), read before the handles were
     * restricted (Xen then answers no domctl); 0: ask Xen when needed.
     */
    uint64_t xen_max_pages;
    /*
     * The device model's xenstore directory (libxl's
     * /local/domain/<dm_domid>/device-model/<domid>); NULL: the one of a
     * dom0 device model.  Requests live in its memory/ subdirectory.
     */
    const char *xs_base;
    /* No xenstore at all (-xen-domid-restrict, tests): the C API only. */
    bool no_xenstore;
    /* Called with one line per request handled or failed; may be NULL. */
    void (*log)(void *opaque, const char *msg);
    void *log_opaque;
    /* Called with each xenstore request as read, before it is handled (a
     * debug trace, same @log_opaque); may be NULL. */
    void (*debug)(void *opaque, const char *msg);
} HotplugConfig;

/*
 * Create the hotplug service of a guest.  Unless cfg->no_xenstore, open
 * a xenstore connection of its own, create memory/ with permissions that
 * let only the toolstack's domain in (owner toolstack_domid, nobody else
 * may read or write), drop stale answers left there (slot directories
 * without a pending action) and watch it: pending requests are handled on
 * the first hotplug_handle_watch().  Call it on an RCU-registered thread
 * before the process drops its privileges (xenstore is opened here).
 * Returns 0 and *@out, or -EINVAL (a NULL field, an empty or unaligned
 * window, an alignment that is not a power of two, too many slots),
 * -ENOMEM, or the xenstore error; @err says what.
 */
int hotplug_new(const HotplugConfig *cfg, Hotplug **out, char *err,
                size_t errlen);

/*
 * Stop watching, close xenstore and take every plugged slot out of the
 * device model (regions, blocks), leaving the guest's frames and the
 * xenstore keys alone: the domain is going away or migrated.  No other
 * thread may use @hp; not inside a read-side critical section.
 */
void hotplug_free(Hotplug *hp);

/*
 * The descriptor the device model's main loop polls (EPOLLIN): readable
 * when xenstore has watch events for hotplug_handle_watch().  -ENOTCONN
 * without xenstore.
 */
int hotplug_watch_fd(Hotplug *hp);

/*
 * Handle every pending watch event: each new memory/<slot>/action is read,
 * checked (who wrote it, what it says), carried out and answered.  Never
 * blocks on xenstore beyond the requests' own round trips.
 */
void hotplug_handle_watch(Hotplug *hp);

/*
 * Handle the pending request of memory/<@slot_name> now, if there is one
 * (an action key): what hotplug_handle_watch() does per event.  Returns 0
 * when there was nothing to do or the request succeeded, else the
 * request's -errno (the answer is in xenstore either way); -ENOTCONN
 * without xenstore.
 */
int hotplug_process(Hotplug *hp, const char *slot_name);

/*
 * Plug @size bytes into @slot at guest-physical @gpa (HOTPLUG_AUTO: the
 * lowest free address of the window aligned to cfg->align).  Returns 0
 * (the gpa chosen in *@gpa_out, which may be NULL), or, with @err set and
 * nothing changed:
 *   -EBUSY   requests are blocked (hotplug_set_blocked());
 *   -EINVAL  size zero or not page-aligned, gpa not page-aligned, slot
 *            beyond the configured slots;
 *   -EEXIST  the slot is already online;
 *   -ERANGE  outside the hotplug window (also: size bigger than it);
 *   -EADDRINUSE  overlaps RAM, MMIO, a reserved range or another slot;
 *   -ENOSPC  beyond the cap or the domain's maximum memory, or no free
 *            range for an automatic placement;
 *   -errno   of Xen (populate, mapping) or of the RAMList (-ENOMEM, ...).
 */
int hotplug_add(Hotplug *hp, uint32_t slot, uint64_t gpa, uint64_t size,
                uint64_t *gpa_out, char *err, size_t errlen);

/*
 * Unplug @slot.  Returns 0, or with @err set: -EBUSY (blocked, or a DMA
 * mapping of the mapcache holds part of the slot: nothing changed, retry
 * when the device is done), -EINVAL (no such slot), -ENOENT (the slot is
 * empty), -EIO (the memory left the device model but Xen refused to
 * release its frames: the slot is empty, the frames stay allocated to the
 * domain).
 */
int hotplug_remove(Hotplug *hp, uint32_t slot, char *err, size_t errlen);

/* One slot of a restore: what the source's device state says of it. */
typedef struct HotplugRestoreSlot {
    uint32_t slot;
    const char *idstr;          /* must be "xen.hotplug.<slot>" */
    uint64_t gpa, size;
} HotplugRestoreSlot;

/*
 * Incoming migration: recreate the @n slots of @slots as the source had
 * them, from the device state (DevStateBlock.hotplug_slot, its one
 * range).  The state came from a peer, so each slot must satisfy what a
 * hot-plug request must: a slot number below cfg->nr_slots, not plugged
 * and named once; page-aligned, non-empty, inside the hotplug window; no
 * overlap with anything mapped (RAM, VRAM, ROMs, MMIO), a reserved range,
 * a plugged slot or another slot of @slots; all plugged slots together
 * within cfg->max_bytes and within the domain's maximum memory (the
 * frames came with the guest and count in it).  The name must be the one
 * hotplug_add() gives, "xen.hotplug.<slot>".
 *
 * All or nothing: every slot is checked before anything changes, and if
 * recreating one fails the ones recreated before are taken out again.
 * Nothing is populated.  Then, unless there is no xenstore, memory/<slot>/
 * of each is written as an answered add: size, start, gpa, error = "",
 * state = online (a xenstore failure is logged: the memory is there).
 * Returns 0, or -errno as hotplug_add() (-EINVAL also for a wrong name),
 * with @err naming the slot.
 */
int hotplug_restore_slots(Hotplug *hp, const HotplugRestoreSlot *slots,
                          unsigned int n, char *err, size_t errlen);

/* hotplug_restore_slots() of the one slot @slot. */
int hotplug_restore(Hotplug *hp, uint32_t slot, const char *idstr,
                    uint64_t gpa, uint64_t size, char *err, size_t errlen);

/*
 * Undo the last successful hotplug_restore_slots(), when what followed it
 * failed (the incoming guest is not taken): its slots leave the device
 * model (regions, blocks) and their memory/<slot>/ directories leave
 * xenstore; no frame is released (they are the guest's).  Slots plugged
 * or removed since are left alone.  Not inside a read-side critical
 * section.
 */
void hotplug_restore_undo(Hotplug *hp);

/*
 * The slot @block was plugged into, or HOTPLUG_NO_SLOT (not a slot's
 * block, or NULL).  Lock-free: inside rcu_read_lock() or with the RAMList
 * mutex held (e.g. while the device state is captured), any thread.
 */
uint32_t hotplug_block_slot(Hotplug *hp, const RAMBlock *block);

typedef struct HotplugSlotInfo {
    uint64_t gpa, size;
    RAMBlock *block;            /* valid while the slot stays plugged */
} HotplugSlotInfo;

/* 0 and *@info for a plugged @slot, -ENOENT (empty) or -EINVAL. */
int hotplug_slot_info(Hotplug *hp, uint32_t slot, HotplugSlotInfo *info);

typedef struct HotplugStats {
    uint64_t adds, removes, restores;   /* requests that succeeded */
    uint64_t failures;                  /* requests refused or failed */
    uint64_t plugged_bytes;             /* in all slots now */
    uint32_t plugged_slots;
} HotplugStats;

void hotplug_get_stats(Hotplug *hp, HotplugStats *st);

/*
 * Refuse every request with -EBUSY and "memory hotplug is unavailable:
 * @reason" while @reason is not NULL (a migration saving the layout must
 * not see it change); NULL accepts requests again.  Requests that arrive
 * meanwhile are answered (refused), not deferred.
 */
void hotplug_set_blocked(Hotplug *hp, const char *reason);

/* The restore is over: later adds populate their frames again. */
void hotplug_set_incoming(Hotplug *hp, bool incoming);

/*
 * The Xen handles were restricted to the domain (-xen-domid-restrict):
 * from now on adds and removes, which populate and release frames (memory
 * operations a restricted privcmd refuses), fail with -EPERM and "memory
 * hot-plug is unavailable: @reason".  Restoring still works: it populates
 * nothing.  Not undone.
 */
void hotplug_set_restricted(Hotplug *hp, const char *reason);

#endif /* XENRAM_HOTPLUG_HOTPLUG_H */
