/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxenctrl.c - stand-in for Debian's libxenctrl.so.4.17 on the simulated
 * host.  Same soname, same symbol version (VERS_4.17.0), the prototypes of
 * /usr/include/xenctrl.h; every call becomes one request to the xensim
 * daemon (proto.h) and fails the way libxc fails: -1 with errno.
 *
 * Covered: the interface, domain info, pause/unpause/destroy/shutdown,
 * memory (populate, decrease reservation, max memory, maximum gpfn), HVM
 * params, HVM context (get/set), credit2 scheduling parameters and the
 * scheduler id, log-dirty (xc_shadow_control, xc_logdirty_control),
 * memory paging (xc_mem_paging_*, xc_vm_event_control for the paging
 * ring), hypercall buffers, version, error reporting.  See docs/simulator.md for the list
 * and for what differs from real Xen.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/version.h>
#include <xen/vm_event.h>

#include "xen/sim/stub.h"

struct hbuf {
    void *p;
    size_t len;
    struct hbuf *next;
};

struct xc_interface_core {
    struct xsim_handle h;
    pthread_mutex_t buf_lock;
    struct hbuf *bufs;
    xc_error last_error;
};

/* Use with set_xen_guest_handle in place of NULL. */
xc_hypercall_buffer_t XC__HYPERCALL_BUFFER_NAME(HYPERCALL_BUFFER_NULL) = {
    .hbuf = NULL,
    .param_shadow = NULL,
    HYPERCALL_BUFFER_INIT_NO_BOUNCE
};

/*
 * xentoolcore_restrict_all(): libxc's xencall handle is restricted by
 * dup2()ing /dev/null over its fd, which makes the whole xc_interface
 * useless; so here.
 */
static int xc_restrict_cb(struct xsim_tc_handle *ah, uint32_t domid)
{
    struct xsim_handle *h = (struct xsim_handle *)ah;

    (void)domid;
    h->invalidated = true;
    return 0;
}

xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    struct xc_interface_core *xch = calloc(1, sizeof(*xch));

    (void)logger;
    (void)dombuild_logger;
    if (!xch)
        return NULL;
    pthread_mutex_init(&xch->buf_lock, NULL);
    if (open_flags & XC_OPENFLAG_DUMMY) {
        pthread_mutex_init(&xch->h.lock, NULL);
        xch->h.fd = -1;
        xch->h.lib = "xenctrl";
        xch->h.restricted = XSIM_DOMID_NONE;
        return xch;
    }
    if (xsim_handle_open(&xch->h, "xenctrl", xc_restrict_cb) < 0) {
        int e = errno;

        pthread_mutex_destroy(&xch->buf_lock);
        free(xch);
        errno = e;
        return NULL;
    }
    /* Its connection holds no state: concurrent callers may use more. */
    xch->h.pooled = true;
    return xch;
}

int xc_interface_close(xc_interface *xch)
{
    struct hbuf *b, *n;

    if (!xch)
        return 0;
    if (xch->h.tc.restrict_callback)
        xsim_handle_close(&xch->h);
    for (b = xch->bufs; b; b = n) {
        n = b->next;
        munmap(b->p, b->len);
        free(b);
    }
    pthread_mutex_destroy(&xch->buf_lock);
    free(xch);
    return 0;
}

/* ---- errors ------------------------------------------------------------- */

const xc_error *xc_get_last_error(xc_interface *xch)
{
    static const xc_error none = { XC_ERROR_NONE, "" };

    return xch ? &xch->last_error : &none;
}

void xc_clear_last_error(xc_interface *xch)
{
    if (xch)
        memset(&xch->last_error, 0, sizeof(xch->last_error));
}

const char *xc_error_code_to_desc(int code)
{
    switch (code) {
    case XC_ERROR_NONE:
        return "No error details";
    case XC_INTERNAL_ERROR:
        return "Internal error";
    case XC_INVALID_KERNEL:
        return "Invalid kernel";
    case XC_INVALID_PARAM:
        return "Invalid configuration";
    case XC_OUT_OF_MEMORY:
        return "Out of memory";
    }
    return "Unknown error code";
}

