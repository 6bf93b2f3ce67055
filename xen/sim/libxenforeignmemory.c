/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxenforeignmemory.c - stand-in for Debian's libxenforeignmemory.so.1 on
 * the simulated host.  A mapping is a real MAP_SHARED mapping of the
 * domain's guest memory (its memfd, received once per domain over the
 * channel), so what the caller writes lands in the guest, and is not seen
 * by log-dirty, exactly as with Linux privcmd on Xen.
 *
 * Per-frame errors are privcmd's (IOCTL_PRIVCMD_MMAPBATCH_V2 on a PV dom0,
 * where Xen's mod_l1_entry() reports them): -EINVAL for a frame that is not
 * populated or beyond the physical address space.  A frame that failed is
 * mapped to nothing: touching it raises SIGBUS, as privcmd's fault handler
 * does.  A domain that does not exist (any more) fails the whole call with
 * EPERM, as on Xen 4.17 with a PV dom0 (tests/realxen).
 *
 * Memory paging: each frame mapped holds a reference in the host, as a
 * foreign mapping holds one on its page on Xen (nominate refuses such a
 * frame), given back by xenforeignmemory_unmap (or when the handle's
 * connection goes).  A frame that is paged out answers -ENOENT and makes
 * the host ask the pager for it; as Debian's library (linux.c) does, the
 * map is retried for those frames until they are back, so a caller never
 * sees a paged-out frame's missing contents.  A frame that never comes
 * back (the domain went) keeps its -ENOENT.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenforeignmemory.h>

#include "xen/sim/stub.h"

#define FD_CACHE 8

struct fd_cache {
    uint32_t domid;
    uint64_t instance;
    int fd;
};

/* A mapping and the frames it holds references on (UINT64_MAX: none). */
struct fmap {
    uint8_t *base;
    size_t pages;
    uint32_t domid;
    uint64_t *gfns;
    struct fmap *next;
};

struct xenforeignmemory_handle {
    struct xsim_handle h;
    pthread_mutex_t cache_lock;
    struct fd_cache cache[FD_CACHE];
    unsigned next_slot;
    struct fmap *maps;          /* cache_lock */
};

static int fmem_restrict_cb(struct xsim_tc_handle *ah, uint32_t domid)
{
    return xsim_handle_restrict((struct xsim_handle *)ah, domid);
}

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
                                               unsigned open_flags)
{
    xenforeignmemory_handle *fmem = calloc(1, sizeof(*fmem));

    (void)logger;
    (void)open_flags;
    if (!fmem)
        return NULL;
    for (unsigned i = 0; i < FD_CACHE; i++)
        fmem->cache[i].fd = -1;
    pthread_mutex_init(&fmem->cache_lock, NULL);
    if (xsim_handle_open(&fmem->h, "xenforeignmemory", fmem_restrict_cb) < 0) {
        int e = errno;

        pthread_mutex_destroy(&fmem->cache_lock);
        free(fmem);
        errno = e;
        return NULL;
    }
    return fmem;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
    struct fmap *m, *n;

    if (!fmem)
        return 0;
    /* The host drops the references with the connection. */
    xsim_handle_close(&fmem->h);
    for (m = fmem->maps; m; m = n) {
        n = m->next;
        free(m->gfns);
        free(m);
    }
    for (unsigned i = 0; i < FD_CACHE; i++)
        if (fmem->cache[i].fd >= 0)
            close(fmem->cache[i].fd);
    pthread_mutex_destroy(&fmem->cache_lock);
    free(fmem);
    return 0;
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
    return xsim_handle_restrict(&fmem->h, domid);
}

/* A file of size 0: mapping it and touching the mapping raises SIGBUS. */
static int hole_fd(void)
{
    static int fd = -1;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

    pthread_mutex_lock(&lock);
    if (fd < 0)
        fd = memfd_create("xensim-unmapped", MFD_CLOEXEC);
    pthread_mutex_unlock(&lock);
    return fd;
}

static int cache_find(xenforeignmemory_handle *fmem, uint32_t domid,
                      uint64_t *instance)
{
    int fd = -1;

    pthread_mutex_lock(&fmem->cache_lock);
    for (unsigned i = 0; i < FD_CACHE; i++) {
        if (fmem->cache[i].fd >= 0 && fmem->cache[i].domid == domid) {
            fd = fmem->cache[i].fd;
            *instance = fmem->cache[i].instance;
        }
    }
    pthread_mutex_unlock(&fmem->cache_lock);
    return fd;
}

/*
 * Remember @fd as the memory of (@domid, @instance), dropping an entry for
 * an earlier incarnation of that domid.  Returns the fd to use (ours, or
 * the one another thread stored first).
 */
