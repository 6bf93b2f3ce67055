/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-postcopy.c - the postcopy destination's rules (migration/postcopy.h):
 * the order of messages, the received map, discards in ranges, pages
 * made absent in runs at LISTEN, or ahead by PREPARE and then only those
 * DISCARDs take back, a page placed exactly once, notifiers that refuse,
 * the fault-latency percentiles.
 *
 * The back-end is a recorder: make_absent remembers the runs it was given,
 * place the pages, so that each test checks what would reach Xen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <urcu/urcu-memb.h>

#include "migration/postcopy.h"

#define MiB ((ram_addr_t)1 << 20)

typedef struct Run {
    const RAMBlock *block;
    uint64_t page, n;
} Run;

typedef struct Fixture {
    RAMList ram;
    RAMBlock *big, *small;
    PostcopyIncoming pi;
    Run absent[64];
    unsigned nabsent;
    uint64_t placed[64];
    bool placed_zero[64];
    unsigned nplaced;
    int absent_ret, place_ret;
    char err[256];
} Fixture;

static int rec_make_absent(void *opaque, RAMBlock *block, uint64_t page,
                           uint64_t npages, char *err, size_t errlen)
{
    Fixture *f = opaque;

    if (f->absent_ret) {
        snprintf(err, errlen, "evict refused");
        return f->absent_ret;
    }
    assert_true(f->nabsent < ARRAY_SIZE(f->absent));
    f->absent[f->nabsent++] = (Run) { block, page, npages };
    return 0;
}

static int rec_place(void *opaque, RAMBlock *block, uint64_t page,
                     const void *data, char *err, size_t errlen)
{
    Fixture *f = opaque;

    (void)block;
    if (f->place_ret) {
        snprintf(err, errlen, "load refused");
        return f->place_ret;
    }
    /* The first ones are kept, all are counted. */
    if (f->nplaced < ARRAY_SIZE(f->placed)) {
        f->placed_zero[f->nplaced] = data == NULL;
        f->placed[f->nplaced] = page;
    }
    f->nplaced++;
    return 0;
}

static const PostcopyOps rec_ops = {
    .make_absent = rec_make_absent,
    .place = rec_place,
};

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(ram_list_init(&f->ram), 0);
    assert_int_equal(ram_block_add(&f->ram, "xen.ram", 4 * MiB, 4 * MiB,
                                   NULL, 0, NULL, &f->big), 0);
    assert_int_equal(ram_block_add(&f->ram, "vga.vram", 2 * MiB, 2 * MiB,
                                   NULL, 0, NULL, &f->small), 0);
    assert_int_equal(ram_block_alloc_migration_bitmaps(f->big, 6), 0);
    assert_int_equal(ram_block_alloc_migration_bitmaps(f->small, 6), 0);
    postcopy_incoming_init(&f->pi, &f->ram, &rec_ops, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    postcopy_incoming_destroy(&f->pi);
    ram_list_destroy(&f->ram);
    free(f);
    return 0;
}

/* Every page of @b received (precopy). */
static void receive_all(Fixture *f, RAMBlock *b)
{
    for (uint64_t p = 0; p < ram_block_used_pages(b); p++) {
        assert_int_equal(postcopy_incoming_received(&f->pi, b, p, f->err,
                                                    sizeof(f->err)), 0);
    }
}

static void to_listening(Fixture *f)
{
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
}

/* ---- the order of messages ---------------------------------------------- */

static void test_messages_out_of_order_are_refused_by_name(void **state)
{
    Fixture *f = *state;

    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "LISTEN arrived in state 'none'"));
    assert_int_equal(postcopy_incoming_run(&f->pi, f->err, sizeof(f->err)),
                     -EPROTO);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 0, 1,
                                               f->err, sizeof(f->err)),
                     -EPROTO);
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 0, NULL, f->err,
                                             sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "a postcopy page arrived in state "
                                   "'none'"));
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), -EPROTO);
    assert_int_equal(postcopy_incoming_end(&f->pi, f->err, sizeof(f->err)),
                     -EPROTO);
    /* Nothing moved: still ADVISE, nothing made absent. */
    PostcopyStats st;
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_ADVISE);
    assert_int_equal(f->nabsent, 0);
}

