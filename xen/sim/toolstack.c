/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * toolstack.c - xensim as libxl and libxc: device-model launch, QMP client,
 * `xl migrate`.  See toolstack.h and docs/toolstack.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenstore.h>

#include "xen/sim/chan.h"
#include "xen/sim/stamp.h"
#include "xen/sim/toolstack.h"

extern char **environ;

/* What libxl waits for a device model (LIBXL_DEVICE_MODEL_START_TIMEOUT). */
#define DM_START_TIMEOUT_MS     60000
/* libxl gives xen-set-global-dirty-log this long. */
#define DIRTY_LOG_TIMEOUT_MS    10000
/* Other QMP commands. */
#define QMP_TIMEOUT_MS          30000
/* Stopping a device model: quit, then SIGTERM, then SIGKILL. */
#define DM_QUIT_WAIT_MS         5000
#define DM_TERM_WAIT_MS         3000
#define DM_KILL_WAIT_MS         3000
/* libxl's XSA-180 limit on the console log (libxl__set_qemu_env_for_xsa_180) */
#define QEMU_CONSOLE_LIMIT      "1048576"

/* Pages per populate/decrease request and per copy batch (libxc: 1024). */
#define BATCH                   1024

/* ---- helpers ------------------------------------------------------------ */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* snprintf for text whose length is not known in advance: truncation is
 * fine (and checked where it is not). */
static int fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));

static int fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ms_left(uint64_t deadline)
{
    uint64_t t = now_ns();

    if (t >= deadline)
        return 0;
    return (int)((deadline - t + 999999) / 1000000);
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot. */
static uint64_t proc_start(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long v = 0;
    ssize_t n;
    int fd, i;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    /* p is at field 3 (state) */
    for (i = 3; i < 22 && p; i++) {
        p = strchr(p + 1, ' ');
    }
    if (p)
        sscanf(p, " %llu", &v);
    return v;
}

/* Has the process of @pidfd exited?  Waits up to @ms. */
static bool pidfd_exited(int pidfd, int ms)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };

    if (pidfd < 0)
        return false;
    return poll(&p, 1, ms) > 0;
}

/* The last lines of a log, indented, for an error message. */
static void log_tail(const char *path, char *out, size_t outlen)
{
    char buf[2048];
    ssize_t n;
    off_t size;
    int fd, lines = 0;
    char *p;

    out[0] = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)sizeof(buf) - 1)
        lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
    else
        lseek(fd, 0, SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    for (p = buf + n; p > buf; p--) {
        if (p[-1] == '\n' && ++lines == 6)
            break;
    }
    {
        size_t o = 0;
        char *line = p, *nl;

        while (line && *line && o + 8 < outlen) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = 0;
            int k = fmt(out + o, outlen - o, "\n  | %s", line);

            if (k < 0)
                break;
            o += (size_t)k;
            line = nl ? nl + 1 : NULL;
        }
    }
}

void ts_lib_dir(char *buf, size_t len)
{
    const char *e = getenv("XENSIM_LIBDIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (e && *e) {
        snprintf(buf, len, "%s", e);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        snprintf(buf, len, "sim");
        return;
    }
    exe[n] = 0;
    *strrchr(exe, '/') = 0;
    snprintf(buf, len, "%.*s/sim", (int)(len > 5 ? len - 5 : 0), exe);
}

/* ---- hosts ------------------------------------------------------------ */

int ts_host_open(struct ts_host *h, const char *dir, char *err, size_t errlen)
{
    uint64_t args[6] = { XSIM_VERSION };
    struct xsim_hostinfo hi;
    struct xsim_rep rep;
    char abs[PATH_MAX];
    int rc;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    if (!realpath(dir, abs) || strlen(abs) >= sizeof(h->dir)) {
        rc = errno ? -errno : -ENAMETOOLONG;
        seterr(err, errlen, "no simulated host in %s: %s", dir,
               strerror(-rc));
        return rc;
    }
    snprintf(h->dir, sizeof(h->dir), "%s", abs);
    h->fd = xsim_connect(h->dir);
    if (h->fd < 0) {
        rc = h->fd;
        seterr(err, errlen, "no simulated host in %s: %s (start one with "
               "'xensim --dir %s start')", h->dir, strerror(-rc), h->dir);
        return rc;
    }
    rc = xsim_call(h->fd, XSIM_OP_HELLO, 0, args, "xensim-toolstack", 16,
                   &rep, NULL, 0, NULL, NULL);
    if (rc == 0 && rep.err)
        rc = -rep.err;
    if (rc == 0) {
        memset(&hi, 0, sizeof(hi));
        rc = xsim_call(h->fd, XSIM_OP_HOST_INFO, 0, NULL, NULL, 0, &rep, &hi,
                       sizeof(hi), NULL, NULL);
        if (rc == 0 && rep.err)
            rc = -rep.err;
    }
    if (rc) {
        seterr(err, errlen, "the host in %s does not answer: %s", h->dir,
               strerror(-rc));
        ts_host_close(h);
        return rc;
    }
    hi.xenstore[sizeof(hi.xenstore) - 1] = 0;
    h->xenstore = strncmp(hi.xenstore, "xenstored", 9) == 0;
    snprintf(h->xs_socket, sizeof(h->xs_socket), "%s/xenstored/socket",
             h->dir);
    return 0;
}

void ts_host_close(struct ts_host *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

int ts_call(struct ts_host *h, uint16_t op, uint32_t domid,
            const uint64_t args[6], const void *in, size_t inlen,
            struct xsim_rep *rep, void *out, size_t outcap, int *fd_out)
{
    if (fd_out)
        *fd_out = -1;
    return xsim_call(h->fd, op, domid, args, in, inlen, rep, out, outcap,
                     NULL, fd_out);
}

/* ts_call folded into one result: 0 or -errno (channel or operation). */
static int call1(struct ts_host *h, uint16_t op, uint32_t domid,
                 const uint64_t args[6], const void *in, size_t inlen,
                 struct xsim_rep *rep, void *out, size_t outcap, int *fd_out)
{
    int rc = ts_call(h, op, domid, args, in, inlen, rep, out, outcap, fd_out);

    if (rc)
        return rc;
    return rep->err ? -rep->err : 0;
}

int ts_dominfo(struct ts_host *h, uint32_t domid, struct xsim_dominfo *out)
{
    uint64_t args[6] = { 1 };
    struct xsim_rep rep;
    int rc = call1(h, XSIM_OP_DOM_GETINFO, domid, args, NULL, 0, &rep, out,
                   sizeof(*out), NULL);

    if (rc)
        return rc;
    if (rep.ret != 1 || out->domid != domid)
        return -ESRCH;
    return 0;
}

static int dom_simple(struct ts_host *h, uint16_t op, uint32_t domid)
{
    struct xsim_rep rep;

    return call1(h, op, domid, NULL, NULL, 0, &rep, NULL, 0, NULL);
}

/* ---- xenstore --------------------------------------------------------- */

static struct xs_handle *xs_for(const struct ts_host *h)
{
    if (!h->xenstore)
        return NULL;
    /* libxenstore reads the socket path when the handle opens. */
    setenv("XENSTORED_PATH", h->xs_socket, 1);
    return xs_open(XS_OPEN_SOCKETONLY);
}

static void xs_write_str(const struct ts_host *h, const char *path,
                         const char *val)
{
    struct xs_handle *xs = xs_for(h);

    if (!xs)
        return;
    if (!xs_write(xs, XBT_NULL, path, val, (unsigned)strlen(val)))
        fprintf(stderr, "xensim: cannot write %s in xenstore: %s\n", path,
                strerror(errno));
    xs_close(xs);
}

/*
 * Copy the subtree @from of one xenstore to @to in another (paths and
 * values; permissions are the default ones of a dom0 write).
 */
static void xs_copy_tree(struct xs_handle *a, const char *from,
                         struct xs_handle *b, const char *to, int depth)
{
    unsigned n = 0, len = 0;
    char **ents, *v;

    if (depth > 8)
        return;
    v = xs_read(a, XBT_NULL, from, &len);
    if (v) {
        xs_write(b, XBT_NULL, to, v, len);
        free(v);
    }
    ents = xs_directory(a, XBT_NULL, from, &n);
    for (unsigned i = 0; ents && i < n; i++) {
        char f[512], t[512];

        fmt(f, sizeof(f), "%s/%s", from, ents[i]);
        fmt(t, sizeof(t), "%s/%s", to, ents[i]);
        xs_copy_tree(a, f, b, t, depth + 1);
    }
    free(ents);
}

/*
 * libxl's emulator xenstore data (libxl__save_emulator_xenstore_data and
 * its restore): the device model's physmap keys travel with the
 * migration and are written for the new domain before its device model
 * starts.  Returns how many entries the source had.
 */
static unsigned copy_emulator_xenstore(const struct ts_host *src,
                                       uint32_t sdom,
                                       const struct ts_host *dst,
                                       uint32_t ddom)
{
    struct xs_handle *a = xs_for(src), *b;
    char from[128], to[128];
    unsigned n = 0;
    char **ents;

    if (!a)
        return 0;
    snprintf(from, sizeof(from), "/local/domain/0/device-model/%u/physmap",
             sdom);
    ents = xs_directory(a, XBT_NULL, from, &n);
    free(ents);
    b = n ? xs_for(dst) : NULL;
    if (b) {
        snprintf(to, sizeof(to), "/local/domain/0/device-model/%u/physmap",
                 ddom);
        xs_copy_tree(a, from, b, to, 0);
        xs_close(b);
    }
    xs_close(a);
    return n;
}

/* ---- domain records ------------------------------------------------------ */

static void record_path(char *buf, size_t len, const char *dir,
                        uint32_t domid)
{
    fmt(buf, len, "%s/domain-%u.json", dir, domid);
}

int ts_domcfg_add_arg(struct ts_domcfg *c, const char *arg)
{
    char **n = realloc(c->dm_args, (c->ndm_args + 2) * sizeof(*n));

    if (!n)
        return -ENOMEM;
    c->dm_args = n;
    n[c->ndm_args] = strdup(arg);
    if (!n[c->ndm_args])
        return -ENOMEM;
    n[++c->ndm_args] = NULL;
    return 0;
}

void ts_domcfg_free(struct ts_domcfg *c)
{
    for (unsigned i = 0; i < c->ndm_args; i++)
        free(c->dm_args[i]);
    free(c->dm_args);
    c->dm_args = NULL;
    c->ndm_args = 0;
}

int ts_domcfg_save(const char *dir, uint32_t domid, const struct ts_domcfg *c,
                   char *err, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    json_t *o, *args;
    int rc = 0;

    args = json_array();
    for (unsigned i = 0; i < c->ndm_args; i++)
        json_array_append_new(args, json_string(c->dm_args[i]));
    o = json_pack("{s:i,s:s,s:s,s:I,s:I,s:i}", "domid", (int)domid,
                  "name", c->name, "workload", c->workload,
                  "mem_mib", (json_int_t)c->mem_mib,
                  "vram_mib", (json_int_t)c->vram_mib, "vcpus", (int)c->vcpus);
    if (!o) {
        json_decref(args);
        return -ENOMEM;
    }
    if (c->maxmem_mib > c->mem_mib)
        json_object_set_new(o, "maxmem_mib",
                            json_integer((json_int_t)c->maxmem_mib));
    if (c->target_memkb)
        json_object_set_new(o, "target_memkb",
                            json_integer((json_int_t)c->target_memkb));
    if (c->max_memkb)
        json_object_set_new(o, "max_memkb",
                            json_integer((json_int_t)c->max_memkb));
    if (c->dm[0])
        json_object_set_new(o, "device_model", json_pack(
            "{s:s,s:o,s:I,s:I}", "path", c->dm, "args", args,
            "pid", (json_int_t)c->dm_pid, "start", (json_int_t)c->dm_start));
    else
        json_decref(args);
    record_path(path, sizeof(path), dir, domid);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(o, tmp, JSON_INDENT(2)) || rename(tmp, path)) {
        rc = -(errno ? errno : EIO);
        seterr(err, errlen, "cannot write %s: %s", path, strerror(-rc));
        unlink(tmp);
    }
    json_decref(o);
    return rc;
}

