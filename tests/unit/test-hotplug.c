/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests for RAM hotplug (hotplug/): the C interface (add, remove,
 * restore, validation, rollback) and the xenstore protocol.
 *
 * Guest memory and the mapcache run on the one-domain fake of
 * tests/unit/xen-fake.c; populate, decrease reservation and the domain's
 * memory limits are recorders (--wrap=xc_domain_populate_physmap_exact,
 * ...); xenstore is an
 * in-memory store behind --wrap=xs_open, xs_read, ... that applies
 * owners, inherited permissions and watches the way xenstored does, and
 * can write as a guest.
 *
 * Layout of the test guest (guest-physical):
 *
 *   [0, 256 MiB)                 RAM  'xen.ram'
 *   [1 GiB, 1 GiB + 64 MiB)      reserved 'test hole' (configuration)
 *   [1.5 GiB, 1.5 GiB + 1 MiB)   MMIO 'mmio'
 *   [128 MiB, 2 GiB)             the hotplug window (overlaps RAM on
 *                                purpose: the checks must see it)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotplug/hotplug.h"
#include "memory/access.h"
#include "tests/unit/xen-fake.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)

#define RAM_SIZE     (256 * MiB)
#define WIN_START    (128 * MiB)
#define WIN_END      (2 * GiB)
#define HOLE_START   (1 * GiB)
#define HOLE_END     (HOLE_START + 64 * MiB)
#define MMIO_START   (GiB + 512 * MiB)
#define GUEST_PAGES  (WIN_END >> 12)
#define MEMDIR       "/local/domain/0/device-model/7/memory"

/* ---- Xen recorders --------------------------------------------------------- */

static struct {
    int populate_calls, depopulate_calls;
    uint64_t populate_gfn, populate_n;
    uint64_t depopulate_gfn, depopulate_n;
    int populate_fail_at;       /* fail the Nth call (1-based), 0: never */
    int populate_ret;
    void (*on_populate)(void);  /* runs inside the call: a racing writer */
    uint64_t tot_pages, max_pages;
    int info_ret;
} xr;

/*
 * Recorded at the hypercalls, under xen_populate_all() / xen_depopulate(),
 * so a call is one chunk of the range, as Xen sees it.
 */
int __wrap_xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t domid,
                                            unsigned long nr,
                                            unsigned int order,
                                            unsigned int flags,
                                            xen_pfn_t *gfns);
int __wrap_xc_domain_populate_physmap_exact(xc_interface *xch, uint32_t domid,
                                            unsigned long nr,
                                            unsigned int order,
                                            unsigned int flags,
                                            xen_pfn_t *gfns)
{
    (void)xch; (void)domid; (void)order; (void)flags;
    xr.populate_calls++;
    xr.populate_gfn = gfns[0];
    xr.populate_n = nr;
    if (xr.on_populate) {
        xr.on_populate();
    }
    if (xr.populate_fail_at && xr.populate_calls == xr.populate_fail_at) {
        errno = -xr.populate_ret;
        return -1;
    }
    fake_set_populated(gfns[0], nr, true);
    xr.tot_pages += nr;
    return 0;
}

int __wrap_xc_domain_decrease_reservation_exact(xc_interface *xch,
                                                uint32_t domid,
                                                unsigned long nr,
                                                unsigned int order,
                                                xen_pfn_t *gfns);
int __wrap_xc_domain_decrease_reservation_exact(xc_interface *xch,
                                                uint32_t domid,
                                                unsigned long nr,
                                                unsigned int order,
                                                xen_pfn_t *gfns)
{
    (void)xch; (void)domid; (void)order;
    xr.depopulate_calls++;
    xr.depopulate_gfn = gfns[0];
    xr.depopulate_n = nr;
    /* As Xen: nothing to release in a range never populated. */
    if (xr.populate_fail_at && gfns[0] == xr.populate_gfn &&
        xr.populate_calls == xr.populate_fail_at) {
        errno = EINVAL;
        return -1;
    }
    fake_set_populated(gfns[0], nr, false);
    xr.tot_pages -= nr;
    return 0;
}

int __wrap_xen_domain_info(XenHandles *xh, XenDomainInfo *info);
int __wrap_xen_domain_info(XenHandles *xh, XenDomainInfo *info)
{
    (void)xh;
    if (xr.info_ret) {
        return xr.info_ret;
    }
    *info = (XenDomainInfo) { .max_pages = xr.max_pages,
                              .tot_pages = xr.tot_pages, .hvm = true };
    return 0;
}

/* ---- an in-memory xenstore ------------------------------------------------- */

#define FX_NODES  512
#define FX_EVENTS 256

typedef struct FxNode {
    char *path, *value;
    struct xs_permissions perms[4];
    unsigned int nperms;
} FxNode;

static struct {
    FxNode nodes[FX_NODES];
    char *ev_path[FX_EVENTS], *ev_token[FX_EVENTS];
    unsigned int nev;
    char *watch_path, *watch_token;
    unsigned int caller;        /* the domain a write comes from */
    bool open_fails;
    int efd;
    int writes;
} fx;

static char fx_handle;

static FxNode *fx_find(const char *path)
{
    for (int i = 0; i < FX_NODES; i++) {
        if (fx.nodes[i].path && !strcmp(fx.nodes[i].path, path)) {
            return &fx.nodes[i];
        }
    }
    return NULL;
}

static void fx_parent(const char *path, char *buf, size_t len)
{
    char *slash;

    snprintf(buf, len, "%s", path);
    slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = 0;
    } else {
        snprintf(buf, len, "/");
    }
}

static void fx_event(const char *path)
{
    size_t n;

    if (!fx.watch_path || fx.nev == FX_EVENTS) {
        return;
    }
    n = strlen(fx.watch_path);
    if (strncmp(path, fx.watch_path, n) || (path[n] && path[n] != '/')) {
        return;
    }
    fx.ev_path[fx.nev] = strdup(path);
    fx.ev_token[fx.nev] = strdup(fx.watch_token);
    fx.nev++;
}

/* Whether the caller may write under @path (xenstored's rules, abridged). */
static bool fx_may_write(const char *path)
{
    char p[256];
    FxNode *n;

    if (fx.caller == 0) {
        return true;
    }
    snprintf(p, sizeof(p), "%s", path);
    while (!(n = fx_find(p)) && strcmp(p, "/")) {
        char q[256];

        fx_parent(p, q, sizeof(q));
        snprintf(p, sizeof(p), "%s", q);
    }
    if (!n) {
        return false;
    }
    if (n->perms[0].id == fx.caller) {
        return true;
    }
    for (unsigned int i = 1; i < n->nperms; i++) {
        if (n->perms[i].id == fx.caller) {
            return n->perms[i].perms & XS_PERM_WRITE;
        }
    }
    return n->perms[0].perms & XS_PERM_WRITE;
}

/* Create @path (and its parents), inheriting permissions. */
static FxNode *fx_create(const char *path)
{
    FxNode *n = fx_find(path), *parent;
    char p[256];

    if (n) {
        return n;
    }
    fx_parent(path, p, sizeof(p));
    parent = strcmp(p, "/") ? fx_create(p) : NULL;
    for (int i = 0; i < FX_NODES; i++) {
        if (!fx.nodes[i].path) {
            n = &fx.nodes[i];
            break;
        }
    }
    assert_non_null(n);
    n->path = strdup(path);
    n->value = strdup("");
    if (parent) {
        memcpy(n->perms, parent->perms, sizeof(n->perms));
        n->nperms = parent->nperms;
    } else {
        n->perms[0] = (struct xs_permissions) { 0, XS_PERM_NONE };
        n->nperms = 1;
    }
    if (fx.caller) {
        n->perms[0].id = fx.caller;  /* a guest owns what it creates */
    }
    return n;
}

static void fx_reset(void)
{
    for (int i = 0; i < FX_NODES; i++) {
        free(fx.nodes[i].path);
        free(fx.nodes[i].value);
    }
    for (unsigned int i = 0; i < fx.nev; i++) {
        free(fx.ev_path[i]);
        free(fx.ev_token[i]);
    }
    free(fx.watch_path);
    free(fx.watch_token);
    memset(&fx, 0, sizeof(fx));
    fx.efd = -1;
}

struct xs_handle *__wrap_xs_open(unsigned long flags);
struct xs_handle *__wrap_xs_open(unsigned long flags)
{
    (void)flags;
    if (fx.open_fails) {
        errno = ENOENT;
        return NULL;
    }
    if (fx.efd < 0) {
        fx.efd = eventfd(0, EFD_CLOEXEC);
    }
    return (struct xs_handle *)&fx_handle;
}

