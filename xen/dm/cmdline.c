/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cmdline.c - the command line libxl passes to a qemu-xen device model.
 *
 * What libxl 4.17 passes (libxl__build_device_model_args_new) for an HVM
 * guest, in order:
 *
 *   -xen-domid D -no-shutdown
 *   -chardev socket,id=libxl-cmd,path=RUN/qmp-libxl-D,server=on,wait=off
 *      (dm_restrict: socket,id=libxl-cmd,fd=N,server=on,wait=off and -S)
 *   -mon chardev=libxl-cmd,mode=control
 *   -chardev socket,id=libxenstat-cmd,path=RUN/qmp-libxenstat-D,server=on,
 *      wait=off   -mon chardev=libxenstat-cmd,mode=control
 *   [-chardev pty|socket,id=libxl-channelN,...]      (channels)
 *   -nodefaults -no-user-config -name NAME
 *   -vnc ...|none -display none [-display sdl] [-k MAP]
 *   [-kernel/-initrd/-append] [-device lsi53c895a] [-serial S]...
 *   [-nographic] [-spice ...] -device VGA,vgamem_mb=M (or cirrus/qxl)
 *   [-boot order=X] [-usb -usbdevice X | -device *-usb-*] [-soundhw|-device]
 *   [-no-acpi] [-smp N[,maxcpus=M]] [-device NIC -netdev tap,... | -net none]
 *   [-xen-domid-restrict -chroot RUN/qemu-root-D]   (dm_restrict)
 *   [-incoming fd:N]                                 (restore, migration)
 *   [device_model_args...]
 *   -machine xenfv|pc,accel=xen,suppress-vmdesc=on[,max-ram-below-4g=B]
 *      [,igd-passthru=on]  [device_model_args_hvm...]
 *   -m MIB  [-device ahci] [-drive ... -device ...]... [-runas USER]
 *
 * and XEN_DOMAIN_ID=D in the environment.  The QEMU 9 era libxl adds a
 * probe (-S -no-user-config -nodefaults -nographic -machine none,accel=xen
 * and one fd= monitor) and "-run-with chroot=" for "-chroot"; both are
 * understood here.  Nothing of libxl or QEMU is copied: this is written from
 * the shape of those command lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/size.h"
#include "xen/dm/cmdline.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define DM_PAGE_SIZE UINT64_C(4096)

/* ---- parse state ------------------------------------------------------ */

/* A "-chardev" (or the chardev a "-qmp" shortcut stands for). */
typedef struct Chardev {
    char *id;
    char *backend;              /* "socket", "pty", "spicevmc", ... */
    char *raw;                  /* the argument as given, for the report */
    const char *option;         /* "-chardev" or "-qmp" */
    char *path;                 /* socket: path= */
    char *host;                 /* socket: host= (TCP) */
    int fd;                     /* socket: fd=, or -1 */
    bool server, wait;
    bool used;                  /* referenced by a monitor */
} Chardev;

/* A "-mon", joined with its chardev once all options are read. */
typedef struct MonRef {
    char *chardev;
    bool pretty;
} MonRef;

typedef struct Parse {
    DMConfig *cfg;
    char *err;
    size_t errlen;
    Chardev *chardevs;
    size_t nr_chardevs;
    MonRef *mons;
    size_t nr_mons;
    unsigned int nr_qmp;
    bool machine_type_seen;
    bool accel_xen;
    bool m_seen;
} Parse;

static int fail(Parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(Parse *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err && p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int oom(Parse *p)
{
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "out of memory while reading the "
                 "command line");
    return -ENOMEM;
}

/*
 * @arr (of @n elements of @size bytes) grown by one zeroed element; NULL
 * when out of memory, @arr then untouched.
 */
static void *grow(void *arr, size_t n, size_t size)
{
    char *a = realloc(arr, (n + 1) * size);

    if (a)
        memset(a + n * size, 0, size);
    return a;
}

static int set_str(Parse *p, char **dst, const char *src)
{
    char *s = strdup(src);

    if (!s)
        return oom(p);
    free(*dst);
    *dst = s;
    return 0;
}

static int add_ignored(Parse *p, const char *option, const char *arg)
{
    DMConfig *cfg = p->cfg;
    DMIgnored *ig = grow(cfg->ignored, cfg->nr_ignored, sizeof(*ig));

    if (!ig)
        return oom(p);
    cfg->ignored = ig;
    ig = &cfg->ignored[cfg->nr_ignored++];
    ig->option = strdup(option);
    ig->arg = arg ? strdup(arg) : NULL;
    if (!ig->option || (arg && !ig->arg))
        return oom(p);
    return 0;
}

/* ---- QEMU option lists: "a=b,c,d=e,,f" -------------------------------- */

typedef struct KV {
    char *key;
    char *val;                  /* NULL for a bare "key" */
} KV;

typedef struct KVList {
    KV *v;
    size_t n;
} KVList;

static void kv_free(KVList *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].val);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/*
 * Split @s at every comma that is not doubled (",," is a literal comma).
 * A first item without "=" is the value of @implied when @implied is not
 * NULL ("socket,id=x" is backend=socket); other bare items have no value.
 */
static int kv_parse(Parse *p, const char *opt, const char *s,
                    const char *implied, KVList *out)
{
    size_t len = strlen(s);
    char *tok = malloc(len + 1);
    int rc = 0;

    out->v = NULL;
    out->n = 0;
    if (!tok)
        return oom(p);
    for (size_t i = 0; ; ) {
        size_t t = 0;
        char *eq;
        KV *kv;

        while (i < len) {
            if (s[i] == ',') {
                if (s[i + 1] != ',')
                    break;
                i++;
            }
            tok[t++] = s[i++];
        }
        tok[t] = '\0';
        if (t == 0) {
            rc = fail(p, "%s %s: empty item in the option list", opt, s);
            break;
        }
        kv = grow(out->v, out->n, sizeof(*kv));
        if (!kv) {
            rc = oom(p);
            break;
        }
        out->v = kv;
        kv = &out->v[out->n++];
        eq = strchr(tok, '=');
        if (eq) {
            *eq = '\0';
            kv->key = strdup(tok);
            kv->val = strdup(eq + 1);
        } else if (out->n == 1 && implied) {
            kv->key = strdup(implied);
            kv->val = strdup(tok);
        } else {
            kv->key = strdup(tok);
            kv->val = NULL;
        }
        if (!kv->key || ((eq || (out->n == 1 && implied)) && !kv->val)) {
            rc = oom(p);
            break;
        }
        if (i >= len)
            break;
        i++;                    /* the separating comma */
        if (i >= len) {
            rc = fail(p, "%s %s: empty item in the option list", opt, s);
            break;
        }
    }
    free(tok);
    if (rc)
        kv_free(out);
    return rc;
}

