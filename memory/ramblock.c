/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ramblock.c - the RAMList: RAM blocks in ram_addr space, their lookups and
 * their notifiers.  The contract is in ramblock.h, the concepts in
 * docs/memory.md.
 *
 * Publication: readers follow the list links and the MRU pointer with
 * rcu_dereference(), which util.h makes visible to ThreadSanitizer.  The
 * list is changed with our own copies of cds_list_add_rcu() and
 * cds_list_del_rcu() whose publishing store is a C11 release store:
 * liburcu's del uses CMM_STORE_SHARED(), a volatile store util.h cannot
 * redirect, and its add picks up util.h's rcu_assign_pointer() only when
 * <urcu/rculist.h> happens to be included after util.h.  TSan reports
 * either as racing with every reader; on x86 all of them compile to the
 * same plain store.  used_length and version, plain integers that change
 * under readers, use C11 atomics for the same reason.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memory/ramblock.h"

#define RAM_FLAGS_KNOWN (RAM_RESIZEABLE | RAM_HOTPLUGGED | RAM_OWN_HOST | \
                         RAM_READONLY | RAM_XEN_POPULATE)

/*
 * What the RAMList keeps about a block beyond the public RAMBlock; every
 * RAMBlock is allocated as one of these.
 */
typedef struct RAMBlockPriv {
    RAMBlock block;             /* first: RAMBlock * converts to this */
    RAMList *rl;
    /*
     * Set (under the mutex) once the block has left the list.  A reader
     * may still publish the block as MRU just after its removal; lookups
     * that meet it there must not return it.
     */
    bool removed;
    /* The second grace period of the release; see ram_block_remove(). */
    struct rcu_head free_rcu;
} RAMBlockPriv;

static inline RAMBlockPriv *ram_block_priv(RAMBlock *block)
{
    return caa_container_of(block, RAMBlockPriv, block);
}

static inline bool ram_block_is_removed(RAMBlock *block)
{
    return __atomic_load_n(&ram_block_priv(block)->removed,
                           __ATOMIC_ACQUIRE);
}

/* ---- list publication ------------------------------------------------- */

/*
 * Same algorithm as cds_list_add_rcu(): the new entry is complete before
 * the one store that makes it reachable.  prev pointers are followed only
 * by writers, under the mutex, so they need no ordering.
 */
static void ram_list_link_after(struct cds_list_head *entry,
                                struct cds_list_head *prev)
{
    entry->next = prev->next;
    entry->prev = prev;
    prev->next->prev = entry;
    __atomic_store_n(&prev->next, entry, __ATOMIC_RELEASE);
}

/*
 * Same as cds_list_del_rcu(): @entry keeps its next pointer so that a
 * reader standing on it can walk on.  Release, because a reader that
 * arrives through this store goes on to read the successor's fields,
 * published by whichever writer linked it.
 */
static void ram_list_unlink(struct cds_list_head *entry)
{
    entry->next->prev = entry->prev;
    __atomic_store_n(&entry->prev->next, entry->next, __ATOMIC_RELEASE);
}

/* ---- life cycle ------------------------------------------------------ */

