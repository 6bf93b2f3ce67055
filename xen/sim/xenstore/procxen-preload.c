/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * procxen-preload.c - xs-sim-procxen.so, an LD_PRELOAD shim for xenstored.
 *
 * Debian's xenstored opens /proc/xen/xsd_port (dom0's store event channel)
 * and /proc/xen/xsd_kva (dom0's store ring, mmapped) at start.  Without Xen
 * there is no /proc/xen, and nothing can create it: procfs refuses mkdir and
 * a bind mount needs a mount point there.  This shim sends every open of a
 * path under /proc/xen/ to the same name under $XS_SIM_PROC_XEN (a directory
 * of the simulator's run directory); any other path, or the unset variable,
 * goes straight to libc.  No privilege is needed and nothing leaks outside
 * the preloaded process.  See docs/xenstore-sim.md.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROC_XEN "/proc/xen/"
#define SHIM_EXPORT __attribute__((visibility("default")))

/* glibc's fortified entry points, declared only under _FORTIFY_SOURCE. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);

/*
 * The path to use for @path: @buf when it is under /proc/xen/ and the shim
 * is configured, else @path itself.
 */
static const char *redirect(const char *path, char *buf, size_t len)
{
    const char *dir;
    int n;

    if (!path || strncmp(path, PROC_XEN, sizeof(PROC_XEN) - 1) != 0)
        return path;
    dir = getenv("XS_SIM_PROC_XEN");
    if (!dir || !*dir)
        return path;
    n = snprintf(buf, len, "%s/%s", dir, path + sizeof(PROC_XEN) - 1);
    return n < 0 || (size_t)n >= len ? path : buf;
}

static void *next(const char *sym)
{
    return dlsym(RTLD_NEXT, sym);
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

#define DEFINE_OPEN(name)                                                   \
    SHIM_EXPORT int name(const char *path, int flags, ...)                  \
    {                                                                       \
        static int (*real)(const char *, int, ...);                         \
        char buf[PATH_MAX];                                                 \
        va_list ap;                                                         \
        mode_t mode;                                                        \
                                                                            \
        va_start(ap, flags);                                                \
        mode = mode_arg(flags, ap);                                         \
        va_end(ap);                                                         \
        if (!real)                                                          \
            real = (int (*)(const char *, int, ...))next(#name);            \
        if (!real) {                                                        \
            errno = ENOSYS;                                                 \
            return -1;                                                      \
        }                                                                   \
        return real(redirect(path, buf, sizeof(buf)), flags, mode);         \
    }

#define DEFINE_OPENAT(name)                                                 \
    SHIM_EXPORT int name(int dirfd, const char *path, int flags, ...)       \
    {                                                                       \
        static int (*real)(int, const char *, int, ...);                    \
        char buf[PATH_MAX];                                                 \
        va_list ap;                                                         \
        mode_t mode;                                                        \
                                                                            \
        va_start(ap, flags);                                                \
        mode = mode_arg(flags, ap);                                         \
        va_end(ap);                                                         \
        if (!real)                                                          \
            real = (int (*)(int, const char *, int, ...))next(#name);       \
        if (!real) {                                                        \
            errno = ENOSYS;                                                 \
            return -1;                                                      \
        }                                                                   \
        return real(dirfd, redirect(path, buf, sizeof(buf)), flags, mode);  \
    }

#define DEFINE_OPEN2(name)                                                  \
    SHIM_EXPORT int name(const char *path, int flags)                       \
    {                                                                       \
        static int (*real)(const char *, int);                              \
        char buf[PATH_MAX];                                                 \
                                                                            \
        if (!real)                                                          \
            real = (int (*)(const char *, int))next(#name);                 \
        if (!real) {                                                        \
            errno = ENOSYS;                                                 \
            return -1;                                                      \
        }                                                                   \
        return real(redirect(path, buf, sizeof(buf)), flags);               \
    }

#define DEFINE_FOPEN(name)                                                  \
    SHIM_EXPORT FILE *name(const char *path, const char *mode)              \
    {                                                                       \
        static FILE *(*real)(const char *, const char *);                   \
        char buf[PATH_MAX];                                                 \
                                                                            \
        if (!real)                                                          \
            real = (FILE *(*)(const char *, const char *))next(#name);      \
        if (!real) {                                                        \
            errno = ENOSYS;                                                 \
            return NULL;                                                    \
        }                                                                   \
        return real(redirect(path, buf, sizeof(buf)), mode);                \
    }

DEFINE_OPEN(open)
DEFINE_OPEN(open64)
DEFINE_OPENAT(openat)
DEFINE_OPENAT(openat64)
DEFINE_OPEN2(__open_2)
DEFINE_OPEN2(__open64_2)
DEFINE_FOPEN(fopen)
DEFINE_FOPEN(fopen64)
