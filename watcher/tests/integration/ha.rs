//! The HA watcher cluster with real processes: exactly-once execution under races, leader
//! failover, fencing of a frozen holder, ordering, superseding, coalescing, retries bounded by the
//! deadline, per-target exclusion, health of the fence path, and the status report.

use std::collections::HashMap;
use std::time::Duration;

use ha::protocol::response::Outcome;
use harness::process::*;
use nix::sys::signal::Signal;

fn prepare(w: &World) {
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
}

#[test]
fn racing_watchers_execute_each_request_exactly_once() {
    let w = World::new();
    prepare(&w);
    let _watchers: Vec<Proc> = (1..=3).map(|i| w.watcher(&format!("w{i}"), &["--max-parallel", "3"])).collect();
    // One request per target, so none is coalesced into another: each must run exactly once.
    let ids: Vec<String> = (0..60).map(|i| w.queue("off", &format!("node{i}"), 100, 120, 0)).collect();
    for id in &ids {
        let r = w.await_response(id);
        assert!(r.success && r.outcome == Some(Outcome::Done), "{r:?}");
    }
    for id in &ids {
        assert_eq!(w.starts(id), 1, "{id} executed exactly once");
    }
    assert!(wait_until(Duration::from_secs(20), || w.files("claimed").is_empty()));
    assert!(w.files("requests").is_empty());
    let by: std::collections::HashSet<String> =
        ids.iter().filter_map(|id| w.response(id).and_then(|r| r.watcher_id)).collect();
    assert!(by.len() >= 2, "the watchers shared the work: {by:?}");
}

#[test]
fn a_killed_leader_is_replaced_with_a_higher_epoch() {
    let w = World::new();
    let first = w.watcher("w1", &[]);
    let leader = |min_epoch: u64| {
        let mut rec = None;
        let ok = wait_until(Duration::from_secs(20), || {
            rec = ha::cluster::leader::read(&w.spool()).ok().flatten().filter(|r| r.epoch >= min_epoch);
            rec.is_some()
        });
        assert!(ok, "no leader with epoch >= {min_epoch}");
        rec.unwrap()
    };
    let one = leader(1);
    assert_eq!(one.watcher_id, "w1");
    let _b = w.watcher("w2", &[]);
    let _c = w.watcher("w3", &[]);
    first.signal(Signal::SIGKILL);
    drop(first);
    let two = leader(one.epoch + 1);
    assert!(two.watcher_id == "w2" || two.watcher_id == "w3", "{two:?}");
    assert_eq!(
        ha::fsio::lock::probe(&ha::cluster::leader::lock_path(&w.spool())).unwrap(),
        ha::fsio::lock::LockState::Held
    );
    let out = w.agent("action=reboot\nport=n1\n");
    assert_exit(&out, 0);
    let id = w.ledger()[0].request_id.clone().unwrap();
    assert_eq!(w.response(&id).unwrap().epoch, Some(two.epoch), "responses record the epoch");
}

#[test]
fn a_frozen_holder_is_killed_by_a_peer_and_the_request_completes_once() {
    let w = World::new();
    let frozen = w.watcher("w1", &["--ttl", "1.5"]);
    w.behave("n1", "hang");
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=30\n");
    let hung = w.first_start();
    frozen.signal(Signal::SIGSTOP);
    w.behave("n1", "succeed");
    let _peer = w.watcher("w2", &["--ttl", "1.5"]);
    assert_exit(&agent.wait_with_output().unwrap(), 0);
    assert!(!alive(frozen.pid()), "the frozen watcher was killed by its peer");
    assert!(!alive(hung.pid as i32), "and so was its fence command");
    let id = hung.request_id.unwrap();
    assert_eq!(w.starts(&id), 2);
    let resp = w.response(&id).unwrap();
    assert_eq!((resp.watcher_id.as_deref(), resp.outcome), (Some("w2"), Some(Outcome::Done)));
    assert_eq!(w.files("done").iter().filter(|f| f.contains(".superseded.")).count(), 0, "one response");
}

#[test]
fn one_target_runs_in_submission_order_and_targets_by_priority() {
    let w = World::new();
    prepare(&w);
    let t1_on = w.queue("on", "t1", 50, 120, 5000);
    let t1_status = w.queue("status", "t1", 10, 120, 4000);
    let t2_off = w.queue("off", "t2", 100, 120, 3000);
    let t3_reboot = w.queue("reboot", "t3", 90, 120, 2000);
    let t4_status = w.queue("status", "t4", 10, 120, 1000);
    let _w = w.watcher("w1", &["--max-parallel", "1"]);
    for id in [&t1_on, &t1_status, &t2_off, &t3_reboot, &t4_status] {
        w.await_response(id);
    }
    assert_eq!(w.start_order(), [t2_off, t3_reboot, t1_on, t1_status, t4_status]);
}

