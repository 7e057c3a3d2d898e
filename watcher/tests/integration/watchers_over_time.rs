//! Watchers over time: a spool cleaned by hand and a signal from an operator never cost a fence.
//! Real watchers, agents, directories and signals.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use harness::process::*;
use nix::sys::signal::Signal;

#[test]
fn a_removed_requests_directory_is_watched_again_at_once_and_fences_go_on() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    // An operator clears stale requests; the next agent makes the directory again.
    std::fs::remove_dir_all(w.sub("requests")).unwrap();
    let out = w.agent("action=off\nport=n2\nfence_timeout=10\n");
    assert!(out.status.success(), "{}", watcher.stderr_text());
    assert!(wait_until(Duration::from_secs(10), || watcher.stderr_text().contains("making them again")));
    // And again, the directory replaced while the watcher waits for nothing in particular.
    // (the watcher may make it again before this does)
    std::fs::remove_dir_all(w.sub("requests")).unwrap();
    if std::fs::create_dir(w.sub("requests")).is_ok() {
        std::fs::set_permissions(w.sub("requests"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let out = w.agent("action=off\nport=n3\nfence_timeout=10\n");
    assert!(out.status.success(), "{}", watcher.stderr_text());
    assert_eq!(w.ledger().iter().filter(|l| l.event == "start").count(), 3);
}

#[test]
fn a_replaced_spool_makes_the_watcher_stop_pinging_its_watchdog_and_exit_for_a_restart() {
    let mut w = World::new();
    let notify = w.dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&notify).unwrap();
    systemd.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    w.watcher_env.push(("NOTIFY_SOCKET".into(), notify.display().to_string()));
    let mut watcher = w.watcher("w1", &["--heartbeat-interval", "0.2"]);
    let mut buf = [0u8; 64];
    let mut pinged = false;
    while !pinged {
        let n = systemd.recv(&mut buf).expect("the watcher pings its watchdog");
        pinged = &buf[..n] == b"WATCHDOG=1";
    }
    // rm -rf of the spool (again while the watcher writes its heartbeat in it), then
    // systemd-tmpfiles --create: a new, empty spool under the same name.
    let removed = wait_until(Duration::from_secs(10), || std::fs::remove_dir_all(&w.spool).is_ok());
    assert!(removed, "rm -rf of the spool");
    std::fs::create_dir(&w.spool).unwrap();
    std::fs::set_permissions(&w.spool, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let exited = wait_until(Duration::from_secs(20), || !alive(watcher.pid()));
    assert!(exited, "the watcher kept running on a spool that is gone: {}", watcher.stderr_text());
    let status = watcher.child.wait().unwrap();
    assert!(!status.success(), "it exits non-zero, so that systemd (Restart=always) starts it again");
    // Whichever it saw first: members/ going (inotify) or the spool replaced (its identity).
    let said = watcher.stderr_text();
    assert!(said.contains("was removed or replaced") && said.contains("exits for a restart"), "{said}");
    // Its last word to systemd was STOPPING=1, not another WATCHDOG=1.
    systemd.set_nonblocking(true).unwrap();
    let mut last = Vec::new();
    while let Ok(n) = systemd.recv(&mut buf) {
        last = buf[..n].to_vec();
    }
    assert_eq!(String::from_utf8_lossy(&last), "STOPPING=1");
    // Started again (as systemd would), it fences on the new spool.
    let _again = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
}

#[test]
fn hup_usr1_and_usr2_never_kill_a_watcher_nor_the_fence_it_runs() {
    let w = World::new();
    let first = w.watcher("w1", &[]);
    let second = w.watcher("w2", &[]);
    w.behave("n1", "sleep:1500");
    let agent = w.spawn_agent("action=off\nport=n1\n");
    let id = w.first_start().request_id.unwrap();
    for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        first.signal(sig);
        second.signal(sig);
    }
    assert_exit(&agent.wait_with_output().unwrap(), 0);
    assert!(alive(first.pid()) && alive(second.pid()), "both watchers live on");
    assert_eq!(w.starts(&id), 1, "the fence ran once: nobody ran it again after a watcher's death");
    let said = first.stderr_text();
    assert!(said.contains("SIGHUP received and ignored") && said.contains("SIGUSR2 received and ignored"), "{said}");
}

/// A loopback port nobody holds now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What `status --json` says of `id`'s metrics server.
fn metrics_state(w: &World, id: &str) -> Option<String> {
    status_members(w).iter().find(|m| m["id"] == id)?["metrics"].as_str().map(str::to_string)
}

#[test]
fn a_squatted_metrics_port_never_stops_fencing_and_is_served_once_free() {
    let w = World::new();
    // Any local user can bind a port first (or in the RestartSec gap after a restart).
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = squatter.local_addr().unwrap().to_string();
    let watcher = w.watcher("w1", &["--metrics-addr", &addr]);
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    let said = || metrics_state(&w, "w1").unwrap_or_default();
    assert!(wait_until(Duration::from_secs(10), || said().contains("cannot bind")), "status says why: {}", said());
    assert!(watcher.stderr_text().contains("cannot serve metrics"), "{}", watcher.stderr_text());
    drop(squatter);
    let served = served_at(&watcher);
    assert_eq!(served, addr);
    let body = get(&served, "/metrics");
    let failures = body.lines().find(|l| l.starts_with("gfs2_fence_metrics_bind_failures_total ")).unwrap_or_default();
    assert!(failures.split(' ').nth(1).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) >= 1, "{body}");
    assert!(wait_until(Duration::from_secs(10), || said() == addr), "status shows the address: {}", said());
}