void __wrap_xs_close(struct xs_handle *h);
void __wrap_xs_close(struct xs_handle *h)
{
    assert_ptr_equal(h, &fx_handle);
    if (fx.efd >= 0) {
        close(fx.efd);
        fx.efd = -1;
    }
}

void *__wrap_xs_read(struct xs_handle *h, xs_transaction_t t,
                     const char *path, unsigned int *len);
void *__wrap_xs_read(struct xs_handle *h, xs_transaction_t t,
                     const char *path, unsigned int *len)
{
    FxNode *n = fx_find(path);

    (void)h;
    (void)t;
    if (!n) {
        errno = ENOENT;
        return NULL;
    }
    if (len) {
        *len = strlen(n->value);
    }
    return strdup(n->value);
}

bool __wrap_xs_write(struct xs_handle *h, xs_transaction_t t,
                     const char *path, const void *data, unsigned int len);
bool __wrap_xs_write(struct xs_handle *h, xs_transaction_t t,
                     const char *path, const void *data, unsigned int len)
{
    FxNode *n;

    (void)h;
    (void)t;
    if (!fx_may_write(path)) {
        errno = EACCES;
        return false;
    }
    n = fx_create(path);
    free(n->value);
    n->value = strndup(data, len);
    fx.writes++;
    fx_event(path);
    return true;
}

bool __wrap_xs_mkdir(struct xs_handle *h, xs_transaction_t t,
                     const char *path);
bool __wrap_xs_mkdir(struct xs_handle *h, xs_transaction_t t,
                     const char *path)
{
    (void)h;
    (void)t;
    if (!fx_find(path)) {
        fx_create(path);
        fx_event(path);
    }
    return true;
}

bool __wrap_xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path);
bool __wrap_xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    size_t len = strlen(path);
    bool found = false;

    (void)h;
    (void)t;
    for (int i = 0; i < FX_NODES; i++) {
        char *p = fx.nodes[i].path;

        if (p && !strncmp(p, path, len) && (!p[len] || p[len] == '/')) {
            free(fx.nodes[i].path);
            free(fx.nodes[i].value);
            fx.nodes[i].path = fx.nodes[i].value = NULL;
            found = true;
        }
    }
    if (!found) {
        errno = ENOENT;
        return false;
    }
    fx_event(path);
    return true;
}

char **__wrap_xs_directory(struct xs_handle *h, xs_transaction_t t,
                           const char *path, unsigned int *num);
char **__wrap_xs_directory(struct xs_handle *h, xs_transaction_t t,
                           const char *path, unsigned int *num)
{
    size_t len = strlen(path), total = 0;
    unsigned int n = 0;
    char **vec, *strs;

    (void)h;
    (void)t;
    if (!fx_find(path)) {
        errno = ENOENT;
        return NULL;
    }
    for (int i = 0; i < FX_NODES; i++) {
        char *p = fx.nodes[i].path;

        if (p && !strncmp(p, path, len) && p[len] == '/' &&
            !strchr(p + len + 1, '/')) {
            n++;
            total += strlen(p + len + 1) + 1;
        }
    }
    vec = malloc((n + 1) * sizeof(char *) + total + 1);
    strs = (char *)(vec + n + 1);
    n = 0;
    for (int i = 0; i < FX_NODES; i++) {
        char *p = fx.nodes[i].path;

        if (p && !strncmp(p, path, len) && p[len] == '/' &&
            !strchr(p + len + 1, '/')) {
            vec[n++] = strs;
            strcpy(strs, p + len + 1);
            strs += strlen(strs) + 1;
        }
    }
    *num = n;
    return vec;
}

struct xs_permissions *__wrap_xs_get_permissions(struct xs_handle *h,
                                                 xs_transaction_t t,
                                                 const char *path,
                                                 unsigned int *num);
struct xs_permissions *__wrap_xs_get_permissions(struct xs_handle *h,
                                                 xs_transaction_t t,
                                                 const char *path,
                                                 unsigned int *num)
{
    FxNode *n = fx_find(path);
    struct xs_permissions *p;

    (void)h;
    (void)t;
    if (!n) {
        errno = ENOENT;
        return NULL;
    }
    p = malloc(n->nperms * sizeof(*p));
    memcpy(p, n->perms, n->nperms * sizeof(*p));
    *num = n->nperms;
    return p;
}

bool __wrap_xs_set_permissions(struct xs_handle *h, xs_transaction_t t,
                               const char *path, struct xs_permissions *perms,
                               unsigned int num);
bool __wrap_xs_set_permissions(struct xs_handle *h, xs_transaction_t t,
                               const char *path, struct xs_permissions *perms,
                               unsigned int num)
{
    FxNode *n = fx_find(path);

    (void)h;
    (void)t;
    if (!n || num == 0 || num > 4) {
        errno = n ? EINVAL : ENOENT;
        return false;
    }
    memcpy(n->perms, perms, num * sizeof(*perms));
    n->nperms = num;
    fx_event(path);
    return true;
}

bool __wrap_xs_watch(struct xs_handle *h, const char *path,
                     const char *token);
bool __wrap_xs_watch(struct xs_handle *h, const char *path,
                     const char *token)
{
    (void)h;
    assert_null(fx.watch_path);
    fx.watch_path = strdup(path);
    fx.watch_token = strdup(token);
    fx_event(path);             /* xenstored fires a new watch once */
    return true;
}

bool __wrap_xs_unwatch(struct xs_handle *h, const char *path,
                       const char *token);
bool __wrap_xs_unwatch(struct xs_handle *h, const char *path,
                       const char *token)
{
    (void)h;
    assert_string_equal(path, fx.watch_path);
    assert_string_equal(token, fx.watch_token);
    free(fx.watch_path);
    free(fx.watch_token);
    fx.watch_path = fx.watch_token = NULL;
    return true;
}

/* Transactions: one at a time, never in conflict (the store is ours). */
xs_transaction_t __wrap_xs_transaction_start(struct xs_handle *h);
xs_transaction_t __wrap_xs_transaction_start(struct xs_handle *h)
{
    (void)h;
    return 1;
}

bool __wrap_xs_transaction_end(struct xs_handle *h, xs_transaction_t t,
                               bool abort);
bool __wrap_xs_transaction_end(struct xs_handle *h, xs_transaction_t t,
                               bool abort)
{
    (void)h;
    (void)abort;
    assert_int_equal(t, 1);
    return true;
}

int __wrap_xs_fileno(struct xs_handle *h);
int __wrap_xs_fileno(struct xs_handle *h)
{
    (void)h;
    return fx.efd;
}

char **__wrap_xs_check_watch(struct xs_handle *h);
char **__wrap_xs_check_watch(struct xs_handle *h)
{
    char **vec;
    size_t lp, lt;

    (void)h;
    if (fx.nev == 0) {
        errno = EAGAIN;
        return NULL;
    }
    lp = strlen(fx.ev_path[0]) + 1;
    lt = strlen(fx.ev_token[0]) + 1;
    vec = malloc(2 * sizeof(char *) + lp + lt);
    vec[XS_WATCH_PATH] = (char *)(vec + 2);
    vec[XS_WATCH_TOKEN] = vec[XS_WATCH_PATH] + lp;
    memcpy(vec[XS_WATCH_PATH], fx.ev_path[0], lp);
    memcpy(vec[XS_WATCH_TOKEN], fx.ev_token[0], lt);
    free(fx.ev_path[0]);
    free(fx.ev_token[0]);
    memmove(fx.ev_path, fx.ev_path + 1, (fx.nev - 1) * sizeof(char *));
    memmove(fx.ev_token, fx.ev_token + 1, (fx.nev - 1) * sizeof(char *));
    fx.nev--;
    return vec;
}

/* The toolstack (or, with @as, another domain) writes a key of a slot. */
static bool fx_put_as(unsigned int as, const char *slot, const char *key,
                      const char *value)
{
    char path[256];
    bool ok;

    snprintf(path, sizeof(path), MEMDIR "/%s/%s", slot, key);
    fx.caller = as;
    ok = __wrap_xs_write(NULL, XBT_NULL, path, value, strlen(value));
    fx.caller = 0;
    return ok;
}

static void fx_put(const char *slot, const char *key, const char *value)
{
    assert_true(fx_put_as(0, slot, key, value));
}

/* memory/<slot>/<key>, or NULL. */
static const char *fx_get(const char *slot, const char *key)
{
    char path[256];
    FxNode *n;

    snprintf(path, sizeof(path), MEMDIR "/%s/%s", slot, key);
    n = fx_find(path);
    return n ? n->value : NULL;
}

/* ---- the guest ------------------------------------------------------------- */

