/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-xenstore-sim: Debian's xenstored under the simulator, spoken to by
 * Debian's xenstore-* tools, by the real libxenstore and by a guest through
 * its store ring.
 *
 * One xenstored serves the whole group, in a fresh directory under $TMPDIR.
 * It is stopped in the group teardown; if the program dies instead, the
 * kernel sends it SIGTERM (PR_SET_PDEATHSIG), and an alarm bounds the run.
 *
 * Needs Debian's xenstored and tools from `make xenstored`, and the stand-ins of
 * $(BUILD)/sim, which xenstored loads from $(BUILD)/tests/integration/
 * xenstore/lib beside a test double of libxenctrl (fake-xenctrl.c): the
 * domains that "exist" for xenstored are the ones this test lists in
 * <run dir>/test-domains.  $BUILD (set by tests/run-tests.sh) names the
 * build directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "xen/sim/xenstore/xs-sim.h"

#ifndef XS_TEST_BUILD
#define XS_TEST_BUILD "build"
#endif
#ifndef XS_SIM_XENSTORED_DIR            /* where `make xenstored` unpacks */
#define XS_SIM_XENSTORED_DIR "build/xenstored"
#endif

#define RUN_TIMEOUT_S   120     /* the whole program */
#define TOOL_TIMEOUT_MS 10000   /* one xenstore-* tool */
#define WATCH_WAIT_MS   5000

static char run_dir[PATH_MAX];
static char socket_path[PATH_MAX + 16];
static char tools_dir[PATH_MAX];
static volatile pid_t xenstored_pid;

/* ---- harness ------------------------------------------------------------- */

