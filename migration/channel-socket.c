/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * channel-socket.c - migration channels over stream sockets and plain file
 * descriptors: tcp:, unix: and fd: (see channel.h).
 *
 * The fd is non-blocking and every wait is a poll() bounded by the
 * channel's stall timeout, so a stuck peer cannot hang a sender or a
 * receiver.  Cancelling shuts the socket down, which wakes a poll() in
 * another thread at once.
 *
 * A writer's stall is measured on the bytes queued for the peer
 * (SIOCOUTQ: a unix socket's bytes not yet read by the peer, TCP's not
 * yet acknowledged), not on poll()'s POLLOUT alone: the kernel reports a
 * full socket writable again only once a large share of it has drained
 * (a quarter of a unix socket's buffer left, a third of TCP's), which a
 * slow but moving peer can take longer than the stall timeout to reach.
 * The clock starts when a write finds the buffer full and restarts every
 * time the queue shrinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "migration/channel.h"

/* ---- addresses ------------------------------------------------------------------ */

int mig_address_parse(const char *uri, MigAddress *a, char *err,
                      size_t errlen)
{
    static const char forms[] = "use tcp:HOST:PORT, unix:PATH or fd:NAME";
    const char *colon;

    memset(a, 0, sizeof(*a));
    if (!uri) {
        return xr_error(err, errlen, -EINVAL, "no migration URI: %s", forms);
    }
    if (!strncmp(uri, "tcp:", 4)) {
        const char *h = uri + 4, *hend;

        a->kind = MIG_ADDR_TCP;
        if (*h == '[') {
            hend = strchr(h, ']');
            if (!hend || hend[1] != ':') {
                return xr_error(err, errlen, -EINVAL, "bad IPv6 address in "
                                 "'%s': %s", uri, forms);
            }
            h++;
            colon = hend + 1;
        } else {
            colon = strrchr(h, ':');
            hend = colon;
        }
        if (!colon || !colon[1] || (size_t)(hend - h) >= sizeof(a->host) ||
            strlen(colon + 1) >= sizeof(a->port) ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
            return xr_error(err, errlen, -EINVAL, "bad migration URI '%s': "
                             "%s", uri, forms);
        }
        memcpy(a->host, h, (size_t)(hend - h));
        snprintf(a->port, sizeof(a->port), "%s", colon + 1);
        return 0;
    }
    if (!strncmp(uri, "unix:", 5)) {
        a->kind = MIG_ADDR_UNIX;
        if (!uri[5] || strlen(uri + 5) >= sizeof(a->path)) {
            return xr_error(err, errlen, -EINVAL, "bad unix socket path in "
                             "'%s' (1 to %zu bytes)", uri,
                             sizeof(a->path) - 1);
        }
        snprintf(a->path, sizeof(a->path), "%s", uri + 5);
        return 0;
    }
    if (!strncmp(uri, "fd:", 3)) {
        a->kind = MIG_ADDR_FD;
        if (!uri[3] || strlen(uri + 3) >= sizeof(a->fdname)) {
            return xr_error(err, errlen, -EINVAL, "bad fd name in '%s'",
                             uri);
        }
        snprintf(a->fdname, sizeof(a->fdname), "%s", uri + 3);
        return 0;
    }
    return xr_error(err, errlen, -EINVAL, "unsupported migration URI '%s': "
                     "%s", uri, forms);
}

/* ---- the socket transport ----------------------------------------------------- */

/*
 * sendmsg() with MSG_NOSIGNAL: a peer that went away is -EPIPE, not a
 * SIGPIPE that kills the embedding process.  writev() for an fd: that is
 * not a socket (a pipe).
 */
static ssize_t sock_writev(MigChannel *c, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov,
                          .msg_iovlen = (size_t)iovcnt };
    ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);

    if (n < 0 && errno == ENOTSOCK) {
        n = writev(c->fd, iov, iovcnt);
    }
    return n < 0 ? -errno : n;
}

static ssize_t sock_read(MigChannel *c, void *buf, size_t len)
{
    ssize_t n = read(c->fd, buf, len);

    return n < 0 ? -errno : n;
}

