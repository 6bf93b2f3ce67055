/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * channel.h - the byte channels a migration stream travels on (internal
 * to migration/).
 *
 * One ops struct, one file per transport: channel-socket.c carries tcp:,
 * unix: and fd: (every transport today is a stream socket or a file
 * descriptor).  A channel moves whole buffers: it retries short transfers,
 * waits at most the channel's stall timeout for progress (a peer that is
 * alive but stuck is an error, not a hang), and can be cancelled from
 * another thread, which wakes a blocked transfer at once.
 *
 * Threads: one thread reads and one thread writes a channel at a time;
 * mig_channel_cancel() may be called from any thread.
 */
#ifndef XENRAM_MIGRATION_CHANNEL_H
#define XENRAM_MIGRATION_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct MigChannel MigChannel;

typedef struct MigChannelOps {
    /* Transfer at most the bytes asked; -errno (never 0 for a write). */
    ssize_t (*writev)(MigChannel *c, const struct iovec *iov, int iovcnt);
    /* 0 at the peer's end of stream. */
    ssize_t (*read)(MigChannel *c, void *buf, size_t len);
    /* Wake and fail every transfer, now and later. */
    void (*cancel)(MigChannel *c);
    /* Wake and fail every read, now and later; writes go on. */
    void (*stop_reading)(MigChannel *c);
    void (*close)(MigChannel *c);
} MigChannelOps;

struct MigChannel {
    const MigChannelOps *ops;
    int fd;
    /*
     * Longest wait for progress; < 0: none.  Writing, the clock starts
     * when the socket buffer is full and restarts whenever the peer takes
     * bytes from it (channel-socket.c).  Atomic: another thread may
     * change it while a transfer waits (mig_channel_set_stall()).
     */
    int stall_ms;
    bool cancelled;             /* atomic */
    bool reads_stopped;         /* atomic: mig_channel_stop_reading() */
    uint64_t bytes_out, bytes_in;
    char name[64];              /* "control", "data 1", for messages */
};

/* Where a migration goes or comes from, parsed from a QMP / -incoming URI. */
typedef enum MigAddressKind {
    MIG_ADDR_TCP,
    MIG_ADDR_UNIX,
    MIG_ADDR_FD,
} MigAddressKind;

typedef struct MigAddress {
    MigAddressKind kind;
    char host[256];             /* tcp: */
    char port[16];              /* tcp: */
    char path[108];             /* unix: (sun_path) */
    char fdname[64];            /* fd: the name given to getfd, or a number */
} MigAddress;

/*
 * Parse "tcp:HOST:PORT" (HOST may be "[v6]"), "unix:PATH" or "fd:NAME".
 * 0, or -EINVAL with a sentence in @err naming the accepted forms.
 */
int mig_address_parse(const char *uri, MigAddress *a, char *err,
                      size_t errlen);

/*
 * Connect to @a (tcp: or unix:) and return a channel named @name.  0, or
 * -errno with a sentence in @err.
 */
int mig_channel_connect(const MigAddress *a, const char *name, int stall_ms,
                        MigChannel **out, char *err, size_t errlen);

/* A channel over an open fd (fd:, or an accepted connection); owns @fd. */
int mig_channel_from_fd(int fd, const char *name, int stall_ms,
                        MigChannel **out);

/*
 * Listen on @a (tcp: or unix:; a unix socket file left by an earlier run
 * is replaced).  The listening fd (close-on-exec) or -errno with @err.
 */
int mig_listen(const MigAddress *a, char *err, size_t errlen);

/*
 * Accept one connection on @lfd, waiting at most @timeout_ms (< 0: for
 * ever) and giving up early when *@cancel becomes true.  The connected fd
 * or -errno (-ETIMEDOUT, -ECANCELED).
 */
int mig_accept(int lfd, int timeout_ms, const bool *cancel);

/*
 * Write every byte of @iov (which is consumed).  0, or -errno with a
 * sentence in @err: -EPIPE / -ECONNRESET (the peer went away), -ETIMEDOUT
 * (no progress for stall_ms), -ECANCELED.
 */
int mig_channel_writev_all(MigChannel *c, struct iovec *iov, int iovcnt,
                           char *err, size_t errlen);
int mig_channel_write_all(MigChannel *c, const void *buf, size_t len,
                          char *err, size_t errlen);

/*
 * As mig_channel_writev_all(), for a thread that must not wait: -EAGAIN,
 * with nothing written, when the channel cannot take a byte now.  Once
 * some bytes went, the rest is written as mig_channel_writev_all() does
 * (a record is never left half-sent): for a small record that happens
 * only when it found the socket's buffer all but full.
 */
int mig_channel_try_writev_all(MigChannel *c, struct iovec *iov, int iovcnt,
                               char *err, size_t errlen);

/* Change @c's longest wait for progress (< 0: none), for the next waits
 * and the current one's next slice; any thread. */
void mig_channel_set_stall(MigChannel *c, int ms);

/*
 * Read exactly @len bytes.  0, or -errno with a sentence in @err; the end
 * of the stream before @len bytes is -ECONNRESET ("the source closed the
 * connection").
 */
int mig_channel_read_all(MigChannel *c, void *buf, size_t len, char *err,
                         size_t errlen);

void mig_channel_cancel(MigChannel *c);
/*
 * Wake a read blocked in another thread and fail every later read
 * (-ECANCELED), but let writes go on: a receiver whose other channel
 * failed stops waiting for records and can still tell its peer why.
 */
void mig_channel_stop_reading(MigChannel *c);
void mig_channel_close(MigChannel *c);

#endif /* XENRAM_MIGRATION_CHANNEL_H */
