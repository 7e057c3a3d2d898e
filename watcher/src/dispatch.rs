//! Choosing what to run next, and claiming it.
//!
//! A "target" here is an exclusion key (`FenceConfig::exclusion_key`): the device and plug a fence
//! acts upon, whatever name Pacemaker used. Targets compete through their first pending request
//! (priority, deadline, age: see `ha::spool::queue`). Before claiming a target's request, the watcher takes
//! the key's lock (`locks/<hash>.lock`, non-blocking): whoever holds it runs that key's requests one
//! at a time in submission order, so two executions against one plug never overlap, across all
//! watchers. Under the lock, a first request superseded by a later `off`/`reboot` is answered
//! `superseded`, and the requests of the same action that directly follow it in submission order are
//! claimed with the executed one (`coalesced`) — never one queued behind another action.
//!
//! Spool format 1 (watchers before the exclusion key, which may share the spool during a rolling
//! upgrade or after a downgrade) locks `locks/<requested name>.lock` instead. Beside the key's lock,
//! the watcher holds that lock of every request it claims through the execution, so that such a
//! watcher, should one run, skips the node; a request whose format-1 lock another process holds is
//! not claimed now.
//!
//! Locks taken: `locks/<hash>.lock` (handed to the serving task), `locks/<requested name>.lock` of
//! each claimed request (likewise), each request's flock (the lease).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use ha::fsio::lock::{self, LockSet};
use ha::spool::claim::{self, Claim, Claimed};
use ha::spool::decide;
use ha::spool::queue::Entry;

use crate::intake::Intake;
use crate::reply;
use crate::serve::{self, Job};
use crate::shared::Shared;

/// Heads looked at beyond this watcher's own needs: room for the targets other watchers hold.
const LOOKAHEAD: usize = 64;

/// A job in flight, by the id of the request it executes.
#[derive(Debug)]
pub struct Running {
    /// Its target.
    pub target: String,
    /// Set to true to abort it (shutdown after the grace period).
    pub abort: watch::Sender<bool>,
}

/// What trying a target gave.
enum Take {
    /// A job to run.
    Job(Job),
    /// Another process holds the target's lock (a peer's job, or a dead peer's fence command not yet
    /// reaped): worth trying again soon.
    Busy,
    /// A passing shortage (descriptors, memory) stopped the claim: worth trying again after a moment.
    Short,
    /// Nothing runnable now.
    Nothing,
}

impl Take {
    /// What a claim stopped by `e` gives: a passing shortage is tried again shortly, anything else
    /// at the next event or rescan.
    fn after(e: &ha::HaError) -> Take {
        if e.is_transient() {
            Take::Short
        } else {
            Take::Nothing
        }
    }
}

/// How soon to try a target another process holds again.
pub const BUSY_RETRY: Duration = Duration::from_millis(20);
/// How soon to try again after a passing shortage: long enough not to spin on it, short beside any
/// fence's deadline.
pub const SHORT_RETRY: Duration = Duration::from_millis(200);

