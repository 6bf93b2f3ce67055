/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * region.c - the MemoryRegion tree rendered into FlatViews, listeners told
 * of the difference, region dirty logging over dirty/, I/O dispatch.  The
 * contract is in region.h, the concepts in docs/region.md.
 *
 * Arithmetic: a region may be 2^64 bytes (a root container) and an alias
 * may place its target's start below address 0, so rendering works in
 * signed 128-bit integers and only the results, which always fit, are
 * stored in 64 bits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/region.h"

typedef __int128 s128;

#define ADDR_SPACE_END ((s128)1 << 64)

static s128 region_size128(const MemoryRegion *mr)
{
    uint64_t size = memory_region_size(mr);

    return size ? (s128)size : ADDR_SPACE_END;
}

static void region_store_size(MemoryRegion *mr, uint64_t size)
{
    __atomic_store_n(&mr->size, size, __ATOMIC_RELAXED);
}

/*
 * call_rcu() with the caller's last writes to the object ordered before
 * the callback for ThreadSanitizer; see the same helper in ramblock.c.
 */
static void region_call_rcu(struct rcu_head *head,
                            void (*func)(struct rcu_head *head))
{
#ifdef XR_TSAN
    __tsan_release(&xr_rcu_tsan_sync);
#endif
    call_rcu(head, func);
}

/* ---- the context lock --------------------------------------------------- */

static void ctx_lock(MemoryContext *ctx)
{
    int err = pthread_mutex_lock(&ctx->lock);

    if (err) {
        fprintf(stderr, "xenram: cannot take the memory context lock: %s\n",
                strerror(err));
        abort();
    }
}

static void ctx_unlock(MemoryContext *ctx)
{
    pthread_mutex_unlock(&ctx->lock);
}

/*
 * Take the lock for a writer that does not change the tree (listener
 * registration, syncs).  Fails with -EDEADLK inside a listener callback:
 * the lock is recursive, so only the notifying thread itself gets here
 * while notifying is set.
 */
static int ctx_lock_writer(MemoryContext *ctx)
{
    ctx_lock(ctx);
    if (ctx->notifying) {
        ctx_unlock(ctx);
        return -EDEADLK;
    }
    return 0;
}

