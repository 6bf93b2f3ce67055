/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for dirty/: each operation on ranges that cross block
 * boundaries, unaligned starts and ends, zero lengths, the last page of a
 * block, growth, bad arguments, and a randomised comparison with a plain
 * bitmap model.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dirty/dirty.h"

#define BP DIRTY_MEMORY_BLOCK_PAGES
/* Two whole blocks and part of a third. */
#define NPAGES (2 * BP + 1000)

static int setup(void **state)
{
    DirtyMemory *dm = malloc(sizeof(*dm));

    assert_non_null(dm);
    assert_int_equal(dirty_memory_init(dm), 0);
    assert_int_equal(dirty_memory_grow(dm, NPAGES), 0);
    *state = dm;
    return 0;
}

static int teardown(void **state)
{
    DirtyMemory *dm = *state;

    dirty_memory_destroy(dm);
    free(dm);
    return 0;
}

/* Number of dirty pages of @client in [page, page + n), page by page. */
static uint64_t count_dirty(DirtyMemory *dm, uint64_t page, uint64_t n,
                            unsigned int client)
{
    uint64_t count = 0;

    for (uint64_t p = page; p < page + n; p++) {
        int r = dirty_memory_get(dm, p, 1, client);

        assert_true(r == 0 || r == 1);
        count += r;
    }
    return count;
}

/* ---- growth ---------------------------------------------------------- */

static void test_init_covers_no_pages(void **state)
{
    DirtyMemory dm;

    (void)state;
    assert_int_equal(dirty_memory_init(&dm), 0);
    assert_int_equal(dirty_memory_pages(&dm), 0);
    assert_int_equal(dirty_memory_get(&dm, 0, 1, DIRTY_MEMORY_VGA), -ERANGE);
    assert_int_equal(dirty_memory_get(&dm, 0, 0, DIRTY_MEMORY_VGA), 0);
    dirty_memory_destroy(&dm);
}

static void test_grow_covers_requested_pages_and_starts_clean(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_pages(dm), NPAGES);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_get(dm, 0, NPAGES, c), 0);
    }
    assert_int_equal(dirty_memory_set_page(dm, NPAGES - 1,
                                           DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_set_page(dm, NPAGES, DIRTY_MEMORY_VGA),
                     -ERANGE);
}

static void test_grow_never_shrinks(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_grow(dm, 10), 0);
    assert_int_equal(dirty_memory_pages(dm), NPAGES);
}

