/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ramblock.c - the RAMList contract of memory/ramblock.h.
 *
 * Each test starts from an empty RAMList.  Most blocks have no host memory
 * (as blocks reached through the mapcache), which keeps the tests free of
 * page faults; RAM_OWN_HOST is tested where it matters.  mmap, munmap and
 * dirty_memory_grow are wrapped (see memory/module.mk) to count calls and
 * to inject failures.
 */
#include <pthread.h>
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "memory/ramblock.h"

#define KiB ((ram_addr_t)1 << 10)
#define MiB ((ram_addr_t)1 << 20)
#define PAGE XR_PAGE_SIZE

/* ---- wrapped functions ------------------------------------------------ */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);
int __real_dirty_memory_grow(DirtyMemory *dm, uint64_t npages);
int __wrap_dirty_memory_grow(DirtyMemory *dm, uint64_t npages);

/*
 * Only host memory of RAM blocks is counted: other modules (dirty/) map
 * memory too.  RAM blocks are the mappings made with MAP_NORESERVE; they
 * are remembered so that their munmap, which happens on liburcu's call_rcu
 * thread, can be told apart.
 */
#define RAM_MAP_FLAGS (MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static bool fail_mmap, fail_grow;
static unsigned int n_mmap, n_munmap;
static int last_mmap_prot, last_mmap_flags;
static void *last_munmap_addr;
static size_t last_munmap_len;
static void *ram_maps[256];

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    void *p;

    if (!(flags & MAP_NORESERVE)) {
        return __real_mmap(addr, len, prot, flags, fd, off);
    }
    if (fail_mmap) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    p = __real_mmap(addr, len, prot, flags, fd, off);
    pthread_mutex_lock(&map_lock);
    n_mmap++;
    last_mmap_prot = prot;
    last_mmap_flags = flags;
    for (unsigned int i = 0; p != MAP_FAILED && i < ARRAY_SIZE(ram_maps);
         i++) {
        if (!ram_maps[i]) {
            ram_maps[i] = p;
            break;
        }
    }
    pthread_mutex_unlock(&map_lock);
    return p;
}

int __wrap_munmap(void *addr, size_t len)
{
    pthread_mutex_lock(&map_lock);
    for (unsigned int i = 0; addr && i < ARRAY_SIZE(ram_maps); i++) {
        if (ram_maps[i] == addr) {
            ram_maps[i] = NULL;
            last_munmap_addr = addr;
            last_munmap_len = len;
            n_munmap++;
            break;
        }
    }
    pthread_mutex_unlock(&map_lock);
    return __real_munmap(addr, len);
}

int __wrap_dirty_memory_grow(DirtyMemory *dm, uint64_t npages)
{
    if (fail_grow) {
        return -ENOMEM;
    }
    return __real_dirty_memory_grow(dm, npages);
}

/* Every call_rcu() queued so far, including the frees they chain, ran. */
static void wait_for_reclaim(void)
{
    rcu_barrier();
    rcu_barrier();
}

/* ---- notifier recorder ------------------------------------------------ */

enum { EV_ADDED, EV_REMOVED, EV_RESIZED };

typedef struct Event {
    int kind;
    unsigned int seq;           /* order among all recorders */
    RAMBlock *block;
    char idstr[RAM_BLOCK_IDSTR_SIZE];
    ram_addr_t old_length, new_length;
    /* What the callback saw of the world. */
    bool found_by_name;
    uint8_t host_byte;
} Event;

typedef struct Recorder {
    RAMBlockNotifier n;
    RAMList *rl;
    Event ev[64];
    unsigned int count;
} Recorder;

static unsigned int event_seq;

static Event *record(RAMBlockNotifier *n, int kind, RAMBlock *block)
{
    static Event overflow;
    Recorder *r = caa_container_of(n, Recorder, n);
    /*
     * No assertion here: callbacks run with the RAMList mutex held, which
     * a failing assertion would never release.  Too many events still
     * show, in the count.
     */
    Event *e = r->count < ARRAY_SIZE(r->ev) ? &r->ev[r->count] : &overflow;

    r->count++;
    e->kind = kind;
    e->seq = event_seq++;
    e->block = block;
    strcpy(e->idstr, block->idstr);
    e->new_length = block->used_length;
    rcu_read_lock();
    e->found_by_name = ram_block_by_name(r->rl, block->idstr) == block;
    rcu_read_unlock();
    if (block->host) {
        /* The memory must still be there: write and read it back. */
        block->host[0] = 0x5a;
        e->host_byte = block->host[0];
    }
    return e;
}

static void on_added(RAMBlockNotifier *n, RAMBlock *block)
{
    record(n, EV_ADDED, block);
}

static void on_removed(RAMBlockNotifier *n, RAMBlock *block)
{
    record(n, EV_REMOVED, block);
}

static void on_resized(RAMBlockNotifier *n, RAMBlock *block,
                       ram_addr_t old_length)
{
    record(n, EV_RESIZED, block)->old_length = old_length;
}

/*
 * Recorders live as long as the program: a test may leave one registered,
 * and the teardown's ram_list_destroy() still calls it.
 */
static Recorder rec, rec2;

static void recorder_init(Recorder *r, RAMList *rl)
{
    memset(r, 0, sizeof(*r));
    r->rl = rl;
    r->n.ram_block_added = on_added;
    r->n.ram_block_removed = on_removed;
    r->n.ram_block_resized = on_resized;
}

/* ---- resized callback ------------------------------------------------- */

static unsigned int resized_calls;
static char resized_idstr[RAM_BLOCK_IDSTR_SIZE];
static uint64_t resized_length;
static void *resized_host;

