/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-logdirty.c - log-dirty on the simulated host against Xen's
 * semantics (paging_log_dirty_op, XEN_DMOP_modified_memory), with each
 * tracking back-end: userfaultfd write-protect (async) read with
 * PAGEMAP_SCAN, and explicit marking by the vCPUs.
 *
 * The guest's writes come from the host itself (XSIM_OP_GUEST_WRITE writes
 * through the vCPU view, as a vCPU does) so that every expectation is
 * exact; one test also runs a real vCPU workload.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

#define MIB   16
#define PAGES 0xff000ul       /* up to and with the special pages */

static struct simhost host;

struct ctx {
    xc_interface *xch;
    xendevicemodel_handle *dm;
    xenforeignmemory_handle *fmem;
    uint32_t domid;
    unsigned long *bm;          /* hypercall buffer, PAGES bits */
    xc_hypercall_buffer_t *hb;
};

static int setup_uffd(void **state)
{
    (void)state;
    return simhost_start(&host, "uffd");
}

static int setup_explicit(void **state)
{
    (void)state;
    return simhost_start(&host, "explicit");
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

static struct ctx *ctx_new(const char *workload)
{
    struct ctx *c = calloc(1, sizeof(*c));
    int d;

    assert_non_null(c);
    c->xch = xc_interface_open(NULL, NULL, 0);
    c->dm = xendevicemodel_open(NULL, 0);
    c->fmem = xenforeignmemory_open(NULL, 0);
    assert_non_null(c->xch);
    assert_non_null(c->dm);
    assert_non_null(c->fmem);
    d = sim_create(&host, MIB, workload, 0);
    assert_true(d > 0);
    c->domid = (uint32_t)d;
    return c;
}

static int test_setup(void **state)
{
    struct ctx *c = ctx_new("idle");
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);

    bm = xc_hypercall_buffer_alloc_pages(c->xch, bm,
                                         (int)((PAGES / 8 + 4095) / 4096));
    assert_non_null(bm);
    c->bm = bm;
    c->hb = malloc(sizeof(*c->hb));
    *c->hb = XC__HYPERCALL_BUFFER_NAME(bm);
    *state = c;
    return 0;
}

static int test_teardown(void **state)
{
    struct ctx *c = *state;

    if (!c)
        return 0;
    xc__hypercall_buffer_free_pages(c->xch, c->hb,
                                    (int)((PAGES / 8 + 4095) / 4096));
    free(c->hb);
    sim_destroy(&host, c->domid);
    xenforeignmemory_close(c->fmem);
    xendevicemodel_close(c->dm);
    xc_interface_close(c->xch);
    free(c);
    return 0;
}

static long long op(struct ctx *c, unsigned sop, unsigned mode,
                    xc_shadow_op_stats_t *st)
{
    memset(c->bm, 0, PAGES / 8);
    return xc_logdirty_control(c->xch, c->domid, sop, c->hb, PAGES, mode, st);
}

static long long clean(struct ctx *c, xc_shadow_op_stats_t *st)
{
    return op(c, XEN_DOMCTL_SHADOW_OP_CLEAN, 0, st);
}

static void enable(struct ctx *c)
{
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       NULL, 0), 0);
}

static void guest_write(struct ctx *c, const uint64_t *gfns, size_t n)
{
    assert_int_equal(sim_guest_write(&host, c->domid, gfns, n), (int64_t)n);
}

static void test_clean_before_enable_succeeds_empty(void **state)
{
    struct ctx *c = *state;
    xc_shadow_op_stats_t st = { 1, 1 };
    uint64_t g = 0x100;

    guest_write(c, &g, 1);
    /* paging_log_dirty_op() has no "enabled" check: empty bitmap, 0. */
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    assert_int_equal(st.dirty_count, 0);
}

static void test_enable_twice_is_einval(void **state)
{
    struct ctx *c = *state;

    enable(c);
    errno = 0;
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    /* OFF always succeeds, enabled or not. */
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0), 0);
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0), 0);
    enable(c);
}

static void test_guest_writes_are_logged_exactly(void **state)
{
    struct ctx *c = *state;
    const uint64_t g[] = { 0x10, 0x11, 0x500, 0xfeffc };
    xc_shadow_op_stats_t st;

    enable(c);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    guest_write(c, g, 4);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(st.dirty_count, 4);
    assert_int_equal(sim_bits(c->bm, PAGES), 4);
    for (int i = 0; i < 4; i++)
        assert_true(sim_bit(c->bm, g[i]));
    /* CLEAN took them. */
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    assert_int_equal(st.dirty_count, 0);
}

