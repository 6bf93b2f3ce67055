/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-xen.c - the platform layer's contract (xen/xen.h): arguments passed
 * to Xen, errno mapping, messages, and that a failed open leaves nothing
 * open.
 *
 * Every library call the layer makes is replaced with --wrap (see
 * xen/module.mk).  The replacements record their arguments and fail on
 * demand: fail_call names the call that fails next, with fail_err as
 * errno.  Domain 7 exists, nothing else does.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "util/util.h"
#include "xen/xen.h"

#include <xentoolcore.h>

#define DOMID 7

/* ---- the fake libraries -------------------------------------------------- */

static const char *fail_call;   /* name of the call that fails */
static int fail_err;            /* errno it fails with (0: leaves errno 0) */
static int n_open, n_close;     /* handles opened / closed, all libraries */
static char h_xc, h_fmem, h_dmod, h_xs;

/* Records of the last call. */
static struct {
    uint32_t domid;
    unsigned int op, mode, flags;
    unsigned long n;
    uint64_t first;
    const xen_pfn_t *gfns;
    void *addr;
    int prot;
    char path[128], value[128];
    unsigned int calls;
} last;

/*
 * Populate and decrease hypercalls, in order, for the chunked range
 * walks; populate_ok lets that many populates succeed before fail_next()
 * applies, and decrease_err makes every decrease fail.
 */
static struct {
    char op;                    /* 'p'opulate or 'd'ecrease */
    uint64_t first;
    unsigned long n;
} resv[8];
static unsigned int n_resv, populate_ok;
static int decrease_err;

/* What the next xc_logdirty_control() "finds" dirty. */
static unsigned long dirty_words[4];
static unsigned int dirty_count;

static char logged[512];

static bool failing(const char *call)
{
    if (fail_call && strcmp(fail_call, call) == 0) {
        errno = fail_err;
        return true;
    }
    return false;
}

#define WRAP(ret, name, ...) \
    ret __wrap_##name(__VA_ARGS__); \
    ret __wrap_##name(__VA_ARGS__)

WRAP(xc_interface *, xc_interface_open, xentoollog_logger *l,
     xentoollog_logger *dl, unsigned f)
{
    (void)l; (void)dl; (void)f;
    if (failing("xc_interface_open")) {
        return NULL;
    }
    n_open++;
    return (xc_interface *)&h_xc;
}

WRAP(int, xc_interface_close, xc_interface *x)
{
    assert_ptr_equal(x, &h_xc);
    n_close++;
    return 0;
}

WRAP(int, xc_domain_getinfolist, xc_interface *x, uint32_t first,
     unsigned int max, xc_domaininfo_t *info)
{
    (void)x;
    assert_int_equal(max, 1);
    if (failing("xc_domain_getinfolist")) {
        return -1;
    }
    if (first > DOMID) {
        return 0;
    }
    memset(info, 0, sizeof(*info));
    info->domain = DOMID;      /* the next domain from @first */
    info->flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_paused;
    info->tot_pages = 1000;
    info->max_pages = 2000;
    return 1;
}

WRAP(int, xc_domain_pause, xc_interface *x, uint32_t domid)
{
    (void)x;
    last.domid = domid;
    return failing("xc_domain_pause") ? -1 : 0;
}

WRAP(int, xc_domain_unpause, xc_interface *x, uint32_t domid)
{
    (void)x;
    last.domid = domid;
    return failing("xc_domain_unpause") ? -1 : 0;
}

WRAP(int, xc_domain_populate_physmap_exact, xc_interface *x, uint32_t domid,
     unsigned long nr, unsigned int order, unsigned int flags,
     xen_pfn_t *gfns)
{
    (void)x;
    last.domid = domid;
    last.n = nr;
    last.mode = order;
    last.flags = flags;
    last.first = gfns[0];
    /* Every frame is named, one after the other. */
    for (unsigned long i = 0; i < nr; i++) {
        assert_int_equal(gfns[i], gfns[0] + i);
    }
    if (n_resv < ARRAY_SIZE(resv)) {
        resv[n_resv++] = (typeof(resv[0])) { 'p', gfns[0], nr };
    }
    if (populate_ok) {
        populate_ok--;
        return 0;
    }
    return failing("xc_domain_populate_physmap_exact") ? -1 : 0;
}

WRAP(int, xc_domain_decrease_reservation_exact, xc_interface *x,
     uint32_t domid, unsigned long nr, unsigned int order, xen_pfn_t *gfns)
{
    (void)x;
    last.domid = domid;
    last.n = nr;
    last.mode = order;
    last.first = gfns[0];
    for (unsigned long i = 0; i < nr; i++) {
        assert_int_equal(gfns[i], gfns[0] + i);
    }
    if (n_resv < ARRAY_SIZE(resv)) {
        resv[n_resv++] = (typeof(resv[0])) { 'd', gfns[0], nr };
    }
    if (decrease_err) {
        errno = decrease_err;
        return -1;
    }
    return failing("xc_domain_decrease_reservation_exact") ? -1 : 0;
}

