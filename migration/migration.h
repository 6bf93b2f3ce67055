/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * migration.h - everything a migration asks of the device model.
 *
 * Today that is xenram's part in `xl migrate` / `xl save` (libxc moves the
 * guest's RAM; docs/migration.md): the global dirty log (forwarding the
 * device model's own writes to Xen's log-dirty), the flush of those reports
 * before the guest is stopped, the device state with the RAM layout and the
 * hot-plugged blocks (saved with xen-save-devices-state, loaded with
 * xen-load-devices-state or -incoming fd:N), and the layout frozen from the
 * moment the state is saved until the guest runs again.  xenram's own RAM
 * migration engine (stream, channels, sender, receiver, postcopy) lands
 * beside these duties in migration/.
 *
 * The device-model process (xen/dm/) only turns QMP commands and the
 * command line into these calls: it owns the run state (running, paused)
 * and the devices, migration/ owns what must be true of memory and of
 * Xen's log at each step.
 *
 * RAM hot-plug is a sibling module: migration/ reaches it only through
 * MigrationHotplugOps, which the device model wires to hotplug/'s calls.
 *
 * Threads: every call here is made from the device model's main loop
 * thread, which must be registered with RCU.  The layout calls take the
 * RAMList mutex and an RCU read section themselves.
 */
#ifndef XENRAM_MIGRATION_MIGRATION_H
#define XENRAM_MIGRATION_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/mapcache.h"
#include "memory/modified.h"
#include "memory/ramblock.h"
#include "memory/region.h"
#include "memory/xen-memory.h"
#include "migration/devstate.h"

/* A hot-plugged slot of the saved state, as MigrationHotplugOps.restore
 * receives it (the same fields as hotplug/'s HotplugRestoreSlot). */
typedef struct MigrationHotplugSlot {
    uint32_t slot;
    const char *idstr;
    uint64_t gpa, size;
} MigrationHotplugSlot;

/*
 * How migration reaches RAM hot-plug.  Every member may be NULL (a device
 * model without hot-plug); @opaque is passed back to each.
 */
typedef struct MigrationHotplugOps {
    /* The xenstore slot of a hot-plugged @block, or DEVSTATE_NO_SLOT. */
    uint32_t (*block_slot)(void *opaque, const RAMBlock *block);
    /*
     * Recreate the @n hot-plugged slots of @slots, each as block @idstr
     * of @size bytes mapped at @gpa, without populating them (their frames
     * came with the migration): all of them or, with -errno and a sentence
     * in @err, none.
     */
    int (*restore)(void *opaque, const MigrationHotplugSlot *slots,
                   unsigned int n, char *err, size_t errlen);
    /*
     * Take the slots of the last successful @restore out again, their
     * xenstore answers too, releasing no frame: for a failure after the
     * layout was applied (the incoming guest is not taken).
     */
    void (*restore_undo)(void *opaque);
    /* Refuse new requests, saying @reason; NULL accepts them again. */
    void (*set_blocked)(void *opaque, const char *reason);
    /* The incoming state is loaded: slots are populated from now on. */
    void (*set_incoming)(void *opaque, bool incoming);
    void *opaque;
} MigrationHotplugOps;

typedef struct MigrationConfig {
    XenHandles *xh;
    RAMList *ram;
    AddressSpace *as;           /* guest-physical memory */
    MapCache *mc;
    XenMemory *xm;
    ModifiedMemory *mm;
    /*
     * Forward the device model's writes to Xen while the global dirty log
     * is on (false: -no-modified-memory, for tests that show why it is
     * needed).  Reports already queued are flushed in any case.
     */
    bool forward_writes;
    MigrationHotplugOps hotplug;
} MigrationConfig;

typedef struct Migration Migration;

/*
 * A migration context over the device model's memory.  The members of
 * @cfg must outlive it.  0, or -ENOMEM.
 */
