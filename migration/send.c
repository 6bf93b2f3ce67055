/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * send.c - the source side of xenram's own precopy migration (see
 * docs/migration.md and docs/migration-stream.md).
 *
 * One migration thread drives the rounds; with the multifd capability,
 * one sender thread per data channel sends the pages.  Each round:
 *   1. CLEAN Xen's log-dirty into the MIGRATION client (the device model's
 *      own writes are there already) and fold the client into the blocks'
 *      bitmaps;
 *   2. turn the bitmaps into the round's plan: the dirty guest frames in
 *      gfn order, cut into chunks of at most one batch; the bits are
 *      cleared as the plan is made, so a page is in one plan only;
 *   3. the senders take chunks from a shared cursor until none is left,
 *      map them, build a batch (zero pages elided, zstd when it pays) and
 *      send it, then send ROUND_END on their channel.
 * Convergence: after each round, expected downtime = dirty bytes / the
 * round's rate; below downtime-limit (or nothing left), switch over: pause
 * the domain, quiesce the devices, one last CLEAN and round, then the
 * device state and the HVM context, and wait for the destination's RESULT.
 *
 * Failure anywhere (peer gone or stalled, cancel, a Xen call): the source
 * guest runs on (unpaused, devices resumed), log-dirty is turned off, the
 * bitmaps are freed and query-migrate says failed with the cause; when
 * the destination refused the stream, the cause is its RESULT's sentence.
 * Once END has gone out the destination may run the guest: from then on
 * migrate_cancel has no effect, and a failure leaves the source paused
 * (no split brain; docs/migration.md, "Failure").
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "migration/migration-internal.h"
#include "migration/pagereq.h"
#include "migration/stream.h"
#include "memory/mapcache.h"
#include "xen/xen.h"

typedef struct SendCtx SendCtx;

/* One sender: a channel, its record counter, its batch. */
typedef struct Sender {
    SendCtx *ctx;
    MigChannel *chan;
    uint32_t seq;
    StreamBatch *batch;
    uint64_t round_pages;
    pthread_t thread;
    bool thread_started;
    bool yielded;                       /* mig_thread_yield_to_requests() */
} Sender;

struct SendCtx {
    Migration *m;
    XenHandles *xh;
    Sender ctl;                         /* the control channel */
    Sender data[MIG_MAX_CHANNELS];
    unsigned ndata;                     /* 0: RAM on the control channel */
    DevState layout_ds;                 /* the layout sent first */
    uint64_t special[MIG_MAX_SPECIAL_FRAMES];   /* frames no block has */
    unsigned nspecial;
    MigRange *ranges;
    size_t nranges;
    RAMBlock *blocks[DEVSTATE_MAX_BLOCKS];
    size_t nblocks;
    /* Postcopy: each block's pages a DISCARD carried already (PREPARE). */
    unsigned long *taken[DEVSTATE_MAX_BLOCKS];
    bool bitmaps, logdirty, paused, devices_stopped;
    /*
     * END went out: the destination may be running the guest.  From then
     * on a failure must not resume the source, or both copies would run.
     */
    bool end_sent;
    /* About to send END: migrate_cancel no longer reaches the channels. */
    bool past_cancel;

    /*
     * Postcopy (docs/postcopy.md).  After the switch the bitmaps hold the
     * pages still to send; @pc_lock guards them, the background cursor
     * and @reqs, so that a page leaves the bitmap once, either for the
     * background or for a request: no page is sent twice.
     */
    bool pc_phase;                      /* senders send postcopy pages */
    bool run_sent;                      /* RUN went out: never resume here */
    uint64_t t_run;                     /* when RUN went out (postcopy) */
    uint64_t listen_round;
    bool preparing;                     /* in send_postcopy_prepare() */
    /* Round 1 was cut short: some pages were never sent. */
    bool round1_cut;
    pthread_mutex_t pc_lock;
    pthread_cond_t pc_cond;             /* a request, the end, a failure */
    size_t pc_range;                    /* background cursor: range ... */
    uint64_t pc_page;                   /* ... and page of its block */
    bool pc_background_done;
    bool pc_failed;
    MigPageQueue reqs;                  /* asked for, bits already taken */
    uint64_t pc_resent;                 /* atomic: asked again in flight */
    Sender *preempt;                    /* postcopy-preempt's channel */
    /*
     * With preempt the return path's reader sends the requested pages on
     * the preempt channel itself (no hand-over to a sender thread: one
     * wake-up less on a vCPU's wait).  @preempt_lock serialises that
     * channel's writes, from taking a request's bits to sending them;
     * @preempt_closed: its ROUND_END went out, nothing more on it.
     */
    pthread_mutex_t preempt_lock;
    bool preempt_closed;
    /* The return path: PAGE_REQUESTs, then RESULT. */
    pthread_t rp_thread;
    bool rp_started, rp_result;
    int rp_ret;
    uint32_t rp_seq0;                   /* the reader's first record number */
    uint32_t rp_status;
    unsigned recoveries;                /* postcopy recoveries that worked */
    /* What the channels a recovery replaced had sent (control, data). */
    uint64_t gone_bytes, gone_data_bytes;
    char rp_err[512];
    uint64_t pc_requests, pc_requested, pc_background;     /* atomic */

    /* The round's plan: gfns in order, chunk k is [cut[k], cut[k + 1]). */
    uint64_t *plan;
    size_t plan_len, plan_cap;
    size_t *cut;
    size_t ncuts, cut_cap;
    size_t next_chunk;                  /* atomic */
    uint64_t round;
    /* A live round, which migrate-start-postcopy may cut short (never a
     * round with the guest paused). */
    bool may_cut;

    /* The senders' rendezvous, under @lock. */
    pthread_mutex_t lock;
    pthread_cond_t go, done;
    /* Parts sent so far (a recovery sends the same round again). */
    uint64_t go_gen;
    unsigned finished;                  /* senders done with go_gen */
    bool quit;
    int failed;                         /* first sender error, -errno */
    char ferr[512];

    /* auto-converge: the scheduler cap the guest had, and ours. */
    bool throttling;
    uint32_t saved_cap, nr_vcpus, throttle_pct;
    unsigned high_dirty;                /* rounds that dirtied too much */

    /* Statistics, atomic. */
    uint64_t normal, zero, normal_bytes;
    uint64_t bw_start_ns, bw_start_bytes;
    uint64_t round_start_ns, round_start_bytes;
    uint64_t limit_bytes_per_s;
    int zstd_level;
};

/* ---- statistics ---------------------------------------------------------------- */

/* A channel's bytes; 0 for one that was never connected (setup failed). */
static uint64_t chan_bytes(const MigChannel *ch)
{
    return ch ? __atomic_load_n(&ch->bytes_out, __ATOMIC_RELAXED) : 0;
}

static uint64_t send_bytes(SendCtx *c)
{
    uint64_t b = c->gone_bytes + c->gone_data_bytes + chan_bytes(c->ctl.chan);

    for (unsigned i = 0; i < c->ndata; i++) {
        b += chan_bytes(c->data[i].chan);
    }
    return b;
}

static uint64_t send_data_bytes(SendCtx *c)
{
    uint64_t b = c->gone_data_bytes;

    for (unsigned i = 0; i < c->ndata; i++) {
        b += chan_bytes(c->data[i].chan);
    }
    return b;
}

/* @dirty_rate UINT64_MAX: no sync since the last update, keep it. */
static void send_update_info(SendCtx *c, uint64_t remaining_pages,
                             double bytes_per_s, uint64_t dirty_rate)
{
    Migration *m = c->m;
    double mbps = bytes_per_s * 8 / 1e6;

    pthread_mutex_lock(&m->lock);
    m->info.ram.transferred = send_bytes(c);
    m->info.ram.multifd_bytes = send_data_bytes(c);
    m->info.ram.remaining = remaining_pages * XR_PAGE_SIZE;
    m->info.ram.duplicate = __atomic_load_n(&c->zero, __ATOMIC_RELAXED);
    m->info.ram.normal = __atomic_load_n(&c->normal, __ATOMIC_RELAXED);
    m->info.ram.normal_bytes = __atomic_load_n(&c->normal_bytes,
                                               __ATOMIC_RELAXED);
    m->info.ram.dirty_sync_count = c->round;
    if (bytes_per_s > 0) {
        m->info.ram.mbps = mbps;
        m->info.ram.pages_per_second =
            (uint64_t)(bytes_per_s / XR_PAGE_SIZE);
        m->info.expected_downtime =
            (uint64_t)(remaining_pages * XR_PAGE_SIZE * 1000.0 /
                       bytes_per_s);
    }
    /* Between syncs the last sync's rate stands, as in QEMU. */
    if (dirty_rate != UINT64_MAX) {
        m->info.ram.dirty_pages_rate = dirty_rate;
    }
    pthread_mutex_unlock(&m->lock);
}

/*
 * Progress inside a round: bytes so far, the pages of the plan not yet
 * taken, the rate since the round began.
 */
static void send_progress(SendCtx *c)
{
    size_t taken = __atomic_load_n(&c->next_chunk, __ATOMIC_RELAXED);
    uint64_t left_pages = 0, el = mig_now_ns() - c->round_start_ns;
    double rate = el ? (double)(send_bytes(c) - c->round_start_bytes) *
                       1e9 / (double)el : 0;

    if (taken < c->ncuts) {
        left_pages = c->plan_len - c->cut[taken];
    }
    send_update_info(c, left_pages, rate, UINT64_MAX);
}

/* ---- sending records ------------------------------------------------------------- */

static int send_record(Sender *s, uint32_t type, const void *body,
                       size_t len, char *err, size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)body, .iov_len = len },
    };

    stream_record_header(type, s->seq++, &iov[1], 1, hdr);
    return mig_channel_writev_all(s->chan, iov, 2, err, errlen);
}

/*
 * max-bandwidth: sleep until the bytes sent so far fit the limit.  The
 * limit is shared by the channels, each taking its part.
 */
static void send_throttle(SendCtx *c)
{
    uint64_t limit = c->limit_bytes_per_s, sent, el, due;

    if (!limit) {
        return;
    }
    sent = send_bytes(c) - c->bw_start_bytes;
    el = mig_now_ns() - c->bw_start_ns;
    due = (uint64_t)((double)sent * 1e9 / (double)limit);
    if (due > el) {
        uint64_t ns = due - el;
        struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
                               .tv_nsec = (long)(ns % 1000000000ull) };

        nanosleep(&ts, NULL);
    }
}

/*
 * Postcopy's pages through the mapcache: the source is paused and its p2m
 * no longer changes (hot-plug is refused), so mappings kept from one
 * batch to the next stay right, and a page a vCPU waits for costs no map
 * and unmap of its own (on the simulator two round trips to the host,
 * most of a request's service time).  False if a frame could not be had
 * this way for another reason than not being there: map it the usual way.
 */
static bool batch_from_mapcache(SendCtx *c, StreamBatch *b,
                                const uint64_t *gfns, size_t n)
{
    MapCache *mc = c->m->cfg.mc;
    bool ok = true;

    rcu_read_lock();
    for (size_t i = 0; ok && i < n; i++) {
        int st = 0;
        void *p = mapcache_get(mc, gfns[i] << XR_PAGE_BITS, XR_PAGE_SIZE,
                               &st);

        if (p) {
            stream_batch_add(b, gfns[i], p);
        } else if (st == -EFAULT) {
            stream_batch_add_absent(b, gfns[i]);
        } else {
            ok = false;
        }
    }
    rcu_read_unlock();
    return ok;
}

