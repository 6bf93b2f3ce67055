/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qmp.h - the QMP server libxl talks to.
 *
 * Speaks the QEMU Machine Protocol as libxl 4.17 uses it: a greeting that
 * carries the QEMU interface version xenram implements, capabilities
 * negotiation, commands with an "id" echoed in every reply, error objects
 * of QEMU's classes, events, and file descriptors passed with SCM_RIGHTS
 * for add-fd (named later as /dev/fdset/N).  Several clients may be
 * connected at once (libxl opens two monitors).
 *
 * JSON is parsed and built with jansson.  Malformed JSON, unknown commands
 * and wrongly typed arguments get an error object; the connection stays
 * usable.  Arguments are checked against a small per-command schema before
 * the handler runs, so handlers see only well-typed arguments.
 *
 * Everything runs on the main loop's thread.
 */
#ifndef XENRAM_DM_QMP_H
#define XENRAM_DM_QMP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "xen/dm/loop.h"

/*
 * Replies and events queued for one client that does not read them: past
 * this the client is dropped (its socket closed), so a stuck client
 * cannot grow the device model without bound.
 */
#define QMP_MAX_OUTPUT          (8u << 20)

typedef struct QmpServer QmpServer;
typedef struct QmpClient QmpClient;

/* QEMU's error classes, as libxl matches them. */
#define QMP_ERROR_GENERIC       "GenericError"
#define QMP_ERROR_NOT_FOUND     "CommandNotFound"
#define QMP_ERROR_DEVICE        "DeviceNotFound"

typedef struct QmpError {
    const char *cls;            /* NULL: no error */
    char desc[512];
} QmpError;

/*
 * Set @err (class @cls, printf-style description).  A description longer
 * than desc is cut on a UTF-8 character boundary, and a byte that is not
 * UTF-8 becomes '?', so the reply can always be sent.  Returns NULL.
 */
json_t *qmp_error(QmpError *err, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A command handler.  @args is the (schema-checked) arguments object, never
 * NULL.  Returns the "return" value (a new reference; json_object() for
 * "{}"), or NULL after qmp_error().
 */
typedef json_t *(*QmpCommandFunc)(QmpClient *client, json_t *args,
                                  void *opaque, QmpError *err);

/*
 * Called with every request a client sends (@in true) and every message
 * sent to one (replies, events), as compact JSON: for --log-level=debug.
 * Runs on the main loop; @text is valid during the call only.
 */
typedef void (*QmpTraceFn)(void *opaque, bool in, const char *text);

typedef struct QmpVersion {
    int major, minor, micro;    /* the QEMU interface level implemented */
    const char *package;        /* what this really is, e.g. "xenram 0.1.0" */
} QmpVersion;

/*
 * Create a server on @loop (which must outlive it) that greets with
 * @version (copied; its strings must outlive the server) and answers the
 * built-in commands: qmp_capabilities, query-commands, query-version,
 * add-fd, remove-fd and query-fdsets.  It serves nobody until
 * qmp_server_listen_path() or qmp_server_listen_fd().  0 and *@out, or
 * -ENOMEM.  On the main loop's thread.
 */
int qmp_server_new(MainLoop *loop, const QmpVersion *version,
                   QmpServer **out);

/* Close every client and listener, every fd of every fdset, and free. */
void qmp_server_free(QmpServer *srv);

/*
 * Listen on a unix socket at @path, created with mode 0600 (a stale socket
 * file is replaced).  0 or -errno.
 */
int qmp_server_listen_path(QmpServer *srv, const char *path);

/*
 * Serve an inherited @fd: a listening socket (libxl's dm_restrict mode
 * pre-opens it) or an already connected one.  0 or -errno.
 */
int qmp_server_listen_fd(QmpServer *srv, int fd);

/*
 * Register command @name.  @schema lists the arguments as
 * "name:type[?],..." with type b (bool), i (integer), s (string), o
 * (object) or a (any), "?" marking optional ones; NULL or "" for none.
 * Unknown, missing and wrongly typed arguments are refused before @fn runs.
 * Commands other than qmp_capabilities need negotiation first.  0 or
 * -EEXIST / -EINVAL / -ENOMEM.
 */
int qmp_register(QmpServer *srv, const char *name, const char *schema,
                 QmpCommandFunc fn, void *opaque);

/* Send event @name with @data (stolen; may be NULL) to negotiated clients. */
void qmp_emit_event(QmpServer *srv, const char *name, json_t *data);

/*
 * Open "/dev/fdset/N" (a dup of an fd of fdset N whose access mode fits
 * @flags' O_ACCMODE) or, for any other name, open(2) it.  Returns the new
 * fd (close-on-exec) or -errno (-ENOENT: no such fdset or no fitting fd).
 */
int qmp_fdset_open(QmpServer *srv, const char *name, int flags);

/*
 * Take the fd that `getfd` named @name (for migrate "fd:NAME"): the caller
 * owns it from now on.  The fd, or -ENOENT.
 */
int qmp_take_named_fd(QmpServer *srv, const char *name);

/* Number of connected clients (for tests and statistics). */
int qmp_server_clients(QmpServer *srv);

/* Trace the traffic of every client through @fn (NULL: stop). */
void qmp_server_set_trace(QmpServer *srv, QmpTraceFn fn, void *opaque);

#endif /* XENRAM_DM_QMP_H */
