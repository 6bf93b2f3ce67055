/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-paging.c - xenram's pager (xen/paging.c) against a fake of Xen
 * 4.17's paging interface (test-paging-fake.h): start and its cleanup,
 * the ring thread's answers, evict, load and stop.
 *
 * Waiting is on the pager's own signals (its event channel
 * notifications, the fault callback); a wait that never ends fails the
 * test after 10 s.
 */
#include <inttypes.h>
#include <sched.h>

#include "tests/unit/test-paging-fake.h"

/* ---- the fault callback ------------------------------------------------------ */

typedef struct Fault {
    uint64_t gfn;
    bool paused;
    uint32_t vcpu;
} Fault;

/* The asks (@faults), and the calls that only name one more vCPU. */
static Fault faults[64], waits[64];
static unsigned int nfaults, nwaits;
static XenPager *load_in_callback;      /* load each frame as it is asked */

static void on_fault(void *opaque, const XenPagerFault *f)
{
    Fault rec = { f->gfn, f->vcpu != XEN_PAGER_NO_VCPU, f->vcpu };

    assert_ptr_equal(opaque, &fx);
    /* Xen's vcpu_id is bounded before it reaches anyone. */
    assert_true(f->vcpu == XEN_PAGER_NO_VCPU || f->vcpu < FAKE_NR_VCPUS);
    pthread_mutex_lock(&fx.lock);
    if (!f->ask) {
        /* Only a vCPU that waits is worth a call that asks nothing. */
        assert_true(rec.paused);
        if (nwaits < ARRAY_SIZE(waits)) {
            waits[nwaits] = rec;
        }
        nwaits++;
    } else {
        if (nfaults < ARRAY_SIZE(faults)) {
            faults[nfaults] = rec;
        }
        nfaults++;
    }
    pthread_cond_broadcast(&fx.cond);
    pthread_mutex_unlock(&fx.lock);
    if (load_in_callback && f->ask) {
        assert_int_equal(xen_pager_load(load_in_callback, f->gfn, NULL), 0);
    }
}

static unsigned int waits_now(void)
{
    unsigned int n;

    pthread_mutex_lock(&fx.lock);
    n = nwaits;
    pthread_mutex_unlock(&fx.lock);
    return n;
}

static unsigned int faults_now(void)
{
    unsigned int n;

    pthread_mutex_lock(&fx.lock);
    n = nfaults;
    pthread_mutex_unlock(&fx.lock);
    return n;
}

static void wait_faults(unsigned int n)
{
    struct timespec dl;

    fake_deadline(&dl, 10);
    pthread_mutex_lock(&fx.lock);
    while (nfaults < n) {
        if (pthread_cond_timedwait(&fx.cond, &fx.lock, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&fx.lock);
            fail_msg("%u of %u fault calls after 10 s", nfaults, n);
        }
    }
    pthread_mutex_unlock(&fx.lock);
}

/*
 * Wait until the ring thread has taken @n requests in all: it answers
 * some at once and only queues others, so its counter is what tells.
 * Spins on the counter (yielding), with the same 10 s bound.
 */
static void wait_taken(XenPager *p, uint64_t n)
{
    struct timespec t0, t;
    XenPagerStats st;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        xen_pager_stats(p, &st);
        if (st.requests >= n) {
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 10) {
            fail_msg("%" PRIu64 " of %" PRIu64 " requests taken after 10 s",
                     st.requests, n);
        }
        sched_yield();
    }
}

static char last_msg[256];

static void log_msg(const char *msg)
{
    snprintf(last_msg, sizeof(last_msg), "%s", msg);
}

/* ---- fixtures ------------------------------------------------------------------ */

typedef struct T {
    XenHandles *xh;
    XenPager *p;
} T;

static int setup_handles(void **state)
{
    T *t = calloc(1, sizeof(*t));

    fake_reset(false);
    nfaults = nwaits = 0;
    load_in_callback = NULL;
    xen_set_error_log(log_msg);
    t->xh = fake_open();
    *state = t;
    return 0;
}

