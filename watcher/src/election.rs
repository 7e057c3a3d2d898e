//! This watcher's candidacy: a thread blocked in flock(2) on `leader.lock` until the kernel grants
//! it, then the new leader's record (epoch + 1) and its duties (see `sweep` and `fencepath`).

use tokio::sync::oneshot;

use ha::cluster::leader::LeaderRecord;
use ha::fsio::lock::Lock;
use ha::spool::Spool;

/// Starts waiting for office; the receiver yields the leader lock once held.
pub fn stand(spool: &Spool) -> oneshot::Receiver<Result<Lock, ha::HaError>> {
    let (tx, rx) = oneshot::channel();
    let spool = spool.clone();
    std::thread::Builder::new()
        .name("leader-candidate".into())
        .spawn(move || {
            let _ = tx.send(ha::cluster::leader::wait_for_office(&spool));
        })
        .expect("a thread can be started at start-up");
    rx
}

/// Takes office with the lock held: publishes `leader.json` with the next epoch.
pub fn take_office(spool: &Spool, id: &str, lock: &Lock) -> Result<LeaderRecord, ha::HaError> {
    let record = ha::cluster::leader::take_office(spool, id, &ha::os::host::name(), lock)?;
    tracing::info!(epoch = record.epoch, "this watcher is now the leader");
    Ok(record)
}
