/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen.c - the Xen platform layer over Debian's Xen libraries.  See xen.h.
 *
 * Every wrapper does the same three things: call the library, capture
 * errno at once (the libraries log and may clobber it later), and on
 * failure format "call(domid N, args): strerror" into the calling
 * thread's message buffer before returning -errno.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/util.h"
/* xen.h first: xenctrl.h sets up the tools' view of the public headers. */
#include "xen/xen.h"

#include <xentoolcore.h>

struct XenHandles {
    uint32_t domid;
    xc_interface *xc;
    xenforeignmemory_handle *fmem;
    xendevicemodel_handle *dmod;
    struct xs_handle *xs;

    /*
     * The log-dirty hypercall buffer, kept between reads (it is locked
     * memory and a migration reads the log many times); under @ld_lock.
     */
    pthread_mutex_t ld_lock;
    xc_hypercall_buffer_t ld_buf;
    int ld_buf_pages;
};

/* ---- errors ------------------------------------------------------------ */

#define XEN_ERRMSG_SIZE 256

static __thread char xen_errmsg[XEN_ERRMSG_SIZE];

static void xen_log_stderr(const char *msg)
{
    fprintf(stderr, "xenram: %s\n", msg);
}

static void (*xen_error_log)(const char *msg) = xen_log_stderr;

void xen_set_error_log(void (*fn)(const char *msg))
{
    __atomic_store_n(&xen_error_log, fn, __ATOMIC_RELEASE);
}

const char *xen_last_error(void)
{
    return xen_errmsg;
}

/* errno as the libraries left it, never 0 (some fail without setting it). */
static int xen_errno(void)
{
    return errno > 0 ? errno : EIO;
}

/*
 * Record "@call(domid @domid[, args]): strerror(@err)" as the thread's
 * last error, log it and return -@err.  @fmt (may be NULL) formats the
 * arguments after the domid.
 */
static int __attribute__((format(printf, 4, 5)))
xen_fail(int err, const char *call, uint32_t domid, const char *fmt, ...)
{
    char args[160] = "";
    void (*log)(const char *);
    va_list ap;

    if (fmt) {
        args[0] = ',';
        args[1] = ' ';
        va_start(ap, fmt);
        vsnprintf(args + 2, sizeof(args) - 2, fmt, ap);
        va_end(ap);
    }
    snprintf(xen_errmsg, sizeof(xen_errmsg), "%s(domid %" PRIu32 "%s): %s",
             call, domid, args, strerror(err));
    log = __atomic_load_n(&xen_error_log, __ATOMIC_ACQUIRE);
    if (log) {
        log(xen_errmsg);
    }
    return -err;
}

/*
 * As xen_fail(), for a failure whose likely cause a person should read
 * first: "@why (@call(domid @domid): strerror(@err))".
 */
static int xen_fail_why(int err, const char *call, uint32_t domid,
                        const char *why)
{
    void (*log)(const char *);

    snprintf(xen_errmsg, sizeof(xen_errmsg), "%s (%s(domid %" PRIu32 "): "
             "%s)", why, call, domid, strerror(err));
    log = __atomic_load_n(&xen_error_log, __ATOMIC_ACQUIRE);
    if (log) {
        log(xen_errmsg);
    }
    return -err;
}

int xen_record_failure(int err, const char *call, uint32_t domid,
                       const char *fmt, ...)
{
    char args[160];
    va_list ap;

    if (!fmt) {
        return xen_fail(err, call, domid, NULL);
    }
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return xen_fail(err, call, domid, "%s", args);
}

/* ---- handles ------------------------------------------------------------ */

static void xen_close_handles(XenHandles *xh)
{
    if (xh->ld_buf.hbuf) {
        xc__hypercall_buffer_free_pages(xh->xc, &xh->ld_buf,
                                        xh->ld_buf_pages);
    }
    if (xh->xs) {
        xs_close(xh->xs);
    }
    if (xh->dmod) {
        xendevicemodel_close(xh->dmod);
    }
    if (xh->fmem) {
        xenforeignmemory_close(xh->fmem);
    }
    if (xh->xc) {
        xc_interface_close(xh->xc);
    }
    pthread_mutex_destroy(&xh->ld_lock);
    free(xh);
}

