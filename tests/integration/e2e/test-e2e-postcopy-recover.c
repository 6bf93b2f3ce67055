/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-postcopy-recover.c - `xensim migrate --engine xenram
 * --postcopy` whose link breaks after the switch, and is recovered
 * (docs/toolstack.md, "Postcopy recovery"; QEMU's postcopy-paused,
 * migrate-recover, migrate resume).  `--x-postcopy-pause SIDE:MS,...`
 * cuts it: MS ms after the source (re)entered postcopy-active, the
 * toolstack sends migrate-pause to that side's xenram; both sides go
 * postcopy-paused, the toolstack recovers, the migration completes.
 *
 * The guests are test-e2e-postcopy's running-destination ones: 32 MiB,
 * RAM filled before so that every page is one to send, the stream held
 * slow with max-bandwidth so that the cuts land while pages are still
 * missing, the vCPUs writing random pages on both sides and xenram's
 * test DMA device writing.  After each migration, as test-e2e-postcopy
 * checks it: the vCPUs faulted and every fault was served, every page
 * made absent was placed once, none twice, and the memory is the
 * source's at the switch except the pages written on the destination
 * since, page by page.  Cut on the source, on the destination, twice,
 * over 1 and 2 channels, with postcopy-preempt; bad lists refused.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"
#include "xen/sim/stamp.h"
#include "xen/sim/toolstack.h"

static struct e2e_host src, dst;
static bool no_xenstore;

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/*
 * A 32 MiB guest (8 of it VRAM) whose xenram DMA-writes 2000 pages/s and
 * whose vCPUs first write every page of RAM, then random pages at 8 MiB/s
 * (test-e2e-postcopy's guest() with fill).  Both busy when this returns.
 */
static uint32_t guest(const char *name)
{
    char out[256], id[16];
    uint32_t d;

    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "32", "--vram", "8", "--name", name,
                                "--workload", "sequential:0", "--dm",
                                e2e_xenram(), "--dm-arg", "--test-dma=2000",
                                NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    snprintf(id, sizeof(id), "%u", d);
    /* Twice RAM's pages: every page written at least once. */
    assert_true(e2e_wait_vcpu_writes(&src, d, 2ull * 32 * 256));
    assert_int_equal(e2e_xensim(&src, NULL, 0, "workload", id, "random:8",
                                NULL), 0);
    assert_true(e2e_wait_dma(&src, d, 200));
    assert_true(e2e_wait_vcpu_writes(&src, d, 200));
    return d;
}

/* ---- the memory, as test-e2e-postcopy checks it ------------------------- */

/* ---- a migration in the background -------------------------------------- */

struct bg {
    pthread_t t;
    char id[16];
    const char *args[16];
    int rc;
    char out[65536], err[32768];    /* --json's document fits */
};

static void *bg_main(void *opaque)
{
    struct bg *b = opaque;
    const char *const *a = b->args;

    b->rc = e2e_xensim_err(&src, b->out, sizeof(b->out), b->err,
                           sizeof(b->err), "migrate", b->id, "--to",
                           dst.dir, "--engine", "xenram", "--no-progress",
                           a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                           a[8], a[9], a[10], a[11], a[12], a[13], a[14],
                           a[15], NULL);
    return NULL;
}

/* `xensim migrate d --to dst --engine xenram ARGS...` (NULL-terminated,
 * at most 15) in a thread. */
static void bg_start(struct bg *b, uint32_t d, ...)
{
    va_list ap;
    unsigned i = 0;

    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%u", d);
    va_start(ap, d);
    while (i < 15 && (b->args[i] = va_arg(ap, const char *)))
        i++;
    va_end(ap);
    b->args[i] = NULL;
    assert_int_equal(pthread_create(&b->t, NULL, bg_main, b), 0);
}

/* The destination's postcopy figures (x-xenram-postcopy-latency). */
static void dest_figures(uint32_t nd, json_int_t *faults, json_int_t *placed,
                         json_int_t *dups, json_int_t *absent,
                         json_int_t *asked)
{
    json_t *r = e2e_qmp(&dst, nd, "query-migrate", NULL), *l;

    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")),
                        "completed");
    l = json_object_get(r, "x-xenram-postcopy-latency");
    assert_non_null(l);
    *faults = json_integer_value(json_object_get(l, "faults"));
    *placed = json_integer_value(json_object_get(l, "placed"));
    *dups = json_integer_value(json_object_get(l, "duplicates"));
    *absent = json_integer_value(json_object_get(l, "made-absent"));
    *asked = json_integer_value(json_object_get(json_object_get(r, "ram"),
                                                "postcopy-requests"));
    json_decref(r);
}

