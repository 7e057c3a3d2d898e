//! Leader election: exactly one watcher holds `flock` on `leader.lock`.
//!
//! Standbys block in flock(2) in a thread of their own; the kernel wakes one the moment the leader
//! releases the lock or dies (SIGKILL included), so takeover costs tens of milliseconds, not a lease
//! period. A frozen leader keeps the lock; its peers fence it like any frozen watcher. Each new
//! leader increments the epoch persisted in `leader.json` and publishes that record atomically.
//!
//! Locks taken: `leader.lock`, exclusive, for as long as the watcher leads (its whole life).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{HaError, Result};
use crate::fsio::{self, lock, ReadError};
use crate::spool::{Dir, Spool};

/// The published leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    /// The leader's watcher id.
    pub watcher_id: String,
    /// Its pid.
    pub pid: u32,
    /// Its host.
    pub host: String,
    /// Incremented by every new leader.
    pub epoch: u64,
    /// When it took office, RFC 3339.
    pub since: String,
    /// When it took office, CLOCK_BOOTTIME.
    pub since_boottime_ns: u64,
}

/// `<base>/leader.lock`.
pub fn lock_path(spool: &Spool) -> PathBuf {
    spool.base().join("leader.lock")
}

/// `<base>/leader.json`.
pub fn record_path(spool: &Spool) -> PathBuf {
    spool.base().join("leader.json")
}

/// The published record, if any.
pub fn read(spool: &Spool) -> Result<Option<LeaderRecord>> {
    let path = record_path(spool);
    match fsio::read_capped(&path, fsio::MAX_SPOOL_FILE) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(ReadError::Gone) => Ok(None),
        Err(ReadError::Io(e)) => Err(e),
        Err(e) => Err(HaError::io("read", &path, std::io::Error::other(e.to_string()))),
    }
}

/// Blocks until this process holds the leader lock.
pub fn wait_for_office(spool: &Spool) -> Result<lock::Lock> {
    let path = lock_path(spool);
    lock::exclusive(lock::open_lock_file(&path)?, &path)
}

/// Takes office (the caller holds the leader lock): the epoch is the previous one plus one.
pub fn take_office(spool: &Spool, watcher_id: &str, host: &str) -> Result<LeaderRecord> {
    let epoch = read(spool)?.map_or(0, |r| r.epoch) + 1;
    let record = LeaderRecord {
        watcher_id: watcher_id.to_string(),
        pid: std::process::id(),
        host: host.to_string(),
        epoch,
        since: crate::clock::rfc3339_now(),
        since_boottime_ns: crate::clock::BootTime::now().0,
    };
    let bytes = serde_json::to_vec(&record).expect("a leader record serialises");
    fsio::write_replace(&spool.dir(Dir::Tmp), &record_path(spool), &bytes)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_leader_raises_the_epoch() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path());
        s.prepare(&[Dir::Tmp]).unwrap();
        assert_eq!(read(&s).unwrap(), None);
        let held = wait_for_office(&s).unwrap();
        assert_eq!(take_office(&s, "w1", "h").unwrap().epoch, 1);
        drop(held);
        let _held = wait_for_office(&s).unwrap();
        let r = take_office(&s, "w2", "h").unwrap();
        assert_eq!((r.epoch, r.watcher_id.as_str()), (2, "w2"));
        assert_eq!(read(&s).unwrap(), Some(r));
    }
}