static int setup(void **state)
{
    T *t;

    setup_handles(state);
    t = *state;
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), 0);
    fx.ncalls = 0;
    return 0;
}

static int teardown(void **state)
{
    T *t = *state;

    if (t->p) {
        assert_int_equal(xen_pager_stop(t->p, true), 0);
    }
    fake_assert_nothing_left();
    xen_close(t->xh);
    free(t);
    return 0;
}

static void evict(XenPager *p, uint64_t gfn, uint64_t nr)
{
    uint64_t done = ~0ULL;

    assert_int_equal(xen_pager_evict(p, gfn, nr, &done), 0);
    assert_int_equal(done, nr);
}

/* ---- start and stop ------------------------------------------------------------ */

static void test_start_follows_xenpagings_order_and_stop_undoes_it(
    void **state)
{
    T *t = *state;
    vm_event_sring_t *s = (vm_event_sring_t *)fx.ring_page;

    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), 0);
    /*
     * The probe map fails on the frame with no page: populate, map
     * again, enable, then out of the guest's physmap, then the port.
     */
    assert_string_equal(fake_calls(), "max_gpfn param map unmap populate "
                        "map enable decrease evtchn_open bind");
    assert_true(fx.enabled);
    assert_false(fx.ring_populated);
    assert_int_equal(fx.mapped, 1);
    assert_int_equal(fx.bound, 1);
    /* SHARED_RING_INIT over what the page held. */
    assert_int_equal(__atomic_load_n(&s->req_prod, __ATOMIC_ACQUIRE), 0);
    assert_int_equal(__atomic_load_n(&s->rsp_prod, __ATOMIC_ACQUIRE), 0);
    /* The ring thread, finding it empty, asks for the next request. */
    assert_int_equal(__atomic_load_n(&s->req_event, __ATOMIC_ACQUIRE), 1);
    assert_int_equal(__atomic_load_n(&s->rsp_event, __ATOMIC_ACQUIRE), 1);

    fx.ncalls = 0;
    assert_int_equal(xen_pager_stop(t->p, false), 0);
    t->p = NULL;
    assert_string_equal(fake_calls(), "disable unbind evtchn_close unmap");
    fake_assert_nothing_left();
}

static void test_start_maps_a_ring_frame_that_has_a_page_directly(
    void **state)
{
    T *t = *state;

    fx.ring_populated = true;
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), 0);
    assert_string_equal(fake_calls(), "max_gpfn param map enable decrease "
                        "evtchn_open bind");
    assert_false(fx.ring_populated);
}

static void test_start_leaves_nothing_behind_when_any_call_fails(void **state)
{
    static const struct {
        const char *call;
        unsigned int nth;
    } steps[] = {
        { "max_gpfn", 1 }, { "param", 1 }, { "populate", 1 }, { "map", 2 },
        { "enable", 1 }, { "decrease", 1 }, { "evtchn_open", 1 },
        { "bind", 1 },
    };
    T *t = *state;

    for (unsigned int i = 0; i < ARRAY_SIZE(steps); i++) {
        XenPager *p = (XenPager *)1;

        fake_reset(false);
        fake_fail(steps[i].call, steps[i].nth, EIO);
        last_msg[0] = '\0';
        assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &p), -EIO);
        assert_null(p);
        fake_assert_nothing_left();
        /* The page we gave the frame went back with the rest. */
        if (fx.ring_populated) {
            fail_msg("%s failing left the ring frame populated (%s)",
                     steps[i].call, fake_calls());
        }
        assert_int_not_equal(last_msg[0], '\0');
        assert_non_null(strstr(xen_last_error(), "domid 7"));
    }
    /* A frame that had its page before keeps it if enable fails. */
    fake_reset(true);
    fake_fail("enable", 1, EIO);
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), -EIO);
    assert_true(fx.ring_populated);
    fake_assert_nothing_left();
}

static void test_start_names_the_failing_call(void **state)
{
    T *t = *state;

    fake_fail("bind", 1, EPERM);
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), -EPERM);
    assert_non_null(strstr(xen_last_error(),
                           "xenevtchn_bind_interdomain(domid 7"));
    assert_non_null(strstr(xen_last_error(), "paging port 42"));
}

