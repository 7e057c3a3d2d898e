#!/usr/bin/env bash
# The agent against the real Pacemaker fencer, on both generations: Debian 12's (pacemaker 2.1.5,
# corosync 3.1.7) on the host, and Debian 13's (pacemaker 3.0.0, corosync 3.1.9) in a Debian 13 root
# in private namespaces (ci/pacemaker3-suite.sh runs this script there). No daemon first, then a
# single-node cluster on 127.0.0.1 with a second node that never starts. Needs root, /usr/sbin and
# corosync, so it runs only when GFS2_PACEMAKER_SUITE=1 (.ci/run sets it) and says it was skipped
# otherwise. It runs in private namespaces of its own (it starts itself again inside them): its own
# network (corosync on its own loopback), PID namespace (every daemon dies with it), UTS, IPC, and a
# mount namespace where /run, /dev/shm, /var/log and /usr/local/bin are tmpfs, /etc/corosync,
# /var/lib/pacemaker and /var/lib/corosync are directories of its work directory, and /usr/sbin is an
# overlay whose changes stay there: nothing of the machine's configuration or logs is touched, and a
# last check outside the namespaces proves the agent's default log directory unchanged.
# Each check passes only on evidence that the device did what the check says (the executor's ledger,
# the agent's records): a fence Pacemaker could not route to any device ("No such device", 105) is
# never taken for the agent's failure. On a failure, the daemons' logs are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${GFS2_PACEMAKER_SUITE:-}" != 1 ]; then
    echo "pacemaker suite: skipped (set GFS2_PACEMAKER_SUITE=1 on a disposable root machine to run it)"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "pacemaker suite: needs root" >&2; exit 1; }

BIN=${BIN:-target/debug}
if [ "${GFS2_SUITE_PRIVATE:-}" != 1 ]; then
    W=$(mktemp -d /tmp/gfs2-pacemaker-suite.XXXXXX)
    # Traversable, so that the daemons running as hacluster can write their log in it.
    chmod 0711 "$W"
    # The agent's default log directory, as it was: every agent the suite runs is given its own
    # log_dir, and the namespace hides the directory anyway; this proves it from outside.
    HOST_LOGS=/var/log/gfs2-fencing
    host_logs() { [ ! -d "$HOST_LOGS" ] || find "$HOST_LOGS" -maxdepth 1 -type f -printf '%f %s %T@\n' | sort; }
    before=$(host_logs)
    rc=0
    # The guard above, tried: told it is private where it is not, the suite must refuse and write
    # nothing. Tried in namespaces of its own whose /usr/sbin, /usr/local/bin, /etc/corosync,
    # /var/lib/pacemaker and /var/lib/corosync are empty tmpfs, so that a suite without the guard
    # writes there and not into the machine.
    mkdir "$W/guard"
    unshare --mount --net --pid --fork --kill-child --mount-proc --propagation private \
        env G="$W/guard" SUITE="$0" BIN="$BIN" bash -uc '
            for d in /usr/sbin /usr/local/bin /etc/corosync /var/lib/pacemaker /var/lib/corosync; do
                mount -t tmpfs tmpfs "$d"
            done
            ! env GFS2_PACEMAKER_SUITE=1 GFS2_SUITE_PRIVATE=1 W="$G" BIN="$BIN" /bin/bash "$SUITE" >"$G/out" 2>&1 \
                && grep -q "not inside its private namespaces" "$G/out" \
                && [ -z "$(find /usr/sbin /usr/local/bin /etc/corosync /var/lib/pacemaker /var/lib/corosync -mindepth 1)" ]
        ' && echo "  ok    told it is private where it is not, the suite refuses and writes nothing" \
        || { echo "  FAIL  told it is private where it is not, the suite went on (see $W/guard/out)"; rc=1; }
    unshare --mount --net --uts --ipc --pid --fork --kill-child --mount-proc --propagation private \
        env GFS2_SUITE_PRIVATE=1 W="$W" BIN="$BIN" bash -euo pipefail -c '
            ip link set lo up
            hostname node1
            mount -t tmpfs -o mode=0755 tmpfs /run
            mount -t tmpfs -o mode=1777 tmpfs /dev/shm
            mount -t tmpfs -o mode=0755 tmpfs /var/log
            mount -t tmpfs -o mode=0755 tmpfs /usr/local/bin
            mkdir -p /var/log/pacemaker && chown hacluster:haclient /var/log/pacemaker
            for d in /etc/corosync /var/lib/pacemaker /var/lib/corosync; do
                mkdir -p "$W/root$d" && mount --bind "$W/root$d" "$d"
            done
            mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
            chown -R hacluster:haclient /var/lib/pacemaker && chmod 0750 /var/lib/pacemaker/cib
            mkdir -p "$W/sbin-upper" "$W/sbin-work"
            mount -t overlay overlay -o "lowerdir=/usr/sbin,upperdir=$W/sbin-upper,workdir=$W/sbin-work" /usr/sbin
            exec bash "$0"
        ' "$0" || rc=$?
    if [ "$(host_logs)" = "$before" ]; then
        echo "  ok    nothing written into the host's $HOST_LOGS"
    else
        echo "  FAIL  the suite wrote into the host's $HOST_LOGS"
        rc=1
    fi
    exit "$rc"
