/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon.c - the simulated Xen host as a process: `xensim start` runs
 * this.  It takes the state directory's lock, stops what a previous host
 * of it left behind, starts the host (host.c) and its channel server
 * (server.c), Debian's xenstored when asked and built in, reports ready
 * to the parent, and serves until SIGTERM, SIGINT or SIGHUP.  See
 * daemon.h and docs/simulator.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xen/sim/chan.h"
#include "xen/sim/daemon.h"
#include "xen/sim/host.h"
#include "xen/sim/log.h"
#include "xen/sim/server.h"
#include "xen/sim/toolstack.h"
#include "xen/sim/track.h"

#include "xen/sim/xenstore/xs-sim.h"

static char xs_socket[200];
static char xs_rundir[200];

static int store_introduce(const char *dir, uint32_t domid, const char *name,
                           uint64_t mem_kb)
{
    int rc;

    (void)dir;
    rc = xs_sim_domain_introduce(xs_socket, domid, name, mem_kb, 0);
    if (rc)
        xsim_log("d%u: xenstore introduce failed: %s", domid, strerror(-rc));
    return rc;
}

static int store_release(const char *dir, uint32_t domid)
{
    int rc;

    (void)dir;
    rc = xs_sim_domain_release(xs_socket, domid);
    if (rc)
        xsim_log("d%u: xenstore release failed: %s", domid, strerror(-rc));
    xs_sim_virq_dom_exc(xs_rundir);
    return rc;
}

static const struct xsim_store_ops store_ops = {
    .introduce = store_introduce,
    .release = store_release,
};

/* Tell `xensim start` (the parent, on the --ready-fd pipe) "ok ..." or
 * "err <why>" and close the pipe: it waits for exactly one line. */
static void ready(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ready(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    if (fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(fd, buf,
                     (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
    close(fd);
}

int xsim_mkdir_p(const char *path)
{
    char tmp[PATH_MAX], *p;

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int xsim_daemon_run(const char *dir, const struct xsim_daemon_opts *o)
{
    static struct xsim_host host;
    struct xsim_server srv;
    char path[PATH_MAX], absdir[PATH_MAX];
    const char *why = NULL;
    sigset_t sigs;
    int lock_fd, mode, rc, sig = 0;
    FILE *pf;
    pid_t xs_pid = 0;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    /* Blocked before any thread starts: only the main thread takes them. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    rc = xsim_mkdir_p(dir);
    if (rc || !realpath(dir, absdir)) {
        rc = rc ? rc : -errno;
        ready(o->ready_fd, "err cannot create state directory %s: %s\n", dir,
              strerror(-rc));
        return 1;
    }
    if (strlen(absdir) + sizeof("/xenstored/socket") > 100) {
        ready(o->ready_fd, "err state directory path %s is too long for a "
              "unix socket (keep it under 80 characters)\n", absdir);
        return 1;
    }
    xsim_path(path, sizeof(path), absdir, XSIM_LOCK_NAME);
    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        ready(o->ready_fd, "err a simulated host already runs in %s\n",
              absdir);
        return 1;
    }
    setenv("XENSIM_DIR", absdir, 1);
    /* Device models a previous host of this directory left behind talk
     * to no host any more: stop them, forget their domains. */
    ts_host_cleanup(absdir);

    mode = track_probe(o->tracking, &why);
    if (mode < 0) {
        ready(o->ready_fd,
              "err dirty tracking by userfaultfd unavailable: %s\n",
              why ? why : strerror(-mode));
        return 1;
    }
    xsim_log("starting in %s, pid %d", absdir, (int)getpid());
    xsim_log("dirty tracking: %s%s%s", track_mode_name(mode),
             why ? " (" : "", why ? why : "");
    rc = host_init(&host, mode, absdir);
    if (rc == 0)
        rc = server_start(&srv, &host);
    if (rc) {
        ready(o->ready_fd, "err cannot start: %s\n", strerror(-rc));
        return 1;
    }

    if (strcmp(o->xenstore, "off") != 0) {
        char libs[PATH_MAX];

        /* The stand-in libraries: xenstored loads ours. */
        ts_lib_dir(libs, sizeof(libs));
        xsim_path(xs_rundir, sizeof(xs_rundir), absdir, "xenstored");
        xsim_path(xs_socket, sizeof(xs_socket), xs_rundir, "socket");
        /* xenstored inherits our signal mask: let it have SIGTERM. */
        pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
        rc = xs_sim_start(xs_rundir, libs, &xs_pid);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        if (rc == 0) {
            char what[64];

            /* xenstored's calls are being served meanwhile. */
            snprintf(what, sizeof(what), "xenstored pid %d", (int)xs_pid);
            host_set_store(&host, &store_ops, what);
            xsim_log("xenstore: %s, socket %s", what, xs_socket);
        } else if (strcmp(o->xenstore, "on") == 0) {
            ready(o->ready_fd, "err xenstored did not start: %s\n",
                  strerror(-rc));
            server_stop(&srv);
            return 1;
        } else {
            xs_pid = 0;
            xsim_log("xenstore: off (xenstored did not start: %s)",
                     strerror(-rc));
        }
    }

    xsim_path(path, sizeof(path), absdir, XSIM_PID_NAME);
    pf = fopen(path, "w");
    if (pf) {
        fprintf(pf, "%d\n", (int)getpid());
        fclose(pf);
    }
    ready(o->ready_fd, "ok %d %s %s\n", (int)getpid(), track_mode_name(mode),
          host.xenstore);

    while (sigwait(&sigs, &sig) == 0) {
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
            break;
    }
    xsim_log("stopping (signal %d)", sig);
    /* The device models first, while they can still talk to us. */
    ts_host_cleanup(absdir);
    server_stop(&srv);
    host_fini(&host);
    if (xs_pid > 0)
        xs_sim_stop(xs_pid);
    unlink(path);
    xsim_log("stopped");
    close(lock_fd);
    return 0;
}
