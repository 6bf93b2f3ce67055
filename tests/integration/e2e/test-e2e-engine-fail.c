/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-engine-fail.c - every failure of xenram's own precopy engine
 * that issue 12 names, provoked on two simulated hosts, and its outcome
 * checked as docs/migration.md ("Failure") promises it:
 *
 *   - the source's guest runs on: unpaused, log-dirty off, xenram running,
 *     its workload and its device model writing, every page whole, and a
 *     later migration of it moves its memory exactly; query-migrate says
 *     failed (or cancelled) with a sentence naming the cause;
 *   - the destination's xenram reports the error in its log and exits
 *     non-zero on its own, having applied nothing it cannot undo (its
 *     domain never ran), and leaves the domain for the toolstack.
 *
 * This program is the toolstack (as docs/toolstack.md describes the
 * engine's sequence), not `xensim migrate`, because `xensim migrate`
 * destroys the destination itself on a failure: here the destination's
 * own exit must be seen.  Between the two xenrams sits a proxy of the
 * test's own (unix sockets) that parses the stream's framing
 * (docs/migration-stream.md) and, by rule, flips one byte of the first
 * record of a type (header or body; data channels and the destination's
 * RESULT on the way back too) or holds a record at a gate while the test
 * strikes.  Every "at" is a gate or the pause-before-switchover state,
 * never a sleep:
 *
 *   - kill -9 of the source at setup (its LAYOUT held: the destination
 *     has its channels and waits for the layout), mid-round (the third RAM
 *     batch held), at switchover (paused before switchover);
 *   - kill -9 of the destination before the source connects, at setup
 *     (the LAYOUT held), at switchover (paused before switchover), and
 *     after END before it confirms (END held): the source stays paused,
 *     as the destination may run the guest (no split brain), and
 *     migrate_cancel then changes nothing; the toolstack resumes it;
 *   - a corrupted byte in each record type reaching a running receiver;
 *   - migrate_cancel's sentence naming where it struck; hot-plug refused
 *     on the source after a completed migration, saying why.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"
#include "xen/sim/toolstack-internal.h"
#include "xen/sim/toolstack.h"

static struct e2e_host src, dst;
static bool no_xenstore;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

/*
 * A sanitizer's report in any device model's log (a sanitized build's
 * xenram exits 1 on one, which a failed destination does anyway).
 */
static bool sanitizer_reports(const struct e2e_host *h)
{
    char cmd[PATH_MAX];

    if (!h->dir[0])
        return false;
    snprintf(cmd, sizeof(cmd), "cat %s/qemu-dm-*.log 2>/dev/null | grep -E "
             "'Sanitizer|runtime error:' >&2", h->dir);
    return system(cmd) == 0;
}

static int teardown(void **state)
{
    bool bad = sanitizer_reports(&src) || sanitizer_reports(&dst);

    (void)state;
    if (bad)
        fprintf(stderr, "e2e-engine-fail: a device model's sanitizer "
                "reported an error (above)\n");
    return e2e_teardown() || bad ? -1 : 0;
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* The stream's record types (docs/migration-stream.md). */
enum { LAYOUT = 1, RAM = 2, ROUND_END = 3, DEVSTATE = 4, HVM_CONTEXT = 5,
       END = 6, RESULT = 7, HVM_PARAMS = 8, POSTCOPY_PREPARE = 17,
       POSTCOPY_PREPARED = 18 };
#define HDR_LEN 24              /* stream header and record header alike */

/* ---- the proxy -------------------------------------------------------------- */

enum rule_kind { RULE_NONE, RULE_FLIP, RULE_GATE };

/*
 * What the proxy does to the nth record of @type going the @back way
 * (destination to source) or not, on a channel of @role (-1: any, 0
 * control, 1 data): flip the byte at @offset of its header (@in_header)
 * or of its body, or hold it (forwarding nothing more on that channel)
 * until released.
 */
struct rule {
    enum rule_kind kind;
    uint32_t type;
    int role;
    bool back;
    bool in_header;
    unsigned offset;
    unsigned nth;               /* 1: the first */
};

struct proxy;

struct pump {
    struct proxy *p;
    int in, out;
    bool back;
    int role;                   /* of the channel, from its stream header */
    bool started;
    pthread_t t;
};

#define PROXY_PUMPS 16

struct proxy {
    char path[108];             /* where the source connects */
    char to[108];               /* the destination's socket */
    int lfd;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rule rule;
    unsigned seen;
    bool fired;                 /* the rule struck */
    bool at_gate;               /* a pump holds a record */
    bool released;
    bool stop;
    struct pump pumps[PROXY_PUMPS];
    unsigned npumps;
    int fds[PROXY_PUMPS];       /* every socket, closed at the end */
    unsigned nfds;
};

static bool read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = read(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static uint32_t le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
    return le16(p) | le16(p + 2) << 16;
}

/* Apply the rule to a record; true when it must be held at the gate. */
static bool proxy_rule(struct pump *u, uint8_t *hdr, uint8_t *body,
                       uint32_t len)
{
    struct proxy *p = u->p;
    struct rule *r = &p->rule;
    bool gate = false;

    /* E2E_PROXY_TRACE=1: every record, to see what crossed when. */
    if (getenv("E2E_PROXY_TRACE"))
        fprintf(stderr, "proxy: %s role %d type %u seq %u len %u t=%llu\n",
                u->back ? "back" : "fwd", u->role, le16(hdr), le32(hdr + 8),
                len, (unsigned long long)(now_ns() / 1000000));
    pthread_mutex_lock(&p->lock);
    if (r->kind != RULE_NONE && !p->fired && le16(hdr) == r->type &&
        u->back == r->back && (r->role < 0 || r->role == u->role) &&
        ++p->seen == r->nth) {
        p->fired = true;
        if (r->kind == RULE_FLIP) {
            if (r->in_header || !len)
                hdr[r->offset % HDR_LEN] ^= 0x40;
            else
                body[r->offset % len] ^= 0x40;
        } else {
            gate = true;
        }
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return gate;
}

static void *pump_main(void *opaque)
{
    struct pump *u = opaque;
    struct proxy *p = u->p;
    uint8_t hdr[HDR_LEN], *body = malloc((8u << 20) + 1);
    bool wrote = true;

    if (!body)
        goto out;
    /* The stream header names the channel's role (offset 12). */
    if (!u->back) {
        if (!read_full(u->in, hdr, HDR_LEN))
            goto out;
        u->role = (int)le32(hdr + 12);
        if (!(wrote = write_full(u->out, hdr, HDR_LEN)))
            goto out;
    }
    for (;;) {
        uint32_t len;

        if (!read_full(u->in, hdr, HDR_LEN))
            break;
        len = le32(hdr + 4);
        if (len > (8u << 20) || !read_full(u->in, body, len))
            break;
        if (proxy_rule(u, hdr, body, len)) {
            pthread_mutex_lock(&p->lock);
            p->at_gate = true;
            pthread_cond_broadcast(&p->cond);
            while (!p->released && !p->stop)
                pthread_cond_wait(&p->cond, &p->lock);
            pthread_mutex_unlock(&p->lock);
        }
        if (!(wrote = write_full(u->out, hdr, HDR_LEN) &&
                      write_full(u->out, body, len)))
            break;
    }
out:
    free(body);
    /*
     * As one socket between the two would: the end of what one side
     * sends reaches the other as the end of its stream; a side that no
     * longer reads makes the other's writes fail.  The other direction
     * goes on (a receiver's RESULT after it stopped reading).
     */
    if (wrote)
        shutdown(u->out, SHUT_WR);
    else
        shutdown(u->in, SHUT_RD);
    return NULL;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_accept(void *opaque)
{
    struct proxy *p = opaque;

    for (;;) {
        struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
        int cfd, dfd;

        pthread_mutex_lock(&p->lock);
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        pthread_mutex_unlock(&p->lock);
        if (poll(&pf, 1, 50) <= 0)
            continue;
        cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        dfd = connect_unix(p->to);
        pthread_mutex_lock(&p->lock);
        if (dfd < 0 || p->npumps + 2 > PROXY_PUMPS) {
            pthread_mutex_unlock(&p->lock);
            /* A destination that is gone: as a refused connection. */
            close(cfd);
            if (dfd >= 0)
                close(dfd);
            continue;
        }
        p->fds[p->nfds++] = cfd;
        p->fds[p->nfds++] = dfd;
        for (int k = 0; k < 2; k++) {
            struct pump *u = &p->pumps[p->npumps++];

            *u = (struct pump) { .p = p, .in = k ? dfd : cfd,
                                 .out = k ? cfd : dfd, .back = k == 1,
                                 .role = 0 };
            u->started = pthread_create(&u->t, NULL, pump_main, u) == 0;
        }
        pthread_mutex_unlock(&p->lock);
    }
}

static void proxy_start(struct proxy *p, const char *to, struct rule r)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->rule = r;
    snprintf(p->path, sizeof(p->path), "%.90s/proxy.sock", dst.dir);
    snprintf(p->to, sizeof(p->to), "%s", to);
    unlink(p->path);
    p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(p->lfd >= 0);
    memcpy(sa.sun_path, p->path, strlen(p->path));
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    assert_int_equal(pthread_create(&p->acceptor, NULL, proxy_accept, p), 0);
}

/* Wait up to @ms until the rule struck (a gate: until it holds). */
static bool proxy_struck(struct proxy *p, int ms)
{
    struct timespec ts;
    bool done;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_mutex_lock(&p->lock);
    while (rc == 0 && !(p->rule.kind == RULE_GATE ? p->at_gate : p->fired))
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    done = p->rule.kind == RULE_GATE ? p->at_gate : p->fired;
    pthread_mutex_unlock(&p->lock);
    return done;
}

static void proxy_release(struct proxy *p)
{
    pthread_mutex_lock(&p->lock);
    p->released = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void proxy_stop(struct proxy *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->acceptor, NULL);
    for (unsigned i = 0; i < p->nfds; i++)
        shutdown(p->fds[i], SHUT_RDWR);
    for (unsigned i = 0; i < p->npumps; i++)
        if (p->pumps[i].started)
            pthread_join(p->pumps[i].t, NULL);
    for (unsigned i = 0; i < p->nfds; i++)
        close(p->fds[i]);
    close(p->lfd);
    unlink(p->path);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
}

/* ---- the guests ---------------------------------------------------------------- */

/* A 16 MiB guest (4 MiB of VRAM) writing random pages (@workload), its
 * xenram DMA-writing 2000 pages/s, both busy when this returns.  @maxmem:
 * room for RAM hot-plug (MiB; NULL: none). */
static uint32_t guest(const char *name, const char *workload,
                      const char *maxmem)
{
    char out[256];
    uint32_t d;

    if (maxmem)
        assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create",
                                    "--mem", "16", "--vram", "4", "--maxmem",
                                    maxmem, "--name", name, "--workload",
                                    workload, "--dm", e2e_xenram(),
                                    "--dm-arg", "--test-dma=2000", NULL), 0);
    else
        assert_int_equal(e2e_xensim(&src, out, sizeof(out), "create",
                                    "--mem", "16", "--vram", "4", "--name",
                                    name, "--workload", workload, "--dm",
                                    e2e_xenram(), "--dm-arg",
                                    "--test-dma=2000", NULL), 0);
    d = (uint32_t)strtoul(out, NULL, 10);
    assert_true(d > 0);
    assert_true(e2e_wait_dma(&src, d, 200));
    assert_true(e2e_wait_vcpu_writes(&src, d, 200));
    return d;
}

/* Wait (bounded) for @d's device model to report @want (query-status). */
static void wait_dm_status(struct e2e_host *h, uint32_t d, const char *want)
{
    char st[32];

    for (int i = 0; i < 1000; i++) {
        e2e_qmp_status(h, d, st, sizeof(st));
        if (!strcmp(st, want))
            return;
        pause_ms(10);
    }
    fprintf(stderr, "the device model says '%s', not '%s'\n", st, want);
    fail();
}

/* ---- the destination, as the toolstack builds it ---------------------------- */

struct dest {
    uint32_t dom;
    struct ts_dm dm;
    char name[64];
    char sock[108];
    bool reaped;
    int status;
};

/*
 * docs/toolstack.md, "xenram's own engine": the destination domain built
 * from the source's configuration, paused and without memory, and its
 * xenram started as the source's was (same -m) with `-incoming
 * unix:<dst>/mig.sock` (and -S when @S), under the name @name; ready
 * when the socket is there.
 */
static void dest_start(uint32_t sdom, const char *name, bool S,
                       struct dest *d)
{
    struct xsim_create cr = { .flags = XSIM_CREATE_PAUSED |
                                       XSIM_CREATE_EMPTY };
    struct ts_host sh, dh;
    struct ts_domcfg cfg, same;
    struct xsim_dominfo info;
    struct xsim_rep rep;
    char err[TS_ERRLEN], uri[128];
    char *extra[1] = { "-S" };
    uint64_t deadline;

    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    snprintf(d->sock, sizeof(d->sock), "%.90s/mig.sock", dst.dir);
    snprintf(uri, sizeof(uri), "unix:%s", d->sock);
    unlink(d->sock);
    assert_int_equal(ts_host_open(&sh, src.dir, err, sizeof(err)), 0);
    assert_int_equal(ts_dominfo(&sh, sdom, &info), 0);
    assert_int_equal(ts_domcfg_load(src.dir, sdom, &cfg, err, sizeof(err)),
                     0);
    assert_int_equal(ts_retrieve_memory(&sh, sdom, &cfg, err, sizeof(err)),
                     0);
    snprintf(cfg.workload, sizeof(cfg.workload), "%s", info.workload);
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    assert_int_equal(ts_host_open(&dh, dst.dir, err, sizeof(err)), 0);
    snprintf(cr.name, sizeof(cr.name), "%s", name);
    snprintf(cr.workload, sizeof(cr.workload), "%s", cfg.workload);
    cr.vcpus = cfg.vcpus;
    cr.mem_kb = cfg.mem_mib * 1024;
    cr.vram_kb = cfg.vram_mib * 1024;
    assert_int_equal(ts_call_rc(&dh, XSIM_OP_DOM_CREATE, 0, NULL, &cr,
                                sizeof(cr), &rep, NULL, 0, NULL), 0);
    d->dom = (uint32_t)rep.ret;
    assert_int_equal(ts_set_xen_max(&dh, d->dom, cfg.target_memkb +
                                    XSIM_MAXMEM_SLACK_KB, err, sizeof(err)),
                     0);
    assert_int_equal(ts_write_memory_keys(&dh, d->dom, &cfg, err,
                                          sizeof(err)), 0);
    ts_copy_emulator_xenstore(&sh, sdom, &dh, d->dom);
    same = cfg;
    same.max_memkb = same.mem_mib * 1024;
    if (ts_dm_launch(&dh, d->dom, &same, extra, S ? 1 : 0, -1, uri, &d->dm,
                     err, sizeof(err))) {
        fprintf(stderr, "launching the destination: %s\n", err);
        fail();
    }
    /* Recorded: the host stops it should the test die. */
    cfg.dm_pid = d->dm.pid;
    cfg.dm_start = d->dm.start;
    assert_int_equal(ts_domcfg_save(dst.dir, d->dom, &cfg, err,
                                    sizeof(err)), 0);
    ts_dm_record_pid(&dh, d->dom, d->dm.pid);
    ts_domcfg_free(&cfg);
    ts_host_close(&sh);
    ts_host_close(&dh);
    deadline = now_ns() + 20000000000ull;
    for (;;) {
        struct stat st;

        if (stat(d->sock, &st) == 0 && S_ISSOCK(st.st_mode))
            break;
        assert_true(now_ns() < deadline);
        if (ts_pidfd_exited(d->dm.pidfd, 10)) {
            char tail[2048];

            ts_log_tail(d->dm.log, tail, sizeof(tail));
            fprintf(stderr, "the destination's xenram exited: %s\n", tail);
            fail();
        }
    }
    /*
     * The socket file appears at bind(), before listen(): ready once its
     * QMP answers, which its main loop does after it set everything up
     * (as xensim's engine waits for "inmigrate").
     */
    wait_dm_status(&dst, d->dom, "inmigrate");
}

/* Wait (bounded) for the destination's xenram to exit; its status. */
static int dest_wait_exit(struct dest *d, int ms)
{
    if (!d->reaped) {
        ts_pidfd_exited(d->dm.pidfd, ms);
        if (waitpid(d->dm.pid, &d->status, WNOHANG) == d->dm.pid)
            d->reaped = true;
    }
    if (!d->reaped) {
        char tail[2048];

        ts_log_tail(d->dm.log, tail, sizeof(tail));
        fprintf(stderr, "the destination's xenram did not exit: %s\n", tail);
        fail();
    }
    return d->status;
}

/* The line the destination's xenram logged for its failure (malloc'd). */
static char *dest_failure_line(const struct dest *d)
{
    char path[PATH_MAX], line[2048], *found = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/qemu-dm-%s.log", dst.dir, d->name);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "incoming migration failed: ")) {
            free(found);
            found = strdup(line);
        }
    }
    fclose(f);
    return found;
}