/* ENABLE_LOGDIRTY calls to refuse with EINVAL (log-dirty on already). */
static unsigned int enable_busy;
static unsigned int shadow_ops[8], n_shadow_ops;

WRAP(int, xc_shadow_control, xc_interface *x, uint32_t domid,
     unsigned int sop, unsigned int *mb, unsigned int mode)
{
    (void)x; (void)mb;
    last.domid = domid;
    last.op = sop;
    last.mode = mode;
    if (n_shadow_ops < 8)
        shadow_ops[n_shadow_ops++] = sop;
    if (sop == XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY && enable_busy) {
        enable_busy--;
        errno = EINVAL;
        return -1;
    }
    return failing("xc_shadow_control") ? -1 : 0;
}

WRAP(long long, xc_logdirty_control, xc_interface *x, uint32_t domid,
     unsigned int sop, xc_hypercall_buffer_t *bm, unsigned long pages,
     unsigned int mode, xc_shadow_op_stats_t *stats)
{
    (void)x;
    last.domid = domid;
    last.op = sop;
    last.mode = mode;
    last.n = pages;
    last.calls++;
    if (failing("xc_logdirty_control")) {
        return -1;
    }
    memcpy(bm->hbuf, dirty_words, sizeof(dirty_words));
    stats->dirty_count = dirty_count;
    stats->fault_count = 3;
    return (long long)pages;
}

WRAP(void *, xc__hypercall_buffer_alloc_pages, xc_interface *x,
     xc_hypercall_buffer_t *b, int nr)
{
    (void)x;
    if (failing("xc__hypercall_buffer_alloc_pages")) {
        return NULL;
    }
    b->hbuf = calloc(nr, XR_PAGE_SIZE);
    return b->hbuf;
}

WRAP(void, xc__hypercall_buffer_free_pages, xc_interface *x,
     xc_hypercall_buffer_t *b, int nr)
{
    (void)x; (void)nr;
    free(b->hbuf);
    b->hbuf = NULL;
}

WRAP(xenforeignmemory_handle *, xenforeignmemory_open,
     struct xentoollog_logger *l, unsigned f)
{
    (void)l; (void)f;
    if (failing("xenforeignmemory_open")) {
        return NULL;
    }
    n_open++;
    return (xenforeignmemory_handle *)&h_fmem;
}

WRAP(int, xenforeignmemory_close, xenforeignmemory_handle *h)
{
    assert_ptr_equal(h, &h_fmem);
    n_close++;
    return 0;
}

/* Maps anonymous memory; frame i gets the error map_errs[i]. */
static int map_errs[8];

WRAP(void *, xenforeignmemory_map2, xenforeignmemory_handle *h, uint32_t dom,
     void *addr, int prot, int flags, size_t pages, const xen_pfn_t arr[],
     int err[])
{
    void *p;

    (void)h;
    last.domid = dom;
    last.addr = addr;
    last.prot = prot;
    last.flags = flags;
    last.n = pages;
    last.gfns = arr;
    if (failing("xenforeignmemory_map2")) {
        return NULL;
    }
    p = mmap(addr, pages * XR_PAGE_SIZE, prot,
             MAP_PRIVATE | MAP_ANONYMOUS | (flags & MAP_FIXED), -1, 0);
    assert_true(p != MAP_FAILED);
    for (size_t i = 0; i < pages; i++) {
        err[i] = i < ARRAY_SIZE(map_errs) ? map_errs[i] : 0;
    }
    return p;
}

WRAP(int, xenforeignmemory_unmap, xenforeignmemory_handle *h, void *addr,
     size_t pages)
{
    (void)h;
    last.addr = addr;
    last.n = pages;
    if (failing("xenforeignmemory_unmap")) {
        return -1;
    }
    return munmap(addr, pages * XR_PAGE_SIZE);
}

WRAP(xendevicemodel_handle *, xendevicemodel_open,
     struct xentoollog_logger *l, unsigned f)
{
    (void)l; (void)f;
    if (failing("xendevicemodel_open")) {
        return NULL;
    }
    n_open++;
    return (xendevicemodel_handle *)&h_dmod;
}

WRAP(int, xendevicemodel_close, xendevicemodel_handle *h)
{
    assert_ptr_equal(h, &h_dmod);
    n_close++;
    return 0;
}

WRAP(int, xendevicemodel_track_dirty_vram, xendevicemodel_handle *h,
     domid_t domid, uint64_t first_pfn, uint32_t nr, unsigned long *bitmap)
{
    (void)h; (void)bitmap;
    last.domid = domid;
    last.first = first_pfn;
    last.n = nr;
    return failing("xendevicemodel_track_dirty_vram") ? -1 : 0;
}

