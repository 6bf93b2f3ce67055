/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-e2e-migrate.c - `xensim migrate` plays `xl migrate` (libxl and
 * libxc) between two simulated hosts, with xenram as the device model:
 *
 *   - live migration while the guest's vCPUs and xenram's test DMA device
 *     write guest memory throughout: the destination's memory is the
 *     source's at suspend, byte for byte; the destination runs, the source
 *     is gone;
 *   - the same with xenram told not to report its writes to Xen
 *     (--no-modified-memory): the comparison must fail, which proves that
 *     the first test can fail;
 *   - the destination's device model fails (refuses to start; dies before
 *     cont): the migration fails and the source is resumed, nothing lost.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/integration/e2e/e2e.h"
#include "tests/integration/e2e/e2e-check.h"
#include "xen/sim/proto.h"
#include "xen/sim/toolstack.h"

static struct e2e_host src, dst;
static bool no_xenstore;

static int setup(void **state)
{
    (void)state;
    return e2e_hosts_setup(&src, &dst, &no_xenstore);
}

#define NEED_XENSTORE() E2E_NEED_XENSTORE(no_xenstore, "xenstored")

/* A 64 MiB guest (8 MiB of it VRAM) writing random pages at 8 MiB/s,
 * whose device model DMA-writes @dma pages/s; @extra: one more DM arg. */
static uint32_t guest(const char *name, const char *workload,
                      const char *dma, const char *extra)
{
    char out[256], dmarg[64];
    int rc;

    if (dma) {
        snprintf(dmarg, sizeof(dmarg), "--test-dma=%s", dma);
        rc = extra
            ? e2e_xensim(&src, out, sizeof(out), "create", "--mem", "64",
                         "--vram", "8", "--name", name, "--workload",
                         workload, "--dm", e2e_xenram(), "--dm-arg", dmarg,
                         "--dm-arg", extra, NULL)
            : e2e_xensim(&src, out, sizeof(out), "create", "--mem", "64",
                         "--vram", "8", "--name", name, "--workload",
                         workload, "--dm", e2e_xenram(), "--dm-arg", dmarg,
                         NULL);
    } else {
        rc = e2e_xensim(&src, out, sizeof(out), "create", "--mem", "64",
                        "--vram", "8", "--name", name, "--workload",
                        workload, "--dm", e2e_xenram(), NULL);
    }
    assert_int_equal(rc, 0);
    return (uint32_t)strtoul(out, NULL, 10);
}

/* The two digests --checksum-at-suspend wrote. */
static void read_sums(const char *path, char s[33], char d[33],
                      unsigned long long *sp, unsigned long long *dp)
{
    char line[128];
    FILE *f = fopen(path, "r");

    s[0] = d[0] = 0;
    *sp = *dp = 0;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "source ", 7))
            sscanf(line + 7, "%32s %llu", s, sp);
        else if (!strncmp(line, "destination ", 12))
            sscanf(line + 12, "%32s %llu", d, dp);
    }
    fclose(f);
}

/* Both writers busy right before the migration starts. */
static void writers_busy(uint32_t d)
{
    assert_true(e2e_wait_dma(&src, d, 200));
    assert_true(e2e_wait_vcpu_writes(&src, d, 200));
}

/* Migrate; the exit status, stdout in @out. */
static int migrate(uint32_t d, const char *sums, char *out, size_t outlen,
                   const char *extra)
{
    char id[16];

    snprintf(id, sizeof(id), "%u", d);
    if (extra)
        return e2e_xensim(&src, out, outlen, "migrate", id, "--to", dst.dir,
                          "--no-progress", "--checksum-at-suspend", sums,
                          extra, NULL);
    return e2e_xensim(&src, out, outlen, "migrate", id, "--to", dst.dir,
                      "--no-progress", "--checksum-at-suspend", sums, NULL);
}

