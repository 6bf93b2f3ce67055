/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devmodel.c - the device-model process (see devmodel.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "hotplug/hotplug.h"
#include "memory/access.h"
#include "memory/mapcache.h"
#include "memory/modified.h"
#include "memory/ramblock.h"
#include "memory/region.h"
#include "memory/xen-memory.h"
#include "migration/migration.h"
#include "xen/dm/devmodel.h"
#include "xen/dm/ioreq.h"
#include "xen/dm/loop.h"
#include "xen/dm/qmp.h"
#include "xen/dm/qmp-migrate.h"
#include "xen/dm/testdev.h"
#include "xen/xen.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)
#define FOUR_GIB (4 * GiB)

typedef enum DMStatus {
    DM_PRELAUNCH,               /* -S: waiting for the first cont */
    DM_RUNNING,
    DM_PAUSED,                  /* stop, or restored and waiting for cont */
    DM_INMIGRATE,               /* loading the incoming device state */
} DMStatus;

static const char *const status_names[] = {
    [DM_PRELAUNCH] = "prelaunch",
    [DM_RUNNING] = "running",
    [DM_PAUSED] = "paused",
    [DM_INMIGRATE] = "inmigrate",
};

typedef struct DeviceModel {
    DMConfig *cfg;
    MainLoop *loop;
    QmpServer *qmp;
    XenHandles *xh;
    int sigfd;

    /* Memory */
    RAMList ram;
    bool ram_ready;
    MemoryContext ctx;
    bool ctx_ready;
    MemoryRegion root, ioroot, ram_mr, ram_lo, ram_hi, vram_mr;
    /* Which of them exist, for an orderly teardown after a failed start. */
    bool root_ok, ioroot_ok, ram_mr_ok, ram_lo_ok, have_ram_hi, have_vram;
    AddressSpace as, io;
    bool as_ready;
    RAMBlock *ram_block, *vram_block;
    MapCache *mc;
    ModifiedMemory *mm;
    XenMemory *xm;
    int ioservid;
    IoreqService *ioreq;            /* the served ioreq server, or NULL */
    GuestMemory gm;
    Hotplug *hp;                    /* RAM hot-plug through xenstore */
    Migration *mig;                 /* the xl migrate duties, the engine */
    DmMigrateQmp migq;              /* its QMP commands */
    int mig_evfd;                   /* the engine's notifications */
    TestDev *testdev;               /* --test-dma, or NULL */
    uint64_t ram_bytes;             /* guest RAM xen.ram covers */

    /* The incoming device state, read before the memory is set up. */
    DevState in_ds;
    bool have_in_ds;
    /* -xen-domid-restrict done; the domain's maximum read before it. */
    bool restricted;
    uint64_t xen_max_pages;

    /* State */
    DMStatus status;
    bool announced_running;     /* xenstore state = running written */
    char xs_base[96];           /* /local/domain/0/device-model/<domid> */
} DeviceModel;

/* ---- messages ------------------------------------------------------------- */

static DMLogLevel log_level = DM_LOG_INFO;

/*
 * One line on stderr (libxl's qemu-dm-NAME.log), with the UTC time first
 * as QEMU's -msg timestamp=on writes it (2026-12-01T13:10:17.123456Z), so
 * that it can be laid beside xl's and Xen's logs.  One fprintf a line:
 * stdio's lock keeps the lines of threads apart.
 */
void dm_log(DMLogLevel level, const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char when[40], msg[1024];
    va_list ap;

    if (level > log_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%06ldZ xenram: %s%s\n", when, ts.tv_nsec / 1000,
            level == DM_LOG_ERROR ? "error: " :
            level == DM_LOG_WARN ? "warning: " : "", msg);
}

/*
 * The Xen layer's own log of every failed call: kept for --log-level=debug,
 * since whoever made the call reports the failure with its context.
 */
static void dm_xen_log(const char *msg)
{
    dm_log(DM_LOG_DEBUG, "%s", msg);
}

/* --log-level=debug: the QMP traffic, a line a message, long ones cut. */
static void dm_qmp_trace(void *opaque, bool in, const char *text)
{
    size_t n = strlen(text);

    (void)opaque;
    dm_log(DM_LOG_DEBUG, "qmp %s %.*s%s", in ? "<-" : "->",
           (int)(n > 300 ? 300 : n), text, n > 300 ? " ..." : "");
}

/* ---- xenstore --------------------------------------------------------------- */

/* The ioreq thread's messages (unassigned accesses, malformed requests). */
static void dm_ioreq_log(const char *msg)
{
    dm_log(DM_LOG_INFO, "%s", msg);
}

static void dm_xs_state(DeviceModel *dm, const char *state)
{
    char path[128];

    if (!xen_xs(dm->xh)) {
        return;
    }
    snprintf(path, sizeof(path), "%s/state", dm->xs_base);
    if (xen_xs_write(dm->xh, path, state)) {
        dm_log(DM_LOG_WARN, "cannot write %s: %s", path, xen_last_error());
    }
}

/* What `running` means to libxl: the device model is ready. */
static void dm_announce_running(DeviceModel *dm)
{
    if (!dm->announced_running) {
        dm_xs_state(dm, "running");
        dm->announced_running = true;
    }
}

static void dm_xs_cleanup(DeviceModel *dm)
{
    char path[128];

    if (!xen_xs(dm->xh)) {
        return;
    }
    snprintf(path, sizeof(path), "%s/state", dm->xs_base);
    xen_xs_rm(dm->xh, path);
    snprintf(path, sizeof(path), "%s/physmap", dm->xs_base);
    xen_xs_rm(dm->xh, path);
}

/* ---- memory layout ------------------------------------------------------------ */

static void dm_hotplug_debug(void *opaque, const char *msg)
{
    (void)opaque;
    dm_log(DM_LOG_DEBUG, "%s", msg);
}

static void dm_hotplug_log(void *opaque, const char *msg)
{
    (void)opaque;
    /* hotplug/ names itself in its messages already. */
    dm_log(DM_LOG_INFO, "%s", msg);
}

static void dm_on_hotplug(MainLoop *loop, int fd, uint32_t events,
                          void *opaque)
{
    DeviceModel *dm = opaque;

    (void)loop;
    (void)fd;
    (void)events;
    hotplug_handle_watch(dm->hp);
}

/*
 * RAM hot-plug: slots go above everything the guest has (RAM above 4 GiB,
 * our VRAM), 1 GiB-aligned, and together may add up to maxmem - RAM
 * (libxl's -m ...,maxmem=).  libxl 4.17 passes no maxmem (-m is the
 * static maximum less the video RAM, libxl__build_device_model_args_new):
 * then only Xen's own limit applies, and the window is as large as the
 * guest's RAM, at least DM_HOTPLUG_WINDOW_MIN, so that any guest -m allows
 * gets one however large it is.  Each slot may waste up to one alignment
 * unit, hence the slots * alignment on top.
 */
void dm_hotplug_window(const DMConfig *cfg, uint64_t ram_bytes, uint64_t top,
                       DMHotplugWindow *w)
{
    uint64_t maxmem = cfg->maxmem_mib * MiB;

    w->slots = cfg->ram_slots ? cfg->ram_slots : HOTPLUG_MAX_SLOTS;
    w->start = ROUND_UP(top, GiB);
    /* The RAM the guest has: an incoming guest's may be less than -m. */
    w->max_set = maxmem != 0;
    w->max_bytes = maxmem > ram_bytes ? maxmem - ram_bytes : 0;
    w->end = w->start + (w->max_set ? w->max_bytes :
                         MAX(ram_bytes, DM_HOTPLUG_WINDOW_MIN)) +
             (uint64_t)w->slots * HOTPLUG_DEFAULT_ALIGN;
}

/* Set up before the handles are restricted: restriction ends xenstore. */
static int dm_hotplug_init(DeviceModel *dm, bool incoming, uint64_t above,
                           char *err, size_t errlen)
{
    DMConfig *cfg = dm->cfg;
    uint64_t top = above ? FOUR_GIB + above : FOUR_GIB;
    DMHotplugWindow w;
    HotplugConfig hc;
    int ret, fd;

    if (dm->vram_block) {
        top = MAX(top, dm->vram_block->offset + dm->vram_block->max_length);
    }
    dm_hotplug_window(cfg, dm->ram_bytes, top, &w);
    hc = (HotplugConfig) {
        .xh = dm->xh, .ram = &dm->ram, .ctx = &dm->ctx, .as = &dm->as,
        .root = &dm->root, .mc = dm->mc, .domid = cfg->domid,
        .toolstack_domid = 0,
        .window_start = w.start, .window_end = w.end,
        .max_bytes = w.max_bytes, .max_set = w.max_set, .nr_slots = w.slots, .incoming = incoming,
        .xen_max_pages = dm->xen_max_pages,
        .xs_base = dm->xs_base, .no_xenstore = !xen_xs(dm->xh),
        .log = dm_hotplug_log, .log_opaque = dm, .debug = dm_hotplug_debug,
    };
    ret = hotplug_new(&hc, &dm->hp, err, errlen);
    if (ret && !hc.no_xenstore) {
        dm_log(DM_LOG_WARN, "RAM hot-plug through xenstore unavailable (%s);"
               " restoring hot-plugged RAM still works", err);
        hc.no_xenstore = true;
        err[0] = '\0';
        ret = hotplug_new(&hc, &dm->hp, err, errlen);
    }
    if (ret) {
        return ret;
    }
    fd = hotplug_watch_fd(dm->hp);
    if (fd >= 0) {
        ret = main_loop_add_fd(dm->loop, fd, EPOLLIN, dm_on_hotplug, dm);
        if (ret) {
            snprintf(err, errlen, "watching hot-plug requests: %s",
                     strerror(-ret));
            return ret;
        }
    }
    return 0;
}

/* migration/ reaches hot-plug, its sibling, only through these. */
static uint32_t dm_mig_block_slot(void *opaque, const RAMBlock *block)
{
    return hotplug_block_slot(opaque, block);
}

static int dm_mig_restore(void *opaque, const MigrationHotplugSlot *slots,
                          unsigned int n, char *err, size_t errlen)
{
    HotplugRestoreSlot rs[HOTPLUG_MAX_SLOTS];

    if (n > HOTPLUG_MAX_SLOTS) {
        snprintf(err, errlen, "the saved state has %u hot-plugged slots, at "
                 "most %u exist", n, HOTPLUG_MAX_SLOTS);
        return -EINVAL;
    }
    for (unsigned int i = 0; i < n; i++) {
        rs[i] = (HotplugRestoreSlot) { .slot = slots[i].slot,
                                       .idstr = slots[i].idstr,
                                       .gpa = slots[i].gpa,
                                       .size = slots[i].size };
    }
    return hotplug_restore_slots(opaque, rs, n, err, errlen);
}

static void dm_mig_restore_undo(void *opaque)
{
    hotplug_restore_undo(opaque);
}

static void dm_mig_set_blocked(void *opaque, const char *reason)
{
    hotplug_set_blocked(opaque, reason);
}

static void dm_mig_set_incoming(void *opaque, bool incoming)
{
    hotplug_set_incoming(opaque, incoming);
}

static int dm_migration_init(DeviceModel *dm, char *err, size_t errlen)
{
    MigrationConfig mc = {
        .xh = dm->xh, .ram = &dm->ram, .as = &dm->as, .mc = dm->mc, .xm = dm->xm,
        .mm = dm->mm, .forward_writes = !dm->cfg->no_modified_memory,
        .hotplug = { .block_slot = dm_mig_block_slot,
                     .restore = dm_mig_restore,
                     .restore_undo = dm_mig_restore_undo,
                     .set_blocked = dm_mig_set_blocked,
                     .set_incoming = dm_mig_set_incoming,
                     .opaque = dm->hp },
    };

    if (!dm->hp) {
        memset(&mc.hotplug, 0, sizeof(mc.hotplug));
    }
    int ret = migration_new(&mc, &dm->mig);

    if (ret) {
        snprintf(err, errlen, "setting up migration: %s", strerror(-ret));
    }
    return ret;
}

/*
 * Guest RAM as an HVM guest has it: [0, below) and, beyond
 * max-ram-below-4g, [4 GiB, 4 GiB + above).  One block "xen.ram" spans
 * both with the hole in between, so that its ram_addr is the guest-physical
 * address, as in QEMU on Xen.  The toolstack populated it; we only map it.
 * VRAM is ours: populated (unless incoming) at gfn = ram_addr >> 12, where
 * it is also mapped.
 */
static int dm_memory_init(DeviceModel *dm, bool incoming, char *err,
                          size_t errlen)
{
    DMConfig *cfg = dm->cfg;
    uint64_t ram = dm->ram_bytes;
    uint64_t below = MIN(ram, cfg->max_ram_below_4g);
    uint64_t above = ram - below;
    uint64_t block_len = above ? FOUR_GIB + above : ram;
    int ret;

    /* The command line bounds both; a config built otherwise must too. */
    if (ram > DM_MAX_RAM_MIB * MiB || cfg->vram_mib > DM_MAX_RAM_MIB) {
        snprintf(err, errlen, "guest memory of %" PRIu64 " MiB and video "
                 "memory of %" PRIu64 " MiB: each must be at most %llu MiB "
                 "(16 TiB)", ram / MiB, cfg->vram_mib,
                 (unsigned long long)DM_MAX_RAM_MIB);
        return -E2BIG;
    }
    ret = ram_list_init(&dm->ram);
    if (ret) {
        goto fail;
    }
    dm->ram_ready = true;
    ret = ram_block_add(&dm->ram, "xen.ram", block_len, block_len, NULL, 0,
                        NULL, &dm->ram_block);
    if (ret) {
        goto fail;
    }
    if (cfg->vram_mib) {
        ret = ram_block_add(&dm->ram, "vga.vram", cfg->vram_mib * MiB,
                            cfg->vram_mib * MiB, NULL, RAM_XEN_POPULATE,
                            NULL, &dm->vram_block);
        if (ret) {
            goto fail;
        }
    }
    ret = memory_context_init(&dm->ctx, &dm->ram);
    if (ret) {
        goto fail;
    }
    dm->ctx_ready = true;
    if ((ret = memory_region_init(&dm->root, &dm->ctx, "system", 0))) {
        goto fail;
    }
    dm->root_ok = true;
    if ((ret = memory_region_init(&dm->ioroot, &dm->ctx, "io", 65536))) {
        goto fail;
    }
    dm->ioroot_ok = true;
    if ((ret = memory_region_init_ram(&dm->ram_mr, &dm->ctx, "xen.ram",
                                      dm->ram_block))) {
        goto fail;
    }
    dm->ram_mr_ok = true;
    if ((ret = memory_region_init_alias(&dm->ram_lo, "xen.ram.lo",
                                        &dm->ram_mr, 0, below))) {
        goto fail;
    }
    if ((ret = memory_region_add_subregion(&dm->root, 0, &dm->ram_lo))) {
        memory_region_destroy(&dm->ram_lo);
        goto fail;
    }
    dm->ram_lo_ok = true;
    if (above) {
        if ((ret = memory_region_init_alias(&dm->ram_hi, "xen.ram.hi",
                                            &dm->ram_mr, FOUR_GIB, above))) {
            goto fail;
        }
        if ((ret = memory_region_add_subregion(&dm->root, FOUR_GIB,
                                               &dm->ram_hi))) {
            memory_region_destroy(&dm->ram_hi);
            goto fail;
        }
        dm->have_ram_hi = true;
    }
    if ((ret = address_space_init(&dm->as, &dm->ctx, &dm->root, "memory")) ||
        (ret = address_space_init(&dm->io, &dm->ctx, &dm->ioroot, "io"))) {
        goto fail;
    }
    dm->as_ready = true;

    ret = mapcache_new(dm->xh, NULL, &dm->mc);
    if (ret) {
        goto fail;
    }
    mapcache_set_incoming(dm->mc, incoming);
    ret = modified_memory_new(dm->xh, NULL, &dm->mm);
    if (ret) {
        goto fail;
    }
    dm->gm = (GuestMemory) { .as = &dm->as, .ram = &dm->ram, .mc = dm->mc,
                             .mm = dm->cfg->no_modified_memory ? NULL :
                                   dm->mm };
    /*
     * The ioreq server, served by its own thread from before it is
     * enabled (docs/ioreq.md).  After the domain's creation has finished,
     * every frame removal (p2m_remove_page ->
     * ioreq_request_mapcache_invalidate) makes each vCPU send a
     * synchronous IOREQ_TYPE_INVALIDATE to every *enabled* server and wait
     * for its answer; a server enabled without mapped pages faults in
     * ioreq_send() and Xen 4.17 panics the host (issue 16).  So the
     * server is enabled only by ioreq_service_start(), once its pages are
     * mapped and its thread runs; without one, claimed ranges are not
     * claimed and accesses complete as unassigned I/O in Xen.
     */
    dm->ioservid = -1;
    {
        IoreqHandler h = { .mc = dm->mc, .mem = &dm->as, .io = &dm->io,
                           .gm = &dm->gm, .log = dm_ioreq_log };
        char why[512];

        if (ioreq_service_start(dm->xh, &h, &dm->ioreq, why,
                                sizeof(why)) == 0) {
            dm->ioservid = ioreq_service_id(dm->ioreq);
        } else {
            dm_log(DM_LOG_WARN, "no ioreq server (%s); I/O regions will "
                   "not be claimed and Xen's map-cache invalidations will "
                   "not reach the mapcache", why);
        }
    }
    ret = xen_memory_new(dm->xh, &dm->ram, &dm->as, &dm->io, dm->ioservid,
                         incoming, &dm->xm);
    if (ret) {
        goto fail;
    }
    if (dm->vram_block) {
        if ((ret = memory_region_init_ram(&dm->vram_mr, &dm->ctx, "vga.vram",
                                          dm->vram_block))) {
            goto fail;
        }
        if ((ret = memory_region_add_subregion(&dm->root,
                                               dm->vram_block->offset,
                                               &dm->vram_mr))) {
            memory_region_destroy(&dm->vram_mr);
            goto fail;
        }
        dm->have_vram = true;
        if (xen_memory_errors(dm->xm)) {
            snprintf(err, errlen, "%s", xen_memory_last_error(dm->xm));
            return -EIO;
        }
    }
    if ((ret = dm_hotplug_init(dm, incoming, above, err, errlen))) {
        return ret;
    }
    return dm_migration_init(dm, err, errlen);

fail:
    snprintf(err, errlen, "setting up guest memory (%" PRIu64 " MiB) failed: "
             "%s", cfg->ram_mib, strerror(-ret));
    return ret;
}

static void dm_memory_free(DeviceModel *dm)
{
    migration_free(dm->mig);
    dm->mig = NULL;
    if (dm->mig_evfd >= 0) {
        main_loop_del_fd(dm->loop, dm->mig_evfd);
        close(dm->mig_evfd);
        dm->mig_evfd = -1;
    }
    xen_memory_free(dm->xm);
    dm->xm = NULL;
    /* Disabled and destroyed while the mapcache it invalidates is there. */
    ioreq_service_stop(dm->ioreq);
    dm->ioreq = NULL;
    dm->ioservid = -1;
    modified_memory_free(dm->mm);
    dm->mm = NULL;
    if (dm->hp) {
        int fd = hotplug_watch_fd(dm->hp);

        if (fd >= 0) {
            main_loop_del_fd(dm->loop, fd);
        }
        hotplug_free(dm->hp);
        dm->hp = NULL;
    }
    if (dm->ctx_ready) {
        if (dm->as_ready) {
            address_space_destroy(&dm->as);
            address_space_destroy(&dm->io);
        }
        if (dm->have_vram) {
            memory_region_del_subregion(&dm->root, &dm->vram_mr);
            memory_region_destroy(&dm->vram_mr);
        }
        if (dm->have_ram_hi) {
            memory_region_del_subregion(&dm->root, &dm->ram_hi);
            memory_region_destroy(&dm->ram_hi);
        }
        if (dm->ram_lo_ok) {
            memory_region_del_subregion(&dm->root, &dm->ram_lo);
            memory_region_destroy(&dm->ram_lo);
        }
        if (dm->ram_mr_ok) {
            memory_region_destroy(&dm->ram_mr);
        }
        if (dm->root_ok) {
            memory_region_destroy(&dm->root);
        }
        if (dm->ioroot_ok) {
            memory_region_destroy(&dm->ioroot);
        }
        synchronize_rcu();
        memory_context_destroy(&dm->ctx);
    }
    mapcache_destroy(dm->mc);
    dm->mc = NULL;
    if (dm->ram_ready) {
        ram_list_destroy(&dm->ram);
    }
}

/* ---- device state ---------------------------------------------------------- */

/*
 * Read the incoming device state before the memory is set up, because it
 * decides how much RAM xen.ram covers.  libxl starts the destination with
 * -m from the static-max it retrieved, so after xl mem-max the destination
 * is told more RAM than the guest had.  QEMU does not mind (its Xen device
 * state carries no RAM), but xenram's layout must be the source's: xen.ram
 * sizes where VRAM and the hot-plug window go, and the frames populated
 * there came with the migration.  So the saved RAM wins when it is
 * smaller; the raised maximum remains Xen's, and RAM beyond it arrives
 * through hot-plug as before.  A larger saved RAM is refused when the
 * state is applied.
 */
static int dm_incoming_read(DeviceModel *dm, char *err, size_t errlen)
{
    uint64_t saved;
    int ret;

    dm->status = DM_INMIGRATE;
    ret = migration_incoming_read(dm->cfg->incoming_fd, &dm->in_ds, &saved,
                                  err, errlen);
    close(dm->cfg->incoming_fd);
    dm->cfg->incoming_fd = -1;
    if (ret) {
        return ret;
    }
    dm->have_in_ds = true;
    if (saved && saved < dm->ram_bytes) {
        dm_log(DM_LOG_INFO, "-m gives %" PRIu64 " MiB of RAM, the guest "
               "has %" PRIu64 " MiB: keeping the guest's layout (its "
               "maximum was raised)", dm->ram_bytes / MiB, saved / MiB);
        dm->ram_bytes = saved;
    }
    return 0;
}

/*
 * Apply the incoming state: all or nothing.  migration_layout_apply()
 * checks everything before it recreates the hot-plugged slots, and takes
 * them out again if one fails; a failure after it (mapping the restored
 * memory) undoes the restore here, so that no slot, and no memory/<slot>/
 * answer in xenstore, outlives a refused state.
 */
static int dm_incoming(DeviceModel *dm, char *err, size_t errlen)
{
    int ret;

    ret = migration_incoming_apply(dm->mig, &dm->in_ds, err, errlen);
    devstate_free(&dm->in_ds);
    dm->have_in_ds = false;
    if (ret) {
        if (dm->hp) {
            hotplug_restore_undo(dm->hp);
        }
        return ret;
    }
    dm->status = DM_PAUSED;
    /* Without -S the domain runs as soon as dm_run() is through. */
    dm_log(DM_LOG_INFO, "device state loaded%s",
           dm->cfg->start_paused ? "; waiting for cont" : "");
    return 0;
}

/* ---- run state --------------------------------------------------------------- */

/*
 * Devices run only while the guest runs: a stopped device model makes no
 * write, so that the flush done by `stop` is the last word to Xen.
 */
static void dm_set_status(DeviceModel *dm, DMStatus status)
{
    if (status == DM_RUNNING) {
        testdev_resume(dm->testdev);
    } else {
        testdev_pause(dm->testdev);
    }
    dm->status = status;
}

/* ---- xenram's own migration engine ---------------------------------------- */

/* The engine's threads call these; testdev is safe from any thread. */
static void dm_mig_stop_devices(void *opaque)
{
    DeviceModel *dm = opaque;

    testdev_pause(dm->testdev);
}

static void dm_mig_resume_devices(void *opaque)
{
    DeviceModel *dm = opaque;

    testdev_resume(dm->testdev);
}

static void dm_mig_notify(void *opaque)
{
    DeviceModel *dm = opaque;
    uint64_t one = 1;

    (void)!write(dm->mig_evfd, &one, sizeof(one));
}

/* A status change of the engine, in the main loop. */
static void dm_mig_status(DeviceModel *dm, MigrationStatus st)
{
    MigrationInfo info;

    migration_get_info(dm->mig, &info);
    /*
     * Postcopy: the guest runs here from postcopy-active on (RUN), while
     * the rest of its RAM arrives; completed follows without a change.
     */
    if (info.incoming && st == MIGRATION_STATUS_COMPLETED &&
        dm->status != DM_INMIGRATE) {
        dm_log(DM_LOG_INFO, "incoming postcopy migration completed");
    } else if (info.incoming && st == MIGRATION_STATUS_POSTCOPY_ACTIVE &&
               dm->status != DM_INMIGRATE) {
        /* Again after a recovery (postcopy-paused, postcopy-recover). */
        dm_log(DM_LOG_INFO, "incoming postcopy migration goes on");
    } else if (info.incoming && st == MIGRATION_STATUS_POSTCOPY_PAUSED) {
        dm_log(DM_LOG_WARN, "incoming postcopy migration paused: %s",
               info.error_desc);
    } else if (info.incoming && (st == MIGRATION_STATUS_COMPLETED ||
                                 st == MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        if (dm->cfg->start_paused) {
            /* As -incoming fd:N with -S: state = running comes at cont. */
            dm->status = DM_PAUSED;
            dm_log(DM_LOG_INFO, "guest received; waiting for cont");
        } else {
            dm->status = DM_RUNNING;
            qmp_emit_event(dm->qmp, "RESUME", NULL);
            dm_log(DM_LOG_INFO, "guest received; running");
            dm_announce_running(dm);
        }
    } else if (info.incoming && st == MIGRATION_STATUS_FAILED) {
        dm_log(DM_LOG_ERROR, "incoming migration failed: %s",
               info.error_desc);
        main_loop_quit(dm->loop, 1);
    } else if (st == MIGRATION_STATUS_COMPLETED) {
        dm_log(DM_LOG_INFO, "migration completed: %" PRIu64 " ms, downtime "
               "%" PRIu64 " ms", info.total_time, info.downtime);
    } else if (st == MIGRATION_STATUS_FAILED ||
               st == MIGRATION_STATUS_CANCELLED) {
        dm_log(DM_LOG_WARN, "migration %s: %s", migration_status_name(st),
               info.error_desc[0] ? info.error_desc : "-");
    }
}

static void dm_on_migration(MainLoop *loop, int fd, uint32_t events,
                            void *opaque)
{
    DeviceModel *dm = opaque;
    MigrationEvent ev[16];
    MigrationCaps caps;
    uint64_t v;
    unsigned n;

    (void)loop;
    (void)events;
    (void)!read(fd, &v, sizeof(v));
    migration_get_caps(dm->mig, &caps);
    while ((n = migration_take_events(dm->mig, ev, 16)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            switch (ev[i].kind) {
            case MIGRATION_EVENT_STATUS:
                dm_log(DM_LOG_DEBUG, "migration: %s",
                       migration_status_name((MigrationStatus)ev[i].value));
                if (caps.events) {
                    qmp_emit_event(dm->qmp, "MIGRATION", json_pack(
                        "{s:s}", "status",
                        migration_status_name((MigrationStatus)ev[i].value)));
                }
                dm_mig_status(dm, (MigrationStatus)ev[i].value);
                break;
            case MIGRATION_EVENT_PASS:
                dm_log(DM_LOG_DEBUG, "migration: round %" PRIu64 " begins",
                       (uint64_t)ev[i].value);
                if (caps.events) {
                    qmp_emit_event(dm->qmp, "MIGRATION_PASS", json_pack(
                        "{s:I}", "pass", (json_int_t)ev[i].value));
                }
                break;
            case MIGRATION_EVENT_STOP:
                if (dm->status == DM_RUNNING) {
                    dm->status = DM_PAUSED;
                    qmp_emit_event(dm->qmp, "STOP", NULL);
                }
                break;
            case MIGRATION_EVENT_RESUME:
                if (dm->status == DM_PAUSED) {
                    dm->status = DM_RUNNING;
                    qmp_emit_event(dm->qmp, "RESUME", NULL);
                }
                break;
            }
        }
    }
}

/* The engine's notifications reach the main loop through an eventfd. */
static int dm_engine_init(DeviceModel *dm, char *err, size_t errlen)
{
    MigrationEngineOps ops = {
        .stop_devices = dm_mig_stop_devices,
        .resume_devices = dm_mig_resume_devices,
        .notify = dm_mig_notify, .opaque = dm,
    };
    int ret;

    dm->mig_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (dm->mig_evfd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -errno;
    }
    ret = main_loop_add_fd(dm->loop, dm->mig_evfd, EPOLLIN, dm_on_migration,
                           dm);
    if (ret) {
        snprintf(err, errlen, "watching the migration engine: %s",
                 strerror(-ret));
        return ret;
    }
    migration_set_engine_ops(dm->mig, &ops);
    dm->migq = (DmMigrateQmp) {
        .mig = dm->mig, .qmp = dm->qmp,
        .incoming = dm->cfg->incoming_uri[0] || dm->cfg->incoming_defer,
        .deferred = dm->cfg->incoming_defer,
        .start_paused = dm->cfg->start_paused,
        .restricted = dm->restricted,
    };
    ret = dm_migrate_qmp_register(&dm->migq);
    if (ret) {
        snprintf(err, errlen, "cannot register the migration commands: %s",
                 strerror(-ret));
        return ret;
    }
    if (dm->cfg->incoming_uri[0]) {
        char msg[512];

        ret = migration_incoming_start(dm->mig, dm->cfg->incoming_uri, -1,
                                       dm->cfg->start_paused, msg,
                                       sizeof(msg));
        if (ret) {
            snprintf(err, errlen, "-incoming %s: %s", dm->cfg->incoming_uri,
                     msg);
            return ret;
        }
        dm_log(DM_LOG_INFO, "waiting for the guest on %s",
               dm->cfg->incoming_uri);
    }
    return 0;
}

static int dm_testdev_init(DeviceModel *dm, char *err, size_t errlen)
{
    uint64_t ram = dm->cfg->ram_mib * MiB;
    uint64_t below = MIN(ram, dm->cfg->max_ram_below_4g);
    /* Guest RAM minus the legacy VGA hole, which HVM guests never have. */
    TestDevRange ranges[3] = { { 0, 0xa0000 },
                               { 0xc0000, below - 0xc0000 },
                               { FOUR_GIB, ram - below } };
    int ret;

    if (!dm->cfg->test_dma_rate) {
        return 0;
    }
    if (below <= 0xc0000) {
        snprintf(err, errlen, "--test-dma needs more than 768 KiB of RAM");
        return -EINVAL;
    }
    ret = testdev_start(&dm->gm, ranges, ram > below ? 3 : 2,
                        dm->cfg->test_dma_rate, &dm->testdev);
    if (ret) {
        snprintf(err, errlen, "starting the test DMA device: %s",
                 strerror(-ret));
        return ret;
    }
    dm_log(DM_LOG_WARN, "test DMA device writing %u pages/s into guest RAM "
           "(--test-dma: for tests only)", dm->cfg->test_dma_rate);
    return 0;
}

/* ---- QMP commands ---------------------------------------------------------- */

/* libxl's probe (-machine none) has no guest memory to migrate. */
static json_t *dm_no_guest(const DeviceModel *dm, QmpError *err)
{
    return dm->mig ? NULL : qmp_error(err, QMP_ERROR_GENERIC,
                                      "no guest: this device model was "
                                      "started with -machine none");
}

static json_t *qmp_query_status(QmpClient *c, json_t *args, void *opaque,
                                QmpError *err)
{
    DeviceModel *dm = opaque;

    (void)c;
    (void)args;
    (void)err;
    return json_pack("{s:s,s:b,s:b}", "status", status_names[dm->status],
                     "running", dm->status == DM_RUNNING, "singlestep", 0);
}

static json_t *qmp_stop(QmpClient *c, json_t *args, void *opaque,
                        QmpError *err)
{
    DeviceModel *dm = opaque;
    char msg[512];

    (void)c;
    (void)args;
    if (!dm->mig) {
        return dm_no_guest(dm, err);
    }
    /* Quiesce the devices first: no write may follow the flush. */
    testdev_pause(dm->testdev);
    if (migration_xl_stop(dm->mig, msg, sizeof(msg))) {
        if (dm->status == DM_RUNNING) {
            testdev_resume(dm->testdev);
        }
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    if (dm->status == DM_RUNNING) {
        dm_set_status(dm, DM_PAUSED);
        qmp_emit_event(dm->qmp, "STOP", NULL);
    }
    return json_object();
}

static json_t *qmp_cont(QmpClient *c, json_t *args, void *opaque,
                        QmpError *err)
{
    DeviceModel *dm = opaque;

    (void)c;
    (void)args;
    if (dm->status == DM_INMIGRATE) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "the incoming device state has not been loaded yet");
    }
    if (dm->status != DM_RUNNING) {
        dm_set_status(dm, DM_RUNNING);
        qmp_emit_event(dm->qmp, "RESUME", NULL);
    }
    if (dm->mig) {
        migration_xl_resumed(dm->mig);
    }
    dm_announce_running(dm);
    return json_object();
}

static json_t *qmp_quit(QmpClient *c, json_t *args, void *opaque,
                        QmpError *err)
{
    DeviceModel *dm = opaque;

    (void)c;
    (void)args;
    (void)err;
    testdev_pause(dm->testdev);
    modified_memory_flush(dm->mm);
    /* As QEMU: a SHUTDOWN event says why the device model goes away. */
    qmp_emit_event(dm->qmp, "SHUTDOWN",
                   json_pack("{s:b,s:s}", "guest", 0, "reason",
                             "host-qmp-quit"));
    main_loop_quit(dm->loop, 0);
    return json_object();
}

static json_t *qmp_set_global_dirty_log(QmpClient *c, json_t *args,
                                        void *opaque, QmpError *err)
{
    DeviceModel *dm = opaque;
    bool enable = json_is_true(json_object_get(args, "enable"));
    char msg[512];

    (void)c;
    if (!dm->mig) {
        return dm_no_guest(dm, err);
    }
    if (migration_xl_set_global_dirty_log(dm->mig, enable, msg, sizeof(msg))) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    dm_log(DM_LOG_INFO, "global dirty log %s", enable ? "on" : "off");
    return json_object();
}

static json_t *qmp_save_devices_state(QmpClient *c, json_t *args,
                                      void *opaque, QmpError *err)
{
    DeviceModel *dm = opaque;
    const char *name = json_string_value(json_object_get(args, "filename"));
    char msg[1024];
    int fd, ret;

    (void)c;
    if (!dm->mig) {
        return dm_no_guest(dm, err);
    }
    fd = qmp_fdset_open(dm->qmp, name, O_WRONLY | O_CREAT | O_TRUNC);
    if (fd < 0) {
        return qmp_error(err, QMP_ERROR_GENERIC, "cannot open '%s': %s",
                         name, strerror(-fd));
    }
    ret = migration_xl_save(dm->mig, fd, name, msg, sizeof(msg));
    close(fd);
    if (ret) {
        return qmp_error(err, QMP_ERROR_GENERIC, "%s", msg);
    }
    dm_log(DM_LOG_INFO, "device state saved to %s", name);
    return json_object();
}

static json_t *qmp_load_devices_state(QmpClient *c, json_t *args,
                                      void *opaque, QmpError *err)
{
    DeviceModel *dm = opaque;
    const char *name = json_string_value(json_object_get(args, "filename"));
    char msg[512] = "";
    int fd, ret;

    (void)c;
    if (!dm->mig) {
        return dm_no_guest(dm, err);
    }
    if (dm->status == DM_RUNNING) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "loading device state needs a stopped guest");
    }
    fd = qmp_fdset_open(dm->qmp, name, O_RDONLY);
    if (fd < 0) {
        return qmp_error(err, QMP_ERROR_GENERIC, "cannot open '%s': %s",
                         name, strerror(-fd));
    }
    ret = migration_xl_load(dm->mig, fd, msg, sizeof(msg));
    close(fd);
    if (ret) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "loading the device state from '%s' failed: %s",
                         name, msg);
    }
    return json_object();
}