static void test_the_whole_sequence_reaches_end(void **state)
{
    Fixture *f = *state;
    static const uint8_t page[XR_PAGE_SIZE] = { 1 };
    PostcopyStats st;

    receive_all(f, f->small);
    to_listening(f);
    /* The big block was never sent: one run, the whole block. */
    assert_int_equal(f->nabsent, 1);
    assert_ptr_equal(f->absent[0].block, f->big);
    assert_int_equal(f->absent[0].page, 0);
    assert_int_equal(f->absent[0].n, 1024);
    assert_int_equal(postcopy_incoming_run(&f->pi, f->err, sizeof(f->err)),
                     0);
    for (uint64_t p = 0; p < 1024; p++) {
        assert_int_equal(postcopy_incoming_place(&f->pi, f->big, p,
                                                 p % 2 ? page : NULL, f->err,
                                                 sizeof(f->err)), 0);
    }
    assert_int_equal(postcopy_incoming_end(&f->pi, f->err, sizeof(f->err)),
                     0);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_END);
    assert_int_equal(st.placed, 1024);
    assert_int_equal(f->nplaced, 1024);
    assert_int_equal(st.made_absent, 1024);
    assert_true(f->placed_zero[0]);
    assert_false(f->placed_zero[1]);
}

static void test_end_with_a_page_missing_is_refused(void **state)
{
    Fixture *f = *state;

    receive_all(f, f->small);
    receive_all(f, f->big);
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "vga.vram", 7, 1,
                                               f->err, sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_run(&f->pi, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(postcopy_incoming_end(&f->pi, f->err, sizeof(f->err)),
                     -EPROTO);
    assert_non_null(strstr(f->err, "page 0x7 of block 'vga.vram'"));
}

/* ---- received map and discards ------------------------------------------ */

static void test_discards_make_exactly_those_pages_absent_in_runs(void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    receive_all(f, f->small);
    receive_all(f, f->big);
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 10, 5,
                                               f->err, sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 13, 4,
                                               f->err, sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 1023, 1,
                                               f->err, sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "vga.vram", 0, 2,
                                               f->err, sizeof(f->err)), 0);
    assert_false(postcopy_incoming_has_page(&f->pi, f->big, 12));
    assert_true(postcopy_incoming_has_page(&f->pi, f->big, 17));
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    /* Overlapping discards merge: 10..16 once, then 1023, then vram 0..1. */
    assert_int_equal(f->nabsent, 3);
    assert_ptr_equal(f->absent[0].block, f->big);
    assert_int_equal(f->absent[0].page, 10);
    assert_int_equal(f->absent[0].n, 7);
    assert_int_equal(f->absent[1].page, 1023);
    assert_int_equal(f->absent[1].n, 1);
    assert_ptr_equal(f->absent[2].block, f->small);
    assert_int_equal(f->absent[2].page, 0);
    assert_int_equal(f->absent[2].n, 2);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.discarded, 10);
    assert_int_equal(st.made_absent, 10);
}

static void test_a_discard_outside_a_block_or_of_an_unknown_one_changes_nothing(
    void **state)
{
    Fixture *f = *state;

    receive_all(f, f->big);
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 1020, 5,
                                               f->err, sizeof(f->err)),
                     -ERANGE);
    assert_non_null(strstr(f->err, "outside block 'xen.ram'"));
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram",
                                               UINT64_MAX, 2, f->err,
                                               sizeof(f->err)), -ERANGE);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "xen.ram", 0, 0,
                                               f->err, sizeof(f->err)),
                     -ERANGE);
    assert_int_equal(postcopy_incoming_discard(&f->pi, "pc.rom", 0, 1,
                                               f->err, sizeof(f->err)),
                     -ENOENT);
    assert_non_null(strstr(f->err, "'pc.rom'"));
    /* Every page of the big block is still here, and the state is ADVISE. */
    for (uint64_t p = 0; p < 1024; p++) {
        assert_true(postcopy_incoming_has_page(&f->pi, f->big, p));
    }
    PostcopyStats st;
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_ADVISE);
}

