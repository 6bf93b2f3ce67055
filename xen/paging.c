/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * paging.c - xenram's pager on Xen 4.17's memory paging interface (see
 * paging.h; the rules it follows and the races it closes are in
 * docs/paging.md).
 *
 * State, and who may touch it:
 *
 *   - the paged-out map: one bit per frame up to the domain's highest
 *     frame at start, in chunks of 2^18 frames (32 KiB, a GiB of guest
 *     memory) allocated when a frame of the chunk is first evicted and
 *     freed at stop.  Bits and chunk pointers are written under @lock
 *     with atomic operations, so xen_pager_is_paged_out() reads them
 *     without it.
 *   - the waiters: requests taken off the ring and not answered yet, at
 *     most the ring's size (Xen has no slot for another request until we
 *     answer one), under @lock.
 *   - the loads and evicts in flight: one node on each calling thread's
 *     stack, under @lock, so the ring thread can tell "asked for" from
 *     "on its way", and a load that finds a frame in can tell it from
 *     one half evicted.
 *   - the back ring: req_cons is the ring thread's alone; rsp_prod_pvt
 *     and the shared rsp_prod are written under @lock by whoever answers.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"
#include "xen/paging.h"

#include <xenevtchn.h>
#include <xen/hvm/params.h>
#include <xen/vm_event.h>

#define PAGER_CHUNK_SHIFT  18
#define PAGER_CHUNK_FRAMES ((uint64_t)1 << PAGER_CHUNK_SHIFT)
#define PAGER_CHUNK_LONGS  BITS_TO_LONGS(PAGER_CHUNK_FRAMES)

/* Requests Xen can have outstanding: the ring's slots. */
#define PAGER_RING_SLOTS __CONST_RING_SIZE(vm_event, XC_PAGE_SIZE)

typedef struct PagerWaiter {
    bool used;
    bool announced;             /* the fault callback has this gfn */
    uint32_t vcpu_id;
    uint32_t flags;             /* the request's VM_EVENT_FLAG_* */
    uint32_t reason;
    uint64_t gfn;
    uint64_t taken_ns;
} PagerWaiter;

/* A load or an evict in flight, on the calling thread's stack. */
typedef struct PagerLoad {
    uint64_t gfn;
    bool evict;
    struct PagerLoad *next;
} PagerLoad;

struct XenPager {
    XenHandles *xh;
    uint32_t domid;
    XenPagerFaultFn *fault;
    void *opaque;

    uint64_t ring_gfn;
    bool ring_populated;        /* we gave the ring frame its page */
    bool ring_in_physmap;       /* not removed from the guest yet */
    void *ring;                 /* our mapping of the ring page */
    bool enabled;
    xenevtchn_handle *xce;
    int local_port;             /* -1: not bound */
    int wake_fd;                /* eventfd: stop, or announce again */
    pthread_t thread;
    bool thread_started;
    bool stopping;              /* atomic */

    uint64_t nr_frames;         /* the domain's highest frame + 1 */
    uint32_t nr_vcpus;          /* the domain's vCPUs: the bound of vcpu_id */
    uint64_t nr_chunks;
    unsigned long **chunks;     /* entries atomic; set under @lock */

    pthread_mutex_t lock;
    vm_event_back_ring_t back;
    PagerWaiter waiters[PAGER_RING_SLOTS];
    PagerLoad *loads;
    bool reannounce;            /* a failed load left waiters unasked */
    bool ring_broken;
    XenPagerStats st;
};

static const uint8_t pager_zero_page[XC_PAGE_SIZE]
    __attribute__((aligned(XC_PAGE_SIZE)));

static int pager_errno(void)
{
    return errno > 0 ? errno : EIO;
}

static uint64_t pager_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the paged-out map ---------------------------------------------------- */

static unsigned long *pager_chunk(XenPager *p, uint64_t gfn)
{
    return __atomic_load_n(&p->chunks[gfn >> PAGER_CHUNK_SHIFT],
                           __ATOMIC_ACQUIRE);
}

static bool pager_test(XenPager *p, uint64_t gfn)
{
    unsigned long *c = pager_chunk(p, gfn);
    uint64_t bit = gfn & (PAGER_CHUNK_FRAMES - 1);

    return c && (__atomic_load_n(&c[BIT_WORD(bit)], __ATOMIC_RELAXED) &
                 BIT_MASK(bit));
}

