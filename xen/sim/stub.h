/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stub.h - what the three stand-in libraries (libxenctrl.so.4.17,
 * libxenforeignmemory.so.1, libxendevicemodel.so.1) share: a handle is one
 * connection to the xensim daemon, registered with Debian's real
 * libxentoolcore so that xentoolcore_restrict_all() reaches it.
 *
 * Each library links its own copy of this code (hidden by its version
 * script), as Xen's libraries each carry their own back-end.
 *
 * Errors follow the real libraries: functions return -1 (or NULL) with
 * errno set.  A handle whose daemon went away fails every call with
 * ENOTCONN; opening one when no daemon listens fails with the connect(2)
 * error (ENOENT: no socket, ECONNREFUSED: nobody behind it) and a message
 * on stderr naming the state directory.
 */
#ifndef XENSIM_STUB_H
#define XENSIM_STUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "xen/sim/proto.h"

/*
 * Layout of libxentoolcore's Xentoolcore__Active_Handle (its internal
 * header is not installed): a callback and a BSD LIST_ENTRY.
 */
struct xsim_tc_handle;
typedef int xsim_tc_restrict_fn(struct xsim_tc_handle *ah, uint32_t domid);
struct xsim_tc_handle {
    xsim_tc_restrict_fn *restrict_callback;
    struct {
        struct xsim_tc_handle *le_next;
        struct xsim_tc_handle **le_prev;
    } entry;
};

/* Exported by Debian's libxentoolcore.so.1 (VERS_1.0). */
void xentoolcore__register_active_handle(struct xsim_tc_handle *ah);
void xentoolcore__deregister_active_handle(struct xsim_tc_handle *ah);

#define XSIM_DOMID_NONE UINT32_MAX

struct xsim_handle {
    struct xsim_tc_handle tc;   /* must stay first: the callback gets it */
    pthread_mutex_t lock;       /* one exchange at a time on fd */
    int fd;                     /* -1: no daemon (dummy or lost) */
    const char *lib;            /* "xenctrl", ... for messages */
    uint32_t restricted;        /* XSIM_DOMID_NONE or the only domid */
    bool invalidated;           /* restricted the xencall way: unusable */
    /*
     * @pooled (libxenctrl's handles): callers that find the connection
     * busy use one of up to XSIM_HANDLE_EXTRA more, opened on demand.  The
     * real library's hypercalls are ioctls the kernel takes from several
     * threads of one process at once; one connection under one lock made
     * them queue behind each other.  Only for handles whose connection
     * holds no state of its own (a foreign mapping's references do).
     */
    bool pooled;
    pthread_mutex_t pool_lock;  /* guards nextra and opening */
    unsigned nextra;
    int extra_fd[4];            /* -1: lost */
    pthread_mutex_t extra_lock[4];
};
#define XSIM_HANDLE_EXTRA 4

/*
 * Open: register with xentoolcore (with @cb as the restrict callback), then
 * connect.  Returns 0 or -1/errno.
 */
int xsim_handle_open(struct xsim_handle *h, const char *lib,
                     xsim_tc_restrict_fn *cb);
void xsim_handle_close(struct xsim_handle *h);

/* The usual restriction: once to one domid (repeatable), never changed. */
int xsim_handle_restrict(struct xsim_handle *h, uint32_t domid);

/*
 * Check the restriction for @domid: 0, or -1 with errno EPERM (the kernel's
 * answer to a restricted privcmd fd) / ENOTTY (an invalidated handle).
 */
int xsim_handle_check(struct xsim_handle *h, uint32_t domid);

/*
 * One request.  Returns the operation's result (rep.ret, >= 0) or -1 with
 * errno (the operation's error or ENOTCONN).  @rep may be NULL.
 */
int64_t xsim_handle_call(struct xsim_handle *h, uint16_t op, uint32_t domid,
                         const uint64_t args[6], const void *in, size_t inlen,
                         void *out, size_t outcap, struct xsim_rep *rep,
                         int *fd_out);

#endif /* XENSIM_STUB_H */
