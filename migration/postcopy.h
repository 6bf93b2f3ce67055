/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * postcopy.h - the postcopy destination's state and its rules
 * (docs/postcopy.md), independent of how frames are paged in.
 *
 * The destination moves NONE -> ADVISE -> DISCARD -> LISTENING -> RUNNING
 * -> END as the source's messages arrive, and every message is checked
 * against the state before anything is done: one out of order is an error
 * that names both.  Pages received while precopy still runs are marked in
 * each RAMBlock's receivedmap; DISCARD clears the bits of pages the source
 * has seen dirtied since it sent them; LISTEN hands every page whose bit
 * is clear to the back-end, which makes it absent for the guest (on Xen:
 * the paged-out state), in ranges as long as it can.  PREPARE does the
 * same earlier, while the source's guest still runs (on Xen paging a
 * frame out is two hypercalls, and LISTEN's comes with the guest paused
 * on both sides): after it, a DISCARD records the pages it takes back,
 * and the next PREPARE or LISTEN makes only those absent.  From then on a page
 * arrives through postcopy_incoming_place(), which puts it in exactly once:
 * a place that finds the page there already is counted, not refused,
 * since a requested page and the background stream may both carry it.
 *
 * Other parts of xenram join in through notifiers (PROBE when the
 * capability is set, ADVISE, LISTEN, END): hot-plug refuses RAM changes
 * from ADVISE to END; a notifier that fails ADVISE or LISTEN fails the
 * migration with its sentence.
 *
 * Locking: one mutex inside PostcopyIncoming serialises the state, the
 * bitmaps and the statistics; the back-end's callbacks run under it, so
 * they must not call back in.  The caller owns the RAMList's blocks for
 * the migration (the migration thread does).
 */
#ifndef XENRAM_MIGRATION_POSTCOPY_H
#define XENRAM_MIGRATION_POSTCOPY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/ramblock.h"

typedef enum PostcopyState {
    POSTCOPY_INCOMING_NONE,         /* precopy only, so far */
    POSTCOPY_INCOMING_ADVISE,       /* the source may switch to postcopy */
    POSTCOPY_INCOMING_DISCARD,      /* dirtied pages being taken back
                                     * (and made absent, by PREPARE) */
    POSTCOPY_INCOMING_LISTENING,    /* missing pages absent, faults served */
    POSTCOPY_INCOMING_RUNNING,      /* the guest runs here */
    POSTCOPY_INCOMING_END,          /* every page is here */
} PostcopyState;

const char *postcopy_state_name(PostcopyState s);

typedef enum PostcopyNotifyReason {
    POSTCOPY_NOTIFY_PROBE,
    POSTCOPY_NOTIFY_INBOUND_ADVISE,
    POSTCOPY_NOTIFY_INBOUND_LISTEN,
    POSTCOPY_NOTIFY_INBOUND_END,
} PostcopyNotifyReason;

/*
 * A part of xenram that takes part in postcopy.  @notify returns 0 or
 * -errno with a sentence in @err; what END reports is logged, not refused.
 */
typedef struct PostcopyNotifier {
    int (*notify)(struct PostcopyNotifier *n, PostcopyNotifyReason reason,
                  char *err, size_t errlen);
    struct PostcopyNotifier *next;
} PostcopyNotifier;

/*
 * How pages become absent and present again.  On Xen 4.17 @make_absent
 * populates (if need be), nominates and evicts each frame, since the
 * paged-out state can be reached no other way; @place loads one page
 * (xc_mem_paging_load), @data NULL for a page of zeros.  @place returns
 * -EEXIST if the page is present already.  Both return 0 or -errno with a
 * sentence in @err.  @make_absent runs with the PostcopyIncoming's mutex
 * held; @place without it (a load is a hypercall, and a requested page
 * must not wait behind the background's loads for the mutex), the page
 * claimed: no other place of the same page runs meanwhile, so @place
 * calls for different pages may run at once.
 */
typedef struct PostcopyOps {
    int (*make_absent)(void *opaque, RAMBlock *block, uint64_t page,
                       uint64_t npages, char *err, size_t errlen);
    int (*place)(void *opaque, RAMBlock *block, uint64_t page,
                 const void *data, char *err, size_t errlen);
} PostcopyOps;

/* Fault service times, log2 buckets of microseconds: [2^i, 2^(i+1)). */
#define POSTCOPY_LATENCY_BUCKETS 24

typedef struct PostcopyLatency {
    uint64_t bucket[POSTCOPY_LATENCY_BUCKETS];
    uint64_t count;
    uint64_t total_ns;
    uint64_t max_ns;
} PostcopyLatency;

typedef struct PostcopyStats {
    PostcopyState state;
    uint64_t discarded;         /* pages taken back by DISCARD */
    uint64_t made_absent;       /* pages handed to make_absent */
    uint64_t made_absent_listen;    /* of which at LISTEN */
    unsigned prepares;          /* PREPAREs done */
    uint64_t placed;            /* pages put in after LISTEN */
    uint64_t duplicates;        /* places that found the page there */
    uint64_t requests;          /* faults recorded */
    uint64_t blocktime_ns;      /* sum of fault service times */
    uint64_t p50_ns, p99_ns, max_ns;
    PostcopyLatency latency;
} PostcopyStats;

