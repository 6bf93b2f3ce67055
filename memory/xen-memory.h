/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen-memory.h - the Xen listener: what the region tree means to Xen.
 *
 * A MemoryListener that keeps Xen in step with an address space:
 *  - RAM of the device model's own blocks (RAM_XEN_POPULATE: VRAM, ROMs)
 *    is populated with xc_domain_populate_physmap_exact at gfn = ram_addr
 *    >> 12 when it first appears, unless the domain is incoming (its
 *    frames came with the migration);
 *  - I/O regions are claimed for the device model's ioreq server (MMIO in
 *    the memory address space, port ranges in the I/O address space);
 *  - a RAM range with VGA logging on is tracked with track_dirty_vram, and
 *    log_sync mirrors Xen's bitmap for it into the VGA client of dirty/;
 *  - when xenram's own migration engine owns Xen's log-dirty,
 *    xen_memory_sync_migration() CLEANs it and mirrors the result into the
 *    MIGRATION client, and the framebuffer's part of a CLEAN into the VGA
 *    client too (HAP's CLEAN re-arms the framebuffer's tracking as well,
 *    so those writes would otherwise never reach the display).  During
 *    `xl migrate` libxc owns log-dirty and this
 *    is never called: the device model's writes reach Xen through
 *    memory/modified instead.
 *
 * Listener callbacks cannot fail; a Xen call that fails is logged, counted
 * and kept in xen_memory_last_error() for whoever made the change (the
 * hot-plug code checks it after its commit).
 */
#ifndef XENRAM_MEMORY_XEN_MEMORY_H
#define XENRAM_MEMORY_XEN_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/ramblock.h"
#include "memory/region.h"
#include "xen/xen.h"

typedef struct XenMemory XenMemory;

/*
 * Create the listener for the guest-physical address space @as (MMIO) and,
 * if not NULL, the port I/O space @io, with the ioreq server @ioservid
 * (negative: none, I/O regions are then not claimed).  @incoming: the
 * domain is being restored, populate nothing.  The listeners are
 * registered at once and replay the current view.  0 or -errno.
 */
int xen_memory_new(XenHandles *xh, RAMList *ram, AddressSpace *as,
                   AddressSpace *io, int ioservid, bool incoming,
                   XenMemory **out);

/* Unregister and free.  Tracking of VRAM is stopped. */
void xen_memory_free(XenMemory *xm);

/* The restore is over: later RAM is populated again. */
void xen_memory_set_incoming(XenMemory *xm, bool incoming);

/*
 * CLEAN (or, with !@clear, PEEK) Xen's log-dirty bitmap and OR it into the
 * MIGRATION client for every RAM range of the address space.  Only for
 * xenram's own migration engine, which owns log-dirty.  Returns the number
 * of dirty frames Xen reported, or -errno.
 */
int64_t xen_memory_sync_migration(XenMemory *xm, bool clear);

/* The last failure of a Xen call made by the listener, "" if none. */
const char *xen_memory_last_error(XenMemory *xm);

/* Number of failed Xen calls so far. */
unsigned int xen_memory_errors(XenMemory *xm);

#endif /* XENRAM_MEMORY_XEN_MEMORY_H */
