/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-report.c - the progress line, the per-round table, --json and
 * --report FILE.svg of `xensim migrate` (ts-report.h).  The SVG is
 * written by hand: a few elements, escaped text, numbers printed in the C
 * locale with fixed precision, so the same report gives the same bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "xen/sim/toolstack-internal.h"
#include "xen/sim/ts-report.h"

/* Samples kept for the over-time plot; beyond it every other one goes. */
#define MAX_SAMPLES 2048

/* ---- collecting ------------------------------------------------------------ */

struct ts_round *ts_report_round(struct ts_report *rep)
{
    struct ts_round *r;

    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? 2 * rep->cap : 16;
        struct ts_round *n = realloc(rep->r, cap * sizeof(*n));

        if (!n)
            return NULL;
        rep->r = n;
        rep->cap = cap;
    }
    r = &rep->r[rep->n++];
    memset(r, 0, sizeof(*r));
    r->dirty_rate = r->remaining = r->expected_downtime_ms = TS_UNKNOWN;
    return r;
}

void ts_report_sample(struct ts_report *rep, double t_ms, unsigned round,
                      double bandwidth, double remaining)
{
    if (!rep->sstride)
        rep->sstride = 1;
    if (rep->sskip++ % rep->sstride)
        return;
    if (rep->ns == MAX_SAMPLES) {
        /* Halve: every other sample, and keep one in twice as many. */
        for (size_t i = 0; i < rep->ns / 2; i++)
            rep->s[i] = rep->s[2 * i];
        rep->ns /= 2;
        rep->sstride *= 2;
    }
    if (rep->ns == rep->scap) {
        size_t cap = rep->scap ? 2 * rep->scap : 64;
        struct ts_sample *n = realloc(rep->s, cap * sizeof(*n));

        if (!n)
            return;
        rep->s = n;
        rep->scap = cap;
    }
    rep->s[rep->ns++] = (struct ts_sample){ t_ms, round, bandwidth,
                                            remaining };
}

void ts_report_free(struct ts_report *rep)
{
    free(rep->r);
    free(rep->s);
    rep->r = NULL;
    rep->s = NULL;
    rep->n = rep->cap = rep->ns = rep->scap = 0;
}

double ts_eta_s(double remaining, double bandwidth, double dirty_rate,
                unsigned rounds_left)
{
    double q, t, sum = 0, term = 1;

    if (remaining < 0 || bandwidth <= 0)
        return TS_UNKNOWN;
    t = remaining / (bandwidth * 1024 * 1024);
    q = dirty_rate > 0 ? dirty_rate / bandwidth : 0;
    if (rounds_left == UINT32_MAX)
        return q < 1 ? t / (1 - q) : TS_UNKNOWN;
    /* This round, then each later one sends what the last one took
     * times q. */
    for (unsigned k = 0; k <= rounds_left && term > 1e-6; k++) {
        sum += term;
        term *= q;
    }
    return t * sum;
}

/* ---- reading query-migrate (xenram's engine) ------------------------------------ */

/* query-migrate counts x86 pages. */
#define PAGE ((double)XSIM_PAGE_SIZE)

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

/*
 * What one query-migrate says, for the rows.  Its figures are those of
 * xenram's last update: inside a round every 100 ms (remaining = the
 * round's pages not yet taken, dirty-pages-rate 0), and at each round's
 * end (remaining = what the round left dirty, dirty-pages-rate its rate,
 * > 0 unless nothing was dirtied).  query-migrate does not say which it
 * is; a dirty rate or nothing remaining is taken as a round's end.
 */
