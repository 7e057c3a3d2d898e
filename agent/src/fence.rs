//! The power actions (`off`, `on`, `reboot`, `status`): publish a request, wait for its response.
//!
//! Order of operations, each step for a reason:
//! 0. Block SIGTERM/SIGINT/SIGHUP before any thread starts and read them from a signalfd while
//!    waiting: an interrupted agent ends like a timed-out one, cleanly.
//! 1. With `responder=gfs2-fence-watcher` (the default) and no live watcher of ours, fail at once:
//!    Pacemaker can then move to the next fencing level instead of waiting out a timeout. With
//!    `responder=nnf-sos`, `status` and `on` write no request (nnf-sos takes every request for a
//!    fence): see `crate::nnf`.
//! 2. With our watchers, take an exclusive flock on `waiting/<id>.lock`, held until exit: watchers
//!    tell a live agent from a killed one (whose request is answered `abandoned`, never executed).
//! 3. Put the wake-up in place *before* publishing, so no answer can be missed: with our watchers
//!    the FIFO `waiting/<id>.fifo` that the answering watcher writes a byte to (no inotify instance:
//!    tearing one down costs a synchronize_srcu, 8-14 ms, at exit); for other responders, the
//!    response path re-read every 0.25 ms for the first 25 ms (no inotify instance, so a fast
//!    answer costs no teardown), then an inotify watch on the response directory, armed before the
//!    path is read once more (creates too: an answer written in place is read from its create on,
//!    again every 20 ms until it parses).
//! 4. Publish the request atomically (temporary file, fsync, no-replace rename), under the name the
//!    responder's generation uses (`crate::exchange`).
//! 5. Wait for the answer under the same name on the wake-up, with a safety re-check (1 s with our
//!    watchers, 5 s otherwise); accept only a response whose id and target match and, for a success,
//!    whose performed action carries out the request (`off` carries out a `reboot`). An answer written
//!    in place is read again until whole. Responses are never deleted or moved: they are the record.
//! 6. Giving up (timeout or signal) with a responder other than our watchers, take back the request
//!    if it is still there unanswered: nobody else would know that Pacemaker stopped asking. Killed
//!    (SIGKILL, nothing to catch), the agent leaves its holder lock free beside the request, and the
//!    next `monitor` or fence takes the request back (`crate::abandoned`).
//!
//! The agent gives up at `start + delay + fence_timeout`; the request's deadline is that minus a margin,
//! so the watchers answer (even if only "failed") before the agent stops listening.

use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;

use ha::fsio::{self, lock, ReadError};
use ha::os::clock::BootTime;
use ha::protocol::request::{Action, Request, SPOOL_VERSION};
use ha::protocol::response::{Outcome, Response};

