/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-integration.c - a device model's day on the simulated host,
 * told with nothing but Debian's real Xen headers and libraries (run on the
 * stand-ins): map a running guest and find what its vCPUs wrote, populate
 * VRAM, track it, run log-dirty as a migration would, write through our
 * own mapping (not logged) and report it (logged only while log-dirty is
 * on), then every bad input a device model can make, and a host that dies.
 *
 * Not a cmocka program: one line per check ("ok"/"not ok"), exit status 0
 * only if all passed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

#define RAM_PAGES   (32 * 256ul)           /* --mem 36 --vram 4 */
#define VRAM_GFN    0x2000ul               /* ram_addr 32 MiB, as QEMU */
#define VRAM_PAGES  1024ul
#define LD_PAGES    0xff000ul

static int failures, checks;

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(int ok, const char *fmt, ...)
{
    va_list ap;

    checks++;
    if (!ok)
        failures++;
    printf("%s %d - ", ok ? "ok" : "not ok", checks);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok)
        printf(" (errno %d: %s)", errno, strerror(errno));
    printf("\n");
    fflush(stdout);
}

static uint64_t writes_of(struct simhost *h, uint32_t domid)
{
    struct xsim_dominfo info;
    uint64_t args[6] = { 1 };
    int err;

    if (simhost_call(h, XSIM_OP_DOM_GETINFO, domid, args, NULL, 0, &info,
                     sizeof(info), &err) != 1)
        return 0;
    return info.vcpu_writes;
}

