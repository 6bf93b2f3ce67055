/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-migrate.c - `xl migrate` as libxl and libxc do it (docs/toolstack.md):
 * log-dirty rounds, suspend, the final round, device state through a
 * file, the receiving device model started with -incoming fd:N, and the
 * sender resumed when the receiver fails.  One function per phase over
 * struct mig, as libxc splits save and restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xenctrl.h>

#include "xen/sim/toolstack-internal.h"
#include "xen/sim/ts-report.h"
#include "xen/sim/ts-sr.h"

/* libxl gives xen-set-global-dirty-log this long. */
#define DIRTY_LOG_TIMEOUT_MS    10000

/* Pages per populate/decrease request and per copy batch (libxc: 1024). */
#define BATCH                   1024

/* ---- migration ------------------------------------------------------------ */

/*
 * Copy the subtree @from of one xenstore to @to in another (paths and
 * values; permissions are the default ones of a dom0 write).
 */
static void xs_copy_tree(struct xs_handle *a, const char *from,
                         struct xs_handle *b, const char *to, int depth)
{
    unsigned n = 0, len = 0;
    char **ents, *v;

    if (depth > 8)
        return;
    v = xs_read(a, XBT_NULL, from, &len);
    if (v) {
        xs_write(b, XBT_NULL, to, v, len);
        free(v);
    }
    ents = xs_directory(a, XBT_NULL, from, &n);
    for (unsigned i = 0; ents && i < n; i++) {
        char f[512], t[512];

        ts_fmt(f, sizeof(f), "%s/%s", from, ents[i]);
        ts_fmt(t, sizeof(t), "%s/%s", to, ents[i]);
        xs_copy_tree(a, f, b, t, depth + 1);
    }
    free(ents);
}

/*
 * libxl's emulator xenstore data (libxl__save_emulator_xenstore_data and
 * its restore): the device model's physmap keys travel with the
 * migration and are written for the new domain before its device model
 * starts.  Returns how many entries the source had.
 */
unsigned ts_copy_emulator_xenstore(const struct ts_host *src,
                                   uint32_t sdom,
                                   const struct ts_host *dst,
                                   uint32_t ddom)
{
    struct xs_handle *a = ts_xs_open(src), *b;
    char from[128], to[128];
    unsigned n = 0;
    char **ents;

    if (!a)
        return 0;
    snprintf(from, sizeof(from), "/local/domain/0/device-model/%u/physmap",
             sdom);
    ents = xs_directory(a, XBT_NULL, from, &n);
    free(ents);
    b = n ? ts_xs_open(dst) : NULL;
    if (b) {
        snprintf(to, sizeof(to), "/local/domain/0/device-model/%u/physmap",
                 ddom);
        xs_copy_tree(a, from, b, to, 0);
        xs_close(b);
    }
    xs_close(a);
    return n;
}

#define GUEST_BYTES ((size_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE))

static inline bool bit(const uint8_t *bm, uint64_t i)
{
    return (bm[i / 8] >> (i % 8)) & 1;
}

struct bitmap {
    uint8_t *b;
    size_t cap;                 /* bytes */
    uint64_t pages;             /* valid bits */
};

/* The p2m of @domid (max gpfn + 1 frames) into @bm; the memfd into *fd
 * when @fd is not NULL. */
static int get_p2m(struct ts_host *h, uint32_t domid, struct bitmap *bm,
                   int *fd)
{
    uint64_t args[6] = { fd ? 1 : 0 };

    for (;;) {
        struct xsim_rep rep;
        size_t need;
        int rc;

        if (bm->cap)
            memset(bm->b, 0, bm->cap);
        rc = ts_call_rc(h, XSIM_OP_MEM_P2M, domid, args, NULL, 0, &rep, bm->b,
                        bm->cap, fd);
        if (rc)
            return rc;
        need = (size_t)((rep.val[0] + 7) / 8);
        if (need <= bm->cap) {
            bm->pages = rep.val[0];
            return 0;
        }
        if (fd && *fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        free(bm->b);
        bm->cap = need + 4096;
        bm->b = malloc(bm->cap);
        if (!bm->b) {
            bm->cap = 0;
            return -ENOMEM;
        }
    }
}

struct mig {
    struct ts_host *src, dst;
    uint32_t sdom, ddom;
    const struct ts_migrate_opts *o;
    struct ts_domcfg cfg;
    bool have_cfg, have_dm;
    struct ts_dm sdm, ddm;
    struct ts_qmp sq, dq;
    const uint8_t *smem;
    uint8_t *dmem;
    struct ts_sr *sr;           /* the page stream, while the rounds run */
    struct bitmap sp2m, dp2m, dirty;
    FILE *sums;

    /* progress */
    struct ts_progress prog;
    struct ts_report rep;
    uint64_t round_t0;          /* the current round began (after CLEAN) */
    uint64_t round_plan;        /* ... with this many pages to send */
    uint64_t round_sent0;       /* m->sent then */
    uint64_t last_check;        /* the clock inside copy_pages */
    double dirty_mibps;         /* the last dirty rate measured */
    bool final_round;
    unsigned rounds;
    uint64_t sent, populated, released, final_pages, devstate_bytes;
    uint64_t sp2m_count;        /* populated frames at the end */
    uint64_t t_start, t_suspend, t_resumed, t_end, t_clean;
    uint64_t t_sums;            /* spent on --checksum-at-suspend digests */
    struct ts_digest src_sum, dst_sum;
    uint64_t src_pages, dst_pages;
    /* Hot-plugged RAM: the slots of both device models at the end. */
    struct ts_hp_slot *hp_src, *hp_dst;
    unsigned nhp_src, nhp_dst;
    bool hp_listed;
    bool sums_taken;

    /* Set by the phases, for the next ones and for the abort. */
    struct xsim_dominfo info;   /* the source domain as the setup found it */
    bool was_paused;            /* ... paused: so is the destination */
    int dm_timeout;             /* for the receiver's device model */
    bool dirtylog_dm;           /* the source DM reports its writes */
    bool logdirty;              /* Xen's log-dirty is on for the source */
    bool src_paused, dm_stopped;
    char save_path[PATH_MAX];   /* the saved device state, */
    char resume_path[PATH_MAX]; /* and the receiver's copy of it */
};

/* Frames set in a p2m. */
static uint64_t bm_count(const struct bitmap *bm)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < (bm->pages + 7) / 8; i++)
        n += (uint64_t)__builtin_popcount(bm->b[i]);
    return n;
}

