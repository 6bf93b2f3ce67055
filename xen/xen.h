/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen.h - the Xen platform layer: everything xenram asks of Xen, for one
 * domain.
 *
 * Thin, typed wrappers over Debian's libxenctrl, libxenforeignmemory,
 * libxendevicemodel, libxenstore and libxentoolcore.  They hold no policy:
 * they check every call and turn Xen's errors into -errno plus a message
 * that names the call, the domain and the errno text, e.g.
 *
 *   "xc_domain_populate_physmap_exact(domid 7, gfn 0xf0000, 256 pages):
 *    Cannot allocate memory"
 *
 * The message of the calling thread's last failure is kept
 * (xen_last_error()) and logged (xen_set_error_log()); callers that talk
 * to a person (QMP, xenstore, the command line) pass it on.
 *
 * The same code runs on a real Xen host and on the simulator: the
 * simulator's stand-in libraries are picked by LD_LIBRARY_PATH, never by a
 * branch here.
 *
 * Concurrency: a XenHandles may be used from several threads at once (the
 * Xen libraries allow it); only xen_close() must not race with anything.
 * The last-error text is per thread.
 */
#ifndef XENRAM_XEN_H
#define XENRAM_XEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

typedef struct XenHandles XenHandles;

/* xen_open() flags */
#define XEN_OPEN_NO_XENSTORE  (1u << 0)  /* do not connect to xenstored */

/*
 * Open the handles for @domid (xenctrl, foreignmemory, devicemodel and,
 * unless XEN_OPEN_NO_XENSTORE, xenstore) and check that the domain exists.
 * Returns 0 and the handles in *@out, or -errno with the message in
 * *@errbuf (@errlen bytes, may be NULL); nothing stays open on failure.
 */
int xen_open(uint32_t domid, unsigned int flags, XenHandles **out,
             char *errbuf, size_t errlen);

/* Close every handle.  No other thread may use @xh concurrently. */
void xen_close(XenHandles *xh);

/*
 * Restrict every open Xen handle of the process to the domain
 * (xentoolcore_restrict_all, as -xen-domid-restrict asks): afterwards they
 * can only act on that domain.  Irreversible.  0 or -errno.
 */
int xen_restrict(XenHandles *xh);

uint32_t xen_domid(const XenHandles *xh);

/* Message of the calling thread's last failure in this layer ("" if none). */
const char *xen_last_error(void);

/*
 * Where failure messages are logged, besides xen_last_error(): @fn is
 * called with each message on the failing thread.  The default writes
 * "xenram: <message>" to stderr; NULL logs nothing.  Set it before other
 * threads use this layer.
 */
void xen_set_error_log(void (*fn)(const char *msg));

/*
 * For the layer's other files (xen/ioreq.c): record and log a failure of
 * @call as every wrapper here does ("call(domid D, args): strerror") and
 * return -@err.  @fmt (may be NULL) formats the arguments after the domid.
 */
