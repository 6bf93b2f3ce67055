/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * host.c - the simulated Xen host: domains, guest memory, p2m, log-dirty,
 * VRAM tracking and device-model state.  See host.h; the behaviour each
 * operation copies from Xen is cited next to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/params.h>

#include "xen/sim/host.h"
#include "xen/sim/log.h"
#include "xen/sim/stamp.h"

/* Largest range track_dirty_vram accepts: GB(1) >> PAGE_SHIFT (dm.c). */
#define VRAM_MAX_PAGES  (1ull << 18)

/* HVM special pages, as libxc lays them out (xg_dom_x86.c). */
#define SPECIAL_REGION_END  0xff000ull
#define NR_SPECIAL_PAGES    8ull
#define SPECIAL_PFN(x)      (SPECIAL_REGION_END - NR_SPECIAL_PAGES + (x))
#define NR_IOREQ_SERVER_PAGES 8ull
#define IOREQ_SERVER_PFN0   (SPECIAL_REGION_END - NR_SPECIAL_PAGES - \
                             NR_IOREQ_SERVER_PAGES)

/* ---- bitmaps ----------------------------------------------------------- */

static unsigned long *bm_alloc(uint64_t bits)
{
    size_t bytes = (size_t)((bits + 63) / 64 * 8);
    void *p = mmap(NULL, bytes ? bytes : 8, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

static void bm_free(unsigned long *b, uint64_t bits)
{
    size_t bytes = (size_t)((bits + 63) / 64 * 8);

    if (b)
        munmap(b, bytes ? bytes : 8);
}

/* Give the pages of a sparse bitmap back (it reads as zeros again). */
static void bm_zero_all(unsigned long *b, uint64_t bits)
{
    madvise(b, (size_t)((bits + 63) / 64 * 8), MADV_DONTNEED);
}

static inline bool bm_test(const unsigned long *b, uint64_t i)
{
    return (__atomic_load_n(&b[i / 64], __ATOMIC_RELAXED) >> (i % 64)) & 1;
}

static inline void bm_set(unsigned long *b, uint64_t i)
{
    __atomic_fetch_or(&b[i / 64], 1ul << (i % 64), __ATOMIC_RELAXED);
}

static inline void bm_clear(unsigned long *b, uint64_t i)
{
    __atomic_fetch_and(&b[i / 64], ~(1ul << (i % 64)), __ATOMIC_RELAXED);
}

static inline unsigned long word_mask(uint64_t w, uint64_t start, uint64_t end)
{
    uint64_t lo = w * 64 < start ? start - w * 64 : 0;
    uint64_t hi = (w + 1) * 64 > end ? end - w * 64 : 64;

    return (hi == 64 ? ~0ul : (1ul << hi) - 1) & ~((1ul << lo) - 1);
}

static void bm_clear_range(unsigned long *b, uint64_t start, uint64_t n)
{
    uint64_t end = start + n, w;

    for (w = start / 64; w * 64 < end; w++) {
        unsigned long m = word_mask(w, start, end);

        if (m == ~0ul) {
            if (__atomic_load_n(&b[w], __ATOMIC_RELAXED))
                __atomic_store_n(&b[w], 0, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_and(&b[w], ~m, __ATOMIC_RELAXED);
        }
    }
}

/* Copy bits [0, n) out as Xen's byte bitmap (bit i of byte i/8). */
static void bm_copy_out(const unsigned long *b, uint64_t n, uint8_t *out)
{
    uint64_t bytes = (n + 7) / 8;

    memcpy(out, b, (size_t)bytes);     /* x86-64: longs are little-endian */
    if (n % 8)
        out[bytes - 1] &= (uint8_t)((1u << (n % 8)) - 1);
}

/* Call @fn for every run of set bits of @b within [start, end). */
static int bm_for_runs(const unsigned long *b, uint64_t start, uint64_t end,
                       int (*fn)(void *, uint64_t, uint64_t), void *opaque)
{
    uint64_t i = start;

    while (i < end) {
        uint64_t s, w;
        unsigned long bits;
        int rc;

        /* find the next set bit */
        for (;;) {
            if (i >= end)
                return 0;
            w = i / 64;
            bits = __atomic_load_n(&b[w], __ATOMIC_RELAXED) >> (i % 64);
            if (bits) {
                i += (uint64_t)__builtin_ctzl(bits);
                break;
            }
            i = (w + 1) * 64;
        }
        if (i >= end)
            return 0;
        s = i;
        /* find the next clear bit */
        for (;;) {
            if (i >= end)
                break;
            w = i / 64;
            bits = ~__atomic_load_n(&b[w], __ATOMIC_RELAXED) >> (i % 64);
            if (bits) {
                i += (uint64_t)__builtin_ctzl(bits);
                break;
            }
            i = (w + 1) * 64;
        }
        if (i > end)
            i = end;
        rc = fn(opaque, s, i - s);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- tracking glue --------------------------------------------------- */

/*
 * A run of frames written through the vCPU view: feed log-dirty and the
 * VRAM range.  Only populated frames count: the scan also reports frames
 * of the view that were never protected (holes in the p2m).
 */
static void harvest_run(void *opaque, uint64_t gfn, uint64_t nr)
{
    struct xsim_dom *d = opaque;
    uint64_t end = gfn + nr, w;

    for (w = gfn / 64; w * 64 < end; w++) {
        unsigned long m = word_mask(w, gfn, end) &
                          __atomic_load_n(&d->p2m[w], __ATOMIC_RELAXED);

        if (!m)
            continue;
        if (d->logdirty) {
            unsigned long old = __atomic_fetch_or(&d->ld[w], m,
                                                  __ATOMIC_RELAXED);

            d->dirty_count += (uint32_t)__builtin_popcountl(m & ~old);
        }
        if (d->vram_nr) {
            uint64_t vs = d->vram_first, ve = d->vram_first + d->vram_nr;

            while (m) {
                uint64_t g = w * 64 + (uint64_t)__builtin_ctzl(m);

                m &= m - 1;
                if (g >= vs && g < ve)
                    bm_set(d->vram, g - vs);
            }
        }
    }
}

struct harvest_ctx {
    struct xsim_dom *d;
    bool reprotect;
    uint64_t start, len;        /* pending merged run */
    int rc;
};

/* Runs of populated frames closer than this are scanned as one. */
#define HARVEST_GAP 512

static int harvest_flush(struct harvest_ctx *c)
{
    int rc = 0;

    if (c->len)
        rc = track_scan(&c->d->track, c->start, c->start + c->len,
                        c->reprotect, harvest_run, c->d);
    c->len = 0;
    return rc;
}

static int harvest_populated(void *opaque, uint64_t gfn, uint64_t nr)
{
    struct harvest_ctx *c = opaque;

    if (c->len && gfn - (c->start + c->len) < HARVEST_GAP) {
        c->len = gfn + nr - c->start;
        return 0;
    }
    c->rc = harvest_flush(c);
    c->start = gfn;
    c->len = nr;
    return c->rc;
}

/* Take what the vCPUs wrote in the populated frames of [start, end). */
static int harvest(struct xsim_dom *d, uint64_t start, uint64_t end,
                   bool reprotect)
{
    struct harvest_ctx c = { .d = d, .reprotect = reprotect };
    int rc;

    if (d->max_mapped < 0)
        return 0;
    if (end > (uint64_t)d->max_mapped + 1)
        end = (uint64_t)d->max_mapped + 1;
    rc = bm_for_runs(d->p2m, start, end, harvest_populated, &c);
    if (rc == 0)
        rc = harvest_flush(&c);
    if (rc)
        xsim_log("d%u: dirty scan failed: %s", d->domid, strerror(-rc));
    return rc;
}

struct protect_ctx {
    struct xsim_dom *d;
    bool wp;
};

static int protect_run(void *opaque, uint64_t gfn, uint64_t nr)
{
    struct protect_ctx *c = opaque;

    return track_protect(&c->d->track, gfn, nr, c->wp);
}

/* (Un)protect every populated frame of [start, end). */
static int protect_populated(struct xsim_dom *d, uint64_t start, uint64_t end,
                             bool wp)
{
    struct protect_ctx c = { d, wp };

    if (end > (uint64_t)(d->max_mapped + 1))
        end = (uint64_t)(d->max_mapped + 1);
    return bm_for_runs(d->p2m, start, end, protect_run, &c);
}

static bool tracked(struct xsim_dom *d, uint64_t gfn)
{
    return d->logdirty ||
           (d->vram_nr && gfn >= d->vram_first &&
            gfn < d->vram_first + d->vram_nr);
}

/* ---- pages given back (struct xsim_pool) ------------------------------- */

static int pool_init(struct xsim_pool *p)
{
    void *m;

    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    /* Costs nothing until pages are given back, 16 MiB at most then. */
    m = mmap(NULL, (size_t)XSIM_POOL_PAGES * XSIM_PAGE_SIZE,
             PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    p->data = m;
    return 0;
}

static void pool_fini(struct xsim_pool *p)
{
    if (p->data)
        munmap(p->data, (size_t)XSIM_POOL_PAGES * XSIM_PAGE_SIZE);
    p->data = NULL;
    pthread_mutex_destroy(&p->lock);
}

static bool page_is_zero(const uint8_t *page)
{
    const uint64_t *w = (const uint64_t *)page;

    for (size_t i = 0; i < XSIM_PAGE_SIZE / sizeof(*w); i++)
        if (w[i])
            return false;
    return true;
}

void host_pool_give(struct xsim_dom *d, int fd, uint64_t first, uint64_t nr)
{
    struct xsim_pool *p = d->pool;

    /* A dying domain's pages are scrubbed (free_domheap_pages()). */
    if (!p || !p->data || nr == 0 || fd < 0 ||
        __atomic_load_n(&d->dead, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&p->lock);
    if (nr > XSIM_POOL_PAGES) {
        /* Only the last ones given can stay: skip reading the others. */
        p->given += nr - XSIM_POOL_PAGES;
        p->forgotten += nr - XSIM_POOL_PAGES;
        first += nr - XSIM_POOL_PAGES;
        nr = XSIM_POOL_PAGES;
    }
    while (nr) {
        unsigned slot = p->top;
        unsigned k = nr < XSIM_POOL_PAGES - slot ? (unsigned)nr
                                                 : XSIM_POOL_PAGES - slot;
        uint8_t *dst = p->data + (size_t)slot * XSIM_PAGE_SIZE;
        size_t len = (size_t)k * XSIM_PAGE_SIZE;
        ssize_t got = pread(fd, dst, len, (off_t)(first * XSIM_PAGE_SIZE));

        if (got < 0)
            got = 0;
        if ((size_t)got < len)
            memset(dst + got, 0, len - (size_t)got);
        for (unsigned i = 0; i < k; i++)
            p->zero[slot + i] = page_is_zero(dst + (size_t)i *
                                             XSIM_PAGE_SIZE);
        p->top = (slot + k) % XSIM_POOL_PAGES;
        if (p->n + k > XSIM_POOL_PAGES) {
            p->forgotten += p->n + k - XSIM_POOL_PAGES;
            __atomic_store_n(&p->n, XSIM_POOL_PAGES, __ATOMIC_RELAXED);
        } else {
            __atomic_store_n(&p->n, p->n + k, __ATOMIC_RELAXED);
        }
        p->given += k;
        first += k;
        nr -= k;
    }
    pthread_mutex_unlock(&p->lock);
}

uint64_t host_pool_take(struct xsim_dom *d, int fd, uint64_t first,
                        uint64_t nr)
{
    struct xsim_pool *p = d->pool;
    uint64_t i;

    /* The hot path: nothing was given back (a GiB populated costs this). */
    if (!p || !__atomic_load_n(&p->n, __ATOMIC_RELAXED))
        return 0;
    pthread_mutex_lock(&p->lock);
    for (i = 0; i < nr && p->n; i++) {
        unsigned slot = (p->top + XSIM_POOL_PAGES - 1) % XSIM_POOL_PAGES;

        p->top = slot;
        __atomic_store_n(&p->n, p->n - 1, __ATOMIC_RELAXED);
        /* A zero page: the hole already reads so. */
        if (fd < 0 || p->zero[slot])
            continue;
        if (pwrite(fd, p->data + (size_t)slot * XSIM_PAGE_SIZE,
                   XSIM_PAGE_SIZE, (off_t)((first + i) * XSIM_PAGE_SIZE)) !=
            (ssize_t)XSIM_PAGE_SIZE)
            xsim_log("d%u: a page given back could not be copied into frame "
                     "%#llx (left zero): %s", d->domid,
                     (unsigned long long)(first + i), strerror(errno));
    }
    p->taken += i;
    pthread_mutex_unlock(&p->lock);
    return i;
}

/* ---- host -------------------------------------------------------------- */

static struct xsim_dom *dom_alloc(void)
{
    struct xsim_dom *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->run_lock, NULL);
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&d->run_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_cond_init(&d->idle_cond, NULL);
    d->memfd = -1;
    d->track.uffd = d->track.pagemap = -1;
    d->max_mapped = -1;
    d->refs = 1;
    d->removal_vcpu = -1;
    for (unsigned i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++) {
        d->ioreq[i].memfd = -1;
        for (unsigned j = 0; j <= XSIM_IOREQ_MAX_VCPUS; j++)
            d->ioreq[i].sock[j] = -1;
    }
    d->sched_weight = XSIM_SCHED_WEIGHT_DEFAULT;
    host_paging_setup(d);
    return d;
}

static void dom_free(struct xsim_dom *d)
{
    host_paging_fini(d);
    host_ioreq_fini(d);
    track_fini(&d->track);
    if (d->memfd >= 0)
        close(d->memfd);
    bm_free(d->p2m, XSIM_GFN_LIMIT);
    bm_free(d->ld, XSIM_GFN_LIMIT);
    bm_free(d->vram, d->vram_nr);
    free(d->cacheattr);
    free(d->dm_log);
    free(d->vcpus);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->run_lock);
    pthread_cond_destroy(&d->run_cond);
    pthread_cond_destroy(&d->idle_cond);
    free(d);
}

int host_init(struct xsim_host *h, enum xsim_track_mode mode,
              const char *state_dir)
{
    struct xsim_dom *d0;

    memset(h, 0, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->track_mode = mode;
    h->next_domid = 1;
    h->next_instance = 1;
    snprintf(h->state_dir, sizeof(h->state_dir), "%s", state_dir);
    snprintf(h->xenstore, sizeof(h->xenstore), "off");
    if (pool_init(&h->pool) < 0)
        xsim_log("no memory for the pages given back: every populated "
                 "frame reads zero (not as on Xen)");
    host_ioreq_init(state_dir);

    /* Domain 0: the control domain the toolstack and xenram run in.  It
     * has no simulated memory; it exists so that xenstored and tools that
     * enumerate domains find it. */
    d0 = dom_alloc();
    if (!d0)
        return -ENOMEM;
    d0->control = true;
    d0->instance = h->next_instance++;
    snprintf(d0->name, sizeof(d0->name), "Domain-0");
    d0->tot_pages = d0->max_pages = (1ull << 30) / XSIM_PAGE_SIZE;
    d0->nr_vcpus = 1;
    h->doms[0] = d0;
    h->nr_domains = 1;
    return 0;
}

struct xsim_dom *host_get(struct xsim_host *h, uint32_t domid)
{
    struct xsim_dom *d = NULL;

    if (domid >= XSIM_DOMID_FIRST_RESERVED)
        return NULL;
    pthread_mutex_lock(&h->lock);
    d = h->doms[domid];
    if (d)
        d->refs++;
    pthread_mutex_unlock(&h->lock);
    return d;
}

void host_put(struct xsim_host *h, struct xsim_dom *d)
{
    bool last;

    if (!d)
        return;
    pthread_mutex_lock(&h->lock);
    last = --d->refs == 0;
    pthread_mutex_unlock(&h->lock);
    if (last)
        dom_free(d);
}

/* Populate [gfn, gfn + nr) (d->lock held); 0 or -errno.  @cleared: the
 * pages are cleared once allocated (build_memory()). */
static int populate_run(struct xsim_dom *d, uint64_t gfn, uint64_t nr,
                        bool cleared)
{
    off_t off = (off_t)(gfn * XSIM_PAGE_SIZE), len = (off_t)(nr * XSIM_PAGE_SIZE);
    uint64_t i;

    if (gfn >= XSIM_GFN_LIMIT || nr > XSIM_GFN_LIMIT - gfn)
        return -EINVAL;
    if (d->tot_pages + nr > d->max_pages)
        return -E2BIG;          /* Xen: "Over-allocation for domain" */
    /*
     * A fresh frame holds what the page Xen hands out held: the newest
     * pages a live domain gave back first (the host's pool, copied in),
     * then zeros, whatever a stale mapping left there.  The zeros are
     * left to the kernel's first touch of the hole (shmem allocates and
     * zeroes the page then), so that a destination that pre-faults its
     * mapping pays for each page once, on its own thread, instead of this
     * daemon allocating every page first (measured: ~0.5 s of the
     * daemon's CPU a GiB, on the critical path of a migration's setup);
     * with the pool empty that costs one atomic read.
     */
    if (fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  off, len) < 0)
        return -errno;
    host_pool_take(d, cleared ? -1 : d->memfd, gfn, nr);
    host_paging_populated(d, gfn, nr);
    for (i = 0; i < nr; i++) {
        /* Xen replaces an existing mapping and keeps the old page
         * allocated to the domain: tot_pages counts both. */
        bm_set(d->p2m, gfn + i);
    }
    d->tot_pages += nr;
    if ((int64_t)(gfn + nr - 1) > d->max_mapped)
        d->max_mapped = (int64_t)(gfn + nr - 1);
    if (d->logdirty) {
        track_protect(&d->track, gfn, nr, true);
    } else if (d->vram_nr) {
        for (i = 0; i < nr; i++)
            if (tracked(d, gfn + i))
                track_protect(&d->track, gfn + i, 1, true);
    }
    if (d->vram_nr) {
        /* A new frame in the VRAM range is writable (p2m_ram_rw) until the
         * next collection, which therefore reports it dirty. */
        for (i = 0; i < nr; i++)
            if (gfn + i >= d->vram_first &&
                gfn + i < d->vram_first + d->vram_nr)
                bm_set(d->vram, gfn + i - d->vram_first);
    }
    return 0;
}

/* Remove [gfn, gfn + nr) from the p2m; @freed: their pages go back to
 * the heap (host_pool_give), not elsewhere in the p2m. */
static void remove_run(struct xsim_dom *d, uint64_t gfn, uint64_t nr,
                       bool freed)
{
    uint64_t i;

    if (freed)
        host_pool_give(d, d->memfd, gfn, nr);
    fallocate(d->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              (off_t)(gfn * XSIM_PAGE_SIZE), (off_t)(nr * XSIM_PAGE_SIZE));
    for (i = 0; i < nr; i++)
        bm_clear(d->p2m, gfn + i);
    d->tot_pages -= nr;
    host_ioreq_removal(d);
}

static void set_hvm_defaults(struct xsim_dom *d)
{
    d->hvm_param[HVM_PARAM_PAGING_RING_PFN] = SPECIAL_PFN(0);
    d->hvm_param[HVM_PARAM_MONITOR_RING_PFN] = SPECIAL_PFN(1);
    d->hvm_param[HVM_PARAM_SHARING_RING_PFN] = SPECIAL_PFN(2);
    d->hvm_param[HVM_PARAM_BUFIOREQ_PFN] = SPECIAL_PFN(3);
    d->hvm_param[HVM_PARAM_STORE_PFN] = SPECIAL_PFN(4);
    d->hvm_param[HVM_PARAM_IOREQ_PFN] = SPECIAL_PFN(5);
    d->hvm_param[HVM_PARAM_IDENT_PT] = SPECIAL_PFN(6) << XSIM_PAGE_SHIFT;
    d->hvm_param[HVM_PARAM_CONSOLE_PFN] = SPECIAL_PFN(7);
    d->hvm_param[HVM_PARAM_IOREQ_SERVER_PFN] = IOREQ_SERVER_PFN0;
    d->hvm_param[HVM_PARAM_NR_IOREQ_SERVER_PAGES] = NR_IOREQ_SERVER_PAGES;
    d->hvm_param[HVM_PARAM_STORE_EVTCHN] = 1;
}

/* Lay guest RAM out as libxc builds an HVM guest: below 4 GiB up to
 * 0xF0000000 without the VGA hole, the rest from 4 GiB, plus the special
 * pages just below 0xFF000000. */
/*
 * Lay out the guest's RAM as libxc's HVM builder does and, with
 * @populate, populate it and the special pages.  An empty domain (the
 * shell a migration's receiver fills) keeps the layout, which its vCPUs
 * run in, with nothing populated.
 *
 * The pages come from the host's pool like any others, but start cleared:
 * the special pages because libxc clears them (xc_clear_domain_pages() in
 * alloc_magic_pages_hvm()), the RAM because the simulated guest is its own firmware
 * and OS and counts any byte it did not write as corruption (`xensim
 * verify`); a real guest does not read memory it did not write either.
 * Later populates (the device model's VRAM and hot-plugged RAM, a
 * receiver's memory) get the pool's contents.
 */
static int build_memory(struct xsim_dom *d, uint64_t ram_pages, bool populate)
{
    uint64_t low = ram_pages < XSIM_BELOW_4G_END_GFN ? ram_pages
                                                     : XSIM_BELOW_4G_END_GFN;
    unsigned n = 0;
    int rc;

    if (low > 0) {
        uint64_t first = low < XSIM_VGA_HOLE_GFN ? low : XSIM_VGA_HOLE_GFN;

        d->ram_ext[n][0] = 0;
        d->ram_ext[n][1] = first;
        n++;
        if (low > XSIM_VGA_HOLE_END_GFN) {
            d->ram_ext[n][0] = XSIM_VGA_HOLE_END_GFN;
            d->ram_ext[n][1] = low - XSIM_VGA_HOLE_END_GFN;
            n++;
        }
    }
    if (ram_pages > XSIM_BELOW_4G_END_GFN) {
        d->ram_ext[n][0] = XSIM_4G_GFN;
        d->ram_ext[n][1] = ram_pages - XSIM_BELOW_4G_END_GFN;
        n++;
    }
    d->nr_ram_ext = n;
    d->nr_ram = 0;
    for (unsigned i = 0; i < n; i++) {
        rc = populate ? populate_run(d, d->ram_ext[i][0], d->ram_ext[i][1],
                                     true)
                      : 0;
        if (rc)
            return rc;
        d->nr_ram += d->ram_ext[i][1];
    }
    return populate ? populate_run(d, SPECIAL_PFN(0), NR_SPECIAL_PAGES, true)
                    : 0;
}

static uint32_t alloc_domid(struct xsim_host *h)
{
    uint32_t i, id;

    for (i = 1; i < XSIM_DOMID_FIRST_RESERVED; i++) {
        id = h->next_domid;
        h->next_domid = id + 1 >= XSIM_DOMID_FIRST_RESERVED ? 1 : id + 1;
        if (!h->doms[id])
            return id;
    }
    return 0;
}

void host_set_store(struct xsim_host *h, const struct xsim_store_ops *ops,
                    const char *what)
{
    pthread_mutex_lock(&h->lock);
    h->store = ops;
    snprintf(h->xenstore, sizeof(h->xenstore), "%s", what);
    pthread_mutex_unlock(&h->lock);
}

int host_create(struct xsim_host *h, const struct xsim_create *c,
                uint32_t *domid)
{
    const struct xsim_store_ops *store;
    struct xsim_workload wl;
    struct xsim_dom *d;
    char name[64], err[128];
    uint64_t ram_pages;
    uint32_t id;
    int rc;

    memcpy(name, c->name, sizeof(name));
    name[sizeof(name) - 1] = 0;
    if (c->vcpus == 0 || c->vcpus > 64 || c->vram_kb > c->mem_kb ||
        (c->mem_kb == 0 && !(c->flags & XSIM_CREATE_EMPTY)) ||
        c->mem_kb / 4 >= XSIM_GFN_LIMIT / 2)
        return -EINVAL;
    {
        char spec[64];

        memcpy(spec, c->workload, sizeof(spec));
        spec[sizeof(spec) - 1] = 0;
        rc = workload_parse(spec[0] ? spec : "idle", &wl, err, sizeof(err));
        if (rc) {
            xsim_log("create: %s", err);
            return rc;
        }
    }
    d = dom_alloc();
    if (!d)
        return -ENOMEM;
    d->pool = &h->pool;         /* its memory comes from the host's heap */
    d->nr_vcpus = c->vcpus;
    d->wl = wl;
    d->pause_count = 1;         /* Xen creates domains paused */
    d->max_pages = (c->mem_kb + XSIM_MAXMEM_SLACK_KB) / 4;
    d->memfd = memfd_create("xensim-guest", MFD_CLOEXEC);
    if (d->memfd < 0 ||
        ftruncate(d->memfd, (off_t)(XSIM_GFN_LIMIT * XSIM_PAGE_SIZE)) < 0) {
        rc = -errno;
        goto fail;
    }
    rc = track_init(&d->track, h->track_mode, d->memfd);
    if (rc)
        goto fail;
    d->p2m = bm_alloc(XSIM_GFN_LIMIT);
    d->ld = bm_alloc(XSIM_GFN_LIMIT);
    if (!d->p2m || !d->ld) {
        rc = -ENOMEM;
        goto fail;
    }
    /*
     * A domain xensim builds is one libxc's HVM builder made; an empty
     * shell is what xc_domain_create() alone leaves: every parameter 0
     * but the triple-fault action (hvm_domain_initialise(), checked on
     * Xen 4.17 by the real-Xen tier), so that a receiver that forgets a
     * parameter finds it unset, as on Xen.
     */
    d->hvm_param[HVM_PARAM_TRIPLE_FAULT_REASON] = SHUTDOWN_reboot;
    if (!(c->flags & XSIM_CREATE_EMPTY))
        set_hvm_defaults(d);
    for (unsigned i = 0; i < 16; i++)
        d->handle[i] = (uint8_t)random();

    ram_pages = (c->mem_kb - c->vram_kb) / 4;
    pthread_mutex_lock(&d->lock);
    rc = build_memory(d, ram_pages, !(c->flags & XSIM_CREATE_EMPTY));
    pthread_mutex_unlock(&d->lock);
    if (rc) {
        xsim_log("create: populating %llu pages failed: %s",
                 (unsigned long long)ram_pages, strerror(-rc));
        goto fail;
    }

    pthread_mutex_lock(&h->lock);
    for (id = 1; id < XSIM_DOMID_FIRST_RESERVED; id++) {
        if (h->doms[id] && name[0] && strcmp(h->doms[id]->name, name) == 0) {
            pthread_mutex_unlock(&h->lock);
            rc = -EEXIST;
            goto fail;
        }
    }
    id = alloc_domid(h);
    if (!id) {
        pthread_mutex_unlock(&h->lock);
        rc = -ENOSPC;
        goto fail;
    }
    d->domid = id;
    d->instance = h->next_instance++;
    if (name[0])
        snprintf(d->name, sizeof(d->name), "%s", name);
    else
        snprintf(d->name, sizeof(d->name), "guest%u", id);
    h->doms[id] = d;
    h->nr_domains++;
    store = h->store;
    pthread_mutex_unlock(&h->lock);

    rc = vcpus_start(d);
    if (rc) {
        host_destroy(h, id);
        return rc;
    }
    if (store && store->introduce)
        store->introduce(h->state_dir, id, d->name, c->mem_kb);
    xsim_log("d%u (%s): created, %llu MiB RAM, %u vCPU(s), workload %s",
             id, d->name, (unsigned long long)(ram_pages / 256), d->nr_vcpus,
             d->wl.spec);
    if (!(c->flags & XSIM_CREATE_PAUSED))
        dom_unpause(d);
    *domid = id;
    return 0;
fail:
    xsim_log("create %s: %s", name[0] ? name : "(unnamed)", strerror(-rc));
    dom_free(d);
    return rc;
}

int host_destroy(struct xsim_host *h, uint32_t domid)
{
    const struct xsim_store_ops *store;
    struct xsim_dom *d;

    if (domid == 0 || domid >= XSIM_DOMID_FIRST_RESERVED)
        return domid == 0 ? -EINVAL : -ESRCH;
    pthread_mutex_lock(&h->lock);
    d = h->doms[domid];
    if (d) {
        h->doms[domid] = NULL;
        h->nr_domains--;
        /* From here on its pages are scrubbed: none joins the pool. */
        __atomic_store_n(&d->dead, true, __ATOMIC_RELEASE);
    }
    store = h->store;
    pthread_mutex_unlock(&h->lock);
    if (!d)
        return -ESRCH;
    host_paging_kill(d);        /* vCPUs waiting on the pager let go */
    vcpus_stop(d);
    if (store && store->release)
        store->release(h->state_dir, domid);
    xsim_log("d%u (%s): destroyed", domid, d->name);
    host_put(h, d);
    return 0;
}

void host_fini(struct xsim_host *h)
{
    struct xsim_dom *d0;
    uint32_t id;

    for (id = 1; id < XSIM_DOMID_FIRST_RESERVED; id++) {
        bool there;

        pthread_mutex_lock(&h->lock);
        there = h->doms[id] != NULL;
        pthread_mutex_unlock(&h->lock);
        if (there)
            host_destroy(h, id);
    }
    pthread_mutex_lock(&h->lock);
    d0 = h->doms[0];
    h->doms[0] = NULL;
    pthread_mutex_unlock(&h->lock);
    host_put(h, d0);
    pool_fini(&h->pool);
}

static void fill_info(struct xsim_dom *d, struct xsim_dominfo *o)
{
    memset(o, 0, sizeof(*o));
    o->domid = d->domid;
    o->instance = d->instance;
    memcpy(o->handle, d->handle, sizeof(o->handle));
    snprintf(o->name, sizeof(o->name), "%s", d->name);
    pthread_mutex_lock(&d->lock);
    o->tot_pages = d->tot_pages;
    o->max_pages = d->max_pages;
    o->max_gpfn = d->max_mapped < 0 ? 0 : (uint64_t)d->max_mapped;
    o->vram_first = d->vram_first;
    o->vram_nr = d->vram_nr;
    if (d->logdirty)
        o->flags |= XSIM_DOMF_LOGDIRTY;
    if (d->vram_nr)
        o->flags |= XSIM_DOMF_VRAM;
    for (unsigned i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++)
        o->ioreq_servers += d->ioreq[i].used;
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_lock(&d->run_lock);
    o->pause_count = (uint32_t)d->pause_count;
    snprintf(o->workload, sizeof(o->workload), "%s", d->wl.spec);
    if (d->control) {
        o->flags |= XSIM_DOMF_CONTROL | XSIM_DOMF_RUNNING;
    } else {
        o->flags |= XSIM_DOMF_HVM | XSIM_DOMF_HAP;
        if (d->pause_count)
            o->flags |= XSIM_DOMF_PAUSED;
        else if (d->shutdown)
            o->flags |= XSIM_DOMF_SHUTDOWN;
        else if (d->wl.kind == XSIM_WL_IDLE)
            o->flags |= XSIM_DOMF_BLOCKED;
        else
            o->flags |= XSIM_DOMF_RUNNING;
    }
    if (__atomic_load_n(&d->dead, __ATOMIC_ACQUIRE))
        o->flags |= XSIM_DOMF_DYING;
    o->shutdown_reason = d->shutdown_reason;
    pthread_mutex_unlock(&d->run_lock);
    o->nr_vcpus = d->nr_vcpus;
    o->vcpu_writes = __atomic_load_n(&d->writes, __ATOMIC_RELAXED);
    o->cpu_time_ns = __atomic_load_n(&d->cpu_ns, __ATOMIC_RELAXED);
}

int host_getinfo(struct xsim_host *h, uint32_t first, unsigned max,
                 struct xsim_dominfo *out)
{
    struct xsim_dom *found[64];
    unsigned n = 0, i;
    uint32_t id;

    if (max > 64)
        max = 64;
    pthread_mutex_lock(&h->lock);
    for (id = first; id < XSIM_DOMID_FIRST_RESERVED && n < max; id++) {
        if (h->doms[id]) {
            found[n++] = h->doms[id];
            h->doms[id]->refs++;
        }
    }
    pthread_mutex_unlock(&h->lock);
    for (i = 0; i < n; i++) {
        fill_info(found[i], &out[i]);
        host_put(h, found[i]);
    }
    return (int)n;
}

/* ---- run control ------------------------------------------------------- */

void dom_quiesce(struct xsim_dom *d)
{
    pthread_mutex_lock(&d->run_lock);
    d->quiesce++;
    while (d->running)
        pthread_cond_wait(&d->idle_cond, &d->run_lock);
    pthread_mutex_unlock(&d->run_lock);
}

void dom_unquiesce(struct xsim_dom *d)
{
    pthread_mutex_lock(&d->run_lock);
    d->quiesce--;
    pthread_cond_broadcast(&d->run_cond);
    pthread_mutex_unlock(&d->run_lock);
}

/* XEN_DOMCTL_pausedomain: a counted pause by the toolstack; returns once
 * no vCPU is running (vcpu_sleep_sync). */
int dom_pause(struct xsim_dom *d)
{
    if (d->control)
        return -EINVAL;         /* Xen refuses to pause the caller's domain */
    pthread_mutex_lock(&d->run_lock);
    if (d->pause_count >= 255) {
        pthread_mutex_unlock(&d->run_lock);
        return -EOVERFLOW;
    }
    d->pause_count++;
    while (d->running)
        pthread_cond_wait(&d->idle_cond, &d->run_lock);
    pthread_mutex_unlock(&d->run_lock);
    return 0;
}

/* XEN_DOMCTL_unpausedomain: -EINVAL when not paused by the toolstack. */
int dom_unpause(struct xsim_dom *d)
{
    int rc = 0;

    if (d->control)
        return -EINVAL;
    pthread_mutex_lock(&d->run_lock);
    if (d->pause_count == 0)
        rc = -EINVAL;
    else if (--d->pause_count == 0)
        pthread_cond_broadcast(&d->run_cond);
    pthread_mutex_unlock(&d->run_lock);
    /* domain_unpause_by_systemcontroller(): the first one ends creation. */
    if (rc == 0)
        __atomic_store_n(&d->creation_finished, true, __ATOMIC_RELEASE);
    return rc;
}

int dom_shutdown(struct xsim_dom *d, uint32_t reason)
{
    if (d->control)
        return -EINVAL;
    pthread_mutex_lock(&d->run_lock);
    d->shutdown = true;
    d->shutdown_reason = reason;
    pthread_mutex_unlock(&d->run_lock);
    dom_quiesce(d);             /* a shut down guest writes nothing more */
    dom_unquiesce(d);
    return 0;
}

int dom_set_workload(struct xsim_dom *d, const char *spec)
{
    struct xsim_workload wl;
    char err[128];
    int rc = workload_parse(spec, &wl, err, sizeof(err));

    if (rc)
        return rc;
    if (d->control)
        return -EINVAL;
    pthread_mutex_lock(&d->run_lock);
    d->wl = wl;
    pthread_cond_broadcast(&d->run_cond);
    pthread_mutex_unlock(&d->run_lock);
    return 0;
}

/* XEN_DOMCTL_max_mem: no check against the current allocation. */
int dom_setmaxmem(struct xsim_dom *d, uint64_t max_kb)
{
    pthread_mutex_lock(&d->lock);
    d->max_pages = max_kb >> 2;
    if (d->max_pages > UINT32_MAX)
        d->max_pages = UINT32_MAX;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int64_t dom_max_gpfn(struct xsim_dom *d)
{
    int64_t m;

    pthread_mutex_lock(&d->lock);
    m = d->max_mapped < 0 ? 0 : d->max_mapped;
    pthread_mutex_unlock(&d->lock);
    return m;
}

/* Deprecated parameters: -EINVAL to read or write (hvm_allow_*_param). */
static bool hvm_param_deprecated(uint32_t index)
{
    switch (index) {
    case HVM_PARAM_PAE_ENABLED:
    case HVM_PARAM_DM_DOMAIN:
    case HVM_PARAM_MEMORY_EVENT_CR0:
    case HVM_PARAM_MEMORY_EVENT_CR3:
    case HVM_PARAM_MEMORY_EVENT_CR4:
    case HVM_PARAM_MEMORY_EVENT_INT3:
    case HVM_PARAM_NESTEDHVM:
    case HVM_PARAM_MEMORY_EVENT_SINGLE_STEP:
    case HVM_PARAM_BUFIOREQ_EVTCHN:
    case HVM_PARAM_MEMORY_EVENT_MSR:
        return true;
    }
    return false;
}

/* Parameters that may be set once: another value later is -EEXIST. */
static bool hvm_param_set_once(uint32_t index)
{
    switch (index) {
    case HVM_PARAM_VIRIDIAN:
    case HVM_PARAM_IOREQ_PFN:
    case HVM_PARAM_BUFIOREQ_PFN:
    case HVM_PARAM_IOREQ_SERVER_PFN:
    case HVM_PARAM_NR_IOREQ_SERVER_PAGES:
    case HVM_PARAM_ALTP2M:
    case HVM_PARAM_MCA_CAP:
        return true;
    }
    return false;
}

/* HVMOP_get_param / set_param with Xen 4.17's checks (hvm/hvm.c); the
 * toolstack's domain is not an HVM domain: -EINVAL. */
int dom_hvm_param(struct xsim_dom *d, uint32_t index, bool set,
                  uint64_t *value)
{
    int rc = 0;

    if (d->control)
        return -EINVAL;
    if (index >= XSIM_HVM_NR_PARAMS || hvm_param_deprecated(index))
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    if (!set)
        *value = d->hvm_param[index];
    else if (hvm_param_set_once(index) && d->hvm_param[index] &&
             *value != d->hvm_param[index])
        rc = -EEXIST;
    else
        d->hvm_param[index] = *value;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* ---- memory ------------------------------------------------------------ */

/*
 * XENMEM_populate_physmap: extent by extent, stopping at the first that
 * cannot be allocated (beyond max memory, beyond the physical address
 * width, host out of memory).  Returns the number of extents done, which
 * libxc's _exact variant turns into EBUSY when short.
 */
long dom_populate(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                  unsigned order)
{
    uint64_t i;

    if (d->control || order > 18)
        return d->control ? 0 : -EINVAL;
    dom_quiesce(d);
    pthread_mutex_lock(&d->lock);
    for (i = 0; i < nr;) {
        /*
         * The list holds the first gfn of each extent.  Xen does not ask
         * for it to be aligned to the order: a misaligned extent is
         * populated from there (checked on Xen 4.17).  Extents that follow
         * each other are populated as one run when all of them fit (one
         * hole punched instead of one an extent: a GiB is 262144 of
         * them); otherwise extent by extent, so that a failure stops at
         * the same extent as Xen's.
         */
        uint64_t ext = 1ull << order, k = 1;
        int rc;

        while (i + k < nr && gfns[i + k] == gfns[i + k - 1] + ext)
            k++;
        if (k > 1 && d->tot_pages + k * ext <= d->max_pages &&
            gfns[i] < XSIM_GFN_LIMIT &&
            k * ext <= XSIM_GFN_LIMIT - gfns[i]) {
            rc = populate_run(d, gfns[i], k * ext, false);
            if (rc == 0) {
                i += k;
                continue;
            }
        }
        rc = populate_run(d, gfns[i], ext, false);
        if (rc) {
            xsim_log("d%u: populate gfn %#llx order %u failed: %s",
                     d->domid, (unsigned long long)gfns[i], order,
                     strerror(-rc));
            break;
        }
        i++;
    }
    pthread_mutex_unlock(&d->lock);
    dom_unquiesce(d);
    return (long)i;
}

/*
 * XENMEM_decrease_reservation: frame by frame; a frame that is not
 * populated ends the operation (guest_remove_page() -> -ENOENT), leaving
 * the frames before it in the extent removed.
 */
long dom_decrease(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                  unsigned order)
{
    uint64_t i;

    if (d->control || order > 18)
        return d->control ? 0 : -EINVAL;
    dom_quiesce(d);
    pthread_mutex_lock(&d->lock);
    for (i = 0; i < nr; i++) {
        uint64_t base = gfns[i], n = 1ull << order, j, run = 0;
        bool ok = true;

        for (j = 0; j < n; j++) {
            uint64_t g = base + j;
            int special = 0;

            if (g < XSIM_GFN_LIMIT &&
                (host_paging_type(d, g) != XSIM_PT_NONE ||
                 (d->pg.ring && g == d->pg.ring_gfn))) {
                /* guest_remove_page() of a frame in a paging state, or
                 * of the paging ring's (host-paging.c) */
                if (run)
                    remove_run(d, g - run, run, true);
                run = 0;
                special = host_paging_remove(d, g);
                if (special == 1)
                    continue;
            }
            if (g >= XSIM_GFN_LIMIT || special < 0 || !bm_test(d->p2m, g)) {
                ok = false;
                break;
            }
            run++;
        }
        if (run)
            remove_run(d, base + j - run, run, true);
        if (!ok)
            break;
    }
    pthread_mutex_unlock(&d->lock);
    dom_unquiesce(d);
    return (long)i;
}

long dom_guest_write(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr)
{
    long done = 0;

    if (d->control)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    for (uint64_t i = 0; i < nr; i++) {
        uint64_t g = gfns[i];

        /* A frame in a paging state faults, as the vCPU's access would:
         * vCPU 0 waits for the pager (not under the domain's lock, which
         * the pager's calls need), then writes. */
        while (g < XSIM_GFN_LIMIT &&
               host_paging_type(d, g) != XSIM_PT_NONE &&
               !__atomic_load_n(&d->shutdown, __ATOMIC_RELAXED) &&
               !__atomic_load_n(&d->pg.dying, __ATOMIC_RELAXED)) {
            pthread_mutex_unlock(&d->lock);
            host_paging_fault(&d->vcpus[0], g);
            pthread_mutex_lock(&d->lock);
        }
        if (g >= XSIM_GFN_LIMIT || !bm_test(d->p2m, g) ||
            host_paging_type(d, g) != XSIM_PT_NONE)
            continue;
        xsim_stamp_write(d->track.view + g * XSIM_PAGE_SIZE, g,
                         __atomic_add_fetch(&d->gen, 1, __ATOMIC_RELAXED));
        track_mark(&d->track, g);
        done++;
    }
    pthread_mutex_unlock(&d->lock);
    __atomic_add_fetch(&d->writes, (uint64_t)done, __ATOMIC_RELAXED);
    return done;
}

void dom_check_frames(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                      int32_t *err, struct xsim_refs *refs)
{
    uint64_t i;

    if (d->control) {
        for (i = 0; i < nr; i++)
            err[i] = -EINVAL;
        return;
    }
    pthread_mutex_lock(&d->lock);
    for (i = 0; i < nr; i++) {
        uint64_t g = gfns[i];

        /* privcmd on a PV dom0: mod_l1_entry() finds no page -> -EINVAL;
         * a paged-out frame is asked for and is -ENOENT. */
        if (g >= XSIM_GFN_LIMIT) {
            err[i] = -EINVAL;
            continue;
        }
        err[i] = d->pg.type ? host_paging_map(d, g) : 0;
        if (err[i] == 0 && !bm_test(d->p2m, g))
            err[i] = -EINVAL;
        if (err[i] == 0 && refs) {
            /* The mapping's reference on the page (get_page_from_l1e) */
            refs_add(&d->fref, g, 1);
            refs_add(refs, (uint64_t)d->domid << 32 | g, 1);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

void dom_unmap_frames(struct xsim_dom *d, const uint64_t *gfns, uint64_t nr,
                      struct xsim_refs *refs)
{
    pthread_mutex_lock(&d->lock);
    for (uint64_t i = 0; i < nr; i++) {
        uint64_t key = (uint64_t)d->domid << 32 | gfns[i];

        /* Only what this connection holds: a client cannot drop others'. */
        if (gfns[i] < XSIM_GFN_LIMIT && refs_get(refs, key)) {
            refs_add(refs, key, -1);
            refs_add(&d->fref, gfns[i], -1);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

/* ---- log-dirty --------------------------------------------------------- */

static int logdirty_enable(struct xsim_dom *d)
{
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    if (d->logdirty) {
        rc = -EINVAL;           /* paging_log_dirty_enable() */
        goto out;
    }
    /* Like Xen, with the domain paused: no write may fall between reading
     * what the VRAM range still owes and protecting everything. */
    dom_quiesce(d);
    if (d->vram_nr)
        rc = harvest(d, d->vram_first, d->vram_first + d->vram_nr, false);
    if (rc == 0) {
        d->logdirty = true;
        d->dirty_count = d->fault_count = 0;
        rc = protect_populated(d, 0, XSIM_GFN_LIMIT, true);
        if (rc)
            d->logdirty = false;
    }
    dom_unquiesce(d);
    if (rc == 0)
        xsim_log("d%u: log-dirty enabled", d->domid);
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int logdirty_disable(struct xsim_dom *d)
{
    pthread_mutex_lock(&d->lock);
    if (d->logdirty) {
        d->logdirty = false;
        bm_zero_all(d->ld, XSIM_GFN_LIMIT);
        d->dirty_count = d->fault_count = 0;
        if (d->vram_nr) {
            protect_populated(d, 0, d->vram_first, false);
            protect_populated(d, d->vram_first + d->vram_nr, XSIM_GFN_LIMIT,
                              false);
        } else {
            protect_populated(d, 0, XSIM_GFN_LIMIT, false);
        }
        xsim_log("d%u: log-dirty disabled", d->domid);
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/*
 * CLEAN / PEEK (paging_log_dirty_op): copy the bitmap for [0, pages) and
 * the stats; CLEAN clears that part of the bitmap and the stats.  Without
 * log-dirty the bitmap is empty and the call still succeeds.
 */
static int logdirty_op(struct xsim_dom *d, bool clean, uint64_t pages,
                       uint8_t *bitmap, uint32_t *fault_count,
                       uint32_t *dirty_count)
{
    uint64_t n = pages < XSIM_GFN_LIMIT ? pages : XSIM_GFN_LIMIT;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    if (d->logdirty && d->max_mapped >= 0)
        rc = harvest(d, 0, (uint64_t)d->max_mapped + 1, clean);
    if (rc) {
        pthread_mutex_unlock(&d->lock);
        return -EIO;
    }
    *fault_count = d->fault_count;
    *dirty_count = d->dirty_count;
    if (bitmap && n)
        bm_copy_out(d->ld, n, bitmap);
    if (clean) {
        if (d->logdirty) {
            bm_clear_range(d->ld, 0, n);
            /*
             * HAP keeps one log-dirty p2m type for both trackers: a global
             * CLEAN re-protects the VRAM range too, so the next
             * track_dirty_vram sees only writes made after it (checked on
             * Xen 4.17).
             */
            if (d->vram_nr)
                bm_clear_range(d->vram, 0, d->vram_nr);
        }
        d->dirty_count = d->fault_count = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int dom_shadow_op(struct xsim_dom *d, uint32_t op, uint32_t mode,
                  uint64_t pages, uint8_t *bitmap, uint32_t *mb,
                  uint32_t *fault_count, uint32_t *dirty_count)
{
    *fault_count = *dirty_count = 0;
    /* paging_domctl(): the toolstack's own domain -> -EINVAL. */
    if (d->control)
        return -EINVAL;
    switch (op) {
    case XEN_DOMCTL_SHADOW_OP_OFF:
        return logdirty_disable(d);
    case XEN_DOMCTL_SHADOW_OP_ENABLE:
        if (!(mode & XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY))
            return -EINVAL;     /* hap_domctl(): nothing else on HAP */
        return logdirty_enable(d);
    case XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY:
        return logdirty_enable(d);
    case XEN_DOMCTL_SHADOW_OP_CLEAN:
    case XEN_DOMCTL_SHADOW_OP_PEEK:
        if (mode & ~XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL)
            return -EINVAL;
        return logdirty_op(d, op == XEN_DOMCTL_SHADOW_OP_CLEAN, pages, bitmap,
                           fault_count, dirty_count);
    case XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION:
        pthread_mutex_lock(&d->lock);
        *mb = d->shadow_mb;
        pthread_mutex_unlock(&d->lock);
        return 0;
    case XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION:
        pthread_mutex_lock(&d->lock);
        d->shadow_mb = *mb;
        pthread_mutex_unlock(&d->lock);
        return 0;
    default:
        return -EINVAL;
    }
}

/* ---- device model ops ---------------------------------------------- */

int dom_check_dm(struct xsim_dom *d)
{
    /* rcu_lock_remote_domain_by_id(): a dm op on one's own domain. */
    return d->control ? -EPERM : 0;
}

/*
 * XEN_DMOP_modified_memory: ignored (0) unless log-dirty is on; extents
 * are taken from the last to the first; each must be non-empty and end at
 * or below the highest mapped gfn (Xen's check, which also refuses an
 * extent that includes that highest gfn itself); unpopulated frames are
 * skipped silently.
 */
int dom_modified_memory(struct xsim_dom *d, const void *extents, uint32_t nr)
{
    const struct xen_dm_op_modified_memory_extent *e = extents;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    if (!d->logdirty)
        goto out;
    while (nr > 0) {
        const struct xen_dm_op_modified_memory_extent *x = &e[nr - 1];
        uint64_t end = x->first_pfn + x->nr, pfn;

        if (x->pad || end <= x->first_pfn || d->max_mapped < 0 ||
            end > (uint64_t)d->max_mapped) {
            rc = -EINVAL;
            goto out;
        }
        for (pfn = x->first_pfn; pfn < end; pfn++)
            if (bm_test(d->p2m, pfn) && !bm_test(d->ld, pfn)) {
                bm_set(d->ld, pfn);
                d->dirty_count++;
            }
        nr--;
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/*
 * XEN_DMOP_track_dirty_vram on a HAP domain (hap_track_dirty_vram): one
 * range per domain; a new range reports every page dirty, later calls the
 * pages written since the previous call; nr == 0 stops tracking.
 */
int dom_track_dirty_vram(struct xsim_dom *d, uint64_t first, uint64_t nr,
                         uint8_t *bitmap)
{
    int rc = 0;

    if (nr > VRAM_MAX_PAGES)
        return -EINVAL;
    if (first >= XSIM_GFN_LIMIT || nr > XSIM_GFN_LIMIT - first)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    if (nr == 0) {
        if (d->vram_nr) {
            if (!d->logdirty)
                track_protect(&d->track, d->vram_first, d->vram_nr, false);
            bm_free(d->vram, d->vram_nr);
            d->vram = NULL;
            d->vram_nr = 0;
            d->vram_first = 0;
        }
        goto out;
    }
    if (first != d->vram_first || nr != d->vram_nr) {
        unsigned long *bits = bm_alloc(nr);

        if (!bits) {
            rc = -ENOMEM;
            goto out;
        }
        dom_quiesce(d);
        if (d->vram_nr && !d->logdirty)
            track_protect(&d->track, d->vram_first, d->vram_nr, false);
        /* What the vCPUs wrote in the new range still counts for
         * log-dirty; take it before protecting forgets it. */
        if (d->logdirty)
            harvest(d, first, first + nr, false);
        bm_free(d->vram, d->vram_nr);
        d->vram = bits;
        d->vram_first = first;
        d->vram_nr = nr;
        rc = track_protect(&d->track, first, nr, true);
        dom_unquiesce(d);
        memset(bitmap, 0xff, (size_t)((nr + 7) / 8));
        if (nr % 8)
            bitmap[(nr + 7) / 8 - 1] = (uint8_t)((1u << (nr % 8)) - 1);
        xsim_log("d%u: tracking VRAM %#llx+%llu", d->domid,
                 (unsigned long long)first, (unsigned long long)nr);
    } else {
        rc = harvest(d, first, first + nr, true);
        if (rc == 0) {
            bm_copy_out(d->vram, nr, bitmap);
            bm_clear_range(d->vram, 0, nr);
        }
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static struct xsim_ioreq *ioreq_get(struct xsim_dom *d, uint32_t id)
{
    if (id >= XSIM_MAX_IOREQ_SERVERS || !d->ioreq[id].used)
        return NULL;
    return &d->ioreq[id];
}

int dom_ioreq_create(struct xsim_dom *d, int bufioreq, uint32_t *id)
{
    int rc = -ENOSPC;

    if (bufioreq < 0 || bufioreq > 2)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    for (uint32_t i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++) {
        if (!d->ioreq[i].used) {
            struct xsim_ioreq *s = &d->ioreq[i];

            /* What host-ioreq.c keeps for the id stays. */
            s->enabled = s->pages = s->resource = false;
            s->nr_ranges = 0;
            memset(s->ranges, 0, sizeof(s->ranges));
            s->bufioreq = bufioreq;
            rc = host_ioreq_setup(d, i);
            if (rc)
                break;
            s->used = true;
            *id = i;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dom_ioreq_info(struct xsim_dom *d, uint32_t id, bool want_gfns,
                   uint64_t out[3])
{
    struct xsim_ioreq *s;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    s = ioreq_get(d, id);
    if (!s) {
        rc = -ENOENT;
    } else {
        uint64_t base = d->hvm_param[HVM_PARAM_IOREQ_SERVER_PFN];

        /* ioreq_server_get_info() maps the legacy gfn pages on demand. */
        if (want_gfns)
            s->pages = true;
        out[0] = want_gfns ? base + 2 * id : 0;
        out[1] = want_gfns && s->bufioreq ? base + 2 * id + 1 : ~0ull;
        out[2] = s->bufioreq ? host_ioreq_port(id, XSIM_IOREQ_MAX_VCPUS)
                             : 0;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dom_ioreq_range(struct xsim_dom *d, uint32_t id, uint32_t type,
                    uint64_t start, uint64_t end, bool map)
{
    struct xsim_ioreq *s;
    int rc = 0;
    unsigned i;

    if (type > XEN_DMOP_IO_RANGE_PCI || start > end)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    s = ioreq_get(d, id);
    if (!s) {
        rc = -ENOENT;
        goto out;
    }
    if (map) {
        for (i = 0; i < s->nr_ranges; i++) {
            struct xsim_ioreq_range *r = &s->ranges[i];

            if (r->type == type && start <= r->end && end >= r->start) {
                rc = -EEXIST;   /* rangeset_overlaps_range() */
                goto out;
            }
        }
        if (s->nr_ranges == sizeof(s->ranges) / sizeof(s->ranges[0])) {
            rc = -ENOSPC;
            goto out;
        }
        s->ranges[s->nr_ranges++] =
            (struct xsim_ioreq_range){ .type = type, .start = start,
                                       .end = end };
    } else {
        rc = -ENOENT;           /* !rangeset_contains_range() */
        for (i = 0; i < s->nr_ranges; i++) {
            struct xsim_ioreq_range *r = &s->ranges[i];

            if (r->type == type && r->start == start && r->end == end) {
                s->ranges[i] = s->ranges[--s->nr_ranges];
                rc = 0;
                break;
            }
        }
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dom_ioreq_state(struct xsim_dom *d, uint32_t id, bool enabled)
{
    struct xsim_ioreq *s;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    s = ioreq_get(d, id);
    if (s) {
        if (enabled && !s->enabled)
            host_ioreq_enabled(d, id);  /* ioreq_server_update_evtchn() */
        __atomic_store_n(&s->enabled, enabled, __ATOMIC_RELEASE);
    } else {
        rc = -ENOENT;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dom_ioreq_destroy(struct xsim_dom *d, uint32_t id)
{
    struct xsim_ioreq *s;
    int rc = 0;

    pthread_mutex_lock(&d->lock);
    s = ioreq_get(d, id);
    if (s) {
        __atomic_store_n(&s->enabled, false, __ATOMIC_RELEASE);
        s->used = false;
        /* ioreq_server_free_pages(): the pages Xen allocated for
         * map_resource go back to the heap (the buffered ring, then the
         * ioreq page with each vCPU's port), unscrubbed while the domain
         * lives.  The legacy gfns are the guest's own frames. */
        if (s->resource) {
            if (s->bufioreq)
                host_pool_give(d, s->memfd,
                               XENMEM_resource_ioreq_server_frame_bufioreq, 1);
            host_pool_give(d, s->memfd,
                           XENMEM_resource_ioreq_server_frame_ioreq(0), 1);
            s->resource = false;
        }
        /* A vCPU waiting on it gives up (Xen drops the vCPU's wait). */
        __atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
    } else {
        rc = -ENOENT;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/*
 * XEN_DMOP_relocate_memory: XENMAPSPACE_gmfn_range, frame by frame: the
 * page at src moves to dst (a page already at dst is freed); a src that is
 * not populated ends it with -EINVAL.  Frames moved before stay moved.
 */
int dom_relocate(struct xsim_dom *d, uint32_t size, uint64_t src,
                 uint64_t dst)
{
    char *page = malloc(XSIM_PAGE_SIZE);
    int rc = 0;

    if (!page)
        return -ENOMEM;
    dom_quiesce(d);
    pthread_mutex_lock(&d->lock);
    for (uint32_t i = 0; i < size; i++) {
        uint64_t s = src + i, t = dst + i;

        if (s >= XSIM_GFN_LIMIT || t >= XSIM_GFN_LIMIT ||
            !bm_test(d->p2m, s)) {
            rc = -EINVAL;
            break;
        }
        if (s == t)
            continue;
        if (pread(d->memfd, page, XSIM_PAGE_SIZE,
                  (off_t)(s * XSIM_PAGE_SIZE)) != (ssize_t)XSIM_PAGE_SIZE) {
            rc = -EIO;
            break;
        }
        /* The page at dst is freed (guest_remove_page() in
         * xenmem_add_to_physmap_one()); the one at src only moves. */
        if (bm_test(d->p2m, t))
            remove_run(d, t, 1, true);
        remove_run(d, s, 1, false);
        d->tot_pages++;         /* the page moved, it was not freed */
        if (pwrite(d->memfd, page, XSIM_PAGE_SIZE,
                   (off_t)(t * XSIM_PAGE_SIZE)) != (ssize_t)XSIM_PAGE_SIZE) {
            rc = -EIO;
            break;
        }
        bm_set(d->p2m, t);
        if ((int64_t)t > d->max_mapped)
            d->max_mapped = (int64_t)t;
        if (tracked(d, t))
            track_protect(&d->track, t, 1, true);
        if (d->logdirty && !bm_test(d->ld, t)) {
            bm_set(d->ld, t);
            d->dirty_count++;
        }
    }
    pthread_mutex_unlock(&d->lock);
    dom_unquiesce(d);
    free(page);
    return rc;
}

/* XEN_DMOP_pin_memory_cacheattr (hvm_set_mem_pinned_cacheattr). */
int dom_cacheattr(struct xsim_dom *d, uint64_t start, uint64_t end,
                  uint32_t type)
{
    int rc = 0;
    unsigned i;

    if (end < start || ((start | end) >> (XSIM_GPADDR_BITS - XSIM_PAGE_SHIFT)))
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    if (type == XEN_DOMCTL_DELETE_MEM_CACHEATTR) {
        rc = -ENOENT;
        for (i = 0; i < d->nr_cacheattr; i++) {
            if (d->cacheattr[i].start == start && d->cacheattr[i].end == end) {
                d->cacheattr[i] = d->cacheattr[--d->nr_cacheattr];
                rc = 0;
                break;
            }
        }
        goto out;
    }
    switch (type) {
    case XEN_DMOP_MEM_CACHEATTR_UC:
    case XEN_DMOP_MEM_CACHEATTR_WC:
    case XEN_DMOP_MEM_CACHEATTR_WT:
    case XEN_DMOP_MEM_CACHEATTR_WP:
    case XEN_DMOP_MEM_CACHEATTR_WB:
    case XEN_DMOP_MEM_CACHEATTR_UCM:
        break;
    default:
        rc = -EINVAL;
        goto out;
    }
    for (i = 0; i < d->nr_cacheattr; i++) {
        struct xsim_cacheattr *c = &d->cacheattr[i];

        if (c->start == start && c->end == end) {
            c->type = type;
            goto out;
        }
        if (start <= c->end && end >= c->start) {
            rc = -EBUSY;
            goto out;
        }
    }
    {
        struct xsim_cacheattr *n = realloc(d->cacheattr,
                                           (d->nr_cacheattr + 1) * sizeof(*n));

        if (!n) {
            rc = -ENOMEM;
            goto out;
        }
        d->cacheattr = n;
        n[d->nr_cacheattr++] = (struct xsim_cacheattr){ start, end, type };
    }
out:
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int dom_dm_record(struct xsim_dom *d, const char *what)
{
    size_t l = strlen(what);
    char *n;

    pthread_mutex_lock(&d->lock);
    if (d->dm_log_len > (1u << 20)) {       /* keep the newest only */
        d->dm_log_len = 0;
    }
    n = realloc(d->dm_log, d->dm_log_len + l + 2);
    if (n) {
        d->dm_log = n;
        memcpy(n + d->dm_log_len, what, l);
        n[d->dm_log_len + l] = '\n';
        d->dm_log_len += l + 1;
        n[d->dm_log_len] = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return n ? 0 : -ENOMEM;
}

char *dom_dm_state(struct xsim_dom *d, size_t *len)
{
    static const char *const types[] = { "port", "mmio", "pci" };
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);

    if (!f)
        return NULL;
    pthread_mutex_lock(&d->lock);
    for (unsigned i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++) {
        struct xsim_ioreq *s = &d->ioreq[i];

        if (!s->used)
            continue;
        fprintf(f, "ioreq-server %u %s bufioreq=%d\n", i,
                s->enabled ? "enabled" : "disabled", s->bufioreq);
        for (unsigned j = 0; j < s->nr_ranges; j++)
            fprintf(f, "  %s %#llx-%#llx\n", types[s->ranges[j].type],
                    (unsigned long long)s->ranges[j].start,
                    (unsigned long long)s->ranges[j].end);
    }
    for (unsigned i = 0; i < d->nr_cacheattr; i++)
        fprintf(f, "cacheattr %#llx-%#llx type=%u\n",
                (unsigned long long)d->cacheattr[i].start,
                (unsigned long long)d->cacheattr[i].end,
                d->cacheattr[i].type);
    if (d->vram_nr)
        fprintf(f, "vram %#llx+%llu\n", (unsigned long long)d->vram_first,
                (unsigned long long)d->vram_nr);
    {
        char line[256];

        host_paging_state(d, line, sizeof(line));
        fputs(line, f);
    }
    fprintf(f, "logdirty %s dirty_count=%u\n", d->logdirty ? "on" : "off",
            d->dirty_count);
    if (d->panic[0])
        fprintf(f, "xen-panic %s\n", d->panic);
    fprintf(f, "mmio pairs=%llu match=%llu ones=%llu other=%llu active=%u\n",
            (unsigned long long)__atomic_load_n(&d->mmio_pairs,
                                                __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&d->mmio_match,
                                                __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&d->mmio_ones,
                                                __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&d->mmio_other,
                                                __ATOMIC_RELAXED),
            __atomic_load_n(&d->mmio_active, __ATOMIC_ACQUIRE));
    fprintf(f, "p2m pages-outside=%llu\n",
            (unsigned long long)host_pages_outside_p2m(d));
    fprintf(f, "ioreq sent=%llu waiting=%u wait-max-us=%llu\n",
            (unsigned long long)__atomic_load_n(&d->ioreq_sent,
                                                __ATOMIC_RELAXED),
            __atomic_load_n(&d->ioreq_waiting, __ATOMIC_RELAXED),
            (unsigned long long)__atomic_load_n(&d->ioreq_wait_max_ns,
                                                __ATOMIC_RELAXED) / 1000);
    if (d->pool) {
        struct xsim_pool *p = d->pool;

        pthread_mutex_lock(&p->lock);
        fprintf(f, "host unscrubbed pages=%u given=%llu taken=%llu "
                "forgotten=%llu\n", p->n, (unsigned long long)p->given,
                (unsigned long long)p->taken,
                (unsigned long long)p->forgotten);
        pthread_mutex_unlock(&p->lock);
    }
    if (d->dm_log)
        fputs(d->dm_log, f);
    pthread_mutex_unlock(&d->lock);
    fclose(f);
    *len = sz;
    return buf;
}
