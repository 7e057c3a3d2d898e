//! `health.json`: the leader's periodic check of every configured fence path (each command's
//! `monitor` action with its options), read by the agent's `monitor` so Pacemaker learns of a broken
//! fence path before it needs it.
//!
//! A report is trusted for three check intervals in the boot it was taken; older, it is ignored (the
//! agent's monitor then judges only the spool and the watchers).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fsio;
use crate::os::clock::BootTime;
use crate::spool::Spool;

/// One fence path's last check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathHealth {
    /// The fence command.
    pub command: String,
    /// The targets configured explicitly for it (empty for the default entry alone).
    pub targets: Vec<String>,
    /// Whether this is the default entry (it fences every target without an entry).
    pub default: bool,
    /// Whether `monitor` succeeded.
    pub ok: bool,
    /// What it said, or why it failed.
    pub message: String,
}

/// The leader's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// When, RFC 3339.
    pub checked: String,
    /// When, CLOCK_BOOTTIME.
    pub checked_boottime_ns: u64,
    /// The boot of that clock.
    pub boot_id: String,
    /// The check period.
    pub interval_ms: u64,
    /// Every configured path.
    pub paths: Vec<PathHealth>,
}

/// `<base>/health.json`.
pub fn path(spool: &Spool) -> PathBuf {
    spool.base().join("health.json")
}

/// The last report, if one can be read.
pub fn read(spool: &Spool) -> Option<Health> {
    let bytes = fsio::read_capped(&path(spool), fsio::MAX_SPOOL_FILE).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Health {
    /// Whether the report is recent enough to act on.
    pub fn is_fresh(&self, now: BootTime, boot_id: &str) -> bool {
        self.boot_id == boot_id
            && BootTime(self.checked_boottime_ns).until(now)
                <= Duration::from_millis(self.interval_ms.saturating_mul(3))
    }

    /// Judges the fence path: for `plug`, the path that fences it; without a plug, the default path,
    /// or every path when there is no default. `Ok` carries warnings about other broken paths.
    pub fn verdict(&self, plug: Option<&str>) -> Result<Vec<String>, String> {
        let broken = |p: &PathHealth| format!("fence path {} is broken: {}", p.command, p.message);
        let serving = |t: &str| {
            self.paths
                .iter()
                .find(|p| p.targets.iter().any(|x| x == t))
                .or_else(|| self.paths.iter().find(|p| p.default))
        };
        let decisive: Vec<&PathHealth> = match plug {
            Some(t) => serving(t).into_iter().collect(),
            None => match self.paths.iter().find(|p| p.default) {
                Some(d) => vec![d],
                None if self.paths.iter().all(|p| !p.ok) => self.paths.iter().collect(),
                None => vec![],
            },
        };
        if let Some(p) = decisive.iter().find(|p| !p.ok) {
            return Err(broken(p));
        }
        Ok(self
            .paths
            .iter()
            .filter(|p| !p.ok)
            .map(|p| format!("{} (targets {})", broken(p), p.targets.join(" ")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(command: &str, targets: &[&str], default: bool, ok: bool) -> PathHealth {
        PathHealth {
            command: command.into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            default,
            ok,
            message: if ok { "ok".into() } else { "unreachable".into() },
        }
    }

    fn health(paths: Vec<PathHealth>) -> Health {
        Health { checked: String::new(), checked_boottime_ns: 1_000, boot_id: "b".into(), interval_ms: 1_000, paths }
    }

    #[test]
    fn a_broken_default_fails_a_broken_target_path_warns_unless_asked_about() {
        let h = health(vec![path("/ipmi", &[], true, true), path("/ipmi", &["n3"], false, false)]);
        assert_eq!(h.verdict(None).unwrap().len(), 1, "warned, not failed");
        assert!(h.verdict(Some("n3")).unwrap_err().contains("unreachable"));
        assert!(h.verdict(Some("n4")).is_ok());
        let h = health(vec![path("/nnf", &[], true, false)]);
        assert!(h.verdict(None).is_err());
        let h = health(vec![path("/a", &["n1"], false, false), path("/b", &["n2"], false, false)]);
        assert!(h.verdict(None).is_err(), "every path broken");
    }

    #[test]
    fn reports_expire_after_three_intervals_or_a_reboot() {
        let h = health(vec![]);
        assert!(h.is_fresh(BootTime(1_000 + 2_999_000_000), "b"));
        assert!(!h.is_fresh(BootTime(1_000 + 3_001_000_000), "b"));
        assert!(!h.is_fresh(BootTime(2_000), "other-boot"));
    }
}
