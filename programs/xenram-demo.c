/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xenram-demo - RAM grows while threads keep dirtying it.
 *
 * A small, self-checking demonstration of dirty/ and memory/: a RAMList
 * starts with guest RAM and VRAM; two "device" threads write random pages
 * of whatever blocks exist and mark them dirty; a "hot-plug" thread adds
 * and removes DIMM blocks (the dirty bitmaps grow under RCU while the
 * writers run); a "migration" thread keeps syncing the MIGRATION bits into
 * each block's bmap.  At the end it prints what it observed and checks that
 * every page a writer marked is dirty, i.e. that no bit was lost.
 *
 * Usage: xenram-demo [--rounds N] [--quiet]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/ramblock.h"

#define MiB (1024 * 1024)
#define WRITERS 2
#define MAX_LOG 200000

static RAMList ram;
static int hotplug_done;            /* atomic */
static int quiet;

/* Pages a writer marked dirty, as ram_addr page numbers. */
typedef struct WriterLog {
    uint64_t page[MAX_LOG];
    long n;
    long misses;                    /* address fell in a gap or a removed block */
} WriterLog;

static WriterLog logs[WRITERS];

/* Counts what the notifiers saw. */
typedef struct DemoNotifier {
    RAMBlockNotifier n;
    int added, removed, resized;
} DemoNotifier;

static void on_added(RAMBlockNotifier *n, RAMBlock *block)
{
    DemoNotifier *d = caa_container_of(n, DemoNotifier, n);

    d->added++;
    if (!quiet) {
        printf("  notifier: added   %-8s ram_addr 0x%09llx +%4llu MiB\n",
               block->idstr, (unsigned long long)block->offset,
               (unsigned long long)(block->used_length / MiB));
    }
}

static void on_removed(RAMBlockNotifier *n, RAMBlock *block)
{
    DemoNotifier *d = caa_container_of(n, DemoNotifier, n);

    d->removed++;
    if (!quiet) {
        printf("  notifier: removed %-8s ram_addr 0x%09llx\n", block->idstr,
               (unsigned long long)block->offset);
    }
}

static void on_resized(RAMBlockNotifier *n, RAMBlock *block,
                       ram_addr_t old_length)
{
    DemoNotifier *d = caa_container_of(n, DemoNotifier, n);

    d->resized++;
    if (!quiet) {
        printf("  notifier: resized %-8s %llu -> %llu MiB\n", block->idstr,
               (unsigned long long)(old_length / MiB),
               (unsigned long long)(block->used_length / MiB));
    }
}

/*
 * A device writing guest memory: pick a random ram_addr, find its block
 * under RCU, write the page (only its first cache line: page faults are
 * slow and the demo is about bitmaps), then mark it dirty.
 */
static void *writer(void *arg)
{
    WriterLog *log = arg;
    unsigned int seed = (unsigned int)(log - logs) + 17;

    rcu_register_thread();
    while (log->n < MAX_LOG &&
           (log->n < MAX_LOG / 4 ||
            !__atomic_load_n(&hotplug_done, __ATOMIC_ACQUIRE))) {
        ram_addr_t addr, offset;
        RAMBlock *block;

        rcu_read_lock();
        addr = (((uint64_t)rand_r(&seed) << 31) ^ rand_r(&seed)) %
               ram_list_last_offset(&ram);
        addr &= XR_PAGE_MASK;
        block = ram_block_from_addr(&ram, addr, &offset);
        if (block) {
            uint64_t page = addr >> XR_PAGE_BITS;

            /* Stamp the page so that its contents say who wrote it. */
            memcpy(block->host + offset, &page, sizeof(page));
            if (dirty_memory_set_range(&ram.dirty, page, 1,
                                       DIRTY_CLIENTS_NOCODE) == 0) {
                log->page[log->n++] = page;
            }
        } else {
            log->misses++;
        }
        rcu_read_unlock();
    }
    rcu_unregister_thread();
    return NULL;
}

/* Hot-plug: DIMMs come and go, VRAM is resized. */
static void *hotplug(void *arg)
{
    int rounds = *(int *)arg;
    RAMBlock *dimm[4] = { 0 }, *vram;

    rcu_register_thread();
    rcu_read_lock();
    vram = ram_block_by_name(&ram, "vga.vram");
    rcu_read_unlock();
    for (int r = 0; r < rounds; r++) {
        int slot = r % 4;
        char name[16];

        if (dimm[slot]) {
            ram_block_remove(&ram, dimm[slot]);
            dimm[slot] = NULL;
        }
        snprintf(name, sizeof(name), "dimm%d", r);
        if (ram_block_add(&ram, name, (8 + 8 * slot) * MiB,
                          (8 + 8 * slot) * MiB, NULL,
                          RAM_OWN_HOST | RAM_HOTPLUGGED, NULL,
                          &dimm[slot])) {
            fprintf(stderr, "xenram-demo: adding %s failed\n", name);
        }
        ram_block_resize(&ram, vram, (r % 2 ? 16 : 8) * MiB);
    }
    __atomic_store_n(&hotplug_done, 1, __ATOMIC_RELEASE);
    rcu_unregister_thread();
    return NULL;
}