/* "on"/"off" and the spellings QEMU accepts; a bare key means on. */
static int parse_bool(Parse *p, const char *opt, const KV *kv, bool *out)
{
    const char *v = kv->val;

    if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
        *out = false;
        return 0;
    }
    return fail(p, "%s: %s=%s is not a boolean; write %s=on or %s=off",
                opt, kv->key, v, kv->key, kv->key);
}

/* ---- numbers and sizes ----------------------------------------------- */

/* A decimal unsigned integer, nothing else. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned int d;

        if (*s < '0' || *s > '9')
            return false;
        d = (unsigned int)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_fd(const char *s, int *fd)
{
    uint64_t v;

    if (!parse_u64(s, &v) || v > INT_MAX)
        return false;
    *fd = (int)v;
    return true;
}

/*
 * A size as QEMU writes it: decimal (or 0x hex) followed by an optional
 * B/K/M/G/T/P/E (binary multiples, either case).  Without a suffix the
 * value is in @unit bytes.  util/size.h has the rules, shared with the
 * hotplug protocol and the simulator's toolstack.
 */
static bool parse_size(const char *s, uint64_t unit, uint64_t *out)
{
    return xr_parse_size(s, unit, XR_SIZE_HEX | XR_SIZE_SUFFIX, out) == 0;
}

/* A guest domain id: 1 .. DOMID_FIRST_RESERVED - 1. */
static bool parse_domid(const char *s, uint32_t *domid)
{
    uint64_t v;

    if (!parse_u64(s, &v) || v == 0 || v >= DM_DOMID_FIRST_RESERVED)
        return false;
    *domid = (uint32_t)v;
    return true;
}

/* ---- option handlers -------------------------------------------------- */

typedef int (*Handler)(Parse *p, const char *opt, const char *arg);

static int opt_xen_domid(Parse *p, const char *opt, const char *arg)
{
    uint32_t domid;

    if (!parse_domid(arg, &domid))
        return fail(p, "%s %s: not a guest domain id (1 to %u)", opt, arg,
                    DM_DOMID_FIRST_RESERVED - 1);
    if (p->cfg->has_domid && p->cfg->domid != domid)
        return fail(p, "%s %s: the domain was already given as %" PRIu32
                    "; pass -xen-domid once", opt, arg, p->cfg->domid);
    p->cfg->has_domid = true;
    p->cfg->domid = domid;
    return 0;
}

static int opt_name(Parse *p, const char *opt, const char *arg)
{
    KVList l;
    int rc = kv_parse(p, opt, arg, "guest", &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];
        bool b;

        if (!strcmp(kv->key, "guest") && kv->val)
            rc = set_str(p, &p->cfg->name, kv->val);
        else if (!strcmp(kv->key, "process") && kv->val)
            ;                   /* the process title: not changed */
        else if (!strcmp(kv->key, "debug-threads"))
            rc = parse_bool(p, opt, kv, &b);
        else
            rc = fail(p, "%s %s: unknown item '%s' (QEMU's -name takes "
                      "guest=, process=, debug-threads=)", opt, arg, kv->key);
    }
    kv_free(&l);
    return rc;
}

static int machine_type(Parse *p, const char *opt, const char *type)
{
    DMConfig *cfg = p->cfg;

    if (!strcmp(type, "xenfv") || !strncmp(type, "xenfv-", 6)) {
        cfg->machine = DM_MACHINE_XENFV;
    } else if (!strcmp(type, "pc") || !strncmp(type, "pc-i440fx-", 10)) {
        cfg->machine = DM_MACHINE_PC;
    } else if (!strcmp(type, "none")) {
        cfg->machine = DM_MACHINE_NONE;
    } else if (!strcmp(type, "xenpv")) {
        return fail(p, "%s xenpv: xenram is the device model of HVM guests "
                    "only; PV and PVH guests need no device model (or QEMU "
                    "as their qdisk backend)", opt);
    } else {
        return fail(p, "%s %s: unsupported machine type; xenram serves "
                    "-machine xenfv, pc,accel=xen and none,accel=xen (what "
                    "libxl passes)", opt, type);
    }
    p->machine_type_seen = true;
    return 0;
}

static int accel_list(Parse *p, const char *opt, const char *accel)
{
    /* QEMU takes a ':'-separated list of accelerators to try in turn. */
    if (strcmp(accel, "xen"))
        return fail(p, "%s: accel=%s is not supported; xenram is a Xen "
                    "device model and runs with accel=xen only", opt, accel);
    p->accel_xen = true;
    return 0;
}

/*
 * max-ram-below-4g: QEMU on Xen keeps min(value, HVM_BELOW_4G_RAM_END), and
 * 0 means the default; more than 4 GiB is an error.  We also insist on a
 * whole number of pages, since the value ends up as a page frame boundary.
 */
static int max_ram_below_4g(Parse *p, const char *opt, const char *val)
{
    uint64_t v;

    if (!parse_size(val, 1, &v))
        return fail(p, "%s: max-ram-below-4g=%s is not a size (bytes, or "
                    "with a K/M/G suffix)", opt, val);
    if (v > 4 * GiB)
        return fail(p, "%s: max-ram-below-4g=%s is above 4 GiB; RAM below "
                    "4 GiB cannot exceed 4 GiB", opt, val);
    if (v % DM_PAGE_SIZE)
        return fail(p, "%s: max-ram-below-4g=%s is not a multiple of the "
                    "4 KiB page size", opt, val);
    if (v == 0 || v > DM_HVM_BELOW_4G_RAM_END)
        v = DM_HVM_BELOW_4G_RAM_END;
    p->cfg->max_ram_below_4g = v;
    return 0;
}

