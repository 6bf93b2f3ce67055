/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-hotplug-sim.c - RAM hotplug through xenstore on the simulated host,
 * with Debian's real xenstored.
 *
 * The toolstack's side is played the way a toolstack would: Debian's own
 * xenstore-write / xenstore-chmod (build/xenstored/usr/bin, run with
 * XENSTORED_PATH) and the real libxenstore (transactions, watches); the
 * guest's side through its own store ring (xs_sim_guest_*), so xenstored
 * applies the guest's permissions.  The device model's side is xenram's
 * memory core and hotplug module, driven by a thread that plays the main
 * loop (poll the watch fd, hotplug_handle_watch()).
 *
 * Guest layout: 62 MiB of RAM from 0, 2 MiB of VRAM at 62 MiB (its
 * ram_addr), a 1 MiB MMIO region at 2 GiB, the "MMIO hole" [0xF0000000,
 * 4 GiB) reserved; the hotplug window is [32 MiB, 8 GiB) so that every
 * kind of overlap can be asked for.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "hotplug/hotplug.h"
#include "memory/access.h"
#include "memory/xen-memory.h"
#include "migration/migration.h"
#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"
#include "xen/sim/xenstore/xs-sim.h"
#include "xen/xen.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)
#define GUEST_MIB 64
#define VRAM_MIB 2
#define RAM_BYTES ((GUEST_MIB - VRAM_MIB) * MiB)
#define MMIO_GPA (2 * GiB)
#define CAP (512 * MiB)

#ifndef XENSTORED_DIR
#define XENSTORED_DIR "build/xenstored"
#endif

static struct simhost host;
static bool have_xenstore;
static char xs_socket[300], xs_rundir[256], tools[512];
static struct xs_handle *ts;        /* the toolstack's connection */

typedef struct Dm {
    uint32_t domid;
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_mr, vram_mr, mmio;
    RAMBlock *ram_block, *vram_block;
    MapCache *mc;
    XenMemory *xm;
    GuestMemory gm;
    Hotplug *hp;
    char memdir[96];
    pthread_t loop;
    bool stop;
} Dm;

/* ---- the toolstack --------------------------------------------------------- */

static uint64_t io_read(void *o, uint64_t a, unsigned int s)
{
    (void)o;
    (void)a;
    (void)s;
    return ~0ULL;
}

static const MemoryRegionOps mmio_ops = { .read = io_read };

