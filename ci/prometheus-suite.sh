#!/usr/bin/env bash
# The alert rules and the dashboard against Debian's real Prometheus (package `prometheus`; CI installs
# it, and this fails rather than skips when it is missing):
#  1. promtool check rules, and promtool test rules with every alert firing in at least one test;
#  2. a real Prometheus on loopback scraping three real watchers (test executor as fence command) with
#     the example configuration's job and rabbit label, and the rules loaded, and, for the site view,
#     a second rabbit's watcher (its own spool, another cluster name, a second target label);
#  3. what the dashboard shows, caused for real: fences, a retry that succeeds, a failed fence, a
#     quarantined request, a slow fence with a request queued behind it, the watcher executing it
#     SIGKILLed (its claim recovered by another) and the leader SIGKILLed (a takeover);
#  4. every query of the dashboard evaluated by that Prometheus (ci/prometheus-check.py): each returns
#     the series and value those events imply; and the alerts those events raise are firing or pending.
# No root needed. Everything started is stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v promtool >/dev/null && command -v prometheus >/dev/null ||
    { echo "prometheus suite: needs Debian's prometheus package (apt-get install prometheus)" >&2; exit 1; }
BIN=${BIN:-target/debug}
cargo build --workspace --quiet
RULES=packaging/prometheus/gfs2-fencing.rules.yml
TESTS=packaging/prometheus/gfs2-fencing.rules.test.yml
DASHBOARD=packaging/grafana/gfs2-fencing.json

echo "== promtool"
promtool check rules "$RULES"
promtool test rules "$TESTS"
# Every alert must fire (a non-empty exp_alerts) in some test.
for alert in $(awk '/- alert:/ { print $3 }' "$RULES"); do
    awk -v a="$alert" '$1 == "alertname:" && $2 == a { want = 1; next }
                       want && /exp_alerts:/ { if ($2 != "[]") found = 1; want = 0 }
                       END { exit !found }' "$TESTS" ||
        { echo "prometheus suite: alert $alert has no promtool test in which it fires" >&2; exit 1; }
done
echo "every alert has a firing unit test"

