//! The agent's non-fencing actions against real spools and watchers: monitor, validate-all, list,
//! and how it treats unknown stdin keys.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

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
    let config = w.dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"default":{{"command":"{}","options":{{"ledger":"{}"}}}},"targets":{{"plug7":{{"alias":"compute-node-3"}},"plug8":{{}}}}}}"#,
            executor_bin(),
            w.ledger.display()
        ),
    )
    .unwrap();
    let _watcher = w.watcher("w1", &["--config", path_str(&config)]);
    let out = w.agent("action=list\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "plug7,compute-node-3\nplug8,\n");
}
