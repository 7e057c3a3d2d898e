//! The audited way back from an nnf-sos fence: nnf-sos's record of the fence (the success answers
//! standing for the node, `crate::standing`) moved out of its response directory, kept, and the
//! move recorded in the audit chain.
//!
//! nnf-sos re-creates a node's storage groups only while no success answer for it stands, and only
//! at a later block-storage reconcile; it shows the compute `Fenced` until an NnfNode reconcile,
//! which it runs on a Write or Remove event in the response directory, not on a rename out of it.
//! So each record is hard-linked into `unfenced/` of the response directory, that directory fsynced,
//! then the original unlinked (the Remove event) and the response directory fsynced
//! (`ha::fsio::keep_aside`): a crash leaves the record at one name or both, never lost, and a new
//! unfence finishes the move. Records are never deleted.
//!
//! Order, each step for a reason ([`run`]):
//! 1. See the plug's records, the requests naming it and the agents waiting for a fence of it
//!    ([`plan`] decides): no record → nothing is touched (Pacemaker's `on` at every join lands
//!    here); a fence pending or waited for → refused, nothing moves.
//! 2. Take the unfence lock (`unfenced/.lock`, an exclusive flock, waited for), see again and decide
//!    again: two unfences of one node never interleave, and the second finds nothing left.
//! 3. Record `unfencing` (who, why, which files): an unfence that cannot be recorded does not happen.
//! 4. Set aside the requests nnf-sos left behind answered by those records (`.unfenced/` of the
//!    request directory, hidden so that nnf-sos's request watcher ignores the new directory), or
//!    nnf-sos would fence the node again at its next reconcile.
//! 5. Move exactly the records listed (by device and inode: a record written since is left standing).
//! 6. Record `unfenced` with where each file is kept; a record that now stands for the node (a fence
//!    since the listing) makes the unfence fail, saying so.
//!
//! Holds [`plan`] (the decision, no I/O), [`who`] (who unfences) and [`allowed`] (whether
//! Pacemaker's `on` may unfence, from the CIB). Locks: `unfenced/.lock` (flock, for the whole
//! unfence); holder locks of agents are only probed.

pub mod plan;
pub mod who;
pub mod allowed;

use std::path::{Path, PathBuf};

use ha::audit::record::{Kept, Unfence};
use ha::fsio::{self, lock, KeptAside};
use ha::protocol::names;

use crate::exchange::Exchange;
use crate::failure::Failure;
use crate::logs::{Event, EventLog, Status};
use crate::standing::{self, Standing};
use plan::{Plan, Seen, SeenRequest};

/// Where the records an unfence moved are kept, in the response directory.
pub const KEPT_DIR: &str = "unfenced";
/// Where requests set aside are kept, in the request directory (hidden: see step 4).
pub const SET_ASIDE_DIR: &str = ".unfenced";

/// How an unfence ended, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No record stood for the plug: nothing was touched.
    Nothing,
    /// A fence of the plug is pending or asked for; the text says which and what to do.
    Refused(String),
    /// The records were moved; the record of the unfence says where.
    Unfenced(Unfence),
}

/// What to unfence and how to record it.
#[derive(Debug, Clone)]
pub struct Order<'a> {
    /// nnf-sos's directories.
    pub exchange: &'a Exchange,
    /// Where the audit chain is.
    pub log_dir: &'a Path,
    /// The plug whose records go.
    pub plug: &'a str,
    /// Pacemaker's name of the node, when known.
    pub nodename: Option<&'a str>,
    /// Who and why (`who::now`).
    pub who: Unfence,
}

/// Whether nnf-sos may read the request directory's entry `name` as a request: its block-storage
/// reconcile reads every `*.json`, hidden ones too; its start-up scan every name not hidden.
fn named_as_request(name: &str) -> bool {
    name.ends_with(".json") || !name.starts_with('.')
}

