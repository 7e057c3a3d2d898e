//! The watcher's main loop: `run(settings, shutdown)`.
//!
//! One thread (a current-thread tokio runtime) does everything, so the fence commands it spawns have
//! a parent thread that lives as long as the watcher (their death signal is tied to it).
//!
//! - `requests/` is watched with inotify (`IN_CLOSE_WRITE`, `IN_MOVED_TO`) and rescanned every
//!   `rescan_interval`, which also recovers dead watchers' claims.
//! - Each claimed request is served by its own task: decide (expired, abandoned, execute), run the
//!   fence command, answer once, retire the claim. Tasks report completion on a channel.
//! - Shutdown is a broadcast (`watch`): the loop stops claiming, lets in-flight executions finish
//!   within the grace period, then aborts them: each kills its command's group, reaps it and only
//!   then requeues its request. Nothing is left claimed by a live watcher that stopped.
//!
//! Locks held: the member lock for the whole run; one lease per in-flight request.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

use ha::answer::{self, Placed};
use ha::claim::{self, Claim, Claimed, Quarantined};
use ha::clock::BootTime;
use ha::decide::{self, AgentState, Disposition};
use ha::request::{Action, SPOOL_VERSION};
use ha::response::{Outcome, PowerState, Response};
use ha::spool::{Dir, Spool, WATCHER_DIRS};

use crate::execute::{self, Ending, Execution};
use crate::member::Member;
use crate::settings::Settings;
use crate::WatchError;

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// What every serving task shares (read-only).
struct Shared {
    settings: Settings,
    boot_id: String,
}

/// Runs a watcher until `shutdown` becomes true.
pub async fn run(
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), WatchError> {
    let spool = settings.spool.clone();
    spool.prepare(&WATCHER_DIRS)?;
    let boot_id = ha::clock::boot_id()?;
    let targets =
        serde_json::to_vec(&settings.fence.published_targets()).expect("targets serialise");
    ha::fsio::write_replace(&spool.dir(Dir::Tmp), &ha::targets::path(&spool), &targets)?;
    let inotify = if settings.inotify {
        Some(watch_requests(&spool)?)
    } else {
        None
    };
    // Last: from here on agents count this watcher as live, so all it serves with is ready.
    let mut member = Member::join(&spool, &settings.id, &boot_id)?;
    tracing::info!(watcher_id = %settings.id, spool = %spool.base().display(), "watcher started");

    let shared = Arc::new(Shared { settings, boot_id });
    let mut rescan = tokio::time::interval(shared.settings.rescan_interval);
    let mut heartbeat = tokio::time::interval(shared.settings.heartbeat_interval);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut inflight: HashMap<String, watch::Sender<bool>> = HashMap::new();
    let mut dirty = true;

    loop {
        if dirty {
            dirty = false;
            fill(&shared, &mut inflight, &done_tx);
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            ready = readable(inotify.as_ref()) => {
                if let Some(mut guard) = ready {
                    let _ = guard.get_inner().0.read_events();
                    guard.clear_ready();
                }
                dirty = true;
            }
            _ = rescan.tick() => {
                if let Err(e) = ha::recover::recover(&spool) {
                    tracing::error!("recovering dead claims: {e}");
                }
                dirty = true;
            }
            _ = heartbeat.tick() => {
                if let Err(e) = member.beat() {
                    tracing::error!("heartbeat: {e}");
                }
            }
            Some(id) = done_rx.recv() => {
                inflight.remove(&id);
                dirty = true;
            }
        }
    }

    tracing::info!(in_flight = inflight.len(), "shutting down: no new claims");
    let grace = tokio::time::sleep(shared.settings.shutdown_grace);
    tokio::pin!(grace);
    let mut aborted = false;
    while !inflight.is_empty() {
        tokio::select! {
            Some(id) = done_rx.recv() => { inflight.remove(&id); }
            _ = &mut grace, if !aborted => {
                tracing::warn!(in_flight = inflight.len(), "grace period over: killing fence commands and requeueing their requests");
                for abort in inflight.values() {
                    let _ = abort.send(true);
                }
                aborted = true;
            }
        }
    }
    tracing::info!("watcher stopped");
    Ok(())
}

fn watch_requests(spool: &Spool) -> Result<AsyncFd<InotifyFd>, WatchError> {
    let dir = spool.dir(Dir::Requests);
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| ha::HaError::errno("inotify_init", &dir, e))?;
    ino.add_watch(
        &dir,
        AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
    )
    .map_err(|e| ha::HaError::errno("inotify_add_watch", &dir, e))?;
    // SAFETY: the descriptor is owned by the `Inotify` inside the `AsyncFd`, so it stays open and the
    // same for the `AsyncFd`'s whole life, and `as_raw_fd` always returns it.
    let registered =
        unsafe { AsyncFd::register_with_interest(InotifyFd(ino), tokio::io::Interest::READABLE) };
    registered.map_err(|e| ha::HaError::io("register inotify for", &dir, e.into()).into())
}

