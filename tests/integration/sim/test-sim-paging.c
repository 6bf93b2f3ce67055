/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-paging.c - Xen 4.17's memory paging on the simulated host,
 * driven the way tools/xenpaging drives it: the ring frame mapped, paging
 * enabled, the ring initialised and its frame removed from the physmap,
 * the event channel bound; frames nominated and evicted; requests served
 * with xc_mem_paging_load and a response on the ring.  Real libraries
 * only (the stand-ins underneath).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xen/vm_event.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

#define PAGE      4096
#define NSAVED    0x400         /* frames [0, NSAVED) can be saved */

static struct simhost host;
static xc_interface *xch;
static xenforeignmemory_handle *fm;

/* ---- a pager ------------------------------------------------------------- */

struct pager {
    uint32_t dom;
    xenevtchn_handle *xce;
    evtchn_port_t lport;
    uint64_t ring_gfn;
    void *ring;
    vm_event_back_ring_t back;
    int stop[2];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool autoload;              /* serve from saved[] by itself */
    uint8_t *saved;             /* NSAVED pages */
    bool *have;                 /* saved and paged out: to load */
    vm_event_request_t q[256];  /* requests kept for the test (manual) */
    unsigned nq;
    unsigned vcpu_reqs, foreign_reqs, drop_reqs, served;
};

static void respond_locked(struct pager *p, const vm_event_request_t *req)
{
    vm_event_response_t rsp;

    memset(&rsp, 0, sizeof(rsp));
    rsp.version = VM_EVENT_INTERFACE_VERSION;
    rsp.vcpu_id = req->vcpu_id;
    rsp.flags = req->flags & VM_EVENT_FLAG_VCPU_PAUSED;
    rsp.reason = req->reason;
    rsp.u.mem_paging.gfn = req->u.mem_paging.gfn;
    rsp.u.mem_paging.flags = req->u.mem_paging.flags & MEM_PAGING_DROP_PAGE;
    memcpy(RING_GET_RESPONSE(&p->back, p->back.rsp_prod_pvt), &rsp,
           sizeof(rsp));
    p->back.rsp_prod_pvt++;
    RING_PUSH_RESPONSES(&p->back);
    xenevtchn_notify(p->xce, p->lport);
}

