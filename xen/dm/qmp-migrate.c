/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmp-migrate.c - QEMU's migration commands, turned into calls of
 * migration/migration.h (docs/qmp.md).  Names, argument names and JSON
 * shapes are QEMU's, so that QEMU's tooling and habits carry over.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xen/dm/qmp-migrate.h"

/* ---- parameters ---------------------------------------------------------------- */

typedef struct ParamDesc {
    const char *name;
    size_t offset;
    bool is64;
} ParamDesc;

#define P32(n, f) { n, offsetof(MigrationParams, f), false }
#define P64(n, f) { n, offsetof(MigrationParams, f), true }

static const ParamDesc params[] = {
    P64("max-bandwidth", max_bandwidth),
    P64("downtime-limit", downtime_limit),
    P32("multifd-channels", multifd_channels),
    P32("multifd-zstd-level", multifd_zstd_level),
    P32("throttle-trigger-threshold", throttle_trigger_threshold),
    P32("cpu-throttle-initial", cpu_throttle_initial),
    P32("cpu-throttle-increment", cpu_throttle_increment),
    P32("max-cpu-throttle", max_cpu_throttle),
    P32("x-postcopy-after-rounds", x_postcopy_after_rounds),
    P32("x-postcopy-prepare-passes", x_postcopy_prepare_passes),
};

#define PARAMS_SCHEMA \
    "max-bandwidth:i?,downtime-limit:i?,multifd-channels:i?," \
    "multifd-compression:s?,multifd-zstd-level:i?," \
    "throttle-trigger-threshold:i?,cpu-throttle-initial:i?," \
    "cpu-throttle-increment:i?,max-cpu-throttle:i?," \
    "x-postcopy-after-rounds:i?,x-postcopy-prepare-passes:i?"

