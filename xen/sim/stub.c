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

/* Connect to the daemon and greet it: the fd, or -errno (said on stderr). */
static int handle_connect(const char *lib)
{
    char dir[200];
    uint64_t args[6] = { XSIM_VERSION };
    struct xsim_rep rep;
    struct timeval tv = { .tv_sec = call_timeout_s() };
    int fd, rc;

    if (xsim_state_dir(dir, sizeof(dir)) < 0) {
        fprintf(stderr, "%s (xensim): state directory path too long\n", lib);
        return -ENAMETOOLONG;
    }
    fd = xsim_connect(dir);
    if (fd < 0) {
        fprintf(stderr, "%s (xensim): no simulated Xen host at %s/%s: %s "
                "(start one with 'xensim start', or set XENSIM_DIR)\n",
                lib, dir, XSIM_SOCK_NAME, strerror(-fd));
        return fd;
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
        return rc;
    }
    return fd;
}

int xsim_handle_open(struct xsim_handle *h, const char *lib,
                     xsim_tc_restrict_fn *cb)
{
    int fd;

    memset(&h->tc, 0, sizeof(h->tc));
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->pool_lock, NULL);
    h->fd = -1;
    h->lib = lib;
    h->restricted = XSIM_DOMID_NONE;
    h->invalidated = false;
    h->pooled = false;
    h->nextra = 0;
    h->tc.restrict_callback = cb;
    xentoolcore__register_active_handle(&h->tc);

    fd = handle_connect(lib);
    if (fd < 0) {
        xentoolcore__deregister_active_handle(&h->tc);
        pthread_mutex_destroy(&h->pool_lock);
        pthread_mutex_destroy(&h->lock);
        errno = -fd;
        return -1;
    }
    h->fd = fd;
    return 0;
}

void xsim_handle_close(struct xsim_handle *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    for (unsigned i = 0; i < h->nextra; i++) {
        if (h->extra_fd[i] >= 0)
            close(h->extra_fd[i]);
        pthread_mutex_destroy(&h->extra_lock[i]);
    }
    h->nextra = 0;
    xentoolcore__deregister_active_handle(&h->tc);
    pthread_mutex_destroy(&h->pool_lock);
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

/*
 * A free extra connection of a pooled handle, locked (a new one if all are
 * busy and there is room): its index, or -1 (use the main one).
 */
static int pool_take(struct xsim_handle *h)
{
    unsigned n = __atomic_load_n(&h->nextra, __ATOMIC_ACQUIRE);
    int fd;

    for (unsigned i = 0; i < n; i++) {
        if (pthread_mutex_trylock(&h->extra_lock[i]) == 0) {
            if (h->extra_fd[i] >= 0)
                return (int)i;
            pthread_mutex_unlock(&h->extra_lock[i]);
        }
    }
    pthread_mutex_lock(&h->pool_lock);
    n = h->nextra;
    if (n == XSIM_HANDLE_EXTRA) {
        pthread_mutex_unlock(&h->pool_lock);
        return -1;
    }
    fd = handle_connect(h->lib);
    if (fd < 0) {
        pthread_mutex_unlock(&h->pool_lock);
        return -1;
    }
    pthread_mutex_init(&h->extra_lock[n], NULL);
    pthread_mutex_lock(&h->extra_lock[n]);
    h->extra_fd[n] = fd;
    __atomic_store_n(&h->nextra, n + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&h->pool_lock);
    return (int)n;
}

int64_t xsim_handle_call(struct xsim_handle *h, uint16_t op, uint32_t domid,
                         const uint64_t args[6], const void *in, size_t inlen,
                         void *out, size_t outcap, struct xsim_rep *rep,
                         int *fd_out)
{
    struct xsim_rep r;
    pthread_mutex_t *lock = &h->lock;
    int *fdp = &h->fd;
    int rc;

    if (!rep)
        rep = &r;
    if (fd_out)
        *fd_out = -1;
    if (h->pooled && pthread_mutex_trylock(&h->lock) != 0) {
        int k = pool_take(h);

        if (k >= 0) {
            lock = &h->extra_lock[k];
            fdp = &h->extra_fd[k];
        } else {
            pthread_mutex_lock(&h->lock);
        }
    } else if (!h->pooled) {
        pthread_mutex_lock(&h->lock);
    }
    if (*fdp < 0) {
        pthread_mutex_unlock(lock);
        errno = ENOTCONN;
        return -1;
    }
    rc = xsim_call(*fdp, op, domid, args, in, inlen, rep, out, outcap, NULL,
                   fd_out);
    if (rc) {
        /* The stream is out of step or gone: never use it again. */
        fprintf(stderr, "%s (xensim): lost the simulated Xen host: %s\n",
                h->lib, strerror(-rc));
        close(*fdp);
        *fdp = -1;
        pthread_mutex_unlock(lock);
        errno = ENOTCONN;
        return -1;
    }
    pthread_mutex_unlock(lock);
    if (rep->err) {
        errno = rep->err;
        return -1;
    }
    return rep->ret;
}