static void snap_of(json_t *r, double t_ms, struct ts_qm_snap *s)
{
    json_t *ram = json_object_get(r, "ram");
    json_t *ed = json_object_get(r, "expected-downtime");

    s->t_ms = t_ms;
    s->round = (unsigned)jnum(ram, "dirty-sync-count");
    s->pages = jnum(ram, "normal") + jnum(ram, "duplicate");
    s->bytes = jnum(ram, "transferred");
    s->total = jnum(ram, "total");
    s->remaining = jnum(ram, "remaining");
    s->dirty_rate = jnum(ram, "dirty-pages-rate");
    s->mbps = jnum(ram, "mbps");
    s->expdown = json_is_number(ed) ? json_number_value(ed) : TS_UNKNOWN;
    s->throttle = (unsigned)jnum(r, "cpu-throttle-percentage");
    s->end = s->round > 0 && (s->dirty_rate > 0 || s->remaining == 0);
}

static double mibps_of_mbps(double mbps)
{
    return mbps * 1e6 / 8 / (1024 * 1024);
}

/* The row of rounds row_first..cur, from m->row0 to @e. */
static void close_row(struct ts_qm *m, const struct ts_qm_snap *e,
                      bool final)
{
    struct ts_round *r = ts_report_round(m->rep);

    if (!r)
        return;
    r->first = m->row_first;
    r->last = m->cur;
    r->paused = final;
    r->pages = (uint64_t)(e->pages - m->row0.pages);
    r->bytes = (uint64_t)(e->bytes - m->row0.bytes);
    r->start_ms = m->row0.t_ms;
    r->ms = e->t_ms - m->row0.t_ms;
    r->bandwidth = r->ms > 0 ? ts_mib((double)r->bytes) * 1000 / r->ms : 0;
    if (final) {
        /* The guest was paused: nothing dirtied, nothing left. */
        r->dirty_rate = 0;
        r->remaining = 0;
    } else if (e->end) {
        r->dirty_rate = ts_mib(e->dirty_rate * PAGE);
        r->remaining = e->remaining;
        r->expected_downtime_ms = e->expdown;
    }
    r->throttle_pct = e->throttle;
}

void ts_qm_init(struct ts_qm *m, struct ts_report *rep)
{
    memset(m, 0, sizeof(*m));
    m->rep = rep;
    rep->normal_pages = rep->zero_pages = TS_UNKNOWN;
    rep->total_ms = rep->setup_ms = rep->downtime_ms = TS_UNKNOWN;
}

void ts_qm_track(struct ts_qm *m, json_t *r, double t_ms, struct ts_live *out)
{
    const char *st = jstr(r, "status");
    struct ts_live l = { .pct = TS_UNKNOWN };
    struct ts_qm_snap s;

    snap_of(r, t_ms, &s);
    if (s.round > m->cur) {
        if (m->cur >= 1) {
            close_row(m, &m->last, false);
            m->row0 = m->last;
            m->plan = m->last.end ? m->last.remaining / PAGE : 0;
        } else {
            memset(&m->row0, 0, sizeof(m->row0));
            m->plan = s.total / PAGE;
        }
        m->row_first = m->cur + 1;
        m->cur = s.round;
    }
    if (s.end && s.dirty_rate > 0)
        m->dirty_mibps = ts_mib(s.dirty_rate * PAGE);
    if (s.throttle > m->rep->max_throttle_pct)
        m->rep->max_throttle_pct = s.throttle;
    if (!s.end && s.remaining / PAGE > m->plan)
        m->plan = s.remaining / PAGE;
    /* The same figures again: xenram did not update them, the round's
     * end (or the last update) stays when it was first seen. */
    if (s.round != m->last.round || s.pages != m->last.pages ||
        s.bytes != m->last.bytes || s.remaining != m->last.remaining ||
        strcmp(st, "completed") == 0)
        m->last = s;
    if (s.round)
        ts_report_sample(m->rep, s.t_ms, s.round, mibps_of_mbps(s.mbps),
                         s.remaining);

    /* Before its first update round 1 has everything left. */
    l.round = s.round ? s.round : 1;
    l.phase = !strcmp(st, "active") ? "" : !strcmp(st, "device") ||
              !strcmp(st, "pre-switchover") ? "switchover" : st;
    l.remaining = s.round ? s.remaining : s.total > 0 ? s.total : TS_UNKNOWN;
    if (s.end || !strcmp(st, "completed"))
        l.pct = 100;
    else if (!s.round && s.total > 0)
        l.pct = 0;
    else if (m->plan > 0)
        l.pct = fmax(0, fmin(100, 100 * (1 - l.remaining / PAGE /
                                         m->plan)));
    l.bandwidth = s.round ? mibps_of_mbps(s.mbps) : TS_UNKNOWN;
    l.expected_downtime_ms = s.round ? s.expdown : TS_UNKNOWN;
    l.eta_s = ts_eta_s(l.remaining, l.bandwidth, m->dirty_mibps, UINT32_MAX);
    *out = l;
}