static int cache_store(xenforeignmemory_handle *fmem, uint32_t domid,
                       uint64_t instance, int fd)
{
    struct fd_cache *slot = NULL;

    pthread_mutex_lock(&fmem->cache_lock);
    for (unsigned i = 0; i < FD_CACHE; i++) {
        struct fd_cache *c = &fmem->cache[i];

        if (c->fd >= 0 && c->domid == domid) {
            if (c->instance == instance) {
                int keep = c->fd;

                pthread_mutex_unlock(&fmem->cache_lock);
                close(fd);
                return keep;
            }
            slot = c;
        }
    }
    if (!slot) {
        slot = &fmem->cache[fmem->next_slot];
        fmem->next_slot = (fmem->next_slot + 1) % FD_CACHE;
    }
    /* Closing an fd does not end mappings made from it. */
    if (slot->fd >= 0)
        close(slot->fd);
    slot->domid = domid;
    slot->instance = instance;
    slot->fd = fd;
    pthread_mutex_unlock(&fmem->cache_lock);
    return fd;
}

/* Forget a domain that is gone: its memory must not be kept alive here. */
static void cache_drop(xenforeignmemory_handle *fmem, uint32_t domid)
{
    pthread_mutex_lock(&fmem->cache_lock);
    for (unsigned i = 0; i < FD_CACHE; i++) {
        if (fmem->cache[i].fd >= 0 && fmem->cache[i].domid == domid) {
            close(fmem->cache[i].fd);
            fmem->cache[i].fd = -1;
        }
    }
    pthread_mutex_unlock(&fmem->cache_lock);
}

/* Give back the references a map call took and will not keep. */
static void drop_refs(xenforeignmemory_handle *fmem, uint32_t dom,
                      const xen_pfn_t arr[], const int32_t *errs,
                      size_t pages)
{
    uint64_t *g = malloc(pages * sizeof(*g));
    size_t n = 0;

    if (!g)
        return;                 /* kept until the handle closes */
    for (size_t i = 0; i < pages; i++)
        if (errs[i] == 0)
            g[n++] = arr[i];
    if (n)
        xsim_handle_call(&fmem->h, XSIM_OP_MEM_UNMAP, dom, NULL, g,
                         n * sizeof(*g), NULL, 0, NULL, NULL);
    free(g);
}

/*
 * Give the references of the pages of [addr, addr + pages) back, for
 * every mapping of ours that overlaps it (unmapped, or replaced by a
 * MAP_FIXED mapping).
 */
static void release_range(xenforeignmemory_handle *fmem, uint8_t *addr,
                          size_t pages)
{
    uint8_t *end = addr + pages * XSIM_PAGE_SIZE;
    struct fmap **pp, *m;

    pthread_mutex_lock(&fmem->cache_lock);
    for (pp = &fmem->maps; (m = *pp);) {
        uint8_t *mend = m->base + m->pages * XSIM_PAGE_SIZE;
        uint64_t *drop;
        size_t i, n = 0, held = 0;

        if (mend <= addr || m->base >= end) {
            pp = &m->next;
            continue;
        }
        drop = malloc(m->pages * sizeof(*drop));
        for (i = 0; i < m->pages; i++) {
            uint8_t *p = m->base + i * XSIM_PAGE_SIZE;

            if (m->gfns[i] == UINT64_MAX)
                continue;
            if (p >= addr && p < end) {
                if (drop)
                    drop[n++] = m->gfns[i];
                m->gfns[i] = UINT64_MAX;
            } else {
                held++;
            }
        }
        if (n)
            xsim_handle_call(&fmem->h, XSIM_OP_MEM_UNMAP, m->domid, NULL,
                             drop, n * sizeof(*drop), NULL, 0, NULL, NULL);
        free(drop);
        if (!held) {
            *pp = m->next;
            free(m->gfns);
            free(m);
        } else {
            pp = &m->next;
        }
    }
    pthread_mutex_unlock(&fmem->cache_lock);
}

/*
 * Ask the host for the frames still -ENOENT (paged out), until none is:
 * the host queues a request for each and the pager brings them back.
 * Debian's library polls privcmd every 100 us; so here, backing off to
 * 1 ms.  Stops when the call fails as a whole (the domain went): those
 * frames keep -ENOENT.
 */