WRAP(int, xendevicemodel_modified_memory_bulk, xendevicemodel_handle *h,
     domid_t domid, struct xen_dm_op_modified_memory_extent ext[],
     uint32_t nr)
{
    (void)h;
    last.domid = domid;
    last.n = nr;
    last.first = ext[0].first_pfn;
    last.calls++;
    return failing("xendevicemodel_modified_memory_bulk") ? -1 : 0;
}

WRAP(int, xendevicemodel_create_ioreq_server, xendevicemodel_handle *h,
     domid_t domid, int bufioreq, ioservid_t *id)
{
    (void)h;
    last.domid = domid;
    last.mode = bufioreq;
    if (failing("xendevicemodel_create_ioreq_server")) {
        return -1;
    }
    *id = 3;
    return 0;
}

WRAP(int, xendevicemodel_destroy_ioreq_server, xendevicemodel_handle *h,
     domid_t domid, ioservid_t id)
{
    (void)h;
    last.domid = domid;
    last.op = id;
    return failing("xendevicemodel_destroy_ioreq_server") ? -1 : 0;
}

WRAP(int, xendevicemodel_set_ioreq_server_state, xendevicemodel_handle *h,
     domid_t domid, ioservid_t id, int enabled)
{
    (void)h;
    last.domid = domid;
    last.op = id;
    last.mode = enabled;
    return failing("xendevicemodel_set_ioreq_server_state") ? -1 : 0;
}

WRAP(int, xendevicemodel_map_io_range_to_ioreq_server,
     xendevicemodel_handle *h, domid_t domid, ioservid_t id, int is_mmio,
     uint64_t start, uint64_t end)
{
    (void)h; (void)end;
    last.domid = domid;
    last.op = id;
    last.mode = is_mmio;
    last.first = start;
    return failing("xendevicemodel_map_io_range_to_ioreq_server") ? -1 : 0;
}

WRAP(int, xendevicemodel_unmap_io_range_from_ioreq_server,
     xendevicemodel_handle *h, domid_t domid, ioservid_t id, int is_mmio,
     uint64_t start, uint64_t end)
{
    (void)h; (void)end;
    last.domid = domid;
    last.op = id;
    last.mode = is_mmio;
    last.first = start;
    return failing("xendevicemodel_unmap_io_range_from_ioreq_server")
           ? -1 : 0;
}

WRAP(int, xentoolcore_restrict_all, domid_t domid)
{
    last.domid = domid;
    return failing("xentoolcore_restrict_all") ? -1 : 0;
}

WRAP(struct xs_handle *, xs_open, unsigned long flags)
{
    (void)flags;
    if (failing("xs_open")) {
        return NULL;
    }
    n_open++;
    return (struct xs_handle *)&h_xs;
}

WRAP(void, xs_close, struct xs_handle *h)
{
    assert_ptr_equal(h, &h_xs);
    n_close++;
}

WRAP(void *, xs_read, struct xs_handle *h, xs_transaction_t t,
     const char *path, unsigned int *len)
{
    (void)h; (void)t;
    snprintf(last.path, sizeof(last.path), "%s", path);
    if (failing("xs_read")) {
        return NULL;
    }
    *len = 7;
    return strdup("running");
}

WRAP(bool, xs_write, struct xs_handle *h, xs_transaction_t t,
     const char *path, const void *data, unsigned int len)
{
    (void)h; (void)t;
    snprintf(last.path, sizeof(last.path), "%s", path);
    snprintf(last.value, sizeof(last.value), "%.*s", (int)len,
             (const char *)data);
    return !failing("xs_write");
}

WRAP(bool, xs_rm, struct xs_handle *h, xs_transaction_t t, const char *path)
{
    (void)h; (void)t;
    snprintf(last.path, sizeof(last.path), "%s", path);
    return !failing("xs_rm");
}

/* ---- fixtures ------------------------------------------------------------ */

static void capture_log(const char *msg)
{
    snprintf(logged, sizeof(logged), "%s", msg);
}

static int reset(void **state)
{
    (void)state;
    fail_call = NULL;
    fail_err = 0;
    enable_busy = n_shadow_ops = 0;
    n_open = n_close = 0;
    memset(&last, 0, sizeof(last));
    n_resv = populate_ok = 0;
    decrease_err = 0;
    memset(map_errs, 0, sizeof(map_errs));
    memset(dirty_words, 0, sizeof(dirty_words));
    dirty_count = 0;
    logged[0] = '\0';
    xen_set_error_log(capture_log);
    return 0;
}

/* A domain-7 handle, opened with every fake library working. */
static int open_dom(void **state)
{
    XenHandles *xh;

    reset(state);
    assert_int_equal(xen_open(DOMID, 0, &xh, NULL, 0), 0);
    *state = xh;
    return 0;
}

static int close_dom(void **state)
{
    fail_call = NULL;
    xen_close(*state);
    assert_int_equal(n_open, n_close);
    return 0;
}

static void fail_next(const char *call, int err)
{
    fail_call = call;
    fail_err = err;
}

/* ---- opening ------------------------------------------------------------- */