static void test_grow_keeps_bits_and_reuses_blocks(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long *first_block;

    assert_int_equal(dirty_memory_set_page(dm, 5, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_page(dm, NPAGES - 1,
                                           DIRTY_MEMORY_CODE), 0);
    first_block = dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[0];

    assert_int_equal(dirty_memory_grow(dm, 4 * BP), 0);

    assert_int_equal(dirty_memory_pages(dm), 4 * BP);
    assert_ptr_equal(dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[0],
                     first_block);
    assert_int_equal(dirty_memory_get(dm, 5, 1, DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(dm, NPAGES - 1, 1, DIRTY_MEMORY_CODE),
                     1);
    assert_int_equal(dirty_memory_get(dm, NPAGES, 4 * BP - NPAGES,
                                      DIRTY_MEMORY_CODE), 0);
}

/* ---- set and get ------------------------------------------------------ */

static void test_set_page_marks_only_that_page_and_client(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_set_page(dm, 77, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(count_dirty(dm, 0, 200, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, 77, 1, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_CODE), 0);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES,
                                      DIRTY_MEMORY_MIGRATION), 0);
}

static void test_set_page_last_page_of_block(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_set_page(dm, BP - 1,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_get(dm, BP - 1, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(dm, BP, 1, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_get(dm, 0, BP - 1,
                                      DIRTY_MEMORY_MIGRATION), 0);
    /* A range that only touches the page across the boundary sees it. */
    assert_int_equal(dirty_memory_get(dm, BP - 1, 2,
                                      DIRTY_MEMORY_MIGRATION), 1);
}

static void test_set_range_crosses_block_boundary(void **state)
{
    DirtyMemory *dm = *state;
    uint64_t start = BP - 100, n = 300;

    assert_int_equal(dirty_memory_set_range(dm, start, n,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA)),
                     0);
    assert_int_equal(dirty_memory_all(dm, start, n, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(count_dirty(dm, start - 64, n + 128, DIRTY_MEMORY_VGA),
                     n);
    assert_int_equal(dirty_memory_get(dm, start - 1, 1, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_get(dm, start + n, 1, DIRTY_MEMORY_VGA), 0);
}

static void test_set_range_unaligned_start_and_end(void **state)
{
    DirtyMemory *dm = *state;

    /* Starts and ends inside words; spans several whole words between. */
    assert_int_equal(dirty_memory_set_range(dm, 3, 250,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_CODE)),
                     0);
    assert_int_equal(count_dirty(dm, 0, 300, DIRTY_MEMORY_CODE), 250);
    assert_int_equal(dirty_memory_all(dm, 3, 250, DIRTY_MEMORY_CODE), 1);
    assert_int_equal(dirty_memory_all(dm, 2, 251, DIRTY_MEMORY_CODE), 0);
    assert_int_equal(dirty_memory_all(dm, 3, 251, DIRTY_MEMORY_CODE), 0);

    /* Within one word. */
    assert_int_equal(dirty_memory_set_range(dm, 1000, 5,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA)),
                     0);
    assert_int_equal(count_dirty(dm, 960, 128, DIRTY_MEMORY_VGA), 5);
}

static void test_set_range_mask_selects_clients(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_set_range(dm, 10, 10, DIRTY_CLIENTS_NOCODE),
                     0);
    assert_int_equal(dirty_memory_all(dm, 10, 10, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_all(dm, 10, 10, DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_CODE), 0);
}

static void test_zero_length_touches_nothing(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long bits = ~0UL;

    assert_int_equal(dirty_memory_set_range(dm, 64, 0, DIRTY_CLIENTS_ALL), 0);
    assert_int_equal(dirty_memory_set_lebitmap(dm, &bits, 64, 0,
                                               DIRTY_CLIENTS_ALL), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_get(dm, 0, NPAGES, c), 0);
        assert_int_equal(dirty_memory_get(dm, 64, 0, c), 0);
        assert_int_equal(dirty_memory_all(dm, 64, 0, c), 1);
        assert_int_equal(dirty_memory_test_and_clear(dm, 64, 0, c), 0);
    }
    /* A zero-length range at the very end is valid too. */
    assert_int_equal(dirty_memory_get(dm, NPAGES, 0, DIRTY_MEMORY_VGA), 0);
}

static void test_whole_range_all_dirty(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_set_range(dm, 0, NPAGES,
                                            DIRTY_CLIENTS_ALL), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_all(dm, 0, NPAGES, c), 1);
    }
    assert_int_equal(dirty_memory_test_and_clear(dm, NPAGES - 1, 1,
                                                 DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_all(dm, 0, NPAGES, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_all(dm, 0, NPAGES - 1, DIRTY_MEMORY_VGA), 1);
}

/* ---- little-endian bitmaps -------------------------------------------- */

static void test_lebitmap_aligned_sets_exactly_the_bits(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long bm[4] = { htole64(0x8000000000000001UL), 0,
                            htole64(0x10UL), htole64(~0UL) };

    /* 200 pages: the last word's bits past 200 - 192 = 8 are ignored. */
    assert_int_equal(dirty_memory_set_lebitmap(dm, bm, BP - 128, 200,
                                               DIRTY_CLIENTS_ALL), 0);
    assert_int_equal(count_dirty(dm, BP - 192, 400, DIRTY_MEMORY_VGA),
                     2 + 1 + 8);
    assert_int_equal(dirty_memory_get(dm, BP - 128, 1, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, BP - 65, 1, DIRTY_MEMORY_CODE), 1);
    /* Bit 4 of the third word falls in the second block. */
    assert_int_equal(dirty_memory_get(dm, BP + 4, 1, DIRTY_MEMORY_MIGRATION),
                     1);
    assert_int_equal(dirty_memory_all(dm, BP + 64, 8, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, BP + 72, 1, DIRTY_MEMORY_VGA), 0);
}

static void test_lebitmap_unaligned_crosses_words_and_blocks(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long bm[2] = { htole64(0xF00000000000000FUL), htole64(0x3UL) };
    uint64_t start = BP - 61;   /* bit 61 lands on the first page of block 1 */

    assert_int_equal(dirty_memory_set_lebitmap(dm, bm, start, 66,
                                               DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA)),
                     0);
    assert_int_equal(count_dirty(dm, start - 64, 256, DIRTY_MEMORY_VGA), 10);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(dirty_memory_get(dm, start + i, 1,
                                          DIRTY_MEMORY_VGA), 1);
        assert_int_equal(dirty_memory_get(dm, start + 60 + i, 1,
                                          DIRTY_MEMORY_VGA), 1);
    }
    assert_int_equal(dirty_memory_get(dm, start + 64, 2, DIRTY_MEMORY_VGA) &&
                     dirty_memory_all(dm, start + 64, 2, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_CODE), 0);
}

