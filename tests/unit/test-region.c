/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-region.c - the contract of memory/region.h: rendering of the region
 * tree, lookups, listeners, transactions, region dirty logging over a real
 * RAMList, I/O dispatch and the errors.
 *
 * Each test starts from a context over an empty RAMList and an address
 * space "memory" whose root is a full-size container.  Regions come from a
 * pool that the teardown detaches and destroys; RAM regions get a
 * RAM_OWN_HOST block of their own.  Views and listener events are
 * compared as strings, which keeps the expected state readable:
 *
 *   view:   "1000+2000=ram@0 ro log=4; ..."  addr+size=region@offset
 *   events: "add ram 1000+2000@0; del ...;"   (hex, no 0x)
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/region.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define PAGE XR_PAGE_SIZE

/* ---- fixture --------------------------------------------------------- */

static char events[4096];
static unsigned int n_recorders;

static RAMList rl;
static MemoryContext ctx;
static AddressSpace as;
static MemoryRegion *root;

#define POOL_SIZE 32
static MemoryRegion pool[POOL_SIZE];
static unsigned int pool_used;

static MemoryRegion *pool_next(void)
{
    assert_true(pool_used < POOL_SIZE);
    return &pool[pool_used++];
}

static MemoryRegion *new_container(const char *name, uint64_t size)
{
    MemoryRegion *mr = pool_next();

    assert_int_equal(memory_region_init(mr, &ctx, name, size), 0);
    return mr;
}

static RAMBlock *new_block(const char *name, uint64_t size, uint32_t flags)
{
    RAMBlock *block;

    assert_int_equal(ram_block_add(&rl, name, size, size, NULL,
                                   RAM_OWN_HOST | flags, NULL, &block), 0);
    return block;
}

static MemoryRegion *new_ram(const char *name, uint64_t size)
{
    MemoryRegion *mr = pool_next();

    assert_int_equal(memory_region_init_ram(mr, &ctx, name,
                                            new_block(name, size, 0)), 0);
    return mr;
}

static MemoryRegion *new_alias(const char *name, MemoryRegion *orig,
                               uint64_t offset, uint64_t size)
{
    MemoryRegion *mr = pool_next();

    assert_int_equal(memory_region_init_alias(mr, name, orig, offset, size),
                     0);
    return mr;
}

/* I/O callbacks record what they see and read back addr-derived bytes. */
static char io_log[1024];

static void logf_to(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_to(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* Byte at region offset a reads as 0x10 + a (low byte). */
static uint64_t io_read(void *opaque, uint64_t addr, unsigned int size)
{
    uint64_t v = 0;

    (void)opaque;
    logf_to(io_log, sizeof(io_log), "r %" PRIx64 "/%u; ", addr, size);
    for (unsigned int i = 0; i < size; i++) {
        v |= (uint64_t)((0x10 + addr + i) & 0xff) << (8 * i);
    }
    return v;
}

static void io_write(void *opaque, uint64_t addr, uint64_t data,
                     unsigned int size)
{
    (void)opaque;
    logf_to(io_log, sizeof(io_log), "w %" PRIx64 "/%u=%" PRIx64 "; ", addr,
            size, data);
}

static const MemoryRegionOps io_any_ops = {
    .read = io_read,
    .write = io_write,
};

static MemoryRegion *new_io_ops(const char *name, uint64_t size,
                                const MemoryRegionOps *ops)
{
    MemoryRegion *mr = pool_next();

    assert_int_equal(memory_region_init_io(mr, &ctx, name, ops, NULL, size),
                     0);
    return mr;
}

static MemoryRegion *new_io(const char *name, uint64_t size)
{
    return new_io_ops(name, size, &io_any_ops);
}

static int setup(void **state)
{
    (void)state;
    memset(pool, 0, sizeof(pool));
    pool_used = 0;
    n_recorders = 0;
    io_log[0] = '\0';
    events[0] = '\0';
    assert_int_equal(ram_list_init(&rl), 0);
    assert_int_equal(memory_context_init(&ctx, &rl), 0);
    root = new_container("root", 0);
    assert_int_equal(address_space_init(&as, &ctx, root, "memory"), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (as.ctx) {
        assert_int_equal(address_space_destroy(&as), 0);
    }
    for (unsigned int i = pool_used; i-- > 0;) {
        if (pool[i].ctx && pool[i].parent) {
            assert_int_equal(memory_region_del_subregion(pool[i].parent,
                                                         &pool[i]), 0);
        }
    }
    for (unsigned int i = pool_used; i-- > 0;) {
        if (pool[i].ctx) {
            assert_int_equal(memory_region_destroy(&pool[i]), 0);
        }
    }
    assert_int_equal(memory_context_destroy(&ctx), 0);
    ram_list_destroy(&rl);
    return 0;
}

/* The current view of @a as "addr+size=region@offset[ ro][ log=m]; ...". */
static const char *view_of(AddressSpace *a)
{
    static char buf[2048];
    const FlatView *view;
    const FlatRange *fr;

    buf[0] = '\0';
    rcu_read_lock();
    view = address_space_get_flatview(a);
    FLATVIEW_FOREACH(fr, view) {
        logf_to(buf, sizeof(buf), "%s%" PRIx64 "+%" PRIx64 "=%s@%" PRIx64
                "%s", buf[0] ? "; " : "", fr->addr, fr->size,
                memory_region_name(fr->mr), fr->offset_in_region,
                fr->readonly ? " ro" : "");
        if (fr->dirty_log_mask) {
            logf_to(buf, sizeof(buf), " log=%x", fr->dirty_log_mask);
        }
    }
    rcu_read_unlock();
    return buf;
}

static const char *view(void)
{
    return view_of(&as);
}

/* ---- a listener that records ------------------------------------------- */

typedef struct Recorder {
    MemoryListener l;
    const char *tag;            /* prefix of each event, or NULL */
    bool brackets;              /* record begin / commit too */
    bool nops;                  /* record region_nop too */
    unsigned int begins, commits;
} Recorder;

static Recorder *rec_of(MemoryListener *l)
{
    return caa_container_of(l, Recorder, l);
}

static void rec_event(MemoryListener *l, const char *what,
                      MemoryRegionSection *s)
{
    Recorder *r = rec_of(l);

    logf_to(events, sizeof(events), "%s%s%s", r->tag ? r->tag : "",
            r->tag ? ":" : "", what);
    if (s) {
        logf_to(events, sizeof(events), " %s %" PRIx64 "+%" PRIx64 "@%"
                PRIx64, memory_region_name(s->mr),
                s->offset_within_address_space, s->size,
                s->offset_within_region);
    }
}

static void rec_begin(MemoryListener *l)
{
    rec_of(l)->begins++;
    if (rec_of(l)->brackets) {
        rec_event(l, "begin", NULL);
        logf_to(events, sizeof(events), "; ");
    }
}

static void rec_commit(MemoryListener *l)
{
    rec_of(l)->commits++;
    if (rec_of(l)->brackets) {
        rec_event(l, "commit", NULL);
        logf_to(events, sizeof(events), "; ");
    }
}

static void rec_add(MemoryListener *l, MemoryRegionSection *s)
{
    rec_event(l, "add", s);
    logf_to(events, sizeof(events), "; ");
}

static void rec_del(MemoryListener *l, MemoryRegionSection *s)
{
    rec_event(l, "del", s);
    logf_to(events, sizeof(events), "; ");
}

static void rec_nop(MemoryListener *l, MemoryRegionSection *s)
{
    if (rec_of(l)->nops) {
        rec_event(l, "nop", s);
        logf_to(events, sizeof(events), "; ");
    }
}

static void rec_log_start(MemoryListener *l, MemoryRegionSection *s,
                          unsigned int old_mask, unsigned int new_mask)
{
    rec_event(l, "log_start", s);
    logf_to(events, sizeof(events), " %x>%x; ", old_mask, new_mask);
}

static void rec_log_stop(MemoryListener *l, MemoryRegionSection *s,
                         unsigned int old_mask, unsigned int new_mask)
{
    rec_event(l, "log_stop", s);
    logf_to(events, sizeof(events), " %x>%x; ", old_mask, new_mask);
}

static void rec_log_sync(MemoryListener *l, MemoryRegionSection *s)
{
    rec_event(l, "sync", s);
    logf_to(events, sizeof(events), "; ");
}

static void rec_global_start(MemoryListener *l)
{
    rec_event(l, "global_start", NULL);
    logf_to(events, sizeof(events), "; ");
}

static void rec_global_stop(MemoryListener *l)
{
    rec_event(l, "global_stop", NULL);
    logf_to(events, sizeof(events), "; ");
}

/* Recorders live beyond each test: the teardown may still call them. */
static Recorder recorders[4];

static Recorder *recorder(const char *tag, int priority)
{
    Recorder *r;

    assert_true(n_recorders < ARRAY_SIZE(recorders));
    r = &recorders[n_recorders++];
    *r = (Recorder) {
        .l = {
            .begin = rec_begin, .commit = rec_commit,
            .region_add = rec_add, .region_del = rec_del,
            .region_nop = rec_nop,
            .log_start = rec_log_start, .log_stop = rec_log_stop,
            .log_sync = rec_log_sync,
            .log_global_start = rec_global_start,
            .log_global_stop = rec_global_stop,
            .priority = priority,
        },
        .tag = tag,
    };
    return r;
}

/* Register @r and forget the replay. */
static void listen(Recorder *r)
{
    assert_int_equal(memory_listener_register(&r->l, &as), 0);
    events[0] = '\0';
    r->begins = r->commits = 0;
}

/* ---- rendering ------------------------------------------------------- */

static void test_empty_root_renders_an_empty_view(void **state)
{
    (void)state;
    assert_string_equal(view(), "");
}

static void test_ram_subregion_renders_at_its_address(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x100000, ram), 0);
    assert_string_equal(view(), "100000+200000=ram@0");
}

static void test_nested_containers_add_their_addresses(void **state)
{
    MemoryRegion *outer = new_container("outer", 64 * MiB);
    MemoryRegion *inner = new_container("inner", 16 * MiB);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(inner, 0x200000, ram), 0);
    assert_int_equal(memory_region_add_subregion(inner, 0x10000, io), 0);
    assert_int_equal(memory_region_add_subregion(outer, 0x1000000, inner),
                     0);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, outer), 0);
    assert_string_equal(view(), "11010000+1000=io@0; "
                                "11200000+200000=ram@0");
}

