/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotplug.c - RAM hotplug: slots, their memory, their blocks and regions
 * (see hotplug.h; the xenstore protocol is in hotplug-xs.c).
 *
 * Order of an add, and why:
 *
 *   validate       everything that can be checked without changing
 *                  anything, so that most refusals cost nothing;
 *   populate       Xen first: if the frames cannot be had, nothing of
 *                  ours exists yet;
 *   map            a probe through the mapcache (first and last page), so
 *                  that a slot that cannot be reached is refused before
 *                  anyone is told about it;
 *   block          ram_block_add(): the dirty bitmaps grow under RCU (a
 *                  reader setting bits meanwhile never waits and loses
 *                  none), the range is marked dirty for every client
 *                  before the block is visible, ram_block_added notifiers
 *                  run;
 *   region         added to the root inside a transaction that re-checks
 *                  for overlap, since another writer may have mapped
 *                  something there since the validation; listeners see
 *                  region_add on commit.
 *
 * A remove runs the other way round.  The region leaves the tree first;
 * after a grace period no new DMA mapping of the range can start (the
 * access layer looks the range up in the FlatView, under RCU, before it
 * locks a mapcache bucket), so a second look at the lock counts is final:
 * still locked means the region goes back and the request is refused.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "hotplug/hotplug-internal.h"

/* ---- messages ----------------------------------------------------------- */

void hp_debug(Hotplug *hp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!hp->cfg.debug) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hp->cfg.debug(hp->cfg.log_opaque, msg);
}

void hp_log(Hotplug *hp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!hp->cfg.log) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hp->cfg.log(hp->cfg.log_opaque, msg);
}


/* "512 MiB", "4 KiB" or "1234 bytes": sizes as a person reads them. */
/* Whether a cap on hot-plugged memory applies (maxmem was given). */
static bool hp_capped(const Hotplug *hp)
{
    return hp->cfg.max_set || hp->cfg.max_bytes;
}

static const char *hp_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes && bytes % (1ULL << 30) == 0) {
        snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
    } else if (bytes && bytes % (1ULL << 20) == 0) {
        snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
    } else if (bytes && bytes % 1024 == 0) {
        snprintf(buf, len, "%" PRIu64 " KiB", bytes >> 10);
    } else {
        snprintf(buf, len, "%" PRIu64 " bytes", bytes);
    }
    return buf;
}

/* ---- create / free ------------------------------------------------------ */

int hotplug_new(const HotplugConfig *cfg, Hotplug **out, char *err,
                size_t errlen)
{
    Hotplug *hp;
    int ret;

    if (!cfg || !out || !cfg->ram || !cfg->ctx || !cfg->as || !cfg->root) {
        return xr_error(err, errlen, -EINVAL, "hotplug: the RAMList, region "
                       "context, address space and root region are needed");
    }
    if (cfg->window_start >= cfg->window_end ||
        (cfg->window_start | cfg->window_end) & ~XR_PAGE_MASK) {
        return xr_error(err, errlen, -EINVAL, "hotplug: the window [0x%" PRIx64
                       ", 0x%" PRIx64 ") is empty or not page-aligned",
                       cfg->window_start, cfg->window_end);
    }
    if (cfg->align && (!IS_POW2(cfg->align) || cfg->align < XR_PAGE_SIZE)) {
        return xr_error(err, errlen, -EINVAL, "hotplug: alignment 0x%" PRIx64
                       " is not a power of two of at least 4 KiB",
                       cfg->align);
    }
    if (cfg->nr_slots > HOTPLUG_MAX_SLOTS) {
        return xr_error(err, errlen, -EINVAL, "hotplug: %u slots asked, at "
                       "most %u are supported", cfg->nr_slots,
                       HOTPLUG_MAX_SLOTS);
    }
    if (cfg->nr_reserved && !cfg->reserved) {
        return xr_error(err, errlen, -EINVAL, "hotplug: reserved ranges "
                       "announced but not given");
    }
    hp = calloc(1, sizeof(*hp));
    if (!hp) {
        return xr_error(err, errlen, -ENOMEM, "hotplug: out of memory");
    }
    hp->cfg = *cfg;
    if (!hp->cfg.align) {
        hp->cfg.align = HOTPLUG_DEFAULT_ALIGN;
    }
    if (!hp->cfg.nr_slots) {
        hp->cfg.nr_slots = HOTPLUG_MAX_SLOTS;
    }
    hp->incoming = cfg->incoming;
    if (cfg->nr_reserved) {
        hp->reserved = calloc(cfg->nr_reserved, sizeof(*hp->reserved));
        hp->reserved_names = calloc(cfg->nr_reserved, sizeof(char *));
        if (!hp->reserved || !hp->reserved_names) {
            ret = -ENOMEM;
            goto fail_nomem;
        }
        for (unsigned int i = 0; i < cfg->nr_reserved; i++) {
            const char *name = cfg->reserved[i].name ? cfg->reserved[i].name
                                                     : "reserved";

            hp->reserved[i] = cfg->reserved[i];
            hp->reserved_names[i] = strdup(name);
            if (!hp->reserved_names[i]) {
                ret = -ENOMEM;
                goto fail_nomem;
            }
            hp->reserved[i].name = hp->reserved_names[i];
        }
    }
    hp->cfg.reserved = hp->reserved;
    /* Only the copies are kept: the caller's strings may go away. */
    hp->cfg.xs_base = NULL;
    pthread_mutex_init(&hp->lock, NULL);
    pthread_mutex_init(&hp->xs_lock, NULL);
    if (!cfg->no_xenstore) {
        if (cfg->xs_base) {
            snprintf(hp->memdir, sizeof(hp->memdir), "%s/memory",
                     cfg->xs_base);
        } else {
            snprintf(hp->memdir, sizeof(hp->memdir),
                     "/local/domain/0/device-model/%u/memory", cfg->domid);
        }
        ret = hp_xs_open(hp, err, errlen);
        if (ret) {
            hotplug_free(hp);
            return ret;
        }
    }
    *out = hp;
    return 0;

fail_nomem:
    if (hp->reserved_names) {
        for (unsigned int i = 0; i < cfg->nr_reserved; i++) {
            free(hp->reserved_names[i]);
        }
    }
    free(hp->reserved_names);
    free(hp->reserved);
    free(hp);
    return xr_error(err, errlen, ret, "hotplug: out of memory");
}

