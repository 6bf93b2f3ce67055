/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the Xen listener: population of the device model's own
 * RAM, ioreq ranges for I/O regions, VRAM tracking mirrored into the VGA
 * client, and the own-engine log-dirty mirror into MIGRATION.  The Xen
 * calls are replaced with the linker's --wrap by recorders.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memory/xen-memory.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)

/* ---- recorders ------------------------------------------------------------ */

static struct {
    int populate_calls;
    uint64_t populate_gfn, populate_n;
    int populate_ret;
    int zero_calls;
    uint64_t zero_gfn, zero_n;
    int map_calls, unmap_calls;
    bool map_mmio;
    uint64_t map_start, map_end;
    int track_calls;
    uint64_t track_gfn;
    uint32_t track_nr;
    int track_ret;
    unsigned long track_bits;
    int logdirty_calls;
    bool logdirty_clear;
    uint64_t logdirty_npages;
    uint64_t dirty_gfns[4];
    int ndirty_gfns;
} rec;

int __wrap_xen_populate(XenHandles *xh, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_populate(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    (void)xh;
    rec.populate_calls++;
    rec.populate_gfn = gfn;
    rec.populate_n = n;
    return rec.populate_ret;
}

/* Fresh frames are cleared: the fake's pages are nowhere, only counted. */
int __wrap_xen_zero_frames(XenHandles *xh, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_zero_frames(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    (void)xh;
    rec.zero_calls++;
    rec.zero_gfn = gfn;
    rec.zero_n = n;
    return 0;
}

int __wrap_xen_ioreq_map_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                               uint64_t start, uint64_t end);
int __wrap_xen_ioreq_map_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                               uint64_t start, uint64_t end)
{
    (void)xh;
    assert_int_equal(id, 3);
    rec.map_calls++;
    rec.map_mmio = is_mmio;
    rec.map_start = start;
    rec.map_end = end;
    return 0;
}

int __wrap_xen_ioreq_unmap_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                                 uint64_t start, uint64_t end);
int __wrap_xen_ioreq_unmap_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                                 uint64_t start, uint64_t end)
{
    (void)xh;
    (void)id;
    (void)is_mmio;
    assert_int_equal(start, rec.map_start);
    assert_int_equal(end, rec.map_end);
    rec.unmap_calls++;
    return 0;
}

int __wrap_xen_track_dirty_vram(XenHandles *xh, uint64_t first_pfn,
                                uint32_t nr, unsigned long *bitmap);
int __wrap_xen_track_dirty_vram(XenHandles *xh, uint64_t first_pfn,
                                uint32_t nr, unsigned long *bitmap)
{
    (void)xh;
    rec.track_calls++;
    rec.track_gfn = first_pfn;
    rec.track_nr = nr;
    if (bitmap && nr) {
        bitmap[0] = rec.track_bits;
    }
    return rec.track_ret;
}

int __wrap_xen_logdirty_read(XenHandles *xh, unsigned long *bitmap,
                             uint64_t npages, bool clear, bool final,
                             XenLogDirtyStats *stats);
int __wrap_xen_logdirty_read(XenHandles *xh, unsigned long *bitmap,
                             uint64_t npages, bool clear, bool final,
                             XenLogDirtyStats *stats)
{
    (void)xh;
    (void)final;
    (void)stats;
    rec.logdirty_calls++;
    rec.logdirty_clear = clear;
    rec.logdirty_npages = npages;
    for (int i = 0; i < rec.ndirty_gfns; i++) {
        assert_true(rec.dirty_gfns[i] < npages);
        xr_set_bit(rec.dirty_gfns[i], bitmap);
    }
    return 0;
}

/* ---- the guest ------------------------------------------------------------ */

typedef struct Guest {
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as, io;
    MemoryRegion root, ioroot, ram_low, ram_high, ram_mr, vram, vram2, mmio,
                 ports;
    RAMBlock *b_ram, *b_vram;
} Guest;

static XenHandles *const fake_xh = (XenHandles *)(uintptr_t)0x1000;

static uint64_t io_read(void *o, uint64_t a, unsigned int s)
{
    (void)o;
    (void)a;
    (void)s;
    return 0;
}

static const MemoryRegionOps ops = { .read = io_read };

