/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-mapcache.c - the contract of memory/mapcache.h.
 *
 * The real xen/xen.c runs over a one-domain fake of the Xen calls
 * (tests/unit/xen-fake.c): a 64 MiB guest whose frames live in a memfd, so
 * what the guest "writes" through fake_guest() is what the mapcache must
 * show, and a frame that is not populated is refused by the fake's map
 * and would crash the test if the mapcache let anyone touch it.  Buckets
 * are 1 MiB (256 frames) unless a test says otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "memory/mapcache.h"
#include "tests/unit/xen-fake.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define PAGE XR_PAGE_SIZE
#define GUEST_PAGES ((64 * MiB) / PAGE)
#define BUCKET MiB

typedef struct Fixture {
    XenHandles *xh;
    MapCache *mc;
} Fixture;

static int setup_cfg(void **state, const MapCacheConfig *cfg)
{
    Fixture *f = calloc(1, sizeof(*f));

    rcu_register_thread();
    xen_set_error_log(NULL);
    assert_int_equal(fake_xen_init(GUEST_PAGES), 0);
    f->xh = fake_xen_open();
    assert_non_null(f->xh);
    assert_int_equal(mapcache_new(f->xh, cfg, &f->mc), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_cfg(state, NULL);
}

/* A cap of three buckets. */
static int setup_cap3(void **state)
{
    MapCacheConfig cfg = { .max_bytes = 3 * BUCKET };

    return setup_cfg(state, &cfg);
}

/* A cap of two buckets. */
static int setup_cap2(void **state)
{
    MapCacheConfig cfg = { .max_bytes = 2 * BUCKET };

    return setup_cfg(state, &cfg);
}

static int teardown(void **state)
{
    Fixture *f = *state;

    mapcache_destroy(f->mc);
    assert_int_equal(fake_mapped_pages(), 0);
    xen_close(f->xh);
    fake_xen_fini();
    rcu_unregister_thread();
    free(f);
    return 0;
}

static MapCacheStats stats(Fixture *f)
{
    MapCacheStats st;

    mapcache_get_stats(f->mc, &st);
    return st;
}

/* mapcache_get() inside its own read-side critical section, read 8 bytes. */
static int get_u64(Fixture *f, uint64_t gpa, uint64_t *val)
{
    int err = 0;
    uint8_t *p;

    rcu_read_lock();
    p = mapcache_get(f->mc, gpa, 8, &err);
    if (p) {
        memcpy(val, p, 8);
    }
    rcu_read_unlock();
    return p ? 0 : err;
}

static void guest_put_u64(uint64_t gpa, uint64_t v)
{
    memcpy(fake_guest() + gpa, &v, 8);
}

/* ---- hits and misses --------------------------------------------------- */

static void test_first_access_maps_bucket_second_hits(void **state)
{
    Fixture *f = *state;
    uint8_t *p1, *p2;
    int err = 0;

    rcu_read_lock();
    p1 = mapcache_get(f->mc, 0x1000, 8, &err);
    p2 = mapcache_get(f->mc, 0x3008, 8, &err);
    rcu_read_unlock();

    assert_non_null(p1);
    assert_ptr_equal(p2, p1 + 0x2008);
    assert_int_equal(fake_map_calls(), 1);
    assert_int_equal(stats(f).misses, 1);
    assert_int_equal(stats(f).hits, 1);
    assert_int_equal(stats(f).buckets, 1);
    assert_int_equal(stats(f).mapped_bytes, BUCKET);
}

static void test_reads_show_guest_memory_and_writes_reach_it(void **state)
{
    Fixture *f = *state;
    uint64_t v = 0, w = 0x1122334455667788ULL;
    uint8_t *p;

    guest_put_u64(5 * MiB + 0x40, 0xfeedfacecafebeefULL);
    assert_int_equal(get_u64(f, 5 * MiB + 0x40, &v), 0);
    assert_int_equal(v, 0xfeedfacecafebeefULL);

    rcu_read_lock();
    p = mapcache_get(f->mc, 5 * MiB + 0x80, 8, NULL);
    assert_non_null(p);
    memcpy(p, &w, 8);
    rcu_read_unlock();
    assert_memory_equal(fake_guest() + 5 * MiB + 0x80, &w, 8);
}

static void test_each_bucket_is_mapped_separately(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    assert_int_equal(get_u64(f, 0, &v), 0);
    assert_int_equal(get_u64(f, BUCKET, &v), 0);
    assert_int_equal(get_u64(f, 7 * BUCKET + 8, &v), 0);
    assert_int_equal(fake_map_calls(), 3);
    assert_int_equal(stats(f).buckets, 3);
}

/* ---- bucket boundaries and arguments -------------------------------------- */

static void test_access_crossing_a_bucket_boundary_is_refused(void **state)
{
    Fixture *f = *state;
    int err = 0;
    void *p;

    rcu_read_lock();
    p = mapcache_get(f->mc, BUCKET - 4, 8, &err);
    assert_null(p);
    assert_int_equal(err, -EINVAL);
    /* The last bytes of a bucket and the first of the next are fine. */
    assert_non_null(mapcache_get(f->mc, BUCKET - 8, 8, &err));
    assert_non_null(mapcache_get(f->mc, BUCKET, 8, &err));
    /* A whole bucket at once is fine too. */
    assert_non_null(mapcache_get(f->mc, 2 * BUCKET, BUCKET, &err));
    rcu_read_unlock();
}

static void test_zero_length_access_counts_as_one_byte(void **state)
{
    Fixture *f = *state;
    void *p;

    rcu_read_lock();
    p = mapcache_get(f->mc, BUCKET - 1, 0, NULL);
    rcu_read_unlock();
    assert_non_null(p);
}

static void test_address_beyond_52_bits_is_refused(void **state)
{
    Fixture *f = *state;
    uint64_t len = 8;
    int err = 0;
    void *p;

    rcu_read_lock();
    p = mapcache_get(f->mc, (uint64_t)1 << 52, 8, &err);
    rcu_read_unlock();
    assert_null(p);
    assert_int_equal(err, -EINVAL);
    assert_null(mapcache_map(f->mc, (uint64_t)1 << 60, &len, &err));
    assert_int_equal(err, -EINVAL);
    assert_int_equal(fake_map_calls(), 0);
}

static void test_frames_beyond_guest_memory_are_refused(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    assert_int_equal(get_u64(f, GUEST_PAGES * PAGE + 0x10, &v), -EFAULT);
}

/* ---- partial mappings ------------------------------------------------------- */

static void test_partial_map_refuses_only_the_bad_frames(void **state)
{
    Fixture *f = *state;
    uint64_t v;
    int err = 0;

    fake_set_populated(3, 2, false);            /* frames 3 and 4 */
    guest_put_u64(2 * PAGE, 22);
    guest_put_u64(5 * PAGE, 55);

    assert_int_equal(get_u64(f, 2 * PAGE, &v), 0);
    assert_int_equal(v, 22);
    assert_int_equal(get_u64(f, 3 * PAGE, &v), -EFAULT);
    assert_int_equal(get_u64(f, 4 * PAGE + 100, &v), -EFAULT);
    assert_int_equal(get_u64(f, 5 * PAGE, &v), 0);
    assert_int_equal(v, 55);
    /* A range that reaches into a bad frame is refused as a whole. */
    rcu_read_lock();
    assert_null(mapcache_get(f->mc, 3 * PAGE - 4, 8, &err));
    rcu_read_unlock();
    assert_int_equal(err, -EFAULT);
}

static void test_bad_frame_is_mapped_once_populated(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    fake_set_populated(3, 1, false);
    assert_int_equal(get_u64(f, 3 * PAGE, &v), -EFAULT);

    fake_set_populated(3, 1, true);
    guest_put_u64(3 * PAGE, 33);
    assert_int_equal(get_u64(f, 3 * PAGE, &v), 0);
    assert_int_equal(v, 33);
    assert_int_equal(stats(f).buckets, 1);
}

static void test_failed_map_returns_xen_error_and_message(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    fake_fail_maps(ENOMEM, 1);
    assert_int_equal(get_u64(f, 0, &v), -ENOMEM);
    assert_non_null(strstr(xen_last_error(),
                           "xenforeignmemory_map2(domid 7, gfn 0x0, 256 "
                           "pages): Cannot allocate memory"));
    assert_int_equal(stats(f).map_failures, 1);
    assert_int_equal(stats(f).buckets, 0);

    /* Nothing sticks: the next access maps normally. */
    assert_int_equal(get_u64(f, 0, &v), 0);
}

/* ---- locked mappings (DMA) -------------------------------------------------- */

static void test_map_takes_a_lock_and_unlock_drops_it(void **state)
{
    Fixture *f = *state;
    uint64_t len = 4096, len2 = 8;
    uint8_t *p, *q;

    p = mapcache_map(f->mc, 0x10000, &len, NULL);
    assert_non_null(p);
    assert_int_equal(len, 4096);
    q = mapcache_map(f->mc, 0x10010, &len2, NULL);
    assert_ptr_equal(q, p + 0x10);
    assert_int_equal(stats(f).locks, 2);
    assert_int_equal(stats(f).locked_buckets, 1);

    assert_int_equal(mapcache_unlock(f->mc, q), 0);
    assert_int_equal(mapcache_unlock(f->mc, p), 0);
    assert_int_equal(stats(f).locks, 0);
    assert_int_equal(stats(f).locked_buckets, 0);
}

static void test_unlock_of_an_unlocked_bucket_is_einval(void **state)
{
    Fixture *f = *state;
    uint8_t *p;

    rcu_read_lock();
    p = mapcache_get(f->mc, 0, 8, NULL);
    rcu_read_unlock();
    assert_int_equal(mapcache_unlock(f->mc, p), -EINVAL);
}

static void test_unlock_of_a_foreign_pointer_is_enoent(void **state)
{
    Fixture *f = *state;
    int local = 0;

    assert_int_equal(mapcache_unlock(f->mc, &local), -ENOENT);
}

static void test_map_length_stops_at_the_bucket_end(void **state)
{
    Fixture *f = *state;
    uint64_t len = 64 * KiB;
    void *p = mapcache_map(f->mc, BUCKET - 8 * KiB, &len, NULL);

    assert_non_null(p);
    assert_int_equal(len, 8 * KiB);
    assert_int_equal(mapcache_unlock(f->mc, p), 0);
}

static void test_map_length_stops_before_a_bad_frame(void **state)
{
    Fixture *f = *state;
    uint64_t len = 16 * KiB;
    void *p;

    fake_set_populated(5, 1, false);
    p = mapcache_map(f->mc, 2 * PAGE + 0x100, &len, NULL);
    assert_non_null(p);
    assert_int_equal(len, 3 * PAGE - 0x100);     /* frames 2, 3, 4 */
    assert_int_equal(mapcache_unlock(f->mc, p), 0);
}

static void test_map_of_a_bad_first_frame_is_efault(void **state)
{
    Fixture *f = *state;
    uint64_t len = PAGE;
    int err = 0;

    fake_set_populated(5, 1, false);
    assert_null(mapcache_map(f->mc, 5 * PAGE, &len, &err));
    assert_int_equal(err, -EFAULT);
    assert_int_equal(stats(f).locks, 0);
}

static void test_map_of_zero_bytes_is_einval(void **state)
{
    Fixture *f = *state;
    uint64_t len = 0;
    int err = 0;

    assert_null(mapcache_map(f->mc, 0, &len, &err));
    assert_int_equal(err, -EINVAL);
}

/* ---- invalidation ------------------------------------------------------------- */

static void test_invalidate_drops_every_unlocked_bucket(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    for (uint64_t b = 0; b < 4; b++) {
        assert_int_equal(get_u64(f, b * BUCKET, &v), 0);
    }
    mapcache_invalidate(f->mc);
    assert_int_equal(stats(f).buckets, 0);
    assert_int_equal(stats(f).invalidations, 1);
    assert_int_equal(stats(f).invalidated_buckets, 4);

    rcu_barrier();              /* the unmaps run after a grace period */
    assert_int_equal(fake_unmap_calls(), 4);
    assert_int_equal(fake_mapped_pages(), 0);

    /* The next access maps afresh. */
    assert_int_equal(get_u64(f, 0, &v), 0);
    assert_int_equal(stats(f).misses, 5);
}

static void test_invalidate_inside_a_reader_keeps_its_pointer_valid(void **state)
{
    Fixture *f = *state;
    uint64_t v;
    uint8_t *p;

    guest_put_u64(0x2000, 77);
    rcu_read_lock();
    p = mapcache_get(f->mc, 0x2000, 8, NULL);
    assert_non_null(p);
    mapcache_invalidate(f->mc);         /* must not wait for us */
    memcpy(&v, p, 8);
    assert_int_equal(v, 77);
    assert_int_equal(fake_unmap_calls(), 0);
    rcu_read_unlock();

    rcu_barrier();
    assert_int_equal(fake_unmap_calls(), 1);
}

static void test_invalidate_keeps_a_locked_bucket_until_unlock(void **state)
{
    Fixture *f = *state;
    uint64_t len = 8, v, gpa = 0;
    uint8_t *p, *fresh;

    guest_put_u64(0x3000, 99);
    p = mapcache_map(f->mc, 0x3000, &len, NULL);
    assert_non_null(p);

    mapcache_invalidate(f->mc);
    rcu_barrier();
    assert_int_equal(fake_unmap_calls(), 0);
    memcpy(&v, p, 8);
    assert_int_equal(v, 99);
    assert_int_equal(mapcache_reverse(f->mc, p, &gpa), 0);
    assert_int_equal(gpa, 0x3000);

    /* New lookups do not get the old mapping. */
    rcu_read_lock();
    fresh = mapcache_get(f->mc, 0x3000, 8, NULL);
    rcu_read_unlock();
    assert_non_null(fresh);
    assert_ptr_not_equal(fresh, p);

    assert_int_equal(mapcache_unlock(f->mc, p), 0);
    rcu_barrier();
    assert_int_equal(fake_unmap_calls(), 1);
    assert_int_equal(stats(f).buckets, 1);
}

static void test_range_locks_count_locked_and_orphaned_buckets(void **state)
{
    Fixture *f = *state;
    uint64_t len = 8, len2 = 8;
    uint8_t *p, *q;

    assert_int_equal(mapcache_range_locks(f->mc, 0, 4 * BUCKET), 0);
    p = mapcache_map(f->mc, BUCKET + 0x3000, &len, NULL);
    q = mapcache_map(f->mc, BUCKET + 0x5000, &len2, NULL);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal(mapcache_range_locks(f->mc, BUCKET, BUCKET), 2);
    assert_int_equal(mapcache_range_locks(f->mc, 0, BUCKET), 0);
    assert_int_equal(mapcache_range_locks(f->mc, BUCKET - 1, 2), 2);
    assert_int_equal(mapcache_range_locks(f->mc, 2 * BUCKET, BUCKET), 0);
    /* Orphaned by an invalidation, still held: still counted. */
    mapcache_invalidate(f->mc);
    assert_int_equal(mapcache_range_locks(f->mc, BUCKET, BUCKET), 2);
    assert_int_equal(mapcache_unlock(f->mc, p), 0);
    assert_int_equal(mapcache_range_locks(f->mc, BUCKET, BUCKET), 1);
    assert_int_equal(mapcache_unlock(f->mc, q), 0);
    assert_int_equal(mapcache_range_locks(f->mc, BUCKET, BUCKET), 0);
}

static void test_invalidate_range_drops_only_overlapping_buckets(void **state)
{
    Fixture *f = *state;
    uint64_t v, misses;

    for (uint64_t b = 0; b < 4; b++) {
        assert_int_equal(get_u64(f, b * BUCKET, &v), 0);
    }
    /* Overlaps buckets 1 and 2 by one byte each. */
    assert_int_equal(mapcache_invalidate_range(f->mc, 2 * BUCKET - 1, 2), 2);
    assert_int_equal(stats(f).buckets, 2);

    misses = stats(f).misses;
    assert_int_equal(get_u64(f, 0, &v), 0);
    assert_int_equal(get_u64(f, 3 * BUCKET, &v), 0);
    assert_int_equal(stats(f).misses, misses);
    assert_int_equal(get_u64(f, BUCKET, &v), 0);
    assert_int_equal(stats(f).misses, misses + 1);
}

/* ---- dummies during incoming migration ---------------------------------------- */

static void test_incoming_miss_on_missing_frames_gets_a_dummy(void **state)
{
    Fixture *f = *state;
    uint64_t v = 1;

    fake_set_populated(2 * BUCKET / PAGE, BUCKET / PAGE, false);
    mapcache_set_incoming(f->mc, true);
    assert_int_equal(get_u64(f, 2 * BUCKET + 8, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(stats(f).dummy_buckets, 1);
}

static void test_without_incoming_missing_frames_get_no_dummy(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    fake_set_populated(2 * BUCKET / PAGE, BUCKET / PAGE, false);
    assert_int_equal(get_u64(f, 2 * BUCKET + 8, &v), -EFAULT);
    assert_int_equal(stats(f).dummy_buckets, 0);
}

static void test_replacing_a_dummy_keeps_its_address_and_shows_real_data(
    void **state)
{
    Fixture *f = *state;
    uint64_t gpa = 2 * BUCKET + 0x1230, v, w = 0xabcdef;
    uint64_t len = 8, back = 0;
    uint8_t *p;

    fake_set_populated(2 * BUCKET / PAGE, BUCKET / PAGE, false);
    mapcache_set_incoming(f->mc, true);
    p = mapcache_map(f->mc, gpa, &len, NULL);    /* a DMA user holds it */
    assert_non_null(p);
    memcpy(p, &w, 8);                            /* lands in the dummy */

    /* The migration stream brings the frames. */
    fake_set_populated(2 * BUCKET / PAGE, BUCKET / PAGE, true);
    guest_put_u64(gpa, 0x5151);
    mapcache_set_incoming(f->mc, false);
    assert_int_equal(mapcache_replace_dummies(f->mc), 1);

    memcpy(&v, p, 8);                            /* same pointer */
    assert_int_equal(v, 0x5151);
    assert_int_equal(stats(f).dummy_buckets, 0);
    assert_int_equal(mapcache_reverse(f->mc, p, &back), 0);
    assert_int_equal(back, gpa);
    /* A lookup finds the same bucket, and writes reach the guest now. */
    rcu_read_lock();
    assert_ptr_equal(mapcache_get(f->mc, gpa, 8, NULL), p);
    rcu_read_unlock();
    memcpy(p, &w, 8);
    assert_memory_equal(fake_guest() + gpa, &w, 8);
    assert_int_equal(mapcache_unlock(f->mc, p), 0);
}

static void test_replacement_refuses_a_frame_still_missing(void **state)
{
    Fixture *f = *state;
    uint64_t base = 2 * BUCKET, v;

    fake_set_populated(base / PAGE, BUCKET / PAGE, false);
    mapcache_set_incoming(f->mc, true);
    assert_int_equal(get_u64(f, base, &v), 0);
    mapcache_set_incoming(f->mc, false);

    fake_set_populated(base / PAGE, BUCKET / PAGE, true);
    fake_set_populated(base / PAGE + 7, 1, false);
    assert_int_equal(mapcache_replace_dummies(f->mc), 1);
    assert_int_equal(get_u64(f, base + 7 * PAGE, &v), -EFAULT);
    assert_int_equal(get_u64(f, base + 8 * PAGE, &v), 0);
}

static void test_failed_replacement_leaves_a_usable_dummy(void **state)
{
    Fixture *f = *state;
    uint64_t v = 1;

    fake_set_populated(0, BUCKET / PAGE, false);
    mapcache_set_incoming(f->mc, true);
    assert_int_equal(get_u64(f, 0x100, &v), 0);

    fake_fail_maps(EIO, 1);
    assert_int_equal(mapcache_replace_dummies(f->mc), -EIO);
    assert_int_equal(stats(f).dummy_buckets, 1);
    assert_int_equal(get_u64(f, 0x100, &v), 0);
}

/* ---- reverse lookup ------------------------------------------------------------- */

static void test_reverse_lookup_returns_the_gpa(void **state)
{
    Fixture *f = *state;
    uint64_t gpa = 0, len = 8;
    uint8_t *p, *q;

    rcu_read_lock();
    p = mapcache_get(f->mc, 9 * BUCKET + 0x4321, 8, NULL);
    assert_non_null(p);
    assert_int_equal(mapcache_reverse(f->mc, p, &gpa), 0);
    assert_int_equal(gpa, 9 * BUCKET + 0x4321);
    rcu_read_unlock();

    q = mapcache_map(f->mc, 11 * BUCKET + 0x10, &len, NULL);
    assert_int_equal(mapcache_reverse(f->mc, q + 4, &gpa), 0);
    assert_int_equal(gpa, 11 * BUCKET + 0x14);
    assert_int_equal(mapcache_unlock(f->mc, q), 0);
}

static void test_reverse_lookup_of_a_foreign_pointer_is_enoent(void **state)
{
    Fixture *f = *state;
    uint64_t gpa;
    int local = 0;

    assert_int_equal(mapcache_reverse(f->mc, &local, &gpa), -ENOENT);
}

/* ---- the cap ---------------------------------------------------------------------- */

static void test_cap_evicts_a_bucket_to_map_a_new_one(void **state)
{
    Fixture *f = *state;
    uint64_t v;

    for (uint64_t b = 0; b < 3; b++) {
        assert_int_equal(get_u64(f, b * BUCKET, &v), 0);
    }
    assert_int_equal(stats(f).buckets, 2);
    assert_int_equal(stats(f).mapped_bytes, 2 * BUCKET);
    assert_int_equal(stats(f).evictions, 1);
}

static void test_cap_evicts_a_bucket_unused_since_the_last_scan(void **state)
{
    Fixture *f = *state;
    uint64_t v, misses;

    for (uint64_t b = 0; b < 4; b++) {          /* b0 goes, b1..b3 stay */
        assert_int_equal(get_u64(f, b * BUCKET, &v), 0);
    }
    assert_int_equal(get_u64(f, 1 * BUCKET, &v), 0);   /* b1 used again */
    assert_int_equal(get_u64(f, 4 * BUCKET, &v), 0);   /* evicts b2 */

    misses = stats(f).misses;
    assert_int_equal(get_u64(f, 1 * BUCKET, &v), 0);
    assert_int_equal(stats(f).misses, misses);        /* b1 still there */
    assert_int_equal(get_u64(f, 2 * BUCKET, &v), 0);
    assert_int_equal(stats(f).misses, misses + 1);    /* b2 was evicted */
}

static void test_cap_never_evicts_a_locked_bucket(void **state)
{
    Fixture *f = *state;
    uint64_t len0 = 8, len1 = 8, v;
    uint8_t *p0, *p1;
    int err = 0;

    guest_put_u64(BUCKET, 11);
    p0 = mapcache_map(f->mc, 0, &len0, NULL);
    p1 = mapcache_map(f->mc, BUCKET, &len1, NULL);
    assert_non_null(p0);
    assert_non_null(p1);

    rcu_read_lock();
    assert_null(mapcache_get(f->mc, 2 * BUCKET, 8, &err));
    rcu_read_unlock();
    assert_int_equal(err, -ENOSPC);

    assert_int_equal(mapcache_unlock(f->mc, p0), 0);
    assert_int_equal(get_u64(f, 2 * BUCKET, &v), 0);
    memcpy(&v, p1, 8);                          /* still mapped */
    assert_int_equal(v, 11);
    assert_int_equal(mapcache_unlock(f->mc, p1), 0);
}

/* ---- statistics, configuration ----------------------------------------------------- */

static void *hit_ten_times(void *arg)
{
    MapCache *mc = arg;

    rcu_register_thread();
    for (int i = 0; i < 10; i++) {
        rcu_read_lock();
        assert_non_null(mapcache_get(mc, 0x100, 8, NULL));
        rcu_read_unlock();
    }
    rcu_unregister_thread();
    return NULL;
}

static void test_hits_of_other_threads_are_counted(void **state)
{
    Fixture *f = *state;
    pthread_t t[2];
    uint64_t v;

    assert_int_equal(get_u64(f, 0x100, &v), 0);     /* the miss */
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, hit_ten_times, f->mc);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(stats(f).hits, 20);
    /* A third thread reuses a counter block of one that exited. */
    pthread_create(&t[0], NULL, hit_ten_times, f->mc);
    pthread_join(t[0], NULL);
    assert_int_equal(stats(f).hits, 30);
}

static void test_read_only_cache_maps_frames_read_only(void **state)
{
    Fixture *f = *state;
    MapCacheConfig cfg = { .read_only = true };
    MapCache *ro;

    (void)f;
    assert_int_equal(mapcache_new(f->xh, &cfg, &ro), 0);
    rcu_read_lock();
    assert_non_null(mapcache_get(ro, 0, 8, NULL));
    rcu_read_unlock();
    assert_int_equal(fake_last_prot(), PROT_READ);
    mapcache_destroy(ro);
}

static void test_bucket_size_is_configurable(void **state)
{
    Fixture *f = *state;
    MapCacheConfig cfg = { .bucket_shift = 18 };
    MapCache *mc;
    int err = 0;

    assert_int_equal(mapcache_new(f->xh, &cfg, &mc), 0);
    assert_int_equal(mapcache_bucket_size(mc), 256 * KiB);
    rcu_read_lock();
    assert_null(mapcache_get(mc, 256 * KiB - 4, 8, &err));
    assert_int_equal(err, -EINVAL);
    assert_non_null(mapcache_get(mc, 256 * KiB - 8, 8, &err));
    rcu_read_unlock();
    mapcache_destroy(mc);
}

static void test_default_bucket_is_one_mib(void **state)
{
    Fixture *f = *state;

    assert_int_equal(mapcache_bucket_size(f->mc), MiB);
}

static void test_new_rejects_bad_configurations(void **state)
{
    Fixture *f = *state;
    MapCacheConfig small = { .bucket_shift = 12 };
    MapCacheConfig big = { .bucket_shift = 30 };
    MapCacheConfig cap = { .bucket_shift = 20, .max_bytes = 512 * KiB };
    MapCache *mc;

    assert_int_equal(mapcache_new(f->xh, &small, &mc), -EINVAL);
    assert_int_equal(mapcache_new(f->xh, &big, &mc), -EINVAL);
    assert_int_equal(mapcache_new(f->xh, &cap, &mc), -EINVAL);
    assert_null(mc);
}

static void test_destroy_unmaps_locked_and_unlocked_buckets(void **state)
{
    Fixture *f = *state;
    uint64_t len = 8, v;

    assert_int_equal(get_u64(f, 0, &v), 0);
    assert_non_null(mapcache_map(f->mc, 3 * BUCKET, &len, NULL));
    assert_int_equal(fake_mapped_pages(), 2 * BUCKET / PAGE);
    /* teardown destroys and checks that nothing stays mapped */
}

#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define T2(fn) cmocka_unit_test_setup_teardown(fn, setup_cap2, teardown)
#define T3(fn) cmocka_unit_test_setup_teardown(fn, setup_cap3, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_first_access_maps_bucket_second_hits),
        T(test_reads_show_guest_memory_and_writes_reach_it),
        T(test_each_bucket_is_mapped_separately),
        T(test_access_crossing_a_bucket_boundary_is_refused),
        T(test_zero_length_access_counts_as_one_byte),
        T(test_address_beyond_52_bits_is_refused),
        T(test_frames_beyond_guest_memory_are_refused),
        T(test_partial_map_refuses_only_the_bad_frames),
        T(test_bad_frame_is_mapped_once_populated),
        T(test_failed_map_returns_xen_error_and_message),
        T(test_map_takes_a_lock_and_unlock_drops_it),
        T(test_unlock_of_an_unlocked_bucket_is_einval),
        T(test_unlock_of_a_foreign_pointer_is_enoent),
        T(test_map_length_stops_at_the_bucket_end),
        T(test_map_length_stops_before_a_bad_frame),
        T(test_map_of_a_bad_first_frame_is_efault),
        T(test_map_of_zero_bytes_is_einval),
        T(test_invalidate_drops_every_unlocked_bucket),
        T(test_invalidate_inside_a_reader_keeps_its_pointer_valid),
        T(test_invalidate_keeps_a_locked_bucket_until_unlock),
        T(test_range_locks_count_locked_and_orphaned_buckets),
        T(test_invalidate_range_drops_only_overlapping_buckets),
        T(test_incoming_miss_on_missing_frames_gets_a_dummy),
        T(test_without_incoming_missing_frames_get_no_dummy),
        T(test_replacing_a_dummy_keeps_its_address_and_shows_real_data),
        T(test_replacement_refuses_a_frame_still_missing),
        T(test_failed_replacement_leaves_a_usable_dummy),
        T(test_reverse_lookup_returns_the_gpa),
        T(test_reverse_lookup_of_a_foreign_pointer_is_enoent),
        T2(test_cap_evicts_a_bucket_to_map_a_new_one),
        T3(test_cap_evicts_a_bucket_unused_since_the_last_scan),
        T2(test_cap_never_evicts_a_locked_bucket),
        T(test_hits_of_other_threads_are_counted),
        T(test_read_only_cache_maps_frames_read_only),
        T(test_bucket_size_is_configurable),
        T(test_default_bucket_is_one_mib),
        T(test_new_rejects_bad_configurations),
        T(test_destroy_unmaps_locked_and_unlocked_buckets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
