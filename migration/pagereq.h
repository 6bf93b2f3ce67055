/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pagereq.h - what both ends of a postcopy migration need of page
 * requests, in pieces small enough to test alone (internal to
 * migration/; docs/postcopy.md):
 *
 *   - the DISCARD ranges a source computes from a block's bitmap;
 *   - the bounds a PAGE_REQUEST must respect (a peer's request is
 *     untrusted: outside the block's postcopy_length it is a protocol
 *     error that fails the migration);
 *   - MigPageQueue, a bounded queue of frame runs between a thread that
 *     must never block (the destination's paging ring thread; the
 *     source's return-path reader) and the thread that acts on them.
 */
#ifndef XENRAM_MIGRATION_PAGEREQ_H
#define XENRAM_MIGRATION_PAGEREQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dirty/bitmap.h"
#include "memory/ramblock.h"
#include "migration/stream.h"

/*
 * The runs of set bits of @bm in [@from, @end) whose bits in @skip (if
 * not NULL; a bitmap of @bm's size) are clear, at most @max of them,
 * into @out (non-empty, ascending and apart, as a DISCARD carries them).
 * Returns how many; *@next is where the next call continues (@end once
 * every run was given).  Neither bitmap is changed.
 */
unsigned mig_discard_ranges(const DirtyBitmap *bm, const unsigned long *skip,
                            uint64_t from,
                            uint64_t end, StreamRange *out, unsigned max,
                            uint64_t *next);

/*
 * Check a PAGE_REQUEST for pages [@page, @page + @n) of the block named
 * @idstr, @block being what the name resolved to (NULL: no such block).
 * 0, or -ENOENT (unknown block) / -ERANGE (outside the block's
 * postcopy_length, or empty) with a sentence in @err naming the request.
 */
int mig_page_request_check(const char *idstr, const RAMBlock *block,
                           uint64_t page, uint64_t n, char *err,
                           size_t errlen);

/* A run of guest frames asked for: @n frames from @gfn. */
typedef struct MigPageRun {
    uint64_t gfn;
    uint32_t n;
    uint32_t pad;
    uint64_t t_ns;              /* when it was asked for (mig_now_ns) */
} MigPageRun;

/*
 * A ring of at most @cap runs.  push never blocks (a full or closed queue
 * refuses); pop waits for a run or for the queue to be closed.  Any
 * thread may call any function; the queue's mutex is held only to copy a
 * run in or out.
 */
typedef struct MigPageQueue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    MigPageRun *ring;
    size_t cap, head, len;
    bool closed;
    uint64_t pushed, refused;   /* statistics */
} MigPageQueue;

/* 0, or -ENOMEM. */
int mig_page_queue_init(MigPageQueue *q, size_t cap);
void mig_page_queue_destroy(MigPageQueue *q);

/* 0, -ENOSPC (full: counted in @refused) or -EPIPE (closed). */
int mig_page_queue_push(MigPageQueue *q, const MigPageRun *r);

/*
 * The oldest run into *@r: true, or false once the queue is closed and
 * empty (@wait) / empty (!@wait).
 */
bool mig_page_queue_pop(MigPageQueue *q, MigPageRun *r, bool wait);

/* Runs waiting now. */
size_t mig_page_queue_len(MigPageQueue *q);

/* Wake every pop; later pushes are refused, runs queued can still be
 * popped. */
void mig_page_queue_close(MigPageQueue *q);

#endif /* XENRAM_MIGRATION_PAGEREQ_H */