/* 0 and *@info for @domid, -ESRCH if there is no such domain, or -errno. */
static int xen_getinfo(XenHandles *xh, xc_domaininfo_t *info)
{
    int n = xc_domain_getinfolist(xh->xc, xh->domid, 1, info);

    if (n < 0) {
        return xen_fail(xen_errno(), "xc_domain_getinfolist", xh->domid,
                        NULL);
    }
    /* The call returns the next existing domain: check it is ours. */
    if (n == 0 || info->domain != xh->domid) {
        char why[64];

        snprintf(why, sizeof(why), "domain %" PRIu32 " does not exist",
                 xh->domid);
        return xen_fail_why(ESRCH, "xc_domain_getinfolist", xh->domid, why);
    }
    return 0;
}

int xen_open(uint32_t domid, unsigned int flags, XenHandles **out,
             char *errbuf, size_t errlen)
{
    XenHandles *xh;
    xc_domaininfo_t info;
    int ret;

    *out = NULL;
    xen_errmsg[0] = '\0';
    xh = calloc(1, sizeof(*xh));
    if (!xh) {
        ret = xen_fail(ENOMEM, "xen_open", domid, NULL);
        goto out_msg;
    }
    xh->domid = domid;
    pthread_mutex_init(&xh->ld_lock, NULL);
    /* As DECLARE_HYPERCALL_BUFFER() sets one up, but kept in the handle. */
    xh->ld_buf.hbuf = NULL;
    xh->ld_buf.param_shadow = NULL;
    xh->ld_buf.ubuf = (void *)-1;

    xh->xc = xc_interface_open(NULL, NULL, 0);
    if (!xh->xc) {
        int e = xen_errno();

        ret = xen_fail_why(e, "xc_interface_open", domid,
                           e == ENOENT || e == ENXIO || e == ENODEV
                           ? "could not open the Xen control interface: not "
                             "a Xen dom0? (for the simulator: "
                             "LD_LIBRARY_PATH=build/sim and a running "
                             "`xensim start`)"
                           : e == EACCES || e == EPERM
                           ? "could not open the Xen control interface: "
                             "permission denied (run as root in dom0)"
                           : "could not open the Xen control interface");
        goto fail;
    }
    /* Fail early and clearly on a wrong -xen-domid. */
    ret = xen_getinfo(xh, &info);
    if (ret < 0) {
        goto fail;
    }
    xh->fmem = xenforeignmemory_open(NULL, 0);
    if (!xh->fmem) {
        ret = xen_fail(xen_errno(), "xenforeignmemory_open", domid, NULL);
        goto fail;
    }
    xh->dmod = xendevicemodel_open(NULL, 0);
    if (!xh->dmod) {
        ret = xen_fail(xen_errno(), "xendevicemodel_open", domid, NULL);
        goto fail;
    }
    if (!(flags & XEN_OPEN_NO_XENSTORE)) {
        xh->xs = xs_open(0);
        if (!xh->xs) {
            ret = xen_fail(xen_errno(), "xs_open", domid, NULL);
            goto fail;
        }
    }
    *out = xh;
    return 0;

fail:
    xen_close_handles(xh);
out_msg:
    if (errbuf && errlen) {
        snprintf(errbuf, errlen, "%s", xen_errmsg);
    }
    return ret;
}

void xen_close(XenHandles *xh)
{
    if (xh) {
        xen_close_handles(xh);
    }
}

int xen_restrict(XenHandles *xh)
{
    if (xentoolcore_restrict_all(xh->domid) < 0) {
        return xen_fail(xen_errno(), "xentoolcore_restrict_all", xh->domid,
                        NULL);
    }
    return 0;
}

uint32_t xen_domid(const XenHandles *xh)
{
    return xh->domid;
}

xc_interface *xen_xc(XenHandles *xh)
{
    return xh->xc;
}

xenforeignmemory_handle *xen_fmem(XenHandles *xh)
{
    return xh->fmem;
}

xendevicemodel_handle *xen_dmod(XenHandles *xh)
{
    return xh->dmod;
}

struct xs_handle *xen_xs(XenHandles *xh)
{
    return xh->xs;
}

/* ---- domain --------------------------------------------------------------- */

