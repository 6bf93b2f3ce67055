# SPDX-License-Identifier: LGPL-2.1-or-later
#
# dom0-postcopy.sh - sourced by dom0-tests.sh in the tier's second boot,
# the one with the hypervisor built with memory paging (build-xen.sh;
# docs/testing.md "Postcopy on real Xen").  Two parts:
#   a. xenram's pager (xen/paging.c, xr-pager) on a live HVM guest whose
#      vCPU runs (hvmloader, then SeaBIOS waiting with its timer ticking):
#      its RAM paged out, the faults served from a saved copy, memory the
#      copy plus the guest's writes, the guest running on;
#   b. a real postcopy by xenram's engine: the xenram HVM guest with test
#      DMA on migrated to an empty shell on this host (dom0-engine.sh's
#      functions) with postcopy-ram + migrate-start-postcopy; at the end
#      memory equal page by page, less the pages the destination's test
#      DMA rewrote since it was continued;
#   c. the same straight away for a guest whose vCPU runs (SeaBIOS
#      waiting): unpaused on the destination with none of its memory
#      there, its vCPU faults (paused by Xen, VM_EVENT_FLAG_VCPU_PAUSED),
#      postcopy-vcpu-blocktime counts its waits, and it runs on.
# A step that cannot run here says "skip - REASON", never nothing.
# Uses dom0-tests.sh's ok / notok / check / run_prog / now / since / waitfor
# and dom0-engine.sh's eng_dest / eng_wait / eng_drop / eng_finish / q / jget.

XENGINE_FUNCS_ONLY=1
. $X/dom0-engine.sh
unset XENGINE_FUNCS_ONLY

# ---- a. the pager on a live guest --------------------------------------------
cat > /etc/xen/xrt/xrpgfw.cfg <<CFG
name="xrpgfw"
type="hvm"
memory=64
vcpus=1
device_model_version="qemu-xen"
device_model_override="$X/xenram"
vga="none"
vnc=0
tsc_mode="native"
on_crash="preserve"
on_reboot="preserve"
CFG

pager_tests() {
    timeout 10 xl dmesg -c > /dev/null 2>&1
    if ! timeout 120 xl create -e /etc/xen/xrt/xrpgfw.cfg > /tmp/pg-create.out 2>&1; then
        notok "pager: xl create of the firmware guest: $(tail -n 5 /tmp/pg-create.out | tr '\n' ' ')"
        return
    fi
    d=$(xl_domid xrpgfw)
    s=$(now); i=0
    while [ $i -lt 120 ] && ! xl dmesg 2>/dev/null | grep -aq "No bootable device"; do sleep 0.5; i=$((i + 1)); done
    if xl dmesg 2>/dev/null | grep -aq "No bootable device"; then
        ok "pager: guest $d runs SeaBIOS, waiting for a boot device ($(since $s) s)"
    else
        notok "pager: SeaBIOS did not reach its boot retry in 60 s: $(xl dmesg 2>/dev/null | grep -a "(d$d)" | tail -n 2 | tr '\n' ' ')"
    fi
    # All of its 64 MiB: the BIOS, its stack and data area are the
    # working set; SeaBIOS reboots 60 s after "No bootable device".
    run_prog xr-pager $X/xr-pager $d 0 16384 5
    st=$(xl list xrpgfw 2>/dev/null | awk 'NR == 2 {print $5}')
    case "$st" in
        *c*|"") notok "pager: the guest is alive after the pager stopped: state '$st'" ;;
        *) ok "pager: the guest is alive after the pager stopped (state $st)" ;;
    esac
    timeout 60 xl destroy xrpgfw > /dev/null 2>&1
}

# ---- b. postcopy by xenram's engine --------------------------------------------
cat > /etc/xen/xrt/xrpc.cfg <<CFG
name="xrpc"
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

