/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stress.h - what multi-threaded tests (and benchmarks) share: a
 * per-thread random sequence and a place for the first failure.
 *
 * Header-only so that no build rule has to name it: each stress test is
 * one translation unit and gets its own copy of the state below.
 *
 * Worker threads must not call cmocka's assertions (they longjmp on the
 * main thread's stack), so they stress_report() what went wrong and go on;
 * the main thread checks stress_failures() once they are joined and fails
 * with stress_first_failure().
 */
#ifndef XENRAM_TESTS_COMMON_STRESS_H
#define XENRAM_TESTS_COMMON_STRESS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

/*
 * xorshift64: cheap, a state per thread, reproducible from the seed.
 * @s must start non-zero.
 */
static inline uint64_t stress_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static pthread_mutex_t stress_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int stress_nfailures;      /* atomic; written under the lock */
static char stress_first[256];             /* under the lock */

/* Count a failure; the first one's message is kept.  Any thread. */
static inline void __attribute__((format(printf, 1, 2)))
stress_report(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&stress_fail_lock);
    if (__atomic_fetch_add(&stress_nfailures, 1, __ATOMIC_RELAXED) == 0) {
        va_start(ap, fmt);
        vsnprintf(stress_first, sizeof(stress_first), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&stress_fail_lock);
}

/* Failures so far; lock-free, so a worker loop may poll it. */
static inline unsigned int stress_failures(void)
{
    return __atomic_load_n(&stress_nfailures, __ATOMIC_RELAXED);
}

/* The first failure's message ("" if none); after the workers are joined. */
static inline const char *stress_first_failure(void)
{
    return stress_first;
}

#endif /* XENRAM_TESTS_COMMON_STRESS_H */