static void test_subregion_sticking_out_of_its_container_is_clipped(
    void **state)
{
    MemoryRegion *c = new_container("c", 3 * MiB);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(c, 2 * MiB, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, c), 0);
    assert_string_equal(view(), "200000+100000=ram@0");
}

static void test_higher_priority_region_hides_lower_one(void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion_overlap(root, 0x1000, io, 1),
                     0);
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_string_equal(view(), "0+1000=ram@0; 1000+1000=io@0; "
                                "2000+3fe000=ram@2000");
}

static void test_lower_priority_region_shows_through_holes_of_higher_one(
    void **state)
{
    MemoryRegion *high = new_container("high", 4 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);
    MemoryRegion *ram = new_ram("ram", 4 * MiB);

    (void)state;
    /* The container covers all of ram but only io inside it is seen. */
    assert_int_equal(memory_region_add_subregion(high, 0x3000, io), 0);
    assert_int_equal(memory_region_add_subregion_overlap(root, 0, high, 5),
                     0);
    assert_int_equal(memory_region_add_subregion_overlap(root, 0, ram, -5),
                     0);
    assert_string_equal(view(), "0+3000=ram@0; 3000+1000=io@0; "
                                "4000+3fc000=ram@4000");
}

static void test_equal_priority_later_added_region_wins(void **state)
{
    MemoryRegion *a = new_io("a", 0x2000);
    MemoryRegion *b = new_io("b", 0x2000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, a), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x1000, b), 0);
    assert_string_equal(view(), "0+1000=a@0; 1000+2000=b@0");
}

static void test_subregions_of_ram_region_cover_it(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(ram, 0x1000, io), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_string_equal(view(), "0+1000=ram@0; 1000+1000=io@0; "
                                "2000+1fe000=ram@2000");
}

static void test_alias_shows_target_from_its_offset(void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *hi = new_alias("hi", ram, 3 * MiB, MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x100000000, hi), 0);
    assert_string_equal(view(), "100000000+100000=ram@300000");
}

static void test_alias_of_alias_adds_offsets(void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *a1 = new_alias("a1", ram, MiB, 2 * MiB);
    MemoryRegion *a2 = new_alias("a2", a1, 0x1000, 0x2000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x8000, a2), 0);
    assert_string_equal(view(), "8000+2000=ram@101000");
}

static void test_alias_beyond_end_of_target_shows_nothing_there(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *a = new_alias("a", ram, MiB, 4 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, a), 0);
    assert_string_equal(view(), "0+100000=ram@100000");
}

