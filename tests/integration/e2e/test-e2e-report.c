/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-report.c - what `xensim migrate` shows of a migration
 * (xen/sim/ts-report.h, docs/simulator.md "Migration progress and
 * reports"), on both paths:
 *
 *   - --json: the document parses, its rounds add up to its totals and to
 *     the guest the hosts hold (every page of the guest in round 1, the
 *     destination domain it names exists), the final round is the last,
 *     the downtime is there; on xenram's engine, with a bandwidth limit
 *     that makes round 1 long, round 1 has its own row and the rates
 *     respect the limit;
 *   - --report FILE.svg: well-formed (xmllint, libxml2-utils from
 *     scripts/deps.sh), one point per row for each series, the domain's
 *     name escaped; the same report gives the same bytes;
 *   - on a terminal (a pty) one line redrawn with \r and cleared at the
 *     end, nothing with --no-progress; --progress on a pipe prints
 *     progress lines on stderr (and JSON stays alone on stdout); without
 *     it, none;
 *   - a --report that cannot be written is refused before anything moves.
 *
 * Small guests (24-32 MiB of RAM): the libxc runs take a fraction of a
 * second, the engine run about one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/integration/e2e/e2e.h"
#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"
#include "xen/sim/toolstack.h"
#include "xen/sim/ts-report.h"

static struct e2e_host src, dst;
static bool no_xenstore;
static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/xr-report-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    (void)!system(cmd);
    return e2e_teardown() ? -1 : 0;
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

static char big_out[1 << 16], big_err[1 << 16];

/* A guest without device model (libxc's path needs none). */
static uint32_t plain_guest(const char *name, const char *workload)
{
    char out[64];
    uint32_t d;

    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "32", "--name", name, "--workload",
                                workload, NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    assert_true(e2e_wait_vcpu_writes(&src, d, 50));
    return d;
}

static uint64_t tot_pages(const struct e2e_host *h, uint32_t d)
{
    struct xsim_dominfo info;

    assert_true(e2e_dominfo(h, d, &info));
    return info.tot_pages;
}

static json_int_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    assert_true(json_is_number(v));
    return json_number_value(v);
}

/*
 * What holds of any report: the rows cover rounds 1..rounds in order,
 * the last is the final one, their pages and bytes are the totals', the
 * downtime is a number.  Returns the document (caller frees).
 */
static json_t *check_json(const char *text, const char *engine,
                          const char *name)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je), *rounds, *tot;
    json_int_t pages = 0, bytes = 0, next = 1;
    size_t n;

    if (!doc)
        fail_msg("--json output does not parse (%s): %.200s", je.text, text);
    assert_string_equal(json_string_value(json_object_get(doc, "engine")),
                        engine);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "completed");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(doc, "domain"), "name")), name);
    rounds = json_object_get(doc, "rounds");
    tot = json_object_get(doc, "totals");
    assert_true(json_is_array(rounds));
    assert_true(json_is_object(tot));
    n = json_array_size(rounds);
    assert_true(n >= 2);               /* the first pass and the final */
    assert_true(jint(tot, "rounds") >= (json_int_t)n);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rounds, i);

        assert_int_equal(jint(r, "first_round"), next);
        assert_true(jint(r, "round") >= next);
        next = jint(r, "round") + 1;
        assert_true(json_is_boolean(json_object_get(r, "final")));
        assert_int_equal(json_is_true(json_object_get(r, "final")),
                         i == n - 1);
        pages += jint(r, "pages");
        bytes += jint(r, "bytes");
        assert_true(jnum(r, "time_ms") >= 0);
        assert_true(jnum(r, "bandwidth_mibps") >= 0);
    }
    assert_int_equal(next - 1, jint(tot, "rounds"));
    assert_int_equal(pages, jint(tot, "pages"));
    assert_int_equal(bytes, jint(tot, "bytes"));
    assert_true(jnum(tot, "downtime_ms") >= 0);
    assert_true(jnum(tot, "downtime_ms") <= jnum(tot, "time_ms"));
    /* The final round: the guest paused, nothing dirtied or left. */
    {
        json_t *f = json_array_get(rounds, n - 1);

        assert_true(jnum(f, "dirty_rate_mibps") == 0);
        assert_int_equal(jint(f, "remaining_bytes"), 0);
    }
    return doc;
}

