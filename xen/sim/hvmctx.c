/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hvmctx.c - a simulated domain's HVM context, in Xen 4.17's save format
 * (public/hvm/save.h, public/arch-x86/hvm/save.h): a sequence of
 * struct hvm_save_descriptor + data, HEADER first, END (typecode 0) last.
 *
 * What the simulator saves is what Xen 4.17 saves for an HVM guest that
 * uses no XSAVE state, MSRs or Viridian (measured on real Xen by the
 * real-Xen tier's engine check, docs/testing.md), in Xen's order: by
 * typecode, a per-vCPU type vCPU by vCPU:
 *
 *   HEADER, CPU (one per vCPU that is up), PIC x2, IOAPIC, LAPIC,
 *   LAPIC_REGS, PCI_IRQ, ISA_IRQ, PCI_LINK, PIT, RTC, HPET, PMTIMER,
 *   MTRR, VMCE_VCPU, TSC_ADJUST (LAPIC to TSC_ADJUST per vCPU, up or
 *   down), END
 *
 * 4112 bytes for one vCPU, as on Xen.  The simulator emulates none of
 * the devices: their records hold what the last setcontext loaded into
 * the domain (zeros before), so that a context reads back as it was set,
 * as on Xen (where only the timers, RTC and PMTIMER, move on by
 * themselves).  The bound getcontext reports is hvm_save_size()'s, which
 * also counts XSAVE (the host's CPUID leaf 0xD size), the MSR record and
 * both Viridian records.
 *
 * A simulated vCPU's state is its workload's progress, kept in struct
 * hvm_hw_cpu's general registers (docs/simulator.md):
 *
 *   rax  the vCPU's RNG state (xorshift64*: random and hotset picks)
 *   rbx  its sequential cursor
 *   rcx  the domain's stamp generation when the context was taken
 *   rip  the number of pages it has picked so far
 *
 * and a plausible 64-bit long-mode frame around them (CR0/CR4/EFER,
 * flat segments, an initialised FPU) so that the record passes Xen's own
 * checks too.
 *
 * Loading follows hvm_load() and hvm_load_cpu_ctxt(): HEADER checked
 * strictly (-ENODATA), bad magic or version -EINVAL, then every vCPU is
 * put down and only those with a CPU record come up again; an unknown
 * typecode, a CPU record beyond the domain's vCPUs, too long or beyond
 * the buffer, or with values Xen refuses is -EINVAL; running out of data
 * before END is -ENODATA.  A device record is checked as its Xen loader
 * does: its length exact (LAPIC, RTC and VMCE_VCPU may be shorter and are
 * zero-extended), a per-vCPU one for a vCPU the domain has, PIC instance
 * 0 or 1 (-ENOENT otherwise), else -EINVAL (IOAPIC: -ENODATA); Xen's PIT
 * loader returns 1 there, the simulator -EINVAL.  XSAVE, MSR and the
 * Viridian records are taken and skipped.  Records are applied as they
 * are read, so a load that fails half-way leaves what it did (as on Xen).
 */
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xenctrl.h>
#include <xen/hvm/save.h>

#include "xen/sim/host.h"
#include "xen/sim/log.h"

#define DESC   sizeof(struct hvm_save_descriptor)
#define HDRLEN HVM_SAVE_LENGTH(HEADER)
#define CPULEN HVM_SAVE_LENGTH(CPU)

/* x86 bits (Xen's x86-defns.h), as far as the checks below need them. */
#define CR0_PE  (1ull << 0)
#define CR0_MP  (1ull << 1)
#define CR0_EM  (1ull << 2)
#define CR0_TS  (1ull << 3)
#define CR0_ET  (1ull << 4)
#define CR0_NE  (1ull << 5)
#define CR0_WP  (1ull << 16)
#define CR0_AM  (1ull << 18)
#define CR0_NW  (1ull << 29)
#define CR0_CD  (1ull << 30)
#define CR0_PG  (1ull << 31)
#define CR0_GUEST_BITS (CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | \
                        CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG)

/* hvm_cr4_guest_valid_bits() for the simulated guest's CPU policy: what a
 * modern host offers an HVM guest without nested virtualisation or CET:
 * VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT UMIP FSGSBASE
 * PCIDE OSXSAVE SMEP SMAP PKE. */
#define CR4_PAE        (1ull << 5)
#define CR4_OSFXSR     (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define CR4_VALID      (0xfffull | (1ull << 16) | (1ull << 17) | \
                        (1ull << 18) | (1ull << 20) | (1ull << 21) | \
                        (1ull << 22))

