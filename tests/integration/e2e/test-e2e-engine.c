/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-engine.c - `xensim migrate --engine xenram`: xenram's own
 * precopy engine between two simulated hosts, driven over QMP by xensim
 * as a toolstack would (docs/toolstack.md, "xenram's own engine"):
 *
 *   - a 64 MiB guest whose vCPUs write random pages while xenram's test
 *     DMA device writes too, migrated with 1 channel and with 2 channels
 *     and zstd: the destination's memory is the source's at switchover,
 *     page by page (the test maps both memfds itself, and the toolstack's
 *     --checksum-at-suspend comparison agrees); the destination runs on,
 *     its pages whole, the source is gone;
 *   - failures: the destination's xenram killed (SIGKILL) in the middle
 *     of a round, `migrate_cancel` (with a second `migrate` refused while
 *     the first runs), the destination's xenram stopped (SIGSTOP): the
 *     source reports failed or cancelled with a sentence, its guest runs
 *     on (unpaused, log-dirty off, xenram running, every page whole) and
 *     nothing is left on the destination.
 *
 * The failures give a guest writing 32 MiB/s (and its device model 8
 * MiB/s) 16 MiB/s of bandwidth and a downtime limit of 1 ms: the dirty
 * pages grow from round to round, the migration never converges and is
 * always in a round when the test strikes; the channels' socket buffers
 * (xenram asks for 4 MiB each, Linux doubles it) fill in about a second
 * once the destination stops reading.  The SIGSTOP case waits for
 * xenram's stall timeout (10 s, MIG_STALL_MS) once: most of this
 * program's run time.
 */
#include <errno.h>
#include <limits.h>
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
#include <sys/mman.h>
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

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* A 64 MiB guest (8 MiB of it VRAM) writing random pages (@workload), its
 * xenram DMA-writing 2000 pages/s; both busy when this returns. */
static uint32_t guest(const char *name, const char *workload)
{
    char out[256];
    uint32_t d;

    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "64", "--vram", "8", "--name", name,
                                "--workload", workload, "--dm",
                                e2e_xenram(), "--dm-arg", "--test-dma=2000",
                                NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    assert_true(e2e_wait_dma(&src, d, 200));
    assert_true(e2e_wait_vcpu_writes(&src, d, 200));
    return d;
}

/* A domain's memory: e2e.h's struct e2e_mem, compared and searched for
 * stamps by e2e-check.h's. */

/* ---- a migration in the background -------------------------------------- */

struct bg {
    pthread_t t;
    char id[16];
    const char *args[12];
    int rc;
    char out[4096], err[8192];
    uint64_t t_end;
};

static void *bg_main(void *opaque)
{
    struct bg *b = opaque;
    const char *const *a = b->args;

    b->rc = e2e_xensim_err(&src, b->out, sizeof(b->out), b->err,
                           sizeof(b->err), "migrate", b->id, "--to",
                           dst.dir, "--engine", "xenram", "--no-progress",
                           a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                           a[8], a[9], a[10], a[11], NULL);
    b->t_end = now_ns();
    return NULL;
}

/* `xensim migrate d --to dst --engine xenram ARGS...` (NULL-terminated,
 * at most 11) in a thread. */
