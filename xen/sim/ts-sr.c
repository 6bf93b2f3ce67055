/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-sr.c - the page stream of the simulator's `xl migrate` path (see
 * ts-sr.h), in libxc's migration stream v2 records
 * (docs/specs/libxc-migration-stream.pandoc): a header of type and body
 * length, the body padded to 8 octets; PAGE_DATA's body is a count, a
 * reserved word, one 64-bit entry per frame (type in the top 4 bits, the
 * pfn below) and the page data.  Only what the simulator's path moves is
 * spoken: pages with data (type NOTAB, 0) and END.
 *
 * The costs are libxc's: the sender's writev() copies from the mapped
 * guest into the socket, the receiver's read() copies into a buffer
 * malloc'd per record (read_record) and memcpy() puts each page into the
 * destination (process_page_data): three copies, one thread each side.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xen/sim/chan.h"
#include "xen/sim/proto.h"
#include "xen/sim/ts-sr.h"

#define REC_TYPE_END            0x00000000u
#define REC_TYPE_PAGE_DATA      0x00000001u
#define PAGE_DATA_PFN_MASK      0x000fffffffffffffull
#define PAGE_DATA_TYPE_MASK     0xf000000000000000ull

struct rhdr {
    uint32_t type;
    uint32_t length;            /* of the body, before its padding */
};

struct page_data_header {
    uint32_t count;
    uint32_t reserved;
};

/* The longest PAGE_DATA body a sender of ours writes. */
#define PAGE_DATA_MAX   (sizeof(struct page_data_header) + \
                         TS_SR_BATCH * (sizeof(uint64_t) + XSIM_PAGE_SIZE))

struct ts_sr {
    int fd;                     /* the sender's end */
    int rfd;                    /* the receiver's */
    pthread_t thread;
    bool running;               /* the receiver is to be joined */
    uint8_t *dmem;
    uint64_t dpages;
    uint64_t entries[TS_SR_BATCH];
    struct iovec iov[3 + TS_SR_BATCH];

    /* The receiver's, read once it is joined. */
    int rc;
    char err[256];
    uint64_t pages;
};

/* One PAGE_DATA body of @body octets in @buf. */
static int restore_pages(struct ts_sr *s, const uint8_t *buf, uint32_t body)
{
    struct page_data_header h;
    const uint64_t *ent;
    const uint8_t *data;

    if (body < sizeof(h)) {
        snprintf(s->err, sizeof(s->err), "PAGE_DATA record of %u octets, "
                 "shorter than its header", body);
        return -EINVAL;
    }
    memcpy(&h, buf, sizeof(h));
    if (h.count == 0 || h.count > TS_SR_BATCH ||
        body != sizeof(h) + h.count * (sizeof(uint64_t) + XSIM_PAGE_SIZE)) {
        snprintf(s->err, sizeof(s->err), "PAGE_DATA record of %u octets "
                 "for %u frames", body, h.count);
        return -EINVAL;
    }
    ent = (const uint64_t *)(buf + sizeof(h));
    data = (const uint8_t *)(ent + h.count);
    for (uint32_t i = 0; i < h.count; i++) {
        uint64_t pfn = ent[i] & PAGE_DATA_PFN_MASK;

        if (ent[i] & PAGE_DATA_TYPE_MASK) {
            snprintf(s->err, sizeof(s->err), "PAGE_DATA: frame %#llx of a "
                     "type this stream does not carry",
                     (unsigned long long)pfn);
            return -EINVAL;
        }
        if (pfn >= s->dpages) {
            snprintf(s->err, sizeof(s->err), "PAGE_DATA: frame %#llx is "
                     "beyond the destination's %llu frames",
                     (unsigned long long)pfn, (unsigned long long)s->dpages);
            return -EINVAL;
        }
        memcpy(s->dmem + pfn * XSIM_PAGE_SIZE, data, XSIM_PAGE_SIZE);
        data += XSIM_PAGE_SIZE;
        s->pages++;
    }
    return 0;
}

