/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ioreq.c - the shared ioreq pages, the buffered ring and the event
 * channels of one ioreq server (see ioreq.h).
 *
 * The barriers pair with Xen's: ioreq_send() writes the request, then
 * (prepare_wait_on_xen_event_channel() being a barrier) the state READY;
 * wait_for_io() reads the state, then (smp_rmb) the data.  Buffered: Xen
 * writes the slot, smp_wmb, then write_pointer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xen/ioreq.h"

#include <xenevtchn.h>
#include <xen/memory.h>

#define IOREQ_PAGE_SIZE 4096u

struct XenIoreqServer {
    XenHandles *xh;
    uint32_t domid;
    ioservid_t id;
    bool created, enabled;
    unsigned int nr_vcpus;
    xenforeignmemory_resource_handle *res;
    void *pages;                        /* frame 0 buffered, frame 1 ioreq */
    buffered_iopage_t *buf;
    shared_iopage_t *shared;
    xenevtchn_handle *xce;
    evtchn_port_t buf_remote;
    int buf_local;                      /* -1: not bound */
    int *vcpu_local;                    /* per vCPU: our port, -1 none */
};

static int ioreq_errno(void)
{
    return errno > 0 ? errno : EIO;
}

/*
 * A slot's state is the low nibble of a bit-field byte (before `type`),
 * which Xen reads and writes as a whole: so do we, atomically.
 */
static uint8_t *ioreq_state_byte(ioreq_t *p)
{
    return (uint8_t *)p + offsetof(ioreq_t, type) - 1;
}

static unsigned int ioreq_state_load(ioreq_t *p)
{
    return __atomic_load_n(ioreq_state_byte(p), __ATOMIC_ACQUIRE) & 0xf;
}

/* Store @state with release order: what was written before is seen first. */
static void ioreq_state_store(ioreq_t *p, unsigned int state)
{
    uint8_t *b = ioreq_state_byte(p);
    uint8_t old = __atomic_load_n(b, __ATOMIC_RELAXED);

    __atomic_store_n(b, (uint8_t)((old & 0xf0) | state), __ATOMIC_RELEASE);
}

int xen_ioreq_server_open(XenHandles *xh, XenIoreqServer **out)
{
    XenIoreqServer *s;
    XenDomainInfo info;
    evtchn_port_t bufport = 0;
    int ret, p;

    *out = NULL;
    ret = xen_domain_info(xh, &info);
    if (ret) {
        return ret;
    }
    /* Every vCPU's slot must fit in the one ioreq page. */
    if (info.nr_vcpus == 0 ||
        info.nr_vcpus > IOREQ_PAGE_SIZE / sizeof(ioreq_t)) {
        return xen_record_failure(EINVAL, "xen_ioreq_server_open",
                                  xen_domid(xh), "%u vCPUs", info.nr_vcpus);
    }
    s = calloc(1, sizeof(*s));
    if (!s || !(s->vcpu_local = malloc(info.nr_vcpus * sizeof(int)))) {
        free(s);
        return -ENOMEM;
    }
    s->xh = xh;
    s->domid = xen_domid(xh);
    s->nr_vcpus = info.nr_vcpus;
    s->buf_local = -1;
    for (unsigned int i = 0; i < s->nr_vcpus; i++) {
        s->vcpu_local[i] = -1;
    }
    if (xendevicemodel_create_ioreq_server(xen_dmod(xh), s->domid,
                                           HVM_IOREQSRV_BUFIOREQ_ATOMIC,
                                           &s->id) < 0) {
        ret = xen_record_failure(ioreq_errno(),
                                 "xendevicemodel_create_ioreq_server",
                                 s->domid, "bufioreq atomic");
        goto fail;
    }
    s->created = true;
    /* No gfns: asking for them would map the legacy pages into the guest. */
    if (xendevicemodel_get_ioreq_server_info(xen_dmod(xh), s->domid, s->id,
                                             NULL, NULL, &bufport) < 0) {
        ret = xen_record_failure(ioreq_errno(),
                                 "xendevicemodel_get_ioreq_server_info",
                                 s->domid, "server %u", (unsigned int)s->id);
        goto fail;
    }
    s->buf_remote = bufport;
    s->res = xenforeignmemory_map_resource(
        xen_fmem(xh), s->domid, XENMEM_resource_ioreq_server, s->id,
        XENMEM_resource_ioreq_server_frame_bufioreq, 2, &s->pages,
        PROT_READ | PROT_WRITE, 0);
    if (!s->res) {
        ret = xen_record_failure(ioreq_errno(),
                                 "xenforeignmemory_map_resource", s->domid,
                                 "ioreq server %u, frames 0-1",
                                 (unsigned int)s->id);
        goto fail;
    }
    s->buf = s->pages;
    s->shared = (shared_iopage_t *)((uint8_t *)s->pages + IOREQ_PAGE_SIZE);
    s->xce = xenevtchn_open(NULL, 0);
    if (!s->xce) {
        ret = xen_record_failure(ioreq_errno(), "xenevtchn_open", s->domid,
                                 NULL);
        goto fail;
    }
    p = xenevtchn_bind_interdomain(s->xce, s->domid, s->buf_remote);
    if (p < 0) {
        ret = xen_record_failure(ioreq_errno(), "xenevtchn_bind_interdomain",
                                 s->domid, "buffered ioreq port %u",
                                 (unsigned int)s->buf_remote);
        goto fail;
    }
    s->buf_local = p;
    *out = s;
    return 0;

fail:
    xen_ioreq_server_close(s);
    return ret;
}

