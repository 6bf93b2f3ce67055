/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-memory-sim.c - the device model's memory core on the simulated Xen
 * host: Xen handles, the mapcache, guest memory access, modified_memory
 * forwarding and the Xen listener, all over the real Debian libraries'
 * interface (run on the stand-ins).
 *
 * The central property: while log-dirty is on, every page the device model
 * writes is in Xen's log once the forwarder has been flushed -- and
 * without forwarding it is not, because Xen does not log writes made
 * through a foreign mapping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memory/access.h"
#include "memory/xen-memory.h"
#include "tests/integration/sim/simtest.h"
#include "xen/xen.h"

#define MiB (1024ULL * 1024)
#define GUEST_MIB 32
#define VRAM_MIB 2
#define RAM_BYTES ((GUEST_MIB - VRAM_MIB) * MiB)

static struct simhost host;

typedef struct Dm {
    uint32_t domid;
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_mr, vram_mr;
    RAMBlock *ram_block, *vram_block;
    MapCache *mc;
    ModifiedMemory *mm;
    XenMemory *xm;
    GuestMemory gm;
} Dm;

/* A domain as libxl builds it: RAM populated by the toolstack, VRAM not. */
static int create_domain(const char *workload)
{
    struct xsim_create c = { .vcpus = 1, .mem_kb = GUEST_MIB << 10,
                             .vram_kb = VRAM_MIB << 10 };
    int err;
    int64_t id;

    snprintf(c.workload, sizeof(c.workload), "%s", workload);
    id = simhost_call(&host, XSIM_OP_DOM_CREATE, 0, NULL, &c, sizeof(c),
                      NULL, 0, &err);
    return id < 0 ? -err : (int)id;
}

static Dm *dm_new(const char *workload)
{
    Dm *dm = calloc(1, sizeof(*dm));
    ModifiedMemoryConfig mcfg = { .batch = 64, .max_delay_ms = 0 };
    char err[256];
    int id = create_domain(workload);

    assert_true(id > 0);
    dm->domid = id;
    assert_int_equal(xen_open(dm->domid, XEN_OPEN_NO_XENSTORE, &dm->xh, err,
                              sizeof(err)), 0);
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
    assert_int_equal(address_space_init(&dm->as, &dm->ctx, &dm->root,
                                        "memory"), 0);
    assert_int_equal(mapcache_new(dm->xh, NULL, &dm->mc), 0);
    assert_int_equal(modified_memory_new(dm->xh, &mcfg, &dm->mm), 0);
    assert_int_equal(xen_memory_new(dm->xh, &dm->ram, &dm->as, NULL, -1,
                                    false, &dm->xm), 0);
    /* VRAM appears after the listener: it populates it. */
    assert_int_equal(memory_region_init_ram(&dm->vram_mr, &dm->ctx,
                                            "vga.vram", dm->vram_block), 0);
    assert_int_equal(memory_region_add_subregion(&dm->root,
                                                 dm->vram_block->offset,
                                                 &dm->vram_mr), 0);
    assert_int_equal(xen_memory_errors(dm->xm), 0);
    dm->gm = (GuestMemory) { .as = &dm->as, .ram = &dm->ram, .mc = dm->mc,
                             .mm = dm->mm };
    return dm;
}

static void dm_free(Dm *dm)
{
    xen_memory_free(dm->xm);
    modified_memory_free(dm->mm);
    mapcache_destroy(dm->mc);
    assert_int_equal(address_space_destroy(&dm->as), 0);
    memory_region_del_subregion(&dm->root, &dm->ram_mr);
    memory_region_del_subregion(&dm->root, &dm->vram_mr);
    memory_region_destroy(&dm->ram_mr);
    memory_region_destroy(&dm->vram_mr);
    memory_region_destroy(&dm->root);
    synchronize_rcu();
    memory_context_destroy(&dm->ctx);
    ram_list_destroy(&dm->ram);
    xen_close(dm->xh);
    sim_destroy(&host, dm->domid);
    free(dm);
}