async fn readable(
    fd: Option<&AsyncFd<InotifyFd>>,
) -> Option<tokio::io::unix::AsyncFdReadyGuard<'_, InotifyFd>> {
    match fd {
        Some(fd) => fd.readable().await.ok(),
        None => std::future::pending().await,
    }
}

/// Pending request file names, oldest first.
fn pending(spool: &Spool) -> Result<Vec<String>, WatchError> {
    let dir = spool.dir(Dir::Requests);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(ha::HaError::at("list", &dir))? {
        let entry = entry.map_err(ha::HaError::at("list", &dir))?;
        let mtime = entry.metadata().and_then(|m| m.modified()).ok();
        files.push((mtime, entry.file_name().to_string_lossy().into_owned()));
    }
    files.sort();
    Ok(files.into_iter().map(|(_, n)| n).collect())
}

/// Claims pending requests up to `max_parallel` and starts a task for each.
fn fill(
    shared: &Arc<Shared>,
    inflight: &mut HashMap<String, watch::Sender<bool>>,
    done: &mpsc::UnboundedSender<String>,
) {
    let s = &shared.settings;
    if inflight.len() >= s.max_parallel {
        return;
    }
    let names = match pending(&s.spool) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let busy: HashSet<String> = inflight.keys().map(|id| format!("{id}.json")).collect();
    for name in names.iter().filter(|n| !busy.contains(*n)) {
        if inflight.len() >= s.max_parallel {
            break;
        }
        match claim::try_claim(&s.spool, name, &s.id) {
            Ok(Claim::Claimed(c)) => {
                let id = c.name.id.clone();
                let (abort_tx, abort_rx) = watch::channel(false);
                inflight.insert(id.clone(), abort_tx);
                let (shared, done) = (shared.clone(), done.clone());
                tokio::spawn(async move {
                    if let Err(e) = serve(&shared, *c, abort_rx).await {
                        tracing::error!(request_id = %id, "serving request: {e}");
                    }
                    let _ = done.send(id);
                });
            }
            Ok(Claim::Quarantined(q)) => reject(shared, &q),
            Ok(Claim::Busy | Claim::NotReady | Claim::Skipped) => {}
            Err(e) => tracing::error!(file = %name, "claiming: {e}"),
        }
    }
}

fn response(shared: &Shared, id: &str, action: &str, target: &str) -> Response {
    Response {
        request_id: id.to_string(),
        success: false,
        action_performed: action.to_string(),
        target_node: target.to_string(),
        message: String::new(),
        timestamp: ha::clock::rfc3339_now(),
        version: Some(SPOOL_VERSION),
        power_state: None,
        watcher_id: Some(shared.settings.id.clone()),
        attempts: None,
        duration_ms: None,
        outcome: None,
    }
}

/// Answers a quarantined request `rejected` when its id is known, so its agent fails fast.
fn reject(shared: &Shared, q: &Quarantined) {
    let Some(id) = &q.id else { return };
    let mut r = response(
        shared,
        id,
        q.action.as_deref().unwrap_or("unknown"),
        q.target.as_deref().unwrap_or(""),
    );
    r.message = format!(
        "request rejected and quarantined at {}: {}",
        q.moved_to.display(),
        q.reason
    );
    r.outcome = Some(Outcome::Rejected);
    if let Err(e) = answer::respond(&shared.settings.spool, &r) {
        tracing::error!(request_id = %id, "answering a rejected request: {e}");
    }
}

fn agent_state(spool: &Spool, id: &str) -> AgentState {
    match ha::fsio::lock::probe_held(&spool.waiting_lock(id)) {
        Ok(Some(true)) => AgentState::Waiting,
        Ok(Some(false)) => AgentState::Gone,
        Ok(None) => AgentState::Unknown,
        Err(e) => {
            tracing::warn!(request_id = %id, "cannot probe the agent's waiting lock ({e}); assuming it waits");
            AgentState::Waiting
        }
    }
}