/*
 * What must hold of a destination whose migration failed: its xenram
 * exited on its own with status 1, having logged why (@why in the
 * sentence, if not NULL); the domain is there for the toolstack, paused
 * as it was built (never run); then the toolstack destroys it.
 */
static void dest_failed(struct dest *d, const char *why)
{
    struct xsim_dominfo info;
    char *line;
    int st = dest_wait_exit(d, 20000);

    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    line = dest_failure_line(d);
    assert_non_null(line);
    fprintf(stderr, "destination: %s", line);
    if (why && !strstr(line, why)) {
        fprintf(stderr, "expected \"%s\" in it\n", why);
        fail();
    }
    free(line);
    assert_true(e2e_dominfo(&dst, d->dom, &info));
    if (info.pause_count == 0 || info.vcpu_writes) {
        fprintf(stderr, "the destination's domain ran: pause count %u, %llu "
                "vCPU writes\n", info.pause_count,
                (unsigned long long)info.vcpu_writes);
        fail();
    }
    e2e_destroy(&dst, d->dom);
    ts_dm_release(&d->dm);
}

/* The destination's xenram killed; the toolstack destroys its domain. */
static void dest_kill(struct dest *d)
{
    assert_int_equal(kill(d->dm.pid, SIGKILL), 0);
    dest_wait_exit(d, 20000);
    assert_true(WIFSIGNALED(d->status));
}

