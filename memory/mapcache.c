/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mapcache.c - on-demand foreign mappings of guest memory.  See
 * mapcache.h for the contract and docs/mapcache.md for the design.
 *
 * Life of an entry (one mapped bucket):
 *
 *   mapped under the mutex -> published in the gpa index and the host
 *   index (rcu_assign_pointer) -> found by readers without a lock ->
 *   dropped under the mutex once its lock count is 0 (lockcnt 0 -> DEAD by
 *   compare-and-swap, so a concurrent mapcache_map() either got its lock
 *   first or sees DEAD and takes the slow path) -> unpublished at once ->
 *   unmapped and freed by call_rcu after a grace period.
 *
 * A locked entry that is invalidated is *orphaned* instead: unpublished
 * from the gpa index (new lookups map the bucket afresh) but kept mapped,
 * and still found by the host index, until its last unlock drops it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memory/mapcache.h"

#ifdef XR_TSAN
/*
 * The writer's last plain stores to an entry (list unlinking) happen
 * before call_rcu() hands it to liburcu's callback thread, through a queue
 * TSan cannot see: make that hand-over an explicit release/acquire.
 */
#define mc_tsan_handoff(p)  __tsan_release(p)
#define mc_tsan_takeover(p) __tsan_acquire(p)
#else
#define mc_tsan_handoff(p)  do { (void)(p); } while (0)
#define mc_tsan_takeover(p) do { (void)(p); } while (0)
#endif

/* Entry flag: the range was lost, there is nothing to unmap. */
#define MC_ENTRY_GONE 0x100u

/* Host addresses the host index covers: 48-bit user space. */
#define MC_HOST_BITS 48

struct MapCache {
    MapCacheFast fast;          /* first: read by mapcache.h's inlines */
    XenHandles *xh;
    bool writable;
    unsigned int pages_per_bucket;
    uint64_t max_bytes;

    /* Serialises misses, drops, invalidation, replacement and stats. */
    pthread_mutex_t lock;
    /* host address >> bucket_shift -> entry, RCU; writes under @lock */
    MapCacheRadix host_index;
    /* Every live entry, published or orphaned, in CLOCK order; @lock. */
    struct cds_list_head entries;
    uint64_t nentries;          /* @lock */
    bool incoming;              /* @lock */
    xen_pfn_t *gfns;            /* scratch for xen_map(), @lock */
    int *errs;                  /* scratch for xen_map(), @lock */
    MapCacheThreadStats *thread_stats;  /* @lock */

    uint64_t live_bytes;        /* @lock */
    uint64_t pending_bytes;     /* atomic */
    uint64_t misses;            /* @lock */
    uint64_t map_failures;      /* @lock */
    uint64_t invalidations;     /* @lock */
    uint64_t invalidated;       /* @lock */
    uint64_t evictions;         /* @lock */

    struct cds_list_head registry_link; /* mc_registry_lock */
};

/* ---- per-thread hit counters ----------------------------------------------- */

__thread MapCacheTls mapcache_tls;

/* The blocks a thread owns, one per mapcache it used (most recent kept). */
#define MC_TLS_SLOTS 8
static __thread MapCacheTls mc_tls_slots[MC_TLS_SLOTS];
static __thread unsigned int mc_tls_next;

/*
 * Live mapcaches by id, so that a thread leaving (or a slot being reused)
 * can tell whether the mapcache a counter block belongs to still exists
 * before giving the block back.
 */
static pthread_mutex_t mc_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static CDS_LIST_HEAD(mc_registry);
static uint64_t mc_next_id = 1;         /* mc_registry_lock */
static pthread_once_t mc_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t mc_key;

/* Give @slot's block back to its mapcache if that still exists. */
static void mc_release_slot(MapCacheTls *slot)
{
    MapCache *mc;

    if (!slot->id) {
        return;
    }
    pthread_mutex_lock(&mc_registry_lock);
    cds_list_for_each_entry(mc, &mc_registry, registry_link) {
        if (mc->fast.id == slot->id) {
            __atomic_store_n(&slot->st->in_use, 0, __ATOMIC_RELEASE);
            break;
        }
    }
    pthread_mutex_unlock(&mc_registry_lock);
    slot->id = 0;
    slot->st = NULL;
}

static void mc_thread_exit(void *arg)
{
    (void)arg;
    for (unsigned int i = 0; i < MC_TLS_SLOTS; i++) {
        mc_release_slot(&mc_tls_slots[i]);
    }
    mapcache_tls.id = 0;
    mapcache_tls.st = NULL;
}