int xen_ioreq_server_enable(XenIoreqServer *s)
{
    int ret;

    if (xendevicemodel_set_ioreq_server_state(xen_dmod(s->xh), s->domid,
                                              s->id, 1) < 0) {
        return xen_record_failure(ioreq_errno(),
                                  "xendevicemodel_set_ioreq_server_state",
                                  s->domid, "server %u, enabled",
                                  (unsigned int)s->id);
    }
    s->enabled = true;
    for (unsigned int i = 0; i < s->nr_vcpus; i++) {
        /* Xen wrote it when the server was enabled. */
        evtchn_port_t remote = __atomic_load_n(
            &s->shared->vcpu_ioreq[i].vp_eport, __ATOMIC_ACQUIRE);
        int p = xenevtchn_bind_interdomain(s->xce, s->domid, remote);

        if (p < 0) {
            ret = xen_record_failure(ioreq_errno(),
                                     "xenevtchn_bind_interdomain", s->domid,
                                     "vCPU %u's ioreq port %u", i,
                                     (unsigned int)remote);
            goto fail;
        }
        s->vcpu_local[i] = p;
    }
    return 0;

fail:
    xendevicemodel_set_ioreq_server_state(xen_dmod(s->xh), s->domid, s->id,
                                          0);
    s->enabled = false;
    for (unsigned int i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpu_local[i] >= 0) {
            xenevtchn_unbind(s->xce, (evtchn_port_t)s->vcpu_local[i]);
            s->vcpu_local[i] = -1;
        }
    }
    return ret;
}

int xen_ioreq_server_disable(XenIoreqServer *s)
{
    if (!s->enabled) {
        return 0;
    }
    if (xendevicemodel_set_ioreq_server_state(xen_dmod(s->xh), s->domid,
                                              s->id, 0) < 0) {
        return xen_record_failure(ioreq_errno(),
                                  "xendevicemodel_set_ioreq_server_state",
                                  s->domid, "server %u, disabled",
                                  (unsigned int)s->id);
    }
    s->enabled = false;
    return 0;
}

void xen_ioreq_server_close(XenIoreqServer *s)
{
    if (!s) {
        return;
    }
    if (s->enabled) {
        xendevicemodel_set_ioreq_server_state(xen_dmod(s->xh), s->domid,
                                              s->id, 0);
    }
    if (s->xce) {
        for (unsigned int i = 0; i < s->nr_vcpus; i++) {
            if (s->vcpu_local[i] >= 0) {
                xenevtchn_unbind(s->xce, (evtchn_port_t)s->vcpu_local[i]);
            }
        }
        if (s->buf_local >= 0) {
            xenevtchn_unbind(s->xce, (evtchn_port_t)s->buf_local);
        }
        xenevtchn_close(s->xce);
    }
    if (s->res) {
        xenforeignmemory_unmap_resource(xen_fmem(s->xh), s->res);
    }
    if (s->created) {
        xen_ioreq_server_destroy(s->xh, s->id);
    }
    free(s->vcpu_local);
    free(s);
}

