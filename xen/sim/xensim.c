/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xensim.c - the simulated Xen host's command line.
 *
 *   xensim start [--dir DIR] [--foreground] ...   run the host
 *   xensim create --mem MiB [...]                 build a guest, print its id
 *   xensim list | info | stop | ...
 *
 * "start" runs the host daemon (daemon.c).  Every other command is a
 * client of the daemon through the channel of proto.h, exactly like the
 * stand-in Xen libraries.  See xensim(1) and docs/simulator.md.  New
 * subcommands are one entry in cmds[] and, when they need the daemon,
 * one XSIM_OP_*.  What plays libxl and libxc
 * (create --dm, destroy, migrate, mem-max, mem-set, hotplug) is the
 * toolstack, toolstack.h (docs/toolstack.md).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <xenctrl.h>

#include "xen/sim/chan.h"
#include "xen/sim/daemon.h"
#include "xen/sim/host.h"
#include "xen/sim/stamp.h"
#include "xen/sim/toolstack.h"

#define PROG "xensim"

static char g_dir[200];         /* state dir; "" = default */

static void die_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    exit(2);
}

static int state_dir(char *buf, size_t len)
{
    if (g_dir[0]) {
        snprintf(buf, len, "%s", g_dir);
        return 0;
    }
    return xsim_state_dir(buf, len);
}

/* ---- xensim start ------------------------------------------------------- */

static int cmd_start(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "foreground", no_argument, NULL, 'f' },
        { "tracking", required_argument, NULL, 't' },
        { "xenstore", required_argument, NULL, 'x' },
        { "ready-fd", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    struct xsim_daemon_opts o = { "auto", "auto", -1 };
    char dir[200], logp[PATH_MAX], msg[512];
    bool fg = false;
    int c, pfd[2];
    pid_t pid;
    ssize_t n;
    size_t got = 0;

    while ((c = getopt_long(argc, argv, "d:ft:x:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            snprintf(g_dir, sizeof(g_dir), "%s", optarg);
            break;
        case 'f':
            fg = true;
            break;
        case 't':
            if (strcmp(optarg, "auto") && strcmp(optarg, "uffd") &&
                strcmp(optarg, "explicit"))
                die_usage("--tracking is auto, uffd or explicit");
            o.tracking = optarg;
            break;
        case 'x':
            if (strcmp(optarg, "auto") && strcmp(optarg, "on") &&
                strcmp(optarg, "off"))
                die_usage("--xenstore is auto, on or off");
            o.xenstore = optarg;
            break;
        case 'r':
            o.ready_fd = atoi(optarg);
            break;
        default:
            die_usage("bad option for start");
        }
    }
    if (optind != argc)
        die_usage("start takes no arguments");
    if (getenv("XENSIM_TRACKING") && !strcmp(o.tracking, "auto"))
        o.tracking = getenv("XENSIM_TRACKING");
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    if (fg)
        return xsim_daemon_run(dir, &o);

    if (pipe2(pfd, O_CLOEXEC) < 0 || xsim_mkdir_p(dir) < 0) {
        fprintf(stderr, PROG ": cannot prepare %s: %s\n", dir, strerror(errno));
        return 1;
    }
    xsim_path(logp, sizeof(logp), dir, XSIM_LOG_NAME);
    pid = fork();
    if (pid < 0) {
        perror(PROG ": fork");
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int log = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);

        close(pfd[0]);
        setsid();
        if (null >= 0)
            dup2(null, 0);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        o.ready_fd = pfd[1];
        _exit(xsim_daemon_run(dir, &o));
    }
    close(pfd[1]);
    for (;;) {
        struct pollfd p = { .fd = pfd[0], .events = POLLIN };

        if (poll(&p, 1, 30000) <= 0) {
            fprintf(stderr, PROG ": the host did not start within 30 s; "
                    "see %s\n", logp);
            return 1;
        }
        n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(msg, '\n', got))
            break;
    }
    msg[got] = 0;
    if (strncmp(msg, "ok ", 3) == 0) {
        int dpid = 0;
        char mode[32] = "", xs[64] = "";

        sscanf(msg + 3, "%d %31s %63[^\n]", &dpid, mode, xs);
        printf("xensim: host running in %s (pid %d, tracking %s, xenstore %s)\n",
               dir, dpid, mode, xs);
        return 0;
    }
    if (strncmp(msg, "err ", 4) == 0)
        fprintf(stderr, PROG ": %s", msg + 4);
    else
        fprintf(stderr, PROG ": the host exited during start-up; see %s\n",
                logp);
    waitpid(pid, NULL, WNOHANG);
    return 1;
}

/* ---- client side ---------------------------------------------------------- */

static int g_fd = -1;

static int cli_connect(void)
{
    char dir[200];
    uint64_t args[6] = { XSIM_VERSION };
    struct xsim_rep rep;
    int rc;

    if (g_fd >= 0)
        return g_fd;
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    g_fd = xsim_connect(dir);
    if (g_fd < 0) {
        fprintf(stderr, PROG ": no simulated host in %s: %s "
                "(start one with '" PROG " start')\n", dir, strerror(-g_fd));
        exit(1);
    }
    rc = xsim_call(g_fd, XSIM_OP_HELLO, 0, args, "xensim", 6, &rep, NULL, 0,
                   NULL, NULL);
    if (rc || rep.err) {
        fprintf(stderr, PROG ": the host in %s does not answer: %s\n", dir,
                strerror(rc ? -rc : rep.err));
        exit(1);
    }
    return g_fd;
}

/* One call; on a channel failure, report and exit. */
static int call(uint16_t op, uint32_t domid, const uint64_t args[6],
                const void *in, size_t inlen, struct xsim_rep *rep, void *out,
                size_t outcap, int *fd_out)
{
    int rc = xsim_call(cli_connect(), op, domid, args, in, inlen, rep, out,
                       outcap, NULL, fd_out);

    if (rc) {
        fprintf(stderr, PROG ": lost the simulated host: %s\n", strerror(-rc));
        exit(1);
    }
    return rep->err;
}

static int get_info(uint32_t first, unsigned max, struct xsim_dominfo *out)
{
    uint64_t args[6] = { max };
    struct xsim_rep rep;

    if (call(XSIM_OP_DOM_GETINFO, first, args, NULL, 0, &rep, out,
             max * sizeof(*out), NULL))
        return -1;
    return (int)rep.ret;
}

/* A domain named by id or name. */
static uint32_t resolve_dom(const char *arg)
{
    struct xsim_dominfo info[64];
    char *end;
    unsigned long v;
    uint32_t first = 0;
    int n;

    errno = 0;
    v = strtoul(arg, &end, 10);
    if (!errno && *arg && !*end && v < XSIM_DOMID_FIRST_RESERVED)
        return (uint32_t)v;
    do {
        n = get_info(first, 64, info);
        for (int i = 0; i < n; i++) {
            if (strcmp(info[i].name, arg) == 0)
                return info[i].domid;
            first = info[i].domid + 1;
        }
    } while (n == 64);
    fprintf(stderr, PROG ": no domain '%s'\n", arg);
    exit(1);
}

