/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * toolstack.h - xensim playing the Xen toolstack: what libxl and libxc do
 * for an HVM guest with a qemu-xen device model, against simulated hosts.
 *
 *   - the domain's configuration, kept beside the host (libxl's userdata);
 *   - the device model: launched with the command line libxl 4.17 builds
 *     (libxl__build_device_model_args_new), spoken to over QMP as libxl
 *     does, readiness from xenstore (device-model/<domid>/state), stopped
 *     with "quit" then signals;
 *   - `xl migrate` with libxc's save/restore: log-dirty rounds, suspend,
 *     device state through an fd, the receiving device model started with
 *     -incoming fd:N, and libxl_domain_resume when the receiver fails.
 *
 * docs/toolstack.md walks through every step and names the libxl/libxc
 * function it stands for.  Nothing here shares code with the device model:
 * QMP is spoken with jansson, xenstore with Debian's libxenstore, the
 * hosts through the channel of proto.h.
 *
 * Errors: functions return 0 or -errno and write a sentence into @err
 * (TS_ERRLEN bytes are always enough).
 */
#ifndef XENSIM_TOOLSTACK_H
#define XENSIM_TOOLSTACK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "xen/sim/proto.h"

#define TS_ERRLEN 1024

/* ---- a simulated host ------------------------------------------------- */

/* The stand-in libraries: $XENSIM_LIBDIR, else sim/ beside the running
 * executable ($(BUILD)/sim for $(BUILD)/xensim). */
void ts_lib_dir(char *buf, size_t len);

struct ts_host {
    char dir[200];              /* absolute state directory */
    int fd;                     /* our channel to its daemon */
    bool xenstore;              /* Debian's xenstored runs for it */
    char xs_socket[256];        /* <dir>/xenstored/socket */
};

/* Connect to the host of @dir (greeting included). */
int ts_host_open(struct ts_host *h, const char *dir, char *err,
                 size_t errlen);
void ts_host_close(struct ts_host *h);

/*
 * One request.  Returns -errno when the channel failed (the host is gone),
 * else 0 with the operation's own result in @rep (rep->err).
 */
int ts_call(struct ts_host *h, uint16_t op, uint32_t domid,
            const uint64_t args[6], const void *in, size_t inlen,
            struct xsim_rep *rep, void *out, size_t outcap, int *fd_out);

/* The domain's info; -ESRCH if it does not exist. */
int ts_dominfo(struct ts_host *h, uint32_t domid, struct xsim_dominfo *out);

/* ---- the domain's configuration (libxl's domain userdata) -------------- */

/*
 * Kept as <dir>/domain-<domid>.json by `xensim create` and by a migration
 * (for the domain it creates), removed by `xensim destroy`.
 */
struct ts_domcfg {
    char name[64];
    char workload[64];
    uint64_t mem_mib;           /* xl's memory= (= maxmem) */
    uint64_t maxmem_mib;        /* what RAM hot-plug may grow the domain to
                                   (create --maxmem); 0: mem_mib */
    uint64_t vram_mib;          /* xl's videoram= */
    /* libxl's b_info.target_memkb and max_memkb, what the domain was
     * built with: xl create's memory= for both (0 in a record: mem_mib);
     * for a migration's receiver, what the sender retrieved
     * (libxl_retrieve_domain_configuration: memory/target plus
     * libxl__get_targetmem_fudge, memory/static-max).  Not updated by
     * mem-max or mem-set, as libxl does not update them either. */
    uint64_t target_memkb;
    uint64_t max_memkb;
    unsigned vcpus;
    char dm[PATH_MAX];          /* device model executable; "" for none */
    char **dm_args;             /* device_model_args (--dm-arg) */
    unsigned ndm_args;
    pid_t dm_pid;               /* 0: none running */
    uint64_t dm_start;          /* its start time (/proc/PID/stat), so that a
                                   recycled pid is never signalled */
};

int ts_domcfg_save(const char *dir, uint32_t domid, const struct ts_domcfg *c,
                   char *err, size_t errlen);
/* -ENOENT when there is no record. */
int ts_domcfg_load(const char *dir, uint32_t domid, struct ts_domcfg *c,
                   char *err, size_t errlen);
void ts_domcfg_remove(const char *dir, uint32_t domid);
void ts_domcfg_free(struct ts_domcfg *c);
/* Append a device_model_args entry (copied). */
int ts_domcfg_add_arg(struct ts_domcfg *c, const char *arg);

/* ---- QMP client ------------------------------------------------------------ */

