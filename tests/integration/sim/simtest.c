/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * simtest.c - fixtures for the simulator's tests.  See simtest.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/common/xensim-start.h"
#include "tests/integration/sim/simtest.h"
#include "xen/sim/chan.h"

#define MAX_HOSTS 8

static char build_dir[PATH_MAX];
static char lib_dir[PATH_MAX];
static volatile pid_t host_pids[MAX_HOSTS];

const char *sim_build_dir(void)
{
    return build_dir;
}

static void watchdog(int sig)
{
    static const char msg[] = "simtest: watchdog expired, killing the "
                              "simulated hosts and failing\n";

    (void)sig;
    for (int i = 0; i < MAX_HOSTS; i++)
        if (host_pids[i] > 0)
            kill(host_pids[i], SIGKILL);
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(124);
}

static int find_lib(struct dl_phdr_info *info, size_t size, void *data)
{
    const char **where = data;

    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "libxenctrl.so.4.17"))
        *where = info->dlpi_name;
    return 0;
}

void sim_test_init(int argc, char **argv, unsigned timeout_s)
{
    char exe[PATH_MAX], tmp[PATH_MAX * 2];
    const char *where = NULL, *old;
    ssize_t n;

    (void)argc;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) {
        perror("simtest: /proc/self/exe");
        exit(1);
    }
    exe[n] = 0;
    *strrchr(exe, '/') = 0;             /* $(BUILD)/tests/sim */
    snprintf(tmp, sizeof(tmp), "%s/../..", exe);
    if (!realpath(tmp, build_dir)) {
        perror("simtest: build directory");
        exit(1);
    }
    snprintf(lib_dir, sizeof(lib_dir), "%.*s/sim", PATH_MAX - 8, build_dir);

    if (!getenv("XENSIM_TEST_REEXEC")) {
        old = getenv("LD_LIBRARY_PATH");
        snprintf(tmp, sizeof(tmp), "%s%s%s", lib_dir, old && *old ? ":" : "",
                 old ? old : "");
        setenv("LD_LIBRARY_PATH", tmp, 1);
        setenv("XENSIM_TEST_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
        perror("simtest: re-exec");
        exit(1);
    }
    dl_iterate_phdr(find_lib, &where);
    if (where && strncmp(where, lib_dir, strlen(lib_dir)) != 0) {
        fprintf(stderr, "simtest: libxenctrl.so.4.17 came from %s, not from "
                "the stand-ins in %s\n", where, lib_dir);
        exit(1);
    }
    signal(SIGALRM, watchdog);
    signal(SIGPIPE, SIG_IGN);
    alarm(timeout_s);
}

static void track_pid(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_HOSTS; i++) {
        if (add ? host_pids[i] == 0 : host_pids[i] == pid) {
            host_pids[i] = add ? pid : 0;
            return;
        }
    }
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

int simhost_start(struct simhost *h, const char *tracking)
{
    return simhost_start_xs(h, tracking, "off");
}

int simhost_start_xs(struct simhost *h, const char *tracking,
                     const char *xenstore)
{
    const char *extra[] = { "--xenstore", xenstore, tracking ? "--tracking"
                            : NULL, tracking, NULL };
    char xensim[PATH_MAX + 16], line[256];
    uint64_t args[6] = { XSIM_VERSION };
    struct xsim_rep rep;
    int fd = -1, rc;
    pid_t pid;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    snprintf(h->dir, sizeof(h->dir), "/tmp/xsimt.XXXXXX");
    if (!mkdtemp(h->dir))
        return -errno;
    snprintf(xensim, sizeof(xensim), "%.*s/xensim", PATH_MAX - 8, build_dir);
    /* Never outlive the test, whatever happens to it. */
    pid = xensim_start_spawn(xensim, h->dir, extra, SIGKILL,
                             !getenv("XENSIM_TEST_LOG"), &fd);
    if (pid < 0)
        return pid;
    h->pid = pid;
    track_pid(pid, true);
    if (!xensim_start_wait(fd, line, sizeof(line))) {
        fprintf(stderr, "simtest: xensim did not start: %s\n",
                line[0] ? line : "(no answer)");
        simhost_stop(h);
        return -EIO;
    }
    setenv("XENSIM_DIR", h->dir, 1);
    h->fd = xsim_connect(h->dir);
    if (h->fd < 0) {
        rc = h->fd;
        simhost_stop(h);
        return rc;
    }
    rc = xsim_call(h->fd, XSIM_OP_HELLO, 0, args, "simtest", 7, &rep, NULL, 0,
                   NULL, NULL);
    if (rc || rep.err) {
        simhost_stop(h);
        return rc ? rc : -rep.err;
    }
    return 0;
}

