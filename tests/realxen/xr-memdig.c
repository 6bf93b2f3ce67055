/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * xr-memdig.c - the real-Xen tier's memory checker for `xl migrate`.
 *
 *   xr-memdig qmp DOMID CMD [ARGS]   send one QMP command (stop, cont, or
 *                                    with ARGS a JSON object: migrate ...)
 *                                    to the device model over libxl's
 *                                    socket; its "return" line on stdout
 *   xr-memdig dump DOMID GFN N ...   one line per frame: "gfn hash flag",
 *                                    hash "-" for a frame that does not map;
 *                                    flag T for a page of xenram's test DMA
 *                                    device (magic + its own gfn), else -
 *   xr-memdig fill DOMID GFN N       write a pattern derived from each gfn
 *   xr-memdig verify DOMID GFN N     check that pattern; exit 1 if not
 *   xr-memdig cmp SRC DST MAXT       every frame of DST equals SRC's, except
 *                                    at most MAXT test-DMA pages (flag T)
 *   xr-memdig remove DOMID GFN       take one frame away from the guest, as
 *                                    a balloon driver or a PoD sweep does
 *   xr-memdig hex DOMID GFN          the frame's non-zero 32-byte lines in
 *                                    hex (what a differing frame holds)
 *
 * The frames are read through libxenforeignmemory, as the toolstack does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenforeignmemory.h>

#define PAGE 4096
#define BATCH 1024
#define TESTDEV_MAGIC 0x00414d4454525858ull     /* xen/dm/testdev.c */

static uint64_t hash_page(const uint64_t *p)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (unsigned int i = 0; i < PAGE / 8; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

static uint64_t pattern(uint64_t gfn, unsigned int i)
{
    uint64_t x = (gfn + 1) * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;

    return x ^ (x >> 27) ^ 0x5852524d444947ull;
}

enum { DUMP, FILL, VERIFY };

static int walk(int mode, uint32_t domid, int argc, char **argv)
{
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xen_pfn_t pfns[BATCH];
    int errs[BATCH];
    long bad = 0;

    if (!fm) {
        perror("xenforeignmemory_open");
        return 2;
    }
    for (int a = 0; a + 1 < argc; a += 2) {
        uint64_t gfn = strtoull(argv[a], NULL, 0);
        uint64_t n = strtoull(argv[a + 1], NULL, 0);

        while (n) {
            unsigned int k = n < BATCH ? (unsigned int)n : BATCH;
            uint8_t *m;

            for (unsigned int i = 0; i < k; i++) {
                pfns[i] = gfn + i;
            }
            m = xenforeignmemory_map(fm, domid,
                                     mode == FILL ? PROT_READ | PROT_WRITE
                                                  : PROT_READ,
                                     k, pfns, errs);
            if (!m) {
                fprintf(stderr, "mapping %u frames at gfn 0x%" PRIx64
                        ": %s\n", k, gfn, strerror(errno));
                return 2;
            }
            for (unsigned int i = 0; i < k; i++) {
                uint64_t *p = (uint64_t *)(m + (size_t)i * PAGE);

                if (errs[i]) {
                    if (mode == DUMP) {
                        printf("%" PRIx64 " - -\n", gfn + i);
                    } else {
                        bad++;
                    }
                    continue;
                }
                if (mode == DUMP) {
                    printf("%" PRIx64 " %016" PRIx64 " %c\n", gfn + i,
                           hash_page(p),
                           p[0] == TESTDEV_MAGIC && p[1] == gfn + i ? 'T' : '-');
                } else {
                    for (unsigned int j = 0; j < PAGE / 8; j++) {
                        if (mode == FILL) {
                            p[j] = pattern(gfn + i, j);
                        } else if (p[j] != pattern(gfn + i, j)) {
                            if (!bad) {
                                fprintf(stderr, "first wrong frame: gfn 0x%"
                                        PRIx64 "\n", gfn + i);
                            }
                            bad++;
                            break;
                        }
                    }
                }
            }
            xenforeignmemory_unmap(fm, m, k);
            gfn += k;
            n -= k;
        }
    }
    xenforeignmemory_close(fm);
    if (bad) {
        fprintf(stderr, "%ld frames unmappable or wrong\n", bad);
        return 1;
    }
    return 0;
}

/* Read one reply line holding "return" or "error" (events are skipped). */
static int qmp_reply(FILE *f, char *line, size_t len)
{
    while (fgets(line, (int)len, f)) {
        if (strstr(line, "\"return\"")) {
            return 0;
        }
        if (strstr(line, "\"error\"")) {
            return 1;
        }
    }
    snprintf(line, len, "connection closed");
    return 1;
}

static int qmp(uint32_t domid, const char *cmd, const char *args)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char line[4096];
    FILE *f;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path),
             "/var/run/xen/qmp-libxl-%u", domid);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        fprintf(stderr, "connecting to %s: %s\n", sa.sun_path,
                strerror(errno));
        return 2;
    }
    f = fdopen(fd, "r+");
    if (!fgets(line, sizeof(line), f) || !strstr(line, "QMP")) {
        fprintf(stderr, "no QMP greeting\n");
        return 2;
    }
    fprintf(f, "{\"execute\":\"qmp_capabilities\"}\n");
    fflush(f);
    if (qmp_reply(f, line, sizeof(line))) {
        fprintf(stderr, "qmp_capabilities: %s", line);
        return 2;
    }
    if (args) {
        fprintf(f, "{\"execute\":\"%s\",\"arguments\":%s}\n", cmd, args);
    } else {
        fprintf(f, "{\"execute\":\"%s\"}\n", cmd);
    }
    fflush(f);
    if (qmp_reply(f, line, sizeof(line))) {
        fprintf(stderr, "%s: %s", cmd, line);
        return 1;
    }
    fputs(line, stdout);
    fclose(f);
    return 0;
}

