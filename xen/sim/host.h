/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * host.h - the simulated Xen host inside the xensim daemon: its domains,
 * their guest memory and p2m, log-dirty, VRAM tracking, pause state, vCPUs,
 * and what device models asked of them (ioreq servers, cache attributes).
 *
 * Each operation mirrors one hypercall and returns what Xen would: 0 or a
 * count on success, -errno on failure.  Where the simulator's answer is a
 * choice rather than Xen's verified behaviour, docs/simulator.md says so.
 *
 * Locking:
 *   host.lock   the domain table and domid allocation; never held while a
 *               domain's lock is taken (lookups take a reference instead).
 *   dom.lock    every operation on one domain (p2m, log-dirty, dm state).
 *   dom.run_lock  the vCPUs' run state (pause count, quiesce, running).
 *               Taken inside dom.lock, never the other way round; vCPU
 *               threads take only this one.
 *   pool.lock   the host's pages given back (struct xsim_pool): innermost,
 *               taken under any dom.lock (and dom.pg.lock), takes nothing.
 */
#ifndef XENSIM_HOST_H
#define XENSIM_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "xen/sim/proto.h"
#include "xen/sim/track.h"
#include "xen/sim/vcpu.h"

#define XSIM_MAX_IOREQ_SERVERS 8      /* Xen's MAX_NR_IOREQ_SERVERS */
#define XSIM_IOREQ_MAX_VCPUS   64     /* xensim create's limit */
#define XSIM_HVM_NR_PARAMS     64
#define XSIM_DOMID_FIRST_RESERVED 0x7FF0u

struct xsim_ioreq_range {
    uint32_t type;
    uint64_t start, end;
};

struct xsim_ioreq {
    bool used;
    bool enabled;
    bool pages;                 /* ioreq pages set up (get_info with gfns) */
    bool resource;              /* ... or acquired by map_resource */
    int bufioreq;
    unsigned nr_ranges;
    struct xsim_ioreq_range ranges[64];
    /* Kept for the domain's life, across destroy and create of the id
     * (host-ioreq.c): the server's two pages (frame 0 buffered ring,
     * frame 1 ioreq page) and the guest ends of its event channels. */
    uint64_t gen;               /* bumped at create and destroy, atomic */
    int memfd;                  /* -1: never set up */
    uint8_t *page;              /* the daemon's mapping of the two frames */
    int sock[XSIM_IOREQ_MAX_VCPUS + 1];  /* per vCPU, then buffered */
};

/*
 * A count per 64-bit key (open addressing, linear probing): the foreign
 * mappings' references on guest frames, per domain (key gfn) and per
 * connection (key domid << 32 | gfn).  Not locked: its owner's lock.
 */
struct xsim_refs {
    uint64_t *keys;             /* key + 1; 0 is an empty slot */
    uint32_t *counts;
    size_t cap, n;
};

/* Returns the count after adding @delta (never below 0). */
uint32_t refs_add(struct xsim_refs *r, uint64_t key, int delta);
uint32_t refs_get(const struct xsim_refs *r, uint64_t key);
void refs_fini(struct xsim_refs *r);

/* The p2m paging types (Xen's p2m_ram_paging_out/paged/paging_in). */
enum xsim_ptype {
    XSIM_PT_NONE = 0,           /* ram_rw (or log-dirty) when populated */
    XSIM_PT_PAGING_OUT,         /* nominated: the page is still there */
    XSIM_PT_PAGED,              /* evicted: no page */
    XSIM_PT_PAGING_IN,          /* asked for: a page only if never evicted */
};

/*
 * Xen 4.17's memory paging of one domain (host-paging.c): the vm_event
 * ring (Xen the front end), its event channel, the per-frame types.
 *
 * Locking: lock is inner to dom.lock and to nothing else; it guards
 * everything here and every change of type[].  vCPU threads read type[]
 * without it (one byte, atomically): a change that must not race with a
 * write in flight (nominate) is made with the vCPUs quiesced.
 */
