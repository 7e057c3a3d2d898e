//! Requests left by killed agents, for responders other than our watchers (nnf-sos, an external
//! program): taken back before anybody carries them out late.
//!
//! Pacemaker SIGKILLs an agent at the device's timeout (the whole process group, nothing to catch)
//! and moves on. Our watchers see that from the agent's waiting lock and answer `abandoned`; nnf-sos
//! and external responders know nothing of it and would fence whenever they get to the request —
//! nnf-sos even at its next start, long after Pacemaker stopped asking. So the agent holds a flock
//! on `.<request file>.lock` beside its request ([`Holder`], `ha::protocol::names::holder_lock_name`)
//! from before the request exists until it exits, and removes it on every way out but SIGKILL.
//! A request whose holder lock is free was left by a killed agent: [`sweep`], run by `monitor`
//! (Pacemaker runs it every monitor interval) and before every fence through that responder,
//! removes it unless it is answered, and records that it did.
//!
//! A lock file is probed only when its owner must have locked it already (its request exists: the
//! agent locks before publishing) or when it is old; probing a young lock whose agent has not yet
//! locked it could make that agent's own lock fail. Requests without a holder lock (other agents,
//! upstream's clients) are never touched. Locks: the holder's flock, probed with a shared one.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ha::fsio::{self, lock};
use ha::protocol::names;
use ha::protocol::request::Request;

use crate::exchange::Exchange;
use crate::failure::Failure;
use crate::logs::{Event, EventLog, Status};

/// How old a free holder lock with no request beside it must be before it is removed: such a file
/// exists unlocked for a moment between its agent's open and its flock.
const HOLDER_GUARD: Duration = Duration::from_secs(60);

/// The agent's flock on `.<request file>.lock` in the request directory; dropping it removes the
/// file, then releases the lock.
#[derive(Debug)]
pub struct Holder(lock::Lock);

impl Holder {
    /// Takes the hold on the request `file` of `exchange`, before it is published.
    pub fn take(exchange: &Exchange, file: &str) -> Result<Holder, Failure> {
        let path = exchange.requests.join(names::holder_lock_name(file));
        let held = lock::try_exclusive(lock::open_lock_file(&path)?, &path)?;
        held.map(Holder).ok_or_else(|| Failure::Fence(format!("{} is locked by another process", path.display())))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Removed while still locked: no sweep ever sees it free with its request present.
        if let Err(e) = std::fs::remove_file(self.0.path()) {
            tracing::warn!("removing {}: {e}", self.0.path().display());
        }
    }
}

/// Takes back the unanswered requests of killed agents in `exchange`'s request directory and records
/// each in `log_dir`'s fence event logs; `who` says which action swept (for the record). Returns
/// how many it took back. Problems with one file are warnings; an unreadable directory is an error.
pub fn sweep(exchange: &Exchange, log_dir: &Path, who: &str) -> Result<usize, Failure> {
    let dir = &exchange.requests;
    let entries = std::fs::read_dir(dir).map_err(ha::HaError::at("list", dir))?;
    let mut log: Option<EventLog> = None;
    let mut taken = 0;
    for entry in entries.flatten() {
        let lock_name = entry.file_name().to_string_lossy().into_owned();
        let Some(file) = names::request_of_holder_lock(&lock_name) else { continue };
        let (lock_path, request, response) = (dir.join(&lock_name), dir.join(file), exchange.responses.join(file));
        let published = request.symlink_metadata().is_ok();
        let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|m| m + HOLDER_GUARD < SystemTime::now());
        if !published && !old {
            continue;
        }
        match lock::probe(&lock_path) {
            Ok(lock::LockState::Free) => {}
            // Held: its agent still waits. Absent: not a holder lock of a killed agent.
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("{e}; leaving {file} as it is");
                continue;
            }
        }
        if published {
            // Read before removing, for the record; a request that cannot be read is still taken back.
            let req = fsio::read_capped(&request, fsio::MAX_SPOOL_FILE).ok().and_then(|b| Request::parse(&b).ok());
            match fsio::remove_unanswered(&request, &response) {
                Ok(true) => {
                    record(log.get_or_insert_with(|| EventLog::open(log_dir)), exchange, file, req.as_ref(), who);
                    taken += 1;
                }
                Ok(false) => tracing::info!("{file}: its killed agent's request was answered or taken; left as it is"),
                Err(e) => {
                    tracing::warn!("{e}; its agent was killed, so it may still be carried out late: remove it by hand");
                    continue;
                }
            }
        }
        match std::fs::remove_file(&lock_path) {
            Ok(()) => tracing::debug!("removed a killed agent's {}", lock_path.display()),
            Err(e) => tracing::warn!("removing {}: {e}", lock_path.display()),
        }
    }
    Ok(taken)
}

/// Records a request taken back: the fence Pacemaker asked for failed, and never runs.
fn record(log: &EventLog, exchange: &Exchange, file: &str, req: Option<&Request>, who: &str) {
    let target = req.map(|r| r.target_node.clone()).or_else(|| names::parse_request_file(file)?.target);
    let details = format!(
        "the agent that published {} was killed (Pacemaker's device timeout) before {} answered; {who} took the \
         request back so that it is never carried out late",
        exchange.requests.join(file).display(),
        exchange.responder.as_str()
    );
    tracing::warn!("{details}");
    log.record(&Event {
        action: req.map_or("unknown", |r| r.action.as_str()),
        target_node: target.as_deref().unwrap_or("unknown"),
        gfs2: req.map_or(&[], |r| r.gfs2_filesystems.as_slice()),
        gfs2_discovery: req.and_then(|r| r.gfs2_discovery.as_ref()),
        status: Status::Failed,
        details: &details,
        request_id: req.map(|r| r.request_id.as_str()),
        nodename: req.and_then(|r| r.nodename.as_deref()),
        outcome: Some("abandoned"),
        watcher_id: None,
        elapsed_ms: None,
    });
}
