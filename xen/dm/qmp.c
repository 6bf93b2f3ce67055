/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmp.c - QMP server: sockets, framing, negotiation, dispatch, fdsets.
 *
 * Framing: QMP is a stream of JSON values with no delimiter of its own
 * (libxl ends each with "\r\n").  A small scanner follows the bytes as
 * they arrive (nesting depth, strings and their escapes) and keeps its
 * state between reads, so each byte is looked at once however the command
 * is split; jansson parses a value only when the scanner has seen it end.
 * A value that never ends because it is broken (an object left open
 * before the next command) is caught by trying jansson on it at a newline
 * whenever the unfinished text has doubled since the last try, so the
 * cost stays linear.  After a syntax error the input is skipped to the
 * next newline, including bytes that arrive later, so a client that sent
 * garbage gets one error and can go on.
 *
 * Every request gets a reply: an error text is cut on a UTF-8 character
 * boundary (and any invalid byte replaced), and a reply that cannot be
 * encoded is replaced by a fixed error object.  A client that does not
 * read its replies is dropped once QMP_MAX_OUTPUT bytes wait for it.
 * When accept fails for lack of file descriptors the listeners are paused
 * until a client goes or QMP_ACCEPT_RETRY_MS pass, instead of spinning.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"
#include "xen/dm/qmp.h"

#define QMP_MAX_INPUT   (1 << 20)   /* bytes of one unfinished command */
#define QMP_MAX_FDS     16          /* fds queued on one connection */
#define QMP_ACCEPT_RETRY_MS 100     /* listeners paused after EMFILE */

typedef struct QmpCommand {
    char *name;
    char *schema;
    QmpCommandFunc fn;
    void *opaque;
    struct QmpCommand *next;
} QmpCommand;

typedef struct QmpFd {
    int fd;
    char *opaque;
    struct QmpFd *next;
} QmpFd;

typedef struct QmpFdset {
    int64_t id;
    QmpFd *fds;
    struct QmpFdset *next;
} QmpFdset;

struct QmpClient {
    QmpServer *srv;
    int fd;
    bool negotiated;
    char *in;
    size_t inlen;
    char *out;
    size_t outlen;
    int fds[QMP_MAX_FDS];           /* received with SCM_RIGHTS, FIFO */
    int nfds;
    bool dead;                      /* dropped: freed when the server idles */
    /* The framing scanner (see the top of the file), over in[0..inlen). */
    struct {
        size_t at;                  /* next byte to look at */
        size_t depth;               /* open objects and arrays */
        size_t tried;               /* length at the last premature parse */
        bool started, in_str, esc, scalar, newline, skip_line;
    } scan;
    QmpClient *next;
};

/* An fd passed with getfd, named for migrate "fd:NAME". */
typedef struct QmpNamedFd {
    char *name;
    int fd;
    struct QmpNamedFd *next;
} QmpNamedFd;

typedef struct QmpListener {
    int fd;
    char *path;                     /* unlinked on free, if we created it */
    struct QmpListener *next;
} QmpListener;

struct QmpServer {
    MainLoop *loop;
    QmpVersion version;
    QmpCommand *commands;
    QmpClient *clients;
    QmpListener *listeners;
    QmpFdset *fdsets;
    QmpNamedFd *named;
    int busy;                       /* callbacks running: defer freeing */
    bool have_dead;                 /* a client waits to be freed */
    bool paused;                    /* listeners off after EMFILE */
    QmpTraceFn trace;               /* --log-level=debug, or NULL */
    void *trace_opaque;
    int retry_fd;                   /* timerfd that resumes them, or -1 */
};

/*
 * The length of the valid UTF-8 sequence at @s (at most @len bytes), or 0
 * (invalid, or cut short when @cut is set): the rules jansson applies, so
 * that whatever passes here json_string() accepts.
 */
static size_t utf8_seq(const unsigned char *s, size_t len, bool *cut)
{
    unsigned int c = s[0], n, cp;

    *cut = false;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    for (unsigned int i = 1; i < n; i++) {
        if (i >= len) {
            *cut = true;
            return 0;
        }
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/*
 * Make @s valid UTF-8 in place: a sequence cut short by the end (a
 * truncated snprintf) is dropped, any other invalid byte becomes '?'.
 */
static void utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s);

    for (size_t i = 0; i < len;) {
        bool cut;
        size_t n = utf8_seq(p + i, len - i, &cut);

        if (n) {
            i += n;
        } else if (cut) {
            p[i] = '\0';
            return;
        } else {
            p[i++] = '?';
        }
    }
}

json_t *qmp_error(QmpError *err, const char *cls, const char *fmt, ...)
{
    va_list ap;

    err->cls = cls;
    va_start(ap, fmt);
    vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
    va_end(ap);
    utf8_sanitize(err->desc);
    return NULL;
}

