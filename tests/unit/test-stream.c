/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-stream.c - the migration stream's records (migration/stream.h):
 * what the sender encodes the receiver decodes page for page, zero pages
 * travel as their number only, zstd is used when it pays, and every kind
 * of damage a peer or a link can do is refused with a message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migration/stream.h"

#define PAGE STREAM_PAGE_SIZE

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = next_rand();

        memcpy(p + i, &v, 8);
    }
}

/* The record @iov describes, as one buffer (what a channel carries). */
static uint8_t *flatten(const struct iovec *iov, int n, size_t *len)
{
    uint8_t *buf, *p;

    *len = 0;
    for (int i = 0; i < n; i++) {
        *len += iov[i].iov_len;
    }
    buf = p = malloc(*len);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    return buf;
}

/* Check the record at @rec (of @len bytes) and parse its batch into @v. */
static int decode(StreamDecoder *d, uint8_t *rec, size_t len, uint32_t seq,
                  StreamBatchView *v, char *err, size_t errlen)
{
    uint32_t type, blen;
    int ret;

    ret = stream_record_header_check(rec, seq, &type, &blen, err, errlen);
    if (ret) {
        return ret;
    }
    /* A channel reads exactly the length the header says. */
    if (blen + STREAM_RECORD_HDR_LEN > len) {
        snprintf(err, errlen, "truncated");
        return -ENODATA;
    }
    ret = stream_record_verify(rec, rec + STREAM_RECORD_HDR_LEN, blen, err,
                               errlen);
    if (ret) {
        return ret;
    }
    assert_int_equal(type, STREAM_REC_RAM);
    return stream_batch_parse(d, rec + STREAM_RECORD_HDR_LEN, blen, v, err,
                              errlen);
}

static void test_a_batch_decodes_to_the_pages_sent(void **state)
{
    enum { N = 37 };
    uint8_t *pages = calloc(N, PAGE), *rec;
    StreamBatchView *v = malloc(sizeof(*v));
    StreamBatch *b;
    StreamDecoder *d;
    struct iovec iov[3];
    StreamCodec codec;
    char err[256];
    size_t len;
    unsigned n = 0;

    (void)state;
    assert_non_null(pages);
    fill_random(pages, (size_t)N * PAGE);
    memset(pages + 5 * PAGE, 0, PAGE);          /* two zero pages */
    memset(pages + 20 * PAGE, 0, PAGE);
    assert_int_equal(stream_batch_new(0, &b), 0);
    assert_int_equal(stream_decoder_new(&d), 0);
    stream_batch_reset(b, 3);
    for (unsigned i = 0; i < N; i++) {
        n = stream_batch_add(b, 0x100 + 2 * i, pages + (size_t)i * PAGE);
    }
    assert_int_equal(n, N);
    assert_int_equal(stream_batch_zero_pages(b), 2);
    len = stream_batch_finish(b, 7, iov, &codec);
    assert_int_equal(codec, STREAM_CODEC_NONE);
    rec = flatten(iov, 3, &len);
    /* The zero pages are not on the wire. */
    assert_true(len < (size_t)(N - 1) * PAGE);
    assert_int_equal(decode(d, rec, len, 7, v, err, sizeof(err)), 0);
    assert_int_equal(v->round, 3);
    assert_int_equal(v->npages, N);
    assert_int_equal(v->nnormal, N - 2);
    for (unsigned i = 0, k = 0; i < N; i++) {
        assert_int_equal(v->pfn[i], 0x100 + 2 * i);
        if (i == 5 || i == 20) {
            assert_int_equal(v->kind[i], STREAM_PAGE_ZERO);
            continue;
        }
        assert_int_equal(v->kind[i], STREAM_PAGE_NORMAL);
        assert_memory_equal(v->data + (size_t)k++ * PAGE,
                            pages + (size_t)i * PAGE, PAGE);
    }
    free(rec);
    stream_decoder_free(d);
    stream_batch_free(b);
    free(v);
    free(pages);
}

