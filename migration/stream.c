/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stream.c - encoder and decoder of the migration stream's records (see
 * stream.h and docs/migration-stream.md).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* XXH3_state_t on the stack needs its definition. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <zstd.h>

#include "migration/stream.h"

#define STREAM_MAX_CHANNELS 16
#define BATCH_DESC_FIXED    16          /* round, npages, codec, pad */
#define BATCH_DESC_TAIL     8           /* data_len, reserved */
#define BATCH_DESC_MAX \
    (BATCH_DESC_FIXED + 8 * STREAM_BATCH_MAX_PAGES + BATCH_DESC_TAIL)
#define BATCH_DATA_MAX      (STREAM_BATCH_MAX_PAGES * STREAM_PAGE_SIZE)
#define ENTRY_KIND_BITS     4

static void put_le16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static void put_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static uint16_t get_le16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

bool stream_page_is_zero(const void *page)
{
    const uint64_t *w = page;
    uint64_t acc = 0;

    /* Eight words at a time: the compiler vectorises the OR. */
    for (unsigned i = 0; i < STREAM_PAGE_SIZE / 8; i += 8) {
        acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
               w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
        if (acc) {
            return false;
        }
    }
    return true;
}

/* ---- the stream header ------------------------------------------------------ */

void stream_header_encode(const StreamHeader *h, uint8_t *out)
{
    memcpy(out, STREAM_MAGIC, 8);
    put_le32(out + 8, h->version);
    put_le32(out + 12, h->role);
    put_le16(out + 16, (uint16_t)h->channel);
    put_le16(out + 18, (uint16_t)h->nchannels);
    put_le32(out + 20, h->flags);
}

int stream_header_decode(const uint8_t *in, StreamHeader *h, char *err,
                         size_t errlen)
{
    if (memcmp(in, STREAM_MAGIC, 8)) {
        return xr_error(err, errlen, -EPROTO, "not a xenram migration "
                           "stream (bad magic)");
    }
    h->version = get_le32(in + 8);
    h->role = get_le32(in + 12);
    h->channel = get_le16(in + 16);
    h->nchannels = get_le16(in + 18);
    if (h->version != STREAM_VERSION) {
        return xr_error(err, errlen, -EPROTO, "migration stream version "
                           "%" PRIu32 " (this xenram reads version %d)",
                           h->version, STREAM_VERSION);
    }
    h->flags = get_le32(in + 20);
    if (h->flags & ~STREAM_HEADER_F_RESUME) {
        return xr_error(err, errlen, -EINVAL, "stream header flags %#x "
                           "set (only %#x is defined)", h->flags,
                           STREAM_HEADER_F_RESUME);
    }
    if (h->nchannels > STREAM_MAX_CHANNELS) {
        return xr_error(err, errlen, -EINVAL, "the stream header says "
                           "%" PRIu32 " data channels (0 to %d)",
                           h->nchannels, STREAM_MAX_CHANNELS);
    }
    if ((h->role == STREAM_CHANNEL_CONTROL && h->channel != 0) ||
        (h->role == STREAM_CHANNEL_DATA &&
         (h->channel < 1 || h->channel > h->nchannels)) ||
        h->role > STREAM_CHANNEL_DATA) {
        return xr_error(err, errlen, -EINVAL, "the stream header's role "
                           "%" PRIu32 " / channel %" PRIu32 " of %" PRIu32
                           " do not fit", h->role, h->channel, h->nchannels);
    }
    return 0;
}

/* ---- records ------------------------------------------------------------------ */

