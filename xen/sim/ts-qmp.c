/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-qmp.c - the toolstack's QMP client: what libxl's libxl_qmp.c does
 * with a device model's QMP socket (greeting, capabilities, one command
 * at a time, file descriptors with SCM_RIGHTS).  See toolstack.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "xen/sim/toolstack-internal.h"

/* ---- QMP client ------------------------------------------------------- */

void ts_qmp_close(struct ts_qmp *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    free(q->buf);
    q->buf = NULL;
    q->len = q->cap = 0;
}

/*
 * The next message: one JSON object per line, as QEMU (and xenram) write
 * them.  Returns a new reference, or NULL with @err set.
 */
static json_t *qmp_read(struct ts_qmp *q, uint64_t deadline, char *err,
                        size_t errlen)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;

        if (nl) {
            size_t linelen = (size_t)(nl - q->buf) + 1;
            json_error_t je;
            json_t *msg = NULL;
            bool blank = true;

            for (size_t i = 0; i < linelen; i++)
                if (!strchr(" \t\r\n", q->buf[i]))
                    blank = false;
            if (!blank)
                msg = json_loadb(q->buf, linelen, 0, &je);
            memmove(q->buf, q->buf + linelen, q->len - linelen);
            q->len -= linelen;
            if (blank)
                continue;
            if (!msg || !json_is_object(msg)) {
                json_decref(msg);
                ts_seterr(err, errlen, "QMP: the device model sent something "
                          "that is not a JSON object");
                return NULL;
            }
            return msg;
        }
        {
            struct pollfd p[2] = { { .fd = q->fd, .events = POLLIN },
                                   { .fd = q->pidfd, .events = POLLIN } };
            int left = ts_ms_left(deadline), n;
            ssize_t got;

            if (left == 0) {
                ts_seterr(err, errlen, "QMP: no answer from the device model "
                          "in time");
                return NULL;
            }
            n = poll(p, q->pidfd >= 0 ? 2 : 1, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                ts_seterr(err, errlen, "QMP: poll: %s", strerror(errno));
                return NULL;
            }
            if (n == 0)
                continue;
            if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                ts_seterr(err, errlen, "the device model exited");
                return NULL;
            }
            if (q->len + 4096 > q->cap) {
                size_t nc = q->cap ? q->cap * 2 : 8192;
                char *nb;

                if (nc > (16u << 20)) {
                    ts_seterr(err, errlen, "QMP: message too long");
                    return NULL;
                }
                nb = realloc(q->buf, nc);
                if (!nb) {
                    ts_seterr(err, errlen, "out of memory");
                    return NULL;
                }
                q->buf = nb;
                q->cap = nc;
            }
            got = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                bool dead = ts_pidfd_exited(q->pidfd, 200);

                ts_seterr(err, errlen, "QMP: the device model closed the "
                          "connection%s", dead ? " and exited" : "");
                return NULL;
            }
            q->len += (size_t)got;
        }
    }
}

static int qmp_send(struct ts_qmp *q, const char *text, int pass_fd)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        struct iovec iov = { .iov_base = (char *)text + off,
                             .iov_len = len - off };
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (pass_fd >= 0 && off == 0) {
            struct cmsghdr *c;

            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = sizeof(ctl.buf);
            c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
        }
        n = sendmsg(q->fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    return 0;
}

int ts_qmp_connect(struct ts_qmp *q, const char *path, int pidfd,
                   int timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    json_t *greeting, *v, *ret;
    int last = 0;

    memset(q, 0, sizeof(*q));
    q->fd = -1;
    q->pidfd = pidfd;
    q->next_id = 1;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        ts_seterr(err, errlen, "QMP socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (q->fd < 0) {
            ts_seterr(err, errlen, "socket: %s", strerror(errno));
            return -errno;
        }
        if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        last = errno;
        close(q->fd);
        q->fd = -1;
        if (last != ENOENT && last != ECONNREFUSED && last != EAGAIN) {
            ts_seterr(err, errlen, "cannot connect to QMP at %s: %s", path,
                      strerror(last));
            return -last;
        }
        /* The device model has not listened yet: wait a little, or less
         * if it dies meanwhile. */
        if (ts_ms_left(deadline) == 0) {
            ts_seterr(err, errlen, "the device model did not open its QMP "
                      "socket %s within %d s (%s)", path, timeout_ms / 1000,
                      strerror(last));
            return -ETIMEDOUT;
        }
        if (pidfd >= 0) {
            int ms = ts_ms_left(deadline) < 20 ? ts_ms_left(deadline) : 20;

            if (ts_pidfd_exited(pidfd, ms)) {
                ts_seterr(err, errlen, "the device model exited before it "
                          "opened its QMP socket");
                return -ECHILD;
            }
        } else {
            struct timespec ts = { 0, 20 * 1000000 };

            nanosleep(&ts, NULL);
        }
    }
    greeting = qmp_read(q, deadline, err, errlen);
    if (!greeting)
        goto fail;
    v = json_object_get(json_object_get(greeting, "QMP"), "version");
    if (!json_is_object(v)) {
        json_decref(greeting);
        ts_seterr(err, errlen, "QMP: no greeting from %s", path);
        goto fail;
    }
    q->major = (int)json_integer_value(json_object_get(
        json_object_get(v, "qemu"), "major"));
    q->minor = (int)json_integer_value(json_object_get(
        json_object_get(v, "qemu"), "minor"));
    q->micro = (int)json_integer_value(json_object_get(
        json_object_get(v, "qemu"), "micro"));
    snprintf(q->package, sizeof(q->package), "%s",
             json_string_value(json_object_get(v, "package")) ?: "");
    json_decref(greeting);
    ret = ts_qmp_exec(q, "qmp_capabilities", NULL, -1, ts_ms_left(deadline) + 1,
                      err, errlen);
    if (!ret)
        goto fail;
    json_decref(ret);
    return 0;
