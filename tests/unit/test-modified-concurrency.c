/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memory/modified under concurrency: reporter threads race with each other,
 * with batch-full flushes and with the delayed flusher; after a final flush
 * every reported page must have reached the (fake) hypercall.  Run under
 * ThreadSanitizer by `make check-tsan`.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memory/modified.h"

#define MAX_PAGES  32768
#define REPORTERS  3
#define REPORTS    20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char sent[MAX_PAGES];
static unsigned char reported[REPORTERS][MAX_PAGES];

int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n);
int __wrap_xen_modified_memory_bulk(XenHandles *xh,
                                    struct xen_dm_op_modified_memory_extent *e,
                                    uint32_t n)
{
    (void)xh;
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < n; i++) {
        for (uint64_t p = e[i].first_pfn; p < e[i].first_pfn + e[i].nr; p++) {
            sent[p] = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

typedef struct Reporter {
    ModifiedMemory *mm;
    int id;
} Reporter;

static void *reporter(void *arg)
{
    Reporter *r = arg;
    unsigned int seed = r->id + 1;

    for (int i = 0; i < REPORTS; i++) {
        uint64_t gfn = rand_r(&seed) % (MAX_PAGES - 4);
        uint64_t n = 1 + rand_r(&seed) % 4;

        modified_memory_report(r->mm, gfn, n);
        for (uint64_t k = 0; k < n; k++) {
            reported[r->id][gfn + k] = 1;
        }
    }
    return NULL;
}

static void test_no_report_is_lost_under_concurrent_reporters(void **state)
{
    ModifiedMemoryConfig cfg = { .batch = 16, .max_delay_ms = 1 };
    ModifiedMemory *mm;
    pthread_t t[REPORTERS];
    Reporter r[REPORTERS];
    long lost = 0;

    (void)state;
    assert_int_equal(modified_memory_new((XenHandles *)(uintptr_t)0x1000,
                                         &cfg, &mm), 0);
    modified_memory_set_enabled(mm, true);
    for (int i = 0; i < REPORTERS; i++) {
        r[i] = (Reporter) { mm, i };
        pthread_create(&t[i], NULL, reporter, &r[i]);
    }
    for (int i = 0; i < REPORTERS; i++) {
        pthread_join(t[i], NULL);
    }
    /* What the device model does before it acknowledges `stop`. */
    assert_int_equal(modified_memory_flush(mm), 0);

    pthread_mutex_lock(&lock);
    for (int i = 0; i < REPORTERS; i++) {
        for (int p = 0; p < MAX_PAGES; p++) {
            lost += reported[i][p] && !sent[p];
        }
    }
    pthread_mutex_unlock(&lock);
    assert_int_equal(lost, 0);
    modified_memory_free(mm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_report_is_lost_under_concurrent_reporters),
    };

    return cmocka_run_group_tests_name("modified-concurrency", tests, NULL,
                                       NULL);
}
