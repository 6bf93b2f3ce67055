/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fill.c - give a simulated guest compressible RAM for the engine
 * benchmark's zstd case (tests/bench/engine/run.sh): every frame of
 * [GFN, GFN + COUNT) becomes text-like data, lines that differ in a few
 * characters from frame to frame, as a guest's page cache of logs or
 * source files would be.  Runs as a dom0 tool against the simulator's
 * stand-in libxenforeignmemory (LD_LIBRARY_PATH=build/sim, XENSIM_DIR).
 *
 *   fill DOMID GFN COUNT
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xenforeignmemory.h>

#define PAGE 4096u
#define CHUNK 1024u

static void fill_page(char *p, uint64_t gfn)
{
    size_t off = 0;

    for (unsigned line = 0; off < PAGE; line++) {
        char buf[96];
        int n = snprintf(buf, sizeof(buf),
                         "%08llx:%02u kernel: xen-blkfront: write sector "
                         "%llu done in %u us\n",
                         (unsigned long long)gfn, line,
                         (unsigned long long)(gfn * 64 + line),
                         (unsigned)(gfn * 7 + line) % 997);
        size_t take = (size_t)n < PAGE - off ? (size_t)n : PAGE - off;

        memcpy(p + off, buf, take);
        off += take;
    }
}

int main(int argc, char **argv)
{
    xenforeignmemory_handle *fmem;
    uint32_t dom;
    uint64_t gfn, count;
    xen_pfn_t *arr;
    int *err;

    if (argc != 4) {
        fprintf(stderr, "usage: fill DOMID GFN COUNT\n");
        return 2;
    }
    dom = (uint32_t)strtoul(argv[1], NULL, 0);
    gfn = strtoull(argv[2], NULL, 0);
    count = strtoull(argv[3], NULL, 0);
    fmem = xenforeignmemory_open(NULL, 0);
    arr = calloc(CHUNK, sizeof(*arr));
    err = calloc(CHUNK, sizeof(*err));
    if (!fmem || !arr || !err) {
        perror("fill");
        return 1;
    }
    for (uint64_t done = 0; done < count;) {
        unsigned n = count - done < CHUNK ? (unsigned)(count - done) : CHUNK;
        char *p;

        for (unsigned i = 0; i < n; i++) {
            arr[i] = gfn + done + i;
        }
        p = xenforeignmemory_map(fmem, dom, PROT_READ | PROT_WRITE, n, arr,
                                 err);
        if (!p) {
            perror("fill: xenforeignmemory_map");
            return 1;
        }
        for (unsigned i = 0; i < n; i++) {
            if (!err[i]) {
                fill_page(p + (size_t)i * PAGE, gfn + done + i);
            }
        }
        xenforeignmemory_unmap(fmem, p, n);
        done += n;
    }
    xenforeignmemory_close(fmem);
    free(arr);
    free(err);
    return 0;
}
