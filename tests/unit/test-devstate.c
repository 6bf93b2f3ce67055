/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for the device-state format: round trips, and every kind of
 * bad stream (truncated, corrupted, wrong version, inconsistent) refused
 * with a clear message and nothing returned.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include <cmocka.h>

#include "migration/devstate.h"

#define MiB (1024ULL * 1024)

static DevStateRange ram_ranges[] = {
    { .gpa = 0, .size = 240 * MiB, .offset = 0 },
    { .gpa = 4096 * MiB, .size = 16 * MiB, .offset = 240 * MiB },
};
static DevStateRange vram_ranges[] = {
    { .gpa = 0xf0000000, .size = 8 * MiB, .offset = 0 },
};
static DevStateRange dimm_ranges[] = {
    { .gpa = 8192 * MiB, .size = 64 * MiB, .offset = 0 },
};

/* A guest with RAM split around the hole, VRAM and one hot-plugged DIMM. */
static void sample(DevState *ds, DevStateBlock blocks[3])
{
    memset(blocks, 0, 3 * sizeof(*blocks));
    strcpy(blocks[0].idstr, "xen.ram");
    blocks[0].offset = 0;
    blocks[0].used_length = blocks[0].max_length = 256 * MiB;
    blocks[0].hotplug_slot = DEVSTATE_NO_SLOT;
    blocks[0].nranges = 2;
    blocks[0].ranges = ram_ranges;
    strcpy(blocks[1].idstr, "vga.vram");
    blocks[1].offset = 256 * MiB;
    blocks[1].used_length = 8 * MiB;
    blocks[1].max_length = 16 * MiB;
    blocks[1].flags = 1;
    blocks[1].hotplug_slot = DEVSTATE_NO_SLOT;
    blocks[1].nranges = 1;
    blocks[1].ranges = vram_ranges;
    strcpy(blocks[2].idstr, "dimm0");
    blocks[2].offset = 274 * MiB;
    blocks[2].used_length = blocks[2].max_length = 64 * MiB;
    blocks[2].flags = 2;
    blocks[2].hotplug_slot = 0;
    blocks[2].nranges = 1;
    blocks[2].ranges = dimm_ranges;
    *ds = (DevState) { .global_dirty_log = true, .vram_tracking = true,
                       .vram_first_pfn = 0xf0000, .vram_npages = 2048,
                       .nblocks = 3, .blocks = blocks };
}

static void encode_sample(uint8_t **buf, size_t *len)
{
    DevStateBlock blocks[3];
    DevState ds;
    char err[256];

    sample(&ds, blocks);
    assert_int_equal(devstate_encode(&ds, buf, len, err, sizeof(err)), 0);
}

static void test_round_trip_keeps_everything(void **state)
{
    DevStateBlock blocks[3];
    DevState in, out;
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    sample(&in, blocks);
    assert_int_equal(devstate_encode(&in, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(devstate_decode(buf, len, &out, err, sizeof(err)), 0);
    assert_true(out.global_dirty_log && out.vram_tracking);
    assert_int_equal(out.vram_first_pfn, 0xf0000);
    assert_int_equal(out.vram_npages, 2048);
    assert_int_equal(out.nblocks, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(out.blocks[i].idstr, blocks[i].idstr);
        assert_int_equal(out.blocks[i].offset, blocks[i].offset);
        assert_int_equal(out.blocks[i].used_length, blocks[i].used_length);
        assert_int_equal(out.blocks[i].max_length, blocks[i].max_length);
        assert_int_equal(out.blocks[i].flags, blocks[i].flags);
        assert_int_equal(out.blocks[i].hotplug_slot, blocks[i].hotplug_slot);
        assert_int_equal(out.blocks[i].nranges, blocks[i].nranges);
        assert_memory_equal(out.blocks[i].ranges, blocks[i].ranges,
                            blocks[i].nranges * sizeof(DevStateRange));
    }
    devstate_free(&out);
    free(buf);
}

static void test_round_trip_through_a_pipe(void **state)
{
    DevStateBlock blocks[3];
    DevState in, out;
    char err[256];
    int p[2];

    (void)state;
    sample(&in, blocks);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(devstate_write(p[1], &in, err, sizeof(err)), 0);
    close(p[1]);
    assert_int_equal(devstate_read(p[0], &out, err, sizeof(err)), 0);
    close(p[0]);
    assert_int_equal(out.nblocks, 3);
    assert_string_equal(out.blocks[2].idstr, "dimm0");
    devstate_free(&out);
}

static void test_every_truncation_is_refused(void **state)
{
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    encode_sample(&buf, &len);
    for (size_t cut = 0; cut < len; cut++) {
        DevState out = { .nblocks = 12345 };
        int ret = devstate_decode(buf, cut, &out, err, sizeof(err));

        assert_true(ret == -ENODATA || ret == -EINVAL);
        assert_true(strlen(err) > 0);
        assert_int_equal(out.nblocks, 12345);   /* untouched */
    }
    free(buf);
}

static void test_truncated_stream_says_truncated(void **state)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    DevState out;

    (void)state;
    encode_sample(&buf, &len);
    assert_int_equal(devstate_decode(buf, len - 10, &out, err, sizeof(err)),
                     -ENODATA);
    assert_non_null(strstr(err, "truncated"));
    free(buf);
}

static void test_every_single_bit_flip_is_detected(void **state)
{
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    encode_sample(&buf, &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            DevState out;

            buf[i] ^= 1 << bit;
            assert_true(devstate_decode(buf, len, &out, err,
                                        sizeof(err)) < 0);
            buf[i] ^= 1 << bit;
        }
    }
    free(buf);
}

