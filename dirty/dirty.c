/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dirty.c - per-client dirty page bitmaps that grow under RCU.
 *
 * See dirty.h for the contract and docs/dirty.md for the design.  Two
 * details matter for correctness:
 *
 *  - Every word that another thread may modify is read with an atomic load
 *    and modified with an atomic read-modify-write, so that no concurrently
 *    set bit is lost and ThreadSanitizer can check us.
 *  - dirty_memory_sync() may replace a whole block of the MIGRATION bitmap
 *    by a zeroed spare.  Readers therefore load each block pointer with
 *    rcu_dereference() inside their read-side section, never cache it across
 *    sections, and the swapped-out block is folded into the destination only
 *    after a grace period, when no setter can still be writing into it.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dirty/bitmap.h"
#include "dirty/dirty.h"
#include "dirty/internal.h"

#define BLOCK_MASK (DIRTY_MEMORY_BLOCK_PAGES - 1)

/*
 * How many whole blocks dirty_memory_sync() swaps out before waiting for
 * one grace period: bounds the spare memory (8 x 256 KiB) while keeping
 * grace periods rare (a 1 TiB guest needs 16).
 */
#define SYNC_SWAP_BATCH 8

/* ---- word access ------------------------------------------------------- */

static inline unsigned long word_load(const unsigned long *w)
{
    return __atomic_load_n(w, __ATOMIC_RELAXED);
}

/*
 * Set @bits in *@w.  The plain load first avoids a locked instruction (and
 * a cache line write) when the page is already dirty, the common case for
 * pages written over and over.  Release: whoever sees the bit also sees the
 * data written before it was set.
 */
static inline void word_or(unsigned long *w, unsigned long bits)
{
    if ((word_load(w) & bits) != bits) {
        __atomic_fetch_or(w, bits, __ATOMIC_RELEASE);
    }
}

/* Clear @mask in *@w and return which of those bits were set. */
static inline unsigned long word_take(unsigned long *w, unsigned long mask)
{
    if (!(word_load(w) & mask)) {
        return 0;
    }
    if (mask == ~0UL) {
        return __atomic_exchange_n(w, 0, __ATOMIC_ACQUIRE);
    }
    return __atomic_fetch_and(w, ~mask, __ATOMIC_ACQUIRE) & mask;
}


/*
 * Iterates over the words that hold the bits of [page, end) in one client's
 * blocks, giving for each the word, the mask of bits inside the range and
 * the page of the first of them.  The block pointer is loaded once per
 * block.  Must be used inside one RCU read-side critical section.
 */
typedef struct WordIter {
    DirtyMemoryBlocks *b;
    uint64_t page;          /* next page to visit */
    uint64_t end;
    unsigned long *block;   /* block holding @page, NULL before the first */
    uint64_t block_end;     /* first page past @block */
} WordIter;

static inline void word_iter_init(WordIter *it, DirtyMemoryBlocks *b,
                                  uint64_t page, uint64_t npages)
{
    it->b = b;
    it->page = page;
    it->end = page + npages;
    it->block = NULL;
    it->block_end = page;
}

static inline bool word_iter_next(WordIter *it, unsigned long **w,
                                  unsigned long *mask, uint64_t *first,
                                  unsigned int *nbits)
{
    uint64_t p = it->page;
    unsigned int s, n;

    if (p >= it->end) {
        return false;
    }
    if (p >= it->block_end) {
        uint64_t idx = p >> DIRTY_MEMORY_BLOCK_SHIFT;

        it->block = rcu_dereference(it->b->blocks[idx]);
        it->block_end = (idx + 1) << DIRTY_MEMORY_BLOCK_SHIFT;
    }
    s = p % BITS_PER_LONG;
    n = MIN(BITS_PER_LONG - s, it->end - p);
    *w = it->block + BIT_WORD(p & BLOCK_MASK);
    *mask = word_mask(s, n);
    *first = p;
    *nbits = n;
    it->page = p + n;
    return true;
}

/* ---- argument checks ------------------------------------------------- */

