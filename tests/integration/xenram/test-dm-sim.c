/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-dm-sim.c - the xenram program on the simulated host, driven the way
 * libxl drives it: start-up states and the xenstore `state` key, stop /
 * cont, device state saved through an fd passed with add-fd and loaded
 * with -incoming fd:N, and the refusals of bad state and bad input.
 *
 * The QMP socket is created by the test and handed to xenram as an
 * inherited listening fd (libxl's dm_restrict mode), so the test can
 * connect at once: nothing waits for a socket file to appear.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <xenctrl.h>
#include <xenstore.h>

#include "migration/devstate.h"
#include "tests/integration/sim/simtest.h"

#define GUEST_MIB 48
#define VRAM_MIB 4
#define DM_MIB (GUEST_MIB - VRAM_MIB)

static struct simhost host;
static int dm_serial;

typedef struct Dm {
    pid_t pid;
    int pidfd;
    int qmp;                    /* our connection */
    FILE *in;
    char log[256];
    uint32_t domid;
} Dm;

static int create_domain_vcpus(uint32_t vcpus)
{
    struct xsim_create c = { .vcpus = vcpus, .mem_kb = GUEST_MIB << 10,
                             .vram_kb = VRAM_MIB << 10 };
    int err;
    int64_t id;

    snprintf(c.workload, sizeof(c.workload), "idle");
    id = simhost_call(&host, XSIM_OP_DOM_CREATE, 0, NULL, &c, sizeof(c),
                      NULL, 0, &err);
    return id < 0 ? -err : (int)id;
}

static int create_domain(void)
{
    return create_domain_vcpus(1);
}

/*
 * Start xenram for @domid with @extra arguments (NULL-terminated list) and
 * @incoming_fd (-1: none).  Returns with a connected QMP client whose
 * greeting has been read, or with qmp -1 if the program exited first.
 */
static void dm_start(Dm *dm, uint32_t domid, int incoming_fd, ...)
{
    char path[200], bin[256], fdarg[64], chardev[96], incarg[32], mem[16];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *argv[40];
    int argc = 0, lfd;
    va_list ap;

    memset(dm, 0, sizeof(*dm));
    dm->domid = domid;
    snprintf(path, sizeof(path), "%s/qmp-test-%d", host.dir, ++dm_serial);
    snprintf(dm->log, sizeof(dm->log), "%s/dm-%d.log", host.dir, dm_serial);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    strcpy(sa.sun_path, path);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);

    snprintf(bin, sizeof(bin), "%s/xenram", sim_build_dir());
    snprintf(fdarg, sizeof(fdarg), "%u", domid);
    snprintf(chardev, sizeof(chardev),
             "socket,id=libxl-cmd,fd=%d,server=on,wait=off", lfd);
    snprintf(mem, sizeof(mem), "%d", DM_MIB);
    argv[argc++] = bin;
    argv[argc++] = "-xen-domid";
    argv[argc++] = fdarg;
    argv[argc++] = "-chardev";
    argv[argc++] = chardev;
    argv[argc++] = "-mon";
    argv[argc++] = "chardev=libxl-cmd,mode=control";
    argv[argc++] = "-no-shutdown";
    argv[argc++] = "-nodefaults";
    argv[argc++] = "-machine";
    argv[argc++] = "xenfv";
    argv[argc++] = "-device";
    argv[argc++] = "VGA,vgamem_mb=" "4";
    if (incoming_fd >= 0) {
        snprintf(incarg, sizeof(incarg), "fd:%d", incoming_fd);
        argv[argc++] = "-incoming";
        argv[argc++] = incarg;
    }
    va_start(ap, incoming_fd);
    for (const char *a; (a = va_arg(ap, const char *));) {
        if (!strcmp(a, "-m")) {
            argv[argc++] = a;
            argv[argc++] = va_arg(ap, const char *);
            mem[0] = '\0';
            continue;
        }
        argv[argc++] = a;
    }
    va_end(ap);
    if (mem[0]) {
        argv[argc++] = "-m";
        argv[argc++] = mem;
    }
    argv[argc] = NULL;

    dm->pid = fork();
    assert_true(dm->pid >= 0);
    if (dm->pid == 0) {
        char xs[200];
        int log = open(dm->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        snprintf(xs, sizeof(xs), "%s/xenstored/socket", host.dir);
        setenv("XENSTORED_PATH", xs, 1);
        /* The event channels' namespace, as xensim create --dm sets it. */
        snprintf(xs, sizeof(xs), "%s/xenstored", host.dir);
        setenv("XENSTORED_RUNDIR", xs, 1);
        dup2(log, 2);
        execv(bin, (char **)argv);
        _exit(127);
    }
    dm->pidfd = syscall(SYS_pidfd_open, dm->pid, 0);
    assert_true(dm->pidfd >= 0);
    if (incoming_fd >= 0) {
        close(incoming_fd);
    }

    /* The listening socket exists already: connect now, before accept. */
    dm->qmp = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(dm->qmp, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(lfd);
    unlink(path);
    dm->in = fdopen(dup(dm->qmp), "r");
}

/* The next message, or NULL when xenram closed the connection. */
static json_t *dm_recv(Dm *dm)
{
    char line[65536];

    if (!fgets(line, sizeof(line), dm->in)) {
        return NULL;
    }
    return json_loads(line, 0, NULL);
}

/* Send a command (with @fd by SCM_RIGHTS if >= 0), return its reply. */
static json_t *dm_cmd_fd(Dm *dm, const char *cmd, int fd)
{
    char buf[1024];
    char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    json_t *r;

    snprintf(buf, sizeof(buf), "%s\r\n", cmd);
    iov = (struct iovec) { buf, strlen(buf) };
    if (fd >= 0) {
        struct cmsghdr *cm;

        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    assert_int_equal(sendmsg(dm->qmp, &msg, MSG_NOSIGNAL),
                     (ssize_t)strlen(buf));
    while ((r = dm_recv(dm)) && json_object_get(r, "event")) {
        json_decref(r);
    }
    assert_non_null(r);
    return r;
}

/* Read the greeting: true if there was one (xenram serves QMP). */
static bool dm_greeted(Dm *dm)
{
    json_t *g = dm_recv(dm);
    bool ok = g && json_object_get(g, "QMP");

    json_decref(g);
    return ok;
}

static json_t *dm_cmd(Dm *dm, const char *cmd)
{
    return dm_cmd_fd(dm, cmd, -1);
}

static void dm_ok(Dm *dm, const char *cmd)
{
    json_t *r = dm_cmd(dm, cmd);

    if (!json_object_get(r, "return")) {
        char *t = json_dumps(r, 0);

        print_error("%s -> %s\n", cmd, t);
        free(t);
        json_decref(r);
        fail();
    }
    json_decref(r);
}

static const char *dm_status(Dm *dm)
{
    static char status[32];
    json_t *r = dm_cmd(dm, "{\"execute\":\"query-status\"}");

    snprintf(status, sizeof(status), "%s", json_string_value(
        json_object_get(json_object_get(r, "return"), "status")));
    json_decref(r);
    return status;
}

/* Wait (bounded, on the pidfd) for xenram to exit; its exit status. */
static int dm_wait(Dm *dm)
{
    struct pollfd p = { .fd = dm->pidfd, .events = POLLIN };
    int st;

    if (poll(&p, 1, 20000) != 1) {
        kill(dm->pid, SIGKILL);
    }
    assert_int_equal(waitpid(dm->pid, &st, 0), dm->pid);
    close(dm->pidfd);
    fclose(dm->in);
    close(dm->qmp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void dm_quit(Dm *dm)
{
    dm_ok(dm, "{\"execute\":\"quit\"}");
    assert_int_equal(dm_wait(dm), 0);
}

static bool log_says(Dm *dm, const char *needle)
{
    char buf[8192] = "";
    FILE *f = fopen(dm->log, "r");
    size_t n;

    if (!f) {
        return false;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (!strstr(buf, needle)) {
        print_message("xenram's log:\n%s", buf);
        return false;
    }
    return true;
}

/* Every line of xenram's own starts with its UTC time, as -msg
 * timestamp=on writes it: 2026-12-01T13:10:17.123456Z xenram: ... */
static bool log_lines_are_timestamped(Dm *dm)
{
    char line[1024];
    FILE *f = fopen(dm->log, "r");
    regex_t re;
    bool ok = true;
    unsigned n = 0;

    assert_non_null(f);
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:"
                             "[0-5][0-9]:[0-6][0-9]\\.[0-9]{6}Z xenram: ",
                             REG_EXTENDED | REG_NOSUB), 0);
    while (fgets(line, sizeof(line), f)) {
        /* The libraries' own lines (xencall: ...) are theirs to format. */
        if (!strstr(line, "xenram: "))
            continue;
        n++;
        if (regexec(&re, line, 0, NULL, 0)) {
            print_message("not timestamped: %s", line);
            ok = false;
        }
    }
    regfree(&re);
    fclose(f);
    return ok && n > 0;
}

static bool log_lacks(Dm *dm, const char *needle)
{
    char buf[8192] = "";
    FILE *f = fopen(dm->log, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (strstr(buf, needle)) {
        print_message("xenram's log says '%s':\n%s", needle, buf);
        return false;
    }
    return true;
}

static char *xs_state(uint32_t domid)
{
    char path[96], sock[200];
    struct xs_handle *xs;
    char *v;

    snprintf(sock, sizeof(sock), "%s/xenstored/socket", host.dir);
    setenv("XENSTORED_PATH", sock, 1);
    xs = xs_open(0);
    assert_non_null(xs);
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state",
             domid);
    v = xs_read(xs, XBT_NULL, path, NULL);
    xs_close(xs);
    return v;
}

/* A temporary file, open read-write and already unlinked. */
static int temp_fd(void)
{
    char path[200];
    int fd;

    snprintf(path, sizeof(path), "%s/state-XXXXXX", host.dir);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* stop + add-fd + xen-save-devices-state into @fd, as libxl does. */
static void dm_save(Dm *dm, int fd)
{
    json_t *r;
    char cmd[160];
    int id;

    dm_ok(dm, "{\"execute\":\"stop\"}");
    r = dm_cmd_fd(dm, "{\"execute\":\"add-fd\",\"id\":5}", fd);
    id = json_integer_value(json_object_get(json_object_get(r, "return"),
                                            "fdset-id"));
    json_decref(r);
    snprintf(cmd, sizeof(cmd), "{\"execute\":\"xen-save-devices-state\","
             "\"arguments\":{\"filename\":\"/dev/fdset/%d\",\"live\":false}}",
             id);
    dm_ok(dm, cmd);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_starts_running_and_writes_state_running(void **state)
{
    int domid = create_domain();
    char *v;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&dm), "running");
    v = xs_state(domid);
    assert_non_null(v);
    assert_string_equal(v, "running");
    free(v);
    dm_quit(&dm);
    /* Its keys go with it. */
    assert_null(xs_state(domid));
    sim_destroy(&host, domid);
}

/* xenram's ioreq counters (x-xenram-query-memory), or -1. */
static json_int_t ioreq_counter(Dm *dm, const char *name)
{
    json_t *r = dm_cmd(dm, "{\"execute\":\"x-xenram-query-memory\"}");
    json_t *v = json_object_get(json_object_get(json_object_get(r, "return"),
                                                "ioreq"), name);
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;

    json_decref(r);
    return n;
}

/*
 * A guest balloon driver (or a PoD sweep, or xenram's own hot-unplug)
 * removes frames from a running guest.  Xen then has every vCPU send a
 * synchronous INVALIDATE to every enabled ioreq server and wait for it;
 * xenram's server is enabled only because its thread serves it: Xen stays
 * up, the INVALIDATE reaches the mapcache and no vCPU is left waiting.
 */
static void test_a_frame_removal_on_the_running_guest_does_not_take_xen_down(
    void **state)
{
    int domid = create_domain();
    xc_interface *xch;
    xen_pfn_t gfn = 0x400;
    json_int_t inval = -1;
    char *s;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&dm), "running");
    assert_int_equal(ioreq_counter(&dm, "invalidates"), 0);
    xch = xc_interface_open(NULL, NULL, 0);
    assert_non_null(xch);
    assert_int_equal(xc_domain_decrease_reservation_exact(xch, domid, 1, 0,
                                                          &gfn), 0);
    xc_interface_close(xch);
    /* The vCPU sends it at its next resume: wait for it, bounded. */
    for (int i = 0; i < 2000 && inval < 1; i++) {
        inval = ioreq_counter(&dm, "invalidates");
        if (inval < 1)
            poll(NULL, 0, 5);
    }
    assert_int_equal(inval, 1);
    s = sim_dm_state(&host, domid);
    assert_non_null(s);
    if (strstr(s, "xen-panic") || !strstr(s, "ioreq-server 0 enabled") ||
        !strstr(s, "sent=1 waiting=0 "))
        print_message("dm-state of d%d:\n%s", domid, s);
    assert_null(strstr(s, "xen-panic"));
    assert_non_null(strstr(s, "ioreq-server 0 enabled"));
    assert_non_null(strstr(s, "sent=1 waiting=0 "));
    free(s);
    assert_int_equal(ioreq_counter(&dm, "bad"), 0);
    assert_string_equal(dm_status(&dm), "running");
    dm_quit(&dm);
    sim_destroy(&host, domid);
}

static void test_with_S_waits_in_prelaunch_and_announces_only_after_cont(
    void **state)
{
    int domid = create_domain();
    char *v;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, "-S", NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&dm), "prelaunch");
    assert_null(xs_state(domid));
    dm_ok(&dm, "{\"execute\":\"cont\"}");
    assert_string_equal(dm_status(&dm), "running");
    v = xs_state(domid);
    assert_non_null(v);
    free(v);
    dm_ok(&dm, "{\"execute\":\"stop\"}");
    assert_string_equal(dm_status(&dm), "paused");
    dm_quit(&dm);
    sim_destroy(&host, domid);
}