/* ---- output ------------------------------------------------------------ */

static void client_free(QmpClient *c);
static void server_resume_listeners(QmpServer *srv);

/*
 * Drop @c: its socket closes now (the peer sees end of file); the struct
 * is freed once no callback of this server runs (server_reap), because
 * the caller may still be walking it.
 */
static void client_drop(QmpClient *c, const char *why)
{
    QmpServer *srv = c->srv;

    if (c->dead) {
        return;
    }
    if (why) {
        fprintf(stderr, "xenram: qmp: dropping a client: %s\n", why);
    }
    c->dead = true;
    srv->have_dead = true;
    if (c->fd >= 0) {
        main_loop_del_fd(srv->loop, c->fd);
        close(c->fd);
        c->fd = -1;
    }
    c->outlen = 0;
    c->inlen = 0;
    server_resume_listeners(srv);
}

static void server_reap(QmpServer *srv)
{
    if (srv->busy || !srv->have_dead) {
        return;
    }
    srv->have_dead = false;
    for (QmpClient **pp = &srv->clients; *pp;) {
        QmpClient *c = *pp;

        if (c->dead) {
            *pp = c->next;
            c->next = NULL;
            client_free(c);
        } else {
            pp = &c->next;
        }
    }
}

static void client_flush(QmpClient *c)
{
    while (c->outlen) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                main_loop_mod_fd(c->srv->loop, c->fd, EPOLLIN | EPOLLOUT);
                return;
            }
            c->outlen = 0;          /* the peer is gone; reading notices */
            return;
        }
        memmove(c->out, c->out + n, c->outlen - n);
        c->outlen -= n;
    }
    main_loop_mod_fd(c->srv->loop, c->fd, EPOLLIN);
}

/* Queue @len bytes of @text and "\r\n"; false if they cannot be. */
static bool client_queue(QmpClient *c, const char *text, size_t len)
{
    char *out;

    if (c->dead) {
        return true;                /* nobody to tell */
    }
    if (c->outlen + len + 2 > QMP_MAX_OUTPUT) {
        client_drop(c, "more than QMP_MAX_OUTPUT bytes of replies and "
                    "events unread");
        return true;
    }
    out = realloc(c->out, c->outlen + len + 2);
    if (!out) {
        return false;
    }
    c->out = out;
    memcpy(c->out + c->outlen, text, len);
    memcpy(c->out + c->outlen + len, "\r\n", 2);
    c->outlen += len + 2;
    client_flush(c);
    return true;
}

/* Queue @msg (consumed; may be NULL) and try to send it.  False if not. */
static bool client_send(QmpClient *c, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    bool ok;

    json_decref(msg);
    if (!text) {
        return false;
    }
    if (c->srv->trace) {
        c->srv->trace(c->srv->trace_opaque, false, text);
    }
    ok = client_queue(c, text, strlen(text));
    free(text);
    return ok;
}

/*
 * Send the reply @msg (consumed; may be NULL when building it failed) to
 * the request @id.  A reply that cannot be encoded or queued becomes a
 * fixed error, so the client never waits for an answer that is not sent.
 */
static void client_reply(QmpClient *c, json_t *id, json_t *msg)
{
    static const char fallback[] =
        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"the reply "
        "could not be encoded\"}}";
    json_t *err;

    if (msg && id) {
        json_object_set(msg, "id", id);
    }
    if (client_send(c, msg)) {
        return;
    }
    err = json_pack("{s:{s:s,s:s}}", "error", "class", QMP_ERROR_GENERIC,
                    "desc", "the reply could not be encoded");
    if (err && id) {
        json_object_set(err, "id", id);
    }
    if (!client_send(c, err)) {
        client_queue(c, fallback, strlen(fallback));
    }
}

static void client_send_error(QmpClient *c, json_t *id, const QmpError *err)
{
    client_reply(c, id, json_pack("{s:{s:s,s:s}}", "error", "class",
                                  err->cls, "desc", err->desc));
}

/* ---- argument schema ------------------------------------------------------ */

static bool type_matches(char type, json_t *v)
{
    switch (type) {
    case 'b':
        return json_is_boolean(v);
    case 'i':
        return json_is_integer(v);
    case 's':
        return json_is_string(v);
    case 'o':
        return json_is_object(v);
    case 'a':
        return true;
    default:
        return false;
    }
}

static const char *type_name(char type)
{
    switch (type) {
    case 'b':
        return "boolean";
    case 'i':
        return "integer";
    case 's':
        return "string";
    case 'o':
        return "object";
    default:
        return "value";
    }
}

/*
 * Check @args against @schema ("name:t[?],...").  Returns false with @err
 * set on the first problem, in QEMU's wording.
 */
