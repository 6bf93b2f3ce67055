/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * e2e-check.c - the checks the end-to-end tests share (e2e-check.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"
#include "xen/sim/stamp.h"
#include "xen/sim/toolstack.h"

/* The HVM special pages, 0xfeff8000 up to 0xff000000. */
#define SPECIAL_FIRST   0xfeff8ull
#define SPECIAL_END     0xff000ull

void e2e_destroy(struct e2e_host *h, uint32_t d)
{
    char id[16];

    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(h, NULL, 0, "destroy", id, NULL), 0);
}

void e2e_verify_clean(struct e2e_host *h, uint32_t d)
{
    char out[512], id[16];

    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(h, out, sizeof(out), "verify", id, NULL), 0);
    assert_non_null(strstr(out, " 0 corrupt"));
}

uint64_t e2e_mem_compare(const struct e2e_mem *a, const struct e2e_mem *b,
                         uint64_t *special_diff)
{
    uint64_t n = a->pages > b->pages ? a->pages : b->pages, frames = 0;
    uint64_t bad = 0;

    *special_diff = 0;
    for (uint64_t g = 0; g < n; g++) {
        bool x = e2e_mem_has(a, g), y = e2e_mem_has(b, g);

        frames += x;
        if (x == y && (!x || !memcmp(a->mem + g * XSIM_PAGE_SIZE,
                                     b->mem + g * XSIM_PAGE_SIZE,
                                     XSIM_PAGE_SIZE)))
            continue;
        if (g >= SPECIAL_FIRST && g < SPECIAL_END)
            (*special_diff)++;
        if (bad++ < 8)
            fprintf(stderr, "frame %#llx differs%s\n",
                    (unsigned long long)g, x == y ? ""
                    : x ? " (only on the source)" : " (only on the "
                    "destination)");
    }
    assert_int_equal(bad, 0);
    return frames;
}

uint64_t e2e_mem_newest_stamp(const struct e2e_mem *m)
{
    uint64_t newest = 0, gen;

    for (uint64_t g = 0; g < m->pages; g++) {
        if (e2e_mem_has(m, g) &&
            xsim_stamp_check(m->mem + g * XSIM_PAGE_SIZE, g, &gen) == 1 &&
            gen > newest)
            newest = gen;
    }
    return newest;
}

uint64_t e2e_mem_stamps_since(const struct e2e_mem *then,
                              const struct e2e_mem *now, uint64_t newest)
{
    uint64_t n = 0, older = 0, bad = 0, gen;

    for (uint64_t g = 0; g < now->pages; g++) {
        const uint8_t *p = now->mem + g * XSIM_PAGE_SIZE;

        if (!e2e_mem_has(now, g) ||
            (e2e_mem_has(then, g) &&
             !memcmp(p, then->mem + g * XSIM_PAGE_SIZE, XSIM_PAGE_SIZE)))
            continue;
        if (xsim_stamp_check(p, g, &gen) != 1) {
            /* Not a stamp: only the test device may have written it. */
            if (ts_testdma_check(p, g) != 1 && bad++ < 4) {
                const uint64_t *w = (const uint64_t *)p;

                fprintf(stderr, "frame %#llx differs from the source's at "
                        "the switch and is neither a stamp nor the test "
                        "device's (words %#llx %#llx %#llx %#llx)\n",
                        (unsigned long long)g, (unsigned long long)w[0],
                        (unsigned long long)w[1], (unsigned long long)w[2],
                        (unsigned long long)w[3]);
            }
            continue;
        }
        n++;
        if (gen <= newest && older++ < 4)
            fprintf(stderr, "frame %#llx: stamp generation %llu, the "
                    "source's last was %llu\n", (unsigned long long)g,
                    (unsigned long long)gen, (unsigned long long)newest);
    }
    assert_int_equal(older, 0);
    assert_int_equal(bad, 0);
    return n;
}
