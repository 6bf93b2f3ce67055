/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-foreignmemory.c - the libxenforeignmemory stand-in against
 * privcmd's semantics: mappings are the guest's memory, per-frame errors,
 * restriction, SIGBUS on frames that failed.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xentoolcore.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

static struct simhost host;
static uint32_t dom, dom2;

static int group_setup(void **state)
{
    int a, b;

    (void)state;
    if (simhost_start(&host, NULL))
        return -1;
    a = sim_create(&host, 16, "idle", 0);
    b = sim_create(&host, 16, "idle", 0);
    if (a <= 0 || b <= 0)
        return -1;
    dom = (uint32_t)a;
    dom2 = (uint32_t)b;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

static xenforeignmemory_handle *open_fmem(void)
{
    xenforeignmemory_handle *f = xenforeignmemory_open(NULL, 0);

    assert_non_null(f);
    return f;
}

static void test_mapping_is_the_guests_memory(void **state)
{
    xenforeignmemory_handle *a = open_fmem(), *b = open_fmem();
    xen_pfn_t gfn = 0x100;
    uint64_t g = gfn, gen = 0;
    uint8_t *pa, *pb;

    (void)state;
    pa = xenforeignmemory_map(a, dom, PROT_READ | PROT_WRITE, 1, &gfn, NULL);
    pb = xenforeignmemory_map(b, dom, PROT_READ, 1, &gfn, NULL);
    assert_non_null(pa);
    assert_non_null(pb);
    memset(pa, 0x3c, 4096);
    assert_int_equal(pb[4095], 0x3c);
    /* What the guest writes is seen through the mapping at once. */
    assert_int_equal(sim_guest_write(&host, dom, &g, 1), 1);
    assert_int_equal(xsim_stamp_check(pb, 0x100, &gen), 1);
    assert_true(gen > 0);
    assert_int_equal(xenforeignmemory_unmap(a, pa, 1), 0);
    assert_int_equal(xenforeignmemory_unmap(b, pb, 1), 0);
    xenforeignmemory_close(a);
    xenforeignmemory_close(b);
}

static void test_a_1mib_bucket_maps_in_one_call(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfns[256];
    uint64_t g[256];
    int err[256];
    uint8_t *p;

    (void)state;
    for (int i = 0; i < 256; i++)
        g[i] = gfns[i] = 0x800 + (xen_pfn_t)i;
    assert_int_equal(sim_guest_write(&host, dom, g, 256), 256);
    p = xenforeignmemory_map(f, dom, PROT_READ | PROT_WRITE, 256, gfns, err);
    assert_non_null(p);
    for (int i = 0; i < 256; i++) {
        assert_int_equal(err[i], 0);
        assert_int_equal(xsim_stamp_check(p + i * 4096, gfns[i], NULL), 1);
    }
    xenforeignmemory_unmap(f, p, 256);
    xenforeignmemory_close(f);
}

static void test_bad_frames_fail_one_by_one(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    /* populated, VGA hole, never populated, beyond 1 TiB, populated */
    xen_pfn_t gfns[5] = { 0x200, 0xa5, 0x2000000, 1ull << 28, 0x201 };
    int err[5] = { 9, 9, 9, 9, 9 };
    uint8_t *p;

    (void)state;
    p = xenforeignmemory_map(f, dom, PROT_READ | PROT_WRITE, 5, gfns, err);
    assert_non_null(p);
    assert_int_equal(err[0], 0);
    assert_int_equal(err[1], -EINVAL);
    assert_int_equal(err[2], -EINVAL);
    assert_int_equal(err[3], -EINVAL);
    assert_int_equal(err[4], 0);
    p[0] = 1;
    p[4 * 4096] = 2;
    xenforeignmemory_unmap(f, p, 5);
    /* Without err[] one bad frame fails it all, errno from that frame. */
    errno = 0;
    assert_null(xenforeignmemory_map(f, dom, PROT_READ, 5, gfns, NULL));
    assert_int_equal(errno, EINVAL);
    xenforeignmemory_close(f);
}

static void test_a_failed_frame_raises_sigbus(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfns[2] = { 0x300, 0xb0 };
    int err[2], status;
    volatile uint8_t *p;
    pid_t pid;

    (void)state;
    p = xenforeignmemory_map(f, dom, PROT_READ, 2, gfns, err);
    assert_non_null(p);
    assert_int_equal(err[1], -EINVAL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGBUS, SIG_DFL);        /* not cmocka's handler */
        (void)p[4096];
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGBUS);
    xenforeignmemory_unmap(f, (void *)p, 2);
    xenforeignmemory_close(f);
}

