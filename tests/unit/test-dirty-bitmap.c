/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for dirty/bitmap.h: the blocked migration bitmap, its counts,
 * find_next, and dirty_memory_sync_bitmap() (block hand-over into an empty
 * destination block, fold into a non-empty one, partial blocks at both
 * ends of a bitmap that does not start on a block boundary), with a
 * randomised comparison against a plain bitmap model.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dirty/bitmap.h"

#define BP DIRTY_MEMORY_BLOCK_PAGES
/* Three whole blocks and part of a fourth. */
#define NPAGES (3 * BP + 1000)
#define MIG    DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION)

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

/* Bits set in @bm, bit by bit. */
static uint64_t slow_count(const DirtyBitmap *bm)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < bm->npages; i++) {
        n += dirty_bitmap_test(bm, i);
    }
    return n;
}

/* ---- the bitmap alone ------------------------------------------------- */

static void test_init_is_clear_and_spans_the_blocks_of_its_range(void **state)
{
    DirtyBitmap bm;

    (void)state;
    /* Pages [BP - 10, 2 * BP + 10): the tail of block 0 to the head of 2. */
    assert_int_equal(dirty_bitmap_init(&bm, BP - 10, BP + 20), 0);
    assert_int_equal(bm.first_block, 0);
    assert_int_equal(bm.nblocks, 3);
    assert_int_equal(dirty_bitmap_count(&bm), 0);
    assert_int_equal(slow_count(&bm), 0);
    assert_int_equal(dirty_bitmap_find_next(&bm, 0), BP + 20);
    dirty_bitmap_destroy(&bm);

    assert_int_equal(dirty_bitmap_init(&bm, 5 * BP, 1), 0);
    assert_int_equal(bm.first_block, 5);
    assert_int_equal(bm.nblocks, 1);
    dirty_bitmap_destroy(&bm);
}

static void test_init_rejects_empty_and_overflowing_ranges(void **state)
{
    DirtyBitmap bm;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 0), -EINVAL);
    assert_int_equal(dirty_bitmap_init(&bm, UINT64_MAX - 5, 10), -EINVAL);
}

static void test_set_range_across_blocks_counts_each_bit_once(void **state)
{
    DirtyBitmap bm;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 100, 2 * BP), 0);
    /* Relative BP - 150 .. BP - 50 straddles the block boundary. */
    assert_int_equal(dirty_bitmap_set_range(&bm, BP - 150, 100), 0);
    assert_int_equal(dirty_bitmap_count(&bm), 100);
    assert_int_equal(dirty_bitmap_set_range(&bm, BP - 160, 20), 0);
    assert_int_equal(dirty_bitmap_count(&bm), 110);
    assert_int_equal(bm.block_count[0] + bm.block_count[1], 110);
    assert_int_equal(slow_count(&bm), 110);
    assert_false(dirty_bitmap_test(&bm, BP - 161));
    assert_true(dirty_bitmap_test(&bm, BP - 160));
    assert_true(dirty_bitmap_test(&bm, BP - 51));
    assert_false(dirty_bitmap_test(&bm, BP - 50));
    dirty_bitmap_destroy(&bm);
}

static void test_clear_range_and_test_and_clear_keep_counts(void **state)
{
    DirtyBitmap bm;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 2 * BP), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 0, 2 * BP), 0);
    assert_int_equal(dirty_bitmap_count(&bm), 2 * BP);
    assert_int_equal(dirty_bitmap_clear_range(&bm, 3, BP), 0);
    assert_int_equal(dirty_bitmap_count(&bm), BP);
    assert_int_equal(bm.block_count[0], 3);
    assert_int_equal(bm.block_count[1], BP - 3);
    assert_int_equal(dirty_bitmap_test_and_clear(&bm, 2), 1);
    assert_int_equal(dirty_bitmap_test_and_clear(&bm, 2), 0);
    assert_int_equal(dirty_bitmap_test_and_clear(&bm, 2 * BP - 1), 1);
    assert_int_equal(dirty_bitmap_count(&bm), BP - 2);
    assert_int_equal(slow_count(&bm), BP - 2);
    dirty_bitmap_destroy(&bm);
}

