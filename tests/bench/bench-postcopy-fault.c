/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-postcopy-fault.c - the floor under postcopy's fault service time
 * on this machine: one bare userfaultfd fault and its UFFDIO_COPY, timed
 * from the faulting thread's access to its return (a handler thread
 * reads the event and copies a page in).  The simulator's paging serves
 * a destination vCPU's fault the same way (MISSING, UFFDIO_COPY) after
 * the ring, xenram's pager, the return path and the source are through,
 * so xenram's measured fault latency (query-migrate's
 * x-xenram-postcopy-latency, docs/PERFORMANCE.md) is this plus that path.
 *
 *   build/bench/bench-postcopy-fault [faults]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/bench/bench.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static int uffd;
static uint8_t *region;
static long psz;

static void *handler(void *arg)
{
    static uint8_t src[65536];
    struct uffd_msg msg;

    (void)arg;
    memset(src, 0x5a, sizeof(src));
    for (;;) {
        struct uffdio_copy cp;
        ssize_t n = read(uffd, &msg, sizeof(msg));

        if (n != sizeof(msg)) {
            if (n < 0 && errno == EINTR)
                continue;
            return NULL;
        }
        if (msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        cp.dst = msg.arg.pagefault.address & ~((uint64_t)psz - 1);
        cp.src = (uintptr_t)src;
        cp.len = (uint64_t)psz;
        cp.mode = 0;
        cp.copy = 0;
        if (ioctl(uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    struct uffdio_api api = { .api = UFFD_API };
    struct uffdio_register reg;
    double *t = calloc((size_t)n, sizeof(double));
    pthread_t th;

    psz = sysconf(_SC_PAGESIZE);
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    if (uffd < 0)
        uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) || !t) {
        printf("userfaultfd: %s: skipped\n", strerror(errno));
        return 0;
    }
    region = mmap(NULL, (size_t)n * (size_t)psz, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return 1;
    reg.range.start = (uintptr_t)region;
    reg.range.len = (uint64_t)n * (uint64_t)psz;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
        printf("UFFDIO_REGISTER: %s: skipped\n", strerror(errno));
        return 0;
    }
    pthread_create(&th, NULL, handler, NULL);
    for (int i = 0; i < n; i++) {
        volatile uint8_t *p = region + (size_t)i * (size_t)psz;
        double t0 = bench_now();

        p[8] = 1;                       /* the fault, served, returns */
        t[i] = bench_now() - t0;
    }
    qsort(t, (size_t)n, sizeof(*t), bench_cmp_double);
    printf("bare userfaultfd fault + UFFDIO_COPY (floor), %d faults: "
           "p50 %.1f us, p99 %.1f us, max %.1f us\n", n, t[n / 2] * 1e6,
           t[(size_t)((double)n * 0.99)] * 1e6, t[n - 1] * 1e6);
    return 0;
}
