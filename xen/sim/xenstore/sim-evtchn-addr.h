/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sim-evtchn-addr.h - where a simulated event channel lives.
 *
 * Private to xen/sim/xenstore/: shared by the libxenevtchn stand-in
 * (evtchn.c) and by xs-sim.c, which plays the guest end of a store ring and
 * raises VIRQ_DOM_EXC.  See docs/xenstore-sim.md, "Event channels".
 *
 * Every endpoint that can be notified is a Unix datagram socket bound to an
 * abstract address (no file, gone when the process dies):
 *
 *   "\0xensim-evtchn/<ns>/to/<domid>/<port>"    port <port> of <domid> itself
 *                                               (an unbound port waiting for
 *                                               its peer's notifications)
 *   "\0xensim-evtchn/<ns>/from/<domid>/<port>"  whoever bound interdomain to
 *                                               (<domid>, <port>): receives
 *                                               what that port sends
 *   "\0xensim-evtchn/<ns>/virq/<domid>/<virq>"  a virtual IRQ bound in <domid>
 *
 * A datagram carries no meaning beyond "an event happened".  <ns> is a hash
 * of the namespace string (XENSIM_EVTCHN_NS, else XENSTORED_RUNDIR), so two
 * simulators on one machine never see each other's events.
 */
#ifndef XEN_SIM_XENSTORE_SIM_EVTCHN_ADDR_H
#define XEN_SIM_XENSTORE_SIM_EVTCHN_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SIM_EVTCHN_KIND_TO   "to"
#define SIM_EVTCHN_KIND_FROM "from"
#define SIM_EVTCHN_KIND_VIRQ "virq"

/* The namespace string in force for this process ("" if none is set). */
static inline const char *sim_evtchn_ns_from_env(void)
{
    const char *ns = getenv("XENSIM_EVTCHN_NS");

    if (!ns || !*ns)
        ns = getenv("XENSTORED_RUNDIR");
    return ns ? ns : "";
}

/* FNV-1a: short, stable, and good enough to tell run directories apart. */
static inline uint64_t sim_evtchn_ns_hash(const char *ns)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *ns; ns++) {
        h ^= (unsigned char)*ns;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/*
 * Fill @sa with the abstract address of (@kind, @domid, @num) in namespace
 * @ns; returns the length to pass to bind() / sendto().
 */
static inline socklen_t sim_evtchn_addr(struct sockaddr_un *sa, const char *ns,
                                        const char *kind, uint32_t domid,
                                        uint32_t num)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
                 "xensim-evtchn/%016llx/%s/%u/%u",
                 (unsigned long long)sim_evtchn_ns_hash(ns), kind, domid, num);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

#endif /* XEN_SIM_XENSTORE_SIM_EVTCHN_ADDR_H */