int memory_context_init(MemoryContext *ctx, RAMList *rl)
{
    pthread_mutexattr_t attr;
    int err;

    if (!ctx) {
        return -EINVAL;
    }
    memset(ctx, 0, sizeof(*ctx));
    ctx->ram_list = rl;
    CDS_INIT_LIST_HEAD(&ctx->address_spaces);
    err = pthread_mutexattr_init(&attr);
    if (err) {
        return -err;
    }
    err = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    if (!err) {
        err = pthread_mutex_init(&ctx->lock, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return -err;
}

int memory_context_destroy(MemoryContext *ctx)
{
    if (!ctx) {
        return -EINVAL;
    }
    if (!cds_list_empty(&ctx->address_spaces)) {
        return -EBUSY;
    }
    /* Old views are freed by call_rcu(); let them go before we do. */
    rcu_barrier();
    pthread_mutex_destroy(&ctx->lock);
    return 0;
}

/* ---- rendering ------------------------------------------------------------ */

/* A FlatView under construction: sorted, non-overlapping ranges. */
typedef struct FlatBuilder {
    FlatRange *ranges;
    unsigned int nr;
    unsigned int capacity;
    bool failed;                /* out of memory: the result is discarded */
    bool global_dirty_log;
} FlatBuilder;

static s128 range_end(const FlatRange *fr)
{
    return (s128)fr->addr + fr->size;
}

static bool builder_insert(FlatBuilder *b, unsigned int pos,
                           const FlatRange *fr)
{
    if (b->nr == b->capacity) {
        unsigned int cap = b->capacity ? 2 * b->capacity : 16;
        FlatRange *r = realloc(b->ranges, cap * sizeof(*r));

        if (!r) {
            b->failed = true;
            return false;
        }
        b->ranges = r;
        b->capacity = cap;
    }
    memmove(&b->ranges[pos + 1], &b->ranges[pos],
            (b->nr - pos) * sizeof(*fr));
    b->ranges[pos] = *fr;
    b->nr++;
    return true;
}

/*
 * Show terminal region @mr, whose byte 0 is at address @base, wherever
 * [@start, @end) is not covered yet: whatever the builder holds was
 * rendered first and therefore wins.
 */
static void render_terminal(FlatBuilder *b, MemoryRegion *mr, s128 base,
                            s128 start, s128 end, bool readonly)
{
    unsigned int lo = 0, hi = b->nr, i;
    uint8_t mask = __atomic_load_n(&mr->dirty_log_mask, __ATOMIC_RELAXED);
    s128 pos = start;

    if (mr->kind == MEMORY_REGION_RAM && b->global_dirty_log) {
        mask |= DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION);
    }
    /* The first range that ends after @start. */
    while (lo < hi) {
        unsigned int mid = lo + (hi - lo) / 2;

        if (range_end(&b->ranges[mid]) <= start) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    i = lo;
    while (pos < end) {
        s128 gap_end;
        FlatRange fr;

        if (i < b->nr && b->ranges[i].addr <= pos) {
            pos = MAX(pos, range_end(&b->ranges[i]));
            i++;
            continue;
        }
        gap_end = i < b->nr ? MIN(end, (s128)b->ranges[i].addr) : end;
        fr = (FlatRange) {
            .mr = mr,
            .offset_in_region = (uint64_t)(pos - base),
            .addr = (uint64_t)pos,
            .size = (uint64_t)(gap_end - pos),
            .ram_addr = RAM_ADDR_INVALID,
            .readonly = readonly,
            .dirty_log_mask = mask,
        };
        if (mr->kind == MEMORY_REGION_RAM) {
            fr.ram_addr = mr->ram_block->offset + fr.offset_in_region;
        }
        if (!builder_insert(b, i, &fr)) {
            return;
        }
        i++;
        pos = gap_end;
    }
}

/*
 * Render @mr, whose byte 0 is at address @base, clipped to [@start, @end).
 * Subregions come first, highest priority first, so that each later piece
 * only fills what is still uncovered.
 */
static void render_region(FlatBuilder *b, MemoryRegion *mr, s128 base,
                          s128 start, s128 end, bool readonly)
{
    MemoryRegion *sub;

    if (!mr->enabled || b->failed) {
        return;
    }
    start = MAX(start, base);
    end = MIN(end, base + region_size128(mr));
    if (start >= end) {
        return;
    }
    readonly = readonly || mr->readonly;
    if (mr->kind == MEMORY_REGION_ALIAS) {
        render_region(b, mr->alias, base - (s128)mr->alias_offset, start,
                      end, readonly);
        return;
    }
    cds_list_for_each_entry(sub, &mr->subregions, subregions_link) {
        render_region(b, sub, base + (s128)sub->addr, start, end, readonly);
    }
    if (mr->kind == MEMORY_REGION_RAM || mr->kind == MEMORY_REGION_IO) {
        render_terminal(b, mr, base, start, end, readonly);
    }
}

static bool flatrange_mergeable(const FlatRange *a, const FlatRange *b)
{
    return a->mr == b->mr && range_end(a) == b->addr &&
           a->offset_in_region + a->size == b->offset_in_region &&
           a->readonly == b->readonly &&
           a->dirty_log_mask == b->dirty_log_mask;
}

/* The FlatView of @root, or NULL when out of memory.  Context lock held. */
static FlatView *flatview_render(MemoryContext *ctx, MemoryRegion *root)
{
    FlatBuilder b = { .global_dirty_log = ctx->global_dirty_log };
    FlatView *view;
    unsigned int i, nr = 0;

    /* A root is always at address 0, whatever its own offset says. */
    render_region(&b, root, 0, 0, ADDR_SPACE_END, false);
    if (b.failed) {
        free(b.ranges);
        return NULL;
    }
    /* Join pieces of one region that ended up side by side. */
    for (i = 0; i < b.nr; i++) {
        if (nr && flatrange_mergeable(&b.ranges[nr - 1], &b.ranges[i])) {
            b.ranges[nr - 1].size += b.ranges[i].size;
        } else {
            b.ranges[nr++] = b.ranges[i];
        }
    }
    view = malloc(sizeof(*view) + nr * sizeof(view->ranges[0]));
    if (view) {
        view->nr = nr;
        if (nr) {
            memcpy(view->ranges, b.ranges, nr * sizeof(view->ranges[0]));
        }
    }
    free(b.ranges);
    return view;
}

static void flatview_free_rcu(struct rcu_head *head)
{
    FlatView *view = caa_container_of(head, FlatView, rcu);

    rcu_reclaim_begin();
    free(view);
}

/* ---- telling listeners ------------------------------------------------- */

static MemoryRegionSection section_of(AddressSpace *as, const FlatRange *fr)
{
    return (MemoryRegionSection) {
        .mr = fr->mr,
        .address_space = as,
        .offset_within_region = fr->offset_in_region,
        .size = fr->size,
        .offset_within_address_space = fr->addr,
        .ram_addr = fr->ram_addr,
        .readonly = fr->readonly,
        .dirty_log_mask = fr->dirty_log_mask,
    };
}

#define LISTENERS_ASCENDING(l, as) \
    cds_list_for_each_entry(l, &(as)->listeners, link)
#define LISTENERS_DESCENDING(l, as) \
    cds_list_for_each_entry_reverse(l, &(as)->listeners, link)

static bool flatrange_same(const FlatRange *a, const FlatRange *b)
{
    return a->mr == b->mr && a->addr == b->addr && a->size == b->size &&
           a->offset_in_region == b->offset_in_region &&
           a->readonly == b->readonly;
}

static void notify_range(AddressSpace *as, const FlatRange *fr, bool add)
{
    MemoryRegionSection s = section_of(as, fr);
    MemoryListener *l;

    if (add) {
        LISTENERS_ASCENDING(l, as) {
            if (l->region_add) {
                l->region_add(l, &s);
            }
        }
    } else {
        LISTENERS_DESCENDING(l, as) {
            if (l->region_del) {
                l->region_del(l, &s);
            }
        }
    }
}

static void notify_unchanged(AddressSpace *as, const FlatRange *old,
                             const FlatRange *new)
{
    MemoryRegionSection s = section_of(as, new);
    unsigned int om = old->dirty_log_mask, nm = new->dirty_log_mask;
    MemoryListener *l;

    LISTENERS_ASCENDING(l, as) {
        if (l->region_nop) {
            l->region_nop(l, &s);
        }
    }
    if (nm & ~om) {
        LISTENERS_ASCENDING(l, as) {
            if (l->log_start) {
                l->log_start(l, &s, om, nm);
            }
        }
    }
    if (om & ~nm) {
        LISTENERS_DESCENDING(l, as) {
            if (l->log_stop) {
                l->log_stop(l, &s, om, nm);
            }
        }
    }
}

/*
 * Walk both sorted views side by side.  The deleting pass reports ranges
 * of @old that are not in @new, the adding pass ranges of @new not in @old
 * and the unchanged ones.  A range of @old starting at or before the
 * current one of @new, and not equal to it, cannot appear later in @new
 * (whose ranges only start further on), hence the three cases.
 */
static void notify_pass(AddressSpace *as, const FlatView *old,
                        const FlatView *new, bool adding)
{
    unsigned int i = 0, j = 0;

    while (i < old->nr || j < new->nr) {
        const FlatRange *fo = i < old->nr ? &old->ranges[i] : NULL;
        const FlatRange *fn = j < new->nr ? &new->ranges[j] : NULL;

        if (fo && fn && flatrange_same(fo, fn)) {
            if (adding) {
                notify_unchanged(as, fo, fn);
            }
            i++;
            j++;
        } else if (fo && (!fn || fo->addr <= fn->addr)) {
            if (!adding) {
                notify_range(as, fo, false);
            }
            i++;
        } else {
            if (adding) {
                notify_range(as, fn, true);
            }
            j++;
        }
    }
}

/* The callbacks that take only the listener. */
typedef enum ListenerHook {
    HOOK_BEGIN,
    HOOK_COMMIT,
    HOOK_LOG_GLOBAL_START,
    HOOK_LOG_GLOBAL_STOP,
} ListenerHook;

static void call_hook(MemoryListener *l, ListenerHook hook)
{
    void (*fn)(MemoryListener *l) = NULL;

    switch (hook) {
    case HOOK_BEGIN:
        fn = l->begin;
        break;
    case HOOK_COMMIT:
        fn = l->commit;
        break;
    case HOOK_LOG_GLOBAL_START:
        fn = l->log_global_start;
        break;
    case HOOK_LOG_GLOBAL_STOP:
        fn = l->log_global_stop;
        break;
    }
    if (fn) {
        fn(l);
    }
}

static void notify_global(AddressSpace *as, bool ascending, ListenerHook hook)
{
    MemoryListener *l;

    if (ascending) {
        LISTENERS_ASCENDING(l, as) {
            call_hook(l, hook);
        }
    } else {
        LISTENERS_DESCENDING(l, as) {
            call_hook(l, hook);
        }
    }
}

static void address_space_notify(AddressSpace *as, const FlatView *old,
                                 const FlatView *new)
{
    if (cds_list_empty(&as->listeners)) {
        return;
    }
    notify_global(as, true, HOOK_BEGIN);
    notify_pass(as, old, new, false);
    notify_pass(as, old, new, true);
    notify_global(as, true, HOOK_COMMIT);
}

/*
 * Render every address space of @ctx and tell listeners.  All views are
 * built before any is published, so that running out of memory leaves
 * every address space as it was (and the change pending for the next
 * commit).  Context lock held, outermost commit.
 */
static int context_render(MemoryContext *ctx)
{
    AddressSpace *as;
    FlatView **views;
    unsigned int n = 0, i;

    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        n++;
    }
    if (!n) {
        return 0;
    }
    views = calloc(n, sizeof(*views));
    if (!views) {
        goto nomem;
    }
    i = 0;
    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        views[i] = flatview_render(ctx, as->root);
        if (!views[i]) {
            while (i--) {
                free(views[i]);
            }
            free(views);
            goto nomem;
        }
        i++;
    }
    /*
     * Publish first, then tell: when a listener hears region_del, no new
     * reader can find the range any more.
     */
    ctx->notifying = true;
    i = 0;
    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        FlatView *old = as->current_map;

        rcu_assign_pointer(as->current_map, views[i]);
        address_space_notify(as, old, views[i]);
        region_call_rcu(&old->rcu, flatview_free_rcu);
        i++;
    }
    ctx->notifying = false;
    free(views);
    return 0;