int xen_record_failure(int err, const char *call, uint32_t domid,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Raw handles, for the few callers that need a call not wrapped here. */
xc_interface *xen_xc(XenHandles *xh);
xenforeignmemory_handle *xen_fmem(XenHandles *xh);
xendevicemodel_handle *xen_dmod(XenHandles *xh);
struct xs_handle *xen_xs(XenHandles *xh);

/* ---- domain ------------------------------------------------------------ */

typedef struct XenDomainInfo {
    uint64_t max_pages;     /* maximum memory, in pages */
    uint64_t tot_pages;     /* pages currently populated */
    bool paused;
    bool dying;
    bool hvm;
    uint32_t nr_vcpus;      /* max_vcpu_id + 1 */
} XenDomainInfo;

/* 0 and *@info, or -ESRCH (no such domain) / -errno. */
int xen_domain_info(XenHandles *xh, XenDomainInfo *info);

int xen_domain_pause(XenHandles *xh);
int xen_domain_unpause(XenHandles *xh);

/* ---- guest memory: foreign mappings and the p2m ------------------------ */

/*
 * Map @n guest frames @gfns contiguously (PROT_READ|PROT_WRITE unless
 * @writable is false).  Returns the address, or NULL with -errno in *@status
 * when nothing could be mapped.  When the mapping succeeds as a whole but
 * single frames could not be mapped (not populated, out of range), their
 * entries of @err (n ints, required) are negative errno values and those
 * pages must not be touched; *@status is then 0 and the caller decides.
 */
void *xen_map(XenHandles *xh, const xen_pfn_t *gfns, size_t n, bool writable,
              int *err, int *status);

/*
 * xen_map(), but placed exactly at @addr (page-aligned, MAP_FIXED): the
 * mapping replaces whatever the caller had there (a reservation, or a
 * stand-in anonymous mapping that must keep its address).  On a total
 * failure the range may have been unmapped.
 */
void *xen_map_at(XenHandles *xh, void *addr, const xen_pfn_t *gfns, size_t n,
                 bool writable, int *err, int *status);

/* Unmap @n pages at @addr from xen_map() / xen_map_at().  0 or -errno. */
int xen_unmap(XenHandles *xh, void *addr, size_t n);

/*
 * Write zeros over the @n populated frames from @gfn.  Xen scrubs only a
 * dying domain's pages (free_domheap_pages()): a frame just populated may
 * hold what another live domain gave back, so memory the device model
 * creates (VRAM, hot-plugged RAM) is cleared with this.  0 or -errno.
 */
int xen_zero_frames(XenHandles *xh, xen_pfn_t gfn, uint64_t n);

/*
 * Populate the @n frames from @gfn (xc_domain_populate_physmap_exact), in
 * hypercalls of at most 2^16 frames so that memory used does not grow
 * with @n.  0, or -errno with xen_last_error() naming the chunk Xen
 * refused (-EINVAL for @n 0): the frames before that chunk stay
 * populated, and a prefix of it may be, as Xen populates in order.
 */
int xen_populate(XenHandles *xh, xen_pfn_t gfn, uint64_t n);

/*
 * As xen_populate(), but all or nothing: on failure it releases what it
 * populated (the refused chunk's part first, then the chunks before it)
 * and returns the populate's -errno with xen_last_error() still naming
 * the refused chunk.
 */
int xen_populate_all(XenHandles *xh, xen_pfn_t gfn, uint64_t n);

/*
 * Release the @n frames from @gfn (xc_domain_decrease_reservation_exact)
 * in the same chunks.  Every chunk is tried even after one fails, so a
 * frame that is not there does not keep the ones after it; returns 0 or
 * the first -errno, xen_last_error() naming the last chunk refused.
 */
int xen_depopulate(XenHandles *xh, xen_pfn_t gfn, uint64_t n);

/* ---- dirty logging ------------------------------------------------------ */

typedef struct XenLogDirtyStats {
    uint32_t dirty_count;   /* pages dirtied since the last CLEAN */
    uint32_t fault_count;
} XenLogDirtyStats;

/*
 * Turn Xen's log-dirty mode on (ENABLE_LOGDIRTY; if it was on already,
 * OFF and ENABLE again, as libxc does) or off (OFF).
 */
int xen_logdirty_enable(XenHandles *xh);
int xen_logdirty_disable(XenHandles *xh);

/*
 * Read Xen's log-dirty bitmap for frames [0, @npages) into @bitmap
 * (little-endian longs, BITS_TO_LONGS(npages) of them) and, with @clear,
 * reset it (CLEAN; PEEK otherwise).  @final marks the last CLEAN of a
 * migration (XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL).  @stats may be NULL.
 * Only the owner of log-dirty may CLEAN: during `xl migrate` that is libxc,
 * never xenram.
 */
int xen_logdirty_read(XenHandles *xh, unsigned long *bitmap, uint64_t npages,
                      bool clear, bool final, XenLogDirtyStats *stats);

/*
 * Track the framebuffer @first_pfn..+@nr: returns the range's dirty bits in
 * @bitmap and clears them in Xen.  -ENODATA means "treat everything as
 * dirty" (tracking just started or was reset).
 */
int xen_track_dirty_vram(XenHandles *xh, uint64_t first_pfn, uint32_t nr,
                         unsigned long *bitmap);

/*
 * Report device-model writes to Xen's log-dirty: @n extents in one
 * hypercall (xendevicemodel_modified_memory_bulk).  Xen ignores them while
 * log-dirty is off.
 */
int xen_modified_memory_bulk(XenHandles *xh,
                             struct xen_dm_op_modified_memory_extent *ext,
                             uint32_t n);

/* ---- ioreq server ------------------------------------------------------- */

/* Create an ioreq server (no buffered ioreqs); its id in *@id. */
int xen_ioreq_server_create(XenHandles *xh, ioservid_t *id);
int xen_ioreq_server_destroy(XenHandles *xh, ioservid_t id);
int xen_ioreq_server_set_enabled(XenHandles *xh, ioservid_t id, bool on);

/* Claim (or release) the MMIO (@is_mmio) or port I/O range [start, end]. */
int xen_ioreq_map_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                        uint64_t start, uint64_t end);
int xen_ioreq_unmap_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                          uint64_t start, uint64_t end);

/* ---- HVM parameters ------------------------------------------------------ */

/* xc_hvm_param_get / _set of parameter @index.  0 or -errno. */
int xen_hvm_param_get(XenHandles *xh, uint32_t index, uint64_t *value);
int xen_hvm_param_set(XenHandles *xh, uint32_t index, uint64_t value);

/* ---- the scheduler's cap (throttling a guest) ---------------------------- */

/*
 * The domain's CPU cap, in % of one physical CPU for the whole domain
 * (0: none), in the scheduler its pool runs: credit2 (Xen 4.17's default,
 * xc_sched_credit2_domain_get/set) or credit.  -EOPNOTSUPP for another
 * scheduler, or -errno.
 */
int xen_sched_cap_get(XenHandles *xh, uint32_t *cap);
int xen_sched_cap_set(XenHandles *xh, uint32_t cap);

/* ---- the domain's HVM context (vCPU and platform state) ------------------ */

/*
 * The HVM context of the domain (xc_domain_hvm_getcontext): a malloc'ed
 * buffer in *@buf of *@len bytes, read with the domain paused.  0 or -errno.
 */
int xen_hvm_context_get(XenHandles *xh, uint8_t **buf, uint32_t *len);

/* Load @len bytes of HVM context (xc_domain_hvm_setcontext).  0 or -errno. */
int xen_hvm_context_set(XenHandles *xh, const uint8_t *buf, uint32_t len);

/* ---- xenstore ----------------------------------------------------------- */

/*
 * Read @path; returns a malloc'ed NUL-terminated string or NULL with
 * -errno in *@status (-ENOENT when absent).
 */
char *xen_xs_read(XenHandles *xh, const char *path, int *status);
int xen_xs_write(XenHandles *xh, const char *path, const char *value);
int xen_xs_rm(XenHandles *xh, const char *path);

#endif /* XENRAM_XEN_H */
