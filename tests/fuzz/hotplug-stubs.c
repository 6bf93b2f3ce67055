/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hotplug-stubs.c - what hotplug-xs.c calls in hotplug.c, for the clang
 * build of fuzz-hotplug only (the gcc replay links the real library).
 * The parser under test never reaches them.
 */
#include <stdlib.h>

#include "hotplug/hotplug-internal.h"

int hotplug_add(Hotplug *hp, uint32_t slot, uint64_t gpa, uint64_t size,
                uint64_t *gpa_out, char *err, size_t errlen)
{
    (void)hp, (void)slot, (void)gpa, (void)size, (void)gpa_out, (void)err;
    (void)errlen;
    abort();
}

int hotplug_remove(Hotplug *hp, uint32_t slot, char *err, size_t errlen)
{
    (void)hp, (void)slot, (void)err, (void)errlen;
    abort();
}

void hp_log(Hotplug *hp, const char *fmt, ...)
{
    (void)hp, (void)fmt;
    abort();
}