/* ---- the source, over QMP --------------------------------------------------- */

static json_t *qmp(uint32_t d, const char *cmd, json_t *args)
{
    json_t *r = e2e_qmp(&src, d, cmd, args);

    if (!r) {
        char cmdl[PATH_MAX];

        /* The source's xenram's last words, if it went away. */
        snprintf(cmdl, sizeof(cmdl), "tail -n 20 %s/qemu-dm-*.log >&2",
                 src.dir);
        (void)!system(cmdl);
        fail();
    }
    return r;
}

struct mig_opts {
    int channels;               /* 0: RAM on the control channel */
    bool pause_before_switchover;
    uint64_t max_bandwidth;     /* bytes/s, 0: none */
    uint64_t downtime_limit;    /* ms, 0: 300 */
    bool postcopy;              /* postcopy-ram, the switch after round 1 */
};

/*
 * A migration that never converges (as test-e2e-engine.c's): 16 MiB/s
 * against a 1 ms downtime limit allows 4 dirty pages at the end of a
 * round, and a guest writing 32 MiB/s (FAST_WRITER) dirties thousands.
 */
#define NEVER_CONVERGE_BW (16ull << 20)
#define FAST_WRITER "random:32"
#define CALM_WRITER "random:4"

/* Capabilities, parameters, `migrate {"uri": "unix:PATH"}`. */
static void migrate(uint32_t d, const char *path, struct mig_opts o)
{
    char uri[160];
    json_t *p;

    json_decref(qmp(d, "migrate-set-capabilities", json_pack(
        "{s:[{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b}]}", "capabilities",
        "capability", "multifd", "state", o.channels > 0,
        "capability", "events", "state", 1,
        "capability", "pause-before-switchover", "state",
        o.pause_before_switchover,
        "capability", "postcopy-ram", "state", o.postcopy)));
    p = json_pack("{s:I,s:I,s:I}", "downtime-limit",
                  (json_int_t)(o.downtime_limit ? o.downtime_limit : 300),
                  "max-bandwidth", (json_int_t)o.max_bandwidth,
                  "x-postcopy-after-rounds", (json_int_t)o.postcopy);
    if (o.channels > 0)
        json_object_set_new(p, "multifd-channels", json_integer(o.channels));
    json_decref(qmp(d, "migrate-set-parameters", p));
    snprintf(uri, sizeof(uri), "unix:%s", path);
    json_decref(qmp(d, "migrate", json_pack("{s:s}", "uri", uri)));
}

