/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server.c - the xensim daemon's end of the channel.  See server.h and
 * proto.h for the protocol.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenctrl.h>

#include "xen/sim/chan.h"
#include "xen/sim/log.h"
#include "xen/sim/server.h"

struct conn {
    struct xsim_server *srv;
    int fd;
    pid_t peer;
    /* The references this client's foreign mappings hold (key domid << 32
     * | gfn): dropped when it unmaps, or all at once when it goes, as the
     * kernel tears a dead process's mappings down. */
    struct xsim_refs refs;
};

struct reply {
    struct xsim_rep rep;
    void *out;
    size_t outlen;
    bool free_out;
    int pass_fd;
};

static void set_err(struct reply *r, int rc)
{
    r->rep.err = rc < 0 ? -rc : 0;
}

static void *out_alloc(struct reply *r, size_t len)
{
    r->out = calloc(1, len ? len : 1);
    r->outlen = r->out ? len : 0;
    r->free_out = true;
    if (!r->out)
        set_err(r, -ENOMEM);
    return r->out;
}

static void host_info(struct xsim_host *h, struct reply *r)
{
    struct xsim_hostinfo *hi = out_alloc(r, sizeof(*hi));

    if (!hi)
        return;
    hi->version = XSIM_VERSION;
    hi->pid = (uint32_t)getpid();
    pthread_mutex_lock(&h->lock);
    hi->nr_domains = h->nr_domains;
    snprintf(hi->xenstore, sizeof(hi->xenstore), "%s", h->xenstore);
    pthread_mutex_unlock(&h->lock);
    hi->gfn_limit = XSIM_GFN_LIMIT;
    snprintf(hi->tracking, sizeof(hi->tracking), "%s",
             track_mode_name(h->track_mode));
    snprintf(hi->state_dir, sizeof(hi->state_dir), "%s", h->state_dir);
}

/*
 * Operations on one existing domain: one case per XSIM_OP_* (proto.h),
 * each a few lines that check the request's size and call the host.c
 * function of the same name.  It is long because the protocol has many
 * operations, not because any one does much; it stays one switch so that
 * the protocol reads as one table.
 */