const char *stream_record_name(uint32_t type, char *buf, size_t buflen)
{
    static const char *const names[] = {
        [STREAM_REC_LAYOUT] = "LAYOUT", [STREAM_REC_RAM] = "RAM",
        [STREAM_REC_ROUND_END] = "ROUND_END",
        [STREAM_REC_DEVSTATE] = "DEVSTATE",
        [STREAM_REC_HVM_CONTEXT] = "HVM_CONTEXT", [STREAM_REC_END] = "END",
        [STREAM_REC_RESULT] = "RESULT",
        [STREAM_REC_HVM_PARAMS] = "HVM_PARAMS",
        [STREAM_REC_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE",
        [STREAM_REC_POSTCOPY_DISCARD] = "POSTCOPY_DISCARD",
        [STREAM_REC_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
        [STREAM_REC_POSTCOPY_RUN] = "POSTCOPY_RUN",
        [STREAM_REC_PAGE_REQUEST] = "PAGE_REQUEST",
        [STREAM_REC_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
        [STREAM_REC_RECV_BITMAP] = "RECV_BITMAP",
        [STREAM_REC_RESUME_ACK] = "RESUME_ACK",
        [STREAM_REC_POSTCOPY_PREPARE] = "POSTCOPY_PREPARE",
        [STREAM_REC_POSTCOPY_PREPARED] = "POSTCOPY_PREPARED",
    };

    if (type >= 1 && type <= STREAM_REC_MAX) {
        return names[type];
    }
    snprintf(buf, buflen, "type %" PRIu32, type);
    return buf;
}

/* XXH3-64 of the header's first 16 bytes and the body. */
static uint64_t record_hash(const uint8_t *hdr, const struct iovec *iov,
                            int iovcnt)
{
    XXH3_state_t st;

    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr, 16);
    for (int i = 0; i < iovcnt; i++) {
        XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
    }
    return XXH3_64bits_digest(&st);
}

void stream_record_header(uint32_t type, uint32_t seq, const struct iovec *iov,
                          int iovcnt, uint8_t *out)
{
    size_t len = 0;

    for (int i = 0; i < iovcnt; i++) {
        len += iov[i].iov_len;
    }
    put_le16(out, (uint16_t)type);
    put_le16(out + 2, 0);
    put_le32(out + 4, (uint32_t)len);
    put_le32(out + 8, seq);
    put_le32(out + 12, 0);
    put_le64(out + 16, record_hash(out, iov, iovcnt));
}

int stream_record_header_check(const uint8_t *hdr, uint32_t want_seq,
                               uint32_t *type, uint32_t *len, char *err,
                               size_t errlen)
{
    uint32_t t = get_le16(hdr), seq = get_le32(hdr + 8);
    char name[24];

    *len = get_le32(hdr + 4);
    if (t < 1 || t > STREAM_REC_MAX) {
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " has "
                           "unknown type %" PRIu32, want_seq, t);
    }
    if (get_le16(hdr + 2) || get_le32(hdr + 12)) {
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " (%s) "
                           "has reserved fields set", want_seq,
                           stream_record_name(t, name, sizeof(name)));
    }
    if (seq != want_seq) {
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " expected"
                           ", record %" PRIu32 " (%s) received: the stream "
                           "lost or reordered records", want_seq, seq,
                           stream_record_name(t, name, sizeof(name)));
    }
    if (*len > STREAM_MAX_BODY) {
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " (%s) "
                           "claims %" PRIu32 " bytes (at most %u)", seq,
                           stream_record_name(t, name, sizeof(name)), *len,
                           STREAM_MAX_BODY);
    }
    *type = t;
    return 0;
}

int stream_record_verify(const uint8_t *hdr, const uint8_t *body, uint32_t len,
                         char *err, size_t errlen)
{
    struct iovec iov = { .iov_base = (void *)body, .iov_len = len };
    char name[24];

    if (record_hash(hdr, &iov, 1) != get_le64(hdr + 16)) {
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " (%s, "
                           "%" PRIu32 " bytes) fails its checksum: the "
                           "stream is corrupt", get_le32(hdr + 8),
                           stream_record_name(get_le16(hdr), name,
                                              sizeof(name)), len);
    }
    return 0;
}

int stream_record_verifyv(const uint8_t *hdr, const struct iovec *iov,
                          int iovcnt, char *err, size_t errlen)
{
    char name[24];
    size_t len = 0;

    if (record_hash(hdr, iov, iovcnt) != get_le64(hdr + 16)) {
        for (int i = 0; i < iovcnt; i++) {
            len += iov[i].iov_len;
        }
        return xr_error(err, errlen, -EINVAL, "record %" PRIu32 " (%s, "
                           "%zu bytes) fails its checksum: the stream is "
                           "corrupt", get_le32(hdr + 8),
                           stream_record_name(get_le16(hdr), name,
                                              sizeof(name)), len);
    }
    return 0;
}

void stream_round_end_encode(uint64_t round, uint64_t pages, uint8_t *out)
{
    put_le64(out, round);
    put_le64(out + 8, pages);
}

int stream_round_end_decode(const uint8_t *body, uint32_t len,
                            uint64_t *round, uint64_t *pages, char *err,
                            size_t errlen)
{
    if (len != STREAM_ROUND_END_LEN) {
        return xr_error(err, errlen, -EINVAL, "ROUND_END of %" PRIu32
                           " bytes (%d expected)", len, STREAM_ROUND_END_LEN);
    }
    *round = get_le64(body);
    *pages = get_le64(body + 8);
    return 0;
}