static void test_precopy_pages_after_listen_are_refused(void **state)
{
    Fixture *f = *state;

    assert_int_equal(postcopy_incoming_received(&f->pi, f->big, 1024, f->err,
                                                sizeof(f->err)), -ERANGE);
    to_listening(f);
    assert_int_equal(postcopy_incoming_received(&f->pi, f->big, 0, f->err,
                                                sizeof(f->err)), -EPROTO);
}

/* ---- PREPARE: the paging out done ahead --------------------------------- */

/* Pages [page, page + n) of @b received (precopy). */
static void receive(Fixture *f, RAMBlock *b, uint64_t page, uint64_t n)
{
    for (uint64_t p = page; p < page + n; p++) {
        assert_int_equal(postcopy_incoming_received(&f->pi, b, p, f->err,
                                                    sizeof(f->err)), 0);
    }
}

static void advise(Fixture *f)
{
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
}

static void discard(Fixture *f, const char *idstr, uint64_t start,
                    uint64_t n)
{
    assert_int_equal(postcopy_incoming_discard(&f->pi, idstr, start, n,
                                               f->err, sizeof(f->err)), 0);
}

/* A PREPARE that succeeds: the pages it made absent. */
static uint64_t prepare(Fixture *f)
{
    uint64_t pages = UINT64_MAX;

    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), 0);
    return pages;
}

static void assert_run(const Run *r, const RAMBlock *block, uint64_t page,
                       uint64_t n)
{
    assert_ptr_equal(r->block, block);
    assert_int_equal(r->page, page);
    assert_int_equal(r->n, n);
}

static void test_prepare_makes_the_missing_pages_absent_and_listen_not_again(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    receive(f, f->big, 0, 512);
    receive(f, f->small, 0, 5);
    receive(f, f->small, 10, 502);
    advise(f);
    assert_int_equal(prepare(f), 512 + 5);
    /* Every page missing, in runs: the big block's upper half, vram 5..9. */
    assert_int_equal(f->nabsent, 2);
    assert_run(&f->absent[0], f->big, 512, 512);
    assert_run(&f->absent[1], f->small, 5, 5);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_DISCARD);
    assert_int_equal(st.prepares, 1);
    assert_int_equal(st.made_absent, 517);
    assert_int_equal(st.made_absent_listen, 0);
    /* No DISCARD since: LISTEN has nothing left to page out. */
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(f->nabsent, 2);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_LISTENING);
    assert_int_equal(st.made_absent, 517);
    assert_int_equal(st.made_absent_listen, 0);
    assert_int_equal(st.prepares, 1);
    /* Still missing, to be placed: PREPARE made them absent, not here. */
    assert_false(postcopy_incoming_has_page(&f->pi, f->big, 512));
    assert_true(postcopy_incoming_has_page(&f->pi, f->big, 511));
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 512, NULL,
                                             f->err, sizeof(f->err)), 0);
    assert_int_equal(f->nplaced, 1);
}