int migration_new(const MigrationConfig *cfg, Migration **out);
void migration_free(Migration *m);

/* Whether xen-set-global-dirty-log is on. */
bool migration_global_dirty_log(const Migration *m);

/* ---- the xl migrate duties (migration/xl.c) ------------------------------- */

/*
 * `stop`: every write the device model made must be in Xen's log-dirty
 * before libxc's last round reads it.  The caller quiesces its devices
 * first, so that no write follows the flush.  0, or -errno with the
 * sentence for the QMP client in @err (the caller resumes its devices).
 */
int migration_xl_stop(Migration *m, char *err, size_t errlen);

/*
 * xen-set-global-dirty-log: forwarding of the device model's writes on or
 * off, and hot-plug refused while a migration runs.  0, or -errno with a
 * sentence in @err (nothing changed then).
 */
int migration_xl_set_global_dirty_log(Migration *m, bool enable, char *err,
                                      size_t errlen);

/* `cont`: the guest runs again, so its layout may change again. */
void migration_xl_resumed(Migration *m);

/*
 * xen-save-devices-state into @fd (@name only names it in messages):
 * flush the reported writes, capture the layout, write and sync it, then
 * freeze the layout until migration_xl_resumed().  0, or -errno with a
 * sentence in @err.
 */
int migration_xl_save(Migration *m, int fd, const char *name, char *err,
                      size_t errlen);

/*
 * xen-load-devices-state from @fd: read the whole state, check it against
 * this device model's layout, then apply it.  0, or -errno with a sentence
 * in @err.
 */
int migration_xl_load(Migration *m, int fd, char *err, size_t errlen);

/*
 * -incoming fd:N, first half, before the memory exists: read the device
 * state from @fd into @ds (freed by the caller with devstate_free()) and
 * return in *@ram_bytes the guest RAM the source's "xen.ram" block maps
 * (0 if it has none).  0, or -errno with a sentence in @err.
 */
int migration_incoming_read(int fd, DevState *ds, uint64_t *ram_bytes,
                            char *err, size_t errlen);

/*
 * -incoming fd:N, second half: apply @ds to the memory set up for it, map
 * the frames that arrived in place of the dummy mappings, and leave the
 * incoming mode (the mapcache, the Xen listener and hot-plug populate
 * again).  0, or -errno with a sentence in @err.
 */
int migration_incoming_apply(Migration *m, const DevState *ds, char *err,
                             size_t errlen);

/* ---- the RAM layout (migration/layout.c) ----------------------------------- */

/*
 * The device state of the current layout: every RAM block, where it is
 * mapped in guest-physical space (at most DEVSTATE_MAX_RANGES ranges a
 * block), its hot-plug slot, and the dirty-log state.  Takes the RAMList
 * mutex.  0, or -ENOMEM; free @ds with devstate_free().
 */
int migration_layout_capture(Migration *m, DevState *ds);

/*
 * Check that @ds fits this device model's layout (the same blocks, each
 * at the same ram_addr with the same size and flags, mapped at exactly the
 * same guest-physical ranges; hot-plugged ones not here yet as one whole
 * mapping each), then recreate the hot-plugged blocks where they were, in
 * one all-or-nothing call of MigrationHotplugOps.restore.  Everything is
 * checked before anything changes.  0, or -errno with a sentence in @err.
 */
int migration_layout_apply(Migration *m, const DevState *ds, char *err,
                           size_t errlen);

/* ---- xenram's own engine: parameters and capabilities (params.c) ---------- */

/*
 * QEMU's names and meanings (docs/qmp.md): query-migrate-parameters and
 * migrate-set-parameters read and write these.  Sizes in bytes, times in
 * milliseconds, percentages 0-100.
 */
