/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-hotplug.c - the toolstack's side of RAM hot-plug (docs/hotplug.md):
 * requests written into xenstore, answers read back.  See toolstack.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/size.h"
#include "xen/sim/toolstack-internal.h"

/* ---- RAM hot-plug: the toolstack's side of docs/hotplug.md --------------- */

/*
 * The sizes xensim's commands take ("64M", "0x4000000", "1g"): the same
 * parser as xenram's command line and hot-plug protocol (util/size.h, a
 * leaf header the simulator may share), bytes without a suffix.
 */
int ts_parse_size(const char *s, uint64_t *out)
{
    return xr_parse_size(s, 1, XR_SIZE_HEX | XR_SIZE_SUFFIX, out);
}

/* /local/domain/0/device-model/<domid>/memory: a dom0 device model's
 * hot-plug directory (the only kind xensim starts). */
static void hp_dir(char *buf, size_t len, uint32_t domid)
{
    ts_fmt(buf, len, "/local/domain/0/device-model/%u/memory", domid);
}

static void hp_key(struct xs_handle *xs, xs_transaction_t t,
                   const char *dir, unsigned slot, const char *key,
                   char *out, size_t outlen)
{
    char path[256];
    unsigned len = 0;
    char *v;

    ts_fmt(path, sizeof(path), "%s/%u/%s", dir, slot, key);
    v = xs_read(xs, t, path, &len);
    snprintf(out, outlen, "%s", v ? v : "");
    free(v);
}

static void hp_read_slot(struct xs_handle *xs, xs_transaction_t t,
                         const char *dir, unsigned slot,
                         struct ts_hp_slot *o)
{
    memset(o, 0, sizeof(*o));
    o->slot = slot;
    hp_key(xs, t, dir, slot, "state", o->state, sizeof(o->state));
    hp_key(xs, t, dir, slot, "gpa", o->gpa, sizeof(o->gpa));
    hp_key(xs, t, dir, slot, "size", o->size, sizeof(o->size));
    hp_key(xs, t, dir, slot, "start", o->start, sizeof(o->start));
    hp_key(xs, t, dir, slot, "action", o->action, sizeof(o->action));
    hp_key(xs, t, dir, slot, "error", o->error, sizeof(o->error));
}

/* A slot directory's name: a decimal number without leading zeros. */
static bool hp_slot_name(const char *s, unsigned *slot)
{
    unsigned long v;
    char *end;

    if (!s[0] || (s[0] == '0' && s[1]) || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v >= 100000)
        return false;
    *slot = (unsigned)v;
    return true;
}

/* Open xenstore and check that the domain's device model offers
 * hot-plug (xenram created memory/ when it started). */
static struct xs_handle *hp_open(struct ts_host *h, uint32_t domid,
                                 char *dir, size_t dirlen, char *err,
                                 size_t errlen)
{
    struct xs_handle *xs;
    unsigned len = 0;
    char *v;

    if (!h->xenstore) {
        ts_seterr(err, errlen, "the host in %s runs no xenstore", h->dir);
        errno = ENOTSUP;
        return NULL;
    }
    xs = ts_xs_open_err(h, err, errlen, NULL);
    if (!xs)
        return NULL;
    hp_dir(dir, dirlen, domid);
    v = xs_read(xs, XBT_NULL, dir, &len);
    if (!v) {
        ts_seterr(err, errlen, "d%u offers no RAM hot-plug: %s does not exist "
                  "(its device model, xenram, creates it when it starts)",
                  domid, dir);
        xs_close(xs);
        errno = ENOENT;
        return NULL;
    }
    free(v);
    return xs;
}