/* As Xen 4.17 with a PV dom0 (tests/realxen): the whole call, EPERM. */
static void test_unknown_domain_fails_the_map_with_eperm(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfns[2] = { 0x100, 0x101 };
    int err[2];

    (void)state;
    errno = 0;
    assert_null(xenforeignmemory_map(f, 30123, PROT_READ, 2, gfns, err));
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_null(xenforeignmemory_map(f, 30123, PROT_READ, 2, gfns, NULL));
    assert_int_equal(errno, EPERM);
    xenforeignmemory_close(f);
}

static void test_restrict_limits_the_handle_to_one_domain(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfn = 0x100;
    void *p;

    (void)state;
    assert_int_equal(xenforeignmemory_restrict(f, dom), 0);
    assert_int_equal(xenforeignmemory_restrict(f, dom), 0);
    errno = 0;
    assert_int_equal(xenforeignmemory_restrict(f, dom2), -1);
    assert_int_equal(errno, EINVAL);
    p = xenforeignmemory_map(f, dom, PROT_READ, 1, &gfn, NULL);
    assert_non_null(p);
    xenforeignmemory_unmap(f, p, 1);
    errno = 0;
    assert_null(xenforeignmemory_map(f, dom2, PROT_READ, 1, &gfn, NULL));
    assert_int_equal(errno, EPERM);
    xenforeignmemory_close(f);
}

static void test_restrict_all_reaches_every_handle(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xen_pfn_t gfn = 0x100;
    void *p;

    (void)state;
    assert_non_null(dm);
    assert_int_equal(xentoolcore_restrict_all(dom), 0);
    errno = 0;
    assert_null(xenforeignmemory_map(f, dom2, PROT_READ, 1, &gfn, NULL));
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(dm, dom2, 0x100, 1), -1);
    assert_int_equal(errno, EPERM);
    p = xenforeignmemory_map(f, dom, PROT_READ, 1, &gfn, NULL);
    assert_non_null(p);
    xenforeignmemory_unmap(f, p, 1);
    assert_int_equal(xendevicemodel_modified_memory(dm, dom, 0x100, 1), 0);
    xendevicemodel_close(dm);
    xenforeignmemory_close(f);
}

static void test_map2_honours_a_fixed_address(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfns[2] = { 0x400, 0x401 };
    void *want, *got;

    (void)state;
    want = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(want != MAP_FAILED);
    got = xenforeignmemory_map2(f, dom, want, PROT_READ | PROT_WRITE,
                                MAP_FIXED, 2, gfns, NULL);
    assert_ptr_equal(got, want);
    ((uint8_t *)got)[4096] = 7;
    xenforeignmemory_unmap(f, got, 2);
    xenforeignmemory_close(f);
}

static void test_decreased_frames_no_longer_map(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xen_pfn_t gfn = 0x500;
    int err;
    void *p;

    (void)state;
    assert_non_null(xch);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, dom, 1, 0, &gfn),
                     0);
    p = xenforeignmemory_map(f, dom, PROT_READ, 1, &gfn, &err);
    assert_non_null(p);
    assert_int_equal(err, -EINVAL);
    xenforeignmemory_unmap(f, p, 1);
    /* Populated again, it maps again and reads as zeros. */
    assert_int_equal(xc_domain_populate_physmap_exact(xch, dom, 1, 0, 0, &gfn),
                     0);
    p = xenforeignmemory_map(f, dom, PROT_READ, 1, &gfn, &err);
    assert_non_null(p);
    assert_int_equal(err, 0);
    assert_int_equal(xsim_stamp_check(p, gfn, NULL), 0);
    xenforeignmemory_unmap(f, p, 1);
    xc_interface_close(xch);
    xenforeignmemory_close(f);
}