/// Serves one claimed request to the end: answer once and retire the claim, or requeue on abort.
async fn serve(
    shared: &Shared,
    claimed: Claimed,
    mut abort: watch::Receiver<bool>,
) -> Result<(), WatchError> {
    let s = &shared.settings;
    let started = Instant::now();
    let req = claimed.request.clone();
    let id = req.request_id.as_str();
    let mut resp = response(shared, id, req.action.as_str(), &req.target_node);
    resp.attempts = Some(claimed.name.attempt);
    let deadline = decide::deadline_of(&req, &shared.boot_id, BootTime::now(), s.default_deadline);
    match decide::dispose(
        deadline,
        BootTime::now(),
        agent_state(&s.spool, id),
        s.min_budget,
    ) {
        Disposition::Expired => {
            resp.outcome = Some(Outcome::Expired);
            resp.message = "deadline passed before the fence could run; not executed".into();
        }
        Disposition::Abandoned => {
            resp.outcome = Some(Outcome::Abandoned);
            resp.message =
                "the requesting agent is gone (its waiting lock is free); not executed".into();
        }
        Disposition::Execute { budget } => {
            let Some(cmd) = s.fence.command_for(&req.target_node) else {
                resp.outcome = Some(Outcome::Failed);
                resp.message = format!(
                    "no fence command is configured for target {:?}",
                    req.target_node
                );
                return answer_and_retire(shared, claimed, resp, started);
            };
            let budget = budget.min(s.exec_timeout);
            tracing::info!(request_id = %id, target = %req.target_node, action = %req.action, attempt = claimed.name.attempt,
                command = %cmd.program.display(), budget_ms = budget.as_millis() as u64, "executing");
            let attempt = claimed.name.attempt;
            let spool = s.spool.clone();
            let watcher_id = s.id.clone();
            let exec = execute::execute(cmd, &req, budget, &mut abort, |pid| {
                let a = ha::attempts::Attempt {
                    attempt,
                    watcher_id,
                    pid,
                    started_boottime_ns: BootTime::now().0,
                    started: ha::clock::rfc3339_now(),
                };
                if let Err(e) = ha::attempts::record(&spool, id, &a) {
                    tracing::warn!(request_id = %id, "recording the attempt: {e}");
                }
            })
            .await;
            if exec.ending == Ending::Aborted {
                tracing::warn!(request_id = %id, "fence command killed at shutdown; request requeued");
                answer::release(&s.spool, claimed)?;
                return Ok(());
            }
            judge(req.action, &exec, &mut resp);
        }
    }
    answer_and_retire(shared, claimed, resp, started)
}

/// Fills the response from an execution's result.
fn judge(action: Action, exec: &Execution, resp: &mut Response) {
    let detail = if exec.output.is_empty() {
        String::new()
    } else {
        format!(": {}", exec.output)
    };
    let (success, power, message) = match (&exec.ending, action) {
        (Ending::Exited(0), Action::Status) => (true, PowerState::On, "status: ON".to_string()),
        (Ending::Exited(2), Action::Status) => (true, PowerState::Off, "status: OFF".to_string()),
        (Ending::Exited(0), Action::Off) => (true, PowerState::Off, "fenced: powered OFF".to_string()),
        (Ending::Exited(0), Action::On) => (true, PowerState::On, "unfenced: powered ON".to_string()),
        (Ending::Exited(0), Action::Reboot) => (true, PowerState::Unknown, "fenced: rebooted".to_string()),
        (Ending::Exited(c), _) => (false, PowerState::Unknown, format!("fence command exited with status {c}{detail}")),
        (Ending::Signalled(sig), _) => (false, PowerState::Unknown, format!("fence command killed by signal {sig}{detail}")),
        (Ending::TimedOut(d), _) => (
            false,
            PowerState::Unknown,
            format!("fence command timed out after {:.1}s and was killed with its process group{detail}", d.as_secs_f64()),
        ),
        (Ending::SpawnFailed(why), _) => (false, PowerState::Unknown, why.clone()),
        (Ending::Aborted, _) => (false, PowerState::Unknown, "aborted".to_string()),
    };
    resp.success = success;
    resp.power_state = Some(power);
    resp.outcome = Some(if success {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    resp.message = message;
}

fn answer_and_retire(
    shared: &Shared,
    claimed: Claimed,
    mut resp: Response,
    started: Instant,
) -> Result<(), WatchError> {
    let spool = &shared.settings.spool;
    if !claimed.still_ours(spool) {
        tracing::warn!(request_id = %resp.request_id, "this claim was taken over while it ran; not answering");
        return Ok(());
    }
    resp.duration_ms = Some(started.elapsed().as_millis() as u64);
    resp.timestamp = ha::clock::rfc3339_now();
    let placed = answer::respond(spool, &resp)?;
    tracing::info!(request_id = %resp.request_id, target = %resp.target_node, action = %resp.action_performed,
        success = resp.success, outcome = resp.outcome.map_or("", Outcome::as_str),
        superseded = matches!(placed, Placed::Superseded(_)), "answered");
    answer::finish(spool, claimed)?;
    Ok(())
}
