//! The power actions (`off`, `on`, `reboot`, `status`): publish a request, wait for its response.
//!
//! Order of operations, each step for a reason:
//! 0. Block SIGTERM/SIGINT/SIGHUP before any thread starts and read them from a signalfd while
//!    waiting (`crate::wait::Signals`): an interrupted agent ends like a timed-out one, cleanly.
//! 1. With `responder=gfs2-fence-watcher` (the default) and no live watcher of ours, fail at once:
//!    Pacemaker can then move to the next fencing level instead of waiting out a timeout. With
//!    `responder=nnf-sos`, `status` and `on` write no request (nnf-sos takes every request for a
//!    fence): see `crate::nnf_sos`.
//! 2. With our watchers, take an exclusive flock on `waiting/<id>.lock`, held until exit: watchers
//!    tell a live agent from a killed one (whose request is answered `abandoned`, never executed).
//! 3. Put the wake-up in place *before* publishing, so no answer can be missed (`crate::wait`: a
//!    FIFO with our watchers, re-reads then an inotify watch with other responders).
//! 4. Publish the request atomically (temporary file, fsync, no-replace rename), under the name the
//!    responder's generation uses (`crate::exchange`).
//! 5. Wait for the answer under the same name (`crate::wait`); accept only a response whose id and target match and, for a success,
//!    whose performed action carries out the request (`off` carries out a `reboot`). An answer written
//!    in place is read again until whole. Responses are never deleted or moved: they are the record.
//! 6. Giving up (timeout or signal) with a responder other than our watchers, take back the request
//!    if it is still there unanswered: nobody else would know that Pacemaker stopped asking. Killed
//!    (SIGKILL, nothing to catch), the agent leaves its holder lock free beside the request, and the
//!    next `monitor` or fence takes the request back (`crate::abandoned`).
//!
//! The agent gives up at `start + delay + fence_timeout`; the request's deadline is that minus a margin,
//! so the watchers answer (even if only "failed") before the agent stops listening.

use std::cell::OnceCell;
use std::path::Path;

use ha::fsio::{self, lock};
use ha::os::clock::BootTime;
use ha::protocol::request::{Action, Request, SPOOL_VERSION};
use ha::protocol::response::{Outcome, Response};

use crate::abandoned::Holder;
use crate::discovery::{self, Discovery};
use crate::exchange::Exchange;
use crate::exit::{verdict, Exit};
use crate::failure::Failure;
use crate::logs::{Event, EventLog, Status};
use crate::options::{Options, Start};
use crate::responder::Responder;
use crate::wait::{self, Signals, Waited, Wake};

/// Runs one power action end to end: the steps of the module's doc, in order.
pub fn run(opts: &Options, action: Action, start: Start) -> Result<Exit, Failure> {
    let target = opts.target().ok_or(Failure::NoTarget)?.to_string();
    if !ha::protocol::names::is_safe_name(&target) {
        return Err(Failure::UnsafeTarget(target));
    }
    // Before any thread starts: a SIGTERM (an operator, a stopping cluster) is read from a signalfd
    // while waiting, so that the agent can take back its unanswered request instead of dying.
    let signals = Signals::block()?;
    let exchange = Exchange::resolve(opts, |k| std::env::var(k).ok())?;
    let fence = Fence { opts, action, target, start, exchange, log: OnceCell::new() };
    fence.prepare()?;
    let names = opts.nodename.iter().chain([&fence.target]).cloned().collect();
    let mut discovery = Discovery::start(opts, fence.exchange.spool.as_ref(), names);
    // Opened before the delay, whose time hides the opening's.
    fence.log();
    tracing::info!("Fence action requested: {action} for target: {}", fence.target);
    std::thread::sleep(opts.delay);
    let (give_up, deadline) = opts.timing(start);
    if let Some(result) = fence.early() {
        return fence.ended_early(result, discovery.now().cloned().unwrap_or_default());
    }

    let id = uuid::Uuid::new_v4().to_string();
    let name = fence.exchange.file_name(&fence.target, &id);
    let _held = fence.hold(&name, &id)?;
    let mut wake = Wake::new(&fence.exchange, &id)?;
    let req = fence.request(&id, &mut discovery, deadline)?;
    let path = fence.exchange.requests.join(&name);
    fence.publish(&signals, &mut discovery, &path, &req)?;
    let gfs2 = discovery.wait(give_up);
    fence.requested(&gfs2, &id);
    let response = fence.exchange.responses.join(&name);
    match wait::for_answer(&mut wake, &signals, &response, &req, give_up) {
        Waited::Answered(resp) => fence.answered(&resp, &gfs2, &id),
        Waited::TimedOut => fence.gave_up(
            format!("no response to request {id} within {:.1}s (fence_timeout)", opts.fence_timeout.as_secs_f64()),
            &gfs2,
            &id,
            (&path, &response),
        ),
        Waited::Signalled(sig) => fence.gave_up(
            format!("interrupted by {sig} while waiting for the response to request {id}"),
            &gfs2,
            &id,
            (&path, &response),
        ),
    }
}

