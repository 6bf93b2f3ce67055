/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-paging-concurrency.c - the pager's ring thread against a "Xen"
 * thread producing requests as fast as the ring lets it, fault-serving
 * loaders and a background loader racing them (for ThreadSanitizer: make
 * check-tsan).
 *
 * Every request carries a token in its vcpu_id (the fake domain has a
 * vCPU per token); every token must come back exactly once, with its
 * gfn, and the fault callback names the token of a paused request as
 * its vCPU.  Each frame is asked for at most once, is loaded exactly
 * once (the other loads of it are -EEXIST), and ends with the contents
 * its load gave it.
 *
 * The frames are a RAM block of the destination's postcopy state
 * (migration/postcopy.c) and every load is a postcopy_incoming_place, as
 * in the engine: LISTEN makes the missing pages absent through the
 * pager, the fault loaders and the background place concurrently with
 * the ring thread; each page is placed once, the rest counted as
 * duplicates, and END is accepted.
 */
#include <inttypes.h>

#define BASE    0x1000ULL
#define NFR     2048u           /* frames paged out */
#define NREQ    12000u          /* requests Xen makes */
#define LOADERS 2

#define FAKE_NR_VCPUS NREQ      /* every token a vCPU of the domain */

#include "migration/postcopy.h"
#include "tests/unit/test-paging-fake.h"

static XenPager *pager;
static RAMList ram;
static RAMBlock *blk;
static PostcopyIncoming pi;

/* The engine's glue (recv.c), to this pager: page p is frame BASE + p. */
static int pc_make_absent(void *opaque, RAMBlock *block, uint64_t page,
                          uint64_t npages, char *err, size_t errlen)
{
    uint64_t done = 0;
    int rc = xen_pager_evict(pager, BASE + page, npages, &done);

    (void)opaque;
    (void)block;
    if (rc)
        snprintf(err, errlen, "evict: %d", rc);
    return rc;
}

static int pc_place(void *opaque, RAMBlock *block, uint64_t page,
                    const void *data, char *err, size_t errlen)
{
    int rc = xen_pager_load(pager, BASE + page, data);

    (void)opaque;
    (void)block;
    if (rc && rc != -EEXIST)
        snprintf(err, errlen, "load: %d", rc);
    return rc;
}

static const PostcopyOps pc_ops = {
    .make_absent = pc_make_absent,
    .place = pc_place,
};

/* The frames the fault callback asked for, for the loaders. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t q[NFR + 1];
    unsigned int head, tail;
    bool closed;
    unsigned int produced;      /* requests Xen has put on the ring */
    unsigned int asked[NFR];    /* fault calls that ask, per frame */
    unsigned int named;         /* fault calls naming one more vCPU */
    unsigned int errors;        /* a load that was neither 0 nor EEXIST */
} w = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static uint64_t token_gfn[NREQ];
static unsigned int answers[NREQ];
static unsigned int stray;      /* responses with no or a wrong token */


static void on_fault(void *opaque, const XenPagerFault *f)
{
    uint64_t gfn = f->gfn;

    (void)opaque;
    pthread_mutex_lock(&w.lock);
    /* A paused request's token, for its own frame; a foreign one none. */
    if (f->vcpu != XEN_PAGER_NO_VCPU &&
        (f->vcpu >= NREQ || f->vcpu % 3 == 0 || token_gfn[f->vcpu] != gfn)) {
        w.errors++;
    }
    if (!f->ask) {
        w.named += f->vcpu != XEN_PAGER_NO_VCPU;
        if (f->vcpu == XEN_PAGER_NO_VCPU) {
            w.errors++;
        }
    } else if (gfn >= BASE && gfn < BASE + NFR) {
        w.asked[gfn - BASE]++;
        if (w.asked[gfn - BASE] == 1) {
            w.q[w.tail++] = gfn;
            pthread_cond_broadcast(&w.cond);
        }
    } else {
        w.errors++;
    }
    pthread_mutex_unlock(&w.lock);
}

static void load(uint64_t gfn)
{
    uint64_t page[512] = { gfn ^ 0x5a5a5a5aULL };
    char err[128];
    int rc = postcopy_incoming_place(&pi, blk, gfn - BASE, page, err,
                                     sizeof(err));

    if (rc != 0) {
        pthread_mutex_lock(&w.lock);
        w.errors++;
        pthread_mutex_unlock(&w.lock);
    }
}

static void *fault_loader(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&w.lock);
    for (;;) {
        uint64_t gfn;

        while (w.head == w.tail && !w.closed) {
            pthread_cond_wait(&w.cond, &w.lock);
        }
        if (w.head == w.tail) {
            break;
        }
        gfn = w.q[w.head++];
        pthread_mutex_unlock(&w.lock);
        load(gfn);
        pthread_mutex_lock(&w.lock);
    }
    pthread_mutex_unlock(&w.lock);
    return NULL;
}

/* The background stream: frame k once Xen has made k * NREQ / NFR / 2. */
static void *background_loader(void *arg)
{
    (void)arg;
    for (unsigned int k = 0; k < NFR; k++) {
        pthread_mutex_lock(&w.lock);
        while (w.produced < (uint64_t)k * NREQ / NFR / 2) {
            pthread_cond_wait(&w.cond, &w.lock);
        }
        pthread_mutex_unlock(&w.lock);
        load(BASE + k);
    }
    return NULL;
}

static void count_responses_locked(void)
{
    vm_event_response_t rsp[8];
    unsigned int n;

    while ((n = fake_take_responses_locked(rsp, 8)) > 0) {
        for (unsigned int i = 0; i < n; i++) {
            uint32_t t = rsp[i].vcpu_id;

            if (t >= NREQ || rsp[i].u.mem_paging.gfn != token_gfn[t] ||
                rsp[i].version != VM_EVENT_INTERFACE_VERSION) {
                stray++;
                continue;
            }
            answers[t]++;
        }
    }
}

