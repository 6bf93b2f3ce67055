/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stream.h - the byte format of xenram's own migration stream (internal to
 * migration/; specified in docs/migration-stream.md).
 *
 * A stream is a stream header, then records.  Every record is typed, sized
 * and checksummed (XXH3-64 over its header and body), and carries a
 * per-channel sequence number, so that a corrupted, truncated, reordered or
 * foreign record is refused with a message that names what was wrong.
 * Integers are little-endian.
 *
 * RAM travels in batches of at most STREAM_BATCH_MAX_PAGES pages.  Each
 * page of a batch has a kind: NORMAL (its 4 KiB follow in the batch's
 * data) or ZERO (nothing follows: the destination's fresh frame is zero
 * already).  A batch's data is either raw or one zstd frame, chosen per
 * batch by the sender when compression pays.
 *
 * The encoder is used by the sender threads, one StreamBatch each; the
 * decoder by the receiver threads, one StreamReader each.  Nothing here is
 * shared between threads.
 */
#ifndef XENRAM_MIGRATION_STREAM_H
#define XENRAM_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STREAM_MAGIC            "XRMIGRAM"
#define STREAM_VERSION          1
#define STREAM_HEADER_LEN       24      /* the stream header */
#define STREAM_RECORD_HDR_LEN   24      /* each record's header */
#define STREAM_PAGE_SIZE        4096u
#define STREAM_BATCH_MAX_PAGES  512u    /* 2 MiB of data */
/* Bodies larger than this are refused before anything is allocated. */
#define STREAM_MAX_BODY         (8u << 20)

/* What the stream header says of the channel it starts. */
typedef enum StreamChannelRole {
    STREAM_CHANNEL_CONTROL = 0,         /* records of every type */
    STREAM_CHANNEL_DATA = 1,            /* RAM batches and their round ends */
} StreamChannelRole;

/*
 * Stream header flags.  RESUME: the connection is one of a postcopy
 * recovery's (docs/postcopy.md, "Recovery"), for the migration the
 * destination paused in, not a new stream.
 */
#define STREAM_HEADER_F_RESUME  0x1u

typedef struct StreamHeader {
    uint32_t version;
    uint32_t role;                      /* StreamChannelRole */
    uint32_t channel;                   /* 0 control, 1..N data */
    uint32_t nchannels;                 /* data channels; 0: RAM on control */
    uint32_t flags;                     /* STREAM_HEADER_F_* */
} StreamHeader;

typedef enum StreamRecordType {
    STREAM_REC_LAYOUT = 1,      /* the RAM layout: devstate bytes */
    STREAM_REC_RAM = 2,         /* a batch of pages */
    STREAM_REC_ROUND_END = 3,   /* a channel's part of a round is complete */
    STREAM_REC_DEVSTATE = 4,    /* the final device state: devstate bytes */
    STREAM_REC_HVM_CONTEXT = 5, /* xc_domain_hvm_getcontext()'s buffer */
    STREAM_REC_END = 6,         /* nothing follows on this channel */
    STREAM_REC_RESULT = 7,      /* destination to source: how it ended */
    STREAM_REC_HVM_PARAMS = 8,  /* the domain's HVM parameters */
    /* Postcopy (docs/postcopy.md, docs/migration-stream.md). */
    STREAM_REC_POSTCOPY_ADVISE = 9,     /* the source may switch */
    STREAM_REC_POSTCOPY_DISCARD = 10,   /* pages of a block to resend */
    STREAM_REC_POSTCOPY_LISTEN = 11,    /* make the missing pages absent */
    STREAM_REC_POSTCOPY_RUN = 12,       /* start the guest */
    STREAM_REC_PAGE_REQUEST = 13,       /* destination to source: send these */
    /* Postcopy recovery, on a new control channel. */
    STREAM_REC_POSTCOPY_RESUME = 14,    /* source: go on with this round */
    STREAM_REC_RECV_BITMAP = 15,        /* destination: pages it has */
    STREAM_REC_RESUME_ACK = 16,         /* destination: bitmaps complete */
    /* The switch's eviction done ahead, while the source's guest runs. */
    STREAM_REC_POSTCOPY_PREPARE = 17,   /* page the missing pages out now */
    STREAM_REC_POSTCOPY_PREPARED = 18,  /* destination: how far it got */
    STREAM_REC_MAX = STREAM_REC_POSTCOPY_PREPARED,
} StreamRecordType;