static void bg_start(struct bg *b, uint32_t d, ...)
{
    va_list ap;
    unsigned i = 0;

    memset(b, 0, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%u", d);
    va_start(ap, d);
    while (i < 11 && (b->args[i] = va_arg(ap, const char *)))
        i++;
    va_end(ap);
    b->args[i] = NULL;
    assert_int_equal(pthread_create(&b->t, NULL, bg_main, b), 0);
}

static void bg_join(struct bg *b)
{
    pthread_join(b->t, NULL);
}

/* The source's query-migrate (new reference). */
static json_t *query_migrate(uint32_t d)
{
    json_t *r = e2e_qmp(&src, d, "query-migrate", NULL);

    assert_non_null(r);
    return r;
}

/*
 * Wait (bounded) until the migration of @d is in its rounds: the
 * destination's domain exists and has the memory its xenram populated
 * from the LAYOUT record, and the source's query-migrate says active.
 * Returns the destination's domid.
 */
static uint32_t wait_in_rounds(uint32_t d, const char *name)
{
    uint64_t deadline = now_ns() + 20000000000ull;

    for (;;) {
        uint32_t nd = e2e_domid(&dst, name);
        struct xsim_dominfo di;

        if (nd && e2e_dominfo(&dst, nd, &di) && di.tot_pages > 0 &&
            e2e_dm_pid(&dst, nd)) {
            json_t *r = query_migrate(d);
            bool active = !strcmp(json_string_value(json_object_get(
                                      r, "status")) ?: "", "active");

            json_decref(r);
            if (active)
                return nd;
        }
        assert_true(now_ns() < deadline);
        poll(NULL, 0, 20);
    }
}

/* What must hold of the source after a failed or cancelled migration. */
static void source_runs_on(uint32_t d, pid_t spid, const char *name,
                           const char *status)
{
    struct xsim_dominfo info;
    char st[32];
    json_t *r;
    const char *desc;

    r = query_migrate(d);
    assert_string_equal(json_string_value(json_object_get(r, "status")),
                        status);
    desc = json_string_value(json_object_get(r, "error-desc"));
    assert_non_null(desc);
    fprintf(stderr, "error-desc: %s\n", desc);
    assert_true(strlen(desc) > 8);
    json_decref(r);
    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count, 0);
    assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
    assert_int_equal(e2e_dm_pid(&src, d), spid);
    assert_true(e2e_alive(spid));
    e2e_qmp_status(&src, d, st, sizeof(st));
    assert_string_equal(st, "running");
    /* Nothing of it on the destination. */
    assert_int_equal(e2e_domid(&dst, name), 0);
    /* The guest and its device model go on writing, every page whole. */
    assert_true(e2e_wait_vcpu_writes(&src, d, 100));
    {
        json_t *q = e2e_qmp(&src, d, "x-xenram-query-memory", NULL);
        json_int_t w = json_integer_value(json_object_get(
            json_object_get(q, "test-device"), "pages-written"));

        json_decref(q);
        assert_true(w > 0);
        assert_true(e2e_wait_dma(&src, d, (uint64_t)w + 100));
    }
    e2e_verify_clean(&src, d);
}

/* ---- (a) the guest moves ------------------------------------------------ */

static void migrate_ok(const char *name, const char *channels,
                       const char *compress)
{
    char sums[200], line[256], want[64], st[32], id[16], *v, path[160];
    struct e2e_mem before, after;
    struct xsim_dominfo info;
    struct bg b;
    uint32_t d, nd;
    pid_t spid, dpid;
    uint64_t frames, special, newest, fresh;
    bool agrees = false;
    FILE *f;

    d = guest(name, "random:8");
    spid = e2e_dm_pid(&src, d);
    /* The source's memory, mapped before: after `completed` it is frozen
     * at switchover (paused, devices stopped) until destroyed, and the
     * mapping outlives the domain. */
    assert_true(e2e_mem_map(&src, d, &before));
    snprintf(sums, sizeof(sums), "%s/sums-%s", src.dir, name);
    bg_start(&b, d, "--channels", channels, "--compress", compress,
             "--pause-dest", "--checksum-at-suspend", sums, NULL);
    bg_join(&b);
    assert_int_equal(b.rc, 0);

    /* The source is gone: domain, device model, record. */
    assert_int_equal(e2e_domid(&src, name), 0);
    assert_true(e2e_wait_exit(spid, 5000));

    /* The destination as received: paused, xenram waiting for cont. */
    nd = e2e_domid(&dst, name);
    assert_true(nd > 0);
    assert_true(e2e_dominfo(&dst, nd, &info));
    assert_true(info.pause_count > 0);
    assert_string_equal(info.workload, "random:8");
    dpid = e2e_dm_pid(&dst, nd);
    assert_true(e2e_alive(dpid));
    e2e_qmp_status(&dst, nd, st, sizeof(st));
    assert_string_equal(st, "paused");

    /* Page by page, by the test itself. */
    assert_true(e2e_mem_map(&dst, nd, &after));
    frames = e2e_mem_compare(&before, &after, &special);
    /* 56 MiB of RAM (less the VGA hole), 8 special pages, 8 MiB VRAM */
    assert_int_equal(frames, (56ull << 8) - 32 + 8 + (8ull << 8));
    newest = e2e_mem_newest_stamp(&before);
    assert_true(newest > 0);
    /* The special pages travel too (HVM_PARAMS, docs/migration-stream.md). */
    assert_int_equal(special, 0);
    /* ... and the toolstack's comparison finds exactly as much. */
    snprintf(want, sizeof(want), "differing %llu\n",
             (unsigned long long)special);
    f = fopen(sums, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (!strcmp(line, want))
            agrees = true;
    }
    fclose(f);
    assert_true(agrees);
    assert_true(special ? strstr(b.out, "DIFFERENT") != NULL
                        : strstr(b.out, "0 pages differ: identical") != NULL);

    /* Every page whole before it runs; then cont and unpause, as libxl
     * does for a device model started with -S. */
    e2e_verify_clean(&dst, nd);
    json_decref(e2e_qmp(&dst, nd, "cont", NULL));
    snprintf(id, sizeof(id), "%u", nd);
    assert_int_equal(e2e_xensim(&dst, NULL, 0, "unpause", id, NULL), 0);
    e2e_qmp_status(&dst, nd, st, sizeof(st));
    assert_string_equal(st, "running");
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state",
             nd);
    v = e2e_xs_read(&dst, path);
    assert_non_null(v);
    assert_string_equal(v, "running");
    free(v);
    /* The workload continues there (the HVM context arrived): new stamps,
     * of the generations after the source's; the device model writes
     * on; every page stays whole. */
    assert_true(e2e_wait_vcpu_writes(&dst, nd, 100));
    assert_true(e2e_wait_dma(&dst, nd, 100));
    assert_int_equal(e2e_xensim(&dst, NULL, 0, "pause", id, NULL), 0);
    fresh = e2e_mem_stamps_since(&before, &after, newest);
    fprintf(stderr, "%llu new stamps on the destination, all after "
            "generation %llu\n", (unsigned long long)fresh,
            (unsigned long long)newest);
    assert_true(fresh >= 50);
    e2e_mem_unmap(&after);
    e2e_mem_unmap(&before);
    e2e_verify_clean(&dst, nd);
    e2e_destroy(&dst, nd);
    assert_true(e2e_wait_exit(dpid, 5000));
}

