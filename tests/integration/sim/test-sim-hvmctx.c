/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-hvmctx.c - the simulator's HVM context (xc_domain_hvm_get/
 * setcontext in Xen 4.17's save format, carrying the vCPUs' workload
 * state) and credit2 scheduling (xc_sched_id, xc_sched_credit2_domain_*,
 * the cap throttling the vCPUs), built against Debian's real headers and
 * -lxenctrl and run on the stand-ins (simtest.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xen/hvm/save.h>

#include "tests/integration/sim/simtest.h"
#include "xen/sim/stamp.h"

static struct simhost host;

#define MIB      16
#define MAX_GFN  (MIB * 256 + 64)       /* RAM, VGA hole and all below */
#define DESC     sizeof(struct hvm_save_descriptor)

static int group_setup(void **state)
{
    (void)state;
    return simhost_start(&host, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    return simhost_stop(&host);
}

static xc_interface *open_xc(void)
{
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);

    assert_non_null(xch);
    return xch;
}

static uint32_t create(unsigned vcpus, const char *workload, bool paused)
{
    struct xsim_create c = {
        .vcpus = vcpus,
        .mem_kb = MIB << 10,
        .flags = paused ? XSIM_CREATE_PAUSED : 0,
    };
    int err = 0;
    int64_t id;

    snprintf(c.workload, sizeof(c.workload), "%s", workload);
    id = simhost_call(&host, XSIM_OP_DOM_CREATE, 0, NULL, &c, sizeof(c),
                      NULL, 0, &err);
    assert_true(id > 0);
    return (uint32_t)id;
}

static uint64_t vcpu_writes(uint32_t dom)
{
    struct xsim_dominfo i;
    uint64_t args[6] = { 1 };
    int err;

    assert_int_equal(simhost_call(&host, XSIM_OP_DOM_GETINFO, dom, args,
                                  NULL, 0, &i, sizeof(i), &err), 1);
    assert_int_equal(i.domid, dom);
    return i.vcpu_writes;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The domain's HVM context (malloc'd), its length in *len. */
static uint8_t *get_ctx(xc_interface *xch, uint32_t dom, uint32_t *len)
{
    int need = xc_domain_hvm_getcontext(xch, dom, NULL, 0);
    uint8_t *buf;
    int got;

    assert_true(need > 0);
    buf = calloc(1, (size_t)need);
    assert_non_null(buf);
    got = xc_domain_hvm_getcontext(xch, dom, buf, (uint32_t)need);
    assert_true(got > 0 && got <= need);
    *len = (uint32_t)got;
    return buf;
}

/* The descriptor of record @type/@inst in @buf, or NULL. */
static struct hvm_save_descriptor *find(uint8_t *buf, uint32_t len,
                                        uint16_t type, uint16_t inst)
{
    uint32_t off = 0;

    while (off + DESC <= len) {
        struct hvm_save_descriptor *d = (void *)(buf + off);

        if (d->typecode == type && d->instance == inst)
            return d;
        if (d->typecode == 0)
            break;
        off += (uint32_t)DESC + d->length;
    }
    return NULL;
}

static struct hvm_hw_cpu *cpu_rec(uint8_t *buf, uint32_t len, uint16_t inst)
{
    struct hvm_save_descriptor *d = find(buf, len, HVM_SAVE_CODE(CPU), inst);

    return d ? (struct hvm_hw_cpu *)(d + 1) : NULL;
}

static unsigned nr_cpu_recs(uint8_t *buf, uint32_t len)
{
    unsigned n = 0;

    for (uint16_t i = 0; i < 64; i++)
        n += cpu_rec(buf, len, i) != NULL;
    return n;
}

/*
 * The stamps in the domain's memory: for every generation above @g0 (up
 * to @g0 + @n), the gfn it was found at, or UINT64_MAX.
 */
static uint64_t *stamps_after(uint32_t dom, uint64_t g0, uint64_t n)
{
    xenforeignmemory_handle *f = xenforeignmemory_open(NULL, 0);
    xen_pfn_t *gfns = calloc(MAX_GFN, sizeof(*gfns));
    int *err = calloc(MAX_GFN, sizeof(*err));
    uint64_t *at = malloc(n * sizeof(*at));
    uint8_t *p;

    assert_non_null(f);
    assert_non_null(gfns);
    assert_non_null(err);
    assert_non_null(at);
    for (uint64_t i = 0; i < n; i++)
        at[i] = UINT64_MAX;
    for (unsigned i = 0; i < MAX_GFN; i++)
        gfns[i] = i;
    p = xenforeignmemory_map(f, dom, PROT_READ, MAX_GFN, gfns, err);
    assert_non_null(p);
    for (unsigned i = 0; i < MAX_GFN; i++) {
        uint64_t gen;

        if (err[i] ||
            xsim_stamp_check(p + (size_t)i * 4096, i, &gen) != 1)
            continue;
        if (gen > g0 && gen <= g0 + n)
            at[gen - g0 - 1] = i;
    }
    xenforeignmemory_unmap(f, p, MAX_GFN);
    xenforeignmemory_close(f);
    free(gfns);
    free(err);
    return at;
}

/* ---- the context ---------------------------------------------------------- */

static void test_context_has_xen_format(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(2, "idle", true), len;
    uint8_t *buf = get_ctx(xch, dom, &len);
    struct hvm_save_descriptor *d = (void *)buf;
    struct hvm_save_header *hdr = (void *)(d + 1);
    int need = xc_domain_hvm_getcontext(xch, dom, NULL, 0);

    (void)state;
    /* hvm_save_size() bounds what is saved (it also counts XSAVE, MSR
     * and Viridian, which a guest that never used them does not save) */
    assert_true((uint32_t)need > len);
    assert_int_equal(d->typecode, HVM_SAVE_CODE(HEADER));
    assert_int_equal(d->length, sizeof(*hdr));
    assert_int_equal(hdr->magic, HVM_FILE_MAGIC);
    assert_int_equal(hdr->version, HVM_FILE_VERSION);
    assert_non_null(cpu_rec(buf, len, 0));
    assert_non_null(cpu_rec(buf, len, 1));
    assert_int_equal(find(buf, len, HVM_SAVE_CODE(CPU), 0)->length,
                     sizeof(struct hvm_hw_cpu));
    d = (void *)(buf + len - DESC);
    assert_int_equal(d->typecode, HVM_SAVE_CODE(END));
    assert_int_equal(d->length, 0);

    /* a buffer below hvm_save_size() is ENOSPC */
    errno = 0;
    assert_int_equal(xc_domain_hvm_getcontext(xch, dom, buf, len - 1), -1);
    assert_int_equal(errno, ENOSPC);

    /* dom0 (d == currd) is EINVAL, an unknown domain ESRCH */
    errno = 0;
    assert_int_equal(xc_domain_hvm_getcontext(xch, 0, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xc_domain_hvm_setcontext(xch, 0, buf, len), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xc_domain_hvm_getcontext(xch, 999, NULL, 0), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_domain_hvm_setcontext(xch, 999, buf, len), -1);
    assert_int_equal(errno, ESRCH);

    free(buf);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

static int set_errno(xc_interface *xch, uint32_t dom, uint8_t *buf,
                     uint32_t len);

/* The data of record @type/@inst in @buf. */
static uint8_t *payload(uint8_t *buf, uint32_t len, uint16_t type,
                        uint16_t inst)
{
    struct hvm_save_descriptor *d = find(buf, len, type, inst);

    assert_non_null(d);
    return (uint8_t *)d + DESC;
}

/* A copy of @ctx with record @type/@inst resized to @newlen (zeros added). */
static uint8_t *resized(const uint8_t *ctx, uint32_t len, uint16_t type,
                        uint16_t inst, uint32_t newlen, uint32_t *outlen)
{
    struct hvm_save_descriptor *d = find((uint8_t *)ctx, len, type, inst);
    uint32_t off, old;
    uint8_t *b;

    assert_non_null(d);
    off = (uint32_t)((const uint8_t *)d - ctx);
    old = d->length;
    b = calloc(1, len + newlen);
    assert_non_null(b);
    memcpy(b, ctx, off + DESC + (old < newlen ? old : newlen));
    memcpy(b + off + DESC + newlen, ctx + off + DESC + old,
           len - off - DESC - old);
    ((struct hvm_save_descriptor *)(b + off))->length = newlen;
    *outlen = len - old + newlen;
    return b;
}

/*
 * What Xen 4.17 saves for a one-vCPU HVM guest (measured on real Xen by
 * the real-Xen tier): the emulated devices' records beside the CPU, in
 * typecode order, 4112 bytes; they travel to another domain and read
 * back as they were set; each is checked as Xen's loader checks it.
 */
static void test_device_records_as_on_xen(void **state)
{
    static const struct { uint16_t type, inst; uint32_t len; } xen[] = {
        { 1, 0, 24 }, { 2, 0, 1032 }, { 3, 0, 8 }, { 3, 1, 8 },
        { 4, 0, 400 }, { 5, 0, 24 }, { 6, 0, 1024 }, { 7, 0, 16 },
        { 8, 0, 8 }, { 9, 0, 8 }, { 10, 0, 56 }, { 11, 0, 24 },
        { 12, 0, 1048 }, { 13, 0, 8 }, { 14, 0, 240 }, { 18, 0, 32 },
        { 19, 0, 8 }, { 0, 0, 0 },
    };
    xc_interface *xch = open_xc();
    uint32_t src = create(1, "idle", true), dst = create(1, "idle", true);
    uint32_t len, len2, off = 0, blen;
    uint8_t *ctx = get_ctx(xch, src, &len), *back, *b;
    struct hvm_save_descriptor *d;

    (void)state;
    assert_int_equal(len, 4112);
    for (unsigned i = 0; i < sizeof(xen) / sizeof(xen[0]); i++) {
        d = (void *)(ctx + off);
        assert_true(off + DESC <= len);
        assert_int_equal(d->typecode, xen[i].type);
        assert_int_equal(d->instance, xen[i].inst);
        assert_int_equal(d->length, xen[i].len);
        off += (uint32_t)DESC + d->length;
    }
    assert_int_equal(off, len);

    /* Device state written into the records travels and reads back. */
    memset(payload(ctx, len, HVM_SAVE_CODE(PIC), 1), 0x5a, 8);
    memset(payload(ctx, len, HVM_SAVE_CODE(LAPIC_REGS), 0), 0xa5, 1024);
    memset(payload(ctx, len, HVM_SAVE_CODE(PIT), 0), 0x3c, 56);
    assert_int_equal(xc_domain_hvm_setcontext(xch, dst, ctx, len), 0);
    back = get_ctx(xch, dst, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(back, ctx, len);
    free(back);

    /* Zero-extended (LAPIC): a shorter record loads and reads back
     * padded with zeros; a longer one is refused. */
    b = resized(ctx, len, HVM_SAVE_CODE(LAPIC), 0, 16, &blen);
    assert_int_equal(set_errno(xch, dst, b, blen), 0);
    back = get_ctx(xch, dst, &len2);
    {
        uint8_t *p = payload(back, len2, HVM_SAVE_CODE(LAPIC), 0);
        uint8_t zero[8] = { 0 };

        assert_memory_equal(p, payload(ctx, len, HVM_SAVE_CODE(LAPIC), 0),
                            16);
        assert_memory_equal(p + 16, zero, 8);
    }
    free(back);
    free(b);
    b = resized(ctx, len, HVM_SAVE_CODE(LAPIC), 0, 32, &blen);
    assert_int_equal(set_errno(xch, dst, b, blen), EINVAL);
    free(b);
    /* Strict lengths: LAPIC_REGS EINVAL, IOAPIC ENODATA. */
    b = resized(ctx, len, HVM_SAVE_CODE(LAPIC_REGS), 0, 1016, &blen);
    assert_int_equal(set_errno(xch, dst, b, blen), EINVAL);
    free(b);
    b = resized(ctx, len, HVM_SAVE_CODE(IOAPIC), 0, 408, &blen);
    assert_int_equal(set_errno(xch, dst, b, blen), ENODATA);
    free(b);
    /* Instances: a third PIC is ENOENT, MTRR for vCPU 1 EINVAL. */
    b = malloc(len);
    assert_non_null(b);
    memcpy(b, ctx, len);
    find(b, len, HVM_SAVE_CODE(PIC), 1)->instance = 2;
    assert_int_equal(set_errno(xch, dst, b, len), ENOENT);
    memcpy(b, ctx, len);
    find(b, len, HVM_SAVE_CODE(MTRR), 0)->instance = 1;
    assert_int_equal(set_errno(xch, dst, b, len), EINVAL);
    free(b);

    free(ctx);
    assert_int_equal(sim_destroy(&host, src), 0);
    assert_int_equal(sim_destroy(&host, dst), 0);
    xc_interface_close(xch);
}

/*
 * The round trip: a domain loaded with another's context continues its
 * workload's sequence.  Source and destination then write the same frames
 * with the same generations, and the destination's registers moved on by
 * exactly what it wrote.
 */
static void test_context_continues_the_workload(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t src = create(1, "random:2", false), dst, len, len2;
    uint8_t *ctx, *back;
    struct hvm_hw_cpu *c, *c2;
    uint64_t g0, seq0, ns, nd, n, *as, *ad, common = 0;

    (void)state;
    sleep_ms(150);
    assert_int_equal(xc_domain_pause(xch, src), 0);
    ctx = get_ctx(xch, src, &len);
    c = cpu_rec(ctx, len, 0);
    assert_non_null(c);
    g0 = c->rcx;
    seq0 = c->rip;
    assert_true(g0 > 0);
    assert_int_equal(g0, vcpu_writes(src));    /* one vCPU, all populated */
    assert_int_equal(seq0, g0);

    dst = create(1, "random:2", true);
    assert_int_equal(xc_domain_hvm_setcontext(xch, dst, ctx, len), 0);
    /* get returns what set stored */
    back = get_ctx(xch, dst, &len2);
    assert_int_equal(len2, len);
    c2 = cpu_rec(back, len2, 0);
    assert_non_null(c2);
    assert_memory_equal(c2, c, sizeof(*c));
    free(back);

    ns = vcpu_writes(src);
    assert_int_equal(xc_domain_unpause(xch, src), 0);
    assert_int_equal(xc_domain_unpause(xch, dst), 0);
    sleep_ms(200);
    assert_int_equal(xc_domain_pause(xch, src), 0);
    assert_int_equal(xc_domain_pause(xch, dst), 0);
    ns = vcpu_writes(src) - ns;
    nd = vcpu_writes(dst);
    assert_true(ns > 10 && nd > 10);

    /* The destination's registers moved on by what it wrote. */
    back = get_ctx(xch, dst, &len2);
    c2 = cpu_rec(back, len2, 0);
    assert_non_null(c2);
    assert_int_equal(c2->rip, seq0 + nd);
    assert_int_equal(c2->rcx, g0 + nd);
    assert_int_not_equal(c2->rax, c->rax);
    free(back);

    /* Same generations at the same frames on both: the same sequence. */
    n = ns < nd ? ns : nd;
    as = stamps_after(src, g0, n);
    ad = stamps_after(dst, g0, n);
    for (uint64_t i = 0; i < n; i++) {
        if (as[i] == UINT64_MAX || ad[i] == UINT64_MAX)
            continue;           /* overwritten by a later pick */
        assert_int_equal(ad[i], as[i]);
        common++;
    }
    assert_true(common * 10 >= n * 8);

    free(as);
    free(ad);
    free(ctx);
    assert_int_equal(sim_destroy(&host, src), 0);
    assert_int_equal(sim_destroy(&host, dst), 0);
    xc_interface_close(xch);
}

/* Xen pauses the domain itself around both domctls: a running domain is
 * fine and keeps running. */
static void test_context_of_a_running_domain(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(1, "random:4", false), len;
    uint8_t *ctx;
    xc_dominfo_t info;
    uint64_t w;

    (void)state;
    ctx = get_ctx(xch, dom, &len);
    assert_int_equal(xc_domain_hvm_setcontext(xch, dom, ctx, len), 0);
    assert_int_equal(xc_domain_getinfo(xch, dom, 1, &info), 1);
    assert_int_equal(info.paused, 0);
    w = vcpu_writes(dom);
    sleep_ms(100);
    assert_true(vcpu_writes(dom) > w);
    free(ctx);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

static int set_errno(xc_interface *xch, uint32_t dom, uint8_t *buf,
                     uint32_t len)
{
    errno = 0;
    if (xc_domain_hvm_setcontext(xch, dom, buf, len) == 0)
        return 0;
    return errno;
}

/* Every malformed context is refused with hvm_load()'s error. */
static void test_malformed_contexts_are_refused(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(2, "idle", true), len;
    uint8_t *good = get_ctx(xch, dom, &len), *b = malloc(len + 64);
    struct hvm_save_descriptor *d, *cpu1;
    struct hvm_save_header *hdr;
    struct hvm_hw_cpu *c;
    uint32_t cpu1_off;

    (void)state;
    assert_non_null(b);
    cpu1 = find(good, len, HVM_SAVE_CODE(CPU), 1);
    assert_non_null(cpu1);
    cpu1_off = (uint32_t)((uint8_t *)cpu1 - good);

#define RESET() memcpy(b, good, len)
    RESET();
    assert_int_equal(set_errno(xch, dom, b, len), 0);

    /* The header: missing, short, not first, wrong length: ENODATA. */
    assert_int_equal(set_errno(xch, dom, b, 0), ENODATA);
    assert_int_equal(set_errno(xch, dom, b, DESC + 4), ENODATA);
    d = (void *)b;
    d->typecode = HVM_SAVE_CODE(CPU);
    assert_int_equal(set_errno(xch, dom, b, len), ENODATA);
    RESET();
    d->length = sizeof(struct hvm_save_header) - 1;
    assert_int_equal(set_errno(xch, dom, b, len), ENODATA);

    /* Bad magic, bad version: EINVAL (arch_hvm_load). */
    RESET();
    hdr = (void *)(b + DESC);
    hdr->magic ^= 1;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    hdr->version = HVM_FILE_VERSION + 1;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);

    /* Unknown typecodes: beyond HVM_SAVE_CODE_MAX, and HEADER again. */
    RESET();
    d = (void *)(b + cpu1_off);
    d->typecode = HVM_SAVE_CODE_MAX + 1;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    d->typecode = HVM_SAVE_CODE(HEADER);
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);

    /* A CPU record longer than struct hvm_hw_cpu, or beyond the buffer. */
    RESET();
    d->length = sizeof(struct hvm_hw_cpu) + 8;
    memset(b + len, 0, 64);
    assert_int_equal(set_errno(xch, dom, b, len + 8), EINVAL);
    RESET();
    assert_int_equal(set_errno(xch, dom, b, cpu1_off + DESC + 100), EINVAL);

    /* Truncated at a record boundary (no END): ENODATA. */
    RESET();
    assert_int_equal(set_errno(xch, dom, b, len - DESC), ENODATA);
    assert_int_equal(set_errno(xch, dom, b, len - 2), ENODATA);

    /* A vCPU the domain does not have. */
    RESET();
    d->instance = 2;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);

    /* CPU state Xen refuses: CR0 without ET, PG without PE, pad0, flags,
     * LMA without LME, CR3 beyond the guest's address bits. */
    c = (void *)(d + 1);
    RESET();
    c->cr0 &= ~(uint64_t)0x10;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    c->cr0 &= ~(uint64_t)1;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    c->pad0 = 1;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    c->flags = 2;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    c->msr_efer &= ~(uint64_t)(1u << 8);
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);
    RESET();
    c->cr3 = 1ull << 40;
    assert_int_equal(set_errno(xch, dom, b, len), EINVAL);

    /* A NULL buffer is copy_from_guest()'s EFAULT. */
    assert_int_equal(set_errno(xch, dom, NULL, len), EFAULT);

    /* Still loadable afterwards. */
    RESET();
    assert_int_equal(set_errno(xch, dom, b, len), 0);
#undef RESET
    free(b);
    free(good);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

/*
 * hvm_load() downs every vCPU and brings up those with a CPU record: a
 * vCPU missing from the context stays down (no record when saved again,
 * no writes), as does a vCPU whose record failed to load.
 */
static void test_vcpus_without_a_record_stay_down(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(2, "random:2", true), len, len2;
    uint8_t *ctx = get_ctx(xch, dom, &len), *b = malloc(len), *back;
    struct hvm_save_descriptor *cpu1 = find(ctx, len, HVM_SAVE_CODE(CPU), 1);
    uint32_t off = (uint32_t)((uint8_t *)cpu1 - ctx);
    size_t rec = DESC + cpu1->length;
    struct hvm_hw_cpu *c;

    (void)state;
    assert_non_null(b);
    /* the context without vCPU 1's record */
    memcpy(b, ctx, off);
    memcpy(b + off, ctx + off + rec, len - off - rec);
    assert_int_equal(xc_domain_hvm_setcontext(xch, dom, b,
                                              (uint32_t)(len - rec)), 0);
    back = get_ctx(xch, dom, &len2);
    assert_int_equal(nr_cpu_recs(back, len2), 1);
    assert_non_null(cpu_rec(back, len2, 0));
    free(back);

    /* vCPU 1 writes nothing: only vCPU 0 moves on */
    assert_int_equal(xc_domain_unpause(xch, dom), 0);
    sleep_ms(150);
    assert_int_equal(xc_domain_pause(xch, dom), 0);
    back = get_ctx(xch, dom, &len2);
    c = cpu_rec(back, len2, 0);
    assert_non_null(c);
    assert_int_equal(c->rip - cpu_rec(ctx, len, 0)->rip, vcpu_writes(dom));
    free(back);

    /* the full context brings it back */
    assert_int_equal(xc_domain_hvm_setcontext(xch, dom, ctx, len), 0);
    back = get_ctx(xch, dom, &len2);
    assert_int_equal(nr_cpu_recs(back, len2), 2);
    free(back);

    /* a load failing at vCPU 1's record leaves vCPU 1 down */
    memcpy(b, ctx, len);
    ((struct hvm_hw_cpu *)(b + off + DESC))->pad0 = 1;
    errno = 0;
    assert_int_equal(xc_domain_hvm_setcontext(xch, dom, b, len), -1);
    assert_int_equal(errno, EINVAL);
    back = get_ctx(xch, dom, &len2);
    assert_int_equal(nr_cpu_recs(back, len2), 1);
    free(back);

    free(b);
    free(ctx);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

/* ---- scheduling ------------------------------------------------------------ */

static void test_scheduler_is_credit2(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t one = create(1, "idle", true), two = create(2, "idle", true);
    struct xen_domctl_sched_credit2 s2 = { 0 };
    struct xen_domctl_sched_credit s1 = { .weight = 256 };
    int id = -1;

    (void)state;
    assert_int_equal(xc_sched_id(xch, &id), 0);
    assert_int_equal(id, XEN_SCHEDULER_CREDIT2);

    /* credit2's defaults */
    assert_int_equal(xc_sched_credit2_domain_get(xch, one, &s2), 0);
    assert_int_equal(s2.weight, 256);
    assert_int_equal(s2.cap, 0);

    /* get returns what set stored */
    s2.weight = 512;
    s2.cap = 50;
    assert_int_equal(xc_sched_credit2_domain_set(xch, one, &s2), 0);
    memset(&s2, 0, sizeof(s2));
    assert_int_equal(xc_sched_credit2_domain_get(xch, one, &s2), 0);
    assert_int_equal(s2.weight, 512);
    assert_int_equal(s2.cap, 50);

    /* weight 0 keeps the weight, cap 0 removes the cap */
    s2.weight = 0;
    s2.cap = 0;
    assert_int_equal(xc_sched_credit2_domain_set(xch, one, &s2), 0);
    assert_int_equal(xc_sched_credit2_domain_get(xch, one, &s2), 0);
    assert_int_equal(s2.weight, 512);
    assert_int_equal(s2.cap, 0);

    /* a cap above 100% per vCPU is EINVAL, after the weight was set */
    s2.weight = 100;
    s2.cap = 101;
    errno = 0;
    assert_int_equal(xc_sched_credit2_domain_set(xch, one, &s2), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xc_sched_credit2_domain_get(xch, one, &s2), 0);
    assert_int_equal(s2.weight, 100);
    assert_int_equal(s2.cap, 0);
    s2.weight = 0;
    s2.cap = 200;
    assert_int_equal(xc_sched_credit2_domain_set(xch, two, &s2), 0);
    s2.cap = 201;
    errno = 0;
    assert_int_equal(xc_sched_credit2_domain_set(xch, two, &s2), -1);
    assert_int_equal(errno, EINVAL);

    /* the credit scheduler's calls on a credit2 pool: EINVAL */
    errno = 0;
    assert_int_equal(xc_sched_credit_domain_get(xch, one, &s1), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(xc_sched_credit_domain_set(xch, one, &s1), -1);
    assert_int_equal(errno, EINVAL);

    /* an unknown domain: ESRCH first */
    errno = 0;
    assert_int_equal(xc_sched_credit2_domain_get(xch, 999, &s2), -1);
    assert_int_equal(errno, ESRCH);
    errno = 0;
    assert_int_equal(xc_sched_credit_domain_get(xch, 999, &s1), -1);
    assert_int_equal(errno, ESRCH);

    assert_int_equal(sim_destroy(&host, one), 0);
    assert_int_equal(sim_destroy(&host, two), 0);
    xc_interface_close(xch);
}

/* Writes per second of @dom over @ms. */
static double rate(uint32_t dom, unsigned ms)
{
    uint64_t w0 = vcpu_writes(dom);
    double t0 = now_s();

    sleep_ms(ms);
    return (double)(vcpu_writes(dom) - w0) / (now_s() - t0);
}

static void set_cap(xc_interface *xch, uint32_t dom, uint16_t cap)
{
    struct xen_domctl_sched_credit2 s = { .weight = 0, .cap = cap };

    assert_int_equal(xc_sched_credit2_domain_set(xch, dom, &s), 0);
}

/*
 * A cap of 25% slows an unlimited random workload to about a quarter of
 * its uncapped rate.  Capped and uncapped windows alternate, so that the
 * machine's load at the time affects both alike; the bound (< 60%) leaves
 * room for contention and the batch that overruns each period.
 */
static void test_cap_throttles_the_vcpus(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(1, "random:0", false);
    double capped = 0, uncapped = 0;

    (void)state;
    sleep_ms(100);              /* every page touched once */
    for (int i = 0; i < 3; i++) {
        set_cap(xch, dom, 0);
        uncapped += rate(dom, 150);
        set_cap(xch, dom, 25);
        capped += rate(dom, 150);
    }
    print_message("uncapped %.0f, capped at 25%% %.0f pages/s (%.0f%%)\n",
                  uncapped / 3, capped / 3, 100 * capped / uncapped);
    assert_true(uncapped > 0);
    assert_true(capped > 0);
    assert_true(capped < 0.6 * uncapped);

    /* and the cap's removal lifts it */
    set_cap(xch, dom, 0);
    assert_true(rate(dom, 150) > capped / 3);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

/* `xensim sched-credit2 DOMAIN [--cap N] [--weight N]`, like `xl
 * sched-credit2 -d DOM -c N -w N`. */
static void test_cli_sched_credit2(void **state)
{
    xc_interface *xch = open_xc();
    uint32_t dom = create(1, "idle", true);
    struct xen_domctl_sched_credit2 s;
    char name[16], out[512];

    (void)state;
    snprintf(name, sizeof(name), "%u", dom);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "sched-credit2",
                                 name, "--cap", "30", NULL), 0);
    assert_int_equal(xc_sched_credit2_domain_get(xch, dom, &s), 0);
    assert_int_equal(s.cap, 30);
    assert_int_equal(s.weight, 256);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "sched-credit2",
                                 name, "--weight", "128", NULL), 0);
    assert_int_equal(xc_sched_credit2_domain_get(xch, dom, &s), 0);
    assert_int_equal(s.cap, 30);            /* kept, as libxl keeps it */
    assert_int_equal(s.weight, 128);
    assert_int_equal(sim_run_cli(&host, out, sizeof(out), "sched-credit2",
                                 name, NULL), 0);
    assert_non_null(strstr(out, "128"));
    assert_non_null(strstr(out, "30"));
    assert_int_not_equal(sim_run_cli(&host, out, sizeof(out),
                                     "sched-credit2", name, "--cap", "101",
                                     NULL), 0);
    assert_int_not_equal(sim_run_cli(&host, out, sizeof(out),
                                     "sched-credit2", name, "--cap", "x",
                                     NULL), 0);
    assert_int_equal(sim_destroy(&host, dom), 0);
    xc_interface_close(xch);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context_has_xen_format),
        cmocka_unit_test(test_context_continues_the_workload),
        cmocka_unit_test(test_device_records_as_on_xen),
        cmocka_unit_test(test_context_of_a_running_domain),
        cmocka_unit_test(test_malformed_contexts_are_refused),
        cmocka_unit_test(test_vcpus_without_a_record_stay_down),
        cmocka_unit_test(test_scheduler_is_credit2),
        cmocka_unit_test(test_cap_throttles_the_vcpus),
        cmocka_unit_test(test_cli_sched_credit2),
    };

    sim_test_init(argc, argv, 60);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
