/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gnttab.c - stand-in libxengnttab.so.1 for the simulator.
 *
 * Same soname and symbol versions as Debian's library (VERS_1.0..1.2, see
 * libxengnttab.map).  A grant is a page-sized file: mapping grant <ref> of
 * domain <domid> maps "<dir>/<domid>.<ref>" shared, where <dir> is
 * XENSIM_GNTTAB_DIR, else "$XENSTORED_RUNDIR/gnttab".  Whoever plays the
 * granting domain creates that file first (xs_sim_domain_introduce() does it
 * for the store ring, grant 1 = GNTTAB_RESERVED_XENSTORE); mapping a grant
 * whose file does not exist fails with EINVAL, as an unknown grant does on
 * Xen.  Both sides see each other's writes at once, like a real shared page.
 *
 * Implemented: open/close/fd, set_max_grants, the map calls (notify on unmap
 * is not delivered), unmap.  Grant copy, dma-buf and the gntshr (sharing)
 * side fail with ENOSYS: nothing in the simulator uses them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xengnttab.h>

#define SIM_GNTTAB_EXPORT __attribute__((visibility("default")))
#define SIM_PAGE_SIZE 4096UL

struct xengntdev_handle {
    int fd;                     /* /dev/null: something to hand out */
};

static xengnttab_handle *handle_new(unsigned open_flags)
{
    xengnttab_handle *h;

    (void)open_flags;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (h->fd < 0) {
        int err = errno;

        free(h);
        errno = err;
        return NULL;
    }
    return h;
}

SIM_GNTTAB_EXPORT
xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
                                 unsigned open_flags)
{
    (void)logger;
    return handle_new(open_flags);
}

SIM_GNTTAB_EXPORT
int xengnttab_close(xengnttab_handle *xgt)
{
    if (!xgt)
        return 0;
    close(xgt->fd);
    free(xgt);
    return 0;
}

SIM_GNTTAB_EXPORT
int xengnttab_fd(xengnttab_handle *xgt)
{
    return xgt->fd;
}

SIM_GNTTAB_EXPORT
int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt;
    (void)nr_grants;
    return 0;
}

static int grant_path(char *buf, size_t len, uint32_t domid, uint32_t ref)
{
    const char *dir = getenv("XENSIM_GNTTAB_DIR");
    const char *rundir = getenv("XENSTORED_RUNDIR");
    int n;

    if (dir && *dir)
        n = snprintf(buf, len, "%s/%u.%u", dir, domid, ref);
    else if (rundir && *rundir)
        n = snprintf(buf, len, "%s/gnttab/%u.%u", rundir, domid, ref);
    else
        return -ENOENT;
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Map grant (@domid, @ref) at @addr (MAP_FIXED) or anywhere (NULL). */
static void *map_one(void *addr, uint32_t domid, uint32_t ref, int prot)
{
    char path[PATH_MAX];
    int rc = grant_path(path, sizeof(path), domid, ref);
    int fd, err;
    void *p;

    if (rc < 0) {
        errno = -rc;
        return MAP_FAILED;
    }
    fd = open(path, ((prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        errno = errno == ENOENT ? EINVAL : errno;
        return MAP_FAILED;
    }
    p = mmap(addr, SIM_PAGE_SIZE, prot, MAP_SHARED | (addr ? MAP_FIXED : 0),
             fd, 0);
    err = errno;
    close(fd);
    errno = err;
    return p;
}

SIM_GNTTAB_EXPORT
void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count,
                               uint32_t *domids, uint32_t *refs, int prot)
{
    char *base;

    (void)xgt;
    if (!count) {
        errno = EINVAL;
        return NULL;
    }
    /* Reserve the whole range first so that the pages end up contiguous. */
    base = mmap(NULL, count * SIM_PAGE_SIZE, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (uint32_t i = 0; i < count; i++) {
        if (map_one(base + i * SIM_PAGE_SIZE, domids[i], refs[i], prot) ==
            MAP_FAILED) {
            int err = errno;

            munmap(base, count * SIM_PAGE_SIZE);
            errno = err;
            return NULL;
        }
    }
    return base;
}

SIM_GNTTAB_EXPORT
void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
                              uint32_t ref, int prot)
{
    return xengnttab_map_grant_refs(xgt, 1, &domid, &ref, prot);
}

SIM_GNTTAB_EXPORT
void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count,
                                      uint32_t domid, uint32_t *refs,
                                      int prot)
{
    uint32_t *domids = calloc(count ? count : 1, sizeof(*domids));
    void *p;

    if (!domids)
        return NULL;
    for (uint32_t i = 0; i < count; i++)
        domids[i] = domid;
    p = xengnttab_map_grant_refs(xgt, count, domids, refs, prot);
    free(domids);
    return p;
}

SIM_GNTTAB_EXPORT
void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid,
                                     uint32_t ref, int prot,
                                     uint32_t notify_offset,
                                     evtchn_port_t notify_port)
{
    (void)notify_offset;
    (void)notify_port;
    return xengnttab_map_grant_ref(xgt, domid, ref, prot);
}

