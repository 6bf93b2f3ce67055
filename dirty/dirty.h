/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dirty.h - per-client dirty page bitmaps that grow under RCU.
 *
 * Every page of ram_addr space has one dirty bit per client:
 *
 *   DIRTY_MEMORY_VGA        the framebuffer (a display redraws what changed)
 *   DIRTY_MEMORY_CODE       translated code (kept for interface parity; a Xen
 *                           device model never translates guest code)
 *   DIRTY_MEMORY_MIGRATION  pages still to be sent by a RAM migration
 *
 * A client's bitmap is split into fixed blocks of DIRTY_MEMORY_BLOCK_PAGES
 * bits, reached through an array of block pointers (DirtyMemoryBlocks).
 * When RAM grows, a writer publishes a longer array that reuses every
 * existing block and frees the old array after a grace period, so readers
 * and setters never wait:
 *
 *     rcu_read_lock();
 *     DirtyMemoryBlocks *b = rcu_dereference(dm->clients[DIRTY_MEMORY_VGA]);
 *     unsigned long *bits = rcu_dereference(b->blocks[page / DIRTY_MEMORY_BLOCK_PAGES]);
 *     ... test or atomically set bit (page % DIRTY_MEMORY_BLOCK_PAGES) ...
 *     rcu_read_unlock();
 *
 * The functions below do exactly that, split ranges at block boundaries and
 * use whole-word operations where they can.  Bitmaps never shrink.
 *
 * Concurrency contract:
 *  - Readers and setters (get, all, set_*, test_and_clear, sync) may run on
 *    any thread registered with RCU (rcu_register_thread()); they take no
 *    lock.  They must NOT be called inside a read-side critical section
 *    when they may wait for a grace period: only dirty_memory_sync() can,
 *    and says so.
 *  - Setting uses atomic OR, clearing uses atomic exchange/AND: a bit set
 *    concurrently with a test-and-clear or a sync is either reported by it
 *    or left set, never lost.
 *  - Growth and whole-block swaps are writer operations serialised by the
 *    DirtyMemory's own mutex; callers need no lock of their own.
 *
 * Errors: functions return -EINVAL for a client number or mask that names
 * no client, and -ERANGE for a page range that is not inside the pages
 * the bitmaps currently cover (see dirty_memory_pages()).  A zero-length
 * range is valid and touches nothing.
 */
#ifndef XENRAM_DIRTY_H
#define XENRAM_DIRTY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"

#define DIRTY_MEMORY_VGA        0
#define DIRTY_MEMORY_CODE       1
#define DIRTY_MEMORY_MIGRATION  2
#define DIRTY_MEMORY_NUM        3

#define DIRTY_CLIENT_MASK(c)    (1u << (c))
#define DIRTY_CLIENTS_ALL       ((1u << DIRTY_MEMORY_NUM) - 1)
#define DIRTY_CLIENTS_NOCODE    (DIRTY_CLIENTS_ALL & \
                                 ~DIRTY_CLIENT_MASK(DIRTY_MEMORY_CODE))

/* Pages per block: 2^21 pages, 8 GiB of 4 KiB pages, 256 KiB of bitmap. */
#define DIRTY_MEMORY_BLOCK_SHIFT 21
#define DIRTY_MEMORY_BLOCK_PAGES ((uint64_t)1 << DIRTY_MEMORY_BLOCK_SHIFT)
#define DIRTY_MEMORY_BLOCK_LONGS (DIRTY_MEMORY_BLOCK_PAGES / BITS_PER_LONG)

/*
 * One client's array of block pointers.  RCU-protected: read it with
 * rcu_dereference().  It has room for @capacity blocks; growth within that
 * room fills empty slots and then raises @npages (release), growth beyond it
 * publishes a new, larger array.  A block pointer may also be swapped for an
 * equivalent block by dirty_memory_sync().  Readers therefore load @npages
 * with acquire before using slots, and rcu_dereference() each block pointer.
 */
typedef struct DirtyMemoryBlocks {
    struct rcu_head rcu;
    uint64_t npages;        /* atomic: pages covered, [0, npages) is valid */
    uint64_t capacity;      /* slots in blocks[] */
    unsigned long *blocks[];
} DirtyMemoryBlocks;

/*
 * The dirty bitmaps of one ram_addr space (one RAMList).  Embed it and
 * initialise it with dirty_memory_init().
 */
