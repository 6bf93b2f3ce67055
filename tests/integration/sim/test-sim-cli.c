/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-cli.c - the xensim command line: start (detached and in the
 * foreground), create, list, pause, workload, dirty-log, guest-write,
 * verify, checksum, dm-state, mem-max and mem-set without xenstore
 * (test-e2e-hotplug has them with it), destroy, stop, and its usage
 * errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#include "tests/integration/sim/simtest.h"

static struct simhost host;
static char out[65536];

static int group_setup(void **state)
{
    (void)state;
    /* A detached daemon becomes our child, so we can always reap it. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    return simhost_start(&host, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

#define CLI(...) sim_run_cli(&host, out, sizeof(out), __VA_ARGS__, NULL)

static uint32_t create(const char *name, const char *workload)
{
    long id;

    assert_int_equal(CLI("create", "--mem", "16", "--name", name,
                         "--workload", workload), 0);
    id = strtol(out, NULL, 10);
    assert_true(id > 0);
    return (uint32_t)id;
}

static void test_help_and_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(sim_run_cli(NULL, out, sizeof(out), "--help", NULL), 0);
    assert_non_null(strstr(out, "Usage: xensim"));
    assert_non_null(strstr(out, "dirty-log"));
    assert_int_equal(CLI("create", "--name", "x"), 2);
    assert_int_equal(CLI("create", "--mem", "16", "--workload", "fast"), 2);
    assert_int_equal(CLI("create", "--mem", "16", "--workload", "hotset:0:5"),
                     2);
    assert_int_equal(CLI("frobnicate"), 2);
    assert_int_equal(CLI("pause"), 2);
    /* mem-set and mem-max: DOMAIN and a size as xl takes it (MiB by
     * default, b k m g t), a whole non-zero number of MiB, checked before
     * the domain is looked for. */
    assert_int_equal(CLI("mem-set"), 2);
    assert_int_equal(CLI("mem-set", "nosuch"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "0"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "lots"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "64Q"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "64mb"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "100k"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "-1g"), 2);
    assert_int_equal(CLI("mem-set", "nosuch", "64", "extra"), 2);
    assert_int_equal(CLI("mem-max", "nosuch", "0"), 2);
    /* A good size gets as far as looking for the domain. */
    assert_int_equal(CLI("mem-set", "nosuch", "64M"), 1);
    /* Per-command help, both ways xl offers it. */
    assert_int_equal(CLI("migrate", "--help"), 0);
    assert_non_null(strstr(out, "Usage: xensim [--dir DIR] migrate DOMAIN"));
    assert_int_equal(CLI("help", "mem-set"), 0);
    assert_non_null(strstr(out, "mem-set DOMAIN SIZE"));
    assert_int_equal(CLI("help", "frobnicate"), 2);
    assert_int_equal(CLI("list", "-x"), 2);
    /* migrate DOMAIN HOST, or --to; two different ones are refused. */
    assert_int_equal(CLI("migrate", "d1", "/tmp/a", "--to", "/tmp/b"), 2);
    assert_int_equal(CLI("migrate", "d1"), 2);
}

static void test_no_host_is_a_clear_error(void **state)
{
    (void)state;
    assert_int_equal(sim_run_cli(NULL, out, sizeof(out), "--dir",
                                 "/tmp/xsimt-no-such-host", "list", NULL), 1);
}

