/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loop.h - the device model's main loop: file descriptors and callbacks.
 *
 * One thread runs the loop; every callback runs on it, so state touched
 * only from callbacks needs no locking.
 */
#ifndef XENRAM_DM_LOOP_H
#define XENRAM_DM_LOOP_H

#include <stdint.h>

typedef struct MainLoop MainLoop;

/* Called with the epoll events (EPOLLIN, EPOLLHUP, ...) that fired. */
typedef void (*MainLoopFdFunc)(MainLoop *loop, int fd, uint32_t events,
                               void *opaque);

/* 0 and the loop in *@out, or -errno. */
int main_loop_new(MainLoop **out);
void main_loop_free(MainLoop *loop);

/*
 * Watch @fd for @events (EPOLLIN, EPOLLOUT, ...) and call @fn on the loop
 * thread.  One watch per fd.  0 or -errno.
 */
int main_loop_add_fd(MainLoop *loop, int fd, uint32_t events,
                     MainLoopFdFunc fn, void *opaque);
int main_loop_mod_fd(MainLoop *loop, int fd, uint32_t events);
/* Stop watching @fd (does not close it).  Safe from inside a callback. */
void main_loop_del_fd(MainLoop *loop, int fd);

/* Run until main_loop_quit(); returns the status given to it, or -errno. */
int main_loop_run(MainLoop *loop);

/* Make main_loop_run() return @status after the current callback. */
void main_loop_quit(MainLoop *loop, int status);

/* Run one round: wait at most @timeout_ms, dispatch what fired. */
int main_loop_iterate(MainLoop *loop, int timeout_ms);

#endif /* XENRAM_DM_LOOP_H */