static int usage(FILE *f, int ret)
{
    fprintf(f, "Usage: xenram-demo [--rounds N] [--quiet]\n"
               "Grow and shrink RAM while threads dirty it; check that no "
               "dirty bit is lost.\n");
    return ret;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { 0 }
    };
    DemoNotifier notes = { .n = { .ram_block_added = on_added,
                                  .ram_block_removed = on_removed,
                                  .ram_block_resized = on_resized } };
    pthread_t wt[WRITERS], ht;
    RAMBlock *block, *main_ram, *vram;
    int rounds = 12, opt, ret;
    long marked = 0, lost = 0, misses = 0;
    uint64_t dirty_pages[DIRTY_MEMORY_NUM] = { 0 };

    while ((opt = getopt_long(argc, argv, "r:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            rounds = atoi(optarg);
            if (rounds < 1 || rounds > 1000) {
                fprintf(stderr, "xenram-demo: --rounds takes 1..1000\n");
                return 2;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            return usage(stdout, 0);
        default:
            return usage(stderr, 2);
        }
    }

    rcu_register_thread();
    ret = ram_list_init(&ram);
    if (!ret) {
        ret = ram_block_add(&ram, "pc.ram", 64 * MiB, 64 * MiB, NULL,
                            RAM_OWN_HOST, NULL, &main_ram);
    }
    if (!ret) {
        ret = ram_block_add(&ram, "vga.vram", 8 * MiB, 16 * MiB, NULL,
                            RAM_OWN_HOST | RAM_RESIZEABLE, NULL, &vram);
    }
    if (ret) {
        fprintf(stderr, "xenram-demo: setting up RAM failed: %s\n",
                strerror(-ret));
        return 1;
    }
    printf("xenram-demo: %d writer threads dirty pages while RAM is "
           "hot-plugged %d times\n", WRITERS, rounds);
    /* Registered late on purpose: it is told about existing blocks. */
    ram_block_notifier_add(&ram, &notes.n);

    /* What the blocks start with (everything dirty) is not the point. */
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        dirty_memory_test_and_clear(&ram.dirty, 0,
                                    dirty_memory_pages(&ram.dirty), c);
    }

    for (int i = 0; i < WRITERS; i++) {
        pthread_create(&wt[i], NULL, writer, &logs[i]);
    }
    pthread_create(&ht, NULL, hotplug, &rounds);
    pthread_join(ht, NULL);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(wt[i], NULL);
    }

    /*
     * Check: every page a writer marked is dirty for VGA and MIGRATION,
     * unless hot-plug removed its block afterwards (removal forgets it;
     * a later block at the same ram_addr starts all dirty anyway).
     */
    for (int i = 0; i < WRITERS; i++) {
        marked += logs[i].n;
        misses += logs[i].misses;
        for (long k = 0; k < logs[i].n; k++) {
            uint64_t p = logs[i].page[k];

            if (dirty_memory_get(&ram.dirty, p, 1, DIRTY_MEMORY_VGA) != 1 ||
                dirty_memory_get(&ram.dirty, p, 1,
                                 DIRTY_MEMORY_MIGRATION) != 1) {
                lost++;
            }
        }
    }
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        uint64_t n = dirty_memory_pages(&ram.dirty);

        for (uint64_t p = 0; p < n; p += 64) {
            uint64_t k = MIN(64, n - p);

            for (uint64_t q = 0; q < k; q++) {
                dirty_pages[c] += dirty_memory_get(&ram.dirty, p + q, 1,
                                                   c) == 1;
            }
        }
    }

    printf("\nRAM blocks at the end (biggest first):\n");
    rcu_read_lock();
    RAMBLOCK_FOREACH(&ram, block) {
        printf("  %-9s ram_addr 0x%09llx  used %3llu MiB  max %3llu MiB%s\n",
               block->idstr, (unsigned long long)block->offset,
               (unsigned long long)(block->used_length / MiB),
               (unsigned long long)(block->max_length / MiB),
               block->flags & RAM_HOTPLUGGED ? "  (hot-plugged)" : "");
    }
    printf("  ram_addr space: %llu MiB, dirty bitmaps cover %llu pages, "
           "RAMList version %u\n",
           (unsigned long long)(ram_list_last_offset(&ram) / MiB),
           (unsigned long long)dirty_memory_pages(&ram.dirty), ram.version);
    rcu_read_unlock();

    printf("\nObserved:\n");
    printf("  notifiers: %d added, %d removed, %d resized\n", notes.added,
           notes.removed, notes.resized);
    printf("  writers marked %ld pages (%ld addresses fell in gaps or "
           "removed blocks)\n", marked, misses);
    printf("  dirty pages now: VGA %llu, CODE %llu, MIGRATION %llu\n",
           (unsigned long long)dirty_pages[DIRTY_MEMORY_VGA],
           (unsigned long long)dirty_pages[DIRTY_MEMORY_CODE],
           (unsigned long long)dirty_pages[DIRTY_MEMORY_MIGRATION]);
    printf("  marked pages found clean: %ld%s\n", lost,
           lost ? "  <-- LOST DIRTY BITS" : " (no dirty bit lost)");

    ram_block_notifier_remove(&ram, &notes.n);
    ram_list_destroy(&ram);
    rcu_unregister_thread();
    return lost ? 1 : 0;
}