#[test]
fn a_flood_of_low_priority_requests_delays_a_high_priority_one_by_one_execution() {
    let w = World::new();
    prepare(&w);
    w.behave("*", "sleep:100");
    for i in 0..30 {
        w.queue("status", &format!("low{i}"), 10, 300, 0);
    }
    let _w = w.watcher("w1", &["--max-parallel", "1"]);
    assert!(wait_until(Duration::from_secs(20), || w.start_order().len() >= 3));
    let before = w.start_order().len();
    let urgent = w.queue("off", "victim", 100, 300, 0);
    w.await_response(&urgent);
    let position = w.start_order().iter().position(|id| *id == urgent).unwrap();
    assert!(position <= before, "started at {position}, {before} had started when it arrived");
}

#[test]
fn a_later_off_supersedes_a_queued_on_for_the_same_target() {
    let w = World::new();
    prepare(&w);
    let on = w.queue("on", "n1", 50, 120, 2000);
    let off = w.queue("off", "n1", 100, 120, 1000);
    let _w = w.watcher("w1", &[]);
    let r = w.await_response(&on);
    assert_eq!(r.outcome, Some(Outcome::Superseded));
    assert!(r.message.contains(&off), "{}", r.message);
    assert!(w.await_response(&off).success);
    assert_eq!(w.start_order(), [off]);
}

#[test]
fn identical_queued_requests_are_coalesced_and_later_ones_are_not() {
    let w = World::new();
    prepare(&w);
    w.behave("n1", "sleep:1500");
    let queued: Vec<String> = (0..3).map(|i| w.queue("off", "n1", 100, 120, 3000 - i * 100)).collect();
    let _w = w.watcher("w1", &[]);
    assert!(wait_until(Duration::from_secs(20), || !w.start_order().is_empty()));
    let late = w.queue("off", "n1", 100, 120, 0);
    let executed = w.start_order()[0].clone();
    assert_eq!(executed, queued[0]);
    for id in &queued[1..] {
        let r = w.await_response(id);
        assert_eq!(r.outcome, Some(Outcome::Coalesced));
        assert!(r.success && r.message.contains(&executed), "{r:?}");
    }
    assert_eq!(w.await_response(&late).outcome, Some(Outcome::Done));
    assert_eq!(w.start_order(), [executed, late], "the late request ran on its own");
}

#[test]
fn retries_stop_at_the_deadline() {
    let w = World::new();
    let _w = w.watcher("w1", &["--max-attempts", "50", "--retry-delay", "0.2", "--retry-max-delay", "0.4"]);
    w.behave("n1", "fail");
    let out = w.agent("action=off\nport=n1\nfence_timeout=3\n");
    assert_exit(&out, 1);
    let req_id = w.ledger()[0].request_id.clone().unwrap();
    let done = w.sub("done").join(format!("{req_id}.w1.1.json"));
    assert!(wait_until(Duration::from_secs(20), || done.exists()));
    let req = ha::protocol::request::Request::parse(&std::fs::read(&done).unwrap()).unwrap();
    let deadline = req.deadline_boottime_ns.unwrap();
    let starts: Vec<u64> = w.ledger().iter().filter(|l| l.event == "start").map(|l| l.boottime_ns).collect();
    assert!(starts.len() >= 2 && starts.len() < 50, "{} attempts", starts.len());
    assert!(starts.iter().all(|s| *s < deadline), "no attempt starts after the deadline");
    // The watcher records every execution it starts in attempts/ at spawn; the executor writes its
    // ledger line only once running, so one killed at the deadline may be missing from the ledger.
    let recorded = std::fs::read_to_string(w.sub("attempts").join(format!("{req_id}.jsonl"))).unwrap().lines().count();
    assert_eq!(w.response(&req_id).unwrap().attempts, Some(recorded as u32));
    assert!(starts.len() == recorded || starts.len() + 1 == recorded, "{} started, {recorded} recorded", starts.len());
}

#[test]
fn executions_against_one_target_never_overlap_across_watchers() {
    let w = World::new();
    prepare(&w);
    w.behave("*", "sleep:30");
    let ids: Vec<String> =
        (0..24).map(|i| w.queue(["off", "reboot"][i % 2], ["a", "b"][i % 3 % 2], 90, 120, 0)).collect();
    let _watchers: Vec<Proc> = (1..=3).map(|i| w.watcher(&format!("w{i}"), &[])).collect();
    for id in &ids {
        w.await_response(id);
    }
    let mut spans: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let mut open: HashMap<u32, u64> = HashMap::new();
    for l in w.ledger() {
        match l.event.as_str() {
            "start" => {
                open.insert(l.pid, l.boottime_ns);
            }
            _ => spans.entry(l.target.clone()).or_default().push((open[&l.pid], l.boottime_ns)),
        }
    }
    for (target, mut s) in spans {
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{target}: {:?} overlaps {:?}", pair[0], pair[1]);
        }
    }
}