typedef struct Guest {
    XenHandles *xh;
    RAMList ram;
    MemoryContext ctx;
    AddressSpace as;
    MemoryRegion root, ram_mr, mmio;
    RAMBlock *ram_block;
    MapCache *mc;
    GuestMemory gm;
    Hotplug *hp;
    HotplugConfig cfg;
    HotplugRange hole;

    /* What notifiers and listeners saw of hot-plugged memory. */
    RAMBlockNotifier notifier;
    MemoryListener listener;
    int blocks_added, blocks_removed;
    int regions_added, regions_deleted;
    uint64_t last_region_gpa;
    char log[1024];
    char debug[1024];           /* the last debug trace */
} Guest;

static Guest *the_guest;

static uint64_t io_read(void *o, uint64_t a, unsigned int s)
{
    (void)o;
    (void)a;
    (void)s;
    return 0;
}

static const MemoryRegionOps ops = { .read = io_read };

static void on_added(RAMBlockNotifier *n, RAMBlock *block)
{
    Guest *g = caa_container_of(n, Guest, notifier);

    if (block->flags & RAM_HOTPLUGGED) {
        g->blocks_added++;
        /* Dirty bitmaps already cover the block when we are told. */
        assert_true(dirty_memory_pages(&g->ram.dirty) >=
                    (block->offset + block->max_length) >> 12);
    }
}

static void on_removed(RAMBlockNotifier *n, RAMBlock *block)
{
    Guest *g = caa_container_of(n, Guest, notifier);

    if (block->flags & RAM_HOTPLUGGED) {
        g->blocks_removed++;
    }
}

static void on_region_add(MemoryListener *l, MemoryRegionSection *s)
{
    Guest *g = caa_container_of(l, Guest, listener);
    RAMBlock *b = memory_region_ram_block(s->mr);

    if (b && (b->flags & RAM_HOTPLUGGED)) {
        g->regions_added++;
        g->last_region_gpa = s->offset_within_address_space;
    }
}

static void on_region_del(MemoryListener *l, MemoryRegionSection *s)
{
    Guest *g = caa_container_of(l, Guest, listener);
    RAMBlock *b = memory_region_ram_block(s->mr);

    if (b && (b->flags & RAM_HOTPLUGGED)) {
        g->regions_deleted++;
    }
}

static void on_log(void *opaque, const char *msg)
{
    Guest *g = opaque;

    snprintf(g->log, sizeof(g->log), "%s", msg);
}

static void on_debug(void *opaque, const char *msg)
{
    Guest *g = opaque;

    snprintf(g->debug, sizeof(g->debug), "%s", msg);
}

static Hotplug *hp_start(Guest *g)
{
    char err[256] = "";

    assert_int_equal(hotplug_new(&g->cfg, &g->hp, err, sizeof(err)), 0);
    return g->hp;
}

static void guest_build(Guest *g)
{
    memset(&xr, 0, sizeof(xr));
    xr.tot_pages = RAM_SIZE >> 12;
    xr.max_pages = (RAM_SIZE + GiB) >> 12;
    fx_reset();
    assert_int_equal(fake_xen_init(GUEST_PAGES), 0);
    /* Only RAM is populated, as the toolstack leaves it. */
    fake_set_populated(RAM_SIZE >> 12, GUEST_PAGES - (RAM_SIZE >> 12), false);
    g->xh = fake_xen_open();
    assert_non_null(g->xh);
    assert_int_equal(ram_list_init(&g->ram), 0);
    assert_int_equal(ram_block_add(&g->ram, "xen.ram", RAM_SIZE, RAM_SIZE,
                                   NULL, 0, NULL, &g->ram_block), 0);
    assert_int_equal(memory_context_init(&g->ctx, &g->ram), 0);
    assert_int_equal(memory_region_init(&g->root, &g->ctx, "system", 0), 0);
    assert_int_equal(memory_region_init_ram(&g->ram_mr, &g->ctx, "xen.ram",
                                            g->ram_block), 0);
    assert_int_equal(memory_region_init_io(&g->mmio, &g->ctx, "mmio", &ops,
                                           NULL, MiB), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, 0, &g->ram_mr), 0);
    assert_int_equal(memory_region_add_subregion(&g->root, MMIO_START,
                                                 &g->mmio), 0);
    assert_int_equal(address_space_init(&g->as, &g->ctx, &g->root, "memory"),
                     0);
    assert_int_equal(mapcache_new(g->xh, NULL, &g->mc), 0);
    g->gm = (GuestMemory) { .as = &g->as, .ram = &g->ram, .mc = g->mc };

    g->notifier = (RAMBlockNotifier) { .ram_block_added = on_added,
                                       .ram_block_removed = on_removed };
    ram_block_notifier_add(&g->ram, &g->notifier);
    g->listener = (MemoryListener) { .region_add = on_region_add,
                                     .region_del = on_region_del,
                                     .name = "test" };
    assert_int_equal(memory_listener_register(&g->listener, &g->as), 0);

    g->hole = (HotplugRange) { HOLE_START, HOLE_END, "test hole" };
    g->cfg = (HotplugConfig) {
        .xh = g->xh, .ram = &g->ram, .ctx = &g->ctx, .as = &g->as,
        .root = &g->root, .mc = g->mc, .domid = FAKE_DOMID,
        .window_start = WIN_START, .window_end = WIN_END,
        .align = 64 * MiB, .nr_slots = 8,
        .reserved = &g->hole, .nr_reserved = 1,
        .log = on_log, .log_opaque = g, .debug = on_debug,
    };
}

static void guest_destroy(Guest *g)
{
    hotplug_free(g->hp);
    g->hp = NULL;
    assert_int_equal(memory_listener_unregister(&g->listener), 0);
    ram_block_notifier_remove(&g->ram, &g->notifier);
    assert_int_equal(address_space_destroy(&g->as), 0);
    assert_int_equal(memory_region_del_subregion(&g->root, &g->ram_mr), 0);
    assert_int_equal(memory_region_del_subregion(&g->root, &g->mmio), 0);
    assert_int_equal(memory_region_destroy(&g->ram_mr), 0);
    assert_int_equal(memory_region_destroy(&g->mmio), 0);
    assert_int_equal(memory_region_destroy(&g->root), 0);
    mapcache_destroy(g->mc);
    synchronize_rcu();
    assert_int_equal(memory_context_destroy(&g->ctx), 0);
    ram_list_destroy(&g->ram);
    xen_close(g->xh);
    fake_xen_fini();
    fx_reset();
}

/* Without xenstore: the C interface alone. */
static int setup(void **state)
{
    Guest *g = calloc(1, sizeof(*g));

    guest_build(g);
    g->cfg.no_xenstore = true;
    hp_start(g);
    the_guest = g;
    *state = g;
    return 0;
}

/* With the in-memory xenstore. */
static int setup_xs(void **state)
{
    Guest *g = calloc(1, sizeof(*g));

    guest_build(g);
    hp_start(g);
    the_guest = g;
    *state = g;
    return 0;
}

static int teardown(void **state)
{
    Guest *g = *state;

    guest_destroy(g);
    free(g);
    return 0;
}

/* What a refused request must leave exactly as it was. */
typedef struct Snapshot {
    uint32_t ram_version;
    unsigned int view_ranges;
    int populate_calls, depopulate_calls;
    uint64_t tot_pages;
    int blocks_added, blocks_removed, regions_added, regions_deleted;
    HotplugStats st;
} Snapshot;

static Snapshot snap(Guest *g)
{
    Snapshot s = { .ram_version = __atomic_load_n(&g->ram.version,
                                                  __ATOMIC_ACQUIRE),
                   .populate_calls = xr.populate_calls,
                   .depopulate_calls = xr.depopulate_calls,
                   .tot_pages = xr.tot_pages,
                   .blocks_added = g->blocks_added,
                   .blocks_removed = g->blocks_removed,
                   .regions_added = g->regions_added,
                   .regions_deleted = g->regions_deleted };

    rcu_read_lock();
    s.view_ranges = address_space_get_flatview(&g->as)->nr;
    rcu_read_unlock();
    hotplug_get_stats(g->hp, &s.st);
    return s;
}

static void assert_unchanged(Guest *g, const Snapshot *a)
{
    Snapshot b = snap(g);

    assert_int_equal(a->ram_version, b.ram_version);
    assert_int_equal(a->view_ranges, b.view_ranges);
    assert_int_equal(a->populate_calls, b.populate_calls);
    assert_int_equal(a->depopulate_calls, b.depopulate_calls);
    assert_int_equal(a->tot_pages, b.tot_pages);
    assert_int_equal(a->blocks_added, b.blocks_added);
    assert_int_equal(a->blocks_removed, b.blocks_removed);
    assert_int_equal(a->regions_added, b.regions_added);
    assert_int_equal(a->regions_deleted, b.regions_deleted);
    assert_int_equal(a->st.plugged_bytes, b.st.plugged_bytes);
    assert_int_equal(a->st.plugged_slots, b.st.plugged_slots);
}

