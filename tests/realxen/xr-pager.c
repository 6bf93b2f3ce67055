/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xr-pager.c - xenram's pager (xen/paging.c) against a live guest on real
 * Xen, from dom0 (dom0-postcopy.sh, docs/testing.md).
 *
 *   xr-pager DOMID GFN NR SECONDS
 *
 * With the guest paused: frames [GFN, GFN + NR) copied, the pager started,
 * every frame of the range nominated and evicted (a frame with another
 * reference, a mapping of xenram's, is refused with EBUSY and counted).
 * The guest runs SECONDS s: every fault the pager reports is served on the
 * spot from the saved copy (xen_pager_load), as postcopy serves it from
 * the source.  A dom0 foreign mapping of a frame still paged out must wait
 * for the pager and read the copy.  Then, paused again, the frames nobody
 * asked for are loaded, the pager stopped, and the range compared with
 * the copy: a frame may differ only where the guest faulted on it (its
 * own writes after the load).  Last, unpaused, the guest must run on:
 * frames rewritten, not shut down.
 * One "ok"/"not ok" line per check, "#" lines with the figures; a
 * hypervisor without CONFIG_MEM_PAGING gives "skip - REASON" and exit 77.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "xen/paging.h"
#include "xen/xen.h"

#define PAGE 4096u

static int checks, failures;
static XenHandles *xh;
static XenPager *pager;
static uint64_t base, nr;
static uint8_t *copy;                   /* nr pages */
static _Atomic uint8_t *faulted;        /* 1 vCPU, 2 foreign */
static _Atomic int cb_errors;

static void check(int ok, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;

    checks++;
    failures += !ok;
    printf("%s %d - pager: ", ok ? "ok" : "not ok", checks);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* On the ring thread: the page from the copy, as postcopy's place would. */
static void on_fault(void *opaque, const XenPagerFault *f)
{
    uint64_t gfn = f->gfn;
    bool vcpu_paused = f->vcpu != XEN_PAGER_NO_VCPU;
    int ret;

    (void)opaque;
    if (gfn < base || gfn >= base + nr) {
        atomic_fetch_add(&cb_errors, 1);
        fprintf(stderr, "# fault on gfn 0x%" PRIx64 " outside the range\n", gfn);
        xen_pager_load(pager, gfn, NULL);
        return;
    }
    if (!f->ask) {
        return;                 /* one more vCPU on a frame asked for */
    }
    atomic_store(&faulted[gfn - base], vcpu_paused ? 1 : 2);
    ret = xen_pager_load(pager, gfn, copy + (gfn - base) * PAGE);
    if (ret && ret != -EEXIST) {
        atomic_fetch_add(&cb_errors, 1);
        fprintf(stderr, "# load of 0x%" PRIx64 ": %s (%s)\n", gfn,
                strerror(-ret), xen_last_error());
    }
}

/* Map [base, base + nr) read-only; errs gets each frame's status. */
static uint8_t *map_range(int *errs)
{
    xen_pfn_t *g = malloc(nr * sizeof(*g));
    uint8_t *m;
    int st = 0;

    for (uint64_t i = 0; i < nr; i++) {
        g[i] = base + i;
    }
    m = xen_map(xh, g, nr, false, errs, &st);
    free(g);
    return m;
}

struct fmap { uint64_t gfn; int ok; double secs; };

static void *foreign_map(void *opaque)
{
    struct fmap *f = opaque;
    xen_pfn_t g = f->gfn;
    int err = 0, st = 0;
    double t0 = now_s();
    uint8_t *m = xen_map(xh, &g, 1, false, &err, &st);

    f->secs = now_s() - t0;
    if (m && !err) {
        f->ok = memcmp(m, copy + (g - base) * PAGE, PAGE) == 0 ? 1 : -1;
        xen_unmap(xh, m, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    char err[256];
    int secs, ret, *errs;
    uint8_t *m, *evicted;
    uint64_t n_copied = 0, n_ev = 0, n_busy = 0, first_ev = UINT64_MAX;
    XenPagerStats s;
    XenDomainInfo di;
    uint32_t domid;

    if (argc != 5) {
        fprintf(stderr, "usage: xr-pager DOMID GFN NR SECONDS\n");
        return 2;
    }
    domid = strtoul(argv[1], NULL, 0);
    base = strtoull(argv[2], NULL, 0);
    nr = strtoull(argv[3], NULL, 0);
    secs = atoi(argv[4]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if ((ret = xen_open(domid, XEN_OPEN_NO_XENSTORE, &xh, err, sizeof(err)))) {
        printf("not ok 1 - pager: xen_open(%u): %s\n", domid, err);
        return 1;
    }
    copy = malloc(nr * PAGE);
    faulted = calloc(nr, 1);
    evicted = calloc(nr, 1);
    errs = calloc(nr, sizeof(int));

    /* 1. Paused: the copy, the pager, the eviction. */
    xen_domain_pause(xh);
    m = map_range(errs);
    if (!m) {
        printf("not ok 1 - pager: mapping the range: %s\n", xen_last_error());
        return 1;
    }
    for (uint64_t i = 0; i < nr; i++) {
        if (!errs[i]) {
            memcpy(copy + i * PAGE, m + i * PAGE, PAGE);
            n_copied++;
        }
    }
    xen_unmap(xh, m, nr);
    ret = xen_pager_start(xh, on_fault, NULL, &pager);
    if (ret == -ENOSYS) {
        printf("skip - pager: xen_pager_start: %s\n", xen_last_error());
        xen_domain_unpause(xh);
        return 77;
    }
    check(ret == 0, "xen_pager_start on domain %u%s%s", domid,
          ret ? ": " : "", ret ? xen_last_error() : "");
    if (ret) {
        xen_domain_unpause(xh);
        return 1;
    }
    double t0 = now_s();
    for (uint64_t i = 0; i < nr; i++) {
        uint64_t done = 0;

        if (errs[i]) {
            continue;
        }
        ret = xen_pager_evict(pager, base + i, 1, &done);
        if (ret == 0) {
            evicted[i] = 1;
            n_ev++;
            if (first_ev == UINT64_MAX) {
                first_ev = base + i;
            }
        } else if (ret == -EBUSY) {
            n_busy++;
        } else {
            check(0, "evicting gfn 0x%" PRIx64 ": %s (%s)", base + i,
                  strerror(-ret), xen_last_error());
            break;
        }
    }
    double t_ev = now_s() - t0;
    check(n_ev > 0 && n_ev + n_busy == n_copied,
          "evicted %" PRIu64 " of %" PRIu64 " populated frames from 0x%"
          PRIx64 " in %.2f s, %" PRIu64 " refused with EBUSY (mapped elsewhere)",
          n_ev, n_copied, base, t_ev, n_busy);
    xen_domain_info(xh, &di);
    printf("# tot_pages %" PRIu64 " with the range paged out\n", di.tot_pages);
    check(n_ev && xen_pager_is_paged_out(pager, first_ev),
          "xen_pager_is_paged_out(0x%" PRIx64 ")", first_ev);

    /* 2. The guest runs on its paged-out working set. */
    xen_domain_unpause(xh);
    sleep(secs);
    /* A dom0 foreign mapping of a frame still out waits for the pager. */
    uint64_t fg = UINT64_MAX;
    for (uint64_t i = nr; i-- > 0;) {
        if (evicted[i] && xen_pager_is_paged_out(pager, base + i)) {
            fg = base + i;
            break;
        }
    }
    if (fg != UINT64_MAX) {
        struct fmap f = { .gfn = fg };
        pthread_t t;

        pthread_create(&t, NULL, foreign_map, &f);
        pthread_join(t, NULL);
        check(f.ok == 1 && atomic_load(&faulted[fg - base]) == 2,
              "a dom0 foreign mapping of paged-out gfn 0x%" PRIx64 " waited "
              "%.1f ms for the pager and reads the saved page (%s)", fg,
              f.secs * 1e3, f.ok == 1 ? "equal" : f.ok ? "differs" : "not mapped");
    } else {
        printf("# every evicted frame was faulted in within %d s\n", secs);
    }
    xen_domain_pause(xh);
    xen_pager_stats(pager, &s);
    check(s.vcpu_faults > 0 && s.waited >= s.vcpu_faults && !cb_errors,
          "the guest's vCPU faulted on %" PRIu64 " frames in %d s, each served "
          "from the copy (%" PRIu64 " requests, %" PRIu64 " answered, %d errors)",
          s.vcpu_faults, secs, s.requests, s.answered, (int)cb_errors);
    if (s.waited) {
        printf("# fault service (ring to answer): mean %.2f ms, max %.2f ms over %"
               PRIu64 " requests\n", s.wait_ns_total / 1e6 / s.waited,
               s.wait_ns_max / 1e6, s.waited);
    }
    check(s.rejected == 0 && s.out_of_range == 0,
          "no request rejected or out of range (%" PRIu64 ", %" PRIu64 "; %"
          PRIu64 " dropped)", s.rejected, s.out_of_range, s.dropped);

    /* 3. What nobody asked for, loaded; the pager stopped. */
    uint64_t bg = 0, bgerr = 0;
    for (uint64_t i = 0; i < nr; i++) {
        if (evicted[i] && xen_pager_is_paged_out(pager, base + i)) {
            ret = xen_pager_load(pager, base + i, copy + i * PAGE);
            ret && ret != -EEXIST ? bgerr++ : bg++;
        }
    }
    xen_pager_stats(pager, &s);
    check(bgerr == 0 && s.paged_out == 0 && s.loaded == n_ev,
          "the %" PRIu64 " frames never asked for loaded; %" PRIu64 " loaded "
          "of %" PRIu64 " evicted, %" PRIu64 " still out", bg, s.loaded, n_ev,
          s.paged_out);
    ret = xen_pager_stop(pager, false);
    check(ret == 0, "xen_pager_stop%s%s", ret ? ": " : "",
          ret ? xen_last_error() : "");

    /* 4. Memory: the copy, plus the guest's writes where it faulted. */
    m = map_range(errs);
    uint64_t same = 0, wrote = 0, bad = 0, unmapped = 0;
    for (uint64_t i = 0; m && i < nr; i++) {
        if (!evicted[i]) {
            continue;
        }
        if (errs[i]) {
            unmapped++;
        } else if (!memcmp(copy + i * PAGE, m + i * PAGE, PAGE)) {
            same++;
        } else if (atomic_load(&faulted[i])) {
            wrote++;
        } else {
            if (bad < 4) {
                printf("# gfn 0x%" PRIx64 " differs from the copy and was "
                       "never faulted on\n", base + i);
            }
            bad++;
        }
    }
    check(m && !bad && !unmapped && same + wrote == n_ev,
          "memory after paging: %" PRIu64 " frames equal to the copy, %"
          PRIu64 " rewritten by the guest after its fault, %" PRIu64
          " differ unasked, %" PRIu64 " unmappable", same, wrote, bad, unmapped);

    /* 5. The guest runs on. */
    uint8_t *before = m ? malloc(nr * PAGE) : NULL;
    for (uint64_t i = 0; before && i < nr; i++) {
        if (!errs[i]) {     /* a frame that failed to map must not be read */
            memcpy(before + i * PAGE, m + i * PAGE, PAGE);
        }
    }
    xen_domain_unpause(xh);
    sleep(1);
    uint64_t moved = 0;
    for (uint64_t i = 0; before && i < nr; i++) {
        moved += !errs[i] && memcmp(before + i * PAGE, m + i * PAGE, PAGE);
    }
    ret = xen_domain_info(xh, &di);
    check(ret == 0 && moved > 0 && !di.dying,
          "the guest runs on after the pager stopped (%" PRIu64 " frames "
          "rewritten in 1 s%s)", moved, di.dying ? ", dying" : "");
    if (m) {
        xen_unmap(xh, m, nr);
    }
    xen_close(xh);
    return failures ? 1 : 0;
}