static void block_resized(const char *idstr, uint64_t new_length, void *host)
{
    resized_calls++;
    strcpy(resized_idstr, idstr);
    resized_length = new_length;
    resized_host = host;
}

/* ---- fixture ---------------------------------------------------------- */

static RAMList *rl;

static int setup(void **state)
{
    (void)state;
    fail_mmap = fail_grow = false;
    n_mmap = n_munmap = 0;
    last_mmap_prot = last_mmap_flags = 0;
    last_munmap_addr = NULL;
    last_munmap_len = 0;
    resized_calls = 0;
    resized_length = 0;
    resized_host = NULL;
    resized_idstr[0] = '\0';
    rl = malloc(sizeof(*rl));
    return rl && ram_list_init(rl) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ram_list_destroy(rl);
    free(rl);
    rl = NULL;
    return 0;
}

/* A block without host memory of @size bytes, or fail the test. */
static RAMBlock *add_fixed(const char *idstr, ram_addr_t size)
{
    RAMBlock *block = NULL;

    assert_int_equal(ram_block_add(rl, idstr, size, size, NULL, 0, NULL,
                                   &block), 0);
    assert_non_null(block);
    return block;
}

static RAMBlock *add_resizeable(const char *idstr, ram_addr_t used,
                                ram_addr_t max)
{
    RAMBlock *block = NULL;

    assert_int_equal(ram_block_add(rl, idstr, used, max, NULL,
                                   RAM_RESIZEABLE, block_resized, &block), 0);
    return block;
}

static RAMBlock *add_own_host(const char *idstr, ram_addr_t size)
{
    RAMBlock *block = NULL;

    assert_int_equal(ram_block_add(rl, idstr, size, size, NULL, RAM_OWN_HOST,
                                   NULL, &block), 0);
    return block;
}

/*
 * The names of the blocks in list order, at most @max of them; returns how
 * many there are.  Tests assert on the copy: a failed assertion inside a
 * read-side critical section would leave this thread in it for good.
 */
static unsigned int list_names(const char *names[], unsigned int max)
{
    unsigned int n = 0;
    RAMBlock *block;

    rcu_read_lock();
    RAMBLOCK_FOREACH(rl, block) {
        if (n < max) {
            names[n] = block->idstr;
        }
        n++;
    }
    rcu_read_unlock();
    return n;
}

static unsigned int count_blocks(void)
{
    unsigned int n = 0;
    RAMBlock *block;

    rcu_read_lock();
    RAMBLOCK_FOREACH(rl, block) {
        n++;
    }
    rcu_read_unlock();
    return n;
}

static RAMBlock *lookup_addr(ram_addr_t addr, ram_addr_t *offset)
{
    RAMBlock *block;

    rcu_read_lock();
    block = ram_block_from_addr(rl, addr, offset);
    rcu_read_unlock();
    return block;
}

static RAMBlock *lookup_host(const void *ptr, ram_addr_t *offset)
{
    RAMBlock *block;

    rcu_read_lock();
    block = ram_block_from_host(rl, ptr, offset);
    rcu_read_unlock();
    return block;
}

static RAMBlock *lookup_name(const char *idstr)
{
    RAMBlock *block;

    rcu_read_lock();
    block = ram_block_by_name(rl, idstr);
    rcu_read_unlock();
    return block;
}

static ram_addr_t last_offset(void)
{
    ram_addr_t last;

    rcu_read_lock();
    last = ram_list_last_offset(rl);
    rcu_read_unlock();
    return last;
}

/* What a rejected call must leave exactly as it was. */
typedef struct Snapshot {
    uint32_t version;
    unsigned int blocks;
    ram_addr_t last_offset;
    uint64_t dirty_pages;
    unsigned int events;
    unsigned int mmaps_live;
} Snapshot;

static Snapshot snapshot(const Recorder *r)
{
    return (Snapshot) {
        .version = rl->version,
        .blocks = count_blocks(),
        .last_offset = last_offset(),
        .dirty_pages = dirty_memory_pages(&rl->dirty),
        .events = r->count,
        .mmaps_live = n_mmap - n_munmap,
    };
}

static void assert_unchanged(const Snapshot *before, const Recorder *r)
{
    Snapshot now = snapshot(r);

    assert_int_equal(now.version, before->version);
    assert_int_equal(now.blocks, before->blocks);
    assert_int_equal(now.last_offset, before->last_offset);
    assert_int_equal(now.dirty_pages, before->dirty_pages);
    assert_int_equal(now.events, before->events);
    assert_int_equal(now.mmaps_live, before->mmaps_live);
}

/*
 * ram_block_add() with these arguments fails with @err and leaves the
 * list, its bitmaps, its notifiers and the address space as they were.
 */
static void expect_add_fails(int err, const char *idstr, ram_addr_t used,
                             ram_addr_t max, void *host, uint32_t flags)
{
    Snapshot before;
    RAMBlock *out = (RAMBlock *)&out;   /* must not be written */

    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    before = snapshot(&rec);
    assert_int_equal(ram_block_add(rl, idstr, used, max, host, flags, NULL,
                                   &out), err);
    assert_ptr_equal(out, (RAMBlock *)&out);
    assert_unchanged(&before, &rec);
    ram_block_notifier_remove(rl, &rec.n);
}

/* ---- block fields ----------------------------------------------------- */

