/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ioreq-sim.c - a device emulator embedding libxenram (this program)
 * claims an MMIO range with an I/O region, and the simulated guest's
 * vCPUs (`xensim workload D mmio:GPA:LEN`) write and read it back
 * through Xen's ioreq path and xenram's ioreq server (docs/ioreq.md):
 *
 *   - every access reaches the region's callbacks with the address, size
 *     and data the vCPU used, and every read-back returns what was written;
 *   - the claimed range beyond the region reads all ones (unassigned,
 *     counted by xenram), as does an unclaimed hole (Xen's own null
 *     handler: xenram sees nothing of it);
 *   - the guest's balloon driver gives frames back while a DMA holds a
 *     mapcache lock: Xen's INVALIDATE reaches the mapcache, which drops
 *     the unlocked buckets and orphans the locked one -- its mapping stays
 *     valid for the DMA until it unlocks, a new lookup maps afresh.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/integration/sim/simtest.h"
#include "xen/dm/ioreq.h"

#define DEV_GPA 0xfe000000ull
#define DEV_LEN 0x100ull
#define CLAIM_LEN 0x200ull          /* the second half has no region */

static struct simhost host;

/* A register file: what is written is read back, byte for byte. */
typedef struct Dev {
    MemoryRegion mr;
    pthread_mutex_t lock;
    uint8_t regs[DEV_LEN];
    struct { uint64_t addr, data; unsigned int size; } log[16];
    unsigned int nlog;
    uint64_t reads, writes;
} Dev;

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned int size)
{
    Dev *d = opaque;
    uint64_t v = 0;

    pthread_mutex_lock(&d->lock);
    memcpy(&v, d->regs + addr, size);
    d->reads++;
    pthread_mutex_unlock(&d->lock);
    return v;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data,
                      unsigned int size)
{
    Dev *d = opaque;

    pthread_mutex_lock(&d->lock);
    memcpy(d->regs + addr, &data, size);
    if (d->nlog < 16) {
        d->log[d->nlog].addr = addr;
        d->log[d->nlog].data = data;
        d->log[d->nlog].size = size;
        d->nlog++;
    }
    d->writes++;
    pthread_mutex_unlock(&d->lock);
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read, .write = dev_write,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

typedef struct Emu {
    uint32_t domid;
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    MemoryRegion root, ioroot;
    AddressSpace as, io;
    Dev dev;
    MapCache *mc;
    IoreqService *svc;
} Emu;

static int group_setup(void **state)
{
    char ns[200];

    (void)state;
    if (simhost_start(&host, NULL))
        return -1;
    /* The event channels' namespace of this host (docs/simulator.md). */
    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

static int setup(void **state)
{
    Emu *e = calloc(1, sizeof(*e));
    IoreqHandler h = { 0 };
    char err[512];
    int d = sim_create(&host, 16, "idle", 0);

    assert_non_null(e);
    assert_true(d > 0);
    e->domid = (uint32_t)d;
    assert_int_equal(xen_open(e->domid, XEN_OPEN_NO_XENSTORE, &e->xh, err,
                              sizeof(err)), 0);
    pthread_mutex_init(&e->dev.lock, NULL);
    assert_int_equal(ram_list_init(&e->ram), 0);
    assert_int_equal(memory_context_init(&e->ctx, &e->ram), 0);
    assert_int_equal(memory_region_init(&e->root, &e->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init(&e->ioroot, &e->ctx, "io", 65536), 0);
    assert_int_equal(memory_region_init_io(&e->dev.mr, &e->ctx, "regs",
                                           &dev_ops, &e->dev, DEV_LEN), 0);
    assert_int_equal(memory_region_add_subregion(&e->root, DEV_GPA,
                                                 &e->dev.mr), 0);
    assert_int_equal(address_space_init(&e->as, &e->ctx, &e->root, "memory"),
                     0);
    assert_int_equal(address_space_init(&e->io, &e->ctx, &e->ioroot, "io"),
                     0);
    assert_int_equal(mapcache_new(e->xh, NULL, &e->mc), 0);
    h.mem = &e->as;
    h.io = &e->io;
    h.mc = e->mc;
    if (ioreq_service_start(e->xh, &h, &e->svc, err, sizeof(err)))
        fail_msg("%s", err);
    /* What the Xen listener does for an I/O region, and one page more. */
    assert_int_equal(xen_ioreq_map_range(e->xh, ioreq_service_id(e->svc),
                                         true, DEV_GPA,
                                         DEV_GPA + CLAIM_LEN - 1), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    Emu *e = *state;

    ioreq_service_stop(e->svc);
    mapcache_destroy(e->mc);
    address_space_destroy(&e->as);
    address_space_destroy(&e->io);
    memory_region_del_subregion(&e->root, &e->dev.mr);
    memory_region_destroy(&e->dev.mr);
    memory_region_destroy(&e->root);
    memory_region_destroy(&e->ioroot);
    synchronize_rcu();
    memory_context_destroy(&e->ctx);
    ram_list_destroy(&e->ram);
    xen_close(e->xh);
    sim_destroy(&host, e->domid);
    free(e);
    return 0;
}

/* The numbers of dm-state's "mmio" line. */
struct mmio_counts {
    unsigned long long pairs, match, ones, other;
    unsigned int active;
};

static struct mmio_counts mmio_counts(uint32_t domid)
{
    struct mmio_counts c = { 0 };
    char *s = sim_dm_state(&host, domid), *p;

    assert_non_null(s);
    p = strstr(s, "mmio pairs=");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "mmio pairs=%llu match=%llu ones=%llu "
                            "other=%llu active=%u", &c.pairs, &c.match,
                            &c.ones, &c.other, &c.active), 5);
    free(s);
    return c;
}

/* Run the MMIO workload on [gpa, gpa + len) until @pairs more are done
 * (bounded: 20 s), then idle again; the counts it added. */
static struct mmio_counts run_mmio(Emu *e, uint64_t gpa, uint64_t len,
                                   unsigned long long pairs)
{
    struct mmio_counts a = mmio_counts(e->domid), b = a;
    char dom[16], wl[64], out[256];

    snprintf(dom, sizeof(dom), "%u", e->domid);
    snprintf(wl, sizeof(wl), "mmio:%#llx:%llu", (unsigned long long)gpa,
             (unsigned long long)len);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "workload", dom, wl,
                                 NULL), 0);
    for (int i = 0; i < 2000 && b.pairs < a.pairs + pairs; i++) {
        poll(NULL, 0, 10);
        b = mmio_counts(e->domid);
    }
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "workload", dom,
                                 "idle", NULL), 0);
    assert_true(b.pairs >= a.pairs + pairs);
    /* The vCPU finishes the pair it was in, then leaves the workload. */
    b = mmio_counts(e->domid);
    for (int i = 0; i < 1000 && b.active; i++) {
        poll(NULL, 0, 5);
        b = mmio_counts(e->domid);
    }
    assert_int_equal(b.active, 0);
    return (struct mmio_counts){ b.pairs - a.pairs, b.match - a.match,
                                 b.ones - a.ones, b.other - a.other, 0 };
}