static int report(int err, const char *what, uint32_t domid)
{
    if (err) {
        fprintf(stderr, PROG ": %s d%u: %s\n", what, domid, strerror(err));
        return 1;
    }
    return 0;
}

static void one_domain_arg(int argc, char **argv, const char *cmd)
{
    (void)argv;
    if (argc != 2)
        die_usage("%s takes one DOMAIN", cmd);
}

static unsigned long parse_ul(const char *s, const char *what)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno || !*s || *end)
        die_usage("bad %s '%s'", what, s);
    return v;
}

/*
 * `xensim create`.  Over 150 lines, knowingly: half of it is the parsing
 * and checking of its eleven options, each said where it is read, and
 * the rest the one sequence xl create follows (create, memory keys,
 * device model, unpause), whose failure paths all destroy the domain.
 */
static int cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mem", required_argument, NULL, 'm' },
        { "vram", required_argument, NULL, 'v' },
        { "workload", required_argument, NULL, 'w' },
        { "name", required_argument, NULL, 'n' },
        { "vcpus", required_argument, NULL, 'c' },
        { "paused", no_argument, NULL, 'p' },
        { "empty", no_argument, NULL, 'e' },
        { "dm", required_argument, NULL, 'D' },
        { "dm-arg", required_argument, NULL, 'A' },
        { "dm-timeout", required_argument, NULL, 'T' },
        { "maxmem", required_argument, NULL, 'M' },
        { NULL, 0, NULL, 0 },
    };
    struct xsim_create cr = { .vcpus = 1 };
    struct ts_domcfg cfg = { .vcpus = 1 };
    struct xsim_rep rep;
    bool have_mem = false, paused = false;
    const char *dm = NULL;
    uint64_t maxmem_mib = 0;
    int c, dm_timeout = 0;

    snprintf(cr.workload, sizeof(cr.workload), "idle");
    while ((c = getopt_long(argc, argv, "m:v:w:n:c:pe", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            cr.mem_kb = parse_ul(optarg, "--mem") * 1024;
            have_mem = true;
            break;
        case 'v':
            cr.vram_kb = parse_ul(optarg, "--vram") * 1024;
            break;
        case 'w': {
            struct xsim_workload wl;
            char err[160];

            if (workload_parse(optarg, &wl, err, sizeof(err)))
                die_usage("%s", err);
            snprintf(cr.workload, sizeof(cr.workload), "%s", optarg);
            break;
        }
        case 'n':
            if (strlen(optarg) >= sizeof(cr.name))
                die_usage("--name is too long");
            snprintf(cr.name, sizeof(cr.name), "%s", optarg);
            break;
        case 'c':
            cr.vcpus = (uint32_t)parse_ul(optarg, "--vcpus");
            break;
        case 'p':
            paused = true;
            break;
        case 'e':
            cr.flags |= XSIM_CREATE_EMPTY;
            break;
        case 'D':
            dm = optarg;
            break;
        case 'A':
            if (ts_domcfg_add_arg(&cfg, optarg))
                die_usage("out of memory");
            break;
        case 'T':
            dm_timeout = (int)parse_ul(optarg, "--dm-timeout") * 1000;
            break;
        case 'M':
            maxmem_mib = parse_ul(optarg, "--maxmem");
            break;
        default:
            die_usage("bad option for create");
        }
    }
    if (optind != argc)
        die_usage("create takes no arguments");
    if (!have_mem)
        die_usage("create needs --mem MiB");
    if (cr.vram_kb > cr.mem_kb)
        die_usage("--vram is part of --mem and cannot exceed it");
    if (cfg.ndm_args && !dm)
        die_usage("--dm-arg needs --dm");
    if (maxmem_mib && maxmem_mib * 1024 < cr.mem_kb)
        die_usage("--maxmem (what RAM hot-plug may grow the guest to) "
                  "cannot be below --mem");
    if (dm) {
        if (cr.flags & XSIM_CREATE_EMPTY)
            die_usage("--dm and --empty do not go together: the device "
                      "model maps the guest's RAM");
        if (!realpath(dm, cfg.dm))
            die_usage("--dm %s: %s", dm, strerror(errno));
    }
    /* With a device model, the domain stays paused until it is ready
     * (xl create unpauses last). */
    if (paused || dm)
        cr.flags |= XSIM_CREATE_PAUSED;
    if (call(XSIM_OP_DOM_CREATE, 0, NULL, &cr, sizeof(cr), &rep, NULL, 0,
             NULL)) {
        if (rep.err == EEXIST)
            /* libxl's words (libxl_domain.c) */
            fprintf(stderr, PROG ": create failed: Domain with name \"%s\" "
                    "already exists.\n", cr.name);
        else
            fprintf(stderr, PROG ": create failed: %s\n",
                    strerror(rep.err));
        ts_domcfg_free(&cfg);
        return 1;
    }
    {
        uint32_t domid = (uint32_t)rep.ret;
        struct xsim_dominfo info;
        struct ts_host h;
        char dir[200], err[TS_ERRLEN];
        int rc;

        if (state_dir(dir, sizeof(dir)))
            die_usage("state directory path too long");
        cfg.mem_mib = cr.mem_kb / 1024;
        cfg.vram_mib = cr.vram_kb / 1024;
        /* xl create's memory= is libxl's target and maximum alike. */
        cfg.target_memkb = cfg.max_memkb = cfg.mem_mib * 1024;
        rc = ts_host_open(&h, dir, err, sizeof(err));
        /* libxl__build_post: memory/target less the video memory,
         * memory/videoram. */
        if (rc == 0)
            rc = ts_write_memory_keys(&h, domid, &cfg, err, sizeof(err));
        if (rc) {
            fprintf(stderr, PROG ": d%u: %s\n", domid, err);
            if (h.fd >= 0)
                ts_host_close(&h);
            call(XSIM_OP_DOM_DESTROY, domid, NULL, NULL, 0, &rep, NULL, 0,
                 NULL);
            ts_domcfg_free(&cfg);
            return 1;
        }
        /* Room for RAM hot-plug: `xl mem-max` right after `xl create`
         * (Xen's maximum and static-max; the target stays memory=). */
        if (maxmem_mib * 1024 > cr.mem_kb) {
            rc = ts_setmaxmem(&h, domid, maxmem_mib, err, sizeof(err));
            if (rc) {
                fprintf(stderr, PROG ": d%u: %s\n", domid, err);
                ts_host_close(&h);
                call(XSIM_OP_DOM_DESTROY, domid, NULL, NULL, 0, &rep, NULL,
                     0, NULL);
                ts_domcfg_free(&cfg);
                return 1;
            }
            cfg.maxmem_mib = maxmem_mib;
        }

        /* What libxl keeps of the domain's configuration. */
        if (get_info(domid, 1, &info) == 1)
            snprintf(cfg.name, sizeof(cfg.name), "%s", info.name);
        snprintf(cfg.workload, sizeof(cfg.workload), "%s", cr.workload);
        cfg.vcpus = cr.vcpus;
        if (rc == 0) {
            rc = dm ? ts_create_dm(&h, domid, &cfg, dm_timeout, err,
                                   sizeof(err))
                    : ts_domcfg_save(h.dir, domid, &cfg, err, sizeof(err));
            ts_host_close(&h);
        }
        ts_domcfg_free(&cfg);
        if (rc && dm) {
            fprintf(stderr, PROG ": d%u: %s\n", domid, err);
            fprintf(stderr, PROG ": d%u: destroyed\n", domid);
            call(XSIM_OP_DOM_DESTROY, domid, NULL, NULL, 0, &rep, NULL, 0,
                 NULL);
            return 1;
        }
        if (rc)
            fprintf(stderr, PROG ": warning: %s\n", err);
        if (dm && !paused &&
            call(XSIM_OP_DOM_UNPAUSE, domid, NULL, NULL, 0, &rep, NULL, 0,
                 NULL))
            return report(rep.err, "unpause", domid);
        printf("%u\n", domid);
    }
    return 0;
}

