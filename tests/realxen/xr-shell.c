/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xr-shell.c - the real-Xen tier's toolstack for xenram's own migration
 * engine (docs/toolstack.md, "xenram's own engine"; docs/testing.md).
 *
 *   xr-shell create SRC          build the empty HVM domain shell a
 *                                migration of domain SRC lands in, as
 *                                libxl's libxl__domain_make +
 *                                libxl__build_pre would (no memory, no
 *                                firmware, paused); print its domid
 *   xr-shell destroy DOMID       destroy it and wait until it is gone
 *   xr-shell info DOMID          "tot_pages max_kb paused shutdown" of a
 *                                domain (shutdown: 0, or 1 + the reason)
 *   xr-shell unpause DOMID       xc_domain_unpause
 *   xr-shell scribble DOMID GFN N RATE
 *                                write RATE pages a second, round robin
 *                                over [GFN, GFN + N), each followed by
 *                                XEN_DMOP_modified_memory: an outside
 *                                writer only Xen's log-dirty knows of.
 *                                Prints "ready" once mapped; on SIGTERM
 *                                it finishes the page it is at and prints
 *                                "scribbled W writes over K pages"
 *   xr-shell ctxcmp SRC DST      compare the HVM contexts of two domains
 *                                record by record; exit 1 when a record
 *                                that must travel unchanged differs
 *   xr-shell paramcmp SRC DST    the HVM parameters a migration carries
 *                                (libxc's list): exit 1 unless each is
 *                                the same in both; the others that
 *                                differ are listed
 *   xr-shell probe SRC           what Xen gives a toolstack on an empty
 *                                shell: "# " lines (HVM parameters, the
 *                                context, vCPUs, log-dirty); the shell is
 *                                destroyed again
 *
 * The configuration is the source's, read from Xen, where libxl would use
 * the one the migration carries (the same values on the same host).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenguest.h>
#include <xendevicemodel.h>
#include <xenforeignmemory.h>
#include <xen/hvm/params.h>
#include <xen/hvm/save.h>

#define PAGE 4096
/* libxl's LIBXL_MAXMEM_CONSTANT, in kB. */
#define MAXMEM_CONSTANT_KB 1024

static xc_interface *xch;

static int die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    return 1;
}

static int getinfo(uint32_t domid, xc_dominfo_t *info)
{
    if (xc_domain_getinfo(xch, domid, 1, info) != 1 || info->domid != domid) {
        errno = errno ? errno : ESRCH;
        return -1;
    }
    return 0;
}

/*
 * The parameters libxl sets from the configuration (hvm_set_conf_params)
 * and that no migration stream carries.
 */
static const uint32_t conf_params[] = {
    HVM_PARAM_HPET_ENABLED, HVM_PARAM_VPT_ALIGN, HVM_PARAM_TIMER_MODE,
    HVM_PARAM_ALTP2M,
};

