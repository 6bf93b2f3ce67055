/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-report.h - what `xensim migrate` shows of a migration, whichever
 * moves the RAM (libxc's way, ts-migrate.c; xenram's engine,
 * ts-engine.c): the live progress line on stderr, and at the end the
 * per-round table (stdout), the same figures as JSON (--json, stdout) and
 * as a standalone SVG plot (--report FILE.svg).  docs/simulator.md,
 * "Migration progress and reports", gives the line, the schema and the
 * plot.
 *
 * The paths fill a struct ts_report as the migration goes (one
 * struct ts_round per round, samples over time for the plot) and call the
 * printers once; the line is drawn through struct ts_progress, which
 * decides whether and how often.  Rates are MiB/s (2^20 bytes), as the
 * workloads take them; rounds count from 1 (the first pass over all RAM:
 * libxc's iteration 0, QEMU's dirty-sync-count 1).
 */
#ifndef XENSIM_TS_REPORT_H
#define XENSIM_TS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* A figure not known (JSON null, "-" in the table). */
#define TS_UNKNOWN (-1.0)

/*
 * One row of the table.  On xenram's engine a row is what two polls of
 * query-migrate saw between them: when a poll missed a round's end (a
 * round shorter than the poll interval), that round is folded into the
 * next row and first < last.  libxc's rows are exact, first == last.
 */
struct ts_round {
    unsigned first, last;       /* rounds covered */
    bool paused;                /* the final round: the guest was paused */
    uint64_t pages;             /* sent: with data or as zero pages */
    uint64_t bytes;             /* on the wire (xenram) / copied (libxc) */
    double start_ms, ms;        /* since the migration began; duration */
    double bandwidth;           /* MiB/s: bytes / ms */
    double dirty_rate;          /* MiB/s the guest dirtied; TS_UNKNOWN */
    double remaining;           /* bytes dirty when it ended; TS_UNKNOWN */
    double expected_downtime_ms; /* at its end; TS_UNKNOWN */
    unsigned throttle_pct;      /* vCPU cap at its end (auto-converge) */
};

/* A point of the over-time plot. */
struct ts_sample {
    double t_ms;                /* since the migration began */
    unsigned round;
    double bandwidth;           /* MiB/s */
    double remaining;           /* bytes */
};

struct ts_report {
    const char *engine;         /* "libxc" or "xenram" */
    const char *src, *dst;      /* state directories */
    uint32_t domid, dest_domid;
    char name[64];
    const char *status;         /* "completed", "failed", "cancelled" */
    const char *error;          /* the sentence, when not completed */
    uint64_t guest_pages;       /* RAM pages of the guest (populated) */

    struct ts_round *r;
    size_t n, cap;
    struct ts_sample *s;
    size_t ns, scap;
    unsigned sstride, sskip;    /* samples kept: one in sstride */

    unsigned rounds;            /* rounds begun */
    uint64_t pages, bytes;      /* totals */
    double normal_pages, zero_pages; /* TS_UNKNOWN where not counted */
    double total_ms, setup_ms, downtime_ms; /* TS_UNKNOWN if not known */
    unsigned max_throttle_pct;
    uint64_t devstate_bytes;
};

/* Room for one more row / sample: NULL when out of memory (the report
 * then lacks it; the migration is not failed for a table). */
struct ts_round *ts_report_round(struct ts_report *rep);
void ts_report_sample(struct ts_report *rep, double t_ms, unsigned round,
                      double bandwidth, double remaining);
void ts_report_free(struct ts_report *rep);

/* The per-round table and totals, indented, after a path's summary. */
void ts_report_table(const struct ts_report *rep, FILE *f);
/* The JSON document (--json) on @f, one line per round, newline-ended. */
int ts_report_json(const struct ts_report *rep, FILE *f);
/* The SVG plot into @path (written whole, then renamed into place):
 * 0, or -errno with @err. */
int ts_report_svg(const struct ts_report *rep, const char *path, char *err,
                  size_t errlen);
/* Before migrating: can @path be written?  0, or -errno with @err. */
int ts_report_check_path(const char *path, char *err, size_t errlen);

