/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * modified.c - batched forwarding of device-model writes to Xen's
 * log-dirty (see modified.h).
 *
 * Reports are appended to a queue under a mutex, merged with the previous
 * extent when adjacent.  A flush takes the whole queue, sorts and merges it
 * (scattered writes often touch neighbouring pages in a different order),
 * and sends it in batches with the queue mutex released, so that reporters
 * never wait for a hypercall.  Flushes are serialised by a second mutex:
 * when modified_memory_flush() returns, everything queued before it was
 * called has reached Xen.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memory/modified.h"
#include "util/util.h"

typedef struct xen_dm_op_modified_memory_extent Extent;

/* Batches the queue may hold before reporters flush it themselves. */
#define MODIFIED_MEMORY_QUEUE_LIMIT 8

struct ModifiedMemory {
    XenHandles *xh;
    unsigned int batch;
    unsigned int max_delay_ms;
    bool enabled;                   /* atomic */

    pthread_mutex_t qlock;          /* protects the queue and the stats */
    Extent *queue;
    size_t nqueued, capacity;
    struct timespec oldest;         /* when the queue became non-empty */
    ModifiedMemoryStats stats;

    pthread_mutex_t flush_lock;     /* serialises flushes */

    pthread_t flusher;
    bool have_flusher;
    bool stopping;                  /* under qlock */
    bool flush_now;                 /* a full batch waits (under qlock) */
    pthread_cond_t wake;            /* queue became non-empty / stopping */
};

static int extent_cmp(const void *a, const void *b)
{
    const Extent *x = a, *y = b;

    return (x->first_pfn > y->first_pfn) - (x->first_pfn < y->first_pfn);
}

/* Sort and merge overlapping or adjacent extents; returns the new count. */
static size_t extents_normalise(Extent *e, size_t n)
{
    size_t out = 0;

    if (n == 0) {
        return 0;
    }
    qsort(e, n, sizeof(*e), extent_cmp);
    for (size_t i = 1; i < n; i++) {
        Extent *last = &e[out];
        uint64_t end = last->first_pfn + last->nr;

        if (e[i].first_pfn <= end &&
            e[i].first_pfn + e[i].nr - last->first_pfn <= UINT32_MAX) {
            uint64_t new_end = MAX(end, e[i].first_pfn + e[i].nr);

            last->nr = new_end - last->first_pfn;
        } else {
            e[++out] = e[i];
        }
    }
    return out + 1;
}

/* Append [gfn, gfn + n) to the queue, merging with the last extent.  qlock. */
static int queue_add(ModifiedMemory *mm, uint64_t gfn, uint32_t n)
{
    if (mm->nqueued) {
        Extent *last = &mm->queue[mm->nqueued - 1];
        uint64_t end = last->first_pfn + last->nr;

        if (gfn >= last->first_pfn && gfn <= end &&
            gfn + n - last->first_pfn <= UINT32_MAX) {
            last->nr = MAX(end, gfn + n) - last->first_pfn;
            return 0;
        }
    }
    if (mm->nqueued == mm->capacity) {
        size_t cap = mm->capacity ? 2 * mm->capacity : mm->batch;
        Extent *q = realloc(mm->queue, cap * sizeof(*q));

        if (!q) {
            return -ENOMEM;
        }
        mm->queue = q;
        mm->capacity = cap;
    }
    if (mm->nqueued == 0) {
        clock_gettime(CLOCK_MONOTONIC, &mm->oldest);
        pthread_cond_signal(&mm->wake);
    }
    mm->queue[mm->nqueued++] = (Extent) { .nr = n, .first_pfn = gfn };
    return 0;
}

/*
 * Send @n normalised extents in batches.  On failure the unsent extents
 * (the failed batch included) go back to the front of the queue.
 */