static int setup(void **state)
{
    Guest *g = calloc(1, sizeof(*g));

    memset(&rec, 0, sizeof(rec));
    assert_int_equal(ram_list_init(&g->ram), 0);
    /* Main RAM: 16 MiB, guest-physical [0, 8 MiB) and [4 GiB, +8 MiB). */
    assert_int_equal(ram_block_add(&g->ram, "xen.ram", 16 * MiB, 16 * MiB,
                                   NULL, 0, NULL, &g->b_ram), 0);
    assert_int_equal(ram_block_add(&g->ram, "vga.vram", 2 * MiB, 2 * MiB,
                                   NULL, RAM_XEN_POPULATE, NULL, &g->b_vram),
                     0);
    assert_int_equal(memory_context_init(&g->ctx, &g->ram), 0);
    assert_int_equal(memory_region_init(&g->root, &g->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init(&g->ioroot, &g->ctx, "io", 65536),
                     0);
    assert_int_equal(memory_region_init_ram(&g->ram_mr, &g->ctx, "xen.ram",
                                            g->b_ram), 0);
    assert_int_equal(memory_region_init_alias(&g->ram_low, "ram.lo",
                                              &g->ram_mr, 0, 8 * MiB), 0);
    assert_int_equal(memory_region_init_alias(&g->ram_high, "ram.hi",
                                              &g->ram_mr, 8 * MiB, 8 * MiB),
                     0);
    assert_int_equal(memory_region_init_ram(&g->vram, &g->ctx, "vga.vram",
                                            g->b_vram), 0);
    assert_int_equal(memory_region_init_alias(&g->vram2, "vram.alias",
                                              &g->vram, 0, 1 * MiB), 0);
    assert_int_equal(memory_region_init_io(&g->mmio, &g->ctx, "mmio", &ops,
                                           NULL, 4096), 0);
    assert_int_equal(memory_region_init_io(&g->ports, &g->ctx, "ports", &ops,
                                           NULL, 8), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0, &g->ram_low),
                     0);
    assert_int_equal(memory_region_add_subregion(&g->root, 4 * GiB,
                                                 &g->ram_high), 0);
    assert_int_equal(address_space_init(&g->as, &g->ctx, &g->root, "memory"),
                     0);
    assert_int_equal(address_space_init(&g->io, &g->ctx, &g->ioroot, "io"),
                     0);
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    Guest *g = *state;

    /* Children before parents, aliases before what they show. */
    MemoryRegion *order[] = { &g->ram_low, &g->ram_high, &g->vram2,
                              &g->vram, &g->mmio, &g->ports, &g->ram_mr,
                              &g->root, &g->ioroot };

    assert_int_equal(address_space_destroy(&g->as), 0);
    assert_int_equal(address_space_destroy(&g->io), 0);
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        if (order[i]->parent) {
            assert_int_equal(memory_region_del_subregion(order[i]->parent,
                                                         order[i]), 0);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        assert_int_equal(memory_region_destroy(order[i]), 0);
    }
    synchronize_rcu();
    assert_int_equal(memory_context_destroy(&g->ctx), 0);
    ram_list_destroy(&g->ram);
    free(g);
    return 0;
}

static XenMemory *listen(Guest *g, int ioservid, bool incoming)
{
    XenMemory *xm = NULL;

    assert_int_equal(xen_memory_new(fake_xh, &g->ram, &g->as, &g->io,
                                    ioservid, incoming, &xm), 0);
    return xm;
}

static void test_own_ram_is_populated_once_at_its_ram_addr(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    assert_int_equal(rec.populate_calls, 1);
    assert_int_equal(rec.populate_gfn, g->b_vram->offset >> 12);
    assert_int_equal(rec.populate_n, (2 * MiB) >> 12);
    /* ... and cleared: Xen's fresh frames may hold another domain's data. */
    assert_int_equal(rec.zero_calls, 1);
    assert_int_equal(rec.zero_gfn, rec.populate_gfn);
    assert_int_equal(rec.zero_n, rec.populate_n);
    /* Seen a second time (through an alias): not populated again. */
    assert_int_equal(memory_region_add_subregion(&g->root, 0xe0000000,
                                                 &g->vram2), 0);
    assert_int_equal(rec.populate_calls, 1);
    assert_int_equal(xen_memory_errors(xm), 0);
    xen_memory_free(xm);
}

static void test_main_ram_is_never_populated(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);

    /* The replay at registration showed the main RAM ranges. */
    assert_int_equal(rec.populate_calls, 0);
    xen_memory_free(xm);
}

static void test_nothing_is_populated_while_incoming(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, true);

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    assert_int_equal(rec.populate_calls, 0);
    xen_memory_free(xm);
}

static void test_populate_failure_is_recorded_with_the_block_name(
    void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);

    rec.populate_ret = -ENOMEM;
    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    assert_int_equal(xen_memory_errors(xm), 1);
    assert_non_null(strstr(xen_memory_last_error(xm), "vga.vram"));
    xen_memory_free(xm);
}

