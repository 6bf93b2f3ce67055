/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen-fake.h - a one-domain stand-in for the Xen calls the mapcache makes,
 * for unit tests and benchmarks that must run without Xen or the
 * simulator.
 *
 * Linked with --wrap for xc_interface_open/close, xenforeignmemory_open/
 * close/map2/unmap, xendevicemodel_open/close and xc_domain_getinfolist
 * (see XEN_FAKE_WRAP in xen/module.mk), so that the real xen/xen.c runs on
 * top of it.  Domain FAKE_DOMID exists; its memory is a memfd, mapped
 * frame by frame as privcmd would: a frame that is not populated gets
 * -ENOENT in err[] and stays PROT_NONE, so touching it crashes the test.
 */
#ifndef XENRAM_TESTS_XEN_FAKE_H
#define XENRAM_TESTS_XEN_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "xen/xen.h"

#define FAKE_DOMID 7

/* A guest of @npages frames, all populated and zero.  0 or -errno. */
int fake_xen_init(uint64_t npages);
void fake_xen_fini(void);

/* xen_open(FAKE_DOMID) without xenstore; NULL on failure. */
XenHandles *fake_xen_open(void);

/* The guest's memory as the guest sees it (all frames, populated or not). */
uint8_t *fake_guest(void);

/* Populate or release frames [gfn, gfn + n). */
void fake_set_populated(uint64_t gfn, uint64_t n, bool populated);

/*
 * Make map calls install every page table entry at once (MAP_POPULATE), as
 * privcmd does, so that their cost grows with the frames mapped.
 */
void fake_set_populate_on_map(bool on);

/* The next @count map calls fail as a whole with @err. */
void fake_fail_maps(int err, unsigned int count);

unsigned int fake_map_calls(void);
unsigned int fake_unmap_calls(void);
/* Pages mapped by map2 and not unmapped yet. */
int64_t fake_mapped_pages(void);
/* prot of the last map2 call. */
int fake_last_prot(void);

#endif /* XENRAM_TESTS_XEN_FAKE_H */
