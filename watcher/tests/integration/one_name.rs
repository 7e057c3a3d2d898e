//! One name per setting: the agent, the watcher and `gfs2-fence-events`
//! read a shared setting under the same canonical `GFS2_FENCE_*` variable and parse it the same way;
//! the seed's and earlier names are aliases, and an alias that disagrees with another name of its
//! setting stops the program with a message naming both. Real binaries, real spool.

use std::process::Command;
use std::time::Duration;

use harness::process::*;

fn say(out: &std::process::Output) -> String {
    text(&out.stdout) + &text(&out.stderr)
}

/// Finding: `GFS2_DISCOVERY_ENABLED=1` switched discovery off in the agent (only `true` enabled it)
/// and `0` left it on in the watcher (only `false` disabled it). One parser now reads the switch
/// for both, and a value it cannot read is an error, not a silent choice.
#[test]
fn discovery_switch_reads_the_same_in_agent_and_watcher() {
    for (value, on) in [("1", true), ("yes", true), ("true", true), ("0", false), ("off", false), ("false", false)] {
        let mut w = World::new();
        w.watcher_env = vec![
            ("GFS2_DISCOVERY_ENABLED".into(), value.into()),
            ("GFS2_FENCE_DISCOVERY_SOURCES".into(), "dlm".into()),
        ];
        let _w1 = w.watcher("w1", &["--discovery-interval", "0.2"]);
        w.agent_env = vec![
            ("GFS2_DISCOVERY_ENABLED".into(), value.into()),
            ("GFS2_FENCE_DISCOVERY_SOURCES".into(), "dlm".into()),
        ];
        // Not the harness's own stdin: it switches discovery off with no_gfs2_discovery.
        let lines = format!(
            "action=reboot\nplug=n1\nspool_dir={}\nlog_dir={}\ndiscovery_timeout=0.5\n",
            w.spool.display(),
            w.logs.display()
        );
        let out = w.agent_raw_stdin(&lines);
        assert_exit(&out, 0);
        let disabled = w.log("fence-events-readable.log").contains("discovery-disabled");
        assert_eq!(disabled, !on, "agent, GFS2_DISCOVERY_ENABLED={value}: {}", w.log("fence-events-readable.log"));
        let published = wait_until(Duration::from_secs(if on { 20 } else { 2 }), || w.sub("discovery.json").exists());
        assert_eq!(published, on, "watcher, GFS2_DISCOVERY_ENABLED={value}");
    }
    let mut w = World::new();
    w.agent_env = vec![("GFS2_FENCE_DISCOVERY".into(), "enabled".into())];
    let out = w.agent_raw_stdin(&format!("action=monitor\nspool_dir={}\n", w.spool.display()));
    assert_exit(&out, 1);
    assert!(say(&out).contains("GFS2_FENCE_DISCOVERY"), "{}", say(&out));
}

/// An alias that disagrees with the canonical name (or with another alias) is an error naming both,
/// in every program, even when an option would have decided the value.
#[test]
fn a_disagreeing_alias_is_an_error_naming_both() {
    let w = World::new();
    let cases: [[(&str, &str); 2]; 4] = [
        [("GFS2_FENCE_LOG_DIR", "/var/tmp/a"), ("LOG_DIR", "/var/tmp/b")],
        [("GFS2_FENCE_SPOOL_DIR", "/run/a"), ("GFS2_FENCING_DIR", "/run/b")],
        [("GFS2_FENCE_SPOOL_DIR", "/run/a"), ("REQUEST_DIR", "/run/b/requests")],
        [("GFS2_FENCE_DISCOVERY", "true"), ("GFS2_DISCOVERY_ENABLED", "false")],
    ];
    for pair in cases {
        let names_both = |said: &str| pair.iter().all(|(k, _)| said.contains(&format!("{k}=")));
        let mut agent = Command::new(agent_bin());
        scrub(&mut agent).envs(pair).stdin(std::process::Stdio::piped());
        let mut child =
            agent.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        let stdin = format!("action=monitor\nspool_dir={}\nlog_dir={}\n", w.spool.display(), w.logs.display());
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_exit(&out, 1);
        assert!(names_both(&say(&out)), "agent with {pair:?}: {}", say(&out));

        let out = scrub(&mut Command::new(watcher_bin()))
            .envs(pair)
            .args(["run", "--spool-dir"])
            .arg(&w.spool)
            .args(["--fence-command", "/bin/true", "--id", "w9"])
            .output()
            .unwrap();
        assert!(!out.status.success() && names_both(&say(&out)), "watcher with {pair:?}: {}", say(&out));
    }
    let pair = [("GFS2_FENCE_LOG_DIR", w.logs.to_str().unwrap()), ("LOG_DIR", "/var/tmp/elsewhere")];
    let out = scrub(&mut Command::new(events_bin())).envs(pair).arg("list").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", say(&out));
    assert!(say(&out).contains("GFS2_FENCE_LOG_DIR=") && say(&out).contains("LOG_DIR="), "{}", say(&out));
}

/// The canonical name and each alias alone put the agent and `gfs2-fence-watcher status` on the
/// same spool.
#[test]
fn canonical_names_and_aliases_alone_find_the_same_spool() {
    let w = World::new();
    let _w1 = w.watcher("w1", &[]);
    let spool = w.spool.display().to_string();
    let requests = format!("{spool}/requests");
    for (name, value) in [
        ("GFS2_FENCE_SPOOL_DIR", spool.as_str()),
        ("GFS2_FENCING_DIR", spool.as_str()),
        ("REQUEST_DIR", requests.as_str()),
    ] {
        let mut agent = Command::new(agent_bin());
        scrub(&mut agent).env(name, value).env("GFS2_FENCE_LOG_DIR", &w.logs).args(["-o", "monitor"]);
        let out = agent.output().unwrap();
        assert_exit(&out, 0);
        let out = scrub(&mut Command::new(watcher_bin())).env(name, value).arg("status").output().unwrap();
        assert!(out.status.success() && text(&out.stdout).contains("w1"), "status with {name}: {}", say(&out));
    }
    let logs = w.logs.display().to_string();
    assert_exit(&w.agent("action=reboot\nplug=n2\n"), 0);
    for name in ["GFS2_FENCE_LOG_DIR", "LOG_DIR"] {
        let out = scrub(&mut Command::new(events_bin())).env(name, &logs).arg("count").output().unwrap();
        assert!(out.status.success() && text(&out.stdout).contains("n2"), "events with {name}: {}", say(&out));
    }
}