/// What the unfence of `plug` sees now in `exchange`'s directories.
fn see(exchange: &Exchange, plug: &str) -> Result<Seen, Failure> {
    #[derive(serde::Deserialize)]
    struct Target {
        #[serde(default)]
        target_node: String,
    }
    let records = standing::of(&exchange.responses, plug)?;
    let dir = &exchange.requests;
    let mut requests = Vec::new();
    let mut waiting = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(ha::HaError::at("list", dir))? {
        let entry = entry.map_err(ha::HaError::at("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(file) = names::request_of_holder_lock(&name) {
            let for_plug = names::parse_request_file(file).and_then(|f| f.target).is_some_and(|t| t == plug);
            if for_plug && lock::probe(&dir.join(&name))? == lock::LockState::Held {
                waiting.push(file.to_string());
            }
            continue;
        }
        if !named_as_request(&name) {
            continue;
        }
        let Some((_, _, bytes)) = standing::read_as_nnf_sos(&dir.join(&name)) else { continue };
        if serde_json::from_slice::<Target>(&bytes).is_ok_and(|t| t.target_node == plug) {
            let answered = exchange.responses.join(&name).symlink_metadata().is_ok();
            requests.push(SeenRequest { name, answered });
        }
    }
    requests.sort_by(|a, b| a.name.cmp(&b.name));
    waiting.sort();
    Ok(Seen { records, requests, waiting })
}

fn refusal(o: &Order<'_>, pending: &[String], waiting: &[String]) -> String {
    let mut why = Vec::new();
    if !pending.is_empty() {
        why.push(format!(
            "nnf-sos has a fence of it still to carry out ({} in {}): it would fence the node again once its record is \
             gone. Wait for nnf-sos to answer, or, if that request is stale, move it out of {} first",
            pending.join(", "),
            o.exchange.requests.display(),
            o.exchange.requests.display()
        ));
    }
    if !waiting.is_empty() {
        why.push(format!(
            "an agent is asking nnf-sos to fence it now ({}): Pacemaker wants it fenced; try again once that fence has \
             ended",
            waiting.join(", ")
        ));
    }
    format!("{} is not unfenced, nothing was moved: {}", o.plug, why.join("; "))
}

/// The fence event log's record of an unfence of `o`'s plug, the unfence's id `id`.
fn event<'a>(o: &'a Order<'a>, id: &'a str, status: Status, details: &'a str) -> Event<'a> {
    Event {
        action: "unfence",
        target_node: o.plug,
        gfs2: &[],
        gfs2_discovery: None,
        status,
        details,
        request_id: Some(id),
        nodename: o.nodename,
        outcome: None,
        watcher_id: None,
        elapsed_ms: None,
    }
}

fn kept(path: &Path, to: &Path, request_id: Option<String>) -> Kept {
    Kept { from: path.display().to_string(), kept: to.display().to_string(), request_id }
}

/// Unfences `o.plug`: see the module's documentation.
pub fn run(o: Order<'_>) -> Result<Outcome, Failure> {
    match plan::decide(see(o.exchange, o.plug)?) {
        Plan::Nothing => return Ok(Outcome::Nothing),
        Plan::Refuse { pending, waiting } => return Ok(Outcome::Refused(refusal(&o, &pending, &waiting))),
        Plan::Move { .. } => {}
    }
    let keep_dir = o.exchange.responses.join(KEPT_DIR);
    ha::spool::ensure_private_dir(&keep_dir, true)?;
    let lock_path = keep_dir.join(".lock");
    let _lock = lock::exclusive(lock::open_lock_file(&lock_path)?, &lock_path)?;
    let (set_aside, records) = match plan::decide(see(o.exchange, o.plug)?) {
        Plan::Nothing => return Ok(Outcome::Nothing),
        Plan::Refuse { pending, waiting } => return Ok(Outcome::Refused(refusal(&o, &pending, &waiting))),
        Plan::Move { set_aside, records } => (set_aside, records),
    };
    let log = EventLog::open(o.log_dir);
    // The unfence's own id, in both its records (as a fence's request id is in its).
    let id = uuid::Uuid::new_v4().to_string();
    let mut who = o.who.clone();
    who.records = records.iter().map(|r| kept(&r.path, Path::new(""), r.request_id.clone())).collect();
    who.set_aside =
        set_aside.iter().map(|n| kept(&o.exchange.requests.join(n), Path::new(""), None)).collect::<Vec<_>>();
    let names: Vec<String> = records.iter().map(Standing::name).collect();
    let intent = format!(
        "unfence of {} by {} ({}): moving nnf-sos's record of its fence ({}) into {}",
        o.plug,
        who.by,
        who.reason,
        names.join(", "),
        keep_dir.display()
    );
    log.record_unfence(&event(&o, &id, Status::Unfencing, &intent), &who).map_err(|e| {
        Failure::Fence(format!(
            "{} is not unfenced, nothing was moved: an unfence must be recorded first and {e}; fix the log directory \
             {} and try again",
            o.plug,
            o.log_dir.display()
        ))
    })?;
    let (aside_dir, changed) = move_aside(&o, &mut who, (&set_aside, &records), &keep_dir)?;
    let standing_now: Vec<String> = standing::of(&o.exchange.responses, o.plug)?.iter().map(Standing::name).collect();
    let details = format!(
        "{} unfenced by {} ({}): {} record(s) of its fence kept in {}{}",
        o.plug,
        who.by,
        who.reason,
        who.records.iter().filter(|k| !k.kept.is_empty()).count(),
        keep_dir.display(),
        if who.set_aside.is_empty() {
            String::new()
        } else {
            format!("; {} request(s) nnf-sos left behind set aside into {}", who.set_aside.len(), aside_dir.display())
        }
    );
    if !standing_now.is_empty() {
        let msg = format!(
            "{details}; but a record of a fence still stands for it ({}{}): the node was fenced again meanwhile, or a \
             record changed while it was moved; see gfs2-fence-events fenced",
            standing_now.join(", "),
            if changed.is_empty() { String::new() } else { format!("; changed: {}", changed.join(", ")) }
        );
        log.record_unfence(&event(&o, &id, Status::Failed, &msg), &who).map_err(Failure::Fence)?;
        return Err(Failure::Fence(msg));
    }
    log.record_unfence(&event(&o, &id, Status::Unfenced, &details), &who).map_err(|e| {
        Failure::Fence(format!(
            "{details}, but the unfence could not be recorded as done: {e}; its start is recorded (status unfencing)"
        ))
    })?;
    tracing::info!("{details}");
    Ok(Outcome::Unfenced(who))
}

/// Moves what nnf-sos left (the requests into `set_aside/`, the records of the fence into
/// `keep_dir`), durably, noting in `who` where each went. Returns the set-aside directory and the
/// records that changed while they were moved (left in place).
fn move_aside(
    o: &Order<'_>,
    who: &mut Unfence,
    (set_aside, records): (&[String], &[Standing]),
    keep_dir: &Path,
) -> Result<(PathBuf, Vec<String>), Failure> {
    let aside_dir = o.exchange.requests.join(SET_ASIDE_DIR);
    for (i, name) in set_aside.iter().enumerate() {
        ha::spool::ensure_private_dir(&aside_dir, true)?;
        if let Some(to) = fsio::move_into_durable(&o.exchange.requests.join(name), &aside_dir, name)? {
            who.set_aside[i].kept = to.display().to_string();
        }
    }
    let mut changed = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match fsio::keep_aside(&r.path, r.id, keep_dir)? {
            KeptAside::Kept(to) => who.records[i].kept = to.display().to_string(),
            KeptAside::Gone => tracing::info!("{} was removed by another process meanwhile", r.path.display()),
            KeptAside::Changed => changed.push(r.name()),
        }
    }
    Ok((aside_dir, changed))
}