static void test_find_next_skips_empty_blocks_and_respects_start(void **state)
{
    DirtyBitmap bm;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 7, 3 * BP), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 70, 1), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 2 * BP + 5, 2), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 3 * BP - 1, 1), 0);
    assert_int_equal(dirty_bitmap_find_next(&bm, 0), 70);
    assert_int_equal(dirty_bitmap_find_next(&bm, 70), 70);
    assert_int_equal(dirty_bitmap_find_next(&bm, 71), 2 * BP + 5);
    assert_int_equal(dirty_bitmap_find_next(&bm, 2 * BP + 6), 2 * BP + 6);
    assert_int_equal(dirty_bitmap_find_next(&bm, 2 * BP + 7), 3 * BP - 1);
    assert_int_equal(dirty_bitmap_test_and_clear(&bm, 3 * BP - 1), 1);
    assert_int_equal(dirty_bitmap_find_next(&bm, 2 * BP + 7), 3 * BP);
    assert_int_equal(dirty_bitmap_find_next(&bm, 3 * BP), 3 * BP);
    dirty_bitmap_destroy(&bm);
}

static void test_ranges_past_the_end_are_erange_and_change_nothing(void **state)
{
    DirtyBitmap bm;

    (void)state;
    assert_int_equal(dirty_bitmap_init(&bm, 0, 1000), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 990, 11), -ERANGE);
    assert_int_equal(dirty_bitmap_set_range(&bm, 1001, 0), -ERANGE);
    assert_int_equal(dirty_bitmap_set_range(&bm, 1, UINT64_MAX), -ERANGE);
    assert_int_equal(dirty_bitmap_count(&bm), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, 0, 1000), 0);
    assert_int_equal(dirty_bitmap_clear_range(&bm, 500, 501), -ERANGE);
    assert_int_equal(dirty_bitmap_test_and_clear(&bm, 1000), -ERANGE);
    assert_int_equal(dirty_bitmap_count(&bm), 1000);
    /* A zero-length range at the end is valid and touches nothing. */
    assert_int_equal(dirty_bitmap_clear_range(&bm, 1000, 0), 0);
    assert_int_equal(dirty_bitmap_count(&bm), 1000);
    dirty_bitmap_destroy(&bm);
}

/* ---- sync into the bitmap --------------------------------------------- */

static void test_sync_hands_a_whole_block_to_an_empty_destination(void **state)
{
    DirtyMemory *dm = *state;
    DirtyBitmap bm;
    unsigned long *src;

    assert_int_equal(dirty_bitmap_init(&bm, 0, NPAGES), 0);
    assert_int_equal(dirty_memory_set_page(dm, BP, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_range(dm, 2 * BP - 64, 64, MIG), 0);
    src = dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[1];

    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 0, NPAGES), 65);

    /* The very block that held the bits is now the bitmap's block 1. */
    assert_ptr_equal(bm.blocks[1], src);
    assert_ptr_not_equal(dm->clients[DIRTY_MEMORY_MIGRATION]->blocks[1], src);
    assert_int_equal(bm.block_count[1], 65);
    assert_int_equal(dirty_bitmap_count(&bm), 65);
    assert_true(dirty_bitmap_test(&bm, BP));
    assert_true(dirty_bitmap_test(&bm, 2 * BP - 1));
    assert_int_equal(slow_count(&bm), 65);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_MIGRATION),
                     0);
    /* The block swapped in is live and clean; the empty one was recycled. */
    assert_int_equal(dirty_memory_set_page(dm, BP + 7, DIRTY_MEMORY_MIGRATION),
                     0);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 0, NPAGES), 1);
    assert_int_equal(dirty_bitmap_count(&bm), 66);
    dirty_bitmap_destroy(&bm);
}