static inline int check_range(DirtyMemoryBlocks *b, uint64_t page,
                              uint64_t npages)
{
    /* Acquire: pairs with the release store of in-place growth. */
    uint64_t limit = __atomic_load_n(&b->npages, __ATOMIC_ACQUIRE);

    if (page > limit || npages > limit - page) {
        return -ERANGE;
    }
    return 0;
}

static inline int check_client(unsigned int client)
{
    return client < DIRTY_MEMORY_NUM ? 0 : -EINVAL;
}

static inline int check_mask(unsigned int mask)
{
    return (mask & ~DIRTY_CLIENTS_ALL) ? -EINVAL : 0;
}

/* ---- life cycle ------------------------------------------------------ */

/*
 * Blocks come straight from mmap: the kernel hands out zero pages lazily,
 * so a block costs nothing until bits are set in it, and growth never pays
 * for zeroing 256 KiB (malloc may recycle heap memory and memset it, which
 * on this kind of machine means page faults on the grower's path).
 */
unsigned long *dirty_block_alloc(void)
{
    void *p = mmap(NULL, DIRTY_MEMORY_BLOCK_PAGES / CHAR_BIT,
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

void dirty_block_free(unsigned long *block)
{
    if (block) {
        munmap(block, DIRTY_MEMORY_BLOCK_PAGES / CHAR_BIT);
    }
}

/* An array of @capacity block slots covering @npages pages (slots zero). */
static DirtyMemoryBlocks *blocks_alloc(uint64_t npages, uint64_t capacity)
{
    DirtyMemoryBlocks *b;

    b = calloc(1, sizeof(*b) + capacity * sizeof(b->blocks[0]));
    if (b) {
        b->npages = npages;
        b->capacity = capacity;
    }
    return b;
}

static void blocks_free_rcu(struct rcu_head *head)
{
    DirtyMemoryBlocks *b = caa_container_of(head, DirtyMemoryBlocks, rcu);

    rcu_reclaim_begin();
    free(b);
}

int dirty_memory_init(DirtyMemory *dm)
{
    memset(dm, 0, sizeof(*dm));
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        dm->clients[c] = blocks_alloc(0, 0);
        if (!dm->clients[c]) {
            while (c-- > 0) {
                free(dm->clients[c]);
            }
            return -ENOMEM;
        }
    }
    pthread_mutex_init(&dm->lock, NULL);
    return 0;
}

void dirty_memory_destroy(DirtyMemory *dm)
{
    /* Arrays replaced by earlier growth are freed by call_rcu callbacks. */
    rcu_barrier();
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        DirtyMemoryBlocks *b = dm->clients[c];
        uint64_t nblocks = DIV_ROUND_UP(b->npages, DIRTY_MEMORY_BLOCK_PAGES);

        for (uint64_t i = 0; i < nblocks; i++) {
            dirty_block_free(b->blocks[i]);
        }
        free(b);
        dm->clients[c] = NULL;
    }
    for (unsigned int i = 0; i < dm->nspares; i++) {
        dirty_block_free(dm->spares[i]);
    }
    free(dm->spares);
    dm->spares = NULL;
    dm->nspares = 0;
    pthread_mutex_destroy(&dm->lock);
}

/*
 * Growth has two cases.  While the new blocks fit in the array's spare
 * slots, they are stored there and npages is raised with a release store:
 * a reader that sees the new npages sees the slots too, and a reader that
 * does not never looks at them.  Otherwise a new array, twice as large, is
 * published and the old one freed after a grace period.  Doubling keeps
 * grace periods (and the IPIs of membarrier that they cost every reader)
 * to a logarithmic number however often RAM grows.
 */
