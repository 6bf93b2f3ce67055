/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * evtchn.c - stand-in libxenevtchn.so.1 for the simulator.
 *
 * Same soname and symbol versions as Debian's library (VERS_1.0..1.2, see
 * libxenevtchn.map), so Debian's xenstored and any other dom0 program load
 * it from LD_LIBRARY_PATH unchanged.  There is no hypervisor: a handle is an
 * epoll set, each bound port a Unix datagram socket with an abstract address
 * (sim-evtchn-addr.h), and a notification one datagram.  The handle's fd
 * (xenevtchn_fd) polls readable when any unmasked port has an event, exactly
 * the contract of /dev/xen/evtchn.
 *
 * Semantics kept from Linux's evtchn driver: a port is masked when
 * xenevtchn_pending() returns it and stays masked (events latch) until
 * xenevtchn_unmask(); notifications coalesce; notifying a peer that nobody
 * listens to succeeds.  Not kept: a global per-domain port space (numbers are
 * per handle, except unbound ports, whose numbers are names), vCPU routing,
 * and any event from a real hypervisor: a VIRQ fires only when the simulator
 * sends it (xs_sim_virq_dom_exc() for VIRQ_DOM_EXC).
 *
 * The calling process is domain XENSIM_DOMID (default 0).  Thread-safe: one
 * mutex per handle; xenevtchn_pending() blocks without holding it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenevtchn.h>

#include "sim-evtchn-addr.h"

#define SIM_EVTCHN_EXPORT __attribute__((visibility("default")))

enum sim_port_kind { PORT_VIRQ, PORT_INTERDOMAIN, PORT_UNBOUND };

struct sim_port {
    evtchn_port_t port;
    enum sim_port_kind kind;
    int sock;                   /* bound datagram socket, receives events */
    uint32_t rdom;              /* INTERDOMAIN: remote end */
    evtchn_port_t rport;
    bool masked;
};

struct xenevtchn_handle {
    pthread_mutex_t lock;
    int epfd;
    int sendfd;                 /* unbound socket used to send */
    uint32_t self;              /* our domid */
    int restrict_dom;           /* -1: unrestricted */
    char *ns;
    struct sim_port *ports;
    size_t nports, cap;
    evtchn_port_t next_port;
};

static uint32_t self_domid(void)
{
    const char *s = getenv("XENSIM_DOMID");

    return s && *s ? (uint32_t)strtoul(s, NULL, 0) : 0;
}

static xenevtchn_handle *handle_new(unsigned int flags)
{
    xenevtchn_handle *xce = calloc(1, sizeof(*xce));
    int cloexec = (flags & XENEVTCHN_NO_CLOEXEC) ? 0 : EPOLL_CLOEXEC;

    if (!xce)
        return NULL;
    pthread_mutex_init(&xce->lock, NULL);
    xce->self = self_domid();
    xce->restrict_dom = -1;
    xce->next_port = 1;
    xce->sendfd = -1;
    xce->ns = strdup(sim_evtchn_ns_from_env());
    xce->epfd = epoll_create1(cloexec);
    if (!xce->ns || xce->epfd < 0) {
        int err = xce->ns ? errno : ENOMEM;

        free(xce->ns);
        if (xce->epfd >= 0)
            close(xce->epfd);
        free(xce);
        errno = err;
        return NULL;
    }
    return xce;
}

SIM_EVTCHN_EXPORT
xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
                                 unsigned int flags)
{
    (void)logger;
    if (flags & ~XENEVTCHN_NO_CLOEXEC) {
        errno = EINVAL;
        return NULL;
    }
    return handle_new(flags);
}

/*
 * Adopting an already open /dev/xen/evtchn fd only happens across a
 * xenstored live update, which the simulator does not do.
 */
SIM_EVTCHN_EXPORT
xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd,
                                   unsigned open_flags)
{
    (void)logger;
    (void)fd;
    (void)open_flags;
    errno = EOPNOTSUPP;
    return NULL;
}

static void port_close(xenevtchn_handle *xce, struct sim_port *p)
{
    if (p->sock >= 0) {
        epoll_ctl(xce->epfd, EPOLL_CTL_DEL, p->sock, NULL);
        close(p->sock);
    }
}

