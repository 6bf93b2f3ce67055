/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark, on the simulated Xen host (hypercalls are real round trips to
 * the xensim daemon):
 *
 *  1. 1000 scattered 4 KiB device writes with modified_memory forwarding
 *     on, flushed as `stop` does: hypercalls and time, against one
 *     hypercall per write (what QEMU does).  Target: at most 10 calls.
 *  2. The write path (guest_memory_write of 4 KiB: FlatView lookup,
 *     mapcache hit, copy, dirty marking, report) against a plain memcpy of
 *     4 KiB into the same mapped guest memory.  Target: at most 1.2x.
 */
#include <inttypes.h>
#include <string.h>

#include "memory/access.h"
#include "tests/bench/bench.h"
#include "tests/integration/sim/simtest.h"
#include "xen/xen.h"

#define MiB (1024ULL * 1024)
#define GUEST_MIB 64
#define WRITES 1000
#define REPS 9

static struct simhost host;

typedef struct Guest {
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_mr;
    RAMBlock *block;
    MapCache *mc;
    GuestMemory gm;
} Guest;

static void guest_init(Guest *g, uint32_t domid)
{
    char err[256];
    uint64_t bytes = (GUEST_MIB - 1) * MiB;

    if (xen_open(domid, XEN_OPEN_NO_XENSTORE, &g->xh, err, sizeof(err)) ||
        ram_list_init(&g->ram) ||
        ram_block_add(&g->ram, "xen.ram", bytes, bytes, NULL, 0, NULL,
                      &g->block) ||
        memory_context_init(&g->ctx, &g->ram) ||
        memory_region_init(&g->root, &g->ctx, "system", 0) ||
        memory_region_init_ram(&g->ram_mr, &g->ctx, "xen.ram", g->block) ||
        memory_region_add_subregion(&g->root, 0, &g->ram_mr) ||
        address_space_init(&g->as, &g->ctx, &g->root, "memory") ||
        mapcache_new(g->xh, NULL, &g->mc)) {
        fprintf(stderr, "bench-access-sim: set-up failed %s\n", err);
        exit(1);
    }
    g->gm = (GuestMemory) { .as = &g->as, .ram = &g->ram, .mc = g->mc };
}

static void scattered(uint64_t *gfn, int n, unsigned int seed)
{
    for (int i = 0; i < n; i++) {
        gfn[i] = 0x100 + rand_r(&seed) % (((GUEST_MIB - 2) * MiB >> 12) -
                                          0x100);
    }
}

/* 1000 writes then the flush `stop` does; returns seconds, *calls. */
static double run_writes(Guest *g, unsigned int batch, uint64_t *calls)
{
    ModifiedMemoryConfig cfg = { .batch = batch, .max_delay_ms = 0 };
    ModifiedMemoryStats st;
    ModifiedMemory *mm;
    uint64_t gfn[WRITES];
    static uint8_t page[4096];
    double t0, t;

    scattered(gfn, WRITES, batch);
    modified_memory_new(g->xh, &cfg, &mm);
    modified_memory_set_enabled(mm, true);
    g->gm.mm = mm;
    t0 = bench_now();
    for (int i = 0; i < WRITES; i++) {
        guest_memory_write(&g->gm, gfn[i] << 12, page, sizeof(page));
    }
    modified_memory_flush(mm);
    t = bench_now() - t0;
    modified_memory_stats(mm, &st);
    *calls = st.hypercalls;
    g->gm.mm = NULL;
    modified_memory_free(mm);
    return t;
}