struct xsim_paging {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* slot waiters and paused vCPUs */
    uint8_t *type;              /* XSIM_GFN_LIMIT bytes, from the 1st enable */
    bool dying;                 /* the domain goes: release every waiter */
    void *ring;                 /* the daemon's mapping of the ring page;
                                   NULL: paging is not enabled */
    uint64_t ring_gfn;
    bool ring_orphan;           /* the frame left the p2m, the page is ours */
    /* vm_event_front_ring_t, kept opaque here (public/vm_event.h) */
    uint32_t req_prod_pvt, rsp_cons, nr_ents;
    unsigned target_producers, foreign_producers;
    unsigned waiters;           /* vCPUs waiting for a slot (Xen's wq) */
    int sock;                   /* Xen's end of the event channel */
    int stop_pipe[2];
    /*
     * A vCPU paused on the ring waits on the channel itself (the leader,
     * one at a time); the thread wakes it through leader_efd when it took
     * the responses first, and ring_destroy() waits for it to leave
     * (closing) before the descriptors go.
     */
    int leader_efd;
    bool leader, closing;
    unsigned paused;            /* vCPUs waiting for their response */
    pthread_t thread;
    bool thread_started;
    uint64_t paged_pages;       /* d->paged_pages */
    uint64_t requests, responses, vcpu_waits;
};

/*
 * What a page a live domain gave back still holds.  Xen 4.17 scrubs only a
 * dying domain's pages (free_domheap_pages(): `scrub = d->is_dying || ...`);
 * any other freed page goes back to the heap as it is, and the next
 * allocation, for any domain, may hand it out so (docs/simulator.md, "Pages
 * given back are not scrubbed").  The host keeps the contents of the last
 * XSIM_POOL_PAGES pages given back, as a stack: populate takes the newest
 * first (Xen's heap lists reuse recently freed pages first; the exact order
 * here is a model), a page given back to a full pool forgets the oldest.
 *
 * Locking: lock guards everything here but n, which is also read without
 * it (atomically) so that a populate finding the pool empty costs nothing.
 */
#define XSIM_POOL_PAGES 4096u   /* 16 MiB of contents at most */

struct xsim_pool {
    pthread_mutex_t lock;
    uint8_t *data;              /* XSIM_POOL_PAGES pages, MAP_NORESERVE */
    uint8_t zero[XSIM_POOL_PAGES];  /* the slot's page is zeros (no data) */
    unsigned top;               /* the slot the next page given goes to */
    unsigned n;                 /* pages held, the newest below top */
    uint64_t given, taken, forgotten;
};

struct xsim_cacheattr {
    uint64_t start, end;
    uint32_t type;
};

struct xsim_dom {
    uint32_t domid;
    uint64_t instance;
    char name[64];
    uint8_t handle[16];
    bool control;               /* dom0 */
    int refs;                   /* under host.lock */
    bool dead;                  /* destroyed, waiting for its last ref */
    struct xsim_pool *pool;     /* the host's; NULL for dom0 */

    pthread_mutex_t lock;

    /* Guest memory */
    int memfd;
    struct xsim_track track;    /* the vCPU view */
    unsigned long *p2m;         /* present frames, XSIM_GFN_LIMIT bits */
    uint64_t tot_pages;
    uint64_t max_pages;
    int64_t max_mapped;         /* highest gfn ever populated, -1 none */
    uint64_t ram_ext[4][2];     /* RAM laid out at create: {gfn, nr} */
    unsigned nr_ram_ext;
    uint64_t nr_ram;            /* pages in ram_ext */

    /* Log-dirty */
    bool logdirty;
    unsigned long *ld;          /* XSIM_GFN_LIMIT bits */
    uint32_t dirty_count;
    uint32_t fault_count;
    uint32_t shadow_mb;

    /* track_dirty_vram: one range */
    uint64_t vram_first, vram_nr;
    unsigned long *vram;        /* vram_nr bits */

    /* Run state: vCPUs */
    pthread_mutex_t run_lock;
    pthread_cond_t run_cond;    /* vCPUs wait here */
    pthread_cond_t idle_cond;   /* quiescers wait here */
    int pause_count;            /* the toolstack's (xc_domain_pause) */
    int quiesce;                /* the simulator's own, around ops */
    int running;                /* vCPUs inside a write batch */
    bool stopping;
    bool shutdown;
    uint32_t shutdown_reason;
    uint64_t gen;               /* stamp generation, atomic */
    uint64_t writes;            /* pages written, atomic */
    uint64_t cpu_ns;            /* atomic */
    struct xsim_workload wl;
    unsigned nr_vcpus;
    struct xsim_vcpu *vcpus;
    /* credit2 (run_lock): weight, cap (% of one pCPU, 0 none) and the
     * domain's budget pool for the current period */
    uint16_t sched_weight;
    uint16_t sched_cap;
    int64_t cap_pool_ns;
    uint64_t cap_next_repl_ns;

