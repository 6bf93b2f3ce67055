/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-devicemodel.c - the libxendevicemodel stand-in against Xen's
 * XEN_DMOP_* semantics: ioreq servers (recorded, inspectable; their pages
 * by map_resource and the INVALIDATE each vCPU sends them after a frame
 * removal, served here by hand as a device model would),
 * track_dirty_vram on a HAP domain, relocate_memory, pinned cache
 * attributes, and the checks every dm op makes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <time.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

static struct simhost host;

struct ctx {
    xendevicemodel_handle *dm;
    uint32_t domid;
};

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

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    int d = sim_create(&host, 16, "idle", 0);

    if (!c || d <= 0)
        return -1;
    c->domid = (uint32_t)d;
    c->dm = xendevicemodel_open(NULL, 0);
    *state = c;
    return c->dm ? 0 : -1;
}

static int teardown(void **state)
{
    struct ctx *c = *state;

    xendevicemodel_close(c->dm);
    sim_destroy(&host, c->domid);
    free(c);
    return 0;
}

static bool dm_state_has(uint32_t domid, const char *what)
{
    char *s = sim_dm_state(&host, domid);
    bool found = s && strstr(s, what);

    if (!found)
        print_message("dm-state of d%u lacks '%s':\n%s", domid, what,
                      s ? s : "(none)");
    free(s);
    return found;
}

static void test_ioreq_server_lifecycle_is_recorded(void **state)
{
    struct ctx *c = *state;
    ioservid_t id = 99;
    evtchn_port_t port = 0;
    xen_pfn_t ioreq = 0, buf = 0;

    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_ATOMIC, &id), 0);
    assert_int_equal(id, 0);
    assert_int_equal(xendevicemodel_get_ioreq_server_info(c->dm, c->domid, id,
                                                          NULL, NULL, &port),
                     0);
    assert_int_not_equal(port, 0);
    assert_int_equal(xendevicemodel_get_ioreq_server_info(c->dm, c->domid, id,
                                                          &ioreq, &buf, NULL),
                     0);
    assert_int_not_equal(ioreq, 0);
    assert_int_equal(buf, ioreq + 1);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                         c->dm, c->domid, id, 1, 0xfe000000, 0xfe000fff), 0);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                         c->dm, c->domid, id, 0, 0xcf8, 0xcff), 0);
    assert_int_equal(xendevicemodel_map_pcidev_to_ioreq_server(
                         c->dm, c->domid, id, 0, 0, 3, 0), 0);
    assert_true(dm_state_has(c->domid, "ioreq-server 0 disabled"));
    assert_true(dm_state_has(c->domid, "mmio 0xfe000000-0xfe000fff"));
    assert_true(dm_state_has(c->domid, "port 0xcf8-0xcff"));
    assert_true(dm_state_has(c->domid, "pci 0x18-0x18"));
    /* rangeset semantics: no overlap, unmap only what was mapped */
    errno = 0;
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                         c->dm, c->domid, id, 1, 0xfe000800, 0xfe001fff), -1);
    assert_int_equal(errno, EEXIST);
    errno = 0;
    assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(
                         c->dm, c->domid, id, 1, 0xfe000000, 0xfe0007ff), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(
                         c->dm, c->domid, id, 1, 0xfe000000, 0xfe000fff), 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(c->dm, c->domid, id,
                                                           1), 0);
    assert_true(dm_state_has(c->domid, "ioreq-server 0 enabled"));
    assert_int_equal(xendevicemodel_destroy_ioreq_server(c->dm, c->domid, id),
                     0);
    errno = 0;
    assert_int_equal(xendevicemodel_destroy_ioreq_server(c->dm, c->domid, id),
                     -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(xendevicemodel_set_ioreq_server_state(c->dm, c->domid, id,
                                                           1), -1);
    assert_int_equal(errno, ENOENT);
}

/* Remove one populated frame of @domid, as a balloon driver would. */
static void remove_one_frame(uint32_t domid, xen_pfn_t gfn)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);

    assert_non_null(xch);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, domid, 1, 0,
                                                          &gfn), 0);
    xc_interface_close(xch);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll dm-state (bounded, 10 s) until it shows @what. */