static int flush_list(struct mig *m, uint16_t op, uint64_t *list, size_t *n,
                      char *err, size_t errlen)
{
    uint64_t args[6] = { *n, 0 };
    struct xsim_rep rep;
    int rc;

    if (!*n)
        return 0;
    rc = ts_call_rc(&m->dst, op, m->ddom, args, list, *n * 8, &rep, NULL, 0,
                    NULL);
    if (rc == 0 && (uint64_t)rep.ret != *n)
        rc = -EBUSY;
    if (rc) {
        uint64_t gfn = list[rep.ret >= 0 && (uint64_t)rep.ret < *n ? rep.ret
                                                                   : 0];
        struct xsim_dominfo di;
        char t1[32], t2[32], t3[32];

        if (op == XSIM_OP_MEM_POPULATE && rc == -EBUSY &&
            ts_dominfo(&m->dst, m->ddom, &di) == 0) {
            /* libxc's restore says "Failed to populate physmap (16 =
             * Device or resource busy)": the receiver's maximum, from
             * the target, is below the frames the sender has. */
            ts_seterr(err, errlen, "Failed to populate physmap (%d = %s): "
                      "frame %#" PRIx64 " of d%u on %s is beyond the domain's "
                      "maximum memory, %s, which libxl gives a restored domain "
                      "from the target it was sent (%s with video memory, + "
                      "1 MiB); the source has %s of frames.  Hot-plugged RAM "
                   "travels only if the target covers it: raise the target "
                   "before migrating (xensim mem-set, as xl mem-set)",
                   EBUSY, strerror(EBUSY), gfn, m->ddom, m->dst.dir,
                   ts_kb_text(di.max_pages * (XSIM_PAGE_SIZE / 1024), t1,
                              sizeof(t1)),
                   ts_kb_text(m->cfg.target_memkb, t2, sizeof(t2)),
                   ts_kb_text(bm_count(&m->sp2m) * (XSIM_PAGE_SIZE / 1024), t3,
                              sizeof(t3)));
            return rc;
        }
        ts_seterr(err, errlen, "%s frame %#" PRIx64 " on the destination "
                  "failed: %s", op == XSIM_OP_MEM_POPULATE ? "populating"
                                                       : "releasing",
               gfn, strerror(-rc));
        return rc;
    }
    *n = 0;
    return 0;
}

/*
 * Make the destination's p2m the source's: what libxc's restore does as
 * the pages arrive (populate_pfns), and the frames the source no longer
 * has released.  Leaves the source's p2m in m->sp2m.
 */