int dirty_memory_grow(DirtyMemory *dm, uint64_t npages)
{
    DirtyMemoryBlocks *new[DIRTY_MEMORY_NUM] = { 0 };
    unsigned long **fresh = NULL;
    uint64_t have, need, nfresh;
    int c, ret = -ENOMEM;

    pthread_mutex_lock(&dm->lock);
    /* Writers are serialised by dm->lock: plain reads of npages are fine. */
    if (npages <= dm->clients[0]->npages) {
        pthread_mutex_unlock(&dm->lock);
        return 0;
    }
    have = DIV_ROUND_UP(dm->clients[0]->npages, DIRTY_MEMORY_BLOCK_PAGES);
    need = DIV_ROUND_UP(npages, DIRTY_MEMORY_BLOCK_PAGES);
    nfresh = need - have;

    /* Allocate everything first so that failure leaves no trace. */
    if (nfresh) {
        fresh = calloc(DIRTY_MEMORY_NUM * nfresh, sizeof(*fresh));
        if (!fresh) {
            goto out;
        }
        for (uint64_t i = 0; i < DIRTY_MEMORY_NUM * nfresh; i++) {
            fresh[i] = dirty_block_alloc();
            if (!fresh[i]) {
                goto out;
            }
        }
    }
    for (c = 0; c < DIRTY_MEMORY_NUM; c++) {
        DirtyMemoryBlocks *old = dm->clients[c];

        if (need > old->capacity) {
            new[c] = blocks_alloc(npages, MAX(need, 2 * old->capacity));
            if (!new[c]) {
                goto out;
            }
            memcpy(new[c]->blocks, old->blocks, have * sizeof(old->blocks[0]));
        }
    }

    for (c = 0; c < DIRTY_MEMORY_NUM; c++) {
        DirtyMemoryBlocks *old = dm->clients[c];
        DirtyMemoryBlocks *b = new[c] ? new[c] : old;

        for (uint64_t i = 0; i < nfresh; i++) {
            rcu_set_pointer(&b->blocks[have + i], fresh[c * nfresh + i]);
        }
        if (new[c]) {
            rcu_assign_pointer(dm->clients[c], new[c]);
            call_rcu(&old->rcu, blocks_free_rcu);
        } else {
            __atomic_store_n(&b->npages, npages, __ATOMIC_RELEASE);
        }
    }
    ret = 0;
    nfresh = 0;         /* handed over */
    memset(new, 0, sizeof(new));

out:
    for (uint64_t i = 0; fresh && i < DIRTY_MEMORY_NUM * nfresh; i++) {
        dirty_block_free(fresh[i]);
    }
    free(fresh);
    for (c = 0; c < DIRTY_MEMORY_NUM; c++) {
        free(new[c]);
    }
    pthread_mutex_unlock(&dm->lock);
    return ret;
}

uint64_t dirty_memory_pages(DirtyMemory *dm)
{
    DirtyMemoryBlocks *last;
    uint64_t n;

    /*
     * Growth updates the clients in index order, so once the last one
     * covers n pages every client does: acquire loads of it order the
     * caller's later loads of the others after their update.
     */
    rcu_read_lock();
    last = __atomic_load_n(&dm->clients[DIRTY_MEMORY_NUM - 1],
                           __ATOMIC_ACQUIRE);
    n = __atomic_load_n(&last->npages, __ATOMIC_ACQUIRE);
    rcu_read_unlock();
    return n;
}

/* ---- queries --------------------------------------------------------- */

/*
 * Shared by get and all: with @want_set, 1 as soon as a set bit is found;
 * otherwise 0 as soon as a clear bit is found.
 */
static int scan_range(DirtyMemory *dm, uint64_t page, uint64_t npages,
                      unsigned int client, bool want_set)
{
    DirtyMemoryBlocks *b;
    WordIter it;
    unsigned long *w, mask;
    uint64_t first;
    unsigned int n;
    int ret;

    ret = check_client(client);
    if (ret) {
        return ret;
    }
    rcu_read_lock();
    b = rcu_dereference(dm->clients[client]);
    ret = check_range(b, page, npages);
    if (ret) {
        goto out;
    }
    ret = !want_set;
    word_iter_init(&it, b, page, npages);
    while (word_iter_next(&it, &w, &mask, &first, &n)) {
        unsigned long v = word_load(w) & mask;

        if (want_set ? v != 0 : v != mask) {
            ret = want_set;
            break;
        }
    }
out:
    rcu_read_unlock();
    return ret;
}

int dirty_memory_get(DirtyMemory *dm, uint64_t page, uint64_t npages,
                     unsigned int client)
{
    return scan_range(dm, page, npages, client, true);
}