fi
# From here on the suite writes /usr/sbin, /usr/local/bin, /etc/corosync, /var/lib/pacemaker and
# /var/lib/corosync: only ever the private mounts made above. GFS2_SUITE_PRIVATE=1 set by hand outside
# them would otherwise be the machine's own, so they are checked first: /usr/sbin the overlay whose
# changes go to this work directory, /usr/local/bin a tmpfs, the others this work directory's.
: "${W:?GFS2_SUITE_PRIVATE is set by the suite itself; run the suite without it}"
private_mounts() {
    findmnt -n -o OPTIONS /usr/sbin | grep -Eq "upperdir=$W/sbin-upper(,|$)" || return 1
    [ "$(findmnt -n -o FSTYPE /usr/local/bin)" = tmpfs ] || return 1
    for d in /etc/corosync /var/lib/pacemaker /var/lib/corosync; do
        [ "$(stat -c %d:%i "$d")" = "$(stat -c %d:%i "$W/root$d" 2>/dev/null)" ] || return 1
    done
}
if ! private_mounts; then
    echo "pacemaker suite: not inside its private namespaces (/usr/sbin, /etc/corosync or /var/lib/pacemaker" \
        "would be the machine's own): nothing written; run it without GFS2_SUITE_PRIVATE" >&2
    exit 1
fi
# The spool, the agent's logs and nnf-sos's directories are the suite's own, in its work
# directory: none of the machine's default paths (/run, /var/log) is named, private as they are here.
SPOOL=$W/spool
LOGS=$W/agent-logs
NNF=$W/nnf
NNF_FENCES=$W/nnf-fences.jsonl
LEDGER=$W/ledger.jsonl
BEHAVIOR=$W/behavior.json
PASS=0 FAIL=0
WATCHER_PIDS=() COROSYNC_PID= PACEMAKERD_PID= NNF_PID=

