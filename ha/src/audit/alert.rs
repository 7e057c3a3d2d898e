//! Fencing events from Pacemaker's alert agent, so that the audit trail records every fence in the
//! cluster (fence_ipmilan, sbd, ours), not only ours.
//!
//! Pacemaker runs alert agents as `hacluster`, which must not write the root-only logs or spool.
//! `gfs2-fence-alert` therefore drops each fencing alert as `<uuid>.json` ([`Alert`]) into a drop
//! directory (the alert's recipient; default [`DEFAULT_DIR`], created by tmpfiles.d as
//! `1730 root haclient`: members of haclient may create files there but not list or read them),
//! written under a dot-name, fsynced and renamed into place. The leader watcher ingests them:
//! it appends a chained record to the detailed log (and a readable line), then removes the file;
//! a file that is not a valid alert is quarantined with its reason.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The drop directory when the alert has no recipient.
pub const DEFAULT_DIR: &str = "/run/gfs2-fencing-alerts";
/// Largest alert file read.
pub const MAX_SIZE: u64 = 64 * 1024;
/// Longest value kept from the environment.
const MAX_VALUE: usize = 4096;

/// One fencing alert, as dropped by `gfs2-fence-alert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Format version (1).
    pub version: u32,
    /// The node fenced (`CRM_alert_node`).
    pub node: String,
    /// The fencing action (`CRM_alert_task`: off, reboot, on).
    pub task: String,
    /// Its return code (`CRM_alert_rc`; 0 is success).
    pub rc: i32,
    /// Pacemaker's summary: origin, target, device, result (`CRM_alert_desc`).
    pub desc: String,
    /// When Pacemaker created the alert (`CRM_alert_timestamp`, in the alert's timestamp-format).
    pub alert_timestamp: String,
    /// When the alert agent ran, RFC 3339 UTC.
    pub received: String,
    /// The host the alert agent ran on.
    pub host: String,
    /// Every `CRM_alert_*` variable as given.
    pub env: BTreeMap<String, String>,
}

/// Why the environment or a file is not a fencing alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// Another kind of alert (node, resource, attribute): nothing to record.
    #[error("not a fencing alert (CRM_alert_kind={0:?})")]
    NotFencing(String),
    /// A required variable or field is missing or bad.
    #[error("{0}")]
    Bad(String),
}

impl Alert {
    /// The alert described by Pacemaker's `CRM_alert_*` environment (`vars`).
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
        received: String,
        host: String,
    ) -> Result<Alert, AlertError> {
        let env: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("CRM_alert_"))
            .map(|(k, v)| (k, v.chars().take(MAX_VALUE).collect()))
            .collect();
        let get = |k: &str| env.get(k).cloned().unwrap_or_default();
        let kind = get("CRM_alert_kind");
        if kind != "fencing" {
            return Err(AlertError::NotFencing(kind));
        }
        let rc = get("CRM_alert_rc");
        let alert = Alert {
            version: 1,
            node: get("CRM_alert_node"),
            task: get("CRM_alert_task"),
            rc: rc.trim().parse().map_err(|_| AlertError::Bad(format!("CRM_alert_rc {rc:?} is not a number")))?,
            desc: get("CRM_alert_desc"),
            alert_timestamp: get("CRM_alert_timestamp"),
            received,
            host,
            env,
        };
        alert.validate()?;
        Ok(alert)
    }

    /// Parses and checks an alert file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Alert, AlertError> {
        let a: Alert =
            serde_json::from_slice(bytes).map_err(|e| AlertError::Bad(format!("invalid alert JSON: {e}")))?;
        a.validate()?;
        Ok(a)
    }

    fn validate(&self) -> Result<(), AlertError> {
        if self.version != 1 {
            return Err(AlertError::Bad(format!("unknown alert version {}", self.version)));
        }
        if self.node.is_empty() || self.node.len() > 253 || self.node.chars().any(char::is_control) {
            return Err(AlertError::Bad(format!("bad node name {:?}", self.node)));
        }
        if self.task.is_empty()
            || self.task.len() > 32
            || !self.task.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(AlertError::Bad(format!("bad fencing task {:?}", self.task)));
        }
        Ok(())
    }

    /// Writes the alert into the drop directory `dir` (which must exist): dot-name, fsync, rename.
    pub fn drop_into(&self, dir: &Path) -> crate::error::Result<std::path::PathBuf> {
        let dest = dir.join(format!("{}.json", uuid::Uuid::new_v4()));
        let bytes = serde_json::to_vec(self).expect("an alert serialises");
        crate::fsio::write_new(dir, &dest, &bytes)?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kind: &str, rc: &str) -> Vec<(String, String)> {
        [
            ("CRM_alert_kind", kind),
            ("CRM_alert_node", "node2"),
            ("CRM_alert_task", "reboot"),
            ("CRM_alert_rc", rc),
            ("CRM_alert_desc", "Operation reboot of node2 by node1 for pacemaker-controld.1234@node1: OK"),
            ("CRM_alert_timestamp", "2026-11-25 10:00:00.123456"),
            ("CRM_alert_recipient", "/run/gfs2-fencing-alerts"),
            ("PATH", "/usr/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn fencing_alerts_are_read_and_others_skipped() {
        let a = Alert::from_env(env("fencing", "0"), "t".into(), "rabbit".into()).unwrap();
        assert_eq!((a.node.as_str(), a.task.as_str(), a.rc), ("node2", "reboot", 0));
        assert!(!a.env.contains_key("PATH"));
        assert_eq!(Alert::parse(&serde_json::to_vec(&a).unwrap()).unwrap(), a);
        assert!(matches!(Alert::from_env(env("node", "0"), "t".into(), "h".into()), Err(AlertError::NotFencing(_))));
        assert!(Alert::from_env(env("fencing", "x"), "t".into(), "h".into()).is_err());
        assert!(Alert::parse(b"{}").is_err());
        let bad = serde_json::to_vec(&Alert { task: "rm -rf".into(), ..a }).unwrap();
        assert!(Alert::parse(&bad).unwrap_err().to_string().contains("bad fencing task"));
    }
}
