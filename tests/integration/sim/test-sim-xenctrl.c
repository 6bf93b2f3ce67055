/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-xenctrl.c - the libxenctrl stand-in against Xen's semantics.
 * Built against Debian's real <xenctrl.h> and -lxenctrl, run on the
 * stand-ins (simtest.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xentoolcore.h>
#include <xen/hvm/params.h>
#include <xen/version.h>

#include "tests/integration/sim/simtest.h"

static struct simhost host;

/* 16 MiB: RAM without the VGA hole, plus libxc's 8 special pages. */
#define SMALL_MIB   16
#define SMALL_PAGES (SMALL_MIB * 256 - 0x20 + 8)

static int group_setup(void **state)
{
    (void)state;
    return simhost_start(&host, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

static xc_interface *open_xc(void)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);

    assert_non_null(xch);
    return xch;
}

static uint32_t new_domain(unsigned mib)
{
    int id = sim_create(&host, mib, "idle", 0);

    assert_true(id > 0);
    return (uint32_t)id;
}

static void test_open_and_close(void **state)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);

    (void)state;
    assert_non_null(xch);
    assert_int_equal(xc_interface_close(xch), 0);
    assert_int_equal(xc_interface_close(NULL), 0);
}

static void test_dom0_exists_for_xenstored(void **state)
{
    xc_interface *xch = open_xc();
    xc_dominfo_t info;

    (void)state;
    assert_int_equal(xc_domain_getinfo(xch, 0, 1, &info), 1);
    assert_int_equal(info.domid, 0);
    assert_false(info.hvm);
    assert_false(info.dying);
    assert_false(info.shutdown);
    xc_interface_close(xch);
}