nomem:
    fprintf(stderr, "xenram: out of memory rendering the memory map; "
            "the old map stays until the next commit\n");
    ctx->pending = true;
    return -ENOMEM;
}

/* ---- transactions ------------------------------------------------------ */

int memory_region_transaction_begin(MemoryContext *ctx)
{
    int ret;

    if (!ctx) {
        return -EINVAL;
    }
    ret = ctx_lock_writer(ctx);
    if (ret == 0) {
        ctx->transaction_depth++;
    }
    return ret;
}

int memory_region_transaction_commit(MemoryContext *ctx)
{
    int ret = 0;

    if (!ctx) {
        return -EINVAL;
    }
    /*
     * The lock is recursive: trylock succeeds at once for the thread that
     * opened the transaction, fails for any other thread while one is
     * open, and succeeds on a free lock, where the depth then says no
     * transaction exists.
     */
    if (pthread_mutex_trylock(&ctx->lock) != 0) {
        return -EPERM;
    }
    if (ctx->transaction_depth == 0) {
        ctx_unlock(ctx);
        return -EPERM;
    }
    ctx_unlock(ctx);            /* the trylock's hold; begin's remains */
    if (--ctx->transaction_depth == 0 && ctx->pending) {
        ctx->pending = false;
        ret = context_render(ctx);
    }
    ctx_unlock(ctx);
    return ret;
}