#define EFER_SCE   (1ull << 0)
#define EFER_LME   (1ull << 8)
#define EFER_LMA   (1ull << 10)
#define EFER_NXE   (1ull << 11)
#define EFER_SVME  (1ull << 12)
#define EFER_LMSLE (1ull << 13)
#define EFER_FFXSE (1ull << 14)
#define EFER_KNOWN (EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME | \
                    EFER_LMSLE | EFER_FFXSE)

#define RFLAGS_MBS 0x2ull

/* The guest TSC frequency the header reports: xc_physinfo's cpu_khz. */
#define XSIM_GTSC_KHZ 1000000u

/*
 * The emulated devices' records: per domain (PIC twice) and per vCPU, in
 * typecode order, with their loaders' length rule.
 */
struct devrec {
    uint16_t type;
    uint16_t num;               /* instances: PIC 2, others 1 */
    uint32_t len;
    bool per_vcpu;
    bool zeroextend;            /* hvm_load_entry_zeroextend() */
    int bad;                    /* the loader's error */
};

#define REC(t, n, v, z, e) \
    { HVM_SAVE_CODE(t), n, HVM_SAVE_LENGTH(t), v, z, e }
static const struct devrec devrecs[] = {
    REC(PIC, 2, false, false, -EINVAL),
    REC(IOAPIC, 1, false, false, -ENODATA),
    REC(LAPIC, 1, true, true, -EINVAL),
    REC(LAPIC_REGS, 1, true, false, -EINVAL),
    REC(PCI_IRQ, 1, false, false, -EINVAL),
    REC(ISA_IRQ, 1, false, false, -EINVAL),
    REC(PCI_LINK, 1, false, false, -EINVAL),
    REC(PIT, 1, false, false, -EINVAL),
    REC(RTC, 1, false, true, -EINVAL),
    REC(HPET, 1, false, false, -EINVAL),
    REC(PMTIMER, 1, false, false, -EINVAL),
    REC(MTRR, 1, true, false, -EINVAL),
    REC(VMCE_VCPU, 1, true, true, -EINVAL),
    REC(TSC_ADJUST, 1, true, false, -EINVAL),
};
#undef REC
#define NR_DEVRECS (sizeof(devrecs) / sizeof(devrecs[0]))

/*
 * A domain's device records, kept beside the simulator's domain (keyed by
 * domid and instance, which no later domain shares): one buffer, each
 * record's instances at a fixed offset, per-vCPU ones vCPU by vCPU.  An
 * entry lives as long as the host process (a few KiB a domain).
 */
struct devstate {
    struct devstate *next;
    uint32_t domid;
    uint64_t instance;
    uint32_t off[NR_DEVRECS];
    uint8_t *data;
};

static pthread_mutex_t devstate_lock = PTHREAD_MUTEX_INITIALIZER;
static struct devstate *devstates;

static unsigned rec_count(const struct devrec *r, const struct xsim_dom *d)
{
    return r->per_vcpu ? d->nr_vcpus : r->num;
}

/* @d's records (under d->lock), created zeroed; NULL without memory. */
static struct devstate *devstate_of(const struct xsim_dom *d)
{
    struct devstate *s, **pp;
    uint32_t len = 0;