use crate::answer::{verdict, Answer};
use crate::discovery::Discovery;
use crate::exchange::Exchange;
use crate::failure::Failure;
use crate::logs::{Event, EventLog, Status};
use crate::options::{Options, Start};
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
enum Wake {
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
    fn new(exchange: &Exchange, id: &str) -> Result<Wake, Failure> {
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

/// Runs one power action end to end.
pub fn run(opts: &Options, action: Action, start: Start) -> Result<Answer, Failure> {
    let target = opts.target().ok_or(Failure::NoTarget)?.to_string();
    if !ha::protocol::names::is_safe_name(&target) {
        return Err(Failure::UnsafeTarget(target));
    }
    // Before any thread starts: a SIGTERM (an operator, a stopping cluster) is read from a signalfd
    // while waiting, so that the agent can take back its unanswered request instead of dying.
    let signals = Signals::block()?;
    let exchange = Exchange::resolve(opts, |k| std::env::var(k).ok())?;
    // The logs are opened at the first record: a status refused before anything was asked leaves
    // the host as it was (see below).
    let opened = std::cell::OnceCell::new();
    let log = || opened.get_or_init(|| EventLog::open(&opts.log_dir));
    let record = |status, found: &crate::discovery::Result, details: &str, id: Option<&str>, r: Option<&Response>| {
        log().record(&Event {
            action: action.as_str(),
            target_node: &target,
            gfs2: &found.0,
            gfs2_discovery: Some(&found.1),
            status,
            details,
            request_id: id,
            nodename: opts.nodename.as_deref(),
            outcome: r.and_then(|r| r.outcome.map(Outcome::as_str).or_else(|| detached_by_nnf_sos(&exchange, r))),
            watcher_id: r.and_then(|r| r.watcher_id.as_deref()),
            elapsed_ms: Some(start.instant.elapsed().as_millis() as u64),
        })
    };
    if let Err(failure) = exchange.prepare() {
        // A fence that cannot even be asked is still recorded (a status is not a fence: run by hand
        // where no watcher ran, it leaves nothing behind).
        if action != Action::Status {
            record(Status::Failed, &Default::default(), &failure.to_string(), None, None);
        }
        return Err(failure);
    }
    let names = opts.nodename.iter().chain([&target]).cloned().collect();
    let mut discovery = Discovery::start(opts, exchange.spool.as_ref(), names);
    // Opened before the delay, whose time hides the opening's.
    log();
    tracing::info!("Fence action requested: {action} for target: {target}");
    std::thread::sleep(opts.delay);

    let (give_up, deadline) = opts.timing(start);

    // Answered without a request (nnf-sos's status and on), or refused before one (no live watcher).
    let early = match (exchange.responder, &exchange.spool) {
        (Responder::NnfSos, _) if matches!(action, Action::Status | Action::On) => {
            Some(crate::nnf::without_request(opts, &exchange, &target, action))
        }
        (Responder::Watchers, Some(spool)) => exchange.responder.check(spool).err().map(Err),
        _ => None,
    };
    if let Some(result) = early {
        let found = discovery.now().cloned().unwrap_or_default();
        return match result {
            Ok(answer) => {
                record(Status::Completed, &found, &answer.stdout, None, None);
                Ok(answer)
            }
            Err(failure) => {
                record(Status::Failed, &found, &failure.to_string(), None, None);
                Err(failure)
            }
        };
    }

    let id = uuid::Uuid::new_v4().to_string();
    let name = exchange.file_name(&target, &id);
    // Other responders know nothing of killed agents: take back what they left before asking anew, and
    // hold this request so that a sweep can tell if this agent is killed in turn.
    if exchange.responder != Responder::Watchers {
        if let Err(e) = crate::abandoned::sweep(&exchange, &opts.log_dir, "the next fence") {
            tracing::warn!("looking for requests of killed agents: {e}");
        }
    }
    let _holder = match exchange.responder {
        Responder::Watchers => None,
        _ => Some(crate::abandoned::Holder::take(&exchange, &name)?),
    };
    // Our watchers tell a live agent from a killed one by its waiting lock (a killed agent's request
    // is answered `abandoned`, never executed), and wake it through its FIFO.
    let _waiting = match (&exchange.spool, exchange.responder) {
        (Some(spool), Responder::Watchers) => {
            let wpath = spool.waiting_lock(&id);
            Some(
                lock::try_exclusive(lock::open_lock_file(&wpath)?, &wpath)?
                    .ok_or_else(|| Failure::Fence(format!("{} is locked by another process", wpath.display())))?,
            )
        }
        _ => None,
    };
    let mut wake = Wake::new(&exchange, &id)?;

    let req = Request {
        request_id: id.clone(),
        timestamp: ha::os::clock::rfc3339_now(),
        action,
        target_node: target.clone(),
        gfs2_filesystems: discovery.now().map(|r| r.0.clone()).unwrap_or_default(),
        recorder_node: log().recorder_node().to_string(),
        version: Some(SPOOL_VERSION),
        nodename: opts.nodename.clone(),
        queue_priority: Some(opts.queue_priority.unwrap_or_else(|| action.default_priority())),
        deadline: Some(ha::os::clock::rfc3339_in(BootTime::now().until(deadline))),
        deadline_boottime_ns: Some(deadline.0),
        boot_id: Some(ha::os::clock::boot_id()?),
        gfs2_discovery: discovery.now().map(|r| r.1.clone()),
    };
    let path = exchange.requests.join(&name);
    // Told to stop during the delay or discovery: publish nothing.
    if let Some(sig) = signals.pending() {
        let msg = format!("interrupted by {sig} before the request was published; nothing was asked of the responder");
        record(Status::Failed, &discovery.now().cloned().unwrap_or_default(), &msg, None, None);
        return Err(Failure::Fence(msg));
    }
    if !fsio::write_new(&exchange.tmp_dir(), &path, &req.to_json())? {
        return Err(Failure::Fence(format!("{} already exists", path.display())));
    }
    tracing::info!("Wrote fence request: {}", path.display());

    let gfs2 = discovery.wait(give_up);
    tracing::info!("GFS2 filesystems for {target}: {} ({})", ha::audit::pyjson::dumps(&gfs2.0), describe(&gfs2.1));
    record(Status::Requested, &gfs2, &format!("Fence action {action} requested by Pacemaker"), Some(&id), None);

    let response = exchange.responses.join(&name);
    let ended = match wait_response(&mut wake, &signals, &response, &req, give_up) {
        Waited::Answered(resp) => {
            return match verdict(action, &resp) {
                Ok(answer) => {
                    match detached_by_nnf_sos(&exchange, &resp) {
                        Some("nothing-detached") => tracing::warn!(
                            "nnf-sos answered success for {target} but detached nothing ({}): {target} has no GFS2 \
                             storage on this rabbit, or nnf-sos knows it under another name (check pcmk_host_map \
                             against nnf-sos's compute names); recorded as nothing-detached",
                            resp.message
                        ),
                        Some("already-fenced") => {
                            tracing::info!(
                                "{target} was already fenced: nnf-sos found its storage deleted ({})",
                                resp.message
                            )
                        }
                        _ => {}
                    }
                    let details = match resp.action_performed.as_str() {
                        p if p == action.as_str() => resp.message.clone(),
                        p => format!("{} (action performed: {p})", resp.message),
                    };
                    record(Status::Completed, &gfs2, &details, Some(&id), Some(&resp));
                    Ok(answer)
                }
                Err(why) => {
                    let msg = format!("fence {action} of {target} failed: {why}");
                    record(Status::Failed, &gfs2, &msg, Some(&id), Some(&resp));
                    Err(Failure::Fence(msg))
                }
            };
        }
        Waited::TimedOut => {
            format!("no response to request {id} within {:.1}s (fence_timeout)", opts.fence_timeout.as_secs_f64())
        }
        Waited::Signalled(sig) => format!("interrupted by {sig} while waiting for the response to request {id}"),
    };
    let fate = match exchange.responder {
        // The watchers answer it `abandoned` (never executed) once they see the waiting lock free.
        Responder::Watchers => format!(
            "the request stays in {} and, if still queued, will be answered abandoned",
            exchange.requests.display()
        ),
        // Nobody else knows the agent stopped listening: take the request back, so that no fence
        // happens long after Pacemaker stopped asking for it.
        _ => match fsio::remove_unanswered(&path, &response) {
            Ok(true) => format!("the unanswered request {} was removed", path.display()),
            Ok(false) => format!("the request {} had been taken or answered; it was left as it is", path.display()),
            Err(e) => format!("the unanswered request could not be removed: {e}; remove {} by hand", path.display()),
        },
    };
    let msg = format!("{ended}; {fate}");
    record(Status::Failed, &gfs2, &msg, Some(&id), None);
    Err(Failure::Fence(msg))
}

/// What nnf-sos's success answer `r` says it detached, as the records' outcome (`None` for another
/// responder, a failure, or a message of a form nnf-sos does not write).
fn detached_by_nnf_sos(exchange: &Exchange, r: &Response) -> Option<&'static str> {
    (exchange.responder == Responder::NnfSos && r.success)
        .then(|| ha::protocol::nnf::detached(&r.message))
        .flatten()
        .map(ha::protocol::nnf::Detached::as_str)
}

/// One line for the operational log: how the file systems were found.
fn describe(p: &ha::protocol::provenance::Provenance) -> String {
    let mut s = match (p.age_ms, p.duration_ms) {
        (Some(age), _) => format!("snapshot taken {:.1}s before", age as f64 / 1000.0),
        (None, Some(ms)) => format!("live discovery in {ms} ms"),
        (None, None) => p.method.clone(),
    };
    for (source, e) in &p.errors {
        s.push_str(&format!("; {source} failed: {e}"));
    }
    s
}

/// How the wait ended.
enum Waited {
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
fn wait_response(wake: &mut Wake, signals: &Signals, path: &Path, req: &Request, give_up: Instant) -> Waited {
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
struct Signals {
    fd: SignalFd,
}

impl Signals {
    const SET: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

    /// Blocks the signals in this thread (and so in every thread started after) and opens the fd.
    fn block() -> Result<Signals, Failure> {
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
    fn pending(&self) -> Option<Signal> {
        let info = self.fd.read_signal().ok()??;
        Signal::try_from(info.ssi_signo as i32).ok()
    }
}
