//! Watchers under faults (the outside review's findings, one test each, named for the finding): a
//! bad takeover, a full disk, a whole-host freeze. Real watchers, real signals; the full disk is a
//! small tmpfs in a private user and mount namespace (`unshare -rm`, util-linux), which fails rather
//! than skips where the kernel refuses it.

use std::time::Duration;

use nix::sys::signal::Signal;

use harness::process::*;

fn leader_epoch(w: &World) -> Option<u64> {
    let bytes = std::fs::read(w.spool.join("leader.json")).ok()?;
    serde_json::from_slice::<ha::cluster::leader::LeaderRecord>(&bytes).ok().map(|r| r.epoch)
}

/// Finding: one bad `leader.json` at a takeover panicked every watcher.
#[test]
fn a_bad_leader_record_is_quarantined_and_every_watcher_keeps_fencing() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    std::fs::create_dir(w.spool.join("leader.json")).unwrap();
    let watchers: Vec<Proc> = (1..=3).map(|i| w.watcher(&format!("w{i}"), &[])).collect();
    assert!(wait_until(Duration::from_secs(20), || leader_epoch(&w).is_some()), "no leader took office");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    for p in &watchers {
        assert!(alive(p.pid()), "a watcher died: {}", p.stderr_text());
        assert!(!p.stderr_text().contains("panicked"), "{}", p.stderr_text());
    }
    let reasons: Vec<String> = w.files("quarantine").into_iter().filter(|n| n.ends_with(".reason")).collect();
    assert!(reasons.iter().any(|n| n.starts_with("leader.json")), "the bad leader.json was moved aside: {reasons:?}");
    // Garbage next: the epoch still rises (it is kept in leader.lock too).
    let before = leader_epoch(&w).unwrap();
    std::fs::write(w.spool.join("leader.json"), "{\"epoch\": ").unwrap();
    let leader = watchers.iter().find(|p| p.stderr_text().contains("now the leader")).expect("a leader");
    leader.signal(Signal::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(20), || leader_epoch(&w).is_some_and(|e| e > before)),
        "the next leader's epoch is not above {before}: {:?}",
        leader_epoch(&w)
    );
}

/// Finding: a full disk panicked the standby, and a watcher whose heartbeat could not be written judged
/// its peers.
#[test]
fn a_full_disk_panics_no_watcher_and_a_watcher_that_cannot_beat_judges_no_peer() {
    let w = World::new();
    let d = w.dir.path().display().to_string();
    let script = format!(
        r#"
        mkdir -p {d}/small
        mount -t tmpfs -o size=256k,mode=0700 tmpfs {d}/small
        mkdir -m 0700 {d}/small/spool
        for i in 1 2; do
            {watcher} run --spool-dir {d}/small/spool --fence-command {exec} --fence-option ledger={d}/ledger \
                --id w$i --ttl 2 --heartbeat-interval 0.3 --rescan-interval 0.3 --health-interval 0 \
                --discovery-interval 0 </dev/null >/dev/null 2>{d}/w$i.err &
            echo $! > {d}/w$i.pid
        done
        trap 'kill -9 $(cat {d}/w1.pid) $(cat {d}/w2.pid) 2>/dev/null; wait' EXIT
        for i in $(seq 400); do [ -e {d}/small/spool/members/w1.json ] && [ -e {d}/small/spool/members/w2.json ] && break; sleep 0.05; done
        for i in $(seq 400); do grep -q "now the leader" {d}/w1.err {d}/w2.err && break; sleep 0.05; done
        dd if=/dev/zero of={d}/small/filler bs=4k 2>/dev/null || true
        # Heartbeats fail now: for three TTLs neither may take the other for frozen.
        sleep 6
        kill -0 $(cat {d}/w1.pid) && kill -0 $(cat {d}/w2.pid) && echo "both-alive-after-full-disk"
        leader=$(grep -l "now the leader" {d}/w1.err {d}/w2.err | head -n 1)
        kill -9 $(cat ${{leader%.err}}.pid)
        sleep 3
        for f in {d}/w1 {d}/w2; do [ "$f.err" = "$leader" ] || {{ kill -0 $(cat $f.pid) && echo "standby-alive-after-takeover-on-full-disk"; }}; done
        rm -f {d}/small/filler
        for i in $(seq 200); do [ "$(grep -c 'now the leader' {d}/w1.err {d}/w2.err | awk -F: '{{s+=$2}} END {{print s}}')" -ge 2 ] && break; sleep 0.05; done
        echo "leaders: $(grep -c 'now the leader' {d}/w1.err {d}/w2.err | awk -F: '{{s+=$2}} END {{print s}}')"
        cat {d}/w1.err {d}/w2.err | grep -E "panicked|killing it" || true
        "#,
        watcher = watcher_bin(),
        exec = executor_bin(),
    );
    let out = in_namespace(&script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("both-alive-after-full-disk"), "{stdout}\n{stderr}");
    assert!(stdout.contains("standby-alive-after-takeover-on-full-disk"), "{stdout}\n{stderr}");
    assert!(stdout.contains("leaders: 2"), "the standby took office once the disk had room: {stdout}");
    assert!(!stdout.contains("panicked"), "{stdout}");
    assert!(!stdout.contains("killing it"), "a watcher that could not beat judged its peer: {stdout}");
}

