/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xen-fake.c - see xen-fake.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/util.h"
#include "tests/unit/xen-fake.h"

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static int fake_fd = -1;
static uint8_t *fake_mem;
static uint64_t fake_npages;
static unsigned long *fake_populated;
static int fake_fail_err;
static unsigned int fake_fail_count;
static unsigned int n_map, n_unmap;
static int64_t n_mapped_pages;
static int last_prot;
static bool populate_on_map;

/* Opaque handles: only their addresses matter. */
static char fake_xc, fake_fmem, fake_dmod;

int fake_xen_init(uint64_t npages)
{
    fake_fd = memfd_create("xen-fake-guest", MFD_CLOEXEC);
    if (fake_fd < 0) {
        return -errno;
    }
    if (ftruncate(fake_fd, (off_t)(npages * XR_PAGE_SIZE)) < 0) {
        close(fake_fd);
        return -errno;
    }
    fake_mem = mmap(NULL, npages * XR_PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_SHARED, fake_fd, 0);
    fake_populated = xr_bitmap_new(npages);
    if (fake_mem == MAP_FAILED || !fake_populated) {
        close(fake_fd);
        return -ENOMEM;
    }
    xr_bitmap_set(fake_populated, 0, npages);
    fake_npages = npages;
    fake_fail_count = 0;
    n_map = n_unmap = 0;
    n_mapped_pages = 0;
    return 0;
}

void fake_xen_fini(void)
{
    munmap(fake_mem, fake_npages * XR_PAGE_SIZE);
    close(fake_fd);
    free(fake_populated);
    fake_fd = -1;
    fake_mem = NULL;
    fake_populated = NULL;
    fake_npages = 0;
}

XenHandles *fake_xen_open(void)
{
    XenHandles *xh;

    return xen_open(FAKE_DOMID, XEN_OPEN_NO_XENSTORE, &xh, NULL, 0) == 0
           ? xh : NULL;
}

uint8_t *fake_guest(void)
{
    return fake_mem;
}

void fake_set_populated(uint64_t gfn, uint64_t n, bool populated)
{
    pthread_mutex_lock(&fake_lock);
    if (populated) {
        xr_bitmap_set(fake_populated, gfn, n);
    } else {
        xr_bitmap_clear(fake_populated, gfn, n);
    }
    pthread_mutex_unlock(&fake_lock);
}

void fake_set_populate_on_map(bool on)
{
    pthread_mutex_lock(&fake_lock);
    populate_on_map = on;
    pthread_mutex_unlock(&fake_lock);
}

void fake_fail_maps(int err, unsigned int count)
{
    pthread_mutex_lock(&fake_lock);
    fake_fail_err = err;
    fake_fail_count = count;
    pthread_mutex_unlock(&fake_lock);
}

unsigned int fake_map_calls(void)
{
    unsigned int n;

    pthread_mutex_lock(&fake_lock);
    n = n_map;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

unsigned int fake_unmap_calls(void)
{
    unsigned int n;

    pthread_mutex_lock(&fake_lock);
    n = n_unmap;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

int64_t fake_mapped_pages(void)
{
    int64_t n;

    pthread_mutex_lock(&fake_lock);
    n = n_mapped_pages;
    pthread_mutex_unlock(&fake_lock);
    return n;
}

int fake_last_prot(void)
{
    int p;

    pthread_mutex_lock(&fake_lock);
    p = last_prot;
    pthread_mutex_unlock(&fake_lock);
    return p;
}

/* ---- the wrapped calls ------------------------------------------------- */

xc_interface *__wrap_xc_interface_open(xentoollog_logger *l,
                                       xentoollog_logger *dl, unsigned f);
int __wrap_xc_interface_close(xc_interface *xch);
xenforeignmemory_handle *__wrap_xenforeignmemory_open(
    struct xentoollog_logger *l, unsigned f);
int __wrap_xenforeignmemory_close(xenforeignmemory_handle *h);
xendevicemodel_handle *__wrap_xendevicemodel_open(
    struct xentoollog_logger *l, unsigned f);
int __wrap_xendevicemodel_close(xendevicemodel_handle *h);
int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first,
                                 unsigned int max, xc_domaininfo_t *info);
void *__wrap_xenforeignmemory_map2(xenforeignmemory_handle *h, uint32_t dom,
                                   void *addr, int prot, int flags,
                                   size_t pages, const xen_pfn_t arr[],
                                   int err[]);
int __wrap_xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr,
                                  size_t pages);