struct ts_qmp {
    int fd;
    char *buf;                  /* received, not yet parsed */
    size_t len, cap;
    int64_t next_id;
    int major, minor, micro;    /* the QEMU level the greeting announced */
    char package[128];
    int pidfd;                  /* the device model: stop waiting when it
                                   dies (-1: none) */
};

/*
 * Connect to the QMP socket @path, retrying while it does not exist yet or
 * refuses (the device model is starting) for up to @timeout_ms, read the
 * greeting and negotiate (qmp_capabilities).  @pidfd (or -1) is the
 * device model's pidfd: its death ends the wait at once.
 */
int ts_qmp_connect(struct ts_qmp *q, const char *path, int pidfd,
                   int timeout_ms, char *err, size_t errlen);

/*
 * Execute @cmd with @args (stolen; NULL for none), passing @pass_fd with
 * SCM_RIGHTS when >= 0, and wait up to @timeout_ms for the reply carrying
 * our id (events are skipped).  Returns the "return" value (a new
 * reference) or NULL with @err set (QMP error class and description, or
 * what went wrong with the connection).
 */
json_t *ts_qmp_exec(struct ts_qmp *q, const char *cmd, json_t *args,
                    int pass_fd, int timeout_ms, char *err, size_t errlen);

void ts_qmp_close(struct ts_qmp *q);

/* ---- device model ---------------------------------------------------------- */

struct ts_dm {
    pid_t pid;                  /* 0: none */
    int pidfd;
    bool child;                 /* we forked it: ours to reap */
    uint64_t start;             /* /proc/PID/stat start time */
    char log[PATH_MAX];         /* its stdout and stderr */
    char qmp[108];              /* <dir>/qmp-libxl-<domid> */
};

/*
 * The command line libxl 4.17 builds for an HVM guest with a qemu-xen
 * device model (libxl__build_device_model_args_new), for domain @domid of
 * host @h, with @extra (the destination's --dest-dm-arg, may be NULL)
 * after the configured device_model_args, and `-incoming @incoming`
 * (fd:N, unix:PATH ...) where libxl puts it, when not NULL.
 * NULL-terminated, malloc'd (free with ts_argv_free).
 */
char **ts_dm_argv(const struct ts_host *h, uint32_t domid,
                  const struct ts_domcfg *c, char *const *extra,
                  unsigned nextra, const char *incoming);
void ts_argv_free(char **argv);

/*
 * Launch the device model of @domid: its argv from ts_dm_argv(), the
 * environment libxl gives it (XEN_DOMAIN_ID, XEN_QEMU_CONSOLE_LIMIT) plus
 * the host's (XENSIM_DIR, XENSTORED_PATH, the stand-in libraries on
 * LD_LIBRARY_PATH), stdin /dev/null, stdout and stderr appended to
 * <dir>/qemu-dm-<name>.log, in a session of its own.  @incoming_fd, when
 * >= 0, is inherited as the -incoming descriptor (-incoming fd:3);
 * otherwise @incoming_uri, when not NULL, is xenram's own engine's
 * (-incoming unix:PATH, tcp:HOST:PORT, defer).
 */
int ts_dm_launch(const struct ts_host *h, uint32_t domid,
                 const struct ts_domcfg *c, char *const *extra,
                 unsigned nextra, int incoming_fd, const char *incoming_uri,
                 struct ts_dm *dm, char *err, size_t errlen);

/*
 * libxl's start-up conversation with a launched device model: connect
 * (retrying while it starts), greeting, qmp_capabilities, query-status.
 * Not incoming: "running" is fine, "prelaunch" (-S) gets a "cont".
 * Incoming (after "inmigrate", if seen): "paused" (-S) is left so;
 * "running" (QEMU without -S runs once the state is loaded) is fine.
 * Then, unless incoming and paused, waits for xenstore's
 * /local/domain/0/device-model/<domid>/state = running.  @q stays
 * connected for the caller.
 */
int ts_dm_startup(const struct ts_host *h, uint32_t domid, struct ts_dm *dm,
                  struct ts_qmp *q, bool incoming, int timeout_ms,
                  char *err, size_t errlen);

/* Wait for xenstore's device-model state = running (xs_watch). */
int ts_dm_wait_running(const struct ts_host *h, uint32_t domid,
                       struct ts_dm *dm, int timeout_ms, char *err,
                       size_t errlen);

/*
 * Whether domain @domid has a device model xensim did not start (its
 * record names none, but something answers on libxl's QMP socket
 * DIR/qmp-libxl-DOMID, as a xenram started by hand as the README shows).
 * xensim cannot follow such a device model through a migration or ask
 * it for memory: the commands that need one refuse, saying so.
 */
