/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * toolstack-internal.h - what the toolstack's files (toolstack.c, ts-*.c)
 * share and nothing else includes: the timeouts libxl uses, and helpers
 * over the host channel, xenstore, QMP, the device model and libxl's
 * memory arithmetic.  The toolstack's interface is toolstack.h.
 *
 * Errors, as there: 0 or -errno, and a sentence in @err where there is one.
 */
#ifndef XENSIM_TOOLSTACK_INTERNAL_H
#define XENSIM_TOOLSTACK_INTERNAL_H

#include <signal.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <xenstore.h>

#include "xen/sim/toolstack.h"

/* What libxl waits for a device model (LIBXL_DEVICE_MODEL_START_TIMEOUT). */
#define DM_START_TIMEOUT_MS     60000
/* QMP commands but xen-set-global-dirty-log (see ts-migrate.c). */
#define QMP_TIMEOUT_MS          30000

/* ---- helpers (toolstack.c) ----------------------------------------------- */

/* snprintf into @err, which may be NULL. */
void ts_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* snprintf for text whose length is not known in advance. */
int ts_fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC in ns, and what is left of a deadline in it, in ms. */
uint64_t ts_now_ns(void);
int ts_ms_left(uint64_t deadline);
int ts_pidfd_open(pid_t pid);
/* A process's start time (/proc/PID/stat): tells a recycled pid apart. */
uint64_t ts_proc_start(pid_t pid);
/* Has the process of @pidfd exited?  Waits up to @ms. */
bool ts_pidfd_exited(int pidfd, int ms);
/* The last lines of the log @path, indented, for an error message. */
void ts_log_tail(const char *path, char *out, size_t outlen);

/* ---- the host (toolstack.c) ---------------------------------------------- */

/* ts_call folded into one result: 0 or -errno (channel or operation). */
int ts_call_rc(struct ts_host *h, uint16_t op, uint32_t domid,
               const uint64_t args[6], const void *in, size_t inlen,
               struct xsim_rep *rep, void *out, size_t outcap, int *fd_out);
/* An operation on @domid without arguments (pause, unpause, destroy). */
int ts_dom_op(struct ts_host *h, uint16_t op, uint32_t domid);
/* A handle on the host's xenstore; NULL when it runs none (or on error). */
struct xs_handle *ts_xs_open(const struct ts_host *h);
/* ts_xs_open(), or NULL with errno (and in *@e, if not NULL) and the
 * sentence in @err. */
struct xs_handle *ts_xs_open_err(const struct ts_host *h, char *err,
                                 size_t errlen, int *e);
/* Write one key; failures are said on stderr, not returned. */
void ts_xs_write(const struct ts_host *h, const char *path, const char *val);

/* ---- QMP (ts-qmp.c) ------------------------------------------------------ */

/* Execute and discard the answer: 0 or -EIO with @err. */
int ts_qmp_do(struct ts_qmp *q, const char *cmd, json_t *args,
              int timeout_ms, char *err, size_t errlen);
/* query-status: the status string into @st. */
int ts_qmp_status(struct ts_qmp *q, char *st, size_t stlen, char *err,
                  size_t errlen);

/* ---- the device model (ts-dm.c) ------------------------------------------ */

/* Append why it is gone (exit status) and its log's tail to @err. */
void ts_dm_explain(struct ts_dm *dm, char *err, size_t errlen);
/* Signal it through its pidfd (its pid when there is none). */
void ts_dm_signal(struct ts_dm *dm, int sig);
/* Whether the device model's process still exists (false: none, or it died). */
bool ts_dm_alive(const struct ts_dm *dm);
/* image/device-model-pid in xenstore, where libxl keeps it. */
void ts_dm_record_pid(const struct ts_host *h, uint32_t domid, pid_t pid);

/* ---- what both migrations do (ts-migrate.c) ------------------------------ */

/* libxl_retrieve_domain_configuration, memory: @c's target_memkb and
 * max_memkb from the source's xenstore (memory/target + fudge,
 * memory/static-max); the record's values without xenstore. */
int ts_retrieve_memory(struct ts_host *h, uint32_t domid,
                       struct ts_domcfg *c, char *err, size_t errlen);
/* libxl's emulator xenstore data: the source device model's physmap keys
 * copied for the new domain.  Returns how many entries there were. */
unsigned ts_copy_emulator_xenstore(const struct ts_host *src, uint32_t sdom,
                                   const struct ts_host *dst, uint32_t ddom);

/* ---- libxl's memory arithmetic (ts-mem.c) -------------------------------- */

/* A record's b_info.target_memkb and max_memkb (older records: memory=). */
uint64_t ts_cfg_target_kb(const struct ts_domcfg *c);
uint64_t ts_cfg_max_kb(const struct ts_domcfg *c);
/* libxl__get_targetmem_fudge: what memory/target leaves out of
 * target_memkb. */
uint64_t ts_targetmem_fudge(const struct ts_domcfg *c);
/* A memory key as libxl reads it: decimal kB.  -ENOENT, -EINVAL. */
int ts_xs_read_kb(struct xs_handle *xs, xs_transaction_t t, const char *path,
                  uint64_t *out);
/* kB for a message: in MiB when it is whole MiB.  Returns @buf. */
const char *ts_kb_text(uint64_t kb, char *buf, size_t len);
/* xc_domain_setmaxmem: Xen's maximum of @domid becomes @kb. */
/*
 * A migration's destination domain on @dst for @cfg (name, workload,
 * memory, video memory, vCPUs), created with @flags (XSIM_CREATE_*), its
 * maximum what libxl__build_pre gives a domain it restores: the target
 * plus LIBXL_MAXMEM_CONSTANT.  0 and *@domid, or -errno with @err (the
 * domain, if created, is the caller's to destroy).
 */
int ts_create_dest(struct ts_host *dst, const struct ts_domcfg *cfg,
                   uint32_t flags, uint32_t *domid, char *err,
                   size_t errlen);
int ts_set_xen_max(struct ts_host *h, uint32_t domid, uint64_t kb,
                   char *err, size_t errlen);

/*
 * Ctrl-C and SIGTERM during a migration: set ts_interrupted instead of
 * killing xensim, so that the migration can be undone.  Catch before the
 * first phase, restore after the cleanup.
 */
struct ts_sigsave {
    struct sigaction sigint, sigterm;
};
extern volatile sig_atomic_t ts_interrupted;
void ts_interrupt_catch(struct ts_sigsave *save);
void ts_interrupt_restore(const struct ts_sigsave *save);

#endif /* XENSIM_TOOLSTACK_INTERNAL_H */
