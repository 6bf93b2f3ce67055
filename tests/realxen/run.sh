#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run.sh - the real-Xen tier (make check-xen).
#
# Fetches Debian's Xen 4.17 and kernel (cached in $XEN_CACHE), builds the
# dom0 initramfs, boots Xen under qemu-system-x86_64 -accel tcg, runs
# tests/realxen/dom0-tests.sh in dom0 and reports every check, then
# "N passed, N failed".  Exit status 0 only if every check passed.
#
# Environment: BUILD (the build directory holding xenram and the test
# programs), XEN_CACHE (downloads and unpacked packages), XEN_TIER_TIMEOUT
# (seconds for the whole tier, default 900), XEN_BOOT_TIMEOUT (seconds for
# dom0 to come up, default 240; a boot that does not is retried once),
# XEN_QEMU_CPU (default max,-smap,-mpx), XENRAM_BIN (another xenram to
# test), XEN_EXTRA / DOM0_EXTRA (more
# hypervisor / dom0 kernel arguments).
set -uo pipefail
t_start=$(date +%s)
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-build}
XEN_CACHE=${XEN_CACHE:-$HOME/.cache/xenram-realxen}
tier_timeout=${XEN_TIER_TIMEOUT:-900}
boot_timeout=${XEN_BOOT_TIMEOUT:-240}
cpu=${XEN_QEMU_CPU:-max,-smap,-mpx}
out=$BUILD/realxen
mkdir -p "$out"
out=$(cd "$out" && pwd)
deadline=$((t_start + tier_timeout - 20))
say() { echo "check-xen: $*"; }
elapsed() { echo $(($(date +%s) - t_start)); }

qpid=
kill_qemu() {
    if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
        kill "$qpid" 2>/dev/null
        for _ in 1 2 3 4 5; do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
        kill -9 "$qpid" 2>/dev/null
        wait "$qpid" 2>/dev/null
    fi
    qpid=
}
trap kill_qemu EXIT
trap 'kill_qemu; exit 130' INT TERM

fail_early() { # MESSAGE
    say "$1"
    echo "0 passed, 1 failed"
    exit 1
}

command -v qemu-system-x86_64 >/dev/null 2>&1 || [ "$(id -u)" = 0 ] ||
    fail_early "qemu-system-x86_64 is missing and only root can install it"
say "fetching Debian's Xen 4.17 and kernel (cache: $XEN_CACHE)"
tree=$("$here/fetch.sh" "$XEN_CACHE" | tail -n1) || fail_early "fetching the packages failed"
[ -d "$tree" ] || fail_early "fetching the packages failed"
"$here/mkinitrd.sh" "$tree" "$BUILD" "$out" || fail_early "building the initramfs failed"
say "ready to boot after $(elapsed) s"

log=$out/serial.log
boot() { # ATTEMPT -> 0 dom0 ran the tests (done or timed out), 1 dom0 never came up
    rm -f "$log"
    : > "$log"
    qemu-system-x86_64 -machine q35 -accel tcg -cpu "$cpu" -m 4G -smp 2 \
        -display none -monitor none -serial "file:$log" -no-reboot \
        -kernel "$out/xen.elf" \
        -append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 guest_loglvl=all ${XEN_EXTRA:-}" \
        -initrd "$out/vmlinuz console=hvc0 rdinit=/init ${DOM0_EXTRA:-},$out/dom0.cpio" \
        > "$out/qemu.out" 2>&1 &
    qpid=$!
    local t0 ready=0
    t0=$(date +%s)
    while kill -0 "$qpid" 2>/dev/null; do
        if [ $ready = 0 ]; then
            if grep -aq -e XRT-DOM0-READY -e XRT-DOM0-BROKEN "$log"; then
                ready=1
                say "attempt $1: dom0 up after $(($(date +%s) - t0)) s"
            elif [ $(($(date +%s) - t0)) -ge "$boot_timeout" ] ||
                 [ "$(date +%s)" -ge "$deadline" ]; then
                say "attempt $1: dom0 did not come up within $boot_timeout s"
                kill_qemu
                return 1
            fi
        fi
        grep -aq XRT-DONE "$log" && break
        if [ "$(date +%s)" -ge "$deadline" ]; then
            say "attempt $1: time limit of the tier reached; QEMU killed"
            break
        fi
        sleep 1
    done
    # A little time for the poweroff, then QEMU goes in any case.
    for _ in 1 2 3 4 5; do kill -0 "$qpid" 2>/dev/null || break; sleep 1; done
    kill_qemu
    say "attempt $1: QEMU ran $(($(date +%s) - t0)) s"
    [ $ready = 1 ]
}

if ! boot 1; then
    cp "$log" "$out/serial-attempt1.log"
    if [ $((deadline - $(date +%s))) -gt $((boot_timeout + 60)) ]; then
        say "retrying the boot once"
        boot 2
    fi
fi

# ---- report --------------------------------------------------------------------
tr -d '\r' < "$log" > "$out/serial.txt"
sed -n 's/^.*XRT: //p' "$out/serial.txt" > "$out/results.txt"
# Comments only where they explain a failure: those after a "not ok".
awk '/^not ok/ { f = 1; print; next } /^ok/ { f = 0 } /^#/ { if (f) print; next } { print }' \
    "$out/results.txt"
summary=$(grep -a -o 'XRT-SUMMARY passed=[0-9]* failed=[0-9]*' "$out/serial.txt" | tail -n1)
if [ -n "$summary" ]; then
    passed=$(echo "$summary" | sed 's/.*passed=\([0-9]*\).*/\1/')
    failed=$(echo "$summary" | sed 's/.*failed=\([0-9]*\).*/\1/')
else
    passed=$(grep -c '^ok' "$out/results.txt")
    failed=$(grep -c '^not ok' "$out/results.txt")
    if grep -aq XRT-DOM0-BROKEN "$out/serial.txt"; then
        say "dom0 came up broken: $(grep -a XRT-DOM0-BROKEN "$out/serial.txt" | head -n1)"
    elif grep -aq -e 'Panic on CPU' -e 'FATAL PAGE FAULT' "$out/serial.txt"; then
        # The hypervisor died under the tests: a failed check, with its lines.
        say "not ok - the Xen hypervisor panicked during the tests:"
        grep -a -B2 -A12 -e 'FATAL PAGE FAULT' -e 'Panic on CPU' "$out/serial.txt" |
            head -n 40 | sed 's/^/  | /'
    elif grep -aq XRT-DOM0-READY "$out/serial.txt"; then
        say "the tests in dom0 did not finish"
    else
        say "dom0 never came up (two boots)"
    fi
    failed=$((failed + 1))
fi
if [ "$failed" != 0 ]; then
    say "serial log: $out/serial.txt; its last 60 lines:"
    tail -n 60 "$out/serial.txt" | sed 's/^/  | /'
fi
say "took $(elapsed) s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