static int sync_p2m(struct mig *m, char *err, size_t errlen)
{
    uint64_t add[BATCH], del[BATCH], n;
    size_t na = 0, nd = 0;
    int rc;

    rc = get_p2m(m->src, m->sdom, &m->sp2m, NULL);
    if (rc == 0)
        rc = get_p2m(&m->dst, m->ddom, &m->dp2m, NULL);
    if (rc) {
        ts_seterr(err, errlen, "reading the p2m: %s", strerror(-rc));
        return rc;
    }
    n = m->sp2m.pages > m->dp2m.pages ? m->sp2m.pages : m->dp2m.pages;
    /* Releases first: the destination's maximum may fit the source's
     * p2m (when the target covers it), never both layouts at once. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t g = 0; g < n; g++) {
            bool s = g < m->sp2m.pages && bit(m->sp2m.b, g);
            bool d = g < m->dp2m.pages && bit(m->dp2m.b, g);

            if (pass == 1 && s && !d) {
                add[na++] = g;
                m->populated++;
                if (na == BATCH &&
                    (rc = flush_list(m, XSIM_OP_MEM_POPULATE, add, &na, err,
                                     errlen)))
                    return rc;
            } else if (pass == 0 && d && !s) {
                del[nd++] = g;
                m->released++;
                if (nd == BATCH &&
                    (rc = flush_list(m, XSIM_OP_MEM_DECREASE, del, &nd, err,
                                     errlen)))
                    return rc;
            }
        }
        rc = pass == 0
             ? flush_list(m, XSIM_OP_MEM_DECREASE, del, &nd, err, errlen)
             : flush_list(m, XSIM_OP_MEM_POPULATE, add, &na, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static double since_ms(const struct mig *m, uint64_t t)
{
    return (double)(t - m->t_start) / 1e6;
}

/*
 * The live line and a sample inside a round, as libxc reports "Frames
 * iteration N: x/y" (xc_report_progress_step): pages of the round sent,
 * the round's rate so far, what is left of it.
 */
static void round_progress(struct mig *m, uint64_t now)
{
    uint64_t done = m->sent - m->round_sent0;
    double secs = (double)(now - m->round_t0) / 1e9;
    double left = (double)(m->round_plan > done ? m->round_plan - done : 0) *
                  XSIM_PAGE_SIZE;
    double bw = secs > 0 ? ts_mib((double)done * XSIM_PAGE_SIZE) / secs : 0;
    unsigned round = m->rounds + 1;
    struct ts_live l = {
        .phase = m->final_round ? "final" : "",
        .round = round, .of = m->final_round ? 0 : m->o->max_iters,
        .pct = m->round_plan ? 100.0 * (double)done / (double)m->round_plan
                             : 100,
        .bandwidth = secs > 0 ? bw : TS_UNKNOWN,
        .remaining = left,
        /* A suspend now: the final round would copy what is left of
         * this one and what the guest dirtied since it began. */
        .expected_downtime_ms = m->final_round || bw <= 0 ? TS_UNKNOWN
            : (ts_mib(left) + m->dirty_mibps * secs) / bw * 1000,
    };

    if (m->final_round)
        l.eta_s = ts_eta_s(left, l.bandwidth, 0, 0);
    else
        l.eta_s = ts_eta_s(left, l.bandwidth, m->dirty_mibps,
                           m->o->max_iters - round + 1);
    if (secs > 0)
        ts_report_sample(&m->rep, since_ms(m, now), round, bw, left);
    ts_progress_show(&m->prog, &l);
}

/* A round begins: @plan pages to send. */
static void round_begin(struct mig *m, uint64_t plan)
{
    m->round_t0 = ts_now_ns();
    m->round_plan = plan;
    m->round_sent0 = m->sent;
    m->last_check = m->round_t0;
    round_progress(m, m->round_t0);
}

/* It ended: its row (the dirty rate comes with the next CLEAN). */
static void round_end(struct mig *m)
{
    uint64_t now = ts_now_ns();
    struct ts_round *r;

    m->round_plan = m->sent - m->round_sent0;   /* what it really sent */
    round_progress(m, now);
    r = ts_report_round(&m->rep);
    if (!r)
        return;
    r->first = r->last = m->rounds + 1;
    r->paused = m->final_round;
    r->pages = m->sent - m->round_sent0;
    r->bytes = r->pages * XSIM_PAGE_SIZE;
    r->start_ms = since_ms(m, m->round_t0);
    r->ms = (double)(now - m->round_t0) / 1e6;
    r->bandwidth = r->ms > 0 ? ts_mib((double)r->bytes) * 1000 / r->ms : 0;
    if (m->final_round) {
        r->dirty_rate = 0;
        r->remaining = 0;
    }
}

/* The CLEAN after a round found @dirty pages written in @secs: the
 * round's dirty rate, what it left, the downtime a suspend would cost. */
static void round_dirty(struct mig *m, uint64_t dirty, double secs)
{
    struct ts_round *r = m->rep.n ? &m->rep.r[m->rep.n - 1] : NULL;

    if (secs > 0)
        m->dirty_mibps = ts_mib((double)dirty * XSIM_PAGE_SIZE) / secs;
    if (!r)
        return;
    r->dirty_rate = secs > 0 ? m->dirty_mibps : TS_UNKNOWN;
    r->remaining = (double)dirty * XSIM_PAGE_SIZE;
    if (r->bandwidth > 0)
        r->expected_downtime_ms = ts_mib(r->remaining) / r->bandwidth * 1000;
}

/*
 * Send the frames set in @work (all populated frames when NULL) through
 * the page stream, TS_SR_BATCH at a time as libxc's save does; *@sent:
 * how many.
 */
static int copy_pages(struct mig *m, const struct bitmap *work,
                      uint64_t *sent, char *err, size_t errlen)
{
    uint64_t n = work ? work->pages : m->sp2m.pages;
    uint64_t batch[TS_SR_BATCH];
    unsigned nb = 0;

    *sent = 0;
    if (n > m->sp2m.pages)
        n = m->sp2m.pages;
    for (uint64_t g = 0; g <= n; g++) {
        uint64_t now;
        int rc;

        if (g < n) {
            if ((work && !bit(work->b, g)) || !bit(m->sp2m.b, g))
                continue;
            batch[nb++] = g;
            if (nb < TS_SR_BATCH)
                continue;
        } else if (!nb) {
            break;              /* nothing left for a last batch */
        }
        rc = ts_sr_send(m->sr, m->smem, batch, nb, err, errlen);
        if (rc)
            return rc;
        *sent += nb;
        m->sent += nb;
        nb = 0;
        /* A look at the clock each batch (4 MiB); a sample each 20 ms. */
        now = ts_now_ns();
        if (now - m->last_check >= 20000000ull) {
            m->last_check = now;
            round_progress(m, now);
        }
    }
    return 0;
}

/* xc_logdirty_control(CLEAN [| FINAL]) over the source's frames. */
static int clean(struct mig *m, bool final, uint64_t *count, char *err,
                 size_t errlen)
{
    struct xsim_dominfo info;
    uint64_t args[6] = { XEN_DOMCTL_SHADOW_OP_CLEAN };
    struct xsim_rep rep;
    uint64_t pages;
    size_t need;
    int rc;

    rc = ts_dominfo(m->src, m->sdom, &info);
    if (rc) {
        ts_seterr(err, errlen, "the source domain: %s", strerror(-rc));
        return rc;
    }
    pages = info.max_gpfn + 1;
    need = (size_t)((pages + 7) / 8);
    if (need > m->dirty.cap) {
        free(m->dirty.b);
        m->dirty.cap = need + 4096;
        m->dirty.b = calloc(1, m->dirty.cap);
        if (!m->dirty.b) {
            m->dirty.cap = 0;
            return -ENOMEM;
        }
    }
    memset(m->dirty.b, 0, m->dirty.cap);
    args[1] = final ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0;
    args[2] = pages;
    args[3] = 1;
    rc = ts_call_rc(m->src, XSIM_OP_SHADOW, m->sdom, args, NULL, 0, &rep,
                    m->dirty.b, need, NULL);
    if (rc) {
        ts_seterr(err, errlen, "log-dirty CLEAN on the source: %s",
                  strerror(-rc));
        return rc;
    }
    m->dirty.pages = pages;
    *count = 0;
    for (uint64_t i = 0; i < need; i++)
        *count += (uint64_t)__builtin_popcount(m->dirty.b[i]);
    return 0;
}

static int shadow(struct ts_host *h, uint32_t domid, uint64_t op)
{
    uint64_t args[6] = { op };
    struct xsim_rep rep;

    return ts_call_rc(h, XSIM_OP_SHADOW, domid, args, NULL, 0, &rep, NULL, 0,
                      NULL);
}

/* The digest of a domain's memory as mapped here. */
static struct ts_digest sum_of(struct mig *m, struct ts_host *h,
                               uint32_t domid, const uint8_t *mem,
                               struct bitmap *p2m, uint64_t *pages)
{
    uint64_t t0 = ts_now_ns();
    struct ts_digest sum = { 0, 0 };

    if (get_p2m(h, domid, p2m, NULL) == 0)
        sum = ts_checksum(mem, p2m->b, p2m->pages, pages);
    /* Not part of the downtime: a real toolstack takes no digest. */
    m->t_sums += ts_now_ns() - t0;
    return sum;
}

/* Save the device model's state: libxl__qmp_suspend_save. */
static int save_devstate(struct mig *m, const char *path, char *err,
                         size_t errlen)
{
    json_t *r, *args;
    int fd, rc = 0;
    json_int_t fdset;
    struct stat st;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        ts_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -errno;
    }
    r = ts_qmp_exec(&m->sq, "add-fd", NULL, fd, QMP_TIMEOUT_MS, err,
                    errlen);
    close(fd);
    if (!r)
        return -EIO;
    fdset = json_integer_value(json_object_get(r, "fdset-id"));
    json_decref(r);
    {
        char name[64];

        snprintf(name, sizeof(name), "/dev/fdset/%lld", (long long)fdset);
        args = json_pack("{s:s}", "filename", name);
    }
    /* libxl sends "live" to QEMU 2.11 or newer only. */
    if (m->sq.major > 2 || (m->sq.major == 2 && m->sq.minor >= 11))
        json_object_set_new(args, "live", json_true());
    rc = ts_qmp_do(&m->sq, "xen-save-devices-state", args, QMP_TIMEOUT_MS, err,
                   errlen);
    if (rc)
        return rc;
    if (stat(path, &st) == 0)
        m->devstate_bytes = (uint64_t)st.st_size;
    return 0;
}

