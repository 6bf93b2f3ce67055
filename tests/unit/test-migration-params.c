/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-migration-params.c - the own engine's parameters and capabilities
 * (migration/migration.h): QEMU's defaults, every range checked with a
 * sentence that names the parameter, postcopy refused until it exists,
 * and a migration that cannot start says why and changes nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "migration/migration.h"

static int setup(void **state)
{
    MigrationConfig cfg = { 0 };
    Migration *m;

    if (migration_new(&cfg, &m)) {
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    migration_free(*state);
    return 0;
}

static void test_defaults_are_qemus(void **state)
{
    MigrationParams p;
    MigrationCaps c;
    MigrationInfo i;

    migration_get_params(*state, &p);
    assert_int_equal(p.downtime_limit, 300);
    assert_int_equal(p.multifd_channels, 2);
    assert_int_equal(p.multifd_compression, MIGRATION_COMPRESSION_NONE);
    assert_int_equal(p.multifd_zstd_level, 1);
    assert_int_equal(p.throttle_trigger_threshold, 50);
    assert_int_equal(p.cpu_throttle_initial, 20);
    assert_int_equal(p.cpu_throttle_increment, 10);
    assert_int_equal(p.max_cpu_throttle, 99);
    migration_get_caps(*state, &c);
    assert_false(c.multifd || c.auto_converge || c.events ||
                 c.pause_before_switchover || c.postcopy_ram);
    migration_get_info(*state, &i);
    assert_int_equal(i.status, MIGRATION_STATUS_NONE);
    assert_string_equal(migration_status_name(MIGRATION_STATUS_PRE_SWITCHOVER),
                        "pre-switchover");
}

static void test_out_of_range_parameters_are_named_and_change_nothing(
    void **state)
{
    MigrationParams p, now;
    char err[256];

    migration_get_params(*state, &p);
    p.multifd_channels = 0;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "Parameter 'multifd-channels' expects 1 to 16");
    p.multifd_channels = 4;
    p.max_cpu_throttle = 100;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "max-cpu-throttle"));
    migration_get_params(*state, &now);
    assert_int_equal(now.multifd_channels, 2);
    p.max_cpu_throttle = 80;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)), 0);
    migration_get_params(*state, &now);
    assert_int_equal(now.multifd_channels, 4);
    assert_int_equal(now.max_cpu_throttle, 80);
}

/* xenram's own: PREPAREs before the switch, 5 unless set, 0 to 10. */
static void test_postcopy_prepare_passes_are_5_and_at_most_10(void **state)
{
    MigrationParams p, now;
    char err[256];

    migration_get_params(*state, &p);
    assert_int_equal(p.x_postcopy_prepare_passes, 5);
    p.x_postcopy_prepare_passes = 10;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)), 0);
    migration_get_params(*state, &now);
    assert_int_equal(now.x_postcopy_prepare_passes, 10);
    p.x_postcopy_prepare_passes = 0;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)), 0);
    migration_get_params(*state, &now);
    assert_int_equal(now.x_postcopy_prepare_passes, 0);
    p.x_postcopy_prepare_passes = 11;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "Parameter 'x-postcopy-prepare-passes' expects "
                             "0 (none) to 10");
    p.x_postcopy_prepare_passes = UINT32_MAX;
    assert_int_equal(migration_set_params(*state, &p, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "x-postcopy-prepare-passes"));
    /* Refused: what was set stays. */
    migration_get_params(*state, &now);
    assert_int_equal(now.x_postcopy_prepare_passes, 0);
}

static void test_postcopy_ram_is_accepted(void **state)
{
    MigrationCaps c = { .multifd = true, .postcopy_ram = true }, now;
    char err[256];

    assert_int_equal(migration_set_caps(*state, &c, err, sizeof(err)), 0);
    migration_get_caps(*state, &now);
    assert_true(now.multifd);
    assert_true(now.postcopy_ram);
}

static void test_postcopy_preempt_needs_postcopy_ram(void **state)
{
    MigrationCaps c = { .postcopy_preempt = true }, now;
    char err[256];

    assert_int_equal(migration_set_caps(*state, &c, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "postcopy-ram"));
    migration_get_caps(*state, &now);
    assert_false(now.postcopy_preempt);
}

static void test_start_postcopy_needs_the_capability(void **state)
{
    MigrationCaps c = { .postcopy_ram = false };
    char err[256];

    assert_int_equal(migration_set_caps(*state, &c, err, sizeof(err)), 0);
    assert_int_equal(migration_start_postcopy(*state, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "migrate_set_capability"));
}

/* QEMU's meaning: before `migrate`, postcopy starts after round 1. */
static void test_start_postcopy_before_migrate_is_kept(void **state)
{
    MigrationCaps c = { .postcopy_ram = true };
    char err[256];

    assert_int_equal(migration_set_caps(*state, &c, err, sizeof(err)), 0);
    assert_int_equal(migration_start_postcopy(*state, err, sizeof(err)), 0);
    c.postcopy_ram = false;
    assert_int_equal(migration_set_caps(*state, &c, err, sizeof(err)), 0);
}

static void test_postcopy_active_has_qemus_name(void **state)
{
    (void)state;
    assert_string_equal(migration_status_name(
                            MIGRATION_STATUS_POSTCOPY_ACTIVE),
                        "postcopy-active");
}

static void test_a_migration_that_cannot_start_says_why(void **state)
{
    MigrationInfo i;
    char err[256];

    assert_int_equal(migration_start(*state, "exec:cat", -1, err,
                                     sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "tcp:HOST:PORT"));
    assert_int_equal(migration_start(*state, "fd:nope", -1, err,
                                     sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "getfd"));
    assert_int_equal(migration_incoming_start(*state, "tcp:999.1.1.1:1", -1,
                                              false, err, sizeof(err)),
                     -EADDRNOTAVAIL);
    migration_get_info(*state, &i);
    assert_int_equal(i.status, MIGRATION_STATUS_NONE);
    assert_int_equal(migration_continue(*state, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not in expected state"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_are_qemus),
        T(test_out_of_range_parameters_are_named_and_change_nothing),
        T(test_postcopy_prepare_passes_are_5_and_at_most_10),
        T(test_postcopy_ram_is_accepted),
        T(test_postcopy_preempt_needs_postcopy_ram),
        T(test_start_postcopy_needs_the_capability),
        T(test_start_postcopy_before_migrate_is_kept),
        T(test_postcopy_active_has_qemus_name),
        T(test_a_migration_that_cannot_start_says_why),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
