/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmp.c - QMP server: sockets, framing, negotiation, dispatch, fdsets.
 *
 * Framing: QMP is a stream of JSON objects with no delimiter of its own
 * (libxl ends each with "\r\n").  jansson's JSON_DISABLE_EOF_CHECK parses
 * the first value of a buffer and tells how many bytes it used, and its
 * "premature end of input" error tells an incomplete object from a broken
 * one.  After a syntax error the input is skipped to the next newline, so
 * a client that sent garbage can go on.
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
#include <sys/un.h>
#include <unistd.h>

#include "util/util.h"
#include "xen/dm/qmp.h"

#define QMP_MAX_INPUT   (1 << 20)   /* bytes of one unfinished command */
#define QMP_MAX_FDS     16          /* fds queued on one connection */

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
};

json_t *qmp_error(QmpError *err, const char *cls, const char *fmt, ...)
{
    va_list ap;

    err->cls = cls;
    va_start(ap, fmt);
    vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
    va_end(ap);
    return NULL;
}

/* ---- output ------------------------------------------------------------ */

static void client_free(QmpClient *c);

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

/* Queue @msg (consumed) followed by "\r\n" and try to send it. */
static void client_send(QmpClient *c, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t len;
    char *out;

    json_decref(msg);
    if (!text) {
        return;
    }
    len = strlen(text);
    out = realloc(c->out, c->outlen + len + 2);
    if (out) {
        c->out = out;
        memcpy(c->out + c->outlen, text, len);
        memcpy(c->out + c->outlen + len, "\r\n", 2);
        c->outlen += len + 2;
        client_flush(c);
    }
    free(text);
}

static void client_send_error(QmpClient *c, json_t *id, const QmpError *err)
{
    json_t *msg = json_pack("{s:{s:s,s:s}}", "error", "class", err->cls,
                            "desc", err->desc);

    if (id) {
        json_object_set(msg, "id", id);
    }
    client_send(c, msg);
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
    if (id) {
        json_object_set(msg, "id", id);
    }
    client_send(c, msg);
}

/* Parse and run every complete command in the input buffer. */
static void client_process(QmpClient *c)
{
    size_t pos = 0;

    while (pos < c->inlen) {
        json_error_t jerr;
        json_t *req;

        /* Skip white space so that "\r\n" after a command is not input. */
        while (pos < c->inlen && strchr(" \t\r\n", c->in[pos])) {
            pos++;
        }
        if (pos == c->inlen) {
            break;
        }
        req = json_loadb(c->in + pos, c->inlen - pos,
                         JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
        if (!req) {
            QmpError err;
            char *nl;

            if (json_error_code(&jerr) == json_error_premature_end_of_input) {
                break;          /* wait for the rest */
            }
            qmp_error(&err, QMP_ERROR_GENERIC, "JSON parse error, %s",
                      jerr.text);
            client_send_error(c, NULL, &err);
            nl = memchr(c->in + pos, '\n', c->inlen - pos);
            pos = nl ? (size_t)(nl - c->in) + 1 : c->inlen;
            continue;
        }
        pos += jerr.position;
        client_dispatch(c, req);
        json_decref(req);
    }
    memmove(c->in, c->in + pos, c->inlen - pos);
    c->inlen -= pos;
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
        client_free(c);
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
    if (c->inlen + n > QMP_MAX_INPUT) {
        QmpError err;

        qmp_error(&err, QMP_ERROR_GENERIC,
                  "QMP input exceeds %d bytes without a complete command; "
                  "input discarded", QMP_MAX_INPUT);
        client_send_error(c, NULL, &err);
        c->inlen = 0;
        return;
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
    client_process(c);
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

static void listener_accept(MainLoop *loop, int fd, uint32_t events,
                            void *opaque)
{
    QmpServer *srv = opaque;
    int cfd;

    (void)loop;
    (void)events;
    cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd >= 0) {
        client_new(srv, cfd);
    }
}

static int listener_add(QmpServer *srv, int fd, const char *path)
{
    QmpListener *l = calloc(1, sizeof(*l));
    int ret;

    if (!l) {
        return -ENOMEM;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ret = main_loop_add_fd(srv->loop, fd, EPOLLIN, listener_accept, srv);
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
        n++;
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
