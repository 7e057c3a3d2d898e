#!/usr/bin/env bash
# The cluster suite's lab (ci/cluster-suite.sh starts it in new PID, network and mount namespaces, so
# that everything it makes dies with it and nothing reaches the host): a bridge, one network namespace
# per node with a veth into it (addresses exist only in here), the nodes (ci/cluster/node.sh): rabbit-1
# holding more quorum votes than the four compute nodes together, as NNF does, our two watchers on it,
# one fence_gfs2_recorder device per compute node as fencing level 1 and the lab's power switch
# (ci/cluster/fence_lab) as level 2. Then the scenarios, each checked from Pacemaker's side
# (stonith_admin --history, crm_mon), the switch's ledger and the audit chain, and the time from a
# node lost to it fenced, split into its parts.
# Usage (inside the lab): lab.sh LAB BIN [SCENARIO...]   SCENARIO: lost, watchers, chassis, nnf, stress,
# upgrade (default: these, in that order); OLD_BIN in the environment: the previous build's binaries
# (ci/old-build.sh), for upgrade.
set -uo pipefail
LAB=$1 BIN=$2
shift 2
SCENARIOS=${*:-lost watchers chassis nnf stress upgrade}
HERE=$(cd "$(dirname "$0")" && pwd)
COMPUTES=(compute-2 compute-3 compute-4 compute-5)
NODES=(rabbit-1 "${COMPUTES[@]}")
PASS=0 FAIL=0
LOGS=$LAB/rabbit-logs
SPOOL=/run/gfs2-fencing