static void test_absent_frames_travel_as_their_number_only(void **state)
{
    uint8_t page[PAGE], *rec;
    StreamBatchView *v = malloc(sizeof(*v));
    StreamBatch *b;
    StreamDecoder *d;
    struct iovec iov[3];
    StreamCodec codec;
    char err[256];
    size_t len;

    (void)state;
    memset(page, 0x5a, sizeof(page));
    assert_int_equal(stream_batch_new(0, &b), 0);
    assert_int_equal(stream_decoder_new(&d), 0);
    stream_batch_reset(b, 1);
    stream_batch_add(b, 0x9f, page);
    stream_batch_add_absent(b, 0xa0);           /* the VGA hole */
    stream_batch_add(b, 0xc0, page);
    stream_batch_finish(b, 0, iov, &codec);
    assert_int_equal(iov[2].iov_len, 2 * PAGE);
    rec = flatten(iov, 3, &len);
    assert_int_equal(decode(d, rec, len, 0, v, err, sizeof(err)), 0);
    assert_int_equal(v->npages, 3);
    assert_int_equal(v->nnormal, 2);
    assert_int_equal(v->kind[1], STREAM_PAGE_ABSENT);
    assert_int_equal(v->pfn[1], 0xa0);
    assert_memory_equal(v->data + PAGE, page, PAGE);
    free(rec);
    stream_decoder_free(d);
    stream_batch_free(b);
    free(v);
}

/*
 * The receiver's direct way: the description alone, then the pages read
 * into their places, then the checksum over both (stream_record_verifyv):
 * the same batch as stream_batch_parse() sees, and a flipped data byte
 * still caught.
 */
static void test_a_batch_read_in_pieces_checks_as_a_whole(void **state)
{
    enum { N = 9 };
    uint8_t *pages = calloc(N, PAGE), *rec, *body, *dst = calloc(N, PAGE);
    StreamBatchView *v = malloc(sizeof(*v));
    struct iovec iov[3], in[2];
    StreamBatch *b;
    StreamCodec codec;
    char err[256];
    size_t len, dl;
    uint32_t type, blen;

    (void)state;
    fill_random(pages, (size_t)N * PAGE);
    memset(pages + 4 * PAGE, 0, PAGE);
    assert_int_equal(stream_batch_new(0, &b), 0);
    stream_batch_reset(b, 2);
    for (unsigned i = 0; i < N; i++) {
        stream_batch_add(b, 0x40 + i, pages + (size_t)i * PAGE);
    }
    stream_batch_finish(b, 0, iov, &codec);
    rec = flatten(iov, 3, &len);
    assert_int_equal(stream_record_header_check(rec, 0, &type, &blen, err,
                                                sizeof(err)), 0);
    body = rec + STREAM_RECORD_HDR_LEN;
    dl = stream_batch_desc_len(body);
    assert_int_equal(dl, 16 + 8 * N + 8);
    assert_int_equal(stream_batch_parse_desc(body, dl, blen, v, err,
                                             sizeof(err)), 0);
    assert_int_equal(v->npages, N);
    assert_int_equal(v->nnormal, N - 1);
    assert_null(v->data);
    assert_int_equal(v->kind[4], STREAM_PAGE_ZERO);
    /* The data elsewhere (the guest's frames): checked in two pieces. */
    memcpy(dst, body + dl, blen - dl);
    in[0] = (struct iovec) { .iov_base = body, .iov_len = dl };
    in[1] = (struct iovec) { .iov_base = dst, .iov_len = blen - dl };
    assert_int_equal(stream_record_verifyv(rec, in, 2, err, sizeof(err)), 0);
    dst[PAGE + 17] ^= 0x10;
    assert_int_equal(stream_record_verifyv(rec, in, 2, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "fails its checksum"));
    /* A description that does not fit its record, or a bad page count. */
    assert_int_equal(stream_batch_parse_desc(body, dl, blen - PAGE, v, err,
                                             sizeof(err)), -EINVAL);
    body[8] = 0;                                /* npages 0 */
    assert_int_equal(stream_batch_desc_len(body), 0);
    free(rec);
    stream_batch_free(b);
    free(v);
    free(dst);
    free(pages);
}

static void test_compressible_pages_travel_compressed(void **state)
{
    enum { N = STREAM_BATCH_MAX_PAGES };
    uint8_t *pages = malloc((size_t)N * PAGE), *rec;
    StreamBatchView *v = malloc(sizeof(*v));
    StreamBatch *b;
    StreamDecoder *d;
    struct iovec iov[3];
    StreamCodec codec;
    char err[256];
    size_t len;

    (void)state;
    /* Text-like pages: a few distinct bytes, repeated. */
    for (size_t i = 0; i < (size_t)N * PAGE; i++) {
        pages[i] = (uint8_t)("guest kernel text "[(i * 7 + i / PAGE) % 18]);
    }
    assert_int_equal(stream_batch_new(3, &b), 0);
    assert_int_equal(stream_decoder_new(&d), 0);
    stream_batch_reset(b, 1);
    for (unsigned i = 0; i < N; i++) {
        stream_batch_add(b, i, pages + (size_t)i * PAGE);
    }
    stream_batch_finish(b, 0, iov, &codec);
    assert_int_equal(codec, STREAM_CODEC_ZSTD);
    rec = flatten(iov, 3, &len);
    assert_true(len < (size_t)N * PAGE / 8);
    assert_int_equal(decode(d, rec, len, 0, v, err, sizeof(err)), 0);
    assert_int_equal(v->codec, STREAM_CODEC_ZSTD);
    assert_memory_equal(v->data, pages, (size_t)N * PAGE);
    free(rec);
    stream_decoder_free(d);
    stream_batch_free(b);
    free(v);
    free(pages);
}

