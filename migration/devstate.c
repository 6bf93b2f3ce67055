/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * devstate.c - encoding, decoding and validation of xenram's device state.
 * The format is specified in docs/devstate.md; integers are big-endian.
 */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "migration/devstate.h"
#include "util/util.h"

#define DS_MAGIC        "XENRAMDS"
#define DS_HEADER_LEN   24
#define DS_CRC_LEN      4
#define DS_MAX_STREAM   (16u << 20)

#define REC_DIRTYLOG    1u
#define REC_BLOCK       2u
#define REC_END         0xffffffffu

#define DIRTYLOG_LEN    24u
#define BLOCK_FIXED_LEN (2u + 8 + 8 + 8 + 4 + 4 + 4)
#define RANGE_LEN       24u


void devstate_free(DevState *ds)
{
    if (!ds) {
        return;
    }
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        free(ds->blocks[i].ranges);
    }
    free(ds->blocks);
    memset(ds, 0, sizeof(*ds));
}

/* ---- validation ------------------------------------------------------- */

static bool page_aligned(uint64_t v)
{
    return (v & (XR_PAGE_SIZE - 1)) == 0;
}

/* [a, a + an) and [b, b + bn) overlap (no overflow: sizes were checked). */
static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a < b + bn && b < a + an;
}

int devstate_validate(const DevState *ds, char *err, size_t errlen)
{
    if (ds->nblocks > DEVSTATE_MAX_BLOCKS) {
        return xr_error(err, errlen, -EINVAL, "%u RAM blocks, at most %u allowed",
                    ds->nblocks, DEVSTATE_MAX_BLOCKS);
    }
    if (ds->vram_tracking &&
        (ds->vram_npages == 0 || ds->vram_npages > UINT32_MAX ||
         ds->vram_first_pfn > (UINT64_MAX >> XR_PAGE_BITS) - ds->vram_npages)) {
        return xr_error(err, errlen, -EINVAL,
                    "VRAM tracking range pfn 0x%llx + %llu pages is invalid",
                    (unsigned long long)ds->vram_first_pfn,
                    (unsigned long long)ds->vram_npages);
    }
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];
        size_t idlen = strnlen(b->idstr, sizeof(b->idstr));

        if (idlen == 0 || idlen > DEVSTATE_IDSTR_MAX) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block %u has an empty or unterminated name", i);
        }
        if (!page_aligned(b->offset) || !page_aligned(b->used_length) ||
            !page_aligned(b->max_length) || b->used_length == 0 ||
            b->used_length > b->max_length ||
            b->offset > UINT64_MAX - b->max_length) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block '%s': offset 0x%llx, used 0x%llx, max "
                        "0x%llx are not page-aligned, empty or inconsistent",
                        b->idstr, (unsigned long long)b->offset,
                        (unsigned long long)b->used_length,
                        (unsigned long long)b->max_length);
        }
        if (b->nranges > DEVSTATE_MAX_RANGES) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block '%s' has %u mappings, at most %u allowed",
                        b->idstr, b->nranges, DEVSTATE_MAX_RANGES);
        }
        for (uint32_t r = 0; r < b->nranges; r++) {
            const DevStateRange *g = &b->ranges[r];

            if (!page_aligned(g->gpa) || !page_aligned(g->size) ||
                !page_aligned(g->offset) || g->size == 0 ||
                g->gpa > UINT64_MAX - g->size ||
                g->offset > b->used_length ||
                g->size > b->used_length - g->offset) {
                return xr_error(err, errlen, -EINVAL,
                            "RAM block '%s': mapping %u (gpa 0x%llx, size "
                            "0x%llx, offset 0x%llx) is misaligned or outside "
                            "the block", b->idstr, r,
                            (unsigned long long)g->gpa,
                            (unsigned long long)g->size,
                            (unsigned long long)g->offset);
            }
        }
        for (uint32_t j = 0; j < i; j++) {
            const DevStateBlock *o = &ds->blocks[j];

            if (!strcmp(o->idstr, b->idstr)) {
                return xr_error(err, errlen, -EINVAL,
                            "RAM block name '%s' appears twice", b->idstr);
            }
            if (overlap(o->offset, o->max_length, b->offset, b->max_length)) {
                return xr_error(err, errlen, -EINVAL,
                            "RAM blocks '%s' and '%s' overlap in ram_addr "
                            "space", o->idstr, b->idstr);
            }
            if (b->hotplug_slot != DEVSTATE_NO_SLOT &&
                b->hotplug_slot == o->hotplug_slot) {
                return xr_error(err, errlen, -EINVAL,
                            "RAM blocks '%s' and '%s' claim hot-plug slot %u",
                            o->idstr, b->idstr, b->hotplug_slot);
            }
        }
    }
    /* Guest-physical mappings must not overlap, within or across blocks. */
    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];

        for (uint32_t r = 0; r < b->nranges; r++) {
            for (uint32_t j = 0; j <= i; j++) {
                const DevStateBlock *o = &ds->blocks[j];
                uint32_t lim = j == i ? r : o->nranges;

                for (uint32_t s = 0; s < lim; s++) {
                    if (overlap(o->ranges[s].gpa, o->ranges[s].size,
                                b->ranges[r].gpa, b->ranges[r].size)) {
                        return xr_error(err, errlen, -EINVAL,
                                    "guest-physical mappings of '%s' and "
                                    "'%s' overlap at 0x%llx", o->idstr,
                                    b->idstr, (unsigned long long)MAX(
                                        o->ranges[s].gpa, b->ranges[r].gpa));
                    }
                }
            }
        }
    }
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