/* ---- test and clear --------------------------------------------------- */

static void test_test_and_clear_reports_and_clears_only_the_range(void **state)
{
    DirtyMemory *dm = *state;

    assert_int_equal(dirty_memory_set_range(dm, BP - 10, 20,
                                            DIRTY_CLIENTS_ALL), 0);
    assert_int_equal(dirty_memory_test_and_clear(dm, BP - 5, 10,
                                                 DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(dm, BP - 5, 10, DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_all(dm, BP - 10, 5, DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_all(dm, BP + 5, 5, DIRTY_MEMORY_VGA), 1);
    /* Other clients are untouched. */
    assert_int_equal(dirty_memory_all(dm, BP - 10, 20, DIRTY_MEMORY_CODE), 1);
    /* Clearing again reports nothing. */
    assert_int_equal(dirty_memory_test_and_clear(dm, BP - 5, 10,
                                                 DIRTY_MEMORY_VGA), 0);
}

/* ---- sync ------------------------------------------------------------- */

static void test_sync_aligned_moves_bits_and_counts_new_ones(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long *dest = xr_bitmap_new(1024);
    int64_t n;

    assert_non_null(dest);
    assert_int_equal(dirty_memory_set_range(dm, 128 + 10, 100,
                                            DIRTY_CLIENTS_ALL), 0);
    xr_set_bit(10, dest);      /* already dirty in dest: not counted */
    xr_set_bit(500, dest);     /* outside the source bits: kept */

    n = dirty_memory_sync(dm, dest, 0, 128, 1024);

    assert_int_equal(n, 99);
    assert_int_equal(xr_bitmap_count(dest, 1024), 101);
    assert_int_equal(xr_find_next_bit(dest, 1024, 0), 10);
    assert_int_equal(xr_find_next_zero_bit(dest, 1024, 10), 110);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_MIGRATION),
                     0);
    /* Sync only touches the MIGRATION client. */
    assert_int_equal(dirty_memory_all(dm, 138, 100, DIRTY_MEMORY_VGA), 1);
    free(dest);
}

static void test_sync_unaligned_destination(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long *dest = xr_bitmap_new(512);
    int64_t n;

    assert_non_null(dest);
    assert_int_equal(dirty_memory_set_range(dm, BP - 3, 70,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION)),
                     0);
    /* Source page BP - 40 is destination bit 7: a shift of 47 bits. */
    n = dirty_memory_sync(dm, dest, 7, BP - 40, 200);

    assert_int_equal(n, 70);
    assert_int_equal(xr_find_next_bit(dest, 512, 0), 7 + 37);
    assert_int_equal(xr_find_next_zero_bit(dest, 512, 44), 44 + 70);
    assert_int_equal(xr_bitmap_count(dest, 512), 70);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_MIGRATION),
                     0);
    free(dest);
}

static void test_sync_whole_block_swaps_and_keeps_working(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long *dest = xr_bitmap_new(NPAGES);
    unsigned long *before;
    int64_t n;

    assert_non_null(dest);
    /* Dirty pages at both edges of block 1 and next to it. */
    assert_int_equal(dirty_memory_set_page(dm, BP - 1,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_range(dm, BP, 3,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION)),
                     0);
    assert_int_equal(dirty_memory_set_page(dm, 2 * BP - 1,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_page(dm, 2 * BP + 999,
                                           DIRTY_MEMORY_MIGRATION), 0);
    before = dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[1];

    n = dirty_memory_sync(dm, dest, 0, 0, NPAGES);

    assert_int_equal(n, 6);
    assert_ptr_not_equal(dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[1],
                         before);
    assert_true(xr_test_bit(BP - 1, dest) && xr_test_bit(BP, dest) &&
                xr_test_bit(BP + 2, dest) && xr_test_bit(2 * BP - 1, dest) &&
                xr_test_bit(2 * BP + 999, dest));
    assert_int_equal(xr_bitmap_count(dest, NPAGES), 6);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_MIGRATION),
                     0);

    /* The swapped-in block is live: new bits land and sync again. */
    assert_int_equal(dirty_memory_set_page(dm, BP + 100,
                                           DIRTY_MEMORY_MIGRATION), 0);
    n = dirty_memory_sync(dm, dest, 0, 0, NPAGES);
    assert_int_equal(n, 1);
    assert_true(xr_test_bit(BP + 100, dest));
    /* Already-dirty destination bits are not counted again. */
    assert_int_equal(dirty_memory_set_page(dm, BP + 100,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_sync(dm, dest, 0, 0, NPAGES), 0);
    free(dest);
}

