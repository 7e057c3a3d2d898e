#!/usr/bin/env bash
# End-to-end demo: three gfs2-fence-watcher processes with the test executor as fence command, in a
# temporary spool, and a few fences through the real fence_gfs2_recorder agent, fed on stdin exactly
# as Pacemaker feeds it. No root, no cluster. Everything started here is stopped here.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --quiet
BIN=target/debug
DEMO=$(mktemp -d /tmp/gfs2-fencing-demo.XXXXXX)
SPOOL=$DEMO/spool LOGS=$DEMO/logs LEDGER=$DEMO/executor-ledger.jsonl
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

echo '{"bad-node": "fail", "dark-node": "off"}' > "$DEMO/behavior.json"
# A stand-in for kubectl that answers the NnfStorage query the agent's GFS2 discovery makes.
cat > "$DEMO/kubectl" <<'KUBECTL'
#!/bin/sh
echo '{"items":[{"metadata":{"name":"nnf-gfs2-scratch"},"spec":{"fileSystemType":"gfs2"}},
 {"metadata":{"name":"nnf-xfs-home"},"spec":{"fileSystemType":"xfs"}}]}'
KUBECTL
chmod +x "$DEMO/kubectl"
export GFS2_FENCE_KUBECTL_CMD=$DEMO/kubectl
echo "== starting 3 watchers on $SPOOL"
for i in 1 2 3; do
    GFS2_FENCE_LOG=warn $BIN/gfs2-fence-watcher run --spool-dir "$SPOOL" --id "demo-w$i" \
        --fence-command "$BIN/gfs2-fence-test-executor" \
        --fence-option "ledger=$LEDGER" --fence-option "behavior_file=$DEMO/behavior.json" \
        2>>"$DEMO/watchers.log" &
    PIDS+=($!)
done
for _ in $(seq 100); do
    [ "$(ls "$SPOOL/members" 2>/dev/null | grep -c '\.json$')" = 3 ] && break
    sleep 0.05
done

fence() { # action plug [extra stdin lines]
    local out rc
    out=$(printf 'action=%s\nport=%s\nnodename=%s\nspool_dir=%s\nlog_dir=%s\n%s' \
        "$1" "$2" "$2" "$SPOOL" "$LOGS" "${3:-}" | $BIN/fence_gfs2_recorder 2>&1) && rc=0 || rc=$?
    printf '%-8s %-11s -> exit %s  %s\n' "$1" "$2" "$rc" "$out"
}

echo "== fencing through the agent (stdin as Pacemaker sends it)"
fence reboot compute-node-3
fence off compute-node-4
fence status dark-node
fence off bad-node
fence on compute-node-4
echo "== monitor: $(printf 'action=monitor\nspool_dir=%s\nlog_dir=%s\n' "$SPOOL" "$LOGS" | $BIN/fence_gfs2_recorder 2>&1 && echo 'exit 0 (watchers alive)')"

cleanup
PIDS=()
echo "== with every watcher stopped, a fence fails at once:"
fence reboot compute-node-5

echo
echo "== $LOGS/fence-events-readable.log"
cat "$LOGS/fence-events-readable.log"
echo
echo "== $LOGS/fence-events-detailed.jsonl (last record)"
tail -n 1 "$LOGS/fence-events-detailed.jsonl"
echo
echo "== executions recorded by the test executor: $(grep -c '"event":"start"' "$LEDGER")"
echo "== spool after the run (responses are kept as the record):"
for d in requests claimed responses done quarantine; do
    printf '  %-11s %s file(s)\n' "$d/" "$(ls "$SPOOL/$d" | wc -l)"
done
echo "(demo files kept in $DEMO)"