static void test_sync_folds_into_a_non_empty_block_counting_new_bits(void **state)
{
    DirtyMemory *dm = *state;
    DirtyBitmap bm;
    unsigned long *mine;

    assert_int_equal(dirty_bitmap_init(&bm, 0, NPAGES), 0);
    assert_int_equal(dirty_bitmap_set_range(&bm, BP + 10, 10), 0);
    mine = bm.blocks[1];
    /* 5 of these 10 are already in the bitmap. */
    assert_int_equal(dirty_memory_set_range(dm, BP + 15, 10, MIG), 0);

    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 0, NPAGES), 5);

    assert_ptr_equal(bm.blocks[1], mine);
    assert_int_equal(dirty_bitmap_count(&bm), 15);
    assert_int_equal(bm.block_count[1], 15);
    assert_int_equal(slow_count(&bm), 15);
    assert_int_equal(dirty_bitmap_find_next(&bm, 0), BP + 10);
    assert_int_equal(dirty_memory_get(dm, 0, NPAGES, DIRTY_MEMORY_MIGRATION),
                     0);
    dirty_bitmap_destroy(&bm);
}

static void test_sync_unaligned_bitmap_moves_only_its_own_pages(void **state)
{
    DirtyMemory *dm = *state;
    DirtyBitmap bm;
    /* Pages [BP - 100, 2 * BP + 100): a partial, a whole, a partial block. */
    uint64_t start = BP - 100, n = BP + 200;

    assert_int_equal(dirty_bitmap_init(&bm, start, n), 0);
    assert_int_equal(dirty_memory_set_range(dm, 0, NPAGES, MIG), 0);

    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 0, n), (int64_t)n);

    assert_int_equal(dirty_bitmap_count(&bm), n);
    assert_int_equal(slow_count(&bm), n);
    assert_int_equal(dirty_memory_get(dm, start, n, DIRTY_MEMORY_MIGRATION),
                     0);
    /* Pages on either side belong to other blocks' bitmaps: untouched. */
    assert_int_equal(dirty_memory_all(dm, 0, start, DIRTY_MEMORY_MIGRATION),
                     1);
    assert_int_equal(dirty_memory_all(dm, start + n, NPAGES - start - n,
                                      DIRTY_MEMORY_MIGRATION), 1);
    /* A sub-range sync of the bitmap works on relative indexes. */
    assert_int_equal(dirty_bitmap_clear_range(&bm, 0, n), 0);
    assert_int_equal(dirty_memory_set_range(dm, start + 50, 3, MIG), 0);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 51, 10), 2);
    assert_int_equal(dirty_bitmap_find_next(&bm, 0), 51);
    assert_int_equal(dirty_memory_get(dm, start + 50, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
    dirty_bitmap_destroy(&bm);
}

static void test_sync_bad_ranges_are_erange_and_move_nothing(void **state)
{
    DirtyMemory *dm = *state;
    DirtyBitmap bm, beyond;

    assert_int_equal(dirty_bitmap_init(&bm, 0, 1000), 0);
    assert_int_equal(dirty_memory_set_range(dm, 0, 1000, MIG), 0);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 999, 2), -ERANGE);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 1, UINT64_MAX),
                     -ERANGE);
    /* A bitmap reaching past the pages the dirty memory covers. */
    assert_int_equal(dirty_bitmap_init(&beyond, NPAGES - 10, 20), 0);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &beyond, 0, 20), -ERANGE);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &beyond, 0, 10), 0);
    assert_int_equal(dirty_bitmap_count(&bm), 0);
    assert_int_equal(dirty_memory_all(dm, 0, 1000, DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, 0, 0), 0);
    dirty_bitmap_destroy(&bm);
    dirty_bitmap_destroy(&beyond);
}

/*
 * Random dirtying, syncs (whole and partial), sends (test-and-clear,
 * clear-range) on a bitmap starting mid-block, mirrored on plain bitmaps.
 * Recycled blocks that were not clear would show up as dirty pages nobody
 * set; lost hand-overs as missing bits.
 */
