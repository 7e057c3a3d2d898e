//! Who is fenced now, by nnf-sos's record: the success answers standing in its response directory.
//!
//! nnf-sos keeps a node fenced while a success answer for it is in its response directory: its
//! NnfNode reconcile (`checkFencedStatus`) shows the compute `Fenced` for an answer with
//! `success: true` or `status: "success"`, and its block-storage reconcile (`checkComputeFenced`)
//! does not re-create the node's storage groups while one with `success: true` stands. Both read
//! every top-level name ending in `.json` that is not a directory, hidden names (`.x.json`)
//! included; a file that does not parse is skipped. [`list`] reads the directory the same way, each
//! file capped in size, and keeps what identifies each file (device, inode) so that an unfence moves
//! exactly the records it listed. In our own watchers' spool a kept answer means "fenced once", not
//! "storage still cut": this applies to nnf-sos's directory only. No locks.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use ha::fsio::{self, FileId};

use crate::failure::Failure;

/// One success answer standing in the response directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Where it is.
    pub path: PathBuf,
    /// Its device and inode when listed.
    pub id: FileId,
    /// The plug it fenced (`target_node`).
    pub target: String,
    /// The fence's request id.
    pub request_id: Option<String>,
    /// The answer's `timestamp` (nnf-sos copies the request's, or writes its own time in place).
    pub timestamp: Option<String>,
    /// `action_performed`.
    pub action_performed: String,
    /// nnf-sos's message.
    pub message: String,
    /// When the file was last written: since when the record stands.
    pub since: Option<SystemTime>,
    /// Whether nnf-sos's block-storage reconcile reads it as fenced too (`success: true`; an
    /// in-place `status: "success"` alone holds only the NnfNode's status).
    pub holds_storage: bool,
}

impl Standing {
    /// The file name.
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// The fields nnf-sos reads of an answer, and those the listing shows.
#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    target_node: String,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    status: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    action_performed: String,
    #[serde(default)]
    message: String,
}

/// Whether nnf-sos reads the response directory's entry `name` as a record: top-level `*.json`, hidden ones too.
pub fn named_as_record(name: &str) -> bool {
    name.ends_with(".json")
}

/// A directory entry's identity (what an unfence moves), its modification time and its content as
/// nnf-sos reads it: through a symlink, capped in size; `None` for a directory or anything else that
/// is not a regular file, and for what cannot be read (nnf-sos skips those too).
pub fn read_as_nnf_sos(path: &Path) -> Option<(FileId, Option<SystemTime>, Vec<u8>)> {
    let id = fsio::file_id(path).ok()?;
    let meta = path.metadata().ok().filter(|m| m.is_file())?;
    let read = fsio::open_system_file(path)
        .map_err(|e| ha::HaError::io("open", path, e).into())
        .and_then(|f| fsio::read_file_capped(&f, path, fsio::MAX_SPOOL_FILE));
    match read {
        Ok(bytes) => Some((id, meta.modified().ok(), bytes)),
        Err(e) => {
            tracing::debug!("skipping {}: {e}", path.display());
            None
        }
    }
}

/// Every success answer in `dir`, for any node, sorted by path.
pub fn list(dir: &Path) -> Result<Vec<Standing>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(ha::HaError::at("list", dir))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ha::HaError::at("list", dir))?;
        let Some(name) = entry.file_name().to_str().filter(|n| named_as_record(n)).map(str::to_string) else {
            continue;
        };
        let path = dir.join(&name);
        let Some((id, since, bytes)) = read_as_nnf_sos(&path) else { continue };
        match serde_json::from_slice::<Answer>(&bytes) {
            Ok(a) if a.success || a.status == "success" => found.push(Standing {
                id,
                since,
                path,
                target: a.target_node,
                request_id: a.request_id.filter(|s| !s.is_empty()),
                timestamp: a.timestamp.filter(|s| !s.is_empty()),
                action_performed: a.action_performed,
                message: a.message,
                holds_storage: a.success,
            }),
            Ok(_) => {}
            Err(e) => tracing::debug!("skipping {} (as nnf-sos does): {e}", path.display()),
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The success answers for the plug `target`: nnf-sos's record that it is fenced.
pub fn of(dir: &Path, target: &str) -> Result<Vec<Standing>, Failure> {
    Ok(list(dir)?.into_iter().filter(|s| s.target == target).collect())
}