static void test_after_prepare_only_what_discards_take_back_is_made_absent(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    receive(f, f->big, 0, 900);
    receive_all(f, f->small);
    advise(f);
    assert_int_equal(prepare(f), 124);
    assert_int_equal(f->nabsent, 1);
    assert_run(&f->absent[0], f->big, 900, 124);
    /* Received pages taken back by two DISCARDs that touch: one run. */
    discard(f, "xen.ram", 10, 5);
    discard(f, "xen.ram", 15, 3);
    /* Taken back already, or never received (absent already): nothing. */
    discard(f, "xen.ram", 12, 2);
    discard(f, "xen.ram", 950, 10);
    /* Half received, half absent already: the received half. */
    discard(f, "xen.ram", 895, 10);
    discard(f, "vga.vram", 0, 2);
    /* A DISCARD makes nothing absent by itself. */
    assert_int_equal(f->nabsent, 1);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.discarded, 8 + 5 + 2);
    assert_int_equal(prepare(f), 15);
    assert_int_equal(f->nabsent, 4);
    assert_run(&f->absent[1], f->big, 10, 8);
    assert_run(&f->absent[2], f->big, 895, 5);
    assert_run(&f->absent[3], f->small, 0, 2);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.made_absent, 124 + 15);
    assert_int_equal(st.prepares, 2);
    assert_int_equal(st.made_absent_listen, 0);
    /* Nothing taken back since: a PREPARE with nothing to page out. */
    assert_int_equal(prepare(f), 0);
    assert_int_equal(f->nabsent, 4);
    /* A page marked received after a PREPARE (an ABSENT one) and taken
     * back, and one of vram: LISTEN hands exactly those two. */
    receive(f, f->big, 1000, 1);
    discard(f, "xen.ram", 999, 3);
    discard(f, "vga.vram", 100, 1);
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(f->nabsent, 6);
    assert_run(&f->absent[4], f->big, 1000, 1);
    assert_run(&f->absent[5], f->small, 100, 1);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_LISTENING);
    assert_int_equal(st.prepares, 3);
    assert_int_equal(st.discarded, 8 + 5 + 2 + 1 + 1);
    assert_int_equal(st.made_absent, 124 + 15 + 2);
    assert_int_equal(st.made_absent_listen, 2);
    /* Every page made absent is one the destination does not have. */
    for (unsigned i = 0; i < f->nabsent; i++) {
        for (uint64_t p = 0; p < f->absent[i].n; p++) {
            assert_false(postcopy_incoming_has_page(
                &f->pi, (RAMBlock *)f->absent[i].block,
                f->absent[i].page + p));
        }
    }
}

static void test_prepare_out_of_order_is_refused_by_name_and_changes_nothing(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;
    uint64_t pages = 99;

    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "PREPARE arrived in state 'none'"));
    assert_int_equal(pages, 0);
    assert_int_equal(f->nabsent, 0);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_NONE);
    assert_int_equal(st.prepares, 0);
    assert_int_equal(st.made_absent, 0);
    receive_all(f, f->small);
    to_listening(f);
    assert_int_equal(f->nabsent, 1);
    pages = 99;
    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "PREPARE arrived in state 'listening'"));
    assert_int_equal(pages, 0);
    assert_int_equal(postcopy_incoming_run(&f->pi, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), -EPROTO);
    assert_non_null(strstr(f->err, "PREPARE arrived in state 'running'"));
    /* Nothing made absent again, nothing counted. */
    assert_int_equal(f->nabsent, 1);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_RUNNING);
    assert_int_equal(st.prepares, 0);
    assert_int_equal(st.made_absent, 1024);
    assert_int_equal(st.made_absent_listen, 1024);
}

