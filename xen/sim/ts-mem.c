/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-mem.c - a domain's memory as the toolstack sees it: libxl's memory
 * keys in xenstore, `xl mem-max` and `xl mem-set`; and the digest of
 * guest memory `xensim checksum` and a migration print.  See
 * toolstack.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "xen/sim/stamp.h"
#include "xen/sim/toolstack-internal.h"

/* ---- memory: libxl's keys, xl mem-max, xl mem-set ------------------------- */

/* Transactions lost to a concurrent writer (EAGAIN) are retried so often. */
#define XS_TXN_RETRIES          16

/* A record's b_info.target_memkb and max_memkb (older records: memory=). */
uint64_t ts_cfg_target_kb(const struct ts_domcfg *c)
{
    return c->target_memkb ? c->target_memkb : c->mem_mib * 1024;
}

uint64_t ts_cfg_max_kb(const struct ts_domcfg *c)
{
    return c->max_memkb ? c->max_memkb : c->mem_mib * 1024;
}

/*
 * libxl__get_targetmem_fudge for an HVM guest: what memory/target leaves
 * out of b_info.target_memkb.  The video memory, plus LIBXL_MAXMEM_CONSTANT
 * when the configuration's maximum exceeds its target (maxmem= above
 * memory=, or a receiver whose static-max is above the target it was
 * sent).  libxl subtracts it when it writes the key and adds it back when
 * it retrieves the configuration, so it cancels out across migrations.
 */
uint64_t ts_targetmem_fudge(const struct ts_domcfg *c)
{
    return c->vram_mib * 1024 +
           (ts_cfg_max_kb(c) > ts_cfg_target_kb(c) ? XSIM_MAXMEM_SLACK_KB : 0);
}

/* A memory key as libxl reads it: decimal kB.  -ENOENT, -EINVAL. */
int ts_xs_read_kb(struct xs_handle *xs, xs_transaction_t t,
                  const char *path, uint64_t *out)
{
    unsigned len = 0;
    char *v = xs_read(xs, t, path, &len), *end;
    int rc = 0;

    if (!v)
        return -ENOENT;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
        rc = -EINVAL;
    free(v);
    return rc;
}

/* kB for a message: in MiB when it is whole MiB. */
const char *ts_kb_text(uint64_t kb, char *buf, size_t len)
{
    if (kb % 1024 == 0)
        ts_fmt(buf, len, "%" PRIu64 " MiB", kb / 1024);
    else
        ts_fmt(buf, len, "%" PRIu64 " kB", kb);
    return buf;
}

/* xc_domain_setmaxmem: Xen's maximum of @domid becomes @kb. */
int ts_set_xen_max(struct ts_host *h, uint32_t domid, uint64_t kb,
                   char *err, size_t errlen)
{
    uint64_t args[6] = { kb };
    struct xsim_rep rep;
    int rc;

    rc = ts_call_rc(h, XSIM_OP_DOM_SETMAXMEM, domid, args, NULL, 0, &rep,
                    NULL, 0, NULL);
    if (rc)
        ts_seterr(err, errlen, "setting the maximum memory of d%u on %s: %s",
                  domid, h->dir, strerror(-rc));
    return rc;
}