static void test_enosys_says_the_hypervisor_lacks_mem_paging(void **state)
{
    T *t = *state;

    fake_fail("enable", 1, ENOSYS);
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p), -ENOSYS);
    assert_null(t->p);
    assert_non_null(strstr(xen_last_error(), "without CONFIG_MEM_PAGING"));
    assert_non_null(strstr(xen_last_error(), "xc_mem_paging_enable"));
    fake_assert_nothing_left();
}

static void test_a_domain_without_a_ring_frame_is_refused(void **state)
{
    T *t = *state;

    fx.ring_param = 0;
    assert_int_equal(xen_pager_start(t->xh, on_fault, &fx, &t->p),
                     -EOPNOTSUPP);
    assert_non_null(strstr(xen_last_error(), "HVM_PARAM_PAGING_RING_PFN"));
    assert_string_equal(fake_calls(), "max_gpfn param");
}

/* ---- the ring thread --------------------------------------------------------------- */

static void test_each_frame_goes_to_the_fault_callback_once(void **state)
{
    T *t = *state;
    vm_event_response_t rsp[4];

    evict(t->p, 0x100, 4);
    assert_true(fake_fault(0x100, 0, true));
    assert_true(fake_fault(0x100, 1, true));
    assert_true(fake_fault(0x100, 5, false));       /* a foreign mapping */
    assert_true(fake_fault(0x101, 1, true));
    wait_taken(t->p, 4);
    assert_int_equal(faults_now(), 2);
    assert_int_equal(faults[0].gfn, 0x100);
    assert_true(faults[0].paused);
    assert_int_equal(faults[0].vcpu, 0);
    assert_int_equal(faults[1].gfn, 0x101);
    assert_int_equal(faults[1].vcpu, 1);
    /* Nobody is answered before the frame is in. */
    assert_int_equal(fake_responses_now(rsp, 4), 0);
}

static void test_each_paused_vcpu_is_named_to_the_callback(void **state)
{
    T *t = *state;

    evict(t->p, 0x100, 1);
    assert_true(fake_fault(0x100, 3, true));
    assert_true(fake_fault(0x100, 5, false));       /* a foreign mapping */
    assert_true(fake_fault(0x100, 2, true));
    wait_taken(t->p, 3);
    /* One ask, with the first vCPU; the second only named, the foreign
     * mapper's vCPU (another domain's) never. */
    assert_int_equal(faults_now(), 1);
    assert_int_equal(faults[0].gfn, 0x100);
    assert_int_equal(faults[0].vcpu, 3);
    assert_int_equal(waits_now(), 1);
    assert_int_equal(waits[0].gfn, 0x100);
    assert_int_equal(waits[0].vcpu, 2);
}

static void test_a_foreign_request_names_no_vcpu(void **state)
{
    T *t = *state;

    evict(t->p, 0x100, 1);
    assert_true(fake_fault(0x100, 1, false));
    wait_faults(1);
    assert_int_equal(faults[0].gfn, 0x100);
    assert_false(faults[0].paused);
    assert_int_equal(faults[0].vcpu, XEN_PAGER_NO_VCPU);
}

static void test_a_vcpu_id_beyond_the_domains_is_not_passed_on(void **state)
{
    T *t = *state;
    vm_event_response_t rsp[2];
    XenPagerStats st;

    evict(t->p, 0x100, 1);
    assert_true(fake_fault(0x100, FAKE_NR_VCPUS, true));
    assert_true(fake_fault(0x100, UINT32_MAX - 1, true));
    wait_taken(t->p, 2);
    /* The frame is asked for all the same, with no vCPU to charge. */
    assert_int_equal(faults_now(), 1);
    assert_int_equal(faults[0].vcpu, XEN_PAGER_NO_VCPU);
    assert_int_equal(waits_now(), 0);
    assert_non_null(strstr(last_msg, "beyond the domain's 8 vCPUs"));
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.bad_vcpu, 2);
    /* Still answered, with the ids Xen sent (Xen checks them). */
    assert_int_equal(xen_pager_load(t->p, 0x100, NULL), 0);
    fake_wait_responses(rsp, 2);
    assert_int_equal(rsp[0].vcpu_id, FAKE_NR_VCPUS);
    assert_int_equal(rsp[1].vcpu_id, UINT32_MAX - 1);
}