static void test_detached_start_info_and_stop(void **state)
{
    char dir[] = "/tmp/xsimt-cli.XXXXXX", path[256];
    struct stat st;
    FILE *f;
    int pid = 0, status;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(sim_run_cli(NULL, out, sizeof(out), "--dir", dir, "start",
                                 "--xenstore", "off", NULL), 0);
    assert_non_null(strstr(out, "host running"));
    snprintf(path, sizeof(path), "%s/xensim.pid", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    assert_true(pid > 0);
    /* One host per directory. */
    if (sim_run_cli(NULL, out, sizeof(out), "--dir", dir, "start",
                    "--xenstore", "off", NULL) != 1) {
        kill(pid, SIGKILL);
        fail_msg("a second host started in the same directory");
    }
    assert_int_equal(sim_run_cli(NULL, out, sizeof(out), "--dir", dir, "info",
                                 NULL), 0);
    assert_non_null(strstr(out, "dirty_tracking"));
    assert_non_null(strstr(out, "domains          : 1"));
    assert_int_equal(sim_run_cli(NULL, out, sizeof(out), "--dir", dir, "stop",
                                 NULL), 0);
    /* stop returns once the daemon has gone; we are its subreaper. */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(path, sizeof(path), "%s/xensim.sock", dir);
    assert_int_equal(stat(path, &st), -1);
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    assert_int_equal(system(path), 0);
}

static void test_create_list_pause_destroy(void **state)
{
    uint32_t d;
    char want[64];

    (void)state;
    d = create("web", "random:2");
    assert_int_equal(CLI("list"), 0);
    assert_non_null(strstr(out, "web"));
    assert_non_null(strstr(out, "random:2"));
    assert_int_equal(CLI("pause", "web"), 0);
    assert_int_equal(CLI("list"), 0);
    assert_non_null(strstr(out, "--p---"));
    assert_int_equal(CLI("unpause", "web"), 0);
    assert_int_equal(CLI("unpause", "web"), 1);       /* not paused */
    assert_int_equal(CLI("workload", "web", "idle"), 0);
    assert_int_equal(CLI("list"), 0);
    assert_non_null(strstr(out, "-b----"));
    /* Names are unique. */
    assert_int_equal(CLI("create", "--mem", "16", "--name", "web"), 1);
    snprintf(want, sizeof(want), "%u", d);
    assert_int_equal(CLI("destroy", want), 0);
    assert_int_equal(CLI("list"), 0);
    assert_null(strstr(out, "web"));
    assert_int_equal(CLI("destroy", "web"), 1);
}

static void test_dirty_log_and_guest_write(void **state)
{
    uint32_t d = create("logged", "idle");
    char id[16];

    (void)state;
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(CLI("dirty-log", id), 0);
    assert_non_null(strstr(out, "log-dirty is off"));
    assert_int_equal(CLI("dirty-log", id, "--enable"), 0);
    assert_int_equal(CLI("guest-write", id, "0x10-0x13", "0x400"), 0);
    assert_non_null(strstr(out, "wrote 5 of 5"));
    assert_int_equal(CLI("dirty-log", id, "--peek"), 0);
    assert_non_null(strstr(out, "peek: 5 dirty page(s)"));
    assert_int_equal(CLI("dirty-log", id), 0);
    assert_non_null(strstr(out, "clean: 5 dirty page(s)"));
    assert_non_null(strstr(out, "0x10-0x13"));
    assert_non_null(strstr(out, "0x400"));
    assert_int_equal(CLI("dirty-log", id), 0);
    assert_non_null(strstr(out, "clean: 0 dirty page(s)"));
    assert_int_equal(CLI("list"), 0);
    assert_non_null(strstr(out, " on"));
    assert_int_equal(CLI("dirty-log", id, "--disable"), 0);
    assert_int_equal(CLI("destroy", id), 0);
}

static void test_verify_and_checksum(void **state)
{
    uint32_t d = create("stamped", "random:20");
    xenforeignmemory_handle *f;
    char id[16], sum1[64], sum2[64];
    xen_pfn_t gfn = 0x321;
    uint8_t *p;

    (void)state;
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(CLI("guest-write", id, "0x100-0x1ff"), 0);
    assert_int_equal(CLI("verify", id), 0);
    assert_non_null(strstr(out, " 0 corrupt"));
    assert_int_equal(CLI("pause", id), 0);
    assert_int_equal(CLI("checksum", id), 0);
    snprintf(sum1, sizeof(sum1), "%.32s", out);
    assert_int_equal(CLI("checksum", id), 0);
    snprintf(sum2, sizeof(sum2), "%.32s", out);
    assert_string_equal(sum1, sum2);
    assert_int_equal(CLI("guest-write", id, "0x321"), 0);
    assert_int_equal(CLI("checksum", id), 0);
    assert_string_not_equal(sum1, out);
    /* Somebody else's write over a stamped page is caught. */
    f = xenforeignmemory_open(NULL, 0);
    assert_non_null(f);
    p = xenforeignmemory_map(f, d, PROT_READ | PROT_WRITE, 1, &gfn, NULL);
    assert_non_null(p);
    p[2000] ^= 0xff;
    assert_int_equal(CLI("verify", id), 1);
    assert_non_null(strstr(out, " 1 corrupt"));
    p[2000] ^= 0xff;
    assert_int_equal(CLI("checksum", id), 0);
    snprintf(sum1, sizeof(sum1), "%.32s", out);
    /*
     * The top bit of two neighbouring words flipped: word-wise FNV-1a
     * (the digest before XXH3-128) maps both copies to one value.
     */
    p[8 * 10 + 7] ^= 0x80;
    p[8 * 11 + 7] ^= 0x80;
    assert_int_equal(CLI("checksum", id), 0);
    assert_string_not_equal(sum1, out);
    xenforeignmemory_unmap(f, p, 1);
    xenforeignmemory_close(f);
    assert_int_equal(CLI("unpause", id), 0);
    assert_int_equal(CLI("destroy", id), 0);
}

static void test_dm_state(void **state)
{
    uint32_t d = create("dm", "idle");
    char id[16];

    (void)state;
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(CLI("dm-state", id), 0);
    assert_non_null(strstr(out, "logdirty off"));
    assert_int_equal(CLI("destroy", id), 0);
}

/* Xen's maximum of a domain, in pages, from the host. */
static uint64_t max_pages(uint32_t d)
{
    uint64_t args[6] = { 1 };
    struct xsim_dominfo info;
    int err = 0;

    assert_int_equal(simhost_call(&host, XSIM_OP_DOM_GETINFO, d, args, NULL,
                                  0, &info, sizeof(info), &err), 1);
    assert_int_equal(err, 0);
    assert_int_equal(info.domid, d);
    return info.max_pages;
}

/* mem-max and mem-set on a host without xenstore: the maximum is Xen's
 * alone; the target lives in xenstore, so mem-set fails, changing
 * nothing. */
static void test_mem_max_and_mem_set_without_xenstore(void **state)
{
    char id[16];
    uint32_t d;

    (void)state;
    d = create("mem", "idle");
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(max_pages(d), (16ull << 8) + 256);
    assert_int_equal(CLI("mem-max", "mem", "32"), 0);
    assert_int_equal(max_pages(d), (32ull << 8) + 256);
    assert_int_equal(CLI("mem-set", "mem", "24"), 1);
    assert_int_equal(max_pages(d), (32ull << 8) + 256);
    assert_int_equal(CLI("mem-set", "nosuch", "24"), 1);
    assert_int_equal(CLI("mem-set", "999", "24"), 1);
    /* Sizes as xl takes them: 64m, 1g (1024 MiB), 65536k. */
    assert_int_equal(CLI("mem-max", "mem", "64m"), 0);
    assert_int_equal(max_pages(d), (64ull << 8) + 256);
    assert_int_equal(CLI("mem-max", "mem", "1g"), 0);
    assert_int_equal(max_pages(d), (1024ull << 8) + 256);
    assert_int_equal(CLI("mem-max", "mem", "65536k"), 0);
    assert_int_equal(max_pages(d), (64ull << 8) + 256);
    assert_int_equal(CLI("destroy", id), 0);
}

/* xl's habits: a name in use refused with libxl's words; list of named
 * domains, and list -l as JSON. */
static void test_create_in_use_and_list_forms(void **state)
{
    uint32_t d = create("habits", "idle"), e = create("other", "idle");
    char id[16], eid[16];
    json_t *arr;
    json_error_t jerr;

    (void)state;
    snprintf(id, sizeof(id), "%u", d);
    snprintf(eid, sizeof(eid), "%u", e);
    assert_int_equal(CLI("create", "--mem", "16", "--name", "habits"), 1);
    assert_int_equal(CLI("list", "habits"), 0);
    assert_non_null(strstr(out, "habits"));
    assert_null(strstr(out, "other"));
    assert_null(strstr(out, "Domain-0"));
    assert_int_equal(CLI("list", "nosuch"), 1);
    assert_int_equal(CLI("list", "-l", "habits", eid), 0);
    arr = json_loads(out, 0, &jerr);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(arr, 0), "name")), "habits");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(arr, 1), "domid")), e);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(arr, 0), "memory_mib")), 15);
    json_decref(arr);
    assert_int_equal(CLI("destroy", id), 0);
    assert_int_equal(CLI("destroy", eid), 0);
}

