/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * layout.c - the RAM layout a migration carries: captured from the RAM
 * blocks and the flat view on the source, checked and re-created on the
 * destination (see migration.h, docs/devstate.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/migration-internal.h"

#define MiB ((uint64_t)1 << 20)

/* The flat ranges that map @block, appended to @b.  Under RCU. */
static int layout_capture_ranges(const FlatView *view, const RAMBlock *block,
                                 DevStateBlock *b)
{
    const FlatRange *fr;

    FLATVIEW_FOREACH(fr, view) {
        DevStateRange *r;

        if (!flatrange_is_ram(fr) ||
            memory_region_ram_block(fr->mr) != block ||
            b->nranges == DEVSTATE_MAX_RANGES) {
            continue;
        }
        r = realloc(b->ranges, (b->nranges + 1) * sizeof(*r));
        if (!r) {
            return -ENOMEM;
        }
        b->ranges = r;
        r[b->nranges++] = (DevStateRange) {
            .gpa = fr->addr, .size = fr->size,
            .offset = fr->ram_addr - block->offset };
    }
    return 0;
}

int migration_layout_capture(Migration *m, DevState *ds)
{
    RAMList *rl = m->cfg.ram;
    const FlatView *view;
    RAMBlock *block;
    uint32_t n = 0;
    int ret = 0;

    memset(ds, 0, sizeof(*ds));
    ds->global_dirty_log = m->global_dirty_log;
    ram_list_lock(rl);
    rcu_read_lock();
    RAMBLOCK_FOREACH(rl, block) {
        n++;
    }
    ds->blocks = calloc(n ? n : 1, sizeof(*ds->blocks));
    if (!ds->blocks) {
        ret = -ENOMEM;
        goto out;
    }
    view = address_space_get_flatview(m->cfg.as);
    RAMBLOCK_FOREACH(rl, block) {
        DevStateBlock *b = &ds->blocks[ds->nblocks++];

        snprintf(b->idstr, sizeof(b->idstr), "%s", block->idstr);
        b->offset = block->offset;
        b->used_length = ram_block_used_length(block);
        b->max_length = block->max_length;
        b->flags = block->flags;
        b->hotplug_slot = mig_hotplug_block_slot(m, block);
        ret = layout_capture_ranges(view, block, b);
        if (ret) {
            goto out;
        }
    }
out:
    rcu_read_unlock();
    ram_list_unlock(rl);
    if (ret) {
        devstate_free(ds);
    }
    return ret;
}

_Static_assert(DEVSTATE_BLOCK_FLAGS == (RAM_RESIZEABLE | RAM_HOTPLUGGED |
                                       RAM_OWN_HOST | RAM_READONLY |
                                       RAM_XEN_POPULATE),
               "devstate.h's known flags are memory/ramblock.h's RAM_*");

/* The flags whose meaning the layout depends on: they must agree. */
#define LAYOUT_FLAGS (RAM_RESIZEABLE | RAM_HOTPLUGGED | RAM_READONLY)

/*
 * The saved block @b against the local block @local: the same ram_addr,
 * lengths and flags, and mapped at exactly the saved guest-physical ranges
 * (lengths alone would let a stream with a smaller xen.ram put VRAM over
 * guest RAM frames).  Under RCU.
 */
static int layout_check_local(Migration *m, const DevStateBlock *b,
                              RAMBlock *local, char *err, size_t errlen)
{
    DevStateBlock here = { .nranges = 0 };
    int ret = 0;

    if (ram_block_used_length(local) != b->used_length ||
        local->max_length != b->max_length) {
        snprintf(err, errlen, "RAM block '%s' has %" PRIu64 " MiB here "
                 "but %" PRIu64 " MiB in the saved state: start the "
                 "destination with the guest's memory size", b->idstr,
                 ram_block_used_length(local) / MiB, b->used_length / MiB);
        return -EINVAL;
    }
    if (local->offset != b->offset) {
        snprintf(err, errlen, "RAM block '%s' is at ram_addr 0x%" PRIx64
                 " here but at 0x%" PRIx64 " in the saved state: start the "
                 "destination with the source's memory options", b->idstr,
                 (uint64_t)local->offset, b->offset);
        return -EINVAL;
    }
    if ((local->flags & LAYOUT_FLAGS) != (b->flags & LAYOUT_FLAGS)) {
        snprintf(err, errlen, "RAM block '%s' has flags 0x%x here but 0x%x "
                 "in the saved state", b->idstr, local->flags & LAYOUT_FLAGS,
                 b->flags & LAYOUT_FLAGS);
        return -EINVAL;
    }
    if (layout_capture_ranges(address_space_get_flatview(m->cfg.as), local,
                              &here)) {
        free(here.ranges);
        snprintf(err, errlen, "out of memory checking the layout");
        return -ENOMEM;
    }
    for (uint32_t r = 0; r < MAX(here.nranges, b->nranges) && !ret; r++) {
        const DevStateRange *x = r < here.nranges ? &here.ranges[r] : NULL;
        const DevStateRange *y = r < b->nranges ? &b->ranges[r] : NULL;

        if (!x || !y) {
            snprintf(err, errlen, "RAM block '%s' has %u guest-physical "
                     "mappings here but %u in the saved state: start the "
                     "destination with the source's memory options",
                     b->idstr, here.nranges, b->nranges);
            ret = -EINVAL;
        } else if (x->gpa != y->gpa || x->size != y->size ||
                   x->offset != y->offset) {
            snprintf(err, errlen, "RAM block '%s' is mapped at 0x%" PRIx64
                     " (0x%" PRIx64 " bytes of it from 0x%" PRIx64 ") in the "
                     "saved state but at 0x%" PRIx64 " (0x%" PRIx64 " bytes "
                     "from 0x%" PRIx64 ") here: start the destination with "
                     "the source's memory options", b->idstr, y->gpa,
                     y->size, y->offset, x->gpa, x->size, x->offset);
            ret = -EINVAL;
        }
    }
    free(here.ranges);
    return ret;
}

/* Each saved block exists here as saved, or may be re-created. */
static int layout_check_saved_blocks(Migration *m, const DevState *ds,
                                     char *err, size_t errlen)
{
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];
        RAMBlock *local;
        int ret = 0;

        rcu_read_lock();
        local = ram_block_by_name(m->cfg.ram, b->idstr);
        if (local) {
            ret = layout_check_local(m, b, local, err, errlen);
        }
        rcu_read_unlock();
        if (ret) {
            return ret;
        }
        if (local) {
            continue;
        }
        if (!(b->flags & RAM_HOTPLUGGED) ||
            b->hotplug_slot == DEVSTATE_NO_SLOT) {
            snprintf(err, errlen, "the saved state has RAM block '%s', "
                     "which this device model does not create", b->idstr);
            return -EINVAL;
        }
        if (b->nranges != 1 || b->ranges[0].offset != 0 ||
            b->ranges[0].size != b->used_length ||
            b->used_length != b->max_length) {
            snprintf(err, errlen, "hot-plugged RAM block '%s' in the "
                     "saved state is not one whole mapping", b->idstr);
            return -EINVAL;
        }
    }
    return 0;
}

