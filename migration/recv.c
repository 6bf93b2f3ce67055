/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * recv.c - the destination side of xenram's own precopy migration (see
 * docs/migration.md and docs/migration-stream.md).
 *
 * The toolstack created the domain without memory and paused; xenram was
 * started with -incoming tcp:|unix: (or migrate-incoming).  The receiver:
 *   1. accepts the control channel and reads the LAYOUT; checks it against
 *      its own RAM blocks (re-creating hot-plugged ones) before it changes
 *      anything in Xen; populates every RAM range in large batches and maps
 *      each range once, pre-faulted, for the writers;
 *   2. accepts the data channels, one writer thread each, which check
 *      every batch and copy it into guest memory; a writer applies round
 *      r + 1 only once every channel has finished round r, so an older copy
 *      of a page can never overwrite a newer one;
 *   3. reads the device state and the HVM context, waits for the writers'
 *      END, sets the context, leaves the incoming mode and unpauses the
 *      domain (unless -S), then tells the source with RESULT.
 * On any failure it tells the source (when it still can), reports the
 * error and the device model exits non-zero; the domain is left for the
 * toolstack to destroy.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/blocktime.h"
#include "migration/migration-internal.h"
#include "migration/pagereq.h"
#include "migration/postcopy.h"
#include "migration/stream.h"
#include "xen/paging.h"
#include "xen/xen.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Threads pre-faulting the destination's mapping: the cores here. */
#define RECV_PREFAULT_THREADS 2

typedef struct RecvCtx RecvCtx;

typedef struct Receiver {
    RecvCtx *ctx;
    MigChannel *chan;
    unsigned index;                     /* 0: control, 1..N data */
    uint32_t seq;
    StreamDecoder *dec;
    StreamBatchView *view;
    size_t range[STREAM_BATCH_MAX_PAGES];   /* each page's, recv_range() */
    /* A batch received straight into guest memory: its description, runs. */
    struct iovec iov[STREAM_BATCH_MAX_PAGES + 1];
    bool placed[STREAM_BATCH_MAX_PAGES];    /* postcopy: in the first pass */
    uint8_t *body;                      /* STREAM_MAX_BODY */
    pthread_t thread;
    bool thread_started;
    int ret;
    char err[512];
} Receiver;

struct RecvCtx {
    Migration *m;
    XenHandles *xh;
    Receiver ctl;
    Receiver data[MIG_MAX_CHANNELS];
    unsigned ndata;
    DevState layout;
    bool have_layout;
    MigRange *ranges;
    size_t nranges;
    uint8_t **maps;                     /* one writable mapping a range */
    /* Frames the source does not have, one bit a frame of the ranges. */
    unsigned long *absent;
    uint64_t *absent_base;              /* first bit of each range */
    uint64_t cleared[MIG_MAX_HVM_PARAMS];   /* rings that start afresh */
    unsigned ncleared;
    uint8_t *hvm_ctx;
    uint32_t hvm_len;

    /* Rounds each channel has completed, under @lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t done_round[1 + MIG_MAX_CHANNELS];
    bool abort;
    /*
     * The writers' gate (recv_gate_enter()), under @lock: PREPARE and
     * LISTEN close it to change the mappings and page frames out once no
     * batch is being written (@writing), and no batch may write a block's
     * page once @paged (only ABSENT ones, and the special frames, follow
     * a PREPARE): whatever the source sends, nothing is written through a
     * mapping that is gone, or into a frame being paged out.
     */
    bool gate_closed, paged;
    unsigned writing;
    uint64_t pages;                     /* atomic */
    /* Pre-faulting threads, which take 32 MiB chunks from one cursor. */
    pthread_t prefault[RECV_PREFAULT_THREADS];
    unsigned nprefault;
    uint64_t prefault_next;             /* atomic: the next chunk */

    /*
     * Postcopy (docs/postcopy.md).  Every page received is marked in its
     * block's receivedmap from the start (the source's ADVISE may come
     * after the first batches on the data channels).  @listening and
     * @running change under @lock; writers wait on @cond for LISTEN.
     */
    PostcopyIncoming pi;
    bool pi_init;
    bool advised, listening, running;
    RAMBlock *blocks[DEVSTATE_MAX_BLOCKS];  /* with migration bitmaps */
    size_t nblocks;
    struct RecvNotifier { PostcopyNotifier n; Migration *m; } hp;
    /* DISCARDs, checked on arrival, applied at LISTEN once every channel
     * has written the rounds before it. */
    struct RecvDiscard { RAMBlock *block; uint64_t start, n; } *discards;
    size_t ndiscards, discards_cap;
    XenPager *pager;
    MigPageQueue faults;                /* frames the ring thread asks for */
    uint64_t *fault_ns;                 /* each frame's fault time, or 0 */
    PostcopyBlocktime *blocktime;       /* each vCPU's waits */
    pthread_t req_thread, run_thread;
    bool req_started, run_started;
    int run_ret;
    char run_err[512];
    /* The return path: PAGE_REQUESTs and RESULT, numbered from 0. */
    pthread_mutex_t rp_lock;
    uint32_t rp_seq;
    /*
     * Recovery (docs/postcopy.md): the link is down (under @rp_lock; the
     * request sender drops what it would write: the frames still waited
     * for are asked for again from @fault_ns once a new link is up).
     */
    bool rp_down;
    bool have_dev;                      /* the device state arrived */
    bool pc_preempt;                    /* the last data channel: requests */
    uint64_t direct_requests;           /* atomic: by recv_request_now() */
    uint64_t pc_round;                  /* the round after LISTEN's */
    uint64_t prepare_round;             /* the last PREPARE's */
    uint64_t prepare_ns;                /* the PREPAREs' time, all told */
    uint64_t prepare_t0, prepare_sent;  /* this PREPARE's start, last progress */
    uint64_t prepare_pages;             /* ... and what it paged out so far */
    unsigned recoveries;
};

/* ---- records ----------------------------------------------------------------------- */

/* The next record's header on @r's channel: 0 or -errno with @err. */
static int recv_header(Receiver *r, uint8_t *hdr, uint32_t *type,
                       uint32_t *len, char *err, size_t errlen)
{
    char msg[400];
    int ret;

    if ((ret = mig_channel_read_all(r->chan, hdr, STREAM_RECORD_HDR_LEN, err,
                                    errlen))) {
        return ret;
    }
    ret = stream_record_header_check(hdr, r->seq, type, len, msg,
                                     sizeof(msg));
    if (ret) {
        /* A refused record: say on which channel. */
        return xr_error(err, errlen, ret, "on the %s channel: %s",
                         r->chan->name, msg);
    }
    return 0;
}

/* The rest of its body after the @have bytes in r->body, checked. */
static int recv_body(Receiver *r, const uint8_t *hdr, uint32_t have,
                     uint32_t len, char *err, size_t errlen)
{
    char msg[400];
    int ret;

    if ((ret = mig_channel_read_all(r->chan, r->body + have, len - have,
                                    err, errlen))) {
        return ret;
    }
    ret = stream_record_verify(hdr, r->body, len, msg, sizeof(msg));
    if (ret) {
        return xr_error(err, errlen, ret, "on the %s channel: %s",
                         r->chan->name, msg);
    }
    r->seq++;
    return 0;
}

/* The next record on @r's channel into r->body; 0 or -errno with @err. */
static int recv_record(Receiver *r, uint32_t *type, uint32_t *len, char *err,
                       size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    int ret = recv_header(r, hdr, type, len, err, errlen);

    return ret ? ret : recv_body(r, hdr, 0, *len, err, errlen);
}

static int recv_send_result(RecvCtx *c, uint32_t status, const char *msg)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN], body[4 + 400];
    size_t n = strnlen(msg, 400);
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = body, .iov_len = 4 + n },
    };
    char err[256];

    int ret;

    memcpy(body, &status, 4);
    memcpy(body + 4, msg, n);
    pthread_mutex_lock(&c->rp_lock);
    stream_record_header(STREAM_REC_RESULT, c->rp_seq++, &iov[1], 1, hdr);
    ret = mig_channel_writev_all(c->ctl.chan, iov, 2, err, sizeof(err));
    pthread_mutex_unlock(&c->rp_lock);
    return ret;
}

/* ---- guest memory ---------------------------------------------------------------------- */

/* The writable address of frame @gfn, or NULL if the layout has none. */
/* The range that holds frame @gfn, or SIZE_MAX if the layout has none. */
static size_t recv_range(const RecvCtx *c, uint64_t gfn)
{
    size_t lo = 0, hi = c->nranges;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const MigRange *r = &c->ranges[mid];

        if (gfn < r->gfn) {
            hi = mid;
        } else if (gfn >= r->gfn + r->n) {
            lo = mid + 1;
        } else {
            return mid;
        }
    }
    return SIZE_MAX;
}

/* The writable address of frame @gfn in range @k (recv_range()). */
static uint8_t *recv_addr(const RecvCtx *c, size_t k, uint64_t gfn)
{
    return c->maps[k] + (gfn - c->ranges[k].gfn) * XR_PAGE_SIZE;
}

#define PREFAULT_STEP (32ull << 20)

/*
 * Fault the ranges in, chunk by chunk in gfn order, the chunks shared out
 * by one cursor so that every thread stays just ahead of the writers.
 * First touches cost the kernel a page allocation and a zeroing each (on
 * this machine, a VM whose host takes freed memory back, several times a
 * copy of the page): two threads take 0.6-0.7x the time of one (measured
 * here, 1 GiB, docs/PERFORMANCE.md).
 */
static void *recv_prefault(void *opaque)
{
    RecvCtx *c = opaque;

    for (;;) {
        uint64_t k = __atomic_fetch_add(&c->prefault_next, 1,
                                        __ATOMIC_RELAXED);
        uint64_t len, off;
        size_t i;

        for (i = 0; i < c->nranges; i++) {
            uint64_t chunks = (c->ranges[i].n * XR_PAGE_SIZE +
                               PREFAULT_STEP - 1) / PREFAULT_STEP;

            if (k < chunks) {
                break;
            }
            k -= chunks;
        }
        if (i == c->nranges || __atomic_load_n(&c->abort, __ATOMIC_RELAXED)) {
            return NULL;
        }
        len = c->ranges[i].n * XR_PAGE_SIZE;
        off = k * PREFAULT_STEP;

        /* A mapping that cannot (privcmd's): give up, the writers fault. */
        if (madvise(c->maps[i] + off, MIN(PREFAULT_STEP, len - off),
                    MADV_POPULATE_WRITE) && errno == EINVAL) {
            return NULL;
        }
    }
}

/*
 * Populate and map every RAM range of the layout.  The frames need not
 * come zeroed (see recv_ram()).
 */
