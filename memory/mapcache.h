/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * mapcache.h - on-demand foreign mappings of a guest's memory.
 *
 * A 64-bit device model could map all of a guest's RAM once, but guests
 * balloon, hot-plug and migrate, and a mapping of a frame that has gone
 * is a liability.  The mapcache instead maps guest memory lazily, one
 * *bucket* (2^bucket_shift bytes of guest-physical space, 1 MiB by
 * default) at a time, through xen_map(), and keeps the mappings for the
 * next access.  See docs/mapcache.md for the concepts.
 *
 * Keys are guest-physical addresses (gpa).  RAM blocks the device model
 * populates itself (VRAM, ROMs) live at gfn = ram_addr >> 12, so their
 * gpa is their ram_addr; translating other ram_addrs is the region tree's
 * job, not the mapcache's.
 *
 * Two kinds of access:
 *
 *   rcu_read_lock();
 *   uint8_t *p = mapcache_get(mc, gpa, 4, &err);   // unlocked lookup
 *   if (p) v = ldl_le_p(p);                        // valid until unlock
 *   rcu_read_unlock();
 *
 *   uint64_t len = 65536;
 *   void *buf = mapcache_map(mc, gpa, &len, &err); // DMA: locked mapping
 *   ... device reads/writes buf[0 .. len) on any thread, for any time ...
 *   mapcache_unlock(mc, buf);
 *
 * Concurrency contract:
 *  - The index (bucket number -> entry) is a radix tree read under RCU:
 *    a hit in mapcache_get() takes no lock, performs no atomic
 *    read-modify-write and makes no call.  Misses take the mapcache's
 *    mutex and map the bucket; they never wait for a grace period, so
 *    they may run inside a read-side critical section.
 *  - A pointer from mapcache_get() is valid until the caller's
 *    rcu_read_unlock(): an invalidation or eviction unpublishes the bucket
 *    at once but unmaps it only after a grace period (call_rcu).
 *  - A pointer from mapcache_map() holds a lock count on its bucket and
 *    stays valid, on any thread, until mapcache_unlock(); invalidation
 *    and eviction never unmap a locked bucket.
 *  - Every thread that calls into the mapcache is registered with RCU
 *    (rcu_register_thread()).  mapcache_destroy() and
 *    mapcache_replace_dummies() are control-plane calls: outside any
 *    read-side critical section.
 *
 * Errors: functions return -errno (or NULL with -errno in *status, which is
 * written only on failure): -EINVAL for an access that is empty where it
 * must not be, crosses a bucket boundary or lies beyond guest-physical
 * space (2^52), -EFAULT for a frame Xen could not map (not populated, a
 * hole), -ENOSPC when the cap is reached and every bucket is locked,
 * -ENOMEM, or what xen_map() returned (with xen_last_error() set).
 */
#ifndef XENRAM_MEMORY_MAPCACHE_H
#define XENRAM_MEMORY_MAPCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/util.h"
#include "xen/xen.h"

/* Guest-physical addresses the mapcache accepts: x86's 52 bits. */
#define MAPCACHE_GPA_BITS            52
/* Bucket sizes accepted: 64 KiB .. 16 MiB. */
#define MAPCACHE_MIN_BUCKET_SHIFT    16
#define MAPCACHE_MAX_BUCKET_SHIFT    24
/* 1 MiB: see docs/mapcache.md, "Choosing the bucket size". */
#define MAPCACHE_DEFAULT_BUCKET_SHIFT 20
/* 32 GiB of mapped guest memory, as QEMU on a 64-bit host. */
#define MAPCACHE_DEFAULT_MAX_BYTES   ((uint64_t)32 << 30)

typedef struct MapCache MapCache;

typedef struct MapCacheConfig {
    /* log2 of the bucket size; 0 picks MAPCACHE_DEFAULT_BUCKET_SHIFT. */
    unsigned int bucket_shift;
    /*
     * Cap on mapped guest memory, rounded down to whole buckets; 0 picks
     * MAPCACHE_DEFAULT_MAX_BYTES.  At the cap a miss first evicts an
     * unlocked bucket that was not used recently.
     */
    uint64_t max_bytes;
    /* Map frames read-only (PROT_READ). */
    bool read_only;
} MapCacheConfig;

typedef struct MapCacheStats {
    uint64_t hits;              /* lookups served by a mapped bucket */
    uint64_t misses;            /* lookups that had to map a bucket */
    uint64_t map_failures;      /* xen_map() calls that failed outright */
    uint64_t mapped_bytes;      /* guest memory mapped now (live buckets) */
    uint64_t max_bytes;         /* the cap */
    uint64_t pending_bytes;     /* dropped, unmapped after a grace period */
    uint64_t buckets;           /* live buckets */
    uint64_t locked_buckets;    /* buckets with a lock count */
    uint64_t locks;             /* sum of the lock counts */
    uint64_t dummy_buckets;     /* anonymous stand-ins (incoming migration) */
    uint64_t invalidations;     /* mapcache_invalidate*() calls */
    uint64_t invalidated_buckets; /* buckets they dropped or orphaned */
    uint64_t evictions;         /* buckets dropped to honour the cap */
} MapCacheStats;

/*
 * Create a mapcache for the domain of @xh (which must outlive it) with
 * @cfg (NULL: defaults).  Returns 0 and *@out, -EINVAL for a bucket_shift
 * outside [MIN, MAX] or a cap below one bucket, or -ENOMEM.
 */