int dirty_memory_all(DirtyMemory *dm, uint64_t page, uint64_t npages,
                     unsigned int client)
{
    return scan_range(dm, page, npages, client, false);
}

/* ---- setting --------------------------------------------------------- */

int dirty_memory_set_page(DirtyMemory *dm, uint64_t page, unsigned int client)
{
    DirtyMemoryBlocks *b;
    int ret;

    ret = check_client(client);
    if (ret) {
        return ret;
    }
    rcu_read_lock();
    b = rcu_dereference(dm->clients[client]);
    ret = check_range(b, page, 1);
    if (!ret) {
        unsigned long *block;

        block = rcu_dereference(b->blocks[page >> DIRTY_MEMORY_BLOCK_SHIFT]);
        word_or(block + BIT_WORD(page & BLOCK_MASK), BIT_MASK(page));
    }
    rcu_read_unlock();
    return ret;
}

/*
 * Load the arrays of the clients in @mask and check the range against each
 * (growth publishes the three arrays one after the other).
 */
static int load_clients(DirtyMemory *dm, unsigned int mask, uint64_t page,
                        uint64_t npages,
                        DirtyMemoryBlocks *b[DIRTY_MEMORY_NUM])
{
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        b[c] = NULL;
        if (mask & DIRTY_CLIENT_MASK(c)) {
            b[c] = rcu_dereference(dm->clients[c]);
            if (check_range(b[c], page, npages)) {
                return -ERANGE;
            }
        }
    }
    return 0;
}

/*
 * set_range() for a range inside one word, the common case of a device
 * write: no iterator, one block lookup per client.
 */
static int set_word(DirtyMemory *dm, uint64_t page, unsigned int n,
                    unsigned int mask)
{
    unsigned long bits = word_mask(page % BITS_PER_LONG, n);
    int ret = 0;

    rcu_read_lock();
    for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        DirtyMemoryBlocks *b;
        unsigned long *block;

        if (!(mask & DIRTY_CLIENT_MASK(c))) {
            continue;
        }
        b = rcu_dereference(dm->clients[c]);
        if (check_range(b, page, n)) {
            ret = -ERANGE;
            break;
        }
        block = rcu_dereference(b->blocks[page >> DIRTY_MEMORY_BLOCK_SHIFT]);
        word_or(block + BIT_WORD(page & BLOCK_MASK), bits);
    }
    rcu_read_unlock();
    return ret;
}

int dirty_memory_set_range(DirtyMemory *dm, uint64_t page, uint64_t npages,
                           unsigned int mask)
{
    DirtyMemoryBlocks *b[DIRTY_MEMORY_NUM];
    int ret;

    ret = check_mask(mask);
    if (ret) {
        return ret;
    }
    if (npages && npages <= BITS_PER_LONG - page % BITS_PER_LONG) {
        return set_word(dm, page, npages, mask);
    }
    rcu_read_lock();
    ret = load_clients(dm, mask, page, npages, b);
    for (int c = 0; !ret && c < DIRTY_MEMORY_NUM; c++) {
        WordIter it;
        unsigned long *w, m;
        uint64_t first;
        unsigned int n;

        if (!b[c]) {
            continue;
        }
        word_iter_init(&it, b[c], page, npages);
        while (word_iter_next(&it, &w, &m, &first, &n)) {
            word_or(w, m);
        }
    }
    rcu_read_unlock();
    return ret;
}

/*
 * OR the low @n bits of @v into the bitmap at @page (which may straddle a
 * word, never a block: blocks are whole words).
 */
static inline void or_bits(DirtyMemoryBlocks *b, uint64_t page,
                           unsigned long v, unsigned int n)
{
    unsigned long *block = rcu_dereference(b->blocks[page >>
                                                     DIRTY_MEMORY_BLOCK_SHIFT]);
    unsigned long *w = block + BIT_WORD(page & BLOCK_MASK);
    unsigned int s = page % BITS_PER_LONG;

    v &= word_mask(0, n);
    word_or(w, v << s);
    if (s + n > BITS_PER_LONG) {
        uint64_t next = page + (BITS_PER_LONG - s);

        block = rcu_dereference(b->blocks[next >> DIRTY_MEMORY_BLOCK_SHIFT]);
        word_or(block + BIT_WORD(next & BLOCK_MASK),
                v >> (BITS_PER_LONG - s));
    }
}

