/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotplug-xs.c - the xenstore protocol of RAM hotplug (docs/hotplug.md).
 *
 *   <device-model dir>/memory/<slot>/
 *       size    bytes, decimal or 0x-hex               toolstack writes
 *       start   guest-physical address, or "auto"      toolstack writes
 *       action  add | remove  (last: the trigger)      toolstack writes,
 *                                                      xenram removes
 *       gpa     0x-hex start while online              xenram writes
 *       error   a sentence, "" on success              xenram writes
 *       state   online | removed | error               xenram writes
 *
 * A request is answered by writing error, gpa and state, in that order,
 * and then removing action: the toolstack waits for action to vanish and
 * reads state.  action is removed in a transaction and only if it still
 * holds the request just answered, so a newer request written meanwhile
 * stays for its own watch event.  Every request node must be owned by the
 * toolstack's domain and writable by no other domain (a slot directory
 * opened by mistake makes its nodes writable by the guest even when the
 * toolstack wrote them); memory/ is created so that no other domain can
 * read or write it.
 *
 * The connection is our own (not the device model's handle), so its
 * watch events are ours alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "hotplug/hotplug-internal.h"
#include "util/size.h"

/* ---- helpers ---------------------------------------------------------------- */

static void hp_path(const Hotplug *hp, char *buf, size_t len,
                    const char *slot, const char *key)
{
    if (key) {
        snprintf(buf, len, "%s/%s/%s", hp->memdir, slot, key);
    } else {
        snprintf(buf, len, "%s/%s", hp->memdir, slot);
    }
}

/* Read memory/<slot>/<key>: malloc'd, or NULL (absent: errno ENOENT). */
static char *hp_read(Hotplug *hp, const char *slot, const char *key)
{
    char path[256];
    unsigned int len;

    hp_path(hp, path, sizeof(path), slot, key);
    return xs_read(hp->xs, XBT_NULL, path, &len);
}

static int hp_write(Hotplug *hp, const char *slot, const char *key,
                    const char *value)
{
    char path[256];

    hp_path(hp, path, sizeof(path), slot, key);
    if (!xs_write(hp->xs, XBT_NULL, path, value, strlen(value))) {
        int ret = errno ? -errno : -EIO;

        hp_log(hp, "hotplug: cannot write %s: %s", path, strerror(-ret));
        return ret;
    }
    return 0;
}

static void hp_rm(Hotplug *hp, const char *slot, const char *key)
{
    char path[256];

    hp_path(hp, path, sizeof(path), slot, key);
    if (!xs_rm(hp->xs, XBT_NULL, path) && errno != ENOENT) {
        hp_log(hp, "hotplug: cannot remove %s: %s", path, strerror(errno));
    }
}

/*
 * The permissions of memory/<slot>/<key> (NULL @key: the slot directory):
 * the owner in *@owner, and in *@writer a domain other than the owner and
 * the toolstack that may write the node (XS_PERM_WRITE for everybody in
 * the first entry, or in an entry of its own), or UINT_MAX if none may.
 * 0, or -errno (-ENOENT when the node does not exist).
 */
static int hp_perms(Hotplug *hp, const char *slot, const char *key,
                    unsigned int *owner, unsigned int *writer)
{
    struct xs_permissions *perms;
    unsigned int n = 0;
    char path[256];

    hp_path(hp, path, sizeof(path), slot, key);
    perms = xs_get_permissions(hp->xs, XBT_NULL, path, &n);
    if (!perms) {
        return errno ? -errno : -EIO;
    }
    if (n == 0) {
        free(perms);
        return -EIO;
    }
    *owner = perms[0].id;
    *writer = UINT_MAX;
    for (unsigned int i = 1; i < n && *writer == UINT_MAX; i++) {
        if ((perms[i].perms & XS_PERM_WRITE) && perms[i].id != perms[0].id &&
            perms[i].id != hp->cfg.toolstack_domid) {
            *writer = perms[i].id;
        }
    }
    if (*writer == UINT_MAX && (perms[0].perms & XS_PERM_WRITE)) {
        /* Everybody not listed: some guest is among them. */
        *writer = hp->cfg.domid;
    }
    free(perms);
    return 0;
}

/*
 * A number as the protocol writes it: decimal, or hexadecimal after "0x".
 * No sign, no blanks, no suffix (util/size.h).  0, or -EINVAL / -ERANGE.
 */
static int hp_parse_u64(const char *s, uint64_t *v)
{
    return xr_parse_size(s, 1, XR_SIZE_HEX, v);
}

/* ---- answering --------------------------------------------------------------- */

/*
 * Remove memory/<slot>/action if it still says @action: in a transaction,
 * so that a request the toolstack wrote after the one answered is left
 * for its own watch event instead of being deleted unread.
 */
static void hp_take_request(Hotplug *hp, const char *slot, const char *action)
{
    char path[256];

    hp_path(hp, path, sizeof(path), slot, "action");
    for (int tries = 0; tries < 64; tries++) {
        xs_transaction_t t = xs_transaction_start(hp->xs);
        unsigned int len;
        char *now;

        if (t == XBT_NULL) {
            hp_log(hp, "hotplug: cannot start a transaction to remove %s: "
                   "%s", path, strerror(errno));
            return;
        }
        now = xs_read(hp->xs, t, path, &len);
        if (now && !strcmp(now, action) && !xs_rm(hp->xs, t, path)) {
            hp_log(hp, "hotplug: cannot remove %s: %s", path,
                   strerror(errno));
        }
        free(now);
        if (xs_transaction_end(hp->xs, t, false)) {
            return;
        }
        if (errno != EAGAIN) {
            hp_log(hp, "hotplug: cannot remove %s: %s", path,
                   strerror(errno));
            return;
        }
    }
    hp_log(hp, "hotplug: %s keeps changing: left in place", path);
}

/* error, gpa, state, then the request (@action) goes. */
static void hp_answer(Hotplug *hp, const char *slot, const char *action,
                      const char *state, const char *error,
                      const uint64_t *gpa)
{
    char buf[32];

    hp_write(hp, slot, "error", error);
    if (gpa) {
        snprintf(buf, sizeof(buf), "0x%" PRIx64, *gpa);
        hp_write(hp, slot, "gpa", buf);
    } else if (!strcmp(state, "removed")) {
        hp_rm(hp, slot, "gpa");
    }
    hp_write(hp, slot, "state", state);
    hp_take_request(hp, slot, action);
}

static int hp_refuse(Hotplug *hp, const char *slot, const char *action,
                     int ret, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int hp_refuse(Hotplug *hp, const char *slot, const char *action,
                     int ret, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&hp->lock);
    hp->stats.failures++;
    pthread_mutex_unlock(&hp->lock);
    hp_log(hp, "hotplug: %s/%s: refused: %s", hp->memdir, slot, msg);
    hp_answer(hp, slot, action, "error", msg, NULL);
    return ret;
}

/*
 * Every node of the request must be the toolstack's, and no other domain
 * may write it: owners first (who wrote it), then permissions (who could
 * have rewritten it), then the slot directory's permissions.
 */
static int hp_check_writer(Hotplug *hp, const char *slot, const char *action)
{
    static const char *const keys[] = { "action", "size", "start", NULL };
    unsigned int owner[ARRAY_SIZE(keys)], writer[ARRAY_SIZE(keys)];
    bool present[ARRAY_SIZE(keys)];

    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const char *what = keys[i] ? keys[i] : "the slot directory";
        int ret = hp_perms(hp, slot, keys[i], &owner[i], &writer[i]);

        present[i] = ret == 0;
        if (ret == -ENOENT) {
            continue;
        }
        if (ret) {
            return hp_refuse(hp, slot, action, ret, "cannot check who wrote "
                             "the request (%s): %s", what, strerror(-ret));
        }
        if (keys[i] && owner[i] != hp->cfg.toolstack_domid) {
            return hp_refuse(hp, slot, action, -EPERM, "the request was "
                             "written by domain %u (%s): only the toolstack "
                             "(domain %u) may ask for memory hotplug",
                             owner[i], keys[i], hp->cfg.toolstack_domid);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        if (present[i] && writer[i] != UINT_MAX) {
            return hp_refuse(hp, slot, action, -EPERM, "%s may be written "
                             "by domain %u: only the toolstack (domain %u) "
                             "may; give it the permissions of %s (no access "
                             "for others)", keys[i] ? keys[i] :
                             "the slot directory", writer[i],
                             hp->cfg.toolstack_domid, hp->memdir);
        }
    }
    return 0;
}

/*
 * Up to 64 bytes of @s for a message: bytes that are not printable ASCII
 * become '?', so that what a writer put in a value cannot inject
 * terminal escapes or invalid UTF-8 into the log or the error node.
 */
static const char *hp_printable(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] && i < 64 && i + 1 < len; i++) {
        unsigned char c = s[i];

        buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[i] = '\0';
    return buf;
}

