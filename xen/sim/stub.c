/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stub.c - handles of the stand-in Xen libraries.  See stub.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "xen/sim/chan.h"
#include "xen/sim/stub.h"

/* A daemon that does not answer within this long is treated as lost. */
static int call_timeout_s(void)
{
    const char *e = getenv("XENSIM_TIMEOUT");
    int t = e ? atoi(e) : 0;

    return t > 0 ? t : 120;
}

int xsim_handle_open(struct xsim_handle *h, const char *lib,
                     xsim_tc_restrict_fn *cb)
{
    char dir[200];
    uint64_t args[6] = { XSIM_VERSION };
    struct xsim_rep rep;
    struct timeval tv = { .tv_sec = call_timeout_s() };
    int fd, rc;

    memset(&h->tc, 0, sizeof(h->tc));
    pthread_mutex_init(&h->lock, NULL);
    h->fd = -1;
    h->lib = lib;
    h->restricted = XSIM_DOMID_NONE;
    h->invalidated = false;
    h->tc.restrict_callback = cb;
    xentoolcore__register_active_handle(&h->tc);

    if (xsim_state_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "%s (xensim): state directory path too long\n", lib);
        rc = -ENAMETOOLONG;
        goto fail;
    }
    fd = xsim_connect(dir);
    if (fd < 0) {
        fprintf(stderr, "%s (xensim): no simulated Xen host at %s/%s: %s "
                "(start one with 'xensim start', or set XENSIM_DIR)\n",
                lib, dir, XSIM_SOCK_NAME, strerror(-fd));
        rc = fd;
        goto fail;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    rc = xsim_call(fd, XSIM_OP_HELLO, 0, args, lib, strlen(lib), &rep, NULL,
                   0, NULL, NULL);
    if (rc == 0 && rep.err)
        rc = -rep.err;
    if (rc) {
        fprintf(stderr, "%s (xensim): the simulated host at %s does not "
                "answer: %s\n", lib, dir, strerror(-rc));
        close(fd);
        goto fail;
    }
    h->fd = fd;
    return 0;
fail:
    xentoolcore__deregister_active_handle(&h->tc);
    pthread_mutex_destroy(&h->lock);
    errno = -rc;
    return -1;
}

void xsim_handle_close(struct xsim_handle *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    xentoolcore__deregister_active_handle(&h->tc);
    pthread_mutex_destroy(&h->lock);
}

int xsim_handle_restrict(struct xsim_handle *h, uint32_t domid)
{
    int rc = 0;

    pthread_mutex_lock(&h->lock);
    if (h->restricted == XSIM_DOMID_NONE)
        h->restricted = domid;
    else if (h->restricted != domid)
        rc = -1;                /* privcmd: IOCTL_PRIVCMD_RESTRICT -EINVAL */
    pthread_mutex_unlock(&h->lock);
    if (rc)
        errno = EINVAL;
    return rc;
}

int xsim_handle_check(struct xsim_handle *h, uint32_t domid)
{
    if (h->invalidated) {
        errno = ENOTTY;         /* an ioctl on the /dev/null it now is */
        return -1;
    }
    if (h->restricted != XSIM_DOMID_NONE && h->restricted != domid) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

int64_t xsim_handle_call(struct xsim_handle *h, uint16_t op, uint32_t domid,
                         const uint64_t args[6], const void *in, size_t inlen,
                         void *out, size_t outcap, struct xsim_rep *rep,
                         int *fd_out)
{
    struct xsim_rep r;
    int rc;

    if (!rep)
        rep = &r;
    if (fd_out)
        *fd_out = -1;
    pthread_mutex_lock(&h->lock);
    if (h->fd < 0) {
        pthread_mutex_unlock(&h->lock);
        errno = ENOTCONN;
        return -1;
    }
    rc = xsim_call(h->fd, op, domid, args, in, inlen, rep, out, outcap, NULL,
                   fd_out);
    if (rc) {
        /* The stream is out of step or gone: never use it again. */
        fprintf(stderr, "%s (xensim): lost the simulated Xen host: %s\n",
                h->lib, strerror(-rc));
        close(h->fd);
        h->fd = -1;
        pthread_mutex_unlock(&h->lock);
        errno = ENOTCONN;
        return -1;
    }
    pthread_mutex_unlock(&h->lock);
    if (rep->err) {
        errno = rep->err;
        return -1;
    }
    return rep->ret;
}