static void sock_stop_reading(MigChannel *c)
{
    __atomic_store_n(&c->reads_stopped, true, __ATOMIC_RELEASE);
    /* Wakes a poll() for input in another thread; writes go on. */
    shutdown(c->fd, SHUT_RD);
}

static void sock_cancel(MigChannel *c)
{
    __atomic_store_n(&c->cancelled, true, __ATOMIC_RELEASE);
    /* Wakes a poll() or a transfer in another thread (sockets only). */
    shutdown(c->fd, SHUT_RDWR);
}

static void sock_close(MigChannel *c)
{
    close(c->fd);
    free(c);
}

static const MigChannelOps sock_ops = {
    .writev = sock_writev, .read = sock_read, .cancel = sock_cancel,
    .stop_reading = sock_stop_reading, .close = sock_close,
};

int mig_channel_from_fd(int fd, const char *name, int stall_ms,
                        MigChannel **out)
{
    MigChannel *c = calloc(1, sizeof(*c));
    int fl = fcntl(fd, F_GETFL);

    if (!c) {
        return -ENOMEM;
    }
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        free(c);
        return -errno;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    c->ops = &sock_ops;
    c->fd = fd;
    c->stall_ms = stall_ms;
    snprintf(c->name, sizeof(c->name), "%s", name);
    *out = c;
    return 0;
}

/* Bigger socket buffers: fewer wake-ups per MiB on loopback. */
static void sock_tune(int fd, bool tcp)
{
    int sz = 4 << 20, one = 1;

    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    if (tcp) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

static int sock_open_unix(const MigAddress *a, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, a->path, strlen(a->path));
    return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

int mig_channel_connect(const MigAddress *a, const char *name, int stall_ms,
                        MigChannel **out, char *err, size_t errlen)
{
    int fd = -1, ret;

    if (a->kind == MIG_ADDR_UNIX) {
        struct sockaddr_un sa;

        fd = sock_open_unix(a, &sa);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            ret = -errno;
            if (fd >= 0) {
                close(fd);
            }
            return xr_error(err, errlen, ret, "cannot connect to unix:%s: "
                             "%s", a->path, strerror(-ret));
        }
        sock_tune(fd, false);
    } else if (a->kind == MIG_ADDR_TCP) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
        int gai = getaddrinfo(a->host, a->port, &hints, &res);

        if (gai) {
            return xr_error(err, errlen, -EHOSTUNREACH, "cannot resolve "
                             "'%s': %s", a->host, gai_strerror(gai));
        }
        ret = -ECONNREFUSED;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                break;
            }
            ret = -errno;
            if (fd >= 0) {
                close(fd);
            }
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            return xr_error(err, errlen, ret, "cannot connect to tcp:%s:%s: "
                             "%s", a->host, a->port, strerror(-ret));
        }
        sock_tune(fd, true);
    } else {
        return xr_error(err, errlen, -EINVAL, "an fd: channel is given, "
                         "not connected");
    }
    ret = mig_channel_from_fd(fd, name, stall_ms, out);
    if (ret) {
        close(fd);
        return xr_error(err, errlen, ret, "setting up the %s channel: %s",
                         name, strerror(-ret));
    }
    return 0;
}

int mig_listen(const MigAddress *a, char *err, size_t errlen)
{
    int fd = -1, one = 1, ret;

    if (a->kind == MIG_ADDR_UNIX) {
        struct sockaddr_un sa;

        fd = sock_open_unix(a, &sa);
        if (fd >= 0) {
            unlink(a->path);
        }
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(fd, 32) < 0) {
            ret = -errno;
            if (fd >= 0) {
                close(fd);
            }
            return xr_error(err, errlen, ret, "cannot listen on unix:%s: %s",
                             a->path, strerror(-ret));
        }
        return fd;
    }
    if (a->kind == MIG_ADDR_TCP) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE }, *res, *ai;
        int gai = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints,
                              &res);

        if (gai) {
            return xr_error(err, errlen, -EADDRNOTAVAIL, "cannot resolve "
                             "'%s': %s", a->host, gai_strerror(gai));
        }
        ret = -EADDRNOTAVAIL;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd >= 0 &&
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
                           sizeof(one)) == 0 &&
                bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                listen(fd, 32) == 0) {
                break;
            }
            ret = -errno;
            if (fd >= 0) {
                close(fd);
            }
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            return xr_error(err, errlen, ret, "cannot listen on tcp:%s:%s: "
                             "%s", a->host, a->port, strerror(-ret));
        }
        return fd;
    }
    return xr_error(err, errlen, -EINVAL, "cannot listen on an fd: address");
}

