/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cmdline.h - the device model's command line: what libxl passes to a
 * qemu-xen device model, read into a DMConfig.
 *
 * libxl (tools/libs/light/libxl_dm.c, libxl__build_device_model_args_new)
 * starts the program named by device_model_override with QEMU's command
 * line, so xenram reads QEMU's syntax: single-dash options ("-m 512"), the
 * double-dash spellings QEMU also accepts ("--m 512"), and QEMU's option
 * lists ("socket,id=libxl-cmd,path=...,server=on,wait=off", with ",," for a
 * literal comma).  Every option gets one of three treatments, listed in
 * docs/cmdline.md:
 *
 *  - honoured: read into DMConfig (domain, RAM size and layout, QMP
 *    monitors, start paused, incoming device state, restriction);
 *  - ignored: options that configure devices xenram does not emulate
 *    (-vnc, -device, -drive, ...).  They are recorded in DMConfig.ignored
 *    and reported once, on one line, by dm_cmdline_report_ignored();
 *  - refused: options where carrying on would be wrong (-loadvm, an
 *    -incoming other than fd:N, a machine or accelerator other than Xen's,
 *    a size that does not parse, an option nobody knows).  The parse fails
 *    with a message that names the option and says what to do.
 *
 * The parser prints nothing and never exits: the caller prints the message
 * and decides.  Nothing here touches Xen; the checks that need the system
 * (does fd N exist, does the user exist) are the caller's.
 */
#ifndef XENRAM_XEN_DM_CMDLINE_H
#define XENRAM_XEN_DM_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef XENRAM_VERSION
#define XENRAM_VERSION "0.1.0"
#endif

/* Xen's HVM_BELOW_4G_RAM_END: the default (and the cap) of RAM below 4 GiB. */
#define DM_HVM_BELOW_4G_RAM_END  0xF0000000ULL
/* Domain ids from here up are Xen's own (DOMID_FIRST_RESERVED). */
#define DM_DOMID_FIRST_RESERVED  0x7FF0u

typedef enum DMAction {
    DM_ACTION_RUN = 0,          /* run the device model */
    DM_ACTION_HELP,             /* -h, -help, --help: print dm_cmdline_usage() */
    DM_ACTION_VERSION,          /* -version, --version: dm_cmdline_version() */
} DMAction;

typedef enum DMMachine {
    DM_MACHINE_XENFV = 0,       /* -machine xenfv (libxl's default) */
    DM_MACHINE_PC,              /* -machine pc,accel=xen (xen_platform_pci=0) */
    DM_MACHINE_NONE,            /* -machine none,accel=xen: a probe, no guest */
} DMMachine;

typedef enum DMLogLevel {
    DM_LOG_ERROR = 0,
    DM_LOG_WARN,
    DM_LOG_INFO,
    DM_LOG_DEBUG,
} DMLogLevel;

/*
 * One QMP monitor: a "-mon chardev=ID,mode=control" joined with its
 * "-chardev socket,id=ID,..." (or a "-qmp unix:PATH,..." shortcut).  Exactly
 * one of @path and @fd is set.
 */
typedef struct DMMonitor {
    char *chardev_id;           /* "libxl-cmd", "libxenstat-cmd", "compat_monitor0" */
    char *path;                 /* unix socket path, or NULL */
    int fd;                     /* inherited socket (libxl pre-opens it), or -1 */
    bool server;                /* listen (libxl: always) rather than connect */
    bool wait;                  /* block at start-up until a client connects */
    bool pretty;                /* -mon pretty=on */
} DMMonitor;

/* An option accepted and not acted upon. */
typedef struct DMIgnored {
    char *option;               /* "-device", "-machine vmport", ... */
    char *arg;                  /* its argument, or NULL */
} DMIgnored;

/*
 * The most RAM (-m, and maxmem=) a guest may be given: 16 TiB, what Xen
 * 4.17 on x86 addresses without CONFIG_BIGMEM (its SUPPORT.md
 * security-supports hosts up to 12 TiB).  It keeps every guest-physical
 * computation (4 GiB + RAM above, the hot-plug window) far from wrapping.
 */
#define DM_MAX_RAM_MIB          (16ULL << 20)