static void test_one_channel(void **state)
{
    (void)state;
    NEED_XENSTORE();
    migrate_ok("eng1", "1", "none");
}

static void test_two_channels_zstd(void **state)
{
    (void)state;
    NEED_XENSTORE();
    migrate_ok("eng2", "2", "zstd");
}

/*
 * Hot-plugged RAM present: the slot's block travels in the layout, the
 * receiver re-creates it (online at the same address) and fills it, and
 * the memory is identical at the switchover.  As for xl migrate, the
 * toolstack raised static-max (create --maxmem) and the target (mem-set)
 * over the hot-plugged RAM first (docs/hotplug.md).
 */
static void test_hot_plugged_ram_travels(void **state)
{
    char out[8192], id[16], sums[300];
    uint32_t d, nd;

    (void)state;
    NEED_XENSTORE();
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "64", "--vram", "8", "--maxmem", "256",
                                "--name", "enghp", "--workload", "random:8",
                                "--dm", e2e_xenram(), "--dm-arg",
                                "--test-dma=2000", NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, NULL, 0, "mem-set", id, "136", NULL),
                     0);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "hotplug", id, "add",
                                "64M", NULL), 0);
    assert_non_null(strstr(out, "online"));
    snprintf(sums, sizeof(sums), "%s/sums-enghp", src.dir);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "migrate", id,
                                "--to", dst.dir, "--engine", "xenram",
                                "--channels", "2", "--no-progress",
                                "--checksum-at-suspend", sums, NULL), 0);
    assert_non_null(strstr(out, "0 pages differ: identical"));
    nd = e2e_domid(&dst, "enghp");
    assert_true(nd > 0);
    snprintf(id, sizeof(id), "%u", nd);
    assert_int_equal(e2e_xensim(&dst, out, sizeof(out), "hotplug", id,
                                "list", NULL), 0);
    assert_non_null(strstr(out, "online   0x100000000    64 MiB"));
    e2e_destroy(&dst, nd);
}

/*
 * A migration that died left Xen's log-dirty on (here: turned on by hand).
 * ENABLE then fails in Xen (paging_log_dirty_enable: -EINVAL); the engine
 * turns it off and on again, as libxc's save does, and migrates; the log
 * is off on neither side afterwards by accident: the destination never
 * had it, and the source is gone.
 */
static void test_stale_logdirty_is_taken_over(void **state)
{
    char out[8192], id[16], sums[300];
    uint32_t d, nd;

    (void)state;
    NEED_XENSTORE();
    d = guest("engld", "random:8");
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "dirty-log", id,
                                "--enable", NULL), 0);
    /* On already: a second ENABLE is what Xen refuses. */
    assert_int_not_equal(e2e_xensim(&src, out, sizeof(out), "dirty-log", id,
                                    "--enable", NULL), 0);
    snprintf(sums, sizeof(sums), "%s/sums-engld", src.dir);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "migrate", id,
                                "--to", dst.dir, "--engine", "xenram",
                                "--no-progress", "--checksum-at-suspend",
                                sums, NULL), 0);
    assert_non_null(strstr(out, "0 pages differ: identical"));
    nd = e2e_domid(&dst, "engld");
    assert_true(nd > 0);
    e2e_destroy(&dst, nd);
}

