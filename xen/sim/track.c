/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * track.c - vCPU write tracking: userfaultfd write-protect (async) read
 * back with PAGEMAP_SCAN, or explicit marking as a fallback.  See track.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "xen/sim/proto.h"
#include "xen/sim/track.h"

/*
 * Debian 12's kernel headers (6.1) predate these; the values are the
 * kernel's UAPI (include/uapi/linux/userfaultfd.h and fs.h, Linux 6.7).
 * Whether the running kernel has them is found out at run time.
 */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
    __u64 start;
    __u64 end;
    __u64 categories;
};
struct pm_scan_arg {
    __u64 size;
    __u64 flags;
    __u64 start;
    __u64 end;
    __u64 walk_end;
    __u64 vec;
    __u64 vec_len;
    __u64 max_pages;
    __u64 category_inverted;
    __u64 category_mask;
    __u64 category_anyof_mask;
    __u64 return_mask;
};
#define PAGEMAP_SCAN          _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED     (1 << 0)
#define PAGE_IS_WRITTEN       (1 << 1)
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif

#define SCAN_VEC 4096
static int uffd_open(void)
{
    struct uffdio_api api = {
        .api = UFFD_API,
        .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
    };
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    /* Without privilege only user-mode faults may be tracked; vCPU writes
     * are user-mode writes, so that is enough. */
    if (fd < 0 && errno == EPERM)
        fd = (int)syscall(SYS_userfaultfd,
                          O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    if (fd < 0)
        return -errno;
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int rc = -errno;

        close(fd);
        return rc;
    }
    if ((api.features & UFFD_FEATURE_WP_ASYNC) == 0) {
        close(fd);
        return -EOPNOTSUPP;
    }
    return fd;
}

static int uffd_register(int uffd, void *addr, uint64_t len)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };

    return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

static int uffd_wp(int uffd, void *addr, uint64_t len, bool wp)
{
    struct uffdio_writeprotect w = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };

    return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

/*
 * The property the simulator relies on, checked on a small memfd: a write
 * through the tracked view is reported, a write through a second mapping
 * of the same memory is not, and a re-protecting scan resets the state.
 */
static int probe_uffd(const char **why)
{
    const size_t pages = 16, len = pages * XSIM_PAGE_SIZE;
    struct page_region vec[4];
    struct pm_scan_arg a;
    uint8_t *view = MAP_FAILED, *other = MAP_FAILED;
    int mfd = -1, uffd = -1, pm = -1, rc = -EOPNOTSUPP;
    long n;

    mfd = memfd_create("xensim-probe", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0) {
        *why = "memfd_create failed";
        goto out;
    }
    view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    other = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (view == MAP_FAILED || other == MAP_FAILED) {
        *why = "mmap failed";
        goto out;
    }
    uffd = uffd_open();
    if (uffd < 0) {
        *why = uffd == -EOPNOTSUPP || uffd == -EINVAL
               ? "userfaultfd lacks UFFD_FEATURE_WP_ASYNC (Linux < 6.7)"
               : "userfaultfd(2) not permitted";
        goto out;
    }
    if (uffd_register(uffd, view, len) < 0 || uffd_wp(uffd, view, len, 1)) {
        *why = "userfaultfd write-protect on shmem not supported";
        goto out;
    }
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm < 0) {
        *why = "/proc/self/pagemap not readable";
        goto out;
    }
    view[3 * XSIM_PAGE_SIZE] = 1;
    other[5 * XSIM_PAGE_SIZE] = 1;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    a.start = (uintptr_t)view;
    a.end = (uintptr_t)view + len;
    a.vec = (uintptr_t)vec;
    a.vec_len = 4;
    a.category_mask = PAGE_IS_WRITTEN;
    a.return_mask = PAGE_IS_WRITTEN;
    n = ioctl(pm, PAGEMAP_SCAN, &a);
    if (n < 0) {
        *why = "PAGEMAP_SCAN ioctl not supported (Linux < 6.7)";
        goto out;
    }
    if (n != 1 || vec[0].start != (uintptr_t)view + 3 * XSIM_PAGE_SIZE ||
        vec[0].end != vec[0].start + XSIM_PAGE_SIZE) {
        *why = "PAGEMAP_SCAN reported unexpected pages";
        goto out;
    }
    a.start = (uintptr_t)view;
    a.flags = 0;
    n = ioctl(pm, PAGEMAP_SCAN, &a);
    if (n != 0) {
        *why = "PAGEMAP_SCAN did not re-protect";
        goto out;
    }
    *why = NULL;
    rc = 0;
out:
    if (pm >= 0)
        close(pm);
    if (uffd >= 0)
        close(uffd);
    if (view != MAP_FAILED)
        munmap(view, len);
    if (other != MAP_FAILED)
        munmap(other, len);
    if (mfd >= 0)
        close(mfd);
    return rc;
}

int track_probe(const char *want, const char **why)
{
    int rc;

    *why = NULL;
    if (want && strcmp(want, "explicit") == 0) {
        *why = "explicit tracking requested";
        return XSIM_TRACK_EXPLICIT;
    }
    rc = probe_uffd(why);
    if (rc == 0)
        return XSIM_TRACK_UFFD;
    if (want && strcmp(want, "uffd") == 0)
        return rc;
    return XSIM_TRACK_EXPLICIT;
}

const char *track_mode_name(enum xsim_track_mode mode)
{
    return mode == XSIM_TRACK_UFFD ? "uffd-wp-async" : "explicit";
}

