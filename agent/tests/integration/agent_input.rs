//! The agent's boundary under hostile and faulty input (the outside review's findings, one test
//! each, named for the finding): only Pacemaker's `action` decides, no stdin or environment makes it
//! act on part of its options, panic or grow without bound, and `monitor` fails whenever a fence
//! would. Real binaries, real spools, real signals; the read-only spool is a real read-only mount in
//! a private user and mount namespace (`unshare -rm`, util-linux), which fails rather than skips
//! where the kernel refuses it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;

use harness::process::*;

/// The agent run with `stdin` and extra environment, killed (and reported) if it has not exited
/// within `within`: a hang fails the test instead of hanging it.
fn agent_bounded(stdin: &[u8], env: &[(&str, &str)], within: Duration) -> std::process::Output {
    let mut cmd = std::process::Command::new(agent_bin());
    // Nothing of the host's: whatever the agent gets as far as writing goes to a directory of its own.
    let scratch = tempfile::tempdir().unwrap();
    scrub(&mut cmd).env("GFS2_FENCE_LOG_DIR", scratch.path().join("logs"));
    cmd.env("GFS2_FENCE_SPOOL_DIR", scratch.path().join("spool"));
    cmd.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let pid = child.id() as i32;
    let exited = wait_until(within, || !alive(pid));
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    assert!(exited, "the agent did not exit within {within:?}: {}", text(&out.stderr));
    out
}

/// The agent's stdin limit (`agent::MAX_STDIN`).
const MAX_STDIN: usize = 1024 * 1024;

fn ledger_actions(w: &World) -> Vec<String> {
    w.ledger().into_iter().filter(|l| l.event == "start").map(|l| l.action).collect()
}

/// Finding: fence-agents' `option=` alias overrode `action=`: `action=monitor` with `option=off`
/// powered the node off.
#[test]
fn an_option_line_never_changes_the_action() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    for action in ["validate-all", "monitor", "list", "metadata", "manpage"] {
        for option in ["off", "reboot", "on"] {
            let out = w.agent(&format!("action={action}\nport=node1\nnodename=node1\noption={option}\n"));
            if action != "list" {
                assert_exit(&out, 0);
            }
            assert!(!text(&out.stdout).contains("Success:"), "{action} + option={option}: {}", text(&out.stdout));
            assert!(
                action == "metadata"
                    || action == "manpage"
                    || text(&out.stderr).contains("Ignoring unknown option 'option'"),
                "{action}: {}",
                text(&out.stderr)
            );
        }
    }
    let out = w.agent("action=status\nport=node1\noption=off\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "Status: ON");
    assert_eq!(ledger_actions(&w), ["status"], "no power action was taken; only the status ran");
    let meta = w.agent("action=metadata\n");
    assert!(!text(&meta.stdout).contains("name=\"option\""), "the metadata does not declare `option`");
}

/// Finding: stdin past the agent's read limit was cut silently: `plug=node10` became `plug=node1`, or a
/// later `action=status` was dropped.
#[test]
fn stdin_beyond_the_limit_or_not_utf8_is_refused_whole() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    // A read cut at the limit would turn `plug=node10` into `plug=node1`, or drop a later `action=status`.
    let head = w.stdin_for("action=reboot\n");
    let into_plug = format!("{head}{}\nplug=node10\n", "#".repeat(MAX_STDIN - head.len() - "\nplug=node1".len()));
    let head = w.stdin_for("action=reboot\nplug=node1\n");
    let drops_action = format!("{head}{}\naction=status\n", "#".repeat(MAX_STDIN - head.len()));
    for stdin in [into_plug, drops_action] {
        assert!(stdin.len() > MAX_STDIN);
        let out = agent_bounded(stdin.as_bytes(), &[("PATH", "/usr/bin:/bin")], Duration::from_secs(30));
        assert_exit(&out, 1);
        assert!(text(&out.stderr).contains("refusing to act on a part of them"), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
    assert!(w.files("requests").is_empty() && ledger_actions(&w).is_empty(), "no request was written");
    let out = agent_bounded(b"action=status\nport=n1\n\xff\xfe\n", &[], Duration::from_secs(30));
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("not UTF-8"), "{}", text(&out.stderr));
}