static int shell_build(uint32_t src, uint32_t *out, bool quiet)
{
    xc_dominfo_t si;
    uint32_t tsc_mode, khz, inc, domid = 0;
    uint64_t elapsed, pool;
    xc_cpu_policy_t *pol;
    int store, console;

    if (getinfo(src, &si)) {
        return die("the source domain");
    }
    if (!si.hvm) {
        fprintf(stderr, "domain %u is not an HVM guest\n", src);
        return 1;
    }
    /* libxl__domain_make: libxl_create.c and libxl_x86.c's prepare_config. */
    struct xen_domctl_createdomain cfg = {
        .flags = XEN_DOMCTL_CDF_hvm | (si.hap ? XEN_DOMCTL_CDF_hap : 0),
        .max_vcpus = si.max_vcpu_id + 1,
        .max_evtchn_port = 1023,        /* xl's event_channels default */
        .max_grant_frames = 64,         /* xl.conf's defaults */
        .max_maptrack_frames = 1024,
        .grant_opts = XEN_DOMCTL_GRANT_version(2),
        .cpupool_id = si.cpupool,
        .arch = si.arch_config,         /* emulation_flags, misc_flags */
    };

    memcpy(cfg.handle, si.handle, sizeof(cfg.handle));
    cfg.handle[0] ^= 0x5a;               /* a uuid of its own */
    if (xc_domain_create(xch, &domid, &cfg)) {
        return die("xc_domain_create (hvm, hap)");
    }
    /* From here on a failure destroys what was built. */
#define FAIL(what) do { int e_ = errno; fprintf(stderr, "%s: %s\n", what, \
                        strerror(e_)); xc_domain_destroy(xch, domid); \
                        return 1; } while (0)
    /* libxl__build_pre. */
    if (xc_domain_max_vcpus(xch, domid, cfg.max_vcpus)) {
        FAIL("xc_domain_max_vcpus");
    }
    /* The source's maximum is its target + LIBXL_MAXMEM_CONSTANT already. */
    if (xc_domain_setmaxmem(xch, domid, si.max_memkb)) {
        FAIL("xc_domain_setmaxmem");
    }
    store = xc_evtchn_alloc_unbound(xch, domid, 0);
    console = xc_evtchn_alloc_unbound(xch, domid, 0);
    if (store < 0 || console < 0) {
        FAIL("xc_evtchn_alloc_unbound (xenstore, console)");
    }
    /*
     * libxc's restore sets these at the end of its stream
     * (x86_hvm_stream_complete); xenram's receiver does not know the
     * ports, the toolstack that allocated them does.
     */
    if (xc_hvm_param_set(xch, domid, HVM_PARAM_STORE_EVTCHN, store) ||
        xc_hvm_param_set(xch, domid, HVM_PARAM_CONSOLE_EVTCHN, console)) {
        FAIL("setting HVM_PARAM_STORE_EVTCHN / CONSOLE_EVTCHN");
    }
    /* libxl__arch_domain_create: hvm_set_conf_params, tsc, paging pool. */
    for (size_t i = 0; i < sizeof(conf_params) / sizeof(conf_params[0]); i++) {
        uint64_t v;

        if (xc_hvm_param_get(xch, src, conf_params[i], &v) ||
            xc_hvm_param_set(xch, domid, conf_params[i], v)) {
            char what[64];

            snprintf(what, sizeof(what), "HVM parameter %u", conf_params[i]);
            FAIL(what);
        }
    }
    if (xc_domain_get_tsc_info(xch, src, &tsc_mode, &elapsed, &khz, &inc) ||
        xc_domain_set_tsc_info(xch, domid, tsc_mode, 0, 0, 0)) {
        FAIL("xc_domain_set_tsc_info");
    }
    if (xc_get_paging_mempool_size(xch, src, &pool) ||
        xc_set_paging_mempool_size(xch, domid, pool)) {
        FAIL("xc_set_paging_mempool_size (the source's)");
    }
    /*
     * The CPUID and MSR policy: libxc's stream carries them
     * (X86_CPUID_POLICY, X86_MSR_POLICY) and restore sets them; xenram's
     * stream does not, so the toolstack must (here: the source's).
     */
    pol = xc_cpu_policy_init();
    if (!pol || xc_cpu_policy_get_domain(xch, src, pol) ||
        xc_cpu_policy_set_domain(xch, domid, pol)) {
        xc_cpu_policy_destroy(pol);
        FAIL("copying the source's CPU policy");
    }
    xc_cpu_policy_destroy(pol);
#undef FAIL
    *out = domid;
    if (quiet) {
        return 0;
    }
    printf("%u\n", domid);
    fprintf(stderr, "shell %u: %u vCPU(s), max %lu kB, paging pool %" PRIu64
            " kB, tsc_mode %u, xenstore port %d, console port %d, "
            "emulation_flags %#x, no memory\n", domid, cfg.max_vcpus,
            si.max_memkb, pool >> 10, tsc_mode, store, console,
            cfg.arch.emulation_flags);
    return 0;
}

