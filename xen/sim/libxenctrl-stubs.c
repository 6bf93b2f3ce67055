/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libxenctrl-stubs.c - every function Debian's libxenctrl.so.4.17 exports
 * that the simulator does not implement (libxenctrl.c does the others).
 *
 * A stub fails like an unsupported hypercall (errno ENOSYS, -1 or NULL)
 * and says so once on stderr, so that a program linked against the real
 * library loads on the stand-in and learns what it used.  The list is
 * libxenctrl-stubs.def, written by gen-xc-stubs.py from Debian's library
 * and headers; each of its lines becomes one function here.  The stubs
 * take no parameters: a caller's arguments are simply never read, which
 * the x86-64 calling convention allows.  What is exported, and at which
 * version, is decided by libxenctrl.map alone.
 */
#include <errno.h>
#include <stdio.h>

static long xc_stub_unsimulated(const char *name, int *said)
{
    if (!__atomic_exchange_n(said, 1, __ATOMIC_RELAXED))
        fprintf(stderr, "xenctrl (xensim): %s is not simulated\n",
                name);
    errno = ENOSYS;
    return -1;
}

/* One "said" flag per function: the message is once per function, not
 * once per library. */
#define XC_STUB_LONG(name)                                                 \
    static int said_##name;                                                \
    long name(void);                                                       \
    long name(void)                                                        \
    {                                                                      \
        return xc_stub_unsimulated(#name, &said_##name);                   \
    }

#define XC_STUB_PTR(name)                                                  \
    static int said_##name;                                                \
    void *name(void);                                                      \
    void *name(void)                                                       \
    {                                                                      \
        xc_stub_unsimulated(#name, &said_##name);                          \
        return NULL;                                                       \
    }

#define XC_STUB_VOID(name)                                                 \
    static int said_##name;                                                \
    void name(void);                                                       \
    void name(void)                                                        \
    {                                                                      \
        xc_stub_unsimulated(#name, &said_##name);                          \
    }

#include "xen/sim/libxenctrl-stubs.def"
