/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * region.h - the MemoryRegion tree, its FlatView, address spaces,
 * listeners and region dirty logging.
 *
 * A MemoryRegion describes a piece of guest-physical space: a container of
 * other regions, RAM backed by a RAMBlock, I/O handled by callbacks, or an
 * alias of part of another region.  Regions nest; where siblings overlap
 * the higher priority wins.  An AddressSpace renders its root region into
 * a FlatView, a sorted array of non-overlapping FlatRanges that readers
 * search without taking any lock, and tells its MemoryListeners what
 * changed whenever a new view replaces the old one.  Concepts, rendering
 * rules and examples: docs/region.md.
 *
 * Everything hangs off an explicit MemoryContext: the guest's RAMList, its
 * address spaces, the writers' lock and the transaction state.  There is
 * no global state.
 *
 * Concurrency contract:
 *  - Readers (address_space_get_flatview(), address_space_lookup(),
 *    flatview_lookup(), FLATVIEW_FOREACH) run inside rcu_read_lock() on an
 *    RCU-registered thread and take no lock.  A FlatView and the FlatRanges
 *    in it stay valid, and unchanged, until the matching rcu_read_unlock();
 *    so do the MemoryRegions they point to, as long as their owners follow
 *    the rule of memory_region_destroy().
 *  - Writers (every memory_region_set_*, add/del_subregion, transactions,
 *    address_space_init/destroy, listener (un)registration, global dirty
 *    log start/stop, memory_region_sync_dirty_bitmap) take the context's
 *    lock themselves.  The lock is recursive so that a thread inside a
 *    transaction may call writers, and it is held from
 *    memory_region_transaction_begin() to the matching commit: other
 *    threads' writers wait.  Writers run on an RCU-registered thread
 *    (they queue call_rcu() work) and not inside a read-side section.
 *  - Listener callbacks run on the writer's thread with the context lock
 *    held.  They may read the regions and the FlatViews but must not
 *    change the tree, open transactions or (un)register listeners: those
 *    calls fail with -EDEADLK there.  Nor may they call RAMList writers
 *    (ram_block_add/remove/resize): the lock order is RAMList mutex, then
 *    context lock (a RAMBlockNotifier may update regions).
 *  - Region dirty logging (get/set/reset_dirty) and I/O dispatch are
 *    lock-free and may run on any RCU-registered thread.
 *
 * Errors: -EINVAL for arguments that make no sense (a NULL pointer, a
 * region of the wrong kind, an unknown dirty client), -ERANGE for offsets
 * beyond a region, -EBUSY for a region that is in use where it must not
 * be, -ELOOP for a change that would make a region contain itself,
 * -EDEADLK for writers called from listener callbacks, -ENOMEM.  A
 * failing call changes nothing, with one exception: when the commit of a
 * change cannot allocate the new FlatViews, the change stays made, the
 * old views stay published, the writer (or commit) returns -ENOMEM and the
 * next commit renders again.
 */
#ifndef XENRAM_MEMORY_REGION_H
#define XENRAM_MEMORY_REGION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"
#include "dirty/dirty.h"
#include "memory/ramblock.h"

#include <urcu/list.h>

typedef struct MemoryContext MemoryContext;
typedef struct MemoryRegion MemoryRegion;
typedef struct MemoryRegionOps MemoryRegionOps;
typedef struct MemoryRegionSection MemoryRegionSection;
typedef struct MemoryListener MemoryListener;
typedef struct AddressSpace AddressSpace;
typedef struct FlatRange FlatRange;
typedef struct FlatView FlatView;

/* ---- the context ------------------------------------------------------ */

/*
 * The memory of one guest: the RAMList whose blocks back its RAM regions,
 * its address spaces, and the writers' state.  Embed it and initialise it
 * with memory_context_init().  All fields are private.
 */
struct MemoryContext {
    RAMList *ram_list;              /* fixed; may be NULL (no RAM regions) */
    pthread_mutex_t lock;           /* recursive; see the contract above */
    /* Everything below is protected by @lock. */
    unsigned int transaction_depth;
    bool pending;                   /* the tree changed since the last render */
    bool notifying;                 /* listener callbacks are running */
    bool global_dirty_log;          /* memory_global_dirty_log_start() */
    struct cds_list_head address_spaces;
};

/*
 * Initialise @ctx for the RAM blocks of @rl (NULL if the guest has no RAM
 * regions).  Returns 0, -EINVAL (@ctx NULL) or -errno from the lock.
 */