static int shell_create(uint32_t src)
{
    uint32_t domid;

    return shell_build(src, &domid, false);
}

static int shell_destroy(uint32_t domid)
{
    xc_dominfo_t info;

    if (xc_domain_destroy(xch, domid)) {
        return die("xc_domain_destroy");
    }
    /* A dying domain lingers while pages of it are still mapped. */
    for (int i = 0; i < 300; i++) {
        errno = 0;
        if (getinfo(domid, &info)) {
            return 0;
        }
        usleep(100 * 1000);
    }
    fprintf(stderr, "domain %u still exists (dying %u) 30 s after its "
            "destruction\n", domid, info.dying);
    return 1;
}

static int shell_info(uint32_t domid)
{
    xc_dominfo_t info;

    if (getinfo(domid, &info)) {
        return die("xc_domain_getinfo");
    }
    printf("%lu %lu %u %u\n", info.nr_pages, info.max_memkb, info.paused,
           info.shutdown ? 1 + info.shutdown_reason : 0);
    return 0;
}

/* ---- scribble ----------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int scribble(uint32_t domid, uint64_t gfn, unsigned n, unsigned rate)
{
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xendevicemodel_handle *dmod = xendevicemodel_open(NULL, 0);
    xen_pfn_t *pfns = calloc(n, sizeof(*pfns));
    int *errs = calloc(n, sizeof(*errs));
    struct sigaction sa = { .sa_handler = on_term };
    struct timespec t;
    uint64_t writes = 0, seq = 0;
    uint8_t *m;

    if (!fm || !dmod || !pfns || !errs || !n || !rate) {
        fprintf(stderr, "scribble: bad arguments or no Xen handles\n");
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (unsigned i = 0; i < n; i++) {
        pfns[i] = gfn + i;
    }
    m = xenforeignmemory_map(fm, domid, PROT_READ | PROT_WRITE, n, pfns, errs);
    if (!m) {
        return die("scribble: mapping the frames");
    }
    for (unsigned i = 0; i < n; i++) {
        if (errs[i]) {
            fprintf(stderr, "scribble: gfn %#" PRIx64 " does not map: %s\n",
                    gfn + i, strerror(-errs[i]));
            return 2;
        }
    }
    printf("ready\n");
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t);
    while (!stop) {
        unsigned i = (unsigned)(seq % n);
        uint64_t *p = (uint64_t *)(m + (size_t)i * PAGE);

        seq++;
        for (unsigned j = 0; j < PAGE / 8; j++) {
            p[j] = (gfn + i) * 0x9e3779b97f4a7c15ull ^ seq ^ ((uint64_t)j << 40);
        }
        __sync_synchronize();
        if (xendevicemodel_modified_memory(dmod, domid, gfn + i, 1)) {
            return die("scribble: modified_memory");
        }
        writes++;
        /* The pace of the writer; nothing waits on it. */
        t.tv_nsec += 1000000000L / rate;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
    }
    printf("scribbled %" PRIu64 " writes over %" PRIu64 " pages\n", writes,
           writes < n ? writes : n);
    xenforeignmemory_unmap(fm, m, n);
    xenforeignmemory_close(fm);
    xendevicemodel_close(dmod);
    free(pfns);
    free(errs);
    return 0;
}

/* ---- the HVM context ----------------------------------------------------------- */

static int get_ctx(uint32_t domid, uint8_t **buf, uint32_t *len)
{
    int n = xc_domain_hvm_getcontext(xch, domid, NULL, 0);

    if (n <= 0 || !(*buf = malloc((size_t)n))) {
        return -1;
    }
    n = xc_domain_hvm_getcontext(xch, domid, *buf, (uint32_t)n);
    if (n <= 0) {
        free(*buf);
        return -1;
    }
    *len = (uint32_t)n;
    return 0;
}