static void test_random_syncs_and_sends_match_a_plain_model(void **state)
{
    DirtyMemory *dm = *state;
    uint64_t start = BP / 2 + 3, n = NPAGES - start - 7;
    unsigned long *src_model = xr_bitmap_new(NPAGES);
    unsigned long *bm_model = xr_bitmap_new(n);
    unsigned int seed = 777;
    DirtyBitmap bm;

    assert_non_null(src_model);
    assert_non_null(bm_model);
    assert_int_equal(dirty_bitmap_init(&bm, start, n), 0);
    for (int iter = 0; iter < 400; iter++) {
        switch (rand_r(&seed) % 4) {
        case 0: { /* the guest dirties a run, sometimes a whole block */
            uint64_t p = rand_r(&seed) % NPAGES;
            uint64_t len = rand_r(&seed) % 8 ? (uint64_t)(rand_r(&seed) % 300) : BP;

            len = MIN(len, NPAGES - p);
            assert_int_equal(dirty_memory_set_range(dm, p, len, MIG), 0);
            xr_bitmap_set(src_model, p, len);
            break;
        }
        case 1: { /* sync all, or a random sub-range */
            uint64_t i = 0, len = n, fresh = 0;

            if (rand_r(&seed) % 2) {
                i = rand_r(&seed) % n;
                len = rand_r(&seed) % (n - i + 1);
            }
            for (uint64_t k = i; k < i + len; k++) {
                if (xr_test_bit(start + k, src_model) && !xr_test_bit(k, bm_model)) {
                    xr_set_bit(k, bm_model);
                    fresh++;
                }
            }
            xr_bitmap_clear(src_model, start + i, len);
            assert_int_equal(dirty_memory_sync_bitmap(dm, &bm, i, len),
                             (int64_t)fresh);
            break;
        }
        case 2: { /* the sender sends a few pages it finds */
            uint64_t i = rand_r(&seed) % n;

            for (int k = 0; k < 50; k++) {
                uint64_t next = dirty_bitmap_find_next(&bm, i);

                assert_int_equal(next, xr_find_next_bit(bm_model, n, i));
                if (next == n) {
                    break;
                }
                assert_int_equal(dirty_bitmap_test_and_clear(&bm, next), 1);
                xr_clear_bit(next, bm_model);
                i = next + 1;
            }
            break;
        }
        default: { /* or a whole run of them */
            uint64_t i = rand_r(&seed) % n;
            uint64_t len = rand_r(&seed) % (2 * BP);

            len = MIN(len, n - i);

            assert_int_equal(dirty_bitmap_clear_range(&bm, i, len), 0);
            xr_bitmap_clear(bm_model, i, len);
            break;
        }
        }
        assert_int_equal(dirty_bitmap_count(&bm), xr_bitmap_count(bm_model, n));
    }
    for (uint64_t k = 0; k < n; k++) {
        if (dirty_bitmap_test(&bm, k) != xr_test_bit(k, bm_model)) {
            fail_msg("bit %llu differs", (unsigned long long)k);
        }
    }
    for (uint64_t p = 0; p < NPAGES; p += 512) {
        uint64_t len = MIN(512, NPAGES - p);

        assert_int_equal(dirty_memory_get(dm, p, len, DIRTY_MEMORY_MIGRATION),
                         xr_find_next_bit(src_model, p + len, p) < p + len);
    }
    dirty_bitmap_destroy(&bm);
    free(src_model);
    free(bm_model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_clear_and_spans_the_blocks_of_its_range),
        cmocka_unit_test(test_init_rejects_empty_and_overflowing_ranges),
        cmocka_unit_test(test_set_range_across_blocks_counts_each_bit_once),
        cmocka_unit_test(test_clear_range_and_test_and_clear_keep_counts),
        cmocka_unit_test(test_find_next_skips_empty_blocks_and_respects_start),
        cmocka_unit_test(test_ranges_past_the_end_are_erange_and_change_nothing),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_sync_hands_a_whole_block_to_an_empty_destination),
        T(test_sync_folds_into_a_non_empty_block_counting_new_bits),
        T(test_sync_unaligned_bitmap_moves_only_its_own_pages),
        T(test_sync_bad_ranges_are_erange_and_move_nothing),
        T(test_random_syncs_and_sends_match_a_plain_model),
#undef T
    };

    rcu_register_thread();
    int ret = cmocka_run_group_tests_name("dirty-bitmap", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
}