static void test_open_checks_the_domain_and_keeps_the_domid(void **state)
{
    XenHandles *xh;

    (void)state;
    assert_int_equal(xen_open(DOMID, 0, &xh, NULL, 0), 0);
    assert_int_equal(xen_domid(xh), DOMID);
    assert_ptr_equal(xen_xc(xh), &h_xc);
    assert_ptr_equal(xen_fmem(xh), &h_fmem);
    assert_ptr_equal(xen_dmod(xh), &h_dmod);
    assert_ptr_equal(xen_xs(xh), &h_xs);
    assert_int_equal(n_open, 4);
    xen_close(xh);
    assert_int_equal(n_close, 4);
}

static void test_open_without_xenstore_does_not_connect(void **state)
{
    XenHandles *xh;

    (void)state;
    assert_int_equal(xen_open(DOMID, XEN_OPEN_NO_XENSTORE, &xh, NULL, 0), 0);
    assert_null(xen_xs(xh));
    assert_int_equal(n_open, 3);
    xen_close(xh);
    assert_int_equal(n_close, 3);
}

static void test_open_of_an_unknown_domid_is_esrch(void **state)
{
    XenHandles *xh = (XenHandles *)1;
    char msg[128];

    (void)state;
    assert_int_equal(xen_open(9, 0, &xh, msg, sizeof(msg)), -ESRCH);
    assert_null(xh);
    assert_string_equal(msg, "domain 9 does not exist "
                        "(xc_domain_getinfolist(domid 9): No such process)");
    assert_string_equal(xen_last_error(), msg);
    assert_int_equal(n_open, n_close);
}

static void test_open_does_not_take_the_next_domain_for_the_asked_one(
    void **state)
{
    XenHandles *xh;

    (void)state;
    /* Domain 5 does not exist; Xen answers with domain 7, the next one. */
    assert_int_equal(xen_open(5, 0, &xh, NULL, 0), -ESRCH);
    assert_int_equal(n_open, n_close);
}

static void test_open_reports_xc_interface_open_failure(void **state)
{
    XenHandles *xh;
    char msg[256];

    (void)state;
    fail_next("xc_interface_open", EACCES);
    assert_int_equal(xen_open(DOMID, 0, &xh, msg, sizeof(msg)), -EACCES);
    assert_string_equal(msg, "could not open the Xen control interface: "
                        "permission denied (run as root in dom0) "
                        "(xc_interface_open(domid 7): Permission denied)");
    assert_int_equal(n_open, 0);
}

static void test_open_failing_half_way_closes_what_it_opened(void **state)
{
    XenHandles *xh;
    char msg[128];

    (void)state;
    fail_next("xendevicemodel_open", ENOENT);
    assert_int_equal(xen_open(DOMID, 0, &xh, msg, sizeof(msg)), -ENOENT);
    assert_string_equal(msg,
        "xendevicemodel_open(domid 7): No such file or directory");
    assert_int_equal(n_open, 2);
    assert_int_equal(n_close, 2);
}

static void test_open_failing_at_xenstore_closes_everything(void **state)
{
    XenHandles *xh;

    (void)state;
    fail_next("xs_open", ECONNREFUSED);
    assert_int_equal(xen_open(DOMID, 0, &xh, NULL, 0), -ECONNREFUSED);
    assert_int_equal(n_open, 3);
    assert_int_equal(n_close, 3);
}

static void test_failure_without_errno_is_eio(void **state)
{
    XenHandles *xh;

    (void)state;
    fail_next("xc_interface_open", 0);
    assert_int_equal(xen_open(DOMID, 0, &xh, NULL, 0), -EIO);
}

/* ---- messages --------------------------------------------------------------- */

static void test_failures_are_logged(void **state)
{
    fail_next("xc_domain_pause", EPERM);
    assert_int_equal(xen_domain_pause(*state), -EPERM);
    assert_string_equal(logged, "xc_domain_pause(domid 7): "
                                "Operation not permitted");
}

static void *read_last_error(void *arg)
{
    (void)arg;
    return strdup(xen_last_error());
}

static void test_last_error_is_per_thread(void **state)
{
    pthread_t t;
    char *other;

    fail_next("xc_domain_unpause", EINVAL);
    assert_int_equal(xen_domain_unpause(*state), -EINVAL);
    assert_string_equal(xen_last_error(),
                        "xc_domain_unpause(domid 7): Invalid argument");
    pthread_create(&t, NULL, read_last_error, NULL);
    pthread_join(t, (void **)&other);
    assert_string_equal(other, "");
    free(other);
}

/* ---- domain ------------------------------------------------------------------ */

static void test_restrict_restricts_every_handle_to_the_domain(void **state)
{
    assert_int_equal(xen_restrict(*state), 0);
    assert_int_equal(last.domid, DOMID);
}

static void test_restrict_failure_is_reported(void **state)
{
    fail_next("xentoolcore_restrict_all", EPERM);
    assert_int_equal(xen_restrict(*state), -EPERM);
    assert_string_equal(xen_last_error(), "xentoolcore_restrict_all(domid 7): "
                                          "Operation not permitted");
}

