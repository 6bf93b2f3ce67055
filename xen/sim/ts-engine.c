/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-engine.c - `xensim migrate --engine xenram`: the toolstack's part of
 * a migration whose RAM xenram's own precopy engine moves
 * (docs/migration.md, "xenram's own engine"; docs/toolstack.md, the same
 * section).  What a libxl patch would do: build the destination domain
 * without memory and paused, start its xenram with libxl's arguments and
 * `-incoming unix:PATH`, drive the source's xenram with QEMU's migration
 * QMP (capabilities, parameters, migrate, query-migrate), then destroy
 * whichever side lost.  One function per phase over struct eng, as
 * ts-migrate.c does for libxc's way.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "xen/sim/toolstack-internal.h"
#include "xen/sim/ts-report.h"

/*
 * How often query-migrate is asked at least; at once when xenram sends an
 * event (MIGRATION_PASS: a round began, so the figures of the one before
 * are there; MIGRATION: a new status).  The rounds are told apart by
 * dirty-sync-count, so a round whose figures were replaced before they
 * were read is seen together with the next one.  The line is redrawn less
 * often (ts_progress_show).
 */
#define POLL_MS                 20
/*
 * Postcopy recovery: attempts to recover from one pause before the
 * toolstack gives up (both sides then stay paused, for a person to
 * recover by hand), and how long each step may take: the peer noticing
 * the broken link, the destination listening, the source coming back.
 */
#define RECOVER_ATTEMPTS        10
#define RECOVER_STEP_MS         30000
#define GUEST_BYTES ((size_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE))

/* The most a --x-postcopy-pause entry waits: ten minutes. */
#define PAUSE_MS_MAX            600000u

/*
 * --x-postcopy-pause SIDE:MS[,SIDE:MS]...: every entry checked, nothing
 * kept unless the whole list is right.  It implies --postcopy, as
 * --postcopy-preempt does.
 */
static int parse_pauses(struct ts_engine_opts *e, const char *arg, char *err,
                        size_t errlen)
{
    struct ts_postcopy_pause p[TS_POSTCOPY_PAUSES_MAX];
    const char *s = arg;
    unsigned n = 0;

    for (;;) {
        int len = (int)strcspn(s, ",");
        const char *q;
        uint64_t ms = 0;

        if (n == TS_POSTCOPY_PAUSES_MAX) {
            ts_seterr(err, errlen, "--x-postcopy-pause takes at most %u "
                      "entries", TS_POSTCOPY_PAUSES_MAX);
            return -EINVAL;
        }
        if (len == 0) {
            ts_seterr(err, errlen, "--x-postcopy-pause: entry %u is empty; "
                      "the list is SIDE:MS[,SIDE:MS]... (SIDE src or dst, "
                      "MS milliseconds), e.g. src:200,dst:300", n + 1);
            return -EINVAL;
        }
        if (strncmp(s, "src:", 4) && strncmp(s, "dst:", 4)) {
            ts_seterr(err, errlen, "--x-postcopy-pause: entry %u ('%.*s') is "
                      "not SIDE:MS with SIDE src or dst", n + 1, len, s);
            return -EINVAL;
        }
        q = s + 4;
        if (*q < '0' || *q > '9') {
            ts_seterr(err, errlen, "--x-postcopy-pause: entry %u ('%.*s'): "
                      "MS is a decimal number of milliseconds", n + 1, len,
                      s);
            return -EINVAL;
        }
        for (; *q >= '0' && *q <= '9'; q++) {
            ms = ms * 10 + (uint64_t)(*q - '0');
            if (ms > PAUSE_MS_MAX)
                break;
        }
        if (ms > PAUSE_MS_MAX) {
            ts_seterr(err, errlen, "--x-postcopy-pause: entry %u ('%.*s'): "
                      "MS is 0 to %u", n + 1, len, s, PAUSE_MS_MAX);
            return -EINVAL;
        }
        if (*q && *q != ',') {
            ts_seterr(err, errlen, "--x-postcopy-pause: entry %u ('%.*s'): "
                      "'%c' after the milliseconds; entries are separated "
                      "by commas", n + 1, len, s, *q);
            return -EINVAL;
        }
        p[n].dst = s[0] == 'd';
        p[n].ms = (uint32_t)ms;
        n++;
        if (!*q)
            break;
        s = q + 1;
    }
    memcpy(e->pauses, p, n * sizeof(p[0]));
    e->npauses = n;
    e->postcopy = true;
    return 0;
}

int ts_engine_opt(struct ts_engine_opts *e, int opt, const char *arg,
                  char *err, size_t errlen)
{
    char *end = NULL;
    unsigned long long v = 0;

    if (opt == TS_EOPT_POSTCOPY_AFTER && strcmp(arg, "never") == 0) {
        /* The switch is left to a migrate-start-postcopy from elsewhere. */
        e->postcopy = true;
        e->postcopy_after = TS_POSTCOPY_NEVER;
        return 0;
    }
    if (opt == TS_EOPT_CHANNELS || opt == TS_EOPT_DOWNTIME ||
        opt == TS_EOPT_BANDWIDTH || opt == TS_EOPT_POSTCOPY_AFTER ||
        opt == TS_EOPT_X_PREPARE_PASSES) {
        errno = 0;
        v = strtoull(arg, &end, 10);
        if (errno || end == arg || *end || arg[0] == '-') {
            ts_seterr(err, errlen, "bad number '%s'", arg);
            return -EINVAL;
        }
    }
    switch (opt) {
    case TS_EOPT_ENGINE:
        if (strcmp(arg, "xenram") && strcmp(arg, "libxc")) {
            ts_seterr(err, errlen, "--engine is libxc (xl migrate's way, the "
                      "default) or xenram (xenram's own engine)");
            return -EINVAL;
        }
        e->xenram = strcmp(arg, "xenram") == 0;
        return 0;
    case TS_EOPT_CHANNELS:
        /* xenram checks 1..16 itself; 0 turns multifd off. */
        if (v > 16) {
            ts_seterr(err, errlen, "--channels is 0 (no multifd) to 16");
            return -EINVAL;
        }
        e->channels = (int)v;
        return 0;
    case TS_EOPT_COMPRESS:
        if (strcmp(arg, "zstd") && strcmp(arg, "none")) {
            ts_seterr(err, errlen, "--compress is zstd or none");
            return -EINVAL;
        }
        e->zstd = strcmp(arg, "zstd") == 0;
        return 0;
    case TS_EOPT_DOWNTIME:
        if (v == 0 || v > 2000000) {
            ts_seterr(err, errlen, "--downtime-limit is 1 to 2000000 ms");
            return -EINVAL;
        }
        e->downtime_ms = v;
        return 0;
    case TS_EOPT_BANDWIDTH:
        if (v > (1ull << 30)) {
            ts_seterr(err, errlen, "--max-bandwidth is in MiB/s (0: none)");
            return -EINVAL;
        }
        e->max_bw_mib = v;
        return 0;
    case TS_EOPT_AUTO_CONVERGE:
        e->auto_converge = true;
        return 0;
    case TS_EOPT_POSTCOPY:
        e->postcopy = true;
        return 0;
    case TS_EOPT_POSTCOPY_AFTER:
        if (v > 1000) {
            ts_seterr(err, errlen, "--postcopy-after-rounds is 0 (straight "
                      "away) to 1000, or never");
            return -EINVAL;
        }
        e->postcopy = true;
        e->postcopy_after = (int)v;
        return 0;
    case TS_EOPT_POSTCOPY_PREEMPT:
        e->postcopy = true;
        e->postcopy_preempt = true;
        return 0;
    case TS_EOPT_X_POSTCOPY_PAUSE:
        return parse_pauses(e, arg, err, errlen);
    case TS_EOPT_X_PREPARE_PASSES:
        if (v > 10) {
            ts_seterr(err, errlen, "--x-postcopy-prepare-passes is 0 (the "
                      "whole paging out at the switch, paused) to 10");
            return -EINVAL;
        }
        e->postcopy = true;
        e->prepare_passes = (int)v;
        return 0;
    }
    return -ENOENT;
}

