/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bitmap.h - a migration sender's bitmap of pages still to send (a
 * RAMBlock's bmap), laid out so that dirty_memory_sync_bitmap() can hand
 * whole blocks over instead of copying them.
 *
 * A DirtyBitmap covers the ram_addr pages [start, start + npages).  Its bits
 * live in blocks of DIRTY_MEMORY_BLOCK_PAGES bits aligned exactly like the
 * blocks of DirtyMemory (block k holds ram_addr pages [k * 2^21,
 * (k + 1) * 2^21)), and each block keeps a count of its set bits.  A sync
 * that finds a destination block empty (the sender has sent everything it
 * held, the normal state at the end of a precopy round) takes the swapped-out
 * MIGRATION block as the destination block itself and recycles the empty one
 * as the next spare: the dirty bits are counted, never copied.  See
 * docs/dirty.md ("Syncing into a migration bitmap").
 *
 * Bits outside [start, start + npages) are always clear.  Indexes in this
 * interface are relative to @start (bit 0 is page @start), like QEMU's
 * per-RAMBlock bmap.
 *
 * Concurrency: a DirtyBitmap belongs to one migration sender; every
 * function here, and dirty_memory_sync_bitmap(), must be serialised by the
 * caller (QEMU's bitmap_mutex).  Nothing here takes a lock or needs RCU.
 *
 * Errors: -ERANGE for a range outside [0, npages), -EINVAL / -ENOMEM from
 * dirty_bitmap_init().  dirty_bitmap_test() and dirty_bitmap_find_next()
 * take indexes the caller must have checked: an index past the end is a
 * programming error and asserts.
 */
#ifndef XENRAM_DIRTY_BITMAP_H
#define XENRAM_DIRTY_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "dirty/dirty.h"

typedef struct DirtyBitmap {
    uint64_t start;         /* ram_addr page of bit 0 */
    uint64_t npages;        /* bits */
    uint64_t first_block;   /* DirtyMemory block index of blocks[0] */
    uint64_t nblocks;
    uint64_t count;         /* bits set in all */
    unsigned long **blocks; /* DIRTY_MEMORY_BLOCK_LONGS words each */
    uint64_t *block_count;  /* bits set per block; 0 means all clear */
} DirtyBitmap;

/*
 * Initialise @bm, all clear, for the ram_addr pages [start, start + npages)
 * (npages > 0).  0, -EINVAL (npages 0 or the range overflows) or -ENOMEM.
 */
int dirty_bitmap_init(DirtyBitmap *bm, uint64_t start, uint64_t npages);

/* Free @bm's memory; @bm may then be initialised again. */
void dirty_bitmap_destroy(DirtyBitmap *bm);

/* Bits set (pages still to send). */
static inline uint64_t dirty_bitmap_count(const DirtyBitmap *bm)
{
    return bm->count;
}

/* Whether bit @i (< npages) is set. */
bool dirty_bitmap_test(const DirtyBitmap *bm, uint64_t i);

/* Set bits [i, i + n).  0 or -ERANGE (nothing changed). */
int dirty_bitmap_set_range(DirtyBitmap *bm, uint64_t i, uint64_t n);

/* Clear bits [i, i + n).  0 or -ERANGE (nothing changed). */
int dirty_bitmap_clear_range(DirtyBitmap *bm, uint64_t i, uint64_t n);

/* Clear bit @i: 1 if it was set, 0 if not, -ERANGE. */
int dirty_bitmap_test_and_clear(DirtyBitmap *bm, uint64_t i);

/*
 * The first set bit at or after @i (<= npages), or npages if there is
 * none.  Empty blocks are skipped without being read.
 */
uint64_t dirty_bitmap_find_next(const DirtyBitmap *bm, uint64_t i);

/*
 * Move the MIGRATION bits of the pages [bm->start + i, bm->start + i + n)
 * into @bm: what dirty_memory_sync() does for a flat bitmap.  Returns the
 * number of bits that became set in @bm, -ERANGE when the range is outside
 * @bm or outside the pages @dm covers (nothing moved then).
 *
 * Whole blocks are swapped out of @dm for zeroed spares and, after a grace
 * period, handed over to @bm when @bm's block is empty, or folded in
 * otherwise; partial blocks go word by word with atomic exchange.  May wait
 * for a grace period: not inside an RCU read-side critical section.  The
 * caller serialises it with every other use of @bm.
 */
int64_t dirty_memory_sync_bitmap(DirtyMemory *dm, DirtyBitmap *bm,
                                 uint64_t i, uint64_t n);

#endif /* XENRAM_DIRTY_BITMAP_H */