static int simple_op(int argc, char **argv, uint16_t op, const char *what)
{
    struct xsim_rep rep;
    uint32_t domid;

    one_domain_arg(argc, argv, what);
    domid = resolve_dom(argv[1]);
    return report(call(op, domid, NULL, NULL, 0, &rep, NULL, 0, NULL), what,
                  domid);
}

static int cmd_destroy(int argc, char **argv)
{
    char dir[200], err[TS_ERRLEN];
    struct ts_host h;
    uint32_t domid;
    int rc;

    one_domain_arg(argc, argv, "destroy");
    domid = resolve_dom(argv[1]);
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    rc = ts_host_open(&h, dir, err, sizeof(err));
    if (rc == 0) {
        rc = ts_destroy(&h, domid, err, sizeof(err));
        ts_host_close(&h);
    }
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    return 0;
}

static int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' },
        { "no-progress", no_argument, NULL, 'n' },
        { "max-iters", required_argument, NULL, 'i' },
        { "threshold", required_argument, NULL, 'T' },
        { "checksum-at-suspend", required_argument, NULL, 'c' },
        { "pause-dest", no_argument, NULL, 'p' },
        { "dest-dm-arg", required_argument, NULL, 'A' },
        { "dm-timeout", required_argument, NULL, 'w' },
        { "progress", no_argument, NULL, 'P' },
        { "json", no_argument, NULL, 'J' },
        { "report", required_argument, NULL, 'R' },
        TS_ENGINE_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    struct ts_migrate_opts o = { .progress = true, .max_iters = 5,
                                 .threshold = 50 };
    struct ts_engine_opts eo = TS_ENGINE_OPTS_INIT;
    char dir[200], err[TS_ERRLEN];
    struct ts_host h;
    uint32_t domid;
    int c, rc;

    while ((c = getopt_long(argc, argv, "t:np", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            o.to = optarg;
            break;
        case 'n':
            o.progress = false;
            o.force_progress = false;
            break;
        case 'P':
            o.progress = true;
            o.force_progress = true;
            break;
        case 'J':
            o.json = true;
            break;
        case 'R':
            if (!optarg[0])
                die_usage("--report needs a file name (FILE.svg)");
            o.report_svg = optarg;
            break;
        case 'i':
            o.max_iters = (unsigned)parse_ul(optarg, "--max-iters");
            if (o.max_iters < 1)
                die_usage("--max-iters is at least 1 (round 0)");
            break;
        case 'T':
            o.threshold = parse_ul(optarg, "--threshold");
            break;
        case 'c':
            o.checksum_file = optarg;
            break;
        case 'p':
            o.pause_dest = true;
            break;
        case 'A': {
            char **n = realloc(o.dest_args,
                               (o.ndest_args + 1) * sizeof(*n));

            if (!n)
                die_usage("out of memory");
            o.dest_args = n;
            n[o.ndest_args++] = optarg;
            break;
        }
        case 'w':
            o.dm_timeout_ms = (int)parse_ul(optarg, "--dm-timeout") * 1000;
            break;
        default:
            if ((rc = ts_engine_opt(&eo, c, optarg, err, sizeof(err))) == 0)
                break;
            die_usage("%s", rc == -ENOENT ? "bad option for migrate" : err);
        }
    }
    /* xl migrate DOMAIN HOST: the host is the destination's directory. */
    if (optind + 2 == argc) {
        if (o.to && strcmp(o.to, argv[optind + 1]))
            die_usage("migrate got two destinations, '%s' and --to %s",
                      argv[optind + 1], o.to);
        o.to = argv[optind + 1];
    } else if (optind + 1 != argc) {
        die_usage("migrate takes DOMAIN [HOST] (HOST: the destination "
                  "host's directory, or --to DIR)");
    }
    if (!o.to)
        die_usage("migrate needs the destination host: DOMAIN DIR, or "
                  "--to DIR");
    domid = resolve_dom(argv[optind]);
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    rc = ts_host_open(&h, dir, err, sizeof(err));
    if (rc == 0) {
        rc = eo.xenram ? ts_migrate_engine(&h, domid, &o, &eo, err, sizeof(err))
                       : ts_migrate(&h, domid, &o, err, sizeof(err));
        ts_host_close(&h);
    }
    free(o.dest_args);
    if (rc) {
        fprintf(stderr, PROG ": migration of d%u failed: %s\n", domid, err);
        return 1;
    }
    return 0;
}

static int cmd_pause(int argc, char **argv)
{
    return simple_op(argc, argv, XSIM_OP_DOM_PAUSE, "pause");
}

static int cmd_unpause(int argc, char **argv)
{
    return simple_op(argc, argv, XSIM_OP_DOM_UNPAUSE, "unpause");
}

static int cmd_workload(int argc, char **argv)
{
    struct xsim_workload wl;
    struct xsim_rep rep;
    char err[160];
    uint32_t domid;

    if (argc != 3)
        die_usage("workload takes DOMAIN SPEC");
    if (workload_parse(argv[2], &wl, err, sizeof(err)))
        die_usage("%s", err);
    domid = resolve_dom(argv[1]);
    return report(call(XSIM_OP_DOM_WORKLOAD, domid, NULL, argv[2],
                       strlen(argv[2]), &rep, NULL, 0, NULL),
                  "workload", domid);
}

static void state_string(const struct xsim_dominfo *i, char s[7])
{
    snprintf(s, 7, "%c%c%c%c%c%c",
             i->flags & XSIM_DOMF_RUNNING ? 'r' : '-',
             i->flags & XSIM_DOMF_BLOCKED ? 'b' : '-',
             i->flags & XSIM_DOMF_PAUSED ? 'p' : '-',
             i->flags & XSIM_DOMF_SHUTDOWN ? 's' : '-', '-',
             i->flags & XSIM_DOMF_DYING ? 'd' : '-');
}