static void test_corruption_in_the_body_is_a_checksum_error(void **state)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    DevState out;

    (void)state;
    encode_sample(&buf, &len);
    buf[len / 2] ^= 0x40;
    assert_int_equal(devstate_decode(buf, len, &out, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "checksum"));
    free(buf);
}

static void test_other_version_is_eproto_with_both_versions_named(
    void **state)
{
    uint8_t *buf;
    size_t len;
    char err[256];
    DevState out;

    (void)state;
    encode_sample(&buf, &len);
    buf[11] = 2;                    /* version, big-endian low byte */
    assert_int_equal(devstate_decode(buf, len, &out, err, sizeof(err)),
                     -EPROTO);
    assert_non_null(strstr(err, "version 2"));
    assert_non_null(strstr(err, "version 1"));
    free(buf);
}

static void test_foreign_data_is_not_device_state(void **state)
{
    const char junk[] = "QEVM\0\0\0\3 this is a QEMU stream, not ours...";
    char err[256];
    DevState out;

    (void)state;
    assert_int_equal(devstate_decode((const uint8_t *)junk, sizeof(junk),
                                     &out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "magic"));
}

static void test_trailing_bytes_are_refused(void **state)
{
    uint8_t *buf, *longer;
    size_t len;
    char err[256];
    DevState out;

    (void)state;
    encode_sample(&buf, &len);
    longer = calloc(1, len + 3);
    memcpy(longer, buf, len);
    assert_int_equal(devstate_decode(longer, len + 3, &out, err,
                                     sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "trailing"));
    free(longer);
    free(buf);
}

/* Each inconsistency is refused by validation (on encode and decode). */
static void expect_invalid(DevState *ds, const char *needle)
{
    uint8_t *buf = NULL;
    size_t len;
    char err[256] = "";

    assert_int_equal(devstate_validate(ds, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, needle));
    assert_int_equal(devstate_encode(ds, &buf, &len, err, sizeof(err)),
                     -EINVAL);
    assert_null(buf);
}

static void test_overlapping_blocks_are_refused(void **state)
{
    DevStateBlock blocks[3];
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    blocks[1].offset = 200 * MiB;
    expect_invalid(&ds, "overlap in ram_addr");
}

static void test_duplicate_names_are_refused(void **state)
{
    DevStateBlock blocks[3];
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    strcpy(blocks[2].idstr, "vga.vram");
    expect_invalid(&ds, "appears twice");
}

static void test_overlapping_guest_mappings_are_refused(void **state)
{
    DevStateBlock blocks[3];
    DevStateRange clash = { .gpa = 0x100000, .size = 64 * MiB, .offset = 0 };
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    blocks[2].ranges = &clash;
    expect_invalid(&ds, "overlap at 0x100000");
}

static void test_mapping_outside_its_block_is_refused(void **state)
{
    DevStateBlock blocks[3];
    DevStateRange big = { .gpa = 0xf0000000, .size = 16 * MiB, .offset = 0 };
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    blocks[1].ranges = &big;        /* used_length is 8 MiB */
    expect_invalid(&ds, "outside the block");
}