static bool schema_check(const char *schema, json_t *args, QmpError *err)
{
    const char *p = schema ? schema : "";
    const char *key;
    json_t *value;

    /* Every schema entry: present with the right type, unless optional. */
    while (*p) {
        const char *colon = strchr(p, ':');
        const char *end = strchr(p, ',');
        char name[64];
        size_t nlen;
        bool optional;
        char type;
        json_t *v;

        if (!end) {
            end = p + strlen(p);
        }
        nlen = colon - p;
        type = colon[1];
        optional = colon[2] == '?';
        memcpy(name, p, nlen);
        name[nlen] = '\0';
        v = json_object_get(args, name);
        if (!v && !optional) {
            qmp_error(err, QMP_ERROR_GENERIC, "Parameter '%s' is missing",
                      name);
            return false;
        }
        if (v && !type_matches(type, v)) {
            qmp_error(err, QMP_ERROR_GENERIC,
                      "Invalid parameter type for '%s', expected: %s", name,
                      type_name(type));
            return false;
        }
        p = *end ? end + 1 : end;
    }

    /* Nothing that the schema does not name. */
    json_object_foreach(args, key, value) {
        size_t klen = strlen(key);
        const char *s = schema ? schema : "";
        bool known = false;

        while (*s && !known) {
            const char *colon = strchr(s, ':');
            const char *end = strchr(s, ',');

            known = (size_t)(colon - s) == klen && !strncmp(s, key, klen);
            s = end ? end + 1 : s + strlen(s);
        }
        if (!known) {
            qmp_error(err, QMP_ERROR_GENERIC, "Parameter '%s' is unexpected",
                      key);
            return false;
        }
    }
    return true;
}

/* A schema must be well-formed: checked once, at registration. */
static bool schema_valid(const char *schema)
{
    const char *p = schema ? schema : "";

    while (*p) {
        const char *colon = strchr(p, ':');
        const char *end = strchr(p, ',');

        if (!end) {
            end = p + strlen(p);
        }
        if (!colon || colon > end || colon == p || colon - p >= 64 ||
            !strchr("biosa", colon[1]) || colon[1] == '\0' ||
            (colon + 2 != end && !(colon[2] == '?' && colon + 3 == end))) {
            return false;
        }
        p = *end ? end + 1 : end;
    }
    return true;
}

/* ---- dispatch ------------------------------------------------------------- */

static QmpCommand *command_find(QmpServer *srv, const char *name)
{
    for (QmpCommand *cmd = srv->commands; cmd; cmd = cmd->next) {
        if (!strcmp(cmd->name, name)) {
            return cmd;
        }
    }
    return NULL;
}

static void client_dispatch(QmpClient *c, json_t *req)
{
    QmpError err = { 0 };
    json_t *id, *exec, *args, *ret, *msg;
    const char *key, *name;
    QmpCommand *cmd;
    json_t *value;

    if (c->srv->trace) {
        char *t = json_dumps(req, JSON_COMPACT);

        if (t) {
            c->srv->trace(c->srv->trace_opaque, true, t);
            free(t);
        }
    }
    if (!json_is_object(req)) {
        qmp_error(&err, QMP_ERROR_GENERIC,
                  "QMP input must be a JSON object");
        client_send_error(c, NULL, &err);
        return;
    }
    id = json_object_get(req, "id");
    json_object_foreach(req, key, value) {
        if (strcmp(key, "execute") && strcmp(key, "arguments") &&
            strcmp(key, "id")) {
            qmp_error(&err, QMP_ERROR_GENERIC,
                      "QMP input member '%s' is unexpected", key);
            client_send_error(c, id, &err);
            return;
        }
    }
    exec = json_object_get(req, "execute");
    if (!json_is_string(exec)) {
        qmp_error(&err, QMP_ERROR_GENERIC, exec ?
                  "QMP input member 'execute' must be a string" :
                  "QMP input lacks member 'execute'");
        client_send_error(c, id, &err);
        return;
    }
    name = json_string_value(exec);
    args = json_object_get(req, "arguments");
    if (args && !json_is_object(args)) {
        qmp_error(&err, QMP_ERROR_GENERIC,
                  "QMP input member 'arguments' must be an object");
        client_send_error(c, id, &err);
        return;
    }

    cmd = command_find(c->srv, name);
    if (!c->negotiated && strcmp(name, "qmp_capabilities")) {
        qmp_error(&err, QMP_ERROR_NOT_FOUND,
                  "Expecting capabilities negotiation with "
                  "'qmp_capabilities'");
        client_send_error(c, id, &err);
        return;
    }
    if (!cmd) {
        qmp_error(&err, QMP_ERROR_NOT_FOUND,
                  "The command %s has not been found", name);
        client_send_error(c, id, &err);
        return;
    }
    args = args ? json_incref(args) : json_object();
    if (!schema_check(cmd->schema, args, &err)) {
        json_decref(args);
        client_send_error(c, id, &err);
        return;
    }
    ret = cmd->fn(c, args, cmd->opaque, &err);
    json_decref(args);
    if (!ret) {
        if (!err.cls) {
            qmp_error(&err, QMP_ERROR_GENERIC, "%s failed", name);
        }
        client_send_error(c, id, &err);
        return;
    }
    msg = json_pack("{s:o}", "return", ret);
    client_reply(c, id, msg);
}

