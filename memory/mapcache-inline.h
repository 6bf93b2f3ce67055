/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mapcache-inline.h - the inline fast path of mapcache_get() and the
 * internals it reads.
 *
 * Not an interface: include memory/mapcache.h, which includes this file
 * at its end.  It lives apart so that the public header reads as a
 * reference, and it is still a header because a hit must stay inline:
 * no call, no lock, no atomic read-modify-write (docs/PERFORMANCE.md).
 * Only memory/mapcache.c may use these names directly; they change
 * whenever the mapcache does.
 */
#ifndef XENRAM_MEMORY_MAPCACHE_INLINE_H
#define XENRAM_MEMORY_MAPCACHE_INLINE_H

#ifndef XENRAM_MEMORY_MAPCACHE_H
#error "include memory/mapcache.h, not memory/mapcache-inline.h"
#endif

#include <stdint.h>

#include <urcu/list.h>

/*
 * Index: a two-level radix tree of RCU-published pointers.  The top level
 * covers the whole key space and is reserved at creation as address space
 * only (8 MiB for 1 MiB buckets and 52-bit gpas; the pages a guest's
 * layout never touches cost nothing); leaves hold 4096 slots.  Leaves are
 * never freed before mapcache_destroy(), so a reader needs nothing but
 * two rcu_dereference()s on the way down.
 */
#define MAPCACHE_RADIX_BITS   12
#define MAPCACHE_RADIX_FANOUT ((uint64_t)1 << MAPCACHE_RADIX_BITS)

typedef struct MapCacheRadix {
    void **top;                 /* top_size slots -> leaves */
    uint64_t top_size;
} MapCacheRadix;

#define MAPCACHE_ENTRY_ALL_VALID 1u     /* every frame of the bucket mapped */
#define MAPCACHE_ENTRY_DUMMY     2u     /* anonymous stand-in */
#define MAPCACHE_LOCK_DEAD       (1u << 31) /* lockcnt: being dropped */

/* One mapped bucket. */
typedef struct MapCacheEntry {
    /* Read by the lock-free paths. */
    uint8_t *vaddr;             /* fixed; aligned to the bucket size */
    uint64_t bucket;            /* fixed: gpa >> bucket_shift */
    uint32_t flags;             /* atomic: MAPCACHE_ENTRY_* */
    /*
     * atomic: lock count; MAPCACHE_LOCK_DEAD once the entry is being
     * dropped (set only from 0, under the mutex).
     */
    uint32_t lockcnt;
    uint8_t referenced;         /* atomic: used since the last eviction scan */
    uint8_t stale;              /* atomic: invalidated while locked */
    /* Writer side: under the mapcache's mutex. */
    struct rcu_head rcu;
    struct cds_list_head link;
    MapCache *mc;
    /* atomic words: one bit per frame, set when it is mapped */
    unsigned long valid[];
} MapCacheEntry;

/* Hits counted per thread: written only by its owner, no atomic RMW. */
typedef struct MapCacheThreadStats {
    uint64_t hits;              /* atomic (relaxed) load + store by owner */
    uint32_t in_use;            /* atomic: 0 once the owner thread exited */
    struct MapCacheThreadStats *next;   /* under the mapcache's mutex */
} __attribute__((aligned(64))) MapCacheThreadStats;

/* The part of struct MapCache the inline functions read; its first member. */
typedef struct MapCacheFast {
    MapCacheRadix index;        /* bucket -> MapCacheEntry, RCU */
    unsigned int bucket_shift;
    uint64_t bucket_size;
    uint64_t id;                /* unique per mapcache, for mapcache_tls */
} MapCacheFast;

typedef struct MapCacheTls {
    uint64_t id;
    MapCacheThreadStats *st;
} MapCacheTls;

/* The calling thread's counters for the mapcache it used last. */
extern __thread MapCacheTls mapcache_tls;

MapCacheThreadStats *mapcache_thread_stats_(MapCache *mc);
void *mapcache_get_slow(MapCache *mc, uint64_t gpa, uint64_t len, int *status);

static inline void *mapcache_radix_get_(const MapCacheRadix *r, uint64_t key)
{
    uint64_t t = key >> MAPCACHE_RADIX_BITS;
    void **leaf;

    if (unlikely(t >= r->top_size)) {
        return NULL;
    }
    leaf = rcu_dereference(r->top[t]);
    if (unlikely(!leaf)) {
        return NULL;
    }
    return rcu_dereference(leaf[key & (MAPCACHE_RADIX_FANOUT - 1)]);
}

/* Mark @e used (a plain store, and only when the bit was cleared). */
static inline void mapcache_touch_(MapCacheEntry *e)
{
    if (unlikely(!__atomic_load_n(&e->referenced, __ATOMIC_RELAXED))) {
        __atomic_store_n(&e->referenced, 1, __ATOMIC_RELAXED);
    }
}

static inline void mapcache_count_hit_(MapCache *mc)
{
    const MapCacheFast *f = (const MapCacheFast *)mc;
    MapCacheThreadStats *st;

    st = likely(mapcache_tls.id == f->id) ? mapcache_tls.st
                                          : mapcache_thread_stats_(mc);
    if (likely(st)) {
        __atomic_store_n(&st->hits,
                         __atomic_load_n(&st->hits, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
    }
}

static inline void *mapcache_get(MapCache *mc, uint64_t gpa, uint64_t len,
                                 int *status)
{
    const MapCacheFast *f = (const MapCacheFast *)mc;
    uint64_t off = gpa & (f->bucket_size - 1);
    MapCacheEntry *e = (MapCacheEntry *)
        mapcache_radix_get_(&f->index, gpa >> f->bucket_shift);

    /* len - 1 wraps for len 0, which the slow path treats as 1. */
    if (likely(e && len - 1 < f->bucket_size - off &&
               (__atomic_load_n(&e->flags, __ATOMIC_RELAXED) &
                MAPCACHE_ENTRY_ALL_VALID))) {
        mapcache_touch_(e);
        mapcache_count_hit_(mc);
        return e->vaddr + off;
    }
    return mapcache_get_slow(mc, gpa, len, status);
}

#endif /* XENRAM_MEMORY_MAPCACHE_INLINE_H */