static void test_sync_full_block_with_offset_destination(void **state)
{
    DirtyMemory *dm = *state;
    /* dest bit 64 corresponds to page BP - 64: whole block 1 is inside. */
    uint64_t npages = BP + 128;
    unsigned long *dest = xr_bitmap_new(npages + 64);

    assert_non_null(dest);
    assert_int_equal(dirty_memory_set_range(dm, BP - 64, npages,
                                            DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION)),
                     0);
    assert_int_equal(dirty_memory_sync(dm, dest, 64, BP - 64, npages),
                     (int64_t)npages);
    assert_int_equal(xr_bitmap_count(dest, npages + 64), npages);
    assert_int_equal(xr_find_next_bit(dest, npages + 64, 0), 64);
    free(dest);
}

/* ---- bad arguments ----------------------------------------------------- */

static void test_bad_client_is_einval(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long bm = 1;

    assert_int_equal(dirty_memory_get(dm, 0, 1, DIRTY_MEMORY_NUM), -EINVAL);
    assert_int_equal(dirty_memory_all(dm, 0, 1, 99), -EINVAL);
    assert_int_equal(dirty_memory_set_page(dm, 0, DIRTY_MEMORY_NUM), -EINVAL);
    assert_int_equal(dirty_memory_test_and_clear(dm, 0, 1, 7), -EINVAL);
    assert_int_equal(dirty_memory_set_range(dm, 0, 1, 1u << 3), -EINVAL);
    assert_int_equal(dirty_memory_set_lebitmap(dm, &bm, 0, 1, 0x80), -EINVAL);
}

static void test_range_beyond_end_is_erange_and_changes_nothing(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long bm[2] = { ~0UL, ~0UL };
    unsigned long dest[2] = { 0, 0 };

    assert_int_equal(dirty_memory_set_range(dm, NPAGES - 1, 2,
                                            DIRTY_CLIENTS_ALL), -ERANGE);
    assert_int_equal(dirty_memory_set_range(dm, UINT64_MAX, 2,
                                            DIRTY_CLIENTS_ALL), -ERANGE);
    assert_int_equal(dirty_memory_set_range(dm, 1, UINT64_MAX,
                                            DIRTY_CLIENTS_ALL), -ERANGE);
    assert_int_equal(dirty_memory_set_lebitmap(dm, bm, NPAGES - 64, 128,
                                               DIRTY_CLIENTS_ALL), -ERANGE);
    assert_int_equal(dirty_memory_get(dm, NPAGES, 1, DIRTY_MEMORY_VGA),
                     -ERANGE);
    assert_int_equal(dirty_memory_all(dm, 0, NPAGES + 1, DIRTY_MEMORY_VGA),
                     -ERANGE);
    assert_int_equal(dirty_memory_test_and_clear(dm, NPAGES + 5, 1,
                                                 DIRTY_MEMORY_VGA), -ERANGE);
    assert_int_equal(dirty_memory_sync(dm, dest, 0, NPAGES - 64, 128),
                     -ERANGE);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_get(dm, 0, NPAGES, c), 0);
    }
}

/* ---- model check ------------------------------------------------------ */

/*
 * Random operations on random (often unaligned, often block-crossing)
 * ranges, mirrored on a plain bitmap per client; the two must agree.
 */
