/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-region-concurrency.c - lock-free FlatView readers against a writer
 * that keeps changing the region tree (run under ThreadSanitizer by
 * make check-tsan).
 *
 * Reader threads take the current view inside rcu_read_lock() and check
 * what must hold of every published view: ranges sorted, non-overlapping
 * and non-empty; binary-search lookups agreeing with a linear scan; RAM
 * ranges carrying the ram_addr of their region; main RAM, which lies under
 * everything else at the lowest priority, leaving no hole in its span; and
 * two regions that are only ever moved together in one transaction always
 * seen side by side.  A view freed too early shows up as a fault (ASan) or
 * a report (TSan); a torn update shows up as a broken invariant.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/region.h"

#define MiB ((uint64_t)1 << 20)
#define PAGE XR_PAGE_SIZE

#define N_READERS   3
#define N_MOVERS    4
#define WRITER_OPS  20000
#define RAM_SIZE    (8 * MiB)
#define PAIR_BASE   ((uint64_t)1 << 40)
#define PAIR_SIZE   PAGE

static RAMList rl;
static MemoryContext ctx;
static AddressSpace as;
static MemoryRegion root, ram, pair_a, pair_b;
static MemoryRegion movers[N_MOVERS];
static MemoryRegion ram_alias;
static bool writer_done;

/* First failure seen by any reader, reported by the main thread. */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int failures;
static char first_failure[256];

static void __attribute__((format(printf, 1, 2)))
report(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&fail_lock);
    if (failures++ == 0) {
        va_start(ap, fmt);
        vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_lock);
}

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static uint64_t io_read(void *opaque, uint64_t addr, unsigned int size)
{
    (void)opaque;
    (void)addr;
    (void)size;
    return 0;
}

static const MemoryRegionOps io_ops = { .read = io_read };

/* The range holding @addr by linear scan, or NULL. */
static const FlatRange *scan(const FlatView *view, uint64_t addr)
{
    const FlatRange *fr;

    FLATVIEW_FOREACH(fr, view) {
        if (addr >= fr->addr && addr - fr->addr < fr->size) {
            return fr;
        }
    }
    return NULL;
}

/* Check one view; returns false (after reporting) at the first breach. */
static bool check_view(const FlatView *view, uint64_t *seed)
{
    const FlatRange *fr, *a = NULL, *b = NULL;
    unsigned int i;

    for (i = 0; i < view->nr; i++) {
        fr = &view->ranges[i];
        if (fr->size == 0) {
            report("range %u is empty", i);
            return false;
        }
        if (i + 1 < view->nr &&
            (__int128)fr->addr + fr->size > view->ranges[i + 1].addr) {
            report("range %u [%#" PRIx64 ", +%#" PRIx64 ") overlaps or is "
                   "out of order with the next at %#" PRIx64, i, fr->addr,
                   fr->size, view->ranges[i + 1].addr);
            return false;
        }
        if (fr->mr == &ram &&
            fr->ram_addr != ram.ram_block->offset + fr->offset_in_region) {
            report("RAM range at %#" PRIx64 " has ram_addr %#" PRIx64,
                   fr->addr, fr->ram_addr);
            return false;
        }
        if (fr->mr == &pair_a) {
            a = fr;
        } else if (fr->mr == &pair_b) {
            b = fr;
        }
    }
    if (!a || !b || b->addr != a->addr + PAIR_SIZE) {
        report("the pair is torn: a at %#" PRIx64 ", b at %#" PRIx64,
               a ? a->addr : 0, b ? b->addr : 0);
        return false;
    }
    for (i = 0; i < 16; i++) {
        uint64_t addr = next_rand(seed) % (RAM_SIZE + 4 * MiB);
        uint64_t off, rem;
        const FlatRange *got = flatview_lookup(view, addr, &off, &rem);

        if (got != scan(view, addr)) {
            report("lookup of %#" PRIx64 " disagrees with a scan", addr);
            return false;
        }
        if (addr < RAM_SIZE && !got) {
            report("hole at %#" PRIx64 " inside main RAM", addr);
            return false;
        }
        if (got && (off != got->offset_in_region + (addr - got->addr) ||
                    rem != got->size - (addr - got->addr))) {
            report("lookup of %#" PRIx64 " gives wrong offset or length",
                   addr);
            return false;
        }
    }
    return true;
}

static void *reader(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
    unsigned long views = 0;

    rcu_register_thread();
    while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
        bool ok;

        rcu_read_lock();
        ok = check_view(address_space_get_flatview(&as), &seed);
        rcu_read_unlock();
        views++;
        if (!ok) {
            break;
        }
    }
    rcu_unregister_thread();
    return (void *)views;
}