int ts_write_memory_keys(struct ts_host *h, uint32_t domid,
                         const struct ts_domcfg *c, char *err, size_t errlen)
{
    static const char *const key[3] = { "static-max", "target", "videoram" };
    uint64_t fudge = ts_targetmem_fudge(c), target = ts_cfg_target_kb(c);
    uint64_t val[3] = { ts_cfg_max_kb(c), target > fudge ? target - fudge : 0,
                        c->vram_mib * 1024 };
    struct xs_handle *xs;
    int e = 0;

    if (!h->xenstore)
        return 0;
    xs = ts_xs_open_err(h, err, errlen, &e);
    if (!xs)
        return -e;
    for (int tries = 0; tries < XS_TXN_RETRIES; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);
        bool ok = t != XBT_NULL;

        for (int i = 0; i < 3 && ok; i++) {
            char path[96], v[32];

            ts_fmt(path, sizeof(path), "/local/domain/%u/memory/%s", domid,
                   key[i]);
            ts_fmt(v, sizeof(v), "%" PRIu64, val[i]);
            ok = xs_write(xs, t, path, v, (unsigned)strlen(v));
        }
        e = ok ? 0 : (errno ? errno : EIO);
        if (t != XBT_NULL && !xs_transaction_end(xs, t, !ok) && ok) {
            e = errno ? errno : EIO;
            if (e == EAGAIN)
                continue;
        }
        break;
    }
    xs_close(xs);
    if (e)
        ts_seterr(err, errlen, "writing the memory keys of d%u in xenstore: %s",
                  domid, strerror(e));
    return -e;
}

int ts_setmaxmem(struct ts_host *h, uint32_t domid, uint64_t mib, char *err,
                 size_t errlen)
{
    uint64_t target;
    char path[96], val[32], t1[32];
    struct xs_handle *xs;
    int rc;

    /* libxl_domain_setmaxmem: static-max may not go below the target
     * (a domain xenstore does not know is refused by Xen below). */
    xs = ts_xs_open(h);
    if (xs) {
        ts_fmt(path, sizeof(path), "/local/domain/%u/memory/target", domid);
        rc = ts_xs_read_kb(xs, XBT_NULL, path, &target);
        xs_close(xs);
        if (rc == 0 && mib * 1024 < target) {
            ts_seterr(err, errlen, "d%u: memory_static_max must be greater "
                      "than or equal to memory_dynamic_max: %" PRIu64 " MiB is "
                      "below the domain's target (memory/target, %s); lower "
                   "the target first (xensim mem-set)", domid, mib,
                   ts_kb_text(target, t1, sizeof(t1)));
            return -EINVAL;
        }
    }
    rc = ts_set_xen_max(h, domid, mib * 1024 + XSIM_MAXMEM_SLACK_KB, err,
                        errlen);
    if (rc)
        return rc;
    ts_fmt(path, sizeof(path), "/local/domain/%u/memory/static-max", domid);
    ts_fmt(val, sizeof(val), "%" PRIu64, mib * 1024);
    ts_xs_write(h, path, val);
    return 0;
}

/*
 * In transaction @t: libxl_set_memory_target's checks, Xen's maximum, the
 * keys.  0, or -errno with @err (a failed xenstore operation with errno
 * set, so that the caller can tell EAGAIN).
 */