/* (b) Live migration with the guest and the device model writing. */
static void test_live_migration(void **state)
{
    char sums[200], s[33], d2[33], out[4096], status[32], path[160];
    unsigned long long sp, dp;
    struct xsim_dominfo info;
    uint32_t d, nd;
    pid_t spid, dpid;
    char *v;

    (void)state;
    NEED_XENSTORE();
    d = guest("mig1", "random:8", "2000", NULL);
    spid = e2e_dm_pid(&src, d);
    /* A device model's physmap keys travel with the domain (libxl's
     * emulator xenstore data). */
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/physmap/"
             "f0000000/name", d);
    assert_true(e2e_xs_write(&src, path, "vga.vram"));
    writers_busy(d);
    snprintf(sums, sizeof(sums), "%s/sums-mig1", src.dir);
    assert_int_equal(migrate(d, sums, out, sizeof(out), NULL), 0);
    assert_non_null(strstr(out, "identical"));

    /* Byte for byte: the destination before it ran == the source at
     * suspend (domain paused, device model stopped). */
    read_sums(sums, s, d2, &sp, &dp);
    assert_int_equal(strlen(s), 32);
    assert_string_equal(s, d2);
    assert_int_equal(sp, dp);
    /* 56 MiB of RAM (less the VGA hole), 8 special pages, 8 MiB of VRAM */
    assert_int_equal(sp, (56ull << 8) - 32 + 8 + (8ull << 8));

    /* The source is gone: domain, device model, record. */
    assert_int_equal(e2e_domid(&src, "mig1"), 0);
    assert_true(e2e_wait_exit(spid, 5000));
    /* The destination runs: domain unpaused, device model running. */
    nd = e2e_domid(&dst, "mig1");
    assert_true(nd > 0);
    assert_true(e2e_dominfo(&dst, nd, &info));
    assert_int_equal(info.pause_count, 0);
    assert_string_equal(info.workload, "random:8");
    dpid = e2e_dm_pid(&dst, nd);
    assert_true(e2e_alive(dpid));
    e2e_qmp_status(&dst, nd, status, sizeof(status));
    assert_string_equal(status, "running");
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/state",
             nd);
    v = e2e_xs_read(&dst, path);
    assert_non_null(v);
    assert_string_equal(v, "running");
    free(v);
    snprintf(path, sizeof(path), "/local/domain/0/device-model/%u/physmap/"
             "f0000000/name", nd);
    v = e2e_xs_read(&dst, path);
    assert_non_null(v);
    assert_string_equal(v, "vga.vram");
    free(v);
    /* ... and goes on writing, and every page is whole. */
    assert_true(e2e_wait_vcpu_writes(&dst, nd, 100));
    assert_true(e2e_wait_dma(&dst, nd, 100));
    {
        char id[16];

        snprintf(id, sizeof(id), "%u", nd);
        assert_int_equal(e2e_xensim(&dst, out, sizeof(out), "verify", id,
                                    NULL), 0);
        assert_non_null(strstr(out, " 0 corrupt"));
    }
    e2e_destroy(&dst, nd);
    assert_true(e2e_wait_exit(dpid, 5000));
}

/* (c) The same, but xenram does not report its writes to Xen: pages it
 * wrote during the migration are lost, and the comparison shows it. */
static void test_lost_dm_writes_are_detected(void **state)
{
    char sums[200], s[33], d2[33], out[4096];
    unsigned long long sp, dp;
    uint32_t d, nd;

    (void)state;
    NEED_XENSTORE();
    d = guest("mig2", "random:8", "2000", "--no-modified-memory");
    writers_busy(d);
    snprintf(sums, sizeof(sums), "%s/sums-mig2", src.dir);
    assert_int_equal(migrate(d, sums, out, sizeof(out), NULL), 0);
    read_sums(sums, s, d2, &sp, &dp);
    assert_int_equal(strlen(s), 32);
    assert_int_equal(strlen(d2), 32);
    assert_int_equal(sp, dp);
    /* The test of (b) would fail here: */
    assert_string_not_equal(s, d2);
    assert_non_null(strstr(out, "DIFFERENT"));
    nd = e2e_domid(&dst, "mig2");
    assert_true(nd > 0);
    e2e_destroy(&dst, nd);
}

