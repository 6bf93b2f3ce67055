/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * migration-internal.h - the migration context shared by the files of
 * migration/; not installed.
 */
#ifndef XENRAM_MIGRATION_INTERNAL_H
#define XENRAM_MIGRATION_INTERNAL_H

#include "migration/migration.h"

struct Migration {
    MigrationConfig cfg;
    bool global_dirty_log;      /* xen-set-global-dirty-log is on */
    bool state_saved;           /* saved since the last cont: layout frozen */
};

/* MigrationHotplugOps, each a no-op when hot-plug is absent. */
static inline uint32_t mig_hotplug_block_slot(Migration *m,
                                              const RAMBlock *block)
{
    return m->cfg.hotplug.block_slot ?
           m->cfg.hotplug.block_slot(m->cfg.hotplug.opaque, block) :
           DEVSTATE_NO_SLOT;
}

static inline void mig_hotplug_set_blocked(Migration *m, const char *reason)
{
    if (m->cfg.hotplug.set_blocked) {
        m->cfg.hotplug.set_blocked(m->cfg.hotplug.opaque, reason);
    }
}

#endif /* XENRAM_MIGRATION_INTERNAL_H */
