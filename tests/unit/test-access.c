/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for guest memory access: reads and writes through host-backed
 * blocks and through the mapcache (Xen's foreign mapping replaced by a
 * shared memfd standing for guest memory), dirty marking after writes,
 * reports to Xen, and refusals (holes, MMIO, ROM, wrap-around) that leave
 * memory untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "memory/access.h"

#define MiB (1024ULL * 1024)
#define GUEST_BYTES (64 * MiB)          /* frames the fake Xen can map */
#define HIGH_GPA 0x100000000ULL         /* where the mapcache block lives */

/* ---- a fake Xen: guest frames are pages of a memfd ------------------------ */

static int guest_fd = -1;
/* modified_memory reports per frame of the high RAM (gfn - HIGH_GPA/4K). */
static uint64_t reported[GUEST_BYTES >> 12];
/* A frame (relative to HIGH_GPA) the fake Xen refuses to map, or -1. */
static int64_t bad_frame = -1;
/* xen_map_at() calls so far, and the one (1-based) to fail, 0: none. */
static int map_calls, fail_map_call;

void *__wrap_xen_map_at(XenHandles *xh, void *addr, const xen_pfn_t *gfns,
                        size_t n, bool writable, int *err, int *ret);
void *__wrap_xen_map_at(XenHandles *xh, void *addr, const xen_pfn_t *gfns,
                        size_t n, bool writable, int *err, int *ret)
{
    uint8_t *base;

    (void)xh;
    (void)writable;
    if (++map_calls == fail_map_call) {
        *ret = -ENOMEM;
        return NULL;
    }
    base = mmap(addr, n << 12, PROT_READ | PROT_WRITE,
                MAP_SHARED | (addr ? MAP_FIXED : 0) | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        *ret = -ENOMEM;
        return NULL;
    }
    /* Frame by frame, as Xen would: gfns beyond the guest fail. */
    for (size_t i = 0; i < n; i++) {
        uint64_t gfn = gfns[i] - (HIGH_GPA >> 12);

        if (gfns[i] < (HIGH_GPA >> 12) || gfn >= (GUEST_BYTES >> 12) ||
            (int64_t)gfn == bad_frame ||
            mmap(base + (i << 12), 4096, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_FIXED, guest_fd, gfn << 12) == MAP_FAILED) {
            err[i] = -EFAULT;
        } else {
            err[i] = 0;
        }
    }
    *ret = 0;
    return base;
}

void *__wrap_xen_map(XenHandles *xh, const xen_pfn_t *gfns, size_t n,
                     bool writable, int *err, int *ret);
void *__wrap_xen_map(XenHandles *xh, const xen_pfn_t *gfns, size_t n,
                     bool writable, int *err, int *ret)
{
    return __wrap_xen_map_at(xh, NULL, gfns, n, writable, err, ret);
}

int __wrap_xen_unmap(XenHandles *xh, void *addr, size_t n);
int __wrap_xen_unmap(XenHandles *xh, void *addr, size_t n)
{
    (void)xh;
    return munmap(addr, n << 12) ? -errno : 0;
}

int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n);
int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n)
{
    (void)xh;
    for (uint32_t i = 0; i < n; i++) {
        for (uint64_t p = e[i].first_pfn; p < e[i].first_pfn + e[i].nr; p++) {
            uint64_t f = p - (HIGH_GPA >> 12);

            if (p >= (HIGH_GPA >> 12) && f < ARRAY_SIZE(reported)) {
                reported[f]++;
            }
        }
    }
    return 0;
}

/* ---- the guest ------------------------------------------------------------ */

/*
 * Guest-physical layout:
 *   [0, 8 MiB)            "ram.low", host-backed block, first 8 MiB
 *   [8 MiB, 9 MiB)        hole
 *   [9 MiB, 10 MiB)       "mmio" I/O region
 *   [12 MiB, 16 MiB)      "ram.low" continued (alias, offset 8 MiB)
 *   [0xf0000000, +1 MiB)  "rom", read-only
 *   [4 GiB, 4 GiB + 16 MiB) "xen.ram", no host pointer: the mapcache
 */