int main(int argc, char **argv)
{
    double s[REPS], t_batched, t_single, t_path, t_path_fwd, t_memcpy;
    uint64_t calls_batched = 0, calls_single = 0, gfn[WRITES];
    static uint8_t page[4096];
    ModifiedMemory *mm;
    Guest g = { 0 };
    int domid;

    sim_test_init(argc, argv, 300);
    rcu_register_thread();
    if (simhost_start(&host, NULL) ||
        (domid = sim_create(&host, GUEST_MIB, "idle", 0)) < 0) {
        fprintf(stderr, "bench-access-sim: no simulated host\n");
        return 1;
    }
    guest_init(&g, domid);
    xen_logdirty_enable(g.xh);      /* as during a migration */

    /* Warm the mapcache: every bucket mapped once. */
    for (uint64_t a = 0x100000; a < (GUEST_MIB - 2) * MiB; a += 4096) {
        guest_memory_write(&g.gm, a, page, 8);
    }

    for (int r = 0; r < REPS; r++) {
        s[r] = run_writes(&g, MODIFIED_MEMORY_MAX_BATCH, &calls_batched);
    }
    t_batched = bench_median(s, REPS);
    for (int r = 0; r < REPS; r++) {
        s[r] = run_writes(&g, 1, &calls_single);
    }
    t_single = bench_median(s, REPS);

    printf("bench-access-sim: %d scattered 4 KiB device writes, forwarding "
           "on, flushed (median of %d)\n", WRITES, REPS);
    printf("  batched extents (xenram)     %6" PRIu64 " hypercalls  "
           "%8.3f ms\n", calls_batched, t_batched * 1e3);
    printf("  one hypercall per write      %6" PRIu64 " hypercalls  "
           "%8.3f ms   (%.1fx slower)\n", calls_single, t_single * 1e3,
           t_single / t_batched);
    bench_target("hypercalls for 1000 scattered writes",
                 (double)calls_batched, 10, 1);

    /*
     * The write path against memcpy into the same (mapped) memory.  The
     * three variants are interleaved, so that drift hits all of them, after
     * one untimed warm-up round.
     */
    scattered(gfn, WRITES, 99);
    modified_memory_new(g.xh, NULL, &mm);
    modified_memory_set_enabled(mm, true);
    {
        double s_memcpy[REPS], s_path[REPS], s_fwd[REPS];

        for (int r = -1; r < REPS; r++) {
            double t0 = bench_now(), t1, t2, t3;

            for (int i = 0; i < WRITES; i++) {
                int err;

                rcu_read_lock();
                memcpy(mapcache_get(g.mc, gfn[i] << 12, 4096, &err), page,
                       4096);
                rcu_read_unlock();
            }
            t1 = bench_now();
            g.gm.mm = NULL;
            for (int i = 0; i < WRITES; i++) {
                guest_memory_write(&g.gm, gfn[i] << 12, page, sizeof(page));
            }
            t2 = bench_now();
            g.gm.mm = mm;
            for (int i = 0; i < WRITES; i++) {
                guest_memory_write(&g.gm, gfn[i] << 12, page, sizeof(page));
            }
            t3 = bench_now();
            modified_memory_flush(mm);      /* outside the timing */
            if (r >= 0) {
                s_memcpy[r] = t1 - t0;
                s_path[r] = t2 - t1;
                s_fwd[r] = t3 - t2;
            }
        }
        t_memcpy = bench_median(s_memcpy, REPS);
        t_path = bench_median(s_path, REPS);
        t_path_fwd = bench_median(s_fwd, REPS);
    }
    g.gm.mm = NULL;
    modified_memory_free(mm);

    printf("  4 KiB write path, per write (median of %d x %d)\n", REPS,
           WRITES);
    printf("    memcpy into mapped guest memory   %7.1f ns\n",
           t_memcpy / WRITES * 1e9);
    printf("    guest_memory_write                %7.1f ns  %.2fx memcpy\n",
           t_path / WRITES * 1e9, t_path / t_memcpy);
    printf("    ... with forwarding on (queued)   %7.1f ns  %.2fx memcpy\n",
           t_path_fwd / WRITES * 1e9, t_path_fwd / t_memcpy);
    bench_target("write path / memcpy", t_path / t_memcpy, 1.2, 1);

    xen_logdirty_disable(g.xh);
    mapcache_destroy(g.mc);
    xen_close(g.xh);
    simhost_stop(&host);
    rcu_unregister_thread();
    return 0;
}
