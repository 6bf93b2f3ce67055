/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark, on the simulated Xen host: the ioreq round trip (a vCPU's
 * MMIO access -> its slot and event channel -> xenram's ioreq thread ->
 * the region's callback -> IORESP_READY -> the vCPU), against a bare
 * event-channel ping-pong through the same libxenevtchn stand-in, in the
 * same run.  The ioreq path has the same two notifications plus the slot
 * protocol, the FlatView dispatch and the daemon's side; the ratio says
 * what those cost.  Target: at most 2x the ping-pong.
 *
 *   build/bench/xenram/bench-ioreq-sim [SECONDS]   (default 1 per window)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/bench/bench.h"
#include "tests/integration/sim/simtest.h"
#include "xen/dm/ioreq.h"

#include <xenevtchn.h>

#define DEV_GPA 0xfe000000ull
#define REPS 5

static struct simhost host;
static uint64_t regs[8];

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned int size)
{
    uint64_t v = 0;

    (void)opaque;
    memcpy(&v, (uint8_t *)regs + addr, size);
    return v;
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data,
                      unsigned int size)
{
    (void)opaque;
    memcpy((uint8_t *)regs + addr, &data, size);
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read, .write = dev_write,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

static unsigned long long mmio_pairs(uint32_t domid)
{
    char *s = sim_dm_state(&host, domid), *p;
    unsigned long long n = 0;

    p = s ? strstr(s, "mmio pairs=") : NULL;
    if (p)
        n = strtoull(p + strlen("mmio pairs="), NULL, 10);
    free(s);
    return n;
}

/* ---- the baseline: two threads bounce one event over a channel --------- */

typedef struct Pong {
    xenevtchn_handle *xce;
    evtchn_port_t port;
    volatile int stop;
} Pong;

static int wait_event(xenevtchn_handle *xce)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(xce), .events = POLLIN };
    int p;

    for (;;) {
        p = xenevtchn_pending(xce);
        if (p >= 0) {
            xenevtchn_unmask(xce, (evtchn_port_t)p);
            return p;
        }
        if (errno != EAGAIN || poll(&pfd, 1, 1000) < 0)
            return -1;
        if (pfd.revents == 0)
            return -1;          /* a second without the peer: give up */
    }
}

static void *ponger(void *arg)
{
    Pong *pg = arg;

    while (!pg->stop && wait_event(pg->xce) >= 0)
        xenevtchn_notify(pg->xce, pg->port);
    return NULL;
}