typedef struct MigrationParams {
    uint64_t max_bandwidth;             /* bytes/s; 0: no limit */
    uint64_t downtime_limit;            /* ms, default 300 */
    uint32_t multifd_channels;          /* data channels, default 2 */
    uint32_t multifd_compression;       /* MIGRATION_COMPRESSION_* */
    uint32_t multifd_zstd_level;        /* 1..20, default 1 */
    uint32_t throttle_trigger_threshold;/* % dirtied of sent, default 50 */
    uint32_t cpu_throttle_initial;      /* %, default 20 */
    uint32_t cpu_throttle_increment;    /* %, default 10 */
    uint32_t max_cpu_throttle;          /* %, default 99 */
    /*
     * xenram's own (x-postcopy-after-rounds): with postcopy-ram, switch
     * to postcopy when round N ends, whatever convergence says before
     * (0: only migrate-start-postcopy switches).  A toolstack that polls
     * query-migrate and sends migrate-start-postcopy cannot hit round N:
     * a short round may converge before the command arrives.
     */
    uint32_t x_postcopy_after_rounds;   /* 0 or 1 to 1000, default 0 */
    /*
     * xenram's own (x-postcopy-prepare-passes): at the switch, at most N
     * POSTCOPY_PREPAREs while the guest still runs on the source, each
     * paging out at the destination what the one before left (the pages
     * not sent, then those dirtied since), so that what is left for the
     * paused switch fits the downtime (docs/postcopy.md).  0: none, the
     * whole paging out with the guest paused.
     */
    uint32_t x_postcopy_prepare_passes; /* 0 to 10, default 5 */
} MigrationParams;

#define MIGRATION_COMPRESSION_NONE 0
#define MIGRATION_COMPRESSION_ZSTD 1

typedef struct MigrationCaps {
    bool multifd;               /* RAM on multifd-channels data channels */
    bool auto_converge;         /* throttle a guest that outruns the link */
    bool events;                /* MIGRATION / MIGRATION_PASS events */
    bool pause_before_switchover;
    /*
     * postcopy-ram: the source may switch to postcopy (after
     * migrate-start-postcopy): the guest runs on the destination while
     * the rest of its RAM follows, each page it touches fetched first.
     * postcopy-preempt: pages the destination asks for travel on a data
     * channel of their own, never behind background pages (needs
     * multifd).  docs/postcopy.md.
     */
    bool postcopy_ram;
    bool postcopy_preempt;
} MigrationCaps;

typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_PRE_SWITCHOVER,
    MIGRATION_STATUS_DEVICE,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    /* After the switch to postcopy: the guest runs on the destination. */
    MIGRATION_STATUS_POSTCOPY_ACTIVE,
    /*
     * Postcopy's link broke: both sides wait for a new one (the guest
     * runs on the destination, its vCPUs wait on the pages not there).
     */
    MIGRATION_STATUS_POSTCOPY_PAUSED,
    /* A new link is being set up (migrate-recover, migrate resume). */
    MIGRATION_STATUS_POSTCOPY_RECOVER,
} MigrationStatus;

/* QEMU's name of @s ("none", "setup", "active", "pre-switchover", ...). */
const char *migration_status_name(MigrationStatus s);

/* The defaults QEMU documents (max-bandwidth aside: no limit here). */
void migration_params_default(MigrationParams *p);

/*
 * Check @p; 0, or -EINVAL with a sentence naming the parameter and its
 * range in @err.
 */
int migration_params_check(const MigrationParams *p, char *err,
                           size_t errlen);

/*
 * Replace the parameters / capabilities (refused with -EBUSY while a
 * migration runs, and as migration_params_check() says).  0 or -errno
 * with @err; nothing changes on failure.
 */
int migration_set_params(Migration *m, const MigrationParams *p, char *err,
                         size_t errlen);
void migration_get_params(Migration *m, MigrationParams *p);
int migration_set_caps(Migration *m, const MigrationCaps *c, char *err,
                       size_t errlen);
void migration_get_caps(Migration *m, MigrationCaps *c);

/* ---- xenram's own engine: progress (query-migrate) --------------------------- */

