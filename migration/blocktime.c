/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * blocktime.c - per-vCPU postcopy blocktime (see blocktime.h).
 *
 * A flat array, one entry per vCPU, under one mutex: an HVM guest has at
 * most 128 vCPUs (Xen 4.17's HVM_MAX_VCPUS), so a place scans at most
 * that many entries, and only while some vCPU waits.
 */
#include <pthread.h>
#include <stdlib.h>

#include "migration/blocktime.h"

typedef struct BlocktimeVcpu {
    bool waiting;
    uint64_t gfn;               /* the frame it waits for */
    uint64_t start_ns;          /* since when */
    uint64_t total_ns;          /* waits that ended */
} BlocktimeVcpu;

struct PostcopyBlocktime {
    pthread_mutex_t lock;       /* everything below */
    uint32_t nr_vcpus;
    uint32_t nwaiting;
    BlocktimeVcpu vcpu[];
};

PostcopyBlocktime *postcopy_blocktime_new(uint32_t nr_vcpus)
{
    PostcopyBlocktime *bt = calloc(1, sizeof(*bt) +
                                   (size_t)nr_vcpus * sizeof(BlocktimeVcpu));

    if (!bt) {
        return NULL;
    }
    pthread_mutex_init(&bt->lock, NULL);
    bt->nr_vcpus = nr_vcpus;
    return bt;
}

void postcopy_blocktime_free(PostcopyBlocktime *bt)
{
    if (!bt) {
        return;
    }
    pthread_mutex_destroy(&bt->lock);
    free(bt);
}

bool postcopy_blocktime_fault(PostcopyBlocktime *bt, uint32_t vcpu,
                              uint64_t gfn, uint64_t now_ns)
{
    BlocktimeVcpu *v;

    if (vcpu >= bt->nr_vcpus) {
        return false;
    }
    pthread_mutex_lock(&bt->lock);
    v = &bt->vcpu[vcpu];
    if (v->waiting && v->gfn == gfn) {
        pthread_mutex_unlock(&bt->lock);
        return false;
    }
    if (!v->waiting) {
        bt->nwaiting++;
    }
    *v = (BlocktimeVcpu){ .waiting = true, .gfn = gfn, .start_ns = now_ns,
                          .total_ns = v->total_ns };
    pthread_mutex_unlock(&bt->lock);
    return true;
}

unsigned int postcopy_blocktime_placed(PostcopyBlocktime *bt, uint64_t gfn,
                                       uint64_t now_ns)
{
    unsigned int n = 0;

    pthread_mutex_lock(&bt->lock);
    for (uint32_t i = 0; bt->nwaiting && i < bt->nr_vcpus; i++) {
        BlocktimeVcpu *v = &bt->vcpu[i];

        if (!v->waiting || v->gfn != gfn) {
            continue;
        }
        v->total_ns += now_ns > v->start_ns ? now_ns - v->start_ns : 0;
        v->waiting = false;
        bt->nwaiting--;
        n++;
    }
    pthread_mutex_unlock(&bt->lock);
    return n;
}

uint32_t postcopy_blocktime_totals(PostcopyBlocktime *bt, uint64_t *ns,
                                   uint32_t max)
{
    pthread_mutex_lock(&bt->lock);
    for (uint32_t i = 0; i < bt->nr_vcpus && i < max; i++) {
        ns[i] = bt->vcpu[i].total_ns;
    }
    pthread_mutex_unlock(&bt->lock);
    return bt->nr_vcpus;
}

uint32_t postcopy_blocktime_waiting(PostcopyBlocktime *bt)
{
    uint32_t n;

    pthread_mutex_lock(&bt->lock);
    n = bt->nwaiting;
    pthread_mutex_unlock(&bt->lock);
    return n;
}