/* Under @lock.  0, or -ENOMEM. */
static int pager_chunk_get_locked(XenPager *p, uint64_t gfn)
{
    unsigned long *c;

    if (pager_chunk(p, gfn)) {
        return 0;
    }
    c = calloc(PAGER_CHUNK_LONGS, sizeof(unsigned long));
    if (!c) {
        return -ENOMEM;
    }
    __atomic_store_n(&p->chunks[gfn >> PAGER_CHUNK_SHIFT], c,
                     __ATOMIC_RELEASE);
    return 0;
}

/* Under @lock, the chunk allocated.  Returns the bit's old value. */
static bool pager_set_locked(XenPager *p, uint64_t gfn, bool on)
{
    unsigned long *c = pager_chunk(p, gfn);
    uint64_t bit = gfn & (PAGER_CHUNK_FRAMES - 1);
    unsigned long old;

    if (!c) {
        return false;
    }
    old = on ? __atomic_fetch_or(&c[BIT_WORD(bit)], BIT_MASK(bit),
                                 __ATOMIC_RELAXED)
             : __atomic_fetch_and(&c[BIT_WORD(bit)], ~BIT_MASK(bit),
                                  __ATOMIC_RELAXED);
    return old & BIT_MASK(bit);
}

/* ---- answers ------------------------------------------------------------- */

/*
 * Put a response on the ring, under @lock: the request's vCPU, reason and
 * gfn, and of its flags only VCPU_PAUSED (Xen acts on the others in a
 * response: emulate, set registers, ...).  Published at once: the caller
 * notifies after unlocking.
 */
static void pager_respond_locked(XenPager *p, uint32_t vcpu_id,
                                 uint32_t flags, uint32_t reason,
                                 uint64_t gfn, uint32_t paging_flags)
{
    vm_event_response_t rsp;

    memset(&rsp, 0, sizeof(rsp));
    rsp.version = VM_EVENT_INTERFACE_VERSION;
    rsp.vcpu_id = vcpu_id;
    rsp.flags = flags & VM_EVENT_FLAG_VCPU_PAUSED;
    rsp.reason = reason;
    rsp.u.mem_paging.gfn = gfn;
    rsp.u.mem_paging.flags = paging_flags;
    memcpy(RING_GET_RESPONSE(&p->back, p->back.rsp_prod_pvt), &rsp,
           sizeof(rsp));
    p->back.rsp_prod_pvt++;
    /* RING_PUSH_RESPONSES: the response before the index Xen reads. */
    __atomic_store_n(&p->back.sring->rsp_prod, p->back.rsp_prod_pvt,
                     __ATOMIC_RELEASE);
    p->st.answered++;
}

static void pager_respond_req_locked(XenPager *p,
                                     const vm_event_request_t *req,
                                     uint32_t paging_flags)
{
    pager_respond_locked(p, req->vcpu_id, req->flags, req->reason,
                         req->u.mem_paging.gfn, paging_flags);
}

/* Answer every request waiting for @gfn, under @lock; how many. */
static unsigned int pager_answer_gfn_locked(XenPager *p, uint64_t gfn,
                                            uint32_t paging_flags)
{
    uint64_t now = 0;
    unsigned int n = 0;

    for (unsigned int i = 0; i < PAGER_RING_SLOTS; i++) {
        PagerWaiter *w = &p->waiters[i];
        uint64_t t;

        if (!w->used || w->gfn != gfn) {
            continue;
        }
        if (!now) {
            now = pager_now_ns();
        }
        pager_respond_locked(p, w->vcpu_id, w->flags, w->reason, w->gfn,
                             paging_flags);
        t = now - w->taken_ns;
        p->st.waited++;
        p->st.wait_ns_total += t;
        p->st.wait_ns_max = MAX(p->st.wait_ns_max, t);
        w->used = false;
        n++;
    }
    return n;
}

static void pager_notify(XenPager *p)
{
    if (xenevtchn_notify(p->xce, (evtchn_port_t)p->local_port) < 0) {
        xen_record_failure(pager_errno(), "xenevtchn_notify", p->domid,
                           "paging port %d", p->local_port);
    }
}

static bool pager_in_flight_locked(XenPager *p, uint64_t gfn, bool evict)
{
    for (PagerLoad *l = p->loads; l; l = l->next) {
        if (l->gfn == gfn && l->evict == evict) {
            return true;
        }
    }
    return false;
}

static bool pager_loading_locked(XenPager *p, uint64_t gfn)
{
    return pager_in_flight_locked(p, gfn, false);
}

