/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * e2e-check.h - the checks the end-to-end tests share, each failing the
 * running cmocka test when it does not hold (e2e.h's helpers report and
 * leave the verdict to the caller; these are the verdicts the tests
 * agreed on).
 */
#ifndef XENRAM_TESTS_E2E_CHECK_H
#define XENRAM_TESTS_E2E_CHECK_H

#include <stdint.h>

#include "tests/integration/e2e/e2e.h"

/* `xensim destroy D` on @h succeeds. */
void e2e_destroy(struct e2e_host *h, uint32_t d);

/* `xensim verify D` on @h finds no corrupt page. */
void e2e_verify_clean(struct e2e_host *h, uint32_t d);

/*
 * @a and @b page by page: the same frames, the same bytes, the eight HVM
 * special pages (xenstore and console rings, ioreq pages ...) included —
 * the engine carries them with the HVM parameters.  *@special_diff counts
 * those of them that differ (0 expected).  Returns the frames @a has.
 */
uint64_t e2e_mem_compare(const struct e2e_mem *a, const struct e2e_mem *b,
                         uint64_t *special_diff);

/* The newest generation among the vCPUs' stamps in @m. */
uint64_t e2e_mem_newest_stamp(const struct e2e_mem *m);

/*
 * The stamps the destination's vCPUs wrote since the switch: the pages of
 * @now that differ from @then.  Each is a stamp of a generation after
 * @newest (the source's last, as the HVM context carries it on) or a page
 * of the test device's; anything else fails.  Returns the stamps.
 */
uint64_t e2e_mem_stamps_since(const struct e2e_mem *then,
                              const struct e2e_mem *now, uint64_t newest);

#endif /* XENRAM_TESTS_E2E_CHECK_H */
