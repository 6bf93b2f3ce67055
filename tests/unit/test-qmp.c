/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the QMP server: the protocol as libxl uses it, fd
 * passing, and bad input that must leave the connection usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "xen/dm/qmp.h"

typedef struct Fixture {
    MainLoop *loop;
    QmpServer *srv;
    int peer;               /* the test's end of the connection */
    char buf[65536];
    size_t len;
} Fixture;

static const QmpVersion version = { 7, 2, 0, "xenram test" };

/* A test command: echoes its arguments. */
static json_t *cmd_echo(QmpClient *c, json_t *args, void *opaque,
                        QmpError *err)
{
    (void)c;
    (void)opaque;
    (void)err;
    return json_deep_copy(args);
}

static json_t *cmd_fail(QmpClient *c, json_t *args, void *opaque,
                        QmpError *err)
{
    (void)c;
    (void)args;
    (void)opaque;
    return qmp_error(err, QMP_ERROR_GENERIC, "it failed on purpose");
}

/*
 * Read one reply line from the server, running the loop until it arrives
 * (bounded: 200 iterations of at most 50 ms).  Returns the parsed JSON.
 */
static json_t *recv_msg(Fixture *f)
{
    for (int i = 0; i < 200; i++) {
        char *nl = memchr(f->buf, '\n', f->len);

        if (nl) {
            size_t n = nl - f->buf + 1;
            json_t *msg = json_loadb(f->buf, n, 0, NULL);

            memmove(f->buf, f->buf + n, f->len - n);
            f->len -= n;
            assert_non_null(msg);
            return msg;
        }
        main_loop_iterate(f->loop, 50);
        ssize_t r = recv(f->peer, f->buf + f->len, sizeof(f->buf) - f->len,
                         MSG_DONTWAIT);
        if (r > 0) {
            f->len += r;
        }
    }
    fail_msg("no reply from the QMP server");
    return NULL;
}

static void send_raw(Fixture *f, const char *text)
{
    assert_int_equal(send(f->peer, text, strlen(text), 0),
                     (ssize_t)strlen(text));
}

/* Send @text and return the reply. */
static json_t *roundtrip(Fixture *f, const char *text)
{
    send_raw(f, text);
    return recv_msg(f);
}

static const char *error_class(json_t *msg)
{
    return json_string_value(json_object_get(json_object_get(msg, "error"),
                                             "class"));
}

static const char *error_desc(json_t *msg)
{
    return json_string_value(json_object_get(json_object_get(msg, "error"),
                                             "desc"));
}

static void negotiate(Fixture *f)
{
    json_t *r = roundtrip(f, "{\"execute\":\"qmp_capabilities\"}\r\n");

    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    int sv[2];
    json_t *greeting;

    assert_int_equal(main_loop_new(&f->loop), 0);
    assert_int_equal(qmp_server_new(f->loop, &version, &f->srv), 0);
    assert_int_equal(qmp_register(f->srv, "echo", "b:b?,i:i?,s:s?,o:o?",
                                  cmd_echo, NULL), 0);
    assert_int_equal(qmp_register(f->srv, "fail", NULL, cmd_fail, NULL), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(qmp_server_listen_fd(f->srv, sv[0]), 0);
    f->peer = sv[1];
    greeting = recv_msg(f);
    assert_non_null(json_object_get(greeting, "QMP"));
    json_decref(greeting);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;

    close(f->peer);
    qmp_server_free(f->srv);
    main_loop_free(f->loop);
    free(f);
    return 0;
}

static void test_greeting_carries_the_qemu_interface_version(void **state)
{
    Fixture *f = *state;
    int sv[2];
    json_t *g, *v;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(qmp_server_listen_fd(f->srv, sv[0]), 0);
    close(f->peer);
    f->peer = sv[1];
    g = recv_msg(f);
    v = json_object_get(json_object_get(g, "QMP"), "version");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(v, "qemu"), "major")), 7);
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(v, "qemu"), "minor")), 2);
    assert_string_equal(json_string_value(json_object_get(v, "package")),
                        "xenram test");
    assert_true(json_is_array(json_object_get(json_object_get(g, "QMP"),
                                              "capabilities")));
    json_decref(g);
}

static void test_commands_before_negotiation_are_refused(void **state)
{
    Fixture *f = *state;
    json_t *r = roundtrip(f, "{\"execute\":\"echo\",\"id\":1}\n");

    assert_string_equal(error_class(r), "CommandNotFound");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
}

static void test_second_negotiation_is_refused(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"qmp_capabilities\"}");
    assert_string_equal(error_class(r), "CommandNotFound");
    json_decref(r);
}

