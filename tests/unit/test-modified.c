/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for memory/modified: coalescing, batching, delayed and
 * explicit flushes, and error handling of modified_memory_bulk.  The
 * hypercall is replaced with the linker's --wrap by a recorder.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "memory/modified.h"

#define MAX_PAGES 65536

/* What the fake hypercall saw. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t called;
    int calls;
    int extents;
    int fail_next;                  /* errno to fail the next call with */
    unsigned char pages[MAX_PAGES]; /* times each page was reported */
    struct xen_dm_op_modified_memory_extent last[MODIFIED_MEMORY_MAX_BATCH];
    uint32_t last_n;
} rec = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n);
int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n)
{
    int ret = 0;

    (void)xh;
    pthread_mutex_lock(&rec.lock);
    rec.calls++;
    if (rec.fail_next) {
        ret = -rec.fail_next;
        rec.fail_next = 0;
    } else {
        rec.extents += n;
        rec.last_n = n;
        memcpy(rec.last, e, n * sizeof(*e));
        for (uint32_t i = 0; i < n; i++) {
            for (uint64_t p = e[i].first_pfn;
                 p < e[i].first_pfn + e[i].nr && p < MAX_PAGES; p++) {
                rec.pages[p]++;
            }
        }
    }
    pthread_cond_broadcast(&rec.called);
    pthread_mutex_unlock(&rec.lock);
    return ret;
}

static XenHandles *const fake_xh = (XenHandles *)(uintptr_t)0x1000;

static int setup(void **state)
{
    ModifiedMemoryConfig cfg = { .batch = 8, .max_delay_ms = 0 };
    ModifiedMemory *mm;

    pthread_mutex_lock(&rec.lock);
    rec.calls = rec.extents = rec.fail_next = 0;
    rec.last_n = 0;
    memset(rec.pages, 0, sizeof(rec.pages));
    pthread_mutex_unlock(&rec.lock);
    assert_int_equal(modified_memory_new(fake_xh, &cfg, &mm), 0);
    assert_int_equal(modified_memory_set_enabled(mm, true), 0);
    *state = mm;
    return 0;
}

static int teardown(void **state)
{
    modified_memory_free(*state);
    return 0;
}

static void test_disabled_forwarding_reports_nothing(void **state)
{
    ModifiedMemory *mm = *state;
    ModifiedMemoryStats st;

    assert_int_equal(modified_memory_set_enabled(mm, false), 0);
    modified_memory_report(mm, 10, 1);
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.calls, 0);
    modified_memory_stats(mm, &st);
    assert_int_equal(st.reports, 0);
    assert_false(modified_memory_enabled(mm));
}

static void test_adjacent_reports_coalesce_into_one_extent(void **state)
{
    ModifiedMemory *mm = *state;

    modified_memory_report(mm, 5, 1);
    modified_memory_report(mm, 6, 1);
    modified_memory_report(mm, 7, 2);
    assert_int_equal(rec.calls, 0);
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.last_n, 1);
    assert_int_equal(rec.last[0].first_pfn, 5);
    assert_int_equal(rec.last[0].nr, 4);
}

static void test_scattered_reports_are_sorted_and_merged_at_flush(void **state)
{
    ModifiedMemory *mm = *state;

    modified_memory_report(mm, 10, 1);
    modified_memory_report(mm, 30, 1);
    modified_memory_report(mm, 8, 2);
    modified_memory_report(mm, 9, 1);    /* overlaps the one before */
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.last_n, 2);
    assert_int_equal(rec.last[0].first_pfn, 8);
    assert_int_equal(rec.last[0].nr, 3);
    assert_int_equal(rec.last[1].first_pfn, 30);
    assert_int_equal(rec.last[1].nr, 1);
    /* Overlap is not reported twice. */
    assert_int_equal(rec.pages[9], 1);
}

static void test_full_batch_is_sent_without_explicit_flush(void **state)
{
    ModifiedMemory *mm = *state;

    for (int i = 0; i < 7; i++) {
        modified_memory_report(mm, 100 + 2 * i, 1);
    }
    assert_int_equal(rec.calls, 0);
    modified_memory_report(mm, 200, 1);     /* the eighth extent: full */
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.extents, 8);
}

static void test_thousand_scattered_writes_take_at_most_ten_calls(void **state)
{
    ModifiedMemoryConfig cfg = { .batch = MODIFIED_MEMORY_MAX_BATCH };
    ModifiedMemory *mm;
    static unsigned char written[MAX_PAGES];
    unsigned int seed = 1;

    (void)state;
    assert_int_equal(modified_memory_new(fake_xh, &cfg, &mm), 0);
    modified_memory_set_enabled(mm, true);
    for (int i = 0; i < 1000; i++) {
        uint64_t gfn = rand_r(&seed) % MAX_PAGES;

        written[gfn] = 1;
        modified_memory_report(mm, gfn, 1);
    }
    assert_int_equal(modified_memory_flush(mm), 0);
    for (int p = 0; p < MAX_PAGES; p++) {
        assert_int_equal(rec.pages[p] != 0, written[p]);
    }
    assert_true(rec.calls <= 10);
    modified_memory_free(mm);
}

