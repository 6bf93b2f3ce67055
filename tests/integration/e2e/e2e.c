/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * e2e.c - fixtures for the end-to-end tests.  See e2e.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "tests/common/xensim-start.h"
#include "tests/integration/e2e/e2e.h"
#include "xen/sim/chan.h"
#include "xen/sim/toolstack.h"

static char build_dir[PATH_MAX];
static char xenram_path[PATH_MAX + 16];
static char xensim_path[PATH_MAX + 16];
static struct e2e_host *hosts[E2E_MAX_HOSTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned watchdog_s;

const char *e2e_build(void)
{
    return build_dir;
}

const char *e2e_xenram(void)
{
    return xenram_path;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Every process whose parent we are (hosts, device models adopted as a
 * subreaper, stray xensim commands). */
static int children(pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t me = getpid();
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) && n < max) {
        char path[300], buf[512], *p;
        int fd, ppid = 0;
        ssize_t r;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        r = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = 0;
        p = strrchr(buf, ')');
        if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == me)
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static void kill_children(void)
{
    pid_t pids[256];
    int n = children(pids, 256);

    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
}

static void *watchdog(void *arg)
{
    struct timespec ts = { .tv_sec = (time_t)watchdog_s };

    (void)arg;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    fprintf(stderr, "e2e: watchdog expired after %u s: killing the hosts "
            "and device models, failing\n", watchdog_s);
    kill_children();
    for (int i = 0; i < E2E_MAX_HOSTS; i++)
        if (hosts[i] && hosts[i]->dir[0])
            nftw(hosts[i]->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    _exit(124);
}

void e2e_init(unsigned timeout_s)
{
    char exe[PATH_MAX], tmp[PATH_MAX * 2];
    pthread_t t;
    ssize_t n;

    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        perror("e2e: /proc/self/exe");
        exit(1);
    }
    exe[n] = 0;
    *strrchr(exe, '/') = 0;             /* $(BUILD)/tests/e2e */
    snprintf(tmp, sizeof(tmp), "%s/../..", exe);
    if (!realpath(tmp, build_dir)) {
        perror("e2e: build directory");
        exit(1);
    }
    snprintf(xenram_path, sizeof(xenram_path), "%s/xenram", build_dir);
    snprintf(xensim_path, sizeof(xensim_path), "%s/xensim", build_dir);
    if (access(xenram_path, X_OK) || access(xensim_path, X_OK)) {
        fprintf(stderr, "e2e: %s and %s must be built (make all)\n",
                xenram_path, xensim_path);
        exit(1);
    }
    /* Device models outlive the xensim commands that launch them: as a
     * subreaper we inherit them and can always stop them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    watchdog_s = timeout_s;
    if (pthread_create(&t, NULL, watchdog, NULL) == 0)
        pthread_detach(t);
}

int e2e_host_start(struct e2e_host *h)
{
    static const char *const xs_on[] = { "--xenstore", "on", NULL };
    char line[256];
    int fd = -1, slot = -1;
    pid_t pid;

    memset(h, 0, sizeof(*h));
    snprintf(h->dir, sizeof(h->dir), "/tmp/xre2e.XXXXXX");
    if (!mkdtemp(h->dir))
        return -errno;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < E2E_MAX_HOSTS && slot < 0; i++)
        if (!hosts[i])
            slot = i;
    if (slot >= 0)
        hosts[slot] = h;
    pthread_mutex_unlock(&lock);
    if (slot < 0)
        return -ENOSPC;
    /* If the test dies, the host stops, and with it its device models
     * (the daemon stops what its records name). */
    pid = xensim_start_spawn(xensim_path, h->dir, xs_on, SIGTERM, true, &fd);
    if (pid < 0)
        return pid;
    h->pid = pid;
    if (!xensim_start_wait(fd, line, sizeof(line))) {
        bool no_xs = strstr(line, "xenstore") || strstr(line, "xenstored");

        fprintf(stderr, "e2e: xensim did not start: %s\n",
                line[0] ? line : "(no answer)");
        return no_xs ? -ENOTSUP : -EIO;
    }
    return 0;
}

static void host_reap(struct e2e_host *h, int ms)
{
    int st, pidfd;

    if (h->reaped || h->pid <= 0)
        return;
    pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        poll(&p, 1, ms);
        close(pidfd);
    }
    if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
        h->reaped = true;
        h->status = st;
    }
}

