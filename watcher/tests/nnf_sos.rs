//! The agent in front of nnf-sos, as NNF sites run it (no watchers of ours): `responder=nnf-sos`
//! against `nnf-sos-standin` (proptest-suites), a stand-in written from nnf-sos's documented
//! behaviour, since nnf-sos needs Kubernetes and Rabbit hardware. Real processes, directories,
//! inotify and signals. The stand-in's ledger has a line per fence it performed: what tests check to
//! prove that nothing but `off` and `reboot` became a fence.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use common::*;

fn standin_bin() -> PathBuf {
    agent_bin().with_file_name("nnf-sos-standin")
}

/// nnf-sos's two directories (not sharing a parent), its storage file and the stand-in's ledger.
struct Nnf {
    w: World,
    requests: PathBuf,
    responses: PathBuf,
    storage: PathBuf,
    fences: PathBuf,
}

impl Nnf {
    fn new() -> Nnf {
        let w = World::new();
        let requests = w.dir.path().join("localdisk/fence-recorder/requests");
        let responses = w.dir.path().join("elsewhere/responses");
        let storage = w.dir.path().join("storage.json");
        std::fs::write(
            &storage,
            r#"{"compute-1": ["sg-compute-1-a", "sg-compute-1-b"], "compute-3": ["fail", "sg-3"]}"#,
        )
        .unwrap();
        let fences = w.dir.path().join("nnf-fences.jsonl");
        Nnf { w, requests, responses, storage, fences }
    }

