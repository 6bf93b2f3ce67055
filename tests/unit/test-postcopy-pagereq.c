/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-postcopy-pagereq.c - the pieces of postcopy's page requests that
 * stand alone (migration/pagereq.h): the DISCARD ranges a source takes
 * from a block's bitmap (less the pages a skip map holds), the bounds a
 * destination's PAGE_REQUEST must keep, and the queue between a thread
 * that must not block and the one that sends.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/pagereq.h"
#include "util/util.h"

/* ---- discard ranges ----------------------------------------------------- */

static void set(DirtyBitmap *bm, uint64_t i, uint64_t n)
{
    assert_int_equal(dirty_bitmap_set_range(bm, i, n), 0);
}

static void test_discard_ranges_are_the_runs_of_dirty_pages(void **state)
{
    DirtyBitmap bm;
    StreamRange r[8];
    uint64_t next;
    unsigned n;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 100000), 0);
    set(&bm, 0, 1);
    set(&bm, 5, 3);
    set(&bm, 63, 2);            /* across a word */
    set(&bm, 99990, 10);        /* to the end */
    n = mig_discard_ranges(&bm, NULL, 0, bm.npages, r, 8, &next);
    assert_int_equal(n, 4);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].n, 1);
    assert_int_equal(r[1].start, 5);
    assert_int_equal(r[1].n, 3);
    assert_int_equal(r[2].start, 63);
    assert_int_equal(r[2].n, 2);
    assert_int_equal(r[3].start, 99990);
    assert_int_equal(r[3].n, 10);
    assert_int_equal(next, bm.npages);
    /* The bitmap is left as it was: these pages are still to be sent. */
    assert_int_equal(dirty_bitmap_count(&bm), 16);
    dirty_bitmap_destroy(&bm);
}

static void test_discard_ranges_come_in_batches(void **state)
{
    DirtyBitmap bm;
    StreamRange r[3];
    uint64_t next, from = 0, total = 0;
    unsigned calls = 0, n;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 4096), 0);
    for (uint64_t i = 0; i < 4096; i += 2) {
        set(&bm, i, 1);         /* 2048 runs of one page */
    }
    do {
        n = mig_discard_ranges(&bm, NULL, from, bm.npages, r, 3, &next);
        for (unsigned i = 0; i < n; i++) {
            assert_int_equal(r[i].start, (total + i) * 2);
            assert_int_equal(r[i].n, 1);
        }
        total += n;
        from = next;
        calls++;
    } while (n);
    assert_int_equal(total, 2048);
    assert_int_equal(calls, 2048 / 3 + 1 + 1);
    dirty_bitmap_destroy(&bm);
}

static void test_discard_ranges_stop_at_the_end_asked(void **state)
{
    DirtyBitmap bm;
    StreamRange r[4];
    uint64_t next;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 1024), 0);
    set(&bm, 100, 200);
    /* A block's postcopy_length may end before its bitmap does. */
    assert_int_equal(mig_discard_ranges(&bm, NULL, 0, 150, r, 4, &next), 1);
    assert_int_equal(r[0].start, 100);
    assert_int_equal(r[0].n, 50);
    assert_int_equal(next, 150);
    assert_int_equal(mig_discard_ranges(&bm, NULL, 0, 50, r, 4, &next), 0);
    dirty_bitmap_destroy(&bm);
}

static void test_no_dirty_page_no_discard(void **state)
{
    DirtyBitmap bm;
    StreamRange r[4];
    uint64_t next;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 777), 0);
    assert_int_equal(mig_discard_ranges(&bm, NULL, 0, 777, r, 4, &next), 0);
    assert_int_equal(next, 777);
    dirty_bitmap_destroy(&bm);
}

/* A skip map of @nbits, all clear (the pages DISCARDs carried already). */
static unsigned long *skip_new(uint64_t nbits)
{
    unsigned long *skip = xr_bitmap_new(nbits);

    assert_non_null(skip);
    return skip;
}

