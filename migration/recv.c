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

#include "migration/migration-internal.h"
#include "migration/stream.h"
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
    uint64_t pages;                     /* atomic */
    /* Pre-faulting threads, which take 32 MiB chunks from one cursor. */
    pthread_t prefault[RECV_PREFAULT_THREADS];
    unsigned nprefault;
    uint64_t prefault_next;             /* atomic: the next chunk */
};

/* ---- records ----------------------------------------------------------------------- */

/* The next record on @r's channel into r->body; 0 or -errno with @err. */
static int recv_record(Receiver *r, uint32_t *type, uint32_t *len, char *err,
                       size_t errlen)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    char msg[400];
    int ret;

    if ((ret = mig_channel_read_all(r->chan, hdr, sizeof(hdr), err,
                                    errlen))) {
        return ret;
    }
    ret = stream_record_header_check(hdr, r->seq, type, len, msg,
                                     sizeof(msg));
    if (!ret) {
        if ((ret = mig_channel_read_all(r->chan, r->body, *len, err,
                                        errlen))) {
            return ret;
        }
        ret = stream_record_verify(hdr, r->body, *len, msg, sizeof(msg));
    }
    if (ret) {
        /* A refused record: say on which channel. */
        return xr_error(err, errlen, ret, "on the %s channel: %s",
                         r->chan->name, msg);
    }
    r->seq++;
    return 0;
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

    memcpy(body, &status, 4);
    memcpy(body + 4, msg, n);
    stream_record_header(STREAM_REC_RESULT, 0, &iov[1], 1, hdr);
    return mig_channel_writev_all(c->ctl.chan, iov, 2, err, sizeof(err));
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
        if (ready || c->abort) {
            break;
        }
        pthread_cond_wait(&c->cond, &c->lock);
    }
    ret = c->abort ? -ECANCELED : 0;
    pthread_mutex_unlock(&c->lock);
    return ret;
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
    uint8_t *addr = recv_addr(c, k, gfn);
    bool absent;
    int ret = 0;

    /* Other writers change other bits of the word, under @c->lock. */
    absent = (__atomic_load_n(&c->absent[BIT_WORD(idx)], __ATOMIC_RELAXED) &
              BIT_MASK(idx)) != 0;
    if (absent == !present) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    if (!present) {
        ret = xen_depopulate(c->xh, gfn, 1);
        if (!ret) {
            __atomic_or_fetch(&c->absent[BIT_WORD(idx)], BIT_MASK(idx),
                              __ATOMIC_RELAXED);
        }
    } else {
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

static int recv_ram(Receiver *r, uint32_t len, char *err, size_t errlen)
{
    RecvCtx *c = r->ctx;
    StreamBatchView *v = r->view;
    const uint8_t *src;
    int ret;

    ret = stream_batch_parse(r->dec, r->body, len, v, err, errlen);
    if (ret) {
        return ret;
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
    if ((ret = recv_wait_round(c, v->round))) {
        return xr_error(err, errlen, ret, "another channel failed");
    }
    src = v->data;
    for (uint32_t i = 0; i < v->npages; i++) {
        uint8_t *dst = recv_addr(c, r->range[i], v->pfn[i]);

        if ((ret = recv_presence(c, r->range[i], v->pfn[i],
                                 v->kind[i] != STREAM_PAGE_ABSENT, err,
                                 errlen))) {
            return ret;
        }
        if (v->kind[i] == STREAM_PAGE_ABSENT) {
            continue;
        }
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
    __atomic_add_fetch(&c->pages, v->npages, __ATOMIC_RELAXED);
    return 0;
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

/* A data channel's writer: RAM and ROUND_END until END. */
static void *recv_writer(void *opaque)
{
    Receiver *r = opaque;

    for (;;) {
        uint32_t type, len;
        char name[24];

        r->ret = recv_record(r, &type, &len, r->err, sizeof(r->err));
        if (r->ret) {
            break;
        }
        if (type == STREAM_REC_RAM) {
            r->ret = recv_ram(r, len, r->err, sizeof(r->err));
        } else if (type == STREAM_REC_ROUND_END) {
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
        fd = mig_accept(m->listen_fd, timeout_ms, &m->cancel);
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
    mig_track_channel(m, *chan);
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
            seen[dh.channel]) {
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
    bool have_dev = false;

    for (;;) {
        uint32_t type, len;
        char name[24];
        int ret = recv_record(&c->ctl, &type, &len, err, errlen);

        if (ret) {
            return ret;
        }
        switch (type) {
        case STREAM_REC_RAM:
            ret = c->ndata ? xr_error(err, errlen, -EPROTO, "RAM on the "
                                       "control channel of a multifd "
                                       "migration") :
                             recv_ram(&c->ctl, len, err, errlen);
            break;
        case STREAM_REC_ROUND_END:
            ret = c->ndata ? -EPROTO : recv_round_end(&c->ctl, len, err,
                                                      errlen);
            break;
        case STREAM_REC_DEVSTATE:
            ret = recv_devstate(c, len, err, errlen);
            have_dev = !ret;
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
        case STREAM_REC_END:
            if (!have_dev || !c->hvm_ctx) {
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
    Migration *m = c->m;
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
    ret = mapcache_replace_dummies(m->cfg.mc);
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

static int recv_run(RecvCtx *c, char *err, size_t errlen)
{
    uint32_t type, len;
    bool writer_err = false;
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
    for (unsigned i = 0; !ret && i < c->ndata; i++) {
        if ((ret = recv_receiver_init(c, &c->data[i], i + 1))) {
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
    if (!ret) {
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
        ret = recv_run(c, err, sizeof(err));
        if (c->ctl.chan) {
            /* Best effort: the source may be gone already. */
            recv_send_result(c, ret ? (uint32_t)-ret : 0,
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