static void test_add_fills_in_the_block(void **state)
{
    uint8_t mem[2 * PAGE];
    RAMBlock *block = NULL;

    (void)state;
    assert_int_equal(ram_block_add(rl, "vga.vram", PAGE, 2 * PAGE, mem,
                                   RAM_RESIZEABLE | RAM_READONLY,
                                   block_resized, &block), 0);
    assert_string_equal(block->idstr, "vga.vram");
    assert_ptr_equal(block->host, mem);
    assert_int_equal(block->used_length, PAGE);
    assert_int_equal(block->max_length, 2 * PAGE);
    assert_int_equal(block->flags, RAM_RESIZEABLE | RAM_READONLY);
    assert_ptr_equal(block->resized, block_resized);
    assert_int_equal(block->page_size, XR_PAGE_SIZE);
    assert_null(block->mr);
    assert_null(block->bmap);
}

static void test_own_host_block_gets_reserved_zeroed_writable_memory(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_own_host("ram", 2 * MiB);
    assert_non_null(block->host);
    assert_int_equal(n_mmap, 1);
    assert_int_equal(last_mmap_prot, PROT_READ | PROT_WRITE);
    assert_int_equal(last_mmap_flags, RAM_MAP_FLAGS);
    assert_int_equal(block->host[0], 0);
    block->host[0] = 1;
    assert_int_equal(block->host[0], 1);
}

static void test_own_host_memory_is_unmapped_after_removal(void **state)
{
    RAMBlock *block;
    void *host;

    (void)state;
    block = add_own_host("dimm0", 4 * MiB);
    host = block->host;
    ram_block_remove(rl, block);
    wait_for_reclaim();
    assert_int_equal(n_munmap, 1);
    assert_ptr_equal(last_munmap_addr, host);
    assert_int_equal(last_munmap_len, 4 * MiB);
}

/* ---- order and placement ---------------------------------------------- */

static void test_blocks_are_listed_biggest_first(void **state)
{
    const char *names[4];

    (void)state;
    add_fixed("small", 2 * MiB);
    add_fixed("big", 8 * MiB);
    add_fixed("mid", 4 * MiB);
    assert_int_equal(list_names(names, ARRAY_SIZE(names)), 3);
    assert_string_equal(names[0], "big");
    assert_string_equal(names[1], "mid");
    assert_string_equal(names[2], "small");
}

static void test_blocks_are_ordered_by_max_not_used_length(void **state)
{
    const char *names[2];

    (void)state;
    add_fixed("fixed", 8 * MiB);
    add_resizeable("growable", 2 * MiB, 16 * MiB);
    assert_int_equal(list_names(names, ARRAY_SIZE(names)), 2);
    assert_string_equal(names[0], "growable");
}

static void test_blocks_of_equal_size_keep_their_order(void **state)
{
    const char *names[4];

    (void)state;
    add_fixed("a", 2 * MiB);
    add_fixed("b", 2 * MiB);
    add_fixed("c", 2 * MiB);
    assert_int_equal(list_names(names, ARRAY_SIZE(names)), 3);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "c");
}

static void test_first_block_starts_at_zero(void **state)
{
    (void)state;
    assert_int_equal(add_fixed("ram", 4 * MiB)->offset, 0);
}

static void test_offsets_are_aligned_and_do_not_overlap(void **state)
{
    const ram_addr_t sizes[] = {
        PAGE, 3 * MiB + PAGE, 2 * MiB, 5 * PAGE, 6 * MiB, 2 * MiB - PAGE,
    };
    RAMBlock *b[ARRAY_SIZE(sizes)];
    char name[16];

    (void)state;
    for (unsigned int i = 0; i < ARRAY_SIZE(sizes); i++) {
        snprintf(name, sizeof(name), "b%u", i);
        b[i] = add_fixed(name, sizes[i]);
        assert_int_equal(b[i]->offset % RAM_BLOCK_ALIGN, 0);
    }
    for (unsigned int i = 0; i < ARRAY_SIZE(sizes); i++) {
        for (unsigned int j = 0; j < i; j++) {
            assert_true(b[i]->offset + b[i]->max_length <= b[j]->offset ||
                        b[j]->offset + b[j]->max_length <= b[i]->offset);
        }
    }
}

static void test_freed_offset_is_reused_by_smallest_fitting_gap(void **state)
{
    RAMBlock *b8, *b4;
    ram_addr_t off8, off4;

    (void)state;
    add_fixed("a", 2 * MiB);            /* [0, 2M) */
    b8 = add_fixed("b", 8 * MiB);       /* [2M, 10M) */
    add_fixed("c", 2 * MiB);            /* [10M, 12M) */
    b4 = add_fixed("d", 4 * MiB);       /* [12M, 16M) */
    add_fixed("e", 2 * MiB);            /* [16M, 18M) */
    off8 = b8->offset;
    off4 = b4->offset;
    ram_block_remove(rl, b8);
    ram_block_remove(rl, b4);

    /* Fits both holes: takes the 4M one, leaving the 8M hole whole. */
    assert_int_equal(add_fixed("x", 3 * MiB)->offset, off4);
    assert_int_equal(add_fixed("y", 8 * MiB)->offset, off8);
}

static void test_block_goes_past_the_end_when_no_gap_fits(void **state)
{
    RAMBlock *b;

    (void)state;
    add_fixed("a", 2 * MiB);
    b = add_fixed("b", 2 * MiB);
    add_fixed("c", 3 * MiB);            /* [4M, 7M) */
    ram_block_remove(rl, b);
    /* The 2M hole is too small; the end of c rounds up to 8M. */
    assert_int_equal(add_fixed("big", 4 * MiB)->offset, 8 * MiB);
}