typedef struct DirtyMemory {
    /* RCU-protected; replaced under @lock. */
    DirtyMemoryBlocks *clients[DIRTY_MEMORY_NUM];
    /* Serialises growth and block swaps; readers never take it. */
    pthread_mutex_t lock;
    /*
     * Zeroed blocks ready to be swapped into the MIGRATION bitmap by
     * dirty_memory_sync(); protected by @lock.
     */
    unsigned long **spares;
    unsigned int nspares;
} DirtyMemory;

/*
 * Initialise @dm covering zero pages.  Returns 0, or -errno.
 */
int dirty_memory_init(DirtyMemory *dm);

/*
 * Free every bitmap.  No other thread may use @dm any more; pending RCU
 * callbacks are waited for.
 */
void dirty_memory_destroy(DirtyMemory *dm);

/*
 * Make the bitmaps cover at least @npages pages (new pages start clean).
 * Existing blocks are reused; the old arrays are freed after a grace
 * period.  Never shrinks: a smaller @npages is a no-op.  Takes dm->lock;
 * safe against concurrent readers and setters.  Returns 0 or -ENOMEM (the
 * bitmaps are then unchanged).
 */
int dirty_memory_grow(DirtyMemory *dm, uint64_t npages);

/* Pages currently covered.  Any thread; a snapshot. */
uint64_t dirty_memory_pages(DirtyMemory *dm);

/*
 * 1 if any page in [page, page + npages) is dirty for @client, 0 if none
 * is (or npages is 0), -EINVAL / -ERANGE on bad arguments.  Lock-free.
 */
int dirty_memory_get(DirtyMemory *dm, uint64_t page, uint64_t npages,
                     unsigned int client);

/*
 * 1 if every page in [page, page + npages) is dirty for @client (also for
 * npages == 0), 0 if not, -EINVAL / -ERANGE on bad arguments.  Lock-free.
 */
int dirty_memory_all(DirtyMemory *dm, uint64_t page, uint64_t npages,
                     unsigned int client);

/* Mark one page dirty for @client.  Lock-free.  0, -EINVAL or -ERANGE. */
int dirty_memory_set_page(DirtyMemory *dm, uint64_t page,
                          unsigned int client);

/*
 * Mark [page, page + npages) dirty for every client in @mask (a
 * combination of DIRTY_CLIENT_MASK()).  Lock-free.  0, -EINVAL or -ERANGE.
 */
int dirty_memory_set_range(DirtyMemory *dm, uint64_t page, uint64_t npages,
                           unsigned int mask);

/*
 * Mark dirty, for every client in @mask, each page page + i for which bit i
 * of the little-endian bitmap @bitmap (as returned by Xen's log-dirty and
 * track_dirty_vram) is set, for i in [0, npages).  Bits of @bitmap past
 * npages are ignored.  When @page is a multiple of BITS_PER_LONG whole
 * words are OR-ed in at once.  Lock-free.  0, -EINVAL or -ERANGE.
 */
int dirty_memory_set_lebitmap(DirtyMemory *dm, const unsigned long *bitmap,
                              uint64_t page, uint64_t npages,
                              unsigned int mask);

/*
 * Clear [page, page + npages) for @client.  Returns 1 if any of those pages
 * was dirty, 0 if none was, -EINVAL / -ERANGE on bad arguments.  A bit set
 * concurrently is either reported here or stays set.  Lock-free.
 */
int dirty_memory_test_and_clear(DirtyMemory *dm, uint64_t page,
                                uint64_t npages, unsigned int client);

/*
 * Move the MIGRATION bits of [page, page + npages) into @dest, a plain
 * (caller-owned, not shared) bitmap whose bit @dest_start corresponds to
 * @page: each dirty source bit is cleared and OR-ed into @dest.  Returns the
 * number of pages that became dirty in @dest (set in the source and not
 * already set in @dest), or -EINVAL / -ERANGE.
 *
 * Fast paths: when page and dest_start are equally aligned within a word,
 * words are exchanged with zero atomically; whole blocks inside the range
 * are swapped for zeroed spares and folded in after a grace period, with
 * no atomic operation per word at all.  May therefore wait for a grace
 * period: do not call inside an RCU read-side critical section.  At most
 * one sync may run on a given range at a time (migration has one sender).
 */
int64_t dirty_memory_sync(DirtyMemory *dm, unsigned long *dest,
                          uint64_t dest_start, uint64_t page,
                          uint64_t npages);

#endif /* XENRAM_DIRTY_H */
