/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-paging-fake.h - Xen 4.17's side of memory paging for the pager's
 * tests (test-paging.c, test-paging-concurrency.c), over --wrap fakes of
 * the library calls xen/xen.c and xen/paging.c make (PAGING_WRAP in
 * xen/module.mk).  Included by each test program: every function is
 * static.
 *
 * One domain (FAKE_DOMID) with FAKE_NR_VCPUS vCPUs and frames [0,
 * FAKE_NR_FRAMES), each in a p2m state as mem_paging.c keeps it (ram,
 * paging_out, paged, paging_in); the paging ring is a page of our own,
 * which the fake's front ring produces requests into (as
 * vm_event_put_request() does: the request, then
 * req_prod with release order, then the event channel) and consumes
 * responses from (as vm_event_resume() does).  Every call is logged by
 * name, and any call can be made to fail (the nth time it is made).
 * Everything is under one mutex: the pager calls in from its ring thread
 * and from loaders at once.
 */
#ifndef XENRAM_TEST_PAGING_FAKE_H
#define XENRAM_TEST_PAGING_FAKE_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "xen/paging.h"

#include <xenevtchn.h>
#include <xen/hvm/params.h>
#include <xen/vm_event.h>

#define FAKE_DOMID      7
#define FAKE_NR_FRAMES  0x100000ULL     /* max gpfn 0xfffff */
#define FAKE_RING_GFN   0xfeff8ULL
#ifndef FAKE_NR_VCPUS                   /* a test may want more */
#define FAKE_NR_VCPUS   8               /* max_vcpu_id 7 */
#endif
#define FAKE_PORT       42              /* Xen's end */
#define FAKE_LOCAL_PORT 142             /* ours */

enum { P2M_RAM, P2M_PAGING_OUT, P2M_PAGED, P2M_PAGING_IN, P2M_BUSY };

typedef struct FakeXen {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* a notify, a fault, a response */

    char calls[64][32];         /* names, in order (the first 64) */
    unsigned int ncalls;
    char fail_call[32];         /* make the nth call of this name fail */
    unsigned int fail_nth, fail_seen;
    int fail_errno;

    uint8_t *state;             /* FAKE_NR_FRAMES p2m states */
    uint64_t *content;          /* first 8 bytes of each loaded page */
    uint64_t ring_param;        /* HVM_PARAM_PAGING_RING_PFN */
    bool ring_populated;
    uint8_t *ring_page;
    int mapped;                 /* pages mapped and not unmapped */
    bool enabled;
    int evtchn_open, bound;
    int evfd;                   /* the paging port's "pending" */
    vm_event_front_ring_t front;
    unsigned int notifies;
    uint64_t loads, disables;

    /* Called inside a load / an evict of this gfn, before it completes. */
    uint64_t hook_gfn;
    void (*load_hook)(uint64_t gfn);
    void (*evict_hook)(uint64_t gfn);
} FakeXen;

static FakeXen fx;

/* Not every test program uses every helper. */
#define FAKE_FN static __attribute__((unused))

FAKE_FN void fake_reset(bool ring_populated)
{
    free(fx.state);
    free(fx.content);
    if (fx.ring_page) {
        munmap(fx.ring_page, 4096);
    }
    if (fx.evfd > 0) {
        close(fx.evfd);
    }
    memset(&fx, 0, sizeof(fx));
    pthread_mutex_init(&fx.lock, NULL);
    pthread_cond_init(&fx.cond, NULL);
    fx.state = calloc(FAKE_NR_FRAMES, 1);
    fx.content = calloc(FAKE_NR_FRAMES, sizeof(uint64_t));
    assert_non_null(fx.state);
    assert_non_null(fx.content);
    fx.ring_param = FAKE_RING_GFN;
    fx.ring_populated = ring_populated;
    fx.ring_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(fx.ring_page != MAP_FAILED);
    /* Whatever the page held before: the pager must initialise it. */
    memset(fx.ring_page, 0xa5, 4096);
    fx.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(fx.evfd >= 0);
    fx.hook_gfn = ~0ULL;
}

FAKE_FN void fake_fail(const char *call, unsigned int nth, int err)
{
    snprintf(fx.fail_call, sizeof(fx.fail_call), "%s", call);
    fx.fail_nth = nth;
    fx.fail_seen = 0;
    fx.fail_errno = err;
}

/* Log @call; true (errno set) if it is the one to fail.  Under fx.lock. */
FAKE_FN bool fake_call_locked(const char *call)
{
    if (fx.ncalls < 64) {
        snprintf(fx.calls[fx.ncalls], sizeof(fx.calls[0]), "%s", call);
    }
    fx.ncalls++;
    if (fx.fail_call[0] && !strcmp(fx.fail_call, call) &&
        ++fx.fail_seen == fx.fail_nth) {
        errno = fx.fail_errno;
        return true;
    }
    return false;
}