void ts_qm_track_end(struct ts_qm *m, json_t *r)
{
    json_t *ram = json_object_get(r, "ram");
    json_t *dt = json_object_get(r, "downtime");

    if (m->cur >= 1 && !strcmp(jstr(r, "status"), "completed"))
        close_row(m, &m->last, true);
    else if (m->cur >= 1)
        close_row(m, &m->last, false);
    m->rep->rounds = m->cur;
    m->rep->pages = (uint64_t)m->last.pages;
    m->rep->bytes = (uint64_t)m->last.bytes;
    m->rep->normal_pages = jnum(ram, "normal");
    m->rep->zero_pages = jnum(ram, "duplicate");
    m->rep->guest_pages = (uint64_t)(jnum(ram, "total") / PAGE);
    m->rep->total_ms = jnum(r, "total-time");
    m->rep->setup_ms = jnum(r, "setup-time");
    m->rep->downtime_ms = json_is_number(dt) ? json_number_value(dt)
                                            : TS_UNKNOWN;
}

/* ---- the line ---------------------------------------------------------------- */

void ts_progress_init(struct ts_progress *p, bool show, bool force)
{
    memset(p, 0, sizeof(*p));
    p->tty = show && isatty(STDERR_FILENO);
    p->lines = !p->tty && force;
}

bool ts_progress_on(const struct ts_progress *p)
{
    return p->tty || p->lines;
}

static void fmt_figure(char *buf, size_t len, double v, const char *fmt,
                       const char *unit)
{
    if (v < 0 || !isfinite(v))
        snprintf(buf, len, "-");
    else {
        int n = snprintf(buf, len, fmt, v);

        if (n > 0 && (size_t)n < len)
            snprintf(buf + n, len - (size_t)n, "%s", unit);
    }
}

void ts_progress_show(struct ts_progress *p, const struct ts_live *l)
{
    const char *phase = l->phase && l->phase[0] ? l->phase : "";
    uint64_t now = ts_now_ns(), since = now - p->last_ns;
    bool changed = l->round != p->last_round ||
                   strcmp(phase, p->last_phase) != 0;
    char of[16] = "", pct[16], bw[24], left[24], down[24], eta[24];
    char line[200];

    if (!ts_progress_on(p))
        return;
    bool done = l->pct >= 100 && l->round != p->done_round;

    if (p->last_ns) {
        if (p->tty && !changed && since < 100000000ull)
            return;
        if (p->lines && !(strcmp(phase, p->last_phase) ||
                          (done && since >= 200000000ull) ||
                          since >= 1000000000ull))
            return;
    }
    if (done)
        p->done_round = l->round;
    if (l->of)
        snprintf(of, sizeof(of), " of %u", l->of);
    fmt_figure(pct, sizeof(pct), l->pct, "%.0f", "%");
    fmt_figure(bw, sizeof(bw), l->bandwidth, "%.1f", " MiB/s");
    fmt_figure(left, sizeof(left), l->remaining < 0 ? -1
               : ts_mib(l->remaining), "%.1f", " MiB");
    fmt_figure(down, sizeof(down), l->expected_downtime_ms, "%.0f", " ms");
    fmt_figure(eta, sizeof(eta), l->eta_s, "%.1f", " s");
    snprintf(line, sizeof(line), "%s%sround %u%s: %4s, %s, %s left, "
             "expected downtime %s, ETA %s", phase, phase[0] ? " " : "",
             l->round, of, pct, bw, left, down, eta);
    if (p->tty) {
        fprintf(stderr, "\r%s\033[K", line);
        p->open = true;
    } else {
        fprintf(stderr, "progress: %s\n", line);
    }
    fflush(stderr);
    p->last_ns = now;
    p->last_round = l->round;
    snprintf(p->last_phase, sizeof(p->last_phase), "%s", phase);
}

