/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server.h - the xensim daemon's end of the channel (proto.h): listens on
 * <state dir>/xensim.sock, one thread per connection, each request handed
 * to the host (host.h).
 */
#ifndef XENSIM_SERVER_H
#define XENSIM_SERVER_H

#include <pthread.h>
#include <stdbool.h>

#include "xen/sim/host.h"

struct xsim_server {
    struct xsim_host *host;
    int listen_fd;
    pthread_t accept_thread;
    char sock_path[108];
};

/* Bind and listen (replacing a stale socket file), start accepting. */
int server_start(struct xsim_server *s, struct xsim_host *h);

/* Stop accepting and remove the socket file.  Connections still open see
 * their peer vanish when the process exits. */
void server_stop(struct xsim_server *s);

#endif /* XENSIM_SERVER_H */
