/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fake-xenctrl.c - a test double for libxenctrl.so.4.17, used only by
 * test-xenstore-sim so that the xenstore part of the simulator can be tested
 * without the xensim daemon.  The simulator itself runs xenstored with the
 * core's stand-in (xen/sim), which asks the daemon about its domains.
 *
 * It has what Debian's xenstored links against (VERS_4.17.0:
 * xc_interface_open, xc_interface_close, xc_domain_getinfo).  The domains
 * that exist are dom0 and those listed, one domid per line, in
 * $XENSTORED_RUNDIR/test-domains, read at every call: the test adds a line
 * before it introduces a domain and removes it to let one "die".
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>

#define EXPORT __attribute__((visibility("default")))

struct xc_interface_core {
    int unused;
};

EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger,
                                       xentoollog_logger *dombuild_logger,
                                       unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    return calloc(1, sizeof(struct xc_interface_core));
}

EXPORT int xc_interface_close(xc_interface *xch)
{
    free(xch);
    return 0;
}

/* The smallest existing domid >= @first, or -1. */
static long next_domain(uint32_t first)
{
    const char *dir = getenv("XENSTORED_RUNDIR");
    char path[PATH_MAX], line[32];
    long best = first == 0 ? 0 : -1;
    FILE *f;

    if (best == 0 || !dir ||
        snprintf(path, sizeof(path), "%s/test-domains", dir) >=
            (int)sizeof(path))
        return best;
    f = fopen(path, "r");
    if (!f)
        return best;
    while (fgets(line, sizeof(line), f)) {
        char *end;
        unsigned long d = strtoul(line, &end, 10);

        if (end != line && d >= first && (best < 0 || (long)d < best))
            best = (long)d;
    }
    fclose(f);
    return best;
}

/* Like Xen: information about the first existing domain >= @first_domid. */
EXPORT int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                             unsigned int max_doms, xc_dominfo_t *info)
{
    long d = max_doms ? next_domain(first_domid) : -1;

    (void)xch;
    if (d < 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domid = (uint32_t)d;
    info->running = 1;
    info->hvm = d != 0;
    info->nr_online_vcpus = 1;
    return 1;
}
