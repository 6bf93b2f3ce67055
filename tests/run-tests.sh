#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Run test programs one after the other, show their output, and finish with
# one summary line "N passed, N failed" counting individual cmocka tests
# (a program that crashed or printed no cmocka summary counts as one
# failure).  Exit status 1 if anything failed.
#
# XR_TEST_WRAP, if set, is a command prefix for every program (setarch -R
# for ThreadSanitizer, valgrind, ...).
set -u

passed=0
failed=0
failed_progs=()

for prog in "$@"; do
    name=${prog##*/}
    echo "=== $name"
    out=$(mktemp)
    # shellcheck disable=SC2086
    ${XR_TEST_WRAP:-} "$prog" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    rm -f "$out"
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        # Not a cmocka program (or it died before its summary): one test.
        if [ "$rc" -eq 0 ]; then p=1; else f=1; fi
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1   # summary printed, but the program then failed (leak, crash)
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
        failed_progs+=("$name")
    fi
done

echo
if [ "${#failed_progs[@]}" -ne 0 ]; then
    echo "failing programs: ${failed_progs[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