bool ts_dm_foreign(const struct ts_host *h, uint32_t domid);

/* The sentence for that refusal, naming @what could not be done. */
void ts_dm_foreign_err(const struct ts_host *h, uint32_t domid,
                       const char *what, char *err, size_t errlen);

/* Find the running device model a record names (-ESRCH: not running). */
int ts_dm_attach(const struct ts_host *h, uint32_t domid,
                 const struct ts_domcfg *c, struct ts_dm *dm);

/*
 * Stop a device model: "quit" over QMP when @qmp, then SIGTERM, then
 * SIGKILL, each step bounded (a few seconds).  0 once it is gone.
 */
int ts_dm_stop(struct ts_dm *dm, bool qmp, char *err, size_t errlen);

/* Close the pidfd (the process is left alone). */
void ts_dm_release(struct ts_dm *dm);

/* ---- what `xensim` commands call ----------------------------------------- */

/*
 * After `xensim create` built domain @domid (paused): launch its device
 * model and hold libxl's start-up conversation; record the pid in @c, in
 * the domain's record and in xenstore (image/device-model-pid).  On
 * failure the device model is stopped; the caller destroys the domain.
 */
int ts_create_dm(struct ts_host *h, uint32_t domid, struct ts_domcfg *c,
                 int timeout_ms, char *err, size_t errlen);

/* `xensim destroy`: the device model first (quit, signals), then the
 * domain, then its record. */
int ts_destroy(struct ts_host *h, uint32_t domid, char *err, size_t errlen);

/*
 * The host daemon of @dir starts or stops: stop every device model its
 * records name (SIGTERM, then SIGKILL) and forget the records and any
 * saved device state left behind.
 */
void ts_host_cleanup(const char *dir);

struct ts_migrate_opts {
    const char *to;             /* the destination host's state directory */
    bool progress;              /* the live line on stderr, if a terminal */
    bool force_progress;        /* --progress: lines even on a pipe */
    bool json;                  /* --json: the report as JSON on stdout */
    const char *report_svg;     /* --report FILE.svg: the plot */
    unsigned max_iters;         /* live rounds, round 0 included (5) */
    uint64_t threshold;         /* suspend when fewer pages are dirty (50) */
    const char *checksum_file;  /* record source and destination digests */
    bool pause_dest;            /* leave the destination paused (xl -p) */
    char **dest_args;           /* extra arguments for the destination DM */
    unsigned ndest_args;
    int dm_timeout_ms;
};

/*
 * `xl migrate` of domain @domid from @src to o->to (see docs/toolstack.md).
 * On success the destination runs and the source is destroyed; on failure
 * the destination is destroyed and the source resumed.  Shows the live
 * line on stderr (o->progress, o->force_progress) and prints a summary
 * with the per-round table, or with o->json the JSON document, on stdout;
 * o->report_svg is the plot (ts-report.h, docs/simulator.md).
 */
int ts_migrate(struct ts_host *src, uint32_t domid,
               const struct ts_migrate_opts *o, char *err, size_t errlen);

/*
 * `xensim migrate --engine xenram`: xenram's own precopy engine moves the
 * RAM (docs/migration.md); the toolstack builds the destination domain
 * empty and paused, starts its xenram with `-incoming unix:PATH` and
 * drives the source's xenram over QMP (docs/toolstack.md, "xenram's own
 * engine").
 */
/* Entries of --x-postcopy-pause at most. */
#define TS_POSTCOPY_PAUSES_MAX  16

struct ts_engine_opts {
    bool xenram;                /* --engine xenram (false: libxc, the default) */
    int channels;               /* --channels: multifd channels, 0 for none
                                   (RAM on the control channel); -1: 2 */
    bool zstd;                  /* --compress zstd */
    uint64_t downtime_ms;       /* --downtime-limit; 0: xenram's (300) */
    uint64_t max_bw_mib;        /* --max-bandwidth MiB/s; 0: unlimited */
    bool auto_converge;         /* --auto-converge: throttle a fast writer */
    bool postcopy;              /* --postcopy: postcopy-ram, then the switch */
    int postcopy_after;         /* --postcopy-after-rounds N (N rounds
                                   whole, x-postcopy-after-rounds); 0:
                                   straight away (migrate-start-postcopy
                                   before migrate); -1: after round 1;
                                   TS_POSTCOPY_NEVER: "never", the
                                   switch left to another QMP client's
                                   migrate-start-postcopy */
    bool postcopy_preempt;      /* --postcopy-preempt */
    int prepare_passes;         /* --x-postcopy-prepare-passes N; -1:
                                   xenram's default */
    /* --x-postcopy-pause SIDE:MS,...: a test hook.  Entry i: MS ms after
     * both sides (re)entered postcopy-active, migrate-pause to that side's
     * xenram; the toolstack then recovers (docs/toolstack.md, "Postcopy
     * recovery"). */
    struct ts_postcopy_pause {
        bool dst;               /* the destination's xenram (else the source's) */
        uint32_t ms;
    } pauses[TS_POSTCOPY_PAUSES_MAX];
    unsigned npauses;
};