static void test_random_pages_are_sent_raw_even_with_zstd_on(void **state)
{
    uint8_t page[PAGE];
    StreamBatch *b;
    struct iovec iov[3];
    StreamCodec codec;

    (void)state;
    fill_random(page, sizeof(page));
    assert_int_equal(stream_batch_new(3, &b), 0);
    stream_batch_reset(b, 1);
    stream_batch_add(b, 9, page);
    stream_batch_finish(b, 0, iov, &codec);
    assert_int_equal(codec, STREAM_CODEC_NONE);
    assert_int_equal(iov[2].iov_len, PAGE);
    stream_batch_free(b);
}

/* One record of 4 pages (one zero), sequence number 0. */
static uint8_t *small_record(int level, size_t *len)
{
    uint8_t pages[4 * PAGE];
    StreamBatch *b;
    struct iovec iov[3];
    StreamCodec codec;
    uint8_t *rec;

    memset(pages, 'x', sizeof(pages));
    memset(pages + PAGE, 0, PAGE);
    assert_int_equal(stream_batch_new(level, &b), 0);
    stream_batch_reset(b, 2);
    for (unsigned i = 0; i < 4; i++) {
        stream_batch_add(b, 10 + i, pages + i * PAGE);
    }
    stream_batch_finish(b, 0, iov, &codec);
    rec = flatten(iov, 3, len);
    stream_batch_free(b);
    return rec;
}

static void test_every_flipped_byte_is_refused(void **state)
{
    StreamBatchView *v = malloc(sizeof(*v));
    StreamDecoder *d;
    char err[256];
    size_t len;

    (void)state;
    assert_int_equal(stream_decoder_new(&d), 0);
    for (int level = 0; level <= 3; level += 3) {
        uint8_t *rec = small_record(level, &len);

        for (size_t i = 0; i < len; i++) {
            rec[i] ^= 0x20;
            err[0] = 0;
            assert_int_not_equal(decode(d, rec, len, 0, v, err, sizeof(err)),
                                 0);
            assert_true(err[0] != 0);
            rec[i] ^= 0x20;
        }
        assert_int_equal(decode(d, rec, len, 0, v, err, sizeof(err)), 0);
        free(rec);
    }
    stream_decoder_free(d);
    free(v);
}

static void test_a_lost_or_reordered_record_is_named(void **state)
{
    uint32_t type, blen;
    char err[256];
    size_t len;
    uint8_t *rec = small_record(0, &len);

    (void)state;
    assert_int_equal(stream_record_header_check(rec, 1, &type, &blen, err,
                                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "record 1 expected, record 0 (RAM)"));
    free(rec);
}

static void test_a_huge_body_is_refused_before_it_is_read(void **state)
{
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    struct iovec iov = { .iov_base = hdr, .iov_len = 0 };
    uint32_t type, blen;
    char err[256];

    (void)state;
    stream_record_header(STREAM_REC_LAYOUT, 0, &iov, 1, hdr);
    hdr[7] = 0x7f;                      /* length ~2 GiB */
    assert_int_equal(stream_record_header_check(hdr, 0, &type, &blen, err,
                                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "claims"));
}

/* A hand-made RAM body: @n entries, then data_len and @data_len bytes. */
static size_t craft(uint8_t *body, uint32_t n, const uint64_t *entries,
                    uint32_t codec, uint32_t data_len)
{
    size_t off = 16;

    memset(body, 0, 16);
    memcpy(body + 8, &n, 4);
    body[12] = (uint8_t)codec;
    for (uint32_t i = 0; i < n; i++, off += 8) {
        memcpy(body + off, &entries[i], 8);
    }
    memcpy(body + off, &data_len, 4);
    memset(body + off + 4, 0, 4);
    memset(body + off + 8, 'p', data_len);
    return off + 8 + data_len;
}

