/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-channel.c - the migration channels (migration/channel.h): URIs are
 * parsed or refused with the accepted forms named, whole buffers cross
 * however the kernel splits them, a peer that goes away or stalls is a
 * clear error, and a cancel wakes a transfer blocked in another thread.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "migration/channel.h"

static void pair(MigChannel **a, MigChannel **b, int stall_ms)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(mig_channel_from_fd(sv[0], "control", stall_ms, a), 0);
    assert_int_equal(mig_channel_from_fd(sv[1], "data 1", stall_ms, b), 0);
}

static void test_uris_are_parsed_as_qemu_writes_them(void **state)
{
    MigAddress a;
    char err[256];

    (void)state;
    assert_int_equal(mig_address_parse("tcp:10.0.0.2:4444", &a, err,
                                       sizeof(err)), 0);
    assert_int_equal(a.kind, MIG_ADDR_TCP);
    assert_string_equal(a.host, "10.0.0.2");
    assert_string_equal(a.port, "4444");
    assert_int_equal(mig_address_parse("tcp:[::1]:5", &a, err, sizeof(err)),
                     0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(mig_address_parse("unix:/run/m.sock", &a, err,
                                       sizeof(err)), 0);
    assert_string_equal(a.path, "/run/m.sock");
    assert_int_equal(mig_address_parse("fd:migfd", &a, err, sizeof(err)), 0);
    assert_string_equal(a.fdname, "migfd");
}

static void test_bad_uris_name_the_accepted_forms(void **state)
{
    static const char *const bad[] = {
        "exec:cat", "tcp:host", "tcp:host:", "tcp:h:12x", "unix:", "fd:",
        "tcp:[::1:4", "rdma:1.2.3.4:5",
    };
    MigAddress a;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(mig_address_parse(bad[i], &a, err, sizeof(err)),
                         -EINVAL);
        assert_true(err[0] != 0);
    }
    mig_address_parse("exec:cat", &a, err, sizeof(err));
    assert_non_null(strstr(err, "tcp:HOST:PORT, unix:PATH or fd:NAME"));
}

typedef struct Big {
    MigChannel *c;
    uint8_t *buf;
    size_t len;
    int ret;
    char err[256];
} Big;

static void *reader(void *opaque)
{
    Big *b = opaque;

    b->ret = mig_channel_read_all(b->c, b->buf, b->len, b->err,
                                  sizeof(b->err));
    return NULL;
}

static void test_a_buffer_larger_than_the_socket_crosses_whole(void **state)
{
    enum { LEN = 8 << 20 };
    uint8_t *out = malloc(LEN), *in = malloc(LEN);
    struct iovec iov[3];
    MigChannel *a, *b;
    pthread_t t;
    char err[256];
    Big rd;

    (void)state;
    for (size_t i = 0; i < LEN; i++) {
        out[i] = (uint8_t)(i * 2654435761u >> 13);
    }
    pair(&a, &b, 5000);
    rd = (Big) { .c = b, .buf = in, .len = LEN };
    assert_int_equal(pthread_create(&t, NULL, reader, &rd), 0);
    iov[0] = (struct iovec) { out, 100 };
    iov[1] = (struct iovec) { out + 100, LEN / 2 };
    iov[2] = (struct iovec) { out + 100 + LEN / 2, LEN / 2 - 100 };
    assert_int_equal(mig_channel_writev_all(a, iov, 3, err, sizeof(err)), 0);
    pthread_join(t, NULL);
    assert_int_equal(rd.ret, 0);
    assert_memory_equal(in, out, LEN);
    assert_int_equal(a->bytes_out, LEN);
    assert_int_equal(b->bytes_in, LEN);
    mig_channel_close(a);
    mig_channel_close(b);
    free(in);
    free(out);
}

static void test_the_peer_closing_is_named(void **state)
{
    MigChannel *a, *b;
    uint8_t buf[16] = { 0 };
    char err[256];

    (void)state;
    pair(&a, &b, 5000);
    mig_channel_close(a);
    assert_int_equal(mig_channel_read_all(b, buf, sizeof(buf), err,
                                          sizeof(err)), -ECONNRESET);
    assert_non_null(strstr(err, "the peer closed the connection"));
    assert_non_null(strstr(err, "data 1"));
    assert_int_equal(mig_channel_write_all(b, buf, sizeof(buf), err,
                                           sizeof(err)), -EPIPE);
    mig_channel_close(b);
}