static const char *status_of(json_t *r)
{
    return json_string_value(json_object_get(r, "status")) ?: "";
}

/* Wait (bounded) until query-migrate's status is @want; the reply. */
static json_t *wait_status(uint32_t d, const char *want)
{
    uint64_t deadline = now_ns() + 30000000000ull;

    for (;;) {
        json_t *r = qmp(d, "query-migrate", NULL);

        if (!strcmp(status_of(r), want))
            return r;
        if (!strcmp(want, "pre-switchover") &&
            (!strcmp(status_of(r), "failed") ||
             !strcmp(status_of(r), "completed"))) {
            fprintf(stderr, "query-migrate says %s, not %s\n", status_of(r),
                    want);
            fail();
        }
        json_decref(r);
        assert_true(now_ns() < deadline);
        pause_ms(20);
    }
}

/* Wait (bounded) until the migration of @d has ended; the reply. */
static json_t *wait_end(uint32_t d)
{
    uint64_t deadline = now_ns() + 30000000000ull;

    for (;;) {
        json_t *r = qmp(d, "query-migrate", NULL);
        const char *st = status_of(r);

        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            !strcmp(st, "cancelled"))
            return r;
        json_decref(r);
        assert_true(now_ns() < deadline);
        pause_ms(20);
    }
}

