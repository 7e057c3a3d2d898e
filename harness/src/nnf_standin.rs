//! A stand-in for nnf-sos's fence responder, for tests and the benchmark: nnf-sos needs Kubernetes
//! and Rabbit hardware, which cannot run here. Written from nnf-sos's behaviour as its code shows it
//! (its `pkg/fence` and the NnfNode / NnfNodeBlockStorage controllers), not from its code:
//! - directories from `NNF_FENCE_REQUEST_DIR` / `NNF_FENCE_RESPONSE_DIR` (or the flags), else
//!   `/localdisk/fence-recorder/{requests,responses}`, created 0755; file names are never parsed;
//! - **every request is a fence, whatever its `action`**: the node's storage groups are "deleted"
//!   (a line per fence in the ledger, which is what tests check) and the fence acknowledged to the
//!   DLM whether or not the deletion succeeded;
//! - a request created in (or renamed into) the request directory, hidden names skipped, and at
//!   start every name not hidden that is not a directory, is read as the NnfNode controller reads it:
//!   for a node without storage it is answered in place at once (create, then write:
//!   `--in-place-pause-ms` holds the empty file that long, as a slow write would), `status:
//!   "success"`, `action_performed: "off"`, and removed; for a node with storage it triggers a
//!   block-storage reconcile;
//! - a **block-storage reconcile** (at start, after such a request, on SIGHUP — standing for the
//!   reconciles nnf-sos runs for unrelated reasons — and every `--reconcile-interval-ms` when set)
//!   first re-creates the storage groups of every node with storage that no success answer
//!   (`success: true`, every top-level `*.json` that is not a directory, hidden ones included) holds
//!   fenced, then reads every such `*.json` in the request directory, hidden ones included: a request
//!   for a node with storage whose same-named answer exists is removed unanswered (nnf-sos's clean-up
//!   of one left behind); any other is fenced: answered under the request's own name through
//!   `.<name>.tmp` and a rename, keys sorted and indented, `timestamp` copied from the request,
//!   `action_performed: "off"`, on failure `success: false`, `action_performed: ""` and a message
//!   naming the storage groups; then the request is removed. So a request left for a node whose
//!   answer is gone is fenced again. The success message says what was deleted, in nnf-sos's words:
//!   "by deleting N GFS2 storage groups", "(0 deleted, N already deleted)" for a node fenced again
//!   before its storage came back, "No GFS2 storage groups found for compute nodes …" for a node
//!   listed with no group;
//! - the compute's status (`Fenced` while an answer with `success: true` or `status: "success"`
//!   stands, else `Ready`) is updated at start and on a Write or Remove event in the response
//!   directory only: a rename out of it goes unseen until the next such event.
//!
//! Storage per node comes from a JSON file re-read at each use: `{"node": ["group", …]}` (a node
//! listed has GFS2 access from this rabbit, with those groups, possibly none), a node listed with
//! `"fail"` as its first group fails to delete; a node not listed has no block storage here. `--state` is a JSON file the stand-in
//! rewrites (atomically) after each change: `{"attached": {node: [groups]}, "servers": {node:
//! "Fenced"|"Ready"}, "reconciles": n}` — what tests read of nnf-sos's view. Stops at SIGTERM or
//! SIGINT.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::Deserialize;

/// What the stand-in is told.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "nnf-sos-standin", about = "A stand-in for nnf-sos's fence responder (tests only)")]
pub struct Config {
    /// nnf-sos's request directory.
    #[arg(long, env = "NNF_FENCE_REQUEST_DIR", default_value = "/localdisk/fence-recorder/requests")]
    pub requests: PathBuf,
    /// nnf-sos's response directory.
    #[arg(long, env = "NNF_FENCE_RESPONSE_DIR", default_value = "/localdisk/fence-recorder/responses")]
    pub responses: PathBuf,
    /// The storage file (node → storage groups), re-read at each use.
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// One JSON line per fence: `{"target", "request_file", "action", "groups", "success"}`.
    #[arg(long)]
    pub ledger: PathBuf,
    /// Where the stand-in keeps its view: storage attached per node, each compute's status.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Milliseconds an in-place answer stays empty between its create and its write.
    #[arg(long = "in-place-pause-ms", default_value = "0", value_parser = |s: &str| s.parse().map(Duration::from_millis))]
    pub in_place_pause: Duration,
    /// Milliseconds between block-storage reconciles (0: only at start, after requests and on SIGHUP).
    #[arg(long = "reconcile-interval-ms", default_value = "0", value_parser = |s: &str| s.parse().map(Duration::from_millis))]
    pub reconcile_interval: Duration,
    /// For the benchmark: one line per answer, `<request file> <CLOCK_BOOTTIME ns>`, written the
    /// moment the answer is complete (renamed into place, or written in place and closed).
    #[arg(long)]
    pub answered: Option<PathBuf>,
}

