/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-ioreq.c - Xen's map-cache invalidations reach xenram's mapcache
 * end to end (docs/ioreq.md, issue 16): xensim as the toolstack, the real
 * xenram serving its ioreq server, the simulated host sending each vCPU's
 * synchronous INVALIDATE after every frame removal and waiting for it.
 *
 *   - a RAM slot hot-unplugged (xenstore) while the guest's two vCPUs run:
 *     each vCPU sends one INVALIDATE, xenram answers them and counts them,
 *     its mapcache is invalidated by them, no vCPU waits longer than a
 *     bound or is left waiting, the vCPUs run on, Xen (the simulated host)
 *     records no panic;
 *   - the guest's balloon driver gives 16 MiB back while xenram's test DMA
 *     writes at 4000 pages/s: once the INVALIDATE is answered, no DMA write
 *     lands in a frame the guest gave back (the host counts memfd pages
 *     outside the p2m), the writes aimed there are refused, and the guest
 *     verifies.
 *
 * Both fail on a xenram whose server is not enabled and served: no
 * INVALIDATE is counted, and the test DMA writes through its stale
 * mappings into the frames the guest gave back.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "xen/sim/proto.h"

static struct e2e_host host;
static bool no_xenstore;

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&host, NULL, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* x-xenram-query-memory's @section.@name (-1 if absent). */
static json_int_t dm_stat(uint32_t domid, const char *section,
                          const char *name)
{
    json_t *r = e2e_qmp(&host, domid, "x-xenram-query-memory", NULL);
    json_t *v = json_object_get(json_object_get(r, section), name);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

    json_decref(r);
    return n;
}

/* Wait (bounded: 10 s) until @section.@name reaches @want. */
static json_int_t wait_stat(uint32_t domid, const char *section,
                            const char *name, json_int_t want)
{
    json_int_t v = -1;

    for (int i = 0; i < 1000; i++) {
        v = dm_stat(domid, section, name);
        if (v >= want)
            break;
        poll(NULL, 0, 10);
    }
    return v;
}

/* A number after @key in `xensim dm-state` (-1 if absent). */
static long long dm_state_num(uint32_t domid, const char *key)
{
    char out[4096], id[16];
    const char *p;

    snprintf(id, sizeof(id), "%u", domid);
    if (e2e_xensim(&host, out, sizeof(out), "dm-state", id, NULL) != 0)
        return -1;
    if (strstr(out, "xen-panic"))
        fprintf(stderr, "dm-state:\n%s", out);
    assert_null(strstr(out, "xen-panic"));
    p = strstr(out, key);
    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

static uint32_t create(const char *name, const char *vcpus, const char *dma)
{
    char out[256];

    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "create", "--mem",
                                "64", "--vram", "8", "--maxmem", "192",
                                "--vcpus", vcpus, "--workload", "random:20",
                                "--name", name, "--dm", e2e_xenram(),
                                "--dm-arg", dma, NULL), 0);
    return (uint32_t)strtoul(out, NULL, 10);
}

static void test_hot_unplug_while_the_vcpus_run(void **state)
{
    json_int_t inv0, inv1, mc0, mc1;
    char out[256];
    uint32_t d;

    (void)state;
    NEED_XENSTORE();
    d = create("unplug", "2", "--test-dma=500");
    assert_true(d > 0);
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "hotplug", "unplug",
                                "add", "64M", NULL), 0);
    assert_non_null(strstr(out, "online"));
    assert_true(e2e_wait_dma(&host, d, 200));
    inv0 = dm_stat(d, "ioreq", "invalidates");
    mc0 = dm_stat(d, "mapcache", "invalidations");
    assert_true(inv0 >= 0);
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "hotplug", "unplug",
                                "remove", "0", NULL), 0);
    assert_non_null(strstr(out, "removed"));
    /* One INVALIDATE from each of the two vCPUs, answered. */
    inv1 = wait_stat(d, "ioreq", "invalidates", inv0 + 2);
    assert_true(inv1 >= inv0 + 2);
    mc1 = dm_stat(d, "mapcache", "invalidations");
    /* The unplug's own range invalidation and each INVALIDATE's. */
    assert_true(mc1 >= mc0 + 3);
    assert_int_equal(dm_stat(d, "ioreq", "bad"), 0);
    /* No vCPU left waiting, none waited long, and they run on. */
    assert_int_equal(dm_state_num(d, "waiting="), 0);
    {
        long long max_us = dm_state_num(d, "wait-max-us=");

        assert_true(max_us >= 0);
        if (max_us >= 2000000)
            fprintf(stderr, "a vCPU waited %lld us for xenram\n", max_us);
        assert_true(max_us < 2000000);
    }
    assert_true(e2e_wait_vcpu_writes(&host, d, 500));
    assert_int_equal(dm_state_num(d, "pages-outside="), 0);
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "destroy", "unplug",
                                NULL), 0);
}

static void test_balloon_while_the_test_dma_runs_writes_no_stale_frame(
    void **state)
{
    json_int_t written, errors0, errors1;
    char out[4096], id[16];
    uint32_t d;

    (void)state;
    NEED_XENSTORE();
    d = create("balloon", "1", "--test-dma=4000");
    assert_true(d > 0);
    snprintf(id, sizeof(id), "%u", d);
    /* Every bucket of RAM mapped by the DMA by now (56 of 1 MiB). */
    assert_true(e2e_wait_dma(&host, d, 4000));
    json_decref(e2e_qmp(&host, d, "stop", NULL));
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "balloon", id,
                                "-4096", NULL), 0);
    assert_non_null(strstr(out, "gave back 4096 frame(s)"));
    /* The balloon driver's vCPU sends the INVALIDATE; xenram answers. */
    assert_true(wait_stat(d, "ioreq", "invalidates", 1) >= 1);
    errors0 = dm_stat(d, "test-device", "errors");
    written = dm_stat(d, "test-device", "pages-written");
    json_decref(e2e_qmp(&host, d, "cont", NULL));
    assert_true(e2e_wait_dma(&host, d, (uint64_t)written + 4000));
    json_decref(e2e_qmp(&host, d, "stop", NULL));
    errors1 = dm_stat(d, "test-device", "errors");
    /* A quarter of RAM is gone: DMA aimed there was refused ... */
    assert_true(errors1 > errors0);
    /* ... and nothing reached the frames through a stale mapping. */
    assert_int_equal(dm_state_num(d, "pages-outside="), 0);
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "verify", id, NULL),
                     0);
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "destroy", id,
                                NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hot_unplug_while_the_vcpus_run),
        cmocka_unit_test(test_balloon_while_the_test_dma_runs_writes_no_stale_frame),
    };

    e2e_init(120);
    return cmocka_run_group_tests(tests, setup, e2e_group_teardown);
}