/*
 * Send the @n frames @gfns (increasing) as one batch on @s; @postcopy:
 * after the switch, for the destination to place; @asked: pages the
 * destination asked for, never held back by max-bandwidth (a vCPU waits
 * on them; their bytes still count, so the background waits longer).
 */
static int send_pages(Sender *s, const uint64_t *gfns, size_t n,
                      bool postcopy, bool asked, char *err, size_t errlen)
{
    SendCtx *c = s->ctx;
    xen_pfn_t pfns[STREAM_BATCH_MAX_PAGES];
    int errs[STREAM_BATCH_MAX_PAGES], ret = 0;
    struct iovec iov[3];
    StreamCodec codec;
    uint8_t *map;

    if (n == 0 || n > STREAM_BATCH_MAX_PAGES) {
        return 0;
    }
    if (postcopy && c->m->cfg.mc) {
        stream_batch_reset(s->batch, c->round);
        stream_batch_set_postcopy(s->batch);
        if (batch_from_mapcache(c, s->batch, gfns, n)) {
            stream_batch_finish(s->batch, s->seq++, iov, &codec);
            goto send;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pfns[i] = gfns[i];
    }
    map = xen_map(c->xh, pfns, n, false, errs, &ret);
    if (!map) {
        snprintf(err, errlen, "mapping %zu guest frames from gfn %#" PRIx64
                 " failed: %s", n, gfns[0], xen_last_error());
        return ret ? ret : -EFAULT;
    }
    stream_batch_reset(s->batch, c->round);
    if (postcopy) {
        stream_batch_set_postcopy(s->batch);
    }
    for (size_t i = 0; i < n; i++) {
        /* A frame the guest does not have (the VGA hole, ballooned). */
        if (errs[i]) {
            stream_batch_add_absent(s->batch, gfns[i]);
            continue;
        }
        stream_batch_add(s->batch, gfns[i], map + i * XR_PAGE_SIZE);
    }
    stream_batch_finish(s->batch, s->seq++, iov, &codec);
    xen_unmap(c->xh, map, n);
send:
    ret = mig_channel_writev_all(s->chan, iov, 3, err, errlen);
    if (ret) {
        return ret;
    }
    __atomic_add_fetch(&c->zero, stream_batch_zero_pages(s->batch),
                       __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->normal, n - stream_batch_zero_pages(s->batch),
                       __ATOMIC_RELAXED);
    __atomic_add_fetch(&c->normal_bytes,
                       (n - stream_batch_zero_pages(s->batch)) * XR_PAGE_SIZE,
                       __ATOMIC_RELAXED);
    s->round_pages += n;
    if (!asked) {
        send_throttle(c);
    }
    return 0;
}

/* Send chunk @k of the plan as one batch on @s. */
static int send_chunk(Sender *s, size_t k, char *err, size_t errlen)
{
    SendCtx *c = s->ctx;

    return send_pages(s, c->plan + c->cut[k], c->cut[k + 1] - c->cut[k],
                      false, false, err, errlen);
}

/* ---- postcopy: the pages after the switch -------------------------------------- */

/*
 * The background after the switch, kept short on the way: batches of
 * PC_BACKGROUND_PAGES, and no new one while more than PC_PIPE_BYTES sit
 * in the channel's socket, unread or unplaced by the destination (its
 * loads, a hypercall a page, are what limits the rate).  A page the
 * background took before a vCPU asked for it waits for everything ahead
 * of it on that channel, and without postcopy-preempt so does every
 * requested page: with 4 MiB socket buffers and 2 MiB batches that was
 * hundreds of ms.  Two batches queued keep the destination busy.
 */
#define PC_BACKGROUND_PAGES     128
#define PC_PIPE_BYTES           (2 * PC_BACKGROUND_PAGES * XR_PAGE_SIZE)
#define PC_PIPE_POLL_NS         200000L

/* Whether @s's socket holds more than PC_PIPE_BYTES not yet read. */
static bool pc_pipe_full(Sender *s)
{
    int queued = 0;

    /* SIOCOUTQ: unix and TCP sockets; a channel without one: never. */
    return s->chan->fd >= 0 && ioctl(s->chan->fd, SIOCOUTQ, &queued) == 0 &&
           queued > (int)PC_PIPE_BYTES;
}

/*
 * Up to PC_BACKGROUND_PAGES frames still to send, in gfn order from
 * the background cursor, taken out of the bitmaps.  Under @pc_lock.
 */
static size_t pc_take_background(SendCtx *c, uint64_t *gfns)
{
    size_t n = 0;

    while (c->pc_range < c->nranges && n < PC_BACKGROUND_PAGES) {
        const MigRange *mr = &c->ranges[c->pc_range];
        DirtyBitmap *bm = mr->block ? mr->block->bmap : NULL;
        uint64_t end = mr->page + mr->n;
        uint64_t p = MAX(c->pc_page, mr->page);

        p = bm ? dirty_bitmap_find_next(bm, p) : end;
        while (p < end && n < PC_BACKGROUND_PAGES) {
            dirty_bitmap_test_and_clear(bm, p);
            gfns[n++] = mr->gfn + (p - mr->page);
            p = dirty_bitmap_find_next(bm, p + 1);
        }
        if (p >= end) {
            c->pc_range++;
            c->pc_page = 0;
        } else {
            c->pc_page = p;
        }
    }
    return n;
}

/*
 * After the switch: pages asked for first (only those, on the preempt
 * channel when there is one), then the background, until every page is
 * sent; then this channel's ROUND_END.  Once the background is
 * exhausted and no request waits, no page can be sent any more (a later
 * request finds its pages out of the bitmaps: in flight or arrived).
 */
static int send_postcopy_part(Sender *s, char *err, size_t errlen)
{
    SendCtx *c = s->ctx;
    /* With preempt the reader sends requests (rp_send_requested()). */
    bool requests = !c->preempt;
    bool background = !c->preempt || s != c->preempt;
    uint64_t gfns[STREAM_BATCH_MAX_PAGES];
    uint8_t body[STREAM_ROUND_END_LEN];
    int ret;

    if (s == c->preempt) {
        /* The return path's reader counts its sends here, under the lock. */
        pthread_mutex_lock(&c->preempt_lock);
        s->round_pages = 0;
        pthread_mutex_unlock(&c->preempt_lock);
    } else {
        s->round_pages = 0;
    }
    if (c->preempt && background && !s->yielded) {
        /* The background gives way to the requested pages' senders. */
        s->yielded = true;
        mig_thread_yield_to_requests();
    }
    for (;;) {
        MigPageRun run;
        size_t n = 0;
        bool asked = false, full;

        pthread_mutex_lock(&c->pc_lock);
        for (;;) {
            if (c->pc_failed) {
                break;
            }
            if (requests && mig_page_queue_pop(&c->reqs, &run, false)) {
                for (uint32_t i = 0; i < run.n; i++) {
                    gfns[i] = run.gfn + i;
                }
                n = run.n;
                asked = true;
                break;
            }
            full = background && !c->pc_background_done &&
                   pc_pipe_full(s);
            if (background && !c->pc_background_done && !full) {
                n = pc_take_background(c, gfns);
                if (n) {
                    break;
                }
                c->pc_background_done = true;
                pthread_cond_broadcast(&c->pc_cond);
            }
            if (c->pc_background_done && !mig_page_queue_len(&c->reqs)) {
                break;
            }
            if (full) {
                /* Until the destination took some (a request wakes us
                 * at once). */
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);     /* pc_cond's */
                ts.tv_nsec += PC_PIPE_POLL_NS;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&c->pc_cond, &c->pc_lock, &ts);
            } else if (!background || c->pc_background_done) {
                pthread_cond_wait(&c->pc_cond, &c->pc_lock);
            }
        }
        ret = c->pc_failed ? -ECANCELED : 0;
        pthread_mutex_unlock(&c->pc_lock);
        if (ret) {
            snprintf(err, errlen, "another channel failed");
            return ret;
        }
        if (!n) {
            break;
        }
        if ((ret = send_pages(s, gfns, n, true, asked, err, errlen))) {
            return ret;
        }
        __atomic_add_fetch(asked ? &c->pc_requested : &c->pc_background, n,
                           __ATOMIC_RELAXED);
    }
    if (s != c->preempt) {
        stream_round_end_encode(c->round, s->round_pages, body);
        return send_record(s, STREAM_REC_ROUND_END, body, sizeof(body), err,
                           errlen);
    }
    /*
     * The background is done: no bit is left for a request to take, and
     * a reader that took some has sent them (it holds the lock from
     * taking to sending).  After the ROUND_END nothing more goes here.
     */
    pthread_mutex_lock(&c->preempt_lock);
    c->preempt_closed = true;
    stream_round_end_encode(c->round, s->round_pages, body);
    ret = send_record(s, STREAM_REC_ROUND_END, body, sizeof(body), err,
                      errlen);
    pthread_mutex_unlock(&c->preempt_lock);
    return ret;
}

/* Stop every sender of the postcopy phase (a failure). */
static void pc_fail(SendCtx *c)
{
    pthread_mutex_lock(&c->pc_lock);
    c->pc_failed = true;
    pthread_cond_broadcast(&c->pc_cond);
    pthread_mutex_unlock(&c->pc_lock);
}

/*
 * migrate-start-postcopy cuts the round short (QEMU switches at once, a
 * first pass or not): no more chunks are taken, and what was left of the
 * plan goes back to the bitmaps for postcopy (plan_give_back).  Not with
 * x-postcopy-after-rounds, which asks for whole rounds.
 */
static bool send_cut_short(SendCtx *c)
{
    return c->may_cut && c->m->caps.postcopy_ram &&
           !c->m->params.x_postcopy_after_rounds &&
           __atomic_load_n(&c->m->start_postcopy, __ATOMIC_ACQUIRE);
}

/* Send chunks until the plan is exhausted, then this channel's ROUND_END. */
static int send_round_part(Sender *s, char *err, size_t errlen)
{
    SendCtx *c = s->ctx;
    uint8_t body[STREAM_ROUND_END_LEN];
    size_t k;
    int ret;

    if (c->pc_phase) {
        return send_postcopy_part(s, err, errlen);
    }
    s->round_pages = 0;
    /* The preempt channel carries requested pages only: its precopy
     * rounds are empty. */
    while (s != c->preempt && !send_cut_short(c) &&
           (k = __atomic_fetch_add(&c->next_chunk, 1, __ATOMIC_RELAXED)) <
           c->ncuts) {
        if (mig_cancelled(c->m)) {
            snprintf(err, errlen, "cancelled");
            return -ECANCELED;
        }
        ret = send_chunk(s, k, err, errlen);
        if (ret) {
            return ret;
        }
    }
    stream_round_end_encode(c->round, s->round_pages, body);
    return send_record(s, STREAM_REC_ROUND_END, body, sizeof(body), err,
                       errlen);
}

/*
 * A sender failed: wake the other senders so that the round ends.  The
 * control channel is left alone (nobody writes on it during a round): a
 * destination that refused the stream says why on it.
 */
static void send_abort(SendCtx *c)
{
    pc_fail(c);
    for (unsigned i = 0; i < c->ndata; i++) {
        mig_channel_cancel(c->data[i].chan);
    }
}