    pthread_mutex_lock(&devstate_lock);
    for (pp = &devstates; (s = *pp); pp = &s->next) {
        if (s->domid == d->domid && s->instance == d->instance)
            break;
        if (s->domid == d->domid) {
            /* A destroyed domain's, whose domid came round again. */
            *pp = s->next;
            free(s->data);
            free(s);
            s = NULL;
            break;
        }
    }
    if (!s && (s = calloc(1, sizeof(*s)))) {
        for (unsigned i = 0; i < NR_DEVRECS; i++) {
            s->off[i] = len;
            len += rec_count(&devrecs[i], d) * devrecs[i].len;
        }
        s->data = calloc(1, len);
        if (!s->data) {
            free(s);
            s = NULL;
        } else {
            s->domid = d->domid;
            s->instance = d->instance;
            s->next = devstates;
            devstates = s;
        }
    }
    pthread_mutex_unlock(&devstate_lock);
    return s;
}

static uint8_t *rec_data(struct devstate *s, unsigned i, unsigned inst)
{
    return s->data + s->off[i] + (size_t)inst * devrecs[i].len;
}

/* The size of the host's XSAVE area (CPUID leaf 0xD: every feature). */
static uint32_t xsave_size(void)
{
    unsigned eax, ebx, ecx = 0, edx;

    if (!__get_cpuid_count(0xd, 0, &eax, &ebx, &ecx, &edx) || ecx < 576)
        ecx = 576;                      /* legacy area + header */
    return ecx;
}

/* hvm_save_size(): the upper bound Xen reports and checks buffers
 * against, counting every vCPU (down or not), and every handler Xen
 * registers whether it saves anything or not. */
static uint64_t save_size(const struct xsim_dom *d)
{
    /* XSAVE: hvm_hw_cpu_xsave's three words and the area; MSR: the
     * header and Xen 4.17's msrs_to_send[] (9 MSRs). */
    uint64_t per_vcpu = (DESC + CPULEN) +
                        (DESC + HVM_SAVE_LENGTH(VIRIDIAN_VCPU)) +
                        (DESC + 3 * 8 + xsave_size()) +
                        (DESC + 8 + 9 * sizeof(struct hvm_one_msr));
    uint64_t size = 2 * DESC + HDRLEN +
                    (DESC + HVM_SAVE_LENGTH(VIRIDIAN_DOMAIN));

    for (unsigned i = 0; i < NR_DEVRECS; i++) {
        if (devrecs[i].per_vcpu)
            per_vcpu += DESC + devrecs[i].len;
        else
            size += devrecs[i].num * (DESC + devrecs[i].len);
    }
    return size + (uint64_t)d->nr_vcpus * per_vcpu;
}

static void put(uint8_t *buf, uint64_t *cur, uint16_t type, uint16_t inst,
                const void *data, uint32_t len)
{
    struct hvm_save_descriptor desc = {
        .typecode = type, .instance = inst, .length = len,
    };

    memcpy(buf + *cur, &desc, DESC);
    if (len)
        memcpy(buf + *cur + DESC, data, len);
    *cur += DESC + len;
}

static void seg(uint32_t *sel, uint32_t *limit, uint32_t *ar, uint32_t s,
                uint32_t l, uint32_t a)
{
    *sel = s;
    *limit = l;
    *ar = a;
}

static void save_cpu(const struct xsim_vcpu *v, uint64_t gen,
                     struct hvm_hw_cpu *c)
{
    uint16_t fcw = 0x37f;
    uint32_t mxcsr = 0x1f80;

    memset(c, 0, sizeof(*c));
    /* FXSAVE image of a reset FPU: FCW at 0, MXCSR at 24. */
    memcpy(c->fpu_regs, &fcw, sizeof(fcw));
    memcpy(c->fpu_regs + 24, &mxcsr, sizeof(mxcsr));
    c->flags = XEN_X86_FPU_INITIALISED;