/* How often @needle occurs in @hay. */
static unsigned count(const char *hay, const char *needle)
{
    unsigned n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long len;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return buf;
}

/* xmllint accepts it as XML (a missing xmllint fails: deps.sh has it). */
static void well_formed(const char *path)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "xmllint --noout '%s'", path);
    if (system("command -v xmllint >/dev/null 2>&1"))
        fail_msg("xmllint not found: install libxml2-utils "
                 "(scripts/deps.sh)");
    assert_int_equal(system(cmd), 0);
}

/* One point per row for each per-round series; the name, escaped. */
static void check_svg(const char *path, json_t *doc, const char *esc_name)
{
    size_t n = json_array_size(json_object_get(doc, "rounds"));
    size_t dirty = 0;
    char *svg;

    well_formed(path);
    svg = slurp(path);
    for (size_t i = 0; i < n; i++)
        dirty += json_is_number(json_object_get(json_array_get(
                     json_object_get(doc, "rounds"), i), "dirty_rate_mibps"));
    assert_int_equal(count(svg, "class=\"pt bandwidth\""), n);
    assert_int_equal(count(svg, "class=\"pt remaining\""), n);
    assert_int_equal(count(svg, "class=\"pt dirty\""), dirty);
    assert_non_null(strstr(svg, esc_name));
    assert_non_null(strstr(svg, "<title>"));
    free(svg);
}

/* ---- libxc's way ---------------------------------------------------------- */

/* --json: the rounds as the migration made them; --report: the plot. */
static void test_libxc_json_and_svg_match_the_migration(void **state)
{
    const char *name = "r&d<1>";
    char svg[128], id[16];
    uint32_t d, nd;
    uint64_t pages;
    json_t *doc, *r1;

    (void)state;
    NEED_XENSTORE();
    d = plain_guest(name, "random:8");
    pages = tot_pages(&src, d);
    snprintf(id, sizeof(id), "%u", d);
    snprintf(svg, sizeof(svg), "%s/libxc.svg", tmpdir);
    assert_int_equal(e2e_xensim_err(&src, big_out, sizeof(big_out), big_err,
                                    sizeof(big_err), "migrate", id, "--to",
                                    dst.dir, "--json", "--report", svg,
                                    NULL), 0);
    doc = check_json(big_out, "libxc", name);
    /* libxc's rows are exact: one per round, the first every page. */
    assert_int_equal(json_array_size(json_object_get(doc, "rounds")),
                     jint(json_object_get(doc, "totals"), "rounds"));
    r1 = json_array_get(json_object_get(doc, "rounds"), 0);
    assert_int_equal(jint(r1, "pages"), (json_int_t)pages);
    assert_int_equal(jint(doc, "guest_pages"), (json_int_t)pages);
    assert_true(jint(json_object_get(doc, "totals"), "pages") >=
                (json_int_t)pages);
    assert_int_equal(jint(r1, "bytes"), (json_int_t)pages * 4096);
    /* The round ran while the guest wrote 8 MiB/s. */
    assert_true(jnum(r1, "dirty_rate_mibps") > 0);
    assert_true(jnum(r1, "dirty_rate_mibps") < 64);
    nd = (uint32_t)jint(json_object_get(doc, "domain"), "dest_domid");
    assert_int_equal(tot_pages(&dst, nd), pages);
    /* Nothing but the document on stdout; no progress on a pipe. */
    assert_null(strstr(big_out, "migrated"));
    assert_null(strstr(big_err, "progress:"));
    assert_null(strchr(big_err, '\r'));
    check_svg(svg, doc, "r&amp;d&lt;1&gt;");
    json_decref(doc);
    e2e_destroy(&dst, nd);
}