/// Finding: a tiny `fence_timeout` (option or environment) panicked the agent.
#[test]
fn a_fence_timeout_too_small_to_fence_is_refused_naming_the_smallest_that_works() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    for value in ["0.3", "1e-9", "0.5", "1.4", "0.0000001"] {
        for action in ["off", "validate-all"] {
            let out = w.agent(&format!("action={action}\nport=n1\nfence_timeout={value}\n"));
            assert_exit(&out, 1);
            let err = text(&out.stderr);
            assert!(err.contains("smallest fence_timeout is 1.5 seconds"), "{action} {value}: {err}");
            assert!(!err.contains("panicked"), "{err}");
        }
        let out = agent_bounded(
            w.stdin_for("action=off\nport=n1\n").as_bytes(),
            &[("FENCE_TIMEOUT", value)],
            Duration::from_secs(30),
        );
        assert_exit(&out, 1);
        assert!(text(&out.stderr).contains("FENCE_TIMEOUT"), "{}", text(&out.stderr));
    }
    assert!(w.files("requests").is_empty() && ledger_actions(&w).is_empty());
    // The smallest accepted value fences.
    let out = w.agent("action=off\nport=n1\nfence_timeout=1.5\n");
    assert_exit(&out, 0);
    assert_eq!(ledger_actions(&w), ["off"]);
}

/// Finding: `TZ=/dev/zero` (or a FIFO, or a huge file) made the agent read without bound.
#[test]
fn a_hostile_tz_leaves_the_agent_bounded_and_logging_in_utc() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    let fifo = w.dir.path().join("tz-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let big = w.dir.path().join("tz-big");
    std::fs::write(&big, vec![b'x'; 8 << 20]).unwrap();
    let tz_values =
        ["/dev/zero".to_string(), ":/dev/zero".into(), fifo.display().to_string(), format!(":{}", big.display())];
    for tz in &tz_values {
        let stdin = w.stdin_for("action=off\nport=n1\n");
        let out = agent_bounded(stdin.as_bytes(), &[("TZ", tz), ("PATH", "/usr/bin:/bin")], Duration::from_secs(30));
        assert_exit(&out, 0);
        assert!(text(&out.stderr).contains("local times in the logs are UTC"), "TZ={tz}: {}", text(&out.stderr));
    }
    assert_eq!(ledger_actions(&w).len(), tz_values.len());
}

