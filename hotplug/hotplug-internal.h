/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotplug-internal.h - what hotplug.c (slots, memory) and hotplug-xs.c
 * (the xenstore protocol) share.  Not installed.
 */
#ifndef XENRAM_HOTPLUG_INTERNAL_H
#define XENRAM_HOTPLUG_INTERNAL_H

#include <pthread.h>

#include "hotplug/hotplug.h"

struct xs_handle;

/* One plugged slot.  Fixed once published, freed after a grace period. */
typedef struct HotplugSlot {
    uint32_t slot;
    uint64_t gpa, size;
    RAMBlock *block;
    MemoryRegion mr;            /* the block's RAM region, at @gpa in root */
} HotplugSlot;

struct Hotplug {
    HotplugConfig cfg;          /* copied; reserved[] copied too */
    HotplugRange *reserved;
    char **reserved_names;

    /* Serialises requests; see the contract in hotplug.h. */
    pthread_mutex_t lock;
    /* RCU-published for hotplug_block_slot(); written under @lock. */
    HotplugSlot *slots[HOTPLUG_MAX_SLOTS];
    /* Under @lock. */
    uint64_t plugged_bytes;
    bool incoming;
    bool blocked;               /* hotplug_set_blocked() */
    char blocked_reason[200];
    bool restricted;            /* hotplug_set_restricted() */
    char restricted_reason[200];
    /* The slots the last hotplug_restore_slots() recreated (for undo). */
    bool restored[HOTPLUG_MAX_SLOTS];
    HotplugStats stats;

    /* Serialises request handling on the xenstore side; before @lock. */
    pthread_mutex_t xs_lock;
    /* xenstore (NULL without): a connection of our own. */
    struct xs_handle *xs;
    char memdir[160];           /* .../device-model/<domid>/memory */
    char token[48];
};

/* Log one line through cfg.log, if any. */
void hp_debug(Hotplug *hp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void hp_log(Hotplug *hp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* xenstore side (hotplug-xs.c). */
/* A request read from memory/<slot>/, parsed (hp_parse_request). */
typedef struct HotplugRequest {
    uint32_t slot;
    bool add;                   /* else remove */
    uint64_t size, gpa;         /* add: gpa HOTPLUG_AUTO for "auto" */
} HotplugRequest;

/*
 * Parse the request in slot directory @name (@size_s, @start_s NULL when
 * absent) for a device model of @nr_slots slots: 0 and *@req, or -EINVAL /
 * -ERANGE and the sentence for the error node in @err.  Values echoed in
 * it are cut to 64 bytes of printable ASCII.  Pure: the fuzz target
 * tests/fuzz/fuzz-hotplug.c calls it.
 */
int hp_parse_request(uint32_t nr_slots, const char *memdir, const char *name,
                     const char *action, const char *size_s,
                     const char *start_s, HotplugRequest *req, char *err,
                     size_t errlen);

int hp_xs_open(Hotplug *hp, char *err, size_t errlen);
void hp_xs_close(Hotplug *hp);
/* Write memory/<slot>/ as an answered add (used by restore). */
int hp_xs_write_online(Hotplug *hp, uint32_t slot, uint64_t gpa,
                       uint64_t size);

#endif /* XENRAM_HOTPLUG_INTERNAL_H */