static int set_target_in(struct ts_host *h, struct xs_handle *xs,
                         xs_transaction_t t, uint32_t domid, uint64_t mib,
                         char *err, size_t errlen)
{
    uint64_t want = mib * 1024, cur, smax, video = 0, target;
    char dom[32], path[160], val[32], t1[32], t2[32], t3[32], *vm;
    unsigned len = 0;
    int rc;

    ts_fmt(dom, sizeof(dom), "/local/domain/%u", domid);
    /* libxl reads the current target (for a relative change, which xl
     * mem-set never asks for) and refuses a domain without one. */
    ts_fmt(path, sizeof(path), "%s/memory/target", dom);
    rc = ts_xs_read_kb(xs, t, path, &cur);
    if (rc == 0) {
        ts_fmt(path, sizeof(path), "%s/memory/static-max", dom);
        rc = ts_xs_read_kb(xs, t, path, &smax);
    }
    if (rc) {
        ts_seterr(err, errlen, "d%u: %s %s", domid,
                  rc == -ENOENT ? "cannot get memory info from"
                             : "invalid memory value in", path);
        return rc == -ENOENT ? -ENOENT : -EINVAL;
    }
    /* Video memory: part of what mem-set is given, not of the target.
     * libxl takes 0 when the key is absent. */
    ts_fmt(path, sizeof(path), "%s/memory/videoram", dom);
    if (ts_xs_read_kb(xs, t, path, &video))
        video = 0;
    if (want < video) {
        /* libxl's subtraction wraps around and the static-max check
         * refuses it; said plainly here. */
        ts_seterr(err, errlen, "d%u: %" PRIu64 " MiB does not even cover the "
                  "domain's video memory (memory/videoram, %s), which is part "
                  "of it: memory_dynamic_max must be less than or equal to "
                  "memory_static_max", domid, mib,
                  ts_kb_text(video, t1, sizeof(t1)));
        return -EINVAL;
    }
    target = want - video;
    if (target > smax) {
        ts_seterr(err, errlen, "d%u: memory_dynamic_max must be less than or "
                  "equal to memory_static_max: the target would be %s "
                  "(%" PRIu64 " MiB less %s of video memory), above "
                  "memory/static-max, %s; raise the maximum first (xensim "
               "mem-max)", domid, ts_kb_text(target, t1, sizeof(t1)), mib,
               ts_kb_text(video, t2, sizeof(t2)),
               ts_kb_text(smax, t3, sizeof(t3)));
        return -EINVAL;
    }
    /* enforce: Xen's maximum follows the target.  (libxl then calls
     * xc_domain_set_pod_target for an HVM guest; Xen leaves a domain
     * without PoD entries, as every simulated one is, as it is.) */
    rc = ts_set_xen_max(h, domid, target + video + XSIM_MAXMEM_SLACK_KB, err,
                        errlen);
    if (rc)
        return rc;
    ts_fmt(path, sizeof(path), "%s/memory/target", dom);
    ts_fmt(val, sizeof(val), "%" PRIu64, target);
    if (!xs_write(xs, t, path, val, (unsigned)strlen(val)))
        goto fail;
    /* /vm/<uuid>/memory, in MiB; <uuid> is the domain's handle, which
     * the domain's vm key names. */
    ts_fmt(path, sizeof(path), "%s/vm", dom);
    vm = xs_read(xs, t, path, &len);
    if (vm) {
        ts_fmt(path, sizeof(path), "%s/memory", vm);
        free(vm);
        ts_fmt(val, sizeof(val), "%" PRIu64, target / 1024);
        if (!xs_write(xs, t, path, val, (unsigned)strlen(val)))
            goto fail;
    }
    return 0;
fail:
    rc = errno ? errno : EIO;
    ts_seterr(err, errlen, "writing %s: %s", path, strerror(rc));
    errno = rc;
    return -rc;
}

int ts_set_memory_target(struct ts_host *h, uint32_t domid, uint64_t mib,
                         char *err, size_t errlen)
{
    struct xsim_dominfo info;
    struct xs_handle *xs;
    int rc;

    rc = ts_dominfo(h, domid, &info);
    if (rc) {
        ts_seterr(err, errlen, "no domain d%u on %s: %s", domid, h->dir,
                  strerror(-rc));
        return rc;
    }
    if (!h->xenstore) {
        ts_seterr(err, errlen, "d%u: the host in %s runs no xenstore, where "
                  "the target is read and written (memory/target, "
                  "memory/static-max)", domid, h->dir);
        return -ENOTSUP;
    }
    xs = ts_xs_open_err(h, err, errlen, &rc);
    if (!xs)
        return -rc;
    /* As libxl: the checks, Xen's maximum and the keys in one
     * transaction, all of it again when the transaction is lost. */
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL) {
            rc = -(errno ? errno : EIO);
            ts_seterr(err, errlen, "starting a xenstore transaction: %s",
                      strerror(-rc));
            break;
        }
        rc = set_target_in(h, xs, t, domid, mib, err, errlen);
        if (rc) {
            xs_transaction_end(xs, t, true);
            break;
        }
        if (xs_transaction_end(xs, t, false))
            break;
        rc = -(errno ? errno : EIO);
        if (rc != -EAGAIN || tries + 1 >= XS_TXN_RETRIES) {
            ts_seterr(err, errlen, "committing the target of d%u: %s", domid,
                      strerror(-rc));
            break;
        }
    }
    xs_close(xs);
    return rc;
}