static void test_a_load_answers_every_request_for_its_frame(void **state)
{
    T *t = *state;
    uint8_t page[4096] = { 0 };
    vm_event_response_t rsp[3];
    XenPagerStats st;

    evict(t->p, 0x100, 2);
    assert_true(fake_fault(0x100, 0, true));
    assert_true(fake_fault(0x100, 1, true));
    assert_true(fake_fault(0x100, 5, false));
    assert_true(fake_fault(0x101, 0, true));
    wait_taken(t->p, 4);
    memcpy(page, &(uint64_t){ 0x1122334455667788ULL }, 8);
    assert_int_equal(xen_pager_load(t->p, 0x100, page), 0);
    fake_wait_responses(rsp, 3);
    for (unsigned int i = 0; i < 3; i++) {
        assert_int_equal(rsp[i].version, VM_EVENT_INTERFACE_VERSION);
        assert_int_equal(rsp[i].reason, VM_EVENT_REASON_MEM_PAGING);
        assert_int_equal(rsp[i].u.mem_paging.gfn, 0x100);
        assert_int_equal(rsp[i].u.mem_paging.flags, 0);
    }
    /* Each with its own vCPU and flags: VCPU_PAUSED resumes the vCPU. */
    assert_int_equal(rsp[0].vcpu_id, 0);
    assert_int_equal(rsp[0].flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(rsp[1].vcpu_id, 1);
    assert_int_equal(rsp[1].flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(rsp[2].vcpu_id, 5);
    assert_int_equal(rsp[2].flags, 0);          /* FOREIGN not echoed */
    assert_int_equal(fx.content[0x100], 0x1122334455667788ULL);
    assert_int_equal(fx.state[0x100], P2M_RAM);
    assert_false(xen_pager_is_paged_out(t->p, 0x100));
    assert_true(xen_pager_is_paged_out(t->p, 0x101));
    /* 0x101 still waits. */
    assert_int_equal(fake_responses_now(rsp, 1), 0);
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.requests, 4);
    assert_int_equal(st.vcpu_faults, 3);
    assert_int_equal(st.answered, 3);
    assert_int_equal(st.waited, 3);
    assert_int_equal(st.loaded, 1);
    assert_int_equal(st.paged_out, 1);
    assert_true(st.wait_ns_max <= st.wait_ns_total);
    assert_int_equal(xen_pager_load(t->p, 0x101, NULL), 0);
    fake_wait_responses(rsp, 1);
    assert_int_equal(rsp[0].u.mem_paging.gfn, 0x101);
    assert_int_equal(fx.content[0x101], 0);     /* NULL: zeros */
}

static void test_a_request_for_a_loaded_frame_is_answered_at_once(
    void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0x200, 1);
    assert_int_equal(xen_pager_load(t->p, 0x200, NULL), 0);
    /* Xen queued it before the load; it arrives after. */
    assert_true(fake_fault(0x200, 2, true));
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.u.mem_paging.gfn, 0x200);
    assert_int_equal(rsp.vcpu_id, 2);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(faults_now(), 0);
}

static void test_a_gfn_out_of_range_is_answered_and_counted(void **state)
{
    T *t = *state;
    vm_event_response_t rsp[2];
    XenPagerStats st;

    assert_true(fake_fault(FAKE_NR_FRAMES, 0, true));
    assert_true(fake_fault(1ULL << 60, 1, true));
    fake_wait_responses(rsp, 2);
    assert_int_equal(rsp[0].u.mem_paging.gfn, FAKE_NR_FRAMES);
    assert_int_equal(rsp[1].u.mem_paging.gfn, 1ULL << 60);
    assert_int_equal(faults_now(), 0);
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.out_of_range, 2);
    assert_non_null(strstr(last_msg, "beyond the last frame 0xfffff"));
    assert_false(xen_pager_is_paged_out(t->p, 1ULL << 60));
}