struct eng {
    struct ts_host *src, dst;
    uint32_t sdom, ddom;
    const struct ts_migrate_opts *o;
    const struct ts_engine_opts *e;
    struct ts_domcfg cfg;
    bool have_cfg;
    struct ts_dm sdm, ddm;
    struct ts_qmp sq, dq;
    struct xsim_dominfo info;   /* the source as the setup found it */
    bool was_paused;            /* ... paused: so stays the destination */
    bool dest_S;                /* the destination's xenram has -S */
    int dm_timeout;
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char uri[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];

    bool migrating;             /* `migrate` accepted by the source */
    bool postcopy_sent;         /* migrate-start-postcopy accepted */
    bool postcopy_seen;         /* query-migrate said postcopy-active */
    bool completed;             /* query-migrate said so */
    bool cancel_sent;
    json_t *final;              /* the last query-migrate */
    struct ts_progress prog;
    struct ts_report rep;
    uint64_t t_migrate;         /* `migrate` sent: the rows' time 0 */
    struct ts_qm qm;            /* the rows, from query-migrate */

    /*
     * Postcopy recovery (docs/toolstack.md, "Postcopy recovery"): a pause
     * goes REC_PAUSED (both sides must say postcopy-paused), REC_LISTEN
     * (migrate-recover sent: the destination listens), REC_RESUMING
     * (migrate resume sent), then back to REC_NONE once both are
     * postcopy-active again; a failed attempt goes back to REC_PAUSED.
     */
    enum { REC_NONE, REC_PAUSED, REC_LISTEN, REC_RESUMING } rec;
    uint64_t rec_deadline;      /* of the step in progress */
    uint64_t rec_not_before;    /* the next attempt, after one failed */
    unsigned rec_attempt;       /* attempts for this pause */
    unsigned rec_attempts;      /* in all: the recovery sockets' suffix */
    unsigned recoveries;        /* pauses the source came back from */
    bool rec_back;              /* REC_RESUMING: the source came back */
    bool keep_both;             /* given up: neither side is destroyed */
    char rec_sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char rec_uri[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    char rec_why[TS_ERRLEN];    /* why the last attempt failed */
    uint64_t t_active;          /* the source (re)entered postcopy-active */
    /* First seen postcopy-active, each side: the guest runs on neither
     * between the two (the source paused, the destination not at RUN). */
    uint64_t t_src_pc, t_dst_pc;
    unsigned next_pause;        /* --x-postcopy-pause entries sent */
    bool pause_sent;            /* ... the last not yet seen to pause */

    FILE *sums;
    bool sums_taken;
    struct ts_digest src_sum, dst_sum;
    uint64_t src_pages, dst_pages, differ;
    uint64_t t_start, t_end;
};


/* ---- guest memory, for --checksum-at-suspend ---------------------------- */

struct view {
    uint8_t *mem;               /* the memfd, read-only */
    uint8_t *p2m;               /* byte bitmap */
    uint64_t pages;
};

/* The domain's memfd mapped and its p2m (XSIM_OP_MEM_P2M with the fd). */
static int view_open(struct ts_host *h, uint32_t domid, struct view *v)
{
    uint64_t args[6] = { 1 };
    size_t cap = 1 << 16;

    memset(v, 0, sizeof(*v));
    for (;;) {
        struct xsim_rep rep;
        int fd = -1, rc;

        free(v->p2m);
        v->p2m = calloc(1, cap);
        if (!v->p2m)
            return -ENOMEM;
        rc = ts_call_rc(h, XSIM_OP_MEM_P2M, domid, args, NULL, 0, &rep,
                        v->p2m, cap, &fd);
        if (rc)
            return rc;
        if ((rep.val[0] + 7) / 8 > cap) {
            if (fd >= 0)
                close(fd);
            cap = (size_t)((rep.val[0] + 7) / 8) + 4096;
            continue;
        }
        v->pages = rep.val[0];
        if (fd < 0)
            return -EBADF;
        v->mem = mmap(NULL, GUEST_BYTES, PROT_READ, MAP_SHARED | MAP_NORESERVE,
                      fd, 0);
        close(fd);
        if (v->mem == MAP_FAILED) {
            v->mem = NULL;
            return -errno;
        }
        return 0;
    }
}

static void view_close(struct view *v)
{
    if (v->mem)
        munmap(v->mem, GUEST_BYTES);
    free(v->p2m);
    memset(v, 0, sizeof(*v));
}

static bool view_has(const struct view *v, uint64_t g)
{
    return g < v->pages && ((v->p2m[g / 8] >> (g % 8)) & 1);
}

/*
 * Both sides at switchover: the source paused by its xenram (which never
 * resumes it after `completed`), the destination as received (its xenram
 * has -S: the domain is still paused, the devices stopped).  The digests
 * of `xensim checksum`, and the pages that differ, one by one.
 */
static int eng_take_sums(struct eng *m, char *err, size_t errlen)
{
    struct view s, d;
    char hex[TS_DIGEST_HEX];
    uint64_t n;
    int rc;

    rc = view_open(m->src, m->sdom, &s);
    if (rc == 0)
        rc = view_open(&m->dst, m->ddom, &d);
    else
        memset(&d, 0, sizeof(d));
    if (rc) {
        view_close(&s);
        view_close(&d);
        ts_seterr(err, errlen, "mapping the guests' memory: %s",
                  strerror(-rc));
        return rc;
    }
    m->src_sum = ts_checksum(s.mem, s.p2m, s.pages, &m->src_pages);
    m->dst_sum = ts_checksum(d.mem, d.p2m, d.pages, &m->dst_pages);
    n = s.pages > d.pages ? s.pages : d.pages;
    m->differ = 0;
    for (uint64_t g = 0; g < n; g++) {
        bool a = view_has(&s, g), b = view_has(&d, g);

        if (a != b || (a && memcmp(s.mem + g * XSIM_PAGE_SIZE,
                                   d.mem + g * XSIM_PAGE_SIZE,
                                   XSIM_PAGE_SIZE))) {
            if (m->differ++ < 8)
                fprintf(m->sums, "differs %#" PRIx64 "%s\n", g,
                        a == b ? "" : a ? " (not on the destination)"
                                        : " (not on the source)");
        }
    }
    fprintf(m->sums, "source %s %" PRIu64 "\n",
            ts_digest_hex(m->src_sum, hex), m->src_pages);
    fprintf(m->sums, "destination %s %" PRIu64 "\n",
            ts_digest_hex(m->dst_sum, hex), m->dst_pages);
    fprintf(m->sums, "differing %" PRIu64 "\n", m->differ);
    fflush(m->sums);
    m->sums_taken = true;
    view_close(&s);
    view_close(&d);
    return 0;
}

/* ---- QMP helpers -------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_number(v) ? json_number_value(v) : 0;
}

/* ---- the phases --------------------------------------------------------- */

/* What to migrate: the source, its record and xenram; the destination. */
static int eng_setup(struct eng *m, char *err, size_t errlen)
{
    const struct ts_migrate_opts *o = m->o;
    int rc;

    rc = ts_dominfo(m->src, m->sdom, &m->info);
    if (rc) {
        ts_seterr(err, errlen, "no domain d%u on %s: %s", m->sdom,
                  m->src->dir, strerror(-rc));
        return rc;
    }
    if (m->sdom == 0 || (m->info.flags & XSIM_DOMF_CONTROL)) {
        ts_seterr(err, errlen, "domain 0 cannot be migrated");
        return -EINVAL;
    }
    m->was_paused = m->info.pause_count > 0;
    rc = ts_domcfg_load(m->src->dir, m->sdom, &m->cfg, err, errlen);
    if (rc == 0)
        m->have_cfg = true;
    if (rc == -ENOENT || (rc == 0 && !m->cfg.dm[0])) {
        if (ts_dm_foreign(m->src, m->sdom))
            ts_dm_foreign_err(m->src, m->sdom, "migrate the domain", err,
                              errlen);
        else
            ts_seterr(err, errlen, "d%u has no device model: xenram's engine "
                      "is the device model's (use --engine libxc)", m->sdom);
        return -EINVAL;
    }
    if (rc)
        return rc;
    rc = ts_retrieve_memory(m->src, m->sdom, &m->cfg, err, errlen);
    if (rc)
        return rc;
    /* The workload goes on there after the HVM context. */
    snprintf(m->cfg.workload, sizeof(m->cfg.workload), "%s",
             m->info.workload);
    rc = ts_host_open(&m->dst, o->to, err, errlen);
    if (rc)
        return rc;
    if (strcmp(m->dst.dir, m->src->dir) == 0) {
        ts_seterr(err, errlen, "the destination is the source host (%s); "
                  "migrate to another state directory", m->src->dir);
        return -EINVAL;
    }
    if (!m->dst.xenstore) {
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
    rc = ts_dm_attach(m->src, m->sdom, &m->cfg, &m->sdm);
    if (rc) {
        ts_seterr(err, errlen, "the device model of d%u (pid %d) is not "
                  "running", m->sdom, (int)m->cfg.dm_pid);
        return rc;
    }
    return ts_qmp_connect(&m->sq, m->sdm.qmp, m->sdm.pidfd, 10000, err,
                          errlen);
}

/*
 * libxl_domain_create_restore with the engine: the domain is built from
 * the configuration the sender retrieved, paused and *without memory*
 * (the destination's xenram populates what the LAYOUT record names);
 * maximum, memory keys and the emulator's xenstore data as for xl
 * migrate.
 */
static int eng_create_receiver(struct eng *m, char *err, size_t errlen)
{
    int rc;

    rc = ts_create_dest(&m->dst, &m->cfg,
                        XSIM_CREATE_PAUSED | XSIM_CREATE_EMPTY, &m->ddom,
                        err, errlen);
    if (rc == 0)
        rc = ts_write_memory_keys(&m->dst, m->ddom, &m->cfg, err, errlen);
    if (rc == 0)
        ts_copy_emulator_xenstore(m->src, m->sdom, &m->dst, m->ddom);
    return rc;
}

/*
 * Wait until @path exists as a socket: an inotify watch on its directory
 * (placed by the caller before the device model started, so the creation
 * is not missed) and the device model's pidfd; no polling.
 */
static int wait_socket(int ifd, const char *path, struct ts_dm *dm,
                       int timeout_ms, char *err, size_t errlen)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)timeout_ms * 1000000ull;

