/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen-memory.c - the Xen listener (see xen-memory.h).
 *
 * Callbacks run with the region context's lock held, one at a time, so the
 * listener's own state needs no lock of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory/xen-memory.h"

typedef struct GfnRange {
    uint64_t gfn, n;
} GfnRange;

typedef struct XenListener {
    MemoryListener l;
    XenMemory *xm;
    bool is_mmio;
} XenListener;

struct XenMemory {
    XenHandles *xh;
    RAMList *ram;
    AddressSpace *as;
    XenListener mem, io;
    bool have_io;
    int ioservid;                   /* < 0: no ioreq server */
    bool incoming;

    GfnRange *populated;            /* what we populated, by block */
    size_t npopulated;

    bool vga_tracking;              /* one framebuffer range, as Xen allows */
    uint64_t vga_gfn, vga_npages;

    unsigned int errors;
    char last_error[1024];
};

/*
 * Stop VRAM tracking.  Xen takes nr = 0 as "stop", but Linux's privcmd
 * refuses a NULL buffer (EFAULT) before Xen sees the call: hand it a
 * non-NULL buffer that is not page-aligned, which it accepts.
 */
static void stop_vram_tracking(XenMemory *xm)
{
    unsigned long buf[2];

    xen_track_dirty_vram(xm->xh, 0, 0, &buf[1]);
}

static void record_error(XenMemory *xm, const char *what)
{
    xm->errors++;
    snprintf(xm->last_error, sizeof(xm->last_error), "%s: %s", what,
             xen_last_error());
}

static XenMemory *to_xm(MemoryListener *l)
{
    return caa_container_of(l, XenListener, l)->xm;
}

static bool listener_is_mmio(MemoryListener *l)
{
    return caa_container_of(l, XenListener, l)->is_mmio;
}

/* ---- populating the device model's own RAM ------------------------------ */

static bool populated(XenMemory *xm, uint64_t gfn)
{
    for (size_t i = 0; i < xm->npopulated; i++) {
        if (xm->populated[i].gfn == gfn) {
            return true;
        }
    }
    return false;
}

static void populate_block(XenMemory *xm, RAMBlock *block)
{
    uint64_t gfn = block->offset >> XR_PAGE_BITS;
    uint64_t n = ram_block_used_pages(block);
    GfnRange *p;
    char what[RAM_BLOCK_IDSTR_SIZE + 32];
    int ret;

    if (xm->incoming || populated(xm, gfn)) {
        return;
    }
    p = realloc(xm->populated, (xm->npopulated + 1) * sizeof(*p));
    if (!p) {
        record_error(xm, "populating RAM: out of memory");
        return;
    }
    xm->populated = p;
    ret = xen_populate(xm->xh, gfn, n);
    if (ret) {
        snprintf(what, sizeof(what), "populating '%s'", block->idstr);
        record_error(xm, what);
        return;
    }
    /* Fresh frames may hold what a live domain gave back (xen.h). */
    ret = xen_zero_frames(xm->xh, gfn, n);
    if (ret) {
        snprintf(what, sizeof(what), "clearing '%s'", block->idstr);
        record_error(xm, what);
        xen_depopulate(xm->xh, gfn, n);
        return;
    }
    xm->populated[xm->npopulated++] = (GfnRange) { gfn, n };
}

/* ---- listener callbacks --------------------------------------------------- */

static void xen_region_add(MemoryListener *l, MemoryRegionSection *s)
{
    XenMemory *xm = to_xm(l);
    uint64_t end = s->offset_within_address_space + s->size - 1;

    if (s->ram_addr != RAM_ADDR_INVALID) {
        RAMBlock *block = memory_region_ram_block(s->mr);

        if (block && (block->flags & RAM_XEN_POPULATE)) {
            populate_block(xm, block);
        }
        return;
    }
    if (xm->ioservid >= 0 &&
        xen_ioreq_map_range(xm->xh, xm->ioservid, listener_is_mmio(l),
                            s->offset_within_address_space, end)) {
        record_error(xm, "claiming an I/O range for the ioreq server");
    }
}

static void xen_region_del(MemoryListener *l, MemoryRegionSection *s)
{
    XenMemory *xm = to_xm(l);
    uint64_t end = s->offset_within_address_space + s->size - 1;

    if (s->ram_addr != RAM_ADDR_INVALID) {
        if (xm->vga_tracking &&
            xm->vga_gfn == s->offset_within_address_space >> XR_PAGE_BITS) {
            xm->vga_tracking = false;
            stop_vram_tracking(xm);
        }
        return;
    }
    if (xm->ioservid >= 0 &&
        xen_ioreq_unmap_range(xm->xh, xm->ioservid, listener_is_mmio(l),
                              s->offset_within_address_space, end)) {
        record_error(xm, "releasing an I/O range of the ioreq server");
    }
}

