//! Waiting for the response: the wake-up, put in place before the request is published so that no
//! answer can be missed, and the wait itself, which a termination signal ends cleanly.
//!
//! - With our watchers: the FIFO `waiting/<id>.fifo` that the answering watcher writes a byte to (no
//!   inotify instance: tearing one down costs a synchronize_srcu, 8-14 ms, at exit).
//! - With another responder: the response path re-read every 0.25 ms for the first 25 ms (no inotify
//!   instance, so a fast answer costs no teardown), then an inotify watch on the response directory,
//!   armed before the path is read once more (creates too: an answer written in place is read from its
//!   create on, again every 20 ms until it parses).
//! - Either way a safety re-check (1 s with our watchers, 5 s otherwise); only a response whose id and
//!   target match the request is accepted (`Response::answers`).
//!
//! SIGTERM, SIGINT and SIGHUP are blocked before any thread starts and read from a signalfd while
//! waiting ([`Signals`]): an interrupted agent ends like a timed-out one. No locks are taken here.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;

use ha::fsio::{self, ReadError};
use ha::protocol::request::Request;
use ha::protocol::response::Response;

use crate::exchange::Exchange;
use crate::failure::Failure;
use crate::responder::Responder;

/// How often the wait re-reads the response path without a wake-up: FIFO (our watchers), inotify
/// (external responders, which write no FIFO).
const SAFETY_RECHECK: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

/// For this long after the wake-up is set up, an external responder's answer is looked for by
/// re-reading its path every [`QUICK_RECHECK`], with no inotify instance: tearing one down at exit
/// costs a synchronize_srcu (8-14 ms, more than a whole fast fence), which an agent answered in
/// this time never pays. Past it the watch is armed and the path read once more, so an answer
/// placed in between is not missed; against a wait that long the teardown is noise.
const QUICK: Duration = Duration::from_millis(25);
const QUICK_RECHECK: Duration = Duration::from_micros(250);
/// Without an inotify instance (none could be made: the user's instance or watch limit), the path
/// is read this often for the rest of the wait.
const UNWATCHED_RECHECK: Duration = Duration::from_millis(100);

/// What wakes the waiting agent.
pub enum Wake {
    /// Our watchers write to `waiting/<id>.fifo` after placing the response.
    Fifo(fsio::wake::Fifo),
    /// Any responder: an inotify watch on `responses/`.
    Inotify(Inotify),
    /// Any responder, before the watch is armed (or when it cannot be): the path is re-read every
    /// [`QUICK_RECHECK`] until `arm_at`, when the inotify watch on `dir` is armed; every
    /// [`UNWATCHED_RECHECK`] when it could not be (`arm_at` is `None`).
    Rereading { dir: std::path::PathBuf, arm_at: Option<Instant> },
}

impl Wake {
    pub fn new(exchange: &Exchange, id: &str) -> Result<Wake, Failure> {
        if let (Some(spool), Responder::Watchers) = (&exchange.spool, exchange.responder) {
            return Ok(Wake::Fifo(fsio::wake::Fifo::create(&spool.waiting_fifo(id))?));
        }
        Ok(Wake::Rereading { dir: exchange.responses.clone(), arm_at: Some(Instant::now() + QUICK) })
    }

    /// Once the quick phase is over, arms the inotify watch. `true` when the watch was just armed
    /// (the path must be read again: an answer placed before it has no event).
    fn settle(&mut self) -> bool {
        let Wake::Rereading { dir, arm_at: Some(at), .. } = self else { return false };
        if Instant::now() < *at {
            return false;
        }
        let armed = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| ha::HaError::errno("inotify_init", dir, e))
            .and_then(|inotify| {
                inotify
                    .add_watch(
                        dir.as_path(),
                        AddWatchFlags::IN_CREATE | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
                    )
                    .map_err(|e| ha::HaError::errno("inotify_add_watch", dir, e))?;
                Ok(inotify)
            });
        *self = match armed {
            Ok(inotify) => Wake::Inotify(inotify),
            Err(e) => {
                tracing::warn!(
                    "{e}; reading the response every {} ms instead (raise fs.inotify.max_user_instances or \
                     max_user_watches if this persists)",
                    UNWATCHED_RECHECK.as_millis()
                );
                Wake::Rereading { dir: std::mem::take(dir), arm_at: None }
            }
        };
        true
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            Wake::Fifo(f) => Some(f.as_fd()),
            Wake::Inotify(i) => Some(i.as_fd()),
            Wake::Rereading { .. } => None,
        }
    }

    fn recheck(&self) -> Duration {
        match self {
            Wake::Fifo(_) => SAFETY_RECHECK[0],
            Wake::Inotify(_) => SAFETY_RECHECK[1],
            Wake::Rereading { arm_at: Some(at), .. } => QUICK_RECHECK.min(at.saturating_duration_since(Instant::now())),
            Wake::Rereading { arm_at: None, .. } => UNWATCHED_RECHECK,
        }
    }

    /// After the descriptor polled readable: whether the response file may have changed.
    fn woken_for(&self, name: &str) -> bool {
        match self {
            Wake::Fifo(f) => f.drain(),
            Wake::Inotify(i) => i.read_events().map_or(true, |events| {
                events.iter().any(|e| {
                    e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) || e.name.as_deref().is_some_and(|n| n == name)
                })
            }),
            Wake::Rereading { .. } => true,
        }
    }
}