/* Random RAM pages outside the VGA hole, distinct. */
static void pick_gfns(uint64_t *gfns, int n, unsigned int seed)
{
    for (int i = 0; i < n; i++) {
        uint64_t g;
        bool dup;

        do {
            g = 0x100 + rand_r(&seed) % ((RAM_BYTES >> 12) - 0x100);
            dup = false;
            for (int k = 0; k < i; k++) {
                dup |= gfns[k] == g;
            }
        } while (dup);
        gfns[i] = g;
    }
}

static unsigned long *read_log(Dm *dm, bool clear)
{
    uint64_t npages = (dm->vram_block->offset + VRAM_MIB * MiB) >> 12;
    unsigned long *bm = calloc(BITS_TO_LONGS(npages), sizeof(long));

    assert_non_null(bm);
    assert_int_equal(xen_logdirty_read(dm->xh, bm, npages, clear, false,
                                       NULL), 0);
    return bm;
}

static void test_device_writes_are_in_xen_log_after_flush(void **state)
{
    Dm *dm = dm_new("random:4");        /* the guest writes meanwhile */
    uint64_t gfns[300];
    uint8_t page[4096];
    unsigned long *bm;

    (void)state;
    /* The toolstack's part: log-dirty on, global dirty log on. */
    assert_int_equal(xen_logdirty_enable(dm->xh), 0);
    free(read_log(dm, true));
    modified_memory_set_enabled(dm->mm, true);

    pick_gfns(gfns, 300, 7);
    for (int i = 0; i < 300; i++) {
        memset(page, i, sizeof(page));
        assert_int_equal(guest_memory_write(&dm->gm, gfns[i] << 12, page,
                                            sizeof(page)), 0);
    }
    /* What `stop` does before it answers. */
    assert_int_equal(modified_memory_flush(dm->mm), 0);
    bm = read_log(dm, true);
    for (int i = 0; i < 300; i++) {
        assert_true(xr_test_bit(gfns[i], bm));
    }
    free(bm);
    xen_logdirty_disable(dm->xh);
    dm_free(dm);
}

static void test_without_forwarding_xen_does_not_see_device_writes(
    void **state)
{
    Dm *dm = dm_new("idle");
    uint64_t gfns[100];
    uint8_t page[4096] = { 1 };
    unsigned long *bm;
    int seen = 0;

    (void)state;
    assert_int_equal(xen_logdirty_enable(dm->xh), 0);
    free(read_log(dm, true));
    pick_gfns(gfns, 100, 11);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(guest_memory_write(&dm->gm, gfns[i] << 12, page,
                                            sizeof(page)), 0);
    }
    assert_int_equal(modified_memory_flush(dm->mm), 0);
    bm = read_log(dm, true);
    for (int i = 0; i < 100; i++) {
        seen += xr_test_bit(gfns[i], bm);
    }
    assert_int_equal(seen, 0);
    free(bm);
    dm_free(dm);
}

static void test_reports_are_batched_not_one_call_per_write(void **state)
{
    Dm *dm = dm_new("idle");
    uint64_t gfns[1000];
    uint8_t page[4096] = { 2 };
    ModifiedMemoryStats st;

    (void)state;
    modified_memory_set_enabled(dm->mm, true);
    pick_gfns(gfns, ARRAY_SIZE(gfns), 3);
    for (size_t i = 0; i < ARRAY_SIZE(gfns); i++) {
        assert_int_equal(guest_memory_write(&dm->gm, gfns[i] << 12, page,
                                            sizeof(page)), 0);
    }
    assert_int_equal(modified_memory_flush(dm->mm), 0);
    modified_memory_stats(dm->mm, &st);
    assert_int_equal(st.errors, 0);
    assert_true(st.hypercalls <= 20);   /* batches of 64 extents here */
    assert_true(st.pages >= ARRAY_SIZE(gfns));
    dm_free(dm);
}

