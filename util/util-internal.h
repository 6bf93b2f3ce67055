/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * util-internal.h - the prelude of xenram's own code: the RCU build
 * settings, compiler helpers and the ThreadSanitizer model of RCU.
 * Not installed.
 *
 * The Makefile force-includes it (-include) ahead of every translation unit
 * it compiles for the library, the device model, the programs and the
 * tests, so that it is always first: _LGPL_SOURCE only takes effect if it
 * is defined before liburcu's headers are read, and the TSan replacements
 * below must be seen by the static inline fast paths in the public headers
 * too.  Users of the installed headers get none of it (see util/util.h).
 *
 * RCU flavour: liburcu's "memb" flavour (membarrier(2) based), which is
 * also liburcu's default.  Readers pay only a thread-local counter update
 * and a compiler barrier, no fence, and threads need no quiescent-state
 * reports (unlike QSBR), which matters because our readers are library
 * callers we do not control.  The price, a membarrier system call per
 * grace period, falls on writers (RAM hot-plug, bitmap growth, block
 * swaps), which are rare.  See docs/dirty.md.
 */
#ifndef XENRAM_UTIL_INTERNAL_H
#define XENRAM_UTIL_INTERNAL_H

#if defined(__SANITIZE_THREAD__)
#define XR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define XR_TSAN 1
#endif
#endif

/* liburcu's own name for the flavour util/util.h checks for. */
#define RCU_MEMBARRIER
#ifndef XR_TSAN
/*
 * Inline read-side fast paths (we are LGPL too).  Not under TSan: the
 * inlined internals of liburcu race in ways TSan cannot see are ordered.
 */
#define _LGPL_SOURCE
#endif

/* The public part: liburcu, pages, bit helpers. */
#include "util/util.h"

/* ---- compiler helpers ------------------------------------------------ */

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define ROUND_UP(n, d)     (DIV_ROUND_UP(n, d) * (d))
#define IS_POW2(n)         ((n) != 0 && ((n) & ((n) - 1)) == 0)

/* ---- bit operations ------------------------------------------------- */

/* Mask of the bits from @start (inclusive) to the top of the word. */
#define BITMAP_FIRST_WORD_MASK(start) (~0UL << ((start) % BITS_PER_LONG))
/* Mask of the low bits of the word holding the last of @nbits bits. */
#define BITMAP_LAST_WORD_MASK(nbits) \
    (~0UL >> (-(nbits) & (BITS_PER_LONG - 1)))

/* ---- RCU and ThreadSanitizer ----------------------------------------- */

/*
 * liburcu is not built with ThreadSanitizer, so TSan cannot see that a
 * grace period orders every earlier read-side critical section before the
 * code that follows synchronize_rcu() or runs as a call_rcu() callback.
 * Under TSan we model that edge explicitly: each read-side unlock and each
 * call_rcu() releases a global sync object, and the writer acquires it once
 * the grace period has elapsed (after synchronize_rcu(), at the start of a
 * call_rcu() callback).  Without TSan all of this compiles to nothing.
 */
#ifdef XR_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char xr_rcu_tsan_sync;

static inline void xr_rcu_tsan_read_unlock(void)
{
    __tsan_release(&xr_rcu_tsan_sync);
    urcu_memb_read_unlock();
}

static inline void xr_rcu_tsan_synchronize(void)
{
    urcu_memb_synchronize_rcu();
    __tsan_acquire(&xr_rcu_tsan_sync);
}

/*
 * liburcu publishes and reads pointers with volatile accesses and inline
 * barriers that TSan cannot see; use the equivalent C11 atomics instead
 * (on x86 they compile to the same plain loads and stores).
 */
#undef rcu_dereference
#define rcu_dereference(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#undef rcu_assign_pointer
#define rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)
#undef rcu_set_pointer
#define rcu_set_pointer(pp, v) __atomic_store_n((pp), (v), __ATOMIC_RELEASE)
#undef rcu_xchg_pointer
#define rcu_xchg_pointer(pp, v) __atomic_exchange_n((pp), (v), __ATOMIC_ACQ_REL)

#undef rcu_read_unlock
#define rcu_read_unlock() xr_rcu_tsan_read_unlock()
#undef synchronize_rcu
#define synchronize_rcu() xr_rcu_tsan_synchronize()
/* The writer's last touches of an object happen before its callback. */
#undef call_rcu
#define call_rcu(head, func) \
    (__tsan_release(&xr_rcu_tsan_sync), urcu_memb_call_rcu((head), (func)))
/* First statement of every call_rcu() callback: see rcu_reclaim_begin(). */
#define rcu_reclaim_begin() __tsan_acquire(&xr_rcu_tsan_sync)
#else
/*
 * First statement of every call_rcu() callback.  It documents (and under
 * ThreadSanitizer establishes) that the readers which could still see the
 * object are gone.
 */
#define rcu_reclaim_begin() do { } while (0)
#endif

#endif /* XENRAM_UTIL_INTERNAL_H */
