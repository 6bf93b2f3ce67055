# SPDX-License-Identifier: LGPL-2.1-or-later
#
# dom0-engine.sh - sourced by dom0-tests.sh: xenram's own migration engine
# on real Xen (issue 12; docs/testing.md, docs/toolstack.md "xenram's own
# engine").  The steps a libxl patch would follow, done by hand:
#   1. xl creates the source: an HVM guest with xenram and its test DMA
#      (paused: the test DMA scribbles over the RAM the firmware would run
#      in), and dom0 writes pages of it too, each followed by
#      modified_memory: writes that only Xen's log-dirty knows of;
#   2. xr-shell builds the destination: the empty HVM domain shell;
#   3. a second xenram starts on it with -S -incoming unix:PATH, libxl's
#      other arguments as the source's xenram got them;
#   4. QMP to the source's xenram: capabilities (multifd,
#      pause-before-switchover, events), parameters (2 channels, a
#      bandwidth cap that makes the rounds live ones), migrate; at
#      pre-switchover dom0's writer stops, then migrate-continue;
#   5. at completion both domains are paused and both xenrams stopped:
#      memory compared page by page, the HVM contexts record by record,
#      the figures of query-migrate; then the destination is continued
#      and both are destroyed.
# Uses dom0-tests.sh's ok / notok / check / now / since / waitfor / xs_state.

E=/tmp/xreng
mkdir -p $E
cat > /etc/xen/xrt/xreng.cfg <<CFG
name="xreng"
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

# A number or string field of a QMP answer in file $2 ("ram" fields too).
jget() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^,\"}]*\).*/\1/p" "$2" | head -n1; }
# QMP to a domain's xenram; the answer in $E/q.out.
q() { $X/xr-memdig qmp "$@" > $E/q.out 2>&1; }

# The destination's argv, one a line: the source's, for domain $3, with
# -S (not with ENG_DEST_RUN=1: xenram then runs the guest itself once it
# is received, at RUN for postcopy) and -incoming unix:$4.
dest_argv() { # SRCPID SRC DST SOCK
    tr '\0' '\n' < /proc/$1/cmdline | awk -v s="$2" -v d="$3" -v sock="$4" \
        -v run="${ENG_DEST_RUN:-0}" '
        NR == 1 { next }
        skip { skip = 0; next }
        $0 == "-incoming" { skip = 1; next }
        $0 == "-S" { next }
        prev == "-xen-domid" { $0 = d }
        prev == "-name" { $0 = $0 "--incoming" }
        {
            gsub("qmp-libxl-" s ",", "qmp-libxl-" d ",")
            gsub("qmp-libxenstat-" s ",", "qmp-libxenstat-" d ",")
            print
            prev = $0
        }
        END { if (run != 1) print "-S"; print "-incoming"; print "unix:" sock }'
}

# Build the shell for source $1 and start the destination's xenram on it:
# sets shell, dpid, sock; 1 (with a not ok) when either fails.
eng_dest() { # SRC
    spid=$(xenstore-read /local/domain/$1/image/device-model-pid 2>/dev/null)
    if shell=$($X/xr-shell create $1 2> $E/shell.err); then
        ok "engine: empty HVM domain shell $shell built: $(tail -n 1 $E/shell.err)"
    else
        notok "engine: building the empty HVM domain shell: $(tail -n 3 $E/shell.err | tr '\n' ' ')"
        return 1
    fi
    set -- $($X/xr-shell info $shell) x x x
    [ "$1" = 0 ] && [ "$3" = 1 ] && ok "engine: the shell has no memory and is paused (tot_pages $1, max $2 kB)" ||
        notok "engine: the shell has no memory and is paused: tot_pages '$1', paused '$3'"
    sock=/var/run/xen/xenram-mig-$shell.sock
    rm -f $sock
    dest_argv $spid $src $shell $sock > $E/argv
    echo "# destination: xenram $(tr '\n' ' ' < $E/argv)"
    XEN_DOMAIN_ID=$shell $X/xenram $(cat $E/argv) < /dev/null \
        > /var/log/xen/qemu-dm-$shell--incoming.log 2>&1 &
    dpid=$!
    i=0; st=
    while [ $i -lt 150 ] && kill -0 $dpid 2>/dev/null; do
        if [ -S $sock ] && q $shell query-status; then
            st=$(jget status $E/q.out)
            [ "$st" = inmigrate ] && break
        fi
        sleep 0.2; i=$((i + 1))
    done
    if [ "$st" = inmigrate ]; then
        ok "engine: the destination's xenram (pid $dpid) listens on $sock, query-status inmigrate"
        return 0
    fi
    notok "engine: the destination's xenram is not waiting: status '$st', $(tail -n 4 /var/log/xen/qemu-dm-$shell--incoming.log | tr '\n' ' ')"
    eng_drop
    return 1
}

