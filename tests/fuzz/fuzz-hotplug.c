/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the hot-plug request parser (hp_parse_request), fed
 * what a xenstore writer controls: the slot directory's name and the
 * values of action, size and start.
 *
 * Input: one byte (the number of slots less one), then the name, action,
 * size and start separated by NUL bytes; a missing size or start is an
 * absent node.  Invariants: a refusal has a sentence of printable ASCII
 * only (values are echoed in the error node and the log); an accepted
 * request names a slot that exists, under its one canonical name, and
 * its numbers survive being written back in decimal and in hex.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hotplug/hotplug-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEMDIR "/local/domain/0/device-model/7/memory"

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

static void check_same(uint32_t nr_slots, const char *name,
                       const HotplugRequest *req, const char *fmt)
{
    char size[32], start[32], err[512];
    HotplugRequest again;

    snprintf(size, sizeof(size), fmt, req->size);
    snprintf(start, sizeof(start), fmt, req->gpa);
    if (hp_parse_request(nr_slots, MEMDIR, name, "add", size,
                         req->gpa == HOTPLUG_AUTO ? "auto" : start, &again,
                         err, sizeof(err)) ||
        again.slot != req->slot || !again.add || again.size != req->size ||
        again.gpa != req->gpa) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *field[4] = { NULL, NULL, NULL, NULL };
    uint32_t nr_slots;
    HotplugRequest req;
    char err[512], canon[16];
    size_t nf = 0;
    int ret;

    if (size < 1) {
        return 0;
    }
    nr_slots = (uint32_t)data[0] + 1;
    buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    for (char *p = buf; nf < 4 && p <= buf + size - 1;) {
        field[nf++] = p;
        p += strlen(p) + 1;
    }
    if (nf < 2) {
        field[1] = "add";
    }
    err[0] = '\0';
    ret = hp_parse_request(nr_slots, MEMDIR, field[0], field[1], field[2],
                           field[3], &req, err, sizeof(err));
    if (ret) {
        if (ret != -EINVAL && ret != -ERANGE) {
            abort();
        }
        if (!err[0] || strlen(err) >= sizeof(err) || !printable(err)) {
            abort();
        }
    } else {
        snprintf(canon, sizeof(canon), "%" PRIu32, req.slot);
        if (req.slot >= nr_slots || strcmp(canon, field[0])) {
            abort();
        }
        if (req.add) {
            check_same(nr_slots, field[0], &req, "%" PRIu64);
            check_same(nr_slots, field[0], &req, "0x%" PRIx64);
        } else if (strcmp(field[1], "remove")) {
            abort();
        }
    }
    free(buf);
    return 0;
}