pass() { PASS=$((PASS + 1)); echo "  ok    $*"; }
fail() { FAIL=$((FAIL + 1)); echo "  FAIL  $*"; }
check() { local what=$1; shift; if "$@" >>"$LAB/checks.log" 2>&1; then pass "$what"; else fail "$what"; fi; }
wait_for() { local n=$(($1 * 5)); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
now_ms() { date +%s%3N; }
num() { echo "${1#*-}"; }
init_of() { cat "$LAB/nodes/$1.pid" 2>/dev/null; }
# -r -w: the rabbit's root and directory too, so that a lab chrooted into another root (Pacemaker 3.0's,
# ci/pacemaker3-suite.sh) runs that root's tools, not the host's (entering a mount namespace alone
# would leave the chroot).
in_rabbit() { nsenter -t "$(init_of rabbit-1)" -n -m -u -i -r -w "$@"; }

# ---- the network: a bridge here, a namespace and a veth per node
mount -t tmpfs -o mode=0755 tmpfs /run
ip link set lo up
ip link add br0 type bridge && ip link set br0 up
for n in "${NODES[@]}"; do
    i=$(num "$n"); [ "$n" = rabbit-1 ] && i=1
    ip netns add "$n"
    ip link add "v-$i" type veth peer name eth0 netns "$n"
    ip link set "v-$i" master br0 up
    ip -n "$n" addr add "10.99.0.$i/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
done

# ---- what every node shares: corosync.conf, authkey, the CIB to start from, the agents
mkdir -p "$LAB/nodes" "$LAB/sbin" "$LAB/bin" "$LOGS"
readlink /proc/self/ns/pid >"$LAB/pidns"
chmod 0700 "$LOGS"
install -m 0755 "$HERE/fence_lab" "$LAB/sbin/"
install -m 0755 "$BIN/gfs2-fence-watcher" "$BIN/gfs2-fence-events" "$BIN/nnf-sos-standin" "$LAB/bin/"
# The agent the nodes run is $LAB/agent/fence_gfs2_recorder, through a link in their /usr/sbin: the
# upgrade scenario replaces it as an RPM does (a new file renamed over the old), which a file in the
# overlay's lower directory would not allow while mounted.
install_agent() { # BIN_DIR
    mkdir -p "$LAB/agent"
    install -m 0755 "$1/fence_gfs2_recorder" "$LAB/agent/.fence_gfs2_recorder.new"
    mv -f "$LAB/agent/.fence_gfs2_recorder.new" "$LAB/agent/fence_gfs2_recorder"
}
install_agent "$BIN"
ln -s "$LAB/agent/fence_gfs2_recorder" "$LAB/sbin/fence_gfs2_recorder"
cat >"$LAB/watcher.json" <<JSON
{"default": {"command": "$LAB/sbin/fence_lab", "options": {"lab": "$LAB"}}}
JSON
corosync_conf() {
    cat <<CONF
totem {
    version: 2
    cluster_name: gfs2lab
    transport: knet
    # A lost node is seen in about 5 s instead of 11 (3 s + 650 ms per node over two, then 1.2 times
    # that for consensus): the suite loses nodes about twenty times a run on each Pacemaker generation.
    token: 2000
    token_coefficient: 0
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
$(for n in "${NODES[@]}"; do
    i=$(num "$n"); votes=1; [ "$n" = rabbit-1 ] && { i=1; votes=${#COMPUTES[@]}; votes=$((votes + 1)); }
    printf '    node {\n        ring0_addr: 10.99.0.%s\n        name: %s\n        nodeid: %s\n        quorum_votes: %s\n    }\n' "$i" "$n" "$i" "$votes"
done)
}
quorum {
    provider: corosync_votequorum
}
logging {
    to_logfile: yes
    logfile: /var/log/pacemaker/corosync.log
    to_syslog: no
    to_stderr: no
    timestamp: hires
}
CONF
}
nv() { echo "<nvpair id=\"$1-$2\" name=\"$2\" value=\"$3\"/>"; }
cib_xml() {
    cat <<XML
<cib validate-with="pacemaker-3.0" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="o">
        $(nv o stonith-enabled true) $(nv o dc-deadtime 5s) $(nv o stonith-timeout 90s)
        $(nv o start-failure-is-fatal false) $(nv o cluster-recheck-interval 5s) $(nv o symmetric-cluster false)
        $(nv o startup-fencing false)
      </cluster_property_set>
    </crm_config>
    <nodes>
$(for n in "${NODES[@]}"; do i=$(num "$n"); [ "$n" = rabbit-1 ] && i=1; echo "      <node id=\"$i\" uname=\"$n\"/>"; done)
    </nodes>
    <resources>
$(for c in "${COMPUTES[@]}"; do cat <<DEV
      <primitive id="fence-$c" class="stonith" type="fence_gfs2_recorder">
        <instance_attributes id="fence-$c-ia">
          $(nv "fence-$c" pcmk_host_list "$c") $(nv "fence-$c" spool_dir "$SPOOL") $(nv "fence-$c" log_dir "$LOGS")
          $(nv "fence-$c" fence_timeout 20) $(nv "fence-$c" pcmk_reboot_timeout 60) $(nv "fence-$c" pcmk_off_timeout 60)
        </instance_attributes>
        <meta_attributes id="fence-$c-meta">$(nv "fence-$c-meta" migration-threshold 1)</meta_attributes>
        <operations><op id="fence-$c-monitor" name="monitor" interval="3s"/></operations>
      </primitive>
DEV
done)
      <primitive id="switch" class="stonith" type="fence_lab">
        <instance_attributes id="switch-ia">
          $(nv switch pcmk_host_list "${COMPUTES[*]}") $(nv switch lab "$LAB")
        </instance_attributes>
      </primitive>
    </resources>
    <constraints>
$(for r in "${COMPUTES[@]/#/fence-}" switch; do echo "      <rsc_location id=\"loc-$r\" rsc=\"$r\" node=\"rabbit-1\" score=\"INFINITY\"/>"; done)
    </constraints>
    <fencing-topology>
$(for c in "${COMPUTES[@]}"; do
    echo "      <fencing-level id=\"l1-$c\" target=\"$c\" index=\"1\" devices=\"fence-$c\"/>"
    echo "      <fencing-level id=\"l2-$c\" target=\"$c\" index=\"2\" devices=\"switch\"/>"
done)
    </fencing-topology>
  </configuration>
  <status/>
</cib>
XML
}
head -c 256 /dev/urandom >"$LAB/authkey"
for n in "${NODES[@]}"; do
    d=$LAB/node/$n
    mkdir -p "$d/etc/corosync" "$d/var/lib/pacemaker/cib" "$d/var/lib/corosync" "$d/var/log/pacemaker"
    corosync_conf >"$d/etc/corosync/corosync.conf"
    install -m 0400 "$LAB/authkey" "$d/etc/corosync/authkey"
    cib_xml >"$d/var/lib/pacemaker/cib/cib.xml"
    chown -R hacluster:haclient "$d/var/lib/pacemaker" "$d/var/log/pacemaker"
    chmod 0600 "$d/var/lib/pacemaker/cib/cib.xml"
done

# ---- nodes
# node_start NAME: the rabbit shares this PID namespace (its switch must see the other nodes'
# processes); a compute node gets its own, whose first process is what the switch ends.
node_start() {
    local n=$1 pidns=()
    [ "$n" = rabbit-1 ] || pidns=(--pid --fork --mount-proc)
    rm -f "$LAB/nodes/$n.pid"
    setsid ip netns exec "$n" unshare --mount --uts --ipc "${pidns[@]}" --propagation private \
        bash "$HERE/node.sh" "$LAB" "$n" >>"$LAB/node-$n.out" 2>&1 &
    # The rabbit writes its own pid (this PID namespace's); a compute node's first process is found
    # among the processes of its network namespace as the one that is 1 in a PID namespace of its own.
    [ "$n" = rabbit-1 ] && { wait_for 10 test -s "$LAB/nodes/$n.pid"; return; }
    local p first=
    for _ in $(seq 300); do
        for p in $(ip netns pids "$n" 2>/dev/null); do
            awk '/^NSpid:/ { exit !(NF > 2 && $NF == 1) }' "/proc/$p/status" 2>/dev/null && { first=$p; break; }
        done
        [ -n "$first" ] && break
        sleep 0.1
    done
    echo "$first" >"$LAB/nodes/$n.pid"
    [ -n "$first" ] || { echo "$(now_ms) node_start $n: its first process not found within 30 s" >&2; return 1; }
}
mon() { in_rabbit crm_mon -1 --output-as=xml 2>/dev/null; }
online() { mon | grep -q "<node name=\"$1\" id=\"[0-9]*\" online=\"true\""; }
# A full member: online, its join done (not pending) and expected up. A node lost before its join is
# done is not fenced (startup-fencing=false), so a scenario that loses a node starts only from here.
member() { mon | grep -q "<node name=\"$1\" id=\"[0-9]*\" online=\"true\"[^>]* pending=\"false\"[^>]* expected_up=\"true\""; }
all_members() {
    local x; x=$(mon) || return 1
    for n in "$@"; do
        grep -q "<node name=\"$n\" id=\"[0-9]*\" online=\"true\"[^>]* pending=\"false\"[^>]* expected_up=\"true\"" <<<"$x" || return 1
    done
}
device_started() { mon | grep -q "resource id=\"$1\"[^>]*role=\"Started\""; }
offline() { mon | grep -q "<node name=\"$1\" id=\"[0-9]*\" online=\"false\""; }
# --verbose: without it the history shows only the last fence of each kind. Fences only: once a device
# provides unfencing (the nnf scenario), every rejoin adds an "unfencing of NODE successful" line.
fenced_count() { in_rabbit stonith_admin --history "$1" --verbose 2>/dev/null | grep -cE "(^|[[:space:]])(reboot|off) of $1 successful" || true; }
ended() { ! [ -e "/proc/$(init_of "$1")" ]; }
corosync_of() { pgrep --ns "$(init_of "$1")" --nslist pid -x corosync; }
# ledger TARGET EVENT: how many times the switch's ledger holds EVENT for TARGET (0 before its first line).
ledger() { cat "$LAB/fence-ledger.jsonl" 2>/dev/null | grep -c "\"event\":\"$2\",\"target\":\"$1\"" || true; }

# The time of a node's loss, split: fault → lost (corosync) → fence asked (Pacemaker) → switch →
# fenced (history). From the nodes' logs (hires timestamps) and the switch's ledger.
log_ms() { # FILE PATTERN: the time of the last line matching, in ms
    local line stamp
    line=$(grep -h "$2" "$1" 2>/dev/null | tail -n 1) || return 0
    stamp=$(cut -c1-19 <<<"$line")
    [ -n "$line" ] && date -d "$stamp" +%s%3N 2>/dev/null
}
split_times() { # NODE FAULT_MS FENCED_MS
    local n=$1 fault=$2 done=$3 pl lost asked start ended
    pl=$(ls "$LAB"/node/*/var/log/pacemaker/pacemaker.log)
    lost=$(log_ms "$LAB/node/rabbit-1/var/log/pacemaker/pacemaker.log" "Node $n state is now lost")
    asked=$(for f in $pl; do log_ms "$f" "Requesting fencing .* targeting node $n\|Requesting fencing .* of node $n"; done | sort -n | tail -n 1)
    start=$(grep "\"target\":\"$n\"" "$LAB/fence-ledger.jsonl" | grep '"event":"start"' | tail -n 1 | sed 's/.*"t_ms":\([0-9]*\).*/\1/')
    ended=$(grep "\"target\":\"$n\"" "$LAB/fence-ledger.jsonl" | grep -E '"event":"(off|reboot)"' | tail -n 1 | sed 's/.*"t_ms":\([0-9]*\).*/\1/')
    if [ -z "$start" ] || [ "$start" -lt "$fault" ]; then
        # Not the switch (nnf-sos detached the node's storage): the agent and its responder together.
        printf '   %s: lost after %s ms (corosync); fencing asked %s ms later (Pacemaker); fenced %s ms later (agent and nnf-sos, seen in the history); %s ms in all\n' \
            "$n" "$(( ${lost:-$fault} - fault ))" "$(( ${asked:-$lost} - ${lost:-$fault} ))" "$(( done - ${asked:-$fault} ))" \
            "$(( done - fault ))" | tee -a "$LAB/times.txt"
        return
    fi
    printf '   %s: lost after %s ms (corosync); fencing asked %s ms later (Pacemaker); switch started %s ms later (agent, watchers); node ended %s ms later; Pacemaker saw it fenced %s ms later; %s ms in all\n' \
        "$n" "$(( ${lost:-$fault} - fault ))" "$(( ${asked:-$lost} - ${lost:-$fault} ))" "$(( ${start:-$asked} - ${asked:-$fault} ))" \
        "$(( ${ended:-$start} - ${start:-$fault} ))" "$(( done - ${ended:-$fault} ))" "$(( done - fault ))" | tee -a "$LAB/times.txt"
}
# freeze NODE: its corosync SIGSTOPped, and seen stopped (a lab too loaded to find the process says
# so here, instead of a node never lost).
freeze() {
    local pid
    wait_for 5 has_corosync "$1" || return 1
    pid=$(corosync_of "$1" | head -n 1)
    kill -STOP "$pid" && wait_for 5 stopped "$pid"
}
has_corosync() { [ -n "$(corosync_of "$1")" ]; }
stopped() { [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = T ]; }
# lose HOW NODE...: each node lost at once (freeze: corosync SIGSTOPped; cut: its link down), then
# waits until Pacemaker has fenced each once more; prints the times.
lose() {
    local how=$1; shift
    local -A before=()
    for n in "$@"; do before[$n]=$(fenced_count "$n"); done
    local fault; fault=$(now_ms)
    for n in "$@"; do
        echo "$(now_ms) $how $n (first process $(init_of "$n"), corosync $(corosync_of "$n" | tr '\n' ' '))" >&2
        case "$how" in
        freeze) freeze "$n" || { echo "$(now_ms) $n: corosync could not be frozen" >&2; return 1; } ;;
        cut) ip link set "v-$(num "$n")" down ;;
        esac
    done
    local left=("$@") deadline=$((SECONDS + 90))
    while [ ${#left[@]} -gt 0 ] && [ $SECONDS -lt $deadline ]; do
        local still=()
        for n in "${left[@]}"; do
            if [ "$(fenced_count "$n")" -gt "${before[$n]}" ]; then split_times "$n" "$fault" "$(now_ms)"; else still+=("$n"); fi
        done
        left=("${still[@]}")
        [ ${#left[@]} -gt 0 ] && sleep 0.2
    done
    [ ${#left[@]} -eq 0 ]
}
# back NODE: its link up again, the node started again, until it is online.
back() {
    ip link set "v-$(num "$1")" up
    wait_for 20 ended "$1" || { echo "$(now_ms) back $1: its previous processes did not end" >&2; return 1; }
    node_start "$1" || return 1
    wait_for 60 member "$1" || { echo "$(now_ms) back $1: not a full member within 60 s" >&2; return 1; }
}
once_more() { [ "$(fenced_count "$1")" = "$2" ]; }
# A watcher's pid, from its heartbeat (the rabbit shares this PID namespace).
watcher_pid() { in_rabbit cat "$SPOOL/members/w$1.json" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'; }
running() { local state; state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]; }
start_watcher() { # N [BIN_DIR]
    in_rabbit setsid env GFS2_FENCE_LOG=info "${2:-$LAB/bin}/gfs2-fence-watcher" run --spool-dir "$SPOOL" \
        --config "$LAB/watcher.json" --id "w$1" --rescan-interval 0.3 --heartbeat-interval 0.3 --ttl 3 \
        --health-interval 0 --log-dir "$LOGS" --alerts-dir /run/gfs2-fencing-alerts \
        </dev/null >>"$LAB/watcher-$1.log" 2>&1 &
}
# restart_watcher N BIN_DIR: as systemctl restart does: TERM (a fence it runs finishes first), wait
# for it to end, start it from BIN_DIR, wait for its heartbeat.
restart_watcher() {
    local pid; pid=$(watcher_pid "$1")
    kill -TERM "$pid"
    wait_for 60 ended_pid "$pid" || return 1
    start_watcher "$1" "$2"
    wait_for 10 replaced "$1" "$pid"
}
ended_pid() { ! running "$1"; }
replaced() { local p; p=$(watcher_pid "$1") && [ -n "$p" ] && [ "$p" != "$2" ] && running "$p"; }
in_flight() { [ -n "$(in_rabbit ls "$SPOOL/claimed" 2>/dev/null)" ]; }
records_name_cluster() { tail -n 1 "$LOGS/fence-events-detailed.jsonl" | grep -q '"cluster": "gfs2lab"'; }

report() {
    echo "== from a node lost to it fenced, each loss:"
    cat "$LAB/times.txt" 2>/dev/null
    echo "cluster suite: $PASS passed, $FAIL failed"
    if [ "$FAIL" != 0 ]; then
        for n in "${NODES[@]}"; do
            echo "---- $n: last lines of pacemaker.log"
            tail -n 25 "$LAB/node/$n/var/log/pacemaker/pacemaker.log" 2>/dev/null | cut -c1-220
        done
        for f in checks.log watcher-1.log watcher-2.log fence-ledger.jsonl; do
            [ -s "$LAB/$f" ] && { echo "---- last lines of $f"; tail -n 25 "$LAB/$f"; }
        done
        [ -s "$LOGS/fence-events.log" ] && { echo "---- last lines of the agent's log"; tail -n 25 "$LOGS/fence-events.log"; }
    fi
}
trap report EXIT

echo "== the cluster: rabbit-1 (${#COMPUTES[@]}+1 votes, two watchers) and ${COMPUTES[*]}"
# startup-fencing=false: the suite starts the nodes itself, and a compute node slower to join than the
# DC's election (a loaded CI machine) must not be fenced before the scenarios begin.
up_started=$(now_ms)
for n in "${NODES[@]}"; do node_start "$n"; done
check "every node online, its join done" wait_for 90 all_members "${NODES[@]}"
echo "   (up in $(( $(now_ms) - up_started )) ms)"
devices_started() { for c in "${COMPUTES[@]}"; do device_started "fence-$c" || return 1; done; }
check "every fence device Started on rabbit-1" wait_for 60 devices_started
free_rss() { ps -e -o rss= | awk '{s+=$1} END {print int(s/1024)}'; }
echo "   (about $(free_rss) MiB RSS in the lab)"

for s in $SCENARIOS; do case "$s" in
lost)
    echo "== 1. compute nodes lost: a frozen corosync, a cut link"
    check "compute-2 (corosync frozen) is fenced once, through fence_gfs2_recorder and the watchers" lose freeze compute-2
    check "  exactly one successful fence in Pacemaker's history" once_more compute-2 1
    check "  the switch ended it, run by a watcher" bash -c "grep '\"target\":\"compute-2\"' $LAB/fence-ledger.jsonl | grep -q '\"by\":\"watcher\"'"
    check "  every process of the node ended" wait_for 10 ended compute-2
    check "  crm_mon reports it OFFLINE" wait_for 20 offline compute-2
    check "  the agent's record names the cluster" records_name_cluster
    check "compute-3 (link cut) is fenced once" lose cut compute-3
    check "  exactly one successful fence in Pacemaker's history" once_more compute-3 1
    refuses_own() {
        ! printf 'action=off\nplug=rabbit-1\nlab=%s\n' "$LAB" | "$LAB/sbin/fence_lab" \
            && grep -q '"event":"refused","target":"rabbit-1"' "$LAB/fence-ledger.jsonl" && [ -e "/proc/$(init_of rabbit-1)" ]
    }
    check "the switch refuses to end a node in its own PID namespace (the rabbit, here the host's)" refuses_own
    check "compute-2 restarts and rejoins" back compute-2
    check "compute-3 restarts and rejoins" back compute-3
    ;;
watchers)
    echo "== 2. watchers killed, frozen, all down; a failed device"
    echo 2 >"$LAB/slow"
    in_claim() { in_rabbit ls "$SPOOL/claimed" | sed -n 's/^[0-9a-f-]\{36\}\.\(w[0-9]\)\.[0-9]*\.json$/\1/p' | head -n 1; }
    claimed() { [ -n "$(in_claim)" ]; }
    b4=$(fenced_count compute-4)
    s4=$(ledger compute-4 start) r4=$(ledger compute-4 reboot)
    # The watcher is killed while its switch runs, held (fence_lab): not merely once claimed (killed
    # between its claim and its spawn, it never ran the switch) nor after the switch ended the node
    # (the peer's run would find it already off): either way the peer's run would be the only one.
    touch "$LAB/hold"
    freeze compute-4 || fail "compute-4's corosync frozen"
    switch_running() { [ "$(ledger compute-4 start)" -gt "$s4" ] && claimed; }
    wait_for 60 switch_running
    victim=$(in_claim)
    kill -KILL "$(watcher_pid "${victim#w}")"
    rm -f "$LAB/hold"
    check "compute-4: the fence completes after SIGKILL of its watcher $victim" wait_for 60 once_more compute-4 $((b4 + 1))
    ran_twice() { [ "$(ledger compute-4 start)" -ge $((s4 + 2)) ]; }
    check "  the switch ran twice (killed, then the peer), Pacemaker saw one fence" ran_twice
    # The killed watcher's switch died with it (its process group, PR_SET_PDEATHSIG): only the peer's
    # run powered the node off.
    check "  the killed watcher's run died with it: the node powered off once" [ "$(ledger compute-4 reboot)" -eq $((r4 + 1)) ]
    start_watcher "${victim#w}"
    check "compute-4 rejoins" back compute-4
    b5=$(fenced_count compute-5)
    freeze compute-5 || fail "compute-5's corosync frozen"
    wait_for 60 claimed
    frozen=$(in_claim)
    kill -STOP "$(watcher_pid "${frozen#w}")"
    check "compute-5: the fence completes with its watcher $frozen SIGSTOPped" wait_for 60 once_more compute-5 $((b5 + 1))
    kill -KILL "$(watcher_pid "${frozen#w}")" 2>/dev/null; kill -CONT "$(watcher_pid "${frozen#w}")" 2>/dev/null
    start_watcher "${frozen#w}"
    rm -f "$LAB/slow"
    check "compute-5 rejoins" back compute-5
    # Every watcher down: level 1 fails at once, level 2 (the switch, run by Pacemaker) fences.
    for i in 1 2; do kill -TERM "$(watcher_pid $i)"; done
    watchers_gone() { ! in_rabbit pgrep -x gfs2-fence-watc >/dev/null; }
    wait_for 20 watchers_gone
    fenced_by_pacemaker() { grep '"target":"compute-2"' "$LAB/fence-ledger.jsonl" | tail -n 1 | grep -q '"by":"pacemaker-fenced"'; }
    check "every watcher down: compute-2 is fenced by level 2 after the agent failed fast" lose freeze compute-2
    check "  by the switch, which Pacemaker ran" fenced_by_pacemaker
    check "  the agent said no watcher lives" bash -c "grep -q 'no live gfs2-fence-watcher' $LOGS/fence-events-readable.log"
    # The device of compute-3 failed its monitor meanwhile (migration-threshold 1 keeps it stopped).
    failed() { mon | grep -E "op_key=\"fence-compute-3_(monitor_3000|start_0)\"" >/dev/null; }
    check "  fence-compute-3's monitor failed" wait_for 30 failed
    for i in 1 2; do start_watcher "$i"; done
    check "watchers back, fence-compute-3 failed and not restarted: compute-3 still fenced through it" lose freeze compute-3
    check "  by the watchers (level 1)" bash -c "grep '\"target\":\"compute-3\"' $LAB/fence-ledger.jsonl | tail -n 1 | grep -q '\"by\":\"watcher\"'"
    check "compute-2 rejoins" back compute-2
    check "compute-3 rejoins" back compute-3
    in_rabbit crm_resource --cleanup >/dev/null 2>&1
    ;;
chassis)
    echo "== 3. three compute nodes lost at once"
    check "compute-3, compute-4 and compute-5 (corosync frozen together) each fenced once" lose freeze compute-3 compute-4 compute-5
    for c in compute-3 compute-4 compute-5; do check "$c rejoins" back "$c"; done
    ;;
nnf)
    echo "== 4. nnf-sos as the responder: storage detached, status, an unfence by command, Pacemaker's unfencing"
    NNF=/run/nnf
    echo '{"compute-4": ["sg-compute-4-a"], "compute-5": ["sg-compute-5-a", "sg-compute-5-b"]}' >"$LAB/nnf-storage.json"
    in_rabbit setsid env NNF_FENCE_REQUEST_DIR=$NNF/requests NNF_FENCE_RESPONSE_DIR=$NNF/responses \
        "$LAB/bin/nnf-sos-standin" --storage "$LAB/nnf-storage.json" --ledger "$LAB/nnf-fences.jsonl" \
        --state "$LAB/nnf-state.json" </dev/null >>"$LAB/nnf-sos.log" 2>&1 &
    attached() { python3 -c "import json, sys; sys.exit('$1' not in json.load(open('$LAB/nnf-state.json'))['attached'])"; }
    check "the nnf-sos stand-in on the rabbit has compute-5's storage attached" wait_for 20 attached compute-5
    in_rabbit cibadmin --create --scope resources --xml-text "<primitive id=\"nnf-fence\" class=\"stonith\" type=\"fence_gfs2_recorder\">
        <instance_attributes id=\"nnf-fence-ia\">$(nv nnf-fence responder nnf-sos) $(nv nnf-fence pcmk_host_list 'compute-4 compute-5')
          $(nv nnf-fence request_dir $NNF/requests) $(nv nnf-fence response_dir $NNF/responses) $(nv nnf-fence log_dir "$LOGS")
          $(nv nnf-fence fence_timeout 20) $(nv nnf-fence pcmk_reboot_timeout 60)</instance_attributes></primitive>" >>"$LAB/checks.log" 2>&1
    in_rabbit cibadmin --create --scope constraints --xml-text '<rsc_location id="loc-nnf" rsc="nnf-fence" node="rabbit-1" score="INFINITY"/>' >>"$LAB/checks.log" 2>&1
    in_rabbit cibadmin --modify --xml-text '<fencing-level id="l1-compute-5" devices="nnf-fence"/>' >>"$LAB/checks.log" 2>&1
    check "the nnf-sos device Started" wait_for 60 device_started nnf-fence
    nnf_fences() { grep -c '"target":"compute-5"' "$LAB/nnf-fences.jsonl" 2>/dev/null || true; }
    records() { in_rabbit find "$NNF/responses" -maxdepth 1 -name 'compute-5-*.json' | wc -l; }
    check "compute-5 lost: fenced once through nnf-sos" lose freeze compute-5
    check "  nnf-sos detached its storage (one fence in its ledger), its record stands" \
        bash -c "[ \$(grep -c '\"target\":\"compute-5\"' $LAB/nnf-fences.jsonl) = 1 ] && ! python3 -c \"import json,sys; sys.exit('compute-5' not in json.load(open('$LAB/nnf-state.json'))['attached'])\""
    status_off() {
        local rc=0
        printf 'action=status\nport=compute-5\nresponder=nnf-sos\nrequest_dir=%s/requests\nresponse_dir=%s/responses\nlog_dir=%s\n' \
            "$NNF" "$NNF" "$LOGS" | in_rabbit fence_gfs2_recorder >/dev/null 2>&1 || rc=$?
        [ "$rc" = 2 ] && [ "$(nnf_fences)" = 1 ]
    }
    check "  status says OFF from the record and fences nothing" status_off
    reboot_node() { kill -KILL "$(init_of "$1")"; wait_for 20 ended "$1"; back "$1"; }
    check "compute-5 reboots and rejoins: without provides=unfencing nothing unfences it" reboot_node compute-5
    check "  its record stands" test "$(records)" = 1
    unfence_by_hand() {
        in_rabbit "$LAB/bin/gfs2-fence-events" --log-dir "$LOGS" unfence compute-5 --reason "rebooted (cluster suite)" \
            --request-dir "$NNF/requests" --response-dir "$NNF/responses" && [ "$(records)" = 0 ]
    }
    check "an operator's unfence by command while the cluster runs moves the record" unfence_by_hand
    kill -HUP "$(in_rabbit pgrep -x nnf-sos-standin)"
    check "  nnf-sos's next reconcile re-creates compute-5's storage" wait_for 20 attached compute-5
    # Pacemaker's unfencing: provides=unfencing turns unfencing on cluster-wide, so the rabbit needs a
    # device able to unfence it, run by another node (a node does not fence itself while a peer can):
    # the switch's rabbit outlet, on the compute nodes, whose on changes nothing and whose off refuses.
    in_rabbit crm_attribute --type crm_config --name fence-reaction --update panic >>"$LAB/checks.log" 2>&1
    in_rabbit cibadmin --create --scope resources --xml-text "<primitive id=\"rabbit-power\" class=\"stonith\" type=\"fence_lab\">
        <instance_attributes id=\"rabbit-power-ia\">$(nv rabbit-power pcmk_host_list rabbit-1) $(nv rabbit-power lab "$LAB")</instance_attributes></primitive>" \
        >>"$LAB/checks.log" 2>&1
    for c in "${COMPUTES[@]}"; do
        in_rabbit cibadmin --create --scope constraints --xml-text "<rsc_location id=\"loc-rp-$c\" rsc=\"rabbit-power\" node=\"$c\" score=\"100\"/>" \
            >>"$LAB/checks.log" 2>&1
    done
    in_rabbit crm_resource --resource nnf-fence --set-parameter allow_unfencing --parameter-value 1 >>"$LAB/checks.log" 2>&1
    in_rabbit crm_resource --resource nnf-fence --meta --set-parameter provides --parameter-value unfencing >>"$LAB/checks.log" 2>&1
    check "with provides=unfencing the rabbit is unfenced through its outlet, from a compute node (on)" \
        wait_for 60 bash -c "grep -q '\"event\":\"on\",\"target\":\"rabbit-1\"' $LAB/fence-ledger.jsonl"
    check "  and the nnf-sos device Started again" wait_for 60 device_started nnf-fence
    check "compute-5 lost again: fenced through nnf-sos" lose freeze compute-5
    check "  its record stands" test "$(records)" = 1
    unfenced_by_pacemaker() {
        [ "$(records)" = 0 ] && tail -n 8 "$LOGS/fence-events-detailed.jsonl" | grep '"status": "unfenced"' | grep -q '"by": "pacemaker-fenced"'
    }
    check "compute-5 reboots and rejoins: Pacemaker's unfencing moves its record, audited" reboot_node compute-5
    check "  as pacemaker-fenced's" wait_for 30 unfenced_by_pacemaker
    kill -HUP "$(in_rabbit pgrep -x nnf-sos-standin)"
    check "  nnf-sos's next reconcile re-creates compute-5's storage" wait_for 20 attached compute-5
    check "  nnf-sos fenced compute-5 twice in all, never at a status, on or join" test "$(nnf_fences)" = 2
    check "the audit chain verifies" in_rabbit "$LAB/bin/gfs2-fence-events" --log-dir "$LOGS" verify
    ;;
stress)
    echo "== 5. the rabbit under stress: requests/ removed by hand, the metrics port squatted"
    in_rabbit rm -rf "$SPOOL/requests"
    in_rabbit setsid setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -c \
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 9850)); s.listen(); time.sleep(600)" \
        </dev/null >/dev/null 2>&1 &
    check "compute-4 lost with requests/ gone and the port squatted: fenced once through the watchers" lose freeze compute-4
    check "  by the watchers" bash -c "grep '\"target\":\"compute-4\"' $LAB/fence-ledger.jsonl | tail -n 1 | grep -q '\"by\":\"watcher\"'"
    check "compute-4 rejoins" back compute-4
    ;;
upgrade)
    echo "== 6. a rolling upgrade while fencing: the previous build on the rabbit, then the RPM's way"
    if [ ! -x "${OLD_BIN:-}/gfs2-fence-watcher" ] || [ ! -x "${OLD_BIN:-}/fence_gfs2_recorder" ]; then
        fail "the previous build's binaries (OLD_BIN='${OLD_BIN:-}'; ci/old-build.sh makes them)"
        continue
    fi
    from=$(cat "$LAB/fence-ledger.jsonl" 2>/dev/null | wc -l)
    declare -A fenced_before=()
    for c in compute-2 compute-3 compute-4; do fenced_before[$c]=$(fenced_count "$c"); done
    # The previous build installed and running: its agent, then each watcher instance in turn.
    install_agent "$OLD_BIN"
    downgrade() { restart_watcher 1 "$OLD_BIN" && restart_watcher 2 "$OLD_BIN"; }
    check "the previous build's watchers replace this build's, one at a time" downgrade
    echo 2 >"$LAB/slow"
    check "the previous build alone: compute-2 lost, fenced once" lose freeze compute-2
    check "compute-2 rejoins" back compute-2
    # The RPM: its files first (the agent: from now on the new agent asks the old watchers), then
    # each instance restarted in turn, each restart while a lost node's fence is in flight.
    install_agent "$BIN"
    lose_while_restarting() { # NODE INSTANCE
        lose freeze "$1" >>"$LAB/lose.out" 2>&1 &
        local losing=$!
        wait_for 60 in_flight
        restart_watcher "$2" "$LAB/bin" >>"$LAB/checks.log" 2>&1 || echo "restarting instance $2 failed" >>"$LAB/checks.log"
        wait "$losing"
    }
    check "compute-3 lost while instance 1 is restarted into this build (the new agent, old and new watchers): fenced" \
        lose_while_restarting compute-3 1
    check "compute-4 lost while instance 2 is restarted into this build (the last old watcher): fenced" \
        lose_while_restarting compute-4 2
    check "compute-3 rejoins" back compute-3
    check "compute-4 rejoins" back compute-4
    check "this build alone again: compute-2 lost, fenced once" lose freeze compute-2
    check "compute-2 rejoins" back compute-2
    rm -f "$LAB/slow"
    once_each() {
        local c
        for c in compute-2 compute-3 compute-4; do echo "$c: ${fenced_before[$c]} fences before, $(fenced_count "$c") now"; done
        in_rabbit stonith_admin --history '*' --verbose
        [ "$(fenced_count compute-2)" = $((fenced_before[compute-2] + 2)) ] \
            && [ "$(fenced_count compute-3)" = $((fenced_before[compute-3] + 1)) ] \
            && [ "$(fenced_count compute-4)" = $((fenced_before[compute-4] + 1)) ]
    }
    # The switch's ledger since the scenario began: per node, executions never overlap (each start
    # followed by its end before the next start), and each loss ran the switch once.
    switch_once_each() {
        tail -n +"$((from + 1))" "$LAB/fence-ledger.jsonl" | python3 -c '
import json, sys
want = {"compute-2": 2, "compute-3": 1, "compute-4": 1}
runs, open_ = {}, {}
for line in sys.stdin:
    e = json.loads(line)
    t = e["target"]
    if e["event"] == "start":
        assert t not in open_, f"two executions overlap on {t}"
        open_[t] = e["t_ms"]
    elif e["event"] in ("off", "reboot") and t in open_:
        del open_[t]
        runs[t] = runs.get(t, 0) + 1
assert not open_, f"executions never ended: {open_}"
got = {t: runs.get(t, 0) for t in want}
assert got == want, f"switch runs {got}, wanted {want}"
'
    }
    check "  from Pacemaker's side: each loss fenced exactly once (compute-2 twice, the others once)" once_each
    check "  from the switch's ledger: each loss ran it once, never two at a time on one node" switch_once_each
    check "  the audit chain verifies (records of both builds' agents)" in_rabbit "$LAB/bin/gfs2-fence-events" --log-dir "$LOGS" verify
    ;;
esac; done
[ "$FAIL" = 0 ]
