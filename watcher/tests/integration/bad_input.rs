//! Bad input gets a clear error naming the problem, and nothing is lost: bad requests are quarantined
//! with their reason (and answered `rejected` when their id is readable) while the watcher goes on
//! serving; unsafe spools are refused at start.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use ha::protocol::response::Outcome;
use harness::process::*;

fn old(path: &std::path::Path) {
    set_mtime(path, SystemTime::now() - Duration::from_secs(60));
}

#[test]
fn every_kind_of_bad_request_is_quarantined_with_its_reason() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    watcher.signal(nix::sys::signal::Signal::SIGSTOP);
    let req = |id: &str, target: &str, action: &str, extra: &str| {
        format!(r#"{{"request_id":"{id}","timestamp":"t","action":"{action}","target_node":"{target}"{extra}}}"#)
    };
    let requests = w.sub("requests");
    let mut cases: Vec<(String, &str, bool)> = Vec::new();
    std::fs::write(requests.join("evil.json"), req(&new_id(), "n1", "off", "")).unwrap();
    cases.push(("evil.json".into(), "is not <request-uuid>.json", false));
    let (id, name) = (new_id(), |id: &str| format!("{id}.json"));
    std::fs::write(requests.join(name(&id)), "{\"request_id\": ").unwrap();
    old(&requests.join(name(&id)));
    cases.push((id, "invalid JSON", true));
    let id = new_id();
    std::fs::write(requests.join(name(&id)), req("not-a-uuid", "n1", "off", "")).unwrap();
    cases.push((id, "is not a UUID", true));
    let id = new_id();
    std::fs::write(requests.join(name(&id)), req(&id, "n1", "off", r#","version":7"#)).unwrap();
    cases.push((id, "unknown spool version 7", true));
    let id = new_id();
    std::fs::write(requests.join(name(&id)), req(&id, "../../etc/passwd", "off", "")).unwrap();
    cases.push((id, "unsafe target_node", true));
    let id = new_id();
    std::fs::write(requests.join(name(&id)), req(&id, "n1", "explode", "")).unwrap();
    cases.push((id, "unknown action \"explode\"", true));
    let id = new_id();
    let padding = format!(r#","pad":"{}""#, "x".repeat(70 * 1024));
    std::fs::write(requests.join(name(&id)), req(&id, "n1", "off", &padding)).unwrap();
    cases.push((id, "larger than 65536 bytes", true));
    let id = new_id();
    std::os::unix::fs::symlink("/etc/hostname", requests.join(name(&id))).unwrap();
    cases.push((id, "symbolic link", true));
    let id = new_id();
    std::fs::create_dir(requests.join(name(&id))).unwrap();
    cases.push((id, "directory", true));
    watcher.signal(nix::sys::signal::Signal::SIGCONT);

    let all_moved = wait_until(Duration::from_secs(20), || w.files("requests").is_empty());
    assert!(all_moved, "left in requests/: {:?}", w.files("requests"));
    let quarantined = w.files("quarantine");
    for (key, reason, answered) in &cases {
        let file = if key.ends_with(".json") { key.clone() } else { format!("{key}.json") };
        assert!(quarantined.contains(&file), "{file} not quarantined: {quarantined:?}");
        let reason_file = w.sub("quarantine").join(format!("{file}.reason"));
        assert!(wait_until(Duration::from_secs(20), || reason_file.exists()), "{file} has no reason");
        let why = std::fs::read_to_string(reason_file).unwrap();
        assert!(why.contains(reason), "{file}: reason {why:?} should say {reason:?}");
        if *answered {
            let r = w.await_response(key);
            assert_eq!(r.outcome, Some(Outcome::Rejected));
            assert!(!r.success && r.message.contains(reason), "{r:?}");
        }
    }
    assert!(w.ledger().is_empty(), "nothing bad was executed");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    assert!(alive(watcher.pid()), "the watcher kept serving");
}

#[test]
fn an_unsafe_plug_is_refused_before_anything_is_published() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let out = w.agent("action=off\nport=../etc\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("unsafe plug name"), "{}", text(&out.stderr));
    assert!(w.files("requests").is_empty(), "the agent refuses before publishing");
}

#[test]
fn unsafe_spools_are_refused_by_watcher_and_agent() {
    let w = World::new();
    let spool = ["--spool-dir", path_str(&w.spool), "--fence-command", executor_bin()];
    std::fs::create_dir(&w.spool).unwrap();
    std::fs::set_permissions(&w.spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = w.watcher_refused(&spool);
    assert!(err.contains("world-writable") && err.contains("chmod 0700"), "{err}");
    let out = w.agent("action=off\nport=n1\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("world-writable"), "{}", text(&out.stderr));

    std::fs::set_permissions(&w.spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::create_dir(w.sub("requests")).unwrap();
    std::fs::set_permissions(w.sub("requests"), std::fs::Permissions::from_mode(0o722)).unwrap();
    let err = w.watcher_refused(&spool);
    assert!(err.contains("requests") && err.contains("writable"), "{err}");

    let missing = w.dir.path().join("no/such/parent/spool");
    let err = w.watcher_refused(&["--spool-dir", path_str(&missing), "--fence-command", executor_bin()]);
    assert!(err.contains("cannot create directory"), "{err}");
}

#[test]
fn a_second_watcher_with_the_same_id_is_refused() {
    let w = World::new();
    let _first = w.watcher("w1", &[]);
    let err = w.watcher_refused(&["--spool-dir", path_str(&w.spool), "--fence-command", executor_bin(), "--id", "w1"]);
    assert!(err.contains("another watcher with id \"w1\" is running"), "{err}");
}

#[test]
fn a_bad_configuration_is_refused_with_the_reason() {
    let w = World::new();
    let config = w.dir.path().join("c.json");
    std::fs::write(&config, r#"{"default":{"command":"/bin/true","optoins":{}}}"#).unwrap();
    let err = w.watcher_refused(&["--spool-dir", path_str(&w.spool), "--config", path_str(&config)]);
    assert!(err.contains("unknown field `optoins`"), "{err}");
}

#[test]
fn settings_that_cannot_work_are_refused_at_start_under_the_name_the_operator_used() {
    let w = World::new();
    let base = ["--spool-dir", path_str(&w.spool), "--fence-command", executor_bin()];
    // A value from the environment (the sysconfig file) is named by its variable, not by a flag.
    let err = w.watcher_refused_with(&[("GFS2_FENCE_TTL", "abc")], &base);
    assert!(err.contains("GFS2_FENCE_TTL") && !err.contains("--ttl"), "{err}");
    // A TTL that two heartbeats outlast would make every watcher look frozen: refused.
    let err = w.watcher_refused_with(&[("GFS2_FENCE_TTL", "0.5")], &base);
    assert!(err.contains("GFS2_FENCE_TTL=0.500") && err.contains("twice the heartbeat interval"), "{err}");
    let err = w.watcher_refused(&[&base[..], &["--ttl", "3", "--heartbeat-interval", "2"]].concat());
    assert!(err.contains("--ttl=3.000") && err.contains("--heartbeat-interval=2.000"), "{err}");
    assert!(!w.spool.join("members").exists(), "nothing started");
    // The agent's fence_timeout: said once, with the smallest value that works.
    let out = w.agent("action=off\nport=n1\nfence_timeout=abc\n");
    assert_exit(&out, 1);
    let said = text(&out.stderr);
    assert!(said.matches("expected").count() == 1 && said.contains("expected 1.5 to 86400"), "{said}");
}

#[test]
fn a_configuration_holding_a_password_that_others_can_read_is_warned_of() {
    let w = World::new();
    let config = w.dir.path().join("c.json");
    std::fs::write(&config, r#"{"targets":{"n1":{"command":"/bin/true","options":{"passwd":"s3cret"}}}}"#).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let watcher = w.watcher("w1", &["--config", path_str(&config)]);
    let said = watcher.stderr_text();
    assert!(said.contains("holds a secret (passwd)") && said.contains("chmod 0600"), "{said}");
    assert!(!said.contains("s3cret"), "the secret itself is never logged: {said}");
}
