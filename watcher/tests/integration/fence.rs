//! Fences end to end: the real agent, real watchers, the test executor as the fence command.

use std::time::Duration;

use harness::process::*;
use nix::sys::signal::Signal;

#[test]
fn reboot_as_pacemaker_sends_it() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let out = w.agent("action=reboot\nport=node2\nnodename=node2\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Success: Rebooted\n");
    let id = w.files("responses")[0].trim_end_matches(".json").to_string();
    let resp = w.response(&id).unwrap();
    assert!(resp.success);
    assert_eq!(resp.watcher_id.as_deref(), Some("w1"));
    assert_eq!(w.starts(&id), 1, "executed exactly once");
    let line = w.ledger().into_iter().find(|l| l.event == "start").unwrap();
    assert_eq!(
        (line.action.as_str(), line.target.as_str(), line.nodename.as_deref()),
        ("reboot", "node2", Some("node2"))
    );
    // The watcher retires the claim just after writing the response the agent has read (tmp/ may
    // hold a heartbeat being written for an instant).
    let settled = || w.files("claimed").is_empty() && w.files("requests").is_empty() && w.files("tmp").is_empty();
    assert!(wait_until(Duration::from_secs(20), settled), "{:?}", (w.files("claimed"), w.files("tmp")));
    assert_eq!(w.files("done"), [format!("{id}.w1.1.json")]);
    let readable = w.log("fence-events-readable.log");
    assert!(
        readable.contains("ACTION=reboot TARGET=node2 GFS2=[\"discovery-disabled\"] STATUS=requested"),
        "{readable}"
    );
    assert!(readable.contains("STATUS=completed"));
    let jsonl = w.log("fence-events-detailed.jsonl");
    assert_eq!(jsonl.lines().count(), 2);
    assert!(jsonl.contains(&format!("\"request_id\": \"{id}\"")));
    assert!(w.log("fence-events.log").contains("[INFO] Fence action requested: reboot for target: node2"));
}

#[test]
fn off_on_and_status_from_the_command_line() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let base = ["--spool-dir", path_str(&w.spool), "--log-dir", path_str(&w.logs), "--no-gfs2-discovery"];
    let run = |action: &str, plug: &str| w.agent_args(&[&base[..], &["-o", action, "-n", plug]].concat());
    let out = run("off", "n1");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Success: Powered OFF\n");
    let out = run("on", "n1");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Success: Powered ON\n");
    let out = run("status", "n1");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Status: ON\n");
    w.behave("n2", "off");
    let out = run("status", "n2");
    assert_exit(&out, 2);
    assert_eq!(text(&out.stdout), "Status: OFF\n");
}

#[test]
fn pcmk_host_map_alias_reaches_the_fence_command_as_plug() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=off\nnodename=node2\nplug=plug7\n"), 0);
    let start = w.ledger().into_iter().find(|l| l.event == "start").unwrap();
    assert_eq!((start.target.as_str(), start.nodename.as_deref()), ("plug7", Some("node2")));
    assert!(wait_until(Duration::from_secs(20), || !w.files("done").is_empty()));
    let req = std::fs::read_to_string(w.sub("done").join(&w.files("done")[0])).unwrap();
    assert!(req.contains("\"target_node\":\"plug7\"") && req.contains("\"nodename\":\"node2\""), "{req}");
}