/*
 * Wait (bounded) until the proxy's rule struck during the migration of
 * @d; a migration that ended before it did fails the test, saying how.
 */
static void proxy_wait_fired(struct proxy *p, uint32_t d)
{
    uint64_t deadline = now_ns() + 30000000000ull;

    while (!proxy_struck(p, 100)) {
        json_t *r = qmp(d, "query-migrate", NULL);
        const char *st = status_of(r);

        if (!strcmp(st, "completed") || !strcmp(st, "failed") ||
            !strcmp(st, "cancelled")) {
            fprintf(stderr, "the migration ended (%s: %s) before the "
                    "proxy's rule struck\n", st, json_string_value(
                        json_object_get(r, "error-desc")) ?: "-");
            json_decref(r);
            fail();
        }
        json_decref(r);
        assert_true(now_ns() < deadline);
    }
}

/* The migration ended @status with @why in its error-desc. */
static void source_reports(uint32_t d, const char *status, const char *why)
{
    json_t *r = wait_end(d);
    const char *desc = json_string_value(json_object_get(r, "error-desc"));

    fprintf(stderr, "source: %s: %s\n", status_of(r), desc ?: "(none)");
    assert_string_equal(status_of(r), status);
    assert_non_null(desc);
    if (why && !strstr(desc, why)) {
        fprintf(stderr, "expected \"%s\" in it\n", why);
        fail();
    }
    json_decref(r);
}

/*
 * The source's guest after a failed migration: unpaused, log-dirty off,
 * its xenram running, the guest and the device model writing, every page
 * whole.
 */
static void source_runs_on(uint32_t d, pid_t spid)
{
    struct xsim_dominfo info;
    json_t *q;
    json_int_t w;

    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count, 0);
    assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
    assert_int_equal(e2e_dm_pid(&src, d), spid);
    assert_true(e2e_alive(spid));
    wait_dm_status(&src, d, "running");
    assert_true(e2e_wait_vcpu_writes(&src, d, 50));
    q = qmp(d, "x-xenram-query-memory", NULL);
    w = json_integer_value(json_object_get(json_object_get(q, "test-device"),
                                           "pages-written"));
    /* The engine's dirty tracking is gone with it. */
    assert_false(json_is_true(json_object_get(json_object_get(q, "dirty"),
                                              "global-dirty-log")));
    json_decref(q);
    assert_true(w > 0);
    assert_true(e2e_wait_dma(&src, d, (uint64_t)w + 50));
    e2e_verify_clean(&src, d);
}

/* ---- guest memory, compared page by page ------------------------------------ */

/* struct e2e_mem, e2e_mem_map() and e2e_mem_has() are e2e.h's. */

/* The frames that differ between @a and @b (presence or bytes). */
static uint64_t differing(const struct e2e_mem *a, const struct e2e_mem *b,
                          uint64_t *frames)
{
    uint64_t n = a->pages > b->pages ? a->pages : b->pages, bad = 0;

    *frames = 0;
    for (uint64_t g = 0; g < n; g++) {
        bool x = e2e_mem_has(a, g), y = e2e_mem_has(b, g);

        *frames += x;
        if (x != y || (x && memcmp(a->mem + g * XSIM_PAGE_SIZE,
                                   b->mem + g * XSIM_PAGE_SIZE,
                                   XSIM_PAGE_SIZE))) {
            if (bad++ < 8)
                fprintf(stderr, "frame %#llx differs\n",
                        (unsigned long long)g);
        }
    }
    return bad;
}

/* ---- (a) a corrupted byte in each record type ---------------------------------- */

struct corruption {
    const char *what;
    int channels;               /* of the migration */
    struct rule rule;
    const char *why;            /* in both sides' sentences */
};

#define FLIP_BODY(t, r, off) { RULE_FLIP, (t), (r), false, false, (off), 1 }
#define FLIP_HDR(t, r, off)  { RULE_FLIP, (t), (r), false, true, (off), 1 }

/* A header's checksum is at offset 16, its type at 0. */
static const struct corruption corruptions[] = {
    { "LAYOUT, body", 2, FLIP_BODY(LAYOUT, 0, 40),
      "(LAYOUT, " },
    { "LAYOUT, header (checksum)", 2, FLIP_HDR(LAYOUT, 0, 17),
      "(LAYOUT, " },
    { "HVM_PARAMS, body", 2, FLIP_BODY(HVM_PARAMS, 0, 8),
      "(HVM_PARAMS, " },
    { "RAM on a data channel, body", 2, FLIP_BODY(RAM, 1, 5000),
      "(RAM, " },
    { "RAM on a data channel, header (type)", 2, FLIP_HDR(RAM, 1, 0),
      "unknown type 66" },
    { "RAM on the control channel, body", 0, FLIP_BODY(RAM, 0, 100),
      "(RAM, " },
    { "ROUND_END, body", 2, FLIP_BODY(ROUND_END, 1, 3),
      "(ROUND_END, " },
    { "DEVSTATE, body", 2, FLIP_BODY(DEVSTATE, 0, 30),
      "(DEVSTATE, " },
    { "HVM_CONTEXT, body", 2, FLIP_BODY(HVM_CONTEXT, 0, 64),
      "(HVM_CONTEXT, " },
    { "END on a data channel, header (checksum)", 2, FLIP_HDR(END, 1, 16),
      "(END, " },
    { "END on the control channel, header (checksum)", 2,
      FLIP_HDR(END, 0, 18), "(END, " },
};

