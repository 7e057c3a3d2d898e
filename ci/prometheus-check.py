#!/usr/bin/env python3
"""Evaluates every query of the Grafana dashboard (and the alerts the rules raised) against a real
Prometheus, and checks each returns the series and value that what ci/prometheus-suite.sh caused
implies. A dashboard query without an expectation here fails the check, so a new panel gets one.

Usage: prometheus-check.py PROMETHEUS_URL DASHBOARD_JSON FACTS_JSON PHASE [PATIENCE_SECONDS]
PHASE is `during` (a slow fence in flight, a request queued behind it) or `after` (everything done).
FACTS_JSON: {"rabbit", "live", "leader", "epoch", "done_reboot", "done_off", "failed_off",
"retries", "recovered", "killed", "cluster", "rabbit2", "cluster2", "done2", "deadline"} as the suite observed them
(spool files, exit codes). The dashboard's $rabbit is the first rabbit; the site row sees both."""

import json
import sys
import time
import urllib.parse
import urllib.request

WINDOW = "15m"  # for $__rate_interval and $__range: longer than the whole run, so increases count every event


def query(url, expr):
    data = urllib.parse.urlencode({"query": expr}).encode()
    with urllib.request.urlopen(url + "/api/v1/query", data, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"Prometheus refused {expr!r}: {body}")
    return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]


def one(result, **labels):
    """The value of the one series whose labels include `labels`."""
    found = [v for m, v in result if all(m.get(k) == want for k, want in labels.items())]
    if len(found) != 1:
        raise AssertionError(f"expected one series with {labels}, got {result}")
    return found[0]


def about(value, expected):
    """An increase() over a window: Prometheus extrapolates a series by up to half a scrape interval
    past its last sample (the suite lets every series gather ten samples first, so that is at most a
    twentieth) and to the end of the window: allow a tenth, plus a little."""
    if expected == 0:
        return abs(value) < 0.01
    return 0.9 * expected <= value <= 1.1 * expected + 0.1