static void test_saved_state_describes_the_ram_layout(void **state)
{
    int domid = create_domain();
    int fd = temp_fd();
    char err[256];
    DevState ds;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    dm_ok(&dm, "{\"execute\":\"xen-set-global-dirty-log\","
               "\"arguments\":{\"enable\":true}}");
    dm_save(&dm, fd);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(devstate_read(fd, &ds, err, sizeof(err)), 0);
    close(fd);
    assert_true(ds.global_dirty_log);
    assert_int_equal(ds.nblocks, 2);
    assert_string_equal(ds.blocks[0].idstr, "xen.ram");
    assert_int_equal(ds.blocks[0].used_length, (uint64_t)DM_MIB << 20);
    assert_int_equal(ds.blocks[0].nranges, 1);
    assert_int_equal(ds.blocks[0].ranges[0].gpa, 0);
    assert_string_equal(ds.blocks[1].idstr, "vga.vram");
    assert_int_equal(ds.blocks[1].used_length, (uint64_t)VRAM_MIB << 20);
    devstate_free(&ds);
    dm_quit(&dm);
    sim_destroy(&host, domid);
}

/* Save the state of a fresh device model of a new domain into @fd. */
static void save_fresh_state(int fd, int *src)
{
    Dm a;

    *src = create_domain();
    dm_start(&a, *src, -1, NULL);
    assert_true(dm_greeted(&a));
    dm_ok(&a, "{\"execute\":\"qmp_capabilities\"}");
    dm_save(&a, fd);
    dm_quit(&a);
    lseek(fd, 0, SEEK_SET);
}