/* The record of @type/@inst in @buf, or NULL. */
static const struct hvm_save_descriptor *find_rec(const uint8_t *buf,
                                                  uint32_t len, uint16_t type,
                                                  uint16_t inst)
{
    uint32_t off = 0;

    while (off + sizeof(struct hvm_save_descriptor) <= len) {
        const struct hvm_save_descriptor *d = (const void *)(buf + off);

        if (d->typecode == type && d->instance == inst) {
            return d;
        }
        if (d->typecode == HVM_SAVE_CODE(END)) {
            break;
        }
        off += sizeof(*d) + d->length;
    }
    return NULL;
}

static const char *rec_name(unsigned type)
{
    static const char *names[] = {
        [1] = "HEADER", [2] = "CPU", [3] = "PIC", [4] = "IOAPIC",
        [5] = "LAPIC", [6] = "LAPIC_REGS", [7] = "PCI_IRQ", [8] = "ISA_IRQ",
        [9] = "PCI_LINK", [10] = "PIT", [11] = "RTC", [12] = "HPET",
        [13] = "PMTIMER", [14] = "MTRR", [15] = "VIRIDIAN_DOMAIN",
        [16] = "CPU_XSAVE", [17] = "VIRIDIAN_VCPU", [18] = "VMCE_VCPU",
        [19] = "TSC_ADJUST", [20] = "CPU_MSR",
    };

    return type < sizeof(names) / sizeof(names[0]) && names[type] ?
           names[type] : "?";
}

/* Records whose contents are the time they are read at. */
static bool timed(unsigned type)
{
    return type == HVM_SAVE_CODE(PIT) || type == HVM_SAVE_CODE(RTC) ||
           type == HVM_SAVE_CODE(HPET) || type == HVM_SAVE_CODE(PMTIMER);
}

static int ctx_cmp(uint32_t src, uint32_t dst)
{
    uint8_t *a, *b;
    uint32_t la, lb, off = 0;
    unsigned recs = 0, equal = 0, moved = 0, bad = 0;

    if (get_ctx(src, &a, &la)) {
        return die("xc_domain_hvm_getcontext (source)");
    }
    if (get_ctx(dst, &b, &lb)) {
        return die("xc_domain_hvm_getcontext (destination)");
    }
    printf("# HVM context: source %u bytes, destination %u bytes\n", la, lb);
    while (off + sizeof(struct hvm_save_descriptor) <= la) {
        const struct hvm_save_descriptor *d = (const void *)(a + off);
        const struct hvm_save_descriptor *e;
        const uint8_t *pa = (const uint8_t *)(d + 1), *pb;
        const char *what;

        if (d->typecode == HVM_SAVE_CODE(END)) {
            break;
        }
        recs++;
        e = find_rec(b, lb, d->typecode, d->instance);
        pb = e ? (const uint8_t *)(e + 1) : NULL;
        if (!e || e->length != d->length) {
            what = e ? "differs in length" : "missing on the destination";
            bad++;
        } else if (!memcmp(pa, pb, d->length)) {
            what = "equal";
            equal++;
        } else if (d->typecode == HVM_SAVE_CODE(CPU) &&
                   d->length == sizeof(struct hvm_hw_cpu)) {
            /* The TSC is read at the time of the read; the rest travels. */
            struct hvm_hw_cpu x, y;

            memcpy(&x, pa, sizeof(x));
            memcpy(&y, pb, sizeof(y));
            x.tsc = y.tsc = 0;
            if (!memcmp(&x, &y, sizeof(x))) {
                what = "equal but for the TSC (read later)";
                equal++;
            } else {
                what = "DIFFERS";
                bad++;
            }
        } else if (timed(d->typecode)) {
            what = "differs (a timer read at the time of the read)";
            moved++;
        } else {
            what = "DIFFERS";
            bad++;
        }
        printf("# record %u %s instance %u, %u bytes: %s\n", d->typecode,
               rec_name(d->typecode), d->instance, d->length, what);
        if (!strcmp(what, "DIFFERS")) {
            for (uint32_t i = 0; i < d->length; i++) {
                if (pa[i] != pb[i]) {
                    printf("#   first difference at byte %u: %#x -> %#x\n",
                           i, pa[i], pb[i]);
                    break;
                }
            }
        }
        off += sizeof(*d) + d->length;
    }
    printf("%u records: %u equal, %u timers moved on, %u differ\n", recs,
           equal, moved, bad);
    free(a);
    free(b);
    return bad || !recs ? 1 : 0;
}

