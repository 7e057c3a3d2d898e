//! Watcher membership: who is alive on this spool.
//!
//! Each watcher holds an exclusive flock on `members/<id>.lock` for its whole life and rewrites
//! `members/<id>.json` (a [`Heartbeat`]) periodically. A watcher is live exactly when its member lock
//! is held; the heartbeat tells how recently it made progress (a frozen watcher keeps its lock but
//! its counter stops). Liveness is probed with a non-blocking shared lock (see `fsio::lock`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{HaError, Result};
use crate::fsio::lock::probe_held;
use crate::spool::{Dir, Spool};

/// A watcher's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The watcher's id.
    pub watcher_id: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// Incremented at every heartbeat.
    pub counter: u64,
    /// CLOCK_BOOTTIME of this heartbeat.
    pub boottime_ns: u64,
    /// The boot the clock belongs to.
    pub boot_id: String,
    /// The process's start time (`/proc/<pid>/stat` field 22), so a peer never kills a reused pid.
    #[serde(default)]
    pub start_time: u64,
    /// Process ids (= process-group ids) of the fence commands running now.
    #[serde(default)]
    pub children: Vec<u32>,
}

/// `members/<id>.lock`.
pub fn lock_path(spool: &Spool, id: &str) -> PathBuf {
    spool.dir(Dir::Members).join(format!("{id}.lock"))
}

/// `members/<id>.json`.
pub fn heartbeat_path(spool: &Spool, id: &str) -> PathBuf {
    spool.dir(Dir::Members).join(format!("{id}.json"))
}

/// The prefix of the transient file a joining watcher creates in `members/` (see [`announce`]).
pub const JOIN_PREFIX: &str = ".join.";

/// Tells peers watching `members/` for `IN_CREATE` that `id` has joined: creates and removes
/// `members/.join.<id>`. Heartbeats (rewritten by rename) never create an entry, so peers wake for
/// joins only, not at every heartbeat or fence.
pub fn announce(spool: &Spool, id: &str) -> Result<()> {
    let path = spool.dir(Dir::Members).join(format!("{JOIN_PREFIX}{id}"));
    let _ = std::fs::remove_file(&path);
    drop(crate::fsio::create_new(&path)?);
    std::fs::remove_file(&path).map_err(HaError::at("remove", &path))
}

/// The ids of the watchers whose member lock is held now, sorted.
pub fn live_members(spool: &Spool) -> Result<Vec<String>> {
    let dir = spool.dir(Dir::Members);
    let mut live = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(HaError::at("list", &dir))? {
        let entry = entry.map_err(HaError::at("list", &dir))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
            continue;
        };
        if probe_held(&entry.path())? == Some(true) {
            live.push(id.to_string());
        }
    }
    live.sort();
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::lock::{open_lock_file, try_exclusive};

    #[test]
    fn a_member_is_live_while_its_lock_is_held() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path());
        s.prepare(&[Dir::Members]).unwrap();
        assert!(live_members(&s).unwrap().is_empty());
        let p = lock_path(&s, "w1");
        let held = try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().unwrap();
        std::fs::write(heartbeat_path(&s, "w1"), "{}").unwrap();
        assert_eq!(live_members(&s).unwrap(), ["w1"]);
        drop(held);
        assert!(live_members(&s).unwrap().is_empty());
    }
}
