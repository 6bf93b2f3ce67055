/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ioreq.c - xenram's ioreq handling (xen/dm/ioreq.c) and the ioreq
 * page and buffered ring of the Xen layer (xen/ioreq.c).
 *
 * ioreq_handle() runs against a small guest: RAM at 0 (16 MiB, own host
 * memory), an MMIO region at 0xfe000000 and a port I/O region at 0x510,
 * both recording every access.  The Xen layer runs over wrapped library
 * calls: the server's two pages are plain memory here, and Xen's side of
 * the protocol is played by the test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "xen/dm/ioreq.h"

#include <xenevtchn.h>

#define MiB (1024ULL * 1024)
#define RAM_BYTES (16 * MiB)
#define MMIO_BASE 0xfe000000ULL
#define PIO_BASE 0x510

/* ---- the guest ------------------------------------------------------------ */

typedef struct Access {
    bool write;
    uint64_t addr;
    unsigned int size;
    uint64_t data;
} Access;

typedef struct Guest {
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as, io;
    MemoryRegion root, ioroot, ram_mr, mmio, pio;
    RAMBlock *block;
    GuestMemory gm;
    IoreqHandler h;
    Access log[64];
    unsigned int n;
    char msgs[8][256];
    unsigned int nmsgs;
} Guest;

static Guest *cur;

static uint64_t dev_read(void *opaque, uint64_t addr, unsigned int size)
{
    Guest *g = opaque;

    if (g->n < ARRAY_SIZE(g->log)) {
        g->log[g->n++] = (Access){ false, addr, size, 0 };
    }
    /* A value that tells address and size apart. */
    return (0x1122334455667788ULL + addr) &
           (size == 8 ? ~0ULL : (1ULL << (size * 8)) - 1);
}

static void dev_write(void *opaque, uint64_t addr, uint64_t data,
                      unsigned int size)
{
    Guest *g = opaque;

    if (g->n < ARRAY_SIZE(g->log)) {
        g->log[g->n++] = (Access){ true, addr, size, data };
    }
}

static const MemoryRegionOps dev_ops = {
    .read = dev_read, .write = dev_write,
    .valid = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
    .impl = { .min_access_size = 1, .max_access_size = 8, .unaligned = true },
};

static void log_msg(const char *msg)
{
    /* The last eight, in a ring. */
    snprintf(cur->msgs[cur->nmsgs % ARRAY_SIZE(cur->msgs)],
             sizeof(cur->msgs[0]), "%s", msg);
    cur->nmsgs++;
}

static int setup(void **state)
{
    Guest *g = calloc(1, sizeof(*g));

    assert_non_null(g);
    assert_int_equal(ram_list_init(&g->ram), 0);
    assert_int_equal(ram_block_add(&g->ram, "ram", RAM_BYTES, RAM_BYTES, NULL,
                                   RAM_OWN_HOST, NULL, &g->block), 0);
    assert_int_equal(memory_context_init(&g->ctx, &g->ram), 0);
    assert_int_equal(memory_region_init(&g->root, &g->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init(&g->ioroot, &g->ctx, "io", 65536), 0);
    assert_int_equal(memory_region_init_ram(&g->ram_mr, &g->ctx, "ram",
                                            g->block), 0);
    assert_int_equal(memory_region_init_io(&g->mmio, &g->ctx, "dev.mmio",
                                           &dev_ops, g, 4096), 0);
    assert_int_equal(memory_region_init_io(&g->pio, &g->ctx, "dev.pio",
                                           &dev_ops, g, 16), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0, &g->ram_mr), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, MMIO_BASE,
                                                 &g->mmio), 0);
    assert_int_equal(memory_region_add_subregion(&g->ioroot, PIO_BASE,
                                                 &g->pio), 0);
    assert_int_equal(address_space_init(&g->as, &g->ctx, &g->root, "memory"),
                     0);
    assert_int_equal(address_space_init(&g->io, &g->ctx, &g->ioroot, "io"),
                     0);
    g->gm = (GuestMemory){ .as = &g->as, .ram = &g->ram };
    g->h = (IoreqHandler){ .mem = &g->as, .io = &g->io, .gm = &g->gm,
                           .log = log_msg };
    cur = g;
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    Guest *g = *state;

    address_space_destroy(&g->as);
    address_space_destroy(&g->io);
    memory_region_del_subregion(&g->root, &g->ram_mr);
    memory_region_del_subregion(&g->root, &g->mmio);
    memory_region_del_subregion(&g->ioroot, &g->pio);
    memory_region_destroy(&g->ram_mr);
    memory_region_destroy(&g->mmio);
    memory_region_destroy(&g->pio);
    memory_region_destroy(&g->root);
    memory_region_destroy(&g->ioroot);
    synchronize_rcu();
    memory_context_destroy(&g->ctx);
    ram_list_destroy(&g->ram);
    free(g);
    return 0;
}