static void test_mmio_regions_are_claimed_and_released(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, 3, false);

    assert_int_equal(memory_region_add_subregion(&g->root, 0xfe000000,
                                                 &g->mmio), 0);
    assert_int_equal(rec.map_calls, 1);
    assert_true(rec.map_mmio);
    assert_int_equal(rec.map_start, 0xfe000000);
    assert_int_equal(rec.map_end, 0xfe000fff);
    assert_int_equal(memory_region_del_subregion(&g->root, &g->mmio), 0);
    assert_int_equal(rec.unmap_calls, 1);
    xen_memory_free(xm);
}

static void test_port_regions_are_claimed_as_port_io(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, 3, false);

    assert_int_equal(memory_region_add_subregion(&g->ioroot, 0x3c0,
                                                 &g->ports), 0);
    assert_int_equal(rec.map_calls, 1);
    assert_false(rec.map_mmio);
    assert_int_equal(rec.map_start, 0x3c0);
    assert_int_equal(rec.map_end, 0x3c7);
    xen_memory_free(xm);
}

static void test_without_ioreq_server_nothing_is_claimed(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);

    assert_int_equal(memory_region_add_subregion(&g->root, 0xfe000000,
                                                 &g->mmio), 0);
    assert_int_equal(rec.map_calls, 0);
    xen_memory_free(xm);
}

static void test_vram_sync_mirrors_xen_bits_into_vga(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);
    uint64_t page = g->b_vram->offset >> 12;

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    dirty_memory_test_and_clear(&g->ram.dirty, page, 512, DIRTY_MEMORY_VGA);
    assert_int_equal(memory_region_set_log(&g->vram, true, DIRTY_MEMORY_VGA),
                     0);
    rec.track_bits = (1UL << 0) | (1UL << 5);
    assert_int_equal(memory_region_sync_dirty_bitmap(&g->vram), 0);
    assert_int_equal(rec.track_gfn, 0xf0000);
    assert_int_equal(rec.track_nr, 512);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, page, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, page + 5, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, page + 1, 4,
                                      DIRTY_MEMORY_VGA), 0);
    /* Only VGA: Xen's VRAM bits do not feed migration. */
    dirty_memory_test_and_clear(&g->ram.dirty, page, 512,
                                DIRTY_MEMORY_MIGRATION);
    assert_int_equal(memory_region_sync_dirty_bitmap(&g->vram), 0);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, page, 512,
                                      DIRTY_MEMORY_MIGRATION), 0);
    xen_memory_free(xm);
}

static void test_enodata_from_xen_means_all_of_vram_is_dirty(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);
    uint64_t page = g->b_vram->offset >> 12;

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    dirty_memory_test_and_clear(&g->ram.dirty, page, 512, DIRTY_MEMORY_VGA);
    assert_int_equal(memory_region_set_log(&g->vram, true, DIRTY_MEMORY_VGA),
                     0);
    rec.track_ret = -ENODATA;
    assert_int_equal(memory_region_sync_dirty_bitmap(&g->vram), 0);
    assert_int_equal(dirty_memory_all(&g->ram.dirty, page, 512,
                                      DIRTY_MEMORY_VGA), 1);
    xen_memory_free(xm);
}

static void test_vga_log_stop_stops_tracking(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    assert_int_equal(memory_region_set_log(&g->vram, true, DIRTY_MEMORY_VGA),
                     0);
    rec.track_calls = 0;
    assert_int_equal(memory_region_set_log(&g->vram, false,
                                           DIRTY_MEMORY_VGA), 0);
    assert_int_equal(rec.track_calls, 1);
    assert_int_equal(rec.track_nr, 0);
    /* A sync after the stop asks Xen nothing. */
    assert_int_equal(memory_region_sync_dirty_bitmap(&g->vram), 0);
    assert_int_equal(rec.track_calls, 1);
    xen_memory_free(xm);
}

static void test_migration_sync_maps_gfns_to_ram_addr_pages(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);
    uint64_t hi = (4 * GiB) >> 12;

    dirty_memory_test_and_clear(&g->ram.dirty, 0,
                                dirty_memory_pages(&g->ram.dirty),
                                DIRTY_MEMORY_MIGRATION);
    rec.dirty_gfns[0] = 3;
    rec.dirty_gfns[1] = hi + 2;
    rec.ndirty_gfns = 2;
    assert_int_equal(xen_memory_sync_migration(xm, true), 2);
    assert_true(rec.logdirty_clear);
    assert_int_equal(rec.logdirty_npages, hi + ((8 * MiB) >> 12));
    /* gfn 3 is RAM page 3; gfn 4 GiB + 2 is RAM page 8 MiB + 2. */
    assert_int_equal(dirty_memory_get(&g->ram.dirty, 3, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, ((8 * MiB) >> 12) + 2,
                                      1, DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, 4, 1,
                                      DIRTY_MEMORY_MIGRATION), 0);
    xen_memory_free(xm);
}

