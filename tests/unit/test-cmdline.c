/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for xen/dm/cmdline: the command lines libxl 4.17 builds for a
 * qemu-xen device model (libxl__build_device_model_args_new) are read
 * whole, what xenram cannot honour is refused with a message naming the
 * option, device options are ignored and reported once.
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

#include "xen/dm/cmdline.h"
#include "xen/dm/devmodel.h"

static char err[512];

#define ARGV(...) ((const char *[]){ "xenram", __VA_ARGS__, NULL })

static int parse(DMConfig *cfg, const char **argv)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    memset(err, 0, sizeof(err));
    return dm_cmdline_parse(argc, (char **)argv, cfg, err, sizeof(err));
}

/* The smallest valid command line, followed by @extra (NULL-terminated). */
static int parse_base(DMConfig *cfg, const char *const *extra)
{
    const char *argv[64] = {
        "xenram", "-xen-domid", "5", "-m", "1024",
        "-qmp", "unix:/run/test.qmp,server,nowait",
    };
    size_t n = 7;

    for (; *extra; extra++) {
        assert_true(n < sizeof(argv) / sizeof(argv[0]) - 1);
        argv[n++] = *extra;
    }
    argv[n] = NULL;
    return parse(cfg, argv);
}

#define EXTRA(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* The parse fails with -EINVAL, the message holds @needle, cfg is empty. */
static void assert_refused_with(int rc, const DMConfig *cfg,
                                const char *needle)
{
    assert_int_equal(rc, -EINVAL);
    if (!strstr(err, needle))
        fail_msg("message \"%s\" does not mention \"%s\"", err, needle);
    assert_int_equal(cfg->nr_monitors, 0);
    assert_int_equal(cfg->nr_ignored, 0);
    assert_null(cfg->name);
}

static void refused_base(const char *const *extra, const char *needle)
{
    DMConfig cfg;

    assert_refused_with(parse_base(&cfg, extra), &cfg, needle);
    dm_config_free(&cfg);
}

static void refused(const char **argv, const char *needle)
{
    DMConfig cfg;

    assert_refused_with(parse(&cfg, argv), &cfg, needle);
    dm_config_free(&cfg);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("XEN_DOMAIN_ID");
    return 0;
}

/* ---- what libxl 4.17 passes ------------------------------------------- */

/* An HVM guest, 1 GiB with 8 MiB of cirrus VRAM, QMP on sockets. */
static const char *libxl_hvm_argv[] = {
    "/usr/lib/xen/bin/xenram",
    "-xen-domid", "5",
    "-no-shutdown",
    "-chardev", "socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-5,"
                "server=on,wait=off",
    "-mon", "chardev=libxl-cmd,mode=control",
    "-chardev", "socket,id=libxenstat-cmd,path=/var/run/xen/"
                "qmp-libxenstat-5,server=on,wait=off",
    "-mon", "chardev=libxenstat-cmd,mode=control",
    "-nodefaults",
    "-no-user-config",
    "-name", "guest1",
    "-vnc", "127.0.0.1:0,to=99",
    "-display", "none",
    "-serial", "pty",
    "-device", "cirrus-vga,vgamem_mb=8",
    "-boot", "order=cda",
    "-usb",
    "-usbdevice", "tablet",
    "-smp", "2,maxcpus=2",
    "-device", "rtl8139,id=nic0,netdev=net0,mac=00:16:3e:5a:01:02",
    "-netdev", "type=tap,id=net0,ifname=vif5.0-emu,br=xenbr0,script=no,"
               "downscript=no",
    "-machine", "xenfv,suppress-vmdesc=on",
    "-m", "1016",
    "-drive", "file=/var/lib/xen/images/guest1.img,if=ide,index=0,"
              "media=disk,format=raw,cache=writeback",
    NULL,
};

static void test_libxl_hvm_command_line_is_read_whole(void **state)
{
    DMConfig cfg;

    (void)state;
    setenv("XEN_DOMAIN_ID", "5", 1);
    assert_int_equal(parse(&cfg, libxl_hvm_argv), 0);
    assert_int_equal(cfg.action, DM_ACTION_RUN);
    assert_true(cfg.has_domid);
    assert_int_equal(cfg.domid, 5);
    assert_false(cfg.domid_restrict);
    assert_string_equal(cfg.name, "guest1");
    assert_int_equal(cfg.machine, DM_MACHINE_XENFV);
    assert_false(cfg.probe_only);
    assert_int_equal(cfg.max_ram_below_4g, DM_HVM_BELOW_4G_RAM_END);
    assert_int_equal(cfg.ram_mib, 1016);
    assert_int_equal(cfg.maxmem_mib, 0);
    assert_int_equal(cfg.ram_slots, 0);
    assert_int_equal(cfg.vram_mib, 8);
    assert_false(cfg.start_paused);
    assert_int_equal(cfg.incoming_fd, -1);
    assert_true(cfg.no_shutdown);
    assert_true(cfg.nodefaults);
    assert_true(cfg.no_user_config);
    assert_null(cfg.runas);
    assert_null(cfg.chroot_dir);
    assert_int_equal(cfg.nr_monitors, 2);
    assert_string_equal(cfg.monitors[0].chardev_id, "libxl-cmd");
    assert_string_equal(cfg.monitors[0].path,
                        "/var/run/xen/qmp-libxl-5");
    assert_int_equal(cfg.monitors[0].fd, -1);
    assert_true(cfg.monitors[0].server);
    assert_false(cfg.monitors[0].wait);
    assert_string_equal(cfg.monitors[1].chardev_id, "libxenstat-cmd");
    assert_string_equal(cfg.monitors[1].path,
                        "/var/run/xen/qmp-libxenstat-5");
    assert_true(cfg.monitors[1].server);
    assert_false(cfg.monitors[1].wait);
    /* -vnc -display -serial -device x2 -boot -usb -usbdevice -smp
     * -netdev -drive */
    assert_int_equal(cfg.nr_ignored, 11);
    dm_config_free(&cfg);
}

