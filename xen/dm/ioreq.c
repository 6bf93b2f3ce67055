/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ioreq.c - xenram's ioreq server thread and request handling (ioreq.h,
 * docs/ioreq.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>


#include "xen/dm/ioreq.h"

/* The most one request may move through guest memory (rep count x size). */
#define IOREQ_MAX_SPAN (1u << 20)

/* ---- one request --------------------------------------------------------- */

static void ioreq_log(IoreqHandler *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ioreq_log(IoreqHandler *h, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    if (!h->log) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    h->log(msg);
}

static const char *ioreq_type_name(uint8_t type)
{
    switch (type) {
    case IOREQ_TYPE_PIO:
        return "port I/O";
    case IOREQ_TYPE_COPY:
        return "MMIO";
    case IOREQ_TYPE_PCI_CONFIG:
        return "PCI config";
    default:
        return "ioreq";
    }
}

/* Log an access that hit no region, once per 4 KiB page or port. */
static void ioreq_unassigned(IoreqHandler *h, uint8_t type, uint64_t addr,
                             unsigned int size, bool is_read)
{
    uint64_t key = ((uint64_t)type << 60) ^
                   (type == IOREQ_TYPE_PIO ? addr : addr >> 12);

    h->st.unassigned++;
    for (unsigned int i = 0; i < h->nr_logged; i++) {
        if (h->logged[i] == key) {
            return;
        }
    }
    if (h->nr_logged < sizeof(h->logged) / sizeof(h->logged[0])) {
        h->logged[h->nr_logged++] = key;
        ioreq_log(h, "unassigned %s %s of %u bytes at 0x%" PRIx64
                  " (%s; logged once per %s)", ioreq_type_name(type),
                  is_read ? "read" : "write", size, addr,
                  is_read ? "reads all ones" : "dropped",
                  type == IOREQ_TYPE_PIO ? "port" : "page");
    }
}

/* One access of @size bytes at @addr of @as: a region's op, else unassigned. */
static void ioreq_access(IoreqHandler *h, AddressSpace *as, uint8_t type,
                         uint64_t addr, unsigned int size, bool is_read,
                         uint64_t *data)
{
    const FlatRange *fr = NULL;
    uint64_t off = 0, rem = 0;
    int ret = -ENOENT;

    rcu_read_lock();
    if (as) {
        fr = address_space_lookup(as, addr, &off, &rem);
    }
    if (fr && !flatrange_is_ram(fr) && rem >= size) {
        ret = is_read ? memory_region_dispatch_read(fr->mr, off, data, size)
                      : memory_region_dispatch_write(fr->mr, off, *data,
                                                     size);
    }
    rcu_read_unlock();
    if (ret) {
        if (is_read) {
            *data = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
        }
        ioreq_unassigned(h, type, addr, size, is_read);
    }
}

/* Is guest-physical [gpa, gpa + len) RAM (writable RAM for @write)? */
static bool ioreq_is_ram(GuestMemory *gm, uint64_t gpa, uint64_t len,
                         bool write)
{
    bool ok = true;

    rcu_read_lock();
    while (ok && len) {
        uint64_t rem;
        const FlatRange *fr = address_space_lookup(gm->as, gpa, NULL, &rem);

        ok = fr && flatrange_is_ram(fr) && !(write && fr->readonly);
        if (ok) {
            rem = rem < len ? rem : len;
            gpa += rem;
            len -= rem;
        }
    }
    rcu_read_unlock();
    return ok;
}

static int ioreq_bad(IoreqHandler *h, const ioreq_t *req, const char *why)
{
    h->st.bad++;
    ioreq_log(h, "malformed %s ignored: %s (addr 0x%" PRIx64 ", size %u, "
              "count %u%s)", ioreq_type_name(req->type), why, req->addr,
              req->size, req->count, req->data_is_ptr ? ", data_is_ptr" : "");
    return -EINVAL;
}

static int ioreq_io(IoreqHandler *h, ioreq_t *req, AddressSpace *as)
{
    unsigned int size = req->size;
    uint64_t count = req->count, span, step, lo_data = 0;
    bool is_read = req->dir == IOREQ_READ;
    uint8_t *buf = NULL;
    int ret = 0;

    if (size != 1 && size != 2 && size != 4 && size != 8) {
        return ioreq_bad(h, req, "size not 1, 2, 4 or 8");
    }
    if (count == 0) {
        return ioreq_bad(h, req, "rep count 0");
    }
    if (!req->data_is_ptr && count != 1) {
        return ioreq_bad(h, req, "rep count without a data pointer");
    }
    span = count * size;
    step = (uint64_t)(count - 1) * size;
    if (span > IOREQ_MAX_SPAN) {
        return ioreq_bad(h, req, "rep count too large");
    }
    /* The lowest address either side touches; nothing may wrap. */
    if (req->df) {
        if (req->addr < step || (req->data_is_ptr && req->data < step)) {
            return ioreq_bad(h, req, "rep count wraps below 0");
        }
        lo_data = req->data - step;
    } else {
        if (req->addr + step < req->addr ||
            (req->data_is_ptr && req->data + span < req->data)) {
            return ioreq_bad(h, req, "rep count wraps past 2^64");
        }
        lo_data = req->data;
    }
    if (req->data_is_ptr) {
        /* Checked whole before the first access: all or nothing. */
        if (!h->gm || !ioreq_is_ram(h->gm, lo_data, span, is_read)) {
            return ioreq_bad(h, req, "data pointer outside guest RAM");
        }
        buf = malloc(span);
        if (!buf) {
            return ioreq_bad(h, req, "out of memory");
        }
        if (!is_read && guest_memory_read(h->gm, lo_data, buf, span)) {
            free(buf);
            return ioreq_bad(h, req, "data pointer outside guest RAM");
        }
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t a = req->df ? req->addr - i * size : req->addr + i * size;
        /* Element i sits at its own distance from the pointer, df or not. */
        uint64_t boff = req->df ? step - i * size : i * size;
        uint64_t v = 0;

        if (buf && !is_read) {
            memcpy(&v, buf + boff, size);
        } else if (!buf && !is_read) {
            v = req->data;
            if (size < 8) {
                v &= (1ull << (size * 8)) - 1;
            }
        }
        ioreq_access(h, as, req->type, a, size, is_read, &v);
        if (buf && is_read) {
            memcpy(buf + boff, &v, size);
        } else if (is_read) {
            req->data = v;
        }
    }
    if (buf && is_read && guest_memory_write(h->gm, lo_data, buf, span)) {
        ret = ioreq_bad(h, req, "data pointer outside guest RAM");
    }
    free(buf);
    return ret;
}

int ioreq_handle(IoreqHandler *h, ioreq_t *req)
{
    h->st.requests++;
    switch (req->type) {
    case IOREQ_TYPE_INVALIDATE:
        h->st.invalidates++;
        if (h->mc) {
            mapcache_invalidate(h->mc);
        }
        return 0;
    case IOREQ_TYPE_PIO:
        h->st.pio++;
        if (req->addr > 0xffff) {
            return ioreq_bad(h, req, "port beyond 0xffff");
        }
        return ioreq_io(h, req, h->io);
    case IOREQ_TYPE_COPY:
        h->st.mmio++;
        return ioreq_io(h, req, h->mem);
    case IOREQ_TYPE_PCI_CONFIG:
        /* xenram emulates no PCI device: every config access unassigned. */
        h->st.pci_config++;
        if (req->data_is_ptr) {
            return ioreq_bad(h, req, "PCI config with a data pointer");
        }
        return ioreq_io(h, req, NULL);
    default:
        /* TIMEOFFSET (the guest set its RTC) and the like: acknowledged. */
        h->st.other++;
        return 0;
    }
}

/* ---- the service ----------------------------------------------------------- */

struct IoreqService {
    XenIoreqServer *srv;
    IoreqHandler h;                 /* the thread's own */
    pthread_t thread;
    bool thread_ok;
    int stop_fd;
    int epfd;
    pthread_mutex_t lock;
    IoreqStats pub;                 /* under lock: a copy of h.st */
};

static void ioreq_publish(IoreqService *svc)
{
    pthread_mutex_lock(&svc->lock);
    svc->pub = svc->h.st;
    pthread_mutex_unlock(&svc->lock);
}

static void ioreq_serve_vcpu(IoreqService *svc, unsigned int vcpu)
{
    ioreq_t req;

    if (!xen_ioreq_take(svc->srv, vcpu, &req)) {
        svc->h.st.spurious++;
        return;
    }
    ioreq_handle(&svc->h, &req);
    xen_ioreq_complete(svc->srv, vcpu, &req);
}

static void ioreq_serve_buffered(IoreqService *svc)
{
    ioreq_t req;
    int n;

    while ((n = xen_ioreq_buf_next(svc->srv, &req)) != 0) {
        if (n < 0) {
            svc->h.st.bad++;
            continue;
        }
        svc->h.st.buffered++;
        ioreq_handle(&svc->h, &req);
    }
}

/* Every slot and the ring once, events or not. */
static void ioreq_sweep(IoreqService *svc)
{
    for (unsigned int i = 0; i < xen_ioreq_server_vcpus(svc->srv); i++) {
        ioreq_t req;

        if (xen_ioreq_take(svc->srv, i, &req)) {
            ioreq_handle(&svc->h, &req);
            xen_ioreq_complete(svc->srv, i, &req);
        }
    }
    ioreq_serve_buffered(svc);
    ioreq_publish(svc);
}

static void *ioreq_thread(void *arg)
{
    IoreqService *svc = arg;
    bool stop = false, degraded = false;

    rcu_register_thread();
    /* Whatever was posted before our ports were bound. */
    ioreq_sweep(svc);
    while (!stop) {
        struct epoll_event ev[2];
        /* After a failed read of the channel: sweep every 10 ms instead. */
        int n = epoll_wait(svc->epfd, ev, 2, degraded ? 10 : -1);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ioreq_log(&svc->h, "ioreq thread: epoll_wait: %s",
                      strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u32 == 1) {
                stop = true;
            }
        }
        for (;;) {
            int who = xen_ioreq_pending(svc->srv);

            if (who == -EAGAIN) {
                break;
            }
            if (who == XEN_IOREQ_BUFFERED) {
                ioreq_serve_buffered(svc);
            } else if (who >= 0) {
                ioreq_serve_vcpu(svc, (unsigned int)who);
            } else if (who != -ENOENT) {
                /*
                 * The channel cannot be read (its ring overflowed, ...):
                 * say so once, and from now on look at every slot
                 * periodically rather than spin on a readable fd.
                 */
                if (!degraded) {
                    ioreq_log(&svc->h, "ioreq thread: xenevtchn_pending: "
                              "%s; polling the ioreq page every 10 ms from "
                              "now on", strerror(-who));
                }
                degraded = true;
                break;
            }
        }
        if (degraded) {
            ioreq_sweep(svc);
        }
        ioreq_publish(svc);
    }
    /* Disabled by now: what Xen posted before is answered, nothing more
     * comes, and no vCPU is left waiting on a server that went away. */
    ioreq_sweep(svc);
    rcu_unregister_thread();
    return NULL;
}