/* Machine properties QEMU has that do not concern guest RAM. */
static const char *const machine_props_ignored[] = {
    "usb", "vmport", "dump-guest-core", "mem-merge", "graphics", "smm",
    "acpi", "hpet", "pit", "sata", "kernel-irqchip", "i8042",
    NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

static int opt_machine(Parse *p, const char *opt, const char *arg)
{
    KVList l;
    int rc = kv_parse(p, opt, arg, "type", &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];
        bool b;

        if (!kv->val && (!strcmp(kv->key, "type") ||
                         !strcmp(kv->key, "accel") ||
                         !strcmp(kv->key, "max-ram-below-4g"))) {
            rc = fail(p, "%s %s: '%s' needs a value", opt, arg, kv->key);
        } else if (!strcmp(kv->key, "type")) {
            rc = machine_type(p, opt, kv->val);
        } else if (!strcmp(kv->key, "accel")) {
            rc = accel_list(p, opt, kv->val);
        } else if (!strcmp(kv->key, "max-ram-below-4g")) {
            rc = max_ram_below_4g(p, opt, kv->val);
        } else if (!strcmp(kv->key, "suppress-vmdesc")) {
            /* xenram never sends a vmdesc: honoured whatever the value. */
            rc = parse_bool(p, opt, kv, &b);
        } else if (!strcmp(kv->key, "igd-passthru")) {
            rc = parse_bool(p, opt, kv, &b);
            if (!rc && b)
                rc = fail(p, "%s: igd-passthru=on is not supported: graphics "
                          "passthrough needs QEMU's device emulation; remove "
                          "gfx_passthru from the guest config", opt);
        } else if (in_list(machine_props_ignored, kv->key)) {
            char name[64];

            snprintf(name, sizeof(name), "%s %s", opt, kv->key);
            rc = add_ignored(p, name, kv->val);
        } else {
            rc = fail(p, "%s %s: unknown machine property '%s'; xenram "
                      "understands type, accel, max-ram-below-4g, "
                      "suppress-vmdesc", opt, arg, kv->key);
        }
    }
    kv_free(&l);
    return rc;
}

static int opt_accel(Parse *p, const char *opt, const char *arg)
{
    KVList l;
    int rc = kv_parse(p, opt, arg, "accel", &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];
        bool b;

        if (!strcmp(kv->key, "accel") && kv->val) {
            rc = accel_list(p, opt, kv->val);
        } else if (!strcmp(kv->key, "igd-passthru")) {
            rc = parse_bool(p, opt, kv, &b);
            if (!rc && b)
                rc = fail(p, "%s: igd-passthru=on is not supported: graphics "
                          "passthrough needs QEMU's device emulation", opt);
        } else {
            rc = fail(p, "%s %s: unknown accelerator property '%s'", opt,
                      arg, kv->key);
        }
    }
    kv_free(&l);
    return rc;
}

/* -m [size=]N[,slots=S][,maxmem=M]: N is in MiB unless it has a suffix. */
static int opt_m(Parse *p, const char *opt, const char *arg)
{
    DMConfig *cfg = p->cfg;
    uint64_t size = 0, maxmem = 0, slots = 0;
    bool have_size = false;
    KVList l;
    int rc = kv_parse(p, opt, arg, "size", &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];

        if (!kv->val) {
            rc = fail(p, "%s %s: '%s' needs a value", opt, arg, kv->key);
        } else if (!strcmp(kv->key, "size")) {
            if (!parse_size(kv->val, MiB, &size) || size == 0)
                rc = fail(p, "%s %s: '%s' is not a memory size; write MiB "
                          "(512) or a size with a suffix (512M, 4G)", opt,
                          arg, kv->val);
            else if (size % MiB)
                rc = fail(p, "%s %s: the size must be a whole number of MiB",
                          opt, arg);
            have_size = true;
        } else if (!strcmp(kv->key, "maxmem")) {
            /* QEMU reads maxmem= in bytes unless suffixed. */
            if (!parse_size(kv->val, 1, &maxmem))
                rc = fail(p, "%s %s: maxmem=%s is not a size", opt, arg,
                          kv->val);
            else if (maxmem % MiB)
                rc = fail(p, "%s %s: maxmem=%s is not a whole number of MiB "
                          "(without a suffix it counts bytes: write %sM)",
                          opt, arg, kv->val, kv->val);
        } else if (!strcmp(kv->key, "slots")) {
            if (!parse_u64(kv->val, &slots) || slots > 256)
                rc = fail(p, "%s %s: slots=%s is not a number of slots "
                          "(0 to 256)", opt, arg, kv->val);
        } else {
            rc = fail(p, "%s %s: unknown item '%s' (-m takes size=, slots=, "
                      "maxmem=)", opt, arg, kv->key);
        }
    }
    kv_free(&l);
    if (rc)
        return rc;
    if (!have_size)
        return fail(p, "%s %s: no size given; libxl passes -m <MiB>", opt,
                    arg);
    if (size > DM_MAX_RAM_MIB * MiB)
        return fail(p, "%s %s: more RAM than the %llu MiB (16 TiB) a Xen "
                    "4.17 x86 host can address", opt, arg,
                    (unsigned long long)DM_MAX_RAM_MIB);
    if (maxmem > DM_MAX_RAM_MIB * MiB)
        return fail(p, "%s %s: maxmem is more than the %llu MiB (16 TiB) a "
                    "Xen 4.17 x86 host can address", opt, arg,
                    (unsigned long long)DM_MAX_RAM_MIB);
    if (maxmem && maxmem < size)
        return fail(p, "%s %s: maxmem is smaller than the RAM size", opt,
                    arg);
    cfg->ram_mib = size / MiB;
    cfg->maxmem_mib = maxmem / MiB;
    cfg->ram_slots = (unsigned int)slots;
    p->m_seen = true;
    return 0;
}

static int opt_S(Parse *p, const char *opt, const char *arg)
{
    (void)opt, (void)arg;
    p->cfg->start_paused = true;
    return 0;
}

/*
 * fd:N is libxl's device-state restore (xl restore, xl migrate); tcp:,
 * unix: and defer receive a guest through xenram's own migration engine.
 */
static int opt_incoming(Parse *p, const char *opt, const char *arg)
{
    int fd;

    if (!strncmp(arg, "fd:", 3)) {
        if (!parse_fd(arg + 3, &fd))
            return fail(p, "%s %s: not a file descriptor number", opt, arg);
        p->cfg->incoming_fd = fd;
        return 0;
    }
    if (!strcmp(arg, "defer")) {
        p->cfg->incoming_defer = true;
        return 0;
    }
    if ((!strncmp(arg, "tcp:", 4) && strchr(arg + 4, ':')) ||
        (!strncmp(arg, "unix:", 5) && arg[5])) {
        if (strlen(arg) >= sizeof(p->cfg->incoming_uri))
            return fail(p, "%s: address too long", opt);
        snprintf(p->cfg->incoming_uri, sizeof(p->cfg->incoming_uri), "%s",
                 arg);
        return 0;
    }
    return fail(p, "%s %s: xenram supports -incoming fd:N (libxl's "
                "restore), tcp:HOST:PORT, unix:PATH or defer", opt, arg);
}

