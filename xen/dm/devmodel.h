/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devmodel.h - the xenram device-model process: memory, QMP, xenstore and
 * the main loop wired together for one domain.
 *
 * Life of a device model, as libxl drives it:
 *
 *   start   parse argv; open the Xen handles; lay out guest RAM (RAM below
 *           max-ram-below-4g, the rest from 4 GiB) and VRAM; with
 *           -incoming fd:N load the device state first ("inmigrate");
 *           restrict the handles and drop privileges if asked; serve QMP;
 *   ready   without -S: status "running", xenstore state = running;
 *           with -S: status "prelaunch" (or "paused" after an incoming
 *           load) until QMP `cont`, and only then state = running;
 *   migrate xen-set-global-dirty-log on/off switches modified_memory
 *           forwarding; `stop` flushes every pending report before it
 *           answers; xen-save-devices-state writes the device state;
 *   exit    `quit`, SIGTERM or SIGINT: xenstore keys removed, handles
 *           closed.
 */
#ifndef XENRAM_DM_DEVMODEL_H
#define XENRAM_DM_DEVMODEL_H

#include <stdint.h>

#include "xen/dm/cmdline.h"

/*
 * The QEMU interface level xenram implements, as announced in the QMP
 * greeting: libxl gates features on it (`live` for xen-save-devices-state
 * needs 2.11 or newer).  7.2 is the qemu-xen that Debian 12 ships with
 * Xen 4.17.
 */
#define DM_QEMU_MAJOR 7
#define DM_QEMU_MINOR 2
#define DM_QEMU_MICRO 0

/*
 * Where RAM hot-plug goes: slots in guest-physical [start, end), adding up
 * to max_bytes (maxmem - RAM) when @max_set (maxmem was given; 0 then
 * means no room at all), else Xen's maximum alone limits them; in @slots
 * slots.
 */
typedef struct DMHotplugWindow {
    uint64_t start, end;
    uint64_t max_bytes;
    bool max_set;
    uint32_t slots;
} DMHotplugWindow;

/* The window's least size when -m gives no maxmem (libxl 4.17's case). */
#define DM_HOTPLUG_WINDOW_MIN   (1ULL << 40)

/*
 * The hot-plug window of a guest with @ram_bytes of RAM (at most
 * DM_MAX_RAM_MIB) whose RAM and VRAM end at guest-physical @top: from
 * @top rounded up to 1 GiB, maxmem - RAM long, or without maxmem as long
 * as the RAM and at least DM_HOTPLUG_WINDOW_MIN, plus one alignment unit
 * per slot.  Never wraps for sizes the command line accepts.
 */
void dm_hotplug_window(const DMConfig *cfg, uint64_t ram_bytes, uint64_t top,
                       DMHotplugWindow *w);

/*
 * Run the device model described by @cfg until it is told to quit.
 * Returns the process exit status: 0 after a normal quit, 1 when start-up
 * failed (the reason has been printed on stderr).
 */
int dm_run(DMConfig *cfg);

/*
 * A line of xenram's log: "TIME xenram: [error: |warning: ]MSG" on stderr,
 * TIME in UTC as QEMU's -msg timestamp=on writes it; nothing when @level
 * is below --log-level (info until dm_run() has read it).
 */
void dm_log(DMLogLevel level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* XENRAM_DM_DEVMODEL_H */
