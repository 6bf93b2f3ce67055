/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * replay.c - run a libFuzzer target's function over files (a corpus), with
 * gcc and without libFuzzer: `make check` replays every committed corpus
 * this way, so each input a fuzzer found keeps being tested.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int n = 0;

    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        uint8_t *buf;
        long len;

        if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
            fseek(f, 0, SEEK_SET)) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        buf = malloc(len ? (size_t)len : 1);
        if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)len);
        free(buf);
        n++;
    }
    printf("replay: %d inputs, no crash\n", n);
    return n ? 0 : 1;
}
