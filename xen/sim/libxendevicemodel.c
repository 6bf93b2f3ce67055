/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxendevicemodel.c - stand-in for Debian's libxendevicemodel.so.1 on the
 * simulated host: every XEN_DMOP_* becomes one request to the xensim daemon.
 * What a device model asks for (ioreq servers and their ranges, cache
 * attributes, and the operations that have no effect on a simulated guest:
 * interrupts, events, memory types) is recorded in the daemon, where
 * `xensim dm-state DOMID` and the tests read it back.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xendevicemodel.h>

#include "xen/sim/stub.h"

struct xendevicemodel_handle {
    struct xsim_handle h;
};

static int dm_restrict_cb(struct xsim_tc_handle *ah, uint32_t domid)
{
    return xsim_handle_restrict((struct xsim_handle *)ah, domid);
}

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
                                           unsigned int open_flags)
{
    xendevicemodel_handle *dmod = calloc(1, sizeof(*dmod));

    (void)logger;
    (void)open_flags;
    if (!dmod)
        return NULL;
    if (xsim_handle_open(&dmod->h, "xendevicemodel", dm_restrict_cb) < 0) {
        int e = errno;

        free(dmod);
        errno = e;
        return NULL;
    }
    return dmod;
}

int xendevicemodel_close(xendevicemodel_handle *dmod)
{
    if (!dmod)
        return 0;
    xsim_handle_close(&dmod->h);
    free(dmod);
    return 0;
}

int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid)
{
    return xsim_handle_restrict(&dmod->h, domid);
}

static int64_t dmop(xendevicemodel_handle *dmod, uint16_t op, domid_t domid,
                    const uint64_t args[6], const void *in, size_t inlen,
                    void *out, size_t outcap, struct xsim_rep *rep)
{
    if (xsim_handle_check(&dmod->h, domid) < 0)
        return -1;
    return xsim_handle_call(&dmod->h, op, domid, args, in, inlen, out, outcap,
                            rep, NULL);
}

/* An operation the simulated guest does not feel: checked and recorded. */
static int noop(xendevicemodel_handle *dmod, domid_t domid, const char *fmt,
                ...) __attribute__((format(printf, 3, 4)));

static int noop(xendevicemodel_handle *dmod, domid_t domid, const char *fmt,
                ...)
{
    char what[200];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(what))
        n = sizeof(what) - 1;
    return dmop(dmod, XSIM_OP_DM_NOOP, domid, NULL, what, (size_t)n, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod,
                                       domid_t domid, int handle_bufioreq,
                                       ioservid_t *id)
{
    uint64_t args[6] = { (uint64_t)handle_bufioreq };
    int64_t rc = dmop(dmod, XSIM_OP_DM_IOREQ_CREATE, domid, args, NULL, 0,
                      NULL, 0, NULL);

    if (rc < 0)
        return -1;
    *id = (ioservid_t)rc;
    return 0;
}

int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod,
                                         domid_t domid, ioservid_t id,
                                         xen_pfn_t *ioreq_gfn,
                                         xen_pfn_t *bufioreq_gfn,
                                         evtchn_port_t *bufioreq_port)
{
    uint64_t args[6] = { id, ioreq_gfn || bufioreq_gfn };
    struct xsim_rep rep;

    if (dmop(dmod, XSIM_OP_DM_IOREQ_INFO, domid, args, NULL, 0, NULL, 0,
             &rep) < 0)
        return -1;
    if (ioreq_gfn)
        *ioreq_gfn = (xen_pfn_t)rep.val[0];
    if (bufioreq_gfn)
        *bufioreq_gfn = (xen_pfn_t)rep.val[1];
    if (bufioreq_port)
        *bufioreq_port = (evtchn_port_t)rep.val[2];
    return 0;
}