int xen_domain_info(XenHandles *xh, XenDomainInfo *info)
{
    xc_domaininfo_t di;
    int ret = xen_getinfo(xh, &di);

    if (ret < 0) {
        return ret;
    }
    info->max_pages = di.max_pages;
    info->tot_pages = di.tot_pages;
    info->paused = di.flags & XEN_DOMINF_paused;
    info->dying = di.flags & XEN_DOMINF_dying;
    info->hvm = di.flags & XEN_DOMINF_hvm_guest;
    info->nr_vcpus = di.max_vcpu_id + 1;
    return 0;
}

int xen_domain_pause(XenHandles *xh)
{
    if (xc_domain_pause(xh->xc, xh->domid) < 0) {
        return xen_fail(xen_errno(), "xc_domain_pause", xh->domid, NULL);
    }
    return 0;
}

int xen_domain_unpause(XenHandles *xh)
{
    if (xc_domain_unpause(xh->xc, xh->domid) < 0) {
        return xen_fail(xen_errno(), "xc_domain_unpause", xh->domid, NULL);
    }
    return 0;
}

/* ---- guest memory ----------------------------------------------------------- */

static void *xen_map_common(XenHandles *xh, void *addr, int flags,
                            const xen_pfn_t *gfns, size_t n, bool writable,
                            int *err, int *status)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *p;

    if (n == 0 || !err) {
        *status = xen_fail(EINVAL, "xenforeignmemory_map2", xh->domid,
                        "%zu pages", n);
        return NULL;
    }
    p = xenforeignmemory_map2(xh->fmem, xh->domid, addr, prot, flags, n,
                              gfns, err);
    if (!p) {
        *status = xen_fail(xen_errno(), "xenforeignmemory_map2", xh->domid,
                        "gfn 0x%" PRIx64 ", %zu pages", (uint64_t)gfns[0],
                        n);
        return NULL;
    }
    /* Linux reports -errno per frame, the documentation says errno. */
    for (size_t i = 0; i < n; i++) {
        if (err[i] > 0) {
            err[i] = -err[i];
        }
    }
    *status = 0;
    return p;
}

void *xen_map(XenHandles *xh, const xen_pfn_t *gfns, size_t n, bool writable,
              int *err, int *status)
{
    return xen_map_common(xh, NULL, 0, gfns, n, writable, err, status);
}

void *xen_map_at(XenHandles *xh, void *addr, const xen_pfn_t *gfns, size_t n,
                 bool writable, int *err, int *status)
{
    return xen_map_common(xh, addr, MAP_FIXED, gfns, n, writable, err, status);
}

int xen_unmap(XenHandles *xh, void *addr, size_t n)
{
    if (xenforeignmemory_unmap(xh->fmem, addr, n) < 0) {
        return xen_fail(xen_errno(), "xenforeignmemory_unmap", xh->domid,
                        "%p, %zu pages", addr, n);
    }
    return 0;
}

/*
 * Frames per populate / decrease hypercall: the gfn list costs 8 bytes a
 * frame, so a range is walked in chunks of 256 MiB rather than listed
 * whole (a 64 GiB hot-plug would need a 128 MiB list).
 */
#define XEN_RESERVATION_CHUNK ((uint64_t)1 << 16)

/*
 * Populate (@populate) or release [gfn, gfn + n) one chunk at a time.
 * Populating stops at the first chunk Xen refuses, with *@done the frames
 * of the chunks before it and *@tried those up to its end (both 0 when it
 * failed before asking Xen); releasing tries every chunk, so a hole does
 * not keep the frames after it, and returns the first error.
 */