static uint8_t *ram(Guest *g)
{
    return g->block->host;
}

static ioreq_t rq(uint8_t type, bool read, uint64_t addr, unsigned int size,
                  uint64_t data)
{
    ioreq_t r = { .addr = addr, .data = data, .count = 1, .size = size,
                  .state = STATE_IOREQ_INPROCESS, .dir = read ? IOREQ_READ
                                                              : IOREQ_WRITE,
                  .type = type };

    return r;
}

/* ---- accesses --------------------------------------------------------------- */

static void test_mmio_reaches_the_region_with_address_size_and_data(
    void **state)
{
    Guest *g = *state;
    static const unsigned int sizes[] = { 1, 2, 4, 8 };

    for (unsigned int i = 0; i < 4; i++) {
        ioreq_t w = rq(IOREQ_TYPE_COPY, false, MMIO_BASE + 0x40 + i,
                       sizes[i], 0xa1b2c3d4e5f60718ULL);
        ioreq_t r = rq(IOREQ_TYPE_COPY, true, MMIO_BASE + 0x80, sizes[i], 0);

        assert_int_equal(ioreq_handle(&g->h, &w), 0);
        assert_true(g->log[g->n - 1].write);
        assert_int_equal(g->log[g->n - 1].addr, 0x40 + i);
        assert_int_equal(g->log[g->n - 1].size, sizes[i]);
        assert_true(g->log[g->n - 1].data ==
                    (0xa1b2c3d4e5f60718ULL &
                     (sizes[i] == 8 ? ~0ULL : (1ULL << (sizes[i] * 8)) - 1)));
        assert_int_equal(ioreq_handle(&g->h, &r), 0);
        assert_false(g->log[g->n - 1].write);
        assert_int_equal(g->log[g->n - 1].addr, 0x80);
        assert_true(r.data == dev_read(&(Guest){ 0 }, 0x80, sizes[i]));
    }
    assert_int_equal(g->h.st.mmio, 8);
    assert_int_equal(g->h.st.requests, 8);
    assert_int_equal(g->h.st.unassigned, 0);
    assert_int_equal(g->h.st.bad, 0);
}

static void test_port_io_reaches_the_io_region(void **state)
{
    Guest *g = *state;
    ioreq_t w = rq(IOREQ_TYPE_PIO, false, PIO_BASE + 4, 2, 0xbeef);
    ioreq_t r = rq(IOREQ_TYPE_PIO, true, PIO_BASE + 8, 4, 0);

    assert_int_equal(ioreq_handle(&g->h, &w), 0);
    assert_int_equal(g->n, 1);
    assert_true(g->log[0].write && g->log[0].addr == 4 &&
                g->log[0].size == 2 && g->log[0].data == 0xbeef);
    assert_int_equal(ioreq_handle(&g->h, &r), 0);
    assert_true(r.data == (uint32_t)(0x1122334455667788ULL + 8));
    assert_int_equal(g->h.st.pio, 2);
}