static int io_range(xendevicemodel_handle *dmod, domid_t domid,
                    ioservid_t id, uint32_t type, uint64_t start,
                    uint64_t end, bool map)
{
    uint64_t args[6] = { id, type, start, end, map };

    return dmop(dmod, XSIM_OP_DM_IOREQ_RANGE, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod,
                                                domid_t domid, ioservid_t id,
                                                int is_mmio, uint64_t start,
                                                uint64_t end)
{
    return io_range(dmod, domid, id, is_mmio ? XEN_DMOP_IO_RANGE_MEMORY
                                             : XEN_DMOP_IO_RANGE_PORT,
                    start, end, true);
}

int xendevicemodel_unmap_io_range_from_ioreq_server(
    xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int is_mmio,
    uint64_t start, uint64_t end)
{
    return io_range(dmod, domid, id, is_mmio ? XEN_DMOP_IO_RANGE_MEMORY
                                             : XEN_DMOP_IO_RANGE_PORT,
                    start, end, false);
}

/* The PCI range encoding of XEN_DMOP_PCI_SBDF. */
static uint64_t sbdf(uint16_t segment, uint8_t bus, uint8_t device,
                     uint8_t function)
{
    return ((uint64_t)segment << 16) | ((uint64_t)bus << 8) |
           ((uint64_t)(device & 0x1f) << 3) | (function & 7);
}

int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod,
                                              domid_t domid, ioservid_t id,
                                              uint16_t segment, uint8_t bus,
                                              uint8_t device, uint8_t function)
{
    uint64_t s;

    if (device > 0x1f || function > 0x7) {
        errno = EINVAL;
        return -1;
    }
    s = sbdf(segment, bus, device, function);
    return io_range(dmod, domid, id, XEN_DMOP_IO_RANGE_PCI, s, s, true);
}

int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod,
                                                  domid_t domid, ioservid_t id,
                                                  uint16_t segment,
                                                  uint8_t bus, uint8_t device,
                                                  uint8_t function)
{
    uint64_t s;

    if (device > 0x1f || function > 0x7) {
        errno = EINVAL;
        return -1;
    }
    s = sbdf(segment, bus, device, function);
    return io_range(dmod, domid, id, XEN_DMOP_IO_RANGE_PCI, s, s, false);
}

int xendevicemodel_map_mem_type_to_ioreq_server(xendevicemodel_handle *dmod,
                                                domid_t domid, ioservid_t id,
                                                uint16_t type, uint32_t flags)
{
    return noop(dmod, domid, "map_mem_type_to_ioreq_server id=%u type=%u "
                "flags=%#x", id, type, flags);
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod,
                                        domid_t domid, ioservid_t id)
{
    uint64_t args[6] = { id };

    return dmop(dmod, XSIM_OP_DM_IOREQ_DESTROY, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod,
                                          domid_t domid, ioservid_t id,
                                          int enabled)
{
    uint64_t args[6] = { id, !!enabled };

    return dmop(dmod, XSIM_OP_DM_IOREQ_STATE, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod,
                                      domid_t domid, uint16_t segment,
                                      uint8_t bus, uint8_t device,
                                      uint8_t intx, unsigned int level)
{
    return noop(dmod, domid, "set_pci_intx_level %04x:%02x:%02x intx=%u "
                "level=%u", segment, bus, device, intx, level);
}

int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod,
                                     domid_t domid, uint8_t irq,
                                     unsigned int level)
{
    return noop(dmod, domid, "set_isa_irq_level irq=%u level=%u", irq, level);
}

int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid,
                                 unsigned int irq, unsigned int level)
{
    return noop(dmod, domid, "set_irq_level irq=%u level=%u", irq, level);
}

int xendevicemodel_set_pci_link_route(xendevicemodel_handle *dmod,
                                      domid_t domid, uint8_t link, uint8_t irq)
{
    return noop(dmod, domid, "set_pci_link_route link=%u irq=%u", link, irq);
}

int xendevicemodel_inject_msi(xendevicemodel_handle *dmod, domid_t domid,
                              uint64_t msi_addr, uint32_t msi_data)
{
    return noop(dmod, domid, "inject_msi addr=%#llx data=%#x",
                (unsigned long long)msi_addr, msi_data);
}

