/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-migrate-fail.c - faults injected into the libxc-like path
 * (`xensim migrate`, as `xl migrate` does it) at each phase, and what each
 * side is left with (docs/toolstack.md, "When xl migrate fails").
 *
 * XENSIM_TEST_MIGRATE_HOOK=stop-at-<point> makes the toolstack print
 * "test hook: stopped at <point>" and SIGSTOP itself there; the test reads
 * that line from its stdout (a blocking read, no sleep), strikes, and
 * SIGCONTs it.  The points, in the migration's order:
 *
 *   live           after round 1: log-dirty on, both device models' dirty
 *                  logs on, the destination domain built
 *   saved          the source paused, its device model stopped and its
 *                  state saved
 *   dirty-log-off  the final round sent, the source's device model done
 *   before-cont    the destination's device model started with the state
 *
 * Strikes: kill -9 of the source's device model, and kill -9 of the
 * toolstack itself.  (The destination's device model dying before cont is
 * test-e2e-migrate's.)
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"

static struct e2e_host src, dst;
static bool no_xenstore;

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* A 32 MiB guest whose vCPUs and test DMA write throughout. */
static uint32_t guest(const char *name)
{
    char out[256];

    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create", "--mem",
                                "32", "--vram", "8", "--name", name,
                                "--workload", "random:8", "--dm",
                                e2e_xenram(), "--dm-arg", "--test-dma=200",
                                NULL), 0);
    return (uint32_t)strtoul(out, NULL, 10);
}

/* A migration of @d stopped at @point: its pid, its output on *@fp. */
static pid_t migrate_until(uint32_t d, const char *point, FILE **fp)
{
    char xensim[512], id[16], hook[64], line[256];
    int out[2];
    pid_t pid;

    snprintf(xensim, sizeof(xensim), "%s/xensim", e2e_build());
    snprintf(id, sizeof(id), "%u", d);
    snprintf(hook, sizeof(hook), "stop-at-%s", point);
    assert_int_equal(pipe(out), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[0]);
        close(out[1]);
        setenv("XENSIM_TEST_MIGRATE_HOOK", hook, 1);
        execl(xensim, "xensim", "--dir", src.dir, "migrate", id, "--to",
              dst.dir, "--no-progress", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    *fp = fdopen(out[0], "r");
    assert_non_null(*fp);
    /* The toolstack says where it stopped, then stops. */
    for (;;) {
        char want[96];

        if (!fgets(line, sizeof(line), *fp)) {
            fail_msg("the migration ended before %s", point);
        }
        snprintf(want, sizeof(want), "test hook: stopped at %s\n", point);
        if (!strcmp(line, want)) {
            break;
        }
    }
    /* Stopped for sure before we strike (WUNTRACED sees the stop). */
    {
        int st;

        assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
        assert_true(WIFSTOPPED(st));
    }
    return pid;
}

/* Continue it and collect its exit status and the rest of its output. */
static int finish(pid_t pid, FILE *fp, char *out, size_t outlen)
{
    size_t n = 0;
    int st;

    kill(pid, SIGCONT);
    while (n + 1 < outlen && fgets(out + n, (int)(outlen - n), fp)) {
        n += strlen(out + n);
    }
    out[n] = '\0';
    fclose(fp);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void verify(struct e2e_host *h, uint32_t d)
{
    char out[512], id[16];

    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(h, out, sizeof(out), "verify", id, NULL), 0);
    assert_non_null(strstr(out, " 0 corrupt"));
}

/*
 * The source's device model dies before its state was saved: the
 * migration fails, the destination goes, the source is resumed as libxl
 * does -- and the toolstack says plainly that it runs without its device
 * model.
 */
static void srcdm_dies_before_save(const char *point, const char *name)
{
    struct xsim_dominfo info;
    char out[8192];
    uint32_t d;
    pid_t tp, spid;
    FILE *fp;

    NEED_XENSTORE();
    d = guest(name);
    spid = e2e_dm_pid(&src, d);
    assert_true(e2e_wait_dma(&src, d, 50));
    tp = migrate_until(d, point, &fp);
    kill(spid, SIGKILL);
    assert_true(e2e_wait_exit(spid, 5000));
    assert_int_not_equal(finish(tp, fp, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "resumed on"));
    assert_non_null(strstr(out, "the source's device model"));
    assert_non_null(strstr(out, "has died"));
    /* The guest stays on the source, running; nothing on the destination. */
    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count, 0);
    assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
    assert_int_equal(e2e_domid(&dst, name), 0);
    verify(&src, d);
    e2e_destroy(&src, d);
}

static void test_source_dm_killed_during_the_rounds(void **state)
{
    (void)state;
    srcdm_dies_before_save("live", "mf1");
}