    /* What device models asked for */
    struct xsim_ioreq ioreq[XSIM_MAX_IOREQ_SERVERS];
    bool creation_finished;     /* unpaused once by the toolstack */
    /* Per vCPU (bit = vCPU id), atomic: Xen's v->mapcache_invalidate. */
    uint64_t ioreq_inval;
    int removal_vcpu;           /* d->lock: the vCPU removing frames as the
                                   guest (balloon), -1: another domain */
    uint32_t ioreq_waiting;     /* vCPUs blocked on an ioreq now, atomic */
    uint64_t ioreq_sent;        /* synchronous ioreqs sent, atomic */
    uint64_t ioreq_wait_max_ns; /* longest wait so far, atomic */
    /* The MMIO workload's read-backs (atomic): equal to what was written,
     * all ones, anything else. */
    uint64_t mmio_pairs, mmio_match, mmio_ones, mmio_other;
    uint32_t mmio_active;       /* vCPUs inside a batch of them, atomic */
    char panic[200];            /* what would have taken real Xen down */
    struct xsim_cacheattr *cacheattr;
    unsigned nr_cacheattr;
    char *dm_log;               /* recorded no-op dm ops, text */
    size_t dm_log_len;
    uint64_t hvm_param[XSIM_HVM_NR_PARAMS];
    unsigned pin_count;

    /* Memory paging (host-paging.c); fref under dom.lock */
    struct xsim_paging pg;
    struct xsim_refs fref;      /* foreign mappings' references, per gfn */
};

/* Hooks into the simulated xenstore (xen/sim/xenstore), all optional. */
struct xsim_store_ops {
    int (*introduce)(const char *state_dir, uint32_t domid, const char *name,
                     uint64_t mem_kb);
    int (*release)(const char *state_dir, uint32_t domid);
};

struct xsim_host {
    pthread_mutex_t lock;
    struct xsim_dom *doms[XSIM_DOMID_FIRST_RESERVED];
    uint32_t next_domid;
    uint64_t next_instance;
    unsigned nr_domains;
    enum xsim_track_mode track_mode;
    char state_dir[200];
    char xenstore[64];          /* lock: set once xenstored runs, */
    const struct xsim_store_ops *store; /* while the server serves it */
    struct xsim_pool pool;
};

int host_init(struct xsim_host *h, enum xsim_track_mode mode,
              const char *state_dir);
/* xenstored is up (described by @what): domains are introduced to it. */
void host_set_store(struct xsim_host *h, const struct xsim_store_ops *ops,
                    const char *what);
/* Destroy every domain (stops all vCPUs). */
void host_fini(struct xsim_host *h);

/* Lookups return a referenced domain or NULL; put it back when done. */
struct xsim_dom *host_get(struct xsim_host *h, uint32_t domid);
void host_put(struct xsim_host *h, struct xsim_dom *d);

int host_create(struct xsim_host *h, const struct xsim_create *c,
                uint32_t *domid);
int host_destroy(struct xsim_host *h, uint32_t domid);
/* Fill up to @max entries for domains with id >= @first, in domid order;
 * returns the number filled. */
int host_getinfo(struct xsim_host *h, uint32_t first, unsigned max,
                 struct xsim_dominfo *out);

int dom_pause(struct xsim_dom *d);
int dom_unpause(struct xsim_dom *d);
int dom_setmaxmem(struct xsim_dom *d, uint64_t max_kb);
int64_t dom_max_gpfn(struct xsim_dom *d);
int dom_set_workload(struct xsim_dom *d, const char *spec);
int dom_shutdown(struct xsim_dom *d, uint32_t reason);
int dom_hvm_param(struct xsim_dom *d, uint32_t index, bool set,
                  uint64_t *value);

/*
 * XEN_DOMCTL_gethvmcontext: @buf NULL asks for the size needed (*len);
 * else @size must be at least that (-ENOSPC) and *len is what was written.
 * XEN_DOMCTL_sethvmcontext: load @size bytes (hvm_load's checks and
 * errors).  Both on a running domain too: they pause it around the work,
 * as Xen's domctl does.  hvmctx.c.
 */
int dom_hvm_getcontext(struct xsim_dom *d, uint8_t *buf, uint64_t size,
                       uint64_t *len);
int dom_hvm_setcontext(struct xsim_dom *d, const uint8_t *buf, uint64_t size);

/* XEN_DOMCTL_scheduler_op on a credit2 pool: @sched_id other than
 * XEN_SCHEDULER_CREDIT2 is -EINVAL; @put sets (csched2_dom_cntl's rules),
 * else *weight and *cap are filled. */