# The destination's xenram stopped, its shell destroyed (a failure's way out).
eng_drop() {
    kill $dpid 2>/dev/null; wait $dpid 2>/dev/null
    $X/xr-shell destroy $shell > /dev/null 2>&1
}

# Poll the source's query-migrate until its status is one of $2 (or $1 x
# 0.2 s pass): st, the answer in $E/q.out.
eng_wait() { # TRIES "STATUS..."
    i=0; st=
    while [ $i -lt $1 ]; do
        q $src query-migrate && st=$(jget status $E/q.out)
        for w in $2; do [ "$st" = "$w" ] && return 0; done
        sleep 0.2; i=$((i + 1))
    done
    return 1
}

# The destination quits on QMP quit, its shell and the source go.
eng_finish() {
    q $shell quit
    i=0; while [ $i -lt 50 ] && kill -0 $dpid 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
    kill -0 $dpid 2>/dev/null && { notok "engine: the destination's xenram quits on QMP quit"; kill -9 $dpid; }
    wait $dpid 2>/dev/null
    check "engine: the shell domain $shell destroyed" $X/xr-shell destroy $shell
}

# What the frames that differ between dumps $3 (domain $1) and $4 (domain
# $2) hold, on both sides (at most 4), and the two xenrams' last words.
eng_diff() { # SRC DST SRCDIG DSTDIG
    paste -d' ' $3 $4 | awk '$2 != $5 {print $1}' | head -n 4 |
        while read -r g; do
            say "# gfn 0x$g on domain $1:"; $X/xr-memdig hex $1 0x$g 2>&1 | head -n 24 | while IFS= read -r l; do say "#   $l"; done
            say "# gfn 0x$g on domain $2:"; $X/xr-memdig hex $2 0x$g 2>&1 | head -n 24 | while IFS= read -r l; do say "#   $l"; done
        done
    say "# source xenram:"
    grep -v '^\s*$' /var/log/xen/qemu-dm-$(xl domname $1 2>/dev/null).log | tail -n 12 | while IFS= read -r l; do say "#   $l"; done
    say "# destination xenram:"
    tail -n 12 /var/log/xen/qemu-dm-$2--incoming.log | while IFS= read -r l; do say "#   $l"; done
}

