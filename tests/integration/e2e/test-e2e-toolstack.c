/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-toolstack.c - `xensim create --dm xenram` plays libxl: the
 * device model runs with libxl's command line and environment, answers
 * QMP, announces itself in xenstore, and is stopped by `xensim destroy`;
 * a device model that cannot start fails the create cleanly; a QMP client
 * that disconnects mid-command does not hurt the device model.
 *
 * Real programs only: the xensim daemon with Debian's xenstored, `xensim`
 * as the toolstack, `xenram` as the device model.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "xen/sim/proto.h"
#include "xen/sim/toolstack.h"

static struct e2e_host host;
static bool no_xenstore;

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&host, NULL, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* `xensim create --dm xenram ...`: the new domid. */
static uint32_t create_dm(const char *name, const char *mem, const char *vram,
                          const char *arg1, const char *arg2)
{
    char out[256];
    int rc;

    if (arg2)
        rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", mem,
                        "--vram", vram, "--name", name, "--workload",
                        "random:4", "--dm", e2e_xenram(), "--dm-arg", arg1,
                        "--dm-arg", arg2, NULL);
    else if (arg1)
        rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", mem,
                        "--vram", vram, "--name", name, "--workload",
                        "random:4", "--dm", e2e_xenram(), "--dm-arg", arg1,
                        NULL);
    else
        rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", mem,
                        "--vram", vram, "--name", name, "--workload",
                        "random:4", "--dm", e2e_xenram(), NULL);
    assert_int_equal(rc, 0);
    return (uint32_t)strtoul(out, NULL, 10);
}

/* /proc/PID/cmdline as a vector. */
static int read_cmdline(pid_t pid, char *buf, size_t len, char **argv,
                        int max)
{
    char path[64];
    ssize_t n;
    int fd, argc = 0;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    for (char *p = buf; p < buf + n && argc < max; p += strlen(p) + 1)
        argv[argc++] = p;
    return argc;
}

static bool environ_has(pid_t pid, const char *entry)
{
    char path[64], buf[65536];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    for (char *p = buf; p < buf + n; p += strlen(p) + 1)
        if (strncmp(p, entry, strlen(entry)) == 0)
            return true;
    return false;
}

/* (a) The device model as libxl starts it, ready in QMP and xenstore. */
static void test_create_dm_like_libxl(void **state)
{
    char buf[8192], *argv[64], exp[64][256], path[200], status[32];
    char env[PATH_MAX + 32];
    struct xsim_dominfo info;
    uint32_t d;
    pid_t pid;
    char *v;
    int argc, n = 0;
    json_t *r;

    (void)state;
    NEED_XENSTORE();
    d = create_dm("tsa", "48", "8", "--test-dma=100", NULL);
    assert_true(d > 0);
    pid = e2e_dm_pid(&host, d);
    assert_true(pid > 0);
    assert_true(e2e_alive(pid));

    /* libxl__build_device_model_args_new for an HVM guest, memory=48,
     * videoram=8, vnc=0, device_model_args=["--test-dma=100"]. */
#define EXP(...) snprintf(exp[n++], sizeof(exp[0]), __VA_ARGS__)
    EXP("%s", e2e_xenram());
    EXP("-xen-domid");
    EXP("%u", d);
    EXP("-no-shutdown");
    EXP("-chardev");
    EXP("socket,id=libxl-cmd,path=%s/qmp-libxl-%u,server=on,wait=off",
        host.dir, d);
    EXP("-mon");
    EXP("chardev=libxl-cmd,mode=control");
    EXP("-chardev");
    EXP("socket,id=libxenstat-cmd,path=%s/qmp-libxenstat-%u,server=on,"
        "wait=off", host.dir, d);
    EXP("-mon");
    EXP("chardev=libxenstat-cmd,mode=control");
    EXP("-nodefaults");
    EXP("-no-user-config");
    EXP("-name");
    EXP("tsa");
    EXP("-vnc");
    EXP("none");
    EXP("-display");
    EXP("none");
    EXP("-device");
    EXP("VGA,vgamem_mb=8");
    EXP("-boot");
    EXP("order=cda");
    EXP("-net");
    EXP("none");
    EXP("--test-dma=100");
    EXP("-machine");
    EXP("xenfv,suppress-vmdesc=on");
    EXP("-m");
    EXP("40");                  /* max_memkb - video_memkb */
#undef EXP
    argc = read_cmdline(pid, buf, sizeof(buf), argv, 64);
    assert_int_equal(argc, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(argv[i], exp[i]);

    /* libxl's environment, and the host's. */
    snprintf(env, sizeof(env), "XEN_DOMAIN_ID=%u", d);
    assert_true(environ_has(pid, env));
    assert_true(environ_has(pid, "XEN_QEMU_CONSOLE_LIMIT=1048576"));
    snprintf(env, sizeof(env), "XENSIM_DIR=%s", host.dir);
    assert_true(environ_has(pid, env));
    snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s/sim", e2e_build());
    assert_true(environ_has(pid, env));

    /* Ready: xenstore and QMP agree; libxl's pid record is there. */
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state", d);
    v = e2e_xs_read(&host, path);
    assert_non_null(v);
    assert_string_equal(v, "running");
    free(v);
    snprintf(path, sizeof(path), "/local/domain/%u/image/device-model-pid",
             d);
    v = e2e_xs_read(&host, path);
    assert_non_null(v);
    assert_int_equal(atoi(v), pid);
    free(v);
    e2e_qmp_status(&host, d, status, sizeof(status));
    assert_string_equal(status, "running");
    r = e2e_qmp(&host, d, "x-xenram-query-memory", NULL);
    assert_non_null(r);
    json_decref(r);

    /* The domain was left paused until the device model was ready, then
     * unpaused (xl create). */
    assert_true(e2e_dominfo(&host, d, &info));
    assert_int_equal(info.pause_count, 0);
    /* RAM as libxc lays it out (40 MiB less the VGA hole, 8 special
     * pages) and the 8 MiB of VRAM the device model populated. */
    assert_int_equal(info.tot_pages, (40ull << 8) - 32 + 8 + (8ull << 8));

    /* destroy: device model first (it exits), then the domain. */
    {
        char id[16];

        snprintf(id, sizeof(id), "%u", d);
        assert_int_equal(e2e_xensim(&host, NULL, 0, "destroy", id, NULL), 0);
    }
    assert_true(e2e_wait_exit(pid, 5000));
    assert_false(e2e_dominfo(&host, d, &info));
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state", d);
    v = e2e_xs_read(&host, path);
    assert_null(v);
    snprintf(path, sizeof(path), "%s/domain-%u.json", host.dir, d);
    assert_int_equal(access(path, F_OK), -1);
}

/* (a) With -S the device model waits in prelaunch; xensim sends cont. */
static void test_create_dm_prelaunch(void **state)
{
    char status[32], id[16];
    uint32_t d;
    pid_t pid;

    (void)state;
    NEED_XENSTORE();
    d = create_dm("tsb", "40", "8", "-S", NULL);
    pid = e2e_dm_pid(&host, d);
    assert_true(e2e_alive(pid));
    e2e_qmp_status(&host, d, status, sizeof(status));
    assert_string_equal(status, "running");
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&host, NULL, 0, "destroy", id, NULL), 0);
    assert_true(e2e_wait_exit(pid, 5000));
}