int dirty_memory_set_lebitmap(DirtyMemory *dm, const unsigned long *bitmap,
                              uint64_t page, uint64_t npages,
                              unsigned int mask)
{
    DirtyMemoryBlocks *b[DIRTY_MEMORY_NUM];
    uint64_t nwords = BITS_TO_LONGS(npages);
    int ret;

    ret = check_mask(mask);
    if (ret) {
        return ret;
    }
    rcu_read_lock();
    ret = load_clients(dm, mask, page, npages, b);
    if (ret) {
        goto out;
    }
    if (page % BITS_PER_LONG == 0) {
        /* Word-aligned: every source word is one destination word. */
        for (uint64_t k = 0; k < nwords; k++) {
            unsigned long v = le64toh(bitmap[k]);
            uint64_t p = page + k * BITS_PER_LONG;

            if (k == nwords - 1) {
                v &= BITMAP_LAST_WORD_MASK(npages);
            }
            if (!v) {
                continue;
            }
            for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
                if (b[c]) {
                    unsigned long *block;

                    block = rcu_dereference(
                        b[c]->blocks[p >> DIRTY_MEMORY_BLOCK_SHIFT]);
                    word_or(block + BIT_WORD(p & BLOCK_MASK), v);
                }
            }
        }
    } else {
        /* Unaligned: each source word straddles two destination words. */
        for (uint64_t k = 0; k < nwords; k++) {
            unsigned long v = le64toh(bitmap[k]);
            unsigned int n = MIN(BITS_PER_LONG, npages - k * BITS_PER_LONG);

            if (!(v & word_mask(0, n))) {
                continue;
            }
            for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
                if (b[c]) {
                    or_bits(b[c], page + k * BITS_PER_LONG, v, n);
                }
            }
        }
    }
out:
    rcu_read_unlock();
    return ret;
}

/* ---- clearing -------------------------------------------------------- */

int dirty_memory_test_and_clear(DirtyMemory *dm, uint64_t page,
                                uint64_t npages, unsigned int client)
{
    DirtyMemoryBlocks *b;
    WordIter it;
    unsigned long *w, mask, found = 0;
    uint64_t first;
    unsigned int n;
    int ret;

    ret = check_client(client);
    if (ret) {
        return ret;
    }
    rcu_read_lock();
    b = rcu_dereference(dm->clients[client]);
    ret = check_range(b, page, npages);
    if (!ret) {
        word_iter_init(&it, b, page, npages);
        while (word_iter_next(&it, &w, &mask, &first, &n)) {
            found |= word_take(w, mask);
        }
        ret = found != 0;
    }
    rcu_read_unlock();
    return ret;
}

/* ---- sync into a migration bitmap ------------------------------------ */

/*
 * OR the low @n bits of @v into the plain bitmap @dest at bit @q and return
 * how many of them were not set there before.
 */
static inline uint64_t deposit(unsigned long *dest, uint64_t q,
                               unsigned long v, unsigned int n)
{
    unsigned long *d = dest + BIT_WORD(q);
    unsigned int s = q % BITS_PER_LONG;
    uint64_t fresh;

    v &= word_mask(0, n);
    fresh = __builtin_popcountl((v << s) & ~d[0]);
    d[0] |= v << s;
    if (s + n > BITS_PER_LONG) {
        unsigned long hi = v >> (BITS_PER_LONG - s);

        fresh += __builtin_popcountl(hi & ~d[1]);
        d[1] |= hi;
    }
    return fresh;
}