int dom_sched_op(struct xsim_dom *d, uint32_t sched_id, bool put,
                 uint16_t *weight, uint16_t *cap);

/*
 * The host's pool of pages given back (struct xsim_pool).  Under d->lock:
 *
 * host_pool_give: @nr pages of @fd from page @first (the domain's memfd,
 * or an ioreq server's) are freed by @d, in that order: their contents
 * join the pool, unless @d is dying (Xen scrubs those).
 *
 * host_pool_take: @d allocates @nr pages for pages @first.. of @fd: each
 * gets the newest page of the pool until it is empty (a zero page leaves
 * the hole there); @fd < 0 takes them only (an allocation that clears or
 * fills its page).  Returns how many came from the pool.  @fd's pages must
 * be holes (punched) beforehand.
 */
void host_pool_give(struct xsim_dom *d, int fd, uint64_t first, uint64_t nr);
uint64_t host_pool_take(struct xsim_dom *d, int fd, uint64_t first,
                        uint64_t nr);

/* XENMEM_populate_physmap / decrease_reservation: extents done or -errno. */
long dom_populate(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                  unsigned order);
long dom_decrease(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                  unsigned order);
/* The guest writes (stamps) @gfns through the vCPU view, as a vCPU would;
 * returns how many were populated and written. */
long dom_guest_write(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr);
/*
 * Per frame: 0 if mappable, -EINVAL if not, -ENOENT if paged out (a
 * request for it queued on the paging ring, as Xen's mod_l1_entry() does).
 * With @refs, every mappable frame gets a reference, counted in d->fref
 * and in @refs (the connection's, key domid << 32 | gfn).
 */
void dom_check_frames(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                      int32_t *err, struct xsim_refs *refs);
/* Drop references dom_check_frames() took for @refs. */
void dom_unmap_frames(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                      struct xsim_refs *refs);

/* XEN_DOMCTL_shadow_op.  @bitmap (may be NULL) receives ceil(pages/8)
 * bytes for CLEAN/PEEK. */
int dom_shadow_op(struct xsim_dom *d, uint32_t op, uint32_t mode,
                  uint64_t pages, uint8_t *bitmap, uint32_t *mb,
                  uint32_t *fault_count, uint32_t *dirty_count);

/* XEN_DMOP_* */
int dom_modified_memory(struct xsim_dom *d, const void *extents,
                        uint32_t nr);
int dom_track_dirty_vram(struct xsim_dom *d, uint64_t first, uint64_t nr,
                         uint8_t *bitmap);
int dom_ioreq_create(struct xsim_dom *d, int bufioreq, uint32_t *id);
int dom_ioreq_info(struct xsim_dom *d, uint32_t id, bool want_gfns,
                   uint64_t out[3]);
int dom_ioreq_range(struct xsim_dom *d, uint32_t id, uint32_t type,
                    uint64_t start, uint64_t end, bool map);
int dom_ioreq_state(struct xsim_dom *d, uint32_t id, bool enabled);
int dom_ioreq_destroy(struct xsim_dom *d, uint32_t id);
int dom_relocate(struct xsim_dom *d, uint32_t size, uint64_t src,
                 uint64_t dst);
int dom_cacheattr(struct xsim_dom *d, uint64_t start, uint64_t end,
                  uint32_t type);
int dom_dm_record(struct xsim_dom *d, const char *what);
/* Text describing the device-model state; malloc'd, *len set. */
char *dom_dm_state(struct xsim_dom *d, size_t *len);

/* dm ops refuse dom0 (EPERM, "remote domain") and non-HVM domains. */
int dom_check_dm(struct xsim_dom *d);

/* ---- ioreq forwarding (host-ioreq.c, docs/simulator.md) ---------------- */

/* The event-channel namespace of this host's domains (as xenram's
 * libxenevtchn stand-in derives it from XENSTORED_RUNDIR). */
void host_ioreq_init(const char *state_dir);
/*
 * Xen's end of event channel @port of domain @domid in that namespace: a
 * socket bound for the device model's notifications (-errno), and a
 * notification to the device model's end (nobody bound is no error).
 * Shared by the ioreq servers and the paging ring.
 */
int host_evtchn_bind(uint32_t domid, uint32_t port);
void host_evtchn_notify(uint32_t domid, uint32_t port);
/* The guest end of server @id's event channel for @vcpu (or the buffered
 * ring's, @vcpu == XSIM_IOREQ_MAX_VCPUS). */