/* How many times @needle occurs in @hay. */
static unsigned count(const char *hay, const char *needle)
{
    unsigned n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- one cut migration -------------------------------------------------- */

struct cut {
    const char *name;
    const char *channels;
    const char *bandwidth;      /* MiB/s: the background after the switch
                                   must outlast the cuts */
    const char *pauses;         /* --x-postcopy-pause */
    unsigned recoveries;        /* one per entry */
    bool preempt;
    bool json;                  /* --json instead of the summary */
};

/*
 * What xensim said of the cuts: each entry's migrate-pause sent to its
 * side, in the list's order, and one recovery each.
 */
static void check_cuts_said(const struct cut *c, const char *err)
{
    const char *p = err;
    char list[128], *save = NULL;

    snprintf(list, sizeof(list), "%s", c->pauses);
    for (char *e = strtok_r(list, ",", &save); e;
         e = strtok_r(NULL, ",", &save)) {
        const char *want = e[0] == 'd'
            ? "test hook: migrate-pause sent to the destination's xenram"
            : "test hook: migrate-pause sent to the source's xenram";

        p = strstr(p, want);
        if (!p)
            fprintf(stderr, "xensim did not say '%s' for entry '%s' of "
                    "%s\n", want, e, c->pauses);
        assert_non_null(p);
        p += strlen(want);
    }
    assert_int_equal(count(err, "test hook: migrate-pause sent"),
                     c->recoveries);
    assert_int_equal(count(err, "xensim: postcopy paused: "),
                     c->recoveries);
    assert_int_equal(count(err, "xensim: postcopy recovered"),
                     c->recoveries);
    assert_null(strstr(err, "not sent: the migration"));
}

/* The summary, or --json's document: switched, and the recoveries. */
static void check_report(const struct cut *c, const char *out)
{
    if (c->json) {
        json_error_t je;
        json_t *doc = json_loads(out, 0, &je), *pc;

        if (!doc)
            fprintf(stderr, "--json: %s (line %d)\n", je.text, je.line);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc,
                                                              "status")),
                            "completed");
        pc = json_object_get(doc, "postcopy");
        assert_non_null(pc);
        assert_true(json_is_true(json_object_get(pc, "switched")));
        assert_int_equal(json_integer_value(json_object_get(pc,
                                                            "recoveries")),
                         c->recoveries);
        /* Each recovered at its first attempt. */
        assert_int_equal(json_integer_value(
                             json_object_get(pc, "recovery_attempts")),
                         c->recoveries);
        json_decref(doc);
    } else {
        const char *r = strstr(out, "\n  recoveries  : ");
        const char *dt = strstr(out, "downtime    : ");
        const char *tt = strstr(out, "total time  : ");
        char *end;
        long down, total;

        assert_non_null(strstr(out, "postcopy    : switched"));
        assert_non_null(r);
        /* "N", each recovered at its first attempt: no "(M attempts)". */
        assert_int_equal(strtoul(r + 17, &end, 10), c->recoveries);
        assert_int_equal(*end, '\n');
        /* Downtime as QEMU counts it, from the pause to RUN: the cuts
         * come after RUN and are not in it. */
        assert_non_null(dt);
        assert_non_null(tt);
        tt = strstr(tt, "(xenram: ");
        assert_non_null(tt);
        down = strtol(dt + 14, NULL, 10);
        total = strtol(tt + 9, NULL, 10);
        fprintf(stderr, "downtime %ld ms of %ld ms\n", down, total);
        assert_true(down * 2 < total);
    }
}

static void check_destination(const char *name, bool preempt,
                              struct e2e_mem *before);

static void postcopy_cut(const struct cut *c)
{
    static struct bg b;
    struct e2e_mem before;
    uint32_t d;

    d = guest(c->name);
    /* The source stays paused from the switch on, through the cuts too:
     * this mapping is its memory at the switch once the migration ends. */
    assert_true(e2e_mem_map(&src, d, &before));
    /* (--postcopy and --no-progress again stand for "nothing more".) */
    bg_start(&b, d, "--channels", c->channels, "--postcopy",
             "--max-bandwidth", c->bandwidth, "--x-postcopy-pause",
             c->pauses, c->preempt ? "--postcopy-preempt" : "--postcopy",
             c->json ? "--json" : "--no-progress", NULL);
    pthread_join(b.t, NULL);
    fprintf(stderr, "rc %d\n%s%s", b.rc, b.out, b.err);
    assert_int_equal(b.rc, 0);
    check_cuts_said(c, b.err);
    check_report(c, b.out);

    check_destination(c->name, c->preempt, &before);
}

