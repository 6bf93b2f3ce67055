/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-unscrubbed.c - pages a live domain gives back are not scrubbed:
 * the next populate, of any domain on the host, gets their contents, the
 * newest first, as Xen 4.17's heap hands them out (free_domheap_pages()
 * scrubs only a dying domain's pages).  The simulated host keeps the last
 * 4096 (docs/simulator.md, "Pages given back are not scrubbed").
 *
 * Each test gets a host of its own, so that its pool starts empty.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

#define PAGE        4096u
#define POOL_PAGES  4096u       /* XSIM_POOL_PAGES */

static struct simhost host;
static xc_interface *xch;
static xenforeignmemory_handle *fmem;

static int host_up(void **state)
{
    (void)state;
    if (simhost_start(&host, NULL))
        return -1;
    xch = xc_interface_open(NULL, NULL, 0);
    fmem = xenforeignmemory_open(NULL, 0);
    return xch && fmem ? 0 : -1;
}

static int host_down(void **state)
{
    (void)state;
    xenforeignmemory_close(fmem);
    xc_interface_close(xch);
    return simhost_stop(&host);
}

static uint32_t new_domain(unsigned mib)
{
    int id = sim_create(&host, mib, "idle", 0);

    assert_true(id > 0);
    return (uint32_t)id;
}

/* Word i of a page tagged (@tag, @gfn): never zero, never another's. */
static uint64_t pattern_word(unsigned tag, uint64_t gfn, size_t i)
{
    return (uint64_t)tag << 56 | gfn << 16 | i | 1ull << 55;
}

static void fill(uint32_t d, unsigned tag, const xen_pfn_t *gfns, size_t n)
{
    uint64_t *p = xenforeignmemory_map(fmem, d, PROT_READ | PROT_WRITE, n,
                                       gfns, NULL);

    assert_non_null(p);
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < PAGE / 8; i++)
            p[k * PAGE / 8 + i] = pattern_word(tag, gfns[k], i);
    assert_int_equal(xenforeignmemory_unmap(fmem, p, n), 0);
}

/*
 * What each of @n frames of @d holds: 0 if zeros, else the gfn of the
 * (@tag) pattern it holds, or ~0 for anything else.  @out gets n values.
 */
static void contents(uint32_t d, unsigned tag, const xen_pfn_t *gfns,
                     size_t n, uint64_t *out)
{
    const uint64_t *p = xenforeignmemory_map(fmem, d, PROT_READ, n, gfns,
                                             NULL);

    assert_non_null(p);
    for (size_t k = 0; k < n; k++) {
        const uint64_t *w = p + k * PAGE / 8;
        bool zero = true;

        for (size_t i = 0; i < PAGE / 8 && zero; i++)
            zero = w[i] == 0;
        out[k] = zero ? 0 : ~0ull;
        if (!zero && (w[0] >> 56) == tag) {
            uint64_t g = (w[0] >> 16) & ((1ull << 39) - 1);
            bool whole = true;

            for (size_t i = 0; i < PAGE / 8 && whole; i++)
                whole = w[i] == pattern_word(tag, g, i);
            if (whole)
                out[k] = g;
        }
    }
    assert_int_equal(xenforeignmemory_unmap(fmem, (void *)p, n), 0);
}

static void run(xen_pfn_t *gfns, size_t n, xen_pfn_t first)
{
    for (size_t i = 0; i < n; i++)
        gfns[i] = first + i;
}

/* The pool's line in dm-state: "host unscrubbed pages=N ...". */
static unsigned long pool_field(uint32_t d, const char *field)
{
    char *s = sim_dm_state(&host, d), *at, key[32];
    unsigned long v;

    assert_non_null(s);
    at = strstr(s, "host unscrubbed ");
    assert_non_null(at);
    snprintf(key, sizeof(key), " %s=", field);
    at = strstr(at, key);
    assert_non_null(at);
    v = strtoul(at + strlen(key), NULL, 10);
    free(s);
    return v;
}

static void test_another_domain_populates_what_one_decreased(void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    xen_pfn_t freed[8], got[9];
    uint64_t what[9];

    (void)state;
    run(freed, 8, 0x100);
    fill(a, 0xa1, freed, 8);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, a, 8, 0,
                                                          freed), 0);
    assert_int_equal(pool_field(b, "pages"), 8);
    run(got, 9, 0x20000);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 9, 0, 0, got),
                     0);
    contents(b, 0xa1, got, 9, what);
    /* The newest first: 0x107 was given back last. */
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(what[i], 0x107 - i);
    /* Beyond the pool: zeros, as before. */
    assert_int_equal(what[8], 0);
    assert_int_equal(pool_field(b, "pages"), 0);
    assert_int_equal(pool_field(b, "taken"), 8);
}