static json_t *qmp_set_params(QmpClient *c, json_t *args, void *opaque,
                              QmpError *err)
{
    DmMigrateQmp *q = opaque;
    MigrationParams p;
    const char *comp;
    char msg[256];

    (void)c;
    migration_get_params(q->mig, &p);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        json_t *v = json_object_get(args, params[i].name);
        json_int_t n;

        if (!v) {
            continue;
        }
        n = json_integer_value(v);
        if (n < 0 || (!params[i].is64 && n > UINT32_MAX)) {
            return qmp_error(err, QMP_ERROR_GENERIC, "Parameter '%s' expects "
                             "a non-negative value", params[i].name);
        }
        if (params[i].is64) {
            *(uint64_t *)((char *)&p + params[i].offset) = (uint64_t)n;
        } else {
            *(uint32_t *)((char *)&p + params[i].offset) = (uint32_t)n;
        }
    }
    comp = json_string_value(json_object_get(args, "multifd-compression"));
    if (comp) {
        if (!strcmp(comp, "none")) {
            p.multifd_compression = MIGRATION_COMPRESSION_NONE;
        } else if (!strcmp(comp, "zstd")) {
            p.multifd_compression = MIGRATION_COMPRESSION_ZSTD;
        } else {
            return qmp_error(err, QMP_ERROR_GENERIC, "Parameter "
                             "'multifd-compression' does not accept value "
                             "'%s' (none or zstd)", comp);
        }
    }
    if (migration_set_params(q->mig, &p, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_query_params(QmpClient *c, json_t *args, void *opaque,
                                QmpError *err)
{
    DmMigrateQmp *q = opaque;
    MigrationParams p;
    json_t *o = json_object();

    (void)c;
    (void)args;
    (void)err;
    migration_get_params(q->mig, &p);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const char *f = (const char *)&p + params[i].offset;
        json_int_t v = params[i].is64 ? (json_int_t)*(const uint64_t *)f
                                      : (json_int_t)*(const uint32_t *)f;

        json_object_set_new(o, params[i].name, json_integer(v));
    }
    json_object_set_new(o, "multifd-compression",
                        json_string(p.multifd_compression ==
                                    MIGRATION_COMPRESSION_ZSTD ? "zstd"
                                                               : "none"));
    return o;
}

/* ---- capabilities -------------------------------------------------------------- */

typedef struct CapDesc {
    const char *name;
    size_t offset;
} CapDesc;

static const CapDesc caps[] = {
    { "multifd", offsetof(MigrationCaps, multifd) },
    { "auto-converge", offsetof(MigrationCaps, auto_converge) },
    { "events", offsetof(MigrationCaps, events) },
    { "pause-before-switchover",
      offsetof(MigrationCaps, pause_before_switchover) },
    { "postcopy-ram", offsetof(MigrationCaps, postcopy_ram) },
    { "postcopy-preempt", offsetof(MigrationCaps, postcopy_preempt) },
};

static json_t *qmp_set_caps(QmpClient *c, json_t *args, void *opaque,
                            QmpError *err)
{
    DmMigrateQmp *q = opaque;
    json_t *list = json_object_get(args, "capabilities"), *e;
    MigrationCaps mc;
    char msg[256];
    size_t i;

    (void)c;
    if (!json_is_array(list)) {
        return qmp_error(err, QMP_ERROR_GENERIC, "Invalid parameter type for "
                         "'capabilities', expected: array");
    }
    migration_get_caps(q->mig, &mc);
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "capability"));
        json_t *state = json_object_get(e, "state");
        size_t k;

        if (!name || !json_is_boolean(state)) {
            return qmp_error(err, QMP_ERROR_GENERIC, "each capability is "
                             "{\"capability\": NAME, \"state\": BOOL}");
        }
        for (k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
            if (!strcmp(caps[k].name, name)) {
                break;
            }
        }
        if (k == sizeof(caps) / sizeof(caps[0])) {
            return qmp_error(err, QMP_ERROR_GENERIC, "Capability '%s' is not "
                             "supported by xenram", name);
        }
        *(bool *)((char *)&mc + caps[k].offset) = json_is_true(state);
    }
    if (migration_set_caps(q->mig, &mc, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_query_caps(QmpClient *c, json_t *args, void *opaque,
                              QmpError *err)
{
    DmMigrateQmp *q = opaque;
    json_t *list = json_array();
    MigrationCaps mc;

    (void)c;
    (void)args;
    (void)err;
    migration_get_caps(q->mig, &mc);
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        json_array_append_new(list, json_pack("{s:s,s:b}", "capability",
                                              caps[k].name, "state",
                                              *(const bool *)((const char *)&mc
                                                  + caps[k].offset)));
    }
    return list;
}

/* ---- progress ---------------------------------------------------------------------- */

json_t *dm_migrate_info_json(Migration *mig)
{
    MigrationInfo i;
    json_t *o, *ram;

    migration_get_info(mig, &i);
    o = json_object();
    if (i.status == MIGRATION_STATUS_NONE) {
        return o;
    }
    json_object_set_new(o, "status",
                        json_string(migration_status_name(i.status)));
    json_object_set_new(o, "total-time", json_integer((json_int_t)i.total_time));
    json_object_set_new(o, "setup-time", json_integer((json_int_t)i.setup_time));
    if (i.status == MIGRATION_STATUS_COMPLETED && !i.incoming) {
        json_object_set_new(o, "downtime", json_integer((json_int_t)i.downtime));
    } else if (!i.incoming) {
        json_object_set_new(o, "expected-downtime",
                            json_integer((json_int_t)i.expected_downtime));
    }
    ram = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I}",
                    "transferred", (json_int_t)i.ram.transferred,
                    "remaining", (json_int_t)i.ram.remaining,
                    "total", (json_int_t)i.ram.total,
                    "duplicate", (json_int_t)i.ram.duplicate,
                    "normal", (json_int_t)i.ram.normal,
                    "normal-bytes", (json_int_t)i.ram.normal_bytes,
                    "dirty-pages-rate", (json_int_t)i.ram.dirty_pages_rate,
                    "mbps", i.ram.mbps,
                    "dirty-sync-count", (json_int_t)i.ram.dirty_sync_count,
                    "pages-per-second", (json_int_t)i.ram.pages_per_second,
                    "multifd-bytes", (json_int_t)i.ram.multifd_bytes);
    if (i.postcopy.used) {
        /* QEMU's place for it: the source's requests taken, the
         * destination's faults asked for. */
        json_object_set_new(ram, "postcopy-requests",
                            json_integer((json_int_t)i.postcopy.requests));
    }
    json_object_set_new(o, "ram", ram);
    if (i.postcopy.used && i.incoming) {
        json_t *hist = json_array(), *vcpus = json_array(), *lat;

        /* QEMU's postcopy-blocktime: ms the guest waited on faults. */
        json_object_set_new(o, "postcopy-blocktime", json_integer(
                                (json_int_t)(i.postcopy.blocktime_ns /
                                             1000000)));
        /* ... and postcopy-vcpu-blocktime: ms each vCPU was paused. */
        for (uint32_t v = 0;
             v < MIN(i.postcopy.nr_vcpus, MIGRATION_MAX_VCPUS); v++) {
            uint64_t ms = i.postcopy.vcpu_blocktime_ns[v] / 1000000;

            json_array_append_new(vcpus, json_integer((json_int_t)ms));
        }
        json_object_set_new(o, "postcopy-vcpu-blocktime", vcpus);
        /* QEMU 10.1's postcopy-latency: the mean, in ns. */
        json_object_set_new(o, "postcopy-latency", json_integer(
                                (json_int_t)(i.postcopy.faults ?
                                             i.postcopy.blocktime_ns /
                                             i.postcopy.faults : 0)));
        /* ... and postcopy-latency-dist: log2 buckets of microseconds. */
        for (unsigned b = 0; b < MIGRATION_LATENCY_BUCKETS; b++) {
            json_array_append_new(hist, json_integer(
                                      (json_int_t)i.postcopy.hist[b]));
        }
        json_object_set_new(o, "postcopy-latency-dist", hist);
        lat = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                        "faults", (json_int_t)i.postcopy.faults,
                        "p50-ns", (json_int_t)i.postcopy.p50_ns,
                        "p99-ns", (json_int_t)i.postcopy.p99_ns,
                        "max-ns", (json_int_t)i.postcopy.max_ns,
                        "discarded", (json_int_t)i.postcopy.discarded,
                        "made-absent", (json_int_t)i.postcopy.made_absent,
                        "made-absent-at-listen",
                        (json_int_t)i.postcopy.made_absent_listen,
                        "prepares", (json_int_t)i.postcopy.prepares,
                        "prepare-ms", (json_int_t)i.postcopy.prepare_ms,
                        "placed", (json_int_t)i.postcopy.placed,
                        "duplicates", (json_int_t)i.postcopy.duplicates,
                        "recoveries", (json_int_t)i.postcopy.recoveries);
        json_object_set_new(o, "x-xenram-postcopy-latency", lat);
    } else if (i.postcopy.used) {
        json_object_set_new(o, "x-xenram-postcopy", json_pack(
                                "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
                                "recoveries",
                                (json_int_t)i.postcopy.recoveries,
                                "requested-pages",
                                (json_int_t)i.postcopy.requested,
                                "background-pages",
                                (json_int_t)i.postcopy.background,
                                "resent-pages",
                                (json_int_t)i.postcopy.resent,
                                "prepares",
                                (json_int_t)i.postcopy.prepares,
                                "prepared-pages",
                                (json_int_t)i.postcopy.prepared_pages,
                                "prepare-ms",
                                (json_int_t)i.postcopy.prepare_ms));
    }
    json_object_set_new(o, "cpu-throttle-percentage",
                        json_integer(i.cpu_throttle_percentage));
    if (i.error_desc[0]) {
        json_object_set_new(o, "error-desc", json_string(i.error_desc));
    }
    return o;
}

