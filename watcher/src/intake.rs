//! The requests waiting to be claimed: the ordered index, and the inotify watch on the spool that
//! feeds it, side by side so that whoever claims can bring the index up to date first.
//!
//! One inotify instance watches `requests/` for new requests (`IN_MOVED_TO` from agents,
//! `IN_CLOSE_WRITE` from in-place writers, `IN_CREATE` for what is never written: symlinks,
//! directories, hard links) and `members/` for joins only (`IN_CREATE`: heartbeats are renamed into
//! place, creating nothing); both directories' own removal or move is seen at once (see
//! `vanished`). Without inotify (`--no-inotify`) the index is kept by rescans alone.
//!
//! No locks; the inotify descriptor is non-blocking and registered with the loop's runtime.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

use ha::spool::{Dir, Spool};

use crate::error::WatchError;
use crate::index::Index;
use crate::shared::Shared;

/// The inotify instance watching `requests/` and `members/`, with their watch descriptors.
pub struct InotifyFd(Inotify, WatchDescriptor, WatchDescriptor);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// What a read of the inotify events saw besides new requests.
#[derive(Debug, Default)]
pub struct Seen {
    /// A peer joined (or events were lost).
    pub joined: bool,
    /// Watched directories removed or moved away.
    pub gone: Vec<Dir>,
}

/// The index of waiting requests and the watch that feeds it.
pub struct Intake {
    pub index: Index,
    watch: Option<AsyncFd<InotifyFd>>,
}

impl Intake {
    /// The index, and the watch when `inotify` (must run inside the loop's runtime).
    pub fn new(index: Index, spool: &Spool, inotify: bool) -> Result<Intake, WatchError> {
        Ok(Intake { index, watch: if inotify { Some(watch_spool(spool)?) } else { None } })
    }

    /// Whether requests are seen through inotify (else only by rescans).
    pub fn watched(&self) -> bool {
        self.watch.is_some()
    }

    /// Watches `requests/` again (made anew after it was removed); an error leaves the old watch.
    pub fn rewatch(&mut self, spool: &Spool) -> Result<(), WatchError> {
        if self.watch.is_some() {
            self.watch = Some(watch_spool(spool)?);
        }
        Ok(())
    }

    /// Waits until the watch has events (forever without one), and clears its readiness: the events
    /// are read by [`Intake::read`], to the end, so none is left unannounced.
    pub async fn readable(&self) {
        match &self.watch {
            Some(fd) => match fd.readable().await {
                Ok(mut guard) => guard.clear_ready(),
                Err(e) => tracing::error!("waiting for inotify events: {e}"),
            },
            None => std::future::pending().await,
        }
    }

    /// Reads every event queued now into the index; returns what else it saw.
    pub fn read(&mut self, shared: &Shared) -> Seen {
        let spool = &shared.settings.spool;
        let mut seen = Seen::default();
        let Some(fd) = &self.watch else { return seen };
        let fd = fd.get_ref();
        let gone = AddWatchFlags::IN_IGNORED | AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF;
        loop {
            match fd.0.read_events() {
                Ok(events) => {
                    for ev in events {
                        if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            seen.joined = true;
                            if let Err(e) = self.index.reconcile(spool, &shared.boot_id) {
                                tracing::error!("rescanning requests: {e}");
                            }
                        } else if ev.mask.intersects(gone) {
                            seen.gone.push(if ev.wd == fd.1 { Dir::Requests } else { Dir::Members });
                        } else if ev.wd == fd.2 {
                            seen.joined |= ev
                                .name
                                .is_some_and(|n| n.to_string_lossy().starts_with(ha::cluster::members::JOIN_PREFIX));
                        } else if let Some(name) = ev.name {
                            self.index.observe(spool, &shared.boot_id, &name.to_string_lossy());
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
    /// request another watcher requeued before releasing that lock has its event queued already. A
    /// peer join read here is not lost: peers are armed again at every heartbeat.
    pub fn catch_up(&mut self, shared: &Shared) {
        self.read(shared);
    }
}

/// The one inotify instance on `requests/` and `members/` (see the module's doc).
fn watch_spool(spool: &Spool) -> Result<AsyncFd<InotifyFd>, WatchError> {
    let dir = spool.dir(Dir::Requests);
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| ha::HaError::errno("inotify_init", &dir, e))?;
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