/*
 * auto-converge: a guest that dirties four times what the link sends
 * (random 512 MiB/s against --max-bandwidth 128, a 30 ms downtime-limit)
 * converges only because xenram caps it through the scheduler (credit2),
 * QEMU's steps 20, 30, ... 99%; the throttle shows in the rounds and the
 * memory is equal at the switchover.
 */
static void test_auto_converge_throttles_a_fast_writer(void **state)
{
    static char out[1 << 16];
    char id[16], sums[300], cap[64];
    json_error_t jerr;
    json_t *doc, *rounds, *r;
    size_t i;
    int max_pct = 0, first_throttled = 0;
    uint32_t d, nd;

    (void)state;
    NEED_XENSTORE();
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "16", "--name", "engac", "--workload",
                                "random:512", "--dm", e2e_xenram(), NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    assert_true(e2e_wait_vcpu_writes(&src, d, 200));
    snprintf(id, sizeof(id), "%u", d);
    snprintf(sums, sizeof(sums), "%s/sums-engac", src.dir);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "migrate", id,
                                "--to", dst.dir, "--engine", "xenram",
                                "--auto-converge", "--max-bandwidth", "128",
                                "--downtime-limit", "30", "--no-progress",
                                "--json", "--checksum-at-suspend", sums,
                                NULL), 0);
    doc = json_loads(out, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "completed");
    rounds = json_object_get(doc, "rounds");
    assert_true(json_array_size(rounds) >= 3);
    json_array_foreach(rounds, i, r) {
        int pct = (int)json_integer_value(json_object_get(r,
                                                          "throttle_pct"));

        /* The cap only ever grows while the rounds do not converge. */
        assert_true(pct >= max_pct);
        if (pct && !first_throttled) {
            first_throttled = (int)i + 1;
        }
        max_pct = pct;
    }
    assert_true(first_throttled >= 2);      /* round 1 is never throttled */
    assert_true(max_pct >= 20 && max_pct <= 99);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(doc, "totals"), "max_throttle_pct")),
                     max_pct);
    json_decref(doc);
    {
        /* Memory equal at the switchover, as the toolstack compared it. */
        char line[256];
        bool same = false;
        FILE *f = fopen(sums, "r");

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
            same |= strcmp(line, "differing 0\n") == 0;
        }
        fclose(f);
        assert_true(same);
    }
    nd = e2e_domid(&dst, "engac");
    assert_true(nd > 0);
    /* The destination runs uncapped: the cap was the source's. */
    snprintf(id, sizeof(id), "%u", nd);
    assert_int_equal(e2e_xensim(&dst, cap, sizeof(cap), "sched-credit2", id,
                                NULL), 0);
    {
        /* "Name ID Weight Cap", then the domain's row: its last field. */
        char *row = strchr(cap, '\n'), *last;

        assert_non_null(row);
        last = strrchr(row, ' ');
        assert_non_null(last);
        assert_int_equal(strtoul(last + 1, NULL, 10), 0);
    }
    e2e_destroy(&dst, nd);
}

/* ---- (b) failures ------------------------------------------------------- */

#define FAST_WRITER "random:32"
#define NEVER_CONVERGE "--max-bandwidth", "16", "--downtime-limit", "1"