engine_tests() {
    s=$(now)
    if ! timeout 120 xl create -p /etc/xen/xrt/xreng.cfg > $E/create.out 2>&1; then
        notok "engine: xl create -p of the source guest: $(tail -n 5 $E/create.out | tr '\n' ' ')"
        return
    fi
    src=$(xl_domid xreng)
    spid=$(xenstore-read /local/domain/$src/image/device-model-pid 2>/dev/null)
    ok "engine: source guest $src with xenram (pid $spid) and its test DMA ($(since $s) s)"

    # What Xen gives a toolstack on an empty shell (docs/toolstack.md).
    if $X/xr-shell probe $src > $E/probe.out 2>&1; then
        ok "engine: an empty shell probed and destroyed again"
    else
        notok "engine: probing an empty shell: $(grep -v '^#' $E/probe.out | tail -n 2 | tr '\n' ' ')"
    fi
    grep '^#' $E/probe.out | while IFS= read -r l; do say "$l"; done

    # 2., 3. The empty shell and the destination's xenram.
    eng_dest $src || return

    # 1b. dom0's writer: 64 frames at 16 MiB, 100 writes a second.
    $X/xr-shell scribble $src 0x1000 64 100 > $E/scribble.out 2>&1 &
    wpid=$!
    waitfor $E/scribble.out ready 20 || notok "engine: dom0's writer did not start: $(cat $E/scribble.out)"
    $X/xr-memdig dump $src 0x1000 64 > $E/w0.dig 2>/dev/null

    # 4. The migration.
    check "engine: migrate-set-capabilities multifd, pause-before-switchover, events" \
        $X/xr-memdig qmp $src migrate-set-capabilities '{"capabilities":[{"capability":"multifd","state":true},{"capability":"pause-before-switchover","state":true},{"capability":"events","state":true}]}'
    check "engine: migrate-set-parameters 2 channels, max-bandwidth 2 MiB/s, downtime-limit 300 ms" \
        $X/xr-memdig qmp $src migrate-set-parameters '{"multifd-channels":2,"max-bandwidth":2097152,"downtime-limit":300,"multifd-compression":"none"}'
    ms=$(now)
    if q $src migrate "{\"uri\":\"unix:$sock\"}"; then
        ok "engine: migrate {\"uri\": \"unix:$sock\"} accepted"
    else
        notok "engine: migrate refused: $(cat $E/q.out)"
    fi
    eng_wait 600 "pre-switchover completed failed cancelled"
    cp $E/q.out $E/pre.out
    kill -TERM $wpid 2>/dev/null
    wait $wpid
    if [ "$st" = pre-switchover ]; then
        ok "engine: pre-switchover after $(since $ms) s and $(jget dirty-sync-count $E/pre.out) live rounds; dom0's writer stopped ($(tail -n 1 $E/scribble.out))"
    else
        notok "engine: the migration did not reach pre-switchover: status '$st' after $(since $ms) s: $(cat $E/q.out)"
        echo "# source xenram:"; tail -n 10 /var/log/xen/qemu-dm-xreng.log | sed 's/^/#   /'
        echo "# destination xenram:"; tail -n 10 /var/log/xen/qemu-dm-$shell--incoming.log | sed 's/^/#   /'
        q $src migrate_cancel
        eng_drop
        return
    fi
    set -- $($X/xr-shell info $src)
    [ "$3" = 1 ] && ok "engine: at pre-switchover the source domain is paused" ||
        notok "engine: at pre-switchover the source domain is not paused (paused '$3')"
    check "engine: migrate-continue" $X/xr-memdig qmp $src migrate-continue '{"state":"pre-switchover"}'
    eng_wait 300 "completed failed cancelled"
    cp $E/q.out $E/final.out
    echo "# query-migrate: $(cat $E/final.out)"
    if [ "$st" != completed ]; then
        notok "engine: migration completed: status '$st' after $(since $ms) s: $(jget error-desc $E/final.out)"
        echo "# destination xenram:"; tail -n 10 /var/log/xen/qemu-dm-$shell--incoming.log | sed 's/^/#   /'
        eng_drop
        return
    fi
    rounds=$(jget dirty-sync-count $E/final.out)
    total=$(jget total $E/final.out)
    normal=$(jget normal $E/final.out)
    dup=$(jget duplicate $E/final.out)
    xfer=$(jget transferred $E/final.out)
    ttime=$(jget total-time $E/final.out)
    dtime=$(jget downtime $E/final.out)
    ok "engine: migration completed in $(since $ms) s (total-time $ttime ms, downtime $dtime ms, $rounds rounds)"
    [ "$total" = $((64 << 20)) ] && ok "engine: ram.total is the guest's 64 MiB ($total)" ||
        notok "engine: ram.total '$total' is not the guest's 64 MiB"
    # Each live round ends in a CLEAN of Xen's log; the last is the pass
    # after the pause.
    [ "${rounds:-0}" -ge 3 ] && ok "engine: at least two live rounds before the final one (dirty-sync-count $rounds)" ||
        notok "engine: at least two live rounds before the final one: dirty-sync-count '$rounds'"
    [ -n "$ttime" ] && [ -n "$dtime" ] && [ "$dtime" -le "$ttime" ] && [ "$xfer" -ge $((normal * 4096)) ] &&
        [ $((normal + dup)) -ge $((total / 4096 - 32)) ] &&
        ok "engine: query-migrate's figures agree: $normal pages sent ($xfer bytes), $dup zero pages, downtime $dtime <= total $ttime ms" ||
        notok "engine: query-migrate's figures: normal '$normal' duplicate '$dup' transferred '$xfer' total '$total' downtime '$dtime' total-time '$ttime'"

    # 5. At switchover: both paused, both xenrams stopped.
    q $shell query-status; dst=$(jget status $E/q.out)
    [ "$dst" = paused ] && ok "engine: the destination's xenram is paused (-S) with the guest received" ||
        notok "engine: the destination's xenram status is '$dst', not paused: $(cat $E/q.out)"
    set -- $($X/xr-shell info $src); sp=$3; spages=$1
    set -- $($X/xr-shell info $shell); dp=$3; dpages=$1
    [ "$sp" = 1 ] && [ "$dp" = 1 ] && ok "engine: both domains paused" ||
        notok "engine: both domains paused: source '$sp', destination '$dp'"
    [ "$spages" = "$dpages" ] && ok "engine: the destination holds as many frames as the source ($dpages)" ||
        notok "engine: the destination holds $dpages frames, the source $spages"
    [ -e $sock ] && notok "engine: the destination removed its socket $sock" ||
        ok "engine: the destination removed its socket"
    $X/xr-memdig dump $src 0 16384 > $E/src.dig 2> $E/dig.err
    $X/xr-memdig dump $shell 0 16384 > $E/dst.dig 2>> $E/dig.err
    if r=$($X/xr-memdig cmp $E/src.dig $E/dst.dig 0 2>&1); then
        ok "engine: destination memory equals the source's at switchover, page by page: $(echo $r | tr '\n' ' ')"
    else
        notok "engine: destination memory equals the source's at switchover: $(echo $r | tr '\n' ' ') $(tail -n 2 $E/dig.err | tr '\n' ' ')"
        eng_diff $src $shell $E/src.dig $E/dst.dig
    fi
    # The frames only Xen's log-dirty knew to be dirty.
    $X/xr-memdig dump $src 0x1000 64 > $E/w1.dig 2>/dev/null
    $X/xr-memdig dump $shell 0x1000 64 > $E/w2.dig 2>/dev/null
    moved=$(paste -d' ' $E/w0.dig $E/w1.dig | awk '$2 != $5' | wc -l)
    if [ "$moved" -gt 0 ] && cmp -s $E/w1.dig $E/w2.dig; then
        ok "engine: the $moved frames dom0 rewrote during the rounds, known only to Xen's log-dirty, are the source's last on the destination"
    else
        notok "engine: dom0's frames: $moved of 64 rewritten during the rounds; equal on the destination: $(cmp -s $E/w1.dig $E/w2.dig && echo yes || echo no)"
    fi
    nz=$(awk '{print $2}' $E/src.dig | sort | uniq -c | sort -rn | awk 'NR > 1 {n += $1} END {print n + 0}')
    [ "${normal:-0}" -gt "$nz" ] && ok "engine: pages re-sent as dirty: $normal sent for $nz distinct non-zero frames" ||
        notok "engine: pages re-sent as dirty: $normal sent for $nz distinct non-zero frames"
    if r=$($X/xr-shell ctxcmp $src $shell 2>&1); then
        ok "engine: the HVM context read back on the destination is the source's: $(echo "$r" | tail -n 1)"
    else
        notok "engine: the HVM context read back on the destination: $(echo "$r" | grep -e DIFF -e missing -e length | head -n 3 | tr '\n' ' ') $(echo "$r" | tail -n 1)"
    fi
    echo "$r" | grep '^#' | while IFS= read -r l; do say "$l"; done
    if r=$($X/xr-shell paramcmp $src $shell 2>&1); then
        ok "engine: the HVM parameters a migration carries are the source's on the destination: $(echo "$r" | tail -n 1)"
    else
        notok "engine: the HVM parameters on the destination: $(echo "$r" | tr '\n' ' ')"
    fi
    echo "$r" | grep '^#' | while IFS= read -r l; do say "$l"; done
    # The destination runs on: cont (its devices resume).
    if q $shell cont; then
        i=0; while [ $i -lt 50 ] && [ "$(xs_state $shell)" != running ]; do sleep 0.2; i=$((i + 1)); done
        q $shell query-status; dst=$(jget status $E/q.out)
        [ "$dst" = running ] && [ "$(xs_state $shell)" = running ] &&
            ok "engine: after cont the destination's xenram runs (query-status running, xenstore state running)" ||
            notok "engine: after cont: query-status '$dst', xenstore state '$(xs_state $shell)'"
    else
        notok "engine: cont to the destination's xenram: $(cat $E/q.out)"
    fi

    # Clean-up: the destination's xenram and shell, then the source.
    eng_finish
    check "engine: xl destroy of the source guest" timeout 60 xl destroy xreng
}

