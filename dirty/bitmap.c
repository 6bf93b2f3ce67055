/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bitmap.c - a migration sender's blocked bitmap of pages still to send.
 *
 * See bitmap.h.  The one invariant everything relies on: block_count[k] is
 * the number of bits set in blocks[k], so a zero count means the block is
 * all clear (dirty_memory_sync_bitmap() recycles such a block as a zeroed
 * spare without looking at it).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirty/bitmap.h"
#include "dirty/internal.h"

#define BLOCK_MASK (DIRTY_MEMORY_BLOCK_PAGES - 1)

int dirty_bitmap_init(DirtyBitmap *bm, uint64_t start, uint64_t npages)
{
    uint64_t last;

    memset(bm, 0, sizeof(*bm));
    if (!npages || start + npages < start) {
        return -EINVAL;
    }
    last = start + npages - 1;
    bm->start = start;
    bm->npages = npages;
    bm->first_block = start >> DIRTY_MEMORY_BLOCK_SHIFT;
    bm->nblocks = (last >> DIRTY_MEMORY_BLOCK_SHIFT) - bm->first_block + 1;
    bm->blocks = calloc(bm->nblocks, sizeof(*bm->blocks));
    bm->block_count = calloc(bm->nblocks, sizeof(*bm->block_count));
    if (!bm->blocks || !bm->block_count) {
        dirty_bitmap_destroy(bm);
        return -ENOMEM;
    }
    for (uint64_t k = 0; k < bm->nblocks; k++) {
        bm->blocks[k] = dirty_block_alloc();
        if (!bm->blocks[k]) {
            dirty_bitmap_destroy(bm);
            return -ENOMEM;
        }
    }
    return 0;
}

void dirty_bitmap_destroy(DirtyBitmap *bm)
{
    if (bm->blocks) {
        for (uint64_t k = 0; k < bm->nblocks; k++) {
            dirty_block_free(bm->blocks[k]);
        }
    }
    free(bm->blocks);
    free(bm->block_count);
    memset(bm, 0, sizeof(*bm));
}

static inline int check(const DirtyBitmap *bm, uint64_t i, uint64_t n)
{
    return i > bm->npages || n > bm->npages - i ? -ERANGE : 0;
}

bool dirty_bitmap_test(const DirtyBitmap *bm, uint64_t i)
{
    uint64_t a = bm->start + i;

    assert(i < bm->npages);
    return xr_test_bit(a & BLOCK_MASK,
                    bm->blocks[(a >> DIRTY_MEMORY_BLOCK_SHIFT) -
                               bm->first_block]);
}

/*
 * Set (@set) or clear the bits [i, i + n), block by block, keeping the
 * counts; blocks with nothing to clear are not touched.
 */
static void update_range(DirtyBitmap *bm, uint64_t i, uint64_t n, bool set)
{
    uint64_t a = bm->start + i, end = a + n;

    while (a < end) {
        uint64_t k = (a >> DIRTY_MEMORY_BLOCK_SHIFT) - bm->first_block;
        uint64_t block_end = (a | BLOCK_MASK) + 1;
        uint64_t stop = MIN(end, block_end), changed = 0;
        unsigned long *words = bm->blocks[k];

        if (!set && !bm->block_count[k]) {
            a = stop;
            continue;
        }
        while (a < stop) {
            unsigned int s = a % BITS_PER_LONG;
            unsigned int len = MIN(BITS_PER_LONG - s, stop - a);
            unsigned long mask = word_mask(s, len);
            unsigned long *w = words + BIT_WORD(a & BLOCK_MASK);

            if (set) {
                changed += __builtin_popcountl(mask & ~*w);
                *w |= mask;
            } else {
                changed += __builtin_popcountl(mask & *w);
                *w &= ~mask;
            }
            a += len;
        }
        if (set) {
            bm->block_count[k] += changed;
            bm->count += changed;
        } else {
            bm->block_count[k] -= changed;
            bm->count -= changed;
        }
    }
}

int dirty_bitmap_set_range(DirtyBitmap *bm, uint64_t i, uint64_t n)
{
    int ret = check(bm, i, n);

    if (!ret) {
        update_range(bm, i, n, true);
    }
    return ret;
}

int dirty_bitmap_clear_range(DirtyBitmap *bm, uint64_t i, uint64_t n)
{
    int ret = check(bm, i, n);

    if (!ret) {
        update_range(bm, i, n, false);
    }
    return ret;
}

int dirty_bitmap_test_and_clear(DirtyBitmap *bm, uint64_t i)
{
    uint64_t a = bm->start + i, k;
    unsigned long *w, bit;

    if (i >= bm->npages) {
        return -ERANGE;
    }
    k = (a >> DIRTY_MEMORY_BLOCK_SHIFT) - bm->first_block;
    w = bm->blocks[k] + BIT_WORD(a & BLOCK_MASK);
    bit = BIT_MASK(a);
    if (!(*w & bit)) {
        return 0;
    }
    *w &= ~bit;
    bm->block_count[k]--;
    bm->count--;
    return 1;
}

uint64_t dirty_bitmap_find_next(const DirtyBitmap *bm, uint64_t i)
{
    uint64_t a = bm->start + i, end = bm->start + bm->npages;

    assert(i <= bm->npages);
    while (a < end) {
        uint64_t k = (a >> DIRTY_MEMORY_BLOCK_SHIFT) - bm->first_block;
        uint64_t block_end = MIN((a | BLOCK_MASK) + 1, end);
        const unsigned long *words = bm->blocks[k];

        if (bm->block_count[k]) {
            uint64_t wi = BIT_WORD(a & BLOCK_MASK);
            uint64_t wend = BIT_WORD(((block_end - 1) & BLOCK_MASK)) + 1;
            unsigned long v = words[wi] & (~0UL << (a % BITS_PER_LONG));

            for (;;) {
                if (v) {
                    uint64_t p = (a & ~BLOCK_MASK) + wi * BITS_PER_LONG +
                                 __builtin_ctzl(v);

                    /* Bits past the end are never set. */
                    return MIN(p, end) - bm->start;
                }
                if (++wi == wend) {
                    break;
                }
                v = words[wi];
            }
        }
        a = block_end;
    }
    return bm->npages;
}