static int xen_reservation(XenHandles *xh, bool populate, xen_pfn_t gfn,
                           uint64_t n, uint64_t *done, uint64_t *tried)
{
    const char *call = populate ? "xc_domain_populate_physmap_exact"
                                : "xc_domain_decrease_reservation_exact";
    xen_pfn_t *gfns;
    int ret = 0;

    *done = *tried = 0;
    /* The bound is what a gfn list could name at all: a caller's bug. */
    if (n == 0 || n > ULONG_MAX / sizeof(*gfns)) {
        return xen_fail(EINVAL, call, xh->domid,
                        "gfn 0x%" PRIx64 ", %" PRIu64 " pages",
                        (uint64_t)gfn, n);
    }
    gfns = malloc(MIN(n, XEN_RESERVATION_CHUNK) * sizeof(*gfns));
    if (!gfns) {
        return xen_fail(ENOMEM, call, xh->domid,
                        "gfn 0x%" PRIx64 ", %" PRIu64 " pages",
                        (uint64_t)gfn, n);
    }
    for (uint64_t off = 0; off < n;) {
        uint64_t c = MIN(XEN_RESERVATION_CHUNK, n - off);
        int rc;

        for (uint64_t i = 0; i < c; i++) {
            gfns[i] = gfn + off + i;
        }
        rc = populate ?
            xc_domain_populate_physmap_exact(xh->xc, xh->domid, c, 0, 0,
                                             gfns) :
            xc_domain_decrease_reservation_exact(xh->xc, xh->domid, c, 0,
                                                 gfns);
        if (rc < 0) {
            int r = xen_fail(xen_errno(), call, xh->domid,
                             "gfn 0x%" PRIx64 ", %" PRIu64 " pages",
                             (uint64_t)(gfn + off), c);

            ret = ret ? ret : r;
            if (populate) {
                *tried = off + c;
                break;
            }
        }
        off += c;
        *done = off;
    }
    free(gfns);
    return ret;
}

int xen_populate(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    uint64_t done, tried;

    return xen_reservation(xh, true, gfn, n, &done, &tried);
}

int xen_populate_all(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    char msg[XEN_ERRMSG_SIZE];
    uint64_t done, tried, unused;
    int ret = xen_reservation(xh, true, gfn, n, &done, &tried);

    if (!ret) {
        return 0;
    }
    /* The caller reports why populating failed, not why undoing it did. */
    memcpy(msg, xen_errmsg, sizeof(msg));
    /*
     * Xen may have populated part of the failed chunk: decrease releases
     * frames in order and stops at the first one that is not there, which
     * is exactly that part.
     */
    if (tried > done) {
        xen_reservation(xh, false, gfn + done, tried - done, &unused,
                        &unused);
    }
    if (done) {
        xen_reservation(xh, false, gfn, done, &unused, &unused);
    }
    memcpy(xen_errmsg, msg, sizeof(msg));
    return ret;
}

int xen_depopulate(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    uint64_t done, tried;

    return xen_reservation(xh, false, gfn, n, &done, &tried);
}

/*
 * Mapped and written in 1 MiB chunks, so that what is mapped at once stays
 * small whatever @n.
 */
int xen_zero_frames(XenHandles *xh, xen_pfn_t gfn, uint64_t n)
{
    enum { CHUNK = 256 };
    xen_pfn_t gfns[CHUNK];
    int errs[CHUNK];

    for (uint64_t done = 0; done < n; done += CHUNK) {
        size_t k = n - done < CHUNK ? (size_t)(n - done) : CHUNK;
        int status = 0, ret = 0;
        uint8_t *m;

        for (size_t i = 0; i < k; i++) {
            gfns[i] = gfn + done + i;
        }
        m = xen_map(xh, gfns, k, true, errs, &status);
        for (size_t i = 0; m && i < k && !ret; i++) {
            ret = errs[i];
        }
        if (!m || ret) {
            if (m) {
                xen_unmap(xh, m, k);
            }
            ret = ret ? ret : (status ? status : -EFAULT);
            return xen_fail(-ret, "xen_zero_frames", xh->domid,
                            "mapping gfn 0x%" PRIx64 "+%zu", gfn + done, k);
        }
        memset(m, 0, k * XR_PAGE_SIZE);
        xen_unmap(xh, m, k);
    }
    return 0;
}

/* ---- dirty logging -------------------------------------------------------- */

/*
 * ENABLE fails (-EINVAL, paging_log_dirty_enable()) when log-dirty is on
 * already: a migration that died without turning it off, or shadow
 * paging's VRAM tracking.  As libxc's save does, turn it off and on again;
 * the fresh ENABLE starts the log clean, which is what a first round
 * wants anyway.
 */