/*
 * The options xenram takes and, for those with suboptions, the suboptions
 * it reads, with QEMU's type names (libxl probes with this command which
 * options the device model has).
 */
static const struct {
    const char *option;
    const char *params;         /* "name:type,..." */
} cmdline_options[] = {
    { "xen-domid", "" }, { "xen-domid-restrict", "" },
    { "chardev", "id:string,path:string,server:boolean,wait:boolean,"
                 "fd:string" },
    { "mon", "chardev:string,mode:string" },
    { "qmp", "" },
    { "machine", "type:string,accel:string,suppress-vmdesc:boolean,"
                 "max-ram-below-4g:size" },
    { "m", "size:size,slots:number,maxmem:size" },
    { "name", "guest:string" }, { "no-shutdown", "" }, { "nodefaults", "" },
    { "no-user-config", "" }, { "S", "" }, { "incoming", "" },
    { "runas", "" }, { "chroot", "" }, { "run-with", "user:string,"
                                                     "chroot:string" },
    { "sandbox", "enable:boolean,obsolete:string,elevateprivileges:string,"
                 "spawn:string,resourcecontrol:string" },
};

static json_t *cmdline_option_json(size_t i)
{
    json_t *params = json_array();
    char buf[160], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", cmdline_options[i].params);
    for (char *p = strtok_r(buf, ",", &save); p;
         p = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(p, ':');

        if (colon) {
            *colon = '\0';
            json_array_append_new(params, json_pack("{s:s,s:s}", "name", p,
                                                    "type", colon + 1));
        }
    }
    return json_pack("{s:s,s:o}", "option", cmdline_options[i].option,
                     "parameters", params);
}