static bool dm_state_shows(uint32_t domid, const char *what)
{
    uint64_t end = now_ms() + 10000;

    while (now_ms() < end) {
        char *s = sim_dm_state(&host, domid);
        bool found = s && strstr(s, what);

        free(s);
        if (found)
            return true;
        poll(NULL, 0, 5);
    }
    return dm_state_has(domid, what);
}

/*
 * Xen 4.17 broadcasts IOREQ_TYPE_INVALIDATE to every enabled ioreq server
 * after a frame removal on a domain whose creation has finished, from each
 * vCPU at its next resume; one whose ioreq pages were never set up takes
 * the host down (issue 16).
 */
static void test_a_frame_removal_with_an_unserved_enabled_server_panics_xen(
    void **state)
{
    struct ctx *c = *state;
    ioservid_t id;

    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &id), 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(c->dm, c->domid, id,
                                                           1), 0);
    remove_one_frame(c->domid, 0x800);
    assert_true(dm_state_shows(c->domid, "xen-panic FATAL PAGE FAULT in "
                                         "ioreq_send"));
}

static void test_a_disabled_server_is_sent_nothing(void **state)
{
    struct ctx *c = *state;
    ioservid_t off;
    char *s;

    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &off), 0);
    remove_one_frame(c->domid, 0x800);
    s = sim_dm_state(&host, c->domid);
    assert_non_null(s);
    assert_null(strstr(s, "xen-panic"));
    assert_non_null(strstr(s, "ioreq sent=0 "));
    free(s);
}

/* A device model's side of a served server, by hand. */
struct served {
    xenforeignmemory_handle *fmem;
    xenforeignmemory_resource_handle *res;
    xenevtchn_handle *xce;
    shared_iopage_t *shared;
    int local;
};

static void serve_open(struct served *sv, struct ctx *c, ioservid_t id)
{
    void *pages = NULL;
    size_t size = 0;

    /* The stand-in's event-channel namespace, as ts-dm gives xenram. */
    char ns[200];

    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    sv->fmem = xenforeignmemory_open(NULL, 0);
    assert_non_null(sv->fmem);
    assert_int_equal(xenforeignmemory_resource_size(
                         sv->fmem, c->domid, XENMEM_resource_ioreq_server, id,
                         &size), 0);
    assert_int_equal(size, 2 * 4096);
    /* Frame 1 only: the server has no buffered ring. */
    sv->res = xenforeignmemory_map_resource(
        sv->fmem, c->domid, XENMEM_resource_ioreq_server, id,
        XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &pages,
        PROT_READ | PROT_WRITE, 0);
    assert_non_null(sv->res);
    sv->shared = pages;
    assert_int_equal(xendevicemodel_set_ioreq_server_state(c->dm, c->domid, id,
                                                           1), 0);
    /* Enabling wrote vCPU 0's port into its slot. */
    assert_int_not_equal(sv->shared->vcpu_ioreq[0].vp_eport, 0);
    sv->xce = xenevtchn_open(NULL, 0);
    assert_non_null(sv->xce);
    sv->local = xenevtchn_bind_interdomain(
        sv->xce, c->domid, sv->shared->vcpu_ioreq[0].vp_eport);
    assert_true(sv->local >= 0);
}

static void serve_close(struct served *sv)
{
    xenevtchn_close(sv->xce);
    assert_int_equal(xenforeignmemory_unmap_resource(sv->fmem, sv->res), 0);
    xenforeignmemory_close(sv->fmem);
}

/* Wait (bounded) for vCPU 0's request; returns it, the slot INPROCESS. */
static ioreq_t serve_take(struct served *sv)
{
    volatile ioreq_t *p = &sv->shared->vcpu_ioreq[0];
    struct pollfd pfd = { .fd = xenevtchn_fd(sv->xce), .events = POLLIN };
    ioreq_t req;

    assert_int_equal(poll(&pfd, 1, 10000), 1);
    assert_int_equal(xenevtchn_pending(sv->xce), sv->local);
    assert_int_equal(xenevtchn_unmask(sv->xce, (evtchn_port_t)sv->local), 0);
    assert_int_equal(p->state, STATE_IOREQ_READY);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    memcpy(&req, (const void *)p, sizeof(req));
    p->state = STATE_IOREQ_INPROCESS;
    return req;
}

