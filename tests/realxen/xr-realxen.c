/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xr-realxen.c - xenram's Xen-facing code against a real Xen, from dom0.
 *
 *   xr-realxen DOMID RAM_MIB WL_PAGES WL_RATE
 *
 * Attaches to a running PVH (or HVM) guest whose RAM_MIB MiB of RAM hold
 * the stamping workload of guest-workload.c (WL_PAGES pages rewritten at
 * WL_RATE pages/s; WL_PAGES 0: any number, as the simulator's workloads,
 * see run-on-sim.sh), builds the device model's memory core around it --
 * RAM blocks, address space, mapcache, modified_memory forwarder, Xen
 * listener, exactly as xenram does -- and checks, one "ok"/"not ok" line
 * each:
 *   - the mapcache sees the guest's stamps, consistent at their frames;
 *   - log-dirty ENABLE/CLEAN/PEEK/OFF, mirrored into the MIGRATION dirty
 *     client by xen_memory_sync_migration: every page the guest rewrote
 *     is reported;
 *   - the device model's writes (guest_memory_write) are not in Xen's log
 *     without modified_memory, and are after modified_memory_bulk;
 *   - track_dirty_vram on a window of the guest's RAM, through the VGA
 *     client, and how it shares Xen's log-dirty type;
 *   - populate / decrease-reservation as the listener and RAM hot-plug use
 *     them (maximum memory, frames at 4 GiB);
 *   - xentoolcore restriction;
 *   - the error codes the simulator claims (docs/simulator.md).
 * The expectations are what Xen 4.17 does; the same program run on the
 * simulator shows where it differs.  Exit status 0 only if every check
 * passed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xentoolcore.h>

#include "memory/access.h"
#include "memory/mapcache.h"
#include "memory/modified.h"
#include "memory/ramblock.h"
#include "memory/region.h"
#include "memory/xen-memory.h"
#include "xen/sim/stamp.h"
#include "xen/xen.h"

#define MiB ((uint64_t)1 << 20)
#define PAGE 4096u
#define WIN_PAGES 64                /* the track_dirty_vram window */
#define VRAM_MIB 2
#define HOT_GFN 0x100000ul          /* 4 GiB: where hot-plugged RAM goes */
#define HOT_PAGES 256

/* Counters live in shared memory: the restriction checks run in a child. */
static struct { int checks, failures; } *cnt;

