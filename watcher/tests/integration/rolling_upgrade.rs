//! A rolling upgrade with real old binaries: the watchers and agent of commit a31b92f (spool format
//! 1: per-target locks `locks/<requested name>.lock`, no look for an earlier claim) beside this
//! build's on one spool. Built from the repository's own history (`git archive` of the commit into
//! `target/old-builds/`, its own target directory, `cargo build --locked`; about 80 s once, kept for
//! later runs). Executions against one node never overlap between builds, nothing is lost, each node's
//! requests run in submission order, and fencing goes on while the old watchers stop one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use harness::process::*;

/// The last commit whose watchers speak spool format 1.
const OLD: &str = "a31b92f";

/// The directory holding the binaries of [`OLD`], built once (across test processes and the cluster
/// suite, under a lock) by `ci/old-build.sh`, the one recipe for the previous build.
fn old_build() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_old).clone()
}

fn build_old() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The script finds cargo on PATH: the one running these tests goes first.
    let path = std::env::join_paths(
        Path::new(&cargo)
            .parent()
            .into_iter()
            .map(Path::to_path_buf)
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out = Command::new("bash").arg(repo.join("ci/old-build.sh")).env("PATH", path).output().unwrap();
    assert!(
        out.status.success(),
        "building the watchers of commit {OLD} from the repository's history (run the tests in a full clone, \
         git clone without --depth): {}",
        text(&out.stderr)
    );
    let bins = PathBuf::from(text(&out.stdout).trim());
    assert!(
        bins.ends_with(format!("old-builds/{OLD}/target/debug")),
        "ci/old-build.sh builds {OLD}: {}",
        bins.display()
    );
    bins
}

/// Waits for an agent, failing the test (with its output) unless it exits 0.
fn succeeds(agent: Child, what: &str) {
    let out = agent.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{what}: {}{}", text(&out.stdout), text(&out.stderr));
}

/// Fails when two executions against one target overlap; returns each target's actions in the order
/// their executions started.
fn no_overlap(w: &World) -> HashMap<String, Vec<String>> {
    let mut open: HashMap<u32, (String, u64)> = HashMap::new();
    let mut spans: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for l in w.ledger() {
        if l.event == "start" {
            order.entry(l.target.clone()).or_default().push(l.action.clone());
            open.insert(l.pid, (l.target.clone(), l.boottime_ns));
        } else if let Some((target, start)) = open.remove(&l.pid) {
            spans.entry(target).or_default().push((start, l.boottime_ns));
        }
    }
    assert!(open.is_empty(), "executions that never ended: {open:?}");
    for (target, mut s) in spans {
        s.sort();
        for pair in s.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{target}: executions {:?} and {:?} overlap", pair[0], pair[1]);
        }
    }
    order
}

/// Every request answered and retired: nothing pending or claimed.
fn settled(w: &World) {
    let ok = wait_until(Duration::from_secs(20), || w.files("requests").is_empty() && w.files("claimed").is_empty());
    assert!(ok, "left: requests {:?} claimed {:?}", w.files("requests"), w.files("claimed"));
}

/// What `status --json` says of the members: (id, standing aside, spool format).
fn members(w: &World) -> Vec<(String, bool, Option<u64>)> {
    status_members(w)
        .iter()
        .filter(|m| m["live"].as_bool() == Some(true))
        .map(|m| {
            (m["id"].as_str().unwrap().to_string(), m["standing_aside"].as_bool().unwrap(), m["spool_format"].as_u64())
        })
        .collect()
}