static void test_peek_keeps_the_log(void **state)
{
    struct ctx *c = *state;
    uint64_t g = 0x777;
    xc_shadow_op_stats_t st;

    enable(c);
    guest_write(c, &g, 1);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_PEEK, 0, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 1);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_PEEK, 0, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, g));
    assert_int_equal(st.dirty_count, 1);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, g));
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_false(sim_bit(c->bm, g));
}

static void test_foreign_writes_are_not_logged(void **state)
{
    struct ctx *c = *state;
    xen_pfn_t gfn = 0x234;
    int err = 1;
    uint8_t *p;
    xc_shadow_op_stats_t st;

    enable(c);
    clean(c, &st);
    p = xenforeignmemory_map(c->fmem, c->domid, PROT_READ | PROT_WRITE, 1,
                             &gfn, &err);
    assert_non_null(p);
    assert_int_equal(err, 0);
    memset(p, 0x5a, 4096);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_false(sim_bit(c->bm, gfn));
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    /* ... until the device model says so. */
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, gfn, 1), 0);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, gfn));
    assert_int_equal(sim_bits(c->bm, PAGES), 1);
    assert_int_equal(p[100], 0x5a);
    xenforeignmemory_unmap(c->fmem, p, 1);
}

static void test_modified_memory_counts_only_while_enabled(void **state)
{
    struct ctx *c = *state;
    xc_shadow_op_stats_t st;

    /* Off: accepted and ignored, even a malformed extent. */
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x300, 2),
                     0);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x300, 0),
                     0);
    enable(c);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x300, 2),
                     0);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_PEEK, 0, &st), (long long)PAGES);
    assert_int_equal(st.dirty_count, 2);
    assert_true(sim_bit(c->bm, 0x300) && sim_bit(c->bm, 0x301));
    assert_int_equal(sim_bits(c->bm, PAGES), 2);
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0), 0);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x400, 1),
                     0);
    enable(c);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
}

static void test_modified_memory_bad_extents(void **state)
{
    struct ctx *c = *state;
    struct xen_dm_op_modified_memory_extent ext[3] = {
        { .nr = 1, .first_pfn = 0x10 },
        { .nr = 1, .first_pfn = 0x20 },
        { .nr = 1, .first_pfn = 0x30 },
    };
    xc_shadow_op_stats_t st;

    enable(c);
    clean(c, &st);
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x10, 0),
                     -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0xff000,
                                                    1), -1);
    assert_int_equal(errno, EINVAL);
    /* Xen's check (end > max gpfn) refuses the highest gfn itself. */
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0xfefff,
                                                    1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0xfeffe,
                                                    1), 0);
    /* Unpopulated frames (the VGA hole) are skipped silently. */
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0xa0, 2),
                     0);
    /* Extents are taken from the last: a bad first one fails after the
     * others were marked. */
    ext[0].pad = 1;
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory_bulk(c->dm, c->domid, ext,
                                                         3), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, 0xfeffe));
    assert_false(sim_bit(c->bm, 0xa0));
    assert_false(sim_bit(c->bm, 0x10));
    assert_true(sim_bit(c->bm, 0x20) && sim_bit(c->bm, 0x30));
    assert_int_equal(sim_bits(c->bm, PAGES), 3);
}

static void test_final_flag_and_bad_modes(void **state)
{
    struct ctx *c = *state;
    xc_shadow_op_stats_t st;
    uint64_t g = 0x42;

    enable(c);
    clean(c, &st);
    guest_write(c, &g, 1);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, &st),
                     (long long)PAGES);
    assert_true(sim_bit(c->bm, g));
    errno = 0;
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_CLEAN, 2, &st), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE, NULL, 0),
                     -1);
    assert_int_equal(errno, EINVAL);
}

static void test_off_discards_the_log(void **state)
{
    struct ctx *c = *state;
    uint64_t g[] = { 0x50, 0x51 };
    xc_shadow_op_stats_t st;

    enable(c);
    guest_write(c, g, 2);
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0), 0);
    guest_write(c, g, 2);               /* not tracked while off */
    enable(c);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 0);
    guest_write(c, g, 1);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_int_equal(sim_bits(c->bm, PAGES), 1);
}