/* Returns the exit status (or 128 + signal) of the host. */
static int reap(struct simhost *h, int first_sig)
{
    int pidfd, status = 0;

    if (h->pid <= 0)
        return 0;
    kill(h->pid, first_sig);
    pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
    if (pidfd >= 0) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };

        if (poll(&p, 1, 10000) <= 0)
            kill(h->pid, SIGKILL);
        close(pidfd);
    }
    waitpid(h->pid, &status, 0);
    track_pid(h->pid, false);
    h->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status)
                             : 128 + WTERMSIG(status);
}

void simhost_kill(struct simhost *h)
{
    reap(h, SIGKILL);
}

int simhost_stop(struct simhost *h)
{
    char path[200], line[512];
    int rc;
    FILE *f;

    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    rc = reap(h, SIGTERM);
    if (rc && h->dir[0]) {
        /* A host that did not stop cleanly (a sanitizer report, a crash):
         * show its log, fail the caller. */
        fprintf(stderr, "simtest: xensim in %s exited with %d; its log:\n",
                h->dir, rc);
        snprintf(path, sizeof(path), "%s/xensim.log", h->dir);
        f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f))
            fputs(line, stderr);
        if (f)
            fclose(f);
    }
    if (h->dir[0] && !getenv("XENSIM_TEST_KEEP"))
        nftw(h->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    h->dir[0] = 0;
    return rc ? -1 : 0;
}

int64_t simhost_call(struct simhost *h, uint16_t op, uint32_t domid,
                     const uint64_t args[6], const void *in, size_t inlen,
                     void *out, size_t outcap, int *err)
{
    struct xsim_rep rep;
    int rc = xsim_call(h->fd, op, domid, args, in, inlen, &rep, out, outcap,
                       NULL, NULL);

    if (rc) {
        if (err)
            *err = -rc;
        return -1;
    }
    if (err)
        *err = rep.err;
    return rep.err ? -1 : rep.ret;
}

int sim_create(struct simhost *h, unsigned mem_mib, const char *workload,
               uint32_t flags)
{
    struct xsim_create c = { .vcpus = 1, .flags = flags };
    int64_t id;
    int err;

    c.mem_kb = (uint64_t)mem_mib << 10;
    snprintf(c.workload, sizeof(c.workload), "%s", workload ? workload : "idle");
    id = simhost_call(h, XSIM_OP_DOM_CREATE, 0, NULL, &c, sizeof(c), NULL, 0,
                      &err);
    return id < 0 ? -err : (int)id;
}

int sim_destroy(struct simhost *h, uint32_t domid)
{
    int err;

    return simhost_call(h, XSIM_OP_DOM_DESTROY, domid, NULL, NULL, 0, NULL, 0,
                        &err) < 0 ? -err : 0;
}

int64_t sim_guest_write(struct simhost *h, uint32_t domid,
                        const uint64_t *gfns, size_t n)
{
    int err;
    int64_t rc = simhost_call(h, XSIM_OP_GUEST_WRITE, domid, NULL, gfns,
                              n * sizeof(*gfns), NULL, 0, &err);

    return rc < 0 ? -err : rc;
}

char *sim_dm_state(struct simhost *h, uint32_t domid)
{
    char *buf = calloc(1, 65536);
    int err;

    if (buf && simhost_call(h, XSIM_OP_DM_STATE, domid, NULL, NULL, 0, buf,
                            65535, &err) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int sim_run_cli(struct simhost *h, char *out, size_t outlen, ...)
{
    char xensim[PATH_MAX + 16];
    char *argv[32];
    int a = 0, pfd[2], status;
    size_t got = 0;
    va_list ap;
    pid_t pid;

    snprintf(xensim, sizeof(xensim), "%.*s/xensim", PATH_MAX - 8, build_dir);
    argv[a++] = xensim;
    if (h) {
        argv[a++] = "--dir";
        argv[a++] = h->dir;
    }
    va_start(ap, outlen);
    while (a < 31) {
        char *s = va_arg(ap, char *);

        if (!s)
            break;
        argv[a++] = s;
    }
    va_end(ap);
    argv[a] = NULL;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], 1);
        execv(xensim, argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        char sink[4096];
        ssize_t n = got + 1 < outlen
                    ? read(pfd[0], out + got, outlen - 1 - got)
                    : read(pfd[0], sink, sizeof(sink));

        if (n <= 0)
            break;
        if (got + 1 < outlen)
            got += (size_t)n;
    }
    close(pfd[0]);
    if (outlen)
        out[got] = 0;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

uint64_t sim_bits(const void *bm, uint64_t n)
{
    uint64_t c = 0;

    for (uint64_t i = 0; i < n; i++)
        c += sim_bit(bm, i);
    return c;
}