int xendevicemodel_track_dirty_vram(xendevicemodel_handle *dmod,
                                    domid_t domid, uint64_t first_pfn,
                                    uint32_t nr, unsigned long *dirty_bitmap)
{
    uint64_t args[6] = { first_pfn, nr };

    /*
     * nr 0 makes a bitmap buffer of 0 bytes, which Linux privcmd refuses
     * with EFAULT after its restriction check but before Xen sees the call
     * (lock_pages() pins no page) unless the pointer is inside a page:
     * checked on Xen 4.17.
     */
    if (xsim_handle_check(&dmod->h, domid) < 0)
        return -1;
    if (nr == 0 && ((uintptr_t)dirty_bitmap & (XSIM_PAGE_SIZE - 1)) == 0) {
        errno = EFAULT;
        return -1;
    }

    return dmop(dmod, XSIM_OP_DM_TRACK_VRAM, domid, args, NULL, 0,
                dirty_bitmap, (nr + 7) / 8, NULL) < 0 ? -1 : 0;
}

int xendevicemodel_modified_memory_bulk(
    xendevicemodel_handle *dmod, domid_t domid,
    struct xen_dm_op_modified_memory_extent extents[], uint32_t nr)
{
    return dmop(dmod, XSIM_OP_DM_MODIFIED, domid, NULL, extents,
                nr * sizeof(*extents), NULL, 0, NULL) < 0 ? -1 : 0;
}

int xendevicemodel_modified_memory(xendevicemodel_handle *dmod, domid_t domid,
                                   uint64_t first_pfn, uint32_t nr)
{
    struct xen_dm_op_modified_memory_extent extent = {
        .first_pfn = first_pfn,
        .nr = nr,
    };

    return xendevicemodel_modified_memory_bulk(dmod, domid, &extent, 1);
}

int xendevicemodel_set_mem_type(xendevicemodel_handle *dmod, domid_t domid,
                                hvmmem_type_t mem_type, uint64_t first_pfn,
                                uint32_t nr)
{
    return noop(dmod, domid, "set_mem_type type=%u first=%#llx nr=%u",
                (unsigned)mem_type, (unsigned long long)first_pfn, nr);
}

int xendevicemodel_inject_event(xendevicemodel_handle *dmod, domid_t domid,
                                int vcpu, uint8_t vector, uint8_t type,
                                uint32_t error_code, uint8_t insn_len,
                                uint64_t extra)
{
    return noop(dmod, domid, "inject_event vcpu=%d vector=%u type=%u "
                "error=%#x len=%u extra=%#llx", vcpu, vector, type,
                error_code, insn_len, (unsigned long long)extra);
}

int xendevicemodel_shutdown(xendevicemodel_handle *dmod, domid_t domid,
                            unsigned int reason)
{
    uint64_t args[6] = { reason };

    if (xsim_handle_check(&dmod->h, domid) < 0)
        return -1;
    if (noop(dmod, domid, "shutdown reason=%u", reason) < 0)
        return -1;
    return dmop(dmod, XSIM_OP_DOM_SHUTDOWN, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_relocate_memory(xendevicemodel_handle *dmod, domid_t domid,
                                   uint32_t size, uint64_t src_gfn,
                                   uint64_t dst_gfn)
{
    uint64_t args[6] = { size, src_gfn, dst_gfn };

    return dmop(dmod, XSIM_OP_DM_RELOCATE, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_pin_memory_cacheattr(xendevicemodel_handle *dmod,
                                        domid_t domid, uint64_t start,
                                        uint64_t end, uint32_t type)
{
    uint64_t args[6] = { start, end, type };

    return dmop(dmod, XSIM_OP_DM_CACHEATTR, domid, args, NULL, 0, NULL, 0,
                NULL) < 0 ? -1 : 0;
}

int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid,
                            unsigned int *vcpus)
{
    int64_t rc = dmop(dmod, XSIM_OP_DM_NR_VCPUS, domid, NULL, NULL, 0, NULL, 0,
                      NULL);

    if (rc < 0)
        return -1;
    *vcpus = (unsigned int)rc;
    return 0;
}