void hotplug_free(Hotplug *hp)
{
    HotplugSlot *gone[HOTPLUG_MAX_SLOTS];
    unsigned int n = 0;

    if (!hp) {
        return;
    }
    hp_xs_close(hp);
    memory_region_transaction_begin(hp->cfg.ctx);
    for (uint32_t i = 0; i < HOTPLUG_MAX_SLOTS; i++) {
        HotplugSlot *s = hp->slots[i];

        if (s) {
            rcu_assign_pointer(hp->slots[i], NULL);
            memory_region_del_subregion(hp->cfg.root, &s->mr);
            gone[n++] = s;
        }
    }
    memory_region_transaction_commit(hp->cfg.ctx);
    synchronize_rcu();
    for (unsigned int i = 0; i < n; i++) {
        HotplugSlot *s = gone[i];

        if (memory_region_destroy(&s->mr) == 0) {
            ram_block_remove(hp->cfg.ram, s->block);
            free(s);
        }
        /* else: still in a view (a failed render); leaking beats a crash */
    }
    if (hp->reserved_names) {
        for (unsigned int i = 0; i < hp->cfg.nr_reserved; i++) {
            free(hp->reserved_names[i]);
        }
    }
    free(hp->reserved_names);
    free(hp->reserved);
    pthread_mutex_destroy(&hp->lock);
    pthread_mutex_destroy(&hp->xs_lock);
    free(hp);
}

/* ---- validation ---------------------------------------------------------- */

static bool overlaps(uint64_t a, uint64_t a_end, uint64_t b, uint64_t b_end)
{
    return a < b_end && b < a_end;
}

/*
 * Whether [@gpa, @end) is free: not in another slot, a reserved range or
 * anything the current FlatView maps (RAM, MMIO).  0, or -EADDRINUSE with
 * the first conflict in @err and its end in *@conflict_end.  Under the
 * Hotplug's lock (the slots); takes the RCU read lock itself.
 */
static int hp_check_free(Hotplug *hp, uint64_t gpa, uint64_t end,
                         uint64_t *conflict_end, char *err, size_t errlen)
{
    const FlatView *view;
    const FlatRange *fr;
    int ret = 0;

    for (uint32_t i = 0; i < HOTPLUG_MAX_SLOTS; i++) {
        const HotplugSlot *s = hp->slots[i];

        if (s && overlaps(gpa, end, s->gpa, s->gpa + s->size)) {
            *conflict_end = s->gpa + s->size;
            return xr_error(err, errlen, -EADDRINUSE, "[0x%" PRIx64 ", 0x%"
                           PRIx64 ") overlaps slot %u at [0x%" PRIx64 ", 0x%"
                           PRIx64 ")", gpa, end, i, s->gpa, s->gpa + s->size);
        }
    }
    for (unsigned int i = 0; i < hp->cfg.nr_reserved; i++) {
        const HotplugRange *r = &hp->reserved[i];

        if (overlaps(gpa, end, r->start, r->end)) {
            *conflict_end = r->end;
            return xr_error(err, errlen, -EADDRINUSE, "[0x%" PRIx64 ", 0x%"
                           PRIx64 ") overlaps the reserved range [0x%" PRIx64
                           ", 0x%" PRIx64 ") (%s)", gpa, end, r->start, r->end,
                           r->name);
        }
    }
    rcu_read_lock();
    view = address_space_get_flatview(hp->cfg.as);
    FLATVIEW_FOREACH(fr, view) {
        /* addr + size may be 2^64 (0): compare the last byte instead. */
        uint64_t last = fr->addr + fr->size - 1;

        if (fr->addr < end && gpa <= last) {
            *conflict_end = last + 1 ? last + 1 : UINT64_MAX;
            ret = xr_error(err, errlen, -EADDRINUSE, "[0x%" PRIx64 ", 0x%"
                          PRIx64 ") overlaps %s '%s' at [0x%" PRIx64 ", 0x%"
                          PRIx64 ")", gpa, end,
                          flatrange_is_ram(fr) ? "RAM" : "MMIO",
                          memory_region_name(fr->mr), fr->addr, last + 1);
            break;
        }
    }
    rcu_read_unlock();
    return ret;
}