SIM_GNTTAB_EXPORT
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    if (!start_address || !count) {
        errno = EINVAL;
        return -1;
    }
    return munmap(start_address, count * SIM_PAGE_SIZE);
}

SIM_GNTTAB_EXPORT
int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
                         xengnttab_grant_copy_segment_t *segs)
{
    (void)xgt;
    (void)count;
    (void)segs;
    errno = ENOSYS;
    return -1;
}

SIM_GNTTAB_EXPORT
int xengnttab_dmabuf_exp_from_refs(xengnttab_handle *xgt, uint32_t domid,
                                   uint32_t flags, uint32_t count,
                                   const uint32_t *refs, uint32_t *fd)
{
    (void)xgt; (void)domid; (void)flags; (void)count; (void)refs; (void)fd;
    errno = ENOSYS;
    return -1;
}

SIM_GNTTAB_EXPORT
int xengnttab_dmabuf_exp_wait_released(xengnttab_handle *xgt, uint32_t fd,
                                       uint32_t wait_to_ms)
{
    (void)xgt; (void)fd; (void)wait_to_ms;
    errno = ENOSYS;
    return -1;
}

SIM_GNTTAB_EXPORT
int xengnttab_dmabuf_imp_to_refs(xengnttab_handle *xgt, uint32_t domid,
                                 uint32_t fd, uint32_t count, uint32_t *refs)
{
    (void)xgt; (void)domid; (void)fd; (void)count; (void)refs;
    errno = ENOSYS;
    return -1;
}

SIM_GNTTAB_EXPORT
int xengnttab_dmabuf_imp_release(xengnttab_handle *xgt, uint32_t fd)
{
    (void)xgt; (void)fd;
    errno = ENOSYS;
    return -1;
}

/* The sharing side: a handle can be opened, nothing can be shared. */

SIM_GNTTAB_EXPORT
xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger,
                                 unsigned open_flags)
{
    (void)logger;
    return handle_new(open_flags);
}

SIM_GNTTAB_EXPORT
int xengntshr_close(xengntshr_handle *xgs)
{
    return xengnttab_close(xgs);
}

SIM_GNTTAB_EXPORT
int xengntshr_fd(xengntshr_handle *xgs)
{
    return xgs->fd;
}

SIM_GNTTAB_EXPORT
void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count,
                            uint32_t *refs, int writable)
{
    (void)xgs; (void)domid; (void)count; (void)refs; (void)writable;
    errno = ENOSYS;
    return NULL;
}

SIM_GNTTAB_EXPORT
void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid,
                                  uint32_t *ref, int writable,
                                  uint32_t notify_offset,
                                  evtchn_port_t notify_port)
{
    (void)xgs; (void)domid; (void)ref; (void)writable;
    (void)notify_offset; (void)notify_port;
    errno = ENOSYS;
    return NULL;
}

SIM_GNTTAB_EXPORT
int xengntshr_unshare(xengntshr_handle *xgs, void *start_address,
                      uint32_t count)
{
    (void)xgs; (void)start_address; (void)count;
    errno = ENOSYS;
    return -1;
}