/* What must hold of the source after a failed migration. */
static void source_resumed(uint32_t d, pid_t spid, const char *name)
{
    struct xsim_dominfo info;
    char status[32], out[512], id[16];

    assert_true(e2e_dominfo(&src, d, &info));
    assert_int_equal(info.pause_count, 0);
    assert_false(info.flags & XSIM_DOMF_LOGDIRTY);
    assert_int_equal(e2e_dm_pid(&src, d), spid);
    assert_true(e2e_alive(spid));
    e2e_qmp_status(&src, d, status, sizeof(status));
    assert_string_equal(status, "running");
    {
        json_t *r = e2e_qmp(&src, d, "x-xenram-query-memory", NULL);

        assert_non_null(r);
        assert_false(json_is_true(json_object_get(r, "global-dirty-log")) ||
                     json_is_true(json_object_get(json_object_get(r, "dirty"),
                                                  "global-dirty-log")));
        json_decref(r);
    }
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, out, sizeof(out), "verify", id, NULL),
                     0);
    assert_non_null(strstr(out, " 0 corrupt"));
    /* Nothing of it on the destination. */
    assert_int_equal(e2e_domid(&dst, name), 0);
}

/* (d) The destination's device model refuses to start. */
static void test_dest_dm_fails_to_start(void **state)
{
    char sums[200], out[4096];
    uint32_t d;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    d = guest("mig3", "random:8", "2000", NULL);
    spid = e2e_dm_pid(&src, d);
    writers_busy(d);
    snprintf(sums, sizeof(sums), "%s/sums-mig3", src.dir);
    assert_int_not_equal(migrate(d, sums, out, sizeof(out),
                                 "--dest-dm-arg=--no-such-option"), 0);
    source_resumed(d, spid, "mig3");
    /* The guest and its device model go on writing. */
    assert_true(e2e_wait_vcpu_writes(&src, d, 100));
    {
        json_t *r = e2e_qmp(&src, d, "x-xenram-query-memory", NULL);
        json_int_t w = json_integer_value(json_object_get(
            json_object_get(r, "test-device"), "pages-written"));

        json_decref(r);
        assert_true(w > 0);
        assert_true(e2e_wait_dma(&src, d, (uint64_t)w + 200));
    }
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

/* (d) The destination's device model dies after loading the state, just
 * before cont; with a quiet guest, the source's memory is unchanged. */
static void test_dest_dm_dies_before_cont(void **state)
{
    char sums[200], out[4096], before[33], after[33], s[33], d2[33], id[16];
    unsigned long long sp, dp;
    uint32_t d;
    pid_t spid;

    (void)state;
    NEED_XENSTORE();
    d = guest("mig4", "idle", NULL, NULL);
    spid = e2e_dm_pid(&src, d);
    snprintf(id, sizeof(id), "%u", d);
    assert_int_equal(e2e_xensim(&src, NULL, 0, "guest-write", id,
                                "0x100-0x2ff", "0x1000-0x10ff", NULL), 0);
    e2e_checksum(&src, d, before);
    assert_int_equal(strlen(before), 32);
    snprintf(sums, sizeof(sums), "%s/sums-mig4", src.dir);
    setenv("XENSIM_TEST_MIGRATE_HOOK", "kill-dest-dm-before-cont", 1);
    assert_int_not_equal(migrate(d, sums, out, sizeof(out), NULL), 0);
    unsetenv("XENSIM_TEST_MIGRATE_HOOK");
    source_resumed(d, spid, "mig4");
    /* It got as far as the destination's copy, which was complete... */
    read_sums(sums, s, d2, &sp, &dp);
    assert_string_equal(s, d2);
    /* ... and the source lost nothing. */
    e2e_checksum(&src, d, after);
    assert_string_equal(before, after);
    assert_string_equal(before, s);
    e2e_destroy(&src, d);
    assert_true(e2e_wait_exit(spid, 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_migration),
        cmocka_unit_test(test_lost_dm_writes_are_detected),
        cmocka_unit_test(test_dest_dm_fails_to_start),
        cmocka_unit_test(test_dest_dm_dies_before_cont),
    };

    e2e_init(90);
    return cmocka_run_group_tests_name("e2e-migrate", tests, setup,
                                       e2e_group_teardown);
}