static void test_last_offset_is_the_end_of_the_highest_block(void **state)
{
    (void)state;
    assert_int_equal(last_offset(), 0);
    add_fixed("a", 2 * MiB);
    add_resizeable("b", PAGE, 3 * MiB);  /* reserves [2M, 5M) */
    assert_int_equal(last_offset(), 5 * MiB);
}

/* ---- rejected adds ---------------------------------------------------- */

static void test_duplicate_idstr_is_rejected_and_changes_nothing(void **state)
{
    (void)state;
    add_fixed("ram", 2 * MiB);
    expect_add_fails(-EEXIST, "ram", 4 * MiB, 4 * MiB, NULL, 0);
}

static void test_empty_idstr_is_rejected(void **state)
{
    (void)state;
    expect_add_fails(-ENAMETOOLONG, "", 2 * MiB, 2 * MiB, NULL, 0);
}

static void test_overlong_idstr_is_rejected(void **state)
{
    char name[RAM_BLOCK_IDSTR_SIZE + 1];

    (void)state;
    memset(name, 'x', RAM_BLOCK_IDSTR_SIZE);
    name[RAM_BLOCK_IDSTR_SIZE] = '\0';
    expect_add_fails(-ENAMETOOLONG, name, 2 * MiB, 2 * MiB, NULL, 0);
}

static void test_longest_idstr_is_accepted(void **state)
{
    char name[RAM_BLOCK_IDSTR_SIZE];

    (void)state;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_string_equal(add_fixed(name, 2 * MiB)->idstr, name);
}

static void test_null_idstr_is_rejected(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, NULL, 2 * MiB, 2 * MiB, NULL, 0);
}

static void test_zero_size_is_rejected(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, "ram", 0, 0, NULL, 0);
    expect_add_fails(-EINVAL, "ram", 0, 2 * MiB, NULL, RAM_RESIZEABLE);
}

static void test_unaligned_size_is_rejected(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, "ram", 2 * MiB + 1, 2 * MiB + 1, NULL, 0);
    expect_add_fails(-EINVAL, "ram", PAGE, 2 * MiB + 512, NULL,
                     RAM_RESIZEABLE);
}

static void test_used_length_above_max_length_is_rejected(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, "ram", 4 * MiB, 2 * MiB, NULL, RAM_RESIZEABLE);
}

static void test_unequal_lengths_need_resizeable(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, "ram", 2 * MiB, 4 * MiB, NULL, 0);
}

static void test_unknown_flags_are_rejected(void **state)
{
    (void)state;
    expect_add_fails(-EINVAL, "ram", 2 * MiB, 2 * MiB, NULL, 1u << 31);
}

static void test_own_host_with_host_pointer_is_rejected(void **state)
{
    uint8_t mem[PAGE];

    (void)state;
    expect_add_fails(-EINVAL, "ram", PAGE, PAGE, mem, RAM_OWN_HOST);
}

static void test_block_bigger_than_ram_addr_space_gives_enospc(void **state)
{
    (void)state;
    add_fixed("ram", 2 * MiB);
    expect_add_fails(-ENOSPC, "huge", RAM_ADDR_MAX, RAM_ADDR_MAX, NULL, 0);
}

static void test_failed_host_allocation_gives_enomem(void **state)
{
    (void)state;
    fail_mmap = true;
    expect_add_fails(-ENOMEM, "ram", 2 * MiB, 2 * MiB, NULL, RAM_OWN_HOST);
}

static void test_failed_bitmap_growth_gives_enomem_and_unmaps(void **state)
{
    (void)state;
    fail_grow = true;
    expect_add_fails(-ENOMEM, "ram", 2 * MiB, 2 * MiB, NULL, RAM_OWN_HOST);
    assert_int_equal(n_mmap, 1);
    assert_int_equal(n_munmap, 1);
}

/* ---- dirty bitmaps ---------------------------------------------------- */

static void test_add_marks_used_range_dirty_for_every_client(void **state)
{
    RAMBlock *block;
    uint64_t first, pages;

    (void)state;
    add_fixed("ram", 4 * MiB);
    block = add_fixed("rom", 2 * MiB);
    first = block->offset >> XR_PAGE_BITS;
    pages = ram_block_used_pages(block);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_all(&rl->dirty, first, pages, c), 1);
    }
}

static void test_dirty_bitmaps_cover_last_offset_after_add(void **state)
{
    (void)state;
    add_fixed("ram", 4 * MiB);
    add_resizeable("hotplug", PAGE, 6 * MiB);
    assert_true(dirty_memory_pages(&rl->dirty) >=
                last_offset() >> XR_PAGE_BITS);
}

/* ---- resize ----------------------------------------------------------- */

static void test_resize_beyond_max_length_gives_enospc(void **state)
{
    RAMBlock *block;
    Snapshot before;

    (void)state;
    block = add_resizeable("vram", 2 * MiB, 4 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    before = snapshot(&rec);
    assert_int_equal(ram_block_resize(rl, block, 4 * MiB + PAGE), -ENOSPC);
    assert_int_equal(block->used_length, 2 * MiB);
    assert_int_equal(resized_calls, 0);
    assert_unchanged(&before, &rec);
}

static void test_resize_of_fixed_size_block_gives_einval(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_fixed("ram", 4 * MiB);
    assert_int_equal(ram_block_resize(rl, block, 2 * MiB), -EINVAL);
    assert_int_equal(block->used_length, 4 * MiB);
}

static void test_resize_to_zero_or_unaligned_length_gives_einval(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 2 * MiB, 4 * MiB);
    assert_int_equal(ram_block_resize(rl, block, 0), -EINVAL);
    assert_int_equal(ram_block_resize(rl, block, 3 * MiB + 1), -EINVAL);
    assert_int_equal(block->used_length, 2 * MiB);
    assert_int_equal(resized_calls, 0);
}

