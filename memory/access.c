/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * access.c - guest memory access for device emulation (see access.h).
 *
 * An access is cut into chunks that each lie in one FlatRange and, for
 * mapcache-backed RAM, in one mapcache bucket.  Under one RCU read-side
 * section every chunk is resolved first (so a hole or an unmappable frame
 * refuses the access before anything is copied) and its host pointer
 * kept; then the kept pointers are copied to or from.  Nothing is looked
 * up again between the two: a mapcache pointer stays valid until
 * rcu_read_unlock() even if its bucket is evicted or invalidated
 * meanwhile (the unmap waits for a grace period), so once the first walk
 * succeeded the copy cannot fail half-way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memory/access.h"

/*
 * Host pointer for @n bytes at @gpa in RAM range @fr (which holds them),
 * with *@n lowered to what is contiguous.  Inside rcu_read_lock().
 */
static uint8_t *chunk_host(GuestMemory *gm, const FlatRange *fr,
                           uint64_t gpa, uint64_t *n, int *status)
{
    RAMBlock *block = memory_region_ram_block(fr->mr);
    uint64_t offset = fr->offset_in_region + (gpa - fr->addr);

    if (block->host) {
        return block->host + offset;
    }
    if (!gm->mc) {
        *status = -EFAULT;
        return NULL;
    }
    {
        uint64_t bucket = mapcache_bucket_size(gm->mc);

        *n = MIN(*n, bucket - (gpa & (bucket - 1)));
    }
    return mapcache_get(gm->mc, gpa, *n, status);
}

/*
 * Resolve the chunk at @gpa (at most @len bytes): 0 with the host pointer,
 * its length and the range, or -errno.
 */
static int chunk_resolve(GuestMemory *gm, const FlatView *view, uint64_t gpa,
                         uint64_t len, bool is_write, uint8_t **host,
                         uint64_t *n, const FlatRange **frp)
{
    const FlatRange *fr;
    uint64_t remaining;
    int err = 0;

    fr = flatview_lookup(view, gpa, NULL, &remaining);
    if (!fr || !flatrange_is_ram(fr)) {
        return -EFAULT;         /* a hole, or MMIO: not ours to decode */
    }
    if (is_write && fr->readonly) {
        return -EPERM;
    }
    *n = MIN(len, remaining);
    *host = chunk_host(gm, fr, gpa, n, &err);
    if (!*host) {
        return err ? err : -EFAULT;
    }
    *frp = fr;
    return 0;
}

/* Mark [gpa, gpa + n) of range @fr dirty and report it to Xen. */
static void note_write(GuestMemory *gm, const FlatRange *fr, uint64_t gpa,
                       uint64_t n)
{
    uint64_t ram_addr = fr->ram_addr + (gpa - fr->addr);
    uint64_t first = ram_addr >> XR_PAGE_BITS;
    uint64_t last = (ram_addr + n - 1) >> XR_PAGE_BITS;

    dirty_memory_set_range(&gm->ram->dirty, first, last - first + 1,
                           DIRTY_CLIENTS_ALL);
    if (gm->mm) {
        uint64_t gfn = gpa >> XR_PAGE_BITS;

        modified_memory_report(gm->mm, gfn,
                               ((gpa + n - 1) >> XR_PAGE_BITS) - gfn + 1);
    }
}