static void on_alarm(int sig)
{
    static const char msg[] =
        "test-xenstore-sim: timed out; stopping xenstored\n";

    (void)sig;
    if (xenstored_pid > 0)
        kill(xenstored_pid, SIGKILL);
    if (write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char *build_dir(void)
{
    const char *b = getenv("BUILD");

    return b && *b ? b : XS_TEST_BUILD;
}

static int group_setup(void **state)
{
    char lib_dir[PATH_MAX], path[PATH_MAX + 32];
    const char *tmp = getenv("TMPDIR");
    pid_t pid;
    int rc;

    (void)state;
    signal(SIGALRM, on_alarm);
    alarm(RUN_TIMEOUT_S);

    snprintf(lib_dir, sizeof(lib_dir), "%s/tests/integration/xenstore/lib",
             build_dir());
    snprintf(tools_dir, sizeof(tools_dir), "%s/usr/bin",
             XS_SIM_XENSTORED_DIR);
    snprintf(path, sizeof(path), "%s/libxenevtchn.so.1", lib_dir);
    if (access(path, R_OK) < 0) {
        fprintf(stderr, "test-xenstore-sim: %s is missing: build the test "
                "with make\n", path);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/xenstore-read", tools_dir);
    if (access(path, X_OK) < 0) {
        fprintf(stderr, "test-xenstore-sim: %s is missing: run `make "
                "xenstored` (xen/sim/xenstore/fetch-xenstored.sh) first\n",
                path);
        return -1;
    }

    snprintf(run_dir, sizeof(run_dir), "%s/xs-sim-test.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(run_dir)) {
        fprintf(stderr, "test-xenstore-sim: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    rc = xs_sim_start(run_dir, lib_dir, &pid);
    if (rc < 0) {
        fprintf(stderr, "test-xenstore-sim: xs_sim_start: %s\n",
                strerror(-rc));
        nftw(run_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return -1;
    }
    xenstored_pid = pid;
    snprintf(socket_path, sizeof(socket_path), "%s/socket", run_dir);
    /* For the tools and for xs_open() in this process. */
    setenv("XENSTORED_PATH", socket_path, 1);
    setenv("XENSTORED_RUNDIR", run_dir, 1);
    return 0;
}

static int group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (xenstored_pid > 0) {
        rc = xs_sim_stop(xenstored_pid);
        xenstored_pid = 0;
    }
    if (run_dir[0] && !getenv("XS_TEST_KEEP"))
        nftw(run_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    alarm(0);
    return rc < 0 ? -1 : 0;
}

/*
 * Run tools_dir/@tool with the NULL-terminated arguments; its stdout goes
 * to @out (if not NULL, NUL-terminated, truncated to @outlen).  Killed
 * after TOOL_TIMEOUT_MS.  Returns the exit status, or -1.
 */
static int run_tool_v(char *out, size_t outlen, const char *tool, va_list ap)
{
    char path[PATH_MAX + 64];
    const char *argv[16];
    int argc = 0, pfd[2], status = -1;
    size_t used = 0;
    struct timespec t0, t;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", tools_dir, tool);
    argv[argc++] = path;
    while (argc < 15 && (argv[argc] = va_arg(ap, const char *)))
        argc++;
    argv[argc] = NULL;
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        char buf[512];
        ssize_t n;
        long ms;

        clock_gettime(CLOCK_MONOTONIC, &t);
        ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= TOOL_TIMEOUT_MS) {
            fprintf(stderr, "%s: still running after %d ms, killed\n", tool,
                    TOOL_TIMEOUT_MS);
            kill(pid, SIGKILL);
            break;
        }
        if (poll(&p, 1, (int)(TOOL_TIMEOUT_MS - ms)) <= 0)
            continue;
        n = read(pfd[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        if (out && used + 1 < outlen) {
            size_t k = (size_t)n < outlen - 1 - used ? (size_t)n
                                                     : outlen - 1 - used;
            memcpy(out + used, buf, k);
            used += k;
        }
    }
    close(pfd[0]);
    if (out)
        out[used] = '\0';
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* waitpid() for up to @ms; 1 if reaped. */
static int reap_within(pid_t pid, int *status, int ms)
{
    for (int waited = 0; waited <= ms; waited += 5) {
        if (waitpid(pid, status, WNOHANG) == pid)
            return 1;
        usleep(5000);
    }
    return 0;
}

static int run_tool(char *out, size_t outlen, const char *tool, ...)
{
    va_list ap;
    int rc;

    va_start(ap, tool);
    rc = run_tool_v(out, outlen, tool, ap);
    va_end(ap);
    return rc;
}

static struct xs_handle *xs(void)
{
    struct xs_handle *h = xs_open(XS_OPEN_SOCKETONLY);

    assert_non_null(h);
    return h;
}

/* xs_read as a string, or NULL with errno. */
static char *xs_get(struct xs_handle *h, const char *path)
{
    unsigned int len;

    return xs_read(h, XBT_NULL, path, &len);
}

static void assert_xs_value(struct xs_handle *h, const char *path,
                            const char *want)
{
    char *v = xs_get(h, path);

    if (!v)
        fail_msg("%s: %s", path, strerror(errno));
    assert_string_equal(v, want);
    free(v);
}

static void assert_xs_absent(struct xs_handle *h, const char *path)
{
    char *v = xs_get(h, path);

    if (v)
        fail_msg("%s still exists (\"%s\")", path, v);
    assert_int_equal(errno, ENOENT);
}

/* Permissions of @path in the tools' notation: "n0,r5". */
static void perms_string(struct xs_handle *h, const char *path, char *buf,
                         size_t len)
{
    unsigned int n;
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, path, &n);
    size_t used = 0;

    if (!p)
        fail_msg("get permissions of %s: %s", path, strerror(errno));
    buf[0] = '\0';
    for (unsigned int i = 0; i < n; i++) {
        char c = "nrwb"[p[i].perms & (XS_PERM_READ | XS_PERM_WRITE)];

        used += (size_t)snprintf(buf + used, len - used, "%s%c%u",
                                 i ? "," : "", c, p[i].id);
        if (used >= len)
            break;
    }
    free(p);
}

static void assert_perms(struct xs_handle *h, const char *path,
                         const char *want)
{
    char got[128];

    perms_string(h, path, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("permissions of %s: got %s, want %s", path, got, want);
}

/* Next watch event within WATCH_WAIT_MS: its path into @path. */
static void expect_watch(struct xs_handle *h, const char *token,
                         const char *want_path)
{
    struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };
    unsigned int n;
    char **ev;

    if (poll(&p, 1, WATCH_WAIT_MS) <= 0)
        fail_msg("no watch event for %s within %d ms", want_path,
                 WATCH_WAIT_MS);
    ev = xs_read_watch(h, &n);
    assert_non_null(ev);
    assert_string_equal(ev[XS_WATCH_TOKEN], token);
    assert_string_equal(ev[XS_WATCH_PATH], want_path);
    free(ev);
}

static void expect_no_watch(struct xs_handle *h, int ms)
{
    struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };

    assert_int_equal(poll(&p, 1, ms), 0);
}

/* Make domain @domid exist, or not, for xenstored's xc_domain_getinfo(). */
static void set_domain_exists(uint32_t domid, int exists)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 32], line[32];
    FILE *in, *out;

    snprintf(path, sizeof(path), "%s/test-domains", run_dir);
    snprintf(tmp, sizeof(tmp), "%s/test-domains.new", run_dir);
    out = fopen(tmp, "w");
    assert_non_null(out);
    in = fopen(path, "r");
    while (in && fgets(line, sizeof(line), in))
        if (strtoul(line, NULL, 10) != domid)
            fputs(line, out);
    if (in)
        fclose(in);
    if (exists)
        fprintf(out, "%u\n", domid);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* ---- the tools ----------------------------------------------------------- */

static void test_tools_write_then_read_round_trips(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/tools/a",
                              "hello world", NULL), 0);
    assert_int_equal(run_tool(out, sizeof(out), "xenstore-read",
                              "/test/tools/a", NULL), 0);
    assert_string_equal(out, "hello world\n");
}

static void test_tools_ls_lists_children_with_values(void **state)
{
    char out[1024];

    (void)state;
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/ls/x", "1",
                              "/test/ls/y", "2", NULL), 0);
    assert_int_equal(run_tool(out, sizeof(out), "xenstore-ls", "/test/ls",
                              NULL), 0);
    assert_non_null(strstr(out, "x = \"1\""));
    assert_non_null(strstr(out, "y = \"2\""));
}