/// Finding: after a freeze of the whole host, each watcher took its healthy peers for frozen and killed
/// them.
#[test]
fn after_a_whole_host_freeze_no_healthy_watcher_is_killed() {
    let w = World::new();
    let watchers: Vec<Proc> = (1..=3).map(|i| w.watcher(&format!("w{i}"), &["--ttl", "3"])).collect();
    for p in &watchers {
        p.signal(Signal::SIGSTOP);
    }
    std::thread::sleep(Duration::from_secs(5));
    for p in &watchers {
        p.signal(Signal::SIGCONT);
    }
    // Each watcher judges no peer for a TTL after it resumes; by then all have beaten again.
    let id = w.queue("off", "n1", 100, 60, 0);
    w.await_response(&id);
    std::thread::sleep(Duration::from_secs(4));
    for p in &watchers {
        assert!(alive(p.pid()), "a healthy watcher was killed after the freeze: {}", p.stderr_text());
    }
    assert_eq!(w.starts(&id), 1, "the request ran once");
}

/// Finding: an agent killed before it published left its waiting lock and FIFO forever.
#[test]
fn a_killed_agents_waiting_files_are_swept_only_once_nothing_needs_them() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let gone = new_id();
    let pending = w.queue("off", "n1", 100, 60, 0);
    let spool = w.spool();
    let mut leftovers = Vec::new();
    for id in [&gone, &pending] {
        std::fs::write(spool.waiting_lock(id), "").unwrap();
        nix::unistd::mkfifo(&spool.waiting_fifo(id), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        leftovers.extend([spool.waiting_lock(id), spool.waiting_fifo(id)]);
    }
    let old = nix::sys::time::TimeSpec::from(std::time::Duration::from_secs(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 3600,
    ));
    for p in &leftovers {
        nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, p, &old, &old, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .unwrap();
    }
    // Hold the pending request back from execution: its agent is "gone" too (lock free), so it is
    // answered abandoned, and only then may its waiting files go.
    let _watcher = w.watcher("w1", &[]);
    assert!(
        wait_until(Duration::from_secs(20), || !spool.waiting_lock(&gone).exists()
            && !spool.waiting_fifo(&gone).exists()),
        "the gone agent's waiting lock and FIFO stay: {:?}",
        w.files("waiting")
    );
    let resp = w.await_response(&pending);
    assert_eq!(
        resp.outcome,
        Some(ha::protocol::response::Outcome::Abandoned),
        "its waiting lock told the watcher the agent is gone"
    );
}

/// Finding: a fence command's descendant that escaped its process group held the answer and the target
/// lock until it exited.
#[test]
fn an_escaped_descendant_neither_delays_the_answer_nor_keeps_the_target_lock() {
    let w = World::new();
    let marker = format!("40.{}", std::process::id());
    let script = w.dir.path().join("fence_escaping");
    std::fs::write(&script, format!("#!/bin/sh\ncat >/dev/null\nsetsid sleep {marker} &\nsleep 0.2\nexit 0\n"))
        .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let watcher =
        w.watcher("w1", &["--fence-command", path_str(&script), "--exec-timeout", "5", "--health-interval", "0"]);
    let agent = w.spawn_agent("action=off\nport=n1\nfence_timeout=15\n");
    let pid = agent.id() as i32;
    // The answer comes with the command's exit, not with the escaped descendant's.
    let answered = wait_until(Duration::from_secs(12), || !alive(pid));
    let out = agent.wait_with_output().unwrap();
    assert!(answered, "no answer while the escaped descendant ran: {}", watcher.stderr_text());
    assert_exit(&out, 0);
    assert!(watcher.stderr_text().contains("fence_escaping"), "the escaping command ran: {}", watcher.stderr_text());
    let escaped = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    assert!(wait_until(Duration::from_secs(10), || !escaped()), "the escaped descendant still runs");
    // Nothing holds the target lock any more, and nothing is left unreaped.
    for e in std::fs::read_dir(w.sub("locks")).unwrap().flatten() {
        assert_eq!(
            ha::fsio::lock::probe(&e.path()).unwrap(),
            ha::fsio::lock::LockState::Free,
            "{}",
            e.path().display()
        );
    }
    assert_no_children(watcher.pid(), "no zombie of the escaped descendant");
}