FAKE_FN bool fake_call(const char *call)
{
    bool f;

    pthread_mutex_lock(&fx.lock);
    f = fake_call_locked(call);
    pthread_mutex_unlock(&fx.lock);
    if (f) {
        errno = fx.fail_errno;
    }
    return f;
}

/* The calls made since the last reset, space-separated. */
FAKE_FN const char *fake_calls(void)
{
    static char buf[64 * 32];
    size_t off = 0;

    buf[0] = '\0';
    for (unsigned int i = 0; i < fx.ncalls && i < 64; i++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
                                i ? " " : "", fx.calls[i]);
    }
    return buf;
}

/* ---- Xen's side of the ring ---------------------------------------------- */

/*
 * Put a request on the ring as vm_event_put_request() does, with the p2m
 * change p2m_mem_paging_populate() makes first.  false if the ring has no
 * free slot (Xen would make the vCPU wait).  @raw: send exactly @req.
 */
FAKE_FN bool fake_put_request_raw(const vm_event_request_t *req)
{
    uint64_t one = 1;

    pthread_mutex_lock(&fx.lock);
    if (!fx.enabled || RING_FREE_REQUESTS(&fx.front) == 0) {
        pthread_mutex_unlock(&fx.lock);
        return false;
    }
    memcpy(RING_GET_REQUEST(&fx.front, fx.front.req_prod_pvt), req,
           sizeof(*req));
    fx.front.req_prod_pvt++;
    __atomic_store_n(&fx.front.sring->req_prod, fx.front.req_prod_pvt,
                     __ATOMIC_RELEASE);
    pthread_mutex_unlock(&fx.lock);
    assert_int_equal(write(fx.evfd, &one, sizeof(one)), sizeof(one));
    return true;
}

FAKE_FN bool fake_fault(uint64_t gfn, uint32_t vcpu, bool paused)
{
    vm_event_request_t req;

    memset(&req, 0, sizeof(req));
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.reason = VM_EVENT_REASON_MEM_PAGING;
    req.vcpu_id = vcpu;
    req.u.mem_paging.gfn = gfn;
    pthread_mutex_lock(&fx.lock);
    if (gfn < FAKE_NR_FRAMES) {
        req.u.mem_paging.p2mt = fx.state[gfn];
        if (fx.state[gfn] == P2M_PAGING_OUT) {
            req.u.mem_paging.flags |= MEM_PAGING_EVICT_FAIL;
        }
        if (fx.state[gfn] == P2M_PAGING_OUT || fx.state[gfn] == P2M_PAGED) {
            fx.state[gfn] = P2M_PAGING_IN;
        }
    }
    pthread_mutex_unlock(&fx.lock);
    req.flags = paused ? VM_EVENT_FLAG_VCPU_PAUSED
                       : VM_EVENT_FLAG_FOREIGN;
    return fake_put_request_raw(&req);
}

/* Take the responses published so far into @out (up to @max). */
FAKE_FN unsigned int fake_take_responses_locked(vm_event_response_t *out,
                                               unsigned int max)
{
    RING_IDX prod = __atomic_load_n(&fx.front.sring->rsp_prod,
                                    __ATOMIC_ACQUIRE);
    unsigned int n = 0;

    while (fx.front.rsp_cons != prod && n < max) {
        memcpy(&out[n++], RING_GET_RESPONSE(&fx.front, fx.front.rsp_cons),
               sizeof(*out));
        fx.front.rsp_cons++;
    }
    return n;
}

FAKE_FN void fake_deadline(struct timespec *ts, int secs)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += secs;
}

/*
 * Wait for @n responses (a broken pager fails the test after 10 s; the
 * wait itself is on the pager's notifications).
 */
FAKE_FN void fake_wait_responses(vm_event_response_t *out, unsigned int n)
{
    struct timespec dl;
    unsigned int got = 0;

    fake_deadline(&dl, 10);
    pthread_mutex_lock(&fx.lock);
    for (;;) {
        got += fake_take_responses_locked(out + got, n - got);
        if (got == n) {
            break;
        }
        if (pthread_cond_timedwait(&fx.cond, &fx.lock, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&fx.lock);
            fail_msg("%u of %u responses after 10 s", got, n);
        }
    }
    pthread_mutex_unlock(&fx.lock);
}