#define TS_ENGINE_OPTS_INIT { .channels = -1, .postcopy_after = -1, \
                              .prepare_passes = -1 }
#define TS_POSTCOPY_NEVER       (-2)

/* Option values of TS_ENGINE_LONGOPTS (struct option, <getopt.h>). */
enum { TS_EOPT_ENGINE = 0x1000, TS_EOPT_CHANNELS, TS_EOPT_COMPRESS,
       TS_EOPT_DOWNTIME, TS_EOPT_BANDWIDTH, TS_EOPT_AUTO_CONVERGE,
       TS_EOPT_POSTCOPY, TS_EOPT_POSTCOPY_AFTER, TS_EOPT_POSTCOPY_PREEMPT,
       TS_EOPT_X_POSTCOPY_PAUSE, TS_EOPT_X_PREPARE_PASSES };
#define TS_ENGINE_LONGOPTS                                              \
    { "engine", required_argument, NULL, TS_EOPT_ENGINE },              \
    { "channels", required_argument, NULL, TS_EOPT_CHANNELS },          \
    { "compress", required_argument, NULL, TS_EOPT_COMPRESS },          \
    { "downtime-limit", required_argument, NULL, TS_EOPT_DOWNTIME },    \
    { "max-bandwidth", required_argument, NULL, TS_EOPT_BANDWIDTH },    \
    { "auto-converge", no_argument, NULL, TS_EOPT_AUTO_CONVERGE },      \
    { "postcopy", no_argument, NULL, TS_EOPT_POSTCOPY },                \
    { "postcopy-after-rounds", required_argument, NULL,                 \
      TS_EOPT_POSTCOPY_AFTER },                                         \
    { "postcopy-preempt", no_argument, NULL, TS_EOPT_POSTCOPY_PREEMPT }, \
    { "x-postcopy-pause", required_argument, NULL,                      \
      TS_EOPT_X_POSTCOPY_PAUSE },                                       \
    { "x-postcopy-prepare-passes", required_argument, NULL,             \
      TS_EOPT_X_PREPARE_PASSES }

/*
 * One of TS_ENGINE_LONGOPTS: 0 when @opt is one and @arg fits it,
 * -EINVAL with @err when the value does not, -ENOENT when @opt is not an
 * engine option.
 */
int ts_engine_opt(struct ts_engine_opts *e, int opt, const char *arg,
                  char *err, size_t errlen);

/*
 * Migrate domain @domid of @src to o->to with xenram's engine.  Of @o:
 * to, progress, force_progress, json, report_svg (as for ts_migrate;
 * the figures from query-migrate), checksum_file (digests of both sides at
 * switchover: the destination's xenram is started with -S and resumed
 * after them), pause_dest (the destination is left paused, its xenram
 * with -S waiting for cont, memory exactly as received), dest_args,
 * dm_timeout_ms; max_iters and threshold are libxc's policy and ignored.
 * On success the destination runs (unless pause_dest) and the source is
 * destroyed; on failure or cancel the destination is destroyed and the
 * source runs on, and @err has xenram's error-desc.  With e->postcopy a
 * link that breaks after the switch (postcopy-paused) is recovered
 * (migrate-recover, migrate resume), up to 10 attempts a pause; when
 * they fail both sides are left as they are, paused, and @err says so.
 */
int ts_migrate_engine(struct ts_host *src, uint32_t domid,
                      const struct ts_migrate_opts *o,
                      const struct ts_engine_opts *e, char *err,
                      size_t errlen);

/* ---- RAM hot-plug (docs/hotplug.md) -------------------------------------- */

/*
 * What libxl__build_post writes of a domain's memory, in kB:
 * memory/static-max (max_memkb), memory/target (target_memkb less
 * libxl__get_targetmem_fudge: the video memory, and LIBXL_MAXMEM_CONSTANT
 * when max_memkb exceeds target_memkb) and memory/videoram, in one
 * transaction.  The host introduced the domain with libxl's keys abridged
 * (target = static-max, videoram 0; docs/xenstore-sim.md): `xensim
 * create` and a migration's receiver call this to make them libxl's.
 * Does nothing when the host runs no xenstore.
 */