static json_t *qmp_query_cmdline_options(QmpClient *c, json_t *args,
                                         void *opaque, QmpError *err)
{
    const char *want = json_string_value(json_object_get(args, "option"));
    json_t *list = json_array();

    (void)c;
    (void)opaque;
    for (size_t i = 0; i < ARRAY_SIZE(cmdline_options); i++) {
        if (!want || !strcmp(want, cmdline_options[i].option)) {
            json_array_append_new(list, cmdline_option_json(i));
        }
    }
    if (want && json_array_size(list) == 0) {
        json_decref(list);
        /* QEMU's answer for an option it does not have. */
        return qmp_error(err, QMP_ERROR_GENERIC, "invalid option name: %s",
                         want);
    }
    return list;
}

/*
 * libxl asks for the character devices after start-up to find the guest's
 * serial pty (device_model_postconfig_chardev); xenram emulates none.
 */
static json_t *qmp_query_chardev(QmpClient *c, json_t *args, void *opaque,
                                 QmpError *err)
{
    (void)c;
    (void)args;
    (void)opaque;
    (void)err;
    return json_array();
}

/*
 * libxl reads which vCPUs are online before it saves a domain
 * (libxl_retrieve_domain_configuration): one entry per vCPU of the domain,
 * "cpu-index" is what it reads.
 */