static void test_source_dm_killed_after_saving_its_state(void **state)
{
    (void)state;
    /* Its state is saved but the final round's reports are not in. */
    srcdm_dies_before_save("saved", "mf2");
}

/*
 * Past the final round the source's device model has nothing more to
 * give: the migration completes and the guest runs on the destination.
 */
static void srcdm_dies_after_final_round(const char *point, const char *name)
{
    struct xsim_dominfo info;
    char out[8192];
    uint32_t d, nd;
    pid_t tp, spid;
    FILE *fp;

    NEED_XENSTORE();
    d = guest(name);
    spid = e2e_dm_pid(&src, d);
    tp = migrate_until(d, point, &fp);
    kill(spid, SIGKILL);
    assert_true(e2e_wait_exit(spid, 5000));
    assert_int_equal(finish(tp, fp, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "migrated d"));
    assert_int_equal(e2e_domid(&src, name), 0);
    nd = e2e_domid(&dst, name);
    assert_true(nd > 0);
    assert_true(e2e_dominfo(&dst, nd, &info));
    assert_int_equal(info.pause_count, 0);
    verify(&dst, nd);
    e2e_destroy(&dst, nd);
}

static void test_source_dm_killed_after_the_final_round(void **state)
{
    (void)state;
    srcdm_dies_after_final_round("dirty-log-off", "mf3");
}

static void test_source_dm_killed_before_the_destination_runs(void **state)
{
    (void)state;
    srcdm_dies_after_final_round("before-cont", "mf4");
}

/*
 * The toolstack itself is killed: nobody is left to decide, so both
 * copies stay as they were -- the destination's paused and never run, the
 * source's paused once it was suspended -- and the administrator recovers
 * the source (xl destroy of the destination, then unpause, and cont of a
 * device model that was stopped): the guest lost nothing.
 */
static void toolstack_killed(const char *point, const char *name,
                             bool suspended)
{
    struct xsim_dominfo info;
    char out[8192], id[16], status[32];
    uint32_t d, nd;
    pid_t tp, spid;
    FILE *fp;

    NEED_XENSTORE();
    d = guest(name);
    spid = e2e_dm_pid(&src, d);
    tp = migrate_until(d, point, &fp);
    kill(tp, SIGKILL);
    assert_int_equal(finish(tp, fp, out, sizeof(out)), 128 + SIGKILL);

    /* The destination's copy: there, paused, never run. */
    nd = e2e_domid(&dst, name);
    assert_true(nd > 0);
    assert_true(e2e_dominfo(&dst, nd, &info));
    assert_true(info.pause_count > 0);
    /* The source's: paused iff it had been suspended; its DM alive. */
    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count > 0, suspended);
    assert_true(e2e_alive(spid));
    e2e_qmp_status(&src, d, status, sizeof(status));
    assert_string_equal(status, suspended ? "paused" : "running");

    /* Recovery, as an administrator would. */
    e2e_destroy(&dst, nd);
    snprintf(id, sizeof(id), "%u", d);
    if (suspended) {
        json_t *r = e2e_qmp(&src, d, "cont", NULL);

        assert_non_null(r);
        json_decref(r);
        assert_int_equal(e2e_xensim(&src, NULL, 0, "unpause", id, NULL), 0);
    }
    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count, 0);
    e2e_qmp_status(&src, d, status, sizeof(status));
    assert_string_equal(status, "running");
    assert_true(e2e_wait_vcpu_writes(&src, d, 50));
    assert_true(e2e_wait_dma(&src, d, 50));
    verify(&src, d);
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

static void test_toolstack_killed_during_the_rounds(void **state)
{
    (void)state;
    toolstack_killed("live", "mf5", false);
}

static void test_toolstack_killed_after_the_suspend(void **state)
{
    (void)state;
    toolstack_killed("saved", "mf6", true);
}

static void test_toolstack_killed_after_the_final_round(void **state)
{
    (void)state;
    toolstack_killed("dirty-log-off", "mf7", true);
}

static void test_toolstack_killed_before_the_destination_runs(void **state)
{
    (void)state;
    toolstack_killed("before-cont", "mf8", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_dm_killed_during_the_rounds),
        cmocka_unit_test(test_source_dm_killed_after_saving_its_state),
        cmocka_unit_test(test_source_dm_killed_after_the_final_round),
        cmocka_unit_test(test_source_dm_killed_before_the_destination_runs),
        cmocka_unit_test(test_toolstack_killed_during_the_rounds),
        cmocka_unit_test(test_toolstack_killed_after_the_suspend),
        cmocka_unit_test(test_toolstack_killed_after_the_final_round),
        cmocka_unit_test(test_toolstack_killed_before_the_destination_runs),
    };

    e2e_init(120);
    return cmocka_run_group_tests_name("e2e-migrate-fail", tests, setup,
                                       e2e_group_teardown);
}