xc_interface *__wrap_xc_interface_open(xentoollog_logger *l,
                                       xentoollog_logger *dl, unsigned f)
{
    (void)l;
    (void)dl;
    (void)f;
    return (xc_interface *)&fake_xc;
}

int __wrap_xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

xenforeignmemory_handle *__wrap_xenforeignmemory_open(
    struct xentoollog_logger *l, unsigned f)
{
    (void)l;
    (void)f;
    return (xenforeignmemory_handle *)&fake_fmem;
}

int __wrap_xenforeignmemory_close(xenforeignmemory_handle *h)
{
    (void)h;
    return 0;
}

xendevicemodel_handle *__wrap_xendevicemodel_open(
    struct xentoollog_logger *l, unsigned f)
{
    (void)l;
    (void)f;
    return (xendevicemodel_handle *)&fake_dmod;
}

int __wrap_xendevicemodel_close(xendevicemodel_handle *h)
{
    (void)h;
    return 0;
}

int __wrap_xc_domain_getinfolist(xc_interface *xch, uint32_t first,
                                 unsigned int max, xc_domaininfo_t *info)
{
    (void)xch;
    if (max == 0 || first > FAKE_DOMID) {
        return 0;
    }
    memset(info, 0, sizeof(*info));
    info->domain = FAKE_DOMID;
    info->flags = XEN_DOMINF_hvm_guest;
    info->tot_pages = fake_npages;
    info->max_pages = fake_npages;
    return 1;
}

void *__wrap_xenforeignmemory_map2(xenforeignmemory_handle *h, uint32_t dom,
                                   void *addr, int prot, int flags,
                                   size_t pages, const xen_pfn_t arr[],
                                   int err[])
{
    size_t len = pages * XR_PAGE_SIZE;
    uint8_t *base;
    int e;

    (void)h;
    if (dom != FAKE_DOMID) {
        errno = ESRCH;
        return NULL;
    }
    pthread_mutex_lock(&fake_lock);
    n_map++;
    last_prot = prot;
    if (fake_fail_count) {
        fake_fail_count--;
        e = fake_fail_err;
        pthread_mutex_unlock(&fake_lock);
        /* As privcmd: the range was replaced, then the batch failed. */
        if (flags & MAP_FIXED) {
            munmap(addr, len);
        }
        errno = e;
        return NULL;
    }
    base = mmap(addr, len, PROT_NONE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                (flags & MAP_FIXED), -1, 0);
    if (base == MAP_FAILED) {
        e = errno;
        pthread_mutex_unlock(&fake_lock);
        errno = e;
        return NULL;
    }
    for (size_t i = 0; i < pages;) {
        size_t j = i + 1;

        if (arr[i] >= fake_npages || !xr_test_bit(arr[i], fake_populated)) {
            err[i] = arr[i] >= fake_npages ? -EINVAL : -ENOENT;
            i++;
            continue;
        }
        err[i] = 0;
        while (j < pages && arr[j] == arr[j - 1] + 1 && arr[j] < fake_npages &&
               xr_test_bit(arr[j], fake_populated)) {
            err[j++] = 0;
        }
        if (mmap(base + i * XR_PAGE_SIZE, (j - i) * XR_PAGE_SIZE, prot,
                 MAP_SHARED | MAP_FIXED |
                 (populate_on_map ? MAP_POPULATE : 0), fake_fd,
                 (off_t)(arr[i] * XR_PAGE_SIZE)) == MAP_FAILED) {
            e = errno;
            munmap(base, len);
            pthread_mutex_unlock(&fake_lock);
            errno = e;
            return NULL;
        }
        i = j;
    }
    n_mapped_pages += pages;
    pthread_mutex_unlock(&fake_lock);
    return base;
}

int __wrap_xenforeignmemory_unmap(xenforeignmemory_handle *h, void *addr,
                                  size_t pages)
{
    (void)h;
    pthread_mutex_lock(&fake_lock);
    n_unmap++;
    n_mapped_pages -= pages;
    pthread_mutex_unlock(&fake_lock);
    return munmap(addr, pages * XR_PAGE_SIZE);
}
