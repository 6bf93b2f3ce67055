/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-blocktime.c - per-vCPU postcopy blocktime (migration/blocktime.c):
 * who is charged, how much and how often; then faults and places from
 * several threads at once (also run under TSan: make check-tsan).
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "migration/blocktime.h"

static PostcopyBlocktime *bt;

static int setup(void **state)
{
    (void)state;
    bt = postcopy_blocktime_new(4);
    assert_non_null(bt);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    postcopy_blocktime_free(bt);
    bt = NULL;
    return 0;
}

static uint64_t total(uint32_t vcpu)
{
    uint64_t ns[4];

    assert_int_equal(postcopy_blocktime_totals(bt, ns, 4), 4);
    return ns[vcpu];
}

static void test_a_vcpu_is_charged_from_its_fault_to_its_frames_place(
    void **state)
{
    (void)state;
    assert_true(postcopy_blocktime_fault(bt, 1, 0x100, 1000));
    assert_int_equal(postcopy_blocktime_waiting(bt), 1);
    assert_int_equal(total(1), 0);      /* only waits that ended count */
    assert_int_equal(postcopy_blocktime_placed(bt, 0x100, 1750), 1);
    assert_int_equal(total(1), 750);
    assert_int_equal(total(0) + total(2) + total(3), 0);
    assert_int_equal(postcopy_blocktime_waiting(bt), 0);
}

static void test_two_vcpus_on_one_page_are_both_charged(void **state)
{
    (void)state;
    assert_true(postcopy_blocktime_fault(bt, 0, 0x200, 100));
    assert_true(postcopy_blocktime_fault(bt, 3, 0x200, 400));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x200, 1000), 2);
    assert_int_equal(total(0), 900);
    assert_int_equal(total(3), 600);
}

static void test_a_vcpu_is_charged_once_per_wait(void **state)
{
    (void)state;
    assert_true(postcopy_blocktime_fault(bt, 2, 0x300, 100));
    /* Asked again for the same wait (a failed load, a recovery). */
    assert_false(postcopy_blocktime_fault(bt, 2, 0x300, 500));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x300, 1100), 1);
    /* The page again (the background carried it too). */
    assert_int_equal(postcopy_blocktime_placed(bt, 0x300, 9000), 0);
    assert_int_equal(total(2), 1000);
    /* A new wait is a new charge, added. */
    assert_true(postcopy_blocktime_fault(bt, 2, 0x301, 10000));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x301, 10050), 1);
    assert_int_equal(total(2), 1050);
}

static void test_a_vcpu_id_beyond_the_count_is_ignored(void **state)
{
    uint64_t ns[4];

    (void)state;
    assert_false(postcopy_blocktime_fault(bt, 4, 0x400, 100));
    assert_false(postcopy_blocktime_fault(bt, UINT32_MAX, 0x400, 100));
    assert_int_equal(postcopy_blocktime_waiting(bt), 0);
    assert_int_equal(postcopy_blocktime_placed(bt, 0x400, 1000), 0);
    assert_int_equal(postcopy_blocktime_totals(bt, ns, 4), 4);
    for (unsigned int i = 0; i < 4; i++) {
        assert_int_equal(ns[i], 0);
    }
}

static void test_a_place_of_another_frame_charges_nobody(void **state)
{
    (void)state;
    assert_true(postcopy_blocktime_fault(bt, 0, 0x500, 100));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x501, 1000), 0);
    assert_int_equal(total(0), 0);
    assert_int_equal(postcopy_blocktime_waiting(bt), 1);
}

static void test_a_fault_on_another_frame_replaces_a_wait_that_ended_unseen(
    void **state)
{
    (void)state;
    /* 0x600 came back without a place (dropped): the vCPU ran on. */
    assert_true(postcopy_blocktime_fault(bt, 1, 0x600, 100));
    assert_true(postcopy_blocktime_fault(bt, 1, 0x601, 5000));
    assert_int_equal(postcopy_blocktime_waiting(bt), 1);
    assert_int_equal(postcopy_blocktime_placed(bt, 0x600, 6000), 0);
    assert_int_equal(postcopy_blocktime_placed(bt, 0x601, 5200), 1);
    assert_int_equal(total(1), 200);
}

static void test_a_place_read_before_the_fault_charges_nothing(void **state)
{
    (void)state;
    /* The placing thread read its clock before the ring thread did. */
    assert_true(postcopy_blocktime_fault(bt, 0, 0x700, 2000));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x700, 1990), 1);
    assert_int_equal(total(0), 0);
    assert_int_equal(postcopy_blocktime_waiting(bt), 0);
}

