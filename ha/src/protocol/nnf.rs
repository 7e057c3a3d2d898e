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

#[cfg(test)]
mod tests {
    use super::*;

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
