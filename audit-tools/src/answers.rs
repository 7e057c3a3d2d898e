//! The durable answers of a spool against the records: which fences the watchers answered for our
//! agent that the chain has no outcome record for.
//!
//! The answer is the one file made durable on a fence's path; the records are appended without
//! fsync (PROTOCOL.md, "What survives a crash"). After a power cut on a disk spool the chain's tail
//! may be gone while the answers stand: those fences are "records missing after a crash", which
//! `verify --spool` reports instead of calling the chain broken. Only requests written by our agent
//! (they carry `boot_id`; their retired copies are in `done/`) are expected in the records, and only
//! answers from after the first record of the files given (older ones may be in removed rotations).
//! Reads only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use ha::protocol::request::Request;
use ha::protocol::response::Response;

use super::error::EventsError;
use super::records::Record;

/// An answered fence of ours without an outcome record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecorded {
    /// The request.
    pub request_id: String,
    /// Its target.
    pub target: String,
    /// The answer's time, as written.
    pub answered: String,
    /// The answer's outcome (`done`, `failed`, ...), or success/failure.
    pub outcome: String,
}

fn files(dir: &Path) -> Result<Vec<std::path::PathBuf>, EventsError> {
    let list = std::fs::read_dir(dir).map_err(|source| EventsError::Read { path: dir.to_path_buf(), source })?;
    Ok(list.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
}

fn read(path: &Path) -> Option<Vec<u8>> {
    ha::fsio::read_capped(path, ha::fsio::MAX_SPOOL_FILE).ok()
}

/// The answered requests of our agent in `spool` that `records` have no outcome record for.
pub fn unrecorded(spool: &Path, records: &[Record]) -> Result<Vec<Unrecorded>, EventsError> {
    let first = records.iter().filter_map(|r| r.time).min();
    let recorded: BTreeSet<&str> = records
        .iter()
        .filter(|r| matches!(r.status.as_str(), "completed" | "failed"))
        .filter_map(|r| r.request_id.as_deref())
        .collect();
    // Our agent's requests, retired to done/ under their claimed names.
    let mut ours: BTreeMap<String, Request> = BTreeMap::new();
    for p in files(&spool.join("done"))? {
        if let Some(req) = read(&p).and_then(|b| Request::parse(&b).ok()).filter(|r| r.boot_id.is_some()) {
            ours.insert(req.request_id.clone(), req);
        }
    }
    let mut missing = Vec::new();
    for p in files(&spool.join("responses"))? {
        let Some(resp) = read(&p).and_then(|b| Response::parse(&b).ok()) else { continue };
        let Some(req) = ours.get(&resp.request_id) else { continue };
        let at = DateTime::parse_from_rfc3339(&resp.timestamp).ok().map(|t| t.with_timezone(&Utc));
        let after_first = matches!((at, first), (Some(a), Some(f)) if a >= f);
        if after_first && !recorded.contains(resp.request_id.as_str()) {
            let outcome = resp.outcome.map_or_else(
                || if resp.success { "success" } else { "failure" }.to_string(),
                |o| o.as_str().to_string(),
            );
            missing.push(Unrecorded {
                request_id: resp.request_id.clone(),
                target: req.target_node.clone(),
                answered: resp.timestamp.clone(),
                outcome,
            });
        }
    }
    missing.sort_by(|a, b| (&a.answered, &a.request_id).cmp(&(&b.answered, &b.request_id)));
    Ok(missing)
}