static void test_set_alias_offset_moves_the_window(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *a = new_alias("a", ram, 0, 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, a), 0);
    assert_int_equal(memory_region_set_alias_offset(a, 0x5000), 0);
    assert_string_equal(view(), "0+1000=ram@5000");
}

static void test_disabled_region_is_not_rendered(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion_overlap(root, 0, io, 1), 0);
    assert_int_equal(memory_region_set_enabled(io, false), 0);
    assert_string_equal(view(), "0+200000=ram@0");
}

static void test_disabled_container_hides_its_subregions(void **state)
{
    MemoryRegion *c = new_container("c", 4 * MiB);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(c, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, c), 0);
    assert_int_equal(memory_region_set_enabled(c, false), 0);
    assert_string_equal(view(), "");
}

static void test_reenabled_region_is_rendered_again(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_set_enabled(ram, false), 0);
    assert_int_equal(memory_region_set_enabled(ram, true), 0);
    assert_string_equal(view(), "0+200000=ram@0");
}

static void test_set_size_grows_and_shrinks_the_range(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x10000, io), 0);
    assert_int_equal(memory_region_set_size(io, 0x3000), 0);
    assert_string_equal(view(), "10000+3000=io@0");
    assert_int_equal(memory_region_set_size(io, 0x800), 0);
    assert_string_equal(view(), "10000+800=io@0");
    assert_int_equal(memory_region_size(io), 0x800);
}

static void test_set_address_moves_the_range(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x10000, io), 0);
    assert_int_equal(memory_region_set_address(io, 0x20000), 0);
    assert_string_equal(view(), "20000+1000=io@0");
}

static void test_readonly_region_renders_readonly_ranges(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_set_readonly(ram, true), 0);
    assert_string_equal(view(), "0+200000=ram@0 ro");
    assert_int_equal(memory_region_set_readonly(ram, false), 0);
    assert_string_equal(view(), "0+200000=ram@0");
}

static void test_readonly_alias_makes_only_its_window_readonly(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *rom = new_alias("rom", ram, 0, 0x1000);

    (void)state;
    assert_int_equal(memory_region_set_readonly(rom, true), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, rom), 0);
    assert_string_equal(view(), "0+200000=ram@0; 10000000+1000=ram@0 ro");
}

static void test_rom_block_gives_readonly_region(void **state)
{
    MemoryRegion *rom = pool_next();

    (void)state;
    assert_int_equal(memory_region_init_ram(rom, &ctx, "rom",
                                            new_block("rom", 2 * MiB,
                                                      RAM_READONLY)), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, rom), 0);
    assert_string_equal(view(), "0+200000=rom@0 ro");
}

static void test_contiguous_aliases_of_one_region_merge(void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *lo = new_alias("lo", ram, 0, MiB);
    MemoryRegion *hi = new_alias("hi", ram, MiB, MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, lo), 0);
    assert_int_equal(memory_region_add_subregion(root, MiB, hi), 0);
    assert_string_equal(view(), "0+200000=ram@0");
}

static void test_aliases_with_discontiguous_offsets_do_not_merge(
    void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *lo = new_alias("lo", ram, 0, MiB);
    MemoryRegion *hi = new_alias("hi", ram, 2 * MiB, MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, lo), 0);
    assert_int_equal(memory_region_add_subregion(root, MiB, hi), 0);
    assert_string_equal(view(), "0+100000=ram@0; 100000+100000=ram@200000");
}

static void test_ram_ranges_carry_ram_addr_of_their_first_byte(void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *vram = new_ram("vram", 2 * MiB);
    MemoryRegion *hi = new_alias("hi", ram, 3 * MiB, MiB);
    const FlatRange *fr;

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x100000000, hi), 0);
    assert_int_equal(memory_region_add_subregion(root, 0xf0000000, vram), 0);
    rcu_read_lock();
    fr = address_space_lookup(&as, 0x100000000, NULL, NULL);
    assert_non_null(fr);
    assert_true(flatrange_is_ram(fr));
    assert_int_equal(fr->ram_addr, ram->ram_block->offset + 3 * MiB);
    fr = address_space_lookup(&as, 0xf0000000, NULL, NULL);
    assert_non_null(fr);
    assert_int_equal(fr->ram_addr, vram->ram_block->offset);
    assert_int_not_equal(vram->ram_block->offset, ram->ram_block->offset);
    rcu_read_unlock();
}

static void test_io_ranges_have_no_ram_addr(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    const FlatRange *fr;

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    rcu_read_lock();
    fr = address_space_lookup(&as, 0, NULL, NULL);
    assert_non_null(fr);
    assert_false(flatrange_is_ram(fr));
    assert_int_equal(fr->ram_addr, RAM_ADDR_INVALID);
    rcu_read_unlock();
}

static void test_region_at_top_of_address_space_is_rendered(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, UINT64_MAX - 0xfff,
                                                 io), 0);
    assert_string_equal(view(), "fffffffffffff000+1000=io@0");
}

static void test_region_past_top_of_address_space_is_clipped(void **state)
{
    MemoryRegion *io = new_io("io", 0x2000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, UINT64_MAX - 0xfff,
                                                 io), 0);
    assert_string_equal(view(), "fffffffffffff000+1000=io@0");
}

/* ---- lookups ----------------------------------------------------------- */

static void add_two_regions(MemoryRegion **ram, MemoryRegion **io)
{
    *ram = new_ram("ram", 2 * MiB);
    *io = new_io("io", 0x1000);
    assert_int_equal(memory_region_add_subregion(root, 0x100000, *ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x400000, *io), 0);
}

static void test_lookup_finds_first_and_last_byte(void **state)
{
    MemoryRegion *ram, *io;
    uint64_t off, rem;
    const FlatRange *fr;

    (void)state;
    add_two_regions(&ram, &io);
    rcu_read_lock();
    fr = address_space_lookup(&as, 0x100000, &off, &rem);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, ram);
    assert_int_equal(off, 0);
    assert_int_equal(rem, 2 * MiB);
    fr = address_space_lookup(&as, 0x2fffff, &off, &rem);
    assert_non_null(fr);
    assert_ptr_equal(fr->mr, ram);
    assert_int_equal(off, 2 * MiB - 1);
    assert_int_equal(rem, 1);
    rcu_read_unlock();
}

static void test_lookup_one_past_end_is_a_hole(void **state)
{
    MemoryRegion *ram, *io;

    (void)state;
    add_two_regions(&ram, &io);
    rcu_read_lock();
    assert_null(address_space_lookup(&as, 0x300000, NULL, NULL));
    assert_null(address_space_lookup(&as, 0x401000, NULL, NULL));
    rcu_read_unlock();
}