typedef enum StreamPageKind {
    STREAM_PAGE_NORMAL = 0,
    STREAM_PAGE_ZERO = 1,
    /* Not populated on the source (the VGA hole, a ballooned frame). */
    STREAM_PAGE_ABSENT = 2,
} StreamPageKind;

typedef enum StreamCodec {
    STREAM_CODEC_NONE = 0,
    STREAM_CODEC_ZSTD = 1,
} StreamCodec;

/* A record as read: @body (of @len bytes) belongs to the reader. */
typedef struct StreamRecord {
    uint32_t type;              /* StreamRecordType */
    uint32_t seq;
    uint32_t len;
    const uint8_t *body;
} StreamRecord;

/* ---- the stream header ------------------------------------------------- */

/* The STREAM_HEADER_LEN bytes of @h into @out. */
void stream_header_encode(const StreamHeader *h, uint8_t *out);

/*
 * Parse and check STREAM_HEADER_LEN bytes: magic, version, a known role
 * and channel numbers that fit.  0, or -EPROTO (not a xenram stream, or a
 * version this build does not read) / -EINVAL, with @err.
 */
int stream_header_decode(const uint8_t *in, StreamHeader *h, char *err,
                         size_t errlen);

/* ---- records -------------------------------------------------------------- */

/*
 * The header of a record of @type with the @len bytes at @iov[0..@iovcnt)
 * as its body, sequence number @seq, into @out (STREAM_RECORD_HDR_LEN
 * bytes).  The checksum covers @out's other fields and the body.
 */
void stream_record_header(uint32_t type, uint32_t seq, const struct iovec *iov,
                          int iovcnt, uint8_t *out);

/*
 * Check a record header: a known type, a body of at most STREAM_MAX_BODY
 * bytes, the sequence number @want_seq.  0 and *@type, *@len, or -EINVAL
 * with @err.
 */
int stream_record_header_check(const uint8_t *hdr, uint32_t want_seq,
                               uint32_t *type, uint32_t *len, char *err,
                               size_t errlen);

/*
 * Check the checksum of a record whose header @hdr was accepted by
 * stream_record_header_check() and whose body is @body.  0, or -EINVAL.
 */
int stream_record_verify(const uint8_t *hdr, const uint8_t *body, uint32_t len,
                         char *err, size_t errlen);

/*
 * As stream_record_verify(), for a body that lies in @iovcnt pieces (a
 * RAM batch received straight into guest memory).
 */
int stream_record_verifyv(const uint8_t *hdr, const struct iovec *iov,
                          int iovcnt, char *err, size_t errlen);

/* A record type's name, for messages ("RAM", "END", "type 77"). */
const char *stream_record_name(uint32_t type, char *buf, size_t buflen);

/* ---- RAM batches (sender) -------------------------------------------------- */

typedef struct StreamBatch StreamBatch;

/*
 * A batch builder compressing with zstd at @zstd_level (0: never
 * compress).  0, or -ENOMEM.
 */
int stream_batch_new(int zstd_level, StreamBatch **out);
void stream_batch_free(StreamBatch *b);

/* Empty the batch for round @round (its flags cleared). */
void stream_batch_reset(StreamBatch *b, uint64_t round);

/*
 * A RAM batch's flags (the byte after the codec).  POSTCOPY: sent after
 * the switch to postcopy; the destination places its pages (they are
 * absent for the guest until then) rather than writing them, and only
 * once it is listening.
 */