static void dom_request(struct xsim_host *h, struct xsim_dom *d,
                        struct conn *c, const struct xsim_req *q,
                        const void *in, size_t inlen, struct reply *r)
{
    const uint64_t *a = q->arg;
    int rc = 0;

    switch (q->op) {
    case XSIM_OP_DOM_PAUSE:
        rc = dom_pause(d);
        break;
    case XSIM_OP_DOM_UNPAUSE:
        rc = dom_unpause(d);
        break;
    case XSIM_OP_DOM_SETMAXMEM:
        rc = dom_setmaxmem(d, a[0]);
        break;
    case XSIM_OP_DOM_MAX_GPFN:
        r->rep.ret = dom_max_gpfn(d);
        break;
    case XSIM_OP_DOM_WORKLOAD: {
        char spec[64];

        if (inlen == 0 || inlen >= sizeof(spec)) {
            rc = -EINVAL;
            break;
        }
        memcpy(spec, in, inlen);
        spec[inlen] = 0;
        rc = dom_set_workload(d, spec);
        break;
    }
    case XSIM_OP_DOM_SHUTDOWN:
        rc = dom_shutdown(d, (uint32_t)a[0]);
        break;
    case XSIM_OP_HVM_PARAM: {
        uint64_t v = a[2];

        rc = dom_hvm_param(d, (uint32_t)a[0], a[1] != 0, &v);
        r->rep.val[0] = v;
        break;
    }
    case XSIM_OP_MEM_POPULATE:
    case XSIM_OP_MEM_DECREASE: {
        long n;

        if (inlen != a[0] * 8 || a[1] > 63) {
            rc = -EINVAL;
            break;
        }
        n = q->op == XSIM_OP_MEM_POPULATE
            ? dom_populate(d, in, a[0], (unsigned)a[1])
            : dom_decrease(d, in, a[0], (unsigned)a[1]);
        if (n < 0)
            rc = (int)n;
        else
            r->rep.ret = n;
        break;
    }
    case XSIM_OP_DOM_BALLOON: {
        long n = dom_balloon(d, a[0]);

        if (n < 0)
            rc = (int)n;
        else
            r->rep.ret = n;
        break;
    }
    case XSIM_OP_GUEST_WRITE: {
        long n;

        if (inlen % 8) {
            rc = -EINVAL;
            break;
        }
        n = dom_guest_write(d, in, inlen / 8);
        if (n < 0)
            rc = (int)n;
        else
            r->rep.ret = n;
        break;
    }
    case XSIM_OP_MEM_CHECK: {
        int32_t *err;

        if (inlen % 8) {
            rc = -EINVAL;
            break;
        }
        err = out_alloc(r, inlen / 2);
        if (!err)
            return;
        dom_check_frames(d, in, inlen / 8, err, a[1] ? &c->refs : NULL);
        r->rep.val[0] = d->instance;
        if (a[0] && d->memfd >= 0)
            r->pass_fd = d->memfd;
        break;
    }
    case XSIM_OP_MEM_UNMAP:
        if (inlen % 8) {
            rc = -EINVAL;
            break;
        }
        dom_unmap_frames(d, in, inlen / 8, &c->refs);
        break;
    case XSIM_OP_PAGING: {
        long n = dom_paging_op(d, (uint32_t)a[0], a[1], in, inlen);

        if (n < 0)
            rc = (int)n;
        else
            r->rep.ret = n;
        break;
    }
    case XSIM_OP_SHADOW: {
        uint32_t mb = (uint32_t)a[4], fc, dc;
        uint8_t *bm = NULL;
        bool ld = a[0] == XEN_DOMCTL_SHADOW_OP_CLEAN ||
                  a[0] == XEN_DOMCTL_SHADOW_OP_PEEK;
        uint64_t pages = a[2] < XSIM_GFN_LIMIT ? a[2] : XSIM_GFN_LIMIT;

        if (ld && a[3] && pages) {
            bm = out_alloc(r, (size_t)((pages + 7) / 8));
            if (!bm)
                return;
        }
        rc = dom_shadow_op(d, (uint32_t)a[0], (uint32_t)a[1], a[2], bm, &mb,
                           &fc, &dc);
        r->rep.val[0] = fc;
        r->rep.val[1] = dc;
        r->rep.val[2] = mb;
        if (rc == 0 && ld)
            r->rep.ret = (int64_t)a[2];
        break;
    }
    case XSIM_OP_HVM_GETCTX: {
        uint64_t need = 0, len = 0;
        uint8_t *buf;

        rc = dom_hvm_getcontext(d, NULL, 0, &need);
        if (rc || !a[0]) {
            r->rep.ret = (int64_t)need;
            break;
        }
        buf = out_alloc(r, (size_t)need);
        if (!buf)
            return;
        rc = dom_hvm_getcontext(d, buf, a[1], &len);
        r->outlen = (size_t)len;
        r->rep.ret = (int64_t)len;
        break;
    }
    case XSIM_OP_HVM_SETCTX:
        rc = dom_hvm_setcontext(d, in, inlen);
        break;
    case XSIM_OP_SCHED_DOM: {
        uint16_t w = (uint16_t)a[2], cap = (uint16_t)a[3];

        rc = dom_sched_op(d, (uint32_t)a[0], a[1] != 0, &w, &cap);
        r->rep.val[0] = w;
        r->rep.val[1] = cap;
        break;
    }
    case XSIM_OP_MEM_P2M: {
        int64_t max = dom_max_gpfn(d);
        uint64_t pages = d->control ? 0 : (uint64_t)max + 1;
        uint8_t *bm;
        uint64_t g;

        bm = out_alloc(r, (size_t)((pages + 7) / 8));
        if (!bm)
            return;
        pthread_mutex_lock(&d->lock);
        for (g = 0; g < pages; g++)
            if ((d->p2m[g / 64] >> (g % 64)) & 1)
                bm[g / 8] |= (uint8_t)(1u << (g % 8));
        pthread_mutex_unlock(&d->lock);
        r->rep.val[0] = pages;
        r->rep.val[1] = d->instance;
        if (a[0] && d->memfd >= 0)
            r->pass_fd = d->memfd;
        break;
    }
    default:
        /* device-model operations */
        rc = dom_check_dm(d);
        if (rc)
            break;
        switch (q->op) {
        case XSIM_OP_DM_MODIFIED:
            if (inlen % sizeof(struct xen_dm_op_modified_memory_extent)) {
                rc = -EINVAL;
                break;
            }
            rc = dom_modified_memory(d, in, (uint32_t)(inlen /
                     sizeof(struct xen_dm_op_modified_memory_extent)));
            break;
        case XSIM_OP_DM_TRACK_VRAM: {
            uint8_t *bm = NULL;

            if (a[1] > (1u << 18)) {
                rc = -EINVAL;
                break;
            }
            if (a[1]) {
                bm = out_alloc(r, (size_t)((a[1] + 7) / 8));
                if (!bm)
                    return;
            }
            rc = dom_track_dirty_vram(d, a[0], a[1], bm);
            break;
        }
        case XSIM_OP_DM_IOREQ_CREATE: {
            uint32_t id = 0;

            rc = dom_ioreq_create(d, (int)a[0], &id);
            r->rep.ret = id;
            break;
        }
        case XSIM_OP_DM_IOREQ_INFO: {
            uint64_t v[3] = { 0 };

            rc = dom_ioreq_info(d, (uint32_t)a[0], a[1] != 0, v);
            memcpy(r->rep.val, v, sizeof(v));
            break;
        }
        case XSIM_OP_DM_IOREQ_RANGE:
            rc = dom_ioreq_range(d, (uint32_t)a[0], (uint32_t)a[1], a[2], a[3],
                                 a[4] != 0);
            break;
        case XSIM_OP_DM_IOREQ_STATE:
            rc = dom_ioreq_state(d, (uint32_t)a[0], a[1] != 0);
            break;
        case XSIM_OP_DM_IOREQ_DESTROY:
            rc = dom_ioreq_destroy(d, (uint32_t)a[0]);
            break;
        case XSIM_OP_MAP_RESOURCE: {
            int fd = -1;
            uint64_t off = 0;
            long n = dom_map_resource(d, (uint32_t)a[0], (uint32_t)a[1],
                                      a[2], a[3], &fd, &off);

            if (n < 0) {
                rc = (int)n;
                break;
            }
            r->rep.ret = n;
            r->rep.val[0] = off;
            if (a[3])
                r->pass_fd = fd;
            break;
        }
        case XSIM_OP_DM_RELOCATE:
            rc = dom_relocate(d, (uint32_t)a[0], a[1], a[2]);
            break;
        case XSIM_OP_DM_CACHEATTR:
            rc = dom_cacheattr(d, a[0], a[1], (uint32_t)a[2]);
            break;
        case XSIM_OP_DM_NR_VCPUS:
            r->rep.ret = d->nr_vcpus;
            break;
        case XSIM_OP_DM_NOOP: {
            char what[256];
            size_t n = inlen < sizeof(what) - 1 ? inlen : sizeof(what) - 1;

            memcpy(what, in, n);
            what[n] = 0;
            rc = dom_dm_record(d, what);
            break;
        }
        case XSIM_OP_DM_STATE: {
            size_t len = 0;
            char *text = dom_dm_state(d, &len);

            if (!text) {
                rc = -ENOMEM;
                break;
            }
            r->out = text;
            r->outlen = len;
            r->free_out = true;
            break;
        }
        default:
            rc = -ENOSYS;
            break;
        }
        break;
    }
    (void)h;
    if (rc)
        set_err(r, rc);
}