static void test_a_failed_prepare_returns_the_error_and_loses_no_page(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;
    uint64_t pages = 99;

    receive_all(f, f->big);
    advise(f);
    f->absent_ret = -EBUSY;
    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), -EBUSY);
    assert_string_equal(f->err, "evict refused");
    assert_int_equal(pages, 0);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_ADVISE);
    assert_int_equal(st.prepares, 0);
    assert_int_equal(st.made_absent, 0);
    /* Nothing was paged out: the next one pages out every missing page. */
    f->absent_ret = 0;
    assert_int_equal(prepare(f), 512);
    assert_int_equal(f->nabsent, 1);
    assert_run(&f->absent[0], f->small, 0, 512);
    /* A later PREPARE that fails keeps the pages taken back since... */
    discard(f, "xen.ram", 0, 4);
    f->absent_ret = -EIO;
    assert_int_equal(postcopy_incoming_prepare(&f->pi, &pages, f->err,
                                               sizeof(f->err)), -EIO);
    assert_string_equal(f->err, "evict refused");
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_DISCARD);
    assert_int_equal(st.prepares, 1);
    assert_int_equal(st.made_absent, 512);
    /* ... and LISTEN makes them absent. */
    f->absent_ret = 0;
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(f->nabsent, 2);
    assert_run(&f->absent[1], f->big, 0, 4);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.made_absent, 516);
    assert_int_equal(st.made_absent_listen, 4);
}

static void test_without_prepare_listen_counts_what_it_made_absent(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    receive(f, f->big, 0, 100);
    advise(f);
    discard(f, "xen.ram", 50, 10);
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), 0);
    assert_int_equal(f->nabsent, 3);
    assert_run(&f->absent[0], f->big, 50, 10);
    assert_run(&f->absent[1], f->big, 100, 924);
    assert_run(&f->absent[2], f->small, 0, 512);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.prepares, 0);
    assert_int_equal(st.made_absent, 10 + 924 + 512);
    assert_int_equal(st.made_absent_listen, 10 + 924 + 512);
}

/* ---- placing ------------------------------------------------------------ */

static void test_a_page_is_placed_once_and_a_second_place_is_no_error(
    void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    to_listening(f);
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 5, NULL, f->err,
                                             sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 5, NULL, f->err,
                                             sizeof(f->err)), 0);
    assert_int_equal(f->nplaced, 1);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.placed, 1);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 1024, NULL,
                                             f->err, sizeof(f->err)),
                     -ERANGE);
}

static void test_a_failed_place_leaves_the_page_missing(void **state)
{
    Fixture *f = *state;

    to_listening(f);
    f->place_ret = -ENOMEM;
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 3, NULL, f->err,
                                             sizeof(f->err)), -ENOMEM);
    assert_string_equal(f->err, "load refused");
    assert_false(postcopy_incoming_has_page(&f->pi, f->big, 3));
    f->place_ret = 0;
    assert_int_equal(postcopy_incoming_place(&f->pi, f->big, 3, NULL, f->err,
                                             sizeof(f->err)), 0);
    assert_true(postcopy_incoming_has_page(&f->pi, f->big, 3));
}

static void test_a_failed_listen_stays_where_it_was(void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), 0);
    f->absent_ret = -EBUSY;
    assert_int_equal(postcopy_incoming_listen(&f->pi, f->err,
                                              sizeof(f->err)), -EBUSY);
    assert_string_equal(f->err, "evict refused");
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_ADVISE);
}

static void test_a_wrong_page_size_is_refused(void **state)
{
    Fixture *f = *state;

    assert_int_equal(postcopy_incoming_advise(&f->pi, 2 * MiB, f->err,
                                              sizeof(f->err)), -EINVAL);
    assert_non_null(strstr(f->err, "page size is 2097152"));
}

/* ---- notifiers ---------------------------------------------------------- */

typedef struct Refuser {
    PostcopyNotifier n;
    PostcopyNotifyReason refuse;
    unsigned calls[4];
} Refuser;

static int refuser_notify(PostcopyNotifier *n, PostcopyNotifyReason reason,
                          char *err, size_t errlen)
{
    Refuser *r = (Refuser *)n;

    r->calls[reason]++;
    if (reason == r->refuse) {
        snprintf(err, errlen, "hot-plug: RAM is being changed");
        return -EBUSY;
    }
    return 0;
}

