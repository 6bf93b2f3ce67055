/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * main.c - xenram: the memory side of a Xen device model, launched by libxl
 * in place of qemu-xen (device_model_override).  See xenram(1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xen/dm/cmdline.h"
#include "xen/dm/devmodel.h"

int main(int argc, char **argv)
{
    DMConfig cfg;
    char err[1024];
    int ret;

    ret = dm_cmdline_parse(argc, argv, &cfg, err, sizeof(err));
    if (ret < 0) {
        fprintf(stderr, "xenram: %s\n", err);
        fprintf(stderr, "Try 'xenram --help' for more information.\n");
        return 1;
    }
    if (ret > 0) {
        if (cfg.action == DM_ACTION_HELP) {
            dm_cmdline_usage(stdout);
        } else {
            dm_cmdline_version(stdout);
        }
        dm_config_free(&cfg);
        return 0;
    }
    {
        /* The report is a log line like any other: timestamped. */
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);

        if (m) {
            dm_cmdline_report_ignored(&cfg, m);
            fclose(m);
            if (len) {
                const char *msg = buf;

                if (!strncmp(msg, "xenram: ", 8))
                    msg += 8;
                dm_log(DM_LOG_INFO, "%.*s", (int)strcspn(msg, "\n"), msg);
            }
            free(buf);
        }
    }
    ret = dm_run(&cfg);
    dm_config_free(&cfg);
    return ret;
}
