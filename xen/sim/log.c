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
    char buf[512];
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* One fprintf per line: stdio locks the stream, lines never mix. */
    fprintf(stderr, "xensim[%ld.%03ld]: %s\n", (long)ts.tv_sec,
            ts.tv_nsec / 1000000, buf);
}