/* ---- calls ------------------------------------------------------------- */

static int64_t call(xc_interface *xch, uint16_t op, uint32_t domid,
                    const uint64_t args[6], const void *in, size_t inlen,
                    void *out, size_t outcap, struct xsim_rep *rep)
{
    if (!xch) {
        errno = EINVAL;
        return -1;
    }
    if (xch->h.invalidated) {
        errno = ENOTTY;
        return -1;
    }
    return xsim_handle_call(&xch->h, op, domid, args, in, inlen, out, outcap,
                            rep, NULL);
}

/* One simple domctl-like call: 0 or -1/errno. */
static int simple(xc_interface *xch, uint16_t op, uint32_t domid,
                  uint64_t a0)
{
    uint64_t args[6] = { a0 };

    return call(xch, op, domid, args, NULL, 0, NULL, 0, NULL) < 0 ? -1 : 0;
}

/* ---- domains ---------------------------------------------------------- */

static int getinfo(xc_interface *xch, uint32_t first, unsigned max,
                   struct xsim_dominfo *out)
{
    uint64_t args[6] = { max };

    return (int)call(xch, XSIM_OP_DOM_GETINFO, first, args, NULL, 0, out,
                     max * sizeof(*out), NULL);
}

static uint32_t xen_flags(const struct xsim_dominfo *i)
{
    uint32_t f = 0;

    if (i->flags & XSIM_DOMF_DYING)
        f |= XEN_DOMINF_dying;
    if (i->flags & XSIM_DOMF_HVM)
        f |= XEN_DOMINF_hvm_guest;
    if (i->flags & XSIM_DOMF_SHUTDOWN)
        f |= XEN_DOMINF_shutdown;
    if (i->flags & XSIM_DOMF_PAUSED)
        f |= XEN_DOMINF_paused;
    if (i->flags & XSIM_DOMF_BLOCKED)
        f |= XEN_DOMINF_blocked;
    if (i->flags & XSIM_DOMF_RUNNING)
        f |= XEN_DOMINF_running;
    if (i->flags & XSIM_DOMF_HAP)
        f |= XEN_DOMINF_hap;
    f |= (i->shutdown_reason & XEN_DOMINF_shutdownmask)
         << XEN_DOMINF_shutdownshift;
    return f;
}

/*
 * Walk the domains from @first in batches; @fn converts one.  Returns the
 * number converted, or -1 with errno (ESRCH when there is none at all, as
 * XEN_DOMCTL_getdomaininfo answers when no domain has an id >= @first).
 */
static int walk(xc_interface *xch, uint32_t first, unsigned max,
                void (*fn)(const struct xsim_dominfo *, void *, unsigned),
                void *out, bool esrch)
{
    struct xsim_dominfo batch[64];
    unsigned done = 0;

    if (first >= DOMID_FIRST_RESERVED) {
        if (!esrch)
            return 0;
        errno = EINVAL;
        return -1;
    }
    while (done < max) {
        unsigned want = max - done > 64 ? 64 : max - done;
        int n = getinfo(xch, first, want, batch);

        if (n < 0)
            return done ? (int)done : -1;
        for (int i = 0; i < n; i++)
            fn(&batch[i], out, done + (unsigned)i);
        done += (unsigned)n;
        if ((unsigned)n < want)
            break;
        first = batch[n - 1].domid + 1;
    }
    if (done == 0 && esrch) {
        errno = ESRCH;
        return -1;
    }
    return (int)done;
}