static void test_reply_echoes_integer_and_string_ids(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"echo\",\"id\":4711}\r\n");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 4711);
    assert_true(json_is_object(json_object_get(r, "return")));
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"fail\",\"id\":\"abc\"}\r\n");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "abc");
    assert_string_equal(error_desc(r), "it failed on purpose");
    json_decref(r);
}

static void test_unknown_command_then_connection_still_works(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"frobnicate\",\"id\":2}");
    assert_string_equal(error_class(r), "CommandNotFound");
    assert_non_null(strstr(error_desc(r), "frobnicate"));
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"echo\",\"arguments\":{\"i\":3}}");
    assert_int_equal(json_integer_value(json_object_get(
        json_object_get(r, "return"), "i")), 3);
    json_decref(r);
}

static void test_malformed_json_gets_an_error_and_next_command_works(
    void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\": echo]]\n");
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"echo\",\"id\":5}\n");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 5);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
}

static void test_wrong_argument_type_is_refused_by_the_schema(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"echo\",\"arguments\":{\"b\":\"yes\"}}");
    assert_string_equal(error_class(r), "GenericError");
    assert_non_null(strstr(error_desc(r), "'b'"));
    assert_non_null(strstr(error_desc(r), "boolean"));
    json_decref(r);
}

static void test_unexpected_argument_is_refused(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"echo\",\"arguments\":{\"zz\":1}}");
    assert_non_null(strstr(error_desc(r), "'zz' is unexpected"));
    json_decref(r);
}

static void test_missing_required_argument_is_refused(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"remove-fd\",\"arguments\":{}}");
    assert_non_null(strstr(error_desc(r), "'fdset-id' is missing"));
    json_decref(r);
}

static void test_non_object_input_and_bad_members_are_refused(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "[1,2]\n");
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"echo\",\"bogus\":1,\"id\":9}");
    assert_non_null(strstr(error_desc(r), "bogus"));
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
    json_decref(r);
    r = roundtrip(f, "{\"execute\":42}");
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"echo\",\"arguments\":[1]}");
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
}

static void test_command_split_across_writes_is_assembled(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    send_raw(f, "{\"execute\":\"ec");
    main_loop_iterate(f->loop, 10);
    send_raw(f, "ho\",\"id\":7}");
    r = recv_msg(f);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    json_decref(r);
}

static void test_two_commands_in_one_write_get_two_replies(void **state)
{
    Fixture *f = *state;
    json_t *r1, *r2;

    negotiate(f);
    send_raw(f, "{\"execute\":\"echo\",\"id\":1}{\"execute\":\"echo\","
                "\"id\":2}\r\n");
    r1 = recv_msg(f);
    r2 = recv_msg(f);
    assert_int_equal(json_integer_value(json_object_get(r1, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(r2, "id")), 2);
    json_decref(r1);
    json_decref(r2);
}

static void send_with_fd(int sock, const char *text, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { (void *)text, strlen(text) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = cbuf,
                          .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    assert_int_equal(sendmsg(sock, &msg, 0), (ssize_t)strlen(text));
}

static void test_add_fd_makes_the_fd_openable_as_dev_fdset(void **state)
{
    Fixture *f = *state;
    char path[] = "/tmp/xenram-test-qmp-XXXXXX";
    int tmp = mkstemp(path), fd, id;
    json_t *r;
    char back[8] = { 0 };

    assert_true(tmp >= 0);
    unlink(path);
    negotiate(f);
    send_with_fd(f->peer, "{\"execute\":\"add-fd\",\"id\":11}", tmp);
    close(tmp);
    r = recv_msg(f);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 11);
    id = json_integer_value(json_object_get(json_object_get(r, "return"),
                                            "fdset-id"));
    json_decref(r);

    snprintf(path, sizeof(path), "/dev/fdset/%d", id);
    fd = qmp_fdset_open(f->srv, path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "state", 5), 5);
    assert_int_equal(pread(fd, back, 5, 0), 5);
    assert_string_equal(back, "state");
    close(fd);

    /* After remove-fd the name no longer opens. */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "{\"execute\":\"remove-fd\",\"arguments\":"
             "{\"fdset-id\":%d}}", id);
    r = roundtrip(f, cmd);
    assert_non_null(json_object_get(r, "return"));
    json_decref(r);
    assert_int_equal(qmp_fdset_open(f->srv, path, O_WRONLY), -ENOENT);
}

static void test_add_fd_without_a_passed_fd_is_an_error(void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"add-fd\",\"id\":3}");
    assert_non_null(strstr(error_desc(r), "SCM_RIGHTS"));
    json_decref(r);
}