void stream_hvm_params_encode(const uint32_t *index, const uint64_t *value,
                              unsigned n, uint8_t *out)
{
    for (unsigned i = 0; i < n; i++) {
        put_le32(out + 16 * i, index[i]);
        put_le32(out + 16 * i + 4, 0);
        put_le64(out + 16 * i + 8, value[i]);
    }
}

int stream_hvm_params_decode(const uint8_t *body, uint32_t len,
                             uint32_t *index, uint64_t *value, unsigned max,
                             unsigned *n, char *err, size_t errlen)
{
    if (len % 16 || len / 16 > max) {
        return xr_error(err, errlen, -EINVAL, "an HVM_PARAMS record of %"
                        PRIu32 " bytes (16 a parameter, at most %u)", len,
                        max);
    }
    for (unsigned i = 0; i < len / 16; i++) {
        if (get_le32(body + 16 * i + 4)) {
            return xr_error(err, errlen, -EINVAL, "HVM_PARAMS entry %u has "
                            "its padding set", i);
        }
        index[i] = get_le32(body + 16 * i);
        value[i] = get_le64(body + 16 * i + 8);
    }
    *n = len / 16;
    return 0;
}

/* ---- postcopy records --------------------------------------------------------- */

void stream_postcopy_advise_encode(uint64_t page_size, uint8_t *out)
{
    put_le64(out, page_size);
    put_le64(out + 8, 0);
}

/*
 * The body of the control records that are a u64 value and u64 flags
 * (ADVISE, LISTEN, PREPARE): @len must be 16 and the flags within
 * @known.  0 and *@value, *@flags, or -EINVAL naming record @what.
 */
_Static_assert(STREAM_POSTCOPY_ADVISE_LEN == 16 &&
               STREAM_POSTCOPY_LISTEN_LEN == 16 &&
               STREAM_POSTCOPY_PREPARE_LEN == 16,
               "decode_value_flags() reads 16-byte bodies");

static int decode_value_flags(const uint8_t *body, uint32_t len,
                              const char *what, uint64_t known,
                              uint64_t *value, uint64_t *flags, char *err,
                              size_t errlen)
{
    if (len != 16) {
        return xr_error(err, errlen, -EINVAL, "%s of %" PRIu32 " bytes (16 "
                        "expected)", what, len);
    }
    if (get_le64(body + 8) & ~known) {
        return xr_error(err, errlen, -EINVAL, "%s asks for flags %#" PRIx64
                        ", which this build does not know", what,
                        get_le64(body + 8));
    }
    *value = get_le64(body);
    *flags = get_le64(body + 8);
    return 0;
}

int stream_postcopy_advise_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *page_size, char *err,
                                  size_t errlen)
{
    uint64_t flags;

    return decode_value_flags(body, len, "POSTCOPY_ADVISE", 0, page_size,
                              &flags, err, errlen);
}

void stream_postcopy_listen_encode(uint64_t round, uint64_t flags,
                                   uint8_t *out)
{
    put_le64(out, round);
    put_le64(out + 8, flags);
}

int stream_postcopy_listen_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *round, uint64_t *flags,
                                  char *err, size_t errlen)
{
    int ret = decode_value_flags(body, len, "POSTCOPY_LISTEN",
                                 STREAM_LISTEN_F_PREEMPT, round, flags, err,
                                 errlen);

    if (ret) {
        return ret;
    }
    if (*round == 0) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_LISTEN after round "
                        "0: round 1, the full pass, must come first");
    }
    return 0;
}

void stream_postcopy_prepare_encode(uint64_t round, uint8_t *out)
{
    put_le64(out, round);
    put_le64(out + 8, 0);
}

int stream_postcopy_prepare_decode(const uint8_t *body, uint32_t len,
                                   uint64_t *round, char *err,
                                   size_t errlen)
{
    uint64_t flags;
    int ret = decode_value_flags(body, len, "POSTCOPY_PREPARE", 0, round,
                                 &flags, err, errlen);

    if (ret) {
        return ret;
    }
    if (*round == 0) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_PREPARE after round "
                        "0: round 1, the full pass, must come first");
    }
    return 0;
}

void stream_postcopy_prepared_encode(uint64_t pages, uint64_t ns,
                                     uint64_t flags, uint8_t *out)
{
    put_le64(out, pages);
    put_le64(out + 8, ns);
    put_le64(out + 16, flags);
}