/* hotplug_add that must fail with @ret and an error mentioning @what. */
static void refuse_add(Guest *g, uint32_t slot, uint64_t gpa, uint64_t size,
                       int ret, const char *what)
{
    Snapshot s = snap(g);
    char err[256] = "";

    assert_int_equal(hotplug_add(g->hp, slot, gpa, size, NULL, err,
                                 sizeof(err)), ret);
    if (!strstr(err, what)) {
        fail_msg("error \"%s\" does not mention \"%s\"", err, what);
    }
    assert_unchanged(g, &s);
    assert_int_equal(s.st.failures + 1, snap(g).st.failures);
}

static void add_ok(Guest *g, uint32_t slot, uint64_t gpa, uint64_t size)
{
    char err[256] = "";
    int ret = hotplug_add(g->hp, slot, gpa, size, NULL, err, sizeof(err));

    if (ret) {
        fail_msg("add slot %u: %d: %s", slot, ret, err);
    }
}

/* The FlatRange at @gpa, or NULL (copy, outside RCU). */
static bool lookup(Guest *g, uint64_t gpa, FlatRange *out)
{
    const FlatRange *fr;

    rcu_read_lock();
    fr = address_space_lookup(&g->as, gpa, NULL, NULL);
    if (fr) {
        *out = *fr;
    }
    rcu_read_unlock();
    return fr != NULL;
}

/* ---- add ------------------------------------------------------------------- */