static void test_a_peer_cannot_send_a_page_twice_or_lie_about_sizes(
    void **state)
{
    static uint8_t body[64 + 2 * PAGE];
    StreamBatchView *v = malloc(sizeof(*v));
    StreamDecoder *d;
    char err[256];
    uint64_t twice[2] = { 5 << 4, 5 << 4 }, down[2] = { 6 << 4, 5 << 4 };
    uint64_t ok[2] = { 5 << 4, 6 << 4 }, kind[1] = { (5 << 4) | 7 };
    size_t len;

    (void)state;
    assert_int_equal(stream_decoder_new(&d), 0);
    len = craft(body, 2, ok, STREAM_CODEC_NONE, 2 * PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), 0);
    len = craft(body, 2, twice, STREAM_CODEC_NONE, 2 * PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "increasing order"));
    len = craft(body, 2, down, STREAM_CODEC_NONE, 2 * PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    len = craft(body, 1, kind, STREAM_CODEC_NONE, PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown kind"));
    len = craft(body, 2, ok, STREAM_CODEC_NONE, PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    len = craft(body, 2, ok, 9, 2 * PAGE);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "codec"));
    /* zstd that is not a frame of exactly the pages' size */
    len = craft(body, 2, ok, STREAM_CODEC_ZSTD, 100);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    /* a count beyond the limit */
    len = craft(body, 0, ok, STREAM_CODEC_NONE, 0);
    assert_int_equal(stream_batch_parse(d, body, (uint32_t)len, v, err,
                                        sizeof(err)), -EINVAL);
    stream_decoder_free(d);
    free(v);
}

static void test_stream_header_round_trips_and_refuses_strangers(void **state)
{
    StreamHeader h = { .version = STREAM_VERSION,
                       .role = STREAM_CHANNEL_DATA, .channel = 2,
                       .nchannels = 2 }, out;
    uint8_t buf[STREAM_HEADER_LEN];
    char err[256];

    (void)state;
    stream_header_encode(&h, buf);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)), 0);
    assert_memory_equal(&h, &out, sizeof(h));
    h.channel = 3;
    stream_header_encode(&h, buf);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)),
                     -EINVAL);
    h.channel = 1;
    h.version = 2;
    stream_header_encode(&h, buf);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)),
                     -EPROTO);
    assert_non_null(strstr(err, "version 2"));
    memcpy(buf, "XENRAMDS", 8);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)),
                     -EPROTO);
    /* A recovery's connection says so; no other flag exists. */
    h.version = STREAM_VERSION;
    h.flags = STREAM_HEADER_F_RESUME;
    stream_header_encode(&h, buf);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)), 0);
    assert_int_equal(out.flags, STREAM_HEADER_F_RESUME);
    h.flags = 0x2;
    stream_header_encode(&h, buf);
    assert_int_equal(stream_header_decode(buf, &out, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "flags 0x2"));
}

