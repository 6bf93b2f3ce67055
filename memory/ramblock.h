/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ramblock.h - RAM blocks, the RAMList that holds them, and notifiers.
 *
 * A RAMBlock is one contiguous range of ram_addr space: guest RAM, VRAM, a
 * ROM, a hot-plugged DIMM.  ram_addr space is xenram's own linear numbering
 * of every page it knows, used to index the dirty bitmaps (dirty/); it is
 * not guest-physical space (the region tree, memory/region.h, maps one onto
 * the other).
 *
 * The RAMList keeps its blocks in an RCU list sorted from biggest to
 * smallest max_length, so that the common lookup (main RAM) is found first;
 * a most-recently-used pointer short-cuts repeated lookups.
 *
 * Concurrency contract:
 *  - Readers (lookups, RAMBLOCK_FOREACH) run inside rcu_read_lock() on an
 *    RCU-registered thread and take no lock.  A RAMBlock pointer obtained
 *    there stays valid until the matching rcu_read_unlock().
 *  - Writers (add, remove, resize, notifier add/remove) take the RAMList
 *    mutex themselves, so the caller must not hold it; they run on an
 *    RCU-registered thread (they queue call_rcu() work) and must not be
 *    called inside a read-side critical section (remove waits for nothing,
 *    but the host memory of a removed block is released only after grace
 *    periods).
 *  - Notifier callbacks run with the RAMList mutex held and must not call
 *    the writer functions of the same RAMList (the mutex is error-checking:
 *    doing so aborts with a message rather than deadlocking).
 *  - Fields of a published block are fixed, except used_length (resize)
 *    and the migration state; read used_length with
 *    ram_block_used_length() unless you hold the mutex.
 */
#ifndef XENRAM_MEMORY_RAMBLOCK_H
#define XENRAM_MEMORY_RAMBLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"
#include "dirty/bitmap.h"
#include "dirty/dirty.h"

#include <urcu/rculist.h>

typedef uint64_t ram_addr_t;

#define RAM_ADDR_INVALID  (~(ram_addr_t)0)
/* Upper bound of ram_addr space: 2^52 bytes, more than any x86 guest. */
#define RAM_ADDR_MAX      ((ram_addr_t)1 << 52)
/* Every block starts on this boundary (keeps bitmaps word-aligned). */
#define RAM_BLOCK_ALIGN   ((ram_addr_t)2 << 20)
/* Size of RAMBlock.idstr, terminating NUL included. */
#define RAM_BLOCK_IDSTR_SIZE 256

/* RAMBlock.flags */
#define RAM_RESIZEABLE    (1u << 0)  /* used_length may change up to max */
#define RAM_HOTPLUGGED    (1u << 1)  /* added at run time (hotplug/) */
#define RAM_OWN_HOST      (1u << 2)  /* host memory allocated by the RAMList */
#define RAM_READONLY      (1u << 3)  /* a ROM: the guest cannot write it */
/*
 * The device model populates this block's guest frames itself (VRAM, ROMs,
 * hot-plugged DIMMs); main RAM is populated by the toolstack.  See
 * memory/xen-memory.h.
 */
#define RAM_XEN_POPULATE  (1u << 4)

typedef struct RAMBlock RAMBlock;
typedef struct RAMList RAMList;
typedef struct RAMBlockNotifier RAMBlockNotifier;

struct RAMBlock {
    struct rcu_head rcu;
    /* The RAM region backed by this block, set by memory/region.c. */
    struct MemoryRegion *mr;
    /* Host view of the block, or NULL when it is reached via the mapcache. */
    uint8_t *host;
    ram_addr_t offset;          /* first ram_addr of the block */
    /* Bytes in use, <= max_length; see ram_block_used_length(). */
    ram_addr_t used_length;
    ram_addr_t max_length;      /* bytes reserved in ram_addr space */
    /* Called (RAMList mutex held) after used_length changed. */
    void (*resized)(const char *idstr, uint64_t new_length, void *host);
    uint32_t flags;             /* RAM_* */
    char idstr[RAM_BLOCK_IDSTR_SIZE];
    /* RCU-enabled, writes protected by the RAMList mutex. */
    struct cds_list_head next;
    size_t page_size;           /* XR_PAGE_SIZE for every Xen guest block */

