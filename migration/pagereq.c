/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pagereq.c - discard ranges, page-request bounds and the page-request
 * queue of postcopy (pagereq.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/pagereq.h"

/* The first page at or after @p below @end set in @bm and not in @skip. */
static uint64_t discard_next(const DirtyBitmap *bm, const unsigned long *skip,
                             uint64_t p, uint64_t end)
{
    p = p < end ? dirty_bitmap_find_next(bm, p) : end;
    while (skip && p < end && xr_test_bit(p, skip)) {
        p = p + 1 < end ? dirty_bitmap_find_next(bm, p + 1) : end;
    }
    return MIN(p, end);
}

unsigned mig_discard_ranges(const DirtyBitmap *bm, const unsigned long *skip,
                            uint64_t from, uint64_t end, StreamRange *out,
                            unsigned max, uint64_t *next)
{
    unsigned k = 0;
    uint64_t p;

    if (end > bm->npages) {
        end = bm->npages;
    }
    p = discard_next(bm, skip, from, end);
    while (p < end && k < max) {
        uint64_t q = p + 1;

        /* Runs of dirty pages are usually short: test bit by bit. */
        while (q < end && dirty_bitmap_test(bm, q) &&
               !(skip && xr_test_bit(q, skip))) {
            q++;
        }
        out[k++] = (StreamRange) { .start = p, .n = q - p };
        p = discard_next(bm, skip, q, end);
    }
    *next = p < end ? p : end;
    return k;
}

int mig_page_request_check(const char *idstr, const RAMBlock *block,
                           uint64_t page, uint64_t n, char *err,
                           size_t errlen)
{
    uint64_t pages;

    if (!block) {
        return xr_error(err, errlen, -ENOENT, "the destination asked for "
                        "pages of block '%.64s', which this migration does "
                        "not carry", idstr);
    }
    pages = block->postcopy_length >> XR_PAGE_BITS;
    if (n == 0 || page >= pages || n > pages - page) {
        return xr_error(err, errlen, -ERANGE, "the destination asked for "
                        "pages %#" PRIx64 "+%#" PRIx64 " of block '%.64s', "
                        "which has %#" PRIx64 " pages", page, n, idstr,
                        pages);
    }
    return 0;
}

int mig_page_queue_init(MigPageQueue *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->ring = calloc(cap ? cap : 1, sizeof(*q->ring));
    if (!q->ring) {
        return -ENOMEM;
    }
    q->cap = cap ? cap : 1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    return 0;
}

void mig_page_queue_destroy(MigPageQueue *q)
{
    if (!q->ring) {
        return;
    }
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    q->ring = NULL;
}

int mig_page_queue_push(MigPageQueue *q, const MigPageRun *r)
{
    int ret = 0;

    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        ret = -EPIPE;
    } else if (q->len == q->cap) {
        q->refused++;
        ret = -ENOSPC;
    } else {
        q->ring[(q->head + q->len) % q->cap] = *r;
        q->len++;
        q->pushed++;
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return ret;
}

bool mig_page_queue_pop(MigPageQueue *q, MigPageRun *r, bool wait)
{
    bool got = false;

    pthread_mutex_lock(&q->lock);
    while (wait && !q->len && !q->closed) {
        pthread_cond_wait(&q->cond, &q->lock);
    }
    if (q->len) {
        *r = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        got = true;
    }
    pthread_mutex_unlock(&q->lock);
    return got;
}

size_t mig_page_queue_len(MigPageQueue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void mig_page_queue_close(MigPageQueue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}