static int opt_flag(Parse *p, const char *opt, const char *arg)
{
    DMConfig *cfg = p->cfg;

    (void)arg;
    if (!strcmp(opt, "-xen-domid-restrict"))
        cfg->domid_restrict = true;
    else if (!strcmp(opt, "-xen-attach"))
        cfg->xen_attach = true;
    else if (!strcmp(opt, "-no-shutdown"))
        cfg->no_shutdown = true;
    else if (!strcmp(opt, "-nodefaults"))
        cfg->nodefaults = true;
    else if (!strcmp(opt, "-no-user-config"))
        cfg->no_user_config = true;
    else if (!strcmp(opt, "-no-modified-memory"))
        cfg->no_modified_memory = true;
    return 0;
}

static int set_runas(Parse *p, const char *opt, const char *arg)
{
    DMConfig *cfg = p->cfg;
    const char *colon = strchr(arg, ':');

    if (!*arg)
        return fail(p, "%s: empty user; give a user name or uid:gid", opt);
    cfg->runas_numeric = false;
    if (colon) {
        char uid[24];
        uint64_t u, g;
        size_t n = (size_t)(colon - arg);

        if (n >= sizeof(uid))
            return fail(p, "%s %s: not a uid:gid pair", opt, arg);
        memcpy(uid, arg, n);
        uid[n] = '\0';
        if (!parse_u64(uid, &u) || !parse_u64(colon + 1, &g) ||
            u >= UINT32_MAX || g >= UINT32_MAX)
            return fail(p, "%s %s: not a uid:gid pair of numbers", opt, arg);
        cfg->runas_numeric = true;
        cfg->runas_uid = (uint32_t)u;
        cfg->runas_gid = (uint32_t)g;
    }
    return set_str(p, &cfg->runas, arg);
}

static int opt_runas(Parse *p, const char *opt, const char *arg)
{
    return set_runas(p, opt, arg);
}

static int set_chroot(Parse *p, const char *opt, const char *arg)
{
    if (arg[0] != '/')
        return fail(p, "%s %s: the chroot directory must be an absolute "
                    "path", opt, arg);
    return set_str(p, &p->cfg->chroot_dir, arg);
}

static int opt_chroot(Parse *p, const char *opt, const char *arg)
{
    return set_chroot(p, opt, arg);
}

/* -run-with chroot=DIR,user=USER,async-teardown=on|off (QEMU 9). */
static int opt_run_with(Parse *p, const char *opt, const char *arg)
{
    KVList l;
    int rc = kv_parse(p, opt, arg, NULL, &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];
        bool b;

        if (!strcmp(kv->key, "chroot") && kv->val)
            rc = set_chroot(p, opt, kv->val);
        else if (!strcmp(kv->key, "user") && kv->val)
            rc = set_runas(p, opt, kv->val);
        else if (!strcmp(kv->key, "async-teardown"))
            rc = parse_bool(p, opt, kv, &b);
        else
            rc = fail(p, "%s %s: unknown item '%s' (xenram takes chroot= and "
                      "user=)", opt, arg, kv->key);
    }
    kv_free(&l);
    return rc;
}

/* -sandbox on|off[,obsolete=...,...]: recorded for the caller. */
static int opt_sandbox(Parse *p, const char *opt, const char *arg)
{
    KVList l;
    bool on = false;
    int rc = kv_parse(p, opt, arg, "enable", &l);

    for (size_t i = 0; !rc && i < l.n; i++)
        if (!strcmp(l.v[i].key, "enable"))
            rc = parse_bool(p, opt, &l.v[i], &on);
    kv_free(&l);
    if (rc)
        return rc;
    p->cfg->sandbox_on = on;
    return set_str(p, &p->cfg->sandbox, arg);
}

static Chardev *find_chardev(Parse *p, const char *id)
{
    for (size_t i = 0; i < p->nr_chardevs; i++)
        if (!strcmp(p->chardevs[i].id, id))
            return &p->chardevs[i];
    return NULL;
}

/* Socket chardev items that do not change what a QMP socket is. */
static const char *const socket_props_ignored[] = {
    "nodelay", "telnet", "tn3270", "reconnect", "logfile", "logappend",
    "mux", "abstract", "tight", "websocket", "ipv4", "ipv6", "to", NULL,
};

static int chardev_socket(Parse *p, const char *opt, const char *arg,
                          const KVList *l, Chardev *cd)
{
    for (size_t i = 0; i < l->n; i++) {
        const KV *kv = &l->v[i];
        int rc = 0;

        if (!strcmp(kv->key, "backend") || !strcmp(kv->key, "id"))
            continue;
        if (!strcmp(kv->key, "path") && kv->val) {
            rc = set_str(p, &cd->path, kv->val);
        } else if (!strcmp(kv->key, "fd") && kv->val) {
            if (!parse_fd(kv->val, &cd->fd))
                rc = fail(p, "%s %s: fd=%s is not a file descriptor number",
                          opt, arg, kv->val);
        } else if (!strcmp(kv->key, "host") && kv->val) {
            rc = set_str(p, &cd->host, kv->val);
        } else if (!strcmp(kv->key, "port") && kv->val) {
            ;                   /* TCP: only host= matters to us */
        } else if (!strcmp(kv->key, "server")) {
            rc = parse_bool(p, opt, kv, &cd->server);
        } else if (!strcmp(kv->key, "wait")) {
            rc = parse_bool(p, opt, kv, &cd->wait);
        } else if (!strcmp(kv->key, "noserver") && !kv->val) {
            cd->server = false;         /* old short-form booleans */
        } else if (!strcmp(kv->key, "nowait") && !kv->val) {
            cd->wait = false;
        } else if (!in_list(socket_props_ignored, kv->key)) {
            rc = fail(p, "%s %s: unknown socket item '%s'", opt, arg,
                      kv->key);
        }
        if (rc)
            return rc;
    }
    if (cd->path && cd->fd >= 0)
        return fail(p, "%s %s: give either path= or fd=, not both", opt, arg);
    return 0;
}

