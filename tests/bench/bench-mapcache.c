/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: the mapcache (memory/mapcache.h).
 *
 * 1. Hit latency of mapcache_get(), inside the caller's read-side critical
 *    section (as memory/access.c calls it) and with a section of its own
 *    per lookup, against a baseline written here: one mutex around a hash
 *    table of chained entries keyed by bucket, the shape of QEMU's
 *    xen-mapcache, counting its hits as the mapcache does.  One and two
 *    threads hitting the same 64 mapped buckets at random.
 *    Targets (issue 4): median <= 10 ns per hit, >= 3x faster than the
 *    mutex version.
 *
 * 2. The bucket size: 256 KiB, 1 MiB and 4 MiB buckets compared on the cost
 *    of a miss, a sequential scan of guest memory, scattered accesses, and
 *    the memory they leave mapped.
 *
 * No Xen needed: the real xen/xen.c runs over the fake of
 * tests/unit/xen-fake.c, whose maps install every page table entry at once
 * (MAP_POPULATE) as privcmd does, so a miss costs in proportion to the
 * frames it maps.  Absolute miss costs are lower than on Xen, where each
 * frame also costs the hypervisor a p2m lookup and a grant of the page;
 * compare sizes with each other, not with Xen.
 */
#include <pthread.h>
#include <string.h>

#include "memory/mapcache.h"
#include "tests/bench/bench.h"
#include "tests/unit/xen-fake.h"

#define MiB ((uint64_t)1 << 20)
#define KiB ((uint64_t)1 << 10)

#define HOT_BUCKETS 64
#define NGPA        4096            /* random addresses, cycled through */
#define BATCH       20000           /* lookups per timed batch */
#define BATCHES     101

