/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xs-sim.h - Debian's xenstored under the simulator.
 *
 * The simulator's xenstore is the real thing: Debian's C xenstored, started
 * with -N in a private run directory, with stand-in libxenevtchn.so.1 and
 * libxengnttab.so.1 (this folder) and libxenctrl.so.4.17 (the core's) on
 * LD_LIBRARY_PATH and a preload shim that serves /proc/xen/xsd_{port,kva}
 * from the run directory.  Clients talk to it through its Unix socket:
 *
 *   XENSTORED_PATH=<run_dir>/socket   XENSTORED_RUNDIR=<run_dir>
 *
 * for the real libxenstore (xs_open(XS_OPEN_SOCKETONLY)) and Debian's
 * xenstore-* tools.  Concepts, layout and divergences: docs/xenstore-sim.md.
 *
 * Errors are returned as -errno, with a message on stderr that says what
 * failed.  Nothing here keeps global state; the calls may come from any
 * thread, but see xs_sim_start() about the forking thread.
 */
#ifndef XEN_SIM_XENSTORE_XS_SIM_H
#define XEN_SIM_XENSTORE_XS_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The guest's end of its store ring, as libxl sets it up for an HVM guest. */
#define XS_SIM_STORE_PORT 1u        /* store/port: guest event channel */
#define XS_SIM_STORE_PFN  0xfeffcu  /* store/ring-ref: the magic page */

/*
 * Start Debian's xenstored serving @run_dir/socket and wait until it
 * accepts connections, then write what xen-init-dom0 writes
 * (/local/domain/0/{domid,name}).
 *
 * @run_dir is created if missing (mode 0700) and holds the socket, the
 * files that stand in for /proc/xen and the grant pages, and
 * xenstored.log (its stderr).  Its absolute path must leave room for
 * "/socket" in a sockaddr_un (about 100 bytes).  @lib_dir is the directory
 * of the stand-in libraries ($(BUILD)/sim): it must hold
 * libxenevtchn.so.1, libxengnttab.so.1, xs-sim-procxen.so and the core's
 * libxenctrl.so.4.17.
 *
 * The xenstored binary is $XS_SIM_XENSTORED if set, else the one
 * `make xenstored` unpacked (into $(XS_SIM_XENSTORED_DIR), compiled in;
 * or below @lib_dir/../xenstored), else /usr/lib/xen-4.17/bin/xenstored.
 * $XS_SIM_TIMEOUT_MS bounds the wait (default 10000); $XS_SIM_TRACE=1 makes
 * xenstored write its request trace to @run_dir/xenstored.trace.
 *
 * xenstored is our child and gets SIGTERM when the forking thread exits
 * (PR_SET_PDEATHSIG), so a crashed test or simulator never leaves it
 * behind: call this from a thread that lives as long as xenstored should.
 * On success *@pid_out is its pid, for xs_sim_stop().
 */
int xs_sim_start(const char *run_dir, const char *lib_dir, pid_t *pid_out);

/*
 * Stop a xenstored started by xs_sim_start(): SIGTERM, then SIGKILL if it
 * is still there after 5 s; reaps it.  Returns 0 if it was running until
 * asked to stop, -EIO if it had already died on its own (its status is on
 * stderr), -ETIMEDOUT if even SIGKILL did not end it within 2 s.
 */
int xs_sim_stop(pid_t pid);

/*
 * Write what libxl writes into xenstore when it builds an HVM domain and
 * spawns its device model, then introduce the domain to xenstored
 * (XS_INTRODUCE, store ring at grant 1, store event channel
 * XS_SIM_STORE_PORT), as `xl create` does:
 *
 *   /local/domain/<domid>          n0,r<domid>: vm, name, domid, memory/...,
 *                                  cpu/0/availability, store/..., platform/...,
 *                                  hvmloader/..., control/platform-feature-...
 *   .../control/shutdown, feature-*, sysrq, data, drivers, feature, attr,
 *   error, device/suspend/event-channel
 *                                  n<domid> (the guest's own)
 *   /vm/<uuid>                     n0,r<domid>: uuid, name, start_time
 *   /libxl/<domid>                 n0: type = hvm, dm-version = qemu_xen
 *   /local/domain/<dm_domid>/device-model/<domid>
 *                                  created empty; owned by dom0 (n0) when
 *                                  @dm_domid is 0
 *
 * memory/static-max and memory/target are @mem_kb.  <uuid> is derived
 * from @domid and @name.  For @dm_domid != 0 (a stub domain) also
 * image/device-model-domid and /local/domain/<dm_domid>/target, as libxl
 * does; for a dom0 device model libxl writes neither.
 *
 * @socket_path is <run_dir>/socket of a xenstored from xs_sim_start(); the
 * store ring page is created in <run_dir>/gnttab.  Fails with -EEXIST if
 * the domain is already introduced.
 */
int xs_sim_domain_introduce(const char *socket_path, uint32_t domid,
                            const char *name, uint64_t mem_kb,
                            uint32_t dm_domid);

/*
 * Undo xs_sim_domain_introduce() as `xl destroy` does: remove
 * /local/domain/<domid>, /vm/<uuid>, /libxl/<domid> and the device-model
 * directory, make xenstored forget the domain (XS_RELEASE, which fires
 * @releaseDomain), and delete its ring page.  Removing what is already gone
 * is not an error.
 */
int xs_sim_domain_release(const char *socket_path, uint32_t domid);

/*
 * Raise VIRQ_DOM_EXC in the xenstored serving @run_dir, as Xen does when a
 * domain dies: xenstored then asks xc_domain_getinfo() about every domain it
 * knows and releases those that are gone or dying.
 */
int xs_sim_virq_dom_exc(const char *run_dir);

/*
 * The guest's side of an introduced domain's store ring: requests travel
 * through the shared ring page and the store event channel exactly as a
 * guest kernel's xenbus driver sends them, so xenstored applies the
 * domain's permissions and quotas.  One handle per domain at a time.
 * Relative paths are relative to /local/domain/<domid>.
 */
struct xs_sim_guest;

int xs_sim_guest_open(const char *run_dir, uint32_t domid,
                      struct xs_sim_guest **out);
void xs_sim_guest_close(struct xs_sim_guest *g);

/*
 * One request of @type (enum xsd_sockmsg_type) with @len bytes of payload;
 * on success *@reply (malloc'd, NUL-terminated beyond *@reply_len, which
 * may be NULL) holds the answer.  An XS_ERROR answer becomes its -errno
 * (-EACCES, -ENOENT, ...).  Watch events that arrive meanwhile are
 * dropped.  -ETIMEDOUT after 5 s without an answer.
 */
int xs_sim_guest_request(struct xs_sim_guest *g, uint32_t type,
                         const void *payload, size_t len, char **reply,
                         size_t *reply_len);

/* XS_READ of @path; *@value is malloc'd. */
int xs_sim_guest_read(struct xs_sim_guest *g, const char *path,
                      char **value);

/* XS_WRITE of @value at @path. */
int xs_sim_guest_write(struct xs_sim_guest *g, const char *path,
                       const char *value);

#endif /* XEN_SIM_XENSTORE_XS_SIM_H */
