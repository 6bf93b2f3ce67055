#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The real-Xen tier's tests, run in dom0 by /init once the toolstack is up.
# Every check prints one line on the console:
#   XRT: ok - NAME            XRT: not ok - NAME: WHY
# and the run ends with "XRT-SUMMARY passed=N failed=M", which the host
# side (tests/realxen/run.sh) reports.
X=/xrt
passed=0
failed=0
say() { echo "XRT: $*"; }
ok() { passed=$((passed + 1)); say "ok - $*"; }
notok() { failed=$((failed + 1)); say "not ok - $*"; }
check() { # NAME CMD...: ok if CMD exits 0
    n=$1; shift
    if out=$("$@" 2>&1); then ok "$n"; else notok "$n: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}
now() { cut -d' ' -f1 /proc/uptime; }
since() { echo "$(now) $1" | awk '{printf "%.1f", $1 - $2}'; }
# waitfor FILE PATTERN SECONDS
waitfor() {
    i=0
    while [ $i -lt $3 ]; do
        grep -aq "$2" "$1" 2>/dev/null && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}
# Run a TAP-ish test program: its "ok"/"not ok" lines become ours.
run_prog() { # NAME CMD...
    n=$1; shift
    timeout 300 "$@" > /tmp/prog.out 2>&1
    rc=$?
    while IFS= read -r l; do
        case "$l" in
            "ok "*) passed=$((passed + 1)); say "$l" ;;
            "not ok "*) failed=$((failed + 1)); say "$l" ;;
            "#"*) say "$l" ;;
        esac
    done < /tmp/prog.out
    if [ $rc != 0 ] && ! grep -q "^not ok" /tmp/prog.out; then
        notok "$n exited with status $rc: $(tail -n 5 /tmp/prog.out | tr '\n' ' ')"
    fi
}
# Is a process called like the file $1 running?
running() { pidof "${1##*/}" >/dev/null; }
xs_state() { xenstore-read /local/domain/0/device-model/$1/state 2>/dev/null; }

t0=$(now)
mkdir -p /etc/xen/xrt

# ---- 1. a PVH guest with the stamping workload -------------------------------
cat > /etc/xen/xrt/xrpvh.cfg <<CFG
name="xrpvh"
type="pvh"
kernel="$X/guest/vmlinuz"
ramdisk="$X/guest/initrd.gz"
extra="console=hvc0 rdinit=/init noxsave xrwl=8:1000"
memory=128
vcpus=1
tsc_mode="native"
on_crash="preserve"
CFG
s=$(now)
check "xl create PVH guest with the stamping workload" timeout 120 xl create /etc/xen/xrt/xrpvh.cfg
if waitfor /var/log/xen/guest-xrpvh.log XRWL-READY 150; then
    ok "PVH guest workload running after $(since $s) s ($(grep -a XRWL-READY /var/log/xen/guest-xrpvh.log | head -n1 | tr -d '\r'))"
else
    notok "PVH guest workload did not start: $(tail -n 5 /var/log/xen/guest-xrpvh.log | tr '\r\n' '  ')"
fi
pvh=$(xl domid xrpvh 2>/dev/null)

# ---- 2. xenram's Xen-facing tests against the PVH guest --------------------------
if [ -n "$pvh" ] && [ -x $X/xr-realxen ]; then
    run_prog xr-realxen $X/xr-realxen $pvh 128 2048 1000
fi

# ---- 3. xl create of an HVM guest with xenram as its device model ----------------
cat > /etc/xen/xrt/xrhvm.cfg <<CFG
name="xrhvm"
type="hvm"
memory=64
vcpus=1
device_model_version="qemu-xen"
device_model_override="$X/xenram"
device_model_args=["--test-dma=200"]
vga="none"
vnc=0
tsc_mode="native"
on_crash="preserve"
on_reboot="preserve"
CFG
# Paused (-p): the guest has no emulated devices to boot with, and xenram's
# test DMA device scribbles over its RAM; the device model runs all the same.
s=$(now)
if timeout 120 xl create -p /etc/xen/xrt/xrhvm.cfg > /tmp/xlcreate.out 2>&1; then
    ok "xl create -p of an HVM guest with device_model_override=xenram ($(since $s) s)"
else
    notok "xl create -p of an HVM guest with xenram: $(tail -n 8 /tmp/xlcreate.out | tr '\n' ' ')"