/// Finding: monitor said healthy on a spool where no watcher had ever started, and a fence there waited
/// out its timeout.
#[test]
fn monitor_fails_on_a_spool_where_no_watcher_ever_started() {
    let w = World::new();
    // What tmpfiles.d makes at boot: the base directory alone.
    std::fs::create_dir(&w.spool).unwrap();
    std::fs::set_permissions(&w.spool, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(err.contains("no gfs2-fence-watcher has run") && err.contains("responder=external"), "{err}");
    // A fence there fails at once, before any request is written, instead of waiting its timeout.
    let out = w.agent("action=reboot\nport=n1\nfence_timeout=600\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("responder=external"), "{}", text(&out.stderr));
    assert!(w.files("requests").is_empty(), "{:?}", w.files("requests"));
    assert!(w.log("fence-events-readable.log").contains("STATUS=failed"));
}

/// Finding: monitor said healthy while the only watcher was frozen past its TTL.
#[test]
fn monitor_fails_while_every_watcher_is_frozen_past_its_ttl() {
    let w = World::new();
    let watcher = w.watcher("w1", &["--ttl", "1"]);
    assert_exit(&w.agent("action=monitor\n"), 0);
    watcher.signal(Signal::SIGSTOP);
    let mut last = None;
    let failed = wait_until(Duration::from_secs(20), || {
        let out = w.agent("action=monitor\n");
        let done = out.status.code() == Some(1);
        last = Some(out);
        done
    });
    let out = last.unwrap();
    assert!(failed, "monitor kept passing with the only watcher frozen: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("past its TTL"), "{}", text(&out.stderr));
    let status = std::process::Command::new(watcher_bin())
        .args(["status", "--json", "--spool-dir"])
        .arg(&w.spool)
        .output()
        .unwrap();
    assert_eq!(status.status.code(), Some(1), "status calls no frozen watcher live");
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["members"][0]["live"], false);
    assert_eq!(report["members"][0]["lock_held"], true);
    // A fence fails at once too, writing no request.
    let out = w.agent("action=off\nport=n1\nfence_timeout=600\n");
    assert_exit(&out, 1);
    assert!(w.files("requests").is_empty());
    watcher.signal(Signal::SIGCONT);
    assert!(wait_until(Duration::from_secs(20), || w.agent("action=monitor\n").status.code() == Some(0)));
}

/// Finding: monitor said healthy on a spool the agent could not write to.
#[test]
fn monitor_fails_on_a_read_only_spool() {
    let w = World::new();
    let d = w.dir.path().display().to_string();
    let stdin = |spool: &str, extra: &str| {
        format!("printf 'action=monitor\\nspool_dir={spool}\\nlog_dir={d}/logs\\n{extra}' | {}", agent_bin().display())
    };
    // The agent's view of each spool is a read-only bind mount of it (a read-only remount of the
    // file system itself is refused while the watcher has files open for writing); the watcher
    // keeps writing through the original, so it stays live and only the agent's side is read-only.
    let script = format!(
        r#"
        mkdir -p {d}/rw {d}/view
        mount -t tmpfs -o size=1m,mode=0700 tmpfs {d}/rw
        mkdir -m 0700 {d}/rw/spool {d}/rw/ext {d}/rw/ext/requests {d}/rw/ext/responses
        {watcher} run --spool-dir {d}/rw/spool --fence-command {exec} --fence-option ledger={d}/ledger --id a \
            </dev/null >/dev/null 2>{d}/w.err &
        trap 'kill -9 $! 2>/dev/null; wait' EXIT
        for i in $(seq 400); do [ -e {d}/rw/spool/members/a.json ] && break; sleep 0.05; done
        mount --bind {d}/rw {d}/view
        {healthy} >/dev/null 2>&1 && echo "watchers-rw=0"
        {ext} >/dev/null 2>&1 && echo "external-rw=0"
        mount -o remount,bind,ro {d}/view
        {healthy} 2>{d}/m1.err && echo "watchers-ro=0" || echo "watchers-ro=$?"
        {ext} 2>{d}/m2.err && echo "external-ro=0" || echo "external-ro=$?"
        cat {d}/m1.err {d}/m2.err
        "#,
        watcher = watcher_bin(),
        exec = executor_bin(),
        healthy = stdin(&format!("{d}/view/spool"), ""),
        ext = stdin(&format!("{d}/view/ext"), "responder=external\\n"),
    );
    let out = in_namespace(&script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in ["watchers-rw=0", "external-rw=0", "watchers-ro=1", "external-ro=1"] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{stderr}");
    }
    assert_eq!(stdout.matches("cannot create its files").count(), 2, "{stdout}");
    assert!(stdout.contains("Read-only file system"), "{stdout}");
}

#[test]
fn plug_and_port_that_disagree_fence_nobody_and_each_alone_or_agreeing_fences_its_target() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    // As Pacemaker 3.0.1+ runs a device configured with port=cn-2 for node3 (its plug cn-3 from
    // pcmk_host_map): both names, two targets. Refused at once, in either order, before any request.
    for lines in ["action=reboot\nport=cn-2\nplug=cn-3\nnodename=node3\n", "action=off\nplug=cn-3\nport=cn-2\n"] {
        let out = w.agent(lines);
        assert_exit(&out, 1);
        let err = text(&out.stderr);
        assert!(err.contains("\"cn-2\"") && err.contains("\"cn-3\"") && err.contains("pcmk_host_map"), "{err}");
        assert!(w.files("requests").is_empty() && w.files("done").is_empty(), "no request was published");
    }
    let out = w.agent("action=validate-all\nport=cn-2\nplug=cn-3\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("pcmk_host_map"), "{}", text(&out.stderr));
    assert!(w.ledger().is_empty(), "nothing was fenced: {:?}", w.ledger());
    // Agreeing, plug alone and port alone, each with Pacemaker's node name differing under a host map:
    // the plug is the target, the node name rides along.
    for (lines, target, node) in [
        ("plug=cn-2\nport=cn-2\nnodename=node2\n", "cn-2", "node2"),
        ("plug=cn-3\nnodename=node3\n", "cn-3", "node3"),
        ("port=cn-4\nnodename=node4\n", "cn-4", "node4"),
    ] {
        assert_exit(&w.agent(&format!("action=off\n{lines}")), 0);
        let last = w.ledger().into_iter().rfind(|l| l.event == "start").unwrap();
        assert_eq!((last.target.as_str(), last.nodename.as_deref()), (target, Some(node)), "{lines}");
    }
    assert_eq!(w.ledger().iter().filter(|l| l.event == "start").count(), 3);
}