static json_t *qmp_query_migrate(QmpClient *c, json_t *args, void *opaque,
                                 QmpError *err)
{
    DmMigrateQmp *q = opaque;

    (void)c;
    (void)args;
    (void)err;
    return dm_migrate_info_json(q->mig);
}

/* ---- driving it ------------------------------------------------------------------------ */

/*
 * A device model that received its guest may send it on, as QEMU lets an
 * incoming VM migrate again once the incoming migration completed.
 */
static bool dm_incoming_done(DmMigrateQmp *q)
{
    MigrationInfo i;

    migration_get_info(q->mig, &i);
    return i.incoming && i.status == MIGRATION_STATUS_COMPLETED;
}

static json_t *qmp_migrate(QmpClient *c, json_t *args, void *opaque,
                           QmpError *err)
{
    DmMigrateQmp *q = opaque;
    const char *uri = json_string_value(json_object_get(args, "uri"));
    /* resume: a paused postcopy goes on over a new link (the source's
     * migration is there already: none of the checks for a new one). */
    bool resume = json_is_true(json_object_get(args, "resume"));
    char msg[512];
    int fd = -1, ret;

    (void)c;
    if (json_is_true(json_object_get(args, "blk")) ||
        json_is_true(json_object_get(args, "inc"))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "block migration is not a "
                         "device model's on Xen: the toolstack moves disks");
    }
    if (!resume && q->incoming && !dm_incoming_done(q)) {
        return qmp_error(err, QMP_ERROR_GENERIC, "this device model is the "
                         "destination of a migration that has not completed");
    }
    if (!resume && q->restricted) {
        return qmp_error(err, QMP_ERROR_GENERIC, "xenram's own migration "
                         "cannot run with -xen-domid-restrict (dm_restrict): "
                         "it owns Xen's log-dirty, pauses the domain and "
                         "reads its HVM context, which restricted Xen "
                         "handles may not do; migrate with xl migrate "
                         "(libxl's stream) or without dm_restrict");
    }
    if (!strncmp(uri, "fd:", 3)) {
        fd = qmp_take_named_fd(q->qmp, uri + 3);
        if (fd < 0) {
            return qmp_error(err, QMP_ERROR_GENERIC, "File descriptor named "
                             "'%s' has not been found (pass it with getfd)",
                             uri + 3);
        }
    }
    ret = resume ? migration_resume(q->mig, uri, fd, msg, sizeof(msg))
                 : migration_start(q->mig, uri, fd, msg, sizeof(msg));
    if (ret) {
        if (fd >= 0) {
            close(fd);
        }
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_migrate_incoming(QmpClient *c, json_t *args, void *opaque,
                                    QmpError *err)
{
    DmMigrateQmp *q = opaque;
    const char *uri = json_string_value(json_object_get(args, "uri"));
    char msg[512];
    int fd = -1;

    (void)c;
    if (!q->deferred) {
        return qmp_error(err, QMP_ERROR_GENERIC, "'-incoming' was not "
                         "specified on the command line (migrate-incoming "
                         "needs -incoming defer), or it was used already");
    }
    if (!strncmp(uri, "fd:", 3)) {
        fd = qmp_take_named_fd(q->qmp, uri + 3);
        if (fd < 0) {
            return qmp_error(err, QMP_ERROR_GENERIC, "File descriptor named "
                             "'%s' has not been found", uri + 3);
        }
    }
    if (migration_incoming_start(q->mig, uri, fd, q->start_paused, msg,
                                 sizeof(msg))) {
        if (fd >= 0) {
            close(fd);
        }
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    q->deferred = false;
    return json_object();
}

static json_t *qmp_migrate_recover(QmpClient *c, json_t *args, void *opaque,
                                   QmpError *err)
{
    DmMigrateQmp *q = opaque;
    char msg[512];

    (void)c;
    if (migration_recover(q->mig, json_string_value(json_object_get(args,
                                                                    "uri")),
                          msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_migrate_pause(QmpClient *c, json_t *args, void *opaque,
                                 QmpError *err)
{
    DmMigrateQmp *q = opaque;
    char msg[256];

    (void)c;
    (void)args;
    if (migration_pause(q->mig, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_migrate_cancel(QmpClient *c, json_t *args, void *opaque,
                                  QmpError *err)
{
    DmMigrateQmp *q = opaque;

    (void)c;
    (void)args;
    (void)err;
    migration_cancel(q->mig);
    return json_object();
}

static json_t *qmp_migrate_start_postcopy(QmpClient *c, json_t *args,
                                         void *opaque, QmpError *err)
{
    DmMigrateQmp *q = opaque;
    char msg[256];

    (void)c;
    (void)args;
    if (q->incoming && !dm_incoming_done(q)) {
        return qmp_error(err, QMP_ERROR_GENERIC, "migrate-start-postcopy is "
                         "the source's: this device model is a migration's "
                         "destination");
    }
    if (migration_start_postcopy(q->mig, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

static json_t *qmp_migrate_continue(QmpClient *c, json_t *args, void *opaque,
                                    QmpError *err)
{
    DmMigrateQmp *q = opaque;
    const char *state = json_string_value(json_object_get(args, "state"));
    char msg[256];

    (void)c;
    if (strcmp(state, "pre-switchover")) {
        return qmp_error(err, QMP_ERROR_GENERIC, "Parameter 'state' expects "
                         "'pre-switchover'");
    }
    if (migration_continue(q->mig, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    return json_object();
}

int dm_migrate_qmp_register(DmMigrateQmp *q)
{
    int ret;

    if ((ret = qmp_register(q->qmp, "migrate",
                            "uri:s,blk:b?,inc:b?,detach:b?,resume:b?",
                            qmp_migrate, q)) ||
        (ret = qmp_register(q->qmp, "migrate-incoming", "uri:s",
                            qmp_migrate_incoming, q)) ||
        (ret = qmp_register(q->qmp, "migrate_cancel", NULL,
                            qmp_migrate_cancel, q)) ||
        (ret = qmp_register(q->qmp, "migrate-recover", "uri:s",
                            qmp_migrate_recover, q)) ||
        (ret = qmp_register(q->qmp, "migrate-pause", NULL,
                            qmp_migrate_pause, q)) ||
        (ret = qmp_register(q->qmp, "migrate-continue", "state:s",
                            qmp_migrate_continue, q)) ||
        (ret = qmp_register(q->qmp, "migrate-start-postcopy", NULL,
                            qmp_migrate_start_postcopy, q)) ||
        (ret = qmp_register(q->qmp, "query-migrate", NULL, qmp_query_migrate,
                            q)) ||
        (ret = qmp_register(q->qmp, "migrate-set-parameters", PARAMS_SCHEMA,
                            qmp_set_params, q)) ||
        (ret = qmp_register(q->qmp, "query-migrate-parameters", NULL,
                            qmp_query_params, q)) ||
        (ret = qmp_register(q->qmp, "migrate-set-capabilities",
                            "capabilities:a", qmp_set_caps, q)) ||
        (ret = qmp_register(q->qmp, "query-migrate-capabilities", NULL,
                            qmp_query_caps, q))) {
        return ret;
    }
    return 0;
}
