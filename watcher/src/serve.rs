//! Serving one job: a claimed request, the identical requests coalesced into it, and the target's
//! lock. Requests whose agent is gone or whose deadline leaves no time are answered without running
//! anything; the rest share one execution, retried with backoff within the deadline and the attempt
//! cap. Before every attempt (the first and each retry) the agents are looked at again: a request
//! whose agent has gone since (Pacemaker killed it at the device's timeout and moved on) is answered
//! `abandoned`, and the execution goes on only while some request's caller still waits — no fence
//! runs for a caller that is gone. The target lock is inherited by each fence command and released
//! only after every claim of the job is answered and retired.

use std::os::fd::AsRawFd;
use std::time::Instant;

use tokio::sync::watch;

use ha::fsio::lock::Lock;
use ha::os::clock::BootTime;
use ha::protocol::request::Request;
use ha::protocol::response::{Outcome, Response};
use ha::spool::answer;
use ha::spool::backoff::Schedule;
use ha::spool::claim::Claimed;
use ha::spool::decide::{self, AgentState, Disposition};
use ha::spool::Spool;

use crate::config::FenceCommand;
use crate::error::WatchError;
use crate::execute::{self, Ending, Execution, Invocation};
use crate::metrics::Reason;
use crate::reply;
use crate::shared::Shared;
use crate::verdict::{judge, reason, succeeded};

/// What one task serves.
#[derive(Debug)]
pub struct Job {
    /// The first is the request executed; the others are identical ones queued before the launch.
    pub claims: Vec<Claimed>,
    /// The target's lock (none for a request re-dispatched from a stuck watcher).
    pub target_lock: Option<Lock>,
    /// The spool-format-1 locks of the claims' requested names, held as long as the target's lock.
    pub format1_locks: ha::fsio::lock::LockSet,
}

fn agent_state(spool: &Spool, id: &str) -> AgentState {
    use ha::fsio::lock::LockState;
    match ha::fsio::lock::probe(&spool.waiting_lock(id)) {
        Ok(LockState::Held) => AgentState::Waiting,
        Ok(LockState::Free) => AgentState::Gone,
        Ok(LockState::Absent) => AgentState::Unknown,
        Err(e) => {
            tracing::warn!(request_id = %id, "cannot probe the agent's waiting lock ({e}); assuming it waits");
            AgentState::Waiting
        }
    }
}

/// Serves a job to the end: every claim answered once and retired, or all requeued on abort.
pub async fn serve(shared: &Shared, job: Job, mut abort: watch::Receiver<bool>) -> Result<(), WatchError> {
    let s = &shared.settings;
    let started = Instant::now();
    let mut runnable = answer_unrunnable(shared, job.claims, started)?;
    let Some((primary, _)) = runnable.first() else {
        return Ok(());
    };
    let target = primary.request.target_node.clone();
    let Some(cmd) = s.fence.command_for(&target) else {
        let resp = no_command(shared, primary);
        return answer_all(shared, runnable, resp, started, Some(Reason::no_command));
    };
    let runner = Runner { shared, cmd, inherit: job.target_lock.as_ref().map(|l| l.file().as_raw_fd()) };
    let mut schedule = Schedule::new(s.retry, s.jitter_seed ^ primary.name.attempt as u64, primary.name.attempt - 1);
    let mut last: Option<Execution> = None;
    let mut not_started = 0u32;
    let exec = loop {
        // Whoever stopped waiting since the last look is answered; the first still waiting leads.
        answer_gone(shared, &mut runnable, last.as_ref(), schedule.attempts(), started)?;
        let Some((primary, deadline)) = runnable.first() else {
            tracing::warn!(target = %target, attempts = schedule.attempts(), "every requesting agent is gone; not executed again");
            return Ok(());
        };
        // A device that takes a limited number of sessions: one of its slots, held through the run,
        // taken before the attempt starts and its budget is measured (the wait may be long).
        let _slot = match device_slot(shared, cmd, *deadline, &mut abort).await {
            SlotWait::Held(slot) => slot,
            SlotWait::Aborted => return release_all(shared, runnable),
        };
        let (req, deadline) = (primary.request.clone(), *deadline);
        let exec = runner.attempt(&req, deadline, schedule.started(), runnable.len() - 1, &mut abort).await;
        if exec.ending == Ending::Aborted {
            return release_all(shared, runnable);
        }
        if succeeded(req.action, &exec) {
            break exec;
        }
        let Some(at) = retry_at(shared, &mut schedule, &mut not_started, &exec, (&req.request_id, deadline)) else {
            break exec;
        };
        if !matches!(exec.ending, Ending::NotStarted(_)) {
            shared.metrics.retried();
            last = Some(exec);
        }
        tokio::select! {
            _ = tokio::time::sleep(BootTime::now().until(at)) => {}
            _ = abort.wait_for(|a| *a) => return release_all(shared, runnable),
        }
    };
    let mut resp = reply::for_claim(shared, &runnable[0].0);
    judge(runnable[0].0.request.action, &exec, &mut resp);
    resp.attempts = Some(schedule.attempts());
    if !resp.success && schedule.attempts() > 1 {
        resp.message = format!("after {} attempts, the last: {}", schedule.attempts(), resp.message);
    }
    let why = (!resp.success).then(|| reason(&exec.ending));
    answer_all(shared, runnable, resp, started, why)?;
    drop(job.target_lock);
    Ok(())
}