/*
 * One source guest through every corruption: each reaches a running
 * receiver, which refuses it naming the record (and the checksum, or the
 * unknown type), exits 1 and leaves its domain unrun; the source says
 * failed with the destination's sentence and its guest runs on.  Then a
 * corrupted RESULT on the way back: the destination runs the guest, the
 * source cannot know and stays paused (no split brain), and the memory
 * that went across is the source's, page by page: the failures before
 * left nothing behind in the source's dirty tracking.
 */
static void test_corrupt_records(void **state)
{
    struct rule result = { RULE_FLIP, RESULT, 0, true, false, 6, 1 };
    struct e2e_mem before, after;
    struct proxy px;
    struct dest d;
    char name[32];
    uint64_t frames, bad;
    uint32_t sd;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    sd = guest("corrupt", CALM_WRITER, NULL);
    spid = e2e_dm_pid(&src, sd);
    for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]);
         i++) {
        const struct corruption *k = &corruptions[i];
        char why[128];

        fprintf(stderr, "== a corrupted byte: %s\n", k->what);
        snprintf(name, sizeof(name), "corrupt%zu", i);
        dest_start(sd, name, false, &d);
        proxy_start(&px, d.sock, k->rule);
        migrate(sd, px.path, (struct mig_opts) { .channels = k->channels });
        proxy_wait_fired(&px, sd);
        dest_failed(&d, k->why);
        snprintf(why, sizeof(why), "the destination failed: ");
        source_reports(sd, "failed", why);
        source_reports(sd, "failed", k->why);
        proxy_stop(&px);
        source_runs_on(sd, spid);
    }

    fprintf(stderr, "== a corrupted byte: RESULT, body\n");
    dest_start(sd, "corrupt-result", true, &d);
    proxy_start(&px, d.sock, result);
    assert_true(e2e_mem_map(&src, sd, &before));
    migrate(sd, px.path, (struct mig_opts) { .channels = 2 });
    source_reports(sd, "failed", "(RESULT, ");
    source_reports(sd, "failed", "the source stays paused");
    proxy_stop(&px);
    {
        struct xsim_dominfo info;
        json_t *r = e2e_qmp(&dst, d.dom, "query-migrate", NULL);

        /* The destination has the guest (paused by -S, as received). */
        assert_non_null(r);
        assert_string_equal(status_of(r), "completed");
        json_decref(r);
        wait_dm_status(&dst, d.dom, "paused");
        /* The source did not resume: both are paused at switchover. */
        assert_true(e2e_dominfo(&src, sd, &info));
        assert_true(info.pause_count > 0);
        assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
        wait_dm_status(&src, sd, "paused");
    }
    assert_true(e2e_mem_map(&dst, d.dom, &after));
    bad = differing(&before, &after, &frames);
    fprintf(stderr, "%llu frames compared, %llu differ\n",
            (unsigned long long)frames, (unsigned long long)bad);
    assert_int_equal(bad, 0);
    assert_true(frames > (12ull << 8));
    e2e_mem_unmap(&after);
    e2e_mem_unmap(&before);
    /* The toolstack found the guest on the destination: the source goes. */
    e2e_destroy(&src, sd);
    assert_true(e2e_wait_exit(spid, 5000));
    e2e_verify_clean(&dst, d.dom);
    e2e_destroy(&dst, d.dom);
    dest_wait_exit(&d, 5000);
    ts_dm_release(&d.dm);
}

/* ---- (b) the source's xenram killed ------------------------------------------- */

enum strike { AT_SETUP, MID_ROUND, AT_SWITCHOVER };

/*
 * kill -9 of the source's xenram: at setup (its LAYOUT held at the
 * proxy: the destination has accepted its channels and waits for it),
 * in the middle of round 1 (the third RAM batch held), at switchover
 * (paused before it).  The destination fails on its own, exit status 1,
 * naming the closed connection, its domain left unrun.
 */
static void source_killed(const char *name, enum strike when)
{
    struct rule gate_layout = { RULE_GATE, LAYOUT, 0, false, false, 0, 1 };
    struct rule gate_ram = { RULE_GATE, RAM, 1, false, false, 0, 3 };
    struct rule none = { RULE_NONE, 0, 0, false, false, 0, 0 };
    struct proxy px;
    struct dest d;
    char dname[40];
    uint32_t sd;
    pid_t spid;

    sd = guest(name, CALM_WRITER, NULL);
    spid = e2e_dm_pid(&src, sd);
    snprintf(dname, sizeof(dname), "%s-dst", name);
    dest_start(sd, dname, false, &d);
    proxy_start(&px, d.sock, when == AT_SETUP ? gate_layout :
                             when == MID_ROUND ? gate_ram : none);
    /*
     * Paused before switchover in every case: the sockets' buffers hold
     * this small guest whole, and without the pause the source could
     * have sent everything, END included, before it dies, whatever the
     * gate holds.
     */
    migrate(sd, px.path, (struct mig_opts) {
        .channels = 2, .pause_before_switchover = true });
    if (when == AT_SWITCHOVER) {
        struct xsim_dominfo info;

        json_decref(wait_status(sd, "pre-switchover"));
        /* The source paused the guest for its switchover. */
        assert_true(e2e_dominfo(&src, sd, &info));
        assert_true(info.pause_count > 0);
    } else {
        proxy_wait_fired(&px, sd);
    }
    if (getenv("E2E_PROXY_TRACE"))
        fprintf(stderr, "proxy: the source killed t=%llu\n",
                (unsigned long long)(now_ns() / 1000000));
    assert_int_equal(kill(spid, SIGKILL), 0);
    assert_true(e2e_wait_exit(spid, 5000));
    proxy_release(&px);
    dest_failed(&d, "the peer closed the connection");
    proxy_stop(&px);
    e2e_destroy(&src, sd);
}