static void test_tools_rm_removes_subtree(void **state)
{
    struct xs_handle *h = xs();

    (void)state;
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/rm/a/b", "v",
                              NULL), 0);
    assert_int_equal(run_tool(NULL, 0, "xenstore-rm", "/test/rm/a", NULL), 0);
    assert_xs_absent(h, "/test/rm/a/b");
    assert_xs_absent(h, "/test/rm/a");
    /* And the tool reports the missing key as an error. */
    assert_int_not_equal(run_tool(NULL, 0, "xenstore-read", "/test/rm/a",
                                  NULL), 0);
    xs_close(h);
}

static void test_tools_chmod_sets_permission_list(void **state)
{
    struct xs_handle *h = xs();
    char out[512];

    (void)state;
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/perm", "p",
                              NULL), 0);
    assert_int_equal(run_tool(NULL, 0, "xenstore-chmod", "/test/perm", "n0",
                              "r5", "b7", NULL), 0);
    assert_perms(h, "/test/perm", "n0,r5,b7");
    assert_int_equal(run_tool(out, sizeof(out), "xenstore-ls", "-p",
                              "/test", NULL), 0);
    assert_non_null(strstr(out, "(n0,r5,b7)"));
    xs_close(h);
}

static void test_tools_watch_reports_each_change(void **state)
{
    char path[PATH_MAX + 32], out[512] = "";
    int pfd[2], status;
    size_t used = 0;
    pid_t pid;

    (void)state;
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/tw", "0",
                              NULL), 0);
    /* Three events: the one on registration, then one per write. */
    snprintf(path, sizeof(path), "%s/xenstore-watch", tools_dir);
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        execl(path, path, "-n", "3", "/test/tw", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    /* Wait for the registration event before writing. */
    while (!strchr(out, '\n')) {
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, WATCH_WAIT_MS) <= 0)
            break;
        n = read(pfd[0], out + used, sizeof(out) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        out[used] = '\0';
    }
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/tw", "1",
                              NULL), 0);
    assert_int_equal(run_tool(NULL, 0, "xenstore-write", "/test/tw/sub", "2",
                              NULL), 0);
    for (;;) {
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, WATCH_WAIT_MS) <= 0)
            break;
        n = read(pfd[0], out + used, sizeof(out) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        out[used] = '\0';
    }
    close(pfd[0]);
    /* EOF comes a moment before the exiting process can be reaped. */
    if (!reap_within(pid, &status, WATCH_WAIT_MS)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("xenstore-watch -n 3 did not finish; it printed: %s", out);
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_string_equal(out, "/test/tw\n/test/tw\n/test/tw/sub\n");
}