static void test_a_request_of_another_version_is_answered_not_acted_on(
    void **state)
{
    T *t = *state;
    vm_event_request_t req;
    vm_event_response_t rsp[2];
    XenPagerStats st;

    evict(t->p, 0x300, 1);
    memset(&req, 0, sizeof(req));
    req.version = VM_EVENT_INTERFACE_VERSION - 1;
    req.reason = VM_EVENT_REASON_MEM_PAGING;
    req.flags = VM_EVENT_FLAG_VCPU_PAUSED | VM_EVENT_FLAG_EMULATE;
    req.vcpu_id = 3;
    req.u.mem_paging.gfn = 0x300;
    assert_true(fake_put_request_raw(&req));
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.reason = VM_EVENT_REASON_MEM_ACCESS;
    assert_true(fake_put_request_raw(&req));
    fake_wait_responses(rsp, 2);
    /* The slot goes back to Xen; nothing else happens. */
    assert_int_equal(rsp[0].vcpu_id, 3);
    assert_int_equal(rsp[0].flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(faults_now(), 0);
    assert_true(xen_pager_is_paged_out(t->p, 0x300));
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.requests, 2);
}

static void test_a_dropped_frame_is_no_longer_paged_out(void **state)
{
    T *t = *state;
    vm_event_request_t req;
    vm_event_response_t rsp;
    XenPagerStats st;

    evict(t->p, 0x600, 1);
    memset(&req, 0, sizeof(req));
    req.version = VM_EVENT_INTERFACE_VERSION;
    req.reason = VM_EVENT_REASON_MEM_PAGING;
    req.flags = VM_EVENT_FLAG_FOREIGN;
    req.u.mem_paging.gfn = 0x600;
    req.u.mem_paging.flags = MEM_PAGING_DROP_PAGE;
    assert_true(fake_put_request_raw(&req));
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.u.mem_paging.flags, MEM_PAGING_DROP_PAGE);
    assert_false(xen_pager_is_paged_out(t->p, 0x600));
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.paged_out, 0);
    assert_int_equal(faults_now(), 0);
    assert_int_equal(xen_pager_stop(t->p, false), 0);
    t->p = NULL;
}

static void test_a_callback_may_load_its_frame_at_once(void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0x700, 1);
    load_in_callback = t->p;
    assert_true(fake_fault(0x700, 0, true));
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.u.mem_paging.gfn, 0x700);
    assert_int_equal(fx.state[0x700], P2M_RAM);
    load_in_callback = NULL;
}

/* ---- evict -------------------------------------------------------------------------- */

static void test_evict_stops_at_the_first_refused_frame(void **state)
{
    T *t = *state;
    uint64_t done = 0;
    XenPagerStats st;

    fx.state[0x305] = P2M_BUSY;                 /* a foreign mapping of it */
    assert_int_equal(xen_pager_evict(t->p, 0x300, 10, &done), -EBUSY);
    assert_int_equal(done, 5);
    for (uint64_t g = 0x300; g < 0x305; g++) {
        assert_true(xen_pager_is_paged_out(t->p, g));
        assert_int_equal(fx.state[g], P2M_PAGED);
    }
    assert_false(xen_pager_is_paged_out(t->p, 0x305));
    assert_false(xen_pager_is_paged_out(t->p, 0x306));
    assert_non_null(strstr(xen_last_error(), "xc_mem_paging_nominate"));
    assert_non_null(strstr(xen_last_error(), "gfn 0x305"));
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.evicted, 5);
    assert_int_equal(st.paged_out, 5);

    /* An evict that fails after the nomination unmarks the frame. */
    fake_fail("evict", 1, ENOMEM);
    assert_int_equal(xen_pager_evict(t->p, 0x400, 2, &done), -ENOMEM);
    assert_int_equal(done, 0);
    assert_false(xen_pager_is_paged_out(t->p, 0x400));
    assert_non_null(strstr(xen_last_error(), "xc_mem_paging_evict"));
}