    /* The workload: see the top of the file. */
    c->rax = v->rng;
    c->rbx = v->cursor;
    c->rcx = gen;
    c->rip = v->seq;
    c->rflags = RFLAGS_MBS;

    c->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    c->cr3 = 0x1000;
    c->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    c->msr_efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    c->dr6 = 0xffff0ff0;
    c->dr7 = 0x400;
    seg(&c->cs_sel, &c->cs_limit, &c->cs_arbytes, 0x10, 0xffffffff, 0xa9b);
    seg(&c->ds_sel, &c->ds_limit, &c->ds_arbytes, 0x18, 0xffffffff, 0xc93);
    seg(&c->es_sel, &c->es_limit, &c->es_arbytes, 0x18, 0xffffffff, 0xc93);
    seg(&c->ss_sel, &c->ss_limit, &c->ss_arbytes, 0x18, 0xffffffff, 0xc93);
    seg(&c->fs_sel, &c->fs_limit, &c->fs_arbytes, 0x18, 0xffffffff, 0xc93);
    seg(&c->gs_sel, &c->gs_limit, &c->gs_arbytes, 0x18, 0xffffffff, 0xc93);
    seg(&c->tr_sel, &c->tr_limit, &c->tr_arbytes, 0x20, 0x67, 0x8b);
    c->ldtr_arbytes = 0x10000;          /* unusable */
    c->gdtr_limit = 0x37;
    c->idtr_limit = 0xfff;
}

int dom_hvm_getcontext(struct xsim_dom *d, uint8_t *buf, uint64_t size,
                       uint64_t *len)
{
    struct hvm_save_header hdr = {
        .magic = HVM_FILE_MAGIC,
        .version = HVM_FILE_VERSION,
        .changeset = ~0ull,             /* "unknown": no ':' in ours */
        .gtsc_khz = XSIM_GTSC_KHZ,
    };
    struct hvm_save_end end;
    struct devstate *s;
    unsigned eax = 0, ebx, ecx, edx;
    uint64_t cur = 0, gen;

    if (d->control)
        return -EINVAL;                 /* d == currd, and not HVM */
    if (!buf) {
        *len = save_size(d);
        return 0;
    }
    if (size < save_size(d))
        return -ENOSPC;
    s = devstate_of(d);
    if (!s)
        return -ENOMEM;
    __get_cpuid(1, &eax, &ebx, &ecx, &edx);
    hdr.cpuid = eax;

    pthread_mutex_lock(&d->lock);
    dom_quiesce(d);                     /* domain_pause() */
    put(buf, &cur, HVM_SAVE_CODE(HEADER), 0, &hdr, HDRLEN);
    gen = __atomic_load_n(&d->gen, __ATOMIC_RELAXED);
    pthread_mutex_lock(&d->run_lock);
    for (unsigned i = 0; i < d->nr_vcpus; i++) {
        struct hvm_hw_cpu c;

        /* hvm_save_cpu_ctxt(): nothing for a vCPU that is down. */
        if (d->vcpus[i].down)
            continue;
        save_cpu(&d->vcpus[i], gen, &c);
        put(buf, &cur, HVM_SAVE_CODE(CPU), (uint16_t)i, &c, CPULEN);
    }
    pthread_mutex_unlock(&d->run_lock);
    for (unsigned i = 0; i < NR_DEVRECS; i++) {
        for (unsigned k = 0; k < rec_count(&devrecs[i], d); k++)
            put(buf, &cur, devrecs[i].type, (uint16_t)k, rec_data(s, i, k),
                devrecs[i].len);
    }
    put(buf, &cur, HVM_SAVE_CODE(END), 0, &end, HVM_SAVE_LENGTH(END));
    dom_unquiesce(d);
    pthread_mutex_unlock(&d->lock);
    *len = cur;
    return 0;
}