/// What nnf-sos reads of a request.
#[derive(Debug, Deserialize)]
struct FenceRequest {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target_node: String,
    #[serde(default)]
    recorder_node: String,
}

/// What nnf-sos reads of an answer.
#[derive(Debug, Deserialize)]
struct FenceAnswer {
    #[serde(default)]
    target_node: String,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    status: String,
}

/// nnf-sos's view, as far as tests look at it.
#[derive(Debug, Default)]
struct Standin {
    /// Storage groups attached per node.
    attached: BTreeMap<String, Vec<String>>,
    /// Each compute's status.
    servers: BTreeMap<String, &'static str>,
    /// Block-storage reconciles run.
    reconciles: u64,
}

/// Notes that the answer to `name` is complete, if the benchmark asked ([`Config::answered`]).
fn note_answered(cfg: &Config, name: &str) {
    let now = ha::os::clock::BootTime::now().0;
    let Some(path) = &cfg.answered else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{name} {now}");
    }
}

fn allocations(cfg: &Config) -> BTreeMap<String, Vec<String>> {
    let Some(path) = &cfg.storage else { return BTreeMap::new() };
    let map: BTreeMap<String, Vec<String>> =
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    map
}

fn append_ledger(cfg: &Config, line: serde_json::Value) {
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&cfg.ledger) {
        let _ = f.write_all(&bytes);
    }
}

/// Every top-level `*.json` of `dir` that is not a directory, hidden names included, as nnf-sos's
/// reconciles read them.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".json")))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The nodes the success answers hold fenced: by `success` only (`checkComputeFenced`, which keeps
/// storage away), or by `success` or `status: "success"` (`checkFencedStatus`, the compute's status).
fn fenced(cfg: &Config, success_only: bool) -> BTreeSet<String> {
    json_files(&cfg.responses)
        .iter()
        .filter_map(|p| serde_json::from_slice::<FenceAnswer>(&std::fs::read(p).ok()?).ok())
        .filter(|a| a.success || (!success_only && a.status == "success"))
        .map(|a| a.target_node)
        .collect()
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_none_or(|n| n.starts_with('.'))
}

impl Standin {
    fn save(&self, cfg: &Config) {
        let Some(path) = &cfg.state else { return };
        let body =
            serde_json::json!({"attached": self.attached, "servers": self.servers, "reconciles": self.reconciles});
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, body.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }

    /// The NnfNode reconcile's part: each compute's status from the answers standing.
    fn update_status(&mut self, cfg: &Config) {
        let fenced = fenced(cfg, false);
        for node in allocations(cfg).into_keys() {
            let status = if fenced.contains(&node) { "Fenced" } else { "Ready" };
            if self.servers.insert(node.clone(), status) != Some(status) {
                eprintln!("nnf-sos stand-in: compute {node} is {status}");
            }
        }
        self.save(cfg);
    }