static void test_clean_without_bitmap_keeps_bits(void **state)
{
    struct ctx *c = *state;
    uint64_t g = 0x60;
    xc_shadow_op_stats_t st;

    enable(c);
    clean(c, &st);
    guest_write(c, &g, 1);
    /* pages = 0: Xen walks no part of the bitmap, only resets the stats. */
    assert_int_equal(xc_shadow_control(c->xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_CLEAN, NULL, 0), 0);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, g));
    assert_int_equal(st.dirty_count, 0);
}

static void test_stats_count_each_page_once(void **state)
{
    struct ctx *c = *state;
    uint64_t g[] = { 0x70, 0x70, 0x71 };
    xc_shadow_op_stats_t st;

    enable(c);
    clean(c, &st);
    guest_write(c, g, 3);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x71, 2),
                     0);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_PEEK, 0, &st), (long long)PAGES);
    assert_int_equal(st.dirty_count, 3);
    assert_int_equal(st.fault_count, 0);
}

static void test_populated_later_then_written(void **state)
{
    struct ctx *c = *state;
    xen_pfn_t gfn = 0x40000;
    uint64_t g = gfn;
    xc_shadow_op_stats_t st;

    enable(c);
    clean(c, &st);
    assert_int_equal(xc_domain_populate_physmap_exact(c->xch, c->domid, 1, 0,
                                                      0, &gfn), 0);
    assert_int_equal(op(c, XEN_DOMCTL_SHADOW_OP_PEEK, 0, &st), (long long)PAGES);
    assert_false(sim_bit(c->bm, gfn));
    guest_write(c, &g, 1);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_true(sim_bit(c->bm, gfn));
    assert_int_equal(xc_domain_decrease_reservation_exact(c->xch, c->domid, 1,
                                                          0, &gfn), 0);
    assert_int_equal(sim_guest_write(&host, c->domid, &g, 1), 0);
    assert_int_equal(clean(c, &st), (long long)PAGES);
    assert_false(sim_bit(c->bm, gfn));
}