static void test_getinfo_reports_an_hvm_guest(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_dominfo_t info;

    (void)state;
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    assert_int_equal(info.domid, d);
    assert_true(info.hvm);
    assert_true(info.hap);
    assert_false(info.paused);
    assert_int_equal(info.nr_pages, SMALL_PAGES);
    assert_int_equal(info.max_memkb, SMALL_MIB * 1024 + 1024);
    assert_int_equal(info.nr_online_vcpus, 1);
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_getinfo_of_nothing_is_esrch(void **state)
{
    xc_interface *xch = open_xc();
    xc_dominfo_t info;

    (void)state;
    errno = 0;
    assert_int_equal(xc_domain_getinfo(xch, 30000, 1, &info), -1);
    assert_int_equal(errno, ESRCH);
    xc_interface_close(xch);
}

static void test_getinfo_returns_the_next_domain(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t a = new_domain(SMALL_MIB), b = new_domain(SMALL_MIB);
    xc_dominfo_t info[2];

    (void)state;
    assert_int_equal(sim_destroy(&host, a), 0);
    /* Xen enumerates from the first domid >= the one asked for. */
    assert_int_equal(xc_domain_getinfo(xch, a, 1, info), 1);
    assert_int_equal(info[0].domid, b);
    sim_destroy(&host, b);
    xc_interface_close(xch);
}

static void test_getinfolist_counts_and_never_fails_empty(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_domaininfo_t info[8];
    int n;

    (void)state;
    n = xc_domain_getinfolist(xch, 0, 8, info);
    assert_true(n >= 2);
    assert_int_equal(info[0].domain, 0);
    assert_int_equal(xc_domain_getinfolist(xch, d, 1, info), 1);
    assert_int_equal(info[0].domain, d);
    assert_true(info[0].flags & XEN_DOMINF_hvm_guest);
    assert_int_equal(info[0].tot_pages, SMALL_PAGES);
    assert_int_equal(xc_domain_getinfolist(xch, 30000, 8, info), 0);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_pause_is_counted(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_dominfo_t info;

    (void)state;
    assert_int_equal(xc_domain_pause(xch, d), 0);
    assert_int_equal(xc_domain_pause(xch, d), 0);
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    assert_true(info.paused);
    assert_int_equal(xc_domain_unpause(xch, d), 0);
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    assert_true(info.paused);
    assert_int_equal(xc_domain_unpause(xch, d), 0);
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    assert_false(info.paused);
    errno = 0;
    assert_int_equal(xc_domain_unpause(xch, d), -1);
    assert_int_equal(errno, EINVAL);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_populate_beyond_max_memory_is_ebusy(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    unsigned room = SMALL_MIB * 256 + 256 - SMALL_PAGES;   /* 1 MiB slack */
    xen_pfn_t *gfns = calloc(room + 20, sizeof(*gfns));

    (void)state;
    for (unsigned i = 0; i < room + 20; i++)
        gfns[i] = 0x10000 + i;
    errno = 0;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, d, room + 20, 0, 0,
                                                      gfns), -1);
    assert_int_equal(errno, EBUSY);
    /* The extents before the failing one stay populated. */
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES + room);
    assert_int_equal(xc_domain_populate_physmap(xch, d, 1, 0, 0,
                                                &gfns[room]), 0);
    free(gfns);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_populate_and_decrease_reservation(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xen_pfn_t gfns[16], one = 0x20000, max;

    (void)state;
    for (unsigned i = 0; i < 16; i++)
        gfns[i] = 0x20000 + i;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, d, 16, 0, 0, gfns),
                     0);
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES + 16);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, d, 16, 0, gfns),
                     0);
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES);
    /* Nothing left to remove: guest_remove_page() fails, libxc -> EINVAL. */
    errno = 0;
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, d, 1, 0, &one),
                     -1);
    assert_int_equal(errno, EINVAL);
    /* An order-9 extent (2 MiB) needs room; its gfn need not be aligned. */
    assert_int_equal(xc_domain_setmaxmem(xch, d, 64 * 1024), 0);
    one = 0x200000;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, d, 1, 9, 0, &one),
                     0);
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES + 512);
    assert_int_equal(xc_domain_maximum_gpfn(xch, d, &max), 0);
    assert_int_equal(max, 0x200000 + 511);
    /* Misaligned: populated from there, as Xen 4.17 does (tests/realxen). */
    one = 0x300001;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, d, 1, 9, 0, &one),
                     0);
    assert_int_equal(xc_get_tot_pages(xch, d), SMALL_PAGES + 1024);
    assert_int_equal(xc_domain_maximum_gpfn(xch, d, &max), 0);
    assert_int_equal(max, 0x300001 + 511);
    /* No room left for another one. */
    assert_int_equal(xc_domain_setmaxmem(xch, d, (SMALL_PAGES + 1024) * 4),
                     0);
    one = 0x400000;
    errno = 0;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, d, 1, 9, 0, &one),
                     -1);
    assert_int_equal(errno, EBUSY);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_maximum_gpfn_is_the_highest_special_page(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xen_pfn_t max = 0, nr = 0;

    (void)state;
    assert_int_equal(xc_domain_maximum_gpfn(xch, d, &max), 0);
    assert_int_equal(max, 0xfefff);
    assert_int_equal(xc_domain_nr_gpfns(xch, d, &nr), 0);
    assert_int_equal(nr, 0xff000);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_hvm_params_like_libxc_built_them(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    uint64_t v = 0;
    unsigned long lv = 0;

    (void)state;
    assert_int_equal(xc_hvm_param_get(xch, d, HVM_PARAM_STORE_PFN, &v), 0);
    assert_int_equal(v, 0xfeffc);
    assert_int_equal(xc_hvm_param_set(xch, d, HVM_PARAM_STORE_EVTCHN, 7), 0);
    assert_int_equal(xc_get_hvm_param(xch, d, HVM_PARAM_STORE_EVTCHN, &lv), 0);
    assert_int_equal(lv, 7);
    errno = 0;
    assert_int_equal(xc_hvm_param_get(xch, 0, HVM_PARAM_STORE_PFN, &v), -1);
    assert_int_equal(errno, EINVAL);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

/*
 * As Xen 4.17 (hvm/hvm.c, checked by the real-Xen tier): an empty shell
 * has every parameter 0 but the triple-fault action; set-once parameters
 * refuse a different second value; deprecated ones refuse even a read.
 */
static void test_hvm_params_follow_xen_rules(void **state)
{
    xc_interface *xch = open_xc();
    int id = sim_create(&host, SMALL_MIB, "idle", XSIM_CREATE_EMPTY);
    uint32_t d;
    uint64_t v = 7;

    (void)state;
    assert_true(id > 0);
    d = (uint32_t)id;
    for (uint32_t i = 0; i <= HVM_PARAM_TRIPLE_FAULT_REASON; i++) {
        if (xc_hvm_param_get(xch, d, i, &v) == 0)
            assert_int_equal(v, i == HVM_PARAM_TRIPLE_FAULT_REASON ? 1 : 0);
    }
    assert_int_equal(xc_hvm_param_set(xch, d, HVM_PARAM_IOREQ_SERVER_PFN,
                                      0xfeff0), 0);
    assert_int_equal(xc_hvm_param_set(xch, d, HVM_PARAM_IOREQ_SERVER_PFN,
                                      0xfeff0), 0);
    errno = 0;
    assert_int_equal(xc_hvm_param_set(xch, d, HVM_PARAM_IOREQ_SERVER_PFN,
                                      0xfeff1), -1);
    assert_int_equal(errno, EEXIST);
    errno = 0;
    assert_int_equal(xc_hvm_param_get(xch, d, HVM_PARAM_PAE_ENABLED, &v), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xc_hvm_param_set(xch, d, HVM_PARAM_BUFIOREQ_EVTCHN, 1),
                     -1);
    assert_int_equal(errno, EINVAL);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_unknown_domain_is_esrch_everywhere(void **state)
{
    xc_interface *xch = open_xc();
    xen_pfn_t gfn = 0x100, max;
    unsigned int mb = 0;

    (void)state;
    errno = 0;
    assert_int_equal(xc_domain_pause(xch, 31000), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_domain_populate_physmap_exact(xch, 31000, 1, 0, 0,
                                                      &gfn), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_shadow_control(xch, 31000,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       &mb, 0), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_domain_maximum_gpfn(xch, 31000, &max), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_domain_destroy(xch, 31000), -1);
    assert_int_equal(errno, ESRCH);
    xc_interface_close(xch);
}

static void test_destroy_removes_the_domain(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_domaininfo_t info;

    (void)state;
    assert_int_equal(xc_domain_destroy(xch, d), 0);
    assert_true(xc_domain_getinfolist(xch, d, 1, &info) == 0 ||
                info.domain != d);
    xc_interface_close(xch);
}

static void test_shutdown_is_reported(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_dominfo_t info;

    (void)state;
    assert_int_equal(xc_domain_shutdown(xch, d, SHUTDOWN_poweroff), 0);
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    assert_true(info.shutdown);
    assert_int_equal(info.shutdown_reason, SHUTDOWN_poweroff);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_hypercall_buffers(void **state)
{
    xc_interface *xch = open_xc();
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);
    DECLARE_HYPERCALL_BUFFER(char, small);

    (void)state;
    bm = xc_hypercall_buffer_alloc_pages(xch, bm, 4);
    assert_non_null(bm);
    assert_int_equal((uintptr_t)bm % XC_PAGE_SIZE, 0);
    memset(bm, 0xa5, 4 * XC_PAGE_SIZE);
    xc_hypercall_buffer_free_pages(xch, bm, 4);
    small = xc_hypercall_buffer_alloc(xch, small, 100);
    assert_non_null(small);
    small[99] = 1;
    xc_hypercall_buffer_free(xch, small);
    assert_null(XC__HYPERCALL_BUFFER_NAME(HYPERCALL_BUFFER_NULL).hbuf);
    xc_interface_close(xch);
}

static void test_version_is_4_17(void **state)
{
    xc_interface *xch = open_xc();

    (void)state;
    assert_int_equal(xc_version(xch, XENVER_version, NULL), (4 << 16) | 17);
    xc_interface_close(xch);
}

static void test_restrict_all_makes_xc_unusable(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t d = new_domain(SMALL_MIB);
    xc_dominfo_t info;

    (void)state;
    /* Only this handle is open now: restrict_all reaches it through
     * Debian's real libxentoolcore. */
    assert_int_equal(xentoolcore_restrict_all(d), 0);
    errno = 0;
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), -1);
    assert_int_equal(errno, ENOTTY);
    xc_interface_close(xch);
    /* A handle opened afterwards is not restricted. */
    xch = open_xc();
    assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
    sim_destroy(&host, d);
    xc_interface_close(xch);
}

static void test_two_hosts_are_separate(void **state)
{
    struct simhost other;
    xc_interface *here, *there;
    xc_dominfo_t info;
    int d;

    (void)state;
    here = open_xc();
    assert_int_equal(simhost_start(&other, NULL), 0);   /* sets XENSIM_DIR */
    there = open_xc();
    d = sim_create(&other, 24, "idle", 0);
    assert_true(d > 0);
    assert_int_equal(xc_domain_getinfo(there, (uint32_t)d, 1, &info), 1);
    assert_int_equal(info.nr_pages, 24 * 256 - 0x20 + 8);
    if (xc_domain_getinfo(here, (uint32_t)d, 1, &info) == 1)
        assert_int_not_equal(info.nr_pages, 24 * 256 - 0x20 + 8);
    xc_interface_close(there);
    assert_int_equal(simhost_stop(&other), 0);
    setenv("XENSIM_DIR", host.dir, 1);
    xc_interface_close(here);
}

static void test_dead_daemon_is_a_clear_error(void **state)
{
    struct simhost gone;
    xc_interface *xch;
    xc_dominfo_t info;

    (void)state;
    assert_int_equal(simhost_start(&gone, NULL), 0);
    xch = open_xc();
    simhost_kill(&gone);
    errno = 0;
    assert_int_equal(xc_domain_getinfo(xch, 0, 1, &info), -1);
    assert_int_equal(errno, ENOTCONN);
    assert_int_equal(xc_domain_pause(xch, 1), -1);
    assert_int_equal(errno, ENOTCONN);
    xc_interface_close(xch);
    errno = 0;
    assert_null(xc_interface_open(NULL, NULL, 0));
    assert_true(errno == ECONNREFUSED || errno == ENOENT);
    simhost_stop(&gone);
    errno = 0;
    assert_null(xc_interface_open(NULL, NULL, 0));
    assert_int_equal(errno, ENOENT);
    setenv("XENSIM_DIR", host.dir, 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_close),
        cmocka_unit_test(test_dom0_exists_for_xenstored),
        cmocka_unit_test(test_getinfo_reports_an_hvm_guest),
        cmocka_unit_test(test_getinfo_of_nothing_is_esrch),
        cmocka_unit_test(test_getinfo_returns_the_next_domain),
        cmocka_unit_test(test_getinfolist_counts_and_never_fails_empty),
        cmocka_unit_test(test_pause_is_counted),
        cmocka_unit_test(test_populate_beyond_max_memory_is_ebusy),
        cmocka_unit_test(test_populate_and_decrease_reservation),
        cmocka_unit_test(test_maximum_gpfn_is_the_highest_special_page),
        cmocka_unit_test(test_hvm_params_like_libxc_built_them),
        cmocka_unit_test(test_hvm_params_follow_xen_rules),
        cmocka_unit_test(test_unknown_domain_is_esrch_everywhere),
        cmocka_unit_test(test_destroy_removes_the_domain),
        cmocka_unit_test(test_shutdown_is_reported),
        cmocka_unit_test(test_hypercall_buffers),
        cmocka_unit_test(test_version_is_4_17),
        cmocka_unit_test(test_restrict_all_makes_xc_unusable),
        cmocka_unit_test(test_two_hosts_are_separate),
        cmocka_unit_test(test_dead_daemon_is_a_clear_error),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