static int send_extents(ModifiedMemory *mm, Extent *e, size_t n)
{
    size_t done = 0;
    int ret = 0;

    while (done < n) {
        uint32_t k = MIN(mm->batch, n - done);
        uint64_t pages = 0;

        ret = xen_modified_memory_bulk(mm->xh, e + done, k);
        for (uint32_t i = 0; i < k; i++) {
            pages += e[done + i].nr;
        }
        pthread_mutex_lock(&mm->qlock);
        mm->stats.hypercalls++;
        if (ret) {
            mm->stats.errors++;
        } else {
            mm->stats.extents += k;
            mm->stats.pages += pages;
        }
        pthread_mutex_unlock(&mm->qlock);
        if (ret) {
            break;
        }
        done += k;
    }
    if (ret) {
        /* Keep what did not reach Xen; reports are idempotent. */
        pthread_mutex_lock(&mm->qlock);
        for (size_t i = done; i < n; i++) {
            if (queue_add(mm, e[i].first_pfn, e[i].nr)) {
                break;      /* out of memory: the error is returned anyway */
            }
        }
        pthread_mutex_unlock(&mm->qlock);
    }
    return ret;
}

int modified_memory_flush(ModifiedMemory *mm)
{
    Extent *e;
    size_t n;
    int ret;

    pthread_mutex_lock(&mm->flush_lock);
    pthread_mutex_lock(&mm->qlock);
    e = mm->queue;
    n = mm->nqueued;
    mm->queue = NULL;
    mm->nqueued = mm->capacity = 0;
    pthread_mutex_unlock(&mm->qlock);

    n = extents_normalise(e, n);
    ret = send_extents(mm, e, n);
    free(e);
    pthread_mutex_unlock(&mm->flush_lock);
    return ret;
}

void modified_memory_report(ModifiedMemory *mm, uint64_t gfn,
                            uint64_t npages)
{
    bool full;

    if (!__atomic_load_n(&mm->enabled, __ATOMIC_ACQUIRE) || npages == 0) {
        return;
    }
    pthread_mutex_lock(&mm->qlock);
    mm->stats.reports++;
    while (npages) {
        uint32_t n = MIN(npages, UINT32_MAX);

        if (queue_add(mm, gfn, n)) {
            /* No memory to queue: report this extent on its own now. */
            Extent one = { .nr = n, .first_pfn = gfn };

            pthread_mutex_unlock(&mm->qlock);
            xen_modified_memory_bulk(mm->xh, &one, 1);
            pthread_mutex_lock(&mm->qlock);
            mm->stats.hypercalls++;
        }
        gfn += n;
        npages -= n;
    }
    /*
     * A full batch goes to the flusher thread, so that the device's write
     * path never waits for a hypercall; only a queue that the flusher
     * cannot keep up with (or no flusher) makes the reporter flush.
     */
    full = mm->nqueued >= (mm->have_flusher ? MODIFIED_MEMORY_QUEUE_LIMIT *
                                              mm->batch : mm->batch);
    if (!full && mm->have_flusher && mm->nqueued >= mm->batch) {
        mm->flush_now = true;
        pthread_cond_signal(&mm->wake);
    }
    pthread_mutex_unlock(&mm->qlock);
    if (full) {
        modified_memory_flush(mm);
    }
}

/* Flushes what has waited max_delay_ms; sleeps on a condition otherwise. */
static void *flusher_main(void *arg)
{
    ModifiedMemory *mm = arg;

    pthread_mutex_lock(&mm->qlock);
    while (!mm->stopping) {
        struct timespec due;

        if (mm->nqueued == 0) {
            pthread_cond_wait(&mm->wake, &mm->qlock);
            continue;
        }
        if (mm->flush_now) {
            mm->flush_now = false;
            pthread_mutex_unlock(&mm->qlock);
            modified_memory_flush(mm);
            pthread_mutex_lock(&mm->qlock);
            continue;
        }
        due = mm->oldest;
        due.tv_sec += mm->max_delay_ms / 1000;
        due.tv_nsec += (long)(mm->max_delay_ms % 1000) * 1000000;
        if (due.tv_nsec >= 1000000000) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000;
        }
        if (pthread_cond_timedwait(&mm->wake, &mm->qlock, &due) ==
            ETIMEDOUT && mm->nqueued) {
            pthread_mutex_unlock(&mm->qlock);
            modified_memory_flush(mm);
            pthread_mutex_lock(&mm->qlock);
        }
    }
    pthread_mutex_unlock(&mm->qlock);
    return NULL;
}