static void test_domain_info_reports_pages_and_flags(void **state)
{
    XenDomainInfo info;

    assert_int_equal(xen_domain_info(*state, &info), 0);
    assert_int_equal(info.tot_pages, 1000);
    assert_int_equal(info.max_pages, 2000);
    assert_true(info.hvm);
    assert_true(info.paused);
    assert_false(info.dying);
}

static void test_pause_and_unpause_name_the_domain(void **state)
{
    assert_int_equal(xen_domain_pause(*state), 0);
    assert_int_equal(last.domid, DOMID);
    last.domid = 0;
    assert_int_equal(xen_domain_unpause(*state), 0);
    assert_int_equal(last.domid, DOMID);
}

/* ---- guest memory ------------------------------------------------------------- */

static void test_map_reports_frames_that_failed_as_negative_errno(void **state)
{
    xen_pfn_t gfns[4] = { 10, 11, 12, 13 };
    int err[4], ret = 1;
    void *p;

    map_errs[1] = ENOENT;       /* the documentation's sign */
    map_errs[2] = -EINVAL;      /* Linux's sign */
    p = xen_map(*state, gfns, 4, true, err, &ret);
    assert_non_null(p);
    assert_int_equal(ret, 0);
    assert_int_equal(err[0], 0);
    assert_int_equal(err[1], -ENOENT);
    assert_int_equal(err[2], -EINVAL);
    assert_int_equal(err[3], 0);
    assert_int_equal(last.prot, PROT_READ | PROT_WRITE);
    assert_int_equal(last.flags, 0);
    assert_null(last.addr);
    assert_int_equal(last.domid, DOMID);
    assert_int_equal(xen_unmap(*state, p, 4), 0);
}

static void test_map_failure_returns_errno_and_message(void **state)
{
    xen_pfn_t gfns[2] = { 0x1234, 0x1235 };
    int err[2], ret = 0;

    fail_next("xenforeignmemory_map2", EFAULT);
    assert_null(xen_map(*state, gfns, 2, false, err, &ret));
    assert_int_equal(ret, -EFAULT);
    assert_string_equal(xen_last_error(), "xenforeignmemory_map2(domid 7, "
                        "gfn 0x1234, 2 pages): Bad address");
}

static void test_map_read_only_asks_for_prot_read(void **state)
{
    xen_pfn_t gfn = 1;
    int err, ret;
    void *p = xen_map(*state, &gfn, 1, false, &err, &ret);

    assert_non_null(p);
    assert_int_equal(last.prot, PROT_READ);
    xen_unmap(*state, p, 1);
}