static void scan_reset(QmpClient *c, size_t at)
{
    memset(&c->scan, 0, sizeof(c->scan));
    c->scan.at = at;
}

/*
 * Look at in[scan.at..end) for the end of the value that starts at @pos.
 * Returns the offset just past it, or 0 while it is unfinished.
 */
static size_t scan_value(QmpClient *c, size_t pos, size_t end)
{
    typeof(c->scan) *s = &c->scan;

    for (size_t i = s->at; i < end; i++) {
        char ch = c->in[i];

        if (ch == '\n') {
            s->newline = true;
        }
        if (s->in_str) {
            if (s->esc) {
                s->esc = false;
            } else if (ch == '\\') {
                s->esc = true;
            } else if (ch == '"') {
                s->in_str = false;
                if (s->depth == 0) {
                    return i + 1;
                }
            }
        } else if (s->scalar) {
            /* A number or literal ends at white space or punctuation. */
            if (strchr(" \t\r\n{}[],:\"", ch)) {
                s->at = i;
                return i;
            }
        } else if (ch == '"') {
            s->in_str = true;
        } else if (ch == '{' || ch == '[') {
            s->depth++;
        } else if (ch == '}' || ch == ']') {
            if (s->depth <= 1) {
                return i + 1;   /* closed, or a stray closer: jansson says */
            }
            s->depth--;
        } else if (s->depth == 0) {
            if (i == pos && strchr(",:", ch)) {
                return i + 1;
            }
            s->scalar = true;
        }
    }
    s->at = end;
    return 0;
}

/* The value in[pos..end) is broken: say so once, skip to the newline. */
static void client_parse_error(QmpClient *c, const json_error_t *jerr)
{
    QmpError err;

    qmp_error(&err, QMP_ERROR_GENERIC, "JSON parse error, %s", jerr->text);
    client_send_error(c, NULL, &err);
}

/* Parse and run every complete command in the input buffer. */
static void client_process(QmpClient *c)
{
    size_t pos = 0;

    while (pos < c->inlen && !c->dead) {
        json_error_t jerr;
        json_t *req;
        size_t end;

        if (c->scan.skip_line) {
            char *nl = memchr(c->in + pos, '\n', c->inlen - pos);

            if (!nl) {
                pos = c->inlen;
                break;
            }
            pos = (size_t)(nl - c->in) + 1;
            scan_reset(c, pos);
            continue;
        }
        if (!c->scan.started) {
            /* White space between values (the "\r\n") is not input. */
            while (pos < c->inlen && strchr(" \t\r\n", c->in[pos])) {
                pos++;
            }
            if (pos == c->inlen) {
                break;
            }
            scan_reset(c, pos);
            c->scan.started = true;
        }
        end = scan_value(c, pos, c->inlen);
        if (end) {
            req = json_loadb(c->in + pos, end - pos, JSON_DECODE_ANY, &jerr);
            if (!req) {
                client_parse_error(c, &jerr);
                pos = end;
                scan_reset(c, pos);
                c->scan.skip_line = true;
                continue;
            }
            pos = end;
            scan_reset(c, pos);
            client_dispatch(c, req);
            json_decref(req);
            continue;
        }
        /*
         * Unfinished.  At a newline, and once the text has doubled since
         * the last try, ask jansson whether it is merely unfinished.
         */
        if (!c->scan.newline || c->inlen - pos < 2 * c->scan.tried) {
            break;
        }
        c->scan.newline = false;
        req = json_loadb(c->in + pos, c->inlen - pos,
                         JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
        if (req) {
            /* The scanner missed an end jansson found: follow jansson. */
            pos += jerr.position;
            scan_reset(c, pos);
            client_dispatch(c, req);
            json_decref(req);
            continue;
        }
        if (json_error_code(&jerr) == json_error_premature_end_of_input) {
            c->scan.tried = c->inlen - pos;
            break;
        }
        client_parse_error(c, &jerr);
        scan_reset(c, pos);
        c->scan.skip_line = true;
    }
    if (c->dead) {
        return;
    }
    memmove(c->in, c->in + pos, c->inlen - pos);
    c->inlen -= pos;
    c->scan.at = c->scan.at > pos ? c->scan.at - pos : 0;
    if (c->inlen > QMP_MAX_INPUT) {
        QmpError err;

        qmp_error(&err, QMP_ERROR_GENERIC,
                  "QMP input exceeds %d bytes without a complete command; "
                  "input discarded up to the next newline", QMP_MAX_INPUT);
        client_send_error(c, NULL, &err);
        c->inlen = 0;
        scan_reset(c, 0);
        c->scan.skip_line = true;
    }
}

/* ---- connections ---------------------------------------------------------- */

static void client_read(MainLoop *loop, int fd, uint32_t events, void *opaque)
{
    QmpClient *c = opaque;
    char buf[4096];
    char cbuf[CMSG_SPACE(sizeof(int) * QMP_MAX_FDS)];
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = cbuf,
                          .msg_controllen = sizeof(cbuf) };
    ssize_t n;

    (void)loop;
    (void)fd;
    if (c->dead) {
        return;
    }
    if (events & EPOLLOUT) {
        client_flush(c);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        return;
    }
    n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        client_drop(c, NULL);
        server_reap(c->srv);
        return;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
         cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)CMSG_DATA(cm);

            for (int i = 0; i < nfd; i++) {
                if (c->nfds < QMP_MAX_FDS) {
                    c->fds[c->nfds++] = fds[i];
                } else {
                    close(fds[i]);
                }
            }
        }
    }
    {
        char *in = realloc(c->in, c->inlen + n);

        if (!in) {
            return;
        }
        c->in = in;
    }
    memcpy(c->in + c->inlen, buf, n);
    c->inlen += n;
    c->srv->busy++;
    client_process(c);
    c->srv->busy--;
    server_reap(c->srv);
}