int modified_memory_new(XenHandles *xh, const ModifiedMemoryConfig *cfg,
                        ModifiedMemory **out)
{
    ModifiedMemoryConfig def = { .batch = MODIFIED_MEMORY_MAX_BATCH,
                                 .max_delay_ms = 10 };
    pthread_condattr_t ca;
    ModifiedMemory *mm;

    if (!cfg) {
        cfg = &def;
    }
    if (!xh || cfg->batch == 0 || cfg->batch > MODIFIED_MEMORY_MAX_BATCH ||
        cfg->max_delay_ms > 60000) {
        return -EINVAL;
    }
    mm = calloc(1, sizeof(*mm));
    if (!mm) {
        return -ENOMEM;
    }
    mm->xh = xh;
    mm->batch = cfg->batch;
    mm->max_delay_ms = cfg->max_delay_ms;
    pthread_mutex_init(&mm->qlock, NULL);
    pthread_mutex_init(&mm->flush_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mm->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (mm->max_delay_ms) {
        int ret = pthread_create(&mm->flusher, NULL, flusher_main, mm);

        if (ret) {
            modified_memory_free(mm);
            return -ret;
        }
        mm->have_flusher = true;
    }
    *out = mm;
    return 0;
}

void modified_memory_free(ModifiedMemory *mm)
{
    if (!mm) {
        return;
    }
    if (mm->have_flusher) {
        pthread_mutex_lock(&mm->qlock);
        mm->stopping = true;
        pthread_cond_signal(&mm->wake);
        pthread_mutex_unlock(&mm->qlock);
        pthread_join(mm->flusher, NULL);
    }
    modified_memory_flush(mm);
    free(mm->queue);
    pthread_cond_destroy(&mm->wake);
    pthread_mutex_destroy(&mm->qlock);
    pthread_mutex_destroy(&mm->flush_lock);
    free(mm);
}

/*
 * Turning off: flush while still on, so that a failure leaves forwarding
 * on and the caller (xen-set-global-dirty-log) can report the error with
 * nothing changed; then switch off and flush what was reported in
 * between.  If that second flush fails, forwarding goes back on: either
 * way the result is "on, failed" or "off, everything sent", and what did
 * not reach Xen stays queued for the next flush.
 */
int modified_memory_set_enabled(ModifiedMemory *mm, bool on)
{
    int ret;

    if (on) {
        __atomic_store_n(&mm->enabled, true, __ATOMIC_RELEASE);
        return 0;
    }
    if (!__atomic_load_n(&mm->enabled, __ATOMIC_ACQUIRE)) {
        return modified_memory_flush(mm);
    }
    ret = modified_memory_flush(mm);
    if (ret) {
        return ret;
    }
    __atomic_store_n(&mm->enabled, false, __ATOMIC_RELEASE);
    ret = modified_memory_flush(mm);
    if (ret) {
        __atomic_store_n(&mm->enabled, true, __ATOMIC_RELEASE);
    }
    return ret;
}

bool modified_memory_enabled(ModifiedMemory *mm)
{
    return __atomic_load_n(&mm->enabled, __ATOMIC_ACQUIRE);
}

void modified_memory_stats(ModifiedMemory *mm, ModifiedMemoryStats *stats)
{
    pthread_mutex_lock(&mm->qlock);
    *stats = mm->stats;
    pthread_mutex_unlock(&mm->qlock);
}