/* --progress on a pipe: lines, one per update at most once a second; the
 * table follows the summary. */
static void test_progress_forced_on_a_pipe(void **state)
{
    char id[16];
    uint32_t d, nd;

    (void)state;
    NEED_XENSTORE();
    d = plain_guest("prog", "random:8");
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim_err(&src, big_out, sizeof(big_out), big_err,
                                    sizeof(big_err), "migrate", id, "--to",
                                    dst.dir, "--progress", NULL), 0);
    assert_non_null(strstr(big_err, "progress: round 1 of 5: "));
    assert_non_null(strstr(big_err, "progress: final round "));
    assert_non_null(strstr(big_err, " MiB left"));
    assert_null(strchr(big_err, '\r'));
    /* The summary and its table. */
    assert_non_null(strstr(big_out, "migrated d"));
    assert_non_null(strstr(big_out, "dirty MiB/s"));
    assert_non_null(strstr(big_out, "\n  1 "));
    assert_non_null(strstr(big_out, " final "));
    nd = e2e_domid(&dst, "prog");
    assert_true(nd > 0);
    e2e_destroy(&dst, nd);
}

/*
 * `xensim --dir FROM migrate ID --to TO @opt` with stderr on a pty, as on
 * a terminal (stdout to /dev/null); what the pty received into @buf.
 * Returns the exit status.
 */
static int migrate_on_a_tty(const struct e2e_host *from,
                            const struct e2e_host *to, uint32_t d,
                            const char *opt, char *buf, size_t len)
{
    char xensim[512], id[16];
    int master, slave, st;
    size_t got = 0;
    pid_t pid;

    snprintf(xensim, sizeof(xensim), "%s/xensim", e2e_build());
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 1);
        dup2(slave, 2);
        close(master);
        execl(xensim, xensim, "--dir", from->dir, "migrate", id, "--to",
              to->dir, opt, (char *)NULL);
        _exit(127);
    }
    close(slave);
    /* Until the child and every copy of the slave are gone (EIO). */
    for (;;) {
        struct pollfd p = { .fd = master, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, 30000) <= 0)
            break;
        n = read(master, buf + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == len - 1)
            break;
    }
    buf[got] = 0;
    close(master);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* On a terminal: one line, redrawn, cleared at the end. */
static void test_progress_redrawn_on_a_terminal(void **state)
{
    uint32_t d, nd;
    size_t n;

    (void)state;
    NEED_XENSTORE();
    d = plain_guest("tty", "random:8");
    assert_int_equal(migrate_on_a_tty(&src, &dst, d, "--max-iters=5",
                                      big_err, sizeof(big_err)), 0);
    n = strlen(big_err);
    assert_non_null(strstr(big_err, "\rround 1 of 5: "));
    assert_non_null(strstr(big_err, "\rfinal round "));
    assert_non_null(strstr(big_err, "\033[K"));
    assert_null(strstr(big_err, "progress:"));
    /* The last thing written: back to the start, the line erased. */
    assert_true(n >= 4);
    assert_memory_equal(big_err + n - 4, "\r\033[K", 4);
    nd = e2e_domid(&dst, "tty");
    assert_true(nd > 0);

    /* Back with --no-progress: nothing at all on the terminal. */
    assert_int_equal(migrate_on_a_tty(&dst, &src, nd, "--no-progress",
                                      big_err, sizeof(big_err)), 0);
    assert_string_equal(big_err, "");
    d = e2e_domid(&src, "tty");
    assert_true(d > 0);
    e2e_destroy(&src, d);
}