/* (a) A device model that dies at start: a clear error, no domain left. */
static void test_create_dm_fails(void **state)
{
    char out[256];
    int rc;

    (void)state;
    NEED_XENSTORE();
    rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", "40",
                    "--vram", "8", "--name", "tsc", "--dm", e2e_xenram(),
                    "--dm-arg", "--no-such-option", NULL);
    assert_int_equal(rc, 1);
    assert_int_equal(e2e_domid(&host, "tsc"), 0);
    /* Not a device model at all: exits at once. */
    rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", "40",
                    "--vram", "8", "--name", "tsd", "--dm", "/bin/true",
                    NULL);
    assert_int_equal(rc, 1);
    assert_int_equal(e2e_domid(&host, "tsd"), 0);
    /* Alive but never ready: bounded by --dm-timeout, then stopped. */
    {
        char script[200];
        FILE *f;

        snprintf(script, sizeof(script), "%s/hang-dm", host.dir);
        f = fopen(script, "w");
        assert_non_null(f);
        fputs("#!/bin/sh\nexec sleep 60\n", f);
        fclose(f);
        assert_int_equal(chmod(script, 0755), 0);
        rc = e2e_xensim(&host, out, sizeof(out), "create", "--mem", "40",
                        "--vram", "8", "--name", "tse", "--dm", script,
                        "--dm-timeout", "1", NULL);
        assert_int_equal(rc, 1);
        assert_int_equal(e2e_domid(&host, "tse"), 0);
    }
}

/* (e) A QMP client that sends half a command and goes: the device model
 * serves the next client. */