static void test_unassigned_reads_all_ones_and_is_logged_once_per_page(
    void **state)
{
    Guest *g = *state;
    static const uint64_t ones[] = { 0, 0xff, 0xffff, 0, 0xffffffff,
                                     0, 0, 0, ~0ULL };

    for (unsigned int s = 1; s <= 8; s *= 2) {
        ioreq_t r = rq(IOREQ_TYPE_COPY, true, 0xfed00010, s, 0x5a);

        assert_int_equal(ioreq_handle(&g->h, &r), 0);
        assert_true(r.data == ones[s]);
    }
    {
        ioreq_t w = rq(IOREQ_TYPE_COPY, false, 0xfed00020, 4, 1);
        ioreq_t p = rq(IOREQ_TYPE_PIO, true, 0x80, 1, 0);
        ioreq_t c = rq(IOREQ_TYPE_PCI_CONFIG, true,
                       ((uint64_t)0x18 << 32) | 0x0, 4, 0);

        assert_int_equal(ioreq_handle(&g->h, &w), 0);
        assert_int_equal(ioreq_handle(&g->h, &p), 0);
        assert_true(p.data == 0xff);
        assert_int_equal(ioreq_handle(&g->h, &c), 0);
        assert_true(c.data == 0xffffffff);
    }
    assert_int_equal(g->n, 0);              /* no region saw any of it */
    assert_int_equal(g->h.st.unassigned, 7);
    /* One line for page 0xfed00, one for port 0x80, one for PCI config. */
    assert_int_equal(g->nmsgs, 3);
    assert_non_null(strstr(g->msgs[0], "unassigned MMIO read"));
    assert_non_null(strstr(g->msgs[0], "0xfed00010"));
}

static void test_rep_with_a_data_pointer_moves_guest_memory(void **state)
{
    Guest *g = *state;
    ioreq_t w = rq(IOREQ_TYPE_PIO, false, PIO_BASE, 2, 0x1000);
    ioreq_t r = rq(IOREQ_TYPE_COPY, true, MMIO_BASE + 0x100, 4, 0x2000);
    ioreq_t d = rq(IOREQ_TYPE_COPY, false, MMIO_BASE + 0x200, 1, 0x3003);

    for (int i = 0; i < 8; i++) {
        ram(g)[0x1000 + i] = (uint8_t)(0x10 + i);
        ram(g)[0x3000 + i] = (uint8_t)(0x30 + i);
    }
    /* rep outsw: 3 words from guest memory to one port, in order. */
    w.data_is_ptr = 1;
    w.count = 3;
    assert_int_equal(ioreq_handle(&g->h, &w), 0);
    assert_int_equal(g->n, 3);
    assert_true(g->log[0].addr == 0 && g->log[0].data == 0x1110);
    assert_true(g->log[1].addr == 2 && g->log[1].data == 0x1312);
    assert_true(g->log[2].addr == 4 && g->log[2].data == 0x1514);
    /* rep movsd from MMIO into guest memory. */
    r.data_is_ptr = 1;
    r.count = 2;
    assert_int_equal(ioreq_handle(&g->h, &r), 0);
    assert_int_equal(*(uint32_t *)&ram(g)[0x2000],
                     (uint32_t)(0x1122334455667788ULL + 0x100));
    assert_int_equal(*(uint32_t *)&ram(g)[0x2004],
                     (uint32_t)(0x1122334455667788ULL + 0x104));
    /* df: both addresses go down. */
    g->n = 0;
    d.data_is_ptr = 1;
    d.df = 1;
    d.count = 3;
    assert_int_equal(ioreq_handle(&g->h, &d), 0);
    assert_int_equal(g->n, 3);
    assert_true(g->log[0].addr == 0x200 && g->log[0].data == 0x33);
    assert_true(g->log[1].addr == 0x1ff && g->log[1].data == 0x32);
    assert_true(g->log[2].addr == 0x1fe && g->log[2].data == 0x31);
    assert_int_equal(g->h.st.bad, 0);
}

/* ---- malformed requests: completed, counted, no effect ------------------------ */