int stream_postcopy_prepared_decode(const uint8_t *body, uint32_t len,
                                    uint64_t *pages, uint64_t *ns,
                                    uint64_t *flags, char *err,
                                    size_t errlen)
{
    if (len != STREAM_POSTCOPY_PREPARED_LEN) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_PREPARED of %" PRIu32
                        " bytes (%d expected)", len,
                        STREAM_POSTCOPY_PREPARED_LEN);
    }
    if (get_le64(body + 16) & ~(uint64_t)STREAM_PREPARED_F_DONE) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_PREPARED has flags %#"
                        PRIx64 ", which this build does not know",
                        get_le64(body + 16));
    }
    *pages = get_le64(body);
    *ns = get_le64(body + 8);
    *flags = get_le64(body + 16);
    return 0;
}

/* A block name's bytes in a record: u16 length, bytes, padded to 8. */
static size_t name_field_len(size_t n)
{
    return (2 + n + 7) & ~(size_t)7;
}

static size_t put_name(uint8_t *out, const char *idstr)
{
    size_t n = strlen(idstr), len = name_field_len(n);

    memset(out, 0, len);
    put_le16(out, (uint16_t)n);
    memcpy(out + 2, idstr, n);
    return len;
}

/*
 * Read a name field at the start of @body (@len bytes) into @idstr; the
 * bytes it took, or -EINVAL with @err.  Names are what block names may be:
 * printable ASCII, 1..255 bytes, so that nothing a peer sends puts control
 * characters into a log.
 */
static long get_name(const uint8_t *body, uint32_t len, const char *what,
                     char idstr[256], char *err, size_t errlen)
{
    size_t n, field;

    if (len < 2) {
        return xr_error(err, errlen, -EINVAL, "%s is too short for a block "
                        "name", what);
    }
    n = get_le16(body);
    field = name_field_len(n);
    if (n == 0 || n > 255 || field > len) {
        return xr_error(err, errlen, -EINVAL, "%s names a block of %zu "
                        "bytes in %" PRIu32 " (1 to 255 expected)", what, n,
                        len);
    }
    for (size_t i = 0; i < n; i++) {
        if (body[2 + i] < 0x20 || body[2 + i] > 0x7e) {
            return xr_error(err, errlen, -EINVAL, "%s's block name has byte "
                            "%#x at %zu: only printable ASCII", what,
                            body[2 + i], i);
        }
    }
    for (size_t i = 2 + n; i < field; i++) {
        if (body[i]) {
            return xr_error(err, errlen, -EINVAL, "%s's block name has its "
                            "padding set", what);
        }
    }
    memcpy(idstr, body + 2, n);
    idstr[n] = '\0';
    return (long)field;
}

size_t stream_postcopy_discard_len(const char *idstr, unsigned nranges)
{
    return name_field_len(strlen(idstr)) + 8 + 16 * (size_t)nranges;
}

void stream_postcopy_discard_encode(const char *idstr,
                                    const StreamRange *ranges,
                                    unsigned nranges, uint8_t *out)
{
    out += put_name(out, idstr);
    put_le32(out, nranges);
    put_le32(out + 4, 0);
    out += 8;
    for (unsigned i = 0; i < nranges; i++) {
        put_le64(out + 16 * i, ranges[i].start);
        put_le64(out + 16 * i + 8, ranges[i].n);
    }
}

int stream_postcopy_discard_decode(const uint8_t *body, uint32_t len,
                                   char idstr[256], StreamRange *ranges,
                                   unsigned *nranges, char *err,
                                   size_t errlen)
{
    long off = get_name(body, len, "POSTCOPY_DISCARD", idstr, err, errlen);
    uint32_t count;

    if (off < 0) {
        return (int)off;
    }
    if (len - (uint32_t)off < 8) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_DISCARD ends before "
                        "its range count");
    }
    count = get_le32(body + off);
    if (get_le32(body + off + 4) || count == 0 ||
        count > STREAM_DISCARD_MAX_RANGES ||
        len - (uint32_t)off - 8 != 16 * count) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_DISCARD of %" PRIu32
                        " bytes says %" PRIu32 " ranges (1 to %u, 16 bytes "
                        "each)", len, count, STREAM_DISCARD_MAX_RANGES);
    }
    body += off + 8;
    for (uint32_t i = 0; i < count; i++) {
        StreamRange r = { get_le64(body + 16 * i), get_le64(body + 16 * i + 8) };

        if (r.n == 0 || r.start + r.n < r.start ||
            (i && r.start <= ranges[i - 1].start + ranges[i - 1].n)) {
            return xr_error(err, errlen, -EINVAL, "POSTCOPY_DISCARD range %"
                            PRIu32 " (%#" PRIx64 "+%#" PRIx64 ") is empty, "
                            "wraps, or is not after the one before", i,
                            r.start, r.n);
        }
        ranges[i] = r;
    }
    *nranges = count;
    return 0;
}

