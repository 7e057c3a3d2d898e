//! The spool's promises against anything in it (the outside review's findings, one test each, named
//! for the finding): submission order per target, one exclusion key per device and plug, names that
//! fit, nothing internal taken from request files, planted responses, foreign files. Real watchers,
//! the test executor as fence command, real files; the foreign owner needs root (CI is root) and
//! fails without it.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ha::protocol::response::Outcome;
use harness::process::*;

/// Executions (start, end) in boot-time ns, by request id, from the ledger.
fn spans(w: &World) -> Vec<(String, u64, u64)> {
    let lines = w.ledger();
    lines
        .iter()
        .filter(|l| l.event == "start")
        .filter_map(|s| {
            let end = lines.iter().find(|e| e.event == "end" && e.pid == s.pid)?;
            Some((s.request_id.clone()?, s.boottime_ns, end.boottime_ns))
        })
        .collect()
}

/// Plants something at a path.
type Plant = Box<dyn Fn(&std::path::Path)>;

/// The id of the request being executed now (waits for one in `claimed/`).
fn claimed_id(w: &World) -> String {
    let mut id = None;
    assert!(wait_until(Duration::from_secs(20), || {
        id = w.files("claimed").first().map(|n| n[..36].to_string());
        id.is_some()
    }));
    id.unwrap()
}

fn assert_no_overlap(w: &World) {
    let mut s = spans(w);
    s.sort_by_key(|x| x.1);
    for pair in s.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "executions overlap: {:?}", s);
    }
}

/// Finding: coalescing joined an `off` queued behind a `reboot` (or `on`) to an earlier `off`'s run,
/// acknowledging it before the request between them ran.
#[test]
fn requests_of_one_target_take_effect_in_submission_order_across_coalescing() {
    for middle in ["on", "reboot"] {
        let w = World::new();
        w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
        w.behave("n1", "sleep:1500");
        // off(A), off(B), on or reboot(C), off(D) for one target, in that order.
        let a = w.queue("off", "n1", 100, 60, 400);
        let b = w.queue("off", "n1", 100, 60, 300);
        let c = w.queue(middle, "n1", 90, 60, 200);
        let d = w.queue("off", "n1", 100, 60, 100);
        let _watcher = w.watcher("w1", &[]);
        for id in [&a, &b, &c, &d] {
            w.await_response(id);
        }
        assert_eq!(w.response(&b).unwrap().outcome, Some(Outcome::Coalesced), "B joins A");
        assert_eq!(w.response(&d).unwrap().outcome, Some(Outcome::Done), "D is not acknowledged from B's run");
        if middle == "on" {
            // An on followed by a queued off is superseded (never executed).
            assert_eq!(w.response(&c).unwrap().outcome, Some(Outcome::Superseded));
            assert_eq!(w.start_order(), [a.clone(), d.clone()]);
        } else {
            assert_eq!(w.start_order(), [a.clone(), c.clone(), d.clone()], "D runs after C");
        }
        let last = w.ledger().into_iter().rfind(|l| l.event == "start").unwrap();
        assert_eq!(last.action, "off", "{middle}: the node ends as the last request asked");
    }
}

/// Finding: mutual exclusion was keyed on the requested name, so a node name and its plug fenced one
/// device at once.
#[test]
fn two_names_of_one_plug_never_run_at_once_and_keep_submission_order() {
    let w = World::new();
    let config = w.config_file("", r#""compute-4":{"plug":"p4"}"#);
    w.behave("p4", "sleep:800");
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let off = w.queue("off", "compute-4", 100, 60, 200);
    let reboot = w.queue("reboot", "p4", 90, 60, 100);
    let _w1 = w.watcher("w1", &["--config", path_str(&config)]);
    let _w2 = w.watcher("w2", &["--config", path_str(&config)]);
    w.await_response(&off);
    w.await_response(&reboot);
    assert_eq!(spans(&w).len(), 2);
    assert_no_overlap(&w);
    assert_eq!(w.start_order(), [off, reboot], "one key, one submission order");
}

/// Finding: a target name too long for a file name stayed in requests/ forever, retried at every scan.
#[test]
fn a_name_too_long_for_the_spool_is_rejected_at_once_never_retried() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let long = "x".repeat(ha::protocol::names::MAX_NAME + 1);
    let id = w.queue("off", &long, 100, 60, 0);
    let resp = w.await_response(&id);
    assert_eq!(resp.outcome, Some(Outcome::Rejected), "answered rejected at once, not retried");
    assert!(w.files("requests").is_empty());
    assert!(w.ledger().is_empty(), "never executed");
    let out = w.agent(&format!("action=off\nport={}\n", "y".repeat(251)));
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("at most 128 bytes"), "{}", text(&out.stderr));
    // The longest accepted name works end to end.
    let out = w.agent(&format!("action=off\nport={}\n", "z".repeat(ha::protocol::names::MAX_NAME)));
    assert_exit(&out, 0);
}