static unsigned int answered_total_locked(void)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < NREQ; i++) {
        n += answers[i] > 0;
    }
    return n;
}

/* Xen: vCPUs and foreign mappers touching random paged frames. */
static void *xen_thread(void *arg)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    struct timespec dl;
    bool late = false;

    (void)arg;
    fake_deadline(&dl, 60);
    for (unsigned int i = 0; i < NREQ; i++) {
        uint64_t gfn;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        gfn = BASE + seed % NFR;
        token_gfn[i] = gfn;
        while (!fake_fault(gfn, i, i % 3 != 0)) {
            /* The ring is full: Xen waits for responses. */
            pthread_mutex_lock(&fx.lock);
            count_responses_locked();
            if (RING_FREE_REQUESTS(&fx.front) == 0 &&
                pthread_cond_timedwait(&fx.cond, &fx.lock, &dl) ==
                ETIMEDOUT) {
                late = true;
            }
            pthread_mutex_unlock(&fx.lock);
            if (late) {
                /* Let the background loader finish; the test fails. */
                pthread_mutex_lock(&w.lock);
                w.produced = NREQ;
                pthread_cond_broadcast(&w.cond);
                pthread_mutex_unlock(&w.lock);
                return NULL;
            }
        }
        pthread_mutex_lock(&w.lock);
        w.produced = i + 1;
        pthread_cond_broadcast(&w.cond);
        pthread_mutex_unlock(&w.lock);
    }
    /* The rest of the answers. */
    pthread_mutex_lock(&fx.lock);
    for (;;) {
        count_responses_locked();
        if (answered_total_locked() == NREQ ||
            pthread_cond_timedwait(&fx.cond, &fx.lock, &dl) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&fx.lock);
    return NULL;
}

static void test_every_request_is_answered_exactly_once(void **state)
{
    pthread_t xen, bg, ld[LOADERS];
    XenHandles *xh;
    XenPagerStats st;
    PostcopyStats ps;
    char err[256];
    uint64_t done = 0;
    unsigned int once = 0, asked = 0;

    (void)state;
    fake_reset(true);
    xen_set_error_log(NULL);
    xh = fake_open();
    assert_int_equal(xen_pager_start(xh, on_fault, NULL, &pager), 0);
    assert_int_equal(ram_list_init(&ram), 0);
    assert_int_equal(ram_block_add(&ram, "xen.ram", NFR * 4096ull,
                                   NFR * 4096ull, NULL, 0, NULL, &blk), 0);
    assert_int_equal(ram_block_alloc_migration_bitmaps(blk, 6), 0);
    postcopy_incoming_init(&pi, &ram, &pc_ops, NULL);
    /* Nothing received in precopy: LISTEN makes every frame absent. */
    assert_int_equal(postcopy_incoming_advise(&pi, 4096, err, sizeof(err)),
                     0);
    assert_int_equal(postcopy_incoming_listen(&pi, err, sizeof(err)), 0);
    assert_int_equal(postcopy_incoming_run(&pi, err, sizeof(err)), 0);
    (void)done;

    for (unsigned int i = 0; i < LOADERS; i++) {
        assert_int_equal(pthread_create(&ld[i], NULL, fault_loader, NULL), 0);
    }
    assert_int_equal(pthread_create(&bg, NULL, background_loader, NULL), 0);
    assert_int_equal(pthread_create(&xen, NULL, xen_thread, NULL), 0);
    pthread_join(xen, NULL);
    pthread_join(bg, NULL);
    pthread_mutex_lock(&w.lock);
    w.closed = true;
    pthread_cond_broadcast(&w.cond);
    pthread_mutex_unlock(&w.lock);
    for (unsigned int i = 0; i < LOADERS; i++) {
        pthread_join(ld[i], NULL);
    }

    assert_int_equal(w.errors, 0);
    assert_int_equal(stray, 0);
    for (unsigned int i = 0; i < NREQ; i++) {
        if (answers[i] != 1) {
            fail_msg("request %u (gfn 0x%" PRIx64 ") answered %u times", i,
                     token_gfn[i], answers[i]);
        }
        once++;
    }
    assert_int_equal(once, NREQ);
    for (unsigned int k = 0; k < NFR; k++) {
        assert_true(w.asked[k] <= 1);
        asked += w.asked[k];
        assert_int_equal(fx.state[BASE + k], P2M_RAM);
        assert_int_equal(fx.content[BASE + k], (BASE + k) ^ 0x5a5a5a5aULL);
    }
    xen_pager_stats(pager, &st);
    assert_int_equal(st.requests, NREQ);
    assert_int_equal(st.answered, NREQ);
    assert_int_equal(st.loaded, NFR);
    assert_int_equal(st.paged_out, 0);
    assert_int_equal(st.rejected + st.out_of_range + st.bad_vcpu, 0);
    print_message("%u requests, %" PRIu64 " waited for a load, %u frames "
                  "asked for, %u more vCPUs named, %" PRIu64 " loads in "
                  "all\n", NREQ, st.waited, asked, w.named, fx.loads);
    postcopy_incoming_stats(&pi, &ps);
    assert_int_equal(ps.made_absent, NFR);
    assert_int_equal(ps.placed, NFR);
    assert_int_equal(ps.placed + ps.duplicates, NFR + asked);
    assert_int_equal(postcopy_incoming_end(&pi, err, sizeof(err)), 0);
    postcopy_incoming_destroy(&pi);
    ram_list_destroy(&ram);
    assert_int_equal(xen_pager_stop(pager, false), 0);
    fake_assert_nothing_left();
    xen_close(xh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_request_is_answered_exactly_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
