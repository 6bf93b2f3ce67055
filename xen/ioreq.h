/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ioreq.h - the Xen side of an ioreq server: the pages Xen and a device
 * model share, the buffered ring and the event channels, for one domain.
 *
 * Xen forwards a vCPU's access to a range the server claimed (and, after
 * every p2m removal, a map-cache invalidation) as a request in the vCPU's
 * slot of the shared ioreq page (public/hvm/ioreq.h), then notifies the
 * vCPU's event channel and blocks the vCPU until the slot says
 * IORESP_READY.  The slot's state machine, with the barriers Xen's side
 * pairs with (xen/common/ioreq.c, wait_for_io):
 *
 *   NONE --Xen--> READY --us--> INPROCESS --us--> IORESP_READY --Xen--> NONE
 *
 *   take:      read state == READY, read barrier, copy the request, state =
 *              INPROCESS
 *   complete:  write data (reads), write barrier, state = IORESP_READY,
 *              notify the vCPU's port
 *
 * Posted writes Xen need not wait for go through the buffered ring (one
 * page: a read and a write pointer and 511 slots; an 8-byte access takes
 * two slots) with its own event channel; the device model consumes from
 * read_pointer to write_pointer and advances read_pointer atomically
 * (HVM_IOREQSRV_BUFIOREQ_ATOMIC: Xen rebases both pointers with cmpxchg).
 *
 * This layer holds no policy: xen/dm/ioreq.c decides what a request means.
 *
 * Concurrency: one serving thread calls pending / take / complete /
 * buf_next; open, enable and close are control plane, not concurrent
 * with it.
 */
#ifndef XENRAM_XEN_IOREQ_H
#define XENRAM_XEN_IOREQ_H

#include <stdbool.h>
#include <stdint.h>

/* xen.h first: xenctrl.h sets up what Xen's public headers need. */
#include "xen/xen.h"

#include <xen/hvm/ioreq.h>

typedef struct XenIoreqServer XenIoreqServer;

/* xen_ioreq_pending(): the buffered ring's port fired. */
#define XEN_IOREQ_BUFFERED (-1000)

/*
 * Create an ioreq server with a buffered ring (BUFIOREQ_ATOMIC) for the
 * domain of @xh, map its two pages (xenforeignmemory_map_resource of
 * XENMEM_resource_ioreq_server: frame 0 the buffered ring, frame 1 the
 * ioreq page) and bind the buffered ring's event channel.  The server is
 * left *disabled*: Xen sends it nothing until xen_ioreq_server_enable().
 * 0 and *@out, or -errno with xen_last_error() naming the call; nothing
 * stays behind on failure.
 */
int xen_ioreq_server_open(XenHandles *xh, XenIoreqServer **out);

/*
 * Enable the server (Xen writes each vCPU's event channel into its slot
 * then) and bind one event channel per vCPU.  Call only once a thread is
 * about to serve the server: from here on, every frame removal makes
 * each vCPU wait for this server's answer.  0 or -errno (the server is
 * disabled again on failure).
 */
int xen_ioreq_server_enable(XenIoreqServer *s);

/*
 * Disable the server: Xen sends it nothing new (requests already posted
 * stay in their slots, to be completed).  0 or -errno.
 */
int xen_ioreq_server_disable(XenIoreqServer *s);

/*
 * Disable and destroy the server, unbind its channels, unmap its pages.
 * Requests in flight are not completed (Xen drops a vCPU's wait when the
 * server goes).  NULL is a no-op.  Not concurrent with anything on @s.
 */
void xen_ioreq_server_close(XenIoreqServer *s);

ioservid_t xen_ioreq_server_id(const XenIoreqServer *s);
unsigned int xen_ioreq_server_vcpus(const XenIoreqServer *s);

/* The event channel fd to poll (readable: xen_ioreq_pending() has one). */
int xen_ioreq_server_fd(XenIoreqServer *s);

/*
 * The next fired port: the vCPU index it belongs to, XEN_IOREQ_BUFFERED,
 * -EAGAIN when none is pending, -ENOENT for a port that is not ours, or
 * -errno.  The port is unmasked again before returning, so an event that
 * arrives while the caller works on this one is not lost.
 */
int xen_ioreq_pending(XenIoreqServer *s);

/*
 * Take the request of vCPU @vcpu if its slot is READY: copy it into *@req,
 * mark the slot INPROCESS and return true.  False when the slot holds no
 * new request (a spurious or coalesced event).
 */
bool xen_ioreq_take(XenIoreqServer *s, unsigned int vcpu, ioreq_t *req);

/*
 * Complete the request taken from @vcpu: store @req->data into the slot
 * (what a read returns), then IORESP_READY, then notify the vCPU.
 * 0 or -errno (the notification failed: the vCPU sees the state anyway
 * when Xen next looks).
 */
int xen_ioreq_complete(XenIoreqServer *s, unsigned int vcpu,
                       const ioreq_t *req);

/*
 * The next request of the buffered ring, decoded into *@req (type, dir,
 * size, addr, data; count 1): 1, 0 when the ring is empty, or -EIO when
 * the pointers are inconsistent (the ring is then resynchronised: its
 * requests are dropped).
 */
int xen_ioreq_buf_next(XenIoreqServer *s, ioreq_t *req);

#endif /* XENRAM_XEN_IOREQ_H */
