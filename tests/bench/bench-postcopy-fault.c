/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-postcopy-fault.c - the floors under postcopy's fault service time
 * on this machine, timed from the faulting thread's access to its return:
 *
 * - bare: one userfaultfd fault and its UFFDIO_COPY (a handler thread
 *   reads the event and copies a page in): two thread wake-ups.
 * - skeleton: the least any postcopy over Xen's paging ring can do, with
 *   no work in it: the fault wakes a "ring" thread (Xen's event channel
 *   to the pager), which writes a request on a loopback TCP connection
 *   to a "source" thread, which writes the page (a record header and
 *   4 KiB) on another to a "receiver" thread, whose UFFDIO_COPY resumes
 *   the faulting thread (the load and Xen unpausing the vCPU): four
 *   wake-ups, two of them across TCP, as on the real path (xenram's
 *   ring thread, the source's return-path reader, the destination's
 *   preempt receiver, the vCPU).
 *
 * The simulator's paging serves a destination vCPU's fault in the same
 * order, so xenram's measured fault latency (query-migrate's
 * x-xenram-postcopy-latency, docs/PERFORMANCE.md) is the skeleton plus
 * the work of each step and the simulator's own hand-overs.
 *
 *   build/bench/bench-postcopy-fault [faults]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/bench/bench.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

static long psz;
static uint8_t src[65536];

/* The page the event names, copied in: the faulting thread resumes. */
static int copy_in(int uffd, uint64_t addr)
{
    struct uffdio_copy cp = {
        .dst = addr & ~((uint64_t)psz - 1),
        .src = (uintptr_t)src,
        .len = (uint64_t)psz,
    };

    return ioctl(uffd, UFFDIO_COPY, &cp) && errno != EEXIST ? -1 : 0;
}

/* The next fault's address, or 0 when the fd is gone. */
static uint64_t next_fault(int uffd)
{
    struct uffd_msg msg;

    for (;;) {
        ssize_t n = read(uffd, &msg, sizeof(msg));

        if (n != sizeof(msg)) {
            if (n < 0 && errno == EINTR)
                continue;
            return 0;
        }
        if (msg.event == UFFD_EVENT_PAGEFAULT)
            return msg.arg.pagefault.address;
    }
}

/*
 * Whole records on the blocking loopback sockets: MSG_WAITALL reads all
 * @len (no signal handlers here to cut it short), a blocking send writes
 * all of it.
 */
static int read_full(int fd, void *buf, size_t len)
{
    return recv(fd, buf, len, MSG_WAITALL) == (ssize_t)len ? 0 : -1;
}

static int write_full(int fd, const void *buf, size_t len)
{
    return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* bare: the handler copies the page in itself. */
static void *bare_handler(void *arg)
{
    int uffd = *(int *)arg;
    uint64_t a;

    while ((a = next_fault(uffd)) && copy_in(uffd, a) == 0)
        ;
    return NULL;
}

/* skeleton: ring -> (request) -> source -> (page) -> receiver. */
static int req_fd[2], page_fd[2];  /* [0] the writer's end, [1] the reader's */

static void *ring_thread(void *arg)
{
    int uffd = *(int *)arg;
    uint64_t a, rec[3] = { 0 };     /* a PAGE_REQUEST's size, or about */

    while ((a = next_fault(uffd))) {
        rec[0] = a;
        if (write_full(req_fd[0], rec, sizeof(rec)))
            break;
    }
    return NULL;
}

static void *source_thread(void *arg)
{
    uint64_t rec[3];
    uint8_t out[16 + 4096];

    (void)arg;
    memset(out, 0x5a, sizeof(out));
    while (read_full(req_fd[1], rec, sizeof(rec)) == 0) {
        memcpy(out, rec, sizeof(rec[0]));
        if (write_full(page_fd[0], out, 16 + (size_t)psz))
            break;
    }
    return NULL;
}

static void *receiver_thread(void *arg)
{
    int uffd = *(int *)arg;
    uint8_t in[16 + 65536];
    uint64_t a;

    while (read_full(page_fd[1], in, 16 + (size_t)psz) == 0) {
        memcpy(&a, in, sizeof(a));
        memcpy(src, in + 16, (size_t)psz);
        if (copy_in(uffd, a))
            break;
    }
    return NULL;
}

/* A loopback TCP connection, Nagle off as on the migration channels. */
static int tcp_pair(int fds[2])
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) ||
        listen(l, 1) || getsockname(l, (struct sockaddr *)&sa, &sl))
        return -1;
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sa, sizeof(sa)))
        return -1;
    fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    if (fds[1] < 0)
        return -1;
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

/* @n faults on fresh pages of a registered region; p50/p99/max printed. */
static int run(const char *what, int n, void *(*const *threads)(void *),
               int nthreads)
{
    struct uffdio_api api = { .api = UFFD_API };
    struct uffdio_register reg;
    double *t = calloc((size_t)n, sizeof(double));
    static int fds[2], runs;
    int *fdp = &fds[runs++ % 2], uffd;
    uint8_t *region;
    pthread_t th[4];

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
    *fdp = uffd;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, threads[i], fdp);
    for (int i = 0; i < n; i++) {
        volatile uint8_t *p = region + (size_t)i * (size_t)psz;
        double t0 = bench_now();

        p[8] = 1;                       /* the fault, served, returns */
        t[i] = bench_now() - t0;
    }
    /* The threads stay blocked in read() (closing the fd would not wake
     * them): the region stays registered until the process ends. */
    qsort(t, (size_t)n, sizeof(*t), bench_cmp_double);
    printf("%s, %d faults: p50 %.1f us, p99 %.1f us, max %.1f us\n", what, n,
           t[n / 2] * 1e6, t[(size_t)((double)n * 0.99)] * 1e6,
           t[n - 1] * 1e6);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    static void *(*const bare[])(void *) = { bare_handler };
    static void *(*const skeleton[])(void *) = {
        ring_thread, source_thread, receiver_thread,
    };

    psz = sysconf(_SC_PAGESIZE);
    if (n < 1 || psz > 65536)
        return 1;
    memset(src, 0x5a, sizeof(src));
    if (run("bare userfaultfd fault + UFFDIO_COPY (floor)", n, bare, 1))
        return 1;
    if (tcp_pair(req_fd) || tcp_pair(page_fd)) {
        printf("loopback TCP: %s: skeleton skipped\n", strerror(errno));
        return 0;
    }
    return run("the path's skeleton: fault -> ring thread -> TCP -> source "
               "-> TCP -> receiver -> UFFDIO_COPY (4 wake-ups)", n, skeleton,
               3);
}