size_t stream_page_request_len(const char *idstr)
{
    return name_field_len(strlen(idstr)) + 16;
}

void stream_page_request_encode(const char *idstr, uint64_t page,
                                uint32_t npages, uint8_t *out)
{
    out += put_name(out, idstr);
    put_le64(out, page);
    put_le32(out + 8, npages);
    put_le32(out + 12, 0);
}

int stream_page_request_decode(const uint8_t *body, uint32_t len,
                               char idstr[256], uint64_t *page,
                               uint32_t *npages, char *err, size_t errlen)
{
    long off = get_name(body, len, "PAGE_REQUEST", idstr, err, errlen);
    uint32_t n;

    if (off < 0) {
        return (int)off;
    }
    if (len - (uint32_t)off != 16) {
        return xr_error(err, errlen, -EINVAL, "PAGE_REQUEST of %" PRIu32
                        " bytes (%ld expected)", len, off + 16);
    }
    n = get_le32(body + off + 8);
    if (n == 0 || n > STREAM_BATCH_MAX_PAGES || get_le32(body + off + 12) ||
        get_le64(body + off) + n < get_le64(body + off)) {
        return xr_error(err, errlen, -EINVAL, "PAGE_REQUEST of %" PRIu32
                        " pages at %#" PRIx64 " (1 to %u, flags 0)", n,
                        get_le64(body + off), STREAM_BATCH_MAX_PAGES);
    }
    *page = get_le64(body + off);
    *npages = n;
    return 0;
}

/* ---- postcopy recovery ------------------------------------------------------------ */

void stream_postcopy_resume_encode(uint64_t round, uint8_t *out)
{
    put_le64(out, round);
    put_le64(out + 8, 0);
}

int stream_postcopy_resume_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *round, char *err, size_t errlen)
{
    if (len != STREAM_POSTCOPY_RESUME_LEN || get_le64(body + 8)) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_RESUME of %" PRIu32
                        " bytes (%d expected, flags 0)", len,
                        STREAM_POSTCOPY_RESUME_LEN);
    }
    *round = get_le64(body);
    if (*round < 2) {
        return xr_error(err, errlen, -EINVAL, "POSTCOPY_RESUME in round %"
                        PRIu64 ": postcopy's round follows at least round 1",
                        *round);
    }
    return 0;
}

size_t stream_recv_bitmap_len(const char *idstr, uint64_t npages)
{
    return name_field_len(strlen(idstr)) + 16 + (npages + 63) / 64 * 8;
}

void stream_recv_bitmap_encode(const char *idstr, uint64_t first,
                               uint64_t npages, const uint64_t *words,
                               uint8_t *out)
{
    uint64_t nwords = (npages + 63) / 64;

    out += put_name(out, idstr);
    put_le64(out, first);
    put_le64(out + 8, npages);
    out += 16;
    for (uint64_t i = 0; i < nwords; i++) {
        uint64_t w = words[i];

        if (i == nwords - 1 && npages % 64) {
            w &= (1ull << (npages % 64)) - 1;
        }
        put_le64(out + 8 * i, w);
    }
}