int ram_list_init(RAMList *rl)
{
    pthread_mutexattr_t attr;
    int ret;

    memset(rl, 0, sizeof(*rl));
    ret = dirty_memory_init(&rl->dirty);
    if (ret < 0) {
        return ret;
    }
    /*
     * Error-checking, so that a notifier calling back into a writer of the
     * same RAMList aborts with a message instead of hanging.
     */
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    ret = pthread_mutex_init(&rl->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    if (ret) {
        dirty_memory_destroy(&rl->dirty);
        return -ret;
    }
    CDS_INIT_LIST_HEAD(&rl->blocks);
    CDS_INIT_LIST_HEAD(&rl->notifiers);
    return 0;
}

void ram_list_destroy(RAMList *rl)
{
    while (!cds_list_empty(&rl->blocks)) {
        ram_block_remove(rl, cds_list_first_entry(&rl->blocks, RAMBlock,
                                                  next));
    }
    /*
     * A removed block is released by a chain of two callbacks (the first
     * queues the second), so one barrier can return before the second has
     * run: the first barrier flushes every first step, the second barrier
     * every free.
     */
    rcu_barrier();
    rcu_barrier();
    dirty_memory_destroy(&rl->dirty);
    pthread_mutex_destroy(&rl->mutex);
}

void ram_list_lock(RAMList *rl)
{
    int err = pthread_mutex_lock(&rl->mutex);

    if (err) {
        fprintf(stderr, "xenram: cannot take the RAMList mutex: %s "
                "(a RAMBlock notifier must not add, remove or resize "
                "blocks)\n", strerror(err));
        abort();
    }
}

void ram_list_unlock(RAMList *rl)
{
    pthread_mutex_unlock(&rl->mutex);
}

/*
 * Mutex held.  Release: a reader that sees the new version (acquire) also
 * sees the list change it stands for.
 */
static void ram_list_bump_version(RAMList *rl)
{
    __atomic_store_n(&rl->version, rl->version + 1, __ATOMIC_RELEASE);
}

/* ---- add ------------------------------------------------------------- */

/*
 * End of the free range of ram_addr space that starts at @start: the
 * nearest block offset at or above it.  Mutex held.
 */
static ram_addr_t ram_list_gap_end(RAMList *rl, ram_addr_t start)
{
    ram_addr_t end = RAM_ADDR_MAX;
    RAMBlock *b;

    RAMBLOCK_FOREACH(rl, b) {
        if (b->offset >= start && b->offset < end) {
            end = b->offset;
        }
    }
    return end;
}

/*
 * Smallest free range of ram_addr space that holds @size bytes, or
 * RAM_ADDR_INVALID.  Free ranges start at 0 or at the aligned end of a
 * block; as every block starts aligned, such a start can never fall inside
 * another block.  Smallest rather than first fit keeps big holes for big
 * blocks when DIMMs come and go; ties go to the lowest address so layouts
 * are reproducible.  Quadratic in the number of blocks, which is tens at
 * most, and only on add.  Mutex held.
 */
static ram_addr_t ram_list_find_offset(RAMList *rl, ram_addr_t size)
{
    ram_addr_t best = RAM_ADDR_INVALID, best_gap = 0;
    ram_addr_t start = 0;
    RAMBlock *b = NULL;

    for (;;) {
        ram_addr_t end = ram_list_gap_end(rl, start);

        if (start < end && end - start >= size &&
            (best == RAM_ADDR_INVALID || end - start < best_gap ||
             (end - start == best_gap && start < best))) {
            best = start;
            best_gap = end - start;
        }
        /* Next candidate: the end of the next block in list order. */
        b = cds_list_entry(b ? b->next.next : rl->blocks.next, RAMBlock,
                           next);
        if (&b->next == &rl->blocks) {
            return best;
        }
        start = ROUND_UP(b->offset + b->max_length, RAM_BLOCK_ALIGN);
    }
}

/* Biggest max_length first; equal sizes keep the order they came in. */
static void ram_list_insert_sorted(RAMList *rl, RAMBlock *block)
{
    struct cds_list_head *prev = rl->blocks.prev;
    RAMBlock *b;

    RAMBLOCK_FOREACH(rl, b) {
        if (b->max_length < block->max_length) {
            prev = b->next.prev;
            break;
        }
    }
    ram_list_link_after(&block->next, prev);
}

static RAMBlock *ram_list_find_name(RAMList *rl, const char *idstr)
{
    RAMBlock *b;

    RAMBLOCK_FOREACH(rl, b) {
        if (strcmp(b->idstr, idstr) == 0) {
            return b;
        }
    }
    return NULL;
}

static int ram_block_check_args(const char *idstr, ram_addr_t used_length,
                                ram_addr_t max_length, void *host,
                                uint32_t flags)
{
    size_t len;

    if (!idstr || (flags & ~RAM_FLAGS_KNOWN)) {
        return -EINVAL;
    }
    if (used_length == 0 || max_length == 0 ||
        (used_length | max_length) & ~XR_PAGE_MASK ||
        used_length > max_length) {
        return -EINVAL;
    }
    if (!(flags & RAM_RESIZEABLE) && used_length != max_length) {
        return -EINVAL;
    }
    if ((flags & RAM_OWN_HOST) && host) {
        return -EINVAL;
    }
    len = strnlen(idstr, RAM_BLOCK_IDSTR_SIZE);
    if (len == 0 || len == RAM_BLOCK_IDSTR_SIZE) {
        return -ENAMETOOLONG;
    }
    return 0;
}

int ram_block_add(RAMList *rl, const char *idstr, ram_addr_t used_length,
                  ram_addr_t max_length, void *host, uint32_t flags,
                  void (*resized)(const char *, uint64_t, void *),
                  RAMBlock **out)
{
    RAMBlockNotifier *n;
    RAMBlockPriv *priv;
    RAMBlock *block;
    ram_addr_t offset;
    int ret;

    ret = ram_block_check_args(idstr, used_length, max_length, host, flags);
    if (ret < 0) {
        return ret;
    }
    if (max_length > RAM_ADDR_MAX) {
        return -ENOSPC;         /* not -ENOMEM from the mmap below */
    }
    /*
     * Allocate and map before taking the mutex: readers never wait for it,
     * but other writers and notifier registrations do.
     */
    priv = calloc(1, sizeof(*priv));
    if (!priv) {
        return -ENOMEM;
    }
    block = &priv->block;
    priv->rl = rl;
    if (flags & RAM_OWN_HOST) {
        /*
         * NORESERVE: a guest's RAM is mostly never touched by the device
         * model, so it must not count against overcommit up front.
         */
        host = mmap(NULL, max_length, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (host == MAP_FAILED) {
            free(priv);
            return -ENOMEM;
        }
    }
    block->host = host;
    block->used_length = used_length;
    block->max_length = max_length;
    block->resized = resized;
    block->flags = flags;
    block->page_size = XR_PAGE_SIZE;
    strcpy(block->idstr, idstr);

    ram_list_lock(rl);
    if (ram_list_find_name(rl, idstr)) {
        ret = -EEXIST;
        goto fail;
    }
    offset = ram_list_find_offset(rl, max_length);
    if (offset == RAM_ADDR_INVALID) {
        ret = -ENOSPC;
        goto fail;
    }
    /* The whole reservation, so that a later resize never has to grow. */
    ret = dirty_memory_grow(&rl->dirty, (offset + max_length) >> XR_PAGE_BITS);
    if (ret < 0) {
        goto fail;
    }
    block->offset = offset;
    /*
     * Dirty before visible: whoever finds the block (migration, a display)
     * must treat all of it as not yet seen.  Cannot fail once the bitmaps
     * cover the range.
     */
    ret = dirty_memory_set_range(&rl->dirty, offset >> XR_PAGE_BITS,
                                 used_length >> XR_PAGE_BITS,
                                 DIRTY_CLIENTS_ALL);
    assert(ret == 0);
    ram_list_insert_sorted(rl, block);
    ram_list_bump_version(rl);
    cds_list_for_each_entry(n, &rl->notifiers, next) {
        if (n->ram_block_added) {
            n->ram_block_added(n, block);
        }
    }
    ram_list_unlock(rl);
    if (out) {
        *out = block;
    }
    return 0;

fail:
    ram_list_unlock(rl);
    if (flags & RAM_OWN_HOST) {
        munmap(host, max_length);
    }
    free(priv);
    return ret;
}

/* ---- remove ---------------------------------------------------------- */

/* Second grace period over: nobody can hold the block any more. */
static void ram_block_free_rcu(struct rcu_head *head)
{
    RAMBlockPriv *priv = caa_container_of(head, RAMBlockPriv, free_rcu);
    RAMBlock *block = &priv->block;

    rcu_reclaim_begin();
    ram_block_free_migration_bitmaps(block);
    if (block->flags & RAM_OWN_HOST) {
        munmap(block->host, block->max_length);
    }
    free(priv);
}

/*
 * First grace period over: every reader that found the block in the list,
 * and so might have stored it as MRU after ram_block_remove() cleared it,
 * has finished.  Clear such a late store; no new one can happen, since
 * the list no longer leads to the block and an MRU hit never stores.
 * Readers that loaded the late value before we cleared it may still be
 * using the block, so it is freed only after a second grace period.
 */
static void ram_block_forget_rcu(struct rcu_head *head)
{
    RAMBlockPriv *priv = caa_container_of(head, RAMBlockPriv, block.rcu);
    RAMBlock *expected = &priv->block;

    rcu_reclaim_begin();
    __atomic_compare_exchange_n(&priv->rl->mru_block, &expected, NULL, false,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    call_rcu(&priv->free_rcu, ram_block_free_rcu);
}

void ram_block_remove(RAMList *rl, RAMBlock *block)
{
    RAMBlockPriv *priv = ram_block_priv(block);
    RAMBlock *expected = block;
    RAMBlockNotifier *n;

    ram_list_lock(rl);
    assert(!priv->removed && priv->rl == rl);
    cds_list_for_each_entry(n, &rl->notifiers, next) {
        if (n->ram_block_removed) {
            n->ram_block_removed(n, block);
        }
    }
    ram_list_unlink(&block->next);
    __atomic_store_n(&priv->removed, true, __ATOMIC_RELEASE);
    __atomic_compare_exchange_n(&rl->mru_block, &expected, NULL, false,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    ram_list_bump_version(rl);
    ram_list_unlock(rl);
    call_rcu(&block->rcu, ram_block_forget_rcu);
}

/* ---- resize ---------------------------------------------------------- */

int ram_block_resize(RAMList *rl, RAMBlock *block, ram_addr_t new_length)
{
    ram_addr_t old_length;
    RAMBlockNotifier *n;
    int ret;

    if (new_length == 0 || (new_length & ~XR_PAGE_MASK)) {
        return -EINVAL;
    }
    ram_list_lock(rl);
    old_length = block->used_length;
    if (new_length == old_length) {
        ram_list_unlock(rl);
        return 0;
    }
    if (!(block->flags & RAM_RESIZEABLE)) {
        ram_list_unlock(rl);
        return -EINVAL;
    }
    if (new_length > block->max_length) {
        ram_list_unlock(rl);
        return -ENOSPC;
    }
    if (new_length > old_length) {
        /* Dirty before the length that makes the pages reachable. */
        ret = dirty_memory_set_range(&rl->dirty,
                                     (block->offset + old_length) >>
                                     XR_PAGE_BITS,
                                     (new_length - old_length) >>
                                     XR_PAGE_BITS, DIRTY_CLIENTS_ALL);
        assert(ret == 0);
        (void)ret;
    }
    __atomic_store_n(&block->used_length, new_length, __ATOMIC_RELEASE);
    if (block->resized) {
        block->resized(block->idstr, new_length, block->host);
    }
    cds_list_for_each_entry(n, &rl->notifiers, next) {
        if (n->ram_block_resized) {
            n->ram_block_resized(n, block, old_length);
        }
    }
    ram_list_unlock(rl);
    return 0;
}

/* ---- lookups --------------------------------------------------------- */

static inline bool ram_block_has_addr(RAMBlock *block, ram_addr_t addr)
{
    /* Unsigned: an addr below the block wraps to a huge difference. */
    return addr - block->offset < ram_block_used_length(block);
}

static inline bool ram_block_has_host(RAMBlock *block, const void *ptr)
{
    return block->host &&
           (uintptr_t)ptr - (uintptr_t)block->host <
           ram_block_used_length(block);
}

/* The MRU block, unless it has been removed meanwhile. */
static inline RAMBlock *ram_list_mru(RAMList *rl)
{
    RAMBlock *block = rcu_dereference(rl->mru_block);

    return block && !ram_block_is_removed(block) ? block : NULL;
}

RAMBlock *ram_block_from_addr(RAMList *rl, ram_addr_t addr,
                              ram_addr_t *offset)
{
    RAMBlock *block = ram_list_mru(rl);

    if (block && ram_block_has_addr(block, addr)) {
        goto found;     /* never store on a hit: see ram_block_forget_rcu */
    }
    RAMBLOCK_FOREACH(rl, block) {
        if (ram_block_has_addr(block, addr)) {
            /*
             * Readers race to store here; any of their blocks is a fine
             * MRU.  A block removed meanwhile is dealt with by the removal
             * (ram_block_forget_rcu).
             */
            rcu_assign_pointer(rl->mru_block, block);
            goto found;
        }
    }
    return NULL;

found:
    if (offset) {
        *offset = addr - block->offset;
    }
    return block;
}

RAMBlock *ram_block_from_host(RAMList *rl, const void *ptr,
                              ram_addr_t *offset)
{
    RAMBlock *block = ram_list_mru(rl);

    if (block && ram_block_has_host(block, ptr)) {
        goto found;
    }
    RAMBLOCK_FOREACH(rl, block) {
        if (ram_block_has_host(block, ptr)) {
            goto found;
        }
    }
    return NULL;

found:
    if (offset) {
        *offset = (uintptr_t)ptr - (uintptr_t)block->host;
    }
    return block;
}

RAMBlock *ram_block_by_name(RAMList *rl, const char *idstr)
{
    return ram_list_find_name(rl, idstr);
}

ram_addr_t ram_list_last_offset(RAMList *rl)
{
    ram_addr_t last = 0;
    RAMBlock *block;

    RAMBLOCK_FOREACH(rl, block) {
        last = MAX(last, block->offset + block->max_length);
    }
    return last;
}

/* ---- notifiers ------------------------------------------------------- */

void ram_block_notifier_add(RAMList *rl, RAMBlockNotifier *n)
{
    RAMBlock *block;

    ram_list_lock(rl);
    if (n->ram_block_added) {
        RAMBLOCK_FOREACH(rl, block) {
            n->ram_block_added(n, block);
        }
    }
    cds_list_add_tail(&n->next, &rl->notifiers);
    ram_list_unlock(rl);
}

void ram_block_notifier_remove(RAMList *rl, RAMBlockNotifier *n)
{
    ram_list_lock(rl);
    cds_list_del(&n->next);
    ram_list_unlock(rl);
}

/* ---- migration bitmaps ----------------------------------------------- */

int ram_block_alloc_migration_bitmaps(RAMBlock *block,
                                      uint8_t clear_bmap_shift)
{
    uint64_t pages = ram_block_max_pages(block);
    unsigned long *receivedmap, *clear_bmap;
    DirtyBitmap *bmap;

    if (clear_bmap_shift >= 64) {
        return -EINVAL;
    }
    bmap = malloc(sizeof(*bmap));
    if (bmap && dirty_bitmap_init(bmap, block->offset >> XR_PAGE_BITS,
                                  pages)) {
        free(bmap);
        bmap = NULL;
    }
    receivedmap = xr_bitmap_new(pages);
    clear_bmap = xr_bitmap_new(DIV_ROUND_UP(pages, (uint64_t)1 << clear_bmap_shift));
    if (!bmap || !receivedmap || !clear_bmap) {
        if (bmap) {
            dirty_bitmap_destroy(bmap);
            free(bmap);
        }
        free(receivedmap);
        free(clear_bmap);
        return -ENOMEM;
    }
    dirty_bitmap_set_range(bmap, 0, pages);
    ram_block_free_migration_bitmaps(block);
    block->bmap = bmap;
    block->receivedmap = receivedmap;
    block->clear_bmap = clear_bmap;
    block->clear_bmap_shift = clear_bmap_shift;
    block->postcopy_length = ram_block_used_length(block);
    return 0;
}

void ram_block_free_migration_bitmaps(RAMBlock *block)
{
    if (block->bmap) {
        dirty_bitmap_destroy(block->bmap);
        free(block->bmap);
    }
    free(block->receivedmap);
    free(block->clear_bmap);
    block->bmap = NULL;
    block->receivedmap = NULL;
    block->clear_bmap = NULL;
}
