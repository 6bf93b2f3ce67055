/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * testdev.c - a test device that DMA-writes guest memory (see testdev.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xen/dm/testdev.h"

#define TESTDEV_MAGIC 0x00414d4454525858ull     /* "XXRTDMA\0" */

struct TestDev {
    GuestMemory *gm;
    TestDevRange *ranges;
    unsigned int nranges;
    uint64_t total_pages;
    unsigned int rate;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool paused;            /* asked to pause (under lock) */
    bool idle;              /* the thread acknowledged the pause */
    bool quit;
    uint64_t written;       /* atomic */
    uint64_t errors;        /* atomic */
};

/* The page of index @i over all ranges, as a gpa. */
static uint64_t page_gpa(TestDev *td, uint64_t i)
{
    for (unsigned int r = 0; r < td->nranges; r++) {
        uint64_t n = td->ranges[r].size >> XR_PAGE_BITS;

        if (i < n) {
            return td->ranges[r].gpa + (i << XR_PAGE_BITS);
        }
        i -= n;
    }
    return td->ranges[0].gpa;
}

static void fill(uint64_t *page, uint64_t gfn, uint64_t seq)
{
    page[0] = TESTDEV_MAGIC;
    page[1] = gfn;
    page[2] = seq;
    for (unsigned int i = 3; i < XR_PAGE_SIZE / 8; i++) {
        uint64_t x = gfn * 0x9e3779b97f4a7c15ull ^ seq ^ ((uint64_t)i << 32);

        x ^= x >> 31;
        page[i] = x * 0xbf58476d1ce4e5b9ull;
    }
}

/* Wait while paused; false when told to quit. */
static bool wait_running(TestDev *td)
{
    bool run;

    pthread_mutex_lock(&td->lock);
    while (td->paused && !td->quit) {
        td->idle = true;
        pthread_cond_broadcast(&td->cond);
        pthread_cond_wait(&td->cond, &td->lock);
    }
    td->idle = false;
    run = !td->quit;
    pthread_mutex_unlock(&td->lock);
    return run;
}

static void *testdev_main(void *arg)
{
    TestDev *td = arg;
    unsigned int seed = (unsigned int)time(NULL);
    uint64_t seq = 0;
    /* Pace in batches of up to 1/100 s worth of pages. */
    unsigned int batch = td->rate >= 100 ? td->rate / 100 : 1;
    struct timespec pause_ts = { 0, (long)(1e9 * batch / td->rate) };

    rcu_register_thread();
    while (wait_running(td)) {
        for (unsigned int b = 0; b < batch; b++) {
            uint64_t gpa = page_gpa(td, (((uint64_t)rand_r(&seed) << 31) ^
                                         rand_r(&seed)) % td->total_pages);
            uint64_t len = XR_PAGE_SIZE;
            int err = 0;
            uint64_t *p = guest_memory_map(td->gm, gpa, &len, true, &err);

            if (!p || len < XR_PAGE_SIZE) {
                __atomic_fetch_add(&td->errors, 1, __ATOMIC_RELAXED);
                if (p) {
                    guest_memory_unmap(td->gm, p, gpa, len, false, 0);
                }
                continue;
            }
            fill(p, gpa >> XR_PAGE_BITS, ++seq);
            guest_memory_unmap(td->gm, p, gpa, len, true, XR_PAGE_SIZE);
            __atomic_fetch_add(&td->written, 1, __ATOMIC_RELAXED);
        }
        /* Pacing, not synchronisation: pause and quit use the condition. */
        pthread_mutex_lock(&td->lock);
        if (!td->paused && !td->quit) {
            struct timespec until;

            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += pause_ts.tv_nsec;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&td->cond, &td->lock, &until);
        }
        pthread_mutex_unlock(&td->lock);
    }
    rcu_unregister_thread();
    return NULL;
}

int testdev_start(GuestMemory *gm, const TestDevRange *ranges,
                  unsigned int nranges, unsigned int rate, TestDev **out)
{
    TestDev *td;
    int ret;

    if (!gm || !ranges || nranges == 0 || rate == 0) {
        return -EINVAL;
    }
    td = calloc(1, sizeof(*td));
    if (!td) {
        return -ENOMEM;
    }
    td->ranges = calloc(nranges, sizeof(*ranges));
    if (!td->ranges) {
        free(td);
        return -ENOMEM;
    }
    memcpy(td->ranges, ranges, nranges * sizeof(*ranges));
    td->nranges = nranges;
    for (unsigned int i = 0; i < nranges; i++) {
        td->total_pages += ranges[i].size >> XR_PAGE_BITS;
    }
    if (td->total_pages == 0) {
        free(td->ranges);
        free(td);
        return -EINVAL;
    }
    td->gm = gm;
    td->rate = rate;
    td->paused = true;
    pthread_mutex_init(&td->lock, NULL);
    pthread_cond_init(&td->cond, NULL);
    ret = pthread_create(&td->thread, NULL, testdev_main, td);
    if (ret) {
        free(td->ranges);
        free(td);
        return -ret;
    }
    *out = td;
    return 0;
}

void testdev_pause(TestDev *td)
{
    if (!td) {
        return;
    }
    pthread_mutex_lock(&td->lock);
    td->paused = true;
    pthread_cond_broadcast(&td->cond);
    while (!td->idle && !td->quit) {
        pthread_cond_wait(&td->cond, &td->lock);
    }
    pthread_mutex_unlock(&td->lock);
}

void testdev_resume(TestDev *td)
{
    if (!td) {
        return;
    }
    pthread_mutex_lock(&td->lock);
    td->paused = false;
    pthread_cond_broadcast(&td->cond);
    pthread_mutex_unlock(&td->lock);
}

uint64_t testdev_pages_written(TestDev *td)
{
    return td ? __atomic_load_n(&td->written, __ATOMIC_RELAXED) : 0;
}

uint64_t testdev_errors(TestDev *td)
{
    return td ? __atomic_load_n(&td->errors, __ATOMIC_RELAXED) : 0;
}

void testdev_free(TestDev *td)
{
    if (!td) {
        return;
    }
    pthread_mutex_lock(&td->lock);
    td->quit = true;
    pthread_cond_broadcast(&td->cond);
    pthread_mutex_unlock(&td->lock);
    pthread_join(td->thread, NULL);
    pthread_cond_destroy(&td->cond);
    pthread_mutex_destroy(&td->lock);
    free(td->ranges);
    free(td);
}
