/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the own engine's stream loader (migration/stream.c)
 * must refuse or accept any record without crashing, reading out of
 * bounds or yielding more data than a batch's pages: a stream header, then
 * one record (header and body) whose checksum the harness fixes up, so
 * that mutations reach the parsers instead of stopping at the checksum.
 *
 * The same function runs over the committed corpus in `make check`
 * (tests/fuzz/replay.c), so every input ever found stays a test.  The
 * seeds of tests/fuzz/corpus/fuzz-stream/ (the postcopy records: a RAM
 * batch with the POSTCOPY flag, LISTEN, PREPARE, PREPARED, DISCARD,
 * PAGE_REQUEST, ADVISE and recovery's, each valid and broken) come from
 * tests/fuzz/gen-stream-seeds.c.  An accepted LISTEN, PREPARE or PREPARED
 * carries only the flags this build knows, and PREPARE and PREPARED
 * encode again to the very bytes that were accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migration/devstate.h"
#include "migration/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static StreamDecoder *dec;
    static StreamBatchView view;
    size_t off = STREAM_HEADER_LEN + STREAM_RECORD_HDR_LEN;
    uint8_t hdr[STREAM_RECORD_HDR_LEN];
    struct iovec iov;
    StreamHeader sh;
    uint32_t type, len, seq;
    char err[256];

    if (!dec && stream_decoder_new(&dec)) {
        abort();
    }
    if (size < off) {
        return 0;
    }
    stream_header_decode(data, &sh, err, sizeof(err));
    /* The record header as the sender would have written it for the body. */
    memcpy(hdr, data + STREAM_HEADER_LEN, sizeof(hdr));
    memcpy(&type, hdr, 4);
    memcpy(&seq, hdr + 8, 4);
    iov = (struct iovec) { .iov_base = (void *)(data + off),
                           .iov_len = size - off };
    stream_record_header(type & 0xffff, seq, &iov, 1, hdr);
    if (stream_record_header_check(hdr, seq, &type, &len, err,
                                   sizeof(err)) ||
        stream_record_verify(hdr, data + off, len, err, sizeof(err))) {
        return 0;
    }
    if (type == STREAM_REC_RAM &&
        stream_batch_parse(dec, data + off, len, &view, err,
                           sizeof(err)) == 0) {
        /* What was accepted is self-consistent. */
        if (view.npages < 1 || view.npages > STREAM_BATCH_MAX_PAGES ||
            view.nnormal > view.npages ||
            (view.flags & ~STREAM_BATCH_F_POSTCOPY)) {
            abort();
        }
        for (uint32_t i = 1; i < view.npages; i++) {
            if (view.pfn[i] <= view.pfn[i - 1]) {
                abort();
            }
        }
        /* Every data byte the writers would copy is readable. */
        volatile uint8_t sink = 0;

        for (size_t i = 0; i < (size_t)view.nnormal * STREAM_PAGE_SIZE;
             i += 512) {
            sink ^= view.data[i];
        }
        (void)sink;
    } else if (type == STREAM_REC_ROUND_END) {
        uint64_t round, pages;

        stream_round_end_decode(data + off, len, &round, &pages, err,
                                sizeof(err));
    } else if (type == STREAM_REC_HVM_PARAMS) {
        uint32_t index[16];
        uint64_t value[16];
        unsigned n;

        if (stream_hvm_params_decode(data + off, len, index, value, 16, &n,
                                     err, sizeof(err)) == 0 && n > 16) {
            abort();
        }
    } else if (type == STREAM_REC_POSTCOPY_ADVISE) {
        uint64_t ps;

        stream_postcopy_advise_decode(data + off, len, &ps, err, sizeof(err));
    } else if (type == STREAM_REC_POSTCOPY_LISTEN) {
        uint64_t round, flags;

        if (stream_postcopy_listen_decode(data + off, len, &round, &flags,
                                          err, sizeof(err)) == 0 &&
            (!round || (flags & ~(uint64_t)STREAM_LISTEN_F_PREEMPT))) {
            abort();
        }
    } else if (type == STREAM_REC_POSTCOPY_PREPARE) {
        uint8_t again[STREAM_POSTCOPY_PREPARE_LEN];
        uint64_t round;

        if (stream_postcopy_prepare_decode(data + off, len, &round, err,
                                           sizeof(err)) == 0) {
            /* Accepted: its length, a round after the first, no flag. */
            stream_postcopy_prepare_encode(round, again);
            if (len != STREAM_POSTCOPY_PREPARE_LEN || !round ||
                memcmp(again, data + off, sizeof(again))) {
                abort();
            }
        }
    } else if (type == STREAM_REC_POSTCOPY_PREPARED) {
        uint8_t again[STREAM_POSTCOPY_PREPARED_LEN];
        uint64_t pages, ns, flags;

        if (stream_postcopy_prepared_decode(data + off, len, &pages, &ns,
                                            &flags, err, sizeof(err)) == 0) {
            /* Accepted: its length, DONE or no flag, the same figures. */
            stream_postcopy_prepared_encode(pages, ns, flags, again);
            if (len != STREAM_POSTCOPY_PREPARED_LEN ||
                (flags & ~(uint64_t)STREAM_PREPARED_F_DONE) ||
                memcmp(again, data + off, sizeof(again))) {
                abort();
            }
        }
    } else if (type == STREAM_REC_POSTCOPY_DISCARD) {
        static StreamRange r[STREAM_DISCARD_MAX_RANGES];
        char name[256];
        unsigned n;

        if (stream_postcopy_discard_decode(data + off, len, name, r, &n, err,
                                           sizeof(err)) == 0) {
            /* Accepted ranges are non-empty, ascending, apart, and fit. */
            if (n < 1 || n > STREAM_DISCARD_MAX_RANGES || !name[0]) {
                abort();
            }
            for (unsigned i = 0; i < n; i++) {
                if (!r[i].n || r[i].start + r[i].n < r[i].start ||
                    (i && r[i].start <= r[i - 1].start + r[i - 1].n)) {
                    abort();
                }
            }
        }
    } else if (type == STREAM_REC_PAGE_REQUEST) {
        char name[256];
        uint64_t page;
        uint32_t n;

        if (stream_page_request_decode(data + off, len, name, &page, &n, err,
                                       sizeof(err)) == 0 &&
            (n < 1 || n > STREAM_BATCH_MAX_PAGES || page + n < page)) {
            abort();
        }
    } else if (type == STREAM_REC_POSTCOPY_RESUME) {
        uint64_t round;

        if (stream_postcopy_resume_decode(data + off, len, &round, err,
                                          sizeof(err)) == 0 && round < 2) {
            abort();
        }
    } else if (type == STREAM_REC_RESUME_ACK) {
        uint64_t nb;

        stream_resume_ack_decode(data + off, len, &nb, err, sizeof(err));
    } else if (type == STREAM_REC_RECV_BITMAP) {
        char name[256];
        uint64_t first, n;
        const uint8_t *w;

        if (stream_recv_bitmap_decode(data + off, len, name, &first, &n, &w,
                                      err, sizeof(err)) == 0) {
            /* Accepted: a range that fits, words inside the body, and no
             * bit past the last page. */
            uint64_t nw = (n + 63) / 64;

            if (!name[0] || first % 64 || !n ||
                n > STREAM_RECV_BITMAP_MAX_PAGES || first + n < first ||
                w + 8 * nw != data + off + len ||
                (n % 64 && stream_recv_bitmap_word(w, nw - 1) >> (n % 64))) {
                abort();
            }
        }
    } else if (type == STREAM_REC_LAYOUT || type == STREAM_REC_DEVSTATE) {
        DevState ds;

        if (devstate_decode(data + off, len, &ds, err, sizeof(err)) == 0) {
            devstate_free(&ds);
        }
    }
    return 0;
}