int xen_logdirty_enable(XenHandles *xh)
{
    int first;

    if (xc_shadow_control(xh->xc, xh->domid,
                          XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) == 0) {
        return 0;
    }
    first = xen_errno();
    if (xc_shadow_control(xh->xc, xh->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL,
                          0) < 0) {
        /* Not a log-dirty left on: what ENABLE said is the cause. */
        return xen_fail(first, "xc_shadow_control", xh->domid,
                        "ENABLE_LOGDIRTY");
    }
    if (xc_shadow_control(xh->xc, xh->domid,
                          XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
        return xen_fail(xen_errno(), "xc_shadow_control", xh->domid,
                        "ENABLE_LOGDIRTY");
    }
    return 0;
}

int xen_logdirty_disable(XenHandles *xh)
{
    if (xc_shadow_control(xh->xc, xh->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL,
                          0) < 0) {
        return xen_fail(xen_errno(), "xc_shadow_control", xh->domid, "OFF");
    }
    return 0;
}

int xen_logdirty_read(XenHandles *xh, unsigned long *bitmap, uint64_t npages,
                      bool clear, bool final, XenLogDirtyStats *stats)
{
    const char *opname = clear ? (final ? "CLEAN|FINAL" : "CLEAN") : "PEEK";
    unsigned int op = clear ? XEN_DOMCTL_SHADOW_OP_CLEAN
                            : XEN_DOMCTL_SHADOW_OP_PEEK;
    size_t bytes = BITS_TO_LONGS(npages) * sizeof(unsigned long);
    int pages = (int)DIV_ROUND_UP(bytes, XC_PAGE_SIZE);
    xc_shadow_op_stats_t st = { 0 };
    long long rc;
    int err;

    if (npages == 0 || bytes / XC_PAGE_SIZE >= INT_MAX) {
        return xen_fail(EINVAL, "xc_logdirty_control", xh->domid,
                        "%s, %" PRIu64 " pages", opname, npages);
    }
    pthread_mutex_lock(&xh->ld_lock);
    if (xh->ld_buf_pages < pages) {
        if (xh->ld_buf.hbuf) {
            xc__hypercall_buffer_free_pages(xh->xc, &xh->ld_buf,
                                            xh->ld_buf_pages);
            xh->ld_buf.hbuf = NULL;
            xh->ld_buf_pages = 0;
        }
        if (!xc__hypercall_buffer_alloc_pages(xh->xc, &xh->ld_buf, pages)) {
            err = xen_errno();
            xh->ld_buf.hbuf = NULL;
            pthread_mutex_unlock(&xh->ld_lock);
            return xen_fail(err, "xc_hypercall_buffer_alloc_pages",
                            xh->domid, "%d pages", pages);
        }
        xh->ld_buf_pages = pages;
    }
    memset(xh->ld_buf.hbuf, 0, bytes);
    errno = 0;
    rc = xc_logdirty_control(xh->xc, xh->domid, op, &xh->ld_buf, npages,
                             final ? XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL : 0,
                             &st);
    err = xen_errno();
    if (rc >= 0) {
        memcpy(bitmap, xh->ld_buf.hbuf, bytes);
    }
    pthread_mutex_unlock(&xh->ld_lock);
    if (rc < 0) {
        return xen_fail(err, "xc_logdirty_control", xh->domid,
                        "%s, %" PRIu64 " pages", opname, npages);
    }
    /* Bits past npages belong to nobody: keep them clear. */
    if (npages % BITS_PER_LONG) {
        bitmap[BIT_WORD(npages)] &= BITMAP_LAST_WORD_MASK(npages);
    }
    if (stats) {
        stats->dirty_count = st.dirty_count;
        stats->fault_count = st.fault_count;
    }
    return 0;
}

int xen_track_dirty_vram(XenHandles *xh, uint64_t first_pfn, uint32_t nr,
                         unsigned long *bitmap)
{
    if (xendevicemodel_track_dirty_vram(xh->dmod, xh->domid, first_pfn, nr,
                                        bitmap) < 0) {
        return xen_fail(xen_errno(), "xendevicemodel_track_dirty_vram",
                        xh->domid, "pfn 0x%" PRIx64 ", %" PRIu32 " pages",
                        first_pfn, nr);
    }
    return 0;
}

int xen_modified_memory_bulk(XenHandles *xh,
                             struct xen_dm_op_modified_memory_extent *ext,
                             uint32_t n)
{
    if (n == 0) {
        return 0;
    }
    if (xendevicemodel_modified_memory_bulk(xh->dmod, xh->domid, ext, n) < 0) {
        return xen_fail(xen_errno(), "xendevicemodel_modified_memory_bulk",
                        xh->domid, "%" PRIu32 " extents from pfn 0x%" PRIx64,
                        n, (uint64_t)ext[0].first_pfn);
    }
    return 0;
}

/* ---- ioreq server ------------------------------------------------------------- */

int xen_ioreq_server_create(XenHandles *xh, ioservid_t *id)
{
    if (xendevicemodel_create_ioreq_server(xh->dmod, xh->domid,
                                           HVM_IOREQSRV_BUFIOREQ_OFF,
                                           id) < 0) {
        return xen_fail(xen_errno(), "xendevicemodel_create_ioreq_server",
                        xh->domid, NULL);
    }
    return 0;
}

int xen_ioreq_server_destroy(XenHandles *xh, ioservid_t id)
{
    if (xendevicemodel_destroy_ioreq_server(xh->dmod, xh->domid, id) < 0) {
        return xen_fail(xen_errno(), "xendevicemodel_destroy_ioreq_server",
                        xh->domid, "server %u", (unsigned int)id);
    }
    return 0;
}

int xen_ioreq_server_set_enabled(XenHandles *xh, ioservid_t id, bool on)
{
    if (xendevicemodel_set_ioreq_server_state(xh->dmod, xh->domid, id,
                                              on) < 0) {
        return xen_fail(xen_errno(), "xendevicemodel_set_ioreq_server_state",
                        xh->domid, "server %u, %s", (unsigned int)id,
                        on ? "enabled" : "disabled");
    }
    return 0;
}

int xen_ioreq_map_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                        uint64_t start, uint64_t end)
{
    if (xendevicemodel_map_io_range_to_ioreq_server(xh->dmod, xh->domid, id,
                                                    is_mmio, start,
                                                    end) < 0) {
        return xen_fail(xen_errno(),
                        "xendevicemodel_map_io_range_to_ioreq_server",
                        xh->domid, "server %u, %s 0x%" PRIx64 "-0x%" PRIx64,
                        (unsigned int)id, is_mmio ? "mmio" : "port", start,
                        end);
    }
    return 0;
}