/* Round trips per second of a bare ping-pong for @secs. */
static double pingpong(double secs)
{
    xenevtchn_handle *a = xenevtchn_open(NULL, 0), *b = xenevtchn_open(NULL, 0);
    Pong pg = { .xce = b };
    pthread_t t;
    int pa, pb;
    uint64_t n = 0;
    double t0, t1 = 0;

    if (!a || !b) {
        fprintf(stderr, "bench-ioreq-sim: xenevtchn_open: %s\n",
                strerror(errno));
        exit(1);
    }
    /* Nonblocking fds: wait_event polls, as xenram's thread does. */
    pa = xenevtchn_bind_unbound_port(a, 0);
    pb = xenevtchn_bind_interdomain(b, 0, (evtchn_port_t)pa);
    if (pa < 0 || pb < 0) {
        fprintf(stderr, "bench-ioreq-sim: binding: %s\n", strerror(errno));
        exit(1);
    }
    {
        int fl;

        fl = fcntl(xenevtchn_fd(a), F_GETFL);
        fcntl(xenevtchn_fd(a), F_SETFL, fl | O_NONBLOCK);
        fl = fcntl(xenevtchn_fd(b), F_GETFL);
        fcntl(xenevtchn_fd(b), F_SETFL, fl | O_NONBLOCK);
    }
    pg.port = (evtchn_port_t)pb;
    pthread_create(&t, NULL, ponger, &pg);
    t0 = t1 = bench_now();
    do {
        xenevtchn_notify(a, (evtchn_port_t)pa);
        if (wait_event(a) < 0)
            break;
        n++;
        t1 = bench_now();
    } while (t1 - t0 < secs);
    pg.stop = 1;
    xenevtchn_notify(a, (evtchn_port_t)pa);
    pthread_join(t, NULL);
    xenevtchn_close(a);
    xenevtchn_close(b);
    return t1 > t0 ? n / (t1 - t0) : 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    double s_ioreq[REPS], s_ping[REPS], rt_ioreq, rt_ping;
    RAMList ram;
    MemoryContext ctx;
    MemoryRegion root, ioroot, dev;
    AddressSpace as, io;
    IoreqHandler h = { 0 };
    IoreqService *svc;
    XenHandles *xh;
    char err[512], ns[200], dom[16], wl[64], out[256];
    int d;

    sim_test_init(argc, argv, 600);
    rcu_register_thread();
    if (simhost_start(&host, NULL))
        return 1;
    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    d = sim_create(&host, 16, "idle", 0);
    if (d <= 0 || xen_open((uint32_t)d, XEN_OPEN_NO_XENSTORE, &xh, err,
                           sizeof(err)) ||
        ram_list_init(&ram) || memory_context_init(&ctx, &ram) ||
        memory_region_init(&root, &ctx, "system", 0) ||
        memory_region_init(&ioroot, &ctx, "io", 65536) ||
        memory_region_init_io(&dev, &ctx, "regs", &dev_ops, NULL, 64) ||
        memory_region_add_subregion(&root, DEV_GPA, &dev) ||
        address_space_init(&as, &ctx, &root, "memory") ||
        address_space_init(&io, &ctx, &ioroot, "io")) {
        fprintf(stderr, "bench-ioreq-sim: set-up failed %s\n", err);
        return 1;
    }
    h.mem = &as;
    h.io = &io;
    if (ioreq_service_start(xh, &h, &svc, err, sizeof(err)) ||
        xen_ioreq_map_range(xh, ioreq_service_id(svc), true, DEV_GPA,
                            DEV_GPA + 63)) {
        fprintf(stderr, "bench-ioreq-sim: %s\n", err);
        return 1;
    }
    snprintf(dom, sizeof(dom), "%d", d);
    snprintf(wl, sizeof(wl), "mmio:%#llx:64:0", (unsigned long long)DEV_GPA);

    /* Interleaved windows: ioreq, then ping-pong, REPS times. */
    for (int r = 0; r < REPS; r++) {
        unsigned long long p0, p1;
        double t0, t1;

        p0 = mmio_pairs((uint32_t)d);
        t0 = bench_now();
        sim_run_cli(&host, out, sizeof(out), "workload", dom, wl, NULL);
        while (bench_now() - t0 < secs)
            poll(NULL, 0, 20);
        sim_run_cli(&host, out, sizeof(out), "workload", dom, "idle", NULL);
        t1 = bench_now();
        p1 = mmio_pairs((uint32_t)d);
        /* A pair is two round trips (a write, its read-back). */
        s_ioreq[r] = 2.0 * (double)(p1 - p0) / (t1 - t0);
        s_ping[r] = pingpong(secs);
    }
    rt_ioreq = 1e6 / bench_median(s_ioreq, REPS);
    rt_ping = 1e6 / bench_median(s_ping, REPS);
    printf("ioreq round trip on the simulator (median of %d windows of "
           "%.1f s, 1 vCPU)\n", REPS, secs);
    printf("  bare event-channel ping-pong     %7.1f us\n", rt_ping);
    printf("  MMIO ioreq through xenram        %7.1f us  %.2fx ping-pong\n",
           rt_ioreq, rt_ioreq / rt_ping);
    bench_target("ioreq round trip / ping-pong", rt_ioreq / rt_ping, 2.0, 1);

    ioreq_service_stop(svc);
    address_space_destroy(&as);
    address_space_destroy(&io);
    memory_region_del_subregion(&root, &dev);
    memory_region_destroy(&dev);
    memory_region_destroy(&root);
    memory_region_destroy(&ioroot);
    synchronize_rcu();
    memory_context_destroy(&ctx);
    ram_list_destroy(&ram);
    xen_close(xh);
    simhost_stop(&host);
    rcu_unregister_thread();
    return 0;
}