/* The destination's xenram dies (SIGKILL) in the middle of a round. */
static void test_dest_killed(void **state)
{
    struct bg b;
    uint32_t d, nd;
    pid_t spid, dpid;

    (void)state;
    NEED_XENSTORE();
    d = guest("eng3", FAST_WRITER);
    spid = e2e_dm_pid(&src, d);
    bg_start(&b, d, NEVER_CONVERGE, NULL);
    nd = wait_in_rounds(d, "eng3");
    dpid = e2e_dm_pid(&dst, nd);
    assert_true(dpid > 0);
    assert_int_equal(kill(dpid, SIGKILL), 0);
    bg_join(&b);
    assert_int_equal(b.rc, 1);
    assert_non_null(strstr(b.err, "reports failed: "));
    source_runs_on(d, spid, "eng3", "failed");
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

/* A second migrate while one runs is refused; migrate_cancel ends it. */
static void test_cancel_and_second_migrate(void **state)
{
    char path[160], err[TS_ERRLEN];
    struct ts_qmp q;
    struct bg b;
    json_t *r;
    uint32_t d;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    d = guest("eng4", FAST_WRITER);
    spid = e2e_dm_pid(&src, d);
    bg_start(&b, d, NEVER_CONVERGE, NULL);
    wait_in_rounds(d, "eng4");

    /*
     * Once a round has synced, query-migrate's dirty-pages-rate is that
     * sync's rate until the next one, mid-round updates included (as in
     * QEMU): a writing guest never shows 0.  Samples over several updates
     * (they come every 100 ms), bounded.
     */
    {
        uint64_t deadline = now_ns() + 20000000000ull;
        unsigned samples = 0;

        while (samples < 8) {
            json_t *qm = query_migrate(d), *ram = json_object_get(qm, "ram");
            json_int_t syncs = json_integer_value(json_object_get(
                                   ram, "dirty-sync-count"));

            if (syncs >= 2) {
                assert_true(json_integer_value(json_object_get(
                                ram, "dirty-pages-rate")) > 0);
                samples++;
            }
            json_decref(qm);
            assert_true(now_ns() < deadline);
            poll(NULL, 0, 40);
        }
    }

    snprintf(path, sizeof(path), "%s/qmp-libxl-%u", src.dir, d);
    assert_int_equal(ts_qmp_connect(&q, path, -1, 5000, err, sizeof(err)),
                     0);
    r = ts_qmp_exec(&q, "migrate", json_pack("{s:s}", "uri",
                                             "unix:/nonexistent/sock"),
                    -1, 10000, err, sizeof(err));
    assert_null(r);
    fprintf(stderr, "second migrate: %s\n", err);
    assert_non_null(strstr(err, "already in progress"));
    /* Parameters cannot change under it either. */
    r = ts_qmp_exec(&q, "migrate-set-parameters",
                    json_pack("{s:I}", "downtime-limit", 100), -1, 10000,
                    err, sizeof(err));
    assert_null(r);
    r = ts_qmp_exec(&q, "migrate_cancel", NULL, -1, 10000, err, sizeof(err));
    assert_non_null(r);
    json_decref(r);
    ts_qmp_close(&q);

    bg_join(&b);
    assert_int_equal(b.rc, 1);
    assert_non_null(strstr(b.err, "reports cancelled: "));
    source_runs_on(d, spid, "eng4", "cancelled");
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

/* The destination's xenram stops (SIGSTOP): no progress on its channels;
 * the source gives up within its stall timeout. */
static void test_dest_stopped(void **state)
{
    struct bg b;
    uint32_t d, nd;
    pid_t spid, dpid;
    uint64_t t0;
    double secs;

    (void)state;
    NEED_XENSTORE();
    d = guest("eng5", FAST_WRITER);
    spid = e2e_dm_pid(&src, d);
    bg_start(&b, d, NEVER_CONVERGE, NULL);
    nd = wait_in_rounds(d, "eng5");
    dpid = e2e_dm_pid(&dst, nd);
    assert_true(dpid > 0);
    t0 = now_ns();
    assert_int_equal(kill(dpid, SIGSTOP), 0);
    bg_join(&b);
    secs = (double)(b.t_end - t0) / 1e9;
    fprintf(stderr, "the source gave up after %.1f s\n", secs);
    assert_int_equal(b.rc, 1);
    assert_non_null(strstr(b.err, "stalled"));
    /* The socket buffers fill (about 1 s at 16 MiB/s), 10 s without
     * progress, then the destination is stopped and destroyed. */
    assert_true(secs >= 9.5);
    assert_true(secs < 14.0);
    source_runs_on(d, spid, "eng5", "failed");
    assert_false(e2e_alive(dpid));
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_channel),
        cmocka_unit_test(test_two_channels_zstd),
        cmocka_unit_test(test_hot_plugged_ram_travels),
        cmocka_unit_test(test_stale_logdirty_is_taken_over),
        cmocka_unit_test(test_auto_converge_throttles_a_fast_writer),
        cmocka_unit_test(test_dest_killed),
        cmocka_unit_test(test_cancel_and_second_migrate),
        cmocka_unit_test(test_dest_stopped),
    };

    e2e_init(120);
    return cmocka_run_group_tests_name("e2e-engine", tests, setup,
                                       e2e_group_teardown);
}