typedef struct Guest {
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_low, alias_lo, alias_hi, mmio, rom, xen_ram;
    RAMBlock *b_low, *b_rom, *b_xen;
    MapCache *mc;
    ModifiedMemory *mm;
    GuestMemory gm;
} Guest;

static uint64_t mmio_read(void *opaque, uint64_t addr, unsigned int size)
{
    (void)opaque;
    (void)addr;
    (void)size;
    return 0;
}

static void mmio_write(void *opaque, uint64_t addr, uint64_t data,
                       unsigned int size)
{
    (void)opaque;
    (void)addr;
    (void)data;
    (void)size;
}

static const MemoryRegionOps mmio_ops = { .read = mmio_read,
                                          .write = mmio_write };

static int setup(void **state)
{
    Guest *g = calloc(1, sizeof(*g));
    ModifiedMemoryConfig mcfg = { .batch = 64, .max_delay_ms = 0 };

    g->xh = (XenHandles *)(uintptr_t)0x1000;    /* never dereferenced */
    guest_fd = memfd_create("guest", 0);
    assert_true(guest_fd >= 0);
    assert_int_equal(ftruncate(guest_fd, GUEST_BYTES), 0);
    memset(reported, 0, sizeof(reported));
    bad_frame = -1;
    map_calls = fail_map_call = 0;

    assert_int_equal(ram_list_init(&g->ram), 0);
    assert_int_equal(ram_block_add(&g->ram, "ram.low", 16 * MiB, 16 * MiB,
                                   NULL, RAM_OWN_HOST, NULL, &g->b_low), 0);
    assert_int_equal(ram_block_add(&g->ram, "rom", 1 * MiB, 1 * MiB, NULL,
                                   RAM_OWN_HOST | RAM_READONLY, NULL,
                                   &g->b_rom), 0);
    assert_int_equal(ram_block_add(&g->ram, "xen.ram", 16 * MiB, 16 * MiB,
                                   NULL, 0, NULL, &g->b_xen), 0);
    assert_int_equal(memory_context_init(&g->ctx, &g->ram), 0);
    assert_int_equal(memory_region_init(&g->root, &g->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init_ram(&g->ram_low, &g->ctx, "ram.low",
                                            g->b_low), 0);
    assert_int_equal(memory_region_init_alias(&g->alias_lo, "ram.lo",
                                              &g->ram_low, 0, 8 * MiB), 0);
    assert_int_equal(memory_region_init_alias(&g->alias_hi, "ram.hi",
                                              &g->ram_low, 8 * MiB,
                                              4 * MiB), 0);
    assert_int_equal(memory_region_init_io(&g->mmio, &g->ctx, "mmio",
                                           &mmio_ops, NULL, 1 * MiB), 0);
    assert_int_equal(memory_region_init_ram(&g->rom, &g->ctx, "rom",
                                            g->b_rom), 0);
    assert_int_equal(memory_region_init_ram(&g->xen_ram, &g->ctx, "xen.ram",
                                            g->b_xen), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0, &g->alias_lo),
                     0);
    assert_int_equal(memory_region_add_subregion(&g->root, 9 * MiB,
                                                 &g->mmio), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 12 * MiB,
                                                 &g->alias_hi), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0xf0000000,
                                                 &g->rom), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, HIGH_GPA,
                                                 &g->xen_ram), 0);
    assert_int_equal(address_space_init(&g->as, &g->ctx, &g->root,
                                        "memory"), 0);
    assert_int_equal(mapcache_new(g->xh, NULL, &g->mc), 0);
    assert_int_equal(modified_memory_new(g->xh, &mcfg, &g->mm), 0);
    g->gm = (GuestMemory) { .as = &g->as, .ram = &g->ram, .mc = g->mc,
                            .mm = g->mm };
    /* New blocks start all dirty; the tests want a clean slate. */
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        dirty_memory_test_and_clear(&g->ram.dirty, 0,
                                    dirty_memory_pages(&g->ram.dirty), c);
    }
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    Guest *g = *state;

    modified_memory_free(g->mm);
    mapcache_destroy(g->mc);
    address_space_destroy(&g->as);
    memory_region_del_subregion(&g->root, &g->alias_lo);
    memory_region_del_subregion(&g->root, &g->alias_hi);
    memory_region_del_subregion(&g->root, &g->mmio);
    memory_region_del_subregion(&g->root, &g->rom);
    memory_region_del_subregion(&g->root, &g->xen_ram);
    memory_region_destroy(&g->alias_lo);
    memory_region_destroy(&g->alias_hi);
    memory_region_destroy(&g->mmio);
    memory_region_destroy(&g->rom);
    memory_region_destroy(&g->xen_ram);
    memory_region_destroy(&g->ram_low);
    memory_region_destroy(&g->root);
    synchronize_rcu();
    memory_context_destroy(&g->ctx);
    ram_list_destroy(&g->ram);
    close(guest_fd);
    free(g);
    return 0;
}

