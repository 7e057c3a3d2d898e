//! GFS2 discovery end to end: fake `kubectl`, `dlm_tool`, `crm_node`, `corosync-cmapctl` and
//! `cibadmin` on `PATH` replay the fixtures in `ha/tests/fixtures/discovery/` (the documented output
//! formats and the NNF CRDs), or misbehave on demand: hang, exit non-zero, print garbage, print
//! without end. The leader publishes `discovery.json`; the agent uses it at fence time without
//! running anything, or discovers live within its budget when there is no fresh snapshot. Every
//! fence succeeds whatever the tools do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ha::discovery::snapshot::{self, Snapshot};
use ha::protocol::provenance::Source;
use harness::process::*;

const TOOLS: [&str; 5] = ["kubectl", "dlm_tool", "crm_node", "corosync-cmapctl", "cibadmin"];

/// The fake tools of a world.
struct Fake {
    dir: PathBuf,
}

impl Fake {
    fn install(w: &mut World) -> Fake {
        let dir = w.dir.path().join("fakebin");
        std::fs::create_dir(&dir).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ha/tests/fixtures/discovery");
        let script = format!(
            r#"#!/bin/sh
# Fake discovery tool: replays a fixture, or misbehaves as mode.<tool> says.
tool=$(basename "$0")
dir='{dir}'
echo "$tool $*" >> "$dir/calls.log"
mode=ok
[ -f "$dir/mode.$tool" ] && mode=$(cat "$dir/mode.$tool")
case "$mode" in
  hang) echo $$ >> "$dir/hung.pids"; exec sleep 300 ;;
  fail) echo "$tool: error: connection refused" >&2; exit 1 ;;
  garbage) echo '}}}} not what anyone expected {{{{'; exit 0 ;;
  endless) exec yes 'gigabytes of output' ;;
esac
fx='{fixtures}'
case "$tool $1" in
  "kubectl get") cat "$fx/kubectl-nnf.json" ;;
  "dlm_tool ls") cat "$fx/dlm_tool-ls.txt" ;;
  "dlm_tool status") cat "$fx/dlm_tool-status.txt" ;;
  "crm_node -l") cat "$fx/crm_node-l.txt" ;;
  "corosync-cmapctl -b") cat "$fx/corosync-cmapctl.txt" ;;
  "cibadmin --query") cat "$fx/cib.xml" ;;
  *) echo "$tool: unexpected arguments: $*" >&2; exit 64 ;;
esac
"#,
            dir = dir.display(),
            fixtures = fixtures.canonicalize().unwrap().display()
        );
        for tool in TOOLS {
            let p = dir.join(tool);
            std::fs::write(&p, &script).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        w.path_prefix = Some(dir.clone());
        Fake { dir }
    }

    fn mode(&self, tool: &str, mode: &str) {
        std::fs::write(self.dir.join(format!("mode.{tool}")), mode).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls.log")).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn forget_calls(&self) {
        let _ = std::fs::remove_file(self.dir.join("calls.log"));
    }

    fn hung_pids(&self) -> Vec<i32> {
        let text = std::fs::read_to_string(self.dir.join("hung.pids")).unwrap_or_default();
        text.split_whitespace().map(|p| p.parse().unwrap()).collect()
    }
}

fn await_snapshot(w: &World, round_after: u64) -> Snapshot {
    let mut snap = None;
    let ok = wait_until(Duration::from_secs(30), || {
        snap = snapshot::read(&w.spool()).ok().flatten().filter(|s| s.taken_boottime_ns > round_after);
        snap.is_some()
    });
    assert!(ok, "no discovery.json was published");
    snap.unwrap()
}