SIM_EVTCHN_EXPORT
int xenevtchn_close(xenevtchn_handle *xce)
{
    if (!xce)
        return 0;
    for (size_t i = 0; i < xce->nports; i++)
        port_close(xce, &xce->ports[i]);
    if (xce->sendfd >= 0)
        close(xce->sendfd);
    close(xce->epfd);
    pthread_mutex_destroy(&xce->lock);
    free(xce->ports);
    free(xce->ns);
    free(xce);
    return 0;
}

SIM_EVTCHN_EXPORT
int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->epfd;
}

static struct sim_port *port_find(xenevtchn_handle *xce, evtchn_port_t port)
{
    for (size_t i = 0; i < xce->nports; i++)
        if (xce->ports[i].port == port)
            return &xce->ports[i];
    return NULL;
}

/* A datagram socket bound to (@kind, @domid, @num); -errno on failure. */
static int bind_endpoint(xenevtchn_handle *xce, const char *kind,
                         uint32_t domid, uint32_t num)
{
    struct sockaddr_un sa;
    socklen_t len = sim_evtchn_addr(&sa, xce->ns, kind, domid, num);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Record a bound port and arm it; takes ownership of @sock. */
static xenevtchn_port_or_error_t port_add(xenevtchn_handle *xce,
                                          evtchn_port_t port,
                                          enum sim_port_kind kind, int sock,
                                          uint32_t rdom, evtchn_port_t rport)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = port };
    struct sim_port *p;

    if (xce->nports == xce->cap) {
        size_t cap = xce->cap ? 2 * xce->cap : 8;
        struct sim_port *n = realloc(xce->ports, cap * sizeof(*n));

        if (!n) {
            close(sock);
            errno = ENOMEM;
            return -1;
        }
        xce->ports = n;
        xce->cap = cap;
    }
    if (epoll_ctl(xce->epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
        int err = errno;

        close(sock);
        errno = err;
        return -1;
    }
    p = &xce->ports[xce->nports++];
    *p = (struct sim_port){ .port = port, .kind = kind, .sock = sock,
                            .rdom = rdom, .rport = rport };
    if (xce->next_port <= port)
        xce->next_port = port + 1;
    return (xenevtchn_port_or_error_t)port;
}