static void pager_flight_add(XenPager *p, PagerLoad *me)
{
    pthread_mutex_lock(&p->lock);
    me->next = p->loads;
    p->loads = me;
    pthread_mutex_unlock(&p->lock);
}

static void pager_flight_del_locked(XenPager *p, PagerLoad *me)
{
    for (PagerLoad **l = &p->loads; *l; l = &(*l)->next) {
        if (*l == me) {
            *l = me->next;
            return;
        }
    }
}

static PagerWaiter *pager_waiter_of_locked(XenPager *p, uint64_t gfn)
{
    for (unsigned int i = 0; i < PAGER_RING_SLOTS; i++) {
        if (p->waiters[i].used && p->waiters[i].gfn == gfn) {
            return &p->waiters[i];
        }
    }
    return NULL;
}

/* ---- the ring thread ---------------------------------------------------- */

typedef enum PagerAction {
    PAGER_ANSWERED,             /* answered at once */
    PAGER_QUEUED,               /* waits for a load already asked for */
    PAGER_QUEUED_VCPU,          /* the same, and names a vCPU: tell it */
    PAGER_TELL,                 /* waits; the fault callback must hear */
    PAGER_FIXUP,                /* EVICT_FAIL: prep, then answer */
} PagerAction;

/*
 * The guest vCPU a request's @flags and @vcpu_id say waits, or
 * XEN_PAGER_NO_VCPU: a foreign mapper's request names its own vCPU (in
 * another domain), and an id beyond the domain's vCPUs is no vCPU of its.
 */
static uint32_t pager_fault_vcpu(const XenPager *p, uint32_t flags,
                                 uint32_t vcpu_id)
{
    return (flags & VM_EVENT_FLAG_VCPU_PAUSED) && vcpu_id < p->nr_vcpus
           ? vcpu_id : XEN_PAGER_NO_VCPU;
}

/* One request taken off the ring, under @lock: what became of it. */
static PagerAction pager_take_locked(XenPager *p,
                                     const vm_event_request_t *req,
                                     XenPagerFault *f)
{
    uint64_t gfn = req->u.mem_paging.gfn;
    PagerWaiter *w = NULL;
    bool paused = req->flags & VM_EVENT_FLAG_VCPU_PAUSED;

    p->st.requests++;
    if (paused) {
        p->st.vcpu_faults++;
        if (req->vcpu_id >= p->nr_vcpus) {
            /* Xen names current's vCPU: not a state it leaves.  Never
             * passed on as a vCPU, never used as an index. */
            p->st.bad_vcpu++;
            xen_record_failure(ERANGE, "paging ring request", p->domid,
                               "gfn 0x%" PRIx64 ": vcpu_id %" PRIu32
                               " beyond the domain's %" PRIu32 " vCPUs",
                               (uint64_t)gfn, req->vcpu_id, p->nr_vcpus);
        }
    }
    if (req->version != VM_EVENT_INTERFACE_VERSION ||
        req->reason != VM_EVENT_REASON_MEM_PAGING) {
        /*
         * Not a request this pager can read.  Answered all the same: Xen
         * gives the ring slot back only for a response.
         */
        p->st.rejected++;
        xen_record_failure(EPROTO, "paging ring request", p->domid,
                           "version %" PRIu32 " (this pager: %u), reason %"
                           PRIu32, req->version, VM_EVENT_INTERFACE_VERSION,
                           req->reason);
        pager_respond_req_locked(p, req, 0);
        return PAGER_ANSWERED;
    }
    if (gfn >= p->nr_frames) {
        /* Nothing of ours; answering resumes a vCPU Xen paused for it. */
        p->st.out_of_range++;
        xen_record_failure(ERANGE, "paging ring request", p->domid,
                           "gfn 0x%" PRIx64 " beyond the last frame 0x%"
                           PRIx64, gfn, p->nr_frames - 1);
        pager_respond_req_locked(p, req, 0);
        return PAGER_ANSWERED;
    }
    if (req->u.mem_paging.flags & MEM_PAGING_DROP_PAGE) {
        /* The guest gave the frame back: nothing left to load. */
        if (pager_set_locked(p, gfn, false)) {
            p->st.paged_out--;
        }
        p->st.dropped++;
        pager_answer_gfn_locked(p, gfn, MEM_PAGING_DROP_PAGE);
        pager_respond_req_locked(p, req, MEM_PAGING_DROP_PAGE);
        return PAGER_ANSWERED;
    }
    /*
     * EVICT_FAIL: the fault caught the frame between nomination and
     * eviction; it still has its page, in p2m_ram_paging_in.  Only a prep
     * makes it present for everyone (the response acts for a paused vCPU
     * only, and a foreign mapper would retry forever): xenram's evict
     * then fails with EBUSY.
     */
    if (req->u.mem_paging.flags & MEM_PAGING_EVICT_FAIL) {
        return PAGER_FIXUP;
    }
    /* Not paged out: present again, loaded after Xen's request. */
    if (!pager_test(p, gfn)) {
        pager_respond_req_locked(p, req, 0);
        return PAGER_ANSWERED;
    }
    for (unsigned int i = 0; i < PAGER_RING_SLOTS; i++) {
        if (!p->waiters[i].used) {
            w = &p->waiters[i];
            break;
        }
    }
    if (!w) {
        /* More than Xen can have outstanding: not a ring Xen keeps. */
        p->st.rejected++;
        xen_record_failure(EOVERFLOW, "paging ring request", p->domid,
                           "gfn 0x%" PRIx64 ": more than %u requests "
                           "outstanding", gfn, (unsigned)PAGER_RING_SLOTS);
        pager_respond_req_locked(p, req, 0);
        return PAGER_ANSWERED;
    }
    {
        PagerWaiter *other = pager_waiter_of_locked(p, gfn);
        bool tell = !other && !pager_loading_locked(p, gfn);

        *w = (PagerWaiter){
            .used = true,
            /* A frame already asked for, or on its way, is not asked again. */
            .announced = other ? other->announced : tell,
            .vcpu_id = req->vcpu_id,
            .flags = req->flags,
            .reason = req->reason,
            .gfn = gfn,
            .taken_ns = pager_now_ns(),
        };
        f->gfn = gfn;
        f->vcpu = pager_fault_vcpu(p, req->flags, req->vcpu_id);
        f->ask = tell;
        if (!tell) {
            /* Asked for already: only a vCPU that waits is news. */
            return f->vcpu != XEN_PAGER_NO_VCPU ? PAGER_QUEUED_VCPU
                                                : PAGER_QUEUED;
        }
        return PAGER_TELL;
    }
}