static void check(int ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void check(int ok, const char *fmt, ...)
{
    va_list ap;

    cnt->checks++;
    if (!ok) {
        cnt->failures++;
    }
    printf("%s %d - ", ok ? "ok" : "not ok", cnt->checks);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* "-1 errno N (text)" or "0" for a raw library call's outcome. */
static const char *rc_str(long rc, int err)
{
    static char buf[8][96];
    static int k;
    char *b = buf[k++ % 8];

    if (rc < 0) {
        snprintf(b, 96, "%ld, errno %d (%s)", rc, err, strerror(err));
    } else {
        snprintf(b, 96, "%ld", rc);
    }
    return b;
}

/* ---- the device model's memory core around the guest ---------------------- */

typedef struct Dm {
    uint32_t domid;
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_mr, win_mr, vram_mr;
    RAMBlock *ram_block, *win_block, *vram_block;
    bool have_win, have_vram;
    uint64_t ram_bytes;
    MapCache *mc;
    ModifiedMemory *mm;
    XenMemory *xm;
    GuestMemory gm;
} Dm;

static Dm dm;
static uint64_t *wl_gfns;          /* the workload's stamped frames */
static uint64_t wl_n;

static int dm_init(uint32_t domid, uint64_t ram_mib)
{
    ModifiedMemoryConfig mcfg = { .batch = 64, .max_delay_ms = 0 };
    char err[256];
    int ret;

    dm.domid = domid;
    dm.ram_bytes = ram_mib * MiB;
    ret = xen_open(domid, XEN_OPEN_NO_XENSTORE, &dm.xh, err, sizeof(err));
    check(ret == 0, "xen_open(domid %u): %s", domid, ret ? err : "0");
    if (ret) {
        return ret;
    }
    if ((ret = ram_list_init(&dm.ram)) ||
        (ret = ram_block_add(&dm.ram, "xen.ram", dm.ram_bytes, dm.ram_bytes,
                             NULL, 0, NULL, &dm.ram_block)) ||
        (ret = memory_context_init(&dm.ctx, &dm.ram)) ||
        (ret = memory_region_init(&dm.root, &dm.ctx, "system", 0)) ||
        (ret = memory_region_init_ram(&dm.ram_mr, &dm.ctx, "xen.ram",
                                      dm.ram_block)) ||
        (ret = memory_region_add_subregion(&dm.root, 0, &dm.ram_mr)) ||
        (ret = address_space_init(&dm.as, &dm.ctx, &dm.root, "memory")) ||
        (ret = mapcache_new(dm.xh, NULL, &dm.mc)) ||
        (ret = modified_memory_new(dm.xh, &mcfg, &dm.mm)) ||
        (ret = xen_memory_new(dm.xh, &dm.ram, &dm.as, NULL, -1, false,
                              &dm.xm))) {
        check(0, "device-model memory core over domain %u: %s", domid,
              strerror(-ret));
        return ret;
    }
    dm.gm = (GuestMemory) { .as = &dm.as, .ram = &dm.ram, .mc = dm.mc,
                            .mm = dm.mm };
    check(1, "device-model memory core over domain %u (%" PRIu64 " MiB of "
          "RAM at gfn 0)", domid, ram_mib);
    return 0;
}

static int pause_dom(void)
{
    return xen_domain_pause(dm.xh);
}

static void unpause_dom(void)
{
    xen_domain_unpause(dm.xh);
}

/* The stamp generation at @gfn through the mapcache; 0 if none/torn. */
static uint64_t gen_at(uint64_t gfn)
{
    uint64_t gen = 0;
    int err;
    void *p;

    rcu_read_lock();
    p = mapcache_get(dm.mc, gfn << 12, PAGE, &err);
    if (!p || xsim_stamp_check(p, gfn, &gen) != 1) {
        gen = 0;
    }
    rcu_read_unlock();
    return gen;
}

static uint64_t *snapshot(void)
{
    uint64_t *g = calloc(wl_n ? wl_n : 1, sizeof(*g));

    for (uint64_t i = 0; i < wl_n; i++) {
        g[i] = gen_at(wl_gfns[i]);
    }
    return g;
}

static unsigned long *alloc_bitmap(uint64_t pages)
{
    return calloc(BITS_TO_LONGS(pages) + 1, sizeof(long));
}

/* ---- 1. the mapcache sees the guest's stamps --------------------------------- */

static void test_stamps(uint64_t want_pages)
{
    uint64_t pages = dm.ram_bytes >> 12, zero = 0, stamped = 0, corrupt = 0,
             unmapped = 0, first_bad = 0;
    uint8_t copy[PAGE];
    double t0;
    int ret;

    wl_gfns = calloc(pages, sizeof(*wl_gfns));
    ret = pause_dom();
    check(ret == 0, "xc_domain_pause for a consistent scan: %d", ret);
    t0 = now_s();
    for (uint64_t g = 0; g < pages; g++) {
        int err = 0, r;
        void *p;

        rcu_read_lock();
        p = mapcache_get(dm.mc, g << 12, PAGE, &err);
        if (!p) {
            unmapped++;
            rcu_read_unlock();
            continue;
        }
        r = xsim_stamp_check(p, g, NULL);
        rcu_read_unlock();
        if (r == 0) {
            zero++;
        } else if (r == 1) {
            wl_gfns[wl_n++] = g;
            stamped++;
        } else if (((const uint64_t *)p)[0] == XSIM_STAMP_MAGIC) {
            /* A stamp at the wrong frame or torn: at most the page the
             * vCPU was writing when it was paused. */
            if (!corrupt++) {
                first_bad = g;
            }
        }
    }
    note("scan of %" PRIu64 " frames in %.2f s: %" PRIu64 " stamped, %"
         PRIu64 " zero, %" PRIu64 " unmappable, %" PRIu64 " torn stamps",
         pages, now_s() - t0, stamped, zero, unmapped, corrupt);
    /* The page the vCPU was writing at the pause may be torn: it is one of
     * the workload's, counted in @corrupt instead. */
    check(want_pages ? stamped + corrupt >= want_pages && corrupt <= 1 &&
                       stamped <= want_pages + 1
                     : stamped > 0,
          "mapcache sees the guest's %" PRIu64 " stamped pages, each "
          "consistent at its frame (found %" PRIu64 ", %" PRIu64 " torn at "
          "the pause)", want_pages, stamped, corrupt);
    check(corrupt <= 1, "no stamp is misplaced or torn beyond the one being "
          "written at the pause (%" PRIu64 ", first at gfn 0x%" PRIx64 ")",
          corrupt, first_bad);
    if (wl_n) {
        uint64_t g = wl_gfns[wl_n / 2];
        void *p;
        int err;

        ret = guest_memory_read(&dm.gm, g << 12, copy, PAGE);
        rcu_read_lock();
        p = mapcache_get(dm.mc, g << 12, PAGE, &err);
        check(ret == 0 && p && !memcmp(p, copy, PAGE) &&
              xsim_stamp_check(copy, g, NULL) == 1,
              "guest_memory_read of gfn 0x%" PRIx64 " returns the stamp the "
              "mapcache shows", g);
        rcu_read_unlock();
    }
    unpause_dom();
}

/* ---- 2. log-dirty, mirrored into the dirty blocks ---------------------------- */

static uint64_t max_gpfn(void)
{
    xen_pfn_t m = 0;

    xc_domain_maximum_gpfn(xen_xc(dm.xh), dm.domid, &m);
    return m;
}

/* Raw xc_logdirty_control with a fresh bitmap: returns rc, errno in *err. */
static long raw_logdirty(unsigned int op, unsigned int mode, uint64_t pages,
                         unsigned long *out, xc_shadow_op_stats_t *st,
                         int *err)
{
    xc_interface *xch = xen_xc(dm.xh);
    size_t bytes = ROUND_UP(BITS_TO_LONGS(pages) * sizeof(long), PAGE);
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);
    xc_shadow_op_stats_t dummy;
    long rc;

    bm = xc_hypercall_buffer_alloc_pages(xch, bm, bytes / PAGE);
    if (!bm) {
        *err = errno;
        return -1;
    }
    memset(bm, 0, bytes);
    rc = xc_logdirty_control(xch, dm.domid, op, HYPERCALL_BUFFER(bm), pages,
                             mode, st ? st : &dummy);
    *err = errno;
    if (out && rc >= 0) {
        memcpy(out, bm, BITS_TO_LONGS(pages) * sizeof(long));
    }
    xc_hypercall_buffer_free_pages(xch, bm, bytes / PAGE);
    return rc;
}

static void test_logdirty_errors_before_enable(void)
{
    uint64_t pages = dm.ram_bytes >> 12;
    xc_shadow_op_stats_t st = { 7, 7 };
    unsigned long *bm = alloc_bitmap(pages);
    long rc;
    int err;

    rc = raw_logdirty(XEN_DOMCTL_SHADOW_OP_CLEAN, 0, pages, bm, &st, &err);
    note("CLEAN before ENABLE: %s, %" PRIu64 " bits set, dirty_count %u",
         rc_str(rc, err), xr_bitmap_count(bm, pages), st.dirty_count);
    check(rc == (long)pages && xr_bitmap_count(bm, pages) == 0 &&
          st.dirty_count == 0, "CLEAN before ENABLE_LOGDIRTY succeeds with "
          "an empty bitmap and zero stats (got %s)", rc_str(rc, err));
    memset(bm, 0xff, BITS_TO_LONGS(pages) * sizeof(long));
    rc = raw_logdirty(XEN_DOMCTL_SHADOW_OP_PEEK, 0, pages, bm, &st, &err);
    check(rc == (long)pages && xr_bitmap_count(bm, pages) == 0,
          "PEEK before ENABLE_LOGDIRTY succeeds with an empty bitmap (got "
          "%s)", rc_str(rc, err));
    free(bm);
}

static void test_logdirty(uint64_t wl_rate)
{
    xc_interface *xch = xen_xc(dm.xh);
    uint64_t pages = dm.ram_bytes >> 12, changed = 0, missed = 0, first = 0;
    unsigned int mig = DIRTY_MEMORY_MIGRATION;
    uint64_t *a, *b;
    int64_t n, n2;
    double t0, dt;
    long rc;
    int err, ret;

    ret = xen_logdirty_enable(dm.xh);
    check(ret == 0, "xc_shadow_control(ENABLE_LOGDIRTY) on the guest: %s",
          ret ? xen_last_error() : "0");
    if (ret) {
        return;
    }
    rc = xc_shadow_control(xch, dm.domid,
                           XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0);
    err = errno;
    check(rc < 0 && err == EINVAL, "a second ENABLE_LOGDIRTY is EINVAL "
          "(got %s)", rc_str(rc, err));

    /* Start clean: Xen's log and the MIGRATION client. */
    n = xen_memory_sync_migration(dm.xm, true);
    check(n >= 0, "xen_memory_sync_migration(CLEAN) just after ENABLE: %"
          PRId64 " frames dirty", n);
    dirty_memory_test_and_clear(&dm.ram.dirty, 0, pages, mig);

    a = snapshot();
    t0 = now_s();
    sleep(2);
    pause_dom();
    dt = now_s() - t0;
    n = xen_memory_sync_migration(dm.xm, false);        /* PEEK */
    b = snapshot();
    for (uint64_t i = 0; i < wl_n; i++) {
        if (a[i] && b[i] && a[i] != b[i]) {
            changed++;
            if (dirty_memory_get(&dm.ram.dirty, wl_gfns[i], 1, mig) != 1 &&
                !missed++) {
                first = wl_gfns[i];
            }
        }
    }
    note("in %.2f s the guest rewrote %" PRIu64 " of its %" PRIu64 " stamped "
         "pages (%.0f pages/s, configured %" PRIu64 "); PEEK reported %"
         PRId64 " dirty frames", dt, changed, wl_n, changed / dt, wl_rate,
         n);
    check(changed > 0, "the guest's workload ran while log-dirty was on "
          "(%" PRIu64 " pages rewritten)", changed);
    check(missed == 0, "every page the guest rewrote is dirty in the "
          "MIGRATION client after PEEK (%" PRIu64 " missed, first gfn 0x%"
          PRIx64 ")", missed, first);
    check(n >= (int64_t)changed, "PEEK counts at least the rewritten pages "
          "(%" PRId64 " >= %" PRIu64 ")", n, changed);
    n2 = xen_memory_sync_migration(dm.xm, false);
    check(n2 == n, "PEEK keeps the log: a second PEEK (guest paused) reports "
          "the same %" PRId64 " frames (got %" PRId64 ")", n, n2);
    n2 = xen_memory_sync_migration(dm.xm, true);
    check(n2 == n, "CLEAN returns what PEEK showed (%" PRId64 ", got %"
          PRId64 ")", n, n2);
    n2 = xen_memory_sync_migration(dm.xm, false);
    check(n2 == 0, "after CLEAN of a paused guest the log is empty (PEEK: %"
          PRId64 ")", n2);
    unpause_dom();
    free(a);
    free(b);

    /* Mode bits other than FINAL. */
    rc = raw_logdirty(XEN_DOMCTL_SHADOW_OP_CLEAN, 0x10, pages, NULL, NULL,
                      &err);
    check(rc < 0 && err == EINVAL, "CLEAN with an unknown mode bit is EINVAL "
          "(got %s)", rc_str(rc, err));
    {
        xc_shadow_op_stats_t st = { 0 };

        rc = raw_logdirty(XEN_DOMCTL_SHADOW_OP_CLEAN,
                          XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, pages, NULL, &st,
                          &err);
        check(rc >= 0, "CLEAN with XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL is "
              "accepted (got %s)", rc_str(rc, err));
        note("stats after CLEAN|FINAL: dirty_count %u fault_count %u",
             st.dirty_count, st.fault_count);
        check(st.fault_count == 0, "fault_count is 0 on HAP (got %u)",
              st.fault_count);
    }
}

/* ---- 3. the device model's own writes ---------------------------------------- */

static void test_dm_writes(void)
{
    enum { N = 16 };
    uint64_t gfns[N], pages = dm.ram_bytes >> 12, top;
    uint8_t copy[PAGE];
    ModifiedMemoryStats st;
    unsigned long *bm = alloc_bitmap(pages);
    int seen = 0, ret;
    long rc;
    int err;

    if (wl_n < 2 * N) {
        check(0, "not enough stamped pages for the device-model write checks");
        free(bm);
        return;
    }
    /* Pages of the workload, rewritten with what they hold: harmless. */
    for (int i = 0; i < N; i++) {
        gfns[i] = wl_gfns[i * (wl_n / N)];
    }
    pause_dom();
    xen_logdirty_read(dm.xh, bm, pages, true, false, NULL);
    modified_memory_set_enabled(dm.mm, false);
    for (int i = 0; i < N; i++) {
        guest_memory_read(&dm.gm, gfns[i] << 12, copy, PAGE);
        guest_memory_write(&dm.gm, gfns[i] << 12, copy, PAGE);
    }
    modified_memory_flush(dm.mm);
    memset(bm, 0, BITS_TO_LONGS(pages) * sizeof(long));
    xen_logdirty_read(dm.xh, bm, pages, false, false, NULL);
    for (int i = 0; i < N; i++) {
        seen += xr_test_bit(gfns[i], bm);
    }
    check(seen == 0, "guest_memory_write through the mapcache is not in "
          "Xen's log without modified_memory (%d of %d logged)", seen, N);
    check(dirty_memory_all(&dm.ram.dirty, gfns[0], 1,
                           DIRTY_MEMORY_MIGRATION) == 1,
          "... but xenram's own dirty bitmap has it");

    modified_memory_set_enabled(dm.mm, true);
    for (int i = 0; i < N; i++) {
        guest_memory_read(&dm.gm, gfns[i] << 12, copy, PAGE);
        guest_memory_write(&dm.gm, gfns[i] << 12, copy, PAGE);
    }
    ret = modified_memory_flush(dm.mm);
    memset(bm, 0, BITS_TO_LONGS(pages) * sizeof(long));
    xen_logdirty_read(dm.xh, bm, pages, false, false, NULL);
    seen = 0;
    for (int i = 0; i < N; i++) {
        seen += xr_test_bit(gfns[i], bm);
    }
    modified_memory_stats(dm.mm, &st);
    check(ret == 0 && seen == N && st.errors == 0,
          "after modified_memory_bulk every page xenram wrote is in Xen's "
          "log (%d of %d; %" PRIu64 " extents in %" PRIu64 " hypercalls)",
          seen, N, st.extents, st.hypercalls);
    unpause_dom();

    /* The limits of XEN_DMOP_modified_memory (log-dirty still on). */
    top = max_gpfn();
    note("maximum gpfn 0x%" PRIx64, top);
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), dm.domid, top + 1,
                                        1);
    err = errno;
    check(rc < 0 && err == EINVAL, "modified_memory beyond the maximum gpfn "
          "is EINVAL (got %s)", rc_str(rc, err));
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), dm.domid, top, 1);
    err = errno;
    check(rc < 0 && err == EINVAL, "modified_memory of the maximum gpfn "
          "itself is EINVAL (Xen checks end > max gpfn; got %s)",
          rc_str(rc, err));
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), dm.domid,
                                        (dm.ram_bytes >> 12) + 0x100, 1);
    err = errno;
    check(rc == 0, "modified_memory of an unpopulated frame below the "
          "maximum gpfn is accepted (got %s)", rc_str(rc, err));
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), dm.domid, gfns[0], 0);
    err = errno;
    note("modified_memory of 0 pages: %s", rc_str(rc, err));

    ret = xen_logdirty_disable(dm.xh);
    check(ret == 0, "xc_shadow_control(OFF): %s", ret ? xen_last_error() : "0");
    rc = xc_shadow_control(xen_xc(dm.xh), dm.domid, XEN_DOMCTL_SHADOW_OP_OFF,
                           NULL, 0);
    err = errno;
    check(rc == 0, "OFF again succeeds (got %s)", rc_str(rc, err));
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), dm.domid, top + 1,
                                        1);
    err = errno;
    check(rc == 0, "with log-dirty off, modified_memory is ignored even "
          "beyond the maximum gpfn (got %s)", rc_str(rc, err));
    {
        long r2;

        memset(bm, 0xff, BITS_TO_LONGS(pages) * sizeof(long));
        r2 = raw_logdirty(XEN_DOMCTL_SHADOW_OP_PEEK, 0, pages, bm, NULL,
                          &err);
        check(r2 == (long)pages && xr_bitmap_count(bm, pages) == 0,
              "PEEK after OFF succeeds with an empty bitmap (got %s)",
              rc_str(r2, err));
    }
    rc = xc_shadow_control(xen_xc(dm.xh), dm.domid,
                           XEN_DOMCTL_SHADOW_OP_ENABLE, NULL, 0);
    err = errno;
    check(rc < 0 && err == EINVAL, "ENABLE without the log-dirty mode is "
          "EINVAL on HAP (got %s)", rc_str(rc, err));
    free(bm);
}