def expectations(f):
    """expr -> (phase, check(result) -> None, raises AssertionError). Every dashboard query is here."""

    def eq(a, b, what):
        if a != b:
            raise AssertionError(f"{what}: {a} != {b}")

    def near(v, e, what):
        if not about(v, e):
            raise AssertionError(f"{what}: {v} is not about {e}")

    def within(v, lo, hi, what):
        if not lo < v <= hi:
            raise AssertionError(f"{what}: {v} not in ({lo}, {hi}]")

    r = f["rabbit"]
    r2 = f.get("rabbit2")
    w = WINDOW
    power = 'action=~"off|reboot"'
    return {
        # The site overview row: every rabbit.
        'count by (cluster) (max by (rabbit, cluster) (gfs2_fencing_info{job="gfs2-fencing"}))':
            ("after", lambda res: (eq(one(res, cluster=f["cluster"]), 1, "rabbits of the first cluster"),
                                   eq(one(res, cluster=f["cluster2"]), 1, "rabbits of the second cluster"))),
        'sum by (rabbit) (up{job="gfs2-fencing"})':
            ("after", lambda res: (eq(one(res, rabbit=r), f["live"], "watchers up"),
                                   eq(one(res, rabbit=r2), 1, "watchers up on the second rabbit"))),
        f'round(sum by (rabbit) (increase(gfs2_fence_responses_total{{{power},outcome="done"}}[1h])))':
            ("after", lambda res: (near(one(res, rabbit=r), f["done_reboot"] + f["done_off"], "fences done"),
                                   near(one(res, rabbit=r2), f["done2"], "fences done on the second rabbit"))),
        f'round(sum by (rabbit) (increase(gfs2_fence_responses_total{{{power},outcome=~"failed|expired|abandoned"}}[{w}])))':
            ("after", lambda res: (near(one(res, rabbit=r), f["failed_off"], "fences failed"),
                                   near(one(res, rabbit=r2), 0, "fences failed on the second rabbit"))),
        # The rabbit row: the first rabbit.
        f'sum by (rabbit) (up{{job="gfs2-fencing",rabbit=~"{r}"}})':
            ("after", lambda res: (eq(len(res), 1, "rabbits shown"), eq(one(res, rabbit=r), f["live"], "watchers up"))),
        f'max by (leader) (gfs2_fence_leader_epoch{{rabbit=~"{r}"}})':
            ("after", lambda res: (eq(len(res), 1, "leader series"),
                                   eq(one(res, leader=f["leader"]), f["epoch"], "leader epoch"))),
        f'sum(gfs2_fence_in_flight{{rabbit=~"{r}"}})':
            ("during", lambda res: eq(one(res), 1, "executions in flight")),
        f'max by (rabbit) (gfs2_fence_quarantined_files{{rabbit=~"{r}"}})':
            ("after", lambda res: eq(one(res, rabbit=r), 1, "quarantined files")),
        f'round(sum by (outcome, action) (increase(gfs2_fence_responses_total{{rabbit=~"{r}"}}[{w}])))':
            ("after", lambda res: (near(one(res, outcome="done", action="reboot"), f["done_reboot"], "done reboots"),
                                   near(one(res, outcome="done", action="off"), f["done_off"], "done offs"),
                                   near(one(res, outcome="failed", action="off"), f["failed_off"], "failed offs"),
                                   near(one(res, outcome="done", action="status"), 0, "done statuses"))),
        f'max by (priority) (gfs2_fence_queue_depth{{rabbit=~"{r}"}})':
            ("during", lambda res: eq(one(res, priority="100"), 1, "queued off requests")),
        f'histogram_quantile(0.99, sum by (le) (rate(gfs2_fence_execution_seconds_bucket{{rabbit=~"{r}"}}[{w}])))':
            # the slow fence (sleep:6000) is the one execution in the (5, 10] s bucket
            ("after", lambda res: within(one(res), 5, 10, "p99 fence command time")),
        f'histogram_quantile(0.5, sum by (le) (rate(gfs2_fence_execution_seconds_bucket{{rabbit=~"{r}"}}[{w}])))':
            ("after", lambda res: within(one(res), 0, 0.5, "p50 fence command time")),
        f'round(sum(increase(gfs2_fence_retries_total{{rabbit=~"{r}"}}[{w}])))':
            ("after", lambda res: near(one(res), f["retries"], "retries")),
        f'round(sum(increase(gfs2_fence_recovered_claims_total{{rabbit=~"{r}"}}[{w}])))':
            ("after", lambda res: near(one(res), f["recovered"], "recovered claims")),
        # The nodes row: per node (the first rabbit's watchers name n1-n6 in their configuration),
        # fences, their time against the deadline, failures by reason; counts are whole numbers.
        f'round(sum by (target, outcome) (increase(gfs2_fence_node_fences_total{{rabbit=~"{r}"}}[{w}]))) > 0':
            ("after", lambda res: ([eq(one(res, target=n, outcome="done"), 1, f"{n}'s fences done") for n in ("n1", "n2", "n3", "n4")],
                                   eq(one(res, target="n5", outcome="failed"), 1, "n5's failed fence"),
                                   eq(one(res, target="n6", outcome="done"), 2, "n6's fences done"),
                                   eq(len(res), 6, "series (no other, no zero)"))),
        f'round(sum by (target) (increase(gfs2_fence_node_fences_total{{rabbit=~"{r}"}}[{w}]))) > 0':
            ("after", lambda res: (eq(sorted((m["target"], v) for m, v in res),
                                      [("n1", 1), ("n2", 1), ("n3", 1), ("n4", 1), ("n5", 1), ("n6", 2)], "fences per node"))),
        f'histogram_quantile(0.95, sum by (target, le) (rate(gfs2_fence_node_fence_seconds_bucket{{rabbit=~"{r}"}}[{w}]))) > 0':
            # n1's fence is the watchers' sub-second path; n6's slow reboot (6 s, its watcher killed,
            # run again by a peer) and the off queued behind it took seconds, within their deadline.
            ("after", lambda res: (within(one(res, target="n1"), 0, 1, "n1's fence time"),
                                   within(one(res, target="n6"), 5, f["deadline"], "n6's fence time"))),
        f'max by (target) (max_over_time(gfs2_fence_node_deadline_seconds{{rabbit=~"{r}"}}[{w}]))':
            # (measured from the request file's time, converted from the wall clock: a few ms either way)
            ("after", lambda res: [within(one(res, target=n), f["deadline"] - 1, f["deadline"] + 0.1, f"{n}'s deadline")
                                   for n in ("n1", "n2", "n3", "n4", "n5", "n6")]),
        f'round(sum by (target, reason) (increase(gfs2_fence_node_failures_total{{rabbit=~"{r}"}}[{w}]))) > 0':
            ("after", lambda res: (eq(len(res), 1, "failure series"), eq(one(res, target="n5", reason="exit_status"), 1, "n5's failure"))),
        # The rules, evaluated by the same Prometheus on the same data.
        'ALERTS{alertname="GFS2FenceFailed",alertstate="firing"}':
            ("after", lambda res: (eq(len(res), 1, "failed-fence alerts (one for the rabbit)"),
                                   one(res, rabbit=r, action="off", outcome="failed"))),
        'ALERTS{alertname="GFS2FenceQuarantine",alertstate="firing"}':
            ("after", lambda res: (eq(len(res), 1, "quarantine alerts (one for the rabbit)"), one(res, rabbit=r))),
        'ALERTS{alertname="GFS2FenceWatcherDown",alertstate="pending"}':
            ("after", lambda res: eq(len(res), f["killed"], "watchers down (pending for 2m)")),
        # The site rule joins the rabbit's cluster from gfs2_fencing_info (pending: it waits 2m).
        'ALERTS{alertname="GFS2FencingRabbitUnhealthy"}':
            ("after", lambda res: (eq(len(res), 1, "unhealthy rabbits"), one(res, rabbit=r, cluster=f["cluster"]))),
    }


def main():
    url, dashboard, facts, phase = sys.argv[1:5]
    f = json.load(open(facts))
    exp = expectations(f)
    exprs = [t["expr"].replace("$__rate_interval", WINDOW).replace("$__range", WINDOW).replace("$rabbit", f["rabbit"])
             for p in json.load(open(dashboard))["panels"] for t in p.get("targets", [])]
    missing = [e for e in exprs if e not in exp]
    if missing:
        raise SystemExit(f"dashboard queries without an expectation in {sys.argv[0]}: {missing}")
    # Scrapes lag the events by up to a scrape interval: a check is polled until it holds or
    # `patience` seconds pass, never decided by one early look.
    patience = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    failed = 0
    for expr, (when, check) in exp.items():
        if when != phase:
            continue
        deadline = time.monotonic() + patience
        while True:
            res = query(url, expr)
            try:
                check(res)
                print(f"  ok    {expr} = {[(m, v) for m, v in res if v != 0][:4] or res[:1]}")
                break
            except AssertionError as e:
                if time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                failed += 1
                print(f"  FAIL  {expr}: {e}")
                break
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    main()
