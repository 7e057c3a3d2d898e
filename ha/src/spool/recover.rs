//! Recovering the claims of dead watchers.
//!
//! Any watcher may run it at any time: under the claim's own flock it is idempotent, and leadership
//! only avoids duplicate work. A claimed file whose lease (flock) is free belongs to a dead watcher:
//! if a response exists the claim is retired to `done/`, otherwise the request is requeued as a fresh
//! file (its attempt count lives in `attempts/`). Deadlines and vanished agents are judged at the next
//! claim, as for any request. Claims this process holds are skipped naturally: flock conflicts
//! between two descriptors of one process too.

use std::os::unix::fs::MetadataExt;

use super::layout::{Dir, Spool};
use crate::error::{HaError, Result};
use crate::fsio::lock::Lock;
use crate::fsio::{self, lock, ReadError};
use crate::protocol::names::ClaimName;
use crate::spool::answer;
use crate::spool::claim;
use crate::spool::decide::{recovery, RecoveryAction};

/// What recovery did to one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Its response existed: retired to `done/`.
    Finished(ClaimName),
    /// Requeued for another execution.
    Requeued(ClaimName),
    /// Not a claim name: quarantined.
    Quarantined(String),
}

/// Recovers every claim in `claimed/` whose owner is dead.
pub fn recover(spool: &Spool) -> Result<Vec<Recovered>> {
    recover_with(spool, |_| Ok(Some(None)))
}

/// What a requeue needs before it may put a dead claim's request back: `Some(lock)` to go ahead
/// (holding `lock`, the request's target lock, if any, through the requeue), `None` to leave the
/// claim for later (another process holds its target's lock and will recover it under that lock).
pub type KeyLock = Option<Option<Lock>>;

