/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.c - the daemon's log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "xen/sim/log.h"

void xsim_log(const char *fmt, ...)
{
    struct timespec ts;
    struct tm tm;
    char buf[512], when[40];
    va_list ap;

    /* UTC, as xenram's log and QEMU's -msg timestamp=on write it. */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* One fprintf per line: stdio locks the stream, lines never mix. */
    fprintf(stderr, "%s.%03ldZ xensim: %s\n", when, ts.tv_nsec / 1000000,
            buf);
}