/// Answers the claims whose agent is gone (`abandoned`) or whose deadline leaves no time
/// (`expired`), without running anything; returns the others with their deadlines.
fn answer_unrunnable(
    shared: &Shared,
    claims: Vec<Claimed>,
    started: Instant,
) -> Result<Vec<(Claimed, BootTime)>, WatchError> {
    let s = &shared.settings;
    let now = BootTime::now();
    let mut runnable = Vec::new();
    for c in claims {
        // The claimed file kept the request file's mtime: when its client wrote it.
        let (_, deadline) = reply::written_and_deadline(shared, &c);
        let (resp, why) =
            match decide::dispose(deadline, now, agent_state(&s.spool, &c.request.request_id), s.min_budget) {
                Disposition::Execute { .. } => {
                    runnable.push((c, deadline));
                    continue;
                }
                Disposition::Expired => {
                    let mut resp = reply::for_claim(shared, &c);
                    resp.attempts = Some(c.name.attempt - 1);
                    resp.outcome = Some(Outcome::Expired);
                    resp.message = "deadline passed before the fence could run; not executed".into();
                    (resp, Reason::expired)
                }
                Disposition::Abandoned => (abandoned(shared, &c, c.name.attempt - 1, None), Reason::abandoned),
            };
        reply::answer_and_retire(shared, c, resp, started, Some(why))?;
    }
    Ok(runnable)
}

/// The failure of a request for a target the configuration has no fence command for.
fn no_command(shared: &Shared, c: &Claimed) -> Response {
    let target = &c.request.target_node;
    let mut resp = reply::for_claim(shared, c);
    resp.outcome = Some(Outcome::Failed);
    let known: Vec<&str> = shared.settings.fence.target_names().collect();
    resp.message = format!(
        "no fence command is configured for target {target:?}: the watchers' configuration names {} and has \
         no default entry; add the target (or a default) to it, or correct the device's plug \
         (pcmk_host_map, pcmk_host_list)",
        if known.is_empty() { "no target".to_string() } else { known.join(", ") }
    );
    resp
}

/// Runs a job's fence command, holding the target's lock (`inherit`: the command inherits it).
struct Runner<'a> {
    shared: &'a Shared,
    cmd: &'a FenceCommand,
    inherit: Option<std::os::fd::RawFd>,
}

impl Runner<'_> {
    /// One execution of the command for `req` (attempt number `attempt`, `coalesced` requests
    /// riding on it), within the deadline and the execution timeout; the attempt is recorded in
    /// the spool once the command has started.
    async fn attempt(
        &self,
        req: &Request,
        deadline: BootTime,
        attempt: u32,
        coalesced: usize,
        abort: &mut watch::Receiver<bool>,
    ) -> Execution {
        let (shared, cmd, s) = (self.shared, self.cmd, &self.shared.settings);
        let id = req.request_id.as_str();
        let budget = BootTime::now().until(deadline).min(s.exec_timeout);
        tracing::info!(request_id = %id, target = %req.target_node, action = %req.action, attempt,
            coalesced, command = %cmd.program.display(), budget_ms = budget.as_millis() as u64, "executing");
        let inv = Invocation {
            program: &cmd.program,
            stdin: execute::stdin_text(cmd, req),
            request_id: id,
            environment: &cmd.environment,
        };
        let exec = execute::execute(inv, budget, self.inherit, abort, |pid| {
            shared.member.lock().unwrap().child_started(pid);
            let a = ha::spool::attempts::Attempt {
                attempt,
                watcher_id: s.id.clone(),
                pid,
                started_boottime_ns: BootTime::now().0,
                started: ha::os::clock::rfc3339_now(),
            };
            if let Err(e) = ha::spool::attempts::record(&s.spool, id, &a) {
                tracing::warn!(request_id = %id, "recording the attempt: {e}");
            }
        })
        .await;
        shared.member.lock().unwrap().child_ended(exec.pid);
        if !matches!(exec.ending, Ending::NotStarted(_)) {
            shared.metrics.executed(exec.duration);
        }
        exec
    }
}

/// When to try again after a failed execution, if the deadline allows: a command that never ran is
/// not an attempt, and is started again soon (holding the claim and the target's lock) while the
/// deadline leaves a fence command its least budget; a failed run waits out the backoff schedule.
fn retry_at(
    shared: &Shared,
    schedule: &mut Schedule,
    not_started: &mut u32,
    exec: &Execution,
    (id, deadline): (&str, BootTime),
) -> Option<BootTime> {
    let s = &shared.settings;
    if let Ending::NotStarted(why) = &exec.ending {
        schedule.not_started();
        let at = BootTime::now().after(ha::spool::backoff::start_again_after(*not_started));
        *not_started += 1;
        tracing::warn!(request_id = %id, tries = *not_started, "{why}; starting it again in {} ms", BootTime::now().until(at).as_millis());
        (at.until(deadline) >= s.min_budget).then_some(at)
    } else {
        let at = schedule.next_start(BootTime::now(), deadline, s.min_budget);
        if let Some(at) = at {
            tracing::warn!(request_id = %id, attempt = schedule.attempts(), "fence command failed; retrying in {} ms", BootTime::now().until(at).as_millis());
        }
        at
    }
}