static void test_add_populates_and_maps_ram_at_the_requested_gpa(void **state)
{
    Guest *g = *state;
    uint64_t gpa = 512 * MiB, size = 64 * MiB;
    HotplugSlotInfo info;
    FlatRange fr;
    uint8_t buf[16] = "hot-plugged!";
    uint8_t back[16];

    add_ok(g, 3, gpa, size);
    /* Frames at gfn = gpa >> 12, not at the block's ram_addr. */
    assert_int_equal(xr.populate_calls, 1);
    assert_int_equal(xr.populate_gfn, gpa >> 12);
    assert_int_equal(xr.populate_n, size >> 12);
    assert_int_equal(hotplug_slot_info(g->hp, 3, &info), 0);
    assert_int_equal(info.gpa, gpa);
    assert_int_equal(info.size, size);
    assert_true(info.block->flags & RAM_HOTPLUGGED);
    assert_false(info.block->flags & RAM_XEN_POPULATE);
    assert_null(info.block->host);
    assert_string_equal(info.block->idstr, "xen.hotplug.3");
    assert_int_equal(hotplug_block_slot(g->hp, info.block), 3);
    assert_int_equal(hotplug_block_slot(g->hp, g->ram_block),
                     HOTPLUG_NO_SLOT);
    /* In the flat view, at gpa, backed by the block. */
    assert_true(lookup(g, gpa + size - 1, &fr));
    assert_true(flatrange_is_ram(&fr));
    assert_ptr_equal(memory_region_ram_block(fr.mr), info.block);
    assert_int_equal(fr.addr, gpa);
    assert_int_equal(fr.ram_addr, info.block->offset);
    /* Reachable through the mapcache, like all guest RAM. */
    assert_int_equal(guest_memory_write(&g->gm, gpa + size - 4096, buf,
                                        sizeof(buf)), 0);
    assert_int_equal(guest_memory_read(&g->gm, gpa + size - 4096, back,
                                       sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_memory_equal(fake_guest() + gpa + size - 4096, buf, sizeof(buf));
    assert_non_null(strstr(g->log, "slot 3: 64 MiB online at 0x20000000"));
}

static void test_new_block_is_dirty_for_every_client(void **state)
{
    Guest *g = *state;
    HotplugSlotInfo info;

    add_ok(g, 0, 256 * MiB, 8 * MiB);
    assert_int_equal(hotplug_slot_info(g->hp, 0, &info), 0);
    for (unsigned int c = 0; c < DIRTY_MEMORY_NUM; c++) {
        assert_int_equal(dirty_memory_all(&g->ram.dirty,
                                          info.block->offset >> 12,
                                          (8 * MiB) >> 12, c), 1);
    }
}

static void test_add_tells_notifiers_and_listeners(void **state)
{
    Guest *g = *state;

    add_ok(g, 1, 768 * MiB, 16 * MiB);
    assert_int_equal(g->blocks_added, 1);
    assert_int_equal(g->regions_added, 1);
    assert_int_equal(g->last_region_gpa, 768 * MiB);
}

static void test_auto_placement_skips_ram_hole_mmio_and_slots(void **state)
{
    Guest *g = *state;
    uint64_t gpa[3];
    char err[256];

    /* 64 MiB aligned: RAM ends at 256 MiB. */
    assert_int_equal(hotplug_add(g->hp, 0, HOTPLUG_AUTO, 700 * MiB, &gpa[0],
                                 err, sizeof(err)), 0);
    assert_int_equal(gpa[0], 256 * MiB);
    /* [256 MiB, 956 MiB) taken; next aligned start 960 MiB would cross
     * the hole at 1 GiB: placed after it. */
    assert_int_equal(hotplug_add(g->hp, 1, HOTPLUG_AUTO, 128 * MiB, &gpa[1],
                                 err, sizeof(err)), 0);
    assert_int_equal(gpa[1], HOLE_END);
    /* Small enough for the gap before the hole. */
    assert_int_equal(hotplug_add(g->hp, 2, HOTPLUG_AUTO, 64 * MiB, &gpa[2],
                                 err, sizeof(err)), 0);
    assert_int_equal(gpa[2], 960 * MiB);
    /* Nothing left that avoids the MMIO and fits 600 MiB. */
    refuse_add(g, 3, HOTPLUG_AUTO, 600 * MiB, -ENOSPC, "no free 600 MiB");
}

static void test_incoming_add_populates_nothing(void **state)
{
    Guest *g = *state;
    FlatRange fr;

    hotplug_set_incoming(g->hp, true);
    add_ok(g, 2, 512 * MiB, 4 * MiB);
    assert_int_equal(xr.populate_calls, 0);
    assert_true(lookup(g, 512 * MiB, &fr));
    hotplug_set_incoming(g->hp, false);
}

/* ---- remove ---------------------------------------------------------------- */

static void test_remove_unmaps_releases_and_tells_everyone(void **state)
{
    Guest *g = *state;
    uint64_t gpa = 512 * MiB, size = 32 * MiB;
    uint8_t b = 1;
    FlatRange fr;
    MapCacheStats st;
    char err[256];

    add_ok(g, 4, gpa, size);
    assert_int_equal(guest_memory_write(&g->gm, gpa, &b, 1), 0);
    assert_int_equal(hotplug_remove(g->hp, 4, err, sizeof(err)), 0);
    assert_false(lookup(g, gpa, &fr));
    assert_int_equal(guest_memory_read(&g->gm, gpa, &b, 1), -EFAULT);
    assert_int_equal(xr.depopulate_calls, 1);
    assert_int_equal(xr.depopulate_gfn, gpa >> 12);
    assert_int_equal(xr.depopulate_n, size >> 12);
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
    assert_int_equal(g->blocks_removed, 1);
    assert_int_equal(g->regions_deleted, 1);
    mapcache_get_stats(g->mc, &st);
    assert_true(st.invalidated_buckets >= 1);
    assert_int_equal(hotplug_slot_info(g->hp, 4, &(HotplugSlotInfo){ 0 }),
                     -ENOENT);
    assert_non_null(strstr(g->log, "slot 4: 32 MiB at 0x20000000 removed"));
}

static void test_slot_can_be_added_again_after_remove(void **state)
{
    Guest *g = *state;
    char err[256];

    for (int i = 0; i < 3; i++) {
        add_ok(g, 1, 256 * MiB + i * 64 * MiB, 16 * MiB);
        assert_int_equal(hotplug_remove(g->hp, 1, err, sizeof(err)), 0);
    }
    assert_int_equal(g->blocks_added, 3);
    assert_int_equal(g->blocks_removed, 3);
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
}

static void test_remove_is_refused_while_dma_holds_the_slot(void **state)
{
    Guest *g = *state;
    uint64_t gpa = 512 * MiB, len = 4096;
    Snapshot s;
    char err[256];
    void *p;
    int e;

    add_ok(g, 2, gpa, 16 * MiB);
    p = guest_memory_map(&g->gm, gpa + 8 * MiB, &len, true, &e);
    assert_non_null(p);
    s = snap(g);
    assert_int_equal(hotplug_remove(g->hp, 2, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "slot 2 is in use: 1 DMA mapping"));
    assert_non_null(strstr(err, "retry"));
    assert_unchanged(g, &s);
    /* The mapping still works. */
    memset(p, 0x5a, len);
    assert_int_equal(guest_memory_unmap(&g->gm, p, gpa + 8 * MiB, len, true,
                                        len), 0);
    assert_int_equal(hotplug_remove(g->hp, 2, err, sizeof(err)), 0);
}

static void test_remove_of_an_empty_or_unknown_slot_is_refused(void **state)
{
    Guest *g = *state;
    Snapshot s = snap(g);
    char err[256];

    assert_int_equal(hotplug_remove(g->hp, 5, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "slot 5 is empty"));
    assert_int_equal(hotplug_remove(g->hp, 8, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "slot 8 does not exist"));
    assert_unchanged(g, &s);
}

/* ---- refused adds ---------------------------------------------------------- */

static void test_unaligned_requests_are_refused(void **state)
{
    Guest *g = *state;

    refuse_add(g, 0, 512 * MiB, 4095, -EINVAL, "not a multiple of the 4 KiB");
    refuse_add(g, 0, 512 * MiB + 512, MiB, -EINVAL, "not aligned");
    refuse_add(g, 0, 512 * MiB, 0, -EINVAL, "size 0");
}

static void test_overlapping_requests_are_refused(void **state)
{
    Guest *g = *state;

    refuse_add(g, 0, 192 * MiB, 128 * MiB, -EADDRINUSE, "overlaps RAM "
               "'xen.ram'");
    refuse_add(g, 0, MMIO_START - MiB, 2 * MiB, -EADDRINUSE, "overlaps MMIO "
               "'mmio'");
    refuse_add(g, 0, HOLE_START - MiB, 2 * MiB, -EADDRINUSE, "reserved range "
               "[0x40000000, 0x44000000) (test hole)");
    add_ok(g, 1, 512 * MiB, 64 * MiB);
    refuse_add(g, 0, 540 * MiB, 64 * MiB, -EADDRINUSE, "overlaps slot 1");
}

static void test_requests_outside_the_window_are_refused(void **state)
{
    Guest *g = *state;

    refuse_add(g, 0, WIN_END - MiB, 2 * MiB, -ERANGE, "outside the hotplug "
               "window");
    refuse_add(g, 0, 64 * MiB, MiB, -ERANGE, "outside the hotplug window");
    refuse_add(g, 0, HOTPLUG_AUTO, 4 * GiB, -ERANGE, "bigger than the whole "
               "hotplug window");
    refuse_add(g, 0, UINT64_MAX - 4095, 8192, -ERANGE, "outside");
}

static void test_requests_beyond_the_limits_are_refused(void **state)
{
    Guest *g = *state;

    /* Xen's maximum: RAM + 1 GiB. */
    xr.max_pages = (RAM_SIZE + 64 * MiB) >> 12;
    refuse_add(g, 0, 512 * MiB, 128 * MiB, -ENOSPC, "exceed its maximum "
               "memory; raise it first (xl mem-max, and xl mem-set "
               "to include the new RAM)");
    xr.info_ret = -ESRCH;
    refuse_add(g, 0, 512 * MiB, 4 * MiB, -ESRCH, "cannot read the domain's "
               "memory limits");
}

static void test_slot_numbers_and_double_adds_are_checked(void **state)
{
    Guest *g = *state;

    refuse_add(g, 8, 512 * MiB, MiB, -EINVAL, "slot 8 does not exist: this "
               "guest has slots 0 to 7");
    add_ok(g, 7, 512 * MiB, MiB);
    refuse_add(g, 7, 768 * MiB, MiB, -EEXIST, "slot 7 is already online "
               "(1 MiB at 0x20000000): remove it first");
}

static void test_blocked_requests_are_refused_with_the_reason(void **state)
{
    Guest *g = *state;
    char err[256];

    add_ok(g, 0, 512 * MiB, MiB);
    hotplug_set_blocked(g->hp, "a migration is in progress");
    refuse_add(g, 1, 768 * MiB, MiB, -EBUSY, "memory hotplug is unavailable: "
               "a migration is in progress");
    assert_int_equal(hotplug_remove(g->hp, 0, err, sizeof(err)), -EBUSY);
    hotplug_set_blocked(g->hp, NULL);
    assert_int_equal(hotplug_remove(g->hp, 0, err, sizeof(err)), 0);
}

static void test_cap_on_hotplugged_memory_is_enforced(void **state)
{
    Guest *g = *state;

    hotplug_free(g->hp);
    g->cfg.max_bytes = 96 * MiB;
    hp_start(g);
    add_ok(g, 0, 512 * MiB, 64 * MiB);
    refuse_add(g, 1, 640 * MiB, 64 * MiB, -ENOSPC, "would exceed the 96 MiB "
               "the guest may hot-plug (maxmem); 64 MiB are plugged");
    add_ok(g, 1, 640 * MiB, 32 * MiB);
}

/* maxmem no larger than RAM: 0 bytes of room is a cap, not "no cap". */
static void test_maxmem_equal_to_ram_allows_no_hotplug(void **state)
{
    Guest *g = *state;
    HotplugSlotInfo info;

    hotplug_free(g->hp);
    g->cfg.max_bytes = 0;
    g->cfg.max_set = true;
    hp_start(g);
    refuse_add(g, 0, 512 * MiB, 64 * MiB, -ENOSPC, "this guest may hot-plug "
               "no memory: its maxmem is no larger than its RAM");
    assert_int_equal(hotplug_slot_info(g->hp, 0, &info), -ENOENT);
}

/* ---- failures half-way ------------------------------------------------------ */

static void test_populate_failure_changes_nothing(void **state)
{
    Guest *g = *state;
    Snapshot s = snap(g);
    char err[256];

    xr.populate_fail_at = 1;
    xr.populate_ret = -ENOMEM;
    assert_int_equal(hotplug_add(g->hp, 0, 512 * MiB, 16 * MiB, NULL, err,
                                 sizeof(err)), -ENOMEM);
    assert_non_null(strstr(err, "Xen could not populate the new memory"));
    /* Whatever Xen may have populated of the failed call is released. */
    assert_int_equal(xr.depopulate_calls, 1);
    assert_int_equal(g->blocks_added, s.blocks_added);
    assert_int_equal(g->regions_added, s.regions_added);
    assert_int_equal(snap(g).st.plugged_slots, 0);
}

static void test_populate_failure_half_way_releases_what_was_done(
    void **state)
{
    Guest *g = *state;
    char err[256];

    /* 512 MiB: two calls of 256 MiB; the second fails. */
    xr.populate_fail_at = 2;
    xr.populate_ret = -ENOMEM;
    assert_int_equal(hotplug_add(g->hp, 0, 256 * MiB, 512 * MiB, NULL, err,
                                 sizeof(err)), -ENOMEM);
    assert_int_equal(xr.populate_calls, 2);
    /* The failed call's range, then the first chunk. */
    assert_int_equal(xr.depopulate_calls, 2);
    assert_int_equal(xr.depopulate_gfn, (256 * MiB) >> 12);
    assert_int_equal(xr.depopulate_n, (256 * MiB) >> 12);
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
    assert_int_equal(g->blocks_added, 0);
}

static void test_unmappable_memory_is_refused_and_released(void **state)
{
    Guest *g = *state;
    char err[256];

    fake_fail_maps(-EFAULT, 1);
    assert_true(hotplug_add(g->hp, 0, 512 * MiB, 16 * MiB, NULL, err,
                            sizeof(err)) < 0);
    assert_non_null(strstr(err, "cannot be mapped by the device model"));
    assert_int_equal(xr.depopulate_calls, 1);
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
    assert_int_equal(g->blocks_added, 0);
    assert_int_equal(g->regions_added, 0);
    /* And the slot is free for a later try. */
    add_ok(g, 0, 512 * MiB, 16 * MiB);
}

static void test_depopulate_failure_is_reported_slot_still_emptied(
    void **state)
{
    Guest *g = *state;
    char err[256];

    add_ok(g, 0, 512 * MiB, 16 * MiB);
    /* Make decrease fail: pretend the range is the failed populate. */
    xr.populate_fail_at = xr.populate_calls;
    assert_int_equal(hotplug_remove(g->hp, 0, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "Xen did not release all of its frames"));
    assert_int_equal(hotplug_slot_info(g->hp, 0, &(HotplugSlotInfo){ 0 }),
                     -ENOENT);
    xr.populate_fail_at = 0;
}

/* ---- migration ---------------------------------------------------------------- */

static void test_restore_recreates_the_slot_without_populating(void **state)
{
    Guest *g = *state;
    HotplugSlotInfo info;
    FlatRange fr;
    char err[256];

    assert_int_equal(hotplug_restore(g->hp, 5, "xen.hotplug.5", 640 * MiB,
                                     32 * MiB, err, sizeof(err)), 0);
    assert_int_equal(xr.populate_calls, 0);
    assert_int_equal(hotplug_slot_info(g->hp, 5, &info), 0);
    assert_int_equal(hotplug_block_slot(g->hp, info.block), 5);
    assert_true(lookup(g, 640 * MiB, &fr));
    assert_ptr_equal(memory_region_ram_block(fr.mr), info.block);
    /* Twice, or on top of something: refused. */
    assert_int_equal(hotplug_restore(g->hp, 5, "xen.hotplug.5", 640 * MiB,
                                     32 * MiB, err, sizeof(err)), -EEXIST);
    assert_int_equal(hotplug_restore(g->hp, 6, "other", 200 * MiB, 32 * MiB,
                                     err, sizeof(err)), -EADDRINUSE);
    assert_int_equal(hotplug_restore(g->hp, 9, "x", 900 * MiB, MiB, err,
                                     sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "start it with as many slots"));
    /* Removal on the destination releases the frames the stream brought. */
    assert_int_equal(hotplug_remove(g->hp, 5, err, sizeof(err)), 0);
    assert_int_equal(xr.depopulate_calls, 1);
}

/* hotplug_restore_slots that must fail with @ret, @what, and change nothing. */
static void refuse_restore(Guest *g, const HotplugRestoreSlot *r,
                           unsigned int n, int ret, const char *what)
{
    Snapshot s = snap(g);
    char err[256] = "";

    assert_int_equal(hotplug_restore_slots(g->hp, r, n, err, sizeof(err)),
                     ret);
    if (!strstr(err, what)) {
        fail_msg("error \"%s\" does not say \"%s\"", err, what);
    }
    assert_unchanged(g, &s);
}

#define RS(n, a, sz) { .slot = (n), .idstr = "xen.hotplug." #n, .gpa = (a), \
                       .size = (sz) }

static void test_restore_outside_the_window_is_refused(void **state)
{
    Guest *g = *state;
    /* Below the window (in RAM's neighbourhood), across its end, at 2^50,
     * 16 TiB: a stream may say anything. */
    HotplugRestoreSlot below[] = { RS(0, 64 * MiB, 32 * MiB) };
    HotplugRestoreSlot across[] = { RS(0, WIN_END - 32 * MiB, 64 * MiB) };
    HotplugRestoreSlot far[] = { RS(0, 1ULL << 50, 32 * MiB) };
    HotplugRestoreSlot huge[] = { RS(0, 512 * MiB, 16ULL << 40) };

    refuse_restore(g, below, 1, -ERANGE, "outside the hotplug window");
    refuse_restore(g, across, 1, -ERANGE, "outside the hotplug window");
    refuse_restore(g, far, 1, -ERANGE, "outside the hotplug window");
    refuse_restore(g, huge, 1, -ERANGE, "outside the hotplug window");
}

static void test_restore_over_reserved_or_mapped_ranges_is_refused(
    void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot ram[] = { RS(0, 192 * MiB, 128 * MiB) };
    HotplugRestoreSlot hole[] = { RS(0, HOLE_START, 32 * MiB) };
    HotplugRestoreSlot mmio[] = { RS(0, MMIO_START, 64 * MiB) };

    refuse_restore(g, ram, 1, -EADDRINUSE, "overlaps RAM 'xen.ram'");
    refuse_restore(g, hole, 1, -EADDRINUSE, "test hole");
    refuse_restore(g, mmio, 1, -EADDRINUSE, "overlaps MMIO 'mmio'");
}

static void test_restored_slots_may_not_overlap_each_other(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(2, 768 * MiB, 64 * MiB),
                               RS(1, 512 * MiB, 64 * MiB),
                               RS(3, 800 * MiB, 64 * MiB) };

    refuse_restore(g, r, 3, -EADDRINUSE,
                   "slots 2 and 3 of the saved state overlap at 0x32000000");
}