static void xen_log_start(MemoryListener *l, MemoryRegionSection *s,
                          unsigned int old_mask, unsigned int new_mask)
{
    XenMemory *xm = to_xm(l);
    unsigned int vga = DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA);

    if (s->ram_addr == RAM_ADDR_INVALID || !(new_mask & vga) ||
        (old_mask & vga)) {
        return;
    }
    if (xm->vga_tracking) {
        /* Xen tracks one framebuffer per domain; the newest one wins. */
        stop_vram_tracking(xm);
    }
    xm->vga_tracking = true;
    xm->vga_gfn = s->offset_within_address_space >> XR_PAGE_BITS;
    xm->vga_npages = s->size >> XR_PAGE_BITS;
}

static void xen_log_stop(MemoryListener *l, MemoryRegionSection *s,
                         unsigned int old_mask, unsigned int new_mask)
{
    XenMemory *xm = to_xm(l);
    unsigned int vga = DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA);

    if (s->ram_addr == RAM_ADDR_INVALID || !(old_mask & vga) ||
        (new_mask & vga) || !xm->vga_tracking ||
        xm->vga_gfn != s->offset_within_address_space >> XR_PAGE_BITS) {
        return;
    }
    xm->vga_tracking = false;
    /* Stopping can only fail if the domain is gone: nothing to undo. */
    stop_vram_tracking(xm);
}

static void xen_log_sync(MemoryListener *l, MemoryRegionSection *s)
{
    XenMemory *xm = to_xm(l);
    uint64_t gfn = s->offset_within_address_space >> XR_PAGE_BITS;
    unsigned long *bitmap;
    int ret;

    if (s->ram_addr == RAM_ADDR_INVALID || !xm->vga_tracking ||
        gfn != xm->vga_gfn ||
        !(s->dirty_log_mask & DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA))) {
        return;
    }
    bitmap = calloc(BITS_TO_LONGS(xm->vga_npages), sizeof(long));
    if (!bitmap) {
        record_error(xm, "syncing VRAM: out of memory");
        return;
    }
    ret = xen_track_dirty_vram(xm->xh, gfn, xm->vga_npages, bitmap);
    if (ret == -ENODATA) {
        /* Tracking (re)started: Xen cannot tell, so all of it is dirty. */
        dirty_memory_set_range(&xm->ram->dirty, s->ram_addr >> XR_PAGE_BITS,
                               xm->vga_npages,
                               DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA));
    } else if (ret == 0) {
        dirty_memory_set_lebitmap(&xm->ram->dirty, bitmap,
                                  s->ram_addr >> XR_PAGE_BITS,
                                  xm->vga_npages,
                                  DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA));
    } else {
        record_error(xm, "track_dirty_vram");
    }
    free(bitmap);
}

/* ---- own-engine log-dirty mirror ---------------------------------------- */

/* Bits [gfn, gfn + n) of @src as a bitmap starting at bit 0 (malloc'ed). */
static unsigned long *extract_bits(const unsigned long *src, uint64_t gfn,
                                   uint64_t n)
{
    unsigned long *out = calloc(BITS_TO_LONGS(n), sizeof(long));

    if (!out) {
        return NULL;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (xr_test_bit(gfn + i, src)) {
            xr_set_bit(i, out);
        }
    }
    return out;
}

/* Set @mask for the pages of [gfn, gfn + n) that @bitmap (by gfn) holds. */
static int mirror_bits(XenMemory *xm, const unsigned long *bitmap,
                       uint64_t gfn, uint64_t n, uint64_t ram_page,
                       unsigned int mask)
{
    unsigned long *part;

    if (gfn % BITS_PER_LONG == 0) {
        dirty_memory_set_lebitmap(&xm->ram->dirty, bitmap + gfn / BITS_PER_LONG,
                                  ram_page, n, mask);
        return 0;
    }
    part = extract_bits(bitmap, gfn, n);
    if (!part) {
        return -ENOMEM;
    }
    dirty_memory_set_lebitmap(&xm->ram->dirty, part, ram_page, n, mask);
    free(part);
    return 0;
}

