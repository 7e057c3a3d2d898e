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
//! Locks held: the member lock for the whole run; the leader lock once elected, for the rest of the
//! run; per job, the target lock and the leases.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use ha::spool::{Dir, Spool, WATCHER_DIRS};

use crate::dispatch::{self, Running};
use crate::error::WatchError;
use crate::index::Index;
use crate::member::Member;
use crate::metrics::Metrics;
use crate::peers::PeerWatch;
use crate::recovery::recover;
use crate::settings::Settings;
use crate::shared::Shared;
use crate::sweep::Sweeper;
use crate::{election, fencepath, notify};

/// With inotify, how often the index is reconciled with a full listing of `requests/` (inotify
/// misses nothing but overflows, which force one at once; a listing of 100,000 pending requests
/// at every rescan would cost more than serving them). Young files are retried at every rescan.
const FULL_RECONCILE: std::time::Duration = std::time::Duration::from_secs(30);

/// The inotify instance watching `requests/` and `members/`, with their watch descriptors.
pub struct InotifyFd(Inotify, WatchDescriptor, WatchDescriptor);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Runs a watcher until `shutdown` becomes true.
pub async fn run(settings: Settings, mut shutdown: watch::Receiver<bool>) -> Result<(), WatchError> {
    let spool = settings.spool.clone();
    spool.prepare(&WATCHER_DIRS)?;
    let boot_id = ha::os::clock::boot_id()?;
    let targets = serde_json::to_vec(&settings.fence.published_targets()).expect("targets serialise");
    ha::fsio::write_replace(&spool.dir(Dir::Tmp), &ha::cluster::targets::path(&spool), &targets)?;
    let mut inotify = if settings.inotify { Some(watch_spool(&spool)?) } else { None };
    let mut index = Index::new(settings.fence.clone());
    index.reconcile(&spool, &boot_id)?;
    // Last: from here on agents count this watcher as live, so all it serves with is ready.
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
    let mut rescan = tokio::time::interval(s.rescan_interval);
    let mut heartbeat = tokio::time::interval(s.heartbeat_interval);
    let mut candidacy = election::stand(&spool);
    // The candidate thread has answered (its receiver must not be polled again): what it gave is in
    // `elected` (the lock, office not taken yet) or it failed and a new candidacy starts at a rescan.
    let mut stood = false;
    let mut elected: Option<ha::fsio::lock::Lock> = None;
    let mut office_due = true;
    let mut office = None;
    let mut sweeper = Sweeper::default();
    let (death_tx, mut death_rx) = mpsc::unbounded_channel::<String>();
    let mut peers = PeerWatch::new(death_tx);
    let _ = peers.arm(&spool, &s.id);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut dirty = true;
    let mut retry: Option<std::time::Duration> = None;
    let mut last_full = std::time::Instant::now();
    let mut spooled = crate::vanished::Spooled::read(&spool);
    let mut lost: Option<String> = None;

    loop {
        // Holding the leader lock, take office: a failure (a bad leader.json, a full disk) is retried
        // at every pass while claiming and fencing go on; it never ends the watcher.
        if let Some(lock) = elected.take_if(|_| office_due) {
            office_due = false;
            match election::take_office(&spool, &s.id, &lock) {
                Ok(record) => {
                    office = Some(lock);
                    shared.metrics.took_office();
                    if let Some(d) = s.discovery.clone() {
                        tokio::spawn(crate::discovery::rounds(shared.clone(), d, record.epoch));
                    }
                    if let Some(period) = s.health_interval {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            loop {
                                fencepath::check(&shared).await;
                                tokio::time::sleep(period).await;
                            }
                        });
                    }
                }
                Err(e) => {
                    tracing::error!("taking office: {e}; retrying at the next rescan");
                    elected = Some(lock);
                }
            }
        }
        if dirty {
            dirty = false;
            retry = dispatch::fill(&shared, &mut index, &mut running, &done_tx, &mut |index: &mut Index| {
                catch_up(inotify.as_ref(), index, &shared)
            });
            shared.metrics.set_in_flight(running.len());
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            // A target held by another process, or a claim stopped by a passing shortage of
            // descriptors or memory: try again soon, not only at the next event (files that could
            // not be read then are read again). A dead claim whose key lock was still held (its
            // fence command dying): recover it soon.
            _ = tokio::time::sleep(retry.unwrap_or(dispatch::BUSY_RETRY)), if retry.is_some() || shared.recovery_deferred.load(std::sync::atomic::Ordering::Relaxed) => {
                if shared.recovery_deferred.load(std::sync::atomic::Ordering::Relaxed) {
                    recover(&shared);
                }
                index.retry_young(&spool, &shared.boot_id);
                dirty = true;
            }
            ready = readable(inotify.as_ref()) => {
                if let Some(guard) = ready {
                    let seen = drain_events(guard, &mut index, &shared);
                    if seen.joined {
                        crate::aside::refresh(&shared);
                        if peers.arm(&spool, &s.id) {
                            recover(&shared);
                        }
                    }
                    if !seen.gone.is_empty() {
                        lost = look_at_spool(&shared, &mut spooled, &mut inotify, &mut index, &seen.gone);
                        if lost.is_some() {
                            break;
                        }
                    }
                }
                dirty = true;
            }
            _ = rescan.tick() => {
                lost = look_at_spool(&shared, &mut spooled, &mut inotify, &mut index, &[]);
                if lost.is_some() {
                    break;
                }
                if inotify.is_none() || last_full.elapsed() >= FULL_RECONCILE {
                    last_full = std::time::Instant::now();
                    if let Err(e) = index.reconcile(&spool, &shared.boot_id) {
                        tracing::error!("rescanning requests: {e}");
                    }
                } else {
                    index.retry_young(&spool, &shared.boot_id);
                }
                // O(pending): at the rescan period, not at every event.
                shared.metrics.set_queue(index.depth_by_priority());
                sweeper.sweep(&shared, office.is_some());
                if stood && office.is_none() && elected.is_none() {
                    candidacy = election::stand(&spool);
                    stood = false;
                }
                office_due = true;
                dirty = true;
            }
            Some(peer) = death_rx.recv() => {
                peers.ended(&peer);
                tracing::info!(peer = %peer, "peer watcher gone: recovering its claims now");
                crate::aside::refresh(&shared);
                recover(&shared);
                let _ = peers.arm(&spool, &s.id);
                dirty = true;
            }
            _ = heartbeat.tick() => {
                // A heartbeat that cannot be written (a full or read-only spool) keeps the watchdog's
                // pings: a restart would not help, and would kill the fences in flight. A spool that
                // is gone ends the loop above instead (see `vanished`).
                if let Err(e) = shared.member.lock().unwrap().beat() {
                    tracing::error!("heartbeat: {e}; agents and peers see this watcher as not live until it can write again");
                    shared.metrics.heartbeat_failed();
                }
                notify::notify("WATCHDOG=1");
                // Claiming again once the last older peer is gone: its claims too.
                let was_aside = crate::aside::standing_aside(&shared);
                let aside = crate::aside::refresh(&shared);
                if peers.arm(&spool, &s.id) | (was_aside && !aside) {
                    recover(&shared);
                    dirty = true;
                }
            }
            granted = &mut candidacy, if !stood => {
                stood = true;
                match granted {
                    Ok(Ok(lock)) => {
                        elected = Some(lock);
                        office_due = true;
                    }
                    Ok(Err(e)) => tracing::error!("standing for leader: {e}; standing again at the next rescan"),
                    Err(_) => tracing::error!("the leader candidate thread ended; standing again at the next rescan"),
                }
                dirty = true;
            }
            Some(id) = done_rx.recv() => {
                running.remove(&id);
                dirty = true;
            }
        }
    }

    notify::notify("STOPPING=1");
    tracing::info!(in_flight = running.len(), "shutting down: no new claims");
    let grace = tokio::time::sleep(s.shutdown_grace);
    tokio::pin!(grace);
    let mut aborted = false;
    while !running.is_empty() {
        tokio::select! {
            Some(id) = done_rx.recv() => { running.remove(&id); }
            _ = &mut grace, if !aborted => {
                tracing::warn!(in_flight = running.len(), "grace period over: killing fence commands and requeueing their requests");
                for job in running.values() {
                    let _ = job.abort.send(true);
                }
                aborted = true;
            }
        }
    }
    tracing::info!("watcher stopped");
    lost.map_or(Ok(()), |why| Err(WatchError::SpoolLost(why)))
}