int mig_accept(int lfd, int timeout_ms, const bool *cancel)
{
    int waited = 0;

    for (;;) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        int step = timeout_ms < 0 || timeout_ms - waited > 100 ?
                   100 : timeout_ms - waited;
        int n = poll(&p, 1, step);

        if (cancel && __atomic_load_n(cancel, __ATOMIC_ACQUIRE)) {
            return -ECANCELED;
        }
        if (n > 0) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

            if (fd >= 0) {
                sock_tune(fd, false);
                return fd;
            }
            if (errno != EAGAIN && errno != EINTR &&
                errno != ECONNABORTED) {
                return -errno;
            }
        } else if (n < 0 && errno != EINTR) {
            return -errno;
        }
        waited += step;
        if (timeout_ms >= 0 && waited >= timeout_ms) {
            return -ETIMEDOUT;
        }
    }
}

/* ---- whole transfers ------------------------------------------------------------ */

static uint64_t chan_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Bytes written on @c that the peer has not taken yet; -1 if unknown. */
static int chan_queued(MigChannel *c)
{
    int q;

    if (ioctl(c->fd, SIOCOUTQ, &q) == 0 || ioctl(c->fd, FIONREAD, &q) == 0) {
        return q;
    }
    return -1;
}

/* How long a wait slice lasts: the stall check looks at the queue as often. */
#define CHAN_SLICE_MS 100

/*
 * Wait until @c can move bytes in direction @events.  0 or -errno.
 * Reading, any byte that arrives is progress, so one poll() of stall_ms
 * decides.  Writing, the peer makes progress while the queue of bytes it
 * has not taken shrinks, even when the kernel does not call the socket
 * writable yet: -ETIMEDOUT only after stall_ms without that.
 */
static int chan_wait(MigChannel *c, short events)
{
    struct pollfd p = { .fd = c->fd, .events = events };
    bool writing = events & POLLOUT;
    uint64_t since = chan_now_ms();
    int queued = writing ? chan_queued(c) : -1;

    for (;;) {
        int timeout = __atomic_load_n(&c->stall_ms, __ATOMIC_RELAXED), n;

        if (__atomic_load_n(&c->cancelled, __ATOMIC_ACQUIRE) ||
            (!writing && __atomic_load_n(&c->reads_stopped,
                                         __ATOMIC_ACQUIRE))) {
            return -ECANCELED;
        }
        if (timeout >= 0 && queued >= 0) {
            uint64_t el = chan_now_ms() - since;

            if (el >= (uint64_t)timeout) {
                return -ETIMEDOUT;
            }
            timeout = (int)MIN((uint64_t)CHAN_SLICE_MS,
                               (uint64_t)timeout - el);
        }
        n = poll(&p, 1, timeout);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (__atomic_load_n(&c->cancelled, __ATOMIC_ACQUIRE)) {
            return -ECANCELED;
        }
        if (n < 0) {
            return -errno;
        }
        if (n > 0) {
            return 0;
        }
        if (queued < 0) {
            return -ETIMEDOUT;      /* one poll() of stall_ms decided */
        }
        {
            int q = chan_queued(c);

            if (q >= 0 && q < queued) {
                since = chan_now_ms();      /* the peer took some */
            }
            queued = q;
        }
    }
}

