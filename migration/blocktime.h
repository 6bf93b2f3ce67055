/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * blocktime.h - how long each of the guest's vCPUs waited for postcopy's
 * pages on the destination: QEMU's postcopy-vcpu-blocktime (its
 * migration/postcopy-ram.c, "blocktime"), for Xen's paging
 * (docs/postcopy.md).
 *
 * Xen pauses a vCPU that touches an absent frame and resumes it when the
 * pager answers, once the page is loaded: a vCPU waits for one frame at a
 * time, and several vCPUs may wait for one frame.
 *
 *   postcopy_blocktime_fault(v, G, t0)   v waits for G since t0 (another
 *                                        fault of v on G: still since t0)
 *   postcopy_blocktime_placed(G, t1)     every v waiting for G: its total
 *                                        grows by t1 - t0; it waits no more
 *
 * Memory: one entry per vCPU, as many as given at creation (the domain's
 * vCPUs); a vCPU beyond them is ignored, never used as an index.
 *
 * Concurrency: each call takes the structure's mutex (faults come from
 * the pager's ring thread, places from the receivers).  The fault
 * callback runs after Xen's request was taken, so a frame's load may end
 * before its wait is recorded, and that place charges nobody: a caller
 * that sees postcopy_blocktime_fault() return true checks whether the
 * frame is still absent and, if not, ends the wait itself with
 * postcopy_blocktime_placed().  Since the place clears the frame's absent
 * mark before it takes the mutex, either the place finds the wait or the
 * check finds the frame present.
 */
#ifndef XENRAM_MIGRATION_BLOCKTIME_H
#define XENRAM_MIGRATION_BLOCKTIME_H

#include <stdbool.h>
#include <stdint.h>

typedef struct PostcopyBlocktime PostcopyBlocktime;

/*
 * Accounting for vCPUs [0, @nr_vcpus), every total 0, nobody waiting.
 * NULL when out of memory.
 */
PostcopyBlocktime *postcopy_blocktime_new(uint32_t nr_vcpus);

/* NULL is a no-op. */
void postcopy_blocktime_free(PostcopyBlocktime *bt);

/*
 * vCPU @vcpu was paused on frame @gfn at @now_ns.  true when this starts
 * a wait; false when it is ignored: @vcpu is not below the count, or it
 * waits for @gfn already (a wait is charged once, from its first fault).
 * A vCPU that waits for another frame cannot fault (Xen paused it): that
 * wait ended unseen (its frame came back without a place, e.g. dropped
 * by the guest) and is replaced, not charged.
 */
bool postcopy_blocktime_fault(PostcopyBlocktime *bt, uint32_t vcpu,
                              uint64_t gfn, uint64_t now_ns);

/*
 * Frame @gfn's page is in, as of @now_ns: every wait for it ends, each
 * vCPU charged @now_ns - its start (0 if the start is later: the two
 * clocks were read on different threads).  How many vCPUs were charged.
 */
unsigned int postcopy_blocktime_placed(PostcopyBlocktime *bt, uint64_t gfn,
                                       uint64_t now_ns);

/*
 * Each vCPU's time blocked in waits that ended, in ns, into @ns[0..) for
 * at most @max vCPUs.  Returns the vCPU count (which may be above @max).
 */
uint32_t postcopy_blocktime_totals(PostcopyBlocktime *bt, uint64_t *ns,
                                   uint32_t max);

/* How many vCPUs wait now. */
uint32_t postcopy_blocktime_waiting(PostcopyBlocktime *bt);

#endif /* XENRAM_MIGRATION_BLOCKTIME_H */
