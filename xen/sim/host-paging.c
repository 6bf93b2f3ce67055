/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * host-paging.c - Xen 4.17's memory paging on the simulated host
 * (xen/arch/x86/mm/mem_paging.c, xen/common/vm_event.c, public/vm_event.h).
 *
 * A frame goes populated -> PAGING_OUT (nominate: no reference but the
 * domain's) -> PAGED (evict: the page is punched out of the memfd, the
 * domain's tot_pages shrinks) -> PAGING_IN (a vCPU or a foreign mapping
 * wanted it: a request on the ring) -> populated again (prep/load: a fresh
 * page with the pager's bytes; or, for a frame caught before its eviction,
 * the page it kept, at the pager's response).
 *
 * The ring is Xen's: the page of the frame HVM_PARAM_PAGING_RING_PFN names,
 * mapped here on its own (the vCPU view is for the guest's writes), with
 * the daemon as the front end (requests, version VM_EVENT_INTERFACE_VERSION)
 * and the pager as the back end.  Like prepare_ring_for_helper(), the
 * daemon holds a reference on that page: when the pager removes the frame
 * from the physmap, the page stays (and stays counted in tot_pages) until
 * paging is disabled.  The event channel is a datagram socket in the
 * namespace of the libxenevtchn stand-in, as the ioreq servers' are
 * (host-ioreq.c): the pager binds interdomain to (domid, XSIM_PAGING_PORT).
 * Xen consumes the responses inside the pager's notifying hypercall
 * (evtchn_send() calls mem_paging_notification(), which runs
 * vm_event_resume()), so a vCPU is running again when the notify returns.
 * Here a notification wakes whoever waits on the channel: a vCPU paused
 * on the ring (one of them, the leader), which takes the responses and
 * so runs at once, and the domain's paging thread, which takes them when
 * no vCPU waits (a foreign mapper's requests) and wakes the leader when
 * it was first.  xc_mem_paging_resume consumes them from the caller.
 *
 * Slots: a vCPU takes a slot before its request and waits for one when the
 * ring is full (vm_event_wait_slot); a foreign mapper does not wait: with
 * no slot it queues nothing and the mapping is retried (its frame still
 * paged), so nothing is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/hvm/params.h>
#include <xen/vm_event.h>

#include "xen/sim/host.h"
#include "xen/sim/log.h"

/* Xen's end of the paging ring's channel (any free port would do). */
#define XSIM_PAGING_PORT 8u

/* Xen's p2m_type_t numbers, as requests carry them (u.mem_paging.p2mt). */
#define P2M_RAM_PAGING_OUT 9
#define P2M_RAM_PAGED      10
#define P2M_RAM_PAGING_IN  11

static uint64_t host_paging_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}


/* ---- the vCPUs' waits ------------------------------------------------------ */

/*
 * How long each vCPU that a paging fault paused waited for its resume
 * (the fault to the response that unpaused it), for dm-state's
 * "wait-p50-us=" ...: the service time a guest sees, which the pager
 * cannot measure (it stamps the request when it reads it).  Kept beside
 * the domains (host.h's struct stays as Xen's), one table for the host,
 * an entry per domain that enabled paging (reset there); each entry is
 * written under its domain's pg->lock.
 */
#define WAIT_DOMS       16
#define WAIT_SAMPLES    (1u << 20)

static struct paging_waits {
    const struct xsim_dom *d;
    uint32_t *us;               /* the first WAIT_SAMPLES waits, in us */
    uint32_t n, cap;
    uint64_t total, max_ns;
    uint64_t sum_ns;            /* every wait's, for per-vCPU blocktime */
} waits[WAIT_DOMS];
static pthread_mutex_t waits_lock = PTHREAD_MUTEX_INITIALIZER;

static struct paging_waits *waits_of(const struct xsim_dom *d, bool reset)
{
    struct paging_waits *w = NULL;

    pthread_mutex_lock(&waits_lock);
    for (unsigned i = 0; i < WAIT_DOMS && !w; i++)
        if (waits[i].d == d)
            w = &waits[i];
    if (!w && reset) {
        /* A free entry, or the oldest one taken back. */
        static unsigned next;

        for (unsigned i = 0; i < WAIT_DOMS && !w; i++)
            if (!waits[i].d)
                w = &waits[i];
        if (!w)
            w = &waits[next++ % WAIT_DOMS];
    }
    if (w && reset) {
        free(w->us);
        memset(w, 0, sizeof(*w));
        w->d = d;
    }
    pthread_mutex_unlock(&waits_lock);
    return w;
}

/* One vCPU's wait of @ns, pg->lock held. */
static void waits_add(struct xsim_dom *d, uint64_t ns)
{
    struct paging_waits *w = waits_of(d, false);

    if (!w)
        return;
    w->total++;
    w->sum_ns += ns;
    if (ns > w->max_ns)
        w->max_ns = ns;
    if (w->n == w->cap && w->cap < WAIT_SAMPLES) {
        uint32_t cap = w->cap ? w->cap * 2 : 1024;
        uint32_t *us = realloc(w->us, cap * sizeof(*us));

        if (us) {
            w->us = us;
            w->cap = cap;
        }
    }
    if (w->n < w->cap)
        w->us[w->n++] = ns / 1000 > UINT32_MAX ? UINT32_MAX
                                               : (uint32_t)(ns / 1000);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* " wait-p50-us=.. wait-p99-us=.. wait-max-us=.. wait-total-us=..",
 * pg->lock held. */
static int waits_format(struct xsim_dom *d, char *buf, size_t len)
{
    struct paging_waits *w = waits_of(d, false);
    uint32_t p50, p99;

    if (!w || !w->n)
        return snprintf(buf, len, " waits=0");
    qsort(w->us, w->n, sizeof(*w->us), cmp_u32);
    p50 = w->us[(w->n - 1) / 2];
    p99 = w->us[(uint32_t)((uint64_t)(w->n - 1) * 99 / 100)];
    return snprintf(buf, len, " waits=%llu wait-p50-us=%u wait-p99-us=%u "
                    "wait-max-us=%llu wait-total-us=%llu",
                    (unsigned long long)w->total, p50, p99,
                    (unsigned long long)(w->max_ns / 1000),
                    (unsigned long long)(w->sum_ns / 1000));
}

/* ---- reference counts ---------------------------------------------------- */

static size_t refs_slot(const struct xsim_refs *r, uint64_t key)
{
    uint64_t h = (key + 1) * 0x9e3779b97f4a7c15ull;

    return (size_t)(h >> 20) & (r->cap - 1);
}

static int refs_grow(struct xsim_refs *r)
{
    struct xsim_refs n = { .cap = r->cap ? r->cap * 2 : 256 };

    n.keys = calloc(n.cap, sizeof(*n.keys));
    n.counts = calloc(n.cap, sizeof(*n.counts));
    if (!n.keys || !n.counts) {
        free(n.keys);
        free(n.counts);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->cap; i++) {
        size_t j;

        if (!r->keys[i])
            continue;
        for (j = refs_slot(&n, r->keys[i] - 1); n.keys[j];
             j = (j + 1) & (n.cap - 1))
            ;
        n.keys[j] = r->keys[i];
        n.counts[j] = r->counts[i];
        n.n++;
    }
    free(r->keys);
    free(r->counts);
    *r = n;
    return 0;
}

uint32_t refs_get(const struct xsim_refs *r, uint64_t key)
{
    if (!r->n)
        return 0;
    for (size_t j = refs_slot(r, key); r->keys[j]; j = (j + 1) & (r->cap - 1))
        if (r->keys[j] == key + 1)
            return r->counts[j];
    return 0;
}

/* Backward-shift deletion: linear probing needs no tombstones. */
static void refs_delete(struct xsim_refs *r, size_t j)
{
    size_t i = j;

    for (;;) {
        size_t k, home;

        r->keys[i] = 0;
        for (k = (i + 1) & (r->cap - 1);; k = (k + 1) & (r->cap - 1)) {
            if (!r->keys[k]) {
                r->n--;
                return;
            }
            home = refs_slot(r, r->keys[k] - 1);
            /* May the entry at k move to the hole at i? */
            if ((k > i && (home <= i || home > k)) ||
                (k < i && home <= i && home > k))
                break;
        }
        r->keys[i] = r->keys[k];
        r->counts[i] = r->counts[k];
        i = k;
    }
}

uint32_t refs_add(struct xsim_refs *r, uint64_t key, int delta)
{
    size_t j;

    if (delta > 0 && (r->n + 1) * 2 > r->cap && refs_grow(r))
        return refs_get(r, key);
    if (!r->cap)
        return 0;
    for (j = refs_slot(r, key); r->keys[j]; j = (j + 1) & (r->cap - 1)) {
        if (r->keys[j] != key + 1)
            continue;
        if (delta < 0 && r->counts[j] <= (uint32_t)-delta) {
            refs_delete(r, j);
            return 0;
        }
        r->counts[j] += (uint32_t)delta;
        return r->counts[j];
    }
    if (delta <= 0)
        return 0;
    r->keys[j] = key + 1;
    r->counts[j] = (uint32_t)delta;
    r->n++;
    return (uint32_t)delta;
}

void refs_fini(struct xsim_refs *r)
{
    free(r->keys);
    free(r->counts);
    memset(r, 0, sizeof(*r));
}

/* ---- the ring ----------------------------------------------------------- */

static vm_event_sring_t *sring(struct xsim_paging *pg)
{
    return pg->ring;
}

static bool p2m_has(const struct xsim_dom *d, uint64_t g)
{
    return (__atomic_load_n(&d->p2m[g / 64], __ATOMIC_RELAXED) >> (g % 64)) &
           1;
}

static void set_type(struct xsim_paging *pg, uint64_t g, enum xsim_ptype t)
{
    __atomic_store_n(&pg->type[g], (uint8_t)t, __ATOMIC_RELAXED);
}

static enum xsim_ptype get_type(const struct xsim_paging *pg, uint64_t g)
{
    return pg->type ? (enum xsim_ptype)pg->type[g] : XSIM_PT_NONE;
}

/* RING_FREE_REQUESTS less the reservations (vm_event_ring_available). */
static unsigned ring_available(struct xsim_paging *pg)
{
    unsigned used = pg->req_prod_pvt - pg->rsp_cons;
    unsigned free_req = pg->nr_ents - used;
    unsigned held = pg->target_producers + pg->foreign_producers;

    return free_req > held ? free_req - held : 0;
}

/* vm_event_grab_slot(): pg->lock held. */
static int grab_slot(struct xsim_paging *pg, bool foreign)
{
    if (!pg->ring)
        return -EOPNOTSUPP;
    if (ring_available(pg) == 0)
        return -EBUSY;
    if (foreign)
        pg->foreign_producers++;
    else
        pg->target_producers++;
    return 0;
}

static void release_slot(struct xsim_paging *pg, bool foreign)
{
    if (foreign)
        pg->foreign_producers--;
    else
        pg->target_producers--;
    pthread_cond_broadcast(&pg->cond);
}

static void notify_pager(struct xsim_dom *d)
{
    host_evtchn_notify(d->domid, XSIM_PAGING_PORT);
}

/* vm_event_put_request(), after a slot was claimed: pg->lock held. */
static void put_request(struct xsim_dom *d, vm_event_request_t *req,
                        bool foreign)
{
    struct xsim_paging *pg = &d->pg;
    vm_event_sring_t *s = sring(pg);

    if (foreign)
        req->flags |= VM_EVENT_FLAG_FOREIGN;
    req->version = VM_EVENT_INTERFACE_VERSION;
    memcpy(&s->ring[pg->req_prod_pvt & (pg->nr_ents - 1)].req, req,
           sizeof(*req));
    pg->req_prod_pvt++;
    __atomic_store_n(&s->req_prod, pg->req_prod_pvt, __ATOMIC_RELEASE);
    pg->requests++;
    release_slot(pg, foreign);
    notify_pager(d);
}

static uint32_t xen_p2mt(enum xsim_ptype t)
{
    return t == XSIM_PT_PAGING_OUT ? P2M_RAM_PAGING_OUT
         : t == XSIM_PT_PAGED      ? P2M_RAM_PAGED
                                   : P2M_RAM_PAGING_IN;
}

static bool tracked(const struct xsim_dom *d, uint64_t g)
{
    return d->logdirty ||
           (d->vram_nr && g >= d->vram_first && g < d->vram_first + d->vram_nr);
}

/*
 * p2m_mem_paging_populate() after its slot was claimed, pg->lock held:
 * move a nominated or evicted frame to PAGING_IN and queue the request.
 * A vCPU (@v) is paused on it whatever paging state the frame is in; a
 * foreign mapper only asks for a frame on the way out.  Returns whether a
 * request was queued (the slot is used or given back).
 */
static bool populate_locked(struct xsim_dom *d, uint64_t g,
                            struct xsim_vcpu *v)
{
    struct xsim_paging *pg = &d->pg;
    enum xsim_ptype t = get_type(pg, g);
    vm_event_request_t req;

    memset(&req, 0, sizeof(req));
    req.reason = VM_EVENT_REASON_MEM_PAGING;
    req.u.mem_paging.gfn = g;
    if (t == XSIM_PT_PAGING_OUT || t == XSIM_PT_PAGED) {
        if (t == XSIM_PT_PAGING_OUT)
            req.u.mem_paging.flags |= MEM_PAGING_EVICT_FAIL;
        set_type(pg, g, XSIM_PT_PAGING_IN);
    }
    if (t != XSIM_PT_NONE && v) {
        v->vm_event_pause++;
        req.flags |= VM_EVENT_FLAG_VCPU_PAUSED;
    } else if (t != XSIM_PT_PAGING_OUT && t != XSIM_PT_PAGED) {
        release_slot(pg, !v);
        return false;
    }
    req.u.mem_paging.p2mt = t == XSIM_PT_NONE ? 0 : xen_p2mt(t);
    /* A foreign request names the mapper's vCPU: dom0's vCPU 0 here. */
    req.vcpu_id = v ? v->id : 0;
    put_request(d, &req, !v);
    return true;
}

/* The frame is back: PAGING_IN with its page -> ram_rw / log-dirty. */
static void frame_back(struct xsim_dom *d, uint64_t g)
{
    set_type(&d->pg, g, XSIM_PT_NONE);
    if (tracked(d, g))
        track_protect(&d->track, g, 1, true);
}

/* vm_event_resume(): take every response, pg->lock held; how many. */
static unsigned resume_locked(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;
    vm_event_sring_t *s = sring(pg);
    unsigned n = 0;

    while (pg->ring &&
           __atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE) != pg->rsp_cons) {
        vm_event_response_t rsp;
        struct xsim_vcpu *v;

        memcpy(&rsp, &s->ring[pg->rsp_cons & (pg->nr_ents - 1)].rsp,
               sizeof(rsp));
        pg->rsp_cons++;
        s->rsp_event = pg->rsp_cons + 1;
        pg->responses++;
        n++;
        pthread_cond_broadcast(&pg->cond);      /* a slot is free */
        if (rsp.version != VM_EVENT_INTERFACE_VERSION) {
            xsim_log("(XEN) d%u: vm_event interface version mismatch",
                     d->domid);
            continue;
        }
        if (rsp.vcpu_id >= d->nr_vcpus || !d->vcpus)
            continue;
        v = &d->vcpus[rsp.vcpu_id];
        /* Flags apply only to a vCPU that vm_event paused. */
        if (!v->vm_event_pause)
            continue;
        if (rsp.reason == VM_EVENT_REASON_MEM_PAGING &&
            !(rsp.u.mem_paging.flags & MEM_PAGING_DROP_PAGE)) {
            uint64_t g = rsp.u.mem_paging.gfn;

            /* p2m_mem_paging_resume(): only a frame that has its page */
            if (g < XSIM_GFN_LIMIT && get_type(pg, g) == XSIM_PT_PAGING_IN &&
                p2m_has(d, g))
                frame_back(d, g);
        }
        if (rsp.flags & VM_EVENT_FLAG_VCPU_PAUSED)
            v->vm_event_pause--;
    }
    return n;
}

/* The channel's datagrams carry nothing: only that there is news. */
static void drain(int sock)
{
    char buf[64];

    while (recv(sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

/* Wake the leader (pg->lock held): responses taken, or the ring going. */
static void kick_leader(struct xsim_paging *pg)
{
    uint64_t one = 1;

    if (pg->leader)
        (void)!write(pg->leader_efd, &one, sizeof(one));
}

/*
 * A vCPU paused on the ring, pg->lock held: wait for its response on the
 * channel itself if no other vCPU does (and take every response then),
 * else on pg->cond for the leader's.  Returns when woken either way.
 */
static void paused_wait(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;
    struct pollfd p[2] = {
        { .fd = pg->sock, .events = POLLIN },
        { .fd = pg->leader_efd, .events = POLLIN },
    };

    if (pg->leader || !pg->ring || pg->closing || pg->sock < 0) {
        pthread_cond_wait(&pg->cond, &pg->lock);
        return;
    }
    pg->leader = true;
    pthread_mutex_unlock(&pg->lock);
    while (poll(p, 2, -1) < 0 && errno == EINTR)
        ;
    drain(p[0].fd);
    if (p[1].revents & POLLIN) {
        uint64_t n;

        (void)!read(p[1].fd, &n, sizeof(n));
    }
    pthread_mutex_lock(&pg->lock);
    pg->leader = false;
    resume_locked(d);
    /* Another paused vCPU may lead now; ring_destroy() may go on. */
    if (pg->paused > 1 || pg->closing)
        pthread_cond_broadcast(&pg->cond);
}

/* The pager's notifications: mem_paging_notification(). */
static void *paging_thread(void *arg)
{
    struct xsim_dom *d = arg;
    struct xsim_paging *pg = &d->pg;

    for (;;) {
        struct pollfd p[2] = {
            { .fd = pg->sock, .events = POLLIN },
            { .fd = pg->stop_pipe[0], .events = POLLIN },
        };

        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            break;
        drain(pg->sock);
        pthread_mutex_lock(&pg->lock);
        /* Taken before the leader (it woke too, or is about to wait):
         * it looks again. */
        if (resume_locked(d))
            kick_leader(pg);
        pthread_mutex_unlock(&pg->lock);
    }
    return NULL;
}

/* ---- lifetime ----------------------------------------------------------- */

void host_paging_setup(struct xsim_dom *d)
{
    pthread_mutex_init(&d->pg.lock, NULL);
    pthread_cond_init(&d->pg.cond, NULL);
    d->pg.sock = d->pg.stop_pipe[0] = d->pg.stop_pipe[1] = -1;
    d->pg.leader_efd = -1;
}

/* Tear the ring down (d->lock held, the waiters gone or released). */
static void ring_destroy(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;

    if (pg->thread_started) {
        (void)!write(pg->stop_pipe[1], "x", 1);
        pthread_join(pg->thread, NULL);
        pg->thread_started = false;
    }
    /* No vCPU waits on the descriptors any more (paused ones stay so,
     * on pg->cond). */
    pthread_mutex_lock(&pg->lock);
    pg->closing = true;
    kick_leader(pg);
    while (pg->leader)
        pthread_cond_wait(&pg->cond, &pg->lock);
    pthread_mutex_unlock(&pg->lock);
    if (pg->leader_efd >= 0)
        close(pg->leader_efd);
    pg->leader_efd = -1;
    for (int i = 0; i < 2; i++) {
        if (pg->stop_pipe[i] >= 0)
            close(pg->stop_pipe[i]);
        pg->stop_pipe[i] = -1;
    }
    if (pg->sock >= 0)
        close(pg->sock);
    pg->sock = -1;
    pthread_mutex_lock(&pg->lock);
    if (pg->ring)
        munmap(pg->ring, XSIM_PAGE_SIZE);
    pg->ring = NULL;
    /* destroy_ring_for_helper(): our reference was the page's last; the
     * page goes back to the heap as it is, unless the domain is dying. */
    if (pg->ring_orphan && !p2m_has(d, pg->ring_gfn)) {
        host_pool_give(d, d->memfd, pg->ring_gfn, 1);
        fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(pg->ring_gfn * XSIM_PAGE_SIZE), XSIM_PAGE_SIZE);
        d->tot_pages--;
    }
    pg->ring_orphan = false;
    pg->target_producers = pg->foreign_producers = 0;
    pg->closing = false;
    pthread_cond_broadcast(&pg->cond);
    pthread_mutex_unlock(&pg->lock);
}

void host_paging_kill(struct xsim_dom *d)
{
    pthread_mutex_lock(&d->pg.lock);
    d->pg.dying = true;
    pthread_cond_broadcast(&d->pg.cond);
    kick_leader(&d->pg);
    pthread_mutex_unlock(&d->pg.lock);
}

void host_paging_fini(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;

    ring_destroy(d);            /* vm_event_cleanup() */
    if (pg->type)
        munmap(pg->type, XSIM_GFN_LIMIT);
    pg->type = NULL;
    refs_fini(&d->fref);
    pthread_mutex_destroy(&pg->lock);
    pthread_cond_destroy(&pg->cond);
}

/* ---- XEN_DOMCTL_vm_event_op, paging mode -------------------------------- */

static long paging_enable(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;
    uint64_t g = d->hvm_param[HVM_PARAM_PAGING_RING_PFN];
    void *ring;
    int rc, sock;

    /* HVM, HAP, no IOMMU, no PoD: always so here. */
    if (pg->ring)
        return -EBUSY;          /* one agent at a time */
    if (g == 0)
        return -EOPNOTSUPP;     /* no ring gfn chosen */
    /* prepare_ring_for_helper() */
    if (g >= XSIM_GFN_LIMIT)
        return -EINVAL;
    if (get_type(pg, g) != XSIM_PT_NONE)
        return -ENOENT;
    if (!p2m_has(d, g))
        return -EINVAL;
    if (!pg->type) {
        void *t = mmap(NULL, XSIM_GFN_LIMIT, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

        if (t == MAP_FAILED)
            return -ENOMEM;
        __atomic_store_n(&pg->type, (uint8_t *)t, __ATOMIC_RELEASE);
    }
    ring = mmap(NULL, XSIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                d->memfd, (off_t)(g * XSIM_PAGE_SIZE));
    if (ring == MAP_FAILED)
        return -errno;
    sock = host_evtchn_bind(d->domid, XSIM_PAGING_PORT);
    if (sock < 0) {
        munmap(ring, XSIM_PAGE_SIZE);
        xsim_log("d%u: paging: cannot bind event channel %u: %s", d->domid,
                 XSIM_PAGING_PORT, strerror(-sock));
        return sock;
    }
    if (pipe2(pg->stop_pipe, O_CLOEXEC) < 0) {
        rc = -errno;
        close(sock);
        munmap(ring, XSIM_PAGE_SIZE);
        return rc;
    }
    pg->sock = sock;
    pg->leader_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (pg->leader_efd < 0) {
        rc = -errno;
        munmap(ring, XSIM_PAGE_SIZE);
        ring_destroy(d);        /* the channel and the pipe; no ring yet */
        return rc;
    }
    waits_of(d, true);
    pthread_mutex_lock(&pg->lock);
    pg->ring = ring;
    pg->ring_gfn = g;
    pg->ring_orphan = false;
    /* FRONT_RING_INIT: private indices only; the pager inits the page. */
    pg->req_prod_pvt = pg->rsp_cons = 0;
    pg->nr_ents = __RING_SIZE((vm_event_sring_t *)ring, XSIM_PAGE_SIZE);
    pthread_mutex_unlock(&pg->lock);
    rc = pthread_create(&pg->thread, NULL, paging_thread, d);
    if (rc) {
        ring_destroy(d);
        return -rc;
    }
    pg->thread_started = true;
    xsim_log("d%u: paging enabled, ring at gfn %#llx, port %u", d->domid,
             (unsigned long long)g, XSIM_PAGING_PORT);
    return XSIM_PAGING_PORT;
}

static long paging_disable(struct xsim_dom *d)
{
    struct xsim_paging *pg = &d->pg;

    if (!pg->ring)
        return -EINVAL;
    pthread_mutex_lock(&pg->lock);
    if (pg->waiters) {
        /* vm_event_disable(): vCPUs still wait for a slot */
        pthread_mutex_unlock(&pg->lock);
        return -EBUSY;
    }
    pthread_mutex_unlock(&pg->lock);
    ring_destroy(d);
    xsim_log("d%u: paging disabled, %llu frame(s) still paged out",
             d->domid, (unsigned long long)pg->paged_pages);
    return 0;
}

/* ---- XENMEM_paging_op ------------------------------------------------ */

static bool extra_refs(struct xsim_dom *d, uint64_t g)
{
    return refs_get(&d->fref, g) ||
           (d->pg.ring && g == d->pg.ring_gfn);
}

/* nominate(): every failure is -EBUSY. */
static long paging_nominate(struct xsim_dom *d, uint64_t g)
{
    struct xsim_paging *pg = &d->pg;
    long rc = -EBUSY;

    if (g >= XSIM_GFN_LIMIT || !p2m_has(d, g) ||
        get_type(pg, g) != XSIM_PT_NONE || extra_refs(d, g))
        return -EBUSY;
    /* From here the guest's writes fault: none may be in flight. */
    dom_quiesce(d);
    pthread_mutex_lock(&pg->lock);
    if (get_type(pg, g) == XSIM_PT_NONE) {
        set_type(pg, g, XSIM_PT_PAGING_OUT);
        rc = 0;
    }
    pthread_mutex_unlock(&pg->lock);
    dom_unquiesce(d);
    return rc;
}

/* evict(): only a nominated frame nobody mapped since; -EBUSY otherwise. */
static long paging_evict(struct xsim_dom *d, uint64_t g)
{
    struct xsim_paging *pg = &d->pg;
    long rc = -EBUSY;

    if (g >= XSIM_GFN_LIMIT || !p2m_has(d, g) || extra_refs(d, g))
        return -EBUSY;
    pthread_mutex_lock(&pg->lock);
    if (get_type(pg, g) == XSIM_PT_PAGING_OUT) {
        /* The page is scrubbed (scrub_one_page()) and freed: nothing of
         * it stays, in the host's pool either. */
        fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(g * XSIM_PAGE_SIZE), XSIM_PAGE_SIZE);
        __atomic_fetch_and(&d->p2m[g / 64], ~(1ul << (g % 64)),
                           __ATOMIC_RELAXED);
        set_type(pg, g, XSIM_PT_PAGED);
        d->tot_pages--;
        pg->paged_pages++;
        rc = 0;
    }
    pthread_mutex_unlock(&pg->lock);
    return rc;
}

/* prepare(): a fresh page with @buf, or the page a nominated frame kept. */
static long paging_prep(struct xsim_dom *d, uint64_t g, const void *buf,
                        size_t buflen)
{
    struct xsim_paging *pg = &d->pg;
    enum xsim_ptype t;
    long rc = 0;

    if (buflen && buflen != XSIM_PAGE_SIZE)
        return -EINVAL;
    if (g >= XSIM_GFN_LIMIT)
        return -ENOENT;
    pthread_mutex_lock(&pg->lock);
    t = get_type(pg, g);
    if (t != XSIM_PT_PAGING_IN && t != XSIM_PT_PAGED) {
        rc = -ENOENT;
    } else if (!p2m_has(d, g)) {
        if (!buflen) {
            rc = -EINVAL;       /* no page and nothing to put in one */
        } else if (d->tot_pages + 1 > d->max_pages) {
            rc = -ENOMEM;       /* alloc_domheap_page(): over max memory */
        } else if (pwrite(d->memfd, buf, XSIM_PAGE_SIZE,
                          (off_t)(g * XSIM_PAGE_SIZE)) != XSIM_PAGE_SIZE) {
            rc = -ENOMEM;
        } else {
            /* alloc_domheap_page(), then filled from the buffer */
            host_pool_take(d, -1, g, 1);
            d->tot_pages++;
            pg->paged_pages--;
            __atomic_fetch_or(&d->p2m[g / 64], 1ul << (g % 64),
                              __ATOMIC_RELAXED);
        }
    }
    /* Guest-accessible at once (log-dirty: logged from its next write);
     * a response still to come only resumes the vCPU. */
    if (rc == 0)
        frame_back(d, g);
    pthread_mutex_unlock(&pg->lock);
    return rc;
}

long dom_paging_op(struct xsim_dom *d, uint32_t op, uint64_t gfn,
                   const void *buf, size_t buflen)
{
    long rc;

    switch (op) {
    case XSIM_PAGING_ENABLE:
    case XSIM_PAGING_DISABLE:
    case XSIM_PAGING_RESUME:
        /* vm_event_domctl(): not on the caller's own domain */
        if (d->control)
            return -EINVAL;
        break;
    case XSIM_PAGING_NOMINATE:
    case XSIM_PAGING_EVICT:
    case XSIM_PAGING_PREP:
        /* rcu_lock_live_remote_domain_by_id() */
        if (d->control)
            return -EPERM;
        break;
    default:
        return -ENOSYS;
    }
    pthread_mutex_lock(&d->lock);
    if (op >= XSIM_PAGING_NOMINATE && !d->pg.ring) {
        rc = -ENODEV;           /* mem_paging_memop(): no ring */
        goto out;
    }
    switch (op) {
    case XSIM_PAGING_ENABLE:
        rc = paging_enable(d);
        break;
    case XSIM_PAGING_DISABLE:
        rc = paging_disable(d);
        break;
    case XSIM_PAGING_RESUME:
        pthread_mutex_lock(&d->pg.lock);
        rc = d->pg.ring ? 0 : -ENODEV;
        if (resume_locked(d))
            kick_leader(&d->pg);
        pthread_mutex_unlock(&d->pg.lock);
        break;
    case XSIM_PAGING_NOMINATE:
        rc = paging_nominate(d, gfn);
        break;
    case XSIM_PAGING_EVICT:
        rc = paging_evict(d, gfn);
        break;
    default:
        rc = paging_prep(d, gfn, buf, buflen);
        break;
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* ---- what the rest of the host sees ------------------------------------- */

void host_paging_fault(struct xsim_vcpu *v, uint64_t gfn)
{
    struct xsim_dom *d = v->dom;
    struct xsim_paging *pg = &d->pg;
    bool crash = false;

    pthread_mutex_lock(&pg->lock);
    if (!pg->ring) {
        /* "paging gfn yet no ring in place": the domain is crashed */
        crash = get_type(pg, gfn) != XSIM_PT_NONE && !pg->dying;
        goto out;
    }
    /* vm_event_wait_slot(): a guest vCPU waits for room */
    while (pg->ring && !pg->dying && grab_slot(pg, false) == -EBUSY) {
        pg->waiters++;
        pthread_cond_wait(&pg->cond, &pg->lock);
        pg->waiters--;
    }
    if (!pg->ring || pg->dying)
        goto out;               /* retried: no ring now, or going */
    if (populate_locked(d, gfn, v)) {
        pg->vcpu_waits++;
        uint64_t t0 = host_paging_now_ns();

        pg->paused++;
        while (v->vm_event_pause && !pg->dying)
            paused_wait(d);
        pg->paused--;
        waits_add(d, host_paging_now_ns() - t0);
    }
out:
    pthread_mutex_unlock(&pg->lock);
    if (crash) {
        xsim_log("(XEN) d%u paging gfn %#llx yet no ring in place", d->domid,
                 (unsigned long long)gfn);
        dom_shutdown(d, SHUTDOWN_crash);
    }
}

int host_paging_map(struct xsim_dom *d, uint64_t g)
{
    struct xsim_paging *pg = &d->pg;
    enum xsim_ptype t;
    bool crash = false;

    pthread_mutex_lock(&pg->lock);
    t = get_type(pg, g);
    if (t == XSIM_PT_PAGED) {
        int rc = grab_slot(pg, true);

        if (rc == 0)
            populate_locked(d, g, NULL);
        else if (rc == -EOPNOTSUPP && !pg->dying)
            crash = true;
    }
    pthread_mutex_unlock(&pg->lock);
    if (crash) {
        xsim_log("(XEN) d%u paging gfn %#llx yet no ring in place", d->domid,
                 (unsigned long long)g);
        /* domain_crash() from the mapper's context; the vCPUs stop. */
        pthread_mutex_lock(&d->run_lock);
        d->shutdown = true;
        d->shutdown_reason = SHUTDOWN_crash;
        pthread_mutex_unlock(&d->run_lock);
    }
    /* Paged: -ENOENT, asked for.  Paging in without a page: -ENOENT, the
     * request is already on its way.  A page: mapped. */
    return t == XSIM_PT_PAGED || (t == XSIM_PT_PAGING_IN && !p2m_has(d, g))
           ? -ENOENT : 0;
}

/* p2m_mem_paging_drop_page(): tell the pager, if there is room. */
static void drop_page(struct xsim_dom *d, uint64_t g)
{
    struct xsim_paging *pg = &d->pg;
    vm_event_request_t req;

    if (grab_slot(pg, true))
        return;
    memset(&req, 0, sizeof(req));
    req.reason = VM_EVENT_REASON_MEM_PAGING;
    req.u.mem_paging.gfn = g;
    req.u.mem_paging.flags = MEM_PAGING_DROP_PAGE;
    put_request(d, &req, true);
}

int host_paging_remove(struct xsim_dom *d, uint64_t g)
{
    struct xsim_paging *pg = &d->pg;
    enum xsim_ptype t;
    int rc = 0;

    pthread_mutex_lock(&pg->lock);
    t = get_type(pg, g);
    if (pg->ring && g == pg->ring_gfn && !pg->ring_orphan && p2m_has(d, g)) {
        /* Our reference keeps the ring page (and its tot_pages count). */
        __atomic_fetch_and(&d->p2m[g / 64], ~(1ul << (g % 64)),
                           __ATOMIC_RELAXED);
        pg->ring_orphan = true;
        rc = 1;
    } else if (t == XSIM_PT_PAGED || t == XSIM_PT_PAGING_IN) {
        if (p2m_has(d, g)) {
            /* *unverified*: Xen orphans a kept page; freed here */
            fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)(g * XSIM_PAGE_SIZE), XSIM_PAGE_SIZE);
            __atomic_fetch_and(&d->p2m[g / 64], ~(1ul << (g % 64)),
                               __ATOMIC_RELAXED);
            d->tot_pages--;
        } else {
            pg->paged_pages--;
        }
        set_type(pg, g, XSIM_PT_NONE);
        if (pg->ring)
            drop_page(d, g);
        rc = 1;
    } else if (t == XSIM_PT_PAGING_OUT) {
        /* An ordinary removal of the page it still has. */
        set_type(pg, g, XSIM_PT_NONE);
    } else if (!p2m_has(d, g)) {
        rc = -ENOENT;
    }
    pthread_mutex_unlock(&pg->lock);
    if (rc == 1)
        host_ioreq_removal(d);
    return rc;
}

void host_paging_populated(struct xsim_dom *d, uint64_t gfn, uint64_t nr)
{
    struct xsim_paging *pg = &d->pg;

    if (!pg->type)
        return;
    pthread_mutex_lock(&pg->lock);
    for (uint64_t g = gfn; g < gfn + nr; g++) {
        enum xsim_ptype t = get_type(pg, g);

        /* p2m_add_page(): plugging the hole of a paged-out frame */
        if ((t == XSIM_PT_PAGED || t == XSIM_PT_PAGING_IN) && !p2m_has(d, g))
            pg->paged_pages--;
        if (t != XSIM_PT_NONE)
            set_type(pg, g, XSIM_PT_NONE);
    }
    if (pg->ring_orphan && pg->ring_gfn >= gfn && pg->ring_gfn < gfn + nr)
        xsim_log("d%u: paging ring frame %#llx populated again: the guest "
                 "now shares the ring's page (not as on Xen)", d->domid,
                 (unsigned long long)pg->ring_gfn);
    pthread_mutex_unlock(&pg->lock);
}

int host_paging_state(struct xsim_dom *d, char *buf, size_t len)
{
    struct xsim_paging *pg = &d->pg;
    int n;

    pthread_mutex_lock(&pg->lock);
    n = snprintf(buf, len,
                 "paging %s ring-gfn=%#llx paged=%llu requests=%llu "
                 "responses=%llu vcpu-waits=%llu slot-waiters=%u\n",
                 pg->ring ? "on" : "off", (unsigned long long)pg->ring_gfn,
                 (unsigned long long)pg->paged_pages,
                 (unsigned long long)pg->requests,
                 (unsigned long long)pg->responses,
                 (unsigned long long)pg->vcpu_waits, pg->waiters);
    /* The waits' figures on the same line, before its newline. */
    if (n > 0 && (size_t)n < len) {
        n--;
        n += waits_format(d, buf + n, len - (size_t)n);
        if ((size_t)n + 1 < len) {
            buf[n++] = '\n';
            buf[n] = 0;
        }
    }
    pthread_mutex_unlock(&pg->lock);
    return n;
}
