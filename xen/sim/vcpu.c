/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vcpu.c - simulated guest vCPUs.  See vcpu.h.
 *
 * A vCPU loops: wait while the domain is paused, quiesced, shut down or
 * idle, or the vCPU is down; wait while a capped domain has no budget
 * left for it in this period; work out how many page writes its rate
 * allows by now; write up to BATCH of them through the vCPU view (counted
 * in d->running, so that a pause or quiesce knows when no write is in
 * flight), charge the batch's wall time to its budget; repeat.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xenctrl.h>

#include "xen/sim/host.h"
#include "xen/sim/log.h"
#include "xen/sim/stamp.h"

#define BATCH 64

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool parse_num(const char *s, double *out)
{
    char *end;
    double v;

    if (!s || !*s)
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || v < 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

int workload_parse(const char *spec, struct xsim_workload *wl,
                   char *err, size_t errlen)
{
    char buf[64], *a, *b;

    memset(wl, 0, sizeof(*wl));
    if (strlen(spec) >= sizeof(buf)) {
        snprintf(err, errlen, "workload '%s' is too long", spec);
        return -EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", spec);
    snprintf(wl->spec, sizeof(wl->spec), "%s", spec);
    a = strchr(buf, ':');
    if (a)
        *a++ = 0;
    b = a ? strchr(a, ':') : NULL;
    if (b)
        *b++ = 0;
    if (strcmp(buf, "idle") == 0 && !a) {
        wl->kind = XSIM_WL_IDLE;
        return 0;
    }
    if ((strcmp(buf, "random") == 0 || strcmp(buf, "sequential") == 0) &&
        a && !b && parse_num(a, &wl->rate_mibs)) {
        wl->kind = buf[0] == 'r' ? XSIM_WL_RANDOM : XSIM_WL_SEQUENTIAL;
        return 0;
    }
    if (strcmp(buf, "hotset") == 0 && a && b &&
        parse_num(a, &wl->hot_pct) && wl->hot_pct > 0 &&
        wl->hot_pct <= 100 && parse_num(b, &wl->rate_mibs)) {
        wl->kind = XSIM_WL_HOTSET;
        return 0;
    }
    if (strcmp(buf, "mmio") == 0 && a && b) {
        char *c = strchr(b, ':'), *end;

        if (c)
            *c++ = 0;
        errno = 0;
        wl->mmio_gpa = strtoull(a, &end, 0);
        if (!errno && !*end && *a) {
            wl->mmio_len = strtoull(b, &end, 0);
            if (!errno && !*end && *b && wl->mmio_len >= 8 &&
                wl->mmio_gpa + wl->mmio_len > wl->mmio_gpa &&
                (!c || parse_num(c, &wl->mmio_rate))) {
                wl->kind = XSIM_WL_MMIO;
                return 0;
            }
        }
    }
    snprintf(err, errlen,
             "bad workload '%s' (idle, random:MiBps, hotset:PCT:MiBps, "
             "sequential:MiBps, mmio:GPA:LEN[:PAIRSps] with LEN >= 8)", spec);
    return -EINVAL;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static uint64_t ram_gfn(const struct xsim_dom *d, uint64_t idx)
{
    for (unsigned i = 0; i < d->nr_ram_ext; i++) {
        if (idx < d->ram_ext[i][1])
            return d->ram_ext[i][0] + idx;
        idx -= d->ram_ext[i][1];
    }
    return UINT64_MAX;
}

/*
 * The next page for @v to write.  With several vCPUs each writes its own
 * share of RAM (the pages whose index is its id modulo their number), as
 * per-CPU data would be: two vCPUs never write one page at once, which
 * would leave it torn (one's header, the other's fill) and read as
 * corrupt -- the guest's race, not a migration's.  Two vCPUs released by
 * the same page-in used to do exactly that.
 */
static uint64_t pick(struct xsim_vcpu *v, const struct xsim_workload *wl)
{
    const struct xsim_dom *d = v->dom;
    uint64_t nv = d->nr_vcpus ? d->nr_vcpus : 1, n = d->nr_ram, share, k;

    /* Pages v->id, v->id + nv, ...: at least one when there is RAM. */
    share = n > v->id ? (n - v->id + nv - 1) / nv : 1;
    switch (wl->kind) {
    case XSIM_WL_HOTSET: {
        uint64_t hot = (uint64_t)((double)share * wl->hot_pct / 100.0);

        k = rng_next(&v->rng) % (hot ? hot : 1);
        break;
    }
    case XSIM_WL_SEQUENTIAL:
        k = v->cursor++ % share;
        break;
    default:
        k = rng_next(&v->rng) % share;
        break;
    }
    v->seq++;
    return ram_gfn(d, (k * nv + v->id) % (n ? n : 1));
}

static bool present(const struct xsim_dom *d, uint64_t gfn)
{
    return gfn < XSIM_GFN_LIMIT &&
           ((__atomic_load_n(&d->p2m[gfn / 64], __ATOMIC_RELAXED) >>
             (gfn % 64)) & 1);
}

/*
 * Up to @count page writes.  A frame in a paging state (host-paging.c)
 * ends the batch with v->fault_gfn set: the access faults, and is made
 * again, before any new pick, once the pager has answered.
 */
static void write_batch(struct xsim_vcpu *v, const struct xsim_workload *wl,
                        unsigned count)
{
    struct xsim_dom *d = v->dom;
    uint64_t t0 = thread_ns(), done = 0;

    for (unsigned i = 0; i < count; i++) {
        uint64_t gfn = v->fault_gfn;

        if (gfn == UINT64_MAX)
            gfn = pick(v, wl);
        v->fault_gfn = UINT64_MAX;
        if (gfn < XSIM_GFN_LIMIT &&
            host_paging_type(d, gfn) != XSIM_PT_NONE) {
            v->fault_gfn = gfn;
            break;
        }
        if (!present(d, gfn))
            continue;           /* ballooned out */
        xsim_stamp_write(d->track.view + gfn * XSIM_PAGE_SIZE, gfn,
                         __atomic_add_fetch(&d->gen, 1, __ATOMIC_RELAXED));
        track_mark(&d->track, gfn);
        done++;
    }
    __atomic_add_fetch(&d->writes, done, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->cpu_ns, thread_ns() - t0, __ATOMIC_RELAXED);
}

static bool may_run(const struct xsim_dom *d)
{
    return !d->pause_count && !d->quiesce && !d->shutdown &&
           d->wl.kind != XSIM_WL_IDLE && d->nr_ram;
}

/* May @v enter the guest at all (idle workloads included)?  run_lock. */
static bool may_resume(const struct xsim_vcpu *v)
{
    const struct xsim_dom *d = v->dom;

    return !d->pause_count && !d->quiesce && !d->shutdown && !v->down;
}

/* ---- credit2's cap ------------------------------------------------------ */

static int64_t cap_total_ns(const struct xsim_dom *d)
{
    return (int64_t)(XSIM_CAP_PERIOD_NS * d->sched_cap / 100);
}

/*
 * May @v run a batch now (run_lock held)?  The domain's pool is refilled
 * with cap% of a period at every period (replenish_domain_budget(); a
 * vCPU's unused budget expires with it, its debt stays); a vCPU without
 * budget takes its quota from the pool (max(total / vCPUs, 500 us), as
 * csched2_dom_cntl sets budget_quota), and parks until the next
 * replenishment when the pool is empty.  Else *wake is when to look again.
 */
static bool cap_allows(struct xsim_vcpu *v, uint64_t *wake)
{
    struct xsim_dom *d = v->dom;
    uint64_t now;
    int64_t tot, quota;

    if (!d->sched_cap)
        return true;
    now = mono_ns();
    tot = cap_total_ns(d);
    if (now >= d->cap_next_repl_ns) {
        d->cap_next_repl_ns += ((now - d->cap_next_repl_ns) /
                                XSIM_CAP_PERIOD_NS + 1) * XSIM_CAP_PERIOD_NS;
        d->cap_pool_ns = tot;
        for (unsigned i = 0; i < d->nr_vcpus; i++)
            if (d->vcpus[i].budget_ns > 0)
                d->vcpus[i].budget_ns = 0;
    }
    quota = tot / (int64_t)d->nr_vcpus;
    if (quota < XSIM_CAP_MIN_QUOTA_NS)
        quota = XSIM_CAP_MIN_QUOTA_NS;
    while (v->budget_ns <= 0 && d->cap_pool_ns > 0) {
        int64_t grab = quota < d->cap_pool_ns ? quota : d->cap_pool_ns;

        d->cap_pool_ns -= grab;
        v->budget_ns += grab;
    }
    if (v->budget_ns > 0)
        return true;
    *wake = d->cap_next_repl_ns;
    return false;
}

int dom_sched_op(struct xsim_dom *d, uint32_t sched_id, bool put,
                 uint16_t *weight, uint16_t *cap)
{
    int rc = 0;

    /* sched_adjust(): the pool runs credit2 */
    if (sched_id != XEN_SCHEDULER_CREDIT2)
        return -EINVAL;
    pthread_mutex_lock(&d->run_lock);
    if (!put) {
        *weight = d->sched_weight;
        *cap = d->sched_cap;
        pthread_mutex_unlock(&d->run_lock);
        return 0;
    }
    /* csched2_dom_cntl(XEN_DOMCTL_SCHEDOP_putinfo): weight 0 keeps it; the
     * weight is set before the cap is checked, and stays set when the cap
     * is refused; cap 0 removes it. */
    if (*weight)
        d->sched_weight = *weight;
    if (*cap) {
        if (*cap > 100 * d->nr_vcpus) {
            rc = -EINVAL;
        } else {
            if (!d->sched_cap) {
                d->cap_pool_ns = (int64_t)(XSIM_CAP_PERIOD_NS * *cap / 100);
                d->cap_next_repl_ns = mono_ns() + XSIM_CAP_PERIOD_NS;
                for (unsigned i = 0; i < d->nr_vcpus && d->vcpus; i++)
                    d->vcpus[i].budget_ns = 0;
            }
            d->sched_cap = *cap;
        }
    } else {
        d->sched_cap = 0;
    }
    pthread_cond_broadcast(&d->run_cond);
    pthread_mutex_unlock(&d->run_lock);
    return rc;
}

static void *vcpu_main(void *arg)
{
    struct xsim_vcpu *v = arg;
    struct xsim_dom *d = v->dom;
    struct xsim_workload wl = { .kind = XSIM_WL_IDLE };
    uint64_t t0 = 0, done = 0;
    bool fresh = true;

    pthread_mutex_lock(&d->run_lock);
    for (;;) {
        double pps;
        uint64_t due;

        uint64_t wake, b0;

        while (!d->stopping && (!may_run(d) || v->down) &&
               !(host_ioreq_owed(v) && may_resume(v))) {
            pthread_cond_wait(&d->run_cond, &d->run_lock);
            fresh = true;
        }
        if (d->stopping)
            break;
        if (host_ioreq_owed(v) && may_resume(v)) {
            /* hvm_do_resume(): the INVALIDATE a p2m removal left owed,
             * waited for outside the run lock (a pause does not wait for
             * a vCPU blocked on its device model). */
            pthread_mutex_unlock(&d->run_lock);
            host_ioreq_resume(v);
            pthread_mutex_lock(&d->run_lock);
            fresh = true;
            continue;
        }
        if (!cap_allows(v, &wake)) {
            struct timespec ts = {
                .tv_sec = (time_t)(wake / 1000000000ull),
                .tv_nsec = (long)(wake % 1000000000ull),
            };

            /* Parked: no budget until the next replenishment. */
            pthread_cond_timedwait(&d->run_cond, &d->run_lock, &ts);
            continue;
        }
        if (fresh || memcmp(&wl, &d->wl, sizeof(wl)) != 0) {
            /* Start the rate clock again: no burst after a pause. */
            wl = d->wl;
            t0 = mono_ns();
            done = 0;
            fresh = false;
        }
        if (wl.kind == XSIM_WL_MMIO) {
            /* Accesses, not page writes: blocked on the device model
             * outside the run lock and not counted as running. */
            due = BATCH;
            if (wl.mmio_rate > 0) {
                uint64_t now = mono_ns(), target;

                pps = wl.mmio_rate / d->nr_vcpus;
                target = (uint64_t)((double)(now - t0) * pps / 1e9);
                if (target <= done) {
                    uint64_t next = t0 + (uint64_t)((double)(done + 1) *
                                                    1e9 / pps);
                    struct timespec ts = {
                        .tv_sec = (time_t)(next / 1000000000ull),
                        .tv_nsec = (long)(next % 1000000000ull),
                    };

                    pthread_cond_timedwait(&d->run_cond, &d->run_lock, &ts);
                    continue;
                }
                due = target - done < BATCH ? target - done : BATCH;
            }
            pthread_mutex_unlock(&d->run_lock);
            host_ioreq_mmio(v, &wl, (unsigned)due);
            done += due;
            pthread_mutex_lock(&d->run_lock);
            continue;
        }
        if (wl.rate_mibs == 0) {
            due = BATCH;
        } else {
            uint64_t now = mono_ns(), target;

            pps = wl.rate_mibs * 256.0 / d->nr_vcpus;
            target = (uint64_t)((double)(now - t0) * pps / 1e9);
            if (target <= done) {
                uint64_t next = t0 + (uint64_t)((double)(done + 1) * 1e9 / pps);
                struct timespec ts = {
                    .tv_sec = (time_t)(next / 1000000000ull),
                    .tv_nsec = (long)(next % 1000000000ull),
                };

                /* Sleep until the next write is due (run_cond runs on the
                 * monotonic clock), or until woken by a pause, a new
                 * workload or the end. */
                pthread_cond_timedwait(&d->run_cond, &d->run_lock, &ts);
                continue;
            }
            due = target - done;
            if (due > (uint64_t)(pps / 10) + BATCH) {
                /* Fell behind by more than 100 ms: drop the backlog. */
                done = target - BATCH;
                due = BATCH;
            }
            if (due > BATCH)
                due = BATCH;
        }
        d->running++;
        pthread_mutex_unlock(&d->run_lock);
        b0 = mono_ns();
        write_batch(v, &wl, (unsigned)due);
        done += due;
        pthread_mutex_lock(&d->run_lock);
        if (d->sched_cap)
            v->budget_ns -= (int64_t)(mono_ns() - b0);
        if (--d->running == 0)
            pthread_cond_broadcast(&d->idle_cond);
        if (v->fault_gfn != UINT64_MAX) {
            /* Paused by the pager's ring, outside the run lock and not
             * counted as running, like a wait for the device model. */
            pthread_mutex_unlock(&d->run_lock);
            host_paging_fault(v, v->fault_gfn);
            pthread_mutex_lock(&d->run_lock);
            fresh = true;
        }
    }
    pthread_mutex_unlock(&d->run_lock);
    return NULL;
}

int vcpus_start(struct xsim_dom *d)
{
    unsigned i;
    int rc;

    d->vcpus = calloc(d->nr_vcpus, sizeof(*d->vcpus));
    if (!d->vcpus)
        return -ENOMEM;
    for (i = 0; i < d->nr_vcpus; i++) {
        struct xsim_vcpu *v = &d->vcpus[i];

        v->dom = d;
        v->id = i;
        v->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)d->domid << 32) ^
                 ((uint64_t)i + 1) * 0xbf58476d1ce4e5b9ull;
        v->cursor = 0;          /* of its own share (pick()) */
        v->fault_gfn = UINT64_MAX;
        rc = pthread_create(&v->thread, NULL, vcpu_main, v);
        if (rc) {
            d->nr_vcpus = i;    /* vcpus_stop() joins the ones started */
            return -rc;
        }
    }
    return 0;
}

void vcpus_stop(struct xsim_dom *d)
{
    pthread_mutex_lock(&d->run_lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->run_cond);
    pthread_mutex_unlock(&d->run_lock);
    for (unsigned i = 0; i < d->nr_vcpus && d->vcpus; i++)
        pthread_join(d->vcpus[i].thread, NULL);
}