/* Word-by-word sync of [page, page + npages) with atomic take. */
static uint64_t sync_words(DirtyMemory *dm, unsigned long *dest,
                           uint64_t dest_start, uint64_t page,
                           uint64_t npages)
{
    DirtyMemoryBlocks *b;
    WordIter it;
    unsigned long *w, mask;
    uint64_t first, fresh = 0;
    unsigned int n;

    rcu_read_lock();
    b = rcu_dereference(dm->clients[DIRTY_MEMORY_MIGRATION]);
    word_iter_init(&it, b, page, npages);
    while (word_iter_next(&it, &w, &mask, &first, &n)) {
        unsigned long bits = word_take(w, mask);

        if (bits) {
            fresh += deposit(dest, dest_start + (first - page),
                             bits >> (first % BITS_PER_LONG), n);
        }
    }
    rcu_read_unlock();
    return fresh;
}

/*
 * Fold a swapped-out block into @dest (word-aligned) and zero it.  Nobody
 * else can see @src any more, so plain accesses suffice; words are taken
 * eight at a time (one cache line) so that clean stretches cost one read.
 */
#define FOLD_PREFETCH 64     /* words, i.e. eight cache lines ahead */
#define FOLD_BODY                                                          \
    uint64_t fresh = 0;                                                    \
    for (uint64_t i = 0; i < DIRTY_MEMORY_BLOCK_LONGS; i += 8) {           \
        unsigned long any = 0;                                             \
        for (int j = 0; j < 8; j++) {                                      \
            any |= src[i + j];                                             \
        }                                                                  \
        /* Sparse lines defeat the hardware prefetcher: ask ahead. */      \
        __builtin_prefetch(&dest[i + FOLD_PREFETCH], 1);                   \
        if (!any) {                                                        \
            continue;                                                      \
        }                                                                  \
        for (int j = 0; j < 8; j++) {                                      \
            unsigned long v = src[i + j], d = dest[i + j];                 \
            fresh += __builtin_popcountl(v & ~d);                          \
            dest[i + j] = d | v;                                           \
            src[i + j] = 0;                                                \
        }                                                                  \
    }                                                                      \
    return fresh;

__attribute__((target("popcnt")))
static uint64_t fold_block_popcnt(unsigned long *restrict dest,
                                  unsigned long *restrict src)
{
    FOLD_BODY
}

static uint64_t fold_block_generic(unsigned long *restrict dest,
                                   unsigned long *restrict src)
{
    FOLD_BODY
}

static uint64_t fold_block(unsigned long *dest, unsigned long *src)
{
    return __builtin_cpu_supports("popcnt") ? fold_block_popcnt(dest, src)
                                            : fold_block_generic(dest, src);
}

/*
 * Bits set in a block nobody else can see any more.  Blocks are separate
 * 256 KiB mappings of small pages, and the hardware prefetcher stops at
 * each page boundary: asking for the next page ahead of time more than
 * halves the time of a cold block.
 */
#define COUNT_PREFETCH 512   /* words: 4 KiB, one page, ahead */
#define COUNT_BODY                                                         \
    uint64_t n = 0, m = 0;                                                 \
    for (uint64_t i = 0; i < DIRTY_MEMORY_BLOCK_LONGS; i += 8) {           \
        __builtin_prefetch(&src[i + COUNT_PREFETCH]);                      \
        for (int j = 0; j < 8; j += 2) {                                   \
            n += __builtin_popcountl(src[i + j]);                          \
            m += __builtin_popcountl(src[i + j + 1]);                      \
        }                                                                  \
    }                                                                      \
    return n + m;

__attribute__((target("popcnt")))
static uint64_t count_block_popcnt(const unsigned long *src)
{
    COUNT_BODY
}

static uint64_t count_block_generic(const unsigned long *src)
{
    COUNT_BODY
}

static uint64_t count_block(const unsigned long *src)
{
    return __builtin_cpu_supports("popcnt") ? count_block_popcnt(src)
                                            : count_block_generic(src);
}

/* A zeroed block for swapping in; called with dm->lock held. */
static unsigned long *spare_get(DirtyMemory *dm)
{
    if (dm->nspares) {
        return dm->spares[--dm->nspares];
    }
    return dirty_block_alloc();
}

