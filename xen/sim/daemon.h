/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon.h - the xensim host daemon (daemon.c), for `xensim start`.
 */
#ifndef XENSIM_DAEMON_H
#define XENSIM_DAEMON_H

struct xsim_daemon_opts {
    const char *tracking;       /* auto, uffd, explicit */
    const char *xenstore;       /* auto, on, off */
    int ready_fd;               /* "ok ..." or "err ..." goes there; -1 */
};

/*
 * Run the host of state directory @dir (created if need be) in this
 * process until a signal stops it.  Returns the exit status: 0 after a
 * clean stop, 1 when it could not start (said on o->ready_fd).
 */
int xsim_daemon_run(const char *dir, const struct xsim_daemon_opts *o);

/* mkdir -p; the last component 0700, the others 0755.  0 or -errno. */
int xsim_mkdir_p(const char *path);

#endif /* XENSIM_DAEMON_H */