/* dm_restrict's restore: -S, libxl checks "paused" and sends cont. */
static void test_incoming_with_S_is_paused_until_cont(void **state)
{
    int fd = temp_fd(), src, dst = create_domain();
    Dm b;

    (void)state;
    save_fresh_state(fd, &src);
    dm_start(&b, dst, fd, "-S", NULL);
    assert_true(dm_greeted(&b));
    dm_ok(&b, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&b), "paused");
    assert_null(xs_state(dst));
    dm_ok(&b, "{\"execute\":\"cont\"}");
    assert_string_equal(dm_status(&b), "running");
    dm_quit(&b);
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/*
 * The default restore: like QEMU without -S, xenram runs once the state is
 * loaded and announces state = running, which libxl waits for.
 */
static void test_incoming_without_S_runs_once_loaded(void **state)
{
    int fd = temp_fd(), src, dst = create_domain();
    char *v;
    Dm b;

    (void)state;
    save_fresh_state(fd, &src);
    dm_start(&b, dst, fd, NULL);
    assert_true(dm_greeted(&b));
    dm_ok(&b, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&b), "running");
    v = xs_state(dst);
    assert_non_null(v);
    assert_string_equal(v, "running");
    free(v);
    /* It does not wait, so it does not say it waits. */
    assert_true(log_says(&b, "device state loaded"));
    assert_true(log_lacks(&b, "waiting for cont"));
    dm_quit(&b);
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