/// Looks at the spool's directories (see `vanished`), `known` those inotify said were removed: makes
/// again what was removed and can be, with a new inotify watch and a reconciled index for
/// `requests/`; returns why the watcher must stop when the spool or a directory its fences depend on
/// is gone or replaced.
fn look_at_spool(
    shared: &Shared,
    spooled: &mut crate::vanished::Spooled,
    inotify: &mut Option<AsyncFd<InotifyFd>>,
    index: &mut Index,
    known: &[Dir],
) -> Option<String> {
    use crate::vanished::Verdict;
    let spool = &shared.settings.spool;
    match spooled.check(spool, known) {
        Verdict::Intact => None,
        Verdict::Remake(dirs) => {
            let names: Vec<&str> = dirs.iter().map(|d| d.name()).collect();
            tracing::warn!(dirs = ?names, spool = %spool.base().display(), "spool directories removed or replaced: making them again");
            if let Err(e) = spool.prepare(&WATCHER_DIRS) {
                tracing::error!("making the spool's directories again: {e}; trying again at the next rescan");
                return None;
            }
            if dirs.contains(&Dir::Requests) && inotify.is_some() {
                match watch_spool(spool) {
                    Ok(fd) => *inotify = Some(fd),
                    Err(e) => tracing::error!("watching the new requests/: {e}; trying again at the next rescan"),
                }
            }
            if let Err(e) = index.reconcile(spool, &shared.boot_id) {
                tracing::error!("rescanning requests: {e}");
            }
            spooled.remade(spool);
            None
        }
        Verdict::Lost(why) => {
            tracing::error!(spool = %spool.base().display(), "{why}: claiming nothing more and withholding the watchdog; the fences in flight may end, then the watcher exits for a restart");
            Some(format!("{} ({})", why, spool.base().display()))
        }
    }
}

