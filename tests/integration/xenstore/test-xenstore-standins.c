/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-xenstore-standins: the stand-in libxenevtchn.so.1 and
 * libxengnttab.so.1 of $(BUILD)/sim, loaded with dlopen() the way the
 * dynamic linker loads them into xenstored: symbols looked up by version
 * node, then the event-channel and grant semantics xenstored relies on.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#ifndef XS_TEST_BUILD
#define XS_TEST_BUILD "build"
#endif

static void *evtchn_lib, *gnttab_lib;
static char tmp_dir[PATH_MAX];

/* Symbol @name at version @ver, or the test fails. */
static void *sym(void *lib, const char *name, const char *ver)
{
    void *p = dlvsym(lib, name, ver);

    if (!p)
        fail_msg("%s@%s not exported: %s", name, ver, dlerror());
    return p;
}

#define EV(name) ((__typeof__(&name))sym(evtchn_lib, #name, "VERS_1.0"))
#define GT(name) ((__typeof__(&name))sym(gnttab_lib, #name, "VERS_1.0"))

static void *open_lib(const char *name)
{
    const char *b = getenv("BUILD");
    char path[PATH_MAX];
    void *h;

    snprintf(path, sizeof(path), "%s/sim/%s", b && *b ? b : XS_TEST_BUILD,
             name);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fprintf(stderr, "test-xenstore-standins: %s\n", dlerror());
    return h;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/xs-standins.XXXXXX");
    if (!mkdtemp(tmp_dir))
        return -1;
    /* A namespace of our own: no event reaches another simulator. */
    setenv("XENSIM_EVTCHN_NS", tmp_dir, 1);
    setenv("XENSIM_GNTTAB_DIR", tmp_dir, 1);
    setenv("XENSIM_DOMID", "0", 1);
    evtchn_lib = open_lib("libxenevtchn.so.1");
    gnttab_lib = open_lib("libxengnttab.so.1");
    return evtchn_lib && gnttab_lib ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (evtchn_lib)
        dlclose(evtchn_lib);
    if (gnttab_lib)
        dlclose(gnttab_lib);
    nftw(tmp_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, ms) == 1;
}

static void test_evtchn_exports_debian_version_nodes(void **state)
{
    static const char *const v10[] = {
        "xenevtchn_open", "xenevtchn_close", "xenevtchn_fd",
        "xenevtchn_notify", "xenevtchn_bind_unbound_port",
        "xenevtchn_bind_interdomain", "xenevtchn_bind_virq",
        "xenevtchn_unbind", "xenevtchn_pending", "xenevtchn_unmask",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v10) / sizeof(v10[0]); i++)
        sym(evtchn_lib, v10[i], "VERS_1.0");
    sym(evtchn_lib, "xenevtchn_restrict", "VERS_1.1");
    sym(evtchn_lib, "xenevtchn_fdopen", "VERS_1.2");
}

static void test_gnttab_exports_debian_version_nodes(void **state)
{
    (void)state;
    sym(gnttab_lib, "xengnttab_open", "VERS_1.0");
    sym(gnttab_lib, "xengnttab_map_grant_ref", "VERS_1.0");
    sym(gnttab_lib, "xengnttab_set_max_grants", "VERS_1.0");
    sym(gnttab_lib, "xengntshr_share_pages", "VERS_1.0");
    sym(gnttab_lib, "xengnttab_grant_copy", "VERS_1.1");
    sym(gnttab_lib, "xengnttab_fd", "VERS_1.2");
    sym(gnttab_lib, "xengnttab_dmabuf_imp_release", "VERS_1.2");
}

static void test_notify_crosses_an_interdomain_channel_both_ways(void **state)
{
    xenevtchn_handle *a = EV(xenevtchn_open)(NULL, 0);
    xenevtchn_handle *b = EV(xenevtchn_open)(NULL, 0);
    int pa, pb;

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    pa = EV(xenevtchn_bind_unbound_port)(a, 0);
    assert_true(pa > 0);
    pb = EV(xenevtchn_bind_interdomain)(b, 0, (evtchn_port_t)pa);
    assert_true(pb > 0);

    assert_false(readable(EV(xenevtchn_fd)(b), 0));
    assert_int_equal(EV(xenevtchn_notify)(a, (evtchn_port_t)pa), 0);
    assert_true(readable(EV(xenevtchn_fd)(b), 1000));
    assert_int_equal(EV(xenevtchn_pending)(b), pb);
    assert_int_equal(EV(xenevtchn_unmask)(b, (evtchn_port_t)pb), 0);

    assert_int_equal(EV(xenevtchn_notify)(b, (evtchn_port_t)pb), 0);
    assert_true(readable(EV(xenevtchn_fd)(a), 1000));
    assert_int_equal(EV(xenevtchn_pending)(a), pa);

    EV(xenevtchn_close)(a);
    EV(xenevtchn_close)(b);
}

