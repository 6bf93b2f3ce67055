/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * postcopy.c - the postcopy destination's state machine (see postcopy.h,
 * docs/postcopy.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/urcu-memb.h>

#include "migration/postcopy.h"

static const char *const state_names[] = {
    [POSTCOPY_INCOMING_NONE] = "none",
    [POSTCOPY_INCOMING_ADVISE] = "advise",
    [POSTCOPY_INCOMING_DISCARD] = "discard",
    [POSTCOPY_INCOMING_LISTENING] = "listening",
    [POSTCOPY_INCOMING_RUNNING] = "running",
    [POSTCOPY_INCOMING_END] = "end",
};

const char *postcopy_state_name(PostcopyState s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

void postcopy_incoming_init(PostcopyIncoming *pi, RAMList *ram,
                            const PostcopyOps *ops, void *opaque)
{
    memset(pi, 0, sizeof(*pi));
    pthread_mutex_init(&pi->lock, NULL);
    pthread_cond_init(&pi->placing_cond, NULL);
    pi->state = POSTCOPY_INCOMING_NONE;
    pi->ram = ram;
    pi->ops = ops;
    pi->opaque = opaque;
}

void postcopy_incoming_destroy(PostcopyIncoming *pi)
{
    free(pi->taken);
    pi->taken = NULL;
    pthread_cond_destroy(&pi->placing_cond);
    pthread_mutex_destroy(&pi->lock);
}

void postcopy_add_notifier(PostcopyIncoming *pi, PostcopyNotifier *n)
{
    n->next = pi->notifiers;
    pi->notifiers = n;
}

static int notify_all(PostcopyIncoming *pi, PostcopyNotifyReason reason,
                      char *err, size_t errlen)
{
    for (PostcopyNotifier *n = pi->notifiers; n; n = n->next) {
        int ret = n->notify(n, reason, err, errlen);

        if (ret && reason != POSTCOPY_NOTIFY_INBOUND_END) {
            return ret;
        }
    }
    return 0;
}

int postcopy_probe(PostcopyIncoming *pi, char *err, size_t errlen)
{
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = notify_all(pi, POSTCOPY_NOTIFY_PROBE, err, errlen);
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

/*
 * Refuse a message that @allowed (a mask of states) does not admit, naming
 * the message and the state it met.  Under the lock.
 */
static int check_state(PostcopyIncoming *pi, unsigned allowed,
                       const char *what, char *err, size_t errlen)
{
    if (allowed & (1u << pi->state)) {
        return 0;
    }
    return xr_error(err, errlen, -EPROTO, "postcopy: %s arrived in state "
                    "'%s': out of order", what,
                    postcopy_state_name(pi->state));
}

#define S(x) (1u << POSTCOPY_INCOMING_##x)

int postcopy_incoming_advise(PostcopyIncoming *pi, uint64_t page_size,
                             char *err, size_t errlen)
{
    RAMBlock *block;
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(NONE), "ADVISE", err, errlen);
    if (!ret && page_size != XR_PAGE_SIZE) {
        ret = xr_error(err, errlen, -EINVAL, "postcopy: the source's page "
                       "size is %" PRIu64 ", Xen's is %u", page_size,
                       (unsigned)XR_PAGE_SIZE);
    }
    rcu_read_lock();
    RAMBLOCK_FOREACH(pi->ram, block) {
        if (!ret && !block->receivedmap) {
            ret = xr_error(err, errlen, -EINVAL, "postcopy: block '%s' has "
                           "no received map (migration bitmaps missing)",
                           block->idstr);
        }
    }
    rcu_read_unlock();
    if (!ret) {
        ret = notify_all(pi, POSTCOPY_NOTIFY_INBOUND_ADVISE, err, errlen);
    }
    if (!ret) {
        pi->state = POSTCOPY_INCOMING_ADVISE;
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

/* 0 if [page, page + n) lies inside @block's postcopy_length. */
static int check_range(const RAMBlock *block, uint64_t page, uint64_t n,
                       const char *what, char *err, size_t errlen)
{
    uint64_t pages = block->postcopy_length >> XR_PAGE_BITS;

    if (n == 0 || page >= pages || n > pages - page) {
        return xr_error(err, errlen, -ERANGE, "postcopy: %s of pages "
                        "%#" PRIx64 "+%#" PRIx64 " is outside block '%s' "
                        "(%#" PRIx64 " pages)", what, page, n, block->idstr,
                        pages);
    }
    return 0;
}

/*
 * Room in @taken for the runs a DISCARD of [start, start + n) of @block
 * can add, so that it either applies whole or fails changing nothing.
 * Under the lock.
 */
static int reserve_taken(PostcopyIncoming *pi, const RAMBlock *block,
                         uint64_t start, uint64_t n, char *err,
                         size_t errlen)
{
    size_t runs = 0, want;
    bool in = false;

    for (uint64_t i = 0; i < n; i++) {
        bool set = xr_test_bit(start + i, block->receivedmap);

        runs += set && !in;
        in = set;
    }
    want = pi->ntaken + runs;
    if (want > pi->taken_cap) {
        size_t cap = MAX(want, pi->taken_cap * 2);
        struct PostcopyRun *t = realloc(pi->taken, cap * sizeof(*t));

        if (!t) {
            return xr_error(err, errlen, -ENOMEM, "postcopy: out of memory "
                            "for the pages a DISCARD takes back");
        }
        pi->taken = t;
        pi->taken_cap = cap;
    }
    return 0;
}

/* Page @page of @block taken back: onto the last run, or a new one. */
static void add_taken(PostcopyIncoming *pi, RAMBlock *block, uint64_t page)
{
    struct PostcopyRun *last = pi->ntaken ? &pi->taken[pi->ntaken - 1]
                                          : NULL;

    if (last && last->block == block && last->page + last->n == page) {
        last->n++;
    } else {
        pi->taken[pi->ntaken++] = (struct PostcopyRun) {
            .block = block, .page = page, .n = 1 };
    }
}

int postcopy_incoming_discard(PostcopyIncoming *pi, const char *idstr,
                              uint64_t start, uint64_t n, char *err,
                              size_t errlen)
{
    RAMBlock *block;
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(ADVISE) | S(DISCARD), "DISCARD", err, errlen);
    rcu_read_lock();
    block = ret ? NULL : ram_block_by_name(pi->ram, idstr);
    if (!ret && !block) {
        ret = xr_error(err, errlen, -ENOENT, "postcopy: DISCARD names block "
                       "'%.64s', which the destination does not have", idstr);
    }
    if (!ret) {
        ret = check_range(block, start, n, "DISCARD", err, errlen);
    }
    if (!ret && pi->paged) {
        ret = reserve_taken(pi, block, start, n, err, errlen);
    }
    if (!ret) {
        for (uint64_t i = 0; i < n; i++) {
            if (xr_test_bit(start + i, block->receivedmap)) {
                xr_clear_bit(start + i, block->receivedmap);
                pi->discarded++;
                if (pi->paged) {
                    add_taken(pi, block, start + i);
                }
            }
        }
        pi->state = POSTCOPY_INCOMING_DISCARD;
    }
    rcu_read_unlock();
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

/*
 * Hand every run of pages not received to make_absent.  Under the lock
 * and rcu_read_lock().
 */
static int make_missing_absent(PostcopyIncoming *pi, char *err, size_t errlen)
{
    RAMBlock *block;

    RAMBLOCK_FOREACH(pi->ram, block) {
        uint64_t pages = block->postcopy_length >> XR_PAGE_BITS;
        uint64_t page = 0;

        while (page < pages) {
            uint64_t first = xr_find_next_zero_bit(block->receivedmap, pages,
                                                   page);
            uint64_t end;
            int ret;

            if (first >= pages) {
                break;
            }
            end = xr_find_next_bit(block->receivedmap, pages, first);
            ret = pi->ops->make_absent(pi->opaque, block, first, end - first,
                                       err, errlen);
            if (ret) {
                return ret;
            }
            pi->made_absent += end - first;
            page = end;
        }
    }
    return 0;
}

/*
 * The pages to make absent now: every page missing the first time, then
 * those DISCARDs took back since.  *@pages how many were.  Under the lock.
 */
static int make_absent_pass(PostcopyIncoming *pi, uint64_t *pages, char *err,
                            size_t errlen)
{
    uint64_t before = pi->made_absent;
    int ret = 0;

    if (!pi->paged) {
        rcu_read_lock();
        ret = make_missing_absent(pi, err, errlen);
        rcu_read_unlock();
    } else {
        for (size_t i = 0; !ret && i < pi->ntaken; i++) {
            const struct PostcopyRun *t = &pi->taken[i];

            ret = pi->ops->make_absent(pi->opaque, t->block, t->page, t->n,
                                       err, errlen);
            if (!ret) {
                pi->made_absent += t->n;
            }
        }
    }
    *pages = pi->made_absent - before;
    if (!ret) {
        pi->paged = true;
        pi->ntaken = 0;
    }
    return ret;
}

int postcopy_incoming_prepare(PostcopyIncoming *pi, uint64_t *pages,
                              char *err, size_t errlen)
{
    int ret;

    *pages = 0;
    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(ADVISE) | S(DISCARD), "PREPARE", err, errlen);
    if (!ret) {
        ret = make_absent_pass(pi, pages, err, errlen);
    }
    if (!ret) {
        pi->state = POSTCOPY_INCOMING_DISCARD;
        pi->prepares++;
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

int postcopy_incoming_listen(PostcopyIncoming *pi, char *err, size_t errlen)
{
    uint64_t pages = 0;
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(ADVISE) | S(DISCARD), "LISTEN", err, errlen);
    if (!ret) {
        ret = notify_all(pi, POSTCOPY_NOTIFY_INBOUND_LISTEN, err, errlen);
    }
    if (!ret) {
        ret = make_absent_pass(pi, &pages, err, errlen);
    }
    if (!ret) {
        pi->made_absent_listen = pages;
        pi->state = POSTCOPY_INCOMING_LISTENING;
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

int postcopy_incoming_run(PostcopyIncoming *pi, char *err, size_t errlen)
{
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(LISTENING), "RUN", err, errlen);
    if (!ret) {
        pi->state = POSTCOPY_INCOMING_RUNNING;
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

/* The first block with a page missing, or NULL.  Under rcu_read_lock(). */
static RAMBlock *first_incomplete(PostcopyIncoming *pi, uint64_t *page)
{
    RAMBlock *block;

    RAMBLOCK_FOREACH(pi->ram, block) {
        uint64_t pages = block->postcopy_length >> XR_PAGE_BITS;

        *page = xr_find_next_zero_bit(block->receivedmap, pages, 0);
        if (*page < pages) {
            return block;
        }
    }
    return NULL;
}

int postcopy_incoming_end(PostcopyIncoming *pi, char *err, size_t errlen)
{
    RAMBlock *block;
    uint64_t page = 0;
    char ignored[256];
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(RUNNING), "END", err, errlen);
    rcu_read_lock();
    block = ret ? NULL : first_incomplete(pi, &page);
    if (block) {
        ret = xr_error(err, errlen, -EPROTO, "postcopy: END arrived with "
                       "page %#" PRIx64 " of block '%s' never sent", page,
                       block->idstr);
    }
    rcu_read_unlock();
    if (!ret) {
        pi->state = POSTCOPY_INCOMING_END;
        notify_all(pi, POSTCOPY_NOTIFY_INBOUND_END, ignored,
                   sizeof(ignored));
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

int postcopy_incoming_received(PostcopyIncoming *pi, RAMBlock *block,
                               uint64_t page, char *err, size_t errlen)
{
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(NONE) | S(ADVISE) | S(DISCARD),
                      "a precopy page", err, errlen);
    if (!ret) {
        ret = check_range(block, page, 1, "a precopy page", err, errlen);
    }
    if (!ret) {
        xr_set_bit(page, block->receivedmap);
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

int postcopy_incoming_received_batch(PostcopyIncoming *pi,
                                     RAMBlock *const *blocks,
                                     const uint64_t *pages, unsigned n,
                                     char *err, size_t errlen)
{
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(NONE) | S(ADVISE) | S(DISCARD),
                      "a precopy page", err, errlen);
    for (unsigned i = 0; !ret && i < n; i++) {
        ret = check_range(blocks[i], pages[i], 1, "a precopy page", err,
                          errlen);
    }
    for (unsigned i = 0; !ret && i < n; i++) {
        xr_set_bit(pages[i], blocks[i]->receivedmap);
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

/* Under @lock: whether page @page of @block is being placed. */
static bool placing_locked(const PostcopyIncoming *pi, const RAMBlock *block,
                           uint64_t page)
{
    for (unsigned i = 0; i < pi->nplacing; i++) {
        if (pi->placing[i].block == block && pi->placing[i].page == page) {
            return true;
        }
    }
    return false;
}

int postcopy_incoming_place(PostcopyIncoming *pi, RAMBlock *block,
                            uint64_t page, const void *data, char *err,
                            size_t errlen)
{
    int ret;

    pthread_mutex_lock(&pi->lock);
    ret = check_state(pi, S(LISTENING) | S(RUNNING), "a postcopy page", err,
                      errlen);
    if (!ret) {
        ret = check_range(block, page, 1, "a postcopy page", err, errlen);
    }
    /* Another place of this page finishes first; then it is here, or
     * (that place failed) still missing. */
    while (!ret && (placing_locked(pi, block, page) ||
                    pi->nplacing == ARRAY_SIZE(pi->placing))) {
        pthread_cond_wait(&pi->placing_cond, &pi->lock);
    }
    if (!ret && xr_test_bit(page, block->receivedmap)) {
        pi->duplicates++;
    } else if (!ret) {
        unsigned slot = pi->nplacing++;

        /*
         * The page claimed, the mutex let go across the load: END cannot
         * come meanwhile (the page is still missing) and the other
         * receivers place theirs at the same time.
         */
        pi->placing[slot].block = block;
        pi->placing[slot].page = page;
        pthread_mutex_unlock(&pi->lock);
        ret = pi->ops->place(pi->opaque, block, page, data, err, errlen);
        pthread_mutex_lock(&pi->lock);
        for (unsigned i = 0; i < pi->nplacing; i++) {
            if (pi->placing[i].block == block && pi->placing[i].page == page) {
                pi->placing[i] = pi->placing[--pi->nplacing];
                break;
            }
        }
        pthread_cond_broadcast(&pi->placing_cond);
        if (ret == -EEXIST) {
            /* Present though never received here: Xen loaded it itself
             * (a pager's own load); the contents came from us before. */
            pi->duplicates++;
            ret = 0;
        } else if (!ret) {
            pi->placed++;
        }
        if (!ret) {
            xr_set_bit(page, block->receivedmap);
        }
    }
    pthread_mutex_unlock(&pi->lock);
    return ret;
}

void postcopy_incoming_received_words(PostcopyIncoming *pi, RAMBlock *block,
                                      uint64_t first, uint64_t n,
                                      uint64_t *words)
{
    uint64_t pages = block->postcopy_length >> XR_PAGE_BITS;

    memset(words, 0, (n + 63) / 64 * 8);
    pthread_mutex_lock(&pi->lock);
    for (uint64_t i = 0; i < n && first + i < pages; i++) {
        if (xr_test_bit(first + i, block->receivedmap)) {
            words[i / 64] |= 1ull << (i % 64);
        }
    }
    pthread_mutex_unlock(&pi->lock);
}

bool postcopy_incoming_has_page(PostcopyIncoming *pi, RAMBlock *block,
                                uint64_t page)
{
    bool has;

    pthread_mutex_lock(&pi->lock);
    has = page < (block->postcopy_length >> XR_PAGE_BITS) &&
          xr_test_bit(page, block->receivedmap);
    pthread_mutex_unlock(&pi->lock);
    return has;
}

void postcopy_incoming_fault_served(PostcopyIncoming *pi, uint64_t ns)
{
    uint64_t us = ns / 1000;
    unsigned b = 0;

    while (us > 1 && b < POSTCOPY_LATENCY_BUCKETS - 1) {
        us >>= 1;
        b++;
    }
    pthread_mutex_lock(&pi->lock);
    pi->latency.bucket[b]++;
    pi->latency.count++;
    pi->latency.total_ns += ns;
    if (ns > pi->latency.max_ns) {
        pi->latency.max_ns = ns;
    }
    pthread_mutex_unlock(&pi->lock);
}

uint64_t postcopy_latency_percentile(const PostcopyLatency *l, unsigned pct)
{
    uint64_t want, seen = 0;

    if (!l->count) {
        return 0;
    }
    /* The smallest rank that covers pct% of the samples, at least 1. */
    want = (l->count * pct + 99) / 100;
    want = want ? want : 1;
    for (unsigned b = 0; b < POSTCOPY_LATENCY_BUCKETS; b++) {
        seen += l->bucket[b];
        if (seen >= want) {
            uint64_t upper = (2000ull << b) - 1;    /* [2^b, 2^(b+1)) us */

            return upper < l->max_ns ? upper : l->max_ns;
        }
    }
    return l->max_ns;
}

void postcopy_incoming_stats(PostcopyIncoming *pi, PostcopyStats *out)
{
    pthread_mutex_lock(&pi->lock);
    memset(out, 0, sizeof(*out));
    out->state = pi->state;
    out->discarded = pi->discarded;
    out->made_absent = pi->made_absent;
    out->made_absent_listen = pi->made_absent_listen;
    out->prepares = pi->prepares;
    out->placed = pi->placed;
    out->duplicates = pi->duplicates;
    out->requests = pi->latency.count;
    out->blocktime_ns = pi->latency.total_ns;
    out->latency = pi->latency;
    pthread_mutex_unlock(&pi->lock);
    out->p50_ns = postcopy_latency_percentile(&out->latency, 50);
    out->p99_ns = postcopy_latency_percentile(&out->latency, 99);
    out->max_ns = out->latency.max_ns;
}
