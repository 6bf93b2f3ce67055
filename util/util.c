/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util.c - bitmap helpers and RCU glue shared by every module.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/util-internal.h"

#ifdef XR_TSAN
char xr_rcu_tsan_sync;
#endif

/*
 * Shared by xr_find_next_bit() and xr_find_next_zero_bit(): @invert turns every
 * word into its complement so that one scan finds either kind of bit.
 */
static uint64_t find_next(const unsigned long *addr, uint64_t size,
                          uint64_t start, unsigned long invert)
{
    uint64_t idx;
    unsigned long word;

    if (start >= size) {
        return size;
    }
    idx = BIT_WORD(start);
    word = (addr[idx] ^ invert) & BITMAP_FIRST_WORD_MASK(start);
    for (;;) {
        if (word) {
            uint64_t bit = idx * BITS_PER_LONG + __builtin_ctzl(word);
            return MIN(bit, size);
        }
        if (++idx >= BITS_TO_LONGS(size)) {
            return size;
        }
        word = addr[idx] ^ invert;
    }
}

uint64_t xr_find_next_bit(const unsigned long *addr, uint64_t size,
                       uint64_t start)
{
    return find_next(addr, size, start, 0);
}

uint64_t xr_find_next_zero_bit(const unsigned long *addr, uint64_t size,
                            uint64_t start)
{
    return find_next(addr, size, start, ~0UL);
}

void xr_bitmap_set(unsigned long *map, uint64_t start, uint64_t nr)
{
    unsigned long *p = map + BIT_WORD(start);
    unsigned long mask = BITMAP_FIRST_WORD_MASK(start);
    uint64_t end = start + nr;

    if (nr == 0) {
        return;
    }
    if (BIT_WORD(start) == BIT_WORD(end - 1)) {
        *p |= mask & BITMAP_LAST_WORD_MASK(end);
        return;
    }
    *p++ |= mask;
    for (uint64_t w = BIT_WORD(start) + 1; w < BIT_WORD(end - 1); w++) {
        *p++ = ~0UL;
    }
    *p |= BITMAP_LAST_WORD_MASK(end);
}

void xr_bitmap_clear(unsigned long *map, uint64_t start, uint64_t nr)
{
    unsigned long *p = map + BIT_WORD(start);
    unsigned long mask = BITMAP_FIRST_WORD_MASK(start);
    uint64_t end = start + nr;

    if (nr == 0) {
        return;
    }
    if (BIT_WORD(start) == BIT_WORD(end - 1)) {
        *p &= ~(mask & BITMAP_LAST_WORD_MASK(end));
        return;
    }
    *p++ &= ~mask;
    for (uint64_t w = BIT_WORD(start) + 1; w < BIT_WORD(end - 1); w++) {
        *p++ = 0;
    }
    *p &= ~BITMAP_LAST_WORD_MASK(end);
}

uint64_t xr_bitmap_count(const unsigned long *map, uint64_t nbits)
{
    uint64_t n = 0, full = nbits / BITS_PER_LONG;

    for (uint64_t i = 0; i < full; i++) {
        n += __builtin_popcountl(map[i]);
    }
    if (nbits % BITS_PER_LONG) {
        n += __builtin_popcountl(map[full] & BITMAP_LAST_WORD_MASK(nbits));
    }
    return n;
}

unsigned long *xr_bitmap_new(uint64_t nbits)
{
    return calloc(BITS_TO_LONGS(nbits), sizeof(unsigned long));
}

int xr_error(char *err, size_t errlen, int ret, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ret;
}