static void *send_worker(void *opaque)
{
    Sender *s = opaque;
    SendCtx *c = s->ctx;
    uint64_t done_gen = 0;

    /* Postcopy's pages come through the mapcache (batch_from_mapcache). */
    rcu_register_thread();
    for (;;) {
        char err[512] = "";
        int ret;

        pthread_mutex_lock(&c->lock);
        while (!c->quit && c->go_gen == done_gen) {
            pthread_cond_wait(&c->go, &c->lock);
        }
        if (c->quit) {
            pthread_mutex_unlock(&c->lock);
            rcu_unregister_thread();
            return NULL;
        }
        done_gen = c->go_gen;
        pthread_mutex_unlock(&c->lock);

        ret = send_round_part(s, err, sizeof(err));

        if (ret) {
            pthread_mutex_lock(&c->lock);
            if (!c->failed) {
                c->failed = ret;
                snprintf(c->ferr, sizeof(c->ferr), "%s", err);
            }
            pthread_mutex_unlock(&c->lock);
            /*
             * The others must not wait on a channel that is gone.  Before
             * this sender counts as finished: once all have, the channels
             * may be closed (a postcopy recovery does at once).
             */
            send_abort(c);
        }
        pthread_mutex_lock(&c->lock);
        c->finished++;
        pthread_cond_signal(&c->done);
        pthread_mutex_unlock(&c->lock);
    }
}

/* Send the current plan on every data channel (or on control), wait. */
static int send_round(SendCtx *c, char *err, size_t errlen)
{
    int ret;

    c->next_chunk = 0;
    c->round_start_ns = mig_now_ns();
    c->round_start_bytes = send_bytes(c);
    if (!c->ndata) {
        return send_round_part(&c->ctl, err, errlen);
    }
    pthread_mutex_lock(&c->lock);
    c->finished = 0;
    c->go_gen++;
    pthread_cond_broadcast(&c->go);
    while (c->finished < c->ndata) {
        struct timespec ts;

        /* query-migrate moves every 100 ms, not only at round ends. */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (pthread_cond_timedwait(&c->done, &c->lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&c->lock);
            send_progress(c);
            pthread_mutex_lock(&c->lock);
        }
    }
    ret = c->failed;
    if (ret) {
        snprintf(err, errlen, "%s", c->ferr);
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* ---- the plan ----------------------------------------------------------------------- */

static int plan_push(SendCtx *c, uint64_t gfn)
{
    if (c->plan_len == c->plan_cap) {
        size_t cap = c->plan_cap ? 2 * c->plan_cap : 4096;
        uint64_t *p = realloc(c->plan, cap * sizeof(*p));

        if (!p) {
            return -ENOMEM;
        }
        c->plan = p;
        c->plan_cap = cap;
    }
    c->plan[c->plan_len++] = gfn;
    return 0;
}

/*
 * The switch to postcopy: of the pages the bitmaps still hold, those the
 * source does not have (the VGA hole, ballooned frames: never sent, when
 * round 1 was cut short) into the plan, their bits cleared.  They travel
 * as ABSENT before LISTEN, so that the destination gives their frames
 * back as precopy does, instead of paging them out and having to place
 * something there.  The guest is paused: the mapcache says which.
 */
static int plan_push_absent(SendCtx *c)
{
    MapCache *mc = c->m->cfg.mc;
    int ret = 0;

    if (!mc) {
        return 0;
    }
    rcu_read_lock();
    for (size_t r = 0; !ret && r < c->nranges; r++) {
        const MigRange *mr = &c->ranges[r];
        DirtyBitmap *bm = mr->block->bmap;
        uint64_t end = mr->page + mr->n;

        for (uint64_t p = dirty_bitmap_find_next(bm, mr->page);
             !ret && p < end; p = dirty_bitmap_find_next(bm, p + 1)) {
            uint64_t gfn = mr->gfn + (p - mr->page);
            int st = 0;

            if (!mapcache_get(mc, gfn << XR_PAGE_BITS, XR_PAGE_SIZE, &st) &&
                st == -EFAULT) {
                dirty_bitmap_test_and_clear(bm, p);
                ret = plan_push(c, gfn);
            }
        }
    }
    rcu_read_unlock();
    return ret;
}

/*
 * The round's plan from the bitmaps (clearing them), cut into batches.
 * The ranges are sorted by gfn, so every batch's gfns increase.
 * @absent: instead of the bitmaps' pages, those of them the source
 * does not have (plan_push_absent).
 */
static int plan_build(SendCtx *c, bool with_bitmaps, bool with_special,
                      bool absent)
{
    size_t special_at;

    c->plan_len = 0;
    c->ncuts = 0;
    if (absent && plan_push_absent(c)) {
        return -ENOMEM;
    }
    for (size_t r = 0; with_bitmaps && r < c->nranges; r++) {
        const MigRange *mr = &c->ranges[r];
        DirtyBitmap *bm = mr->block->bmap;
        uint64_t end = mr->page + mr->n;

        for (uint64_t p = dirty_bitmap_find_next(bm, mr->page); p < end;
             p = dirty_bitmap_find_next(bm, p + 1)) {
            if (plan_push(c, mr->gfn + (p - mr->page))) {
                return -ENOMEM;
            }
        }
        dirty_bitmap_clear_range(bm, mr->page, mr->n);
    }
    /*
     * The special frames are in no bitmap: sent whole in the first round
     * and again in the last, when the guest can no longer change them.
     */
    special_at = c->plan_len;
    for (unsigned i = 0; with_special && i < c->nspecial; i++) {
        if (plan_push(c, c->special[i])) {
            return -ENOMEM;
        }
    }
    /* Chunks of STREAM_BATCH_MAX_PAGES: cut[k] is where chunk k starts. */
    c->ncuts = 0;
    for (size_t i = 0; i <= c->plan_len; i++) {
        /* Own batches for the special frames: gfns must increase in one. */
        bool cut = i == 0 || i == c->plan_len ||
                   i - c->cut[c->ncuts - 1] == STREAM_BATCH_MAX_PAGES ||
                   (i == special_at && c->cut[c->ncuts - 1] != i);

        if (!cut) {
            continue;
        }
        if (c->ncuts + 1 >= c->cut_cap) {
            size_t cap = c->cut_cap ? 2 * c->cut_cap : 256;
            size_t *p = realloc(c->cut, cap * sizeof(*p));

            if (!p) {
                return -ENOMEM;
            }
            c->cut = p;
            c->cut_cap = cap;
        }
        c->cut[c->ncuts++] = i;
    }
    /* ncuts boundaries make ncuts - 1 chunks. */
    c->ncuts = c->ncuts ? c->ncuts - 1 : 0;
    return 0;
}

/*
 * A round cut short: the pages of chunks [@from, ncuts) were not sent;
 * their bits go back (the special frames have none: the switch sends
 * them again with the guest paused).
 */
static void plan_give_back(SendCtx *c, size_t from)
{
    size_t r = 0;

    for (size_t i = from < c->ncuts ? c->cut[from] : c->plan_len;
         i < c->plan_len; i++) {
        uint64_t gfn = c->plan[i];

        while (r < c->nranges &&
               gfn >= c->ranges[r].gfn + c->ranges[r].n) {
            r++;
        }
        if (r == c->nranges) {
            break;              /* the special frames, after every range */
        }
        if (gfn >= c->ranges[r].gfn && c->ranges[r].block) {
            dirty_bitmap_set_range(c->ranges[r].block->bmap,
                                   c->ranges[r].page +
                                   (gfn - c->ranges[r].gfn), 1);
        }
    }
}

/*
 * CLEAN Xen's log into the MIGRATION client and fold the client into the
 * blocks' bitmaps.  Returns the pages now to send, or -errno.
 */
static int64_t send_sync(SendCtx *c, char *err, size_t errlen)
{
    uint64_t total = 0;
    int64_t ret = xen_memory_sync_migration(c->m->cfg.xm, true);

    if (ret < 0) {
        snprintf(err, errlen, "reading Xen's log-dirty failed: %s",
                 xen_memory_last_error(c->m->cfg.xm));
        return ret;
    }
    for (size_t i = 0; i < c->nblocks; i++) {
        DirtyBitmap *bm = c->blocks[i]->bmap;

        ret = dirty_memory_sync_bitmap(&c->m->cfg.ram->dirty, bm, 0,
                                       bm->npages);
        if (ret < 0) {
            snprintf(err, errlen, "folding the dirty log into block '%s': "
                     "%s", c->blocks[i]->idstr, strerror((int)-ret));
            return ret;
        }
        total += dirty_bitmap_count(bm);
    }
    return (int64_t)total;
}

/* ---- setup and teardown ---------------------------------------------------------- */

/*
 * Connect the control channel and the data channels to m->uri (or take
 * m->fd) and send their stream headers.  @resume: a postcopy recovery's
 * (STREAM_HEADER_F_RESUME; the channels registered for migrate-pause, not
 * for migrate_cancel, which no longer applies).
 */
static int send_open_channels(SendCtx *c, bool resume, char *err,
                              size_t errlen)
{
    Migration *m = c->m;
    StreamHeader h = { .version = STREAM_VERSION,
                       .role = STREAM_CHANNEL_CONTROL,
                       .nchannels = c->ndata,
                       .flags = resume ? STREAM_HEADER_F_RESUME : 0 };
    void (*track)(Migration *, MigChannel *) = resume ? mig_track_pause
                                                      : mig_track_channel;
    uint8_t buf[STREAM_HEADER_LEN];
    MigAddress a;
    int ret;

    if (m->fd >= 0) {
        ret = mig_channel_from_fd(m->fd, "control", MIG_STALL_MS,
                                  &c->ctl.chan);
        if (ret) {
            snprintf(err, errlen, "the migration fd: %s", strerror(-ret));
            return ret;
        }
        m->fd = -1;
    } else {
        if ((ret = mig_address_parse(m->uri, &a, err, errlen)) ||
            (ret = mig_channel_connect(&a, "control", MIG_STALL_MS,
                                       &c->ctl.chan, err, errlen))) {
            return ret;
        }
    }
    track(m, c->ctl.chan);
    stream_header_encode(&h, buf);
    ret = mig_channel_write_all(c->ctl.chan, buf, sizeof(buf), err, errlen);
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        char name[32];

        snprintf(name, sizeof(name), "data %u", i + 1);
        ret = mig_channel_connect(&a, name, MIG_STALL_MS, &c->data[i].chan,
                                  err, errlen);
        if (ret) {
            break;
        }
        track(m, c->data[i].chan);
        h.role = STREAM_CHANNEL_DATA;
        h.channel = i + 1;
        stream_header_encode(&h, buf);
        ret = mig_channel_write_all(c->data[i].chan, buf, sizeof(buf), err,
                                    errlen);
    }
    return ret;
}

/* Unique blocks of the ranges, with their bitmaps: the pages to send. */
static int send_alloc_bitmaps(SendCtx *c, char *err, size_t errlen)
{
    for (size_t r = 0; r < c->nranges; r++) {
        RAMBlock *b = c->ranges[r].block;
        bool seen = false;

        for (size_t i = 0; i < c->nblocks && !seen; i++) {
            seen = c->blocks[i] == b;
        }
        if (!seen) {
            c->blocks[c->nblocks++] = b;
        }
    }
    for (size_t i = 0; i < c->nblocks; i++) {
        int ret = ram_block_alloc_migration_bitmaps(c->blocks[i], 0);

        if (ret) {
            snprintf(err, errlen, "allocating the migration bitmap of '%s': "
                     "%s", c->blocks[i]->idstr, strerror(-ret));
            return ret;
        }
        /*
         * Everything is sent in the first round: what the MIGRATION client
         * gathered before now (a new block starts all dirty) is drained,
         * or the second round would send it all again.  Then only what the
         * guest can see stays: not the hole of xen.ram.
         */
        dirty_memory_sync_bitmap(&c->m->cfg.ram->dirty, c->blocks[i]->bmap,
                                 0, c->blocks[i]->bmap->npages);
        dirty_bitmap_clear_range(c->blocks[i]->bmap, 0,
                                 c->blocks[i]->bmap->npages);
    }
    c->bitmaps = true;
    for (size_t r = 0; r < c->nranges; r++) {
        dirty_bitmap_set_range(c->ranges[r].block->bmap, c->ranges[r].page,
                               c->ranges[r].n);
    }
    return 0;
}

/*
 * The domain's HVM parameters (always sent, perhaps empty: the receiver
 * populates the special frames they name before any page arrives).
 */
static int send_hvm_params(SendCtx *c, char *err, size_t errlen)
{
    MigHvmParam p[MIG_MAX_HVM_PARAMS];
    uint8_t body[MIG_MAX_HVM_PARAMS * 16];
    uint32_t index[MIG_MAX_HVM_PARAMS];
    uint64_t value[MIG_MAX_HVM_PARAMS];
    int n = mig_hvm_params_get(c->xh, p), k;

    if (n < 0) {
        snprintf(err, errlen, "reading the domain's HVM parameters: %s",
                 xen_last_error());
        return n;
    }
    k = mig_special_frames(p, (unsigned)n, c->ranges, c->nranges,
                           c->special);
    if (k < 0) {
        snprintf(err, errlen, "the domain's HVM parameters name frames "
                 "beyond what a guest can address");
        return k;
    }
    c->nspecial = (unsigned)k;
    for (int i = 0; i < n; i++) {
        index[i] = p[i].index;
        value[i] = p[i].value;
    }
    stream_hvm_params_encode(index, value, (unsigned)n, body);
    return send_record(&c->ctl, STREAM_REC_HVM_PARAMS, body, 16 * (size_t)n,
                       err, errlen);
}

static int send_setup(SendCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    uint8_t *buf;
    size_t len;
    int ret;

    c->zstd_level = m->params.multifd_compression ==
                    MIGRATION_COMPRESSION_ZSTD ?
                    (int)m->params.multifd_zstd_level : 0;
    c->limit_bytes_per_s = m->params.max_bandwidth;
    c->ndata = m->caps.multifd ? m->params.multifd_channels : 0;
    /* postcopy-preempt: one more data channel, for requested pages. */
    if (m->caps.postcopy_ram && m->caps.postcopy_preempt && c->ndata &&
        c->ndata < MIG_MAX_CHANNELS) {
        c->ndata++;
        c->preempt = &c->data[c->ndata - 1];
    }
    if (m->caps.postcopy_ram &&
        (ret = mig_page_queue_init(&c->reqs, 1u << 16))) {
        snprintf(err, errlen, "out of memory for the page-request queue");
        return ret;
    }
    mig_hotplug_set_blocked(m, "a migration is in progress");
    if ((ret = send_open_channels(c, false, err, errlen))) {
        return ret;
    }
    ret = stream_batch_new(c->zstd_level, &c->ctl.batch);
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        c->data[i].ctx = c;
        ret = stream_batch_new(c->zstd_level, &c->data[i].batch);
    }
    if (ret) {
        snprintf(err, errlen, "out of memory for the batches");
        return ret;
    }
    c->ctl.ctx = c;
    if ((ret = migration_layout_capture(m, &c->layout_ds))) {
        snprintf(err, errlen, "collecting the RAM layout: %s", strerror(-ret));
        return ret;
    }
    if ((ret = mig_ranges_from_layout(m, &c->layout_ds, &c->ranges,
                                      &c->nranges, err, errlen)) ||
        (ret = send_alloc_bitmaps(c, err, errlen))) {
        return ret;
    }
    /* From here on every guest write is logged; ENABLE starts it clean. */
    ret = xen_logdirty_enable(c->xh);
    if (ret) {
        snprintf(err, errlen, "turning Xen's log-dirty on: %s",
                 xen_last_error());
        return ret;
    }
    c->logdirty = true;
    ret = devstate_encode(&c->layout_ds, &buf, &len, err, errlen);
    if (ret) {
        return ret;
    }
    ret = send_record(&c->ctl, STREAM_REC_LAYOUT, buf, len, err, errlen);
    free(buf);
    if (!ret) {
        ret = send_hvm_params(c, err, errlen);
    }
    if (!ret && m->caps.postcopy_ram) {
        uint8_t advise[STREAM_POSTCOPY_ADVISE_LEN];

        stream_postcopy_advise_encode(XR_PAGE_SIZE, advise);
        ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_ADVISE, advise,
                          sizeof(advise), err, errlen);
    }
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        ret = -pthread_create(&c->data[i].thread, NULL, send_worker,
                              &c->data[i]);
        if (ret) {
            snprintf(err, errlen, "cannot start a sender thread: %s",
                     strerror(-ret));
        } else {
            c->data[i].thread_started = true;
        }
    }
    return ret;
}