int hp_parse_request(uint32_t nr_slots, const char *memdir, const char *name,
                     const char *action, const char *size_s,
                     const char *start_s, HotplugRequest *req, char *err,
                     size_t errlen)
{
    char p1[80], p2[80];
    uint64_t v;

    memset(req, 0, sizeof(*req));
    req->gpa = HOTPLUG_AUTO;
    /* A leading zero (and so "0x") is refused: one name per slot. */
    if ((name[0] == '0' && name[1]) || hp_parse_u64(name, &v) ||
        v >= nr_slots) {
        return xr_error(err, errlen, -EINVAL, "'%s' is not a slot: slots "
                        "are numbered 0 to %u",
                        hp_printable(name, p1, sizeof(p1)), nr_slots - 1);
    }
    req->slot = (uint32_t)v;
    if (!strcmp(action, "remove")) {
        return 0;
    }
    if (strcmp(action, "add")) {
        return xr_error(err, errlen, -EINVAL, "unknown action '%.32s': "
                        "write add or remove",
                        hp_printable(action, p1, sizeof(p1)));
    }
    req->add = true;
    if (!size_s) {
        return xr_error(err, errlen, -EINVAL, "size is missing: write the "
                        "number of bytes to add to %s/%s/size", memdir,
                        hp_printable(name, p1, sizeof(p1)));
    }
    if (hp_parse_u64(size_s, &req->size)) {
        return xr_error(err, errlen, -EINVAL, "size '%s' is not a number of "
                        "bytes (decimal, or hexadecimal with 0x)",
                        hp_printable(size_s, p1, sizeof(p1)));
    }
    if (start_s && strcmp(start_s, "auto")) {
        if (hp_parse_u64(start_s, &req->gpa)) {
            return xr_error(err, errlen, -EINVAL, "start '%s' is not an "
                            "address (decimal, or hexadecimal with 0x) nor "
                            "\"auto\"", hp_printable(start_s, p2, sizeof(p2)));
        }
        if (req->gpa == HOTPLUG_AUTO) {
            /* 0xffffffffffffffff written out: not an automatic placement. */
            return xr_error(err, errlen, -ERANGE, "start %s is beyond "
                            "guest-physical space",
                            hp_printable(start_s, p2, sizeof(p2)));
        }
    }
    return 0;
}

