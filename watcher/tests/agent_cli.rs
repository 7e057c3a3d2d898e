//! The agent as Pacemaker and operators see it: stdin and argv, every non-fencing action, exit codes,
//! metadata validated against fence-agents' RelaxNG schema.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn metadata_validates_against_the_fence_agents_schema() {
    let w = World::new();
    let out = w.agent_raw_stdin("action=metadata\n");
    assert_exit(&out, 0);
    let xml = w.dir.path().join("metadata.xml");
    std::fs::write(&xml, &out.stdout).unwrap();
    let rng = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/metadata.rng");
    assert!(
        rng.exists(),
        "{} is missing (CI lays shared/ beside the repository)",
        rng.display()
    );
    let check = Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(&rng)
        .arg(&xml)
        .output()
        .expect("xmllint is needed: apt-get install libxml2-utils");
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(out.stderr.is_empty(), "metadata writes nothing on stderr");
    let same = w.agent_args(&["-o", "metadata"]);
    assert_eq!(
        same.stdout, out.stdout,
        "argv and stdin give the same metadata"
    );
    for name in [
        "plug",
        "port",
        "nodename",
        "fence_timeout",
        "spool_dir",
        "queue_priority",
        "power_wait",
    ] {
        assert!(
            text(&out.stdout).contains(&format!("<parameter name=\"{name}\"")),
            "{name}"
        );
    }
}

#[test]
fn unknown_actions_and_flags_fail_like_fence_agents() {
    let w = World::new();
    let out = w.agent_raw_stdin("action=explode\n");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("Failed: Unrecognised action 'explode'"),
        "{}",
        text(&out.stderr)
    );
    let out = w.agent_args(&["--frobnicate"]);
    assert_exit(&out, 1);
    assert!(text(&out.stderr).starts_with("Failed: "));
    assert!(
        out.stdout.is_empty(),
        "stdout carries only what Pacemaker reads"
    );
}

#[test]
fn help_version_and_manpage() {
    let w = World::new();
    let out = w.agent_args(&["-h"]);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("--fence-timeout=[seconds]"));
    let out = w.agent_args(&["-V"]);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).starts_with("fence_gfs2_recorder "));
    let out = w.agent_args(&["-o", "manpage"]);
    assert_exit(&out, 0);
    assert!(text(&out.stdout).starts_with(".TH fence_gfs2_recorder 8"));
}

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
    let out = w.agent_args(&[
        "-o",
        "monitor",
        "--spool-dir",
        path_str(&w.spool),
        "--log-dir",
        path_str(&w.logs),
    ]);
    assert_exit(&out, 0);
    watcher.terminate();
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("no live gfs2-fence-watcher"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn monitor_on_an_external_responders_spool_passes_with_a_warning() {
    let w = World::new();
    for d in ["", "requests", "responses"] {
        std::fs::create_dir_all(w.sub(d)).unwrap();
        std::fs::set_permissions(w.sub(d), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = w.agent("action=monitor\n");
    assert_exit(&out, 0);
    assert!(
        text(&out.stderr).contains("cannot judge"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn validate_all_accepts_good_options_and_names_bad_ones() {
    let w = World::new();
    assert_exit(
        &w.agent("action=validate-all\nport=node1\nnodename=node1\n"),
        0,
    );
    for (extra, want) in [
        (
            "fence_timeout=abc\n",
            "invalid value \"abc\" for fence_timeout",
        ),
        ("fence_timeout=0\n", "fence_timeout"),
        ("delay=-3\n", "delay"),
        ("queue_priority=urgent\n", "queue_priority"),
    ] {
        let out = w.agent(&format!("action=validate-all\n{extra}"));
        assert_exit(&out, 1);
        assert!(
            text(&out.stderr).contains(want),
            "{extra}: {}",
            text(&out.stderr)
        );
    }
    let out = w.agent_raw_stdin("action=validate-all\nspool_dir=relative/spool\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("not an absolute path"));
    std::fs::create_dir(&w.spool).unwrap();
    std::fs::set_permissions(&w.spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = w.agent("action=validate-all\n");
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("world-writable"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn unknown_stdin_keys_warn_by_name_and_are_ignored() {
    let w = World::new();
    let out = w.agent(
        "action=validate-all\nipaddr=10.0.0.1\npasswd=hunter2\n# a comment\n\n  power_wait=\"2\"\n",
    );
    assert_exit(&out, 0);
    let err = text(&out.stderr);
    assert!(err.contains("Ignoring unknown option 'ipaddr'"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "values of unknown keys may be secrets: {err}"
    );
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