static void send_stop_workers(SendCtx *c)
{
    pthread_mutex_lock(&c->lock);
    c->quit = true;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->lock);
    for (unsigned i = 0; i < c->ndata; i++) {
        if (c->data[i].thread_started) {
            pthread_join(c->data[i].thread, NULL);
            c->data[i].thread_started = false;
        }
    }
}

static void send_cleanup(SendCtx *c, bool completed)
{
    Migration *m = c->m;

    pc_fail(c);                 /* postcopy's senders may wait on pc_cond */
    send_stop_workers(c);
    mig_untrack_channels(m);
    if (c->rp_started) {
        /* The reader waits on the control channel: wake it. */
        mig_channel_cancel(c->ctl.chan);
        pthread_join(c->rp_thread, NULL);
        c->rp_started = false;
    }
    mig_page_queue_destroy(&c->reqs);
    for (unsigned i = 0; i < c->ndata; i++) {
        mig_channel_close(c->data[i].chan);
        stream_batch_free(c->data[i].batch);
    }
    mig_channel_close(c->ctl.chan);
    stream_batch_free(c->ctl.batch);
    if (c->logdirty) {
        xen_logdirty_disable(c->xh);
    }
    if (c->throttling) {
        xen_sched_cap_set(c->xh, c->saved_cap);
    }
    for (size_t i = 0; i < c->nblocks && c->bitmaps; i++) {
        ram_block_free_migration_bitmaps(c->blocks[i]);
    }
    if (completed) {
        /* Until the toolstack resumes it here (cont), should it ever. */
        mig_hotplug_set_blocked(m, "the guest has migrated to another host "
                                "(the migration completed) and runs there "
                                "now");
    } else if (c->run_sent) {
        mig_hotplug_set_blocked(m, "a postcopy migration failed after the "
                                "guest started on the destination: this "
                                "copy is stale and must not run again");
    } else if (c->end_sent) {
        mig_hotplug_set_blocked(m, "the migration's outcome is unknown (the "
                                "destination may be running the guest): the "
                                "toolstack must check the destination, then "
                                "resume this copy with cont or destroy it");
    } else {
        if (c->devices_stopped && m->ops.resume_devices) {
            m->ops.resume_devices(m->ops.opaque);
        }
        if (c->paused) {
            xen_domain_unpause(c->xh);
            mig_event(m, MIGRATION_EVENT_RESUME, 0);
        }
        mig_hotplug_set_blocked(m, NULL);
    }
    for (size_t i = 0; i < c->nblocks; i++) {
        free(c->taken[i]);
    }
    devstate_free(&c->layout_ds);
    free(c->ranges);
    free(c->plan);
    free(c->cut);
}

/* ---- auto-converge ------------------------------------------------------------------ */

/*
 * QEMU's auto-converge on Xen: when a round dirtied more than
 * throttle-trigger-threshold % of what it sent, twice, cap the domain in
 * the scheduler (credit2's or credit's per-domain cap, a real Xen
 * mechanism) at (100 - p) % of a CPU per vCPU, p starting at
 * cpu-throttle-initial and growing by cpu-throttle-increment up to
 * max-cpu-throttle.  The guest's own cap comes back at the end.
 */
static void send_auto_converge(SendCtx *c, uint64_t dirty_bytes,
                               uint64_t sent_bytes)
{
    const MigrationParams *p = &c->m->params;
    uint32_t pct, cap;

    if (!c->m->caps.auto_converge ||
        dirty_bytes * 100 <= sent_bytes * p->throttle_trigger_threshold ||
        ++c->high_dirty < 2) {
        return;
    }
    c->high_dirty = 0;
    if (!c->throttling) {
        XenDomainInfo di;

        if (xen_domain_info(c->xh, &di) ||
            xen_sched_cap_get(c->xh, &c->saved_cap)) {
            return;             /* no cap to set: precopy goes on as is */
        }
        c->nr_vcpus = di.nr_vcpus ? di.nr_vcpus : 1;
        pct = p->cpu_throttle_initial;
    } else {
        pct = MIN(c->throttle_pct + p->cpu_throttle_increment,
                  p->max_cpu_throttle);
    }
    cap = MAX(c->nr_vcpus * (100 - pct), 1u);
    if (xen_sched_cap_set(c->xh, cap)) {
        return;
    }
    c->throttling = true;
    c->throttle_pct = pct;
    pthread_mutex_lock(&c->m->lock);
    c->m->info.cpu_throttle_percentage = pct;
    pthread_mutex_unlock(&c->m->lock);
}

/* ---- switchover --------------------------------------------------------------------- */

