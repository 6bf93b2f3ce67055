/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * migration-internal.h - the migration context shared by the files of
 * migration/; not installed.
 */
#ifndef XENRAM_MIGRATION_INTERNAL_H
#define XENRAM_MIGRATION_INTERNAL_H

#include <pthread.h>

#include "migration/channel.h"
#include "migration/migration.h"

#define MIG_MAX_CHANNELS   16
#define MIG_MAX_EVENTS     64
/* A peer that makes no progress for this long is stalled. */
#define MIG_STALL_MS       10000

struct Migration {
    MigrationConfig cfg;
    bool global_dirty_log;      /* xen-set-global-dirty-log is on */
    bool state_saved;           /* saved since the last cont: layout frozen */

    /*
     * xenram's own engine.  @lock guards everything below that the main
     * loop and the migration threads share: parameters, capabilities,
     * info, events, the switchover gate.
     */
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* migrate-continue, cancel */
    MigrationParams params;
    MigrationCaps caps;
    MigrationInfo info;
    MigrationEngineOps ops;
    MigrationEvent events[MIG_MAX_EVENTS];
    unsigned nevents;
    bool active;                /* a migration thread owns the engine */
    bool thread_started;        /* @thread must be joined */
    pthread_t thread;
    bool cancel;                /* atomic: migrate_cancel */
    bool switchover_go;         /* migrate-continue arrived */
    /*
     * migrate-start-postcopy arrived (atomic): read by the sender after
     * each round.  Set before `migrate` it stays for that migration.
     */
    bool start_postcopy;
    /* The channels of the running migration, for cancel (under @lock). */
    MigChannel *chan[1 + MIG_MAX_CHANNELS];
    unsigned nchan;
    /*
     * Postcopy recovery, under @lock: the channels migrate-pause shuts
     * down (after the switch), and what a paused thread waits for (@cond):
     * a recovery asked for (@recover_go with @recover_uri, and on the
     * destination its listening @recover_fd; on the source an fd: channel
     * in @recover_fd), or the process exiting (@exiting, atomic).
     */
    MigChannel *pchan[1 + MIG_MAX_CHANNELS];
    unsigned npchan;
    bool pause_asked;           /* migrate-pause shut them down */
    bool recover_go;
    char recover_uri[300];
    int recover_fd;
    bool exiting;
    /* What the thread was asked to do. */
    char uri[300];
    int fd;                     /* an fd: channel, or -1 */
    int listen_fd;              /* incoming: the listening socket */
    bool start_paused;          /* incoming: -S */
    uint64_t t_start_ns;
};

/* Monotonic nanoseconds. */
uint64_t mig_now_ns(void);

/*
 * Postcopy with postcopy-preempt: the calling thread (a background
 * sender or writer) runs at a lower priority from now on (nice +10,
 * this thread only; Linux's nice is per thread), so that the requested
 * pages' threads get a CPU first.  Best effort: a failure is ignored.
 */
void mig_thread_yield_to_requests(void);

/* Set the status (and queue its event); under no lock. */
void mig_set_status(Migration *m, MigrationStatus s);
/* Queue an event and notify the main loop. */
void mig_event(Migration *m, MigrationEventKind kind, uint64_t value);
/* The final status, and the engine free for the next migration. */
void mig_finish(Migration *m, MigrationStatus s);
/* Fail the migration with a sentence (the first failure wins). */
void mig_set_error(Migration *m, const char *msg);
bool mig_cancelled(Migration *m);
/* Register @c for migrate_cancel (the thread closes it itself). */
void mig_track_channel(Migration *m, MigChannel *c);
void mig_untrack_channels(Migration *m);

/* Register @c for migrate-pause; untrack all before closing them. */
void mig_track_pause(Migration *m, MigChannel *c);
void mig_untrack_pause(Migration *m);

/*
 * Postcopy's link broke (@why): status postcopy-paused, @why in
 * error-desc, and wait for migrate-recover / migrate resume.  Returns
 * true with the recovery's URI in @uri (and *@fd: a listening fd on the
 * destination, an fd: channel or -1 on the source), status
 * postcopy-recover; false when the process exits.
 */
bool mig_postcopy_pause(Migration *m, const char *why, char *uri,
                        size_t urilen, int *fd);
/* A recovery worked: postcopy-active again, the pause's cause cleared. */
void mig_postcopy_resumed(Migration *m);

/*
 * Ask postcopy's notifiers whether this device model can take part in
 * postcopy (the capability being set); under @m->lock.  0 or -errno with
 * the notifier's sentence (recv.c).
 */
int mig_postcopy_probe(Migration *m, char *err, size_t errlen);

/* The sender's and the receiver's threads (send.c, recv.c). */
void *mig_send_thread(void *opaque);
void *mig_recv_thread(void *opaque);

/*
 * A RAM range of the layout: @n guest frames from @gfn are pages
 * [@page, @page + @n) of @block.
 */
typedef struct MigRange {
    RAMBlock *block;
    uint64_t gfn;
    uint64_t page;
    uint64_t n;
} MigRange;

/*
 * The HVM parameters a migration carries (libxc's list in
 * xg_sr_save_x86_hvm.c), and the special frames some of them name: the
 * xenstore and console rings, the ioreq pages, the paging / monitor /
 * sharing rings, the identity page table, the ioreq servers' pages.  They
 * are no RAM block's, yet populated frames of the domain.
 */
#define MIG_MAX_HVM_PARAMS     16
#define MIG_MAX_SPECIAL_FRAMES 64

typedef struct MigHvmParam {
    uint32_t index;
    uint64_t value;
} MigHvmParam;

/* Whether @index is one of the parameters a migration carries. */
bool mig_hvm_param_known(uint32_t index);

/* Read the nonzero ones from the domain; their number, or -errno. */
int mig_hvm_params_get(XenHandles *xh, MigHvmParam *p);

/*
 * The special frames @p[0..@n) name, sorted and unique, outside the RAM
 * ranges @r[0..@nr): their number (at most MIG_MAX_SPECIAL_FRAMES), or
 * -EINVAL when a frame lies beyond what a guest can address.
 */
int mig_special_frames(const MigHvmParam *p, unsigned n, const MigRange *r,
                       size_t nr, uint64_t *out);

/* The frames whose contents the destination starts afresh (as libxc). */
bool mig_hvm_param_cleared(uint32_t index);

/*
 * The RAM ranges of @ds (captured or received), sorted by gfn, checked not
 * to overlap; @blocks resolves each to its RAMBlock (NULL: not looked up).
 * malloc'ed array in *@out, its length in *@n.  0 or -errno with @err.
 */
int mig_ranges_from_layout(Migration *m, const DevState *ds, MigRange **out,
                           size_t *n, char *err, size_t errlen);

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
