/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * paging-fallback.c - TEMPORARY, branch h-pcengine only: weak stand-ins
 * for xen/paging.h's calls until xen/paging.c (being written beside this
 * branch) is merged.  Each says "no paging here" (-ENOSYS), so postcopy
 * fails at LISTEN with a sentence and everything else links and runs.
 * xen/paging.c's strong definitions replace these at link time; delete
 * this file (and its line in module.mk) when it lands.
 */
#include <errno.h>

#include "xen/paging.h"

#define WEAK __attribute__((weak))

WEAK int xen_pager_start(XenHandles *xh, XenPagerFaultFn *fault, void *opaque,
                         XenPager **out)
{
    (void)xh;
    (void)fault;
    (void)opaque;
    *out = NULL;
    return -ENOSYS;
}

WEAK int xen_pager_evict(XenPager *p, uint64_t gfn, uint64_t nr,
                         uint64_t *done)
{
    (void)p;
    (void)gfn;
    (void)nr;
    *done = 0;
    return -ENOSYS;
}

WEAK int xen_pager_load(XenPager *p, uint64_t gfn, const void *data)
{
    (void)p;
    (void)gfn;
    (void)data;
    return -ENOSYS;
}

WEAK bool xen_pager_is_paged_out(XenPager *p, uint64_t gfn)
{
    (void)p;
    (void)gfn;
    return false;
}

WEAK void xen_pager_stats(XenPager *p, XenPagerStats *out)
{
    (void)p;
    *out = (XenPagerStats) { 0 };
}

WEAK int xen_pager_stop(XenPager *p, bool force)
{
    (void)p;
    (void)force;
    return 0;
}
