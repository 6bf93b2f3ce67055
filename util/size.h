/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * size.h - the one parser for the sizes and numbers people and toolstacks
 * write: the command line's "-m 512", "maxmem=8G", the hotplug protocol's
 * "0x40000000".
 *
 * Header-only and a leaf (libc headers only, no liburcu, nothing of the
 * project) so that the simulator, which links no libxenram, can use the
 * same rules.  Internal: not installed.
 *
 * The accepted language:
 *   digits    decimal; with XR_SIZE_HEX also "0x"/"0X" and hexadecimal
 *             digits.  At least one digit.  No sign, no blanks, no octal:
 *             a leading zero is just a zero.
 *   suffix    with XR_SIZE_SUFFIX one of B K M G T P E (either case,
 *             binary multiples, B = bytes) may follow as the last
 *             character.  Digits are taken greedily, so after "0x" the
 *             letters b and e are digits, never suffixes (0x1b is 27).
 *   no suffix the value counts in @unit bytes (1 for a plain number,
 *             1 MiB for "-m 512").
 */
#ifndef XENRAM_UTIL_SIZE_H
#define XENRAM_UTIL_SIZE_H

#include <errno.h>
#include <stdint.h>

/* "0x" introduces hexadecimal digits. */
#define XR_SIZE_HEX    0x1u
/* One B/K/M/G/T/P/E may end the number. */
#define XR_SIZE_SUFFIX 0x2u

/*
 * Parse @s as described above into *@out (bytes, or units of @unit when
 * no suffix is given; @unit >= 1).  Returns 0; -EINVAL when @s is NULL,
 * empty or not in the language (nothing else may follow the digits and
 * the suffix); -ERANGE when the value does not fit in 64 bits.  *@out is
 * written on success only.
 */
static inline int xr_parse_size(const char *s, uint64_t unit,
                                unsigned int flags, uint64_t *out)
{
    const char *q, *digits;
    uint64_t v = 0, mult = unit;
    unsigned int base = 10;
    int overflow = 0;

    if (!s)
        return -EINVAL;
    digits = s;
    if ((flags & XR_SIZE_HEX) && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        digits = s + 2;
    }
    for (q = digits; *q; q++) {
        unsigned int d;

        if (*q >= '0' && *q <= '9')
            d = (unsigned int)(*q - '0');
        else if (base == 16 && *q >= 'a' && *q <= 'f')
            d = (unsigned int)(*q - 'a' + 10);
        else if (base == 16 && *q >= 'A' && *q <= 'F')
            d = (unsigned int)(*q - 'A' + 10);
        else
            break;
        /* Keep scanning: junk after the digits is -EINVAL, not -ERANGE. */
        if (v > (UINT64_MAX - d) / base)
            overflow = 1;
        else
            v = v * base + d;
    }
    if (q == digits)
        return -EINVAL;
    if (*q) {
        if (!(flags & XR_SIZE_SUFFIX) || q[1])
            return -EINVAL;
        switch (*q) {
        case 'b': case 'B': mult = 1; break;
        case 'k': case 'K': mult = UINT64_C(1) << 10; break;
        case 'm': case 'M': mult = UINT64_C(1) << 20; break;
        case 'g': case 'G': mult = UINT64_C(1) << 30; break;
        case 't': case 'T': mult = UINT64_C(1) << 40; break;
        case 'p': case 'P': mult = UINT64_C(1) << 50; break;
        case 'e': case 'E': mult = UINT64_C(1) << 60; break;
        default: return -EINVAL;
        }
    }
    if (overflow || (mult && v > UINT64_MAX / mult))
        return -ERANGE;
    *out = v * mult;
    return 0;
}

#endif /* XENRAM_UTIL_SIZE_H */