/*
 * After a recovered postcopy of @name: the destination's figures and
 * memory as test-e2e-postcopy checks them, against @before (the source's
 * memory, fixed since the switch).  The destination domain destroyed.
 */
static void check_destination(const char *name, bool preempt,
                              struct e2e_mem *before)
{
    struct e2e_mem now;
    uint32_t nd;
    char id[16];
    uint64_t newest, fresh;
    json_int_t faults, placed, dups, absent, asked;

    nd = e2e_domid(&dst, name);
    assert_true(nd > 0);
    dest_figures(nd, &faults, &placed, &dups, &absent, &asked);
    fprintf(stderr, "%lld faults, %lld asked, %lld placed of %lld absent, "
            "%lld duplicates\n", (long long)faults, (long long)asked,
            (long long)placed, (long long)absent, (long long)dups);
    /* The guest ran while pages were missing, across the cuts: it
     * faulted; every fault was asked for (a fault of a paused link asked
     * again over the new one counts again, so at least once each) and
     * served; every page made absent came back, none twice. */
    assert_true(faults > 0);
    assert_true(asked >= faults);
    assert_int_equal(placed, absent);
    /* With preempt a page asked for while in flight goes again: the
     * later copy is a duplicate, never placed; without, none. */
    if (preempt)
        assert_true(dups <= asked);
    else
        assert_int_equal(dups, 0);
    /* No vCPU is left waiting on a page. */
    assert_true(e2e_wait_vcpu_writes(&dst, nd, 100));
    assert_true(e2e_wait_dma(&dst, nd, 100));
    snprintf(id, sizeof(id), "%u", nd);
    assert_int_equal(e2e_xensim(&dst, NULL, 0, "pause", id, NULL), 0);
    assert_true(e2e_mem_map(&dst, nd, &now));
    /* The same frames, and every page either the source's at the switch
     * or written on the destination since. */
    assert_int_equal(before->pages, now.pages);
    for (uint64_t g = 0; g < before->pages; g++)
        assert_int_equal(e2e_mem_has(before, g), e2e_mem_has(&now, g));
    newest = e2e_mem_newest_stamp(before);
    fresh = e2e_mem_stamps_since(before, &now, newest);
    fprintf(stderr, "%llu pages written on the destination since the "
            "switch\n", (unsigned long long)fresh);
    assert_true(fresh >= 50);
    e2e_mem_unmap(&now);
    e2e_mem_unmap(before);
    e2e_verify_clean(&dst, nd);
    e2e_destroy(&dst, nd);
}

/* ---- the tests ---------------------------------------------------------- */

/*
 * At 16 MiB/s round 1 takes about 1.5 s and the background after the
 * switch most of a second: one cut 200 or 300 ms in lands mid-transfer.
 * Two cuts take 500 ms of postcopy-active between them: 8 MiB/s doubles
 * the background (and round 1, so more pages are dirty at the switch).
 */
static void test_recover_source_cut_one_channel(void **state)
{
    const struct cut c = { .name = "pr1", .channels = "1",
                           .bandwidth = "16", .pauses = "src:200",
                           .recoveries = 1 };

    (void)state;
    NEED_XENSTORE();
    postcopy_cut(&c);
}

static void test_recover_destination_cut_two_channels_json(void **state)
{
    const struct cut c = { .name = "pr2", .channels = "2",
                           .bandwidth = "16", .pauses = "dst:300",
                           .recoveries = 1, .json = true };

    (void)state;
    NEED_XENSTORE();
    postcopy_cut(&c);
}

static void test_recover_two_cuts_two_channels(void **state)
{
    const struct cut c = { .name = "pr3", .channels = "2",
                           .bandwidth = "8", .pauses = "src:200,dst:300",
                           .recoveries = 2 };

    (void)state;
    NEED_XENSTORE();
    postcopy_cut(&c);
}

static void test_recover_two_cuts_two_channels_preempt(void **state)
{
    const struct cut c = { .name = "pr4", .channels = "2",
                           .bandwidth = "8", .pauses = "src:200,dst:300",
                           .recoveries = 2, .preempt = true };

    (void)state;
    NEED_XENSTORE();
    postcopy_cut(&c);
}