/* pause-before-switchover: wait for migrate-continue or a cancel. */
static int send_wait_continue(SendCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    int ret = 0;

    mig_set_status(m, MIGRATION_STATUS_PRE_SWITCHOVER);
    pthread_mutex_lock(&m->lock);
    while (!m->switchover_go && !mig_cancelled(m)) {
        pthread_cond_wait(&m->cond, &m->lock);
    }
    if (mig_cancelled(m)) {
        snprintf(err, errlen, "cancelled");
        ret = -ECANCELED;
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

/*
 * Read the destination's RESULT: 0 and its status (0: the guest runs
 * there, else an errno) with its sentence in @msg, or -errno with @err.
 */
static int send_read_result(SendCtx *c, uint32_t *status, char *msg,
                            size_t msglen, char *err, size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN], body[512];
    uint32_t type, len;
    int ret;

    /* Records from the destination are numbered on their own. */
    ret = mig_channel_read_all(c->ctl.chan, hdr, sizeof(hdr), err, errlen);
    if (!ret) {
        ret = stream_record_header_check(hdr, 0, &type, &len, err, errlen);
    }
    if (!ret && (type != STREAM_REC_RESULT || len < 4 ||
                 len > sizeof(body))) {
        snprintf(err, errlen, "the destination answered with a record of "
                 "type %u and %u bytes, not a RESULT", type, len);
        ret = -EPROTO;
    }
    if (!ret) {
        ret = mig_channel_read_all(c->ctl.chan, body, len, err, errlen);
    }
    if (!ret) {
        ret = stream_record_verify(hdr, body, len, err, errlen);
    }
    if (ret) {
        return ret;
    }
    memcpy(status, body, 4);
    snprintf(msg, msglen, "%.*s", (int)(len - 4), (const char *)body + 4);
    return 0;
}

/* The destination's RESULT: 0 when the guest runs there. */
static int send_wait_result(SendCtx *c, char *err, size_t errlen)
{
    uint32_t status;
    char msg[512];
    int ret = send_read_result(c, &status, msg, sizeof(msg), err, errlen);

    if (ret) {
        return ret;
    }
    if (status) {
        snprintf(err, errlen, "the destination failed: %.400s", msg);
        return -EIO;
    }
    return 0;
}

/* How long the source waits for a refusing destination's sentence. */
#define SEND_REASON_MS 2000

/*
 * The peer closed a channel under us.  A destination that refused the
 * stream (a corrupt record, a layout it cannot take, a Xen call that
 * failed there) answers RESULT with its reason before it goes: wait a
 * little for it on the control channel and make it the error, so that
 * query-migrate names the cause rather than the closed socket.  A
 * destination that died sends nothing: the error stays as it was.
 */
static void send_peer_reason(SendCtx *c, int ret, char *err, size_t errlen)
{
    char msg[400], e2[256];
    uint32_t status;

    if ((ret != -EPIPE && ret != -ECONNRESET) || !c->ctl.chan ||
        c->end_sent || c->run_sent || c->rp_started) {
        return;
    }
    mig_channel_set_stall(c->ctl.chan, SEND_REASON_MS);
    if (!send_read_result(c, &status, msg, sizeof(msg), e2, sizeof(e2)) &&
        status) {
        snprintf(err, errlen, "the destination failed: %.400s", msg);
    }
}

/*
 * query-migrate's sentence for a migrate_cancel, naming where it struck:
 * the status it found and the round.
 */
static void send_cancel_reason(SendCtx *c, char *err, size_t errlen)
{
    MigrationStatus st;

    pthread_mutex_lock(&c->m->lock);
    st = c->m->info.status;
    pthread_mutex_unlock(&c->m->lock);
    if (c->preparing) {
        snprintf(err, errlen, "migration cancelled by migrate_cancel while "
                 "the destination paged out ahead of the switch to postcopy "
                 "(after round %" PRIu64 "); the guest runs on here",
                 c->round);
        return;
    }
    switch (st) {
    case MIGRATION_STATUS_SETUP:
        snprintf(err, errlen, "migration cancelled by migrate_cancel during "
                 "setup, before any page was sent");
        break;
    case MIGRATION_STATUS_PRE_SWITCHOVER:
        snprintf(err, errlen, "migration cancelled by migrate_cancel while "
                 "paused before switchover (after round %" PRIu64 "); the "
                 "guest runs on here", c->round);
        break;
    case MIGRATION_STATUS_DEVICE:
        snprintf(err, errlen, "migration cancelled by migrate_cancel during "
                 "switchover (round %" PRIu64 ", the guest paused); the "
                 "guest runs on here", c->round);
        break;
    default:
        snprintf(err, errlen, "migration cancelled by migrate_cancel in "
                 "round %" PRIu64 "; the guest runs on here", c->round);
        break;
    }
}

/* The device state and the HVM context, on the control channel. */
static int send_devstate_ctx(SendCtx *c, char *err, size_t errlen)
{
    DevState ds;
    uint8_t *buf;
    uint32_t ctxlen;
    size_t len;
    int ret;

    if ((ret = migration_layout_capture(c->m, &ds))) {
        snprintf(err, errlen, "collecting the device state: %s",
                 strerror(-ret));
        return ret;
    }
    ret = devstate_encode(&ds, &buf, &len, err, errlen);
    devstate_free(&ds);
    if (ret) {
        return ret;
    }
    ret = send_record(&c->ctl, STREAM_REC_DEVSTATE, buf, len, err, errlen);
    free(buf);
    if (ret) {
        return ret;
    }
    ret = xen_hvm_context_get(c->xh, &buf, &ctxlen);
    if (ret) {
        snprintf(err, errlen, "reading the domain's HVM context: %s",
                 xen_last_error());
        return ret;
    }
    ret = send_record(&c->ctl, STREAM_REC_HVM_CONTEXT, buf, ctxlen, err,
                      errlen);
    free(buf);
    return ret;
}

/* The state after the RAM: device state, HVM context, END everywhere. */
static int send_state(SendCtx *c, char *err, size_t errlen)
{
    int ret = send_devstate_ctx(c, err, errlen);

    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        ret = send_record(&c->data[i], STREAM_REC_END, NULL, 0, err, errlen);
    }
    if (ret) {
        return ret;
    }
    /*
     * The point of no return: once END is out the destination may run the
     * guest, and a cancel could only leave the source not knowing whether
     * it does.  From here migrate_cancel no longer reaches the channels
     * (a cancel that came first has cancelled them: END then fails).
     */
    mig_untrack_channels(c->m);
    if (mig_cancelled(c->m)) {
        snprintf(err, errlen, "cancelled");
        return -ECANCELED;
    }
    c->past_cancel = true;
    ret = send_record(&c->ctl, STREAM_REC_END, NULL, 0, err, errlen);
    c->end_sent = !ret;
    return ret;
}

/*
 * One pass with the guest paused: the last CLEAN into the bitmaps (*@left:
 * the pages they then hold), then a round of the special frames, and of
 * the bitmaps' pages too when @with_bitmaps (precopy's final round);
 * postcopy keeps them for the background, all but the frames the source
 * does not have, which go now as ABSENT.  0 or -errno with @err.
 */
static int send_paused_pass(SendCtx *c, bool with_bitmaps, int64_t *left,
                            char *err, size_t errlen)
{
    int ret;

    *left = send_sync(c, err, errlen);
    if (*left < 0) {
        return (int)*left;
    }
    c->round++;
    mig_event(c->m, MIGRATION_EVENT_PASS, c->round);
    if ((ret = plan_build(c, with_bitmaps, true, !with_bitmaps)) ||
        (ret = send_round(c, err, errlen))) {
        if (ret == -ENOMEM) {
            snprintf(err, errlen, "out of memory for the round's plan");
        }
    }
    return ret;
}

static int send_switchover(SendCtx *c, uint64_t *t_pause, char *err,
                           size_t errlen)
{
    Migration *m = c->m;
    int64_t left;
    int ret;

    *t_pause = mig_now_ns();
    if ((ret = xen_domain_pause(c->xh))) {
        snprintf(err, errlen, "pausing the domain: %s", xen_last_error());
        return ret;
    }
    c->paused = true;
    if (m->ops.stop_devices) {
        m->ops.stop_devices(m->ops.opaque);
    }
    c->devices_stopped = true;
    mig_event(m, MIGRATION_EVENT_STOP, 0);
    if (m->caps.pause_before_switchover &&
        (ret = send_wait_continue(c, err, errlen))) {
        return ret;
    }
    mig_set_status(m, MIGRATION_STATUS_DEVICE);
    /* What the guest and the devices wrote since the last round. */
    if ((ret = send_paused_pass(c, true, &left, err, errlen))) {
        return ret;
    }
    if ((ret = send_state(c, err, errlen))) {
        return ret;
    }
    ret = send_wait_result(c, err, errlen);
    if (ret && c->end_sent && ret != -EIO) {
        char why[200];

        snprintf(why, sizeof(why), "%.*s", (int)sizeof(why) - 1, err);
        snprintf(err, errlen, "the destination received everything but no "
                 "valid answer came back (%.150s): it may be running the "
                 "guest, so the source stays paused; check the destination "
                 "before resuming or destroying either", why);
    } else if (ret == -EIO) {
        c->end_sent = false;    /* it said it failed: the source resumes */
    }
    return ret;
}

/* ---- postcopy: the switch, the return path -------------------------------------- */

/*
 * DISCARD, block by block: the pages dirtied since they were sent (what
 * the bitmaps hold after the CLEAN) that no DISCARD carried yet, at most
 * @max of them, in batches of ranges, marked as carried.  They stay in
 * the bitmaps: they are the pages postcopy sends.
 */
static int send_discards(SendCtx *c, uint64_t max, uint64_t *pages,
                         char *err, size_t errlen)
{
    StreamRange *r = malloc(STREAM_DISCARD_MAX_RANGES * sizeof(*r));
    uint8_t *body = NULL;
    int ret = 0;

    *pages = 0;
    if (r) {
        body = malloc(stream_postcopy_discard_len("", 0) + 256 +
                      STREAM_DISCARD_MAX_RANGES * sizeof(*r));
    }
    if (!r || !body) {
        free(r);
        snprintf(err, errlen, "out of memory for the discard ranges");
        return -ENOMEM;
    }
    for (size_t i = 0; !ret && i < c->nblocks && *pages < max; i++) {
        RAMBlock *b = c->blocks[i];
        uint64_t end = b->postcopy_length >> XR_PAGE_BITS, from = 0;
        unsigned n;

        if (!c->taken[i] && !(c->taken[i] = xr_bitmap_new(b->bmap->npages))) {
            ret = -ENOMEM;
            snprintf(err, errlen, "out of memory for the discard ranges");
            break;
        }
        while (!ret && *pages < max &&
               (n = mig_discard_ranges(b->bmap, c->taken[i], from, end, r,
                                       STREAM_DISCARD_MAX_RANGES,
                                       &from)) > 0) {
            for (unsigned k = 0; k < n; k++) {
                if (*pages == max) {
                    n = k;      /* @max reached: the rest waits */
                    break;
                }
                r[k].n = MIN(r[k].n, max - *pages);
                *pages += r[k].n;
                xr_bitmap_set(c->taken[i], r[k].start, r[k].n);
            }
            stream_postcopy_discard_encode(b->idstr, r, n, body);
            ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_DISCARD, body,
                              stream_postcopy_discard_len(b->idstr, n), err,
                              errlen);
        }
    }
    free(body);
    free(r);
    return ret;
}

/*
 * A PAGE_REQUEST: checked against the blocks this migration carries
 * (an unknown block or pages outside its postcopy_length fail the
 * migration), then every requested page still in the bitmaps is taken
 * out and, with preempt, sent on the preempt channel at once by this
 * thread, or else queued for the senders in runs of consecutive frames.
 * Pages already taken are in flight or arrived: not sent twice (but see
 * the resend below).
 */