static void test_qmp_client_disconnects(void **state)
{
    static const char *const halves[] = {
        "{\"execute\":\"qmp_capabilities\"}\r\n{\"execute\":\"query-st",
        "{\"execute\":\"qmp_capabilities\",\"id\":1}\r\n{\"execute\":"
        "\"xen-save-devices-state\",\"arguments\":{\"filename\":\"/dev/fd",
        "{\"exec",
        "",
    };
    char path[200], status[32], id[16];
    uint32_t d;
    pid_t pid;

    (void)state;
    NEED_XENSTORE();
    d = create_dm("tsf", "40", "8", "--test-dma=200", NULL);
    pid = e2e_dm_pid(&host, d);
    snprintf(path, sizeof(path), "%s/qmp-libxl-%u", host.dir, d);
    for (size_t i = 0; i < sizeof(halves) / sizeof(halves[0]); i++) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char greeting[1024];
        ssize_t n;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        n = read(fd, greeting, sizeof(greeting) - 1);
        assert_true(n > 0);
        greeting[n] = 0;
        assert_non_null(strstr(greeting, "\"QMP\""));
        if (halves[i][0])
            assert_int_equal(write(fd, halves[i], strlen(halves[i])),
                             (ssize_t)strlen(halves[i]));
        close(fd);

        /* A new client gets answers. */
        e2e_qmp_status(&host, d, status, sizeof(status));
        assert_string_equal(status, "running");
        assert_true(e2e_alive(pid));
    }
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&host, NULL, 0, "destroy", id, NULL), 0);
    assert_true(e2e_wait_exit(pid, 5000));
}

/*
 * The README's "Running xenram on the simulator": xenram started by hand on
 * libxl's QMP socket for a domain created without --dm.  xensim cannot
 * follow that device model, so hot-plug (add, list) and both migration
 * paths refuse with a sentence that says what to do, and change nothing:
 * the domain stays, the hand-started xenram runs on.
 */
static void test_a_hand_started_dm_is_refused_not_ignored(void **state)
{
    char out[4096], err[2048], id[16], path[200], xs[200], lib[600];
    char dest[160];
    struct e2e_host dst;
    uint32_t d;
    pid_t pid;

    (void)state;
    NEED_XENSTORE();
    assert_int_equal(e2e_xensim(&host, out, sizeof(out), "create", "--mem",
                                "32", "--vram", "4", "--name", "byhand",
                                NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    snprintf(id, sizeof(id), "%u", d);
    snprintf(path, sizeof(path), "socket,id=libxl-cmd,path=%s/qmp-libxl-%u,"
             "server=on,wait=off", host.dir, d);
    snprintf(xs, sizeof(xs), "%s/xenstored/socket", host.dir);
    snprintf(lib, sizeof(lib), "%s/sim", e2e_build());
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("XENSIM_DIR", host.dir, 1);
        setenv("XENSTORED_PATH", xs, 1);
        setenv("LD_LIBRARY_PATH", lib, 1);
        execl(e2e_xenram(), "xenram", "-xen-domid", id, "-m", "28",
              "-device", "VGA,vgamem_mb=4", "-chardev", path, "-mon",
              "chardev=libxl-cmd,mode=control", (char *)NULL);
        _exit(127);
    }
    /* Ready once its QMP answers. */
    {
        char st[32] = "";

        for (int i = 0; i < 500 && strcmp(st, "running"); i++) {
            e2e_qmp_status(&host, d, st, sizeof(st));
            if (strcmp(st, "running"))
                poll(NULL, 0, 10);
        }
        assert_string_equal(st, "running");
    }

    assert_int_equal(e2e_xensim_err(&host, out, sizeof(out), err,
                                    sizeof(err), "hotplug", id, "list",
                                    NULL), 1);
    assert_non_null(strstr(err, "a device model xensim did not start"));
    assert_non_null(strstr(err, "--dm build/xenram"));
    assert_int_equal(e2e_xensim_err(&host, out, sizeof(out), err,
                                    sizeof(err), "hotplug", id, "add", "64M",
                                    NULL), 1);
    assert_non_null(strstr(err, "hot-plug RAM"));

    assert_int_equal(e2e_host_start(&dst), 0);
    snprintf(dest, sizeof(dest), "%s", dst.dir);
    assert_int_equal(e2e_xensim_err(&host, out, sizeof(out), err,
                                    sizeof(err), "migrate", id, dest,
                                    "--no-progress", NULL), 1);
    assert_non_null(strstr(err, "cannot migrate the domain"));
    assert_int_equal(e2e_xensim_err(&host, out, sizeof(out), err,
                                    sizeof(err), "migrate", id, dest,
                                    "--engine", "xenram", "--no-progress",
                                    NULL), 1);
    assert_non_null(strstr(err, "did not start"));
    /* Nothing moved: the domain is here, none there, xenram runs on. */
    assert_int_equal(e2e_domid(&host, "byhand"), d);
    assert_int_equal(e2e_domid(&dst, "byhand"), 0);
    assert_true(e2e_alive(pid));
    kill(pid, SIGTERM);
    assert_true(e2e_wait_exit(pid, 5000));
    assert_int_equal(e2e_xensim(&host, NULL, 0, "destroy", id, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_dm_like_libxl),
        cmocka_unit_test(test_create_dm_prelaunch),
        cmocka_unit_test(test_create_dm_fails),
        cmocka_unit_test(test_qmp_client_disconnects),
        cmocka_unit_test(test_a_hand_started_dm_is_refused_not_ignored),
    };

    e2e_init(60);
    return cmocka_run_group_tests_name("e2e-toolstack", tests, setup,
                                       e2e_group_teardown);
}
