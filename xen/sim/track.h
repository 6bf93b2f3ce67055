/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * track.h - how the simulated host learns which guest pages its vCPUs wrote.
 *
 * The vCPUs of a domain write guest memory through one mapping of the
 * domain's memfd that belongs to the daemon (the "vCPU view").  Xen's
 * log-dirty sees exactly the guest's writes, not a device model's writes
 * through a foreign mapping; the simulator gets the same property from the
 * MMU by tracking only the vCPU view:
 *
 *   XSIM_TRACK_UFFD     the vCPU view is registered with userfaultfd in
 *                       write-protect mode with UFFD_FEATURE_WP_ASYNC
 *                       (Linux 6.7+): a write to a protected page is let
 *                       through by the kernel, which clears the page's
 *                       uffd-wp bit.  The PAGEMAP_SCAN ioctl reads which
 *                       pages lost it (PAGE_IS_WRITTEN) and, for a CLEAN,
 *                       protects them again in the same walk
 *                       (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC).
 *   XSIM_TRACK_EXPLICIT fallback for kernels without those: each vCPU sets
 *                       a bit in a "written" bitmap after every page write.
 *
 * Both back-ends deliver runs of written frames to a callback; the host
 * (host.c) turns them into Xen's log-dirty and VRAM bitmaps.
 *
 * Concurrency: track_scan() and track_protect() are called with the
 * domain's lock held (one scan at a time per domain); in explicit mode vCPUs set bits concurrently with
 * atomics and a scan takes them with atomic exchanges, so no write is lost.
 */
#ifndef XENSIM_TRACK_H
#define XENSIM_TRACK_H

#include <stdbool.h>
#include <stdint.h>

enum xsim_track_mode {
    XSIM_TRACK_UFFD,
    XSIM_TRACK_EXPLICIT,
};

struct xsim_track {
    enum xsim_track_mode mode;
    uint8_t *view;              /* vCPU view, XSIM_GFN_LIMIT pages */
    int uffd;                   /* uffd mode */
    int pagemap;                /* /proc/self/pagemap, uffd mode */
    unsigned long *written;     /* explicit mode, one bit per gfn */
    void *vec;                  /* uffd mode: PAGEMAP_SCAN output */
};

/*
 * Probe once which mode this kernel supports.  @want is "auto", "uffd" or
 * "explicit".  Returns the mode, or -errno when "uffd" was demanded and is
 * not available (*why says what is missing).
 */
int track_probe(const char *want, const char **why);

const char *track_mode_name(enum xsim_track_mode mode);

/* Map @memfd as the vCPU view and set up tracking on it. */
int track_init(struct xsim_track *t, enum xsim_track_mode mode, int memfd);
void track_fini(struct xsim_track *t);

/* Write-protect (@wp) or release frames [gfn, gfn + nr) of the vCPU view. */
int track_protect(struct xsim_track *t, uint64_t gfn, uint64_t nr, bool wp);

typedef void track_run_fn(void *opaque, uint64_t gfn, uint64_t nr);

/*
 * Report every run of frames in [start, end) written through the vCPU view
 * since it was last protected (uffd) or last taken (explicit).  With
 * @reprotect the reported frames are protected again (taken) atomically
 * with the read.  Returns 0 or -errno.
 */
int track_scan(struct xsim_track *t, uint64_t start, uint64_t end,
               bool reprotect, track_run_fn *fn, void *opaque);

/* Explicit mode: a vCPU wrote @gfn. */
static inline void track_mark(struct xsim_track *t, uint64_t gfn)
{
    if (t->written)
        __atomic_fetch_or(&t->written[gfn / 64], 1ul << (gfn % 64),
                          __ATOMIC_RELEASE);
}

#endif /* XENSIM_TRACK_H */