/*
 * Frames whose waiters no fault call covers (a load that was in flight
 * when they arrived failed): mark them announced, under @lock, and return
 * how many of @f to call.
 */
static unsigned int pager_reannounce_locked(XenPager *p, XenPagerFault *f)
{
    unsigned int n = 0;

    p->reannounce = false;
    for (unsigned int i = 0; i < PAGER_RING_SLOTS; i++) {
        PagerWaiter *w = &p->waiters[i];
        PagerWaiter *other;

        if (!w->used || w->announced || pager_loading_locked(p, w->gfn)) {
            continue;
        }
        other = pager_waiter_of_locked(p, w->gfn);
        if (other != w && other->announced) {
            w->announced = true;
            continue;
        }
        for (unsigned int j = i; j < PAGER_RING_SLOTS; j++) {
            if (p->waiters[j].used && p->waiters[j].gfn == w->gfn) {
                p->waiters[j].announced = true;
            }
        }
        /* The waiters' vCPUs were told as they came: only the ask is new. */
        f[n].gfn = w->gfn;
        f[n].vcpu = pager_fault_vcpu(p, w->flags, w->vcpu_id);
        f[n].ask = true;
        n++;
    }
    return n;
}

/*
 * Take every request on the ring.  The fault callback runs without @lock
 * (it may load the frame at once); responses are published as they are
 * made and notified once for the batch.
 */