static json_t *qmp_query_cpus_fast(QmpClient *c, json_t *args, void *opaque,
                                   QmpError *err)
{
    DeviceModel *dm = opaque;
    xc_dominfo_t info;
    json_t *list = json_array();

    (void)c;
    (void)args;
    (void)err;
    if (xc_domain_getinfo(xen_xc(dm->xh), dm->cfg->domid, 1, &info) == 1 &&
        info.domid == dm->cfg->domid) {
        for (unsigned int i = 0; i <= info.max_vcpu_id; i++) {
            char path[64];

            /* One QOM object a vCPU, as QEMU names unattached CPUs. */
            snprintf(path, sizeof(path), "/machine/unattached/device[%u]", i);
            json_array_append_new(list, json_pack(
                "{s:i,s:s,s:i,s:s,s:{s:i,s:i,s:i}}", "cpu-index", (int)i,
                "qom-path", path, "thread-id",
                (int)getpid(), "target", "x86_64", "props", "core-id", 0,
                "thread-id", 0, "socket-id", (int)i));
        }
    }
    return list;
}

static json_t *qmp_query_memory(QmpClient *c, json_t *args, void *opaque,
                                QmpError *err)
{
    DeviceModel *dm = opaque;
    json_t *blocks = json_array(), *ret;
    MapCacheStats ms;
    ModifiedMemoryStats mm;
    RAMBlock *block;
    uint64_t pages;

    (void)c;
    (void)args;
    (void)err;
    rcu_read_lock();
    RAMBLOCK_FOREACH(&dm->ram, block) {
        json_array_append_new(blocks, json_pack(
            "{s:s,s:I,s:I,s:I,s:b}", "idstr", block->idstr,
            "offset", (json_int_t)block->offset,
            "used-length", (json_int_t)ram_block_used_length(block),
            "max-length", (json_int_t)block->max_length,
            "hotplugged", !!(block->flags & RAM_HOTPLUGGED)));
    }
    rcu_read_unlock();
    mapcache_get_stats(dm->mc, &ms);
    modified_memory_stats(dm->mm, &mm);
    pages = dirty_memory_pages(&dm->ram.dirty);

    ret = json_pack("{s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I},"
                    "s:{s:I,s:b},s:{s:b,s:I,s:I,s:I,s:I,s:I}}",
                    "ram-blocks", blocks,
                    "mapcache", "hits", (json_int_t)ms.hits,
                    "misses", (json_int_t)ms.misses,
                    "mapped-bytes", (json_int_t)ms.mapped_bytes,
                    "max-bytes", (json_int_t)ms.max_bytes,
                    "locked-buckets", (json_int_t)ms.locked_buckets,
                    "invalidations", (json_int_t)ms.invalidations,
                    "dirty", "pages", (json_int_t)pages,
                    "global-dirty-log",
                    dm->mig && migration_global_dirty_log(dm->mig),
                    "modified-memory", "enabled",
                    modified_memory_enabled(dm->mm),
                    "reports", (json_int_t)mm.reports,
                    "pages", (json_int_t)mm.pages,
                    "extents", (json_int_t)mm.extents,
                    "hypercalls", (json_int_t)mm.hypercalls,
                    "errors", (json_int_t)mm.errors);
    if (ret && dm->ioreq) {
        IoreqStats is;

        ioreq_service_stats(dm->ioreq, &is);
        json_object_set_new(ret, "ioreq", json_pack(
            "{s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
            "server", dm->ioservid,
            "requests", (json_int_t)is.requests,
            "invalidates", (json_int_t)is.invalidates,
            "pio", (json_int_t)is.pio, "mmio", (json_int_t)is.mmio,
            "pci-config", (json_int_t)is.pci_config,
            "buffered", (json_int_t)is.buffered,
            "unassigned", (json_int_t)is.unassigned,
            "bad", (json_int_t)is.bad, "other", (json_int_t)is.other,
            "spurious", (json_int_t)is.spurious));
    }
    if (ret && dm->testdev) {
        json_object_set_new(ret, "test-device", json_pack(
            "{s:I,s:I}", "pages-written",
            (json_int_t)testdev_pages_written(dm->testdev), "errors",
            (json_int_t)testdev_errors(dm->testdev)));
    }
    return ret;
}

