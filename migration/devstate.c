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

/*
 * The one rule for a RAM block name that came from a peer (docs/devstate.md):
 * 1 to DEVSTATE_IDSTR_MAX bytes of printable ASCII, ' ' to '~', the rule
 * migration/stream.c applies to the names of xenram's own stream.  No
 * control character (a name is printed in logs and QMP answers: an ESC must
 * not reach a terminal), no byte above 0x7e (so no question of UTF-8
 * validity arises).  Every name xenram gives a block fits.
 */
bool devstate_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > DEVSTATE_IDSTR_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = name[i];

        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* The name of @name fit to print: invalid bytes as \xNN.  For messages. */
static const char *printable(const char *name, size_t len, char *buf,
                             size_t buflen)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 5 < buflen; i++) {
        unsigned char c = name[i];

        if (c >= 0x20 && c <= 0x7e && c != '\\') {
            buf[o++] = c;
        } else {
            o += snprintf(buf + o, buflen - o, "\\x%02x", c);
        }
    }
    buf[o] = '\0';
    return buf;
}

/* A span (a mapping, a block's ram_addr range, a slot) and its block. */
typedef struct SpanRef {
    uint64_t start, size;
    uint32_t block;
} SpanRef;

static int cmp_span(const void *a, const void *b)
{
    const SpanRef *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Sorted by start, spans overlap only if neighbours do.  The index of the
 * second of the first such pair, or 0.  Sizes were checked not to wrap.
 */
static size_t first_overlap(SpanRef *s, size_t n)
{
    qsort(s, n, sizeof(*s), cmp_span);
    for (size_t i = 1; i < n; i++) {
        if (s[i].start - s[i - 1].start < s[i - 1].size) {
            return i;
        }
    }
    return 0;
}

/*
 * What involves pairs of blocks: unique names, no overlap in ram_addr
 * space, one block per slot, no overlap of guest-physical mappings.  Each
 * is a sort and a look at neighbours, O(n log n): a stream of 1024 blocks
 * of 64 mappings costs milliseconds, not seconds.
 */
static int validate_pairs(const DevState *ds, char *err, size_t errlen)
{
    const char **names = NULL;
    SpanRef *sp = NULL;
    size_t nr = 0, ns, i;
    int ret = 0;

    if (ds->nblocks == 0) {
        return 0;
    }
    for (uint32_t b = 0; b < ds->nblocks; b++) {
        nr += ds->blocks[b].nranges;
    }
    names = malloc(ds->nblocks * sizeof(*names));
    sp = malloc(MAX(nr, (size_t)ds->nblocks) * sizeof(*sp));
    if (!names || !sp) {
        ret = xr_error(err, errlen, -ENOMEM, "out of memory checking the "
                       "device state");
        goto out;
    }

    for (uint32_t b = 0; b < ds->nblocks; b++) {
        names[b] = ds->blocks[b].idstr;
    }
    qsort(names, ds->nblocks, sizeof(*names), cmp_name);
    for (i = 1; i < ds->nblocks; i++) {
        if (!strcmp(names[i - 1], names[i])) {
            ret = xr_error(err, errlen, -EINVAL,
                           "RAM block name '%s' appears twice", names[i]);
            goto out;
        }
    }

    for (uint32_t b = 0; b < ds->nblocks; b++) {
        sp[b] = (SpanRef) { .start = ds->blocks[b].offset,
                            .size = ds->blocks[b].max_length, .block = b };
    }
    if ((i = first_overlap(sp, ds->nblocks))) {
        ret = xr_error(err, errlen, -EINVAL,
                       "RAM blocks '%s' and '%s' overlap in ram_addr space",
                       ds->blocks[sp[i - 1].block].idstr,
                       ds->blocks[sp[i].block].idstr);
        goto out;
    }

    ns = 0;
    for (uint32_t b = 0; b < ds->nblocks; b++) {
        if (ds->blocks[b].hotplug_slot != DEVSTATE_NO_SLOT) {
            sp[ns++] = (SpanRef) { .start = ds->blocks[b].hotplug_slot,
                                   .size = 1, .block = b };
        }
    }
    if ((i = first_overlap(sp, ns))) {
        ret = xr_error(err, errlen, -EINVAL,
                       "RAM blocks '%s' and '%s' claim hot-plug slot %u",
                       ds->blocks[sp[i - 1].block].idstr,
                       ds->blocks[sp[i].block].idstr,
                       ds->blocks[sp[i].block].hotplug_slot);
        goto out;
    }

    /* Guest-physical mappings must not overlap, within or across blocks. */
    ns = 0;
    for (uint32_t b = 0; b < ds->nblocks; b++) {
        for (uint32_t r = 0; r < ds->blocks[b].nranges; r++) {
            sp[ns++] = (SpanRef) { .start = ds->blocks[b].ranges[r].gpa,
                                   .size = ds->blocks[b].ranges[r].size,
                                   .block = b };
        }
    }
    if ((i = first_overlap(sp, ns))) {
        ret = xr_error(err, errlen, -EINVAL,
                       "guest-physical mappings of '%s' and '%s' overlap at "
                       "0x%llx", ds->blocks[sp[i - 1].block].idstr,
                       ds->blocks[sp[i].block].idstr,
                       (unsigned long long)sp[i].start);
    }
out:
    free(names);
    free(sp);
    return ret;
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
        char name[4 * 64 + 8];

        if (idlen == 0 || idlen > DEVSTATE_IDSTR_MAX) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block %u has an empty or unterminated name", i);
        }
        if (!devstate_name_valid(b->idstr, idlen)) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block %u has the name '%s': a name must be "
                        "printable ASCII (' ' to '~')", i,
                        printable(b->idstr, idlen, name, sizeof(name)));
        }
        if (b->flags & ~DEVSTATE_BLOCK_FLAGS) {
            return xr_error(err, errlen, -EINVAL,
                        "RAM block '%s' has unknown flags 0x%x", b->idstr,
                        b->flags & ~DEVSTATE_BLOCK_FLAGS);
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
    }
    return validate_pairs(ds, err, errlen);
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
            for (unsigned int i = 0; i < sizeof(pad8); i++) {
                if (pad8[i]) {
                    ret = xr_error(err, errlen, -EINVAL,
                               "dirty-log record has non-zero padding "
                               "(byte %u is 0x%02x)", 2 + i, pad8[i]);
                    goto out;
                }
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