/// Finding: a request file's `target_lock_waived` field bypassed the exclusion of executions on one
/// target.
#[test]
fn a_request_file_cannot_waive_the_target_lock() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    w.behave("n1", "sleep:800");
    for (action, age) in [("off", 200), ("reboot", 100)] {
        let id = w.queue(action, "n1", 100, 60, age);
        let path = w.sub("requests").join(format!("{id}.json"));
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["target_lock_waived"] = true.into();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, v.to_string()).unwrap();
        set_mtime(&path, modified);
    }
    let _w1 = w.watcher("w1", &[]);
    let _w2 = w.watcher("w2", &[]);
    assert!(wait_until(Duration::from_secs(20), || spans(&w).len() == 2), "{:?}", w.ledger());
    assert_no_overlap(&w);
}

/// Finding: a file planted under a response's name (garbage, symlink, FIFO, directory, sparse, hard
/// link) cost the agent its real answer.
#[test]
fn a_planted_response_never_displaces_the_real_answer() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    w.behave("n1", "sleep:600");
    let plant: Vec<(&str, Plant)> = vec![
        ("garbage", Box::new(|p| std::fs::write(p, "not json").unwrap())),
        ("symlink", Box::new(|p| std::os::unix::fs::symlink("/etc/shadow", p).unwrap())),
        ("fifo", Box::new(|p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap())),
        ("directory", Box::new(|p| std::fs::create_dir(p).unwrap())),
        ("sparse", Box::new(|p| std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap())),
    ];
    for (what, plant) in &plant {
        let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=20\n");
        let id = claimed_id(&w);
        assert!(wait_until(Duration::from_secs(20), || w.starts(&id) == 1), "{what}: not started");
        plant(&w.sub("responses").join(format!("{id}.json")));
        let out = agent.wait_with_output().unwrap();
        assert_exit(&out, 0);
        let q = w.files("quarantine");
        assert!(q.iter().any(|n| n.starts_with(&id) && n.ends_with(".reason")), "{what}: {q:?}");
        assert!(w.files("done").iter().all(|n| !n.contains("superseded")), "{what}: the real answer was not displaced");
    }
    // A hard link to another file: the real answer takes the place too.
    let elsewhere = w.dir.path().join("elsewhere.json");
    std::fs::write(&elsewhere, "{}").unwrap();
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=20\n");
    let id = claimed_id(&w);
    std::fs::hard_link(&elsewhere, w.sub("responses").join(format!("{id}.json"))).unwrap();
    assert_exit(&agent.wait_with_output().unwrap(), 0);
}

#[test]
fn requests_writable_by_others_or_hard_linked_are_rejected_never_executed() {
    let w = World::new();
    let _watcher = w.watcher("w1", &["--rescan-interval", "0.3"]);
    // Made 0666 before it is placed (written aside, then renamed in): a watcher running meanwhile
    // never sees it with any other mode.
    let open = new_id();
    let tmp = w.sub("tmp").join("open");
    std::fs::write(&tmp, bare_request(&open, "off", "n1")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::rename(&tmp, w.sub("requests").join(format!("{open}.json"))).unwrap();
    let resp = w.await_response(&open);
    assert_eq!(resp.outcome, Some(Outcome::Rejected));
    let reason = std::fs::read_to_string(w.sub("quarantine").join(format!("{open}.json.reason"))).unwrap();
    assert!(reason.contains("writable by group or others"), "{reason}");
    // A request that is also a name elsewhere (a hard link), old enough not to be a writer's link.
    let id = new_id();
    let elsewhere = w.dir.path().join("planted.json");
    std::fs::write(&elsewhere, bare_request(&id, "off", "n2")).unwrap();
    set_mtime(&elsewhere, std::time::SystemTime::now() - Duration::from_secs(60));
    std::fs::hard_link(&elsewhere, w.sub("requests").join(format!("{id}.json"))).unwrap();
    assert_eq!(w.await_response(&id).outcome, Some(Outcome::Rejected));
    assert!(w.ledger().is_empty(), "neither was executed");
}

/// Finding: a request file owned by another user was executed.
#[test]
fn a_request_owned_by_another_user_is_rejected_never_executed() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root): it chowns a request to uid 1001"
    );
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let id = new_id();
    let tmp = w.sub("tmp").join("foreign");
    std::fs::write(&tmp, bare_request(&id, "off", "n1")).unwrap();
    nix::unistd::chown(&tmp, Some(nix::unistd::Uid::from_raw(1001)), None).unwrap();
    std::fs::rename(&tmp, w.sub("requests").join(format!("{id}.json"))).unwrap();
    assert_eq!(w.await_response(&id).outcome, Some(Outcome::Rejected));
    let reason = std::fs::read_to_string(w.sub("quarantine").join(format!("{id}.json.reason"))).unwrap();
    assert!(reason.contains("owned by uid 1001"), "{reason}");
    assert!(w.ledger().is_empty());
}