static void client_free(QmpClient *c)
{
    QmpServer *srv = c->srv;

    for (QmpClient **pp = &srv->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->fd >= 0) {
        main_loop_del_fd(srv->loop, c->fd);
        close(c->fd);
    }
    for (int i = 0; i < c->nfds; i++) {
        close(c->fds[i]);
    }
    free(c->in);
    free(c->out);
    free(c);
    server_resume_listeners(srv);   /* a file descriptor is free again */
}

static int client_new(QmpServer *srv, int fd)
{
    QmpClient *c = calloc(1, sizeof(*c));
    json_t *greeting;
    int ret;

    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->srv = srv;
    c->fd = fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ret = main_loop_add_fd(srv->loop, fd, EPOLLIN, client_read, c);
    if (ret) {
        close(fd);
        free(c);
        return ret;
    }
    c->next = srv->clients;
    srv->clients = c;

    greeting = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP",
                         "version", "qemu", "major", srv->version.major,
                         "minor", srv->version.minor,
                         "micro", srv->version.micro,
                         "package", srv->version.package ?
                         srv->version.package : "",
                         "capabilities");
    client_send(c, greeting);
    return 0;
}

static void server_resume_listeners(QmpServer *srv)
{
    if (!srv->paused) {
        return;
    }
    srv->paused = false;
    for (QmpListener *l = srv->listeners; l; l = l->next) {
        main_loop_mod_fd(srv->loop, l->fd, EPOLLIN);
    }
}

/* The listeners were paused QMP_ACCEPT_RETRY_MS ago: try again. */
static void server_retry(MainLoop *loop, int fd, uint32_t events,
                         void *opaque)
{
    uint64_t expirations;

    (void)loop;
    (void)events;
    if (read(fd, &expirations, sizeof(expirations)) < 0) {
        /* EAGAIN: nothing expired after all */
    }
    server_resume_listeners(opaque);
}

/*
 * Out of file descriptors: the pending connection stays in the backlog
 * and would wake the loop again at once.  Stop listening until a client
 * goes (client_free) or the retry timer fires.
 */
static void server_pause_listeners(QmpServer *srv, int err)
{
    struct itimerspec its = {
        .it_value.tv_nsec = QMP_ACCEPT_RETRY_MS * 1000000L,
    };

    if (!srv->paused) {
        fprintf(stderr, "xenram: qmp: cannot accept a connection: %s; "
                "retrying in %d ms\n", strerror(err), QMP_ACCEPT_RETRY_MS);
    }
    srv->paused = true;
    for (QmpListener *l = srv->listeners; l; l = l->next) {
        main_loop_mod_fd(srv->loop, l->fd, 0);
    }
    if (srv->retry_fd >= 0) {
        timerfd_settime(srv->retry_fd, 0, &its, NULL);
    }
}

static void listener_accept(MainLoop *loop, int fd, uint32_t events,
                            void *opaque)
{
    QmpServer *srv = opaque;
    int cfd;

    (void)loop;
    if (!(events & EPOLLIN)) {
        return;
    }
    cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd >= 0) {
        client_new(srv, cfd);
    } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
               errno == ENOMEM) {
        server_pause_listeners(srv, errno);
    }
}

