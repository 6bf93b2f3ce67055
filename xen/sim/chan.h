/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * chan.h - framing for the xensim channel (see proto.h), used by both the
 * daemon and its clients.  All functions return 0 or -errno; a peer that
 * went away is -ENOTCONN.  None of them take locks: a caller that shares
 * a connection between threads serialises whole request/reply exchanges.
 */
#ifndef XENSIM_CHAN_H
#define XENSIM_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xen/sim/proto.h"

/*
 * The state directory: $XENSIM_DIR, else $XDG_RUNTIME_DIR/xensim, else
 * /tmp/xensim-<uid>.  Writes at most @len bytes into @buf; -ENAMETOOLONG
 * if it does not fit.
 */
int xsim_state_dir(char *buf, size_t len);

/* <dir>/<name> into a sockaddr-sized buffer; -ENAMETOOLONG if too long. */
int xsim_path(char *buf, size_t len, const char *dir, const char *name);

/* Connect to the daemon of @dir (NULL: xsim_state_dir()); returns the fd. */
int xsim_connect(const char *dir);

/* Write all of @len bytes (retrying on EINTR and short writes). */
int xsim_write_all(int fd, const void *buf, size_t len);

/* Read exactly @len bytes; -ENOTCONN on EOF. */
int xsim_read_all(int fd, void *buf, size_t len);

/* Send a header (+ optional fd) and a payload. */
int xsim_send(int fd, const void *hdr, size_t hlen, const void *payload,
              size_t plen, int pass_fd);

/* Receive a header of @hlen bytes, collecting one passed fd if any
 * (*fd_out = -1 when none; may be NULL to close a received fd). */
int xsim_recv_hdr(int fd, void *hdr, size_t hlen, int *fd_out);

/* Discard @len bytes. */
int xsim_skip(int fd, uint64_t len);

/*
 * One whole request/reply exchange as a client.  The reply payload goes to
 * @out (up to @outcap bytes, the rest is discarded; *outlen gets the full
 * length when @outlen is not NULL).  A received fd goes to *fd_out (closed
 * when @fd_out is NULL).  Returns 0 when the exchange completed (the
 * operation's own result is in @rep), -errno when the channel failed.
 */
int xsim_call(int fd, uint16_t op, uint32_t domid, const uint64_t args[6],
              const void *in, size_t inlen, struct xsim_rep *rep,
              void *out, size_t outcap, uint64_t *outlen, int *fd_out);

#endif /* XENSIM_CHAN_H */
