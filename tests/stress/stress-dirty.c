/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Stress test for dirty/: setter threads mark random pages (and log what
 * they marked) while one thread keeps growing the bitmaps and another keeps
 * syncing the MIGRATION client, alternately into a flat bitmap and into a
 * migration DirtyBitmap that it then "sends" from (moving each bit into the
 * flat one), so that whole blocks are swapped, folded and handed over.
 * Afterwards every logged page must be dirty, still in the source bitmap or
 * moved into a sync destination: no bit is lost.
 * Run under ThreadSanitizer by `make check-tsan`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dirty/bitmap.h"
#include "dirty/dirty.h"
#include "tests/common/stress.h"

#define BP          DIRTY_MEMORY_BLOCK_PAGES
#define SETTERS     2
#ifdef XR_TSAN
#define OPS         20000        /* instrumented code is ~20x slower */
#else
#define OPS         100000
#endif
#define GROWS       48
#define GROW_STEP   (BP / 8)
#define START_PAGES (BP + 7)     /* one whole block and a bit */
#define MAX_PAGES   (START_PAGES + GROWS * GROW_STEP)

static DirtyMemory dm;
static unsigned long *dest;     /* owned by the syncer */
static DirtyBitmap sendmap;     /* owned by the syncer */
static int setters_done;        /* atomic */

typedef struct Log {
    uint64_t page[OPS];
    uint32_t npages[OPS];
    uint8_t kind[OPS];          /* 0 page, 1 range, 2 lebitmap */
} Log;

static Log logs[SETTERS];

static void fail(const char *what, int err)
{
    stress_report("%s failed: %s", what, strerror(-err));
}

static void *setter(void *arg)
{
    Log *log = arg;
    uint64_t seed = (uint64_t)(log - logs) * 7919 + 1;

    rcu_register_thread();
    for (int i = 0; i < OPS; i++) {
        uint64_t avail = dirty_memory_pages(&dm);
        uint64_t page = stress_rand(&seed) % avail;
        uint32_t n = 1 + (uint32_t)(stress_rand(&seed) % 100);
        int kind = (int)(stress_rand(&seed) % 3), ret;

        n = MIN(n, avail - page);
        if (kind == 0) {
            n = 1;
            ret = dirty_memory_set_page(&dm, page, DIRTY_MEMORY_MIGRATION);
        } else if (kind == 1) {
            ret = dirty_memory_set_range(&dm, page, n, DIRTY_CLIENTS_ALL);
        } else {
            /* Every page of the bitmap's range is set, aligned or not. */
            unsigned long bm[2] = { ~0UL, ~0UL };

            n = MIN(n, 2 * BITS_PER_LONG);
            ret = dirty_memory_set_lebitmap(&dm, bm, page, n,
                                            DIRTY_CLIENTS_ALL);
        }
        if (ret) {
            fail("set", ret);
        }
        log->page[i] = page;
        log->npages[i] = n;
        log->kind[i] = kind;
    }
    __atomic_fetch_add(&setters_done, 1, __ATOMIC_RELEASE);
    rcu_unregister_thread();
    return NULL;
}

static void *grower(void *arg)
{
    (void)arg;
    rcu_register_thread();
    for (int i = 1; i <= GROWS; i++) {
        int ret = dirty_memory_grow(&dm, START_PAGES + i * GROW_STEP);

        if (ret) {
            fail("grow", ret);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static void *syncer(void *arg)
{
    long *rounds = arg;

    rcu_register_thread();
    while (__atomic_load_n(&setters_done, __ATOMIC_ACQUIRE) < SETTERS) {
        uint64_t pages = dirty_memory_pages(&dm);
        int64_t ret;

        if (*rounds % 2) {
            ret = dirty_memory_sync_bitmap(&dm, &sendmap, 0, pages);
            /* Send: every other round empties the bitmap again. */
            for (uint64_t p = dirty_bitmap_find_next(&sendmap, 0);
                 *rounds % 4 == 1 && p < sendmap.npages;
                 p = dirty_bitmap_find_next(&sendmap, p + 1)) {
                dirty_bitmap_test_and_clear(&sendmap, p);
                xr_set_bit(p, dest);
            }
        } else {
            ret = dirty_memory_sync(&dm, dest, 0, 0, pages);
        }
        if (ret < 0) {
            fail("sync", ret);
        }
        ++*rounds;
    }
    rcu_unregister_thread();
    return NULL;
}

int main(void)
{
    pthread_t set_t[SETTERS], grow_t, sync_t;
    long rounds = 0;
    uint64_t checked = 0, lost = 0, vga_lost = 0;

    rcu_register_thread();
    if (dirty_memory_init(&dm) || dirty_memory_grow(&dm, START_PAGES)) {
        fprintf(stderr, "stress-dirty: setup failed\n");
        return 1;
    }
    dest = xr_bitmap_new(MAX_PAGES);
    if (!dest || dirty_bitmap_init(&sendmap, 0, MAX_PAGES)) {
        return 1;
    }

    for (int i = 0; i < SETTERS; i++) {
        pthread_create(&set_t[i], NULL, setter, &logs[i]);
    }
    pthread_create(&grow_t, NULL, grower, NULL);
    pthread_create(&sync_t, NULL, syncer, &rounds);
    for (int i = 0; i < SETTERS; i++) {
        pthread_join(set_t[i], NULL);
    }
    pthread_join(grow_t, NULL);
    pthread_join(sync_t, NULL);

    /* Collect what is still in the source. */
    if (dirty_memory_sync(&dm, dest, 0, 0, MAX_PAGES) < 0) {
        fail("final sync", -EIO);
    }

    for (int t = 0; t < SETTERS; t++) {
        for (int i = 0; i < OPS; i++) {
            for (uint32_t k = 0; k < logs[t].npages[i]; k++) {
                uint64_t p = logs[t].page[i] + k;

                checked++;
                lost += !xr_test_bit(p, dest) && !dirty_bitmap_test(&sendmap, p);
                if (logs[t].kind[i] != 0 &&
                    dirty_memory_get(&dm, p, 1, DIRTY_MEMORY_VGA) != 1) {
                    vga_lost++;
                }
            }
        }
    }
    printf("stress-dirty: %d setters x %d ops, %d grows to %llu pages, "
           "%ld sync rounds; %llu logged pages checked, %llu lost "
           "(MIGRATION), %llu lost (VGA)\n",
           SETTERS, OPS, GROWS, (unsigned long long)dirty_memory_pages(&dm),
           rounds, (unsigned long long)checked, (unsigned long long)lost,
           (unsigned long long)vga_lost);

    free(dest);
    dirty_bitmap_destroy(&sendmap);
    dirty_memory_destroy(&dm);
    rcu_unregister_thread();
    if (stress_failures()) {
        fprintf(stderr, "stress-dirty: %u failures, the first: %s\n",
                stress_failures(), stress_first_failure());
    }
    return (lost || vga_lost || stress_failures()) ? 1 : 0;
}