/* Record a chardev; @arg is in -chardev syntax ("backend,id=...,..."). */
static int add_chardev(Parse *p, const char *opt, const char *arg,
                       const char *raw, const char *forced_id)
{
    KVList l;
    const char *backend = NULL, *id = forced_id;
    Chardev *cd;
    int rc = kv_parse(p, opt, arg, "backend", &l);

    if (rc)
        return rc;
    for (size_t i = 0; i < l.n; i++) {
        if (!strcmp(l.v[i].key, "backend"))
            backend = l.v[i].val;
        else if (!strcmp(l.v[i].key, "id") && !forced_id)
            id = l.v[i].val;
    }
    if (!backend) {
        rc = fail(p, "%s %s: no chardev backend (socket, pty, ...) given",
                  opt, raw);
    } else if (!id || !*id) {
        rc = fail(p, "%s %s: the chardev has no id=", opt, raw);
    } else if (find_chardev(p, id)) {
        rc = fail(p, "%s %s: a chardev with id '%s' already exists", opt,
                  raw, id);
    }
    if (rc)
        goto out;
    cd = grow(p->chardevs, p->nr_chardevs, sizeof(*cd));
    if (!cd) {
        rc = oom(p);
        goto out;
    }
    p->chardevs = cd;
    cd = &p->chardevs[p->nr_chardevs++];
    cd->fd = -1;
    cd->wait = true;            /* QEMU's default */
    cd->option = forced_id ? "-qmp" : "-chardev";
    cd->id = strdup(id);
    cd->backend = strdup(backend);
    cd->raw = strdup(raw);
    if (!cd->id || !cd->backend || !cd->raw) {
        rc = oom(p);
        goto out;
    }
    if (!strcmp(backend, "socket"))
        rc = chardev_socket(p, opt, raw, &l, cd);
out:
    kv_free(&l);
    return rc;
}

static int opt_chardev(Parse *p, const char *opt, const char *arg)
{
    return add_chardev(p, opt, arg, arg, NULL);
}

static int opt_mon(Parse *p, const char *opt, const char *arg)
{
    const char *chardev = NULL, *mode = "readline";
    bool pretty = false;
    MonRef *m;
    KVList l;
    int rc = kv_parse(p, opt, arg, NULL, &l);

    for (size_t i = 0; !rc && i < l.n; i++) {
        const KV *kv = &l.v[i];

        if (!strcmp(kv->key, "chardev") && kv->val)
            chardev = kv->val;
        else if (!strcmp(kv->key, "mode") && kv->val)
            mode = kv->val;
        else if (!strcmp(kv->key, "pretty"))
            rc = parse_bool(p, opt, kv, &pretty);
        else if (!strcmp(kv->key, "id") && kv->val)
            ;
        else
            rc = fail(p, "%s %s: unknown item '%s' (-mon takes chardev=, "
                      "mode=, pretty=)", opt, arg, kv->key);
    }
    if (rc)
        goto out;
    if (!chardev) {
        rc = fail(p, "%s %s: no chardev= given", opt, arg);
    } else if (strcmp(mode, "control")) {
        rc = fail(p, "%s %s: only mode=control (QMP) is supported; xenram "
                  "has no human monitor", opt, arg);
    } else {
        for (size_t i = 0; i < p->nr_mons; i++)
            if (!strcmp(p->mons[i].chardev, chardev))
                rc = fail(p, "%s %s: chardev '%s' already has a monitor",
                          opt, arg, chardev);
    }
    if (rc)
        goto out;
    m = grow(p->mons, p->nr_mons, sizeof(*m));
    if (!m) {
        rc = oom(p);
        goto out;
    }
    p->mons = m;
    m = &p->mons[p->nr_mons++];
    m->pretty = pretty;
    if (!(m->chardev = strdup(chardev)))
        rc = oom(p);
out:
    kv_free(&l);
    return rc;
}

/* -qmp unix:PATH[,server][,nowait] (and the on/off spellings). */
static int opt_qmp(Parse *p, const char *opt, const char *arg)
{
    char id[32];
    char *spec;
    MonRef *m;
    int rc;

    if (strncmp(arg, "unix:", 5) || !arg[5] || arg[5] == ',')
        return fail(p, "%s %s: only unix:PATH sockets are supported "
                    "(e.g. -qmp unix:/run/xenram.qmp,server=on,wait=off)",
                    opt, arg);
    snprintf(id, sizeof(id), "compat_monitor%u", p->nr_qmp++);
    if (asprintf(&spec, "socket,path=%s", arg + 5) < 0)
        return oom(p);
    rc = add_chardev(p, opt, spec, arg, id);
    free(spec);
    if (rc)
        return rc;
    m = grow(p->mons, p->nr_mons, sizeof(*m));
    if (!m)
        return oom(p);
    p->mons = m;
    m = &p->mons[p->nr_mons++];
    if (!(m->chardev = strdup(id)))
        return oom(p);
    return 0;
}

/* Devices whose memory xenram would have to provide: ignoring them lies. */
static const char *const memory_devices[] = {
    "pc-dimm", "nvdimm", "virtio-mem", "virtio-mem-pci", "virtio-pmem",
    "virtio-pmem-pci", NULL,
};

static int opt_device(Parse *p, const char *opt, const char *arg)
{
    const char *driver = NULL;
    uint64_t vram = 0;
    KVList l;
    int rc = kv_parse(p, opt, arg, "driver", &l);

    if (rc)
        return rc;
    for (size_t i = 0; i < l.n; i++) {
        const KV *kv = &l.v[i];
        uint64_t mb;

        if (!strcmp(kv->key, "driver"))
            driver = kv->val;
        else if (kv->val && (!strcmp(kv->key, "vgamem_mb") ||
                             !strcmp(kv->key, "vram_size_mb") ||
                             !strcmp(kv->key, "ram_size_mb")) &&
                 parse_u64(kv->val, &mb) && mb <= UINT32_MAX)
            vram += mb;
    }
    if (driver && in_list(memory_devices, driver)) {
        rc = fail(p, "%s %s: memory devices are not supported; xenram adds "
                  "guest RAM at run time through xenstore (see "
                  "docs/cmdline.md)", opt, arg);
    } else if (driver && (!strcmp(driver, "VGA") ||
                          !strcmp(driver, "cirrus-vga") ||
                          !strcmp(driver, "qxl-vga"))) {
        /* libxl subtracts the video RAM from -m: remember how much. */
        p->cfg->vram_mib = vram;
    }
    kv_free(&l);
    return rc ? rc : add_ignored(p, opt, arg);
}

static int opt_object(Parse *p, const char *opt, const char *arg)
{
    const char *type = NULL;
    KVList l;
    int rc = kv_parse(p, opt, arg, "qom-type", &l);

    if (rc)
        return rc;
    for (size_t i = 0; i < l.n; i++)
        if (!strcmp(l.v[i].key, "qom-type"))
            type = l.v[i].val;
    if (type && (!strncmp(type, "filter-", 7) ||
                 !strcmp(type, "colo-compare") || !strcmp(type, "iothread"))) {
        rc = add_ignored(p, opt, arg);   /* COLO's network proxy */
    } else if (type && !strncmp(type, "memory-backend-", 15)) {
        rc = fail(p, "%s %s: guest RAM is populated by Xen and mapped by "
                  "xenram; there is no memory backend to choose", opt, arg);
    } else {
        rc = fail(p, "%s %s: object type '%s' is not supported", opt, arg,
                  type ? type : "(none)");
    }
    kv_free(&l);
    return rc;
}