W=$(mktemp -d /tmp/gfs2-prometheus-suite.XXXXXX)
SPOOL=$W/spool LOGS=$W/logs LEDGER=$W/ledger.jsonl BEHAVIOR=$W/behavior.json
RABBIT=rabbit-ci CLUSTER=cluster-ci
# A second rabbit for the site view: one watcher on a spool of its own, another cluster.
SPOOL2=$W/spool2 LOGS2=$W/logs2 RABBIT2=rabbit-ci2 CLUSTER2=cluster-ci2
WATCHER_PIDS=() PROM_PID=
cleanup() {
    set +e
    for p in "${WATCHER_PIDS[@]}" $PROM_PID; do kill -TERM "$p" 2>/dev/null; done
    for p in "${WATCHER_PIDS[@]}" $PROM_PID; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
    [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
# wait_for SECONDS COMMAND...: polls every 0.2 s.
wait_for() { local n=$(($1 * 5)); shift; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
behave() { python3 -c 'import json, sys; f = sys.argv[1]; d = json.load(open(f)); d[sys.argv[2]] = sys.argv[3]; json.dump(d, open(f, "w"))' "$BEHAVIOR" "$1" "$2"; }
# agent ACTION TARGET [SPOOL LOGS CLUSTER]: a fence through the spool, as Pacemaker runs the agent.
agent() {
    printf 'action=%s\nplug=%s\nspool_dir=%s\nlog_dir=%s\nno_gfs2_discovery=1\nfence_timeout=40\n' \
        "$1" "$2" "${3:-$SPOOL}" "${4:-$LOGS}" | GFS2_FENCE_CLUSTER_NAME=${5:-$CLUSTER} "$BIN/fence_gfs2_recorder"
}
leader() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SPOOL/leader.json" "$1"; }

echo '{}' >"$BEHAVIOR"
echo '{"targets": {"n1": {}, "n2": {}, "n3": {}, "n4": {}, "n5": {}, "n6": {}}}' >"$W/watcher.json"
PORTS=()
for i in 1 2 3 4; do
    PORTS[$i]=$(free_port)
    # The first rabbit's watchers name its nodes (per-node series); the second's name none (other).
    if [ "$i" = 4 ]; then spool=$SPOOL2 logs=$LOGS2 cluster=$CLUSTER2 config=(); else spool=$SPOOL logs=$LOGS cluster=$CLUSTER config=(--config "$W/watcher.json"); fi
    GFS2_FENCE_CLUSTER_NAME=$cluster \
    "$BIN/gfs2-fence-watcher" run --spool-dir "$spool" --id "prom-w$i" "${config[@]}" --fence-command "$BIN/gfs2-fence-test-executor" \
        --fence-option "ledger=$LEDGER" --fence-option "behavior_file=$BEHAVIOR" \
        --metrics-addr "127.0.0.1:${PORTS[$i]}" --rescan-interval 0.3 --heartbeat-interval 0.3 --ttl 3 \
        --retry-delay 0.1 --health-interval 0 --discovery-interval 0 --log-dir "$logs" --alerts-dir "" \
        2>>"$W/watcher-$i.log" &
    WATCHER_PIDS[$i]=$!
    disown "$!"
done
PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT
cp "$RULES" "$W/rules.yml"
# The example configuration, with this run's ports, a 1 s scrape and evaluation, and the rules here.
sed -e "s|'127.0.0.1:9851', '127.0.0.1:9852', '127.0.0.1:9853'|'127.0.0.1:${PORTS[1]}', '127.0.0.1:${PORTS[2]}', '127.0.0.1:${PORTS[3]}'|" \
    -e "s|rabbit: rabbit-1|rabbit: $RABBIT|" -e 's|_interval: 15s|_interval: 1s|' \
    -e "s|/usr/share/gfs2-fencing/prometheus/gfs2-fencing.rules.yml|$W/rules.yml|" \
    packaging/prometheus/prometheus.yml >"$W/prometheus.yml"
# The second rabbit: one more target of the same job, with its own rabbit label.
printf "      - targets: ['127.0.0.1:%s']\n        labels:\n          rabbit: %s\n" "${PORTS[4]}" "$RABBIT2" >>"$W/prometheus.yml"
grep -q "${PORTS[3]}" "$W/prometheus.yml" && grep -q "$W/rules.yml" "$W/prometheus.yml" ||
    { echo "prometheus suite: the example configuration did not take this run's ports and rules" >&2; exit 1; }
prometheus --config.file "$W/prometheus.yml" --storage.tsdb.path "$W/tsdb" --web.listen-address "127.0.0.1:$PROM_PORT" \
    2>"$W/prometheus.log" &
PROM_PID=$!
disown "$!"
value() { curl -fsS "$PROM/api/v1/query" --data-urlencode "query=$1" | grep -o '"[0-9.]*"\]' | tr -d '"]'; }
all_up() { [ "$(value 'sum(up{job="gfs2-fencing"})')" = 4 ]; }
wait_for 60 all_up || { echo "prometheus suite: Prometheus did not scrape four watchers" >&2; tail "$W/prometheus.log" >&2; exit 1; }
# Ten samples of every series before the first event: increase() extrapolates a series past its
# last sample by up to half a scrape interval, a large share of a series only two samples long.
sampled() { [ "$(value 'count(count_over_time(up{job="gfs2-fencing"}[1m]) >= 10)')" = 4 ]; }
wait_for 60 sampled || { echo "prometheus suite: Prometheus did not keep scraping four watchers" >&2; exit 1; }
echo "== Prometheus on 127.0.0.1:$PROM_PORT scrapes 3 watchers of $RABBIT ($CLUSTER) and 1 of $RABBIT2 ($CLUSTER2)"

# The second rabbit's fences.
for n in m1 m2; do agent reboot "$n" "$SPOOL2" "$LOGS2" "$CLUSTER2" >/dev/null; done

# Fences, a retry that succeeds, a failed fence, a quarantined request.
for n in n1 n2 n3; do agent reboot "$n" >/dev/null; done
behave n4 flaky
agent reboot n4 >/dev/null
behave n5 fail
if agent off n5 >"$W/n5.out" 2>&1; then echo "prometheus suite: the fence of n5 should have failed" >&2; exit 1; fi
# Failed because a watcher answered it so (what the failure panels and alerts count), not otherwise.
grep -l '"target_node":"n5"' "$SPOOL"/responses/*.json 2>/dev/null | xargs -r grep -l '"outcome":"failed"' | grep -q . ||
    { echo "prometheus suite: the fence of n5 failed without a watcher's failed answer:" >&2; cat "$W/n5.out" >&2; exit 1; }
# Scraped before anything else happens: the watcher that answered it may be the one SIGKILLed below,
# less than a scrape interval after its answer if the checks during the slow fence are quick, and a
# count Prometheus never scraped is no increase (the rare run that saw no failed fence at all).
failed_seen() { [ "$(value "sum(max_over_time(gfs2_fence_responses_total{action=\"off\",outcome=\"failed\",rabbit=\"$RABBIT\"}[5m]))")" = 1 ]; }
wait_for 20 failed_seen || { echo "prometheus suite: Prometheus did not see the failed answer to n5" >&2; exit 1; }
printf '{ not json' >"$SPOOL/requests/$(cat /proc/sys/kernel/random/uuid).json"
# A slow fence, an off request queued behind it for the same node. Its first execution hangs until
# its watcher is killed below (a slowed one could end first on a busy machine, and nothing would be
# recovered); the execution run again by a peer, and the off, take 6 s each.
behave n6 hang
agent reboot n6 >"$W/n6-reboot.out" 2>&1 &
REBOOT=$!
wait_for 20 grep -q '"target":"n6"' "$LEDGER"
# The off is submitted once the reboot is claimed, so that it queues behind it.
agent off n6 >"$W/n6-off.out" 2>&1 &
OFF=$!
CLAIMED=$(ls "$SPOOL/claimed" | grep -v '^\.' | head -1)
EXECUTOR=$(echo "$CLAIMED" | cut -d. -f2)
echo "{\"rabbit\": \"$RABBIT\", \"rabbit2\": \"$RABBIT2\"}" >"$W/facts.json"
echo "== during the slow fence (claimed by $EXECUTOR)"
python3 ci/prometheus-check.py "$PROM" "$DASHBOARD" "$W/facts.json" during 4
# The watcher executing it dies: another recovers the claim and runs the fence again.
FIRST_LEADER=$(leader watcher_id)
behave n6 sleep:6000
for i in 1 2 3; do [ "prom-w$i" = "$EXECUTOR" ] && kill -KILL "${WATCHER_PIDS[$i]}"; done
KILLED=1
wait "$REBOOT" || { echo "prometheus suite: the slow fence did not complete after its watcher died" >&2; cat "$W/n6-reboot.out" >&2; exit 1; }
wait "$OFF" || { echo "prometheus suite: the queued off did not complete" >&2; cat "$W/n6-off.out" >&2; exit 1; }
# Then, once Prometheus has scraped the answers, the leader dies (unless it was the executing
# watcher): a takeover.
answered() { [ "$(value "sum(max_over_time(gfs2_fence_responses_total{outcome=\"done\",rabbit=\"$RABBIT\"}[5m]))")" = 6 ] &&
    [ "$(value "sum(max_over_time(gfs2_fence_responses_total{outcome=\"done\",rabbit=\"$RABBIT2\"}[5m]))")" = 2 ]; }
wait_for 20 answered || { echo "prometheus suite: Prometheus did not see the six and two done answers" >&2; exit 1; }
if [ "$FIRST_LEADER" != "$EXECUTOR" ]; then
    for i in 1 2 3; do [ "prom-w$i" = "$FIRST_LEADER" ] && kill -KILL "${WATCHER_PIDS[$i]}"; done
    KILLED=2
fi
new_leader() { [ "$(leader watcher_id)" != "$FIRST_LEADER" ]; }
wait_for 20 new_leader || { echo "prometheus suite: no leader took over from $FIRST_LEADER" >&2; exit 1; }
# The watchers' share of the agents' fence_timeout=40, each request's deadline: 40 s less the answer
# margin the agent keeps, a tenth of it capped at 3 s (ha::spool::decide::answer_margin).
DEADLINE=37
cat >"$W/facts.json" <<FACTS
{"rabbit": "$RABBIT", "live": $((3 - KILLED)), "killed": $KILLED, "leader": "$(leader watcher_id)",
 "epoch": $(leader epoch), "done_reboot": 5, "done_off": 1, "failed_off": 1, "retries": 2, "recovered": 1,
 "cluster": "$CLUSTER", "rabbit2": "$RABBIT2", "cluster2": "$CLUSTER2", "done2": 2, "deadline": $DEADLINE}
FACTS
echo "== after: leader $FIRST_LEADER -> $(leader watcher_id), $KILLED watcher(s) SIGKILLed"
python3 ci/prometheus-check.py "$PROM" "$DASHBOARD" "$W/facts.json" after
echo "prometheus suite: every dashboard query and the alerts it caused are as expected"
