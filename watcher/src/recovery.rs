//! Recovery of dead watchers' claims from a running watcher (`ha::spool::recover` does the work):
//! each dead claim is requeued only under its target's lock, so a dead holder's fence command still
//! dying, or a peer fencing that key now, defers it (the main loop retries shortly). Counts what it
//! recovered. Called by the main loop (a peer died or joined), the sweep and a job that holds a
//! target's lock. Nothing is recovered while this watcher stands aside for older peers (`aside`).

use std::sync::atomic::Ordering;

use crate::shared::Shared;

/// Recovers dead watchers' claims, counting them.
pub fn recover(shared: &Shared) {
    recover_except(shared, None);
}

/// Recovers dead claims, requeueing each only under its target's lock (`ha::spool::recover::recover_with`),
/// except for the key `held`, whose lock the caller holds already. Returns what was recovered.
pub fn recover_except(shared: &Shared, held: Option<&str>) -> Vec<ha::spool::recover::Recovered> {
    if crate::aside::standing_aside(shared) {
        // The older watchers recover their own dead peers' claims (see `aside`).
        return Vec::new();
    }
    let spool = &shared.settings.spool;
    let mut deferred = false;
    let key_lock = |req: &ha::protocol::request::Request| -> Result<ha::spool::recover::KeyLock, ha::HaError> {
        let key = shared.settings.fence.exclusion_key(&req.target_node);
        if held == Some(key.as_str()) {
            return Ok(Some(None));
        }
        let path = spool.target_lock(&key);
        let lock = ha::fsio::lock::try_exclusive(ha::fsio::lock::open_lock_file(&path)?, &path)?;
        // Held: the dead holder's fence command is still dying, or a peer fences that key now.
        deferred |= lock.is_none();
        Ok(lock.map(Some))
    };
    let result = ha::spool::recover::recover_with(spool, key_lock);
    shared.recovery_deferred.store(deferred, Ordering::Relaxed);
    match result {
        Ok(done) => {
            shared.metrics.recovered(done.len());
            done
        }
        Err(e) => {
            tracing::error!("recovering dead claims: {e}");
            Vec::new()
        }
    }
}