static void test_corrupted_incoming_state_is_refused_with_exit_1(void **state)
{
    int src = create_domain(), dst = create_domain();
    int fd = temp_fd();
    uint8_t byte;
    Dm a, b;

    (void)state;
    dm_start(&a, src, -1, NULL);
    assert_true(dm_greeted(&a));
    dm_ok(&a, "{\"execute\":\"qmp_capabilities\"}");
    dm_save(&a, fd);
    dm_quit(&a);

    assert_int_equal(pread(fd, &byte, 1, 40), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, 40), 1);
    lseek(fd, 0, SEEK_SET);
    dm_start(&b, dst, fd, NULL);
    assert_false(dm_greeted(&b));       /* it never serves QMP */
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "corrupted"));
    assert_null(xs_state(dst));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/*
 * libxl starts the destination with -m from static-max, so after xl
 * mem-max it says more RAM than the guest has: the saved layout wins (VRAM
 * stays where its frames are), and saving again describes the same RAM.
 */
static void test_incoming_with_a_larger_m_keeps_the_saved_layout(void **state)
{
    int fd = temp_fd(), fd2 = temp_fd(), src, dst = create_domain();
    char err[256];
    DevState ds;
    Dm b;

    (void)state;
    save_fresh_state(fd, &src);
    dm_start(&b, dst, fd, "-m", "200", NULL);
    assert_true(dm_greeted(&b));
    dm_ok(&b, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&b), "running");
    assert_true(log_says(&b, "keeping the guest's layout"));
    /* The RAM line says what it keeps, not what -m said. */
    assert_true(log_lacks(&b, ": 200 MiB of RAM"));
    assert_true(log_says(&b, " MiB of RAM, running"));
    dm_save(&b, fd2);
    dm_quit(&b);
    lseek(fd2, 0, SEEK_SET);
    assert_int_equal(devstate_read(fd2, &ds, err, sizeof(err)), 0);
    close(fd2);
    assert_string_equal(ds.blocks[0].idstr, "xen.ram");
    assert_int_equal(ds.blocks[0].used_length, (uint64_t)DM_MIB << 20);
    assert_string_equal(ds.blocks[1].idstr, "vga.vram");
    assert_int_equal(ds.blocks[1].ranges[0].gpa, (uint64_t)DM_MIB << 20);
    devstate_free(&ds);
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/* A smaller -m would leave guest frames outside RAM: refused. */
static void test_incoming_state_of_another_size_is_refused(void **state)
{
    int src = create_domain(), dst = create_domain();
    int fd = temp_fd();
    Dm a, b;

    (void)state;
    dm_start(&a, src, -1, NULL);
    assert_true(dm_greeted(&a));
    dm_ok(&a, "{\"execute\":\"qmp_capabilities\"}");
    dm_save(&a, fd);
    dm_quit(&a);

    lseek(fd, 0, SEEK_SET);
    dm_start(&b, dst, fd, "-m", "40", NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "xen.ram"));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/* ---- an incoming state written by a hostile peer ------------------------------ */