static void test_migration_sync_handles_ranges_not_word_aligned(void **state)
{
    Guest *g = *state;
    XenMemory *xm;
    MemoryRegion odd;

    /* 1 MiB of RAM (offset 8 MiB) seen at gfn 0x3003: not a multiple of 64. */
    assert_int_equal(memory_region_init_alias(&odd, "odd", &g->ram_mr,
                                              8 * MiB, 1 * MiB), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0x3003000ULL,
                                                 &odd), 0);
    xm = listen(g, -1, false);
    dirty_memory_test_and_clear(&g->ram.dirty, 0,
                                dirty_memory_pages(&g->ram.dirty),
                                DIRTY_MEMORY_MIGRATION);
    rec.dirty_gfns[0] = 0x3003 + 7;
    rec.ndirty_gfns = 1;
    assert_int_equal(xen_memory_sync_migration(xm, false), 1);
    assert_false(rec.logdirty_clear);
    assert_int_equal(dirty_memory_get(&g->ram.dirty,
                                      ((8 * MiB) >> 12) + 7, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty,
                                      ((8 * MiB) >> 12) + 6, 1,
                                      DIRTY_MEMORY_MIGRATION), 0);
    xen_memory_free(xm);
    memory_region_del_subregion(&g->root, &odd);
    memory_region_destroy(&odd);
}

/*
 * A CLEAN re-arms the framebuffer's tracking under HAP: what it reports
 * inside VRAM must reach the VGA client too, and nothing outside it; a
 * PEEK leaves the framebuffer's tracker its bits and feeds migration only.
 */
static void test_migration_clean_feeds_vga_for_vram_only(void **state)
{
    Guest *g = *state;
    XenMemory *xm = listen(g, -1, false);
    uint64_t vpage = g->b_vram->offset >> 12;

    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->vram), 0);
    assert_int_equal(memory_region_set_log(&g->vram, true, DIRTY_MEMORY_VGA),
                     0);
    dirty_memory_test_and_clear(&g->ram.dirty, 0,
                                dirty_memory_pages(&g->ram.dirty),
                                DIRTY_MEMORY_VGA);
    dirty_memory_test_and_clear(&g->ram.dirty, 0,
                                dirty_memory_pages(&g->ram.dirty),
                                DIRTY_MEMORY_MIGRATION);
    rec.dirty_gfns[0] = 3;                  /* guest RAM */
    rec.dirty_gfns[1] = 0xf0000 + 9;        /* the framebuffer */
    rec.ndirty_gfns = 2;

    assert_int_equal(xen_memory_sync_migration(xm, false), 2);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage + 9, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage, 512,
                                      DIRTY_MEMORY_VGA), 0);

    assert_int_equal(xen_memory_sync_migration(xm, true), 2);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage + 9, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage, 9,
                                      DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage + 10, 502,
                                      DIRTY_MEMORY_VGA), 0);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, 3, 1, DIRTY_MEMORY_VGA),
                     0);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, 3, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);

    /* Tracking stopped: a CLEAN feeds migration only. */
    assert_int_equal(memory_region_set_log(&g->vram, false,
                                           DIRTY_MEMORY_VGA), 0);
    dirty_memory_test_and_clear(&g->ram.dirty, vpage, 512, DIRTY_MEMORY_VGA);
    assert_int_equal(xen_memory_sync_migration(xm, true), 2);
    assert_int_equal(dirty_memory_get(&g->ram.dirty, vpage, 512,
                                      DIRTY_MEMORY_VGA), 0);
    xen_memory_free(xm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_own_ram_is_populated_once_at_its_ram_addr),
        T(test_main_ram_is_never_populated),
        T(test_nothing_is_populated_while_incoming),
        T(test_populate_failure_is_recorded_with_the_block_name),
        T(test_mmio_regions_are_claimed_and_released),
        T(test_port_regions_are_claimed_as_port_io),
        T(test_without_ioreq_server_nothing_is_claimed),
        T(test_vram_sync_mirrors_xen_bits_into_vga),
        T(test_enodata_from_xen_means_all_of_vram_is_dirty),
        T(test_vga_log_stop_stops_tracking),
        T(test_migration_sync_maps_gfns_to_ram_addr_pages),
        T(test_migration_sync_handles_ranges_not_word_aligned),
        T(test_migration_clean_feeds_vga_for_vram_only),
#undef T
    };
    int ret;

    rcu_register_thread();
    ret = cmocka_run_group_tests_name("xen-memory", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
}