static int rp_page_request(SendCtx *c, const uint8_t *body, uint32_t len,
                           char *err, size_t errlen)
{
    char idstr[256], msg[400];
    uint64_t page, gfns[STREAM_BATCH_MAX_PAGES];
    uint32_t n;
    size_t ngfns = 0;
    RAMBlock *block = NULL;
    MigPageRun run = { 0 };
    int ret;

    ret = stream_page_request_decode(body, len, idstr, &page, &n, msg,
                                     sizeof(msg));
    if (ret) {
        return xr_error(err, errlen, ret, "the destination's page request "
                        "is invalid: %s", msg);
    }
    for (size_t i = 0; i < c->nblocks && !block; i++) {
        if (!strcmp(c->blocks[i]->idstr, idstr)) {
            block = c->blocks[i];
        }
    }
    if ((ret = mig_page_request_check(idstr, block, page, n, err, errlen))) {
        return ret;
    }
    __atomic_add_fetch(&c->pc_requests, 1, __ATOMIC_RELAXED);
    run.t_ns = mig_now_ns();
    if (c->preempt) {
        /* Held from taking the bits to sending them (send_postcopy_part). */
        pthread_mutex_lock(&c->preempt_lock);
        if (c->preempt_closed) {
            /* The background is done: every page is on its way. */
            pthread_mutex_unlock(&c->preempt_lock);
            return 0;
        }
    }
    pthread_mutex_lock(&c->pc_lock);
    for (uint64_t p = page; p < page + n; p++) {
        uint64_t gfn = UINT64_MAX;

        for (size_t r = 0; r < c->nranges; r++) {
            const MigRange *mr = &c->ranges[r];

            if (mr->block == block && p >= mr->page && p < mr->page + mr->n) {
                gfn = mr->gfn + (p - mr->page);
                break;
            }
        }
        /* A page no range maps (the xen.ram hole) was never the guest's. */
        if (gfn == UINT64_MAX) {
            continue;
        }
        /*
         * A page the background took already is in flight behind up to
         * two batches on its channel, or arrived: with a preempt channel
         * it goes again there, so that the vCPU waits for the shorter
         * way; the destination places whichever copy comes first and
         * counts the other as a duplicate.  Not once the background is
         * done: the page is on its way anyway.
         */
        if (dirty_bitmap_test_and_clear(block->bmap, p) <= 0) {
            if (!c->preempt || c->pc_background_done) {
                continue;
            }
            __atomic_add_fetch(&c->pc_resent, 1, __ATOMIC_RELAXED);
        }
        gfns[ngfns++] = gfn;    /* increasing: the ranges are sorted */
    }
    for (size_t i = 0; !c->preempt && !ret && i < ngfns; i++) {
        if (run.n && (gfns[i] != run.gfn + run.n ||
                      run.n == STREAM_BATCH_MAX_PAGES)) {
            ret = mig_page_queue_push(&c->reqs, &run);
            run.n = 0;
        }
        if (!run.n) {
            run.gfn = gfns[i];
        }
        run.n++;
    }
    if (!c->preempt && !ret && run.n) {
        ret = mig_page_queue_push(&c->reqs, &run);
    }
    if (!c->preempt && ngfns) {
        /*
         * Wake the senders for what was queued.  Not with preempt: no
         * sender waits for a request then, and a wake-up here would put
         * a background sender on a CPU just as this thread sends the page.
         */
        pthread_cond_broadcast(&c->pc_cond);
    }
    pthread_mutex_unlock(&c->pc_lock);
    if (ret) {
        /* The queue holds every page once: full means a bug here. */
        return xr_error(err, errlen, ret, "queueing the destination's page "
                        "request: %s", strerror(-ret));
    }
    if (c->preempt) {
        if (ngfns) {
            ret = send_pages(c->preempt, gfns, ngfns, true, true, err,
                             errlen);
        }
        pthread_mutex_unlock(&c->preempt_lock);
        if (!ret) {
            __atomic_add_fetch(&c->pc_requested, ngfns, __ATOMIC_RELAXED);
        }
    }
    return ret;
}

/*
 * The return path's reader: PAGE_REQUESTs until RESULT (numbered on
 * their own, from 0).  Any other record, or a request that breaks the
 * rules, fails the migration.
 */
static void *send_rp_thread(void *opaque)
{
    SendCtx *c = opaque;
    uint8_t hdr[STREAM_RECORD_HDR_LEN], *body = malloc(STREAM_MAX_BODY);
    uint32_t seq = c->rp_seq0;
    char msg[400];
    int ret = body ? 0 : -ENOMEM;

    rcu_register_thread();
    while (!ret) {
        uint32_t type, len;

        ret = mig_channel_read_all(c->ctl.chan, hdr, sizeof(hdr), c->rp_err,
                                   sizeof(c->rp_err));
        if (!ret && (ret = stream_record_header_check(hdr, seq, &type, &len,
                                                      msg, sizeof(msg)))) {
            snprintf(c->rp_err, sizeof(c->rp_err), "on the return path: %s",
                     msg);
        }
        if (!ret) {
            ret = mig_channel_read_all(c->ctl.chan, body, len, c->rp_err,
                                       sizeof(c->rp_err));
        }
        if (!ret && (ret = stream_record_verify(hdr, body, len, msg,
                                                sizeof(msg)))) {
            snprintf(c->rp_err, sizeof(c->rp_err), "on the return path: %s",
                     msg);
        }
        if (ret) {
            break;
        }
        seq++;
        if (type == STREAM_REC_PAGE_REQUEST) {
            ret = rp_page_request(c, body, len, c->rp_err,
                                  sizeof(c->rp_err));
        } else if (type == STREAM_REC_RESULT && len >= 4) {
            memcpy(&c->rp_status, body, 4);
            snprintf(c->rp_err, sizeof(c->rp_err), "%.*s",
                     (int)MIN(len - 4, 400u), (const char *)body + 4);
            c->rp_result = true;
            break;
        } else {
            char name[24];

            ret = xr_error(c->rp_err, sizeof(c->rp_err), -EPROTO, "the "
                           "destination sent a %s record on the return path, "
                           "which carries only PAGE_REQUEST and RESULT",
                           stream_record_name(type, name, sizeof(name)));
        }
    }
    c->rp_ret = ret;
    if (ret || (c->rp_result && c->rp_status)) {
        /* The senders must not wait for a destination that is gone. */
        send_abort(c);
    }
    free(body);
    rcu_unregister_thread();
    return NULL;
}

/* Wait for the return path's end: 0 once RESULT said the guest runs. */
static int send_rp_join(SendCtx *c, char *err, size_t errlen)
{
    if (!c->rp_started) {
        return 0;
    }
    pthread_join(c->rp_thread, NULL);
    c->rp_started = false;
    if (c->rp_ret) {
        snprintf(err, errlen, "%s", c->rp_err);
        return c->rp_ret;
    }
    if (c->rp_result && c->rp_status) {
        snprintf(err, errlen, "the destination failed: %.400s", c->rp_err);
        /* It says it never ran the guest: this copy is the only one. */
        if (!(c->rp_status & STREAM_RESULT_RAN)) {
            c->run_sent = false;
        }
        return -EIO;
    }
    if (!c->rp_result) {
        snprintf(err, errlen, "the destination closed the return path "
                 "without an answer");
        return -ECONNRESET;
    }
    return 0;
}

static void send_postcopy_info(SendCtx *c);

/*
 * After RUN: every page left, requested ones first, then END on every
 * channel and the destination's RESULT.  0 once the destination says the
 * guest runs with all of its memory.
 */
static int send_postcopy_transfer(SendCtx *c, char *err, size_t errlen)
{
    int ret = send_round(c, err, errlen);

    if (ret == -ECANCELED && c->rp_ret) {
        ret = send_rp_join(c, err, errlen);
    }
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        ret = send_record(&c->data[i], STREAM_REC_END, NULL, 0, err, errlen);
    }
    if (!ret) {
        ret = send_record(&c->ctl, STREAM_REC_END, NULL, 0, err, errlen);
    }
    if (!ret) {
        ret = send_rp_join(c, err, errlen);
    } else if (c->rp_started) {
        char e2[512];

        /*
         * A channel closed under us: a destination that failed says why
         * (and whether it ran the guest) in its RESULT before it goes.
         * Wait a little for it, as send_peer_reason() does for precopy.
         */
        mig_channel_set_stall(c->ctl.chan, SEND_REASON_MS);
        if (send_rp_join(c, e2, sizeof(e2)) == -EIO) {
            snprintf(err, errlen, "%s", e2);
            ret = -EIO;
        }
    }
    return ret;
}

/* The next record on the return path, read by the migration thread. */
static int send_rp_record(SendCtx *c, uint8_t *body, uint32_t *type,
                          uint32_t *len, char *err, size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    char msg[400];
    int ret;

    if ((ret = mig_channel_read_all(c->ctl.chan, hdr, sizeof(hdr), err,
                                    errlen))) {
        return ret;
    }
    if ((ret = stream_record_header_check(hdr, c->rp_seq0, type, len, msg,
                                          sizeof(msg))) ||
        (ret = mig_channel_read_all(c->ctl.chan, body, *len, err, errlen)) ||
        (ret = stream_record_verify(hdr, body, *len, msg, sizeof(msg)))) {
        if (ret != -ECONNRESET && !err[0]) {
            snprintf(err, errlen, "on the return path: %s", msg);
        }
        return ret;
    }
    c->rp_seq0++;
    return 0;
}

/*
 * A recovery's handshake on new channels: POSTCOPY_RESUME, then the
 * destination's RECV_BITMAPs and RESUME_ACK, from which the bitmaps are
 * rebuilt: every page of a range the destination does not have is to be
 * sent, nothing else (what was in flight when the link broke and never
 * arrived goes again; what arrived, never).
 */
static int send_resume_handshake(SendCtx *c, char *err, size_t errlen)
{
    uint8_t rbody[STREAM_POSTCOPY_RESUME_LEN], *body;
    uint64_t covered[DEVSTATE_MAX_BLOCKS] = { 0 }, nbitmaps = 0;
    int ret;

    stream_postcopy_resume_encode(c->round, rbody);
    if ((ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_RESUME, rbody,
                           sizeof(rbody), err, errlen))) {
        return ret;
    }
    if (!(body = malloc(STREAM_MAX_BODY))) {
        return xr_error(err, errlen, -ENOMEM, "out of memory");
    }
    /* Every page of a range is to send until the destination says. */
    for (size_t i = 0; i < c->nblocks; i++) {
        DirtyBitmap *bm = c->blocks[i]->bmap;

        dirty_bitmap_clear_range(bm, 0, c->blocks[i]->max_length >>
                                        XR_PAGE_BITS);
    }
    for (size_t r = 0; r < c->nranges; r++) {
        if (c->ranges[r].block) {
            dirty_bitmap_set_range(c->ranges[r].block->bmap,
                                   c->ranges[r].page, c->ranges[r].n);
        }
    }
    c->rp_seq0 = 0;
    for (;;) {
        uint32_t type, len;
        char idstr[256], name[24];
        uint64_t first, n, got;
        const uint8_t *words;
        size_t b;

        if ((ret = send_rp_record(c, body, &type, &len, err, errlen))) {
            break;
        }
        if (type == STREAM_REC_RESUME_ACK) {
            ret = stream_resume_ack_decode(body, len, &got, err, errlen);
            if (!ret && got != nbitmaps) {
                ret = xr_error(err, errlen, -EPROTO, "the destination's "
                               "RESUME_ACK counts %" PRIu64 " RECV_BITMAPs, "
                               "%" PRIu64 " came", got, nbitmaps);
            }
            for (b = 0; !ret && b < c->nblocks; b++) {
                if (covered[b] < c->blocks[b]->postcopy_length >>
                                 XR_PAGE_BITS) {
                    ret = xr_error(err, errlen, -EPROTO, "the destination "
                                   "did not say which pages of '%s' it has",
                                   c->blocks[b]->idstr);
                }
            }
            break;
        }
        if (type != STREAM_REC_RECV_BITMAP) {
            ret = xr_error(err, errlen, -EPROTO, "the destination answered "
                           "POSTCOPY_RESUME with a %s record",
                           stream_record_name(type, name, sizeof(name)));
            break;
        }
        if ((ret = stream_recv_bitmap_decode(body, len, idstr, &first, &n,
                                             &words, err, errlen))) {
            break;
        }
        for (b = 0; b < c->nblocks && strcmp(c->blocks[b]->idstr, idstr);
             b++) {
        }
        if (b == c->nblocks || first != covered[b] ||
            first + n > c->blocks[b]->max_length >> XR_PAGE_BITS) {
            ret = xr_error(err, errlen, -EPROTO, "the destination's "
                           "RECV_BITMAP for '%s' at page %#" PRIx64 " is for "
                           "%s", idstr, first, b == c->nblocks ?
                           "a block this migration does not send" :
                           "pages out of order or beyond the block");
            break;
        }
        for (uint64_t w = 0; w < (n + 63) / 64; w++) {
            uint64_t v = stream_recv_bitmap_word(words, w);

            while (v) {
                dirty_bitmap_test_and_clear(c->blocks[b]->bmap,
                                            first + 64 * w +
                                            (uint64_t)__builtin_ctzll(v));
                v &= v - 1;
            }
        }
        covered[b] = first + n;
        nbitmaps++;
    }
    free(body);
    return ret;
}