void ts_progress_end(struct ts_progress *p)
{
    if (p->open) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->open = false;
}

void ts_progress_say(struct ts_progress *p, const char *fmt, ...)
{
    va_list ap;

    if (!ts_progress_on(p))
        return;
    ts_progress_end(p);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* ---- the table --------------------------------------------------------------- */

static void round_label(const struct ts_round *r, char *buf, size_t len)
{
    if (r->first < r->last)
        snprintf(buf, len, "%u-%u", r->first, r->last);
    else
        snprintf(buf, len, "%u", r->last);
}

void ts_report_table(const struct ts_report *rep, FILE *f)
{
    fprintf(f, "  %-9s %9s %9s %12s %9s %9s %14s\n", "round", "pages",
            "MiB", "dirty MiB/s", "time ms", "MiB/s", "remaining MiB");
    for (size_t i = 0; i < rep->n; i++) {
        const struct ts_round *r = &rep->r[i];
        char lab[32], dr[24], rem[24];

        round_label(r, lab, sizeof(lab));
        if (r->paused)
            strncat(lab, " final", sizeof(lab) - strlen(lab) - 1);
        fmt_figure(dr, sizeof(dr), r->dirty_rate, "%.1f", "");
        fmt_figure(rem, sizeof(rem), r->remaining < 0 ? -1
                   : ts_mib(r->remaining), "%.1f", "");
        fprintf(f, "  %-9s %9" PRIu64 " %9.1f %12s %9.1f %9.1f %14s\n", lab,
                r->pages, ts_mib((double)r->bytes), dr, r->ms, r->bandwidth,
                rem);
    }
    fprintf(f, "  %-9s %9" PRIu64 " %9.1f %12s %9.1f %9.1f\n", "total",
            rep->pages, ts_mib((double)rep->bytes), "",
            rep->total_ms < 0 ? 0 : rep->total_ms,
            rep->total_ms > 0 ? ts_mib((double)rep->bytes) * 1000 /
                                rep->total_ms : 0);
    if (rep->max_throttle_pct)
        fprintf(f, "  throttle    : vCPUs capped at up to %u%% "
                "(auto-converge)\n", rep->max_throttle_pct);
}

/* ---- JSON ---------------------------------------------------------------------- */

/* Three decimals: enough for ms and MiB, and the same text every time. */
static json_t *jreal(double v)
{
    if (v < 0 || !isfinite(v))
        return json_null();
    return json_real(round(v * 1000) / 1000);
}

int ts_report_json(const struct ts_report *rep, FILE *f)
{
    json_t *root, *rounds = json_array(), *tot;
    int rc;

    for (size_t i = 0; i < rep->n; i++) {
        const struct ts_round *r = &rep->r[i];

        json_array_append_new(rounds, json_pack(
            "{s:I,s:I,s:b,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I}",
            "round", (json_int_t)r->last,
            "first_round", (json_int_t)r->first,
            "final", r->paused,
            "pages", (json_int_t)r->pages,
            "bytes", (json_int_t)r->bytes,
            "mib", jreal(ts_mib((double)r->bytes)),
            "start_ms", jreal(r->start_ms),
            "time_ms", jreal(r->ms),
            "bandwidth_mibps", jreal(r->bandwidth),
            "dirty_rate_mibps", jreal(r->dirty_rate),
            "remaining_bytes", r->remaining < 0 ? json_null()
                : json_integer((json_int_t)r->remaining),
            "remaining_mib", jreal(r->remaining < 0 ? -1
                                   : ts_mib(r->remaining)),
            "expected_downtime_ms", jreal(r->expected_downtime_ms),
            "throttle_pct", (json_int_t)r->throttle_pct));
    }
    tot = json_pack("{s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I}",
                    "rounds", (json_int_t)rep->rounds,
                    "pages", (json_int_t)rep->pages,
                    "bytes", (json_int_t)rep->bytes,
                    "mib", jreal(ts_mib((double)rep->bytes)),
                    "normal_pages", rep->normal_pages < 0 ? json_null()
                        : json_integer((json_int_t)rep->normal_pages),
                    "zero_pages", rep->zero_pages < 0 ? json_null()
                        : json_integer((json_int_t)rep->zero_pages),
                    "time_ms", jreal(rep->total_ms),
                    "setup_ms", jreal(rep->setup_ms),
                    "downtime_ms", jreal(rep->downtime_ms),
                    "bandwidth_mibps", jreal(rep->total_ms > 0
                        ? ts_mib((double)rep->bytes) * 1000 / rep->total_ms
                        : -1),
                    "max_throttle_pct", (json_int_t)rep->max_throttle_pct,
                    "devstate_bytes", (json_int_t)rep->devstate_bytes);
    root = json_pack("{s:s,s:s,s:{s:I,s:s,s:I},s:s,s:s,s:I,s:o,s:o}",
                     "engine", rep->engine,
                     "status", rep->status ? rep->status : "completed",
                     "domain", "domid", (json_int_t)rep->domid,
                     "name", rep->name,
                     "dest_domid", (json_int_t)rep->dest_domid,
                     "source", rep->src ? rep->src : "",
                     "destination", rep->dst ? rep->dst : "",
                     "guest_pages", (json_int_t)rep->guest_pages,
                     "rounds", rounds, "totals", tot);
    if (!root)
        return -ENOMEM;
    if (rep->error && rep->error[0])
        json_object_set_new(root, "error", json_string(rep->error));
    rc = json_dumpf(root, f, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    fputc('\n', f);
    fflush(f);
    json_decref(root);
    return rc ? -EIO : 0;
}

/* ---- SVG ------------------------------------------------------------------------- */

#define SVG_W       860
#define PANEL_H     300
#define MARGIN_L    78
#define MARGIN_R    88
#define TITLE_H     70
#define GAP_H       70
#define PLOT_W      (SVG_W - MARGIN_L - MARGIN_R)

#define COL_BW      "#1f77b4"
#define COL_DIRTY   "#d62728"
#define COL_LEFT    "#2ca02c"

/* XML text: the five specials escaped, control characters dropped (not
 * allowed in XML 1.0). */
static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n')
                fputc(c, f);
        }
    }
}