static void mc_key_create(void)
{
    pthread_key_create(&mc_key, mc_thread_exit);
}

/*
 * The calling thread's counter block for @mc: from the thread's slots, or
 * one given back by a thread that exited, or a new one.  NULL when out of
 * memory (the hit then goes uncounted).
 */
MapCacheThreadStats *mapcache_thread_stats_(MapCache *mc)
{
    MapCacheThreadStats *st;
    MapCacheTls *slot;

    for (unsigned int i = 0; i < MC_TLS_SLOTS; i++) {
        if (mc_tls_slots[i].id == mc->fast.id) {
            mapcache_tls = mc_tls_slots[i];
            return mapcache_tls.st;
        }
    }
    pthread_once(&mc_key_once, mc_key_create);

    pthread_mutex_lock(&mc->lock);
    for (st = mc->thread_stats; st; st = st->next) {
        if (!__atomic_load_n(&st->in_use, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&st->in_use, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    if (!st) {
        st = aligned_alloc(_Alignof(MapCacheThreadStats), sizeof(*st));
        if (st) {
            memset(st, 0, sizeof(*st));
            st->in_use = 1;
            st->next = mc->thread_stats;
            mc->thread_stats = st;
        }
    }
    pthread_mutex_unlock(&mc->lock);
    if (!st) {
        return NULL;
    }

    slot = &mc_tls_slots[mc_tls_next++ % MC_TLS_SLOTS];
    mc_release_slot(slot);
    slot->id = mc->fast.id;
    slot->st = st;
    mapcache_tls = *slot;
    /* Any non-NULL value makes mc_thread_exit() run at thread exit. */
    pthread_setspecific(mc_key, mc_tls_slots);
    return st;
}

/* ---- radix trees ------------------------------------------------------------ */

static int mc_radix_init(MapCacheRadix *r, unsigned int key_bits)
{
    unsigned int top_bits = key_bits > MAPCACHE_RADIX_BITS
                          ? key_bits - MAPCACHE_RADIX_BITS : 0;
    void *p;

    r->top_size = (uint64_t)1 << top_bits;
    /* Zero pages on demand: only the slots a layout uses cost memory. */
    p = mmap(NULL, r->top_size * sizeof(void *), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    r->top = p == MAP_FAILED ? NULL : p;
    return r->top ? 0 : -ENOMEM;
}

static void mc_radix_free(MapCacheRadix *r)
{
    if (!r->top) {
        return;
    }
    for (uint64_t t = 0; t < r->top_size; t++) {
        free(r->top[t]);
    }
    munmap(r->top, r->top_size * sizeof(void *));
    r->top = NULL;
}

/* Publish @val at @key (NULL unpublishes).  Under the mutex. */
static int mc_radix_set(MapCacheRadix *r, uint64_t key, void *val)
{
    uint64_t t = key >> MAPCACHE_RADIX_BITS;
    void **leaf;

    if (t >= r->top_size) {
        return -EINVAL;
    }
    leaf = r->top[t];
    if (!leaf) {
        if (!val) {
            return 0;
        }
        leaf = calloc(MAPCACHE_RADIX_FANOUT, sizeof(void *));
        if (!leaf) {
            return -ENOMEM;
        }
        rcu_assign_pointer(r->top[t], leaf);
    }
    rcu_assign_pointer(leaf[key & (MAPCACHE_RADIX_FANOUT - 1)], val);
    return 0;
}

static inline uint64_t mc_host_key(const MapCache *mc, const void *p)
{
    return (uintptr_t)p >> mc->fast.bucket_shift;
}

static MapCacheEntry *mc_lookup(MapCache *mc, uint64_t bucket)
{
    return mapcache_radix_get_(&mc->fast.index, bucket);
}

/* ---- entries ------------------------------------------------------------------ */

static bool mc_page_valid(const MapCacheEntry *e, unsigned int page)
{
    return (__atomic_load_n(&e->valid[BIT_WORD(page)], __ATOMIC_RELAXED) >>
            (page % BITS_PER_LONG)) & 1;
}

/* Are frames [first, last] of @e mapped? */
static bool mc_range_valid(const MapCacheEntry *e, unsigned int first,
                           unsigned int last)
{
    if (__atomic_load_n(&e->flags, __ATOMIC_RELAXED) &
        MAPCACHE_ENTRY_ALL_VALID) {
        return true;
    }
    for (unsigned int i = first; i <= last; i++) {
        if (!mc_page_valid(e, i)) {
            return false;
        }
    }
    return true;
}

/*
 * Take a lock count on @e unless it is being dropped or was invalidated.
 * Lock-free.
 */
static bool mc_trylock(MapCacheEntry *e)
{
    uint32_t c = __atomic_load_n(&e->lockcnt, __ATOMIC_RELAXED);

    do {
        if (c & MAPCACHE_LOCK_DEAD) {
            return false;
        }
    } while (!__atomic_compare_exchange_n(&e->lockcnt, &c, c + 1, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    return true;
}

static bool mc_try_kill(MapCacheEntry *e)
{
    uint32_t zero = 0;

    return __atomic_compare_exchange_n(&e->lockcnt, &zero, MAPCACHE_LOCK_DEAD,
                                       false, __ATOMIC_SEQ_CST,
                                       __ATOMIC_RELAXED);
}

/*
 * A reserved (PROT_NONE) range of @size bytes aligned to @size, so that a
 * bucket occupies exactly one slot of the host index.
 */
static void *mc_reserve_aligned(uint64_t size)
{
    uint8_t *p, *a;

    p = mmap(NULL, 2 * size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    a = (uint8_t *)ROUND_UP((uintptr_t)p, size);
    if (a > p) {
        munmap(p, a - p);
    }
    munmap(a + size, p + 2 * size - (a + size));
    return a;
}

static MapCacheEntry *mc_entry_alloc(MapCache *mc, uint64_t bucket)
{
    MapCacheEntry *e = calloc(1, sizeof(*e) +
                              BITS_TO_LONGS(mc->pages_per_bucket) *
                              sizeof(unsigned long));

    if (e) {
        e->bucket = bucket;
        e->mc = mc;
        e->referenced = 1;
    }
    return e;
}

/* Anonymous memory over [@addr, +bucket) (MAP_FIXED unless @noreplace). */
static void *mc_map_dummy(MapCache *mc, void *addr, bool noreplace)
{
    void *p = mmap(addr, mc->fast.bucket_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS |
                   (noreplace ? MAP_FIXED_NOREPLACE : MAP_FIXED), -1, 0);

    return p == addr ? p : NULL;
}

/* Set @e's frame bits from mc->errs and return how many frames failed. */
static unsigned int mc_set_valid(MapCache *mc, MapCacheEntry *e)
{
    unsigned int bad = 0;

    for (unsigned int w = 0; w < BITS_TO_LONGS(mc->pages_per_bucket); w++) {
        unsigned long bits = 0;

        for (unsigned int b = 0; b < BITS_PER_LONG; b++) {
            unsigned int i = w * BITS_PER_LONG + b;

            if (i >= mc->pages_per_bucket) {
                break;
            }
            if (mc->errs[i] == 0) {
                bits |= 1UL << b;
            } else {
                bad++;
            }
        }
        __atomic_store_n(&e->valid[w], bits, __ATOMIC_RELAXED);
    }
    return bad;
}

static void mc_fill_gfns(MapCache *mc, uint64_t bucket)
{
    xen_pfn_t gfn = bucket << (mc->fast.bucket_shift - XR_PAGE_BITS);

    for (unsigned int i = 0; i < mc->pages_per_bucket; i++) {
        mc->gfns[i] = gfn + i;
    }
}

/*
 * Map @bucket (its frames, or anonymous memory if @dummy) into a new,
 * unpublished entry.  Under the mutex.
 */
static int mc_map_bucket(MapCache *mc, uint64_t bucket, bool dummy,
                         MapCacheEntry **out)
{
    MapCacheEntry *e = mc_entry_alloc(mc, bucket);
    void *a, *p;
    int ret = 0;

    if (!e) {
        return -ENOMEM;
    }
    a = mc_reserve_aligned(mc->fast.bucket_size);
    if (!a) {
        free(e);
        return -ENOMEM;
    }
    if (dummy) {
        p = mc_map_dummy(mc, a, false);
        if (!p) {
            munmap(a, mc->fast.bucket_size);
            free(e);
            return -ENOMEM;
        }
        memset(e->valid, 0xff, BITS_TO_LONGS(mc->pages_per_bucket) *
                               sizeof(unsigned long));
        e->flags = MAPCACHE_ENTRY_ALL_VALID | MAPCACHE_ENTRY_DUMMY;
    } else {
        mc_fill_gfns(mc, bucket);
        p = xen_map_at(mc->xh, a, mc->gfns, mc->pages_per_bucket,
                       mc->writable, mc->errs, &ret);
        if (!p) {
            /*
             * The library may have unmapped our reservation already and
             * someone else may own the range by now: leave it alone (at
             * worst a range of address space leaks, not memory).
             */
            mc->map_failures++;
            free(e);
            return ret;
        }
        if (mc_set_valid(mc, e) == 0) {
            e->flags = MAPCACHE_ENTRY_ALL_VALID;
        }
    }
    e->vaddr = p;
    *out = e;
    return 0;
}

/* Undo mc_map_bucket() for an entry nobody has seen. */
static void mc_unmap_unpublished(MapCache *mc, MapCacheEntry *e)
{
    if (e->flags & MAPCACHE_ENTRY_DUMMY) {
        munmap(e->vaddr, mc->fast.bucket_size);
    } else {
        xen_unmap(mc->xh, e->vaddr, mc->pages_per_bucket);
    }
    free(e);
}

static int mc_publish(MapCache *mc, MapCacheEntry *e)
{
    int ret = mc_radix_set(&mc->host_index, mc_host_key(mc, e->vaddr), e);

    if (ret == 0) {
        ret = mc_radix_set(&mc->fast.index, e->bucket, e);
        if (ret < 0) {
            mc_radix_set(&mc->host_index, mc_host_key(mc, e->vaddr), NULL);
        }
    }
    if (ret < 0) {
        return ret;
    }
    cds_list_add_tail(&e->link, &mc->entries);
    mc->nentries++;
    mc->live_bytes += mc->fast.bucket_size;
    return 0;
}

static void mc_entry_reclaim(struct rcu_head *head)
{
    MapCacheEntry *e = caa_container_of(head, MapCacheEntry, rcu);
    MapCache *mc;
    uint32_t flags;

    rcu_reclaim_begin();
    mc_tsan_takeover(e);
    mc = e->mc;
    flags = __atomic_load_n(&e->flags, __ATOMIC_RELAXED);
    if (flags & MC_ENTRY_GONE) {
        /* nothing mapped */
    } else if (flags & MAPCACHE_ENTRY_DUMMY) {
        munmap(e->vaddr, mc->fast.bucket_size);
    } else {
        xen_unmap(mc->xh, e->vaddr, mc->pages_per_bucket);
    }
    __atomic_sub_fetch(&mc->pending_bytes, mc->fast.bucket_size,
                       __ATOMIC_RELAXED);
    free(e);
    /* For mapcache_destroy(), which frees @mc after rcu_barrier(). */
    mc_tsan_handoff(mc);
}

/*
 * Drop @e (its lockcnt is DEAD): unpublish it and unmap it after a grace
 * period.  Under the mutex.
 */
static void mc_retire(MapCache *mc, MapCacheEntry *e)
{
    if (mc_lookup(mc, e->bucket) == e) {
        mc_radix_set(&mc->fast.index, e->bucket, NULL);
    }
    if (mapcache_radix_get_(&mc->host_index,
                            mc_host_key(mc, e->vaddr)) == e) {
        mc_radix_set(&mc->host_index, mc_host_key(mc, e->vaddr), NULL);
    }
    cds_list_del(&e->link);
    mc->nentries--;
    mc->live_bytes -= mc->fast.bucket_size;
    __atomic_add_fetch(&mc->pending_bytes, mc->fast.bucket_size,
                       __ATOMIC_RELAXED);
    mc_tsan_handoff(e);
    call_rcu(&e->rcu, mc_entry_reclaim);
}

/*
 * Take @e out of service: drop it, or if it is locked orphan it (new
 * lookups stop finding it; its last unlock drops it).  Under the mutex.
 */
static void mc_retire_or_orphan(MapCache *mc, MapCacheEntry *e)
{
    if (mc_try_kill(e)) {
        mc_retire(mc, e);
        return;
    }
    /*
     * Locked.  Publish "stale" before looking at the count again: an
     * unlock that brings it to 0 either sees stale and drops the entry
     * itself, or has already brought it to 0 and our second try drops it.
     */
    __atomic_store_n(&e->stale, 1, __ATOMIC_SEQ_CST);
    if (mc_lookup(mc, e->bucket) == e) {
        mc_radix_set(&mc->fast.index, e->bucket, NULL);
    }
    if (mc_try_kill(e)) {
        mc_retire(mc, e);
    }
}

/*
 * Make room for one more bucket under the cap: a CLOCK sweep over the
 * entries gives every recently used bucket a second chance and never
 * drops a locked (or orphaned) one.  Under the mutex.
 */
static int mc_make_room(MapCache *mc)
{
    while (mc->live_bytes + mc->fast.bucket_size > mc->max_bytes) {
        uint64_t budget = 2 * mc->nentries;
        bool evicted = false;

        while (budget-- && !cds_list_empty(&mc->entries)) {
            MapCacheEntry *e = cds_list_first_entry(&mc->entries,
                                                    MapCacheEntry, link);

            cds_list_del(&e->link);
            cds_list_add_tail(&e->link, &mc->entries);
            if (__atomic_load_n(&e->stale, __ATOMIC_RELAXED) ||
                __atomic_load_n(&e->lockcnt, __ATOMIC_RELAXED)) {
                continue;
            }
            if (__atomic_load_n(&e->referenced, __ATOMIC_RELAXED)) {
                __atomic_store_n(&e->referenced, 0, __ATOMIC_RELAXED);
                continue;
            }
            if (mc_try_kill(e)) {
                mc_retire(mc, e);
                mc->evictions++;
                evicted = true;
                break;
            }
        }
        if (!evicted) {
            return -ENOSPC;
        }
    }
    return 0;
}

/*
 * The published entry for @bucket with frames [first, last] mapped:
 * found (*@found: another thread mapped it meanwhile; the caller counts a
 * hit once it has dropped the mutex), or mapped now (a dummy while
 * incoming and the frames are not there).  NULL and -errno in *@ret.
 * Under the mutex.
 */
static MapCacheEntry *mc_fill(MapCache *mc, uint64_t bucket,
                              unsigned int first, unsigned int last, int *ret,
                              bool *found)
{
    MapCacheEntry *e = mc_lookup(mc, bucket);
    bool dummy = false;

    *found = false;
    if (e) {
        if (mc_range_valid(e, first, last)) {
            *ret = 0;
            *found = true;
            return e;
        }
        /* Frames that failed before may be populated by now: map again. */
        mc_retire_or_orphan(mc, e);
    }
    mc->misses++;
    *ret = mc_make_room(mc);
    if (*ret < 0) {
        return NULL;
    }
    *ret = mc_map_bucket(mc, bucket, false, &e);
    if (mc->incoming) {
        if (*ret == 0 && !mc_range_valid(e, first, last)) {
            mc_unmap_unpublished(mc, e);
            *ret = -EFAULT;
        }
        if (*ret < 0) {
            dummy = true;
            *ret = mc_map_bucket(mc, bucket, true, &e);
        }
    }
    if (*ret < 0) {
        return NULL;
    }
    *ret = mc_publish(mc, e);
    if (*ret < 0) {
        mc_unmap_unpublished(mc, e);
        return NULL;
    }
    if (!dummy && !mc_range_valid(e, first, last)) {
        *ret = -EFAULT;
        return NULL;
    }
    return e;
}

/* ---- lookups ------------------------------------------------------------------------ */

void *mapcache_get_slow(MapCache *mc, uint64_t gpa, uint64_t len, int *status)
{
    uint64_t size = mc->fast.bucket_size;
    uint64_t off = gpa & (size - 1);
    uint64_t bucket = gpa >> mc->fast.bucket_shift;
    unsigned int first, last;
    MapCacheEntry *e;
    bool found;
    int ret;

    if (len == 0) {
        len = 1;
    }
    if (len > size - off || (gpa >> MAPCACHE_GPA_BITS)) {
        ret = -EINVAL;
        goto fail;
    }
    first = off >> XR_PAGE_BITS;
    last = (off + len - 1) >> XR_PAGE_BITS;
    e = mc_lookup(mc, bucket);
    if (e && mc_range_valid(e, first, last)) {
        mapcache_touch_(e);
        mapcache_count_hit_(mc);
        return e->vaddr + off;
    }
    pthread_mutex_lock(&mc->lock);
    e = mc_fill(mc, bucket, first, last, &ret, &found);
    pthread_mutex_unlock(&mc->lock);
    if (e) {
        if (found) {
            mapcache_count_hit_(mc);
        }
        return e->vaddr + off;
    }
fail:
    if (status) {
        *status = ret;
    }
    return NULL;
}

void *mapcache_map(MapCache *mc, uint64_t gpa, uint64_t *len, int *status)
{
    uint64_t size = mc->fast.bucket_size;
    uint64_t off = gpa & (size - 1);
    uint64_t bucket = gpa >> mc->fast.bucket_shift;
    uint64_t want = MIN(*len, size - off);
    unsigned int first = off >> XR_PAGE_BITS, last, n;
    MapCacheEntry *e;
    bool found = true;
    int ret = 0;

    if (*len == 0 || (gpa >> MAPCACHE_GPA_BITS)) {
        ret = -EINVAL;
        goto fail;
    }
    last = (off + want - 1) >> XR_PAGE_BITS;

    rcu_read_lock();
    e = mc_lookup(mc, bucket);
    if (e && mc_page_valid(e, first) && mc_trylock(e)) {
        if (unlikely(__atomic_load_n(&e->stale, __ATOMIC_SEQ_CST))) {
            /* Invalidated under our feet: do not hand out old frames. */
            mapcache_unlock(mc, e->vaddr);
            e = NULL;
        }
    } else {
        e = NULL;
    }
    if (e) {
        mapcache_touch_(e);
    } else {
        pthread_mutex_lock(&mc->lock);
        e = mc_fill(mc, bucket, first, first, &ret, &found);
        /* Cannot fail: only the mutex holder makes an entry DEAD. */
        if (e && !mc_trylock(e)) {
            e = NULL;
            ret = -EAGAIN;
        }
        pthread_mutex_unlock(&mc->lock);
    }
    if (!e) {
        rcu_read_unlock();
        goto fail;
    }
    if (found) {
        mapcache_count_hit_(mc);
    }
    for (n = first + 1; n <= last && mc_page_valid(e, n); n++) {
        /* the run of good frames */
    }
    *len = MIN(want, ((uint64_t)n << XR_PAGE_BITS) - off);
    rcu_read_unlock();
    return e->vaddr + off;

fail:
    if (status) {
        *status = ret;
    }
    return NULL;
}

int mapcache_unlock(MapCache *mc, void *ptr)
{
    MapCacheEntry *e;
    uint32_t c;
    int ret = 0;

    rcu_read_lock();
    e = mapcache_radix_get_(&mc->host_index, mc_host_key(mc, ptr));
    if (!e) {
        ret = -ENOENT;
        goto out;
    }
    c = __atomic_load_n(&e->lockcnt, __ATOMIC_RELAXED);
    do {
        if (c == 0 || (c & MAPCACHE_LOCK_DEAD)) {
            ret = -EINVAL;
            goto out;
        }
    } while (!__atomic_compare_exchange_n(&e->lockcnt, &c, c - 1, true,
                                          __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
    if (c == 1 && __atomic_load_n(&e->stale, __ATOMIC_SEQ_CST)) {
        /* The last holder of an invalidated bucket: drop it now. */
        pthread_mutex_lock(&mc->lock);
        if (mc_try_kill(e)) {
            mc_retire(mc, e);
        }
        pthread_mutex_unlock(&mc->lock);
    }
out:
    rcu_read_unlock();
    return ret;
}

int mapcache_reverse(MapCache *mc, const void *ptr, uint64_t *gpa)
{
    MapCacheEntry *e;
    int ret = -ENOENT;

    rcu_read_lock();
    e = mapcache_radix_get_(&mc->host_index, mc_host_key(mc, ptr));
    if (e) {
        *gpa = (e->bucket << mc->fast.bucket_shift) +
               (uint64_t)((const uint8_t *)ptr - e->vaddr);
        ret = 0;
    }
    rcu_read_unlock();
    return ret;
}

/* ---- invalidation, incoming migration ------------------------------------------------ */

uint64_t mapcache_invalidate_range(MapCache *mc, uint64_t gpa, uint64_t len)
{
    uint64_t first, last, n = 0;
    MapCacheEntry *e, *tmp;

    if (len == 0) {
        return 0;
    }
    first = gpa >> mc->fast.bucket_shift;
    last = (gpa + len - 1 < gpa ? UINT64_MAX : gpa + len - 1) >>
           mc->fast.bucket_shift;
    pthread_mutex_lock(&mc->lock);
    cds_list_for_each_entry_safe(e, tmp, &mc->entries, link) {
        if (e->bucket < first || e->bucket > last ||
            __atomic_load_n(&e->stale, __ATOMIC_RELAXED)) {
            continue;
        }
        mc_retire_or_orphan(mc, e);
        n++;
    }
    mc->invalidations++;
    mc->invalidated += n;
    pthread_mutex_unlock(&mc->lock);
    return n;
}

void mapcache_invalidate(MapCache *mc)
{
    mapcache_invalidate_range(mc, 0, UINT64_MAX);
}

void mapcache_set_incoming(MapCache *mc, bool incoming)
{
    pthread_mutex_lock(&mc->lock);
    mc->incoming = incoming;
    pthread_mutex_unlock(&mc->lock);
}

/* Replace one dummy by its frames, in place.  Under the mutex. */
static int mc_replace_dummy(MapCache *mc, MapCacheEntry *e)
{
    unsigned int bad;
    void *p;
    int ret;

    mc_fill_gfns(mc, e->bucket);
    p = xen_map_at(mc->xh, e->vaddr, mc->gfns, mc->pages_per_bucket,
                   mc->writable, mc->errs, &ret);
    if (!p) {
        mc->map_failures++;
        /*
         * The range may have been unmapped by the failed call: put a
         * stand-in back so that the host pointers stay usable.  EEXIST
         * means the old dummy is still there.
         */
        if (!mc_map_dummy(mc, e->vaddr, true) && errno != EEXIST) {
            /* Lost the range: nothing may use this entry any more. */
            __atomic_store_n(&e->flags, MC_ENTRY_GONE, __ATOMIC_RELAXED);
            memset(e->valid, 0, BITS_TO_LONGS(mc->pages_per_bucket) *
                                sizeof(unsigned long));
            mc_retire_or_orphan(mc, e);
        }
        return ret;
    }
    /* Clear "all valid" before the bits, so readers fall back to them. */
    __atomic_store_n(&e->flags, 0, __ATOMIC_RELEASE);
    bad = mc_set_valid(mc, e);
    if (bad == 0) {
        __atomic_store_n(&e->flags, MAPCACHE_ENTRY_ALL_VALID,
                         __ATOMIC_RELEASE);
    }
    return 0;
}

int mapcache_replace_dummies(MapCache *mc)
{
    MapCacheEntry *e, *tmp;
    int first_err = 0, n = 0, ret;

    pthread_mutex_lock(&mc->lock);
    cds_list_for_each_entry_safe(e, tmp, &mc->entries, link) {
        if (!(__atomic_load_n(&e->flags, __ATOMIC_RELAXED) &
              MAPCACHE_ENTRY_DUMMY)) {
            continue;
        }
        ret = mc_replace_dummy(mc, e);
        if (ret < 0) {
            if (!first_err) {
                first_err = ret;
            }
        } else {
            n++;
        }
    }
    pthread_mutex_unlock(&mc->lock);
    return first_err ? first_err : n;
}

/* ---- life cycle, statistics ------------------------------------------------------------ */

int mapcache_new(XenHandles *xh, const MapCacheConfig *cfg, MapCache **out)
{
    MapCacheConfig def = { 0 };
    unsigned int shift;
    uint64_t size, max;
    MapCache *mc;

    *out = NULL;
    if (!cfg) {
        cfg = &def;
    }
    shift = cfg->bucket_shift ? cfg->bucket_shift
                              : MAPCACHE_DEFAULT_BUCKET_SHIFT;
    if (shift < MAPCACHE_MIN_BUCKET_SHIFT ||
        shift > MAPCACHE_MAX_BUCKET_SHIFT) {
        return -EINVAL;
    }
    size = (uint64_t)1 << shift;
    max = cfg->max_bytes ? cfg->max_bytes : MAPCACHE_DEFAULT_MAX_BYTES;
    max &= ~(size - 1);
    if (max < size) {
        return -EINVAL;
    }

    /* Cache-line aligned: the fast path's fields share one line. */
    mc = aligned_alloc(64, ROUND_UP(sizeof(*mc), 64));
    if (!mc) {
        return -ENOMEM;
    }
    memset(mc, 0, sizeof(*mc));
    mc->fast.bucket_shift = shift;
    mc->fast.bucket_size = size;
    mc->xh = xh;
    mc->writable = !cfg->read_only;
    mc->pages_per_bucket = size >> XR_PAGE_BITS;
    mc->max_bytes = max;
    CDS_INIT_LIST_HEAD(&mc->entries);
    pthread_mutex_init(&mc->lock, NULL);
    mc->gfns = calloc(mc->pages_per_bucket, sizeof(*mc->gfns));
    mc->errs = calloc(mc->pages_per_bucket, sizeof(*mc->errs));
    if (!mc->gfns || !mc->errs ||
        mc_radix_init(&mc->fast.index, MAPCACHE_GPA_BITS - shift) < 0 ||
        mc_radix_init(&mc->host_index, MC_HOST_BITS - shift) < 0) {
        mc_radix_free(&mc->fast.index);
        mc_radix_free(&mc->host_index);
        free(mc->gfns);
        free(mc->errs);
        pthread_mutex_destroy(&mc->lock);
        free(mc);
        return -ENOMEM;
    }

    pthread_mutex_lock(&mc_registry_lock);
    mc->fast.id = mc_next_id++;
    cds_list_add(&mc->registry_link, &mc_registry);
    pthread_mutex_unlock(&mc_registry_lock);
    *out = mc;
    return 0;
}

void mapcache_destroy(MapCache *mc)
{
    MapCacheEntry *e, *tmp;
    MapCacheThreadStats *st, *next;

    if (!mc) {
        return;
    }
    /* From now on no exiting thread touches our counter blocks. */
    pthread_mutex_lock(&mc_registry_lock);
    cds_list_del(&mc->registry_link);
    pthread_mutex_unlock(&mc_registry_lock);

    pthread_mutex_lock(&mc->lock);
    cds_list_for_each_entry_safe(e, tmp, &mc->entries, link) {
        __atomic_store_n(&e->lockcnt, MAPCACHE_LOCK_DEAD, __ATOMIC_RELAXED);
        mc_retire(mc, e);
    }
    pthread_mutex_unlock(&mc->lock);
    /* Every unmap queued above (and earlier) has run after this. */
    rcu_barrier();
    mc_tsan_takeover(mc);

    for (st = mc->thread_stats; st; st = next) {
        next = st->next;
        free(st);
    }
    if (mapcache_tls.id == mc->fast.id) {
        mapcache_tls.id = 0;
        mapcache_tls.st = NULL;
    }
    mc_radix_free(&mc->fast.index);
    mc_radix_free(&mc->host_index);
    free(mc->gfns);
    free(mc->errs);
    pthread_mutex_destroy(&mc->lock);
    free(mc);
}

uint64_t mapcache_bucket_size(const MapCache *mc)
{
    return mc->fast.bucket_size;
}

uint64_t mapcache_range_locks(MapCache *mc, uint64_t gpa, uint64_t len)
{
    unsigned int shift = mc->fast.bucket_shift;
    uint64_t first, last, locks = 0;
    MapCacheEntry *e;

    if (len == 0) {
        return 0;
    }
    first = gpa >> shift;
    last = (gpa + len - 1) >> shift;
    pthread_mutex_lock(&mc->lock);
    /* The list holds orphaned entries too, which the index no longer has. */
    cds_list_for_each_entry(e, &mc->entries, link) {
        uint32_t c = __atomic_load_n(&e->lockcnt, __ATOMIC_ACQUIRE);

        if (e->bucket >= first && e->bucket <= last &&
            !(c & MAPCACHE_LOCK_DEAD)) {
            locks += c;
        }
    }
    pthread_mutex_unlock(&mc->lock);
    return locks;
}

void mapcache_get_stats(MapCache *mc, MapCacheStats *st)
{
    MapCacheThreadStats *ts;
    MapCacheEntry *e;

    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&mc->lock);
    for (ts = mc->thread_stats; ts; ts = ts->next) {
        st->hits += __atomic_load_n(&ts->hits, __ATOMIC_RELAXED);
    }
    cds_list_for_each_entry(e, &mc->entries, link) {
        uint32_t c = __atomic_load_n(&e->lockcnt, __ATOMIC_RELAXED);

        if (c && !(c & MAPCACHE_LOCK_DEAD)) {
            st->locked_buckets++;
            st->locks += c;
        }
        if (__atomic_load_n(&e->flags, __ATOMIC_RELAXED) &
            MAPCACHE_ENTRY_DUMMY) {
            st->dummy_buckets++;
        }
    }
    st->misses = mc->misses;
    st->map_failures = mc->map_failures;
    st->mapped_bytes = mc->live_bytes;
    st->max_bytes = mc->max_bytes;
    st->pending_bytes = __atomic_load_n(&mc->pending_bytes, __ATOMIC_RELAXED);
    st->buckets = mc->nentries;
    st->invalidations = mc->invalidations;
    st->invalidated_buckets = mc->invalidated;
    st->evictions = mc->evictions;
    pthread_mutex_unlock(&mc->lock);
}