int memory_context_init(MemoryContext *ctx, RAMList *rl);

/*
 * Release @ctx once every address space of it has been destroyed; waits
 * for pending RCU callbacks of the context (rcu_barrier()), so it must not
 * be called inside a read-side section.  Returns 0 or -EBUSY (address
 * spaces remain; nothing is done).  No other thread may use @ctx.
 */
int memory_context_destroy(MemoryContext *ctx);

/* ---- regions ---------------------------------------------------------- */

typedef enum MemoryRegionKind {
    MEMORY_REGION_CONTAINER,    /* only holds subregions */
    MEMORY_REGION_RAM,          /* backed by a RAMBlock */
    MEMORY_REGION_IO,           /* accesses call MemoryRegionOps */
    MEMORY_REGION_ALIAS,        /* shows part of another region */
} MemoryRegionKind;

/*
 * How an I/O region is accessed.  Sizes are in bytes and are powers of two
 * up to 8; a zero minimum means 1, a zero maximum means 8.
 *
 * @valid says which guest accesses the device accepts: others are refused
 * by memory_region_dispatch_read/write() with -EINVAL before any callback
 * runs.  @impl says which accesses the callbacks implement: a bigger
 * access is split into several, a smaller one widened to impl's minimum at
 * the address rounded down to it (on writes, bytes outside the guest's
 * access are then passed as zero).  Without impl.unaligned the pieces are
 * naturally aligned.  Data are little-endian: the byte at the lowest
 * address is the least significant.
 */
struct MemoryRegionOps {
    /* @addr is relative to the region; @size is a power of two <= 8. */
    uint64_t (*read)(void *opaque, uint64_t addr, unsigned int size);
    void (*write)(void *opaque, uint64_t addr, uint64_t data,
                  unsigned int size);
    struct {
        unsigned int min_access_size;
        unsigned int max_access_size;
        bool unaligned;         /* accept accesses not aligned to their size */
    } valid;
    struct {
        unsigned int min_access_size;
        unsigned int max_access_size;
        bool unaligned;         /* the callbacks accept unaligned accesses */
    } impl;
};

/*
 * A region.  Embed it in the structure of whoever owns it (a device, the
 * machine) and initialise it with one of the memory_region_init*()
 * functions.  All fields are private: use the functions below.
 */
struct MemoryRegion {
    /* Fixed at initialisation. */
    MemoryContext *ctx;
    char *name;
    MemoryRegionKind kind;
    const MemoryRegionOps *ops;     /* I/O */
    void *opaque;                   /* I/O */
    RAMBlock *ram_block;            /* RAM */
    MemoryRegion *alias;            /* ALIAS: the region shown */

    /*
     * Protected by ctx->lock.  @size is also read without it (dirty
     * logging, dispatch), hence always accessed atomically.  0 means 2^64
     * and is allowed for containers only.
     */
    uint64_t size;
    uint64_t alias_offset;
    MemoryRegion *parent;
    uint64_t addr;                  /* offset in the parent */
    int priority;
    bool enabled;
    bool readonly;
    uint8_t dirty_log_mask;         /* RAM: DIRTY_CLIENT_MASK() bits */
    /* Highest priority first; equal priorities: most recently added first. */
    struct cds_list_head subregions;
    struct cds_list_head subregions_link;
    unsigned int alias_users;       /* aliases of this region */
    unsigned int root_users;        /* address spaces rooted here */
};

/*
 * Initialise @mr as a container of @size bytes in @ctx (0: the whole
 * 2^64-byte space, for a root).  Subregions beyond @size are clipped.
 * Returns 0, -EINVAL (@mr, @ctx or @name NULL) or -ENOMEM.  Any thread.
 */
int memory_region_init(MemoryRegion *mr, MemoryContext *ctx,
                       const char *name, uint64_t size);

/*
 * Initialise @mr as the RAM region of @block, a block of ctx's RAMList
 * (already added by the caller), covering the block's used_length.  Sets
 * block->mr.  The region starts read-only if the block is RAM_READONLY.
 * Returns 0, -EINVAL (NULL arguments, a context without RAMList, @block
 * not in it), -EBUSY (the block already has a region) or -ENOMEM.
 * Destroy the region before removing the block.  Takes the context lock;
 * any RCU-registered thread.
 */
int memory_region_init_ram(MemoryRegion *mr, MemoryContext *ctx,
                           const char *name, RAMBlock *block);