static int opt_ignore(Parse *p, const char *opt, const char *arg)
{
    return add_ignored(p, opt, arg);
}

static int opt_log_level(Parse *p, const char *opt, const char *arg)
{
    static const DMLogLevel levels[] = {
        DM_LOG_ERROR, DM_LOG_WARN, DM_LOG_INFO, DM_LOG_DEBUG,
    };

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (!strcmp(arg, dm_log_level_name(levels[i]))) {
            p->cfg->log_level = levels[i];
            return 0;
        }
    }
    if (!strcmp(arg, "warning")) {
        p->cfg->log_level = DM_LOG_WARN;
        return 0;
    }
    return fail(p, "-%s %s: unknown log level; use error, warn, info or "
                "debug", opt, arg);
}

static int opt_test_dma(Parse *p, const char *opt, const char *arg)
{
    char *end;
    unsigned long rate;

    errno = 0;
    rate = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || rate == 0 || rate > 1000000)
        return fail(p, "-%s %s: give the pages per second the test device "
                    "writes, 1 to 1000000", opt, arg);
    p->cfg->test_dma_rate = rate;
    return 0;
}

static int opt_help(Parse *p, const char *opt, const char *arg)
{
    (void)opt, (void)arg;
    p->cfg->action = DM_ACTION_HELP;
    return 1;
}

static int opt_version(Parse *p, const char *opt, const char *arg)
{
    (void)opt, (void)arg;
    p->cfg->action = DM_ACTION_VERSION;
    return 1;
}

/* ---- the option table ------------------------------------------------- */

#define ARG     (1u << 0)       /* takes an argument */
#define OWN     (1u << 1)       /* xenram's own: "--opt=value" allowed */

typedef struct Option {
    const char *name;           /* without the leading dash */
    unsigned int flags;
    Handler handler;            /* NULL: refused with @why */
    const char *why;
} Option;

#define REFUSE(n, f, w) { n, f, NULL, w }

static const char why_trad[] =
    "this is a qemu-xen-traditional option; xenram reads qemu-xen's command "
    "line: set device_model_version=\"qemu-xen\" in the guest's xl.cfg";
static const char why_ram[] =
    "guest RAM is populated by Xen and mapped by xenram; there is no host "
    "memory backend to choose";
static const char why_kernel[] =
    "direct kernel boot needs device emulation xenram does not do; remove "
    "kernel=, ramdisk= and cmdline= from the guest's xl.cfg";

static const Option options[] = {
    /* honoured */
    { "xen-domid",          ARG, opt_xen_domid, NULL },
    { "xen-domid-restrict", 0,   opt_flag, NULL },
    { "xen-attach",         0,   opt_flag, NULL },
    { "name",               ARG, opt_name, NULL },
    { "machine",            ARG, opt_machine, NULL },
    { "M",                  ARG, opt_machine, NULL },
    { "accel",              ARG, opt_accel, NULL },
    { "m",                  ARG, opt_m, NULL },
    { "S",                  0,   opt_S, NULL },
    { "incoming",           ARG, opt_incoming, NULL },
    { "no-shutdown",        0,   opt_flag, NULL },
    { "nodefaults",         0,   opt_flag, NULL },
    { "no-user-config",     0,   opt_flag, NULL },
    { "chardev",            ARG, opt_chardev, NULL },
    { "mon",                ARG, opt_mon, NULL },
    { "qmp",                ARG, opt_qmp, NULL },
    { "runas",              ARG, opt_runas, NULL },
    { "chroot",             ARG, opt_chroot, NULL },
    { "run-with",           ARG, opt_run_with, NULL },
    { "sandbox",            ARG, opt_sandbox, NULL },
    /* devices and front-ends xenram does not emulate */
    { "device",             ARG, opt_device, NULL },
    { "object",             ARG, opt_object, NULL },
    { "vnc",                ARG, opt_ignore, NULL },
    { "display",            ARG, opt_ignore, NULL },
    { "sdl",                0,   opt_ignore, NULL },
    { "spice",              ARG, opt_ignore, NULL },
    { "k",                  ARG, opt_ignore, NULL },
    { "nographic",          0,   opt_ignore, NULL },
    { "vga",                ARG, opt_ignore, NULL },
    { "serial",             ARG, opt_ignore, NULL },
    { "parallel",           ARG, opt_ignore, NULL },
    { "monitor",            ARG, opt_ignore, NULL },
    { "drive",              ARG, opt_ignore, NULL },
    { "netdev",             ARG, opt_ignore, NULL },
    { "net",                ARG, opt_ignore, NULL },
    { "global",             ARG, opt_ignore, NULL },
    { "boot",               ARG, opt_ignore, NULL },
    { "smp",                ARG, opt_ignore, NULL },
    { "usb",                0,   opt_ignore, NULL },
    { "usbdevice",          ARG, opt_ignore, NULL },
    { "soundhw",            ARG, opt_ignore, NULL },
    { "audiodev",           ARG, opt_ignore, NULL },
    { "audio",              ARG, opt_ignore, NULL },
    { "rtc",                ARG, opt_ignore, NULL },
    { "no-acpi",            0,   opt_ignore, NULL },
    { "no-hpet",            0,   opt_ignore, NULL },
    { "trace",              ARG, opt_ignore, NULL },
    { "L",                  ARG, opt_ignore, NULL },
    { "add-fd",             ARG, opt_ignore, NULL },
    /* refused */
    REFUSE("loadvm", ARG, "xenram keeps no snapshots; libxl restores a "
           "saved guest with -incoming fd:N"),
    REFUSE("kernel", ARG, why_kernel),
    REFUSE("initrd", ARG, why_kernel),
    REFUSE("append", ARG, why_kernel),
    REFUSE("enable-kvm", 0, "xenram runs only as a Xen device model "
           "(accel=xen)"),
    REFUSE("daemonize", 0, "xenram does not daemonize; libxl already runs "
           "the device model in the background (use a service manager when "
           "starting it by hand)"),
    REFUSE("d", ARG, "QEMU's -d selects log items and qemu-xen-traditional's "
           "-d is the domain; use --log-level=LEVEL and -xen-domid N"),
    REFUSE("mem-path", ARG, why_ram),
    REFUSE("mem-prealloc", 0, why_ram),
    REFUSE("numa", ARG, "the guest's NUMA layout is Xen's (vnuma= in "
           "xl.cfg)"),
    REFUSE("domain-name", ARG, why_trad),
    REFUSE("videoram", ARG, why_trad),
    REFUSE("vcpus", ARG, why_trad),
    REFUSE("vcpu_avail", ARG, why_trad),
    REFUSE("acpi", 0, why_trad),
    REFUSE("std-vga", 0, why_trad),
    REFUSE("vncunused", 0, why_trad),
    REFUSE("disable-opengl", 0, why_trad),
    /* xenram's own */
    { "h",                  0,   opt_help, NULL },
    { "help",               0,   opt_help, NULL },
    { "version",            0,   opt_version, NULL },
    { "log-level",          ARG | OWN, opt_log_level, NULL },
    { "no-modified-memory", OWN, opt_flag, NULL },
    { "test-dma",           ARG | OWN, opt_test_dma, NULL },
};