static int dm_qmp_init(DeviceModel *dm, char *err, size_t errlen)
{
    QmpVersion v = { DM_QEMU_MAJOR, DM_QEMU_MINOR, DM_QEMU_MICRO,
                     "xenram " XENRAM_VERSION };
    int ret;

    ret = qmp_server_new(dm->loop, &v, &dm->qmp);
    if (ret) {
        snprintf(err, errlen, "cannot create the QMP server: %s",
                 strerror(-ret));
        return ret;
    }
    if (log_level >= DM_LOG_DEBUG) {
        qmp_server_set_trace(dm->qmp, dm_qmp_trace, dm);
    }
    if ((ret = qmp_register(dm->qmp, "query-status", NULL, qmp_query_status,
                            dm)) ||
        (ret = qmp_register(dm->qmp, "stop", NULL, qmp_stop, dm)) ||
        (ret = qmp_register(dm->qmp, "cont", NULL, qmp_cont, dm)) ||
        (ret = qmp_register(dm->qmp, "quit", NULL, qmp_quit, dm)) ||
        (ret = qmp_register(dm->qmp, "xen-set-global-dirty-log", "enable:b",
                            qmp_set_global_dirty_log, dm)) ||
        (ret = qmp_register(dm->qmp, "xen-save-devices-state",
                            "filename:s,live:b?", qmp_save_devices_state,
                            dm)) ||
        (ret = qmp_register(dm->qmp, "xen-load-devices-state", "filename:s",
                            qmp_load_devices_state, dm)) ||
        (ret = qmp_register(dm->qmp, "query-command-line-options",
                            "option:s?", qmp_query_cmdline_options, dm)) ||
        (ret = qmp_register(dm->qmp, "query-chardev", NULL,
                            qmp_query_chardev, dm)) ||
        (ret = qmp_register(dm->qmp, "query-cpus-fast", NULL,
                            qmp_query_cpus_fast, dm)) ||
        (ret = qmp_register(dm->qmp, "x-xenram-query-memory", NULL,
                            qmp_query_memory, dm))) {
        snprintf(err, errlen, "cannot register QMP commands: %s",
                 strerror(-ret));
        return ret;
    }
    for (size_t i = 0; i < dm->cfg->nr_monitors; i++) {
        DMMonitor *m = &dm->cfg->monitors[i];

        ret = m->path ? qmp_server_listen_path(dm->qmp, m->path)
                      : qmp_server_listen_fd(dm->qmp, m->fd);
        if (ret) {
            if (m->path) {
                snprintf(err, errlen, "cannot listen for QMP on %s: %s",
                         m->path, strerror(-ret));
            } else {
                snprintf(err, errlen, "QMP chardev %s: fd %d is not a usable "
                         "socket: %s", m->chardev_id, m->fd, strerror(-ret));
            }
            return ret;
        }
    }
    return 0;
}

