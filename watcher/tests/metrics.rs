//! The live view: `--metrics-addr` serves Prometheus metrics that follow what the watcher does, and
//! `/healthz`; anything but a loopback address is refused.

mod common;

use std::time::Duration;

use common::*;

/// Finding (#18, Prometheus for real): a response counter series was born at its first response,
/// at 1, and Prometheus sees no increase in a series' first sample, so `GFS2FenceFailed`
/// (`increase(...{outcome="failed"}[15m]) > 0`) never fired for a watcher's first failed fence.
/// Every action's alerting outcomes are served at 0 from the start.
#[test]
fn a_first_failure_is_an_increase_prometheus_sees() {
    let w = World::new();
    let watcher = w.watcher("w1", &["--metrics-addr", "127.0.0.1:0"]);
    let m = get(&served_at(&watcher), "/metrics");
    for action in ["off", "reboot", "on", "status"] {
        for outcome in ["done", "failed", "expired", "abandoned", "rejected"] {
            let line = format!("gfs2_fence_responses_total{{action=\"{action}\",outcome=\"{outcome}\"}} 0");
            assert!(m.contains(&line), "missing {line:?} before any fence in:\n{m}");
        }
    }
}

#[test]
fn metrics_follow_answers_executions_retries_and_leadership() {
    let w = World::new();
    let watcher = w.watcher("w1", &["--metrics-addr", "127.0.0.1:0", "--retry-delay", "0.05"]);
    let addr = served_at(&watcher);
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.0 200 OK") && get(&addr, "/healthz").ends_with("ok w1\n"));
    assert!(get(&addr, "/nope").starts_with("HTTP/1.0 404"));

    w.behave("bad", "fail");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    assert_exit(&w.agent("action=off\nport=bad\nfence_timeout=20\n"), 1);
    let leader = wait_until(Duration::from_secs(20), || get(&addr, "/metrics").contains("gfs2_fence_leader 1"));
    assert!(leader);
    let m = get(&addr, "/metrics");
    assert!(m.contains("Content-Type: text/plain; version=0.0.4"), "{m}");
    for line in [
        "gfs2_fence_responses_total{action=\"off\",outcome=\"done\"} 1",
        "gfs2_fence_responses_total{action=\"off\",outcome=\"failed\"} 1",
        "gfs2_fence_execution_seconds_count 3",
        "gfs2_fence_retries_total 1",
        "gfs2_fence_leader_terms_total 1",
        "gfs2_fence_leader_epoch{leader=\"w1\"} 1",
        "gfs2_fence_in_flight 0",
        "gfs2_fence_quarantined_files 0",
        "# TYPE gfs2_fence_execution_seconds histogram",
    ] {
        assert!(m.contains(line), "missing {line:?} in:\n{m}");
    }
}

#[test]
fn metrics_are_served_on_loopback_only() {
    let w = World::new();
    let said = w.watcher_refused(&["--spool-dir", &w.spool.display().to_string(), "--metrics-addr", "0.0.0.0:9851"]);
    assert!(said.contains("is not a loopback address"), "{said}");
}
