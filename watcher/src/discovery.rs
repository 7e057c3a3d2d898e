//! The leader's GFS2 discovery rounds: every `interval`, run every enabled source (in parallel,
//! each bounded by `timeout`, see `ha::discovery::run`), merge the results into the previous
//! `discovery.json` (`ha::discovery::snapshot::Snapshot::update`) and publish it atomically, so the
//! agent finds each node's file systems at fence time without running anything.
//!
//! A round runs on its own thread (the tools' death signal is tied to it; it reaps every tool before
//! it ends), never on the runtime's: a slow source cannot delay claims. Only the leader runs rounds;
//! a new leader continues from the snapshot its predecessor left. Locks: none (the file is replaced
//! by rename; readers see the old or the new snapshot).

use std::sync::Arc;
use std::time::Instant;

use ha::discovery::run;
use ha::discovery::snapshot::{self, Round, Snapshot};
use ha::os::clock::BootTime;
use ha::spool::{Dir, Spool};

use crate::settings::DiscoverySettings;
use crate::shared::Shared;

/// Runs rounds for as long as the task lives (the rest of this watcher's term as leader).
pub async fn rounds(shared: Arc<Shared>, d: DiscoverySettings, epoch: u64) {
    loop {
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (spool, id, boot_id, settings) =
            (shared.settings.spool.clone(), shared.settings.id.clone(), shared.boot_id.clone(), d.clone());
        let spawned = std::thread::Builder::new().name("discovery-round".into()).spawn(move || {
            let _ = tx.send(round(&spool, &settings, Some(id), Some(epoch), boot_id));
        });
        match spawned {
            Ok(_) => match rx.await {
                Ok(Ok(snap)) => tracing::debug!(nodes = snap.nodes.len(), "discovery snapshot published"),
                Ok(Err(e)) => tracing::error!("publishing discovery.json: {e}"),
                Err(_) => tracing::error!("the discovery round ended without a result"),
            },
            Err(e) => tracing::error!("cannot start a discovery round: {e}"),
        }
        tokio::time::sleep(d.interval.saturating_sub(started.elapsed())).await;
    }
}

/// One round: discover, merge, publish; logs sources that start or stop failing.
pub fn round(
    spool: &Spool,
    d: &DiscoverySettings,
    watcher_id: Option<String>,
    epoch: Option<u64>,
    boot_id: String,
) -> Result<Snapshot, ha::HaError> {
    let previous = snapshot::read(spool).unwrap_or_else(|e| {
        tracing::warn!("ignoring the previous discovery snapshot: {e}");
        None
    });
    let round = Round {
        taken: BootTime::now(),
        taken_rfc3339: ha::os::clock::rfc3339_now(),
        boot_id,
        watcher_id,
        epoch,
        interval: d.interval,
        memory: d.memory,
    };
    let results = run::discover(&d.tools, d.timeout);
    let snap = Snapshot::update(previous.as_ref(), &round, &results);
    for (source, report) in &snap.sources {
        let was_ok = previous.as_ref().and_then(|p| p.sources.get(source)).map(|r| r.ok);
        match (&report.error, was_ok) {
            (Some(e), Some(true) | None) => tracing::warn!(%source, "GFS2 discovery source failing: {e}"),
            (None, Some(false)) => tracing::info!(%source, "GFS2 discovery source answering again"),
            _ => {}
        }
    }
    let bytes = serde_json::to_vec(&snap).expect("a snapshot serialises");
    ha::fsio::write_replace(&spool.dir(Dir::Tmp), &snapshot::path(spool), &bytes)?;
    Ok(snap)
}
