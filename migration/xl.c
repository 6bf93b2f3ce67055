/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xl.c - xenram's duties in `xl migrate` and `xl save` / `xl restore`,
 * where libxc moves the guest's RAM and owns Xen's log-dirty (see
 * migration.h, docs/migration.md).
 *
 * The order libxl and libxc follow, and what each step needs of us:
 *   xen-set-global-dirty-log on   our writes must reach Xen's log-dirty
 *                                 (libxc CLEANs it each round; we never do)
 *   stop                          every reported write flushed to Xen
 *                                 before libxc's last round
 *   xen-save-devices-state        the RAM layout, hot-plugged blocks with
 *                                 it; the layout frozen from then on
 *   -incoming fd:N (destination)  the layout re-created, the frames that
 *                                 came with the migration mapped
 *   cont                          the guest runs; its layout may change
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migration/migration-internal.h"

static const char frozen_reason[] =
    "the device state has been saved; resume the guest first";

int migration_new(const MigrationConfig *cfg, Migration **out)
{
    Migration *m = calloc(1, sizeof(*m));

    if (!m) {
        return -ENOMEM;
    }
    m->cfg = *cfg;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    migration_params_default(&m->params);
    m->caps.events = false;
    m->fd = -1;
    m->listen_fd = -1;
    m->recover_fd = -1;
    *out = m;
    return 0;
}

void migration_free(Migration *m)
{
    if (!m) {
        return;
    }
    migration_join(m);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

bool migration_global_dirty_log(const Migration *m)
{
    return m->global_dirty_log;
}

int migration_xl_stop(Migration *m, char *err, size_t errlen)
{
    int ret = modified_memory_flush(m->cfg.mm);

    if (ret) {
        snprintf(err, errlen, "cannot stop: reporting device-model writes "
                 "to Xen failed (%s); the guest's memory would be "
                 "incomplete after migration", strerror(-ret));
    }
    return ret;
}

int migration_xl_set_global_dirty_log(Migration *m, bool enable, char *err,
                                      size_t errlen)
{
    bool engine;
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    engine = m->active;
    pthread_mutex_unlock(&m->lock);
    if (engine) {
        snprintf(err, errlen, "xenram's own migration of this guest is in "
                 "progress: it owns Xen's log-dirty, xl migrate cannot run "
                 "beside it");
        return -EBUSY;
    }
    if (m->cfg.forward_writes) {
        ret = modified_memory_set_enabled(m->cfg.mm, enable);
    }
    if (ret) {
        snprintf(err, errlen, "reporting device-model writes to Xen failed: "
                 "%s", strerror(-ret));
        return ret;
    }
    pthread_mutex_lock(&m->lock);
    m->global_dirty_log = enable;
    pthread_mutex_unlock(&m->lock);
    /*
     * The layout must not change under a migration, nor once the device
     * state has been saved (libxc turns the dirty log off after that):
     * memory added then would not be in the saved state.
     */
    mig_hotplug_set_blocked(m, enable ? "a migration is in progress" :
                               m->state_saved ? frozen_reason : NULL);
    return 0;
}

void migration_xl_resumed(Migration *m)
{
    m->state_saved = false;
    if (!m->global_dirty_log) {
        mig_hotplug_set_blocked(m, NULL);
    }
}

int migration_xl_save(Migration *m, int fd, const char *name, char *err,
                      size_t errlen)
{
    char msg[512];
    DevState ds;
    int ret;

    ret = modified_memory_flush(m->cfg.mm);
    if (ret) {
        snprintf(err, errlen, "reporting device-model writes to Xen failed: "
                 "%s", strerror(-ret));
        return ret;
    }
    ret = migration_layout_capture(m, &ds);
    if (ret) {
        snprintf(err, errlen, "collecting the device state failed: %s",
                 strerror(-ret));
        return ret;
    }
    ret = devstate_write(fd, &ds, msg, sizeof(msg));
    devstate_free(&ds);
    /* A pipe or a socket cannot be synced, and need not be. */
    if (!ret && fsync(fd) && errno != EINVAL && errno != EROFS) {
        ret = -errno;
        snprintf(msg, sizeof(msg), "%s", strerror(errno));
    }
    if (ret) {
        snprintf(err, errlen, "saving the device state to '%s' failed: %s",
                 name, msg);
        return ret;
    }
    m->state_saved = true;
    mig_hotplug_set_blocked(m, frozen_reason);
    return 0;
}

int migration_xl_load(Migration *m, int fd, char *err, size_t errlen)
{
    DevState ds;
    int ret;

    ret = devstate_read(fd, &ds, err, errlen);
    if (ret) {
        return ret;
    }
    ret = migration_layout_apply(m, &ds, err, errlen);
    devstate_free(&ds);
    return ret;
}

int migration_incoming_read(int fd, DevState *ds, uint64_t *ram_bytes,
                            char *err, size_t errlen)
{
    int ret = devstate_read(fd, ds, err, errlen);

    *ram_bytes = 0;
    if (ret) {
        return ret;
    }
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];

        if (strcmp(b->idstr, "xen.ram")) {
            continue;
        }
        for (uint32_t r = 0; r < b->nranges; r++) {
            *ram_bytes += b->ranges[r].size;
        }
    }
    return 0;
}

int migration_incoming_apply(Migration *m, const DevState *ds, char *err,
                             size_t errlen)
{
    int ret = migration_layout_apply(m, ds, err, errlen);

    if (ret) {
        return ret;
    }
    ret = mapcache_replace_dummies(m->cfg.mc);
    if (ret < 0) {
        snprintf(err, errlen, "mapping the restored guest memory failed: %s",
                 xen_last_error());
        return ret;
    }
    mapcache_set_incoming(m->cfg.mc, false);
    xen_memory_set_incoming(m->cfg.xm, false);
    if (m->cfg.hotplug.set_incoming) {
        m->cfg.hotplug.set_incoming(m->cfg.hotplug.opaque, false);
    }
    return 0;
}
