//! The agent's three logs in `log_dir`, and the tracing layer behind the operational one.
//!
//! - `fence-events.log`: operational, `[YYYY-MM-DD HH:MM:SS] [LEVEL] msg` (the original's format),
//!   written by [`OpsLayer`] from `tracing` events.
//! - `fence-events-readable.log`: byte-compatible with the original:
//!   `[YYYY-MM-DD HH:MM:SS] ACTION=… TARGET=… GFS2=[…] STATUS=… DETAILS=…`.
//! - `fence-events-detailed.jsonl`: the original keys first, then `request_id` and later additions,
//!   then the audit chain's `seq`, `prev_hash`, `hash` (see `ha::audit`; appended under the log's
//!   lock, waited for at most 100 ms, and anchored in syslog),
//!   in Python's `json.dumps` spacing.
//!
//! Many agents append at once: every record is a single `write(2)` on an `O_APPEND` descriptor, so
//! lines never interleave. Files are created 0600 in a 0700 directory. Logging never delays or
//! changes a fence: a directory or file that cannot be written is reported as a warning and the
//! fence goes on.
//!
//! Stderr (which Pacemaker logs as warnings) gets warnings, and with `--verbose` the info and debug
//! events too; never errors: the agent's final `Failed: …` line says those once.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use ha::audit::log::{Appended, ChainedLog};
use ha::protocol::provenance::Provenance;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// A fence event's status in the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The request was published.
    Requested,
    /// The watchers answered success.
    Completed,
    /// Anything else.
    Failed,
    /// An unfence is about to move a fence's records (`crate::unfence`).
    Unfencing,
    /// An unfence moved them: the node is no longer held fenced.
    Unfenced,
}

impl Status {
    /// The name written in the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Unfencing => "unfencing",
            Status::Unfenced => "unfenced",
        }
    }
}

/// One fence event.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The action Pacemaker asked for.
    pub action: &'a str,
    /// The target plug.
    pub target_node: &'a str,
    /// The GFS2 file systems involved (or the original markers).
    pub gfs2: &'a [String],
    /// How they were found.
    pub gfs2_discovery: Option<&'a Provenance>,
    /// The status.
    pub status: Status,
    /// Free text.
    pub details: &'a str,
    /// The request id, once there is one.
    pub request_id: Option<&'a str>,
    /// Pacemaker's node name.
    pub nodename: Option<&'a str>,
    /// The response's outcome.
    pub outcome: Option<&'a str>,
    /// The watcher that answered.
    pub watcher_id: Option<&'a str>,
    /// Time from the agent's start.
    pub elapsed_ms: Option<u64>,
}

pub use ha::audit::record::EventRecord;

/// A readable-log line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadableRecord {
    /// Local time, `YYYY-MM-DD HH:MM:SS`.
    pub stamp: String,
    /// The action.
    pub action: String,
    /// The target.
    pub target_node: String,
    /// GFS2 file systems or markers.
    pub gfs2: Vec<String>,
    /// The status.
    pub status: String,
    /// Free text (newlines were written as spaces).
    pub details: String,
}

/// Why a readable-log line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a fence-events-readable.log line: {0}")]
pub struct LogParseError(pub &'static str);

/// Parses one line of `fence-events-readable.log` (the trailing newline is optional).
pub fn parse_readable(line: &str) -> Result<ReadableRecord, LogParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let rest = line.strip_prefix('[').ok_or(LogParseError("no [timestamp]"))?;
    let (stamp, rest) = rest.split_once("] ACTION=").ok_or(LogParseError("no ACTION="))?;
    let (action, rest) = rest.split_once(" TARGET=").ok_or(LogParseError("no TARGET="))?;
    let (target, rest) = rest.split_once(" GFS2=").ok_or(LogParseError("no GFS2="))?;
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Vec<String>>();
    let gfs2 = match values.next() {
        Some(Ok(v)) => v,
        _ => return Err(LogParseError("GFS2= is not a JSON list of strings")),
    };
    let rest = &rest[values.byte_offset()..];
    let rest = rest.strip_prefix(" STATUS=").ok_or(LogParseError("no STATUS="))?;
    let (status, details) = rest.split_once(" DETAILS=").ok_or(LogParseError("no DETAILS="))?;
    Ok(ReadableRecord {
        stamp: stamp.to_string(),
        action: action.to_string(),
        target_node: target.to_string(),
        gfs2,
        status: status.to_string(),
        details: details.to_string(),
    })
}

/// The readable line, byte-compatible with the original recorder.
pub fn readable_line(stamp: &str, e: &Event<'_>) -> String {
    ha::audit::record::readable_line(stamp, e.action, e.target_node, e.gfs2, e.status.as_str(), e.details)
}

/// The JSONL line, unsealed.
pub fn json_line(utc: String, recorder_node: &str, e: &Event<'_>) -> String {
    event_record(utc, recorder_node, e).line()
}