static int hp_do_add(Hotplug *hp, const char *name, const char *action,
                     const HotplugRequest *req)
{
    char err[512];
    uint64_t gpa;
    int ret;

    err[0] = 0;
    ret = hotplug_add(hp, req->slot, req->gpa, req->size, &gpa, err,
                      sizeof(err));
    if (ret) {
        hp_answer(hp, name, action, "error", err, NULL);
    } else {
        hp_answer(hp, name, action, "online", "", &gpa);
    }
    return ret;
}

static int hp_do_remove(Hotplug *hp, const char *name,
                        const char *action, uint32_t slot)
{
    char err[512] = "";
    int ret = hotplug_remove(hp, slot, err, sizeof(err));

    if (ret == 0) {
        hp_answer(hp, name, action, "removed", "", NULL);
    } else if (ret == -EIO) {
        /* The slot is empty, but the frames were not released. */
        hp_rm(hp, name, "gpa");
        hp_answer(hp, name, action, "error", err, NULL);
    } else {
        hp_answer(hp, name, action, "error", err, NULL);
    }
    return ret;
}

static int hp_process_locked(Hotplug *hp, const char *name)
{
    char *action, *size_s, *start_s;
    HotplugRequest req;
    char msg[512];
    int ret;

    if (!*name || strchr(name, '/') || strlen(name) > 64) {
        return 0;
    }
    action = hp_read(hp, name, "action");
    if (!action) {
        return 0;               /* nothing pending (or answered already) */
    }
    ret = hp_check_writer(hp, name, action);
    if (ret) {
        goto out;
    }
    size_s = hp_read(hp, name, "size");
    start_s = hp_read(hp, name, "start");
    {
        /* The values as read, printable only. */
        char a[65], sz[65], st[65], nm[65];

        hp_debug(hp, "hotplug: request %s/%s: action=%s size=%s start=%s",
                 hp->memdir, hp_printable(name, nm, sizeof(nm)),
                 hp_printable(action, a, sizeof(a)),
                 size_s ? hp_printable(size_s, sz, sizeof(sz)) : "-",
                 start_s ? hp_printable(start_s, st, sizeof(st)) : "-");
    }
    ret = hp_parse_request(hp->cfg.nr_slots, hp->memdir, name, action,
                           size_s, start_s, &req, msg, sizeof(msg));
    if (ret) {
        ret = hp_refuse(hp, name, action, ret, "%s", msg);
    } else if (req.add) {
        ret = hp_do_add(hp, name, action, &req);
    } else {
        ret = hp_do_remove(hp, name, action, req.slot);
    }
    free(size_s);
    free(start_s);
out:
    free(action);
    return ret;
}

/* ---- the service -------------------------------------------------------------- */

int hotplug_process(Hotplug *hp, const char *slot_name)
{
    int ret;

    if (!hp->xs) {
        return -ENOTCONN;
    }
    pthread_mutex_lock(&hp->xs_lock);
    ret = hp_process_locked(hp, slot_name);
    pthread_mutex_unlock(&hp->xs_lock);
    return ret;
}

