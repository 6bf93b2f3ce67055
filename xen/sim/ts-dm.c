/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-dm.c - the device model as libxl runs it: the command line and
 * environment libxl 4.17 builds, launch, the start-up conversation,
 * stopping it; and the commands built on that (`xensim create --dm`,
 * `destroy`, the host's clean-up).  See toolstack.h and
 * docs/toolstack.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xen/sim/toolstack-internal.h"

#include <sys/socket.h>
#include <sys/un.h>

extern char **environ;

/* Stopping a device model: quit, then SIGTERM, then SIGKILL. */
#define DM_QUIT_WAIT_MS         5000
#define DM_TERM_WAIT_MS         3000
#define DM_KILL_WAIT_MS         3000
/* libxl's XSA-180 limit on the console log (libxl__set_qemu_env_for_xsa_180) */
#define QEMU_CONSOLE_LIMIT      "1048576"

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
                  unsigned nextra, const char *incoming)
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
    if (incoming) {
        add(&b, "-incoming");
        add(&b, "%s", incoming);
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
                 unsigned nextra, int incoming_fd, const char *incoming_uri,
                 struct ts_dm *dm, char *err, size_t errlen)
{
    /* The inherited -incoming descriptor is 3 in the device model. */
    char **argv = ts_dm_argv(h, domid, c, extra, nextra,
                             incoming_fd >= 0 ? "fd:3" : incoming_uri);
    char *set[8] = { NULL }, libs[PATH_MAX], ldp[PATH_MAX * 2];
    const char *old = getenv("LD_LIBRARY_PATH");
    char **env = NULL;
    size_t nset = 0;
    int devnull = -1, log = -1, rc = 0;
    pid_t pid;

