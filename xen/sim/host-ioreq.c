/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * host-ioreq.c - the simulated host forwards ioreqs as Xen 4.17 does
 * (xen/common/ioreq.c), for the one kind of request its vCPUs make: the
 * map-cache invalidation that follows a p2m removal.
 *
 * Each ioreq server id of a domain gets, once, a memfd of two pages
 * (XENMEM_resource_ioreq_server frame 0: the buffered ring, frame 1: the
 * ioreq page, one ioreq_t slot per vCPU) mapped here and handed to the
 * device model by map_resource; and, per vCPU and for the buffered ring,
 * the guest end of an event channel in the namespace of Debian-compatible
 * libxenevtchn stand-in (xen/sim/xenstore/evtchn.c, sim-evtchn-addr.h):
 * we receive on "to/<domid>/<port>" what the device model sends after
 * binding interdomain to (domid, port), and notify it by sending to
 * "from/<domid>/<port>".
 *
 * A removal (decrease_reservation, relocate, balloon) after the domain's
 * creation has finished sets every vCPU's invalidate flag, or only the
 * removing vCPU's when the guest itself removes frames
 * (ioreq_request_mapcache_invalidate).  A vCPU with the flag, at its next
 * resume point (each turn of its loop, vcpu.c), sends IOREQ_TYPE_INVALIDATE
 * to every enabled server as ioreq_send() does and blocks until the slot
 * says IORESP_READY (wait_for_io).  A server enabled without pages is
 * where real Xen dereferences NULL: recorded as the host's panic.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "xen/sim/host.h"
#include "xen/sim/log.h"
#include "xen/sim/xenstore/sim-evtchn-addr.h"

#define IOREQ_PAGES 2
#define PORT_BASE   64u
#define PORT_STRIDE (XSIM_IOREQ_MAX_VCPUS + 2u)

static char evtchn_ns[256];
static int send_fd = -1;

void host_ioreq_init(const char *state_dir)
{
    /* What ts-dm gives the device models it starts (XENSTORED_RUNDIR). */
    snprintf(evtchn_ns, sizeof(evtchn_ns), "%s/xenstored", state_dir);
    if (send_fd < 0)
        send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0);
}

uint32_t host_ioreq_port(uint32_t id, unsigned vcpu)
{
    return PORT_BASE + id * PORT_STRIDE + vcpu;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int host_evtchn_bind(uint32_t domid, uint32_t port)
{
    struct sockaddr_un sa;
    socklen_t len = sim_evtchn_addr(&sa, evtchn_ns, SIM_EVTCHN_KIND_TO,
                                    domid, port);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        int e = errno;

        close(fd);
        return -e;
    }
    return fd;
}

/* notify_via_xen_event_channel(): nobody bound is no error. */
void host_evtchn_notify(uint32_t domid, uint32_t port)
{
    struct sockaddr_un sa;
    socklen_t len = sim_evtchn_addr(&sa, evtchn_ns, SIM_EVTCHN_KIND_FROM,
                                    domid, port);
    char byte = 1;

    (void)!sendto(send_fd, &byte, 1, MSG_DONTWAIT, (struct sockaddr *)&sa,
                  len);
}

static ioreq_t *slot_of(struct xsim_ioreq *s, unsigned vcpu)
{
    return &((shared_iopage_t *)(s->page + XSIM_PAGE_SIZE))->vcpu_ioreq[vcpu];
}

/* The slot's state: the low nibble of the bit-field byte before `type`. */
static uint8_t *state_byte(ioreq_t *p)
{
    return (uint8_t *)p + offsetof(ioreq_t, type) - 1;
}

static unsigned slot_state(ioreq_t *p)
{
    return __atomic_load_n(state_byte(p), __ATOMIC_ACQUIRE) & 0xf;
}