/* Run one of Debian's xenstore tools; its exit status. */
static int tool(const char *name, ...)
{
    char *argv[16], path[600];
    va_list ap;
    int n = 0, status;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", tools, name);
    argv[n++] = path;
    va_start(ap, name);
    while (n < 15 && (argv[n] = va_arg(ap, char *))) {
        n++;
    }
    va_end(ap);
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("XENSTORED_PATH", xs_socket, 1);
        execv(path, argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *ts_read(Dm *dm, const char *slot, const char *key)
{
    char path[160];
    unsigned int len;

    snprintf(path, sizeof(path), "%s/%s/%s", dm->memdir, slot, key);
    return xs_read(ts, XBT_NULL, path, &len);
}

/* Wait (watch, bounded) until the device model took the request. */
static void ts_wait_answer(Dm *dm, const char *slot)
{
    char path[160], *v;
    bool gone = false;

    snprintf(path, sizeof(path), "%s/%s/action", dm->memdir, slot);
    assert_true(xs_watch(ts, path, "answer"));
    for (int i = 0; i < 200 && !gone; i++) {
        struct pollfd p = { .fd = xs_fileno(ts), .events = POLLIN };
        char **ev;

        v = xs_read(ts, XBT_NULL, path, NULL);
        gone = !v;
        free(v);
        if (!gone && poll(&p, 1, 50) > 0) {
            while ((ev = xs_check_watch(ts))) {
                free(ev);
            }
        }
    }
    xs_unwatch(ts, path, "answer");
    assert_true(gone);
}

/* The request is written with xenstore-write: size, start, action. */
static void cli_request(Dm *dm, const char *slot, const char *size,
                        const char *start, const char *action)
{
    char p_size[160], p_start[160], p_action[160];

    snprintf(p_size, sizeof(p_size), "%s/%s/size", dm->memdir, slot);
    snprintf(p_start, sizeof(p_start), "%s/%s/start", dm->memdir, slot);
    snprintf(p_action, sizeof(p_action), "%s/%s/action", dm->memdir, slot);
    if (size && start) {
        assert_int_equal(tool("xenstore-write", p_size, size, p_start, start,
                              p_action, action, NULL), 0);
    } else if (size) {
        assert_int_equal(tool("xenstore-write", p_size, size, p_action,
                              action, NULL), 0);
    } else {
        assert_int_equal(tool("xenstore-write", p_action, action, NULL), 0);
    }
    ts_wait_answer(dm, slot);
}

static void expect_state(Dm *dm, const char *slot, const char *state,
                         const char *error_part)
{
    char *s = ts_read(dm, slot, "state"), *e = ts_read(dm, slot, "error");

    assert_non_null(s);
    assert_non_null(e);
    if (strcmp(s, state) || (error_part && !strstr(e, error_part)) ||
        (!error_part && *e)) {
        fail_msg("slot %s: state '%s' error '%s'; wanted '%s' with '%s'",
                 slot, s, e, state, error_part ? error_part : "");
    }
    free(s);
    free(e);
}

static uint64_t tot_pages(Dm *dm)
{
    XenDomainInfo info;

    assert_int_equal(xen_domain_info(dm->xh, &info), 0);
    return info.tot_pages;
}

/*
 * Xen's maximum @mib MiB above what the domain was built with: `xl
 * mem-max` on a source, and on a migration's receiver what libxl gives it
 * when the source's target covered its hot-plugged RAM (`xl mem-set`;
 * libxl__build_pre sets target + 1 MiB, see docs/hotplug.md).
 */
static void raise_maxmem(Dm *dm, uint64_t mib)
{
    uint64_t args[6] = { ((GUEST_MIB + 1 + mib) * MiB) >> 10 };
    int err;

    assert_true(simhost_call(&host, XSIM_OP_DOM_SETMAXMEM, dm->domid, args,
                             NULL, 0, NULL, 0, &err) >= 0);
}

/* ---- the device model --------------------------------------------------------- */

static void *dm_loop(void *opaque)
{
    Dm *dm = opaque;
    struct pollfd p = { .fd = hotplug_watch_fd(dm->hp), .events = POLLIN };

    rcu_register_thread();
    while (!__atomic_load_n(&dm->stop, __ATOMIC_ACQUIRE)) {
        if (poll(&p, 1, 20) > 0) {
            hotplug_handle_watch(dm->hp);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static Dm *dm_new(bool incoming)
{
    struct xsim_create c = { .vcpus = 1, .mem_kb = GUEST_MIB << 10,
                             .vram_kb = VRAM_MIB << 10 };
    static const HotplugRange hole = { 0xf0000000, 4 * GiB, "MMIO hole" };
    Dm *dm = calloc(1, sizeof(*dm));
    HotplugConfig cfg;
    char err[256];
    int64_t id;
    int e;

    snprintf(c.workload, sizeof(c.workload), "idle");
    id = simhost_call(&host, XSIM_OP_DOM_CREATE, 0, NULL, &c, sizeof(c),
                      NULL, 0, &e);
    assert_true(id > 0);
    dm->domid = id;
    snprintf(dm->memdir, sizeof(dm->memdir),
             "/local/domain/0/device-model/%u/memory", dm->domid);
    assert_int_equal(xen_open(dm->domid, 0, &dm->xh, err, sizeof(err)), 0);
    assert_int_equal(ram_list_init(&dm->ram), 0);
    assert_int_equal(ram_block_add(&dm->ram, "xen.ram", RAM_BYTES, RAM_BYTES,
                                   NULL, 0, NULL, &dm->ram_block), 0);
    assert_int_equal(ram_block_add(&dm->ram, "vga.vram", VRAM_MIB * MiB,
                                   VRAM_MIB * MiB, NULL, RAM_XEN_POPULATE,
                                   NULL, &dm->vram_block), 0);
    assert_int_equal(memory_context_init(&dm->ctx, &dm->ram), 0);
    assert_int_equal(memory_region_init(&dm->root, &dm->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init_ram(&dm->ram_mr, &dm->ctx, "xen.ram",
                                            dm->ram_block), 0);
    assert_int_equal(memory_region_add_subregion(&dm->root, 0, &dm->ram_mr),
                     0);
    assert_int_equal(memory_region_init_io(&dm->mmio, &dm->ctx, "test-mmio",
                                           &mmio_ops, NULL, MiB), 0);
    assert_int_equal(memory_region_add_subregion(&dm->root, MMIO_GPA,
                                                 &dm->mmio), 0);
    assert_int_equal(address_space_init(&dm->as, &dm->ctx, &dm->root,
                                        "memory"), 0);
    assert_int_equal(mapcache_new(dm->xh, NULL, &dm->mc), 0);
    mapcache_set_incoming(dm->mc, incoming);
    assert_int_equal(xen_memory_new(dm->xh, &dm->ram, &dm->as, NULL, -1,
                                    incoming, &dm->xm), 0);
    assert_int_equal(memory_region_init_ram(&dm->vram_mr, &dm->ctx,
                                            "vga.vram", dm->vram_block), 0);
    assert_int_equal(memory_region_add_subregion(&dm->root,
                                                 dm->vram_block->offset,
                                                 &dm->vram_mr), 0);
    dm->gm = (GuestMemory) { .as = &dm->as, .ram = &dm->ram, .mc = dm->mc };
    cfg = (HotplugConfig) {
        .xh = dm->xh, .ram = &dm->ram, .ctx = &dm->ctx, .as = &dm->as,
        .root = &dm->root, .mc = dm->mc, .domid = dm->domid,
        .toolstack_domid = 0, .window_start = 32 * MiB,
        .window_end = 8 * GiB, .max_bytes = CAP, .align = 64 * MiB,
        .nr_slots = 8, .reserved = &hole, .nr_reserved = 1,
        .incoming = incoming,
    };
    if (hotplug_new(&cfg, &dm->hp, err, sizeof(err))) {
        fail_msg("hotplug_new: %s", err);
    }
    assert_int_equal(pthread_create(&dm->loop, NULL, dm_loop, dm), 0);
    return dm;
}

static void dm_free(Dm *dm)
{
    __atomic_store_n(&dm->stop, true, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(dm->loop, NULL), 0);
    hotplug_free(dm->hp);
    xen_memory_free(dm->xm);
    assert_int_equal(address_space_destroy(&dm->as), 0);
    memory_region_del_subregion(&dm->root, &dm->ram_mr);
    memory_region_del_subregion(&dm->root, &dm->vram_mr);
    memory_region_del_subregion(&dm->root, &dm->mmio);
    memory_region_destroy(&dm->ram_mr);
    memory_region_destroy(&dm->vram_mr);
    memory_region_destroy(&dm->mmio);
    memory_region_destroy(&dm->root);
    mapcache_destroy(dm->mc);
    synchronize_rcu();
    memory_context_destroy(&dm->ctx);
    ram_list_destroy(&dm->ram);
    xen_close(dm->xh);
    sim_destroy(&host, dm->domid);
    free(dm);
}

/* What a refused request must leave as it was. */
typedef struct Snap {
    uint64_t tot;
    uint32_t version;
    unsigned int ranges;
    HotplugStats st;
} Snap;

static Snap snap(Dm *dm)
{
    Snap s = { .tot = tot_pages(dm),
               .version = __atomic_load_n(&dm->ram.version,
                                          __ATOMIC_ACQUIRE) };

    rcu_read_lock();
    s.ranges = address_space_get_flatview(&dm->as)->nr;
    rcu_read_unlock();
    hotplug_get_stats(dm->hp, &s.st);
    return s;
}

static void assert_same(Dm *dm, const Snap *a)
{
    Snap b = snap(dm);

    assert_int_equal(a->tot, b.tot);
    assert_int_equal(a->version, b.version);
    assert_int_equal(a->ranges, b.ranges);
    assert_int_equal(a->st.plugged_bytes, b.st.plugged_bytes);
    assert_int_equal(a->st.plugged_slots, b.st.plugged_slots);
    assert_int_equal(a->st.adds, b.st.adds);
    assert_int_equal(a->st.removes, b.st.removes);
}

/* A request through xenstore-write that must be refused with @what. */
static void refused(Dm *dm, const char *slot, const char *size,
                    const char *start, const char *action, const char *what)
{
    Snap s = snap(dm);

    cli_request(dm, slot, size, start, action);
    expect_state(dm, slot, "error", what);
    assert_same(dm, &s);
}

#define SKIP_WITHOUT_XENSTORE()                                          \
    do {                                                                 \
        if (!have_xenstore) {                                            \
            print_message("no xenstored here (make xenstored): skipped\n"); \
            skip();                                                      \
        }                                                                \
    } while (0)

/* ---- tests ------------------------------------------------------------------ */

static void test_add_and_remove_through_xenstore_write(void **state)
{
    Dm *dm;
    uint64_t before, gfns[3], gpa = 4 * GiB;
    HotplugSlotInfo info;
    struct xsim_stamp_hdr hdr;
    char *v;

    (void)state;
    SKIP_WITHOUT_XENSTORE();
    dm = dm_new(false);
    raise_maxmem(dm, 256);
    before = tot_pages(dm);

    cli_request(dm, "1", "33554432", "0x100000000", "add");
    expect_state(dm, "1", "online", NULL);
    v = ts_read(dm, "1", "gpa");
    assert_string_equal(v, "0x100000000");
    free(v);
    assert_int_equal(tot_pages(dm), before + ((32 * MiB) >> 12));

    /* The guest and the device model see the same new frames. */
    gfns[0] = gpa >> 12;
    gfns[1] = (gpa >> 12) + 4095;
    gfns[2] = (gpa >> 12) + 8191;
    assert_int_equal(sim_guest_write(&host, dm->domid, gfns, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(guest_memory_read(&dm->gm, gfns[i] << 12, &hdr,
                                           sizeof(hdr)), 0);
        assert_int_equal(hdr.magic, XSIM_STAMP_MAGIC);
        assert_int_equal(hdr.gfn, gfns[i]);
    }
    /* A new block: dirty for every client, slot known for migration. */
    assert_int_equal(hotplug_slot_info(dm->hp, 1, &info), 0);
    assert_int_equal(dirty_memory_all(&dm->ram.dirty,
                                      info.block->offset >> 12,
                                      (32 * MiB) >> 12,
                                      DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(hotplug_block_slot(dm->hp, info.block), 1);
    assert_int_equal(xen_memory_errors(dm->xm), 0);

    cli_request(dm, "1", NULL, NULL, "remove");
    expect_state(dm, "1", "removed", NULL);
    assert_null(ts_read(dm, "1", "gpa"));
    assert_int_equal(tot_pages(dm), before);
    assert_int_equal(guest_memory_read(&dm->gm, gpa, &hdr, sizeof(hdr)),
                     -EFAULT);
    /* The guest's frames are gone too. */
    assert_int_equal(sim_guest_write(&host, dm->domid, gfns, 3), 0);
    dm_free(dm);
}

static void test_transaction_request_with_automatic_placement(void **state)
{
    Dm *dm;
    char path[160], *v;
    xs_transaction_t t;
    bool ok;

    (void)state;
    SKIP_WITHOUT_XENSTORE();
    dm = dm_new(false);
    raise_maxmem(dm, 256);
    /* What libxl-style code does: one transaction, retried on EAGAIN. */
    do {
        t = xs_transaction_start(ts);
        assert_true(t != XBT_NULL);
        snprintf(path, sizeof(path), "%s/0/size", dm->memdir);
        assert_true(xs_write(ts, t, path, "0x2000000", 9));
        snprintf(path, sizeof(path), "%s/0/start", dm->memdir);
        assert_true(xs_write(ts, t, path, "auto", 4));
        snprintf(path, sizeof(path), "%s/0/action", dm->memdir);
        assert_true(xs_write(ts, t, path, "add", 3));
        ok = xs_transaction_end(ts, t, false);
    } while (!ok && errno == EAGAIN);
    assert_true(ok);
    ts_wait_answer(dm, "0");
    expect_state(dm, "0", "online", NULL);
    /* The first 64 MiB boundary past RAM and VRAM. */
    v = ts_read(dm, "0", "gpa");
    assert_string_equal(v, "0x4000000");
    free(v);
    dm_free(dm);
}

static void test_bad_requests_end_in_error_and_change_nothing(void **state)
{
    Dm *dm;
    uint64_t len = 4096;
    char *v;
    void *p;
    int e;

    (void)state;
    SKIP_WITHOUT_XENSTORE();
    dm = dm_new(false);
    raise_maxmem(dm, 2048);
    refused(dm, "0", "4097", "0x100000000", "add",
            "not a multiple of the 4 KiB page size");
    refused(dm, "0", "4096", "0x100000800", "add", "not aligned");
    refused(dm, "0", "12abc", "auto", "add", "size '12abc' is not a number");
    refused(dm, "0", "4096", "high", "add", "start 'high' is not an address");
    refused(dm, "0", "0x4000000", "0x2000000", "add",
            "overlaps RAM 'xen.ram'");
    refused(dm, "0", "0x4000000", "0x3e00000", "add",
            "overlaps RAM 'vga.vram'");
    refused(dm, "0", "0x4000000", "0x7ff00000", "add",
            "overlaps MMIO 'test-mmio'");
    refused(dm, "0", "0x4000000", "0xf8000000", "add",
            "overlaps the reserved range [0xf0000000, 0x100000000) (MMIO "
            "hole)");
    refused(dm, "0", "0x4000000", "0x200000000", "add",
            "outside the hotplug window");
    refused(dm, "0", "0x40000000", "auto", "add",
            "would exceed the 512 MiB the guest may hot-plug");
    refused(dm, "9", "4096", "auto", "add",
            "'9' is not a slot: slots are numbered 0 to 7");
    refused(dm, "dimm", "4096", "auto", "add", "'dimm' is not a slot");
    refused(dm, "0", "4096", "auto", "unplug", "unknown action 'unplug'");
    refused(dm, "3", NULL, NULL, "remove", "slot 3 is empty");

    /* Xen's own limit (xl mem-max) is checked too. */
    raise_maxmem(dm, 8);
    refused(dm, "0", "0x2000000", "auto", "add",
            "exceed its maximum memory; raise it first (xl mem-max, and "
            "xl mem-set to include the new RAM)");
    raise_maxmem(dm, 2048);

    /* Double add: the slot stays online where it is. */
    cli_request(dm, "2", "0x1000000", "0x100000000", "add");
    expect_state(dm, "2", "online", NULL);
    refused(dm, "2", "0x1000000", "0x180000000", "add",
            "slot 2 is already online (16 MiB at 0x100000000)");
    v = ts_read(dm, "2", "gpa");
    assert_string_equal(v, "0x100000000");
    free(v);

    /* Remove while a device holds a DMA mapping of it. */
    p = guest_memory_map(&dm->gm, 0x100000000 + 12 * MiB, &len, true, &e);
    assert_non_null(p);
    refused(dm, "2", NULL, NULL, "remove",
            "slot 2 is in use: 1 DMA mapping of the device model holds "
            "memory in [0x100000000, 0x101000000); retry when the device "
            "has finished");
    assert_int_equal(guest_memory_unmap(&dm->gm, p, 0x100000000 + 12 * MiB,
                                        len, true, len), 0);
    cli_request(dm, "2", NULL, NULL, "remove");
    expect_state(dm, "2", "removed", NULL);
    dm_free(dm);
}

static void test_the_guest_cannot_ask_for_memory(void **state)
{
    struct xs_permissions *perms;
    struct xs_sim_guest *g;
    char path[160], dom[16], *v = NULL;
    unsigned int n;
    Snap s;
    Dm *dm;

    (void)state;
    SKIP_WITHOUT_XENSTORE();
    dm = dm_new(false);
    raise_maxmem(dm, 256);
    /* memory/ belongs to the toolstack; nobody else may read or write. */
    perms = xs_get_permissions(ts, XBT_NULL, dm->memdir, &n);
    assert_non_null(perms);
    assert_int_equal(n, 1);
    assert_int_equal(perms[0].id, 0);
    assert_int_equal(perms[0].perms, XS_PERM_NONE);
    free(perms);

    assert_int_equal(xs_sim_guest_open(xs_rundir, dm->domid, &g), 0);
    s = snap(dm);
    snprintf(path, sizeof(path), "%s/4/size", dm->memdir);
    assert_int_equal(xs_sim_guest_write(g, path, "0x1000000"), -EACCES);
    snprintf(path, sizeof(path), "%s/4/action", dm->memdir);
    assert_int_equal(xs_sim_guest_write(g, path, "add"), -EACCES);
    assert_int_equal(xs_sim_guest_read(g, dm->memdir, &v), -EACCES);
    assert_null(ts_read(dm, "4", "state"));

    /* A toolstack that opened slot 5 to the guest by mistake. */
    snprintf(path, sizeof(path), "%s/5", dm->memdir);
    snprintf(dom, sizeof(dom), "b%u", dm->domid);
    assert_int_equal(tool("xenstore-write", path, "", NULL), 0);
    assert_int_equal(tool("xenstore-chmod", path, "n0", dom, NULL), 0);
    snprintf(path, sizeof(path), "%s/5/size", dm->memdir);
    assert_int_equal(xs_sim_guest_write(g, path, "0x1000000"), 0);
    snprintf(path, sizeof(path), "%s/5/action", dm->memdir);
    assert_int_equal(xs_sim_guest_write(g, path, "add"), 0);
    ts_wait_answer(dm, "5");
    snprintf(path, sizeof(path), "the request was written by domain %u "
             "(action): only the toolstack (domain 0) may ask for memory "
             "hotplug", dm->domid);
    expect_state(dm, "5", "error", path);
    assert_same(dm, &s);
    xs_sim_guest_close(g);
    dm_free(dm);
}

/* migration/ reaches hot-plug through these, as xen/dm/devmodel.c wires it. */
static uint32_t mig_block_slot(void *o, const RAMBlock *b)
{
    return hotplug_block_slot(o, b);
}

static int mig_restore(void *o, const MigrationHotplugSlot *slots,
                       unsigned int n, char *err, size_t errlen)
{
    HotplugRestoreSlot rs[HOTPLUG_MAX_SLOTS];

    assert_true(n <= HOTPLUG_MAX_SLOTS);
    for (unsigned int i = 0; i < n; i++) {
        rs[i] = (HotplugRestoreSlot) { .slot = slots[i].slot,
                                       .idstr = slots[i].idstr,
                                       .gpa = slots[i].gpa,
                                       .size = slots[i].size };
    }
    return hotplug_restore_slots(o, rs, n, err, errlen);
}

static void mig_set_blocked(void *o, const char *reason)
{
    hotplug_set_blocked(o, reason);
}

static void mig_set_incoming(void *o, bool incoming)
{
    hotplug_set_incoming(o, incoming);
}

/* The migration context of @dm, as the device model sets it up. */
static Migration *dm_migration(Dm *dm)
{
    MigrationConfig mc = {
        .ram = &dm->ram, .as = &dm->as, .mc = dm->mc, .xm = dm->xm,
        .hotplug = { .block_slot = mig_block_slot, .restore = mig_restore,
                     .set_blocked = mig_set_blocked,
                     .set_incoming = mig_set_incoming, .opaque = dm->hp },
    };
    Migration *m = NULL;

    assert_int_equal(migration_new(&mc, &m), 0);
    return m;
}

static void test_migration_carries_the_slot_and_its_keys(void **state)
{
    Dm *src, *dst;
    Migration *mig;
    DevState ds, in;
    uint8_t *buf;
    size_t len;
    char err[256], *v;
    uint64_t gfn = 0x180000000 >> 12, before;
    struct xsim_stamp_hdr hdr;
    int restored = 0;

    (void)state;
    SKIP_WITHOUT_XENSTORE();
    src = dm_new(false);
    raise_maxmem(src, 256);
    cli_request(src, "6", "0x2000000", "0x180000000", "add");
    expect_state(src, "6", "online", NULL);

    /* Source: the slot number travels in the device state. */
    mig = dm_migration(src);
    assert_int_equal(migration_layout_capture(mig, &ds), 0);
    migration_free(mig);
    assert_int_equal(devstate_encode(&ds, &buf, &len, err, sizeof(err)), 0);
    devstate_free(&ds);
    assert_int_equal(devstate_decode(buf, len, &in, err, sizeof(err)), 0);
    free(buf);

    /* Destination: libxc brought the frames (populated here by hand),
     * into a domain whose maximum libxl took from a target that covers
     * them (the toolstack's mem-set on the source). */
    dst = dm_new(true);
    raise_maxmem(dst, 256);
    assert_int_equal(xen_populate(dst->xh, gfn, (32 * MiB) >> 12), 0);
    for (uint32_t i = 0; i < in.nblocks; i++) {
        DevStateBlock *b = &in.blocks[i];

        if (!(b->flags & RAM_HOTPLUGGED)) {
            continue;
        }
        assert_int_equal(b->hotplug_slot, 6);
        assert_int_equal(b->nranges, 1);
        restored++;
    }
    assert_int_equal(restored, 1);
    /* What -incoming fd:N does with it. */
    mig = dm_migration(dst);
    if (migration_incoming_apply(mig, &in, err, sizeof(err))) {
        fail_msg("restore: %s", err);
    }
    migration_free(mig);
    devstate_free(&in);

    /* The keys are there again, under the new domid, as an online slot. */
    expect_state(dst, "6", "online", NULL);
    v = ts_read(dst, "6", "gpa");
    assert_string_equal(v, "0x180000000");
    free(v);
    v = ts_read(dst, "6", "size");
    assert_string_equal(v, "33554432");
    free(v);
    /* And the memory is the guest's. */
    assert_int_equal(sim_guest_write(&host, dst->domid, &gfn, 1), 1);
    assert_int_equal(guest_memory_read(&dst->gm, gfn << 12, &hdr,
                                       sizeof(hdr)), 0);
    assert_int_equal(hdr.gfn, gfn);
    /* The toolstack can remove it on the destination. */
    before = tot_pages(dst);
    cli_request(dst, "6", NULL, NULL, "remove");
    expect_state(dst, "6", "removed", NULL);
    assert_int_equal(tot_pages(dst), before - ((32 * MiB) >> 12));
    dm_free(dst);
    dm_free(src);
}

static int group_setup(void **state)
{
    const char *dirs[] = { getenv("XS_SIM_XENSTORED_DIR"), XENSTORED_DIR };

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(dirs) && !tools[0]; i++) {
        char p[600];

        snprintf(p, sizeof(p), "%s/usr/bin/xenstore-write",
                 dirs[i] ? dirs[i] : "");
        if (dirs[i] && access(p, X_OK) == 0) {
            snprintf(tools, sizeof(tools), "%s/usr/bin", dirs[i]);
        }
    }
    if (tools[0] && simhost_start_xs(&host, NULL, "on") == 0) {
        have_xenstore = true;
    } else if (simhost_start(&host, NULL)) {
        return -1;
    }
    if (have_xenstore) {
        snprintf(xs_rundir, sizeof(xs_rundir), "%s/xenstored", host.dir);
        snprintf(xs_socket, sizeof(xs_socket), "%s/socket", xs_rundir);
        setenv("XENSTORED_PATH", xs_socket, 1);
        ts = xs_open(XS_OPEN_SOCKETONLY);
        have_xenstore = ts != NULL;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (ts) {
        xs_close(ts);
    }
    return simhost_stop(&host);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_remove_through_xenstore_write),
        cmocka_unit_test(test_transaction_request_with_automatic_placement),
        cmocka_unit_test(test_bad_requests_end_in_error_and_change_nothing),
        cmocka_unit_test(test_the_guest_cannot_ask_for_memory),
        cmocka_unit_test(test_migration_carries_the_slot_and_its_keys),
    };
    int ret;

    sim_test_init(argc, argv, 180);
    xen_set_error_log(NULL);
    rcu_register_thread();
    ret = cmocka_run_group_tests_name("hotplug-sim", tests, group_setup,
                                      group_teardown);
    rcu_unregister_thread();
    return ret;
}
