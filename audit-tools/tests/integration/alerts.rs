//! Every fence in the cluster, not only ours: `gfs2-fence-alert` run as Pacemaker runs alert agents
//! (`CRM_alert_*` environment, no arguments) drops fencing alerts; the leader appends them to the
//! same audit chain as the agent's records and quarantines what is not an alert.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use harness::process::*;

fn alert(dir: &Path, kind: &str, node: &str) -> Output {
    Command::new(alert_bin())
        .env_clear()
        .env("CRM_alert_kind", kind)
        .env("CRM_alert_version", "2.1.5")
        .env("CRM_alert_recipient", dir)
        .env("CRM_alert_node_sequence", "17")
        .env("CRM_alert_timestamp", "2026-11-25 10:00:00.123456")
        .env("CRM_alert_node", node)
        .env("CRM_alert_task", "reboot")
        .env("CRM_alert_rc", "0")
        .env(
            "CRM_alert_desc",
            format!("Operation reboot of {node} by rabbit-01 for pacemaker-controld.4242@rabbit-01: OK"),
        )
        .output()
        .unwrap()
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    v.sort();
    v
}

#[test]
fn fencing_alerts_from_any_device_join_the_audit_chain() {
    let w = World::new();
    let alerts = w.dir.path().join("alerts");
    std::fs::create_dir(&alerts).unwrap();
    std::fs::set_permissions(&alerts, std::fs::Permissions::from_mode(0o1730)).unwrap();

    assert_exit(&alert(&alerts, "fencing", "compute-07"), 0);
    assert_exit(&alert(&alerts, "node", "compute-07"), 0);
    assert_eq!(json_files(&alerts).len(), 1, "only the fencing alert is dropped");
    std::fs::write(alerts.join("garbage.json"), "{\"version\": 1, \"node\": ").unwrap();
    // What an alert agent killed mid-write leaves (its pid is gone): removed, never ingested.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let _ = dead.wait_with_output();
    let orphan = alerts.join(format!(".0f5c8a52.json.{dead_pid}.0123456789abcdef0123456789abcdef.tmp"));
    std::fs::write(&orphan, "{").unwrap();

    let _w1 = w.watcher("w1", &[]);
    let ingested = wait_until(Duration::from_secs(20), || json_files(&alerts).is_empty());
    assert!(ingested, "left: {:?}", json_files(&alerts));
    assert!(wait_until(Duration::from_secs(20), || !orphan.exists()), "a dead writer's temporary file stays");
    assert!(w.files("quarantine").contains(&"garbage.json".to_string()), "{:?}", w.files("quarantine"));
    let reason = std::fs::read_to_string(w.sub("quarantine").join("garbage.json.reason")).unwrap();
    assert!(reason.contains("invalid alert JSON"), "{reason}");

    let jsonl = w.log("fence-events-detailed.jsonl");
    let rec: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(rec["source"], "pacemaker-alert");
    assert_eq!((rec["target_node"].as_str(), rec["status"].as_str()), (Some("compute-07"), Some("completed")));
    assert_eq!(rec["alert"]["CRM_alert_node_sequence"], "17");
    assert_eq!(rec["seq"], 1);
    assert!(w.log("fence-events-readable.log").contains(
        "TARGET=compute-07 GFS2=[\"none-detected\"] STATUS=completed DETAILS=Pacemaker alert: Operation reboot"
    ));

    // Our own fences continue the same chain.
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    let (code, out) = events(&w, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 3 chained records"), "{out}");

    // An empty --alerts-dir is accepted: ingestion off (the harness would refuse a watcher that does not start).
    let w2 = World::new();
    let _other = w2.watcher("w9", &["--alerts-dir", ""]);

    // Without its drop directory the alert agent says so and fails (Pacemaker logs it).
    let out = alert(&w.dir.path().join("missing"), "fencing", "compute-08");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("cannot hand the fencing alert for compute-08"), "{}", text(&out.stderr));
}

#[test]
fn the_alert_agent_helps_and_refuses_what_pacemaker_never_passes() {
    let run = |arg: &str| std::process::Command::new(alert_bin()).arg(arg).output().unwrap();
    let help = run("--help");
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("pcs alert create") && text(&help.stdout).contains("CRM_alert_recipient"));
    let version = run("-V");
    assert_eq!(version.status.code(), Some(0));
    assert!(text(&version.stdout).starts_with("gfs2-fence-alert "));
    let bad = run("--frobnicate");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("unknown argument"));
}