static int dirty(Guest *g, RAMBlock *b, uint64_t offset, unsigned int client)
{
    return dirty_memory_get(&g->ram.dirty, (b->offset + offset) >> 12, 1,
                            client);
}

static void test_write_then_read_round_trips_in_host_backed_ram(void **state)
{
    Guest *g = *state;
    char out[100], in[100];

    memset(out, 0xa5, sizeof(out));
    assert_int_equal(guest_memory_write(&g->gm, 0x1234, out, sizeof(out)), 0);
    assert_int_equal(guest_memory_read(&g->gm, 0x1234, in, sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(out));
    assert_memory_equal(g->b_low->host + 0x1234, out, sizeof(out));
}

static void test_write_marks_every_touched_page_dirty_for_all_clients(
    void **state)
{
    Guest *g = *state;
    char buf[4096 + 2] = { 1 };

    /* The last two bytes of page 2 and all of page 3 (of the block). */
    assert_int_equal(guest_memory_write(&g->gm, 3 * 4096 - 2, buf,
                                        sizeof(buf)), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty(g, g->b_low, 1 * 4096, c), 0);
        assert_int_equal(dirty(g, g->b_low, 2 * 4096, c), 1);
        assert_int_equal(dirty(g, g->b_low, 3 * 4096, c), 1);
        assert_int_equal(dirty(g, g->b_low, 4 * 4096, c), 0);
    }
}

static void test_write_through_alias_marks_the_blocks_pages(void **state)
{
    Guest *g = *state;
    uint32_t v = 0xdeadbeef;

    /* gpa 12 MiB shows offset 8 MiB of ram.low. */
    assert_int_equal(guest_memory_write(&g->gm, 12 * MiB + 8, &v, 4), 0);
    assert_memory_equal(g->b_low->host + 8 * MiB + 8, &v, 4);
    assert_int_equal(dirty(g, g->b_low, 8 * MiB, DIRTY_MEMORY_MIGRATION), 1);
}

static void test_writes_are_reported_to_xen_when_forwarding(void **state)
{
    Guest *g = *state;
    char buf[8192] = { 0 };

    assert_int_equal(guest_memory_write(&g->gm, HIGH_GPA + 4096, buf, 1), 0);
    assert_int_equal(modified_memory_flush(g->mm), 0);
    assert_int_equal(reported[1], 0);       /* forwarding still off */

    modified_memory_set_enabled(g->mm, true);
    /* Bytes 4196 .. 12387: frames 1, 2 and 3. */
    assert_int_equal(guest_memory_write(&g->gm, HIGH_GPA + 4096 + 100, buf,
                                        sizeof(buf)), 0);
    assert_int_equal(modified_memory_flush(g->mm), 0);
    assert_int_equal(reported[0], 0);
    assert_int_equal(reported[1], 1);
    assert_int_equal(reported[2], 1);
    assert_int_equal(reported[3], 1);
    assert_int_equal(reported[4], 0);
}