int ts_domcfg_load(const char *dir, uint32_t domid, struct ts_domcfg *c,
                   char *err, size_t errlen)
{
    char path[PATH_MAX];
    json_error_t je;
    json_t *o, *dm;
    const char *s;

    memset(c, 0, sizeof(*c));
    record_path(path, sizeof(path), dir, domid);
    o = json_load_file(path, 0, &je);
    if (!o) {
        if (access(path, F_OK) < 0)
            return -ENOENT;
        seterr(err, errlen, "%s: %s", path, je.text);
        return -EINVAL;
    }
    if ((s = json_string_value(json_object_get(o, "name"))))
        snprintf(c->name, sizeof(c->name), "%s", s);
    if ((s = json_string_value(json_object_get(o, "workload"))))
        snprintf(c->workload, sizeof(c->workload), "%s", s);
    c->mem_mib = (uint64_t)json_integer_value(json_object_get(o, "mem_mib"));
    c->vram_mib = (uint64_t)json_integer_value(json_object_get(o, "vram_mib"));
    c->maxmem_mib = (uint64_t)json_integer_value(json_object_get(o,
                                                                  "maxmem_mib"));
    c->target_memkb = (uint64_t)json_integer_value(json_object_get(o,
                                                            "target_memkb"));
    c->max_memkb = (uint64_t)json_integer_value(json_object_get(o,
                                                            "max_memkb"));
    c->vcpus = (unsigned)json_integer_value(json_object_get(o, "vcpus"));
    dm = json_object_get(o, "device_model");
    if (json_is_object(dm)) {
        json_t *a = json_object_get(dm, "args"), *v;
        size_t i;

        if ((s = json_string_value(json_object_get(dm, "path"))))
            snprintf(c->dm, sizeof(c->dm), "%s", s);
        c->dm_pid = (pid_t)json_integer_value(json_object_get(dm, "pid"));
        c->dm_start = (uint64_t)json_integer_value(json_object_get(dm,
                                                                   "start"));
        json_array_foreach(a, i, v) {
            if (json_is_string(v) &&
                ts_domcfg_add_arg(c, json_string_value(v))) {
                json_decref(o);
                ts_domcfg_free(c);
                return -ENOMEM;
            }
        }
    }
    json_decref(o);
    if (!c->vcpus)
        c->vcpus = 1;
    return 0;
}