/* Responses published now, without waiting. */
FAKE_FN unsigned int fake_responses_now(vm_event_response_t *out,
                                       unsigned int max)
{
    unsigned int n;

    pthread_mutex_lock(&fx.lock);
    n = fake_take_responses_locked(out, max);
    pthread_mutex_unlock(&fx.lock);
    return n;
}

/* ---- the wrapped libraries -------------------------------------------------- */

#define FAKE_HANDLE ((void *)&fx)

xc_interface *__wrap_xc_interface_open(xentoollog_logger *l,
                                       xentoollog_logger *dl, unsigned f);
int __wrap_xc_interface_close(xc_interface *xch);
xenforeignmemory_handle *__wrap_xenforeignmemory_open(
    struct xentoollog_logger *l, unsigned f);
int __wrap_xenforeignmemory_close(xenforeignmemory_handle *h);
xendevicemodel_handle *__wrap_xendevicemodel_open(
    struct xentoollog_logger *l, unsigned f);
int __wrap_xendevicemodel_close(xendevicemodel_handle *h);
int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first,
                                 unsigned int max, xc_domaininfo_t *info);
void *__wrap_xenforeignmemory_map2(xenforeignmemory_handle *h, uint32_t dom,
                                   void *addr, int prot, int flags, size_t n,
                                   const xen_pfn_t arr[], int err[]);
int __wrap_xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr,
                                  size_t n);
int __wrap_xc_hvm_param_get(xc_interface *xch, uint32_t dom, uint32_t param,
                            uint64_t *value);
int __wrap_xc_domain_maximum_gpfn(xc_interface *xch, uint32_t dom,
                                  xen_pfn_t *gpfns);
int __wrap_xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t dom,
                                            unsigned long n,
                                            unsigned int order,
                                            unsigned int flags,
                                            xen_pfn_t *gfns);
int __wrap_xc_domain_decrease_reservation_exact(xc_interface *xch,
                                                uint32_t dom,
                                                unsigned long n,
                                                unsigned int order,
                                                xen_pfn_t *gfns);
int __wrap_xc_mem_paging_enable(xc_interface *xch, uint32_t dom,
                                uint32_t *port);
int __wrap_xc_mem_paging_disable(xc_interface *xch, uint32_t dom);
int __wrap_xc_mem_paging_nominate(xc_interface *xch, uint32_t dom,
                                  uint64_t gfn);
int __wrap_xc_mem_paging_evict(xc_interface *xch, uint32_t dom,
                               uint64_t gfn);
int __wrap_xc_mem_paging_load(xc_interface *xch, uint32_t dom, uint64_t gfn,
                              void *buffer);
xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *l,
                                        unsigned int flags);
int __wrap_xenevtchn_close(xenevtchn_handle *x);
int __wrap_xenevtchn_fd(xenevtchn_handle *x);
xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(
    xenevtchn_handle *x, uint32_t dom, evtchn_port_t remote);
int __wrap_xenevtchn_unbind(xenevtchn_handle *x, evtchn_port_t p);
int __wrap_xenevtchn_notify(xenevtchn_handle *x, evtchn_port_t p);
xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *x);
int __wrap_xenevtchn_unmask(xenevtchn_handle *x, evtchn_port_t p);

xc_interface *__wrap_xc_interface_open(xentoollog_logger *l,
                                       xentoollog_logger *dl, unsigned f)
{
    (void)l;
    (void)dl;
    (void)f;
    return FAKE_HANDLE;
}

int __wrap_xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

xenforeignmemory_handle *__wrap_xenforeignmemory_open(
    struct xentoollog_logger *l, unsigned f)
{
    (void)l;
    (void)f;
    return FAKE_HANDLE;
}

int __wrap_xenforeignmemory_close(xenforeignmemory_handle *h)
{
    (void)h;
    return 0;
}

xendevicemodel_handle *__wrap_xendevicemodel_open(
    struct xentoollog_logger *l, unsigned f)
{
    (void)l;
    (void)f;
    return FAKE_HANDLE;
}

int __wrap_xendevicemodel_close(xendevicemodel_handle *h)
{
    (void)h;
    return 0;
}

int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first,
                                 unsigned int max, xc_domaininfo_t *info)
{
    (void)xch;
    (void)max;
    if (first > FAKE_DOMID) {
        return 0;
    }
    memset(info, 0, sizeof(*info));
    info->domain = FAKE_DOMID;
    info->flags = XEN_DOMINF_hvm_guest;
    info->max_pages = 32768;
    info->max_vcpu_id = FAKE_NR_VCPUS - 1;
    return 1;
}