static void expect_bad(Guest *g, ioreq_t r, const char *why)
{
    uint64_t bad = g->h.st.bad;
    uint8_t before[64];

    memcpy(before, ram(g) + 0x4000, sizeof(before));
    g->n = 0;
    assert_int_equal(ioreq_handle(&g->h, &r), -EINVAL);
    assert_int_equal(g->h.st.bad, bad + 1);
    assert_int_equal(g->n, 0);              /* no device saw it */
    assert_memory_equal(before, ram(g) + 0x4000, sizeof(before));
    assert_true(g->nmsgs > 0);
    assert_non_null(strstr(g->msgs[(g->nmsgs - 1) % ARRAY_SIZE(g->msgs)],
                           why));
}

static void test_bad_requests_are_completed_with_no_effect(void **state)
{
    Guest *g = *state;
    ioreq_t r;

    expect_bad(g, rq(IOREQ_TYPE_COPY, false, MMIO_BASE, 0, 1), "size");
    expect_bad(g, rq(IOREQ_TYPE_COPY, true, MMIO_BASE, 3, 1), "size");
    expect_bad(g, rq(IOREQ_TYPE_PIO, false, PIO_BASE, 16, 1), "size");
    r = rq(IOREQ_TYPE_COPY, false, MMIO_BASE, 4, 0x4000);
    r.count = 0;
    r.data_is_ptr = 1;
    expect_bad(g, r, "rep count 0");
    r = rq(IOREQ_TYPE_COPY, false, MMIO_BASE, 8, 0x4000);
    r.count = 0xffffffff;               /* 32 GiB of data */
    r.data_is_ptr = 1;
    expect_bad(g, r, "rep count too large");
    r = rq(IOREQ_TYPE_COPY, false, MMIO_BASE, 4, 0x4000);
    r.count = 2;                        /* a rep without data pointer */
    expect_bad(g, r, "rep count");
    r = rq(IOREQ_TYPE_COPY, true, ~0ULL - 4, 4, 0x4000);
    r.count = 4;                        /* the device address wraps */
    r.data_is_ptr = 1;
    expect_bad(g, r, "wraps");
    r = rq(IOREQ_TYPE_COPY, true, MMIO_BASE, 4, ~0ULL - 8);
    r.count = 4;                        /* the data pointer wraps */
    r.data_is_ptr = 1;
    expect_bad(g, r, "wraps");
    r = rq(IOREQ_TYPE_COPY, true, MMIO_BASE + 0x10, 4, 8);
    r.count = 4;
    r.df = 1;                           /* down from 8 past 0 */
    r.data_is_ptr = 1;
    expect_bad(g, r, "below 0");
    r = rq(IOREQ_TYPE_COPY, true, MMIO_BASE, 4, RAM_BYTES - 8);
    r.count = 4;                        /* the data runs out of RAM */
    r.data_is_ptr = 1;
    expect_bad(g, r, "outside guest RAM");
    r = rq(IOREQ_TYPE_PIO, false, PIO_BASE, 4, MMIO_BASE);
    r.count = 2;                        /* data in MMIO, not RAM */
    r.data_is_ptr = 1;
    expect_bad(g, r, "outside guest RAM");
    expect_bad(g, rq(IOREQ_TYPE_PIO, true, 0x10000, 1, 0), "port");
    r = rq(IOREQ_TYPE_PCI_CONFIG, true, 0, 4, 0x4000);
    r.data_is_ptr = 1;
    expect_bad(g, r, "data pointer");
    assert_int_equal(g->h.st.bad, 13);
    assert_int_equal(g->h.st.requests, 13);
}

static void test_invalidate_and_other_types_are_acknowledged(void **state)
{
    Guest *g = *state;
    ioreq_t inv = rq(IOREQ_TYPE_INVALIDATE, false, 0, 4, ~0ULL);
    ioreq_t tmo = rq(IOREQ_TYPE_TIMEOFFSET, false, 0, 8, 12345);
    ioreq_t odd = rq(0x42, true, 0, 4, 7);

    assert_int_equal(ioreq_handle(&g->h, &inv), 0);
    assert_int_equal(ioreq_handle(&g->h, &tmo), 0);
    assert_int_equal(ioreq_handle(&g->h, &odd), 0);
    assert_int_equal(odd.data, 7);
    assert_int_equal(g->h.st.invalidates, 1);
    assert_int_equal(g->h.st.other, 2);
    assert_int_equal(g->n, 0);
}