static void serve_complete(struct served *sv)
{
    volatile ioreq_t *p = &sv->shared->vcpu_ioreq[0];

    __atomic_thread_fence(__ATOMIC_RELEASE);
    p->state = STATE_IORESP_READY;
    assert_int_equal(xenevtchn_notify(sv->xce, (evtchn_port_t)sv->local), 0);
}

/*
 * ioreq_send(): the INVALIDATE in the vCPU's slot, READY, the vCPU's
 * event channel notified, and the vCPU blocked until the device model
 * answers IORESP_READY (wait_for_io), then the slot back to NONE.
 */
static void test_a_served_server_gets_the_invalidate_and_the_vcpu_waits(
    void **state)
{
    struct ctx *c = *state;
    struct served sv;
    ioservid_t id;
    ioreq_t req;

    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &id), 0);
    serve_open(&sv, c, id);
    remove_one_frame(c->domid, 0x800);
    req = serve_take(&sv);
    assert_int_equal(req.type, IOREQ_TYPE_INVALIDATE);
    assert_int_equal(req.dir, IOREQ_WRITE);
    assert_int_equal(req.size, 4);
    assert_true(req.data == ~0ull);
    assert_int_equal(req.vp_eport, sv.shared->vcpu_ioreq[0].vp_eport);
    /* Not answered yet: the vCPU waits. */
    assert_true(dm_state_shows(c->domid, "waiting=1 "));
    serve_complete(&sv);
    assert_true(dm_state_shows(c->domid, "sent=1 waiting=0 "));
    assert_int_equal(sv.shared->vcpu_ioreq[0].state, STATE_IOREQ_NONE);
    dm_state_has(c->domid, "ioreq-server 0 enabled");
    serve_close(&sv);
}

/* Frames mapped by map_resource: the legacy gfns are refused after. */
static void test_map_resource_checks_like_xen(void **state)
{
    struct ctx *c = *state;
    xenforeignmemory_handle *fmem = xenforeignmemory_open(NULL, 0);
    xenforeignmemory_resource_handle *res;
    xen_pfn_t ioreq, buf;
    void *p = NULL;
    ioservid_t id, legacy;

    assert_non_null(fmem);
    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &id), 0);
    errno = 0;
    assert_null(xenforeignmemory_map_resource(
        fmem, c->domid, XENMEM_resource_ioreq_server, 5, 1, 1, &p,
        PROT_READ | PROT_WRITE, 0));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(xenforeignmemory_map_resource(
        fmem, c->domid, XENMEM_resource_ioreq_server, id,
        XENMEM_resource_ioreq_server_frame_bufioreq, 1, &p,
        PROT_READ | PROT_WRITE, 0));
    assert_int_equal(errno, ENOENT);    /* no buffered ring */
    errno = 0;
    assert_null(xenforeignmemory_map_resource(
        fmem, c->domid, XENMEM_resource_ioreq_server, id, 1, 2, &p,
        PROT_READ | PROT_WRITE, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(xenforeignmemory_map_resource(
        fmem, c->domid, XENMEM_resource_grant_table, 0, 0, 1, &p,
        PROT_READ | PROT_WRITE, 0));
    assert_int_equal(errno, EOPNOTSUPP);
    res = xenforeignmemory_map_resource(fmem, c->domid,
                                        XENMEM_resource_ioreq_server, id, 1, 1,
                                        &p, PROT_READ | PROT_WRITE, 0);
    assert_non_null(res);
    assert_int_equal(xenforeignmemory_unmap_resource(fmem, res), 0);
    /* ioreq_server_alloc_mfn(): legacy gfns first, then no resource. */
    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &legacy),
                     0);
    assert_int_equal(xendevicemodel_get_ioreq_server_info(
                         c->dm, c->domid, legacy, &ioreq, &buf, NULL), 0);
    errno = 0;
    p = NULL;
    assert_null(xenforeignmemory_map_resource(
        fmem, c->domid, XENMEM_resource_ioreq_server, legacy, 1, 1, &p,
        PROT_READ | PROT_WRITE, 0));
    assert_int_equal(errno, EPERM);
    xenforeignmemory_close(fmem);
}

