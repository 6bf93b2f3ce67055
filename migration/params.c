/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * params.c - the engine's parameters, capabilities, status and progress,
 * and what the main loop and the migration threads share (migration.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "migration/migration-internal.h"
#include "xen/xen.h"

#include <xen/hvm/params.h>

uint64_t mig_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mig_thread_yield_to_requests(void)
{
    (void)!setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

const char *migration_status_name(MigrationStatus s)
{
    static const char *const names[] = {
        [MIGRATION_STATUS_NONE] = "none",
        [MIGRATION_STATUS_SETUP] = "setup",
        [MIGRATION_STATUS_ACTIVE] = "active",
        [MIGRATION_STATUS_PRE_SWITCHOVER] = "pre-switchover",
        [MIGRATION_STATUS_DEVICE] = "device",
        [MIGRATION_STATUS_COMPLETED] = "completed",
        [MIGRATION_STATUS_FAILED] = "failed",
        [MIGRATION_STATUS_CANCELLING] = "cancelling",
        [MIGRATION_STATUS_CANCELLED] = "cancelled",
        [MIGRATION_STATUS_POSTCOPY_ACTIVE] = "postcopy-active",
        [MIGRATION_STATUS_POSTCOPY_PAUSED] = "postcopy-paused",
        [MIGRATION_STATUS_POSTCOPY_RECOVER] = "postcopy-recover",
    };

    return s <= MIGRATION_STATUS_POSTCOPY_RECOVER ? names[s] : "none";
}

void migration_params_default(MigrationParams *p)
{
    *p = (MigrationParams) {
        .max_bandwidth = 0, .downtime_limit = 300, .multifd_channels = 2,
        .multifd_compression = MIGRATION_COMPRESSION_NONE,
        .multifd_zstd_level = 1, .throttle_trigger_threshold = 50,
        .cpu_throttle_initial = 20, .cpu_throttle_increment = 10,
        .max_cpu_throttle = 99, .x_postcopy_prepare_passes = 5,
    };
}

int migration_params_check(const MigrationParams *p, char *err,
                           size_t errlen)
{
    const char *bad = NULL;
    char range[64] = "";

    if (p->downtime_limit > 2000000) {
        bad = "downtime-limit";
        snprintf(range, sizeof(range), "0 to 2000000 ms");
    } else if (p->multifd_channels < 1 ||
               p->multifd_channels > MIG_MAX_CHANNELS) {
        bad = "multifd-channels";
        snprintf(range, sizeof(range), "1 to %d", MIG_MAX_CHANNELS);
    } else if (p->multifd_compression > MIGRATION_COMPRESSION_ZSTD) {
        bad = "multifd-compression";
        snprintf(range, sizeof(range), "none or zstd");
    } else if (p->multifd_zstd_level < 1 || p->multifd_zstd_level > 20) {
        bad = "multifd-zstd-level";
        snprintf(range, sizeof(range), "1 to 20");
    } else if (p->throttle_trigger_threshold < 1 ||
               p->throttle_trigger_threshold > 100) {
        bad = "throttle-trigger-threshold";
        snprintf(range, sizeof(range), "1 to 100");
    } else if (p->cpu_throttle_initial < 1 || p->cpu_throttle_initial > 99) {
        bad = "cpu-throttle-initial";
        snprintf(range, sizeof(range), "1 to 99");
    } else if (p->cpu_throttle_increment < 1 ||
               p->cpu_throttle_increment > 99) {
        bad = "cpu-throttle-increment";
        snprintf(range, sizeof(range), "1 to 99");
    } else if (p->max_cpu_throttle < 1 || p->max_cpu_throttle > 99) {
        bad = "max-cpu-throttle";
        snprintf(range, sizeof(range), "1 to 99");
    } else if (p->x_postcopy_after_rounds > 1000) {
        bad = "x-postcopy-after-rounds";
        snprintf(range, sizeof(range), "0 (off) to 1000");
    } else if (p->x_postcopy_prepare_passes > 10) {
        bad = "x-postcopy-prepare-passes";
        snprintf(range, sizeof(range), "0 (none) to 10");
    }
    if (bad) {
        snprintf(err, errlen, "Parameter '%s' expects %s", bad, range);
        return -EINVAL;
    }
    return 0;
}

int migration_set_params(Migration *m, const MigrationParams *p, char *err,
                         size_t errlen)
{
    int ret = migration_params_check(p, err, errlen);

    if (ret) {
        return ret;
    }
    pthread_mutex_lock(&m->lock);
    if (m->active) {
        snprintf(err, errlen, "a migration is in progress: set parameters "
                 "before it starts");
        ret = -EBUSY;
    } else {
        m->params = *p;
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

void migration_get_params(Migration *m, MigrationParams *p)
{
    pthread_mutex_lock(&m->lock);
    *p = m->params;
    pthread_mutex_unlock(&m->lock);
}

int migration_set_caps(Migration *m, const MigrationCaps *c, char *err,
                       size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (m->active) {
        snprintf(err, errlen, "a migration is in progress: set capabilities "
                 "before it starts");
        ret = -EBUSY;
    } else if (c->postcopy_preempt && !c->postcopy_ram) {
        snprintf(err, errlen, "Postcopy preempt requires postcopy-ram");
        ret = -EINVAL;
    } else if (c->postcopy_ram && m->global_dirty_log) {
        snprintf(err, errlen, "capability 'postcopy-ram' needs xenram's own "
                 "migration engine, and an xl migrate of this guest is in "
                 "progress (the global dirty log is on): libxc's stream "
                 "has no postcopy");
        ret = -EBUSY;
    } else if (c->postcopy_ram && !m->caps.postcopy_ram &&
               (ret = mig_postcopy_probe(m, err, errlen))) {
        /* The sentence is the notifier's. */
    } else {
        m->caps = *c;
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

int migration_start_postcopy(Migration *m, char *err, size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (!m->caps.postcopy_ram) {
        snprintf(err, errlen, "Enable postcopy with migrate_set_capability "
                 "before the start of migration");
        ret = -EINVAL;
    } else if (m->active && m->info.incoming) {
        snprintf(err, errlen, "migrate-start-postcopy is the source's: this "
                 "device model is a migration's destination");
        ret = -EINVAL;
    } else if (m->active && m->info.status == MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        snprintf(err, errlen, "Postcopy already started");
        ret = -EINVAL;
    } else if (m->active && m->info.status != MIGRATION_STATUS_SETUP &&
               m->info.status != MIGRATION_STATUS_ACTIVE) {
        snprintf(err, errlen, "the migration is in state '%s', past the "
                 "point where it can switch to postcopy",
                 migration_status_name(m->info.status));
        ret = -EINVAL;
    } else {
        /* Before `migrate`: QEMU's meaning, postcopy after round 1. */
        __atomic_store_n(&m->start_postcopy, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

void migration_get_caps(Migration *m, MigrationCaps *c)
{
    pthread_mutex_lock(&m->lock);
    *c = m->caps;
    pthread_mutex_unlock(&m->lock);
}

void migration_get_info(Migration *m, MigrationInfo *info)
{
    pthread_mutex_lock(&m->lock);
    *info = m->info;
    if (m->active && m->t_start_ns) {
        info->total_time = (mig_now_ns() - m->t_start_ns) / 1000000;
    }
    pthread_mutex_unlock(&m->lock);
}

void migration_set_engine_ops(Migration *m, const MigrationEngineOps *ops)
{
    pthread_mutex_lock(&m->lock);
    m->ops = *ops;
    pthread_mutex_unlock(&m->lock);
}

static void mig_notify(Migration *m)
{
    if (m->ops.notify) {
        m->ops.notify(m->ops.opaque);
    }
}

void mig_event(Migration *m, MigrationEventKind kind, uint64_t value)
{
    pthread_mutex_lock(&m->lock);
    if (m->nevents < MIG_MAX_EVENTS) {
        m->events[m->nevents++] = (MigrationEvent) { kind, value };
    }
    pthread_mutex_unlock(&m->lock);
    mig_notify(m);
}

void mig_set_status(Migration *m, MigrationStatus s)
{
    pthread_mutex_lock(&m->lock);
    m->info.status = s;
    pthread_mutex_unlock(&m->lock);
    mig_event(m, MIGRATION_EVENT_STATUS, s);
}

void mig_finish(Migration *m, MigrationStatus s)
{
    /* One step: no new migration before the final status is visible. */
    pthread_mutex_lock(&m->lock);
    m->info.status = s;
    m->active = false;
    /* A migrate-start-postcopy belongs to the migration it was for. */
    __atomic_store_n(&m->start_postcopy, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&m->lock);
    mig_event(m, MIGRATION_EVENT_STATUS, s);
}

void mig_set_error(Migration *m, const char *msg)
{
    pthread_mutex_lock(&m->lock);
    if (!m->info.error_desc[0]) {
        snprintf(m->info.error_desc, sizeof(m->info.error_desc), "%s", msg);
    }
    pthread_mutex_unlock(&m->lock);
}

bool mig_cancelled(Migration *m)
{
    return __atomic_load_n(&m->cancel, __ATOMIC_ACQUIRE);
}

unsigned migration_take_events(Migration *m, MigrationEvent *ev, unsigned max)
{
    unsigned n;

    pthread_mutex_lock(&m->lock);
    n = m->nevents < max ? m->nevents : max;
    memcpy(ev, m->events, n * sizeof(*ev));
    memmove(m->events, m->events + n, (m->nevents - n) * sizeof(*ev));
    m->nevents -= n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void mig_track_channel(Migration *m, MigChannel *c)
{
    pthread_mutex_lock(&m->lock);
    if (m->nchan < sizeof(m->chan) / sizeof(m->chan[0])) {
        m->chan[m->nchan++] = c;
    }
    if (mig_cancelled(m)) {
        mig_channel_cancel(c);
    }
    pthread_mutex_unlock(&m->lock);
}

void mig_untrack_channels(Migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->nchan = 0;
    pthread_mutex_unlock(&m->lock);
}

void mig_track_pause(Migration *m, MigChannel *c)
{
    pthread_mutex_lock(&m->lock);
    if (m->npchan < sizeof(m->pchan) / sizeof(m->pchan[0])) {
        m->pchan[m->npchan++] = c;
    }
    pthread_mutex_unlock(&m->lock);
}

void mig_untrack_pause(Migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->npchan = 0;
    pthread_mutex_unlock(&m->lock);
}

bool mig_postcopy_pause(Migration *m, const char *why, char *uri,
                        size_t urilen, int *fd)
{
    bool go;

    pthread_mutex_lock(&m->lock);
    snprintf(m->info.error_desc, sizeof(m->info.error_desc), "%s%s",
             m->pause_asked ? "paused by migrate-pause: " : "", why);
    m->pause_asked = false;
    m->recover_go = false;
    pthread_mutex_unlock(&m->lock);
    fprintf(stderr, "xenram: postcopy paused: %s\n", why);
    mig_set_status(m, MIGRATION_STATUS_POSTCOPY_PAUSED);
    pthread_mutex_lock(&m->lock);
    while (!m->recover_go && !__atomic_load_n(&m->exiting, __ATOMIC_ACQUIRE)) {
        pthread_cond_wait(&m->cond, &m->lock);
    }
    go = m->recover_go;
    if (go) {
        snprintf(uri, urilen, "%s", m->recover_uri);
        *fd = m->recover_fd;
        m->recover_fd = -1;
        m->recover_go = false;
    }
    pthread_mutex_unlock(&m->lock);
    return go;
}

void mig_postcopy_resumed(Migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->info.error_desc[0] = '\0';
    pthread_mutex_unlock(&m->lock);
    mig_set_status(m, MIGRATION_STATUS_POSTCOPY_ACTIVE);
}

int migration_pause(Migration *m, char *err, size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (m->info.status != MIGRATION_STATUS_POSTCOPY_ACTIVE || !m->npchan) {
        snprintf(err, errlen, "migrate-pause is only supported by postcopy "
                 "once the guest runs on the destination (status is %s)",
                 migration_status_name(m->info.status));
        ret = -EINVAL;
    } else {
        m->pause_asked = true;
        for (unsigned i = 0; i < m->npchan; i++) {
            mig_channel_cancel(m->pchan[i]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

/* Hand a paused migration thread its recovery.  Under no lock. */
static int mig_recover_go(Migration *m, bool incoming, const char *uri,
                          int fd, char *err, size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (!m->active || m->info.incoming != incoming ||
        m->info.status != MIGRATION_STATUS_POSTCOPY_PAUSED ||
        m->recover_go) {
        snprintf(err, errlen, "%s: no postcopy migration is paused here "
                 "(status is %s%s)", incoming ? "migrate-recover" :
                 "migrate with resume", migration_status_name(m->info.status),
                 m->active && m->info.incoming != incoming ?
                 incoming ? ", and this side is the source" :
                 ", and this side is the destination" : "");
        ret = -EINVAL;
    } else {
        snprintf(m->recover_uri, sizeof(m->recover_uri), "%s", uri);
        m->recover_fd = fd;
        m->recover_go = true;
        /* Seen as soon as the command returns, as QEMU's -recover-setup. */
        m->info.status = MIGRATION_STATUS_POSTCOPY_RECOVER;
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
    if (!ret) {
        mig_event(m, MIGRATION_EVENT_STATUS, MIGRATION_STATUS_POSTCOPY_RECOVER);
    }
    return ret;
}

int migration_recover(Migration *m, const char *uri, char *err,
                      size_t errlen)
{
    MigAddress a;
    int ret, lfd;

    if ((ret = mig_address_parse(uri, &a, err, errlen))) {
        return ret;
    }
    if (a.kind == MIG_ADDR_FD) {
        snprintf(err, errlen, "migrate-recover listens for the source's "
                 "new connections: give it a tcp: or unix: URI");
        return -EINVAL;
    }
    pthread_mutex_lock(&m->lock);
    ret = m->active && m->info.incoming &&
          m->info.status == MIGRATION_STATUS_POSTCOPY_PAUSED ? 0 : -EINVAL;
    pthread_mutex_unlock(&m->lock);
    if (ret) {
        /* Said by mig_recover_go(), without binding anything first. */
        return mig_recover_go(m, true, uri, -1, err, errlen);
    }
    lfd = mig_listen(&a, err, errlen);
    if (lfd < 0) {
        return lfd;
    }
    ret = mig_recover_go(m, true, uri, lfd, err, errlen);
    if (ret) {
        close(lfd);
    }
    return ret;
}

int migration_resume(Migration *m, const char *uri, int fd, char *err,
                     size_t errlen)
{
    MigAddress a;
    int ret;

    if (fd < 0 && (ret = mig_address_parse(uri, &a, err, errlen))) {
        return ret;
    }
    if (fd < 0 && a.kind == MIG_ADDR_FD) {
        snprintf(err, errlen, "no fd named '%s' (pass one with getfd first)",
                 a.fdname);
        return -ENOENT;
    }
    return mig_recover_go(m, false, uri, fd, err, errlen);
}

void migration_cancel(Migration *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->active && !mig_cancelled(m)) {
        __atomic_store_n(&m->cancel, true, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < m->nchan; i++) {
            mig_channel_cancel(m->chan[i]);
        }
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
}

int migration_continue(Migration *m, char *err, size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (m->info.status != MIGRATION_STATUS_PRE_SWITCHOVER) {
        snprintf(err, errlen, "Migration not in expected state: %s",
                 migration_status_name(m->info.status));
        ret = -EINVAL;
    } else {
        m->switchover_go = true;
        pthread_cond_broadcast(&m->cond);
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

/* Claim the engine for a new migration thread.  Under no lock. */
static int mig_claim(Migration *m, const char *uri, int fd, char *err,
                     size_t errlen)
{
    int ret = 0;

    pthread_mutex_lock(&m->lock);
    if (m->active) {
        snprintf(err, errlen, "a migration is already in progress");
        ret = -EBUSY;
    } else if (m->global_dirty_log) {
        snprintf(err, errlen, "an xl migrate of this guest is in progress "
                 "(the global dirty log is on): xenram's own migration "
                 "cannot run beside it");
        ret = -EBUSY;
    } else {
        m->active = true;
        __atomic_store_n(&m->cancel, false, __ATOMIC_RELEASE);
        m->switchover_go = false;
        m->nevents = 0;
        m->nchan = 0;
        memset(&m->info, 0, sizeof(m->info));
        snprintf(m->uri, sizeof(m->uri), "%s", uri ? uri : "");
        m->fd = fd;
        m->t_start_ns = mig_now_ns();
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

static int mig_spawn(Migration *m, void *(*fn)(void *), char *err,
                     size_t errlen)
{
    int ret;

    if (m->thread_started) {
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    ret = -pthread_create(&m->thread, NULL, fn, m);
    if (ret) {
        snprintf(err, errlen, "cannot start the migration thread: %s",
                 strerror(-ret));
        pthread_mutex_lock(&m->lock);
        m->active = false;
        pthread_mutex_unlock(&m->lock);
        return ret;
    }
    m->thread_started = true;
    return 0;
}

int migration_start(Migration *m, const char *uri, int fd, char *err,
                    size_t errlen)
{
    MigAddress a;
    int ret;

    if (fd < 0 && (ret = mig_address_parse(uri, &a, err, errlen))) {
        return ret;
    }
    if (fd < 0 && a.kind == MIG_ADDR_FD) {
        snprintf(err, errlen, "no fd named '%s' (pass one with getfd first)",
                 a.fdname);
        return -ENOENT;
    }
    if (m->caps.postcopy_preempt && !m->caps.multifd) {
        snprintf(err, errlen, "postcopy-preempt puts requested pages on a "
                 "data channel of their own, which needs the multifd "
                 "capability: turn it on, or postcopy-preempt off");
        return -EINVAL;
    }
    if (fd >= 0 && m->caps.multifd) {
        snprintf(err, errlen, "an fd: migration carries one channel: turn "
                 "the multifd capability off, or use tcp: or unix:");
        return -EINVAL;
    }
    ret = mig_claim(m, uri, fd, err, errlen);
    if (ret) {
        return ret;
    }
    m->info.status = MIGRATION_STATUS_SETUP;
    return mig_spawn(m, mig_send_thread, err, errlen);
}

int migration_incoming_start(Migration *m, const char *uri, int fd,
                             bool start_paused, char *err, size_t errlen)
{
    MigAddress a;
    int ret, lfd = -1;

    if (fd < 0) {
        if ((ret = mig_address_parse(uri, &a, err, errlen))) {
            return ret;
        }
        if (a.kind == MIG_ADDR_FD) {
            snprintf(err, errlen, "no fd named '%s'", a.fdname);
            return -ENOENT;
        }
        lfd = mig_listen(&a, err, errlen);
        if (lfd < 0) {
            return lfd;
        }
    }
    ret = mig_claim(m, uri, fd, err, errlen);
    if (ret) {
        if (lfd >= 0) {
            close(lfd);
        }
        return ret;
    }
    m->listen_fd = lfd;
    m->start_paused = start_paused;
    m->info.incoming = true;
    m->info.status = MIGRATION_STATUS_SETUP;
    return mig_spawn(m, mig_recv_thread, err, errlen);
}

void migration_join(Migration *m)
{
    if (m && m->thread_started) {
        /* A paused postcopy waits for a recovery that will not come. */
        pthread_mutex_lock(&m->lock);
        __atomic_store_n(&m->exiting, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        migration_cancel(m);
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
}

/* ---- the RAM ranges of a layout ------------------------------------------------- */

static int range_cmp(const void *a, const void *b)
{
    const MigRange *x = a, *y = b;

    return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

int mig_ranges_from_layout(Migration *m, const DevState *ds, MigRange **out,
                           size_t *n, char *err, size_t errlen)
{
    MigRange *r;
    size_t k = 0, cap = 0;

    for (uint32_t i = 0; i < ds->nblocks; i++) {
        cap += ds->blocks[i].nranges;
    }
    r = calloc(cap ? cap : 1, sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    rcu_read_lock();
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];
        RAMBlock *block = ram_block_by_name(m->cfg.ram, b->idstr);

        for (uint32_t j = 0; j < b->nranges; j++) {
            r[k++] = (MigRange) {
                .block = block, .gfn = b->ranges[j].gpa >> XR_PAGE_BITS,
                .page = b->ranges[j].offset >> XR_PAGE_BITS,
                .n = b->ranges[j].size >> XR_PAGE_BITS };
        }
    }
    rcu_read_unlock();
    qsort(r, k, sizeof(*r), range_cmp);
    for (size_t i = 1; i < k; i++) {
        if (r[i].gfn < r[i - 1].gfn + r[i - 1].n) {
            snprintf(err, errlen, "the RAM layout maps gfn %#" PRIx64
                     " twice", r[i].gfn);
            free(r);
            return -EINVAL;
        }
    }
    *out = r;
    *n = k;
    return 0;
}

/* ---- HVM parameters and special frames --------------------------------------------- */

static const uint32_t hvm_params[] = {
    HVM_PARAM_STORE_PFN, HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN, HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN, HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN, HVM_PARAM_IDENT_PT, HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN, HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH, HVM_PARAM_MCA_CAP,
};

bool mig_hvm_param_known(uint32_t index)
{
    for (size_t i = 0; i < sizeof(hvm_params) / sizeof(hvm_params[0]); i++) {
        if (hvm_params[i] == index) {
            return true;
        }
    }
    return false;
}

bool mig_hvm_param_cleared(uint32_t index)
{
    return index == HVM_PARAM_STORE_PFN || index == HVM_PARAM_CONSOLE_PFN ||
           index == HVM_PARAM_IOREQ_PFN || index == HVM_PARAM_BUFIOREQ_PFN;
}

int mig_hvm_params_get(XenHandles *xh, MigHvmParam *p)
{
    int n = 0;

    for (size_t i = 0; i < sizeof(hvm_params) / sizeof(hvm_params[0]); i++) {
        uint64_t v;
        int ret = xen_hvm_param_get(xh, hvm_params[i], &v);

        if (ret) {
            return ret;
        }
        if (v) {
            p[n++] = (MigHvmParam) { hvm_params[i], v };
        }
    }
    return n;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static bool in_ranges(const MigRange *r, size_t nr, uint64_t gfn)
{
    for (size_t i = 0; i < nr; i++) {
        if (r[i].block && gfn >= r[i].gfn && gfn < r[i].gfn + r[i].n) {
            return true;
        }
    }
    return false;
}

int mig_special_frames(const MigHvmParam *p, unsigned n, const MigRange *r,
                       size_t nr, uint64_t *out)
{
    uint64_t f[MIG_MAX_SPECIAL_FRAMES + 8], nio = 0, iobase = 0;
    unsigned k = 0, m = 0;

    for (unsigned i = 0; i < n; i++) {
        switch (p[i].index) {
        case HVM_PARAM_STORE_PFN: case HVM_PARAM_IOREQ_PFN:
        case HVM_PARAM_BUFIOREQ_PFN: case HVM_PARAM_PAGING_RING_PFN:
        case HVM_PARAM_MONITOR_RING_PFN: case HVM_PARAM_SHARING_RING_PFN:
        case HVM_PARAM_CONSOLE_PFN:
            f[k++] = p[i].value;
            break;
        case HVM_PARAM_IDENT_PT:
            f[k++] = p[i].value >> XR_PAGE_BITS;
            break;
        case HVM_PARAM_IOREQ_SERVER_PFN:
            iobase = p[i].value;
            break;
        case HVM_PARAM_NR_IOREQ_SERVER_PAGES:
            nio = p[i].value;
            break;
        }
    }
    if (nio > MIG_MAX_SPECIAL_FRAMES - k) {
        return -EINVAL;
    }
    for (uint64_t i = 0; iobase && i < nio; i++) {
        f[k++] = iobase + i;
    }
    qsort(f, k, sizeof(f[0]), u64_cmp);
    for (unsigned i = 0; i < k; i++) {
        /* 52-bit guest-physical addresses at most. */
        if (f[i] >= (1ull << 40)) {
            return -EINVAL;
        }
        if ((m && out[m - 1] == f[i]) || in_ranges(r, nr, f[i])) {
            continue;
        }
        out[m++] = f[i];
    }
    return (int)m;
}