static void test_lookup_in_hole_between_regions_misses(void **state)
{
    MemoryRegion *ram, *io;

    (void)state;
    add_two_regions(&ram, &io);
    rcu_read_lock();
    assert_null(address_space_lookup(&as, 0x3fffff, NULL, NULL));
    assert_non_null(address_space_lookup(&as, 0x400000, NULL, NULL));
    rcu_read_unlock();
}

static void test_lookup_before_first_range_misses(void **state)
{
    MemoryRegion *ram, *io;

    (void)state;
    add_two_regions(&ram, &io);
    rcu_read_lock();
    assert_null(address_space_lookup(&as, 0, NULL, NULL));
    assert_null(address_space_lookup(&as, 0xfffff, NULL, NULL));
    rcu_read_unlock();
}

static void test_lookup_gives_offset_in_region_and_remaining_length(
    void **state)
{
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *a = new_alias("a", ram, MiB, MiB);
    uint64_t off, rem;
    const FlatRange *fr;

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, a), 0);
    rcu_read_lock();
    fr = address_space_lookup(&as, 0x10000123, &off, &rem);
    assert_non_null(fr);
    assert_int_equal(off, MiB + 0x123);
    assert_int_equal(rem, MiB - 0x123);
    assert_int_equal(fr->ram_addr + (0x10000123 - fr->addr),
                     ram->ram_block->offset + MiB + 0x123);
    rcu_read_unlock();
}

static void test_lookup_last_byte_of_address_space(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    uint64_t off, rem;

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, UINT64_MAX - 0xfff,
                                                 io), 0);
    rcu_read_lock();
    assert_non_null(address_space_lookup(&as, UINT64_MAX, &off, &rem));
    assert_int_equal(off, 0xfff);
    assert_int_equal(rem, 1);
    assert_null(address_space_lookup(&as, UINT64_MAX - 0x1000, NULL, NULL));
    rcu_read_unlock();
}

/* ---- listeners ------------------------------------------------------- */

static void test_listener_sees_region_add_for_new_subregion(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    listen(r);
    assert_int_equal(memory_region_add_subregion(root, 0x100000, ram), 0);
    assert_string_equal(events, "add ram 100000+200000@0; ");
}

static void test_listener_sees_region_del_for_removed_subregion(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x100000, ram), 0);
    listen(r);
    assert_int_equal(memory_region_del_subregion(root, ram), 0);
    assert_string_equal(events, "del ram 100000+200000@0; ");
}

static void test_listener_sees_del_then_add_when_subregion_moves(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0x20000, io), 0);
    listen(r);
    assert_int_equal(memory_region_set_address(io, 0x10000), 0);
    assert_string_equal(events, "del io 20000+1000@0; add io 10000+1000@0; ");
}

static void test_listener_sees_pieces_when_region_is_split_by_overlap(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    listen(r);
    assert_int_equal(memory_region_add_subregion_overlap(root, 0x1000, io, 1),
                     0);
    assert_string_equal(events, "del ram 0+200000@0; "
                                "add ram 0+1000@0; "
                                "add io 1000+1000@0; "
                                "add ram 2000+1fe000@2000; ");
}

static void test_listener_sees_log_start_and_log_stop_for_set_log(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *vram = new_ram("vram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0xf0000000, vram), 0);
    listen(r);
    assert_int_equal(memory_region_set_log(vram, true, DIRTY_MEMORY_VGA), 0);
    assert_string_equal(events, "log_start vram f0000000+200000@0 0>1; ");
    assert_int_equal(memory_region_get_dirty_log_mask(vram),
                     DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA));
    assert_string_equal(view(), "f0000000+200000=vram@0 log=1");
    events[0] = '\0';
    assert_int_equal(memory_region_set_log(vram, false, DIRTY_MEMORY_VGA), 0);
    assert_string_equal(events, "log_stop vram f0000000+200000@0 1>0; ");
}

static void test_listener_sees_del_and_add_for_readonly_change(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    listen(r);
    assert_int_equal(memory_region_set_readonly(ram, true), 0);
    assert_string_equal(events, "del ram 0+200000@0; add ram 0+200000@0; ");
}

static void test_listener_sees_region_nop_for_unchanged_ranges(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    r->nops = true;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    listen(r);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, io), 0);
    assert_string_equal(events, "nop ram 0+200000@0; "
                                "add io 10000000+1000@0; ");
}

static void test_listener_registration_replays_view_with_log_start(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *vram = new_ram("vram", 2 * MiB);

    (void)state;
    r->brackets = true;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0xf0000000, vram), 0);
    assert_int_equal(memory_region_set_log(vram, true, DIRTY_MEMORY_VGA), 0);
    events[0] = '\0';
    assert_int_equal(memory_listener_register(&r->l, &as), 0);
    assert_string_equal(events, "begin; add ram 0+200000@0; "
                                "add vram f0000000+200000@0; "
                                "log_start vram f0000000+200000@0 0>1; "
                                "commit; ");
}

static void test_listener_unregistration_sends_region_del(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, io), 0);
    listen(r);
    assert_int_equal(memory_listener_unregister(&r->l), 0);
    assert_string_equal(events, "del ram 0+200000@0; "
                                "del io 10000000+1000@0; ");
    events[0] = '\0';
    assert_int_equal(memory_region_del_subregion(root, io), 0);
    assert_string_equal(events, "");
    assert_int_equal(memory_listener_unregister(&r->l), -EINVAL);
}

static void test_listeners_add_in_ascending_and_del_in_descending_priority(
    void **state)
{
    Recorder *hi = recorder("hi", 10);
    Recorder *lo = recorder("lo", -10);
    Recorder *mid = recorder("mid", 0);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    listen(hi);
    listen(lo);
    listen(mid);
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    assert_string_equal(events, "lo:add io 0+1000@0; mid:add io 0+1000@0; "
                                "hi:add io 0+1000@0; ");
    events[0] = '\0';
    assert_int_equal(memory_region_del_subregion(root, io), 0);
    assert_string_equal(events, "hi:del io 0+1000@0; mid:del io 0+1000@0; "
                                "lo:del io 0+1000@0; ");
}

static void test_transaction_batches_changes_into_one_commit(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    r->brackets = true;
    listen(r);
    assert_int_equal(memory_region_transaction_begin(&ctx), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, io), 0);
    assert_int_equal(memory_region_set_address(io, 0x20000000), 0);
    assert_string_equal(view(), "");    /* nothing published yet */
    assert_string_equal(events, "");
    assert_int_equal(memory_region_transaction_commit(&ctx), 0);
    assert_string_equal(events, "begin; add ram 0+200000@0; "
                                "add io 20000000+1000@0; commit; ");
    assert_int_equal(r->begins, 1);
    assert_int_equal(r->commits, 1);
}

