//! A stand-in for nnf-sos's fence responder, for tests and the benchmark: nnf-sos needs Kubernetes
//! and Rabbit hardware, which cannot run here. Written from nnf-sos's documented behaviour (its
//! `pkg/fence` and the NnfNode / NnfNodeBlockStorage controllers), not from its code:
//! - directories from `NNF_FENCE_REQUEST_DIR` / `NNF_FENCE_RESPONSE_DIR` (or the flags), else
//!   `/localdisk/fence-recorder/{requests,responses}`, created 0755; file names are never parsed;
//! - at start every non-hidden file already in the request directory is processed (however old),
//!   then every file created or renamed into it (hidden names skipped);
//! - **every request is a fence, whatever its `action`**: the node's storage groups are "deleted"
//!   (a line per fence in the ledger, which is what tests check);
//! - a node with storage is answered under the request's own name through `.<name>.tmp` and a
//!   rename, keys sorted and indented, `timestamp` copied from the request, `action_performed: "off"`;
//!   on failure `success: false`, `action_performed: ""` and a message naming the storage groups;
//! - a node without storage is answered in place (create, then write: `--in-place-pause-ms` holds the
//!   empty file that long, as a slow write would), `status: "success"`, `action_performed: "off"`;
//! - then the request is deleted; a request whose answer already exists is deleted unanswered.
//!
//! Storage per node comes from a JSON file re-read at each request: `{"node": ["group", …]}`, a
//! node listed with `"fail"` as its first group fails to delete. Stops at SIGTERM or SIGINT.

use std::collections::BTreeMap;
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
    /// The storage file (node → storage groups), re-read at each request.
    #[arg(long)]
    pub storage: Option<PathBuf>,
    /// One JSON line per fence: `{"target", "request_file", "action", "groups", "success"}`.
    #[arg(long)]
    pub ledger: PathBuf,
    /// Milliseconds an in-place answer stays empty between its create and its write.
    #[arg(long = "in-place-pause-ms", default_value = "0", value_parser = |s: &str| s.parse().map(Duration::from_millis))]
    pub in_place_pause: Duration,
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

fn storage_of(cfg: &Config, node: &str) -> Vec<String> {
    let Some(path) = &cfg.storage else { return Vec::new() };
    let map: BTreeMap<String, Vec<String>> =
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    map.get(node).cloned().unwrap_or_default()
}

fn append_ledger(cfg: &Config, line: serde_json::Value) {
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&cfg.ledger) {
        let _ = f.write_all(&bytes);
    }
}

/// Processes one request file as nnf-sos would.
pub fn process(cfg: &Config, path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { return };
    let Ok(bytes) = std::fs::read(path) else { return };
    let Ok(req) = serde_json::from_slice::<FenceRequest>(&bytes) else {
        eprintln!("nnf-sos stand-in: cannot parse {}", path.display());
        return;
    };
    let answer = cfg.responses.join(&name);
    if answer.exists() {
        let _ = std::fs::remove_file(path);
        return;
    }
    let groups = storage_of(cfg, &req.target_node);
    let fails = groups.first().is_some_and(|g| g == "fail");
    append_ledger(
        cfg,
        serde_json::json!({"target": req.target_node, "request_file": name, "action": req.action,
                           "groups": groups, "success": !fails}),
    );
    if groups.is_empty() {
        let body = serde_json::json!({
            "request_id": req.request_id, "status": "success", "success": true,
            "message": "No block storage resources found to fence", "timestamp": ha::os::clock::rfc3339_now(),
            "target_node": req.target_node, "action": req.action, "recorder_node": req.recorder_node,
            "action_performed": "off",
        });
        let Ok(mut f) = std::fs::File::create(&answer) else { return };
        std::thread::sleep(cfg.in_place_pause);
        let _ = f.write_all(body.to_string().as_bytes());
        drop(f);
    } else {
        let (success, performed, message) = if fails {
            (
                false,
                "",
                format!(
                    "Failed to fence node: could not delete any storage groups. Errors: {}",
                    groups[1..].join("; ")
                ),
            )
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
        if std::fs::write(&tmp, text).is_err() || std::fs::rename(&tmp, &answer).is_err() {
            return;
        }
    }
    let _ = std::fs::remove_file(path);
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_none_or(|n| n.starts_with('.'))
}

/// Runs until SIGTERM or SIGINT.
pub fn run(cfg: &Config) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for d in [&cfg.requests, &cfg.responses] {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(d)?;
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()?;
    let signals = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(&cfg.requests, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)?;
    let mut existing: Vec<PathBuf> = std::fs::read_dir(&cfg.requests)?
        .flatten()
        .filter(|e| !hidden(&e.file_name()) && e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .collect();
    existing.sort();
    for path in existing {
        process(cfg, &path);
    }
    // Tests wait for this line before they count on the start-up scan being over.
    eprintln!("nnf-sos stand-in: watching {}", cfg.requests.display());
    loop {
        let mut fds =
            [PollFd::new(inotify.as_fd(), PollFlags::POLLIN), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE)?;
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        for event in inotify.read_events()? {
            if let Some(name) = event.name.filter(|n| !hidden(n)) {
                process(cfg, &cfg.requests.join(name));
            }
        }
    }
}