/* The receiving libxl writes the emulator record to a file and opens it
 * for the device model's -incoming fd:N (qemu-resume.<domid>). */
static int copy_file(const char *from, const char *to, char *err,
                     size_t errlen)
{
    char buf[65536];
    int in = open(from, O_RDONLY | O_CLOEXEC), out;
    ssize_t n;
    int rc = 0;

    if (in < 0) {
        ts_seterr(err, errlen, "%s: %s", from, strerror(errno));
        return -errno;
    }
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = -errno;
        ts_seterr(err, errlen, "%s: %s", to, strerror(errno));
        close(in);
        return rc;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            rc = -EIO;
            break;
        }
    }
    if (n < 0)
        rc = -errno;
    close(in);
    close(out);
    if (rc)
        ts_seterr(err, errlen, "copying the device state: %s", strerror(-rc));
    return rc;
}


/*
 * The hot-plugged RAM: every slot holding memory on the source (gpa
 * present) must be online on the destination at the same place, which
 * the destination's device model wrote from the device state
 * (docs/hotplug.md, "Migration").  A slot plugged on the source after its
 * state was saved did not travel: said loudly.
 */
static void hp_summary(struct mig *m)
{
    uint64_t bytes = 0;
    unsigned n = 0, missing = 0;

    for (unsigned i = 0; i < m->nhp_src; i++) {
        const struct ts_hp_slot *a = &m->hp_src[i];
        bool there = false;
        uint64_t b = 0;

        if (!a->gpa[0])
            continue;
        n++;
        if (ts_parse_size(a->size, &b) == 0)
            bytes += b;
        for (unsigned j = 0; j < m->nhp_dst && !there; j++) {
            const struct ts_hp_slot *d = &m->hp_dst[j];

            there = d->slot == a->slot && !strcmp(d->state, "online") &&
                    !strcmp(d->gpa, a->gpa) && !strcmp(d->size, a->size);
        }
        if (!there) {
            missing++;
            fprintf(stderr, "xensim: warning: hot-plugged slot %u (%s bytes "
                    "at %s) of the source is not online on the destination: "
                    "that memory did not travel\n", a->slot, a->size,
                    a->gpa);
        }
    }
    if (!n)
        printf("  hot-plugged : none\n");
    else
        printf("  hot-plugged : %u slot(s), %" PRIu64 " MiB: %s\n", n,
               bytes >> 20, missing ? "NOT ALL online on the destination"
                                    : "online on the destination");
}

static void summary(struct mig *m, const struct xsim_dominfo *info)
{
    double total = (double)(m->t_end - m->t_start) / 1e9;
    double down = (double)(m->t_resumed - m->t_suspend - m->t_sums) / 1e6;

    printf("migrated d%u (%s) from %s to %s as d%u\n", m->sdom, info->name,
           m->src->dir, m->dst.dir, m->ddom);
    printf("  rounds      : %u (%u live, 1 final)\n", m->rounds,
           m->rounds - 1);
    printf("  pages sent  : %" PRIu64 " (%.1f MiB), %" PRIu64
           " in the final round\n", m->sent,
           (double)m->sent * XSIM_PAGE_SIZE / (1 << 20), m->final_pages);
    printf("  bytes       : %" PRIu64 " of memory, %" PRIu64
           " of device state\n", m->sent * XSIM_PAGE_SIZE, m->devstate_bytes);
    printf("  frames      : %" PRIu64 " (%" PRIu64 " populated, %" PRIu64
           " released on the destination beyond its built layout)\n",
           m->sp2m_count, m->populated, m->released);
    printf("  downtime    : %.1f ms%s\n", down,
           m->t_sums ? " (not counting the digests)" : "");
    printf("  total time  : %.3f s\n", total);
    if (m->hp_listed)
        hp_summary(m);
    if (m->sums_taken) {
        char h1[TS_DIGEST_HEX], h2[TS_DIGEST_HEX];

        printf("  memory      : source at suspend %s (%" PRIu64
               " pages), destination %s (%" PRIu64 " pages): %s\n",
               ts_digest_hex(m->src_sum, h1), m->src_pages,
               ts_digest_hex(m->dst_sum, h2), m->dst_pages,
               ts_digest_equal(m->src_sum, m->dst_sum) &&
               m->src_pages == m->dst_pages ? "identical" : "DIFFERENT");
    }
    ts_report_table(&m->rep, stdout);
}

/*
 * Tests: XENSIM_TEST_MIGRATE_HOOK=hotplug-<@point> makes the migration
 * ask the source's device model for 4 MiB of RAM at that point, as a
 * toolstack racing the migration would, and print the answer on stdout:
 * "test hook: hot-plug at <point>: <state>: <error>".
 * XENSIM_TEST_MIGRATE_HOOK=stop-at-<@point> prints "test hook: stopped at
 * <point>" and stops the toolstack (SIGSTOP) there, for a test to strike
 * (kill a device model, or the toolstack itself) before it SIGCONTs it.
 */
static void hotplug_hook(struct mig *m, const char *point)
{
    const char *hook = getenv("XENSIM_TEST_MIGRATE_HOOK");
    struct ts_hp_req r = { .slot = TS_HP_AUTO, .start = TS_HP_AUTO,
                           .size = 4u << 20, .timeout_ms = 10000 };
    struct ts_hp_slot ans;
    char e[TS_ERRLEN];

    if (hook && !strncmp(hook, "stop-at-", 8) && !strcmp(hook + 8, point)) {
        printf("test hook: stopped at %s\n", point);
        fflush(stdout);
        raise(SIGSTOP);
        return;
    }
    if (!m->have_dm || !hook || strncmp(hook, "hotplug-", 8) ||
        strcmp(hook + 8, point))
        return;
    if (ts_hotplug(m->src, m->sdom, &r, &ans, e, sizeof(e)))
        printf("test hook: hot-plug at %s: no answer: %s\n", point, e);
    else
        printf("test hook: hot-plug at %s: slot %u %s: %s\n", point,
               ans.slot, ans.state, ans.error);
    fflush(stdout);
}

/*
 * libxl_retrieve_domain_configuration, memory: the sender's
 * b_info.target_memkb is memory/target plus libxl__get_targetmem_fudge
 * (of the configuration it keeps), max_memkb is memory/static-max; both
 * go to the receiver in @c.  What mem-max and mem-set changed travels
 * through these keys, not through Xen's maximum.  Without xenstore (a
 * host libxl could not run on) the record's values stay.
 */