static void test_discard_ranges_leave_out_the_skipped_pages(void **state)
{
    DirtyBitmap bm;
    unsigned long *skip;
    StreamRange r[16];
    uint64_t next;
    unsigned n;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 200), 0);
    skip = skip_new(200);
    set(&bm, 10, 20);           /* 10..29, split three times */
    xr_set_bit(15, skip);
    xr_bitmap_set(skip, 20, 2);
    xr_set_bit(29, skip);       /* the run's last page */
    set(&bm, 50, 3);            /* skipped whole */
    xr_bitmap_set(skip, 50, 3);
    set(&bm, 63, 3);            /* across a word, its middle skipped */
    xr_set_bit(64, skip);
    set(&bm, 100, 2);           /* its first page skipped */
    xr_set_bit(100, skip);
    xr_bitmap_set(skip, 120, 10);   /* skipped but not dirty: nothing */
    set(&bm, 190, 10);          /* to the end, the last page skipped */
    xr_set_bit(199, skip);
    n = mig_discard_ranges(&bm, skip, 0, bm.npages, r, 16, &next);
    assert_int_equal(n, 7);
    assert_int_equal(r[0].start, 10);
    assert_int_equal(r[0].n, 5);
    assert_int_equal(r[1].start, 16);
    assert_int_equal(r[1].n, 4);
    assert_int_equal(r[2].start, 22);
    assert_int_equal(r[2].n, 7);
    assert_int_equal(r[3].start, 63);
    assert_int_equal(r[3].n, 1);
    assert_int_equal(r[4].start, 65);
    assert_int_equal(r[4].n, 1);
    assert_int_equal(r[5].start, 101);
    assert_int_equal(r[5].n, 1);
    assert_int_equal(r[6].start, 190);
    assert_int_equal(r[6].n, 9);
    assert_int_equal(next, bm.npages);
    /* Starting on a skipped page; NULL skips nothing. */
    n = mig_discard_ranges(&bm, skip, 15, 40, r, 16, &next);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].start, 16);
    assert_int_equal(r[1].start, 22);
    assert_int_equal(r[1].n, 7);
    assert_int_equal(next, 40);
    n = mig_discard_ranges(&bm, NULL, 0, bm.npages, r, 16, &next);
    assert_int_equal(n, 5);
    assert_int_equal(r[0].start, 10);
    assert_int_equal(r[0].n, 20);
    /* Neither bitmap is changed. */
    assert_int_equal(dirty_bitmap_count(&bm), 20 + 3 + 3 + 2 + 10);
    assert_int_equal(xr_bitmap_count(skip, 200), 1 + 2 + 1 + 3 + 1 + 1 + 10 +
                                                 1);
    free(skip);
    dirty_bitmap_destroy(&bm);
}

static void test_discard_ranges_all_skipped_give_none(void **state)
{
    DirtyBitmap bm;
    unsigned long *skip;
    StreamRange r[4];
    uint64_t next = 0;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 1000), 0);
    skip = skip_new(1000);
    set(&bm, 0, 100);
    set(&bm, 500, 10);
    set(&bm, 999, 1);
    /* Exactly the dirty pages skipped, then every page. */
    xr_bitmap_set(skip, 0, 100);
    xr_bitmap_set(skip, 500, 10);
    xr_set_bit(999, skip);
    assert_int_equal(mig_discard_ranges(&bm, skip, 0, 1000, r, 4, &next), 0);
    assert_int_equal(next, 1000);
    xr_bitmap_set(skip, 0, 1000);
    assert_int_equal(mig_discard_ranges(&bm, skip, 0, 1000, r, 4, &next), 0);
    assert_int_equal(next, 1000);
    /* ... and with an end before the bitmap's. */
    assert_int_equal(mig_discard_ranges(&bm, skip, 0, 505, r, 4, &next), 0);
    assert_int_equal(next, 505);
    free(skip);
    dirty_bitmap_destroy(&bm);
}

static void test_discard_ranges_with_skips_continue_where_they_stopped(
    void **state)
{
    DirtyBitmap bm;
    unsigned long *skip;
    StreamRange r[4];
    uint64_t next, from = 0, total = 0;
    unsigned calls = 0, n;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 4096), 0);
    skip = skip_new(4096);
    set(&bm, 0, 4096);          /* one run, */
    for (uint64_t i = 0; i < 4096; i += 3) {
        xr_set_bit(i, skip);    /* cut into runs of 2: 3k+1, 3k+2 */
    }
    do {
        n = mig_discard_ranges(&bm, skip, from, bm.npages, r, 4, &next);
        for (unsigned i = 0; i < n; i++) {
            assert_int_equal(r[i].start, (total + i) * 3 + 1);
            assert_int_equal(r[i].n, 2);
        }
        total += n;
        /* The next call starts at the next run's first page, past the
         * skipped one between: none given twice, none left out. */
        if (total < 1365) {
            assert_int_equal(next, total * 3 + 1);
        } else {
            assert_int_equal(next, bm.npages);
        }
        from = next;
        calls++;
    } while (n);
    assert_int_equal(total, 1365);
    assert_int_equal(calls, (1365 + 3) / 4 + 1);
    free(skip);
    dirty_bitmap_destroy(&bm);
}

/* ---- request bounds ----------------------------------------------------- */

static void test_a_request_inside_the_block_is_accepted(void **state)
{
    RAMBlock b = { .postcopy_length = 16 << 12 };
    char err[256];

    (void)state;
    assert_int_equal(mig_page_request_check("ram", &b, 0, 16, err,
                                            sizeof(err)), 0);
    assert_int_equal(mig_page_request_check("ram", &b, 15, 1, err,
                                            sizeof(err)), 0);
}