static void request(struct conn *c, const struct xsim_req *q, const void *in,
                    size_t inlen, struct reply *r)
{
    struct xsim_host *h = c->srv->host;
    struct xsim_dom *d;
    int rc = 0;

    switch (q->op) {
    case XSIM_OP_HELLO:
        if (q->arg[0] != XSIM_VERSION)
            rc = -EPROTO;
        break;
    case XSIM_OP_HOST_INFO:
        host_info(h, r);
        break;
    case XSIM_OP_HOST_STOP:
        xsim_log("stop requested by pid %d", (int)c->peer);
        break;
    case XSIM_OP_DOM_CREATE: {
        uint32_t id = 0;

        if (inlen != sizeof(struct xsim_create)) {
            rc = -EINVAL;
            break;
        }
        rc = host_create(h, in, &id);
        r->rep.ret = id;
        break;
    }
    case XSIM_OP_DOM_DESTROY:
        rc = host_destroy(h, q->domid);
        break;
    case XSIM_OP_SCHED_ID:
        r->rep.ret = XEN_SCHEDULER_CREDIT2;     /* Xen 4.17's default */
        break;
    case XSIM_OP_DOM_GETINFO: {
        unsigned max = q->arg[0] > 64 ? 64 : (unsigned)q->arg[0];
        struct xsim_dominfo *info = out_alloc(r, max * sizeof(*info));
        int n;

        if (!info)
            return;
        n = host_getinfo(h, q->domid, max, info);
        r->outlen = (size_t)n * sizeof(*info);
        r->rep.ret = n;
        break;
    }
    default:
        if (q->op >= XSIM_OP_MAX) {
            rc = -ENOSYS;
            break;
        }
        d = host_get(h, q->domid);
        if (!d) {
            if (q->op == XSIM_OP_MEM_CHECK && inlen % 8 == 0) {
                /* privcmd: every frame of an unknown domain -> -ESRCH */
                int32_t *err = out_alloc(r, inlen / 2);

                for (size_t i = 0; err && i < inlen / 8; i++)
                    err[i] = -ESRCH;
                break;
            }
            rc = -ESRCH;
            break;
        }
        dom_request(h, d, c, q, in, inlen, r);
        host_put(h, d);
        break;
    }
    if (rc)
        set_err(r, rc);
}