static void test_a_stalled_peer_times_out(void **state)
{
    MigChannel *a, *b;
    uint8_t buf[16] = { 0 };
    char err[256];

    (void)state;
    pair(&a, &b, 50);
    /* Nobody writes on @a. */
    assert_int_equal(mig_channel_read_all(b, buf, sizeof(buf), err,
                                          sizeof(err)), -ETIMEDOUT);
    assert_non_null(strstr(err, "no progress for 50 ms"));
    mig_channel_close(a);
    mig_channel_close(b);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * A peer that reads 8 KiB every 5 ms (1.6 MB/s) until told to hurry; the
 * pace is the workload, not a synchronisation.
 */
typedef struct Slow {
    MigChannel *c;
    size_t len;
    bool hurry;                 /* atomic: the writer is done */
    int ret;
    char err[256];
} Slow;

static void *slow_reader(void *opaque)
{
    Slow *s = opaque;
    static uint8_t buf[64 << 10];
    size_t got = 0;

    while (got < s->len) {
        size_t n = __atomic_load_n(&s->hurry, __ATOMIC_ACQUIRE) ?
                   sizeof(buf) : 8192;
        struct timespec pace = { 0, 5000000 };

        n = n < s->len - got ? n : s->len - got;
        s->ret = mig_channel_read_all(s->c, buf, n, s->err, sizeof(s->err));
        if (s->ret) {
            return NULL;
        }
        got += n;
        if (!__atomic_load_n(&s->hurry, __ATOMIC_ACQUIRE)) {
            nanosleep(&pace, NULL);
        }
    }
    return NULL;
}

/*
 * The kernel calls a full unix socket writable again only once three
 * quarters of it have drained: 3 MiB of a 4 MiB buffer, about 2 s at this
 * peer's pace, four times the stall timeout.  The peer takes bytes all
 * along, so it is slow, not stalled: the write completes.
 */
static void test_a_slow_but_moving_peer_is_not_stalled(void **state)
{
    enum { LEN = 6 << 20, STALL = 500 };
    uint8_t *out = calloc(1, LEN);
    int sz = 2 << 20;                   /* the kernel doubles it */
    MigChannel *a, *b;
    char err[256] = "";
    pthread_t t;
    Slow rd;
    int ret;

    (void)state;
    assert_non_null(out);
    pair(&a, &b, STALL);
    assert_int_equal(setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &sz,
                                sizeof(sz)), 0);
    rd = (Slow) { .c = b, .len = LEN };
    assert_int_equal(pthread_create(&t, NULL, slow_reader, &rd), 0);
    ret = mig_channel_write_all(a, out, LEN, err, sizeof(err));
    __atomic_store_n(&rd.hurry, true, __ATOMIC_RELEASE);
    if (ret) {
        fprintf(stderr, "write: %s\n", err);
        mig_channel_cancel(b);
    }
    pthread_join(t, NULL);
    assert_int_equal(ret, 0);
    assert_int_equal(rd.ret, 0);
    mig_channel_close(a);
    mig_channel_close(b);
    free(out);
}

/*
 * A peer that takes nothing: the write fails once the buffer is full and
 * stall_ms passed without the peer taking a byte, within a wait slice of
 * the bound.
 */
static void test_a_frozen_peer_is_stalled_within_the_bound(void **state)
{
    enum { LEN = 16 << 20, STALL = 200 };
    uint8_t *out = calloc(1, LEN);
    MigChannel *a, *b;
    char err[256] = "";
    uint64_t t0, el;

    (void)state;
    assert_non_null(out);
    pair(&a, &b, STALL);
    t0 = now_ms();
    assert_int_equal(mig_channel_write_all(a, out, LEN, err, sizeof(err)),
                     -ETIMEDOUT);
    el = now_ms() - t0;
    fprintf(stderr, "stalled after %llu ms: %s\n", (unsigned long long)el,
            err);
    assert_non_null(strstr(err, "the peer is stalled"));
    assert_true(el >= STALL);
    assert_true(el < STALL + 400);
    mig_channel_close(a);
    mig_channel_close(b);
    free(out);
}

