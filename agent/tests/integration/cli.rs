//! The agent binary on its own, as Pacemaker and operators call it: metadata valid against
//! fence-agents' RelaxNG schema, unknown actions and flags, help, version, manpage.
//!
//! Being an integration test of this package, this file also makes `cargo test --workspace` build
//! the `fence_gfs2_recorder` binary, which the watcher package's end-to-end tests run.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A directory of this test process's own for the agent's spool and logs: an action that gets as far
/// as logging (an unknown one does) must not write to the host's default log directory.
fn scratch() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fence_gfs2_recorder"));
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in ha::os::setting::ALL.iter().flat_map(|s| s.names()) {
        c.env_remove(k);
    }
    c.env("GFS2_FENCE_LOG_DIR", scratch().join("logs")).env("GFS2_FENCE_SPOOL_DIR", scratch().join("spool"));
    c
}

fn with_stdin(text: &str) -> Output {
    let mut child = agent().spawn().unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn with_args(args: &[&str]) -> Output {
    agent().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Where Debian's `fence-agents` package installs fence-agents' RelaxNG schema for agent metadata.
const FENCE_AGENTS_SCHEMA: &str = "/usr/share/cluster/relaxng/metadata.rng";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn metadata_validates_against_the_fence_agents_schema() {
    let out = with_stdin("action=metadata\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "metadata writes nothing on stderr");
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("metadata.xml");
    std::fs::write(&xml, &out.stdout).unwrap();
    // The schema every ClusterLabs agent's metadata passes, as Debian's fence-agents installs it
    // (byte-identical to fence-agents' lib/metadata.rng). Never skipped: a missing tool fails.
    let rng = std::path::Path::new(FENCE_AGENTS_SCHEMA);
    assert!(
        rng.is_file(),
        "{} is missing: install Debian's fence-agents package (apt-get install fence-agents)",
        rng.display()
    );
    let check = Command::new("xmllint")
        .args(["--noout", "--relaxng"])
        .arg(rng)
        .arg(&xml)
        .output()
        .expect("xmllint is missing: install Debian's libxml2-utils package (apt-get install libxml2-utils)");
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert_eq!(with_args(&["-o", "metadata"]).stdout, out.stdout, "argv and stdin agree");
    for name in ["plug", "port", "nodename", "fence_timeout", "spool_dir", "queue_priority", "power_wait", "responder"]
    {
        assert!(text(&out.stdout).contains(&format!("<parameter name=\"{name}\"")), "{name}");
    }
}

#[test]
fn unknown_actions_and_flags_fail_like_fence_agents() {
    let out = with_stdin("action=explode\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("Failed: Unrecognised action 'explode'"), "{}", text(&out.stderr));
    let out = with_args(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("Failed: "), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout carries only what Pacemaker reads");
}

#[test]
fn help_version_and_manpage() {
    let out = with_args(&["-h"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("--fence-timeout=[seconds]"));
    for line in help.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
    let action: String = help.lines().skip_while(|l| !l.contains("--action")).take(3).collect();
    for a in ["on,", "off,", "reboot (default)", "status", "monitor", "validate-all"] {
        assert!(action.contains(a), "-o lists {a}: {action}");
    }
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("(Default: 45)"), "defaults are shown");
    let out = with_args(&["-V"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("fence_gfs2_recorder "));
    let out = with_args(&["-o", "manpage"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with(".TH fence_gfs2_recorder 8"));
    assert!(!text(&out.stdout).contains("action This parameter"), "sentences end before the next one");
}
