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
 * reads state.  Every request node must be owned by the toolstack's
 * domain; memory/ is created so that no other domain can read or write it.
 *
 * The connection is our own (not the device model's handle), so its
 * watch events are ours alone.
 */
#include <errno.h>
#include <inttypes.h>
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
 * The owner of memory/<slot>/<key>: 0 and *@owner, or -errno (-ENOENT
 * when the node does not exist).
 */
static int hp_owner(Hotplug *hp, const char *slot, const char *key,
                    unsigned int *owner)
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

/* A slot name: decimal, no leading zero, below nr_slots. */
static int hp_parse_slot(Hotplug *hp, const char *name, uint32_t *slot)
{
    uint64_t v;

    /* A leading zero (and so "0x") is refused: one name per slot. */
    if ((name[0] == '0' && name[1]) || hp_parse_u64(name, &v) ||
        v >= hp->cfg.nr_slots) {
        return -EINVAL;
    }
    *slot = (uint32_t)v;
    return 0;
}

/* ---- answering --------------------------------------------------------------- */

/* error, gpa, state, then the request goes. */
static void hp_answer(Hotplug *hp, const char *slot, const char *state,
                      const char *error, const uint64_t *gpa)
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
    hp_rm(hp, slot, "action");
}

static int hp_refuse(Hotplug *hp, const char *slot, int ret,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int hp_refuse(Hotplug *hp, const char *slot, int ret,
                     const char *fmt, ...)
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
    hp_answer(hp, slot, "error", msg, NULL);
    return ret;
}

/* Every node of the request must be the toolstack's. */
static int hp_check_writer(Hotplug *hp, const char *slot)
{
    static const char *const keys[] = { "action", "size", "start" };

    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        unsigned int owner;
        int ret = hp_owner(hp, slot, keys[i], &owner);

        if (ret == -ENOENT) {
            continue;
        }
        if (ret) {
            return hp_refuse(hp, slot, ret, "cannot check who wrote the "
                             "request (%s): %s", keys[i], strerror(-ret));
        }
        if (owner != hp->cfg.toolstack_domid) {
            return hp_refuse(hp, slot, -EPERM, "the request was written by "
                             "domain %u (%s): only the toolstack (domain %u) "
                             "may ask for memory hotplug", owner, keys[i],
                             hp->cfg.toolstack_domid);
        }
    }
    return 0;
}

static int hp_do_add(Hotplug *hp, const char *name, uint32_t slot)
{
    char *size_s = hp_read(hp, name, "size");
    char *start_s = hp_read(hp, name, "start");
    uint64_t size, gpa = HOTPLUG_AUTO;
    char err[512];
    int ret;

    if (!size_s) {
        ret = hp_refuse(hp, name, -EINVAL, "size is missing: write the "
                        "number of bytes to add to %s/%s/size", hp->memdir,
                        name);
        goto out;
    }
    if (hp_parse_u64(size_s, &size)) {
        ret = hp_refuse(hp, name, -EINVAL, "size '%.64s' is not a number of "
                        "bytes (decimal, or hexadecimal with 0x)", size_s);
        goto out;
    }
    if (start_s && strcmp(start_s, "auto") && hp_parse_u64(start_s, &gpa)) {
        ret = hp_refuse(hp, name, -EINVAL, "start '%.64s' is not an address "
                        "(decimal, or hexadecimal with 0x) nor \"auto\"",
                        start_s);
        goto out;
    }
    if (gpa == HOTPLUG_AUTO && start_s && strcmp(start_s, "auto")) {
        /* 0xffffffffffffffff written out: not an automatic placement. */
        ret = hp_refuse(hp, name, -ERANGE, "start %s is beyond "
                        "guest-physical space", start_s);
        goto out;
    }
    err[0] = 0;
    ret = hotplug_add(hp, slot, gpa, size, &gpa, err, sizeof(err));
    if (ret) {
        hp_answer(hp, name, "error", err, NULL);
    } else {
        hp_answer(hp, name, "online", "", &gpa);
    }
out:
    free(size_s);
    free(start_s);
    return ret;
}

static int hp_do_remove(Hotplug *hp, const char *name, uint32_t slot)
{
    char err[512] = "";
    int ret = hotplug_remove(hp, slot, err, sizeof(err));

    if (ret == 0) {
        hp_answer(hp, name, "removed", "", NULL);
    } else if (ret == -EIO) {
        /* The slot is empty, but the frames were not released. */
        hp_rm(hp, name, "gpa");
        hp_answer(hp, name, "error", err, NULL);
    } else {
        hp_answer(hp, name, "error", err, NULL);
    }
    return ret;
}

static int hp_process_locked(Hotplug *hp, const char *name)
{
    uint32_t slot;
    char *action;
    int ret;

    if (!*name || strchr(name, '/') || strlen(name) > 64) {
        return 0;
    }
    action = hp_read(hp, name, "action");
    if (!action) {
        return 0;               /* nothing pending (or answered already) */
    }
    ret = hp_check_writer(hp, name);
    if (ret) {
        goto out;
    }
    if (hp_parse_slot(hp, name, &slot)) {
        ret = hp_refuse(hp, name, -EINVAL, "'%s' is not a slot: slots are "
                        "numbered 0 to %u", name, hp->cfg.nr_slots - 1);
    } else if (!strcmp(action, "add")) {
        ret = hp_do_add(hp, name, slot);
    } else if (!strcmp(action, "remove")) {
        ret = hp_do_remove(hp, name, slot);
    } else {
        ret = hp_refuse(hp, name, -EINVAL, "unknown action '%.32s': write "
                        "add or remove", action);
    }
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