fail:
    ts_qmp_close(q);
    return -EPROTO;
}

json_t *ts_qmp_exec(struct ts_qmp *q, const char *cmd, json_t *args,
                    int pass_fd, int timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int64_t id = q->next_id++;
    json_t *req;
    char *text;
    int rc;

    if (q->fd < 0) {
        json_decref(args);
        ts_seterr(err, errlen, "QMP: not connected");
        return NULL;
    }
    req = json_pack("{s:s,s:I}", "execute", cmd, "id", (json_int_t)id);
    if (args)
        json_object_set_new(req, "arguments", args);
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) {
        ts_seterr(err, errlen, "out of memory");
        return NULL;
    }
    /* libxl ends every command with CRLF. */
    {
        size_t l = strlen(text);
        char *t = realloc(text, l + 3);

        if (!t) {
            free(text);
            ts_seterr(err, errlen, "out of memory");
            return NULL;
        }
        text = t;
        memcpy(text + l, "\r\n", 3);
    }
    rc = qmp_send(q, text, pass_fd);
    free(text);
    if (rc) {
        ts_seterr(err, errlen, "QMP %s: cannot send: %s", cmd, strerror(-rc));
        return NULL;
    }
    for (;;) {
        json_t *msg = qmp_read(q, deadline, err, errlen), *rid, *r, *e;

        if (!msg) {
            char tmp[TS_ERRLEN];

            snprintf(tmp, sizeof(tmp), "QMP %s: %s", cmd, err);
            ts_seterr(err, errlen, "%s", tmp);
            return NULL;
        }
        if (json_object_get(msg, "event")) {
            json_decref(msg);
            continue;
        }
        rid = json_object_get(msg, "id");
        if (!json_is_integer(rid) || json_integer_value(rid) != id) {
            /* libxl treats a reply without our id as a protocol error. */
            char *t = json_dumps(msg, JSON_COMPACT);

            ts_seterr(err, errlen, "QMP %s: reply without id %" PRId64 ": %s",
                      cmd, id, t ? t : "?");
            free(t);
            json_decref(msg);
            return NULL;
        }
        r = json_object_get(msg, "return");
        if (r) {
            json_incref(r);
            json_decref(msg);
            return r;
        }
        e = json_object_get(msg, "error");
        ts_seterr(err, errlen, "QMP %s: %s: %s", cmd,
                  json_string_value(json_object_get(e, "class")) ?: "error",
                  json_string_value(json_object_get(e, "desc")) ?: "?");
        json_decref(msg);
        return NULL;
    }
}

/* Execute and discard the answer: 0 or -EIO with @err. */
int ts_qmp_do(struct ts_qmp *q, const char *cmd, json_t *args,
              int timeout_ms, char *err, size_t errlen)
{
    json_t *r = ts_qmp_exec(q, cmd, args, -1, timeout_ms, err, errlen);

    if (!r)
        return -EIO;
    json_decref(r);
    return 0;
}

/* query-status: the status string into @st. */
int ts_qmp_status(struct ts_qmp *q, char *st, size_t stlen, char *err,
                  size_t errlen)
{
    json_t *r = ts_qmp_exec(q, "query-status", NULL, -1, QMP_TIMEOUT_MS, err,
                            errlen);
    const char *s;

    if (!r)
        return -EIO;
    s = json_string_value(json_object_get(r, "status"));
    snprintf(st, stlen, "%s", s ? s : "?");
    json_decref(r);
    return 0;
}