static void test_totals_copies_at_most_max(void **state)
{
    uint64_t ns[2] = { 7, 7 };

    (void)state;
    assert_true(postcopy_blocktime_fault(bt, 0, 0x800, 0));
    assert_int_equal(postcopy_blocktime_placed(bt, 0x800, 30), 1);
    assert_int_equal(postcopy_blocktime_totals(bt, ns, 1), 4);
    assert_int_equal(ns[0], 30);
    assert_int_equal(ns[1], 7);
}

static void test_no_vcpus_tracks_nothing(void **state)
{
    PostcopyBlocktime *none = postcopy_blocktime_new(0);

    (void)state;
    assert_non_null(none);
    assert_false(postcopy_blocktime_fault(none, 0, 1, 1));
    assert_int_equal(postcopy_blocktime_placed(none, 1, 2), 0);
    assert_int_equal(postcopy_blocktime_totals(none, NULL, 0), 0);
    postcopy_blocktime_free(none);
    postcopy_blocktime_free(NULL);
}

/* ---- from several threads ------------------------------------------------------ */

/* What a thread found wrong (cmocka's asserts belong to the main one). */
static unsigned int thread_errors;      /* atomic */

static void thread_check(bool ok)
{
    if (!ok) {
        __atomic_add_fetch(&thread_errors, 1, __ATOMIC_RELAXED);
    }
}

#define CC_VCPUS   8u
#define CC_WAITS   2000u        /* per vCPU */
#define CC_PLACERS 2u
#define CC_WAIT_NS 7u           /* every wait, place time - fault time */

/* The frames to place, in the order the vCPUs asked for them. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t q[CC_VCPUS * CC_WAITS];
    unsigned int head, tail;
    bool done[CC_VCPUS * CC_WAITS];     /* placed */
} cc = { .lock = PTHREAD_MUTEX_INITIALIZER,
         .cond = PTHREAD_COND_INITIALIZER };

/* Frame g (one per wait) is faulted at g * 16 and placed at + 7. */
static void *cc_vcpu(void *arg)
{
    uint32_t v = (uint32_t)(uintptr_t)arg;

    for (unsigned int k = 0; k < CC_WAITS; k++) {
        uint64_t g = (uint64_t)k * CC_VCPUS + v;

        thread_check(postcopy_blocktime_fault(bt, v, g, g * 16));
        /* The ring thread hears of it again: no second wait. */
        thread_check(!postcopy_blocktime_fault(bt, v, g, g * 16 + 1));
        pthread_mutex_lock(&cc.lock);
        cc.q[cc.tail++] = g;
        pthread_cond_broadcast(&cc.cond);
        /* Paused until the page is in. */
        while (!cc.done[g]) {
            pthread_cond_wait(&cc.cond, &cc.lock);
        }
        pthread_mutex_unlock(&cc.lock);
    }
    return NULL;
}

static void *cc_placer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cc.lock);
    for (;;) {
        uint64_t g;

        while (cc.head == cc.tail && cc.head < CC_VCPUS * CC_WAITS) {
            pthread_cond_wait(&cc.cond, &cc.lock);
        }
        if (cc.head == CC_VCPUS * CC_WAITS) {
            break;
        }
        g = cc.q[cc.head++];
        pthread_mutex_unlock(&cc.lock);
        /* A background page nobody waits for, then the asked one. */
        thread_check(postcopy_blocktime_placed(bt, g + (1ull << 40),
                                               g * 16) == 0);
        thread_check(postcopy_blocktime_placed(bt, g,
                                               g * 16 + CC_WAIT_NS) == 1);
        pthread_mutex_lock(&cc.lock);
        cc.done[g] = true;
        pthread_cond_broadcast(&cc.cond);
    }
    pthread_cond_broadcast(&cc.cond);
    pthread_mutex_unlock(&cc.lock);
    return NULL;
}