/* The guest's own balloon driver: only the removing vCPU sends. */
static void test_a_balloon_driver_invalidates_from_its_own_vcpu(void **state)
{
    struct ctx *c = *state;
    struct served sv;
    ioservid_t id;
    ioreq_t req;
    char out[256], dom[16];

    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, c->domid, HVM_IOREQSRV_BUFIOREQ_OFF, &id), 0);
    serve_open(&sv, c, id);
    snprintf(dom, sizeof(dom), "%u", c->domid);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "balloon", dom,
                                 "-3", NULL), 0);
    assert_non_null(strstr(out, "gave back 3 frame(s)"));
    req = serve_take(&sv);
    assert_int_equal(req.type, IOREQ_TYPE_INVALIDATE);
    serve_complete(&sv);
    assert_true(dm_state_shows(c->domid, "sent=1 waiting=0 "));
    serve_close(&sv);
}

static void test_a_domain_still_being_created_is_not_sent_invalidates(
    void **state)
{
    struct ctx *c = *state;
    int d = sim_create(&host, 16, "idle", XSIM_CREATE_PAUSED);
    ioservid_t id;
    char *s;

    assert_true(d > 0);
    assert_int_equal(xendevicemodel_create_ioreq_server(
                         c->dm, (domid_t)d, HVM_IOREQSRV_BUFIOREQ_OFF, &id), 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(c->dm, (domid_t)d,
                                                           id, 1), 0);
    remove_one_frame((uint32_t)d, 0x800);
    s = sim_dm_state(&host, (uint32_t)d);
    assert_non_null(s);
    assert_null(strstr(s, "xen-panic"));
    free(s);
    sim_destroy(&host, (uint32_t)d);
}

static void test_ioreq_servers_run_out(void **state)
{
    struct ctx *c = *state;
    ioservid_t id;

    for (int i = 0; i < 8; i++)
        assert_int_equal(xendevicemodel_create_ioreq_server(c->dm, c->domid, 0,
                                                            &id), 0);
    errno = 0;
    assert_int_equal(xendevicemodel_create_ioreq_server(c->dm, c->domid, 0,
                                                        &id), -1);
    assert_int_equal(errno, ENOSPC);
}

static void test_track_dirty_vram(void **state)
{
    struct ctx *c = *state;
    xenforeignmemory_handle *f = xenforeignmemory_open(NULL, 0);
    unsigned long bm[4];                /* 256 pages */
    uint64_t g[2] = { 0x105, 0x1f0 };
    xen_pfn_t gfn = 0x110;
    uint8_t *p;

    assert_non_null(f);
    /* A new range: everything is dirty. */
    memset(bm, 0, sizeof(bm));
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     256, bm), 0);
    assert_int_equal(sim_bits(bm, 256), 256);
    memset(bm, 0xff, sizeof(bm));
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     256, bm), 0);
    assert_int_equal(sim_bits(bm, 256), 0);
    /* The guest's writes, not the device model's. */
    assert_int_equal(sim_guest_write(&host, c->domid, g, 2), 2);
    p = xenforeignmemory_map(f, c->domid, PROT_READ | PROT_WRITE, 1, &gfn,
                             NULL);
    assert_non_null(p);
    p[0] = 1;
    xenforeignmemory_unmap(f, p, 1);
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     256, bm), 0);
    assert_int_equal(sim_bits(bm, 256), 2);
    assert_true(sim_bit(bm, 0x5) && sim_bit(bm, 0xf0));
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     256, bm), 0);
    assert_int_equal(sim_bits(bm, 256), 0);
    assert_true(dm_state_has(c->domid, "vram 0x100+256"));
    /* Another range starts over; nr = 0 stops. */
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x200,
                                                     100, bm), 0);
    assert_int_equal(sim_bits(bm, 100), 100);
    /*
     * A bitmap of 0 bytes: Linux privcmd refuses a NULL (or page-aligned)
     * buffer with EFAULT before Xen sees the call; any other pointer stops
     * tracking (Xen 4.17, tests/realxen).
     */
    errno = 0;
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0, 0,
                                                     NULL), -1);
    assert_int_equal(errno, EFAULT);
    assert_true(dm_state_has(c->domid, "vram 0x200+100"));
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0, 0,
                                                     bm), 0);
    assert_false(dm_state_has(c->domid, "vram 0x"));
    errno = 0;
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0,
                                                     (1u << 18) + 1, NULL), -1);
    assert_int_equal(errno, EINVAL);
    xenforeignmemory_close(f);
}