#[test]
fn old_and_new_watchers_and_agents_on_one_spool_never_overlap_a_node_and_lose_nothing_as_the_old_stop() {
    let old = old_build();
    let w = World::new();
    w.behave("*", "sleep:300");
    let old_watchers: Vec<Proc> =
        (1..=2).map(|i| w.watcher_of(&old.join("gfs2-fence-watcher"), &format!("old{i}"), &[])).collect();
    let _new: Vec<Proc> = (1..=2).map(|i| w.watcher(&format!("new{i}"), &[])).collect();
    let aside = || members(&w).iter().filter(|(id, aside, _)| id.starts_with("new") && *aside).count() == 2;
    assert!(wait_until(Duration::from_secs(20), aside), "the new watchers stand aside: {:?}", members(&w));
    assert!(members(&w).iter().all(|(id, _, f)| *f == Some(if id.starts_with("old") { 1 } else { 2 })));

    // Agents of both builds: on each node an off, and 0.3 s later an on from the other build.
    let agents = |build_of_first: &dyn Fn(usize) -> bool, nodes: std::ops::Range<usize>| {
        let mut spawned = Vec::new();
        for n in nodes.clone() {
            let (first, second) = if build_of_first(n) { (Some(&old), None) } else { (None, Some(&old)) };
            let spawn = |bin: Option<&PathBuf>, lines: &str| match bin {
                Some(dir) => w.spawn_agent_of(&dir.join("fence_gfs2_recorder"), lines),
                None => w.spawn_agent(lines),
            };
            spawned.push((format!("off n{n}"), spawn(first, &format!("action=off\nport=n{n}\nfence_timeout=60\n"))));
            std::thread::sleep(Duration::from_millis(300));
            spawned.push((format!("on n{n}"), spawn(second, &format!("action=on\nport=n{n}\nfence_timeout=60\n"))));
        }
        spawned
    };
    for (what, agent) in agents(&|n| n % 2 == 0, 0..4) {
        succeeds(agent, &what);
    }
    settled(&w);
    let order = no_overlap(&w);
    for n in 0..4 {
        assert_eq!(order[&format!("n{n}")], ["off", "on"], "n{n}: submission order");
    }
    let answered_by_old = w.files("responses").iter().all(|f| {
        let r = w.response(f.trim_end_matches(".json")).unwrap();
        r.watcher_id.as_deref().is_some_and(|id| id.starts_with("old"))
    });
    assert!(answered_by_old, "while an older watcher lives, the newer ones claim nothing");

    // The old watchers stop one at a time (SIGTERM, as a restart does) while both builds fence.
    let records_before = w.log("fence-events-detailed.jsonl").lines().count();
    let mut in_flight = agents(&|n| n % 2 == 1, 4..6);
    let mut old_watchers = old_watchers.into_iter();
    old_watchers.next().unwrap().terminate();
    in_flight.extend(agents(&|n| n % 2 == 0, 6..8));
    old_watchers.next().unwrap().terminate();
    in_flight.extend(agents(&|n| n % 2 == 1, 8..10));
    for (what, agent) in in_flight {
        succeeds(agent, &what);
    }
    settled(&w);
    let order = no_overlap(&w);
    for n in 4..10 {
        assert_eq!(order[&format!("n{n}")], ["off", "on"], "n{n}: submission order");
    }
    assert!(members(&w).iter().all(|(_, aside, _)| !aside), "no older peer left: {:?}", members(&w));
    let requests = w.files("done").len();
    assert_eq!(w.files("responses").len(), 20, "one answer per request ({requests} retired)");
    // The stall the upgrade caused, as the agents (of both builds) recorded their waits.
    let waits: Vec<u64> = w
        .log("fence-events-detailed.jsonl")
        .lines()
        .skip(records_before)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["status"] == "completed")
        .filter_map(|r| r["elapsed_ms"].as_u64())
        .collect();
    eprintln!(
        "while the old watchers stopped: {} fences, the slowest {} ms",
        waits.len(),
        waits.iter().max().unwrap_or(&0)
    );
}

#[test]
fn an_old_watcher_that_joins_while_a_new_one_fences_a_node_waits_for_that_fence() {
    let old = old_build();
    let w = World::new();
    w.behave("n1", "sleep:3000");
    let _new = w.watcher("new1", &[]);
    let off = w.spawn_agent("action=off\nport=n1\nfence_timeout=30\n");
    let first = w.first_start();
    assert_eq!(first.action, "off");
    // A downgrade, or an old watcher that thaws: it joins while the new one holds the node.
    let _old = w.watcher_of(&old.join("gfs2-fence-watcher"), "old1", &[]);
    let on = w.spawn_agent_of(&old.join("fence_gfs2_recorder"), "action=on\nport=n1\nfence_timeout=30\n");
    succeeds(off, "new agent's off");
    succeeds(on, "old agent's on");
    settled(&w);
    assert_eq!(no_overlap(&w)["n1"], ["off", "on"]);
    let on_id = w.ledger().into_iter().rfind(|l| l.event == "start").unwrap().request_id.unwrap();
    assert_eq!(w.response(&on_id).unwrap().watcher_id.as_deref(), Some("old1"), "the old watcher ran it, after");
}

#[test]
fn a_new_watcher_standing_aside_for_an_old_one_claims_again_once_the_old_one_stops() {
    let old = old_build();
    let w = World::new();
    let new = w.watcher("new1", &[]);
    let old1 = w.watcher_of(&old.join("gfs2-fence-watcher"), "old1", &[]);
    assert!(wait_until(Duration::from_secs(20), || members(&w).iter().any(|(id, aside, _)| id == "new1" && *aside)));
    old1.terminate();
    // The new watcher learns of the death from the member lock and claims again.
    let out = w.agent("action=reboot\nport=n2\n");
    assert_exit(&out, 0);
    assert!(members(&w).iter().all(|(_, aside, _)| !aside));
    assert!(new.stderr_text().contains("standing aside"), "the watcher said why it stood aside");
    assert!(new.stderr_text().contains("claiming again"), "{}", new.stderr_text());
}