/*
 * Bad lists are usage errors (exit status 2, as for every malformed
 * migrate flag), refused with a sentence naming the flag and the entry
 * before anything is looked at; a good list gets past the parser (to the
 * missing domain).
 */
/*
 * Outside a paused postcopy the recovery commands are refused with a
 * sentence, and nothing changes: the guest runs on, no migration starts.
 */
static void test_recover_commands_refused_when_nothing_is_paused(
    void **state)
{
    static const struct {
        const char *cmd, *uri;
        bool resume;
        const char *says;
    } cases[] = {
        { "migrate-pause", NULL, false, "only supported by postcopy" },
        { "migrate-recover", "unix:/tmp/xr-no-recover.sock", false,
          "no postcopy migration is paused here (status is none)" },
        { "migrate-recover", "fd:x", false, "give it a tcp: or unix: URI" },
        { "migrate-recover", "bogus:1", false, "" },
        { "migrate", "unix:/tmp/xr-no-resume.sock", true,
          "no postcopy migration is paused here (status is none)" },
    };
    struct ts_qmp q;
    char path[512], err[512];
    uint32_t d;
    json_t *r;

    (void)state;
    NEED_XENSTORE();
    d = guest("rq");
    snprintf(path, sizeof(path), "%s/qmp-libxl-%u", src.dir, d);
    assert_int_equal(ts_qmp_connect(&q, path, -1, 5000, err, sizeof(err)),
                     0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *args = NULL;

        if (cases[i].uri) {
            args = cases[i].resume ?
                   json_pack("{s:s,s:b}", "uri", cases[i].uri, "resume", 1) :
                   json_pack("{s:s}", "uri", cases[i].uri);
        }
        err[0] = '\0';
        r = ts_qmp_exec(&q, cases[i].cmd, args, -1, 10000, err,
                        sizeof(err));
        fprintf(stderr, "%s %s: %s\n", cases[i].cmd,
                cases[i].uri ? cases[i].uri : "", err);
        assert_null(r);
        assert_non_null(strstr(err, cases[i].says));
    }
    /* Nothing bound the recovery's socket, nothing started. */
    assert_int_not_equal(access("/tmp/xr-no-recover.sock", F_OK), 0);
    r = ts_qmp_exec(&q, "query-migrate", NULL, -1, 10000, err, sizeof(err));
    assert_non_null(r);
    assert_null(json_object_get(r, "status"));
    json_decref(r);
    ts_qmp_close(&q);
    assert_true(e2e_wait_vcpu_writes(&src, d, 100));
    e2e_destroy(&src, d);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A migration's status on host @h's domain @d, into @buf ("" if none). */
static const char *mig_status(struct e2e_host *h, uint32_t d, char *buf,
                              size_t len)
{
    json_t *r = e2e_qmp(h, d, "query-migrate", NULL);

    snprintf(buf, len, "%s", r && json_string_value(json_object_get(
                                 r, "status")) ?
             json_string_value(json_object_get(r, "status")) : "");
    json_decref(r);
    return buf;
}

static bool wait_status(struct e2e_host *h, uint32_t d, const char *want,
                        unsigned ms)
{
    uint64_t deadline = now_ns() + ms * 1000000ull;
    char st[64];

    while (strcmp(mig_status(h, d, st, sizeof(st)), want)) {
        if (now_ns() > deadline) {
            fprintf(stderr, "status '%s', not '%s', after %u ms\n", st, want,
                    ms);
            return false;
        }
        poll(NULL, 0, 20);
    }
    return true;
}

/*
 * The source's xenram stops (SIGSTOP) after the switch: nothing on the
 * link breaks, the destination just gets nothing.  The operator declares
 * the link dead with migrate-pause on the destination; once the source
 * runs again (SIGCONT) it finds its connections shut and pauses too; the
 * toolstack recovers, and the memory is as after any recovery.
 */
static void test_recover_source_stopped(void **state)
{
    static struct bg b;
    struct e2e_mem before;
    uint64_t deadline;
    uint32_t d, nd = 0;
    pid_t spid;
    json_t *r;

    (void)state;
    NEED_XENSTORE();
    d = guest("pr5");
    spid = e2e_dm_pid(&src, d);
    assert_true(spid > 0);
    assert_true(e2e_mem_map(&src, d, &before));
    bg_start(&b, d, "--channels", "2", "--postcopy", "--max-bandwidth", "8",
             NULL);
    deadline = now_ns() + 30000000000ull;
    while (!(nd = e2e_domid(&dst, "pr5")) && now_ns() < deadline)
        poll(NULL, 0, 20);
    assert_true(nd > 0);
    assert_true(wait_status(&src, d, "postcopy-active", 30000));
    assert_true(wait_status(&dst, nd, "postcopy-active", 30000));
    assert_int_equal(kill(spid, SIGSTOP), 0);
    r = e2e_qmp(&dst, nd, "migrate-pause", NULL);
    assert_non_null(r);
    json_decref(r);
    assert_true(wait_status(&dst, nd, "postcopy-paused", 10000));
    assert_int_equal(kill(spid, SIGCONT), 0);
    pthread_join(b.t, NULL);
    fprintf(stderr, "rc %d\n%s%s", b.rc, b.out, b.err);
    assert_int_equal(b.rc, 0);
    assert_int_equal(count(b.err, "xensim: postcopy recovered"), 1);
    assert_non_null(strstr(b.out, "recoveries  : 1"));
    check_destination("pr5", false, &before);
}

static void test_recover_bad_pause_lists_refused(void **state)
{
    static const struct {
        const char *list, *says;
    } bad[] = {
        { "", "entry 1 is empty" },
        { "src", "entry 1 ('src') is not SIDE:MS with SIDE src or dst" },
        { "up:100", "entry 1 ('up:100') is not SIDE:MS" },
        { "SRC:100", "entry 1 ('SRC:100') is not SIDE:MS" },
        { "src:", "MS is a decimal number of milliseconds" },
        { "src:-5", "MS is a decimal number of milliseconds" },
        { "dst:+5", "MS is a decimal number of milliseconds" },
        { "src:10x", "'x' after the milliseconds" },
        { "src:100;dst:100", "';' after the milliseconds" },
        { "src:100 ", "' ' after the milliseconds" },
        { "src:100,", "entry 2 is empty" },
        { ",src:100", "entry 1 is empty" },
        { "src:100,,dst:1", "entry 2 is empty" },
        { "src:1,dst:x", "entry 2 ('dst:x'): MS is a decimal number" },
        { "src:600001", "MS is 0 to 600000" },
        { "dst:99999999999999999999999", "MS is 0 to 600000" },
        { "src:1,src:2,src:3,src:4,src:5,src:6,src:7,src:8,src:9,src:10,"
          "src:11,src:12,src:13,src:14,src:15,src:16,src:17",
          "takes at most 16 entries" },
    };
    char out[256], err[1024];

    (void)state;
    NEED_XENSTORE();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = e2e_xensim_err(&src, out, sizeof(out), err, sizeof(err),
                                "migrate", "nosuch", "--to", dst.dir,
                                "--engine", "xenram", "--x-postcopy-pause",
                                bad[i].list, NULL);

        if (rc != 2 || !strstr(err, bad[i].says))
            fprintf(stderr, "'%s': rc %d, said: %s\n", bad[i].list, rc, err);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(err, "--x-postcopy-pause"));
        assert_non_null(strstr(err, bad[i].says));
    }
    /* Sixteen entries, 0 and 600000 ms: accepted, up to the domain. */
    assert_int_equal(e2e_xensim_err(&src, out, sizeof(out), err, sizeof(err),
                                    "migrate", "nosuch", "--to", dst.dir,
                                    "--engine", "xenram",
                                    "--x-postcopy-pause",
                                    "src:0,dst:600000,src:3,dst:4,src:5,"
                                    "dst:6,src:7,dst:8,src:9,dst:10,src:11,"
                                    "dst:12,src:13,dst:14,src:15,dst:16",
                                    NULL), 1);
    assert_non_null(strstr(err, "no domain 'nosuch'"));
    assert_null(strstr(err, "--x-postcopy-pause"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recover_bad_pause_lists_refused),
        cmocka_unit_test(test_recover_commands_refused_when_nothing_is_paused),
        cmocka_unit_test(test_recover_source_cut_one_channel),
        cmocka_unit_test(test_recover_destination_cut_two_channels_json),
        cmocka_unit_test(test_recover_two_cuts_two_channels),
        cmocka_unit_test(test_recover_two_cuts_two_channels_preempt),
        cmocka_unit_test(test_recover_source_stopped),
    };

    e2e_init(400);
    return cmocka_run_group_tests_name("e2e-postcopy-recover", tests, setup,
                                       e2e_group_teardown);
}