/* Every slot with a pending request (the watch's first event, a reset). */
static void hp_scan(Hotplug *hp)
{
    unsigned int n = 0;
    char **names = xs_directory(hp->xs, XBT_NULL, hp->memdir, &n);

    for (unsigned int i = 0; names && i < n; i++) {
        hp_process_locked(hp, names[i]);
    }
    free(names);
}

void hotplug_handle_watch(Hotplug *hp)
{
    size_t dlen = strlen(hp->memdir);
    char **ev;

    if (!hp->xs) {
        return;
    }
    pthread_mutex_lock(&hp->xs_lock);
    while ((ev = xs_check_watch(hp->xs))) {
        const char *path = ev[XS_WATCH_PATH];
        const char *rest = path + dlen;

        if (strcmp(ev[XS_WATCH_TOKEN], hp->token) ||
            strncmp(path, hp->memdir, dlen)) {
            /* not ours */
        } else if (!*rest) {
            hp_scan(hp);
        } else if (*rest == '/') {
            const char *key = strchr(rest + 1, '/');
            char slot[72];

            /* memory/<slot>/action: a request (or its removal). */
            if (key && !strcmp(key, "/action") &&
                (size_t)(key - rest - 1) < sizeof(slot)) {
                memcpy(slot, rest + 1, key - rest - 1);
                slot[key - rest - 1] = 0;
                hp_process_locked(hp, slot);
            }
        }
        free(ev);
    }
    if (errno != EAGAIN) {
        hp_log(hp, "hotplug: reading xenstore watch events: %s",
               strerror(errno));
    }
    pthread_mutex_unlock(&hp->xs_lock);
}

int hotplug_watch_fd(Hotplug *hp)
{
    return hp->xs ? xs_fileno(hp->xs) : -ENOTCONN;
}

int hp_xs_write_online(Hotplug *hp, uint32_t slot, uint64_t gpa,
                       uint64_t size)
{
    char name[16], buf[32];
    int ret;

    snprintf(name, sizeof(name), "%u", slot);
    snprintf(buf, sizeof(buf), "%" PRIu64, size);
    ret = hp_write(hp, name, "size", buf);
    snprintf(buf, sizeof(buf), "0x%" PRIx64, gpa);
    if (!ret) {
        ret = hp_write(hp, name, "start", buf);
    }
    if (!ret) {
        ret = hp_write(hp, name, "gpa", buf);
    }
    if (!ret) {
        ret = hp_write(hp, name, "error", "");
    }
    if (!ret) {
        ret = hp_write(hp, name, "state", "online");
    }
    return ret;
}

/*
 * Slot directories without a pending action hold answers about memory
 * this process does not have (a previous device model's): drop them.
 */
static void hp_drop_stale(Hotplug *hp)
{
    unsigned int n = 0;
    char **names = xs_directory(hp->xs, XBT_NULL, hp->memdir, &n);

    for (unsigned int i = 0; names && i < n; i++) {
        char *action = hp_read(hp, names[i], "action");

        if (action) {
            free(action);
        } else {
            hp_rm(hp, names[i], NULL);
        }
    }
    free(names);
}

int hp_xs_open(Hotplug *hp, char *err, size_t errlen)
{
    struct xs_permissions perm = { .id = hp->cfg.toolstack_domid,
                                   .perms = XS_PERM_NONE };
    int ret;

    hp->xs = xs_open(0);
    if (!hp->xs) {
        ret = errno ? -errno : -EIO;
        snprintf(err, errlen, "hotplug: cannot connect to xenstore: %s",
                 strerror(-ret));
        return ret;
    }
    snprintf(hp->token, sizeof(hp->token), "xenram-hotplug-%u",
             hp->cfg.domid);
    /*
     * Owner: the toolstack; everybody else, the guest included: nothing.
     * Nodes the toolstack creates below inherit it.
     */
    if (!xs_mkdir(hp->xs, XBT_NULL, hp->memdir) ||
        !xs_set_permissions(hp->xs, XBT_NULL, hp->memdir, &perm, 1)) {
        ret = errno ? -errno : -EIO;
        snprintf(err, errlen, "hotplug: cannot create %s in xenstore: %s",
                 hp->memdir, strerror(-ret));
        goto fail;
    }
    hp_drop_stale(hp);
    if (!xs_watch(hp->xs, hp->memdir, hp->token)) {
        ret = errno ? -errno : -EIO;
        snprintf(err, errlen, "hotplug: cannot watch %s: %s", hp->memdir,
                 strerror(-ret));
        goto fail;
    }
    return 0;

fail:
    xs_close(hp->xs);
    hp->xs = NULL;
    return ret;
}

void hp_xs_close(Hotplug *hp)
{
    if (!hp->xs) {
        return;
    }
    xs_unwatch(hp->xs, hp->memdir, hp->token);
    xs_close(hp->xs);
    hp->xs = NULL;
}