/* ---- the live line -------------------------------------------------------- */

struct ts_progress {
    bool tty;                   /* stderr is a terminal: one redrawn line */
    bool lines;                 /* --progress on a pipe: a line per update */
    bool open;                  /* a redrawn line is on screen */
    uint64_t last_ns;           /* when the last one was drawn */
    unsigned last_round;
    unsigned done_round;        /* the last round shown at 100% */
    char last_phase[16];
};

/* What the line shows; a TS_UNKNOWN figure is left out. */
struct ts_live {
    const char *phase;          /* NULL or "" while in a live round, else
                                   "setup", "final", "device", ... */
    unsigned round, of;         /* of: the round limit, 0 if none */
    double pct;                 /* of the round done */
    double bandwidth;           /* MiB/s */
    double remaining;           /* bytes left of the round / dirty */
    double expected_downtime_ms;
    double eta_s;
};

/*
 * @show: progress wanted (not --no-progress); @force: --progress, also
 * when stderr is not a terminal.  On a terminal the line is redrawn at
 * most 10 times a second (at once when the round or the phase changes);
 * otherwise one line at most every second, at once when the phase
 * changes, and when a round is done if 200 ms passed since the last.
 */
void ts_progress_init(struct ts_progress *p, bool show, bool force);
bool ts_progress_on(const struct ts_progress *p);
void ts_progress_show(struct ts_progress *p, const struct ts_live *l);
/* A whole line of text (the live line is cleared first). */
void ts_progress_say(struct ts_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clear the redrawn line, if any (before the report or an error). */
void ts_progress_end(struct ts_progress *p);

/* ---- xenram's engine: the rows from query-migrate -------------------------- */

/*
 * query-migrate keeps no history: its figures are those of xenram's last
 * update, inside a round every 100 ms (remaining = the round's pages not
 * yet taken, dirty-pages-rate 0) and at each round's end (remaining =
 * what the round left dirty, dirty-pages-rate its rate).  Read often
 * enough (ts-engine.c: every 20 ms and at each event), the answers give a
 * row per round: pages, bytes and time between the end of a round and
 * the end of the one before, the dirty rate, remaining and expected
 * downtime at its end.  A round whose figures were replaced before they
 * were read shares the next row (first < last).
 */
struct ts_qm_snap {
    double t_ms;
    unsigned round;             /* dirty-sync-count */
    double pages, bytes, total, remaining, dirty_rate, mbps;
    double expdown;             /* TS_UNKNOWN when absent */
    unsigned throttle;
    bool end;                   /* a round's end: a dirty rate is set or
                                   nothing remains (query-migrate does not
                                   say) */
};

struct ts_qm {
    struct ts_report *rep;
    unsigned cur;               /* dirty-sync-count of the last answer */
    unsigned row_first;         /* the round the open row began with */
    struct ts_qm_snap last;     /* the last new figures, when first seen */
    struct ts_qm_snap row0;     /* where the open row began */
    double plan;                /* pages the current round began with */
    double dirty_mibps;         /* the last dirty rate known */
};

/* Start reading for @rep (its totals not known yet). */
void ts_qm_init(struct ts_qm *m, struct ts_report *rep);
/* One answer @r, read @t_ms after `migrate`: rows, samples, and what the
 * line shows into @l. */
void ts_qm_track(struct ts_qm *m, json_t *r, double t_ms, struct ts_live *l);
/* The last answer (completed, failed, cancelled): the last row (the
 * final round, guest paused, when completed) and the totals. */
void ts_qm_track_end(struct ts_qm *m, json_t *r);

/*
 * Precopy's estimate of the time to switchover: what is left sent at
 * @bandwidth while the guest dirties at @dirty_rate, for @rounds_left
 * more rounds (UINT32_MAX: until it converges, remaining / (bandwidth -
 * dirty rate)).  TS_UNKNOWN when it cannot converge or nothing is known.
 */
double ts_eta_s(double remaining, double bandwidth, double dirty_rate,
                unsigned rounds_left);

static inline double ts_mib(double bytes)
{
    return bytes / (1024.0 * 1024.0);
}

#endif /* XENSIM_TS_REPORT_H */