static void test_xenstore_sees_domains_come_and_go(void **state)
{
    struct simhost xh;
    struct xs_handle *xs;
    char sock[200], path[64], *v;
    unsigned int len;
    long d;

    (void)state;
    if (simhost_start_xs(&xh, NULL, "on") != 0) {
        setenv("XENSIM_DIR", host.dir, 1);
        print_message("no xenstored here (make xenstored): skipped\n");
        skip();
    }
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", xh.dir);
    setenv("XENSTORED_PATH", sock, 1);
    xs = xs_open(XS_OPEN_SOCKETONLY);
    assert_non_null(xs);
    v = xs_read(xs, XBT_NULL, "/local/domain/0/name", &len);
    assert_non_null(v);
    assert_string_equal(v, "Domain-0");
    free(v);
    assert_int_equal(sim_run_cli(&xh, out, sizeof(out), "create", "--mem",
                                 "16", "--name", "stored", NULL), 0);
    d = strtol(out, NULL, 10);
    assert_true(d > 0);
    snprintf(path, sizeof(path), "/local/domain/%ld/name", d);
    v = xs_read(xs, XBT_NULL, path, &len);
    assert_non_null(v);
    assert_string_equal(v, "stored");
    free(v);
    assert_int_equal(sim_run_cli(&xh, out, sizeof(out), "destroy", "stored",
                                 NULL), 0);
    errno = 0;
    assert_null(xs_read(xs, XBT_NULL, path, &len));
    assert_int_equal(errno, ENOENT);
    xs_close(xs);
    assert_int_equal(simhost_stop(&xh), 0);
    setenv("XENSIM_DIR", host.dir, 1);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage_errors),
        cmocka_unit_test(test_no_host_is_a_clear_error),
        cmocka_unit_test(test_detached_start_info_and_stop),
        cmocka_unit_test(test_create_list_pause_destroy),
        cmocka_unit_test(test_dirty_log_and_guest_write),
        cmocka_unit_test(test_verify_and_checksum),
        cmocka_unit_test(test_create_in_use_and_list_forms),
        cmocka_unit_test(test_dm_state),
        cmocka_unit_test(test_mem_max_and_mem_set_without_xenstore),
        cmocka_unit_test(test_xenstore_sees_domains_come_and_go),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