/* Bounded wait for the vCPUs to have written @n more pages. */
static int wait_writes(struct simhost *h, uint32_t domid, uint64_t n)
{
    const struct timespec ms = { 0, 1000000 };
    uint64_t w0 = writes_of(h, domid);

    for (int i = 0; i < 10000; i++) {
        if (writes_of(h, domid) >= w0 + n)
            return 1;
        nanosleep(&ms, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct simhost host;
    xc_interface *xch;
    xenforeignmemory_handle *fmem;
    xendevicemodel_handle *dm;
    DECLARE_HYPERCALL_BUFFER(unsigned long, bm);
    xc_shadow_op_stats_t st;
    xc_dominfo_t info;
    xen_pfn_t gfns[256], vram[VRAM_PAGES], own = 0x1234, max;
    unsigned long vbm[VRAM_PAGES / 64];
    int err[256], d, fresh, stamped = 0, bad = 0, zero = 0;
    uint64_t dirty, g;
    uint8_t *p, *ownp;
    long long rc;

    sim_test_init(argc, argv, 90);
    if (simhost_start(&host, NULL)) {
        printf("not ok 1 - the simulated host starts\n");
        return 1;
    }
    {
        struct xsim_create c = { .vcpus = 2, .mem_kb = 36 << 10,
                                 .vram_kb = 4 << 10 };
        int e;

        snprintf(c.name, sizeof(c.name), "guest");
        snprintf(c.workload, sizeof(c.workload), "random:40");
        d = (int)simhost_call(&host, XSIM_OP_DOM_CREATE, 0, NULL, &c,
                              sizeof(c), NULL, 0, &e);
    }
    check(d > 0, "a 36 MiB HVM guest with 4 MiB of VRAM and 2 busy vCPUs");
    xch = xc_interface_open(NULL, NULL, 0);
    fmem = xenforeignmemory_open(NULL, 0);
    dm = xendevicemodel_open(NULL, 0);
    check(xch && fmem && dm, "the three Xen libraries open");
    if (!xch || !fmem || !dm || d <= 0)
        goto out;

    memset(&info, 0, sizeof(info));
    rc = xc_domain_getinfo(xch, d, 1, &info);
    check(rc == 1 && info.domid == (uint32_t)d && info.hvm &&
          info.max_memkb == (36 + 1) * 1024,
          "xc_domain_getinfo: HVM, max_memkb %lu", info.max_memkb);

    /* The device model populates VRAM itself (xen_ram_alloc). */
    for (unsigned i = 0; i < VRAM_PAGES; i++)
        vram[i] = VRAM_GFN + i;
    check(xc_domain_populate_physmap_exact(xch, d, VRAM_PAGES, 0, 0, vram) == 0,
          "populate %lu VRAM frames at %#lx", VRAM_PAGES, VRAM_GFN);
    gfns[0] = 0x50000;                  /* 2 MiB: more than what is left */
    check(xc_domain_populate_physmap_exact(xch, d, 1, 9, 0, gfns) == -1 &&
          errno == EBUSY, "populating beyond max memory fails with EBUSY");

    /* The running guest's memory, as the vCPUs left it. */
    check(wait_writes(&host, d, 500), "the vCPUs write");
    check(xc_domain_pause(xch, d) == 0, "pause");
    for (int i = 0; i < 256; i++)
        gfns[i] = (xen_pfn_t)i * (RAM_PAGES / 256) + 0xc0;
    p = xenforeignmemory_map(fmem, d, PROT_READ, 256, gfns, err);
    check(p != NULL, "map 256 frames spread over guest RAM");
    if (p) {
        for (int i = 0; i < 256; i++) {
            int s = err[i] ? -2 : xsim_stamp_check(p + i * 4096, gfns[i], NULL);

            stamped += s == 1;
            zero += s == 0;
            bad += s < 0;
        }
        xenforeignmemory_unmap(fmem, p, 256);
    }
    check(bad == 0 && stamped > 0, "the mapping shows the vCPUs' stamps "
          "(%d stamped, %d zero, %d bad)", stamped, zero, bad);

    /* Migration-style log-dirty rounds. */
    bm = xc_hypercall_buffer_alloc_pages(xch, bm, (LD_PAGES / 8 + 4095) / 4096);
    check(bm != NULL, "a hypercall buffer for the bitmap");
    if (!bm)
        goto out;
    check(xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                            NULL, 0) == 0, "enable log-dirty");
    check(xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                            NULL, 0) == -1 && errno == EINVAL,
          "enabling it twice is EINVAL");
    rc = xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                             HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(rc == (long long)LD_PAGES && sim_bits(bm, LD_PAGES) == 0,
          "first CLEAN of a paused guest is empty");
    check(xc_domain_unpause(xch, d) == 0, "unpause");
    check(wait_writes(&host, d, 300), "the vCPUs write more");
    check(xc_domain_pause(xch, d) == 0, "pause for the final round");
    memset(bm, 0, LD_PAGES / 8);
    rc = xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                             HYPERCALL_BUFFER(bm), LD_PAGES,
                             XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL, &st);
    dirty = sim_bits(bm, LD_PAGES);
    check(rc == (long long)LD_PAGES && dirty >= 100 && st.dirty_count == dirty,
          "final CLEAN: %" PRIu64 " dirty pages, dirty_count %u", dirty,
          st.dirty_count);
    for (g = 0, bad = 0; g < LD_PAGES; g++) {
        xen_pfn_t f = g;
        int e;

        if (!sim_bit(bm, g))
            continue;
        if (g >= RAM_PAGES) {
            bad++;
            continue;
        }
        p = xenforeignmemory_map(fmem, d, PROT_READ, 1, &f, &e);
        if (!p || e || xsim_stamp_check(p, g, NULL) != 1)
            bad++;
        if (p)
            xenforeignmemory_unmap(fmem, p, 1);
    }
    check(bad == 0, "every dirty page is guest RAM holding a whole stamp");

    /* Our own writes: the guest is paused, only we write. */
    ownp = xenforeignmemory_map(fmem, d, PROT_READ | PROT_WRITE, 1, &own, NULL);
    check(ownp != NULL, "map frame %#lx read-write", own);
    if (!ownp)
        goto out;
    xsim_stamp_write(ownp, own, 1);
    memset(bm, 0, LD_PAGES / 8);
    xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(sim_bits(bm, LD_PAGES) == 0,
          "a write through the foreign mapping is not logged");
    check(xendevicemodel_modified_memory(dm, d, own, 1) == 0,
          "modified_memory reports it");
    memset(bm, 0, LD_PAGES / 8);
    xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_PEEK,
                        HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(sim_bit(bm, own) && sim_bits(bm, LD_PAGES) == 1 &&
          st.dirty_count == 1, "PEEK shows exactly that page");
    check(xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) == 0,
          "log-dirty off");
    check(xendevicemodel_modified_memory(dm, d, own, 1) == 0,
          "modified_memory with log-dirty off succeeds");
    check(xc_shadow_control(xch, d, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                            NULL, 0) == 0, "log-dirty on again");
    memset(bm, 0, LD_PAGES / 8);
    xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(sim_bits(bm, LD_PAGES) == 0, "... and it was not logged");
    xenforeignmemory_unmap(fmem, ownp, 1);

    /* VRAM tracking on the frames we populated. */
    check(xendevicemodel_track_dirty_vram(dm, d, VRAM_GFN, VRAM_PAGES,
                                          vbm) == 0 &&
          sim_bits(vbm, VRAM_PAGES) == VRAM_PAGES,
          "track_dirty_vram: a new range is all dirty");
    p = xenforeignmemory_map(fmem, d, PROT_READ | PROT_WRITE, 1, vram, NULL);
    if (p) {
        xsim_stamp_write(p, VRAM_GFN, 1);       /* a framebuffer update */
        xenforeignmemory_unmap(fmem, p, 1);
    }
    {
        uint64_t gw[2] = { VRAM_GFN + 7, VRAM_GFN + 1000 };

        sim_guest_write(&host, d, gw, 2);
    }
    memset(vbm, 0, sizeof(vbm));
    check(xendevicemodel_track_dirty_vram(dm, d, VRAM_GFN, VRAM_PAGES,
                                          vbm) == 0 &&
          sim_bits(vbm, VRAM_PAGES) == 2 && sim_bit(vbm, 7) &&
          sim_bit(vbm, 1000), "then only what the guest wrote there");
    memset(bm, 0, LD_PAGES / 8);
    xc_logdirty_control(xch, d, XEN_DOMCTL_SHADOW_OP_CLEAN,
                        HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(sim_bits(bm, LD_PAGES) == 2 && sim_bit(bm, VRAM_GFN + 7),
          "log-dirty saw the same two writes");

    /* Bad input. */
    check(xc_domain_getinfo(xch, 31000, 1, &info) == -1 && errno == ESRCH,
          "getinfo of an unknown domid: ESRCH");
    check(xendevicemodel_modified_memory(dm, 31000, 0x10, 1) == -1 &&
          errno == ESRCH, "dm op on an unknown domid: ESRCH");
    gfns[0] = 0x100;
    gfns[1] = 0xa0;                       /* VGA hole */
    gfns[2] = 0x40000;                    /* never populated */
    gfns[3] = 1ull << 30;                 /* beyond the address space */
    p = xenforeignmemory_map(fmem, d, PROT_READ, 4, gfns, err);
    check(p && !err[0] && err[1] == -EINVAL && err[2] == -EINVAL &&
          err[3] == -EINVAL, "unpopulated and out-of-range frames: -EINVAL each");
    if (p)
        xenforeignmemory_unmap(fmem, p, 4);
    check(xc_domain_maximum_gpfn(xch, d, &max) == 0 && max == 0xfefff,
          "maximum gpfn is the last special page");
    check(xendevicemodel_modified_memory(dm, d, max, 1) == -1 &&
          errno == EINVAL, "modified_memory up to the maximum gpfn: EINVAL "
          "(as Xen)");
    fresh = sim_create(&host, 16, "idle", 0);
    memset(bm, 0xff, LD_PAGES / 8);
    rc = xc_logdirty_control(xch, fresh, XEN_DOMCTL_SHADOW_OP_CLEAN,
                             HYPERCALL_BUFFER(bm), LD_PAGES, 0, &st);
    check(fresh > 0 && rc == (long long)LD_PAGES &&
          sim_bits(bm, LD_PAGES) == 0,
          "CLEAN before ENABLE: success, empty bitmap (as Xen)");
    check(xc_domain_unpause(xch, d) == 0, "unpause");
    check(sim_run_cli(&host, NULL, 0, "verify", "guest", NULL) == 0,
          "xensim verify: no corrupt page");

    /* The host dies under us. */
    simhost_kill(&host);
    check(xc_domain_getinfo(xch, d, 1, &info) == -1 && errno == ENOTCONN,
          "a dead host: ENOTCONN, no hang");
    check(xenforeignmemory_map(fmem, d, PROT_READ, 1, gfns, NULL) == NULL &&
          errno == ENOTCONN, "mapping with a dead host: ENOTCONN");
out:
    if (xch && bm)
        xc_hypercall_buffer_free_pages(xch, bm, (LD_PAGES / 8 + 4095) / 4096);
    if (dm)
        xendevicemodel_close(dm);
    if (fmem)
        xenforeignmemory_close(fmem);
    if (xch)
        xc_interface_close(xch);
    simhost_stop(&host);
    printf("%d of %d checks passed\n", checks - failures, checks);
    return failures ? 1 : 0;
}