/* The lowest free aligned address of the window for @size bytes. */
static int hp_place(Hotplug *hp, uint64_t size, uint64_t *gpa, char *err,
                    size_t errlen)
{
    uint64_t align = hp->cfg.align;
    uint64_t cand = ROUND_UP(hp->cfg.window_start, align);
    char sz[32];

    for (;;) {
        uint64_t cend = 0, end = cand + size;

        if (cand < hp->cfg.window_start || end < cand ||
            end > hp->cfg.window_end) {
            break;
        }
        if (hp_check_free(hp, cand, end, &cend, NULL, 0) == 0) {
            *gpa = cand;
            return 0;
        }
        if (cend <= cand) {
            break;
        }
        cand = ROUND_UP(cend, align);
    }
    return xr_error(err, errlen, -ENOSPC, "no free %s range aligned to 0x%"
                   PRIx64 " in the hotplug window [0x%" PRIx64 ", 0x%" PRIx64
                   "): remove a slot or give an explicit start",
                   hp_size(size, sz, sizeof(sz)), align, hp->cfg.window_start,
                   hp->cfg.window_end);
}

/* Checks of an add that need no placement. */
static int hp_check_request(Hotplug *hp, uint32_t slot, uint64_t gpa,
                            uint64_t size, char *err, size_t errlen)
{
    uint64_t window = hp->cfg.window_end - hp->cfg.window_start;
    char sz[32], wz[32], pz[32];

    if (hp->restricted) {
        return xr_error(err, errlen, -EPERM, "memory hot-plug is unavailable: "
                       "%s", hp->restricted_reason);
    }
    if (hp->blocked) {
        return xr_error(err, errlen, -EBUSY, "memory hotplug is unavailable: "
                       "%s", hp->blocked_reason);
    }
    if (slot >= hp->cfg.nr_slots) {
        return xr_error(err, errlen, -EINVAL, "slot %u does not exist: this "
                       "guest has slots 0 to %u", slot, hp->cfg.nr_slots - 1);
    }
    if (hp->slots[slot]) {
        const HotplugSlot *s = hp->slots[slot];

        return xr_error(err, errlen, -EEXIST, "slot %u is already online (%s "
                       "at 0x%" PRIx64 "): remove it first", slot,
                       hp_size(s->size, sz, sizeof(sz)), s->gpa);
    }
    if (size == 0) {
        return xr_error(err, errlen, -EINVAL, "size 0: give the number of "
                       "bytes to add, a multiple of 4096");
    }
    if (size & ~XR_PAGE_MASK) {
        return xr_error(err, errlen, -EINVAL, "size %" PRIu64 " is not a "
                       "multiple of the 4 KiB page size", size);
    }
    if (gpa != HOTPLUG_AUTO && (gpa & ~XR_PAGE_MASK)) {
        return xr_error(err, errlen, -EINVAL, "start 0x%" PRIx64 " is not "
                       "aligned to the 4 KiB page size", gpa);
    }
    if (size > window) {
        return xr_error(err, errlen, -ERANGE, "%s is bigger than the whole "
                       "hotplug window [0x%" PRIx64 ", 0x%" PRIx64 ") (%s)",
                       hp_size(size, sz, sizeof(sz)), hp->cfg.window_start,
                       hp->cfg.window_end, hp_size(window, wz, sizeof(wz)));
    }
    if (gpa != HOTPLUG_AUTO &&
        (gpa < hp->cfg.window_start || gpa + size < gpa ||
         gpa + size > hp->cfg.window_end)) {
        return xr_error(err, errlen, -ERANGE, "[0x%" PRIx64 ", 0x%" PRIx64
                       ") is outside the hotplug window [0x%" PRIx64 ", 0x%"
                       PRIx64 ")", gpa, gpa + size, hp->cfg.window_start,
                       hp->cfg.window_end);
    }
    if (hp_capped(hp) && !hp->cfg.max_bytes) {
        return xr_error(err, errlen, -ENOSPC, "this guest may hot-plug no "
                       "memory: its maxmem is no larger than its RAM");
    }
    if (hp_capped(hp) && (hp->plugged_bytes > hp->cfg.max_bytes ||
                          size > hp->cfg.max_bytes - hp->plugged_bytes)) {
        return xr_error(err, errlen, -ENOSPC, "adding %s would exceed the "
                       "%s the guest may hot-plug (maxmem); %s are plugged",
                       hp_size(size, sz, sizeof(sz)),
                       hp_size(hp->cfg.max_bytes, wz, sizeof(wz)),
                       hp_size(hp->plugged_bytes, pz, sizeof(pz)));
    }
    return 0;
}