    /*
     * Migration state.  Allocated by ram_block_alloc_migration_bitmaps() on
     * the migration source/destination, owned by the migration thread.
     */
    /*
     * Pages still to send, bit 0 = the block's first page: a DirtyBitmap
     * in the dirty blocks' geometry, so that syncing the MIGRATION client
     * into it (dirty_memory_sync_bitmap()) hands whole blocks over.
     */
    DirtyBitmap *bmap;
    unsigned long *receivedmap; /* postcopy destination: pages received */
    /*
     * One bit per 2^clear_bmap_shift pages: set when that chunk's log still
     * needs clearing before it is sent (lazy log clear).
     */
    unsigned long *clear_bmap;
    uint8_t clear_bmap_shift;
    /* used_length as the source saw it; bounds postcopy page requests. */
    ram_addr_t postcopy_length;
};

struct RAMBlockNotifier {
    /* A block appeared (also replayed for existing blocks on add). */
    void (*ram_block_added)(RAMBlockNotifier *n, RAMBlock *block);
    /* A block is about to disappear; its memory is still valid. */
    void (*ram_block_removed)(RAMBlockNotifier *n, RAMBlock *block);
    /* used_length changed from @old_length to block->used_length. */
    void (*ram_block_resized)(RAMBlockNotifier *n, RAMBlock *block,
                              ram_addr_t old_length);
    struct cds_list_head next;  /* under the RAMList mutex */
};

struct RAMList {
    pthread_mutex_t mutex;
    /*
     * The block the last lookup found.  Private to the lookups: it may
     * briefly point to a removed (but not yet freed) block, which they
     * ignore.
     */
    RAMBlock *mru_block;
    /* RCU-enabled, writes protected by @mutex; biggest max_length first. */
    struct cds_list_head blocks;
    /* One bit per page of ram_addr space per client; see dirty/dirty.h. */
    DirtyMemory dirty;
    /*
     * Bumped (under @mutex) by every change of the block list; without the
     * mutex, read it with __atomic_load_n(&rl->version, __ATOMIC_ACQUIRE).
     */
    uint32_t version;
    /* Protected by @mutex. */
    struct cds_list_head notifiers;
};

/*
 * Iterate over blocks, biggest first; hold the RAMList mutex or be inside
 * rcu_read_lock().
 */
#define RAMBLOCK_FOREACH(rl, block) \
    cds_list_for_each_entry_rcu(block, &(rl)->blocks, next)

/* Initialise an empty RAMList.  Returns 0 or -errno. */
int ram_list_init(RAMList *rl);

/*
 * Remove every block (notifiers see them go), wait for readers and free
 * everything.  No other thread may use @rl concurrently.
 */
void ram_list_destroy(RAMList *rl);

/*
 * Take / drop the RAMList mutex (writers' lock), for a caller that needs
 * the block list to stay still while it works on it.  The writer functions
 * below take it themselves: do not call them while holding it.
 */
void ram_list_lock(RAMList *rl);
void ram_list_unlock(RAMList *rl);

/*
 * Add a block of @used_length bytes that may grow to @max_length bytes
 * (equal unless RAM_RESIZEABLE) named @idstr.  A free range of ram_addr
 * space is chosen (the smallest gap that fits, so freed ranges are reused),
 * starting on a RAM_BLOCK_ALIGN boundary below RAM_ADDR_MAX; the dirty
 * bitmaps are extended under RCU to cover max_length and the used range is
 * marked dirty for every client before the block becomes visible; then
 * ram_block_added notifiers run.
 *
 * @host: the block's host memory, or NULL.  With RAM_OWN_HOST (and host
 * NULL) the RAMList reserves max_length bytes of anonymous memory itself
 * (MAP_NORESERVE) and releases them once the block is removed and no
 * reader can hold it any more.
 *
 * Returns 0 and the block in *@out (if @out is not NULL), or: -EINVAL
 * (idstr NULL, zero or not page-aligned sizes, used > max, used != max
 * without RAM_RESIZEABLE, unknown flags, RAM_OWN_HOST with a host
 * pointer), -ENAMETOOLONG (idstr empty or not shorter than
 * RAM_BLOCK_IDSTR_SIZE), -EEXIST (idstr already used), -ENOSPC (no free
 * range of ram_addr space is big enough), -ENOMEM (host memory or dirty
 * bitmaps).  On error nothing has changed.  Takes the RAMList mutex.
 */