/* dm_restrict=1: QMP pre-opened by libxl, -S, restriction, chroot, runas. */
static void test_libxl_dm_restrict_command_line_is_read_whole(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "7",
        "-no-shutdown",
        "-chardev", "socket,id=libxl-cmd,fd=12,server=on,wait=off",
        "-S",
        "-mon", "chardev=libxl-cmd,mode=control",
        "-chardev", "socket,id=libxenstat-cmd,path=/var/run/xen/"
                    "qmp-libxenstat-7,server=on,wait=off",
        "-mon", "chardev=libxenstat-cmd,mode=control",
        "-nodefaults", "-no-user-config",
        "-name", "restricted",
        "-vnc", "none", "-display", "none",
        "-device", "VGA,vgamem_mb=16",
        "-net", "none",
        "-xen-domid-restrict",
        "-chroot", "/var/run/xen/qemu-root-7",
        "-machine", "xenfv,suppress-vmdesc=on,max-ram-below-4g=3758096384",
        "-m", "2032",
        "-runas", "131079:131072");

    (void)state;
    setenv("XEN_DOMAIN_ID", "7", 1);
    assert_int_equal(parse(&cfg, argv), 0);
    assert_int_equal(cfg.domid, 7);
    assert_true(cfg.domid_restrict);
    assert_true(cfg.start_paused);
    assert_int_equal(cfg.nr_monitors, 2);
    assert_string_equal(cfg.monitors[0].chardev_id, "libxl-cmd");
    assert_null(cfg.monitors[0].path);
    assert_int_equal(cfg.monitors[0].fd, 12);
    assert_true(cfg.monitors[0].server);
    assert_false(cfg.monitors[0].wait);
    assert_string_equal(cfg.monitors[1].path,
                        "/var/run/xen/qmp-libxenstat-7");
    assert_string_equal(cfg.chroot_dir, "/var/run/xen/qemu-root-7");
    assert_string_equal(cfg.runas, "131079:131072");
    assert_true(cfg.runas_numeric);
    assert_int_equal(cfg.runas_uid, 131079);
    assert_int_equal(cfg.runas_gid, 131072);
    assert_int_equal(cfg.max_ram_below_4g, 0xE0000000ULL);
    assert_int_equal(cfg.ram_mib, 2032);
    assert_int_equal(cfg.vram_mib, 16);
    dm_config_free(&cfg);
}

/* The probe newer libxl runs before the real launch: no domain, no RAM. */
static void test_libxl_probe_command_line_sets_probe_only(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-S", "-no-user-config", "-nodefaults", "-nographic",
        "-machine", "none,accel=xen",
        "-chardev", "socket,id=libxl-cmd,fd=9,server=on,wait=off",
        "-mon", "chardev=libxl-cmd,mode=control");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_true(cfg.probe_only);
    assert_int_equal(cfg.machine, DM_MACHINE_NONE);
    assert_false(cfg.has_domid);
    assert_int_equal(cfg.ram_mib, 0);
    assert_true(cfg.start_paused);
    assert_int_equal(cfg.nr_monitors, 1);
    assert_int_equal(cfg.monitors[0].fd, 9);
    dm_config_free(&cfg);
}

/* Restore and the receiving end of xl migrate: -incoming fd:N. */
static void test_libxl_restore_command_line_sets_incoming_fd(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "9", "-no-shutdown",
        "-chardev", "socket,id=libxl-cmd,path=/var/run/xen/qmp-libxl-9,"
                    "server=on,wait=off",
        "-mon", "chardev=libxl-cmd,mode=control",
        "-nodefaults", "-no-user-config", "-name", "migrated",
        "-vnc", "none", "-display", "none",
        "-incoming", "fd:17",
        "-machine", "xenfv,suppress-vmdesc=on",
        "-m", "1016");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_int_equal(cfg.incoming_fd, 17);
    assert_int_equal(cfg.domid, 9);
    assert_false(cfg.start_paused);
    dm_config_free(&cfg);
}

static void test_machine_pc_with_accel_xen_is_accepted(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-machine",
                                            "pc,accel=xen,suppress-vmdesc=on")),
                     0);
    assert_int_equal(cfg.machine, DM_MACHINE_PC);
    dm_config_free(&cfg);
}

static void test_machine_defaults_to_xenfv(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-S")), 0);
    assert_int_equal(cfg.machine, DM_MACHINE_XENFV);
    assert_false(cfg.probe_only);
    dm_config_free(&cfg);
}

/* ---- the domain ------------------------------------------------------- */

