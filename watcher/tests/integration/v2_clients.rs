//! Our watchers serving upstream's protocol v2 clients (`fence_recorder`, `fence_dummy
//! --type=recorder`), alone and mixed with our agent on one spool. The client here is a stand-in
//! written from their documented behaviour (the upstream programs cannot run in CI, and their code is
//! not copied): it writes `requests/.<target>-<uuid>.json.tmp`, renames it to `<target>-<uuid>.json`,
//! and polls `responses/<target>-<uuid>.json` until its timeout, trusting only that file name and
//! the answer's `success`. Real processes, files, signals.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ha::protocol::response::{Outcome, Response};
use nix::sys::signal::Signal;

use harness::process::*;

const CLIENT: &str = r#"#!/bin/bash
# A stand-in for a protocol v2 client (upstream fence_recorder / fence_dummy's recorder mode).
set -eu
spool=$1 action=$2 target=$3 timeout=$4
id=$(cat /proc/sys/kernel/random/uuid)
name="$target-$id.json"
printf '{"request_id":"%s","timestamp":"%s","action":"%s","target_node":"%s","recorder_node":"%s"}' \
    "$id" "$(date -Is)" "$action" "$target" "$(hostname)" > "$spool/requests/.$name.tmp"
mv "$spool/requests/.$name.tmp" "$spool/requests/$name"
echo "$name" >&2
for _ in $(seq $((timeout * 20))); do
    if [ -s "$spool/responses/$name" ]; then
        cat "$spool/responses/$name"
        exit 0
    fi
    sleep 0.05
done
echo "no response" >&2
exit 1
"#;

fn client(w: &World, action: &str, target: &str) -> Child {
    let path = w.dir.path().join("v2-client");
    if !path.exists() {
        std::fs::write(&path, CLIENT).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Command::new(&path)
        .args([path_str(&w.spool), action, target, "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The client's answer (it exits 0 once the answer is there) and the request's file name.
fn answer(c: Child) -> (Response, String) {
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "the v2 client got no answer: {}", text(&out.stderr));
    let name = text(&out.stderr).lines().next().unwrap().to_string();
    (Response::parse(&out.stdout).unwrap(), name)
}

/// Finding: requests named `<target>-<uuid>.json` (protocol v2 clients) were quarantined as bad names.
#[test]
fn a_v2_client_is_answered_under_its_requests_own_name() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let (resp, name) = answer(client(&w, "reboot", "compute-7"));
    assert!(resp.success && resp.outcome == Some(Outcome::Done), "{resp:?}");
    assert_eq!(name, format!("compute-7-{}.json", resp.request_id), "answered under the request's own name");
    assert_eq!(w.starts(&resp.request_id), 1);
    let run = w.ledger().into_iter().find(|l| l.event == "start").unwrap();
    assert_eq!((run.action.as_str(), run.target.as_str()), ("reboot", "compute-7"));
    assert!(w.files("quarantine").is_empty(), "{:?}", w.files("quarantine"));
    assert!(w.files("done").iter().any(|n| n.starts_with(&resp.request_id) && n.ends_with(".v2.json")));
}

#[test]
fn v1_agents_and_v2_clients_share_one_spool() {
    let w = World::new();
    let _w1 = w.watcher("w1", &[]);
    let _w2 = w.watcher("w2", &[]);
    let clients: Vec<Child> = (0..4).map(|i| client(&w, "off", &format!("v2-node-{i}"))).collect();
    let agents: Vec<Child> = (0..4).map(|i| w.spawn_agent(&format!("action=off\nport=v1-node-{i}\n"))).collect();
    for c in clients {
        let (resp, name) = answer(c);
        assert!(resp.success, "{resp:?}");
        assert!(name.starts_with("v2-node-"));
    }
    for a in agents {
        assert_exit(&a.wait_with_output().unwrap(), 0);
    }
    let starts = w.ledger().into_iter().filter(|l| l.event == "start").count();
    assert_eq!(starts, 8, "each request ran once");
    let names = w.files("responses");
    assert_eq!(names.iter().filter(|n| n.starts_with("v2-node-")).count(), 4, "{names:?}");
    assert_eq!(names.iter().filter(|n| ha::protocol::names::request_id_of_file(n).is_some()).count(), 4, "{names:?}");
}

#[test]
fn a_v2_name_that_does_not_match_its_content_is_rejected_under_its_own_name() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let id = new_id();
    let name = format!("n2-{id}.json");
    let tmp = w.sub("requests").join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bare_request(&id, "off", "n1")).unwrap();
    std::fs::rename(&tmp, w.sub("requests").join(&name)).unwrap();
    let path = w.sub("responses").join(&name);
    assert!(wait_until(Duration::from_secs(20), || path.exists()), "no answer under {name}");
    let resp = Response::parse(&std::fs::read(&path).unwrap()).unwrap();
    assert!(!resp.success && resp.outcome == Some(Outcome::Rejected), "{resp:?}");
    assert!(resp.message.contains("does not match the file name"), "{}", resp.message);
    assert!(w.ledger().is_empty(), "neither n1 nor n2 was fenced");
}