/* The receiver: records until END, or the first error. */
static void *restore_thread(void *arg)
{
    struct ts_sr *s = arg;

    for (;;) {
        struct rhdr rh;
        uint32_t padded;
        uint8_t *buf;
        int rc;

        rc = xsim_read_all(s->rfd, &rh, sizeof(rh));
        if (rc) {
            snprintf(s->err, sizeof(s->err), "the stream ended before its "
                     "END record: %s", strerror(-rc));
            s->rc = rc;
            break;
        }
        if (rh.type == REC_TYPE_END && rh.length == 0)
            break;
        if (rh.type != REC_TYPE_PAGE_DATA || rh.length > PAGE_DATA_MAX) {
            snprintf(s->err, sizeof(s->err), "unexpected record: type %#x, "
                     "%u octets", rh.type, rh.length);
            s->rc = -EINVAL;
            break;
        }
        /* As libxc's read_record: a buffer per record. */
        padded = (rh.length + 7) & ~7u;
        buf = malloc(padded);
        if (!buf) {
            snprintf(s->err, sizeof(s->err), "out of memory for a record");
            s->rc = -ENOMEM;
            break;
        }
        rc = xsim_read_all(s->rfd, buf, padded);
        if (rc)
            snprintf(s->err, sizeof(s->err), "reading a PAGE_DATA record: "
                     "%s", strerror(-rc));
        else
            rc = restore_pages(s, buf, rh.length);
        free(buf);
        if (rc) {
            s->rc = rc;
            break;
        }
    }
    /* A sender still writing learns it failed (EPIPE). */
    shutdown(s->rfd, SHUT_RDWR);
    return NULL;
}

int ts_sr_open(struct ts_sr **out, uint8_t *dmem, uint64_t dpages,
               char *err, size_t errlen)
{
    struct ts_sr *s = calloc(1, sizeof(*s));
    int sv[2], rc;

    *out = NULL;
    if (!s) {
        snprintf(err, errlen, "out of memory for the page stream");
        return -ENOMEM;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        rc = -errno;
        snprintf(err, errlen, "the page stream's socket: %s", strerror(errno));
        free(s);
        return rc;
    }
    s->fd = sv[0];
    s->rfd = sv[1];
    s->dmem = dmem;
    s->dpages = dpages;
    rc = -pthread_create(&s->thread, NULL, restore_thread, s);
    if (rc) {
        snprintf(err, errlen, "the page stream's receiver: %s", strerror(-rc));
        close(sv[0]);
        close(sv[1]);
        free(s);
        return rc;
    }
    s->running = true;
    *out = s;
    return 0;
}

/* Join the receiver; its result. */
static int join(struct ts_sr *s, char *err, size_t errlen)
{
    if (s->running) {
        pthread_join(s->thread, NULL);
        s->running = false;
    }
    if (s->rc)
        snprintf(err, errlen, "the page stream's receiver: %s", s->err);
    return s->rc;
}

/* writev_exact, IOV_MAX vectors at a time, without SIGPIPE. */
static int send_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr mh = {
            .msg_iov = iov,
            .msg_iovlen = (size_t)(n < IOV_MAX ? n : IOV_MAX),
        };
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int ts_sr_send(struct ts_sr *s, const uint8_t *smem, const uint64_t *pfns,
               unsigned n, char *err, size_t errlen)
{
    struct rhdr rh = { .type = REC_TYPE_PAGE_DATA };
    struct page_data_header h = { .count = n };
    int rc, iovcnt = 3;

    if (n == 0 || n > TS_SR_BATCH) {
        snprintf(err, errlen, "a batch of %u frames", n);
        return -EINVAL;
    }
    rh.length = (uint32_t)(sizeof(h) + n * (sizeof(uint64_t) +
                                           XSIM_PAGE_SIZE));
    for (unsigned i = 0; i < n; i++) {
        s->entries[i] = pfns[i] & PAGE_DATA_PFN_MASK;
        s->iov[iovcnt].iov_base = (void *)(smem + pfns[i] * XSIM_PAGE_SIZE);
        s->iov[iovcnt].iov_len = XSIM_PAGE_SIZE;
        iovcnt++;
    }
    s->iov[0] = (struct iovec){ &rh, sizeof(rh) };
    s->iov[1] = (struct iovec){ &h, sizeof(h) };
    s->iov[2] = (struct iovec){ s->entries, n * sizeof(uint64_t) };
    /* The body is a multiple of 8 octets already: no padding. */
    rc = send_all(s->fd, s->iov, iovcnt);
    if (rc == -EPIPE || rc == -ECONNRESET) {
        if (join(s, err, errlen))
            return rc;
    }
    if (rc)
        snprintf(err, errlen, "writing the page stream: %s", strerror(-rc));
    return rc;
}

int ts_sr_finish(struct ts_sr *s, uint64_t *pages, char *err, size_t errlen)
{
    struct rhdr rh = { .type = REC_TYPE_END };
    struct iovec iov = { &rh, sizeof(rh) };
    int rc = send_all(s->fd, &iov, 1);

    if (join(s, err, errlen))
        return s->rc;
    if (rc) {
        snprintf(err, errlen, "writing the page stream's END: %s",
                 strerror(-rc));
        return rc;
    }
    *pages = s->pages;
    return 0;
}

void ts_sr_close(struct ts_sr *s)
{
    if (!s)
        return;
    /* The receiver reads EOF and returns. */
    shutdown(s->fd, SHUT_RDWR);
    if (s->running)
        pthread_join(s->thread, NULL);
    close(s->fd);
    close(s->rfd);
    free(s);
}