/* Only the ring frame is ever mapped by the pager. */
void *__wrap_xenforeignmemory_map2(xenforeignmemory_handle *h, uint32_t dom,
                                   void *addr, int prot, int flags, size_t n,
                                   const xen_pfn_t arr[], int err[])
{
    (void)h;
    (void)addr;
    (void)flags;
    assert_int_equal(dom, FAKE_DOMID);
    assert_int_equal(n, 1);
    assert_int_equal(arr[0], FAKE_RING_GFN);
    assert_true(prot & PROT_WRITE);
    pthread_mutex_lock(&fx.lock);
    if (fake_call_locked("map")) {
        pthread_mutex_unlock(&fx.lock);
        return NULL;
    }
    /* privcmd maps the call, and fails the frame that has no page. */
    err[0] = fx.ring_populated ? 0 : -EINVAL;
    fx.mapped++;
    pthread_mutex_unlock(&fx.lock);
    return fx.ring_page;
}

int __wrap_xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr,
                                  size_t n)
{
    (void)h;
    assert_ptr_equal(addr, fx.ring_page);
    assert_int_equal(n, 1);
    pthread_mutex_lock(&fx.lock);
    fake_call_locked("unmap");
    fx.mapped--;
    pthread_mutex_unlock(&fx.lock);
    return 0;
}

int __wrap_xc_hvm_param_get(xc_interface *xch, uint32_t dom, uint32_t param,
                            uint64_t *value)
{
    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    assert_int_equal(param, HVM_PARAM_PAGING_RING_PFN);
    if (fake_call("param")) {
        return -1;
    }
    *value = fx.ring_param;
    return 0;
}

int __wrap_xc_domain_maximum_gpfn(xc_interface *xch, uint32_t dom,
                                  xen_pfn_t *gpfns)
{
    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    if (fake_call("max_gpfn")) {
        return -1;
    }
    *gpfns = FAKE_NR_FRAMES - 1;
    return 0;
}

int __wrap_xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t dom,
                                            unsigned long n,
                                            unsigned int order,
                                            unsigned int flags,
                                            xen_pfn_t *gfns)
{
    (void)xch;
    (void)order;
    (void)flags;
    assert_int_equal(dom, FAKE_DOMID);
    assert_int_equal(n, 1);
    assert_int_equal(gfns[0], FAKE_RING_GFN);
    if (fake_call("populate")) {
        return -1;
    }
    assert_false(fx.ring_populated);    /* never over a page */
    fx.ring_populated = true;
    return 0;
}

int __wrap_xc_domain_decrease_reservation_exact(xc_interface *xch,
                                                uint32_t dom,
                                                unsigned long n,
                                                unsigned int order,
                                                xen_pfn_t *gfns)
{
    (void)xch;
    (void)order;
    assert_int_equal(dom, FAKE_DOMID);
    assert_int_equal(n, 1);
    assert_int_equal(gfns[0], FAKE_RING_GFN);
    if (fake_call("decrease")) {
        return -1;
    }
    assert_true(fx.ring_populated);
    fx.ring_populated = false;
    return 0;
}

int __wrap_xc_mem_paging_enable(xc_interface *xch, uint32_t dom,
                                uint32_t *port)
{
    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    if (fake_call("enable")) {
        return -1;
    }
    /* vm_event_enable(): prepare_ring_for_helper() needs the page. */
    assert_true(fx.ring_populated);
    assert_false(fx.enabled);
    pthread_mutex_lock(&fx.lock);
    FRONT_RING_INIT(&fx.front, (vm_event_sring_t *)fx.ring_page, 4096);
    fx.enabled = true;
    pthread_mutex_unlock(&fx.lock);
    *port = FAKE_PORT;
    return 0;
}

int __wrap_xc_mem_paging_disable(xc_interface *xch, uint32_t dom)
{
    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    if (fake_call("disable")) {
        return -1;
    }
    pthread_mutex_lock(&fx.lock);
    fx.enabled = false;
    fx.disables++;
    pthread_mutex_unlock(&fx.lock);
    return 0;
}

int __wrap_xc_mem_paging_nominate(xc_interface *xch, uint32_t dom,
                                  uint64_t gfn)
{
    int ret = 0, err = 0;

    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);

    pthread_mutex_lock(&fx.lock);
    if (fake_call_locked("nominate")) {
        err = fx.fail_errno;
    } else if (!fx.enabled) {
        err = ENODEV;
    } else if (gfn >= FAKE_NR_FRAMES || fx.state[gfn] != P2M_RAM) {
        err = EBUSY;                    /* another reference, or no page */
    } else {
        fx.state[gfn] = P2M_PAGING_OUT;
    }
    pthread_mutex_unlock(&fx.lock);
    if (err) {
        errno = err;
        ret = -1;
    }
    return ret;
}