static int access_rw(GuestMemory *gm, uint64_t gpa, uint8_t *buf,
                     uint64_t len, bool is_write)
{
    const FlatView *view;
    int ret = 0;

    if (len == 0) {
        return 0;
    }
    if (gpa + len < gpa && gpa + len != 0) {
        return -EINVAL;
    }
    rcu_read_lock();
    view = address_space_get_flatview(gm->as);

    /* The common case, one chunk: resolved once, copied at once. */
    {
        const FlatRange *fr;
        uint8_t *host;
        uint64_t n;

        ret = chunk_resolve(gm, view, gpa, len, is_write, &host, &n, &fr);
        if (ret) {
            goto out;
        }
        if (n == len) {
            if (is_write) {
                memcpy(host, buf, n);
                note_write(gm, fr, gpa, n);
            } else {
                memcpy(buf, host, n);
            }
            goto out;
        }
    }

    /* Pass 1: everything must resolve; keep what it resolved to. */
    {
        struct chunk {
            const FlatRange *fr;
            uint8_t *host;
            uint64_t n;
        } few[16], *c = few;
        size_t nc = 0, cap = ARRAY_SIZE(few);

        for (uint64_t done = 0; done < len;) {
            if (nc == cap) {
                struct chunk *more = malloc(2 * cap * sizeof(*more));

                if (!more) {
                    ret = -ENOMEM;
                    break;
                }
                memcpy(more, c, nc * sizeof(*c));
                if (c != few) {
                    free(c);
                }
                c = more;
                cap *= 2;
            }
            ret = chunk_resolve(gm, view, gpa + done, len - done, is_write,
                                &c[nc].host, &c[nc].n, &c[nc].fr);
            if (ret) {
                break;
            }
            done += c[nc++].n;
        }

        /* Pass 2: copy, and note writes once their data has landed. */
        for (size_t i = 0, done = 0; !ret && i < nc; done += c[i++].n) {
            if (is_write) {
                memcpy(c[i].host, buf + done, c[i].n);
                note_write(gm, c[i].fr, gpa + done, c[i].n);
            } else {
                memcpy(buf + done, c[i].host, c[i].n);
            }
        }
        if (c != few) {
            free(c);
        }
    }
out:
    rcu_read_unlock();
    return ret;
}

int guest_memory_read(GuestMemory *gm, uint64_t gpa, void *buf, uint64_t len)
{
    return access_rw(gm, gpa, buf, len, false);
}

int guest_memory_write(GuestMemory *gm, uint64_t gpa, const void *buf,
                       uint64_t len)
{
    return access_rw(gm, gpa, (uint8_t *)buf, len, true);
}

void *guest_memory_map(GuestMemory *gm, uint64_t gpa, uint64_t *len,
                       bool is_write, int *status)
{
    const FlatRange *fr;
    RAMBlock *block;
    uint64_t remaining;
    void *p = NULL;
    int ret = 0;

    if (*len == 0) {
        ret = -EINVAL;
        goto fail;
    }
    rcu_read_lock();
    fr = address_space_lookup(gm->as, gpa, NULL, &remaining);
    if (!fr || !flatrange_is_ram(fr)) {
        ret = -EFAULT;
    } else if (is_write && fr->readonly) {
        ret = -EPERM;
    } else {
        block = memory_region_ram_block(fr->mr);
        *len = MIN(*len, remaining);
        if (block->host) {
            /* Host-backed blocks live until removal, which hot-plug refuses
             * while DMA holds them. */
            p = block->host + fr->offset_in_region + (gpa - fr->addr);
        } else if (gm->mc) {
            p = mapcache_map(gm->mc, gpa, len, &ret);
        } else {
            ret = -EFAULT;
        }
    }
    rcu_read_unlock();
    if (p) {
        return p;
    }
fail:
    if (status) {
        *status = ret;
    }
    return NULL;
}

int guest_memory_unmap(GuestMemory *gm, void *ptr, uint64_t gpa,
                       uint64_t len, bool is_write, uint64_t access_len)
{
    int ret;

    if (is_write && access_len) {
        const FlatRange *fr;
        uint64_t remaining;

        access_len = MIN(access_len, len);
        rcu_read_lock();
        fr = address_space_lookup(gm->as, gpa, NULL, &remaining);
        if (fr && flatrange_is_ram(fr)) {
            note_write(gm, fr, gpa, MIN(access_len, remaining));
        }
        rcu_read_unlock();
    }
    if (gm->mc) {
        ret = mapcache_unlock(gm->mc, ptr);
        if (ret != -ENOENT) {
            return ret;
        }
    }
    rcu_read_lock();
    ret = ram_block_from_host(gm->ram, ptr, NULL) ? 0 : -ENOENT;
    rcu_read_unlock();
    return ret;
}