int stream_recv_bitmap_decode(const uint8_t *body, uint32_t len,
                              char idstr[256], uint64_t *first,
                              uint64_t *npages, const uint8_t **words,
                              char *err, size_t errlen)
{
    long off = get_name(body, len, "RECV_BITMAP", idstr, err, errlen);
    uint64_t f, n, nwords;

    if (off < 0) {
        return (int)off;
    }
    if (len - (uint32_t)off < 16) {
        return xr_error(err, errlen, -EINVAL, "RECV_BITMAP ends before its "
                        "page range");
    }
    f = get_le64(body + off);
    n = get_le64(body + off + 8);
    if (f % 64 || n == 0 || n > STREAM_RECV_BITMAP_MAX_PAGES ||
        f + n < f) {
        return xr_error(err, errlen, -EINVAL, "RECV_BITMAP of %" PRIu64
                        " pages at %#" PRIx64 " (1 to %u, from a multiple "
                        "of 64)", n, f, STREAM_RECV_BITMAP_MAX_PAGES);
    }
    nwords = (n + 63) / 64;
    if (len - (uint32_t)off - 16 != nwords * 8) {
        return xr_error(err, errlen, -EINVAL, "RECV_BITMAP of %" PRIu32
                        " bytes for %" PRIu64 " pages (%" PRIu64 " expected)",
                        len, n, (uint64_t)off + 16 + nwords * 8);
    }
    body += off + 16;
    if (n % 64 && get_le64(body + 8 * (nwords - 1)) >> (n % 64)) {
        return xr_error(err, errlen, -EINVAL, "RECV_BITMAP has bits set "
                        "past its last page");
    }
    *first = f;
    *npages = n;
    *words = body;
    return 0;
}

void stream_resume_ack_encode(uint64_t nbitmaps, uint8_t *out)
{
    put_le64(out, nbitmaps);
    put_le64(out + 8, 0);
}

int stream_resume_ack_decode(const uint8_t *body, uint32_t len,
                             uint64_t *nbitmaps, char *err, size_t errlen)
{
    if (len != STREAM_RESUME_ACK_LEN || get_le64(body + 8)) {
        return xr_error(err, errlen, -EINVAL, "RESUME_ACK of %" PRIu32
                        " bytes (%d expected, flags 0)", len,
                        STREAM_RESUME_ACK_LEN);
    }
    *nbitmaps = get_le64(body);
    return 0;
}

/* ---- RAM batches: the sender's side ------------------------------------------- */

struct StreamBatch {
    uint64_t round;
    unsigned npages, nzero;
    uint8_t flags;              /* STREAM_BATCH_F_* */
    int zstd_level;
    ZSTD_CCtx *cctx;
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    uint8_t desc[BATCH_DESC_MAX];
    uint8_t *data;              /* the NORMAL pages, in order */
    uint8_t *zdata;             /* their zstd frame, when compressing */
    size_t zcap;
};

int stream_batch_new(int zstd_level, StreamBatch **out)
{
    StreamBatch *b = calloc(1, sizeof(*b));

    if (!b) {
        return -ENOMEM;
    }
    b->zstd_level = zstd_level;
    b->data = malloc(BATCH_DATA_MAX);
    if (b->data && zstd_level > 0) {
        b->zcap = ZSTD_compressBound(BATCH_DATA_MAX);
        b->zdata = malloc(b->zcap);
        b->cctx = ZSTD_createCCtx();
    }
    if (!b->data || (zstd_level > 0 && (!b->zdata || !b->cctx))) {
        stream_batch_free(b);
        return -ENOMEM;
    }
    *out = b;
    return 0;
}

void stream_batch_free(StreamBatch *b)
{
    if (!b) {
        return;
    }
    ZSTD_freeCCtx(b->cctx);
    free(b->zdata);
    free(b->data);
    free(b);
}

void stream_batch_reset(StreamBatch *b, uint64_t round)
{
    b->round = round;
    b->npages = 0;
    b->nzero = 0;
    b->flags = 0;
}

void stream_batch_set_postcopy(StreamBatch *b)
{
    b->flags |= STREAM_BATCH_F_POSTCOPY;
}

unsigned stream_batch_add(StreamBatch *b, uint64_t pfn, const void *page)
{
    unsigned kind = STREAM_PAGE_NORMAL;

    if (stream_page_is_zero(page)) {
        kind = STREAM_PAGE_ZERO;
        b->nzero++;
    } else {
        memcpy(b->data + (size_t)(b->npages - b->nzero) * STREAM_PAGE_SIZE,
               page, STREAM_PAGE_SIZE);
    }
    put_le64(b->desc + BATCH_DESC_FIXED + 8 * b->npages,
             (pfn << ENTRY_KIND_BITS) | kind);
    return ++b->npages;
}

unsigned stream_batch_add_absent(StreamBatch *b, uint64_t pfn)
{
    put_le64(b->desc + BATCH_DESC_FIXED + 8 * b->npages,
             (pfn << ENTRY_KIND_BITS) | STREAM_PAGE_ABSENT);
    /* Counted with the zero pages: neither carries data. */
    b->nzero++;
    return ++b->npages;
}

unsigned stream_batch_pages(const StreamBatch *b)
{
    return b->npages;
}