static void test_resize_calls_resized_callback_with_new_length(void **state)
{
    uint8_t mem[4 * PAGE];
    RAMBlock *block = NULL;

    (void)state;
    assert_int_equal(ram_block_add(rl, "vram", PAGE, 4 * PAGE, mem,
                                   RAM_RESIZEABLE, block_resized, &block), 0);
    assert_int_equal(ram_block_resize(rl, block, 3 * PAGE), 0);
    assert_int_equal(block->used_length, 3 * PAGE);
    assert_int_equal(resized_calls, 1);
    assert_string_equal(resized_idstr, "vram");
    assert_int_equal(resized_length, 3 * PAGE);
    assert_ptr_equal(resized_host, mem);
}

static void test_resize_notifies_with_block_and_old_length(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 2 * MiB, 4 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    rec.count = 0;                        /* forget the replay */
    assert_int_equal(ram_block_resize(rl, block, 1 * MiB), 0);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.ev[0].kind, EV_RESIZED);
    assert_ptr_equal(rec.ev[0].block, block);
    assert_int_equal(rec.ev[0].old_length, 2 * MiB);
    assert_int_equal(rec.ev[0].new_length, 1 * MiB);
}

static void test_resize_to_same_length_calls_nothing(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 2 * MiB, 4 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    rec.count = 0;
    assert_int_equal(ram_block_resize(rl, block, 2 * MiB), 0);
    assert_int_equal(resized_calls, 0);
    assert_int_equal(rec.count, 0);
}

/* Clear every client's bits of @block's whole reservation. */
static void clean_block(RAMBlock *block)
{
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_true(dirty_memory_test_and_clear(&rl->dirty,
                                                block->offset >> XR_PAGE_BITS,
                                                ram_block_max_pages(block),
                                                c) >= 0);
    }
}

static void test_growing_resize_marks_newly_used_range_dirty(void **state)
{
    RAMBlock *block;
    uint64_t first;

    (void)state;
    add_fixed("ram", 2 * MiB);
    block = add_resizeable("vram", 1 * MiB, 4 * MiB);
    first = block->offset >> XR_PAGE_BITS;
    clean_block(block);
    assert_int_equal(ram_block_resize(rl, block, 3 * MiB), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        /* Old range untouched, new range dirty, beyond it clean. */
        assert_int_equal(dirty_memory_get(&rl->dirty, first,
                                          (1 * MiB) >> XR_PAGE_BITS, c), 0);
        assert_int_equal(dirty_memory_all(&rl->dirty,
                                          first + ((1 * MiB) >> XR_PAGE_BITS),
                                          (2 * MiB) >> XR_PAGE_BITS, c), 1);
        assert_int_equal(dirty_memory_get(&rl->dirty,
                                          first + ((3 * MiB) >> XR_PAGE_BITS),
                                          (1 * MiB) >> XR_PAGE_BITS, c), 0);
    }
}

static void test_shrinking_resize_marks_nothing_dirty(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 3 * MiB, 4 * MiB);
    clean_block(block);
    assert_int_equal(ram_block_resize(rl, block, 1 * MiB), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_get(&rl->dirty,
                                          block->offset >> XR_PAGE_BITS,
                                          ram_block_max_pages(block), c), 0);
    }
}

/* ---- lookups ---------------------------------------------------------- */

static void test_lookup_by_addr_finds_block_and_offset(void **state)
{
    RAMBlock *block;
    ram_addr_t off = 0;

    (void)state;
    add_fixed("ram", 4 * MiB);
    block = add_fixed("rom", 2 * MiB);
    assert_ptr_equal(lookup_addr(block->offset + 5 * PAGE + 7, &off), block);
    assert_int_equal(off, 5 * PAGE + 7);
    assert_ptr_equal(lookup_addr(block->offset + 2 * MiB - 1, NULL), block);
}

static void test_lookup_by_addr_makes_the_block_mru(void **state)
{
    RAMBlock *ram, *rom;

    (void)state;
    ram = add_fixed("ram", 4 * MiB);
    rom = add_fixed("rom", 2 * MiB);
    assert_ptr_equal(lookup_addr(rom->offset, NULL), rom);
    assert_ptr_equal(rl->mru_block, rom);
    assert_ptr_equal(lookup_addr(ram->offset + PAGE, NULL), ram);
    assert_ptr_equal(rl->mru_block, ram);
}

static void test_lookup_by_addr_misses_in_a_gap(void **state)
{
    RAMBlock *b;

    (void)state;
    add_fixed("a", 2 * MiB);
    b = add_fixed("b", 2 * MiB);
    add_fixed("c", 2 * MiB);
    ram_block_remove(rl, b);
    assert_null(lookup_addr(2 * MiB, NULL));
    assert_null(lookup_addr(4 * MiB - 1, NULL));
}

static void test_lookup_by_addr_misses_past_the_end(void **state)
{
    (void)state;
    add_fixed("ram", 2 * MiB);
    assert_null(lookup_addr(2 * MiB, NULL));
    assert_null(lookup_addr(RAM_ADDR_MAX, NULL));
    assert_null(lookup_addr(RAM_ADDR_INVALID, NULL));
}

static void test_lookup_by_addr_misses_between_used_and_max(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 1 * MiB, 4 * MiB);
    assert_ptr_equal(lookup_addr(block->offset + 1 * MiB - 1, NULL), block);
    assert_null(lookup_addr(block->offset + 1 * MiB, NULL));
    assert_null(lookup_addr(block->offset + 4 * MiB - 1, NULL));
}