static void test_bad_fdset_names_do_not_open(void **state)
{
    Fixture *f = *state;

    assert_int_equal(qmp_fdset_open(f->srv, "/dev/fdset/99", O_RDONLY),
                     -ENOENT);
    assert_int_equal(qmp_fdset_open(f->srv, "/dev/fdset/x1", O_RDONLY),
                     -EINVAL);
    assert_int_equal(qmp_fdset_open(f->srv, "/dev/fdset/", O_RDONLY),
                     -EINVAL);
}

static void test_events_reach_negotiated_clients_only(void **state)
{
    Fixture *f = *state;
    json_t *ev;

    qmp_emit_event(f->srv, "EARLY", NULL);
    negotiate(f);
    qmp_emit_event(f->srv, "STOP", json_pack("{s:i}", "x", 1));
    ev = recv_msg(f);
    assert_string_equal(json_string_value(json_object_get(ev, "event")),
                        "STOP");
    assert_non_null(json_object_get(json_object_get(ev, "timestamp"),
                                    "seconds"));
    json_decref(ev);
}

static void test_socket_path_is_private_and_serves_two_clients(void **state)
{
    Fixture *f = *state;
    char dir[] = "/tmp/xenram-qmp-XXXXXX", path[128];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    int c1, c2;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/qmp", dir);
    assert_int_equal(qmp_server_listen_path(f->srv, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    strcpy(sa.sun_path, path);
    c1 = socket(AF_UNIX, SOCK_STREAM, 0);
    c2 = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c1, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(connect(c2, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 0; i < 20 && qmp_server_clients(f->srv) < 3; i++) {
        main_loop_iterate(f->loop, 50);
    }
    assert_int_equal(qmp_server_clients(f->srv), 3);

    /* One disconnects mid-command; the others are still served. */
    assert_int_equal(send(c1, "{\"execute\":\"qmp_capa", 20, 0), 20);
    close(c1);
    for (int i = 0; i < 20 && qmp_server_clients(f->srv) > 2; i++) {
        main_loop_iterate(f->loop, 50);
    }
    assert_int_equal(qmp_server_clients(f->srv), 2);
    negotiate(f);
    close(c2);
    qmp_server_free(f->srv);
    f->srv = NULL;
    assert_int_equal(stat(path, &st), -1);     /* removed on exit */
    rmdir(dir);
    assert_int_equal(qmp_server_new(f->loop, &version, &f->srv), 0);
}

static void test_registration_rejects_bad_schemas_and_duplicates(void **state)
{
    Fixture *f = *state;

    assert_int_equal(qmp_register(f->srv, "echo", NULL, cmd_echo, NULL),
                     -EEXIST);
    assert_int_equal(qmp_register(f->srv, "x1", "a", cmd_echo, NULL),
                     -EINVAL);
    assert_int_equal(qmp_register(f->srv, "x2", "a:q", cmd_echo, NULL),
                     -EINVAL);
    assert_int_equal(qmp_register(f->srv, "x3", "a:b??", cmd_echo, NULL),
                     -EINVAL);
    assert_int_equal(qmp_register(f->srv, "x4", "a:b?,c:s", cmd_echo, NULL),
                     0);
}

static void test_query_commands_lists_registered_commands(void **state)
{
    Fixture *f = *state;
    json_t *r, *list;
    bool seen_echo = false, seen_add_fd = false;
    size_t i;
    json_t *e;

    negotiate(f);
    r = roundtrip(f, "{\"execute\":\"query-commands\"}");
    list = json_object_get(r, "return");
    json_array_foreach(list, i, e) {
        const char *n = json_string_value(json_object_get(e, "name"));

        seen_echo |= !strcmp(n, "echo");
        seen_add_fd |= !strcmp(n, "add-fd");
    }
    assert_true(seen_echo && seen_add_fd);
    json_decref(r);
}

/* ---- hardening: replies never lost, bounded work and memory ------------- */

static json_t *cmd_count(QmpClient *c, json_t *args, void *opaque,
                         QmpError *err)
{
    (void)c;
    (void)opaque;
    (void)err;
    return json_integer((json_int_t)json_array_size(json_object_get(args,
                                                                    "v")));
}

static void test_error_text_is_cut_on_a_utf8_boundary(void **state)
{
    QmpError err;
    char arg[601];

    (void)state;
    /* "x" then 300 two-byte characters: 512 falls inside one of them. */
    arg[0] = 'x';
    for (int i = 0; i < 300; i++) {
        memcpy(arg + 1 + 2 * i, "\xc3\xa9", 2);
    }
    arg[601 - 1] = '\0';
    assert_null(qmp_error(&err, QMP_ERROR_GENERIC, "%s", arg));
    assert_true(strlen(err.desc) < sizeof(err.desc));
    assert_true(strlen(err.desc) >= sizeof(err.desc) - 4);
    {
        json_t *js = json_string(err.desc);

        assert_non_null(js);
        json_decref(js);
    }
    /* Bytes that are no UTF-8 at all become '?'. */
    qmp_error(&err, QMP_ERROR_GENERIC, "bad \xff\xfe byte");
    assert_string_equal(err.desc, "bad ?? byte");
}

static void test_long_utf8_command_name_still_gets_a_reply(void **state)
{
    Fixture *f = *state;
    char req[1024];
    size_t n;
    json_t *r;

    negotiate(f);
    n = snprintf(req, sizeof(req), "{\"id\":3,\"execute\":\"");
    for (int i = 0; i < 250; i++) {
        memcpy(req + n, "\xc3\xa9", 2);
        n += 2;
    }
    snprintf(req + n, sizeof(req) - n, "\"}\r\n");
    r = roundtrip(f, req);
    assert_string_equal(error_class(r), "CommandNotFound");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 3);
    assert_non_null(strstr(error_desc(r), "\xc3\xa9\xc3\xa9"));
    json_decref(r);
}

/* Send all of @len bytes, running the loop while the socket is full. */
static void send_all(Fixture *f, const char *p, size_t len)
{
    for (int spins = 0; len; spins++) {
        ssize_t n = send(f->peer, p, len > 4096 ? 4096 : len, MSG_DONTWAIT);

        assert_true(spins < 1000000);
        if (n > 0) {
            p += n;
            len -= n;
        } else {
            assert_int_equal(errno, EAGAIN);
        }
        main_loop_iterate(f->loop, 0);
    }
}

static void test_a_1_mib_command_is_parsed_once(void **state)
{
    Fixture *f = *state;
    size_t nelem = 500 * 1000, len;
    struct timespec t0, t1;
    char *req = malloc(2 * nelem + 64);
    json_t *r;
    double cpu, once;

    assert_int_equal(qmp_register(f->srv, "count", "v:a", cmd_count, NULL),
                     0);
    negotiate(f);
    /* 1 MB of "0,0,...": half a million values for jansson to build. */
    len = sprintf(req, "{\"execute\":\"count\",\"arguments\":{\"v\":[");
    for (size_t i = 0; i < nelem; i++) {
        memcpy(req + len, i ? ",0" : "0", i ? 2 : 1);
        len += i ? 2 : 1;
    }
    len += sprintf(req + len, "]},\"id\":1}\r\n");
    /* What parsing it once costs here (valgrind makes everything slow). */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    json_decref(json_loadb(req, len, 0, NULL));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    once = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    send_all(f, req, len);
    r = recv_msg(f);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    assert_int_equal(json_integer_value(json_object_get(r, "return")),
                     (json_int_t)nelem);
    json_decref(r);
    free(req);
    /*
     * Re-parsing the buffer per 4 KiB read cost about a hundred single
     * parses (244 reads, half the command each on average); one pass
     * costs one parse and the copying around it.
     */
    cpu = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (cpu > 10 * once + 0.05) {
        fail_msg("a 1 MB command took %.3f s of CPU; parsing it once takes "
                 "%.3f s", cpu, once);
    }
}

static void test_one_bad_command_gets_one_error_however_it_arrives(
    void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    /* An object broken inside, its end in a later read. */
    send_raw(f, "{\"execute\": bogus, \"x\"");
    main_loop_iterate(f->loop, 10);
    send_raw(f, ": more bogus}\r\n");
    r = recv_msg(f);
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    /* Garbage found broken at once, the rest of its line in later reads. */
    send_raw(f, "garbage and");
    main_loop_iterate(f->loop, 10);
    send_raw(f, " more garbage");
    main_loop_iterate(f->loop, 10);
    send_raw(f, " {\"still\": garbage}\n");
    r = recv_msg(f);
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    r = roundtrip(f, "{\"execute\":\"echo\",\"id\":6}\r\n");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 6);
    json_decref(r);
}

static void test_unclosed_object_is_refused_when_the_next_command_comes(
    void **state)
{
    Fixture *f = *state;
    json_t *r;

    negotiate(f);
    send_raw(f, "{\"execute\":\"echo\",\"id\":1\r\n");
    main_loop_iterate(f->loop, 10);
    send_raw(f, "{\"execute\":\"echo\",\"id\":8}\r\n");
    r = recv_msg(f);
    assert_string_equal(error_class(r), "GenericError");
    json_decref(r);
    r = recv_msg(f);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 8);
    json_decref(r);
}