unsigned stream_batch_zero_pages(const StreamBatch *b)
{
    return b->nzero;
}

size_t stream_batch_finish(StreamBatch *b, uint32_t seq, struct iovec iov[3],
                           StreamCodec *codec)
{
    size_t raw = (size_t)(b->npages - b->nzero) * STREAM_PAGE_SIZE;
    size_t desc_len = BATCH_DESC_FIXED + 8 * (size_t)b->npages +
                      BATCH_DESC_TAIL;
    const uint8_t *data = b->data;
    size_t data_len = raw;
    uint8_t *tail;

    *codec = STREAM_CODEC_NONE;
    if (b->cctx && raw) {
        size_t z = ZSTD_compressCCtx(b->cctx, b->zdata, b->zcap, b->data, raw,
                                     b->zstd_level);

        /* Worth the receiver's decompression only if it saves an eighth. */
        if (!ZSTD_isError(z) && z < raw - raw / 8) {
            data = b->zdata;
            data_len = z;
            *codec = STREAM_CODEC_ZSTD;
        }
    }
    put_le64(b->desc, b->round);
    put_le32(b->desc + 8, b->npages);
    b->desc[12] = (uint8_t)*codec;
    b->desc[13] = b->flags;
    memset(b->desc + 14, 0, 2);
    tail = b->desc + BATCH_DESC_FIXED + 8 * (size_t)b->npages;
    put_le32(tail, (uint32_t)data_len);
    put_le32(tail + 4, 0);
    iov[1] = (struct iovec) { .iov_base = b->desc, .iov_len = desc_len };
    iov[2] = (struct iovec) { .iov_base = (void *)data, .iov_len = data_len };
    stream_record_header(STREAM_REC_RAM, seq, &iov[1], 2, b->hdr);
    iov[0] = (struct iovec) { .iov_base = b->hdr,
                              .iov_len = STREAM_RECORD_HDR_LEN };
    return STREAM_RECORD_HDR_LEN + desc_len + data_len;
}

/* ---- RAM batches: the receiver's side ------------------------------------------ */

struct StreamDecoder {
    ZSTD_DCtx *dctx;
    uint8_t *data;              /* BATCH_DATA_MAX: decompressed pages */
};

int stream_decoder_new(StreamDecoder **out)
{
    StreamDecoder *d = calloc(1, sizeof(*d));

    if (!d) {
        return -ENOMEM;
    }
    d->dctx = ZSTD_createDCtx();
    d->data = malloc(BATCH_DATA_MAX);
    if (!d->dctx || !d->data) {
        stream_decoder_free(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

void stream_decoder_free(StreamDecoder *d)
{
    if (!d) {
        return;
    }
    ZSTD_freeDCtx(d->dctx);
    free(d->data);
    free(d);
}

/* The batch's entries into @v; the offset of its tail in *@tail. */
static int batch_parse_entries(const uint8_t *body, uint32_t len,
                               StreamBatchView *v, size_t *tail, char *err,
                               size_t errlen)
{
    v->round = get_le64(body);
    v->npages = get_le32(body + 8);
    v->codec = body[12];
    v->flags = body[13];
    if ((v->flags & ~STREAM_BATCH_F_POSTCOPY) || body[14] || body[15]) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: reserved bytes "
                           "set");
    }
    if (v->npages < 1 || v->npages > STREAM_BATCH_MAX_PAGES) {
        return xr_error(err, errlen, -EINVAL, "RAM batch of %" PRIu32
                           " pages (1 to %u)", v->npages,
                           STREAM_BATCH_MAX_PAGES);
    }
    if (v->codec > STREAM_CODEC_ZSTD) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: unknown codec "
                           "%" PRIu32, v->codec);
    }
    *tail = BATCH_DESC_FIXED + 8 * (size_t)v->npages;
    if (len < *tail + BATCH_DESC_TAIL) {
        return xr_error(err, errlen, -EINVAL, "RAM batch of %" PRIu32
                           " pages truncated at %" PRIu32 " bytes",
                           v->npages, len);
    }
    v->nnormal = 0;
    for (uint32_t i = 0; i < v->npages; i++) {
        uint64_t e = get_le64(body + BATCH_DESC_FIXED + 8 * (size_t)i);
        unsigned kind = (unsigned)(e & ((1u << ENTRY_KIND_BITS) - 1));

        v->pfn[i] = e >> ENTRY_KIND_BITS;
        v->kind[i] = (uint8_t)kind;
        if (kind > STREAM_PAGE_ABSENT) {
            return xr_error(err, errlen, -EINVAL, "RAM batch: page %#"
                               PRIx64 " of unknown kind %u", v->pfn[i], kind);
        }
        if (i && v->pfn[i] <= v->pfn[i - 1]) {
            return xr_error(err, errlen, -EINVAL, "RAM batch: page %#"
                               PRIx64 " after page %#" PRIx64 " (pages must "
                               "come in increasing order, once)", v->pfn[i],
                               v->pfn[i - 1]);
        }
        v->nnormal += kind == STREAM_PAGE_NORMAL;
    }
    return 0;
}