int e2e_teardown(void)
{
    int bad = 0;

    for (int i = 0; i < E2E_MAX_HOSTS; i++) {
        struct e2e_host *h = hosts[i];

        if (!h)
            continue;
        if (h->pid > 0 && !h->reaped) {
            kill(h->pid, SIGTERM);
            host_reap(h, 20000);
            if (!h->reaped) {
                fprintf(stderr, "e2e: host %s did not stop; killing it\n",
                        h->dir);
                kill(h->pid, SIGKILL);
                waitpid(h->pid, &h->status, 0);
                h->reaped = true;
                bad = -1;
            } else if (!WIFEXITED(h->status) || WEXITSTATUS(h->status)) {
                char cmd[PATH_MAX];

                fprintf(stderr, "e2e: host %s exited badly (status %#x); "
                        "its log:\n", h->dir, h->status);
                snprintf(cmd, sizeof(cmd), "cat %s/xensim.log >&2", h->dir);
                (void)!system(cmd);
                bad = -1;
            }
        }
    }
    /* Whatever is left: device models of hosts that failed, strays. */
    kill_children();
    for (int i = 0; i < E2E_MAX_HOSTS; i++) {
        if (hosts[i]) {
            nftw(hosts[i]->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
            pthread_mutex_lock(&lock);
            hosts[i] = NULL;
            pthread_mutex_unlock(&lock);
        }
    }
    return bad;
}

/* Append what @fd has to @buf (up to @len - 1, NUL-terminated) and to our
 * own @echo descriptor; false at the end of it. */
static bool drain(int fd, char *buf, size_t len, size_t *got, int echo)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));

    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    if (buf && *got + 1 < len) {
        size_t k = (size_t)n < len - 1 - *got ? (size_t)n : len - 1 - *got;

        memcpy(buf + *got, tmp, k);
        *got += k;
    }
    /* Show it as well: the test's log tells what happened. */
    (void)!write(echo, tmp, (size_t)n);
    return true;
}

static int run_xensim(const struct e2e_host *h, char *out, size_t outlen,
                      char *errout, size_t errlen, va_list ap)
{
    char *argv[64];
    int a = 0, pout[2], perr[2], st;
    size_t got = 0, egot = 0;
    bool open_out = true, open_err = true;
    pid_t pid;

    argv[a++] = xensim_path;
    if (h) {
        argv[a++] = "--dir";
        argv[a++] = (char *)h->dir;
    }
    while (a < 63 && (argv[a] = va_arg(ap, char *)))
        a++;
    argv[a] = NULL;
    if (pipe2(pout, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(perr, O_CLOEXEC) < 0) {
        close(pout[0]);
        close(pout[1]);
        return -1;
    }
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pout[1], 1);
        if (errout)
            dup2(perr[1], 2);
        execv(xensim_path, argv);
        _exit(127);
    }
    close(pout[1]);
    close(perr[1]);
    if (!errout) {
        close(perr[0]);
        open_err = false;
    }
    while (open_out || open_err) {
        struct pollfd p[2] = { { .fd = open_out ? pout[0] : -1,
                                 .events = POLLIN },
                               { .fd = open_err ? perr[0] : -1,
                                 .events = POLLIN } };

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents && !drain(pout[0], out, outlen, &got, 2))
            open_out = false;
        if (p[1].revents && !drain(perr[0], errout, errlen, &egot, 2))
            open_err = false;
    }
    close(pout[0]);
    if (errout)
        close(perr[0]);
    if (out && outlen)
        out[got] = 0;
    if (errout && errlen)
        errout[egot] = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int e2e_xensim(const struct e2e_host *h, char *out, size_t outlen, ...)
{
    va_list ap;
    int rc;

    va_start(ap, outlen);
    rc = run_xensim(h, out, outlen, NULL, 0, ap);
    va_end(ap);
    return rc;
}