static void test_lookup_by_addr_follows_a_resize(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 1 * MiB, 4 * MiB);
    assert_int_equal(ram_block_resize(rl, block, 2 * MiB), 0);
    assert_ptr_equal(lookup_addr(block->offset + 2 * MiB - 1, NULL), block);
    /* Even when it is the MRU block. */
    assert_int_equal(ram_block_resize(rl, block, 1 * MiB), 0);
    assert_null(lookup_addr(block->offset + 1 * MiB, NULL));
}

static void test_lookup_by_host_finds_block_and_offset(void **state)
{
    RAMBlock *a, *b;
    ram_addr_t off = 0;

    (void)state;
    a = add_own_host("a", 4 * MiB);
    b = add_own_host("b", 2 * MiB);
    assert_ptr_equal(lookup_host(b->host + 3 * PAGE + 1, &off), b);
    assert_int_equal(off, 3 * PAGE + 1);
    assert_ptr_equal(lookup_host(a->host, &off), a);
    assert_int_equal(off, 0);
}

static void test_lookup_by_host_misses_outside_used_length(void **state)
{
    uint8_t mem[4 * PAGE];
    RAMBlock *block = NULL;

    (void)state;
    assert_int_equal(ram_block_add(rl, "vram", PAGE, 2 * PAGE, mem + PAGE,
                                   RAM_RESIZEABLE, NULL, &block), 0);
    assert_ptr_equal(lookup_host(mem + 2 * PAGE - 1, NULL), block);
    assert_null(lookup_host(mem + 2 * PAGE, NULL));
    assert_null(lookup_host(mem + PAGE - 1, NULL));
}

static void test_lookup_by_host_ignores_blocks_without_host(void **state)
{
    (void)state;
    add_fixed("mapcache", 2 * MiB);
    assert_null(lookup_host((void *)(uintptr_t)PAGE, NULL));
    assert_null(lookup_host(NULL, NULL));
}

static void test_lookup_by_name_finds_the_block(void **state)
{
    RAMBlock *block;

    (void)state;
    add_fixed("ram", 4 * MiB);
    block = add_fixed("rom", 2 * MiB);
    assert_ptr_equal(lookup_name("rom"), block);
}

static void test_lookup_by_name_misses_unknown_names(void **state)
{
    (void)state;
    add_fixed("ram", 4 * MiB);
    assert_null(lookup_name("ra"));
    assert_null(lookup_name("ram0"));
    assert_null(lookup_name(""));
}

static void test_removed_block_is_not_found(void **state)
{
    RAMBlock *block;
    ram_addr_t offset;
    void *host;

    (void)state;
    add_fixed("ram", 4 * MiB);
    block = add_own_host("dimm", 2 * MiB);
    offset = block->offset;
    host = block->host;
    assert_ptr_equal(lookup_addr(offset, NULL), block);   /* now MRU */
    ram_block_remove(rl, block);
    assert_null(rl->mru_block);
    assert_null(lookup_addr(offset, NULL));
    assert_null(lookup_name("dimm"));
    assert_null(lookup_host(host, NULL));
}

/*
 * A reader that found the block in the list may publish it as MRU just
 * after ram_block_remove() cleared the MRU pointer.  Lookups must ignore
 * it, and the stale pointer must be gone before the block is freed.
 */
static void test_removed_block_left_in_mru_is_ignored(void **state)
{
    RAMBlock *block, *before, *after;
    ram_addr_t offset;

    (void)state;
    block = add_fixed("dimm", 2 * MiB);
    offset = block->offset;
    /*
     * This thread plays the reader (whose read-side section holds back
     * the release) and, in the middle of it, the writer; remove does not
     * wait for readers, so that is safe here.
     */
    rcu_read_lock();
    before = ram_block_from_addr(rl, offset, NULL);
    ram_block_remove(rl, block);
    __atomic_store_n(&rl->mru_block, block, __ATOMIC_RELEASE);
    after = ram_block_from_addr(rl, offset, NULL);
    rcu_read_unlock();
    assert_ptr_equal(before, block);
    assert_null(after);
    wait_for_reclaim();
    assert_null(rl->mru_block);
}

/* ---- notifiers -------------------------------------------------------- */

static void test_notifier_registration_replays_blocks_biggest_first(
    void **state)
{
    RAMBlock *small, *big;

    (void)state;
    small = add_fixed("small", 2 * MiB);
    big = add_fixed("big", 8 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    assert_int_equal(rec.count, 2);
    assert_int_equal(rec.ev[0].kind, EV_ADDED);
    assert_ptr_equal(rec.ev[0].block, big);
    assert_int_equal(rec.ev[1].kind, EV_ADDED);
    assert_ptr_equal(rec.ev[1].block, small);
}

static void test_added_notifier_sees_the_new_block_in_the_list(void **state)
{
    RAMBlock *block;

    (void)state;
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    block = add_fixed("ram", 2 * MiB);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.ev[0].kind, EV_ADDED);
    assert_ptr_equal(rec.ev[0].block, block);
    assert_string_equal(rec.ev[0].idstr, "ram");
    assert_true(rec.ev[0].found_by_name);
}

static void test_removed_notifier_runs_while_memory_is_valid(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_own_host("dimm", 2 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    rec.count = 0;
    ram_block_remove(rl, block);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.ev[0].kind, EV_REMOVED);
    assert_ptr_equal(rec.ev[0].block, block);
    assert_string_equal(rec.ev[0].idstr, "dimm");
    assert_true(rec.ev[0].found_by_name);  /* still in the list */
    assert_int_equal(rec.ev[0].host_byte, 0x5a);
}