static void retry_paged(xenforeignmemory_handle *fmem, uint32_t dom,
                        const xen_pfn_t arr[], int32_t *errs, size_t pages)
{
    uint64_t *g = malloc(pages * sizeof(*g));
    int32_t *e = malloc(pages * sizeof(*e));
    size_t *idx = malloc(pages * sizeof(*idx));
    unsigned delay = 100;

    if (!g || !e || !idx)
        goto out;
    for (;;) {
        uint64_t args[6] = { 0, 1 };
        size_t n = 0, i;

        for (i = 0; i < pages; i++) {
            if (errs[i] == -ENOENT) {
                idx[n] = i;
                g[n++] = arr[i];
            }
        }
        if (!n)
            break;
        usleep(delay);
        if (delay < 1000)
            delay += delay / 2;
        if (xsim_handle_call(&fmem->h, XSIM_OP_MEM_CHECK, dom, args, g,
                             n * sizeof(*g), e, n * sizeof(*e), NULL,
                             NULL) < 0 || e[0] == -ESRCH)
            break;
        for (i = 0; i < n; i++)
            errs[idx[i]] = e[i];
    }
out:
    free(g);
    free(e);
    free(idx);
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom,
                            void *addr, int prot, int flags, size_t pages,
                            const xen_pfn_t arr[], int err[])
{
    uint64_t args[6] = { 0 };
    struct xsim_rep rep;
    int32_t *errs;
    int *perr = err, memfd, holefd, got_fd = -1, e;
    uint64_t instance = 0;
    struct fmap *rec = NULL;
    uint8_t *base;
    size_t i, len;

    if (pages == 0 || pages > SIZE_MAX / XSIM_PAGE_SIZE) {
        errno = EINVAL;
        return NULL;
    }
    if (xsim_handle_check(&fmem->h, dom) < 0)
        return NULL;
    len = pages * XSIM_PAGE_SIZE;
    errs = malloc(pages * sizeof(*errs));
    if (!perr)
        perr = malloc(pages * sizeof(*perr));
    if (!errs || !perr)
        goto nomem;

    memfd = cache_find(fmem, dom, &instance);
    args[0] = memfd < 0;
    args[1] = 1;                /* each frame mapped holds a reference */
    if (xsim_handle_call(&fmem->h, XSIM_OP_MEM_CHECK, dom, args, arr,
                         pages * sizeof(*arr), errs, pages * sizeof(*errs),
                         &rep, &got_fd) < 0)
        goto fail;
    if (memfd >= 0 && got_fd < 0 && rep.val[0] != instance) {
        /* The domid now names another domain: fetch its memory (and
         * take the references again, with the answers). */
        drop_refs(fmem, dom, arr, errs, pages);
        args[0] = 1;
        if (xsim_handle_call(&fmem->h, XSIM_OP_MEM_CHECK, dom, args, arr,
                             pages * sizeof(*arr), errs,
                             pages * sizeof(*errs), &rep, &got_fd) < 0)
            goto fail;
    }
    if (got_fd >= 0)
        memfd = cache_store(fmem, dom, rep.val[0], got_fd);
    if (errs[0] != -ESRCH)
        retry_paged(fmem, dom, arr, errs, pages);
    for (i = 0; i < pages; i++)
        perr[i] = errs[i];
    if (perr[0] == -ESRCH) {
        /* The host answers -ESRCH per frame for an unknown domain. */
        cache_drop(fmem, dom);
        if (err != perr)
            free(perr);
        free(errs);
        errno = EPERM;
        return NULL;
    }

    /* The references taken, recorded before anything can fail. */
    rec = malloc(sizeof(*rec));
    if (rec)
        rec->gfns = malloc(pages * sizeof(*rec->gfns));
    if (!rec || !rec->gfns) {
        free(rec);
        rec = NULL;
        drop_refs(fmem, dom, arr, errs, pages);
        goto nomem;
    }
    for (i = 0; i < pages; i++)
        rec->gfns[i] = errs[i] == 0 ? arr[i] : UINT64_MAX;
    rec->domid = dom;
    rec->pages = pages;

    /* A mapping placed over ours ends it (and its references). */
    if ((flags & MAP_FIXED) && addr)
        release_range(fmem, addr, pages);
    /* Reserve the whole range, then map each run of good frames over it. */
    base = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
                MAP_NORESERVE | (flags & MAP_FIXED), -1, 0);
    if (base == MAP_FAILED)
        goto fail_refs;
    holefd = hole_fd();
    for (i = 0; i < pages;) {
        size_t j = i + 1;
        void *p;

        if (perr[i] == 0) {
            while (j < pages && perr[j] == 0 && arr[j] == arr[j - 1] + 1)
                j++;
            p = memfd < 0 ? MAP_FAILED
                          : mmap(base + i * XSIM_PAGE_SIZE,
                                 (j - i) * XSIM_PAGE_SIZE, prot,
                                 MAP_SHARED | MAP_FIXED, memfd,
                                 (off_t)(arr[i] * XSIM_PAGE_SIZE));
        } else {
            while (j < pages && perr[j] != 0)
                j++;
            p = holefd < 0 ? MAP_FAILED
                           : mmap(base + i * XSIM_PAGE_SIZE,
                                  (j - i) * XSIM_PAGE_SIZE, prot,
                                  MAP_SHARED | MAP_FIXED, holefd, 0);
        }
        if (p == MAP_FAILED) {
            e = errno;
            munmap(base, len);
            errno = e;
            goto fail_refs;
        }
        i = j;
    }
    if (!err) {
        /* Without an err array any failed frame fails the whole call. */
        for (i = 0; i < pages; i++) {
            if (perr[i]) {
                e = -perr[i];
                munmap(base, len);
                drop_refs(fmem, dom, arr, errs, pages);
                free(rec->gfns);
                free(rec);
                free(perr);
                free(errs);
                errno = e;
                return NULL;
            }
        }
        free(perr);
    }
    rec->base = base;
    pthread_mutex_lock(&fmem->cache_lock);
    rec->next = fmem->maps;
    fmem->maps = rec;
    pthread_mutex_unlock(&fmem->cache_lock);
    free(errs);
    return base;