/* ---- privileges and signals ------------------------------------------------- */

static int dm_drop_privileges(DeviceModel *dm, char *err, size_t errlen)
{
    DMConfig *cfg = dm->cfg;
    uid_t uid = 0;
    gid_t gid = 0;

    if (cfg->runas && !cfg->runas_numeric) {
        struct passwd *pw = getpwnam(cfg->runas);

        if (!pw) {
            snprintf(err, errlen, "-runas: no user '%s'", cfg->runas);
            return -ENOENT;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    } else if (cfg->runas) {
        uid = cfg->runas_uid;
        gid = cfg->runas_gid;
    }
    if (cfg->chroot_dir &&
        (chroot(cfg->chroot_dir) < 0 || chdir("/") < 0)) {
        snprintf(err, errlen, "-chroot %s: %s", cfg->chroot_dir,
                 strerror(errno));
        return -errno;
    }
    if (cfg->runas &&
        (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
        snprintf(err, errlen, "-runas %s: %s", cfg->runas, strerror(errno));
        return -errno;
    }
    return 0;
}

static void dm_on_signal(MainLoop *loop, int fd, uint32_t events,
                         void *opaque)
{
    struct signalfd_siginfo si;

    (void)events;
    (void)opaque;
    if (read(fd, &si, sizeof(si)) == sizeof(si)) {
        dm_log(DM_LOG_INFO, "signal %u: exiting", si.ssi_signo);
        main_loop_quit(loop, 0);
    }
}

static int dm_signals_init(DeviceModel *dm)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    dm->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (dm->sigfd < 0) {
        return -errno;
    }
    return main_loop_add_fd(dm->loop, dm->sigfd, EPOLLIN, dm_on_signal, dm);
}

/* ---- the process ------------------------------------------------------------ */

/*
 * -xen-domid-restrict (libxl's dm_restrict): xentoolcore_restrict_all()
 * limits privcmd to device-model operations and mappings of the domain,
 * makes the xc_interface unusable and would close xenstore (xenram opens
 * none then).  What needs more is done before: the domain's maximum memory
 * is read for the checks of restored hot-plug slots; VRAM is populated by
 * dm_memory_init() before restriction unless the state is incoming (its
 * frames came with the guest).
 */
static int dm_restrict(DeviceModel *dm, char *err, size_t errlen)
{
    XenDomainInfo info;

    if (xen_domain_info(dm->xh, &info) == 0) {
        dm->xen_max_pages = info.max_pages;
    }
    if (xen_restrict(dm->xh)) {
        snprintf(err, errlen, "-xen-domid-restrict: %s", xen_last_error());
        return -EPERM;
    }
    dm->restricted = true;
    dm_log(DM_LOG_INFO, "Xen handles restricted to domain %u",
           dm->cfg->domid);
    return 0;
}

/* After restriction: what can no longer be done says why. */
static void dm_restricted(DeviceModel *dm)
{
    if (!dm->hp) {
        return;
    }
    hotplug_set_restricted(dm->hp, "the device model runs with "
                           "-xen-domid-restrict (dm_restrict): its Xen handles "
                           "cannot populate or release guest memory, and it "
                           "has no xenstore to take requests from");
    dm_log(DM_LOG_INFO, "RAM hot-plug is unavailable with "
           "-xen-domid-restrict (dm_restrict): populating memory needs "
           "unrestricted Xen handles and requests come through xenstore; "
           "hot-plugged RAM of an incoming guest is restored");
}

/* libxl's probe (-machine none): answer QMP, touch no guest. */
static int dm_run_probe(DeviceModel *dm, char *err, size_t errlen)
{
    int ret = dm_qmp_init(dm, err, errlen);

    if (ret) {
        return ret;
    }
    dm->status = DM_PRELAUNCH;
    return main_loop_run(dm->loop);
}

int dm_run(DMConfig *cfg)
{
    DeviceModel dm_storage = { .cfg = cfg, .sigfd = -1, .ioservid = -1,
                               .mig_evfd = -1 };
    DeviceModel *dm = &dm_storage;
    /* The device state through libxl's fd, or the guest from a peer. */
    bool engine_incoming = cfg->incoming_uri[0] || cfg->incoming_defer;
    bool fd_incoming = cfg->incoming_fd >= 0;   /* the read closes it */
    bool incoming = fd_incoming || engine_incoming;
    char err[1024] = "";
    bool ran = false;
    int ret, status = 1;

    log_level = cfg->log_level;
    xen_set_error_log(dm_xen_log);
    rcu_register_thread();
    ret = main_loop_new(&dm->loop);
    if (ret || (ret = dm_signals_init(dm))) {
        snprintf(err, sizeof(err), "cannot set up the main loop: %s",
                 strerror(-ret));
        goto out;
    }
    if (cfg->probe_only) {
        ret = dm_run_probe(dm, err, sizeof(err));
        status = ret < 0 ? 1 : ret;
        goto out;
    }

    snprintf(dm->xs_base, sizeof(dm->xs_base),
             "/local/domain/0/device-model/%u", cfg->domid);
    ret = xen_open(cfg->domid, cfg->domid_restrict ? XEN_OPEN_NO_XENSTORE : 0,
                   &dm->xh, err, sizeof(err));
    if (ret) {
        goto out;
    }
    if (xen_xs(dm->xh)) {
        char path[64], *v;
        int r;

        snprintf(path, sizeof(path), "/local/domain/%u/image/"
                 "device-model-domid", cfg->domid);
        v = xen_xs_read(dm->xh, path, &r);
        if (v) {
            dm_log(DM_LOG_DEBUG, "device-model-domid = %s", v);
            free(v);
        }
    }
    dm->ram_bytes = cfg->ram_mib * MiB;
    if (cfg->domid_restrict && engine_incoming) {
        /* recv.c populates frames and sets HVM parameters: domctls. */
        snprintf(err, sizeof(err), "-incoming %s cannot be used with "
                 "-xen-domid-restrict: xenram's own migration engine "
                 "populates the guest's memory and sets its HVM parameters, "
                 "which restricted Xen handles may not do; migrate with "
                 "libxl's stream (-incoming fd:N) or without dm_restrict",
                 cfg->incoming_defer ? "defer" : cfg->incoming_uri);
        goto out;
    }
    /*
     * The device state comes from a migration peer: with -xen-domid-
     * restrict, restrict before a byte of it is read, as QEMU does.  An
     * incoming guest's memory needs no populating, so everything after
     * works with restricted handles.
     */
    if (cfg->domid_restrict && fd_incoming) {
        ret = dm_restrict(dm, err, sizeof(err));
        if (ret) {
            goto out;
        }
    }
    if (fd_incoming) {
        ret = dm_incoming_read(dm, err, sizeof(err));
        if (ret) {
            goto out;
        }
    }
    ret = dm_memory_init(dm, incoming, err, sizeof(err));
    if (ret) {
        goto out;
    }
    if (fd_incoming) {
        ret = dm_incoming(dm, err, sizeof(err));
        if (ret) {
            goto out;
        }
    }
    /* A new guest: VRAM was populated above, before restriction. */
    if (cfg->domid_restrict && !dm->restricted) {
        ret = dm_restrict(dm, err, sizeof(err));
        if (ret) {
            goto out;
        }
    }
    if (dm->restricted) {
        dm_restricted(dm);
    }
    ret = dm_qmp_init(dm, err, sizeof(err));
    if (ret || (ret = dm_engine_init(dm, err, sizeof(err)))) {
        goto out;
    }
    ret = dm_drop_privileges(dm, err, sizeof(err));
    if (ret) {
        goto out;
    }
    ret = dm_testdev_init(dm, err, sizeof(err));
    if (ret) {
        goto out;
    }

    if (engine_incoming) {
        /* "inmigrate" until the engine has received the guest. */
        dm->status = DM_INMIGRATE;
    } else if (incoming && cfg->start_paused) {
        /* dm_restrict: libxl checks for "paused" and sends cont. */
    } else if (incoming) {
        /*
         * As QEMU without -S: run once the state is loaded.  libxl waits
         * for xenstore state = running before it goes on with the restore
         * (the domain itself stays paused until libxl unpauses it).
         */
        dm_set_status(dm, DM_RUNNING);
        dm_announce_running(dm);
    } else if (cfg->start_paused) {
        dm->status = DM_PRELAUNCH;
    } else {
        dm_set_status(dm, DM_RUNNING);
        dm_announce_running(dm);
    }
    /* The RAM kept, which a restore may have set apart from -m. */
    dm_log(DM_LOG_INFO, "domain %u: %" PRIu64 " MiB of RAM, %s", cfg->domid,
           dm->ram_bytes / MiB, status_names[dm->status]);

    ran = true;
    status = main_loop_run(dm->loop);
    if (status < 0) {
        dm_log(DM_LOG_ERROR, "main loop: %s", strerror(-status));
        status = 1;
    }

out:
    if (err[0]) {
        dm_log(DM_LOG_ERROR, "%s", err);
    }
    if (!ran && dm->hp) {
        /* The start failed after the restore: its answers go too. */
        hotplug_restore_undo(dm->hp);
    }
    testdev_free(dm->testdev);
    if (dm->mm) {
        modified_memory_flush(dm->mm);
    }
    if (dm->xh) {
        dm_xs_cleanup(dm);
    }
    qmp_server_free(dm->qmp);
    dm_memory_free(dm);
    if (dm->have_in_ds) {
        devstate_free(&dm->in_ds);
    }
    if (dm->xh) {
        xen_close(dm->xh);
    }
    if (dm->sigfd >= 0) {
        close(dm->sigfd);
    }
    main_loop_free(dm->loop);
    rcu_unregister_thread();
    return status;
}