static void test_evict_refuses_frames_beyond_the_domain(void **state)
{
    T *t = *state;
    uint64_t done = 1;

    assert_int_equal(xen_pager_evict(t->p, FAKE_NR_FRAMES - 1, 2, &done),
                     -EINVAL);
    assert_int_equal(done, 0);
    assert_int_equal(xen_pager_evict(t->p, 0, 0, &done), -EINVAL);
    assert_int_equal(xen_pager_load(t->p, FAKE_NR_FRAMES, NULL), -EINVAL);
}

/*
 * A fault between nomination and eviction: Xen tags it EVICT_FAIL and
 * evict fails.  The frame still has its page; the pager preps it (so a
 * foreign mapper sees it too) and answers without asking anyone.
 */
static XenPager *hook_pager;

static void fault_before_evict(uint64_t gfn)
{
    assert_true(fake_fault(gfn, 0, true));
    wait_taken(hook_pager, 1);
}

static void test_a_fault_between_nominate_and_evict_is_answered_at_once(
    void **state)
{
    T *t = *state;
    vm_event_response_t rsp;
    uint64_t done = 7;

    hook_pager = t->p;
    fx.hook_gfn = 0x800;
    fx.evict_hook = fault_before_evict;
    assert_int_equal(xen_pager_evict(t->p, 0x800, 1, &done), -EBUSY);
    assert_int_equal(done, 0);
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.u.mem_paging.gfn, 0x800);
    assert_int_equal(rsp.flags, VM_EVENT_FLAG_VCPU_PAUSED);
    assert_int_equal(fx.state[0x800], P2M_RAM);
    assert_false(xen_pager_is_paged_out(t->p, 0x800));
    assert_int_equal(faults_now(), 0);
    fx.evict_hook = NULL;
}

/* ---- load ----------------------------------------------------------------------------- */

static void test_a_load_of_a_frame_that_is_in_is_eexist(void **state)
{
    T *t = *state;
    XenPagerStats st;

    assert_int_equal(xen_pager_load(t->p, 0x400, NULL), -EEXIST);
    evict(t->p, 0x401, 1);
    assert_int_equal(xen_pager_load(t->p, 0x401, NULL), 0);
    assert_int_equal(xen_pager_load(t->p, 0x401, NULL), -EEXIST);
    xen_pager_stats(t->p, &st);
    assert_int_equal(st.loaded, 1);
    assert_int_equal(st.paged_out, 0);
}

static void test_an_eexist_load_still_answers_the_waiters(void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0x500, 1);
    assert_true(fake_fault(0x500, 4, true));
    wait_faults(1);
    /* The frame came back another way (p2m_add_page over it). */
    pthread_mutex_lock(&fx.lock);
    fx.state[0x500] = P2M_RAM;
    pthread_mutex_unlock(&fx.lock);
    assert_int_equal(xen_pager_load(t->p, 0x500, NULL), -EEXIST);
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.vcpu_id, 4);
    assert_false(xen_pager_is_paged_out(t->p, 0x500));
    assert_int_equal(xen_pager_stop(t->p, false), 0);
    t->p = NULL;
}

/* A request that arrives while its frame's load is in flight. */
static void fault_during_load(uint64_t gfn)
{
    XenPagerStats st;

    xen_pager_stats(hook_pager, &st);
    assert_true(fake_fault(gfn, 6, true));
    wait_taken(hook_pager, st.requests + 1);
}

static void test_a_request_during_a_load_waits_for_it_unasked(void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0x900, 1);
    hook_pager = t->p;
    fx.hook_gfn = 0x900;
    fx.load_hook = fault_during_load;
    assert_int_equal(xen_pager_load(t->p, 0x900, NULL), 0);
    fake_wait_responses(&rsp, 1);
    assert_int_equal(rsp.vcpu_id, 6);
    assert_int_equal(faults_now(), 0);
    /*
     * Not asked for, but its vCPU waited: named.  The ring thread names
     * it after taking the request, and the load may answer first: wait
     * for the callback, bounded (never named still fails).
     */
    for (int i = 0; i < 5000 && waits_now() < 1; i++) {
        usleep(1000);
    }
    assert_int_equal(waits_now(), 1);
    assert_int_equal(waits[0].gfn, 0x900);
    assert_int_equal(waits[0].vcpu, 6);
    fx.load_hook = NULL;
}