static void test_restore_beyond_maxmem_is_refused_and_the_cap_holds(
    void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB),
                               RS(1, 640 * MiB, 64 * MiB) };
    HotplugStats st;

    hotplug_free(g->hp);
    g->cfg.max_bytes = 96 * MiB;
    hp_start(g);
    refuse_restore(g, r, 2, -ENOSPC, "128 MiB of hot-plugged memory, more "
                   "than the 96 MiB this guest may hot-plug (maxmem)");
    /* One fits; a later add still meets the cap, with no wrap-around. */
    assert_int_equal(hotplug_restore_slots(g->hp, r, 1, NULL, 0), 0);
    refuse_add(g, 1, 640 * MiB, 64 * MiB, -ENOSPC, "would exceed the 96 MiB");
    hotplug_get_stats(g->hp, &st);
    assert_int_equal(st.plugged_bytes, 64 * MiB);
    assert_true(st.plugged_bytes <= g->cfg.max_bytes);
}

static void test_restore_beyond_the_domains_maximum_is_refused(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB) };

    xr.max_pages = (32 * MiB) >> 12;
    refuse_restore(g, r, 1, -ENOSPC, "more than the domain's maximum of "
                   "32 MiB");
    /* A maximum read before the handles were restricted is used as is. */
    hotplug_free(g->hp);
    g->cfg.xen_max_pages = (128 * MiB) >> 12;
    hp_start(g);
    assert_int_equal(hotplug_restore_slots(g->hp, r, 1, NULL, 0), 0);
}

static void test_restore_needs_the_name_hotplug_gives(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { { .slot = 3, .idstr = "xen.ram\x1b[2J",
                                 .gpa = 512 * MiB, .size = 64 * MiB } };

    refuse_restore(g, r, 1, -EINVAL, "is named 'xen.hotplug.3'");
}

static void test_restore_is_all_or_nothing(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB),
                               RS(1, 192 * MiB, 64 * MiB) };

    /* A valid slot then a bad one: the valid one is not left behind. */
    refuse_restore(g, r, 2, -EADDRINUSE, "overlaps RAM");
    assert_int_equal(hotplug_slot_info(g->hp, 0, &(HotplugSlotInfo){ 0 }),
                     -ENOENT);
}

static void test_late_restore_failure_takes_the_applied_slots_out(
    void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB),
                               RS(1, 640 * MiB, 64 * MiB) };
    RAMBlock *squatter;
    HotplugStats st;
    char err[256] = "";
    FlatRange fr;

    /* The second block cannot be created: its name is taken. */
    assert_int_equal(ram_block_add(&g->ram, "xen.hotplug.1", MiB, MiB, NULL,
                                   0, NULL, &squatter), 0);
    assert_int_equal(hotplug_restore_slots(g->hp, r, 2, err, sizeof(err)),
                     -EEXIST);
    assert_non_null(strstr(err, "the name is taken"));
    hotplug_get_stats(g->hp, &st);
    assert_int_equal(st.plugged_slots, 0);
    assert_int_equal(st.plugged_bytes, 0);
    assert_false(lookup(g, 512 * MiB, &fr));
    rcu_read_lock();
    assert_null(ram_block_by_name(&g->ram, "xen.hotplug.0"));
    rcu_read_unlock();
    assert_int_equal(xr.depopulate_calls, 0);
    ram_block_remove(&g->ram, squatter);
    /* And the same state applies once nothing is in its way. */
    assert_int_equal(hotplug_restore_slots(g->hp, r, 2, err, sizeof(err)),
                     0);
}

static void test_restricted_handles_refuse_add_and_remove(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB) };
    char err[256] = "";

    hotplug_set_restricted(g->hp, "-xen-domid-restrict");
    refuse_add(g, 1, 768 * MiB, 64 * MiB, -EPERM,
               "memory hot-plug is unavailable: -xen-domid-restrict");
    /* A restore populates nothing: it still works. */
    assert_int_equal(hotplug_restore_slots(g->hp, r, 1, err, sizeof(err)), 0);
    assert_int_equal(hotplug_remove(g->hp, 0, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "-xen-domid-restrict"));
    assert_int_equal(xr.populate_calls + xr.depopulate_calls, 0);
}

static void test_xs_failed_restore_writes_no_keys(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB),
                               RS(1, 192 * MiB, 64 * MiB) };

    refuse_restore(g, r, 2, -EADDRINUSE, "overlaps RAM");
    assert_null(fx_get("0", "state"));
    assert_null(fx_get("1", "state"));
}

