//! nnf-sos's fence directories, and the rule that no other responder may use them.
//!
//! nnf-sos (NNF's node manager) reads `NNF_FENCE_REQUEST_DIR` and `NNF_FENCE_RESPONSE_DIR`, else
//! `/localdisk/fence-recorder/{requests,responses}`. It takes *every* request file in its request
//! directory for a fence, whatever its action, and every success answer in its response directory
//! for its record that a node is fenced (it does not re-create the node's storage while one exists).
//! Another responder serving those directories would turn its `status` and `on` into fences, and its
//! success answers to them into fenced records: [`refuse_shared`] stops the agent (unless
//! `responder=nnf-sos`) and the watchers from using them. No locks.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{HaError, Result};

/// nnf-sos's request directory when nothing overrides it.
pub const REQUEST_DIR: &str = "/localdisk/fence-recorder/requests";
/// nnf-sos's response directory when nothing overrides it.
pub const RESPONSE_DIR: &str = "/localdisk/fence-recorder/responses";
/// The environment variables nnf-sos reads for its directories.
pub const ENV: [&str; 2] = ["NNF_FENCE_REQUEST_DIR", "NNF_FENCE_RESPONSE_DIR"];

/// nnf-sos's `[request, response]` directories as the environment `env` sets them.
pub fn dirs(env: &impl Fn(&str) -> Option<String>) -> [PathBuf; 2] {
    let get =
        |k: &str, default: &str| PathBuf::from(env(k).filter(|v| !v.is_empty()).unwrap_or_else(|| default.into()));
    [get(ENV[0], REQUEST_DIR), get(ENV[1], RESPONSE_DIR)]
}

/// Whether two paths name the same directory (by device and inode when both exist).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

/// Refuses `requests` and `responses` when either is one of nnf-sos's directories; `who` names the
/// responder that would use them.
pub fn refuse_shared(
    requests: &Path,
    responses: &Path,
    who: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<()> {
    let nnf = dirs(env);
    for (ours, theirs) in [(requests, &nnf[0]), (responses, &nnf[1])] {
        if same_dir(ours, theirs) {
            return Err(HaError::Config(format!(
                "{} is nnf-sos's directory: nnf-sos takes every request there for a fence and every success answer \
                 there for a fenced node, so {who} must not use it (two responders must never serve one directory); \
                 use the agent's responder=nnf-sos to fence through nnf-sos, or choose another spool directory",
                ours.display()
            )));
        }
    }
    Ok(())
}

/// What an nnf-sos success answer says it detached. nnf-sos writes no field for it: its message is
/// all there is, in one of the forms its code writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detached {
    /// Storage groups were deleted now ("Successfully fenced node by deleting N GFS2 storage groups",
    /// or "(N deleted, M already deleted)" with N > 0).
    Storage,
    /// Every storage group was already deleted ("(0 deleted, M already deleted)"): a repeat fence of
    /// a node still fenced.
    AlreadyFenced,
    /// nnf-sos found nothing of the node to detach ("No block storage resources found to fence", "No
    /// GFS2 storage groups found for compute nodes …"): a node without GFS2 storage on this rabbit, or
    /// a name nnf-sos does not know.
    Nothing,
}

impl Detached {
    /// The outcome the records carry.
    pub fn as_str(self) -> &'static str {
        match self {
            Detached::Storage => "storage-detached",
            Detached::AlreadyFenced => "already-fenced",
            Detached::Nothing => "nothing-detached",
        }
    }
}

/// What nnf-sos's success `message` says was detached; `None` for a message of another form.
pub fn detached(message: &str) -> Option<Detached> {
    let m = message.trim();
    if m.starts_with("No block storage resources found") || m.starts_with("No GFS2 storage groups found") {
        return Some(Detached::Nothing);
    }
    if let Some(rest) = m.strip_prefix("Successfully fenced node by deleting ") {
        let n: u64 = rest.split_whitespace().next()?.parse().ok()?;
        return Some(if n > 0 { Detached::Storage } else { Detached::Nothing });
    }
    let counts = m.strip_prefix("Successfully fenced node (")?;
    let deleted: u64 = counts.split_whitespace().next()?.parse().ok()?;
    Some(if deleted > 0 { Detached::Storage } else { Detached::AlreadyFenced })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_success_message_of_nnf_sos_says_what_it_detached() {
        for (m, d) in [
            ("Successfully fenced node by deleting 2 GFS2 storage groups", Some(Detached::Storage)),
            ("Successfully fenced node (1 deleted, 1 already deleted)", Some(Detached::Storage)),
            ("Successfully fenced node (0 deleted, 2 already deleted)", Some(Detached::AlreadyFenced)),
            ("No block storage resources found to fence", Some(Detached::Nothing)),
            (
                "No GFS2 storage groups found for compute nodes [c9] (already fenced or no GFS2 access)",
                Some(Detached::Nothing),
            ),
            ("fenced", None),
            ("Successfully fenced node (many deleted)", None),
        ] {
            assert_eq!(detached(m), d, "{m}");
        }
    }

    #[test]
    fn nnf_sos_directories_are_refused_to_other_responders() {
        let d = tempfile::tempdir().unwrap();
        let (req, resp) = (d.path().join("requests"), d.path().join("responses"));
        std::fs::create_dir_all(&req).unwrap();
        std::fs::create_dir_all(&resp).unwrap();
        let none = |_: &str| None;
        assert_eq!(dirs(&none), [PathBuf::from(REQUEST_DIR), PathBuf::from(RESPONSE_DIR)]);
        assert!(refuse_shared(&req, &resp, "w", &none).is_ok());
        let r = req.display().to_string();
        let env = move |k: &str| (k == ENV[0]).then(|| r.clone());
        let err = refuse_shared(&req, &resp, "the watchers", &env).unwrap_err().to_string();
        assert!(err.contains("nnf-sos's directory") && err.contains("the watchers"), "{err}");
        // The same directory under another name (a symlink to it) is the same directory.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&resp, &link).unwrap();
        let l = link.display().to_string();
        let env = move |k: &str| (k == ENV[1]).then(|| l.clone());
        assert!(refuse_shared(&req, &resp, "w", &env).is_err());
    }
}