#[test]
fn a_request_without_a_deadline_runs_only_within_its_budget_from_when_it_was_written() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let old = |name: &str, age: Duration| {
        let id = new_id();
        let file = format!("{name}-{id}.json");
        let path = w.sub("requests").join(&file);
        std::fs::write(&path, bare_request(&id, "off", name)).unwrap();
        let when = std::time::SystemTime::now().checked_sub(age).unwrap_or(std::time::UNIX_EPOCH);
        set_mtime(&path, when);
        file
    };
    // Written two minutes ago (a backlog, a watcher restart): its client gave up long ago.
    let stale = old("stale", Duration::from_secs(120));
    // Written before this boot.
    let ancient = old("ancient", Duration::from_secs(100 * 365 * 86_400));
    let _watcher = w.watcher("w1", &[]);
    for file in [&stale, &ancient] {
        let path = w.sub("responses").join(file);
        assert!(wait_until(Duration::from_secs(20), || path.exists()), "no answer under {file}");
        let resp = Response::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(resp.outcome, Some(Outcome::Expired), "{file}: {resp:?}");
    }
    assert!(w.ledger().is_empty(), "never executed");
}

#[test]
fn a_v2_request_whose_holder_dies_is_answered_under_its_name_once() {
    let w = World::new();
    // Hung until w1 dies, not slowed: a fence that ends before the kill (w2 slow to start on a
    // busy machine) would never be run again.
    w.behave("n1", "hang");
    let w1 = w.watcher("w1", &[]);
    let c = client(&w, "off", "n1");
    // w1, alone, claims it and runs it; w2 joins; w1 dies mid-fence.
    let first = w.first_start();
    let _w2 = w.watcher("w2", &[]);
    w.behave("n1", "succeed");
    w1.signal(Signal::SIGKILL);
    let (resp, name) = answer(c);
    assert!(resp.success, "{resp:?}");
    assert_eq!(name, format!("n1-{}.json", resp.request_id));
    assert_eq!(first.request_id.as_deref(), Some(resp.request_id.as_str()));
    assert_eq!(w.starts(&resp.request_id), 2, "run again by the survivor after the holder's death");
    assert!(w.files("done").iter().all(|n| !n.contains("superseded")), "answered once");
}

#[test]
fn writers_temporaries_are_left_alone_then_swept() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let fresh = w.sub("requests").join(format!(".n1-{}.json.tmp", new_id()));
    let stale = w.sub("requests").join(format!(".n2-{}.json.tmp", new_id()));
    std::fs::write(&fresh, "{\"request_id\": ").unwrap();
    std::fs::write(&stale, "{\"request_id\": ").unwrap();
    set_mtime(&stale, std::time::SystemTime::now() - Duration::from_secs(3600));
    let _watcher = w.watcher("w1", &[]);
    assert!(wait_until(Duration::from_secs(20), || !stale.exists()), "a dead writer's temporary stays");
    assert!(fresh.exists(), "a writer's temporary was removed while it may still be writing");
    assert!(w.files("quarantine").is_empty(), "temporaries are not requests: {:?}", w.files("quarantine"));
}