/* Keep a zeroed block for the next sync; called with dm->lock held. */
static void spare_put(DirtyMemory *dm, unsigned long *block)
{
    unsigned long **s;

    if (dm->nspares < SYNC_SWAP_BATCH) {
        s = realloc(dm->spares, (dm->nspares + 1) * sizeof(*s));
        if (s) {
            dm->spares = s;
            dm->spares[dm->nspares++] = block;
            return;
        }
    }
    dirty_block_free(block);
}

/* Credit @n newly set bits to block @k of @bm. */
static inline void bitmap_credit(DirtyBitmap *bm, uint64_t k, uint64_t n)
{
    bm->block_count[k] += n;
    bm->count += n;
}

/*
 * Sync whole blocks [first_idx, first_idx + nblocks) by swapping them for
 * zeroed spares, waiting one grace period per batch and folding the old
 * blocks into the destination: the flat @dest (its word of the first
 * block), or with @bm (and @dest NULL) @bm's own blocks, whose counts are
 * kept.  Falls back to the word path for a block when no spare can be
 * allocated.
 */
static uint64_t sync_blocks(DirtyMemory *dm, unsigned long *dest,
                            DirtyBitmap *bm, uint64_t first_idx,
                            uint64_t nblocks)
{
    unsigned long *old[SYNC_SWAP_BATCH];
    uint64_t fresh = 0;

    pthread_mutex_lock(&dm->lock);
    for (uint64_t done = 0; done < nblocks;) {
        /* Stable under dm->lock: growth takes it too. */
        DirtyMemoryBlocks *b = dm->clients[DIRTY_MEMORY_MIGRATION];
        unsigned int batch = MIN(SYNC_SWAP_BATCH, nblocks - done);
        unsigned int swapped = 0, n;

        for (; swapped < batch; swapped++) {
            unsigned long *spare = spare_get(dm);

            if (!spare) {
                break;
            }
            old[swapped] = rcu_xchg_pointer(&b->blocks[first_idx + done +
                                                       swapped], spare);
        }
        if (swapped) {
            synchronize_rcu();
        }
        /* With no spare at all, one block goes the word path. */
        n = swapped ? swapped : 1;
        for (unsigned int i = 0; i < n; i++) {
            uint64_t idx = first_idx + done + i, f;
            unsigned long *d = bm ? bm->blocks[idx - bm->first_block]
                                  : dest + (done + i) *
                                    DIRTY_MEMORY_BLOCK_LONGS;

            if (swapped) {
                f = fold_block(d, old[i]);
                spare_put(dm, old[i]);
            } else {
                /* Out of memory for spares: atomics still work. */
                f = sync_words(dm, d, 0, idx << DIRTY_MEMORY_BLOCK_SHIFT,
                               DIRTY_MEMORY_BLOCK_PAGES);
            }
            if (bm) {
                bitmap_credit(bm, idx - bm->first_block, f);
            }
            fresh += f;
        }
        done += n;
    }
    pthread_mutex_unlock(&dm->lock);
    return fresh;
}

int64_t dirty_memory_sync(DirtyMemory *dm, unsigned long *dest,
                          uint64_t dest_start, uint64_t page,
                          uint64_t npages)
{
    uint64_t end = page + npages, fresh = 0;
    uint64_t full_start, full_end;
    int ret;

    rcu_read_lock();
    ret = check_range(rcu_dereference(dm->clients[DIRTY_MEMORY_MIGRATION]),
                      page, npages);
    rcu_read_unlock();
    if (ret) {
        return ret;
    }

    full_start = ROUND_UP(page, DIRTY_MEMORY_BLOCK_PAGES);
    full_end = end & ~BLOCK_MASK;
    if (page % BITS_PER_LONG != dest_start % BITS_PER_LONG ||
        full_start >= full_end) {
        return sync_words(dm, dest, dest_start, page, npages);
    }

    fresh += sync_words(dm, dest, dest_start, page, full_start - page);
    fresh += sync_blocks(dm, dest + BIT_WORD(dest_start + full_start - page),
                         NULL, full_start >> DIRTY_MEMORY_BLOCK_SHIFT,
                         (full_end - full_start) >> DIRTY_MEMORY_BLOCK_SHIFT);
    fresh += sync_words(dm, dest, dest_start + (full_end - page), full_end,
                        end - full_end);
    return fresh;
}