static void writer_step(uint64_t *seed, unsigned int step)
{
    MemoryRegion *m = &movers[next_rand(seed) % N_MOVERS];
    uint64_t addr = (next_rand(seed) % (RAM_SIZE / PAGE + 512)) * PAGE;
    int prio = (int)(next_rand(seed) % 5) - 1;

    switch (next_rand(seed) % 6) {
    case 0:
        if (m->parent) {
            assert_int_equal(memory_region_del_subregion(&root, m), 0);
        } else {
            assert_int_equal(memory_region_add_subregion_overlap(&root, addr,
                                                                 m, prio), 0);
        }
        break;
    case 1:
        assert_int_equal(memory_region_set_address(m, addr), 0);
        break;
    case 2:
        assert_int_equal(memory_region_set_enabled(m, !m->enabled), 0);
        break;
    case 3:
        assert_int_equal(memory_region_set_alias_offset(&ram_alias, addr %
                                                        RAM_SIZE), 0);
        break;
    case 4:
        assert_int_equal(memory_region_set_size(m, PAGE * (1 + step % 64)),
                         0);
        break;
    default:
        /* The pair moves as one: readers must never see half of it. */
        assert_int_equal(memory_region_transaction_begin(&ctx), 0);
        assert_int_equal(memory_region_set_address(&pair_a, PAIR_BASE + addr),
                         0);
        assert_int_equal(memory_region_set_address(&pair_b, PAIR_BASE + addr +
                                                   PAIR_SIZE), 0);
        assert_int_equal(memory_region_transaction_commit(&ctx), 0);
        break;
    }
}

static void test_readers_always_see_a_consistent_view(void **state)
{
    pthread_t threads[N_READERS];
    unsigned long total = 0;
    uint64_t seed = 12345;
    RAMBlock *block;
    char name[16];

    (void)state;
    assert_int_equal(ram_list_init(&rl), 0);
    assert_int_equal(ram_block_add(&rl, "ram", RAM_SIZE, RAM_SIZE, NULL, 0,
                                   NULL, &block), 0);
    assert_int_equal(memory_context_init(&ctx, &rl), 0);
    assert_int_equal(memory_region_init(&root, &ctx, "root", 0), 0);
    assert_int_equal(memory_region_init_ram(&ram, &ctx, "ram", block), 0);
    assert_int_equal(memory_region_init_alias(&ram_alias, "ram-alias", &ram,
                                              0, MiB), 0);
    assert_int_equal(memory_region_init_io(&pair_a, &ctx, "a", &io_ops, NULL,
                                           PAIR_SIZE), 0);
    assert_int_equal(memory_region_init_io(&pair_b, &ctx, "b", &io_ops, NULL,
                                           PAIR_SIZE), 0);
    for (unsigned int i = 0; i < N_MOVERS; i++) {
        snprintf(name, sizeof(name), "mover%u", i);
        assert_int_equal(memory_region_init_io(&movers[i], &ctx, name,
                                               &io_ops, NULL, PAGE), 0);
    }
    assert_int_equal(memory_region_add_subregion_overlap(&root, 0, &ram,
                                                         -100), 0);
    assert_int_equal(memory_region_add_subregion_overlap(&root, RAM_SIZE,
                                                         &ram_alias, 1), 0);
    assert_int_equal(memory_region_add_subregion(&root, PAIR_BASE, &pair_a),
                     0);
    assert_int_equal(memory_region_add_subregion(&root, PAIR_BASE + PAIR_SIZE,
                                                 &pair_b), 0);
    assert_int_equal(address_space_init(&as, &ctx, &root, "memory"), 0);

    for (uintptr_t i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, reader,
                                        (void *)i), 0);
    }
    for (unsigned int step = 0; step < WRITER_OPS && !failures; step++) {
        writer_step(&seed, step);
    }
    __atomic_store_n(&writer_done, true, __ATOMIC_RELEASE);
    for (unsigned int i = 0; i < N_READERS; i++) {
        void *views;

        pthread_join(threads[i], &views);
        total += (unsigned long)views;
    }
    if (failures) {
        fail_msg("%u failures, first: %s", failures, first_failure);
    }
    assert_true(total > 0);

    assert_int_equal(address_space_destroy(&as), 0);
    for (unsigned int i = 0; i < N_MOVERS; i++) {
        if (movers[i].parent) {
            assert_int_equal(memory_region_del_subregion(&root, &movers[i]),
                             0);
        }
        assert_int_equal(memory_region_destroy(&movers[i]), 0);
    }
    assert_int_equal(memory_region_del_subregion(&root, &pair_a), 0);
    assert_int_equal(memory_region_del_subregion(&root, &pair_b), 0);
    assert_int_equal(memory_region_del_subregion(&root, &ram_alias), 0);
    assert_int_equal(memory_region_del_subregion(&root, &ram), 0);
    assert_int_equal(memory_region_destroy(&pair_a), 0);
    assert_int_equal(memory_region_destroy(&pair_b), 0);
    assert_int_equal(memory_region_destroy(&ram_alias), 0);
    assert_int_equal(memory_region_destroy(&ram), 0);
    assert_int_equal(memory_region_destroy(&root), 0);
    assert_int_equal(memory_context_destroy(&ctx), 0);
    ram_list_destroy(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_always_see_a_consistent_view),
    };
    int failed;

    rcu_register_thread();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    rcu_unregister_thread();
    return failed;
}
