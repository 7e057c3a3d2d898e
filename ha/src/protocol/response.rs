//! Fence responses: `responses/<request_id>.json`, part of the spool's public contract.
//!
//! The original six fields come first; the added ones are optional so that a response from the
//! original Python watcher or an external responder (NNF's) is accepted. The first response for a
//! request wins: responses are placed with a no-replace move, and a later one is kept in `done/` as
//! superseded. An agent accepts only a response whose id and target match its request and, for a
//! success, whose performed action carries out the requested one ([`performs`]); a failure ends the
//! wait whatever action it names (nnf-sos's failure answer names none).

use serde::{Deserialize, Serialize};

use crate::protocol::request::{Action, Request};

/// What the watcher did with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The fence command ran and succeeded.
    Done,
    /// The fence command ran and failed (or timed out).
    Failed,
    /// The deadline passed before execution: not executed.
    Expired,
    /// The requesting agent was gone before execution: not executed.
    Abandoned,
    /// The request was invalid and quarantined: not executed.
    Rejected,
    /// Answered from an identical execution launched for another request.
    Coalesced,
    /// A later request for the same target replaced this one before it ran.
    Superseded,
    /// An outcome this version does not know (from a newer watcher).
    #[serde(other)]
    Other,
}

impl Outcome {
    /// The name used in files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
            Outcome::Abandoned => "abandoned",
            Outcome::Rejected => "rejected",
            Outcome::Coalesced => "coalesced",
            Outcome::Superseded => "superseded",
            Outcome::Other => "other",
        }
    }
}

/// The power state a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Not known.
    #[serde(other)]
    Unknown,
}

/// A fence response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request answered.
    pub request_id: String,
    /// Whether the action succeeded (for `status`: whether the state could be determined).
    pub success: bool,
    /// The action carried out (equals the request's action).
    pub action_performed: String,
    /// The request's target.
    pub target_node: String,
    /// What happened, for people.
    pub message: String,
    /// When the response was written, RFC 3339.
    pub timestamp: String,
    /// Spool format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The target's power state after the action, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// The watcher that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watcher_id: Option<String>,
    /// How many executions ran for this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Time from claim to answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the watcher did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The leader epoch the answering watcher knew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// Why a response does not answer the request an agent is waiting for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The file does not parse.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// It answers another request.
    #[error("response is for request {0}")]
    OtherRequest(String),
    /// It names another target.
    #[error("response is for target {0:?}")]
    OtherTarget(String),
    /// It reports another action.
    #[error("response reports action {0:?}")]
    OtherAction(String),
}

impl Response {
    /// Parses a response file (never panics).
    pub fn parse(bytes: &[u8]) -> Result<Response, Mismatch> {
        serde_json::from_slice(bytes).map_err(|e| Mismatch::Malformed(e.to_string()))
    }

    /// Checks that this response answers `req`: same id and target, and a success performs the action
    /// ([`performs`]).
    pub fn answers(&self, req: &Request) -> Result<(), Mismatch> {
        if self.request_id != req.request_id {
            return Err(Mismatch::OtherRequest(self.request_id.clone()));
        }
        if self.target_node != req.target_node {
            return Err(Mismatch::OtherTarget(self.target_node.clone()));
        }
        if self.success && !performs(req.action, &self.action_performed) {
            return Err(Mismatch::OtherAction(self.action_performed.clone()));
        }
        Ok(())
    }

    /// Serialises for the spool.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a response always serialises")
    }
}

/// Whether a success that reports `performed` carries out `requested`. Exact matches, and `off` for
/// a `reboot`: as in fence-agents, a reboot whose power-on does not happen has still fenced the node
/// once it is off (nnf-sos, which fences by removing storage, always reports `off`).
pub fn performs(requested: Action, performed: &str) -> bool {
    match Action::parse(performed) {
        Some(p) => p == requested || (requested == Action::Reboot && p == Action::Off),
        None => false,
    }
}

/// Why the file at a response's path is not a real answer to request `id`, if it is not: anything
/// but a regular file of this user, within the size limit, that parses as a response to `id`. Such a
/// file (planted garbage, a symlink, a FIFO, a directory, a huge sparse file, a hard link to another
/// file) never displaces the real answer. (The link count is not judged here: a peer placing its
/// answer with `link` + `unlink`, where renameat2 is missing, has two links for a moment.)
pub fn not_an_answer(path: &std::path::Path, id: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(_) => return None,
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Some(format!("{what}, not a response"));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Some(format!("owned by uid {}, not by the spool's owner {euid}", meta.uid()));
    }
    let bytes = match crate::fsio::read_capped(path, crate::fsio::MAX_SPOOL_FILE) {
        Ok(b) => b,
        Err(crate::fsio::ReadError::Gone) => return None,
        Err(e) => return Some(e.to_string()),
    };
    match Response::parse(&bytes) {
        Ok(r) if r.request_id == id => None,
        Ok(r) => Some(format!("a response to another request ({})", r.request_id)),
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";

    fn request() -> Request {
        Request::parse(
            format!(r#"{{"request_id":"{ID}","timestamp":"t","action":"off","target_node":"n1"}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_response_with_only_the_original_fields_is_accepted() {
        let text = format!(
            r#"{{"request_id":"{ID}","success":true,"action_performed":"off","target_node":"n1","message":"ok","timestamp":"t"}}"#
        );
        let r = Response::parse(text.as_bytes()).unwrap();
        assert_eq!(r.answers(&request()), Ok(()));
        assert_eq!(r.outcome, None);
    }

    #[test]
    fn foreign_responses_are_refused_with_the_reason() {
        let ok = format!(
            r#"{{"request_id":"{ID}","success":true,"action_performed":"off","target_node":"n1","message":"","timestamp":"t","outcome":"from-the-future","power_state":"weird"}}"#
        );
        let r = Response::parse(ok.as_bytes()).unwrap();
        assert_eq!(r.outcome, Some(Outcome::Other));
        assert_eq!(r.power_state, Some(PowerState::Unknown));
        for (from, to, want) in [("\"n1\"", "\"n2\"", "target"), ("\"off\"", "\"on\"", "action"), (ID, "x", "request")]
        {
            let bad = Response::parse(ok.replace(from, to).as_bytes()).unwrap();
            assert!(bad.answers(&request()).unwrap_err().to_string().contains(want));
        }
        assert!(matches!(Response::parse(b"{\"success\":"), Err(Mismatch::Malformed(_))));
    }

    #[test]
    fn off_answers_a_reboot_and_a_failure_needs_no_action() {
        let reboot = Request::parse(
            format!(r#"{{"request_id":"{ID}","timestamp":"t","action":"reboot","target_node":"n1"}}"#).as_bytes(),
        )
        .unwrap();
        let resp = |success: bool, performed: &str| {
            Response::parse(
                format!(
                    r#"{{"request_id":"{ID}","success":{success},"action_performed":"{performed}","target_node":"n1","message":"m","timestamp":"t"}}"#
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(resp(true, "off").answers(&reboot), Ok(()), "fence-agents: a reboot that ends off succeeded");
        assert_eq!(resp(true, "reboot").answers(&reboot), Ok(()));
        assert!(resp(true, "on").answers(&reboot).is_err());
        assert!(resp(true, "reboot").answers(&request()).is_err(), "a reboot does not answer an off");
        assert_eq!(resp(false, "").answers(&reboot), Ok(()), "nnf-sos's failure answer ends the wait");
        assert_eq!(resp(false, "").answers(&request()), Ok(()));
    }
}
