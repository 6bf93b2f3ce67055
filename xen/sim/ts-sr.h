/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ts-sr.h - the page stream of the simulator's `xl migrate` path, as
 * libxc's save and restore move pages (tools/libs/guest/xg_sr_save.c,
 * xg_sr_restore.c): the sender writes PAGE_DATA records with writev()
 * straight from its mapping of the source guest, 1024 frames a batch; the
 * receiver, its own thread as libxl's restore helper is its own process,
 * reads each record into a buffer and copies every page into its mapping
 * of the destination guest.  Between them a stream socket, as between
 * libxl's two helpers (ssh, or a local socket).
 */
#ifndef XENSIM_TS_SR_H
#define XENSIM_TS_SR_H

#include <stddef.h>
#include <stdint.h>

/* libxc's MAX_BATCH_SIZE: frames per PAGE_DATA record. */
#define TS_SR_BATCH     1024

struct ts_sr;

/*
 * Connect a sender to a receiver that writes into @dmem, @dpages frames
 * long (a frame the stream names beyond it is an error of the stream).
 * 0, or -errno with a sentence in @err.
 */
int ts_sr_open(struct ts_sr **out, uint8_t *dmem, uint64_t dpages,
               char *err, size_t errlen);

/*
 * One PAGE_DATA record: the @n frames @pfns (n <= TS_SR_BATCH) of @smem.
 * 0, or -errno with a sentence in @err (the receiver's, when it failed).
 */
int ts_sr_send(struct ts_sr *s, const uint8_t *smem, const uint64_t *pfns,
               unsigned n, char *err, size_t errlen);

/*
 * The END record; waits for the receiver to have written every page.
 * *@pages: the pages it wrote.  0, or -errno with a sentence in @err.
 */
int ts_sr_finish(struct ts_sr *s, uint64_t *pages, char *err,
                 size_t errlen);

/* Whatever the state: stop the receiver, free everything (NULL: no-op). */
void ts_sr_close(struct ts_sr *s);

#endif /* XENSIM_TS_SR_H */