#define STREAM_BATCH_F_POSTCOPY 0x01u

/* Mark the batch as sent after the switch to postcopy (until reset). */
void stream_batch_set_postcopy(StreamBatch *b);

/*
 * Add the page at ram_addr page number @pfn with contents @page: a zero
 * page is recorded as such, any other is copied (so the bytes sent are
 * the bytes checksummed, however the guest writes on).  Returns the
 * number of pages now in the batch; the caller finishes it at
 * STREAM_BATCH_MAX_PAGES.
 */
unsigned stream_batch_add(StreamBatch *b, uint64_t pfn, const void *page);

/* Add frame @pfn as not populated on the source: no data travels. */
unsigned stream_batch_add_absent(StreamBatch *b, uint64_t pfn);

/* Pages in the batch, and how many of them were zero. */
unsigned stream_batch_pages(const StreamBatch *b);
unsigned stream_batch_zero_pages(const StreamBatch *b);

/*
 * Close the batch as record number @seq: compress its data if that pays,
 * then point @iov[0..3) at the record header, the batch's description and
 * its data (valid until the next reset).  Returns the record's total
 * bytes; *@codec says what was chosen.
 */
size_t stream_batch_finish(StreamBatch *b, uint32_t seq, struct iovec iov[3],
                           StreamCodec *codec);

/* ---- RAM batches (receiver) ------------------------------------------------ */

/* A parsed batch: page i is @pfn[i] of @kind[i], NORMAL ones in order. */
typedef struct StreamBatchView {
    uint64_t round;
    uint32_t npages;
    uint32_t nnormal;
    uint32_t codec;
    uint32_t flags;             /* STREAM_BATCH_F_* */
    uint64_t pfn[STREAM_BATCH_MAX_PAGES];
    uint8_t kind[STREAM_BATCH_MAX_PAGES];
    const uint8_t *data;        /* nnormal * STREAM_PAGE_SIZE bytes */
} StreamBatchView;

typedef struct StreamDecoder StreamDecoder;

int stream_decoder_new(StreamDecoder **out);
void stream_decoder_free(StreamDecoder *d);

/*
 * Parse the body of a RAM record into @v: counts within the limits, page
 * kinds known, page numbers strictly increasing (so no page is twice in a
 * batch), the data exactly as long as the NORMAL pages need (after zstd,
 * whose output is bounded before it is produced).  @v->data points into
 * @body or into @d's buffer, valid until the next call.  0, or -EINVAL
 * with @err; the caller applies nothing of a batch that fails.
 */
int stream_batch_parse(StreamDecoder *d, const uint8_t *body, uint32_t len,
                       StreamBatchView *v, char *err, size_t errlen);

/*
 * The receiver's way for uncompressed batches, whose pages it reads
 * straight into guest memory: the length of the description from its
 * first STREAM_BATCH_DESC_FIXED bytes @fixed (0 for a page count out of
 * bounds: read the whole body and let stream_batch_parse() refuse it),
 * then the description alone checked as stream_batch_parse() checks a
 * body of @len bytes; -EINVAL also for a compressed batch.  @v->data is
 * NULL: the NORMAL pages are the next len - @desc_len bytes, in order.
 */
#define STREAM_BATCH_DESC_FIXED 16
size_t stream_batch_desc_len(const uint8_t *fixed);
int stream_batch_parse_desc(const uint8_t *desc, size_t desc_len,
                            uint32_t len, StreamBatchView *v, char *err,
                            size_t errlen);

/* ---- small records --------------------------------------------------------- */

/* The body of a ROUND_END: the round and the pages this channel sent in it. */
#define STREAM_ROUND_END_LEN 16
void stream_round_end_encode(uint64_t round, uint64_t pages, uint8_t *out);
int stream_round_end_decode(const uint8_t *body, uint32_t len,
                            uint64_t *round, uint64_t *pages, char *err,
                            size_t errlen);

