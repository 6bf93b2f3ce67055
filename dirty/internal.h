/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * internal.h - what dirty.c and bitmap.c share; not installed.
 */
#ifndef XENRAM_DIRTY_INTERNAL_H
#define XENRAM_DIRTY_INTERNAL_H

#include "util/util.h"

/* Mask of @n bits starting at bit @s of a word (0 < n, s + n <= 64). */
static inline unsigned long word_mask(unsigned int s, unsigned int n)
{
    return (n == BITS_PER_LONG ? ~0UL : ((1UL << n) - 1)) << s;
}

/*
 * A zeroed block of DIRTY_MEMORY_BLOCK_LONGS words, or NULL.  Anonymous
 * memory: a block costs nothing until bits are set in it.
 */
unsigned long *dirty_block_alloc(void);

/* Free a block from dirty_block_alloc(); NULL is ignored. */
void dirty_block_free(unsigned long *block);

#endif /* XENRAM_DIRTY_INTERNAL_H */
