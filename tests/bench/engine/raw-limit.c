/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * raw-limit.c - the baseline of the engine benchmark (tests/bench/engine/
 * run.sh): the fastest this machine moves N MiB of a guest from one
 * process to another the way a migration must, with nothing of xenram's.
 * CHANNELS writer processes each push their share of non-zero data
 * through a unix socket to a reader process that writes it into a memfd
 * it pre-faulted with MADV_POPULATE_WRITE (populating the destination is
 * part of every migration's cost).  Prints "raw MIB CHANNELS SECONDS".
 *
 *   raw-limit MIB [CHANNELS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define CHUNK (2u << 20)

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void writer(int fd, size_t bytes)
{
    uint8_t *buf = malloc(CHUNK);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();

    for (size_t i = 0; i < CHUNK; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < CHUNK ? bytes - done : CHUNK;
        ssize_t w = write(fd, buf, n);

        if (w <= 0) {
            perror("raw-limit: write");
            exit(1);
        }
        done += (size_t)w;
    }
    exit(0);
}

static void reader(int fd, size_t bytes)
{
    int mfd = memfd_create("raw-limit", 0);
    uint8_t *mem;

    if (mfd < 0 || ftruncate(mfd, (off_t)bytes)) {
        perror("raw-limit: memfd");
        exit(1);
    }
    mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (mem == MAP_FAILED) {
        perror("raw-limit: mmap");
        exit(1);
    }
    madvise(mem, bytes, MADV_POPULATE_WRITE);
    for (size_t done = 0; done < bytes;) {
        ssize_t r = read(fd, mem + done, bytes - done);

        if (r <= 0) {
            perror("raw-limit: read");
            exit(1);
        }
        done += (size_t)r;
    }
    exit(0);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 0;
    unsigned ch = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 2;
    size_t share;
    double t0;
    int status, bad = 0;

    if (!mib || !ch || ch > 16) {
        fprintf(stderr, "usage: raw-limit MIB [CHANNELS]\n");
        return 2;
    }
    share = (mib << 20) / ch;
    t0 = now();
    for (unsigned i = 0; i < ch; i++) {
        int sv[2];

        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
            perror("raw-limit: socketpair");
            return 1;
        }
        if (fork() == 0) {
            close(sv[1]);
            writer(sv[0], share);
        }
        if (fork() == 0) {
            close(sv[0]);
            reader(sv[1], share);
        }
        close(sv[0]);
        close(sv[1]);
    }
    while (wait(&status) > 0) {
        bad |= !WIFEXITED(status) || WEXITSTATUS(status);
    }
    printf("raw %zu %u %.3f\n", mib, ch, now() - t0);
    return bad;
}