int xen_ioreq_unmap_range(XenHandles *xh, ioservid_t id, bool is_mmio,
                          uint64_t start, uint64_t end)
{
    if (xendevicemodel_unmap_io_range_from_ioreq_server(xh->dmod, xh->domid,
                                                        id, is_mmio, start,
                                                        end) < 0) {
        return xen_fail(xen_errno(),
                        "xendevicemodel_unmap_io_range_from_ioreq_server",
                        xh->domid, "server %u, %s 0x%" PRIx64 "-0x%" PRIx64,
                        (unsigned int)id, is_mmio ? "mmio" : "port", start,
                        end);
    }
    return 0;
}

/* ---- xenstore ------------------------------------------------------------------ */

char *xen_xs_read(XenHandles *xh, const char *path, int *status)
{
    unsigned int len;
    char *v;

    if (!xh->xs) {
        *status = xen_fail(ENOTCONN, "xs_read", xh->domid, "%s", path);
        return NULL;
    }
    v = xs_read(xh->xs, XBT_NULL, path, &len);
    if (!v) {
        *status = xen_fail(xen_errno(), "xs_read", xh->domid, "%s", path);
        return NULL;
    }
    *status = 0;
    return v;
}

int xen_xs_write(XenHandles *xh, const char *path, const char *value)
{
    if (!xh->xs) {
        return xen_fail(ENOTCONN, "xs_write", xh->domid, "%s", path);
    }
    if (!xs_write(xh->xs, XBT_NULL, path, value, strlen(value))) {
        return xen_fail(xen_errno(), "xs_write", xh->domid, "%s", path);
    }
    return 0;
}

int xen_xs_rm(XenHandles *xh, const char *path)
{
    if (!xh->xs) {
        return xen_fail(ENOTCONN, "xs_rm", xh->domid, "%s", path);
    }
    if (!xs_rm(xh->xs, XBT_NULL, path)) {
        return xen_fail(xen_errno(), "xs_rm", xh->domid, "%s", path);
    }
    return 0;
}

/* ---- the domain's HVM context ---------------------------------------------------- */

