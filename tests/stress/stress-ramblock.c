/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stress-ramblock.c - lock-free RAMBlock lookups against a churning writer.
 *
 * Reader threads look blocks up by ram_addr, host pointer and name inside
 * rcu_read_lock() and touch the memory of what they find, while one writer
 * adds, grows and removes RAM_OWN_HOST blocks as fast as it can.  A block
 * freed too early shows up as a fault (ASan: use after unmap) or a report
 * (TSan); a broken list or MRU shows up as a block that does not contain
 * the address it was found for.
 *
 * Blocks only grow between add and remove, so a block found for an
 * address keeps containing it: a reader may check that after the lookup
 * without racing with a legitimate shrink.  Readers read at most two pages
 * of each block and never write: page faults are slow here, and a write
 * from a reader would be a real race.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/ramblock.h"
#include "tests/common/stress.h"

#define MiB ((ram_addr_t)1 << 20)
#define PAGE XR_PAGE_SIZE

#define N_READERS   3
#define N_SLOTS     6
#define WRITER_OPS  5000

static RAMList rl;
static bool writer_done;

static void slot_name(char *buf, size_t len, unsigned int slot)
{
    snprintf(buf, len, "dimm%u", slot);
}

/* ---- readers ---------------------------------------------------------- */

typedef struct ReaderStats {
    uint64_t seed;
    uint64_t lookups, hits;
} ReaderStats;

/* Touch the first and the last used page; a freed block faults. */
static uint8_t touch(const RAMBlock *block, ram_addr_t used)
{
    const volatile uint8_t *p = block->host;

    return p[0] + p[used - 1];
}

/*
 * Everything a reader can check of a block it holds: sane geometry, host
 * memory there, and dirty bitmaps that already cover it.
 */
static void check_block(const RAMBlock *block, ram_addr_t used)
{
    if (block->offset % RAM_BLOCK_ALIGN ||
        block->offset + block->max_length > RAM_ADDR_MAX) {
        stress_report("block %s at unaligned offset %#llx", block->idstr,
                      (unsigned long long)block->offset);
    }
    if (used == 0 || used > block->max_length) {
        stress_report("block %s used_length %#llx outside (0, %#llx]",
                      block->idstr, (unsigned long long)used,
                      (unsigned long long)block->max_length);
    }
    if (!block->host) {
        stress_report("block %s has no host memory", block->idstr);
        return;
    }
    if (dirty_memory_pages(&rl.dirty) <
        (block->offset + block->max_length) >> XR_PAGE_BITS) {
        stress_report("dirty bitmaps do not cover block %s", block->idstr);
    }
    (void)touch(block, used);
}

static void read_by_addr(ReaderStats *st)
{
    ram_addr_t addr, off = RAM_ADDR_INVALID, used;
    RAMBlock *block, *by_host;

    rcu_read_lock();
    /* Slightly past the end too, so that misses are exercised. */
    addr = stress_rand(&st->seed) % (ram_list_last_offset(&rl) + 2 * MiB);
    addr &= XR_PAGE_MASK;
    for (int i = 0; i < 2; i++, addr += PAGE) {   /* second: MRU hit */
        st->lookups++;
        block = ram_block_from_addr(&rl, addr, &off);
        if (!block) {
            continue;
        }
        st->hits++;
        used = ram_block_used_length(block);
        if (addr < block->offset || off != addr - block->offset ||
            off >= used) {
            stress_report("addr %#llx found in %s [%#llx, +%#llx) at "
                          "offset %#llx", (unsigned long long)addr,
                          block->idstr, (unsigned long long)block->offset,
                          (unsigned long long)used, (unsigned long long)off);
            continue;
        }
        check_block(block, used);
        /* Host mappings are distinct while we hold the block. */
        by_host = ram_block_from_host(&rl, block->host + off, NULL);
        if (by_host && by_host != block) {
            stress_report("host pointer of %s resolves to %s", block->idstr,
                          by_host->idstr);
        }
    }
    rcu_read_unlock();
}

static void read_by_name(ReaderStats *st)
{
    char name[16];
    RAMBlock *block;

    slot_name(name, sizeof(name), stress_rand(&st->seed) % N_SLOTS);
    rcu_read_lock();
    st->lookups++;
    block = ram_block_by_name(&rl, name);
    if (block) {
        st->hits++;
        if (strcmp(block->idstr, name) != 0) {
            stress_report("looked up %s, found %s", name, block->idstr);
        }
        check_block(block, ram_block_used_length(block));
    }
    rcu_read_unlock();
}

static void *reader(void *opaque)
{
    ReaderStats *st = opaque;

    rcu_register_thread();
    while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
        read_by_addr(st);
        read_by_name(st);
    }
    rcu_unregister_thread();
    return NULL;
}