pass() { PASS=$((PASS + 1)); echo "  ok    $*"; }
fail() { FAIL=$((FAIL + 1)); echo "  FAIL  $*"; }
# count PATTERN FILE: the lines of FILE matching PATTERN, 0 when FILE does not exist (yet).
count() { if [ -f "$2" ]; then grep -c -- "$1" "$2" || true; else echo 0; fi; }
ledger_count() { count "$1" "$LEDGER"; }
# The agent's failed records of node2 whose line also matches PATTERN.
failed_records() { count "TARGET=node2 .*STATUS=failed.*$1" "$LOGS/fence-events-readable.log"; }
# agent_failed RC LEDGER_PATTERN LEDGER_BEFORE RECORD_PATTERN RECORDS_BEFORE: Pacemaker reported a
# failure (not "No such device", 105, nor its own timeout, 124) that came from our agent: the ledger
# has a new line matching LEDGER_PATTERN (skipped when empty) and the agent a new failed record.
agent_failed() {
    [ "$1" != 0 ] && [ "$1" != 105 ] && [ "$1" != 124 ] \
        && { [ -z "$2" ] || [ "$(ledger_count "$2")" -gt "$3" ]; } \
        && [ "$(failed_records "$4")" -gt "$5" ]
}
check() { local what=$1; shift; if "$@" >>"$W/checks.log" 2>&1; then pass "$what"; else fail "$what"; fi; }
# wait_for SECONDS COMMAND...: polls every 0.2 s.
wait_for() { local n=$(($1 * 5)); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

start_watchers() {
    for i in 1 2 3; do
        GFS2_FENCE_LOG=info /usr/local/bin/gfs2-fence-watcher run --spool-dir "$SPOOL" --config "$W/watcher.json" \
            --id "pm-w$i" --rescan-interval 0.3 --heartbeat-interval 0.3 --ttl 3 --health-interval 0 \
            2>>"$W/watcher-$i.log" &
        WATCHER_PIDS[$i]=$!
        # Out of the job table: killing one on purpose (section 7) prints no "Killed" job notice.
        disown "$!"
    done
    wait_for 20 members_up
}
members_up() { [ "$(ls "$SPOOL/members" 2>/dev/null | grep -c '\.json$')" -ge 3 ]; }
stop_watchers() {
    for p in "${WATCHER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${WATCHER_PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
    WATCHER_PIDS=()
}

cleanup() {
    set +e
    [ -n "$PACEMAKERD_PID" ] && { stonith_admin --confirm node2 >/dev/null 2>&1; kill -TERM "$PACEMAKERD_PID"; wait "$PACEMAKERD_PID"; }
    [ -n "$COROSYNC_PID" ] && { kill -TERM "$COROSYNC_PID"; wait "$COROSYNC_PID"; }
    stop_watchers
    [ -n "$NNF_PID" ] && { kill -TERM "$NNF_PID"; wait "$NNF_PID"; }
    if [ "$FAIL" != 0 ]; then
        for f in checks.log pacemaker.log corosync.log pacemakerd.out nnf-sos.log watcher-1.log; do
            [ -s "$W/$f" ] && { echo "---- last lines of $f"; tail -n 40 "$W/$f"; }
        done
        [ -s "$LOGS/fence-events.log" ] && { echo "---- last lines of the agent's log"; tail -n 40 "$LOGS/fence-events.log"; }
    fi
    echo "pacemaker suite: $PASS passed, $FAIL failed (work files in $W)"
}
trap cleanup EXIT

echo "== installing as a user would"
install -m 0755 "$BIN/fence_gfs2_recorder" /usr/sbin/fence_gfs2_recorder
install -m 0755 "$BIN/gfs2-fence-watcher" "$BIN/gfs2-fence-test-executor" "$BIN/nnf-sos-standin" "$BIN/gfs2-fence-events" \
    /usr/local/bin/
echo '{}' > "$BEHAVIOR"
cat > "$W/watcher.json" <<JSON
{"default": {"command": "/usr/local/bin/gfs2-fence-test-executor",
             "options": {"ledger": "$LEDGER", "behavior_file": "$BEHAVIOR"}}}
JSON

echo "== 1. no daemon"
# Pacemaker re-emits the metadata with its own additions (action timeouts), so check what it parsed.
check "stonith_admin --metadata parses our metadata" \
    bash -c "stonith_admin --metadata --agent fence_gfs2_recorder > $W/meta.xml && grep -q '<parameter name=\"fence_timeout\"' $W/meta.xml && xmllint --noout $W/meta.xml"
check "stonith_admin --list-installed lists the agent" bash -c "stonith_admin --list-installed | grep -x 'fence_gfs2_recorder' >/dev/null"
check "validate succeeds with good options" \
    stonith_admin --validate --agent fence_gfs2_recorder --option spool_dir=$SPOOL --option fence_timeout=10 --option log_dir=$LOGS
check "validate fails on a bad timeout, naming it" \
    bash -c "! stonith_admin --validate --agent fence_gfs2_recorder --option fence_timeout=soon --option log_dir=$LOGS > $W/v1 2>&1 && grep -q fence_timeout $W/v1"
check "validate fails on a relative spool path" \
    bash -c "! stonith_admin --validate --agent fence_gfs2_recorder --option spool_dir=relative/x --option log_dir=$LOGS > $W/v2 2>&1 && grep -q 'absolute' $W/v2"
mkdir -p "$SPOOL" && chmod 0777 "$SPOOL"
check "validate fails on unsafe spool permissions" \
    bash -c "! stonith_admin --validate --agent fence_gfs2_recorder --option spool_dir=$SPOOL --option log_dir=$LOGS > $W/v3 2>&1 && grep -q 'world-writable' $W/v3"
rm -rf "$SPOOL"

echo "== 2. a single-node cluster on 127.0.0.1, node2 listed but never started"
start_watchers
# Pacemaker passes a device's option= after its own action=: fencing.py ignores it, and so do we.
check "validate with option=off on stdin takes no power action" \
    bash -c "stonith_admin --validate --agent fence_gfs2_recorder --option spool_dir=$SPOOL --option log_dir=$LOGS \
        --option plug=node1 --option option=off >$W/v4 2>&1 && ! grep -s '\"action\":\"off\"' $LEDGER >/dev/null"
cat > /etc/corosync/corosync.conf <<CONF
totem {
    version: 2
    cluster_name: gfs2ci
    transport: knet
    crypto_cipher: none
    crypto_hash: none
}
nodelist {
    node {
        ring0_addr: 127.0.0.1
        name: node1
        nodeid: 1
    }
    node {
        ring0_addr: 127.0.0.2
        name: node2
        nodeid: 2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
    wait_for_all: 0
}
logging {
    to_logfile: yes
    logfile: $W/corosync.log
    to_syslog: no
    to_stderr: no
}
CONF
head -c 256 /dev/urandom > /etc/corosync/authkey && chmod 0400 /etc/corosync/authkey
nv() { echo "<nvpair id=\"$1-$2\" name=\"$2\" value=\"$3\"/>"; }
device() { # id host-attribute-name host-attribute-value
    cat <<XML
      <primitive id="$1" class="stonith" type="fence_gfs2_recorder">
        <instance_attributes id="$1-ia">
          $(nv "$1" "$2" "$3") $(nv "$1" spool_dir "$SPOOL") $(nv "$1" log_dir "$LOGS")
          $(nv "$1" fence_timeout 10) $(nv "$1" no_gfs2_discovery 1)
          $(nv "$1" pcmk_reboot_timeout 40) $(nv "$1" pcmk_off_timeout 40)
        </instance_attributes>
        <operations><op id="$1-monitor" name="monitor" interval="3s"/></operations>
      </primitive>
XML
}
nnf_device() { # id node meta-attributes: an nnf-sos device allowing unfencing
    cat <<XML
      <primitive id="$1" class="stonith" type="fence_gfs2_recorder">
        <instance_attributes id="$1-ia">
          $(nv "$1" responder nnf-sos) $(nv "$1" pcmk_host_list "$2") $(nv "$1" allow_unfencing 1)
          $(nv "$1" request_dir "$NNF/requests") $(nv "$1" response_dir "$NNF/responses")
          $(nv "$1" log_dir "$LOGS") $(nv "$1" fence_timeout 10) $(nv "$1" no_gfs2_discovery 1)
        </instance_attributes>
        $3
      </primitive>
XML
}
# fence-reaction=panic (the name both 2.1 and 3.0.0 know): what allow_unfencing asks for. Only node1
# runs, and nothing here ever fences node1. The devices allowing unfencing come in section 8.
cat > /var/lib/pacemaker/cib/cib.xml <<XML
<cib validate-with="pacemaker-3.0" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        $(nv o stonith-enabled true) $(nv o dc-deadtime 2s) $(nv o stonith-timeout 60s)
        $(nv o start-failure-is-fatal false) $(nv o cluster-recheck-interval 5s)
        $(nv o fence-reaction panic)
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
$(device gfs2-fence pcmk_host_list node2)
$(device gfs2-fence-map pcmk_host_map node3:plug-n3)
      <primitive id="nnf-fence" class="stonith" type="fence_gfs2_recorder">
        <instance_attributes id="nnf-fence-ia">
          $(nv nnf-fence responder nnf-sos) $(nv nnf-fence pcmk_host_list node4)
          $(nv nnf-fence request_dir "$NNF/requests") $(nv nnf-fence response_dir "$NNF/responses")
          $(nv nnf-fence log_dir "$LOGS") $(nv nnf-fence fence_timeout 10) $(nv nnf-fence no_gfs2_discovery 1)
          $(nv nnf-fence pcmk_reboot_timeout 40) $(nv nnf-fence pcmk_off_timeout 40)
        </instance_attributes>
        <operations><op id="nnf-fence-monitor" name="monitor" interval="3s"/></operations>
      </primitive>
    </resources>
    <constraints/>
  </configuration>
  <status/>
</cib>
XML
chown -R hacluster:haclient /var/lib/pacemaker/cib && chmod 0600 /var/lib/pacemaker/cib/cib.xml
touch "$W/pacemaker.log" && chown hacluster:haclient "$W/pacemaker.log"
# nnf-sos, as NNF sites run it in front of our agent: the stand-in (harness), node4 has storage.
echo '{"node4": ["sg-node4-a", "sg-node4-b"], "node5": ["sg-node5"], "node6": ["sg-node6"]}' > "$W/nnf-storage.json"
NNF_FENCE_REQUEST_DIR=$NNF/requests NNF_FENCE_RESPONSE_DIR=$NNF/responses /usr/local/bin/nnf-sos-standin \
    --storage "$W/nnf-storage.json" --ledger "$NNF_FENCES" --state "$W/nnf-state.json" 2>"$W/nnf-sos.log" &
NNF_PID=$!
corosync -f >"$W/corosync.out" 2>&1 &
COROSYNC_PID=$!
wait_for 20 corosync-quorumtool -s || { echo "corosync did not become quorate"; exit 1; }
PCMK_logfile=$W/pacemaker.log pacemakerd >"$W/pacemakerd.out" 2>&1 &
PACEMAKERD_PID=$!
started() { crm_mon -1 --output-as=xml 2>/dev/null | grep "resource id=\"$1\"[^>]*role=\"Started\"" >/dev/null; }
check "the device reaches Started (its monitor passes with live watchers)" wait_for 60 started gfs2-fence

echo "== 3. the cluster decides by itself: node2 never joined, so it is fenced"
auto_fenced() { stonith_admin --history node2 2>/dev/null | grep "of node2 successful" >/dev/null; }
check "the controller fenced node2 through our agent with no human command" wait_for 60 auto_fenced
check "that fence went through the watchers and the executor" bash -c "grep -q '\"target\":\"node2\"' $LEDGER"

echo "== 4. stonith_admin --reboot and --fence (off)"
agree() { # action: response, three logs and history agree on the last fence of node2
    local id
    id=$(grep '"target_node": "node2"' "$LOGS/fence-events-detailed.jsonl" | tail -n 1 | sed -n 's/.*"request_id": "\([^"]*\)".*/\1/p')
    [ -n "$id" ] && grep -q '"success":true' "$SPOOL/responses/$id.json" \
        && tail -n 1 "$LOGS/fence-events-readable.log" | grep "ACTION=$1 TARGET=node2 .*STATUS=completed" >/dev/null \
        && grep -q "\"status\": \"completed\"" <(tail -n 1 "$LOGS/fence-events-detailed.jsonl") \
        && grep -q "Fence action requested: $1 for target: node2" "$LOGS/fence-events.log" \
        && stonith_admin --history node2 --verbose | tee -a "$W/history.log" | grep -E "(^|turning |\s)$1 of node2 successful" >/dev/null
}
check "stonith_admin --reboot node2 succeeds" stonith_admin --reboot node2 --timeout 60
check "response, logs and history agree (reboot)" agree reboot
check "stonith_admin --fence node2 (off) succeeds" stonith_admin --fence node2 --timeout 60
check "response, logs and history agree (off)" agree off
check "the record names the cluster from corosync.conf's totem.cluster_name (site view)" \
    bash -c "tail -n 1 $LOGS/fence-events-detailed.jsonl | grep -q '\"cluster\": \"gfs2ci\"'"
check "Pacemaker's port= reached the fence command as the plug" bash -c "grep -q '\"action\":\"off\",\"target\":\"node2\",\"nodename\":\"node2\"' $LEDGER"
check "a pcmk_host_map alias works (node3 -> plug-n3)" stonith_admin --reboot node3 --timeout 60
check "the alias reached the fence command as the plug" bash -c "grep -q '\"target\":\"plug-n3\",\"nodename\":\"node3\"' $LEDGER"

echo "== 5. failure paths"
echo '{"node2": "fail"}' > "$BEHAVIOR"
failed_ends='"event":"end".*"target":"node2".*"result":"failure"'
ends_before=$(ledger_count "$failed_ends") records_before=$(failed_records "")
rc=0
stonith_admin --reboot node2 --timeout 60 >"$W/fail.out" 2>&1 || rc=$?
check "an executor failure is a Pacemaker failure (exit $rc): the executor failed and the agent recorded it" \
    agent_failed "$rc" "$failed_ends" "$ends_before" "" "$records_before"
echo '{"node2": "hang"}' > "$BEHAVIOR"
hung_starts='"event":"start".*"target":"node2"'
starts_before=$(ledger_count "$hung_starts") records_before=$(failed_records "timed out")
SECONDS=0
rc=0
stonith_admin --reboot node2 --timeout 60 >"$W/hang.out" 2>&1 || rc=$?
took=$SECONDS
hang_failed() { agent_failed "$rc" "$hung_starts" "$starts_before" "timed out" "$records_before" && [ "$took" -lt 40 ]; }
check "a hanging executor: the agent answers failure before Pacemaker's device timeout of 40 s (exit $rc, ${took}s)" \
    hang_failed
echo '{}' > "$BEHAVIOR"
stop_watchers
# The failed monitor makes Pacemaker restart the device, whose start (a monitor) fails too: either
# failure is what crm_mon may show at the moment it is asked.
check "with every watcher dead, monitor fails" \
    wait_for 30 bash -c "crm_mon -1 --output-as=xml | grep -E 'op_key=\"gfs2-fence_(monitor_3000|start_0)\"' >/dev/null"
records_before=$(failed_records "no live gfs2-fence-watcher")
rc=0
stonith_admin --reboot node2 --timeout 60 >"$W/dead.out" 2>&1 || rc=$?
check "and a fence fails cleanly: the agent said no watcher lives (exit $rc)" \
    agent_failed "$rc" "" 0 "no live gfs2-fence-watcher" "$records_before"
refused_early() {
    [ "$(failed_records "no live gfs2-fence-watcher")" -gt "$records_before" ] \
        && [ -z "$(find "$SPOOL/requests" "$SPOOL/claimed" -mindepth 1)" ]
}
check "having published and claimed nothing" refused_early
start_watchers
crm_resource --cleanup --resource gfs2-fence >/dev/null 2>&1
recovered() { started gfs2-fence && ! crm_mon -1 --output-as=xml | grep -E 'op_key="gfs2-fence_(monitor|start)' >/dev/null; }
check "watchers back: the device recovers" wait_for 60 recovered

echo "== 6. nnf-sos as the responder (no watchers of ours for it)"
check "the nnf-sos device reaches Started (both directories usable)" wait_for 60 started nnf-fence
nnf_fences() { count '"target":"node4"' "$NNF_FENCES"; }
# The nnf-sos device's monitors so far: each says, in the agent's log, that nnf-sos's liveness cannot be judged.
nnf_monitors() { count 'responder=nnf-sos: .* whose liveness this agent cannot judge' "$LOGS/fence-events.log"; }
check "stonith_admin --reboot node4 succeeds on nnf-sos's off" stonith_admin --reboot node4 --timeout 60
check "nnf-sos fenced node4 once, and the history says reboot" \
    bash -c "[ \"\$(grep -c '\"target\":\"node4\"' $NNF_FENCES)\" = 1 ] && stonith_admin --history node4 | grep 'reboot of node4 successful' >/dev/null"
check "stonith_admin --fence node4 (off) succeeds" stonith_admin --fence node4 --timeout 60
check "nnf-sos's answers are kept, its requests consumed" \
    bash -c "[ \"\$(ls $NNF/responses | grep -c '^node4-.*\.json\$')\" = 2 ] && [ -z \"\$(ls $NNF/requests)\" ]"
before_status=$(nnf_fences) monitors_before=$(nnf_monitors)
status_rc=0
printf 'action=status\nport=node4\nresponder=nnf-sos\nrequest_dir=%s\nresponse_dir=%s\nlog_dir=%s\n' \
    "$NNF/requests" "$NNF/responses" "$LOGS" | fence_gfs2_recorder >"$W/nnf-status.out" 2>&1 || status_rc=$?
check "status reports OFF (exit 2) from nnf-sos's record and writes no request (exit $status_rc)" \
    bash -c "[ $status_rc = 2 ] && grep -x 'Status: OFF' $W/nnf-status.out >/dev/null"
more_monitors() { [ "$(nnf_monitors)" -ge $((monitors_before + 2)) ]; }
# Two more take 6 s; the wait allows one monitor lost to Pacemaker on the way (timed out and the
# device recovered, its default operation timeout being 20 s) but not monitors that stopped.
check "the device's monitors keep running (two more, every 3 s)" wait_for 60 more_monitors
if ! more_monitors; then
    # Inline, so that a shortened CI output still shows why: Pacemaker's view of the device, the
    # daemons' last lines about it, and the agent's last errors.
    echo "    (nnf-fence: $(nnf_monitors) monitors logged, $monitors_before before the status)"
    crm_mon -1 -t 2>/dev/null | grep -E -A3 'nnf-fence[: ]' | head -n 12 | cut -c1-200 | sed 's/^/    /' || true
    grep -E 'nnf-fence([^-0-9]|$)' "$W/pacemaker.log" | grep -v 'not eligible\|Leave ' | tail -n 12 | cut -c1-220 \
        | sed 's/^/    /' || true
    grep -E '\[ERROR\]' "$LOGS/fence-events.log" | tail -n 3 | cut -c1-220 | sed 's/^/    /' || true
fi
check "and neither status nor those monitors fenced ($before_status fences before, $(nnf_fences) after)" \
    test "$(nnf_fences)" = "$before_status" -a "$before_status" = 2

echo "== 7. a watcher killed mid-fence"
# The fence hangs until its watcher is killed, once its execution started (the executor's start in
# the ledger, not merely the claim): killed before its spawn, or after a slowed fence had already
# ended, the watcher would leave the peer's execution the only one.
echo '{"node2": "hang"}' > "$BEHAVIOR"
before=$(ledger_count '"event":"start"')
node2_runs=$(ledger_count '"event":"start".*"target":"node2"')
stonith_admin --reboot node2 --timeout 60 >"$W/kill.out" 2>&1 & ADMIN=$!
holder() { ls "$SPOOL/claimed" | sed -n 's/^[0-9a-f-]\{36\}\.\(.*\)\.[0-9]*\.json$/\1/p' | sed -n 1p; }
running_somewhere() { [ -n "$(holder)" ] && [ "$(ledger_count '"event":"start".*"target":"node2"')" -gt "$node2_runs" ]; }
wait_for 20 running_somewhere
victim=$(holder)
vpid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$SPOOL/members/$victim.json")
echo '{}' > "$BEHAVIOR"
kill -KILL "$vpid"
rc=0
wait "$ADMIN" || rc=$?
check "the fence still succeeds after SIGKILL of its watcher $victim" test "$rc" = 0
id=$(ls -t "$SPOOL/responses" | sed -n 1p | sed 's/\.json$//')
starts=$(ledger_count "\"event\":\"start\",\"request_id\":\"$id\"")
check "executed again by another watcher ($starts executions), answered once" \
    test "$starts" -ge 2 -a -z "$(ls "$SPOOL/done" | grep "^$id.superseded")"
for i in 1 2 3; do kill -0 "${WATCHER_PIDS[$i]}" 2>/dev/null || { wait "${WATCHER_PIDS[$i]}" 2>/dev/null || true; unset "WATCHER_PIDS[$i]"; }; done
echo "   ($(($(ledger_count '"event":"start"') - before)) executions for that fence)"

echo "== 8. the way back: Pacemaker's unfencing with nnf-sos, and a remapped reboot that must not unfence"
echo '{}' > "$BEHAVIOR"
# A device with provides=unfencing turns unfencing on for the whole cluster: every node must be
# unfenced before fence devices (and resources) start there, node1 too, which nnf-sos cannot fence.
# So node1 gets a device of its own (the watchers' executor stands for its power switch), then the
# nnf-sos device allowing unfencing is added.
cibadmin --create --scope resources --xml-text "$(device gfs2-fence-node1 pcmk_host_list node1)" >>"$W/checks.log" 2>&1
cibadmin --create --scope resources --xml-text "$(nnf_device nnf-fence6 node6 \
    '<meta_attributes id="nnf-fence6-meta"><nvpair id="nnf-fence6-provides" name="provides" value="unfencing"/></meta_attributes>')" \
    >>"$W/checks.log" 2>&1
node1_unfenced() { ledger_count '"action":"on","target":"node1"' | grep -qv '^0$'; }
check "node1 is unfenced through its own device (on), as unfencing now requires" wait_for 60 node1_unfenced
check "the nnf-sos device with provides=unfencing reaches Started" wait_for 60 started nnf-fence6
node_records() { ls "$NNF/responses" | grep -c "^$1-.*\.json\$" || true; }
check "node6 is fenced through nnf-sos (off)" stonith_admin --fence node6 --timeout 60
# attached NODE: whether nnf-sos (the stand-in) has NODE's storage groups attached.
attached() { python3 -c "import json, sys; sys.exit('$1' not in json.load(open('$W/nnf-state.json'))['attached'])"; }
record_stands_detached() { [ "$(node_records node6)" = 1 ] && ! attached node6; }
check "nnf-sos's record of node6 stands, its storage detached" record_stands_detached
check "stonith_admin --unfence node6: Pacemaker runs on (provides=unfencing), the agent unfences" \
    stonith_admin --unfence node6 --timeout 60
unfenced_by_pacemaker() {
    [ "$(node_records node6)" = 0 ] && [ -n "$(ls "$NNF/responses/unfenced" | grep '^node6-')" ] \
        && tail -n 5 "$LOGS/fence-events-detailed.jsonl" | grep '"action": "unfence"' | grep '"status": "unfenced"' \
            | grep -q '"by": "pacemaker-fenced"'
}
check "the record moved into unfenced/, audited as pacemaker-fenced's" unfenced_by_pacemaker
kill -HUP "$NNF_PID"
check "nnf-sos's next reconcile re-creates node6's storage" wait_for 20 attached node6
check "the audit chain verifies across the unfence" /usr/local/bin/gfs2-fence-events verify --log-dir "$LOGS"
check "a second unfence of node6 succeeds touching nothing" \
    bash -c "stonith_admin --unfence node6 --timeout 60 && [ \"\$(ls $NNF/responses/unfenced | grep -c '^node6-')\" = 1 ]"
# A topology level of two devices turns a reboot into off then on on each device without automatic
# unfencing: an nnf-sos device allowing unfencing but lacking provides=unfencing must refuse that on.
cibadmin --create --scope resources --xml-text "$(nnf_device nnf-fence5 node5 '')" >>"$W/checks.log" 2>&1
cibadmin --create --scope resources --xml-text "$(device gfs2-fence5 pcmk_host_list node5)" >>"$W/checks.log" 2>&1
cibadmin --create --scope configuration --xml-text \
    '<fencing-topology><fencing-level id="fl-node5" target="node5" index="1" devices="nnf-fence5,gfs2-fence5"/></fencing-topology>' \
    >>"$W/checks.log" 2>&1
node5_devices() { started gfs2-fence5 && started nnf-fence5; }
check "the two node5 devices reach Started" wait_for 60 node5_devices
ons_before=$(ledger_count '"action":"on","target":"node5"')
check "stonith_admin --reboot node5 through the level succeeds (off on both, then on)" \
    stonith_admin --reboot node5 --timeout 60
remapped() { [ "$(ledger_count '"action":"on","target":"node5"')" -gt "$ons_before" ]; }
check "the reboot was remapped: the watchers' device ran on for node5" remapped
check "the nnf-sos device refused that on, naming provides=unfencing" \
    bash -c "grep 'TARGET=node5' $LOGS/fence-events-readable.log | grep 'ACTION=on' | grep 'STATUS=failed' | grep -q 'provides=unfencing'"
check "and nnf-sos's record of node5 still stands" bash -c "[ \"\$(ls $NNF/responses | grep -c '^node5-.*\.json\$')\" = 1 ]"

[ "$FAIL" = 0 ]