#[test]
fn an_executor_failure_is_retried_then_a_fence_failure() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    w.behave("n1", "fail");
    let out = w.agent("action=off\nport=n1\n");
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(
        err.contains("Failed: fence off of n1 failed: after 2 attempts, the last: fence command exited with status 1"),
        "{err}"
    );
    let id = w.ledger()[0].request_id.clone().unwrap();
    assert_eq!(w.starts(&id), 2, "the default attempt cap is 2");
    assert_eq!(w.response(&id).unwrap().attempts, Some(2));
    assert!(err.contains("outcome failed, watcher w1"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(w.log("fence-events-readable.log").contains("STATUS=failed"));
    assert_no_children(watcher.pid(), "both executions reaped, nothing left running");
}

#[test]
fn a_hanging_executor_is_killed_at_the_deadline_and_the_agent_answers_before_its_timeout() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    w.behave("n1", "hang");
    // fence_timeout 10: the watcher kills the command at the request's deadline and has the 1 s
    // margin (a tenth of the timeout) to answer; 3 s left only 0.5 s, which a loaded CI machine
    // running the other tests in parallel once exceeded.
    let out = w.agent("action=off\nport=n1\nfence_timeout=10\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("timed out after"), "{}", text(&out.stderr));
    let start = w.ledger().into_iter().find(|l| l.event == "start").unwrap();
    assert!(!alive(start.pid as i32), "the hanging fence command was killed");
    assert!(w.ledger().iter().all(|l| l.event == "start"), "a killed execution has no end line");
    let resp = w.response(start.request_id.as_deref().unwrap()).unwrap();
    assert_eq!(resp.outcome, Some(ha::protocol::response::Outcome::Failed));
    assert!(w.log("fence-events-readable.log").contains("STATUS=failed"));
    assert_no_children(watcher.pid(), "the killed command was reaped, not left a zombie");
}

#[test]
fn the_agent_waits_on_its_fifo_and_leaves_nothing_in_waiting() {
    use std::os::unix::fs::FileTypeExt;
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    w.behave("n1", "sleep:1500");
    let agent = w.spawn_agent("action=off\nport=n1\n");
    let mut fifo = None;
    let seen = wait_until(Duration::from_secs(20), || {
        fifo = w.files("waiting").into_iter().find(|n| n.ends_with(".fifo"));
        fifo.is_some()
    });
    assert!(seen, "the agent made no FIFO in waiting/");
    let meta = std::fs::symlink_metadata(w.sub("waiting").join(fifo.unwrap())).unwrap();
    assert!(meta.file_type().is_fifo());
    assert_exit(&agent.wait_with_output().unwrap(), 0);
    assert!(wait_until(Duration::from_secs(10), || w.files("waiting").is_empty()), "{:?}", w.files("waiting"));
}

#[test]
fn an_agent_that_times_out_is_answered_abandoned_and_never_executed() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    watcher.signal(Signal::SIGSTOP);
    let out = w.agent("action=reboot\nport=n1\nfence_timeout=2\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("no response to request"), "{}", text(&out.stderr));
    assert!(w.log("fence-events-readable.log").contains("STATUS=failed"));
    let req = w.published_request();
    watcher.signal(Signal::SIGCONT);
    let resp = w.await_response(&req.request_id);
    assert_eq!(resp.outcome, Some(ha::protocol::response::Outcome::Abandoned));
    assert_eq!(w.starts(&req.request_id), 0, "a request whose agent is gone is never executed");
}

#[test]
fn an_expired_request_is_answered_and_never_executed() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    watcher.terminate();
    let id = new_id();
    let boot = ha::os::clock::boot_id().unwrap();
    w.put_request(&format!(
        r#"{{"request_id":"{id}","timestamp":"t","action":"off","target_node":"n1","version":1,
            "deadline_boottime_ns":1000,"boot_id":"{boot}"}}"#
    ));
    let _watcher = w.watcher("w2", &[]);
    let resp = w.await_response(&id);
    assert_eq!(resp.outcome, Some(ha::protocol::response::Outcome::Expired));
    assert!(!resp.success);
    assert_eq!(w.starts(&id), 0);
}