fi
hvm=$(xl domid xrhvm 2>/tmp/xldomid.err)
[ -n "$hvm" ] || { echo "# xl domid xrhvm:"; sed 's/^/#   /' /tmp/xldomid.err; xl -vvv domid xrhvm 2>&1 | tail -n 30 | sed 's/^/#   /'; }
if [ -n "$hvm" ]; then
    ok "xl list shows the xenram HVM guest (domid $hvm)"
    st=$(xs_state $hvm)
    [ "$st" = running ] && ok "xenstore device-model/$hvm/state = running" ||
        notok "xenstore device-model/$hvm/state = '$st', not running"
    if running "$X/xenram"; then ok "xenram process alive"; else notok "xenram process gone: $(tail -n 5 /var/log/xen/qemu-dm-xrhvm.log | tr '\n' ' ')"; fi
else
    notok "xl list does not show the xenram HVM guest"
fi

# ---- 4. xl save / xl restore of the xenram guest --------------------------------------
if [ -n "$hvm" ]; then
    s=$(now)
    if timeout 180 xl save xrhvm /tmp/xrhvm.save > /tmp/xlsave.out 2>&1; then
        ok "xl save of the xenram guest ($(since $s) s, $(wc -c < /tmp/xrhvm.save) bytes)"
    else
        notok "xl save of the xenram guest: $(tail -n 8 /tmp/xlsave.out | tr '\n' ' ')"
    fi
    echo "# qemu-dm-xrhvm.log after save:"; sed 's/^/#   /' /var/log/xen/qemu-dm-xrhvm.log 2>/dev/null | tail -n 20
    if xl domid xrhvm >/dev/null 2>&1; then
        notok "the saved guest is gone"
        xl destroy xrhvm >/dev/null 2>&1
    else
        ok "the saved guest is gone"
    fi
    s=$(now)
    if timeout 180 xl restore -p /tmp/xrhvm.save > /tmp/xlrestore.out 2>&1; then
        ok "xl restore of the xenram guest ($(since $s) s)"
    else
        notok "xl restore of the xenram guest: $(tail -n 8 /tmp/xlrestore.out | tr '\n' ' ')"
    fi
    echo "# qemu-dm-xrhvm.log after restore:"; sed 's/^/#   /' /var/log/xen/qemu-dm-xrhvm.log 2>/dev/null | tail -n 20
    hvm2=$(xl domid xrhvm 2>/tmp/xldomid.err)
    [ -n "$hvm2" ] || { echo "# xl domid xrhvm:"; sed 's/^/#   /' /tmp/xldomid.err; ls -la /etc/xen | sed 's/^/#   /'; head -c 300 /etc/xen/xl.conf | od -c | head -n 8 | sed 's/^/#   /'; sed 's/^/#   /' /tmp/xlrestore.out; }
    if [ -n "$hvm2" ]; then
        st=$(xs_state $hvm2)
        [ "$st" = running ] && ok "restored guest $hvm2: device-model state = running" ||
            notok "restored guest $hvm2: device-model state = '$st'"
        s=$(now)
        timeout 60 xl destroy xrhvm > /tmp/xldestroy.out 2>&1 && ok "xl destroy of the xenram guest ($(since $s) s)" ||
            notok "xl destroy: $(tail -n 4 /tmp/xldestroy.out | tr '\n' ' ')"
        sleep 1
        running "$X/xenram" && notok "xenram exits when its guest is destroyed" ||
            ok "xenram exits when its guest is destroyed"
    else
        notok "xl list shows the restored guest"
    fi
    rm -f /tmp/xrhvm.save
fi

# ---- 5. health of the whole run ----------------------------------------------------------
xl list | sed 's/^/# /'
if xl list | awk 'NR > 1 && $5 ~ /c/' | grep -q .; then
    notok "no guest crashed: $(xl list | awk 'NR > 1 && $5 ~ /c/ {print $1}' | tr '\n' ' ')"
else
    ok "no guest crashed"
fi
if grep -a -l -e 'Bad FPU' -e 'Kernel panic' /var/log/xen/guest-*.log 2>/dev/null | grep -q .; then
    notok "guest kernels healthy (Bad FPU / panic in $(grep -a -l -e 'Bad FPU' -e 'Kernel panic' /var/log/xen/guest-*.log | tr '\n' ' '))"
else
    ok "guest kernels healthy (no Bad FPU state, no panic)"
fi
for d in $(xl list | awk 'NR > 2 {print $1}'); do xl destroy $d >/dev/null 2>&1; done
echo "XRT-SUMMARY passed=$passed failed=$failed dom0_seconds=$(since $t0)"