int xen_hvm_context_get(XenHandles *xh, uint8_t **buf, uint32_t *len)
{
    int size = xc_domain_hvm_getcontext(xh->xc, xh->domid, NULL, 0);
    uint8_t *b;

    if (size < 0) {
        return xen_fail(xen_errno(), "xc_domain_hvm_getcontext", xh->domid,
                        ", size");
    }
    b = malloc(size ? (size_t)size : 1);
    if (!b) {
        return -ENOMEM;
    }
    size = xc_domain_hvm_getcontext(xh->xc, xh->domid, b, (uint32_t)size);
    if (size < 0) {
        free(b);
        return xen_fail(xen_errno(), "xc_domain_hvm_getcontext", xh->domid,
                        NULL);
    }
    *buf = b;
    *len = (uint32_t)size;
    return 0;
}

int xen_hvm_context_set(XenHandles *xh, const uint8_t *buf, uint32_t len)
{
    if (xc_domain_hvm_setcontext(xh->xc, xh->domid, (uint8_t *)buf, len) < 0) {
        return xen_fail(xen_errno(), "xc_domain_hvm_setcontext", xh->domid,
                        ", %u bytes", len);
    }
    return 0;
}

/* ---- the scheduler's cap ------------------------------------------------------------ */

static int xen_sched(XenHandles *xh, int *id)
{
    if (xc_sched_id(xh->xc, id) < 0) {
        return xen_fail(xen_errno(), "xc_sched_id", xh->domid, NULL);
    }
    if (*id != XEN_SCHEDULER_CREDIT2 && *id != XEN_SCHEDULER_CREDIT) {
        return xen_fail(EOPNOTSUPP, "xc_sched_id", xh->domid,
                        ": scheduler %d has no cap", *id);
    }
    return 0;
}

int xen_sched_cap_get(XenHandles *xh, uint32_t *cap)
{
    int id, ret = xen_sched(xh, &id);

    if (ret) {
        return ret;
    }
    if (id == XEN_SCHEDULER_CREDIT2) {
        struct xen_domctl_sched_credit2 p;

        if (xc_sched_credit2_domain_get(xh->xc, xh->domid, &p) < 0) {
            return xen_fail(xen_errno(), "xc_sched_credit2_domain_get",
                            xh->domid, NULL);
        }
        *cap = p.cap;
    } else {
        struct xen_domctl_sched_credit p;

        if (xc_sched_credit_domain_get(xh->xc, xh->domid, &p) < 0) {
            return xen_fail(xen_errno(), "xc_sched_credit_domain_get",
                            xh->domid, NULL);
        }
        *cap = p.cap;
    }
    return 0;
}

int xen_sched_cap_set(XenHandles *xh, uint32_t cap)
{
    int id, ret = xen_sched(xh, &id);

    if (ret) {
        return ret;
    }
    /* Read first: set writes the weight too, which must stay. */
    if (id == XEN_SCHEDULER_CREDIT2) {
        struct xen_domctl_sched_credit2 p;

        if (xc_sched_credit2_domain_get(xh->xc, xh->domid, &p) < 0 ||
            (p.cap = (uint16_t)cap,
             xc_sched_credit2_domain_set(xh->xc, xh->domid, &p) < 0)) {
            return xen_fail(xen_errno(), "xc_sched_credit2_domain_set",
                            xh->domid, ", cap %u", cap);
        }
    } else {
        struct xen_domctl_sched_credit p;

        if (xc_sched_credit_domain_get(xh->xc, xh->domid, &p) < 0 ||
            (p.cap = (uint16_t)cap,
             xc_sched_credit_domain_set(xh->xc, xh->domid, &p) < 0)) {
            return xen_fail(xen_errno(), "xc_sched_credit_domain_set",
                            xh->domid, ", cap %u", cap);
        }
    }
    return 0;
}

/* ---- HVM parameters ------------------------------------------------------------------- */

int xen_hvm_param_get(XenHandles *xh, uint32_t index, uint64_t *value)
{
    if (xc_hvm_param_get(xh->xc, xh->domid, index, value) < 0) {
        return xen_fail(xen_errno(), "xc_hvm_param_get", xh->domid, ", %u",
                        index);
    }
    return 0;
}

int xen_hvm_param_set(XenHandles *xh, uint32_t index, uint64_t value)
{
    if (xc_hvm_param_set(xh->xc, xh->domid, index, value) < 0) {
        return xen_fail(xen_errno(), "xc_hvm_param_set", xh->domid,
                        ", %u = %#" PRIx64, index, value);
    }
    return 0;
}