static void test_hvm_params_round_trip_and_refuse_bad_lengths(void **state)
{
    const uint32_t idx[2] = { 1, 44 };
    const uint64_t val[2] = { 0xfeffc, 0x1234567890ull };
    uint32_t gi[4];
    uint64_t gv[4];
    uint8_t body[48];
    char err[256];
    unsigned n;

    (void)state;
    stream_hvm_params_encode(idx, val, 2, body);
    assert_int_equal(stream_hvm_params_decode(body, 32, gi, gv, 4, &n, err,
                                              sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(gi, idx, sizeof(idx));
    assert_memory_equal(gv, val, sizeof(val));
    assert_int_equal(stream_hvm_params_decode(body, 31, gi, gv, 4, &n, err,
                                              sizeof(err)), -EINVAL);
    assert_int_equal(stream_hvm_params_decode(body, 32, gi, gv, 1, &n, err,
                                              sizeof(err)), -EINVAL);
    body[20] = 1;                               /* padding of entry 1 */
    assert_int_equal(stream_hvm_params_decode(body, 32, gi, gv, 4, &n, err,
                                              sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "padding"));
}

static void test_zero_detection_sees_a_single_set_byte(void **state)
{
    static uint8_t page[PAGE];

    (void)state;
    assert_true(stream_page_is_zero(page));
    for (size_t i = 0; i < PAGE; i += 511) {
        page[i] = 1;
        assert_false(stream_page_is_zero(page));
        page[i] = 0;
    }
    page[PAGE - 1] = 0x80;
    assert_false(stream_page_is_zero(page));
}

/* ---- postcopy records ------------------------------------------------- */

static void test_postcopy_advise_round_trips_and_refuses_flags(void **state)
{
    uint8_t body[STREAM_POSTCOPY_ADVISE_LEN];
    uint64_t ps;
    char err[256];

    (void)state;
    stream_postcopy_advise_encode(4096, body);
    assert_int_equal(stream_postcopy_advise_decode(body, sizeof(body), &ps,
                                                   err, sizeof(err)), 0);
    assert_int_equal(ps, 4096);
    assert_int_equal(stream_postcopy_advise_decode(body, 15, &ps, err,
                                                   sizeof(err)), -EINVAL);
    body[8] = 1;
    assert_int_equal(stream_postcopy_advise_decode(body, sizeof(body), &ps,
                                                   err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "flags 0x1"));
}

static void test_a_discard_round_trips(void **state)
{
    const StreamRange r[3] = { { 0, 1 }, { 5, 10 }, { 1000, 24 } };
    StreamRange got[STREAM_DISCARD_MAX_RANGES];
    uint8_t body[256];
    char name[256], err[256];
    unsigned n;
    size_t len = stream_postcopy_discard_len("xen.ram", 3);

    (void)state;
    assert_int_equal(len, 16 + 8 + 48);
    stream_postcopy_discard_encode("xen.ram", r, 3, body);
    assert_int_equal(stream_postcopy_discard_decode(body, (uint32_t)len, name,
                                                    got, &n, err,
                                                    sizeof(err)), 0);
    assert_string_equal(name, "xen.ram");
    assert_int_equal(n, 3);
    assert_memory_equal(got, r, sizeof(r));
}

/* Encode @r, patch byte @at to @v (if @at >= 0), decode: its result. */
static int discard_with(const StreamRange *r, unsigned nr, long at,
                        uint8_t v, uint32_t cut, char *err)
{
    static StreamRange got[STREAM_DISCARD_MAX_RANGES];
    uint8_t body[512];
    char name[256];
    unsigned n;
    size_t len = stream_postcopy_discard_len("vga.vram", nr);

    stream_postcopy_discard_encode("vga.vram", r, nr, body);
    if (at >= 0) {
        body[at] = v;
    }
    return stream_postcopy_discard_decode(body, (uint32_t)len - cut, name,
                                          got, &n, err, 256);
}

static void test_a_discard_with_bad_ranges_or_name_is_refused(void **state)
{
    const StreamRange ok[2] = { { 2, 2 }, { 8, 1 } };
    const StreamRange touching[2] = { { 2, 2 }, { 4, 1 } };
    const StreamRange backwards[2] = { { 8, 1 }, { 2, 2 } };
    const StreamRange empty[1] = { { 3, 0 } };
    const StreamRange wraps[1] = { { UINT64_MAX - 1, 4 } };
    char err[256];

    (void)state;
    assert_int_equal(discard_with(ok, 2, -1, 0, 0, err), 0);
    /* Ranges must be apart: touching ones would have been one. */
    assert_int_equal(discard_with(touching, 2, -1, 0, 0, err), -EINVAL);
    assert_non_null(strstr(err, "range 1"));
    assert_int_equal(discard_with(backwards, 2, -1, 0, 0, err), -EINVAL);
    assert_int_equal(discard_with(empty, 1, -1, 0, 0, err), -EINVAL);
    assert_int_equal(discard_with(wraps, 1, -1, 0, 0, err), -EINVAL);
    /* A truncated body, and a count that does not match it. */
    assert_int_equal(discard_with(ok, 2, -1, 0, 1, err), -EINVAL);
    assert_int_equal(discard_with(ok, 2, 16, 3, 0, err), -EINVAL);
    /* The name: an escape character, padding, length 0 or past the end. */
    assert_int_equal(discard_with(ok, 2, 3, 0x1b, 0, err), -EINVAL);
    assert_non_null(strstr(err, "printable ASCII"));
    assert_int_equal(discard_with(ok, 2, 12, 'x', 0, err), -EINVAL);
    assert_non_null(strstr(err, "padding"));
    assert_int_equal(discard_with(ok, 2, 0, 0, 0, err), -EINVAL);
    assert_int_equal(discard_with(ok, 2, 0, 200, 0, err), -EINVAL);
    assert_int_equal(discard_with(ok, 2, 1, 1, 0, err), -EINVAL);
}

static void test_a_page_request_round_trips_and_is_bounded(void **state)
{
    uint8_t body[64];
    char name[256], err[256];
    uint64_t page;
    uint32_t n;
    size_t len = stream_page_request_len("pc.ram");

    (void)state;
    assert_int_equal(len, 8 + 16);
    stream_page_request_encode("pc.ram", 0x1234, 7, body);
    assert_int_equal(stream_page_request_decode(body, (uint32_t)len, name,
                                                &page, &n, err, sizeof(err)),
                     0);
    assert_string_equal(name, "pc.ram");
    assert_int_equal(page, 0x1234);
    assert_int_equal(n, 7);
    stream_page_request_encode("pc.ram", 0, STREAM_BATCH_MAX_PAGES + 1, body);
    assert_int_equal(stream_page_request_decode(body, (uint32_t)len, name,
                                                &page, &n, err, sizeof(err)),
                     -EINVAL);
    stream_page_request_encode("pc.ram", UINT64_MAX, 2, body);
    assert_int_equal(stream_page_request_decode(body, (uint32_t)len, name,
                                                &page, &n, err, sizeof(err)),
                     -EINVAL);
    stream_page_request_encode("pc.ram", 0, 1, body);
    assert_int_equal(stream_page_request_decode(body, (uint32_t)len - 1, name,
                                                &page, &n, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(stream_page_request_decode(body, 1, name, &page, &n,
                                                err, sizeof(err)), -EINVAL);
}

static void test_resume_records_round_trip_and_are_checked(void **state)
{
    uint8_t body[64];
    char err[256];
    uint64_t v;

    (void)state;
    stream_postcopy_resume_encode(7, body);
    assert_int_equal(stream_postcopy_resume_decode(
                         body, STREAM_POSTCOPY_RESUME_LEN, &v, err,
                         sizeof(err)), 0);
    assert_int_equal(v, 7);
    /* Postcopy's round follows round 1 at least. */
    stream_postcopy_resume_encode(1, body);
    assert_int_equal(stream_postcopy_resume_decode(
                         body, STREAM_POSTCOPY_RESUME_LEN, &v, err,
                         sizeof(err)), -EINVAL);
    stream_postcopy_resume_encode(3, body);
    body[8] = 1;
    assert_int_equal(stream_postcopy_resume_decode(
                         body, STREAM_POSTCOPY_RESUME_LEN, &v, err,
                         sizeof(err)), -EINVAL);
    assert_int_equal(stream_postcopy_resume_decode(
                         body, STREAM_POSTCOPY_RESUME_LEN - 1, &v, err,
                         sizeof(err)), -EINVAL);
    stream_resume_ack_encode(5, body);
    assert_int_equal(stream_resume_ack_decode(body, STREAM_RESUME_ACK_LEN,
                                              &v, err, sizeof(err)), 0);
    assert_int_equal(v, 5);
    body[15] = 0x80;
    assert_int_equal(stream_resume_ack_decode(body, STREAM_RESUME_ACK_LEN,
                                              &v, err, sizeof(err)),
                     -EINVAL);
}

static void test_a_received_bitmap_round_trips_and_is_checked(void **state)
{
    uint64_t words[3] = { 0x8000000000000001ull, 0, ~0ull }, first, n;
    size_t len = stream_recv_bitmap_len("pc.ram", 130);
    uint8_t body[128];
    const uint8_t *w;
    char name[256], err[256];

    (void)state;
    assert_int_equal(len, 8 + 16 + 3 * 8);
    /* Bits past page 130 are not sent, whatever the caller's word holds. */
    stream_recv_bitmap_encode("pc.ram", 64, 130, words, body);
    assert_int_equal(stream_recv_bitmap_decode(body, (uint32_t)len, name,
                                               &first, &n, &w, err,
                                               sizeof(err)), 0);
    assert_string_equal(name, "pc.ram");
    assert_int_equal(first, 64);
    assert_int_equal(n, 130);
    assert_int_equal(stream_recv_bitmap_word(w, 0), words[0]);
    assert_int_equal(stream_recv_bitmap_word(w, 1), 0);
    assert_int_equal(stream_recv_bitmap_word(w, 2), 0x3);
    /* A bit past the last page, a length that does not fit, a start
     * that is no multiple of 64, no pages: refused. */
    body[len - 1] = 0x80;
    assert_int_equal(stream_recv_bitmap_decode(body, (uint32_t)len, name,
                                               &first, &n, &w, err,
                                               sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "past its last page"));
    stream_recv_bitmap_encode("pc.ram", 64, 130, words, body);
    assert_int_equal(stream_recv_bitmap_decode(body, (uint32_t)len - 8, name,
                                               &first, &n, &w, err,
                                               sizeof(err)), -EINVAL);
    stream_recv_bitmap_encode("pc.ram", 65, 130, words, body);
    assert_int_equal(stream_recv_bitmap_decode(body, (uint32_t)len, name,
                                               &first, &n, &w, err,
                                               sizeof(err)), -EINVAL);
    stream_recv_bitmap_encode("pc.ram", 0, 0, words, body);
    assert_int_equal(stream_recv_bitmap_decode(
                         body, (uint32_t)stream_recv_bitmap_len("pc.ram", 0),
                         name, &first, &n, &w, err, sizeof(err)), -EINVAL);
}

static void test_postcopy_prepare_round_trips_and_is_checked(void **state)
{
    uint8_t body[STREAM_POSTCOPY_PREPARE_LEN + 8] = { 0 };
    uint64_t round = 0;
    char err[256];

    (void)state;
    assert_int_equal(STREAM_POSTCOPY_PREPARE_LEN, 16);
    stream_postcopy_prepare_encode(0x0102030405060708ull, body);
    /* u64 round, u64 flags 0, little-endian. */
    assert_int_equal(body[0], 0x08);
    assert_int_equal(body[7], 0x01);
    for (int i = 8; i < 16; i++) {
        assert_int_equal(body[i], 0);
    }
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &round, err,
                         sizeof(err)), 0);
    assert_int_equal(round, 0x0102030405060708ull);
    stream_postcopy_prepare_encode(1, body);
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &round, err,
                         sizeof(err)), 0);
    assert_int_equal(round, 1);
    /* A body a byte short or long. */
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN - 1, &round, err,
                         sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "POSTCOPY_PREPARE of 15 bytes (16 "
                                "expected)"));
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN + 1, &round, err,
                         sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "of 17 bytes"));
    assert_int_equal(stream_postcopy_prepare_decode(body, 0, &round, err,
                                                    sizeof(err)), -EINVAL);
    /* A flag, any: this build knows none. */
    body[8] = 1;
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &round, err,
                         sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "flags 0x1,"));
    body[8] = 0;
    body[15] = 0x80;
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &round, err,
                         sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "flags 0x8000000000000000"));
    /* Round 0: before the full pass. */
    stream_postcopy_prepare_encode(0, body);
    assert_int_equal(stream_postcopy_prepare_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &round, err,
                         sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "POSTCOPY_PREPARE after round 0"));
}