/*
 * A writer's change: the change runs inside a transaction of its own and
 * its result wins over the commit's unless it succeeded.
 */
static int writer_begin(MemoryContext *ctx)
{
    return memory_region_transaction_begin(ctx);
}

static int writer_end(MemoryContext *ctx, int ret)
{
    int commit = memory_region_transaction_commit(ctx);

    return ret ? ret : commit;
}

/* ---- regions ----------------------------------------------------------- */

static int region_init_common(MemoryRegion *mr, MemoryContext *ctx,
                              const char *name, MemoryRegionKind kind,
                              uint64_t size)
{
    char *copy;

    if (!mr || !ctx || !name) {
        return -EINVAL;
    }
    copy = strdup(name);
    if (!copy) {
        return -ENOMEM;
    }
    memset(mr, 0, sizeof(*mr));
    mr->ctx = ctx;
    mr->name = copy;
    mr->kind = kind;
    mr->size = size;
    mr->enabled = true;
    CDS_INIT_LIST_HEAD(&mr->subregions);
    CDS_INIT_LIST_HEAD(&mr->subregions_link);
    return 0;
}

int memory_region_init(MemoryRegion *mr, MemoryContext *ctx,
                       const char *name, uint64_t size)
{
    return region_init_common(mr, ctx, name, MEMORY_REGION_CONTAINER, size);
}

static bool block_in_list(RAMList *rl, RAMBlock *block)
{
    RAMBlock *b;
    bool found = false;

    rcu_read_lock();
    RAMBLOCK_FOREACH(rl, b) {
        if (b == block) {
            found = true;
            break;
        }
    }
    rcu_read_unlock();
    return found;
}

int memory_region_init_ram(MemoryRegion *mr, MemoryContext *ctx,
                           const char *name, RAMBlock *block)
{
    int ret;

    if (!mr || !ctx || !name || !block || !ctx->ram_list ||
        !block_in_list(ctx->ram_list, block)) {
        return -EINVAL;
    }
    ctx_lock(ctx);
    if (block->mr) {
        ret = -EBUSY;
    } else {
        ret = region_init_common(mr, ctx, name, MEMORY_REGION_RAM,
                                 ram_block_used_length(block));
    }
    if (ret == 0) {
        mr->ram_block = block;
        mr->readonly = block->flags & RAM_READONLY;
        block->mr = mr;
    }
    ctx_unlock(ctx);
    return ret;
}

static bool access_size_ok(unsigned int size)
{
    return size == 1 || size == 2 || size == 4 || size == 8;
}

/* 0 or a power of two up to 8, and min <= max once defaults apply. */
static bool access_limits_ok(unsigned int min, unsigned int max)
{
    if ((min && !access_size_ok(min)) || (max && !access_size_ok(max))) {
        return false;
    }
    return (min ? min : 1) <= (max ? max : 8);
}

int memory_region_init_io(MemoryRegion *mr, MemoryContext *ctx,
                          const char *name, const MemoryRegionOps *ops,
                          void *opaque, uint64_t size)
{
    int ret;

    if (!ops || !size ||
        !access_limits_ok(ops->valid.min_access_size,
                          ops->valid.max_access_size) ||
        !access_limits_ok(ops->impl.min_access_size,
                          ops->impl.max_access_size)) {
        return -EINVAL;
    }
    ret = region_init_common(mr, ctx, name, MEMORY_REGION_IO, size);
    if (ret == 0) {
        mr->ops = ops;
        mr->opaque = opaque;
    }
    return ret;
}

int memory_region_init_alias(MemoryRegion *mr, const char *name,
                             MemoryRegion *orig, uint64_t offset,
                             uint64_t size)
{
    int ret;

    if (!orig || orig == mr || !size) {
        return -EINVAL;
    }
    ret = region_init_common(mr, orig->ctx, name, MEMORY_REGION_ALIAS,
                             size);
    if (ret == 0) {
        mr->alias = orig;
        mr->alias_offset = offset;
        ctx_lock(orig->ctx);
        orig->alias_users++;
        ctx_unlock(orig->ctx);
    }
    return ret;
}

static bool view_shows(const FlatView *view, const MemoryRegion *mr)
{
    const FlatRange *fr;

    FLATVIEW_FOREACH(fr, view) {
        if (fr->mr == mr) {
            return true;
        }
    }
    return false;
}