fail_refs:
    e = errno;
    drop_refs(fmem, dom, arr, errs, pages);
    free(rec->gfns);
    free(rec);
    errno = e;
    goto fail;
nomem:
    errno = ENOMEM;
fail:
    e = errno;
    if (perr != err)
        free(perr);
    free(errs);
    errno = e;
    return NULL;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom,
                           int prot, size_t pages, const xen_pfn_t arr[],
                           int err[])
{
    return xenforeignmemory_map2(fmem, dom, NULL, prot, 0, pages, arr, err);
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr,
                           size_t pages)
{
    int rc = munmap(addr, pages * XSIM_PAGE_SIZE), e = errno;

    if (rc == 0 && fmem)
        release_range(fmem, addr, pages);
    errno = e;
    return rc;
}

/*
 * Resources: an ioreq server's pages are simulated (the daemon passes the
 * server's memfd and the frame's offset; host-ioreq.c), as privcmd's
 * IOCTL_PRIVCMD_MMAP_RESOURCE maps them on Xen.  Grant tables and vmtrace
 * buffers are not: EOPNOTSUPP, what callers such as QEMU treat as "use
 * the legacy way".
 */
struct xenforeignmemory_resource_handle {
    void *addr;
    size_t nr_frames;
};

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
    xenforeignmemory_handle *fmem, domid_t domid, unsigned int type,
    unsigned int id, unsigned long frame, unsigned long nr_frames,
    void **paddr, int prot, int flags)
{
    uint64_t args[6] = { type, id, frame, nr_frames };
    xenforeignmemory_resource_handle *fres;
    struct xsim_rep rep;
    int fd = -1, e;
    void *p;

    if (xsim_handle_check(&fmem->h, domid) < 0)
        return NULL;
    if (nr_frames == 0 || !paddr) {
        errno = EINVAL;
        return NULL;
    }
    if (xsim_handle_call(&fmem->h, XSIM_OP_MAP_RESOURCE, domid, args, NULL,
                         0, NULL, 0, &rep, &fd) < 0)
        return NULL;
    if (fd < 0) {
        errno = EIO;
        return NULL;
    }
    fres = calloc(1, sizeof(*fres));
    if (!fres) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    p = mmap(*paddr, nr_frames * XSIM_PAGE_SIZE, prot, MAP_SHARED | flags,
             fd, (off_t)rep.val[0]);
    e = errno;
    close(fd);                  /* the mapping keeps the pages */
    if (p == MAP_FAILED) {
        free(fres);
        errno = e;
        return NULL;
    }
    fres->addr = p;
    fres->nr_frames = nr_frames;
    *paddr = p;
    return fres;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
                                    xenforeignmemory_resource_handle *fres)
{
    int rc = 0;

    (void)fmem;
    if (fres) {
        rc = munmap(fres->addr, fres->nr_frames * XSIM_PAGE_SIZE);
        free(fres);
    }
    return rc;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem,
                                   domid_t domid, unsigned int type,
                                   unsigned int id, size_t *size)
{
    uint64_t args[6] = { type, id, 0, 0 };
    int64_t n;

    if (xsim_handle_check(&fmem->h, domid) < 0)
        return -1;
    n = xsim_handle_call(&fmem->h, XSIM_OP_MAP_RESOURCE, domid, args, NULL,
                         0, NULL, 0, NULL, NULL);
    if (n < 0)
        return -1;
    *size = (size_t)n * XSIM_PAGE_SIZE;
    return 0;
}