static const Option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strlen(options[i].name) == len &&
            !strncmp(options[i].name, name, len))
            return &options[i];
    return NULL;
}

/* ---- after the last option --------------------------------------------- */

static int join_monitors(Parse *p)
{
    DMConfig *cfg = p->cfg;

    if (p->nr_mons) {
        cfg->monitors = calloc(p->nr_mons, sizeof(*cfg->monitors));
        if (!cfg->monitors)
            return oom(p);
    }
    for (size_t i = 0; i < p->nr_mons; i++) {
        Chardev *cd = find_chardev(p, p->mons[i].chardev);
        DMMonitor *mon;

        if (!cd)
            return fail(p, "-mon chardev=%s: no -chardev with id '%s'; "
                        "define it with -chardev socket,id=%s,path=...",
                        p->mons[i].chardev, p->mons[i].chardev,
                        p->mons[i].chardev);
        if (strcmp(cd->backend, "socket"))
            return fail(p, "-mon chardev=%s: QMP needs a socket chardev, "
                        "'%s' is a %s chardev", cd->id, cd->id, cd->backend);
        if (cd->host)
            return fail(p, "%s %s: QMP over TCP is not supported; use a unix "
                        "socket (path=) or an inherited one (fd=)",
                        cd->option, cd->raw);
        if (!cd->path && cd->fd < 0)
            return fail(p, "%s %s: a QMP socket needs path= or fd=",
                        cd->option, cd->raw);
        cd->used = true;
        mon = &cfg->monitors[cfg->nr_monitors++];
        mon->fd = cd->fd;
        mon->server = cd->server;
        mon->wait = cd->wait;
        mon->pretty = p->mons[i].pretty;
        mon->chardev_id = strdup(cd->id);
        if (!mon->chardev_id)
            return oom(p);
        if (cd->path && !(mon->path = strdup(cd->path)))
            return oom(p);
    }
    /* The other chardevs (channels, spice agents) serve devices. */
    for (size_t i = 0; i < p->nr_chardevs; i++) {
        int rc;

        if (p->chardevs[i].used)
            continue;
        rc = add_ignored(p, p->chardevs[i].option, p->chardevs[i].raw);
        if (rc)
            return rc;
    }
    return 0;
}

static int finish(Parse *p)
{
    DMConfig *cfg = p->cfg;
    const char *env = getenv("XEN_DOMAIN_ID");
    int rc;

    if (env) {
        uint32_t domid;

        if (!parse_domid(env, &domid))
            return fail(p, "XEN_DOMAIN_ID=%s: not a guest domain id; unset "
                        "it or give the domain number", env);
        if (cfg->has_domid && cfg->domid != domid)
            return fail(p, "-xen-domid %" PRIu32 " disagrees with "
                        "XEN_DOMAIN_ID=%s; which domain is meant? (libxl "
                        "passes the same number in both)", cfg->domid, env);
        cfg->has_domid = true;
        cfg->domid = domid;
    }
    if (cfg->machine == DM_MACHINE_PC && !p->accel_xen)
        return fail(p, "-machine pc: needs accel=xen (libxl passes -machine "
                    "pc,accel=xen,...)");
    if (cfg->machine == DM_MACHINE_NONE && !p->accel_xen)
        return fail(p, "-machine none: needs accel=xen (libxl's probe passes "
                    "-machine none,accel=xen)");
    cfg->probe_only = cfg->machine == DM_MACHINE_NONE;
    if (!cfg->probe_only) {
        if (!cfg->has_domid)
            return fail(p, "no guest domain: pass -xen-domid N (libxl does) "
                        "or set XEN_DOMAIN_ID");
        if (!p->m_seen)
            return fail(p, "no RAM size: pass -m <MiB> (libxl does)");
    }
    if (cfg->domid_restrict && !cfg->has_domid)
        return fail(p, "-xen-domid-restrict: there is no domain to restrict "
                    "to; pass -xen-domid N");
    rc = join_monitors(p);
    if (rc)
        return rc;
    if (!cfg->nr_monitors)
        return fail(p, "no QMP monitor: pass -chardev socket,id=ID,path=PATH,"
                    "server=on,wait=off -mon chardev=ID,mode=control (as "
                    "libxl does) or -qmp unix:PATH,server=on,wait=off");
    return 0;
}

static void parse_free(Parse *p)
{
    for (size_t i = 0; i < p->nr_chardevs; i++) {
        free(p->chardevs[i].id);
        free(p->chardevs[i].backend);
        free(p->chardevs[i].raw);
        free(p->chardevs[i].path);
        free(p->chardevs[i].host);
    }
    free(p->chardevs);
    for (size_t i = 0; i < p->nr_mons; i++)
        free(p->mons[i].chardev);
    free(p->mons);
}

/* ---- public ------------------------------------------------------------ */

void dm_config_init(DMConfig *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->action = DM_ACTION_RUN;
    cfg->machine = DM_MACHINE_XENFV;
    cfg->max_ram_below_4g = DM_HVM_BELOW_4G_RAM_END;
    cfg->incoming_fd = -1;
    cfg->log_level = DM_LOG_INFO;
}

void dm_config_free(DMConfig *cfg)
{
    free(cfg->name);
    free(cfg->runas);
    free(cfg->chroot_dir);
    free(cfg->sandbox);
    for (size_t i = 0; i < cfg->nr_monitors; i++) {
        free(cfg->monitors[i].chardev_id);
        free(cfg->monitors[i].path);
    }
    free(cfg->monitors);
    for (size_t i = 0; i < cfg->nr_ignored; i++) {
        free(cfg->ignored[i].option);
        free(cfg->ignored[i].arg);
    }
    free(cfg->ignored);
    dm_config_init(cfg);
}

