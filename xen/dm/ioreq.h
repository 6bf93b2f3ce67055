/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ioreq.h - xenram's ioreq server: the thread that answers what Xen
 * forwards (docs/ioreq.md).
 *
 *   vCPU --(Xen: ioreq page + event channel)--> ioreq thread
 *        INVALIDATE   -> mapcache_invalidate(), then complete
 *        PIO / COPY   -> the FlatView of the io / memory address space:
 *        PCI_CONFIG      an I/O region's ops, else "unassigned" (reads all
 *                        ones, writes dropped, logged once per range);
 *                        data_is_ptr requests move their data through
 *                        guest memory (memory/access.c, bounds checked)
 *        TIMEOFFSET, others -> acknowledged
 *   A request that is malformed (size 0 or > 8, a count whose span
 *   overflows, data outside guest RAM) completes with no effect and is
 *   counted; it never stops the thread.
 *
 * The server is enabled only once its pages are mapped and the thread
 * serves them: an enabled server that nobody answers makes every frame
 * removal hang (or, with unmapped pages, crash) the guest's vCPUs.
 */
#ifndef XENRAM_DM_IOREQ_H
#define XENRAM_DM_IOREQ_H

#include <stdbool.h>
#include <stdint.h>

#include "xen/ioreq.h"
#include "memory/access.h"
#include "memory/mapcache.h"
#include "memory/region.h"

typedef struct IoreqStats {
    uint64_t requests;          /* every request taken, buffered included */
    uint64_t invalidates;       /* IOREQ_TYPE_INVALIDATE answered */
    uint64_t pio, mmio, pci_config;
    uint64_t buffered;          /* requests from the buffered ring */
    uint64_t unassigned;        /* accesses that hit no I/O region */
    uint64_t bad;               /* malformed: completed with no effect */
    uint64_t other;             /* TIMEOFFSET and unknown types: acked */
    uint64_t spurious;          /* events with no request behind them */
} IoreqStats;

/*
 * What requests act on, and what the handler keeps between them.  Any
 * pointer may be NULL (INVALIDATE then does nothing, accesses are
 * unassigned, data_is_ptr requests are bad).
 */
typedef struct IoreqHandler {
    MapCache *mc;               /* INVALIDATE */
    AddressSpace *mem;          /* IOREQ_TYPE_COPY */
    AddressSpace *io;           /* IOREQ_TYPE_PIO */
    GuestMemory *gm;            /* data_is_ptr data */
    /* Messages (unassigned accesses once per range, bad requests). */
    void (*log)(const char *msg);

    IoreqStats st;              /* counted by ioreq_handle() */
    /* private: the pages / ports already logged as unassigned */
    uint64_t logged[64];
    unsigned int nr_logged;
} IoreqHandler;

/*
 * Act on one request and fill in what the vCPU gets back (req->data for a
 * read without data_is_ptr).  Counts it in @h->st.  Returns 0, or -EINVAL
 * for a malformed request (completed all the same, with no effect).  Not
 * concurrent on one @h; any RCU-registered thread, outside a read-side
 * critical section.
 */
int ioreq_handle(IoreqHandler *h, ioreq_t *req);

typedef struct IoreqService IoreqService;

/*
 * Open an ioreq server for the domain of @xh (xen_ioreq_server_open), start
 * its thread, then enable it.  The service copies *@t (its counters start
 * at zero); what it points to must outlive the service.  0 and
 * *@out, or -errno with a sentence in @err.
 */
int ioreq_service_start(XenHandles *xh, const IoreqHandler *t,
                        IoreqService **out, char *err, size_t errlen);

/* Its server id (for claiming ranges). */
ioservid_t ioreq_service_id(const IoreqService *svc);

/* A snapshot of the counters; any thread. */
void ioreq_service_stats(IoreqService *svc, IoreqStats *st);

/* Stop the thread, disable and destroy the server.  NULL is a no-op. */
void ioreq_service_stop(IoreqService *svc);

#endif /* XENRAM_DM_IOREQ_H */
