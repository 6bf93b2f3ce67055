/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gen-stream-seeds.c - writes the seeds of tests/fuzz/corpus/fuzz-stream/
 * for the postcopy records, in fuzz-stream's input format: a stream
 * header, a record header (its checksum is fixed up by the harness), the
 * body.  Each record valid, and broken the ways the decoders must refuse.
 *
 *   make build/obj/tests/fuzz/gen-stream-seeds.o build/libxenram-internal.a
 *   cc -o build/gen-stream-seeds build/obj/tests/fuzz/gen-stream-seeds.o \
 *       build/libxenram-internal.a -lzstd -lxxhash -lz
 *   build/gen-stream-seeds tests/fuzz/corpus/fuzz-stream
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migration/stream.h"

static const char *dir;

static void put(const char *name, uint32_t type, const uint8_t *body,
                size_t len)
{
    StreamHeader h = { .version = STREAM_VERSION,
                       .role = STREAM_CHANNEL_CONTROL, .channel = 0,
                       .nchannels = 2 };
    uint8_t sh[STREAM_HEADER_LEN], rh[STREAM_RECORD_HDR_LEN];
    struct iovec iov = { .iov_base = (void *)body, .iov_len = len };
    char path[512];
    FILE *f;

    stream_header_encode(&h, sh);
    stream_record_header(type, 1, &iov, 1, rh);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(sh, 1, sizeof(sh), f) != sizeof(sh) ||
        fwrite(rh, 1, sizeof(rh), f) != sizeof(rh) ||
        (len && fwrite(body, 1, len, f) != len) || fclose(f)) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    static uint8_t buf[1 << 16], page[STREAM_PAGE_SIZE];
    StreamRange r[3] = { { 0, 1 }, { 8, 16 }, { 100, 412 } };
    StreamBatch *b;
    struct iovec iov[3];
    StreamCodec codec;
    size_t n;

    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];

    /* A postcopy RAM batch: a normal, a zero and an absent page. */
    if (stream_batch_new(0, &b)) {
        return 1;
    }
    memset(page, 0x5a, sizeof(page));
    stream_batch_reset(b, 3);
    stream_batch_set_postcopy(b);
    stream_batch_add(b, 0x10, page);
    memset(page, 0, sizeof(page));
    stream_batch_add(b, 0x11, page);
    stream_batch_add_absent(b, 0x20);
    stream_batch_finish(b, 1, iov, &codec);
    n = iov[1].iov_len + iov[2].iov_len;
    memcpy(buf, iov[1].iov_base, iov[1].iov_len);
    memcpy(buf + iov[1].iov_len, iov[2].iov_base, iov[2].iov_len);
    put("postcopy-batch", STREAM_REC_RAM, buf, n);
    buf[13] |= 0x80;                    /* a flag this build does not know */
    put("refused-batch-flag", STREAM_REC_RAM, buf, n);
    stream_batch_free(b);

    stream_postcopy_listen_encode(2, 0, buf);
    put("listen", STREAM_REC_POSTCOPY_LISTEN, buf, STREAM_POSTCOPY_LISTEN_LEN);
    stream_postcopy_listen_encode(3, STREAM_LISTEN_F_PREEMPT, buf);
    put("listen-preempt", STREAM_REC_POSTCOPY_LISTEN, buf,
        STREAM_POSTCOPY_LISTEN_LEN);
    stream_postcopy_listen_encode(0, 0, buf);
    put("refused-listen-round-0", STREAM_REC_POSTCOPY_LISTEN, buf,
        STREAM_POSTCOPY_LISTEN_LEN);
    stream_postcopy_listen_encode(2, 0, buf);
    buf[8] = 2;                         /* a flag this build does not know */
    put("refused-listen-flags", STREAM_REC_POSTCOPY_LISTEN, buf,
        STREAM_POSTCOPY_LISTEN_LEN);
    put("refused-listen-short", STREAM_REC_POSTCOPY_LISTEN, buf, 8);

    /* PREPARE (the eviction done ahead) and the destination's PREPARED. */
    stream_postcopy_prepare_encode(2, buf);
    put("prepare", STREAM_REC_POSTCOPY_PREPARE, buf,
        STREAM_POSTCOPY_PREPARE_LEN);
    stream_postcopy_prepare_encode(0, buf);
    put("refused-prepare-round-0", STREAM_REC_POSTCOPY_PREPARE, buf,
        STREAM_POSTCOPY_PREPARE_LEN);
    stream_postcopy_prepare_encode(2, buf);
    buf[8] = 1;                         /* a flag this build does not know */
    put("refused-prepare-flags", STREAM_REC_POSTCOPY_PREPARE, buf,
        STREAM_POSTCOPY_PREPARE_LEN);
    put("refused-prepare-short", STREAM_REC_POSTCOPY_PREPARE, buf, 8);
    stream_postcopy_prepare_encode(2, buf);
    memset(buf + STREAM_POSTCOPY_PREPARE_LEN, 0, 8);
    put("refused-prepare-long", STREAM_REC_POSTCOPY_PREPARE, buf,
        STREAM_POSTCOPY_PREPARE_LEN + 8);
    stream_postcopy_prepared_encode(65536, 7200000000ull,
                                    STREAM_PREPARED_F_DONE, buf);
    put("prepared-done", STREAM_REC_POSTCOPY_PREPARED, buf,
        STREAM_POSTCOPY_PREPARED_LEN);
    stream_postcopy_prepared_encode(9000, 1000000000ull, 0, buf);
    put("prepared-progress", STREAM_REC_POSTCOPY_PREPARED, buf,
        STREAM_POSTCOPY_PREPARED_LEN);
    stream_postcopy_prepared_encode(9000, 1000000000ull,
                                    STREAM_PREPARED_F_DONE | 0x2, buf);
    put("refused-prepared-flags", STREAM_REC_POSTCOPY_PREPARED, buf,
        STREAM_POSTCOPY_PREPARED_LEN);
    put("refused-prepared-short", STREAM_REC_POSTCOPY_PREPARED, buf,
        STREAM_POSTCOPY_PREPARED_LEN - 8);
    stream_postcopy_prepared_encode(9000, 1000000000ull,
                                    STREAM_PREPARED_F_DONE, buf);
    memset(buf + STREAM_POSTCOPY_PREPARED_LEN, 0, 8);
    put("refused-prepared-long", STREAM_REC_POSTCOPY_PREPARED, buf,
        STREAM_POSTCOPY_PREPARED_LEN + 8);

    stream_postcopy_advise_encode(STREAM_PAGE_SIZE, buf);
    put("advise", STREAM_REC_POSTCOPY_ADVISE, buf, 16);

    n = stream_postcopy_discard_len("xen.ram", 3);
    stream_postcopy_discard_encode("xen.ram", r, 3, buf);
    put("discard", STREAM_REC_POSTCOPY_DISCARD, buf, n);
    r[1].start = 0;                     /* overlapping, out of order */
    stream_postcopy_discard_encode("xen.ram", r, 3, buf);
    put("refused-discard-overlap", STREAM_REC_POSTCOPY_DISCARD, buf, n);
    r[1] = (StreamRange) { 8, 0 };      /* empty */
    stream_postcopy_discard_encode("xen.ram", r, 3, buf);
    put("refused-discard-empty", STREAM_REC_POSTCOPY_DISCARD, buf, n);
    put("refused-discard-truncated", STREAM_REC_POSTCOPY_DISCARD, buf, n - 5);

    n = stream_page_request_len("xen.hotplug.0");
    stream_page_request_encode("xen.hotplug.0", 0x3ff, 1, buf);
    put("page-request", STREAM_REC_PAGE_REQUEST, buf, n);
    stream_page_request_encode("xen.ram", UINT64_MAX - 1, 4, buf);
    put("refused-page-request-wrap", STREAM_REC_PAGE_REQUEST, buf,
        stream_page_request_len("xen.ram"));
    stream_page_request_encode("xen.ram", 0, STREAM_BATCH_MAX_PAGES + 1, buf);
    put("refused-page-request-too-many", STREAM_REC_PAGE_REQUEST, buf,
        stream_page_request_len("xen.ram"));
    stream_page_request_encode("", 0, 1, buf);
    put("refused-page-request-no-name", STREAM_REC_PAGE_REQUEST, buf,
        stream_page_request_len(""));

    /* Recovery: POSTCOPY_RESUME, RECV_BITMAP, RESUME_ACK. */
    stream_postcopy_resume_encode(3, buf);
    put("postcopy-resume", STREAM_REC_POSTCOPY_RESUME, buf,
        STREAM_POSTCOPY_RESUME_LEN);
    stream_postcopy_resume_encode(1, buf);
    put("refused-postcopy-resume-round-1", STREAM_REC_POSTCOPY_RESUME, buf,
        STREAM_POSTCOPY_RESUME_LEN);
    {
        uint64_t words[4] = { 0xf0f0f0f0f0f0f0f0ull, 1, 0, ~0ull };

        n = stream_recv_bitmap_len("xen.ram", 200);
        stream_recv_bitmap_encode("xen.ram", 128, 200, words, buf);
        put("recv-bitmap", STREAM_REC_RECV_BITMAP, buf, n);
        buf[n - 1] = 0xff;
        put("refused-recv-bitmap-past-end", STREAM_REC_RECV_BITMAP, buf, n);
        stream_recv_bitmap_encode("xen.ram", 129, 200, words, buf);
        put("refused-recv-bitmap-unaligned", STREAM_REC_RECV_BITMAP, buf, n);
        stream_recv_bitmap_encode("xen.ram", 128, 200, words, buf);
        put("refused-recv-bitmap-truncated", STREAM_REC_RECV_BITMAP, buf,
            n - 8);
    }
    stream_resume_ack_encode(2, buf);
    put("resume-ack", STREAM_REC_RESUME_ACK, buf, STREAM_RESUME_ACK_LEN);
    return 0;
}
