/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-engine-unscrubbed.c - `xensim migrate --engine xenram` to a
 * host whose free pages are not zero.
 *
 * Xen 4.17 scrubs only a dying domain's pages (free_domheap_pages()): what
 * a live domain gave back -- ballooned frames, an ioreq server's pages --
 * is what the next populate_physmap hands out, to any domain.  The real-
 * Xen tier caught xenram's receiver leaving first-round ZERO pages
 * unwritten in such frames (an old ioreq page's port at offset 0x18).  The
 * simulator now keeps the last 4096 pages given back (docs/simulator.md,
 * "Pages given back are not scrubbed"); here a live domain on the
 * destination balloons 4096 stamped frames out, then a guest that is
 * mostly zero migrates there, and its memory must arrive page by page as
 * it left -- zeros included.
 */
#include <errno.h>
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
#include "xen/sim/toolstack.h"

static struct e2e_host src, dst;
static bool no_xenstore;

#define DONOR_PAGES 4096u       /* the simulator's pool: XSIM_POOL_PAGES */

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

/* A field of the host's pool line in `xensim dm-state`. */
static unsigned long pool_field(const struct e2e_host *h, uint32_t d,
                                const char *field)
{
    char out[8192], id[16], key[32], *at;

    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(h, out, sizeof(out), "dm-state", id, NULL),
                     0);
    at = strstr(out, "host unscrubbed ");
    assert_non_null(at);
    snprintf(key, sizeof(key), " %s=", field);
    at = strstr(at, key);
    assert_non_null(at);
    return strtoul(at + strlen(key), NULL, 10);
}

/* Page by page, every frame either side has; returns the frames compared
 * and how many of them are zero on the source. */
static uint64_t compare(const struct e2e_mem *a, const struct e2e_mem *b,
                        uint64_t *zero)
{
    static const uint8_t zeros[XSIM_PAGE_SIZE];
    uint64_t n = a->pages > b->pages ? a->pages : b->pages, frames = 0;
    uint64_t bad = 0;

    *zero = 0;
    for (uint64_t g = 0; g < n; g++) {
        bool x = e2e_mem_has(a, g), y = e2e_mem_has(b, g);
        const uint8_t *pa = a->mem + g * XSIM_PAGE_SIZE;
        const uint8_t *pb = b->mem + g * XSIM_PAGE_SIZE;

        frames += x;
        if (x)
            *zero += !memcmp(pa, zeros, XSIM_PAGE_SIZE);
        if (x == y && (!x || !memcmp(pa, pb, XSIM_PAGE_SIZE)))
            continue;
        if (bad++ < 8)
            fprintf(stderr, "frame %#llx differs%s\n",
                    (unsigned long long)g,
                    x != y ? (x ? " (only on the source)"
                                : " (only on the destination)")
                    : !memcmp(pa, zeros, XSIM_PAGE_SIZE)
                    ? ": zero on the source, not on the destination" : "");
    }
    if (bad)
        fprintf(stderr, "%llu frame(s) differ\n", (unsigned long long)bad);
    assert_int_equal(bad, 0);
    return frames;
}

static void test_zero_pages_arrive_zero_in_recycled_frames(void **state)
{
    char out[512], id[16], top[64];
    struct e2e_mem before, after;
    uint64_t frames, zero;
    uint32_t donor, d, nd;
    pid_t spid, dpid;
    int rc;

    (void)state;
    E2E_NEED_XENSTORE(no_xenstore, "xenstored");

    /* On the destination, a live domain stamps its top 4096 RAM frames
     * (32 MiB of RAM: 0x1000-0x1fff) and its balloon driver gives them
     * back: the host's free pages now hold stamps. */
    assert_int_equal(e2e_xensim(&dst, out, sizeof(out), "create", "--mem",
                                "32", "--name", "donor", "--workload",
                                "idle", NULL), 0);
    donor = (uint32_t)strtoul(out, NULL, 10);
    assert_true(donor > 0);
    snprintf(id, sizeof(id), "%u", donor);
    snprintf(top, sizeof(top), "%#x-%#x", 0x2000u - DONOR_PAGES, 0x1fffu);
    assert_int_equal(e2e_xensim(&dst, out, sizeof(out), "guest-write", id,
                                top, NULL), 0);
    assert_int_equal(e2e_xensim(&dst, out, sizeof(out), "balloon", id,
                                "-4096", NULL), 0);
    assert_int_equal(pool_field(&dst, donor, "pages"), DONOR_PAGES);

    /* A 64 MiB guest (8 of VRAM) that is mostly zero: 64 frames stamped,
     * no workload, no test DMA. */
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "64", "--vram", "8", "--name", "zeroes",
                                "--workload", "idle", "--dm", e2e_xenram(),
                                NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "guest-write", id,
                                "0x100-0x13f", NULL), 0);
    spid = e2e_dm_pid(&src, d);
    assert_true(spid > 0);
    assert_true(e2e_mem_map(&src, d, &before));

    rc = e2e_xensim(&src, out, sizeof(out), "migrate", id, "--to", dst.dir,
                    "--engine", "xenram", "--no-progress", "--pause-dest",
                    NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(e2e_domid(&src, "zeroes"), 0);
    assert_true(e2e_wait_exit(spid, 5000));
    nd = e2e_domid(&dst, "zeroes");
    assert_true(nd > 0);
    dpid = e2e_dm_pid(&dst, nd);
    /* The receiver's populate took every one of the donor's pages: the
     * case is real.  (It gives back the layout's frames the source lacks,
     * which then wait in the pool.) */
    assert_true(pool_field(&dst, nd, "taken") >= DONOR_PAGES);

    assert_true(e2e_mem_map(&dst, nd, &after));
    frames = compare(&before, &after, &zero);
    fprintf(stderr, "%llu frames identical, %llu of them zero\n",
            (unsigned long long)frames, (unsigned long long)zero);
    /* 56 MiB of RAM (less the VGA hole), 8 special pages, 8 MiB VRAM */
    assert_int_equal(frames, (56ull << 8) - 32 + 8 + (8ull << 8));
    assert_true(zero > frames - 128);
    e2e_mem_unmap(&after);
    e2e_mem_unmap(&before);

    snprintf(id, sizeof(id), "%u", nd);
    assert_int_equal(e2e_xensim(&dst, NULL, 0, "destroy", id, NULL), 0);
    assert_true(e2e_wait_exit(dpid, 5000));
    snprintf(id, sizeof(id), "%u", donor);
    assert_int_equal(e2e_xensim(&dst, NULL, 0, "destroy", id, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_pages_arrive_zero_in_recycled_frames),
    };

    e2e_init(120);
    return cmocka_run_group_tests_name("e2e-engine-unscrubbed", tests, setup,
                                       e2e_group_teardown);
}