/*
 * Postcopy's link broke: close every channel, wait in postcopy-paused for
 * `migrate` with resume, connect again and rebuild what to send from the
 * destination's bitmaps; a recovery that fails goes back to waiting.  0
 * once the senders may go on, -errno when the process exits.
 */
static int send_postcopy_recover(SendCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    char why[512], uri[300];
    int fd;

    snprintf(why, sizeof(why), "%s", err[0] ? err : "the link broke");
    for (;;) {
        int ret;

        pc_fail(c);
        mig_untrack_pause(m);
        if (c->rp_started) {
            mig_channel_cancel(c->ctl.chan);
            pthread_join(c->rp_thread, NULL);
            c->rp_started = false;
        }
        for (unsigned i = 0; i < c->ndata; i++) {
            c->gone_data_bytes += chan_bytes(c->data[i].chan);
            mig_channel_close(c->data[i].chan);
            c->data[i].chan = NULL;
        }
        c->gone_bytes += chan_bytes(c->ctl.chan);
        mig_channel_close(c->ctl.chan);
        c->ctl.chan = NULL;
        if (!mig_postcopy_pause(m, why, uri, sizeof(uri), &fd)) {
            snprintf(err, errlen, "postcopy paused (%.300s) when xenram "
                     "exited: the guest is lost", why);
            return -ECANCELED;
        }
        pthread_mutex_lock(&m->lock);
        snprintf(m->uri, sizeof(m->uri), "%s", uri);
        m->fd = fd;
        pthread_mutex_unlock(&m->lock);
        err[0] = '\0';
        c->ctl.seq = 0;
        for (unsigned i = 0; i < c->ndata; i++) {
            c->data[i].seq = 0;
        }
        ret = send_open_channels(c, true, err, errlen);
        if (!ret) {
            /* The handshake is answered at once, or never: a stall. */
            ret = send_resume_handshake(c, err, errlen);
        }
        if (!ret) {
            pthread_mutex_lock(&c->pc_lock);
            while (mig_page_queue_len(&c->reqs)) {
                MigPageRun run;

                mig_page_queue_pop(&c->reqs, &run, false);
            }
            c->pc_failed = false;
            c->pc_background_done = false;
            c->preempt_closed = false;      /* no reader runs now */
            c->pc_range = 0;
            c->pc_page = 0;
            pthread_mutex_unlock(&c->pc_lock);
            pthread_mutex_lock(&c->lock);
            c->failed = 0;
            c->ferr[0] = '\0';
            pthread_mutex_unlock(&c->lock);
            c->rp_ret = 0;
            c->rp_result = false;
            c->rp_status = 0;
            mig_channel_set_stall(c->ctl.chan, -1);
            ret = -pthread_create(&c->rp_thread, NULL, send_rp_thread, c);
            if (ret) {
                snprintf(err, errlen, "cannot start the return path's "
                         "reader: %s", strerror(-ret));
            }
        }
        if (!ret) {
            c->rp_started = true;
            c->recoveries++;
            send_postcopy_info(c);
            mig_postcopy_resumed(m);
            fprintf(stderr, "xenram: postcopy recovered (%u)\n",
                    c->recoveries);
            return 0;
        }
        snprintf(why, sizeof(why), "the recovery failed: %.480s", err);
    }
}

/* The pages in the bitmaps that no DISCARD carried yet. */
static uint64_t send_untaken(SendCtx *c)
{
    uint64_t n = 0;

    for (size_t i = 0; i < c->nblocks; i++) {
        DirtyBitmap *bm = c->blocks[i]->bmap;

        for (uint64_t p = dirty_bitmap_find_next(bm, 0); p < bm->npages;
             p = dirty_bitmap_find_next(bm, p + 1)) {
            n += !c->taken[i] || !xr_test_bit(p, c->taken[i]);
        }
    }
    return n;
}

/*
 * A PREPARE's answer: POSTCOPY_PREPARED records until the one that says
 * it is done, with the pages it paged out and the time that took.  A
 * RESULT instead is the destination's failure.
 */
static int send_prepare_wait(SendCtx *c, uint8_t *body, uint64_t *pages,
                             uint64_t *ns, char *err, size_t errlen)
{
    for (;;) {
        uint32_t type, len;
        uint64_t flags = 0;
        char name[24];
        int ret = send_rp_record(c, body, &type, &len, err, errlen);

        if (ret) {
            if (mig_cancelled(c->m)) {
                snprintf(err, errlen, "cancelled");
                return -ECANCELED;
            }
            return ret;
        }
        if (type == STREAM_REC_RESULT && len >= 4) {
            snprintf(err, errlen, "the destination failed: %.*s",
                     (int)MIN(len - 4, 400u), (const char *)body + 4);
            return -EIO;
        }
        if (type != STREAM_REC_POSTCOPY_PREPARED) {
            return xr_error(err, errlen, -EPROTO, "the destination answered "
                            "POSTCOPY_PREPARE with a %s record",
                            stream_record_name(type, name, sizeof(name)));
        }
        if ((ret = stream_postcopy_prepared_decode(body, len, pages, ns,
                                                   &flags, err, errlen))) {
            return ret;
        }
        if (flags & STREAM_PREPARED_F_DONE) {
            return 0;
        }
    }
}

/* Pages a first PREPARE pages out to measure the destination's rate. */
#define SEND_PREPARE_PROBE 512u

/* The pages of the blocks the bitmaps do not hold: clean, received. */
static uint64_t send_clean(SendCtx *c)
{
    uint64_t n = 0;

    for (size_t i = 0; i < c->nblocks; i++) {
        DirtyBitmap *bm = c->blocks[i]->bmap;

        n += bm->npages - dirty_bitmap_count(bm);
    }
    return n;
}

/*
 * Before the pause (docs/postcopy.md, "The switch"): on Xen the
 * destination pages out each frame whose page it does not have with two
 * hypercalls, and at LISTEN the guest is paused on both sides while it
 * does.  So while the guest still runs here, the pages the source does
 * not have go as ABSENT (given back there, not paged out), then up to
 * x-postcopy-prepare-passes times DISCARD and PREPARE: the destination
 * pages out what the DISCARDs carried and says how long that took, and a
 * CLEAN finds what the guest dirtied meanwhile of the pages still there:
 * the next pass's, or LISTEN's.
 *
 * A pass pays only if the guest dirties fewer pages during it than it
 * pages out: a pass of n pages at c ns a page lasts n * c, and dirties
 * at most min(clean pages, r * n * c) for r the rate at which clean
 * pages were seen dirtied.  Neither rate is known at first, so the
 * first pass (unless nothing is clean, or round 1 was cut short) is a
 * probe of SEND_PREPARE_PROBE pages.  The passes end when what is left
 * would take at most half the downtime limit to page out, or would not
 * shrink.
 */
static int send_postcopy_prepare(SendCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    uint32_t passes = m->params.x_postcopy_prepare_passes;
    uint64_t t0 = mig_now_ns(), total = 0, done = 0;
    double cost = 0, rate = 0;          /* ns a page; clean pages/ns */
    double budget = (double)m->params.downtime_limit * 1e6 / 2;
    uint8_t rec[STREAM_POSTCOPY_PREPARE_LEN], *body;
    int ret;

    if (!passes) {
        return 0;
    }
    if (!(body = malloc(STREAM_MAX_BODY))) {
        snprintf(err, errlen, "out of memory for the return path");
        return -ENOMEM;
    }
    c->preparing = true;
    /* A round of its own, if there are any (usually: round 1 gave them). */
    c->round++;
    if ((ret = plan_build(c, false, false, true))) {
        snprintf(err, errlen, "out of memory for the round's plan");
    } else if (c->plan_len) {
        mig_event(m, MIGRATION_EVENT_PASS, c->round);
        ret = send_round(c, err, errlen);
    } else {
        c->round--;
    }
    for (uint32_t pass = 0; !ret && pass < passes; pass++) {
        uint64_t n = send_untaken(c), clean = send_clean(c), max = n;
        uint64_t pages, paged = 0, ns = 0, t1, left;
        int64_t dirty;

        if (!n) {
            break;              /* nothing new to page out */
        }
        if (cost > 0) {
            double t = (double)n * cost;

            if (t <= budget || MIN((double)clean, rate * t) >= (double)n) {
                break;          /* LISTEN can do it, or it would not pay */
            }
        } else if (clean && !c->round1_cut) {
            /*
             * The probe.  Not when round 1 was cut short: the first
             * PREPARE pages out every page the destination never
             * received, whatever the DISCARDs say, and those are then
             * untaken here all the same; all of them in it keeps the
             * count of what is left exact.
             */
            max = MIN(n, SEND_PREPARE_PROBE);
        }
        t1 = mig_now_ns();
        if ((ret = send_discards(c, max, &pages, err, errlen))) {
            break;
        }
        stream_postcopy_prepare_encode(c->round, rec);
        if ((ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_PREPARE, rec,
                               sizeof(rec), err, errlen)) ||
            (ret = send_prepare_wait(c, body, &paged, &ns, err, errlen))) {
            break;
        }
        total += pages;
        done++;
        pthread_mutex_lock(&m->lock);
        m->info.postcopy.prepares = done;
        m->info.postcopy.prepared_pages = total;
        pthread_mutex_unlock(&m->lock);
        /* What the guest dirtied meanwhile, of the pages still there. */
        if ((dirty = send_sync(c, err, errlen)) < 0) {
            ret = (int)dirty;
            break;
        }
        left = send_untaken(c);
        if (paged) {
            cost = (double)ns / (double)paged;
        }
        rate = (double)(left - (n - pages)) /
               (double)MAX(mig_now_ns() - t1, 1);
    }
    pthread_mutex_lock(&m->lock);
    m->info.postcopy.prepare_ms = (mig_now_ns() - t0) / 1000000;
    pthread_mutex_unlock(&m->lock);
    free(body);
    /* A cancel that came meanwhile is named by where it struck. */
    if (!ret || !mig_cancelled(m)) {
        c->preparing = false;
    }
    return ret;
}

/*
 * The switch to postcopy: the destination's paging out done ahead
 * (send_postcopy_prepare()), then the guest paused, one last CLEAN (what
 * it dirtied since the pages were sent), the special frames, DISCARD for
 * the dirtied pages, device state and HVM context, LISTEN, RUN; then
 * every page left, requested ones first, and the destination's RESULT.
 */
