/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the command-line parser (dm_cmdline_parse), fed an
 * argv whose words are the input's NUL-separated fields (argv[0] is
 * "xenram"; at most 64 words).
 *
 * Invariants: the result is 0, 1 (-help, -version), -EINVAL with a
 * sentence that names what was wrong, or -ENOMEM; a refusal leaves the
 * configuration empty; an accepted one holds sizes within the bounds
 * (-m, maxmem at most DM_MAX_RAM_MIB, maxmem not below -m); and parsing
 * the same words again gives the same answer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xen/dm/cmdline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WORDS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_WORDS + 2], *buf = malloc(size + 1);
    char err[512], err2[512];
    DMConfig cfg, cfg2;
    int argc = 1, ret, ret2;

    memcpy(buf, data, size);
    buf[size] = '\0';
    argv[0] = "xenram";
    for (char *p = buf; argc <= MAX_WORDS && p < buf + size;) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    argv[argc] = NULL;
    err[0] = err2[0] = '\0';
    ret = dm_cmdline_parse(argc, argv, &cfg, err, sizeof(err));
    ret2 = dm_cmdline_parse(argc, argv, &cfg2, err2, sizeof(err2));
    if (ret != ret2 || strcmp(err, err2)) {
        abort();
    }
    if (ret == -EINVAL || ret == -ENOMEM) {
        if (!err[0] || cfg.nr_monitors || cfg.nr_ignored || cfg.name) {
            abort();
        }
    } else if (ret == 0) {
        if (cfg.ram_mib > DM_MAX_RAM_MIB || cfg.maxmem_mib > DM_MAX_RAM_MIB ||
            (cfg.maxmem_mib && cfg.maxmem_mib < cfg.ram_mib) ||
            cfg.nr_monitors != cfg2.nr_monitors ||
            cfg.ram_mib != cfg2.ram_mib || cfg.domid != cfg2.domid) {
            abort();
        }
    } else if (ret != 1) {
        abort();
    }
    dm_config_free(&cfg);
    dm_config_free(&cfg2);
    free(buf);
    return 0;
}