    for (;;) {
        struct pollfd p[2] = { { .fd = ifd, .events = POLLIN },
                               { .fd = dm->pidfd, .events = POLLIN } };
        struct stat st;
        char buf[4096];
        int left, n;

        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return 0;
        left = ts_ms_left(deadline);
        if (left == 0) {
            ts_seterr(err, errlen, "the destination's device model did not "
                      "listen on %s within %d s", path, timeout_ms / 1000);
            return -ETIMEDOUT;
        }
        n = poll(p, dm->pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno != EINTR) {
            ts_seterr(err, errlen, "poll: %s", strerror(errno));
            return -errno;
        }
        if (n > 0 && (p[1].revents & POLLIN)) {
            ts_seterr(err, errlen, "the destination's device model exited "
                      "before it listened on %s", path);
            return -ECHILD;
        }
        if (n > 0 && (p[0].revents & POLLIN))
            (void)!read(ifd, buf, sizeof(buf));
    }
}

/*
 * The destination's xenram, launched as libxl launches a device model
 * (ts_dm_launch: libxl's command line, environment, log), with
 * `-incoming unix:<dir>/xenram-mig-<domid>.sock`; -S when the domain
 * must stay paused after the guest arrived (--pause-dest, digests, a
 * paused source).  Ready when the socket exists and QMP says inmigrate.
 */