/*
 * Initialise @mr as an I/O region of @size bytes whose accesses call
 * @ops with @opaque.  @ops must outlive the region.  Returns 0, -EINVAL
 * (NULL arguments, @size 0, access sizes in @ops that are not 0 or a power
 * of two up to 8, or a minimum above the maximum) or -ENOMEM.  Any thread.
 */
int memory_region_init_io(MemoryRegion *mr, MemoryContext *ctx,
                          const char *name, const MemoryRegionOps *ops,
                          void *opaque, uint64_t size);

/*
 * Initialise @mr as an alias showing bytes [@offset, @offset + @size) of
 * @orig, in @orig's context.  Parts beyond the end of @orig show nothing.
 * Returns 0, -EINVAL (NULL arguments, @size 0, @orig == @mr) or -ENOMEM.
 * Takes the context lock.
 */
int memory_region_init_alias(MemoryRegion *mr, const char *name,
                             MemoryRegion *orig, uint64_t offset,
                             uint64_t size);

/*
 * Release what @mr holds (its name; a RAM region's hold on its block).
 * The region must be out of use: no parent, no subregions, no alias of
 * it, not the root of an address space, and in no current FlatView (a
 * region deleted inside a transaction stays in the view until the commit).
 * Readers may still be using it in an older FlatView: free the memory
 * holding @mr only after a grace period (synchronize_rcu()).  Returns 0 or
 * -EBUSY (nothing is done).  Takes the context lock.
 */
int memory_region_destroy(MemoryRegion *mr);

/*
 * Make @sub a subregion of @parent at offset @addr, with priority 0 (or
 * @priority): where siblings overlap, the higher priority is seen; between
 * equal priorities, the one added last.  A subregion may stick out of its
 * parent: it is clipped.  Returns 0, or -EINVAL (NULL arguments, different
 * contexts, @parent an alias), -EBUSY (@sub already has a parent or is the
 * root of an address space), -ELOOP (@sub contains or aliases @parent,
 * directly or not), -EDEADLK.  Takes the context lock; re-renders on
 * commit.
 */
int memory_region_add_subregion(MemoryRegion *parent, uint64_t addr,
                                MemoryRegion *sub);
int memory_region_add_subregion_overlap(MemoryRegion *parent, uint64_t addr,
                                        MemoryRegion *sub, int priority);

/*
 * Detach @sub from @parent.  Returns 0, -EINVAL (@sub is not a subregion
 * of @parent, NULL arguments) or -EDEADLK.  Takes the context lock.
 */
int memory_region_del_subregion(MemoryRegion *parent, MemoryRegion *sub);

/*
 * Show or hide @mr (with everything inside it).  Regions start enabled.
 * Returns 0, -EINVAL or -EDEADLK.  Takes the context lock.
 */
int memory_region_set_enabled(MemoryRegion *mr, bool enabled);

/*
 * Move @mr to offset @addr in its parent.  On a detached region it only
 * records the offset, which the next add_subregion replaces.  Returns 0,
 * -EINVAL or -EDEADLK.  Takes the context lock.
 */
int memory_region_set_address(MemoryRegion *mr, uint64_t addr);

/*
 * Make alias @mr show @orig from @offset on.  Returns 0, -EINVAL (not an
 * alias) or -EDEADLK.  Takes the context lock.
 */
int memory_region_set_alias_offset(MemoryRegion *mr, uint64_t offset);

/*
 * Change the size of @mr.  0 (2^64) only for containers; a RAM region may
 * not exceed its block's max_length (-ERANGE): when a resizeable block
 * grows or shrinks, its owner follows with this call.  Returns 0, -EINVAL,
 * -ERANGE or -EDEADLK.  Takes the context lock.
 */
int memory_region_set_size(MemoryRegion *mr, uint64_t size);

/*
 * Make @mr read-only (ROM semantics: the guest-access layer refuses
 * writes) or writable.  Everything rendered through a read-only region,
 * its subregions and what an alias shows, is read-only.  Listeners see the
 * affected ranges deleted and added again.  Returns 0, -EINVAL or
 * -EDEADLK.  Takes the context lock.
 */
int memory_region_set_readonly(MemoryRegion *mr, bool readonly);

/*
 * Begin / end a batch of changes to the regions of @ctx: the address
 * spaces are rendered, and listeners told, once, when the outermost
 * transaction commits.  Transactions nest.  From begin to the matching
 * commit the calling thread holds the context lock: writers on other
 * threads wait, readers do not.  Every writer above is itself a
 * transaction of one change.  A change that fails inside a transaction
 * does not undo the others.
 *
 * begin returns 0, -EINVAL or -EDEADLK (inside a listener callback);
 * commit returns 0, or -EPERM when the calling thread has no transaction
 * open.
 */