static int chan_error(MigChannel *c, int ret, bool writing, char *err,
                      size_t errlen)
{
    const char *what = writing ? "sending on" : "receiving on";

    switch (ret) {
    case -ETIMEDOUT:
        return xr_error(err, errlen, ret, "%s the %s channel: no progress "
                         "for %d ms (the peer is stalled)", what, c->name,
                         __atomic_load_n(&c->stall_ms, __ATOMIC_RELAXED));
    case -ECANCELED:
        return xr_error(err, errlen, ret, "%s the %s channel: cancelled",
                         what, c->name);
    case -ECONNRESET:
    case -EPIPE:
        return xr_error(err, errlen, ret, "%s the %s channel: the peer "
                         "closed the connection", what, c->name);
    default:
        return xr_error(err, errlen, ret, "%s the %s channel: %s", what,
                         c->name, strerror(-ret));
    }
}

/* @n bytes of @iov written: consume them; the iovecs left. */
static int iov_consume(struct iovec **iov, int iovcnt, size_t n)
{
    while (iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        iovcnt--;
    }
    if (iovcnt > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
    return iovcnt;
}

int mig_channel_writev_all(MigChannel *c, struct iovec *iov, int iovcnt,
                           char *err, size_t errlen)
{
    while (iovcnt > 0) {
        ssize_t n = c->ops->writev(c, iov, iovcnt);

        if (n == -EAGAIN || n == -EINTR) {
            int ret = chan_wait(c, POLLOUT);

            if (ret) {
                return chan_error(c, ret, true, err, errlen);
            }
            continue;
        }
        if (n < 0) {
            return chan_error(c, (int)n, true, err, errlen);
        }
        if (__atomic_load_n(&c->cancelled, __ATOMIC_ACQUIRE)) {
            return chan_error(c, -ECANCELED, true, err, errlen);
        }
        /* Read by the migration thread for its statistics. */
        __atomic_add_fetch(&c->bytes_out, (uint64_t)n, __ATOMIC_RELAXED);
        iovcnt = iov_consume(&iov, iovcnt, (size_t)n);
    }
    return 0;
}

int mig_channel_try_writev_all(MigChannel *c, struct iovec *iov, int iovcnt,
                               char *err, size_t errlen)
{
    ssize_t n;

    if (__atomic_load_n(&c->cancelled, __ATOMIC_ACQUIRE)) {
        return chan_error(c, -ECANCELED, true, err, errlen);
    }
    n = c->ops->writev(c, iov, iovcnt);
    if (n == -EAGAIN || n == -EINTR) {
        return -EAGAIN;
    }
    if (n < 0) {
        return chan_error(c, (int)n, true, err, errlen);
    }
    __atomic_add_fetch(&c->bytes_out, (uint64_t)n, __ATOMIC_RELAXED);
    iovcnt = iov_consume(&iov, iovcnt, (size_t)n);
    return iovcnt > 0 ? mig_channel_writev_all(c, iov, iovcnt, err, errlen)
                      : 0;
}

int mig_channel_write_all(MigChannel *c, const void *buf, size_t len,
                          char *err, size_t errlen)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return mig_channel_writev_all(c, &iov, 1, err, errlen);
}

int mig_channel_read_all(MigChannel *c, void *buf, size_t len, char *err,
                         size_t errlen)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = c->ops->read(c, p, len);

        if (n == -EAGAIN || n == -EINTR) {
            int ret = chan_wait(c, POLLIN);

            if (ret) {
                return chan_error(c, ret, false, err, errlen);
            }
            continue;
        }
        if (n == 0) {
            return chan_error(c, __atomic_load_n(&c->cancelled,
                                                 __ATOMIC_ACQUIRE) ||
                                 __atomic_load_n(&c->reads_stopped,
                                                 __ATOMIC_ACQUIRE) ?
                                 -ECANCELED : -ECONNRESET,
                              false, err, errlen);
        }
        if (n < 0) {
            return chan_error(c, (int)n, false, err, errlen);
        }
        __atomic_add_fetch(&c->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void mig_channel_set_stall(MigChannel *c, int ms)
{
    __atomic_store_n(&c->stall_ms, ms, __ATOMIC_RELAXED);
}

void mig_channel_cancel(MigChannel *c)
{
    if (c) {
        c->ops->cancel(c);
    }
}

void mig_channel_stop_reading(MigChannel *c)
{
    if (c) {
        c->ops->stop_reading(c);
    }
}

void mig_channel_close(MigChannel *c)
{
    if (c) {
        c->ops->close(c);
    }
}
