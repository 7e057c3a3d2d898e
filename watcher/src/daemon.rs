//! The watcher's main loop: `run(settings, shutdown)`.
//!
//! One thread (a current-thread tokio runtime) does everything, so the fence commands it spawns have
//! a parent thread that lives as long as the watcher (their death signal is tied to it). A second,
//! blocked thread stands for leader (see `election`).
//!
//! - Each live peer's member lock is waited on by a thread (see `peers`), armed when the peer
//!   announces its join (`IN_CREATE` of `members/.join.<id>`) and at each heartbeat tick: a peer's
//!   death triggers the recovery of its claims at once.
//! - `requests/` is watched with inotify (`IN_CLOSE_WRITE`, `IN_MOVED_TO`) into an ordered index,
//!   reconciled with a full listing every 30 s and on overflow (every `rescan_interval` without
//!   inotify); at every `rescan_interval` the sweep recovers dead claims and fences frozen peers.
//! - Each job (a claimed request, its coalesced twins, its target's lock) is served by its own task;
//!   tasks report completion on a channel.
//! - Shutdown is a broadcast (`watch`): the loop stops claiming, lets jobs finish within the grace
//!   period, then aborts them: each kills its command's group, reaps it and only then requeues.
//!
//! The loop's state is a [`Loop`]; each pass takes office if due (see `office`), claims what it can
//! (`dispatch`), then waits for one [`Event`] and hands it to its `handle_*` method.
//!
//! Locks held: the member lock for the whole run; the leader lock once elected, for the rest of the
//! run; per job, the target lock and the leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use ha::spool::{Dir, WATCHER_DIRS};

use crate::dispatch::{self, Running};
use crate::error::WatchError;
use crate::index::Index;
use crate::intake::Intake;
use crate::member::Member;
use crate::metrics::Metrics;
use crate::notify;
use crate::office::{Grant, Leadership};
use crate::peers::PeerWatch;
use crate::recovery::recover;
use crate::settings::Settings;
use crate::shared::Shared;
use crate::sweep::Sweeper;
use crate::vanished::{Spooled, Verdict};

/// With inotify, how often the index is reconciled with a full listing of `requests/` (inotify
/// misses nothing but overflows, which force one at once; a listing of 100,000 pending requests
/// at every rescan would cost more than serving them). Young files are retried at every rescan.
const FULL_RECONCILE: Duration = Duration::from_secs(30);

/// Runs a watcher until `shutdown` becomes true.
pub async fn run(settings: Settings, mut shutdown: watch::Receiver<bool>) -> Result<(), WatchError> {
    let mut l = Loop::start(settings)?;
    let lost = l.serve(&mut shutdown).await;
    l.drain().await;
    tracing::info!("watcher stopped");
    lost.map_or(Ok(()), |why| Err(WatchError::SpoolLost(why)))
}

/// What the loop waits for.
enum Event {
    Shutdown,
    /// A busy target or a passing shortage to try again, or a deferred recovery.
    Retry,
    /// inotify events: new requests, joins, removed directories.
    Spool,
    Rescan,
    PeerGone(String),
    Heartbeat,
    Granted(Grant),
    /// A job ended (the id of the request it executed).
    Done(String),
}

/// The loop's state.
struct Loop {
    shared: Arc<Shared>,
    intake: Intake,
    leadership: Leadership,
    rescan: tokio::time::Interval,
    heartbeat: tokio::time::Interval,
    sweeper: Sweeper,
    peers: PeerWatch,
    deaths: mpsc::UnboundedReceiver<String>,
    running: HashMap<String, Running>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
    /// Something changed since the last claiming pass.
    dirty: bool,
    /// How soon to claim again without an event (see `dispatch::fill`).
    retry: Option<Duration>,
    last_full: Instant,
    spooled: Spooled,
}