#define GiB_ (1ULL << 30)

/* Append hot-plugged block xen.hotplug.@slot of @size bytes at @gpa. */
static void add_slot(DevState *ds, uint32_t slot, uint64_t gpa, uint64_t size)
{
    DevStateBlock *b;
    uint64_t end = 0;

    for (uint32_t i = 0; i < ds->nblocks; i++) {
        end = MAX(end, ds->blocks[i].offset + ds->blocks[i].max_length);
    }
    ds->blocks = realloc(ds->blocks, (ds->nblocks + 1) * sizeof(*b));
    assert_non_null(ds->blocks);
    b = &ds->blocks[ds->nblocks++];
    memset(b, 0, sizeof(*b));
    snprintf(b->idstr, sizeof(b->idstr), "xen.hotplug.%u", slot);
    b->offset = end;
    b->used_length = b->max_length = size;
    b->flags = 2;                               /* RAM_HOTPLUGGED */
    b->hotplug_slot = slot;
    b->nranges = 1;
    b->ranges = calloc(1, sizeof(*b->ranges));
    assert_non_null(b->ranges);
    b->ranges[0] = (DevStateRange) { .gpa = gpa, .size = size };
}

static DevStateBlock *block_named(DevState *ds, const char *name)
{
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        if (!strcmp(ds->blocks[i].idstr, name)) {
            return &ds->blocks[i];
        }
    }
    fail_msg("no block %s in the saved state", name);
    return NULL;
}

/* The fresh state of a new domain, decoded for editing. */
static void fresh_state(DevState *ds, int *src)
{
    int fd = temp_fd();
    char err[256];

    save_fresh_state(fd, src);
    assert_int_equal(devstate_read(fd, ds, err, sizeof(err)), 0);
    close(fd);
}

/* @ds written, as a valid stream, into a new temporary file. */
static int state_fd(DevState *ds)
{
    int fd = temp_fd();
    char err[256];

    if (devstate_write(fd, ds, err, sizeof(err))) {
        fail_msg("the crafted state does not encode: %s", err);
    }
    devstate_free(ds);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static char *xs_slot(uint32_t domid, const char *slot, const char *key)
{
    char path[128], sock[200];
    struct xs_handle *xs;
    char *v;

    snprintf(sock, sizeof(sock), "%s/xenstored/socket", host.dir);
    setenv("XENSTORED_PATH", sock, 1);
    xs = xs_open(0);
    assert_non_null(xs);
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/memory/"
             "%s/%s", domid, slot, key);
    v = xs_read(xs, XBT_NULL, path, NULL);
    xs_close(xs);
    return v;
}

/*
 * A valid slot, then one at 2^50: the stream is refused as a whole, the
 * device model exits 1, and the valid slot leaves no answer in xenstore.
 */
static void test_incoming_slot_outside_the_window_is_refused_whole(
    void **state)
{
    int src, dst = create_domain();
    DevState ds;
    Dm b;

    (void)state;
    fresh_state(&ds, &src);
    add_slot(&ds, 0, 4 * GiB_, 16 << 20);
    add_slot(&ds, 1, 1ULL << 50, 16 << 20);
    dm_start(&b, dst, state_fd(&ds), NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "slot 1: the saved 16 MiB at "
                         "[0x4000000000000, 0x4000001000000) is outside the "
                         "hotplug window"));
    assert_null(xs_slot(dst, "0", "state"));
    assert_null(xs_slot(dst, "1", "state"));
    assert_null(xs_state(dst));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/* In the MMIO hole, where Xen's special pages are: outside the window. */
static void test_incoming_slot_in_the_mmio_hole_is_refused(void **state)
{
    int src, dst = create_domain();
    DevState ds;
    Dm b;

    (void)state;
    fresh_state(&ds, &src);
    add_slot(&ds, 0, 0xfe000000, 16 << 20);
    dm_start(&b, dst, state_fd(&ds), NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "outside the hotplug window"));
    assert_null(xs_slot(dst, "0", "state"));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/*
 * Lengths alike, mapping moved: VRAM said to be 64 MiB further up.  The
 * layout here maps it elsewhere, so the stream is refused.
 */