static void test_postcopy_prepared_round_trips_and_is_checked(void **state)
{
    uint8_t body[STREAM_POSTCOPY_PREPARED_LEN + 8] = { 0 };
    uint64_t pages = 0, ns = 0, flags = 0;
    char err[256];

    (void)state;
    assert_int_equal(STREAM_POSTCOPY_PREPARED_LEN, 24);
    /* Done, and progress (no flag). */
    stream_postcopy_prepared_encode(65536, 7200000000ull,
                                    STREAM_PREPARED_F_DONE, body);
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN, &pages, &ns,
                         &flags, err, sizeof(err)), 0);
    assert_int_equal(pages, 65536);
    assert_int_equal(ns, 7200000000ull);
    assert_int_equal(flags, STREAM_PREPARED_F_DONE);
    stream_postcopy_prepared_encode(UINT64_MAX, 1, 0, body);
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN, &pages, &ns,
                         &flags, err, sizeof(err)), 0);
    assert_int_equal(pages, UINT64_MAX);
    assert_int_equal(ns, 1);
    assert_int_equal(flags, 0);
    /* A body a byte short or long. */
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN - 1, &pages, &ns,
                         &flags, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "POSTCOPY_PREPARED of 23 bytes (24 "
                                "expected)"));
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN + 1, &pages, &ns,
                         &flags, err, sizeof(err)), -EINVAL);
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARE_LEN, &pages, &ns,
                         &flags, err, sizeof(err)), -EINVAL);
    /* Flags other than DONE, with it or alone. */
    stream_postcopy_prepared_encode(1, 2, STREAM_PREPARED_F_DONE | 0x2,
                                    body);
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN, &pages, &ns,
                         &flags, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "POSTCOPY_PREPARED has flags 0x3"));
    stream_postcopy_prepared_encode(1, 2, 1ull << 63, body);
    assert_int_equal(stream_postcopy_prepared_decode(
                         body, STREAM_POSTCOPY_PREPARED_LEN, &pages, &ns,
                         &flags, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "flags 0x8000000000000000"));
}

