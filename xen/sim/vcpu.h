/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vcpu.h - simulated guest vCPUs: threads of the daemon that write guest
 * memory through the domain's vCPU view (track.h), stamping every page they
 * write (stamp.h).
 *
 * Workloads (the --workload of xensim create):
 *   idle                  no writes
 *   random:RATE           uniformly random pages of guest RAM, RATE MiB/s
 *   hotset:PCT:RATE       random pages within the first PCT% of guest RAM
 *   sequential:RATE       guest RAM in order, wrapping
 *   mmio:GPA:LEN[:RATE]   no RAM writes: each vCPU writes then reads back
 *                         1-, 2-, 4- and 8-byte words of [GPA, GPA+LEN)
 *                         through the ioreq server that claimed them
 *                         (RATE pairs/s, 0 or none: unlimited)
 * RATE 0 means as fast as the vCPU can go.  The rate is split evenly
 * between the domain's vCPUs.
 *
 * A vCPU's state is its position in the workload's sequence: the RNG
 * state, the sequential cursor and the number of pages it has picked.
 * That is what the domain's HVM context carries (hvmctx.c), so a domain
 * loaded with another's context continues its sequence.
 *
 * Scheduling (credit2's cap, docs/simulator.md): a capped domain gets
 * cap% of one pCPU per 10 ms period, shared by its vCPUs; a vCPU runs
 * write batches only while it holds budget and sleeps until the next
 * replenishment when the domain has none left.
 */
#ifndef XENSIM_VCPU_H
#define XENSIM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum xsim_wl_kind {
    XSIM_WL_IDLE,
    XSIM_WL_RANDOM,
    XSIM_WL_HOTSET,
    XSIM_WL_SEQUENTIAL,
    XSIM_WL_MMIO,               /* MMIO to a range (host-ioreq.c) */
};

struct xsim_workload {
    enum xsim_wl_kind kind;
    double rate_mibs;           /* 0: unlimited */
    double hot_pct;
    uint64_t mmio_gpa, mmio_len;  /* MMIO: the range the vCPUs access */
    double mmio_rate;           /* MMIO: write+read pairs/s, 0 unlimited */
    char spec[64];
};

struct xsim_dom;

struct xsim_vcpu {
    struct xsim_dom *dom;
    unsigned id;
    pthread_t thread;
    uint64_t rng;
    uint64_t cursor;
    struct xsim_workload wl;    /* copy taken at the start of a batch */
    uint64_t seq;               /* pages picked so far (the "rip") */
    bool down;                  /* _VPF_down: not in the loaded context */
    int64_t budget_ns;          /* cap budget held, run_lock */
    /* Memory paging: Xen's v->vm_event_pause_count (d->pg.lock), and the
     * frame a write stopped at, written again once the vCPU resumes. */
    unsigned vm_event_pause;
    uint64_t fault_gfn;         /* UINT64_MAX: none */
};

/* Parse @spec into @wl; -EINVAL with a message in @err if malformed. */
int workload_parse(const char *spec, struct xsim_workload *wl,
                   char *err, size_t errlen);

/* Start and stop the vCPU threads of @d (d->nr_vcpus of them). */
int vcpus_start(struct xsim_dom *d);
void vcpus_stop(struct xsim_dom *d);

/* credit2's defaults and its budget period (opt_cap_period, 10 ms). */
#define XSIM_SCHED_WEIGHT_DEFAULT 256
#define XSIM_CAP_PERIOD_NS        10000000ull
#define XSIM_CAP_MIN_QUOTA_NS     500000ll   /* CSCHED2_MIN_TIMER */

#endif /* XENSIM_VCPU_H */