static void test_misaligned_and_inconsistent_sizes_are_refused(void **state)
{
    DevStateBlock blocks[3];
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    blocks[0].used_length = 256 * MiB + 1;
    expect_invalid(&ds, "not page-aligned");
    sample(&ds, blocks);
    blocks[1].used_length = 32 * MiB;    /* above max 16 MiB */
    expect_invalid(&ds, "inconsistent");
}

static void test_shared_hotplug_slot_is_refused(void **state)
{
    DevStateBlock blocks[3];
    DevState ds;

    (void)state;
    sample(&ds, blocks);
    blocks[1].hotplug_slot = 0;
    expect_invalid(&ds, "slot 0");
}

/*
 * The sample's stream with @n bytes at @off replaced by @bytes and the
 * checksum made right again: what a peer that means it would send.
 */
#define DIRTYLOG_PAD_OFF   (24 + 8 + 2)     /* header, record header, g, v */
#define BLOCK0_NAME_OFF    (24 + 8 + 24 + 8 + 2)
#define BLOCK0_FLAGS_OFF   (BLOCK0_NAME_OFF + 7 + 3 * 8)

static int decode_patched(size_t off, const void *bytes, size_t n,
                          char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    uint32_t crc;
    DevState out;
    int ret;

    encode_sample(&buf, &len);
    assert_true(off + n <= len - 4);
    memcpy(buf + off, bytes, n);
    crc = htobe32(crc32(0L, buf, len - 4));
    memcpy(buf + len - 4, &crc, 4);
    ret = devstate_decode(buf, len, &out, err, errlen);
    if (ret == 0) {
        devstate_free(&out);
    }
    free(buf);
    return ret;
}

static void test_sample_offsets_are_where_the_patches_go(void **state)
{
    char err[256];

    (void)state;
    /* Patching in what is already there changes nothing. */
    assert_int_equal(decode_patched(BLOCK0_NAME_OFF, "xen.ram", 7, err,
                                    sizeof(err)), 0);
    assert_int_equal(decode_patched(BLOCK0_FLAGS_OFF, "\0\0\0\0", 4, err,
                                    sizeof(err)), 0);
    assert_int_equal(decode_patched(DIRTYLOG_PAD_OFF, "\0\0\0\0\0\0", 6, err,
                                    sizeof(err)), 0);
}

static void test_non_zero_dirtylog_padding_is_refused(void **state)
{
    char err[256] = "";

    (void)state;
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(decode_patched(DIRTYLOG_PAD_OFF + i, "\x01", 1, err,
                                        sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "non-zero padding"));
    }
}