/// [`recover`], requeueing a dead claim only under what `key_lock` gives for its request. The
/// watchers pass their per-target lock: a dead claim is requeued only by a holder of its target's
/// lock, which observes it into its queue at once, so that no later request of that target is
/// taken in between (submission order survives a holder's death).
pub fn recover_with(
    spool: &Spool,
    mut key_lock: impl FnMut(&crate::protocol::request::Request) -> Result<KeyLock>,
) -> Result<Vec<Recovered>> {
    let dir = spool.dir(Dir::Claimed);
    let mut done = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(HaError::at("list", &dir))? {
        let entry = entry.map_err(HaError::at("list", &dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Some(name) = ClaimName::parse(&file_name) else {
            let reason = "unexpected file in claimed/ (not <id>.<watcher>.<attempt>.json)";
            if claim::quarantine(spool, &path, reason)?.is_some() {
                done.push(Recovered::Quarantined(file_name));
            }
            continue;
        };
        let Ok(file) = fsio::open_nofollow(&path) else {
            continue;
        };
        let Some(lease) = lock::try_exclusive(file, &path)? else {
            continue;
        };
        let still_there = match (lease.file().metadata(), path.symlink_metadata()) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !still_there {
            continue;
        }
        // The claim's content names the target, which a v2 request's answer carries in its name.
        let bytes = match fsio::read_file_capped(lease.file(), &path, fsio::MAX_SPOOL_FILE) {
            Ok(b) => b,
            Err(ReadError::Io(e)) => return Err(e),
            Err(e) => {
                drop(lease);
                claim::quarantine(spool, &path, &format!("unreadable claim: {e}"))?;
                done.push(Recovered::Quarantined(file_name));
                continue;
            }
        };
        let Ok(req) = crate::protocol::request::Request::parse(&bytes) else {
            drop(lease);
            claim::quarantine(spool, &path, "unparsable claim")?;
            done.push(Recovered::Quarantined(file_name));
            continue;
        };
        let request_name = name.naming.file_name(&req.target_node, &name.id);
        let response_exists = spool.dir(Dir::Responses).join(&request_name).symlink_metadata().is_ok();
        match recovery(true, response_exists) {
            RecoveryAction::Leave => {}
            RecoveryAction::Finish => {
                answer::finish_orphan(spool, lease, &name.id, &file_name)?;
                tracing::info!(request_id = %name.id, dead_watcher = %name.watcher, "recovered a dead claim that was already answered");
                done.push(Recovered::Finished(name));
            }
            RecoveryAction::Requeue => {
                let Some(held) = key_lock(&req)? else {
                    continue;
                };
                answer::requeue(spool, lease, &name.id, &request_name, &bytes)?;
                drop(held);
                tracing::warn!(request_id = %name.id, dead_watcher = %name.watcher, attempt = name.attempt,
                    "recovered a dead watcher's claim: requeued");
                done.push(Recovered::Requeued(name));
            }
        }
    }
    Ok(done)
}

/// How many claims in `claimed/` are of requests `belongs` picks, whatever their lease's state (live,
/// dead, or being recovered by a peer). A watcher about to take a target's next request calls it under
/// the target's lock: a claim of that target there is an earlier request (a holder that just died, a
/// peer requeueing it now) and must be served first. Unreadable files count: better wait than skip one.
pub fn claims_where(spool: &Spool, belongs: impl Fn(&crate::protocol::request::Request) -> bool) -> Result<usize> {
    let dir = spool.dir(Dir::Claimed);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).map_err(HaError::at("list", &dir))? {
        let entry = entry.map_err(HaError::at("list", &dir))?;
        match fsio::read_capped(&entry.path(), fsio::MAX_SPOOL_FILE) {
            Ok(bytes) => {
                if crate::protocol::request::Request::parse(&bytes).map_or(true, |r| belongs(&r)) {
                    n += 1;
                }
            }
            Err(ReadError::Gone) => {}
            Err(_) => n += 1,
        }
    }
    Ok(n)
}

/// Re-dispatches the claims of `watcher` whose lease is still held, the watcher being stuck in
/// uninterruptible sleep after SIGKILL: each request is queued again as a fresh file, with its submission time, and marked in `waivers/` (the
/// stuck process may hold the target's lock forever), and the stuck claim moves to `done/` with a
/// `.stuck` suffix so that the holder, if it ever wakes, finds its claim gone and does not answer.
/// Returns the request ids re-dispatched.
pub fn redispatch(spool: &Spool, watcher: &str) -> Result<Vec<String>> {
    let dir = spool.dir(Dir::Claimed);
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(HaError::at("list", &dir))? {
        let entry = entry.map_err(HaError::at("list", &dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = ClaimName::parse(&file_name).filter(|n| n.watcher == watcher) else {
            continue;
        };
        let path = entry.path();
        // Only what the stuck process still holds: a claim of an earlier incarnation with this id,
        // whose lease is free, belongs to ordinary recovery (it may already be answered).
        if lock::probe(&path)? != lock::LockState::Held {
            continue;
        }
        let Ok(bytes) = fsio::read_capped(&path, fsio::MAX_SPOOL_FILE) else {
            continue;
        };
        let Ok(req) = crate::protocol::request::Request::parse(&bytes) else {
            continue;
        };
        let request_name = name.naming.file_name(&req.target_node, &name.id);
        // The waiver is the watchers' own mark, written before the request is queued again: nothing
        // in a request file can waive its target's lock.
        let why = format!("re-dispatched from watcher {watcher}, stuck in uninterruptible sleep\n");
        fsio::write_new(&spool.dir(Dir::Tmp), &spool.waiver(&name.id), why.as_bytes())?;
        let submitted = entry.metadata().and_then(|m| m.modified()).ok();
        let dest = spool.dir(Dir::Requests).join(&request_name);
        if !fsio::write_new_dated(&spool.dir(Dir::Tmp), &dest, &bytes, submitted)? {
            continue;
        }
        let stuck = spool.dir(Dir::Done).join(format!("{file_name}.stuck"));
        fsio::move_noreplace(&path, &stuck)?;
        tracing::error!(request_id = %name.id, stuck_watcher = %watcher,
            "re-dispatched the request of a watcher stuck in uninterruptible sleep; target exclusion is NOT guaranteed for it");
        ids.push(name.id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::claim::{try_claim, Claim};
    use crate::spool::layout::WATCHER_DIRS;

    /// A spool with request `id` queued and claimed by `watcher`.
    fn claimed(id: &str, watcher: &str) -> (tempfile::TempDir, Spool, Box<crate::spool::claim::Claimed>) {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path().join("s"));
        s.prepare(&WATCHER_DIRS).unwrap();
        std::fs::write(
            s.request_path(id),
            format!(r#"{{"request_id":"{id}","timestamp":"t","action":"off","target_node":"n1"}}"#),
        )
        .unwrap();
        let Claim::Claimed(c) = try_claim(&s, &format!("{id}.json"), watcher).unwrap() else { panic!("not claimed") };
        (d, s, c)
    }

    #[test]
    fn a_stuck_holders_claim_is_redispatched_without_target_exclusion() {
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        let (_d, s, stuck) = claimed(id, "stuck");
        assert_eq!(recover(&s).unwrap(), vec![], "a held lease is left alone");
        assert_eq!(redispatch(&s, "stuck").unwrap(), vec![id.to_string()]);
        let claimed_at =
            std::fs::metadata(s.dir(Dir::Done).join(format!("{id}.stuck.1.json.stuck"))).unwrap().modified().unwrap();
        assert!(s.waiver(id).exists(), "the waiver is the watchers' own mark");
        let queued = std::fs::metadata(s.request_path(id)).unwrap();
        assert_eq!(queued.modified().unwrap(), claimed_at, "the request keeps its submission time");
        assert!(!stuck.still_ours(&s), "the stuck holder will find its claim gone");
        assert_eq!(redispatch(&s, "stuck").unwrap(), Vec::<String>::new(), "idempotent");
    }

    #[test]
    fn a_dead_incarnations_answered_claim_is_left_to_recovery() {
        let id = "1b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        let (_d, s, dead) = claimed(id, "w0");
        std::fs::write(s.response_path(id), "{}").unwrap();
        drop(dead);
        assert_eq!(redispatch(&s, "w0").unwrap(), Vec::<String>::new(), "its lease is free: not stuck");
        assert!(!s.request_path(id).exists(), "an answered request is never queued again");
        assert_eq!(recover(&s).unwrap().len(), 1, "recovery retires it");
    }
}