# ---- the guest's own writes: a running firmware guest -------------------------------
# The same migration of a guest whose vCPU runs: hvmloader and SeaBIOS,
# which once it found no boot device waits with the timer ticking (the
# BIOS data area's tick count at 0x46c, in frame 0, and its stack are
# rewritten ~18 times a second).  No test DMA here: it would scribble over
# the firmware.  Only Xen's log-dirty sees those writes; at the end the
# destination is unpaused and its vCPU must run on from the context set.
# fw_guest NAME LABEL: such a guest, NAME.cfg written and created; waits
# for SeaBIOS's boot retry.  Sets src (its domid) and s (when it was
# created); 1 after a notok (the guest destroyed), for the caller to return.
fw_guest() {
    cat > /etc/xen/xrt/$1.cfg <<CFG
name="$1"
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
    xl dmesg -c > /dev/null 2>&1
    # Debian's xl has once died of SIGSEGV here after the domain was up
    # (2026-12-01): said, the domain destroyed, and one more try.
    if ! timeout 120 xl create -e /etc/xen/xrt/$1.cfg > $E/create.out 2>&1; then
        say "# $2: xl create failed, once more: $(tail -n 3 $E/create.out | tr '\n' ' ')"
        xl destroy $1 > /dev/null 2>&1
        xl dmesg -c > /dev/null 2>&1
        if ! timeout 120 xl create -e /etc/xen/xrt/$1.cfg > $E/create.out 2>&1; then
            notok "$2: xl create: $(tail -n 5 $E/create.out | tr '\n' ' ')"
            return 1
        fi
    fi
    src=$(xl_domid $1)
    s=$(now); i=0
    while [ $i -lt 120 ] && ! xl dmesg 2>/dev/null | grep -aq "No bootable device"; do sleep 0.5; i=$((i + 1)); done
    if ! xl dmesg 2>/dev/null | grep -aq "No bootable device"; then
        notok "$2: SeaBIOS did not reach its boot retry in 60 s: $(xl dmesg 2>/dev/null | grep -a "(d$src)" | tail -n 2 | tr '\n' ' ')"
        xl destroy $1 > /dev/null 2>&1
        return 1
    fi
}