static void test_xen_domain_id_env_gives_the_domain(void **state)
{
    DMConfig cfg;

    (void)state;
    setenv("XEN_DOMAIN_ID", "12", 1);
    assert_int_equal(parse(&cfg, ARGV("-m", "512", "-qmp", "unix:/q,server")),
                     0);
    assert_true(cfg.has_domid);
    assert_int_equal(cfg.domid, 12);
    dm_config_free(&cfg);
}

static void test_xen_domain_id_env_disagreeing_is_refused(void **state)
{
    (void)state;
    setenv("XEN_DOMAIN_ID", "6", 1);
    refused_base(EXTRA("-S"), "XEN_DOMAIN_ID");
    refused_base(EXTRA("-S"), "-xen-domid 5");
}

static void test_xen_domain_id_env_not_a_number_is_refused(void **state)
{
    (void)state;
    setenv("XEN_DOMAIN_ID", "five", 1);
    refused_base(EXTRA("-S"), "XEN_DOMAIN_ID=five");
}

static void test_missing_domain_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-m", "512", "-qmp", "unix:/q,server"), "-xen-domid");
}

static void test_domid_zero_reserved_or_garbage_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-xen-domid", "0", "-m", "512", "-qmp", "unix:/q"),
            "-xen-domid 0");
    refused(ARGV("-xen-domid", "32752", "-m", "512", "-qmp", "unix:/q"),
            "-xen-domid 32752");
    refused(ARGV("-xen-domid", "5x", "-m", "512", "-qmp", "unix:/q"),
            "-xen-domid 5x");
}

static void test_domid_given_twice_differently_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-xen-domid", "6"), "-xen-domid 6");
}

/* The receiving end of xenram's own migration: tcp:, unix:, defer. */
static void test_incoming_tcp_unix_and_defer_are_the_own_engines(
    void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-incoming", "tcp:0.0.0.0:4444")), 0);
    assert_string_equal(cfg.incoming_uri, "tcp:0.0.0.0:4444");
    assert_int_equal(cfg.incoming_fd, -1);
    assert_false(cfg.incoming_defer);
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("-incoming", "unix:/run/mig.sock")), 0);
    assert_string_equal(cfg.incoming_uri, "unix:/run/mig.sock");
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("-incoming", "defer")), 0);
    assert_true(cfg.incoming_defer);
    assert_string_equal(cfg.incoming_uri, "");
    dm_config_free(&cfg);
}

/* ---- refusals --------------------------------------------------------- */

static void test_incoming_transports_other_than_fd_tcp_unix_defer_are_refused(
    void **state)
{
    (void)state;
    refused_base(EXTRA("-incoming", "exec:cat"), "-incoming exec:cat");
    refused_base(EXTRA("-incoming", "exec:cat"),
                 "xenram supports -incoming fd:N (libxl's restore), "
                 "tcp:HOST:PORT, unix:PATH or defer");
    refused_base(EXTRA("-incoming", "tcp:4444"), "-incoming tcp:4444");
    refused_base(EXTRA("-incoming", "unix:"), "-incoming unix:");
    refused_base(EXTRA("-incoming", "fd:x"), "-incoming fd:x");
    refused_base(EXTRA("-incoming", "fd:"), "-incoming fd:");
}

static void test_loadvm_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-loadvm", "snap0"), "-loadvm");
    refused_base(EXTRA("-loadvm", "snap0"), "-incoming fd:N");
}

static void test_machine_types_other_than_xen_ones_are_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "q35,accel=xen"), "-machine q35");
    refused_base(EXTRA("-M", "xenpv"), "-M xenpv");
    refused_base(EXTRA("-machine", "xenpv"), "HVM");
}

static void test_accelerators_other_than_xen_are_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "pc,accel=kvm"), "accel=kvm");
    refused_base(EXTRA("-machine", "pc,accel=xen:tcg"), "accel=xen:tcg");
    refused_base(EXTRA("-accel", "tcg"), "-accel");
    refused_base(EXTRA("-enable-kvm"), "-enable-kvm");
}

static void test_machine_pc_or_none_without_accel_xen_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "pc"), "-machine pc");
    refused_base(EXTRA("-machine", "none"), "-machine none");
}

static void test_accel_option_completes_machine_pc(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-machine", "pc",
                                            "-accel", "xen")), 0);
    assert_int_equal(cfg.machine, DM_MACHINE_PC);
    dm_config_free(&cfg);
}

static void test_unknown_machine_property_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "xenfv,memory-backend=ram0"),
                 "memory-backend");
}

static void test_igd_passthru_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "xenfv,igd-passthru=on"), "igd-passthru");
}

static void test_unparsable_memory_size_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-xen-domid", "5", "-m", "lots", "-qmp", "unix:/q"),
            "-m lots");
    refused(ARGV("-xen-domid", "5", "-m", "512X", "-qmp", "unix:/q"),
            "-m 512X");
    refused(ARGV("-xen-domid", "5", "-m", "0", "-qmp", "unix:/q"), "-m 0");
    refused(ARGV("-xen-domid", "5", "-m", "1536K", "-qmp", "unix:/q"),
            "whole number of MiB");
    refused(ARGV("-xen-domid", "5", "-m", "99999999999999999999",
                 "-qmp", "unix:/q"), "-m 99999999999999999999");
    refused(ARGV("-xen-domid", "5", "-m", "size=512,,", "-qmp", "unix:/q"),
            "-m size=512,,");
    refused(ARGV("-xen-domid", "5", "-m", "512,", "-qmp", "unix:/q"),
            "-m 512,");
    refused(ARGV("-xen-domid", "5", "-m", "512,bogus=1", "-qmp", "unix:/q"),
            "bogus");
}