/* ---- HVM parameters and the empty shell -------------------------------------- */

/* libxc's list (xg_sr_save_x86_hvm.c), as migration/params.c has it. */
static const uint32_t mig_params[] = {
    HVM_PARAM_STORE_PFN, HVM_PARAM_IOREQ_PFN, HVM_PARAM_BUFIOREQ_PFN,
    HVM_PARAM_PAGING_RING_PFN, HVM_PARAM_MONITOR_RING_PFN,
    HVM_PARAM_SHARING_RING_PFN, HVM_PARAM_VM86_TSS_SIZED,
    HVM_PARAM_CONSOLE_PFN, HVM_PARAM_ACPI_IOPORTS_LOCATION,
    HVM_PARAM_VIRIDIAN, HVM_PARAM_IDENT_PT, HVM_PARAM_VM_GENERATION_ID_ADDR,
    HVM_PARAM_IOREQ_SERVER_PFN, HVM_PARAM_NR_IOREQ_SERVER_PAGES,
    HVM_PARAM_X87_FIP_WIDTH, HVM_PARAM_MCA_CAP,
};

static int param_cmp(uint32_t src, uint32_t dst)
{
    unsigned same = 0, bad = 0;

    for (uint32_t i = 0; i < HVM_NR_PARAMS; i++) {
        uint64_t a = 0, b = 0;
        int ra = xc_hvm_param_get(xch, src, i, &a);
        int rb = xc_hvm_param_get(xch, dst, i, &b);
        bool carried = false;

        for (size_t k = 0; k < sizeof(mig_params) / sizeof(mig_params[0]); k++) {
            carried |= mig_params[k] == i;
        }
        if (ra || rb) {
            continue;                   /* deprecated or guest-only ones */
        }
        if (a == b) {
            same += carried;
            continue;
        }
        printf("# HVM parameter %u%s: %#" PRIx64 " -> %#" PRIx64 "\n", i,
               carried ? " (carried)" : "", a, b);
        bad += carried;
    }
    printf("%u carried parameters equal, %u differ\n", same, bad);
    return bad ? 1 : 0;
}

static void probe_ctx(const char *who, uint32_t domid)
{
    int bound = xc_domain_hvm_getcontext(xch, domid, NULL, 0);
    uint8_t *buf;
    uint32_t len, off = 0;
    char recs[1024] = "";
    size_t n = 0;

    if (get_ctx(domid, &buf, &len)) {
        printf("# %s: getcontext: bound %d, read: %s\n", who, bound,
               strerror(errno));
        return;
    }
    while (off + sizeof(struct hvm_save_descriptor) <= len) {
        const struct hvm_save_descriptor *d = (const void *)(buf + off);

        n += (size_t)snprintf(recs + n, n < sizeof(recs) ? sizeof(recs) - n : 0,
                              " %s/%u:%u", rec_name(d->typecode), d->instance,
                              d->length);
        if (d->typecode == HVM_SAVE_CODE(END) || n >= sizeof(recs)) {
            break;
        }
        off += sizeof(*d) + d->length;
    }
    printf("# %s: getcontext bound %d bytes, %u read:%s\n", who, bound, len,
           recs);
    free(buf);
}

