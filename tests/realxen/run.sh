#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run.sh - the real-Xen tier (make check-xen).
#
# Fetches Debian's Xen 4.17 and kernel (cached in $XEN_CACHE), builds the
# dom0 initramfs, boots Xen under qemu-system-x86_64 -accel tcg, runs
# tests/realxen/dom0-tests.sh in dom0 and reports every check, then
# "N passed, N failed".  Exit status 0 only if every check passed.
# The postcopy checks need a hypervisor with memory paging, which Debian's
# lacks: build-xen.sh builds it once from Debian's source package (cached
# in $XEN_CACHE) and a second boot on it runs dom0-postcopy.sh
# (xrt_only=postcopy); when it cannot be built they are reported as
# "skip - REASON".  DOM0_EXTRA=xrt_only=engine runs the first boot's
# engine section alone, DOM0_EXTRA=xrt_only=postcopy the second boot alone.
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
only=$(echo " ${DOM0_EXTRA:-} " | sed -n 's/.* xrt_only=\([a-z]*\).*/\1/p')
skips=()
pc_kernel=
if [ -z "$only" ] || [ "$only" = postcopy ]; then
    # The build gets what the boots leave of the budget (~2 x 200 s).
    reserve=420; [ "$only" = postcopy ] && reserve=200
    budget=$((deadline - $(date +%s) - reserve))
    [ $budget -gt 400 ] && budget=400
    say "the hypervisor with memory paging (build-xen.sh, $budget s at most)"
    if [ $budget -lt 60 ]; then
        skips+=("postcopy on real Xen: no time left in the tier's $tier_timeout s to build the paging hypervisor")
    elif pc_kernel=$("$here/build-xen.sh" "$XEN_CACHE" "$budget" 2> "$out/build-xen.err" | tail -n1) &&
         [ -s "$pc_kernel" ]; then
        say "paging hypervisor: $pc_kernel ($(elapsed) s in)"
    else
        pc_kernel=
        grep -v '^realxen-build-xen: \(fetching\|apt-get source\|installing\|unpacking\|building\)' "$out/build-xen.err" |
            tail -n 5 | sed 's/^/  | /'
        skips+=("postcopy on real Xen: $(tail -n1 "$out/build-xen.err" | sed 's/^realxen-build-xen: //')")
    fi
fi
say "ready to boot after $(elapsed) s"

log=$out/serial.log
boot() { # ATTEMPT KERNEL DOM0-ARGS -> 0 dom0 ran the tests (done or timed out), 1 dom0 never came up
    rm -f "$log"
    : > "$log"
    qemu-system-x86_64 -machine q35 -accel tcg -cpu "$cpu" -m 4G -smp 2 \
        -display none -monitor none -serial "file:$log" -no-reboot \
        -kernel "$2" \
        -append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 guest_loglvl=all ${XEN_EXTRA:-}" \
        -initrd "$out/vmlinuz console=hvc0 rdinit=/init $3,$out/dom0.cpio" \
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

run_boot() { # NAME KERNEL DOM0-ARGS: boot (retried once), serial log in $out/serial-NAME.txt
    if ! boot 1 "$2" "$3"; then
        cp "$log" "$out/serial-$1-attempt1.log"
        if [ $((deadline - $(date +%s))) -gt $((boot_timeout + 60)) ]; then
            say "retrying the boot once"
            boot 2 "$2" "$3"
        fi
    fi
    tr -d '\r' < "$log" > "$out/serial-$1.txt"
}
boots=()
if [ "$only" != postcopy ]; then
    say "boot 1: Debian's hypervisor, the tier's checks"
    run_boot main "$out/xen.elf" "${DOM0_EXTRA:-}"
    boots+=(main)
fi
if [ -n "$pc_kernel" ]; then
    if [ $((deadline - $(date +%s))) -gt 120 ]; then
        say "boot 2: the paging hypervisor, the postcopy checks ($(elapsed) s in)"
        extra=${DOM0_EXTRA:-}
        case " $extra " in *" xrt_only=postcopy "*) ;; *) extra="$extra xrt_only=postcopy" ;; esac
        run_boot postcopy "$pc_kernel" "$extra"
        boots+=(postcopy)
    else
        skips+=("postcopy on real Xen: no time left in the tier's $tier_timeout s for the second boot")
    fi
fi

# ---- report --------------------------------------------------------------------
passed=0
failed=0
skipped=0
: > "$out/results.txt"
report() { # NAME: its checks, and its counts added
    local t=$out/serial-$1.txt r=$out/results-$1.txt summary p f k
    sed -n 's/^.*XRT: //p' "$t" > "$r"
    cat "$r" >> "$out/results.txt"
    # Comments only where they explain a failure: those after a "not ok".
    awk '/^not ok/ { f = 1; print; next } /^ok/ || /^skip/ { f = 0 } /^#/ { if (f) print; next } { print }' "$r"
    summary=$(grep -a -o 'XRT-SUMMARY passed=[0-9]* failed=[0-9]* skipped=[0-9]*' "$t" | tail -n1)
    if [ -n "$summary" ]; then
        p=$(echo "$summary" | sed 's/.*passed=\([0-9]*\).*/\1/')
        f=$(echo "$summary" | sed 's/.*failed=\([0-9]*\).*/\1/')
        k=$(echo "$summary" | sed 's/.*skipped=\([0-9]*\).*/\1/')
    else
        p=$(grep -c '^ok' "$r")
        f=$(grep -c '^not ok' "$r")
        k=$(grep -c '^skip' "$r")
        if grep -aq XRT-DOM0-BROKEN "$t"; then
            say "boot $1: dom0 came up broken: $(grep -a XRT-DOM0-BROKEN "$t" | head -n1)"
        elif grep -aq -e 'Panic on CPU' -e 'FATAL PAGE FAULT' "$t"; then
            # The hypervisor died under the tests: a failed check, with its lines.
            say "not ok - boot $1: the Xen hypervisor panicked during the tests:"
            grep -a -B2 -A12 -e 'FATAL PAGE FAULT' -e 'Panic on CPU' "$t" |
                head -n 40 | sed 's/^/  | /'
        elif grep -aq XRT-DOM0-READY "$t"; then
            say "boot $1: the tests in dom0 did not finish"
        else
            say "boot $1: dom0 never came up (two boots)"
        fi
        f=$((f + 1))
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
    if [ "$f" != 0 ]; then
        say "boot $1: serial log $t; its last 60 lines:"
        tail -n 60 "$t" | sed 's/^/  | /'
    fi
}
for b in "${boots[@]}"; do report "$b"; done
# The main boot's log keeps its old name.
[ -f "$out/serial-main.txt" ] && cp "$out/serial-main.txt" "$out/serial.txt"
for k in "${skips[@]}"; do
    echo "skip - $k"
    echo "skip - $k" >> "$out/results.txt"
    skipped=$((skipped + 1))
done
say "took $(elapsed) s"
[ "$skipped" != 0 ] && say "$skipped checks skipped (the reasons above)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