static void test_memory_size_beyond_16_tib_is_refused(void **state)
{
    DMConfig cfg;

    (void)state;
    /* 2^44 - 1 MiB: 4 GiB + the RAM above it wrapped to 255 MiB. */
    refused(ARGV("-xen-domid", "5", "-m", "17592186044415", "-qmp",
                 "unix:/q"), "more RAM than the 16777216 MiB (16 TiB)");
    refused(ARGV("-xen-domid", "5", "-m", "16777217", "-qmp", "unix:/q"),
            "more RAM than");
    refused(ARGV("-xen-domid", "5", "-m", "1024,maxmem=17T", "-qmp",
                 "unix:/q"), "maxmem is more than");
    assert_int_equal(parse(&cfg, ARGV("-xen-domid", "5", "-m", "16T",
                                      "-qmp", "unix:/q")), 0);
    assert_int_equal(cfg.ram_mib, DM_MAX_RAM_MIB);
    dm_config_free(&cfg);
}

/* RAM and VRAM end at @top for a guest of @ram_mib: its window. */
static DMHotplugWindow window_of(const char *m, uint64_t top)
{
    DMHotplugWindow w;
    DMConfig cfg;

    assert_int_equal(parse(&cfg, ARGV("-xen-domid", "5", "-m", m, "-qmp",
                                      "unix:/q")), 0);
    dm_hotplug_window(&cfg, cfg.ram_mib << 20, top, &w);
    dm_config_free(&cfg);
    return w;
}

static void test_hotplug_window_fits_any_guest_the_command_line_allows(
    void **state)
{
    const uint64_t gib = 1ULL << 30;
    DMHotplugWindow w;

    (void)state;
    /* libxl 4.17 gives no maxmem: a 1 TiB guest still gets a window. */
    w = window_of("1048576", 4 * gib + 1024 * gib - 3840ULL * (1 << 20));
    assert_true(w.start >= 1025 * gib - 3840ULL * (1 << 20));
    assert_int_equal(w.start % gib, 0);
    assert_true(w.end > w.start);
    assert_true(w.end - w.start >= 1024 * gib);
    assert_int_equal(w.max_bytes, 0);
    assert_false(w.max_set);
    assert_int_equal(w.slots, 256);
    /* A small guest: at least DM_HOTPLUG_WINDOW_MIN. */
    w = window_of("256", 256ULL << 20);
    assert_int_equal(w.start, gib);
    assert_true(w.end - w.start >= DM_HOTPLUG_WINDOW_MIN);
    /* maxmem: as long as the room it leaves, one alignment per slot more. */
    w = window_of("1024,maxmem=4096M,slots=4", gib);
    assert_int_equal(w.max_bytes, 3 * gib);
    assert_int_equal(w.slots, 4);
    assert_true(w.end - w.start >= 3 * gib);
    assert_true(w.end - w.start <= 4 * gib);
    assert_true(w.max_set);
    /* maxmem = RAM: no room, which is a cap (not "no maxmem"). */
    w = window_of("1024,maxmem=1024M,slots=4", gib);
    assert_true(w.max_set);
    assert_int_equal(w.max_bytes, 0);
    assert_true(w.end - w.start <= 4 * (128ULL << 20));  /* slots x align */
    /* The largest guest: nothing wraps. */
    w = window_of("16T,maxmem=16T", 4 * gib + (16ULL << 40));
    assert_true(w.start >= (16ULL << 40) && w.end > w.start);
    w = window_of("16T", 4 * gib + (16ULL << 40));
    assert_true(w.end > w.start && w.end - w.start >= (16ULL << 40));
}

static void test_missing_memory_size_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-xen-domid", "5", "-qmp", "unix:/q"), "-m");
}

static void test_unknown_option_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-frobnicate"), "-frobnicate");
    refused_base(EXTRA("--frobnicate"), "--frobnicate");
    refused_base(EXTRA("-m=512"), "-m=512");
}

static void test_positional_argument_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("disk.img"), "disk.img");
    refused_base(EXTRA("-"), "'-'");
}

static void test_missing_argument_is_refused(void **state)
{
    static const char *const opts[] = {
        "-xen-domid", "-m", "-machine", "-M", "-name", "-chardev", "-mon",
        "-qmp", "-incoming", "-runas", "-chroot", "-sandbox", "-vnc",
        "-device", "-drive", "-netdev", "-serial", "-display", "-loadvm",
        "--log-level", "-run-with", "-accel",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        char needle[64];

        snprintf(needle, sizeof(needle), "'%s' needs an argument", opts[i]);
        refused_base(EXTRA(opts[i]), needle);
    }
}

static void test_qemu_traditional_options_are_refused_with_a_hint(void **state)
{
    (void)state;
    refused_base(EXTRA("-domain-name", "g"), "-domain-name");
    refused_base(EXTRA("-domain-name", "g"), "device_model_version");
    refused_base(EXTRA("-videoram", "8"), "-videoram");
    refused_base(EXTRA("-d", "5"), "-d 5");
}