static void test_unknown_block_flags_are_refused(void **state)
{
    DevStateBlock blocks[3];
    DevState ds;
    char err[256] = "";

    (void)state;
    assert_int_equal(decode_patched(BLOCK0_FLAGS_OFF, "\x80\0\0\0", 4, err,
                                    sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'xen.ram' has unknown flags 0x80000000"));
    assert_int_equal(decode_patched(BLOCK0_FLAGS_OFF, "\0\0\0\x20", 4, err,
                                    sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown flags 0x20"));
    sample(&ds, blocks);
    blocks[1].flags = DEVSTATE_BLOCK_FLAGS + 1;
    expect_invalid(&ds, "unknown flags");
}

static void test_names_with_control_or_non_ascii_bytes_are_refused(
    void **state)
{
    static const char *const bad[] = {
        "xen\x1b[2J",       /* an escape sequence for the log's terminal */
        "xen.\xc3\xa9m",    /* valid UTF-8, still not ASCII */
        "xen.\xff\xfem",    /* invalid UTF-8 */
        "xen\tram", "xen\x7fram", "xen\nram",
    };
    char err[256] = "";

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(strlen(bad[i]), 7);
        assert_int_equal(decode_patched(BLOCK0_NAME_OFF, bad[i], 7, err,
                                        sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "must be printable ASCII"));
        /* The message itself carries no raw control byte. */
        for (const char *c = err; *c; c++) {
            assert_true(*c >= 0x20 && *c < 0x7f);
        }
    }
    assert_non_null(strstr(err, "xen\\x0aram"));
    assert_true(devstate_name_valid("0000:00:02.0/vga.vram", 21));
    assert_true(devstate_name_valid("xen.hotplug.255", 15));
    assert_true(devstate_name_valid("a name", 6));  /* as stream.c allows */
    assert_false(devstate_name_valid("", 0));
}

/* 1024 blocks of 64 mappings each, none overlapping: valid, the most. */
static void test_largest_state_validates_in_well_under_a_second(void **state)
{
    DevStateBlock *blocks = calloc(DEVSTATE_MAX_BLOCKS, sizeof(*blocks));
    DevStateRange *ranges = calloc((size_t)DEVSTATE_MAX_BLOCKS *
                                   DEVSTATE_MAX_RANGES, sizeof(*ranges));
    DevState ds = { .nblocks = DEVSTATE_MAX_BLOCKS, .blocks = blocks };
    struct timespec t0, t1;
    char err[256];
    double cpu;

    (void)state;
    assert_non_null(blocks);
    assert_non_null(ranges);
    for (uint32_t i = 0; i < DEVSTATE_MAX_BLOCKS; i++) {
        DevStateBlock *b = &blocks[i];

        snprintf(b->idstr, sizeof(b->idstr), "block%u", i);
        b->offset = (uint64_t)i * DEVSTATE_MAX_RANGES * 4096;
        b->used_length = b->max_length = DEVSTATE_MAX_RANGES * 4096;
        b->hotplug_slot = DEVSTATE_NO_SLOT;
        b->nranges = DEVSTATE_MAX_RANGES;
        b->ranges = &ranges[(size_t)i * DEVSTATE_MAX_RANGES];
        for (uint32_t r = 0; r < DEVSTATE_MAX_RANGES; r++) {
            /* Interleaved: block i's range r at page r * 1024 + i. */
            b->ranges[r] = (DevStateRange) {
                .gpa = ((uint64_t)r * DEVSTATE_MAX_BLOCKS + i) * 4096,
                .size = 4096, .offset = (uint64_t)r * 4096 };
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    assert_int_equal(devstate_validate(&ds, err, sizeof(err)), 0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    cpu = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* Pairwise comparison took ~2 s here; sorting takes milliseconds. */
    assert_true(cpu < 1.0);
    /* And the sort still finds a clash between the last two. */
    blocks[DEVSTATE_MAX_BLOCKS - 1].ranges[DEVSTATE_MAX_RANGES - 1].gpa =
        blocks[DEVSTATE_MAX_BLOCKS - 2].ranges[DEVSTATE_MAX_RANGES - 1].gpa;
    assert_int_equal(devstate_validate(&ds, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'block1022' and 'block1023' overlap"));
    free(ranges);
    free(blocks);
}

static void test_empty_state_round_trips(void **state)
{
    DevState in = { 0 }, out;
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    assert_int_equal(devstate_encode(&in, &buf, &len, err, sizeof(err)), 0);
    assert_int_equal(devstate_decode(buf, len, &out, err, sizeof(err)), 0);
    assert_int_equal(out.nblocks, 0);
    assert_false(out.global_dirty_log);
    devstate_free(&out);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_everything),
        cmocka_unit_test(test_round_trip_through_a_pipe),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_truncated_stream_says_truncated),
        cmocka_unit_test(test_every_single_bit_flip_is_detected),
        cmocka_unit_test(test_corruption_in_the_body_is_a_checksum_error),
        cmocka_unit_test(test_other_version_is_eproto_with_both_versions_named),
        cmocka_unit_test(test_foreign_data_is_not_device_state),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_overlapping_blocks_are_refused),
        cmocka_unit_test(test_duplicate_names_are_refused),
        cmocka_unit_test(test_overlapping_guest_mappings_are_refused),
        cmocka_unit_test(test_mapping_outside_its_block_is_refused),
        cmocka_unit_test(test_misaligned_and_inconsistent_sizes_are_refused),
        cmocka_unit_test(test_shared_hotplug_slot_is_refused),
        cmocka_unit_test(test_empty_state_round_trips),
        cmocka_unit_test(test_sample_offsets_are_where_the_patches_go),
        cmocka_unit_test(test_non_zero_dirtylog_padding_is_refused),
        cmocka_unit_test(test_unknown_block_flags_are_refused),
        cmocka_unit_test(test_names_with_control_or_non_ascii_bytes_are_refused),
        cmocka_unit_test(test_largest_state_validates_in_well_under_a_second),
    };

    return cmocka_run_group_tests_name("devstate", tests, NULL, NULL);
}