/* The client is gone: its mappings with it. */
static void conn_drop_refs(struct conn *c)
{
    struct xsim_host *h = c->srv->host;

    for (size_t i = 0; i < c->refs.cap; i++) {
        uint64_t key;
        uint32_t n;
        struct xsim_dom *d;

        if (!c->refs.keys[i])
            continue;
        key = c->refs.keys[i] - 1;
        n = c->refs.counts[i];
        d = host_get(h, (uint32_t)(key >> 32));
        if (!d)
            continue;
        pthread_mutex_lock(&d->lock);
        refs_add(&d->fref, key & 0xffffffffu, -(int)n);
        pthread_mutex_unlock(&d->lock);
        host_put(h, d);
    }
    refs_fini(&c->refs);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    void *in = NULL;
    size_t incap = 0;

    for (;;) {
        struct xsim_req q;
        struct reply r = { .rep = { .magic = XSIM_MAGIC }, .pass_fd = -1 };
        int rc = xsim_recv_hdr(c->fd, &q, sizeof(q), NULL);

        if (rc)
            break;
        if (q.magic != XSIM_MAGIC || q.len > XSIM_MAX_PAYLOAD) {
            xsim_log("pid %d: malformed request, closing", (int)c->peer);
            break;
        }
        if (q.len > incap) {
            void *n = realloc(in, (size_t)q.len);

            if (!n)
                break;
            in = n;
            incap = (size_t)q.len;
        }
        if (q.len && xsim_read_all(c->fd, in, (size_t)q.len))
            break;
        request(c, &q, in, (size_t)q.len, &r);
        r.rep.len = r.outlen;
        r.rep.nfds = r.pass_fd >= 0;
        rc = xsim_send(c->fd, &r.rep, sizeof(r.rep), r.out, r.outlen,
                       r.pass_fd);
        if (r.free_out)
            free(r.out);
        if (rc)
            break;
        if (q.op == XSIM_OP_HOST_STOP) {
            /* The main thread does the rest.  Keep this connection open:
             * the caller learns that the host is gone when the process
             * exit closes it. */
            kill(getpid(), SIGTERM);
            for (;;)
                pause();
        }
    }
    free(in);
    close(c->fd);
    conn_drop_refs(c);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct xsim_server *s = arg;

    for (;;) {
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        pthread_attr_t attr;
        pthread_t t;
        struct conn *c;
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
                errno == ENFILE)
                continue;
            break;              /* the listening socket was shut down */
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->srv = s;
        c->fd = fd;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
            c->peer = cred.pid;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, conn_main, c)) {
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

int server_start(struct xsim_server *s, struct xsim_host *h)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int rc;

    s->host = h;
    rc = xsim_path(sa.sun_path, sizeof(sa.sun_path), h->state_dir,
                   XSIM_SOCK_NAME);
    if (rc)
        return rc;
    snprintf(s->sock_path, sizeof(s->sock_path), "%s", sa.sun_path);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return -errno;
    unlink(sa.sun_path);        /* stale: the caller holds the state lock */
    if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s->listen_fd, 64) < 0) {
        rc = -errno;
        close(s->listen_fd);
        return rc;
    }
    rc = pthread_create(&s->accept_thread, NULL, accept_main, s);
    if (rc) {
        close(s->listen_fd);
        unlink(sa.sun_path);
        return -rc;
    }
    return 0;
}

void server_stop(struct xsim_server *s)
{
    unlink(s->sock_path);
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->accept_thread, NULL);
    close(s->listen_fd);
}
