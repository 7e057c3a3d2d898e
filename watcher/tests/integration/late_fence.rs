//! No fence for a caller that is gone: Pacemaker SIGKILLs an agent at the device's timeout (the whole
//! process group, no SIGTERM) and moves on, to the next fencing level or a failed fence. From then on,
//! nothing may run the request of that agent: not a retry after a failed attempt, not a re-dispatch
//! after the executing watcher died, not the shared execution of a coalesced group. A group runs on
//! while any of its agents still waits.

use std::process::Child;
use std::time::Duration;

use ha::protocol::response::Outcome;
use harness::process::*;

/// SIGKILLs an agent as Pacemaker does at the device's timeout, and reaps it.
fn kill_agent(mut agent: Child) {
    agent.kill().unwrap();
    agent.wait().unwrap();
}

/// Waits until the ledger holds `n` ended executions.
fn await_ends(w: &World, n: usize) {
    let ended = wait_until(Duration::from_secs(20), || w.ledger().iter().filter(|l| l.event == "end").count() >= n);
    assert!(ended, "{n} execution(s) did not end: {:?}", w.ledger());
}

/// The id of the request published under `requests/` that is not one of `known` (waits for it).
fn new_request(w: &World, known: &[String]) -> String {
    let mut found = None;
    let ok = wait_until(Duration::from_secs(20), || {
        found = w
            .files("requests")
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .find(|id| !known.contains(id));
        found.is_some()
    });
    assert!(ok, "no new request was published: {:?}", w.files("requests"));
    found.unwrap()
}

#[test]
fn a_failed_attempt_is_not_retried_after_its_agent_was_killed() {
    let w = World::new();
    // The retry comes 3 to 6 s after the failure: time enough to kill the agent first.
    let _watcher = w.watcher("w1", &["--max-attempts", "3", "--retry-delay", "3", "--retry-max-delay", "3"]);
    w.behave("n1", "fail");
    let agent = w.spawn_agent("action=reboot\nport=n1\nfence_timeout=60\n");
    await_ends(&w, 1);
    let id = w.first_start().request_id.unwrap();
    kill_agent(agent);
    let resp = w.await_response(&id);
    assert_eq!(resp.outcome, Some(Outcome::Abandoned), "{resp:?}");
    assert!(!resp.success);
    assert_eq!(resp.attempts, Some(1));
    assert!(resp.message.contains("not retried after 1 failed attempt"), "{}", resp.message);
    assert!(resp.message.contains("exited with status 1"), "the last attempt's failure is kept: {}", resp.message);
    assert_eq!(w.starts(&id), 1, "no attempt ran after the agent was killed: {:?}", w.ledger());
}

#[test]
fn a_redispatch_after_the_executing_watchers_death_does_not_run_for_a_killed_agent() {
    let w = World::new();
    let executing = w.watcher("w1", &[]);
    w.behave("n1", "hang");
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=60\n");
    let id = w.first_start().request_id.unwrap();
    // Pacemaker gives up first, then the watcher running the fence dies (its command with it).
    kill_agent(agent);
    drop(executing);
    w.behave("n1", "succeed");
    let _peer = w.watcher("w2", &[]);
    let resp = w.await_response(&id);
    assert_eq!(resp.outcome, Some(Outcome::Abandoned), "{resp:?}");
    assert_eq!(resp.watcher_id.as_deref(), Some("w2"));
    assert_eq!(resp.attempts, Some(1), "the dead watcher's attempt is counted");
    assert!(resp.message.contains("not executed again after 1 attempt"), "{}", resp.message);
    assert_eq!(w.starts(&id), 1, "the re-dispatch did not run the fence again: {:?}", w.ledger());
}

#[test]
fn a_coalesced_group_runs_on_for_the_agent_that_waits_and_abandons_the_one_killed() {
    let w = World::new();
    let _watcher = w.watcher("w1", &["--max-attempts", "3", "--retry-delay", "3", "--retry-max-delay", "3"]);
    // A request without a waiting lock holds the target while two agents publish the same off.
    w.behave("n1", "sleep:3000");
    let blocker = w.queue("off", "n1", 100, 120, 0);
    assert!(wait_until(Duration::from_secs(20), || w.starts(&blocker) == 1));
    let first = w.spawn_agent("action=off\nport=n1\nfence_timeout=60\n");
    let first_id = new_request(&w, std::slice::from_ref(&blocker));
    let second = w.spawn_agent("action=off\nport=n1\nfence_timeout=60\n");
    let second_id = new_request(&w, &[blocker.clone(), first_id.clone()]);
    w.behave("n1", "fail");
    // The group's first attempt runs as the earlier request and fails.
    await_ends(&w, 2);
    assert_eq!(w.start_order(), [blocker.clone(), first_id.clone()], "the two were coalesced into one execution");
    w.behave("n1", "succeed");
    kill_agent(first);
    let out = second.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let abandoned = w.await_response(&first_id);
    assert_eq!(abandoned.outcome, Some(Outcome::Abandoned), "{abandoned:?}");
    assert!(abandoned.message.contains("not retried after 1 failed attempt"), "{}", abandoned.message);
    let done = w.await_response(&second_id);
    assert_eq!(done.outcome, Some(Outcome::Done), "the waiting agent's request leads the retry: {done:?}");
    assert_eq!(done.attempts, Some(2));
    assert_eq!(w.start_order(), [blocker, first_id, second_id], "the retry ran once, for the agent that waited");
}

#[test]
fn the_leaders_sweep_keeps_a_waiting_agents_holder_lock_however_old() {
    // An agent with responder=external on a spool the watchers also serve holds `.<request>.lock`
    // in requests/ for as long as it waits; the leader's sweep of old hidden files must not take it
    // (it is how a killed agent is told), while a free one, and any other old hidden file, goes.
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let held_name = ha::protocol::names::holder_lock_name(&format!("{}.json", new_id()));
    let held_path = w.sub("requests").join(&held_name);
    let _held = ha::fsio::lock::try_exclusive(ha::fsio::lock::open_lock_file(&held_path).unwrap(), &held_path)
        .unwrap()
        .unwrap();
    set_mtime(&held_path, old);
    let free_path = w.sub("requests").join(ha::protocol::names::holder_lock_name(&format!("{}.json", new_id())));
    drop(ha::fsio::lock::open_lock_file(&free_path).unwrap());
    set_mtime(&free_path, old);
    let stale = w.sub("requests").join(".x.json.tmp");
    std::fs::write(&stale, "{").unwrap();
    set_mtime(&stale, old);
    let _leader = w.watcher("w1", &[]);
    assert!(wait_until(Duration::from_secs(10), || !stale.exists() && !free_path.exists()), "the sweep ran");
    assert!(held_path.exists(), "a held holder lock stays: {:?}", w.files("requests"));
}
