/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * modified.h - forwarding the device model's own writes to Xen's log-dirty.
 *
 * Xen logs the guest's writes to its RAM, but not the writes the device
 * model makes through its foreign mappings (DMA of emulated devices, VRAM
 * updates).  While a migration run by the toolstack has log-dirty on, the
 * device model must therefore report every page it writes with
 * XEN_DMOP_modified_memory, or the migrated guest loses those writes.
 *
 * QEMU reports one extent per write, one hypercall each.  Here reports are
 * queued, coalesced into extents of adjacent pages and sent with
 * xendevicemodel_modified_memory_bulk in batches: when a batch is full,
 * after a bounded delay (a flusher thread), on demand, and always before the
 * device model acknowledges `stop` (modified_memory_flush()).
 *
 * Reports are only queued while forwarding is enabled (the toolstack's
 * xen-set-global-dirty-log); Xen would ignore them otherwise.
 *
 * Concurrency: modified_memory_report() may be called from any thread; the
 * queue is protected by an internal mutex (a report costs one uncontended
 * lock, nothing like a hypercall).  A hypercall is made with the mutex
 * released, so reporters never wait for Xen; flushes are serialised so that
 * "flush returned" means "every report queued before the call reached Xen".
 */
#ifndef XENRAM_MEMORY_MODIFIED_H
#define XENRAM_MEMORY_MODIFIED_H

#include <stdbool.h>
#include <stdint.h>

#include "xen/xen.h"

typedef struct ModifiedMemory ModifiedMemory;

typedef struct ModifiedMemoryConfig {
    /* Extents per hypercall, 1..MODIFIED_MEMORY_MAX_BATCH (default 256). */
    unsigned int batch;
    /* Longest a report may wait before a flush, in ms (default 10; 0: no
     * flusher thread, flush on full batches and on demand only). */
    unsigned int max_delay_ms;
} ModifiedMemoryConfig;

#define MODIFIED_MEMORY_MAX_BATCH 256

typedef struct ModifiedMemoryStats {
    uint64_t reports;       /* modified_memory_report() calls while enabled */
    uint64_t pages;         /* pages reported to Xen (after coalescing) */
    uint64_t extents;       /* extents sent */
    uint64_t hypercalls;    /* modified_memory_bulk calls */
    uint64_t errors;        /* failed hypercalls */
} ModifiedMemoryStats;

/*
 * Create a forwarder for the domain of @xh (@cfg may be NULL for the
 * defaults).  Forwarding starts disabled.  0 or -errno (-EINVAL for a bad
 * configuration).
 */
int modified_memory_new(XenHandles *xh, const ModifiedMemoryConfig *cfg,
                        ModifiedMemory **out);

/* Flush what is queued, stop the flusher thread and free. */
void modified_memory_free(ModifiedMemory *mm);

/*
 * Turn forwarding on or off (xen-set-global-dirty-log).  Turning it off
 * flushes what is queued first, so nothing reported while it was on is
 * dropped.  Returns the flush result (0 or -errno); when the flush fails
 * forwarding stays on and the unsent reports stay queued, so a failed
 * "off" changes nothing and can be retried.
 */
int modified_memory_set_enabled(ModifiedMemory *mm, bool on);

/*
 * Whether forwarding is on, as last set by modified_memory_set_enabled().
 * Lock-free, any thread; a caller racing a switch may see either value,
 * so it is a hint (QMP, statistics), not a guard around reports.
 */
bool modified_memory_enabled(ModifiedMemory *mm);

/*
 * Report that the device model wrote guest frames [gfn, gfn + npages).  Call
 * it after the data has landed.  Cheap: queues or extends an extent.  A
 * full batch is handed to the flusher thread; the caller itself makes the
 * hypercall only when there is no flusher (max_delay_ms 0) or the flusher
 * has fallen eight batches behind.  A no-op while forwarding is disabled.
 */
void modified_memory_report(ModifiedMemory *mm, uint64_t gfn,
                            uint64_t npages);

/*
 * Send everything queued before this call to Xen and wait for it.  Returns
 * 0, or the -errno of a failed hypercall (the failed extents are kept and
 * retried by the next flush, so nothing is silently lost).
 */
int modified_memory_flush(ModifiedMemory *mm);

/*
 * Copy the counters into *@stats, consistently (under the queue's mutex,
 * never waiting for a hypercall in flight).  Cannot fail; any thread.
 */
void modified_memory_stats(ModifiedMemory *mm, ModifiedMemoryStats *stats);

#endif /* XENRAM_MEMORY_MODIFIED_H */