typedef struct Writer {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} Writer;

static void put(Writer *w, const void *data, size_t n)
{
    if (w->oom) {
        return;
    }
    if (w->len + n > w->cap) {
        size_t cap = MAX(w->cap * 2, w->len + n + 256);
        uint8_t *p = realloc(w->p, cap);

        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void put_u8(Writer *w, uint8_t v)
{
    put(w, &v, 1);
}

static void put_u16(Writer *w, uint16_t v)
{
    v = htobe16(v);
    put(w, &v, 2);
}

static void put_u32(Writer *w, uint32_t v)
{
    v = htobe32(v);
    put(w, &v, 4);
}

static void put_u64(Writer *w, uint64_t v)
{
    v = htobe64(v);
    put(w, &v, 8);
}

int devstate_encode(const DevState *ds, uint8_t **buf, size_t *len,
                    char *err, size_t errlen)
{
    Writer w = { 0 };
    uint32_t crc;
    int ret;

    ret = devstate_validate(ds, err, errlen);
    if (ret) {
        return ret;
    }
    put(&w, DS_MAGIC, 8);
    put_u32(&w, DEVSTATE_VERSION);
    put_u32(&w, 0);                     /* header flags */
    put_u64(&w, 0);                     /* payload length, patched below */

    put_u32(&w, REC_DIRTYLOG);
    put_u32(&w, DIRTYLOG_LEN);
    put_u8(&w, ds->global_dirty_log);
    put_u8(&w, ds->vram_tracking);
    put_u16(&w, 0);
    put_u32(&w, 0);
    put_u64(&w, ds->vram_first_pfn);
    put_u64(&w, ds->vram_npages);

    for (uint32_t i = 0; i < ds->nblocks; i++) {
        const DevStateBlock *b = &ds->blocks[i];
        uint16_t idlen = strlen(b->idstr);

        put_u32(&w, REC_BLOCK);
        put_u32(&w, BLOCK_FIXED_LEN + idlen + b->nranges * RANGE_LEN);
        put_u16(&w, idlen);
        put(&w, b->idstr, idlen);
        put_u64(&w, b->offset);
        put_u64(&w, b->used_length);
        put_u64(&w, b->max_length);
        put_u32(&w, b->flags);
        put_u32(&w, b->hotplug_slot);
        put_u32(&w, b->nranges);
        for (uint32_t r = 0; r < b->nranges; r++) {
            put_u64(&w, b->ranges[r].gpa);
            put_u64(&w, b->ranges[r].size);
            put_u64(&w, b->ranges[r].offset);
        }
    }
    put_u32(&w, REC_END);
    put_u32(&w, 0);
    if (w.oom) {
        free(w.p);
        return xr_error(err, errlen, -ENOMEM, "out of memory encoding state");
    }
    {
        uint64_t payload = htobe64(w.len - DS_HEADER_LEN);

        memcpy(w.p + 16, &payload, 8);
    }
    crc = crc32(0L, w.p, w.len);
    put_u32(&w, crc);
    if (w.oom) {
        free(w.p);
        return xr_error(err, errlen, -ENOMEM, "out of memory encoding state");
    }
    *buf = w.p;
    *len = w.len;
    return 0;
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct Reader {
    const uint8_t *p;
    size_t len, pos;
} Reader;

static bool get(Reader *r, void *out, size_t n)
{
    if (r->len - r->pos < n) {
        return false;
    }
    memcpy(out, r->p + r->pos, n);
    r->pos += n;
    return true;
}

static bool get_u8(Reader *r, uint8_t *v)
{
    return get(r, v, 1);
}

static bool get_u16(Reader *r, uint16_t *v)
{
    if (!get(r, v, 2)) {
        return false;
    }
    *v = be16toh(*v);
    return true;
}

static bool get_u32(Reader *r, uint32_t *v)
{
    if (!get(r, v, 4)) {
        return false;
    }
    *v = be32toh(*v);
    return true;
}

static bool get_u64(Reader *r, uint64_t *v)
{
    if (!get(r, v, 8)) {
        return false;
    }
    *v = be64toh(*v);
    return true;
}

static int decode_block(Reader *r, uint32_t reclen, DevStateBlock *b,
                        char *err, size_t errlen)
{
    uint16_t idlen;

    memset(b, 0, sizeof(*b));
    if (reclen < BLOCK_FIXED_LEN || !get_u16(r, &idlen) ||
        idlen == 0 || idlen > DEVSTATE_IDSTR_MAX ||
        reclen < BLOCK_FIXED_LEN + idlen || !get(r, b->idstr, idlen)) {
        return xr_error(err, errlen, -EINVAL,
                    "RAM block record is malformed (name length)");
    }
    b->idstr[idlen] = '\0';
    if (memchr(b->idstr, '\0', idlen)) {
        return xr_error(err, errlen, -EINVAL,
                    "RAM block name contains a NUL byte");
    }
    if (!get_u64(r, &b->offset) || !get_u64(r, &b->used_length) ||
        !get_u64(r, &b->max_length) || !get_u32(r, &b->flags) ||
        !get_u32(r, &b->hotplug_slot) || !get_u32(r, &b->nranges)) {
        return xr_error(err, errlen, -EINVAL,
                    "RAM block record '%s' is truncated", b->idstr);
    }
    if (b->nranges > DEVSTATE_MAX_RANGES ||
        reclen != BLOCK_FIXED_LEN + idlen + b->nranges * RANGE_LEN) {
        return xr_error(err, errlen, -EINVAL,
                    "RAM block record '%s' has a length that does not match "
                    "its %u mappings", b->idstr, b->nranges);
    }
    if (b->nranges) {
        b->ranges = calloc(b->nranges, sizeof(*b->ranges));
        if (!b->ranges) {
            return xr_error(err, errlen, -ENOMEM, "out of memory");
        }
    }
    for (uint32_t i = 0; i < b->nranges; i++) {
        if (!get_u64(r, &b->ranges[i].gpa) ||
            !get_u64(r, &b->ranges[i].size) ||
            !get_u64(r, &b->ranges[i].offset)) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block record '%s' is truncated", b->idstr);
        }
    }
    return 0;
}

int devstate_decode(const uint8_t *buf, size_t len, DevState *out,
                    char *err, size_t errlen)
{
    DevState ds = { 0 };
    Reader r = { buf, len, 0 };
    uint32_t version, hflags, crc_stored, crc;
    uint64_t payload;
    bool seen_dirtylog = false, ended = false;
    int ret;

    if (len < DS_HEADER_LEN) {
        return xr_error(err, errlen, -ENODATA,
                    "device state is truncated: %zu bytes, the header alone "
                    "has %d", len, DS_HEADER_LEN);
    }
    if (memcmp(buf, DS_MAGIC, 8)) {
        return xr_error(err, errlen, -EINVAL,
                    "not xenram device state (bad magic)");
    }
    r.pos = 8;
    get_u32(&r, &version);
    get_u32(&r, &hflags);
    get_u64(&r, &payload);
    if (version != DEVSTATE_VERSION) {
        return xr_error(err, errlen, -EPROTO,
                    "device state version %u; this xenram reads version %u "
                    "only", version, DEVSTATE_VERSION);
    }
    if (hflags) {
        return xr_error(err, errlen, -EINVAL,
                    "device state header flags 0x%x are unknown", hflags);
    }
    if (payload > len - DS_HEADER_LEN ||
        len - DS_HEADER_LEN - payload < DS_CRC_LEN) {
        return xr_error(err, errlen, -ENODATA,
                    "device state is truncated: header announces %llu bytes "
                    "of records plus a checksum, %zu bytes follow",
                    (unsigned long long)payload, len - DS_HEADER_LEN);
    }
    if (len - DS_HEADER_LEN - payload != DS_CRC_LEN) {
        return xr_error(err, errlen, -EINVAL,
                    "device state has %zu unexpected trailing bytes",
                    (size_t)(len - DS_HEADER_LEN - payload - DS_CRC_LEN));
    }
    memcpy(&crc_stored, buf + DS_HEADER_LEN + payload, 4);
    crc_stored = be32toh(crc_stored);
    crc = crc32(0L, buf, DS_HEADER_LEN + payload);
    if (crc != crc_stored) {
        return xr_error(err, errlen, -EINVAL,
                    "device state is corrupted: checksum 0x%08x, expected "
                    "0x%08x", crc, crc_stored);
    }

    r.len = DS_HEADER_LEN + payload;
    while (!ended) {
        uint32_t type, reclen;
        size_t start;

        if (!get_u32(&r, &type) || !get_u32(&r, &reclen) ||
            reclen > r.len - r.pos) {
            ret = xr_error(err, errlen, -EINVAL,
                       "device state record at byte %zu overruns the stream",
                       r.pos);
            goto out;
        }
        start = r.pos;
        switch (type) {
        case REC_DIRTYLOG: {
            uint8_t g = 0, v = 0, pad8[6];

            if (seen_dirtylog || reclen != DIRTYLOG_LEN) {
                ret = xr_error(err, errlen, -EINVAL,
                           "dirty-log record is repeated or malformed");
                goto out;
            }
            get_u8(&r, &g);
            get_u8(&r, &v);
            get(&r, pad8, 6);
            get_u64(&r, &ds.vram_first_pfn);
            get_u64(&r, &ds.vram_npages);
            if (g > 1 || v > 1) {
                ret = xr_error(err, errlen, -EINVAL,
                           "dirty-log record has non-boolean flags");
                goto out;
            }
            ds.global_dirty_log = g;
            ds.vram_tracking = v;
            seen_dirtylog = true;
            break;
        }
        case REC_BLOCK: {
            DevStateBlock *blocks;

            if (ds.nblocks >= DEVSTATE_MAX_BLOCKS) {
                ret = xr_error(err, errlen, -EINVAL,
                           "more than %u RAM blocks", DEVSTATE_MAX_BLOCKS);
                goto out;
            }
            blocks = realloc(ds.blocks, (ds.nblocks + 1) * sizeof(*blocks));
            if (!blocks) {
                ret = xr_error(err, errlen, -ENOMEM, "out of memory");
                goto out;
            }
            ds.blocks = blocks;
            ret = decode_block(&r, reclen, &ds.blocks[ds.nblocks], err,
                               errlen);
            ds.nblocks++;       /* so that its ranges are freed on error */
            if (ret) {
                goto out;
            }
            break;
        }
        case REC_END:
            if (reclen != 0 || r.pos != r.len) {
                ret = xr_error(err, errlen, -EINVAL,
                           "end record is not at the end of the stream");
                goto out;
            }
            ended = true;
            break;
        default:
            ret = xr_error(err, errlen, -EINVAL,
                       "unknown device state record type %u", type);
            goto out;
        }
        if (r.pos - start != reclen) {
            ret = xr_error(err, errlen, -EINVAL,
                       "device state record of type %u has a wrong length",
                       type);
            goto out;
        }
    }
    if (!seen_dirtylog) {
        ret = xr_error(err, errlen, -EINVAL, "dirty-log record is missing");
        goto out;
    }
    ret = devstate_validate(&ds, err, errlen);
    if (ret == 0) {
        *out = ds;
        return 0;
    }
out:
    devstate_free(&ds);
    return ret;
}

/* ---- files -------------------------------------------------------------- */

int devstate_write(int fd, const DevState *ds, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len, done = 0;
    int ret = devstate_encode(ds, &buf, &len, err, errlen);

    if (ret) {
        return ret;
    }
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            ret = n < 0 ? -errno : -EIO;
            xr_error(err, errlen, ret, "writing device state: %s",
                 strerror(-ret));
            break;
        }
        done += n;
    }
    free(buf);
    return ret;
}

int devstate_read(int fd, DevState *ds, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int ret;

    for (;;) {
        ssize_t n;

        if (len == cap) {
            uint8_t *p;

            if (cap >= DS_MAX_STREAM) {
                free(buf);
                return xr_error(err, errlen, -EFBIG,
                            "device state is larger than %u bytes",
                            DS_MAX_STREAM);
            }
            cap = cap ? 2 * cap : 4096;
            p = realloc(buf, cap);
            if (!p) {
                free(buf);
                return xr_error(err, errlen, -ENOMEM, "out of memory");
            }
            buf = p;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ret = -errno;
            free(buf);
            return xr_error(err, errlen, ret, "reading device state: %s",
                        strerror(-ret));
        }
        if (n == 0) {
            break;
        }
        len += n;
    }
    ret = devstate_decode(buf, len, ds, err, errlen);
    free(buf);
    return ret;
}