    memset(dm, 0, sizeof(*dm));
    dm->pidfd = -1;
    ts_fmt(dm->qmp, sizeof(dm->qmp), "%s/qmp-libxl-%u", h->dir, domid);
    snprintf(dm->log, sizeof(dm->log), "%s/qemu-dm-%s.log", h->dir, c->name);
    if (!argv) {
        ts_seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (access(c->dm, X_OK) < 0) {
        rc = -errno;
        ts_seterr(err, errlen, "device model %s: %s", c->dm, strerror(errno));
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
        ts_seterr(err, errlen, "out of memory");
        goto out;
    }
    env = make_env(set, nset);
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    log = open(dm->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (!env || devnull < 0 || log < 0) {
        rc = log < 0 ? -errno : -ENOMEM;
        ts_seterr(err, errlen, "cannot open the device model's log %s: %s",
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
        ts_seterr(err, errlen, "fork: %s", strerror(errno));
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
    dm->pidfd = ts_pidfd_open(pid);
    dm->start = ts_proc_start(pid);
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
    if (!dm->child || !ts_pidfd_exited(dm->pidfd, 0))
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
void ts_dm_explain(struct ts_dm *dm, char *err, size_t errlen)
{
    char why[64], tail[700], tmp[TS_ERRLEN];

    dm_why(dm, why, sizeof(why));
    ts_log_tail(dm->log, tail, sizeof(tail));
    ts_fmt(tmp, sizeof(tmp), "%s%s; its log %s ends:%s", err, why, dm->log,
             tail[0] ? tail : " (empty)");
    ts_seterr(err, errlen, "%s", tmp);
}

int ts_dm_wait_running(const struct ts_host *h, uint32_t domid,
                       struct ts_dm *dm, int timeout_ms, char *err,
                       size_t errlen)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct xs_handle *xs;
    char path[128];
    int rc = -ETIMEDOUT;

    if (!h->xenstore)
        return 0;               /* nothing to wait on: QMP said enough */
    xs = ts_xs_open_err(h, err, errlen, NULL);
    if (!xs)
        return -EIO;
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state",
             domid);
    /* Watch first, then read: a write in between is not missed. */
    if (!xs_watch(xs, path, "xensim-dm")) {
        ts_seterr(err, errlen, "xenstore watch on %s: %s", path,
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
        left = ts_ms_left(deadline);
        if (left == 0) {
            ts_seterr(err, errlen, "the device model did not write %s = "
                      "running within %d s", path, timeout_ms / 1000);
            break;
        }
        n = poll(p, dm->pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno != EINTR) {
            ts_seterr(err, errlen, "poll: %s", strerror(errno));
            rc = -errno;
            break;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            ts_seterr(err, errlen, "the device model exited before it was "
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
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    char st[32];
    int rc;

    rc = ts_qmp_connect(q, dm->qmp, dm->pidfd, timeout_ms, err, errlen);
    if (rc)
        return rc;
    rc = ts_qmp_status(q, st, sizeof(st), err, errlen);
    /* Loading the incoming state may still be going on. */
    while (rc == 0 && incoming && strcmp(st, "inmigrate") == 0 &&
           ts_ms_left(deadline)) {
        if (ts_pidfd_exited(dm->pidfd, 50))
            break;
        rc = ts_qmp_status(q, st, sizeof(st), err, errlen);
    }
    if (rc)
        goto fail;
    if (incoming) {
        /* With -S (dm_restrict) it waits for cont; without, it runs as
         * soon as the state is loaded, as QEMU does, and libxl waits for
         * xenstore's state = running.  The domain stays paused either
         * way until the toolstack unpauses it. */
        if (strcmp(st, "running") == 0) {
            rc = ts_dm_wait_running(h, domid, dm, ts_ms_left(deadline) + 1,
                                    err, errlen);
            if (rc)
                goto fail;
        } else if (strcmp(st, "paused") != 0) {
            ts_seterr(err, errlen, "the incoming device model reports status "
                      "'%s', expected 'paused' or 'running'", st);
            rc = -EPROTO;
            goto fail;
        }
        return 0;
    }
    if (strcmp(st, "prelaunch") == 0) {
        rc = ts_qmp_do(q, "cont", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc)
            goto fail;
    } else if (strcmp(st, "running") != 0) {
        ts_seterr(err, errlen, "the device model reports status '%s', expected "
                  "'running' or 'prelaunch'", st);
        rc = -EPROTO;
        goto fail;
    }
    rc = ts_dm_wait_running(h, domid, dm, ts_ms_left(deadline) + 1, err,
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
    ts_fmt(dm->qmp, sizeof(dm->qmp), "%s/qmp-libxl-%u", h->dir, domid);
    snprintf(dm->log, sizeof(dm->log), "%s/qemu-dm-%s.log", h->dir, c->name);
    if (!c->dm[0] || c->dm_pid <= 0)
        return -ESRCH;
    dm->pidfd = ts_pidfd_open(c->dm_pid);
    if (dm->pidfd < 0)
        return -ESRCH;
    /* The pid must still be the process we started, and alive. */
    if (ts_proc_start(c->dm_pid) != c->dm_start ||
        ts_pidfd_exited(dm->pidfd, 0)) {
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
        gone = ts_pidfd_exited(dm->pidfd, ms);
    } else {
        uint64_t deadline = ts_now_ns() + (uint64_t)ms * 1000000ull;

        for (;;) {
            gone = kill(dm->pid, 0) < 0 && errno == ESRCH;
            if (gone || !ts_ms_left(deadline))
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

void ts_dm_signal(struct ts_dm *dm, int sig)
{
    if (dm->pidfd >= 0 &&
        syscall(SYS_pidfd_send_signal, dm->pidfd, sig, NULL, 0) == 0)
        return;
    if (dm->pidfd < 0)
        kill(dm->pid, sig);
}

/* A process that died but whose parent has not reaped it yet. */
static bool dm_is_zombie(pid_t pid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold anything, so from the last ')'. */
    p = strrchr(buf, ')');
    return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

bool ts_dm_alive(const struct ts_dm *dm)
{
    int rc;

    if (!dm->pid)
        return false;
    /* The pidfd, where there is one, cannot name a recycled pid. */
    if (dm->pidfd >= 0)
        rc = (int)syscall(SYS_pidfd_send_signal, dm->pidfd, 0, NULL, 0);
    else
        rc = kill(dm->pid, 0);
    if (rc < 0)
        return errno != ESRCH;
    return !dm_is_zombie(dm->pid);
}

int ts_dm_stop(struct ts_dm *dm, bool qmp, char *err, size_t errlen)
{
    if (!dm->pid) {
        ts_dm_release(dm);
        return 0;
    }
    if (qmp && !ts_pidfd_exited(dm->pidfd, 0)) {
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
    ts_dm_signal(dm, SIGTERM);
    /* A stopped process (SIGSTOP) acts on SIGTERM only once continued. */
    ts_dm_signal(dm, SIGCONT);
    if (dm_wait_gone(dm, DM_TERM_WAIT_MS))
        goto gone;
    ts_dm_signal(dm, SIGKILL);
    if (dm_wait_gone(dm, DM_KILL_WAIT_MS))
        goto gone;
    ts_seterr(err, errlen, "the device model (pid %d) does not exit",
              (int)dm->pid);
    return -ETIMEDOUT;
gone:
    ts_dm_release(dm);
    dm->pid = 0;
    return 0;
}

/* ---- xensim create --dm / destroy / host cleanup ----------------------- */

void ts_dm_record_pid(const struct ts_host *h, uint32_t domid, pid_t pid)
{
    char path[96], val[32];

    /* Where libxl keeps it (libxl__spawn_record_pid). */
    snprintf(path, sizeof(path), "/local/domain/%u/image/device-model-pid",
             domid);
    snprintf(val, sizeof(val), "%d", (int)pid);
    ts_xs_write(h, path, val);
}

int ts_create_dm(struct ts_host *h, uint32_t domid, struct ts_domcfg *c,
                 int timeout_ms, char *err, size_t errlen)
{
    struct ts_qmp q;
    struct ts_dm dm;
    int rc;

    if (!h->xenstore) {
        ts_seterr(err, errlen, "the host in %s runs no xenstore, which the "
                  "device model needs (run 'make xenstored', then start the "
                  "host with --xenstore on)", h->dir);
        return -ENOTSUP;
    }
    if (c->vram_mib >= c->mem_mib) {
        ts_seterr(err, errlen, "the device model needs guest RAM: --mem must "
                  "exceed --vram");
        return -EINVAL;
    }
    rc = ts_dm_launch(h, domid, c, NULL, 0, -1, NULL, &dm, err, errlen);
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

        ts_dm_explain(&dm, err, errlen);
        ts_dm_stop(&dm, false, e2, sizeof(e2));
        ts_domcfg_remove(h->dir, domid);
        c->dm_pid = 0;
        return rc;
    }
    ts_qmp_close(&q);
    ts_dm_record_pid(h, domid, dm.pid);
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
    rc = ts_dom_op(h, XSIM_OP_DOM_DESTROY, domid);
    if (rc) {
        ts_seterr(err, errlen, "destroy d%u: %s", domid, strerror(-rc));
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

/* ---- device models xensim did not start ---------------------------------- */

bool ts_dm_foreign(const struct ts_host *h, uint32_t domid)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct ts_domcfg c;
    bool named = false, answers;
    int fd;

    if (ts_domcfg_load(h->dir, domid, &c, NULL, 0) == 0) {
        named = c.dm[0] != 0;
        ts_domcfg_free(&c);
    }
    if (named)
        return false;
    ts_fmt(sa.sun_path, sizeof(sa.sun_path), "%s/qmp-libxl-%u", h->dir,
           domid);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    /* A listening xenram accepts at once; a stale file refuses. */
    answers = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return answers;
}

void ts_dm_foreign_err(const struct ts_host *h, uint32_t domid,
                       const char *what, char *err, size_t errlen)
{
    ts_seterr(err, errlen, "d%u has a device model xensim did not start "
              "(it answers on %s/qmp-libxl-%u): xensim cannot %s through "
              "it; stop it and create the domain with `xensim create ... "
              "--dm build/xenram`, which starts xenram as libxl does",
              domid, h->dir, domid, what);
}