static void test_a_destroyed_domain_no_longer_maps(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    int d = sim_create(&host, 16, "idle", 0);
    xen_pfn_t gfn = 0x100;
    int err;
    void *p;

    (void)state;
    assert_true(d > 0);
    p = xenforeignmemory_map(f, (uint32_t)d, PROT_READ, 1, &gfn, &err);
    assert_non_null(p);
    assert_int_equal(err, 0);
    xenforeignmemory_unmap(f, p, 1);
    assert_int_equal(sim_destroy(&host, (uint32_t)d), 0);
    errno = 0;
    assert_null(xenforeignmemory_map(f, (uint32_t)d, PROT_READ, 1, &gfn,
                                     &err));
    assert_int_equal(errno, EPERM);
    xenforeignmemory_close(f);
}

/*
 * An ioreq server's pages are the one resource simulated (test-sim-
 * devicemodel maps them); a server that does not exist is ENOENT, as in
 * Xen's acquire_ioreq_server; grant tables and the rest EOPNOTSUPP.
 */
static void test_only_ioreq_server_resources_are_simulated(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    void *addr = NULL;
    size_t size;

    (void)state;
    errno = 0;
    assert_null(xenforeignmemory_map_resource(f, dom, 0, 0, 0, 1, &addr,
                                              PROT_READ, 0));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(xenforeignmemory_resource_size(f, dom, 0, 0, &size), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(xenforeignmemory_map_resource(f, dom, 1, 0, 0, 1, &addr,
                                              PROT_READ, 0));
    assert_int_equal(errno, EOPNOTSUPP);
    errno = 0;
    assert_int_equal(xenforeignmemory_resource_size(f, dom, 2, 0, &size), -1);
    assert_int_equal(errno, EOPNOTSUPP);
    xenforeignmemory_close(f);
}

static void test_zero_pages_is_einval(void **state)
{
    xenforeignmemory_handle *f = open_fmem();
    xen_pfn_t gfn = 0x100;

    (void)state;
    errno = 0;
    assert_null(xenforeignmemory_map(f, dom, PROT_READ, 0, &gfn, NULL));
    assert_int_equal(errno, EINVAL);
    xenforeignmemory_close(f);
}

static void test_dead_daemon(void **state)
{
    struct simhost gone;
    xenforeignmemory_handle *f;
    xen_pfn_t gfn = 0x100;
    uint8_t *p;
    int d;

    (void)state;
    assert_int_equal(simhost_start(&gone, NULL), 0);
    d = sim_create(&gone, 16, "idle", 0);
    assert_true(d > 0);
    f = open_fmem();
    p = xenforeignmemory_map(f, (uint32_t)d, PROT_READ | PROT_WRITE, 1, &gfn,
                             NULL);
    assert_non_null(p);
    simhost_kill(&gone);
    /* A mapping outlives the host (as it outlives a domain on Xen). */
    p[0] = 1;
    assert_int_equal(p[0], 1);
    errno = 0;
    assert_null(xenforeignmemory_map(f, (uint32_t)d, PROT_READ, 1, &gfn, NULL));
    assert_int_equal(errno, ENOTCONN);
    xenforeignmemory_unmap(f, p, 1);
    xenforeignmemory_close(f);
    simhost_stop(&gone);
    errno = 0;
    assert_null(xenforeignmemory_open(NULL, 0));
    assert_int_equal(errno, ENOENT);
    setenv("XENSIM_DIR", host.dir, 1);
    f = open_fmem();
    xenforeignmemory_close(f);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping_is_the_guests_memory),
        cmocka_unit_test(test_a_1mib_bucket_maps_in_one_call),
        cmocka_unit_test(test_bad_frames_fail_one_by_one),
        cmocka_unit_test(test_a_failed_frame_raises_sigbus),
        cmocka_unit_test(test_unknown_domain_fails_the_map_with_eperm),
        cmocka_unit_test(test_restrict_limits_the_handle_to_one_domain),
        cmocka_unit_test(test_map2_honours_a_fixed_address),
        cmocka_unit_test(test_decreased_frames_no_longer_map),
        cmocka_unit_test(test_a_destroyed_domain_no_longer_maps),
        cmocka_unit_test(test_only_ioreq_server_resources_are_simulated),
        cmocka_unit_test(test_zero_pages_is_einval),
        cmocka_unit_test(test_dead_daemon),
        /* Last: it restricts every handle open at that moment. */
        cmocka_unit_test(test_restrict_all_reaches_every_handle),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