static void test_the_same_domain_gets_its_pages_back(void **state)
{
    uint32_t a = new_domain(16);
    xen_pfn_t gfns[2] = { 0x200, 0x201 };
    uint64_t what[2];

    (void)state;
    fill(a, 0xa2, gfns, 2);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, a, 2, 0, gfns),
                     0);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, a, 2, 0, 0, gfns),
                     0);
    contents(a, 0xa2, gfns, 2, what);
    assert_int_equal(what[0], 0x201);
    assert_int_equal(what[1], 0x200);
}

static void test_ballooned_pages_reach_the_next_populate(void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    /* 16 MiB of RAM: its top frames are 0xffc-0xfff. */
    uint64_t top[4] = { 0xffc, 0xffd, 0xffe, 0xfff }, gen;
    xen_pfn_t got[4];
    char dom[16], out[256];

    (void)state;
    assert_int_equal(sim_guest_write(&host, a, top, 4), 4);
    snprintf(dom, sizeof(dom), "%u", a);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "balloon", dom,
                                 "-4", NULL), 0);
    run(got, 4, 0x30000);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 4, 0, 0, got),
                     0);
    {
        const uint8_t *p = xenforeignmemory_map(fmem, b, PROT_READ, 4, got,
                                                NULL);

        assert_non_null(p);
        /* The balloon gave the top frame first, 0xffc last: newest first. */
        for (unsigned i = 0; i < 4; i++)
            assert_int_equal(xsim_stamp_check(p + i * PAGE, top[i], &gen), 1);
        assert_int_equal(xenforeignmemory_unmap(fmem, (void *)p, 4), 0);
    }
}

static void test_a_destroyed_domains_pages_do_not_reappear(void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    xen_pfn_t gfns[16], got[16];
    uint64_t what[16];

    (void)state;
    run(gfns, 16, 0x300);
    fill(a, 0xa3, gfns, 16);
    assert_int_equal(sim_destroy(&host, a), 0);
    assert_int_equal(pool_field(b, "pages"), 0);
    assert_int_equal(pool_field(b, "given"), 0);
    run(got, 16, 0x40000);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 16, 0, 0, got),
                     0);
    contents(b, 0xa3, got, 16, what);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(what[i], 0);
}

static void test_the_pool_keeps_the_newest_4096(void **state)
{
    const unsigned extra = 100, n = POOL_PAGES + extra;
    uint32_t a = new_domain(32), b = new_domain(16);
    xen_pfn_t *freed = calloc(n, sizeof(*freed));
    xen_pfn_t *got = calloc(n, sizeof(*got));
    uint64_t *what = calloc(n, sizeof(*what));

    (void)state;
    assert_non_null(freed);
    assert_non_null(got);
    assert_non_null(what);
    run(freed, n, 0xf00);   /* inside its RAM, [0xc0, 0x2000) */
    fill(a, 0xa4, freed, n);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, a, n, 0,
                                                          freed), 0);
    assert_int_equal(pool_field(b, "pages"), POOL_PAGES);
    assert_int_equal(pool_field(b, "given"), n);
    assert_int_equal(pool_field(b, "forgotten"), extra);
    assert_int_equal(xc_domain_setmaxmem(xch, b, 64 * 1024), 0);
    run(got, n, 0x50000);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, n, 0, 0, got),
                     0);
    contents(b, 0xa4, got, n, what);
    /* The newest 4096, newest first; the 100 oldest are forgotten. */
    for (unsigned i = 0; i < POOL_PAGES; i++)
        assert_int_equal(what[i], 0xf00 + n - 1 - i);
    for (unsigned i = POOL_PAGES; i < n; i++)
        assert_int_equal(what[i], 0);
    free(what);
    free(got);
    free(freed);
}

/* An ioreq server with its pages acquired through map_resource. */
static void *ioreq_server(xendevicemodel_handle *dm, uint32_t d, int buf,
                          ioservid_t *id, xenforeignmemory_resource_handle **r)
{
    void *pages = NULL;

    assert_int_equal(xendevicemodel_create_ioreq_server(dm, d, buf, id), 0);
    *r = xenforeignmemory_map_resource(
        fmem, d, XENMEM_resource_ioreq_server, *id,
        buf ? XENMEM_resource_ioreq_server_frame_bufioreq
            : XENMEM_resource_ioreq_server_frame_ioreq(0),
        buf ? 2 : 1, &pages, PROT_READ | PROT_WRITE, 0);
    assert_non_null(*r);
    return pages;
}