typedef struct MigrationRamInfo {
    uint64_t transferred;       /* bytes on every channel */
    uint64_t remaining;         /* bytes still dirty */
    uint64_t total;             /* bytes of guest RAM */
    uint64_t duplicate;         /* zero pages (sent as their number only) */
    uint64_t normal;            /* pages sent with their data */
    uint64_t normal_bytes;
    uint64_t dirty_pages_rate;  /* pages/s dirtied in the last round */
    double mbps;                /* link rate, megabits/s */
    uint64_t dirty_sync_count;  /* rounds begun */
    uint64_t pages_per_second;
    uint64_t multifd_bytes;     /* bytes on the data channels */
} MigrationRamInfo;

/* Fault service times, log2 buckets of microseconds: [2^i, 2^(i+1)). */
#define MIGRATION_LATENCY_BUCKETS 24

/*
 * The vCPUs whose blocktime is reported: Xen 4.17's HVM_MAX_VCPUS, as
 * many as an HVM guest can have (a fixed array, since MigrationInfo is
 * copied by value).
 */
#define MIGRATION_MAX_VCPUS 128

/*
 * Postcopy's figures.  Source: @requests PAGE_REQUESTs taken, @requested
 * pages sent because they were asked for.  Destination: @requests faults
 * turned into PAGE_REQUESTs, their service times (fault to page loaded),
 * what DISCARD and LISTEN did, pages placed and duplicates, and each
 * vCPU's time paused on pages not there yet.
 */
typedef struct MigrationPostcopyInfo {
    bool used;                  /* the migration switched to postcopy */
    uint64_t requests;
    uint64_t requested;         /* source */
    uint64_t background;        /* source: pages sent after the switch */
    uint64_t resent;            /* source: asked for while in flight, sent again */
    uint64_t recoveries;        /* postcopy-paused, then recovered */
    uint64_t discarded, made_absent, placed, duplicates;
    /*
     * The switch's paging out, done ahead by PREPAREs while the source's
     * guest runs (docs/postcopy.md).  Destination: pages made absent at
     * LISTEN (the guest paused on both sides; the rest of @made_absent
     * went before), PREPAREs done and their time.  Source: PREPAREs sent,
     * the pages their DISCARDs carried, the time from the first to the
     * guest's pause.
     */
    uint64_t made_absent_listen;
    uint64_t prepares, prepared_pages, prepare_ms;
    uint64_t blocktime_ns;      /* sum of the service times */
    uint64_t faults;            /* service times recorded */
    uint64_t p50_ns, p99_ns, max_ns;
    uint64_t hist[MIGRATION_LATENCY_BUCKETS];
    /*
     * Destination: QEMU's postcopy-vcpu-blocktime, vCPU i's waits that
     * ended, fault to place (ns), for i below @nr_vcpus (the guest's, at
     * most MIGRATION_MAX_VCPUS).  A frame two vCPUs wait for is charged
     * to both, so the sum may pass @blocktime_ns, which counts it once.
     */
    uint32_t nr_vcpus;
    uint64_t vcpu_blocktime_ns[MIGRATION_MAX_VCPUS];
} MigrationPostcopyInfo;

typedef struct MigrationInfo {
    MigrationStatus status;
    bool incoming;              /* this side receives */
    uint64_t total_time;        /* ms since setup (until completion) */
    uint64_t setup_time;        /* ms */
    uint64_t downtime;          /* ms, source paused to destination running */
    uint64_t expected_downtime; /* ms, at the current rate */
    uint32_t cpu_throttle_percentage;
    MigrationRamInfo ram;
    MigrationPostcopyInfo postcopy;
    char error_desc[512];
} MigrationInfo;

void migration_get_info(Migration *m, MigrationInfo *info);

/* ---- xenram's own engine: driving it --------------------------------------------- */

/*
 * What the engine asks of the device-model process.  Called from the
 * migration threads; @opaque is passed back.
 */