/* hvm_load_cpu_ctxt() for the record at @cur (its descriptor @desc). */
static int load_cpu(struct xsim_dom *d, const uint8_t *buf, uint64_t size,
                    uint64_t *cur, const struct hvm_save_descriptor *desc,
                    bool *gen_loaded)
{
    struct hvm_hw_cpu c;
    struct xsim_vcpu *v;
    uint64_t left = size - *cur - DESC;

    if (desc->instance >= d->nr_vcpus) {
        xsim_log("d%u: HVM restore: no vcpu%u", d->domid, desc->instance);
        return -EINVAL;
    }
    v = &d->vcpus[desc->instance];
    /* hvm_load_entry_zeroextend(CPU), then the compat layout: a record
     * may be shorter than struct hvm_hw_cpu (zero-extended), not longer,
     * and must lie within the buffer. */
    if (desc->length > CPULEN || desc->length > left)
        return -EINVAL;
    memset(&c, 0, sizeof(c));
    memcpy(&c, buf + *cur + DESC, desc->length);
    *cur += DESC + desc->length;
    if (desc->length != CPULEN) {
        /* _hvm_hw_fix_cpu() */
        if (desc->length == sizeof(struct hvm_hw_cpu_compat)) {
            struct hvm_hw_cpu_compat cmp;

            memcpy(&cmp, &c, sizeof(cmp));
            c.error_code = cmp.error_code;
            c.pending_event = cmp.pending_event;
            c.tsc = cmp.tsc;
            c.msr_tsc_aux = 0;
        }
        c.flags = XEN_X86_FPU_INITIALISED;
    }

    if (c.pad0 != 0 ||
        (c.cr0 & ~CR0_GUEST_BITS) || !(c.cr0 & CR0_ET) ||
        (c.cr0 & (CR0_PE | CR0_PG)) == CR0_PG ||
        (c.cr4 & ~CR4_VALID) ||
        (c.msr_efer & ~EFER_KNOWN) || (c.msr_efer & EFER_SVME) ||
        ((c.msr_efer & EFER_LMA) &&
         (!(c.msr_efer & EFER_LME) || !(c.cr0 & CR0_PG))) ||
        (c.cr3 >> XSIM_GPADDR_BITS) ||
        (c.flags & ~XEN_X86_FPU_INITIALISED) ||
        c.msr_tsc_aux != (uint32_t)c.msr_tsc_aux) {
        xsim_log("d%u: HVM restore: vcpu%u: CPU state refused", d->domid,
                 desc->instance);
        return -EINVAL;
    }

    v->rng = c.rax;
    v->cursor = c.rbx;
    v->seq = c.rip;
    if (!*gen_loaded || c.rcx > d->gen)
        __atomic_store_n(&d->gen, c.rcx, __ATOMIC_RELAXED);
    *gen_loaded = true;
    pthread_mutex_lock(&d->run_lock);
    v->down = false;                    /* clear _VPF_down, vcpu_wake() */
    pthread_mutex_unlock(&d->run_lock);
    return 0;
}

/* A device record at @cur: checked as Xen's loader checks it, kept. */
static int load_dev(struct xsim_dom *d, const uint8_t *buf, uint64_t size,
                    uint64_t *cur, const struct hvm_save_descriptor *desc)
{
    uint64_t left = size - *cur - DESC;
    const struct devrec *r = NULL;
    struct devstate *s;
    unsigned i;

    for (i = 0; i < NR_DEVRECS; i++) {
        if (devrecs[i].type == desc->typecode) {
            r = &devrecs[i];
            break;
        }
    }
    if (!r) {
        /* XSAVE, MSR, Viridian: state the simulator has none of. */
        if (desc->length > left)
            return -EINVAL;
        *cur += DESC + desc->length;
        return 0;
    }
    if (r->per_vcpu && desc->instance >= d->nr_vcpus) {
        xsim_log("d%u: HVM restore: no vcpu%u for record %u", d->domid,
                 desc->instance, desc->typecode);
        return -EINVAL;
    }
    if (desc->typecode == HVM_SAVE_CODE(PIC) && desc->instance > 1)
        return -ENOENT;
    /* _hvm_check_entry(): the length, and the data within the buffer. */
    if ((r->zeroextend ? desc->length > r->len : desc->length != r->len) ||
        desc->length > left) {
        xsim_log("d%u: HVM restore: record %u/%u of %u bytes refused",
                 d->domid, desc->typecode, desc->instance, desc->length);
        return r->bad;
    }
    s = devstate_of(d);
    if (!s)
        return -ENOMEM;
    /* Instance 0 for the domain-wide ones but PIC (Xen's loaders). */
    memset(rec_data(s, i, r->num > 1 || r->per_vcpu ? desc->instance : 0), 0,
           r->len);
    memcpy(rec_data(s, i, r->num > 1 || r->per_vcpu ? desc->instance : 0),
           buf + *cur + DESC, desc->length);
    *cur += DESC + desc->length;
    return 0;
}