static void *pager_main(void *arg)
{
    struct pager *p = arg;

    for (;;) {
        struct pollfd pf[2] = {
            { .fd = xenevtchn_fd(p->xce), .events = POLLIN },
            { .fd = p->stop[0], .events = POLLIN },
        };

        if (poll(pf, 2, -1) < 0)
            continue;
        if (pf[1].revents)
            break;
        if (pf[0].revents) {
            int port = xenevtchn_pending(p->xce);

            if (port >= 0)
                xenevtchn_unmask(p->xce, (evtchn_port_t)port);
        }
        pthread_mutex_lock(&p->lock);
        while (RING_HAS_UNCONSUMED_REQUESTS(&p->back)) {
            vm_event_request_t req;
            uint64_t g;

            memcpy(&req, RING_GET_REQUEST(&p->back, p->back.req_cons),
                   sizeof(req));
            p->back.req_cons++;
            p->back.sring->req_event = p->back.req_cons + 1;
            g = req.u.mem_paging.gfn;
            if (req.u.mem_paging.flags & MEM_PAGING_DROP_PAGE)
                p->drop_reqs++;
            else if (req.flags & VM_EVENT_FLAG_VCPU_PAUSED)
                p->vcpu_reqs++;
            else
                p->foreign_reqs++;
            if (p->autoload && !(req.u.mem_paging.flags &
                                 MEM_PAGING_DROP_PAGE)) {
                /* Load it once; answer every request for it. */
                if (g < NSAVED && p->have[g]) {
                    assert_int_equal(xc_mem_paging_load(xch, p->dom, g,
                                         p->saved + g * PAGE), 0);
                    p->have[g] = false;
                    p->served++;
                }
                respond_locked(p, &req);
            } else if (p->nq < 256) {
                p->q[p->nq++] = req;
            }
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

/* What xenpaging does at start, in its order (xc_vm_event_enable). */
static void pager_start(struct pager *p, uint32_t d, bool autoload)
{
    xen_pfn_t rp;
    uint32_t port = 0;
    int err = 0;

    memset(p, 0, sizeof(*p));
    p->dom = d;
    p->autoload = autoload;
    p->saved = calloc(NSAVED, PAGE);
    p->have = calloc(NSAVED, sizeof(bool));
    assert_non_null(p->saved);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    assert_int_equal(xc_hvm_param_get(xch, d, HVM_PARAM_PAGING_RING_PFN,
                                      &p->ring_gfn), 0);
    rp = p->ring_gfn;
    p->ring = xenforeignmemory_map(fm, d, PROT_READ | PROT_WRITE, 1, &rp,
                                   &err);
    assert_non_null(p->ring);
    assert_int_equal(err, 0);
    assert_int_equal(xc_mem_paging_enable(xch, d, &port), 0);
    p->xce = xenevtchn_open(NULL, 0);
    assert_non_null(p->xce);
    {
        int lp = xenevtchn_bind_interdomain(p->xce, d, port);

        assert_true(lp >= 0);
        p->lport = (evtchn_port_t)lp;
    }
    SHARED_RING_INIT((vm_event_sring_t *)p->ring);
    BACK_RING_INIT(&p->back, (vm_event_sring_t *)p->ring, PAGE);
    rp = p->ring_gfn;
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, d, 1, 0, &rp),
                     0);
    assert_int_equal(pipe(p->stop), 0);
    assert_int_equal(pthread_create(&p->thread, NULL, pager_main, p), 0);
}

static void pager_stop(struct pager *p)
{
    assert_int_equal(write(p->stop[1], "x", 1), 1);
    pthread_join(p->thread, NULL);
    close(p->stop[0]);
    close(p->stop[1]);
    xenevtchn_close(p->xce);
    xenforeignmemory_unmap(fm, p->ring, 1);
    free(p->saved);
    free(p->have);
}

/* Wait (no timeout: the watchdog is the bound) for the test's request. */
static vm_event_request_t pager_next(struct pager *p)
{
    vm_event_request_t r;

    pthread_mutex_lock(&p->lock);
    while (!p->nq)
        pthread_cond_wait(&p->cond, &p->lock);
    r = p->q[0];
    memmove(p->q, p->q + 1, --p->nq * sizeof(p->q[0]));
    pthread_mutex_unlock(&p->lock);
    return r;
}

static void pager_respond(struct pager *p, const vm_event_request_t *r)
{
    pthread_mutex_lock(&p->lock);
    respond_locked(p, r);
    pthread_mutex_unlock(&p->lock);
}

/* Save frame @g's contents (through a mapping, dropped at once). */
static void save(struct pager *p, uint64_t g)
{
    xen_pfn_t f = g;
    int err = 0;
    void *m = xenforeignmemory_map(fm, p->dom, PROT_READ, 1, &f, &err);

    assert_non_null(m);
    assert_int_equal(err, 0);
    memcpy(p->saved + g * PAGE, m, PAGE);
    assert_int_equal(xenforeignmemory_unmap(fm, m, 1), 0);
}

static void page_out(struct pager *p, uint64_t g)
{
    save(p, g);
    assert_int_equal(xc_mem_paging_nominate(xch, p->dom, g), 0);
    assert_int_equal(xc_mem_paging_evict(xch, p->dom, g), 0);
    pthread_mutex_lock(&p->lock);
    p->have[g] = true;
    pthread_mutex_unlock(&p->lock);
}

static long tot_pages(uint32_t d)
{
    return xc_get_tot_pages(xch, d);
}

static int new_domain(const char *workload)
{
    int d = sim_create(&host, 64, workload, 0);

    assert_true(d > 0);
    return d;
}

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    char ns[256];

    (void)state;
    if (simhost_start(&host, NULL))
        return -1;
    /* The event-channel namespace of the host's domains. */
    snprintf(ns, sizeof(ns), "%s/xenstored", host.dir);
    setenv("XENSTORED_RUNDIR", ns, 1);
    xch = xc_interface_open(NULL, NULL, 0);
    fm = xenforeignmemory_open(NULL, 0);
    return xch && fm ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    xenforeignmemory_close(fm);
    xc_interface_close(xch);
    return simhost_stop(&host);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_enable_follows_vm_event_enable(void **state)
{
    uint32_t d = (uint32_t)new_domain("idle"), port;
    long before = tot_pages(d);
    struct pager p;

    (void)state;
    errno = 0;
    assert_int_equal(xc_mem_paging_enable(xch, d, NULL), -1);
    assert_int_equal(errno, EINVAL);            /* libxc's own check */
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0x10), -1);
    assert_int_equal(errno, ENODEV);            /* no ring yet */
    assert_int_equal(xc_mem_paging_enable(xch, 0, &port), -1);
    assert_int_equal(errno, EINVAL);            /* not on dom0 */
    assert_int_equal(xc_mem_paging_disable(xch, d), -1);
    assert_int_equal(errno, EINVAL);            /* not enabled */

    pager_start(&p, d, true);
    assert_int_equal(xc_mem_paging_enable(xch, d, &port), -1);
    assert_int_equal(errno, EBUSY);             /* one agent at a time */
    /* The ring frame left the physmap, its page is Xen's to keep. */
    assert_int_equal(tot_pages(d), before);
    assert_int_equal(xc_mem_paging_nominate(xch, d, p.ring_gfn), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    assert_int_equal(tot_pages(d), before - 1);
    assert_int_equal(xc_mem_paging_evict(xch, d, 0x10), -1);
    assert_int_equal(errno, ENODEV);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

static void test_nominate_and_evict_refuse_what_xen_refuses(void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct pager p;
    xen_pfn_t f = 0x20;
    int err = 0;
    long before;
    void *m;

    (void)state;
    pager_start(&p, d, true);
    /* Not populated: the VGA hole. */
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0xA0), -1);
    assert_int_equal(errno, EBUSY);
    /* A live foreign mapping is a reference. */
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0x20), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(xenforeignmemory_unmap(fm, m, 1), 0);
    /* Only a nominated frame is evicted. */
    assert_int_equal(xc_mem_paging_evict(xch, d, 0x20), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0x20), 0);
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0x20), -1);
    assert_int_equal(errno, EBUSY);
    /* Mapped after its nomination: the eviction fails. */
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_int_equal(err, 0);
    assert_int_equal(xc_mem_paging_evict(xch, d, 0x20), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(xenforeignmemory_unmap(fm, m, 1), 0);
    before = tot_pages(d);
    assert_int_equal(xc_mem_paging_evict(xch, d, 0x20), 0);
    assert_int_equal(tot_pages(d), before - 1);
    /* Load: a populated frame is ENOENT; without a buffer EINVAL. */
    assert_int_equal(xc_mem_paging_load(xch, d, 0x21, p.saved), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xc_mem_paging_load(xch, d, 0x20, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xc_mem_paging_prep(xch, d, 0x20), -1);
    assert_int_equal(errno, EINVAL);            /* no page, no buffer */
    memset(p.saved, 0x5a, PAGE);
    assert_int_equal(xc_mem_paging_load(xch, d, 0x20, p.saved), 0);
    assert_int_equal(tot_pages(d), before);
    assert_int_equal(xc_mem_paging_load(xch, d, 0x20, p.saved), -1);
    assert_int_equal(errno, ENOENT);            /* back already */
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_memory_equal(m, p.saved, PAGE);
    xenforeignmemory_unmap(fm, m, 1);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

struct mapper {
    uint32_t dom;
    xen_pfn_t gfn;
    int err;
    void *map;
    uint8_t page[PAGE];
    bool done;
};

static void *mapper_main(void *arg)
{
    struct mapper *m = arg;
    xenforeignmemory_handle *h = xenforeignmemory_open(NULL, 0);

    m->map = xenforeignmemory_map(h, m->dom, PROT_READ, 1, &m->gfn, &m->err);
    if (m->map && m->err == 0) {
        memcpy(m->page, m->map, PAGE);
        xenforeignmemory_unmap(h, m->map, 1);
    }
    __atomic_store_n(&m->done, true, __ATOMIC_RELEASE);
    xenforeignmemory_close(h);
    return NULL;
}

static void test_foreign_map_waits_until_the_frame_is_loaded(void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct mapper m = { .dom = d, .gfn = 0x30 };
    vm_event_request_t r;
    struct pager p;
    uint64_t g = 0x30;
    pthread_t t;

    (void)state;
    assert_int_equal(sim_guest_write(&host, d, &g, 1), 1);
    pager_start(&p, d, false);
    page_out(&p, 0x30);
    assert_int_equal(pthread_create(&t, NULL, mapper_main, &m), 0);
    r = pager_next(&p);
    /* Xen asked without pausing anyone; the mapper waits in the map. */
    assert_int_equal(r.u.mem_paging.gfn, 0x30);
    assert_int_equal(r.reason, VM_EVENT_REASON_MEM_PAGING);
    assert_int_equal(r.version, VM_EVENT_INTERFACE_VERSION);
    assert_false(r.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    assert_true(r.flags & VM_EVENT_FLAG_FOREIGN);
    assert_false(__atomic_load_n(&m.done, __ATOMIC_ACQUIRE));
    assert_int_equal(xc_mem_paging_load(xch, d, 0x30, p.saved + 0x30 * PAGE),
                     0);
    pager_respond(&p, &r);
    pthread_join(t, NULL);
    assert_int_equal(m.err, 0);
    assert_memory_equal(m.page, p.saved + 0x30 * PAGE, PAGE);
    assert_int_equal(xsim_stamp_check(m.page, 0x30, NULL), 1);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

struct writer {
    uint32_t dom;
    uint64_t gfn;
    int64_t n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    w->n = sim_guest_write(&host, w->dom, &w->gfn, 1);
    return NULL;
}

static void test_a_vcpu_waits_for_load_and_response_and_its_write_is_logged(
    void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct writer w = { .dom = d, .gfn = 0x40 };
    uint8_t *bm = calloc(1, 0x100000 / 8);
    vm_event_request_t r;
    struct pager p;
    pthread_t t;
    uint64_t gen = 0;
    xen_pfn_t f;
    int err;
    void *m;

    (void)state;
    pager_start(&p, d, false);
    page_out(&p, 0x40);
    page_out(&p, 0x41);
    assert_int_equal(xc_shadow_control(xch, d,
                                       XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                                       NULL, 0), 0);
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    r = pager_next(&p);
    assert_int_equal(r.u.mem_paging.gfn, 0x40);
    assert_true(r.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(r.vcpu_id, 0);
    assert_int_equal(r.u.mem_paging.p2mt, 10);          /* p2m_ram_paged */
    assert_int_equal(xc_mem_paging_load(xch, d, 0x40, p.saved + 0x40 * PAGE),
                     0);
    /* Loaded, not answered: the vCPU still waits (its write not done). */
    f = 0x40;
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_memory_equal(m, p.saved + 0x40 * PAGE, PAGE);
    xenforeignmemory_unmap(fm, m, 1);
    pager_respond(&p, &r);
    pthread_join(t, NULL);
    assert_int_equal(w.n, 1);
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_int_equal(xsim_stamp_check(m, 0x40, &gen), 1);
    xenforeignmemory_unmap(fm, m, 1);
    /* The write is logged; a frame loaded and not written is not. */
    assert_int_equal(xc_mem_paging_load(xch, d, 0x41, p.saved + 0x41 * PAGE),
                     0);
    {
        DECLARE_HYPERCALL_BUFFER(uint8_t, hb);

        hb = xc_hypercall_buffer_alloc_pages(xch, hb, 32);
        assert_non_null(hb);
        assert_true(xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_PEEK,
                                        HYPERCALL_BUFFER(hb), 0x100000, 0,
                                        NULL) >= 0);
        memcpy(bm, hb, 0x100000 / 8);
        xc_hypercall_buffer_free_pages(xch, hb, 32);
    }
    assert_true(sim_bit(bm, 0x40));
    assert_false(sim_bit(bm, 0x41));
    free(bm);
    xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

/*
 * Paging disabled while a vCPU waits for its response: the paused vCPU
 * waits on the ring's event channel itself (host-paging.c, the leader);
 * the disable must take the channel away from it and return, the vCPU
 * stays paused (its frame never came back), and the domain's death lets
 * it go without its write.
 */
static void test_disable_while_a_vcpu_waits_returns_and_death_frees_it(
    void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct writer w = { .dom = d, .gfn = 0x40, .n = -2 };
    vm_event_request_t r;
    struct pager p;
    pthread_t t;

    (void)state;
    pager_start(&p, d, false);
    page_out(&p, 0x40);
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    r = pager_next(&p);
    assert_int_equal(r.u.mem_paging.gfn, 0x40);
    assert_true(r.flags & VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    /* Through libxenctrl: the writer's guest-write holds the test's own
     * connection to the host until it returns. */
    assert_int_equal(xc_domain_destroy(xch, d), 0);
    pthread_join(t, NULL);
    assert_true(w.n != 1);              /* never written: never loaded */
}

static void test_a_frame_faulted_before_its_eviction_keeps_its_page(
    void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct writer w = { .dom = d, .gfn = 0x50 };
    vm_event_request_t r;
    uint8_t junk[PAGE];
    struct pager p;
    pthread_t t;
    xen_pfn_t f = 0x50;
    int err;
    void *m;

    (void)state;
    assert_int_equal(sim_guest_write(&host, d, &w.gfn, 1), 1);
    pager_start(&p, d, false);
    save(&p, 0x50);
    assert_int_equal(xc_mem_paging_nominate(xch, d, 0x50), 0);
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    r = pager_next(&p);
    assert_true(r.u.mem_paging.flags & MEM_PAGING_EVICT_FAIL);
    assert_int_equal(r.u.mem_paging.p2mt, 9);           /* paging_out */
    assert_int_equal(xc_mem_paging_evict(xch, d, 0x50), -1);
    assert_int_equal(errno, EBUSY);
    memset(junk, 0xee, sizeof(junk));
    assert_int_equal(xc_mem_paging_load(xch, d, 0x50, junk), 0);
    m = xenforeignmemory_map(fm, d, PROT_READ, 1, &f, &err);
    assert_non_null(m);
    assert_memory_equal(m, p.saved + 0x50 * PAGE, PAGE);   /* not junk */
    xenforeignmemory_unmap(fm, m, 1);
    pager_respond(&p, &r);
    pthread_join(t, NULL);
    assert_int_equal(w.n, 1);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

static void test_decreasing_a_paged_frame_drops_it(void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    vm_event_request_t r;
    struct pager p;
    xen_pfn_t f = 0x60;
    long before;

    (void)state;
    pager_start(&p, d, false);
    page_out(&p, 0x60);
    before = tot_pages(d);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, d, 1, 0, &f),
                     0);
    assert_int_equal(tot_pages(d), before);             /* no page left */
    r = pager_next(&p);
    assert_int_equal(r.u.mem_paging.gfn, 0x60);
    assert_true(r.u.mem_paging.flags & MEM_PAGING_DROP_PAGE);
    assert_int_equal(xc_mem_paging_load(xch, d, 0x60, p.saved), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

static uint64_t vcpu_writes(uint32_t d)
{
    struct xsim_dominfo i;
    uint64_t args[6] = { 1 };
    int err;

    assert_int_equal(simhost_call(&host, XSIM_OP_DOM_GETINFO, d, args, NULL,
                                  0, &i, sizeof(i), &err), 1);
    return i.vcpu_writes;
}

/*
 * The guest's working set paged out under it: the vCPUs fault, are
 * served, and run on; afterwards every frame holds what was saved or a
 * later write of the guest's own, never zeros or another frame.
 */
static void test_running_vcpus_are_served_from_a_copy(void **state)
{
    /* 1% of 64 MiB: RAM frames 0x0-0x9f and 0xc0-0xc3 */
    uint32_t d = (uint32_t)new_domain("hotset:1:40");
    uint64_t hot[0x100], nhot = 0, w0, w1, g;
    struct pager p;
    xen_pfn_t f[0x100];
    int errs[0x100];
    uint8_t *m;

    (void)state;
    for (g = 0; g < 0xc4; g++)
        if (g < 0xa0 || g >= 0xc0)
            hot[nhot++] = g;
    pager_start(&p, d, true);
    assert_int_equal(xc_domain_pause(xch, d), 0);
    for (uint64_t i = 0; i < nhot; i++)
        page_out(&p, hot[i]);
    w0 = vcpu_writes(d);
    assert_int_equal(xc_domain_unpause(xch, d), 0);
    /* Wait until the guest has faulted on 16 frames and been served. */
    pthread_mutex_lock(&p.lock);
    while (p.served < 16)
        pthread_cond_wait(&p.cond, &p.lock);
    pthread_mutex_unlock(&p.lock);
    assert_true(p.vcpu_reqs >= 16);
    /* The rest goes back without being asked for (as pg2 does). */
    pthread_mutex_lock(&p.lock);
    for (uint64_t i = 0; i < nhot; i++) {
        g = hot[i];
        if (p.have[g]) {
            int rc = xc_mem_paging_load(xch, d, g, p.saved + g * PAGE);

            /* a request may have raced us to it */
            assert_true(rc == 0 || errno == ENOENT);
            p.have[g] = false;
        }
    }
    pthread_mutex_unlock(&p.lock);
    assert_int_equal(xc_domain_pause(xch, d), 0);
    w1 = vcpu_writes(d);
    assert_true(w1 > w0);
    for (uint64_t i = 0; i < nhot; i++)
        f[i] = hot[i];
    m = xenforeignmemory_map(fm, d, PROT_READ, nhot, f, errs);
    assert_non_null(m);
    for (uint64_t i = 0; i < nhot; i++) {
        const uint8_t *pg = m + i * PAGE;
        uint64_t gen_now = 0, gen_saved = 0;

        assert_int_equal(errs[i], 0);
        if (memcmp(pg, p.saved + hot[i] * PAGE, PAGE) == 0)
            continue;
        /* rewritten: a stamp of its own frame, newer than the copy */
        assert_int_equal(xsim_stamp_check(pg, hot[i], &gen_now), 1);
        if (xsim_stamp_check(p.saved + hot[i] * PAGE, hot[i], &gen_saved) == 1)
            assert_true(gen_now > gen_saved);
    }
    xenforeignmemory_unmap(fm, m, nhot);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    assert_int_equal(xc_domain_unpause(xch, d), 0);
    pager_stop(&p);
    assert_int_equal(sim_destroy(&host, d), 0);
}

/* Disable does not wait for paged-out frames (Xen does not); a mapping of
 * one then waits for ever, until the domain goes, and keeps -ENOENT. */
static void test_a_frame_that_never_comes_back_stays_enoent(void **state)
{
    uint32_t d = (uint32_t)new_domain("idle");
    struct mapper m = { .dom = d, .gfn = 0x70 };
    struct pager p;
    pthread_t t;

    (void)state;
    pager_start(&p, d, false);
    page_out(&p, 0x70);
    assert_int_equal(xc_mem_paging_disable(xch, d), 0);
    assert_int_equal(xc_mem_paging_load(xch, d, 0x70, p.saved), -1);
    assert_int_equal(errno, ENODEV);
    assert_int_equal(pthread_create(&t, NULL, mapper_main, &m), 0);
    /* Its request finds no ring: Xen crashes the domain, and the mapper
     * goes on retrying. */
    for (;;) {
        xc_dominfo_t info;

        assert_int_equal(xc_domain_getinfo(xch, d, 1, &info), 1);
        if (info.crashed)
            break;
        sched_yield();
    }
    assert_false(__atomic_load_n(&m.done, __ATOMIC_ACQUIRE));
    assert_int_equal(sim_destroy(&host, d), 0);
    pthread_join(t, NULL);
    assert_non_null(m.map);
    assert_int_equal(m.err, -ENOENT);
    pager_stop(&p);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enable_follows_vm_event_enable),
        cmocka_unit_test(test_nominate_and_evict_refuse_what_xen_refuses),
        cmocka_unit_test(test_foreign_map_waits_until_the_frame_is_loaded),
        cmocka_unit_test(
            test_a_vcpu_waits_for_load_and_response_and_its_write_is_logged),
        cmocka_unit_test(
            test_disable_while_a_vcpu_waits_returns_and_death_frees_it),
        cmocka_unit_test(
            test_a_frame_faulted_before_its_eviction_keeps_its_page),
        cmocka_unit_test(test_decreasing_a_paged_frame_drops_it),
        cmocka_unit_test(test_running_vcpus_are_served_from_a_copy),
        cmocka_unit_test(test_a_frame_that_never_comes_back_stays_enoent),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