typedef struct MigrationEngineOps {
    /* Quiesce the devices: no DMA write may follow (switchover). */
    void (*stop_devices)(void *opaque);
    /* Resume them (a failed or cancelled switchover, the destination). */
    void (*resume_devices)(void *opaque);
    /*
     * Something changed (status, pass, completion): the main loop should
     * call migration_take_events().  Must be async-signal-safe in spirit:
     * write an eventfd, take no lock the main loop holds.
     */
    void (*notify)(void *opaque);
    void *opaque;
} MigrationEngineOps;

void migration_set_engine_ops(Migration *m, const MigrationEngineOps *ops);

/* What happened since the last call, for QMP events. */
typedef enum MigrationEventKind {
    MIGRATION_EVENT_STATUS,     /* value: the new MigrationStatus */
    MIGRATION_EVENT_PASS,       /* value: the round that begins */
    MIGRATION_EVENT_STOP,       /* the engine paused the guest */
    MIGRATION_EVENT_RESUME,     /* the guest runs (again) */
} MigrationEventKind;

typedef struct MigrationEvent {
    MigrationEventKind kind;
    uint64_t value;
} MigrationEvent;

/* Up to @max events into @ev; returns how many. */
unsigned migration_take_events(Migration *m, MigrationEvent *ev,
                               unsigned max);

/*
 * QMP `migrate`: send this guest's RAM and state to the xenram listening
 * at @uri (tcp:, unix:) or over @fd (an fd: URI, resolved by the caller;
 * -1 otherwise), from a migration thread.  Refused (-EBUSY) while a
 * migration runs or while `xl migrate` owns log-dirty.  0 once started
 * (progress through migration_get_info()), or -errno with @err.
 */
int migration_start(Migration *m, const char *uri, int fd, char *err,
                    size_t errlen);

/*
 * QMP `migrate-start-postcopy`: switch to postcopy now, the round that
 * runs cut short (before `migrate`: straight away); with
 * x-postcopy-after-rounds, when that round ends.  Refused (-EINVAL, with
 * QEMU's sentences) without the postcopy-ram capability, on a
 * destination, or once the switch (or the end) is past.
 */
int migration_start_postcopy(Migration *m, char *err, size_t errlen);

/*
 * Postcopy recovery (docs/postcopy.md, "Recovery"), QEMU's commands.
 * migration_pause (`migrate-pause`, either side, postcopy-active only):
 * shut the migration's connections down, as a broken link would; both
 * sides go to postcopy-paused.  migration_recover (`migrate-recover`,
 * the destination, postcopy-paused only): listen on @uri for the source's
 * new connections.  migration_resume (`migrate` with resume, the source,
 * postcopy-paused only): connect to @uri (or use @fd, -1 otherwise) and
 * go on from what the destination says it has.  Each returns 0 once
 * asked, or -EINVAL / -errno with QEMU's kind of sentence in @err.
 */
int migration_pause(Migration *m, char *err, size_t errlen);
int migration_recover(Migration *m, const char *uri, char *err,
                      size_t errlen);
int migration_resume(Migration *m, const char *uri, int fd, char *err,
                     size_t errlen);

/* QMP `migrate_cancel`: the guest keeps running on the source. */
void migration_cancel(Migration *m);

/* QMP `migrate-continue` after pause-before-switchover. */
int migration_continue(Migration *m, char *err, size_t errlen);

/*
 * -incoming tcp:|unix: / migrate-incoming: listen on @uri (or take @fd)
 * and receive a guest from a migration thread.  @start_paused: leave the
 * domain paused after the switchover (-S).  0 once listening, or -errno
 * with @err.
 */
int migration_incoming_start(Migration *m, const char *uri, int fd,
                             bool start_paused, char *err, size_t errlen);

/* Wait for the migration threads to end (at exit). */
void migration_join(Migration *m);

#endif /* XENRAM_MIGRATION_MIGRATION_H */