/// How the wait ended.
pub enum Waited {
    /// A response that answers the request.
    Answered(Response),
    /// `give_up` passed.
    TimedOut,
    /// SIGTERM, SIGINT or SIGHUP arrived.
    Signalled(Signal),
}

/// How soon a response that does not parse yet is read again: a responder that writes in place
/// (nnf-sos when the node has no storage; the seed's tools) may be seen between its create and its
/// write. It is reported only once it has stayed the same for [`SETTLED`].
const INCOMPLETE_RECHECK: Duration = Duration::from_millis(20);
const SETTLED: Duration = Duration::from_secs(1);

/// Waits until `give_up` for a response at `path` that answers `req`.
pub fn for_answer(wake: &mut Wake, signals: &Signals, path: &Path, req: &Request, give_up: Instant) -> Waited {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let mut last_seen: Option<Vec<u8>> = None;
    let mut incomplete: Option<(Vec<u8>, Instant)> = None;
    let mut check = true;
    loop {
        if check {
            match fsio::read_capped(path, fsio::MAX_SPOOL_FILE) {
                Ok(bytes) if last_seen.as_ref() != Some(&bytes) => match Response::parse(&bytes) {
                    Err(m) => match &incomplete {
                        Some((seen, since)) if *seen == bytes && since.elapsed() >= SETTLED => {
                            tracing::warn!("ignoring {}: {m}; still waiting", path.display());
                            last_seen = Some(bytes);
                            incomplete = None;
                        }
                        Some((seen, _)) if *seen == bytes => {}
                        _ => incomplete = Some((bytes, Instant::now())),
                    },
                    Ok(r) => {
                        incomplete = None;
                        match r.answers(req) {
                            Ok(()) => return Waited::Answered(r),
                            Err(m) => tracing::warn!("ignoring {}: {m}; still waiting", path.display()),
                        }
                        last_seen = Some(bytes);
                    }
                },
                Ok(_) | Err(ReadError::Gone) => {}
                Err(e) => tracing::warn!("cannot read {}: {e}; still waiting", path.display()),
            }
        }
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Waited::TimedOut;
        }
        if wake.settle() {
            check = true;
            continue;
        }
        let recheck = if incomplete.is_some() { INCOMPLETE_RECHECK.min(wake.recheck()) } else { wake.recheck() };
        let wait = left.min(recheck);
        let mut fds: Vec<PollFd> =
            wake.fd().into_iter().chain([signals.fd()]).map(|fd| PollFd::new(fd, PollFlags::POLLIN)).collect();
        // ppoll: the quick phase's waits are shorter than poll's millisecond.
        check = match ppoll(&mut fds, Some(TimeSpec::from_duration(wait)), None) {
            Ok(0) | Err(_) => true,
            Ok(_) => {
                if let Some(sig) = signals.pending() {
                    return Waited::Signalled(sig);
                }
                incomplete.is_some() || wake.woken_for(&name)
            }
        };
    }
}

/// The termination signals, blocked and read from a signalfd while the agent fences.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    const SET: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

    /// Blocks the signals in this thread (and so in every thread started after) and opens the fd.
    pub fn block() -> Result<Signals, Failure> {
        let mut set = SigSet::empty();
        for s in Self::SET {
            set.add(s);
        }
        set.thread_block().map_err(|e| ha::HaError::errno("pthread_sigmask", Path::new("(signals)"), e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| ha::HaError::errno("signalfd", Path::new("(signals)"), e))?;
        Ok(Signals { fd })
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The signal that arrived, if any.
    pub fn pending(&self) -> Option<Signal> {
        let info = self.fd.read_signal().ok()??;
        Signal::try_from(info.ssi_signo as i32).ok()
    }
}