static void to_dominfo(const struct xsim_dominfo *s, void *out, unsigned i)
{
    xc_dominfo_t *d = (xc_dominfo_t *)out + i;
    uint32_t f = xen_flags(s);

    memset(d, 0, sizeof(*d));
    d->domid = s->domid;
    d->dying = !!(f & XEN_DOMINF_dying);
    d->shutdown = !!(f & XEN_DOMINF_shutdown);
    d->paused = !!(f & XEN_DOMINF_paused);
    d->blocked = !!(f & XEN_DOMINF_blocked);
    d->running = !!(f & XEN_DOMINF_running);
    d->hvm = !!(f & XEN_DOMINF_hvm_guest);
    d->hap = !!(f & XEN_DOMINF_hap);
    d->shutdown_reason = s->shutdown_reason;
    if (d->shutdown && d->shutdown_reason == SHUTDOWN_crash) {
        d->shutdown = 0;
        d->crashed = 1;
    }
    d->nr_pages = s->tot_pages;
    d->cpu_time = s->cpu_time_ns;
    d->max_memkb = s->max_pages << (XC_PAGE_SHIFT - 10);
    d->nr_online_vcpus = s->nr_vcpus;
    d->max_vcpu_id = s->nr_vcpus ? s->nr_vcpus - 1 : 0;
    memcpy(d->handle, s->handle, sizeof(d->handle));
    d->gpaddr_bits = XSIM_GPADDR_BITS;
    if (d->hvm)
        d->arch_config.emulation_flags = XEN_X86_EMU_ALL;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                      unsigned int max_doms, xc_dominfo_t *info)
{
    return walk(xch, first_domid, max_doms, to_dominfo, info, true);
}

static void to_domaininfo(const struct xsim_dominfo *s, void *out, unsigned i)
{
    xc_domaininfo_t *d = (xc_domaininfo_t *)out + i;

    memset(d, 0, sizeof(*d));
    d->domain = (domid_t)s->domid;
    d->flags = xen_flags(s);
    d->tot_pages = s->tot_pages;
    d->max_pages = s->max_pages;
    d->cpu_time = s->cpu_time_ns;
    d->nr_online_vcpus = s->nr_vcpus;
    d->max_vcpu_id = s->nr_vcpus ? s->nr_vcpus - 1 : 0;
    memcpy(d->handle, s->handle, sizeof(d->handle));
    d->gpaddr_bits = XSIM_GPADDR_BITS;
    if (s->flags & XSIM_DOMF_HVM)
        d->arch_config.emulation_flags = XEN_X86_EMU_ALL;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
                          unsigned int max_domains, xc_domaininfo_t *info)
{
    return walk(xch, first_domain, max_domains, to_domaininfo, info, false);
}

int xc_domain_pause(xc_interface *xch, uint32_t domid)
{
    return simple(xch, XSIM_OP_DOM_PAUSE, domid, 0);
}

int xc_domain_unpause(xc_interface *xch, uint32_t domid)
{
    return simple(xch, XSIM_OP_DOM_UNPAUSE, domid, 0);
}

int xc_domain_destroy(xc_interface *xch, uint32_t domid)
{
    return simple(xch, XSIM_OP_DOM_DESTROY, domid, 0);
}

int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason)
{
    return simple(xch, XSIM_OP_DOM_SHUTDOWN, domid, (uint64_t)reason);
}

/* Since Xen 4.12 the vCPU count is fixed at creation: only a matching
 * value is accepted. */
int xc_domain_max_vcpus(xc_interface *xch, uint32_t domid, unsigned int max)
{
    struct xsim_dominfo i;

    if (getinfo(xch, domid, 1, &i) != 1 || i.domid != domid) {
        if (errno != ENOTCONN && errno != ENOTTY)
            errno = ESRCH;
        return -1;
    }
    if (max != i.nr_vcpus) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int xc_domain_get_guest_width(xc_interface *xch, uint32_t domid,
                              unsigned int *guest_width)
{
    struct xsim_dominfo i;

    if (getinfo(xch, domid, 1, &i) != 1 || i.domid != domid) {
        if (errno != ENOTCONN && errno != ENOTTY)
            errno = ESRCH;
        return -1;
    }
    *guest_width = 8;
    return 0;
}

long xc_get_tot_pages(xc_interface *xch, uint32_t domid)
{
    xc_domaininfo_t info;

    if (xc_domain_getinfolist(xch, domid, 1, &info) != 1)
        return -1;
    return info.domain == domid ? (long)info.tot_pages : -1;
}

int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb)
{
    return simple(xch, XSIM_OP_DOM_SETMAXMEM, domid, max_memkb);
}