#[test]
fn with_no_live_watcher_the_fence_fails_at_once_and_publishes_nothing() {
    let w = World::new();
    w.watcher("w1", &[]).terminate();
    let out = w.agent("action=reboot\nport=n1\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("no live gfs2-fence-watcher"), "{}", text(&out.stderr));
    assert!(w.files("requests").is_empty());
    assert!(w.log("fence-events-readable.log").contains("STATUS=failed"));
}

#[test]
fn malformed_foreign_and_stale_responses_are_ignored_until_the_right_one_comes() {
    let w = World::new();
    // The test itself is the external responder.
    w.spool().prepare(&ha::spool::AGENT_DIRS).unwrap();
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=30\nresponder=external\n");
    let req = w.published_request();
    let path = w.sub("responses").join(format!("{}.json", req.request_id));
    let put = |body: String| {
        let tmp = w.sub("tmp").join("r.tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    let resp = |id: &str, target: &str, action: &str| {
        format!(
            r#"{{"request_id":"{id}","success":true,"action_performed":"{action}","target_node":"{target}","message":"m","timestamp":"t"}}"#
        )
    };
    for (body, warning) in [
        ("{\"request_id\": \"trunc".to_string(), "malformed response"),
        (resp(&new_id(), "n1", "off"), "response is for request"),
        (resp(&req.request_id, "n2", "off"), "response is for target"),
        (resp(&req.request_id, "n1", "on"), "reports action"),
    ] {
        put(body);
        let seen = wait_until(Duration::from_secs(20), || w.log("fence-events.log").contains(warning));
        assert!(seen, "{warning} not logged: {}", w.log("fence-events.log"));
    }
    put(resp(&req.request_id, "n1", "off"));
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("malformed response"), "warnings also go to stderr");
    assert!(path.exists(), "the agent never deletes responses");
}

#[test]
fn a_request_in_the_original_format_written_in_place_is_served_once_complete() {
    use std::io::Write;
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let id = new_id();
    let body = format!(
        "{{\n  \"request_id\": \"{id}\",\n  \"timestamp\": \"2025-10-20T14:30:00+00:00\",\n  \"action\": \"reboot\",\n  \
         \"target_node\": \"compute-node-3\",\n  \"gfs2_filesystems\": [\"fs1\"],\n  \"recorder_node\": \"rabbit-1\"\n}}"
    );
    let (head, tail) = body.split_at(body.len() / 2);
    let mut f = std::fs::File::create(w.sub("requests").join(format!("{id}.json"))).unwrap();
    f.write_all(head.as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(w.response(&id).is_none(), "a partial file is not answered");
    f.write_all(tail.as_bytes()).unwrap();
    drop(f);
    let resp = w.await_response(&id);
    assert!(resp.success, "{resp:?}");
    assert_eq!(w.starts(&id), 1);
    assert!(w.files("quarantine").is_empty());
}

#[test]
fn concurrent_agents_never_tear_a_log_line() {
    let w = World::new();
    let _a = w.watcher("w1", &[]);
    let _b = w.watcher("w2", &[]);
    let agents: Vec<_> = (0..16).map(|i| w.spawn_agent(&format!("action=reboot\nport=node{i}\n"))).collect();
    for a in agents {
        assert_exit(&a.wait_with_output().unwrap(), 0);
    }
    let readable = w.log("fence-events-readable.log");
    assert_eq!(readable.lines().count(), 32);
    for line in readable.lines() {
        assert!(
            line.starts_with('[') && line.contains(" ACTION=reboot TARGET=node") && line.contains(" STATUS="),
            "{line}"
        );
    }
    let jsonl = w.log("fence-events-detailed.jsonl");
    assert_eq!(jsonl.lines().count(), 32);
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["action"], "reboot");
    }
    let starts = w.ledger().iter().filter(|l| l.event == "start").count();
    assert_eq!(starts, 16, "each request executed once across two watchers");
    let (code, verified) = events(&w, &["verify"]);
    assert_eq!(code, 0, "{verified}");
    assert!(verified.contains("OK: 32 chained records"), "concurrent agents share one chain: {verified}");
}

#[test]
fn an_external_responder_of_either_generation_is_answered_under_its_names() {
    for (protocol, v2) in [("1", false), ("2", true)] {
        let w = World::new();
        w.spool().prepare(&ha::spool::AGENT_DIRS).unwrap();
        let agent = w.spawn_agent(&format!("action=reboot\nport=n1\nresponder=external\nprotocol={protocol}\n"));
        let mut name = None;
        let seen = wait_until(Duration::from_secs(20), || {
            name = w.files("requests").into_iter().find(|n| !n.starts_with('.'));
            name.is_some()
        });
        assert!(seen, "no request was published");
        let name = name.unwrap();
        let bytes = std::fs::read(w.sub("requests").join(&name)).unwrap();
        let req = ha::protocol::request::Request::parse(&bytes).unwrap();
        let want = if v2 { format!("n1-{}.json", req.request_id) } else { format!("{}.json", req.request_id) };
        assert_eq!(name, want, "protocol={protocol}");
        // The responder answers under the request's name, as upstream's and the seed's do.
        let tmp = w.sub("tmp").join("answer");
        std::fs::write(
            &tmp,
            format!(
                r#"{{"request_id":"{}","success":true,"action_performed":"off","target_node":"n1","message":"powered off","timestamp":"t"}}"#,
                req.request_id
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, w.sub("responses").join(&name)).unwrap();
        let out = agent.wait_with_output().unwrap();
        assert_exit(&out, 0);
        assert_eq!(text(&out.stdout).trim(), "Success: Rebooted");
    }
}

#[test]
fn an_external_responders_request_given_up_is_taken_back() {
    let w = World::new();
    w.spool().prepare(&ha::spool::AGENT_DIRS).unwrap();
    let out = w.agent("action=off\nport=n1\nresponder=external\nprotocol=2\nfence_timeout=2\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("was removed"), "{}", text(&out.stderr));
    assert!(w.files("requests").is_empty(), "{:?}", w.files("requests"));
}

#[test]
fn a_sigterm_during_the_delay_publishes_nothing() {
    let w = World::new();
    w.spool().prepare(&ha::spool::AGENT_DIRS).unwrap();
    let agent = w.spawn_agent("action=off\nport=n1\nresponder=external\ndelay=2\nfence_timeout=30\n");
    // The agent has started its delay once its operational log says the fence was requested.
    assert!(wait_until(Duration::from_secs(20), || w.log("fence-events.log").contains("Fence action requested")));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.id() as i32), Signal::SIGTERM).unwrap();
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("before the request was published"), "{}", text(&out.stderr));
    assert!(w.files("requests").is_empty(), "{:?}", w.files("requests"));
}
