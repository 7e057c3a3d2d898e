//! The agent in front of nnf-sos, as NNF sites run it (no watchers of ours): `responder=nnf-sos`
//! against `nnf-sos-standin` (the harness crate), a stand-in written from nnf-sos's documented
//! behaviour, since nnf-sos needs Kubernetes and Rabbit hardware. Real processes, directories,
//! inotify and signals. The stand-in's ledger has a line per fence it performed: what tests check to
//! prove that nothing but `off` and `reboot` became a fence.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use harness::process::*;

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
    /// The stand-in's view: storage attached per node, each compute's status.
    state: PathBuf,
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
        let state = w.dir.path().join("nnf-state.json");
        Nnf { w, requests, responses, storage, fences, state }
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
            .arg("--state")
            .arg(&self.state)
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
        self.spawn_agent_with(lines, &[])
    }

    /// [`Nnf::spawn_agent`] with these environment variables.
    fn spawn_agent_with(&self, lines: &str, env: &[(&str, &str)]) -> Child {
        spawn_bare(&self.stdin(lines), env)
    }

    /// Runs the agent; fails the test instead of hanging if it has not exited within 30 s.
    fn agent(&self, lines: &str) -> std::process::Output {
        self.agent_with(lines, &[])
    }

    /// [`Nnf::agent`] with these environment variables.
    fn agent_with(&self, lines: &str, env: &[(&str, &str)]) -> std::process::Output {
        let mut child = self.spawn_agent_with(lines, env);
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

    /// Runs `gfs2-fence-events <command> <args>` on these directories and logs, with `env`:
    /// (exit code, stdout, stderr).
    fn way_back(&self, command: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let out = scrub(&mut Command::new(events_bin()))
            .env_remove("PCMK_service")
            .env_remove("SUDO_USER")
            .envs(env.iter().copied())
            .arg("--log-dir")
            .arg(&self.w.logs)
            .arg(command)
            .arg("--request-dir")
            .arg(&self.requests)
            .arg("--response-dir")
            .arg(&self.responses)
            .args(args)
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    /// The stand-in's view (see `harness::nnf_standin`).
    fn state(&self) -> serde_json::Value {
        std::fs::read(&self.state).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Waits until the stand-in's view satisfies `cond`.
    fn await_state(&self, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
        assert!(wait_until(Duration::from_secs(20), || cond(&self.state())), "{what}: {}", self.state());
    }

    /// The records of the audit chain, as JSON.
    fn chain(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.w.logs.join("fence-events-detailed.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
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
    assert!(
        err.contains("gfs2-fence-events unfence compute-1") && err.contains(n.responses.to_str().unwrap()),
        "{err}"
    );
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
    let out = scrub(&mut cmd)
        .env("NNF_FENCE_REQUEST_DIR", &n.requests)
        .env("GFS2_FENCE_LOG_DIR", &n.w.logs)
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

/// The top-level `*.json` names of nnf-sos's response directory: its records.
fn records(n: &Nnf) -> Vec<String> {
    Nnf::names(&n.responses).into_iter().filter(|f| f.ends_with(".json")).collect()
}

#[test]
fn an_unfence_by_command_moves_the_record_audited_and_nnf_sos_gives_the_storage_back_at_its_next_reconcile() {
    let n = Nnf::new();
    let nnf = n.start(0);
    n.await_state("compute-1's storage is attached at start", |s| s["attached"]["compute-1"].is_array());
    assert_exit(&n.agent("action=off\nport=compute-1\nnodename=node-1\n"), 0);
    n.await_state("compute-1 is fenced", |s| {
        s["attached"].get("compute-1").is_none() && s["servers"]["compute-1"] == "Fenced"
    });
    let fence_record = records(&n).pop().unwrap();

    // Who is fenced now, named by the chain, in text and JSON; the exit status says whether any is.
    let (code, out, err) = n.way_back("fenced", &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("node-1") && out.contains("compute-1") && out.contains(&fence_record), "{out}");
    let (code, out, _) = n.way_back("fenced", &["--format", "json"], &[]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((rows[0]["node"].as_str(), rows[0]["plug"].as_str()), (Some("node-1"), Some("compute-1")));
    assert_eq!((rows[0]["action_performed"].as_str(), rows[0]["storage"].as_str()), (Some("off"), Some("deleted")));
    assert_eq!(n.way_back("fenced", &["--node", "node-9"], &[]).0, 1, "node-9 is not fenced");

    // The unfence: node-1 maps to its plug through the chain.
    let chained = n.chain().len();
    let (code, out, err) =
        n.way_back("unfence", &["node-1", "--reason", "rebooted, checked by alice"], &[("SUDO_USER", "alice")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("compute-1 unfenced"), "{out}");
    assert!(records(&n).is_empty(), "the record left the directory: {:?}", Nnf::names(&n.responses));
    let kept = n.responses.join("unfenced").join(&fence_record);
    let kept_answer: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(kept_answer["target_node"], "compute-1", "kept whole, never deleted");
    // nnf-sos saw the removal: the compute is Ready; its storage comes back only at a reconcile.
    n.await_state("the Remove event updated the status", |s| s["servers"]["compute-1"] == "Ready");
    assert!(n.state()["attached"].get("compute-1").is_none(), "storage came back at the removal: {}", n.state());
    nnf.signal(Signal::SIGHUP);
    n.await_state("the next reconcile re-created the storage", |s| s["attached"]["compute-1"].is_array());
    assert_eq!(n.fences().len(), 1, "and did not fence again");

    // Audited: two records (unfencing, unfenced) that say who, why and what moved; the chain verifies.
    let chain = n.chain();
    assert_eq!(chain.len(), chained + 2, "{chain:#?}");
    let done = &chain[chain.len() - 1];
    assert_eq!((done["action"].as_str(), done["status"].as_str()), (Some("unfence"), Some("unfenced")));
    assert_eq!((done["target_node"].as_str(), done["nodename"].as_str()), (Some("compute-1"), Some("node-1")));
    assert_eq!(done["unfence"]["reason"], "rebooted, checked by alice");
    assert_eq!(done["unfence"]["sudo_user"], "alice");
    assert_eq!(done["unfence"]["records"][0]["kept"].as_str(), kept.to_str());
    assert_eq!(chain[chain.len() - 2]["status"], "unfencing");
    let (code, out) = events(&n.w, &["verify"]);
    assert_eq!(code, 0, "{out}");
    let (_, out) = events(&n.w, &["count", "--format", "json"]);
    let counts: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((counts[0]["requested"].as_u64(), counts[0]["unfenced"].as_u64()), (Some(1), Some(1)), "numbers: {out}");
    let (_, out) = events(&n.w, &["timeline"]);
    assert!(out.lines().any(|l| l.contains("unfence") && l.contains("unfenced")), "{out}");

    // Idempotent: nothing stands, nothing is done or recorded; the node is ON for Pacemaker.
    assert_eq!(n.way_back("fenced", &[], &[]).0, 1);
    let (code, out, _) = n.way_back("unfence", &["node-1", "--reason", "again"], &[]);
    assert!(code == 0 && out.contains("nothing to do"), "{code} {out}");
    assert_eq!(n.chain().len(), chained + 2);
    assert_exit(&n.agent("action=status\nport=compute-1\n"), 0);
}

#[test]
fn an_unfence_is_refused_while_a_fence_of_the_node_is_pending_or_waited_for() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    assert_exit(&n.agent("action=off\nport=compute-1\n"), 0);
    let standing = records(&n);
    // A request for the node that nnf-sos has not answered (hidden: read only by its reconcile,
    // whoever wrote it) is a fence still to come.
    let id = new_id();
    let pending = format!(".by-hand-{id}.json");
    std::fs::write(n.requests.join(&pending), format!(r#"{{"request_id":"{id}","target_node":"compute-1"}}"#)).unwrap();
    let (code, _, err) = n.way_back("unfence", &["compute-1", "--reason", "r"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("still to carry out") && err.contains(&pending), "{err}");
    assert_eq!(records(&n), standing, "nothing moved");
    std::fs::remove_file(n.requests.join(&pending)).unwrap();
    // An agent asking for a fence of it (its holder lock held, its request not yet published).
    let holder = n.requests.join(format!(".compute-1-{}.json.lock", new_id()));
    let file = std::fs::File::create(&holder).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let (code, _, err) = n.way_back("unfence", &["compute-1", "--reason", "r"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("asking nnf-sos to fence it now"), "{err}");
    assert_eq!(records(&n), standing, "nothing moved");
    // Another node's waiting agent is no reason.
    drop(held);
    std::fs::remove_file(&holder).unwrap();
    let other = n.requests.join(format!(".compute-2-{}.json.lock", new_id()));
    let _held =
        nix::fcntl::Flock::lock(std::fs::File::create(&other).unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock)
            .unwrap();
    let (code, out, err) = n.way_back("unfence", &["compute-1", "--reason", "r"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(records(&n).is_empty());
    // A refusal moves nothing and records nothing: the chain holds the one unfence that happened.
    assert_eq!(n.chain().iter().filter(|r| r["action"] == "unfence").count(), 2);
}

#[test]
fn an_orphaned_request_is_set_aside_so_nnf_sos_never_fences_the_unfenced_node_again() {
    let n = Nnf::new();
    let nnf = n.start(0);
    assert_exit(&n.agent("action=off\nport=compute-1\n"), 0);
    let name = records(&n).pop().unwrap();
    let request = std::fs::read(n.responses.join(&name)).unwrap();
    // nnf-sos crashed between writing its answer and removing the request.
    drop(nnf);
    std::fs::write(n.requests.join(&name), &request).unwrap();
    let (code, out, err) = n.way_back("unfence", &["compute-1", "--reason", "r"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 request(s) set aside"), "{out}");
    assert!(Nnf::names(&n.requests).iter().all(|f| f.starts_with('.')), "{:?}", Nnf::names(&n.requests));
    assert_eq!(std::fs::read(n.requests.join(".unfenced").join(&name)).unwrap(), request, "kept");
    // nnf-sos starts: the storage comes back, nothing is fenced again.
    let _nnf = n.start(0);
    n.await_state("storage re-created", |s| s["attached"]["compute-1"].is_array());
    assert_eq!(n.fences().len(), 1, "{:?}", n.fences());

    // What nnf-sos does with a request left without its answer (the record moved by hand, the
    // request left, hidden or not): the node is fenced again at the next reconcile.
    std::fs::write(n.requests.join(".left.json"), &request).unwrap();
    _nnf.signal(Signal::SIGHUP);
    assert!(wait_until(Duration::from_secs(20), || n.fences().len() == 2), "{:?}", n.fences());
}

#[test]
fn on_unfences_only_when_the_cib_shows_provides_unfencing_and_the_panic_reaction() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    assert_exit(&n.agent("action=off\nport=compute-1\nnodename=node-1\n"), 0);
    let standing = records(&n);
    let cib = n.w.dir.path().join("cib.xml");
    let write_cib = |provides: bool, reaction: &str| {
        let meta = if provides { r#"<nvpair id="m1" name="provides" value="unfencing"/>"# } else { "" };
        std::fs::write(
            &cib,
            format!(
                r#"<cib crm_feature_set="3.16.2" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config><cluster_property_set id="o"><nvpair id="o1" name="fence-reaction" value="{reaction}"/></cluster_property_set></crm_config>
    <nodes/>
    <resources>
      <primitive id="nnf-fence" class="stonith" type="fence_gfs2_recorder">
        <instance_attributes id="i"><nvpair id="i1" name="responder" value="nnf-sos"/><nvpair id="i2" name="allow_unfencing" value="true"/></instance_attributes>
        <meta_attributes id="m">{meta}</meta_attributes>
      </primitive>
    </resources>
    <constraints/>
  </configuration>
  <status/>
</cib>"#
            ),
        )
        .unwrap();
    };
    let cib_env = [("CIB_file", cib.to_str().unwrap()), ("PCMK_service", "pacemaker-fenced")];
    let on = "action=on\nport=compute-1\nnodename=node-1\n";
    let on_allowed = "action=on\nport=compute-1\nnodename=node-1\nallow_unfencing=1\n";
    // Without the allowing parameter: refused, saying how to unfence.
    let out = n.agent_with(on, &cib_env);
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("allow_unfencing"), "{}", text(&out.stderr));
    // Allowed by the parameter, but the device lacks provides=unfencing (a remapped reboot's on).
    write_cib(false, "panic");
    let out = n.agent_with(on_allowed, &cib_env);
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("provides=unfencing") && text(&out.stderr).contains("nnf-fence"),
        "{}",
        text(&out.stderr)
    );
    // The node may rejoin without a reboot (fence-reaction stop).
    write_cib(true, "stop");
    let out = n.agent_with(on_allowed, &cib_env);
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("not panic"), "{}", text(&out.stderr));
    assert_eq!(records(&n), standing, "every refusal left the record standing");
    // Pacemaker's unfencing as configured: the record goes, audited as Pacemaker's.
    write_cib(true, "panic");
    let out = n.agent_with(on_allowed, &cib_env);
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "Success: Powered ON");
    assert!(records(&n).is_empty());
    n.await_state("compute-1 is Ready", |s| s["servers"]["compute-1"] == "Ready");
    let done = n.chain().into_iter().rev().find(|r| r["action"] == "unfence").unwrap();
    assert_eq!((done["status"].as_str(), done["unfence"]["by"].as_str()), (Some("unfenced"), Some("pacemaker-fenced")));
    assert!(done["unfence"]["reason"].as_str().unwrap().contains("nnf-fence"), "{done}");
    // At the node's next join nothing stands: on succeeds touching nothing.
    let chained = n.chain().len();
    let kept = Nnf::names(&n.responses.join("unfenced"));
    assert_exit(&n.agent_with(on_allowed, &cib_env), 0);
    assert_eq!((n.chain().len(), Nnf::names(&n.responses.join("unfenced"))), (chained + 1, kept));
    assert_eq!(n.chain().pop().unwrap()["status"], "completed", "the on itself is recorded, as every action");
    assert_eq!(n.fences().len(), 1, "on never fenced");
}

/// Starts the agent with exactly `stdin` (no options of the test's own) and `env`, nothing else of
/// the test's environment that would change it.
fn spawn_bare(stdin: &str, env: &[(&str, &str)]) -> Child {
    use std::io::Write;
    let mut child = scrub(&mut Command::new(agent_bin()))
        .env_remove("NNF_FENCE_REQUEST_DIR")
        .env_remove("NNF_FENCE_RESPONSE_DIR")
        .env_remove("PCMK_service")
        .env_remove("SUDO_USER")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child
}

/// Runs [`spawn_bare`] to its end.
fn bare_agent(stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
    spawn_bare(stdin, env).wait_with_output().unwrap()
}

#[test]
fn upstream_recorder_devices_fence_through_nnf_sos_by_their_own_names_changing_only_the_agent() {
    let n = Nnf::new();
    let _nnf = n.start(0);
    let (req, resp, logs) = (path_str(&n.requests), path_str(&n.responses), path_str(&n.w.logs));
    // nnf-sos's pods set its directories in the environment; the agent runs beside them.
    let nnf_env = [("NNF_FENCE_REQUEST_DIR", req), ("NNF_FENCE_RESPONSE_DIR", resp)];
    // fence_dummy --type=recorder (ClusterLabs PR 647), as such a device is configured.
    let dummy = format!(
        "type=recorder\nport=compute-1\nrequest_path={req}\nresponse_path={resp}\nlog_path={logs}\n\
         recorder_timeout=30\nrecorder_poll_interval=0.5\nno_gfs2_discovery=1\n"
    );
    // NearNodeFlash's fence_recorder: our own names, its timeout in the environment.
    let recorder =
        format!("port=compute-1\nrequest_dir={req}\nresponse_dir={resp}\nlog_dir={logs}\nno_gfs2_discovery=1\n");
    for (device, env) in [(&dummy, vec![]), (&recorder, vec![("FENCE_TIMEOUT", "30")])] {
        let env: Vec<(&str, &str)> = nnf_env.iter().copied().chain(env).collect();
        let out = bare_agent(&format!("action=monitor\n{device}"), &env);
        assert_exit(&out, 0);
        assert!(text(&out.stderr).contains("responder=nnf-sos:"), "nnf-sos's directories: {}", text(&out.stderr));
        let fences = n.fences().len();
        let out = bare_agent(&format!("action=reboot\n{device}"), &env);
        assert_exit(&out, 0);
        assert_eq!(n.fences().len(), fences + 1, "fenced through nnf-sos: {}", text(&out.stderr));
        // status writes no request, as with responder=nnf-sos: nnf-sos would fence.
        let out = bare_agent(&format!("action=status\n{device}"), &env);
        assert_exit(&out, 2);
        assert_eq!(n.fences().len(), fences + 1, "status never fences");
    }
    // The same devices where the directories are not nnf-sos's: an external program of upstream's
    // generation (v2 names), which the stand-in also is.
    for device in [&dummy, &recorder] {
        let out = bare_agent(&format!("action=monitor\n{device}"), &[]);
        assert!(text(&out.stderr).contains("responder=external:"), "{}", text(&out.stderr));
        let fences = n.fences().len();
        assert_exit(&bare_agent(&format!("action=off\n{device}"), &[]), 0);
        assert_eq!(n.fences().len(), fences + 1);
        let name = n.fences().last().map(|(t, _)| t.clone()).unwrap();
        assert_eq!(name, "compute-1");
    }
    // Two names of one setting that disagree, and fence_dummy's file mode: refused before any request.
    let fences = n.fences().len();
    for (bad, named) in [
        (format!("{dummy}request_dir=/elsewhere\n"), "request_path"),
        (format!("{dummy}fence_timeout=20\n"), "recorder_timeout"),
        (dummy.replace("type=recorder", "type=file"), "type"),
    ] {
        let out = bare_agent(&format!("action=off\n{bad}"), &nnf_env);
        assert_exit(&out, 1);
        assert!(text(&out.stderr).contains(named), "{named}: {}", text(&out.stderr));
    }
    assert_eq!(n.fences().len(), fences, "no refused device fenced");
}

#[test]
fn a_success_that_detached_nothing_is_recorded_as_such_and_a_repeat_fence_as_already_fenced() {
    let n = Nnf::new();
    // compute-5 has GFS2 access from this rabbit but no storage group; compute-9 is unknown here.
    std::fs::write(&n.storage, r#"{"compute-1": ["sg-1a", "sg-1b"], "compute-5": []}"#).unwrap();
    let _nnf = n.start(0);
    let outcome = |node: &str| {
        let out = n.agent(&format!("action=off\nport={node}\n"));
        assert_exit(&out, 0);
        assert_eq!(text(&out.stdout).trim(), "Success: Powered OFF", "Pacemaker sees a success either way");
        let done = n.chain().into_iter().rev().find(|r| r["status"] == "completed").unwrap();
        (done["outcome"].as_str().unwrap_or_default().to_string(), text(&out.stderr))
    };
    let (o, err) = outcome("compute-1");
    assert_eq!(o, "storage-detached");
    assert!(!err.contains("detached nothing"), "{err}");
    // Fenced again before its storage came back: a repeat, named as one.
    let (o, err) = outcome("compute-1");
    assert_eq!(o, "already-fenced");
    assert!(!err.contains("detached nothing"), "{err}");
    // Nothing to detach: recorded as such, and said on stderr (which Pacemaker logs).
    for node in ["compute-9", "compute-5"] {
        let (o, err) = outcome(node);
        assert_eq!(o, "nothing-detached", "{node}");
        assert!(err.contains("detached nothing") && err.contains("pcmk_host_map"), "{node}: {err}");
    }
    let (_, timeline) = events(&n.w, &["timeline"]);
    for shown in ["completed (storage-detached)", "completed (already-fenced)", "completed (nothing-detached)"] {
        assert!(timeline.contains(shown), "{shown}: {timeline}");
    }
}

#[test]
fn monitor_and_validate_warn_of_targets_nnf_discovery_does_not_know() {
    use ha::discovery::run::SourceResult;
    use ha::discovery::snapshot::{Round, Snapshot};
    let n = Nnf::new();
    let _nnf = n.start(0);
    // The leader's discovery snapshot (watchers beside nnf-sos): Kubernetes knows compute-1 only.
    let spool = n.w.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let now = ha::os::clock::BootTime::now();
    let round = Round {
        taken: now,
        taken_rfc3339: ha::os::clock::rfc3339_now(),
        boot_id: ha::os::clock::boot_id().unwrap(),
        watcher_id: Some("w1".into()),
        epoch: Some(1),
        interval: Duration::from_secs(30),
        memory: Duration::from_secs(600),
    };
    let found = ha::discovery::Found {
        nodes: [("compute-1".to_string(), ["/gfs/a".to_string()].into())].into(),
        notes: vec![],
    };
    let result = SourceResult {
        source: ha::protocol::provenance::Source::Kubernetes,
        taken: round.taken_rfc3339.clone(),
        taken_boottime_ns: now.0,
        duration: Duration::from_millis(5),
        outcome: Ok(found),
    };
    let snap = Snapshot::update(None, &round, &[result]);
    std::fs::write(spool.join("discovery.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
    // The devices in the CIB: compute-7 is no compute node NNF knows (a pcmk_host_map typo, say).
    let cib = n.w.dir.path().join("cib.xml");
    std::fs::write(
        &cib,
        r#"<cib crm_feature_set="3.16.2" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration><crm_config/><nodes/><resources>
    <primitive id="nnf-fence" class="stonith" type="fence_gfs2_recorder"><instance_attributes id="i">
      <nvpair id="i1" name="responder" value="nnf-sos"/><nvpair id="i2" name="pcmk_host_map" value="node-1:compute-1;node-7:compute-7"/>
    </instance_attributes></primitive>
  </resources><constraints/></configuration><status/></cib>"#,
    )
    .unwrap();
    let env = [("CIB_file", path_str(&cib)), ("GFS2_FENCE_SPOOL_DIR", path_str(&spool))];
    let out = n.agent_with("action=monitor\n", &env);
    assert_exit(&out, 0);
    let err = text(&out.stderr);
    assert!(err.contains("knows no compute node named compute-7") && !err.contains("compute-1,"), "{err}");
    let out = n.agent_with("action=validate-all\nport=compute-8\n", &env);
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("compute-7, compute-8"), "{}", text(&out.stderr));
    // Every target known: nothing said.
    let out = n.agent_with("action=validate-all\nport=compute-1\n", &[env[1]]);
    assert!(!text(&out.stderr).contains("knows no compute node"), "{}", text(&out.stderr));
}