static void test_a_destroyed_ioreq_servers_page_keeps_its_ports(void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    xendevicemodel_handle *dm;
    xenforeignmemory_resource_handle *r;
    const shared_iopage_t *iop;
    ioservid_t id;
    xen_pfn_t got = 0x60000;
    uint32_t port;
    char ns[200];

    (void)state;
    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    dm = xendevicemodel_open(NULL, 0);
    assert_non_null(dm);
    iop = ioreq_server(dm, a, 0, &id, &r);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, a, id, 1), 0);
    port = iop->vcpu_ioreq[0].vp_eport;
    assert_int_not_equal(port, 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, a, id, 0), 0);
    assert_int_equal(xenforeignmemory_unmap_resource(fmem, r), 0);
    assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, a, id), 0);
    /* The real-Xen tier's finding: a frame populated for another domain
     * holds vCPU 0's port at offset 0x18 of an old ioreq page. */
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 1, 0, 0, &got),
                     0);
    {
        const uint8_t *p = xenforeignmemory_map(fmem, b, PROT_READ, 1, &got,
                                                NULL);
        uint32_t v;

        assert_non_null(p);
        assert_int_equal(offsetof(ioreq_t, vp_eport), 0x18);
        memcpy(&v, p + 0x18, sizeof(v));
        assert_int_equal(v, port);
        assert_int_equal(xenforeignmemory_unmap(fmem, (void *)p, 1), 0);
    }
    xendevicemodel_close(dm);
}

static void test_new_ioreq_pages_are_cleared_and_take_from_the_pool(
    void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    xendevicemodel_handle *dm;
    xenforeignmemory_resource_handle *r;
    const uint8_t *pages;
    xen_pfn_t freed[3], got = 0x70000;
    uint64_t what;
    ioservid_t id;
    char ns[200];

    (void)state;
    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    run(freed, 3, 0x400);
    fill(a, 0xa5, freed, 3);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, a, 3, 0,
                                                          freed), 0);
    dm = xendevicemodel_open(NULL, 0);
    assert_non_null(dm);
    /* ioreq_server_alloc_mfn() clears what it takes: two pages. */
    pages = ioreq_server(dm, b, 1, &id, &r);
    for (unsigned i = 0; i < 2 * PAGE; i++)
        assert_int_equal(pages[i], 0);
    assert_int_equal(pool_field(b, "pages"), 1);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 1, 0, 0, &got),
                     0);
    contents(b, 0xa5, &got, 1, &what);
    assert_int_equal(what, 0x400);
    assert_int_equal(xenforeignmemory_unmap_resource(fmem, r), 0);
    assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, b, id), 0);
    xendevicemodel_close(dm);
}

static void test_relocate_gives_back_the_page_it_replaces(void **state)
{
    uint32_t a = new_domain(16), b = new_domain(16);
    xendevicemodel_handle *dm;
    xen_pfn_t two[2] = { 0x500, 0x501 }, got = 0x80000;
    uint64_t what;

    (void)state;
    fill(a, 0xa6, two, 2);
    dm = xendevicemodel_open(NULL, 0);
    assert_non_null(dm);
    /* 0x500's page moves to 0x501, whose own page is freed. */
    assert_int_equal(xendevicemodel_relocate_memory(dm, a, 1, 0x500, 0x501),
                     0);
    assert_int_equal(pool_field(b, "pages"), 1);
    assert_int_equal(xc_domain_populate_physmap_exact(xch, b, 1, 0, 0, &got),
                     0);
    contents(b, 0xa6, &got, 1, &what);
    assert_int_equal(what, 0x501);
    xendevicemodel_close(dm);
}

static void test_a_built_guest_takes_the_pages_but_starts_cleared(
    void **state)
{
    uint32_t a = new_domain(16), b;
    xen_pfn_t freed[8], low[8];
    uint64_t what[8];

    (void)state;
    run(freed, 8, 0x600);
    fill(a, 0xa7, freed, 8);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, a, 8, 0,
                                                          freed), 0);
    /* libxc's builder clears the special pages; the simulated guest is
     * its own OS and starts from zeros (docs/simulator.md). */
    b = new_domain(16);
    assert_int_equal(pool_field(b, "pages"), 0);
    assert_int_equal(pool_field(b, "taken"), 8);
    run(low, 8, 0);
    contents(b, 0xa7, low, 8, what);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(what[i], 0);
}

int main(int argc, char **argv)
{
#define T(f) cmocka_unit_test_setup_teardown(f, host_up, host_down)
    const struct CMUnitTest tests[] = {
        T(test_another_domain_populates_what_one_decreased),
        T(test_the_same_domain_gets_its_pages_back),
        T(test_ballooned_pages_reach_the_next_populate),
        T(test_a_destroyed_domains_pages_do_not_reappear),
        T(test_the_pool_keeps_the_newest_4096),
        T(test_a_destroyed_ioreq_servers_page_keeps_its_ports),
        T(test_new_ioreq_pages_are_cleared_and_take_from_the_pool),
        T(test_relocate_gives_back_the_page_it_replaces),
        T(test_a_built_guest_takes_the_pages_but_starts_cleared),
    };
#undef T

    sim_test_init(argc, argv, 120);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