/*
 * HVM_PARAMS: @n pairs of parameter index and value, 16 bytes each.
 * Encoding writes 16 * @n bytes at @out.  Decoding checks the length is
 * 16 * n with n <= @max and the padding zero; which indexes a migration
 * may carry is the receiver's to check.  0 and *@n, or -EINVAL with @err.
 */
void stream_hvm_params_encode(const uint32_t *index, const uint64_t *value,
                              unsigned n, uint8_t *out);
int stream_hvm_params_decode(const uint8_t *body, uint32_t len,
                             uint32_t *index, uint64_t *value, unsigned max,
                             unsigned *n, char *err, size_t errlen);

/* ---- postcopy records -------------------------------------------------------- */

/* POSTCOPY_ADVISE: u64 page size, u64 flags (none defined: must be 0). */
#define STREAM_POSTCOPY_ADVISE_LEN 16
void stream_postcopy_advise_encode(uint64_t page_size, uint8_t *out);
int stream_postcopy_advise_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *page_size, char *err,
                                  size_t errlen);

/*
 * POSTCOPY_LISTEN: u64 the last round sent before the switch (every data
 * channel ends it, with its ROUND_END, before the destination makes the
 * missing pages absent), u64 flags.  A round of 0 is refused, and flags
 * other than these.  PREEMPT: the last data channel is postcopy-preempt's
 * (requested pages only): the others carry the background.
 */
#define STREAM_POSTCOPY_LISTEN_LEN 16
#define STREAM_LISTEN_F_PREEMPT 0x1u
void stream_postcopy_listen_encode(uint64_t round, uint64_t flags,
                                   uint8_t *out);
int stream_postcopy_listen_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *round, uint64_t *flags,
                                  char *err, size_t errlen);

/*
 * POSTCOPY_PREPARE: u64 the last round sent (as LISTEN's: every data
 * channel ends it first; not 0, and never below an earlier PREPARE's),
 * u64 flags (0).  The destination applies the DISCARDs so far and pages
 * out every page it does not have, while the source's guest still runs,
 * so that LISTEN has only what the guest dirtied since to page out.  It
 * may come more than once before LISTEN; no RAM page of a block may
 * follow it but as ABSENT.
 */
#define STREAM_POSTCOPY_PREPARE_LEN 16
void stream_postcopy_prepare_encode(uint64_t round, uint8_t *out);
int stream_postcopy_prepare_decode(const uint8_t *body, uint32_t len,
                                   uint64_t *round, char *err,
                                   size_t errlen);

/*
 * POSTCOPY_PREPARED, on the return path: u64 pages paged out for this
 * PREPARE so far, u64 ns it took so far, u64 flags.  DONE: the PREPARE is
 * complete; without it, progress (sent at least every
 * STREAM_PREPARED_PROGRESS_MS, so that the source's stall timeout
 * measures a destination that is stuck, not one that is busy).
 */
#define STREAM_POSTCOPY_PREPARED_LEN 24
#define STREAM_PREPARED_F_DONE 0x1u
#define STREAM_PREPARED_PROGRESS_MS 1000
void stream_postcopy_prepared_encode(uint64_t pages, uint64_t ns,
                                     uint64_t flags, uint8_t *out);
int stream_postcopy_prepared_decode(const uint8_t *body, uint32_t len,
                                    uint64_t *pages, uint64_t *ns,
                                    uint64_t *flags, char *err,
                                    size_t errlen);

/* Ranges a DISCARD carries at most (16 bytes each: 64 KiB of ranges). */
#define STREAM_DISCARD_MAX_RANGES 4096u

typedef struct StreamRange {
    uint64_t start, n;                  /* pages of the block */
} StreamRange;

/*
 * POSTCOPY_DISCARD: the block's name (u16 length, bytes, zero padding to
 * 8), u32 count, u32 0, then count x (u64 start, u64 n): ranges of pages
 * of that block, non-empty, ascending and apart.  Decoding checks exactly
 * that, the name printable ASCII of 1..255 bytes and the length exact;
 * whether the block and the ranges exist is the receiver's to check.
 * Encoding needs stream_postcopy_discard_len() bytes at @out.
 */