int e2e_xensim_err(const struct e2e_host *h, char *out, size_t outlen,
                   char *err, size_t errlen, ...)
{
    va_list ap;
    int rc;

    va_start(ap, errlen);
    rc = run_xensim(h, out, outlen, err, errlen, ap);
    va_end(ap);
    return rc;
}

uint32_t e2e_domid(const struct e2e_host *h, const char *name)
{
    struct xsim_dominfo info[64];
    struct ts_host th;
    char err[TS_ERRLEN];
    uint32_t id = 0;

    if (ts_host_open(&th, h->dir, err, sizeof(err)))
        return 0;
    for (uint32_t first = 1; !id;) {
        uint64_t args[6] = { 64 };
        struct xsim_rep rep;
        int n;

        if (ts_call(&th, XSIM_OP_DOM_GETINFO, first, args, NULL, 0, &rep,
                    info, sizeof(info), NULL) || rep.err)
            break;
        n = (int)rep.ret;
        for (int i = 0; i < n && !id; i++) {
            if (strcmp(info[i].name, name) == 0)
                id = info[i].domid;
            first = info[i].domid + 1;
        }
        if (n < 64)
            break;
    }
    ts_host_close(&th);
    return id;
}

bool e2e_dominfo(const struct e2e_host *h, uint32_t domid,
                 struct xsim_dominfo *out)
{
    struct ts_host th;
    char err[TS_ERRLEN];
    int rc;

    if (ts_host_open(&th, h->dir, err, sizeof(err)))
        return false;
    rc = ts_dominfo(&th, domid, out);
    ts_host_close(&th);
    return rc == 0;
}

pid_t e2e_dm_pid(const struct e2e_host *h, uint32_t domid)
{
    struct ts_domcfg c;
    pid_t pid;

    if (ts_domcfg_load(h->dir, domid, &c, NULL, 0))
        return 0;
    pid = c.dm_pid;
    ts_domcfg_free(&c);
    return pid;
}

bool e2e_alive(pid_t pid)
{
    char path[64], buf[512], *p, state = 0;
    ssize_t n;
    int fd;

    if (pid <= 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (p)
        sscanf(p + 1, " %c", &state);
    if (state == 'Z' || state == 'X') {
        waitpid(pid, NULL, WNOHANG);    /* ours, as the subreaper */
        return false;
    }
    return true;
}

bool e2e_wait_exit(pid_t pid, int ms)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p;

    if (pidfd < 0)
        return !e2e_alive(pid);
    p.fd = pidfd;
    p.events = POLLIN;
    poll(&p, 1, ms);
    close(pidfd);
    return !e2e_alive(pid);
}

char *e2e_xs_read(const struct e2e_host *h, const char *path)
{
    char sock[200];
    struct xs_handle *xs;
    unsigned len;
    char *v;

    snprintf(sock, sizeof(sock), "%s/xenstored/socket", h->dir);
    setenv("XENSTORED_PATH", sock, 1);
    xs = xs_open(XS_OPEN_SOCKETONLY);
    if (!xs)
        return NULL;
    v = xs_read(xs, XBT_NULL, path, &len);
    xs_close(xs);
    return v;
}

bool e2e_xs_write(const struct e2e_host *h, const char *path,
                  const char *value)
{
    char sock[200];
    struct xs_handle *xs;
    bool ok;

    snprintf(sock, sizeof(sock), "%s/xenstored/socket", h->dir);
    setenv("XENSTORED_PATH", sock, 1);
    xs = xs_open(XS_OPEN_SOCKETONLY);
    if (!xs)
        return false;
    ok = xs_write(xs, XBT_NULL, path, value, (unsigned)strlen(value));
    xs_close(xs);
    return ok;
}

json_t *e2e_qmp(const struct e2e_host *h, uint32_t domid, const char *cmd,
                json_t *args)
{
    char path[200], err[TS_ERRLEN];
    struct ts_qmp q;
    json_t *r;

    snprintf(path, sizeof(path), "%s/qmp-libxl-%u", h->dir, domid);
    if (ts_qmp_connect(&q, path, -1, 5000, err, sizeof(err))) {
        fprintf(stderr, "e2e: %s\n", err);
        json_decref(args);
        return NULL;
    }
    r = ts_qmp_exec(&q, cmd, args, -1, 10000, err, sizeof(err));
    if (!r)
        fprintf(stderr, "e2e: %s\n", err);
    ts_qmp_close(&q);
    return r;
}