postcopy_tests() {
    s=$(now)
    if ! timeout 120 xl create -p /etc/xen/xrt/xrpc.cfg > $E/create.out 2>&1; then
        notok "postcopy: xl create -p of the source guest: $(tail -n 5 $E/create.out | tr '\n' ' ')"
        return
    fi
    src=$(xl_domid xrpc)
    ok "postcopy: source guest $src with xenram and its test DMA ($(since $s) s)"
    eng_dest $src || return
    if ! q $src migrate-set-capabilities '{"capabilities":[{"capability":"postcopy-ram","state":true},{"capability":"events","state":true}]}'; then
        r=$(cat $E/q.out)
        skip "postcopy: the source refuses postcopy-ram: $r"
        eng_drop
        return
    fi
    ok "postcopy: migrate-set-capabilities postcopy-ram, events"
    # 512 KiB/s: round 1 lasts a few seconds, so the test DMA leaves a
    # thousand or so pages to postcopy, and the background stream is slow
    # enough that the destination's test DMA touches some before they come.
    # (At 4 MiB/s, 132 pages were left and all came in the background
    # within 1.1 s: no fault.)
    check "postcopy: migrate-set-parameters max-bandwidth 512 KiB/s" \
        $X/xr-memdig qmp $src migrate-set-parameters '{"max-bandwidth":524288,"downtime-limit":300}'
    # QEMU's meaning before migrate: the switch straight away (round 1
    # sends nothing; every page comes by postcopy).
    check "postcopy: migrate-start-postcopy before migrate" $X/xr-memdig qmp $src migrate-start-postcopy
    ms=$(now)
    q $src migrate "{\"uri\":\"unix:$sock\"}" && ok "postcopy: migrate accepted" ||
        notok "postcopy: migrate refused: $(cat $E/q.out)"
    eng_wait 900 "postcopy-active completed failed cancelled"
    cp $E/q.out $E/pc-switch.out
    if [ "$st" != postcopy-active ]; then
        notok "postcopy: the source did not reach postcopy-active: status '$st' after $(since $ms) s: $(jget error-desc $E/q.out)"
        echo "# source xenram:"; tail -n 10 /var/log/xen/qemu-dm-xrpc.log | sed 's/^/#   /'
        echo "# destination xenram:"; tail -n 10 /var/log/xen/qemu-dm-$shell--incoming.log | sed 's/^/#   /'
        eng_drop
        return
    fi
    ok "postcopy: postcopy-active after $(since $ms) s ($(jget dirty-sync-count $E/pc-switch.out) rounds)"
    tsw=$(now)
    # The destination's devices resume: its test DMA touches pages that
    # have not arrived, which the pager must fetch from the source.  The
    # source says postcopy-active before the destination has its device
    # state (RUN): until then cont is refused ("the incoming device state
    # has not been loaded yet", seen under load), so it is asked again.
    i=0
    until q $shell cont; do
        i=$((i + 1))
        [ $i -ge 100 ] && break
        sleep 0.2
    done
    if [ $i -lt 100 ]; then
        ok "postcopy: cont to the destination's xenram $(since $tsw) s after the switch, during postcopy (its test DMA runs)"
    else
        r=$(cat $E/q.out)
        skip "postcopy: the destination's xenram refuses cont for 20 s during postcopy, its test DMA cannot fault pages in: $r"
    fi
    eng_wait 1500 "completed failed cancelled"
    cp $E/q.out $E/pc-final.out
    echo "# source query-migrate: $(cat $E/pc-final.out)"
    q $shell query-migrate; cp $E/q.out $E/pc-dst.out
    echo "# destination query-migrate: $(cat $E/pc-dst.out)"
    if [ "$st" != completed ]; then
        notok "postcopy: migration completed: status '$st' after $(since $ms) s: $(jget error-desc $E/pc-final.out)"
        echo "# source xenram:"; tail -n 15 /var/log/xen/qemu-dm-xrpc.log | sed 's/^/#   /'
        echo "# destination xenram:"; tail -n 15 /var/log/xen/qemu-dm-$shell--incoming.log | sed 's/^/#   /'
        eng_drop
        timeout 60 xl destroy xrpc > /dev/null 2>&1
        return
    fi
    ok "postcopy: completed in $(since $ms) s, $(echo "$(now) $tsw" | awk '{printf "%.1f", $1 - $2}') s after the switch (total-time $(jget total-time $E/pc-final.out) ms, downtime $(jget downtime $E/pc-final.out) ms)"
    sreq=$(jget postcopy-requests $E/pc-final.out)
    rp=$(jget requested-pages $E/pc-final.out)
    bp=$(jget background-pages $E/pc-final.out)
    dreq=$(jget postcopy-requests $E/pc-dst.out)
    faults=$(jget faults $E/pc-dst.out)
    absent=$(jget made-absent $E/pc-dst.out)
    placed=$(jget placed $E/pc-dst.out)
    echo "# source: postcopy-requests '$sreq', requested-pages '$rp', background-pages '$bp'; destination: postcopy-requests '$dreq', faults '$faults', made-absent '$absent', placed '$placed', p50 $(jget p50-ns $E/pc-dst.out) ns, p99 $(jget p99-ns $E/pc-dst.out) ns, max $(jget max-ns $E/pc-dst.out) ns"
    [ "${absent:-0}" -gt 0 ] 2>/dev/null &&
        ok "postcopy: the destination made $absent pages absent (paged out) and placed $placed" ||
        notok "postcopy: the destination made no page absent (made-absent '$absent'): no postcopy happened"
    # PREPARE (docs/postcopy.md, "The switch"): the paging out done while
    # the guest still ran on the source, LISTEN left with what it dirtied
    # after (straight away: nothing, every page was out already).
    atl=$(jget made-absent-at-listen $E/pc-dst.out)
    prep=$(jget prepares $E/pc-dst.out)
    pms=$(jget prepare-ms $E/pc-dst.out)
    [ "${prep:-0}" -gt 0 ] 2>/dev/null && [ "${atl:-x}" -lt "${absent:-0}" ] 2>/dev/null &&
        ok "postcopy: $((absent - atl)) of $absent pages paged out ahead of the pause in $prep PREPARE(s), $pms ms ($(echo "$pms $absent $atl" | awk '{ if ($2 > $3) printf "%.1f", $1 * 1000 / ($2 - $3); else printf "?" }') us a frame on this Xen); $atl at LISTEN, with the guest paused" ||
        notok "postcopy: the paging out was not done ahead of the pause (prepares '$prep', made-absent-at-listen '$atl' of '$absent')"
    [ "${sreq:-0}" -gt 0 ] 2>/dev/null &&
        ok "postcopy: faults served from the source over the return path ($sreq page requests, $rp pages sent on request, $bp in the background)" ||
        notok "postcopy: no page request reached the source (postcopy-requests '$sreq', destination faults '$faults')"
    # Memory: the source's is fixed since the switch (paused, devices
    # stopped); the destination's is that plus its test DMA since cont.
    q $shell stop
    $X/xr-memdig dump $src 0 16384 > $E/pc-src.dig 2> $E/dig.err
    $X/xr-memdig dump $shell 0 16384 > $E/pc-dst.dig 2>> $E/dig.err
    maxt=$(echo "$(since $tsw)" | awk '{printf "%d", ($1 + 5) * 200}')
    if r=$($X/xr-memdig cmp $E/pc-src.dig $E/pc-dst.dig $maxt 2>&1); then
        ok "postcopy: destination memory equals the source's at the switch, page by page, but for its own test DMA since: $(echo $r | tr '\n' ' ')"
    else
        notok "postcopy: destination memory equals the source's at the switch (at most $maxt test-DMA pages): $(echo $r | tr '\n' ' ') $(tail -n 2 $E/dig.err | tr '\n' ' ')"
        eng_diff $src $shell $E/pc-src.dig $E/pc-dst.dig
    fi
    set -- $($X/xr-shell info $src); spages=$1
    set -- $($X/xr-shell info $shell); dpages=$1
    [ "$spages" = "$dpages" ] && ok "postcopy: the destination holds as many frames as the source ($dpages)" ||
        notok "postcopy: the destination holds $dpages frames, the source $spages"
    if r=$($X/xr-shell ctxcmp $src $shell 2>&1); then
        ok "postcopy: the HVM context on the destination is the source's: $(echo "$r" | tail -n 1)"
    else
        notok "postcopy: the HVM context on the destination: $(echo "$r" | grep -e DIFF -e missing -e length | head -n 3 | tr '\n' ' ') $(echo "$r" | tail -n 1)"
    fi
    eng_finish
    check "postcopy: xl destroy of the source guest" timeout 60 xl destroy xrpc
}

