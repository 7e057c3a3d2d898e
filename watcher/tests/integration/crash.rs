//! Crash safety with real signals: a watcher SIGKILLed mid-fence takes its fence command with it, and
//! the request is executed again by the next watcher; SIGTERM leaves nothing claimed.

use std::time::Duration;

use harness::process::*;
use nix::sys::signal::Signal;

#[test]
fn sigkill_of_the_holder_kills_its_fence_command_and_another_watcher_finishes_the_request() {
    let w = World::new();
    let first = w.watcher("w1", &[]);
    w.behave("n1", "hang");
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=60\n");
    let hung = w.first_start();
    first.signal(Signal::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(20), || !alive(hung.pid as i32)),
        "the fence command died with its watcher (PR_SET_PDEATHSIG)"
    );
    drop(first);
    w.behave("n1", "succeed");
    let _second = w.watcher("w2", &[]);
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 0);
    let id = hung.request_id.unwrap();
    assert_eq!(w.starts(&id), 2, "executed again after the holder died");
    assert!(wait_until(Duration::from_secs(20), || w.files("claimed").is_empty()));
    assert_eq!(w.files("done"), [format!("{id}.w2.2.json")]);
    let resp = w.response(&id).unwrap();
    assert_eq!(resp.attempts, Some(2));
}

#[test]
fn sigterm_kills_in_flight_commands_after_the_grace_period_and_requeues() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    w.behave("n1", "hang");
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=60\n");
    let hung = w.first_start();
    let status = watcher.terminate();
    assert!(status.success(), "a clean stop");
    assert!(!alive(hung.pid as i32), "no orphaned fence command");
    assert!(w.files("claimed").is_empty(), "nothing left claimed: {:?}", w.files("claimed"));
    let id = hung.request_id.unwrap();
    assert_eq!(w.files("requests"), [format!("{id}.json")], "the request is back in the queue");
    w.behave("n1", "succeed");
    let _next = w.watcher("w2", &[]);
    assert_exit(&agent.wait_with_output().unwrap(), 0);
}