#[test]
fn a_broken_fence_path_fails_monitor_and_shows_in_status() {
    let w = World::new();
    w.behave("@monitor", "fail");
    let _w = w.watcher("w1", &["--health-interval", "0.5"]);
    let health = ha::cluster::health::path(&w.spool());
    assert!(wait_until(Duration::from_secs(20), || health.exists()));
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("is broken"), "{}", text(&out.stderr));
    w.behave("@monitor", "succeed");
    let recovered = wait_until(Duration::from_secs(20), || w.agent("action=monitor\n").status.success());
    assert!(recovered, "monitor passes again once the path is healthy");
    // The agent also passes when health.json is stale (older than three check intervals, which a
    // loaded machine can make it): wait for the leader's next check to show the path healthy.
    let report = || {
        let status = std::process::Command::new(watcher_bin())
            .args(["status", "--json", "--spool-dir", path_str(&w.spool)])
            .output()
            .unwrap();
        assert!(status.status.success());
        serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()
    };
    let healthy = wait_until(Duration::from_secs(20), || report()["health"]["paths"][0]["ok"] == true);
    assert!(healthy, "status shows the fence path healthy again: {}", report());
    let report = report();
    assert_eq!(report["leader"]["watcher_id"], "w1");
    assert_eq!(report["members"][0]["live"], true);
}

#[test]
fn a_fence_command_that_cannot_start_is_reported_in_words() {
    let w = World::new();
    let _w = w.watcher("w1", &["--fence-command", "/nonexistent/fence_x", "--health-interval", "0.5"]);
    let health = ha::cluster::health::path(&w.spool());
    assert!(wait_until(Duration::from_secs(20), || health.exists()));
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    let said = text(&out.stderr);
    assert!(said.contains("monitor could not be started: cannot run /nonexistent/fence_x"), "{said}");
    assert!(!said.contains("SpawnFailed") && !said.contains("(\""), "no internal names: {said}");
}