int dm_cmdline_parse(int argc, char **argv, DMConfig *cfg, char *err,
                     size_t errlen)
{
    Parse p = { .cfg = cfg, .err = err, .errlen = errlen };
    int rc = 0;

    dm_config_init(cfg);
    if (err && errlen)
        err[0] = '\0';

    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *name, *arg = NULL, *eq;
        const Option *o;
        size_t len;
        char opt[64];

        if (a[0] != '-' || !a[1]) {
            rc = fail(&p, "unexpected argument '%s': xenram takes options "
                      "only (no disk image); see xenram --help", a);
            break;
        }
        name = a + 1 + (a[1] == '-');   /* "--opt" is "-opt", as in QEMU */
        len = strlen(name);
        o = find_option(name, len);
        eq = strchr(name, '=');
        if (!o && eq) {
            o = find_option(name, (size_t)(eq - name));
            if (o && (o->flags & (OWN | ARG)) != (OWN | ARG))
                o = NULL;
            if (o) {
                len = (size_t)(eq - name);
                arg = eq + 1;
            }
        }
        if (!o) {
            rc = fail(&p, "unknown option '%s': xenram accepts the options "
                      "libxl passes to a qemu-xen device model; see "
                      "docs/cmdline.md or xenram --help", a);
            break;
        }
        snprintf(opt, sizeof(opt), "-%.*s", (int)len, name);
        if ((o->flags & ARG) && !arg) {
            if (i + 1 >= argc) {
                rc = fail(&p, "option '%s' needs an argument", a);
                break;
            }
            arg = argv[++i];
        }
        if (!o->handler) {
            rc = fail(&p, "%s%s%s: not supported: %s", opt, arg ? " " : "",
                      arg ? arg : "", o->why);
            break;
        }
        rc = o->handler(&p, opt, arg);
    }
    if (rc == 0)
        rc = finish(&p);
    parse_free(&p);
    if (rc < 0) {
        dm_config_free(cfg);
    } else if (rc > 0) {
        DMAction action = cfg->action;

        dm_config_free(cfg);
        cfg->action = action;
    }
    return rc;
}

void dm_cmdline_report_ignored(const DMConfig *cfg, FILE *out)
{
    bool first = true;

    for (size_t i = 0; i < cfg->nr_ignored; i++) {
        const char *o = cfg->ignored[i].option;
        size_t count = 0;
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(cfg->ignored[j].option, o);
        if (seen)
            continue;
        for (size_t j = i; j < cfg->nr_ignored; j++)
            count += !strcmp(cfg->ignored[j].option, o);
        if (first)
            fputs("xenram: ignoring options for devices and displays xenram "
                  "does not emulate:", out);
        fprintf(out, "%s %s", first ? "" : ",", o);
        if (count > 1)
            fprintf(out, " (%zu)", count);
        first = false;
    }
    if (!first)
        fputc('\n', out);
}

void dm_cmdline_usage(FILE *out)
{
    fputs(
"Usage: xenram -xen-domid D -m MIB -machine xenfv[,...] QMP-MONITOR... [OPTION]...\n"
"The memory side of a Xen HVM device model, started by libxl in place of\n"
"qemu-xen (device_model_override in xl.cfg).  Reads qemu-xen's command line.\n"
"\n"
"Options libxl passes (QEMU syntax; --opt works as -opt):\n"
"  -xen-domid D            the guest domain (or XEN_DOMAIN_ID in the environment)\n"
"  -xen-domid-restrict     restrict the Xen handles to that domain\n"
"  -name NAME              the guest's name\n"
"  -machine TYPE[,...]     xenfv, pc,accel=xen or none,accel=xen (a probe);\n"
"                          max-ram-below-4g=SIZE (default and cap 0xF0000000)\n"
"  -m [size=]N[,maxmem=M][,slots=S]\n"
"                          guest RAM in MiB (or with a K/M/G/T suffix)\n"
"  -chardev socket,id=ID,path=PATH|fd=N,server=on,wait=off\n"
"  -mon chardev=ID,mode=control\n"
"                          a QMP monitor (libxl passes two)\n"
"  -qmp unix:PATH,server=on,wait=off\n"
"                          a QMP monitor in one option\n"
"  -S                      start paused: wait for QMP \"cont\"\n"
"  -incoming fd:N          read the device state from inherited fd N\n"
"  -incoming tcp:HOST:PORT|unix:PATH|defer\n"
"                          receive the guest from xenram's own migration\n"
"                          (defer: wait for QMP migrate-incoming)\n"
"  -runas USER|UID:GID     drop privileges once set up\n"
"  -chroot DIR             chroot once set up (also -run-with chroot=,user=)\n"
"  -sandbox ARG            recorded\n"
"  -no-shutdown -nodefaults -no-user-config -xen-attach\n"
"                          accepted (nothing to change for xenram)\n"
"Device and display options (-vnc, -display, -device, -drive, -netdev,\n"
"-serial, -boot, -smp, ...) are accepted and ignored, with one line on\n"
"stderr saying so.  -loadvm, other -incoming transports, machines and\n"
"accelerators other than Xen's, and unknown options are refused.\n"
"\n"
"xenram's own options:\n"
"  --log-level=LEVEL       error, warn, info (default) or debug\n"
"  --no-modified-memory    DEBUG ONLY: do not report xenram's writes to Xen's\n"
"                          log-dirty; live migration then loses pages\n"
"  --test-dma=RATE         TEST ONLY: a device that DMA-writes RATE random\n"
"                          guest pages per second while the guest runs\n"
"  -h, --help              this text\n"
"  --version               the version\n"
"\n"
"See xenram(1) and docs/cmdline.md.\n", out);
}

void dm_cmdline_version(FILE *out)
{
    fputs("xenram " XENRAM_VERSION "\n"
          "The memory side of a Xen HVM device model (foreign mapping, "
          "dirty logging,\nRAM hotplug, migration); speaks qemu-xen's command "
          "line and QMP to libxl.\n", out);
}

const char *dm_log_level_name(DMLogLevel level)
{
    switch (level) {
    case DM_LOG_ERROR: return "error";
    case DM_LOG_WARN:  return "warn";
    case DM_LOG_INFO:  return "info";
    case DM_LOG_DEBUG: return "debug";
    }
    return "?";
}
