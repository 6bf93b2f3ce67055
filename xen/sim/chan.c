/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * chan.c - framing for the xensim channel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xen/sim/chan.h"

int xsim_state_dir(char *buf, size_t len)
{
    const char *e = getenv("XENSIM_DIR");
    int n;

    if (e && *e)
        n = snprintf(buf, len, "%s", e);
    else if ((e = getenv("XDG_RUNTIME_DIR")) && *e)
        n = snprintf(buf, len, "%s/xensim", e);
    else
        n = snprintf(buf, len, "/tmp/xensim-%u", (unsigned)getuid());
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

int xsim_path(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

int xsim_connect(const char *dir)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char d[sizeof(sa.sun_path)];
    int fd, rc;

    if (!dir) {
        rc = xsim_state_dir(d, sizeof(d));
        if (rc)
            return rc;
        dir = d;
    }
    rc = xsim_path(sa.sun_path, sizeof(sa.sun_path), dir, XSIM_SOCK_NAME);
    if (rc)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int xsim_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE || errno == ECONNRESET ? -ENOTCONN : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int xsim_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = recv(fd, p, len, 0);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -ETIMEDOUT;
            return errno == ECONNRESET ? -ENOTCONN : -errno;
        }
        if (n == 0)
            return -ENOTCONN;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int xsim_send(int fd, const void *hdr, size_t hlen, const void *payload,
              size_t plen, int pass_fd)
{
    int rc;

    if (pass_fd >= 0) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = { .iov_base = (void *)hdr, .iov_len = hlen };
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1,
            .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        ssize_t n;

        memset(&cm, 0, sizeof(cm));
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        do {
            n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno == EPIPE || errno == ECONNRESET ? -ENOTCONN : -errno;
        rc = xsim_write_all(fd, (const char *)hdr + n, hlen - (size_t)n);
    } else {
        rc = xsim_write_all(fd, hdr, hlen);
    }
    if (rc == 0 && plen)
        rc = xsim_write_all(fd, payload, plen);
    return rc;
}

int xsim_recv_hdr(int fd, void *hdr, size_t hlen, int *fd_out)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = { .iov_base = hdr, .iov_len = hlen };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
    };
    struct cmsghdr *c;
    int got = -1;
    ssize_t n;

    if (fd_out)
        *fd_out = -1;
    do {
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -ETIMEDOUT;
        return errno == ECONNRESET ? -ENOTCONN : -errno;
    }
    if (n == 0)
        return -ENOTCONN;
    for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int)))
            memcpy(&got, CMSG_DATA(c), sizeof(int));
    }
    if (got >= 0) {
        if (fd_out)
            *fd_out = got;
        else
            close(got);
    }
    if ((size_t)n < hlen) {
        int rc = xsim_read_all(fd, (char *)hdr + n, hlen - (size_t)n);

        if (rc) {
            if (fd_out && *fd_out >= 0) {
                close(*fd_out);
                *fd_out = -1;
            }
            return rc;
        }
    }
    return 0;
}

int xsim_skip(int fd, uint64_t len)
{
    char buf[4096];

    while (len) {
        size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
        int rc = xsim_read_all(fd, buf, n);

        if (rc)
            return rc;
        len -= n;
    }
    return 0;
}

int xsim_call(int fd, uint16_t op, uint32_t domid, const uint64_t args[6],
              const void *in, size_t inlen, struct xsim_rep *rep,
              void *out, size_t outcap, uint64_t *outlen, int *fd_out)
{
    struct xsim_req req = {
        .magic = XSIM_MAGIC, .version = XSIM_VERSION, .op = op,
        .domid = domid, .len = inlen,
    };
    int rc, got = -1;

    if (args)
        memcpy(req.arg, args, sizeof(req.arg));
    if (fd_out)
        *fd_out = -1;
    rc = xsim_send(fd, &req, sizeof(req), in, inlen, -1);
    if (rc)
        return rc;
    rc = xsim_recv_hdr(fd, rep, sizeof(*rep), &got);
    if (rc)
        return rc;
    if (rep->magic != XSIM_MAGIC || rep->len > XSIM_MAX_PAYLOAD) {
        rc = -EPROTO;
        goto fail;
    }
    if (outlen)
        *outlen = rep->len;
    if (rep->len) {
        size_t take = rep->len < outcap ? (size_t)rep->len : outcap;

        rc = take ? xsim_read_all(fd, out, take) : 0;
        if (rc == 0 && rep->len > take)
            rc = xsim_skip(fd, rep->len - take);
        if (rc)
            goto fail;
    }
    if (got >= 0) {
        if (fd_out)
            *fd_out = got;
        else
            close(got);
    }
    return 0;
fail:
    if (got >= 0)
        close(got);
    return rc;
}