static void test_incoming_block_mapped_elsewhere_is_refused(void **state)
{
    int src, dst = create_domain();
    DevState ds;
    Dm b;

    (void)state;
    fresh_state(&ds, &src);
    block_named(&ds, "vga.vram")->ranges[0].gpa += 64 << 20;
    dm_start(&b, dst, state_fd(&ds), NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "RAM block 'vga.vram' is mapped at"));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/* Whether x-xenram-query-memory lists a block named @name. */
static bool dm_has_block(Dm *dm, const char *name)
{
    json_t *r = dm_cmd(dm, "{\"execute\":\"x-xenram-query-memory\"}");
    json_t *blocks = json_object_get(json_object_get(r, "return"),
                                     "ram-blocks");
    bool found = false;

    for (size_t i = 0; i < json_array_size(blocks); i++) {
        const char *id = json_string_value(json_object_get(
            json_array_get(blocks, i), "idstr"));

        found |= id && !strcmp(id, name);
    }
    json_decref(r);
    return found;
}

/*
 * xen-load-devices-state of a valid slot then a bad one: an error, and the
 * valid slot is not left online (and unpopulated) behind it.
 */
static void test_load_devices_state_is_all_or_nothing(void **state)
{
    int domid = create_domain(), fd = temp_fd(), in, id;
    char err[256], cmd[200];
    DevState ds;
    json_t *r;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    dm_save(&dm, fd);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(devstate_read(fd, &ds, err, sizeof(err)), 0);
    close(fd);
    add_slot(&ds, 0, 4 * GiB_, 16 << 20);
    add_slot(&ds, 1, 1ULL << 50, 16 << 20);
    in = state_fd(&ds);
    r = dm_cmd_fd(&dm, "{\"execute\":\"add-fd\",\"id\":6}", in);
    close(in);
    id = json_integer_value(json_object_get(json_object_get(r, "return"),
                                            "fdset-id"));
    json_decref(r);
    snprintf(cmd, sizeof(cmd), "{\"execute\":\"xen-load-devices-state\","
             "\"arguments\":{\"filename\":\"/dev/fdset/%d\"}}", id);
    r = dm_cmd(&dm, cmd);
    assert_non_null(json_object_get(r, "error"));
    assert_non_null(strstr(json_string_value(json_object_get(
        json_object_get(r, "error"), "desc")), "outside the hotplug window"));
    json_decref(r);
    assert_false(dm_has_block(&dm, "xen.hotplug.0"));
    assert_null(xs_slot(domid, "0", "state"));
    dm_quit(&dm);
    sim_destroy(&host, domid);
}

/* Position of @needle in the log, or -1. */
static long log_pos(Dm *dm, const char *needle)
{
    char buf[8192] = "";
    FILE *f = fopen(dm->log, "r");
    size_t n;
    char *p;

    if (!f) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    p = strstr(buf, needle);
    return p ? p - buf : -1;
}

/* dm_restrict: the handles are restricted before the stream is read. */
static void test_restricted_incoming_reads_the_state_after_restricting(
    void **state)
{
    int src, dst = create_domain(), fd = temp_fd();
    uint8_t byte;
    Dm b;

    (void)state;
    save_fresh_state(fd, &src);
    assert_int_equal(pread(fd, &byte, 1, 40), 1);
    byte ^= 0x10;
    assert_int_equal(pwrite(fd, &byte, 1, 40), 1);
    lseek(fd, 0, SEEK_SET);
    dm_start(&b, dst, fd, "-xen-domid-restrict", "-S", NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "corrupted"));
    assert_true(log_pos(&b, "Xen handles restricted to domain") >= 0);
    assert_true(log_pos(&b, "Xen handles restricted to domain") <
                log_pos(&b, "corrupted"));
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/*
 * dm_restrict with hot-plugged RAM in the state: restored with restricted
 * handles (nothing to populate), and hot-plug says it is unavailable.
 */