static void test_direct_kernel_boot_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-kernel", "/boot/vmlinuz"), "-kernel /boot/vmlinuz");
    refused_base(EXTRA("-initrd", "/boot/initrd"), "-initrd");
    refused_base(EXTRA("-append", "console=ttyS0"), "-append");
}

static void test_memory_devices_and_backends_are_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-device", "pc-dimm,id=dimm0,memdev=m0"),
                 "-device pc-dimm");
    refused_base(EXTRA("-device", "virtio-mem-pci,id=vm0"),
                 "-device virtio-mem-pci");
    refused_base(EXTRA("-object", "memory-backend-ram,id=m0,size=1G"),
                 "-object memory-backend-ram");
    refused_base(EXTRA("-object", "secret,id=s0,data=x"), "secret");
    refused_base(EXTRA("-mem-path", "/dev/hugepages"), "-mem-path");
    refused_base(EXTRA("-numa", "node,nodeid=0"), "-numa");
}

static void test_daemonize_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-daemonize"), "-daemonize");
}

/* ---- QMP monitors ----------------------------------------------------- */

static void test_monitor_with_unknown_chardev_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-mon", "chardev=nosuch,mode=control"),
                 "-mon chardev=nosuch");
}

static void test_monitor_mode_other_than_control_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-chardev", "socket,id=h,path=/h,server=on,wait=off",
                       "-mon", "chardev=h,mode=readline"),
                 "-mon chardev=h,mode=readline");
    /* QEMU's default mode is readline. */
    refused_base(EXTRA("-chardev", "socket,id=h,path=/h,server=on,wait=off",
                       "-mon", "chardev=h"), "mode=control");
}

static void test_monitor_on_non_socket_chardev_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-chardev", "pty,id=p", "-mon",
                       "chardev=p,mode=control"), "-mon chardev=p");
    refused_base(EXTRA("-chardev", "pty,id=p", "-mon",
                       "chardev=p,mode=control"), "pty");
}

static void test_monitor_on_tcp_socket_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-chardev", "socket,id=t,host=127.0.0.1,port=4444,"
                       "server=on,wait=off",
                       "-mon", "chardev=t,mode=control"), "TCP");
    refused_base(EXTRA("-qmp", "tcp:127.0.0.1:4444,server"), "-qmp tcp:");
}

static void test_socket_with_both_path_and_fd_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-chardev", "socket,id=b,path=/b,fd=3,server=on"),
                 "-chardev socket,id=b,path=/b,fd=3");
    refused_base(EXTRA("-chardev", "socket,id=b,fd=three,server=on"),
                 "fd=three");
}

static void test_duplicate_chardev_id_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-chardev", "socket,id=d,path=/a,server=on",
                       "-chardev", "socket,id=d,path=/b,server=on"),
                 "'d'");
}

static void test_no_monitor_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-xen-domid", "5", "-m", "512"), "QMP");
}

static void test_old_server_nowait_spelling_is_accepted(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "5", "-m", "512",
        "-chardev", "socket,id=libxl-cmd,path=/run/q,server,nowait",
        "-mon", "chardev=libxl-cmd,mode=control");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_int_equal(cfg.nr_monitors, 1);
    assert_true(cfg.monitors[0].server);
    assert_false(cfg.monitors[0].wait);
    assert_string_equal(cfg.monitors[0].path, "/run/q");
    dm_config_free(&cfg);
}

static void test_socket_defaults_are_qemus_client_and_wait(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "5", "-m", "512",
        "-chardev", "socket,id=c,path=/run/c",
        "-mon", "chardev=c,mode=control,pretty=on");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_false(cfg.monitors[0].server);
    assert_true(cfg.monitors[0].wait);
    assert_true(cfg.monitors[0].pretty);
    dm_config_free(&cfg);
}

static void test_monitor_may_come_before_its_chardev(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "5", "-m", "512",
        "-mon", "chardev=late,mode=control",
        "-chardev", "socket,id=late,path=/run/late,server=on,wait=off");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_string_equal(cfg.monitors[0].path, "/run/late");
    dm_config_free(&cfg);
}

static void test_qmp_shortcut_makes_a_monitor(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "5", "-m", "512",
        "-qmp", "unix:/run/a.qmp,server=on,wait=off",
        "-qmp", "unix:/run/b.qmp,server,nowait");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_int_equal(cfg.nr_monitors, 2);
    assert_string_equal(cfg.monitors[0].path, "/run/a.qmp");
    assert_string_equal(cfg.monitors[0].chardev_id, "compat_monitor0");
    assert_true(cfg.monitors[0].server);
    assert_false(cfg.monitors[0].wait);
    assert_string_equal(cfg.monitors[1].path, "/run/b.qmp");
    assert_false(cfg.monitors[1].wait);
    dm_config_free(&cfg);
}

static void test_path_with_doubled_comma_keeps_the_comma(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "-xen-domid", "5", "-m", "512",
        "-chardev", "socket,id=c,path=/run/a,,b,server=on,wait=off",
        "-mon", "chardev=c,mode=control");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_string_equal(cfg.monitors[0].path, "/run/a,b");
    dm_config_free(&cfg);
}

/* ---- spellings -------------------------------------------------------- */