/* ---- the real libxenstore ------------------------------------------------ */

static void test_libxenstore_write_read_directory(void **state)
{
    struct xs_handle *h = xs();
    unsigned int n;
    char **dir;

    (void)state;
    assert_true(xs_write(h, XBT_NULL, "/test/lib/k1", "v1", 2));
    assert_true(xs_write(h, XBT_NULL, "/test/lib/k2", "", 0));
    assert_xs_value(h, "/test/lib/k1", "v1");
    assert_xs_value(h, "/test/lib/k2", "");
    dir = xs_directory(h, XBT_NULL, "/test/lib", &n);
    assert_non_null(dir);
    assert_int_equal(n, 2);
    free(dir);
    /* Written by the library, read by the tool. */
    {
        char out[64];

        assert_int_equal(run_tool(out, sizeof(out), "xenstore-read",
                                  "/test/lib/k1", NULL), 0);
        assert_string_equal(out, "v1\n");
    }
    xs_close(h);
}

static void test_libxenstore_transaction_commits_atomically(void **state)
{
    struct xs_handle *h = xs();
    xs_transaction_t t = xs_transaction_start(h);

    (void)state;
    assert_int_not_equal(t, XBT_NULL);
    assert_true(xs_write(h, t, "/test/txn/a", "1", 1));
    assert_xs_absent(h, "/test/txn/a");     /* not visible outside yet */
    assert_true(xs_transaction_end(h, t, false));
    assert_xs_value(h, "/test/txn/a", "1");
    xs_close(h);
}

static void test_libxenstore_watch_fires_twice(void **state)
{
    struct xs_handle *h = xs(), *w = xs();

    (void)state;
    assert_true(xs_write(h, XBT_NULL, "/test/watch", "0", 1));
    assert_true(xs_watch(w, "/test/watch", "tok"));
    expect_watch(w, "tok", "/test/watch");          /* on registration */
    assert_true(xs_write(h, XBT_NULL, "/test/watch", "1", 1));
    expect_watch(w, "tok", "/test/watch");
    assert_true(xs_write(h, XBT_NULL, "/test/watch/child", "2", 1));
    expect_watch(w, "tok", "/test/watch/child");
    assert_true(xs_unwatch(w, "/test/watch", "tok"));
    assert_true(xs_write(h, XBT_NULL, "/test/watch", "3", 1));
    expect_no_watch(w, 200);
    xs_close(w);
    xs_close(h);
}

/* ---- an introduced domain -------------------------------------------------- */

#define GUEST 5

static void test_introduce_writes_libxl_keys(void **state)
{
    struct xs_handle *h = xs();
    char path[128], *vm;

    (void)state;
    set_domain_exists(GUEST, 1);
    assert_int_equal(xs_sim_domain_introduce(socket_path, GUEST, "guest5",
                                             262144, 0), 0);
    assert_xs_value(h, "/local/domain/5/name", "guest5");
    assert_xs_value(h, "/local/domain/5/domid", "5");
    assert_xs_value(h, "/local/domain/5/memory/target", "262144");
    assert_xs_value(h, "/local/domain/5/memory/static-max", "262144");
    assert_xs_value(h, "/local/domain/5/store/port", "1");
    assert_xs_value(h, "/local/domain/5/control/shutdown", "");
    assert_xs_value(h, "/libxl/5/type", "hvm");
    assert_xs_value(h, "/libxl/5/dm-version", "qemu_xen");
    assert_xs_value(h, "/local/domain/0/device-model/5", "");
    assert_xs_absent(h, "/local/domain/5/image/device-model-domid");

    vm = xs_get(h, "/local/domain/5/vm");
    assert_non_null(vm);
    assert_memory_equal(vm, "/vm/", 4);
    snprintf(path, sizeof(path), "%s/name", vm);
    assert_xs_value(h, path, "guest5");
    snprintf(path, sizeof(path), "%s/uuid", vm);
    assert_xs_value(h, path, vm + 4);
    free(vm);

    assert_true(xs_is_domain_introduced(h, GUEST));
    vm = xs_get_domain_path(h, GUEST);
    assert_string_equal(vm, "/local/domain/5");
    free(vm);
    xs_close(h);
}