size_t stream_batch_desc_len(const uint8_t *fixed)
{
    uint32_t npages = get_le32(fixed + 8);

    if (npages < 1 || npages > STREAM_BATCH_MAX_PAGES) {
        return 0;
    }
    return BATCH_DESC_FIXED + 8 * (size_t)npages + BATCH_DESC_TAIL;
}

int stream_batch_parse_desc(const uint8_t *desc, size_t desc_len,
                            uint32_t len, StreamBatchView *v, char *err,
                            size_t errlen)
{
    size_t tail = 0, data_len;
    int ret;

    if (desc_len < BATCH_DESC_FIXED || desc_len > len ||
        stream_batch_desc_len(desc) != desc_len) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: its description "
                           "does not fit its %" PRIu32 " bytes", len);
    }
    ret = batch_parse_entries(desc, len, v, &tail, err, errlen);
    if (ret) {
        return ret;
    }
    if (v->codec != STREAM_CODEC_NONE) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: a compressed "
                           "batch has no uncompressed data to read");
    }
    data_len = get_le32(desc + tail);
    if (get_le32(desc + tail + 4)) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: reserved bytes "
                           "set");
    }
    if (data_len != len - desc_len ||
        data_len != (size_t)v->nnormal * STREAM_PAGE_SIZE) {
        return xr_error(err, errlen, -EINVAL, "RAM batch with %" PRIu32
                           " data pages says %zu bytes of data in a record "
                           "of %" PRIu32, v->nnormal, data_len, len);
    }
    v->data = NULL;
    return 0;
}

int stream_batch_parse(StreamDecoder *d, const uint8_t *body, uint32_t len,
                       StreamBatchView *v, char *err, size_t errlen)
{
    size_t tail = 0, want, data_len;
    const uint8_t *data;
    int ret;

    if (len < BATCH_DESC_FIXED) {
        return xr_error(err, errlen, -EINVAL, "RAM batch of %" PRIu32
                           " bytes is too short", len);
    }
    ret = batch_parse_entries(body, len, v, &tail, err, errlen);
    if (ret) {
        return ret;
    }
    data_len = get_le32(body + tail);
    if (get_le32(body + tail + 4)) {
        return xr_error(err, errlen, -EINVAL, "RAM batch: reserved bytes "
                           "set");
    }
    data = body + tail + BATCH_DESC_TAIL;
    if (data_len != len - (tail + BATCH_DESC_TAIL)) {
        return xr_error(err, errlen, -EINVAL, "RAM batch says %zu bytes "
                           "of data, the record holds %zu", data_len,
                           (size_t)len - (tail + BATCH_DESC_TAIL));
    }
    want = (size_t)v->nnormal * STREAM_PAGE_SIZE;
    if (v->codec == STREAM_CODEC_NONE) {
        if (data_len != want) {
            return xr_error(err, errlen, -EINVAL, "RAM batch with %" PRIu32
                               " data pages carries %zu bytes, not %zu",
                               v->nnormal, data_len, want);
        }
        v->data = data;
        return 0;
    }
    /* zstd: the frame must say its size, and it must be exactly @want. */
    {
        unsigned long long fs = ZSTD_getFrameContentSize(data, data_len);
        size_t got;

        if (fs != want) {
            return xr_error(err, errlen, -EINVAL, "compressed RAM batch "
                               "of %" PRIu32 " data pages does not say it "
                               "holds %zu bytes", v->nnormal, want);
        }
        got = ZSTD_decompressDCtx(d->dctx, d->data, want, data, data_len);
        if (ZSTD_isError(got) || got != want) {
            return xr_error(err, errlen, -EINVAL, "compressed RAM batch: "
                               "%s", ZSTD_isError(got) ?
                               ZSTD_getErrorName(got) : "short frame");
        }
        v->data = d->data;
    }
    return 0;
}
