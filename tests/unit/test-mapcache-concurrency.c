/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-mapcache-concurrency.c - readers, DMA users, invalidation and
 * eviction at the same time (also run under ThreadSanitizer).
 *
 * The fake guest (tests/unit/xen-fake.c) holds a pattern: the 8 bytes at
 * gpa g (g a multiple of 8) hold g ^ MAGIC.  Every read through the
 * mapcache checks it, so a pointer into a wrong, stale or unmapped bucket
 * shows up as a wrong value or a crash.  Threads agree on progress through
 * atomic counters, never through sleeps.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "memory/mapcache.h"
#include "tests/unit/xen-fake.h"

#define MiB ((uint64_t)1 << 20)
#define GUEST_BYTES (32 * MiB)
#define MAGIC 0x5a5aa5a5deadbeefULL

#ifdef XR_TSAN
#define READS 20000
#define MIN_INVALIDATIONS 50
#else
#define READS 50000
#define MIN_INVALIDATIONS 500
#endif
#define READERS 3

typedef struct Shared {
    MapCache *mc;
    uint64_t invalidations;     /* atomic: done so far */
    uint64_t readers_done;      /* atomic */
    uint64_t bad;               /* atomic: wrong values or errors */
    uint64_t reads;             /* atomic */
    bool use_range;
} Shared;

static XenHandles *xh;

static int setup(void **state)
{
    uint64_t *g;

    rcu_register_thread();
    xen_set_error_log(NULL);
    assert_int_equal(fake_xen_init(GUEST_BYTES / XR_PAGE_SIZE), 0);
    g = (uint64_t *)fake_guest();
    for (uint64_t i = 0; i < GUEST_BYTES / 8; i++) {
        g[i] = (i * 8) ^ MAGIC;
    }
    xh = fake_xen_open();
    assert_non_null(xh);
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    xen_close(xh);
    fake_xen_fini();
    rcu_unregister_thread();
    return 0;
}

static uint64_t next_rand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 17;
}

static void count_bad(Shared *sh)
{
    __atomic_add_fetch(&sh->bad, 1, __ATOMIC_RELAXED);
}

/* Unlocked lookups of random words, each checked against the pattern. */
static void *reader(void *arg)
{
    Shared *sh = arg;
    uint64_t seed = (uintptr_t)&seed;

    rcu_register_thread();
    for (int i = 0; i < READS ||
         __atomic_load_n(&sh->invalidations, __ATOMIC_ACQUIRE) <
         MIN_INVALIDATIONS; i++) {
        uint64_t gpa = (next_rand(&seed) % (GUEST_BYTES / 8)) * 8, v;
        int err = 0;
        uint8_t *p;

        rcu_read_lock();
        p = mapcache_get(sh->mc, gpa, 8, &err);
        if (p) {
            memcpy(&v, p, 8);
            if (v != (gpa ^ MAGIC)) {
                count_bad(sh);
            }
        } else {
            count_bad(sh);
        }
        rcu_read_unlock();
        __atomic_add_fetch(&sh->reads, 1, __ATOMIC_RELAXED);
    }
    __atomic_add_fetch(&sh->readers_done, 1, __ATOMIC_RELEASE);
    rcu_unregister_thread();
    return NULL;
}

/*
 * A DMA user: lock a page, keep reading it across at least two
 * invalidations, check the whole page, unlock; repeat.
 */