/* ---- the Xen layer: pages, ring, ports (wrapped libraries) ------------------- */

static uint8_t *pages;                  /* frame 0 buffered, frame 1 ioreq */
static int notified[8], bound;
static int pending_port = -1;

#define PAGES ((buffered_iopage_t *)pages)
#define SLOT(v) (&((shared_iopage_t *)(pages + 4096))->vcpu_ioreq[v])

int __wrap_xen_domain_info(XenHandles *xh, XenDomainInfo *info);
int __wrap_xen_domain_info(XenHandles *xh, XenDomainInfo *info)
{
    (void)xh;
    *info = (XenDomainInfo){ .nr_vcpus = 2, .hvm = true };
    return 0;
}
uint32_t __wrap_xen_domid(const XenHandles *xh);
uint32_t __wrap_xen_domid(const XenHandles *xh)
{
    (void)xh;
    return 7;
}
xendevicemodel_handle *__wrap_xen_dmod(XenHandles *xh);
xendevicemodel_handle *__wrap_xen_dmod(XenHandles *xh)
{
    return (xendevicemodel_handle *)xh;
}
xenforeignmemory_handle *__wrap_xen_fmem(XenHandles *xh);
xenforeignmemory_handle *__wrap_xen_fmem(XenHandles *xh)
{
    return (xenforeignmemory_handle *)xh;
}
int __wrap_xen_ioreq_server_destroy(XenHandles *xh, ioservid_t id);
int __wrap_xen_ioreq_server_destroy(XenHandles *xh, ioservid_t id)
{
    (void)xh;
    (void)id;
    return 0;
}
int __wrap_xendevicemodel_create_ioreq_server(xendevicemodel_handle *d,
                                              domid_t dom, int buf,
                                              ioservid_t *id);
int __wrap_xendevicemodel_create_ioreq_server(xendevicemodel_handle *d,
                                              domid_t dom, int buf,
                                              ioservid_t *id)
{
    (void)d;
    (void)dom;
    assert_int_equal(buf, HVM_IOREQSRV_BUFIOREQ_ATOMIC);
    *id = 3;
    return 0;
}
int __wrap_xendevicemodel_get_ioreq_server_info(
    xendevicemodel_handle *d, domid_t dom, ioservid_t id, xen_pfn_t *g1,
    xen_pfn_t *g2, evtchn_port_t *port);
int __wrap_xendevicemodel_get_ioreq_server_info(
    xendevicemodel_handle *d, domid_t dom, ioservid_t id, xen_pfn_t *g1,
    xen_pfn_t *g2, evtchn_port_t *port)
{
    (void)d;
    (void)dom;
    (void)id;
    assert_null(g1);                    /* never the legacy gfns */
    assert_null(g2);
    *port = 90;
    return 0;
}
int __wrap_xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *d,
                                                 domid_t dom, ioservid_t id,
                                                 int enabled);
int __wrap_xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *d,
                                                 domid_t dom, ioservid_t id,
                                                 int enabled)
{
    (void)d;
    (void)dom;
    (void)id;
    if (enabled) {      /* ioreq_server_update_evtchn() */
        SLOT(0)->vp_eport = 91;
        SLOT(1)->vp_eport = 92;
    }
    return 0;
}
xenforeignmemory_resource_handle *__wrap_xenforeignmemory_map_resource(
    xenforeignmemory_handle *f, domid_t dom, unsigned int type,
    unsigned int id, unsigned long frame, unsigned long nr, void **paddr,
    int prot, int flags);
xenforeignmemory_resource_handle *__wrap_xenforeignmemory_map_resource(
    xenforeignmemory_handle *f, domid_t dom, unsigned int type,
    unsigned int id, unsigned long frame, unsigned long nr, void **paddr,
    int prot, int flags)
{
    (void)f;
    (void)dom;
    (void)prot;
    (void)flags;
    assert_int_equal(type, 0);          /* XENMEM_resource_ioreq_server */
    assert_int_equal(id, 3);
    assert_int_equal(frame, 0);
    assert_int_equal(nr, 2);
    *paddr = pages;
    return (xenforeignmemory_resource_handle *)pages;
}
int __wrap_xenforeignmemory_unmap_resource(xenforeignmemory_handle *f,
                                           xenforeignmemory_resource_handle *r);
