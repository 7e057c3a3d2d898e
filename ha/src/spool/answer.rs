//! Writing the answer and retiring a claim.
//!
//! - [`respond`]: the first response for a request wins (no-replace move into `responses/`) and wakes
//!   the waiting agent through its FIFO; a later one is kept in `done/` as
//!   `<id>.superseded.<watcher>.<n>.json` and reported, never lost.
//! - [`finish`]: moves the claimed file to `done/`, removes the agent's waiting lock file, then drops
//!   the lease. The lease is released only after its file has left `claimed/`.
//! - [`requeue`]: puts a request back in `requests/` as a fresh, unlocked file with the same bytes
//!   and the same modification time (its place in submission order), then removes the claimed file
//!   and drops the lease (shutdown, recovery of a dead claim).

use std::path::PathBuf;

use super::layout::{Dir, Spool};
use crate::error::Result;
use crate::fsio::lock::Lock;
use crate::fsio::{self, TempFile};
use crate::protocol::response::Response;
use crate::spool::claim::Claimed;

/// Where a response ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// It is the response.
    First,
    /// Another response was there first; this one was kept at the path in `done/`.
    Superseded(PathBuf),
}

/// Places `resp` as `responses/<name>` (`name`: the request's own file name, which its client
/// reads), unless a real response is already there. Whatever else is at that path is moved to
/// `quarantine/` with a `.reason` file first, and the real answer takes its place.
pub fn respond(spool: &Spool, resp: &Response, name: &str) -> Result<Placed> {
    let id = &resp.request_id;
    let dest = spool.dir(Dir::Responses).join(name);
    // The answer is the one durable publish of a fence: the record that a node was fenced, and what
    // keeps an answered request from running again after a power cut (PROTOCOL.md).
    let mut tmp =
        TempFile::write(&spool.dir(Dir::Tmp), &format!("{id}.response"), &resp.to_json(), fsio::Durability::Durable)?;
    loop {
        match tmp.place(&dest)? {
            Ok(()) => {
                fsio::wake::wake(&spool.waiting_fifo(id));
                return Ok(Placed::First);
            }
            Err(back) => tmp = back,
        }
        match crate::protocol::response::not_an_answer(&dest, id) {
            Some(why) => {
                crate::spool::claim::quarantine(
                    spool,
                    &dest,
                    &format!("found where the answer to {id} belongs: {why}"),
                )?;
            }
            None if dest.symlink_metadata().is_ok() => break,
            None => {}
        }
    }
    let watcher = resp.watcher_id.as_deref().unwrap_or("unknown");
    let mut n = 1;
    loop {
        let dest = spool.dir(Dir::Done).join(format!("{id}.superseded.{watcher}.{n}.json"));
        match tmp.place(&dest)? {
            Ok(()) => {
                tracing::warn!(request_id = %id, kept = %dest.display(), "a response already existed; this one is kept as superseded");
                return Ok(Placed::Superseded(dest));
            }
            Err(back) => {
                tmp = back;
                n += 1;
            }
        }
    }
}

/// Moves a file out of `claimed/` into `done/` under a unique name. `false`: it was already gone.
fn retire(spool: &Spool, from: &std::path::Path, name: &str) -> Result<bool> {
    Ok(fsio::move_into(from, &spool.dir(Dir::Done), name)?.is_some())
}

fn remove_waiting(spool: &Spool, id: &str) {
    let _ = std::fs::remove_file(spool.waiting_lock(id));
    let _ = std::fs::remove_file(spool.waiting_fifo(id));
    let _ = std::fs::remove_file(spool.waiver(id));
}

/// Retires an answered claim: `claimed/` → `done/`, waiting lock file removed, lease dropped.
pub fn finish(spool: &Spool, claimed: Claimed) -> Result<()> {
    let from = claimed.path(spool);
    if !retire(spool, &from, &claimed.name.to_string())? {
        tracing::warn!(request_id = %claimed.name.id, "claimed file vanished before it could be retired");
    }
    remove_waiting(spool, &claimed.name.id);
    drop(claimed.lease);
    Ok(())
}

/// Retires a claim found with a response already written (recovery of a watcher that died between
/// answering and retiring).
pub fn finish_orphan(spool: &Spool, lease: Lock, id: &str, file_name: &str) -> Result<()> {
    retire(spool, lease.path(), file_name)?;
    remove_waiting(spool, id);
    drop(lease);
    Ok(())
}

/// Puts the request back in `requests/` as a fresh file, removes the claimed file, drops the lease.
pub fn requeue(spool: &Spool, lease: Lock, id: &str, name: &str, bytes: &[u8]) -> Result<()> {
    // The claimed file kept the request's modification time through its rename: the requeued copy
    // keeps it too, so the request keeps its place in its target's submission order. It keeps its
    // own name (`name`), in the generation its client wrote.
    let submitted = lease.file().metadata().and_then(|m| m.modified()).ok();
    let dest = spool.dir(Dir::Requests).join(name);
    let placed = fsio::write_new_dated(&spool.dir(Dir::Tmp), &dest, bytes, submitted)?;
    if !placed {
        tracing::warn!(request_id = %id, "a request with this id was already queued; keeping that one");
    }
    let claimed = lease.path().to_path_buf();
    match std::fs::remove_file(&claimed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::error::HaError::io("unlink", &claimed, e)),
    }
    drop(lease);
    Ok(())
}

/// Releases a claim that will not be executed by this watcher (shutdown before the fence ran).
pub fn release(spool: &Spool, claimed: Claimed) -> Result<()> {
    let name = claimed.file_name();
    requeue(spool, claimed.lease, &claimed.name.id, &name, &claimed.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::wake::Fifo;

    #[test]
    fn the_first_response_wakes_the_waiting_agent_a_superseded_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path().join("spool"));
        spool.prepare(&crate::spool::layout::WATCHER_DIRS).unwrap();
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        let fifo = Fifo::create(&spool.waiting_fifo(id)).unwrap();
        let resp = Response {
            request_id: id.into(),
            success: true,
            action_performed: "off".into(),
            target_node: "n".into(),
            message: "m".into(),
            timestamp: "t".into(),
            version: Some(1),
            power_state: None,
            watcher_id: Some("w1".into()),
            attempts: None,
            duration_ms: None,
            outcome: None,
            epoch: None,
        };
        assert_eq!(respond(&spool, &resp, &format!("{id}.json")).unwrap(), Placed::First);
        assert!(fifo.drain(), "woken");
        assert!(matches!(respond(&spool, &resp, &format!("{id}.json")).unwrap(), Placed::Superseded(_)));
        assert!(!fifo.drain(), "a superseded response changes nothing the agent reads");
    }
}
