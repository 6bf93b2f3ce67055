/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-hotplug.c - what a RAM hot-add costs the device model, and what it
 * costs everybody else.
 *
 * Subject: hotplug_add() of 1 GiB and hotplug_remove() of it, round after
 * round, on the one-domain fake of tests/unit/xen-fake.c.  Populate and
 * decrease reservation only mark frames present in the fake: the page
 * zeroing Xen does when it populates is not counted (it is the
 * hypervisor's, and it scales with the size whatever the device model
 * does).  What is counted: validation, the mapping probe through the
 * mapcache, ram_block_add() (dirty bitmaps grown and the 262144 new pages
 * marked dirty for every client, notifiers), the region tree's
 * transaction and re-render, and on removal the grace periods, the
 * mapcache invalidation and the block's release.
 *
 * Readers: threads that, in a loop, look a random main-RAM address up in
 * the FlatView, find its block in the RAMList, mark the page dirty and read
 * it through the mapcache (a hit), all inside one RCU read-side section,
 * and time every iteration.  The longest iteration while hot-adds and
 * removes run is "the longest time a reader waited"; the same loop without
 * any writer is the baseline (what the scheduler alone costs).  Readers
 * take no lock, so the two should be of the same order.
 *
 * Readers never sleep on purpose, so a voluntary context switch would be
 * a wait (a lock, or the kernel's mmap lock on a page fault); the count is
 * printed and should be 0.  The on-CPU time of an iteration (thread CPU
 * clock) leaves preemption out: what a reader spent working, spinning
 * included.  With more
 * readers than free cores the longest iteration is the scheduler's time
 * slice, with or without hotplug: keep readers + 1 <= cores.
 *
 * Usage: bench-hotplug [ROUNDS [READERS]]   (defaults: 20 rounds, 1 reader)
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hotplug/hotplug.h"
#include "memory/access.h"
#include "tests/bench/bench.h"
#include "tests/common/stress.h"
#include "tests/unit/xen-fake.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define RAM_BELOW   (2 * GiB)
#define RAM_ABOVE   (4 * GiB)
#define FOUR_GIB    (4 * GiB)
/* Main RAM's block spans [0, 8 GiB) of ram_addr (the hole included). */
#define RAM_BLOCK   (FOUR_GIB + RAM_ABOVE)
#define WIN_START   (16 * GiB)
#define WIN_END     (32 * GiB)
#define HOT_SIZE    GiB
#define MAX_READERS 8

int __wrap_xen_populate_all(XenHandles *h, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_populate_all(XenHandles *h, xen_pfn_t gfn, uint64_t n)
{
    (void)h;
    fake_set_populated(gfn, n, true);
    return 0;
}

int __wrap_xen_depopulate(XenHandles *h, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_depopulate(XenHandles *h, xen_pfn_t gfn, uint64_t n)
{
    (void)h;
    fake_set_populated(gfn, n, false);
    return 0;
}

int __wrap_xen_domain_info(XenHandles *h, XenDomainInfo *info);
int __wrap_xen_domain_info(XenHandles *h, XenDomainInfo *info)
{
    (void)h;
    *info = (XenDomainInfo) { .max_pages = WIN_END >> 12, .hvm = true };
    return 0;
}

static RAMList ram;
static MemoryContext ctx;
static AddressSpace as;
static MemoryRegion root, ram_mr, ram_lo, ram_hi;
static RAMBlock *ram_block;
static XenHandles *xh;
static MapCache *mc;
static Hotplug *hp;

typedef struct Reader {
    pthread_t thread;
    unsigned int id;
    uint64_t iterations;
    uint64_t busy_iterations;       /* while a request ran */
    double max_busy, max_idle;      /* longest iteration, seconds */
    double max_busy_cpu;            /* longest on-CPU time of one, during */
    /*
     * Context switches of the loop: a reader that waited for a lock would
     * sleep (voluntary); preemption by the scheduler is involuntary.
     */
    long voluntary, involuntary;
    uint64_t sink;
} Reader;

static int phase;                   /* 0 idle baseline, 1 writer, 2 stop */
static int request_running;         /* a hotplug request is in progress */

/* Some main RAM, touched once so that the mapcache serves it from hits. */
#define HOT_SET (64 * MiB)

static void *reader(void *opaque)
{
    Reader *r = opaque;
    uint64_t seed = 0x9e3779b97f4a7c15ull * (r->id + 1);
    struct rusage ru0, ru1;

    rcu_register_thread();
    getrusage(RUSAGE_THREAD, &ru0);
    while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) < 2) {
        uint64_t gpa = (stress_rand(&seed) % (HOT_SET >> 12)) << 12;
        bool busy = __atomic_load_n(&request_running, __ATOMIC_RELAXED);
        const FlatRange *fr;
        struct timespec c0, c1;
        double t0, dt, dc;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        t0 = bench_now();

        rcu_read_lock();
        fr = address_space_lookup(&as, gpa, NULL, NULL);
        if (fr && flatrange_is_ram(fr)) {
            ram_addr_t ra = fr->ram_addr + (gpa - fr->addr);
            RAMBlock *b = ram_block_from_addr(&ram, ra, NULL);
            uint64_t *p = mapcache_get(mc, gpa, 8, NULL);

            dirty_memory_set_page(&ram.dirty, ra >> 12,
                                  DIRTY_MEMORY_MIGRATION);
            r->sink += (uintptr_t)b + (p ? *p : 1);
        }
        rcu_read_unlock();
        dt = bench_now() - t0;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        dc = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9;
        busy |= __atomic_load_n(&request_running, __ATOMIC_RELAXED);
        if (__atomic_load_n(&phase, __ATOMIC_RELAXED) == 0) {
            r->max_idle = dt > r->max_idle ? dt : r->max_idle;
        } else if (busy) {
            r->max_busy = dt > r->max_busy ? dt : r->max_busy;
            r->max_busy_cpu = dc > r->max_busy_cpu ? dc : r->max_busy_cpu;
            r->busy_iterations++;
        }
        r->iterations++;
    }
    getrusage(RUSAGE_THREAD, &ru1);
    r->voluntary = ru1.ru_nvcsw - ru0.ru_nvcsw;
    r->involuntary = ru1.ru_nivcsw - ru0.ru_nivcsw;
    rcu_unregister_thread();
    return NULL;
}

static void guest_build(void)
{
    HotplugConfig cfg;
    char err[256];

    if (fake_xen_init(WIN_END >> 12)) {
        fprintf(stderr, "bench-hotplug: cannot create the fake guest\n");
        exit(1);
    }
    fake_set_populated(RAM_BELOW >> 12, (FOUR_GIB - RAM_BELOW) >> 12, false);
    fake_set_populated(RAM_BLOCK >> 12, (WIN_END - RAM_BLOCK) >> 12, false);
    xh = fake_xen_open();
    if (!xh || ram_list_init(&ram) ||
        ram_block_add(&ram, "xen.ram", RAM_BLOCK, RAM_BLOCK, NULL, 0, NULL,
                      &ram_block) ||
        memory_context_init(&ctx, &ram) ||
        memory_region_init(&root, &ctx, "system", 0) ||
        memory_region_init_ram(&ram_mr, &ctx, "xen.ram", ram_block) ||
        memory_region_init_alias(&ram_lo, "xen.ram.lo", &ram_mr, 0,
                                 RAM_BELOW) ||
        memory_region_init_alias(&ram_hi, "xen.ram.hi", &ram_mr, FOUR_GIB,
                                 RAM_ABOVE) ||
        memory_region_add_subregion(&root, 0, &ram_lo) ||
        memory_region_add_subregion(&root, FOUR_GIB, &ram_hi) ||
        address_space_init(&as, &ctx, &root, "memory") ||
        mapcache_new(xh, NULL, &mc)) {
        fprintf(stderr, "bench-hotplug: cannot build the guest\n");
        exit(1);
    }
    cfg = (HotplugConfig) {
        .xh = xh, .ram = &ram, .ctx = &ctx, .as = &as, .root = &root,
        .mc = mc, .domid = FAKE_DOMID, .window_start = WIN_START,
        .window_end = WIN_END, .no_xenstore = true,
    };
    if (hotplug_new(&cfg, &hp, err, sizeof(err))) {
        fprintf(stderr, "bench-hotplug: %s\n", err);
        exit(1);
    }
    /* Warm the readers' mappings. */
    rcu_read_lock();
    for (uint64_t a = 0; a < HOT_SET; a += mapcache_bucket_size(mc)) {
        mapcache_get(mc, a, 8, NULL);
    }
    rcu_read_unlock();
}

static void guest_destroy(void)
{
    hotplug_free(hp);
    address_space_destroy(&as);
    memory_region_del_subregion(&root, &ram_lo);
    memory_region_del_subregion(&root, &ram_hi);
    memory_region_destroy(&ram_lo);
    memory_region_destroy(&ram_hi);
    memory_region_destroy(&ram_mr);
    memory_region_destroy(&root);
    mapcache_destroy(mc);
    synchronize_rcu();
    memory_context_destroy(&ctx);
    ram_list_destroy(&ram);
    xen_close(xh);
    fake_xen_fini();
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    int nreaders = argc > 2 ? atoi(argv[2]) : 1;
    double *add_t, *rm_t, first_add = 0, max_busy = 0, max_idle = 0;
    double max_cpu = 0;
    uint64_t busy_iters = 0, iters = 0;
    long vol = 0, invol = 0;
    Reader readers[MAX_READERS];
    struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };
    char err[256];

    if (rounds < 2 || nreaders < 1 || nreaders > MAX_READERS) {
        fprintf(stderr, "usage: bench-hotplug [ROUNDS>=2 [READERS 1-%d]]\n",
                MAX_READERS);
        return 2;
    }
    add_t = calloc(rounds, sizeof(*add_t));
    rm_t = calloc(rounds, sizeof(*rm_t));
    xen_set_error_log(NULL);
    rcu_register_thread();
    guest_build();

    for (int i = 0; i < nreaders; i++) {
        readers[i] = (Reader) { .id = i };
        pthread_create(&readers[i].thread, NULL, reader, &readers[i]);
    }
    /* Baseline: the readers alone for a while. */
    nanosleep(&(struct timespec){ .tv_nsec = 500 * 1000 * 1000 }, NULL);
    __atomic_store_n(&phase, 1, __ATOMIC_RELEASE);

    for (int r = 0; r < rounds; r++) {
        double t0;

        nanosleep(&pause, NULL);
        __atomic_store_n(&request_running, 1, __ATOMIC_RELAXED);
        t0 = bench_now();
        if (hotplug_add(hp, 0, WIN_START, HOT_SIZE, NULL, err,
                        sizeof(err))) {
            fprintf(stderr, "bench-hotplug: add: %s\n", err);
            return 1;
        }
        add_t[r] = bench_now() - t0;
        __atomic_store_n(&request_running, 0, __ATOMIC_RELAXED);
        if (r == 0) {
            first_add = add_t[r];
        }

        nanosleep(&pause, NULL);
        __atomic_store_n(&request_running, 1, __ATOMIC_RELAXED);
        t0 = bench_now();
        if (hotplug_remove(hp, 0, err, sizeof(err))) {
            fprintf(stderr, "bench-hotplug: remove: %s\n", err);
            return 1;
        }
        rm_t[r] = bench_now() - t0;
        __atomic_store_n(&request_running, 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&phase, 2, __ATOMIC_RELEASE);
    for (int i = 0; i < nreaders; i++) {
        pthread_join(readers[i].thread, NULL);
        max_busy = readers[i].max_busy > max_busy ? readers[i].max_busy
                                                  : max_busy;
        max_idle = readers[i].max_idle > max_idle ? readers[i].max_idle
                                                  : max_idle;
        max_cpu = readers[i].max_busy_cpu > max_cpu ? readers[i].max_busy_cpu
                                                    : max_cpu;
        busy_iters += readers[i].busy_iterations;
        vol += readers[i].voluntary;
        invol += readers[i].involuntary;
        iters += readers[i].iterations;
    }

    printf("bench-hotplug: %d rounds of hot-add + hot-remove of 1 GiB, "
           "%d reader thread(s)\n", rounds, nreaders);
    printf("  hot-add 1 GiB, first round (bitmaps grow)   %8.3f ms\n",
           first_add * 1e3);
    printf("  hot-add 1 GiB, median of the others         %8.3f ms\n",
           bench_median(add_t + 1, rounds - 1) * 1e3);
    printf("  hot-remove 1 GiB, median                    %8.3f ms\n",
           bench_median(rm_t, rounds) * 1e3);
    printf("  reader iterations while requests ran        %8llu (of %llu)\n",
           (unsigned long long)busy_iters, (unsigned long long)iters);
    printf("  longest reader iteration during requests    %8.3f ms\n",
           max_busy * 1e3);
    printf("  longest reader iteration, no writer (base)  %8.3f ms\n",
           max_idle * 1e3);
    printf("  longest on-CPU time of one, during requests %8.3f ms\n",
           max_cpu * 1e3);
    printf("  reader context switches: voluntary (waits)  %8ld, involuntary "
           "(preempted) %ld\n", vol, invol);
    bench_target("longest reader wait during hotplug (ms)", max_busy * 1e3,
                 10.0, 1);
    guest_destroy();
    rcu_unregister_thread();
    free(add_t);
    free(rm_t);
    return 0;
}