static void test_a_request_past_postcopy_length_is_refused(void **state)
{
    RAMBlock b = { .postcopy_length = 16 << 12 };
    char err[256];

    (void)state;
    assert_int_equal(mig_page_request_check("ram", &b, 15, 2, err,
                                            sizeof(err)), -ERANGE);
    assert_non_null(strstr(err, "block 'ram'"));
    assert_int_equal(mig_page_request_check("ram", &b, 16, 1, err,
                                            sizeof(err)), -ERANGE);
    /* No wrap-around past 2^64. */
    assert_int_equal(mig_page_request_check("ram", &b, 8, UINT64_MAX, err,
                                            sizeof(err)), -ERANGE);
    assert_int_equal(mig_page_request_check("ram", &b, 0, 0, err,
                                            sizeof(err)), -ERANGE);
}

static void test_a_request_for_an_unknown_block_is_refused(void **state)
{
    char err[256];

    (void)state;
    assert_int_equal(mig_page_request_check("nope", NULL, 0, 1, err,
                                            sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "'nope'"));
}

/* ---- the queue ---------------------------------------------------------- */

static void test_queue_is_fifo_and_bounded(void **state)
{
    MigPageQueue q;
    MigPageRun r;

    (void)state;
    assert_int_equal(mig_page_queue_init(&q, 2), 0);
    assert_false(mig_page_queue_pop(&q, &r, false));
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 7,
                                                             .n = 1 }), 0);
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 9,
                                                             .n = 2 }), 0);
    /* Full: the pusher is told at once, it never waits. */
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 11,
                                                             .n = 1 }),
                     -ENOSPC);
    assert_int_equal(q.refused, 1);
    assert_true(mig_page_queue_pop(&q, &r, false));
    assert_int_equal(r.gfn, 7);
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 13,
                                                             .n = 1 }), 0);
    assert_true(mig_page_queue_pop(&q, &r, true));
    assert_int_equal(r.gfn, 9);
    assert_int_equal(r.n, 2);
    assert_true(mig_page_queue_pop(&q, &r, true));
    assert_int_equal(r.gfn, 13);
    assert_int_equal(mig_page_queue_len(&q), 0);
    mig_page_queue_destroy(&q);
}

static void test_closed_queue_drains_then_ends(void **state)
{
    MigPageQueue q;
    MigPageRun r;

    (void)state;
    assert_int_equal(mig_page_queue_init(&q, 4), 0);
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 1,
                                                             .n = 1 }), 0);
    mig_page_queue_close(&q);
    assert_int_equal(mig_page_queue_push(&q, &(MigPageRun) { .gfn = 2,
                                                             .n = 1 }),
                     -EPIPE);
    assert_true(mig_page_queue_pop(&q, &r, true));
    assert_int_equal(r.gfn, 1);
    assert_false(mig_page_queue_pop(&q, &r, true));
    mig_page_queue_destroy(&q);
}

typedef struct Consumer {
    MigPageQueue *q;
    uint64_t sum, n;
} Consumer;

static void *consume(void *opaque)
{
    Consumer *c = opaque;
    MigPageRun r;

    while (mig_page_queue_pop(c->q, &r, true)) {
        c->sum += r.gfn;
        c->n++;
    }
    return NULL;
}

/* A waiting pop is woken by each push and by the close: nothing is lost. */
static void test_waiting_consumer_gets_every_run(void **state)
{
    MigPageQueue q;
    Consumer c = { .q = &q };
    pthread_t t;
    uint64_t want = 0, pushed = 0;

    (void)state;
    assert_int_equal(mig_page_queue_init(&q, 8), 0);
    assert_int_equal(pthread_create(&t, NULL, consume, &c), 0);
    for (uint64_t g = 1; pushed < 10000; g++) {
        if (mig_page_queue_push(&q, &(MigPageRun) { .gfn = g, .n = 1 })) {
            g--;                /* full: the consumer is behind */
            sched_yield();
            continue;
        }
        want += g;
        pushed++;
    }
    mig_page_queue_close(&q);
    pthread_join(t, NULL);
    assert_int_equal(c.n, 10000);
    assert_int_equal(c.sum, want);
    mig_page_queue_destroy(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discard_ranges_are_the_runs_of_dirty_pages),
        cmocka_unit_test(test_discard_ranges_come_in_batches),
        cmocka_unit_test(test_discard_ranges_stop_at_the_end_asked),
        cmocka_unit_test(test_no_dirty_page_no_discard),
        cmocka_unit_test(test_discard_ranges_leave_out_the_skipped_pages),
        cmocka_unit_test(test_discard_ranges_all_skipped_give_none),
        cmocka_unit_test(
            test_discard_ranges_with_skips_continue_where_they_stopped),
        cmocka_unit_test(test_a_request_inside_the_block_is_accepted),
        cmocka_unit_test(test_a_request_past_postcopy_length_is_refused),
        cmocka_unit_test(test_a_request_for_an_unknown_block_is_refused),
        cmocka_unit_test(test_queue_is_fifo_and_bounded),
        cmocka_unit_test(test_closed_queue_drains_then_ends),
        cmocka_unit_test(test_waiting_consumer_gets_every_run),
    };

    return cmocka_run_group_tests_name("postcopy-pagereq", tests, NULL, NULL);
}
