/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stress-hotplug.c - RAM hotplug and unplug while readers keep running.
 *
 * One writer plugs and unplugs slots of 256 MiB to 2 GiB as fast as it
 * can.  Meanwhile:
 *
 *  - dirtier threads write main RAM through the guest-access layer, each
 *    into pages of its own, and remember what they wrote: at the end every
 *    one of those pages must be dirty for every client (no bit lost while
 *    the dirty bitmaps grew: the hot blocks sit at ram_addrs above main
 *    RAM's 4.25 GiB, so they cross 8 GiB dirty blocks);
 *  - a translator looks random guest-physical addresses up in the
 *    FlatView and checks that a RAM range always leads, through the
 *    RAMList, to the block backing it, that the dirty bitmaps cover it,
 *    and that a slot's memory is reachable through the mapcache; it times
 *    each lookup (readers never wait for the writer);
 *  - a DMA thread maps pieces of plugged slots, writes them and holds the
 *    mapping a little, so that some removals are refused (and must leave
 *    everything as it was).
 *
 * Guest memory is the one-domain fake of tests/unit/xen-fake.c; populate
 * and decrease reservation mark its frames present or not.  A freed block,
 * region or mapping shows up as a fault (ASan) or a report (TSan).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hotplug/hotplug.h"
#include "memory/access.h"
#include "tests/unit/xen-fake.h"
#include "tests/common/stress.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

#define RAM_BELOW   (256 * MiB)
#define RAM_ABOVE   (256 * MiB)
#define FOUR_GIB    (4 * GiB)
#define WIN_START   (8 * GiB)
#define WIN_END     (24 * GiB)
#define N_SLOTS     6
#define N_DIRTIERS  2
#define WRITER_OPS  400

static RAMList ram;
static MemoryContext ctx;
static AddressSpace as;
static MemoryRegion root, ram_mr, ram_lo, ram_hi;
static RAMBlock *ram_block;
static XenHandles *xh;
static MapCache *mc;
static GuestMemory gm;
static Hotplug *hp;
static bool done;

/* ---- Xen: populate marks frames present in the fake ----------------------- */

int __wrap_xen_populate_all(XenHandles *h, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_populate_all(XenHandles *h, xen_pfn_t gfn, uint64_t n)
{
    (void)h;
    fake_set_populated(gfn, n, true);
    return 0;
}

int __wrap_xen_depopulate(XenHandles *h, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_depopulate(XenHandles *h, xen_pfn_t gfn, uint64_t n)
{
    (void)h;
    fake_set_populated(gfn, n, false);
    return 0;
}

/*
 * New slots are cleared (xen_zero_frames); in the fake that would write
 * gigabytes of zeros per plug, which is not what this test is about.
 */
int __wrap_xen_zero_frames(XenHandles *h, xen_pfn_t gfn, uint64_t n);
int __wrap_xen_zero_frames(XenHandles *h, xen_pfn_t gfn, uint64_t n)
{
    (void)h;
    (void)gfn;
    (void)n;
    return 0;
}

int __wrap_xen_domain_info(XenHandles *h, XenDomainInfo *info);
int __wrap_xen_domain_info(XenHandles *h, XenDomainInfo *info)
{
    (void)h;
    *info = (XenDomainInfo) { .max_pages = WIN_END >> 12, .hvm = true };
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool stopped(void)
{
    return __atomic_load_n(&done, __ATOMIC_ACQUIRE);
}

/* ---- dirtiers --------------------------------------------------------------- */

/* Main RAM pages, below and above 4 GiB, as one index space. */
#define RAM_PAGES ((RAM_BELOW + RAM_ABOVE) >> 12)

static uint64_t page_gpa(uint64_t p)
{
    uint64_t a = p << 12;

    return a < RAM_BELOW ? a : FOUR_GIB + (a - RAM_BELOW);
}

typedef struct Dirtier {
    unsigned int id;
    unsigned long *written;     /* pages this thread wrote */
    uint64_t writes;
} Dirtier;

static void *dirtier(void *opaque)
{
    Dirtier *d = opaque;
    uint64_t seed = 0x51ed27 * (d->id + 1);
    uint64_t v;

    rcu_register_thread();
    while (!stopped()) {
        /* Pages p with p % N_DIRTIERS == id are ours alone. */
        uint64_t p = stress_rand(&seed) % (RAM_PAGES / N_DIRTIERS) *
                     N_DIRTIERS + d->id;
        int ret;

        v = p;
        ret = guest_memory_write(&gm, page_gpa(p) + 8 * (p % 64), &v,
                                 sizeof(v));
        if (ret) {
            stress_report("dirtier %u: write to 0x%llx: %s", d->id,
                          (unsigned long long)page_gpa(p), strerror(-ret));
            break;
        }
        xr_set_bit(p, d->written);
        d->writes++;
    }
    rcu_unregister_thread();
    return NULL;
}

/* ---- translator ------------------------------------------------------------- */

typedef struct Translator {
    uint64_t lookups, hot_hits;
    double max_wait;            /* longest single lookup, seconds */
} Translator;

static void translate_one(Translator *t, uint64_t gpa)
{
    const FlatRange *fr;
    RAMBlock *block, *found;
    ram_addr_t ra, off;

    rcu_read_lock();
    fr = address_space_lookup(&as, gpa, NULL, NULL);
    if (fr && flatrange_is_ram(fr)) {
        block = memory_region_ram_block(fr->mr);
        ra = fr->ram_addr + (gpa - fr->addr);
        found = ram_block_from_addr(&ram, ra, &off);
        if (found != block) {
            stress_report("gpa 0x%llx: the view says block %s, the RAMList %s",
                          (unsigned long long)gpa, block->idstr,
                          found ? found->idstr : "nothing");
        } else if (dirty_memory_get(&ram.dirty, ra >> 12, 1,
                                    DIRTY_MEMORY_MIGRATION) < 0) {
            stress_report("gpa 0x%llx: ram_addr 0x%llx not covered by the "
                          "dirty bitmaps", (unsigned long long)gpa,
                          (unsigned long long)ra);
        } else if (block->flags & RAM_HOTPLUGGED) {
            int err = 0;

            t->hot_hits++;
            /* Reachable; the pointer is good until rcu_read_unlock(). */
            if (!mapcache_get(mc, gpa, 8, &err)) {
                stress_report("gpa 0x%llx in %s: not mappable: %s",
                              (unsigned long long)gpa, block->idstr,
                              strerror(-err));
            }
        }
    }
    rcu_read_unlock();
}

static void *translator(void *opaque)
{
    Translator *t = opaque;
    uint64_t seed = 0xabcdef12345ull;

    rcu_register_thread();
    while (!stopped()) {
        uint64_t gpa = (stress_rand(&seed) % (WIN_END >> 12)) << 12;
        double t0 = now_s(), dt;

        translate_one(t, gpa);
        dt = now_s() - t0;
        if (dt > t->max_wait) {
            t->max_wait = dt;
        }
        t->lookups++;
    }
    rcu_unregister_thread();
    return NULL;
}

/* ---- DMA -------------------------------------------------------------------- */

typedef struct Dma {
    uint64_t maps, refused;
} Dma;

static void *dma(void *opaque)
{
    Dma *d = opaque;
    uint64_t seed = 0x777;

    rcu_register_thread();
    while (!stopped()) {
        uint32_t slot = stress_rand(&seed) % N_SLOTS;
        HotplugSlotInfo info;
        uint64_t gpa, len = 4096;
        void *p;
        int err;

        if (hotplug_slot_info(hp, slot, &info)) {
            continue;
        }
        gpa = info.gpa + (stress_rand(&seed) % (info.size >> 12) << 12);
        p = guest_memory_map(&gm, gpa, &len, true, &err);
        if (!p) {
            d->refused++;       /* removed meanwhile: a hole now */
            continue;
        }
        memset(p, (int)slot, len);
        /* Hold it a while, as a device would: some removals must see it. */
        nanosleep(&(struct timespec){ .tv_nsec = 300 * 1000 }, NULL);
        if (guest_memory_unmap(&gm, p, gpa, len, true, len)) {
            stress_report("unmapping DMA at 0x%llx failed",
                          (unsigned long long)gpa);
        }
        d->maps++;
    }
    rcu_unregister_thread();
    return NULL;
}

/* ---- the test ----------------------------------------------------------------- */

static void guest_build(void)
{
    HotplugConfig cfg;
    char err[256];

    assert_int_equal(fake_xen_init(WIN_END >> 12), 0);
    fake_set_populated(RAM_BELOW >> 12, (WIN_END - RAM_BELOW) >> 12, false);
    fake_set_populated(FOUR_GIB >> 12, RAM_ABOVE >> 12, true);
    xh = fake_xen_open();
    assert_non_null(xh);
    assert_int_equal(ram_list_init(&ram), 0);
    /* As the device model lays it out: ram_addr == gpa, hole included. */
    assert_int_equal(ram_block_add(&ram, "xen.ram", FOUR_GIB + RAM_ABOVE,
                                   FOUR_GIB + RAM_ABOVE, NULL, 0, NULL,
                                   &ram_block), 0);
    assert_int_equal(memory_context_init(&ctx, &ram), 0);
    assert_int_equal(memory_region_init(&root, &ctx, "system", 0), 0);
    assert_int_equal(memory_region_init_ram(&ram_mr, &ctx, "xen.ram",
                                            ram_block), 0);
    assert_int_equal(memory_region_init_alias(&ram_lo, "xen.ram.lo", &ram_mr,
                                              0, RAM_BELOW), 0);
    assert_int_equal(memory_region_init_alias(&ram_hi, "xen.ram.hi", &ram_mr,
                                              FOUR_GIB, RAM_ABOVE), 0);
    assert_int_equal(memory_region_add_subregion(&root, 0, &ram_lo), 0);
    assert_int_equal(memory_region_add_subregion(&root, FOUR_GIB, &ram_hi),
                     0);
    assert_int_equal(address_space_init(&as, &ctx, &root, "memory"), 0);
    /* A small cap: eviction runs too, and the mappings stay few. */
    assert_int_equal(mapcache_new(xh, &(MapCacheConfig){ .max_bytes = GiB },
                                  &mc), 0);
    gm = (GuestMemory) { .as = &as, .ram = &ram, .mc = mc };
    cfg = (HotplugConfig) {
        .xh = xh, .ram = &ram, .ctx = &ctx, .as = &as, .root = &root,
        .mc = mc, .domid = FAKE_DOMID, .window_start = WIN_START,
        .window_end = WIN_END, .align = 256 * MiB, .nr_slots = N_SLOTS,
        .no_xenstore = true,
    };
    assert_int_equal(hotplug_new(&cfg, &hp, err, sizeof(err)), 0);
}

static void guest_destroy(void)
{
    hotplug_free(hp);
    assert_int_equal(address_space_destroy(&as), 0);
    assert_int_equal(memory_region_del_subregion(&root, &ram_lo), 0);
    assert_int_equal(memory_region_del_subregion(&root, &ram_hi), 0);
    assert_int_equal(memory_region_destroy(&ram_lo), 0);
    assert_int_equal(memory_region_destroy(&ram_hi), 0);
    assert_int_equal(memory_region_destroy(&ram_mr), 0);
    assert_int_equal(memory_region_destroy(&root), 0);
    mapcache_destroy(mc);
    synchronize_rcu();
    assert_int_equal(memory_context_destroy(&ctx), 0);
    ram_list_destroy(&ram);
    xen_close(xh);
    fake_xen_fini();
}

static void test_readers_keep_running_and_lose_nothing_during_hotplug(
    void **state)
{
    pthread_t dirt[N_DIRTIERS], tr, dm;
    Dirtier d[N_DIRTIERS];
    Translator t = { 0 };
    Dma dmast = { 0 };
    uint64_t seed = 0x2545f4914f6cdd1dull, lost = 0, checked = 0;
    unsigned int adds = 0, removes = 0, busy = 0, nospace = 0;
    HotplugStats st;
    char err[256];

    (void)state;
    guest_build();
    for (int i = 0; i < N_DIRTIERS; i++) {
        d[i] = (Dirtier) { .id = i, .written = xr_bitmap_new(RAM_PAGES) };
        assert_non_null(d[i].written);
        assert_int_equal(pthread_create(&dirt[i], NULL, dirtier, &d[i]), 0);
    }
    assert_int_equal(pthread_create(&tr, NULL, translator, &t), 0);
    assert_int_equal(pthread_create(&dm, NULL, dma, &dmast), 0);

    for (unsigned int op = 0; op < WRITER_OPS && !stress_failures(); op++) {
        uint32_t slot = stress_rand(&seed) % N_SLOTS;
        HotplugSlotInfo info;
        int ret;

        if (hotplug_slot_info(hp, slot, &info) == 0) {
            ret = hotplug_remove(hp, slot, err, sizeof(err));
            if (ret == -EBUSY) {
                busy++;
            } else if (ret) {
                stress_report("remove %u: %s", slot, err);
            } else {
                removes++;
            }
        } else {
            uint64_t size = (1 + stress_rand(&seed) % 8) * 256 * MiB;
            uint64_t gpa = stress_rand(&seed) % 2 ? HOTPLUG_AUTO
                           : WIN_START + (stress_rand(&seed) % 64) * 256 * MiB;

            ret = hotplug_add(hp, slot, gpa, size, NULL, err, sizeof(err));
            if (ret == -ENOSPC || ret == -EADDRINUSE || ret == -ERANGE) {
                nospace++;
            } else if (ret) {
                stress_report("add %u: %s", slot, err);
            } else {
                adds++;
            }
        }
        /* Let the DMA thread find slots between two requests. */
        nanosleep(&(struct timespec){ .tv_nsec = 200 * 1000 }, NULL);
    }
    __atomic_store_n(&done, true, __ATOMIC_RELEASE);
    for (int i = 0; i < N_DIRTIERS; i++) {
        assert_int_equal(pthread_join(dirt[i], NULL), 0);
    }
    assert_int_equal(pthread_join(tr, NULL), 0);
    assert_int_equal(pthread_join(dm, NULL), 0);

    /* Every page a dirtier wrote is dirty for every client. */
    for (int i = 0; i < N_DIRTIERS; i++) {
        for (uint64_t p = xr_find_next_bit(d[i].written, RAM_PAGES, 0);
             p < RAM_PAGES; p = xr_find_next_bit(d[i].written, RAM_PAGES, p + 1)) {
            uint64_t ra = page_gpa(p);   /* ram_addr == gpa for xen.ram */

            for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
                lost += dirty_memory_get(&ram.dirty, ra >> 12, 1, c) != 1;
            }
            checked++;
        }
        free(d[i].written);
    }
    hotplug_get_stats(hp, &st);
    printf("# writer: %u adds, %u removes, %u refused busy, %u no room; "
           "dirty pages %llu (bitmaps cover %llu GiB); dirtiers %llu writes; "
           "translator %llu lookups (%llu hot), longest %.3f ms; DMA %llu "
           "maps\n", adds, removes, busy, nospace,
           (unsigned long long)checked,
           (unsigned long long)(dirty_memory_pages(&ram.dirty) >> 18),
           (unsigned long long)(d[0].writes + d[1].writes),
           (unsigned long long)t.lookups, (unsigned long long)t.hot_hits,
           t.max_wait * 1e3, (unsigned long long)dmast.maps);
    if (stress_failures()) {
        fail_msg("%u failures, first: %s", stress_failures(),
                 stress_first_failure());
    }
    assert_int_equal(lost, 0);
    assert_true(checked > 0);
    assert_true(adds > 10 && removes > 5);
    assert_int_equal(st.adds, adds);
    assert_int_equal(st.removes, removes);
    /* The hot blocks pushed the bitmaps past main RAM's first 8 GiB. */
    assert_true(dirty_memory_pages(&ram.dirty) > DIRTY_MEMORY_BLOCK_PAGES);
    guest_destroy();
}

/*
 * Under ThreadSanitizer: liburcu's own rcu_barrier() hand-over (suppressed
 * by name in tests/tsan.supp) is only recognised when TSan can still
 * restore the stack of its first access, and this test makes enough
 * events between that access and the report to overflow the default
 * history.  TSAN_OPTIONS given by the caller still apply on top.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "history_size=7";
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_readers_keep_running_and_lose_nothing_during_hotplug),
    };
    int failed;

    xen_set_error_log(NULL);
    rcu_register_thread();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    rcu_unregister_thread();
    return failed;
}