/* Whether Xen lets the domain have @pages more frames. */
static int hp_check_xen_max(Hotplug *hp, uint64_t pages, char *err,
                            size_t errlen)
{
    XenDomainInfo info;
    char a[32], b[32], c[32];
    int ret;

    ret = xen_domain_info(hp->cfg.xh, &info);
    if (ret) {
        return xr_error(err, errlen, ret, "cannot read the domain's memory "
                       "limits: %s", xen_last_error());
    }
    if (info.tot_pages > info.max_pages ||
        pages > info.max_pages - info.tot_pages) {
        return xr_error(err, errlen, -ENOSPC, "the domain has %s of at most "
                       "%s: another %s would exceed its maximum memory; raise "
                       "it first (xl mem-max, and xl mem-set to include the "
                       "new RAM)",
                       hp_size(info.tot_pages << XR_PAGE_BITS, a, sizeof(a)),
                       hp_size(info.max_pages << XR_PAGE_BITS, b, sizeof(b)),
                       hp_size(pages << XR_PAGE_BITS, c, sizeof(c)));
    }
    return 0;
}

/* ---- Xen and the mapcache ------------------------------------------------ */

/* Release frames [gfn, gfn + n); the first error, every chunk tried. */
static int hp_depopulate(Hotplug *hp, uint64_t gfn, uint64_t n)
{
    return xen_depopulate(hp->cfg.xh, gfn, n);
}

/* All or nothing: xen_populate_all() releases what a failure left. */
static int hp_populate(Hotplug *hp, uint64_t gfn, uint64_t n, char *err,
                       size_t errlen)
{
    int ret = xen_populate_all(hp->cfg.xh, gfn, n);

    if (ret) {
        return xr_error(err, errlen, ret, "Xen could not populate the new "
                       "memory (%s); nothing was added", xen_last_error());
    }
    return 0;
}

/*
 * Zero freshly populated frames: Xen scrubs only a dying domain's pages
 * (free_domheap_pages()), so a frame just populated may hold what another
 * live domain gave back.  New RAM reads zero, as a DIMM of QEMU's does,
 * and the guest sees nothing of another domain's.
 */
static int hp_clear(Hotplug *hp, uint64_t gfn, uint64_t n, char *err,
                    size_t errlen)
{
    int ret = xen_zero_frames(hp->cfg.xh, gfn, n);

    if (ret) {
        return xr_error(err, errlen, ret, "the new memory cannot be mapped "
                       "by the device model (%s); nothing was added",
                       strerror(-ret));
    }
    return 0;
}

/*
 * Map the first and the last page through the mapcache: the frames are
 * there and reachable.  The buckets stay mapped for the first accesses.
 */
static int hp_probe(Hotplug *hp, uint64_t gpa, uint64_t size, char *err,
                    size_t errlen)
{
    int ret = 0;

    if (!hp->cfg.mc) {
        return 0;
    }
    rcu_read_lock();
    if (!mapcache_get(hp->cfg.mc, gpa, XR_PAGE_SIZE, &ret) ||
        !mapcache_get(hp->cfg.mc, gpa + size - XR_PAGE_SIZE, XR_PAGE_SIZE,
                      &ret)) {
        ret = ret ? ret : -EFAULT;
    }
    rcu_read_unlock();
    if (ret) {
        return xr_error(err, errlen, ret, "the new memory cannot be mapped by "
                       "the device model (%s); nothing was added",
                       strerror(-ret));
    }
    return 0;
}

/* DMA mappings held on [gpa, gpa + size), orphaned buckets included. */
static uint64_t hp_dma_locks(Hotplug *hp, uint64_t gpa, uint64_t size)
{
    return hp->cfg.mc ? mapcache_range_locks(hp->cfg.mc, gpa, size) : 0;
}

/* ---- add ------------------------------------------------------------------ */

/*
 * Plug @size bytes at @gpa (already chosen and checked) into @slot as
 * block @idstr.  @populate: ask Xen for the frames (and release them
 * again on failure).  Under the Hotplug's lock.
 */