#[test]
fn each_instance_serves_on_the_base_port_plus_its_number_and_a_name_is_refused_without_stopping_fencing() {
    let w = World::new();
    let base = free_port() - 2;
    let second = w.watcher("w2", &["--metrics-base-port", &base.to_string(), "--instance", "2"]);
    assert_eq!(served_at(&second), format!("127.0.0.1:{}", base + 2));
    let named = w.watcher("wx", &["--metrics-base-port", &base.to_string(), "--instance", "blue"]);
    let said = named.stderr_text();
    assert!(said.contains("\"blue\" is not a number") && said.contains("gfs2-fence-watcher@1"), "{said}");
    second.terminate();
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    assert_eq!(w.response(&w.start_order()[0]).unwrap().watcher_id.as_deref(), Some("wx"), "the named one fences");
}

/// Sets `pid`'s soft limit of open descriptors with util-linux's prlimit (the hard limit stays, so
/// the soft one can be raised again).
fn limit_descriptors(pid: i32, n: usize) {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={n}:"))
        .output()
        .expect("prlimit (util-linux) is needed");
    assert!(out.status.success(), "prlimit: {}", text(&out.stderr));
}

/// The watcher's open descriptors once it holds all it keeps: the leader lock comes from a thread
/// of its own, possibly after the watcher is live, and the least of several samples leaves out a
/// heartbeat's or a health check's passing descriptors.
fn settled_descriptors(watcher: &Proc) -> Vec<usize> {
    let leader = wait_until(Duration::from_secs(10), || watcher.stderr_text().contains("now the leader"));
    assert!(leader, "the only watcher is elected: {}", watcher.stderr_text());
    (0..8)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::read_dir(format!("/proc/{}/fd", watcher.pid()))
                .unwrap()
                .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
                .collect::<Vec<usize>>()
        })
        .min_by_key(Vec::len)
        .unwrap()
}

#[test]
fn a_request_that_cannot_be_read_or_claimed_for_want_of_descriptors_is_claimed_once_they_are_back() {
    let w = World::new();
    let watcher = w.watcher("w1", &[]);
    // No descriptor to spare: reading the request, its lease and the target's lock all fail with
    // EMFILE. The request is neither judged bad nor forgotten until the next full listing (30 s,
    // past this fence's deadline): it is claimed within a moment of the descriptors' return.
    // A new descriptor takes the lowest free number, which must be below the limit: a limit at the
    // lowest free number leaves none, whatever numbers the watcher holds above it.
    let held = settled_descriptors(&watcher);
    limit_descriptors(watcher.pid(), (0..).find(|n| !held.contains(n)).unwrap());
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=15\n");
    assert!(wait_until(Duration::from_secs(10), || !w.files("requests").is_empty()), "the request was placed");
    std::thread::sleep(Duration::from_millis(700));
    assert!(w.files("claimed").is_empty() && w.ledger().is_empty(), "nothing could be claimed meanwhile");
    limit_descriptors(watcher.pid(), 1024);
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert!(w.files("quarantine").is_empty(), "a valid request is never quarantined: {:?}", w.files("quarantine"));
    assert!(watcher.stderr_text().contains("file descriptors"), "the log says why: {}", watcher.stderr_text());
}

#[test]
fn a_fence_command_that_cannot_start_for_want_of_descriptors_is_started_later_and_never_counted() {
    let w = World::new();
    // Two attempts 0.2 s apart: a failed start counted as an attempt would use both at once.
    let watcher = w.watcher("w1", &["--max-attempts", "2", "--retry-delay", "0.2", "--retry-max-delay", "0.2"]);
    // The watcher's descriptors are all it may have, but for five: a claim keeps three (the lease,
    // the target's two locks) and briefly needs one or two more (a directory's fsync), where
    // starting the command needs six at once (its three pipes): the start fails with EMFILE.
    // A claim that fails for want of them is tried again shortly (see the test below).
    limit_descriptors(watcher.pid(), settled_descriptors(&watcher).len() + 5);
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=20\n");
    assert!(wait_until(Duration::from_secs(10), || !w.files("claimed").is_empty()), "the request was claimed");
    // Descriptors stay short for 1.5 s, well past both attempts' worth of retry delays.
    std::thread::sleep(Duration::from_millis(1500));
    limit_descriptors(watcher.pid(), 1024);
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert!(watcher.stderr_text().contains("starting it again"), "{}", watcher.stderr_text());
    let id = w.start_order()[0].clone();
    let resp = w.response(&id).unwrap();
    assert_eq!(resp.attempts, Some(1), "only the start that ran counts: {resp:?}");
    assert_eq!(w.starts(&id), 1);
}