static void test_a_notifier_that_refuses_advise_fails_it(void **state)
{
    Fixture *f = *state;
    Refuser r = { .n.notify = refuser_notify,
                  .refuse = POSTCOPY_NOTIFY_INBOUND_ADVISE };
    PostcopyStats st;

    postcopy_add_notifier(&f->pi, &r.n);
    assert_int_equal(postcopy_probe(&f->pi, f->err, sizeof(f->err)), 0);
    assert_int_equal(postcopy_incoming_advise(&f->pi, XR_PAGE_SIZE, f->err,
                                              sizeof(f->err)), -EBUSY);
    assert_string_equal(f->err, "hot-plug: RAM is being changed");
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.state, POSTCOPY_INCOMING_NONE);
    assert_int_equal(r.calls[POSTCOPY_NOTIFY_PROBE], 1);
}

static void test_notifiers_hear_listen_and_end(void **state)
{
    Fixture *f = *state;
    Refuser r = { .n.notify = refuser_notify, .refuse = 99 };

    postcopy_add_notifier(&f->pi, &r.n);
    receive_all(f, f->big);
    receive_all(f, f->small);
    to_listening(f);
    assert_int_equal(postcopy_incoming_run(&f->pi, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(postcopy_incoming_end(&f->pi, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(r.calls[POSTCOPY_NOTIFY_INBOUND_ADVISE], 1);
    assert_int_equal(r.calls[POSTCOPY_NOTIFY_INBOUND_LISTEN], 1);
    assert_int_equal(r.calls[POSTCOPY_NOTIFY_INBOUND_END], 1);
}

/* ---- fault latency ------------------------------------------------------ */

static void test_latency_percentiles_bound_the_samples(void **state)
{
    Fixture *f = *state;
    PostcopyStats st;

    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.p50_ns, 0);
    /* 98 faults of 50 us, one of 700 us, one of 3 ms. */
    for (int i = 0; i < 98; i++) {
        postcopy_incoming_fault_served(&f->pi, 50000);
    }
    postcopy_incoming_fault_served(&f->pi, 700000);
    postcopy_incoming_fault_served(&f->pi, 3000000);
    postcopy_incoming_stats(&f->pi, &st);
    assert_int_equal(st.requests, 100);
    assert_int_equal(st.blocktime_ns, 98ull * 50000 + 700000 + 3000000);
    /* 50 us is in [32, 64) us: the bound reported is 64 us - 1 ns. */
    assert_int_equal(st.p50_ns, 63999);
    /* The 99th sample is the 700 us one: [512, 1024) us. */
    assert_int_equal(st.p99_ns, 1023999);
    assert_int_equal(st.max_ns, 3000000);
    assert_int_equal(postcopy_latency_percentile(&st.latency, 100),
                     3000000);
    assert_int_equal(st.latency.bucket[5], 98);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_messages_out_of_order_are_refused_by_name),
        T(test_the_whole_sequence_reaches_end),
        T(test_end_with_a_page_missing_is_refused),
        T(test_discards_make_exactly_those_pages_absent_in_runs),
        T(test_a_discard_outside_a_block_or_of_an_unknown_one_changes_nothing),
        T(test_precopy_pages_after_listen_are_refused),
        T(test_prepare_makes_the_missing_pages_absent_and_listen_not_again),
        T(test_after_prepare_only_what_discards_take_back_is_made_absent),
        T(test_prepare_out_of_order_is_refused_by_name_and_changes_nothing),
        T(test_a_failed_prepare_returns_the_error_and_loses_no_page),
        T(test_without_prepare_listen_counts_what_it_made_absent),
        T(test_a_page_is_placed_once_and_a_second_place_is_no_error),
        T(test_a_failed_place_leaves_the_page_missing),
        T(test_a_failed_listen_stays_where_it_was),
        T(test_a_wrong_page_size_is_refused),
        T(test_a_notifier_that_refuses_advise_fails_it),
        T(test_notifiers_hear_listen_and_end),
        T(test_latency_percentiles_bound_the_samples),
#undef T
    };
    int ret;

    rcu_register_thread();
    ret = cmocka_run_group_tests_name("postcopy", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
}