#define assert_ok(call) do {                                              \
        if ((call) < 0) {                                                 \
            fprintf(stderr, "bench-mapcache: %s failed\n", #call);        \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

static XenHandles *xh;
static uint64_t gpas[NGPA];
static volatile uintptr_t sink;

/* ---- the baseline: one mutex, hash chains --------------------------------- */

#define NCHAINS 1024

typedef struct BaseEntry {
    uint64_t bucket;
    uint8_t *vaddr;
    struct BaseEntry *next;
} BaseEntry;

typedef struct Baseline {
    pthread_mutex_t lock;
    unsigned int shift;
    uint64_t hits;              /* counted too, as the mapcache does */
    BaseEntry *chains[NCHAINS];
} Baseline;

static Baseline base;

static inline uint8_t *baseline_get(Baseline *b, uint64_t gpa, uint64_t len)
{
    uint64_t bucket = gpa >> b->shift, off = gpa & ((1ULL << b->shift) - 1);
    uint8_t *p = NULL;
    BaseEntry *e;

    pthread_mutex_lock(&b->lock);
    for (e = b->chains[bucket % NCHAINS]; e; e = e->next) {
        if (e->bucket == bucket) {
            if (off + len <= (1ULL << b->shift)) {
                p = e->vaddr + off;
                b->hits++;
            }
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return p;
}

static void baseline_add(Baseline *b, uint64_t bucket, uint8_t *vaddr)
{
    BaseEntry *e = malloc(sizeof(*e));

    e->bucket = bucket;
    e->vaddr = vaddr;
    e->next = b->chains[bucket % NCHAINS];
    b->chains[bucket % NCHAINS] = e;
}

/* ---- hit latency ---------------------------------------------------------- */

/*
 * The variants, timed one after the other in every round so that a noisy
 * machine disturbs them alike; with two threads a barrier starts each
 * variant on both threads together.
 */
enum { HIT_OWN_RCU, HIT_IN_SECTION, HIT_MUTEX, HIT_VARIANTS };

typedef struct HitRun {
    MapCache *mc;
    pthread_barrier_t *start;
    double median_ns[HIT_VARIANTS];
} HitRun;

static void *hit_thread(void *arg)
{
    HitRun *r = arg;
    double ns[HIT_VARIANTS][BATCHES];
    uintptr_t acc = 0;
    unsigned int k = (unsigned int)(uintptr_t)&ns % NGPA;

    rcu_register_thread();
    for (int b = 0; b < BATCHES; b++) {
        for (int v = 0; v < HIT_VARIANTS; v++) {
            double t0;

            pthread_barrier_wait(r->start);
            t0 = bench_now();
            switch (v) {
            case HIT_OWN_RCU:
                /* A lone access: its own read-side critical section. */
                for (int i = 0; i < BATCH; i++) {
                    rcu_read_lock();
                    acc ^= (uintptr_t)mapcache_get(r->mc, gpas[k++ % NGPA],
                                                   8, NULL);
                    rcu_read_unlock();
                }
                break;
            case HIT_IN_SECTION:
                /* Inside the caller's section, as memory/access.c does. */
                rcu_read_lock();
                for (int i = 0; i < BATCH; i++) {
                    acc ^= (uintptr_t)mapcache_get(r->mc, gpas[k++ % NGPA],
                                                   8, NULL);
                }
                rcu_read_unlock();
                break;
            case HIT_MUTEX:
                for (int i = 0; i < BATCH; i++) {
                    acc ^= (uintptr_t)baseline_get(&base, gpas[k++ % NGPA],
                                                   8);
                }
                break;
            }
            ns[v][b] = (bench_now() - t0) * 1e9 / BATCH;
        }
    }
    sink ^= acc;
    for (int v = 0; v < HIT_VARIANTS; v++) {
        r->median_ns[v] = bench_median(ns[v], BATCHES);
    }
    rcu_unregister_thread();
    return NULL;
}

/* The slowest thread's median ns per hit, for each variant. */
static void hit_latency(MapCache *mc, int nthreads, double *worst)
{
    pthread_t t[2];
    HitRun r[2];
    pthread_barrier_t start;

    pthread_barrier_init(&start, NULL, nthreads);
    for (int i = 0; i < nthreads; i++) {
        r[i] = (HitRun){ .mc = mc, .start = &start };
        pthread_create(&t[i], NULL, hit_thread, &r[i]);
    }
    for (int v = 0; v < HIT_VARIANTS; v++) {
        worst[v] = 0;
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        for (int v = 0; v < HIT_VARIANTS; v++) {
            worst[v] = MAX(worst[v], r[i].median_ns[v]);
        }
    }
    pthread_barrier_destroy(&start);
}

static void bench_hits(void)
{
    unsigned int seed = 1;
    MapCacheStats st;
    MapCache *mc;

    assert_ok(mapcache_new(xh, NULL, &mc));
    base.shift = MAPCACHE_DEFAULT_BUCKET_SHIFT;
    pthread_mutex_init(&base.lock, NULL);
    /* 64 buckets spread over 256 MiB of guest, mapped once. */
    for (uint64_t b = 0; b < HOT_BUCKETS; b++) {
        uint64_t gpa = b * 4 * MiB;
        uint8_t *p;

        rcu_read_lock();
        p = mapcache_get(mc, gpa, 8, NULL);
        rcu_read_unlock();
        if (!p) {
            fprintf(stderr, "bench-mapcache: cannot map gpa 0x%lx\n",
                    (unsigned long)gpa);
            exit(1);
        }
        baseline_add(&base, gpa >> base.shift, p);
    }
    for (int i = 0; i < NGPA; i++) {
        uint64_t b = rand_r(&seed) % HOT_BUCKETS;
        uint64_t off = (rand_r(&seed) % (MiB / 8)) * 8;

        gpas[i] = b * 4 * MiB + off;
    }

    printf("mapcache hit latency (%d buckets of 1 MiB mapped, random 8-byte "
           "lookups; median of %d batches of %d)\n", HOT_BUCKETS, BATCHES,
           BATCH);
    for (int n = 1; n <= 2; n++) {
        double ns[HIT_VARIANTS];
        char what[64];

        hit_latency(mc, n, ns);
        printf("  %d thread%s: mutex+hash %6.2f ns/hit; mapcache_get %5.2f "
               "ns/hit in the caller's read section (%4.1fx), %5.2f ns/hit "
               "with its own rcu_read_lock/unlock (%4.1fx)\n", n,
               n > 1 ? "s" : " ", ns[HIT_MUTEX], ns[HIT_IN_SECTION],
               ns[HIT_MUTEX] / ns[HIT_IN_SECTION], ns[HIT_OWN_RCU],
               ns[HIT_MUTEX] / ns[HIT_OWN_RCU]);
        snprintf(what, sizeof(what), "ns per hit, %d thread(s), in section", n);
        bench_target(what, ns[HIT_IN_SECTION], 10, 1);
        snprintf(what, sizeof(what), "ns per hit, %d thread(s), own rcu lock",
                 n);
        bench_target(what, ns[HIT_OWN_RCU], 10, 1);
        snprintf(what, sizeof(what), "x mutex+hash, %d thread(s), in section",
                 n);
        bench_target(what, ns[HIT_MUTEX] / ns[HIT_IN_SECTION], 3, 0);
        snprintf(what, sizeof(what), "x mutex+hash, %d thread(s), own rcu lock",
                 n);
        bench_target(what, ns[HIT_MUTEX] / ns[HIT_OWN_RCU], 3, 0);
    }
    mapcache_get_stats(mc, &st);
    if (st.misses != HOT_BUCKETS) {
        printf("  unexpected: %lu misses during the hit benchmark\n",
               (unsigned long)st.misses);
    }
    mapcache_destroy(mc);
}

/* ---- bucket size ---------------------------------------------------------- */

#define GUEST_MIB  512
#define SCAN_MIB   GUEST_MIB
#define SCATTER_PAGES 256
#define SCATTER_ROUNDS 20

static uint8_t *get(MapCache *mc, uint64_t gpa)
{
    uint8_t *p;

    rcu_read_lock();
    p = mapcache_get(mc, gpa, 8, NULL);
    if (p) {
        sink ^= *(volatile uint8_t *)p;
    }
    rcu_read_unlock();
    return p;
}

static void bench_bucket_size(unsigned int shift, uint64_t *scatter)
{
    MapCacheConfig cfg = { .bucket_shift = shift };
    uint64_t size = (uint64_t)1 << shift;
    double miss_us[32], t0, scan_ms, scat_ms;
    MapCacheStats st;
    MapCache *mc;
    uint64_t scat_misses;

    /* Cold misses: 32 fresh buckets, each timed alone. */
    assert_ok(mapcache_new(xh, &cfg, &mc));
    for (int i = 0; i < 32; i++) {
        t0 = bench_now();
        get(mc, (uint64_t)i * 8 * MiB);
        miss_us[i] = (bench_now() - t0) * 1e6;
    }
    mapcache_destroy(mc);

    /* A sequential pass over the guest, 4 KiB at a time. */
    assert_ok(mapcache_new(xh, &cfg, &mc));
    t0 = bench_now();
    for (uint64_t gpa = 0; gpa < SCAN_MIB * MiB; gpa += 4 * KiB) {
        get(mc, gpa);
    }
    scan_ms = (bench_now() - t0) * 1e3;
    mapcache_destroy(mc);

    /* Rounds over a scattered working set of single pages. */
    assert_ok(mapcache_new(xh, &cfg, &mc));
    t0 = bench_now();
    for (int r = 0; r < SCATTER_ROUNDS; r++) {
        for (int i = 0; i < SCATTER_PAGES; i++) {
            get(mc, scatter[i]);
        }
    }
    scat_ms = (bench_now() - t0) * 1e3;
    mapcache_get_stats(mc, &st);
    scat_misses = st.misses;
    mapcache_destroy(mc);

    printf("  %5lu KiB  miss %7.1f us (%5.3f us/frame)  scan %7.1f ms "
           "(%5lu misses)  scattered %6.1f ms (%4lu misses, %5lu MiB "
           "mapped)\n", (unsigned long)(size / KiB),
           bench_median(miss_us, 32),
           bench_median(miss_us, 32) / (double)(size / XR_PAGE_SIZE), scan_ms,
           (unsigned long)(SCAN_MIB * MiB / size), scat_ms,
           (unsigned long)scat_misses,
           (unsigned long)(st.mapped_bytes / MiB));
}

static void bench_sizes(void)
{
    uint64_t scatter[SCATTER_PAGES];
    unsigned int seed = 7;

    for (int i = 0; i < SCATTER_PAGES; i++) {
        scatter[i] = (uint64_t)(rand_r(&seed) % (GUEST_MIB * MiB / 4096)) *
                     4096;
    }
    fake_set_populate_on_map(true);
    printf("\nbucket size (guest of %d MiB; scan: 4 KiB steps over all of "
           "it; scattered: %d rounds over %d random pages)\n", GUEST_MIB,
           SCATTER_ROUNDS, SCATTER_PAGES);
    for (unsigned int shift = 18; shift <= 22; shift += 2) {
        bench_bucket_size(shift, scatter);
    }
    fake_set_populate_on_map(false);
}

int main(void)
{
    rcu_register_thread();
    xen_set_error_log(NULL);
    if (fake_xen_init(GUEST_MIB * MiB / XR_PAGE_SIZE) < 0) {
        fprintf(stderr, "bench-mapcache: cannot create the fake guest\n");
        return 1;
    }
    /* Allocate the guest's memory now so that maps do not measure it. */
    memset(fake_guest(), 1, GUEST_MIB * MiB);
    xh = fake_xen_open();
    if (!xh) {
        fprintf(stderr, "bench-mapcache: %s\n", xen_last_error());
        return 1;
    }
    bench_hits();
    bench_sizes();
    xen_close(xh);
    fake_xen_fini();
    rcu_unregister_thread();
    return 0;
}
