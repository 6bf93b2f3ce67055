/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xs-sim.c - start, stop and feed Debian's xenstored for the simulator.
 * See xs-sim.h for the contract and docs/xenstore-sim.md for the concepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * Not <xen/xen.h> nor headers that include it: with the project's -I.,
 * <xen/xen.h> is the project's own xen/xen.h.
 */
#include <xenstore.h>
#include <xen/io/xs_wire.h>

#include "xen/sim/xenstore/sim-evtchn-addr.h"
#include "xen/sim/xenstore/xs-sim.h"

#define XS_SIM_PAGE_SIZE      4096
#define XS_SIM_DOM0_PORT      1     /* what /proc/xen/xsd_port says */
#define XS_SIM_VIRQ_DOM_EXC   3     /* VIRQ_DOM_EXC in Xen's xen.h */
#define XS_SIM_DOMID_FIRST_RESERVED 0x7FF0u  /* DOMID_FIRST_RESERVED */
#define XS_SIM_STORE_GREF     1     /* GNTTAB_RESERVED_XENSTORE */
/* Where Debian's xen-utils-4.17 puts it, below / or an unpacked tree. */
#define XS_SIM_XENSTORED_BIN  "usr/lib/xen-4.17/bin/xenstored"
#define XS_SIM_GUEST_TIMEOUT_MS 5000
#define XS_SIM_TXN_RETRIES    16