static void test_restricted_incoming_restores_slots_and_runs(void **state)
{
    int src, dst = create_domain();
    DevState ds;
    json_t *r, *blocks;
    bool found = false;
    Dm b;

    (void)state;
    fresh_state(&ds, &src);
    add_slot(&ds, 3, 4 * GiB_, 16 << 20);
    dm_start(&b, dst, state_fd(&ds), "-xen-domid-restrict", "-S", NULL);
    assert_true(dm_greeted(&b));
    dm_ok(&b, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(dm_status(&b), "paused");
    r = dm_cmd(&b, "{\"execute\":\"x-xenram-query-memory\"}");
    blocks = json_object_get(json_object_get(r, "return"), "ram-blocks");
    for (size_t i = 0; i < json_array_size(blocks); i++) {
        const char *id = json_string_value(json_object_get(
            json_array_get(blocks, i), "idstr"));

        found |= id && !strcmp(id, "xen.hotplug.3");
    }
    json_decref(r);
    assert_true(found);
    assert_true(log_says(&b, "RAM hot-plug is unavailable with "
                         "-xen-domid-restrict"));
    dm_ok(&b, "{\"execute\":\"cont\"}");
    dm_quit(&b);
    sim_destroy(&host, src);
    sim_destroy(&host, dst);
}

/* The own engine populates memory: not with restricted handles. */
static void test_restricted_engine_incoming_is_refused(void **state)
{
    int dst = create_domain();
    char uri[160];
    Dm b;

    (void)state;
    snprintf(uri, sizeof(uri), "unix:%s/mig-restrict.sock", host.dir);
    dm_start(&b, dst, -1, "-xen-domid-restrict", "-incoming", uri, NULL);
    assert_false(dm_greeted(&b));
    assert_int_equal(dm_wait(&b), 1);
    assert_true(log_says(&b, "cannot be used with -xen-domid-restrict"));
    sim_destroy(&host, dst);
}

/* ... and neither does its outgoing side: a sentence, not EPERM later. */
static void test_restricted_engine_migrate_is_refused_with_why(void **state)
{
    int domid = create_domain();
    char cmd[256];
    const char *desc;
    json_t *r;
    Dm b;

    (void)state;
    dm_start(&b, domid, -1, "-xen-domid-restrict", NULL);
    assert_true(dm_greeted(&b));
    dm_ok(&b, "{\"execute\":\"qmp_capabilities\"}");
    snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
             "{\"uri\":\"unix:%s/mig-restrict-out.sock\"}}", host.dir);
    r = dm_cmd(&b, cmd);
    desc = json_string_value(json_object_get(json_object_get(r, "error"),
                                             "desc"));
    assert_non_null(desc);
    assert_non_null(strstr(desc, "cannot run with -xen-domid-restrict"));
    assert_non_null(strstr(desc, "xl migrate"));
    json_decref(r);
    /* Nothing started: query-migrate has nothing to say. */
    r = dm_cmd(&b, "{\"execute\":\"query-migrate\"}");
    assert_null(json_object_get(json_object_get(r, "return"), "status"));
    json_decref(r);
    assert_string_equal(dm_status(&b), "running");
    dm_quit(&b);
    sim_destroy(&host, domid);
}

static void test_bad_arguments_get_errors_and_the_monitor_keeps_working(
    void **state)
{
    int domid = create_domain();
    json_t *r;
    Dm dm;

    (void)state;
    dm_start(&dm, domid, -1, NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    r = dm_cmd(&dm, "{\"execute\":\"xen-set-global-dirty-log\","
                    "\"arguments\":{\"enable\":\"yes\"},\"id\":3}");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(r, "error"), "class")), "GenericError");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 3);
    json_decref(r);
    r = dm_cmd(&dm, "{\"execute\":\"xen-save-devices-state\","
                    "\"arguments\":{\"filename\":\"/dev/fdset/42\"}}");
    assert_non_null(strstr(json_string_value(json_object_get(
        json_object_get(r, "error"), "desc")), "/dev/fdset/42"));
    json_decref(r);
    r = dm_cmd(&dm, "{\"execute\":\"device_add\"}");
    assert_string_equal(json_string_value(json_object_get(
        json_object_get(r, "error"), "class")), "CommandNotFound");
    json_decref(r);
    assert_string_equal(dm_status(&dm), "running");
    dm_quit(&dm);
    sim_destroy(&host, domid);
}

static void test_unknown_domain_is_a_clear_start_up_error(void **state)
{
    Dm dm;

    (void)state;
    dm_start(&dm, 77, -1, NULL);
    assert_false(dm_greeted(&dm));
    assert_int_equal(dm_wait(&dm), 1);
    assert_true(log_says(&dm, "domid 77"));
    assert_true(log_says(&dm, "domain 77 does not exist"));
    assert_true(log_lines_are_timestamped(&dm));
}

/* No Xen (here: no simulated host where the stand-ins look): the error
 * names the likely cause and what to do on the simulator. */
/*
 * What a QMP client relies on, as QEMU answers: query-command-line-options
 * filtered by option with its parameters (an unknown one an error),
 * query-cpus-fast one entry a vCPU with its own index and QOM path, and
 * quit announced by a SHUTDOWN event.
 */