static void test_map_at_places_the_mapping_with_map_fixed(void **state)
{
    void *want = mmap(NULL, 2 * XR_PAGE_SIZE, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    xen_pfn_t gfns[2] = { 5, 6 };
    int err[2], ret;
    void *p;

    p = xen_map_at(*state, want, gfns, 2, true, err, &ret);
    assert_ptr_equal(p, want);
    assert_ptr_equal(last.addr, want);
    assert_true(last.flags & MAP_FIXED);
    xen_unmap(*state, p, 2);
}

static void test_map_of_no_frames_is_einval(void **state)
{
    int err, ret = 0;

    assert_null(xen_map(*state, NULL, 0, true, &err, &ret));
    assert_int_equal(ret, -EINVAL);
}

static void test_unmap_failure_is_reported(void **state)
{
    fail_next("xenforeignmemory_unmap", EINVAL);
    assert_int_equal(xen_unmap(*state, (void *)0x10000, 3), -EINVAL);
    assert_non_null(strstr(xen_last_error(), "xenforeignmemory_unmap(domid 7"));
}

static void test_populate_asks_for_every_frame(void **state)
{
    assert_int_equal(xen_populate(*state, 0xf0000, 256), 0);
    assert_int_equal(last.first, 0xf0000);
    assert_int_equal(last.n, 256);
    assert_int_equal(last.mode, 0);    /* extent order 0: single frames */
}

static void test_populate_enomem_names_call_domain_and_range(void **state)
{
    fail_next("xc_domain_populate_physmap_exact", ENOMEM);
    assert_int_equal(xen_populate(*state, 0xf0000, 256), -ENOMEM);
    assert_string_equal(xen_last_error(),
                        "xc_domain_populate_physmap_exact(domid 7, gfn "
                        "0xf0000, 256 pages): Cannot allocate memory");
}

static void test_depopulate_releases_every_frame(void **state)
{
    assert_int_equal(xen_depopulate(*state, 0x100, 16), 0);
    assert_int_equal(last.first, 0x100);
    assert_int_equal(last.n, 16);

    fail_next("xc_domain_decrease_reservation_exact", EBUSY);
    assert_int_equal(xen_depopulate(*state, 0x100, 16), -EBUSY);
    assert_string_equal(xen_last_error(),
                        "xc_domain_decrease_reservation_exact(domid 7, gfn "
                        "0x100, 16 pages): Device or resource busy");
}

/* 2^16 frames a hypercall, as xen.c walks a range. */
#define CHUNK 0x10000ul

static void test_populate_walks_a_large_range_in_bounded_chunks(void **state)
{
    assert_int_equal(xen_populate(*state, 0x100000, 2 * CHUNK + 3), 0);
    assert_int_equal(n_resv, 3);
    assert_int_equal(resv[0].first, 0x100000);
    assert_int_equal(resv[0].n, CHUNK);
    assert_int_equal(resv[1].first, 0x100000 + CHUNK);
    assert_int_equal(resv[2].first, 0x100000 + 2 * CHUNK);
    assert_int_equal(resv[2].n, 3);
}

static void test_populate_failure_keeps_the_chunks_before_it(void **state)
{
    populate_ok = 1;
    fail_next("xc_domain_populate_physmap_exact", ENOMEM);
    assert_int_equal(xen_populate(*state, 0x100000, 3 * CHUNK), -ENOMEM);
    /* Stops at the refused chunk and releases nothing: the caller's call. */
    assert_int_equal(n_resv, 2);
    assert_int_equal(resv[1].op, 'p');
    assert_string_equal(xen_last_error(),
                        "xc_domain_populate_physmap_exact(domid 7, gfn "
                        "0x110000, 65536 pages): Cannot allocate memory");
}

static void test_populate_all_releases_the_refused_chunk_then_those_before(
    void **state)
{
    populate_ok = 1;
    fail_next("xc_domain_populate_physmap_exact", ENOMEM);
    /* Nothing of the refused chunk was there to release. */
    decrease_err = EINVAL;
    assert_int_equal(xen_populate_all(*state, 0x100000, CHUNK + CHUNK / 2),
                     -ENOMEM);
    assert_int_equal(n_resv, 4);
    assert_int_equal(resv[2].op, 'd');
    assert_int_equal(resv[2].first, 0x100000 + CHUNK);
    assert_int_equal(resv[2].n, CHUNK / 2);
    assert_int_equal(resv[3].op, 'd');
    assert_int_equal(resv[3].first, 0x100000);
    assert_int_equal(resv[3].n, CHUNK);
    /* The populate's failure, not the undo's. */
    assert_string_equal(xen_last_error(),
                        "xc_domain_populate_physmap_exact(domid 7, gfn "
                        "0x110000, 32768 pages): Cannot allocate memory");
}

static void test_depopulate_tries_every_chunk_and_returns_the_first_error(
    void **state)
{
    decrease_err = EBUSY;
    assert_int_equal(xen_depopulate(*state, 0x100000, 2 * CHUNK), -EBUSY);
    assert_int_equal(n_resv, 2);
    assert_int_equal(resv[1].first, 0x100000 + CHUNK);
}

/* ---- log-dirty ------------------------------------------------------------------ */

static void test_logdirty_enable_and_disable(void **state)
{
    assert_int_equal(xen_logdirty_enable(*state), 0);
    assert_int_equal(last.op, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    assert_int_equal(xen_logdirty_disable(*state), 0);
    assert_int_equal(last.op, XEN_DOMCTL_SHADOW_OP_OFF);
}

/* On already (EINVAL): OFF, then ENABLE again, as libxc's save does. */
static void test_logdirty_left_on_is_turned_off_and_on_again(void **state)
{
    enable_busy = 1;
    assert_int_equal(xen_logdirty_enable(*state), 0);
    assert_int_equal(n_shadow_ops, 3);
    assert_int_equal(shadow_ops[0], XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    assert_int_equal(shadow_ops[1], XEN_DOMCTL_SHADOW_OP_OFF);
    assert_int_equal(shadow_ops[2], XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY);
    /* Refused twice: the second refusal is what is reported. */
    n_shadow_ops = 0;
    enable_busy = 2;
    assert_int_equal(xen_logdirty_enable(*state), -EINVAL);
    assert_string_equal(xen_last_error(), "xc_shadow_control(domid 7, "
                        "ENABLE_LOGDIRTY): Invalid argument");
}

static void test_logdirty_enable_failure_is_reported(void **state)
{
    fail_next("xc_shadow_control", EOPNOTSUPP);
    assert_int_equal(xen_logdirty_enable(*state), -EOPNOTSUPP);
    assert_string_equal(xen_last_error(), "xc_shadow_control(domid 7, "
                        "ENABLE_LOGDIRTY): Operation not supported");
}

static void test_logdirty_final_clean_copies_bitmap_and_stats(void **state)
{
    unsigned long bm[2] = { 0, 0 };
    XenLogDirtyStats st;

    dirty_words[0] = 0x8000000000000001UL;
    dirty_words[1] = ~0UL;          /* beyond the 100 pages asked for too */
    dirty_count = 42;
    assert_int_equal(xen_logdirty_read(*state, bm, 100, true, true, &st), 0);
    assert_int_equal(last.op, XEN_DOMCTL_SHADOW_OP_CLEAN);
    assert_int_equal(last.mode, XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL);
    assert_int_equal(last.n, 100);
    assert_int_equal(bm[0], 0x8000000000000001UL);
    assert_int_equal(bm[1], (1UL << 36) - 1);   /* pages 64..99 only */
    assert_int_equal(st.dirty_count, 42);
    assert_int_equal(st.fault_count, 3);
}

static void test_logdirty_peek_leaves_the_log_alone(void **state)
{
    unsigned long bm[1];

    assert_int_equal(xen_logdirty_read(*state, bm, 64, false, false, NULL), 0);
    assert_int_equal(last.op, XEN_DOMCTL_SHADOW_OP_PEEK);
    assert_int_equal(last.mode, 0);
}

static void test_logdirty_read_failure_is_reported(void **state)
{
    unsigned long bm[2];

    fail_next("xc_logdirty_control", EOPNOTSUPP);
    assert_int_equal(xen_logdirty_read(*state, bm, 100, false, false, NULL),
                     -EOPNOTSUPP);
    assert_string_equal(xen_last_error(), "xc_logdirty_control(domid 7, "
                        "PEEK, 100 pages): Operation not supported");
}

static void test_logdirty_buffer_failure_makes_no_call(void **state)
{
    unsigned long bm[1];

    fail_next("xc__hypercall_buffer_alloc_pages", ENOMEM);
    assert_int_equal(xen_logdirty_read(*state, bm, 64, true, false, NULL),
                     -ENOMEM);
    assert_int_equal(last.calls, 0);
}

static void test_track_dirty_vram_passes_enodata_on(void **state)
{
    unsigned long bm[1];

    fail_next("xendevicemodel_track_dirty_vram", ENODATA);
    assert_int_equal(xen_track_dirty_vram(*state, 0xf0000, 64, bm), -ENODATA);
    assert_int_equal(last.first, 0xf0000);
    assert_int_equal(last.n, 64);
}

static void test_modified_memory_bulk_sends_all_extents_at_once(void **state)
{
    struct xen_dm_op_modified_memory_extent ext[3] = {
        { .first_pfn = 10, .nr = 1 }, { .first_pfn = 20, .nr = 2 },
        { .first_pfn = 40, .nr = 4 },
    };

    assert_int_equal(xen_modified_memory_bulk(*state, ext, 3), 0);
    assert_int_equal(last.calls, 1);
    assert_int_equal(last.n, 3);
    assert_int_equal(last.first, 10);
}

static void test_modified_memory_bulk_einval_is_reported(void **state)
{
    struct xen_dm_op_modified_memory_extent ext = { .first_pfn = 0x99,
                                                    .nr = 1 };

    fail_next("xendevicemodel_modified_memory_bulk", EINVAL);
    assert_int_equal(xen_modified_memory_bulk(*state, &ext, 1), -EINVAL);
    assert_string_equal(xen_last_error(),
                        "xendevicemodel_modified_memory_bulk(domid 7, 1 "
                        "extents from pfn 0x99): Invalid argument");
}

static void test_modified_memory_bulk_esrch_when_domain_gone(void **state)
{
    struct xen_dm_op_modified_memory_extent ext = { .first_pfn = 1, .nr = 1 };

    fail_next("xendevicemodel_modified_memory_bulk", ESRCH);
    assert_int_equal(xen_modified_memory_bulk(*state, &ext, 1), -ESRCH);
}

static void test_modified_memory_bulk_of_nothing_makes_no_call(void **state)
{
    assert_int_equal(xen_modified_memory_bulk(*state, NULL, 0), 0);
    assert_int_equal(last.calls, 0);
}

/* ---- ioreq server, xenstore ----------------------------------------------------- */

static void test_ioreq_server_without_buffered_ioreqs(void **state)
{
    ioservid_t id = 0;

    assert_int_equal(xen_ioreq_server_create(*state, &id), 0);
    assert_int_equal(id, 3);
    assert_int_equal(last.mode, HVM_IOREQSRV_BUFIOREQ_OFF);
    assert_int_equal(xen_ioreq_server_set_enabled(*state, id, true), 0);
    assert_int_equal(last.mode, 1);
    assert_int_equal(xen_ioreq_map_range(*state, id, true, 0xfe000000,
                                         0xfeffffff), 0);
    assert_int_equal(last.mode, 1);
    assert_int_equal(last.first, 0xfe000000);
    assert_int_equal(xen_ioreq_unmap_range(*state, id, false, 0x3f8, 0x3ff),
                     0);
    assert_int_equal(last.mode, 0);
    assert_int_equal(xen_ioreq_server_destroy(*state, id), 0);
    assert_int_equal(last.op, 3);
}

static void test_ioreq_map_range_failure_names_the_range(void **state)
{
    fail_next("xendevicemodel_map_io_range_to_ioreq_server", EEXIST);
    assert_int_equal(xen_ioreq_map_range(*state, 3, true, 0xfe000000,
                                         0xfeffffff), -EEXIST);
    assert_string_equal(xen_last_error(),
                        "xendevicemodel_map_io_range_to_ioreq_server(domid 7, "
                        "server 3, mmio 0xfe000000-0xfeffffff): File exists");
}

static void test_xs_read_returns_the_value(void **state)
{
    int ret = 1;
    char *v = xen_xs_read(*state, "/local/domain/7/name", &ret);

    assert_string_equal(v, "running");
    assert_int_equal(ret, 0);
    free(v);
}

static void test_xs_read_of_a_missing_path_is_enoent(void **state)
{
    int ret = 0;

    fail_next("xs_read", ENOENT);
    assert_null(xen_xs_read(*state, "/nope", &ret));
    assert_int_equal(ret, -ENOENT);
    assert_string_equal(xen_last_error(),
                        "xs_read(domid 7, /nope): No such file or directory");
}

static void test_xs_write_and_rm(void **state)
{
    const char *path = "/local/domain/0/device-model/7/state";

    assert_int_equal(xen_xs_write(*state, path, "running"), 0);
    assert_string_equal(last.path, path);
    assert_string_equal(last.value, "running");
    assert_int_equal(xen_xs_rm(*state, path), 0);
    fail_next("xs_write", EACCES);
    assert_int_equal(xen_xs_write(*state, path, "x"), -EACCES);
}

static void test_xenstore_calls_without_xenstore_are_enotconn(void **state)
{
    XenHandles *xh;
    int ret = 0;

    (void)state;
    assert_int_equal(xen_open(DOMID, XEN_OPEN_NO_XENSTORE, &xh, NULL, 0), 0);
    assert_null(xen_xs_read(xh, "/a", &ret));
    assert_int_equal(ret, -ENOTCONN);
    assert_int_equal(xen_xs_write(xh, "/a", "b"), -ENOTCONN);
    assert_int_equal(xen_xs_rm(xh, "/a"), -ENOTCONN);
    xen_close(xh);
}

#define T(fn)  cmocka_unit_test_setup(fn, reset)
#define TD(fn) cmocka_unit_test_setup_teardown(fn, open_dom, close_dom)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_checks_the_domain_and_keeps_the_domid),
        T(test_open_without_xenstore_does_not_connect),
        T(test_open_of_an_unknown_domid_is_esrch),
        T(test_open_does_not_take_the_next_domain_for_the_asked_one),
        T(test_open_reports_xc_interface_open_failure),
        T(test_open_failing_half_way_closes_what_it_opened),
        T(test_open_failing_at_xenstore_closes_everything),
        T(test_failure_without_errno_is_eio),
        TD(test_failures_are_logged),
        TD(test_last_error_is_per_thread),
        TD(test_restrict_restricts_every_handle_to_the_domain),
        TD(test_restrict_failure_is_reported),
        TD(test_domain_info_reports_pages_and_flags),
        TD(test_pause_and_unpause_name_the_domain),
        TD(test_map_reports_frames_that_failed_as_negative_errno),
        TD(test_map_failure_returns_errno_and_message),
        TD(test_map_read_only_asks_for_prot_read),
        TD(test_map_at_places_the_mapping_with_map_fixed),
        TD(test_map_of_no_frames_is_einval),
        TD(test_unmap_failure_is_reported),
        TD(test_populate_asks_for_every_frame),
        TD(test_populate_enomem_names_call_domain_and_range),
        TD(test_depopulate_releases_every_frame),
        TD(test_populate_walks_a_large_range_in_bounded_chunks),
        TD(test_populate_failure_keeps_the_chunks_before_it),
        TD(test_populate_all_releases_the_refused_chunk_then_those_before),
        TD(test_depopulate_tries_every_chunk_and_returns_the_first_error),
        TD(test_logdirty_enable_and_disable),
        TD(test_logdirty_left_on_is_turned_off_and_on_again),
        TD(test_logdirty_enable_failure_is_reported),
        TD(test_logdirty_final_clean_copies_bitmap_and_stats),
        TD(test_logdirty_peek_leaves_the_log_alone),
        TD(test_logdirty_read_failure_is_reported),
        TD(test_logdirty_buffer_failure_makes_no_call),
        TD(test_track_dirty_vram_passes_enodata_on),
        TD(test_modified_memory_bulk_sends_all_extents_at_once),
        TD(test_modified_memory_bulk_einval_is_reported),
        TD(test_modified_memory_bulk_esrch_when_domain_gone),
        TD(test_modified_memory_bulk_of_nothing_makes_no_call),
        TD(test_ioreq_server_without_buffered_ioreqs),
        TD(test_ioreq_map_range_failure_names_the_range),
        TD(test_xs_read_returns_the_value),
        TD(test_xs_read_of_a_missing_path_is_enoent),
        TD(test_xs_write_and_rm),
        TD(test_xenstore_calls_without_xenstore_are_enotconn),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