int ts_write_memory_keys(struct ts_host *h, uint32_t domid,
                         const struct ts_domcfg *c, char *err, size_t errlen);

/*
 * libxl_domain_setmaxmem (`xl mem-max`): refused (-EINVAL) below
 * memory/target; Xen's maximum becomes @mib MiB plus
 * LIBXL_MAXMEM_CONSTANT, memory/static-max in xenstore @mib MiB.  The
 * target is left alone.  What RAM hot-plug needs before it can add
 * memory.
 */
int ts_setmaxmem(struct ts_host *h, uint32_t domid, uint64_t mib, char *err,
                 size_t errlen);

/*
 * libxl_set_memory_target(@mib MiB, relative 0, enforce 1) (`xl mem-set`):
 * the new target is @mib MiB less memory/videoram; refused (-EINVAL)
 * above memory/static-max; Xen's maximum becomes target + video memory +
 * LIBXL_MAXMEM_CONSTANT; memory/target (kB) and /vm/<uuid>/memory (MiB)
 * get the target.  Needs the host's xenstore (-ENOTSUP).  What lets
 * hot-plugged RAM survive a migration: the receiver's maximum comes from
 * the target (libxl__build_pre).
 */
int ts_set_memory_target(struct ts_host *h, uint32_t domid, uint64_t mib,
                         char *err, size_t errlen);

/*
 * A size or address as `xensim hotplug` takes it: decimal or 0x-hex,
 * optionally followed by K, M, G or T (binary units).  0 or -EINVAL /
 * -ERANGE.
 */
int ts_parse_size(const char *s, uint64_t *out);

#define TS_HP_AUTO  UINT64_MAX  /* slot or start: let it be chosen */

struct ts_hp_req {
    bool remove;                /* false: add */
    uint64_t slot;              /* TS_HP_AUTO (add only): the lowest free */
    uint64_t size;              /* add: bytes */
    uint64_t start;             /* add: gpa, or TS_HP_AUTO ("auto") */
    int timeout_ms;             /* for the answer; <= 0: 30 s */
};

/* One slot's keys as xenram left them (absent keys are ""). */
struct ts_hp_slot {
    unsigned slot;
    char state[16];             /* online, removed, error */
    char gpa[32];
    char size[32];
    char start[32];
    char action[16];            /* a request not answered yet */
    char error[512];
};

/*
 * The toolstack's side of the hot-plug protocol for domain @domid of @h:
 * watch memory/<slot>/action, write size and start (add) and action last
 * in one transaction, with the permissions the protocol prescribes (owner
 * dom0, nobody else: "n0"), wait (bounded, through the watch and the
 * device model's pidfd) until xenram removed action, read its answer into
 * @ans.  Returns 0 when xenram answered (ans->state says how: online,
 * removed or error, with ans->error), else -errno with @err (no hot-plug
 * directory, a request pending on the slot, no free slot, no answer in
 * time, the device model exited).
 */
int ts_hotplug(struct ts_host *h, uint32_t domid, const struct ts_hp_req *r,
               struct ts_hp_slot *ans, char *err, size_t errlen);

/* Every slot directory below memory/ (sorted by slot); *@out malloc'd. */
int ts_hotplug_list(struct ts_host *h, uint32_t domid,
                    struct ts_hp_slot **out, unsigned *n, char *err,
                    size_t errlen);

/* ---- guest memory -------------------------------------------------------- */

/*
 * The digest `xensim checksum` prints: XXH3-128 (Debian's libxxhash) over
 * (frame number, page) of every frame set in the byte bitmap @p2m, in
 * [0, @pages).  128 bits, so that two copies that differ are told apart
 * for any practical purpose (the FNV-1a it replaces let two flips of a
 * word's top bit cancel).  *@present gets the number of frames.
 */
struct ts_digest {
    uint64_t hi, lo;
};

/* A digest as 32 hex digits and a NUL. */
#define TS_DIGEST_HEX 33

struct ts_digest ts_checksum(const uint8_t *mem, const uint8_t *p2m,
                             uint64_t pages, uint64_t *present);
const char *ts_digest_hex(struct ts_digest d, char buf[TS_DIGEST_HEX]);

static inline bool ts_digest_equal(struct ts_digest a, struct ts_digest b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

/*
 * A page written by xenram's test DMA device (--test-dma, whose pattern
 * docs/cmdline.md names): 1 if @page is one, for frame @gfn; else 0.
 */
int ts_testdma_check(const void *page, uint64_t gfn);

#endif /* XENSIM_TOOLSTACK_H */