/// What a read of the inotify events saw besides new requests.
#[derive(Debug, Default)]
struct Seen {
    /// A peer joined (or events were lost).
    joined: bool,
    /// Watched directories removed or moved away.
    gone: Vec<Dir>,
}

/// Feeds new request names to the index; returns what else it saw.
fn drain_events(
    mut guard: tokio::io::unix::AsyncFdReadyGuard<'_, InotifyFd>,
    index: &mut Index,
    shared: &Shared,
) -> Seen {
    let seen = read_pending(guard.get_inner(), index, shared);
    guard.clear_ready();
    seen
}

/// Reads every inotify event queued now (the descriptor is non-blocking) into the index; returns
/// what else it saw.
fn read_pending(fd: &InotifyFd, index: &mut Index, shared: &Shared) -> Seen {
    let spool = &shared.settings.spool;
    let mut seen = Seen::default();
    let gone = AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
    loop {
        match fd.0.read_events() {
            Ok(events) => {
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        seen.joined = true;
                        if let Err(e) = index.reconcile(spool, &shared.boot_id) {
                            tracing::error!("rescanning requests: {e}");
                        }
                    } else if ev.mask.intersects(gone) {
                        seen.gone.push(if ev.wd == fd.1 { Dir::Requests } else { Dir::Members });
                    } else if ev.wd == fd.2 {
                        seen.joined |=
                            ev.name.is_some_and(|n| n.to_string_lossy().starts_with(ha::cluster::members::JOIN_PREFIX));
                    } else if let Some(name) = ev.name {
                        index.observe(spool, &shared.boot_id, &name.to_string_lossy());
                    }
                }
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => {
                tracing::error!("reading inotify events: {e}");
                break;
            }
        }
    }
    seen
}

/// Brings the index up to date with every request placed before now: under a target's lock, a
/// request another watcher requeued before releasing that lock has its event queued already. A peer
/// join read here is not lost: peers are armed again at every heartbeat.
pub fn catch_up(inotify: Option<&AsyncFd<InotifyFd>>, index: &mut Index, shared: &Shared) {
    if let Some(fd) = inotify {
        read_pending(fd.get_ref(), index, shared);
    }
}

/// One inotify instance: `requests/` for new requests (`IN_MOVED_TO` from agents, `IN_CLOSE_WRITE`
/// from in-place writers, `IN_CREATE` for what is never written: symlinks, directories, hard links)
/// and `members/` for joins only (`IN_CREATE`: heartbeats are renamed into place, creating nothing).
fn watch_spool(spool: &Spool) -> Result<AsyncFd<InotifyFd>, WatchError> {
    let dir = spool.dir(Dir::Requests);
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| ha::HaError::errno("inotify_init", &dir, e))?;
    // The directories' own removal or move (`IN_DELETE_SELF`, `IN_MOVE_SELF`, then `IN_IGNORED`) is
    // seen at once: see `vanished`.
    let gone = AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
    let requests = ino
        .add_watch(&dir, AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE | gone)
        .map_err(|e| ha::HaError::errno("inotify_add_watch", &dir, e))?;
    let members = spool.dir(Dir::Members);
    let joins = ino
        .add_watch(&members, AddWatchFlags::IN_CREATE | gone)
        .map_err(|e| ha::HaError::errno("inotify_add_watch", &members, e))?;
    // SAFETY: the descriptor is owned by the `Inotify` inside the `AsyncFd`, so it stays open and the
    // same for the `AsyncFd`'s whole life, and `as_raw_fd` always returns it.
    let registered =
        unsafe { AsyncFd::register_with_interest(InotifyFd(ino, requests, joins), tokio::io::Interest::READABLE) };
    registered.map_err(|e| ha::HaError::io("register inotify for", &dir, e.into()).into())
}

async fn readable(fd: Option<&AsyncFd<InotifyFd>>) -> Option<tokio::io::unix::AsyncFdReadyGuard<'_, InotifyFd>> {
    match fd {
        Some(fd) => fd.readable().await.ok(),
        None => std::future::pending().await,
    }
}