static void test_nested_transactions_render_at_outermost_commit(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    listen(r);
    assert_int_equal(memory_region_transaction_begin(&ctx), 0);
    assert_int_equal(memory_region_transaction_begin(&ctx), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    assert_int_equal(memory_region_transaction_commit(&ctx), 0);
    assert_string_equal(view(), "");
    assert_int_equal(memory_region_transaction_commit(&ctx), 0);
    assert_string_equal(view(), "0+1000=io@0");
    assert_int_equal(r->commits, 1);
}

static void test_commit_without_transaction_gives_eperm(void **state)
{
    (void)state;
    assert_int_equal(memory_region_transaction_commit(&ctx), -EPERM);
}

/* A listener that tries to change the tree from its callback. */
static int reentry_result;
static MemoryRegion *reentry_region;

static void reentering_add(MemoryListener *l, MemoryRegionSection *s)
{
    (void)l;
    (void)s;
    reentry_result = memory_region_set_enabled(reentry_region, false);
}

static void test_change_from_listener_callback_gives_edeadlk(void **state)
{
    static MemoryListener l;
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    l = (MemoryListener) { .region_add = reentering_add };
    reentry_region = io;
    assert_int_equal(memory_listener_register(&l, &as), 0);
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    assert_int_equal(reentry_result, -EDEADLK);
    assert_string_equal(view(), "0+1000=io@0");
    assert_int_equal(memory_listener_unregister(&l), 0);
}

static void test_global_dirty_log_adds_migration_to_ram_ranges(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x10000000, io), 0);
    listen(r);
    assert_int_equal(memory_global_dirty_log_start(&ctx), 0);
    assert_string_equal(events, "global_start; "
                                "log_start ram 0+200000@0 0>4; ");
    assert_string_equal(view(), "0+200000=ram@0 log=4; 10000000+1000=io@0");
    events[0] = '\0';
    assert_int_equal(memory_global_dirty_log_stop(&ctx), 0);
    assert_string_equal(events, "log_stop ram 0+200000@0 4>0; "
                                "global_stop; ");
}

static void test_address_space_destroy_sends_region_del(void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    listen(r);
    assert_int_equal(address_space_destroy(&as), 0);
    assert_string_equal(events, "del io 0+1000@0; ");
    assert_null(r->l.address_space);
}

static void test_second_address_space_renders_shared_regions(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *pci = new_container("pci", 0);
    MemoryRegion *sys = new_alias("sys", root, 0, 4 * MiB);
    AddressSpace dma;

    (void)state;
    assert_int_equal(memory_region_add_subregion(pci, 0, sys), 0);
    assert_int_equal(address_space_init(&dma, &ctx, pci, "dma"), 0);
    assert_int_equal(memory_region_add_subregion(root, MiB, ram), 0);
    assert_string_equal(view_of(&dma), "100000+200000=ram@0");
    assert_string_equal(address_space_name(&dma), "dma");
    assert_int_equal(address_space_destroy(&dma), 0);
}

/* ---- dirty logging ----------------------------------------------------- */

/* A RAM region, mapped, with every page clean for every client. */
static MemoryRegion *clean_ram(const char *name, uint64_t size)
{
    MemoryRegion *ram = new_ram(name, size);

    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_true(memory_region_reset_dirty(ram, 0, size, c) >= 0);
    }
    return ram;
}

static void test_set_dirty_marks_the_ram_addr_pages_of_the_region(
    void **state)
{
    MemoryRegion *ram = clean_ram("ram", 4 * MiB);
    uint64_t page = (ram->ram_block->offset + 0x3000) >> XR_PAGE_BITS;

    (void)state;
    assert_int_equal(memory_region_set_dirty(ram, 0x3000, 2 * PAGE), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_get(&rl.dirty, page - 1, 1, c), 0);
        assert_int_equal(dirty_memory_all(&rl.dirty, page, 2, c), 1);
        assert_int_equal(dirty_memory_get(&rl.dirty, page + 2, 1, c), 0);
    }
}