static int send_postcopy(SendCtx *c, uint64_t *t_pause, char *err,
                         size_t errlen)
{
    Migration *m = c->m;
    uint8_t body[STREAM_POSTCOPY_LISTEN_LEN];
    uint64_t discarded;
    int64_t left;
    int ret;

    if ((ret = send_postcopy_prepare(c, err, errlen))) {
        return ret;
    }
    *t_pause = mig_now_ns();
    if ((ret = xen_domain_pause(c->xh))) {
        snprintf(err, errlen, "pausing the domain: %s", xen_last_error());
        return ret;
    }
    c->paused = true;
    if (m->ops.stop_devices) {
        m->ops.stop_devices(m->ops.opaque);
    }
    c->devices_stopped = true;
    mig_event(m, MIGRATION_EVENT_STOP, 0);
    pthread_mutex_lock(&m->lock);
    m->info.postcopy.used = true;
    pthread_mutex_unlock(&m->lock);
    mig_set_status(m, MIGRATION_STATUS_POSTCOPY_ACTIVE);
    /* The special frames, which no block holds and postcopy cannot page:
     * in a round of their own, ended on every channel before LISTEN; the
     * bitmaps keep what is left for the background. */
    if ((ret = send_paused_pass(c, false, &left, err, errlen))) {
        return ret;
    }
    c->listen_round = c->round;
    if ((ret = send_discards(c, UINT64_MAX, &discarded, err, errlen)) ||
        (ret = send_devstate_ctx(c, err, errlen))) {
        return ret;
    }
    pthread_mutex_lock(&m->lock);
    m->info.postcopy.discarded = discarded + m->info.postcopy.prepared_pages;
    m->info.ram.remaining = (uint64_t)left * XR_PAGE_SIZE;
    pthread_mutex_unlock(&m->lock);
    /*
     * The control channel's reads wait for requests from now on, which
     * may rightly not come for long: no stall timeout on it.  A stuck
     * destination is noticed on the data channels' writes.
     */
    mig_channel_set_stall(c->ctl.chan, -1);
    ret = -pthread_create(&c->rp_thread, NULL, send_rp_thread, c);
    if (ret) {
        snprintf(err, errlen, "cannot start the return path's reader: %s",
                 strerror(-ret));
        return ret;
    }
    c->rp_started = true;
    stream_postcopy_listen_encode(c->listen_round, c->preempt ?
                                  STREAM_LISTEN_F_PREEMPT : 0, body);
    if ((ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_LISTEN, body,
                           sizeof(body), err, errlen))) {
        return ret;
    }
    /*
     * RUN is the point of no return (as END is for precopy): from here
     * migrate_cancel no longer reaches the channels, and a failure leaves
     * the source paused.  run_sent is set before the write: a RUN that
     * failed half-way may still have reached the destination.
     */
    mig_untrack_channels(m);
    if (mig_cancelled(m)) {
        snprintf(err, errlen, "cancelled");
        return -ECANCELED;
    }
    c->past_cancel = true;
    c->run_sent = true;
    if ((ret = send_record(&c->ctl, STREAM_REC_POSTCOPY_RUN, NULL, 0, err,
                           errlen))) {
        return ret;
    }
    c->t_run = mig_now_ns();
    c->round++;
    c->pc_phase = true;
    c->pc_range = 0;
    c->pc_page = 0;
    mig_track_pause(m, c->ctl.chan);
    for (unsigned i = 0; i < c->ndata; i++) {
        mig_track_pause(m, c->data[i].chan);
    }
    /*
     * From here the guest runs on the destination: a broken link pauses
     * both sides until a new one is made (recovery); only a destination
     * that says it failed, or the process exiting, ends the migration.
     */
    while ((ret = send_postcopy_transfer(c, err, errlen))) {
        if ((c->rp_result && c->rp_status) ||
            (ret = send_postcopy_recover(c, err, errlen))) {
            return ret;
        }
    }
    return 0;
}

/* The figures of the postcopy phase, for query-migrate. */
static void send_postcopy_info(SendCtx *c)
{
    Migration *m = c->m;

    pthread_mutex_lock(&m->lock);
    m->info.postcopy.requests = __atomic_load_n(&c->pc_requests,
                                                __ATOMIC_RELAXED);
    m->info.postcopy.requested = __atomic_load_n(&c->pc_requested,
                                                 __ATOMIC_RELAXED);
    m->info.postcopy.background = __atomic_load_n(&c->pc_background,
                                                  __ATOMIC_RELAXED);
    m->info.postcopy.resent = __atomic_load_n(&c->pc_resent,
                                              __ATOMIC_RELAXED);
    m->info.postcopy.recoveries = c->recoveries;
    pthread_mutex_unlock(&m->lock);
}

/* ---- the rounds ------------------------------------------------------------------------ */

static int send_iterate(SendCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    double rate = 0;

    for (;;) {
        uint64_t t0 = mig_now_ns(), b0 = send_bytes(c), t1, expected;
        int64_t left;
        int ret;

        c->round++;
        mig_event(m, MIGRATION_EVENT_PASS, c->round);
        if (c->round == 1) {
            c->bw_start_ns = t0;
            c->bw_start_bytes = b0;
        }
        if ((ret = plan_build(c, true, c->round == 1, false))) {
            snprintf(err, errlen, "out of memory for the round's plan");
            return ret;
        }
        c->may_cut = true;
        ret = send_round(c, err, errlen);
        if (!ret && send_cut_short(c)) {
            plan_give_back(c, MIN(__atomic_load_n(&c->next_chunk,
                                                  __ATOMIC_RELAXED),
                                  c->ncuts));
            c->round1_cut |= c->round == 1;
        }
        c->may_cut = false;
        if (ret) {
            return ret;
        }
        t1 = mig_now_ns();
        if (t1 > t0 && send_bytes(c) > b0) {
            rate = (double)(send_bytes(c) - b0) * 1e9 / (double)(t1 - t0);
        }
        left = send_sync(c, err, errlen);
        if (left < 0) {
            return (int)left;
        }
        send_update_info(c, (uint64_t)left, rate,
                         t1 > t0 ? (uint64_t)((double)left * 1e9 /
                                              (double)(t1 - t0)) : 0);
        send_auto_converge(c, (uint64_t)left * XR_PAGE_SIZE,
                           send_bytes(c) - b0);
        if (mig_cancelled(m)) {
            snprintf(err, errlen, "cancelled");
            return -ECANCELED;
        }
        /*
         * migrate-start-postcopy wins over convergence: whoever asked for
         * it wants the guest moved now, whatever is left.
         */
        if (m->caps.postcopy_ram &&
            __atomic_load_n(&m->start_postcopy, __ATOMIC_ACQUIRE)) {
            return 1;
        }
        /*
         * x-postcopy-after-rounds N: the switch when round N ends, and no
         * convergence before it (what was asked is a postcopy after N
         * rounds, not a precopy).
         */
        if (m->caps.postcopy_ram && m->params.x_postcopy_after_rounds) {
            if (c->round >= m->params.x_postcopy_after_rounds) {
                return 1;
            }
            continue;
        }
        /*
         * Round 1 sends the RAM in gfn order; the final round sends pages
         * the guest dirtied, scattered, and runs slower (measured here,
         * 1 GiB, a 100 MiB/s writer: 623 MiB/s against 375; estimated
         * 237 ms, took 340).  Until a round of dirty pages has been timed,
         * half round 1's rate stands for it.
         */
        expected = rate > 0 ? (uint64_t)((double)left * XR_PAGE_SIZE *
                                         1000.0 / (c->round == 1 ? rate / 2
                                                                 : rate))
                            : UINT64_MAX;
        if (left == 0 || expected <= m->params.downtime_limit) {
            return 0;
        }
    }
}

void *mig_send_thread(void *opaque)
{
    Migration *m = opaque;
    SendCtx *c = calloc(1, sizeof(*c));
    char err[512] = "";
    uint64_t t_pause = 0;
    int ret = -ENOMEM;
    bool cancelled;

    rcu_register_thread();
    if (c) {
        c->m = m;
        c->xh = m->cfg.xh;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->go, NULL);
        pthread_cond_init(&c->done, NULL);
        pthread_mutex_init(&c->pc_lock, NULL);
        pthread_cond_init(&c->pc_cond, NULL);
        pthread_mutex_init(&c->preempt_lock, NULL);
        mig_set_status(m, MIGRATION_STATUS_SETUP);
        ret = send_setup(c, err, sizeof(err));
        pthread_mutex_lock(&m->lock);
        m->info.setup_time = (mig_now_ns() - m->t_start_ns) / 1000000;
        m->info.ram.total = 0;
        for (size_t r = 0; r < c->nranges; r++) {
            m->info.ram.total += c->ranges[r].n * XR_PAGE_SIZE;
        }
        pthread_mutex_unlock(&m->lock);
    } else {
        snprintf(err, sizeof(err), "out of memory");
    }
    if (!ret) {
        mig_set_status(m, MIGRATION_STATUS_ACTIVE);
        ret = send_iterate(c, err, sizeof(err));
    }
    if (ret == 1) {
        ret = send_postcopy(c, &t_pause, err, sizeof(err));
        if (ret && c->run_sent) {
            char why[256];

            snprintf(why, sizeof(why), "%.*s", (int)sizeof(why) - 1, err);
            snprintf(err, sizeof(err), "postcopy failed after the guest "
                     "started on the destination (%.200s): the destination "
                     "ran it without all of its memory and this copy is "
                     "stale, so the source stays paused: the guest is lost",
                     why);
        }
        send_postcopy_info(c);
    } else if (!ret) {
        ret = send_switchover(c, &t_pause, err, sizeof(err));
    }
    pthread_mutex_lock(&m->lock);
    if (!ret) {
        /*
         * As QEMU counts it: the guest stopped until it runs again, which
         * for postcopy is the RUN, not the end of the background.
         */
        m->info.downtime = ((c && c->t_run ? c->t_run : mig_now_ns()) -
                            t_pause) / 1000000;
    }
    pthread_mutex_unlock(&m->lock);
    cancelled = ret && mig_cancelled(m) && !(c && c->past_cancel);
    if (ret && c && cancelled) {
        send_cancel_reason(c, err, sizeof(err));
    } else if (ret && c) {
        send_peer_reason(c, ret, err, sizeof(err));
    }
    if (c) {
        send_update_info(c, 0, 0, UINT64_MAX);
        send_cleanup(c, ret == 0);
    }
    pthread_mutex_lock(&m->lock);
    m->info.total_time = (mig_now_ns() - m->t_start_ns) / 1000000;
    if (!ret) {
        m->info.ram.remaining = 0;
    }
    pthread_mutex_unlock(&m->lock);
    if (ret) {
        mig_set_error(m, err[0] ? err : strerror(-ret));
    }
    mig_finish(m, !ret ? MIGRATION_STATUS_COMPLETED :
                  cancelled ? MIGRATION_STATUS_CANCELLED :
                  MIGRATION_STATUS_FAILED);
    if (c) {
        pthread_cond_destroy(&c->go);
        pthread_cond_destroy(&c->done);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->pc_cond);
        pthread_mutex_destroy(&c->pc_lock);
        pthread_mutex_destroy(&c->preempt_lock);
        free(c);
    }
    rcu_unregister_thread();
    return NULL;
}