static void test_qmp_answers_as_qemu_does(void **state)
{
    int d = create_domain_vcpus(2);
    json_t *r, *ret, *params, *m;
    bool shutdown = false, returned = false;
    const char quit[] = "{\"execute\":\"quit\",\"id\":9}\r\n";
    Dm dm;

    (void)state;
    assert_true(d > 0);
    dm_start(&dm, d, -1, "--log-level=debug", NULL);
    assert_true(dm_greeted(&dm));
    dm_ok(&dm, "{\"execute\":\"qmp_capabilities\"}");
    /* --log-level=debug shows the QMP traffic, both ways. */
    assert_true(log_says(&dm, "qmp <- {\"execute\":\"qmp_capabilities\"}"));
    assert_true(log_says(&dm, "qmp -> {\"return\":{}}"));

    r = dm_cmd(&dm, "{\"execute\":\"query-command-line-options\","
                    "\"arguments\":{\"option\":\"m\"}}");
    ret = json_object_get(r, "return");
    assert_int_equal(json_array_size(ret), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(ret, 0), "option")), "m");
    params = json_object_get(json_array_get(ret, 0), "parameters");
    assert_true(json_array_size(params) >= 2);
    m = json_array_get(params, 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")),
                        "size");
    assert_string_equal(json_string_value(json_object_get(m, "type")),
                        "size");
    json_decref(r);
    r = dm_cmd(&dm, "{\"execute\":\"query-command-line-options\","
                    "\"arguments\":{\"option\":\"hda\"}}");
    assert_non_null(strstr(json_string_value(json_object_get(
                               json_object_get(r, "error"), "desc")),
                           "invalid option name: hda"));
    json_decref(r);
    r = dm_cmd(&dm, "{\"execute\":\"query-command-line-options\"}");
    assert_true(json_array_size(json_object_get(r, "return")) > 10);
    json_decref(r);

    r = dm_cmd(&dm, "{\"execute\":\"query-cpus-fast\"}");
    ret = json_object_get(r, "return");
    assert_int_equal(json_array_size(ret), 2);
    for (int i = 0; i < 2; i++) {
        json_t *cpu = json_array_get(ret, i);
        char want[64];

        snprintf(want, sizeof(want), "/machine/unattached/device[%d]", i);
        assert_int_equal(json_integer_value(json_object_get(cpu,
                                                            "cpu-index")), i);
        assert_string_equal(json_string_value(json_object_get(cpu,
                                                              "qom-path")),
                            want);
    }
    json_decref(r);

    assert_int_equal(send(dm.qmp, quit, strlen(quit), MSG_NOSIGNAL),
                     (ssize_t)strlen(quit));
    while ((r = dm_recv(&dm))) {
        const char *ev = json_string_value(json_object_get(r, "event"));

        if (ev && !strcmp(ev, "SHUTDOWN")) {
            shutdown = true;
            assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(r, "data"), "reason")),
                                "host-qmp-quit");
        }
        returned |= json_object_get(r, "return") != NULL;
        json_decref(r);
    }
    assert_true(shutdown);
    assert_true(returned);
    assert_int_equal(dm_wait(&dm), 0);
    sim_destroy(&host, d);
}

static void test_no_xen_is_a_start_up_error_that_says_so(void **state)
{
    Dm dm;

    (void)state;
    setenv("XENSIM_DIR", "/nonexistent/xensim", 1);
    dm_start(&dm, 1, -1, NULL);
    setenv("XENSIM_DIR", host.dir, 1);
    assert_false(dm_greeted(&dm));
    assert_int_equal(dm_wait(&dm), 1);
    assert_true(log_says(&dm, "not a Xen dom0?"));
    assert_true(log_says(&dm, "LD_LIBRARY_PATH=build/sim"));
}

static int group_setup(void **state)
{
    (void)state;
    return simhost_start_xs(&host, NULL, "on");
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_running_and_writes_state_running),
        cmocka_unit_test(
            test_a_frame_removal_on_the_running_guest_does_not_take_xen_down),
        cmocka_unit_test(
            test_with_S_waits_in_prelaunch_and_announces_only_after_cont),
        cmocka_unit_test(test_saved_state_describes_the_ram_layout),
        cmocka_unit_test(test_incoming_with_S_is_paused_until_cont),
        cmocka_unit_test(test_incoming_without_S_runs_once_loaded),
        cmocka_unit_test(test_corrupted_incoming_state_is_refused_with_exit_1),
        cmocka_unit_test(test_incoming_with_a_larger_m_keeps_the_saved_layout),
        cmocka_unit_test(test_incoming_state_of_another_size_is_refused),
        cmocka_unit_test(
            test_incoming_slot_outside_the_window_is_refused_whole),
        cmocka_unit_test(test_incoming_slot_in_the_mmio_hole_is_refused),
        cmocka_unit_test(test_incoming_block_mapped_elsewhere_is_refused),
        cmocka_unit_test(test_load_devices_state_is_all_or_nothing),
        cmocka_unit_test(
            test_restricted_incoming_reads_the_state_after_restricting),
        cmocka_unit_test(test_restricted_incoming_restores_slots_and_runs),
        cmocka_unit_test(test_restricted_engine_incoming_is_refused),
        cmocka_unit_test(test_restricted_engine_migrate_is_refused_with_why),
        cmocka_unit_test(
            test_bad_arguments_get_errors_and_the_monitor_keeps_working),
        cmocka_unit_test(test_unknown_domain_is_a_clear_start_up_error),
        cmocka_unit_test(test_no_xen_is_a_start_up_error_that_says_so),
        cmocka_unit_test(test_qmp_answers_as_qemu_does),
    };

    sim_test_init(argc, argv, 180);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests_name("dm-sim", tests, group_setup,
                                       group_teardown);
}