#[test]
fn status_exits_non_zero_with_no_live_watcher() {
    let w = World::new();
    w.watcher("w1", &[]).terminate();
    let out =
        std::process::Command::new(watcher_bin()).args(["status", "--spool-dir", path_str(&w.spool)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = text(&out.stdout);
    assert!(text.contains("leader NONE") && text.contains("w1") && text.contains("dead"), "{text}");
}

/// `status --wait` (the README's quick look starts a watcher in the background, then fences): it
/// waits for a watcher that is not there yet, and still fails when none comes.
#[test]
fn status_wait_waits_for_a_live_watcher() {
    let w = World::new();
    let status = |extra: &[&str]| {
        let mut c = std::process::Command::new(watcher_bin());
        c.args(["status", "--spool-dir", path_str(&w.spool)]).args(extra);
        c
    };
    assert_eq!(status(&["--wait", "0.2"]).output().unwrap().status.code(), Some(1), "no watcher, no spool");
    let waiting = status(&["--wait", "30"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let _w1 = w.watcher("w1", &[]);
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("w1"), "{}", text(&out.stdout));
}

#[test]
fn status_watch_redraws_a_terminal_and_writes_plain_frames_into_a_pipe() {
    let w = World::new();
    let _w1 = w.watcher("w1", &[]);
    let args = ["status", "--watch", "0.1", "--frames", "3", "--spool-dir", path_str(&w.spool)];
    let out = std::process::Command::new(watcher_bin()).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let piped = text(&out.stdout);
    assert!(!piped.contains('\x1b'), "no terminal escapes into a pipe: {piped:?}");
    let frames: Vec<&str> = piped.split(" (Ctrl-C to stop)").skip(1).collect();
    assert!(frames.len() == 3 && frames.iter().all(|f| f.contains("w1")), "{piped}");
    // On a terminal (util-linux's script gives it one), each frame clears the screen first.
    let line = format!("{} {}", watcher_bin(), args.join(" "));
    let out = std::process::Command::new("script").args(["-q", "-e", "-c", &line, "/dev/null"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert_eq!(shown.matches("\x1b[H\x1b[2J").count(), 3, "{shown:?}");
}

#[test]
fn a_dead_holders_request_is_recovered_at_once_not_at_the_next_rescan() {
    let w = World::new();
    // A rescan period longer than the agent's timeout: only the peer-death watch can save the fence.
    let slow = ["--rescan-interval", "120"];
    let a = w.watcher("w1", &slow);
    let b = w.watcher("w2", &slow);
    w.behave("n1", "hang");
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=20\n");
    let hung = w.first_start();
    let holder = ha::protocol::names::ClaimName::parse(&w.files("claimed")[0]).unwrap().watcher;
    w.behave("n1", "succeed");
    let (victim, survivor) = if holder == "w1" { (a, b) } else { (b, a) };
    victim.signal(Signal::SIGKILL);
    assert_exit(&agent.wait_with_output().unwrap(), 0);
    let id = hung.request_id.unwrap();
    assert_eq!(w.starts(&id), 2);
    assert!(alive(survivor.pid()));
    drop(victim);
}

/// The executions in the ledger, as (start, end) boot times per request id.
fn runs(w: &World) -> Vec<(u64, u64)> {
    let mut started: HashMap<(String, u32), u64> = HashMap::new();
    let mut runs = Vec::new();
    for l in w.ledger() {
        let key = (l.request_id.clone().unwrap_or_default(), l.pid);
        match l.event.as_str() {
            "start" => {
                started.insert(key, l.boottime_ns);
            }
            "end" => runs.extend(started.remove(&key).map(|s| (s, l.boottime_ns))),
            _ => {}
        }
    }
    runs
}

/// The most runs in flight at one time.
fn most_at_once(runs: &[(u64, u64)]) -> usize {
    runs.iter().map(|(s, _)| runs.iter().filter(|(a, b)| a <= s && s < b).count()).max().unwrap_or(0)
}

/// Finding: a PDU that accepts one session fails the fences that reach it
/// together, and three watchers run three at once whatever each one's `--max-parallel`. With
/// `"sessions": 1` on the device, the fences of its four plugs, spread over three watchers, run one
/// after another and all succeed; waiting for the device is not an attempt.
#[test]
fn a_device_that_takes_one_session_runs_one_fence_at_a_time_across_watchers() {
    let w = World::new();
    let config = w.config_file(r#""sessions":1,"#, "");
    w.behave("*", "sleep:300");
    let _watchers: Vec<Proc> = (1..=3).map(|i| w.watcher(&format!("w{i}"), &["--config", path_str(&config)])).collect();
    let ids: Vec<String> = (1..=4).map(|i| w.queue("off", &format!("plug{i}"), 100, 60, 0)).collect();
    for id in &ids {
        let r = w.await_response(id);
        assert!(r.success && r.attempts == Some(1), "{r:?}");
    }
    let runs = runs(&w);
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert_eq!(most_at_once(&runs), 1, "executions overlapped on a one-session device: {runs:?}");
}

/// Finding: `--max-parallel` defaulted to 4, so 16 compute nodes lost at
/// once took four rounds of fence time through one watcher (and the shipped three instances, 12 at
/// once, still two). One watcher with the defaults now runs the 16 together.
#[test]
fn one_watcher_with_the_defaults_fences_a_chassis_of_sixteen_at_once() {
    let w = World::new();
    prepare(&w);
    w.behave("*", "sleep:3000");
    let ids: Vec<String> = (1..=16).map(|i| w.queue("off", &format!("compute-{i}"), 100, 60, 0)).collect();
    let _w = w.watcher("w1", &[]);
    for id in &ids {
        assert!(w.await_response(id).success);
    }
    let runs = runs(&w);
    assert_eq!(runs.len(), 16, "{runs:?}");
    assert_eq!(most_at_once(&runs), 16, "not all sixteen ran at once: {runs:?}");
}

/// Finding: a fence that waited for a busy device's session ran
/// with the budget measured before the wait, so it could run past its deadline (answered after its
/// agent gave up). The budget is measured once the session is held: the waiting fence is killed at
/// its deadline.
#[test]
fn a_fence_that_waited_for_a_device_session_still_ends_by_its_deadline() {
    let w = World::new();
    let config = w.config_file(r#""sessions":1,"#, "");
    w.behave("*", "sleep:4000");
    let _w = w.watcher("w1", &["--config", path_str(&config), "--max-attempts", "1"]);
    let first = w.queue("off", "plug1", 100, 30, 0);
    assert!(wait_until(Duration::from_secs(20), || w.starts(&first) == 1));
    // The session frees about 4 s from now; this fence's deadline is 6 s from now.
    let waiting = w.queue("off", "plug2", 100, 6, 0);
    let r = w.await_response(&waiting);
    assert!(!r.success && r.message.contains("timed out"), "ran past its deadline: {r:?}");
    assert!(w.await_response(&first).success);
}