/* Each block here is in the saved state. */
static int layout_check_local_blocks(Migration *m, const DevState *ds,
                                     char *err, size_t errlen)
{
    char name[RAM_BLOCK_IDSTR_SIZE] = "";
    RAMBlock *block;

    rcu_read_lock();
    RAMBLOCK_FOREACH(m->cfg.ram, block) {
        bool found = false;

        for (uint32_t i = 0; i < ds->nblocks && !found; i++) {
            found = !strcmp(ds->blocks[i].idstr, block->idstr);
        }
        if (!found) {
            snprintf(name, sizeof(name), "%s", block->idstr);
            break;
        }
    }
    rcu_read_unlock();
    if (name[0]) {
        snprintf(err, errlen, "RAM block '%s' exists here but not in the "
                 "saved state", name);
        return -EINVAL;
    }
    return 0;
}

int migration_layout_apply(Migration *m, const DevState *ds, char *err,
                           size_t errlen)
{
    MigrationHotplugSlot *slots = NULL;
    unsigned int n = 0;
    int ret;

    if ((ret = layout_check_saved_blocks(m, ds, err, errlen)) ||
        (ret = layout_check_local_blocks(m, ds, err, errlen))) {
        return ret;
    }
    /* The blocks to re-create: hot-plugged ones, one slot each. */
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];
        RAMBlock *local;

        rcu_read_lock();
        local = ram_block_by_name(m->cfg.ram, b->idstr);
        rcu_read_unlock();
        if (local) {
            continue;
        }
        if (!m->cfg.hotplug.restore) {
            snprintf(err, errlen, "the saved state has hot-plugged RAM "
                     "block '%s', and RAM hot-plug is not set up here",
                     b->idstr);
            free(slots);
            return -EINVAL;
        }
        if (!slots) {
            slots = calloc(ds->nblocks, sizeof(*slots));
            if (!slots) {
                snprintf(err, errlen, "out of memory restoring the layout");
                return -ENOMEM;
            }
        }
        slots[n++] = (MigrationHotplugSlot) {
            .slot = b->hotplug_slot, .idstr = b->idstr,
            .gpa = b->ranges[0].gpa, .size = b->used_length };
    }
    /* Apply: hot-plug recreates its slots (not populated: incoming). */
    if (n) {
        ret = m->cfg.hotplug.restore(m->cfg.hotplug.opaque, slots, n, err,
                                     errlen);
    }
    free(slots);
    /*
     * ds->global_dirty_log says what the source was doing when it saved
     * (migrating, usually); it is not carried over: the destination's
     * toolstack turns logging on itself when it migrates again.
     */
    return ret;
}