typedef struct PostcopyIncoming {
    pthread_mutex_t lock;
    PostcopyState state;
    RAMList *ram;
    const PostcopyOps *ops;
    void *opaque;
    PostcopyNotifier *notifiers;
    uint64_t discarded, made_absent, made_absent_listen, placed, duplicates;
    unsigned prepares;
    PostcopyLatency latency;
    /*
     * @paged: pages were made absent (by a PREPARE).  From then on a
     * DISCARD records the runs of pages it takes back in @taken, and the
     * next PREPARE or LISTEN makes those absent, not every page missing.
     */
    bool paged;
    struct PostcopyRun { RAMBlock *block; uint64_t page, n; } *taken;
    size_t ntaken, taken_cap;
    /* The pages being placed (@place running without @lock), one slot a
     * placing thread; @placing_cond wakes a place that waits for a slot
     * or for another place of its page. */
    struct { RAMBlock *block; uint64_t page; } placing[16];
    unsigned nplacing;
    pthread_cond_t placing_cond;
} PostcopyIncoming;

/*
 * Set up @pi for the blocks of @ram (which must have their migration
 * bitmaps, ram_block_alloc_migration_bitmaps()) in state NONE.
 */
void postcopy_incoming_init(PostcopyIncoming *pi, RAMList *ram,
                            const PostcopyOps *ops, void *opaque);
void postcopy_incoming_destroy(PostcopyIncoming *pi);

/* Add @n (before any message arrives; not thread-safe against notify). */
void postcopy_add_notifier(PostcopyIncoming *pi, PostcopyNotifier *n);

/* Ask every notifier whether postcopy can be offered (the capability). */
int postcopy_probe(PostcopyIncoming *pi, char *err, size_t errlen);

/*
 * The source's messages.  Each returns 0, or -EPROTO for one that is out
 * of order, -ERANGE for a range outside a block's postcopy_length, -ENOENT
 * for an unknown block, or what a notifier or the back-end returned; with
 * a sentence in @err.  Nothing is changed by a message that fails its
 * checks.
 *
 * advise:  NONE -> ADVISE; @page_size must be XR_PAGE_SIZE.
 * discard: ADVISE | DISCARD -> DISCARD; the pages [start, start + n) of
 *          the block named @idstr are to be sent again.
 * prepare: ADVISE | DISCARD -> DISCARD; every page not received is
 *          made absent, in runs (after a PREPARE: the pages DISCARDed
 *          since), *@pages how many.  Precopy pages may still be marked
 *          received after it (ABSENT ones: the caller checks).
 * listen:  ADVISE | DISCARD -> LISTENING; as prepare, and faults served
 *          from then on.
 * run:     LISTENING -> RUNNING.
 * end:     RUNNING -> END; refused while a page is still missing.
 */
int postcopy_incoming_advise(PostcopyIncoming *pi, uint64_t page_size,
                             char *err, size_t errlen);
int postcopy_incoming_discard(PostcopyIncoming *pi, const char *idstr,
                              uint64_t start, uint64_t n, char *err,
                              size_t errlen);
int postcopy_incoming_prepare(PostcopyIncoming *pi, uint64_t *pages,
                              char *err, size_t errlen);
int postcopy_incoming_listen(PostcopyIncoming *pi, char *err, size_t errlen);
int postcopy_incoming_run(PostcopyIncoming *pi, char *err, size_t errlen);
int postcopy_incoming_end(PostcopyIncoming *pi, char *err, size_t errlen);

/*
 * A page of precopy (NONE, ADVISE or DISCARD: written the usual way by the
 * caller) has been received: mark it.  -ERANGE outside the block's
 * postcopy_length, -EPROTO once listening.
 */
int postcopy_incoming_received(PostcopyIncoming *pi, RAMBlock *block,
                               uint64_t page, char *err, size_t errlen);

/*
 * The same for @n pages at once, page @pages[i] of @blocks[i], under one
 * lock (a receiver marks a batch): all of them or, on -ERANGE / -EPROTO
 * with @err, none.
 */
int postcopy_incoming_received_batch(PostcopyIncoming *pi,
                                     RAMBlock *const *blocks,
                                     const uint64_t *pages, unsigned n,
                                     char *err, size_t errlen);

/*
 * Put page @page of @block in (LISTENING or RUNNING), @data NULL for a
 * zero page.  0 if placed or already present (counted as a duplicate).
 */
int postcopy_incoming_place(PostcopyIncoming *pi, RAMBlock *block,
                            uint64_t page, const void *data, char *err,
                            size_t errlen);

/* Whether page @page of @block is here (any state). */
bool postcopy_incoming_has_page(PostcopyIncoming *pi, RAMBlock *block,
                                uint64_t page);

/*
 * Recovery (docs/postcopy.md): the receivedmap bits of pages [@first,
 * @first + @n) of @block into @words (host-order u64 words, page
 * @first + i in bit i % 64 of word i / 64; @first a multiple of 64), pages
 * past postcopy_length clear.  Exact when no place runs (the caller stops
 * its receivers first): a page is marked once it is in.
 */
void postcopy_incoming_received_words(PostcopyIncoming *pi, RAMBlock *block,
                                      uint64_t first, uint64_t n,
                                      uint64_t *words);

/* One guest fault served in @ns nanoseconds (for query-migrate). */
void postcopy_incoming_fault_served(PostcopyIncoming *pi, uint64_t ns);

void postcopy_incoming_stats(PostcopyIncoming *pi, PostcopyStats *out);

/*
 * The upper bound of the bucket holding the @pct-th percentile of @l, in
 * nanoseconds, never above the largest time recorded (0 if none).
 */
uint64_t postcopy_latency_percentile(const PostcopyLatency *l, unsigned pct);

#endif /* XENRAM_MIGRATION_POSTCOPY_H */
