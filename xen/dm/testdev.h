/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * testdev.h - a test device that DMA-writes guest memory (--test-dma).
 *
 * It exists for the end-to-end tests: while the guest runs, a thread picks
 * random guest RAM pages and writes a pattern into them through
 * guest_memory_map()/guest_memory_unmap(), exactly as an emulated device's
 * DMA does, so its writes are marked dirty and reported to Xen by the same
 * code paths.  Like any device it quiesces when the device model is
 * stopped: testdev_pause() returns only once no write is in flight.
 *
 * Each page written carries "XRTDMA\0\0", its gfn and a sequence number,
 * then a fill derived from both.
 */
#ifndef XENRAM_DM_TESTDEV_H
#define XENRAM_DM_TESTDEV_H

#include <stdint.h>

#include "memory/access.h"

typedef struct TestDev TestDev;

/* A range of guest-physical RAM the device may write. */
typedef struct TestDevRange {
    uint64_t gpa, size;
} TestDevRange;

/*
 * Start writing @rate pages per second into @ranges (copied), paused
 * until testdev_resume().  0 or -errno.
 */
int testdev_start(GuestMemory *gm, const TestDevRange *ranges,
                  unsigned int nranges, unsigned int rate, TestDev **out);

/* Stop writing; returns once no write is in flight.  Idempotent. */
void testdev_pause(TestDev *td);
void testdev_resume(TestDev *td);

/* Pages written so far, and DMA mappings that failed. */
uint64_t testdev_pages_written(TestDev *td);
uint64_t testdev_errors(TestDev *td);

/* Stop the thread and free. */
void testdev_free(TestDev *td);

#endif /* XENRAM_DM_TESTDEV_H */
