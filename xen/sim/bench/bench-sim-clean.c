/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-sim-clean.c - what a log-dirty CLEAN costs on the simulated host.
 *
 * A 1 GiB guest (every page touched once, as a running guest's would be)
 * has 1% of its pages written by the guest between rounds; each round
 * times xc_logdirty_control(CLEAN) through the stand-in library, the
 * channel and the daemon (PAGEMAP_SCAN with write-protect, the log-dirty
 * bitmap, the copy back).  The same run times PAGEMAP_SCAN alone on a
 * 1 GiB memfd mapping with the same number of written pages, in this
 * process, as the floor.  Prints both medians and their ratio.
 *
 *   make bench-sim          (or: $(BUILD)/bench/sim/bench-sim-clean [ROUNDS])
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/track.h"

#define GUEST_MIB   1024u
#define RAM_PAGES   (GUEST_MIB * 256ull)
#define DIRTY       (RAM_PAGES / 100)
#define LD_PAGES    0xff000ull          /* max gpfn + 1: the special pages */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[n / 2];
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

/* 1% of the RAM frames, distinct; gfns of the layout below 4 GiB. */
static void pick(uint64_t *g)
{
    static uint8_t *seen;

    if (!seen)
        seen = calloc(1, RAM_PAGES);
    memset(seen, 0, RAM_PAGES);
    for (uint64_t i = 0; i < DIRTY;) {
        uint64_t f = 0xc0 + rnd() % (RAM_PAGES - 0xc0);

        if (seen[f])
            continue;
        seen[f] = 1;
        g[i++] = f;
    }
}

static uint64_t counted;

static void count_run(void *opaque, uint64_t gfn, uint64_t nr)
{
    (void)opaque;
    (void)gfn;
    counted += nr;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 20;
    uint64_t *clean_ns, *scan_ns, *g, *all, c_med, s_med, t;
    struct xsim_track tr;
    struct simhost host;
    xc_shadow_op_stats_t st;
    xc_interface *xch;
    int d, mfd, mode;
    const char *why;
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);

    if (rounds < 3)
        rounds = 3;
    sim_test_init(argc, argv, 600);
    mode = track_probe("uffd", &why);
    if (mode != XSIM_TRACK_UFFD) {
        fprintf(stderr, "bench-sim-clean: needs userfaultfd async "
                "write-protect and PAGEMAP_SCAN: %s\n", why);
        return 1;
    }
    clean_ns = calloc(rounds, sizeof(*clean_ns));
    scan_ns = calloc(rounds, sizeof(*scan_ns));
    g = calloc(DIRTY, sizeof(*g));
    all = calloc(RAM_PAGES, sizeof(*all));
    if (!clean_ns || !scan_ns || !g || !all)
        return 1;

    /* ---- through the simulator ---- */
    if (simhost_start(&host, "uffd")) {
        fprintf(stderr, "bench-sim-clean: cannot start xensim\n");
        return 1;
    }
    d = sim_create(&host, GUEST_MIB, "idle", 0);
    xch = xc_interface_open(NULL, NULL, 0);
    if (d <= 0 || !xch) {
        fprintf(stderr, "bench-sim-clean: no 1 GiB guest: %s\n",
                strerror(d < 0 ? -d : errno));
        simhost_stop(&host);
        return 1;
    }
    bm = xc_hypercall_buffer_alloc_pages(xch, bm, (LD_PAGES / 8 + 4095) / 4096);
    for (uint64_t i = 0; i < RAM_PAGES - 0xc0; i++)
        all[i] = 0xc0 + i;
    t = now_ns();
    sim_guest_write(&host, (uint32_t)d, all, RAM_PAGES - 0xc0);
    fprintf(stderr, "guest touched %llu pages in %.2f s\n",
            (unsigned long long)(RAM_PAGES - 0xc0), (now_ns() - t) / 1e9);
    xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0);
    xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    for (unsigned r = 0; r < rounds; r++) {
        long long rc;

        pick(g);
        sim_guest_write(&host, (uint32_t)d, g, DIRTY);
        t = now_ns();
        rc = xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                                 HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
        clean_ns[r] = now_ns() - t;
        if (rc != (long long)LD_PAGES || st.dirty_count != DIRTY) {
            fprintf(stderr, "bench-sim-clean: CLEAN saw %u dirty pages, "
                    "expected %llu\n", st.dirty_count,
                    (unsigned long long)DIRTY);
            simhost_stop(&host);
            return 1;
        }
    }
    xc_hypercall_buffer_free_pages(xch, bm, (LD_PAGES / 8 + 4095) / 4096);
    xc_interface_close(xch);
    simhost_stop(&host);

    /* ---- PAGEMAP_SCAN alone, same shape ---- */
    mfd = memfd_create("bench-sim-clean", MFD_CLOEXEC);
    if (mfd < 0 ||
        ftruncate(mfd, (off_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE)) < 0 ||
        fallocate(mfd, 0, 0, (off_t)(RAM_PAGES * XSIM_PAGE_SIZE)) < 0 ||
        track_init(&tr, XSIM_TRACK_UFFD, mfd) < 0) {
        perror("bench-sim-clean: baseline set-up");
        return 1;
    }
    for (uint64_t i = 0; i < RAM_PAGES; i++)
        memset(tr.view + i * XSIM_PAGE_SIZE, 1, 64);
    track_protect(&tr, 0, RAM_PAGES, true);
    for (unsigned r = 0; r < rounds; r++) {
        pick(g);
        for (uint64_t i = 0; i < DIRTY; i++)
            memset(tr.view + g[i] * XSIM_PAGE_SIZE, (int)r, 64);
        counted = 0;
        t = now_ns();
        track_scan(&tr, 0, RAM_PAGES, true, count_run, NULL);
        scan_ns[r] = now_ns() - t;
        if (counted != DIRTY) {
            fprintf(stderr, "bench-sim-clean: PAGEMAP_SCAN saw %llu pages\n",
                    (unsigned long long)counted);
            return 1;
        }
    }
    track_fini(&tr);
    close(mfd);

    c_med = median(clean_ns, rounds);
    s_med = median(scan_ns, rounds);
    printf("bench-sim-clean: 1 GiB guest, 1%% dirty (%llu pages), %u rounds\n",
           (unsigned long long)DIRTY, rounds);
    printf("  CLEAN via xc_logdirty_control + xensim   median %8.1f us\n",
           c_med / 1e3);
    printf("  PAGEMAP_SCAN alone (write-protect scan)  median %8.1f us\n",
           s_med / 1e3);
    printf("  ratio CLEAN / PAGEMAP_SCAN               %8.2f\n",
           (double)c_med / (double)s_med);
    return 0;
}