static void test_every_access_reaches_the_region_and_reads_back(void **state)
{
    static const unsigned int sizes[] = { 1, 2, 4, 8 };
    Emu *e = *state;
    struct mmio_counts c = run_mmio(e, DEV_GPA, DEV_LEN, 2000);
    IoreqStats st;

    assert_int_equal(c.match, c.pairs);
    assert_int_equal(c.ones + c.other, 0);
    /* The vCPU's first writes, as host-ioreq.c makes them: sizes 1, 2,
     * 4, 8 at each 8-byte word in turn, data from the sequence number. */
    pthread_mutex_lock(&e->dev.lock);
    assert_true(e->dev.nlog == 16);
    for (unsigned int i = 0; i < 16; i++) {
        uint64_t mask = sizes[i % 4] == 8 ? ~0ull
                                          : (1ull << (sizes[i % 4] * 8)) - 1;
        uint64_t data = ((i + 1) * 0x9e3779b97f4a7c15ull) & mask;

        if (data == mask)
            data ^= 1;
        assert_int_equal(e->dev.log[i].addr, (i / 4) * 8);
        assert_int_equal(e->dev.log[i].size, sizes[i % 4]);
        assert_true(e->dev.log[i].data == data);
    }
    assert_true(e->dev.writes >= c.pairs && e->dev.reads >= c.pairs);
    pthread_mutex_unlock(&e->dev.lock);
    ioreq_service_stats(e->svc, &st);
    assert_true(st.mmio >= 2 * c.pairs);
    assert_int_equal(st.unassigned, 0);
    assert_int_equal(st.bad, 0);
}