static void pager_drain(XenPager *p)
{
    XenPagerFault faults[PAGER_RING_SLOTS];
    unsigned int nf;
    bool notify = false;

    pthread_mutex_lock(&p->lock);
    nf = p->reannounce ? pager_reannounce_locked(p, faults) : 0;
    while (!p->ring_broken) {
        RING_IDX prod = __atomic_load_n(&p->back.sring->req_prod,
                                        __ATOMIC_ACQUIRE);
        vm_event_request_t req;
        XenPagerFault f;

        if (RING_REQUEST_PROD_OVERFLOW(&p->back, prod)) {
            p->ring_broken = true;
            xen_record_failure(EOVERFLOW, "paging ring", p->domid,
                               "req_prod %u, req_cons %u, rsp_prod %u: the "
                               "ring is not in a state Xen leaves; no longer "
                               "served", prod, p->back.req_cons,
                               p->back.rsp_prod_pvt);
            break;
        }
        if (prod == p->back.req_cons) {
            /*
             * RING_FINAL_CHECK_FOR_REQUESTS: ask for an event at the next
             * request, then look once more, so one that arrived meanwhile
             * is not left until the next event.  Sequentially consistent
             * store then load: the store-load order xen_mb() gives there
             * (and a fence TSan understands).
             */
            __atomic_store_n(&p->back.sring->req_event, p->back.req_cons + 1,
                             __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&p->back.sring->req_prod, __ATOMIC_SEQ_CST) ==
                p->back.req_cons) {
                break;
            }
            continue;
        }
        /* The acquire above orders this copy after Xen's write of it. */
        memcpy(&req, RING_GET_REQUEST(&p->back, p->back.req_cons),
               sizeof(req));
        p->back.req_cons++;
        switch (pager_take_locked(p, &req, &f)) {
        case PAGER_ANSWERED:
            notify = true;
            break;
        case PAGER_QUEUED:
            break;
        case PAGER_QUEUED_VCPU:
        case PAGER_TELL:
            pthread_mutex_unlock(&p->lock);
            p->fault(p->opaque, &f);
            pthread_mutex_lock(&p->lock);
            break;
        case PAGER_FIXUP:
            /* A hypercall, no mapping: the page kept, the buffer unread. */
            pthread_mutex_unlock(&p->lock);
            if (xc_mem_paging_load(xen_xc(p->xh), p->domid,
                                   req.u.mem_paging.gfn,
                                   (void *)pager_zero_page) < 0 &&
                errno != ENOENT) {
                xen_record_failure(pager_errno(), "xc_mem_paging_load",
                                   p->domid, "gfn 0x%" PRIx64 ", evict "
                                   "failed", (uint64_t)req.u.mem_paging.gfn);
            }
            pthread_mutex_lock(&p->lock);
            pager_respond_req_locked(p, &req, 0);
            notify = true;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (notify) {
        pager_notify(p);
    }
    for (unsigned int i = 0; i < nf; i++) {
        p->fault(p->opaque, &faults[i]);
    }
}

static void *pager_thread(void *arg)
{
    XenPager *p = arg;
    struct pollfd fds[2] = {
        { .fd = xenevtchn_fd(p->xce), .events = POLLIN },
        { .fd = p->wake_fd, .events = POLLIN },
    };

    /* Requests that came before the thread did. */
    pager_drain(p);
    while (!__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE)) {
        int n = poll(fds, 2, -1);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            xen_record_failure(pager_errno(), "poll", p->domid,
                               "paging ring");
            break;
        }
        if (fds[1].revents & POLLIN) {
            uint64_t v;

            if (read(p->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
                xen_record_failure(pager_errno(), "read", p->domid,
                                   "paging wake eventfd");
            }
        }
        if (fds[0].revents & POLLIN) {
            xenevtchn_port_or_error_t port = xenevtchn_pending(p->xce);

            /* Unmask before draining: an event during the drain stays. */
            if (port >= 0) {
                xenevtchn_unmask(p->xce, (evtchn_port_t)port);
            }
        }
        if (__atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE)) {
            break;
        }
        pager_drain(p);
    }
    return NULL;
}