static void *dma_user(void *arg)
{
    Shared *sh = arg;
    uint64_t seed = 12345;

    rcu_register_thread();
    while (__atomic_load_n(&sh->readers_done, __ATOMIC_ACQUIRE) < READERS) {
        uint64_t gpa = (next_rand(&seed) % (GUEST_BYTES / 4096)) * 4096;
        uint64_t len = 4096, start, v;
        int err = 0;
        uint8_t *p = mapcache_map(sh->mc, gpa, &len, &err);

        if (!p || len != 4096) {
            count_bad(sh);
            break;
        }
        start = __atomic_load_n(&sh->invalidations, __ATOMIC_ACQUIRE);
        while (__atomic_load_n(&sh->invalidations, __ATOMIC_ACQUIRE) <
               start + 2 &&
               __atomic_load_n(&sh->readers_done, __ATOMIC_ACQUIRE) <
               READERS) {
            memcpy(&v, p + 8, 8);
            if (v != ((gpa + 8) ^ MAGIC)) {
                count_bad(sh);
            }
        }
        for (uint64_t off = 0; off < 4096; off += 8) {
            memcpy(&v, p + off, 8);
            if (v != ((gpa + off) ^ MAGIC)) {
                count_bad(sh);
            }
        }
        if (mapcache_unlock(sh->mc, p) != 0) {
            count_bad(sh);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

/* Invalidate (everything, or a random range) until the readers are done. */
static void *invalidator(void *arg)
{
    Shared *sh = arg;
    uint64_t seed = 99;

    rcu_register_thread();
    while (__atomic_load_n(&sh->readers_done, __ATOMIC_ACQUIRE) < READERS) {
        if (sh->use_range) {
            uint64_t gpa = next_rand(&seed) % GUEST_BYTES;

            mapcache_invalidate_range(sh->mc, gpa, 4 * MiB);
        } else {
            mapcache_invalidate(sh->mc);
        }
        __atomic_add_fetch(&sh->invalidations, 1, __ATOMIC_RELEASE);
    }
    rcu_unregister_thread();
    return NULL;
}

/* Run the threads, check, and leave the final counters in *@out. */
static void run(Shared *sh, bool with_dma, MapCacheStats *out)
{
    pthread_t r[READERS], inv, dma;
    MapCacheStats st;

    for (int i = 0; i < READERS; i++) {
        pthread_create(&r[i], NULL, reader, sh);
    }
    if (with_dma) {
        pthread_create(&dma, NULL, dma_user, sh);
    }
    pthread_create(&inv, NULL, invalidator, sh);
    for (int i = 0; i < READERS; i++) {
        pthread_join(r[i], NULL);
    }
    pthread_join(inv, NULL);
    if (with_dma) {
        pthread_join(dma, NULL);
    }

    assert_int_equal(sh->bad, 0);
    assert_true(sh->invalidations >= MIN_INVALIDATIONS);
    mapcache_get_stats(sh->mc, &st);
    assert_int_equal(st.locks, 0);
    assert_true(st.mapped_bytes <= st.max_bytes);
    /* Every read is a hit or a miss (DMA maps are counted too). */
    assert_true(st.hits + st.misses >= sh->reads);
    if (out) {
        *out = st;
    }

    /* Everything dropped is unmapped once the grace periods are over. */
    rcu_barrier();
    assert_int_equal(fake_mapped_pages() * XR_PAGE_SIZE, st.mapped_bytes);
    mapcache_destroy(sh->mc);
    assert_int_equal(fake_mapped_pages(), 0);
}

static void test_readers_see_guest_data_while_everything_is_invalidated(
    void **state)
{
    Shared sh = { 0 };

    (void)state;
    assert_int_equal(mapcache_new(xh, NULL, &sh.mc), 0);
    run(&sh, false, NULL);
}

static void test_readers_see_guest_data_while_ranges_are_invalidated(
    void **state)
{
    Shared sh = { .use_range = true };

    (void)state;
    assert_int_equal(mapcache_new(xh, NULL, &sh.mc), 0);
    run(&sh, false, NULL);
}

static void test_dma_mappings_stay_valid_across_invalidations(void **state)
{
    Shared sh = { 0 };

    (void)state;
    assert_int_equal(mapcache_new(xh, NULL, &sh.mc), 0);
    run(&sh, true, NULL);
}

static void test_readers_and_dma_under_a_small_cap_with_eviction(
    void **state)
{
    /* 8 buckets of 256 KiB for a 32 MiB guest: most misses evict. */
    MapCacheConfig cfg = { .bucket_shift = 18, .max_bytes = 2 * MiB };
    Shared sh = { .use_range = true };
    MapCacheStats st;

    (void)state;
    assert_int_equal(mapcache_new(xh, &cfg, &sh.mc), 0);
    run(&sh, true, &st);
    assert_true(st.evictions > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_readers_see_guest_data_while_everything_is_invalidated,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_readers_see_guest_data_while_ranges_are_invalidated,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dma_mappings_stay_valid_across_invalidations,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_readers_and_dma_under_a_small_cap_with_eviction,
            setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
