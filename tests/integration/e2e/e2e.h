/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * e2e.h - fixtures for the end-to-end tests: simulated hosts with Debian's
 * xenstored, `xensim` as the toolstack, the real `xenram` as the device
 * model.
 *
 * Cleanup is the point of this fixture.  The test process is a child
 * subreaper, so every device model that `xensim create` or `xensim
 * migrate` left running becomes its child when they exit; e2e_teardown()
 * stops the hosts (whose daemons stop the device models they know), then
 * kills and reaps every child still there, then removes the state
 * directories.  A watchdog thread does the same and fails the program if a
 * test hangs.  Hosts get SIGTERM when the test dies, whatever kills it.
 * Nothing waits by sleeping: readiness comes from the daemons' ready pipe,
 * pidfds and QMP.
 */
#ifndef XENRAM_TEST_E2E_H
#define XENRAM_TEST_E2E_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define E2E_MAX_HOSTS 4

struct e2e_host {
    char dir[128];              /* absolute, fresh */
    pid_t pid;                  /* the xensim daemon */
    int status;                 /* its exit status, once reaped */
    bool reaped;
};

/* Call first: find $(BUILD), become a subreaper, arm the watchdog. */
void e2e_init(unsigned timeout_s);

/* $(BUILD) (absolute), $(BUILD)/xenram, $(BUILD)/xensim. */
const char *e2e_build(void);
const char *e2e_xenram(void);

/*
 * Start a host with xenstore in a new temporary directory.  -ENOTSUP when
 * xenstored cannot run here (`make xenstored` not done): tests skip.
 */
int e2e_host_start(struct e2e_host *h);

/*
 * A cmocka group setup: start @a and, if not NULL, @b.  0, or -1 if a host
 * would not start; where xenstored cannot run here (`make xenstored` not
 * done) *@no_xenstore is set and 0 returned, so that the tests skip.
 */
int e2e_hosts_setup(struct e2e_host *a, struct e2e_host *b,
                    bool *no_xenstore);

/*
 * A domain's memory as the toolstack maps it (read-only, from the host's
 * memfd) and its p2m: the mapping keeps the memory after the domain is
 * destroyed, so a test can compare it after a migration completed.
 */
struct e2e_mem {
    uint8_t *mem;
    uint8_t *p2m;
    uint64_t pages;
};

bool e2e_mem_map(const struct e2e_host *h, uint32_t d, struct e2e_mem *m);
void e2e_mem_unmap(struct e2e_mem *m);

/* Whether frame @g is populated in @m. */
static inline bool e2e_mem_has(const struct e2e_mem *m, uint64_t g)
{
    return g < m->pages && ((m->p2m[g / 8] >> (g % 8)) & 1);
}

/* A cmocka group teardown: e2e_teardown(), 0 or -1. */
int e2e_group_teardown(void **state);

/* Stop every host started, kill and reap every remaining child, remove
 * the directories.  Returns -1 if a host did not exit cleanly. */
int e2e_teardown(void);

/*
 * Run `xensim --dir H->dir ARGS...` (NULL-terminated); stdout into @out
 * (up to @outlen, NUL-terminated; may be NULL), stderr passes through.
 * Returns the exit status, -1 if it did not run.
 */
int e2e_xensim(const struct e2e_host *h, char *out, size_t outlen, ...)
    __attribute__((sentinel));

/* The same, with stderr captured into @err as well (and still shown). */
int e2e_xensim_err(const struct e2e_host *h, char *out, size_t outlen,
                   char *err, size_t errlen, ...) __attribute__((sentinel));

/* Resolve a domain name on a host: its domid, or 0 if there is none. */
uint32_t e2e_domid(const struct e2e_host *h, const char *name);

/* The device model pid the domain's record names (0: none). */
pid_t e2e_dm_pid(const struct e2e_host *h, uint32_t domid);

/* Is @pid a live (not zombie) process?  Reaps it if it is our zombie. */
bool e2e_alive(pid_t pid);

/* Wait up to @ms for @pid to exit (pidfd); true if it did. */
bool e2e_wait_exit(pid_t pid, int ms);

/* xenstore read on the host's xenstored; malloc'd or NULL. */
char *e2e_xs_read(const struct e2e_host *h, const char *path);

/* xenstore write (as dom0); true on success. */
bool e2e_xs_write(const struct e2e_host *h, const char *path,
                  const char *value);

/*
 * One QMP command to the domain's device model over a new connection
 * (qmp-libxl-<domid>): the "return" value (new reference) or NULL.
 */
json_t *e2e_qmp(const struct e2e_host *h, uint32_t domid, const char *cmd,
                json_t *args);

/* query-status of the domain's device model ("" if it does not answer). */
void e2e_qmp_status(const struct e2e_host *h, uint32_t domid, char *out,
                    size_t outlen);

/* Domain info; false if there is no such domain. */
struct xsim_dominfo;
bool e2e_dominfo(const struct e2e_host *h, uint32_t domid,
                 struct xsim_dominfo *out);

/* `xensim checksum` of a domain: the 16 hex digits (and page count). */
void e2e_checksum(const struct e2e_host *h, uint32_t domid, char sum[33]);

/*
 * Wait (bounded, polling QMP) until the device model's test DMA device
 * has written at least @pages pages; false on timeout.
 */
bool e2e_wait_dma(const struct e2e_host *h, uint32_t domid, uint64_t pages);

/* Wait until the guest's vCPUs have written @pages more pages. */
bool e2e_wait_vcpu_writes(const struct e2e_host *h, uint32_t domid,
                          uint64_t pages);

/*
 * Skip the running cmocka test when @missing, naming @what could not run
 * (xenstored, Debian's xenstore tools): a machine without them is not a
 * failure.  The including file brings stdio.h and cmocka.h.
 */
#define E2E_NEED_XENSTORE(missing, what)                                  \
    do {                                                                  \
        if (missing) {                                                    \
            fprintf(stderr, "%s cannot run here (make xenstored); "       \
                    "skipped\n", (what));                                 \
            skip();                                                       \
        }                                                                 \
    } while (0)

#endif /* XENRAM_TEST_E2E_H */