int memory_region_destroy(MemoryRegion *mr)
{
    MemoryContext *ctx;
    AddressSpace *as;
    int ret = 0;

    if (!mr || !mr->ctx) {
        return -EINVAL;
    }
    ctx = mr->ctx;
    ctx_lock(ctx);
    if (mr->parent || !cds_list_empty(&mr->subregions) || mr->alias_users ||
        mr->root_users) {
        ret = -EBUSY;
    }
    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        if (ret == 0 && view_shows(as->current_map, mr)) {
            ret = -EBUSY;
        }
    }
    if (ret == 0) {
        if (mr->kind == MEMORY_REGION_ALIAS) {
            mr->alias->alias_users--;
        }
        if (mr->kind == MEMORY_REGION_RAM && mr->ram_block->mr == mr) {
            mr->ram_block->mr = NULL;
        }
        free(mr->name);
        mr->name = NULL;
        mr->ctx = NULL;
    }
    ctx_unlock(ctx);
    return ret;
}

/* Does rendering @from reach @target (through subregions and aliases)? */
static bool region_reaches(const MemoryRegion *from,
                           const MemoryRegion *target)
{
    const MemoryRegion *sub;

    if (from == target) {
        return true;
    }
    if (from->kind == MEMORY_REGION_ALIAS) {
        return region_reaches(from->alias, target);
    }
    cds_list_for_each_entry(sub, &from->subregions, subregions_link) {
        if (region_reaches(sub, target)) {
            return true;
        }
    }
    return false;
}

static int add_subregion_locked(MemoryRegion *parent, uint64_t addr,
                                MemoryRegion *sub, int priority)
{
    MemoryRegion *other;

    if (parent->kind == MEMORY_REGION_ALIAS) {
        return -EINVAL;
    }
    if (sub->parent || sub->root_users) {
        return -EBUSY;
    }
    /*
     * The only new edge of the render graph is parent -> sub: it closes
     * a cycle exactly when sub already reaches parent.
     */
    if (region_reaches(sub, parent)) {
        return -ELOOP;
    }
    sub->parent = parent;
    sub->addr = addr;
    sub->priority = priority;
    /* Before the first sibling it beats or ties: later-added wins ties. */
    cds_list_for_each_entry(other, &parent->subregions, subregions_link) {
        if (other->priority <= priority) {
            cds_list_add_tail(&sub->subregions_link,
                              &other->subregions_link);
            goto linked;
        }
    }
    cds_list_add_tail(&sub->subregions_link, &parent->subregions);
linked:
    parent->ctx->pending = true;
    return 0;
}

int memory_region_add_subregion_overlap(MemoryRegion *parent, uint64_t addr,
                                        MemoryRegion *sub, int priority)
{
    int ret;

    if (!parent || !sub || !parent->ctx || parent->ctx != sub->ctx) {
        return -EINVAL;
    }
    ret = writer_begin(parent->ctx);
    if (ret) {
        return ret;
    }
    ret = add_subregion_locked(parent, addr, sub, priority);
    return writer_end(parent->ctx, ret);
}

int memory_region_add_subregion(MemoryRegion *parent, uint64_t addr,
                                MemoryRegion *sub)
{
    return memory_region_add_subregion_overlap(parent, addr, sub, 0);
}

int memory_region_del_subregion(MemoryRegion *parent, MemoryRegion *sub)
{
    int ret;

    if (!parent || !sub || !parent->ctx) {
        return -EINVAL;
    }
    ret = writer_begin(parent->ctx);
    if (ret) {
        return ret;
    }
    if (sub->parent != parent) {
        ret = -EINVAL;
    } else {
        cds_list_del_init(&sub->subregions_link);
        sub->parent = NULL;
        parent->ctx->pending = true;
    }
    return writer_end(parent->ctx, ret);
}

/* Open a writer's transaction on @mr's context; 0 or -errno. */
static int region_writer_begin(MemoryRegion *mr)
{
    if (!mr || !mr->ctx) {
        return -EINVAL;
    }
    return writer_begin(mr->ctx);
}

int memory_region_set_enabled(MemoryRegion *mr, bool enabled)
{
    int ret = region_writer_begin(mr);

    if (ret) {
        return ret;
    }
    if (mr->enabled != enabled) {
        mr->enabled = enabled;
        mr->ctx->pending = true;
    }
    return writer_end(mr->ctx, 0);
}

int memory_region_set_address(MemoryRegion *mr, uint64_t addr)
{
    int ret = region_writer_begin(mr);

    if (ret) {
        return ret;
    }
    if (mr->addr != addr) {
        mr->addr = addr;
        if (mr->parent) {
            mr->ctx->pending = true;
        }
    }
    return writer_end(mr->ctx, 0);
}

int memory_region_set_alias_offset(MemoryRegion *mr, uint64_t offset)
{
    int ret = region_writer_begin(mr);

    if (ret) {
        return ret;
    }
    if (mr->kind != MEMORY_REGION_ALIAS) {
        ret = -EINVAL;
    } else if (mr->alias_offset != offset) {
        mr->alias_offset = offset;
        mr->ctx->pending = true;
    }
    return writer_end(mr->ctx, ret);
}

