/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: device-state decoding must refuse or accept any byte
 * string without crashing, leaking or reading out of bounds, and whatever
 * it accepts must validate, re-encode to the same bytes (so padding was
 * zero), carry only known block flags and printable-ASCII names.
 *
 * The checksum and the payload length would stop almost every mutation at
 * the door, so the harness fixes both up before decoding: the fuzzer then
 * explores the record parser and the validator.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "migration/devstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    DevState ds;
    char err[256];

    memcpy(buf, data, size);
    if (size >= 28) {
        uint64_t payload = htobe64(size - 28);
        uint32_t crc;

        memcpy(buf + 16, &payload, 8);
        crc = htobe32(crc32(0L, buf, size - 4));
        memcpy(buf + size - 4, &crc, 4);
    }
    if (devstate_decode(buf, size, &ds, err, sizeof(err)) == 0) {
        uint8_t *again;
        size_t len;

        /* What a peer can make us print or carry: docs/devstate.md. */
        for (uint32_t i = 0; i < ds.nblocks; i++) {
            const DevStateBlock *b = &ds.blocks[i];

            if (b->flags & ~DEVSTATE_BLOCK_FLAGS || !b->idstr[0]) {
                abort();
            }
            for (const char *c = b->idstr; *c; c++) {
                if (*c < ' ' || *c > '~') {
                    abort();
                }
            }
        }
        if (devstate_validate(&ds, err, sizeof(err)) ||
            devstate_encode(&ds, &again, &len, err, sizeof(err)) ||
            len != size || memcmp(again, buf, size)) {
            abort();
        }
        free(again);
        devstate_free(&ds);
    }
    free(buf);
    return 0;
}