int mapcache_new(XenHandles *xh, const MapCacheConfig *cfg, MapCache **out);

/*
 * Unmap everything (locked buckets too: their users must be gone) and
 * free @mc once pending RCU callbacks have run.  No other thread may use
 * @mc any more; not inside a read-side critical section.
 */
void mapcache_destroy(MapCache *mc);

/*
 * The bucket size of @mc in bytes (2^bucket_shift, fixed at creation):
 * the largest access mapcache_get() serves and the boundary it must not
 * cross.  Cannot fail; any thread.
 */
uint64_t mapcache_bucket_size(const MapCache *mc);

/*
 * Host pointer for the @len bytes at @gpa (len 0 counts as 1), which must
 * not cross a bucket boundary; maps the bucket on a miss.  Inside
 * rcu_read_lock(): the pointer is valid until the matching
 * rcu_read_unlock().  NULL and -errno in *@status (may be NULL) on failure;
 * a frame that failed to map is refused with -EFAULT (and, since it may
 * have been populated since, makes the next access remap its bucket).
 */
static inline void *mapcache_get(MapCache *mc, uint64_t gpa, uint64_t len,
                                 int *status);

/*
 * Locked mapping, for DMA: maps the bucket holding @gpa and returns the
 * host pointer with *@len (in: bytes wanted, non-zero) lowered to what is
 * contiguous and mapped from there: up to the end of the bucket and of
 * the run of good frames.  The pointer stays valid until
 * mapcache_unlock(); a bucket may be locked many times.  NULL and -errno
 * in *@status (-EFAULT if the first frame cannot be mapped).  Any
 * RCU-registered thread, inside or outside a read-side critical section.
 */
void *mapcache_map(MapCache *mc, uint64_t gpa, uint64_t *len, int *status);

/*
 * Drop one lock count of the bucket holding @ptr (any pointer into it
 * from mapcache_map()).  A bucket invalidated while it was locked is
 * unmapped when its last lock goes.  0, -ENOENT (@ptr is not in the
 * mapcache) or -EINVAL (the bucket is not locked).  Any RCU-registered
 * thread.
 */
int mapcache_unlock(MapCache *mc, void *ptr);

/*
 * Reverse lookup: the gpa behind host pointer @ptr from mapcache_get() or
 * mapcache_map() (also for a locked bucket orphaned by an invalidation).
 * 0 and *@gpa, or -ENOENT.  Lock-free; any RCU-registered thread.
 */
int mapcache_reverse(MapCache *mc, const void *ptr, uint64_t *gpa);

/*
 * Drop every unlocked bucket (as Xen's IOREQ_TYPE_INVALIDATE asks after
 * ballooning): they are unpublished at once, so later lookups map afresh,
 * and unmapped after a grace period, so current readers are not stalled.
 * A locked bucket is unpublished too but stays mapped for its lock
 * holders until its last mapcache_unlock().  Never waits; any thread.
 */
void mapcache_invalidate(MapCache *mc);

/*
 * As mapcache_invalidate(), for the buckets that overlap [gpa, gpa + len)
 * (RAM unplugged, frames released).  Returns the number of buckets
 * dropped or orphaned.
 */
uint64_t mapcache_invalidate_range(MapCache *mc, uint64_t gpa, uint64_t len);

/*
 * Incoming migration: while on, a miss whose frames cannot be mapped yet
 * gets a *dummy* bucket, anonymous memory standing in for the frames,
 * instead of an error.  Any thread.
 */
void mapcache_set_incoming(MapCache *mc, bool incoming);

/*
 * Map the real frames over every dummy bucket, in place (xen_map_at()
 * with MAP_FIXED): host pointers into dummies stay valid and show guest
 * memory from then on; what was written to a dummy is gone.  A frame that
 * still cannot be mapped is refused from then on.  Call once the frames
 * are there (the migration stream has been loaded) and nobody accesses
 * the dummies; control plane, outside a read-side critical section.
 * Returns the number of buckets replaced, or the first -errno (the other
 * buckets are still replaced; a bucket that failed stays a dummy).
 */
int mapcache_replace_dummies(MapCache *mc);

/*
 * Lock counts (DMA mappings from mapcache_map()) held on the buckets that
 * overlap guest-physical [gpa, gpa + len), buckets orphaned by an
 * invalidation while locked included: non-zero means the range is still
 * in use by a device.  Takes the mapcache's mutex; any RCU-registered
 * thread, outside a read-side critical section.
 */
uint64_t mapcache_range_locks(MapCache *mc, uint64_t gpa, uint64_t len);

/*
 * Fill *@st with a snapshot of the counters (for QMP and the tests): the
 * per-thread hit counts summed, the others as of one moment under the
 * mapcache's mutex.  Hits a thread counts while the snapshot is taken
 * may or may not be in it.  Cannot fail.  Takes the mapcache's mutex
 * (as a miss does) and reads nothing under RCU: any thread, inside or
 * outside a read-side critical section.
 */
void mapcache_get_stats(MapCache *mc, MapCacheStats *st);

/*
 * The fast path of mapcache_get() and the structures it reads, kept out
 * of this reference as liburcu keeps its static/ headers.
 */
#include "memory/mapcache-inline.h"

#endif /* XENRAM_MEMORY_MAPCACHE_H */