static void test_a_failed_load_passes_its_waiters_on(void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0xa00, 1);
    hook_pager = t->p;
    fx.hook_gfn = 0xa00;
    fx.load_hook = fault_during_load;
    fake_fail("load", 1, ENOMEM);
    assert_int_equal(xen_pager_load(t->p, 0xa00, NULL), -ENOMEM);
    assert_non_null(strstr(xen_last_error(), "xc_mem_paging_load"));
    /* Nobody asked for it yet: now the ring thread does. */
    wait_faults(1);
    assert_int_equal(faults[0].gfn, 0xa00);
    assert_true(faults[0].paused);
    assert_int_equal(faults[0].vcpu, 6);
    fx.load_hook = NULL;
    assert_int_equal(fake_responses_now(&rsp, 1), 0);
    assert_int_equal(xen_pager_load(t->p, 0xa00, NULL), 0);
    fake_wait_responses(&rsp, 1);
    assert_int_equal(faults_now(), 1);
}

/* ---- stop ---------------------------------------------------------------------------------- */

static void test_stop_refuses_while_frames_are_paged_out_unless_forced(
    void **state)
{
    T *t = *state;
    vm_event_response_t rsp;

    evict(t->p, 0xb00, 2);
    assert_int_equal(xen_pager_stop(t->p, false), -EBUSY);
    assert_non_null(strstr(xen_last_error(), "2 frames still paged out"));
    /* Nothing changed: it still serves. */
    assert_true(fx.enabled);
    assert_true(fake_fault(0xb00, 0, true));
    wait_faults(1);
    assert_int_equal(xen_pager_load(t->p, 0xb00, NULL), 0);
    fake_wait_responses(&rsp, 1);
    assert_int_equal(xen_pager_stop(t->p, false), -EBUSY);
    assert_int_equal(xen_pager_stop(t->p, true), 0);
    t->p = NULL;
    assert_int_equal(fx.disables, 1);
}

static void test_stop_of_null_is_a_no_op(void **state)
{
    (void)state;
    assert_int_equal(xen_pager_stop(NULL, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_start_follows_xenpagings_order_and_stop_undoes_it,
            setup_handles, teardown),
        cmocka_unit_test_setup_teardown(
            test_start_maps_a_ring_frame_that_has_a_page_directly,
            setup_handles, teardown),
        cmocka_unit_test_setup_teardown(
            test_start_leaves_nothing_behind_when_any_call_fails,
            setup_handles, teardown),
        cmocka_unit_test_setup_teardown(test_start_names_the_failing_call,
                                        setup_handles, teardown),
        cmocka_unit_test_setup_teardown(
            test_enosys_says_the_hypervisor_lacks_mem_paging,
            setup_handles, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_domain_without_a_ring_frame_is_refused,
            setup_handles, teardown),
        cmocka_unit_test_setup_teardown(
            test_each_frame_goes_to_the_fault_callback_once, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_each_paused_vcpu_is_named_to_the_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_foreign_request_names_no_vcpu, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_vcpu_id_beyond_the_domains_is_not_passed_on, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_load_answers_every_request_for_its_frame, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_request_for_a_loaded_frame_is_answered_at_once, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_gfn_out_of_range_is_answered_and_counted, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_request_of_another_version_is_answered_not_acted_on,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_dropped_frame_is_no_longer_paged_out, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_callback_may_load_its_frame_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_evict_stops_at_the_first_refused_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_evict_refuses_frames_beyond_the_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_fault_between_nominate_and_evict_is_answered_at_once,
            setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_load_of_a_frame_that_is_in_is_eexist, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_eexist_load_still_answers_the_waiters, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_request_during_a_load_waits_for_it_unasked, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_a_failed_load_passes_its_waiters_on, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stop_refuses_while_frames_are_paged_out_unless_forced,
            setup, teardown),
        cmocka_unit_test(test_stop_of_null_is_a_no_op),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