static void test_concurrent_faults_and_places_charge_every_wait_once(
    void **state)
{
    pthread_t vc[CC_VCPUS], pl[CC_PLACERS];
    uint64_t ns[CC_VCPUS];

    (void)state;
    bt = postcopy_blocktime_new(CC_VCPUS);
    assert_non_null(bt);
    thread_errors = 0;
    for (unsigned int i = 0; i < CC_PLACERS; i++) {
        assert_int_equal(pthread_create(&pl[i], NULL, cc_placer, NULL), 0);
    }
    for (uintptr_t v = 0; v < CC_VCPUS; v++) {
        assert_int_equal(pthread_create(&vc[v], NULL, cc_vcpu, (void *)v),
                         0);
    }
    for (unsigned int v = 0; v < CC_VCPUS; v++) {
        pthread_join(vc[v], NULL);
    }
    for (unsigned int i = 0; i < CC_PLACERS; i++) {
        pthread_join(pl[i], NULL);
    }
    assert_int_equal(thread_errors, 0);
    assert_int_equal(postcopy_blocktime_waiting(bt), 0);
    assert_int_equal(postcopy_blocktime_totals(bt, ns, CC_VCPUS), CC_VCPUS);
    for (unsigned int v = 0; v < CC_VCPUS; v++) {
        assert_int_equal(ns[v], (uint64_t)CC_WAITS * CC_WAIT_NS);
    }
}

/*
 * The engine's race (recv.c): the fault callback may record a wait after
 * the frame's place ran.  The place clears the frame's absent mark, then
 * charges; the fault records, then looks at the mark and ends the wait
 * itself when the frame is in.  One vCPU and one placer: every third
 * frame placed before its fault is recorded (the late callback), the
 * others placed racing their fault; once the place is over, whichever
 * came first, the vCPU waits no more.
 */
#define RC_FRAMES 20000u

static bool rc_absent[RC_FRAMES];       /* atomic */
static bool rc_done[RC_FRAMES];         /* atomic: placed and charged */
static uint64_t rc_faulted;             /* atomic: frames faulted */
static uint64_t rc_clock;               /* atomic */

static uint64_t rc_now(void)
{
    return __atomic_add_fetch(&rc_clock, 1, __ATOMIC_RELAXED);
}

static void *rc_fault(void *arg)
{
    (void)arg;
    for (uint64_t g = 0; g < RC_FRAMES; g++) {
        while (g % 3 == 0 &&
               !__atomic_load_n(&rc_done[g], __ATOMIC_ACQUIRE)) {
            sched_yield();
        }
        __atomic_store_n(&rc_faulted, g, __ATOMIC_RELEASE);
        if (postcopy_blocktime_fault(bt, 0, g, rc_now()) &&
            !__atomic_load_n(&rc_absent[g], __ATOMIC_RELAXED)) {
            postcopy_blocktime_placed(bt, g, rc_now());
        }
        while (!__atomic_load_n(&rc_done[g], __ATOMIC_ACQUIRE)) {
            sched_yield();
        }
        thread_check(postcopy_blocktime_waiting(bt) == 0);
    }
    return NULL;
}

static void *rc_place(void *arg)
{
    (void)arg;
    for (uint64_t g = 0; g < RC_FRAMES; g++) {
        /* Racing the fault: not before the vCPU is about to make it. */
        while (g % 3 != 0 &&
               __atomic_load_n(&rc_faulted, __ATOMIC_ACQUIRE) < g) {
            sched_yield();
        }
        __atomic_store_n(&rc_absent[g], false, __ATOMIC_RELAXED);
        postcopy_blocktime_placed(bt, g, rc_now());
        __atomic_store_n(&rc_done[g], true, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void test_a_wait_recorded_after_its_place_is_not_left_behind(
    void **state)
{
    pthread_t f, p;

    (void)state;
    bt = postcopy_blocktime_new(1);
    assert_non_null(bt);
    thread_errors = 0;
    for (unsigned int g = 0; g < RC_FRAMES; g++) {
        rc_absent[g] = true;
    }
    assert_int_equal(pthread_create(&p, NULL, rc_place, NULL), 0);
    assert_int_equal(pthread_create(&f, NULL, rc_fault, NULL), 0);
    pthread_join(f, NULL);
    pthread_join(p, NULL);
    assert_int_equal(thread_errors, 0);
    assert_int_equal(postcopy_blocktime_waiting(bt), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_a_vcpu_is_charged_from_its_fault_to_its_frames_place, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_two_vcpus_on_one_page_are_both_charged, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_vcpu_is_charged_once_per_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_vcpu_id_beyond_the_count_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_place_of_another_frame_charges_nobody, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_fault_on_another_frame_replaces_a_wait_that_ended_unseen,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_place_read_before_the_fault_charges_nothing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_totals_copies_at_most_max, setup, teardown),
        cmocka_unit_test(test_no_vcpus_tracks_nothing),
        cmocka_unit_test_teardown(
            test_concurrent_faults_and_places_charge_every_wait_once,
            teardown),
        cmocka_unit_test_teardown(
            test_a_wait_recorded_after_its_place_is_not_left_behind,
            teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