static int hp_plug(Hotplug *hp, uint32_t slot, const char *idstr,
                   uint64_t gpa, uint64_t size, bool populate, char *err,
                   size_t errlen)
{
    uint64_t gfn = gpa >> XR_PAGE_BITS, pages = size >> XR_PAGE_BITS;
    HotplugSlot *s;
    uint64_t cend;
    int ret;

    s = calloc(1, sizeof(*s));
    if (!s) {
        return xr_error(err, errlen, -ENOMEM, "out of memory");
    }
    s->slot = slot;
    s->gpa = gpa;
    s->size = size;
    if (populate) {
        ret = hp_populate(hp, gfn, pages, err, errlen);
        if (ret) {
            free(s);
            return ret;
        }
    }
    /*
     * Frames we did not populate may not be there yet (incoming), and
     * hold the guest's data when they are.
     */
    ret = populate ? hp_clear(hp, gfn, pages, err, errlen) : 0;
    if (!ret && populate) {
        ret = hp_probe(hp, gpa, size, err, errlen);
    }
    if (ret) {
        goto undo_xen;
    }
    ret = ram_block_add(hp->cfg.ram, idstr, size, size, NULL, RAM_HOTPLUGGED,
                        NULL, &s->block);
    if (ret) {
        xr_error(err, errlen, ret, "cannot add RAM block '%s': %s", idstr,
                ret == -EEXIST ? "the name is taken" : strerror(-ret));
        goto undo_xen;
    }
    ret = memory_region_init_ram(&s->mr, hp->cfg.ctx, idstr, s->block);
    if (ret) {
        xr_error(err, errlen, ret, "cannot create the RAM region of '%s': %s",
                idstr, strerror(-ret));
        goto undo_block;
    }
    /*
     * Hold the writers' lock from the final overlap check to the commit:
     * nobody can map anything into the range in between.
     */
    ret = memory_region_transaction_begin(hp->cfg.ctx);
    if (ret) {
        xr_error(err, errlen, ret, "cannot change the memory map: %s",
                strerror(-ret));
        goto undo_region;
    }
    ret = hp_check_free(hp, gpa, gpa + size, &cend, err, errlen);
    if (ret == 0) {
        ret = memory_region_add_subregion(hp->cfg.root, gpa, &s->mr);
        if (ret) {
            xr_error(err, errlen, ret, "cannot map '%s' at 0x%" PRIx64 ": %s",
                    idstr, gpa, strerror(-ret));
        }
    }
    if (memory_region_transaction_commit(hp->cfg.ctx) == 0 && ret == 0) {
        rcu_assign_pointer(hp->slots[slot], s);
        hp->plugged_bytes += size;
        return 0;
    }
    if (ret == 0) {
        /* The render failed (-ENOMEM): take the region out again. */
        ret = -ENOMEM;
        xr_error(err, errlen, ret, "cannot map '%s': out of memory", idstr);
        memory_region_del_subregion(hp->cfg.root, &s->mr);
        synchronize_rcu();
    }
undo_region:
    if (memory_region_destroy(&s->mr)) {
        /* Still shown by a view that failed to re-render: keep it all. */
        return ret;
    }
undo_block:
    ram_block_remove(hp->cfg.ram, s->block);
undo_xen:
    if (hp->cfg.mc) {
        mapcache_invalidate_range(hp->cfg.mc, gpa, size);
    }
    if (populate) {
        hp_depopulate(hp, gfn, pages);
    }
    free(s);
    return ret;
}

int hotplug_add(Hotplug *hp, uint32_t slot, uint64_t gpa, uint64_t size,
                uint64_t *gpa_out, char *err, size_t errlen)
{
    char idstr[32], sz[32];
    uint64_t cend;
    int ret;

    pthread_mutex_lock(&hp->lock);
    ret = hp_check_request(hp, slot, gpa, size, err, errlen);
    if (ret) {
        goto out;
    }
    if (gpa == HOTPLUG_AUTO) {
        ret = hp_place(hp, size, &gpa, err, errlen);
    } else {
        ret = hp_check_free(hp, gpa, gpa + size, &cend, err, errlen);
    }
    if (ret) {
        goto out;
    }
    if (!hp->incoming) {
        ret = hp_check_xen_max(hp, size >> XR_PAGE_BITS, err, errlen);
        if (ret) {
            goto out;
        }
    }
    snprintf(idstr, sizeof(idstr), "xen.hotplug.%u", slot);
    ret = hp_plug(hp, slot, idstr, gpa, size, !hp->incoming, err, errlen);
    if (ret) {
        goto out;
    }
    hp->stats.adds++;
    if (gpa_out) {
        *gpa_out = gpa;
    }
    hp_log(hp, "hotplug: slot %u: %s online at 0x%" PRIx64, slot,
           hp_size(size, sz, sizeof(sz)), gpa);
out:
    if (ret) {
        hp->stats.failures++;
        hp_log(hp, "hotplug: slot %u: add refused: %s", slot,
               err && errlen ? err : strerror(-ret));
    }
    pthread_mutex_unlock(&hp->lock);
    return ret;
}

/* ---- restore ---------------------------------------------------------------- */

/* The domain's maximum in pages: cached before restriction, or Xen's. */
static int hp_xen_max_pages(Hotplug *hp, uint64_t *max, char *err,
                            size_t errlen)
{
    XenDomainInfo info;
    int ret;

    if (hp->cfg.xen_max_pages) {
        *max = hp->cfg.xen_max_pages;
        return 0;
    }
    ret = xen_domain_info(hp->cfg.xh, &info);
    if (ret) {
        return xr_error(err, errlen, ret, "cannot read the domain's memory "
                       "limits: %s", xen_last_error());
    }
    *max = info.max_pages;
    return 0;
}