static void test_double_dash_spellings_are_accepted(void **state)
{
    DMConfig cfg;
    const char **argv = ARGV(
        "--xen-domid", "5", "--m", "512", "--S", "--nodefaults",
        "--machine", "xenfv", "--name", "dd",
        "--qmp", "unix:/run/dd,server=on,wait=off", "--vnc", "none");

    (void)state;
    assert_int_equal(parse(&cfg, argv), 0);
    assert_int_equal(cfg.domid, 5);
    assert_int_equal(cfg.ram_mib, 512);
    assert_true(cfg.start_paused);
    assert_true(cfg.nodefaults);
    assert_string_equal(cfg.name, "dd");
    assert_int_equal(cfg.nr_ignored, 1);
    assert_string_equal(cfg.ignored[0].option, "-vnc");
    dm_config_free(&cfg);
}

static void test_name_takes_qemu_items(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-name",
                                            "guest=g2,debug-threads=on")), 0);
    assert_string_equal(cfg.name, "g2");
    dm_config_free(&cfg);
    refused_base(EXTRA("-name", "g,colour=blue"), "colour");
}

static void test_run_with_sets_chroot_and_user(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-run-with",
                                            "chroot=/var/run/xen/qemu-root-5,"
                                            "user=xen-qemuuser-range-base")),
                     0);
    assert_string_equal(cfg.chroot_dir, "/var/run/xen/qemu-root-5");
    assert_string_equal(cfg.runas, "xen-qemuuser-range-base");
    assert_false(cfg.runas_numeric);
    dm_config_free(&cfg);
    refused_base(EXTRA("-chroot", "relative/dir"), "-chroot relative/dir");
    refused_base(EXTRA("-runas", "12:x"), "-runas 12:x");
}

static void test_sandbox_is_recorded(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-sandbox",
                                            "on,obsolete=deny,spawn=deny")),
                     0);
    assert_true(cfg.sandbox_on);
    assert_string_equal(cfg.sandbox, "on,obsolete=deny,spawn=deny");
    assert_int_equal(cfg.nr_ignored, 0);
    dm_config_free(&cfg);
    refused_base(EXTRA("-sandbox", "maybe"), "-sandbox");
}

/* ---- ignored options -------------------------------------------------- */

/* What @print writes, as a malloc'ed string. */
static char *capture(void (*print)(const DMConfig *, FILE *),
                     const DMConfig *cfg)
{
    FILE *f = tmpfile();
    char *buf;
    long len;

    assert_non_null(f);
    print(cfg, f);
    len = ftell(f);
    assert_true(len >= 0);
    buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    rewind(f);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return buf;
}

static char *report(const DMConfig *cfg)
{
    return capture(dm_cmdline_report_ignored, cfg);
}

static void print_usage(const DMConfig *cfg, FILE *f)
{
    (void)cfg;
    dm_cmdline_usage(f);
}

static void print_version(const DMConfig *cfg, FILE *f)
{
    (void)cfg;
    dm_cmdline_version(f);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_ignored_options_are_reported_once_on_one_line(void **state)
{
    DMConfig cfg;
    char *out;

    (void)state;
    setenv("XEN_DOMAIN_ID", "5", 1);
    assert_int_equal(parse(&cfg, libxl_hvm_argv), 0);
    assert_int_equal(cfg.nr_ignored, 11);
    assert_string_equal(cfg.ignored[0].option, "-vnc");
    assert_string_equal(cfg.ignored[0].arg, "127.0.0.1:0,to=99");
    out = report(&cfg);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "-vnc"));
    assert_non_null(strstr(out, "-display"));
    assert_non_null(strstr(out, "-device (2)"));
    assert_non_null(strstr(out, "-drive"));
    assert_non_null(strstr(out, "-netdev"));
    /* each option named once */
    assert_null(strstr(strstr(out, "-device") + 1, "-device"));
    /* honoured options are not in it */
    assert_null(strstr(out, "-machine"));
    assert_null(strstr(out, "-chardev"));
    free(out);
    dm_config_free(&cfg);
}

static void test_nothing_ignored_reports_nothing(void **state)
{
    DMConfig cfg;
    char *out;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-S")), 0);
    out = report(&cfg);
    assert_string_equal(out, "");
    free(out);
    dm_config_free(&cfg);
}

static void test_unused_chardevs_and_machine_extras_are_ignored(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA(
        "-chardev", "pty,id=libxl-channel0",
        "-machine", "xenfv,vmport=off",
        "-object", "filter-mirror,id=m1,netdev=net0,queue=tx,outdev=m")), 0);
    assert_int_equal(cfg.nr_ignored, 3);
    assert_string_equal(cfg.ignored[0].option, "-machine vmport");
    assert_string_equal(cfg.ignored[1].option, "-object");
    assert_string_equal(cfg.ignored[2].option, "-chardev");
    assert_string_equal(cfg.ignored[2].arg, "pty,id=libxl-channel0");
    dm_config_free(&cfg);
}

/* ---- sizes ------------------------------------------------------------ */

