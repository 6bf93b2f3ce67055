/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guest-workload.c - the memory-writing workload of the real-Xen tier's
 * test guest (statically linked, run by the guest's /init).
 *
 *   xr-workload MIB RATE
 *
 * Locks MIB MiB of anonymous memory and rewrites RATE pages per second in
 * turn, each with the simulator's stamp (xen/sim/stamp.h): a header naming
 * the page's guest frame -- read from /proc/self/pagemap before every
 * write, so a page the kernel moved is stamped where it now is -- and a
 * generation that grows with every write.  From dom0 a page is then all
 * zeros, a consistent stamp of the frame it sits at, or corrupt; and
 * comparing generations between two reads tells exactly which pages the
 * guest wrote in between (what log-dirty must report).
 *
 * Prints "XRWL-READY pages=N rate=R" once every page carries a stamp, then
 * one line every 10 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "xen/sim/stamp.h"

#define PAGE 4096ul
#define TICK_NS 10000000L           /* 10 ms */

static int pagemap_fd = -1;

/* The guest frame behind @va, or UINT64_MAX if not present. */
static uint64_t gfn_of(const void *va)
{
    uint64_t e;
    off_t off = (off_t)((uintptr_t)va / PAGE) * 8;

    if (pread(pagemap_fd, &e, 8, off) != 8 || !(e & (1ull << 63))) {
        return UINT64_MAX;
    }
    return e & ((1ull << 55) - 1);
}

static void tick(struct timespec *t)
{
    t->tv_nsec += TICK_NS;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR) {
    }
}

int main(int argc, char **argv)
{
    unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 8;
    unsigned long rate = argc > 2 ? strtoul(argv[2], NULL, 0) : 1000;
    unsigned long pages = mib * 256, per_tick, next = 0, ticks = 0;
    uint64_t gen = 1, missing = 0;
    struct timespec t;
    uint8_t *buf;

    if (!pages || !rate) {
        fprintf(stderr, "usage: xr-workload MIB RATE\n");
        return 2;
    }
    per_tick = rate / 100 ? rate / 100 : 1;
    buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED) {
        perror("xr-workload: mmap");
        return 1;
    }
    madvise(buf, pages * PAGE, MADV_NOHUGEPAGE);
    if (mlock(buf, pages * PAGE)) {
        perror("xr-workload: mlock");
    }
    pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
    if (pagemap_fd < 0) {
        perror("xr-workload: /proc/self/pagemap");
        return 1;
    }
    /* First pass at full speed: every page stamped before READY. */
    for (unsigned long i = 0; i < pages; i++) {
        uint64_t g = gfn_of(buf + i * PAGE);

        if (g == UINT64_MAX || g == 0) {
            missing++;
            continue;
        }
        xsim_stamp_write(buf + i * PAGE, g, gen++);
    }
    if (missing) {
        printf("XRWL-ERROR %" PRIu64 " pages without a frame number "
               "(not root?)\n", missing);
    }
    printf("XRWL-READY pages=%lu rate=%lu first_gfn=0x%" PRIx64 "\n", pages,
           rate, gfn_of(buf));
    fflush(stdout);

    clock_gettime(CLOCK_MONOTONIC, &t);
    for (;;) {
        for (unsigned long k = 0; k < per_tick; k++) {
            uint8_t *p = buf + next * PAGE;
            uint64_t g = gfn_of(p);

            if (g != UINT64_MAX && g != 0) {
                xsim_stamp_write(p, g, gen++);
            }
            next = (next + 1) % pages;
        }
        tick(&t);
        if (++ticks % 1000 == 0) {
            printf("XRWL gen=%" PRIu64 "\n", gen);
            fflush(stdout);
        }
    }
}