static void test_source_killed_at_setup(void **state)
{
    (void)state;
    NEED_XENSTORE();
    source_killed("srckill-setup", AT_SETUP);
}

static void test_source_killed_mid_round(void **state)
{
    (void)state;
    NEED_XENSTORE();
    source_killed("srckill-round", MID_ROUND);
}

static void test_source_killed_at_switchover(void **state)
{
    (void)state;
    NEED_XENSTORE();
    source_killed("srckill-switch", AT_SWITCHOVER);
}

/* ---- (c) the destination's xenram killed, migrate_cancel ----------------------- */

/*
 * A migration of @sd to a new destination @name through a proxy whose
 * @gate holds a record; once it does, query-migrate says @status (NULL:
 * not checked), then the destination's xenram is killed (@kill) or the
 * source gets migrate_cancel.  The source reports failed (cancelled)
 * with @why, the destination never ran, the source's guest runs on.
 */
static void strike_at_gate(uint32_t sd, pid_t spid, const char *name,
                           struct rule gate, struct mig_opts o,
                           const char *status, bool kill, const char *why)
{
    struct proxy px;
    struct dest d;

    dest_start(sd, name, false, &d);
    proxy_start(&px, d.sock, gate);
    migrate(sd, px.path, o);
    proxy_wait_fired(&px, sd);
    if (status) {
        json_t *r = qmp(sd, "query-migrate", NULL);

        assert_string_equal(status_of(r), status);
        json_decref(r);
    }
    if (kill) {
        dest_kill(&d);
        proxy_release(&px);
        source_reports(sd, "failed", why);
        proxy_stop(&px);
        e2e_destroy(&dst, d.dom);
        ts_dm_release(&d.dm);
    } else {
        json_decref(qmp(sd, "migrate_cancel", NULL));
        source_reports(sd, "cancelled", why);
        proxy_release(&px);
        dest_failed(&d, NULL);
        proxy_stop(&px);
    }
    source_runs_on(sd, spid);
}

/*
 * kill -9 of the destination's xenram: before the source connects (the
 * socket file is left, nobody listens), at its setup (the LAYOUT held),
 * at switchover (the source paused before it, then migrate-continue);
 * then migrate_cancel in a round and before switchover, whose sentences
 * say where they struck.  One source guest, which runs on after each.
 */
static void test_dest_killed_and_cancelled(void **state)
{
    struct rule gate_layout = { RULE_GATE, LAYOUT, 0, false, false, 0, 1 };
    struct rule gate_ram = { RULE_GATE, RAM, 1, false, false, 0, 2 };
    struct dest d;
    uint32_t sd;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    sd = guest("dstkill", FAST_WRITER, NULL);
    spid = e2e_dm_pid(&src, sd);

    fprintf(stderr, "== the destination killed before the source connects\n");
    dest_start(sd, "dstkill-0", false, &d);
    dest_kill(&d);
    e2e_destroy(&dst, d.dom);
    ts_dm_release(&d.dm);
    migrate(sd, d.sock, (struct mig_opts) { .channels = 2 });
    source_reports(sd, "failed", "cannot connect to unix:");
    source_runs_on(sd, spid);

    fprintf(stderr, "== the destination killed at its setup\n");
    strike_at_gate(sd, spid, "dstkill-1", gate_layout, (struct mig_opts) {
                       .channels = 2, .max_bandwidth = NEVER_CONVERGE_BW,
                       .downtime_limit = 1 },
                   NULL, true, "the peer closed the connection");

    fprintf(stderr, "== the destination killed at switchover\n");
    dest_start(sd, "dstkill-2", false, &d);
    migrate(sd, d.sock, (struct mig_opts) {
        .channels = 2, .pause_before_switchover = true });
    json_decref(wait_status(sd, "pre-switchover"));
    dest_kill(&d);
    json_decref(qmp(sd, "migrate-continue", json_pack("{s:s}", "state",
                                                      "pre-switchover")));
    source_reports(sd, "failed", "the peer closed the connection");
    e2e_destroy(&dst, d.dom);
    ts_dm_release(&d.dm);
    source_runs_on(sd, spid);

    fprintf(stderr, "== migrate_cancel in a round\n");
    strike_at_gate(sd, spid, "dstkill-3", gate_ram, (struct mig_opts) {
                       .channels = 2, .max_bandwidth = NEVER_CONVERGE_BW,
                       .downtime_limit = 1 },
                   NULL, false, "cancelled by migrate_cancel in round ");

    fprintf(stderr, "== migrate_cancel before switchover\n");
    dest_start(sd, "dstkill-4", false, &d);
    migrate(sd, d.sock, (struct mig_opts) {
        .channels = 2, .pause_before_switchover = true });
    json_decref(wait_status(sd, "pre-switchover"));
    json_decref(qmp(sd, "migrate_cancel", NULL));
    source_reports(sd, "cancelled", "cancelled by migrate_cancel while "
                   "paused before switchover");
    dest_failed(&d, NULL);
    source_runs_on(sd, spid);
    e2e_destroy(&src, sd);
    assert_true(e2e_wait_exit(spid, 5000));
}

/*
 * Postcopy's PREPARE (docs/postcopy.md, "The switch"): the destination
 * pages out ahead while the guest still runs on the source, which waits
 * for its PREPARED.  That is still before the pause: a destination
 * killed then (PREPARE held at the proxy), or a migrate_cancel (PREPARED
 * held on its way back), is a failed migration like any in precopy --
 * the source's guest was never paused and runs on, the destination's
 * never ran -- not a guest lost.
 */