/* One domain as `list -l` shows it: a JSON object (as xl list -l). */
static json_t *dominfo_json(const struct xsim_dominfo *i)
{
    char st[7];

    state_string(i, st);
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:f,s:s,s:b,s:b}",
                     "name", i->name, "domid", (json_int_t)i->domid,
                     "memory_mib", (json_int_t)(i->tot_pages / 256),
                     "max_memory_mib", (json_int_t)(i->max_pages / 256),
                     "vcpus", (json_int_t)i->nr_vcpus,
                     "pause_count", (json_int_t)i->pause_count,
                     "state", st, "cpu_time_s", (double)i->cpu_time_ns / 1e9,
                     "workload", i->flags & XSIM_DOMF_CONTROL ? "-"
                                                              : i->workload,
                     "log_dirty", (i->flags & XSIM_DOMF_LOGDIRTY) != 0,
                     "vram_tracking", (i->flags & XSIM_DOMF_VRAM) != 0);
}

/*
 * `xl list [-l] [DOMAIN...]`: every domain, or those named (an unknown
 * one is an error, as in xl); -l prints them as a JSON array instead.
 */
static int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {
        { "long", no_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    struct xsim_dominfo info[64];
    uint32_t first = 0, *want = NULL;
    json_t *all = NULL;
    bool longfmt = false;
    int c, n, nwant = 0;

    while ((c = getopt_long(argc, argv, "l", opts, NULL)) != -1) {
        if (c != 'l')
            die_usage("bad option for list");
        longfmt = true;
    }
    if (optind < argc) {
        nwant = argc - optind;
        want = calloc((size_t)nwant, sizeof(*want));
        if (!want)
            die_usage("out of memory");
        for (int i = 0; i < nwant; i++)
            want[i] = resolve_dom(argv[optind + i]);
    }
    if (longfmt)
        all = json_array();
    else
        printf("%-20s %5s %7s %7s %5s %-6s %8s %-22s %s\n", "Name", "ID",
               "Mem", "MaxMem", "VCPUs", "State", "Time(s)", "Workload",
               "Log-dirty");
    do {
        n = get_info(first, 64, info);
        for (int i = 0; i < n; i++) {
            bool shown = !nwant;
            char st[7];

            first = info[i].domid + 1;
            for (int k = 0; k < nwant; k++)
                shown |= want[k] == info[i].domid;
            if (!shown)
                continue;
            if (longfmt) {
                json_array_append_new(all, dominfo_json(&info[i]));
                continue;
            }
            state_string(&info[i], st);
            printf("%-20s %5u %7" PRIu64 " %7" PRIu64 " %5u %-6s %8.1f "
                   "%-22s %s%s\n",
                   info[i].name, info[i].domid, info[i].tot_pages / 256,
                   info[i].max_pages / 256, info[i].nr_vcpus, st,
                   (double)info[i].cpu_time_ns / 1e9,
                   info[i].flags & XSIM_DOMF_CONTROL ? "-" : info[i].workload,
                   info[i].flags & XSIM_DOMF_LOGDIRTY ? "on" : "off",
                   info[i].flags & XSIM_DOMF_VRAM ? " +vram" : "");
        }
    } while (n == 64);
    if (longfmt) {
        json_dumpf(all, stdout, JSON_INDENT(4));
        putchar('\n');
        json_decref(all);
    }
    free(want);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    struct xsim_hostinfo hi;
    struct xsim_rep rep;

    (void)argv;
    if (argc != 1)
        die_usage("info takes no arguments");
    memset(&hi, 0, sizeof(hi));
    if (call(XSIM_OP_HOST_INFO, 0, NULL, NULL, 0, &rep, &hi, sizeof(hi),
             NULL))
        return report(rep.err, "info", 0);
    printf("state_dir        : %s\n", hi.state_dir);
    printf("pid              : %u\n", hi.pid);
    printf("protocol         : %u\n", hi.version);
    printf("domains          : %u\n", hi.nr_domains);
    printf("dirty_tracking   : %s\n", hi.tracking);
    printf("xenstore         : %s\n", hi.xenstore);
    printf("guest_phys_limit : %" PRIu64 " GiB\n", hi.gfn_limit >> 18);
    return 0;
}

static int cmd_stop(int argc, char **argv)
{
    struct xsim_rep rep;
    struct pollfd p;
    char buf[64];
    int fd;

    (void)argv;
    if (argc != 1)
        die_usage("stop takes no arguments");
    fd = cli_connect();
    if (call(XSIM_OP_HOST_STOP, 0, NULL, NULL, 0, &rep, NULL, 0, NULL))
        return report(rep.err, "stop", 0);
    /* The connection closes when the daemon has gone. */
    p.fd = fd;
    p.events = POLLIN;
    for (;;) {
        if (poll(&p, 1, 30000) <= 0) {
            fprintf(stderr, PROG ": the host did not exit within 30 s\n");
            return 1;
        }
        if (read(fd, buf, sizeof(buf)) <= 0)
            break;
    }
    return 0;
}

static int cmd_dm_state(int argc, char **argv)
{
    struct xsim_rep rep;
    char *buf = malloc(1 << 20);
    uint32_t domid;

    one_domain_arg(argc, argv, "dm-state");
    domid = resolve_dom(argv[1]);
    if (!buf)
        return 1;
    memset(buf, 0, 1 << 20);
    if (call(XSIM_OP_DM_STATE, domid, NULL, NULL, 0, &rep, buf,
             (1 << 20) - 1, NULL))
        return report(rep.err, "dm-state", domid);
    fputs(buf, stdout);
    free(buf);
    return 0;
}

static int cmd_dirty_log(int argc, char **argv)
{
    static const struct option opts[] = {
        { "peek", no_argument, NULL, 'p' },
        { "enable", no_argument, NULL, 'e' },
        { "disable", no_argument, NULL, 'd' },
        { "all", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t args[6] = { 0 };
    struct xsim_dominfo info;
    struct xsim_rep rep;
    enum { CLEAN, PEEK, ENABLE, DISABLE } what = CLEAN;
    bool all = false;
    uint64_t pages, g, count = 0, ranges = 0;
    uint8_t *bm;
    uint32_t domid;
    int c;

    while ((c = getopt_long(argc, argv, "peda", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            what = PEEK;
            break;
        case 'e':
            what = ENABLE;
            break;
        case 'd':
            what = DISABLE;
            break;
        case 'a':
            all = true;
            break;
        default:
            die_usage("bad option for dirty-log");
        }
    }
    if (optind + 1 != argc)
        die_usage("dirty-log takes one DOMAIN");
    domid = resolve_dom(argv[optind]);
    if (what == ENABLE || what == DISABLE) {
        args[0] = what == ENABLE ? XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY
                                 : XEN_DOMCTL_SHADOW_OP_OFF;
        return report(call(XSIM_OP_SHADOW, domid, args, NULL, 0, &rep, NULL,
                           0, NULL), "dirty-log", domid);
    }
    if (get_info(domid, 1, &info) != 1 || info.domid != domid)
        return report(ESRCH, "dirty-log", domid);
    if (!(info.flags & XSIM_DOMF_LOGDIRTY)) {
        printf("d%u: log-dirty is off (enable it with --enable)\n", domid);
        return 0;
    }
    pages = info.max_gpfn + 1;
    bm = calloc(1, (size_t)((pages + 7) / 8));
    if (!bm)
        return 1;
    args[0] = what == PEEK ? XEN_DOMCTL_SHADOW_OP_PEEK
                           : XEN_DOMCTL_SHADOW_OP_CLEAN;
    args[2] = pages;
    args[3] = 1;
    if (call(XSIM_OP_SHADOW, domid, args, NULL, 0, &rep, bm,
             (size_t)((pages + 7) / 8), NULL))
        return report(rep.err, "dirty-log", domid);
    for (g = 0; g < pages; g++)
        count += (bm[g / 8] >> (g % 8)) & 1;
    printf("d%u: %s: %" PRIu64 " dirty page(s), dirty_count %" PRIu64 "\n",
           domid, what == PEEK ? "peek" : "clean", count, rep.val[1]);
    for (g = 0; g < pages; g++) {
        uint64_t s;

        if (!((bm[g / 8] >> (g % 8)) & 1))
            continue;
        s = g;
        while (g + 1 < pages && ((bm[(g + 1) / 8] >> ((g + 1) % 8)) & 1))
            g++;
        if (all || ranges < 32) {
            if (s == g)
                printf("  %#" PRIx64 "\n", s);
            else
                printf("  %#" PRIx64 "-%#" PRIx64 "\n", s, g);
        }
        ranges++;
    }
    if (!all && ranges > 32)
        printf("  ... %" PRIu64 " more range(s) (--all shows them)\n",
               ranges - 32);
    free(bm);
    return 0;
}

/* Map the whole guest (present frames only) read-only: returns the p2m
 * bitmap and the mapping of [0, *pages). */
static uint8_t *map_guest(uint32_t domid, uint64_t *pages, uint8_t **p2m)
{
    uint64_t args[6] = { 1 };
    struct xsim_rep rep;
    uint8_t *bm, *mem;
    uint64_t bytes;
    int fd = -1;

    /* First learn the size, then fetch bitmap and memfd together. */
    if (call(XSIM_OP_MEM_P2M, domid, args, NULL, 0, &rep, NULL, 0, &fd)) {
        report(rep.err, "map", domid);
        return NULL;
    }
    bytes = (rep.val[0] + 7) / 8;
    bm = calloc(1, (size_t)bytes + 1);
    if (fd >= 0)
        close(fd);
    if (!bm)
        return NULL;
    if (call(XSIM_OP_MEM_P2M, domid, args, NULL, 0, &rep, bm, (size_t)bytes,
             &fd) || fd < 0) {
        report(rep.err ? rep.err : EINVAL, "map", domid);
        free(bm);
        return NULL;
    }
    *pages = rep.val[0];
    mem = mmap(NULL, (size_t)(*pages * XSIM_PAGE_SIZE), PROT_READ, MAP_SHARED,
               fd, 0);
    close(fd);
    if (mem == MAP_FAILED) {
        perror(PROG ": mmap");
        free(bm);
        return NULL;
    }
    *p2m = bm;
    return mem;
}

/*
 * 0 zeros, 1 a vCPU's stamp, 2 a page of xenram's test DMA device, -1
 * corrupt.  The domain is paused, but a running device model may be
 * writing this very page: a page that looks torn is looked at again for
 * up to 200 ms before it counts as corrupt.  A DMA write takes
 * microseconds, but its thread can lose its CPU half-way for several
 * scheduler slices on a loaded machine (5 ms of patience were seen to
 * call such a page corrupt).
 */
static int page_kind(const uint8_t *page, uint64_t gfn)
{
    for (int tries = 0;; tries++) {
        int k = xsim_stamp_check(page, gfn, NULL);

        if (k >= 0)
            return k;
        if (ts_testdma_check(page, gfn))
            return 2;
        if (tries == 100) {
            const uint64_t *w = (const void *)page;

            fprintf(stderr, "frame %#" PRIx64 ": words %#" PRIx64 " %#"
                    PRIx64 " %#" PRIx64 " %#" PRIx64 " ... %#" PRIx64 "\n",
                    gfn, w[0], w[1], w[2], w[3], w[511]);
            return -1;
        }
        poll(NULL, 0, 2);
    }
}

static int paused_scan(int argc, char **argv, const char *cmd, bool checksum)
{
    static const struct option opts[] = {
        { "no-pause", no_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    struct xsim_rep rep;
    bool pause = true;
    uint64_t pages, g, zero = 0, stamped = 0, dma = 0, bad = 0, present = 0;
    struct ts_digest hash = { 0, 0 };
    uint8_t *mem, *p2m;
    uint32_t domid;
    int c, rc = 0;

    while ((c = getopt_long(argc, argv, "n", opts, NULL)) != -1) {
        if (c != 'n')
            die_usage("bad option for %s", cmd);
        pause = false;
    }
    if (optind + 1 != argc)
        die_usage("%s takes one DOMAIN", cmd);
    domid = resolve_dom(argv[optind]);
    if (pause && call(XSIM_OP_DOM_PAUSE, domid, NULL, NULL, 0, &rep, NULL, 0,
                      NULL))
        return report(rep.err, cmd, domid);
    mem = map_guest(domid, &pages, &p2m);
    if (!mem) {
        rc = 1;
        goto out;
    }
    if (checksum)
        hash = ts_checksum(mem, p2m, pages, &present);
    for (g = 0; g < pages && !checksum; g++) {
        const uint8_t *page = mem + g * XSIM_PAGE_SIZE;

        if (!((p2m[g / 8] >> (g % 8)) & 1))
            continue;
        present++;
        switch (page_kind(page, g)) {
        case 0:
            zero++;
            break;
        case 1:
            stamped++;
            break;
        case 2:
            dma++;
            break;
        default:
            if (bad < 10)
                fprintf(stderr, "d%u: frame %#" PRIx64 " is corrupt\n", domid,
                        g);
            bad++;
        }
    }
    if (checksum) {
        char hex[TS_DIGEST_HEX];

        printf("%s %" PRIu64 " pages\n", ts_digest_hex(hash, hex), present);
    }
    else
        printf("d%u: %" PRIu64 " pages: %" PRIu64 " stamped, %" PRIu64
               " test-dma, %" PRIu64 " zero, %" PRIu64 " corrupt\n", domid,
               present, stamped, dma, zero, bad);
    rc = bad ? 1 : 0;
    munmap(mem, (size_t)(pages * XSIM_PAGE_SIZE));
    free(p2m);
out:
    if (pause)
        call(XSIM_OP_DOM_UNPAUSE, domid, NULL, NULL, 0, &rep, NULL, 0, NULL);
    return rc;
}

static int cmd_verify(int argc, char **argv)
{
    return paused_scan(argc, argv, "verify", false);
}

static int cmd_checksum(int argc, char **argv)
{
    return paused_scan(argc, argv, "checksum", true);
}

static int cmd_guest_write(int argc, char **argv)
{
    struct xsim_rep rep;
    uint64_t *gfns = NULL;
    size_t n = 0, cap = 0;
    uint32_t domid;

    if (argc < 3)
        die_usage("guest-write takes DOMAIN GFN[-GFN]...");
    domid = resolve_dom(argv[1]);
    for (int i = 2; i < argc; i++) {
        char *dash = strchr(argv[i], '-');
        uint64_t a, b;

        if (dash)
            *dash = 0;
        a = parse_ul(argv[i], "frame");
        b = dash ? parse_ul(dash + 1, "frame") : a;
        if (b < a || b - a > (1u << 24))
            die_usage("bad frame range");
        for (uint64_t g = a; g <= b; g++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                gfns = realloc(gfns, cap * sizeof(*gfns));
                if (!gfns)
                    return 1;
            }
            gfns[n++] = g;
        }
    }
    if (call(XSIM_OP_GUEST_WRITE, domid, NULL, gfns, n * sizeof(*gfns), &rep,
             NULL, 0, NULL))
        return report(rep.err, "guest-write", domid);
    printf("d%u: the guest wrote %" PRId64 " of %zu frame(s)\n", domid,
           rep.ret, n);
    free(gfns);
    return 0;
}

/* The guest's balloon driver gives frames back: `balloon DOMAIN -N`. */
static int cmd_balloon(int argc, char **argv)
{
    uint64_t args[6] = { 0 };
    struct xsim_rep rep;
    uint32_t domid;

    if (argc != 3 || argv[2][0] != '-')
        die_usage("balloon takes DOMAIN -FRAMES (the frames the guest "
                  "gives back)");
    domid = resolve_dom(argv[1]);
    args[0] = parse_ul(argv[2] + 1, "frame count");
    if (call(XSIM_OP_DOM_BALLOON, domid, args, NULL, 0, &rep, NULL, 0, NULL))
        return report(rep.err, "balloon", domid);
    printf("d%u: the guest gave back %" PRId64 " frame(s)\n", domid, rep.ret);
    return 0;
}

/* A size as the hot-plug protocol counts: "64 MiB", else bytes. */
static void size_text(uint64_t bytes, char *buf, size_t len)
{
    if (bytes && bytes % (1ull << 30) == 0)
        snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
    else if (bytes && bytes % (1ull << 20) == 0)
        snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
    else
        snprintf(buf, len, "%" PRIu64 " bytes", bytes);
}

static uint64_t parse_size_arg(const char *s, const char *what)
{
    uint64_t v;

    if (ts_parse_size(s, &v))
        die_usage("bad %s '%s' (a number of bytes, decimal or 0x-hex, "
                  "optionally with K, M, G or T)", what, s);
    return v;
}

static int hotplug_list(struct ts_host *h, uint32_t domid)
{
    struct ts_hp_slot *v;
    char err[TS_ERRLEN];
    unsigned n;

    if (ts_hotplug_list(h, domid, &v, &n, err, sizeof(err))) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    printf("%-5s %-8s %-14s %-10s %s\n", "Slot", "State", "GPA", "Size",
           "Request/error");
    for (unsigned i = 0; i < n; i++) {
        char sz[32] = "-";
        uint64_t b;

        if (v[i].gpa[0] && ts_parse_size(v[i].size, &b) == 0)
            size_text(b, sz, sizeof(sz));
        printf("%-5u %-8s %-14s %-10s %s%s%s\n", v[i].slot,
               v[i].state[0] ? v[i].state : "-",
               v[i].gpa[0] ? v[i].gpa : "-", sz,
               v[i].action[0] ? "pending: " : "", v[i].action,
               v[i].action[0] ? "" : v[i].error);
    }
    free(v);
    return 0;
}

/*
 * `xensim hotplug DOMAIN add SIZE [--at GPA] [--slot N]`,
 * `xensim hotplug DOMAIN remove SLOT`, `xensim hotplug DOMAIN list`:
 * the toolstack's side of docs/hotplug.md.
 */
static int cmd_hotplug(int argc, char **argv)
{
    static const struct option opts[] = {
        { "at", required_argument, NULL, 'a' },
        { "slot", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    struct ts_hp_req r = { .slot = TS_HP_AUTO, .start = TS_HP_AUTO };
    struct ts_hp_slot ans;
    char dir[200], err[TS_ERRLEN], what[32];
    const char *verb;
    struct ts_host h;
    uint32_t domid;
    int c, rc;

    while ((c = getopt_long(argc, argv, "a:s:T:", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            r.start = parse_size_arg(optarg, "--at");
            if (r.start == TS_HP_AUTO)
                die_usage("bad --at '%s'", optarg);
            break;
        case 's':
            r.slot = parse_ul(optarg, "--slot");
            if (r.slot >= 100000)
                die_usage("bad --slot '%s'", optarg);
            break;
        case 'T':
            r.timeout_ms = (int)parse_ul(optarg, "--timeout") * 1000;
            break;
        default:
            die_usage("bad option for hotplug");
        }
    }
    if (argc - optind < 2)
        die_usage("hotplug takes DOMAIN add SIZE, DOMAIN remove SLOT or "
                  "DOMAIN list");
    domid = resolve_dom(argv[optind]);
    verb = argv[optind + 1];
    if (!strcmp(verb, "add")) {
        if (argc - optind != 3)
            die_usage("hotplug DOMAIN add takes one SIZE");
        r.size = parse_size_arg(argv[optind + 2], "SIZE");
    } else if (!strcmp(verb, "remove")) {
        if (argc - optind != 3)
            die_usage("hotplug DOMAIN remove takes one SLOT");
        if (r.slot != TS_HP_AUTO || r.start != TS_HP_AUTO)
            die_usage("--slot and --at are for add");
        r.remove = true;
        r.slot = parse_ul(argv[optind + 2], "SLOT");
        if (r.slot >= 100000)
            die_usage("bad SLOT '%s'", argv[optind + 2]);
    } else if (!strcmp(verb, "list")) {
        if (argc - optind != 2)
            die_usage("hotplug DOMAIN list takes no more arguments");
    } else {
        die_usage("hotplug: unknown request '%s' (add, remove or list)",
                  verb);
    }
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    rc = ts_host_open(&h, dir, err, sizeof(err));
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    if (!strcmp(verb, "list")) {
        rc = hotplug_list(&h, domid);
        ts_host_close(&h);
        return rc;
    }
    rc = ts_hotplug(&h, domid, &r, &ans, err, sizeof(err));
    ts_host_close(&h);
    if (rc) {
        fprintf(stderr, PROG ": d%u: hot-plug %s: %s\n", domid, verb, err);
        return 1;
    }
    if (!r.remove && !strcmp(ans.state, "online")) {
        size_text(r.size, what, sizeof(what));
        printf("d%u: slot %u online: %s at %s\n", domid, ans.slot, what,
               ans.gpa);
        return 0;
    }
    if (r.remove && !strcmp(ans.state, "removed")) {
        printf("d%u: slot %u removed\n", domid, ans.slot);
        return 0;
    }
    /* Refused (or failed): xenram's sentence, as it wrote it. */
    fprintf(stderr, PROG ": d%u: slot %u: %s refused (state %s): %s\n",
            domid, ans.slot, verb, ans.state,
            ans.error[0] ? ans.error : "(no error given)");
    if (ans.gpa[0])
        fprintf(stderr, PROG ": d%u: slot %u holds memory at %s\n", domid,
                ans.slot, ans.gpa);
    return 1;
}

/*
 * A memory size as xl takes it (parse_mem_size_kb): a number with an
 * optional suffix b, k, m (the default), g or t; the simulator works in
 * whole MiB, so a size that is not one is refused with a sentence.
 */
static uint64_t parse_xl_mem_mib(const char *s, const char *what)
{
    char *end;
    unsigned long long v;
    uint64_t kb;
    unsigned shift;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-' || strlen(end) > 1)
        die_usage("bad %s '%s' (a size: 512, 512m, 2g, as xl takes)", what,
                  s);
    switch (tolower((unsigned char)*end)) {
    case 't': shift = 30; break;
    case 'g': shift = 20; break;
    case '\0':
    case 'm': shift = 10; break;
    case 'k': shift = 0; break;
    case 'b':
        if (v % 1024)
            die_usage("%s '%s' is not a whole number of KiB", what, s);
        v /= 1024;
        shift = 0;
        break;
    default:
        die_usage("bad %s '%s': the suffix is one of b, k, m, g, t", what, s);
    }
    if (v > (1ull << 40) >> shift)
        die_usage("%s '%s' is too large", what, s);
    kb = (uint64_t)v << shift;
    if (!kb || kb % 1024)
        die_usage("%s '%s' is not a whole, non-zero number of MiB (the "
                  "simulator's unit)", what, s);
    return kb / 1024;
}

/*
 * `xl mem-max` / `xl mem-set`: DOMAIN SIZE (MiB by default), handed to @set (ts_setmaxmem or
 * ts_set_memory_target); @what names the value in usage errors.
 */
static int mem_cmd(int argc, char **argv, const char *name, const char *what,
                   int (*set)(struct ts_host *, uint32_t, uint64_t, char *,
                              size_t))
{
    char dir[200], err[TS_ERRLEN];
    struct ts_host h;
    uint32_t domid;
    uint64_t mib;
    int rc;

    if (argc != 3)
        die_usage("%s takes DOMAIN SIZE", name);
    mib = parse_xl_mem_mib(argv[2], what);
    domid = resolve_dom(argv[1]);
    if (state_dir(dir, sizeof(dir)))
        die_usage("state directory path too long");
    rc = ts_host_open(&h, dir, err, sizeof(err));
    if (rc == 0) {
        rc = set(&h, domid, mib, err, sizeof(err));
        ts_host_close(&h);
    }
    if (rc) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    return 0;
}

/* `xl mem-max`: the domain's maximum memory. */
static int cmd_mem_max(int argc, char **argv)
{
    return mem_cmd(argc, argv, "mem-max", "maximum", ts_setmaxmem);
}

/* `xl mem-set`: the domain's target, and Xen's maximum with it. */
static int cmd_mem_set(int argc, char **argv)
{
    return mem_cmd(argc, argv, "mem-set", "target", ts_set_memory_target);
}

/* `xl sched-credit2 -d DOM [-w N] [-c N]`: show the domain's credit2
 * weight and cap, or set them, keeping what is not given (libxl reads the
 * current values first). */
static int cmd_sched_credit2(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cap", required_argument, NULL, 'c' },
        { "weight", required_argument, NULL, 'w' },
        { NULL, 0, NULL, 0 },
    };
    long weight = -1, cap = -1;
    uint64_t args[6] = { XEN_SCHEDULER_CREDIT2, 0 };
    struct xsim_dominfo info;
    struct xsim_rep rep;
    uint32_t domid;
    char *end;
    int c;

    while ((c = getopt_long(argc, argv, "c:w:", opts, NULL)) != -1) {
        long *v = c == 'c' ? &cap : &weight;

        if (c != 'c' && c != 'w')
            die_usage("sched-credit2 takes DOMAIN [--cap N] [--weight N]");
        errno = 0;
        *v = strtol(optarg, &end, 10);
        if (errno || *end || !*optarg || *v < 0 || *v > 65535 ||
            (c == 'w' && *v == 0))
            die_usage("sched-credit2: bad --%s '%s' (%s)",
                      c == 'c' ? "cap" : "weight", optarg,
                      c == 'c' ? "0-65535, 0 = no cap" : "1-65535");
    }
    if (optind != argc - 1)
        die_usage("sched-credit2 takes DOMAIN [--cap N] [--weight N]");
    domid = resolve_dom(argv[optind]);
    if (call(XSIM_OP_SCHED_DOM, domid, args, NULL, 0, &rep, NULL, 0, NULL))
        return report(rep.err, "sched-credit2", domid);
    if (weight >= 0 || cap >= 0) {
        args[1] = 1;
        args[2] = weight >= 0 ? (uint64_t)weight : rep.val[0];
        args[3] = cap >= 0 ? (uint64_t)cap : rep.val[1];
        return report(call(XSIM_OP_SCHED_DOM, domid, args, NULL, 0, &rep,
                           NULL, 0, NULL), "sched-credit2", domid);
    }
    if (get_info(domid, 1, &info) != 1 || info.domid != domid)
        return report(ESRCH, "sched-credit2", domid);
    printf("%-32s %5s %6s %4s\n", "Name", "ID", "Weight", "Cap");
    printf("%-32s %5u %6" PRIu64 " %4" PRIu64 "\n", info.name, domid,
           rep.val[0], rep.val[1]);
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *args;
    const char *help;
};

static int cmd_help(int argc, char **argv);

static const struct cmd cmds[] = {
    { "start", cmd_start,
      "[--foreground] [--tracking auto|uffd|explicit] [--xenstore auto|on|off] "
      "[--ready-fd FD]", "start the simulated host (a daemon)" },
    { "stop", cmd_stop, "", "stop the host and every domain in it" },
    { "info", cmd_info, "", "show the host: pid, tracking mode, xenstore" },
    { "create", cmd_create,
      "--mem MiB [--vram MiB] [--workload W] [--name N] [--vcpus N] "
      "[--maxmem MiB] [--paused] [--empty] [--dm PATH [--dm-arg ARG]... "
      "[--dm-timeout S]]",
      "build an HVM guest, print its domid; --dm starts its device model "
      "as libxl does; --maxmem leaves room for RAM hot-plug" },
    { "list", cmd_list, "[-l] [DOMAIN...]",
      "list the domains, or those named; -l as JSON (xl list -l)" },
    { "destroy", cmd_destroy, "DOMAIN",
      "destroy a domain (its device model first)" },
    { "migrate", cmd_migrate,
      "DOMAIN [DIR] [--to DIR] [-p|--pause-dest] [--progress|--no-progress] [--json] "
      "[--report FILE.svg] [--max-iters N] [--threshold N] "
      "[--checksum-at-suspend FILE] [--dest-dm-arg ARG]... "
      "[--engine libxc|xenram [--channels N] [--compress zstd] [--auto-converge] "
      "[--postcopy [--postcopy-after-rounds N|never] [--postcopy-preempt]] "
      "[--downtime-limit MS] [--max-bandwidth MiB/s] "
      "[--x-postcopy-pause SIDE:MS[,SIDE:MS]...] "
      "[--x-postcopy-prepare-passes N]] "
      "[--dm-timeout S]",
      "live-migrate a domain to the host in DIR, as xl migrate does; a "
      "live line on a terminal (--progress: on a pipe too), the rounds "
      "as JSON (--json) or as an SVG plot (--report); a postcopy link "
      "that breaks is recovered (up to 10 attempts a pause). "
      "--x-postcopy-pause is a test hook: for each entry, MS ms after both "
      "sides (re)entered postcopy-active, migrate-pause to the src or "
      "dst xenram (implies --postcopy); --x-postcopy-prepare-passes sets "
      "xenram's x-postcopy-prepare-passes (0: page the destination out "
      "with the guest paused, as before)" },
    { "hotplug", cmd_hotplug,
      "DOMAIN add SIZE [--at GPA] [--slot N] | DOMAIN remove SLOT | "
      "DOMAIN list [--timeout S]",
      "hot-plug or unplug RAM through the device model's xenstore "
      "protocol (docs/hotplug.md); SIZE and GPA take K, M, G" },
    { "mem-max", cmd_mem_max, "DOMAIN SIZE",
      "set a domain's maximum memory and static-max (xl mem-max)" },
    { "mem-set", cmd_mem_set, "DOMAIN SIZE",
      "set a domain's target, video memory included, and Xen's maximum "
      "with it (xl mem-set); a migration gives the destination target + "
      "1 MiB, so hot-plugged RAM needs it" },
    { "sched-credit2", cmd_sched_credit2, "DOMAIN [--cap N] [--weight N]",
      "show or set a domain's credit2 weight and cap (% of one pCPU, "
      "0 = none), as xl sched-credit2 -d DOMAIN -c N -w N" },
    { "pause", cmd_pause, "DOMAIN", "pause a domain (counted, like xl)" },
    { "unpause", cmd_unpause, "DOMAIN", "undo one pause" },
    { "workload", cmd_workload, "DOMAIN W", "change what the vCPUs do" },
    { "dirty-log", cmd_dirty_log, "DOMAIN [--peek|--enable|--disable] [--all]",
      "CLEAN (or PEEK) log-dirty and show the dirty pages" },
    { "verify", cmd_verify, "DOMAIN [--no-pause]",
      "check every guest page is zero, a whole stamp of its frame or a "
      "whole page of xenram's test DMA device" },
    { "checksum", cmd_checksum, "DOMAIN [--no-pause]",
      "digest of the guest's memory, to compare two copies" },
    { "guest-write", cmd_guest_write, "DOMAIN GFN[-GFN]...",
      "make the guest write (stamp) these frames now, as a vCPU does" },
    { "balloon", cmd_balloon, "DOMAIN -N",
      "the guest's balloon driver gives N frames back (from the top of its "
      "RAM, on vCPU 0): Xen's INVALIDATE goes to every ioreq server" },
    { "dm-state", cmd_dm_state, "DOMAIN",
      "what device models asked: ioreq servers, ranges, cache attributes" },
    { "help", cmd_help, "[COMMAND]",
      "this text, or one command's (also: COMMAND --help)" },
};

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROG " [--dir DIR] COMMAND [ARGS]\n"
        "A simulated Xen host for xenram: stand-in Xen libraries talk to it.\n"
        "\n"
        "The host keeps its state in DIR (--dir, else $XENSIM_DIR, else\n"
        "$XDG_RUNTIME_DIR/xensim, else /tmp/xensim-UID).  Programs find it the\n"
        "same way; run them with LD_LIBRARY_PATH pointing at the stand-ins.\n"
        "\nCommands:\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  %-10s %s\n  %-10s   %s\n", cmds[i].name, cmds[i].args,
                "", cmds[i].help);
    fprintf(f,
        "\nDOMAIN is a domid or a name.  Workloads W: idle, random:MiBps,\n"
        "hotset:PCT:MiBps, sequential:MiBps (0 = unlimited).\n"
        "See xensim(1) and docs/simulator.md.\n");
}

/* One command's synopsis and help, as `xl help CMD` gives them. */
static int command_usage(FILE *f, const char *name)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].name, name) == 0) {
            fprintf(f, "Usage: " PROG " [--dir DIR] %s %s\n\n%s.\n\n"
                    "See xensim(1) and docs/simulator.md.\n", cmds[i].name,
                    cmds[i].args, cmds[i].help);
            return 0;
        }
    }
    return -1;
}