static void test_mapcache_backed_ram_round_trips_through_guest_frames(
    void **state)
{
    Guest *g = *state;
    char out[3 * 4096], in[sizeof(out)], direct[16];

    for (size_t i = 0; i < sizeof(out); i++) {
        out[i] = (char)(i * 7);
    }
    /* Crosses a 1 MiB mapcache bucket boundary. */
    assert_int_equal(guest_memory_write(&g->gm, HIGH_GPA + MiB - 4096, out,
                                        sizeof(out)), 0);
    assert_int_equal(guest_memory_read(&g->gm, HIGH_GPA + MiB - 4096, in,
                                       sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(out));
    /* The data is in the guest's frames themselves. */
    assert_int_equal(pread(guest_fd, direct, 16, MiB), 16);
    assert_memory_equal(direct, out + 4096, 16);
    assert_int_equal(dirty(g, g->b_xen, MiB, DIRTY_MEMORY_VGA), 1);
}

static void test_access_to_a_hole_fails_and_writes_nothing(void **state)
{
    Guest *g = *state;
    char buf[8192], zero[8192] = { 0 };

    memset(buf, 0x5a, sizeof(buf));
    /* Starts in RAM, runs into the hole at 8 MiB. */
    assert_int_equal(guest_memory_write(&g->gm, 8 * MiB - 4096, buf,
                                        sizeof(buf)), -EFAULT);
    assert_memory_equal(g->b_low->host + 8 * MiB - 4096, zero, 4096);
    assert_int_equal(dirty(g, g->b_low, 8 * MiB - 4096,
                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(guest_memory_read(&g->gm, 8 * MiB + 5, buf, 1),
                     -EFAULT);
}

static void test_access_to_mmio_is_refused(void **state)
{
    Guest *g = *state;
    uint32_t v = 1;

    assert_int_equal(guest_memory_write(&g->gm, 9 * MiB, &v, 4), -EFAULT);
    assert_int_equal(guest_memory_read(&g->gm, 9 * MiB, &v, 4), -EFAULT);
}

static void test_rom_is_readable_but_not_writable(void **state)
{
    Guest *g = *state;
    uint64_t len = 4096;
    char c = 'x';
    int err = 0;

    g->b_rom->host[10] = 'r';
    assert_int_equal(guest_memory_read(&g->gm, 0xf000000a, &c, 1), 0);
    assert_int_equal(c, 'r');
    assert_int_equal(guest_memory_write(&g->gm, 0xf000000a, &c, 1), -EPERM);
    assert_null(guest_memory_map(&g->gm, 0xf0000000, &len, true, &err));
    assert_int_equal(err, -EPERM);
}

static void test_frames_xen_cannot_map_are_refused(void **state)
{
    Guest *g = *state;
    uint64_t bad = HIGH_GPA + 5 * MiB + 3 * 4096;
    char buf[8192], direct[4096], zero[4096] = { 0 };

    bad_frame = (5 * MiB >> 12) + 3;
    memset(buf, 0x3c, sizeof(buf));
    assert_int_equal(guest_memory_read(&g->gm, bad, buf, 1), -EFAULT);
    /* The frame before it maps; a write spanning both writes nothing. */
    assert_int_equal(guest_memory_read(&g->gm, bad - 4096, buf, 1), 0);
    assert_int_equal(guest_memory_write(&g->gm, bad - 4096, buf,
                                        sizeof(buf)), -EFAULT);
    assert_int_equal(pread(guest_fd, direct, 4096, 5 * MiB + 2 * 4096),
                     4096);
    assert_memory_equal(direct, zero, 4096);
}

static void test_write_across_buckets_is_all_or_nothing(void **state)
{
    Guest *g = *state;
    MapCacheConfig one = { .bucket_shift = 20, .max_bytes = 1 * MiB };
    uint64_t gpa = HIGH_GPA + 1 * MiB - 4096;
    char buf[8192], direct[8192], zero[8192] = { 0 };
    MapCache *small;
    int ret;

    /*
     * A mapcache of one bucket: resolving the second half evicts the
     * first.  A copy that looked the first half up again would map it
     * anew, and the mapping after that (the second half's, again) fails.
     */
    assert_int_equal(mapcache_new(g->xh, &one, &small), 0);
    g->gm.mc = small;
    fail_map_call = 4;
    memset(buf, 0x5a, sizeof(buf));
    ret = guest_memory_write(&g->gm, gpa, buf, sizeof(buf));
    assert_int_equal(pread(guest_fd, direct, sizeof(direct),
                           1 * MiB - 4096), (ssize_t)sizeof(direct));
    if (ret == 0) {
        assert_memory_equal(direct, buf, sizeof(buf));
    } else {
        assert_memory_equal(direct, zero, sizeof(zero));
    }
    assert_int_equal(ret, 0);
    assert_true(map_calls < 4);
    g->gm.mc = g->mc;
    mapcache_destroy(small);
}

static void test_dma_write_marks_only_what_was_written(void **state)
{
    Guest *g = *state;
    uint64_t len = 64 * 1024;
    uint8_t *p;
    int err = 0;

    p = guest_memory_map(&g->gm, HIGH_GPA + 2 * MiB, &len, true, &err);
    assert_non_null(p);
    assert_int_equal(len, 64 * 1024);
    memset(p, 0x77, 4096 + 1);
    assert_int_equal(dirty(g, g->b_xen, 2 * MiB, DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(guest_memory_unmap(&g->gm, p, HIGH_GPA + 2 * MiB, len,
                                        true, 4096 + 1), 0);
    assert_int_equal(dirty(g, g->b_xen, 2 * MiB, DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty(g, g->b_xen, 2 * MiB + 4096,
                           DIRTY_MEMORY_MIGRATION), 1);
    assert_int_equal(dirty(g, g->b_xen, 2 * MiB + 8192,
                           DIRTY_MEMORY_MIGRATION), 0);
}

static void test_dma_map_is_clipped_to_the_ram_range(void **state)
{
    Guest *g = *state;
    uint64_t len = 1 * MiB;
    void *p;
    int err = 0;

    p = guest_memory_map(&g->gm, 8 * MiB - 8192, &len, false, &err);
    assert_non_null(p);
    assert_int_equal(len, 8192);
    assert_int_equal(guest_memory_unmap(&g->gm, p, 8 * MiB - 8192, len,
                                        false, 0), 0);
    len = 4096;
    assert_null(guest_memory_map(&g->gm, 8 * MiB, &len, false, &err));
    assert_int_equal(err, -EFAULT);
}

static void test_unmap_of_a_foreign_pointer_is_enoent(void **state)
{
    Guest *g = *state;
    char local;

    assert_int_equal(guest_memory_unmap(&g->gm, &local, 0, 1, false, 0),
                     -ENOENT);
}

static void test_wrapping_range_is_einval(void **state)
{
    Guest *g = *state;
    char buf[16];

    assert_int_equal(guest_memory_read(&g->gm, UINT64_MAX - 4, buf, 16),
                     -EINVAL);
    assert_int_equal(guest_memory_read(&g->gm, 0, buf, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_write_then_read_round_trips_in_host_backed_ram),
        T(test_write_marks_every_touched_page_dirty_for_all_clients),
        T(test_write_through_alias_marks_the_blocks_pages),
        T(test_writes_are_reported_to_xen_when_forwarding),
        T(test_mapcache_backed_ram_round_trips_through_guest_frames),
        T(test_access_to_a_hole_fails_and_writes_nothing),
        T(test_access_to_mmio_is_refused),
        T(test_rom_is_readable_but_not_writable),
        T(test_frames_xen_cannot_map_are_refused),
        T(test_write_across_buckets_is_all_or_nothing),
        T(test_dma_write_marks_only_what_was_written),
        T(test_dma_map_is_clipped_to_the_ram_range),
        T(test_unmap_of_a_foreign_pointer_is_enoent),
        T(test_wrapping_range_is_einval),
#undef T
    };
    int ret;

    rcu_register_thread();
    ret = cmocka_run_group_tests_name("access", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
}