/* ---- guest memory -------------------------------------------------------- */

struct ts_digest ts_checksum(const uint8_t *mem, const uint8_t *p2m,
                             uint64_t pages, uint64_t *present)
{
    XXH3_state_t *st = XXH3_createState();
    struct ts_digest d = { 0, 0 };
    XXH128_hash_t h;
    uint64_t n = 0;

    if (!st)
        abort();                /* a few hundred bytes: never, in practice */
    XXH3_128bits_reset(st);
    for (uint64_t g = 0; g < pages; g++) {
        uint8_t le[8];

        if (!((p2m[g / 8] >> (g % 8)) & 1))
            continue;
        n++;
        for (unsigned i = 0; i < 8; i++)
            le[i] = (uint8_t)(g >> (8 * i));
        XXH3_128bits_update(st, le, sizeof(le));
        XXH3_128bits_update(st, mem + g * XSIM_PAGE_SIZE, XSIM_PAGE_SIZE);
    }
    h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    d.hi = h.high64;
    d.lo = h.low64;
    if (present)
        *present = n;
    return d;
}

const char *ts_digest_hex(struct ts_digest d, char buf[TS_DIGEST_HEX])
{
    snprintf(buf, TS_DIGEST_HEX, "%016" PRIx64 "%016" PRIx64, d.hi, d.lo);
    return buf;
}

/* xenram's test device (xen/dm/testdev.c, --test-dma): "XXRTDMA\0", the
 * frame, a sequence number, then words derived from frame and sequence. */
#define TESTDMA_MAGIC 0x00414d4454525858ull

int ts_testdma_check(const void *page, uint64_t gfn)
{
    const uint64_t *w = page;
    uint64_t seq;

    if (w[0] != TESTDMA_MAGIC || w[1] != gfn)
        return 0;
    seq = w[2];
    for (unsigned i = 3; i < XSIM_STAMP_WORDS; i++) {
        uint64_t x = gfn * 0x9e3779b97f4a7c15ull ^ seq ^ ((uint64_t)i << 32);

        x ^= x >> 31;
        if (w[i] != x * 0xbf58476d1ce4e5b9ull)
            return 0;
    }
    return 1;
}

int ts_create_dest(struct ts_host *dst, const struct ts_domcfg *cfg,
                   uint32_t flags, uint32_t *domid, char *err,
                   size_t errlen)
{
    struct xsim_create cr = { .vcpus = cfg->vcpus, .flags = flags };
    struct xsim_rep rep;
    int rc;

    ts_fmt(cr.name, sizeof(cr.name), "%s", cfg->name);
    ts_fmt(cr.workload, sizeof(cr.workload), "%s", cfg->workload);
    cr.mem_kb = cfg->mem_mib * 1024;
    cr.vram_kb = cfg->vram_mib * 1024;
    rc = ts_call_rc(dst, XSIM_OP_DOM_CREATE, 0, NULL, &cr, sizeof(cr), &rep,
                    NULL, 0, NULL);
    if (rc) {
        ts_seterr(err, errlen, "creating the domain on %s failed: %s%s",
                  dst->dir, strerror(-rc),
                  rc == -EEXIST ? " (a domain of that name is there)" : "");
        return rc;
    }
    *domid = (uint32_t)rep.ret;
    /* Not static-max, not the source's maximum: hot-plugged RAM the
     * target does not cover does not fit, as with libxc's restore. */
    return ts_set_xen_max(dst, *domid, cfg->target_memkb +
                          XSIM_MAXMEM_SLACK_KB, err, errlen);
}
