/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-sim-srstream.c - the page stream of the simulator's `xl migrate`
 * path (xen/sim/ts-sr.c, libxc's PAGE_DATA and END records): what is sent
 * arrives, page for page and frame for frame, in batches of any size; a
 * frame beyond the destination fails the stream with a sentence, and a
 * stream closed early stops its receiver.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "xen/sim/proto.h"
#include "xen/sim/ts-sr.h"

#define FRAMES  3000    /* more than two batches */

static uint8_t *pattern(uint64_t frames, unsigned seed)
{
    uint8_t *m = malloc(frames * XSIM_PAGE_SIZE);

    assert_non_null(m);
    for (uint64_t i = 0; i < frames * XSIM_PAGE_SIZE / 8; i++)
        ((uint64_t *)m)[i] = i * 0x9e3779b97f4a7c15ull + seed;
    return m;
}

/* Every other frame, in full batches and a short one, then END. */
static void test_pages_arrive(void **state)
{
    uint8_t *src = pattern(FRAMES, 1), *dst = calloc(FRAMES, XSIM_PAGE_SIZE);
    uint64_t pfns[TS_SR_BATCH], got = 0, sent = 0;
    struct ts_sr *s;
    unsigned n = 0;
    char err[512];

    (void)state;
    assert_non_null(dst);
    assert_int_equal(ts_sr_open(&s, dst, FRAMES, err, sizeof(err)), 0);
    for (uint64_t g = 0; g < FRAMES; g += 2) {
        pfns[n++] = g;
        if (n == TS_SR_BATCH || g + 2 >= FRAMES) {
            assert_int_equal(ts_sr_send(s, src, pfns, n, err, sizeof(err)),
                             0);
            sent += n;
            n = 0;
        }
    }
    assert_int_equal(ts_sr_finish(s, &got, err, sizeof(err)), 0);
    assert_int_equal(got, sent);
    for (uint64_t g = 0; g < FRAMES; g++) {
        const uint8_t *d = dst + g * XSIM_PAGE_SIZE;

        if (g % 2 == 0)
            assert_memory_equal(d, src + g * XSIM_PAGE_SIZE, XSIM_PAGE_SIZE);
        else
            assert_true(d[0] == 0 && !memcmp(d, d + 1, XSIM_PAGE_SIZE - 1));
    }
    ts_sr_close(s);
    free(src);
    free(dst);
}

/* A frame the destination does not have: the receiver stops, the sender
 * is told why (at the latest at END), and nothing past it is written. */
static void test_frame_beyond(void **state)
{
    uint8_t *src = pattern(16, 2), *dst = calloc(8, XSIM_PAGE_SIZE);
    uint64_t pfns[2] = { 3, 12 }, got = 0;
    struct ts_sr *s;
    char err[512] = "";
    int rc;

    (void)state;
    assert_int_equal(ts_sr_open(&s, dst, 8, err, sizeof(err)), 0);
    rc = ts_sr_send(s, src, pfns, 2, err, sizeof(err));
    if (rc == 0)
        rc = ts_sr_finish(s, &got, err, sizeof(err));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "frame 0xc is beyond the destination's 8 "
                                "frames"));
    /* Frame 3 came first, in the same record: the record was applied up
     * to the bad entry (libxc's receiver then fails the whole restore). */
    assert_memory_equal(dst + 3 * XSIM_PAGE_SIZE, src + 3 * XSIM_PAGE_SIZE,
                        XSIM_PAGE_SIZE);
    ts_sr_close(s);
    free(src);
    free(dst);
}

/* A batch larger than a record may hold is refused before anything is
 * written; closing a stream with no END stops the receiver. */
static void test_refusals_and_close(void **state)
{
    uint8_t *dst = calloc(4, XSIM_PAGE_SIZE);
    uint64_t pfns[1] = { 0 };
    struct ts_sr *s;
    char err[512];

    (void)state;
    assert_int_equal(ts_sr_open(&s, dst, 4, err, sizeof(err)), 0);
    assert_int_equal(ts_sr_send(s, dst, pfns, 0, err, sizeof(err)), -EINVAL);
    assert_int_equal(ts_sr_send(s, dst, pfns, TS_SR_BATCH + 1, err,
                                sizeof(err)), -EINVAL);
    ts_sr_close(s);     /* joins the receiver: it must have seen EOF */
    ts_sr_close(NULL);
    free(dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_arrive),
        cmocka_unit_test(test_frame_beyond),
        cmocka_unit_test(test_refusals_and_close),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