/// Answers `abandoned`, and removes from `claims`, each claim whose agent is gone (its waiting lock
/// free): after `attempts` executions, the last of which ended as `last` says. A claim without a
/// waiting lock (the seed's v1 agent, upstream's v2 clients) keeps its deadline rule.
fn answer_gone(
    shared: &Shared,
    claims: &mut Vec<(Claimed, BootTime)>,
    last: Option<&Execution>,
    attempts: u32,
    started: Instant,
) -> Result<(), WatchError> {
    let spool = &shared.settings.spool;
    let (gone, waiting): (Vec<_>, Vec<_>) = std::mem::take(claims)
        .into_iter()
        .partition(|(c, _)| !decide::caller_waits(agent_state(spool, &c.request.request_id)));
    *claims = waiting;
    for (c, _) in gone {
        let resp = abandoned(shared, &c, attempts, last);
        tracing::warn!(request_id = %c.request.request_id, attempts, "the requesting agent is gone; answered abandoned");
        reply::answer_and_retire(shared, c, resp, started, Some(Reason::abandoned))?;
    }
    Ok(())
}

/// The answer to a claim whose agent is gone: after `attempts` executions (across watchers), the
/// last of which, when this watcher ran it, ended as `last` says.
fn abandoned(shared: &Shared, c: &Claimed, attempts: u32, last: Option<&Execution>) -> Response {
    let mut resp = reply::for_claim(shared, c);
    resp.attempts = Some(attempts);
    resp.outcome = Some(Outcome::Abandoned);
    let gone = "the requesting agent is gone (its waiting lock is free)";
    resp.message = match last {
        None if attempts == 0 => format!("{gone}; not executed"),
        None => format!("{gone}; not executed again after {attempts} attempt(s)"),
        Some(exec) => {
            let mut failed = resp.clone();
            judge(c.request.action, exec, &mut failed);
            format!("{gone}; not retried after {attempts} failed attempt(s), the last: {}", failed.message)
        }
    };
    resp
}

fn release_all(shared: &Shared, claims: Vec<(Claimed, BootTime)>) -> Result<(), WatchError> {
    for (c, _) in claims {
        tracing::warn!(request_id = %c.request.request_id, "fence command killed at shutdown; request requeued");
        answer::release(&shared.settings.spool, c)?;
    }
    Ok(())
}

/// Answers the executed request with `resp` and each coalesced one from it.
fn answer_all(
    shared: &Shared,
    claims: Vec<(Claimed, BootTime)>,
    resp: Response,
    started: Instant,
    why: Option<Reason>,
) -> Result<(), WatchError> {
    let mut claims = claims.into_iter();
    let Some((primary, _)) = claims.next() else {
        return Ok(());
    };
    let executed = primary.request.request_id.clone();
    for (c, _) in claims {
        let r = decide::coalesced(reply::for_claim(shared, &c), &executed, &resp);
        reply::answer_and_retire(shared, c, r, started, why)?;
    }
    reply::answer_and_retire(shared, primary, resp, started, why)
}

/// How waiting for a device's session ended.
enum SlotWait {
    /// A slot (or none needed: the device takes any number); the run may start.
    Held(Option<Lock>),
    /// The watcher is shutting down.
    Aborted,
}

/// How often a watcher looks again for a free session of a busy device.
const SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits for one of the device's `sessions` slots (held by executions of any watcher of the spool)
/// while the deadline leaves a fence command its least budget; past that, the run starts without one
/// rather than not at all: a fence that may fail at a busy device beats one never tried.
async fn device_slot(
    shared: &Shared,
    cmd: &FenceCommand,
    deadline: BootTime,
    abort: &mut watch::Receiver<bool>,
) -> SlotWait {
    let Some(n) = cmd.sessions else { return SlotWait::Held(None) };
    let s = &shared.settings;
    let device = crate::config::device_key(cmd);
    let mut waited = false;
    loop {
        match ha::fsio::lock::try_any((0..n).map(|i| s.spool.device_slot(&device, i))) {
            Ok(Some(slot)) => return SlotWait::Held(Some(slot)),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(command = %cmd.program.display(), "device session slots: {e}; running without one");
                return SlotWait::Held(None);
            }
        }
        if BootTime::now().until(deadline) <= s.min_budget {
            tracing::warn!(command = %cmd.program.display(), sessions = n,
                "every session of the device stayed in use until the deadline's last budget; running without one");
            return SlotWait::Held(None);
        }
        if !waited {
            tracing::info!(command = %cmd.program.display(), sessions = n, "the device's sessions are all in use; waiting for one");
            waited = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(SLOT_POLL) => {}
            _ = abort.wait_for(|a| *a) => return SlotWait::Aborted,
        }
    }
}