int __wrap_xenforeignmemory_unmap_resource(xenforeignmemory_handle *f,
                                           xenforeignmemory_resource_handle *r)
{
    (void)f;
    (void)r;
    return 0;
}
xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *logger,
                                        unsigned int flags);
xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *logger,
                                        unsigned int flags)
{
    (void)logger;
    (void)flags;
    return (xenevtchn_handle *)pages;
}
int __wrap_xenevtchn_close(xenevtchn_handle *x);
int __wrap_xenevtchn_close(xenevtchn_handle *x)
{
    (void)x;
    return 0;
}
int __wrap_xenevtchn_fd(xenevtchn_handle *x);
int __wrap_xenevtchn_fd(xenevtchn_handle *x)
{
    (void)x;
    return -1;
}
xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(xenevtchn_handle *x, uint32_t dom,
                                      evtchn_port_t remote);
xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(xenevtchn_handle *x, uint32_t dom,
                                      evtchn_port_t remote)
{
    (void)x;
    assert_int_equal(dom, 7);
    bound++;
    return (int)remote + 100;           /* our local port */
}
int __wrap_xenevtchn_unbind(xenevtchn_handle *x, evtchn_port_t p);
int __wrap_xenevtchn_unbind(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    (void)p;
    bound--;
    return 0;
}
int __wrap_xenevtchn_notify(xenevtchn_handle *x, evtchn_port_t p);
int __wrap_xenevtchn_notify(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    if (p >= 190 && p < 198) {
        notified[p - 190]++;
    }
    return 0;
}
xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *x);
xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *x)
{
    int p = pending_port;

    (void)x;
    pending_port = -1;
    if (p < 0) {
        errno = EAGAIN;
        return -1;
    }
    return p;
}
int __wrap_xenevtchn_unmask(xenevtchn_handle *x, evtchn_port_t p);
int __wrap_xenevtchn_unmask(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    (void)p;
    return 0;
}

static XenIoreqServer *open_server(void)
{
    XenIoreqServer *s;

    pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(pages != MAP_FAILED);
    memset(notified, 0, sizeof(notified));
    bound = 0;
    assert_int_equal(xen_ioreq_server_open((XenHandles *)(uintptr_t)0x1000,
                                           &s), 0);
    assert_int_equal(xen_ioreq_server_id(s), 3);
    assert_int_equal(bound, 1);         /* the buffered ring's port */
    assert_int_equal(xen_ioreq_server_enable(s), 0);
    assert_int_equal(bound, 3);         /* and one per vCPU */
    return s;
}

static void close_server(XenIoreqServer *s)
{
    xen_ioreq_server_close(s);
    assert_int_equal(bound, 0);
    munmap(pages, 8192);
}

static void test_the_slot_state_machine(void **unused)
{
    XenIoreqServer *s = open_server();
    ioreq_t req;

    (void)unused;
    /* Nothing posted: a spurious event takes nothing. */
    assert_false(xen_ioreq_take(s, 1, &req));
    /* Xen posts a read on vCPU 1 and notifies port 92 (ours: 192). */
    *SLOT(1) = (ioreq_t){ .addr = 0xfe000010, .size = 4, .count = 1,
                          .vp_eport = 92, .dir = IOREQ_READ,
                          .type = IOREQ_TYPE_COPY };
    SLOT(1)->state = STATE_IOREQ_READY;
    pending_port = 192;
    assert_int_equal(xen_ioreq_pending(s), 1);
    assert_int_equal(xen_ioreq_pending(s), -EAGAIN);
    assert_true(xen_ioreq_take(s, 1, &req));
    assert_int_equal(SLOT(1)->state, STATE_IOREQ_INPROCESS);
    assert_int_equal(req.addr, 0xfe000010);
    assert_false(xen_ioreq_take(s, 1, &req));   /* taken once only */
    req.data = 0xabcd;
    assert_int_equal(xen_ioreq_complete(s, 1, &req), 0);
    assert_int_equal(SLOT(1)->state, STATE_IORESP_READY);
    assert_int_equal(SLOT(1)->data, 0xabcd);
    assert_int_equal(notified[2], 1);           /* port 192 */
    assert_int_equal(notified[1], 0);
    /* The buffered ring's port, and a port that is not ours. */
    pending_port = 190;
    assert_int_equal(xen_ioreq_pending(s), XEN_IOREQ_BUFFERED);
    pending_port = 55;
    assert_int_equal(xen_ioreq_pending(s), -ENOENT);
    assert_false(xen_ioreq_take(s, 9, &req));   /* no such vCPU */
    close_server(s);
}