static void test_removed_notifier_is_not_called_any_more(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_resizeable("vram", 1 * MiB, 2 * MiB);
    recorder_init(&rec, rl);
    ram_block_notifier_add(rl, &rec.n);
    ram_block_notifier_remove(rl, &rec.n);
    rec.count = 0;
    add_fixed("ram", 2 * MiB);
    assert_int_equal(ram_block_resize(rl, block, 2 * MiB), 0);
    ram_block_remove(rl, block);
    assert_int_equal(rec.count, 0);
}

static void test_notifiers_run_in_registration_order(void **state)
{
    (void)state;
    recorder_init(&rec, rl);
    recorder_init(&rec2, rl);
    ram_block_notifier_add(rl, &rec.n);
    ram_block_notifier_add(rl, &rec2.n);
    add_fixed("ram", 2 * MiB);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec2.count, 1);
    assert_true(rec.ev[0].seq < rec2.ev[0].seq);
}

static void test_destroy_notifies_removal_of_every_block(void **state)
{
    RAMList *tmp = malloc(sizeof(*tmp));

    (void)state;
    assert_non_null(tmp);
    assert_int_equal(ram_list_init(tmp), 0);
    recorder_init(&rec, tmp);
    assert_int_equal(ram_block_add(tmp, "a", 2 * MiB, 2 * MiB, NULL, 0, NULL,
                                   NULL), 0);
    assert_int_equal(ram_block_add(tmp, "b", 4 * MiB, 4 * MiB, NULL, 0, NULL,
                                   NULL), 0);
    ram_block_notifier_add(tmp, &rec.n);
    rec.count = 0;
    ram_list_destroy(tmp);
    free(tmp);
    assert_int_equal(rec.count, 2);
    assert_int_equal(rec.ev[0].kind, EV_REMOVED);
    assert_int_equal(rec.ev[1].kind, EV_REMOVED);
    assert_true(strcmp(rec.ev[0].idstr, rec.ev[1].idstr) != 0);
}

/* ---- version ---------------------------------------------------------- */

static void test_version_changes_on_add(void **state)
{
    uint32_t v;

    (void)state;
    v = rl->version;
    add_fixed("ram", 2 * MiB);
    assert_int_not_equal(rl->version, v);
}

static void test_version_changes_on_remove(void **state)
{
    RAMBlock *block;
    uint32_t v;

    (void)state;
    block = add_fixed("ram", 2 * MiB);
    v = rl->version;
    ram_block_remove(rl, block);
    assert_int_not_equal(rl->version, v);
}

/* ---- migration bitmaps ------------------------------------------------ */

static void test_migration_bitmaps_cover_max_length(void **state)
{
    const uint64_t pages = (6 * MiB + 3 * PAGE) >> XR_PAGE_BITS;
    const uint8_t shift = 6;
    const uint64_t chunks = DIV_ROUND_UP(pages, 1u << shift);
    RAMBlock *block;

    (void)state;
    block = add_resizeable("ram", 2 * MiB, pages << XR_PAGE_BITS);
    assert_int_equal(ram_block_alloc_migration_bitmaps(block, shift), 0);
    assert_int_equal(block->bmap->start, block->offset >> XR_PAGE_BITS);
    assert_int_equal(block->bmap->npages, pages);
    assert_true(malloc_usable_size(block->receivedmap) >=
                BITS_TO_LONGS(pages) * sizeof(long));
    assert_true(malloc_usable_size(block->clear_bmap) >=
                BITS_TO_LONGS(chunks) * sizeof(long));
    assert_int_equal(block->clear_bmap_shift, shift);
    assert_int_equal(block->postcopy_length, 2 * MiB);
}

static void test_migration_bitmaps_start_all_to_send(void **state)
{
    const uint64_t pages = (6 * MiB + 3 * PAGE) >> XR_PAGE_BITS;
    RAMBlock *block;

    (void)state;
    block = add_resizeable("ram", 2 * MiB, pages << XR_PAGE_BITS);
    assert_int_equal(ram_block_alloc_migration_bitmaps(block, 6), 0);
    assert_int_equal(dirty_bitmap_count(block->bmap), pages);
    assert_int_equal(dirty_bitmap_find_next(block->bmap, 0), 0);
    assert_int_equal(xr_bitmap_count(block->receivedmap, pages), 0);
    assert_int_equal(xr_bitmap_count(block->clear_bmap,
                                  DIV_ROUND_UP(pages, 64)), 0);
}

static void test_migration_bitmaps_free_clears_the_pointers(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_fixed("ram", 2 * MiB);
    assert_int_equal(ram_block_alloc_migration_bitmaps(block, 0), 0);
    ram_block_free_migration_bitmaps(block);
    assert_null(block->bmap);
    assert_null(block->receivedmap);
    assert_null(block->clear_bmap);
    /* And again, as a block that never had them. */
    ram_block_free_migration_bitmaps(block);
}

/*
 * The bmap's bit 0 is the block's first page: the MIGRATION bits of a
 * block that does not start at ram_addr 0 land at the block's own indexes,
 * and the pages of the other blocks stay in the dirty memory.
 */
