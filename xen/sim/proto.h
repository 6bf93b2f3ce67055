/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proto.h - the one channel between the simulated host (the xensim
 * daemon) and everything that talks to it: the stand-in Xen libraries
 * loaded into xenram, Debian's xenstored, the xensim command line, tests.
 *
 * Transport: a SOCK_STREAM unix socket at <state dir>/xensim.sock, where
 * the state dir is $XENSIM_DIR, else $XDG_RUNTIME_DIR/xensim, else
 * /tmp/xensim-<uid> (see xsim_state_dir()).  One connection per library
 * handle.  Every request is a struct xsim_req followed by req.len payload
 * bytes; every reply is a struct xsim_rep followed by rep.len payload
 * bytes.  A reply may carry one file descriptor (SCM_RIGHTS, attached to
 * the first byte of the reply header): the domain's guest memory memfd.
 * Requests on one connection are answered in order, one at a time.
 *
 * Errors: rep.err is 0 or a positive errno value, exactly what the real
 * library would leave in errno; rep.ret is the operation's result.
 *
 * Guest memory: each domain's guest-physical space is one memfd of
 * XSIM_GFN_LIMIT pages, sparse; byte offset gfn * 4096 holds frame gfn.
 * Clients mmap it MAP_SHARED, so a device model's writes land directly in
 * the guest.  Only populated frames (the p2m) may be mapped; the daemon
 * answers which ones are (XSIM_OP_MEM_CHECK) before a client maps them.
 *
 * This header is shared by the daemon and the stand-in libraries and by
 * nothing of the device model.
 */
#ifndef XENSIM_PROTO_H
#define XENSIM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define XSIM_MAGIC        0x4d495358u      /* "XSIM" */
#define XSIM_VERSION      1u
#define XSIM_SOCK_NAME    "xensim.sock"
#define XSIM_PID_NAME     "xensim.pid"
#define XSIM_LOCK_NAME    "xensim.lock"
#define XSIM_LOG_NAME     "xensim.log"

#define XSIM_PAGE_SHIFT   12
#define XSIM_PAGE_SIZE    (1ul << XSIM_PAGE_SHIFT)

/* Guest-physical address space of every simulated domain: 1 TiB. */
#define XSIM_GPADDR_BITS  40
#define XSIM_GFN_LIMIT    (1ull << (XSIM_GPADDR_BITS - XSIM_PAGE_SHIFT))

/* Largest payload either side accepts (a CLEAN bitmap of 1 TiB is 32 MiB). */
#define XSIM_MAX_PAYLOAD  (64ull << 20)

/* HVM layout, as libxl/libxc build it. */
#define XSIM_BELOW_4G_END_GFN  0xF0000ull    /* HVM_BELOW_4G_RAM_END >> 12 */
#define XSIM_4G_GFN            0x100000ull
#define XSIM_VGA_HOLE_GFN      0xA0ull       /* 0xA0000-0xBFFFF not RAM */
#define XSIM_VGA_HOLE_END_GFN  0xC0ull

/* libxl's LIBXL_MAXMEM_CONSTANT: max memory = memory + 1 MiB. */
#define XSIM_MAXMEM_SLACK_KB   1024ull

enum xsim_op {
    XSIM_OP_HELLO = 1,         /* arg0 = XSIM_VERSION; payload = client name */
    XSIM_OP_HOST_INFO,         /* out: struct xsim_hostinfo */
    XSIM_OP_HOST_STOP,         /* the daemon shuts down after replying */

