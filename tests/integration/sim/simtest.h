/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * simtest.h - fixtures for the simulator's tests: a private simulated host
 * (xensim daemon) per test group, in a fresh temporary state directory,
 * always stopped again, and a watchdog so that nothing hangs CI.
 *
 * The test programs are linked against Debian's real libxenctrl,
 * libxenforeignmemory and libxendevicemodel, and run on the stand-ins:
 * sim_test_init() re-executes the program with LD_LIBRARY_PATH set to
 * $(BUILD)/sim (found beside the executable) and checks that the
 * libraries really came from there.
 */
#ifndef XENSIM_TEST_SIMTEST_H
#define XENSIM_TEST_SIMTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "xen/sim/proto.h"

struct simhost {
    char dir[128];
    pid_t pid;
    int fd;                     /* private channel for test-only ops */
};

/*
 * Call first in main(): re-exec with the stand-ins on LD_LIBRARY_PATH,
 * check where libxenctrl was loaded from, arm a watchdog of @timeout_s
 * seconds that kills every host started here and fails the program.
 */
void sim_test_init(int argc, char **argv, unsigned timeout_s);

/* $(BUILD) of this test program (absolute). */
const char *sim_build_dir(void);

/*
 * Start `xensim start --foreground` in a new temporary directory with
 * dirty tracking @tracking ("uffd", "explicit" or NULL for auto) and
 * point XENSIM_DIR at it.  Returns 0 or -errno.
 */
int simhost_start(struct simhost *h, const char *tracking);

/* The same with the simulated xenstore @xenstore ("off", "on", "auto"). */
int simhost_start_xs(struct simhost *h, const char *tracking,
                     const char *xenstore);

/*
 * Stop it (SIGTERM, then SIGKILL after 10 s), reap it, remove its dir.
 * Returns -1 (after showing its log) if it did not exit with status 0:
 * a crash, a sanitizer report, a hang.  Killed hosts (simhost_kill) stop
 * quietly.
 */
int simhost_stop(struct simhost *h);

/* Kill it hard, as a crash would (the state dir stays until stop). */
void simhost_kill(struct simhost *h);

/* Test-only operations through the host's channel (proto.h). */
int64_t simhost_call(struct simhost *h, uint16_t op, uint32_t domid,
                     const uint64_t args[6], const void *in, size_t inlen,
                     void *out, size_t outcap, int *err);

/* Create a domain of @mem_mib MiB; returns its domid or -errno. */
int sim_create(struct simhost *h, unsigned mem_mib, const char *workload,
               uint32_t flags);
int sim_destroy(struct simhost *h, uint32_t domid);

/* The guest writes (stamps) these frames; returns how many. */
int64_t sim_guest_write(struct simhost *h, uint32_t domid,
                        const uint64_t *gfns, size_t n);

/* The device-model state text of a domain (malloc'd). */
char *sim_dm_state(struct simhost *h, uint32_t domid);

/* Run `xensim ARGS...` against @h (NULL: no --dir), capture stdout into
 * @out (up to @outlen), return its exit status (-1 if it did not run). */
int sim_run_cli(struct simhost *h, char *out, size_t outlen, ...)
    __attribute__((sentinel));

/* Bit @i of a Xen byte bitmap. */
static inline bool sim_bit(const void *bm, uint64_t i)
{
    return (((const uint8_t *)bm)[i / 8] >> (i % 8)) & 1;
}

uint64_t sim_bits(const void *bm, uint64_t n);

#endif /* XENSIM_TEST_SIMTEST_H */