static void test_flush_sends_everything_queued(void **state)
{
    ModifiedMemory *mm = *state;
    ModifiedMemoryStats st;

    modified_memory_report(mm, 1, 3);
    modified_memory_report(mm, 50, 2);
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.pages[1] + rec.pages[2] + rec.pages[3], 3);
    assert_int_equal(rec.pages[50] + rec.pages[51], 2);
    modified_memory_stats(mm, &st);
    assert_int_equal(st.pages, 5);
    assert_int_equal(st.extents, 2);
    assert_int_equal(st.hypercalls, 1);
    /* Nothing left: a second flush makes no call. */
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.calls, 1);
}

static void test_failed_hypercall_keeps_extents_for_next_flush(void **state)
{
    ModifiedMemory *mm = *state;
    ModifiedMemoryStats st;

    modified_memory_report(mm, 40, 2);
    rec.fail_next = EINVAL;
    assert_int_equal(modified_memory_flush(mm), -EINVAL);
    assert_int_equal(rec.pages[40], 0);
    assert_int_equal(modified_memory_flush(mm), 0);
    assert_int_equal(rec.pages[40], 1);
    assert_int_equal(rec.pages[41], 1);
    modified_memory_stats(mm, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.hypercalls, 2);
}

static void test_unknown_domain_error_reaches_the_caller(void **state)
{
    ModifiedMemory *mm = *state;

    modified_memory_report(mm, 7, 1);
    rec.fail_next = ESRCH;
    assert_int_equal(modified_memory_flush(mm), -ESRCH);
}

static void test_disabling_flushes_pending_reports(void **state)
{
    ModifiedMemory *mm = *state;

    modified_memory_report(mm, 12, 1);
    assert_int_equal(modified_memory_set_enabled(mm, false), 0);
    assert_int_equal(rec.pages[12], 1);
}

static void test_failed_disable_leaves_forwarding_on_and_reports_queued(
    void **state)
{
    ModifiedMemory *mm = *state;

    modified_memory_report(mm, 30, 1);
    rec.fail_next = EIO;
    assert_int_equal(modified_memory_set_enabled(mm, false), -EIO);
    /* Nothing changed: still on, so later writes are still reported. */
    assert_true(modified_memory_enabled(mm));
    modified_memory_report(mm, 31, 1);
    assert_int_equal(modified_memory_set_enabled(mm, false), 0);
    assert_false(modified_memory_enabled(mm));
    assert_int_equal(rec.pages[30], 1);
    assert_int_equal(rec.pages[31], 1);
}

static void test_pending_reports_are_flushed_after_the_delay(void **state)
{
    ModifiedMemoryConfig cfg = { .batch = 64, .max_delay_ms = 5 };
    ModifiedMemory *mm;
    struct timespec deadline;
    int ret = 0;

    (void)state;
    assert_int_equal(modified_memory_new(fake_xh, &cfg, &mm), 0);
    modified_memory_set_enabled(mm, true);
    modified_memory_report(mm, 77, 1);

    /* Wait for the flusher's call (not a sleep: an event, with a bound). */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&rec.lock);
    while (rec.pages[77] == 0 && ret != ETIMEDOUT) {
        ret = pthread_cond_timedwait(&rec.called, &rec.lock, &deadline);
    }
    pthread_mutex_unlock(&rec.lock);
    assert_int_equal(rec.pages[77], 1);
    modified_memory_free(mm);
}

static void test_huge_report_is_split_into_valid_extents(void **state)
{
    ModifiedMemory *mm = *state;
    ModifiedMemoryStats st;

    modified_memory_report(mm, 1ULL << 40, (1ULL << 33) + 5);
    assert_int_equal(modified_memory_flush(mm), 0);
    modified_memory_stats(mm, &st);
    assert_int_equal(st.pages, (1ULL << 33) + 5);
    assert_true(st.extents >= 3);
}

static void test_bad_configuration_is_einval(void **state)
{
    ModifiedMemoryConfig zero = { .batch = 0 };
    ModifiedMemoryConfig big = { .batch = MODIFIED_MEMORY_MAX_BATCH + 1 };
    ModifiedMemory *mm = NULL;

    (void)state;
    assert_int_equal(modified_memory_new(fake_xh, &zero, &mm), -EINVAL);
    assert_int_equal(modified_memory_new(fake_xh, &big, &mm), -EINVAL);
    assert_int_equal(modified_memory_new(NULL, NULL, &mm), -EINVAL);
    assert_null(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_disabled_forwarding_reports_nothing),
        T(test_adjacent_reports_coalesce_into_one_extent),
        T(test_scattered_reports_are_sorted_and_merged_at_flush),
        T(test_full_batch_is_sent_without_explicit_flush),
        T(test_thousand_scattered_writes_take_at_most_ten_calls),
        T(test_flush_sends_everything_queued),
        T(test_failed_hypercall_keeps_extents_for_next_flush),
        T(test_failed_disable_leaves_forwarding_on_and_reports_queued),
        T(test_unknown_domain_error_reaches_the_caller),
        T(test_disabling_flushes_pending_reports),
        T(test_pending_reports_are_flushed_after_the_delay),
        T(test_huge_report_is_split_into_valid_extents),
#undef T
        cmocka_unit_test(test_bad_configuration_is_einval),
    };

    return cmocka_run_group_tests_name("modified", tests, NULL, NULL);
}