/* A plot that could not be written is refused before anything moves. */
static void test_report_path_refused_before_migrating(void **state)
{
    char id[16];
    uint32_t d;

    (void)state;
    NEED_XENSTORE();
    d = plain_guest("keep", "random:1");
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim_err(&src, big_out, sizeof(big_out), big_err,
                                    sizeof(big_err), "migrate", id, "--to",
                                    dst.dir, "--report",
                                    "/nonexistent/dir/plot.svg", NULL), 1);
    assert_non_null(strstr(big_err, "--report /nonexistent/dir/plot.svg"));
    assert_int_equal(e2e_domid(&dst, "keep"), 0);
    assert_int_equal(e2e_domid(&src, "keep"), d);
    e2e_destroy(&src, d);
}

/* ---- xenram's engine ------------------------------------------------------- */

/*
 * 32 MiB (24 of RAM) stamped whole, then written at 4 MiB/s, moved at 64
 * MiB/s with a 10 ms downtime limit: round 1 takes about 0.4 s, round 2
 * tens of ms, then the switchover.  query-migrate's figures give round 1
 * its row, the rates under the limit; --progress prints lines while
 * stdout holds only the document.
 */
static void test_engine_json_and_svg_from_query_migrate(void **state)
{
    char out[64], svg[128], id[16];
    uint32_t d, nd;
    uint64_t pages;
    json_t *doc, *rounds, *r1;

    (void)state;
    NEED_XENSTORE();
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "32", "--vram", "8", "--name", "eng",
                                "--workload", "sequential:0", "--dm",
                                e2e_xenram(), NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    assert_true(e2e_wait_vcpu_writes(&src, d, 8192));
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, NULL, 0, "workload", id, "random:4",
                                NULL), 0);
    pages = tot_pages(&src, d);
    snprintf(svg, sizeof(svg), "%s/engine.svg", tmpdir);
    assert_int_equal(e2e_xensim_err(&src, big_out, sizeof(big_out), big_err,
                                    sizeof(big_err), "migrate", id, "--to",
                                    dst.dir, "--engine", "xenram",
                                    "--max-bandwidth", "64",
                                    "--downtime-limit", "10", "--progress",
                                    "--json", "--report", svg, NULL), 0);
    doc = check_json(big_out, "xenram", "eng");
    rounds = json_object_get(doc, "rounds");
    /* Every page of the guest went, round 1 had them all. */
    assert_true(jint(json_object_get(doc, "totals"), "pages") >=
                (json_int_t)pages);
    r1 = json_array_get(rounds, 0);
    assert_int_equal(jint(r1, "round"), 1);
    assert_true(jint(r1, "pages") >= (json_int_t)pages);
    assert_int_equal(jint(json_object_get(doc, "totals"), "normal_pages") +
                     jint(json_object_get(doc, "totals"), "zero_pages"),
                     jint(json_object_get(doc, "totals"), "pages"));
    /* The data went at the limit: 24 MiB stamped, in 0.3 s or more. */
    assert_true(jint(r1, "bytes") > 20 << 20);
    assert_true(jnum(r1, "time_ms") > 250);
    assert_true(jnum(r1, "bandwidth_mibps") < 2 * 64);
    assert_true(jnum(r1, "dirty_rate_mibps") > 0);
    /* Round 1 has its own row (its figures stay readable for the tens of
     * ms round 2 takes); later, shorter rounds may share one under load,
     * which check_json() allows. */
    assert_int_equal(jint(r1, "first_round"), 1);
    nd = (uint32_t)jint(json_object_get(doc, "domain"), "dest_domid");
    assert_true(e2e_dominfo(&dst, nd, &(struct xsim_dominfo){ 0 }));
    assert_non_null(strstr(big_err, "progress: round 1: "));
    assert_non_null(strstr(big_err, "progress: completed round "));
    check_svg(svg, doc, "eng");
    json_decref(doc);
    e2e_destroy(&dst, nd);
}