static int listener_add(QmpServer *srv, int fd, const char *path)
{
    QmpListener *l = calloc(1, sizeof(*l));
    int ret;

    if (!l) {
        return -ENOMEM;
    }
    if (srv->retry_fd < 0) {
        /* Made now: when it is needed, no fd may be left to make it. */
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

        if (tfd >= 0 && main_loop_add_fd(srv->loop, tfd, EPOLLIN,
                                         server_retry, srv) == 0) {
            srv->retry_fd = tfd;
        } else if (tfd >= 0) {
            close(tfd);
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ret = main_loop_add_fd(srv->loop, fd, srv->paused ? 0 : EPOLLIN,
                           listener_accept, srv);
    if (ret) {
        free(l);
        return ret;
    }
    l->fd = fd;
    l->path = path ? strdup(path) : NULL;
    l->next = srv->listeners;
    srv->listeners = l;
    return 0;
}

int qmp_server_listen_path(QmpServer *srv, const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    mode_t old_umask;
    int fd, ret;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    unlink(path);                       /* a stale socket of a dead DM */
    old_umask = umask(0177);            /* created 0600: only root talks */
    ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_umask);
    if (ret < 0 || listen(fd, 8) < 0) {
        ret = -errno;
        close(fd);
        return ret;
    }
    ret = listener_add(srv, fd, path);
    if (ret) {
        close(fd);
        unlink(path);
    }
    return ret;
}

int qmp_server_listen_fd(QmpServer *srv, int fd)
{
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) {
        return -errno;          /* ENOTSOCK: not a socket */
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return listening ? listener_add(srv, fd, NULL) : client_new(srv, fd);
}

int qmp_server_clients(QmpServer *srv)
{
    int n = 0;

    for (QmpClient *c = srv->clients; c; c = c->next) {
        n += !c->dead;
    }
    return n;
}

void qmp_emit_event(QmpServer *srv, const char *name, json_t *data)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    for (QmpClient *c = srv->clients; c; c = c->next) {
        json_t *ev;

        if (!c->negotiated) {
            continue;
        }
        ev = json_pack("{s:s,s:{s:I,s:I}}", "event", name, "timestamp",
                       "seconds", (json_int_t)tv.tv_sec, "microseconds",
                       (json_int_t)tv.tv_usec);
        if (data) {
            json_object_set(ev, "data", data);
        }
        client_send(c, ev);
    }
    json_decref(data);
    server_reap(srv);
}

/* ---- built-in commands ---------------------------------------------------- */

static json_t *cmd_qmp_capabilities(QmpClient *c, json_t *args, void *opaque,
                                    QmpError *err)
{
    (void)args;
    (void)opaque;
    if (c->negotiated) {
        return qmp_error(err, QMP_ERROR_NOT_FOUND,
                         "Capabilities negotiation is already complete, "
                         "command ignored");
    }
    c->negotiated = true;
    return json_object();
}

static json_t *cmd_query_commands(QmpClient *c, json_t *args, void *opaque,
                                  QmpError *err)
{
    json_t *list = json_array();

    (void)args;
    (void)opaque;
    (void)err;
    for (QmpCommand *cmd = c->srv->commands; cmd; cmd = cmd->next) {
        json_array_append_new(list, json_pack("{s:s}", "name", cmd->name));
    }
    return list;
}

static json_t *cmd_query_version(QmpClient *c, json_t *args, void *opaque,
                                 QmpError *err)
{
    QmpVersion *v = &c->srv->version;

    (void)args;
    (void)opaque;
    (void)err;
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", v->major,
                     "minor", v->minor, "micro", v->micro, "package",
                     v->package ? v->package : "");
}

static QmpFdset *fdset_find(QmpServer *srv, int64_t id)
{
    for (QmpFdset *s = srv->fdsets; s; s = s->next) {
        if (s->id == id) {
            return s;
        }
    }
    return NULL;
}

static json_t *cmd_add_fd(QmpClient *c, json_t *args, void *opaque,
                          QmpError *err)
{
    QmpServer *srv = c->srv;
    json_t *jid = json_object_get(args, "fdset-id");
    json_t *jopaque = json_object_get(args, "opaque");
    QmpFdset *set;
    QmpFd *f;
    int64_t id;

    (void)opaque;
    if (c->nfds == 0) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "No file descriptor supplied via SCM_RIGHTS");
    }
    if (jid) {
        id = json_integer_value(jid);
        if (id < 0) {
            return qmp_error(err, QMP_ERROR_GENERIC,
                             "Parameter 'fdset-id' expects a non-negative "
                             "value");
        }
    } else {
        /* The lowest free id, as QEMU does. */
        for (id = 0; fdset_find(srv, id); id++) {
        }
    }
    set = fdset_find(srv, id);
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (!set) {
            return qmp_error(err, QMP_ERROR_GENERIC, "Out of memory");
        }
        set->id = id;
        set->next = srv->fdsets;
        srv->fdsets = set;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        return qmp_error(err, QMP_ERROR_GENERIC, "Out of memory");
    }
    /* The oldest fd received on this connection goes with this command. */
    f->fd = c->fds[0];
    memmove(c->fds, c->fds + 1, --c->nfds * sizeof(int));
    f->opaque = jopaque ? strdup(json_string_value(jopaque)) : NULL;
    f->next = set->fds;
    set->fds = f;
    return json_pack("{s:I,s:i}", "fdset-id", (json_int_t)id, "fd", f->fd);
}