    XSIM_OP_DOM_CREATE,        /* in: struct xsim_create; ret = domid */
    XSIM_OP_DOM_DESTROY,
    XSIM_OP_DOM_GETINFO,       /* domid = first; arg0 = max; out: xsim_dominfo[] */
    XSIM_OP_DOM_PAUSE,
    XSIM_OP_DOM_UNPAUSE,
    XSIM_OP_DOM_SETMAXMEM,     /* arg0 = max_memkb */
    XSIM_OP_DOM_MAX_GPFN,      /* ret = highest gfn ever mapped */
    XSIM_OP_DOM_WORKLOAD,      /* payload = workload spec string */
    XSIM_OP_DOM_SHUTDOWN,      /* arg0 = reason */
    XSIM_OP_HVM_PARAM,         /* arg0 = index, arg1 = 1 set / 0 get, arg2 = value */
    XSIM_OP_GUEST_WRITE,       /* in: u64 gfn[]; the guest (a vCPU) stamps
                                  these frames now; ret = frames written
                                  (unpopulated ones are skipped) */

    XSIM_OP_MEM_POPULATE,      /* arg0 = nr_extents, arg1 = order; in: u64[]; ret = done */
    XSIM_OP_MEM_DECREASE,      /* same shape */
    XSIM_OP_MEM_CHECK,         /* arg0 = 1 to receive the memfd, arg1 = 1 to
                                  take a reference on each mappable frame
                                  for this connection (a foreign mapping,
                                  dropped by MEM_UNMAP or at disconnect);
                                  in: u64 gfn[]; out: int32 err[] (0 or
                                  -errno per frame: -ENOENT paged out, a
                                  request queued); val0 = instance id */

    XSIM_OP_MEM_P2M,           /* arg0 = 1 to receive the memfd; out: the p2m
                                  as a byte bitmap of val0 frames;
                                  val1 = domain instance id */
    XSIM_OP_SHADOW,            /* arg0 = sop, arg1 = mode, arg2 = pages,
                                  arg3 = 1 to return the bitmap, arg4 = mb;
                                  ret = pages; val0 = fault_count,
                                  val1 = dirty_count, val2 = mb; out: bitmap */

    XSIM_OP_DM_MODIFIED,       /* in: xen_dm_op_modified_memory_extent[] */
    XSIM_OP_DM_TRACK_VRAM,     /* arg0 = first_pfn, arg1 = nr; out: bitmap */
    XSIM_OP_DM_IOREQ_CREATE,   /* arg0 = handle_bufioreq; ret = id */
    XSIM_OP_DM_IOREQ_INFO,     /* arg0 = id, arg1 = want gfns; val0 = ioreq gfn,
                                  val1 = bufioreq gfn, val2 = bufioreq port */
    XSIM_OP_DM_IOREQ_RANGE,    /* arg0 = id, arg1 = type, arg2 = start,
                                  arg3 = end, arg4 = 1 map / 0 unmap */
    XSIM_OP_DM_IOREQ_STATE,    /* arg0 = id, arg1 = enabled */
    XSIM_OP_DM_IOREQ_DESTROY,  /* arg0 = id */
    XSIM_OP_DM_RELOCATE,       /* arg0 = size, arg1 = src_gfn, arg2 = dst_gfn */
    XSIM_OP_DM_CACHEATTR,      /* arg0 = start, arg1 = end, arg2 = type */
    XSIM_OP_DM_NR_VCPUS,       /* ret = vcpus */
    XSIM_OP_DM_NOOP,           /* a recorded dm op with no effect here;
                                  payload = its name */
    XSIM_OP_DM_STATE,          /* out: text, what the device model asked */

    XSIM_OP_HVM_GETCTX,        /* arg0 = 1 to return the context (0: only
                                  its size), arg1 = the caller's buffer
                                  size; ret = size; out: the context */
    XSIM_OP_HVM_SETCTX,        /* in: the context (Xen's hvm save format) */
    XSIM_OP_SCHED_ID,          /* ret = XEN_SCHEDULER_* of the pool */
    XSIM_OP_SCHED_DOM,         /* arg0 = sched_id, arg1 = 1 put / 0 get,
                                  arg2 = weight, arg3 = cap;
                                  val0 = weight, val1 = cap */