int64_t xen_memory_sync_migration(XenMemory *xm, bool clear)
{
    const FlatView *view;
    const FlatRange *fr;
    unsigned long *bitmap;
    uint64_t npages = 0;
    int64_t ret;

    rcu_read_lock();
    view = address_space_get_flatview(xm->as);
    FLATVIEW_FOREACH(fr, view) {
        if (flatrange_is_ram(fr)) {
            npages = MAX(npages, (fr->addr + fr->size) >> XR_PAGE_BITS);
        }
    }
    rcu_read_unlock();
    if (npages == 0) {
        return 0;
    }
    bitmap = calloc(BITS_TO_LONGS(npages), sizeof(long));
    if (!bitmap) {
        return -ENOMEM;
    }
    ret = xen_logdirty_read(xm->xh, bitmap, npages, clear, false, NULL);
    if (ret) {
        record_error(xm, clear ? "log-dirty CLEAN" : "log-dirty PEEK");
        free(bitmap);
        return ret;
    }
    ret = xr_bitmap_count(bitmap, npages);

    /* Xen numbers frames by gfn, dirty/ by ram_addr page: go range by range. */
    rcu_read_lock();
    view = address_space_get_flatview(xm->as);
    FLATVIEW_FOREACH(fr, view) {
        uint64_t gfn = fr->addr >> XR_PAGE_BITS;
        uint64_t n = fr->size >> XR_PAGE_BITS;
        uint64_t page = fr->ram_addr >> XR_PAGE_BITS;
        uint64_t lo, hi;

        if (!flatrange_is_ram(fr) || gfn + n > npages) {
            continue;
        }
        if (mirror_bits(xm, bitmap, gfn, n, page,
                        DIRTY_CLIENT_MASK(DIRTY_MEMORY_MIGRATION))) {
            ret = -ENOMEM;
            break;
        }
        /*
         * Under HAP one p2m type serves both trackers: a CLEAN re-arms the
         * framebuffer as well, so the writes it reports there are gone
         * from the next track_dirty_vram.  The VGA client gets them from
         * here for as long as the engine owns log-dirty.  A PEEK takes
         * nothing away from the framebuffer's tracker.
         */
        lo = MAX(gfn, xm->vga_gfn);
        hi = MIN(gfn + n, xm->vga_gfn + xm->vga_npages);
        if (clear && xm->vga_tracking && lo < hi &&
            mirror_bits(xm, bitmap, lo, hi - lo, page + (lo - gfn),
                        DIRTY_CLIENT_MASK(DIRTY_MEMORY_VGA))) {
            ret = -ENOMEM;
            break;
        }
    }
    rcu_read_unlock();
    free(bitmap);
    return ret;
}

/* ---- life cycle ------------------------------------------------------------ */

static void listener_init(XenListener *xl, XenMemory *xm, bool is_mmio)
{
    memset(&xl->l, 0, sizeof(xl->l));
    xl->xm = xm;
    xl->is_mmio = is_mmio;
    xl->l.region_add = xen_region_add;
    xl->l.region_del = xen_region_del;
    xl->l.log_start = xen_log_start;
    xl->l.log_stop = xen_log_stop;
    xl->l.log_sync = xen_log_sync;
    xl->l.priority = 10;
    xl->l.name = is_mmio ? "xen-memory" : "xen-io";
}

int xen_memory_new(XenHandles *xh, RAMList *ram, AddressSpace *as,
                   AddressSpace *io, int ioservid, bool incoming,
                   XenMemory **out)
{
    XenMemory *xm;
    int ret;

    if (!xh || !ram || !as) {
        return -EINVAL;
    }
    xm = calloc(1, sizeof(*xm));
    if (!xm) {
        return -ENOMEM;
    }
    xm->xh = xh;
    xm->ram = ram;
    xm->as = as;
    xm->ioservid = ioservid;
    xm->incoming = incoming;
    listener_init(&xm->mem, xm, true);
    listener_init(&xm->io, xm, false);
    ret = memory_listener_register(&xm->mem.l, as);
    if (!ret && io) {
        ret = memory_listener_register(&xm->io.l, io);
        if (ret) {
            memory_listener_unregister(&xm->mem.l);
        } else {
            xm->have_io = true;
        }
    }
    if (ret) {
        free(xm->populated);
        free(xm);
        return ret;
    }
    *out = xm;
    return 0;
}

void xen_memory_free(XenMemory *xm)
{
    if (!xm) {
        return;
    }
    memory_listener_unregister(&xm->mem.l);
    if (xm->have_io) {
        memory_listener_unregister(&xm->io.l);
    }
    free(xm->populated);
    free(xm);
}

void xen_memory_set_incoming(XenMemory *xm, bool incoming)
{
    xm->incoming = incoming;
}

const char *xen_memory_last_error(XenMemory *xm)
{
    return xm->last_error;
}

unsigned int xen_memory_errors(XenMemory *xm)
{
    return xm->errors;
}
