//! `status` and `on` with `responder=nnf-sos`, which write no request.
//!
//! nnf-sos takes every file in its request directory for a fence, whatever its `action`, so a
//! `status` or `on` request would fence the node. Instead:
//! - `status` reads nnf-sos's record: a node is fenced (OFF, exit 2) while a success answer for it
//!   (`success: true`, or nnf-sos's in-place `status: "success"`) is in the response directory,
//!   which is what nnf-sos itself consults before re-creating the node's storage; ON otherwise.
//! - `on` fails (exit 1): nnf-sos has no power-on. Unfencing is the administrator's removal of those
//!   success answers, after which nnf-sos re-creates the node's storage groups.
//!
//! Files are read as nnf-sos reads them (`checkFencedStatus`): every top-level `*.json` name that is
//! not a directory, hidden ones (`.x.json`) included, each capped in size; one that does not parse is
//! skipped. No locks.

use std::path::PathBuf;

use serde::Deserialize;

use ha::fsio;
use ha::protocol::request::Action;

use crate::answer::Answer;
use crate::exchange::Exchange;
use crate::failure::Failure;

/// The fields of an answer that make it nnf-sos's record of a fenced node.
#[derive(Debug, Deserialize)]
struct Record {
    #[serde(default)]
    target_node: String,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    status: String,
}

/// The success answers for `target` in the response directory: nnf-sos's record that it is fenced.
pub fn fenced_records(exchange: &Exchange, target: &str) -> Result<Vec<PathBuf>, Failure> {
    let dir = &exchange.responses;
    let entries = std::fs::read_dir(dir).map_err(ha::HaError::at("list", dir))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ha::HaError::at("list", dir))?;
        let name = entry.file_name();
        // nnf-sos reads hidden names too: a `.x.json` success answer holds the node fenced for it.
        let Some(name) = name.to_str().filter(|n| n.ends_with(".json")) else {
            continue;
        };
        let path = dir.join(name);
        match fsio::read_capped(&path, fsio::MAX_SPOOL_FILE) {
            Ok(bytes) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) if r.target_node == target && (r.success || r.status == "success") => found.push(path),
                Ok(_) => {}
                Err(e) => tracing::debug!("skipping {} (as nnf-sos does): {e}", path.display()),
            },
            Err(e) => tracing::debug!("skipping {}: {e}", path.display()),
        }
    }
    found.sort();
    Ok(found)
}

/// `status` or `on` for `target`, answered without a request.
pub fn without_request(exchange: &Exchange, target: &str, action: Action) -> Result<Answer, Failure> {
    let records = fenced_records(exchange, target)?;
    let list = || records.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    match action {
        Action::Status if records.is_empty() => Ok(Answer { code: 0, stdout: "Status: ON".into() }),
        Action::Status => {
            tracing::info!("{target} is fenced by nnf-sos: {}", list());
            Ok(Answer { code: 2, stdout: "Status: OFF".into() })
        }
        _ if records.is_empty() => Err(Failure::Fence(format!(
            "responder=nnf-sos cannot power {target} on, and no success answer for it is in {}: nnf-sos does not \
             hold it fenced, so its storage is (or will be) attached already",
            exchange.responses.display()
        ))),
        _ => Err(Failure::Fence(format!(
            "responder=nnf-sos cannot power {target} on: unfencing is the administrator's removal of nnf-sos's \
             record of the fence ({}), after which nnf-sos re-creates the node's GFS2 storage groups",
            list()
        ))),
    }
}