    /// Starts the stand-in and waits until its start-up scan is over.
    fn start(&self, pause_ms: u64) -> Proc {
        let stderr = self.w.dir.path().join(format!("nnf-{}.stderr", std::process::id()));
        let child = Command::new(standin_bin())
            .env("NNF_FENCE_REQUEST_DIR", &self.requests)
            .env("NNF_FENCE_RESPONSE_DIR", &self.responses)
            .arg("--storage")
            .arg(&self.storage)
            .arg("--ledger")
            .arg(&self.fences)
            .args(["--in-place-pause-ms", &pause_ms.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let proc = Proc { child, stderr };
        assert!(
            wait_until(Duration::from_secs(20), || proc.stderr_text().contains("watching")),
            "{}",
            proc.stderr_text()
        );
        proc
    }

    fn stdin(&self, lines: &str) -> String {
        format!(
            "responder=nnf-sos\nrequest_dir={}\nresponse_dir={}\nlog_dir={}\nno_gfs2_discovery=1\n{lines}",
            self.requests.display(),
            self.responses.display(),
            self.w.logs.display()
        )
    }

    fn spawn_agent(&self, lines: &str) -> Child {
        use std::io::Write;
        let mut child = Command::new(agent_bin())
            .env_remove("NNF_FENCE_REQUEST_DIR")
            .env_remove("NNF_FENCE_RESPONSE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(self.stdin(lines).as_bytes()).unwrap();
        child
    }

    /// Runs the agent; fails the test instead of hanging if it has not exited within 30 s.
    fn agent(&self, lines: &str) -> std::process::Output {
        let mut child = self.spawn_agent(lines);
        let pid = child.id() as i32;
        let exited = wait_until(Duration::from_secs(30), || !alive(pid));
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(exited, "the agent did not exit: {}", text(&out.stderr));
        out
    }

    /// The fences the stand-in performed: (target, action of the request).
    fn fences(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.fences)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| (v["target"].as_str().unwrap().to_string(), v["action"].as_str().unwrap().to_string()))
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

#[test]
fn a_reboot_fenced_by_nnf_sos_succeeds() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    let out = n.agent("action=reboot\nport=compute-1\nnodename=compute-1\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "Success: Rebooted");
    assert_eq!(n.fences(), [("compute-1".to_string(), "reboot".to_string())]);
    // Answered under the request's own v2 name; nnf-sos deleted the request; the answer is kept.
    let answers = Nnf::names(&n.responses);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert!(answers[0].starts_with("compute-1-") && answers[0].ends_with(".json"), "{answers:?}");
    assert!(Nnf::names(&n.requests).is_empty(), "{:?}", Nnf::names(&n.requests));
    let record = n.w.log("fence-events-readable.log");
    assert!(record.contains("STATUS=completed") && record.contains("action performed: off"), "{record}");
    // An off of the same node is a fence too.
    assert_exit(&n.agent("action=off\nport=compute-1\n"), 0);
    assert_eq!(n.fences().len(), 2);
}

#[test]
fn an_in_place_answer_is_read_whole() {
    let n = Nnf::new();
    // compute-2 has no storage: nnf-sos creates the answer, then writes it.
    let _nnf = n.start(300);
    let out = n.agent("action=off\nport=compute-2\nfence_timeout=600\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "Success: Powered OFF");
    let ops = n.w.log("fence-events.log");
    assert!(!ops.contains("malformed"), "an answer being written is not malformed: {ops}");
}

#[test]
fn a_failure_answer_ends_the_wait_with_nnf_sos_message() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    let out = n.agent("action=reboot\nport=compute-3\nfence_timeout=600\n");
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(err.contains("could not delete any storage groups") && err.contains("sg-3"), "{err}");
    assert!(!err.contains("no response"), "it did not wait out its timeout: {err}");
}

#[test]
fn status_and_on_write_no_request_and_never_fence() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    let out = n.agent("action=status\nport=compute-1\n");
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "Status: ON");
    let out = n.agent("action=on\nport=compute-1\n");
    assert_exit(&out, 1);
    assert!(n.fences().is_empty(), "status and on fenced: {:?}", n.fences());
    assert_exit(&n.agent("action=off\nport=compute-1\n"), 0);
    let out = n.agent("action=status\nport=compute-1\n");
    assert_exit(&out, 2);
    assert_eq!(text(&out.stdout).trim(), "Status: OFF");
    let out = n.agent("action=on\nport=compute-1\n");
    assert_exit(&out, 1);
    let err = text(&out.stderr);
    assert!(err.contains("removal") && err.contains(n.responses.to_str().unwrap()), "{err}");
    assert_eq!(n.fences().len(), 1, "only the off fenced");
    // The administrator's unfence: the record removed, the node is ON again.
    for name in Nnf::names(&n.responses) {
        std::fs::remove_file(n.responses.join(name)).unwrap();
    }
    assert_exit(&n.agent("action=status\nport=compute-1\n"), 0);
    // nnf-sos reads hidden `*.json` names too (checkFencedStatus): a success answer under one holds
    // the node fenced for nnf-sos, so status says OFF; its own temporary `.<name>.tmp` does not.
    std::fs::write(n.responses.join(".kept-by-hand.json"), r#"{"target_node":"compute-1","success":true}"#).unwrap();
    std::fs::write(n.responses.join(".compute-1-x.json.tmp"), r#"{"target_node":"compute-1","success":true}"#).unwrap();
    assert_exit(&n.agent("action=status\nport=compute-1\n"), 2);
    std::fs::remove_file(n.responses.join(".kept-by-hand.json")).unwrap();
    assert_exit(&n.agent("action=status\nport=compute-1\n"), 0);
}

#[test]
fn a_request_given_up_is_taken_back_so_nnf_sos_never_fences_late() {
    let n = Nnf::new();
    // nnf-sos's directories exist, nnf-sos is not running (restarting, say).
    for d in [&n.requests, &n.responses] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = n.agent("action=off\nport=compute-1\nfence_timeout=2\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("was removed"), "{}", text(&out.stderr));
    assert!(Nnf::names(&n.requests).is_empty(), "{:?}", Nnf::names(&n.requests));
    // Interrupted by SIGTERM: the same.
    let agent = n.spawn_agent("action=reboot\nport=compute-1\nfence_timeout=600\n");
    assert!(wait_until(Duration::from_secs(20), || Nnf::names(&n.requests).iter().any(|f| !f.starts_with('.'))));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.id() as i32), Signal::SIGTERM).unwrap();
    let out = agent.wait_with_output().unwrap();
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("interrupted by SIGTERM"), "{}", text(&out.stderr));
    assert!(Nnf::names(&n.requests).is_empty(), "{:?}", Nnf::names(&n.requests));
    // nnf-sos restarts and scans its request directory: nothing is left to fence.
    let _nnf = n.start(0);
    assert!(n.fences().is_empty(), "{:?}", n.fences());
}

#[test]
fn the_stand_in_fences_what_it_finds_at_start_however_old() {
    let n = Nnf::new();
    std::fs::create_dir_all(&n.requests).unwrap();
    let id = new_id();
    std::fs::write(
        n.requests.join(format!("compute-1-{id}.json")),
        format!(
            r#"{{"request_id":"{id}","timestamp":"2020-01-01T00:00:00Z","action":"status","target_node":"compute-1"}}"#
        ),
    )
    .unwrap();
    let _nnf = n.start(0);
    assert_eq!(n.fences(), [("compute-1".to_string(), "status".to_string())], "every request is a fence");
    let answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(n.responses.join(format!("compute-1-{id}.json"))).unwrap()).unwrap();
    assert_eq!(answer["action_performed"], "off");
    assert_eq!(answer["timestamp"], "2020-01-01T00:00:00Z", "copied from the request");
}