/* ---- the rows from query-migrate, on made-up answers ---------------------------- */

static json_t *qm(const char *status, unsigned round, double normal,
                  double dup, double bytes, double remaining_pages,
                  double dirty_rate)
{
    return json_pack("{s:s,s:I,s:I,s:{s:f,s:f,s:f,s:I,s:f,s:f,s:f,s:f},"
                     "s:I}", "status", status, "total-time", (json_int_t)320,
                     "expected-downtime", (json_int_t)20, "ram",
                     "normal", normal, "duplicate", dup, "transferred", bytes,
                     "total", (json_int_t)(8192 * 4096), "remaining",
                     remaining_pages * 4096, "dirty-pages-rate", dirty_rate,
                     "mbps", 800.0, "dirty-sync-count", (double)round,
                     "cpu-throttle-percentage", (json_int_t)0);
}

/*
 * Round 1 seen inside and at its end (then the same figures again, later),
 * round 2 never (its figures replaced by round 3's before a reading),
 * round 3 the switchover: two rows, the second "2-3", final; times from
 * when each end was first seen; the line's % from the round's plan.
 */
static void test_rows_from_query_migrate(void **state)
{
    struct ts_report rep = { 0 };
    struct ts_qm m;
    struct ts_live l;
    json_t *r;

    (void)state;
    ts_qm_init(&m, &rep);
    r = json_pack("{s:s}", "status", "setup");
    ts_qm_track(&m, r, 1, &l);
    json_decref(r);
    assert_int_equal(rep.n, 0);
    assert_true(l.pct < 0);

    r = qm("active", 0, 0, 0, 0, 0, 0);
    ts_qm_track(&m, r, 5, &l);
    json_decref(r);
    assert_int_equal(l.round, 1);
    assert_true(l.pct == 0);

    r = qm("active", 1, 3000, 1000, 13e6, 4192, 0);   /* inside round 1 */
    ts_qm_track(&m, r, 100, &l);
    json_decref(r);
    assert_int_equal(l.round, 1);
    assert_true(l.pct > 48.7 && l.pct < 48.9);        /* 4000 of 8192 */
    assert_true(l.bandwidth > 95.3 && l.bandwidth < 95.4);  /* 800 Mb/s */

    r = qm("active", 1, 6000, 2200, 25e6, 500, 2560); /* its end */
    ts_qm_track(&m, r, 200, &l);
    ts_qm_track(&m, r, 210, &l);                      /* not updated */
    json_decref(r);
    assert_true(l.pct == 100);
    assert_int_equal(rep.n, 0);

    r = qm("device", 3, 6600, 2200, 27.5e6, 20, 80);
    ts_qm_track(&m, r, 300, &l);
    json_decref(r);
    assert_string_equal(l.phase, "switchover");
    assert_int_equal(rep.n, 1);

    r = qm("completed", 3, 6620, 2200, 27.6e6, 0, 0);
    json_object_set_new(r, "downtime", json_integer(15));
    json_object_set_new(r, "setup-time", json_integer(2));
    json_object_del(r, "expected-downtime");
    ts_qm_track(&m, r, 320, &l);
    ts_qm_track_end(&m, r);
    json_decref(r);

    assert_int_equal(rep.n, 2);
    assert_int_equal(rep.r[0].first, 1);
    assert_int_equal(rep.r[0].last, 1);
    assert_false(rep.r[0].paused);
    assert_int_equal(rep.r[0].pages, 8200);
    assert_int_equal(rep.r[0].bytes, 25000000);
    assert_true(rep.r[0].start_ms == 0 && rep.r[0].ms == 200);
    assert_true(rep.r[0].dirty_rate == 10.0);         /* 2560 pages/s */
    assert_true(rep.r[0].remaining == 500 * 4096);
    assert_true(rep.r[0].expected_downtime_ms == 20);
    assert_int_equal(rep.r[1].first, 2);
    assert_int_equal(rep.r[1].last, 3);
    assert_true(rep.r[1].paused);
    assert_int_equal(rep.r[1].pages, 620);
    assert_int_equal(rep.r[1].bytes, 2600000);
    assert_true(rep.r[1].start_ms == 200 && rep.r[1].ms == 120);
    assert_true(rep.r[1].dirty_rate == 0 && rep.r[1].remaining == 0);
    assert_int_equal(rep.rounds, 3);
    assert_int_equal(rep.pages, 8820);
    assert_true(rep.normal_pages == 6620 && rep.zero_pages == 2200);
    assert_true(rep.downtime_ms == 15 && rep.total_ms == 320 &&
                rep.setup_ms == 2);
    assert_int_equal(rep.guest_pages, 8192);
    assert_int_equal(rep.ns, 5);                      /* every reading */
    ts_report_free(&rep);
}

