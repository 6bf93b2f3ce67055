/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * paging.h - a pager for one domain through Xen 4.17's memory paging
 * interface (xen/arch/x86/mm/mem_paging.c, public/vm_event.h), the
 * back-end of xenram's postcopy (docs/postcopy.md).
 *
 * Xen reaches the paged-out state one way only: a populated frame is
 * nominated (its page must hold no reference but the domain's: a foreign
 * mapping makes nominate fail with EBUSY), then evicted.  A vCPU touching
 * a paged-out frame is paused and a request with VM_EVENT_FLAG_VCPU_PAUSED
 * arrives on the paging ring; a foreign mapping of one makes Xen queue a
 * request without pausing anyone, and Debian's libxenforeignmemory retries
 * the mapping until the frame is back.  The pager puts a page in with
 * xc_mem_paging_load() and answers every request for that frame on the
 * ring, which resumes the vCPUs waiting on it.
 *
 *   xen_pager_start():  the ring frame (HVM_PARAM_PAGING_RING_PFN) given a
 *                       page if it has none, xc_mem_paging_enable, the ring
 *                       mapped and initialised, its frame removed from the
 *                       guest's physmap (as tools/xenpaging does), the
 *                       event channel bound, the ring thread started.
 *   xen_pager_evict():  nominate + evict a run of frames.
 *   xen_pager_load():   put one frame's contents in, answer its requests.
 *   xen_pager_stop():   the ring thread stopped, paging disabled (refused
 *                       while a frame is still paged out: Xen would let
 *                       us, and crash the guest at its next touch of one).
 *
 * The ring thread takes requests and hands each frame asked for to the
 * @fault callback once to be asked for (later requests for it are only
 * queued, and passed on only to name another paused vCPU that waits); it
 * never maps guest memory, since a foreign mapping of a
 * paged-out frame waits for this very thread.  A request for a frame that
 * is present again (loaded between Xen's request and its arrival) is
 * answered at once.
 *
 * Concurrency: xen_pager_evict() and xen_pager_load() may be called from
 * any thread, concurrently with each other and with the ring thread;
 * start and stop are control plane.
 */
#ifndef XENRAM_XEN_PAGING_H
#define XENRAM_XEN_PAGING_H

#include <stdbool.h>
#include <stdint.h>

/* xen.h first: xenctrl.h sets up what Xen's public headers need. */
#include "xen/xen.h"

typedef struct XenPager XenPager;

/* XenPagerFault.vcpu when no guest vCPU waits. */
#define XEN_PAGER_NO_VCPU UINT32_MAX

/*
 * A request that waits for a frame, as the fault callback sees it.  Xen
 * names a vCPU in every request (a foreign mapper's own, in another
 * domain); only one it paused (VM_EVENT_FLAG_VCPU_PAUSED) is the guest's
 * and waits here, and only one below the domain's vCPU count is passed on.
 */
typedef struct XenPagerFault {
    uint64_t gfn;
    /*
     * The guest vCPU Xen paused on @gfn, below the domain's vCPU count
     * (xc_domain_getinfolist's max_vcpu_id + 1 at start); XEN_PAGER_NO_VCPU
     * for a foreign mapping's request, or a paused one naming a vCPU the
     * domain does not have (counted in XenPagerStats.bad_vcpu).
     */
    uint32_t vcpu;
    /*
     * Ask for the frame: the first request for it (or the first since a
     * load of it failed).  false: one more vCPU waits for a frame already
     * asked for or being loaded; such calls come only with a @vcpu.
     */
    bool ask;
} XenPagerFault;

/*
 * A request that waits, on the ring thread: once per frame with @f->ask
 * (postcopy: a PAGE_REQUEST to the source), and once more for each other
 * paused vCPU that waits for it (per-vCPU blocktime).  Do not map guest
 * memory, do not block for long.  @f is valid during the call only.
 */
typedef void XenPagerFaultFn(void *opaque, const XenPagerFault *f);

typedef struct XenPagerStats {
    uint64_t evicted;           /* frames paged out */
    uint64_t loaded;            /* frames put back in */
    uint64_t requests;          /* ring requests taken */
    uint64_t vcpu_faults;       /* of which with a vCPU paused */
    /* Of those, naming a vCPU the domain does not have: answered, passed
     * on without the vCPU (Xen ignores the response's vCPU then too). */
    uint64_t bad_vcpu;
    uint64_t answered;          /* responses put on the ring */
    uint64_t paged_out;         /* frames paged out now */
    /* Requests answered without acting on them: a version or reason this
     * pager does not know (its xenctrl headers are not the hypervisor's). */
    uint64_t rejected;
    uint64_t out_of_range;      /* gfn beyond the domain's frames: answered */
    uint64_t dropped;           /* paged-out frames the guest released */
    /* Requests answered by a load (they waited for their frame), and their
     * time from being taken off the ring to the answer. */
    uint64_t waited;
    uint64_t wait_ns_total;
    uint64_t wait_ns_max;
} XenPagerStats;

/*
 * Start paging the domain of @xh: 0 and *@out, or -errno with
 * xen_last_error() naming the call that failed (ENOSYS: the hypervisor
 * was built without CONFIG_MEM_PAGING; say so); nothing stays behind on
 * failure.  @fault runs on the ring thread.  The domain's vCPU count is
 * read once, here: the bound of every request's vcpu_id.
 */
int xen_pager_start(XenHandles *xh, XenPagerFaultFn *fault, void *opaque,
                    XenPager **out);

/*
 * Page out frames [@gfn, @gfn + @nr): nominate and evict each.  0, or
 * -errno for the first frame that could not be paged out (EBUSY: it has
 * another reference, e.g. a mapping) with *@done the frames paged out
 * before it.
 */
int xen_pager_evict(XenPager *p, uint64_t gfn, uint64_t nr, uint64_t *done);

/*
 * Put frame @gfn back with the page at @data (XR_PAGE_SIZE bytes; NULL:
 * zeros) and answer every request waiting for it.  0, -EEXIST when the
 * frame was not paged out (nothing changed), or -errno.  Safe against a
 * fault on the same frame racing with it: the request is answered either
 * way.
 */
int xen_pager_load(XenPager *p, uint64_t gfn, const void *data);

/*
 * Whether @gfn is paged out now (by this pager); true from the moment its
 * nomination succeeded, while its eviction is in flight.  Lock-free.
 */
bool xen_pager_is_paged_out(XenPager *p, uint64_t gfn);

void xen_pager_stats(XenPager *p, XenPagerStats *out);

/*
 * Stop the ring thread and disable paging.  -EBUSY (and nothing changes)
 * while a frame is still paged out, unless @force, which leaves such
 * frames to the domain's destruction.  A ring frame that had a page
 * when the pager started (the builder's special page) gets a zeroed one
 * back, so the guest's layout is as it was.  NULL is a no-op returning 0.
 */
int xen_pager_stop(XenPager *p, bool force);

#endif /* XENRAM_XEN_PAGING_H */