static void test_pending_port_stays_masked_until_unmask(void **state)
{
    xenevtchn_handle *a = EV(xenevtchn_open)(NULL, 0);
    xenevtchn_handle *b = EV(xenevtchn_open)(NULL, 0);
    int pa, pb, fd;

    (void)state;
    pa = EV(xenevtchn_bind_unbound_port)(a, 0);
    pb = EV(xenevtchn_bind_interdomain)(b, 0, (evtchn_port_t)pa);
    fd = EV(xenevtchn_fd)(b);
    assert_int_equal(EV(xenevtchn_notify)(a, (evtchn_port_t)pa), 0);
    assert_int_equal(EV(xenevtchn_notify)(a, (evtchn_port_t)pa), 0);
    assert_true(readable(fd, 1000));
    assert_int_equal(EV(xenevtchn_pending)(b), pb);
    /* Coalesced, and masked: nothing more until unmask... */
    assert_int_equal(EV(xenevtchn_notify)(a, (evtchn_port_t)pa), 0);
    assert_false(readable(fd, 50));
    /* ...which delivers the event that latched meanwhile. */
    assert_int_equal(EV(xenevtchn_unmask)(b, (evtchn_port_t)pb), 0);
    assert_true(readable(fd, 1000));
    assert_int_equal(EV(xenevtchn_pending)(b), pb);
    assert_int_equal(EV(xenevtchn_unmask)(b, (evtchn_port_t)pb), 0);
    assert_false(readable(fd, 50));
    EV(xenevtchn_close)(a);
    EV(xenevtchn_close)(b);
}

static void test_pending_without_event_on_nonblocking_fd_is_eagain(void **state)
{
    xenevtchn_handle *a = EV(xenevtchn_open)(NULL, 0);
    int fd = EV(xenevtchn_fd)(a);

    (void)state;
    assert_true(EV(xenevtchn_bind_virq)(a, 7) > 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    errno = 0;
    assert_int_equal(EV(xenevtchn_pending)(a), -1);
    assert_int_equal(errno, EAGAIN);
    EV(xenevtchn_close)(a);
}

static void test_a_remote_port_can_be_bound_once(void **state)
{
    xenevtchn_handle *a = EV(xenevtchn_open)(NULL, 0);
    xenevtchn_handle *b = EV(xenevtchn_open)(NULL, 0);
    int p;

    (void)state;
    p = EV(xenevtchn_bind_interdomain)(a, 42, 3);
    assert_true(p > 0);
    assert_int_equal(EV(xenevtchn_bind_interdomain)(b, 42, 3), -1);
    assert_int_equal(errno, EBUSY);
    /* Free again once unbound. */
    assert_int_equal(EV(xenevtchn_unbind)(a, (evtchn_port_t)p), 0);
    assert_true(EV(xenevtchn_bind_interdomain)(b, 42, 3) > 0);
    EV(xenevtchn_close)(a);
    EV(xenevtchn_close)(b);
}

static void test_a_virq_can_be_bound_once(void **state)
{
    xenevtchn_handle *a = EV(xenevtchn_open)(NULL, 0);
    xenevtchn_handle *b = EV(xenevtchn_open)(NULL, 0);

    (void)state;
    assert_true(EV(xenevtchn_bind_virq)(a, 3) > 0);
    assert_int_equal(EV(xenevtchn_bind_virq)(b, 3), -1);
    assert_int_equal(errno, EEXIST);
    EV(xenevtchn_close)(a);
    EV(xenevtchn_close)(b);
}

static void test_grant_that_was_never_made_cannot_be_mapped(void **state)
{
    xengnttab_handle *g = GT(xengnttab_open)(NULL, 0);

    (void)state;
    assert_non_null(g);
    assert_null(GT(xengnttab_map_grant_ref)(g, 3, 1, PROT_READ | PROT_WRITE));
    assert_int_equal(errno, EINVAL);
    GT(xengnttab_close)(g);
}

static void test_granted_page_is_shared_between_mappings(void **state)
{
    xengnttab_handle *g1 = GT(xengnttab_open)(NULL, 0);
    xengnttab_handle *g2 = GT(xengnttab_open)(NULL, 0);
    char path[PATH_MAX + 16];
    char *m1, *m2;
    int fd;

    (void)state;
    snprintf(path, sizeof(path), "%s/4.1", tmp_dir);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    close(fd);
    m1 = GT(xengnttab_map_grant_ref)(g1, 4, 1, PROT_READ | PROT_WRITE);
    m2 = GT(xengnttab_map_grant_ref)(g2, 4, 1, PROT_READ | PROT_WRITE);
    assert_non_null(m1);
    assert_non_null(m2);
    strcpy(m1 + 100, "ring");
    assert_string_equal(m2 + 100, "ring");
    assert_int_equal(GT(xengnttab_unmap)(g1, m1, 1), 0);
    assert_int_equal(GT(xengnttab_unmap)(g2, m2, 1), 0);
    assert_int_equal(GT(xengnttab_set_max_grants)(g1, 32752), 0);
    GT(xengnttab_close)(g1);
    GT(xengnttab_close)(g2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_evtchn_exports_debian_version_nodes),
        cmocka_unit_test(test_gnttab_exports_debian_version_nodes),
        cmocka_unit_test(test_notify_crosses_an_interdomain_channel_both_ways),
        cmocka_unit_test(test_pending_port_stays_masked_until_unmask),
        cmocka_unit_test(test_pending_without_event_on_nonblocking_fd_is_eagain),
        cmocka_unit_test(test_a_remote_port_can_be_bound_once),
        cmocka_unit_test(test_a_virq_can_be_bound_once),
        cmocka_unit_test(test_grant_that_was_never_made_cannot_be_mapped),
        cmocka_unit_test(test_granted_page_is_shared_between_mappings),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