    XSIM_OP_MAP_RESOURCE,      /* arg0 = type, arg1 = id, arg2 = frame,
                                  arg3 = nr_frames (0: size only); ret =
                                  nr_frames of the resource; the fd of its
                                  frames passed, val0 = byte offset */
    XSIM_OP_DOM_BALLOON,       /* arg0 = frames the guest gives back; ret =
                                  frames removed */

    XSIM_OP_PAGING,            /* arg0 = XSIM_PAGING_*, arg1 = gfn; in: the
                                  page for PREP (optional); ret = port for
                                  ENABLE (host-paging.c) */
    XSIM_OP_MEM_UNMAP,         /* in: u64 gfn[]: drop the references
                                  MEM_CHECK took on this connection */

    XSIM_OP_MAX
};

/* XSIM_OP_PAGING: XEN_DOMCTL_vm_event_op (paging mode) and XENMEM_paging_op */
enum xsim_paging_op {
    XSIM_PAGING_ENABLE = 1,
    XSIM_PAGING_DISABLE,
    XSIM_PAGING_RESUME,
    XSIM_PAGING_NOMINATE,
    XSIM_PAGING_EVICT,
    XSIM_PAGING_PREP,
};

struct xsim_req {
    uint32_t magic;
    uint16_t version;
    uint16_t op;
    uint32_t domid;
    uint32_t pad;
    uint64_t arg[6];
    uint64_t len;              /* payload bytes that follow */
};

struct xsim_rep {
    uint32_t magic;
    int32_t  err;              /* 0 or positive errno */
    int64_t  ret;
    uint64_t val[4];
    uint64_t len;              /* payload bytes that follow */
    uint32_t nfds;             /* 0 or 1, passed with SCM_RIGHTS */
    uint32_t pad;
};

/* struct xsim_dominfo.flags */
#define XSIM_DOMF_DYING     (1u << 0)
#define XSIM_DOMF_HVM       (1u << 1)
#define XSIM_DOMF_SHUTDOWN  (1u << 2)
#define XSIM_DOMF_PAUSED    (1u << 3)
#define XSIM_DOMF_BLOCKED   (1u << 4)
#define XSIM_DOMF_RUNNING   (1u << 5)
#define XSIM_DOMF_HAP       (1u << 8)
#define XSIM_DOMF_CONTROL   (1u << 16)   /* dom0, the simulated toolstack */
#define XSIM_DOMF_LOGDIRTY  (1u << 17)
#define XSIM_DOMF_VRAM      (1u << 18)

struct xsim_dominfo {
    uint32_t domid;
    uint32_t flags;
    uint64_t tot_pages;
    uint64_t max_pages;
    uint64_t max_gpfn;
    uint64_t cpu_time_ns;
    uint32_t nr_vcpus;
    uint32_t pause_count;
    uint32_t shutdown_reason;
    uint32_t ioreq_servers;
    uint64_t vram_first;
    uint64_t vram_nr;
    uint64_t vcpu_writes;      /* pages stamped by the vCPUs so far */
    uint64_t instance;         /* unique for the daemon's lifetime */
    uint8_t  handle[16];
    char     name[64];
    char     workload[64];
};

struct xsim_create {
    char     name[64];
    char     workload[64];
    uint64_t mem_kb;           /* total memory, as xl's memory= */
    uint64_t vram_kb;          /* video memory (populated by the device model) */
    uint32_t vcpus;
    uint32_t flags;            /* XSIM_CREATE_* */
};
#define XSIM_CREATE_PAUSED    (1u << 0)   /* leave it paused (xl create -p) */
#define XSIM_CREATE_EMPTY     (1u << 1)   /* populate nothing */

struct xsim_hostinfo {
    uint32_t version;
    uint32_t pid;
    uint32_t nr_domains;
    uint32_t pad;
    uint64_t gfn_limit;
    char     tracking[32];     /* "uffd-wp-async" or "explicit" */
    char     state_dir[200];
    char     xenstore[64];     /* "off" or "xenstored pid N" */
};

#endif /* XENSIM_PROTO_H */