static int probe(uint32_t src)
{
    uint32_t domid;
    xc_dominfo_t info;
    unsigned int mb = 0;
    uint64_t v;
    char line[1024];
    size_t n = 0;
    int rc;

    probe_ctx("source", src);
    if (shell_build(src, &domid, true)) {
        return 1;
    }
    for (uint32_t i = 0; i < HVM_NR_PARAMS; i++) {
        if (xc_hvm_param_get(xch, domid, i, &v)) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, " %u:E%d", i,
                                  errno);
        } else if (v) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, " %u=%#" PRIx64,
                                  i, v);
        }
        if (n >= sizeof(line) - 32) {
            break;
        }
    }
    printf("# shell: nonzero HVM parameters (E: get fails, errno):%s\n", line);
    if (!getinfo(domid, &info)) {
        printf("# shell: nr_pages %lu, online vCPUs %u, max_vcpu_id %u, "
               "paused %u\n", info.nr_pages, info.nr_online_vcpus,
               info.max_vcpu_id, info.paused);
    }
    probe_ctx("shell", domid);
    /* The set-once parameters: a second, different value. */
    rc = xc_hvm_param_set(xch, domid, HVM_PARAM_IOREQ_SERVER_PFN, 0xfeff0);
    printf("# shell: IOREQ_SERVER_PFN := 0xfeff0: %d", rc);
    rc = xc_hvm_param_set(xch, domid, HVM_PARAM_IOREQ_SERVER_PFN, 0xfeff1);
    printf(", then := 0xfeff1: %d (%s)", rc, rc ? strerror(errno) : "ok");
    rc = xc_hvm_param_set(xch, domid, HVM_PARAM_IOREQ_SERVER_PFN, 0xfeff0);
    printf(", then the same again: %d\n", rc);
    rc = xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
                           NULL, 0);
    printf("# shell: log-dirty ENABLE: %d (%s)", rc, rc ? strerror(errno) : "ok");
    rc = xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0);
    printf(", OFF: %d", rc);
    rc = xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION,
                           &mb, 0);
    printf(", GET_ALLOCATION: %d, %u MiB\n", rc, mb);
    return shell_destroy(domid);
}

int main(int argc, char **argv)
{
    int ret = 2;

    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        return die("xc_interface_open");
    }
    if (argc == 3 && !strcmp(argv[1], "create")) {
        ret = shell_create((uint32_t)atoi(argv[2]));
    } else if (argc == 3 && !strcmp(argv[1], "destroy")) {
        ret = shell_destroy((uint32_t)atoi(argv[2]));
    } else if (argc == 3 && !strcmp(argv[1], "unpause")) {
        ret = xc_domain_unpause(xch, (uint32_t)atoi(argv[2])) ?
              die("xc_domain_unpause") : 0;
    } else if (argc == 3 && !strcmp(argv[1], "info")) {
        ret = shell_info((uint32_t)atoi(argv[2]));
    } else if (argc == 6 && !strcmp(argv[1], "scribble")) {
        ret = scribble((uint32_t)atoi(argv[2]), strtoull(argv[3], NULL, 0),
                       (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]));
    } else if (argc == 4 && !strcmp(argv[1], "ctxcmp")) {
        ret = ctx_cmp((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]));
    } else if (argc == 4 && !strcmp(argv[1], "paramcmp")) {
        ret = param_cmp((uint32_t)atoi(argv[2]), (uint32_t)atoi(argv[3]));
    } else if (argc == 3 && !strcmp(argv[1], "probe")) {
        ret = probe((uint32_t)atoi(argv[2]));
    } else {
        fprintf(stderr, "usage: xr-shell create SRC | destroy DOMID | info "
                "DOMID | unpause DOMID | scribble DOMID GFN N RATE | ctxcmp SRC DST | paramcmp SRC "
                "DST | probe SRC\n");
    }
    xc_interface_close(xch);
    return ret;
}