# The frames that differ between two dumps.
changed() { paste -d' ' "$1" "$2" | awk '$2 != $5' | wc -l; }

engine_fw_tests() {
    fw_guest xrengfw "engine (running guest)" || return
    $X/xr-memdig dump $src 0 16384 > $E/f0.dig 2>/dev/null
    sleep 1
    $X/xr-memdig dump $src 0 16384 > $E/f1.dig 2>/dev/null
    n=$(changed $E/f0.dig $E/f1.dig)
    if [ "$n" -gt 0 ]; then
        ok "engine (running guest): SeaBIOS waits after $(since $s) s; its vCPU rewrote $n frames in 1 s"
    else
        skip "engine (running guest): the guest's vCPU wrote no frame in 1 s, nothing for log-dirty to find"
        xl destroy xrengfw > /dev/null 2>&1
        return
    fi
    eng_dest $src || { xl destroy xrengfw > /dev/null 2>&1; return; }
    q $src migrate-set-capabilities '{"capabilities":[{"capability":"multifd","state":true},{"capability":"pause-before-switchover","state":false},{"capability":"events","state":true}]}'
    q $src migrate-set-parameters '{"multifd-channels":2,"max-bandwidth":2097152,"downtime-limit":300,"multifd-compression":"none"}'
    ms=$(now)
    if ! q $src migrate "{\"uri\":\"unix:$sock\"}"; then
        notok "engine (running guest): migrate refused: $(cat $E/q.out)"
        eng_drop; xl destroy xrengfw > /dev/null 2>&1
        return
    fi
    eng_wait 600 "completed failed cancelled"
    cp $E/q.out $E/final.out
    echo "# query-migrate: $(cat $E/final.out)"
    if [ "$st" != completed ]; then
        notok "engine (running guest): migration completed: status '$st' after $(since $ms) s: $(jget error-desc $E/final.out)"
        eng_drop; xl destroy xrengfw > /dev/null 2>&1
        return
    fi
    ok "engine (running guest): migration completed in $(since $ms) s ($(jget dirty-sync-count $E/final.out) rounds, downtime $(jget downtime $E/final.out) ms)"
    $X/xr-memdig dump $src 0 16384 > $E/f2.dig 2>/dev/null
    $X/xr-memdig dump $shell 0 16384 > $E/f3.dig 2>/dev/null
    n=$(changed $E/f1.dig $E/f2.dig)
    if r=$($X/xr-memdig cmp $E/f2.dig $E/f3.dig 0 2>&1) && [ "$n" -gt 0 ]; then
        ok "engine (running guest): memory equal at switchover, page by page, with the $n frames the guest rewrote since the migration began: $(echo $r | tr '\n' ' ')"
    else
        notok "engine (running guest): memory at switchover ($n frames rewritten by the guest): $(echo $r | tr '\n' ' ')"
        eng_diff $src $shell $E/f2.dig $E/f3.dig
    fi
    if r=$($X/xr-shell ctxcmp $src $shell 2>&1); then
        ok "engine (running guest): the HVM context read back on the destination is the source's: $(echo "$r" | tail -n 1)"
    else
        notok "engine (running guest): the HVM context on the destination: $(echo "$r" | grep -e DIFF -e missing -e length | head -n 3 | tr '\n' ' ') $(echo "$r" | tail -n 1)"
        echo "$r" | grep '^#' | while IFS= read -r l; do say "$l"; done
    fi
    # The guest runs on at the destination, from the context set.
    q $shell cont
    $X/xr-shell unpause $shell
    sleep 1
    $X/xr-memdig dump $shell 0 16384 > $E/f4.dig 2>/dev/null
    sleep 1
    $X/xr-memdig dump $shell 0 16384 > $E/f5.dig 2>/dev/null
    n=$(changed $E/f4.dig $E/f5.dig)
    set -- $($X/xr-shell info $shell) x x x x
    if [ "$n" -gt 0 ] && [ "$3" = 0 ] && [ "$4" = 0 ]; then
        ok "engine (running guest): unpaused, the guest runs on at the destination ($n frames rewritten in 1 s, not shut down)"
    else
        notok "engine (running guest): the guest on the destination: $n frames rewritten in 1 s, paused '$3', shutdown '$4' $(xl dmesg 2>/dev/null | grep -a "(d$shell)" | tail -n 3 | tr '\n' ' ')"
    fi
    eng_finish
    check "engine (running guest): xl destroy of the source guest" timeout 60 xl destroy xrengfw
}

# dom0-postcopy.sh sources this file for its functions alone.
[ -n "${XENGINE_FUNCS_ONLY:-}" ] && return 0
engine_tests
engine_fw_tests
for d in $(xl list | awk '$1 == "xreng" || $1 == "xrengfw" {print $2}'); do xl destroy $d > /dev/null 2>&1; done