int memory_region_transaction_begin(MemoryContext *ctx);
int memory_region_transaction_commit(MemoryContext *ctx);

/* Name and kind: fixed at initialisation, any thread. */
static inline const char *memory_region_name(const MemoryRegion *mr)
{
    return mr->name;
}

static inline MemoryRegionKind memory_region_kind(const MemoryRegion *mr)
{
    return mr->kind;
}

/* Size in bytes; 0 means 2^64 (a container).  Any thread. */
static inline uint64_t memory_region_size(const MemoryRegion *mr)
{
    return __atomic_load_n(&mr->size, __ATOMIC_RELAXED);
}

/* The RAMBlock of a RAM region, NULL for other kinds.  Any thread. */
static inline RAMBlock *memory_region_ram_block(const MemoryRegion *mr)
{
    return mr->ram_block;
}

/* ---- dirty logging ---------------------------------------------------- */

/*
 * Turn dirty logging of RAM region @mr for @client (DIRTY_MEMORY_VGA,
 * _CODE, _MIGRATION) on or off.  The FlatRanges of the region carry the
 * new mask and listeners are told with log_start / log_stop on commit.
 * The bitmaps themselves are those of dirty/ and are always kept; logging
 * is what tells Xen-facing listeners to feed them.  Returns 0, -EINVAL
 * (not RAM, unknown client) or -EDEADLK.  Takes the context lock.
 */
int memory_region_set_log(MemoryRegion *mr, bool log, unsigned int client);

/*
 * The DIRTY_CLIENT_MASK() bits of the clients whose logging is on for @mr
 * (its own mask, without global migration logging); 0 for NULL or a
 * region that is not RAM.  Any thread.
 */
uint8_t memory_region_get_dirty_log_mask(MemoryRegion *mr);

/*
 * Whether any page overlapping bytes [@addr, @addr + @size) of RAM region
 * @mr is dirty for @client: 1 yes, 0 no (also for @size 0), -EINVAL (not
 * RAM, unknown client), -ERANGE (beyond the region).  Region offsets map
 * to ram_addr block->offset + @addr.  Lock-free; any RCU-registered
 * thread.
 */
int memory_region_get_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size,
                            unsigned int client);

/*
 * Mark every page overlapping [@addr, @addr + @size) of RAM region @mr
 * dirty for every client (DIRTY_CLIENTS_ALL: on Xen no client needs to
 * be spared, see docs/region.md).  This is the device model's own write;
 * reporting it to Xen is the guest-access layer's job.  0, -EINVAL or
 * -ERANGE.  Lock-free.
 */
int memory_region_set_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size);

/*
 * Test and clear, for @client, every page overlapping [@addr, @addr +
 * @size) of RAM region @mr: 1 if any was dirty, 0 if none, -EINVAL or
 * -ERANGE.  A page dirtied concurrently is reported or stays dirty.
 * Lock-free.
 */
int memory_region_reset_dirty(MemoryRegion *mr, uint64_t addr, uint64_t size,
                              unsigned int client);

/*
 * Pull outside dirty information (Xen's log-dirty) for RAM region @mr
 * into dirty/: calls log_sync of every listener, in priority order, for
 * every section of @mr in every address space of its context.  Call it
 * before get/reset_dirty when Xen's view matters.  Returns 0, -EINVAL (not
 * RAM) or -EDEADLK.  Takes the context lock; callbacks run with it held.
 */
int memory_region_sync_dirty_bitmap(MemoryRegion *mr);

/*
 * Start / stop migration logging of every RAM range of @ctx: listeners
 * get log_global_start (ascending priority) / log_global_stop
 * (descending), then every RAM range gains / loses DIRTY_MEMORY_MIGRATION
 * in its mask, reported with log_start / log_stop.  Starting twice is a
 * no-op.  Returns 0, -EINVAL or -EDEADLK.  Takes the context lock.
 */
int memory_global_dirty_log_start(MemoryContext *ctx);
int memory_global_dirty_log_stop(MemoryContext *ctx);

/*
 * log_sync for every section, in every address space of @ctx, whose
 * dirty_log_mask is not empty: a migration round's pull of Xen's log.
 * Returns 0, -EINVAL or -EDEADLK.  Takes the context lock.
 */