int memory_region_set_size(MemoryRegion *mr, uint64_t size)
{
    int ret = region_writer_begin(mr);

    if (ret) {
        return ret;
    }
    if (size == 0 && mr->kind != MEMORY_REGION_CONTAINER) {
        ret = -EINVAL;
    } else if (mr->kind == MEMORY_REGION_RAM &&
               size > mr->ram_block->max_length) {
        ret = -ERANGE;
    } else if (mr->size != size) {
        region_store_size(mr, size);
        mr->ctx->pending = true;
    }
    return writer_end(mr->ctx, ret);
}

int memory_region_set_readonly(MemoryRegion *mr, bool readonly)
{
    int ret = region_writer_begin(mr);

    if (ret) {
        return ret;
    }
    if (mr->readonly != readonly) {
        mr->readonly = readonly;
        mr->ctx->pending = true;
    }
    return writer_end(mr->ctx, 0);
}

/* ---- dirty logging ---------------------------------------------------- */

int memory_region_set_log(MemoryRegion *mr, bool log, unsigned int client)
{
    uint8_t old, mask;
    int ret;

    if (!mr || mr->kind != MEMORY_REGION_RAM || client >= DIRTY_MEMORY_NUM) {
        return -EINVAL;
    }
    ret = region_writer_begin(mr);
    if (ret) {
        return ret;
    }
    old = mr->dirty_log_mask;
    mask = log ? old | DIRTY_CLIENT_MASK(client)
               : old & ~DIRTY_CLIENT_MASK(client);
    if (mask != old) {
        __atomic_store_n(&mr->dirty_log_mask, mask, __ATOMIC_RELAXED);
        mr->ctx->pending = true;
    }
    return writer_end(mr->ctx, 0);
}

uint8_t memory_region_get_dirty_log_mask(MemoryRegion *mr)
{
    return mr ? __atomic_load_n(&mr->dirty_log_mask, __ATOMIC_RELAXED) : 0;
}

/*
 * The pages of ram_addr space under bytes [addr, addr + size) of RAM
 * region @mr.  0, -EINVAL or -ERANGE.
 */
static int region_pages(MemoryRegion *mr, uint64_t addr, uint64_t size,
                        uint64_t *page, uint64_t *npages)
{
    uint64_t rsize;
    ram_addr_t start;

    if (!mr || mr->kind != MEMORY_REGION_RAM) {
        return -EINVAL;
    }
    rsize = memory_region_size(mr);
    if (addr > rsize || size > rsize - addr) {
        return -ERANGE;
    }
    start = mr->ram_block->offset + addr;
    *page = start >> XR_PAGE_BITS;
    *npages = size ? ((start + size - 1) >> XR_PAGE_BITS) - *page + 1 : 0;
    return 0;
}

int memory_region_get_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size,
                            unsigned int client)
{
    uint64_t page, npages;
    int ret;

    if (client >= DIRTY_MEMORY_NUM) {
        return -EINVAL;
    }
    ret = region_pages(mr, addr, size, &page, &npages);
    if (ret) {
        return ret;
    }
    return dirty_memory_get(&mr->ctx->ram_list->dirty, page, npages, client);
}

int memory_region_set_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size)
{
    uint64_t page, npages;
    int ret = region_pages(mr, addr, size, &page, &npages);

    if (ret) {
        return ret;
    }
    return dirty_memory_set_range(&mr->ctx->ram_list->dirty, page, npages,
                                  DIRTY_CLIENTS_ALL);
}

int memory_region_reset_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size,
                              unsigned int client)
{
    uint64_t page, npages;
    int ret;

    if (client >= DIRTY_MEMORY_NUM) {
        return -EINVAL;
    }
    ret = region_pages(mr, addr, size, &page, &npages);
    if (ret) {
        return ret;
    }
    return dirty_memory_test_and_clear(&mr->ctx->ram_list->dirty, page,
                                       npages, client);
}

/*
 * log_sync, for every listener of every address space of @ctx, on each
 * range that shows @mr (any region when NULL) and, with @logged_only, has
 * logging on.  Context lock held.
 */
static void sync_ranges(MemoryContext *ctx, MemoryRegion *mr,
                        bool logged_only)
{
    AddressSpace *as;
    MemoryListener *l;
    const FlatRange *fr;

    ctx->notifying = true;
    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        LISTENERS_ASCENDING(l, as) {
            if (!l->log_sync) {
                continue;
            }
            FLATVIEW_FOREACH(fr, as->current_map) {
                MemoryRegionSection s;

                if ((mr && fr->mr != mr) ||
                    (logged_only && !fr->dirty_log_mask)) {
                    continue;
                }
                s = section_of(as, fr);
                l->log_sync(l, &s);
            }
        }
    }
    ctx->notifying = false;
}

int memory_region_sync_dirty_bitmap(MemoryRegion *mr)
{
    int ret;

    if (!mr || !mr->ctx || mr->kind != MEMORY_REGION_RAM) {
        return -EINVAL;
    }
    ret = ctx_lock_writer(mr->ctx);
    if (ret == 0) {
        sync_ranges(mr->ctx, mr, false);
        ctx_unlock(mr->ctx);
    }
    return ret;
}