size_t stream_postcopy_discard_len(const char *idstr, unsigned nranges);
void stream_postcopy_discard_encode(const char *idstr,
                                    const StreamRange *ranges,
                                    unsigned nranges, uint8_t *out);
int stream_postcopy_discard_decode(const uint8_t *body, uint32_t len,
                                   char idstr[256], StreamRange *ranges,
                                   unsigned *nranges, char *err,
                                   size_t errlen);

/*
 * PAGE_REQUEST: the block's name as in DISCARD, then u64 first page, u32
 * pages (1..STREAM_BATCH_MAX_PAGES), u32 flags (0).  Encoding needs
 * stream_page_request_len() bytes.
 */
size_t stream_page_request_len(const char *idstr);
void stream_page_request_encode(const char *idstr, uint64_t page,
                                uint32_t npages, uint8_t *out);
int stream_page_request_decode(const uint8_t *body, uint32_t len,
                               char idstr[256], uint64_t *page,
                               uint32_t *npages, char *err, size_t errlen);

/* ---- postcopy recovery ------------------------------------------------------- */

/*
 * POSTCOPY_RESUME, the first record of a recovery's control channel: u64
 * the round the source sends in (the one after LISTEN's), u64 flags (0).
 */
#define STREAM_POSTCOPY_RESUME_LEN 16
void stream_postcopy_resume_encode(uint64_t round, uint8_t *out);
int stream_postcopy_resume_decode(const uint8_t *body, uint32_t len,
                                  uint64_t *round, char *err, size_t errlen);

/*
 * RECV_BITMAP: the block's name as in DISCARD, u64 first page (a multiple
 * of 64), u64 pages (1..STREAM_RECV_BITMAP_MAX_PAGES), then the bits of
 * those pages as little-endian u64 words, page first + i in bit i % 64 of
 * word i / 64, set when the destination has the page; bits past the last
 * page zero.  Encoding needs stream_recv_bitmap_len() bytes; @words are
 * host-order words as a bitmap (dirty/bitmap.h) keeps them.
 */
#define STREAM_RECV_BITMAP_MAX_PAGES (32u << 20)  /* 4 MiB of bits */
size_t stream_recv_bitmap_len(const char *idstr, uint64_t npages);
void stream_recv_bitmap_encode(const char *idstr, uint64_t first,
                               uint64_t npages, const uint64_t *words,
                               uint8_t *out);
/* *@words points into @body: read them with stream_recv_bitmap_word(). */
int stream_recv_bitmap_decode(const uint8_t *body, uint32_t len,
                              char idstr[256], uint64_t *first,
                              uint64_t *npages, const uint8_t **words,
                              char *err, size_t errlen);
static inline uint64_t stream_recv_bitmap_word(const uint8_t *words,
                                               uint64_t i)
{
    uint64_t v = 0;

    for (int b = 7; b >= 0; b--) {
        v = (v << 8) | words[8 * i + (uint64_t)b];
    }
    return v;
}

/* RESUME_ACK: u64 the RECV_BITMAP records before it, u64 flags (0). */
#define STREAM_RESUME_ACK_LEN 16
void stream_resume_ack_encode(uint64_t nbitmaps, uint8_t *out);
int stream_resume_ack_decode(const uint8_t *body, uint32_t len,
                             uint64_t *nbitmaps, char *err, size_t errlen);

/*
 * RESULT's status: 0, or an errno with this bit set when the guest ran on
 * the destination before it failed (postcopy, after RUN).
 */
#define STREAM_RESULT_RAN 0x80000000u

/* True if the STREAM_PAGE_SIZE bytes at @page are all zero. */
bool stream_page_is_zero(const void *page);

#endif /* XENRAM_MIGRATION_STREAM_H */
