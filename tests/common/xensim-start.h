/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xensim-start.h - starting a simulated host for a test: fork
 * `xensim --dir DIR start --foreground --ready-fd 3 ...` and wait for the
 * line it writes on fd 3 once it serves ("ok ..." or why it could not).
 *
 * Header-only so that the simulator tests and the end-to-end tests, which
 * the simulator's build rules link, share it without a new object.
 */
#ifndef XENRAM_TESTS_COMMON_XENSIM_START_H
#define XENRAM_TESTS_COMMON_XENSIM_START_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* How long a host may take to say it is ready. */
#define XENSIM_START_TIMEOUT_MS 20000

/*
 * Fork @xensim for @dir with @extra (NULL-terminated, may be NULL) after
 * the start options; the child gets @deathsig when the test dies, and its
 * stderr goes to DIR/xensim.log if @log.  Returns the pid with *@ready_fd
 * the end of the ready pipe to hand to xensim_start_wait(), or -errno.
 */
static inline pid_t xensim_start_spawn(const char *xensim, const char *dir,
                                       const char *const *extra, int deathsig,
                                       bool log, int *ready_fd)
{
    char logp[PATH_MAX + 16];
    int pfd[2];
    pid_t pid;

    snprintf(logp, sizeof(logp), "%s/xensim.log", dir);
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        return -errno;
    }
    pid = fork();
    if (pid < 0) {
        int err = errno;

        close(pfd[0]);
        close(pfd[1]);
        return -err;
    }
    if (pid == 0) {
        const char *argv[24];
        int a = 0, fd;

        prctl(PR_SET_PDEATHSIG, deathsig);
        if (dup2(pfd[1], 3) < 0) {
            _exit(127);
        }
        if (log) {
            fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                dup2(fd, 2);
            }
        }
        argv[a++] = xensim;
        argv[a++] = "--dir";
        argv[a++] = dir;
        argv[a++] = "start";
        argv[a++] = "--foreground";
        argv[a++] = "--ready-fd";
        argv[a++] = "3";
        for (; extra && *extra && a < 23; extra++) {
            argv[a++] = *extra;
        }
        argv[a] = NULL;
        execv(xensim, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    *ready_fd = pfd[0];
    return pid;
}

/*
 * Read xensim's ready line from @fd (closed here) into @line: true if it
 * says "ok ", false on anything else, silence or a timeout (@line then
 * holds what came, possibly "").
 */
static inline bool xensim_start_wait(int fd, char *line, size_t len)
{
    size_t got = 0;

    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&p, 1, XENSIM_START_TIMEOUT_MS) <= 0) {
            break;
        }
        n = read(fd, line + got, len - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (memchr(line, '\n', got)) {
            break;
        }
    }
    close(fd);
    line[got] = '\0';
    return strncmp(line, "ok ", 3) == 0;
}

#endif /* XENRAM_TESTS_COMMON_XENSIM_START_H */