ioservid_t xen_ioreq_server_id(const XenIoreqServer *s)
{
    return s->id;
}

unsigned int xen_ioreq_server_vcpus(const XenIoreqServer *s)
{
    return s->nr_vcpus;
}

int xen_ioreq_server_fd(XenIoreqServer *s)
{
    return xenevtchn_fd(s->xce);
}

int xen_ioreq_pending(XenIoreqServer *s)
{
    xenevtchn_port_or_error_t port = xenevtchn_pending(s->xce);

    if (port < 0) {
        return errno == EAGAIN ? -EAGAIN : -ioreq_errno();
    }
    xenevtchn_unmask(s->xce, (evtchn_port_t)port);
    if (port == s->buf_local) {
        return XEN_IOREQ_BUFFERED;
    }
    for (unsigned int i = 0; i < s->nr_vcpus; i++) {
        if (s->vcpu_local[i] == port) {
            return (int)i;
        }
    }
    return -ENOENT;
}

bool xen_ioreq_take(XenIoreqServer *s, unsigned int vcpu, ioreq_t *req)
{
    ioreq_t *slot;

    if (vcpu >= s->nr_vcpus) {
        return false;
    }
    slot = &s->shared->vcpu_ioreq[vcpu];
    /* Acquire: the request Xen wrote before READY is complete. */
    if (ioreq_state_load(slot) != STATE_IOREQ_READY) {
        return false;
    }
    memcpy(req, slot, sizeof(*req));
    req->state = STATE_IOREQ_INPROCESS;
    ioreq_state_store(slot, STATE_IOREQ_INPROCESS);
    return true;
}

int xen_ioreq_complete(XenIoreqServer *s, unsigned int vcpu,
                       const ioreq_t *req)
{
    ioreq_t *slot;

    if (vcpu >= s->nr_vcpus) {
        return -EINVAL;
    }
    slot = &s->shared->vcpu_ioreq[vcpu];
    __atomic_store_n(&slot->data, req->data, __ATOMIC_RELAXED);
    /* Release: the data before the state, Xen reads them in that order;
     * and both before the notification (a system call: a full barrier). */
    ioreq_state_store(slot, STATE_IORESP_READY);
    if (xenevtchn_notify(s->xce, (evtchn_port_t)s->vcpu_local[vcpu]) < 0) {
        return xen_record_failure(ioreq_errno(), "xenevtchn_notify",
                                  s->domid, "vCPU %u's port %d", vcpu,
                                  s->vcpu_local[vcpu]);
    }
    return 0;
}

int xen_ioreq_buf_next(XenIoreqServer *s, ioreq_t *req)
{
    buffered_iopage_t *pg = s->buf;
    uint32_t rp = __atomic_load_n(&pg->read_pointer, __ATOMIC_ACQUIRE);
    uint32_t wp = __atomic_load_n(&pg->write_pointer, __ATOMIC_ACQUIRE);
    buf_ioreq_t bp;
    unsigned int qw;

    if (rp == wp) {
        return 0;
    }
    if (wp - rp > IOREQ_BUFFER_SLOT_NUM) {
        /* Not a state Xen leaves: drop what is there. */
        __atomic_store_n(&pg->read_pointer, wp, __ATOMIC_RELEASE);
        return -EIO;
    }
    memcpy(&bp, &pg->buf_ioreq[rp % IOREQ_BUFFER_SLOT_NUM], sizeof(bp));
    memset(req, 0, sizeof(*req));
    req->type = bp.type;
    req->dir = bp.dir;
    req->size = 1u << bp.size;
    req->addr = bp.addr;
    req->data = bp.data;
    req->count = 1;
    req->state = STATE_IOREQ_READY;
    qw = req->size == 8;
    if (qw) {
        buf_ioreq_t hi;

        if (wp - rp < 2) {
            __atomic_store_n(&pg->read_pointer, wp, __ATOMIC_RELEASE);
            return -EIO;
        }
        memcpy(&hi, &pg->buf_ioreq[(rp + 1) % IOREQ_BUFFER_SLOT_NUM],
               sizeof(hi));
        req->data |= (uint64_t)hi.data << 32;
    }
    /* Xen may rebase both pointers meanwhile (cmpxchg): add, not store. */
    __atomic_fetch_add(&pg->read_pointer, qw + 1, __ATOMIC_RELEASE);
    return 1;
}