/// The JSONL record of an event (without chain fields).
pub fn event_record(utc: String, recorder_node: &str, e: &Event<'_>) -> EventRecord {
    let owned = |s: Option<&str>| s.map(str::to_string);
    EventRecord {
        timestamp: utc,
        action: e.action.to_string(),
        target_node: e.target_node.to_string(),
        gfs2_filesystems: e.gfs2.to_vec(),
        status: e.status.as_str().to_string(),
        details: e.details.to_string(),
        recorder_node: recorder_node.to_string(),
        pacemaker_action: e.action.to_string(),
        request_id: owned(e.request_id),
        nodename: owned(e.nodename),
        outcome: owned(e.outcome),
        watcher_id: owned(e.watcher_id),
        elapsed_ms: e.elapsed_ms,
        gfs2_discovery: e.gfs2_discovery.cloned(),
        cluster: None,
        source: None,
        alert: None,
        unfence: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }
}

/// The readable and JSONL logs.
#[derive(Debug)]
pub struct EventLog {
    readable: Option<File>,
    jsonl: Option<ChainedLog>,
    recorder_node: String,
    /// The Pacemaker cluster's name (`GFS2_FENCE_CLUSTER_NAME` or corosync.conf), for every record.
    cluster: Option<String>,
}

/// The readable log's file name.
const READABLE: &str = "fence-events-readable.log";
/// The detailed (chained) log's file name.
const DETAILED: &str = "fence-events-detailed.jsonl";

/// Whether a fence could record itself in `dir`, creating nothing (what `monitor` checks): the
/// directory is private to this user and takes a new file, and the logs already there (and the
/// chain's lock) open for appending; a directory still missing can be made (tried, then removed).
pub fn check_recordable(dir: &Path) -> Result<(), String> {
    match dir.symlink_metadata() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The first fence creates it (not its parents): tried here, and removed at once.
            let made = std::fs::DirBuilder::new().mode(0o700).create(dir);
            made.and_then(|()| std::fs::remove_dir(dir))
                .map_err(|e| format!("{} does not exist, and the first fence cannot create it: {e}", dir.display()))
        }
        Err(e) => Err(format!("cannot stat {}: {e}", dir.display())),
        Ok(_) => {
            ha::spool::ensure_private_dir(dir, false).map_err(|e| e.to_string())?;
            ha::fsio::probe_writable(dir).map_err(|e| e.to_string())?;
            let lock = format!("{DETAILED}.lock");
            for name in [READABLE, DETAILED, &lock] {
                let path = dir.join(name);
                if path.symlink_metadata().is_ok() {
                    ha::fsio::open_append(&path)
                        .map_err(|e| format!("cannot open {} to append: {e}", path.display()))?;
                }
            }
            Ok(())
        }
    }
}

impl EventLog {
    /// Opens the two event logs in `dir` (creating it 0700). Problems become warnings.
    pub fn open(dir: &Path) -> EventLog {
        let recorder_node = ha::os::host::name();
        // No tools at fence time: the setting or corosync's file, a read of a few hundred bytes.
        let cluster = match ha::discovery::cluster_name::find(&|k| std::env::var(k).ok(), None) {
            Ok(found) => found.map(|(name, _)| name),
            Err(e) => {
                tracing::warn!("records name no cluster: {e}");
                None
            }
        };
        let usable = match ha::spool::ensure_private_dir(dir, true) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("fence event logs disabled: {e}");
                false
            }
        };
        let open = |name: &str| {
            let path = dir.join(name);
            match usable.then(|| ha::fsio::open_append(&path)) {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => {
                    tracing::warn!("cannot open {}: {e}; fence events are not recorded there", path.display());
                    None
                }
                None => None,
            }
        };
        EventLog {
            readable: open(READABLE),
            jsonl: usable.then(|| dir.join(DETAILED)).and_then(|path| match ChainedLog::open(&path) {
                Ok(log) => Some(log),
                Err(e) => {
                    tracing::warn!("cannot open {}: {e}; fence events are not recorded there", path.display());
                    None
                }
            }),
            recorder_node,
            cluster,
        }
    }

    /// The host name records carry.
    pub fn recorder_node(&self) -> &str {
        &self.recorder_node
    }

    /// Appends one event to both logs, and an info line to the operational log.
    pub fn record(&self, e: &Event<'_>) {
        // A fence goes on whatever the logs say: problems were warned of.
        let _ = self.write(e, None);
    }

    /// Appends an unfence's event (see `crate::unfence`) like [`EventLog::record`]; unlike a fence's,
    /// it fails when the detailed log could not take it: an unfence is done only once recorded.
    pub fn record_unfence(&self, e: &Event<'_>, u: &ha::audit::record::Unfence) -> Result<(), String> {
        self.write(e, Some(u))
    }

    fn write(&self, e: &Event<'_>, unfence: Option<&ha::audit::record::Unfence>) -> Result<(), String> {
        let stamp = ha::os::clock::local_log_stamp();
        let readable = readable_line(&stamp, e);
        if let Some(f) = &self.readable {
            if let Err(err) = ha::fsio::append_record(f, readable.as_bytes()) {
                tracing::warn!("cannot append to fence-events-readable.log: {err}");
            }
        }
        let mut record = event_record(ha::os::clock::rfc3339_now(), &self.recorder_node, e);
        record.cluster = self.cluster.clone();
        record.unfence = unfence.cloned();
        let written = match &self.jsonl {
            Some(log) => match record.append_to(log, &readable) {
                Ok(Appended::Chained(_)) => Ok(()),
                Ok(Appended::Unchained(why)) => {
                    tracing::warn!("fence event recorded outside the audit chain in {}: {why}", log.path().display());
                    Ok(())
                }
                Err(err) => {
                    tracing::warn!("cannot append to {}: {err}", log.path().display());
                    Err(format!("cannot append to {}: {err}", log.path().display()))
                }
            },
            // No usable log directory: the journal still gets the record.
            None => {
                record.send_to_journal(&record.line(), None, &readable);
                Err("the fence event log directory is not usable (see the warning above)".to_string())
            }
        };
        tracing::info!(
            "Recorded fence event: action={}, target={}, status={}",
            e.action,
            e.target_node,
            e.status.as_str()
        );
        written
    }
}