/// Claims work up to `max_parallel` jobs and starts a task for each. Returns how soon to try again
/// when a target was skipped because another process held its lock ([`BUSY_RETRY`]) or a passing
/// shortage stopped a claim ([`SHORT_RETRY`]); `None` when the next event or rescan is soon enough.
/// Under a target's lock the intake is caught up first ([`Intake::catch_up`]).
pub fn fill(
    shared: &Arc<Shared>,
    intake: &mut Intake,
    running: &mut HashMap<String, Running>,
    done: &mpsc::UnboundedSender<String>,
) -> Option<Duration> {
    let s = &shared.settings;
    if crate::aside::standing_aside(shared) {
        // A live peer speaks an older spool format: it alone claims (see `aside`).
        return None;
    }
    for name in intake.index.take_bad() {
        match claim::try_claim(&s.spool, &name, &s.id) {
            Ok(Claim::Quarantined(q)) => reply::reject(shared, &q),
            Ok(Claim::Claimed(c)) => {
                if let Err(e) = ha::spool::answer::release(&s.spool, *c) {
                    tracing::error!(file = %name, "requeueing: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(file = %name, "quarantining: {e}"),
        }
    }
    // Only the best few heads can be claimed now: the ones this watcher runs, the ones other watchers
    // hold, and enough to fill the free slots. Looking no further keeps a claim's cost independent of
    // how many requests are pending.
    let look = running.len() + (s.max_parallel - running.len().min(s.max_parallel)) + LOOKAHEAD;
    let targets: Vec<String> = intake.index.queue.heads().take(look).map(|e| e.target.clone()).collect();
    let mut retry: Option<Duration> = None;
    for target in targets {
        if running.len() >= s.max_parallel {
            break;
        }
        if running.values().any(|r| r.target == target) {
            continue;
        }
        let job = match take_target(shared, intake, &target) {
            Take::Job(job) => job,
            Take::Busy => {
                retry = Some(BUSY_RETRY);
                continue;
            }
            Take::Short => {
                retry = retry.or(Some(SHORT_RETRY));
                continue;
            }
            Take::Nothing => continue,
        };
        let id = job.claims[0].request.request_id.clone();
        let (abort_tx, abort_rx) = watch::channel(false);
        running.insert(id.clone(), Running { target, abort: abort_tx });
        let (shared, done) = (shared.clone(), done.clone());
        tokio::spawn(async move {
            if let Err(e) = serve::serve(&shared, job, abort_rx).await {
                tracing::error!(request_id = %id, "serving request: {e}");
            }
            let _ = done.send(id);
        });
    }
    retry
}

/// Under the target's lock, claims the target's next runnable request and the identical ones queued.
fn take_target(shared: &Shared, intake: &mut Intake, target: &str) -> Take {
    let s = &shared.settings;
    let Some(first) = intake.index.queue.of_target(target).next().cloned() else { return Take::Nothing };
    let target_lock = if first.waived {
        None
    } else {
        let path = s.spool.target_lock(target);
        match lock::open_lock_file(&path).and_then(|f| lock::try_exclusive(f, &path)) {
            Ok(Some(l)) => Some(l),
            Ok(None) => return Take::Busy,
            Err(e) => {
                tracing::error!(target = %target, "target lock: {e}");
                return Take::after(&e);
            }
        }
    };
    if let Some(wait) = earlier_claims(shared, intake, target) {
        return wait;
    }
    // Held while a watcher of spool format 1 (which locks by requested name) fences that node now: a
    // request is not claimed.
    let mut format1_locks = LockSet::default();
    loop {
        let Some(first) = intake.index.queue.of_target(target).next().cloned() else { return Take::Nothing };
        if !first.waived {
            match format1_locks.try_hold(&s.spool.format1_target_lock(&first.node)) {
                Ok(true) => {}
                Ok(false) => return Take::Busy,
                Err(e) => {
                    tracing::error!(target = %target, "spool format 1 lock: {e}");
                    return Take::after(&e);
                }
            }
        }
        let superseding = intake.index.queue.superseding(target).map(|e| (e.name.clone(), e.action));
        let claimed = match claim_first(shared, intake, &first.name) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(take) => return take,
        };
        if let Some((by, action)) = superseding {
            let r = decide::superseded(reply::for_claim(shared, &claimed), by.trim_end_matches(".json"), action);
            if let Err(e) = reply::answer_and_retire(shared, claimed, r, Instant::now(), None) {
                tracing::error!(target = %target, "answering a superseded request: {e}");
            }
            continue;
        }
        let mut claims = vec![claimed];
        join_run(shared, intake, (target, &first), &mut format1_locks, &mut claims);
        return Take::Job(Job { claims, target_lock, format1_locks });
    }
}

/// Under the key's lock, a claim of this key still in `claimed/` is an earlier request whose holder
/// just died: recover it now (only a holder of the key's lock requeues it, and observes it at once;
/// it keeps its submission time) and serve it first. One still there after that has a live holder
/// without the lock (re-dispatched from a stuck watcher): wait for it (`Some`). A dead claim a peer
/// requeued under this lock before we took it is caught up from inotify.
fn earlier_claims(shared: &Shared, intake: &mut Intake, target: &str) -> Option<Take> {
    let s = &shared.settings;
    for r in crate::recovery::recover_except(shared, Some(target)) {
        if let ha::spool::recover::Recovered::Requeued(name) = r {
            intake.index.observe(&s.spool, &shared.boot_id, &format!("{}.json", name.id));
        }
    }
    // A request a peer requeued (recovering a dead claim under this lock) before we took the lock is
    // in requests/ already, its event queued: read it before choosing.
    intake.catch_up(shared);
    match ha::spool::recover::claims_where(&s.spool, |r| intake.index.key_of(&r.target_node) == target) {
        Ok(0) => None,
        Ok(_) => Some(Take::Busy),
        Err(e) => {
            tracing::error!(target = %target, "looking for earlier claims: {e}");
            Some(Take::Short)
        }
    }
}

/// Claims the target's first request, `name`. `Ok(None)`: it went (quarantined, answered already,
/// taken by another): look at the next. `Err`: stop trying this target now.
fn claim_first(shared: &Shared, intake: &mut Intake, name: &str) -> Result<Option<Claimed>, Take> {
    let s = &shared.settings;
    intake.index.forget(name);
    match claim::try_claim(&s.spool, name, &s.id) {
        Ok(Claim::Claimed(c)) => Ok(Some(*c)),
        Ok(Claim::Quarantined(q)) => {
            reply::reject(shared, &q);
            Ok(None)
        }
        Ok(Claim::NotReady) => {
            intake.index.observe(&s.spool, &shared.boot_id, name);
            Err(Take::Nothing)
        }
        Ok(Claim::Answered(id)) => {
            tracing::warn!(request_id = %id, file = %name, "already answered: retired to done/ without running it again");
            Ok(None)
        }
        Ok(Claim::Busy | Claim::Skipped) => Ok(None),
        Err(e) => {
            // Still pending: known again, to be claimed at the next try.
            tracing::error!(file = %name, "claiming: {e}");
            intake.index.observe(&s.spool, &shared.boot_id, name);
            Err(Take::after(&e))
        }
    }
}

/// Claims into `claims` the requests that join the execution of `first`: only the run of the same
/// action that follows it in submission order (`Queue::run_of`); a request behind another action
/// must take effect after that action, not before it.
fn join_run(
    shared: &Shared,
    intake: &mut Intake,
    (target, first): (&str, &Entry),
    format1_locks: &mut LockSet,
    claims: &mut Vec<Claimed>,
) {
    let s = &shared.settings;
    let same: Vec<(String, String)> =
        intake.index.queue.run_of(target, first.action).map(|e| (e.name.clone(), e.node.clone())).collect();
    for (name, node) in same {
        // The run stops at one whose requested name a format-1 watcher fences now: it and those
        // after it wait for their own turn, in order.
        if !first.waived && !format1_locks.try_hold(&s.spool.format1_target_lock(&node)).unwrap_or(false) {
            break;
        }
        intake.index.forget(&name);
        match claim::try_claim(&s.spool, &name, &s.id) {
            Ok(Claim::Claimed(c)) => claims.push(*c),
            Ok(Claim::Quarantined(q)) => reply::reject(shared, &q),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(file = %name, "claiming: {e}");
                intake.index.observe(&s.spool, &shared.boot_id, &name);
            }
        }
    }
}