int ts_retrieve_memory(struct ts_host *h, uint32_t domid,
                       struct ts_domcfg *c, char *err, size_t errlen)
{
    uint64_t fudge = ts_targetmem_fudge(c), target, smax;
    struct xs_handle *xs;
    char path[96];
    int rc;

    if (!h->xenstore) {
        c->target_memkb = ts_cfg_target_kb(c);
        c->max_memkb = ts_cfg_max_kb(c);
        return 0;
    }
    xs = ts_xs_open_err(h, err, errlen, &rc);
    if (!xs)
        return -rc;
    ts_fmt(path, sizeof(path), "/local/domain/%u/memory/target", domid);
    rc = ts_xs_read_kb(xs, XBT_NULL, path, &target);
    if (rc == 0) {
        ts_fmt(path, sizeof(path), "/local/domain/%u/memory/static-max", domid);
        rc = ts_xs_read_kb(xs, XBT_NULL, path, &smax);
    }
    xs_close(xs);
    if (rc) {
        ts_seterr(err, errlen, "retrieving the configuration of d%u: %s %s",
                  domid, rc == -ENOENT ? "cannot get memory info from"
                                    : "invalid memory value in", path);
        return rc;
    }
    c->target_memkb = target + fudge;
    c->max_memkb = smax;
    return 0;
}

/*
 * The phases of ts_migrate, in order, as libxc splits save and restore
 * (xg_sr_save.c / xg_sr_restore.c): setup of both sides, the live
 * rounds, suspend, the final round, the receiver's device model and
 * resume, then the sender's clean-up, or, on any failure, the abort that
 * resumes the sender.  Each returns 0 or -errno with @err set, and
 * records in @m what the abort must undo.
 */

/* What to migrate: the source domain, its record and its device model,
 * and the destination host. */
