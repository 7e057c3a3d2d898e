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
    // A leader.lock that is not a regular file (a directory, a symlink, a FIFO) can be nobody's
    // lock: move it aside with its reason so that a real one can be made.
    if let Ok(meta) = path.symlink_metadata() {
        if !meta.file_type().is_file() {
            crate::spool::claim::quarantine(spool, &path, "leader.lock is not a regular file")?;
        }
    }
    lock::exclusive(lock::open_lock_file(&path)?, &path)
}

/// Takes office (the caller holds the leader lock): the epoch is the previous one plus one.
pub fn take_office(spool: &Spool, watcher_id: &str, host: &str, lock: &lock::Lock) -> Result<LeaderRecord> {
    let epoch = last_epoch(spool, lock)? + 1;
    let record = LeaderRecord {
        watcher_id: watcher_id.to_string(),
        pid: std::process::id(),
        host: host.to_string(),
        epoch,
        since: crate::os::clock::rfc3339_now(),
        since_boottime_ns: crate::os::clock::BootTime::now().0,
    };
    let bytes = serde_json::to_vec(&record).expect("a leader record serialises");
    fsio::write_replace(&spool.dir(Dir::Tmp), &record_path(spool), &bytes)?;
    write_epoch(lock, epoch)?;
    Ok(record)
}

/// The highest epoch on record: `leader.json`'s and the one each leader also writes into
/// `leader.lock` (which only the lock's holder writes). A `leader.json` that is not a readable
/// record (a directory, garbage, a symlink) is moved to `quarantine/` with its reason, so the new
/// record can take its place; the lock file's copy keeps the epoch from going backwards.
fn last_epoch(spool: &Spool, lock: &lock::Lock) -> Result<u64> {
    let path = record_path(spool);
    let from_record = match fsio::read_capped(&path, fsio::MAX_SPOOL_FILE) {
        Ok(bytes) => match serde_json::from_slice::<LeaderRecord>(&bytes) {
            Ok(r) => r.epoch,
            Err(e) => {
                crate::spool::claim::quarantine(spool, &path, &format!("leader.json is not a leader record: {e}"))?;
                0
            }
        },
        Err(ReadError::Gone) => 0,
        Err(ReadError::Io(e)) => return Err(e),
        Err(e) => {
            crate::spool::claim::quarantine(spool, &path, &format!("leader.json cannot be read: {e}"))?;
            0
        }
    };
    Ok(from_record.max(read_epoch(lock)))
}

/// The epoch written in the lock file (0 when none is).
fn read_epoch(lock: &lock::Lock) -> u64 {
    use std::io::{Read, Seek};
    let mut f = lock.file();
    let mut text = String::new();
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.take(32).read_to_string(&mut text);
    text.trim().parse().unwrap_or(0)
}

/// Writes `epoch` into the held lock file.
fn write_epoch(lock: &lock::Lock, epoch: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let text = format!("{epoch}\n");
    let f = lock.file();
    f.set_len(0).map_err(HaError::at("truncate", lock.path()))?;
    f.write_all_at(text.as_bytes(), 0).map_err(HaError::at("write", lock.path()))?;
    Ok(())
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
        assert_eq!(take_office(&s, "w1", "h", &held).unwrap().epoch, 1);
        drop(held);
        let held = wait_for_office(&s).unwrap();
        let r = take_office(&s, "w2", "h", &held).unwrap();
        assert_eq!((r.epoch, r.watcher_id.as_str()), (2, "w2"));
        assert_eq!(read(&s).unwrap(), Some(r));
        drop(held);
        // leader.json replaced by a directory, then by garbage: moved aside, the epoch still rises.
        s.prepare(&[Dir::Quarantine]).unwrap();
        for bad in ["dir", "garbage"] {
            std::fs::remove_file(record_path(&s)).unwrap();
            if bad == "dir" {
                std::fs::create_dir(record_path(&s)).unwrap();
            } else {
                std::fs::write(record_path(&s), "{\"epoch\": ").unwrap();
            }
            let held = wait_for_office(&s).unwrap();
            let r = take_office(&s, "w3", "h", &held).unwrap();
            assert_eq!(r.epoch, if bad == "dir" { 3 } else { 4 }, "{bad}: the epoch never goes backwards");
        }
    }
}
