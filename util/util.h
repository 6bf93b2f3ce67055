/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util.h - the little that xenram's public headers share: liburcu, Xen's
 * page size and the xr_ bit helpers.  Installed with them.
 *
 * Nothing here knows about Xen, RAM blocks or dirty logging; it includes no
 * other header of the project.
 *
 * It takes liburcu as its user configured it: it defines neither
 * _LGPL_SOURCE nor a flavour macro and redefines none of liburcu's.
 * libxenram's readers and writers use liburcu's default flavour, memb
 * (membarrier(2)); a program that links libxenram registers its threads
 * and takes read locks in that flavour, which <urcu.h> gives by default.
 * The library's own build settings live in util/util-internal.h.
 */
#ifndef XENRAM_UTIL_H
#define XENRAM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>

/* Another flavour's rcu_read_lock() would not hold off libxenram's writers. */
#if defined(RCU_MB) || defined(RCU_SIGNAL)
#error "libxenram uses liburcu's memb flavour; do not select another one"
#endif
#include <urcu.h>

/*
 * Branch hints for the inline fast paths of the public headers.  Spelled
 * the usual way and only if the user has not: the same meaning either way.
 */
#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* ---- pages ----------------------------------------------------------- */

/* Xen's page: the unit of the p2m, of log-dirty and of every dirty bitmap. */
#define XR_PAGE_BITS  12
#define XR_PAGE_SIZE  ((uint64_t)1 << XR_PAGE_BITS)
#define XR_PAGE_MASK  (~(XR_PAGE_SIZE - 1))
#define XR_PAGE_ALIGN(a) (((a) + XR_PAGE_SIZE - 1) & XR_PAGE_MASK)

/* ---- bit operations on arrays of unsigned long ------------------------ */

/*
 * Bitmaps cross the API as arrays of unsigned long (Xen's log-dirty and
 * track_dirty_vram bitmaps have that shape too).  The usual names, again
 * only where the user has not defined them.
 */
#ifndef BITS_PER_LONG
#define BITS_PER_LONG     (sizeof(unsigned long) * CHAR_BIT)
#endif
#ifndef BIT_WORD
#define BIT_WORD(nr)      ((nr) / BITS_PER_LONG)
#endif
#ifndef BIT_MASK
#define BIT_MASK(nr)      (1UL << ((nr) % BITS_PER_LONG))
#endif
#ifndef BITS_TO_LONGS
#define BITS_TO_LONGS(nr) (((nr) + BITS_PER_LONG - 1) / BITS_PER_LONG)
#endif

static inline bool xr_test_bit(uint64_t nr, const unsigned long *addr)
{
    return (addr[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1;
}

static inline void xr_set_bit(uint64_t nr, unsigned long *addr)
{
    addr[nr / BITS_PER_LONG] |= 1UL << (nr % BITS_PER_LONG);
}

static inline void xr_clear_bit(uint64_t nr, unsigned long *addr)
{
    addr[nr / BITS_PER_LONG] &= ~(1UL << (nr % BITS_PER_LONG));
}

/* Index of the first set bit in [start, size), or size if there is none. */
uint64_t xr_find_next_bit(const unsigned long *addr, uint64_t size,
                       uint64_t start);
/* Index of the first clear bit in [start, size), or size if there is none. */
uint64_t xr_find_next_zero_bit(const unsigned long *addr, uint64_t size,
                            uint64_t start);
/* Plain (non-atomic) set / clear of @nr bits from @start. */
void xr_bitmap_set(unsigned long *map, uint64_t start, uint64_t nr);
void xr_bitmap_clear(unsigned long *map, uint64_t start, uint64_t nr);
/* Number of set bits in the first @nbits bits of @map. */
uint64_t xr_bitmap_count(const unsigned long *map, uint64_t nbits);
/*
 * Put a sentence for a person (printf @fmt) into @err (@errlen bytes; none
 * when @err is NULL or @errlen 0) and return @ret, so that a failing path
 * reads "return xr_error(err, errlen, -EINVAL, "...", ...);".
 */
int xr_error(char *err, size_t errlen, int ret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A zeroed bitmap of @nbits bits, or NULL when out of memory. */
unsigned long *xr_bitmap_new(uint64_t nbits);

#endif /* XENRAM_UTIL_H */