static void test_random_operations_match_plain_bitmap_model(void **state)
{
    DirtyMemory *dm = *state;
    unsigned long *model[DIRTY_MEMORY_NUM], *dest, *dest_model;
    unsigned long lebm[64];
    unsigned int seed = 12345;

    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        model[c] = xr_bitmap_new(NPAGES);
        assert_non_null(model[c]);
    }
    dest = xr_bitmap_new(NPAGES + 64);
    dest_model = xr_bitmap_new(NPAGES + 64);
    assert_non_null(dest);
    assert_non_null(dest_model);

    for (int iter = 0; iter < 3000; iter++) {
        /* Ranges near block boundaries are the interesting ones. */
        uint64_t base = (rand_r(&seed) % 3) * BP;
        uint64_t page = base + (rand_r(&seed) % 4096) - 2048;
        uint64_t n = rand_r(&seed) % 2048;
        unsigned int c = rand_r(&seed) % DIRTY_MEMORY_NUM;
        unsigned int mask = rand_r(&seed) % (DIRTY_CLIENTS_ALL + 1);

        if (page >= NPAGES) {
            page = rand_r(&seed) % 1000;
        }
        n = MIN(n, NPAGES - page);

        switch (rand_r(&seed) % 5) {
        case 0:
            assert_int_equal(dirty_memory_set_range(dm, page, n, mask), 0);
            for (int k = 0; k < DIRTY_MEMORY_NUM; k++) {
                if (mask & DIRTY_CLIENT_MASK(k)) {
                    xr_bitmap_set(model[k], page, n);
                }
            }
            break;
        case 1: {
            n = MIN(n, 64 * BITS_PER_LONG);
            for (unsigned int k = 0; k < ARRAY_SIZE(lebm); k++) {
                lebm[k] = htole64(((unsigned long)rand_r(&seed) << 33) ^
                                  rand_r(&seed));
            }
            if (rand_r(&seed) % 2) {
                page &= ~(uint64_t)(BITS_PER_LONG - 1);
            }
            assert_int_equal(dirty_memory_set_lebitmap(dm, lebm, page, n,
                                                       mask), 0);
            for (uint64_t i = 0; i < n; i++) {
                if (xr_test_bit(i, lebm)) {
                    for (int k = 0; k < DIRTY_MEMORY_NUM; k++) {
                        if (mask & DIRTY_CLIENT_MASK(k)) {
                            xr_set_bit(page + i, model[k]);
                        }
                    }
                }
            }
            break;
        }
        case 2: {
            bool expect = xr_find_next_bit(model[c], page + n, page) < page + n;

            assert_int_equal(dirty_memory_test_and_clear(dm, page, n, c),
                             expect);
            xr_bitmap_clear(model[c], page, n);
            break;
        }
        case 3: {
            uint64_t shift = rand_r(&seed) % 64, fresh = 0;

            for (uint64_t i = 0; i < n; i++) {
                if (xr_test_bit(page + i, model[DIRTY_MEMORY_MIGRATION])) {
                    if (!xr_test_bit(shift + i, dest_model)) {
                        fresh++;
                        xr_set_bit(shift + i, dest_model);
                    }
                }
            }
            xr_bitmap_clear(model[DIRTY_MEMORY_MIGRATION], page, n);
            assert_int_equal(dirty_memory_sync(dm, dest, shift, page, n),
                             (int64_t)fresh);
            break;
        }
        default: {
            bool any = xr_find_next_bit(model[c], page + n, page) < page + n;
            bool all = xr_find_next_zero_bit(model[c], page + n, page) >=
                       page + n;

            assert_int_equal(dirty_memory_get(dm, page, n, c), any);
            assert_int_equal(dirty_memory_all(dm, page, n, c), all);
            break;
        }
        }
    }

    /* Finally compare everything, including a whole-block sync. */
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        for (uint64_t p = 0; p < NPAGES; p += 4096) {
            uint64_t n = MIN(4096, NPAGES - p);
            bool any = xr_find_next_bit(model[c], p + n, p) < p + n;

            assert_int_equal(dirty_memory_get(dm, p, n, c), any);
        }
    }
    memset(dest, 0, BITS_TO_LONGS(NPAGES + 64) * sizeof(long));
    assert_int_equal(dirty_memory_sync(dm, dest, 0, 0, NPAGES),
                     (int64_t)xr_bitmap_count(model[DIRTY_MEMORY_MIGRATION],
                                           NPAGES));
    assert_memory_equal(dest, model[DIRTY_MEMORY_MIGRATION],
                        (NPAGES / BITS_PER_LONG) * sizeof(long));

    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        free(model[c]);
    }
    free(dest);
    free(dest_model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_covers_no_pages),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_grow_covers_requested_pages_and_starts_clean),
        T(test_grow_never_shrinks),
        T(test_grow_keeps_bits_and_reuses_blocks),
        T(test_set_page_marks_only_that_page_and_client),
        T(test_set_page_last_page_of_block),
        T(test_set_range_crosses_block_boundary),
        T(test_set_range_unaligned_start_and_end),
        T(test_set_range_mask_selects_clients),
        T(test_zero_length_touches_nothing),
        T(test_whole_range_all_dirty),
        T(test_lebitmap_aligned_sets_exactly_the_bits),
        T(test_lebitmap_unaligned_crosses_words_and_blocks),
        T(test_test_and_clear_reports_and_clears_only_the_range),
        T(test_sync_aligned_moves_bits_and_counts_new_ones),
        T(test_sync_unaligned_destination),
        T(test_sync_whole_block_swaps_and_keeps_working),
        T(test_sync_full_block_with_offset_destination),
        T(test_bad_client_is_einval),
        T(test_range_beyond_end_is_erange_and_changes_nothing),
        T(test_random_operations_match_plain_bitmap_model),
#undef T
    };

    rcu_register_thread();
    int ret = cmocka_run_group_tests_name("dirty", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
}
