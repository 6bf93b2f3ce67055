/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stamp.h - what a simulated vCPU writes into a guest page, and how a copy
 * of the page is checked.
 *
 * Every write of a vCPU rewrites one whole 4 KiB page: a header naming the
 * frame and a generation (a per-domain counter, so every write is unique),
 * then a fill pattern derived from both.  A page read back later is either
 * all zeros (never written), a consistent stamp of the frame it sits at, or
 * corrupt (torn, misplaced or overwritten by someone else).  Comparing two
 * copies page by page (generation and all) tells whether a migration moved
 * the latest contents.
 *
 * Header-only so that tests and tools outside the daemon can use it.
 */
#ifndef XENSIM_STAMP_H
#define XENSIM_STAMP_H

#include <stdint.h>
#include <string.h>

#define XSIM_STAMP_MAGIC  0x584e5350414d5453ull  /* "STAMPSNX" */
#define XSIM_STAMP_WORDS  (4096 / 8)

struct xsim_stamp_hdr {
    uint64_t magic;
    uint64_t gfn;
    uint64_t gen;
    uint64_t check;     /* magic ^ gfn ^ gen, rotated */
};

static inline uint64_t xsim_stamp_word(uint64_t gfn, uint64_t gen, unsigned i)
{
    uint64_t x = (gfn << 40) ^ gen ^ ((uint64_t)i * 0x9e3779b97f4a7c15ull);

    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return x;
}

static inline uint64_t xsim_stamp_check_word(uint64_t gfn, uint64_t gen)
{
    uint64_t x = XSIM_STAMP_MAGIC ^ gfn ^ gen;

    return (x << 17) | (x >> 47);
}

/* Fill @page (4 KiB, 8-byte aligned) with the stamp of (@gfn, @gen). */
static inline void xsim_stamp_write(void *page, uint64_t gfn, uint64_t gen)
{
    uint64_t *w = page;
    unsigned i;

    for (i = 4; i < XSIM_STAMP_WORDS; i++)
        w[i] = xsim_stamp_word(gfn, gen, i);
    w[1] = gfn;
    w[2] = gen;
    w[3] = xsim_stamp_check_word(gfn, gen);
    /* The magic last: a reader that sees it sees a whole header. */
    __atomic_store_n(&w[0], XSIM_STAMP_MAGIC, __ATOMIC_RELEASE);
}

/*
 * Check the page found at frame @gfn.  Returns 0 for an all-zero page,
 * 1 for a consistent stamp (its generation in *gen if not NULL), -1 for
 * anything else.
 */
static inline int xsim_stamp_check(const void *page, uint64_t gfn,
                                   uint64_t *gen)
{
    const uint64_t *w = page;
    unsigned i;

    if (w[0] != XSIM_STAMP_MAGIC) {
        for (i = 0; i < XSIM_STAMP_WORDS; i++)
            if (w[i])
                return -1;
        return 0;
    }
    if (w[1] != gfn || w[3] != xsim_stamp_check_word(gfn, w[2]))
        return -1;
    for (i = 4; i < XSIM_STAMP_WORDS; i++)
        if (w[i] != xsim_stamp_word(gfn, w[2], i))
            return -1;
    if (gen)
        *gen = w[2];
    return 1;
}

#endif /* XENSIM_STAMP_H */