static void post(buffered_iopage_t *pg, uint8_t type, uint8_t dir,
                 unsigned int sz, uint32_t addr, uint32_t data)
{
    buf_ioreq_t *b = &pg->buf_ioreq[pg->write_pointer % IOREQ_BUFFER_SLOT_NUM];

    memset(b, 0, sizeof(*b));
    b->type = type;
    b->dir = dir;
    b->size = sz;
    b->addr = addr;
    b->data = data;
    pg->write_pointer++;
}

static void test_the_buffered_ring(void **unused)
{
    XenIoreqServer *s = open_server();
    buffered_iopage_t *pg = PAGES;
    ioreq_t req;

    (void)unused;
    assert_int_equal(xen_ioreq_buf_next(s, &req), 0);
    /* A 2-byte port write, then an 8-byte MMIO write in two slots, the
     * second wrapping around the end of the ring. */
    pg->read_pointer = pg->write_pointer = IOREQ_BUFFER_SLOT_NUM - 2;
    post(pg, IOREQ_TYPE_PIO, IOREQ_WRITE, 1, 0x3c4, 0x0f02);
    post(pg, IOREQ_TYPE_COPY, IOREQ_WRITE, 3, 0xa0000, 0x89abcdef);
    post(pg, IOREQ_TYPE_COPY, IOREQ_WRITE, 3, 0xa0000, 0x01234567);
    assert_int_equal(xen_ioreq_buf_next(s, &req), 1);
    assert_int_equal(req.type, IOREQ_TYPE_PIO);
    assert_int_equal(req.size, 2);
    assert_int_equal(req.addr, 0x3c4);
    assert_int_equal(req.data, 0x0f02);
    assert_int_equal(req.count, 1);
    assert_int_equal(xen_ioreq_buf_next(s, &req), 1);
    assert_int_equal(req.size, 8);
    assert_true(req.data == 0x0123456789abcdefULL);
    assert_int_equal(pg->read_pointer, pg->write_pointer);
    assert_int_equal(xen_ioreq_buf_next(s, &req), 0);
    /* Pointers Xen never leaves: the ring is dropped, not read. */
    pg->write_pointer = pg->read_pointer + IOREQ_BUFFER_SLOT_NUM + 5;
    assert_int_equal(xen_ioreq_buf_next(s, &req), -EIO);
    assert_int_equal(pg->read_pointer, pg->write_pointer);
    /* Half of an 8-byte request. */
    post(pg, IOREQ_TYPE_COPY, IOREQ_WRITE, 3, 0xa0000, 1);
    assert_int_equal(xen_ioreq_buf_next(s, &req), -EIO);
    assert_int_equal(xen_ioreq_buf_next(s, &req), 0);
    close_server(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_mmio_reaches_the_region_with_address_size_and_data, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_port_io_reaches_the_io_region,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_unassigned_reads_all_ones_and_is_logged_once_per_page, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_rep_with_a_data_pointer_moves_guest_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bad_requests_are_completed_with_no_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_invalidate_and_other_types_are_acknowledged, setup, teardown),
        cmocka_unit_test(test_the_slot_state_machine),
        cmocka_unit_test(test_the_buffered_ring),
    };

    rcu_register_thread();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
