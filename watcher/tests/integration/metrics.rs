//! The live view: `--metrics-addr` serves Prometheus metrics that follow what the watcher does, and
//! `/healthz`; anything but a loopback address is refused.

use std::time::Duration;

use harness::process::*;

/// Finding: a response counter series was born at its first response,
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

/// The value of the series `line_start` (the metric name with its labels) in `m`.
fn value(m: &str, series: &str) -> Option<f64> {
    m.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Finding: the metrics carried only action and
/// outcome, so no panel could say which nodes were fenced, how long each took against its
/// `fence_timeout`, or why one failed. Per-node series now say it, their `target` label bounded to
/// the configured targets plus `other` whatever names requests carry, served at 0 from the start.
#[test]
fn fences_are_counted_per_configured_node_and_any_other_name_is_other() {
    let w = World::new();
    let config = w.config_file("", r#""n1":{},"n2":{}"#);
    let watcher =
        w.watcher("w1", &["--config", path_str(&config), "--metrics-addr", "127.0.0.1:0", "--retry-delay", "0.05"]);
    let addr = served_at(&watcher);
    let before = get(&addr, "/metrics");
    for target in ["n1", "n2", "other"] {
        let s = format!("gfs2_fence_node_fences_total{{target=\"{target}\",action=\"off\",outcome=\"done\"}}");
        assert_eq!(value(&before, &s), Some(0.0), "{s} not served at 0 before any fence:\n{before}");
        let s = format!("gfs2_fence_node_failures_total{{target=\"{target}\",reason=\"exit_status\"}}");
        assert_eq!(value(&before, &s), Some(0.0), "{s} not served at 0 before any fence:\n{before}");
    }

    w.behave("n2", "fail");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    assert_exit(&w.agent("action=off\nport=n2\nfence_timeout=20\n"), 1);
    assert_exit(&w.agent("action=reboot\nport=stranger-1\n"), 0);
    assert_exit(&w.agent("action=reboot\nport=stranger-2\n"), 0);
    let m = get(&addr, "/metrics");
    let expect = [
        ("gfs2_fence_node_fences_total{target=\"n1\",action=\"off\",outcome=\"done\"}", 1.0),
        ("gfs2_fence_node_fences_total{target=\"n2\",action=\"off\",outcome=\"failed\"}", 1.0),
        ("gfs2_fence_node_fences_total{target=\"other\",action=\"reboot\",outcome=\"done\"}", 2.0),
        ("gfs2_fence_node_failures_total{target=\"n2\",reason=\"exit_status\"}", 1.0),
        ("gfs2_fence_node_failures_total{target=\"n1\",reason=\"exit_status\"}", 0.0),
        ("gfs2_fence_node_fence_seconds_count{target=\"n1\"}", 1.0),
        ("gfs2_fence_node_fence_seconds_count{target=\"other\"}", 2.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(&m, series), Some(want), "{series} in:\n{m}");
    }
    // The watchers' share of fence_timeout=20: the request's deadline, counted from the request
    // file's time (the kernel's coarse clock, converted from the wall clock: a few ms either way).
    let budget = ha::spool::decide::execution_budget(Duration::from_secs(20)).as_secs_f64();
    let allowed = value(&m, "gfs2_fence_node_deadline_seconds{target=\"n2\"}").unwrap_or_default();
    assert!(
        (budget - 1.0..=budget + 0.1).contains(&allowed),
        "n2's fence gave {allowed} s, its deadline {budget} s:\n{m}"
    );
    assert!(!m.contains("stranger"), "a target no configuration names became a label:\n{m}");
}