static void test_memory_sizes_take_suffixes(void **state)
{
    static const struct {
        const char *arg;
        uint64_t mib;
    } cases[] = {
        { "512", 512 }, { "512M", 512 }, { "512m", 512 }, { "2G", 2048 },
        { "1T", 1024 * 1024 }, { "size=768", 768 }, { "size=3g", 3072 },
        { "1048576K", 1024 }, { "0x100", 256 }, { "1073741824B", 1024 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DMConfig cfg;

        if (parse(&cfg, ARGV("-xen-domid", "5", "-m", cases[i].arg,
                             "-qmp", "unix:/q")) != 0)
            fail_msg("-m %s: %s", cases[i].arg, err);
        assert_int_equal(cfg.ram_mib, cases[i].mib);
        dm_config_free(&cfg);
    }
}

static void test_memory_maxmem_and_slots_are_kept(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse(&cfg, ARGV("-xen-domid", "5", "-m",
                                      "size=1024,slots=4,maxmem=8G",
                                      "-qmp", "unix:/q")), 0);
    assert_int_equal(cfg.ram_mib, 1024);
    assert_int_equal(cfg.maxmem_mib, 8192);
    assert_int_equal(cfg.ram_slots, 4);
    dm_config_free(&cfg);
}

static void test_maxmem_below_size_or_in_bytes_is_refused(void **state)
{
    (void)state;
    refused(ARGV("-xen-domid", "5", "-m", "2G,maxmem=1G", "-qmp", "unix:/q"),
            "maxmem");
    /* QEMU reads an unsuffixed maxmem in bytes. */
    refused(ARGV("-xen-domid", "5", "-m", "1G,maxmem=4096", "-qmp",
                 "unix:/q"), "maxmem=4096");
    refused(ARGV("-xen-domid", "5", "-m", "1G,slots=999,maxmem=4G", "-qmp",
                 "unix:/q"), "slots=999");
}

static void test_max_ram_below_4g_defaults_to_hvm_below_4g_ram_end(void **state)
{
    DMConfig cfg;

    (void)state;
    dm_config_init(&cfg);
    assert_int_equal(cfg.max_ram_below_4g, 0xF0000000ULL);
    assert_int_equal(parse_base(&cfg, EXTRA("-machine", "xenfv")), 0);
    assert_int_equal(cfg.max_ram_below_4g, 0xF0000000ULL);
    dm_config_free(&cfg);
}

static void test_max_ram_below_4g_takes_bytes_and_suffixes(void **state)
{
    static const struct {
        const char *arg;
        uint64_t bytes;
    } cases[] = {
        { "xenfv,max-ram-below-4g=3758096384", 0xE0000000ULL },
        { "xenfv,max-ram-below-4g=3G", 3 * (1ULL << 30) },
        { "xenfv,max-ram-below-4g=2048M", 2 * (1ULL << 30) },
        { "xenfv,max-ram-below-4g=0x80000000", 0x80000000ULL },
        /* Xen keeps min(value, HVM_BELOW_4G_RAM_END); 0 is the default. */
        { "xenfv,max-ram-below-4g=4G", 0xF0000000ULL },
        { "xenfv,max-ram-below-4g=0", 0xF0000000ULL },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        DMConfig cfg;

        if (parse_base(&cfg, EXTRA("-machine", cases[i].arg)) != 0)
            fail_msg("-machine %s: %s", cases[i].arg, err);
        assert_int_equal(cfg.max_ram_below_4g, cases[i].bytes);
        dm_config_free(&cfg);
    }
}

static void test_max_ram_below_4g_must_be_page_aligned(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "xenfv,max-ram-below-4g=3758096385"),
                 "max-ram-below-4g=3758096385");
    refused_base(EXTRA("-machine", "xenfv,max-ram-below-4g=2047K"),
                 "page");
}

static void test_max_ram_below_4g_above_4g_is_refused(void **state)
{
    (void)state;
    refused_base(EXTRA("-machine", "xenfv,max-ram-below-4g=4294971392"),
                 "max-ram-below-4g=4294971392");
    refused_base(EXTRA("-machine", "xenfv,max-ram-below-4g=5G"), "4 GiB");
    refused_base(EXTRA("-machine", "xenfv,max-ram-below-4g=lots"),
                 "max-ram-below-4g=lots");
}

/* ---- xenram's own options --------------------------------------------- */

static void test_help_and_version_return_1(void **state)
{
    static const char *const helps[] = { "-h", "-help", "--help" };
    static const char *const versions[] = { "-version", "--version" };

    (void)state;
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        DMConfig cfg;

        assert_int_equal(parse(&cfg, ARGV("-name", "x", helps[i])), 1);
        assert_int_equal(cfg.action, DM_ACTION_HELP);
        assert_null(cfg.name);          /* nothing left to free */
        dm_config_free(&cfg);
    }
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        DMConfig cfg;

        assert_int_equal(parse(&cfg, ARGV(versions[i])), 1);
        assert_int_equal(cfg.action, DM_ACTION_VERSION);
        dm_config_free(&cfg);
    }
}

static void test_usage_and_version_texts(void **state)
{
    char *buf;

    (void)state;
    buf = capture(print_usage, NULL);
    assert_non_null(strstr(buf, "-xen-domid"));
    assert_non_null(strstr(buf, "--log-level"));
    assert_non_null(strstr(buf, "--no-modified-memory"));
    assert_non_null(strstr(buf, "DEBUG ONLY"));
    free(buf);
    buf = capture(print_version, NULL);
    assert_non_null(strstr(buf, "xenram " XENRAM_VERSION));
    free(buf);
}