/* `xensim help [COMMAND]`. */
static int cmd_help(int argc, char **argv)
{
    if (argc > 2)
        die_usage("help takes at most one COMMAND");
    if (argc == 2) {
        if (command_usage(stdout, argv[1]))
            die_usage("unknown command '%s'", argv[1]);
        return 0;
    }
    usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    /* Options before the command; the command's own come after it. */
    while ((c = getopt_long(argc, argv, "+d:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (strlen(optarg) >= sizeof(g_dir))
                die_usage("--dir path too long");
            snprintf(g_dir, sizeof(g_dir), "%s", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf(PROG " (xenram) protocol %u, Xen 4.17 interfaces\n",
                   XSIM_VERSION);
            return 0;
        default:
            die_usage("unknown option");
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[optind], cmds[i].name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;

            optind = 0;         /* re-initialise getopt for the command */
            /* `xensim CMD --help` / `-h`, as xl CMD -h: the command's help. */
            if (sub_argc == 2 && (!strcmp(sub_argv[1], "--help") ||
                                  !strcmp(sub_argv[1], "-h"))) {
                command_usage(stdout, cmds[i].name);
                return 0;
            }
            return cmds[i].fn(sub_argc, sub_argv);
        }
    }
    die_usage("unknown command '%s'", argv[optind]);
}
