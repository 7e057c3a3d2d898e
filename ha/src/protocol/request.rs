//! Fence requests: `requests/<request_id>.json`, part of the spool's public contract.
//!
//! The original recorder's six fields come first and unchanged; what this design adds follows. A
//! request without the added fields (written by the original Python agent or an external tool) is
//! served with defaults. Unknown fields are ignored. Parsing never panics: any byte string gives a
//! [`Request`] or a [`Rejection`] that names the problem, which becomes the quarantine reason.

use serde::{Deserialize, Serialize};

use crate::protocol::names::{is_safe_name, parse_request_id};

/// The spool format version this code writes and the highest it reads.
pub const SPOOL_VERSION: u32 = 1;

/// The power actions that travel through the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Fence: power off (or cut off from storage).
    Off,
    /// Un-fence: power on.
    On,
    /// Off then on; success means the off part succeeded.
    Reboot,
    /// Ask the fence device for the target's power state.
    Status,
}

impl Action {
    /// Every action, in the order fence-agents documents them.
    pub const ALL: [Action; 4] = [Action::Off, Action::On, Action::Reboot, Action::Status];

    /// The protocol name (`off`, `on`, `reboot`, `status`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Reboot => "reboot",
            Action::Status => "status",
        }
    }

    /// Parses a protocol name, case-insensitively as fence-agents does.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// Default `queue_priority`: taking a node out comes before bringing one back or asking about it.
    pub fn default_priority(self) -> i32 {
        match self {
            Action::Off => 100,
            Action::Reboot => 90,
            Action::On => 50,
            Action::Status => 10,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fence request, as written by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// UUID v4, also the file's name.
    pub request_id: String,
    /// When the request was made, RFC 3339 (for people).
    pub timestamp: String,
    /// What to do.
    pub action: Action,
    /// The plug Pacemaker asked for: the key for per-target locking and the fence command's `plug=`.
    pub target_node: String,
    /// The host the agent ran on.
    #[serde(default)]
    pub recorder_node: String,
    /// GFS2 file systems known at publication time (may be empty while discovery runs).
    #[serde(default)]
    pub gfs2_filesystems: Vec<String>,
    /// Spool format version; absent in the original format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Pacemaker's node name (differs from `target_node` under `pcmk_host_map`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodename: Option<String>,
    /// Higher runs first; defaults from the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_priority: Option<i32>,
    /// RFC 3339 deadline, for people and external tools; never used for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// The deadline on CLOCK_BOOTTIME, valid in the boot named by `boot_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_boottime_ns: Option<u64>,
    /// The kernel boot id `deadline_boottime_ns` belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// How `gfs2_filesystems` was found (snapshot and its age, or live, per-source results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gfs2_discovery: Option<crate::protocol::provenance::Provenance>,
}

/// Why a request file is refused (the text goes to its `.reason` file in `quarantine/`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The file name is neither `<uuid>.json` nor `<target>-<uuid>.json`.
    #[error("file name {0:?} is not <request-uuid>.json or <target>-<request-uuid>.json")]
    BadFileName(String),
    /// Over the size limit.
    #[error("file is larger than {0} bytes")]
    TooLarge(u64),
    /// Not a regular file.
    #[error("not a regular file: {0}")]
    NotRegular(&'static str),
    /// Not valid JSON or missing required fields.
    #[error("invalid JSON request: {0}")]
    BadJson(String),
    /// `request_id` is not a canonical UUID.
    #[error("request_id {0:?} is not a UUID")]
    BadId(String),
    /// The file's name and its `request_id` differ.
    #[error("request_id {id:?} does not match the file name {file:?}")]
    NameMismatch {
        /// The id inside.
        id: String,
        /// The file name.
        file: String,
    },
    /// A v2 file name (`<target>-<id>.json`) naming another target than the content.
    #[error("target_node {target:?} does not match the file name {file:?}")]
    TargetMismatch {
        /// The target inside.
        target: String,
        /// The file name.
        file: String,
    },
    /// A version this code does not know.
    #[error("unknown spool version {0} (this watcher reads up to {SPOOL_VERSION})")]
    UnknownVersion(u32),
    /// An action other than off/on/reboot/status.
    #[error("unknown action {0:?} (expected off, on, reboot or status)")]
    UnknownAction(String),
    /// A file the spool cannot trust (foreign owner, writable by others, hard-linked).
    #[error("untrusted request file: {0}")]
    Untrusted(String),
    /// A target or node name outside `[A-Za-z0-9_.-]`.
    #[error("unsafe {field} {value:?} (allowed: letters, digits, '_', '.', '-'; at most {max} bytes)", max = crate::protocol::names::MAX_NAME)]
    UnsafeName {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

impl Request {
    /// Parses and validates a request file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Request, Rejection> {
        let bad_json = |e: serde_json::Error| Rejection::BadJson(e.to_string());
        let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad_json)?;
        if let Some(field) = value.get_mut("action") {
            if let Some(name) = field.as_str() {
                let action = Action::parse(name).ok_or_else(|| Rejection::UnknownAction(name.to_string()))?;
                *field = serde_json::Value::String(action.as_str().to_string());
            }
        }
        let req: Request = serde_json::from_value(value).map_err(bad_json)?;
        req.validate()?;
        Ok(req)
    }

    /// Checks the fields a parser cannot: id form, version, names.
    pub fn validate(&self) -> Result<(), Rejection> {
        if parse_request_id(&self.request_id).is_none() {
            return Err(Rejection::BadId(self.request_id.clone()));
        }
        if let Some(v) = self.version {
            if v == 0 || v > SPOOL_VERSION {
                return Err(Rejection::UnknownVersion(v));
            }
        }
        if !is_safe_name(&self.target_node) {
            return Err(Rejection::UnsafeName { field: "target_node", value: self.target_node.clone() });
        }
        if let Some(n) = &self.nodename {
            if !is_safe_name(n) {
                return Err(Rejection::UnsafeName { field: "nodename", value: n.clone() });
            }
        }
        Ok(())
    }

    /// The queue priority, defaulted from the action.
    pub fn priority(&self) -> i32 {
        self.queue_priority.unwrap_or_else(|| self.action.default_priority())
    }

    /// Serialises the request for the spool (compact JSON, fields in contract order).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a request always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";

    fn original() -> String {
        format!(
            r#"{{"request_id": "{ID}", "timestamp": "2025-10-20T14:30:00+00:00", "action": "reboot",
               "target_node": "compute-node-3", "gfs2_filesystems": ["fs1"], "recorder_node": "rabbit-1"}}"#
        )
    }

    #[test]
    fn the_original_format_is_served_with_defaults() {
        let r = Request::parse(original().as_bytes()).unwrap();
        assert_eq!(r.action, Action::Reboot);
        assert_eq!(r.version, None);
        assert_eq!(r.priority(), 90);
        assert_eq!(r.deadline_boottime_ns, None);
    }

    #[test]
    fn unknown_fields_are_ignored_and_fields_keep_contract_order() {
        let text = original().replace("\"action\"", "\"future_field\": [1], \"action\"");
        let r = Request::parse(text.as_bytes()).unwrap();
        let json = String::from_utf8(r.to_json()).unwrap();
        assert!(json.starts_with(&format!(r#"{{"request_id":"{ID}","timestamp""#)), "{json}");
    }

    #[test]
    fn each_bad_field_has_its_own_reason() {
        let cases = [
            (original().replace("reboot", "explode"), "unknown action"),
            (original().replace(ID, "not-a-uuid"), "is not a UUID"),
            (original().replace("compute-node-3", "../../etc"), "unsafe target_node"),
            (original().replace("\"action\"", "\"version\": 9, \"action\""), "unknown spool version 9"),
            ("{".to_string(), "invalid JSON"),
            ("[]".to_string(), "invalid JSON"),
        ];
        for (text, want) in cases {
            let err = Request::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn action_parsing_is_case_insensitive_like_fence_agents() {
        assert_eq!(Action::parse("OFF"), Some(Action::Off));
        assert_eq!(Action::parse("Reboot"), Some(Action::Reboot));
        assert_eq!(Action::parse("list"), None);
        let r = Request::parse(original().replace("reboot", "REBOOT").as_bytes()).unwrap();
        assert_eq!(r.action, Action::Reboot);
    }
}