static void test_get_dirty_reports_pages_by_region_offset(void **state)
{
    MemoryRegion *ram = clean_ram("ram", 4 * MiB);
    uint64_t page = (ram->ram_block->offset + 0x5000) >> XR_PAGE_BITS;

    (void)state;
    assert_int_equal(dirty_memory_set_page(&rl.dirty, page,
                                           DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_get_dirty(ram, 0x5000, PAGE,
                                             DIRTY_MEMORY_VGA), 1);
    assert_int_equal(memory_region_get_dirty(ram, 0x5000, PAGE,
                                             DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(memory_region_get_dirty(ram, 0x4000, PAGE,
                                             DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_get_dirty(ram, 0, 4 * MiB,
                                             DIRTY_MEMORY_VGA), 1);
    assert_int_equal(memory_region_get_dirty(ram, 0x5000, 0,
                                             DIRTY_MEMORY_VGA), 0);
}

static void test_reset_dirty_clears_and_reports_once(void **state)
{
    MemoryRegion *ram = clean_ram("ram", 4 * MiB);

    (void)state;
    assert_int_equal(memory_region_set_dirty(ram, 0x10000, PAGE), 0);
    assert_int_equal(memory_region_reset_dirty(ram, 0, 4 * MiB,
                                               DIRTY_MEMORY_VGA), 1);
    assert_int_equal(memory_region_reset_dirty(ram, 0, 4 * MiB,
                                               DIRTY_MEMORY_VGA), 0);
    /* Other clients keep their bit. */
    assert_int_equal(memory_region_get_dirty(ram, 0x10000, PAGE,
                                             DIRTY_MEMORY_MIGRATION), 1);
}

static void test_dirty_offsets_of_second_block_map_to_its_ram_addr(
    void **state)
{
    MemoryRegion *ram = clean_ram("ram", 4 * MiB);
    MemoryRegion *vram = clean_ram("vram", 2 * MiB);
    uint64_t vpage = vram->ram_block->offset >> XR_PAGE_BITS;

    (void)state;
    assert_int_not_equal(vram->ram_block->offset, 0);
    assert_int_equal(memory_region_set_dirty(vram, 0, PAGE), 0);
    assert_int_equal(dirty_memory_get(&rl.dirty, vpage, 1,
                                      DIRTY_MEMORY_VGA), 1);
    assert_int_equal(memory_region_get_dirty(ram, 0, 4 * MiB,
                                             DIRTY_MEMORY_VGA), 0);
    assert_int_equal(memory_region_get_dirty(vram, 0, PAGE,
                                             DIRTY_MEMORY_VGA), 1);
}

static void test_partial_pages_count_as_whole_pages(void **state)
{
    MemoryRegion *ram = clean_ram("ram", 4 * MiB);

    (void)state;
    /* Two bytes straddling pages 1 and 2 dirty both pages. */
    assert_int_equal(memory_region_set_dirty(ram, 2 * PAGE - 1, 2), 0);
    assert_int_equal(memory_region_get_dirty(ram, PAGE, 1, DIRTY_MEMORY_VGA),
                     1);
    assert_int_equal(memory_region_get_dirty(ram, 2 * PAGE + 5, 1,
                                             DIRTY_MEMORY_VGA), 1);
    assert_int_equal(memory_region_get_dirty(ram, 3 * PAGE, PAGE,
                                             DIRTY_MEMORY_VGA), 0);
}

static void test_set_log_rejects_bad_client_and_non_ram(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *io = new_io("io", 0x1000);
    MemoryRegion *a = new_alias("a", ram, 0, PAGE);

    (void)state;
    assert_int_equal(memory_region_set_log(ram, true, DIRTY_MEMORY_NUM),
                     -EINVAL);
    assert_int_equal(memory_region_set_log(io, true, DIRTY_MEMORY_VGA),
                     -EINVAL);
    assert_int_equal(memory_region_set_log(a, true, DIRTY_MEMORY_VGA),
                     -EINVAL);
    assert_int_equal(memory_region_get_dirty_log_mask(ram), 0);
}

static void test_dirty_functions_reject_non_ram_regions(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    MemoryRegion *c = new_container("c", MiB);

    (void)state;
    assert_int_equal(memory_region_get_dirty(io, 0, 1, DIRTY_MEMORY_VGA),
                     -EINVAL);
    assert_int_equal(memory_region_set_dirty(io, 0, 1), -EINVAL);
    assert_int_equal(memory_region_reset_dirty(c, 0, 1, DIRTY_MEMORY_VGA),
                     -EINVAL);
    assert_int_equal(memory_region_sync_dirty_bitmap(c), -EINVAL);
    assert_int_equal(memory_region_get_dirty(NULL, 0, 1, DIRTY_MEMORY_VGA),
                     -EINVAL);
}

static void test_dirty_functions_reject_ranges_beyond_region(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_set_dirty(ram, 2 * MiB - 1, 2), -ERANGE);
    assert_int_equal(memory_region_get_dirty(ram, 2 * MiB + 1, 0,
                                             DIRTY_MEMORY_VGA), -ERANGE);
    assert_int_equal(memory_region_reset_dirty(ram, 1, UINT64_MAX,
                                               DIRTY_MEMORY_VGA), -ERANGE);
    assert_int_equal(memory_region_set_dirty(ram, 2 * MiB, 0), 0);
    assert_int_equal(memory_region_get_dirty(ram, 0, PAGE, 7), -EINVAL);
}

static void test_sync_dirty_bitmap_calls_log_sync_for_each_section(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 4 * MiB);
    MemoryRegion *other = new_ram("other", 2 * MiB);
    MemoryRegion *lo = new_alias("lo", ram, 0, MiB);
    MemoryRegion *hi = new_alias("hi", ram, MiB, 3 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, lo), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x100000000, hi), 0);
    assert_int_equal(memory_region_add_subregion(root, 0x200000000, other),
                     0);
    listen(r);
    assert_int_equal(memory_region_sync_dirty_bitmap(ram), 0);
    assert_string_equal(events, "sync ram 0+100000@0; "
                                "sync ram 100000000+300000@100000; ");
}

static void test_global_dirty_log_sync_calls_only_logged_sections(
    void **state)
{
    Recorder *r = recorder(NULL, 0);
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *vram = new_ram("vram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, ram), 0);
    assert_int_equal(memory_region_add_subregion(root, 0xf0000000, vram), 0);
    assert_int_equal(memory_region_set_log(vram, true, DIRTY_MEMORY_VGA), 0);
    listen(r);
    assert_int_equal(memory_global_dirty_log_sync(&ctx), 0);
    assert_string_equal(events, "sync vram f0000000+200000@0; ");
}

/* ---- errors ---------------------------------------------------------- */

static void test_region_with_parent_cannot_be_added_again(void **state)
{
    MemoryRegion *c = new_container("c", MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    assert_int_equal(memory_region_add_subregion(c, 0, io), -EBUSY);
    assert_ptr_equal(io->parent, root);
}

static void test_region_cannot_contain_itself(void **state)
{
    MemoryRegion *c = new_container("c", MiB);
    MemoryRegion *d = new_container("d", MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(c, 0, c), -ELOOP);
    assert_int_equal(memory_region_add_subregion(c, 0, d), 0);
    assert_int_equal(memory_region_add_subregion(d, 0, c), -ELOOP);
    assert_null(c->parent);
}

static void test_alias_loop_is_rejected(void **state)
{
    MemoryRegion *c = new_container("c", MiB);
    MemoryRegion *inner = new_container("inner", MiB);
    MemoryRegion *a = new_alias("a", c, 0, MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(c, 0, inner), 0);
    assert_int_equal(memory_region_add_subregion(inner, 0, a), -ELOOP);
    assert_int_equal(memory_region_add_subregion(c, 0, a), -ELOOP);
    assert_null(a->parent);
}

static void test_alias_cannot_have_subregions(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *a = new_alias("a", ram, 0, MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(a, 0, io), -EINVAL);
    assert_int_equal(memory_region_init_alias(pool_next(), "self", NULL, 0,
                                              MiB), -EINVAL);
}

static void test_del_subregion_of_other_parent_gives_einval(void **state)
{
    MemoryRegion *c = new_container("c", MiB);
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, io), 0);
    assert_int_equal(memory_region_del_subregion(c, io), -EINVAL);
    assert_string_equal(view(), "0+1000=io@0");
}

static void test_zero_size_io_and_alias_give_einval(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);

    (void)state;
    assert_int_equal(memory_region_init_io(pool_next(), &ctx, "z",
                                           &io_any_ops, NULL, 0), -EINVAL);
    assert_int_equal(memory_region_init_alias(pool_next(), "z", io, 0, 0),
                     -EINVAL);
    assert_int_equal(memory_region_set_size(io, 0), -EINVAL);
}

