/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: set-range throughput of two setter threads while a third
 * thread grows the bitmaps 1000 times (as RAM hot-plug does).
 *
 * Baselines measured in the same run:
 *  - the same setters with no growth (the grower thread paces itself the
 *    same way but does not grow);
 *  - a lock-based version: the same block array protected by a
 *    pthread_rwlock (setters take it for reading, the grower for writing).
 *
 * Targets (issue 2): with growth at least 95% of the no-growth throughput
 * and at least 3x the rwlock version.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "dirty/dirty.h"
#include "tests/bench/bench.h"

#define SETTERS      2
#define GROWS        1000
#define BASE_PAGES   DIRTY_MEMORY_BLOCK_PAGES      /* setters stay below */
#define GROW_STEP    (DIRTY_MEMORY_BLOCK_PAGES / 8)
#define REPS         7

/* ---- the lock-based baseline --------------------------------------------- */

typedef struct LockedBitmap {
    pthread_rwlock_t lock;
    uint64_t npages;
    unsigned long **blocks;     /* one array for one client, for brevity */
} LockedBitmap;

static int locked_grow(LockedBitmap *lb, uint64_t npages)
{
    uint64_t old = DIV_ROUND_UP(lb->npages, DIRTY_MEMORY_BLOCK_PAGES);
    uint64_t nb = DIV_ROUND_UP(npages, DIRTY_MEMORY_BLOCK_PAGES);
    unsigned long **b;

    pthread_rwlock_wrlock(&lb->lock);
    b = realloc(lb->blocks, nb * sizeof(*b));
    if (!b) {
        pthread_rwlock_unlock(&lb->lock);
        return -ENOMEM;
    }
    for (uint64_t i = old; i < nb; i++) {
        b[i] = xr_bitmap_new(DIRTY_MEMORY_BLOCK_PAGES);
    }
    lb->blocks = b;
    lb->npages = npages;
    pthread_rwlock_unlock(&lb->lock);
    return 0;
}

static int locked_set_range(LockedBitmap *lb, uint64_t page, uint64_t n)
{
    int ret = 0;

    pthread_rwlock_rdlock(&lb->lock);
    if (page + n > lb->npages) {
        ret = -ERANGE;
    } else {
        for (uint64_t p = page; p < page + n; p++) {
            unsigned long *w = lb->blocks[p / DIRTY_MEMORY_BLOCK_PAGES] +
                               BIT_WORD(p % DIRTY_MEMORY_BLOCK_PAGES);

            if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & BIT_MASK(p))) {
                __atomic_fetch_or(w, BIT_MASK(p), __ATOMIC_RELEASE);
            }
        }
    }
    pthread_rwlock_unlock(&lb->lock);
    return ret;
}

/* ---- the runs ------------------------------------------------------------ */

enum mode { RCU_GROW, RCU_NO_GROW, RWLOCK_GROW };

static enum mode mode;
static DirtyMemory dm;
static LockedBitmap lb;
static int stop;                /* set by the grower when done (atomic) */
static long ops_done;           /* atomic */

static void *setter(void *arg)
{
    unsigned int seed = (unsigned int)(uintptr_t)arg;
    uint64_t sink = 0;
    long i;

    rcu_register_thread();
    for (i = 0; (i & 1023) || !__atomic_load_n(&stop, __ATOMIC_RELAXED);
         i++) {
        uint64_t page = ((uint64_t)rand_r(&seed) * 2654435761u) % BASE_PAGES;
        uint64_t n = 1 + (i & 3);

        n = MIN(n, BASE_PAGES - page);
        if (mode == RWLOCK_GROW) {
            sink += locked_set_range(&lb, page, n);
        } else {
            sink += dirty_memory_set_range(&dm, page, n,
                                           DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA));
        }
    }
    if (sink) {
        fprintf(stderr, "bench-dirty-grow: a set failed\n");
        exit(1);
    }
    __atomic_fetch_add(&ops_done, i, __ATOMIC_RELAXED);
    rcu_unregister_thread();
    return NULL;
}

/*
 * Grows GROWS times, yielding the CPU briefly after each grow so that the
 * growth is spread over the setters' run (pacing, not synchronisation),
 * then tells the setters to stop.  In RCU_NO_GROW mode it paces
 * identically but does not grow.
 */
static void *grower(void *arg)
{
    const struct timespec pause = { 0, 200000 };    /* 0.2 ms */

    (void)arg;
    rcu_register_thread();
    for (long i = 1; i <= GROWS; i++) {
        uint64_t np = BASE_PAGES + i * GROW_STEP;

        if (mode == RCU_GROW) {
            dirty_memory_grow(&dm, np);
        } else if (mode == RWLOCK_GROW) {
            locked_grow(&lb, np);
        }
        nanosleep(&pause, NULL);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    rcu_unregister_thread();
    return NULL;
}

static double run(enum mode m)
{
    pthread_t st[SETTERS], gt;
    double t0, t;

    mode = m;
    dirty_memory_init(&dm);
    dirty_memory_grow(&dm, BASE_PAGES);
    pthread_rwlock_init(&lb.lock, NULL);
    lb.npages = 0;
    lb.blocks = NULL;
    locked_grow(&lb, BASE_PAGES);
    /* Pre-fault the setters' block so that no run pays first touch. */
    dirty_memory_set_range(&dm, 0, BASE_PAGES, DIRTY_CLIENTS_ALL);
    dirty_memory_test_and_clear(&dm, 0, BASE_PAGES, DIRTY_MEMORY_VGA);
    memset(lb.blocks[0], 0, DIRTY_MEMORY_BLOCK_PAGES / 8);

    stop = 0;
    ops_done = 0;
    t0 = bench_now();
    for (int i = 0; i < SETTERS; i++) {
        pthread_create(&st[i], NULL, setter, (void *)(uintptr_t)(i + 1));
    }
    pthread_create(&gt, NULL, grower, NULL);
    pthread_join(gt, NULL);
    for (int i = 0; i < SETTERS; i++) {
        pthread_join(st[i], NULL);
    }
    t = bench_now() - t0;

    dirty_memory_destroy(&dm);
    for (uint64_t i = 0;
         i < DIV_ROUND_UP(lb.npages, DIRTY_MEMORY_BLOCK_PAGES); i++) {
        free(lb.blocks[i]);
    }
    free(lb.blocks);
    pthread_rwlock_destroy(&lb.lock);
    return ops_done / t;
}

int main(void)
{
    static const char *names[] = { "RCU, growing", "RCU, no growth",
                                   "rwlock, growing" };
    double rate[3], s[3][REPS];

    rcu_register_thread();
    printf("bench-dirty-grow: %d setter threads calling set_range (1-4 "
           "pages) while a thread grows %d times, median of %d\n",
           SETTERS, GROWS, REPS);
    /* Interleaved, so that drift in the machine's speed hits all three. */
    for (int r = 0; r < REPS; r++) {
        for (int m = 0; m < 3; m++) {
            s[m][r] = run(m);
        }
    }
    for (int m = 0; m < 3; m++) {
        rate[m] = bench_median(s[m], REPS);
        printf("  %-18s %8.2f Mops/s\n", names[m], rate[m] / 1e6);
    }
    printf("  growing / no growth   %6.3f\n", rate[0] / rate[1]);
    printf("  RCU / rwlock          %6.2fx\n", rate[0] / rate[2]);
    bench_target("growing / no-growth throughput", rate[0] / rate[1],
                 0.95, 0);
    bench_target("RCU / rwlock throughput", rate[0] / rate[2], 3, 0);
    rcu_unregister_thread();
    return 0;
}