int ram_block_add(RAMList *rl, const char *idstr, ram_addr_t used_length,
                  ram_addr_t max_length, void *host, uint32_t flags,
                  void (*resized)(const char *, uint64_t, void *),
                  RAMBlock **out);

/*
 * Remove @block: ram_block_removed notifiers run, the block leaves the list
 * (new lookups no longer find it), and it is freed once every reader that
 * may still hold it has left its read-side critical section, with its
 * migration bitmaps and (RAM_OWN_HOST) its memory.  Its ram_addr range may
 * be reused by a later add at once; its dirty bits are left as they are.
 * Takes the RAMList mutex.
 */
void ram_block_remove(RAMList *rl, RAMBlock *block);

/*
 * Change @block's used_length to @new_length (page-aligned, non-zero).  The
 * block must be RAM_RESIZEABLE, or new_length must equal used_length.  The
 * newly used range (if any) is marked dirty for every client, then the
 * block's resized callback and the ram_block_resized notifiers run
 * (neither runs when new_length equals used_length).  Readers may see
 * either length until this returns.  Returns 0, -EINVAL (not resizeable,
 * zero or unaligned) or -ENOSPC (beyond max_length); nothing changes on
 * error.  Takes the RAMList mutex.
 */
int ram_block_resize(RAMList *rl, RAMBlock *block, ram_addr_t new_length);

/*
 * The block containing @addr (within its used_length), or NULL; *@offset
 * (if non-NULL) receives addr - block->offset.  Updates the MRU block.
 * Inside rcu_read_lock().
 */
RAMBlock *ram_block_from_addr(RAMList *rl, ram_addr_t addr,
                              ram_addr_t *offset);

/*
 * The block whose host memory contains @ptr (within used_length), or NULL;
 * *@offset (if non-NULL) receives the offset into the block.  Tries the
 * MRU block first but does not update it.  Inside rcu_read_lock().
 */
RAMBlock *ram_block_from_host(RAMList *rl, const void *ptr,
                              ram_addr_t *offset);

/* The block named @idstr, or NULL.  Inside rcu_read_lock(). */
RAMBlock *ram_block_by_name(RAMList *rl, const char *idstr);

/*
 * One past the highest ram_addr reserved by any block (0 when empty).
 * Inside rcu_read_lock() or with the mutex held.
 */
ram_addr_t ram_list_last_offset(RAMList *rl);

/*
 * Register @n; ram_block_added is called at once for every existing block
 * (biggest first) and then for every new block.  Takes the RAMList mutex.
 */
void ram_block_notifier_add(RAMList *rl, RAMBlockNotifier *n);

/* Unregister @n.  No callback runs for it afterwards.  Takes the mutex. */
void ram_block_notifier_remove(RAMList *rl, RAMBlockNotifier *n);

/*
 * Allocate @block's bmap, receivedmap and clear_bmap (one bit per
 * 2^@clear_bmap_shift pages) for max_length, bmap all set (everything is
 * to be sent), the others clear; set postcopy_length to used_length.
 * Bitmaps allocated earlier are replaced.  Returns 0, -EINVAL
 * (clear_bmap_shift >= 64) or -ENOMEM (the block is then unchanged).
 * Owned by the migration thread; freed with
 * ram_block_free_migration_bitmaps() (which also NULLs the pointers) or
 * with the block.
 */
int ram_block_alloc_migration_bitmaps(RAMBlock *block,
                                      uint8_t clear_bmap_shift);
void ram_block_free_migration_bitmaps(RAMBlock *block);

/*
 * The block's used_length, safe against a concurrent resize: a reader sees
 * either the old or the new length, and, for a grown block, the new range
 * already marked dirty.
 */
static inline ram_addr_t ram_block_used_length(const RAMBlock *block)
{
    return __atomic_load_n(&block->used_length, __ATOMIC_ACQUIRE);
}

/* Pages in the block's used / max length. */
static inline uint64_t ram_block_used_pages(const RAMBlock *block)
{
    return ram_block_used_length(block) >> XR_PAGE_BITS;
}

static inline uint64_t ram_block_max_pages(const RAMBlock *block)
{
    return block->max_length >> XR_PAGE_BITS;
}

#endif /* XENRAM_MEMORY_RAMBLOCK_H */
