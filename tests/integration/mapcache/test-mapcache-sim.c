/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-mapcache-sim.c - the mapcache and the platform layer on the
 * simulated Xen host: the real xen/xen.c and memory/mapcache.c, linked
 * against Debian's libraries and run on the stand-ins (simtest.h re-execs
 * with LD_LIBRARY_PATH=$(BUILD)/sim and starts a private xensim daemon,
 * always stopped at the end, with a watchdog).
 *
 * The guest: 16 MiB of RAM, populated the way libxc does it (gfn 0 up,
 * without the VGA hole 0xA0-0xBF), idle vCPUs.  Frames the guest writes
 * carry a stamp (xen/sim/stamp.h) naming their gfn.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "memory/mapcache.h"
#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"
#include "xen/xen.h"

#define MiB ((uint64_t)1 << 20)
#define PAGE XR_PAGE_SIZE

static struct simhost host;
static uint32_t dom;
static XenHandles *xh;

static int group_setup(void **state)
{
    char msg[256];
    int d;

    (void)state;
    rcu_register_thread();
    if (simhost_start(&host, NULL)) {
        return -1;
    }
    d = sim_create(&host, 16, "idle", 0);
    if (d <= 0) {
        return -1;
    }
    dom = (uint32_t)d;
    if (xen_open(dom, XEN_OPEN_NO_XENSTORE, &xh, msg, sizeof(msg)) < 0) {
        print_error("xen_open: %s\n", msg);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    xen_close(xh);
    rcu_unregister_thread();
    return simhost_stop(&host);
}

static int setup(void **state)
{
    MapCache *mc;

    if (mapcache_new(xh, NULL, &mc) < 0) {
        return -1;
    }
    *state = mc;
    return 0;
}

static int teardown(void **state)
{
    mapcache_destroy(*state);
    return 0;
}

/* Does the page at @gpa carry the guest's stamp for its frame? */
static int stamped(MapCache *mc, uint64_t gpa)
{
    uint64_t gen = 0;
    int ret = -1, err = 0;
    uint8_t *p;

    rcu_read_lock();
    p = mapcache_get(mc, gpa, PAGE, &err);
    if (p) {
        ret = xsim_stamp_check(p, gpa / PAGE, &gen);
    }
    rcu_read_unlock();
    return p ? ret : err;
}

static void test_open_of_a_domain_that_does_not_exist_is_esrch(void **state)
{
    XenHandles *other;
    char msg[256];

    (void)state;
    assert_int_equal(xen_open(dom + 100, XEN_OPEN_NO_XENSTORE, &other, msg,
                              sizeof(msg)), -ESRCH);
    assert_non_null(strstr(msg, "xc_domain_getinfolist(domid"));
    /* The cause first, in words: the domain is not there. */
    {
        char want[64];

        snprintf(want, sizeof(want), "domain %u does not exist", dom + 100);
        assert_non_null(strstr(msg, want));
    }
}

static void test_lookup_shows_what_the_guest_wrote(void **state)
{
    MapCache *mc = *state;
    uint64_t gfn = 0x234;

    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    assert_int_equal(stamped(mc, gfn * PAGE), 1);
}

static void test_device_model_writes_land_in_the_guest(void **state)
{
    MapCache *mc = *state;
    uint64_t len = 64, v = 0;
    uint8_t *p = mapcache_map(mc, 0x300000, &len, NULL);

    assert_non_null(p);
    memset(p, 0x5a, 64);
    assert_int_equal(mapcache_unlock(mc, p), 0);
    /* Drop every mapping: a fresh one reads the guest's frame again. */
    mapcache_invalidate(mc);
    rcu_read_lock();
    p = mapcache_get(mc, 0x300000 + 56, 8, NULL);
    assert_non_null(p);
    memcpy(&v, p, 8);
    rcu_read_unlock();
    assert_int_equal(v, 0x5a5a5a5a5a5a5a5aULL);
}

static void test_the_vga_hole_is_refused_around_good_frames(void **state)
{
    MapCache *mc = *state;
    uint64_t gfn = 0x9f;

    /* Bucket 0 maps partly: 0xA0-0xBF are not populated. */
    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    assert_int_equal(stamped(mc, 0x9f * PAGE), 1);
    assert_int_equal(stamped(mc, 0xa0 * PAGE), -EFAULT);
    assert_int_equal(stamped(mc, 0xbf * PAGE + 8), -EFAULT);
    gfn = 0xc0;
    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    assert_int_equal(stamped(mc, 0xc0 * PAGE), 1);
}

static void test_memory_beyond_ram_is_refused(void **state)
{
    MapCache *mc = *state;

    assert_int_equal(stamped(mc, 64 * MiB), -EFAULT);
}

static void test_frames_populated_later_are_mapped(void **state)
{
    MapCache *mc = *state;
    uint64_t gfn = 48 * MiB / PAGE;

    assert_int_equal(stamped(mc, gfn * PAGE), -EFAULT);
    assert_int_equal(xen_populate(xh, gfn, 256), 0);
    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    assert_int_equal(stamped(mc, gfn * PAGE), 1);
    assert_int_equal(xen_depopulate(xh, gfn, 256), 0);
}

static void test_released_frames_are_refused_after_invalidation(
    void **state)
{
    MapCache *mc = *state;
    uint64_t gfn = 40 * MiB / PAGE;

    assert_int_equal(xen_populate(xh, gfn, 256), 0);
    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    assert_int_equal(stamped(mc, gfn * PAGE), 1);
    /* Ballooned out, then IOREQ_TYPE_INVALIDATE. */
    assert_int_equal(xen_depopulate(xh, gfn, 256), 0);
    mapcache_invalidate(mc);
    assert_int_equal(stamped(mc, gfn * PAGE), -EFAULT);
}

static void test_dummy_is_replaced_by_the_frames_in_place(void **state)
{
    MapCache *mc = *state;
    uint64_t gfn = 32 * MiB / PAGE, len = PAGE, gen = 0, gpa = 0;
    uint8_t *p;

    mapcache_set_incoming(mc, true);
    p = mapcache_map(mc, gfn * PAGE, &len, NULL);     /* not there yet */
    assert_non_null(p);

    /* The migration stream populates and fills the frames. */
    assert_int_equal(xen_populate(xh, gfn, 256), 0);
    assert_int_equal(sim_guest_write(&host, dom, &gfn, 1), 1);
    mapcache_set_incoming(mc, false);
    assert_int_equal(mapcache_replace_dummies(mc), 1);

    assert_int_equal(xsim_stamp_check(p, gfn, &gen), 1);
    assert_int_equal(mapcache_reverse(mc, p, &gpa), 0);
    assert_int_equal(gpa, gfn * PAGE);
    assert_int_equal(mapcache_unlock(mc, p), 0);
    assert_int_equal(xen_depopulate(xh, gfn, 256), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_open_of_a_domain_that_does_not_exist_is_esrch),
        T(test_lookup_shows_what_the_guest_wrote),
        T(test_device_model_writes_land_in_the_guest),
        T(test_the_vga_hole_is_refused_around_good_frames),
        T(test_memory_beyond_ram_is_refused),
        T(test_frames_populated_later_are_mapped),
        T(test_released_frames_are_refused_after_invalidation),
        T(test_dummy_is_replaced_by_the_frames_in_place),
    };

    sim_test_init(argc, argv, 120);
    xen_set_error_log(NULL);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