/* ---- 4. track_dirty_vram on a window of guest RAM --------------------------- */

/* The WIN_PAGES-frame window holding the most workload pages. */
static uint64_t pick_window(int *count)
{
    uint64_t best = 0;
    int best_n = -1;

    for (uint64_t i = 0; i < wl_n; i++) {
        uint64_t w = wl_gfns[i] & ~(uint64_t)(WIN_PAGES - 1);
        int n = 0;

        for (uint64_t k = i; k < wl_n && wl_gfns[k] < w + WIN_PAGES; k++) {
            n++;
        }
        if (n > best_n) {
            best_n = n;
            best = w;
        }
    }
    *count = best_n;
    return best;
}

static void test_vram(void)
{
    int wn, ret, missed = 0, changed = 0, notdirty = 0;
    uint64_t w = pick_window(&wn), *a, *b;
    uint64_t woff;
    unsigned long bm[BITS_TO_LONGS(WIN_PAGES)];
    long rc;
    int err;

    note("VRAM window: gfn 0x%" PRIx64 "+%d, %d workload pages in it", w,
         WIN_PAGES, wn);
    /* A RAM block for the window, over the guest's RAM there. */
    ret = ram_block_add(&dm.ram, "vram-window", WIN_PAGES * PAGE,
                        WIN_PAGES * PAGE, NULL, 0, NULL, &dm.win_block);
    if (!ret) {
        ret = memory_region_init_ram(&dm.win_mr, &dm.ctx, "vram-window",
                                     dm.win_block);
    }
    if (!ret) {
        ret = memory_region_add_subregion_overlap(&dm.root, w << 12,
                                                  &dm.win_mr, 1);
    }
    dm.have_win = ret == 0;
    if (ret) {
        check(0, "window region: %s", strerror(-ret));
        return;
    }
    woff = dm.win_block->offset >> 12;
    ret = memory_region_set_log(&dm.win_mr, true, DIRTY_MEMORY_VGA);
    memory_region_sync_dirty_bitmap(&dm.win_mr);
    check(ret == 0 && xen_memory_errors(dm.xm) == 0 &&
          dirty_memory_all(&dm.ram.dirty, woff, WIN_PAGES,
                           DIRTY_MEMORY_VGA) == 1,
          "first track_dirty_vram of a new range: every page VGA-dirty (%s)",
          xen_memory_errors(dm.xm) ? xen_memory_last_error(dm.xm) : "ok");
    /* What Xen itself answers to a first call on a new range. */
    memset(bm, 0, sizeof(bm));
    rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w + 8, 8,
                                         bm);
    err = errno;
    note("raw first call on another range: %s, bits 0x%lx", rc_str(rc, err),
         bm[0]);
    memset(bm, 0, sizeof(bm));
    rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w,
                                         WIN_PAGES, bm);
    dirty_memory_test_and_clear(&dm.ram.dirty, woff, WIN_PAGES,
                                DIRTY_MEMORY_VGA);
    memory_region_sync_dirty_bitmap(&dm.win_mr);
    dirty_memory_test_and_clear(&dm.ram.dirty, woff, WIN_PAGES,
                                DIRTY_MEMORY_VGA);

    a = snapshot();
    sleep(3);                   /* more than one pass of the workload */
    pause_dom();
    memory_region_sync_dirty_bitmap(&dm.win_mr);
    b = snapshot();
    for (uint64_t i = 0; i < wl_n; i++) {
        uint64_t g = wl_gfns[i];

        if (g < w || g >= w + WIN_PAGES) {
            continue;
        }
        if (a[i] && b[i] && a[i] != b[i]) {
            changed++;
            if (dirty_memory_get(&dm.ram.dirty, woff + (g - w), 1,
                                 DIRTY_MEMORY_VGA) != 1) {
                missed++;
            }
        } else if (a[i] && a[i] == b[i] &&
                   dirty_memory_get(&dm.ram.dirty, woff + (g - w), 1,
                                    DIRTY_MEMORY_VGA) != 1) {
            notdirty++;
        }
    }
    check(changed > 0 && missed == 0, "track_dirty_vram: every window page "
          "the guest rewrote is VGA-dirty after a sync (%d rewritten, %d "
          "missed)", changed, missed);
    check(notdirty > 0 || changed == wn, "... and pages it did not rewrite "
          "are not (%d clean)", notdirty);
    memset(bm, 0, sizeof(bm));
    rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w,
                                         WIN_PAGES, bm);
    err = errno;
    check(rc == 0 && bm[0] == 0, "a second collection of a paused guest "
          "reports nothing (%s, bits 0x%lx)", rc_str(rc, err), bm[0]);
    unpause_dom();
    free(a);
    free(b);

    /* Log-dirty and VRAM tracking share HAP's log-dirty p2m type. */
    if (xen_logdirty_enable(dm.xh) == 0) {
        uint64_t pages = dm.ram_bytes >> 12;
        unsigned long *ld = alloc_bitmap(pages);
        int in_ld = 0, in_vram = 0, rewrote = 0;

        pause_dom();
        xen_logdirty_read(dm.xh, ld, pages, true, false, NULL);
        memset(bm, 0, sizeof(bm));
        xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w,
                                        WIN_PAGES, bm);
        a = snapshot();
        unpause_dom();
        sleep(3);
        pause_dom();
        b = snapshot();
        memset(ld, 0, BITS_TO_LONGS(pages) * sizeof(long));
        xen_logdirty_read(dm.xh, ld, pages, true, false, NULL);   /* CLEAN */
        memset(bm, 0, sizeof(bm));
        rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w,
                                             WIN_PAGES, bm);
        err = errno;
        for (uint64_t i = 0; i < wl_n; i++) {
            uint64_t g = wl_gfns[i];

            if (g < w || g >= w + WIN_PAGES || !a[i] || !b[i] ||
                a[i] == b[i]) {
                continue;
            }
            rewrote++;
            in_ld += xr_test_bit(g, ld);
            in_vram += xr_test_bit(g - w, bm);
        }
        note("log-dirty + VRAM: %d window pages rewritten; %d in the global "
             "CLEAN, %d in the track_dirty_vram after it (%s)", rewrote,
             in_ld, in_vram, rc_str(rc, err));
        check(rewrote > 0 && in_ld == rewrote, "with VRAM tracking on, "
              "log-dirty still sees every window write (%d of %d)", in_ld,
              rewrote);
        check(in_vram == 0, "a global CLEAN re-arms HAP's log-dirty type: "
              "the next track_dirty_vram sees none of the window writes "
              "made before it (%d of %d seen)", in_vram, rewrote);
        unpause_dom();
        xen_logdirty_disable(dm.xh);
        free(a);
        free(b);
        free(ld);
    } else {
        check(0, "ENABLE_LOGDIRTY with VRAM tracking on: %s",
              xen_last_error());
    }
    memory_region_set_log(&dm.win_mr, false, DIRTY_MEMORY_VGA);
    rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, 0, 0,
                                         NULL);
    err = errno;
    check(rc < 0 && err == EFAULT, "track_dirty_vram(0, 0, NULL) is EFAULT: "
          "Linux privcmd refuses a dm_op buffer of 0 bytes before Xen sees "
          "it (got %s)", rc_str(rc, err));
    memset(bm, 0, sizeof(bm));
    rc = xendevicemodel_track_dirty_vram(xen_dmod(dm.xh), dm.domid, w, 0, bm);
    err = errno;
    check(rc == 0, "... but with a (not page-aligned) bitmap the call "
          "reaches Xen and stops tracking (got %s)", rc_str(rc, err));
}