/// Fences `node` with discovery on (the world's stdin switches it off) and returns the JSONL records.
fn fence(w: &World, node: &str, extra: &str) -> Vec<serde_json::Value> {
    let stdin = format!(
        "spool_dir={}\nlog_dir={}\naction=reboot\nport={node}\nnodename={node}\nfence_timeout=30\n{extra}",
        w.spool.display(),
        w.logs.display()
    );
    assert_exit(&w.agent_raw_stdin(&stdin), 0);
    w.log("fence-events-detailed.jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

fn assert_dead(pid: i32) {
    let stat = format!("/proc/{pid}/stat");
    let gone =
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z ")));
    assert!(gone, "the hanging tool {pid} was killed");
}

#[test]
fn the_leader_snapshot_names_each_nodes_file_systems_and_the_fence_uses_it_without_running_a_tool() {
    let mut w = World::new();
    let fake = Fake::install(&mut w);
    let before = ha::os::clock::BootTime::now().0;
    let leader = w.watcher("w1", &["--discovery-interval", "30"]);
    let snap = await_snapshot(&w, before);
    assert!(snap.sources.values().all(|r| r.ok), "{:?}", snap.sources);
    assert_eq!(snap.sources.len(), 3);
    assert_eq!((snap.watcher_id.as_deref(), snap.epoch), (Some("w1"), Some(1)));
    let fs = |n: &str| snap.nodes[n].gfs2_filesystems.clone();
    // NNF names, DLM lockspaces and CIB mount points, each only for the nodes that use them.
    assert_eq!(fs("compute-01"), ["/home/shared", "/mnt/gfs1", "gfs2-scratch", "scratch"]);
    assert_eq!(fs("compute-02"), ["/home/shared", "/mnt/gfs1", "gfs2-project", "gfs2-scratch", "project", "scratch"]);
    assert_eq!(fs("compute-03"), ["/mnt/gfs1", "gfs2-project", "project"]);
    assert!(fs("compute-04").is_empty(), "compute-04 uses no GFS2 file system");
    assert_eq!(snap.nodes["compute-03"].sources[&Source::Kubernetes].filesystems, ["gfs2-project"]);
    let calls = fake.calls();
    assert!(
        calls.iter().any(|c| c
            == "kubectl get nnfstorages.nnf.cray.hpe.com,nnfnodeblockstorages.nnf.cray.hpe.com --all-namespaces --output json"),
        "{calls:?}"
    );

    // A new watcher without discovery serves; every tool would now hang.
    leader.terminate();
    let _w2 = w.watcher("w2", &[]);
    for tool in TOOLS {
        fake.mode(tool, "hang");
    }
    fake.forget_calls();
    let records = fence(&w, "compute-02", "discovery_timeout=5\n");
    assert!(fake.calls().is_empty(), "the agent ran discovery tools: {:?}", fake.calls());
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(strings(&r["gfs2_filesystems"]), fs("compute-02"));
        assert_eq!(r["gfs2_discovery"]["method"], "snapshot");
        assert!(r["gfs2_discovery"]["age_ms"].is_u64(), "{r}");
        assert_eq!(strings(&r["gfs2_discovery"]["by_source"]["dlm"]), ["project", "scratch"]);
    }
    let done = w.files("done");
    let request = ha::protocol::request::Request::parse(&std::fs::read(w.sub("done").join(&done[0])).unwrap()).unwrap();
    assert_eq!(request.gfs2_filesystems, fs("compute-02"), "the request carries them too");
    assert_eq!(request.gfs2_discovery.unwrap().method, "snapshot");
    let readable = w.log("fence-events-readable.log");
    assert!(readable.contains(r#"GFS2=["/home/shared", "/mnt/gfs1", "gfs2-project""#), "{readable}");
}

#[test]
fn without_a_snapshot_a_hanging_source_is_killed_at_the_budget_and_the_others_answer() {
    let mut w = World::new();
    let fake = Fake::install(&mut w);
    let _w1 = w.watcher("w1", &[]);
    fake.mode("dlm_tool", "hang");
    fake.mode("cibadmin", "fail");
    let records = fence(&w, "compute-02", "discovery_timeout=1\n");
    let requested = &records[0];
    assert_eq!(requested["status"], "requested");
    assert_eq!(strings(&requested["gfs2_filesystems"]), ["gfs2-project", "gfs2-scratch"], "kubectl still answered");
    let p = &requested["gfs2_discovery"];
    assert_eq!(p["method"], "live");
    let dlm = p["errors"]["dlm"].as_str().unwrap();
    assert!(dlm.contains("dlm_tool ls did not finish within") && dlm.contains("killed"), "{dlm}");
    let cib = p["errors"]["cib"].as_str().unwrap();
    assert!(cib.contains("cibadmin --query failed") && cib.contains("connection refused"), "{cib}");
    assert_eq!(records[1]["status"], "completed");
    // The agent is gone, and so is the tool it gave up on (it would have slept 300 s).
    let pids = fake.hung_pids();
    assert_eq!(pids.len(), 1);
    assert_dead(pids[0]);
}

#[test]
fn broken_sources_are_reported_in_the_snapshot_and_the_others_still_answer() {
    let mut w = World::new();
    let fake = Fake::install(&mut w);
    fake.mode("kubectl", "garbage");
    fake.mode("dlm_tool", "endless");
    let before = ha::os::clock::BootTime::now().0;
    let _w1 = w.watcher("w1", &["--discovery-interval", "30"]);
    let snap = await_snapshot(&w, before);
    let err = |s: Source| snap.sources[&s].error.clone().unwrap_or_default();
    assert!(err(Source::Kubernetes).contains("not a kubectl JSON list"), "{}", err(Source::Kubernetes));
    assert!(err(Source::Dlm).contains("printed more than"), "{}", err(Source::Dlm));
    assert!(snap.sources[&Source::Cib].ok);
    assert_eq!(snap.nodes["compute-03"].gfs2_filesystems, ["/mnt/gfs1"]);

    let records = fence(&w, "compute-03", "");
    assert_eq!(strings(&records[1]["gfs2_filesystems"]), ["/mnt/gfs1"]);
    let errors = &records[1]["gfs2_discovery"]["errors"];
    assert!(errors["kubernetes"].is_string() && errors["dlm"].is_string(), "{errors}");
    assert_eq!(records[1]["status"], "completed");
}

#[test]
fn a_stale_snapshot_is_not_trusted_and_unknown_nodes_are_none_detected() {
    let mut w = World::new();
    let fake = Fake::install(&mut w);
    let _w1 = w.watcher("w1", &[]);
    // A snapshot from an hour ago that still lists compute-02.
    let hour = 3_600_000_000_000;
    let stale = serde_json::json!({
        "version": 1, "taken": "2026-11-25T07:00:00Z",
        "taken_boottime_ns": ha::os::clock::BootTime::now().0.saturating_sub(hour),
        "boot_id": ha::os::clock::boot_id().unwrap(), "interval_ms": 30000, "sources": {},
        "nodes": {"compute-02": {"gfs2_filesystems": ["old-fs"], "sources": {}}}
    });
    std::fs::write(snapshot::path(&w.spool()), serde_json::to_vec(&stale).unwrap()).unwrap();
    let records = fence(&w, "compute-02", "discovery_sources=kubernetes\n");
    assert_eq!(strings(&records[0]["gfs2_filesystems"]), ["gfs2-project", "gfs2-scratch"]);
    assert_eq!(records[0]["gfs2_discovery"]["method"], "live");
    assert_eq!(fake.calls().len(), 1, "only the kubernetes source ran: {:?}", fake.calls());
    let records = fence(&w, "compute-99", "discovery_sources=kubernetes\n");
    assert_eq!(strings(&records[2]["gfs2_filesystems"]), ["none-detected"]);
    let records = fence(&w, "compute-02", "no_gfs2_discovery=1\n");
    assert_eq!(strings(&records[4]["gfs2_filesystems"]), ["discovery-disabled"]);
    assert_eq!(records[4]["gfs2_discovery"]["method"], "disabled");
}