static void test_postcopy_fails_while_preparing(void **state)
{
    struct rule prepare = { RULE_GATE, POSTCOPY_PREPARE, 0, false, false, 0,
                            1 };
    struct rule prepared = { RULE_GATE, POSTCOPY_PREPARED, -1, true, false,
                             0, 1 };
    struct mig_opts pc = { .channels = 2, .postcopy = true };
    uint32_t sd;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    sd = guest("prep", FAST_WRITER, NULL);
    spid = e2e_dm_pid(&src, sd);

    /* Before the switch: active, the guest not paused. */
    fprintf(stderr, "== the destination killed while it pages out\n");
    strike_at_gate(sd, spid, "prep-0", prepare, pc, "active", true,
                   "the peer closed the connection");
    fprintf(stderr, "== migrate_cancel while the destination pages out\n");
    strike_at_gate(sd, spid, "prep-1", prepared, pc, "active", false,
                   "cancelled by migrate_cancel while the destination "
                   "paged out ahead of the switch to postcopy");
    e2e_destroy(&src, sd);
    assert_true(e2e_wait_exit(spid, 5000));
}

/* ---- (d) no split brain -------------------------------------------------------- */

/* `xensim hotplug D add 16M` on the source: refused, with its sentence. */
static void hotplug_refused(uint32_t d, const char *why)
{
    char out[1024], err[4096], id[16];

    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim_err(&src, out, sizeof(out), err, sizeof(err),
                                    "hotplug", id, "add", "16M", NULL), 1);
    if (!strstr(err, why) && !strstr(out, why)) {
        fprintf(stderr, "expected \"%s\" in the refusal\n", why);
        fail();
    }
}

/*
 * The destination dies after the source sent END, before it confirmed
 * (END held at the proxy, the destination killed, END let go into the
 * void).  The source cannot know whether the guest runs there: it stays
 * paused and says so; a migrate_cancel meanwhile changes nothing (status
 * failed, not cancelled: past END a cancel cannot undo); hot-plug is
 * refused.  The toolstack finds the destination dead, destroys it and
 * resumes the source (cont, unpause): the guest runs on, and migrates
 * then; after that completed migration hot-plug on the source stays
 * refused, saying the guest runs elsewhere.
 */
static void test_no_split_brain(void **state)
{
    struct rule gate_end = { RULE_GATE, END, 0, false, false, 0, 1 };
    struct xsim_dominfo info;
    struct proxy px;
    struct dest d;
    char id[16];
    uint32_t sd;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    sd = guest("split", CALM_WRITER, "64");
    spid = e2e_dm_pid(&src, sd);
    snprintf(id, sizeof(id), "%u", sd);
    dest_start(sd, "split-0", false, &d);
    proxy_start(&px, d.sock, gate_end);
    migrate(sd, px.path, (struct mig_opts) { .channels = 2 });
    proxy_wait_fired(&px, sd);
    json_decref(qmp(sd, "migrate_cancel", NULL));
    dest_kill(&d);
    proxy_release(&px);
    source_reports(sd, "failed", "the source stays paused");
    proxy_stop(&px);
    assert_true(e2e_dominfo(&src, sd, &info));
    assert_true(info.pause_count > 0);
    assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
    wait_dm_status(&src, sd, "paused");
    hotplug_refused(sd, "outcome is unknown");

    /* The toolstack: the destination is dead; the source resumes. */
    e2e_destroy(&dst, d.dom);
    ts_dm_release(&d.dm);
    json_decref(qmp(sd, "cont", NULL));
    assert_int_equal(e2e_xensim(&src, NULL, 0, "unpause", id, NULL), 0);
    source_runs_on(sd, spid);

    /* ... and it migrates, after which hot-plug here is refused. */
    dest_start(sd, "split-1", false, &d);
    migrate(sd, d.sock, (struct mig_opts) { .channels = 2 });
    {
        json_t *r = wait_end(sd);

        assert_string_equal(status_of(r), "completed");
        json_decref(r);
    }
    wait_dm_status(&dst, d.dom, "running");
    assert_true(e2e_wait_vcpu_writes(&dst, d.dom, 50));
    hotplug_refused(sd, "has migrated to another host");
    e2e_destroy(&src, sd);
    assert_true(e2e_wait_exit(spid, 5000));
    e2e_verify_clean(&dst, d.dom);
    e2e_destroy(&dst, d.dom);
    dest_wait_exit(&d, 5000);
    ts_dm_release(&d.dm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corrupt_records),
        cmocka_unit_test(test_source_killed_at_setup),
        cmocka_unit_test(test_source_killed_mid_round),
        cmocka_unit_test(test_source_killed_at_switchover),
        cmocka_unit_test(test_dest_killed_and_cancelled),
        cmocka_unit_test(test_postcopy_fails_while_preparing),
        cmocka_unit_test(test_no_split_brain),
    };

    char libs[PATH_MAX];

    e2e_init(240);
    /* ts_dm_launch() finds the stand-in libraries beside xensim's. */
    snprintf(libs, sizeof(libs), "%s/sim", e2e_build());
    setenv("XENSIM_LIBDIR", libs, 0);
    /* One test by name (a glob), to look at one failure alone. */
    if (getenv("E2E_FILTER"))
        cmocka_set_test_filter(getenv("E2E_FILTER"));
    return cmocka_run_group_tests_name("e2e-engine-fail", tests, setup,
                                       teardown);
}