/* ---- 5. populate / decrease-reservation --------------------------------------- */

static uint64_t tot_pages(void)
{
    XenDomainInfo info = { 0 };

    xen_domain_info(dm.xh, &info);
    return info.tot_pages;
}

static void test_populate(void)
{
    xc_interface *xch = xen_xc(dm.xh);
    XenDomainInfo info = { 0 };
    xen_pfn_t gfns[HOT_PAGES];
    uint64_t max_kb, t0;
    uint8_t buf[PAGE], zero[PAGE] = { 0 };
    int ret, err, merr[1];
    long rc;
    void *p;

    xen_domain_info(dm.xh, &info);
    max_kb = info.max_pages * 4;
    note("max %" PRIu64 " pages, tot %" PRIu64 " pages", info.max_pages,
         info.tot_pages);

    /* Frames no one populated. */
    {
        xen_pfn_t g = HOT_GFN;
        int e = 0;

        p = xenforeignmemory_map(xen_fmem(dm.xh), dm.domid,
                                 PROT_READ | PROT_WRITE, 1, &g, merr);
        e = p ? merr[0] : -errno;
        check(p && merr[0] == -EINVAL, "xenforeignmemory_map of an "
              "unpopulated frame: per-frame error -EINVAL (got %s%d)",
              p ? "" : "mapping failed, ", e);
        if (p) {
            xenforeignmemory_unmap(xen_fmem(dm.xh), p, 1);
        }
        rcu_read_lock();
        p = mapcache_get(dm.mc, (uint64_t)HOT_GFN << 12, PAGE, &err);
        rcu_read_unlock();
        check(!p && err == -EFAULT, "the mapcache refuses it with -EFAULT "
              "(got %s)", p ? "a mapping" : strerror(-err));
    }

    /* Beyond maximum memory: fails, as the listener would report it. */
    for (int i = 0; i < HOT_PAGES; i++) {
        gfns[i] = HOT_GFN + i;
    }
    t0 = tot_pages();
    {
        uint64_t room = info.max_pages > t0 ? info.max_pages - t0 : 0;
        uint64_t n = room + 16, done;
        xen_pfn_t *many = calloc(n, sizeof(*many));

        for (uint64_t i = 0; i < n; i++) {
            many[i] = HOT_GFN + i;
        }
        rc = xc_domain_populate_physmap_exact(xch, dm.domid, n, 0, 0, many);
        err = errno;
        done = tot_pages() - t0;
        check(rc < 0 && err == EBUSY, "populate beyond maximum memory: "
              "_exact is EBUSY (got %s; %" PRIu64 " of %" PRIu64 " frames "
              "populated, room was %" PRIu64 ")", rc_str(rc, err), done, n,
              room);
        check(done == room, "... and the frames up to the limit stay "
              "populated (%" PRIu64 " of %" PRIu64 ")", done, room);
        if (done) {
            rc = xc_domain_decrease_reservation_exact(xch, dm.domid, done, 0,
                                                      many);
            err = errno;
            check(rc == 0, "decrease-reservation gives them back (got %s)",
                  rc_str(rc, err));
        }
        free(many);
    }

    /* As hot-plug does it: raise the maximum, populate at 4 GiB. */
    rc = xc_domain_setmaxmem(xch, dm.domid, max_kb + 8 * 1024);
    err = errno;
    check(rc == 0, "xc_domain_setmaxmem(+8 MiB): %s", rc_str(rc, err));
    ret = xen_populate(dm.xh, HOT_GFN, HOT_PAGES);
    check(ret == 0, "xen_populate(%d frames at 4 GiB): %s", HOT_PAGES,
          ret ? xen_last_error() : "0");
    check(tot_pages() == t0 + HOT_PAGES, "tot_pages grew by %d (%" PRIu64
          " -> %" PRIu64 ")", HOT_PAGES, t0, tot_pages());
    mapcache_invalidate_range(dm.mc, (uint64_t)HOT_GFN << 12,
                              (uint64_t)HOT_PAGES << 12);
    {
        bool zeros = true;
        void *q;

        rcu_read_lock();
        for (int i = 0; i < HOT_PAGES && zeros; i++) {
            q = mapcache_get(dm.mc, (uint64_t)(HOT_GFN + i) << 12, PAGE,
                             &err);
            zeros = q && !memcmp(q, zero, PAGE);
        }
        rcu_read_unlock();
        check(zeros, "the new frames map through the mapcache and read as "
              "zeros");
        q = xen_map(dm.xh, gfns, 1, true, merr, &ret);
        if (q) {
            memset(q, 0x5a, PAGE);
            xen_unmap(dm.xh, q, 1);
        }
        /* Populating a populated frame again. */
        t0 = tot_pages();
        rc = xc_domain_populate_physmap_exact(xch, dm.domid, 1, 0, 0, gfns);
        err = errno;
        q = xen_map(dm.xh, gfns, 1, false, merr, &ret);
        memcpy(buf, q ? q : zero, PAGE);
        if (q) {
            xen_unmap(dm.xh, q, 1);
        }
        note("populate of a populated frame: %s, tot_pages %+" PRId64
             ", contents %s", rc_str(rc, err), (int64_t)(tot_pages() - t0),
             buf[0] == 0x5a ? "kept" : buf[0] == 0 ? "zeroed" : "other");
        check(rc == 0 && buf[0] == 0 && tot_pages() == t0 + 1,
              "populating a populated frame succeeds with a fresh zeroed page "
              "and counts it again in tot_pages");
    }
    t0 = tot_pages();
    ret = xen_depopulate(dm.xh, HOT_GFN, HOT_PAGES);
    check(ret == 0, "xen_depopulate(%d frames): %s", HOT_PAGES,
          ret ? xen_last_error() : "0");
    {
        int64_t mapped = (int64_t)(tot_pages() - t0), unmapped;

        mapcache_invalidate_range(dm.mc, (uint64_t)HOT_GFN << 12,
                                  (uint64_t)HOT_PAGES << 12);
        rcu_barrier();              /* the mapcache unmaps after a grace period */
        unmapped = (int64_t)(tot_pages() - t0);
        note("tot_pages after decrease: %+" PRId64 " while the mapcache maps "
             "the frames, %+" PRId64 " once it unmapped them", mapped,
             unmapped);
        check(mapped > -HOT_PAGES, "decrease-reservation of frames still "
              "foreign-mapped leaves their pages with the domain (tot_pages "
              "%+" PRId64 ")", mapped);
        check(unmapped == -HOT_PAGES, "... until the mappings go (tot_pages "
              "%+" PRId64 ")", unmapped);
    }
    ret = guest_memory_read(&dm.gm, (uint64_t)HOT_GFN << 12, buf, 16);
    rcu_read_lock();
    p = mapcache_get(dm.mc, (uint64_t)HOT_GFN << 12, PAGE, &err);
    rcu_read_unlock();
    check(!p && err == -EFAULT, "after decrease-reservation the mapcache "
          "refuses the frames again (-EFAULT; got %s)",
          p ? "a mapping" : strerror(-err));
    rc = xc_domain_decrease_reservation_exact(xch, dm.domid, 1, 0, gfns);
    err = errno;
    check(rc < 0 && err == EINVAL, "decrease-reservation of an unpopulated "
          "frame: _exact is EINVAL (got %s)", rc_str(rc, err));
    {
        xen_pfn_t g = HOT_GFN + 1;      /* not 2 MiB aligned */

        xen_pfn_t *back = calloc(512, sizeof(*back));

        t0 = tot_pages();
        rc = xc_domain_populate_physmap(xch, dm.domid, 1, 9, 0, &g);
        err = errno;
        check(rc == 1 && tot_pages() == t0 + 512, "populate of a misaligned "
              "order-9 extent is done as asked: 512 frames from gfn 0x%"
              PRIx64 " (got %s, tot_pages %+" PRId64 ")",
              (uint64_t)HOT_GFN + 1, rc_str(rc, err),
              (int64_t)(tot_pages() - t0));
        for (int i = 0; i < 512; i++) {
            back[i] = HOT_GFN + 1 + i;
        }
        if (rc == 1) {
            rc = xc_domain_decrease_reservation_exact(xch, dm.domid, 512, 0,
                                                      back);
            err = errno;
            check(rc == 0, "... and given back frame by frame (got %s)",
                  rc_str(rc, err));
        }
        free(back);
    }

    /* The listener populates a RAM_XEN_POPULATE block (VRAM) at once. */
    ret = ram_block_add(&dm.ram, "vga.vram", VRAM_MIB * MiB, VRAM_MIB * MiB,
                        NULL, RAM_XEN_POPULATE, NULL, &dm.vram_block);
    if (!ret) {
        ret = memory_region_init_ram(&dm.vram_mr, &dm.ctx, "vga.vram",
                                     dm.vram_block);
    }
    if (!ret) {
        unsigned int e0 = xen_memory_errors(dm.xm);

        t0 = tot_pages();
        ret = memory_region_add_subregion(&dm.root, dm.vram_block->offset,
                                          &dm.vram_mr);
        dm.have_vram = ret == 0;
        check(ret == 0 && xen_memory_errors(dm.xm) == e0 &&
              tot_pages() == t0 + VRAM_MIB * 256,
              "the Xen listener populates VRAM at gfn 0x%" PRIx64 " (%s, "
              "tot_pages %+" PRId64 ")", dm.vram_block->offset >> 12,
              xen_memory_errors(dm.xm) != e0 ? xen_memory_last_error(dm.xm)
                                             : "ok",
              (int64_t)(tot_pages() - t0));
        memset(buf, 0xa5, sizeof(buf));
        ret = guest_memory_write(&dm.gm, dm.vram_block->offset + PAGE, buf,
                                 PAGE);
        memset(buf, 0, sizeof(buf));
        ret = ret ? ret : guest_memory_read(&dm.gm,
                                            dm.vram_block->offset + PAGE,
                                            buf, PAGE);
        check(ret == 0 && buf[0] == 0xa5 && buf[PAGE - 1] == 0xa5,
              "guest_memory_write/read of the new VRAM: %s",
              ret ? strerror(-ret) : "0");
    } else {
        check(0, "VRAM block: %s", strerror(-ret));
    }
}