int xc_domain_maximum_gpfn(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    int64_t rc = call(xch, XSIM_OP_DOM_MAX_GPFN, domid, NULL, NULL, 0, NULL,
                      0, NULL);

    if (rc < 0)
        return -1;
    *gpfns = (xen_pfn_t)rc;
    return 0;
}

int xc_domain_nr_gpfns(xc_interface *xch, uint32_t domid, xen_pfn_t *gpfns)
{
    int rc = xc_domain_maximum_gpfn(xch, domid, gpfns);

    if (rc >= 0)
        *gpfns += 1;
    return rc;
}

/* ---- memory ------------------------------------------------------------- */

static int memop(xc_interface *xch, uint16_t op, uint32_t domid,
                 unsigned long nr_extents, unsigned int extent_order,
                 const xen_pfn_t *extent_start)
{
    uint64_t args[6] = { nr_extents, extent_order };

    if (nr_extents && !extent_start) {
        errno = EFAULT;
        return -1;
    }
    return (int)call(xch, op, domid, args, extent_start,
                     nr_extents * sizeof(*extent_start), NULL, 0, NULL);
}

int xc_domain_populate_physmap(xc_interface *xch, uint32_t domid,
                               unsigned long nr_extents,
                               unsigned int extent_order,
                               unsigned int mem_flags,
                               xen_pfn_t *extent_start)
{
    (void)mem_flags;
    return memop(xch, XSIM_OP_MEM_POPULATE, domid, nr_extents, extent_order,
                 extent_start);
}

int xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t domid,
                                     unsigned long nr_extents,
                                     unsigned int extent_order,
                                     unsigned int mem_flags,
                                     xen_pfn_t *extent_start)
{
    int rc = xc_domain_populate_physmap(xch, domid, nr_extents, extent_order,
                                        mem_flags, extent_start);

    if (rc >= 0 && (unsigned long)rc != nr_extents) {
        errno = EBUSY;          /* libxc's answer to a short allocation */
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

int xc_domain_decrease_reservation(xc_interface *xch, uint32_t domid,
                                   unsigned long nr_extents,
                                   unsigned int extent_order,
                                   xen_pfn_t *extent_start)
{
    return memop(xch, XSIM_OP_MEM_DECREASE, domid, nr_extents, extent_order,
                 extent_start);
}

int xc_domain_decrease_reservation_exact(xc_interface *xch, uint32_t domid,
                                         unsigned long nr_extents,
                                         unsigned int extent_order,
                                         xen_pfn_t *extent_start)
{
    int rc = xc_domain_decrease_reservation(xch, domid, nr_extents,
                                            extent_order, extent_start);

    if (rc >= 0 && (unsigned long)rc != nr_extents) {
        errno = EINVAL;         /* libxc's answer to a short release */
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* ---- HVM params ---------------------------------------------------------- */

int xc_hvm_param_set(xc_interface *xch, uint32_t dom, uint32_t param,
                     uint64_t value)
{
    uint64_t args[6] = { param, 1, value };

    return call(xch, XSIM_OP_HVM_PARAM, dom, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xc_hvm_param_get(xc_interface *xch, uint32_t dom, uint32_t param,
                     uint64_t *value)
{
    uint64_t args[6] = { param, 0 };
    struct xsim_rep rep;

    if (call(xch, XSIM_OP_HVM_PARAM, dom, args, NULL, 0, NULL, 0, &rep) < 0)
        return -1;
    *value = rep.val[0];
    return 0;
}

int xc_set_hvm_param(xc_interface *xch, uint32_t dom, int param,
                     unsigned long value)
{
    return xc_hvm_param_set(xch, dom, (uint32_t)param, value);
}

int xc_get_hvm_param(xc_interface *xch, uint32_t dom, int param,
                     unsigned long *value)
{
    uint64_t v;
    int rc = xc_hvm_param_get(xch, dom, (uint32_t)param, &v);

    if (rc == 0)
        *value = (unsigned long)v;
    return rc;
}

/* ---- HVM context ------------------------------------------------------ */

/* XEN_DOMCTL_gethvmcontext: NULL asks for the size; the size written
 * otherwise (ENOSPC when @size is below what Xen would need). */
int xc_domain_hvm_getcontext(xc_interface *xch, uint32_t domid,
                             uint8_t *ctxt_buf, uint32_t size)
{
    uint64_t args[6] = { ctxt_buf != NULL, size };
    int64_t rc = call(xch, XSIM_OP_HVM_GETCTX, domid, args, NULL, 0,
                      ctxt_buf, ctxt_buf ? size : 0, NULL);

    return rc < 0 ? -1 : (int)rc;
}

int xc_domain_hvm_setcontext(xc_interface *xch, uint32_t domid,
                             uint8_t *ctxt_buf, uint32_t size)
{
    if (!ctxt_buf && size) {
        errno = EFAULT;         /* copy_from_guest() of a NULL handle */
        return -1;
    }
    if (size > XSIM_MAX_PAYLOAD) {
        errno = ENOMEM;         /* xmalloc_bytes() of it */
        return -1;
    }
    return call(xch, XSIM_OP_HVM_SETCTX, domid, NULL, ctxt_buf, size, NULL,
                0, NULL) < 0 ? -1 : 0;
}

/* ---- scheduler (a credit2 pool, Xen 4.17's default) ------------------- */

int xc_sched_id(xc_interface *xch, int *sched_id)
{
    int64_t rc = call(xch, XSIM_OP_SCHED_ID, 0, NULL, NULL, 0, NULL, 0, NULL);

    if (rc < 0)
        return -1;
    *sched_id = (int)rc;
    return 0;
}

static int sched_dom(xc_interface *xch, uint32_t domid, uint32_t sched_id,
                     bool put, uint16_t *weight, uint16_t *cap)
{
    uint64_t args[6] = { sched_id, put, *weight, *cap };
    struct xsim_rep rep;

    if (call(xch, XSIM_OP_SCHED_DOM, domid, args, NULL, 0, NULL, 0, &rep) < 0)
        return -1;
    if (!put) {
        *weight = (uint16_t)rep.val[0];
        *cap = (uint16_t)rep.val[1];
    }
    return 0;
}

int xc_sched_credit2_domain_set(xc_interface *xch, uint32_t domid,
                                struct xen_domctl_sched_credit2 *sdom)
{
    uint16_t w = sdom->weight, c = sdom->cap;

    return sched_dom(xch, domid, XEN_SCHEDULER_CREDIT2, true, &w, &c);
}

int xc_sched_credit2_domain_get(xc_interface *xch, uint32_t domid,
                                struct xen_domctl_sched_credit2 *sdom)
{
    uint16_t w = 0, c = 0;

    if (sched_dom(xch, domid, XEN_SCHEDULER_CREDIT2, false, &w, &c) < 0)
        return -1;
    sdom->weight = w;
    sdom->cap = c;
    return 0;
}

/* The credit scheduler's calls reach a credit2 pool: sched_adjust()'s
 * EINVAL (after the domain lookup's ESRCH). */
int xc_sched_credit_domain_set(xc_interface *xch, uint32_t domid,
                               struct xen_domctl_sched_credit *sdom)
{
    uint16_t w = sdom->weight, c = sdom->cap;

    return sched_dom(xch, domid, XEN_SCHEDULER_CREDIT, true, &w, &c);
}

int xc_sched_credit_domain_get(xc_interface *xch, uint32_t domid,
                               struct xen_domctl_sched_credit *sdom)
{
    uint16_t w = 0, c = 0;

    if (sched_dom(xch, domid, XEN_SCHEDULER_CREDIT, false, &w, &c) < 0)
        return -1;
    sdom->weight = w;
    sdom->cap = c;
    return 0;
}

/* ---- log-dirty --------------------------------------------------------- */

int xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop,
                      unsigned int *mb, unsigned int mode)
{
    uint64_t args[6] = { sop, mode, 0, 0, mb ? *mb : 0 };
    struct xsim_rep rep;
    int64_t rc = call(xch, XSIM_OP_SHADOW, domid, args, NULL, 0, NULL, 0,
                      &rep);

    if (rc < 0)
        return -1;
    if (mb)
        *mb = (unsigned int)rep.val[2];
    return 0;
}

long long xc_logdirty_control(xc_interface *xch, uint32_t domid,
                              unsigned int sop,
                              xc_hypercall_buffer_t *dirty_bitmap,
                              unsigned long pages, unsigned int mode,
                              xc_shadow_op_stats_t *stats)
{
    uint8_t *bm = dirty_bitmap ? dirty_bitmap->hbuf : NULL;
    uint64_t args[6] = { sop, mode, pages, bm != NULL };
    size_t bytes = bm ? (pages + 7) / 8 : 0;
    struct xsim_rep rep;
    int64_t rc;

    memset(&rep, 0, sizeof(rep));
    rc = call(xch, XSIM_OP_SHADOW, domid, args, NULL, 0, bm, bytes, &rep);
    if (stats) {
        stats->fault_count = (uint32_t)rep.val[0];
        stats->dirty_count = (uint32_t)rep.val[1];
    }
    if (rc < 0)
        return -1;
    /* Frames beyond the simulated physical address space: never dirty. */
    if (bm && rep.len < bytes)
        memset(bm + rep.len, 0, bytes - (size_t)rep.len);
    return rc;
}

/* ---- memory paging (xc_mem_paging.c, xc_vm_event.c) -------------------- */

static int paging_op(xc_interface *xch, uint32_t domid, uint32_t op,
                     uint64_t gfn, const void *page, int64_t *ret)
{
    uint64_t args[6] = { op, gfn };
    int64_t rc = call(xch, XSIM_OP_PAGING, domid, args, page,
                      page ? XC_PAGE_SIZE : 0, NULL, 0, NULL);

    if (rc < 0)
        return -1;
    if (ret)
        *ret = rc;
    return 0;
}

/* Exported by libxc, declared only in its private xc_private.h. */
int xc_vm_event_control(xc_interface *xch, uint32_t domain_id,
                        unsigned int op, unsigned int mode, uint32_t *port);

/* XEN_DOMCTL_vm_event_op: only the paging ring is simulated. */
int xc_vm_event_control(xc_interface *xch, uint32_t domain_id,
                        unsigned int op, unsigned int mode, uint32_t *port)
{
    static const uint32_t ops[] = {
        [XEN_VM_EVENT_ENABLE] = XSIM_PAGING_ENABLE,
        [XEN_VM_EVENT_DISABLE] = XSIM_PAGING_DISABLE,
        [XEN_VM_EVENT_RESUME] = XSIM_PAGING_RESUME,
    };
    int64_t ret = 0;

    if (mode != XEN_DOMCTL_VM_EVENT_OP_PAGING) {
        errno = ENOSYS;
        return -1;
    }
    if (op >= sizeof(ops) / sizeof(ops[0]) || !ops[op]) {
        errno = ENOSYS;
        return -1;
    }
    if (paging_op(xch, domain_id, ops[op], 0, NULL, &ret) < 0)
        return -1;
    if (port && op == XEN_VM_EVENT_ENABLE)
        *port = (uint32_t)ret;
    return 0;
}

int xc_vm_event_get_version(xc_interface *xch)
{
    if (!xch) {
        errno = EINVAL;
        return -1;
    }
    return VM_EVENT_INTERFACE_VERSION;
}

int xc_mem_paging_enable(xc_interface *xch, uint32_t domain_id,
                         uint32_t *port)
{
    if (!port) {
        errno = EINVAL;
        return -1;
    }
    return xc_vm_event_control(xch, domain_id, XEN_VM_EVENT_ENABLE,
                               XEN_DOMCTL_VM_EVENT_OP_PAGING, port);
}

int xc_mem_paging_disable(xc_interface *xch, uint32_t domain_id)
{
    return xc_vm_event_control(xch, domain_id, XEN_VM_EVENT_DISABLE,
                               XEN_DOMCTL_VM_EVENT_OP_PAGING, NULL);
}

int xc_mem_paging_resume(xc_interface *xch, uint32_t domain_id)
{
    return xc_vm_event_control(xch, domain_id, XEN_VM_EVENT_RESUME,
                               XEN_DOMCTL_VM_EVENT_OP_PAGING, NULL);
}

int xc_mem_paging_nominate(xc_interface *xch, uint32_t domain_id, uint64_t gfn)
{
    return paging_op(xch, domain_id, XSIM_PAGING_NOMINATE, gfn, NULL, NULL);
}

int xc_mem_paging_evict(xc_interface *xch, uint32_t domain_id, uint64_t gfn)
{
    return paging_op(xch, domain_id, XSIM_PAGING_EVICT, gfn, NULL, NULL);
}

int xc_mem_paging_prep(xc_interface *xch, uint32_t domain_id, uint64_t gfn)
{
    return paging_op(xch, domain_id, XSIM_PAGING_PREP, gfn, NULL, NULL);
}

/* XENMEM_paging_op_prep with the page's contents. */
int xc_mem_paging_load(xc_interface *xch, uint32_t domain_id,
                       uint64_t gfn, void *buffer)
{
    if (!buffer) {
        errno = EINVAL;
        return -1;
    }
    return paging_op(xch, domain_id, XSIM_PAGING_PREP, gfn, buffer, NULL);
}

/* ---- hypercall buffers ----------------------------------------------- */

static void *buf_alloc(xc_interface *xch, size_t len)
{
    struct hbuf *b = malloc(sizeof(*b));
    void *p;

    if (!b)
        return NULL;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        free(b);
        return NULL;
    }
    b->p = p;
    b->len = len;
    pthread_mutex_lock(&xch->buf_lock);
    b->next = xch->bufs;
    xch->bufs = b;
    pthread_mutex_unlock(&xch->buf_lock);
    return p;
}

static void buf_free(xc_interface *xch, void *p)
{
    struct hbuf **pp, *b = NULL;

    if (!p)
        return;
    pthread_mutex_lock(&xch->buf_lock);
    for (pp = &xch->bufs; *pp; pp = &(*pp)->next) {
        if ((*pp)->p == p) {
            b = *pp;
            *pp = b->next;
            break;
        }
    }
    pthread_mutex_unlock(&xch->buf_lock);
    if (b) {
        munmap(b->p, b->len);
        free(b);
    }
}

void *xc__hypercall_buffer_alloc_pages(xc_interface *xch,
                                       xc_hypercall_buffer_t *b, int nr_pages)
{
    void *p;

    if (!xch || nr_pages <= 0)
        return NULL;
    p = buf_alloc(xch, (size_t)nr_pages * XC_PAGE_SIZE);
    b->hbuf = p;
    return p;
}

void xc__hypercall_buffer_free_pages(xc_interface *xch,
                                     xc_hypercall_buffer_t *b, int nr_pages)
{
    (void)nr_pages;
    if (!xch || !b)
        return;
    buf_free(xch, b->hbuf);
    b->hbuf = NULL;
}

void *xc__hypercall_buffer_alloc(xc_interface *xch, xc_hypercall_buffer_t *b,
                                 size_t size)
{
    size_t pages = (size + XC_PAGE_SIZE - 1) / XC_PAGE_SIZE;
    void *p;

    if (!xch)
        return NULL;
    p = buf_alloc(xch, (pages ? pages : 1) * XC_PAGE_SIZE);
    b->hbuf = p;
    return p;
}

void xc__hypercall_buffer_free(xc_interface *xch, xc_hypercall_buffer_t *b)
{
    if (!xch || !b)
        return;
    buf_free(xch, b->hbuf);
    b->hbuf = NULL;
}

struct xc_hypercall_buffer_array {
    unsigned n;
    void **bufs;
};

xc_hypercall_buffer_array_t *xc_hypercall_buffer_array_create(xc_interface *xch,
                                                              unsigned n)
{
    xc_hypercall_buffer_array_t *a = calloc(1, sizeof(*a));

    (void)xch;
    if (!a)
        return NULL;
    a->bufs = calloc(n ? n : 1, sizeof(*a->bufs));
    if (!a->bufs) {
        free(a);
        return NULL;
    }
    a->n = n;
    return a;
}

void *xc__hypercall_buffer_array_alloc(xc_interface *xch,
                                       xc_hypercall_buffer_array_t *array,
                                       unsigned index,
                                       xc_hypercall_buffer_t *hbuf,
                                       size_t size)
{
    void *p;

    if (index >= array->n || array->bufs[index])
        return NULL;
    p = xc__hypercall_buffer_alloc(xch, hbuf, size);
    array->bufs[index] = p;
    return p;
}

void *xc__hypercall_buffer_array_get(xc_interface *xch,
                                     xc_hypercall_buffer_array_t *array,
                                     unsigned index,
                                     xc_hypercall_buffer_t *hbuf)
{
    (void)xch;
    if (index >= array->n)
        return NULL;
    hbuf->hbuf = array->bufs[index];
    return hbuf->hbuf;
}

void xc_hypercall_buffer_array_destroy(xc_interface *xch,
                                       xc_hypercall_buffer_array_t *array)
{
    if (!array)
        return;
    for (unsigned i = 0; i < array->n; i++)
        buf_free(xch, array->bufs[i]);
    free(array->bufs);
    free(array);
}

/* Exported by libxc, declared only in its private xc_private.h. */
int xc__hypercall_bounce_pre(xc_interface *xch, xc_hypercall_buffer_t *bounce);
void xc__hypercall_bounce_post(xc_interface *xch,
                               xc_hypercall_buffer_t *bounce);

/* Bounce buffers: libxc's hypercalls copy user data into hypercall-safe
 * memory; here all memory is safe, the user buffer is used as is. */
int xc__hypercall_bounce_pre(xc_interface *xch, xc_hypercall_buffer_t *bounce)
{
    (void)xch;
    if (bounce->ubuf != (void *)-1)
        bounce->hbuf = bounce->ubuf;
    return 0;
}

void xc__hypercall_bounce_post(xc_interface *xch,
                               xc_hypercall_buffer_t *bounce)
{
    (void)xch;
    (void)bounce;
}

/* ---- version ------------------------------------------------------------- */

int xc_version(xc_interface *xch, int cmd, void *arg)
{
    if (!xch) {
        errno = EINVAL;
        return -1;
    }
    if (xch->h.invalidated) {
        errno = ENOTTY;
        return -1;
    }
    switch (cmd) {
    case XENVER_version:
        return (4 << 16) | 17;
    case XENVER_extraversion:
        snprintf(arg, sizeof(xen_extraversion_t), ".0-xensim");
        return 0;
    case XENVER_capabilities:
        snprintf(arg, sizeof(xen_capabilities_info_t),
                 "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64");
        return 0;
    case XENVER_changeset:
        snprintf(arg, sizeof(xen_changeset_info_t), "xensim");
        return 0;
    case XENVER_pagesize:
        return XC_PAGE_SIZE;
    default:
        errno = ENOSYS;
        return -1;
    }
}

int xc_physinfo(xc_interface *xch, xc_physinfo_t *info)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (!xch) {
        errno = EINVAL;
        return -1;
    }
    if (xch->h.invalidated) {
        errno = ENOTTY;
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->threads_per_core = 1;
    info->cores_per_socket = (uint32_t)(cpus > 0 ? cpus : 1);
    info->nr_cpus = info->cores_per_socket;
    info->max_cpu_id = info->nr_cpus - 1;
    info->nr_nodes = 1;
    info->max_node_id = 0;
    info->cpu_khz = 1000000;
    info->total_pages = (uint64_t)sysconf(_SC_PHYS_PAGES);
    info->free_pages = (uint64_t)sysconf(_SC_AVPHYS_PAGES);
    info->capabilities = XEN_SYSCTL_PHYSCAP_hvm | XEN_SYSCTL_PHYSCAP_hap;
    return 0;
}