int ioreq_service_start(XenHandles *xh, const IoreqHandler *t,
                        IoreqService **out, char *err, size_t errlen)
{
    IoreqService *svc = calloc(1, sizeof(*svc));
    struct epoll_event ev = { .events = EPOLLIN };
    int ret, fd, fl;

    *out = NULL;
    if (!svc) {
        snprintf(err, errlen, "ioreq server: out of memory");
        return -ENOMEM;
    }
    svc->h = *t;
    memset(&svc->h.st, 0, sizeof(svc->h.st));
    svc->h.nr_logged = 0;
    svc->stop_fd = -1;
    svc->epfd = -1;
    pthread_mutex_init(&svc->lock, NULL);
    ret = xen_ioreq_server_open(xh, &svc->srv);
    if (ret) {
        snprintf(err, errlen, "cannot set up the ioreq server: %s",
                 xen_last_error());
        goto fail;
    }
    fd = xen_ioreq_server_fd(svc->srv);
    fl = fcntl(fd, F_GETFL);
    svc->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    svc->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        svc->stop_fd < 0 || svc->epfd < 0) {
        ret = -errno;
        snprintf(err, errlen, "ioreq server: %s", strerror(errno));
        goto fail;
    }
    ev.data.u32 = 0;
    if (epoll_ctl(svc->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        ret = -errno;
        snprintf(err, errlen, "ioreq server: epoll: %s", strerror(errno));
        goto fail;
    }
    ev.data.u32 = 1;
    if (epoll_ctl(svc->epfd, EPOLL_CTL_ADD, svc->stop_fd, &ev) < 0) {
        ret = -errno;
        snprintf(err, errlen, "ioreq server: epoll: %s", strerror(errno));
        goto fail;
    }
    /*
     * Enabled before the thread starts, so that the thread's first look
     * at every slot comes after Xen may have posted to them; its ports
     * are bound by then (xen_ioreq_server_enable) and nothing is lost.
     */
    ret = xen_ioreq_server_enable(svc->srv);
    if (ret) {
        snprintf(err, errlen, "cannot enable the ioreq server: %s",
                 xen_last_error());
        goto fail;
    }
    ret = -pthread_create(&svc->thread, NULL, ioreq_thread, svc);
    if (ret) {
        snprintf(err, errlen, "ioreq server: cannot start its thread: %s",
                 strerror(-ret));
        goto fail;
    }
    svc->thread_ok = true;
    *out = svc;
    return 0;

fail:
    ioreq_service_stop(svc);
    return ret;
}

ioservid_t ioreq_service_id(const IoreqService *svc)
{
    return xen_ioreq_server_id(svc->srv);
}

void ioreq_service_stats(IoreqService *svc, IoreqStats *st)
{
    pthread_mutex_lock(&svc->lock);
    *st = svc->pub;
    pthread_mutex_unlock(&svc->lock);
}

void ioreq_service_stop(IoreqService *svc)
{
    if (!svc) {
        return;
    }
    if (svc->thread_ok) {
        uint64_t one = 1;

        /* Disabled first, then the thread's last sweep: every request
         * Xen posted is completed before the pages go. */
        xen_ioreq_server_disable(svc->srv);
        (void)!write(svc->stop_fd, &one, sizeof(one));
        pthread_join(svc->thread, NULL);
    }
    xen_ioreq_server_close(svc->srv);
    if (svc->epfd >= 0) {
        close(svc->epfd);
    }
    if (svc->stop_fd >= 0) {
        close(svc->stop_fd);
    }
    pthread_mutex_destroy(&svc->lock);
    free(svc);
}