static void test_log_level_option(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-S")), 0);
    assert_int_equal(cfg.log_level, DM_LOG_INFO);
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("--log-level=debug")), 0);
    assert_int_equal(cfg.log_level, DM_LOG_DEBUG);
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("--log-level", "error")), 0);
    assert_int_equal(cfg.log_level, DM_LOG_ERROR);
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("-log-level", "warning")), 0);
    assert_int_equal(cfg.log_level, DM_LOG_WARN);
    dm_config_free(&cfg);
    refused_base(EXTRA("--log-level=loud"), "--log-level loud");
    assert_string_equal(dm_log_level_name(DM_LOG_DEBUG), "debug");
}

static void test_no_modified_memory_is_a_debug_switch(void **state)
{
    DMConfig cfg;

    (void)state;
    assert_int_equal(parse_base(&cfg, EXTRA("-S")), 0);
    assert_false(cfg.no_modified_memory);
    dm_config_free(&cfg);
    assert_int_equal(parse_base(&cfg, EXTRA("--no-modified-memory")), 0);
    assert_true(cfg.no_modified_memory);
    dm_config_free(&cfg);
    refused_base(EXTRA("--no-modified-memory=1"), "--no-modified-memory=1");
}

static void test_config_free_is_idempotent(void **state)
{
    DMConfig cfg;

    (void)state;
    setenv("XEN_DOMAIN_ID", "5", 1);
    assert_int_equal(parse(&cfg, libxl_hvm_argv), 0);
    dm_config_free(&cfg);
    assert_null(cfg.monitors);
    assert_int_equal(cfg.nr_monitors, 0);
    assert_int_equal(cfg.incoming_fd, -1);
    dm_config_free(&cfg);
}

#define T(name) cmocka_unit_test_setup(name, setup)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_libxl_hvm_command_line_is_read_whole),
        T(test_libxl_dm_restrict_command_line_is_read_whole),
        T(test_libxl_probe_command_line_sets_probe_only),
        T(test_libxl_restore_command_line_sets_incoming_fd),
        T(test_incoming_tcp_unix_and_defer_are_the_own_engines),
        T(test_machine_pc_with_accel_xen_is_accepted),
        T(test_machine_defaults_to_xenfv),
        T(test_xen_domain_id_env_gives_the_domain),
        T(test_xen_domain_id_env_disagreeing_is_refused),
        T(test_xen_domain_id_env_not_a_number_is_refused),
        T(test_missing_domain_is_refused),
        T(test_domid_zero_reserved_or_garbage_is_refused),
        T(test_domid_given_twice_differently_is_refused),
        T(test_incoming_transports_other_than_fd_tcp_unix_defer_are_refused),
        T(test_loadvm_is_refused),
        T(test_machine_types_other_than_xen_ones_are_refused),
        T(test_accelerators_other_than_xen_are_refused),
        T(test_machine_pc_or_none_without_accel_xen_is_refused),
        T(test_accel_option_completes_machine_pc),
        T(test_unknown_machine_property_is_refused),
        T(test_igd_passthru_is_refused),
        T(test_unparsable_memory_size_is_refused),
        T(test_memory_size_beyond_16_tib_is_refused),
        T(test_hotplug_window_fits_any_guest_the_command_line_allows),
        T(test_missing_memory_size_is_refused),
        T(test_unknown_option_is_refused),
        T(test_positional_argument_is_refused),
        T(test_missing_argument_is_refused),
        T(test_qemu_traditional_options_are_refused_with_a_hint),
        T(test_direct_kernel_boot_is_refused),
        T(test_memory_devices_and_backends_are_refused),
        T(test_daemonize_is_refused),
        T(test_monitor_with_unknown_chardev_is_refused),
        T(test_monitor_mode_other_than_control_is_refused),
        T(test_monitor_on_non_socket_chardev_is_refused),
        T(test_monitor_on_tcp_socket_is_refused),
        T(test_socket_with_both_path_and_fd_is_refused),
        T(test_duplicate_chardev_id_is_refused),
        T(test_no_monitor_is_refused),
        T(test_old_server_nowait_spelling_is_accepted),
        T(test_socket_defaults_are_qemus_client_and_wait),
        T(test_monitor_may_come_before_its_chardev),
        T(test_qmp_shortcut_makes_a_monitor),
        T(test_path_with_doubled_comma_keeps_the_comma),
        T(test_double_dash_spellings_are_accepted),
        T(test_name_takes_qemu_items),
        T(test_run_with_sets_chroot_and_user),
        T(test_sandbox_is_recorded),
        T(test_ignored_options_are_reported_once_on_one_line),
        T(test_nothing_ignored_reports_nothing),
        T(test_unused_chardevs_and_machine_extras_are_ignored),
        T(test_memory_sizes_take_suffixes),
        T(test_memory_maxmem_and_slots_are_kept),
        T(test_maxmem_below_size_or_in_bytes_is_refused),
        T(test_max_ram_below_4g_defaults_to_hvm_below_4g_ram_end),
        T(test_max_ram_below_4g_takes_bytes_and_suffixes),
        T(test_max_ram_below_4g_must_be_page_aligned),
        T(test_max_ram_below_4g_above_4g_is_refused),
        T(test_help_and_version_return_1),
        T(test_usage_and_version_texts),
        T(test_log_level_option),
        T(test_no_modified_memory_is_a_debug_switch),
        T(test_config_free_is_idempotent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