static void test_xs_restore_undo_removes_slots_and_their_keys(void **state)
{
    Guest *g = *state;
    HotplugRestoreSlot r[] = { RS(0, 512 * MiB, 64 * MiB),
                               RS(4, 768 * MiB, 64 * MiB) };
    HotplugStats st;
    FlatRange fr;

    assert_int_equal(hotplug_restore_slots(g->hp, r, 2, NULL, 0), 0);
    assert_string_equal(fx_get("0", "state"), "online");
    assert_string_equal(fx_get("4", "state"), "online");
    hotplug_restore_undo(g->hp);
    hotplug_get_stats(g->hp, &st);
    assert_int_equal(st.plugged_slots, 0);
    assert_int_equal(st.plugged_bytes, 0);
    assert_int_equal(st.restores, 0);
    assert_false(lookup(g, 768 * MiB, &fr));
    assert_null(fx_get("0", "state"));
    assert_null(fx_get("4", "size"));
    assert_int_equal(xr.depopulate_calls, 0);
    /* Undoing twice is harmless, and an add made since is kept. */
    add_ok(g, 1, 512 * MiB, 64 * MiB);
    hotplug_restore_undo(g->hp);
    assert_int_equal(hotplug_slot_info(g->hp, 1, &(HotplugSlotInfo){ 0 }), 0);
}

static void test_free_takes_plugged_slots_out_of_the_device_model(
    void **state)
{
    Guest *g = *state;

    add_ok(g, 0, 512 * MiB, 16 * MiB);
    add_ok(g, 1, 768 * MiB, 16 * MiB);
    hotplug_free(g->hp);
    g->hp = NULL;
    assert_int_equal(g->blocks_removed, 2);
    assert_int_equal(g->regions_deleted, 2);
    /* The frames stay: the domain is going away or has migrated. */
    assert_int_equal(xr.depopulate_calls, 0);
    hp_start(g);
}

static void test_bad_configurations_are_refused(void **state)
{
    Guest *g = *state;
    HotplugConfig c = g->cfg;
    Hotplug *hp = NULL;
    char err[256];

    c.window_end = c.window_start;
    assert_int_equal(hotplug_new(&c, &hp, err, sizeof(err)), -EINVAL);
    c = g->cfg;
    c.align = 3 * MiB;
    assert_int_equal(hotplug_new(&c, &hp, err, sizeof(err)), -EINVAL);
    c = g->cfg;
    c.nr_slots = HOTPLUG_MAX_SLOTS + 1;
    assert_int_equal(hotplug_new(&c, &hp, err, sizeof(err)), -EINVAL);
    c = g->cfg;
    c.root = NULL;
    assert_int_equal(hotplug_new(&c, &hp, err, sizeof(err)), -EINVAL);
    assert_null(hp);
}

/* ---- the xenstore protocol ----------------------------------------------------- */

static void test_xs_memory_dir_belongs_to_the_toolstack_alone(void **state)
{
    FxNode *n = fx_find(MEMDIR);

    (void)state;
    assert_non_null(n);
    assert_int_equal(n->nperms, 1);
    assert_int_equal(n->perms[0].id, 0);
    assert_int_equal(n->perms[0].perms, XS_PERM_NONE);
    assert_int_equal(hotplug_watch_fd(the_guest->hp), fx.efd);
}

static void test_xs_add_request_is_answered_online(void **state)
{
    Guest *g = *state;

    fx_put("3", "size", "0x4000000");
    fx_put("3", "start", "536870912");
    fx_put("3", "action", "add");
    hotplug_handle_watch(g->hp);
    /* The request as read, for --log-level=debug. */
    assert_non_null(strstr(g->debug, "/3: action=add size=0x4000000 "
                                     "start=536870912"));
    assert_string_equal(fx_get("3", "state"), "online");
    assert_string_equal(fx_get("3", "error"), "");
    assert_string_equal(fx_get("3", "gpa"), "0x20000000");
    assert_null(fx_get("3", "action"));
    assert_int_equal(xr.populate_gfn, (512 * MiB) >> 12);
    assert_int_equal(snap(g).st.plugged_bytes, 64 * MiB);
}

static void test_xs_auto_start_is_answered_with_the_chosen_gpa(void **state)
{
    Guest *g = *state;

    fx_put("0", "size", "16777216");
    fx_put("0", "start", "auto");
    fx_put("0", "action", "add");
    assert_int_equal(hotplug_process(g->hp, "0"), 0);
    assert_string_equal(fx_get("0", "state"), "online");
    assert_string_equal(fx_get("0", "gpa"), "0x10000000");
    /* No start at all means the same. */
    fx_put("1", "size", "16777216");
    fx_put("1", "action", "add");
    assert_int_equal(hotplug_process(g->hp, "1"), 0);
    assert_string_equal(fx_get("1", "gpa"), "0x14000000");
}

static void test_xs_remove_request_is_answered_removed(void **state)
{
    Guest *g = *state;

    fx_put("2", "size", "0x1000000");
    fx_put("2", "action", "add");
    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get("2", "state"), "online");
    fx_put("2", "action", "remove");
    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get("2", "state"), "removed");
    assert_string_equal(fx_get("2", "error"), "");
    assert_null(fx_get("2", "gpa"));
    assert_null(fx_get("2", "action"));
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
}

/* A request that must end in state = error, mentioning @what. */
static void xs_refused(Guest *g, const char *slot, const char *what)
{
    Snapshot s = snap(g);
    const char *e;

    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get(slot, "state"), "error");
    e = fx_get(slot, "error");
    if (!strstr(e, what)) {
        fail_msg("error \"%s\" does not mention \"%s\"", e, what);
    }
    assert_null(fx_get(slot, "action"));
    assert_unchanged(g, &s);
}

static void test_xs_malformed_requests_end_in_error(void **state)
{
    Guest *g = *state;

    fx_put("0", "size", "lots");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "size 'lots' is not a number of bytes");
    fx_put("0", "size", " 4096");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "is not a number");
    fx_put("0", "size", "-4096");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "is not a number");
    fx_put("0", "size", "99999999999999999999999");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "is not a number");
    fx_put("0", "size", "0x0x1000");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "is not a number");
    fx_put("0", "size", "4096");
    fx_put("0", "start", "0x2000000g");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "start '0x2000000g' is not an address");
    fx_put("1", "start", "auto");
    fx_put("1", "action", "add");
    xs_refused(g, "1", "size is missing");
    fx_put("1", "action", "plug");
    xs_refused(g, "1", "unknown action 'plug': write add or remove");
    fx_put("1", "size", "4097");
    fx_put("1", "action", "add");
    xs_refused(g, "1", "not a multiple of the 4 KiB page size");
}

static void test_xs_values_echoed_in_errors_are_printable(void **state)
{
    Guest *g = *state;

    fx_put("0", "size", "\x1b]0;owned\x07\xff");
    fx_put("0", "action", "add");
    xs_refused(g, "0", "size '?]0;owned?" "?' is not a number of bytes");
    fx_put("0", "action", "\x1b[2J");
    xs_refused(g, "0", "unknown action '?[2J'");
}

static void test_xs_unknown_slots_end_in_error(void **state)
{
    Guest *g = *state;

    fx_put("dimm0", "size", "4096");
    fx_put("dimm0", "action", "add");
    xs_refused(g, "dimm0", "'dimm0' is not a slot: slots are numbered 0 to 7");
    fx_put("8", "size", "4096");
    fx_put("8", "action", "add");
    xs_refused(g, "8", "is not a slot");
    fx_put("03", "size", "4096");
    fx_put("03", "action", "add");
    xs_refused(g, "03", "is not a slot");
    fx_put("4", "action", "remove");
    xs_refused(g, "4", "slot 4 is empty");
}

static void test_xs_refused_add_leaves_an_online_slot_online(void **state)
{
    Guest *g = *state;

    fx_put("5", "size", "0x100000");
    fx_put("5", "start", "0x20000000");
    fx_put("5", "action", "add");
    hotplug_handle_watch(g->hp);
    fx_put("5", "action", "add");
    xs_refused(g, "5", "slot 5 is already online (1 MiB at 0x20000000)");
    /* gpa still tells where the memory is. */
    assert_string_equal(fx_get("5", "gpa"), "0x20000000");
    assert_int_equal(hotplug_slot_info(g->hp, 5, &(HotplugSlotInfo){ 0 }),
                     0);
}

static void test_xs_request_written_by_the_guest_is_refused(void **state)
{
    Guest *g = *state;
    struct xs_permissions open[2] = { { 0, XS_PERM_NONE },
                                      { FAKE_DOMID, XS_PERM_WRITE } };

    /* As set up, the guest cannot even write there. */
    assert_false(fx_put_as(FAKE_DOMID, "0", "action", "add"));
    assert_int_equal(errno, EACCES);
    hotplug_handle_watch(g->hp);
    assert_null(fx_get("0", "state"));
    /* A toolstack that opened the slot to the guest by mistake. */
    __wrap_xs_mkdir(NULL, XBT_NULL, MEMDIR "/1");
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/1", open, 2);
    assert_true(fx_put_as(FAKE_DOMID, "1", "size", "0x100000"));
    assert_true(fx_put_as(FAKE_DOMID, "1", "action", "add"));
    xs_refused(g, "1", "the request was written by domain 7 (action): only "
               "the toolstack (domain 0) may ask for memory hotplug");
    /* Even if only the size is the guest's. */
    fx_put("1", "action", "add");
    xs_refused(g, "1", "written by domain 7 (size)");
}