int memory_global_dirty_log_sync(MemoryContext *ctx);

/* ---- I/O dispatch ----------------------------------------------------- */

/*
 * Perform a guest access of @size bytes (1, 2, 4 or 8) at offset @addr of
 * I/O region @mr, honouring ops->valid and ops->impl (see
 * MemoryRegionOps).  Returns 0 (the value read, zero-extended, in *@data),
 * -EINVAL (not an I/O region, a size not allowed by ops->valid, an
 * unaligned access without valid.unaligned), -ERANGE (beyond the region)
 * or -EPERM (no read / write callback).  No lock; the callbacks run on the
 * calling thread and do their own locking.
 */
int memory_region_dispatch_read(MemoryRegion *mr, uint64_t addr,
                                uint64_t *data, unsigned int size);
int memory_region_dispatch_write(MemoryRegion *mr, uint64_t addr,
                                 uint64_t data, unsigned int size);

/* ---- the flat view ---------------------------------------------------- */

/*
 * One piece of guest-physical space where one region is seen.  Bytes
 * [addr, addr + size) of the address space are bytes [offset_in_region,
 * offset_in_region + size) of @mr, which is a RAM or I/O region (never a
 * container or an alias: those are resolved while rendering).
 */
struct FlatRange {
    MemoryRegion *mr;
    uint64_t offset_in_region;
    uint64_t addr;                  /* first guest-physical byte */
    uint64_t size;                  /* > 0; addr + size may be 2^64 */
    /* RAM: the ram_addr of byte @addr; RAM_ADDR_INVALID for I/O. */
    ram_addr_t ram_addr;
    bool readonly;
    uint8_t dirty_log_mask;
};

/*
 * An immutable rendering of an address space: @nr ranges sorted by
 * address, non-overlapping, adjacent compatible pieces merged.  Published
 * under RCU; valid until the reader's rcu_read_unlock().
 */
struct FlatView {
    struct rcu_head rcu;
    unsigned int nr;
    FlatRange ranges[];
};

#define FLATVIEW_FOREACH(fr, view) \
    for ((fr) = (view)->ranges; (fr) < (view)->ranges + (view)->nr; (fr)++)

static inline bool flatrange_is_ram(const FlatRange *fr)
{
    return fr->ram_addr != RAM_ADDR_INVALID;
}

/*
 * The range of @view containing guest-physical @addr, or NULL for a hole.
 * On success *@offset_in_region (if non-NULL) is the offset of @addr in
 * fr->mr and *@remaining (if non-NULL) the bytes from @addr to the end of
 * the range (at least 1); for RAM, @addr is at ram_addr fr->ram_addr +
 * (@addr - fr->addr).  Binary search; no lock, inside rcu_read_lock().
 */