SIM_EVTCHN_EXPORT
xenevtchn_port_or_error_t
xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                           evtchn_port_t remote_port)
{
    xenevtchn_port_or_error_t ret = -1;
    int sock;

    pthread_mutex_lock(&xce->lock);
    if (xce->restrict_dom >= 0 && domid != (uint32_t)xce->restrict_dom) {
        errno = EPERM;
        goto out;
    }
    /* Only one party may listen to a given remote port, as on Xen. */
    sock = bind_endpoint(xce, SIM_EVTCHN_KIND_FROM, domid, remote_port);
    if (sock < 0) {
        errno = sock == -EADDRINUSE ? EBUSY : -sock;
        goto out;
    }
    ret = port_add(xce, xce->next_port, PORT_INTERDOMAIN, sock, domid,
                   remote_port);
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

SIM_EVTCHN_EXPORT
xenevtchn_port_or_error_t
xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
    xenevtchn_port_or_error_t ret = -1;
    evtchn_port_t port;
    int sock = -EADDRINUSE;

    pthread_mutex_lock(&xce->lock);
    if (xce->restrict_dom >= 0 && domid != (uint32_t)xce->restrict_dom) {
        errno = EPERM;
        goto out;
    }
    /*
     * The port number is the endpoint's name, so it must be free in our
     * domain across processes: take the first one nobody has bound.
     */
    for (port = xce->next_port; port < 4096 && sock == -EADDRINUSE; port++)
        sock = bind_endpoint(xce, SIM_EVTCHN_KIND_TO, xce->self, port);
    if (sock < 0) {
        errno = sock == -EADDRINUSE ? ENOSPC : -sock;
        goto out;
    }
    ret = port_add(xce, port - 1, PORT_UNBOUND, sock, domid, 0);
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

SIM_EVTCHN_EXPORT
xenevtchn_port_or_error_t
xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    xenevtchn_port_or_error_t ret = -1;
    int sock;

    pthread_mutex_lock(&xce->lock);
    sock = bind_endpoint(xce, SIM_EVTCHN_KIND_VIRQ, xce->self, virq);
    if (sock < 0) {
        errno = sock == -EADDRINUSE ? EEXIST : -sock;
        goto out;
    }
    ret = port_add(xce, xce->next_port, PORT_VIRQ, sock, 0, 0);
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

SIM_EVTCHN_EXPORT
int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    struct sim_port *p;
    int ret = -1;

    pthread_mutex_lock(&xce->lock);
    p = port_find(xce, port);
    if (!p) {
        errno = EINVAL;
        goto out;
    }
    port_close(xce, p);
    *p = xce->ports[--xce->nports];
    ret = 0;
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

SIM_EVTCHN_EXPORT
int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    struct sockaddr_un sa;
    socklen_t len;
    struct sim_port *p;
    char byte = 1;
    int ret = -1;

    pthread_mutex_lock(&xce->lock);
    p = port_find(xce, port);
    if (!p || p->kind == PORT_VIRQ) {
        errno = EINVAL;
        goto out;
    }
    if (p->kind == PORT_INTERDOMAIN)
        len = sim_evtchn_addr(&sa, xce->ns, SIM_EVTCHN_KIND_TO, p->rdom,
                              p->rport);
    else
        len = sim_evtchn_addr(&sa, xce->ns, SIM_EVTCHN_KIND_FROM, xce->self,
                              port);
    if (xce->sendfd < 0) {
        xce->sendfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
                             SOCK_CLOEXEC, 0);
        if (xce->sendfd < 0)
            goto out;
    }
    /*
     * Nobody listening (ECONNREFUSED, ENOENT) or a full queue (EAGAIN: the
     * event is already pending there) is not an error on Xen either.
     */
    if (sendto(xce->sendfd, &byte, 1, MSG_DONTWAIT, (struct sockaddr *)&sa,
               len) < 0 && errno != ECONNREFUSED && errno != ENOENT &&
        errno != EAGAIN)
        goto out;
    ret = 0;
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

static void port_arm(xenevtchn_handle *xce, struct sim_port *p, bool on)
{
    struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.u32 = p->port };

    epoll_ctl(xce->epfd, EPOLL_CTL_MOD, p->sock, &ev);
    p->masked = !on;
}

/*
 * Blocks until an unmasked port has an event, like read() on the driver's
 * fd, unless the caller made xenevtchn_fd() non-blocking (then EAGAIN).
 */
SIM_EVTCHN_EXPORT
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    int nonblock = fcntl(xce->epfd, F_GETFL) & O_NONBLOCK;
    struct epoll_event ev;
    struct sim_port *p;
    char buf[64];
    int n;

    for (;;) {
        n = epoll_wait(xce->epfd, &ev, 1, nonblock ? 0 : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EAGAIN;
            return -1;
        }
        pthread_mutex_lock(&xce->lock);
        p = port_find(xce, ev.data.u32);
        if (p && !p->masked) {
            while (recv(p->sock, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
            port_arm(xce, p, false);
            pthread_mutex_unlock(&xce->lock);
            return (xenevtchn_port_or_error_t)ev.data.u32;
        }
        /* Unbound or masked meanwhile by another thread: look again. */
        pthread_mutex_unlock(&xce->lock);
    }
}

SIM_EVTCHN_EXPORT
int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    struct sim_port *p;
    int ret = -1;

    pthread_mutex_lock(&xce->lock);
    p = port_find(xce, port);
    if (!p) {
        errno = EINVAL;
        goto out;
    }
    port_arm(xce, p, true);
    ret = 0;
out:
    pthread_mutex_unlock(&xce->lock);
    return ret;
}

SIM_EVTCHN_EXPORT
int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
    pthread_mutex_lock(&xce->lock);
    xce->restrict_dom = domid;
    pthread_mutex_unlock(&xce->lock);
    return 0;
}