int __wrap_xc_mem_paging_evict(xc_interface *xch, uint32_t dom,
                               uint64_t gfn)
{
    int ret = 0, err = 0;

    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    if (fx.evict_hook && gfn == fx.hook_gfn) {
        fx.evict_hook(gfn);
    }
    pthread_mutex_lock(&fx.lock);
    if (fake_call_locked("evict")) {
        err = fx.fail_errno;
    } else if (gfn >= FAKE_NR_FRAMES || fx.state[gfn] != P2M_PAGING_OUT) {
        err = EBUSY;                    /* evict(): only a nominated frame */
    } else {
        fx.state[gfn] = P2M_PAGED;
    }
    pthread_mutex_unlock(&fx.lock);
    if (err) {
        errno = err;
        ret = -1;
    }
    return ret;
}

int __wrap_xc_mem_paging_load(xc_interface *xch, uint32_t dom, uint64_t gfn,
                              void *buffer)
{
    int ret = 0, err = 0;

    (void)xch;
    assert_int_equal(dom, FAKE_DOMID);
    assert_non_null(buffer);            /* libxc refuses NULL */
    if (fx.load_hook && gfn == fx.hook_gfn) {
        fx.load_hook(gfn);
    }
    pthread_mutex_lock(&fx.lock);
    fx.loads++;
    if (fake_call_locked("load")) {
        err = fx.fail_errno;
        ret = -1;
    } else if (!fx.enabled) {
        err = ENODEV;
        ret = -1;
    } else if (gfn >= FAKE_NR_FRAMES ||
               (fx.state[gfn] != P2M_PAGED &&
                fx.state[gfn] != P2M_PAGING_IN)) {
        err = ENOENT;                   /* prepare(): not paging */
        ret = -1;
    } else {
        fx.state[gfn] = P2M_RAM;
        memcpy(&fx.content[gfn], buffer, sizeof(uint64_t));
    }
    pthread_mutex_unlock(&fx.lock);
    errno = err;
    return ret;
}

xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *l,
                                        unsigned int flags)
{
    (void)l;
    (void)flags;
    if (fake_call("evtchn_open")) {
        return NULL;
    }
    fx.evtchn_open++;
    return FAKE_HANDLE;
}

int __wrap_xenevtchn_close(xenevtchn_handle *x)
{
    (void)x;
    fake_call("evtchn_close");
    fx.evtchn_open--;
    return 0;
}

int __wrap_xenevtchn_fd(xenevtchn_handle *x)
{
    (void)x;
    return fx.evfd;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(
    xenevtchn_handle *x, uint32_t dom, evtchn_port_t remote)
{
    (void)x;
    assert_int_equal(dom, FAKE_DOMID);
    assert_int_equal(remote, FAKE_PORT);
    if (fake_call("bind")) {
        return -1;
    }
    fx.bound++;
    return FAKE_LOCAL_PORT;
}

int __wrap_xenevtchn_unbind(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    assert_int_equal(p, FAKE_LOCAL_PORT);
    fake_call("unbind");
    fx.bound--;
    return 0;
}

int __wrap_xenevtchn_notify(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    assert_int_equal(p, FAKE_LOCAL_PORT);
    pthread_mutex_lock(&fx.lock);
    fx.notifies++;
    pthread_cond_broadcast(&fx.cond);
    pthread_mutex_unlock(&fx.lock);
    return 0;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *x)
{
    uint64_t v;

    (void)x;
    if (read(fx.evfd, &v, sizeof(v)) != sizeof(v)) {
        errno = EAGAIN;
        return -1;
    }
    return FAKE_LOCAL_PORT;
}

int __wrap_xenevtchn_unmask(xenevtchn_handle *x, evtchn_port_t p)
{
    (void)x;
    assert_int_equal(p, FAKE_LOCAL_PORT);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

FAKE_FN XenHandles *fake_open(void)
{
    XenHandles *xh = NULL;
    char err[256];

    assert_int_equal(xen_open(FAKE_DOMID, XEN_OPEN_NO_XENSTORE, &xh, err,
                              sizeof(err)), 0);
    return xh;
}

/* Nothing of a pager left: no mapping, port, handle, paging. */
FAKE_FN void fake_assert_nothing_left(void)
{
    assert_int_equal(fx.mapped, 0);
    assert_int_equal(fx.bound, 0);
    assert_int_equal(fx.evtchn_open, 0);
    assert_false(fx.enabled);
}

#endif /* XENRAM_TEST_PAGING_FAKE_H */