/* ---- writer ----------------------------------------------------------- */

static unsigned int n_added, n_removed;

static void on_added(RAMBlockNotifier *n, RAMBlock *block)
{
    (void)n;
    (void)block;
    n_added++;          /* under the RAMList mutex */
}

static void on_removed(RAMBlockNotifier *n, RAMBlock *block)
{
    (void)n;
    (void)block;
    n_removed++;
}

static RAMBlockNotifier counter = {
    .ram_block_added = on_added,
    .ram_block_removed = on_removed,
};

typedef struct WriterStats {
    unsigned int adds, removes, resizes;
} WriterStats;

static void *writer(void *opaque)
{
    WriterStats *ws = opaque;
    RAMBlock *slot[N_SLOTS] = { 0 };
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    char name[16];
    int ret;

    rcu_register_thread();
    for (unsigned int i = 0; i < WRITER_OPS; i++) {
        unsigned int s = stress_rand(&seed) % N_SLOTS;
        RAMBlock *b = slot[s];

        if (!b) {
            /* 1..4 MiB plus a few pages, so offsets need rounding. */
            ram_addr_t max = (1 + stress_rand(&seed) % 4) * MiB +
                             (stress_rand(&seed) % 4) * PAGE;
            ram_addr_t used = (1 + stress_rand(&seed) % (max / PAGE)) * PAGE;

            slot_name(name, sizeof(name), s);
            ret = ram_block_add(&rl, name, used, max, NULL,
                                RAM_OWN_HOST | RAM_RESIZEABLE |
                                RAM_HOTPLUGGED, NULL, &slot[s]);
            if (ret < 0) {
                stress_report("adding %s: %s", name, strerror(-ret));
                break;
            }
            ws->adds++;
        } else if (b->used_length == b->max_length ||
                   stress_rand(&seed) % 3 == 0) {
            ram_block_remove(&rl, b);
            slot[s] = NULL;
            ws->removes++;
        } else {
            ram_addr_t room = (b->max_length - b->used_length) / PAGE;
            ram_addr_t grow = (1 + stress_rand(&seed) % room) * PAGE;

            ret = ram_block_resize(&rl, b, b->used_length + grow);
            if (ret < 0) {
                stress_report("growing %s: %s", b->idstr, strerror(-ret));
                break;
            }
            ws->resizes++;
        }
    }
    __atomic_store_n(&writer_done, true, __ATOMIC_RELEASE);
    rcu_unregister_thread();
    return NULL;
}

/* ---- the test --------------------------------------------------------- */

static void test_readers_see_consistent_blocks_while_writer_churns(
    void **state)
{
    pthread_t readers[N_READERS], wr;
    ReaderStats rs[N_READERS];
    WriterStats ws = { 0 };
    uint64_t lookups = 0, hits = 0;
    unsigned int live = 0;
    RAMBlock *block;

    (void)state;
    assert_int_equal(ram_list_init(&rl), 0);
    ram_block_notifier_add(&rl, &counter);
    /* Main RAM: biggest, never removed, the usual MRU. */
    assert_int_equal(ram_block_add(&rl, "ram", 8 * MiB, 8 * MiB, NULL,
                                   RAM_OWN_HOST, NULL, NULL), 0);

    for (int i = 0; i < N_READERS; i++) {
        rs[i] = (ReaderStats) { .seed = 0x1234567ull * (i + 1) };
        assert_int_equal(pthread_create(&readers[i], NULL, reader, &rs[i]),
                         0);
    }
    assert_int_equal(pthread_create(&wr, NULL, writer, &ws), 0);
    assert_int_equal(pthread_join(wr, NULL), 0);
    for (int i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_join(readers[i], NULL), 0);
        lookups += rs[i].lookups;
        hits += rs[i].hits;
    }
    printf("# writer: %u adds, %u resizes, %u removes; readers: %llu "
           "lookups, %llu hits\n", ws.adds, ws.resizes, ws.removes,
           (unsigned long long)lookups, (unsigned long long)hits);

    if (stress_failures()) {
        fail_msg("%u inconsistencies, first: %s", stress_failures(),
                 stress_first_failure());
    }
    assert_int_equal(ws.adds + ws.resizes + ws.removes, WRITER_OPS);
    RAMBLOCK_FOREACH(&rl, block) {
        live++;
    }
    assert_int_equal(n_added - n_removed, live);
    assert_int_equal(n_added, ws.adds + 1);
    ram_list_destroy(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_readers_see_consistent_blocks_while_writer_churns),
    };
    int failed;

    rcu_register_thread();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    rcu_unregister_thread();
    return failed;
}
