/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the QMP request path (framing, jansson, negotiation,
 * the argument schema and dispatch), through a real socket pair and the
 * main loop; fd passing aside.
 *
 * Input: one byte, the size of the writes (1 to 256 bytes) the rest is
 * cut into, so that values split across reads are explored; then what the
 * client sends after negotiating.  Invariants: every line the server
 * writes is a JSON object that is a greeting, an event, a "return" or an
 * "error" with a class and a description (so a reply can never be lost
 * to an encoding failure); and when the input is exactly one JSON value,
 * it gets exactly one reply, which for a well-formed "echo" returns the
 * arguments unchanged.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xen/dm/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const QmpVersion version = { 7, 2, 0, "xenram fuzz" };

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
    (void)opaque;
    /* An error text as long as the client likes: it must still be sent. */
    return qmp_error(err, QMP_ERROR_GENERIC, "failed: %s",
                     json_string_value(json_object_get(args, "s")) ?
                     json_string_value(json_object_get(args, "s")) : "");
}

typedef struct Out {
    char *buf;
    size_t len;
} Out;

static void drain(MainLoop *loop, int peer, Out *out)
{
    char tmp[65536];

    for (int i = 0; i < 2; i++) {
        ssize_t n;

        main_loop_iterate(loop, 0);
        while ((n = recv(peer, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
            out->buf = realloc(out->buf, out->len + n + 1);
            memcpy(out->buf + out->len, tmp, n);
            out->len += n;
            out->buf[out->len] = '\0';
        }
    }
}

/* Run the loop and read until neither side has anything left to do. */
static void drain_all(MainLoop *loop, int peer, Out *out)
{
    for (int i = 0; i < 10000; i++) {
        size_t before = out->len;

        if (main_loop_iterate(loop, 0) == 0) {
            drain(loop, peer, out);
            if (out->len == before) {
                return;
            }
        } else {
            drain(loop, peer, out);
        }
    }
    abort();                    /* the server never settles */
}

/* Check every reply line; returns the replies after greeting and "{}". */
static size_t check_replies(const Out *out, json_t **last)
{
    size_t nreplies = 0, pos = 0;

    *last = NULL;
    while (pos < out->len) {
        char *nl = memchr(out->buf + pos, '\n', out->len - pos);
        json_t *msg, *e;

        if (!nl) {
            abort();            /* every reply ends with "\r\n" */
        }
        msg = json_loadb(out->buf + pos, nl + 1 - (out->buf + pos), 0, NULL);
        if (!json_is_object(msg)) {
            abort();
        }
        e = json_object_get(msg, "error");
        if (e && (!json_is_string(json_object_get(e, "class")) ||
                  !json_is_string(json_object_get(e, "desc")))) {
            abort();
        }
        if (!e && !json_object_get(msg, "return") &&
            !json_object_get(msg, "QMP") && !json_object_get(msg, "event")) {
            abort();
        }
        if (!json_object_get(msg, "QMP")) {
            nreplies++;
            json_decref(*last);
            *last = json_incref(msg);
        }
        json_decref(msg);
        pos = nl + 1 - out->buf;
    }
    return nreplies;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char nego[] = "{\"execute\":\"qmp_capabilities\"}\r\n";
    MainLoop *loop;
    QmpServer *srv;
    json_t *whole, *last;
    Out out = { NULL, 0 };
    size_t chunk, nreplies;
    int sv[2];

    if (size < 1 || size > 65536) {
        return 0;
    }
    chunk = (size_t)data[0] + 1;
    data++;
    size--;
    if (main_loop_new(&loop)) {
        abort();
    }
    if (qmp_server_new(loop, &version, &srv) ||
        qmp_register(srv, "echo", "b:b?,i:i?,s:s?,o:o?,a:a?", cmd_echo,
                     NULL) ||
        qmp_register(srv, "fail", "s:s?", cmd_fail, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
        qmp_server_listen_fd(srv, sv[0])) {
        abort();
    }
    if (send(sv[1], nego, strlen(nego), 0) != (ssize_t)strlen(nego)) {
        abort();
    }
    drain(loop, sv[1], &out);
    for (size_t done = 0; done < size;) {
        size_t n = size - done < chunk ? size - done : chunk;
        ssize_t w = send(sv[1], data + done, n, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (w > 0) {
            done += w;
        } else if (errno != EAGAIN) {
            abort();            /* the server never drops a client here */
        }
        drain(loop, sv[1], &out);
    }
    /* One value alone: a newline ends it even if it is a bare number. */
    whole = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (whole) {
        send(sv[1], "\r\n", 2, MSG_NOSIGNAL);
    }
    drain_all(loop, sv[1], &out);

    nreplies = check_replies(&out, &last);
    if (whole) {
        json_t *args = json_object_get(whole, "arguments");
        json_t *ret = json_object_get(last, "return");
        json_t *none = json_object();

        /* The negotiation's reply, then the value's. */
        if (nreplies != 2) {
            abort();
        }
        /* echo answers with its arguments ({} without any). */
        if (json_is_object(whole) &&
            json_is_string(json_object_get(whole, "execute")) &&
            !strcmp(json_string_value(json_object_get(whole, "execute")),
                    "echo") && ret && !json_equal(ret, args ? args : none)) {
            abort();
        }
        json_decref(none);
    }
    json_decref(whole);
    json_decref(last);
    free(out.buf);
    close(sv[1]);
    qmp_server_free(srv);
    main_loop_free(loop);
    return 0;
}