static void test_introduce_sets_libxl_permissions(void **state)
{
    struct xs_handle *h = xs();

    (void)state;
    assert_perms(h, "/local/domain/5", "n0,r5");
    assert_perms(h, "/local/domain/5/memory/target", "n0,r5");
    assert_perms(h, "/local/domain/5/control/shutdown", "n5");
    assert_perms(h, "/local/domain/5/data", "n5");
    assert_perms(h, "/local/domain/0/device-model/5", "n0");
    assert_perms(h, "/libxl/5", "n0");
    xs_close(h);
}

static void test_introduce_twice_is_refused(void **state)
{
    (void)state;
    assert_int_equal(xs_sim_domain_introduce(socket_path, GUEST, "guest5",
                                             262144, 0), -EEXIST);
}

static void test_guest_reads_its_own_keys(void **state)
{
    struct xs_sim_guest *g;
    char *v = NULL;

    (void)state;
    assert_int_equal(xs_sim_guest_open(run_dir, GUEST, &g), 0);
    assert_int_equal(xs_sim_guest_read(g, "name", &v), 0);
    assert_string_equal(v, "guest5");
    free(v);
    assert_int_equal(xs_sim_guest_read(g, "/local/domain/5/memory/target",
                                       &v), 0);
    assert_string_equal(v, "262144");
    free(v);
    xs_sim_guest_close(g);
}

static void test_guest_write_to_dom0_key_is_refused(void **state)
{
    struct xs_sim_guest *g;
    struct xs_handle *h = xs();
    char *v = NULL;

    (void)state;
    assert_int_equal(xs_sim_guest_open(run_dir, GUEST, &g), 0);
    assert_int_equal(xs_sim_guest_write(g, "memory/target", "1"), -EACCES);
    assert_int_equal(xs_sim_guest_write(g,
                         "/local/domain/0/device-model/5/state", "running"),
                     -EACCES);
    assert_int_equal(xs_sim_guest_read(g, "/local/domain/0/name", &v),
                     -EACCES);
    assert_int_equal(xs_sim_guest_read(g, "/libxl/5/type", &v), -EACCES);
    assert_xs_value(h, "/local/domain/5/memory/target", "262144");
    xs_sim_guest_close(g);
    xs_close(h);
}

static void test_guest_write_to_own_node_is_seen_by_dom0(void **state)
{
    struct xs_sim_guest *g;
    struct xs_handle *h = xs();

    (void)state;
    assert_int_equal(xs_sim_guest_open(run_dir, GUEST, &g), 0);
    assert_int_equal(xs_sim_guest_write(g, "data/from-guest", "hi"), 0);
    assert_xs_value(h, "/local/domain/5/data/from-guest", "hi");
    /* A node a guest creates is its own. */
    assert_perms(h, "/local/domain/5/data/from-guest", "n5");
    xs_sim_guest_close(g);
    xs_close(h);
}

static void test_virq_dom_exc_leaves_xenstored_serving(void **state)
{
    struct xs_handle *h;

    (void)state;
    assert_int_equal(xs_sim_virq_dom_exc(run_dir), 0);
    /* xenstored asked libxenctrl about its domains; it must still serve. */
    h = xs();
    assert_xs_value(h, "/local/domain/0/name", "Domain-0");
    xs_close(h);
}

static void test_release_removes_keys_and_fires_release_watch(void **state)
{
    struct xs_handle *h = xs(), *w = xs();
    char *vm = xs_get(h, "/local/domain/5/vm");

    (void)state;
    assert_non_null(vm);
    assert_true(xs_watch(w, "@releaseDomain", "rel"));
    expect_watch(w, "rel", "@releaseDomain");       /* on registration */

    assert_int_equal(xs_sim_domain_release(socket_path, GUEST), 0);
    expect_watch(w, "rel", "@releaseDomain");
    assert_xs_absent(h, "/local/domain/5");
    assert_xs_absent(h, vm);
    assert_xs_absent(h, "/libxl/5");
    assert_xs_absent(h, "/local/domain/0/device-model/5");
    assert_false(xs_is_domain_introduced(h, GUEST));
    /* Releasing again is harmless; the id can be introduced anew. */
    assert_int_equal(xs_sim_domain_release(socket_path, GUEST), 0);
    assert_int_equal(xs_sim_domain_introduce(socket_path, GUEST, "again",
                                             131072, 0), 0);
    assert_xs_value(h, "/local/domain/5/name", "again");
    assert_int_equal(xs_sim_domain_release(socket_path, GUEST), 0);
    free(vm);
    xs_close(w);
    xs_close(h);
}