/*
 * Word-by-word sync of the ram_addr pages [page, end) into @bm, one of its
 * blocks at a time.  @bm's blocks have DirtyMemory's geometry, so source
 * and destination words are always equally aligned.
 */
static uint64_t sync_partial(DirtyMemory *dm, DirtyBitmap *bm, uint64_t page,
                             uint64_t end)
{
    uint64_t fresh = 0;

    while (page < end) {
        uint64_t stop = MIN(end, (page | BLOCK_MASK) + 1);
        uint64_t k = (page >> DIRTY_MEMORY_BLOCK_SHIFT) - bm->first_block;
        uint64_t f = sync_words(dm, bm->blocks[k], page & BLOCK_MASK, page,
                                stop - page);

        bitmap_credit(bm, k, f);
        fresh += f;
        page = stop;
    }
    return fresh;
}

/*
 * Sync the whole blocks [first, end) into @bm.  Blocks @bm still holds bits
 * in are folded (sync_blocks(), batches of pool spares).  Every block @bm
 * has empty is exchanged directly for the MIGRATION block: the empty block
 * becomes the source's zeroed replacement and the source's block becomes
 * @bm's, counted after one grace period for all of them.  No spare, no
 * copy, one membarrier however large the guest.
 */
static uint64_t sync_whole_blocks(DirtyMemory *dm, DirtyBitmap *bm,
                                  uint64_t first, uint64_t end)
{
    DirtyMemoryBlocks *b;
    uint64_t fresh = 0, handed = 0;

    for (uint64_t idx = first; idx < end;) {
        uint64_t run = idx;

        while (run < end && bm->block_count[run - bm->first_block]) {
            run++;
        }
        if (run > idx) {
            fresh += sync_blocks(dm, NULL, bm, idx, run - idx);
        }
        idx = run + 1;
    }

    pthread_mutex_lock(&dm->lock);
    /* Stable under dm->lock: growth takes it too. */
    b = dm->clients[DIRTY_MEMORY_MIGRATION];
    for (uint64_t idx = first; idx < end; idx++) {
        uint64_t k = idx - bm->first_block;

        if (!bm->block_count[k]) {
            bm->blocks[k] = rcu_xchg_pointer(&b->blocks[idx], bm->blocks[k]);
            handed++;
        }
    }
    if (handed) {
        /* Now no setter can still be writing into the blocks we took. */
        synchronize_rcu();
        for (uint64_t idx = first; idx < end; idx++) {
            uint64_t k = idx - bm->first_block;

            if (!bm->block_count[k]) {
                uint64_t f = count_block(bm->blocks[k]);

                bitmap_credit(bm, k, f);
                fresh += f;
            }
        }
    }
    pthread_mutex_unlock(&dm->lock);
    return fresh;
}

int64_t dirty_memory_sync_bitmap(DirtyMemory *dm, DirtyBitmap *bm,
                                 uint64_t i, uint64_t n)
{
    uint64_t page, end, full_start, full_end, fresh = 0;
    int ret;

    if (i > bm->npages || n > bm->npages - i) {
        return -ERANGE;
    }
    page = bm->start + i;
    end = page + n;
    rcu_read_lock();
    ret = check_range(rcu_dereference(dm->clients[DIRTY_MEMORY_MIGRATION]),
                      page, n);
    rcu_read_unlock();
    if (ret) {
        return ret;
    }

    full_start = ROUND_UP(page, DIRTY_MEMORY_BLOCK_PAGES);
    full_end = end & ~BLOCK_MASK;
    if (full_start >= full_end) {
        return sync_partial(dm, bm, page, end);
    }
    fresh += sync_partial(dm, bm, page, full_start);
    fresh += sync_whole_blocks(dm, bm, full_start >> DIRTY_MEMORY_BLOCK_SHIFT,
                               full_end >> DIRTY_MEMORY_BLOCK_SHIFT);
    fresh += sync_partial(dm, bm, full_end, end);
    return fresh;
}
