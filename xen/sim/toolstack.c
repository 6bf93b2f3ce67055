/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * toolstack.c - xensim as libxl and libxc, the common part: helpers the
 * toolstack files share, the channel to a simulated host, xenstore
 * access, and the domain's record (libxl's userdata).  The concerns live
 * beside it: ts-qmp.c (QMP client), ts-dm.c (device-model launch, create
 * --dm, destroy), ts-mem.c (memory keys, mem-max, mem-set; guest memory
 * digests), ts-hotplug.c (RAM hot-plug requests), ts-migrate.c (`xl
 * migrate`).  See toolstack.h and docs/toolstack.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "xen/sim/chan.h"
#include "xen/sim/toolstack-internal.h"

/* ---- helpers ------------------------------------------------------------ */

void ts_seterr(char *err, size_t errlen, const char *fmt, ...)
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
int ts_fmt(char *buf, size_t len, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, len, f, ap);
    va_end(ap);
    return n;
}

uint64_t ts_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ts_ms_left(uint64_t deadline)
{
    uint64_t t = ts_now_ns();

    if (t >= deadline)
        return 0;
    return (int)((deadline - t + 999999) / 1000000);
}

int ts_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Field 22 of /proc/PID/stat: start time in clock ticks since boot. */
uint64_t ts_proc_start(pid_t pid)
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
bool ts_pidfd_exited(int pidfd, int ms)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };

    if (pidfd < 0)
        return false;
    return poll(&p, 1, ms) > 0;
}

/* The last lines of a log, indented, for an error message. */
void ts_log_tail(const char *path, char *out, size_t outlen)
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
            int k = ts_fmt(out + o, outlen - o, "\n  | %s", line);

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
        ts_seterr(err, errlen, "no simulated host in %s: %s", dir,
                  strerror(-rc));
        return rc;
    }
    snprintf(h->dir, sizeof(h->dir), "%s", abs);
    h->fd = xsim_connect(h->dir);
    if (h->fd < 0) {
        rc = h->fd;
        ts_seterr(err, errlen, "no simulated host in %s: %s (start one with "
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
        ts_seterr(err, errlen, "the host in %s does not answer: %s", h->dir,
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
int ts_call_rc(struct ts_host *h, uint16_t op, uint32_t domid,
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
    int rc = ts_call_rc(h, XSIM_OP_DOM_GETINFO, domid, args, NULL, 0, &rep, out,
                        sizeof(*out), NULL);

    if (rc)
        return rc;
    if (rep.ret != 1 || out->domid != domid)
        return -ESRCH;
    return 0;
}

int ts_dom_op(struct ts_host *h, uint16_t op, uint32_t domid)
{
    struct xsim_rep rep;

    return ts_call_rc(h, op, domid, NULL, NULL, 0, &rep, NULL, 0, NULL);
}

/* ---- xenstore --------------------------------------------------------- */

struct xs_handle *ts_xs_open(const struct ts_host *h)
{
    if (!h->xenstore)
        return NULL;
    /* libxenstore reads the socket path when the handle opens. */
    setenv("XENSTORED_PATH", h->xs_socket, 1);
    return xs_open(XS_OPEN_SOCKETONLY);
}

struct xs_handle *ts_xs_open_err(const struct ts_host *h, char *err,
                                 size_t errlen, int *e)
{
    struct xs_handle *xs = ts_xs_open(h);

    if (!xs) {
        int en = errno ? errno : EIO;

        ts_seterr(err, errlen, "cannot open xenstore at %s: %s", h->xs_socket,
                  strerror(en));
        if (e)
            *e = en;
        errno = en;
    }
    return xs;
}

void ts_xs_write(const struct ts_host *h, const char *path,
                 const char *val)
{
    struct xs_handle *xs = ts_xs_open(h);

    if (!xs)
        return;
    if (!xs_write(xs, XBT_NULL, path, val, (unsigned)strlen(val)))
        fprintf(stderr, "xensim: cannot write %s in xenstore: %s\n", path,
                strerror(errno));
    xs_close(xs);
}

/* ---- domain records ------------------------------------------------------ */

static void record_path(char *buf, size_t len, const char *dir,
                        uint32_t domid)
{
    ts_fmt(buf, len, "%s/domain-%u.json", dir, domid);
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
        ts_seterr(err, errlen, "cannot write %s: %s", path, strerror(-rc));
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
        ts_seterr(err, errlen, "%s: %s", path, je.text);
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

/* ---- interrupts during a migration ---------------------------------------- */

volatile sig_atomic_t ts_interrupted;

static void ts_on_interrupt(int sig)
{
    (void)sig;
    ts_interrupted = 1;
}

void ts_interrupt_catch(struct ts_sigsave *save)
{
    struct sigaction sa = { .sa_handler = ts_on_interrupt };

    ts_interrupted = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &save->sigint);
    sigaction(SIGTERM, &sa, &save->sigterm);
}

void ts_interrupt_restore(const struct ts_sigsave *save)
{
    sigaction(SIGINT, &save->sigint, NULL);
    sigaction(SIGTERM, &save->sigterm, NULL);
}