static QmpNamedFd **named_find(QmpServer *srv, const char *name)
{
    QmpNamedFd **pp;

    for (pp = &srv->named; *pp && strcmp((*pp)->name, name);
         pp = &(*pp)->next) {
    }
    return pp;
}

/* getfd: the oldest fd received on this connection takes @fdname. */
static json_t *cmd_getfd(QmpClient *c, json_t *args, void *opaque,
                         QmpError *err)
{
    const char *name = json_string_value(json_object_get(args, "fdname"));
    QmpNamedFd **pp, *n;

    (void)opaque;
    if (c->nfds == 0) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "No file descriptor supplied via SCM_RIGHTS");
    }
    if (!name[0] || isdigit((unsigned char)name[0])) {
        return qmp_error(err, QMP_ERROR_GENERIC, "Parameter 'fdname' "
                         "expects a name that does not begin with a digit");
    }
    pp = named_find(c->srv, name);
    if (*pp) {
        /* As QEMU: a new fd of the same name replaces the old one. */
        close((*pp)->fd);
        n = *pp;
    } else {
        n = calloc(1, sizeof(*n));
        if (!n || !(n->name = strdup(name))) {
            free(n);
            return qmp_error(err, QMP_ERROR_GENERIC, "Out of memory");
        }
        *pp = n;
    }
    n->fd = c->fds[0];
    memmove(c->fds, c->fds + 1, --c->nfds * sizeof(int));
    return json_object();
}

static json_t *cmd_closefd(QmpClient *c, json_t *args, void *opaque,
                           QmpError *err)
{
    const char *name = json_string_value(json_object_get(args, "fdname"));
    QmpNamedFd **pp = named_find(c->srv, name), *n = *pp;

    (void)opaque;
    if (!n) {
        return qmp_error(err, QMP_ERROR_GENERIC, "File descriptor named '%s' "
                         "not found", name);
    }
    *pp = n->next;
    close(n->fd);
    free(n->name);
    free(n);
    return json_object();
}

int qmp_take_named_fd(QmpServer *srv, const char *name)
{
    QmpNamedFd **pp = named_find(srv, name), *n = *pp;
    int fd;

    if (!n) {
        return -ENOENT;
    }
    *pp = n->next;
    fd = n->fd;
    free(n->name);
    free(n);
    return fd;
}

static void fdset_drop_if_empty(QmpServer *srv, QmpFdset *set)
{
    if (set->fds) {
        return;
    }
    for (QmpFdset **pp = &srv->fdsets; *pp; pp = &(*pp)->next) {
        if (*pp == set) {
            *pp = set->next;
            free(set);
            return;
        }
    }
}

static json_t *cmd_remove_fd(QmpClient *c, json_t *args, void *opaque,
                             QmpError *err)
{
    int64_t id = json_integer_value(json_object_get(args, "fdset-id"));
    json_t *jfd = json_object_get(args, "fd");
    QmpFdset *set = fdset_find(c->srv, id);
    bool removed = false;

    (void)opaque;
    if (!set) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "File descriptor named 'fdset-id:%lld' not found",
                         (long long)id);
    }
    for (QmpFd **pp = &set->fds; *pp;) {
        QmpFd *f = *pp;

        if (!jfd || f->fd == json_integer_value(jfd)) {
            *pp = f->next;
            close(f->fd);
            free(f->opaque);
            free(f);
            removed = true;
        } else {
            pp = &f->next;
        }
    }
    if (!removed) {
        return qmp_error(err, QMP_ERROR_GENERIC,
                         "File descriptor named 'fdset-id:%lld, fd:%lld' "
                         "not found", (long long)id,
                         (long long)json_integer_value(jfd));
    }
    fdset_drop_if_empty(c->srv, set);
    return json_object();
}

static json_t *cmd_query_fdsets(QmpClient *c, json_t *args, void *opaque,
                                QmpError *err)
{
    json_t *list = json_array();

    (void)args;
    (void)opaque;
    (void)err;
    for (QmpFdset *s = c->srv->fdsets; s; s = s->next) {
        json_t *fds = json_array();

        for (QmpFd *f = s->fds; f; f = f->next) {
            json_t *e = json_pack("{s:i}", "fd", f->fd);

            if (f->opaque) {
                json_object_set_new(e, "opaque", json_string(f->opaque));
            }
            json_array_append_new(fds, e);
        }
        json_array_append_new(list, json_pack("{s:I,s:o}", "fdset-id",
                                              (json_int_t)s->id, "fds", fds));
    }
    return list;
}