static int mig_setup(struct mig *m, char *err, size_t errlen)
{
    const struct ts_migrate_opts *o = m->o;
    struct ts_host *src = m->src;
    uint32_t domid = m->sdom;
    int rc;

    rc = ts_dominfo(src, domid, &m->info);
    if (rc) {
        ts_seterr(err, errlen, "no domain d%u on %s: %s", domid, src->dir,
                  strerror(-rc));
        return rc;
    }
    if (domid == 0 || (m->info.flags & XSIM_DOMF_CONTROL)) {
        ts_seterr(err, errlen, "domain 0 cannot be migrated");
        return -EINVAL;
    }
    m->was_paused = m->info.pause_count > 0;
    rc = ts_domcfg_load(src->dir, domid, &m->cfg, err, errlen);
    if (rc == -ENOENT) {
        /* Created by hand: what libxl would know from the domain. */
        snprintf(m->cfg.name, sizeof(m->cfg.name), "%s", m->info.name);
        snprintf(m->cfg.workload, sizeof(m->cfg.workload), "%s",
                 m->info.workload);
        m->cfg.mem_mib = (m->info.max_pages * 4 - XSIM_MAXMEM_SLACK_KB) /
                         1024;
        m->cfg.vcpus = m->info.nr_vcpus;
        rc = 0;
    } else if (rc) {
        return rc;
    }
    m->have_cfg = true;
    rc = ts_retrieve_memory(src, domid, &m->cfg, err, errlen);
    if (rc)
        return rc;
    /* The workload runs on: take the current one. */
    snprintf(m->cfg.workload, sizeof(m->cfg.workload), "%s",
             m->info.workload);
    m->have_dm = m->cfg.dm[0] != 0;
    /* Migrating without it would leave it running for a domain that is
     * gone, and its device state behind. */
    if (!m->have_dm && ts_dm_foreign(src, domid)) {
        ts_dm_foreign_err(src, domid, "migrate the domain", err, errlen);
        return -ENOTSUP;
    }

    rc = ts_host_open(&m->dst, o->to, err, errlen);
    if (rc)
        return rc;
    if (strcmp(m->dst.dir, src->dir) == 0) {
        ts_seterr(err, errlen, "the destination is the source host (%s); "
                  "migrate to another state directory", src->dir);
        return -EINVAL;
    }
    if (m->have_dm && !m->dst.xenstore) {
        ts_seterr(err, errlen, "the destination host %s runs no xenstore, "
                  "which the device model needs", m->dst.dir);
        return -ENOTSUP;
    }
    if (o->checksum_file) {
        m->sums = fopen(o->checksum_file, "w");
        if (!m->sums) {
            rc = -errno;
            ts_seterr(err, errlen, "%s: %s", o->checksum_file,
                      strerror(errno));
            return rc;
        }
    }
    if (m->have_dm) {
        rc = ts_dm_attach(src, domid, &m->cfg, &m->sdm);
        if (rc) {
            ts_seterr(err, errlen, "the device model of d%u (pid %d) is not "
                      "running", domid, (int)m->cfg.dm_pid);
            return rc;
        }
        rc = ts_qmp_connect(&m->sq, m->sdm.qmp, m->sdm.pidfd, 10000, err,
                            errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * The receiver creates the domain from the configuration it was sent
 * (libxl_domain_create_restore): paused, same memory layout.  Then both
 * guests' memory is mapped here (libxc maps the source's frames with
 * xenforeignmemory; the receiver writes into the new domain).
 */
static int mig_create_receiver(struct mig *m, char *err, size_t errlen)
{
    struct bitmap tmp = { 0 };
    int fd = -1, rc;

    /* Hot-plugged RAM the target does not cover does not fit: round 0
     * fails to populate it (EBUSY), as libxc's restore does, and the
     * source resumes. */
    rc = ts_create_dest(&m->dst, &m->cfg, XSIM_CREATE_PAUSED, &m->ddom, err,
                        errlen);
    if (rc)
        return rc;

    rc = get_p2m(&m->dst, m->ddom, &tmp, &fd);
    if (rc == 0 && fd >= 0) {
        m->dmem = mmap(NULL, GUEST_BYTES, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_NORESERVE, fd, 0);
        close(fd);
        fd = -1;
    }
    if (rc == 0)
        rc = get_p2m(m->src, m->sdom, &tmp, &fd);
    if (rc == 0 && fd >= 0) {
        m->smem = mmap(NULL, GUEST_BYTES, PROT_READ,
                       MAP_SHARED | MAP_NORESERVE, fd, 0);
        close(fd);
        fd = -1;
    }
    free(tmp.b);
    if (rc || m->smem == MAP_FAILED || m->dmem == MAP_FAILED) {
        ts_seterr(err, errlen, "cannot map the guests' memory: %s",
                  rc ? strerror(-rc) : strerror(errno));
        return rc ? rc : -ENOMEM;
    }
    return ts_sr_open(&m->sr, m->dmem, GUEST_BYTES / XSIM_PAGE_SIZE, err,
                      errlen);
}

/* 1. libxl: the device model reports its writes from now on; libxc
 * enables log-dirty. */
static int mig_start_logdirty(struct mig *m, char *err, size_t errlen)
{
    int rc;

    if (m->have_dm) {
        rc = ts_qmp_do(&m->sq, "xen-set-global-dirty-log",
                       json_pack("{s:b}", "enable", 1), DIRTY_LOG_TIMEOUT_MS,
                       err, errlen);
        if (rc)
            return rc;
        m->dirtylog_dm = true;
    }
    /* libxc x86_hvm_setup -> enable_logdirty: if it is held (VRAM
     * tracking on a real Xen), switch shadow off and try again. */
    rc = shadow(m->src, m->sdom, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    if (rc == -EINVAL) {
        shadow(m->src, m->sdom, XEN_DOMCTL_SHADOW_OP_OFF);
        rc = shadow(m->src, m->sdom, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    }
    if (rc) {
        ts_seterr(err, errlen, "enabling log-dirty on d%u: %s", m->sdom,
                  strerror(-rc));
        return rc;
    }
    m->logdirty = true;
    ts_progress_say(&m->prog, "migrating d%u (%s) to %s", m->sdom,
                    m->info.name, m->dst.dir);
    return 0;
}

/*
 * 2. Round 0: every populated frame.  Then live rounds: CLEAN, copy what
 * was dirtied, until few pages are dirty or the rounds are used up
 * (libxc's simple precopy policy).
 */
static int mig_live_rounds(struct mig *m, char *err, size_t errlen)
{
    uint64_t sent;
    int rc;

    m->t_clean = ts_now_ns();
    rc = sync_p2m(m, err, errlen);
    if (rc)
        return rc;
    m->rep.setup_ms = since_ms(m, ts_now_ns());
    round_begin(m, bm_count(&m->sp2m));
    rc = copy_pages(m, NULL, &sent, err, errlen);
    if (rc)
        return rc;
    round_end(m);
    m->rounds = 1;
    hotplug_hook(m, "live");
    while (m->rounds < m->o->max_iters) {
        uint64_t dirty, t;

        if (ts_interrupted) {
            ts_seterr(err, errlen, "interrupted");
            return -EINTR;
        }
        rc = clean(m, false, &dirty, err, errlen);
        if (rc)
            return rc;
        t = ts_now_ns();
        round_dirty(m, dirty, (double)(t - m->t_clean) / 1e9);
        rc = sync_p2m(m, err, errlen);
        if (rc)
            return rc;
        round_begin(m, dirty);
        rc = copy_pages(m, &m->dirty, &sent, err, errlen);
        if (rc)
            return rc;
        round_end(m);
        m->rounds++;
        m->t_clean = t;
        if (dirty < m->o->threshold)
            break;
    }
    return 0;
}

/* 3. Suspend: pause the guest, stop the device model, save its state
 * (libxl__qmp_suspend_save into qemu-save.<domid>). */
static int mig_suspend(struct mig *m, char *err, size_t errlen)
{
    int rc;

    m->t_suspend = ts_now_ns();
    rc = ts_dom_op(m->src, XSIM_OP_DOM_PAUSE, m->sdom);
    if (rc) {
        ts_seterr(err, errlen, "pausing d%u: %s", m->sdom, strerror(-rc));
        return rc;
    }
    m->src_paused = true;
    if (m->have_dm) {
        rc = ts_qmp_do(&m->sq, "stop", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc)
            return rc;
        m->dm_stopped = true;
        snprintf(m->save_path, sizeof(m->save_path), "%s/qemu-save.%u",
                 m->src->dir, m->sdom);
        rc = save_devstate(m, m->save_path, err, errlen);
        if (rc)
            return rc;
        hotplug_hook(m, "saved");
    }
    return 0;
}

/* Record a --checksum-file digest. */
static void mig_write_sum(struct mig *m, const char *side,
                          struct ts_digest sum, uint64_t pages)
{
    char hex[TS_DIGEST_HEX];

    fprintf(m->sums, "%s %s %" PRIu64 "\n", side, ts_digest_hex(sum, hex),
            pages);
    fflush(m->sums);
}

/*
 * The final round: the last dirty pages (CLEAN | FINAL) with the guest
 * paused; then the sender is done with Xen's log-dirty and the device
 * model's reports.  The digests are taken of the source as it stopped and
 * of the destination as the stream left it, before any device model of
 * it runs (one started without -S runs once it has loaded its state).
 */
static int mig_final_round(struct mig *m, char *err, size_t errlen)
{
    uint64_t dirty, received;
    int rc;

    rc = clean(m, true, &dirty, err, errlen);
    if (rc)
        return rc;
    round_dirty(m, dirty, (double)(ts_now_ns() - m->t_clean) / 1e9);
    rc = sync_p2m(m, err, errlen);
    if (rc)
        return rc;
    m->final_round = true;
    round_begin(m, dirty);
    rc = copy_pages(m, &m->dirty, &m->final_pages, err, errlen);
    /* libxc's END: the receiver has every page once it is read. */
    if (rc == 0)
        rc = ts_sr_finish(m->sr, &received, err, errlen);
    if (rc == 0 && received != m->sent) {
        ts_seterr(err, errlen, "the page stream's receiver wrote %" PRIu64
                  " pages of the %" PRIu64 " sent", received, m->sent);
        rc = -EIO;
    }
    if (rc)
        return rc;
    round_end(m);
    ts_progress_end(&m->prog);
    m->sp2m_count = bm_count(&m->sp2m);
    m->rounds++;
    if (m->sums) {
        m->src_sum = sum_of(m, m->src, m->sdom, m->smem, &m->sp2m,
                            &m->src_pages);
        mig_write_sum(m, "source", m->src_sum, m->src_pages);
    }
    if (m->have_dm) {
        rc = ts_qmp_do(&m->sq, "xen-set-global-dirty-log",
                       json_pack("{s:b}", "enable", 0), DIRTY_LOG_TIMEOUT_MS,
                       err, errlen);
        if (rc)
            return rc;
        m->dirtylog_dm = false;
    }
    hotplug_hook(m, "dirty-log-off");
    shadow(m->src, m->sdom, XEN_DOMCTL_SHADOW_OP_OFF);
    m->logdirty = false;

    if (m->sums) {
        m->dst_sum = sum_of(m, &m->dst, m->ddom, m->dmem, &m->dp2m,
                            &m->dst_pages);
        mig_write_sum(m, "destination", m->dst_sum, m->dst_pages);
        m->sums_taken = true;
    }
    return 0;
}

/* "the destination's device model: <@err>; its log ... ends: ..." */
static void mig_dest_dm_error(struct mig *m, char *err, size_t errlen)
{
    char tmp[TS_ERRLEN];

    ts_dm_explain(&m->ddm, err, errlen);
    snprintf(tmp, sizeof(tmp), "the destination's device model: %s", err);
    ts_seterr(err, errlen, "%s", tmp);
}

/*
 * 4. Device state, the receiver's side: libxl__build_post writes the
 * domain's memory keys (static-max the sender's, the target less libxl's
 * fudge); the emulator's xenstore data and record are restored and the
 * device model started with -incoming fd:N, paused (-S) or running.
 */
static int mig_receiver_dm(struct mig *m, char *err, size_t errlen)
{
    int in_fd, rc;

    rc = ts_write_memory_keys(&m->dst, m->ddom, &m->cfg, err, errlen);
    if (rc || !m->have_dm)
        return rc;
    ts_copy_emulator_xenstore(m->src, m->sdom, &m->dst, m->ddom);
    ts_fmt(m->resume_path, sizeof(m->resume_path), "%s/qemu-resume.%u",
           m->dst.dir, m->ddom);
    rc = copy_file(m->save_path, m->resume_path, err, errlen);
    if (rc)
        return rc;
    in_fd = open(m->resume_path, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) {
        rc = -errno;
        ts_seterr(err, errlen, "%s: %s", m->resume_path, strerror(errno));
        return rc;
    }
    rc = ts_dm_launch(&m->dst, m->ddom, &m->cfg, m->o->dest_args,
                      m->o->ndest_args, in_fd, NULL, &m->ddm, err, errlen);
    close(in_fd);
    if (rc)
        return rc;
    /* Recorded at once: the destination host can always stop it. */
    m->cfg.dm_pid = m->ddm.pid;
    m->cfg.dm_start = m->ddm.start;
    rc = ts_domcfg_save(m->dst.dir, m->ddom, &m->cfg, err, errlen);
    if (rc)
        return rc;
    rc = ts_dm_startup(&m->dst, m->ddom, &m->ddm, &m->dq, true,
                       m->dm_timeout, err, errlen);
    if (rc)
        mig_dest_dm_error(m, err, errlen);
    return rc;
}

/* The receiver resumes: cont its device model and wait for it to be
 * running, record it, and unpause the domain (unless xl -p). */
static int mig_receiver_resume(struct mig *m, char *err, size_t errlen)
{
    int rc;

    if (m->have_dm) {
        const char *hook = getenv("XENSIM_TEST_MIGRATE_HOOK");

        /* Tests: the destination's device model dies at the worst time. */
        if (hook && strcmp(hook, "kill-dest-dm-before-cont") == 0)
            ts_dm_signal(&m->ddm, SIGKILL);
        hotplug_hook(m, "before-cont");
        rc = ts_qmp_do(&m->dq, "cont", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc == 0)
            rc = ts_dm_wait_running(&m->dst, m->ddom, &m->ddm,
                                    m->dm_timeout, err, errlen);
        if (rc) {
            mig_dest_dm_error(m, err, errlen);
            return rc;
        }
        ts_qmp_close(&m->dq);
        ts_dm_record_pid(&m->dst, m->ddom, m->ddm.pid);
    } else {
        rc = ts_domcfg_save(m->dst.dir, m->ddom, &m->cfg, err, errlen);
        if (rc)
            return rc;
    }
    if (!m->was_paused && !m->o->pause_dest) {
        rc = ts_dom_op(&m->dst, XSIM_OP_DOM_UNPAUSE, m->ddom);
        if (rc) {
            ts_seterr(err, errlen, "unpausing d%u on %s: %s", m->ddom,
                      m->dst.dir, strerror(-rc));
            return rc;
        }
    }
    m->t_resumed = ts_now_ns();
    return 0;
}

/* The report's totals and names, once the rounds began. */
static void mig_fill_report(struct mig *m, int rc, const char *err)
{
    struct ts_report *r = &m->rep;

    r->engine = "libxc";
    r->src = m->src->dir;
    r->dst = m->dst.dir;
    r->domid = m->sdom;
    r->dest_domid = m->ddom;
    snprintf(r->name, sizeof(r->name), "%s", m->info.name);
    r->status = rc == 0 ? "completed" : "failed";
    r->error = rc ? err : NULL;
    r->rounds = m->rounds;
    r->pages = m->sent;
    r->bytes = m->sent * XSIM_PAGE_SIZE;
    r->guest_pages = m->sp2m_count ? m->sp2m_count : bm_count(&m->sp2m);
    r->total_ms = (double)((m->t_end ? m->t_end : ts_now_ns()) -
                           m->t_start) / 1e6;
    r->downtime_ms = rc == 0 ? (double)(m->t_resumed - m->t_suspend -
                                        m->t_sums) / 1e6 : TS_UNKNOWN;
    r->devstate_bytes = m->devstate_bytes;
}

/* --json and --report, whatever the outcome (a failed migration's rounds
 * are worth a look too); a report that cannot be written is said, the
 * migration's outcome stays what it was. */
static void mig_reports(struct mig *m, int rc, const char *err)
{
    char e2[TS_ERRLEN];

    mig_fill_report(m, rc, err);
    if (m->o->json && ts_report_json(&m->rep, stdout))
        fprintf(stderr, "xensim: writing the JSON report failed\n");
    if (m->o->report_svg && ts_report_svg(&m->rep, m->o->report_svg, e2,
                                          sizeof(e2)))
        fprintf(stderr, "xensim: %s\n", e2);
}

/*
 * 5. The destination runs: what a toolstack sees of the hot-plugged RAM
 * on both sides is listed, the sender destroys its copy (device model,
 * then domain) and the summary is printed.  Nothing here fails the
 * migration any more.
 */
static void mig_sender_done(struct mig *m)
{
    char e2[TS_ERRLEN];
    int rc;

    if (m->have_dm) {
        ts_hotplug_list(m->src, m->sdom, &m->hp_src, &m->nhp_src, e2,
                        sizeof(e2));
        ts_hotplug_list(&m->dst, m->ddom, &m->hp_dst, &m->nhp_dst, e2,
                        sizeof(e2));
        m->hp_listed = true;
        ts_qmp_close(&m->sq);
        if (ts_dm_stop(&m->sdm, true, e2, sizeof(e2)))
            fprintf(stderr, "xensim: source: %s\n", e2);
    }
    rc = ts_dom_op(m->src, XSIM_OP_DOM_DESTROY, m->sdom);
    if (rc)
        fprintf(stderr, "xensim: destroying d%u on the source: %s\n",
                m->sdom, strerror(-rc));
    ts_domcfg_remove(m->src->dir, m->sdom);
    m->t_end = ts_now_ns();
    mig_fill_report(m, 0, NULL);
    if (!m->o->json)
        summary(m, &m->info);
}

/*
 * A phase failed with @rc: the receiver's copy goes and the sender
 * resumes (libxl_domain_resume), so nothing of the source is lost; @err
 * says so.  Returns the migration's result.
 */
static int mig_abort(struct mig *m, int rc, char *err, size_t errlen)
{
    char e2[TS_ERRLEN];

    if (m->ddm.pid) {
        ts_qmp_close(&m->dq);
        ts_dm_stop(&m->ddm, false, e2, sizeof(e2));
    }
    if (m->ddom) {
        ts_dom_op(&m->dst, XSIM_OP_DOM_DESTROY, m->ddom);
        ts_domcfg_remove(m->dst.dir, m->ddom);
    }
    if (m->dirtylog_dm && m->sq.fd >= 0)
        ts_qmp_do(&m->sq, "xen-set-global-dirty-log",
                  json_pack("{s:b}", "enable", 0), DIRTY_LOG_TIMEOUT_MS, e2,
                  sizeof(e2));
    if (m->logdirty)
        shadow(m->src, m->sdom, XEN_DOMCTL_SHADOW_OP_OFF);
    if (m->dm_stopped &&
        ts_qmp_do(&m->sq, "cont", NULL, QMP_TIMEOUT_MS, e2, sizeof(e2)))
        fprintf(stderr, "xensim: resuming the source's device model: "
                "%s\n", e2);
    if (m->src_paused)
        ts_dom_op(m->src, XSIM_OP_DOM_UNPAUSE, m->sdom);
    if (m->ddom) {
        char tmp[TS_ERRLEN];

        ts_fmt(tmp, sizeof(tmp), "%s\nxensim: d%u destroyed on %s; d%u "
               "resumed on %s", err, m->ddom, m->dst.dir, m->sdom,
               m->src->dir);
        ts_seterr(err, errlen, "%s", tmp);
    }
    /*
     * libxl resumes the sender whatever failed; if what failed is its
     * device model, the guest runs on without its emulated devices.
     */
    if (m->have_dm && m->sdm.pid && !ts_dm_alive(&m->sdm)) {
        char tmp[TS_ERRLEN];

        ts_fmt(tmp, sizeof(tmp), "%s\nxensim: the source's device model "
               "(pid %d) has died: d%u runs without its emulated devices "
               "and its I/O will hang; destroy it, or restart it from a "
               "saved state", err, (int)m->sdm.pid, m->sdom);
        ts_seterr(err, errlen, "%s", tmp);
    }
    return rc;
}

/* Whatever the outcome: files, connections, mappings, memory. */
static void mig_cleanup(struct mig *m)
{
    if (m->save_path[0])
        unlink(m->save_path);
    if (m->resume_path[0])
        unlink(m->resume_path);
    if (m->sums)
        fclose(m->sums);
    ts_qmp_close(&m->sq);
    ts_qmp_close(&m->dq);
    ts_dm_release(&m->sdm);
    ts_dm_release(&m->ddm);
    ts_sr_close(m->sr);
    if (m->smem != MAP_FAILED)
        munmap((void *)m->smem, GUEST_BYTES);
    if (m->dmem != MAP_FAILED)
        munmap(m->dmem, GUEST_BYTES);
    free(m->sp2m.b);
    free(m->dp2m.b);
    free(m->dirty.b);
    free(m->hp_src);
    free(m->hp_dst);
    ts_report_free(&m->rep);
    if (m->have_cfg)
        ts_domcfg_free(&m->cfg);
    ts_host_close(&m->dst);
}

/* Until one fails; the destination runs once the last has succeeded. */
static int (*const mig_phases[])(struct mig *m, char *err, size_t errlen) = {
    mig_setup,
    mig_create_receiver,
    mig_start_logdirty,
    mig_live_rounds,
    mig_suspend,
    mig_final_round,
    mig_receiver_dm,
    mig_receiver_resume,
};

int ts_migrate(struct ts_host *src, uint32_t domid,
               const struct ts_migrate_opts *o, char *err, size_t errlen)
{
    struct mig mm = { .src = src, .sdom = domid, .o = o }, *m = &mm;
    struct ts_sigsave sigs;
    int rc = 0;

    m->dst.fd = -1;
    m->sdm.pidfd = m->ddm.pidfd = -1;
    m->sq.fd = m->dq.fd = -1;
    m->smem = MAP_FAILED;
    m->dmem = MAP_FAILED;
    m->dm_timeout = o->dm_timeout_ms > 0 ? o->dm_timeout_ms
                                         : DM_START_TIMEOUT_MS;
    m->t_start = ts_now_ns();
    m->rep.normal_pages = m->rep.zero_pages = TS_UNKNOWN;
    m->rep.setup_ms = TS_UNKNOWN;
    ts_progress_init(&m->prog, o->progress, o->force_progress);
    if (o->report_svg) {
        rc = ts_report_check_path(o->report_svg, err, errlen);
        if (rc)
            return rc;
    }
    ts_interrupt_catch(&sigs);

    for (size_t i = 0; rc == 0 && i < sizeof(mig_phases) /
                                       sizeof(mig_phases[0]); i++)
        rc = mig_phases[i](m, err, errlen);
    ts_progress_end(&m->prog);
    if (rc == 0)
        mig_sender_done(m);
    else
        rc = mig_abort(m, rc, err, errlen);
    if (m->rounds || m->rep.n)
        mig_reports(m, rc, err);

    mig_cleanup(m);
    ts_interrupt_restore(&sigs);
    return rc;
}