static int eng_receiver_dm(struct eng *m, char *err, size_t errlen)
{
    const struct ts_migrate_opts *o = m->o;
    char **extra, st[32];
    unsigned n = 0;
    int ifd, rc;

    if ((size_t)ts_fmt(m->sock, sizeof(m->sock), "%s/xenram-mig-%u.sock",
                       m->dst.dir, m->ddom) >= sizeof(m->sock)) {
        m->sock[0] = 0;
        ts_seterr(err, errlen, "the migration socket's path in %s is too "
                  "long for a unix socket", m->dst.dir);
        return -ENAMETOOLONG;
    }
    snprintf(m->uri, sizeof(m->uri), "unix:%s", m->sock);
    unlink(m->sock);
    m->dest_S = o->pause_dest || o->checksum_file || m->was_paused;
    extra = calloc(o->ndest_args + 2, sizeof(*extra));
    if (!extra)
        return -ENOMEM;
    for (unsigned i = 0; i < o->ndest_args; i++)
        extra[n++] = o->dest_args[i];
    if (m->dest_S)
        extra[n++] = "-S";
    ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd < 0 || inotify_add_watch(ifd, m->dst.dir, IN_CREATE |
                                     IN_MOVED_TO) < 0) {
        rc = -errno;
        ts_seterr(err, errlen, "inotify on %s: %s", m->dst.dir,
                  strerror(errno));
        if (ifd >= 0)
            close(ifd);
        free(extra);
        return rc;
    }
    /*
     * The engine's receiver sets its memory up before the layout arrives,
     * so it must be started as the source's device model was (QEMU's rule
     * for a migration's destination): -m from the guest's memory, not
     * from the static-max libxl's restore path would use, which after
     * xl mem-max is larger than the RAM the guest has.
     */
    {
        struct ts_domcfg same = m->cfg;

        same.max_memkb = same.mem_mib * 1024;
        rc = ts_dm_launch(&m->dst, m->ddom, &same, extra, n, -1, m->uri,
                          &m->ddm, err, errlen);
    }
    free(extra);
    if (rc) {
        close(ifd);
        return rc;
    }
    /* Recorded at once: the destination host can always stop it. */
    m->cfg.dm_pid = m->ddm.pid;
    m->cfg.dm_start = m->ddm.start;
    rc = ts_domcfg_save(m->dst.dir, m->ddom, &m->cfg, err, errlen);
    if (rc == 0)
        ts_dm_record_pid(&m->dst, m->ddom, m->ddm.pid);
    if (rc == 0)
        rc = wait_socket(ifd, m->sock, &m->ddm, m->dm_timeout, err, errlen);
    close(ifd);
    if (rc == 0)
        rc = ts_qmp_connect(&m->dq, m->ddm.qmp, m->ddm.pidfd, m->dm_timeout,
                            err, errlen);
    if (rc == 0)
        rc = ts_qmp_status(&m->dq, st, sizeof(st), err, errlen);
    if (rc == 0 && strcmp(st, "inmigrate")) {
        ts_seterr(err, errlen, "the incoming device model reports status "
                  "'%s', expected 'inmigrate'", st);
        rc = -EPROTO;
    }
    if (rc) {
        char tmp[TS_ERRLEN];

        ts_dm_explain(&m->ddm, err, errlen);
        snprintf(tmp, sizeof(tmp), "the destination's device model: %s", err);
        ts_seterr(err, errlen, "%s", tmp);
    }
    return rc;
}

/* The source's xenram: capabilities, parameters, then `migrate`. */
static int eng_start(struct eng *m, char *err, size_t errlen)
{
    const struct ts_engine_opts *e = m->e;
    int channels = e->channels < 0 ? 2 : e->channels;
    json_t *p;
    int rc;

    if (e->postcopy_preempt && channels == 0) {
        ts_seterr(err, errlen, "--postcopy-preempt needs data channels "
                  "(--channels 1 or more)");
        return -EINVAL;
    }
    rc = ts_qmp_do(&m->sq, "migrate-set-capabilities",
                   json_pack("{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b},"
                             "{s:s,s:b}]}",
                             "capabilities",
                             "capability", "multifd", "state", channels > 0,
                             "capability", "events", "state", 1,
                             "capability", "auto-converge",
                             "state", m->e->auto_converge,
                             "capability", "postcopy-ram",
                             "state", e->postcopy,
                             "capability", "postcopy-preempt",
                             "state", e->postcopy_preempt),
                   QMP_TIMEOUT_MS, err, errlen);
    if (rc)
        return rc;
    /* Every parameter this migration depends on, set explicitly: what an
     * earlier migration left is not inherited. */
    p = json_pack("{s:I,s:I,s:s}",
                  "downtime-limit", (json_int_t)(e->downtime_ms ?
                                                 e->downtime_ms : 300),
                  "max-bandwidth", (json_int_t)(e->max_bw_mib << 20),
                  "multifd-compression", e->zstd ? "zstd" : "none");
    if (channels > 0)
        json_object_set_new(p, "multifd-channels", json_integer(channels));
    /* --postcopy-after-rounds N: the engine switches when round N ends
     * (a migrate-start-postcopy sent on seeing round N may arrive after
     * a short round N+1 converged); without it, after round 1; "never":
     * only on a migrate-start-postcopy someone else sends. */
    json_object_set_new(p, "x-postcopy-after-rounds",
                        json_integer(!e->postcopy ? 0 :
                                     e->postcopy_after == TS_POSTCOPY_NEVER
                                     ? 0 :
                                     e->postcopy_after < 0 ? 1 :
                                     e->postcopy_after));
    /* Without --x-postcopy-prepare-passes: xenram's default, 5. */
    json_object_set_new(p, "x-postcopy-prepare-passes",
                        json_integer(e->prepare_passes >= 0 ?
                                     e->prepare_passes : 5));
    rc = ts_qmp_do(&m->sq, "migrate-set-parameters", p, QMP_TIMEOUT_MS, err,
                   errlen);
    if (rc)
        return rc;
    ts_progress_say(&m->prog, "migrating d%u (%s) to %s with xenram's "
                    "engine (%d channel%s%s)", m->sdom, m->info.name,
                    m->dst.dir, channels, channels == 1 ? "" : "s",
                    e->zstd ? ", zstd" : "");
    /* --postcopy-after-rounds 0: straight away, QEMU's meaning of
     * migrate-start-postcopy before migrate (round 1 ends at once). */
    if (e->postcopy && e->postcopy_after == 0) {
        rc = ts_qmp_do(&m->sq, "migrate-start-postcopy", NULL,
                       QMP_TIMEOUT_MS, err, errlen);
        if (rc)
            return rc;
        m->postcopy_sent = true;
    }
    m->t_migrate = ts_now_ns();
    rc = ts_qmp_do(&m->sq, "migrate", json_pack("{s:s}", "uri", m->uri),
                   QMP_TIMEOUT_MS, err, errlen);
    if (rc == 0)
        m->migrating = true;
    return rc;
}

/* Rows and samples from one query-migrate; the live line. */
static void track(struct eng *m, json_t *r)
{
    struct ts_live l;

    ts_qm_track(&m->qm, r, (double)(ts_now_ns() - m->t_migrate) / 1e6, &l);
    ts_progress_show(&m->prog, &l);
}

/*
 * POLL_MS, or less when xenram has sent something (an event) since the
 * last answer: already buffered, or arriving meanwhile.
 */
static void wait_news(struct eng *m)
{
    struct pollfd p = { .fd = m->sq.fd, .events = POLLIN };

    if (m->sq.len && memchr(m->sq.buf, '\n', m->sq.len))
        return;
    poll(&p, 1, POLL_MS);
}

/* ---- postcopy recovery -------------------------------------------------- */

static bool is_paused(const char *st)
{
    return !strcmp(st, "postcopy-paused");
}

static bool is_running_postcopy(const char *st)
{
    return !strcmp(st, "postcopy-active") || !strcmp(st, "completed");
}

static const char *why(json_t *r)
{
    return jstr(r, "error-desc")[0] ? jstr(r, "error-desc")
                                    : "no error-desc";
}