static void test_stub_domain_device_model_keys(void **state)
{
    struct xs_handle *h = xs();

    (void)state;
    set_domain_exists(9, 1);
    set_domain_exists(10, 1);
    assert_int_equal(xs_sim_domain_introduce(socket_path, 9, "hvm9", 65536,
                                             10), 0);
    assert_xs_value(h, "/local/domain/9/image/device-model-domid", "10");
    assert_xs_value(h, "/local/domain/10/target", "9");
    assert_perms(h, "/local/domain/10/device-model/9", "n10");
    assert_int_equal(xs_sim_domain_release(socket_path, 9), 0);
    assert_xs_absent(h, "/local/domain/10/device-model/9");
    assert_xs_absent(h, "/local/domain/10/target");
    set_domain_exists(9, 0);
    set_domain_exists(10, 0);
    xs_close(h);
}

static void test_introduce_of_nonexistent_domain_fails(void **state)
{
    struct xs_handle *h = xs();

    (void)state;
    /* xenstored refuses a node owned by a domain Xen does not know. */
    assert_int_equal(xs_sim_domain_introduce(socket_path, 11, "ghost", 65536,
                                             0), -ENOENT);
    assert_false(xs_is_domain_introduced(h, 11));
    assert_int_equal(xs_sim_domain_release(socket_path, 11), 0);
    assert_xs_absent(h, "/local/domain/11");
    xs_close(h);
}

static void test_dead_domain_is_released_on_virq_dom_exc(void **state)
{
    struct xs_handle *h = xs(), *w = xs();

    (void)state;
    set_domain_exists(12, 1);
    assert_int_equal(xs_sim_domain_introduce(socket_path, 12, "dies", 65536,
                                             0), 0);
    assert_true(xs_watch(w, "@releaseDomain", "rel"));
    expect_watch(w, "rel", "@releaseDomain");       /* on registration */

    /* Still alive: VIRQ_DOM_EXC changes nothing. */
    assert_int_equal(xs_sim_virq_dom_exc(run_dir), 0);
    expect_no_watch(w, 200);
    assert_true(xs_is_domain_introduced(h, 12));

    /* Gone from "Xen": xenstored notices on the next VIRQ_DOM_EXC. */
    set_domain_exists(12, 0);
    assert_int_equal(xs_sim_virq_dom_exc(run_dir), 0);
    expect_watch(w, "rel", "@releaseDomain");
    assert_false(xs_is_domain_introduced(h, 12));
    /* The toolstack still cleans up its keys, as libxl does. */
    assert_int_equal(xs_sim_domain_release(socket_path, 12), 0);
    assert_xs_absent(h, "/local/domain/12");
    xs_close(w);
    xs_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tools_write_then_read_round_trips),
        cmocka_unit_test(test_tools_ls_lists_children_with_values),
        cmocka_unit_test(test_tools_rm_removes_subtree),
        cmocka_unit_test(test_tools_chmod_sets_permission_list),
        cmocka_unit_test(test_tools_watch_reports_each_change),
        cmocka_unit_test(test_libxenstore_write_read_directory),
        cmocka_unit_test(test_libxenstore_transaction_commits_atomically),
        cmocka_unit_test(test_libxenstore_watch_fires_twice),
        cmocka_unit_test(test_introduce_writes_libxl_keys),
        cmocka_unit_test(test_introduce_sets_libxl_permissions),
        cmocka_unit_test(test_introduce_twice_is_refused),
        cmocka_unit_test(test_guest_reads_its_own_keys),
        cmocka_unit_test(test_guest_write_to_dom0_key_is_refused),
        cmocka_unit_test(test_guest_write_to_own_node_is_seen_by_dom0),
        cmocka_unit_test(test_release_removes_keys_and_fires_release_watch),
        cmocka_unit_test(test_stub_domain_device_model_keys),
        cmocka_unit_test(test_introduce_of_nonexistent_domain_fails),
        cmocka_unit_test(test_dead_domain_is_released_on_virq_dom_exc),
        cmocka_unit_test(test_virq_dom_exc_leaves_xenstored_serving),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