static int hp_cmp(const void *a, const void *b)
{
    const struct ts_hp_slot *x = a, *y = b;

    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

int ts_hotplug_list(struct ts_host *h, uint32_t domid,
                    struct ts_hp_slot **out, unsigned *n, char *err,
                    size_t errlen)
{
    struct ts_hp_slot *v = NULL;
    unsigned ne = 0, k = 0;
    char dir[128], **ents;
    struct xs_handle *xs;

    *out = NULL;
    *n = 0;
    /* An empty table would say "no slots" of a device model whose slots
     * xensim cannot know. */
    if (ts_dm_foreign(h, domid)) {
        ts_dm_foreign_err(h, domid, "list hot-plug slots", err, errlen);
        return -ENOTSUP;
    }
    xs = hp_open(h, domid, dir, sizeof(dir), err, errlen);
    if (!xs)
        return -(errno ? errno : EIO);
    ents = xs_directory(xs, XBT_NULL, dir, &ne);
    if (ents && ne) {
        v = calloc(ne, sizeof(*v));
        if (!v) {
            free(ents);
            xs_close(xs);
            ts_seterr(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    for (unsigned i = 0; ents && i < ne; i++) {
        unsigned slot;

        if (hp_slot_name(ents[i], &slot))
            hp_read_slot(xs, XBT_NULL, dir, slot, &v[k++]);
    }
    free(ents);
    xs_close(xs);
    if (k)
        qsort(v, k, sizeof(*v), hp_cmp);
    *out = v;
    *n = k;
    return 0;
}

static bool hp_write(struct xs_handle *xs, xs_transaction_t t,
                     const char *path, const char *val)
{
    /* docs/hotplug.md: only the toolstack's domain (0) owns the request,
     * no other domain may read or write it ("n0").  memory/ is created so
     * and nodes inherit it; saying it again keeps a slot directory that
     * was opened by mistake from giving the request to another owner. */
    struct xs_permissions n0 = { .id = 0, .perms = XS_PERM_NONE };

    return xs_write(xs, t, path, val, (unsigned)strlen(val)) &&
           xs_set_permissions(xs, t, path, &n0, 1);
}

/*
 * In transaction @t: choose the slot (the lowest one that holds no memory
 * and has no request pending, unless given), refuse a slot with a request
 * pending, write the request.  The watch on its action is placed before
 * anything is written.  -EAGAIN-free errors only; @slot_out the slot.
 */
static int hp_request(struct xs_handle *xs, xs_transaction_t t,
                      const char *dir, const struct ts_hp_req *r,
                      unsigned *slot_out, char *err, size_t errlen)
{
    char path[256], val[32], act[16];
    unsigned slot;

    if (r->slot == TS_HP_AUTO) {
        for (slot = 0; slot < 100000; slot++) {
            char gpa[32];

            hp_key(xs, t, dir, slot, "gpa", gpa, sizeof(gpa));
            hp_key(xs, t, dir, slot, "action", act, sizeof(act));
            if (!gpa[0] && !act[0])
                break;
        }
    } else {
        slot = (unsigned)r->slot;
    }
    hp_key(xs, t, dir, slot, "action", act, sizeof(act));
    if (act[0]) {
        ts_seterr(err, errlen, "slot %u has a request pending (action = %s): "
                  "wait for its answer first", slot, act);
        return -EBUSY;
    }
    *slot_out = slot;
    if (!r->remove) {
        ts_fmt(path, sizeof(path), "%s/%u/size", dir, slot);
        ts_fmt(val, sizeof(val), "%" PRIu64, r->size);
        if (!hp_write(xs, t, path, val))
            goto fail;
        ts_fmt(path, sizeof(path), "%s/%u/start", dir, slot);
        if (r->start == TS_HP_AUTO)
            ts_fmt(val, sizeof(val), "auto");
        else
            ts_fmt(val, sizeof(val), "0x%" PRIx64, r->start);
        if (!hp_write(xs, t, path, val))
            goto fail;
    }
    /* The slot's directory (created by the writes above, or by the
     * action below, inheriting memory/'s): dom0's only as well. */
    ts_fmt(path, sizeof(path), "%s/%u", dir, slot);
    {
        struct xs_permissions n0 = { .id = 0, .perms = XS_PERM_NONE };
        unsigned len = 0;
        char *v = xs_read(xs, t, path, &len);
        bool exists = v != NULL;

        free(v);
        if (exists && !xs_set_permissions(xs, t, path, &n0, 1))
            goto fail;
    }
    /* The request itself, last. */
    ts_fmt(path, sizeof(path), "%s/%u/action", dir, slot);
    if (!hp_write(xs, t, path, r->remove ? "remove" : "add"))
        goto fail;
    return 0;
fail:
    {
        int e = errno ? errno : EIO;

        ts_seterr(err, errlen, "writing %s: %s", path, strerror(e));
        return -e;
    }
}

int ts_hotplug(struct ts_host *h, uint32_t domid, const struct ts_hp_req *r,
               struct ts_hp_slot *ans, char *err, size_t errlen)
{
    int timeout = r->timeout_ms > 0 ? r->timeout_ms : 30000;
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout * 1000000ull;
    char dir[128], apath[256] = "";
    struct ts_domcfg c;
    struct ts_dm dm = { .pidfd = -1 };
    struct xs_handle *xs;
    bool watching = false;
    unsigned slot = 0;
    int rc = 0;

    memset(ans, 0, sizeof(*ans));
    if (r->remove && r->slot == TS_HP_AUTO) {
        ts_seterr(err, errlen, "remove needs a slot");
        return -EINVAL;
    }
    /* Its device model: stop waiting if it dies. */
    if (ts_domcfg_load(h->dir, domid, &c, NULL, 0) == 0) {
        bool has_dm = c.dm[0] != 0;
        int a = has_dm ? ts_dm_attach(h, domid, &c, &dm) : -ENOTSUP;

        ts_domcfg_free(&c);
        if (a) {
            if (!has_dm && ts_dm_foreign(h, domid))
                ts_dm_foreign_err(h, domid, "hot-plug RAM", err, errlen);
            else
                ts_seterr(err, errlen, has_dm ? "the device model of d%u is "
                          "not running" : "d%u has no device model (create "
                          "--dm): nobody to ask for memory", domid);
            return a;
        }
    }
    xs = hp_open(h, domid, dir, sizeof(dir), err, errlen);
    if (!xs) {
        rc = -(errno ? errno : EIO);
        goto out;
    }
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL) {
            rc = -(errno ? errno : EIO);
            ts_seterr(err, errlen, "xenstore transaction: %s", strerror(-rc));
            goto out;
        }
        rc = hp_request(xs, t, dir, r, &slot, err, errlen);
        if (rc == 0) {
            /* Watch first, then publish: the answer cannot be missed. */
            ts_fmt(apath, sizeof(apath), "%s/%u/action", dir, slot);
            if (!xs_watch(xs, apath, "xensim-hotplug")) {
                rc = -(errno ? errno : EIO);
                ts_seterr(err, errlen, "xenstore watch on %s: %s", apath,
                          strerror(-rc));
            } else {
                watching = true;
            }
        }
        if (rc) {
            xs_transaction_end(xs, t, true);
            goto out;
        }
        if (xs_transaction_end(xs, t, false))
            break;
        rc = -(errno ? errno : EIO);
        xs_unwatch(xs, apath, "xensim-hotplug");
        watching = false;
        if (rc != -EAGAIN || tries == 20) {
            ts_seterr(err, errlen, "xenstore transaction: %s", strerror(-rc));
            goto out;
        }
        rc = 0;
    }
    /* xenram answers (error, gpa, state) and removes action last. */
    for (;;) {
        unsigned len = 0;
        char *v = xs_read(xs, XBT_NULL, apath, &len);
        struct pollfd p[2] = { { .fd = xs_fileno(xs), .events = POLLIN },
                               { .fd = dm.pidfd, .events = POLLIN } };
        int left, n;

        if (!v && errno == ENOENT)
            break;
        free(v);
        left = ts_ms_left(deadline);
        if (left == 0) {
            ts_seterr(err, errlen, "no answer from the device model of d%u "
                      "within %d s; the request is still pending (%s)", domid,
                   timeout / 1000, apath);
            rc = -ETIMEDOUT;
            goto out;
        }
        n = poll(p, dm.pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            ts_seterr(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            /* It may have answered just before it went. */
            v = xs_read(xs, XBT_NULL, apath, &len);
            if (!v)
                break;
            free(v);
            ts_seterr(err, errlen, "the device model of d%u exited without "
                      "answering the request (%s)", domid, apath);
            rc = -ECHILD;
            goto out;
        }
        if (n > 0 && (p[0].revents & POLLIN)) {
            char **w;

            while ((w = xs_check_watch(xs)))
                free(w);
        }
    }
    hp_read_slot(xs, XBT_NULL, dir, slot, ans);
    if (!ans->state[0]) {
        ts_seterr(err, errlen, "the device model of d%u removed %s without "
                  "writing a state", domid, apath);
        rc = -EPROTO;
    }
out:
    if (xs) {
        if (watching)
            xs_unwatch(xs, apath, "xensim-hotplug");
        xs_close(xs);
    }
    ans->slot = slot;
    ts_dm_release(&dm);
    return rc;
}