/* A step of 1, 2 or 5 times a power of ten giving about @n ticks. */
static double nice_step(double max, int n)
{
    double raw = max / n, p, m;

    if (raw <= 0 || !isfinite(raw))
        return 1;
    p = pow(10, floor(log10(raw)));
    m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* The top of an axis: a whole number of steps covering @max. */
static double axis_top(double max, double *step)
{
    if (max <= 0 || !isfinite(max))
        max = 1;
    *step = nice_step(max, 5);
    return ceil(max / *step - 1e-9) * *step;
}

struct panel {
    double y0;                  /* top of the plot area */
    double xmax, lmax, rmax;    /* axis ranges (x from 0 or 1) */
    double xmin;
};

static double px(const struct panel *p, double x)
{
    double span = p->xmax - p->xmin;

    return MARGIN_L + (span > 0 ? (x - p->xmin) / span * PLOT_W : PLOT_W / 2.0);
}

static double py(const struct panel *p, double v, double max)
{
    return p->y0 + PANEL_H - (max > 0 ? v / max * PANEL_H : 0);
}

/* Axes, grid, ticks and labels of a panel. */
static void svg_axes(FILE *f, const struct panel *p, double lstep,
                     double rstep, const char *xlabel, const char *llabel,
                     const char *rlabel)
{
    double x0 = MARGIN_L, x1 = MARGIN_L + PLOT_W, yb = p->y0 + PANEL_H;

    fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%d\" "
            "fill=\"none\" stroke=\"#444\"/>\n", MARGIN_L, p->y0, PLOT_W,
            PANEL_H);
    for (int i = 0; i * lstep <= p->lmax + lstep / 2; i++) {
        double v = i * lstep, y = py(p, v, p->lmax);

        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n", x0, y, x1, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g"
                "</text>\n", x0 - 6, y + 4, v);
    }
    for (int i = 0; i * rstep <= p->rmax + rstep / 2; i++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"" COL_LEFT "\">%g"
                "</text>\n", x1 + 6, py(p, i * rstep, p->rmax) + 4,
                i * rstep);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            x0 + PLOT_W / 2.0, yb + 40);
    xml_text(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(%.1f %.1f) "
            "rotate(-90)\" text-anchor=\"middle\">", x0 - 50,
            p->y0 + PANEL_H / 2.0);
    xml_text(f, llabel);
    fprintf(f, "</text>\n<text transform=\"translate(%.1f %.1f) "
            "rotate(90)\" text-anchor=\"middle\" fill=\"" COL_LEFT "\">",
            x1 + 60, p->y0 + PANEL_H / 2.0);
    xml_text(f, rlabel);
    fputs("</text>\n", f);
}