static void test_a_claimed_hole_and_an_unclaimed_one_read_all_ones(
    void **state)
{
    Emu *e = *state;
    struct mmio_counts c;
    IoreqStats before, after;

    /* Claimed, but no region there: xenram's unassigned. */
    c = run_mmio(e, DEV_GPA + DEV_LEN, CLAIM_LEN - DEV_LEN, 200);
    assert_int_equal(c.ones, c.pairs);
    ioreq_service_stats(e->svc, &before);
    assert_true(before.unassigned >= 2 * c.pairs);
    assert_int_equal(e->dev.writes, 0);
    /* Not claimed at all: Xen answers itself, xenram sees nothing. */
    c = run_mmio(e, 0xfd000000, 64, 200);
    assert_int_equal(c.ones, c.pairs);
    ioreq_service_stats(e->svc, &after);
    assert_int_equal(after.mmio, before.mmio);
}

static void test_an_invalidate_orphans_a_locked_dma_mapping(void **state)
{
    Emu *e = *state;
    MapCacheStats st0, st;
    uint64_t len = 4096, gpa = 0x200000, gpa2 = 0x400000;
    char dom[16], out[256];
    int err = 0;
    uint8_t *dma, *p;
    IoreqStats is;

    /* A DMA holds bucket 2 MiB; bucket 4 MiB is mapped, unlocked. */
    dma = mapcache_map(e->mc, gpa, &len, &err);
    assert_non_null(dma);
    rcu_read_lock();
    p = mapcache_get(e->mc, gpa2, 8, &err);
    assert_non_null(p);
    rcu_read_unlock();
    mapcache_get_stats(e->mc, &st0);
    assert_int_equal(st0.locked_buckets, 1);
    assert_true(st0.buckets >= 2);
    /* The guest gives 4 frames back (from the top of its RAM). */
    snprintf(dom, sizeof(dom), "%u", e->domid);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "balloon", dom,
                                 "-4", NULL), 0);
    for (int i = 0; i < 1000; i++) {
        ioreq_service_stats(e->svc, &is);
        if (is.invalidates >= 1)
            break;
        poll(NULL, 0, 10);
    }
    assert_int_equal(is.invalidates, 1);
    mapcache_get_stats(e->mc, &st);
    assert_true(st.invalidations > st0.invalidations);
    /* The unlocked bucket is gone; the locked one stays, orphaned. */
    assert_int_equal(st.buckets, 1);
    assert_int_equal(st.locked_buckets, 1);
    /* The DMA's mapping still shows the guest's frame. */
    memset(dma, 0x5a, 64);
    assert_int_equal(dma[63], 0x5a);
    {
        uint64_t back;

        assert_int_equal(mapcache_reverse(e->mc, dma, &back), 0);
        assert_int_equal(back, gpa);
    }
    /* A new lookup maps the bucket afresh; the same frame's bytes. */
    rcu_read_lock();
    p = mapcache_get(e->mc, gpa, 64, &err);
    assert_non_null(p);
    assert_ptr_not_equal(p, dma);
    assert_int_equal(p[63], 0x5a);
    rcu_read_unlock();
    mapcache_get_stats(e->mc, &st);
    assert_int_equal(st.buckets, 2);            /* the orphan, the new one */
    assert_int_equal(mapcache_unlock(e->mc, dma), 0);
    mapcache_get_stats(e->mc, &st);
    assert_int_equal(st.locked_buckets, 0);
    assert_int_equal(st.buckets, 1);            /* the orphan went */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_every_access_reaches_the_region_and_reads_back),
        T(test_a_claimed_hole_and_an_unclaimed_one_read_all_ones),
        T(test_an_invalidate_orphans_a_locked_dma_mapping),
    };

    sim_test_init(argc, argv, 90);
    rcu_register_thread();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
