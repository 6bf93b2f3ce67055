/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for util/size.h: the one parser behind the command line's
 * sizes (suffixes, a default unit) and the hotplug protocol's numbers
 * (digits only).  What each caller accepts and refuses is pinned here so
 * that a change to the shared rules shows up as a failing case.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/size.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* The command line's flags and the hotplug protocol's. */
#define CMDLINE (XR_SIZE_HEX | XR_SIZE_SUFFIX)
#define PROTOCOL XR_SIZE_HEX

struct ok_case {
    const char *s;
    uint64_t unit;
    unsigned int flags;
    uint64_t want;
};

struct bad_case {
    const char *s;
    unsigned int flags;
    int err;
};

static void expect_ok(const struct ok_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0xdead;

        print_message("'%s'\n", c[i].s);
        assert_int_equal(xr_parse_size(c[i].s, c[i].unit, c[i].flags, &v), 0);
        assert_int_equal(v, c[i].want);
    }
}

static void expect_refused(const struct bad_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0xdead;

        print_message("'%s'\n", c[i].s ? c[i].s : "(null)");
        assert_int_equal(xr_parse_size(c[i].s, 1, c[i].flags, &v), c[i].err);
        /* A refused input leaves the result alone. */
        assert_int_equal(v, 0xdead);
    }
}

static void test_decimal_and_hex_numbers_without_suffix_count_in_unit(void **state)
{
    static const struct ok_case c[] = {
        { "0", 1, PROTOCOL, 0 },
        { "007", 1, PROTOCOL, 7 },
        { "4096", 1, PROTOCOL, 4096 },
        { "0x1000", 1, PROTOCOL, 4096 },
        { "0XfF", 1, PROTOCOL, 255 },
        { "18446744073709551615", 1, PROTOCOL, UINT64_MAX },
        { "0xffffffffffffffff", 1, PROTOCOL, UINT64_MAX },
        { "512", MiB, CMDLINE, 512 * MiB },
        { "0x10", MiB, CMDLINE, 16 * MiB },
    };

    (void)state;
    expect_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_suffixes_are_binary_multiples_in_either_case(void **state)
{
    static const struct ok_case c[] = {
        { "1B", MiB, CMDLINE, 1 },
        { "2k", 1, CMDLINE, 2 * KiB },
        { "3M", 1, CMDLINE, 3 * MiB },
        { "1G", MiB, CMDLINE, GiB },
        { "1t", 1, CMDLINE, 1024 * GiB },
        { "1P", 1, CMDLINE, UINT64_C(1) << 50 },
        { "15E", 1, CMDLINE, UINT64_C(15) << 60 },
        { "0x10M", 1, CMDLINE, 16 * MiB },
    };

    (void)state;
    expect_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_after_0x_b_and_e_are_digits_not_suffixes(void **state)
{
    static const struct ok_case c[] = {
        { "0x1b", 1, CMDLINE, 0x1b },
        { "0x1E", MiB, CMDLINE, 0x1e * MiB },
    };

    (void)state;
    expect_ok(c, sizeof(c) / sizeof(c[0]));
}

static void test_the_protocol_refuses_suffixes_signs_and_blanks(void **state)
{
    static const struct bad_case c[] = {
        { NULL, PROTOCOL, -EINVAL },
        { "", PROTOCOL, -EINVAL },
        { "1K", PROTOCOL, -EINVAL },
        { "1B", PROTOCOL, -EINVAL },
        { "-1", PROTOCOL, -EINVAL },
        { "+1", PROTOCOL, -EINVAL },
        { " 1", PROTOCOL, -EINVAL },
        { "1 ", PROTOCOL, -EINVAL },
        { "0x", PROTOCOL, -EINVAL },
        { "0x0x1", PROTOCOL, -EINVAL },
        { "0xg", PROTOCOL, -EINVAL },
        { "12a", PROTOCOL, -EINVAL },
        { "auto", PROTOCOL, -EINVAL },
    };

    (void)state;
    expect_refused(c, sizeof(c) / sizeof(c[0]));
}

static void test_without_hex_flag_0x_is_not_a_number(void **state)
{
    static const struct bad_case c[] = {
        { "0x10", 0, -EINVAL },
        { "0x10", XR_SIZE_SUFFIX, -EINVAL },
    };

    (void)state;
    expect_refused(c, sizeof(c) / sizeof(c[0]));
}

static void test_the_command_line_refuses_unknown_and_doubled_suffixes(void **state)
{
    static const struct bad_case c[] = {
        { "", CMDLINE, -EINVAL },
        { "K", CMDLINE, -EINVAL },
        { "0xK", CMDLINE, -EINVAL },
        { "1X", CMDLINE, -EINVAL },
        { "1KB", CMDLINE, -EINVAL },
        { "1MM", CMDLINE, -EINVAL },
        { "1.5G", CMDLINE, -EINVAL },
        { "1 G", CMDLINE, -EINVAL },
    };

    (void)state;
    expect_refused(c, sizeof(c) / sizeof(c[0]));
}

static void test_values_beyond_64_bits_are_erange(void **state)
{
    static const struct bad_case c[] = {
        { "18446744073709551616", PROTOCOL, -ERANGE },
        { "0x10000000000000000", PROTOCOL, -ERANGE },
        { "16E", CMDLINE, -ERANGE },
        { "17179869184G", CMDLINE, -ERANGE },
    };
    uint64_t v = 0xdead;

    (void)state;
    expect_refused(c, sizeof(c) / sizeof(c[0]));
    /* Fits in bytes but not once multiplied by the default unit. */
    assert_int_equal(xr_parse_size("17592186044416", MiB, CMDLINE, &v),
                     -ERANGE);
    assert_int_equal(v, 0xdead);
}

static void test_junk_after_too_many_digits_is_einval_not_erange(void **state)
{
    static const struct bad_case c[] = {
        { "99999999999999999999x", PROTOCOL, -EINVAL },
        { "99999999999999999999KB", CMDLINE, -EINVAL },
    };

    (void)state;
    expect_refused(c, sizeof(c) / sizeof(c[0]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decimal_and_hex_numbers_without_suffix_count_in_unit),
        cmocka_unit_test(test_suffixes_are_binary_multiples_in_either_case),
        cmocka_unit_test(test_after_0x_b_and_e_are_digits_not_suffixes),
        cmocka_unit_test(test_the_protocol_refuses_suffixes_signs_and_blanks),
        cmocka_unit_test(test_without_hex_flag_0x_is_not_a_number),
        cmocka_unit_test(test_the_command_line_refuses_unknown_and_doubled_suffixes),
        cmocka_unit_test(test_values_beyond_64_bits_are_erange),
        cmocka_unit_test(test_junk_after_too_many_digits_is_einval_not_erange),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