static void svg_legend(FILE *f, double x, double y)
{
    static const struct { const char *col, *dash, *text; } items[] = {
        { COL_BW, "", "bandwidth (MiB/s)" },
        { COL_DIRTY, "", "dirty rate (MiB/s)" },
        { COL_LEFT, " stroke-dasharray=\"6 3\"", "remaining (MiB, right)" },
    };

    fprintf(f, "<g class=\"legend\">\n");
    for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
        double yy = y + 16.0 * (double)i;

        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"2\"%s/>\n", x, yy, x + 22, yy,
                items[i].col, items[i].dash);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 28, yy + 4,
                items[i].text);
    }
    fprintf(f, "</g>\n");
}

/* One series: a polyline through the known points and a marked point for
 * each, with a tooltip.  Unknown values (< 0) have no point. */
struct series {
    const char *cls, *col, *dash, *what, *unit;
    double max;
};

static void svg_series(FILE *f, const struct panel *p,
                       const struct series *s, size_t n,
                       double (*xy)(const void *, size_t, double *, char *,
                                    size_t),
                       const void *ctx)
{
    char lab[32];
    bool any = false;

    fprintf(f, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"2\"%s points=\"", s->cls, s->col, s->dash);
    for (size_t i = 0; i < n; i++) {
        double x, v = xy(ctx, i, &x, lab, sizeof(lab));

        if (v < 0)
            continue;
        fprintf(f, "%s%.1f,%.1f", any ? " " : "", px(p, x), py(p, v, s->max));
        any = true;
    }
    fputs("\"/>\n", f);
    for (size_t i = 0; i < n; i++) {
        double x, v = xy(ctx, i, &x, lab, sizeof(lab));

        if (v < 0)
            continue;
        fprintf(f, "<circle class=\"pt %s\" cx=\"%.1f\" cy=\"%.1f\" "
                "r=\"%s\" fill=\"%s\"><title>%s %s: %.1f %s</title></circle>\n",
                s->cls, px(p, x), py(p, v, s->max), n > 64 ? "1.5" : "3.5",
                s->col, lab, s->what, v, s->unit);
    }
}