static void test_prepare_records_are_known_and_named(void **state)
{
    uint8_t rec[STREAM_RECORD_HDR_LEN + STREAM_POSTCOPY_PREPARED_LEN];
    uint8_t *body = rec + STREAM_RECORD_HDR_LEN;
    struct iovec iov = { .iov_base = body };
    uint32_t type, len;
    uint64_t round;
    char buf[32], err[256];

    (void)state;
    /* The numbers on the wire. */
    assert_int_equal(STREAM_REC_POSTCOPY_PREPARE, 17);
    assert_int_equal(STREAM_REC_POSTCOPY_PREPARED, 18);
    assert_int_equal(STREAM_REC_MAX, STREAM_REC_POSTCOPY_PREPARED);
    assert_string_equal(stream_record_name(STREAM_REC_POSTCOPY_PREPARE, buf,
                                           sizeof(buf)), "POSTCOPY_PREPARE");
    assert_string_equal(stream_record_name(STREAM_REC_POSTCOPY_PREPARED, buf,
                                           sizeof(buf)), "POSTCOPY_PREPARED");
    assert_string_equal(stream_record_name(19, buf, sizeof(buf)), "type 19");
    /* A PREPARE record passes the header's checks and its checksum. */
    stream_postcopy_prepare_encode(4, body);
    iov.iov_len = STREAM_POSTCOPY_PREPARE_LEN;
    stream_record_header(STREAM_REC_POSTCOPY_PREPARE, 9, &iov, 1, rec);
    assert_int_equal(stream_record_header_check(rec, 9, &type, &len, err,
                                                sizeof(err)), 0);
    assert_int_equal(type, STREAM_REC_POSTCOPY_PREPARE);
    assert_int_equal(len, STREAM_POSTCOPY_PREPARE_LEN);
    assert_int_equal(stream_record_verify(rec, body, len, err, sizeof(err)),
                     0);
    assert_int_equal(stream_postcopy_prepare_decode(body, len, &round, err,
                                                    sizeof(err)), 0);
    assert_int_equal(round, 4);
    /* Out of sequence, it is named. */
    assert_int_equal(stream_record_header_check(rec, 10, &type, &len, err,
                                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "record 9 (POSTCOPY_PREPARE) received"));
    /* A PREPARED whose body was damaged: named in the checksum's refusal. */
    stream_postcopy_prepared_encode(10, 20, STREAM_PREPARED_F_DONE, body);
    iov.iov_len = STREAM_POSTCOPY_PREPARED_LEN;
    stream_record_header(STREAM_REC_POSTCOPY_PREPARED, 3, &iov, 1, rec);
    assert_int_equal(stream_record_header_check(rec, 3, &type, &len, err,
                                                sizeof(err)), 0);
    assert_int_equal(type, STREAM_REC_POSTCOPY_PREPARED);
    body[0] ^= 1;
    assert_int_equal(stream_record_verify(rec, body, len, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "(POSTCOPY_PREPARED, 24 bytes) fails its "
                                "checksum"));
    /* One past the last type is unknown. */
    stream_record_header(STREAM_REC_MAX + 1, 3, &iov, 1, rec);
    assert_int_equal(stream_record_header_check(rec, 3, &type, &len, err,
                                                sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown type 19"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_records_round_trip_and_are_checked),
        cmocka_unit_test(test_a_received_bitmap_round_trips_and_is_checked),
        cmocka_unit_test(test_a_batch_decodes_to_the_pages_sent),
        cmocka_unit_test(test_absent_frames_travel_as_their_number_only),
        cmocka_unit_test(test_a_batch_read_in_pieces_checks_as_a_whole),
        cmocka_unit_test(test_compressible_pages_travel_compressed),
        cmocka_unit_test(test_random_pages_are_sent_raw_even_with_zstd_on),
        cmocka_unit_test(test_every_flipped_byte_is_refused),
        cmocka_unit_test(test_a_lost_or_reordered_record_is_named),
        cmocka_unit_test(test_a_huge_body_is_refused_before_it_is_read),
        cmocka_unit_test(
            test_a_peer_cannot_send_a_page_twice_or_lie_about_sizes),
        cmocka_unit_test(test_stream_header_round_trips_and_refuses_strangers),
        cmocka_unit_test(test_hvm_params_round_trip_and_refuse_bad_lengths),
        cmocka_unit_test(test_zero_detection_sees_a_single_set_byte),
        cmocka_unit_test(test_postcopy_advise_round_trips_and_refuses_flags),
        cmocka_unit_test(test_a_discard_round_trips),
        cmocka_unit_test(test_a_discard_with_bad_ranges_or_name_is_refused),
        cmocka_unit_test(test_a_page_request_round_trips_and_is_bounded),
        cmocka_unit_test(test_postcopy_prepare_round_trips_and_is_checked),
        cmocka_unit_test(test_postcopy_prepared_round_trips_and_is_checked),
        cmocka_unit_test(test_prepare_records_are_known_and_named),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