static void test_bad_access_sizes_in_ops_give_einval(void **state)
{
    static const MemoryRegionOps three = {
        .read = io_read, .valid.max_access_size = 3,
    };
    static const MemoryRegionOps inverted = {
        .read = io_read, .impl.min_access_size = 4,
        .impl.max_access_size = 2,
    };

    (void)state;
    assert_int_equal(memory_region_init_io(pool_next(), &ctx, "x", &three,
                                           NULL, PAGE), -EINVAL);
    assert_int_equal(memory_region_init_io(pool_next(), &ctx, "y",
                                           &inverted, NULL, PAGE), -EINVAL);
}

static void test_ram_region_needs_a_block_of_the_context(void **state)
{
    RAMList other;
    RAMBlock *foreign;

    (void)state;
    assert_int_equal(ram_list_init(&other), 0);
    assert_int_equal(ram_block_add(&other, "foreign", 2 * MiB, 2 * MiB, NULL,
                                   0, NULL, &foreign), 0);
    assert_int_equal(memory_region_init_ram(pool_next(), &ctx, "f", foreign),
                     -EINVAL);
    ram_list_destroy(&other);
}

static void test_block_with_region_cannot_get_another(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_ptr_equal(ram->ram_block->mr, ram);
    assert_int_equal(memory_region_init_ram(pool_next(), &ctx, "again",
                                            ram->ram_block), -EBUSY);
}

static void test_ram_region_size_is_bounded_by_block_max_length(
    void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);

    (void)state;
    assert_int_equal(memory_region_set_size(ram, 4 * MiB), -ERANGE);
    assert_int_equal(memory_region_size(ram), 2 * MiB);
    assert_int_equal(memory_region_set_size(ram, MiB), 0);
}

static void test_region_in_use_cannot_be_destroyed(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    MemoryRegion *a = new_alias("a", ram, 0, MiB);

    (void)state;
    assert_int_equal(memory_region_add_subregion(root, 0, a), 0);
    assert_int_equal(memory_region_destroy(a), -EBUSY);     /* has a parent */
    assert_int_equal(memory_region_destroy(ram), -EBUSY);   /* aliased */
    assert_int_equal(memory_region_destroy(root), -EBUSY);  /* a root */
    /* Deleted, but the view still shows it until the commit. */
    assert_int_equal(memory_region_transaction_begin(&ctx), 0);
    assert_int_equal(memory_region_del_subregion(root, a), 0);
    assert_int_equal(memory_region_destroy(a), 0);          /* alias: gone */
    assert_int_equal(memory_region_destroy(ram), -EBUSY);   /* still seen */
    assert_int_equal(memory_region_transaction_commit(&ctx), 0);
    assert_int_equal(memory_region_destroy(ram), 0);
    assert_null(ram->ctx);
}

static void test_root_of_address_space_cannot_become_subregion(void **state)
{
    MemoryRegion *c = new_container("c", 0);

    (void)state;
    assert_int_equal(memory_region_add_subregion(c, 0, root), -EBUSY);
}

static void test_context_with_address_spaces_cannot_be_destroyed(
    void **state)
{
    (void)state;
    assert_int_equal(memory_context_destroy(&ctx), -EBUSY);
}

static void test_registered_listener_cannot_register_again(void **state)
{
    Recorder *r = recorder(NULL, 0);

    (void)state;
    listen(r);
    assert_int_equal(memory_listener_register(&r->l, &as), -EBUSY);
}

/* ---- I/O dispatch ------------------------------------------------------ */

static void test_io_read_calls_callback_with_region_offset(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    uint64_t v = 0;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0x20, &v, 4), 0);
    assert_string_equal(io_log, "r 20/4; ");
    assert_int_equal(v, 0x33323130);
}

static void test_io_access_outside_valid_sizes_is_rejected(void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write,
        .valid.min_access_size = 2, .valid.max_access_size = 4,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);
    uint64_t v;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 1), -EINVAL);
    assert_int_equal(memory_region_dispatch_write(io, 0, 0, 8), -EINVAL);
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 2), 0);
    assert_int_equal(memory_region_dispatch_write(io, 0, 0, 4), 0);
    assert_string_equal(io_log, "r 0/2; w 0/4=0; ");
}

static void test_io_access_sizes_other_than_powers_of_two_are_rejected(
    void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    uint64_t v;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 3), -EINVAL);
    assert_int_equal(memory_region_dispatch_read(io, 0, &v, 0), -EINVAL);
    assert_int_equal(memory_region_dispatch_write(io, 0, 0, 16), -EINVAL);
    assert_string_equal(io_log, "");
}

static void test_io_read_is_split_to_impl_max_little_endian(void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write, .impl.max_access_size = 1,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);
    uint64_t v = 0;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0x40, &v, 4), 0);
    assert_string_equal(io_log, "r 40/1; r 41/1; r 42/1; r 43/1; ");
    assert_int_equal(v, 0x53525150);
}

static void test_io_write_is_split_to_impl_max_little_endian(void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write, .impl.max_access_size = 2,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);

    (void)state;
    assert_int_equal(memory_region_dispatch_write(io, 0x8, 0x1122334455667788,
                                                  8), 0);
    assert_string_equal(io_log, "w 8/2=7788; w a/2=5566; w c/2=3344; "
                                "w e/2=1122; ");
}

static void test_io_unaligned_access_is_rejected(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    uint64_t v;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0x2, &v, 4), -EINVAL);
    assert_int_equal(memory_region_dispatch_write(io, 0x1, 0, 2), -EINVAL);
    assert_string_equal(io_log, "");
}

static void test_io_unaligned_access_is_split_into_aligned_pieces(
    void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write, .valid.unaligned = true,
        .impl.max_access_size = 4,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);
    uint64_t v = 0;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0x3, &v, 4), 0);
    assert_string_equal(io_log, "r 3/1; r 4/2; r 6/1; ");
    assert_int_equal(v, 0x16151413);
}

static void test_io_unaligned_access_goes_whole_with_impl_unaligned(
    void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write, .valid.unaligned = true,
        .impl.unaligned = true,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);

    (void)state;
    assert_int_equal(memory_region_dispatch_write(io, 0x3, 0xaabbccdd, 4), 0);
    assert_string_equal(io_log, "w 3/4=aabbccdd; ");
}

static void test_io_small_access_is_widened_to_impl_min(void **state)
{
    static const MemoryRegionOps ops = {
        .read = io_read, .write = io_write, .impl.min_access_size = 4,
    };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);
    uint64_t v = 0;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0x6, &v, 1), 0);
    assert_int_equal(v, 0x16);
    assert_int_equal(memory_region_dispatch_write(io, 0x6, 0xab, 1), 0);
    assert_string_equal(io_log, "r 4/4; w 4/4=ab0000; ");
}