void e2e_qmp_status(const struct e2e_host *h, uint32_t domid, char *out,
                    size_t outlen)
{
    json_t *r = e2e_qmp(h, domid, "query-status", NULL);

    snprintf(out, outlen, "%s",
             r ? json_string_value(json_object_get(r, "status")) ?: "" : "");
    json_decref(r);
}

void e2e_checksum(const struct e2e_host *h, uint32_t domid, char sum[33])
{
    char id[16], out[256];

    snprintf(id, sizeof(id), "%u", domid);
    sum[0] = 0;
    if (e2e_xensim(h, out, sizeof(out), "checksum", id, NULL) == 0)
        snprintf(sum, 33, "%.32s", out);
}

/* Bounded condition waits: the condition is the synchronisation, the
 * short pause between two looks only keeps the loop from spinning. */
static void pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

bool e2e_wait_dma(const struct e2e_host *h, uint32_t domid, uint64_t pages)
{
    for (int i = 0; i < 500; i++) {
        json_t *r = e2e_qmp(h, domid, "x-xenram-query-memory", NULL);
        json_int_t w = json_integer_value(json_object_get(
            json_object_get(r, "test-device"), "pages-written"));

        json_decref(r);
        if ((uint64_t)w >= pages)
            return true;
        pause_ms(10);
    }
    return false;
}

bool e2e_wait_vcpu_writes(const struct e2e_host *h, uint32_t domid,
                          uint64_t pages)
{
    struct xsim_dominfo info;
    uint64_t start;

    if (!e2e_dominfo(h, domid, &info))
        return false;
    start = info.vcpu_writes;
    for (int i = 0; i < 500; i++) {
        if (!e2e_dominfo(h, domid, &info))
            return false;
        if (info.vcpu_writes >= start + pages)
            return true;
        pause_ms(10);
    }
    return false;
}

int e2e_hosts_setup(struct e2e_host *a, struct e2e_host *b,
                    bool *no_xenstore)
{
    int rc = e2e_host_start(a);

    if (rc == 0 && b)
        rc = e2e_host_start(b);
    if (rc == -ENOTSUP) {
        *no_xenstore = true;
        return 0;
    }
    return rc ? -1 : 0;
}

int e2e_group_teardown(void **state)
{
    (void)state;
    return e2e_teardown() ? -1 : 0;
}

#define E2E_GUEST_BYTES ((size_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE))

bool e2e_mem_map(const struct e2e_host *h, uint32_t d, struct e2e_mem *m)
{
    uint64_t args[6] = { 1 };
    struct ts_host th;
    struct xsim_rep rep;
    char err[TS_ERRLEN];
    size_t cap = 1 << 20;
    int fd = -1, rc;

    memset(m, 0, sizeof(*m));
    if (ts_host_open(&th, h->dir, err, sizeof(err)))
        return false;
    m->p2m = calloc(1, cap);
    rc = m->p2m ? ts_call(&th, XSIM_OP_MEM_P2M, d, args, NULL, 0, &rep,
                          m->p2m, cap, &fd) : -ENOMEM;
    ts_host_close(&th);
    if (rc || rep.err || (rep.val[0] + 7) / 8 > cap || fd < 0) {
        if (fd >= 0)
            close(fd);
        free(m->p2m);
        m->p2m = NULL;
        return false;
    }
    m->pages = rep.val[0];
    m->mem = mmap(NULL, E2E_GUEST_BYTES, PROT_READ, MAP_SHARED | MAP_NORESERVE,
                  fd, 0);
    close(fd);
    if (m->mem == MAP_FAILED) {
        free(m->p2m);
        m->p2m = NULL;
        m->mem = NULL;
        return false;
    }
    return true;
}

void e2e_mem_unmap(struct e2e_mem *m)
{
    if (m->mem)
        munmap(m->mem, E2E_GUEST_BYTES);
    free(m->p2m);
    m->mem = m->p2m = NULL;
}
