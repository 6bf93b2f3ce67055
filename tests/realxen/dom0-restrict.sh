# SPDX-License-Identifier: LGPL-2.1-or-later
#
# dom0-restrict.sh - sourced by dom0-tests.sh: the xenram HVM guest with
# libxl's dm_restrict=1 (issue 14, docs/testing.md).  libxl then runs the
# device model as an unprivileged user (xen-qemuuser-shared here; libxl
# looks for xen-qemuuser-range-base first), in a chroot of its own
# (XEN_RUN_DIR/qemu-root-<domid>, created empty), with -xen-domid-restrict
# and its QMP socket opened by libxl and passed as an fd.  Checked: the
# guest is created and its firmware runs; xenram runs as that user in
# that chroot with its Xen handles restricted; QMP answers through
# libxl's socket; xl save and xl restore (the state through QMP's fd
# passing, the restore paused until cont); xl destroy ends it.
# Uses dom0-tests.sh's ok / notok / check / now / since / xl_domid.

# The user libxl runs a restricted device model as.
grep -q '^xen-qemuuser-shared:' /etc/passwd ||
    echo "xen-qemuuser-shared:x:990:990:xen qemu user:/:/bin/false" >> /etc/passwd
grep -q '^xen-qemuuser-shared:' /etc/group ||
    echo "xen-qemuuser-shared:x:990:" >> /etc/group

cat > /etc/xen/xrt/xrres.cfg <<CFG
name="xrres"
type="hvm"
memory=64
vcpus=1
device_model_version="qemu-xen"
device_model_override="$X/xenram"
dm_restrict=1
vga="none"
vnc=0
tsc_mode="native"
on_crash="preserve"
on_reboot="preserve"
CFG

restrict_tests() {
    local s d pid uid root st i
    s=$(now)
    timeout 10 xl dmesg -c > /dev/null 2>&1
    if ! timeout 120 xl create -e /etc/xen/xrt/xrres.cfg > /tmp/xlcreate-res.out 2>&1; then
        notok "dm_restrict: xl create of the xenram HVM guest: $(tail -n 8 /tmp/xlcreate-res.out | tr '\n' ' ') $(tail -n 5 /var/log/xen/qemu-dm-xrres.log 2>/dev/null | tr '\n' ' ')"
        return
    fi
    d=$(xl_domid xrres)
    ok "dm_restrict: xl create of the xenram HVM guest ($(since $s) s, domain $d)"
    pid=$(xenstore-read /local/domain/$d/image/device-model-pid 2>/dev/null)
    uid=$(awk '/^Uid:/ {print $2 "," $3 "," $4}' /proc/$pid/status 2>/dev/null)
    [ "$uid" = "990,990,990" ] &&
        ok "dm_restrict: xenram (pid $pid) runs as xen-qemuuser-shared (uid 990, real, effective and saved)" ||
        notok "dm_restrict: xenram (pid '$pid') runs as uid '$uid', not xen-qemuuser-shared's 990"
    root=$(readlink /proc/$pid/root 2>/dev/null)
    case "$root" in
        */qemu-root-$d) ok "dm_restrict: xenram's root is libxl's chroot $root" ;;
        *) notok "dm_restrict: xenram's root is '$root', not libxl's qemu-root-$d" ;;
    esac
    grep -aq "Xen handles restricted to domain $d" /var/log/xen/qemu-dm-xrres.log &&
        ok "dm_restrict: xenram restricted its Xen handles to domain $d" ||
        notok "dm_restrict: no restriction in xenram's log: $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')"
    st=$($X/xr-memdig qmp $d query-status 2>&1)
    case "$st" in
        *'"status": "running"'*|*'"status":"running"'*) ok "dm_restrict: QMP through libxl's pre-opened socket: running" ;;
        *) notok "dm_restrict: QMP query-status through libxl's socket: $st" ;;
    esac
    i=0
    while [ $i -lt 60 ] && ! timeout 10 xl dmesg 2>/dev/null | grep -aq "(d$d) HVM Loader"; do
        sleep 1; i=$((i + 1))
    done
    timeout 10 xl dmesg 2>/dev/null | grep -aq "(d$d) HVM Loader" &&
        ok "dm_restrict: the guest's firmware runs with the restricted xenram" ||
        notok "dm_restrict: no hvmloader line of d$d after 60 s: $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')"
    kill -0 "$pid" 2>/dev/null && ok "dm_restrict: its xenram is alive" ||
        notok "dm_restrict: its xenram is gone: $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')"
    # xl save and restore: libxl hands the restricted device model its
    # state file through QMP's fd passing, and restores it paused (-S,
    # then cont).
    rm -f /tmp/xrres.save
    if timeout 120 xl save xrres /tmp/xrres.save > /tmp/xlsave-res.out 2>&1; then
        ok "dm_restrict: xl save of the running guest ($(stat -c %s /tmp/xrres.save) bytes)"
        kill -0 "$pid" 2>/dev/null && notok "dm_restrict: its xenram outlived xl save" ||
            ok "dm_restrict: its xenram ended with the save"
        if timeout 120 xl restore /tmp/xrres.save > /tmp/xlrestore-res.out 2>&1; then
            d=$(xl_domid xrres)
            pid=$(xenstore-read /local/domain/$d/image/device-model-pid 2>/dev/null)
            uid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status 2>/dev/null)
            st=$($X/xr-memdig qmp $d query-status 2>&1)
            case "$uid $st" in
                990*running*) ok "dm_restrict: xl restore: the restricted xenram (uid 990) of domain $d runs the guest again" ;;
                *) notok "dm_restrict: xl restore: xenram uid '$uid', QMP '$st': $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')" ;;
            esac
        else
            notok "dm_restrict: xl restore: $(tail -n 6 /tmp/xlrestore-res.out | tr '\n' ' ') $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')"
            return
        fi
    else
        notok "dm_restrict: xl save: $(tail -n 6 /tmp/xlsave-res.out | tr '\n' ' ') $(tail -n 5 /var/log/xen/qemu-dm-xrres.log | tr '\n' ' ')"
    fi
    check "dm_restrict: xl destroy of the guest" timeout 60 xl destroy xrres
    i=0; while [ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
    kill -0 "$pid" 2>/dev/null && notok "dm_restrict: xenram (pid $pid) outlived xl destroy" ||
        ok "dm_restrict: xenram ended with its guest"
}

restrict_tests