/* ---- 6. xentoolcore restriction (in a child: it cannot be undone) ------------ */

static void test_restrict(uint64_t gfn)
{
    pid_t pid = fork();
    int status;

    if (pid == 0) {
        XenHandles *xh;
        xc_dominfo_t di;
        char errbuf[256];
        xen_pfn_t g = gfn;
        int merr[1], ret, err;
        long rc;
        void *p;

        ret = xen_open(dm.domid, XEN_OPEN_NO_XENSTORE, &xh, errbuf,
                       sizeof(errbuf));
        if (ret) {
            check(0, "xen_open in the child: %s", errbuf);
            _exit(0);
        }
        ret = xen_restrict(xh);
        check(ret == 0, "xen_restrict (xentoolcore_restrict_all) to domain "
              "%u: %s", dm.domid, ret ? xen_last_error() : "0");
        p = xenforeignmemory_map(xen_fmem(xh), dm.domid, PROT_READ, 1, &g,
                                 merr);
        check(p && merr[0] == 0 && xsim_stamp_check(p, gfn, NULL) == 1,
              "a restricted handle still maps the guest's frames");
        if (p) {
            xenforeignmemory_unmap(xen_fmem(xh), p, 1);
        }
        g = 0;
        p = xenforeignmemory_map(xen_fmem(xh), 0, PROT_READ, 1, &g, merr);
        err = errno;
        check(!p && err == EPERM, "... but not another domain's (dom0): "
              "EPERM (got %s)", p ? "a mapping" : strerror(err));
        if (p) {
            xenforeignmemory_unmap(xen_fmem(xh), p, 1);
        }
        rc = xendevicemodel_modified_memory(xen_dmod(xh), 0, 0, 1);
        err = errno;
        check(rc < 0 && err == EPERM, "a restricted devicemodel handle "
              "refuses another domain: EPERM (got %s)", rc_str(rc, err));
        {
            unsigned long vb[1] = { 0 };

            rc = xendevicemodel_track_dirty_vram(xen_dmod(xh), dm.domid, gfn,
                                                 1, vb);
            err = errno;
        }
        check(rc == 0, "... and serves its own (track_dirty_vram: %s)",
              rc_str(rc, err));
        rc = xc_domain_getinfo(xen_xc(xh), dm.domid, 1, &di);
        err = errno;
        check(rc < 0 && err == ENOTTY, "a restricted xc_interface is "
              "unusable: ENOTTY (got %s)", rc_str(rc, err));
        rc = xentoolcore_restrict_all(0);
        err = errno;
        check(rc < 0 && err == EINVAL, "restricting again to another domain "
              "is EINVAL (got %s)", rc_str(rc, err));
        xen_close(xh);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        check(0, "restriction checks: the child failed");
    }
}