/* stop_reading wakes a blocked read, yet the channel still writes. */
static void test_stop_reading_lets_writes_go_on(void **state)
{
    MigChannel *a, *b;
    uint8_t buf[16];
    char err[256], got[6] = "";
    pthread_t t;
    Big rd;

    (void)state;
    pair(&a, &b, -1);
    rd = (Big) { .c = b, .buf = buf, .len = sizeof(buf) };
    assert_int_equal(pthread_create(&t, NULL, reader, &rd), 0);
    mig_channel_stop_reading(b);
    pthread_join(t, NULL);
    assert_int_equal(rd.ret, -ECANCELED);
    assert_int_equal(mig_channel_write_all(b, "why?!", 5, err, sizeof(err)),
                     0);
    assert_int_equal(mig_channel_read_all(a, got, 5, err, sizeof(err)), 0);
    assert_string_equal(got, "why?!");
    mig_channel_close(a);
    mig_channel_close(b);
}

static void test_cancel_wakes_a_blocked_read_in_another_thread(void **state)
{
    MigChannel *a, *b;
    uint8_t buf[16];
    pthread_t t;
    Big rd;

    (void)state;
    pair(&a, &b, -1);                   /* no timeout: only cancel ends it */
    rd = (Big) { .c = b, .buf = buf, .len = sizeof(buf) };
    assert_int_equal(pthread_create(&t, NULL, reader, &rd), 0);
    mig_channel_cancel(b);
    pthread_join(t, NULL);
    assert_int_equal(rd.ret, -ECANCELED);
    assert_non_null(strstr(rd.err, "cancelled"));
    mig_channel_close(a);
    mig_channel_close(b);
}

static void test_listen_and_connect_over_unix(void **state)
{
    MigAddress addr;
    MigChannel *c, *s;
    char path[64], err[256], got[6] = "";
    int lfd, fd;

    (void)state;
    snprintf(path, sizeof(path), "unix:/tmp/xr-test-chan-%d.sock",
             (int)getpid());
    assert_int_equal(mig_address_parse(path, &addr, err, sizeof(err)), 0);
    lfd = mig_listen(&addr, err, sizeof(err));
    assert_true(lfd >= 0);
    assert_int_equal(mig_channel_connect(&addr, "control", 1000, &c, err,
                                         sizeof(err)), 0);
    fd = mig_accept(lfd, 1000, NULL);
    assert_true(fd >= 0);
    assert_int_equal(mig_channel_from_fd(fd, "control", 1000, &s), 0);
    assert_int_equal(mig_channel_write_all(c, "hello", 5, err, sizeof(err)),
                     0);
    assert_int_equal(mig_channel_read_all(s, got, 5, err, sizeof(err)), 0);
    assert_string_equal(got, "hello");
    /* Nothing else connects: the accept times out. */
    assert_int_equal(mig_accept(lfd, 30, NULL), -ETIMEDOUT);
    mig_channel_close(c);
    mig_channel_close(s);
    close(lfd);
    unlink(addr.path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uris_are_parsed_as_qemu_writes_them),
        cmocka_unit_test(test_bad_uris_name_the_accepted_forms),
        cmocka_unit_test(test_a_buffer_larger_than_the_socket_crosses_whole),
        cmocka_unit_test(test_the_peer_closing_is_named),
        cmocka_unit_test(test_a_stalled_peer_times_out),
        cmocka_unit_test(test_a_slow_but_moving_peer_is_not_stalled),
        cmocka_unit_test(test_a_frozen_peer_is_stalled_within_the_bound),
        cmocka_unit_test(test_stop_reading_lets_writes_go_on),
        cmocka_unit_test(test_cancel_wakes_a_blocked_read_in_another_thread),
        cmocka_unit_test(test_listen_and_connect_over_unix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