/* On stderr whatever --progress says: a pause is news to whoever runs the
 * migration, and stdout may be --json's. */
static void rec_say(struct eng *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rec_say(struct eng *m, const char *fmt, ...)
{
    va_list ap;

    ts_progress_end(&m->prog);
    fputs("xensim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/*
 * --x-postcopy-pause: the next entry's migrate-pause, once both sides have
 * been postcopy-active for its MS and the one before was seen to pause.
 * A refusal is said, not fatal: the migration may have ended meanwhile.
 */
static void rec_hook(struct eng *m)
{
    const struct ts_postcopy_pause *p;
    const char *side;
    char e2[TS_ERRLEN];

    if (m->next_pause >= m->e->npauses || m->pause_sent || !m->t_active)
        return;
    p = &m->e->pauses[m->next_pause];
    if (ts_now_ns() - m->t_active < (uint64_t)p->ms * 1000000ull)
        return;
    m->next_pause++;
    side = p->dst ? "destination" : "source";
    if (ts_qmp_do(p->dst ? &m->dq : &m->sq, "migrate-pause", NULL,
                  QMP_TIMEOUT_MS, e2, sizeof(e2))) {
        rec_say(m, "test hook: migrate-pause to the %s's xenram refused: %s",
                side, e2);
        return;
    }
    m->pause_sent = true;
    rec_say(m, "test hook: migrate-pause sent to the %s's xenram, %u ms "
            "after postcopy-active", side, p->ms);
}

/* A pause begins: what each side says, and the count of attempts. */
static void rec_begin(struct eng *m, json_t *sr, json_t *dr)
{
    m->rec = REC_PAUSED;
    m->rec_attempt = 0;
    m->rec_not_before = 0;
    m->rec_deadline = ts_now_ns() + RECOVER_STEP_MS * 1000000ull;
    m->rec_uri[0] = 0;
    m->pause_sent = false;
    rec_say(m, "postcopy paused: the source says %s (%s), the destination "
            "%s (%s); recovering", jstr(sr, "status"), why(sr),
            jstr(dr, "status"), why(dr));
}

/* This attempt failed: said, and the next one after a while (100 ms,
 * doubled each time, at most 2 s), once both sides are paused again. */
static void rec_failed(struct eng *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rec_failed(struct eng *m, const char *fmt, ...)
{
    unsigned shift = m->rec_attempt > 5 ? 5 : m->rec_attempt ?
                     m->rec_attempt - 1 : 0;
    uint64_t backoff = 100ull << shift;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->rec_why, sizeof(m->rec_why), fmt, ap);
    va_end(ap);
    rec_say(m, "recovery attempt %u of %u failed: %s", m->rec_attempt,
            RECOVER_ATTEMPTS, m->rec_why);
    m->rec = REC_PAUSED;
    m->rec_not_before = ts_now_ns() +
                        (backoff > 2000 ? 2000 : backoff) * 1000000ull;
    m->rec_deadline = ts_now_ns() + RECOVER_STEP_MS * 1000000ull;
}

/*
 * No more attempts: both sides are left as they are, since destroying
 * either loses the guest (the destination runs it, the source holds the
 * pages it lacks); a person may still recover by hand.
 */
static int rec_give_up(struct eng *m, const char *what, char *err,
                       size_t errlen)
{
    m->keep_both = true;
    ts_seterr(err, errlen, "postcopy recovery: %s. Both sides are left "
              "as they are: d%u on %s runs the guest and waits on the pages "
              "d%u on %s still holds; recover by hand (QMP migrate-recover "
              "to the destination's xenram, then migrate with \"resume\": "
              "true to the source's) or destroy both", what, m->ddom,
              m->dst.dir, m->sdom, m->src->dir);
    return -EIO;
}

/* migrate resume to the source, towards the destination's rec_uri. */
static void rec_resume(struct eng *m)
{
    char e2[TS_ERRLEN];

    if (ts_qmp_do(&m->sq, "migrate",
                  json_pack("{s:s,s:b}", "uri", m->rec_uri, "resume", 1),
                  QMP_TIMEOUT_MS, e2, sizeof(e2))) {
        rec_failed(m, "the source's migrate resume to %s: %s", m->rec_uri,
                   e2);
        return;
    }
    m->rec = REC_RESUMING;
    m->rec_back = false;
    m->rec_deadline = ts_now_ns() + RECOVER_STEP_MS * 1000000ull;
}

/*
 * One attempt, both sides paused: the destination listens on a fresh
 * socket (<sock>.rN, N counting every attempt of the migration), then
 * the source resumes towards it.  A destination still listening from the
 * attempt before (postcopy-recover) only needs the source to try again.
 */
static int rec_try(struct eng *m, const char *dst_st, char *err,
                   size_t errlen)
{
    char e2[TS_ERRLEN], what[TS_ERRLEN];

    if (m->rec_attempt == RECOVER_ATTEMPTS) {
        ts_fmt(what, sizeof(what), "%u attempts failed, the last: %s; "
               "xensim gives up after %u attempts a pause", m->rec_attempt,
               m->rec_why, RECOVER_ATTEMPTS);
        return rec_give_up(m, what, err, errlen);
    }
    m->rec_attempt++;
    m->rec_attempts++;
    if (!is_paused(dst_st)) {
        rec_say(m, "recovery attempt %u: the destination's xenram still "
                "listens on %s; migrate resume again", m->rec_attempt,
                m->rec_uri);
        rec_resume(m);
        return 0;
    }
    if (m->rec_sock[0])
        unlink(m->rec_sock);
    if ((size_t)ts_fmt(m->rec_sock, sizeof(m->rec_sock), "%s.r%u", m->sock,
                       m->rec_attempts) >= sizeof(m->rec_sock)) {
        m->rec_sock[0] = 0;
        ts_fmt(what, sizeof(what), "the recovery socket's path %s.r%u is "
               "too long for a unix socket", m->sock, m->rec_attempts);
        return rec_give_up(m, what, err, errlen);
    }
    snprintf(m->rec_uri, sizeof(m->rec_uri), "unix:%s", m->rec_sock);
    unlink(m->rec_sock);
    rec_say(m, "recovery attempt %u of %u: migrate-recover %s to the "
            "destination's xenram", m->rec_attempt, RECOVER_ATTEMPTS,
            m->rec_uri);
    if (ts_qmp_do(&m->dq, "migrate-recover",
                  json_pack("{s:s}", "uri", m->rec_uri), QMP_TIMEOUT_MS, e2,
                  sizeof(e2))) {
        m->rec_uri[0] = 0;
        rec_failed(m, "the destination's migrate-recover: %s", e2);
        return 0;
    }
    m->rec = REC_LISTEN;
    m->rec_deadline = ts_now_ns() + RECOVER_STEP_MS * 1000000ull;
    return 0;
}

/*
 * After the switch, each poll: the destination's status as well (a cut
 * may be noticed there first), the test hook, and a recovery's next step.
 * A destination that stops answering QMP is lost, and with it the guest.
 */
static int eng_postcopy_step(struct eng *m, json_t *sr, char *err,
                             size_t errlen)
{
    const char *st = jstr(sr, "status"), *dt;
    char e2[TS_ERRLEN], what[TS_ERRLEN];
    struct stat sb;
    json_t *dr;
    int rc = 0;

    dr = ts_qmp_exec(&m->dq, "query-migrate", NULL, -1, QMP_TIMEOUT_MS, e2,
                     sizeof(e2));
    if (!dr) {
        ts_seterr(err, errlen, "the destination's device model, which runs "
                  "the guest since the switch to postcopy, is gone, and the "
                  "guest is lost: %s", e2);
        ts_dm_explain(&m->ddm, err, errlen);
        return -EIO;
    }
    dt = jstr(dr, "status");
    if (!m->t_src_pc)
        m->t_src_pc = ts_now_ns();
    if (!m->t_dst_pc && !strcmp(dt, "postcopy-active"))
        m->t_dst_pc = ts_now_ns();
    /* Both: the source is postcopy-active from the switch, the
     * destination from RUN, and migrate-pause needs RUN. */
    if (strcmp(st, "postcopy-active") || strcmp(dt, "postcopy-active"))
        m->t_active = 0;
    else if (!m->t_active)
        m->t_active = ts_now_ns();

    if (m->rec == REC_NONE) {
        if (!is_paused(st) && !is_paused(dt)) {
            rec_hook(m);
            goto out;
        }
        rec_begin(m, sr, dr);
    }
    switch (m->rec) {
    case REC_NONE:
        break;
    case REC_PAUSED:
        if (is_paused(st) && (is_paused(dt) ||
                              (!strcmp(dt, "postcopy-recover") &&
                               m->rec_uri[0]))) {
            if (ts_now_ns() >= m->rec_not_before)
                rc = rec_try(m, dt, err, errlen);
        } else if (!ts_ms_left(m->rec_deadline)) {
            ts_fmt(what, sizeof(what), "after the link broke the source "
                   "said %s and the destination %s for %d s; both must be "
                   "postcopy-paused to recover", st, dt,
                   RECOVER_STEP_MS / 1000);
            rc = rec_give_up(m, what, err, errlen);
        }
        break;
    case REC_LISTEN:
        /* QEMU's destination says postcopy-paused until the source
         * connects, xenram's postcopy-recover: the socket tells. */
        if ((is_paused(dt) || !strcmp(dt, "postcopy-recover")) &&
            stat(m->rec_sock, &sb) == 0 && S_ISSOCK(sb.st_mode))
            rec_resume(m);
        else if (!ts_ms_left(m->rec_deadline))
            rec_failed(m, "the destination's xenram did not listen on %s "
                       "within %d s (it says %s: %s)", m->rec_sock,
                       RECOVER_STEP_MS / 1000, dt, why(dr));
        break;
    case REC_RESUMING:
        if (!m->rec_back && !strcmp(st, "postcopy-active")) {
            m->rec_back = true;
            m->recoveries++;
            rec_say(m, "postcopy recovered (attempt %u, through %s)",
                    m->rec_attempt, m->rec_uri);
        }
        if (m->rec_back && is_running_postcopy(dt)) {
            m->rec = REC_NONE;
        } else if (m->rec_back && (is_paused(st) || is_paused(dt))) {
            rec_begin(m, sr, dr);       /* a new cut */
        } else if (!m->rec_back && is_paused(st)) {
            rec_failed(m, "the source's xenram is postcopy-paused again: %s",
                       why(sr));
        } else if (!ts_ms_left(m->rec_deadline)) {
            ts_fmt(what, sizeof(what), "%d s after migrate resume to %s the "
                   "source says %s and the destination %s", RECOVER_STEP_MS /
                   1000, m->rec_uri, st, dt);
            rc = rec_give_up(m, what, err, errlen);
        }
        break;
    }
out:
    json_decref(dr);
    return rc;
}

/*
 * query-migrate every POLL_MS until completed, failed or cancelled; the
 * rows of the report from what it says.
 * Ctrl-C asks for migrate_cancel (once) and the watch goes on: xenram
 * resumes the source and says cancelled.
 */
static int eng_watch(struct eng *m, char *err, size_t errlen)
{
    for (;;) {
        json_t *r;
        const char *st;

        if (ts_interrupted && !m->cancel_sent) {
            char e2[TS_ERRLEN];

            m->cancel_sent = true;
            if (ts_qmp_do(&m->sq, "migrate_cancel", NULL, QMP_TIMEOUT_MS, e2,
                          sizeof(e2)))
                fprintf(stderr, "xensim: migrate_cancel: %s\n", e2);
        }
        r = ts_qmp_exec(&m->sq, "query-migrate", NULL, -1, QMP_TIMEOUT_MS,
                        err, errlen);
        if (!r) {
            char tmp[TS_ERRLEN];

            ts_progress_end(&m->prog);
            snprintf(tmp, sizeof(tmp), "the source's device model: %s", err);
            ts_seterr(err, errlen, "%s", tmp);
            return -EIO;
        }
        track(m, r);
        st = jstr(r, "status");
        /* A cut within a poll of the switch shows postcopy-paused first. */
        if (!strncmp(st, "postcopy-", 9))
            m->postcopy_seen = true;
        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            !strcmp(st, "cancelled")) {
            if (!strcmp(st, "completed") && m->rec == REC_RESUMING &&
                !m->rec_back)
                m->recoveries++;
            if (m->next_pause < m->e->npauses)
                rec_say(m, "test hook: %u --x-postcopy-pause entr%s not "
                        "sent: the migration was %s first",
                        m->e->npauses - m->next_pause,
                        m->e->npauses - m->next_pause == 1 ? "y" : "ies",
                        st);
            json_decref(m->final);
            m->final = r;
            ts_qm_track_end(&m->qm, r);
            ts_progress_end(&m->prog);
            if (!strcmp(st, "completed")) {
                m->completed = true;
                return 0;
            }
            ts_seterr(err, errlen, "the source's xenram reports %s: %s", st,
                      jstr(r, "error-desc")[0] ? jstr(r, "error-desc")
                                               : "(no error-desc)");
            return strcmp(st, "cancelled") ? -EIO : -ECANCELED;
        }
        if (m->e->postcopy && m->postcopy_seen) {
            int rc = eng_postcopy_step(m, r, err, errlen);

            if (rc) {
                json_decref(r);
                ts_progress_end(&m->prog);
                return rc;
            }
        }
        json_decref(r);
        wait_news(m);
    }
}

/*
 * The guest is on the destination.  Its xenram answers `inmigrate` until
 * its main loop has taken the engine's news; then `running` (it unpaused
 * the domain itself; libxl waits for xenstore's state = running) or, with
 * -S, `paused`: the digests are taken, then `cont` and the unpause are
 * the toolstack's, as libxl does for a dm_restrict device model.
 */
static int eng_receiver_resume(struct eng *m, char *err, size_t errlen)
{
    uint64_t deadline = ts_now_ns() + (uint64_t)m->dm_timeout * 1000000ull;
    struct xsim_dominfo di;
    char st[32] = "";
    int rc;

    for (;;) {
        rc = ts_qmp_status(&m->dq, st, sizeof(st), err, errlen);
        if (rc || strcmp(st, "inmigrate") || !ts_ms_left(deadline))
            break;
        if (ts_pidfd_exited(m->ddm.pidfd, 20))
            break;
    }
    if (rc == 0 && strcmp(st, m->dest_S ? "paused" : "running")) {
        ts_seterr(err, errlen, "the source says completed, but the incoming "
                  "device model reports status '%s', expected '%s'", st,
                  m->dest_S ? "paused" : "running");
        rc = -EPROTO;
    }
    if (rc == 0 && m->sums)
        rc = eng_take_sums(m, err, errlen);
    if (rc == 0 && m->dest_S && !m->o->pause_dest) {
        rc = ts_qmp_do(&m->dq, "cont", NULL, QMP_TIMEOUT_MS, err, errlen);
        if (rc == 0 && !m->was_paused) {
            rc = ts_dom_op(&m->dst, XSIM_OP_DOM_UNPAUSE, m->ddom);
            if (rc)
                ts_seterr(err, errlen, "unpausing d%u on %s: %s", m->ddom,
                          m->dst.dir, strerror(-rc));
        }
    }
    if (rc == 0 && (!m->dest_S || !m->o->pause_dest))
        rc = ts_dm_wait_running(&m->dst, m->ddom, &m->ddm, m->dm_timeout,
                                err, errlen);
    if (rc == 0 && !m->dest_S && ts_dominfo(&m->dst, m->ddom, &di) == 0 &&
        di.pause_count) {
        ts_seterr(err, errlen, "the incoming device model reports running, "
                  "but d%u on %s is still paused", m->ddom, m->dst.dir);
        rc = -EPROTO;
    }
    if (rc) {
        char tmp[TS_ERRLEN];

        ts_dm_explain(&m->ddm, err, errlen);
        snprintf(tmp, sizeof(tmp), "the destination's device model: %s", err);
        ts_seterr(err, errlen, "%s", tmp);
    }
    return rc;
}

static void report(struct eng *m)
{
    json_t *r = m->final, *ram = json_object_get(r, "ram");
    int channels = m->e->channels < 0 ? 2 : m->e->channels;

    printf("migrated d%u (%s) from %s to %s as d%u with xenram's engine\n",
           m->sdom, m->info.name, m->src->dir, m->dst.dir, m->ddom);
    printf("  channels    : %d%s\n", channels,
           m->e->zstd ? ", zstd" : ", no compression");
    if (m->e->postcopy) {
        json_t *x = json_object_get(r, "x-xenram-postcopy");

        printf("  postcopy    : %s; %.0f page requests, %.0f pages sent on "
               "request, %.0f in the background\n",
               m->postcopy_seen || x ? "switched" : "not reached (precopy "
               "completed first)", jnum(ram, "postcopy-requests"),
               jnum(x, "requested-pages"), jnum(x, "background-pages"));
        if (x)
            printf("  prepared    : %.0f pages paged out on the destination "
                   "ahead of the pause, in %.0f PREPARE%s, %.0f ms\n",
                   jnum(x, "prepared-pages"), jnum(x, "prepares"),
                   jnum(x, "prepares") == 1 ? "" : "s",
                   jnum(x, "prepare-ms"));
        if (m->rec_attempts > m->recoveries)
            printf("  recoveries  : %u (%u attempts)\n", m->recoveries,
                   m->rec_attempts);
        else
            printf("  recoveries  : %u\n", m->recoveries);
    }
    printf("  rounds      : %.0f (dirty-sync-count)\n",
           jnum(ram, "dirty-sync-count"));
    printf("  sent        : %.1f MiB (%.0f bytes), %.0f normal pages, "
           "%.0f zero pages\n", jnum(ram, "transferred") / (1 << 20),
           jnum(ram, "transferred"), jnum(ram, "normal"),
           jnum(ram, "duplicate"));
    if (m->t_src_pc && m->t_dst_pc) {
        /* QEMU's postcopy downtime ends when RUN is sent; the guest runs
         * again once the destination has handled LISTEN and RUN. */
        printf("  downtime    : %.0f ms (xenram: from the pause to RUN "
               "sent)\n", jnum(r, "downtime"));
        printf("  switchover  : %.0f ms, +-%d (the source postcopy-active "
               "to the destination: the guest ran on neither)\n",
               (double)(m->t_dst_pc - m->t_src_pc) / 1e6, POLL_MS);
    } else {
        printf("  downtime    : %.0f ms (xenram: from the pause to the "
               "destination's answer)\n", jnum(r, "downtime"));
    }
    printf("  total time  : %.3f s (xenram: %.0f ms, setup %.0f ms)\n",
           (double)(m->t_end - m->t_start) / 1e9, jnum(r, "total-time"),
           jnum(r, "setup-time"));
    if (m->sums_taken) {
        char h1[TS_DIGEST_HEX], h2[TS_DIGEST_HEX];

        printf("  memory      : source at switchover %s (%" PRIu64
               " pages), destination %s (%" PRIu64 " pages), %"
               PRIu64 " pages differ: %s\n", ts_digest_hex(m->src_sum, h1),
               m->src_pages, ts_digest_hex(m->dst_sum, h2), m->dst_pages,
               m->differ,
               ts_digest_equal(m->src_sum, m->dst_sum) &&
               m->src_pages == m->dst_pages && !m->differ ? "identical"
                                                          : "DIFFERENT");
    }
    if (m->o->pause_dest)
        printf("  destination : paused (its device model waits for cont)\n");
    ts_report_table(&m->rep, stdout);
}

/* Completed: the sender's copy goes (device model, domain, record). */
static void eng_sender_done(struct eng *m)
{
    char e2[TS_ERRLEN];
    int rc;

    ts_qmp_close(&m->sq);
    if (ts_dm_stop(&m->sdm, true, e2, sizeof(e2)))
        fprintf(stderr, "xensim: source: %s\n", e2);
    rc = ts_dom_op(m->src, XSIM_OP_DOM_DESTROY, m->sdom);
    if (rc)
        fprintf(stderr, "xensim: destroying d%u on the source: %s\n",
                m->sdom, strerror(-rc));
    ts_domcfg_remove(m->src->dir, m->sdom);
    m->t_end = ts_now_ns();
    if (!m->o->json)
        report(m);
}

/*
 * --json: ts-report's document, with a postcopy migration's own figures
 * added ("postcopy": whether it switched, the recoveries and their
 * attempts).
 */
static int eng_json(struct eng *m)
{
    char *buf = NULL;
    size_t len = 0;
    json_t *root = NULL;
    FILE *f;
    int rc;

    if (!m->e->postcopy)
        return ts_report_json(&m->rep, stdout);
    f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    rc = ts_report_json(&m->rep, f);
    fclose(f);
    if (rc == 0)
        root = json_loadb(buf, len, 0, NULL);
    free(buf);
    if (!root)
        return rc ? rc : -EIO;
    json_object_set_new(root, "postcopy",
                        json_pack("{s:b,s:I,s:I}", "switched",
                                  m->postcopy_seen, "recoveries",
                                  (json_int_t)m->recoveries,
                                  "recovery_attempts",
                                  (json_int_t)m->rec_attempts));
    rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(root);
    return rc ? -EIO : 0;
}

/*
 * --json and --report, whatever the outcome (a failed migration's rounds
 * are worth a look too).  A report that cannot be written is said; the
 * migration's outcome stays what it was.
 */
static void eng_reports(struct eng *m, int rc, const char *err)
{
    char e2[TS_ERRLEN];

    m->rep.engine = "xenram";
    m->rep.src = m->src->dir;
    m->rep.dst = m->dst.dir;
    m->rep.domid = m->sdom;
    m->rep.dest_domid = m->ddom;
    snprintf(m->rep.name, sizeof(m->rep.name), "%s", m->info.name);
    m->rep.status = rc == 0 ? "completed" : rc == -ECANCELED ? "cancelled"
                                                             : "failed";
    m->rep.error = rc ? err : NULL;
    if (m->o->json && eng_json(m))
        fprintf(stderr, "xensim: writing the JSON report failed\n");
    if (m->o->report_svg && ts_report_svg(&m->rep, m->o->report_svg, e2,
                                          sizeof(e2)))
        fprintf(stderr, "xensim: %s\n", e2);
}

/*
 * A phase failed: the destination goes (its xenram, which exits 1 on its
 * own after a failed incoming migration, then the domain and its record).
 * Before `completed` xenram has resumed the source; a destination that
 * fails after it means the source's xenram is asked to run again (`cont`)
 * and the domain unpaused, once nothing of the destination is left.
 */
static int eng_abort(struct eng *m, int rc, char *err, size_t errlen)
{
    char e2[TS_ERRLEN], tmp[TS_ERRLEN];
    struct xsim_dominfo di;

    /* Recovery given up: each side holds part of the guest (@err says). */
    if (m->keep_both)
        return rc;
    if (m->migrating && !m->final && m->sq.fd >= 0)
        ts_qmp_do(&m->sq, "migrate_cancel", NULL, QMP_TIMEOUT_MS, e2,
                  sizeof(e2));
    if (m->ddm.pid) {
        ts_qmp_close(&m->dq);
        ts_dm_stop(&m->ddm, false, e2, sizeof(e2));
    }
    if (m->ddom) {
        ts_dom_op(&m->dst, XSIM_OP_DOM_DESTROY, m->ddom);
        ts_domcfg_remove(m->dst.dir, m->ddom);
    }
    if (m->completed) {
        if (ts_qmp_do(&m->sq, "cont", NULL, QMP_TIMEOUT_MS, e2, sizeof(e2)))
            fprintf(stderr, "xensim: resuming the source's device model: "
                    "%s\n", e2);
        if (!m->was_paused)
            ts_dom_op(m->src, XSIM_OP_DOM_UNPAUSE, m->sdom);
    }
    if (!m->ddom)
        return rc;
    /* Past the switch to postcopy the source stays paused on purpose
     * (its copy is stale once RUN went out; xenram's error says so). */
    if (m->postcopy_seen)
        ts_fmt(tmp, sizeof(tmp), "%s\nxensim: d%u destroyed on %s; d%u "
               "stays paused on %s", err, m->ddom, m->dst.dir, m->sdom,
               m->src->dir);
    else
        ts_fmt(tmp, sizeof(tmp), "%s\nxensim: d%u destroyed on %s; d%u "
               "still runs on %s", err, m->ddom, m->dst.dir, m->sdom,
               m->src->dir);
    ts_seterr(err, errlen, "%s", tmp);
    /* What xenram promises of the source; said when it does not hold. */
    if (ts_dominfo(m->src, m->sdom, &di) == 0) {
        if (di.pause_count > (m->was_paused ? 1u : 0u) && !m->postcopy_seen)
            fprintf(stderr, "xensim: warning: d%u is still paused (pause "
                    "count %u) after the failed migration\n", m->sdom,
                    di.pause_count);
        if (di.flags & XSIM_DOMF_LOGDIRTY)
            fprintf(stderr, "xensim: warning: log-dirty is still on for "
                    "d%u after the failed migration\n", m->sdom);
    }
    return rc;
}

static void eng_cleanup(struct eng *m)
{
    if (m->sock[0])
        unlink(m->sock);
    /* The recovery sockets, but the one a kept destination may listen on. */
    if (m->rec_sock[0] && !m->keep_both)
        unlink(m->rec_sock);
    if (m->sums)
        fclose(m->sums);
    json_decref(m->final);
    ts_report_free(&m->rep);
    ts_qmp_close(&m->sq);
    ts_qmp_close(&m->dq);
    ts_dm_release(&m->sdm);
    ts_dm_release(&m->ddm);
    if (m->have_cfg)
        ts_domcfg_free(&m->cfg);
    ts_host_close(&m->dst);
}

static int (*const eng_phases[])(struct eng *m, char *err, size_t errlen) = {
    eng_setup,
    eng_create_receiver,
    eng_receiver_dm,
    eng_start,
    eng_watch,
    eng_receiver_resume,
};

int ts_migrate_engine(struct ts_host *src, uint32_t domid,
                      const struct ts_migrate_opts *o,
                      const struct ts_engine_opts *e, char *err,
                      size_t errlen)
{
    struct eng mm = { .src = src, .sdom = domid, .o = o, .e = e }, *m = &mm;
    struct ts_sigsave sigs;
    int rc = 0;

    m->dst.fd = -1;
    m->sdm.pidfd = m->ddm.pidfd = -1;
    m->sq.fd = m->dq.fd = -1;
    m->dm_timeout = o->dm_timeout_ms > 0 ? o->dm_timeout_ms
                                         : DM_START_TIMEOUT_MS;
    m->t_start = ts_now_ns();
    ts_qm_init(&m->qm, &m->rep);
    ts_progress_init(&m->prog, o->progress, o->force_progress);
    if (o->report_svg) {
        rc = ts_report_check_path(o->report_svg, err, errlen);
        if (rc)
            return rc;
    }
    ts_interrupt_catch(&sigs);

    for (size_t i = 0; rc == 0 && i < sizeof(eng_phases) /
                                       sizeof(eng_phases[0]); i++)
        rc = eng_phases[i](m, err, errlen);
    ts_progress_end(&m->prog);
    if (rc == 0)
        eng_sender_done(m);
    else
        rc = eng_abort(m, rc, err, errlen);
    if (m->t_migrate)
        eng_reports(m, rc, err);

    eng_cleanup(m);
    ts_interrupt_restore(&sigs);
    return rc;
}