/* ---- 7. other error codes ------------------------------------------------------ */

static void test_errors(void)
{
    xc_interface *xch = xen_xc(dm.xh);
    xc_domaininfo_t di[1];
    xc_dominfo_t info;
    long rc;
    int err;

    rc = xc_domain_getinfolist(xch, 30000, 1, di);
    err = errno;
    note("xc_domain_getinfolist(30000): %s", rc_str(rc, err));
    check(rc == 0, "xc_domain_getinfolist past the last domain returns 0 "
          "domains (got %s)", rc_str(rc, err));
    rc = xc_domain_getinfo(xch, dm.domid + 100, 1, &info);
    err = errno;
    check(rc < 0 && err == ESRCH, "xc_domain_getinfo beyond the last domain "
          "is ESRCH (got %s)", rc_str(rc, err));
    rc = xc_domain_getinfo(xch, dm.domid - 1 > 0 ? dm.domid - 1 : 0, 1,
                           &info);
    note("xc_domain_getinfo(%u): %s, domid %u", dm.domid - 1,
         rc_str(rc, errno), rc == 1 ? info.domid : 0);
    rc = xc_domain_getinfo(xch, DOMID_FIRST_RESERVED, 1, &info);
    err = errno;
    note("xc_domain_getinfo(DOMID_FIRST_RESERVED): %s", rc_str(rc, err));
    rc = xc_domain_getinfolist(xch, DOMID_FIRST_RESERVED, 1, di);
    err = errno;
    check(rc == 0, "xc_domain_getinfolist from DOMID_FIRST_RESERVED returns "
          "0 domains (got %s)", rc_str(rc, err));
    rc = xendevicemodel_modified_memory(xen_dmod(dm.xh), 0, 0, 1);
    err = errno;
    check(rc < 0 && err == EPERM, "dm ops on dom0 are EPERM (got %s)",
          rc_str(rc, err));
    rc = xc_shadow_control(xch, 0, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                           NULL, 0);
    err = errno;
    check(rc < 0 && err == EINVAL, "log-dirty on dom0 is EINVAL (got %s)",
          rc_str(rc, err));
    rc = xc_domain_pause(xch, 0);
    err = errno;
    check(rc < 0 && err == EINVAL, "dom0 cannot pause itself: EINVAL (got %s)",
          rc_str(rc, err));
    {
        xen_pfn_t g = 0;
        int merr[1];
        void *p = xenforeignmemory_map(xen_fmem(dm.xh), 30000, PROT_READ, 1,
                                       &g, merr);

        err = p ? merr[0] : errno;
        check(!p && err == EPERM, "mapping a frame of a missing domain fails "
              "as a whole with EPERM (got %s %d)",
              p ? "per-frame" : "errno", err);
        if (p) {
            xenforeignmemory_unmap(xen_fmem(dm.xh), p, 1);
        }
    }
}

int main(int argc, char **argv)
{
    uint32_t domid;
    uint64_t ram_mib, wl_pages, wl_rate;

    if (argc != 5) {
        fprintf(stderr, "usage: xr-realxen DOMID RAM_MIB WL_PAGES WL_RATE\n");
        return 2;
    }
    domid = strtoul(argv[1], NULL, 0);
    ram_mib = strtoull(argv[2], NULL, 0);
    wl_pages = strtoull(argv[3], NULL, 0);
    wl_rate = strtoull(argv[4], NULL, 0);
    cnt = mmap(NULL, sizeof(*cnt), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (cnt == MAP_FAILED) {
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    xen_set_error_log(NULL);
    rcu_register_thread();
    if (dm_init(domid, ram_mib) == 0) {
        test_stamps(wl_pages);
        test_logdirty_errors_before_enable();
        test_logdirty(wl_rate);
        test_dm_writes();
        test_vram();
        test_populate();
        if (wl_n) {
            test_restrict(wl_gfns[0]);
        }
        test_errors();
    }
    note("%d checks, %d failed", cnt->checks, cnt->failures);
    rcu_unregister_thread();
    return cnt->failures ? 1 : 0;
}