void ts_domcfg_remove(const char *dir, uint32_t domid)
{
    char path[PATH_MAX];

    record_path(path, sizeof(path), dir, domid);
    unlink(path);
}

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
                seterr(err, errlen, "QMP: the device model sent something "
                       "that is not a JSON object");
                return NULL;
            }
            return msg;
        }
        {
            struct pollfd p[2] = { { .fd = q->fd, .events = POLLIN },
                                   { .fd = q->pidfd, .events = POLLIN } };
            int left = ms_left(deadline), n;
            ssize_t got;

            if (left == 0) {
                seterr(err, errlen, "QMP: no answer from the device model "
                       "in time");
                return NULL;
            }
            n = poll(p, q->pidfd >= 0 ? 2 : 1, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                seterr(err, errlen, "QMP: poll: %s", strerror(errno));
                return NULL;
            }
            if (n == 0)
                continue;
            if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                seterr(err, errlen, "the device model exited");
                return NULL;
            }
            if (q->len + 4096 > q->cap) {
                size_t nc = q->cap ? q->cap * 2 : 8192;
                char *nb;

                if (nc > (16u << 20)) {
                    seterr(err, errlen, "QMP: message too long");
                    return NULL;
                }
                nb = realloc(q->buf, nc);
                if (!nb) {
                    seterr(err, errlen, "out of memory");
                    return NULL;
                }
                q->buf = nb;
                q->cap = nc;
            }
            got = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                bool dead = pidfd_exited(q->pidfd, 200);

                seterr(err, errlen, "QMP: the device model closed the "
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
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    json_t *greeting, *v, *ret;
    int last = 0;

    memset(q, 0, sizeof(*q));
    q->fd = -1;
    q->pidfd = pidfd;
    q->next_id = 1;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        seterr(err, errlen, "QMP socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (;;) {
        q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (q->fd < 0) {
            seterr(err, errlen, "socket: %s", strerror(errno));
            return -errno;
        }
        if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        last = errno;
        close(q->fd);
        q->fd = -1;
        if (last != ENOENT && last != ECONNREFUSED && last != EAGAIN) {
            seterr(err, errlen, "cannot connect to QMP at %s: %s", path,
                   strerror(last));
            return -last;
        }
        /* The device model has not listened yet: wait a little, or less
         * if it dies meanwhile. */
        if (ms_left(deadline) == 0) {
            seterr(err, errlen, "the device model did not open its QMP "
                   "socket %s within %d s (%s)", path, timeout_ms / 1000,
                   strerror(last));
            return -ETIMEDOUT;
        }
        if (pidfd >= 0) {
            if (pidfd_exited(pidfd, ms_left(deadline) < 20 ? ms_left(deadline)
                                                           : 20)) {
                seterr(err, errlen, "the device model exited before it "
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
        seterr(err, errlen, "QMP: no greeting from %s", path);
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
    ret = ts_qmp_exec(q, "qmp_capabilities", NULL, -1, ms_left(deadline) + 1,
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
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    int64_t id = q->next_id++;
    json_t *req;
    char *text;
    int rc;

    if (q->fd < 0) {
        json_decref(args);
        seterr(err, errlen, "QMP: not connected");
        return NULL;
    }
    req = json_pack("{s:s,s:I}", "execute", cmd, "id", (json_int_t)id);
    if (args)
        json_object_set_new(req, "arguments", args);
    text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    /* libxl ends every command with CRLF. */
    {
        size_t l = strlen(text);
        char *t = realloc(text, l + 3);

        if (!t) {
            free(text);
            seterr(err, errlen, "out of memory");
            return NULL;
        }
        text = t;
        memcpy(text + l, "\r\n", 3);
    }
    rc = qmp_send(q, text, pass_fd);
    free(text);
    if (rc) {
        seterr(err, errlen, "QMP %s: cannot send: %s", cmd, strerror(-rc));
        return NULL;
    }
    for (;;) {
        json_t *msg = qmp_read(q, deadline, err, errlen), *rid, *r, *e;

        if (!msg) {
            char tmp[TS_ERRLEN];

            snprintf(tmp, sizeof(tmp), "QMP %s: %s", cmd, err);
            seterr(err, errlen, "%s", tmp);
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

            seterr(err, errlen, "QMP %s: reply without id %" PRId64 ": %s",
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
        seterr(err, errlen, "QMP %s: %s: %s", cmd,
               json_string_value(json_object_get(e, "class")) ?: "error",
               json_string_value(json_object_get(e, "desc")) ?: "?");
        json_decref(msg);
        return NULL;
    }
}

/* Execute and discard the answer: 0 or -EIO with @err. */
static int qmp_do(struct ts_qmp *q, const char *cmd, json_t *args,
                  int timeout_ms, char *err, size_t errlen)
{
    json_t *r = ts_qmp_exec(q, cmd, args, -1, timeout_ms, err, errlen);

    if (!r)
        return -EIO;
    json_decref(r);
    return 0;
}

/* query-status: the status string into @st. */
static int qmp_status(struct ts_qmp *q, char *st, size_t stlen, char *err,
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

/* ---- device model ------------------------------------------------------ */

void ts_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

struct argv_b {
    char **v;
    size_t n, cap;
    bool oom;
};

static void add(struct argv_b *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add(struct argv_b *b, const char *fmt, ...)
{
    va_list ap;
    char *s;

    if (b->oom)
        return;
    if (b->n + 2 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 32;
        char **nv = realloc(b->v, nc * sizeof(*nv));

        if (!nv) {
            b->oom = true;
            return;
        }
        b->v = nv;
        b->cap = nc;
    }
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        b->oom = true;
        s = NULL;
    }
    va_end(ap);
    b->v[b->n++] = s;
    b->v[b->n] = NULL;
}

/*
 * libxl__build_device_model_args_new() for what xensim's guests are: an
 * HVM guest (type="hvm") with xl's defaults and vnc=0 (headless), a
 * standard VGA with videoram= MiB, no disks, no NICs, QMP on sockets in
 * the run directory (no dm_restrict).  The host's state directory is
 * libxl's run directory (/var/run/xen).
 */
char **ts_dm_argv(const struct ts_host *h, uint32_t domid,
                  const struct ts_domcfg *c, char *const *extra,
                  unsigned nextra, int incoming_fd)
{
    struct argv_b b = { 0 };
    uint64_t ram;

    add(&b, "%s", c->dm);
    add(&b, "-xen-domid");
    add(&b, "%u", domid);
    add(&b, "-no-shutdown");
    add(&b, "-chardev");
    add(&b, "socket,id=libxl-cmd,path=%s/qmp-libxl-%u,server=on,wait=off",
        h->dir, domid);
    add(&b, "-mon");
    add(&b, "chardev=libxl-cmd,mode=control");
    add(&b, "-chardev");
    add(&b, "socket,id=libxenstat-cmd,path=%s/qmp-libxenstat-%u,server=on,"
        "wait=off", h->dir, domid);
    add(&b, "-mon");
    add(&b, "chardev=libxenstat-cmd,mode=control");
    add(&b, "-nodefaults");
    add(&b, "-no-user-config");
    add(&b, "-name");
    add(&b, "%s", c->name);
    add(&b, "-vnc");
    add(&b, "none");
    add(&b, "-display");
    add(&b, "none");
    if (c->vram_mib) {
        add(&b, "-device");
        add(&b, "VGA,vgamem_mb=%" PRIu64, c->vram_mib);
    }
    add(&b, "-boot");
    add(&b, "order=cda");
    if (c->vcpus > 1) {
        add(&b, "-smp");
        add(&b, "%u,maxcpus=%u", c->vcpus, c->vcpus);
    }
    add(&b, "-net");
    add(&b, "none");
    if (incoming_fd >= 0) {
        add(&b, "-incoming");
        add(&b, "fd:%d", incoming_fd);
    }
    for (unsigned i = 0; i < c->ndm_args; i++)
        add(&b, "%s", c->dm_args[i]);
    for (unsigned i = 0; i < nextra; i++)
        add(&b, "%s", extra[i]);
    add(&b, "-machine");
    add(&b, "xenfv,suppress-vmdesc=on");
    add(&b, "-m");
    /* libxl: b_info.max_memkb less the video memory.  At create that is
     * memory=; a migration's receiver has the static-max it was sent, so
     * after mem-max (or create --maxmem) its device model is told more
     * RAM than the guest has (xenram keeps the saved layout).  RAM
     * hot-plug room (create --maxmem): QEMU's maxmem=, which libxl,
     * having no RAM hot-plug, never writes; the video memory is not guest
     * RAM, so it counts in neither. */
    ram = c->max_memkb / 1024 > c->mem_mib ? c->max_memkb / 1024 : c->mem_mib;
    if (c->maxmem_mib > c->mem_mib)
        add(&b, "%" PRIu64 ",maxmem=%" PRIu64 "M", ram - c->vram_mib,
            (c->maxmem_mib > ram ? c->maxmem_mib : ram) - c->vram_mib);
    else
        add(&b, "%" PRIu64, ram - c->vram_mib);
    if (b.oom) {
        for (size_t i = 0; i < b.n; i++)
            free(b.v[i]);
        free(b.v);
        return NULL;
    }
    return b.v;
}

/* environ with @set (NAME=VALUE strings) replacing or adding entries. */
static char **make_env(char **set, size_t nset)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + nset + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;

        for (size_t j = 0; j < nset && !replaced; j++) {
            size_t l = strcspn(set[j], "=") + 1;

            replaced = strncmp(environ[i], set[j], l) == 0;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < nset; j++)
        env[k++] = set[j];
    env[k] = NULL;
    return env;
}

int ts_dm_launch(const struct ts_host *h, uint32_t domid,
                 const struct ts_domcfg *c, char *const *extra,
                 unsigned nextra, int incoming_fd, struct ts_dm *dm,
                 char *err, size_t errlen)
{
    /* The inherited -incoming descriptor is 3 in the device model. */
    char **argv = ts_dm_argv(h, domid, c, extra, nextra,
                             incoming_fd >= 0 ? 3 : -1);
    char *set[8] = { NULL }, libs[PATH_MAX], ldp[PATH_MAX * 2];
    const char *old = getenv("LD_LIBRARY_PATH");
    char **env = NULL;
    size_t nset = 0;
    int devnull = -1, log = -1, rc = 0;
    pid_t pid;

    memset(dm, 0, sizeof(*dm));
    dm->pidfd = -1;
    fmt(dm->qmp, sizeof(dm->qmp), "%s/qmp-libxl-%u", h->dir, domid);
    snprintf(dm->log, sizeof(dm->log), "%s/qemu-dm-%s.log", h->dir, c->name);
    if (!argv) {
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (access(c->dm, X_OK) < 0) {
        rc = -errno;
        seterr(err, errlen, "device model %s: %s", c->dm, strerror(errno));
        goto out;
    }

    /* The stand-in Xen libraries first, whatever else the caller has. */
    ts_lib_dir(libs, sizeof(libs));
    if (old && *old) {
        size_t l = strlen(libs);
        const char *p = old;
        bool there = false;

        while (*p && !there) {
            size_t sl = strcspn(p, ":");

            there = sl == l && strncmp(p, libs, l) == 0;
            p += sl + (p[sl] == ':');
        }
        if (there)
            snprintf(ldp, sizeof(ldp), "LD_LIBRARY_PATH=%s", old);
        else
            snprintf(ldp, sizeof(ldp), "LD_LIBRARY_PATH=%s:%s", libs, old);
    } else {
        snprintf(ldp, sizeof(ldp), "LD_LIBRARY_PATH=%s", libs);
    }
    if (asprintf(&set[nset++], "XEN_DOMAIN_ID=%u", domid) < 0 ||
        asprintf(&set[nset++], "XEN_QEMU_CONSOLE_LIMIT=%s",
                 QEMU_CONSOLE_LIMIT) < 0 ||
        asprintf(&set[nset++], "XENSIM_DIR=%s", h->dir) < 0 ||
        asprintf(&set[nset++], "XENSTORED_PATH=%s", h->xs_socket) < 0 ||
        asprintf(&set[nset++], "XENSTORED_RUNDIR=%s/xenstored", h->dir) < 0 ||
        !(set[nset++] = strdup(ldp))) {
        set[nset - 1] = NULL;
        rc = -ENOMEM;
        seterr(err, errlen, "out of memory");
        goto out;
    }
    env = make_env(set, nset);
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    log = open(dm->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (!env || devnull < 0 || log < 0) {
        rc = log < 0 ? -errno : -ENOMEM;
        seterr(err, errlen, "cannot open the device model's log %s: %s",
               dm->log, strerror(-rc));
        goto out;
    }
    {
        /* A line per launch, as libxl's qemu-dm-<name>.log has. */
        char line[256];
        int l = snprintf(line, sizeof(line), "xensim: launching the device "
                         "model of d%u (%s)\n", domid, h->dir);

        (void)!write(log, line, (size_t)l);
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        seterr(err, errlen, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        sigset_t none;
        int in = incoming_fd >= 0 ? fcntl(incoming_fd, F_DUPFD, 10) : -1;

        /* libxl runs the device model detached, in a session of its own. */
        setsid();
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        dup2(devnull, 0);
        dup2(log, 1);
        dup2(log, 2);
        if (in >= 0) {
            dup2(in, 3);
            fcntl(3, F_SETFD, 0);
        }
        syscall(SYS_close_range, in >= 0 ? 4u : 3u, ~0u, 0u);
        execve(c->dm, argv, env);
        fprintf(stderr, "xensim: cannot run %s: %s\n", c->dm,
                strerror(errno));
        _exit(127);
    }
    dm->pid = pid;
    dm->child = true;
    dm->pidfd = pidfd_open_(pid);
    dm->start = proc_start(pid);
out:
    if (devnull >= 0)
        close(devnull);
    if (log >= 0)
        close(log);
    free(env);
    for (size_t i = 0; i < nset; i++)
        free(set[i]);
    ts_argv_free(argv);
    return rc;
}

/* Why a launched device model is not there any more, for messages. */
static void dm_why(struct ts_dm *dm, char *buf, size_t len)
{
    int st;

    buf[0] = 0;
    if (!dm->child || !pidfd_exited(dm->pidfd, 0))
        return;
    if (waitpid(dm->pid, &st, WNOHANG) == dm->pid) {
        dm->child = false;
        dm->pid = 0;
        if (WIFEXITED(st))
            snprintf(buf, len, " (exit status %d)", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            snprintf(buf, len, " (killed by signal %d)", WTERMSIG(st));
    }
}

/* Append the reason and the log's tail to @err. */
static void dm_explain(struct ts_dm *dm, char *err, size_t errlen)
{
    char why[64], tail[700], tmp[TS_ERRLEN];

    dm_why(dm, why, sizeof(why));
    log_tail(dm->log, tail, sizeof(tail));
    fmt(tmp, sizeof(tmp), "%s%s; its log %s ends:%s", err, why, dm->log,
             tail[0] ? tail : " (empty)");
    seterr(err, errlen, "%s", tmp);
}

int ts_dm_wait_running(const struct ts_host *h, uint32_t domid,
                       struct ts_dm *dm, int timeout_ms, char *err,
                       size_t errlen)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct xs_handle *xs;
    char path[128];
    int rc = -ETIMEDOUT;

    if (!h->xenstore)
        return 0;               /* nothing to wait on: QMP said enough */
    xs = xs_for(h);
    if (!xs) {
        seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
               strerror(errno));
        return -EIO;
    }
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state",
             domid);
    /* Watch first, then read: a write in between is not missed. */
    if (!xs_watch(xs, path, "xensim-dm")) {
        seterr(err, errlen, "xenstore watch on %s: %s", path,
               strerror(errno));
        xs_close(xs);
        return -EIO;
    }
    for (;;) {
        unsigned len = 0;
        char *v = xs_read(xs, XBT_NULL, path, &len);
        struct pollfd p[2] = { { .fd = xs_fileno(xs), .events = POLLIN },
                               { .fd = dm->pidfd, .events = POLLIN } };
        bool running = v && strcmp(v, "running") == 0;
        int left, n;

        free(v);
        if (running) {
            rc = 0;
            break;
        }
        left = ms_left(deadline);
        if (left == 0) {
            seterr(err, errlen, "the device model did not write %s = "
                   "running within %d s", path, timeout_ms / 1000);
            break;
        }
        n = poll(p, dm->pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno != EINTR) {
            seterr(err, errlen, "poll: %s", strerror(errno));
            rc = -errno;
            break;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            seterr(err, errlen, "the device model exited before it was "
                   "ready");
            rc = -ECHILD;
            break;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char **w;

            while ((w = xs_check_watch(xs)))
                free(w);
        }
    }
    xs_unwatch(xs, path, "xensim-dm");
    xs_close(xs);
    return rc;
}

int ts_dm_startup(const struct ts_host *h, uint32_t domid, struct ts_dm *dm,
                  struct ts_qmp *q, bool incoming, int timeout_ms,
                  char *err, size_t errlen)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
    char st[32];
    int rc;

    rc = ts_qmp_connect(q, dm->qmp, dm->pidfd, timeout_ms, err, errlen);
    if (rc)
        return rc;
    rc = qmp_status(q, st, sizeof(st), err, errlen);
    /* Loading the incoming state may still be going on. */
    while (rc == 0 && incoming && strcmp(st, "inmigrate") == 0 &&
           ms_left(deadline)) {
        if (pidfd_exited(dm->pidfd, 50))
            break;
        rc = qmp_status(q, st, sizeof(st), err, errlen);
    }
    if (rc)
        goto fail;
    if (incoming) {
        /* With -S (dm_restrict) it waits for cont; without, it runs as
         * soon as the state is loaded, as QEMU does, and libxl waits for
         * xenstore's state = running.  The domain stays paused either
         * way until the toolstack unpauses it. */
        if (strcmp(st, "running") == 0) {
            rc = ts_dm_wait_running(h, domid, dm, ms_left(deadline) + 1,
                                    err, errlen);
            if (rc)
                goto fail;
        } else if (strcmp(st, "paused") != 0) {
            seterr(err, errlen, "the incoming device model reports status "
                   "'%s', expected 'paused' or 'running'", st);
            rc = -EPROTO;
            goto fail;
        }
        return 0;
    }
    if (strcmp(st, "prelaunch") == 0) {
        rc = qmp_do(q, "cont", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc)
            goto fail;
    } else if (strcmp(st, "running") != 0) {
        seterr(err, errlen, "the device model reports status '%s', expected "
               "'running' or 'prelaunch'", st);
        rc = -EPROTO;
        goto fail;
    }
    rc = ts_dm_wait_running(h, domid, dm, ms_left(deadline) + 1, err,
                            errlen);
    if (rc)
        goto fail;
    return 0;
fail:
    ts_qmp_close(q);
    return rc ? rc : -EIO;
}

int ts_dm_attach(const struct ts_host *h, uint32_t domid,
                 const struct ts_domcfg *c, struct ts_dm *dm)
{
    memset(dm, 0, sizeof(*dm));
    dm->pidfd = -1;
    fmt(dm->qmp, sizeof(dm->qmp), "%s/qmp-libxl-%u", h->dir, domid);
    snprintf(dm->log, sizeof(dm->log), "%s/qemu-dm-%s.log", h->dir, c->name);
    if (!c->dm[0] || c->dm_pid <= 0)
        return -ESRCH;
    dm->pidfd = pidfd_open_(c->dm_pid);
    if (dm->pidfd < 0)
        return -ESRCH;
    /* The pid must still be the process we started, and alive. */
    if (proc_start(c->dm_pid) != c->dm_start ||
        pidfd_exited(dm->pidfd, 0)) {
        close(dm->pidfd);
        dm->pidfd = -1;
        return -ESRCH;
    }
    dm->pid = c->dm_pid;
    dm->start = c->dm_start;
    /* A child of ours only if we launched it in this process. */
    dm->child = waitpid(dm->pid, NULL, WNOHANG) == 0;
    return 0;
}

void ts_dm_release(struct ts_dm *dm)
{
    if (dm->pidfd >= 0)
        close(dm->pidfd);
    dm->pidfd = -1;
}

static bool dm_wait_gone(struct ts_dm *dm, int ms)
{
    bool gone;

    if (dm->pidfd >= 0) {
        gone = pidfd_exited(dm->pidfd, ms);
    } else {
        uint64_t deadline = now_ns() + (uint64_t)ms * 1000000ull;

        for (;;) {
            gone = kill(dm->pid, 0) < 0 && errno == ESRCH;
            if (gone || !ms_left(deadline))
                break;
            {
                struct timespec ts = { 0, 10 * 1000000 };

                nanosleep(&ts, NULL);
            }
        }
    }
    if (gone && dm->child) {
        waitpid(dm->pid, NULL, 0);
        dm->child = false;
    }
    return gone;
}

static void dm_signal(struct ts_dm *dm, int sig)
{
    if (dm->pidfd >= 0 &&
        syscall(SYS_pidfd_send_signal, dm->pidfd, sig, NULL, 0) == 0)
        return;
    if (dm->pidfd < 0)
        kill(dm->pid, sig);
}

int ts_dm_stop(struct ts_dm *dm, bool qmp, char *err, size_t errlen)
{
    if (!dm->pid) {
        ts_dm_release(dm);
        return 0;
    }
    if (qmp && !pidfd_exited(dm->pidfd, 0)) {
        struct ts_qmp q;
        char e[TS_ERRLEN];

        if (ts_qmp_connect(&q, dm->qmp, dm->pidfd, 2000, e, sizeof(e)) == 0) {
            json_t *r = ts_qmp_exec(&q, "quit", NULL, -1, 2000, e, sizeof(e));

            json_decref(r);
            ts_qmp_close(&q);
        }
        if (dm_wait_gone(dm, DM_QUIT_WAIT_MS))
            goto gone;
    }
    dm_signal(dm, SIGTERM);
    if (dm_wait_gone(dm, DM_TERM_WAIT_MS))
        goto gone;
    dm_signal(dm, SIGKILL);
    if (dm_wait_gone(dm, DM_KILL_WAIT_MS))
        goto gone;
    seterr(err, errlen, "the device model (pid %d) does not exit",
           (int)dm->pid);
    return -ETIMEDOUT;
gone:
    ts_dm_release(dm);
    dm->pid = 0;
    return 0;
}

/* ---- xensim create --dm / destroy / host cleanup ----------------------- */

static void record_dm_pid(const struct ts_host *h, uint32_t domid, pid_t pid)
{
    char path[96], val[32];

    /* Where libxl keeps it (libxl__spawn_record_pid). */
    snprintf(path, sizeof(path), "/local/domain/%u/image/device-model-pid",
             domid);
    snprintf(val, sizeof(val), "%d", (int)pid);
    xs_write_str(h, path, val);
}

int ts_create_dm(struct ts_host *h, uint32_t domid, struct ts_domcfg *c,
                 int timeout_ms, char *err, size_t errlen)
{
    struct ts_qmp q;
    struct ts_dm dm;
    int rc;

    if (!h->xenstore) {
        seterr(err, errlen, "the host in %s runs no xenstore, which the "
               "device model needs (run 'make xenstored', then start the "
               "host with --xenstore on)", h->dir);
        return -ENOTSUP;
    }
    if (c->vram_mib >= c->mem_mib) {
        seterr(err, errlen, "the device model needs guest RAM: --mem must "
               "exceed --vram");
        return -EINVAL;
    }
    rc = ts_dm_launch(h, domid, c, NULL, 0, -1, &dm, err, errlen);
    if (rc)
        return rc;
    /* Recorded at once, so that whatever happens to us from now on, the
     * host can stop it (xensim stop, destroy). */
    c->dm_pid = dm.pid;
    c->dm_start = dm.start;
    rc = ts_domcfg_save(h->dir, domid, c, err, errlen);
    if (rc == 0)
        rc = ts_dm_startup(h, domid, &dm, &q, false,
                           timeout_ms > 0 ? timeout_ms : DM_START_TIMEOUT_MS,
                           err, errlen);
    if (rc) {
        char e2[128];

        dm_explain(&dm, err, errlen);
        ts_dm_stop(&dm, false, e2, sizeof(e2));
        ts_domcfg_remove(h->dir, domid);
        c->dm_pid = 0;
        return rc;
    }
    ts_qmp_close(&q);
    record_dm_pid(h, domid, dm.pid);
    ts_dm_release(&dm);
    return 0;
}

int ts_destroy(struct ts_host *h, uint32_t domid, char *err, size_t errlen)
{
    struct ts_domcfg c;
    struct ts_dm dm;
    int rc;

    /* libxl_domain_destroy: the device model goes first. */
    if (ts_domcfg_load(h->dir, domid, &c, NULL, 0) == 0) {
        if (ts_dm_attach(h, domid, &c, &dm) == 0) {
            rc = ts_dm_stop(&dm, true, err, errlen);
            if (rc)
                fprintf(stderr, "xensim: %s\n", err);
        }
        ts_domcfg_free(&c);
    }
    rc = dom_simple(h, XSIM_OP_DOM_DESTROY, domid);
    if (rc) {
        seterr(err, errlen, "destroy d%u: %s", domid, strerror(-rc));
        return rc;
    }
    ts_domcfg_remove(h->dir, domid);
    return 0;
}

void ts_host_cleanup(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        struct ts_host h = { .fd = -1 };
        struct ts_domcfg c;
        struct ts_dm dm;
        unsigned domid;
        char tail[8], path[PATH_MAX];

        if (sscanf(e->d_name, "domain-%u.jso%1[n]", &domid, tail) == 2) {
            snprintf(h.dir, sizeof(h.dir), "%s", dir);
            if (ts_domcfg_load(dir, domid, &c, NULL, 0) == 0) {
                if (ts_dm_attach(&h, domid, &c, &dm) == 0) {
                    char msg[TS_ERRLEN];

                    fprintf(stderr, "xensim: stopping the device model of "
                            "d%u (pid %d)\n", domid, (int)dm.pid);
                    if (ts_dm_stop(&dm, false, msg, sizeof(msg)))
                        fprintf(stderr, "xensim: %s\n", msg);
                    ts_dm_release(&dm);
                }
                ts_domcfg_free(&c);
            }
            ts_domcfg_remove(dir, domid);
        } else if (!strncmp(e->d_name, "qemu-save.", 10) ||
                   !strncmp(e->d_name, "qemu-resume.", 12)) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* ---- memory: libxl's keys, xl mem-max, xl mem-set ------------------------- */

/* Transactions lost to a concurrent writer (EAGAIN) are retried so often. */
#define XS_TXN_RETRIES          16

/* A record's b_info.target_memkb and max_memkb (older records: memory=). */
static uint64_t cfg_target_kb(const struct ts_domcfg *c)
{
    return c->target_memkb ? c->target_memkb : c->mem_mib * 1024;
}

static uint64_t cfg_max_kb(const struct ts_domcfg *c)
{
    return c->max_memkb ? c->max_memkb : c->mem_mib * 1024;
}

/*
 * libxl__get_targetmem_fudge for an HVM guest: what memory/target leaves
 * out of b_info.target_memkb.  The video memory, plus LIBXL_MAXMEM_CONSTANT
 * when the configuration's maximum exceeds its target (maxmem= above
 * memory=, or a receiver whose static-max is above the target it was
 * sent).  libxl subtracts it when it writes the key and adds it back when
 * it retrieves the configuration, so it cancels out across migrations.
 */
static uint64_t targetmem_fudge(const struct ts_domcfg *c)
{
    return c->vram_mib * 1024 +
           (cfg_max_kb(c) > cfg_target_kb(c) ? XSIM_MAXMEM_SLACK_KB : 0);
}

/* A memory key as libxl reads it: decimal kB.  -ENOENT, -EINVAL. */
static int xs_read_kb(struct xs_handle *xs, xs_transaction_t t,
                      const char *path, uint64_t *out)
{
    unsigned len = 0;
    char *v = xs_read(xs, t, path, &len), *end;
    int rc = 0;

    if (!v)
        return -ENOENT;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        rc = -EINVAL;
    free(v);
    return rc;
}

/* kB for a message: in MiB when it is whole MiB. */
static const char *kb_text(uint64_t kb, char *buf, size_t len)
{
    if (kb % 1024 == 0)
        fmt(buf, len, "%" PRIu64 " MiB", kb / 1024);
    else
        fmt(buf, len, "%" PRIu64 " kB", kb);
    return buf;
}

/* xc_domain_setmaxmem: Xen's maximum of @domid becomes @kb. */
static int set_xen_max(struct ts_host *h, uint32_t domid, uint64_t kb,
                       char *err, size_t errlen)
{
    uint64_t args[6] = { kb };
    struct xsim_rep rep;
    int rc;

    rc = call1(h, XSIM_OP_DOM_SETMAXMEM, domid, args, NULL, 0, &rep, NULL, 0,
               NULL);
    if (rc)
        seterr(err, errlen, "setting the maximum memory of d%u on %s: %s",
               domid, h->dir, strerror(-rc));
    return rc;
}

int ts_write_memory_keys(struct ts_host *h, uint32_t domid,
                         const struct ts_domcfg *c, char *err, size_t errlen)
{
    static const char *const key[3] = { "static-max", "target", "videoram" };
    uint64_t fudge = targetmem_fudge(c), target = cfg_target_kb(c);
    uint64_t val[3] = { cfg_max_kb(c), target > fudge ? target - fudge : 0,
                        c->vram_mib * 1024 };
    struct xs_handle *xs;
    int e = 0;

    if (!h->xenstore)
        return 0;
    xs = xs_for(h);
    if (!xs) {
        e = errno ? errno : EIO;
        seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
               strerror(e));
        return -e;
    }
    for (int tries = 0; tries < XS_TXN_RETRIES; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);
        bool ok = t != XBT_NULL;

        for (int i = 0; i < 3 && ok; i++) {
            char path[96], v[32];

            fmt(path, sizeof(path), "/local/domain/%u/memory/%s", domid,
                key[i]);
            fmt(v, sizeof(v), "%" PRIu64, val[i]);
            ok = xs_write(xs, t, path, v, (unsigned)strlen(v));
        }
        e = ok ? 0 : (errno ? errno : EIO);
        if (t != XBT_NULL && !xs_transaction_end(xs, t, !ok) && ok) {
            e = errno ? errno : EIO;
            if (e == EAGAIN)
                continue;
        }
        break;
    }
    xs_close(xs);
    if (e)
        seterr(err, errlen, "writing the memory keys of d%u in xenstore: %s",
               domid, strerror(e));
    return -e;
}

int ts_setmaxmem(struct ts_host *h, uint32_t domid, uint64_t mib, char *err,
                 size_t errlen)
{
    uint64_t target;
    char path[96], val[32], t1[32];
    struct xs_handle *xs;
    int rc;

    /* libxl_domain_setmaxmem: static-max may not go below the target
     * (a domain xenstore does not know is refused by Xen below). */
    xs = xs_for(h);
    if (xs) {
        fmt(path, sizeof(path), "/local/domain/%u/memory/target", domid);
        rc = xs_read_kb(xs, XBT_NULL, path, &target);
        xs_close(xs);
        if (rc == 0 && mib * 1024 < target) {
            seterr(err, errlen, "d%u: memory_static_max must be greater "
                   "than or equal to memory_dynamic_max: %" PRIu64 " MiB is "
                   "below the domain's target (memory/target, %s); lower "
                   "the target first (xensim mem-set)", domid, mib,
                   kb_text(target, t1, sizeof(t1)));
            return -EINVAL;
        }
    }
    rc = set_xen_max(h, domid, mib * 1024 + XSIM_MAXMEM_SLACK_KB, err, errlen);
    if (rc)
        return rc;
    fmt(path, sizeof(path), "/local/domain/%u/memory/static-max", domid);
    fmt(val, sizeof(val), "%" PRIu64, mib * 1024);
    xs_write_str(h, path, val);
    return 0;
}

/*
 * In transaction @t: libxl_set_memory_target's checks, Xen's maximum, the
 * keys.  0, or -errno with @err (a failed xenstore operation with errno
 * set, so that the caller can tell EAGAIN).
 */
static int set_target_in(struct ts_host *h, struct xs_handle *xs,
                         xs_transaction_t t, uint32_t domid, uint64_t mib,
                         char *err, size_t errlen)
{
    uint64_t want = mib * 1024, cur, smax, video = 0, target;
    char dom[32], path[160], val[32], t1[32], t2[32], t3[32], *vm;
    unsigned len = 0;
    int rc;

    fmt(dom, sizeof(dom), "/local/domain/%u", domid);
    /* libxl reads the current target (for a relative change, which xl
     * mem-set never asks for) and refuses a domain without one. */
    fmt(path, sizeof(path), "%s/memory/target", dom);
    rc = xs_read_kb(xs, t, path, &cur);
    if (rc == 0) {
        fmt(path, sizeof(path), "%s/memory/static-max", dom);
        rc = xs_read_kb(xs, t, path, &smax);
    }
    if (rc) {
        seterr(err, errlen, "d%u: %s %s", domid,
               rc == -ENOENT ? "cannot get memory info from"
                             : "invalid memory value in", path);
        return rc == -ENOENT ? -ENOENT : -EINVAL;
    }
    /* Video memory: part of what mem-set is given, not of the target.
     * libxl takes 0 when the key is absent. */
    fmt(path, sizeof(path), "%s/memory/videoram", dom);
    if (xs_read_kb(xs, t, path, &video))
        video = 0;
    if (want < video) {
        /* libxl's subtraction wraps around and the static-max check
         * refuses it; said plainly here. */
        seterr(err, errlen, "d%u: %" PRIu64 " MiB does not even cover the "
               "domain's video memory (memory/videoram, %s), which is part "
               "of it: memory_dynamic_max must be less than or equal to "
               "memory_static_max", domid, mib,
               kb_text(video, t1, sizeof(t1)));
        return -EINVAL;
    }
    target = want - video;
    if (target > smax) {
        seterr(err, errlen, "d%u: memory_dynamic_max must be less than or "
               "equal to memory_static_max: the target would be %s "
               "(%" PRIu64 " MiB less %s of video memory), above "
               "memory/static-max, %s; raise the maximum first (xensim "
               "mem-max)", domid, kb_text(target, t1, sizeof(t1)), mib,
               kb_text(video, t2, sizeof(t2)), kb_text(smax, t3, sizeof(t3)));
        return -EINVAL;
    }
    /* enforce: Xen's maximum follows the target.  (libxl then calls
     * xc_domain_set_pod_target for an HVM guest; Xen leaves a domain
     * without PoD entries, as every simulated one is, as it is.) */
    rc = set_xen_max(h, domid, target + video + XSIM_MAXMEM_SLACK_KB, err,
                     errlen);
    if (rc)
        return rc;
    fmt(path, sizeof(path), "%s/memory/target", dom);
    fmt(val, sizeof(val), "%" PRIu64, target);
    if (!xs_write(xs, t, path, val, (unsigned)strlen(val)))
        goto fail;
    /* /vm/<uuid>/memory, in MiB; <uuid> is the domain's handle, which
     * the domain's vm key names. */
    fmt(path, sizeof(path), "%s/vm", dom);
    vm = xs_read(xs, t, path, &len);
    if (vm) {
        fmt(path, sizeof(path), "%s/memory", vm);
        free(vm);
        fmt(val, sizeof(val), "%" PRIu64, target / 1024);
        if (!xs_write(xs, t, path, val, (unsigned)strlen(val)))
            goto fail;
    }
    return 0;
fail:
    rc = errno ? errno : EIO;
    seterr(err, errlen, "writing %s: %s", path, strerror(rc));
    errno = rc;
    return -rc;
}

int ts_set_memory_target(struct ts_host *h, uint32_t domid, uint64_t mib,
                         char *err, size_t errlen)
{
    struct xsim_dominfo info;
    struct xs_handle *xs;
    int rc;

    rc = ts_dominfo(h, domid, &info);
    if (rc) {
        seterr(err, errlen, "no domain d%u on %s: %s", domid, h->dir,
               strerror(-rc));
        return rc;
    }
    if (!h->xenstore) {
        seterr(err, errlen, "d%u: the host in %s runs no xenstore, where "
               "the target is read and written (memory/target, "
               "memory/static-max)", domid, h->dir);
        return -ENOTSUP;
    }
    xs = xs_for(h);
    if (!xs) {
        rc = errno ? errno : EIO;
        seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
               strerror(rc));
        return -rc;
    }
    /* As libxl: the checks, Xen's maximum and the keys in one
     * transaction, all of it again when the transaction is lost. */
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL) {
            rc = -(errno ? errno : EIO);
            seterr(err, errlen, "starting a xenstore transaction: %s",
                   strerror(-rc));
            break;
        }
        rc = set_target_in(h, xs, t, domid, mib, err, errlen);
        if (rc) {
            xs_transaction_end(xs, t, true);
            break;
        }
        if (xs_transaction_end(xs, t, false))
            break;
        rc = -(errno ? errno : EIO);
        if (rc != -EAGAIN || tries + 1 >= XS_TXN_RETRIES) {
            seterr(err, errlen, "committing the target of d%u: %s", domid,
                   strerror(-rc));
            break;
        }
    }
    xs_close(xs);
    return rc;
}

/* ---- RAM hot-plug: the toolstack's side of docs/hotplug.md --------------- */

int ts_parse_size(const char *s, uint64_t *out)
{
    unsigned long long v;
    unsigned shift = 0;
    char *end;

    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno)
        return -errno;
    if (end == s)
        return -EINVAL;
    switch (*end) {
    case 0:
        break;
    case 'k': case 'K':
        shift = 10;
        break;
    case 'm': case 'M':
        shift = 20;
        break;
    case 'g': case 'G':
        shift = 30;
        break;
    case 't': case 'T':
        shift = 40;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1])
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

/* /local/domain/0/device-model/<domid>/memory: a dom0 device model's
 * hot-plug directory (the only kind xensim starts). */
static void hp_dir(char *buf, size_t len, uint32_t domid)
{
    fmt(buf, len, "/local/domain/0/device-model/%u/memory", domid);
}

static void hp_key(struct xs_handle *xs, xs_transaction_t t,
                   const char *dir, unsigned slot, const char *key,
                   char *out, size_t outlen)
{
    char path[256];
    unsigned len = 0;
    char *v;

    fmt(path, sizeof(path), "%s/%u/%s", dir, slot, key);
    v = xs_read(xs, t, path, &len);
    snprintf(out, outlen, "%s", v ? v : "");
    free(v);
}

static void hp_read_slot(struct xs_handle *xs, xs_transaction_t t,
                         const char *dir, unsigned slot,
                         struct ts_hp_slot *o)
{
    memset(o, 0, sizeof(*o));
    o->slot = slot;
    hp_key(xs, t, dir, slot, "state", o->state, sizeof(o->state));
    hp_key(xs, t, dir, slot, "gpa", o->gpa, sizeof(o->gpa));
    hp_key(xs, t, dir, slot, "size", o->size, sizeof(o->size));
    hp_key(xs, t, dir, slot, "start", o->start, sizeof(o->start));
    hp_key(xs, t, dir, slot, "action", o->action, sizeof(o->action));
    hp_key(xs, t, dir, slot, "error", o->error, sizeof(o->error));
}

/* A slot directory's name: a decimal number without leading zeros. */
static bool hp_slot_name(const char *s, unsigned *slot)
{
    unsigned long v;
    char *end;

    if (!s[0] || (s[0] == '0' && s[1]) || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v >= 100000)
        return false;
    *slot = (unsigned)v;
    return true;
}

/* Open xenstore and check that the domain's device model offers
 * hot-plug (xenram created memory/ when it started). */
static struct xs_handle *hp_open(struct ts_host *h, uint32_t domid,
                                 char *dir, size_t dirlen, char *err,
                                 size_t errlen)
{
    struct xs_handle *xs;
    unsigned len = 0;
    char *v;

    if (!h->xenstore) {
        seterr(err, errlen, "the host in %s runs no xenstore", h->dir);
        errno = ENOTSUP;
        return NULL;
    }
    xs = xs_for(h);
    if (!xs) {
        seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
               strerror(errno));
        return NULL;
    }
    hp_dir(dir, dirlen, domid);
    v = xs_read(xs, XBT_NULL, dir, &len);
    if (!v) {
        seterr(err, errlen, "d%u offers no RAM hot-plug: %s does not exist "
               "(its device model, xenram, creates it when it starts)",
               domid, dir);
        xs_close(xs);
        errno = ENOENT;
        return NULL;
    }
    free(v);
    return xs;
}

static int hp_cmp(const void *a, const void *b)
{
    const struct ts_hp_slot *x = a, *y = b;

    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

int ts_hotplug_list(struct ts_host *h, uint32_t domid,
                    struct ts_hp_slot **out, unsigned *n, char *err,
                    size_t errlen)
{
    struct ts_hp_slot *v = NULL;
    unsigned ne = 0, k = 0;
    char dir[128], **ents;
    struct xs_handle *xs;

    *out = NULL;
    *n = 0;
    xs = hp_open(h, domid, dir, sizeof(dir), err, errlen);
    if (!xs)
        return -(errno ? errno : EIO);
    ents = xs_directory(xs, XBT_NULL, dir, &ne);
    if (ents && ne) {
        v = calloc(ne, sizeof(*v));
        if (!v) {
            free(ents);
            xs_close(xs);
            seterr(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    for (unsigned i = 0; ents && i < ne; i++) {
        unsigned slot;

        if (hp_slot_name(ents[i], &slot))
            hp_read_slot(xs, XBT_NULL, dir, slot, &v[k++]);
    }
    free(ents);
    xs_close(xs);
    if (k)
        qsort(v, k, sizeof(*v), hp_cmp);
    *out = v;
    *n = k;
    return 0;
}

static bool hp_write(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, const char *val)
{
    /* docs/hotplug.md: only the toolstack's domain (0) owns the request,
     * no other domain may read or write it ("n0").  memory/ is created so
     * and nodes inherit it; saying it again keeps a slot directory that
     * was opened by mistake from giving the request to another owner. */
    struct xs_permissions n0 = { .id = 0, .perms = XS_PERM_NONE };

    return xs_write(xs, t, path, val, (unsigned)strlen(val)) &&
           xs_set_permissions(xs, t, path, &n0, 1);
}

/*
 * In transaction @t: choose the slot (the lowest one that holds no memory
 * and has no request pending, unless given), refuse a slot with a request
 * pending, write the request.  The watch on its action is placed before
 * anything is written.  -EAGAIN-free errors only; @slot_out the slot.
 */
static int hp_request(struct xs_handle *xs, xs_transaction_t t,
                      const char *dir, const struct ts_hp_req *r,
                      unsigned *slot_out, char *err, size_t errlen)
{
    char path[256], val[32], act[16];
    unsigned slot;

    if (r->slot == TS_HP_AUTO) {
        for (slot = 0; slot < 100000; slot++) {
            char gpa[32];

            hp_key(xs, t, dir, slot, "gpa", gpa, sizeof(gpa));
            hp_key(xs, t, dir, slot, "action", act, sizeof(act));
            if (!gpa[0] && !act[0])
                break;
        }
    } else {
        slot = (unsigned)r->slot;
    }
    hp_key(xs, t, dir, slot, "action", act, sizeof(act));
    if (act[0]) {
        seterr(err, errlen, "slot %u has a request pending (action = %s): "
               "wait for its answer first", slot, act);
        return -EBUSY;
    }
    *slot_out = slot;
    if (!r->remove) {
        fmt(path, sizeof(path), "%s/%u/size", dir, slot);
        fmt(val, sizeof(val), "%" PRIu64, r->size);
        if (!hp_write(xs, t, path, val))
            goto fail;
        fmt(path, sizeof(path), "%s/%u/start", dir, slot);
        if (r->start == TS_HP_AUTO)
            fmt(val, sizeof(val), "auto");
        else
            fmt(val, sizeof(val), "0x%" PRIx64, r->start);
        if (!hp_write(xs, t, path, val))
            goto fail;
    }
    /* The slot's directory (created by the writes above, or by the
     * action below, inheriting memory/'s): dom0's only as well. */
    fmt(path, sizeof(path), "%s/%u", dir, slot);
    {
        struct xs_permissions n0 = { .id = 0, .perms = XS_PERM_NONE };
        unsigned len = 0;
        char *v = xs_read(xs, t, path, &len);
        bool exists = v != NULL;

        free(v);
        if (exists && !xs_set_permissions(xs, t, path, &n0, 1))
            goto fail;
    }
    /* The request itself, last. */
    fmt(path, sizeof(path), "%s/%u/action", dir, slot);
    if (!hp_write(xs, t, path, r->remove ? "remove" : "add"))
        goto fail;
    return 0;
fail:
    {
        int e = errno ? errno : EIO;

        seterr(err, errlen, "writing %s: %s", path, strerror(e));
        return -e;
    }
}

int ts_hotplug(struct ts_host *h, uint32_t domid, const struct ts_hp_req *r,
               struct ts_hp_slot *ans, char *err, size_t errlen)
{
    int timeout = r->timeout_ms > 0 ? r->timeout_ms : 30000;
    uint64_t deadline = now_ns() + (uint64_t)timeout * 1000000ull;
    char dir[128], apath[256] = "";
    struct ts_domcfg c;
    struct ts_dm dm = { .pidfd = -1 };
    struct xs_handle *xs;
    bool watching = false;
    unsigned slot = 0;
    int rc = 0;

    memset(ans, 0, sizeof(*ans));
    if (r->remove && r->slot == TS_HP_AUTO) {
        seterr(err, errlen, "remove needs a slot");
        return -EINVAL;
    }
    /* Its device model: stop waiting if it dies. */
    if (ts_domcfg_load(h->dir, domid, &c, NULL, 0) == 0) {
        bool has_dm = c.dm[0] != 0;
        int a = has_dm ? ts_dm_attach(h, domid, &c, &dm) : -ENOTSUP;

        ts_domcfg_free(&c);
        if (a) {
            seterr(err, errlen, has_dm ? "the device model of d%u is not "
                   "running" : "d%u has no device model (create --dm): "
                   "nobody to ask for memory", domid);
            return a;
        }
    }
    xs = hp_open(h, domid, dir, sizeof(dir), err, errlen);
    if (!xs) {
        rc = -(errno ? errno : EIO);
        goto out;
    }
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL) {
            rc = -(errno ? errno : EIO);
            seterr(err, errlen, "xenstore transaction: %s", strerror(-rc));
            goto out;
        }
        rc = hp_request(xs, t, dir, r, &slot, err, errlen);
        if (rc == 0) {
            /* Watch first, then publish: the answer cannot be missed. */
            fmt(apath, sizeof(apath), "%s/%u/action", dir, slot);
            if (!xs_watch(xs, apath, "xensim-hotplug")) {
                rc = -(errno ? errno : EIO);
                seterr(err, errlen, "xenstore watch on %s: %s", apath,
                       strerror(-rc));
            } else {
                watching = true;
            }
        }
        if (rc) {
            xs_transaction_end(xs, t, true);
            goto out;
        }
        if (xs_transaction_end(xs, t, false))
            break;
        rc = -(errno ? errno : EIO);
        xs_unwatch(xs, apath, "xensim-hotplug");
        watching = false;
        if (rc != -EAGAIN || tries == 20) {
            seterr(err, errlen, "xenstore transaction: %s", strerror(-rc));
            goto out;
        }
        rc = 0;
    }
    /* xenram answers (error, gpa, state) and removes action last. */
    for (;;) {
        unsigned len = 0;
        char *v = xs_read(xs, XBT_NULL, apath, &len);
        struct pollfd p[2] = { { .fd = xs_fileno(xs), .events = POLLIN },
                               { .fd = dm.pidfd, .events = POLLIN } };
        int left, n;

        if (!v && errno == ENOENT)
            break;
        free(v);
        left = ms_left(deadline);
        if (left == 0) {
            seterr(err, errlen, "no answer from the device model of d%u "
                   "within %d s; the request is still pending (%s)", domid,
                   timeout / 1000, apath);
            rc = -ETIMEDOUT;
            goto out;
        }
        n = poll(p, dm.pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            seterr(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            /* It may have answered just before it went. */
            v = xs_read(xs, XBT_NULL, apath, &len);
            if (!v)
                break;
            free(v);
            seterr(err, errlen, "the device model of d%u exited without "
                   "answering the request (%s)", domid, apath);
            rc = -ECHILD;
            goto out;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char **w;

            while ((w = xs_check_watch(xs)))
                free(w);
        }
    }
    hp_read_slot(xs, XBT_NULL, dir, slot, ans);
    if (!ans->state[0]) {
        seterr(err, errlen, "the device model of d%u removed %s without "
               "writing a state", domid, apath);
        rc = -EPROTO;
    }
out:
    if (xs) {
        if (watching)
            xs_unwatch(xs, apath, "xensim-hotplug");
        xs_close(xs);
    }
    ans->slot = slot;
    ts_dm_release(&dm);
    return rc;
}

/* ---- guest memory -------------------------------------------------------- */

uint64_t ts_checksum(const uint8_t *mem, const uint8_t *p2m, uint64_t pages,
                     uint64_t *present)
{
    uint64_t hash = 0xcbf29ce484222325ull, n = 0;

    for (uint64_t g = 0; g < pages; g++) {
        const uint64_t *w;

        if (!((p2m[g / 8] >> (g % 8)) & 1))
            continue;
        w = (const uint64_t *)(mem + g * XSIM_PAGE_SIZE);
        n++;
        hash = (hash ^ g) * 0x100000001b3ull;
        for (unsigned i = 0; i < XSIM_STAMP_WORDS; i++)
            hash = (hash ^ w[i]) * 0x100000001b3ull;
    }
    if (present)
        *present = n;
    return hash;
}

/* xenram's test device (xen/dm/testdev.c, --test-dma): "XXRTDMA\0", the
 * frame, a sequence number, then words derived from frame and sequence. */
#define TESTDMA_MAGIC 0x00414d4454525858ull

int ts_testdma_check(const void *page, uint64_t gfn)
{
    const uint64_t *w = page;
    uint64_t seq;

    if (w[0] != TESTDMA_MAGIC || w[1] != gfn)
        return 0;
    seq = w[2];
    for (unsigned i = 3; i < XSIM_STAMP_WORDS; i++) {
        uint64_t x = gfn * 0x9e3779b97f4a7c15ull ^ seq ^ ((uint64_t)i << 32);

        x ^= x >> 31;
        if (w[i] != x * 0xbf58476d1ce4e5b9ull)
            return 0;
    }
    return 1;
}

/* ---- migration ------------------------------------------------------------ */

#define GUEST_BYTES ((size_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE))

static inline bool bit(const uint8_t *bm, uint64_t i)
{
    return (bm[i / 8] >> (i % 8)) & 1;
}

struct bitmap {
    uint8_t *b;
    size_t cap;                 /* bytes */
    uint64_t pages;             /* valid bits */
};

/* The p2m of @domid (max gpfn + 1 frames) into @bm; the memfd into *fd
 * when @fd is not NULL. */
static int get_p2m(struct ts_host *h, uint32_t domid, struct bitmap *bm,
                   int *fd)
{
    uint64_t args[6] = { fd ? 1 : 0 };

    for (;;) {
        struct xsim_rep rep;
        size_t need;
        int rc;

        if (bm->cap)
            memset(bm->b, 0, bm->cap);
        rc = call1(h, XSIM_OP_MEM_P2M, domid, args, NULL, 0, &rep, bm->b,
                   bm->cap, fd);
        if (rc)
            return rc;
        need = (size_t)((rep.val[0] + 7) / 8);
        if (need <= bm->cap) {
            bm->pages = rep.val[0];
            return 0;
        }
        if (fd && *fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        free(bm->b);
        bm->cap = need + 4096;
        bm->b = malloc(bm->cap);
        if (!bm->b) {
            bm->cap = 0;
            return -ENOMEM;
        }
    }
}

struct mig {
    struct ts_host *src, dst;
    uint32_t sdom, ddom;
    const struct ts_migrate_opts *o;
    struct ts_domcfg cfg;
    bool have_cfg, have_dm;
    struct ts_dm sdm, ddm;
    struct ts_qmp sq, dq;
    const uint8_t *smem;
    uint8_t *dmem;
    struct bitmap sp2m, dp2m, dirty;
    FILE *sums;

    /* progress */
    bool tty;
    unsigned rounds;
    uint64_t sent, populated, released, final_pages, devstate_bytes;
    uint64_t sp2m_count;        /* populated frames at the end */
    uint64_t t_start, t_suspend, t_resumed, t_end, t_clean;
    uint64_t t_sums;            /* spent on --checksum-at-suspend digests */
    uint64_t src_sum, src_pages, dst_sum, dst_pages;
    /* Hot-plugged RAM: the slots of both device models at the end. */
    struct ts_hp_slot *hp_src, *hp_dst;
    unsigned nhp_src, nhp_dst;
    bool hp_listed;
    bool sums_taken;
};

/* Frames set in a p2m. */
static uint64_t bm_count(const struct bitmap *bm)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < (bm->pages + 7) / 8; i++)
        n += (uint64_t)__builtin_popcount(bm->b[i]);
    return n;
}

static int flush_list(struct mig *m, uint16_t op, uint64_t *list, size_t *n,
                      char *err, size_t errlen)
{
    uint64_t args[6] = { *n, 0 };
    struct xsim_rep rep;
    int rc;

    if (!*n)
        return 0;
    rc = call1(&m->dst, op, m->ddom, args, list, *n * 8, &rep, NULL, 0, NULL);
    if (rc == 0 && (uint64_t)rep.ret != *n)
        rc = -EBUSY;
    if (rc) {
        uint64_t gfn = list[rep.ret >= 0 && (uint64_t)rep.ret < *n ? rep.ret
                                                                   : 0];
        struct xsim_dominfo di;
        char t1[32], t2[32], t3[32];

        if (op == XSIM_OP_MEM_POPULATE && rc == -EBUSY &&
            ts_dominfo(&m->dst, m->ddom, &di) == 0) {
            /* libxc's restore says "Failed to populate physmap (16 =
             * Device or resource busy)": the receiver's maximum, from
             * the target, is below the frames the sender has. */
            seterr(err, errlen, "Failed to populate physmap (%d = %s): "
                   "frame %#" PRIx64 " of d%u on %s is beyond the domain's "
                   "maximum memory, %s, which libxl gives a restored domain "
                   "from the target it was sent (%s with video memory, + "
                   "1 MiB); the source has %s of frames.  Hot-plugged RAM "
                   "travels only if the target covers it: raise the target "
                   "before migrating (xensim mem-set, as xl mem-set)",
                   EBUSY, strerror(EBUSY), gfn, m->ddom, m->dst.dir,
                   kb_text(di.max_pages * (XSIM_PAGE_SIZE / 1024), t1,
                           sizeof(t1)),
                   kb_text(m->cfg.target_memkb, t2, sizeof(t2)),
                   kb_text(bm_count(&m->sp2m) * (XSIM_PAGE_SIZE / 1024), t3,
                           sizeof(t3)));
            return rc;
        }
        seterr(err, errlen, "%s frame %#" PRIx64 " on the destination "
               "failed: %s", op == XSIM_OP_MEM_POPULATE ? "populating"
                                                       : "releasing",
               gfn, strerror(-rc));
        return rc;
    }
    *n = 0;
    return 0;
}

/*
 * Make the destination's p2m the source's: what libxc's restore does as
 * the pages arrive (populate_pfns), and the frames the source no longer
 * has released.  Leaves the source's p2m in m->sp2m.
 */
static int sync_p2m(struct mig *m, char *err, size_t errlen)
{
    uint64_t add[BATCH], del[BATCH], n;
    size_t na = 0, nd = 0;
    int rc;

    rc = get_p2m(m->src, m->sdom, &m->sp2m, NULL);
    if (rc == 0)
        rc = get_p2m(&m->dst, m->ddom, &m->dp2m, NULL);
    if (rc) {
        seterr(err, errlen, "reading the p2m: %s", strerror(-rc));
        return rc;
    }
    n = m->sp2m.pages > m->dp2m.pages ? m->sp2m.pages : m->dp2m.pages;
    /* Releases first: the destination's maximum may fit the source's
     * p2m (when the target covers it), never both layouts at once. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t g = 0; g < n; g++) {
            bool s = g < m->sp2m.pages && bit(m->sp2m.b, g);
            bool d = g < m->dp2m.pages && bit(m->dp2m.b, g);

            if (pass == 1 && s && !d) {
                add[na++] = g;
                m->populated++;
                if (na == BATCH &&
                    (rc = flush_list(m, XSIM_OP_MEM_POPULATE, add, &na, err,
                                     errlen)))
                    return rc;
            } else if (pass == 0 && d && !s) {
                del[nd++] = g;
                m->released++;
                if (nd == BATCH &&
                    (rc = flush_list(m, XSIM_OP_MEM_DECREASE, del, &nd, err,
                                     errlen)))
                    return rc;
            }
        }
        rc = pass == 0
             ? flush_list(m, XSIM_OP_MEM_DECREASE, del, &nd, err, errlen)
             : flush_list(m, XSIM_OP_MEM_POPULATE, add, &na, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Copy the frames set in @work (all populated frames when NULL). */
static uint64_t copy_pages(struct mig *m, const struct bitmap *work)
{
    uint64_t n = work ? work->pages : m->sp2m.pages, sent = 0;

    if (n > m->sp2m.pages)
        n = m->sp2m.pages;
    for (uint64_t g = 0; g < n; g++) {
        if ((work && !bit(work->b, g)) || !bit(m->sp2m.b, g))
            continue;
        memcpy(m->dmem + g * XSIM_PAGE_SIZE, m->smem + g * XSIM_PAGE_SIZE,
               XSIM_PAGE_SIZE);
        sent++;
    }
    m->sent += sent;
    return sent;
}

/* xc_logdirty_control(CLEAN [| FINAL]) over the source's frames. */
static int clean(struct mig *m, bool final, uint64_t *count, char *err,
                 size_t errlen)
{
    struct xsim_dominfo info;
    uint64_t args[6] = { XEN_DOMCTL_SHADOW_OP_CLEAN };
    struct xsim_rep rep;
    uint64_t pages;
    size_t need;
    int rc;

    rc = ts_dominfo(m->src, m->sdom, &info);
    if (rc) {
        seterr(err, errlen, "the source domain: %s", strerror(-rc));
        return rc;
    }
    pages = info.max_gpfn + 1;
    need = (size_t)((pages + 7) / 8);
    if (need > m->dirty.cap) {
        free(m->dirty.b);
        m->dirty.cap = need + 4096;
        m->dirty.b = calloc(1, m->dirty.cap);
        if (!m->dirty.b) {
            m->dirty.cap = 0;
            return -ENOMEM;
        }
    }
    memset(m->dirty.b, 0, m->dirty.cap);
    args[1] = final ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0;
    args[2] = pages;
    args[3] = 1;
    rc = call1(m->src, XSIM_OP_SHADOW, m->sdom, args, NULL, 0, &rep,
               m->dirty.b, need, NULL);
    if (rc) {
        seterr(err, errlen, "log-dirty CLEAN on the source: %s",
               strerror(-rc));
        return rc;
    }
    m->dirty.pages = pages;
    *count = 0;
    for (uint64_t i = 0; i < need; i++)
        *count += (uint64_t)__builtin_popcount(m->dirty.b[i]);
    return 0;
}

/* One line per round on a terminal. */
static void progress(struct mig *m, uint64_t dirty, uint64_t sent,
                     double secs, bool live)
{
    if (!m->tty)
        return;
    if (m->rounds == 1)
        fprintf(stderr, "  round 0: %" PRIu64 " pages sent (every populated "
                "frame)\n", sent);
    else
        fprintf(stderr, "  %s %u: %" PRIu64 " dirty (%.0f pages/s), %" PRIu64
                " sent, %" PRIu64 " in all%s\n", live ? "round" : "final",
                m->rounds - 1, dirty, secs > 0 ? (double)dirty / secs : 0.0,
                sent, m->sent,
                live ? "" : " (guest paused, device model stopped)");
}

static int shadow(struct ts_host *h, uint32_t domid, uint64_t op)
{
    uint64_t args[6] = { op };
    struct xsim_rep rep;

    return call1(h, XSIM_OP_SHADOW, domid, args, NULL, 0, &rep, NULL, 0,
                 NULL);
}

/* The digest of a domain's memory as mapped here. */
static uint64_t sum_of(struct mig *m, struct ts_host *h, uint32_t domid,
                       const uint8_t *mem, struct bitmap *p2m,
                       uint64_t *pages)
{
    uint64_t t0 = now_ns(), sum = 0;

    if (get_p2m(h, domid, p2m, NULL) == 0)
        sum = ts_checksum(mem, p2m->b, p2m->pages, pages);
    /* Not part of the downtime: a real toolstack takes no digest. */
    m->t_sums += now_ns() - t0;
    return sum;
}

/* Save the device model's state: libxl__qmp_suspend_save. */
static int save_devstate(struct mig *m, const char *path, char *err,
                         size_t errlen)
{
    json_t *r, *args;
    int fd, rc = 0;
    json_int_t fdset;
    struct stat st;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -errno;
    }
    r = ts_qmp_exec(&m->sq, "add-fd", NULL, fd, QMP_TIMEOUT_MS, err,
                    errlen);
    close(fd);
    if (!r)
        return -EIO;
    fdset = json_integer_value(json_object_get(r, "fdset-id"));
    json_decref(r);
    {
        char name[64];

        snprintf(name, sizeof(name), "/dev/fdset/%lld", (long long)fdset);
        args = json_pack("{s:s}", "filename", name);
    }
    /* libxl sends "live" to QEMU 2.11 or newer only. */
    if (m->sq.major > 2 || (m->sq.major == 2 && m->sq.minor >= 11))
        json_object_set_new(args, "live", json_true());
    rc = qmp_do(&m->sq, "xen-save-devices-state", args, QMP_TIMEOUT_MS, err,
                errlen);
    if (rc)
        return rc;
    if (stat(path, &st) == 0)
        m->devstate_bytes = (uint64_t)st.st_size;
    return 0;
}

/* The receiving libxl writes the emulator record to a file and opens it
 * for the device model's -incoming fd:N (qemu-resume.<domid>). */
static int copy_file(const char *from, const char *to, char *err,
                     size_t errlen)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out;
    ssize_t n;
    int rc = 0;

    if (in < 0) {
        seterr(err, errlen, "%s: %s", from, strerror(errno));
        return -errno;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = -errno;
        seterr(err, errlen, "%s: %s", to, strerror(errno));
        close(in);
        return rc;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            rc = -EIO;
            break;
        }
    }
    if (n < 0)
        rc = -errno;
    close(in);
    close(out);
    if (rc)
        seterr(err, errlen, "copying the device state: %s", strerror(-rc));
    return rc;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

/*
 * The hot-plugged RAM: every slot holding memory on the source (gpa
 * present) must be online on the destination at the same place, which
 * the destination's device model wrote from the device state
 * (docs/hotplug.md, "Migration").  A slot plugged on the source after its
 * state was saved did not travel: said loudly.
 */
static void hp_summary(struct mig *m)
{
    uint64_t bytes = 0;
    unsigned n = 0, missing = 0;

    for (unsigned i = 0; i < m->nhp_src; i++) {
        const struct ts_hp_slot *a = &m->hp_src[i];
        bool there = false;
        uint64_t b = 0;

        if (!a->gpa[0])
            continue;
        n++;
        if (ts_parse_size(a->size, &b) == 0)
            bytes += b;
        for (unsigned j = 0; j < m->nhp_dst && !there; j++) {
            const struct ts_hp_slot *d = &m->hp_dst[j];

            there = d->slot == a->slot && !strcmp(d->state, "online") &&
                    !strcmp(d->gpa, a->gpa) && !strcmp(d->size, a->size);
        }
        if (!there) {
            missing++;
            fprintf(stderr, "xensim: warning: hot-plugged slot %u (%s bytes "
                    "at %s) of the source is not online on the destination: "
                    "that memory did not travel\n", a->slot, a->size,
                    a->gpa);
        }
    }
    if (!n)
        printf("  hot-plugged : none\n");
    else
        printf("  hot-plugged : %u slot(s), %" PRIu64 " MiB: %s\n", n,
               bytes >> 20, missing ? "NOT ALL online on the destination"
                                    : "online on the destination");
}

static void summary(struct mig *m, const struct xsim_dominfo *info)
{
    double total = (double)(m->t_end - m->t_start) / 1e9;
    double down = (double)(m->t_resumed - m->t_suspend - m->t_sums) / 1e6;

    printf("migrated d%u (%s) from %s to %s as d%u\n", m->sdom, info->name,
           m->src->dir, m->dst.dir, m->ddom);
    printf("  rounds      : %u (%u live, 1 final)\n", m->rounds,
           m->rounds - 1);
    printf("  pages sent  : %" PRIu64 " (%.1f MiB), %" PRIu64
           " in the final round\n", m->sent,
           (double)m->sent * XSIM_PAGE_SIZE / (1 << 20), m->final_pages);
    printf("  bytes       : %" PRIu64 " of memory, %" PRIu64
           " of device state\n", m->sent * XSIM_PAGE_SIZE, m->devstate_bytes);
    printf("  frames      : %" PRIu64 " (%" PRIu64 " populated, %" PRIu64
           " released on the destination beyond its built layout)\n",
           m->sp2m_count, m->populated, m->released);
    printf("  downtime    : %.1f ms%s\n", down,
           m->t_sums ? " (not counting the digests)" : "");
    printf("  total time  : %.3f s\n", total);
    if (m->hp_listed)
        hp_summary(m);
    if (m->sums_taken)
        printf("  memory      : source at suspend %016" PRIx64 " (%" PRIu64
               " pages), destination %016" PRIx64 " (%" PRIu64 " pages): "
               "%s\n", m->src_sum, m->src_pages, m->dst_sum, m->dst_pages,
               m->src_sum == m->dst_sum && m->src_pages == m->dst_pages
               ? "identical" : "DIFFERENT");
}

/*
 * Tests: XENSIM_TEST_MIGRATE_HOOK=hotplug-<@point> makes the migration
 * ask the source's device model for 4 MiB of RAM at that point, as a
 * toolstack racing the migration would, and print the answer on stdout:
 * "test hook: hot-plug at <point>: <state>: <error>".
 */
static void hotplug_hook(struct mig *m, const char *point)
{
    const char *hook = getenv("XENSIM_TEST_MIGRATE_HOOK");
    struct ts_hp_req r = { .slot = TS_HP_AUTO, .start = TS_HP_AUTO,
                           .size = 4u << 20, .timeout_ms = 10000 };
    struct ts_hp_slot ans;
    char e[TS_ERRLEN];

    if (!m->have_dm || !hook || strncmp(hook, "hotplug-", 8) ||
        strcmp(hook + 8, point))
        return;
    if (ts_hotplug(m->src, m->sdom, &r, &ans, e, sizeof(e)))
        printf("test hook: hot-plug at %s: no answer: %s\n", point, e);
    else
        printf("test hook: hot-plug at %s: slot %u %s: %s\n", point,
               ans.slot, ans.state, ans.error);
    fflush(stdout);
}

/*
 * libxl_retrieve_domain_configuration, memory: the sender's
 * b_info.target_memkb is memory/target plus libxl__get_targetmem_fudge
 * (of the configuration it keeps), max_memkb is memory/static-max; both
 * go to the receiver in @c.  What mem-max and mem-set changed travels
 * through these keys, not through Xen's maximum.  Without xenstore (a
 * host libxl could not run on) the record's values stay.
 */
static int retrieve_memory(struct ts_host *h, uint32_t domid,
                           struct ts_domcfg *c, char *err, size_t errlen)
{
    uint64_t fudge = targetmem_fudge(c), target, smax;
    struct xs_handle *xs;
    char path[96];
    int rc;

    if (!h->xenstore) {
        c->target_memkb = cfg_target_kb(c);
        c->max_memkb = cfg_max_kb(c);
        return 0;
    }
    xs = xs_for(h);
    if (!xs) {
        rc = errno ? errno : EIO;
        seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
               strerror(rc));
        return -rc;
    }
    fmt(path, sizeof(path), "/local/domain/%u/memory/target", domid);
    rc = xs_read_kb(xs, XBT_NULL, path, &target);
    if (rc == 0) {
        fmt(path, sizeof(path), "/local/domain/%u/memory/static-max", domid);
        rc = xs_read_kb(xs, XBT_NULL, path, &smax);
    }
    xs_close(xs);
    if (rc) {
        seterr(err, errlen, "retrieving the configuration of d%u: %s %s",
               domid, rc == -ENOENT ? "cannot get memory info from"
                                    : "invalid memory value in", path);
        return rc;
    }
    c->target_memkb = target + fudge;
    c->max_memkb = smax;
    return 0;
}

int ts_migrate(struct ts_host *src, uint32_t domid,
               const struct ts_migrate_opts *o, char *err, size_t errlen)
{
    struct mig mm = { .src = src, .sdom = domid, .o = o }, *m = &mm;
    struct xsim_dominfo info;
    struct sigaction sa = { .sa_handler = on_interrupt }, old_int, old_term;
    char save_path[PATH_MAX], resume_path[PATH_MAX], e2[TS_ERRLEN];
    int dm_timeout = o->dm_timeout_ms > 0 ? o->dm_timeout_ms
                                          : DM_START_TIMEOUT_MS;
    bool dirtylog_dm = false, logdirty = false, src_paused = false;
    bool dm_stopped = false, was_paused, done = false;
    int fd = -1, in_fd = -1, rc;

    m->dst.fd = -1;
    m->sdm.pidfd = m->ddm.pidfd = -1;
    m->sq.fd = m->dq.fd = -1;
    m->smem = MAP_FAILED;
    m->dmem = MAP_FAILED;
    m->t_start = now_ns();
    save_path[0] = resume_path[0] = 0;
    interrupted = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    /* What to migrate. */
    rc = ts_dominfo(src, domid, &info);
    if (rc) {
        seterr(err, errlen, "no domain d%u on %s: %s", domid, src->dir,
               strerror(-rc));
        goto out;
    }
    if (domid == 0 || (info.flags & XSIM_DOMF_CONTROL)) {
        seterr(err, errlen, "domain 0 cannot be migrated");
        rc = -EINVAL;
        goto out;
    }
    was_paused = info.pause_count > 0;
    rc = ts_domcfg_load(src->dir, domid, &m->cfg, err, errlen);
    if (rc == -ENOENT) {
        /* Created by hand: what libxl would know from the domain. */
        snprintf(m->cfg.name, sizeof(m->cfg.name), "%s", info.name);
        snprintf(m->cfg.workload, sizeof(m->cfg.workload), "%s",
                 info.workload);
        m->cfg.mem_mib = (info.max_pages * 4 - XSIM_MAXMEM_SLACK_KB) / 1024;
        m->cfg.vcpus = info.nr_vcpus;
        rc = 0;
    } else if (rc) {
        goto out;
    }
    m->have_cfg = true;
    rc = retrieve_memory(src, domid, &m->cfg, err, errlen);
    if (rc)
        goto out;
    /* The workload runs on: take the current one. */
    snprintf(m->cfg.workload, sizeof(m->cfg.workload), "%s", info.workload);
    m->have_dm = m->cfg.dm[0] != 0;

    rc = ts_host_open(&m->dst, o->to, err, errlen);
    if (rc)
        goto out;
    if (strcmp(m->dst.dir, src->dir) == 0) {
        seterr(err, errlen, "the destination is the source host (%s); "
               "migrate to another state directory", src->dir);
        rc = -EINVAL;
        goto out;
    }
    if (m->have_dm && !m->dst.xenstore) {
        seterr(err, errlen, "the destination host %s runs no xenstore, "
               "which the device model needs", m->dst.dir);
        rc = -ENOTSUP;
        goto out;
    }
    if (o->checksum_file) {
        m->sums = fopen(o->checksum_file, "w");
        if (!m->sums) {
            rc = -errno;
            seterr(err, errlen, "%s: %s", o->checksum_file, strerror(errno));
            goto out;
        }
    }
    if (m->have_dm) {
        rc = ts_dm_attach(src, domid, &m->cfg, &m->sdm);
        if (rc) {
            seterr(err, errlen, "the device model of d%u (pid %d) is not "
                   "running", domid, (int)m->cfg.dm_pid);
            goto out;
        }
        rc = ts_qmp_connect(&m->sq, m->sdm.qmp, m->sdm.pidfd, 10000, err,
                            errlen);
        if (rc)
            goto out;
    }

    /* The receiver creates the domain from the configuration it was
     * sent (libxl_domain_create_restore): paused, same memory layout. */
    {
        struct xsim_create cr = { .vcpus = m->cfg.vcpus,
                                  .flags = XSIM_CREATE_PAUSED };
        struct xsim_rep rep;

        fmt(cr.name, sizeof(cr.name), "%s", m->cfg.name);
        fmt(cr.workload, sizeof(cr.workload), "%s", m->cfg.workload);
        cr.mem_kb = m->cfg.mem_mib * 1024;
        cr.vram_kb = m->cfg.vram_mib * 1024;
        rc = call1(&m->dst, XSIM_OP_DOM_CREATE, 0, NULL, &cr, sizeof(cr),
                   &rep, NULL, 0, NULL);
        if (rc) {
            seterr(err, errlen, "creating the domain on %s failed: %s%s",
                   m->dst.dir, strerror(-rc),
                   rc == -EEXIST ? " (a domain of that name is there)" : "");
            goto out;
        }
        m->ddom = (uint32_t)rep.ret;
        /* Its maximum memory is what libxl__build_pre gives every domain
         * it builds or restores: target_memkb + LIBXL_MAXMEM_CONSTANT,
         * from the target it was sent; not static-max, not the source's
         * maximum.  Hot-plugged RAM that the target does not cover does
         * not fit: round 0 fails to populate it (EBUSY), as libxc's
         * restore does, and the source resumes. */
        rc = set_xen_max(&m->dst, m->ddom, m->cfg.target_memkb +
                         XSIM_MAXMEM_SLACK_KB, err, errlen);
        if (rc)
            goto out;
    }
    /* Both guests' memory, mapped here (libxc maps the source's frames
     * with xenforeignmemory; the receiver writes into the new domain). */
    {
        struct bitmap tmp = { 0 };

        rc = get_p2m(&m->dst, m->ddom, &tmp, &fd);
        if (rc == 0 && fd >= 0) {
            m->dmem = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_NORESERVE, fd, 0);
            close(fd);
            fd = -1;
        }
        if (rc == 0)
            rc = get_p2m(src, domid, &tmp, &fd);
        if (rc == 0 && fd >= 0) {
            m->smem = mmap(NULL, GUEST_BYTES, PROT_READ,
                           MAP_SHARED | MAP_NORESERVE, fd, 0);
            close(fd);
            fd = -1;
        }
        free(tmp.b);
        if (rc || m->smem == MAP_FAILED || m->dmem == MAP_FAILED) {
            seterr(err, errlen, "cannot map the guests' memory: %s",
                   rc ? strerror(-rc) : strerror(errno));
            rc = rc ? rc : -ENOMEM;
            goto out;
        }
    }

    /* 1. libxl: the device model reports its writes from now on. */
    if (m->have_dm) {
        rc = qmp_do(&m->sq, "xen-set-global-dirty-log",
                    json_pack("{s:b}", "enable", 1), DIRTY_LOG_TIMEOUT_MS,
                    err, errlen);
        if (rc)
            goto out;
        dirtylog_dm = true;
    }
    /* libxc x86_hvm_setup -> enable_logdirty: if it is held (VRAM
     * tracking on a real Xen), switch shadow off and try again. */
    rc = shadow(src, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    if (rc == -EINVAL) {
        shadow(src, domid, XEN_DOMCTL_SHADOW_OP_OFF);
        rc = shadow(src, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    }
    if (rc) {
        seterr(err, errlen, "enabling log-dirty on d%u: %s", domid,
               strerror(-rc));
        goto out;
    }
    logdirty = true;
    m->tty = o->progress && isatty(STDERR_FILENO);
    if (m->tty)
        fprintf(stderr, "migrating d%u (%s) to %s\n", domid, info.name,
                m->dst.dir);

    /* 2. Round 0: every populated frame. */
    m->t_clean = now_ns();
    rc = sync_p2m(m, err, errlen);
    if (rc)
        goto out;
    {
        uint64_t sent = copy_pages(m, NULL);

        m->rounds = 1;
        progress(m, 0, sent, 0, true);
    }
    hotplug_hook(m, "live");
    /* Live rounds: CLEAN, copy what was dirtied, until few pages are
     * dirty or the rounds are used up (libxc's simple precopy policy). */
    while (m->rounds < o->max_iters) {
        uint64_t dirty, sent, t;

        if (interrupted) {
            seterr(err, errlen, "interrupted");
            rc = -EINTR;
            goto out;
        }
        rc = clean(m, false, &dirty, err, errlen);
        if (rc)
            goto out;
        t = now_ns();
        rc = sync_p2m(m, err, errlen);
        if (rc)
            goto out;
        sent = copy_pages(m, &m->dirty);
        m->rounds++;
        progress(m, dirty, sent, (double)(t - m->t_clean) / 1e9, true);
        m->t_clean = t;
        if (dirty < o->threshold)
            break;
    }

    /* 3. Suspend: pause the guest, stop the device model, save its state,
     * take the last dirty pages. */
    m->t_suspend = now_ns();
    rc = dom_simple(src, XSIM_OP_DOM_PAUSE, domid);
    if (rc) {
        seterr(err, errlen, "pausing d%u: %s", domid, strerror(-rc));
        goto out;
    }
    src_paused = true;
    if (m->have_dm) {
        rc = qmp_do(&m->sq, "stop", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc)
            goto out;
        dm_stopped = true;
        snprintf(save_path, sizeof(save_path), "%s/qemu-save.%u", src->dir,
                 domid);
        rc = save_devstate(m, save_path, err, errlen);
        if (rc)
            goto out;
        hotplug_hook(m, "saved");
    }
    {
        uint64_t dirty, sent;

        rc = clean(m, true, &dirty, err, errlen);
        if (rc)
            goto out;
        rc = sync_p2m(m, err, errlen);
        if (rc)
            goto out;
        sent = copy_pages(m, &m->dirty);
        m->final_pages = sent;
        m->sp2m_count = bm_count(&m->sp2m);
        m->rounds++;
        progress(m, dirty, sent,
                 (double)(now_ns() - m->t_clean) / 1e9, false);
    }
    if (m->sums) {
        m->src_sum = sum_of(m, src, domid, m->smem, &m->sp2m,
                            &m->src_pages);
        fprintf(m->sums, "source %016" PRIx64 " %" PRIu64 "\n", m->src_sum,
                m->src_pages);
        fflush(m->sums);
    }
    /* The sender is done with Xen's log-dirty and the DM's reports. */
    if (m->have_dm) {
        rc = qmp_do(&m->sq, "xen-set-global-dirty-log",
                    json_pack("{s:b}", "enable", 0), DIRTY_LOG_TIMEOUT_MS,
                    err, errlen);
        if (rc)
            goto out;
        dirtylog_dm = false;
    }
    hotplug_hook(m, "dirty-log-off");
    shadow(src, domid, XEN_DOMCTL_SHADOW_OP_OFF);
    logdirty = false;

    /* The destination's memory as the stream left it, before any device
     * model of it runs (one started without -S runs as soon as it has
     * loaded its state). */
    if (m->sums) {
        m->dst_sum = sum_of(m, &m->dst, m->ddom, m->dmem, &m->dp2m,
                            &m->dst_pages);
        fprintf(m->sums, "destination %016" PRIx64 " %" PRIu64 "\n",
                m->dst_sum, m->dst_pages);
        fflush(m->sums);
        m->sums_taken = true;
    }

    /* The stream is in: libxl__build_post writes the domain's memory
     * keys (static-max the sender's, the target less libxl's fudge). */
    rc = ts_write_memory_keys(&m->dst, m->ddom, &m->cfg, err, errlen);
    if (rc)
        goto out;

    /* 4. Receiver: the device model with -incoming fd:N, paused (-S) or
     * running, then cont and wait for it to be running. */
    if (m->have_dm) {
        copy_emulator_xenstore(src, domid, &m->dst, m->ddom);
        fmt(resume_path, sizeof(resume_path), "%s/qemu-resume.%u",
                 m->dst.dir, m->ddom);
        rc = copy_file(save_path, resume_path, err, errlen);
        if (rc)
            goto out;
        in_fd = open(resume_path, O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) {
            rc = -errno;
            seterr(err, errlen, "%s: %s", resume_path, strerror(errno));
            goto out;
        }
        rc = ts_dm_launch(&m->dst, m->ddom, &m->cfg, o->dest_args,
                          o->ndest_args, in_fd, &m->ddm, err, errlen);
        close(in_fd);
        in_fd = -1;
        if (rc)
            goto out;
        /* Recorded at once: the destination host can always stop it. */
        m->cfg.dm_pid = m->ddm.pid;
        m->cfg.dm_start = m->ddm.start;
        rc = ts_domcfg_save(m->dst.dir, m->ddom, &m->cfg, err, errlen);
        if (rc)
            goto out;
        rc = ts_dm_startup(&m->dst, m->ddom, &m->ddm, &m->dq, true,
                           dm_timeout, err, errlen);
        if (rc) {
            char tmp[TS_ERRLEN];

            dm_explain(&m->ddm, err, errlen);
            snprintf(tmp, sizeof(tmp), "the destination's device model: %s",
                     err);
            seterr(err, errlen, "%s", tmp);
            goto out;
        }
    }
    if (m->have_dm) {
        const char *hook = getenv("XENSIM_TEST_MIGRATE_HOOK");

        /* Tests: the destination's device model dies at the worst time. */
        if (hook && strcmp(hook, "kill-dest-dm-before-cont") == 0)
            dm_signal(&m->ddm, SIGKILL);
        rc = qmp_do(&m->dq, "cont", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc == 0)
            rc = ts_dm_wait_running(&m->dst, m->ddom, &m->ddm, dm_timeout,
                                    err, errlen);
        if (rc) {
            char tmp[TS_ERRLEN];

            dm_explain(&m->ddm, err, errlen);
            snprintf(tmp, sizeof(tmp), "the destination's device model: %s",
                     err);
            seterr(err, errlen, "%s", tmp);
            goto out;
        }
        ts_qmp_close(&m->dq);
        record_dm_pid(&m->dst, m->ddom, m->ddm.pid);
    } else {
        rc = ts_domcfg_save(m->dst.dir, m->ddom, &m->cfg, err, errlen);
        if (rc)
            goto out;
    }
    if (!was_paused && !o->pause_dest) {
        rc = dom_simple(&m->dst, XSIM_OP_DOM_UNPAUSE, m->ddom);
        if (rc) {
            seterr(err, errlen, "unpausing d%u on %s: %s", m->ddom,
                   m->dst.dir, strerror(-rc));
            goto out;
        }
    }
    m->t_resumed = now_ns();
    done = true;
    /* What a toolstack sees of the hot-plugged RAM on both sides. */
    if (m->have_dm) {
        ts_hotplug_list(src, domid, &m->hp_src, &m->nhp_src, e2, sizeof(e2));
        ts_hotplug_list(&m->dst, m->ddom, &m->hp_dst, &m->nhp_dst, e2,
                        sizeof(e2));
        m->hp_listed = true;
    }

    /* 5. The sender destroys its copy: device model, then domain. */
    if (m->have_dm) {
        ts_qmp_close(&m->sq);
        if (ts_dm_stop(&m->sdm, true, e2, sizeof(e2)))
            fprintf(stderr, "xensim: source: %s\n", e2);
    }
    rc = dom_simple(src, XSIM_OP_DOM_DESTROY, domid);
    if (rc)
        fprintf(stderr, "xensim: destroying d%u on the source: %s\n", domid,
                strerror(-rc));
    ts_domcfg_remove(src->dir, domid);
    rc = 0;
    m->t_end = now_ns();
    summary(m, &info);

out:
    if (!done) {
        /* The receiver's copy goes; the sender resumes
         * (libxl_domain_resume): nothing of the source is lost. */
        if (m->ddm.pid) {
            ts_qmp_close(&m->dq);
            ts_dm_stop(&m->ddm, false, e2, sizeof(e2));
        }
        if (m->ddom) {
            dom_simple(&m->dst, XSIM_OP_DOM_DESTROY, m->ddom);
            ts_domcfg_remove(m->dst.dir, m->ddom);
        }
        if (dirtylog_dm && m->sq.fd >= 0)
            qmp_do(&m->sq, "xen-set-global-dirty-log",
                   json_pack("{s:b}", "enable", 0), DIRTY_LOG_TIMEOUT_MS, e2,
                   sizeof(e2));
        if (logdirty)
            shadow(src, domid, XEN_DOMCTL_SHADOW_OP_OFF);
        if (dm_stopped &&
            qmp_do(&m->sq, "cont", NULL, QMP_TIMEOUT_MS, e2, sizeof(e2)))
            fprintf(stderr, "xensim: resuming the source's device model: "
                    "%s\n", e2);
        if (src_paused)
            dom_simple(src, XSIM_OP_DOM_UNPAUSE, domid);
        if (rc == 0)
            rc = -EIO;
        if (m->ddom) {
            char tmp[TS_ERRLEN];

            fmt(tmp, sizeof(tmp), "%s\nxensim: d%u destroyed on %s; d%u "
                "resumed on %s", err, m->ddom, m->dst.dir, domid, src->dir);
            seterr(err, errlen, "%s", tmp);
        }
    }
    if (save_path[0])
        unlink(save_path);
    if (resume_path[0])
        unlink(resume_path);
    if (in_fd >= 0)
        close(in_fd);
    if (m->sums)
        fclose(m->sums);
    ts_qmp_close(&m->sq);
    ts_qmp_close(&m->dq);
    ts_dm_release(&m->sdm);
    ts_dm_release(&m->ddm);
    if (m->smem != MAP_FAILED)
        munmap((void *)m->smem, GUEST_BYTES);
    if (m->dmem != MAP_FAILED)
        munmap(m->dmem, GUEST_BYTES);
    free(m->sp2m.b);
    free(m->dp2m.b);
    free(m->dirty.b);
    free(m->hp_src);
    free(m->hp_dst);
    if (m->have_cfg)
        ts_domcfg_free(&m->cfg);
    ts_host_close(&m->dst);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