uint32_t host_ioreq_port(uint32_t id, unsigned vcpu);
/* Under d->lock: allocate (once) and clear server @id's pages and bind
 * its guest ends; on enable, write each vCPU's port into its slot. */
int host_ioreq_setup(struct xsim_dom *d, uint32_t id);
void host_ioreq_enabled(struct xsim_dom *d, uint32_t id);
/* At dom_free: close and unmap what the servers kept. */
void host_ioreq_fini(struct xsim_dom *d);
/* Under d->lock, after a p2m removal: ioreq_request_mapcache_invalidate. */
void host_ioreq_removal(struct xsim_dom *d);
/* Does vCPU @v owe an INVALIDATE (checked by its thread at each loop)? */
bool host_ioreq_owed(const struct xsim_vcpu *v);
/* In the vCPU's thread, no lock held: the synchronous INVALIDATE to every
 * enabled server, waiting for each answer (or recording the panic). */
void host_ioreq_resume(struct xsim_vcpu *v);
/* The MMIO workload: @n write + read-back pairs by vCPU @v in @wl's range,
 * each to the enabled server whose range holds it (ioreq_server_select),
 * else Xen's null handler (reads all ones).  No lock held. */
void host_ioreq_mmio(struct xsim_vcpu *v, const struct xsim_workload *wl,
                     unsigned n);
/* XENMEM_acquire_resource of an ioreq server: *fd (the server's memfd,
 * owned by the domain: pass it, do not close it) and the byte offset of @frame; @nr 0 asks for the size
 * (returned).  -EOPNOTSUPP for other resource types. */
long dom_map_resource(struct xsim_dom *d, uint32_t type, uint32_t id,
                      uint64_t frame, uint64_t nr, int *fd, uint64_t *off);
/* Under d->lock: pages of the guest's memfd that hold data although the
 * p2m does not have their frame -- writes through a stale mapping of a
 * removed frame (on Xen they would land in the orphaned page). */
uint64_t host_pages_outside_p2m(struct xsim_dom *d);
/* The guest's balloon driver gives back @nr frames (the highest RAM frames
 * still populated) from vCPU 0: returns the number removed. */
long dom_balloon(struct xsim_dom *d, uint64_t nr);

/* ---- memory paging (host-paging.c, docs/simulator.md) ------------------ */

/* At dom_alloc / at destroy (releases the waiters) / at dom_free. */
void host_paging_setup(struct xsim_dom *d);
void host_paging_kill(struct xsim_dom *d);
void host_paging_fini(struct xsim_dom *d);
/* XSIM_OP_PAGING: the sub-op's result (ENABLE: the port) or -errno. */
long dom_paging_op(struct xsim_dom *d, uint32_t op, uint64_t gfn,
                   const void *buf, size_t buflen);
/* The paging type of @gfn as a vCPU sees it (no lock). */
static inline enum xsim_ptype host_paging_type(const struct xsim_dom *d,
                                               uint64_t gfn)
{
    const uint8_t *t = __atomic_load_n(&d->pg.type, __ATOMIC_ACQUIRE);

    return t ? (enum xsim_ptype)__atomic_load_n(&t[gfn], __ATOMIC_RELAXED)
             : XSIM_PT_NONE;
}
/* vCPU @v touched @gfn, which is in a paging state: queue the request and
 * wait until the pager answered (p2m_mem_paging_populate).  No lock held;
 * the caller then tries the access again. */
void host_paging_fault(struct xsim_vcpu *v, uint64_t gfn);
/* Under d->lock, frame @g in a paging state or the ring's: remove it as
 * guest_remove_page() does.  Returns 1 if it handled the frame, 0 if the
 * frame is an ordinary one, -ENOENT if there is nothing to remove. */
int host_paging_remove(struct xsim_dom *d, uint64_t g);
/* Under d->lock, before [gfn, gfn + nr) is populated afresh. */
void host_paging_populated(struct xsim_dom *d, uint64_t gfn, uint64_t nr);
/* Under d->lock: the foreign map of @g (paged or paging in) -> -ENOENT. */
int host_paging_map(struct xsim_dom *d, uint64_t g);
/* A line for dm-state. */
int host_paging_state(struct xsim_dom *d, char *buf, size_t len);

/* vCPU support (vcpu.c): quiesce blocks until no vCPU is inside a write. */
void dom_quiesce(struct xsim_dom *d);
void dom_unquiesce(struct xsim_dom *d);

#endif /* XENSIM_HOST_H */
