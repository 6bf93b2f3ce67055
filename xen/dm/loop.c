/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * loop.c - an epoll main loop.
 *
 * Watches live in a small table indexed by fd.  A watch removed from inside
 * a callback is only marked dead and freed after the dispatch round, so a
 * callback may remove any watch, its own included.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "xen/dm/loop.h"

typedef struct Watch {
    int fd;
    bool live;
    MainLoopFdFunc fn;
    void *opaque;
} Watch;

struct MainLoop {
    int epfd;
    Watch **watches;            /* indexed by fd */
    int nwatches;
    bool dispatching;
    bool have_dead;
    bool quit;
    int status;
};

int main_loop_new(MainLoop **out)
{
    MainLoop *loop = calloc(1, sizeof(*loop));

    if (!loop) {
        return -ENOMEM;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        int ret = -errno;

        free(loop);
        return ret;
    }
    *out = loop;
    return 0;
}

void main_loop_free(MainLoop *loop)
{
    if (!loop) {
        return;
    }
    for (int i = 0; i < loop->nwatches; i++) {
        free(loop->watches[i]);
    }
    free(loop->watches);
    close(loop->epfd);
    free(loop);
}

int main_loop_add_fd(MainLoop *loop, int fd, uint32_t events,
                     MainLoopFdFunc fn, void *opaque)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    Watch *w;

    if (fd < 0 || !fn) {
        return -EINVAL;
    }
    if (fd >= loop->nwatches) {
        int n = loop->nwatches ? 2 * loop->nwatches : 64;

        while (n <= fd) {
            n *= 2;
        }
        Watch **ws = realloc(loop->watches, n * sizeof(*ws));

        if (!ws) {
            return -ENOMEM;
        }
        memset(ws + loop->nwatches, 0, (n - loop->nwatches) * sizeof(*ws));
        loop->watches = ws;
        loop->nwatches = n;
    }
    if (loop->watches[fd] && loop->watches[fd]->live) {
        return -EEXIST;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        return -ENOMEM;
    }
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int ret = -errno;

        free(w);
        return ret;
    }
    *w = (Watch) { .fd = fd, .live = true, .fn = fn, .opaque = opaque };
    free(loop->watches[fd]);    /* a dead watch not yet reaped */
    loop->watches[fd] = w;
    return 0;
}

int main_loop_mod_fd(MainLoop *loop, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };

    if (fd < 0 || fd >= loop->nwatches || !loop->watches[fd] ||
        !loop->watches[fd]->live) {
        return -ENOENT;
    }
    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void main_loop_del_fd(MainLoop *loop, int fd)
{
    Watch *w;

    if (fd < 0 || fd >= loop->nwatches || !(w = loop->watches[fd]) ||
        !w->live) {
        return;
    }
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
    w->live = false;
    if (loop->dispatching) {
        loop->have_dead = true;     /* freed after this round */
    } else {
        free(w);
        loop->watches[fd] = NULL;
    }
}

void main_loop_quit(MainLoop *loop, int status)
{
    loop->quit = true;
    loop->status = status;
}

int main_loop_iterate(MainLoop *loop, int timeout_ms)
{
    struct epoll_event evs[32];
    int n;

    n = epoll_wait(loop->epfd, evs, 32, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    loop->dispatching = true;
    for (int i = 0; i < n && !loop->quit; i++) {
        int fd = evs[i].data.fd;
        Watch *w;

        w = fd < loop->nwatches ? loop->watches[fd] : NULL;
        if (w && w->live) {
            w->fn(loop, fd, evs[i].events, w->opaque);
        }
    }
    loop->dispatching = false;
    if (loop->have_dead) {
        for (int fd = 0; fd < loop->nwatches; fd++) {
            if (loop->watches[fd] && !loop->watches[fd]->live) {
                free(loop->watches[fd]);
                loop->watches[fd] = NULL;
            }
        }
        loop->have_dead = false;
    }
    return n;
}

int main_loop_run(MainLoop *loop)
{
    loop->quit = false;
    while (!loop->quit) {
        int ret = main_loop_iterate(loop, -1);

        if (ret < 0) {
            return ret;
        }
    }
    return loop->status;
}