int qmp_fdset_open(QmpServer *srv, const char *name, int flags)
{
    const char *prefix = "/dev/fdset/";
    char *end;
    long long id;
    QmpFdset *set;

    if (strncmp(name, prefix, strlen(prefix))) {
        int fd = open(name, flags | O_CLOEXEC, 0600);

        return fd < 0 ? -errno : fd;
    }
    errno = 0;
    id = strtoll(name + strlen(prefix), &end, 10);
    if (errno || *end || end == name + strlen(prefix) || id < 0) {
        return -EINVAL;
    }
    set = fdset_find(srv, id);
    if (!set) {
        return -ENOENT;
    }
    for (QmpFd *f = set->fds; f; f = f->next) {
        int mode = fcntl(f->fd, F_GETFL);

        if (mode < 0) {
            continue;
        }
        mode &= O_ACCMODE;
        if (mode == O_RDWR || mode == (flags & O_ACCMODE)) {
            int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);

            return fd < 0 ? -errno : fd;
        }
    }
    return -EACCES;
}

/* ---- server ---------------------------------------------------------------- */

int qmp_register(QmpServer *srv, const char *name, const char *schema,
                 QmpCommandFunc fn, void *opaque)
{
    QmpCommand *cmd, **tail;

    if (!name || !fn || !schema_valid(schema)) {
        return -EINVAL;
    }
    if (command_find(srv, name)) {
        return -EEXIST;
    }
    cmd = calloc(1, sizeof(*cmd));
    if (!cmd) {
        return -ENOMEM;
    }
    cmd->name = strdup(name);
    cmd->schema = strdup(schema ? schema : "");
    cmd->fn = fn;
    cmd->opaque = opaque;
    /* Keep registration order (query-commands lists them so). */
    for (tail = &srv->commands; *tail; tail = &(*tail)->next) {
    }
    *tail = cmd;
    return 0;
}

int qmp_server_new(MainLoop *loop, const QmpVersion *version,
                   QmpServer **out)
{
    QmpServer *srv = calloc(1, sizeof(*srv));

    if (!srv) {
        return -ENOMEM;
    }
    srv->loop = loop;
    srv->version = *version;
    srv->retry_fd = -1;
    if (qmp_register(srv, "qmp_capabilities", "enable:a?",
                     cmd_qmp_capabilities, NULL) ||
        qmp_register(srv, "query-commands", NULL, cmd_query_commands,
                     NULL) ||
        qmp_register(srv, "query-version", NULL, cmd_query_version, NULL) ||
        qmp_register(srv, "add-fd", "fdset-id:i?,opaque:s?", cmd_add_fd,
                     NULL) ||
        qmp_register(srv, "remove-fd", "fdset-id:i,fd:i?", cmd_remove_fd,
                     NULL) ||
        qmp_register(srv, "query-fdsets", NULL, cmd_query_fdsets, NULL) ||
        qmp_register(srv, "getfd", "fdname:s", cmd_getfd, NULL) ||
        qmp_register(srv, "closefd", "fdname:s", cmd_closefd, NULL)) {
        qmp_server_free(srv);
        return -ENOMEM;
    }
    *out = srv;
    return 0;
}

void qmp_server_free(QmpServer *srv)
{
    if (!srv) {
        return;
    }
    while (srv->clients) {
        client_free(srv->clients);
    }
    if (srv->retry_fd >= 0) {
        main_loop_del_fd(srv->loop, srv->retry_fd);
        close(srv->retry_fd);
    }
    while (srv->listeners) {
        QmpListener *l = srv->listeners;

        srv->listeners = l->next;
        main_loop_del_fd(srv->loop, l->fd);
        close(l->fd);
        if (l->path) {
            unlink(l->path);
            free(l->path);
        }
        free(l);
    }
    while (srv->named) {
        QmpNamedFd *n = srv->named;

        srv->named = n->next;
        close(n->fd);
        free(n->name);
        free(n);
    }
    while (srv->fdsets) {
        QmpFdset *s = srv->fdsets;

        srv->fdsets = s->next;
        while (s->fds) {
            QmpFd *f = s->fds;

            s->fds = f->next;
            close(f->fd);
            free(f->opaque);
            free(f);
        }
        free(s);
    }
    while (srv->commands) {
        QmpCommand *cmd = srv->commands;

        srv->commands = cmd->next;
        free(cmd->name);
        free(cmd->schema);
        free(cmd);
    }
    free(srv);
}

void qmp_server_set_trace(QmpServer *srv, QmpTraceFn fn, void *opaque)
{
    srv->trace = fn;
    srv->trace_opaque = opaque;
}