impl Loop {
    /// Prepares the spool, indexes it, joins as a member (last: from then on agents count this
    /// watcher as live, so all it serves with is ready), and stands for leader.
    fn start(settings: Settings) -> Result<Loop, WatchError> {
        let spool = settings.spool.clone();
        spool.prepare(&WATCHER_DIRS)?;
        let boot_id = ha::os::clock::boot_id()?;
        let targets = serde_json::to_vec(&settings.fence.published_targets()).expect("targets serialise");
        ha::fsio::write_replace(&spool.dir(Dir::Tmp), &ha::cluster::targets::path(&spool), &targets)?;
        let mut intake = Intake::new(Index::new(settings.fence.clone()), &spool, settings.inotify)?;
        intake.index.reconcile(&spool, &boot_id)?;
        let member = Member::join(&spool, &settings.id, &boot_id, settings.ttl)?;
        notify::notify("READY=1");
        tracing::info!(watcher_id = %settings.id, spool = %spool.base().display(), "watcher started");
        let shared = Arc::new(Shared {
            metrics: Metrics::new(&settings),
            settings,
            boot_id,
            member: Mutex::new(member),
            recovery_deferred: Default::default(),
            standing_aside: Default::default(),
        });
        crate::aside::refresh(&shared);
        if let Some(addr) = shared.settings.metrics_addr {
            tokio::spawn(crate::http::bind_and_serve(shared.clone(), addr));
        }
        let s = &shared.settings;
        let (death_tx, deaths) = mpsc::unbounded_channel();
        let mut peers = PeerWatch::new(death_tx);
        let _ = peers.arm(&spool, &s.id);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Loop {
            intake,
            leadership: Leadership::stand(&spool),
            rescan: tokio::time::interval(s.rescan_interval),
            heartbeat: tokio::time::interval(s.heartbeat_interval),
            sweeper: Sweeper::default(),
            peers,
            deaths,
            running: HashMap::new(),
            done_tx,
            done_rx,
            dirty: true,
            retry: None,
            last_full: Instant::now(),
            spooled: Spooled::read(&spool),
            shared,
        })
    }

    /// Serves until shutdown, or until the spool is lost (why).
    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<String> {
        loop {
            self.leadership.take_office_if_due(&self.shared);
            if self.dirty {
                self.claim();
            }
            let lost = match self.next(shutdown).await {
                Event::Shutdown => return None,
                Event::Retry => self.handle_retry(),
                Event::Spool => self.handle_spool(),
                Event::Rescan => self.handle_rescan(),
                Event::PeerGone(peer) => self.handle_peer_gone(&peer),
                Event::Heartbeat => self.handle_heartbeat(),
                Event::Granted(grant) => self.handle_grant(grant),
                Event::Done(id) => self.handle_done(&id),
            };
            if lost.is_some() {
                return lost;
            }
        }
    }

    /// Claims what can be claimed now (`dispatch::fill`).
    fn claim(&mut self) {
        self.dirty = false;
        self.retry = dispatch::fill(&self.shared, &mut self.intake, &mut self.running, &self.done_tx);
        self.shared.metrics.set_in_flight(self.running.len());
    }

    /// The next event.
    async fn next(&mut self, shutdown: &mut watch::Receiver<bool>) -> Event {
        let deferred = self.shared.recovery_deferred.load(std::sync::atomic::Ordering::Relaxed);
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => Event::Shutdown,
            _ = tokio::time::sleep(self.retry.unwrap_or(dispatch::BUSY_RETRY)), if self.retry.is_some() || deferred => Event::Retry,
            () = self.intake.readable() => Event::Spool,
            _ = self.rescan.tick() => Event::Rescan,
            Some(peer) = self.deaths.recv() => Event::PeerGone(peer),
            _ = self.heartbeat.tick() => Event::Heartbeat,
            grant = self.leadership.granted() => Event::Granted(grant),
            Some(id) = self.done_rx.recv() => Event::Done(id),
        }
    }

    /// A target held by another process, or a claim stopped by a passing shortage of descriptors or
    /// memory: try again soon, not only at the next event (files that could not be read then are
    /// read again). A dead claim whose key lock was still held (its fence command dying): recover
    /// it soon.
    fn handle_retry(&mut self) -> Option<String> {
        if self.shared.recovery_deferred.load(std::sync::atomic::Ordering::Relaxed) {
            recover(&self.shared);
        }
        self.intake.index.retry_young(&self.shared.settings.spool, &self.shared.boot_id);
        self.dirty = true;
        None
    }

    /// New requests are in the index; a peer that joined is watched; removed directories are looked at.
    fn handle_spool(&mut self) -> Option<String> {
        self.dirty = true;
        let seen = self.intake.read(&self.shared);
        if seen.joined {
            crate::aside::refresh(&self.shared);
            if self.peers.arm(&self.shared.settings.spool, &self.shared.settings.id) {
                recover(&self.shared);
            }
        }
        if seen.gone.is_empty() {
            return None;
        }
        self.look_at_spool(&seen.gone)
    }

    /// The spool looked at, the index reconciled (fully every [`FULL_RECONCILE`], or always without
    /// inotify), the queue measured, the sweep, leadership's turn.
    fn handle_rescan(&mut self) -> Option<String> {
        if let Some(lost) = self.look_at_spool(&[]) {
            return Some(lost);
        }
        let (spool, boot_id) = (&self.shared.settings.spool, &self.shared.boot_id);
        if !self.intake.watched() || self.last_full.elapsed() >= FULL_RECONCILE {
            self.last_full = Instant::now();
            if let Err(e) = self.intake.index.reconcile(spool, boot_id) {
                tracing::error!("rescanning requests: {e}");
            }
        } else {
            self.intake.index.retry_young(spool, boot_id);
        }
        // O(pending): at the rescan period, not at every event.
        self.shared.metrics.set_queue(self.intake.index.depth_by_priority());
        self.sweeper.sweep(&self.shared, self.leadership.in_office());
        self.leadership.handle_rescan(spool);
        self.dirty = true;
        None
    }

    fn handle_peer_gone(&mut self, peer: &str) -> Option<String> {
        self.peers.ended(peer);
        tracing::info!(peer = %peer, "peer watcher gone: recovering its claims now");
        crate::aside::refresh(&self.shared);
        recover(&self.shared);
        let _ = self.peers.arm(&self.shared.settings.spool, &self.shared.settings.id);
        self.dirty = true;
        None
    }

    /// A heartbeat that cannot be written (a full or read-only spool) keeps the watchdog's pings: a
    /// restart would not help, and would kill the fences in flight. A spool that is gone ends the
    /// loop instead (see `vanished`). Claiming again once the last older peer is gone: its claims
    /// too.
    fn handle_heartbeat(&mut self) -> Option<String> {
        if let Err(e) = self.shared.member.lock().unwrap().beat() {
            tracing::error!("heartbeat: {e}; agents and peers see this watcher as not live until it can write again");
            self.shared.metrics.heartbeat_failed();
        }
        notify::notify("WATCHDOG=1");
        let was_aside = crate::aside::standing_aside(&self.shared);
        let aside = crate::aside::refresh(&self.shared);
        if self.peers.arm(&self.shared.settings.spool, &self.shared.settings.id) | (was_aside && !aside) {
            recover(&self.shared);
            self.dirty = true;
        }
        None
    }

    fn handle_grant(&mut self, grant: Grant) -> Option<String> {
        self.leadership.handle_grant(grant);
        self.dirty = true;
        None
    }

    fn handle_done(&mut self, id: &str) -> Option<String> {
        self.running.remove(id);
        self.dirty = true;
        None
    }

    /// Looks at the spool's directories (see `vanished`), `known` those inotify said were removed:
    /// makes again what was removed and can be, with a new inotify watch and a reconciled index for
    /// `requests/`; returns why the watcher must stop when the spool or a directory its fences
    /// depend on is gone or replaced.
    fn look_at_spool(&mut self, known: &[Dir]) -> Option<String> {
        let spool = &self.shared.settings.spool;
        match self.spooled.check(spool, known) {
            Verdict::Intact => None,
            Verdict::Remake(dirs) => {
                let names: Vec<&str> = dirs.iter().map(|d| d.name()).collect();
                tracing::warn!(dirs = ?names, spool = %spool.base().display(), "spool directories removed or replaced: making them again");
                if let Err(e) = spool.prepare(&WATCHER_DIRS) {
                    tracing::error!("making the spool's directories again: {e}; trying again at the next rescan");
                    return None;
                }
                if dirs.contains(&Dir::Requests) {
                    if let Err(e) = self.intake.rewatch(spool) {
                        tracing::error!("watching the new requests/: {e}; trying again at the next rescan");
                    }
                }
                if let Err(e) = self.intake.index.reconcile(spool, &self.shared.boot_id) {
                    tracing::error!("rescanning requests: {e}");
                }
                self.spooled.remade(spool);
                None
            }
            Verdict::Lost(why) => {
                tracing::error!(spool = %spool.base().display(), "{why}: claiming nothing more and withholding the watchdog; the fences in flight may end, then the watcher exits for a restart");
                Some(format!("{} ({})", why, spool.base().display()))
            }
        }
    }

    /// Shutdown's drain: no new claims; the jobs in flight end within the grace period, then are
    /// aborted (each kills its command's group, reaps it, and only then requeues).
    async fn drain(&mut self) {
        notify::notify("STOPPING=1");
        tracing::info!(in_flight = self.running.len(), "shutting down: no new claims");
        let grace = tokio::time::sleep(self.shared.settings.shutdown_grace);
        tokio::pin!(grace);
        let mut aborted = false;
        while !self.running.is_empty() {
            tokio::select! {
                Some(id) = self.done_rx.recv() => { self.running.remove(&id); }
                _ = &mut grace, if !aborted => {
                    tracing::warn!(in_flight = self.running.len(), "grace period over: killing fence commands and requeueing their requests");
                    for job in self.running.values() {
                        let _ = job.abort.send(true);
                    }
                    aborted = true;
                }
            }
        }
    }
}