static void test_dom0_has_no_log_dirty(void **state)
{
    struct ctx *c = *state;

    errno = 0;
    assert_int_equal(xc_shadow_control(c->xch, 0,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
}

static uint64_t vcpu_writes(uint32_t domid)
{
    struct xsim_dominfo info;
    uint64_t args[6] = { 1 };
    int err;

    assert_int_equal(simhost_call(&host, XSIM_OP_DOM_GETINFO, domid, args,
                                  NULL, 0, &info, sizeof(info), &err), 1);
    return info.vcpu_writes;
}

static void test_vcpu_workload_is_logged_and_stamped(void **state)
{
    struct ctx *c = ctx_new("random:40");
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);
    xc_shadow_op_stats_t st;
    const struct timespec ms = { 0, 1000000 };
    uint64_t w0, n, checked = 0;
    long long rc;
    int loops = 0;

    (void)state;
    bm = xc_hypercall_buffer_alloc_pages(c->xch, bm, (PAGES / 8 + 4095) / 4096);
    assert_non_null(bm);
    enable(c);
    /* Counted before the CLEAN: what is dirty after it was written since. */
    w0 = vcpu_writes(c->domid);
    assert_true(xc_logdirty_control(c->xch, c->domid,
                                    XEN_DOMCTL_SHADOW_OP_CLEAN,
                                    HYPERCALL_BUFFER(bm), PAGES, 0, &st) > 0);
    /* Wait (bounded) for the vCPU to write, then stop it: a pause returns
     * only when no write is in flight. */
    while (vcpu_writes(c->domid) < w0 + 200 && loops++ < 10000)
        nanosleep(&ms, NULL);
    assert_int_equal(xc_domain_pause(c->xch, c->domid), 0);
    memset(bm, 0, PAGES / 8);
    rc = xc_logdirty_control(c->xch, c->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                             HYPERCALL_BUFFER(bm), PAGES, 0, &st);
    assert_int_equal(rc, (long long)PAGES);
    n = sim_bits(bm, PAGES);
    assert_true(n >= 100);
    assert_true(n <= vcpu_writes(c->domid) - w0);
    assert_int_equal(st.dirty_count, n);
    /* Every dirty page holds a whole stamp of its own frame. */
    for (uint64_t g = 0; g < PAGES && checked < 64; g++) {
        xen_pfn_t f = g;
        int err;
        void *p;

        if (!sim_bit(bm, g))
            continue;
        p = xenforeignmemory_map(c->fmem, c->domid, PROT_READ, 1, &f, &err);
        assert_non_null(p);
        assert_int_equal(err, 0);
        assert_int_equal(xsim_stamp_check(p, g, NULL), 1);
        xenforeignmemory_unmap(c->fmem, p, 1);
        checked++;
    }
    /* Paused: nothing more. */
    memset(bm, 0, PAGES / 8);
    xc_logdirty_control(c->xch, c->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        HYPERCALL_BUFFER(bm), PAGES, 0, &st);
    assert_int_equal(sim_bits(bm, PAGES), 0);
    xc_hypercall_buffer_free_pages(c->xch, bm, (PAGES / 8 + 4095) / 4096);
    sim_destroy(&host, c->domid);
    xenforeignmemory_close(c->fmem);
    xendevicemodel_close(c->dm);
    xc_interface_close(c->xch);
    free(c);
}

/* Start @workload, wait until the vCPU wrote @n pages, pause, CLEAN. */
static uint64_t run_and_clean(struct ctx *c, unsigned long *bm,
                              xc_hypercall_buffer_t *hb, const char *workload,
                              uint64_t n)
{
    const struct timespec ms = { 0, 1000000 };
    xc_shadow_op_stats_t st;
    char id[16];
    uint64_t w0;
    int loops = 0;

    enable(c);
    w0 = vcpu_writes(c->domid);
    xc_logdirty_control(c->xch, c->domid, XEN_DOMCTL_SHADOW_OP_CLEAN, hb,
                        PAGES, 0, &st);
    snprintf(id, sizeof(id), "%u", c->domid);
    assert_int_equal(sim_run_cli(&host, NULL, 0, "workload", id, workload,
                                 NULL), 0);
    while (vcpu_writes(c->domid) < w0 + n && loops++ < 10000)
        nanosleep(&ms, NULL);
    assert_int_equal(xc_domain_pause(c->xch, c->domid), 0);
    memset(bm, 0, PAGES / 8);
    assert_int_equal(xc_logdirty_control(c->xch, c->domid,
                                         XEN_DOMCTL_SHADOW_OP_CLEAN, hb,
                                         PAGES, 0, &st), (long long)PAGES);
    return sim_bits(bm, PAGES);
}

static void test_hotset_workload_stays_in_its_set(void **state)
{
    struct ctx *c = *state;
    uint64_t n;

    assert_int_equal(sim_run_cli(&host, NULL, 0, "workload", "0", "idle",
                                 NULL), 1);     /* dom0 runs no workload */
    n = run_and_clean(c, c->bm, c->hb, "hotset:10:200", 300);
    assert_true(n > 0);
    /* 10% of 16 MiB of RAM: the first 408 RAM pages (VGA hole skipped). */
    for (uint64_t g = 408 + 0x20; g < PAGES; g++)
        assert_false(sim_bit(c->bm, g));
    assert_true(n <= 408);
}

static void test_sequential_workload_walks_in_order(void **state)
{
    struct ctx *c = *state;
    uint64_t n, runs = 0;

    n = run_and_clean(c, c->bm, c->hb, "sequential:100", 200);
    assert_true(n >= 200);
    for (uint64_t g = 0; g < PAGES; g++)
        if (sim_bit(c->bm, g) && (g == 0 || !sim_bit(c->bm, g - 1)))
            runs++;
    /* One run from the start of RAM (two if the VGA hole splits it). */
    assert_true(runs >= 1 && runs <= 2);
    assert_true(sim_bit(c->bm, 0));
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_clean_before_enable_succeeds_empty),
        T(test_enable_twice_is_einval),
        T(test_guest_writes_are_logged_exactly),
        T(test_peek_keeps_the_log),
        T(test_foreign_writes_are_not_logged),
        T(test_modified_memory_counts_only_while_enabled),
        T(test_modified_memory_bad_extents),
        T(test_final_flag_and_bad_modes),
        T(test_off_discards_the_log),
        T(test_clean_without_bitmap_keeps_bits),
        T(test_stats_count_each_page_once),
        T(test_populated_later_then_written),
        T(test_dom0_has_no_log_dirty),
        T(test_hotset_workload_stays_in_its_set),
        T(test_sequential_workload_walks_in_order),
        cmocka_unit_test(test_vcpu_workload_is_logged_and_stamped),
    };
    int failed;

    sim_test_init(argc, argv, 90);
    failed = cmocka_run_group_tests_name("uffd-wp-async", tests, setup_uffd,
                                         group_teardown);
    failed += cmocka_run_group_tests_name("explicit", tests, setup_explicit,
                                          group_teardown);
    return failed ? 1 : 0;
}