typedef struct DMConfig {
    DMAction action;

    /* The guest: -xen-domid, or XEN_DOMAIN_ID from the environment. */
    bool has_domid;             /* false only in probe mode */
    uint32_t domid;
    bool domid_restrict;        /* -xen-domid-restrict */
    bool xen_attach;            /* -xen-attach: the domain exists (always true for us) */
    char *name;                 /* -name, or NULL */

    /* -machine / -M / -accel */
    DMMachine machine;
    bool probe_only;            /* -machine none,accel=xen: answer QMP, touch no guest */
    /* Guest RAM below 4 GiB, bytes: min(max-ram-below-4g, 0xF0000000). */
    uint64_t max_ram_below_4g;

    /* -m [size=]N[,slots=S][,maxmem=M], each at most DM_MAX_RAM_MIB */
    uint64_t ram_mib;           /* 0 only in probe mode */
    uint64_t maxmem_mib;        /* ceiling for hotplug; 0 when not given */
    unsigned int ram_slots;     /* slots=, 0 when not given */
    /* From -device VGA/cirrus-vga/qxl-vga: the video RAM libxl subtracted
     * from -m (0 when the device does not say). */
    uint64_t vram_mib;

    /* Start-up */
    bool start_paused;          /* -S: stay in "prelaunch" until QMP cont */
    int incoming_fd;            /* -incoming fd:N, or -1 */
    /* -incoming tcp:HOST:PORT | unix:PATH: xenram's own engine; "" if not */
    char incoming_uri[300];
    bool incoming_defer;        /* -incoming defer: wait for migrate-incoming */
    bool no_shutdown;           /* -no-shutdown */
    bool nodefaults;            /* -nodefaults */
    bool no_user_config;        /* -no-user-config */

    /* Privileges (acted upon by the caller, after opening what it needs) */
    char *runas;                /* -runas / -run-with user=: "user" or "uid:gid" */
    bool runas_numeric;         /* runas was "uid:gid": see runas_uid/gid */
    uint32_t runas_uid, runas_gid;
    char *chroot_dir;           /* -chroot / -run-with chroot= */
    char *sandbox;              /* -sandbox argument as given, or NULL */
    bool sandbox_on;            /* its first item was "on" */

    /* QMP monitors, in command-line order (libxl passes two). */
    DMMonitor *monitors;
    size_t nr_monitors;

    /* Options accepted but not acted upon, in command-line order. */
    DMIgnored *ignored;
    size_t nr_ignored;

    /* xenram's own options */
    DMLogLevel log_level;       /* --log-level=, default info */
    bool no_modified_memory;    /* --no-modified-memory (debug only) */
    unsigned int test_dma_rate; /* --test-dma=PAGES/s (tests only), or 0 */
} DMConfig;

/* Defaults: nothing allocated, incoming_fd -1, 0xF0000000 below 4 GiB. */
void dm_config_init(DMConfig *cfg);

/* Free what @cfg holds and re-initialise it.  Safe to call twice. */
void dm_config_free(DMConfig *cfg);

/*
 * Parse @argc/@argv (argv[0] is the program name) into @cfg, which the call
 * initialises (free a used DMConfig first).  Reads XEN_DOMAIN_ID from the
 * environment.  @argv is not modified.
 *
 * Returns 0 when the device model should run, 1 when -help or -version was
 * asked for (cfg->action says which; the caller prints it), -EINVAL with a
 * message in @err (@errlen bytes) that names the offending option and what
 * to do, or -ENOMEM.  On failure @cfg is left initialised and empty.
 */
int dm_cmdline_parse(int argc, char **argv, DMConfig *cfg, char *err,
                     size_t errlen);

/*
 * Write one line to @out listing the options that were accepted but
 * ignored, each once (with a count when repeated); nothing when there are
 * none.
 */
void dm_cmdline_report_ignored(const DMConfig *cfg, FILE *out);

/* The --help text. */
void dm_cmdline_usage(FILE *out);

/* The --version text: "xenram <version>" and what it is. */
void dm_cmdline_version(FILE *out);

/* "error", "warn", "info", "debug". */
const char *dm_log_level_name(DMLogLevel level);

#endif /* XENRAM_XEN_DM_CMDLINE_H */