int memory_global_dirty_log_sync(MemoryContext *ctx)
{
    int ret;

    if (!ctx) {
        return -EINVAL;
    }
    ret = ctx_lock_writer(ctx);
    if (ret == 0) {
        sync_ranges(ctx, NULL, true);
        ctx_unlock(ctx);
    }
    return ret;
}

static void notify_global_all(MemoryContext *ctx, bool ascending,
                              ListenerHook hook)
{
    AddressSpace *as;

    ctx->notifying = true;
    cds_list_for_each_entry(as, &ctx->address_spaces, link) {
        notify_global(as, ascending, hook);
    }
    ctx->notifying = false;
}

/*
 * Global logging nests like a bracket: log_global_start comes before the
 * per-range log_start calls, log_global_stop after the per-range log_stop
 * calls (at the outermost commit, inside a transaction).
 */
int memory_global_dirty_log_start(MemoryContext *ctx)
{
    int ret;

    if (!ctx) {
        return -EINVAL;
    }
    ret = writer_begin(ctx);
    if (ret) {
        return ret;
    }
    if (!ctx->global_dirty_log) {
        ctx->global_dirty_log = true;
        notify_global_all(ctx, true, HOOK_LOG_GLOBAL_START);
        ctx->pending = true;
    }
    return writer_end(ctx, 0);
}

int memory_global_dirty_log_stop(MemoryContext *ctx)
{
    bool was_on;
    int ret;

    if (!ctx) {
        return -EINVAL;
    }
    ret = ctx_lock_writer(ctx);     /* held across the commit below */
    if (ret) {
        return ret;
    }
    writer_begin(ctx);
    was_on = ctx->global_dirty_log;
    if (was_on) {
        ctx->global_dirty_log = false;
        ctx->pending = true;
    }
    ret = writer_end(ctx, 0);
    if (was_on) {
        notify_global_all(ctx, false, HOOK_LOG_GLOBAL_STOP);
    }
    ctx_unlock(ctx);
    return ret;
}

/* ---- I/O dispatch -------------------------------------------------------- */

static int dispatch_check(MemoryRegion *mr, uint64_t addr, unsigned int size)
{
    const MemoryRegionOps *ops;
    unsigned int vmin, vmax;
    uint64_t rsize;

    if (!mr || mr->kind != MEMORY_REGION_IO || !access_size_ok(size)) {
        return -EINVAL;
    }
    ops = mr->ops;
    vmin = ops->valid.min_access_size ? ops->valid.min_access_size : 1;
    vmax = ops->valid.max_access_size ? ops->valid.max_access_size : 8;
    if (size < vmin || size > vmax) {
        return -EINVAL;
    }
    if (!ops->valid.unaligned && (addr & (size - 1))) {
        return -EINVAL;
    }
    rsize = memory_region_size(mr);
    if (addr > rsize || size > rsize - addr) {
        return -ERANGE;
    }
    return 0;
}

/*
 * Do the guest access [addr, addr + size) as the callbacks can take it.
 * Each piece is one callback at (paddr, psize); it carries guest bytes
 * [pos, stop), which sit (pos - paddr) bytes into the piece and (pos -
 * addr) bytes into the guest's value.
 */
static void dispatch_pieces(MemoryRegion *mr, uint64_t addr, uint64_t *data,
                            unsigned int size, bool write)
{
    const MemoryRegionOps *ops = mr->ops;
    unsigned int amin = ops->impl.min_access_size ?
                        ops->impl.min_access_size : 1;
    unsigned int amax = ops->impl.max_access_size ?
                        ops->impl.max_access_size : 8;
    uint64_t end = addr + size, pos = addr, value = 0;

    while (pos < end) {
        uint64_t paddr = pos, stop, bytes_mask;
        unsigned int psize, shift, dshift, n;

        if (ops->impl.unaligned) {
            psize = MIN(MAX(size, amin), amax);
        } else {
            /* The biggest naturally aligned piece that fits... */
            psize = amax;
            while (psize > 1 && ((pos & (psize - 1)) || psize > end - pos)) {
                psize >>= 1;
            }
            /* ...or the smallest the device takes, around pos. */
            if (psize < amin) {
                psize = amin;
                paddr = pos & ~(uint64_t)(amin - 1);
            }
        }
        stop = pos + MIN(psize - (pos - paddr), end - pos);
        n = stop - pos;
        shift = (pos - paddr) * 8;
        dshift = (pos - addr) * 8;
        bytes_mask = n == 8 ? ~(uint64_t)0 : ((uint64_t)1 << (n * 8)) - 1;
        if (write) {
            ops->write(mr->opaque, paddr,
                       ((*data >> dshift) & bytes_mask) << shift, psize);
        } else {
            uint64_t v = ops->read(mr->opaque, paddr, psize);

            value |= ((v >> shift) & bytes_mask) << dshift;
        }
        pos = stop;
    }
    if (!write) {
        *data = value;
    }
}