/// Where operational messages go.
pub struct OpsLayer {
    ops: Option<File>,
    debug: Option<File>,
    stderr_max: Option<Level>,
    file_max: Level,
    /// Set once a failed append to the operational log was reported on stderr.
    reported_failure: AtomicBool,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            self.0.push_str(&format!(" {}={value}", field.name()));
        }
    }
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl OpsLayer {
    /// Opens the operational log (and the debug file, if any). Returns the layer and the warnings
    /// to report once tracing is installed. Without `create` a missing directory is not made (the
    /// log is then not written).
    pub fn new(
        ops_log: &Path,
        debug_file: Option<&Path>,
        verbose: bool,
        quiet: bool,
        create: bool,
    ) -> (OpsLayer, Vec<String>) {
        let mut warnings = Vec::new();
        let mut open = |p: &Path| {
            if let Some(parent) = p.parent() {
                if !create && parent.symlink_metadata().is_err() {
                    return None;
                }
                if let Err(e) = ha::spool::ensure_private_dir(parent, create) {
                    warnings.push(format!("operational log disabled: {e}"));
                    return None;
                }
            }
            ha::fsio::open_append(p).map_err(|e| warnings.push(format!("cannot open {}: {e}", p.display()))).ok()
        };
        let ops = open(ops_log);
        let debug = debug_file.and_then(&mut open);
        let stderr_max = match (verbose, quiet) {
            (true, _) => Some(Level::DEBUG),
            (false, true) => None,
            (false, false) => Some(Level::WARN),
        };
        let file_max = if verbose { Level::DEBUG } else { Level::INFO };
        (OpsLayer { ops, debug, stderr_max, file_max, reported_failure: AtomicBool::new(false) }, warnings)
    }
}

impl<S: Subscriber> Layer<S> for OpsLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let line = format!("[{}] [{}] {}\n", ha::os::clock::local_log_stamp(), level_name(level), msg.0);
        if *level <= self.file_max {
            if let Some(f) = &self.ops {
                if let Err(e) = ha::fsio::append_record(f, line.as_bytes()) {
                    if !self.reported_failure.swap(true, Ordering::Relaxed) {
                        eprintln!("WARNING: cannot append to the operational log: {e}");
                    }
                }
            }
        }
        if let Some(f) = &self.debug {
            let _ = ha::fsio::append_record(f, line.as_bytes());
        }
        if *level != Level::ERROR && self.stderr_max.is_some_and(|max| *level <= max) {
            eprintln!("{}: {}", level_name(level), msg.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(gfs2: &'a [String]) -> Event<'a> {
        Event {
            action: "reboot",
            target_node: "compute-node-3",
            gfs2,
            gfs2_discovery: None,
            status: Status::Requested,
            details: "Fence action reboot requested\nby Pacemaker",
            request_id: Some("id"),
            nodename: None,
            outcome: None,
            watcher_id: None,
            elapsed_ms: None,
        }
    }

    #[test]
    fn readable_line_is_byte_compatible_with_the_original() {
        let fs = vec!["nnf-storage-1".to_string(), "nnf-storage-4".to_string()];
        assert_eq!(
            readable_line("2025-01-10 14:23:16", &event(&fs)),
            "[2025-01-10 14:23:16] ACTION=reboot TARGET=compute-node-3 GFS2=[\"nnf-storage-1\", \"nnf-storage-4\"] \
             STATUS=requested DETAILS=Fence action reboot requested by Pacemaker\n"
        );
    }

    #[test]
    fn json_line_starts_with_the_original_keys_in_order() {
        let line = json_line("2025-01-10T14:23:16Z".into(), "rabbit-1", &event(&[]));
        assert!(line.starts_with(
            "{\"timestamp\": \"2025-01-10T14:23:16Z\", \"action\": \"reboot\", \"target_node\": \"compute-node-3\", \
             \"gfs2_filesystems\": [], \"status\": \"requested\", \"details\": \"Fence action reboot requested\\nby Pacemaker\", \
             \"recorder_node\": \"rabbit-1\", \"pacemaker_action\": \"reboot\", \"request_id\": \"id\"}"
        ), "{line}");
    }
}