#[test]
fn monitor_list_and_the_directories_nnf_sos_makes() {
    let n = Nnf::new();
    let out = n.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("nnf-node-manager"), "{}", text(&out.stderr));
    let _nnf = n.start(0);
    let mode = std::fs::metadata(&n.requests).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755, "nnf-sos makes its directories 0755");
    assert_exit(&n.agent("action=monitor\n"), 0);
    let out = n.agent("action=list\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("pcmk_host_list"), "{}", text(&out.stderr));
    std::fs::set_permissions(&n.responses, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = n.agent("action=monitor\n");
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("group- or world-writable"), "{}", text(&out.stderr));
    // The request carries nnf-sos's fields first.
    std::fs::set_permissions(&n.responses, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_exit(&n.agent("action=off\nport=compute-2\n"), 0);
    let record = std::fs::read_to_string(n.w.logs.join("fence-events.log")).unwrap();
    assert!(record.contains("Wrote fence request"), "{record}");
}

#[test]
fn other_responders_may_not_use_nnf_sos_directories() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    let spool = n.requests.parent().unwrap();
    let mut cmd = Command::new(agent_bin());
    let out = cmd
        .env("NNF_FENCE_REQUEST_DIR", &n.requests)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let stdin = format!("action=status\nport=compute-1\nspool_dir={}\nresponder=external\n", spool.display());
            c.stdin.take().unwrap().write_all(stdin.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("nnf-sos's directory"), "{}", text(&out.stderr));
    assert!(n.fences().is_empty());
    let out = Command::new(watcher_bin())
        .env("NNF_FENCE_REQUEST_DIR", &n.requests)
        .args(["run", "--spool-dir", spool.to_str().unwrap(), "--fence-command", executor_bin()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the watcher should have refused to start");
    assert!(text(&out.stderr).contains("nnf-sos's directory"), "{}", text(&out.stderr));
}

/// nnf-sos's directories as nnf-sos makes them, with nnf-sos not running (restarting, say).
fn directories_without_nnf_sos(n: &Nnf) {
    for d in [&n.requests, &n.responses] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The published (non-hidden) requests in nnf-sos's request directory, once `n` of them are there.
fn await_requests(n: &Nnf, count: usize) -> Vec<String> {
    let published = || Nnf::names(&n.requests).into_iter().filter(|f| !f.starts_with('.')).collect::<Vec<_>>();
    assert!(wait_until(Duration::from_secs(20), || published().len() == count), "{:?}", Nnf::names(&n.requests));
    published()
}

#[test]
fn a_killed_agents_request_is_taken_back_by_monitor_so_nnf_sos_never_fences_late() {
    let n = Nnf::new();
    directories_without_nnf_sos(&n);
    // Another client's request, without our holder lock: never touched.
    let foreign = format!("compute-9-{}.json", new_id());
    std::fs::write(n.requests.join(&foreign), r#"{"request_id":"x","action":"off","target_node":"compute-9"}"#)
        .unwrap();
    let mut killed = n.spawn_agent("action=off\nport=compute-1\nnodename=compute-1\nfence_timeout=600\n");
    let killed_request = await_requests(&n, 2).into_iter().find(|f| *f != foreign).unwrap();
    let waiting = n.spawn_agent("action=reboot\nport=compute-2\nfence_timeout=600\n");
    let waiting_request = await_requests(&n, 3).into_iter().find(|f| *f != foreign && *f != killed_request).unwrap();
    // Pacemaker's device timeout: SIGKILL, nothing to catch; the request stays behind.
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(n.requests.join(&killed_request).exists());
    assert_exit(&n.agent("action=monitor\n"), 0);
    let left = Nnf::names(&n.requests);
    assert!(!left.contains(&killed_request), "monitor took back the killed agent's request: {left:?}");
    assert!(!left.iter().any(|f| f.contains(&killed_request)), "and its holder lock: {left:?}");
    assert!(left.contains(&waiting_request) && left.contains(&foreign), "the rest stay: {left:?}");
    let record = n.w.log("fence-events-readable.log");
    let line = record.lines().find(|l| l.contains("was killed")).unwrap_or_else(|| panic!("no record: {record}"));
    assert!(line.contains("ACTION=off TARGET=compute-1") && line.contains("STATUS=failed"), "{line}");
    assert!(line.contains("monitor took the request back"), "{line}");
    // nnf-sos comes back: it fences the waiting agent's node and the foreign request, never compute-1.
    let _nnf = n.start(0);
    assert_exit(&waiting.wait_with_output().unwrap(), 0);
    let mut fenced = n.fences();
    fenced.sort();
    assert_eq!(fenced, [("compute-2".into(), "reboot".into()), ("compute-9".into(), "off".into())]);
}

#[test]
fn the_next_fence_takes_back_a_killed_agents_request_before_asking_anew() {
    let n = Nnf::new();
    directories_without_nnf_sos(&n);
    let mut killed = n.spawn_agent("action=reboot\nport=compute-1\nfence_timeout=600\n");
    let killed_request = await_requests(&n, 1).remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let next = n.spawn_agent("action=off\nport=compute-2\nfence_timeout=600\n");
    let replaced = || {
        let published: Vec<String> = Nnf::names(&n.requests).into_iter().filter(|f| !f.starts_with('.')).collect();
        published.len() == 1 && !published.contains(&killed_request)
    };
    assert!(wait_until(Duration::from_secs(20), replaced), "{:?}", Nnf::names(&n.requests));
    let _nnf = n.start(0);
    assert_exit(&next.wait_with_output().unwrap(), 0);
    assert_eq!(n.fences(), [("compute-2".to_string(), "off".to_string())], "compute-1 was never fenced late");
    assert!(n.w.log("fence-events-readable.log").contains("the next fence took the request back"));
    assert!(Nnf::names(&n.requests).is_empty(), "no holder lock is left: {:?}", Nnf::names(&n.requests));
}