static void test_client_that_never_reads_is_dropped_past_the_cap(
    void **state)
{
    Fixture *f = *state;
    char req[4200];
    size_t len, sent = 0;

    negotiate(f);
    len = sprintf(req, "{\"execute\":\"echo\",\"arguments\":{\"s\":\"");
    memset(req + len, 'b', 4000);
    len += 4000;
    len += sprintf(req + len, "\"}}\r\n");
    /* Replies are as long as requests: twice the cap is plenty. */
    while (qmp_server_clients(f->srv) == 1 && sent < 2 * QMP_MAX_OUTPUT) {
        ssize_t n = send(f->peer, req, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n > 0) {
            sent += n;
            if ((size_t)n < len) {
                send_all(f, req + n, len - n);
                sent += len - n;
            }
        } else {
            assert_int_equal(errno, EAGAIN);
        }
        main_loop_iterate(f->loop, 0);
    }
    assert_int_equal(qmp_server_clients(f->srv), 0);
    assert_true(sent > QMP_MAX_OUTPUT);
}

static void test_accept_without_free_fds_pauses_instead_of_spinning(
    void **state)
{
    Fixture *f = *state;
    char dir[] = "/tmp/xenram-qmp-XXXXXX", path[128];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct rlimit old, low;
    int fds[512], nfds = 0, events = 0, c, c2;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/qmp", dir);
    assert_int_equal(qmp_server_listen_path(f->srv, path), 0);
    strcpy(sa.sun_path, path);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);

    /* Use up every descriptor below a low limit. */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (nfds < 512 && (fds[nfds] = dup(0)) >= 0) {
        nfds++;
    }
    assert_int_equal(errno, EMFILE);

    /* The pending connection must not wake the loop again and again. */
    for (int i = 0; i < 200; i++) {
        int n = main_loop_iterate(f->loop, 0);

        assert_true(n >= 0);
        events += n;
    }
    assert_true(events <= 3);
    assert_int_equal(qmp_server_clients(f->srv), 1);

    /*
     * Descriptors free: connections are accepted again.  (A second one
     * too, because valgrind emulates the limit by accepting and closing:
     * there the first connection is gone.)
     */
    for (int i = 0; i < 8; i++) {
        close(fds[--nfds]);
    }
    c2 = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(c2, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 0; i < 100 && qmp_server_clients(f->srv) < 2; i++) {
        main_loop_iterate(f->loop, 50);
    }
    assert_true(qmp_server_clients(f->srv) >= 2);
    close(c2);
    while (nfds) {
        close(fds[--nfds]);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    close(c);
    qmp_server_free(f->srv);
    f->srv = NULL;
    rmdir(dir);
    assert_int_equal(qmp_server_new(f->loop, &version, &f->srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_greeting_carries_the_qemu_interface_version),
        T(test_commands_before_negotiation_are_refused),
        T(test_second_negotiation_is_refused),
        T(test_reply_echoes_integer_and_string_ids),
        T(test_unknown_command_then_connection_still_works),
        T(test_malformed_json_gets_an_error_and_next_command_works),
        T(test_wrong_argument_type_is_refused_by_the_schema),
        T(test_unexpected_argument_is_refused),
        T(test_missing_required_argument_is_refused),
        T(test_non_object_input_and_bad_members_are_refused),
        T(test_command_split_across_writes_is_assembled),
        T(test_two_commands_in_one_write_get_two_replies),
        T(test_add_fd_makes_the_fd_openable_as_dev_fdset),
        T(test_add_fd_without_a_passed_fd_is_an_error),
        T(test_bad_fdset_names_do_not_open),
        T(test_events_reach_negotiated_clients_only),
        T(test_socket_path_is_private_and_serves_two_clients),
        T(test_registration_rejects_bad_schemas_and_duplicates),
        T(test_query_commands_lists_registered_commands),
        T(test_error_text_is_cut_on_a_utf8_boundary),
        T(test_long_utf8_command_name_still_gets_a_reply),
        T(test_a_1_mib_command_is_parsed_once),
        T(test_one_bad_command_gets_one_error_however_it_arrives),
        T(test_unclosed_object_is_refused_when_the_next_command_comes),
        T(test_client_that_never_reads_is_dropped_past_the_cap),
        T(test_accept_without_free_fds_pauses_instead_of_spinning),
#undef T
    };

    return cmocka_run_group_tests_name("qmp", tests, NULL, NULL);
}
