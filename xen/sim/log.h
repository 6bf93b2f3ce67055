/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * log.h - the daemon's log: one line per event, with a timestamp, to
 * stderr (which is <state dir>/xensim.log when the daemon runs detached).
 */
#ifndef XENSIM_LOG_H
#define XENSIM_LOG_H

void xsim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* XENSIM_LOG_H */