int memory_region_dispatch_read(MemoryRegion *mr, uint64_t addr,
                                uint64_t *data, unsigned int size)
{
    int ret = dispatch_check(mr, addr, size);

    if (ret) {
        return ret;
    }
    if (!mr->ops->read || !data) {
        return mr->ops->read ? -EINVAL : -EPERM;
    }
    dispatch_pieces(mr, addr, data, size, false);
    return 0;
}

int memory_region_dispatch_write(MemoryRegion *mr, uint64_t addr,
                                 uint64_t data, unsigned int size)
{
    int ret = dispatch_check(mr, addr, size);

    if (ret) {
        return ret;
    }
    if (!mr->ops->write) {
        return -EPERM;
    }
    dispatch_pieces(mr, addr, &data, size, true);
    return 0;
}

/* ---- address spaces ----------------------------------------------------- */

int address_space_init(AddressSpace *as, MemoryContext *ctx,
                       MemoryRegion *root, const char *name)
{
    FlatView *view;
    char *copy;
    int ret;

    if (!as || !ctx || !root || !name || root->ctx != ctx) {
        return -EINVAL;
    }
    ret = ctx_lock_writer(ctx);
    if (ret) {
        return ret;
    }
    if (root->parent) {
        ret = -EBUSY;
        goto out;
    }
    copy = strdup(name);
    view = flatview_render(ctx, root);
    if (!copy || !view) {
        free(copy);
        free(view);
        ret = -ENOMEM;
        goto out;
    }
    memset(as, 0, sizeof(*as));
    as->ctx = ctx;
    as->name = copy;
    as->root = root;
    CDS_INIT_LIST_HEAD(&as->listeners);
    rcu_assign_pointer(as->current_map, view);
    root->root_users++;
    cds_list_add_tail(&as->link, &ctx->address_spaces);
out:
    ctx_unlock(ctx);
    return ret;
}

/* Tell @l that every range of the current view goes.  Notifying. */
static void listener_forget_view(MemoryListener *l, AddressSpace *as)
{
    const FlatView *view = as->current_map;
    const FlatRange *fr;

    if (l->begin) {
        l->begin(l);
    }
    FLATVIEW_FOREACH(fr, view) {
        MemoryRegionSection s = section_of(as, fr);

        if (l->region_del) {
            l->region_del(l, &s);
        }
    }
    if (l->commit) {
        l->commit(l);
    }
}

int address_space_destroy(AddressSpace *as)
{
    MemoryContext *ctx;
    MemoryListener *l, *tmp;
    FlatView *view;
    int ret;

    if (!as || !as->ctx) {
        return -EINVAL;
    }
    ctx = as->ctx;
    ret = ctx_lock_writer(ctx);
    if (ret) {
        return ret;
    }
    ctx->notifying = true;
    cds_list_for_each_entry_safe(l, tmp, &as->listeners, link) {
        listener_forget_view(l, as);
        cds_list_del(&l->link);
        l->address_space = NULL;
    }
    ctx->notifying = false;
    cds_list_del(&as->link);
    as->root->root_users--;
    view = as->current_map;
    rcu_assign_pointer(as->current_map, NULL);
    region_call_rcu(&view->rcu, flatview_free_rcu);
    free(as->name);
    as->name = NULL;
    as->ctx = NULL;
    ctx_unlock(ctx);
    return 0;
}

/* ---- listeners --------------------------------------------------------- */

int memory_listener_register(MemoryListener *l, AddressSpace *as)
{
    MemoryContext *ctx;
    MemoryListener *other;
    const FlatRange *fr;
    int ret;

    if (!l || !as || !as->ctx) {
        return -EINVAL;
    }
    ctx = as->ctx;
    ret = ctx_lock_writer(ctx);
    if (ret) {
        return ret;
    }
    if (l->address_space) {
        ctx_unlock(ctx);
        return -EBUSY;
    }
    /* After every listener of lower or equal priority. */
    cds_list_for_each_entry(other, &as->listeners, link) {
        if (other->priority > l->priority) {
            break;
        }
    }
    cds_list_add_tail(&l->link, &other->link);
    l->address_space = as;

    ctx->notifying = true;
    if (l->begin) {
        l->begin(l);
    }
    if (ctx->global_dirty_log && l->log_global_start) {
        l->log_global_start(l);
    }
    FLATVIEW_FOREACH(fr, as->current_map) {
        MemoryRegionSection s = section_of(as, fr);

        if (l->region_add) {
            l->region_add(l, &s);
        }
        if (fr->dirty_log_mask && l->log_start) {
            l->log_start(l, &s, 0, fr->dirty_log_mask);
        }
    }
    if (l->commit) {
        l->commit(l);
    }
    ctx->notifying = false;
    ctx_unlock(ctx);
    return 0;
}

int memory_listener_unregister(MemoryListener *l)
{
    AddressSpace *as;
    MemoryContext *ctx;
    int ret;

    if (!l || !l->address_space) {
        return -EINVAL;
    }
    as = l->address_space;
    ctx = as->ctx;
    ret = ctx_lock_writer(ctx);
    if (ret) {
        return ret;
    }
    ctx->notifying = true;
    listener_forget_view(l, as);
    ctx->notifying = false;
    cds_list_del(&l->link);
    l->address_space = NULL;
    ctx_unlock(ctx);
    return 0;
}