/// Finding: idle connections to the metrics port, past the watcher's descriptor limit, stopped fencing.
#[test]
fn a_flood_of_metrics_connections_never_stops_fencing() {
    let w = World::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // The watcher with few descriptors, as a unit without LimitNOFILE has by default.
    let stderr = w.dir.path().join("w.stderr");
    let child = std::process::Command::new("prlimit")
        .args(["--nofile=256:256", "--"])
        .arg(watcher_bin())
        .args(["run", "--spool-dir", path_str(&w.spool), "--fence-command", executor_bin(), "--id", "w1"])
        .arg(format!("--fence-option=ledger={}", w.ledger.display()))
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--discovery-interval",
            "0",
            "--heartbeat-interval",
            "0.3",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("prlimit (util-linux) is needed");
    let watcher = Proc { child, stderr };
    w.await_live(&watcher);
    // 400 idle connections (beyond the watcher's 256 descriptors) from an unprivileged user (nobody,
    // when the test runs as root), each held by a subshell of its own.
    let flood = format!(
        "for i in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/{port} && exec sleep 8) 2>/dev/null & done; sleep 2; echo flooding; wait"
    );
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash", "-c", &flood]);
        c
    } else {
        let mut c = std::process::Command::new("bash");
        c.args(["-c", &flood]);
        c
    };
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut flooder = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(flooder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "flooding");
    let out = w.agent("action=off\nport=n1\nfence_timeout=10\n");
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(flooder.id() as i32), Signal::SIGKILL);
    let _ = flooder.wait();
    assert_exit(&out, 0);
    assert!(alive(watcher.pid()));
    assert!(
        !watcher.stderr_text().contains("Too many open files") || watcher.stderr_text().contains("pausing"),
        "{}",
        watcher.stderr_text()
    );
}

/// Finding: fence commands inherited the watcher's descriptors and environment.
#[test]
fn a_fence_command_inherits_only_the_target_lock_and_its_own_environment() {
    let w = World::new();
    let seen = w.dir.path().join("seen");
    let script = w.dir.path().join("fence_env");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat >/dev/null\n{{ env; echo FDS; ls -l /proc/$$/fd; }} > {}.$$\nexit 0\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = w.dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"default":{{"command":"{}","environment":{{"SITE_VAR":"site-value"}}}}}}"#, script.display()),
    )
    .unwrap();
    // The watcher's parent leaves descriptor 7 open for it and a secret in its environment.
    let stderr = w.dir.path().join("w.stderr");
    let child = std::process::Command::new("bash")
        .args(["-c", "exec 7</etc/hostname; exec \"$@\"", "bash", watcher_bin()])
        .args(["run", "--spool-dir", path_str(&w.spool), "--config", path_str(&config), "--id", "w1"])
        .args(["--discovery-interval", "0", "--health-interval", "0"])
        .env("GFS2_TEST_PARENT_SECRET", "hunter2")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let watcher = Proc { child, stderr };
    w.await_live(&watcher);
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    let file = std::fs::read_dir(w.dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("seen."))
        .expect("the fence command ran");
    let text = std::fs::read_to_string(file.path()).unwrap();
    let (env, fds) = text.split_once("FDS").unwrap();
    assert!(env.contains("SITE_VAR=site-value") && env.contains("GFS2_FENCE_REQUEST_ID="), "{env}");
    assert!(!env.contains("hunter2"), "the watcher's environment leaked: {env}");
    assert!(!fds.contains("/etc/hostname"), "descriptor 7 of the watcher's parent reached the command: {fds}");
    assert_eq!(fds.matches("/locks/").count(), 1, "the target lock, and nothing else of the watcher's: {fds}");
    let watchers_own = [w.spool.to_str().unwrap(), "socket:", "anon_inode"];
    for line in fds.lines().filter(|l| l.contains("->") && !l.contains("/locks/")) {
        assert!(!watchers_own.iter().any(|own| line.contains(own)), "leaked: {line}");
    }
}
