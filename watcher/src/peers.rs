//! Event-driven recovery: for each live peer, a thread blocks in flock(2) for a shared lock on the
//! peer's member lock. The kernel grants it the moment the peer dies (SIGKILL included, or a peer
//! fenced by this sweep), the thread reports the peer's id and exits, and the main loop recovers the
//! dead peer's claims at once instead of at the next rescan. New peers are found at each heartbeat,
//! and so is a peer that died before a watch was put on it.
//!
//! Locks taken: a shared lock on `members/<peer>.lock`, released as soon as it is granted (a peer
//! restarting under the same id retries its exclusive lock briefly; see `member`).

use std::collections::HashSet;

use tokio::sync::mpsc;

use ha::spool::Spool;

/// The peers being watched.
#[derive(Debug)]
pub struct PeerWatch {
    watched: HashSet<String>,
    /// Peers whose member lock was found free (dead before a watch could be put on them).
    dead: HashSet<String>,
    deaths: mpsc::UnboundedSender<String>,
}

impl PeerWatch {
    /// A watch reporting deaths on `deaths`.
    pub fn new(deaths: mpsc::UnboundedSender<String>) -> PeerWatch {
        PeerWatch { watched: HashSet::new(), dead: HashSet::new(), deaths }
    }

    /// Starts watching every live peer not watched yet. Returns true when it found a peer dead that
    /// it had not seen dead before (one that died before a watch was on it): recover now.
    pub fn arm(&mut self, spool: &Spool, own_id: &str) -> bool {
        let mut found_dead = false;
        let Ok(members) = ha::cluster::members::members(spool) else { return false };
        for (id, path) in members {
            if id == own_id || self.watched.contains(&id) {
                continue;
            }
            if !ha::fsio::lock::held(&path, ha::fsio::lock::IfUnreadable::NotHeld) {
                found_dead |= self.dead.insert(id);
                continue;
            }
            self.dead.remove(&id);
            let tx = self.deaths.clone();
            let spawned = std::thread::Builder::new().name(format!("peer-{id}")).spawn({
                let id = id.clone();
                move || {
                    if let Err(e) = ha::fsio::lock::wait_released(&path) {
                        tracing::warn!(peer = %id, "watching a peer's member lock: {e}");
                    }
                    let _ = tx.send(id);
                }
            });
            match spawned {
                Ok(_) => {
                    tracing::debug!(peer = %id, "watching the peer's member lock");
                    self.watched.insert(id);
                }
                Err(e) => tracing::warn!("cannot start a peer watch thread: {e}"),
            }
        }
        found_dead
    }

    /// Records that the watch on `id` ended (the peer released its lock or died).
    pub fn ended(&mut self, id: &str) {
        self.watched.remove(id);
        self.dead.insert(id.to_string());
    }
}
