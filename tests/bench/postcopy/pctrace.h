/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Temporary per-stage stamps of postcopy faults (XR_PCTRACE=FILE). */
#ifndef XR_PCTRACE_H
#define XR_PCTRACE_H
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static inline void pctrace(const char *stage, uint64_t gfn)
{
    static int fd = -2;
    struct timespec ts;
    char line[80];
    int n;

    if (fd == -2) {
        const char *f = getenv("XR_PCTRACE");

        fd = f ? open(f, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
               : -1;
    }
    if (fd < 0) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts);
    n = snprintf(line, sizeof(line), "%s %llx %llu\n", stage,
                 (unsigned long long)gfn,
                 (unsigned long long)ts.tv_sec * 1000000000ull +
                 (unsigned long long)ts.tv_nsec);
    (void)!write(fd, line, (size_t)n);
}
#endif