static void slot_set_state(ioreq_t *p, unsigned st)
{
    uint8_t *b = state_byte(p);
    uint8_t old = __atomic_load_n(b, __ATOMIC_RELAXED);

    __atomic_store_n(b, (uint8_t)((old & 0xf0) | st), __ATOMIC_RELEASE);
}

int host_ioreq_setup(struct xsim_dom *d, uint32_t id)
{
    struct xsim_ioreq *s = &d->ioreq[id];

    if (s->memfd < 0) {
        int fd = memfd_create("xensim-ioreq", MFD_CLOEXEC);
        void *p;

        if (fd < 0)
            return -errno;
        if (ftruncate(fd, IOREQ_PAGES * XSIM_PAGE_SIZE) < 0 ||
            (p = mmap(NULL, IOREQ_PAGES * XSIM_PAGE_SIZE,
                      PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
                MAP_FAILED) {
            int e = errno;

            close(fd);
            return -e;
        }
        s->memfd = fd;
        s->page = p;
    }
    for (unsigned v = 0; v <= XSIM_IOREQ_MAX_VCPUS; v++) {
        if (s->sock[v] >= 0 || (v < XSIM_IOREQ_MAX_VCPUS && v >= d->nr_vcpus))
            continue;
        s->sock[v] = host_evtchn_bind(d->domid, host_ioreq_port(id, v));
        if (s->sock[v] < 0) {
            int e = s->sock[v];

            xsim_log("d%u: ioreq server %u: cannot bind its event channel "
                     "%u: %s", d->domid, id, host_ioreq_port(id, v),
                     strerror(-e));
            return e;
        }
    }
    /* ioreq_server_alloc_mfn() hands out cleared pages. */
    memset(s->page, 0, IOREQ_PAGES * XSIM_PAGE_SIZE);
    __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
    return 0;
}

void host_ioreq_enabled(struct xsim_dom *d, uint32_t id)
{
    struct xsim_ioreq *s = &d->ioreq[id];

    for (unsigned v = 0; v < d->nr_vcpus; v++)
        __atomic_store_n(&slot_of(s, v)->vp_eport, host_ioreq_port(id, v),
                         __ATOMIC_RELEASE);
}

void host_ioreq_fini(struct xsim_dom *d)
{
    for (unsigned i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++) {
        struct xsim_ioreq *s = &d->ioreq[i];

        for (unsigned v = 0; v <= XSIM_IOREQ_MAX_VCPUS; v++) {
            if (s->sock[v] >= 0)
                close(s->sock[v]);
            s->sock[v] = -1;
        }
        if (s->page)
            munmap(s->page, IOREQ_PAGES * XSIM_PAGE_SIZE);
        if (s->memfd >= 0)
            close(s->memfd);
        s->page = NULL;
        s->memfd = -1;
    }
}

void host_ioreq_removal(struct xsim_dom *d)
{
    uint64_t all;

    if (d->removal_vcpu >= 0) {
        /* The guest itself: the current vCPU (hvm_hypercall's exit). */
        __atomic_or_fetch(&d->ioreq_inval, 1ull << d->removal_vcpu,
                          __ATOMIC_RELEASE);
        return;
    }
    if (!__atomic_load_n(&d->creation_finished, __ATOMIC_ACQUIRE))
        return;
    all = d->nr_vcpus >= 64 ? ~0ull : (1ull << d->nr_vcpus) - 1;
    __atomic_or_fetch(&d->ioreq_inval, all, __ATOMIC_RELEASE);
}

bool host_ioreq_owed(const struct xsim_vcpu *v)
{
    return (__atomic_load_n(&v->dom->ioreq_inval, __ATOMIC_ACQUIRE) >>
            v->id) & 1;
}

/*
 * ioreq_send() for vCPU @v to server @id, then wait_for_io().  Takes and
 * drops d->lock itself; never waits holding it.
 */
static bool send_and_wait(struct xsim_vcpu *v, uint32_t id, const ioreq_t *rq,
                          uint64_t *data)
{
    struct xsim_dom *d = v->dom;
    struct xsim_ioreq *s = &d->ioreq[id];
    uint32_t port = host_ioreq_port(id, v->id);
    unsigned prev = STATE_IOREQ_READY;
    uint64_t gen, t0, waited, next_note = 10;
    bool answered = false;
    ioreq_t *p;
    int sock;

    pthread_mutex_lock(&d->lock);
    if (!s->used || !__atomic_load_n(&s->enabled, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&d->lock);
        return false;
    }
    if (!s->pages && !s->resource) {
        if (!d->panic[0]) {
            snprintf(d->panic, sizeof(d->panic),
                     "FATAL PAGE FAULT in ioreq_send: d%u's ioreq server %u "
                     "is enabled but its ioreq pages were never set up",
                     d->domid, id);
            xsim_log("(XEN) host panic (simulated, real Xen dies here): %s",
                     d->panic);
        }
        pthread_mutex_unlock(&d->lock);
        return false;
    }
    p = slot_of(s, v->id);
    if (slot_state(p) != STATE_IOREQ_NONE) {
        xsim_log("(XEN) d%uv%u device model set bad IO state %u", d->domid,
                 v->id, slot_state(p));
        pthread_mutex_unlock(&d->lock);
        return false;
    }
    if (__atomic_load_n(&p->vp_eport, __ATOMIC_ACQUIRE) != port) {
        xsim_log("(XEN) d%uv%u device model set bad event channel %u",
                 d->domid, v->id, p->vp_eport);
        pthread_mutex_unlock(&d->lock);
        return false;
    }
    {
        ioreq_t copy = *rq;

        copy.state = STATE_IOREQ_NONE;
        copy.vp_eport = port;
        memcpy(p, &copy, sizeof(copy));
    }
    slot_set_state(p, STATE_IOREQ_READY);
    gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    sock = s->sock[v->id];
    pthread_mutex_unlock(&d->lock);

    __atomic_add_fetch(&d->ioreq_sent, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->ioreq_waiting, 1, __ATOMIC_RELAXED);
    t0 = mono_ns();
    host_evtchn_notify(d->domid, port);
    for (;;) {
        unsigned st = slot_state(p);
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        char buf[64];

        if (st == STATE_IORESP_READY) {
            if (data)
                *data = __atomic_load_n(&p->data, __ATOMIC_ACQUIRE);
            slot_set_state(p, STATE_IOREQ_NONE);
            answered = true;
            break;
        }
        if (st < prev) {
            xsim_log("(XEN) d%uv%u weird HVM ioreq state transition %u -> %u",
                     d->domid, v->id, prev, st);
            break;
        }
        prev = st;
        /* The server went (destroyed, disabled) or the domain did. */
        if (__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != gen ||
            !__atomic_load_n(&s->enabled, __ATOMIC_ACQUIRE))
            break;
        if (poll(&pfd, 1, 100) > 0)
            while (recv(sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
        else if ((mono_ns() - t0) / 1000000000ull >= next_note) {
            /* As on Xen the vCPU waits for ever; say so in the log. */
            xsim_log("d%uv%u: still waiting for ioreq server %u after %llu s "
                     "(is its device model's event channel namespace "
                     "XENSTORED_RUNDIR=%s?)", d->domid, v->id, id,
                     (unsigned long long)next_note, evtchn_ns);
            next_note *= 2;
        }
    }
    waited = mono_ns() - t0;
    __atomic_sub_fetch(&d->ioreq_waiting, 1, __ATOMIC_RELAXED);
    for (uint64_t m = __atomic_load_n(&d->ioreq_wait_max_ns, __ATOMIC_RELAXED);
         waited > m &&
         !__atomic_compare_exchange_n(&d->ioreq_wait_max_ns, &m, waited, false,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED);)
        ;
    return answered;
}

void host_ioreq_resume(struct xsim_vcpu *v)
{
    struct xsim_dom *d = v->dom;
    uint64_t bit = 1ull << v->id;
    /* ioreq_signal_mapcache_invalidate(): flush all. */
    ioreq_t rq = { .type = IOREQ_TYPE_INVALIDATE, .size = 4,
                   .dir = IOREQ_WRITE, .data = ~0ull, .count = 1 };

    if (!(__atomic_fetch_and(&d->ioreq_inval, ~bit, __ATOMIC_ACQ_REL) & bit))
        return;
    for (uint32_t id = 0; id < XSIM_MAX_IOREQ_SERVERS; id++)
        send_and_wait(v, id, &rq, NULL);
}

/* ioreq_server_select() for an MMIO access; -1: no server claims it. */
static int select_mmio(struct xsim_dom *d, uint64_t addr, unsigned size)
{
    int found = -1;

    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < XSIM_MAX_IOREQ_SERVERS && found < 0; i++) {
        struct xsim_ioreq *s = &d->ioreq[i];

        if (!s->used || !__atomic_load_n(&s->enabled, __ATOMIC_ACQUIRE))
            continue;
        for (unsigned j = 0; j < s->nr_ranges; j++) {
            const struct xsim_ioreq_range *r = &s->ranges[j];

            if (r->type == XEN_DMOP_IO_RANGE_MEMORY && addr >= r->start &&
                addr + size - 1 <= r->end) {
                found = (int)i;
                break;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return found;
}

/* One access: through the server that claims it, else all ones. */
static uint64_t mmio_access(struct xsim_vcpu *v, uint64_t addr, unsigned size,
                            bool read, uint64_t data)
{
    ioreq_t rq = { .type = IOREQ_TYPE_COPY, .addr = addr, .size = size,
                   .count = 1, .dir = read ? IOREQ_READ : IOREQ_WRITE,
                   .data = read ? 0 : data };
    uint64_t ones = size == 8 ? ~0ull : (1ull << (size * 8)) - 1, got = ones;
    int id = select_mmio(v->dom, addr, size);

    if (id >= 0 && send_and_wait(v, (uint32_t)id, &rq, &got))
        return read ? got & ones : 0;
    return read ? ones : 0;
}

void host_ioreq_mmio(struct xsim_vcpu *v, const struct xsim_workload *wl,
                     unsigned n)
{
    static const unsigned sizes[] = { 1, 2, 4, 8 };
    struct xsim_dom *d = v->dom;
    uint64_t words = wl->mmio_len / 8;

    __atomic_add_fetch(&d->mmio_active, 1, __ATOMIC_ACQ_REL);
    for (unsigned k = 0; k < n; k++) {
        uint64_t seq;
        bool go;

        /* The workload may change between two pairs: look each time, so
         * that once `xensim workload` returns at most this pair runs. */
        pthread_mutex_lock(&d->run_lock);
        go = !d->stopping && !d->pause_count && !d->quiesce &&
             memcmp(&d->wl, wl, sizeof(*wl)) == 0;
        pthread_mutex_unlock(&d->run_lock);
        if (!go)
            break;
        seq = v->seq++;
        unsigned size = sizes[seq % 4];
        uint64_t addr = wl->mmio_gpa + (seq / 4 % words) * 8;
        uint64_t mask = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
        uint64_t data = ((seq + 1) * 0x9e3779b97f4a7c15ull ^ v->id) & mask;
        uint64_t got;

        if (data == mask)
            data ^= 1;          /* never all ones: that is the hole's */
        mmio_access(v, addr, size, false, data);
        got = mmio_access(v, addr, size, true, 0);
        __atomic_add_fetch(&d->mmio_pairs, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(got == data ? &d->mmio_match :
                           got == mask ? &d->mmio_ones : &d->mmio_other, 1,
                           __ATOMIC_RELAXED);
    }
    __atomic_sub_fetch(&d->mmio_active, 1, __ATOMIC_ACQ_REL);
}

long dom_map_resource(struct xsim_dom *d, uint32_t type, uint32_t id,
                      uint64_t frame, uint64_t nr, int *fd, uint64_t *off)
{
    struct xsim_ioreq *s;
    long rc;

    *fd = -1;
    if (type != XENMEM_resource_ioreq_server)
        return -EOPNOTSUPP;     /* grant tables, vmtrace: not simulated */
    pthread_mutex_lock(&d->lock);
    s = id < XSIM_MAX_IOREQ_SERVERS && d->ioreq[id].used ? &d->ioreq[id]
                                                        : NULL;
    if (!s) {
        rc = -ENOENT;
    } else if (nr == 0) {
        rc = IOREQ_PAGES;       /* ioreq_server_max_frames() on x86 */
    } else if (s->pages) {
        rc = -EPERM;            /* the legacy gfns were mapped already */
    } else if (frame >= IOREQ_PAGES || nr > IOREQ_PAGES - frame) {
        rc = -EINVAL;
    } else if (frame == XENMEM_resource_ioreq_server_frame_bufioreq &&
               !s->bufioreq) {
        rc = -ENOENT;
    } else {
        /* Passed like the guest memfd: kept open for the domain's life. */
        *fd = s->memfd;
        /* ioreq_server_alloc_pages() at the first acquire: the ioreq
         * page, then the ring, from the heap, cleared (clear_page()). */
        if (!s->resource)
            host_pool_take(d, -1, 0, s->bufioreq ? 2 : 1);
        s->resource = true;
        *off = frame * XSIM_PAGE_SIZE;
        rc = (long)nr;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static bool p2m_test(const struct xsim_dom *d, uint64_t gfn)
{
    return (d->p2m[gfn / 64] >> (gfn % 64)) & 1;
}

long dom_balloon(struct xsim_dom *d, uint64_t nr)
{
    uint64_t *gfns, n = 0;
    long done;

    if (d->control)
        return -EINVAL;
    if (nr == 0)
        return 0;
    if (nr > d->nr_ram)
        nr = d->nr_ram;
    gfns = malloc(nr * sizeof(*gfns));
    if (!gfns)
        return -ENOMEM;
    /* From the top of RAM down, as a balloon driver hands back the pages
     * it allocated; one decrease_reservation of single-frame extents. */
    pthread_mutex_lock(&d->lock);
    for (int e = (int)d->nr_ram_ext - 1; e >= 0 && n < nr; e--)
        for (uint64_t i = d->ram_ext[e][1]; i-- > 0 && n < nr;)
            if (p2m_test(d, d->ram_ext[e][0] + i))
                gfns[n++] = d->ram_ext[e][0] + i;
    /* The guest on vCPU 0 (dom_decrease takes the lock again). */
    d->removal_vcpu = 0;
    pthread_mutex_unlock(&d->lock);
    done = dom_decrease(d, gfns, n, 0);
    pthread_mutex_lock(&d->lock);
    d->removal_vcpu = -1;
    pthread_mutex_unlock(&d->lock);
    free(gfns);
    return done;
}

uint64_t host_pages_outside_p2m(struct xsim_dom *d)
{
    uint64_t n = 0;
    off_t pos = 0, end;

    if (d->memfd < 0)
        return 0;
    /* The memfd's data runs (shmem keeps holes where nothing was written
     * or a frame was released); each page there the p2m lacks was
     * written through a mapping that outlived its frame. */
    while ((pos = lseek(d->memfd, pos, SEEK_DATA)) >= 0) {
        end = lseek(d->memfd, pos, SEEK_HOLE);
        if (end < 0)
            break;
        for (uint64_t g = (uint64_t)pos / XSIM_PAGE_SIZE;
             g < ((uint64_t)end + XSIM_PAGE_SIZE - 1) / XSIM_PAGE_SIZE &&
             g < XSIM_GFN_LIMIT; g++)
            if (!p2m_test(d, g))
                n++;
        pos = end;
    }
    return n;
}
