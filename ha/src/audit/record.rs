//! A fence event record of `fence-events-detailed.jsonl` and a line of
//! `fence-events-readable.log`: the formats the agent writes for its own fences and the leader
//! watcher writes for fences Pacemaker reports through its alert agent. The original recorder's keys
//! come first, in its order and in Python's `json.dumps` spacing; additions follow; the audit
//! chain's fields come last.

use serde::{Deserialize, Serialize};

use crate::protocol::provenance::Provenance;

/// A JSONL record: the original keys in their order, then the additions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: String,
    /// The action.
    pub action: String,
    /// The target plug.
    pub target_node: String,
    /// GFS2 file systems or markers.
    pub gfs2_filesystems: Vec<String>,
    /// `requested`, `completed` or `failed`.
    pub status: String,
    /// Free text.
    pub details: String,
    /// The agent's host.
    pub recorder_node: String,
    /// Pacemaker's action (the original wrote it twice).
    pub pacemaker_action: String,
    /// The request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Pacemaker's node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodename: Option<String>,
    /// The response's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The watcher that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watcher_id: Option<String>,
    /// Time from the agent's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// How the GFS2 file systems were found (snapshot and its age, or live, per source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gfs2_discovery: Option<Provenance>,
    /// The Pacemaker cluster's name (`discovery::cluster_name`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Who recorded it when not this agent: `pacemaker-alert` (a fence by any device, reported by
    /// Pacemaker's alert agent and appended by the leader watcher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The alert as Pacemaker described it (`CRM_alert_*`), for `pacemaker-alert` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<serde_json::Value>,
    /// For an unfence (`action: "unfence"`): who, why, and which records of the fence it moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfence: Option<Unfence>,
    /// Position in the audit chain (see `ha::audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The previous record's `hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// SHA-256 of this record's canonical form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// What an unfence record says beyond a fence record's fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfence {
    /// Who: `pacemaker-fenced` when Pacemaker ran it, else the login user (or `SUDO_USER`, or the
    /// user the process runs as).
    pub by: String,
    /// The audit login uid (`/proc/self/loginuid`), when the session has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// `SUDO_USER`, when run through sudo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// The uid the process ran as.
    pub uid: u32,
    /// `PCMK_service`, when Pacemaker ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcmk_service: Option<String>,
    /// Why, as given.
    pub reason: String,
    /// The records of the fence, each `from` the response directory to where it is `kept`.
    pub records: Vec<Kept>,
    /// Requests nnf-sos left behind whose answer is among `records`, set aside (nnf-sos would
    /// otherwise fence the node again once the answer is gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_aside: Vec<Kept>,
}

/// One file an unfence moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// Where it was.
    pub from: String,
    /// Where it is kept (empty until moved).
    pub kept: String,
    /// The fence's request id, when the file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl EventRecord {
    /// The record sealed after the chain's `end`: its line and the chain's new end.
    pub fn sealed_line(mut self, end: &crate::audit::chain::Link) -> (String, crate::audit::chain::Link) {
        self.seq = Some(end.seq + 1);
        self.prev_hash = Some(end.hash.clone());
        self.hash = None;
        let hash = crate::audit::chain::hash_of(&serde_json::to_value(&self).expect("a record serialises"));
        self.hash = Some(hash.clone());
        let link = crate::audit::chain::Link { seq: end.seq + 1, hash };
        (self.line(), link)
    }

    /// The record as a JSONL line as it stands (outside the chain unless sealed).
    pub fn line(&self) -> String {
        format!("{}\n", crate::audit::pyjson::dumps(self))
    }

    /// Appends the record to the detailed log: sealed after the chain's end, or as it stands when
    /// the log's lock is not had in time (see `audit::log`); then sends it to journald
    /// (`audit::journal`), `readable` as its message: the line as appended, or, when the append
    /// failed, the record outside the chain (its seal never reached the log).
    pub fn append_to(
        &self,
        log: &crate::audit::log::ChainedLog,
        readable: &str,
    ) -> std::io::Result<crate::audit::log::Appended> {
        let sealed = std::cell::RefCell::new(String::new());
        let appended = log.append(
            |end| {
                let (line, link) = self.clone().sealed_line(end);
                *sealed.borrow_mut() = line.clone();
                (line, link)
            },
            || self.line(),
        );
        match &appended {
            Ok(crate::audit::log::Appended::Chained(link)) => {
                self.send_to_journal(&sealed.borrow(), Some(link), readable)
            }
            // Outside the chain, or not in the log at all: the record as it stands.
            _ => self.send_to_journal(&self.line(), None, readable),
        }
        appended
    }

    /// Sends the record's journald entry (see [`EventRecord::journal_fields`]): also when the log
    /// itself cannot be written, the journal keeps the record.
    pub fn send_to_journal(&self, line: &str, link: Option<&crate::audit::chain::Link>, readable: &str) {
        crate::audit::journal::send(&self.journal_fields(line, link, readable));
    }

    /// The journald entry of this record, appended as `line` (its newline dropped), `link` its place
    /// in the chain: the line itself in `GFS2_FENCE_RECORD`, the fields people filter on beside it.
    pub fn journal_fields(
        &self,
        line: &str,
        link: Option<&crate::audit::chain::Link>,
        readable: &str,
    ) -> Vec<(&'static str, String)> {
        let priority = if self.status == "failed" { "4" } else { "6" };
        let mut f = vec![
            ("MESSAGE", readable.trim_end().to_string()),
            ("PRIORITY", priority.to_string()),
            ("SYSLOG_IDENTIFIER", crate::audit::journal::IDENT.to_string()),
            // authpriv, as the anchors.
            ("SYSLOG_FACILITY", "10".to_string()),
            (crate::audit::journal::RECORD_FIELD, line.trim_end_matches('\n').to_string()),
            ("GFS2_FENCE_RABBIT", self.recorder_node.clone()),
            ("GFS2_FENCE_TARGET", self.target_node.clone()),
            ("GFS2_FENCE_ACTION", self.action.clone()),
            ("GFS2_FENCE_STATUS", self.status.clone()),
            ("GFS2_FENCE_FILESYSTEMS", self.gfs2_filesystems.join(" ")),
        ];
        let optional = [
            ("GFS2_FENCE_CLUSTER", &self.cluster),
            ("GFS2_FENCE_NODE", &self.nodename),
            ("GFS2_FENCE_REQUEST_ID", &self.request_id),
            ("GFS2_FENCE_OUTCOME", &self.outcome),
            ("GFS2_FENCE_SOURCE", &self.source),
        ];
        f.extend(optional.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))));
        if let Some(link) = link {
            f.push(("GFS2_FENCE_SEQ", link.seq.to_string()));
            f.push(("GFS2_FENCE_HASH", link.hash.clone()));
        }
        f
    }
}

/// A readable-log line, byte-compatible with the original recorder's:
/// `[stamp] ACTION=… TARGET=… GFS2=[…] STATUS=… DETAILS=…` (newlines in details become spaces).
pub fn readable_line(stamp: &str, action: &str, target: &str, gfs2: &[String], status: &str, details: &str) -> String {
    format!(
        "[{stamp}] ACTION={action} TARGET={target} GFS2={} STATUS={status} DETAILS={}\n",
        crate::audit::pyjson::dumps(gfs2),
        details.replace(['\n', '\r'], " ")
    )
}