/*
 * HAP keeps one log-dirty p2m type for both: a global CLEAN re-protects the
 * VRAM range too, so the write it reported is gone for the next
 * track_dirty_vram (Xen 4.17, tests/realxen); a later write is seen again.
 */
static void test_a_global_clean_hides_earlier_writes_from_vram(void **state)
{
    struct ctx *c = *state;
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    DECLARE_HYPERCALL_BUFFER(unsigned long, ld);
    unsigned long bm[1];
    uint64_t g = 0x120;

    assert_non_null(xch);
    ld = xc_hypercall_buffer_alloc_pages(xch, ld, 32);
    assert_non_null(ld);
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     64, bm), 0);
    assert_int_equal(xc_shadow_control(xch, c->domid,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       NULL, 0), 0);
    assert_int_equal(sim_guest_write(&host, c->domid, &g, 1), 1);
    assert_true(xc_logdirty_control(xch, c->domid, XEN_DOMCTL_SHADOW_OP_CLEAN,
                                    HYPERCALL_BUFFER(ld), 0xff000, 0,
                                    NULL) > 0);
    assert_true(sim_bit(ld, 0x120));
    assert_int_equal(sim_bits(ld, 0xff000), 1);
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     64, bm), 0);
    assert_int_equal(sim_bits(bm, 64), 0);
    g = 0x121;
    assert_int_equal(sim_guest_write(&host, c->domid, &g, 1), 1);
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, c->domid, 0x100,
                                                     64, bm), 0);
    assert_int_equal(sim_bits(bm, 64), 1);
    assert_true(sim_bit(bm, 0x21));
    xc_hypercall_buffer_free_pages(xch, ld, 32);
    xc_interface_close(xch);
}

static void test_relocate_memory_moves_the_page(void **state)
{
    struct ctx *c = *state;
    xenforeignmemory_handle *f = xenforeignmemory_open(NULL, 0);
    xen_pfn_t dst = 0x30000, src = 0x200;
    uint64_t g = src;
    int err;
    void *p;

    assert_non_null(f);
    assert_int_equal(sim_guest_write(&host, c->domid, &g, 1), 1);
    assert_int_equal(xendevicemodel_relocate_memory(c->dm, c->domid, 1, src,
                                                    dst), 0);
    p = xenforeignmemory_map(f, c->domid, PROT_READ, 1, &dst, &err);
    assert_non_null(p);
    assert_int_equal(err, 0);
    /* The stamp still names its old frame: the page itself moved. */
    assert_int_equal(xsim_stamp_check(p, src, NULL), 1);
    xenforeignmemory_unmap(f, p, 1);
    p = xenforeignmemory_map(f, c->domid, PROT_READ, 1, &src, &err);
    assert_non_null(p);
    assert_int_equal(err, -EINVAL);
    xenforeignmemory_unmap(f, p, 1);
    errno = 0;
    assert_int_equal(xendevicemodel_relocate_memory(c->dm, c->domid, 1, src,
                                                    dst + 1), -1);
    assert_int_equal(errno, EINVAL);
    xenforeignmemory_close(f);
}