static void test_xs_node_another_domain_may_write_is_refused(void **state)
{
    Guest *g = *state;
    struct xs_permissions open[2] = { { 0, XS_PERM_NONE },
                                      { FAKE_DOMID, XS_PERM_WRITE } };
    struct xs_permissions everybody = { 0, XS_PERM_WRITE };

    /* The toolstack writes the request, but the guest could rewrite it. */
    __wrap_xs_mkdir(NULL, XBT_NULL, MEMDIR "/1");
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/1", open, 2);
    fx_put("1", "size", "0x100000");
    fx_put("1", "action", "add");
    xs_refused(g, "1", "may be written by domain 7: only the toolstack "
               "(domain 0) may");
    /* Writable by everybody: the first entry's permission. */
    __wrap_xs_mkdir(NULL, XBT_NULL, MEMDIR "/2");
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/2", &everybody, 1);
    fx_put("2", "size", "0x100000");
    fx_put("2", "action", "add");
    xs_refused(g, "2", "may be written by domain");
    /* Nodes closed again, the directory still open: refused as well. */
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/1", open, 2);
    fx_put("1", "action", "add");
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/1/action",
                              &(struct xs_permissions){ 0, XS_PERM_NONE }, 1);
    __wrap_xs_set_permissions(NULL, XBT_NULL, MEMDIR "/1/size",
                              &(struct xs_permissions){ 0, XS_PERM_NONE }, 1);
    xs_refused(g, "1", "the slot directory may be written by domain 7");
}

static void racing_remove(void)
{
    fx_put("3", "action", "remove");
}

static void test_xs_request_written_while_answering_is_not_lost(void **state)
{
    Guest *g = *state;

    /* The toolstack asks for the removal before the add is answered. */
    xr.on_populate = racing_remove;
    fx_put("3", "size", "0x100000");
    fx_put("3", "action", "add");
    hotplug_handle_watch(g->hp);
    xr.on_populate = NULL;
    assert_int_equal(snap(g).st.adds, 1);
    /* The remove was not deleted unread: it was carried out too. */
    assert_string_equal(fx_get("3", "state"), "removed");
    assert_null(fx_get("3", "action"));
    assert_int_equal(snap(g).st.plugged_bytes, 0);
    assert_int_equal(xr.tot_pages, RAM_SIZE >> 12);
}

static void test_xs_watch_firing_twice_acts_once(void **state)
{
    Guest *g = *state;

    fx_put("6", "size", "0x100000");
    fx_put("6", "action", "add");
    fx_event(MEMDIR "/6/action");      /* a second, spurious event */
    fx_event(MEMDIR);
    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get("6", "state"), "online");
    assert_int_equal(xr.populate_calls, 1);
    assert_int_equal(snap(g).st.adds, 1);
    assert_int_equal(snap(g).st.failures, 0);
}

static void test_xs_pending_requests_at_start_are_handled_stale_dropped(
    void **state)
{
    Guest *g = *state;

    hotplug_free(g->hp);
    g->hp = NULL;
    /* A previous device model's answer, and a request nobody took yet. */
    fx_put("2", "state", "online");
    fx_put("2", "gpa", "0x20000000");
    fx_put("3", "size", "0x100000");
    fx_put("3", "action", "add");
    hp_start(g);
    assert_null(fx_get("2", "state"));
    assert_null(fx_get("2", "gpa"));
    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get("3", "state"), "online");
}

static void test_xs_restore_writes_the_slot_as_online(void **state)
{
    Guest *g = *state;
    char err[256];

    assert_int_equal(hotplug_restore(g->hp, 4, "xen.hotplug.4", 768 * MiB,
                                     64 * MiB, err, sizeof(err)), 0);
    assert_string_equal(fx_get("4", "state"), "online");
    assert_string_equal(fx_get("4", "gpa"), "0x30000000");
    assert_string_equal(fx_get("4", "start"), "0x30000000");
    assert_string_equal(fx_get("4", "size"), "67108864");
    assert_string_equal(fx_get("4", "error"), "");
    /* No request: the watch has nothing to do. */
    hotplug_handle_watch(g->hp);
    assert_int_equal(snap(g).st.adds, 0);
    fx_put("4", "action", "remove");
    hotplug_handle_watch(g->hp);
    assert_string_equal(fx_get("4", "state"), "removed");
}

static void test_xs_unavailable_fails_creation_with_a_message(void **state)
{
    Guest *g = *state;
    Hotplug *hp = NULL;
    char err[256];

    fx.open_fails = true;
    assert_int_equal(hotplug_new(&g->cfg, &hp, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "cannot connect to xenstore"));
    fx.open_fails = false;
}

static void test_no_xenstore_means_no_watch_fd(void **state)
{
    Guest *g = *state;

    assert_int_equal(hotplug_watch_fd(g->hp), -ENOTCONN);
    assert_int_equal(hotplug_process(g->hp, "0"), -ENOTCONN);
    hotplug_handle_watch(g->hp);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define X(f) cmocka_unit_test_setup_teardown(f, setup_xs, teardown)
    const struct CMUnitTest tests[] = {
        T(test_add_populates_and_maps_ram_at_the_requested_gpa),
        T(test_new_block_is_dirty_for_every_client),
        T(test_add_tells_notifiers_and_listeners),
        T(test_auto_placement_skips_ram_hole_mmio_and_slots),
        T(test_incoming_add_populates_nothing),
        T(test_restore_outside_the_window_is_refused),
        T(test_restore_over_reserved_or_mapped_ranges_is_refused),
        T(test_restored_slots_may_not_overlap_each_other),
        T(test_restore_beyond_maxmem_is_refused_and_the_cap_holds),
        T(test_restore_beyond_the_domains_maximum_is_refused),
        T(test_restore_needs_the_name_hotplug_gives),
        T(test_restore_is_all_or_nothing),
        T(test_late_restore_failure_takes_the_applied_slots_out),
        T(test_restricted_handles_refuse_add_and_remove),
        X(test_xs_failed_restore_writes_no_keys),
        X(test_xs_restore_undo_removes_slots_and_their_keys),
        T(test_remove_unmaps_releases_and_tells_everyone),
        T(test_slot_can_be_added_again_after_remove),
        T(test_remove_is_refused_while_dma_holds_the_slot),
        T(test_remove_of_an_empty_or_unknown_slot_is_refused),
        T(test_unaligned_requests_are_refused),
        T(test_overlapping_requests_are_refused),
        T(test_requests_outside_the_window_are_refused),
        T(test_requests_beyond_the_limits_are_refused),
        T(test_slot_numbers_and_double_adds_are_checked),
        T(test_blocked_requests_are_refused_with_the_reason),
        T(test_cap_on_hotplugged_memory_is_enforced),
        T(test_maxmem_equal_to_ram_allows_no_hotplug),
        T(test_populate_failure_changes_nothing),
        T(test_populate_failure_half_way_releases_what_was_done),
        T(test_unmappable_memory_is_refused_and_released),
        T(test_depopulate_failure_is_reported_slot_still_emptied),
        T(test_restore_recreates_the_slot_without_populating),
        T(test_free_takes_plugged_slots_out_of_the_device_model),
        T(test_bad_configurations_are_refused),
        T(test_no_xenstore_means_no_watch_fd),
        X(test_xs_memory_dir_belongs_to_the_toolstack_alone),
        X(test_xs_add_request_is_answered_online),
        X(test_xs_auto_start_is_answered_with_the_chosen_gpa),
        X(test_xs_remove_request_is_answered_removed),
        X(test_xs_malformed_requests_end_in_error),
        X(test_xs_values_echoed_in_errors_are_printable),
        X(test_xs_unknown_slots_end_in_error),
        X(test_xs_refused_add_leaves_an_online_slot_online),
        X(test_xs_request_written_by_the_guest_is_refused),
        X(test_xs_node_another_domain_may_write_is_refused),
        X(test_xs_request_written_while_answering_is_not_lost),
        X(test_xs_watch_firing_twice_acts_once),
        X(test_xs_pending_requests_at_start_are_handled_stale_dropped),
        X(test_xs_restore_writes_the_slot_as_online),
        X(test_xs_unavailable_fails_creation_with_a_message),
    };
    int ret;

    xen_set_error_log(NULL);
    rcu_register_thread();
    ret = cmocka_run_group_tests_name("hotplug", tests, NULL, NULL);
    rcu_unregister_thread();
    return ret;
#undef T
#undef X
}