    /// A block-storage reconcile: storage re-created where no answer holds it away, then the
    /// pending requests of nodes with storage fenced.
    fn reconcile(&mut self, cfg: &Config) {
        self.reconciles += 1;
        let allocated = allocations(cfg);
        let fenced = fenced(cfg, true);
        for (node, groups) in &allocated {
            if !self.attached.contains_key(node) && !fenced.contains(node) {
                let usable: Vec<String> = groups.iter().filter(|g| *g != "fail").cloned().collect();
                eprintln!("nnf-sos stand-in: storage of {node} created: {usable:?}");
                self.attached.insert(node.clone(), usable);
            }
        }
        for path in json_files(&cfg.requests) {
            let Some(req) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<FenceRequest>(&b).ok())
            else {
                continue;
            };
            let Some(groups) = allocated.get(&req.target_node) else { continue };
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if cfg.responses.join(&name).exists() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            self.fence(cfg, &path, &name, &req, groups);
        }
        self.save(cfg);
    }

    /// Fences one request's node: its storage deleted, the DLM told, the answer renamed into place.
    fn fence(&mut self, cfg: &Config, path: &Path, name: &str, req: &FenceRequest, groups: &[String]) {
        let fails = groups.first().is_some_and(|g| g == "fail");
        append_ledger(
            cfg,
            serde_json::json!({"target": req.target_node, "request_file": name, "action": req.action,
                               "groups": groups, "success": !fails}),
        );
        // Deleted by an earlier fence, and not re-created since: nnf-sos finds them already deleted.
        let already_deleted = !self.attached.contains_key(&req.target_node);
        if !fails {
            self.attached.remove(&req.target_node);
        }
        let (success, performed, message) = if groups.is_empty() {
            let none = format!(
                "No GFS2 storage groups found for compute nodes [{}] (already fenced or no GFS2 access)",
                req.target_node
            );
            (true, "off", none)
        } else if fails {
            (
                false,
                "",
                format!(
                    "Failed to fence node: could not delete any storage groups. Errors: {}",
                    groups[1..].join("; ")
                ),
            )
        } else if already_deleted {
            (true, "off", format!("Successfully fenced node (0 deleted, {} already deleted)", groups.len()))
        } else {
            (true, "off", format!("Successfully fenced node by deleting {} GFS2 storage groups", groups.len()))
        };
        // serde_json's map is sorted, as Go's marshalling of a map is.
        let body = serde_json::json!({
            "request_id": req.request_id, "timestamp": req.timestamp, "action": req.action,
            "target_node": req.target_node, "recorder_node": req.recorder_node, "success": success,
            "message": message, "action_performed": performed,
        });
        let tmp = cfg.responses.join(format!(".{name}.tmp"));
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, cfg.responses.join(name)).is_ok() {
            note_answered(cfg, name);
            let _ = std::fs::remove_file(path);
        }
    }

    /// A request seen created: answered in place for a node without storage, else a reconcile.
    fn on_request(&mut self, cfg: &Config, path: &Path) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { return };
        let Ok(bytes) = std::fs::read(path) else { return };
        let Ok(req) = serde_json::from_slice::<FenceRequest>(&bytes) else {
            eprintln!("nnf-sos stand-in: cannot parse {}", path.display());
            return;
        };
        if allocations(cfg).contains_key(&req.target_node) {
            return self.reconcile(cfg);
        }
        append_ledger(
            cfg,
            serde_json::json!({"target": req.target_node, "request_file": name, "action": req.action,
                               "groups": [], "success": true}),
        );
        let body = serde_json::json!({
            "request_id": req.request_id, "status": "success", "success": true,
            "message": "No block storage resources found to fence", "timestamp": ha::os::clock::rfc3339_now(),
            "target_node": req.target_node, "action": req.action, "recorder_node": req.recorder_node,
            "action_performed": "off",
        });
        let Ok(mut f) = std::fs::File::create(cfg.responses.join(&name)) else { return };
        std::thread::sleep(cfg.in_place_pause);
        let _ = f.write_all(body.to_string().as_bytes());
        drop(f);
        note_answered(cfg, &name);
        let _ = std::fs::remove_file(path);
    }
}

/// Runs until SIGTERM or SIGINT.
pub fn run(cfg: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for d in [&cfg.requests, &cfg.responses] {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(d)?;
    }
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block()?;
    let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    let requests = inotify.add_watch(&cfg.requests, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)?;
    inotify.add_watch(&cfg.responses, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_DELETE)?;
    let mut nnf = Standin::default();
    nnf.update_status(cfg);
    nnf.reconcile(cfg);
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&cfg.requests)?
        .flatten()
        .filter(|e| !hidden(&e.file_name()) && e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .collect();
    existing.sort();
    for path in existing {
        nnf.on_request(cfg, &path);
    }
    // Tests wait for this line before they count on the start-up scan being over.
    eprintln!("nnf-sos stand-in: watching {}", cfg.requests.display());
    let timeout = match cfg.reconcile_interval {
        d if d.is_zero() => PollTimeout::NONE,
        d => PollTimeout::try_from(d.as_millis() as i32).unwrap_or(PollTimeout::MAX),
    };
    loop {
        let mut fds =
            [PollFd::new(inotify.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, timeout)? == 0 {
            nnf.reconcile(cfg);
            continue;
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            match signals.read_signal()?.map(|s| s.ssi_signo as i32) {
                Some(n) if n == Signal::SIGHUP as i32 => nnf.reconcile(cfg),
                _ => return Ok(()),
            }
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            let mut status_due = false;
            for event in inotify.read_events()? {
                if event.wd != requests {
                    status_due = true;
                } else if let Some(name) = event.name.filter(|n| !hidden(n)) {
                    nnf.on_request(cfg, &cfg.requests.join(name));
                }
            }
            if status_due {
                nnf.update_status(cfg);
            }
        }
    }
}
