/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * access.h - guest memory access for device emulation.
 *
 * Read, write and DMA map/unmap by guest-physical address.  Every access is
 * checked against the address space's FlatView: RAM is reached through the
 * block's host memory or the mapcache, while holes and MMIO are refused
 * (xenram does not decode device accesses), and writes to read-only RAM
 * (ROMs) are refused.  Reads and writes are all-or-nothing: the whole range
 * is resolved before one byte is copied.
 *
 * After the data of a write has landed, its pages are marked dirty for
 * every client in dirty/ and reported to Xen through memory/modified (when
 * forwarding is on), so that a migration run by the toolstack carries them.
 *
 * Concurrency: any RCU-registered thread; no lock on the fast path.  The
 * FlatView used for one call is the one current when it starts.
 */
#ifndef XENRAM_MEMORY_ACCESS_H
#define XENRAM_MEMORY_ACCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/mapcache.h"
#include "memory/modified.h"
#include "memory/ramblock.h"
#include "memory/region.h"

typedef struct GuestMemory {
    AddressSpace *as;           /* the guest-physical address space */
    RAMList *ram;               /* whose DirtyMemory records writes */
    MapCache *mc;               /* for blocks without a host pointer; may be
                                 * NULL if every block has one */
    ModifiedMemory *mm;         /* may be NULL: writes are not reported */
} GuestMemory;

/*
 * Copy @len bytes at guest-physical @gpa into @buf.  0, or nothing copied
 * and -EFAULT (a hole, MMIO, or a frame Xen cannot map), -EINVAL (the
 * range wraps around), -ENOMEM.
 */
int guest_memory_read(GuestMemory *gm, uint64_t gpa, void *buf,
                      uint64_t len);

/*
 * Copy @len bytes from @buf to guest-physical @gpa, then mark the pages
 * dirty and report them to Xen.  0, or nothing written and -EFAULT,
 * -EPERM (read-only memory), -EINVAL.
 */
int guest_memory_write(GuestMemory *gm, uint64_t gpa, const void *buf,
                       uint64_t len);

/*
 * Map guest memory for DMA: returns a host pointer to *@len bytes at @gpa
 * (*@len is lowered to what is contiguous: the end of the RAM range, of
 * the mapcache bucket, of the run of mappable frames), valid on any thread
 * until guest_memory_unmap().  @is_write: the device will write (refused
 * with -EPERM on read-only memory).  NULL and -errno in *@status otherwise.
 */
void *guest_memory_map(GuestMemory *gm, uint64_t gpa, uint64_t *len,
                       bool is_write, int *status);

/*
 * End a DMA mapping from guest_memory_map(@gpa, @len).  With @is_write,
 * the first @access_len bytes were written: their pages are marked dirty
 * and reported.  0 or -errno (-ENOENT: not a mapping of ours).
 */
int guest_memory_unmap(GuestMemory *gm, void *ptr, uint64_t gpa,
                       uint64_t len, bool is_write, uint64_t access_len);

#endif /* XENRAM_MEMORY_ACCESS_H */