static int recv_prepare_memory(RecvCtx *c, char *err, size_t errlen)
{
    uint64_t frames = 0;

    c->maps = calloc(c->nranges ? c->nranges : 1, sizeof(*c->maps));
    c->absent_base = calloc(c->nranges ? c->nranges : 1,
                            sizeof(*c->absent_base));
    for (size_t i = 0; c->absent_base && i < c->nranges; i++) {
        c->absent_base[i] = frames;
        frames += c->ranges[i].n;
    }
    c->absent = xr_bitmap_new(frames ? frames : 1);
    if (!c->maps || !c->absent_base || !c->absent) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->nranges; i++) {
        const MigRange *r = &c->ranges[i];
        xen_pfn_t *gfns = malloc(r->n * sizeof(*gfns));
        int *errs = malloc(r->n * sizeof(*errs)), ret = 0;

        if (!gfns || !errs) {
            free(gfns);
            free(errs);
            return -ENOMEM;
        }
        if (xen_populate(c->xh, r->gfn, r->n)) {
            free(gfns);
            free(errs);
            return xr_error(err, errlen, -ENOMEM, "populating %" PRIu64
                             " MiB at gfn %#" PRIx64 " failed: %s (was the "
                             "domain created without memory, with room for "
                             "the guest's?)", r->n >> 8, r->gfn,
                             xen_last_error());
        }
        for (uint64_t k = 0; k < r->n; k++) {
            gfns[k] = r->gfn + k;
        }
        c->maps[i] = xen_map(c->xh, gfns, r->n, true, errs, &ret);
        for (uint64_t k = 0; c->maps[i] && k < r->n; k++) {
            if (errs[k]) {
                ret = errs[k];
                break;
            }
        }
        free(gfns);
        free(errs);
        if (!c->maps[i] || ret) {
            return xr_error(err, errlen, ret ? ret : -EFAULT, "mapping the "
                             "guest's frames at gfn %#" PRIx64 " failed: %s",
                             r->gfn, xen_last_error());
        }
    }
    /*
     * Faulting the frames in costs more than receiving them (the kernel
     * zeroes every page on first touch): do it ahead of the writers in a
     * thread of its own, while the first pages are on their way, instead
     * of before them.  A writer that overtakes it faults its own pages.
     */
    while (c->nprefault < RECV_PREFAULT_THREADS &&
           !pthread_create(&c->prefault[c->nprefault], NULL, recv_prefault,
                           c)) {
        c->nprefault++;
    }
    return 0;
}