static void test_io_access_beyond_region_gives_erange(void **state)
{
    MemoryRegion *io = new_io("io", 0x1000);
    uint64_t v;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(io, 0xffc, &v, 8), -EINVAL);
    assert_int_equal(memory_region_dispatch_read(io, 0x1000, &v, 4), -ERANGE);
    assert_int_equal(memory_region_dispatch_read(io, 0xff8, &v, 8), 0);
}

static void test_io_dispatch_on_ram_region_gives_einval(void **state)
{
    MemoryRegion *ram = new_ram("ram", 2 * MiB);
    uint64_t v;

    (void)state;
    assert_int_equal(memory_region_dispatch_read(ram, 0, &v, 4), -EINVAL);
    assert_int_equal(memory_region_dispatch_write(ram, 0, 0, 4), -EINVAL);
}

static void test_io_region_without_write_callback_gives_eperm(void **state)
{
    static const MemoryRegionOps ops = { .read = io_read };
    MemoryRegion *io = new_io_ops("io", 0x1000, &ops);

    (void)state;
    assert_int_equal(memory_region_dispatch_write(io, 0, 1, 4), -EPERM);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_root_renders_an_empty_view),
        T(test_ram_subregion_renders_at_its_address),
        T(test_nested_containers_add_their_addresses),
        T(test_subregion_sticking_out_of_its_container_is_clipped),
        T(test_higher_priority_region_hides_lower_one),
        T(test_lower_priority_region_shows_through_holes_of_higher_one),
        T(test_equal_priority_later_added_region_wins),
        T(test_subregions_of_ram_region_cover_it),
        T(test_alias_shows_target_from_its_offset),
        T(test_alias_of_alias_adds_offsets),
        T(test_alias_beyond_end_of_target_shows_nothing_there),
        T(test_set_alias_offset_moves_the_window),
        T(test_disabled_region_is_not_rendered),
        T(test_disabled_container_hides_its_subregions),
        T(test_reenabled_region_is_rendered_again),
        T(test_set_size_grows_and_shrinks_the_range),
        T(test_set_address_moves_the_range),
        T(test_readonly_region_renders_readonly_ranges),
        T(test_readonly_alias_makes_only_its_window_readonly),
        T(test_rom_block_gives_readonly_region),
        T(test_contiguous_aliases_of_one_region_merge),
        T(test_aliases_with_discontiguous_offsets_do_not_merge),
        T(test_ram_ranges_carry_ram_addr_of_their_first_byte),
        T(test_io_ranges_have_no_ram_addr),
        T(test_region_at_top_of_address_space_is_rendered),
        T(test_region_past_top_of_address_space_is_clipped),
        T(test_lookup_finds_first_and_last_byte),
        T(test_lookup_one_past_end_is_a_hole),
        T(test_lookup_in_hole_between_regions_misses),
        T(test_lookup_before_first_range_misses),
        T(test_lookup_gives_offset_in_region_and_remaining_length),
        T(test_lookup_last_byte_of_address_space),
        T(test_listener_sees_region_add_for_new_subregion),
        T(test_listener_sees_region_del_for_removed_subregion),
        T(test_listener_sees_del_then_add_when_subregion_moves),
        T(test_listener_sees_pieces_when_region_is_split_by_overlap),
        T(test_listener_sees_log_start_and_log_stop_for_set_log),
        T(test_listener_sees_del_and_add_for_readonly_change),
        T(test_listener_sees_region_nop_for_unchanged_ranges),
        T(test_listener_registration_replays_view_with_log_start),
        T(test_listener_unregistration_sends_region_del),
        T(test_listeners_add_in_ascending_and_del_in_descending_priority),
        T(test_transaction_batches_changes_into_one_commit),
        T(test_nested_transactions_render_at_outermost_commit),
        T(test_commit_without_transaction_gives_eperm),
        T(test_change_from_listener_callback_gives_edeadlk),
        T(test_global_dirty_log_adds_migration_to_ram_ranges),
        T(test_address_space_destroy_sends_region_del),
        T(test_second_address_space_renders_shared_regions),
        T(test_set_dirty_marks_the_ram_addr_pages_of_the_region),
        T(test_get_dirty_reports_pages_by_region_offset),
        T(test_reset_dirty_clears_and_reports_once),
        T(test_dirty_offsets_of_second_block_map_to_its_ram_addr),
        T(test_partial_pages_count_as_whole_pages),
        T(test_set_log_rejects_bad_client_and_non_ram),
        T(test_dirty_functions_reject_non_ram_regions),
        T(test_dirty_functions_reject_ranges_beyond_region),
        T(test_sync_dirty_bitmap_calls_log_sync_for_each_section),
        T(test_global_dirty_log_sync_calls_only_logged_sections),
        T(test_region_with_parent_cannot_be_added_again),
        T(test_region_cannot_contain_itself),
        T(test_alias_loop_is_rejected),
        T(test_alias_cannot_have_subregions),
        T(test_del_subregion_of_other_parent_gives_einval),
        T(test_zero_size_io_and_alias_give_einval),
        T(test_bad_access_sizes_in_ops_give_einval),
        T(test_ram_region_needs_a_block_of_the_context),
        T(test_block_with_region_cannot_get_another),
        T(test_ram_region_size_is_bounded_by_block_max_length),
        T(test_region_in_use_cannot_be_destroyed),
        T(test_root_of_address_space_cannot_become_subregion),
        T(test_context_with_address_spaces_cannot_be_destroyed),
        T(test_registered_listener_cannot_register_again),
        T(test_io_read_calls_callback_with_region_offset),
        T(test_io_access_outside_valid_sizes_is_rejected),
        T(test_io_access_sizes_other_than_powers_of_two_are_rejected),
        T(test_io_read_is_split_to_impl_max_little_endian),
        T(test_io_write_is_split_to_impl_max_little_endian),
        T(test_io_unaligned_access_is_rejected),
        T(test_io_unaligned_access_is_split_into_aligned_pieces),
        T(test_io_unaligned_access_goes_whole_with_impl_unaligned),
        T(test_io_small_access_is_widened_to_impl_min),
        T(test_io_access_beyond_region_gives_erange),
        T(test_io_dispatch_on_ram_region_gives_einval),
        T(test_io_region_without_write_callback_gives_eperm),
    };
#undef T
    int failed;

    rcu_register_thread();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    rcu_unregister_thread();
    return failed;
}