# ---- c. straight away, the guest's own vCPU faulting ------------------------
postcopy_fw_tests() {
    fw_guest xrpcfw "postcopy (vCPU)" || return
    ok "postcopy (vCPU): SeaBIOS waits after $(since $s) s"
    # Without -S: the destination's xenram unpauses the domain itself at
    # RUN, when none of its memory is there, and its vCPU races the
    # background for SeaBIOS's pages (a cont and an unpause from here came
    # after the background had brought them: no fault).
    ENG_DEST_RUN=1 eng_dest $src || { xl destroy xrpcfw > /dev/null 2>&1; return; }
    q $src migrate-set-capabilities '{"capabilities":[{"capability":"postcopy-ram","state":true},{"capability":"events","state":true}]}'
    # Slow enough that the vCPU touches pages before the background
    # brings them (64 MiB, most of it zero pages, which cost nothing).
    q $src migrate-set-parameters '{"max-bandwidth":524288,"downtime-limit":300}'
    check "postcopy (vCPU): migrate-start-postcopy before migrate (straight away)" $X/xr-memdig qmp $src migrate-start-postcopy
    ms=$(now)
    q $src migrate "{\"uri\":\"unix:$sock\"}" || notok "postcopy (vCPU): migrate refused: $(cat $E/q.out)"
    eng_wait 900 "postcopy-active completed failed cancelled"
    if [ "$st" != postcopy-active ]; then
        notok "postcopy (vCPU): the source did not reach postcopy-active: '$st': $(jget error-desc $E/q.out)"
        eng_drop; xl destroy xrpcfw > /dev/null 2>&1
        return
    fi
    ok "postcopy (vCPU): postcopy-active after $(since $ms) s, round 1 cut before its first batch ($(jget dirty-sync-count $E/q.out) rounds so far)"
    eng_wait 1500 "completed failed cancelled"
    cp $E/q.out $E/pcfw-final.out
    q $shell query-migrate; cp $E/q.out $E/pcfw-dst.out
    echo "# destination query-migrate: $(cat $E/pcfw-dst.out)"
    if [ "$st" != completed ]; then
        notok "postcopy (vCPU): migration completed: status '$st' after $(since $ms) s: $(jget error-desc $E/pcfw-final.out)"
        echo "# destination xenram:"; tail -n 15 /var/log/xen/qemu-dm-$shell--incoming.log | sed 's/^/#   /'
        eng_drop; timeout 60 xl destroy xrpcfw > /dev/null 2>&1
        return
    fi
    ok "postcopy (vCPU): completed in $(since $ms) s (downtime $(jget downtime $E/pcfw-final.out) ms)"
    vbt=$(sed -n 's/.*"postcopy-vcpu-blocktime": *\[\([0-9, ]*\)\].*/\1/p' $E/pcfw-dst.out | tr -d ' ')
    absent=$(jget made-absent $E/pcfw-dst.out)
    faults=$(jget faults $E/pcfw-dst.out)
    if [ -n "$vbt" ] && [ "$(echo "$vbt" | tr ',' '\n' | wc -l)" = 1 ] && [ "${vbt%%,*}" -gt 0 ] 2>/dev/null; then
        ok "postcopy (vCPU): the guest's vCPU waited on pages not yet there and was served: postcopy-vcpu-blocktime [$vbt] ms ($faults faults, $absent pages made absent)"
    else
        notok "postcopy (vCPU): postcopy-vcpu-blocktime '[$vbt]' for a 1-vCPU guest unpaused with its memory absent ($faults faults, made-absent '$absent')"
    fi
    $X/xr-memdig dump $shell 0 16384 > $E/pf4.dig 2>/dev/null
    sleep 1
    $X/xr-memdig dump $shell 0 16384 > $E/pf5.dig 2>/dev/null
    n=$(changed $E/pf4.dig $E/pf5.dig)
    set -- $($X/xr-shell info $shell) x x x x
    if [ "${n:-0}" -gt 0 ] && [ "$3" = 0 ] && [ "$4" = 0 ]; then
        ok "postcopy (vCPU): the guest runs on at the destination ($n frames rewritten in 1 s, not shut down)"
    else
        notok "postcopy (vCPU): the guest on the destination: '$n' frames rewritten in 1 s, paused '$3', shutdown '$4' $(xl dmesg 2>/dev/null | grep -a "(d$shell)" | tail -n 3 | tr '\n' ' ')"
    fi
    eng_finish
    check "postcopy (vCPU): xl destroy of the source guest" timeout 60 xl destroy xrpcfw
}

pager_tests
postcopy_tests
postcopy_fw_tests
for d in $(xl list | awk '$1 == "xrpgfw" || $1 == "xrpc" || $1 == "xrpcfw" {print $2}'); do xl destroy $d > /dev/null 2>&1; done