static int cmp(const char *src, const char *dst, long maxt)
{
    FILE *a = fopen(src, "r"), *b = fopen(dst, "r");
    char la[128], lb[128];
    long frames = 0, same = 0, dma = 0, wrong = 0, unmapped = 0;

    if (!a || !b) {
        perror("cmp");
        return 2;
    }
    while (fgets(la, sizeof(la), a)) {
        char ga[32], ha[32], fa[4], gb[32], hb[32], fb[4];

        if (!fgets(lb, sizeof(lb), b) ||
            sscanf(la, "%31s %31s %3s", ga, ha, fa) != 3 ||
            sscanf(lb, "%31s %31s %3s", gb, hb, fb) != 3 ||
            strcmp(ga, gb)) {
            fprintf(stderr, "the dumps do not cover the same frames\n");
            return 2;
        }
        frames++;
        if (!strcmp(ha, "-")) {
            unmapped++;
        }
        if (!strcmp(ha, hb)) {
            same++;
        } else if (fb[0] == 'T' && strcmp(ha, "-")) {
            dma++;          /* rewritten by the destination's test DMA */
        } else {
            if (!wrong) {
                fprintf(stderr, "first differing frame: gfn 0x%s (%s -> %s)\n",
                        ga, ha, hb);
            }
            wrong++;
        }
    }
    printf("%ld frames (%ld unmapped in both), %ld equal, %ld rewritten by "
           "the destination's test DMA, %ld differ\n",
           frames, unmapped, same, dma, wrong);
    return wrong || dma > maxt || !frames ? 1 : 0;
}

/* One frame's contents, its all-zero lines left out. */
static int hex(uint32_t domid, const char *gfn_s)
{
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xen_pfn_t gfn = strtoull(gfn_s, NULL, 0);
    int err = 0, shown = 0;
    const uint8_t *m;

    if (!fm) {
        perror("xenforeignmemory_open");
        return 2;
    }
    m = xenforeignmemory_map(fm, domid, PROT_READ, 1, &gfn, &err);
    if (!m || err) {
        fprintf(stderr, "mapping gfn %#" PRIx64 ": %s\n", (uint64_t)gfn,
                strerror(m ? -err : errno));
        xenforeignmemory_close(fm);
        return 2;
    }
    for (unsigned int off = 0; off < PAGE; off += 32) {
        static const uint8_t zero[32];

        if (!memcmp(m + off, zero, 32)) {
            continue;
        }
        printf("%03x:", off);
        for (unsigned int i = 0; i < 32; i++) {
            printf("%s%02x", i % 8 ? "" : " ", m[off + i]);
        }
        printf("\n");
        shown++;
    }
    printf("gfn %#" PRIx64 ": %d of %d lines not zero\n", (uint64_t)gfn,
           shown, PAGE / 32);
    xenforeignmemory_unmap(fm, (void *)m, 1);
    xenforeignmemory_close(fm);
    return 0;
}

/* XENMEM_decrease_reservation of one frame, from dom0. */
static int remove_frame(uint32_t domid, const char *gfn_s)
{
    xen_pfn_t gfn = strtoull(gfn_s, NULL, 0);
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    int rc;

    if (!xch) {
        perror("xc_interface_open");
        return 1;
    }
    rc = xc_domain_decrease_reservation_exact(xch, domid, 1, 0, &gfn);
    if (rc) {
        fprintf(stderr, "decrease_reservation of gfn %#" PRIx64 ": %s\n",
                (uint64_t)gfn, strerror(errno));
    }
    xc_interface_close(xch);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "remove")) {
        return remove_frame((uint32_t)atoi(argv[2]), argv[3]);
    }
    if (argc >= 4 && !strcmp(argv[1], "qmp")) {
        return qmp((uint32_t)atoi(argv[2]), argv[3], argc >= 5 ? argv[4] : NULL);
    }
    if (argc >= 4 && !strcmp(argv[1], "hex")) {
        return hex((uint32_t)atoi(argv[2]), argv[3]);
    }
    if (argc >= 5 && !strcmp(argv[1], "cmp")) {
        return cmp(argv[2], argv[3], atol(argv[4]));
    }
    if (argc >= 5 && !strcmp(argv[1], "dump")) {
        return walk(DUMP, (uint32_t)atoi(argv[2]), argc - 3, argv + 3);
    }
    if (argc >= 5 && !strcmp(argv[1], "fill")) {
        return walk(FILL, (uint32_t)atoi(argv[2]), argc - 3, argv + 3);
    }
    if (argc >= 5 && !strcmp(argv[1], "verify")) {
        return walk(VERIFY, (uint32_t)atoi(argv[2]), argc - 3, argv + 3);
    }
    fprintf(stderr, "usage: xr-memdig qmp|dump|fill|verify|cmp|remove|hex ...\n");
    return 2;
}