static void xs_sim_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void xs_sim_err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("xs-sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000,
                           .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int env_int(const char *name, int def)
{
    const char *s = getenv(name);

    return s && *s ? atoi(s) : def;
}

/* ---- files of the run directory ----------------------------------------- */

static int write_file(const char *path, const void *buf, size_t len,
                      off_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int err = 0;

    if (fd < 0)
        return -errno;
    if ((len && write(fd, buf, len) != (ssize_t)len) ||
        (size && ftruncate(fd, size) < 0))
        err = errno ? -errno : -EIO;
    close(fd);
    return err;
}

static int mkdir_p1(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* "<dir>/<name>" into a fresh string; NULL on ENOMEM. */
static char *path_join(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

/* The run directory of a socket path: everything before the last '/'. */
static char *socket_run_dir(const char *socket_path)
{
    const char *slash = strrchr(socket_path, '/');

    if (!slash)
        return strdup(".");
    return strndup(socket_path, (size_t)(slash - socket_path));
}

static int grant_file(char *buf, size_t len, const char *run_dir,
                      uint32_t domid)
{
    int n = snprintf(buf, len, "%s/gnttab/%u.%u", run_dir, domid,
                     XS_SIM_STORE_GREF);

    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* 0 if something accepts connections on @path, else -errno. */
static int socket_probe(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, rc = 0;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* ---- connecting with the real libxenstore ------------------------------- */

/*
 * libxenstore only takes its socket path from XENSTORED_PATH.  Set it for
 * the duration of xs_open() if it says something else, under a lock so
 * that our own callers do not race each other.
 */
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

static struct xs_handle *xs_sim_connect(const char *socket_path)
{
    struct xs_handle *xsh;
    const char *cur;
    char *saved = NULL;
    bool changed = false;
    int err;

    pthread_mutex_lock(&env_lock);
    cur = getenv("XENSTORED_PATH");
    if (!cur || strcmp(cur, socket_path) != 0) {
        saved = cur ? strdup(cur) : NULL;
        setenv("XENSTORED_PATH", socket_path, 1);
        changed = true;
    }
    /* SOCKETONLY: never fall back to a real /dev/xen/xenbus. */
    xsh = xs_open(XS_OPEN_SOCKETONLY);
    err = errno;
    if (changed) {
        if (saved)
            setenv("XENSTORED_PATH", saved, 1);
        else
            unsetenv("XENSTORED_PATH");
    }
    pthread_mutex_unlock(&env_lock);
    free(saved);
    if (!xsh)
        xs_sim_err("cannot connect to xenstored at %s: %s", socket_path,
                   strerror(err));
    errno = err;
    return xsh;
}

/* ---- start / stop -------------------------------------------------------- */

/* @dir/@rel if that is executable, else NULL. */
static char *executable_at(const char *dir, const char *rel)
{
    char *p = xasprintf("%s/%s", dir, rel);

    if (p && access(p, X_OK) == 0)
        return p;
    free(p);
    return NULL;
}

/*
 * $XS_SIM_XENSTORED, else the one `make xenstored` unpacked (the directory
 * compiled in, else beside @lib_dir = $(BUILD)/sim), else Debian's
 * installed path.
 */
static char *find_xenstored(const char *lib_dir)
{
    const char *env = getenv("XS_SIM_XENSTORED");
    char *p = NULL;

    if (env && *env)
        return strdup(env);
#ifdef XS_SIM_XENSTORED_DIR
    p = executable_at(XS_SIM_XENSTORED_DIR, XS_SIM_XENSTORED_BIN);
#endif
    if (!p)
        p = executable_at(lib_dir, "../xenstored/" XS_SIM_XENSTORED_BIN);
    return p ? p : strdup("/" XS_SIM_XENSTORED_BIN);
}

/* The environment of the child: ours, minus what we set, plus @extra. */
static char **child_env(char *const extra[], size_t nextra)
{
    extern char **environ;
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + nextra + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;

        for (size_t j = 0; j < nextra; j++) {
            size_t len = strcspn(extra[j], "=") + 1;

            if (strncmp(environ[i], extra[j], len) == 0)
                overridden = true;
        }
        if (!overridden)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < nextra; j++)
        env[k++] = extra[j];
    return env;
}

/* Print the end of xenstored.log, where xenstored's complaints are. */
static void show_log_tail(const char *log)
{
    char buf[2048];
    ssize_t n;
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    off_t end;

    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    lseek(fd, end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0,
          SEEK_SET);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "xs-sim: --- end of %s ---\n%s%s", log, buf,
                buf[n - 1] == '\n' ? "" : "\n");
    }
}

/* What xen-init-dom0 writes once xenstored runs. */
static int init_dom0(const char *socket_path)
{
    struct xs_handle *xsh = xs_sim_connect(socket_path);
    int rc = 0;

    if (!xsh)
        return -errno;
    if (!xs_write(xsh, XBT_NULL, "/local/domain/0/domid", "0", 1) ||
        !xs_write(xsh, XBT_NULL, "/local/domain/0/name", "Domain-0", 8)) {
        rc = -errno;
        xs_sim_err("cannot write /local/domain/0: %s", strerror(errno));
    }
    xs_close(xsh);
    return rc;
}

static int prepare_run_dir(const char *run_dir)
{
    char path[PATH_MAX];
    char port[16];
    int rc;

    rc = mkdir_p1(run_dir);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/proc-xen", run_dir);
    if ((rc = mkdir_p1(path)) < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/gnttab", run_dir);
    if ((rc = mkdir_p1(path)) < 0)
        return rc;
    /* dom0's store event channel and ring, as the kernel's xenfs shows them. */
    snprintf(port, sizeof(port), "%d\n", XS_SIM_DOM0_PORT);
    snprintf(path, sizeof(path), "%s/proc-xen/xsd_port", run_dir);
    if ((rc = write_file(path, port, strlen(port), 0)) < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/proc-xen/xsd_kva", run_dir);
    return write_file(path, NULL, 0, XS_SIM_PAGE_SIZE);
}

/*
 * Wait, bounded, until xenstored (@pid) accepts connections on @sock, or
 * gives up.  0, or -ECHILD (it exited: reaped) / -ETIMEDOUT (stopped);
 * either way said on stderr with the tail of @log.  The poll of a socket
 * is the only signal xenstored gives that it serves.
 */
static int wait_serving(pid_t pid, const char *xenstored, const char *sock,
                        const char *log, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int status;

    for (unsigned int delay = 2;; delay = delay < 50 ? delay * 2 : 50) {
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid) {
            xs_sim_err("xenstored (%s) %s %d before serving %s", xenstored,
                       WIFEXITED(status) ? "exited with status" :
                       "was killed by signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) :
                       WTERMSIG(status), sock);
            show_log_tail(log);
            return -ECHILD;
        }
        if (socket_probe(sock) == 0)
            return 0;
        if (now_ms() >= deadline) {
            xs_sim_err("xenstored did not accept connections on %s within "
                       "%d ms", sock, timeout_ms);
            show_log_tail(log);
            xs_sim_stop(pid);
            return -ETIMEDOUT;
        }
        sleep_ms(delay);
    }
}

int xs_sim_start(const char *run_dir, const char *lib_dir, pid_t *pid_out)
{
    char rdir[PATH_MAX], ldir[PATH_MAX];
    char *xenstored = NULL, *sock = NULL, *log = NULL, *shim = NULL;
    char *trace = NULL;
    char *extra[8] = { NULL };
    char **env = NULL;
    char *argv[6];
    int argc = 0, rc, logfd = -1, nullfd = -1;
    int timeout_ms = env_int("XS_SIM_TIMEOUT_MS", 10000);
    pid_t pid = -1, ppid = getpid();

    if (!run_dir || !lib_dir || !pid_out)
        return -EINVAL;
    if (mkdir_p1(run_dir) < 0 || !realpath(run_dir, rdir)) {
        rc = -errno;
        xs_sim_err("cannot create run directory %s: %s", run_dir,
                   strerror(errno));
        return rc;
    }
    if (!realpath(lib_dir, ldir)) {
        rc = -errno;
        xs_sim_err("stand-in library directory %s: %s", lib_dir,
                   strerror(errno));
        return rc;
    }
    if (strlen(rdir) + sizeof("/socket") > sizeof(((struct sockaddr_un *)0)->sun_path)) {
        xs_sim_err("run directory %s is too long for a Unix socket path", rdir);
        return -ENAMETOOLONG;
    }

    rc = -ENOMEM;
    xenstored = find_xenstored(ldir);
    sock = path_join(rdir, "socket");
    log = path_join(rdir, "xenstored.log");
    shim = path_join(ldir, "xs-sim-procxen.so");
    if (!xenstored || !sock || !log || !shim)
        goto out;

    if (access(xenstored, X_OK) < 0) {
        rc = -errno;
        xs_sim_err("no xenstored at %s (%s): run `make xenstored` "
                   "(xen/sim/xenstore/fetch-xenstored.sh) or set "
                   "XS_SIM_XENSTORED", xenstored, strerror(errno));
        goto out;
    }
    if (access(shim, R_OK) < 0) {
        rc = -errno;
        xs_sim_err("no %s: build it with `make xs-sim`", shim);
        goto out;
    }
    if (socket_probe(sock) == 0) {
        rc = -EADDRINUSE;
        xs_sim_err("a xenstored already serves %s", sock);
        goto out;
    }
    unlink(sock);               /* a dead xenstored's socket */
    rc = prepare_run_dir(rdir);
    if (rc < 0) {
        xs_sim_err("cannot prepare %s: %s", rdir, strerror(-rc));
        goto out;
    }

    rc = -ENOMEM;
    /* Everything the child needs is built now: after fork() it may not
     * allocate (we may have threads). */
    extra[0] = xasprintf("XENSTORED_RUNDIR=%s", rdir);
    extra[1] = xasprintf("XENSTORED_PATH=%s", sock);
    extra[2] = xasprintf("LD_LIBRARY_PATH=%s", ldir);
    extra[3] = xasprintf("LD_PRELOAD=%s", shim);
    extra[4] = xasprintf("XS_SIM_PROC_XEN=%s/proc-xen", rdir);
    extra[5] = xasprintf("XENSIM_EVTCHN_NS=%s", rdir);
    extra[6] = xasprintf("XENSIM_GNTTAB_DIR=%s/gnttab", rdir);
    extra[7] = xasprintf("XENSIM_DOMID=0");
    trace = xasprintf("%s/xenstored.trace", rdir);
    for (size_t i = 0; i < 8; i++)
        if (!extra[i])
            goto out;
    env = child_env(extra, 8);
    if (!env || !trace)
        goto out;

    argv[argc++] = xenstored;
    argv[argc++] = "--no-fork";
    if (env_int("XS_SIM_TRACE", 0)) {
        argv[argc++] = "-T";
        argv[argc++] = trace;
    }
    argv[argc] = NULL;

    logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        rc = -errno;
        xs_sim_err("cannot open %s: %s", log, strerror(errno));
        goto out;
    }

    pid = fork();
    if (pid < 0) {
        rc = -errno;
        xs_sim_err("fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;

        /* Whatever the caller blocked or ignored, xs_sim_stop()'s SIGTERM
         * must work. */
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != ppid)
            _exit(127);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        close_range(3, ~0U, 0);
        if (chdir(rdir) < 0)
            _exit(127);
        execve(xenstored, argv, env);
        _exit(127);
    }

    rc = wait_serving(pid, xenstored, sock, log, timeout_ms);
    if (rc < 0) {
        pid = -1;
        goto out;
    }
    rc = init_dom0(sock);
    if (rc < 0) {
        xs_sim_stop(pid);
        pid = -1;
        goto out;
    }
    *pid_out = pid;
    rc = 0;
out:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    free(trace);
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        free(extra[i]);
    free(env);
    free(xenstored);
    free(sock);
    free(log);
    free(shim);
    return rc;
}

/* Wait up to @ms for @pid; 1 if reaped (status in *@status), 0 if not. */
static int reap_within(pid_t pid, int *status, int ms)
{
    int64_t deadline = now_ms() + ms;

    for (;;) {
        pid_t w = waitpid(pid, status, WNOHANG);

        if (w == pid)
            return 1;
        if (w < 0 && errno == ECHILD) {
            /* Not our child (started by another process): poll it. */
            if (kill(pid, 0) < 0 && errno == ESRCH) {
                *status = 0;
                return 1;
            }
        } else if (w < 0 && errno != EINTR) {
            return -errno;
        }
        if (now_ms() >= deadline)
            return 0;
        sleep_ms(5);
    }
}

int xs_sim_stop(pid_t pid)
{
    int status = 0, r;

    if (pid <= 0)
        return -EINVAL;
    /* Died on its own before we asked? */
    r = reap_within(pid, &status, 0);
    if (r == 1) {
        xs_sim_err("xenstored (pid %d) had already %s %d", (int)pid,
                   WIFEXITED(status) ? "exited with status" :
                   "been killed by signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -EIO;
    }
    kill(pid, SIGTERM);
    r = reap_within(pid, &status, 5000);
    if (r == 1)
        return 0;
    xs_sim_err("xenstored (pid %d) ignored SIGTERM for 5 s: SIGKILL",
               (int)pid);
    kill(pid, SIGKILL);
    r = reap_within(pid, &status, 2000);
    return r == 1 ? 0 : -ETIMEDOUT;
}

/* ---- domains ------------------------------------------------------------- */

/*
 * A batch of xenstore operations that remembers the first failure, so
 * that a long list of writes reads like libxl's and is checked once.
 */
struct xs_batch {
    struct xs_handle *xsh;
    xs_transaction_t t;
    int err;                    /* first errno, 0 if none */
    char what[256];             /* what failed */
};

static void batch_fail(struct xs_batch *b, const char *op, const char *path)
{
    if (!b->err) {
        b->err = errno ? errno : EIO;
        /* A long path is cut short in the message; nothing more. */
        if (snprintf(b->what, sizeof(b->what), "%s %s", op, path) < 0)
            b->what[0] = '\0';
    }
}

static void batch_write(struct xs_batch *b, const char *path,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void batch_write(struct xs_batch *b, const char *path,
                        const char *fmt, ...)
{
    va_list ap;
    char *val;
    int n;

    if (b->err)
        return;
    va_start(ap, fmt);
    n = vasprintf(&val, fmt, ap);
    va_end(ap);
    if (n < 0) {
        errno = ENOMEM;
        batch_fail(b, "write", path);
        return;
    }
    if (!xs_write(b->xsh, b->t, path, val, (unsigned int)n))
        batch_fail(b, "write", path);
    free(val);
}

/* libxl__xs_mknod: an empty node with the given permissions. */
static void batch_mknod(struct xs_batch *b, const char *path,
                        struct xs_permissions *perms, unsigned int nperms)
{
    if (b->err)
        return;
    if (!xs_write(b->xsh, b->t, path, "", 0))
        batch_fail(b, "write", path);
    else if (!xs_set_permissions(b->xsh, b->t, path, perms, nperms))
        batch_fail(b, "set permissions of", path);
}

/* Remove a subtree; a missing one is fine. */
static void batch_rm(struct xs_batch *b, const char *path)
{
    if (b->err)
        return;
    if (!xs_rm(b->xsh, b->t, path) && errno != ENOENT)
        batch_fail(b, "rm", path);
}

#define P(...) (snprintf(path, sizeof(path), __VA_ARGS__), path)

static void domain_uuid(char *buf, size_t len, uint32_t domid,
                        const char *name)
{
    uint64_t h = sim_evtchn_ns_hash(name);

    /* A stable version-4-shaped UUID: tests and logs can predict it. */
    snprintf(buf, len, "%08x-%04x-4%03x-8%03x-%012llx", domid,
             (unsigned)(h >> 48) & 0xffff, (unsigned)(h >> 36) & 0xfff,
             (unsigned)(h >> 24) & 0xfff,
             (unsigned long long)(h & 0xffffffffffffULL));
}

/* libxl__domain_make: the skeleton, in one transaction. */
static void make_domain(struct xs_batch *b, uint32_t domid, const char *name,
                        const char *dom, const char *vm, const char *lx)
{
    struct xs_permissions noperm[] = { { .id = 0, .perms = XS_PERM_NONE } };
    struct xs_permissions roperm[] = { { .id = 0, .perms = XS_PERM_NONE },
                                       { .id = domid, .perms = XS_PERM_READ } };
    struct xs_permissions rwperm[] = { { .id = domid, .perms = XS_PERM_NONE } };
    static const char *const ro_dirs[] = { "cpu", "memory", "device",
                                           "control", "hvmloader" };
    static const char *const rw_nodes[] = {
        "control/shutdown", "control/feature-poweroff",
        "control/feature-reboot", "control/feature-suspend",
        "control/feature-s3", "control/feature-s4", "control/sysrq",
        "device/suspend/event-channel", "data", "drivers", "feature", "attr",
        "error",
    };
    char path[256];

    batch_rm(b, dom);
    batch_mknod(b, dom, roperm, 2);
    batch_rm(b, vm);
    batch_mknod(b, vm, roperm, 2);
    batch_rm(b, lx);
    batch_mknod(b, lx, noperm, 1);
    batch_mknod(b, P("%s/device", lx), noperm, 1);

    batch_write(b, P("%s/vm", dom), "%s", vm);
    batch_write(b, P("%s/name", dom), "%s", name);
    batch_write(b, P("%s/name", vm), "%s", name);

    for (size_t i = 0; i < sizeof(ro_dirs) / sizeof(ro_dirs[0]); i++)
        batch_mknod(b, P("%s/%s", dom, ro_dirs[i]), roperm, 2);
    for (size_t i = 0; i < sizeof(rw_nodes) / sizeof(rw_nodes[0]); i++)
        batch_mknod(b, P("%s/%s", dom, rw_nodes[i]), rwperm, 1);

    batch_write(b, P("%s/uuid", vm), "%s", vm + strlen("/vm/"));
    batch_write(b, P("%s/platform/acpi", dom), "1");
    batch_write(b, P("%s/platform/acpi_s3", dom), "1");
    batch_write(b, P("%s/platform/acpi_s4", dom), "1");
    batch_write(b, P("%s/platform/acpi_laptop_slate", dom), "0");
    batch_write(b, P("%s/platform/device-model", dom), "qemu_xen");
    batch_write(b, P("%s/control/platform-feature-multiprocessor-suspend",
                     dom), "1");
    batch_write(b, P("%s/control/platform-feature-xs_reset_watches", dom),
                "1");
    batch_write(b, P("%s/type", lx), "hvm");
}

/* libxl__build_post: what is known once the domain is built. */
static void post_build(struct xs_batch *b, uint32_t domid, uint64_t mem_kb,
                       const char *dom, const char *vm)
{
    struct timespec ts;
    char path[256];

    clock_gettime(CLOCK_REALTIME, &ts);
    batch_write(b, P("%s/memory/static-max", dom), "%llu",
                (unsigned long long)mem_kb);
    batch_write(b, P("%s/memory/target", dom), "%llu",
                (unsigned long long)mem_kb);
    batch_write(b, P("%s/memory/videoram", dom), "0");
    batch_write(b, P("%s/domid", dom), "%u", domid);
    batch_write(b, P("%s/store/port", dom), "%u", XS_SIM_STORE_PORT);
    batch_write(b, P("%s/store/ring-ref", dom), "%u", XS_SIM_STORE_PFN);
    batch_write(b, P("%s/cpu/0/availability", dom), "online");
    batch_write(b, P("%s/hvmloader/generation-id-address", dom), "0x0");
    batch_write(b, P("%s/start_time", vm), "%lld.%02ld",
                (long long)ts.tv_sec, ts.tv_nsec / 10000000L);
}

/* Run @fn in a transaction, retrying when xenstored says EAGAIN. */
static int in_transaction(struct xs_batch *b,
                          void (*fn)(struct xs_batch *, void *), void *arg)
{
    for (int i = 0; i < XS_SIM_TXN_RETRIES; i++) {
        b->err = 0;
        b->t = xs_transaction_start(b->xsh);
        if (b->t == XBT_NULL) {
            errno = errno ? errno : EIO;
            batch_fail(b, "start transaction for", "domain");
            return -b->err;
        }
        fn(b, arg);
        if (b->err) {
            xs_transaction_end(b->xsh, b->t, true);
            b->t = XBT_NULL;
            return -b->err;
        }
        if (xs_transaction_end(b->xsh, b->t, false)) {
            b->t = XBT_NULL;
            return 0;
        }
        b->t = XBT_NULL;
        if (errno != EAGAIN) {
            batch_fail(b, "commit transaction for", "domain");
            return -b->err;
        }
    }
    errno = EAGAIN;
    batch_fail(b, "commit transaction (retries exhausted) for", "domain");
    return -b->err;
}

struct dom_args {
    uint32_t domid;
    const char *name;
    uint64_t mem_kb;
    const char *dom, *vm, *lx;
};

static void make_domain_fn(struct xs_batch *b, void *arg)
{
    struct dom_args *a = arg;

    make_domain(b, a->domid, a->name, a->dom, a->vm, a->lx);
}

static void post_build_fn(struct xs_batch *b, void *arg)
{
    struct dom_args *a = arg;

    post_build(b, a->domid, a->mem_kb, a->dom, a->vm);
}

int xs_sim_domain_introduce(const char *socket_path, uint32_t domid,
                            const char *name, uint64_t mem_kb,
                            uint32_t dm_domid)
{
    struct xs_batch b = { .t = XBT_NULL };
    char dom[64], vm[64], lx[64], uuid[40], path[256], ring[PATH_MAX];
    struct dom_args a = { .domid = domid, .name = name, .mem_kb = mem_kb,
                          .dom = dom, .vm = vm, .lx = lx };
    char *run_dir = NULL;
    int rc;

    if (!socket_path || !name || domid == 0 || domid >= XS_SIM_DOMID_FIRST_RESERVED)
        return -EINVAL;
    run_dir = socket_run_dir(socket_path);
    if (!run_dir)
        return -ENOMEM;
    rc = grant_file(ring, sizeof(ring), run_dir, domid);
    free(run_dir);
    if (rc < 0)
        return rc;

    b.xsh = xs_sim_connect(socket_path);
    if (!b.xsh)
        return -errno;
    if (xs_is_domain_introduced(b.xsh, domid)) {
        xs_sim_err("domain %u is already introduced", domid);
        rc = -EEXIST;
        goto out;
    }

    domain_uuid(uuid, sizeof(uuid), domid, name);
    snprintf(dom, sizeof(dom), "/local/domain/%u", domid);
    snprintf(vm, sizeof(vm), "/vm/%s", uuid);
    snprintf(lx, sizeof(lx), "/libxl/%u", domid);

    rc = in_transaction(&b, make_domain_fn, &a);
    if (rc < 0)
        goto fail;
    b.t = XBT_NULL;
    batch_write(&b, P("%s/dm-version", lx), "qemu_xen");
    rc = in_transaction(&b, post_build_fn, &a);
    if (rc < 0)
        goto fail;

    /*
     * The store ring: a zeroed page that the guest granted (grant 1), a
     * fresh one for every incarnation of the domain id.
     */
    rc = write_file(ring, NULL, 0, XS_SIM_PAGE_SIZE);
    if (rc < 0) {
        errno = -rc;
        batch_fail(&b, "create ring page", ring);
        goto fail;
    }
    if (!xs_introduce_domain(b.xsh, domid, XS_SIM_STORE_PFN,
                             XS_SIM_STORE_PORT)) {
        batch_fail(&b, "introduce domain", dom);
        goto fail;
    }

    /* libxl__spawn_local_dm / libxl__spawn_stub_dm. */
    b.t = XBT_NULL;
    if (dm_domid == 0) {
        if (!xs_mkdir(b.xsh, XBT_NULL,
                      P("/local/domain/0/device-model/%u", domid)))
            batch_fail(&b, "mkdir", path);
    } else {
        struct xs_permissions dmperm[] = {
            { .id = dm_domid, .perms = XS_PERM_NONE },
        };

        batch_mknod(&b, P("/local/domain/%u/device-model/%u", dm_domid,
                          domid), dmperm, 1);
        batch_write(&b, P("%s/image/device-model-domid", dom), "%u",
                    dm_domid);
        batch_write(&b, P("/local/domain/%u/target", dm_domid), "%u", domid);
    }
    if (b.err)
        goto fail;
    rc = 0;
    goto out;
fail:
    rc = -b.err;
    xs_sim_err("introducing domain %u: cannot %s: %s", domid, b.what,
               strerror(b.err));
out:
    xs_close(b.xsh);
    return rc;
}

int xs_sim_domain_release(const char *socket_path, uint32_t domid)
{
    struct xs_batch b = { .t = XBT_NULL };
    char path[256], dom[64], ring[PATH_MAX];
    char *run_dir, *vm, *dm;
    int rc;

    if (!socket_path || domid == 0 || domid >= XS_SIM_DOMID_FIRST_RESERVED)
        return -EINVAL;
    run_dir = socket_run_dir(socket_path);
    if (!run_dir)
        return -ENOMEM;
    rc = grant_file(ring, sizeof(ring), run_dir, domid);
    free(run_dir);
    if (rc < 0)
        return rc;
    b.xsh = xs_sim_connect(socket_path);
    if (!b.xsh)
        return -errno;

    snprintf(dom, sizeof(dom), "/local/domain/%u", domid);
    vm = xs_read(b.xsh, XBT_NULL, P("%s/vm", dom), NULL);
    dm = xs_read(b.xsh, XBT_NULL, P("%s/image/device-model-domid", dom),
                 NULL);
    batch_rm(&b, P("/local/domain/%s/device-model/%u", dm ? dm : "0",
                   domid));
    if (dm)
        batch_rm(&b, P("/local/domain/%s/target", dm));
    batch_rm(&b, dom);
    if (vm && strncmp(vm, "/vm/", 4) == 0)
        batch_rm(&b, vm);
    batch_rm(&b, P("/libxl/%u", domid));
    free(vm);
    free(dm);

    if (!b.err && xs_is_domain_introduced(b.xsh, domid) &&
        !xs_release_domain(b.xsh, domid))
        batch_fail(&b, "release domain", dom);
    if (unlink(ring) < 0 && errno != ENOENT && !b.err)
        batch_fail(&b, "remove ring page", ring);

    rc = b.err ? -b.err : 0;
    if (rc)
        xs_sim_err("releasing domain %u: cannot %s: %s", domid, b.what,
                   strerror(b.err));
    xs_close(b.xsh);
    return rc;
}

/* ---- event channels ------------------------------------------------------ */

/* One event to (@kind, @domid, @num) in namespace @ns (a realpath). */
static int evtchn_send(const char *ns, const char *kind, uint32_t domid,
                       uint32_t num)
{
    struct sockaddr_un sa;
    socklen_t len;
    char byte = 1;
    int fd, rc = 0;

    len = sim_evtchn_addr(&sa, ns, kind, domid, num);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sendto(fd, &byte, 1, MSG_DONTWAIT, (struct sockaddr *)&sa, len) < 0 &&
        errno != EAGAIN)
        rc = -errno;
    close(fd);
    return rc;
}

int xs_sim_virq_dom_exc(const char *run_dir)
{
    char ns[PATH_MAX];
    int rc = realpath(run_dir, ns) ? 0 : -errno;

    if (!rc)
        rc = evtchn_send(ns, SIM_EVTCHN_KIND_VIRQ, 0, XS_SIM_VIRQ_DOM_EXC);

    if (rc < 0)
        xs_sim_err("cannot raise VIRQ_DOM_EXC for the xenstored of %s: %s",
                   run_dir, strerror(-rc));
    return rc;
}

/* ---- the guest's end of a store ring -------------------------------------- */

struct xs_sim_guest {
    char run_dir[PATH_MAX];
    uint32_t domid;
    struct xenstore_domain_interface *intf;
    int kick_fd;                /* receives xenstored's notifications */
    uint32_t req_id;
    pthread_mutex_t lock;
};

int xs_sim_guest_open(const char *run_dir, uint32_t domid,
                      struct xs_sim_guest **out)
{
    struct xs_sim_guest *g;
    char ring[PATH_MAX];
    struct sockaddr_un sa;
    socklen_t len;
    int fd, rc;

    g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->kick_fd = -1;
    g->domid = domid;
    pthread_mutex_init(&g->lock, NULL);
    if (!realpath(run_dir, g->run_dir)) {
        rc = -errno;
        goto fail;
    }
    rc = grant_file(ring, sizeof(ring), g->run_dir, domid);
    if (rc < 0)
        goto fail;
    fd = open(ring, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        xs_sim_err("guest %u: no store ring page %s (domain not "
                   "introduced?): %s", domid, ring, strerror(errno));
        goto fail;
    }
    g->intf = mmap(NULL, XS_SIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    close(fd);
    if (g->intf == MAP_FAILED) {
        g->intf = NULL;
        rc = -errno;
        goto fail;
    }
    /* Our store port, the one xenstored bound interdomain to. */
    g->kick_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
    if (g->kick_fd < 0) {
        rc = -errno;
        goto fail;
    }
    len = sim_evtchn_addr(&sa, g->run_dir, SIM_EVTCHN_KIND_TO, domid,
                          XS_SIM_STORE_PORT);
    if (bind(g->kick_fd, (struct sockaddr *)&sa, len) < 0) {
        rc = errno == EADDRINUSE ? -EBUSY : -errno;
        xs_sim_err("guest %u: store port busy or unavailable: %s", domid,
                   strerror(-rc));
        goto fail;
    }
    *out = g;
    return 0;
fail:
    xs_sim_guest_close(g);
    return rc;
}

void xs_sim_guest_close(struct xs_sim_guest *g)
{
    if (!g)
        return;
    if (g->intf)
        munmap(g->intf, XS_SIM_PAGE_SIZE);
    if (g->kick_fd >= 0)
        close(g->kick_fd);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void guest_notify(struct xs_sim_guest *g)
{
    evtchn_send(g->run_dir, SIM_EVTCHN_KIND_FROM, g->domid,
                XS_SIM_STORE_PORT);
}

/* Wait for a notification from xenstored, at most @ms; drains the port. */
static void guest_wait(struct xs_sim_guest *g, int ms)
{
    struct pollfd pfd = { .fd = g->kick_fd, .events = POLLIN };
    char buf[64];

    if (poll(&pfd, 1, ms) > 0)
        while (recv(g->kick_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            ;
}

static int guest_put(struct xs_sim_guest *g, const char *data, size_t len,
                     int64_t deadline)
{
    struct xenstore_domain_interface *intf = g->intf;

    while (len) {
        XENSTORE_RING_IDX cons = __atomic_load_n(&intf->req_cons,
                                                 __ATOMIC_ACQUIRE);
        XENSTORE_RING_IDX prod = intf->req_prod;
        size_t space = XENSTORE_RING_SIZE - (prod - cons);
        size_t off = MASK_XENSTORE_IDX(prod);
        size_t n = len;

        if (space == 0) {
            if (now_ms() >= deadline)
                return -ETIMEDOUT;
            guest_wait(g, 10);
            continue;
        }
        if (n > space)
            n = space;
        if (n > XENSTORE_RING_SIZE - off)
            n = XENSTORE_RING_SIZE - off;
        memcpy(intf->req + off, data, n);
        __atomic_store_n(&intf->req_prod, prod + (XENSTORE_RING_IDX)n,
                         __ATOMIC_RELEASE);
        guest_notify(g);
        data += n;
        len -= n;
    }
    return 0;
}

static int guest_get(struct xs_sim_guest *g, char *data, size_t len,
                     int64_t deadline)
{
    struct xenstore_domain_interface *intf = g->intf;

    while (len) {
        XENSTORE_RING_IDX prod = __atomic_load_n(&intf->rsp_prod,
                                                 __ATOMIC_ACQUIRE);
        XENSTORE_RING_IDX cons = intf->rsp_cons;
        size_t avail = prod - cons;
        size_t off = MASK_XENSTORE_IDX(cons);
        size_t n = len;

        if (avail == 0) {
            if (now_ms() >= deadline)
                return -ETIMEDOUT;
            guest_wait(g, 10);
            continue;
        }
        if (n > avail)
            n = avail;
        if (n > XENSTORE_RING_SIZE - off)
            n = XENSTORE_RING_SIZE - off;
        memcpy(data, intf->rsp + off, n);
        __atomic_store_n(&intf->rsp_cons, cons + (XENSTORE_RING_IDX)n,
                         __ATOMIC_RELEASE);
        guest_notify(g);
        data += n;
        len -= n;
    }
    return 0;
}

static int xsd_errno(const char *s)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (strcmp(s, xsd_errors[i].errstring) == 0)
            return xsd_errors[i].errnum;
    return EIO;
}

int xs_sim_guest_request(struct xs_sim_guest *g, uint32_t type,
                         const void *payload, size_t len, char **reply,
                         size_t *reply_len)
{
    struct xsd_sockmsg msg = { .type = type, .len = (uint32_t)len };
    int64_t deadline = now_ms() + XS_SIM_GUEST_TIMEOUT_MS;
    char *body = NULL;
    int rc;

    if (len > XENSTORE_PAYLOAD_MAX)
        return -E2BIG;
    pthread_mutex_lock(&g->lock);
    msg.req_id = ++g->req_id;
    rc = guest_put(g, (const char *)&msg, sizeof(msg), deadline);
    if (!rc)
        rc = guest_put(g, payload, len, deadline);
    while (!rc) {
        struct xsd_sockmsg hdr;

        rc = guest_get(g, (char *)&hdr, sizeof(hdr), deadline);
        if (rc)
            break;
        if (hdr.len > XENSTORE_PAYLOAD_MAX) {
            rc = -EIO;
            break;
        }
        body = malloc(hdr.len + 1);
        if (!body) {
            rc = -ENOMEM;
            break;
        }
        rc = guest_get(g, body, hdr.len, deadline);
        if (rc)
            break;
        body[hdr.len] = '\0';
        if (hdr.type == XS_WATCH_EVENT) {
            free(body);
            body = NULL;
            continue;
        }
        if (hdr.req_id != msg.req_id) {
            rc = -EIO;
            break;
        }
        if (hdr.type == XS_ERROR) {
            rc = -xsd_errno(body);
            break;
        }
        if (reply) {
            *reply = body;
            body = NULL;
        }
        if (reply_len)
            *reply_len = hdr.len;
        break;
    }
    pthread_mutex_unlock(&g->lock);
    free(body);
    if (rc == -ETIMEDOUT)
        xs_sim_err("guest %u: no answer from xenstored within %d ms",
                   g->domid, XS_SIM_GUEST_TIMEOUT_MS);
    return rc;
}

int xs_sim_guest_read(struct xs_sim_guest *g, const char *path, char **value)
{
    return xs_sim_guest_request(g, XS_READ, path, strlen(path) + 1, value,
                                NULL);
}

int xs_sim_guest_write(struct xs_sim_guest *g, const char *path,
                       const char *value)
{
    size_t plen = strlen(path) + 1, vlen = strlen(value);
    char *buf = malloc(plen + vlen);
    int rc;

    if (!buf)
        return -ENOMEM;
    memcpy(buf, path, plen);
    memcpy(buf + plen, value, vlen);
    rc = xs_sim_guest_request(g, XS_WRITE, buf, plen + vlen, NULL, NULL);
    free(buf);
    return rc;
}