static int load(struct xsim_dom *d, const uint8_t *buf, uint64_t size)
{
    struct hvm_save_descriptor desc;
    struct hvm_save_header hdr;
    uint64_t cur;
    bool gen_loaded = false;

    /* hvm_load_entry(HEADER): strict, or -ENODATA */
    if (size < DESC)
        return -ENODATA;
    memcpy(&desc, buf, DESC);
    if (desc.typecode != HVM_SAVE_CODE(HEADER) || desc.length != HDRLEN ||
        desc.length > size - DESC)
        return -ENODATA;
    memcpy(&hdr, buf + DESC, HDRLEN);
    cur = DESC + HDRLEN;
    /* arch_hvm_load() */
    if (hdr.magic != HVM_FILE_MAGIC) {
        xsim_log("d%u: HVM restore: bad magic number %#x", d->domid,
                 hdr.magic);
        return -EINVAL;
    }
    if (hdr.version != HVM_FILE_VERSION) {
        xsim_log("d%u: HVM restore: unsupported version %u", d->domid,
                 hdr.version);
        return -EINVAL;
    }

    /* Down all the vCPUs: only those with state saved come up again. */
    pthread_mutex_lock(&d->run_lock);
    for (unsigned i = 0; i < d->nr_vcpus; i++)
        d->vcpus[i].down = true;
    pthread_mutex_unlock(&d->run_lock);

    for (;;) {
        int rc;

        if (size - cur < DESC) {
            xsim_log("d%u: HVM restore: save did not end with a null entry",
                     d->domid);
            return -ENODATA;
        }
        memcpy(&desc, buf + cur, DESC);
        if (desc.typecode == HVM_SAVE_CODE(END))
            return 0;
        /* HEADER has no load handler; every type from CPU to
         * HVM_SAVE_CODE_MAX has one in Xen 4.17. */
        if (desc.typecode > HVM_SAVE_CODE_MAX ||
            desc.typecode == HVM_SAVE_CODE(HEADER)) {
            xsim_log("d%u: HVM restore: unknown entry typecode %u", d->domid,
                     desc.typecode);
            return -EINVAL;
        }
        if (desc.typecode == HVM_SAVE_CODE(CPU)) {
            rc = load_cpu(d, buf, size, &cur, &desc, &gen_loaded);
            if (rc)
                return rc;
            continue;
        }
        rc = load_dev(d, buf, size, &cur, &desc);
        if (rc)
            return rc;
    }
}

int dom_hvm_setcontext(struct xsim_dom *d, const uint8_t *buf, uint64_t size)
{
    int rc;

    if (d->control)
        return -EINVAL;
    pthread_mutex_lock(&d->lock);
    dom_quiesce(d);                     /* domain_pause() */
    rc = load(d, buf, size);
    dom_unquiesce(d);                   /* wakes the vCPUs that are up */
    pthread_mutex_unlock(&d->lock);
    if (rc)
        xsim_log("d%u: HVM restore failed: %s", d->domid, strerror(-rc));
    return rc;
}