static void pager_wake(XenPager *p)
{
    uint64_t one = 1;

    if (write(p->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        xen_record_failure(pager_errno(), "write", p->domid,
                           "paging wake eventfd");
    }
}

/* ---- start and stop ------------------------------------------------------- */

/* A person reads this: what a refused enable most likely means. */
static const char *pager_enable_why(int err)
{
    switch (err) {
    case ENOSYS:
        return "the hypervisor was built without CONFIG_MEM_PAGING (postcopy "
               "on Xen needs CONFIG_UNSUPPORTED=y CONFIG_MEM_PAGING=y)";
    case EBUSY:
        return "another pager is (or was) attached to the domain";
    case ENODEV:
        return "memory paging needs hardware-assisted paging (HAP)";
    case EMLINK:
        return "memory paging is refused while the domain uses an IOMMU";
    case EXDEV:
        return "memory paging is refused for a PoD guest (memory < maxmem)";
    case EOPNOTSUPP:
        return "memory paging is refused here (no ring frame, or an HVM "
               "dom0)";
    default:
        return "could not enable memory paging";
    }
}

/* Undo whatever start did, in reverse; also the end of stop. */
static void pager_teardown(XenPager *p)
{
    if (p->thread_started) {
        __atomic_store_n(&p->stopping, true, __ATOMIC_RELEASE);
        pager_wake(p);
        pthread_join(p->thread, NULL);
        p->thread_started = false;
    }
    if (p->local_port >= 0) {
        xenevtchn_unbind(p->xce, (evtchn_port_t)p->local_port);
    }
    if (p->xce) {
        xenevtchn_close(p->xce);
    }
    if (p->enabled && xc_mem_paging_disable(xen_xc(p->xh), p->domid) < 0) {
        xen_record_failure(pager_errno(), "xc_mem_paging_disable", p->domid,
                           NULL);
    }
    if (p->ring) {
        xen_unmap(p->xh, p->ring, 1);
    }
    /* Only a page we gave the frame, and only while it is still there. */
    if (p->ring_populated && p->ring_in_physmap) {
        xen_depopulate(p->xh, p->ring_gfn, 1);
    }
    if (p->wake_fd >= 0) {
        close(p->wake_fd);
    }
    if (p->chunks) {
        for (uint64_t i = 0; i < p->nr_chunks; i++) {
            free(p->chunks[i]);
        }
        free(p->chunks);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Map the ring frame, giving it a page first if it has none. */
static int pager_map_ring(XenPager *p)
{
    xen_pfn_t g = p->ring_gfn;
    int err = 0, status, ret;

    p->ring = xen_map(p->xh, &g, 1, true, &err, &status);
    if (p->ring && !err) {
        return 0;
    }
    if (p->ring) {
        xen_unmap(p->xh, p->ring, 1);
        p->ring = NULL;
    }
    ret = xen_populate(p->xh, g, 1);
    if (ret) {
        return ret;
    }
    p->ring_populated = true;
    p->ring = xen_map(p->xh, &g, 1, true, &err, &status);
    if (p->ring && err) {
        xen_unmap(p->xh, p->ring, 1);
        p->ring = NULL;
        status = xen_record_failure(-err, "xenforeignmemory_map2", p->domid,
                                    "paging ring gfn 0x%" PRIx64,
                                    p->ring_gfn);
    }
    return p->ring ? 0 : status;
}

int xen_pager_start(XenHandles *xh, XenPagerFaultFn *fault, void *opaque,
                    XenPager **out)
{
    uint32_t domid = xen_domid(xh);
    XenPager *p;
    XenDomainInfo di;
    xen_pfn_t max_gpfn = 0;
    uint32_t port = 0;
    int ret, lp;

    *out = NULL;
    if (!fault) {
        return xen_record_failure(EINVAL, "xen_pager_start", domid,
                                  "no fault callback");
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        return xen_record_failure(ENOMEM, "xen_pager_start", domid, NULL);
    }
    p->xh = xh;
    p->domid = domid;
    p->fault = fault;
    p->opaque = opaque;
    p->local_port = -1;
    p->wake_fd = -1;
    pthread_mutex_init(&p->lock, NULL);

    /* The bound of every gfn the guest's requests may name. */
    if (xc_domain_maximum_gpfn(xen_xc(xh), domid, &max_gpfn) < 0) {
        ret = xen_record_failure(pager_errno(), "xc_domain_maximum_gpfn",
                                 domid, NULL);
        goto fail;
    }
    p->nr_frames = (uint64_t)max_gpfn + 1;
    /* The bound of every vcpu_id: the guest's vCPUs do not change. */
    ret = xen_domain_info(xh, &di);
    if (ret) {
        goto fail;
    }
    p->nr_vcpus = di.nr_vcpus;
    p->nr_chunks = DIV_ROUND_UP(p->nr_frames, PAGER_CHUNK_FRAMES);
    p->chunks = calloc(p->nr_chunks, sizeof(*p->chunks));
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!p->chunks || p->wake_fd < 0) {
        ret = xen_record_failure(p->chunks ? pager_errno() : ENOMEM,
                                 "xen_pager_start", domid,
                                 "%" PRIu64 " frames", p->nr_frames);
        goto fail;
    }
    ret = xen_hvm_param_get(xh, HVM_PARAM_PAGING_RING_PFN, &p->ring_gfn);
    if (ret) {
        goto fail;
    }
    if (p->ring_gfn == 0) {
        ret = xen_record_failure(EOPNOTSUPP, "the domain has no paging ring "
                                 "frame (HVM_PARAM_PAGING_RING_PFN is 0): "
                                 "xen_pager_start", domid, NULL);
        goto fail;
    }
    /* Until we remove it, a page given to the frame is the guest's too. */
    p->ring_in_physmap = true;
    ret = pager_map_ring(p);
    if (ret) {
        goto fail;
    }
    if (xc_mem_paging_enable(xen_xc(xh), domid, &port) < 0) {
        int e = pager_errno();
        char call[200];

        snprintf(call, sizeof(call), "%s: xc_mem_paging_enable",
                 pager_enable_why(e));
        ret = xen_record_failure(e, call, domid, NULL);
        goto fail;
    }
    p->enabled = true;
    /* After enable: a refused enable must not wipe a live pager's ring. */
    SHARED_RING_INIT((vm_event_sring_t *)p->ring);
    BACK_RING_INIT(&p->back, (vm_event_sring_t *)p->ring, XC_PAGE_SIZE);
    /*
     * Xen holds the page now (enable took a reference) and so do we: take
     * it out of the guest's physmap, where the guest could write it.
     */
    ret = xen_depopulate(xh, p->ring_gfn, 1);
    if (ret) {
        goto fail;
    }
    p->ring_in_physmap = false;
    p->xce = xenevtchn_open(NULL, 0);
    if (!p->xce) {
        ret = xen_record_failure(pager_errno(), "xenevtchn_open", domid,
                                 NULL);
        goto fail;
    }
    lp = xenevtchn_bind_interdomain(p->xce, domid, port);
    if (lp < 0) {
        ret = xen_record_failure(pager_errno(), "xenevtchn_bind_interdomain",
                                 domid, "paging port %" PRIu32, port);
        goto fail;
    }
    p->local_port = lp;
    ret = pthread_create(&p->thread, NULL, pager_thread, p);
    if (ret) {
        ret = xen_record_failure(ret, "pthread_create", domid,
                                 "paging ring thread");
        goto fail;
    }
    p->thread_started = true;
    *out = p;
    return 0;

fail:
    pager_teardown(p);
    return ret;
}

/* Populate @gfn again and zero it.  0 or -errno (the frame is left out). */
static int pager_restore_ring_frame(XenHandles *xh, uint64_t gfn)
{
    xen_pfn_t g = gfn;
    int err = 0, status = 0;
    void *m;

    if (xen_populate(xh, g, 1)) {
        return -ENOMEM;
    }
    m = xen_map(xh, &g, 1, true, &err, &status);
    if (!m || err) {
        if (m) {
            xen_unmap(xh, m, 1);
        }
        xen_depopulate(xh, g, 1);
        return err ? err : -EFAULT;
    }
    memset(m, 0, XC_PAGE_SIZE);
    xen_unmap(xh, m, 1);
    return 0;
}

int xen_pager_stop(XenPager *p, bool force)
{
    XenHandles *xh;
    uint32_t domid;
    uint64_t ring_gfn, left;
    bool give_back;

    if (!p) {
        return 0;
    }
    pthread_mutex_lock(&p->lock);
    left = p->st.paged_out;
    pthread_mutex_unlock(&p->lock);
    /*
     * Xen would let us: but a guest touching a paged-out frame with no
     * ring is crashed (p2m_mem_paging_populate).
     */
    if (left && !force) {
        return xen_record_failure(EBUSY, "xen_pager_stop", p->domid,
                                  "%" PRIu64 " frames still paged out",
                                  left);
    }
    /* Disable first, so that a refusal leaves everything as it was. */
    if (xc_mem_paging_disable(xen_xc(p->xh), p->domid) < 0) {
        return xen_record_failure(pager_errno(), "xc_mem_paging_disable",
                                  p->domid, NULL);
    }
    p->enabled = false;
    xh = p->xh;
    domid = p->domid;
    ring_gfn = p->ring_gfn;
    give_back = !p->ring_populated;
    pager_teardown(p);
    /*
     * The ring frame had a page when we came (a special page the builder
     * gave the domain, as on the source of a migration): give it one
     * again, zeroed -- a fresh page may hold what a live domain left in
     * it -- so that the guest's memory is laid out as before.
     */
    if (give_back && pager_restore_ring_frame(xh, ring_gfn) < 0) {
        return xen_record_failure(ENOMEM, "xen_pager_stop", domid,
                                  "giving the paging ring frame 0x%" PRIx64
                                  " its page back: %s", (uint64_t)ring_gfn,
                                  xen_last_error());
    }
    return 0;
}

/* ---- evict, load ------------------------------------------------------------- */

int xen_pager_evict(XenPager *p, uint64_t gfn, uint64_t nr, uint64_t *done)
{
    xc_interface *xch = xen_xc(p->xh);

    *done = 0;
    if (nr == 0 || gfn >= p->nr_frames || nr > p->nr_frames - gfn) {
        return xen_record_failure(EINVAL, "xen_pager_evict", p->domid,
                                  "gfn 0x%" PRIx64 ", %" PRIu64 " frames; "
                                  "the last frame is 0x%" PRIx64, gfn, nr,
                                  p->nr_frames - 1);
    }
    for (uint64_t g = gfn; g < gfn + nr; g++) {
        PagerLoad me = { .gfn = g, .evict = true };
        unsigned int answered = 0;
        int ret;

        pthread_mutex_lock(&p->lock);
        ret = pager_chunk_get_locked(p, g);
        pthread_mutex_unlock(&p->lock);
        if (ret) {
            return xen_record_failure(-ret, "xen_pager_evict", p->domid,
                                      "gfn 0x%" PRIx64, g);
        }
        if (xc_mem_paging_nominate(xch, p->domid, g) < 0) {
            return xen_record_failure(pager_errno(), "xc_mem_paging_nominate",
                                      p->domid, "gfn 0x%" PRIx64, g);
        }
        /*
         * Marked before the evict: a fault right after Xen evicted it
         * must find it paged out.  One before carries EVICT_FAIL.
         */
        pthread_mutex_lock(&p->lock);
        pager_set_locked(p, g, true);
        me.next = p->loads;
        p->loads = &me;
        pthread_mutex_unlock(&p->lock);
        if (xc_mem_paging_evict(xch, p->domid, g) < 0) {
            int e = pager_errno();

            pthread_mutex_lock(&p->lock);
            pager_flight_del_locked(p, &me);
            pager_set_locked(p, g, false);
            answered = pager_answer_gfn_locked(p, g, 0);
            pthread_mutex_unlock(&p->lock);
            if (answered) {
                pager_notify(p);
            }
            return xen_record_failure(e, "xc_mem_paging_evict", p->domid,
                                      "gfn 0x%" PRIx64, g);
        }
        pthread_mutex_lock(&p->lock);
        pager_flight_del_locked(p, &me);
        p->st.paged_out++;
        p->st.evicted++;
        pthread_mutex_unlock(&p->lock);
        (*done)++;
    }
    return 0;
}

int xen_pager_load(XenPager *p, uint64_t gfn, const void *data)
{
    PagerLoad me = { .gfn = gfn };
    unsigned int answered = 0;
    bool wake = false;
    int rc, e = 0;

    if (gfn >= p->nr_frames) {
        return xen_record_failure(EINVAL, "xen_pager_load", p->domid,
                                  "gfn 0x%" PRIx64 "; the last frame is 0x%"
                                  PRIx64, gfn, p->nr_frames - 1);
    }
    pager_flight_add(p, &me);

    /* The buffer is only read (bounced into Xen). */
    rc = xc_mem_paging_load(xen_xc(p->xh), p->domid, gfn,
                            (void *)(data ? data : pager_zero_page));
    if (rc < 0) {
        e = pager_errno();
    }

    pthread_mutex_lock(&p->lock);
    pager_flight_del_locked(p, &me);
    if (rc == 0 || e == ENOENT) {
        /*
         * In, by us or before us (or replaced by the guest without a drop
         * request: p2m_add_page), so whoever waits for it may go on.  A
         * frame being evicted right now is nominated, which Xen's prep
         * also answers ENOENT: it stays marked.
         */
        if (!pager_in_flight_locked(p, gfn, true) &&
            pager_set_locked(p, gfn, false)) {
            p->st.paged_out--;
        }
        if (rc == 0) {
            p->st.loaded++;
        }
        answered = pager_answer_gfn_locked(p, gfn, 0);
    } else if (!pager_loading_locked(p, gfn)) {
        /* Requests that came while we were loading were not passed on. */
        for (unsigned int i = 0; i < PAGER_RING_SLOTS; i++) {
            if (p->waiters[i].used && p->waiters[i].gfn == gfn &&
                !p->waiters[i].announced) {
                p->reannounce = wake = true;
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (answered) {
        pager_notify(p);
    }
    if (wake) {
        pager_wake(p);
    }
    if (e == ENOENT) {
        return -EEXIST;
    }
    if (rc < 0) {
        return xen_record_failure(e, "xc_mem_paging_load", p->domid,
                                  "gfn 0x%" PRIx64, gfn);
    }
    return 0;
}

bool xen_pager_is_paged_out(XenPager *p, uint64_t gfn)
{
    return gfn < p->nr_frames && pager_test(p, gfn);
}

void xen_pager_stats(XenPager *p, XenPagerStats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}
