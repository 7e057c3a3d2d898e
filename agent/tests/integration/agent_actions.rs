//! The agent's non-fencing actions against real spools and watchers: monitor, validate-all, list,
//! and how it treats unknown stdin keys.

use std::os::unix::fs::PermissionsExt;

use harness::process::*;

#[test]
fn monitor_needs_a_live_watcher_on_a_managed_spool() {
    let w = World::new();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("does not exist") || text(&out.stderr).contains("cannot stat"),
        "{}",
        text(&out.stderr)
    );
    let watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=monitor\n"), 0);
    let out = w.agent_args(&["-o", "monitor", "--spool-dir", path_str(&w.spool), "--log-dir", path_str(&w.logs)]);
    assert_exit(&out, 0);
    watcher.terminate();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("no live gfs2-fence-watcher"), "{}", text(&out.stderr));
}

#[test]
fn monitor_with_an_external_responder_passes_with_a_warning_and_only_when_configured() {
    let w = World::new();
    for d in ["", "requests", "responses"] {
        std::fs::create_dir_all(w.sub(d)).unwrap();
        std::fs::set_permissions(w.sub(d), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = w.agent("action=monitor\nresponder=external\n");
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("cannot judge"), "{}", text(&out.stderr));
    // The same spool without the parameter: our watchers are expected, and none ever ran.
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("responder=external"), "{}", text(&out.stderr));
}

#[test]
fn validate_all_accepts_good_options_and_names_bad_ones() {
    let w = World::new();
    assert_exit(&w.agent("action=validate-all\nport=node1\nnodename=node1\n"), 0);
    for (extra, want) in [
        ("fence_timeout=abc\n", "invalid value \"abc\" for fence_timeout"),
        ("fence_timeout=0\n", "fence_timeout"),
        ("delay=-3\n", "delay"),
        ("queue_priority=urgent\n", "queue_priority"),
    ] {
        let out = w.agent(&format!("action=validate-all\n{extra}"));
        assert_exit(&out, 1);
        assert!(text(&out.stderr).contains(want), "{extra}: {}", text(&out.stderr));
    }
    let out = w.agent_raw_stdin("action=validate-all\nspool_dir=relative/spool\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("not an absolute path"));
    std::fs::create_dir(&w.spool).unwrap();
    std::fs::set_permissions(&w.spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = w.agent("action=validate-all\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("world-writable"), "{}", text(&out.stderr));
}

#[test]
fn unknown_stdin_keys_warn_by_name_and_are_ignored() {
    let w = World::new();
    let out = w.agent("action=validate-all\nipaddr=10.0.0.1\npasswd=hunter2\n# a comment\n\n  power_wait=\"2\"\n");
    assert_exit(&out, 0);
    let err = text(&out.stderr);
    assert!(err.contains("Ignoring unknown option 'ipaddr'"), "{err}");
    assert!(!err.contains("hunter2"), "values of unknown keys may be secrets: {err}");
}

#[test]
fn list_prints_the_watchers_targets() {
    let w = World::new();
    let config = w.config_file("", r#""plug7":{"alias":"compute-node-3"},"plug8":{}"#);
    let _watcher = w.watcher("w1", &["--config", path_str(&config)]);
    let out = w.agent("action=list\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "plug7,compute-node-3\nplug8,\n");
}

#[test]
fn monitor_fails_while_fences_could_not_be_recorded_and_the_fence_itself_still_goes_on() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=monitor\n"), 0);
    assert!(!w.logs.exists(), "monitor created the log directory");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    let said = |out: &std::process::Output| text(&out.stderr);
    // A log directory others may write (refused, so the records go nowhere).
    std::fs::set_permissions(&w.logs, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(said(&out).contains("cannot be recorded") && said(&out).contains("chmod 0700"), "{}", said(&out));
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    std::fs::set_permissions(&w.logs, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_exit(&w.agent("action=monitor\n"), 0);
    // A log that exists but cannot be appended to (a directory in its place).
    let readable = w.logs.join("fence-events-readable.log");
    let _ = std::fs::remove_file(&readable);
    std::fs::create_dir(&readable).unwrap();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(said(&out).contains("fence-events-readable.log"), "{}", said(&out));
    std::fs::remove_dir(&readable).unwrap();
    // A log directory that the first fence could not create.
    let out = w.agent("action=monitor\nlog_dir=/proc/gfs2-fencing-nope\n");
    assert_exit(&out, 1);
    assert!(said(&out).contains("the first fence cannot create it"), "{}", said(&out));
    // One the first fence could create is fine, and the monitor leaves it uncreated; one whose parent
    // is missing could not be created (a fence makes the directory, not its parents).
    let later = w.dir.path().join("later");
    assert_exit(&w.agent(&format!("action=monitor\nlog_dir={}\n", later.display())), 0);
    assert!(!later.exists(), "monitor created {}", later.display());
    assert_exit(&w.agent(&format!("action=monitor\nlog_dir={}/logs\n", later.display())), 1);
}

#[test]
fn checks_and_a_status_run_by_hand_where_no_watcher_ran_create_nothing() {
    let w = World::new();
    let base = w.dir.path().join("host");
    std::fs::create_dir(&base).unwrap();
    let (spool, logs) = (base.join("spool"), base.join("logs"));
    for action in ["monitor", "list", "validate-all", "status"] {
        let out = w
            .agent_command()
            .args(["-o", action, "-n", "n1", "--spool-dir", path_str(&spool), "--log-dir", path_str(&logs)])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let want = if action == "validate-all" { 0 } else { 1 };
        assert_exit(&out, want);
        let made: Vec<_> = std::fs::read_dir(&base).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(made.is_empty(), "-o {action} created {made:?}: {}", text(&out.stderr));
        if action == "status" {
            let said = text(&out.stderr);
            assert!(said.contains("no gfs2-fence-watcher has run") && said.contains("set spool_dir"), "{said}");
        }
    }
}

#[test]
fn a_plug_no_entry_covers_fails_naming_the_targets_the_watchers_know() {
    let w = World::new();
    let config = w.dir.path().join("config.json");
    let entry = format!(r#"{{"command":"{}","options":{{"ledger":"{}"}}}}"#, executor_bin(), w.ledger.display());
    std::fs::write(&config, format!(r#"{{"targets":{{"plug7":{entry},"plug8":{entry}}}}}"#)).unwrap();
    // Started by hand: the world's watchers get a default command (--fence-command).
    let stderr = w.dir.path().join("w1.stderr");
    let child = scrub(&mut std::process::Command::new(watcher_bin()))
        .args(["run", "--spool-dir", path_str(&w.spool), "--config", path_str(&config), "--id", "w1"])
        .args(["--discovery-interval", "0", "--health-interval", "0", "--log-dir", path_str(&w.logs)])
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let watcher = Proc { child, stderr };
    w.await_live(&watcher);
    let out = w.agent("action=off\nport=plug9\n");
    assert_exit(&out, 1);
    let said = text(&out.stderr);
    assert!(
        said.contains("\"plug9\"") && said.contains("names plug7, plug8") && said.contains("pcmk_host_map"),
        "{said}"
    );
    assert!(w.ledger().is_empty(), "nothing was run");
}