static int hp_cmp_gpa(const void *a, const void *b)
{
    const HotplugRestoreSlot *x = *(const HotplugRestoreSlot *const *)a;
    const HotplugRestoreSlot *y = *(const HotplugRestoreSlot *const *)b;

    return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* What a hot-plug request must satisfy, for one restored slot. */
static int hp_check_restore_one(Hotplug *hp, const HotplugRestoreSlot *r,
                                const bool *seen, char *err, size_t errlen)
{
    char name[32], sz[32];
    uint64_t cend;
    int ret;

    if (r->slot >= hp->cfg.nr_slots) {
        return xr_error(err, errlen, -EINVAL, "the saved state has memory in "
                       "slot %u, but this device model has slots 0 to %u: "
                       "start it with as many slots as the source", r->slot,
                       hp->cfg.nr_slots - 1);
    }
    if (hp->slots[r->slot] || seen[r->slot]) {
        return xr_error(err, errlen, -EEXIST, "slot %u is restored twice",
                       r->slot);
    }
    if (!r->size || ((r->gpa | r->size) & ~XR_PAGE_MASK) ||
        r->gpa + r->size < r->gpa) {
        return xr_error(err, errlen, -EINVAL, "slot %u: the saved range "
                       "0x%" PRIx64 " + 0x%" PRIx64 " is not a page-aligned "
                       "range", r->slot, r->gpa, r->size);
    }
    if (r->gpa < hp->cfg.window_start || r->gpa + r->size > hp->cfg.window_end) {
        return xr_error(err, errlen, -ERANGE, "slot %u: the saved %s at "
                       "[0x%" PRIx64 ", 0x%" PRIx64 ") is outside the hotplug "
                       "window [0x%" PRIx64 ", 0x%" PRIx64 "): start the "
                       "destination with the source's memory options",
                       r->slot, hp_size(r->size, sz, sizeof(sz)), r->gpa,
                       r->gpa + r->size, hp->cfg.window_start,
                       hp->cfg.window_end);
    }
    ret = hp_check_free(hp, r->gpa, r->gpa + r->size, &cend, err, errlen);
    if (ret) {
        return ret;
    }
    snprintf(name, sizeof(name), "xen.hotplug.%u", r->slot);
    if (!r->idstr || strcmp(r->idstr, name)) {
        return xr_error(err, errlen, -EINVAL, "slot %u: a hot-plugged RAM "
                       "block is named '%s', not as the saved state says",
                       r->slot, name);
    }
    return 0;
}

/*
 * Every check of hotplug_restore_slots(), before anything changes.  Under
 * the Hotplug's lock.
 */
static int hp_check_restore(Hotplug *hp, const HotplugRestoreSlot *slots,
                            unsigned int n, char *err, size_t errlen)
{
    bool seen[HOTPLUG_MAX_SLOTS] = { false };
    const HotplugRestoreSlot *sorted[HOTPLUG_MAX_SLOTS];
    uint64_t total = hp->plugged_bytes, max_pages = 0;
    char a[32], b[32], c[32];
    int ret;

    if (n > HOTPLUG_MAX_SLOTS) {
        return xr_error(err, errlen, -EINVAL, "the saved state has %u "
                       "hot-plugged slots, at most %u exist", n,
                       HOTPLUG_MAX_SLOTS);
    }
    for (unsigned int i = 0; i < n; i++) {
        ret = hp_check_restore_one(hp, &slots[i], seen, err, errlen);
        if (ret) {
            return ret;
        }
        seen[slots[i].slot] = true;
        sorted[i] = &slots[i];
        /* Each is inside the window: no sum of 256 of them wraps. */
        total += slots[i].size;
    }
    /* Against each other: sorted by address, only neighbours can meet. */
    qsort(sorted, n, sizeof(sorted[0]), hp_cmp_gpa);
    for (unsigned int i = 1; i < n; i++) {
        if (sorted[i]->gpa < sorted[i - 1]->gpa + sorted[i - 1]->size) {
            return xr_error(err, errlen, -EADDRINUSE, "slots %u and %u of the "
                           "saved state overlap at 0x%" PRIx64,
                           sorted[i - 1]->slot, sorted[i]->slot,
                           sorted[i]->gpa);
        }
    }
    if (hp_capped(hp) && total > hp->cfg.max_bytes) {
        return xr_error(err, errlen, -ENOSPC, "the saved state has %s of "
                       "hot-plugged memory, more than the %s this guest may "
                       "hot-plug (maxmem): start the destination with the "
                       "source's maxmem", hp_size(total, a, sizeof(a)),
                       hp_size(hp->cfg.max_bytes, b, sizeof(b)));
    }
    if (n == 0) {
        return 0;
    }
    ret = hp_xen_max_pages(hp, &max_pages, err, errlen);
    if (ret) {
        return ret;
    }
    if ((total >> XR_PAGE_BITS) > max_pages) {
        return xr_error(err, errlen, -ENOSPC, "the saved state has %s of "
                       "hot-plugged memory, more than the domain's maximum "
                       "of %s",
                       hp_size(total, a, sizeof(a)),
                       hp_size(max_pages << XR_PAGE_BITS, c, sizeof(c)));
    }
    return 0;
}

/* Take restored @slot out of the device model again; frames stay. */
static void hp_unplug_restored(Hotplug *hp, uint32_t slot)
{
    HotplugSlot *s = hp->slots[slot];

    rcu_assign_pointer(hp->slots[slot], NULL);
    memory_region_del_subregion(hp->cfg.root, &s->mr);
    synchronize_rcu();
    hp->plugged_bytes -= s->size;
    if (memory_region_destroy(&s->mr)) {
        /* Still in a view that failed to re-render: leaking beats a crash. */
        return;
    }
    ram_block_remove(hp->cfg.ram, s->block);
    if (hp->cfg.mc) {
        mapcache_invalidate_range(hp->cfg.mc, s->gpa, s->size);
    }
    free(s);
}

/* memory/<slot>/ goes: the answer of a restore that was undone. */
static void hp_xs_forget(Hotplug *hp, uint32_t slot)
{
    char path[sizeof(hp->memdir) + 16];

    if (!hp->xs) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%u", hp->memdir, slot);
    if (!xs_rm(hp->xs, XBT_NULL, path) && errno != ENOENT) {
        hp_log(hp, "hotplug: slot %u: cannot remove %s: %s", slot, path,
               strerror(errno));
    }
}

int hotplug_restore_slots(Hotplug *hp, const HotplugRestoreSlot *slots,
                          unsigned int n, char *err, size_t errlen)
{
    unsigned int done = 0;
    char sz[32];
    int ret;

    pthread_mutex_lock(&hp->lock);
    ret = hp_check_restore(hp, slots, n, err, errlen);
    for (; ret == 0 && done < n; done++) {
        const HotplugRestoreSlot *r = &slots[done];

        ret = hp_plug(hp, r->slot, r->idstr, r->gpa, r->size, false, err,
                      errlen);
        if (ret) {
            break;
        }
    }
    if (ret) {
        /* A late failure: what this restore added goes again. */
        while (done > 0) {
            hp_unplug_restored(hp, slots[--done].slot);
        }
        hp->stats.failures++;
        hp_log(hp, "hotplug: restore refused: %s",
               err && errlen ? err : strerror(-ret));
        pthread_mutex_unlock(&hp->lock);
        return ret;
    }
    memset(hp->restored, 0, sizeof(hp->restored));
    for (unsigned int i = 0; i < n; i++) {
        const HotplugRestoreSlot *r = &slots[i];

        hp->restored[r->slot] = true;
        if (hp->xs) {
            /* The keys xenram owns; a failure leaves the slot usable. */
            int e = hp_xs_write_online(hp, r->slot, r->gpa, r->size);

            if (e) {
                hp_log(hp, "hotplug: slot %u: cannot write its xenstore "
                       "keys: %s", r->slot, strerror(-e));
            }
        }
        hp->stats.restores++;
        hp_log(hp, "hotplug: slot %u: %s restored at 0x%" PRIx64, r->slot,
               hp_size(r->size, sz, sizeof(sz)), r->gpa);
    }
    pthread_mutex_unlock(&hp->lock);
    return 0;
}

int hotplug_restore(Hotplug *hp, uint32_t slot, const char *idstr,
                    uint64_t gpa, uint64_t size, char *err, size_t errlen)
{
    HotplugRestoreSlot r = { .slot = slot, .idstr = idstr, .gpa = gpa,
                             .size = size };

    return hotplug_restore_slots(hp, &r, 1, err, errlen);
}

void hotplug_restore_undo(Hotplug *hp)
{
    pthread_mutex_lock(&hp->lock);
    for (uint32_t i = 0; i < HOTPLUG_MAX_SLOTS; i++) {
        if (!hp->restored[i]) {
            continue;
        }
        hp->restored[i] = false;
        if (hp->slots[i]) {
            hp_unplug_restored(hp, i);
            hp_xs_forget(hp, i);
            hp->stats.restores--;
            hp_log(hp, "hotplug: slot %u: restore undone", i);
        }
    }
    pthread_mutex_unlock(&hp->lock);
}

/* ---- remove ----------------------------------------------------------------- */

static int hp_busy(Hotplug *hp, const HotplugSlot *s, uint64_t locks,
                   char *err, size_t errlen)
{
    (void)hp;
    return xr_error(err, errlen, -EBUSY, "slot %u is in use: %" PRIu64 " DMA "
                   "mapping%s of the device model hold%s memory in [0x%" PRIx64
                   ", 0x%" PRIx64 "); retry when the device has finished",
                   s->slot, locks, locks == 1 ? "" : "s",
                   locks == 1 ? "s" : "", s->gpa, s->gpa + s->size);
}

int hotplug_remove(Hotplug *hp, uint32_t slot, char *err, size_t errlen)
{
    HotplugSlot *s = NULL;
    uint64_t locks;
    char sz[32];
    int ret = 0;

    pthread_mutex_lock(&hp->lock);
    if (hp->restricted) {
        ret = xr_error(err, errlen, -EPERM, "memory hot-plug is unavailable: "
                      "%s", hp->restricted_reason);
        goto out;
    }
    if (hp->blocked) {
        ret = xr_error(err, errlen, -EBUSY, "memory hotplug is unavailable: "
                      "%s", hp->blocked_reason);
        goto out;
    }
    if (slot >= hp->cfg.nr_slots) {
        ret = xr_error(err, errlen, -EINVAL, "slot %u does not exist: this "
                      "guest has slots 0 to %u", slot, hp->cfg.nr_slots - 1);
        goto out;
    }
    s = hp->slots[slot];
    if (!s) {
        ret = xr_error(err, errlen, -ENOENT, "slot %u is empty: there is no "
                      "memory to remove", slot);
        goto out;
    }
    locks = hp_dma_locks(hp, s->gpa, s->size);
    if (locks) {
        ret = hp_busy(hp, s, locks, err, errlen);
        goto out;
    }

    /* Out of the tree; after a grace period no new DMA mapping can start. */
    rcu_assign_pointer(hp->slots[slot], NULL);
    ret = memory_region_del_subregion(hp->cfg.root, &s->mr);
    synchronize_rcu();
    if (ret) {
        /* Not detached, or detached but not re-rendered: put it back. */
        memory_region_add_subregion(hp->cfg.root, s->gpa, &s->mr);
        rcu_assign_pointer(hp->slots[slot], s);
        ret = xr_error(err, errlen, ret, "cannot unmap slot %u: %s", slot,
                      strerror(-ret));
        goto out;
    }
    locks = hp_dma_locks(hp, s->gpa, s->size);
    if (locks || memory_region_destroy(&s->mr)) {
        /* A mapping slipped in before the region went: undo. */
        memory_region_add_subregion(hp->cfg.root, s->gpa, &s->mr);
        rcu_assign_pointer(hp->slots[slot], s);
        ret = locks ? hp_busy(hp, s, locks, err, errlen)
                    : xr_error(err, errlen, -EBUSY, "slot %u is still "
                              "mapped; retry", slot);
        goto out;
    }

    /* Notifiers run while the frames are still there and mapped. */
    ram_block_remove(hp->cfg.ram, s->block);
    if (hp->cfg.mc) {
        mapcache_invalidate_range(hp->cfg.mc, s->gpa, s->size);
    }
    hp->plugged_bytes -= s->size;
    if (!hp->incoming &&
        hp_depopulate(hp, s->gpa >> XR_PAGE_BITS, s->size >> XR_PAGE_BITS)) {
        ret = xr_error(err, errlen, -EIO, "slot %u was removed from the device "
                      "model, but Xen did not release all of its frames (%s); "
                      "they stay allocated to the domain", slot,
                      xen_last_error());
    }
    hp->stats.removes++;
    hp_log(hp, "hotplug: slot %u: %s at 0x%" PRIx64 " removed", slot,
           hp_size(s->size, sz, sizeof(sz)), s->gpa);
    /* The grace period above covers hotplug_block_slot() readers too. */
    free(s);
out:
    if (ret) {
        hp->stats.failures++;
        hp_log(hp, "hotplug: slot %u: remove %s: %s", slot,
               ret == -EIO ? "incomplete" : "refused",
               err && errlen ? err : strerror(-ret));
    }
    pthread_mutex_unlock(&hp->lock);
    return ret;
}

/* ---- queries ------------------------------------------------------------------- */

uint32_t hotplug_block_slot(Hotplug *hp, const RAMBlock *block)
{
    uint32_t slot = HOTPLUG_NO_SLOT;

    if (!hp || !block || !(block->flags & RAM_HOTPLUGGED)) {
        return HOTPLUG_NO_SLOT;
    }
    rcu_read_lock();
    for (uint32_t i = 0; i < HOTPLUG_MAX_SLOTS; i++) {
        const HotplugSlot *s = rcu_dereference(hp->slots[i]);

        if (s && s->block == block) {
            slot = i;
            break;
        }
    }
    rcu_read_unlock();
    return slot;
}

int hotplug_slot_info(Hotplug *hp, uint32_t slot, HotplugSlotInfo *info)
{
    int ret = 0;

    if (slot >= HOTPLUG_MAX_SLOTS || !info) {
        return -EINVAL;
    }
    pthread_mutex_lock(&hp->lock);
    if (hp->slots[slot]) {
        const HotplugSlot *s = hp->slots[slot];

        *info = (HotplugSlotInfo) { .gpa = s->gpa, .size = s->size,
                                    .block = s->block };
    } else {
        ret = -ENOENT;
    }
    pthread_mutex_unlock(&hp->lock);
    return ret;
}

void hotplug_get_stats(Hotplug *hp, HotplugStats *st)
{
    pthread_mutex_lock(&hp->lock);
    *st = hp->stats;
    st->plugged_bytes = hp->plugged_bytes;
    st->plugged_slots = 0;
    for (uint32_t i = 0; i < HOTPLUG_MAX_SLOTS; i++) {
        st->plugged_slots += hp->slots[i] != NULL;
    }
    pthread_mutex_unlock(&hp->lock);
}

void hotplug_set_blocked(Hotplug *hp, const char *reason)
{
    pthread_mutex_lock(&hp->lock);
    hp->blocked = reason != NULL;
    snprintf(hp->blocked_reason, sizeof(hp->blocked_reason), "%s",
             reason ? reason : "");
    pthread_mutex_unlock(&hp->lock);
}

void hotplug_set_restricted(Hotplug *hp, const char *reason)
{
    pthread_mutex_lock(&hp->lock);
    hp->restricted = true;
    snprintf(hp->restricted_reason, sizeof(hp->restricted_reason), "%s",
             reason ? reason : "the device model's Xen handles are "
             "restricted");
    pthread_mutex_unlock(&hp->lock);
}

void hotplug_set_incoming(Hotplug *hp, bool incoming)
{
    pthread_mutex_lock(&hp->lock);
    hp->incoming = incoming;
    pthread_mutex_unlock(&hp->lock);
}