/// One power action under way: what each step records against.
struct Fence<'a> {
    opts: &'a Options,
    action: Action,
    target: String,
    start: Start,
    exchange: Exchange,
    /// Opened at the first record: a status refused before anything was asked leaves the host as it
    /// was.
    log: OnceCell<EventLog>,
}

impl Fence<'_> {
    fn log(&self) -> &EventLog {
        self.log.get_or_init(|| EventLog::open(&self.opts.log_dir))
    }

    /// One line of the event log (and the chain), with what the responder said if it answered.
    fn record(&self, status: Status, found: &discovery::Result, details: &str, id: Option<&str>, r: Option<&Response>) {
        self.log().record(&Event {
            action: self.action.as_str(),
            target_node: &self.target,
            gfs2: &found.0,
            gfs2_discovery: Some(&found.1),
            status,
            details,
            request_id: id,
            nodename: self.opts.nodename.as_deref(),
            outcome: r.and_then(|r| r.outcome.map(Outcome::as_str).or_else(|| detached_by_nnf_sos(&self.exchange, r))),
            watcher_id: r.and_then(|r| r.watcher_id.as_deref()),
            elapsed_ms: Some(self.start.instant.elapsed().as_millis() as u64),
        })
    }

    /// The request's record, naming the file systems the fence protects.
    fn requested(&self, gfs2: &discovery::Result, id: &str) {
        tracing::info!(
            "GFS2 filesystems for {}: {} ({})",
            self.target,
            ha::audit::pyjson::dumps(&gfs2.0),
            describe(&gfs2.1)
        );
        let details = format!("Fence action {} requested by Pacemaker", self.action);
        self.record(Status::Requested, gfs2, &details, Some(id), None);
    }

    /// The spool's or the exchange's directories made ready. A fence that cannot even be asked is
    /// still recorded (a status is not a fence: run by hand where no watcher ran, it leaves nothing
    /// behind).
    fn prepare(&self) -> Result<(), Failure> {
        self.exchange.prepare().inspect_err(|failure| {
            if self.action != Action::Status {
                self.record(Status::Failed, &Default::default(), &failure.to_string(), None, None);
            }
        })
    }

    /// Answered without a request (nnf-sos's status and on), or refused before one (no live watcher).
    fn early(&self) -> Option<Result<Exit, Failure>> {
        match (self.exchange.responder, &self.exchange.spool) {
            (Responder::NnfSos, _) if matches!(self.action, Action::Status | Action::On) => {
                Some(crate::nnf_sos::without_request(self.opts, &self.exchange, &self.target, self.action))
            }
            (Responder::Watchers, Some(spool)) => self.exchange.responder.check(spool).err().map(Err),
            _ => None,
        }
    }

    fn ended_early(&self, result: Result<Exit, Failure>, found: discovery::Result) -> Result<Exit, Failure> {
        match &result {
            Ok(answer) => self.record(Status::Completed, &found, &answer.stdout, None, None),
            Err(failure) => self.record(Status::Failed, &found, &failure.to_string(), None, None),
        }
        result
    }

    /// What the agent holds while its request is out, so that a killed agent is told from a live one.
    /// Other responders know nothing of killed agents: what they left is taken back before asking
    /// anew, and this request's holder lock lets a sweep tell if this agent is killed in turn. Our
    /// watchers read the waiting lock (a killed agent's request is answered `abandoned`, never
    /// executed).
    fn hold(&self, name: &str, id: &str) -> Result<(Option<Holder>, Option<lock::Lock>), Failure> {
        match (&self.exchange.spool, self.exchange.responder) {
            (Some(spool), Responder::Watchers) => {
                let wpath = spool.waiting_lock(id);
                let waiting = lock::try_exclusive(lock::open_lock_file(&wpath)?, &wpath)?
                    .ok_or_else(|| Failure::Fence(format!("{} is locked by another process", wpath.display())))?;
                Ok((None, Some(waiting)))
            }
            (None, Responder::Watchers) => Ok((None, None)),
            _ => {
                if let Err(e) = crate::abandoned::sweep(&self.exchange, &self.opts.log_dir, "the next fence") {
                    tracing::warn!("looking for requests of killed agents: {e}");
                }
                Ok((Some(Holder::take(&self.exchange, name)?), None))
            }
        }
    }

    fn request(&self, id: &str, discovery: &mut Discovery, deadline: BootTime) -> Result<Request, Failure> {
        Ok(Request {
            request_id: id.to_string(),
            timestamp: ha::os::clock::rfc3339_now(),
            action: self.action,
            target_node: self.target.clone(),
            gfs2_filesystems: discovery.now().map(|r| r.0.clone()).unwrap_or_default(),
            recorder_node: self.log().recorder_node().to_string(),
            version: Some(SPOOL_VERSION),
            nodename: self.opts.nodename.clone(),
            queue_priority: Some(self.opts.queue_priority.unwrap_or_else(|| self.action.default_priority())),
            deadline: Some(ha::os::clock::rfc3339_in(BootTime::now().until(deadline))),
            deadline_boottime_ns: Some(deadline.0),
            boot_id: Some(ha::os::clock::boot_id()?),
            gfs2_discovery: discovery.now().map(|r| r.1.clone()),
        })
    }

    /// Publishes the request, unless told to stop during the delay or discovery (then nothing is
    /// asked).
    fn publish(&self, signals: &Signals, discovery: &mut Discovery, path: &Path, req: &Request) -> Result<(), Failure> {
        if let Some(sig) = signals.pending() {
            let msg =
                format!("interrupted by {sig} before the request was published; nothing was asked of the responder");
            self.record(Status::Failed, &discovery.now().cloned().unwrap_or_default(), &msg, None, None);
            return Err(Failure::Fence(msg));
        }
        let written = match fsio::write_new(&self.exchange.tmp_dir(), path, &req.to_json()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::Fence(format!("{} already exists", path.display()))),
            Err(e) => Err(Failure::from(e)),
        };
        match written {
            Ok(()) => tracing::info!("Wrote fence request: {}", path.display()),
            // A fence that could not be asked is recorded too (the operational log alone would keep it).
            Err(ref failure) => {
                let msg = format!("the request could not be published: {failure}; nothing was asked of the responder");
                self.record(
                    Status::Failed,
                    &discovery.now().cloned().unwrap_or_default(),
                    &msg,
                    Some(&req.request_id),
                    None,
                );
            }
        }
        written
    }

    /// The response judged against the request, and recorded.
    fn answered(&self, resp: &Response, gfs2: &discovery::Result, id: &str) -> Result<Exit, Failure> {
        let (action, target) = (self.action, &self.target);
        match verdict(action, resp) {
            Ok(answer) => {
                match detached_by_nnf_sos(&self.exchange, resp) {
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
                self.record(Status::Completed, gfs2, &details, Some(id), Some(resp));
                Ok(answer)
            }
            Err(why) => {
                let msg = format!("fence {action} of {target} failed: {why}");
                self.record(Status::Failed, gfs2, &msg, Some(id), Some(resp));
                Err(Failure::Fence(msg))
            }
        }
    }

    /// No answer (timeout or signal): what becomes of the request, recorded with why the wait ended.
    fn gave_up(
        &self,
        ended: String,
        gfs2: &discovery::Result,
        id: &str,
        (path, response): (&Path, &Path),
    ) -> Result<Exit, Failure> {
        let fate = match self.exchange.responder {
            // The watchers answer it `abandoned` (never executed) once they see the waiting lock free.
            Responder::Watchers => format!(
                "the request stays in {} and, if still queued, will be answered abandoned",
                self.exchange.requests.display()
            ),
            // Nobody else knows the agent stopped listening: take the request back, so that no fence
            // happens long after Pacemaker stopped asking for it.
            _ => match fsio::remove_unanswered(path, response) {
                Ok(true) => format!("the unanswered request {} was removed", path.display()),
                Ok(false) => format!("the request {} had been taken or answered; it was left as it is", path.display()),
                Err(e) => {
                    format!("the unanswered request could not be removed: {e}; remove {} by hand", path.display())
                }
            },
        };
        let msg = format!("{ended}; {fate}");
        self.record(Status::Failed, gfs2, &msg, Some(id), None);
        Err(Failure::Fence(msg))
    }
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
