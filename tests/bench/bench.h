/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench.h - helpers shared by the benchmarks in tests/bench/.
 *
 * Every benchmark measures its subject and a baseline in the same run and
 * reports the ratio; absolute figures vary from machine to machine, ratios
 * much less.
 */
#ifndef XENRAM_BENCH_H
#define XENRAM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of @n samples (sorts them). */
static inline double bench_median(double *v, int n)
{
    qsort(v, n, sizeof(*v), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Print a target check: "ok" or "MISSED", never a failure exit. */
static inline void bench_target(const char *what, double value, double limit,
                                int at_most)
{
    int ok = at_most ? value <= limit : value >= limit;

    printf("  target %-44s %8.3f %s %-8.3f %s\n", what, value,
           at_most ? "<=" : ">=", limit, ok ? "ok" : "MISSED");
}

#endif /* XENRAM_BENCH_H */