static void test_pinned_cache_attributes(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0xf0000, 0xf0fff,
                         XEN_DMOP_MEM_CACHEATTR_WB), 0);
    assert_true(dm_state_has(c->domid, "cacheattr 0xf0000-0xf0fff type=6"));
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0xf0000, 0xf0fff,
                         XEN_DMOP_MEM_CACHEATTR_UC), 0);
    assert_true(dm_state_has(c->domid, "cacheattr 0xf0000-0xf0fff type=0"));
    errno = 0;
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0xf0800, 0xf1fff,
                         XEN_DMOP_MEM_CACHEATTR_WB), -1);
    assert_int_equal(errno, EBUSY);
    errno = 0;
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(c->dm, c->domid, 0x10,
                                                         0x20, 2), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0x20, 0x10,
                         XEN_DMOP_MEM_CACHEATTR_WB), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0xf0000, 0xf0fff,
                         XEN_DOMCTL_DELETE_MEM_CACHEATTR), 0);
    errno = 0;
    assert_int_equal(xendevicemodel_pin_memory_cacheattr(
                         c->dm, c->domid, 0xf0000, 0xf0fff,
                         XEN_DOMCTL_DELETE_MEM_CACHEATTR), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_dm_ops_check_the_domain(void **state)
{
    struct ctx *c = *state;
    unsigned int vcpus = 0;

    /* dom0 is the caller's own domain: rcu_lock_remote_domain_by_id. */
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(c->dm, 0, 0x10, 1), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(xendevicemodel_modified_memory(c->dm, 31000, 0x10, 1),
                     -1);
    assert_int_equal(errno, ESRCH);
    assert_int_equal(xendevicemodel_nr_vcpus(c->dm, c->domid, &vcpus), 0);
    assert_int_equal(vcpus, 1);
}

static void test_other_dm_ops_are_recorded(void **state)
{
    struct ctx *c = *state;
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    xc_dominfo_t info;

    assert_non_null(xch);
    assert_int_equal(xendevicemodel_set_isa_irq_level(c->dm, c->domid, 4, 1),
                     0);
    assert_int_equal(xendevicemodel_inject_msi(c->dm, c->domid, 0xfee00000,
                                               0x4041), 0);
    assert_true(dm_state_has(c->domid, "set_isa_irq_level irq=4 level=1"));
    assert_true(dm_state_has(c->domid, "inject_msi addr=0xfee00000"));
    assert_int_equal(xendevicemodel_shutdown(c->dm, c->domid,
                                             SHUTDOWN_reboot), 0);
    assert_int_equal(xc_domain_getinfo(xch, c->domid, 1, &info), 1);
    assert_true(info.shutdown);
    assert_int_equal(info.shutdown_reason, SHUTDOWN_reboot);
    xc_interface_close(xch);
}

static void test_restricted_dm_handle(void **state)
{
    struct ctx *c = *state;
    int other = sim_create(&host, 16, "idle", 0);

    assert_true(other > 0);
    assert_int_equal(xendevicemodel_restrict(c->dm, c->domid), 0);
    errno = 0;
    assert_int_equal(xendevicemodel_restrict(c->dm, (domid_t)other), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xendevicemodel_track_dirty_vram(c->dm, (domid_t)other, 0,
                                                     0, NULL), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(xendevicemodel_modified_memory(c->dm, c->domid, 0x10, 1),
                     0);
    sim_destroy(&host, (uint32_t)other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        T(test_ioreq_server_lifecycle_is_recorded),
        T(test_ioreq_servers_run_out),
        T(test_a_frame_removal_with_an_unserved_enabled_server_panics_xen),
        T(test_a_disabled_server_is_sent_nothing),
        T(test_a_served_server_gets_the_invalidate_and_the_vcpu_waits),
        T(test_map_resource_checks_like_xen),
        T(test_a_balloon_driver_invalidates_from_its_own_vcpu),
        T(test_a_domain_still_being_created_is_not_sent_invalidates),
        T(test_track_dirty_vram),
        T(test_a_global_clean_hides_earlier_writes_from_vram),
        T(test_relocate_memory_moves_the_page),
        T(test_pinned_cache_attributes),
        T(test_dm_ops_check_the_domain),
        T(test_other_dm_ops_are_recorded),
        T(test_restricted_dm_handle),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
