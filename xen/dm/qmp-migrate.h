/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmp-migrate.h - QEMU's migration QMP commands over xenram's own engine
 * (migration/migration.h); see docs/qmp.md.
 */
#ifndef XENRAM_DM_QMP_MIGRATE_H
#define XENRAM_DM_QMP_MIGRATE_H

#include <stdbool.h>

#include "migration/migration.h"
#include "xen/dm/qmp.h"

typedef struct DmMigrateQmp {
    Migration *mig;
    QmpServer *qmp;
    bool incoming;              /* this device model receives a guest */
    bool deferred;              /* -incoming defer, migrate-incoming pending */
    bool start_paused;          /* -S: stay paused after the switchover */
    bool restricted;            /* -xen-domid-restrict: no engine of ours */
} DmMigrateQmp;

/*
 * Register migrate, migrate-incoming, migrate_cancel, migrate-continue,
 * query-migrate, migrate-set-parameters, query-migrate-parameters,
 * migrate-set-capabilities and query-migrate-capabilities on @q->qmp.
 * @q must outlive the server.  0 or -errno.
 */
int dm_migrate_qmp_register(DmMigrateQmp *q);

/* query-migrate's answer for @mig (a new reference). */
json_t *dm_migrate_info_json(Migration *mig);

#endif /* XENRAM_DM_QMP_MIGRATE_H */