static inline const FlatRange *flatview_lookup(const FlatView *view,
                                               uint64_t addr,
                                               uint64_t *offset_in_region,
                                               uint64_t *remaining)
{
    unsigned int lo = 0, hi = view->nr;
    const FlatRange *fr;

    /* Find the last range starting at or below @addr. */
    while (lo < hi) {
        unsigned int mid = lo + (hi - lo) / 2;

        if (view->ranges[mid].addr <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return NULL;
    }
    fr = &view->ranges[lo - 1];
    if (addr - fr->addr >= fr->size) {
        return NULL;
    }
    if (offset_in_region) {
        *offset_in_region = fr->offset_in_region + (addr - fr->addr);
    }
    if (remaining) {
        *remaining = fr->size - (addr - fr->addr);
    }
    return fr;
}

/* ---- address spaces --------------------------------------------------- */

/*
 * A guest-physical address space: @root rendered at address 0.  All
 * fields are private.
 */
struct AddressSpace {
    MemoryContext *ctx;
    char *name;
    MemoryRegion *root;
    FlatView *current_map;          /* RCU; replaced under ctx->lock */
    /* Ascending priority; equal priorities in registration order. */
    struct cds_list_head listeners; /* under ctx->lock */
    struct cds_list_head link;      /* in ctx->address_spaces */
};

/*
 * Initialise @as with @root (a region of @ctx without a parent, which it
 * may not get while it is a root) and render it.  The root is always at
 * address 0: its own address is ignored.  Returns 0, -EINVAL,
 * -EBUSY (@root has a parent), -EDEADLK or -ENOMEM.  Takes the context
 * lock.
 */
int address_space_init(AddressSpace *as, MemoryContext *ctx,
                       MemoryRegion *root, const char *name);

/*
 * Tear @as down: listeners still registered get region_del for every range
 * and are unregistered; the view is freed after a grace period.  Returns 0,
 * -EINVAL or -EDEADLK.  Takes the context lock.
 */
int address_space_destroy(AddressSpace *as);

static inline const char *address_space_name(const AddressSpace *as)
{
    return as->name;
}

/*
 * The current view of @as.  Inside rcu_read_lock(); valid until the
 * matching unlock.  Never NULL for an initialised address space.
 */
static inline const FlatView *address_space_get_flatview(AddressSpace *as)
{
    return rcu_dereference(as->current_map);
}

/*
 * flatview_lookup() in the current view of @as.  Inside rcu_read_lock();
 * the range is valid until the matching unlock.
 */
static inline const FlatRange *address_space_lookup(AddressSpace *as,
                                                    uint64_t addr,
                                                    uint64_t *offset_in_region,
                                                    uint64_t *remaining)
{
    return flatview_lookup(address_space_get_flatview(as), addr,
                           offset_in_region, remaining);
}

/* ---- listeners -------------------------------------------------------- */

/*
 * What a listener is told about: bytes [offset_within_address_space,
 * + size) of @address_space show bytes [offset_within_region, + size) of
 * @mr (RAM or I/O).  Only valid during the callback.
 */
struct MemoryRegionSection {
    MemoryRegion *mr;
    AddressSpace *address_space;
    uint64_t offset_within_region;
    uint64_t size;
    uint64_t offset_within_address_space;
    /* RAM: ram_addr of the first byte; RAM_ADDR_INVALID for I/O. */
    ram_addr_t ram_addr;
    bool readonly;
    uint8_t dirty_log_mask;
};

/*
 * Callbacks for changes of one address space; any may be NULL.  All run
 * on the writer's thread with the context lock held (see the contract at
 * the top).  After every re-render (one per outermost commit):
 *
 *   begin                       ascending priority
 *   region_del                  descending, for each range that vanished
 *                               or changed (logging ends with it)
 *   region_add                  ascending, for each new or changed range
 *   region_nop                  ascending, for each unchanged range
 *   log_start / log_stop        ascending / descending, for an unchanged
 *                               range whose dirty_log_mask gained / lost
 *                               clients (@old and @new masks given)
 *   commit                      ascending priority
 *
 * A range is "unchanged" when the same region is seen at the same
 * addresses, with the same offset in it and the same readonly flag; a
 * range that moved, shrank, grew or changed readonly is deleted and added.
 * Deletions come before additions.  memory_listener_register() replays
 * region_add (and log_start for logged ranges) for the current view;
 * unregistration sends region_del for each range.
 */
struct MemoryListener {
    void (*begin)(MemoryListener *l);
    void (*commit)(MemoryListener *l);
    void (*region_add)(MemoryListener *l, MemoryRegionSection *section);
    void (*region_del)(MemoryListener *l, MemoryRegionSection *section);
    void (*region_nop)(MemoryListener *l, MemoryRegionSection *section);
    void (*log_start)(MemoryListener *l, MemoryRegionSection *section,
                      unsigned int old_mask, unsigned int new_mask);
    void (*log_stop)(MemoryListener *l, MemoryRegionSection *section,
                     unsigned int old_mask, unsigned int new_mask);
    void (*log_sync)(MemoryListener *l, MemoryRegionSection *section);
    void (*log_global_start)(MemoryListener *l);
    void (*log_global_stop)(MemoryListener *l);
    int priority;                   /* lower runs first on additions */
    const char *name;               /* for messages; may be NULL */

    /* Private. */
    AddressSpace *address_space;    /* NULL when not registered */
    struct cds_list_head link;
};

/*
 * Register @l with @as and replay the current view to it: begin,
 * log_global_start (if migration logging is on), region_add and, for
 * logged ranges, log_start(0, mask) in address order, commit.  Returns 0,
 * -EINVAL, -EBUSY (@l is registered already) or -EDEADLK.  Takes the
 * context lock.
 */
int memory_listener_register(MemoryListener *l, AddressSpace *as);

/*
 * Unregister @l: begin, region_del for every range in address order,
 * commit; then no callback runs for it any more.  Returns 0, -EINVAL
 * (not registered) or -EDEADLK.  Takes the context lock.
 */
int memory_listener_unregister(MemoryListener *l);

#endif /* XENRAM_MEMORY_REGION_H */