static void test_guest_writes_are_mirrored_into_migration(void **state)
{
    Dm *dm = dm_new("idle");
    uint64_t gfns[50];
    int64_t n;

    (void)state;
    assert_int_equal(xen_logdirty_enable(dm->xh), 0);
    free(read_log(dm, true));
    dirty_memory_test_and_clear(&dm->ram.dirty, 0,
                                dirty_memory_pages(&dm->ram.dirty),
                                DIRTY_MEMORY_MIGRATION);
    pick_gfns(gfns, 50, 5);
    assert_int_equal(sim_guest_write(&host, dm->domid, gfns, 50), 50);
    n = xen_memory_sync_migration(dm->xm, true);
    assert_true(n >= 50);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(dirty_memory_get(&dm->ram.dirty, gfns[i], 1,
                                          DIRTY_MEMORY_MIGRATION), 1);
    }
    /* CLEAN cleared Xen's log. */
    assert_int_equal(xen_memory_sync_migration(dm->xm, true), 0);
    xen_logdirty_disable(dm->xh);
    dm_free(dm);
}

static void test_vram_is_populated_and_tracked_into_vga(void **state)
{
    Dm *dm = dm_new("idle");
    uint64_t vgfn = dm->vram_block->offset >> 12;
    uint64_t gfns[3] = { vgfn, vgfn + 17, vgfn + 511 };
    uint8_t buf[4096] = { 9 };

    (void)state;
    /* Populated by the listener: the device model can write it. */
    assert_int_equal(guest_memory_write(&dm->gm, vgfn << 12, buf, 4096), 0);
    assert_int_equal(memory_region_set_log(&dm->vram_mr, true,
                                           DIRTY_MEMORY_VGA), 0);
    /* The first sync reports everything (a new range); start clean. */
    assert_int_equal(memory_region_sync_dirty_bitmap(&dm->vram_mr), 0);
    dirty_memory_test_and_clear(&dm->ram.dirty, vgfn, 512, DIRTY_MEMORY_VGA);

    assert_int_equal(sim_guest_write(&host, dm->domid, gfns, 3), 3);
    assert_int_equal(memory_region_sync_dirty_bitmap(&dm->vram_mr), 0);
    assert_int_equal(dirty_memory_get(&dm->ram.dirty, vgfn, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&dm->ram.dirty, vgfn + 17, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&dm->ram.dirty, vgfn + 511, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&dm->ram.dirty, vgfn + 1, 16,
                                      DIRTY_MEMORY_VGA), 0);
    assert_int_equal(xen_memory_errors(dm->xm), 0);
    dm_free(dm);
}

static void test_unpopulated_frames_are_refused_not_crashed_on(void **state)
{
    Dm *dm = dm_new("idle");
    uint8_t buf[16];

    (void)state;
    /* The VGA hole is never populated in an HVM guest. */
    assert_int_equal(guest_memory_read(&dm->gm, 0xa0000, buf, sizeof(buf)),
                     -EFAULT);
    assert_int_equal(guest_memory_read(&dm->gm, 0x9f000, buf, sizeof(buf)),
                     0);
    dm_free(dm);
}

static int group_setup(void **state)
{
    (void)state;
    return simhost_start(&host, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_writes_are_in_xen_log_after_flush),
        cmocka_unit_test(test_without_forwarding_xen_does_not_see_device_writes),
        cmocka_unit_test(test_reports_are_batched_not_one_call_per_write),
        cmocka_unit_test(test_guest_writes_are_mirrored_into_migration),
        cmocka_unit_test(test_vram_is_populated_and_tracked_into_vga),
        cmocka_unit_test(test_unpopulated_frames_are_refused_not_crashed_on),
    };
    int ret;

    sim_test_init(argc, argv, 120);
    rcu_register_thread();
    ret = cmocka_run_group_tests_name("memory-sim", tests, group_setup,
                                      group_teardown);
    rcu_unregister_thread();
    return ret;
}