/* ---- the plot itself --------------------------------------------------------- */

/* The same report twice gives the same bytes; text is escaped. */
static void test_svg_deterministic_and_escaped(void **state)
{
    struct ts_report rep = { .engine = "xenram", .src = "/h<1>",
                             .dst = "/h\"2\"", .domid = 3, .rounds = 3,
                             .status = "completed", .total_ms = 900,
                             .downtime_ms = 12, .pages = 300,
                             .bytes = 300 * 4096 };
    char a[128], b[128], err[TS_ERRLEN];
    char *x, *y;

    (void)state;
    snprintf(rep.name, sizeof(rep.name), "a&b '<c>'\x01");
    for (unsigned i = 1; i <= 3; i++) {
        struct ts_round *r = ts_report_round(&rep);

        assert_non_null(r);
        r->first = r->last = i;
        r->paused = i == 3;
        r->pages = 100;
        r->bytes = 100 * 4096;
        r->ms = 300;
        r->bandwidth = 1.3 * i;
        r->dirty_rate = i == 2 ? TS_UNKNOWN : 0.5;
        r->remaining = 4096.0 * (3 - i);
        ts_report_sample(&rep, 100.0 * i, i, 1.0 * i, 4096.0 * i);
    }
    snprintf(a, sizeof(a), "%s/a.svg", tmpdir);
    snprintf(b, sizeof(b), "%s/b.svg", tmpdir);
    assert_int_equal(ts_report_svg(&rep, a, err, sizeof(err)), 0);
    assert_int_equal(ts_report_svg(&rep, b, err, sizeof(err)), 0);
    well_formed(a);
    x = slurp(a);
    y = slurp(b);
    assert_string_equal(x, y);
    assert_non_null(strstr(x, "a&amp;b &apos;&lt;c&gt;&apos;"));
    assert_non_null(strstr(x, "/h&lt;1&gt; to /h&quot;2&quot;"));
    assert_int_equal(count(x, "class=\"pt bandwidth\""), 3);
    assert_int_equal(count(x, "class=\"pt dirty\""), 2);   /* one unknown */
    assert_int_equal(count(x, "class=\"pt t-bandwidth\""), 3);
    free(x);
    free(y);
    /* Written whole or not at all: no temporary left behind. */
    snprintf(a, sizeof(a), "%s/a.svg.tmp", tmpdir);
    assert_int_not_equal(access(a, F_OK), 0);
    ts_report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_deterministic_and_escaped),
        cmocka_unit_test(test_rows_from_query_migrate),
        cmocka_unit_test(test_libxc_json_and_svg_match_the_migration),
        cmocka_unit_test(test_progress_forced_on_a_pipe),
        cmocka_unit_test(test_progress_redrawn_on_a_terminal),
        cmocka_unit_test(test_report_path_refused_before_migrating),
        cmocka_unit_test(test_engine_json_and_svg_from_query_migrate),
    };

    e2e_init(90);
    return cmocka_run_group_tests_name("e2e-report", tests, setup,
                                       teardown);
}
