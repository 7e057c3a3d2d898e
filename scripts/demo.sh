#!/usr/bin/env bash
# End-to-end demo, in about one screen: three gfs2-fence-watcher processes share a temporary spool,
# the real fence_gfs2_recorder agent is fed on stdin exactly as Pacemaker feeds it, and the fence
# command is the test executor (it fences nothing and records what it was asked). It shows the
# watchers and their leader; a fence naming the GFS2 file systems it protected (a kubectl stand-in
# answers with the repository's NnfStorage fixture); the watcher executing a fence SIGKILLed and the
# fence completing on another; a fence that fails once and is retried; a device that keeps failing;
# fast failure when no watcher is alive; the audit chain verified; where every log is.
# No root, no cluster. Everything started here is stopped here; the files stay for a look.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (cargo build --workspace: about a minute the first time)"
cargo build --workspace --quiet
BIN=$PWD/target/debug
DEMO=$(mktemp -d /tmp/gfs2-fencing-demo.XXXXXX)
SPOOL=$DEMO/spool LOGS=$DEMO/logs LEDGER=$DEMO/executor-ledger.jsonl BEHAVIOR=$DEMO/behavior.json
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; done
}
trap cleanup EXIT
# wait_for SECONDS COMMAND...: polls every 50 ms.
wait_for() { local n=$(($1 * 20)); shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done; return 1; }

# What the test executor does per target: fail every time, fail the first time, take two seconds.
echo '{"bad-node": "fail", "compute-03": "flaky", "compute-01": "sleep:2000"}' >"$BEHAVIOR"
# A kubectl stand-in: NnfStorage and NnfNodeBlockStorage as nnf-sos keeps them (the test fixture),
# so discovery names the GFS2 file systems each compute node can reach. Only this source runs here.
printf '#!/bin/sh\nexec cat %s\n' "$PWD/ha/tests/fixtures/discovery/kubectl-nnf.json" >"$DEMO/kubectl"
chmod +x "$DEMO/kubectl"
export GFS2_FENCE_KUBECTL_CMD=$DEMO/kubectl GFS2_FENCE_DISCOVERY_SOURCES=kubernetes
# The demo's records name a cluster of its own, never this host's corosync cluster.
export GFS2_FENCE_CLUSTER_NAME=demo

for i in 1 2 3; do
    GFS2_FENCE_LOG=info "$BIN/gfs2-fence-watcher" run --spool-dir "$SPOOL" --id "demo-w$i" \
        --fence-command "$BIN/gfs2-fence-test-executor" --health-interval 0 --log-dir "$LOGS" --alerts-dir "" \
        --fence-option "ledger=$LEDGER" --fence-option "behavior_file=$BEHAVIOR" 2>>"$DEMO/watcher-$i.log" &
    PIDS+=($!)
    disown "$!" # killed on purpose below: no job notice
done
pid_of() { echo "${PIDS[$((${1#demo-w} - 1))]}"; }
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\).*/\1/p" "$2"; }
wait_for 20 test -s "$SPOOL/discovery.json"
echo "== three watchers on $SPOOL; the leader publishes the GFS2 discovery snapshot"
"$BIN/gfs2-fence-watcher" status --spool-dir "$SPOOL" | sed -n '2,6p' | sed 's/^/     /'

fence() { # action node: the agent as Pacemaker runs it; prints its answer and how long it took
    local out rc start=$(date +%s%N)
    out=$(printf 'action=%s\nport=%s\nnodename=%s\nspool_dir=%s\nlog_dir=%s\n' "$1" "$2" "$2" "$SPOOL" "$LOGS" |
        "$BIN/fence_gfs2_recorder" 2>&1) && rc=0 || rc=$?
    printf '  %-6s %-10s -> exit %s in %4s ms: %s\n' "$1" "$2" "$rc" $((($(date +%s%N) - start) / 1000000)) "$out" |
        fold -s -w 110 | sed '2,$s/^/         /'
}
answer() { ls -t "$SPOOL/responses/"*.json | head -1; }
gfs2_of_last() { tail -n 1 "$LOGS/fence-events-readable.log" | sed -n 's/.*\(GFS2=\[[^]]*\]\).*/\1/p'; }

echo "== 1. a fence: the record names the GFS2 file systems the node could reach"
fence reboot compute-02
echo "     $(gfs2_of_last), answered by $(field watcher_id "$(answer)")"

echo "== 2. the watcher executing a fence is SIGKILLed in the middle of it"
LEADER=$(field watcher_id "$SPOOL/leader.json")
fence off compute-01 &
AGENT=$!
wait_for 10 compgen -G "$SPOOL/claimed/*.json" >/dev/null
VICTIM=$(basename "$(ls "$SPOOL/claimed/"*.json | head -1)" | cut -d. -f2)
kill -KILL "$(pid_of "$VICTIM")"
echo "     kill -9 $VICTIM (it held the claim; the leader was $LEADER)"
wait "$AGENT"
echo "     $(gfs2_of_last), answered by $(field watcher_id "$(answer)"), which recovered the claim and ran it again"
if [ "$VICTIM" != "$LEADER" ]; then
    kill -KILL "$(pid_of "$LEADER")"
    echo "     kill -9 $LEADER, the leader:"
fi
wait_for 10 sh -c "! grep -q '\"$LEADER\"' '$SPOOL/leader.json'"
echo "     leader now $(field watcher_id "$SPOOL/leader.json") (epoch $(field epoch "$SPOOL/leader.json"))"

echo "== 3. a fence that fails once: retried with backoff inside its deadline"
fence reboot compute-03
echo "     $(field attempts "$(answer)") executions: $(grep '"target":"compute-03"' "$LEDGER" | grep -o '"result":"[a-z]*"' | cut -d'"' -f4 | paste -sd' ')"
echo "== 4. a fence device that keeps failing: the agent reports the failure (Pacemaker then escalates)"
fence off bad-node

cleanup
PIDS=()
echo "== 5. every watcher stopped: the fence fails at once, so Pacemaker moves to its next level"
fence reboot compute-04

echo "== 6. the tamper-evident chain over every record: gfs2-fence-events verify"
"$BIN/gfs2-fence-events" --log-dir "$LOGS" verify | sed 's/^/     /'
echo "== where to look: $DEMO/ (kept)"
echo "     logs/fence-events-readable.log    one line per event, in the original recorder's format"
echo "     logs/fence-events-detailed.jsonl  the JSON records, hash-chained (fence-events.log: operational)"
echo "     spool/responses/                  the answers, kept as the record of fenced nodes"
echo "     watcher-{1,2,3}.log               the watchers' logs (executor-ledger.jsonl: what was run)"
echo "     target/debug/gfs2-fence-events --log-dir $LOGS timeline"