static int recv_layout(RecvCtx *c, uint32_t len, char *err, size_t errlen)
{
    Migration *m = c->m;
    char msg[512];
    int ret;

    ret = devstate_decode(c->ctl.body, len, &c->layout, msg, sizeof(msg));
    if (ret) {
        return xr_error(err, errlen, ret, "the RAM layout is invalid: %s",
                         msg);
    }
    c->have_layout = true;
    ret = migration_layout_apply(m, &c->layout, err, errlen);
    if (ret) {
        return ret;
    }
    ret = mig_ranges_from_layout(m, &c->layout, &c->ranges, &c->nranges, err,
                                 errlen);
    if (ret) {
        return ret;
    }
    pthread_mutex_lock(&m->lock);
    m->info.ram.total = 0;
    for (size_t i = 0; i < c->nranges; i++) {
        m->info.ram.total += c->ranges[i].n * XR_PAGE_SIZE;
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int range_gfn_cmp(const void *a, const void *b)
{
    const MigRange *x = a, *y = b;

    return x->gfn < y->gfn ? -1 : x->gfn > y->gfn;
}

/*
 * The source's HVM parameters: each one known, set on this domain; the
 * special frames they name join the ranges to populate and receive.
 */
static int recv_hvm_params(RecvCtx *c, uint32_t len, char *err,
                           size_t errlen)
{
    MigHvmParam p[MIG_MAX_HVM_PARAMS];
    uint64_t special[MIG_MAX_SPECIAL_FRAMES], value[MIG_MAX_HVM_PARAMS];
    uint32_t index[MIG_MAX_HVM_PARAMS];
    unsigned n;
    MigRange *r;
    int k, ret;

    ret = stream_hvm_params_decode(c->ctl.body, len, index, value,
                                   MIG_MAX_HVM_PARAMS, &n, err, errlen);
    if (ret) {
        return ret;
    }
    for (unsigned i = 0; i < n; i++) {
        p[i] = (MigHvmParam) { index[i], value[i] };
        if (!mig_hvm_param_known(p[i].index)) {
            return xr_error(err, errlen, -EINVAL, "the source sent HVM "
                             "parameter %u, which a migration does not "
                             "carry", p[i].index);
        }
    }
    k = mig_special_frames(p, n, c->ranges, c->nranges, special);
    if (k < 0) {
        return xr_error(err, errlen, -EINVAL, "the source's HVM parameters "
                         "name frames beyond what a guest can address");
    }
    for (unsigned i = 0; i < n; i++) {
        if ((ret = xen_hvm_param_set(c->xh, p[i].index, p[i].value))) {
            return xr_error(err, errlen, ret, "setting HVM parameter %u: "
                             "%s", p[i].index, xen_last_error());
        }
        if (mig_hvm_param_cleared(p[i].index) &&
            c->ncleared < MIG_MAX_HVM_PARAMS) {
            c->cleared[c->ncleared++] = p[i].value;
        }
    }
    r = realloc(c->ranges, (c->nranges + (size_t)k) * sizeof(*r));
    if (!r) {
        return -ENOMEM;
    }
    c->ranges = r;
    for (int i = 0; i < k; i++) {
        r[c->nranges++] = (MigRange) { .gfn = special[i], .n = 1 };
    }
    qsort(c->ranges, c->nranges, sizeof(*c->ranges), range_gfn_cmp);
    return 0;
}

/* ---- RAM ------------------------------------------------------------------------------ */

/* Wait until every channel has finished round @round - 1. */
static int recv_wait_round(RecvCtx *c, uint64_t round)
{
    int ret = 0;

    if (!c->ndata || round <= 1) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    for (;;) {
        bool ready = true;

        for (unsigned i = 1; i <= c->ndata; i++) {
            ready &= c->done_round[i] + 1 >= round;
        }
        if (ready || __atomic_load_n(&c->abort, __ATOMIC_RELAXED)) {
            break;
        }
        pthread_cond_wait(&c->cond, &c->lock);
    }
    ret = __atomic_load_n(&c->abort, __ATOMIC_RELAXED) ? -ECANCELED : 0;
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* Whether @r's batch writes a page of a block (not ABSENT, not special). */
static bool recv_batch_writes_ram(const Receiver *r)
{
    const StreamBatchView *v = r->view;

    for (uint32_t i = 0; i < v->npages; i++) {
        if (v->kind[i] != STREAM_PAGE_ABSENT &&
            r->ctx->ranges[r->range[i]].block) {
            return true;
        }
    }
    return false;
}

/*
 * Through the writers' gate with @r's precopy batch (its pages checked
 * against the layout), once the rounds before its own are complete on
 * every channel: 0, and recv_gate_leave() once it is written; or -EPROTO
 * with @err for a batch that may no longer come, -ECANCELED.
 */
static int recv_gate_enter(Receiver *r, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    bool ram = recv_batch_writes_ram(r);
    int ret = recv_wait_round(c, r->view->round);

    if (ret) {
        return xr_error(err, errlen, ret, "another channel failed");
    }
    pthread_mutex_lock(&c->lock);
    while (c->gate_closed && !__atomic_load_n(&c->abort, __ATOMIC_RELAXED)) {
        pthread_cond_wait(&c->cond, &c->lock);
    }
    if (__atomic_load_n(&c->abort, __ATOMIC_RELAXED)) {
        ret = xr_error(err, errlen, -ECANCELED, "another channel failed");
    } else if (c->listening) {
        ret = xr_error(err, errlen, -EPROTO, "a precopy RAM batch after "
                       "POSTCOPY_LISTEN: the guest's pages are placed from "
                       "then on");
    } else if (c->paged && ram) {
        ret = xr_error(err, errlen, -EPROTO, "a precopy RAM batch with pages "
                       "of a RAM block after POSTCOPY_PREPARE: their frames "
                       "are paged out, and only postcopy places pages in "
                       "them");
    } else {
        c->writing++;
    }
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/* Out of the gate with @r's batch, written with result @ret: @ret. */
static int recv_gate_leave(Receiver *r, int ret)
{
    RecvCtx *c = r->ctx;

    pthread_mutex_lock(&c->lock);
    if (--c->writing == 0 && c->gate_closed) {
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    if (!ret) {
        __atomic_add_fetch(&c->pages, r->view->npages, __ATOMIC_RELAXED);
    }
    return ret;
}

/*
 * PREPARE and LISTEN: no batch is written from here until
 * recv_gate_open(); returns once those being written are.
 */
static void recv_gate_close(RecvCtx *c)
{
    pthread_mutex_lock(&c->lock);
    c->gate_closed = true;
    while (c->writing) {
        pthread_cond_wait(&c->cond, &c->lock);
    }
    pthread_mutex_unlock(&c->lock);
}

static void recv_gate_open(RecvCtx *c, bool paged)
{
    pthread_mutex_lock(&c->lock);
    c->gate_closed = false;
    c->paged |= paged;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/*
 * Make frame @gfn (mapped at @addr) present or absent as on the source:
 * every frame of the layout was populated up front, so a frame the source
 * does not have is given back, and populated and mapped again should it
 * come back in a later round.  Frames change state rarely (the VGA hole
 * once, a balloon), so this takes @c->lock.
 */
static int recv_presence(RecvCtx *c, size_t k, uint64_t gfn, bool present,
                         char *err, size_t errlen)
{
    uint64_t idx = c->absent_base[k] + (gfn - c->ranges[k].gfn);
    bool absent;
    int ret = 0;

    /* Other writers change other bits of the word, under @c->lock. */
    absent = (__atomic_load_n(&c->absent[BIT_WORD(idx)], __ATOMIC_RELAXED) &
              BIT_MASK(idx)) != 0;
    if (absent == !present) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    if (!present && c->pager && xen_pager_is_paged_out(c->pager, gfn)) {
        /*
         * A PREPARE paged it out, then the source found it gone (never
         * sent, or ballooned since): Xen gives back a page, so it is
         * loaded (zeros) first.  The gate keeps PREPARE away meanwhile.
         */
        ret = xen_pager_load(c->pager, gfn, NULL);
        ret = ret == -EEXIST ? 0 : ret;
    }
    if (!present && !ret) {
        ret = xen_depopulate(c->xh, gfn, 1);
        if (!ret) {
            __atomic_or_fetch(&c->absent[BIT_WORD(idx)], BIT_MASK(idx),
                              __ATOMIC_RELAXED);
        }
    } else if (present) {
        uint8_t *addr = recv_addr(c, k, gfn);
        xen_pfn_t pfn = gfn;
        int perr = 0;

        ret = xen_populate(c->xh, gfn, 1);
        if (!ret && !xen_map_at(c->xh, addr, &pfn, 1, true, &perr, &ret)) {
            ret = ret ? ret : -EFAULT;
        }
        if (!ret) {
            __atomic_and_fetch(&c->absent[BIT_WORD(idx)], ~BIT_MASK(idx),
                               __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (ret) {
        return xr_error(err, errlen, ret, "making guest frame %#" PRIx64
                         " %s: %s", gfn, present ? "present" : "absent",
                         xen_last_error());
    }
    return 0;
}

static int recv_mark_received(Receiver *r, char *err, size_t errlen);
static int recv_postcopy_ram(Receiver *r, char *err, size_t errlen);
static int recv_ram(Receiver *r, uint32_t len, char *err, size_t errlen);
static int recv_ram_write(Receiver *r, char *err, size_t errlen);
static int recv_ram_record_write(Receiver *r, const uint8_t *hdr, size_t dl,
                                 char *err, size_t errlen);

static int recv_ram(Receiver *r, uint32_t len, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    int ret;

    ret = stream_batch_parse(r->dec, r->body, len, v, err, errlen);
    if (ret) {
        return ret;
    }
    if (v->flags & STREAM_BATCH_F_POSTCOPY) {
        return recv_postcopy_ram(r, err, errlen);
    }
    /* Refused again at the gate, where no LISTEN can overtake. */
    if (__atomic_load_n(&c->listening, __ATOMIC_ACQUIRE)) {
        return xr_error(err, errlen, -EPROTO, "a precopy RAM batch after "
                        "POSTCOPY_LISTEN: the guest's pages are placed from "
                        "then on");
    }
    /* Every page is checked before any is written. */
    for (uint32_t i = 0; i < v->npages; i++) {
        r->range[i] = recv_range(c, v->pfn[i]);
        if (r->range[i] == SIZE_MAX) {
            return xr_error(err, errlen, -EINVAL, "the source sent guest "
                             "frame %#" PRIx64 ", which is outside the RAM "
                             "layout it sent", v->pfn[i]);
        }
    }
    if ((ret = recv_gate_enter(r, err, errlen))) {
        return ret;
    }
    return recv_gate_leave(r, recv_ram_write(r, err, errlen));
}

/* recv_ram()'s batch written, through the gate. */
static int recv_ram_write(Receiver *r, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    const uint8_t *src = v->data;
    int ret;

    for (uint32_t i = 0; i < v->npages; i++) {
        uint8_t *dst;

        if ((ret = recv_presence(c, r->range[i], v->pfn[i],
                                 v->kind[i] != STREAM_PAGE_ABSENT, err,
                                 errlen))) {
            return ret;
        }
        if (v->kind[i] == STREAM_PAGE_ABSENT) {
            continue;
        }
        dst = recv_addr(c, r->range[i], v->pfn[i]);
        if (v->kind[i] == STREAM_PAGE_NORMAL) {
            memcpy(dst, src, XR_PAGE_SIZE);
            src += XR_PAGE_SIZE;
        } else if (v->round > 1 || !stream_page_is_zero(dst)) {
            /*
             * A first-round zero page needs no write only if the frame is
             * zero already: Xen scrubs the pages of dying domains, not
             * those a live one gave back (free_domheap_pages()), so a
             * frame just populated may hold what another domain left in
             * it -- an ioreq page's event channel was seen here.  Reading
             * costs less than writing a page that already is zero.
             */
            memset(dst, 0, XR_PAGE_SIZE);
        }
    }
    return recv_mark_received(r, err, errlen);
}

/*
 * The description of a batch read for recv_ram_record() was refused with
 * @ret and @err: if the record fails its checksum, corruption is the
 * cause and the sentence says so; otherwise the source sent it so.
 */
static int recv_ram_refused(Receiver *r, const uint8_t *hdr, size_t dl,
                            uint32_t len, int ret, char *err, size_t errlen)
{
    char msg[400];
    int cret = mig_channel_read_all(r->chan, r->body + dl, len - dl, msg,
                                    sizeof(msg));

    if (!cret && stream_record_verify(hdr, r->body, len, msg,
                                      sizeof(msg))) {
        return xr_error(err, errlen, -EINVAL, "on the %s channel: %s",
                         r->chan->name, msg);
    }
    return ret;
}

/*
 * A precopy RAM record whose header @hdr was read: an uncompressed batch
 * has its pages read straight into guest memory -- no staging copy --
 * and its checksum checked there afterwards.  That is safe because
 * nothing runs the destination's guest before the END record, and a
 * batch that fails its checksum fails the migration, whose destination is
 * then discarded: what the bad batch wrote is never run.  The page
 * numbers, the layout and the presence of every frame are checked before
 * a byte is read into guest memory.  Compressed batches and postcopy's
 * (placed through Xen) go through the body buffer as before.
 */
static int recv_ram_record(Receiver *r, const uint8_t *hdr, uint32_t len,
                           char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    char msg[400];
    size_t dl;
    int ret;

    if (len < STREAM_BATCH_DESC_FIXED) {
        ret = recv_body(r, hdr, 0, len, err, errlen);
        return ret ? ret : recv_ram(r, len, err, errlen);
    }
    if ((ret = mig_channel_read_all(r->chan, r->body, STREAM_BATCH_DESC_FIXED,
                                    err, errlen))) {
        return ret;
    }
    dl = stream_batch_desc_len(r->body);
    if (!dl || dl > len || r->body[12] != STREAM_CODEC_NONE ||
        (r->body[13] & STREAM_BATCH_F_POSTCOPY) ||
        __atomic_load_n(&c->listening, __ATOMIC_ACQUIRE)) {
        ret = recv_body(r, hdr, STREAM_BATCH_DESC_FIXED, len, err, errlen);
        return ret ? ret : recv_ram(r, len, err, errlen);
    }
    if ((ret = mig_channel_read_all(r->chan, r->body + STREAM_BATCH_DESC_FIXED,
                                    dl - STREAM_BATCH_DESC_FIXED, err,
                                    errlen))) {
        return ret;
    }
    if ((ret = stream_batch_parse_desc(r->body, dl, len, v, msg,
                                       sizeof(msg)))) {
        xr_error(err, errlen, ret, "on the %s channel: %s", r->chan->name,
                 msg);
        return recv_ram_refused(r, hdr, dl, len, ret, err, errlen);
    }
    for (uint32_t i = 0; i < v->npages; i++) {
        r->range[i] = recv_range(c, v->pfn[i]);
        if (r->range[i] == SIZE_MAX) {
            ret = xr_error(err, errlen, -EINVAL, "the source sent guest "
                           "frame %#" PRIx64 ", which is outside the RAM "
                           "layout it sent", v->pfn[i]);
            return recv_ram_refused(r, hdr, dl, len, ret, err, errlen);
        }
    }
    if ((ret = recv_gate_enter(r, err, errlen))) {
        return ret;
    }
    return recv_gate_leave(r, recv_ram_record_write(r, hdr, dl, err,
                                                    errlen));
}

/* recv_ram_record()'s batch read into guest memory, through the gate. */
static int recv_ram_record_write(Receiver *r, const uint8_t *hdr, size_t dl,
                                 char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    char msg[400];
    int n = 1, ret;

    /* Frames present or absent as on the source, then the runs to read. */
    r->iov[0] = (struct iovec) { .iov_base = r->body, .iov_len = dl };
    for (uint32_t i = 0; i < v->npages; i++) {
        uint8_t *dst;

        if ((ret = recv_presence(c, r->range[i], v->pfn[i],
                                 v->kind[i] != STREAM_PAGE_ABSENT, err,
                                 errlen))) {
            return ret;
        }
        if (v->kind[i] != STREAM_PAGE_NORMAL) {
            continue;
        }
        dst = recv_addr(c, r->range[i], v->pfn[i]);
        if (n > 1 && (uint8_t *)r->iov[n - 1].iov_base +
                     r->iov[n - 1].iov_len == dst) {
            r->iov[n - 1].iov_len += XR_PAGE_SIZE;
        } else {
            r->iov[n++] = (struct iovec) { .iov_base = dst,
                                           .iov_len = XR_PAGE_SIZE };
        }
    }
    for (int k = 1; k < n; k++) {
        if ((ret = mig_channel_read_all(r->chan, r->iov[k].iov_base,
                                        r->iov[k].iov_len, err, errlen))) {
            return ret;
        }
    }
    if ((ret = stream_record_verifyv(hdr, r->iov, n, msg, sizeof(msg)))) {
        return xr_error(err, errlen, ret, "on the %s channel: %s",
                         r->chan->name, msg);
    }
    r->seq++;
    for (uint32_t i = 0; i < v->npages; i++) {
        uint8_t *dst = recv_addr(c, r->range[i], v->pfn[i]);

        /* Zero pages: as recv_ram() does them, and why. */
        if (v->kind[i] == STREAM_PAGE_ZERO &&
            (v->round > 1 || !stream_page_is_zero(dst))) {
            memset(dst, 0, XR_PAGE_SIZE);
        }
    }
    return recv_mark_received(r, err, errlen);
}

static int recv_round_end(Receiver *r, uint32_t len, char *err,
                          size_t errlen)
{
    RecvCtx *c = r->ctx;
    uint64_t round, pages;
    int ret = stream_round_end_decode(r->body, len, &round, &pages, err,
                                      errlen);

    if (ret) {
        return ret;
    }
    pthread_mutex_lock(&c->lock);
    if (round != c->done_round[r->index] + 1) {
        ret = xr_error(err, errlen, -EINVAL, "the %s channel ended round "
                        "%" PRIu64 " after round %" PRIu64, r->chan->name,
                        round, c->done_round[r->index]);
    } else {
        c->done_round[r->index] = round;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    if (!ret) {
        pthread_mutex_lock(&c->m->lock);
        c->m->info.ram.dirty_sync_count = MAX(c->m->info.ram.dirty_sync_count,
                                              round);
        c->m->info.ram.transferred += 0;
        pthread_mutex_unlock(&c->m->lock);
    }
    return ret;
}

/* ---- postcopy ------------------------------------------------------------------------ */

/* Block and page of frame @gfn in range @k (block NULL: a special frame). */
static RAMBlock *recv_block_page(const RecvCtx *c, size_t k, uint64_t gfn,
                                 uint64_t *page)
{
    *page = c->ranges[k].page + (gfn - c->ranges[k].gfn);
    return c->ranges[k].block;
}

/* The frame index of @gfn in range @k, for @absent and @fault_ns. */
static uint64_t recv_frame_index(const RecvCtx *c, size_t k, uint64_t gfn)
{
    return c->absent_base[k] + (gfn - c->ranges[k].gfn);
}

/* A precopy batch was written: its block pages are received. */
static int recv_mark_received(Receiver *r, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    RAMBlock *blocks[STREAM_BATCH_MAX_PAGES];
    uint64_t pages[STREAM_BATCH_MAX_PAGES];
    unsigned n = 0;

    if (!c->pi_init) {
        return 0;
    }
    for (uint32_t i = 0; i < v->npages; i++) {
        RAMBlock *b = recv_block_page(c, r->range[i], v->pfn[i], &pages[n]);

        /* An ABSENT frame is as the source has it: received too. */
        if (b) {
            blocks[n++] = b;
        }
    }
    return postcopy_incoming_received_batch(&c->pi, blocks, pages, n, err,
                                            errlen);
}

/* The destination's figures, for query-migrate. */
static void recv_postcopy_info(RecvCtx *c)
{
    MigrationPostcopyInfo *pc = &c->m->info.postcopy;
    PostcopyStats st;
    uint64_t asked, vcpu_ns[MIGRATION_MAX_VCPUS];
    uint32_t nv;

    postcopy_incoming_stats(&c->pi, &st);
    nv = postcopy_blocktime_totals(c->blocktime, vcpu_ns,
                                   MIGRATION_MAX_VCPUS);
    nv = MIN(nv, MIGRATION_MAX_VCPUS);
    pthread_mutex_lock(&c->faults.lock);
    asked = c->faults.pushed;
    pthread_mutex_unlock(&c->faults.lock);
    asked += __atomic_load_n(&c->direct_requests, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->m->lock);
    pc->used = true;
    pc->requests = asked;
    pc->discarded = st.discarded;
    pc->made_absent = st.made_absent;
    pc->made_absent_listen = st.made_absent_listen;
    pc->prepares = st.prepares;
    pc->prepare_ms = c->prepare_ns / 1000000;
    pc->placed = st.placed;
    pc->duplicates = st.duplicates;
    pc->recoveries = c->recoveries;
    pc->blocktime_ns = st.blocktime_ns;
    pc->faults = st.requests;
    pc->p50_ns = st.p50_ns;
    pc->p99_ns = st.p99_ns;
    pc->max_ns = st.max_ns;
    memcpy(pc->hist, st.latency.bucket, sizeof(pc->hist));
    pc->nr_vcpus = nv;
    memcpy(pc->vcpu_blocktime_ns, vcpu_ns, nv * sizeof(vcpu_ns[0]));
    pthread_mutex_unlock(&c->m->lock);
}

/* Wait for LISTEN (a postcopy batch may overtake it on its channel). */
static int recv_wait_listening(RecvCtx *c)
{
    int ret;

    pthread_mutex_lock(&c->lock);
    /* @abort: atomic, as the prefault threads read it without @lock. */
    while (!c->listening && !__atomic_load_n(&c->abort, __ATOMIC_RELAXED)) {
        pthread_cond_wait(&c->cond, &c->lock);
    }
    ret = c->listening ? 0 : -ECANCELED;
    pthread_mutex_unlock(&c->lock);
    return ret;
}

/*
 * A batch sent after the switch: every page placed through the pager
 * (loaded, its waiting vCPUs resumed), at most once; the time from the
 * fault that asked for it to its load recorded.
 */
static int recv_postcopy_ram(Receiver *r, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    const uint8_t *src = v->data;
    int ret;

    for (uint32_t i = 0; i < v->npages; i++) {
        uint64_t page;

        r->range[i] = recv_range(c, v->pfn[i]);
        if (r->range[i] == SIZE_MAX ||
            !recv_block_page(c, r->range[i], v->pfn[i], &page)) {
            return xr_error(err, errlen, -EINVAL, "the source sent guest "
                            "frame %#" PRIx64 " after the switch to "
                            "postcopy, which is no RAM block's page of the "
                            "layout", v->pfn[i]);
        }
    }
    if (!c->pi_init || (ret = recv_wait_listening(c))) {
        return c->pi_init ? xr_error(err, errlen, -ECANCELED, "another "
                                     "channel failed")
                          : xr_error(err, errlen, -EPROTO, "a postcopy RAM "
                                     "batch, but the source never sent "
                                     "POSTCOPY_ADVISE");
    }
    /*
     * The pages a vCPU (or a mapping) waits for first, then the rest in
     * order, looking again for waited-for pages before each load: a
     * faulted page the background carried (the source had taken it
     * before the request came) would otherwise wait for the loads of
     * every page before it in the batch, each a hypercall.
     */
    {
        const uint8_t *data_of[STREAM_BATCH_MAX_PAGES];
        uint32_t next = 0, left = v->npages;

        for (uint32_t i = 0; i < v->npages; i++) {
            data_of[i] = NULL;
            if (v->kind[i] == STREAM_PAGE_NORMAL) {
                data_of[i] = src;
                src += XR_PAGE_SIZE;
            }
            r->placed[i] = false;
        }
        while (left) {
            uint32_t i = UINT32_MAX;
            uint64_t page, idx, t, now;
            RAMBlock *b;

            for (uint32_t j = next; j < v->npages; j++) {
                if (!r->placed[j] &&
                    __atomic_load_n(&c->fault_ns[recv_frame_index(
                                        c, r->range[j], v->pfn[j])],
                                    __ATOMIC_ACQUIRE)) {
                    i = j;
                    break;
                }
            }
            if (i == UINT32_MAX) {
                while (r->placed[next]) {
                    next++;
                }
                i = next;
            }
            r->placed[i] = true;
            left--;
            idx = recv_frame_index(c, r->range[i], v->pfn[i]);
            b = recv_block_page(c, r->range[i], v->pfn[i], &page);
            /*
             * A frame the source no longer has (ballooned since it was
             * sent) comes back as zeros: the guest gave it up and reads
             * nothing from it; Xen's paging has no way back to "not
             * populated".
             */
            ret = postcopy_incoming_place(&c->pi, b, page, data_of[i], err,
                                          errlen);
            if (ret) {
                return ret;
            }
            t = __atomic_exchange_n(&c->fault_ns[idx], 0, __ATOMIC_ACQ_REL);
            now = mig_now_ns();
            if (t) {
                postcopy_incoming_fault_served(&c->pi, now - t);
            }
            /* Its vCPUs run again (one may wait for a frame nobody asked
             * for: its load was in flight). */
            postcopy_blocktime_placed(c->blocktime, v->pfn[i], now);
        }
    }
    __atomic_add_fetch(&c->pages, v->npages, __ATOMIC_RELAXED);
    recv_postcopy_info(c);
    return 0;
}

/* A PREPARE's figures on the return path: 0 or -errno with @err. */
static int recv_send_prepared(RecvCtx *c, uint64_t pages, uint64_t ns,
                              uint64_t flags, char *err, size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN], body[STREAM_POSTCOPY_PREPARED_LEN];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = body, .iov_len = sizeof(body) },
    };
    int ret;

    stream_postcopy_prepared_encode(pages, ns, flags, body);
    pthread_mutex_lock(&c->rp_lock);
    stream_record_header(STREAM_REC_POSTCOPY_PREPARED, c->rp_seq++, &iov[1],
                         1, hdr);
    ret = mig_channel_writev_all(c->ctl.chan, iov, 2, err, errlen);
    pthread_mutex_unlock(&c->rp_lock);
    return ret;
}

/* Frames paged out per xen_pager_evict() call, between progress checks. */
#define RECV_EVICT_CHUNK 1024u

/*
 * PostcopyOps.make_absent: the frames of pages [page, page + n) paged
 * out, in chunks; one the source's ABSENT gave back is populated again
 * first (Xen pages out populated frames only).  During a PREPARE the
 * source hears how far it got every STREAM_PREPARED_PROGRESS_MS.
 */
static int recv_make_absent(void *opaque, RAMBlock *block, uint64_t page,
                            uint64_t npages, char *err, size_t errlen)
{
    RecvCtx *c = opaque;

    for (size_t k = 0; k < c->nranges; k++) {
        const MigRange *mr = &c->ranges[k];
        uint64_t lo = MAX(page, mr->page), hi;

        if (mr->block != block || lo >= MIN(page + npages, mr->page + mr->n)) {
            continue;
        }
        hi = MIN(page + npages, mr->page + mr->n);
        for (uint64_t p = lo; p < hi; p += RECV_EVICT_CHUNK) {
            uint64_t gfn = mr->gfn + (p - mr->page), done = 0;
            uint64_t n = MIN(RECV_EVICT_CHUNK, hi - p), now;
            int ret = 0;

            for (uint64_t j = 0; !ret && j < n; j++) {
                uint64_t idx = recv_frame_index(c, k, gfn + j);

                if (xr_test_bit(idx, c->absent)) {
                    ret = xen_populate(c->xh, gfn + j, 1);
                    if (!ret) {
                        __atomic_and_fetch(&c->absent[BIT_WORD(idx)],
                                           ~BIT_MASK(idx), __ATOMIC_RELAXED);
                    }
                }
            }
            if (ret) {
                return xr_error(err, errlen, ret, "populating guest frame "
                                "%#" PRIx64 " to page it out: %s", gfn,
                                xen_last_error());
            }
            ret = xen_pager_evict(c->pager, gfn, n, &done);
            if (ret) {
                return xr_error(err, errlen, ret, "paging out guest frame %#"
                                PRIx64 " (to be fetched from the source) "
                                "failed: %s%s", gfn + done, xen_last_error(),
                                ret == -EBUSY ? " (something still maps it)"
                                              : "");
            }
            c->prepare_pages += n;
            now = mig_now_ns();
            if (c->prepare_t0 && now - c->prepare_sent >=
                                 STREAM_PREPARED_PROGRESS_MS * 1000000ull) {
                c->prepare_sent = now;
                ret = recv_send_prepared(c, c->prepare_pages,
                                         now - c->prepare_t0, 0, err, errlen);
                if (ret) {
                    return ret;
                }
            }
        }
    }
    return 0;
}

/* PostcopyOps.place: load the page, which answers its faults. */
static int recv_place(void *opaque, RAMBlock *block, uint64_t page,
                      const void *data, char *err, size_t errlen)
{
    RecvCtx *c = opaque;

    for (size_t k = 0; k < c->nranges; k++) {
        const MigRange *mr = &c->ranges[k];
        int ret;

        if (mr->block != block || page < mr->page ||
            page >= mr->page + mr->n) {
            continue;
        }
        ret = xen_pager_load(c->pager, mr->gfn + (page - mr->page), data);
        if (ret && ret != -EEXIST) {
            return xr_error(err, errlen, ret, "loading guest frame %#" PRIx64
                            ": %s", mr->gfn + (page - mr->page),
                            xen_last_error());
        }
        return ret;
    }
    /* A page no range maps was marked received at the start. */
    return -EEXIST;
}

static const PostcopyOps recv_pc_ops = {
    .make_absent = recv_make_absent,
    .place = recv_place,
};

/*
 * On the ring thread: the PAGE_REQUEST for frame @gfn (range @k) written
 * at once, if the return path is free and can take it without waiting;
 * false to leave it to the request sender (a hand-over costs a thread
 * wake-up, most of what a vCPU waits for a page on this path).
 */
static bool recv_request_now(RecvCtx *c, size_t k, uint64_t gfn)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN], body[512];
    struct iovec iov[2];
    uint64_t page;
    RAMBlock *b = recv_block_page(c, k, gfn, &page);
    char err[256];
    bool sent = false;
    int ret;

    if (pthread_mutex_trylock(&c->rp_lock)) {
        return false;
    }
    if (!c->rp_down && c->ctl.chan) {
        stream_page_request_encode(b->idstr, page, 1, body);
        iov[1] = (struct iovec) { .iov_base = body,
                                  .iov_len = stream_page_request_len(
                                      b->idstr) };
        iov[0] = (struct iovec) { .iov_base = hdr, .iov_len = sizeof(hdr) };
        stream_record_header(STREAM_REC_PAGE_REQUEST, c->rp_seq, &iov[1], 1,
                             hdr);
        ret = mig_channel_try_writev_all(c->ctl.chan, iov, 2, err,
                                         sizeof(err));
        if (ret != -EAGAIN) {
            c->rp_seq++;
            sent = true;
        }
        if (ret && ret != -EAGAIN) {
            /* As the request sender does (recv_req_thread()). */
            c->rp_down = true;
            mig_channel_cancel(c->ctl.chan);
        }
    }
    pthread_mutex_unlock(&c->rp_lock);
    if (sent) {
        __atomic_add_fetch(&c->direct_requests, 1, __ATOMIC_RELAXED);
    }
    return sent;
}

/*
 * XenPagerFaultFn, on the pager's ring thread: never blocks, never maps
 * guest memory (a foreign mapping of a paged frame waits for this very
 * thread).  A paused vCPU's wait is recorded (blocktime); an ask keeps
 * the frame's fault time for the latency and queues the frame for the
 * request sender.
 */
static void recv_fault(void *opaque, const XenPagerFault *f)
{
    RecvCtx *c = opaque;
    uint64_t gfn = f->gfn;
    size_t k = recv_range(c, gfn);
    uint64_t zero = 0, now = mig_now_ns();
    MigPageRun run = { .gfn = gfn, .n = 1, .t_ns = now };

    if (k == SIZE_MAX || !c->ranges[k].block) {
        return;                 /* not a page postcopy moves */
    }
    /*
     * The frame may have been loaded since Xen's request, and that place
     * charged nobody: it clears the frame's mark before it charges, so
     * either it finds this wait or we find the frame in (blocktime.h).
     */
    if (f->vcpu != XEN_PAGER_NO_VCPU &&
        postcopy_blocktime_fault(c->blocktime, f->vcpu, gfn, now) &&
        !xen_pager_is_paged_out(c->pager, gfn)) {
        postcopy_blocktime_placed(c->blocktime, gfn, mig_now_ns());
    }
    if (!f->ask) {
        return;                 /* one more vCPU on a frame asked for */
    }
    __atomic_compare_exchange_n(&c->fault_ns[recv_frame_index(c, k, gfn)],
                                &zero, now, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_RELAXED);
    if (recv_request_now(c, k, gfn)) {
        return;
    }
    if (mig_page_queue_push(&c->faults, &run)) {
        fprintf(stderr, "xenram: postcopy: the fault of frame %#" PRIx64
                " could not be queued\n", gfn);
    }
}

/*
 * The request sender: frames the ring thread queued, as PAGE_REQUESTs on
 * the control channel's write side, consecutive frames of one block in
 * one request.  Ends when the queue is closed.
 */
static void *recv_req_thread(void *opaque)
{
    RecvCtx *c = opaque;
    uint8_t hdr[STREAM_RECORD_HDR_LEN], body[512];
    MigPageRun run, next;
    bool have_next = false;
    char err[256];

    while (have_next || mig_page_queue_pop(&c->faults, &run, true)) {
        size_t k;
        uint64_t page;
        uint32_t n = 1;
        RAMBlock *b;
        struct iovec iov[2];

        if (have_next) {
            run = next;
            have_next = false;
        }
        k = recv_range(c, run.gfn);
        b = recv_block_page(c, k, run.gfn, &page);
        while (mig_page_queue_pop(&c->faults, &next, false)) {
            if (next.gfn == run.gfn + n && n < STREAM_BATCH_MAX_PAGES &&
                next.gfn < c->ranges[k].gfn + c->ranges[k].n) {
                n++;
                continue;
            }
            have_next = true;
            break;
        }
        stream_page_request_encode(b->idstr, page, n, body);
        iov[1] = (struct iovec) { .iov_base = body,
                                  .iov_len = stream_page_request_len(
                                      b->idstr) };
        iov[0] = (struct iovec) { .iov_base = hdr, .iov_len = sizeof(hdr) };
        pthread_mutex_lock(&c->rp_lock);
        if (!c->rp_down) {
            stream_record_header(STREAM_REC_PAGE_REQUEST, c->rp_seq++,
                                 &iov[1], 1, hdr);
            if (mig_channel_writev_all(c->ctl.chan, iov, 2, err,
                                       sizeof(err))) {
                /*
                 * The link broke: the channels' readers notice (woken
                 * here should only this side be broken), the frames
                 * still waited for are asked again after a recovery.
                 */
                c->rp_down = true;
                mig_channel_cancel(c->ctl.chan);
            }
        }
        pthread_mutex_unlock(&c->rp_lock);
    }
    return NULL;
}

/* The hot-plug notifier: no RAM changes from ADVISE to END. */
static int recv_hotplug_notify(PostcopyNotifier *n, PostcopyNotifyReason why,
                               char *err, size_t errlen)
{
    Migration *m = ((struct RecvNotifier *)n)->m;

    (void)err;
    (void)errlen;
    if (why == POSTCOPY_NOTIFY_INBOUND_ADVISE) {
        mig_hotplug_set_blocked(m, "a postcopy migration is arriving: the "
                                "RAM layout cannot change until every page "
                                "is here");
    } else if (why == POSTCOPY_NOTIFY_INBOUND_END) {
        mig_hotplug_set_blocked(m, NULL);
    }
    return 0;
}

int mig_postcopy_probe(Migration *m, char *err, size_t errlen)
{
    struct RecvNotifier hp = { .n.notify = recv_hotplug_notify, .m = m };
    PostcopyIncoming pi;
    int ret;

    postcopy_incoming_init(&pi, m->cfg.ram, &recv_pc_ops, NULL);
    postcopy_add_notifier(&pi, &hp.n);
    ret = postcopy_probe(&pi, err, errlen);
    postcopy_incoming_destroy(&pi);
    return ret;
}

/*
 * Before any page arrives: every block gets its migration bitmaps, and
 * the pages no range of the layout maps (xen.ram's hole) count as
 * received, since no one will ever send them.
 */
static int recv_postcopy_init(RecvCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    RAMBlock *block;
    XenDomainInfo di;
    int ret = 0;
    uint64_t frames = 0;
    uint32_t vcpus = 0;

    rcu_read_lock();
    RAMBLOCK_FOREACH(m->cfg.ram, block) {
        if (c->nblocks == DEVSTATE_MAX_BLOCKS) {
            break;
        }
        ret = ram_block_alloc_migration_bitmaps(block, 0);
        if (ret) {
            break;
        }
        c->blocks[c->nblocks++] = block;
        xr_bitmap_set(block->receivedmap, 0,
                      block->postcopy_length >> XR_PAGE_BITS);
    }
    rcu_read_unlock();
    if (ret) {
        return xr_error(err, errlen, ret, "allocating the received map: %s",
                        strerror(-ret));
    }
    for (size_t k = 0; k < c->nranges; k++) {
        if (c->ranges[k].block) {
            xr_bitmap_clear(c->ranges[k].block->receivedmap,
                            c->ranges[k].page, c->ranges[k].n);
        }
        frames += c->ranges[k].n;
    }
    c->fault_ns = calloc(frames ? frames : 1, sizeof(*c->fault_ns));
    /* The guest's vCPUs, as many as query-migrate reports (an HVM guest
     * has no more); none if Xen cannot say: only figures are lost. */
    if (xen_domain_info(c->xh, &di) == 0) {
        vcpus = MIN(di.nr_vcpus, MIGRATION_MAX_VCPUS);
    }
    c->blocktime = postcopy_blocktime_new(vcpus);
    if (!c->fault_ns || !c->blocktime ||
        mig_page_queue_init(&c->faults, frames + 16)) {
        return -ENOMEM;
    }
    postcopy_incoming_init(&c->pi, m->cfg.ram, &recv_pc_ops, c);
    c->hp = (struct RecvNotifier) { .n.notify = recv_hotplug_notify,
                                    .m = m };
    postcopy_add_notifier(&c->pi, &c->hp.n);
    c->pi_init = true;
    return 0;
}

/* A DISCARD: checked now (block, bounds), applied at LISTEN. */
static int recv_discard(RecvCtx *c, uint32_t len, char *err, size_t errlen)
{
    StreamRange *r = malloc(STREAM_DISCARD_MAX_RANGES * sizeof(*r));
    char idstr[256], msg[400];
    RAMBlock *block = NULL;
    unsigned n;
    int ret;

    if (!r) {
        return -ENOMEM;
    }
    ret = stream_postcopy_discard_decode(c->ctl.body, len, idstr, r, &n, msg,
                                         sizeof(msg));
    if (ret) {
        free(r);
        return xr_error(err, errlen, ret, "the DISCARD is invalid: %s", msg);
    }
    if (!c->advised) {
        free(r);
        return xr_error(err, errlen, -EPROTO, "postcopy: DISCARD arrived "
                        "before POSTCOPY_ADVISE: out of order");
    }
    for (size_t i = 0; i < c->nblocks && !block; i++) {
        if (!strcmp(c->blocks[i]->idstr, idstr)) {
            block = c->blocks[i];
        }
    }
    for (unsigned i = 0; !ret && i < n; i++) {
        uint64_t pages = block ? block->postcopy_length >> XR_PAGE_BITS : 0;

        if (!block) {
            ret = xr_error(err, errlen, -ENOENT, "postcopy: DISCARD names "
                           "block '%.64s', which the destination does not "
                           "have", idstr);
        } else if (r[i].start >= pages || r[i].n > pages - r[i].start) {
            ret = xr_error(err, errlen, -ERANGE, "postcopy: DISCARD of pages "
                           "%#" PRIx64 "+%#" PRIx64 " is outside block '%s' "
                           "(%#" PRIx64 " pages)", r[i].start, r[i].n,
                           block->idstr, pages);
        }
    }
    if (!ret && c->ndiscards + n > c->discards_cap) {
        size_t cap = MAX(c->discards_cap * 2, c->ndiscards + n + 64);
        struct RecvDiscard *d = realloc(c->discards, cap * sizeof(*d));

        if (!d) {
            ret = -ENOMEM;
        } else {
            c->discards = d;
            c->discards_cap = cap;
        }
    }
    for (unsigned i = 0; !ret && i < n; i++) {
        c->discards[c->ndiscards++] = (struct RecvDiscard) {
            .block = block, .start = r[i].start, .n = r[i].n };
    }
    free(r);
    return ret;
}

/* The DISCARDs that came since the last PREPARE or LISTEN, applied. */
static int recv_apply_discards(RecvCtx *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->ndiscards; i++) {
        int ret = postcopy_incoming_discard(&c->pi,
                                            c->discards[i].block->idstr,
                                            c->discards[i].start,
                                            c->discards[i].n, err, errlen);

        if (ret) {
            return ret;
        }
    }
    c->ndiscards = 0;
    return 0;
}

/*
 * Before the first frame is paged out (the writers' gate closed): the
 * pre-fault threads joined, the receiver's own mappings of the RAM blocks
 * dropped (a mapping is a reference: Xen refuses to page out a frame that
 * has one; the special frames' stay until LISTEN), the pager and the
 * page-request sender started.  Once only.
 */
static int recv_page_out_start(RecvCtx *c, char *err, size_t errlen)
{
    int ret;

    if (c->pager) {
        return 0;
    }
    for (unsigned i = 0; i < c->nprefault; i++) {
        /* They touch the mappings: done before these go. */
        pthread_join(c->prefault[i], NULL);
    }
    c->nprefault = 0;
    for (size_t i = 0; i < c->nranges; i++) {
        if (c->maps[i] && c->ranges[i].block) {
            xen_unmap(c->xh, c->maps[i], c->ranges[i].n);
            c->maps[i] = NULL;
        }
    }
    ret = xen_pager_start(c->xh, recv_fault, c, &c->pager);
    if (ret) {
        return xr_error(err, errlen, ret, "starting Xen's memory paging for "
                        "postcopy: %s%s", xen_last_error(), ret == -ENOSYS ?
                        " (this hypervisor was built without "
                        "CONFIG_MEM_PAGING: postcopy cannot work here)" : "");
    }
    ret = -pthread_create(&c->req_thread, NULL, recv_req_thread, c);
    if (ret) {
        return xr_error(err, errlen, ret, "cannot start the page-request "
                        "sender: %s", strerror(-ret));
    }
    c->req_started = true;
    return 0;
}

/*
 * PREPARE, while the source's guest still runs: once every channel has
 * written the rounds before it, the DISCARDs so far applied and every
 * page not here paged out (after an earlier PREPARE: those DISCARDed
 * since), the source told how far it got as it goes and when it is done.
 * What LISTEN then pages out, with the guest paused on both sides, is
 * only what the guest dirtied after it.
 */
static int recv_prepare(RecvCtx *c, uint32_t len, char *err, size_t errlen)
{
    uint64_t round, pages = 0, t0;
    int ret;

    if ((ret = stream_postcopy_prepare_decode(c->ctl.body, len, &round, err,
                                              errlen))) {
        return ret;
    }
    if (!c->advised) {
        return xr_error(err, errlen, -EPROTO, "postcopy: PREPARE arrived "
                        "before POSTCOPY_ADVISE: out of order");
    }
    if (round < c->prepare_round) {
        return xr_error(err, errlen, -EPROTO, "postcopy: PREPARE after round "
                        "%" PRIu64 ", but an earlier one came after round %"
                        PRIu64, round, c->prepare_round);
    }
    if ((ret = recv_wait_round(c, round + 1))) {
        return xr_error(err, errlen, ret, "another channel failed");
    }
    c->prepare_round = round;
    if ((ret = recv_apply_discards(c, err, errlen))) {
        return ret;
    }
    recv_gate_close(c);
    t0 = mig_now_ns();
    ret = recv_page_out_start(c, err, errlen);
    /* The time reported is the paging out's, the source's measure of
     * what a page costs here: the pager's start is not part of it. */
    c->prepare_t0 = mig_now_ns();
    if (!ret) {
        c->prepare_pages = 0;
        c->prepare_sent = c->prepare_t0;
        ret = postcopy_incoming_prepare(&c->pi, &pages, err, errlen);
    }
    /* Paged from now on even if it failed half-way: no RAM writes. */
    recv_gate_open(c, true);
    c->prepare_ns += mig_now_ns() - t0;
    if (!ret) {
        ret = recv_send_prepared(c, pages, mig_now_ns() - c->prepare_t0,
                                 STREAM_PREPARED_F_DONE, err, errlen);
    }
    c->prepare_t0 = 0;
    recv_postcopy_info(c);
    return ret;
}

/*
 * LISTEN: once every channel has written the rounds before it, the
 * DISCARDs applied, the rings cleared, the receiver's own mappings of the
 * guest dropped, the pager started (all of it done already by a PREPARE
 * but the special frames' mappings and the DISCARDs since) and every page
 * not here made absent.  From then on pages are placed.
 */
static int recv_listen(RecvCtx *c, uint32_t len, char *err, size_t errlen)
{
    uint64_t round, flags;
    int ret;

    if ((ret = stream_postcopy_listen_decode(c->ctl.body, len, &round,
                                             &flags, err, errlen))) {
        return ret;
    }
    if ((flags & STREAM_LISTEN_F_PREEMPT) && c->ndata < 2) {
        return xr_error(err, errlen, -EPROTO, "postcopy: LISTEN says the "
                        "last data channel is postcopy-preempt's, but there "
                        "%s %u", c->ndata == 1 ? "is" : "are", c->ndata);
    }
    c->pc_preempt = flags & STREAM_LISTEN_F_PREEMPT;
    if (!c->advised || !c->hvm_ctx) {
        return xr_error(err, errlen, -EPROTO, "postcopy: LISTEN arrived "
                        "before %s: out of order", !c->advised ?
                        "POSTCOPY_ADVISE" : "the HVM context");
    }
    if ((ret = recv_wait_round(c, round + 1))) {
        return xr_error(err, errlen, ret, "another channel failed");
    }
    if (round < c->prepare_round) {
        return xr_error(err, errlen, -EPROTO, "postcopy: LISTEN after round "
                        "%" PRIu64 ", but a PREPARE came after round %"
                        PRIu64, round, c->prepare_round);
    }
    c->pc_round = round + 1;
    if ((ret = recv_apply_discards(c, err, errlen))) {
        return ret;
    }
    recv_gate_close(c);
    for (unsigned i = 0; i < c->ncleared; i++) {
        size_t k = recv_range(c, c->cleared[i]);

        /* (A ring in a RAM block, paged out, is the source's to send.) */
        if (k != SIZE_MAX && c->maps[k]) {
            memset(recv_addr(c, k, c->cleared[i]), 0, XR_PAGE_SIZE);
        }
    }
    c->ncleared = 0;
    ret = recv_page_out_start(c, err, errlen);
    for (size_t i = 0; !ret && i < c->nranges; i++) {
        if (c->maps[i]) {
            xen_unmap(c->xh, c->maps[i], c->ranges[i].n);
            c->maps[i] = NULL;
        }
    }
    if (!ret) {
        ret = postcopy_incoming_listen(&c->pi, err, errlen);
    }
    pthread_mutex_lock(&c->lock);
    /* Atomic: the writers look at it without the lock too.  Set on a
     * failure too: no precopy batch may write any more. */
    __atomic_store_n(&c->listening, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&c->lock);
    recv_gate_open(c, true);
    if (!ret) {
        recv_postcopy_info(c);
    }
    return ret;
}

/*
 * The guest becomes the destination's, at END (precopy) or RUN
 * (postcopy): the mapcache's dummies replaced by the guest's frames, the
 * incoming mode left everywhere, and unless -S the devices and the domain
 * running.  0 or -errno with a sentence in @err.
 */
static int recv_start_guest(RecvCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    int ret = mapcache_replace_dummies(m->cfg.mc);

    if (ret < 0) {
        return xr_error(err, errlen, ret, "mapping the received guest "
                        "memory: %s", xen_last_error());
    }
    mapcache_set_incoming(m->cfg.mc, false);
    xen_memory_set_incoming(m->cfg.xm, false);
    if (m->cfg.hotplug.set_incoming) {
        m->cfg.hotplug.set_incoming(m->cfg.hotplug.opaque, false);
    }
    if (!m->start_paused) {
        if (m->ops.resume_devices) {
            m->ops.resume_devices(m->ops.opaque);
        }
        ret = xen_domain_unpause(c->xh);
        if (ret) {
            return xr_error(err, errlen, ret, "unpausing the domain: %s",
                            xen_last_error());
        }
        mig_event(m, MIGRATION_EVENT_RESUME, 0);
    }
    return 0;
}

/*
 * After RUN, in a thread of its own: the mapcache's dummies replaced by
 * the guest's frames (a mapping of a frame still absent waits until it
 * is loaded, which may need the control channel's reader: hence not on
 * it), the incoming mode left, the devices and the domain running.
 */
static void *recv_run_thread(void *opaque)
{
    RecvCtx *c = opaque;
    int ret;

    rcu_register_thread();
    ret = recv_start_guest(c, c->run_err, sizeof(c->run_err));
    c->run_ret = ret;
    rcu_unregister_thread();
    return NULL;
}

/* RUN: the HVM context set, then the guest started (recv_run_thread). */
static int recv_postcopy_run(RecvCtx *c, char *err, size_t errlen)
{
    int ret;

    if ((ret = postcopy_incoming_run(&c->pi, err, errlen))) {
        return ret;
    }
    ret = xen_hvm_context_set(c->xh, c->hvm_ctx, c->hvm_len);
    if (ret) {
        return xr_error(err, errlen, ret, "setting the HVM context: %s",
                         xen_last_error());
    }
    c->running = true;
    /*
     * postcopy-active from RUN, not once the guest started: starting it
     * maps its memory, which waits for pages, and a pause may come first.
     */
    mig_set_status(c->m, MIGRATION_STATUS_POSTCOPY_ACTIVE);
    /* A broken link pauses from now on (recovery); migrate-pause too. */
    mig_track_pause(c->m, c->ctl.chan);
    for (unsigned i = 0; i < c->ndata; i++) {
        mig_track_pause(c->m, c->data[i].chan);
    }
    ret = -pthread_create(&c->run_thread, NULL, recv_run_thread, c);
    if (ret) {
        return xr_error(err, errlen, ret, "cannot start the guest: %s",
                        strerror(-ret));
    }
    c->run_started = true;
    return 0;
}

/* Every page is here: the run thread joined, END checked, paging off. */
static int recv_postcopy_end(RecvCtx *c, char *err, size_t errlen)
{
    int ret;

    if (c->run_started) {
        pthread_join(c->run_thread, NULL);
        c->run_started = false;
        if (c->run_ret) {
            snprintf(err, errlen, "%s", c->run_err);
            return c->run_ret;
        }
    }
    if ((ret = postcopy_incoming_end(&c->pi, err, errlen))) {
        return ret;
    }
    recv_postcopy_info(c);
    mig_page_queue_close(&c->faults);
    if (c->req_started) {
        pthread_join(c->req_thread, NULL);
        c->req_started = false;
    }
    ret = xen_pager_stop(c->pager, false);
    if (ret) {
        return xr_error(err, errlen, ret, "stopping Xen's memory paging: %s",
                        xen_last_error());
    }
    c->pager = NULL;
    return 0;
}

/* What is left of postcopy, whatever happened. */
static void recv_postcopy_cleanup(RecvCtx *c)
{
    if (!c->pi_init) {
        return;
    }
    mig_page_queue_close(&c->faults);
    if (c->run_started) {
        pthread_join(c->run_thread, NULL);
    }
    if (c->req_started) {
        mig_channel_cancel(c->ctl.chan);
        pthread_join(c->req_thread, NULL);
    }
    if (c->pager) {
        /* A failure after LISTEN: the frames still out go with the
         * domain, which the toolstack destroys. */
        xen_pager_stop(c->pager, true);
    }
    for (size_t i = 0; i < c->nblocks; i++) {
        ram_block_free_migration_bitmaps(c->blocks[i]);
    }
    mig_hotplug_set_blocked(c->m, NULL);
    postcopy_incoming_destroy(&c->pi);
    mig_page_queue_destroy(&c->faults);
    free(c->fault_ns);
    postcopy_blocktime_free(c->blocktime);
    free(c->discards);
}

/* A data channel's writer: RAM and ROUND_END until END. */
static void *recv_writer(void *opaque)
{
    Receiver *r = opaque;
    bool background = false;

    for (;;) {
        uint32_t type, len;
        char name[24];

        /*
         * With postcopy-preempt, once listening, this channel carries the
         * background: it yields to the requested pages' way (the preempt
         * channel's writer, the ring and request threads), which waits
         * for a CPU behind it otherwise (docs/PERFORMANCE.md).
         */
        if (!background &&
            __atomic_load_n(&r->ctx->listening, __ATOMIC_ACQUIRE) &&
            r->ctx->pc_preempt && r->index < r->ctx->ndata) {
            background = true;
            mig_thread_yield_to_requests();
        }

        uint8_t hdr[STREAM_RECORD_HDR_LEN];

        r->ret = recv_header(r, hdr, &type, &len, r->err, sizeof(r->err));
        if (!r->ret && type == STREAM_REC_RAM) {
            r->ret = recv_ram_record(r, hdr, len, r->err, sizeof(r->err));
            if (r->ret) {
                break;
            }
            continue;
        }
        if (!r->ret) {
            r->ret = recv_body(r, hdr, 0, len, r->err, sizeof(r->err));
        }
        if (r->ret) {
            break;
        }
        if (type == STREAM_REC_ROUND_END) {
            r->ret = recv_round_end(r, len, r->err, sizeof(r->err));
        } else if (type == STREAM_REC_END) {
            break;
        } else {
            r->ret = xr_error(r->err, sizeof(r->err), -EPROTO, "a %s record "
                               "on the %s channel, which carries only RAM",
                               stream_record_name(type, name, sizeof(name)),
                               r->chan->name);
        }
        if (r->ret) {
            break;
        }
    }
    if (r->ret) {
        RecvCtx *c = r->ctx;

        pthread_mutex_lock(&c->lock);
        __atomic_store_n(&c->abort, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        /* Wake the control reader, but keep the way to tell the source. */
        mig_channel_stop_reading(c->ctl.chan);
    }
    return NULL;
}

/* ---- channels ----------------------------------------------------------------------- */

static int recv_receiver_init(RecvCtx *c, Receiver *r, unsigned index)
{
    r->ctx = c;
    r->index = index;
    r->body = malloc(STREAM_MAX_BODY);
    r->view = malloc(sizeof(*r->view));
    if (!r->body || !r->view || stream_decoder_new(&r->dec)) {
        return -ENOMEM;
    }
    return 0;
}

/* Accept a connection and read its stream header. */
static int recv_accept(RecvCtx *c, const char *name, int timeout_ms,
                       MigChannel **chan, StreamHeader *h, char *err,
                       size_t errlen)
{
    Migration *m = c->m;
    uint8_t buf[STREAM_HEADER_LEN];
    int fd, ret;

    if (m->fd >= 0) {
        fd = m->fd;
        m->fd = -1;
    } else {
        /* After RUN migrate_cancel no longer applies: only an exit. */
        fd = mig_accept(m->listen_fd, timeout_ms,
                        c->running ? &m->exiting : &m->cancel);
        if (fd < 0) {
            return xr_error(err, errlen, fd, "waiting for the source's %s "
                             "connection: %s", name, strerror(-fd));
        }
    }
    /*
     * No stall timeout here: a channel may rightly be idle for long (the
     * control channel during the rounds, every channel while the source
     * waits before its switchover).  A dead source closes the connection;
     * a stuck one is the source's to time out, on its writes.
     */
    ret = mig_channel_from_fd(fd, name, -1, chan);
    if (ret) {
        close(fd);
        return xr_error(err, errlen, ret, "%s channel: %s", name,
                         strerror(-ret));
    }
    if (c->running) {
        mig_track_pause(m, *chan);
    } else {
        mig_track_channel(m, *chan);
    }
    if ((ret = mig_channel_read_all(*chan, buf, sizeof(buf), err, errlen))) {
        return ret;
    }
    return stream_header_decode(buf, h, err, errlen);
}

static int recv_open_channels(RecvCtx *c, char *err, size_t errlen)
{
    StreamHeader h;
    bool seen[1 + MIG_MAX_CHANNELS] = { false };
    int ret;

    ret = recv_accept(c, "control", -1, &c->ctl.chan, &h, err, errlen);
    if (ret) {
        return ret;
    }
    if (h.role != STREAM_CHANNEL_CONTROL) {
        return xr_error(err, errlen, -EPROTO, "the first connection is a "
                         "data channel, not the control channel");
    }
    if (h.flags & STREAM_HEADER_F_RESUME) {
        return xr_error(err, errlen, -EPROTO, "the source resumes a paused "
                        "postcopy migration, but this one has not begun");
    }
    c->ndata = h.nchannels;
    if (c->ndata && c->m->fd < 0 && c->m->listen_fd < 0) {
        return xr_error(err, errlen, -EINVAL, "the source wants %u data "
                         "channels, an fd: migration has one", c->ndata);
    }
    for (unsigned i = 0; i < c->ndata; i++) {
        MigChannel *ch;
        StreamHeader dh;

        /* The source connects them right after the control channel. */
        ret = recv_accept(c, "data", MIG_STALL_MS, &ch, &dh, err, errlen);
        if (ret) {
            return ret;
        }
        if (dh.role != STREAM_CHANNEL_DATA || dh.nchannels != c->ndata ||
            (dh.flags & STREAM_HEADER_F_RESUME) || seen[dh.channel]) {
            mig_channel_close(ch);
            return xr_error(err, errlen, -EPROTO, "a connection that is "
                             "not one of the %u data channels announced",
                             c->ndata);
        }
        seen[dh.channel] = true;
        c->data[dh.channel - 1].chan = ch;
        snprintf(ch->name, sizeof(ch->name), "data %u", dh.channel);
    }
    return 0;
}

/* ---- the end ------------------------------------------------------------------------ */

/* The final device state must describe the layout the RAM came in. */
static int recv_devstate(RecvCtx *c, uint32_t len, char *err, size_t errlen)
{
    DevState ds;
    char msg[512];
    int ret = devstate_decode(c->ctl.body, len, &ds, msg, sizeof(msg));

    if (ret) {
        return xr_error(err, errlen, ret, "the device state is invalid: %s",
                         msg);
    }
    if (ds.nblocks != c->layout.nblocks) {
        ret = -EINVAL;
    }
    for (uint32_t i = 0; !ret && i < ds.nblocks; i++) {
        if (strcmp(ds.blocks[i].idstr, c->layout.blocks[i].idstr) ||
            ds.blocks[i].used_length != c->layout.blocks[i].used_length) {
            ret = -EINVAL;
        }
    }
    devstate_free(&ds);
    if (ret) {
        return xr_error(err, errlen, ret, "the device state's RAM blocks "
                         "differ from the layout the RAM was sent in");
    }
    return 0;
}

/* Control records after the LAYOUT, until END. */
static int recv_control(RecvCtx *c, char *err, size_t errlen)
{
    for (;;) {
        uint8_t hdr[STREAM_RECORD_HDR_LEN];
        uint32_t type, len;
        char name[24];
        int ret = recv_header(&c->ctl, hdr, &type, &len, err, errlen);

        if (ret) {
            return ret;
        }
        /* Without data channels RAM comes here, straight into the guest. */
        if (type == STREAM_REC_RAM && !c->ndata) {
            ret = recv_ram_record(&c->ctl, hdr, len, err, errlen);
            if (ret) {
                return ret;
            }
            continue;
        }
        if ((ret = recv_body(&c->ctl, hdr, 0, len, err, errlen))) {
            return ret;
        }
        switch (type) {
        case STREAM_REC_RAM:
            ret = xr_error(err, errlen, -EPROTO, "RAM on the control "
                           "channel of a multifd migration");
            break;
        case STREAM_REC_ROUND_END:
            ret = c->ndata ? -EPROTO : recv_round_end(&c->ctl, len, err,
                                                      errlen);
            break;
        case STREAM_REC_DEVSTATE:
            ret = recv_devstate(c, len, err, errlen);
            c->have_dev = !ret;
            break;
        case STREAM_REC_HVM_CONTEXT:
            free(c->hvm_ctx);
            c->hvm_ctx = malloc(len ? len : 1);
            if (!c->hvm_ctx) {
                return -ENOMEM;
            }
            memcpy(c->hvm_ctx, c->ctl.body, len);
            c->hvm_len = len;
            break;
        case STREAM_REC_POSTCOPY_ADVISE: {
            uint64_t psize;

            ret = stream_postcopy_advise_decode(c->ctl.body, len, &psize,
                                                err, errlen);
            if (!ret) {
                ret = postcopy_incoming_advise(&c->pi, psize, err, errlen);
            }
            c->advised = !ret;
            break;
        }
        case STREAM_REC_POSTCOPY_DISCARD:
            ret = recv_discard(c, len, err, errlen);
            break;
        case STREAM_REC_POSTCOPY_PREPARE:
            ret = recv_prepare(c, len, err, errlen);
            break;
        case STREAM_REC_POSTCOPY_LISTEN:
            ret = c->have_dev ? recv_listen(c, len, err, errlen)
                           : xr_error(err, errlen, -EPROTO, "postcopy: "
                                      "LISTEN arrived before the device "
                                      "state: out of order");
            break;
        case STREAM_REC_POSTCOPY_RUN:
            ret = len ? xr_error(err, errlen, -EINVAL, "POSTCOPY_RUN of %"
                                 PRIu32 " bytes (0 expected)", len)
                      : recv_postcopy_run(c, err, errlen);
            break;
        case STREAM_REC_END:
            if (c->advised && c->listening != c->running) {
                return xr_error(err, errlen, -EPROTO, "postcopy: the stream "
                                "ended between LISTEN and RUN");
            }
            if (c->prepare_round && !c->listening) {
                return xr_error(err, errlen, -EPROTO, "postcopy: the stream "
                                "ended after POSTCOPY_PREPARE without LISTEN: "
                                "the guest's frames are paged out here");
            }
            if (!c->have_dev || !c->hvm_ctx) {
                return xr_error(err, errlen, -EPROTO, "the stream ended "
                                 "without the device state or the HVM "
                                 "context");
            }
            return 0;
        default:
            ret = xr_error(err, errlen, -EPROTO, "unexpected %s record on "
                            "the control channel",
                            stream_record_name(type, name, sizeof(name)));
        }
        if (ret) {
            if (!err[0]) {
                snprintf(err, errlen, "bad record on the control channel");
            }
            return ret;
        }
    }
}

/* Everything arrived: the guest becomes the destination's. */
static int recv_switchover(RecvCtx *c, char *err, size_t errlen)
{
    int ret;

    /*
     * As libxc's restore: the xenstore and console rings and the ioreq
     * pages start afresh (the toolstack introduces the domain again).
     */
    for (unsigned i = 0; i < c->ncleared; i++) {
        size_t k = recv_range(c, c->cleared[i]);

        if (k != SIZE_MAX) {
            memset(recv_addr(c, k, c->cleared[i]), 0, XR_PAGE_SIZE);
        }
    }
    ret = xen_hvm_context_set(c->xh, c->hvm_ctx, c->hvm_len);
    if (ret) {
        return xr_error(err, errlen, ret, "setting the HVM context: %s",
                         xen_last_error());
    }
    return recv_start_guest(c, err, errlen);
}

/*
 * After a recovery: ask again for every frame a fault waits for that is
 * not here (requests written while the link was down were dropped).
 */
static void recv_rerequest(RecvCtx *c)
{
    for (size_t k = 0; k < c->nranges; k++) {
        const MigRange *mr = &c->ranges[k];

        for (uint64_t j = 0; mr->block && j < mr->n; j++) {
            uint64_t t = __atomic_load_n(&c->fault_ns[c->absent_base[k] + j],
                                         __ATOMIC_ACQUIRE);
            MigPageRun run = { .gfn = mr->gfn + j, .n = 1, .t_ns = t };

            if (t && !postcopy_incoming_has_page(&c->pi, mr->block,
                                                 mr->page + j) &&
                mig_page_queue_push(&c->faults, &run)) {
                fprintf(stderr, "xenram: postcopy: the fault of frame %#"
                        PRIx64 " could not be queued again\n", run.gfn);
            }
        }
    }
}

/*
 * The data channels' writers and the control channel's records until
 * END on every channel; on a failure, the cause: the first channel's
 * own, not one that only stopped because another failed.
 */
static int recv_transfer(RecvCtx *c, char *err, size_t errlen)
{
    bool writer_err = false;
    int ret = 0;

    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        if (!c->data[i].body &&
            (ret = recv_receiver_init(c, &c->data[i], i + 1))) {
            break;
        }
        ret = -pthread_create(&c->data[i].thread, NULL, recv_writer,
                              &c->data[i]);
        c->data[i].thread_started = !ret;
    }
    if (!ret) {
        ret = recv_control(c, err, errlen);
    }
    if (ret) {
        /* Wake writers blocked on a channel or at a round boundary. */
        pthread_mutex_lock(&c->lock);
        __atomic_store_n(&c->abort, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
    }
    for (unsigned i = 0; i < c->ndata; i++) {
        if (ret) {
            mig_channel_cancel(c->data[i].chan);
        }
        if (c->data[i].thread_started) {
            pthread_join(c->data[i].thread, NULL);
            c->data[i].thread_started = false;
        }
        /*
         * A writer's own failure is the cause when the control channel
         * only stopped because of it (-ECANCELED), not a writer's that
         * only stopped because another channel failed.
         */
        if ((!ret || (ret == -ECANCELED && !writer_err)) &&
            c->data[i].ret && c->data[i].ret != -ECANCELED) {
            snprintf(err, errlen, "%s", c->data[i].err);
            ret = c->data[i].ret;
            writer_err = true;
        } else if (!ret && c->data[i].ret) {
            snprintf(err, errlen, "%s", c->data[i].err);
            ret = c->data[i].ret;
        }
    }
    return ret;
}

/* Send the receivedmap of every block on the return path, then RESUME_ACK. */
static int recv_send_bitmaps(RecvCtx *c, char *err, size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    uint64_t *words = NULL, nbitmaps = 0;
    uint8_t *body = malloc(STREAM_MAX_BODY), ack[STREAM_RESUME_ACK_LEN];
    struct iovec iov[2] = { { .iov_base = hdr, .iov_len = sizeof(hdr) } };
    int ret = 0;

    words = malloc(STREAM_RECV_BITMAP_MAX_PAGES / 8);
    if (!body || !words) {
        ret = xr_error(err, errlen, -ENOMEM, "out of memory for the "
                       "received bitmaps");
    }
    for (size_t b = 0; !ret && b < c->nblocks; b++) {
        RAMBlock *block = c->blocks[b];
        uint64_t pages = block->postcopy_length >> XR_PAGE_BITS;
        bool sent = false;

        /* The blocks the source sends: those the layout's ranges map. */
        for (size_t k = 0; k < c->nranges && !sent; k++) {
            sent = c->ranges[k].block == block;
        }
        for (uint64_t first = 0; sent && !ret && first < pages;
             first += STREAM_RECV_BITMAP_MAX_PAGES) {
            uint64_t n = MIN(pages - first, STREAM_RECV_BITMAP_MAX_PAGES);

            postcopy_incoming_received_words(&c->pi, block, first, n, words);
            stream_recv_bitmap_encode(block->idstr, first, n, words, body);
            iov[1] = (struct iovec) { .iov_base = body,
                                      .iov_len = stream_recv_bitmap_len(
                                          block->idstr, n) };
            stream_record_header(STREAM_REC_RECV_BITMAP, c->rp_seq++,
                                 &iov[1], 1, hdr);
            ret = mig_channel_writev_all(c->ctl.chan, iov, 2, err, errlen);
            nbitmaps++;
        }
    }
    if (!ret) {
        stream_resume_ack_encode(nbitmaps, ack);
        iov[1] = (struct iovec) { .iov_base = ack, .iov_len = sizeof(ack) };
        stream_record_header(STREAM_REC_RESUME_ACK, c->rp_seq++, &iov[1], 1,
                             hdr);
        ret = mig_channel_writev_all(c->ctl.chan, iov, 2, err, errlen);
    }
    free(words);
    free(body);
    return ret;
}

/*
 * A recovery's connections: the control channel and as many data
 * channels as before, each marked RESUME; POSTCOPY_RESUME for the round
 * postcopy sends in; then what this side has, on the return path.
 */
static int recv_resume_accept(RecvCtx *c, char *err, size_t errlen)
{
    bool seen[1 + MIG_MAX_CHANNELS] = { false };
    StreamHeader h;
    uint32_t type, len;
    uint64_t round;
    int ret;

    c->ctl.seq = 0;
    ret = recv_accept(c, "control", -1, &c->ctl.chan, &h, err, errlen);
    if (!ret && (h.role != STREAM_CHANNEL_CONTROL ||
                 !(h.flags & STREAM_HEADER_F_RESUME) ||
                 h.nchannels != c->ndata)) {
        ret = xr_error(err, errlen, -EPROTO, "the recovery's first "
                       "connection is not a resumed control channel with %u "
                       "data channels", c->ndata);
    }
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        MigChannel *ch;
        StreamHeader dh;

        ret = recv_accept(c, "data", MIG_STALL_MS, &ch, &dh, err, errlen);
        if (ret) {
            break;
        }
        if (dh.role != STREAM_CHANNEL_DATA || dh.nchannels != c->ndata ||
            !(dh.flags & STREAM_HEADER_F_RESUME) || seen[dh.channel]) {
            mig_channel_close(ch);
            ret = xr_error(err, errlen, -EPROTO, "a recovery connection "
                           "that is not one of the %u data channels",
                           c->ndata);
            break;
        }
        seen[dh.channel] = true;
        c->data[dh.channel - 1].chan = ch;
        snprintf(ch->name, sizeof(ch->name), "data %u", dh.channel);
    }
    if (!ret) {
        ret = recv_record(&c->ctl, &type, &len, err, errlen);
    }
    if (!ret && type != STREAM_REC_POSTCOPY_RESUME) {
        char name[24];

        ret = xr_error(err, errlen, -EPROTO, "the recovery's control channel "
                       "begins with %s, not POSTCOPY_RESUME",
                       stream_record_name(type, name, sizeof(name)));
    }
    if (!ret) {
        ret = stream_postcopy_resume_decode(c->ctl.body, len, &round, err,
                                            errlen);
    }
    if (!ret && round != c->pc_round) {
        ret = xr_error(err, errlen, -EPROTO, "the source resumes round %"
                       PRIu64 ", this postcopy runs in round %" PRIu64
                       ": not this migration", round, c->pc_round);
    }
    if (!ret) {
        pthread_mutex_lock(&c->rp_lock);
        c->rp_seq = 0;
        ret = recv_send_bitmaps(c, err, errlen);
        c->rp_down = ret != 0;
        pthread_mutex_unlock(&c->rp_lock);
    }
    return ret;
}

/* Close every channel of the migration (none of its threads uses them). */
static void recv_close_channels(RecvCtx *c)
{
    mig_untrack_pause(c->m);
    mig_untrack_channels(c->m);
    /* The request sender may wait in a write to a source that is stuck. */
    mig_channel_cancel(c->ctl.chan);
    pthread_mutex_lock(&c->rp_lock);
    c->rp_down = true;
    mig_channel_close(c->ctl.chan);
    c->ctl.chan = NULL;
    pthread_mutex_unlock(&c->rp_lock);
    for (unsigned i = 0; i < c->ndata; i++) {
        mig_channel_close(c->data[i].chan);
        c->data[i].chan = NULL;
    }
}

/*
 * Postcopy's link broke after RUN (@err says how): the guest runs on and
 * waits for the pages it touches that are not here.  Pause, wait for
 * migrate-recover, take the source's new connections and tell it what
 * is here; a recovery that fails goes back to waiting.  0 once the
 * channels may be read again, -errno when the process exits.
 */
static int recv_recover(RecvCtx *c, char *err, size_t errlen)
{
    Migration *m = c->m;
    char why[512], uri[300];
    int fd;

    snprintf(why, sizeof(why), "%s", err[0] ? err : "the link broke");
    for (;;) {
        int ret;

        recv_close_channels(c);
        if (!mig_postcopy_pause(m, why, uri, sizeof(uri), &fd)) {
            snprintf(err, errlen, "postcopy paused (%.300s) when xenram "
                     "exited, with pages still missing", why);
            return -ECANCELED;
        }
        /* The old listener gives way to the recovery's. */
        if (m->listen_fd >= 0) {
            close(m->listen_fd);
            if (!strncmp(m->uri, "unix:", 5)) {
                unlink(m->uri + 5);
            }
        }
        pthread_mutex_lock(&m->lock);
        m->listen_fd = fd;
        snprintf(m->uri, sizeof(m->uri), "%s", uri);
        pthread_mutex_unlock(&m->lock);
        err[0] = '\0';
        ret = recv_resume_accept(c, err, errlen);
        if (!ret) {
            pthread_mutex_lock(&c->lock);
            __atomic_store_n(&c->abort, false, __ATOMIC_RELAXED);
            for (unsigned i = 1; i <= c->ndata; i++) {
                c->done_round[i] = c->pc_round - 1;
            }
            pthread_mutex_unlock(&c->lock);
            for (unsigned i = 0; i < c->ndata; i++) {
                c->data[i].seq = 0;
                c->data[i].ret = 0;
                c->data[i].err[0] = '\0';
            }
            recv_rerequest(c);
            c->recoveries++;
            recv_postcopy_info(c);
            mig_postcopy_resumed(m);
            fprintf(stderr, "xenram: postcopy recovered (%u)\n",
                    c->recoveries);
            return 0;
        }
        snprintf(why, sizeof(why), "the recovery failed: %.480s", err);
    }
}

static int recv_run(RecvCtx *c, char *err, size_t errlen)
{
    uint32_t type, len;
    int ret;

    if ((ret = recv_receiver_init(c, &c->ctl, 0)) ||
        (ret = recv_open_channels(c, err, errlen))) {
        return ret;
    }
    mig_set_status(c->m, MIGRATION_STATUS_ACTIVE);
    ret = recv_record(&c->ctl, &type, &len, err, errlen);
    if (!ret && type != STREAM_REC_LAYOUT) {
        ret = xr_error(err, errlen, -EPROTO, "the stream does not begin "
                        "with the RAM layout");
    }
    if (!ret) {
        ret = recv_layout(c, len, err, errlen);
    }
    if (!ret) {
        ret = recv_record(&c->ctl, &type, &len, err, errlen);
    }
    if (!ret && type != STREAM_REC_HVM_PARAMS) {
        ret = xr_error(err, errlen, -EPROTO, "the RAM layout is not "
                        "followed by the HVM parameters");
    }
    if (!ret) {
        ret = recv_hvm_params(c, len, err, errlen);
    }
    if (!ret) {
        ret = recv_prepare_memory(c, err, errlen);
    }
    if (!ret) {
        ret = recv_postcopy_init(c, err, errlen);
    }
    if (!ret) {
        ret = recv_transfer(c, err, errlen);
    }
    /* After RUN a broken link pauses until a new one is made. */
    while (ret && c->running) {
        if ((ret = recv_recover(c, err, errlen))) {
            break;
        }
        ret = recv_transfer(c, err, errlen);
    }
    if (!ret && c->running) {
        /* Postcopy: the guest runs here since RUN. */
        ret = recv_postcopy_end(c, err, errlen);
    } else if (!ret) {
        mig_set_status(c->m, MIGRATION_STATUS_DEVICE);
        ret = recv_switchover(c, err, errlen);
    }
    return ret;
}

static void recv_free_receiver(Receiver *r)
{
    mig_channel_close(r->chan);
    stream_decoder_free(r->dec);
    free(r->view);
    free(r->body);
}

void *mig_recv_thread(void *opaque)
{
    Migration *m = opaque;
    RecvCtx *c = calloc(1, sizeof(*c));
    char err[512] = "";
    int ret = -ENOMEM;

    rcu_register_thread();
    if (c) {
        c->m = m;
        c->xh = m->cfg.xh;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        pthread_mutex_init(&c->rp_lock, NULL);
        ret = recv_run(c, err, sizeof(err));
        if (ret && c->running) {
            char why[400];

            snprintf(why, sizeof(why), "%s", err);
            snprintf(err, sizeof(err), "postcopy failed after the guest "
                     "started here, with pages still missing: %.380s", why);
        }
        if (c->ctl.chan) {
            /* Best effort: the source may be gone already. */
            /* Bit 31: the guest ran here (postcopy): the source must not
             * resume its stale copy. */
            recv_send_result(c, ret ? ((uint32_t)-ret |
                                       (c->running ? STREAM_RESULT_RAN : 0))
                                    : 0,
                             ret ? err : "running");
        }
    }
    mig_untrack_channels(m);
    if (c && c->nprefault) {
        __atomic_store_n(&c->abort, true, __ATOMIC_RELAXED);
        for (unsigned i = 0; i < c->nprefault; i++) {
            pthread_join(c->prefault[i], NULL);
        }
    }
    if (c) {
        /* Wake writers waiting for LISTEN or a round. */
        pthread_mutex_lock(&c->lock);
        __atomic_store_n(&c->abort, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        recv_postcopy_cleanup(c);
        for (size_t i = 0; c->maps && i < c->nranges; i++) {
            if (c->maps[i]) {
                xen_unmap(c->xh, c->maps[i], c->ranges[i].n);
            }
        }
        recv_free_receiver(&c->ctl);
        for (unsigned i = 0; i < MIG_MAX_CHANNELS; i++) {
            recv_free_receiver(&c->data[i]);
        }
        if (c->have_layout) {
            devstate_free(&c->layout);
        }
        pthread_mutex_lock(&m->lock);
        m->info.ram.transferred = __atomic_load_n(&c->pages, __ATOMIC_RELAXED)
                                  * XR_PAGE_SIZE;
        pthread_mutex_unlock(&m->lock);
        free(c->hvm_ctx);
        free(c->maps);
        free(c->absent);
        free(c->absent_base);
        free(c->ranges);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->rp_lock);
        free(c);
    }
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        m->listen_fd = -1;
        /* The socket file we bound goes with the listener. */
        if (!strncmp(m->uri, "unix:", 5)) {
            unlink(m->uri + 5);
        }
    }
    if (ret) {
        mig_set_error(m, err[0] ? err : strerror(-ret));
    }
    pthread_mutex_lock(&m->lock);
    m->info.total_time = (mig_now_ns() - m->t_start_ns) / 1000000;
    pthread_mutex_unlock(&m->lock);
    mig_finish(m, ret ? MIGRATION_STATUS_FAILED : MIGRATION_STATUS_COMPLETED);
    rcu_unregister_thread();
    return NULL;
}