static void test_bmap_syncs_the_blocks_own_pages(void **state)
{
    RAMBlock *a, *b;
    uint64_t first;

    (void)state;
    a = add_fixed("a", 2 * MiB);
    b = add_fixed("b", 4 * MiB);
    assert_int_equal(ram_block_alloc_migration_bitmaps(b, 6), 0);
    assert_int_equal(dirty_bitmap_clear_range(b->bmap, 0,
                                              ram_block_max_pages(b)), 0);
    first = b->offset >> XR_PAGE_BITS;
    /* Everything starts dirty: clean it all, then dirty three pages. */
    assert_true(dirty_memory_test_and_clear(&rl->dirty, 0,
                                            dirty_memory_pages(&rl->dirty),
                                            DIRTY_MEMORY_MIGRATION) >= 0);
    assert_int_equal(dirty_memory_set_page(&rl->dirty, first + 5,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_page(&rl->dirty, first + 1023,
                                           DIRTY_MEMORY_MIGRATION), 0);
    assert_int_equal(dirty_memory_set_page(&rl->dirty,
                                           (a->offset >> XR_PAGE_BITS) + 1,
                                           DIRTY_MEMORY_MIGRATION), 0);

    assert_int_equal(dirty_memory_sync_bitmap(&rl->dirty, b->bmap, 0,
                                              ram_block_used_length(b) >>
                                              XR_PAGE_BITS), 2);
    assert_int_equal(dirty_bitmap_find_next(b->bmap, 0), 5);
    assert_int_equal(dirty_bitmap_find_next(b->bmap, 6), 1023);
    assert_int_equal(dirty_memory_get(&rl->dirty,
                                      (a->offset >> XR_PAGE_BITS) + 1, 1,
                                      DIRTY_MEMORY_MIGRATION), 1);
}

static void test_migration_bitmap_shift_of_64_is_rejected(void **state)
{
    RAMBlock *block;

    (void)state;
    block = add_fixed("ram", 2 * MiB);
    assert_int_equal(ram_block_alloc_migration_bitmaps(block, 64), -EINVAL);
    assert_null(block->bmap);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_add_fills_in_the_block),
        T(test_own_host_block_gets_reserved_zeroed_writable_memory),
        T(test_own_host_memory_is_unmapped_after_removal),
        T(test_blocks_are_listed_biggest_first),
        T(test_blocks_are_ordered_by_max_not_used_length),
        T(test_blocks_of_equal_size_keep_their_order),
        T(test_first_block_starts_at_zero),
        T(test_offsets_are_aligned_and_do_not_overlap),
        T(test_freed_offset_is_reused_by_smallest_fitting_gap),
        T(test_block_goes_past_the_end_when_no_gap_fits),
        T(test_last_offset_is_the_end_of_the_highest_block),
        T(test_duplicate_idstr_is_rejected_and_changes_nothing),
        T(test_empty_idstr_is_rejected),
        T(test_overlong_idstr_is_rejected),
        T(test_longest_idstr_is_accepted),
        T(test_null_idstr_is_rejected),
        T(test_zero_size_is_rejected),
        T(test_unaligned_size_is_rejected),
        T(test_used_length_above_max_length_is_rejected),
        T(test_unequal_lengths_need_resizeable),
        T(test_unknown_flags_are_rejected),
        T(test_own_host_with_host_pointer_is_rejected),
        T(test_block_bigger_than_ram_addr_space_gives_enospc),
        T(test_failed_host_allocation_gives_enomem),
        T(test_failed_bitmap_growth_gives_enomem_and_unmaps),
        T(test_add_marks_used_range_dirty_for_every_client),
        T(test_dirty_bitmaps_cover_last_offset_after_add),
        T(test_resize_beyond_max_length_gives_enospc),
        T(test_resize_of_fixed_size_block_gives_einval),
        T(test_resize_to_zero_or_unaligned_length_gives_einval),
        T(test_resize_calls_resized_callback_with_new_length),
        T(test_resize_notifies_with_block_and_old_length),
        T(test_resize_to_same_length_calls_nothing),
        T(test_growing_resize_marks_newly_used_range_dirty),
        T(test_shrinking_resize_marks_nothing_dirty),
        T(test_lookup_by_addr_finds_block_and_offset),
        T(test_lookup_by_addr_makes_the_block_mru),
        T(test_lookup_by_addr_misses_in_a_gap),
        T(test_lookup_by_addr_misses_past_the_end),
        T(test_lookup_by_addr_misses_between_used_and_max),
        T(test_lookup_by_addr_follows_a_resize),
        T(test_lookup_by_host_finds_block_and_offset),
        T(test_lookup_by_host_misses_outside_used_length),
        T(test_lookup_by_host_ignores_blocks_without_host),
        T(test_lookup_by_name_finds_the_block),
        T(test_lookup_by_name_misses_unknown_names),
        T(test_removed_block_is_not_found),
        T(test_removed_block_left_in_mru_is_ignored),
        T(test_notifier_registration_replays_blocks_biggest_first),
        T(test_added_notifier_sees_the_new_block_in_the_list),
        T(test_removed_notifier_runs_while_memory_is_valid),
        T(test_removed_notifier_is_not_called_any_more),
        T(test_notifiers_run_in_registration_order),
        T(test_destroy_notifies_removal_of_every_block),
        T(test_version_changes_on_add),
        T(test_version_changes_on_remove),
        T(test_migration_bitmaps_cover_max_length),
        T(test_migration_bitmaps_start_all_to_send),
        T(test_migration_bitmaps_free_clears_the_pointers),
        T(test_bmap_syncs_the_blocks_own_pages),
        T(test_migration_bitmap_shift_of_64_is_rejected),
    };
    int failed;

    rcu_register_thread();
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    rcu_unregister_thread();
    return failed;
}