int track_init(struct xsim_track *t, enum xsim_track_mode mode, int memfd)
{
    const uint64_t len = XSIM_GFN_LIMIT * XSIM_PAGE_SIZE;
    int rc;

    memset(t, 0, sizeof(*t));
    t->mode = mode;
    t->uffd = t->pagemap = -1;
    t->view = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE, memfd, 0);
    if (t->view == MAP_FAILED) {
        t->view = NULL;
        return -errno;
    }
    madvise(t->view, len, MADV_NOHUGEPAGE);
    if (mode == XSIM_TRACK_EXPLICIT) {
        t->written = mmap(NULL, XSIM_GFN_LIMIT / 8, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (t->written == MAP_FAILED) {
            t->written = NULL;
            rc = -errno;
            goto fail;
        }
        return 0;
    }
    t->uffd = uffd_open();
    if (t->uffd < 0) {
        rc = t->uffd;
        goto fail;
    }
    rc = uffd_register(t->uffd, t->view, len);
    if (rc)
        goto fail;
    t->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (t->pagemap < 0) {
        rc = -errno;
        goto fail;
    }
    t->vec = calloc(SCAN_VEC, sizeof(struct page_region));
    if (!t->vec) {
        rc = -ENOMEM;
        goto fail;
    }
    return 0;
fail:
    track_fini(t);
    return rc;
}

void track_fini(struct xsim_track *t)
{
    if (t->pagemap >= 0)
        close(t->pagemap);
    if (t->uffd >= 0)
        close(t->uffd);
    if (t->view)
        munmap(t->view, XSIM_GFN_LIMIT * XSIM_PAGE_SIZE);
    if (t->written)
        munmap(t->written, XSIM_GFN_LIMIT / 8);
    free(t->vec);
    t->vec = NULL;
    t->pagemap = t->uffd = -1;
    t->view = NULL;
    t->written = NULL;
}

static void explicit_take(struct xsim_track *t, uint64_t start, uint64_t end)
{
    uint64_t w;

    for (w = start / 64; w * 64 < end; w++) {
        uint64_t lo = w * 64 < start ? start - w * 64 : 0;
        uint64_t hi = (w + 1) * 64 > end ? end - w * 64 : 64;
        unsigned long mask = (hi == 64 ? ~0ul : (1ul << hi) - 1) &
                             ~((1ul << lo) - 1);

        if (mask == ~0ul)
            __atomic_store_n(&t->written[w], 0, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(&t->written[w], ~mask, __ATOMIC_RELAXED);
    }
}

int track_protect(struct xsim_track *t, uint64_t gfn, uint64_t nr, bool wp)
{
    if (nr == 0)
        return 0;
    if (t->mode == XSIM_TRACK_EXPLICIT) {
        /* Protecting starts a fresh interval: forget earlier writes. */
        if (wp)
            explicit_take(t, gfn, gfn + nr);
        return 0;
    }
    return uffd_wp(t->uffd, t->view + gfn * XSIM_PAGE_SIZE,
                   nr * XSIM_PAGE_SIZE, wp);
}

static int scan_explicit(struct xsim_track *t, uint64_t start, uint64_t end,
                         bool reprotect, track_run_fn *fn, void *opaque)
{
    uint64_t run_start = 0, run_len = 0, w;

    for (w = start / 64; w * 64 < end; w++) {
        uint64_t lo = w * 64 < start ? start - w * 64 : 0;
        uint64_t hi = (w + 1) * 64 > end ? end - w * 64 : 64;
        unsigned long mask = (hi == 64 ? ~0ul : (1ul << hi) - 1) &
                             ~((1ul << lo) - 1);
        unsigned long bits;

        if (!__atomic_load_n(&t->written[w], __ATOMIC_RELAXED)) {
            bits = 0;
        } else if (reprotect) {
            bits = mask == ~0ul
                   ? __atomic_exchange_n(&t->written[w], 0, __ATOMIC_ACQUIRE)
                   : __atomic_fetch_and(&t->written[w], ~mask,
                                        __ATOMIC_ACQUIRE) & mask;
        } else {
            bits = __atomic_load_n(&t->written[w], __ATOMIC_ACQUIRE) & mask;
        }
        while (bits) {
            unsigned b = (unsigned)__builtin_ctzl(bits);
            uint64_t gfn = w * 64 + b;

            bits &= bits - 1;
            if (run_len && run_start + run_len == gfn) {
                run_len++;
            } else {
                if (run_len)
                    fn(opaque, run_start, run_len);
                run_start = gfn;
                run_len = 1;
            }
        }
    }
    if (run_len)
        fn(opaque, run_start, run_len);
    return 0;
}

int track_scan(struct xsim_track *t, uint64_t start, uint64_t end,
               bool reprotect, track_run_fn *fn, void *opaque)
{
    struct page_region *vec = t->vec;
    const uintptr_t base = (uintptr_t)t->view;
    struct pm_scan_arg a;

    if (start >= end)
        return 0;
    if (t->mode == XSIM_TRACK_EXPLICIT)
        return scan_explicit(t, start, end, reprotect, fn, opaque);
    if (!vec)
        return -ENOMEM;
    memset(&a, 0, sizeof(a));
    a.size = sizeof(a);
    a.flags = reprotect ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0;
    a.start = base + start * XSIM_PAGE_SIZE;
    a.end = base + end * XSIM_PAGE_SIZE;
    a.vec = (uintptr_t)vec;
    a.vec_len = SCAN_VEC;
    a.category_mask = PAGE_IS_WRITTEN;
    a.return_mask = PAGE_IS_WRITTEN;
    for (;;) {
        long n = ioctl(t->pagemap, PAGEMAP_SCAN, &a);
        long i;

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (i = 0; i < n; i++)
            fn(opaque, (vec[i].start - base) / XSIM_PAGE_SIZE,
               (vec[i].end - vec[i].start) / XSIM_PAGE_SIZE);
        if (a.walk_end >= a.end)
            return 0;
        a.start = a.walk_end;
    }
}