struct rctx {
    const struct ts_report *rep;
    int which;                  /* 0 bandwidth, 1 dirty rate, 2 remaining */
};

static double round_xy(const void *c, size_t i, double *x, char *lab,
                       size_t len)
{
    const struct rctx *rc = c;
    const struct ts_round *r = &rc->rep->r[i];
    char num[24];

    *x = (double)(i + 1);
    round_label(r, num, sizeof(num));
    snprintf(lab, len, "round %s%s", num, r->paused ? " (final)" : "");
    switch (rc->which) {
    case 0: return r->bandwidth;
    case 1: return r->dirty_rate;
    default: return r->remaining < 0 ? -1 : ts_mib(r->remaining);
    }
}

static double sample_xy(const void *c, size_t i, double *x, char *lab,
                        size_t len)
{
    const struct rctx *rc = c;
    const struct ts_sample *s = &rc->rep->s[i];

    *x = s->t_ms / 1000;
    snprintf(lab, len, "%.3f s, round %u", *x, s->round);
    return rc->which == 0 ? s->bandwidth
                          : s->remaining < 0 ? -1 : ts_mib(s->remaining);
}

static void svg_write(const struct ts_report *rep, FILE *f)
{
    bool timeline = rep->ns >= 2;
    int h = TITLE_H + PANEL_H + GAP_H + (timeline ? PANEL_H + GAP_H : 0);
    double lmax = 0, rmax = 0, lstep, rstep;
    struct panel p = { .y0 = TITLE_H, .xmin = 0.5,
                       .xmax = (double)rep->n + 0.5 };
    char buf[512];

    for (size_t i = 0; i < rep->n; i++) {
        lmax = fmax(lmax, fmax(rep->r[i].bandwidth, rep->r[i].dirty_rate));
        rmax = fmax(rmax, ts_mib(rep->r[i].remaining));
    }
    p.lmax = axis_top(lmax, &lstep);
    p.rmax = axis_top(rmax, &rstep);

    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
            "font-size=\"12\">\n", SVG_W, h, SVG_W, h);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    snprintf(buf, sizeof(buf), "Migration of d%u (%s) with %s: %s", rep->domid,
             rep->name, strcmp(rep->engine, "xenram") ? "libxc's way"
                                                      : "xenram's engine",
             rep->status ? rep->status : "completed");
    fputs("<title>", f);
    xml_text(f, buf);
    fputs("</title>\n<text x=\"430\" y=\"24\" text-anchor=\"middle\" "
          "font-size=\"16\" font-weight=\"bold\">", f);
    xml_text(f, buf);
    snprintf(buf, sizeof(buf), "%s to %s: %u rounds, %.1f MiB in %.3f s "
             "(%.1f MiB/s), downtime %.1f ms%s", rep->src ? rep->src : "",
             rep->dst ? rep->dst : "", rep->rounds, ts_mib((double)rep->bytes),
             rep->total_ms > 0 ? rep->total_ms / 1000 : 0,
             rep->total_ms > 0 ? ts_mib((double)rep->bytes) * 1000 /
                                 rep->total_ms : 0,
             rep->downtime_ms > 0 ? rep->downtime_ms : 0,
             rep->max_throttle_pct ? ", throttled" : "");
    fputs("</text>\n<text x=\"430\" y=\"44\" text-anchor=\"middle\">", f);
    xml_text(f, buf);
    fputs("</text>\n", f);

    /* Per round. */
    fprintf(f, "<g class=\"per-round\">\n<text x=\"%d\" y=\"%.1f\" "
            "font-weight=\"bold\">per round</text>\n", MARGIN_L, p.y0 - 8);
    svg_axes(f, &p, lstep, rstep, "round", "MiB/s", "remaining MiB");
    for (size_t i = 0; i < rep->n; i++) {
        char lab[32];

        round_label(&rep->r[i], lab, sizeof(lab));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s%s"
                "</text>\n", px(&p, (double)(i + 1)), p.y0 + PANEL_H + 16,
                lab, rep->r[i].paused ? "*" : "");
    }
    {
        const struct series s[] = {
            { "bandwidth", COL_BW, "", "bandwidth", "MiB/s", p.lmax },
            { "dirty", COL_DIRTY, "", "dirty rate", "MiB/s", p.lmax },
            { "remaining", COL_LEFT, " stroke-dasharray=\"6 3\"",
              "remaining", "MiB", p.rmax },
        };

        for (int k = 0; k < 3; k++) {
            struct rctx c = { rep, k };

            svg_series(f, &p, &s[k], rep->n, round_xy, &c);
        }
    }
    svg_legend(f, MARGIN_L + PLOT_W - 170, p.y0 + 16);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
            "fill=\"#666\">* the final round, guest paused</text>\n</g>\n",
            MARGIN_L + PLOT_W, p.y0 + PANEL_H + 40);

    /* Over time, from the samples. */
    if (timeline) {
        struct panel q = { .y0 = TITLE_H + PANEL_H + GAP_H, .xmin = 0 };
        double tstep, bmax = 0, smax = 0;

        for (size_t i = 0; i < rep->ns; i++) {
            bmax = fmax(bmax, rep->s[i].bandwidth);
            smax = fmax(smax, ts_mib(rep->s[i].remaining));
        }
        q.xmax = axis_top(rep->s[rep->ns - 1].t_ms / 1000, &tstep);
        q.lmax = axis_top(bmax, &lstep);
        q.rmax = axis_top(smax, &rstep);
        fprintf(f, "<g class=\"over-time\">\n<text x=\"%d\" y=\"%.1f\" "
                "font-weight=\"bold\">over time (%zu samples)</text>\n",
                MARGIN_L, q.y0 - 8, rep->ns);
        svg_axes(f, &q, lstep, rstep, "time (s)", "bandwidth MiB/s",
                 "remaining MiB");
        for (int i = 0; i * tstep <= q.xmax + tstep / 2; i++)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">"
                    "%g</text>\n", px(&q, i * tstep), q.y0 + PANEL_H + 16,
                    i * tstep);
        {
            const struct series s[] = {
                { "t-bandwidth", COL_BW, "", "bandwidth", "MiB/s", q.lmax },
                { "t-remaining", COL_LEFT, " stroke-dasharray=\"6 3\"",
                  "remaining", "MiB", q.rmax },
            };
            struct rctx c0 = { rep, 0 }, c2 = { rep, 2 };

            svg_series(f, &q, &s[0], rep->ns, sample_xy, &c0);
            svg_series(f, &q, &s[1], rep->ns, sample_xy, &c2);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
}

int ts_report_check_path(const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        ts_seterr(err, errlen, "--report %s: path too long", path);
        return -ENAMETOOLONG;
    }
    f = fopen(tmp, "w");
    if (!f) {
        int rc = -errno;

        ts_seterr(err, errlen, "--report %s: cannot write there: %s", path,
                  strerror(errno));
        return rc;
    }
    fclose(f);
    unlink(tmp);
    return 0;
}

int ts_report_svg(const struct ts_report *rep, const char *path, char *err,
                  size_t errlen)
{
    char tmp[PATH_MAX];
    FILE *f;
    int rc = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        ts_seterr(err, errlen, "--report %s: path too long", path);
        return -ENAMETOOLONG;
    }
    f = fopen(tmp, "w");
    if (!f) {
        rc = -errno;
        ts_seterr(err, errlen, "--report %s: %s", tmp, strerror(errno));
        return rc;
    }
    svg_write(rep, f);
    if (ferror(f))
        rc = -EIO;
    if (fclose(f) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc) {
        ts_seterr(err, errlen, "--report %s: %s", path, strerror(-rc));
        unlink(tmp);
    }
    return rc;
}
