//! Pure decisions about a request: when it must be answered by, whether to execute it at all, what
//! a request answered from another's execution or superseded by a later one is told, and what
//! becomes of a claim whose holder died.
//!
//! No I/O here: callers read the clock, the boot id and the agent's lock, and pass what they saw.
//! A late fence does harm (a node that already recovered would be rebooted), so a request whose
//! agent is gone, or whose deadline leaves no time to run the fence command, is answered without
//! being executed.

use std::time::Duration;

use crate::os::clock::BootTime;
use crate::protocol::request::{Action, Request};
use crate::protocol::response::{Outcome, Response};

/// What is known about the agent that published a request, from its `waiting/<id>.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    /// The lock file exists and is held: the agent is waiting for the answer.
    Waiting,
    /// The lock file exists and nobody holds it: the agent exited or was killed.
    Gone,
    /// No lock file: a requester that does not take it (the original Python agent, a tool).
    Unknown,
}

/// What to do with a claimed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Run the fence command, for at most `budget`.
    Execute {
        /// Time left until the deadline.
        budget: Duration,
    },
    /// Answer `expired` without executing.
    Expired,
    /// Answer `abandoned` without executing.
    Abandoned,
}

/// The instant a request must be answered by, on this boot's CLOCK_BOOTTIME.
///
/// A request from this design carries its own deadline; one from another boot is already past. One
/// without (the seed's format, upstream's v2 clients) gets `default_budget` from when its file was
/// written (`written`, on this boot's clock: `None` when that was before this boot, so it is past):
/// after a backlog or a restart it is never run after its client gave up.
pub fn deadline_of(req: &Request, this_boot: &str, written: Option<BootTime>, default_budget: Duration) -> BootTime {
    match (req.deadline_boottime_ns, req.boot_id.as_deref()) {
        (Some(ns), Some(boot)) if boot == this_boot => BootTime(ns),
        (Some(_), Some(_)) => BootTime(0),
        _ => written.map_or(BootTime(0), |w| w.after(default_budget)),
    }
}

/// Whether a request's caller still wants it run: its agent waits, or it is a client that takes no
/// waiting lock (judged by its deadline alone). Asked before every attempt, the first and each retry
/// alike: a fence run for an agent that is gone is a late fence (Pacemaker has failed the device and
/// may have fenced the node another way since).
pub fn caller_waits(agent: AgentState) -> bool {
    agent != AgentState::Gone
}

/// Decides whether to execute. `min_budget` is the least time worth starting a fence command with.
pub fn dispose(deadline: BootTime, now: BootTime, agent: AgentState, min_budget: Duration) -> Disposition {
    if !caller_waits(agent) {
        return Disposition::Abandoned;
    }
    let budget = now.until(deadline);
    if budget < min_budget || budget.is_zero() {
        return Disposition::Expired;
    }
    Disposition::Execute { budget }
}

/// The time the agent leaves the watchers to write the answer: the request's deadline is the agent's
/// give-up time minus this margin (a tenth of the fence timeout, between 0.5 s and 3 s).
pub fn answer_margin(fence_timeout: Duration) -> Duration {
    (fence_timeout / 10).clamp(Duration::from_millis(500), Duration::from_secs(3))
}

/// The least time a fence command must have: a `fence_timeout` that leaves less after the answer
/// margin is refused by the agent (the request would expire before anything ran).
pub const MIN_EXECUTION_BUDGET: Duration = Duration::from_secs(1);

/// The smallest `fence_timeout` whose [`execution_budget`] is at least [`MIN_EXECUTION_BUDGET`].
pub const MIN_FENCE_TIMEOUT: Duration = Duration::from_millis(1500);

/// What is left of `fence_timeout` for the watchers once the answer margin is taken off: the
/// request's deadline, counted from the end of the delay. Never underflows.
pub fn execution_budget(fence_timeout: Duration) -> Duration {
    fence_timeout.saturating_sub(answer_margin(fence_timeout))
}

/// The answer to a request that joined the execution of request `executed` (the target's next
/// requests of the same action, queued right behind it: `Queue::run_of`): `own`, the response made
/// for its own claim, given that execution's result (success, power state, attempts), as
/// `coalesced`, naming the request executed.
pub fn coalesced(mut own: Response, executed: &str, result: &Response) -> Response {
    own.success = result.success;
    own.power_state = result.power_state;
    own.attempts = result.attempts;
    own.outcome = Some(Outcome::Coalesced);
    own.message = format!("answered from the execution of request {executed}: {}", result.message);
    own
}

/// The answer to a target's first request when a later `off`/`reboot` (`by`, asking `action`)
/// supersedes it (`Queue::superseding`): `own`, not executed, not a success.
pub fn superseded(mut own: Response, by: &str, action: Action) -> Response {
    own.success = false;
    own.outcome = Some(Outcome::Superseded);
    own.message = format!("superseded by the later {action} request {by} for the same target; not executed");
    own
}

/// What to do with a claim found in `claimed/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryAction {
    /// Its owner lives: leave it.
    Leave,
    /// Its owner died after answering: retire it.
    Finish,
    /// Its owner died before answering: requeue it.
    Requeue,
}

/// Decides a claim's recovery from whether its lease is free and whether its response exists.
pub fn recovery(lease_free: bool, response_exists: bool) -> RecoveryAction {
    match (lease_free, response_exists) {
        (false, _) => RecoveryAction::Leave,
        (true, true) => RecoveryAction::Finish,
        (true, false) => RecoveryAction::Requeue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ns: Option<u64>, boot: Option<&str>) -> Request {
        Request {
            request_id: "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c".into(),
            timestamp: String::new(),
            action: crate::protocol::request::Action::Off,
            target_node: "n".into(),
            gfs2_filesystems: vec![],
            recorder_node: String::new(),
            version: Some(1),
            nodename: None,
            queue_priority: None,
            deadline: None,
            deadline_boottime_ns: ns,
            boot_id: boot.map(str::to_string),
            gfs2_discovery: None,
        }
    }

    #[test]
    fn deadlines_come_from_the_request_the_boot_or_the_default() {
        let written = Some(BootTime(1_000));
        let d = Duration::from_nanos(50);
        assert_eq!(deadline_of(&req(Some(77), Some("b")), "b", written, d), BootTime(77));
        assert_eq!(deadline_of(&req(Some(77), Some("old")), "b", written, d), BootTime(0));
        assert_eq!(deadline_of(&req(None, None), "b", written, d), BootTime(1_050));
        assert_eq!(deadline_of(&req(None, None), "b", None, d), BootTime(0), "written before this boot");
    }

    #[test]
    fn gone_agents_and_past_deadlines_are_never_executed() {
        let s = Duration::from_secs(1);
        let now = BootTime(10_000_000_000);
        assert_eq!(dispose(now.after(s * 5), now, AgentState::Gone, s), Disposition::Abandoned);
        assert_eq!(dispose(BootTime(1), now, AgentState::Waiting, s), Disposition::Expired);
        assert_eq!(dispose(now.after(s / 2), now, AgentState::Unknown, s), Disposition::Expired);
        assert_eq!(dispose(now.after(s * 5), now, AgentState::Waiting, s), Disposition::Execute { budget: s * 5 });
    }

    #[test]
    fn only_a_gone_agent_stops_waiting() {
        assert!(caller_waits(AgentState::Waiting));
        assert!(caller_waits(AgentState::Unknown), "clients without a waiting lock keep the deadline rule");
        assert!(!caller_waits(AgentState::Gone));
    }

    #[test]
    fn margin_is_bounded() {
        assert_eq!(answer_margin(Duration::from_secs(1)), Duration::from_millis(500));
        assert_eq!(answer_margin(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(answer_margin(Duration::from_secs(600)), Duration::from_secs(3));
    }

    #[test]
    fn the_smallest_fence_timeout_leaves_the_minimum_budget() {
        assert!(execution_budget(MIN_FENCE_TIMEOUT) >= MIN_EXECUTION_BUDGET);
        assert!(execution_budget(MIN_FENCE_TIMEOUT - Duration::from_millis(1)) < MIN_EXECUTION_BUDGET);
        assert_eq!(execution_budget(Duration::from_millis(300)), Duration::ZERO, "never underflows");
        // The budget grows with the timeout, so no larger value falls below the minimum.
        let mut last = Duration::ZERO;
        for ms in (0..20_000).step_by(7) {
            let b = execution_budget(Duration::from_millis(ms));
            assert!(b >= last, "{ms} ms");
            last = b;
        }
    }

    fn answer(id: &str, action: Action) -> Response {
        Response {
            request_id: id.into(),
            success: false,
            action_performed: action.as_str().into(),
            target_node: "n".into(),
            message: String::new(),
            timestamp: "t".into(),
            version: Some(1),
            power_state: None,
            watcher_id: Some("w".into()),
            attempts: None,
            duration_ms: None,
            outcome: None,
            epoch: Some(4),
        }
    }

    /// A coalesced request is answered with the execution's result under its own id, never with
    /// the executed request's identity.
    #[test]
    fn coalesced_requests_take_the_result_and_keep_their_identity() {
        use crate::protocol::response::PowerState;
        #[rustfmt::skip]
        let table = [
            // success  power state            attempts  outcome of the execution
            (true,      Some(PowerState::Off), Some(1),  Some(Outcome::Done)),
            (false,     None,                  Some(3),  Some(Outcome::Failed)),
            (true,      Some(PowerState::On),  Some(2),  Some(Outcome::Done)),
            (false,     None,                  None,     Some(Outcome::Expired)),
        ];
        for (success, power_state, attempts, outcome) in table {
            let mut result = answer("exec-id", Action::Off);
            (result.success, result.power_state, result.attempts, result.outcome) =
                (success, power_state, attempts, outcome);
            result.message = "fence command exited 0".into();
            let own = answer("own-id", Action::Off);
            let a = coalesced(own.clone(), "exec-id", &result);
            assert_eq!((a.success, a.power_state, a.attempts), (success, power_state, attempts));
            assert_eq!(a.outcome, Some(Outcome::Coalesced));
            assert_eq!(a.message, "answered from the execution of request exec-id: fence command exited 0");
            assert_eq!(
                (&a.request_id, &a.watcher_id, a.epoch, &a.timestamp),
                (&own.request_id, &own.watcher_id, own.epoch, &own.timestamp)
            );
        }
    }

    #[test]
    fn a_superseded_request_is_answered_not_executed_naming_what_superseded_it() {
        for (own, by) in [(Action::On, Action::Off), (Action::Status, Action::Reboot), (Action::On, Action::Reboot)] {
            let a = superseded(answer("own-id", own), "later-id", by);
            assert!(!a.success);
            assert_eq!(a.outcome, Some(Outcome::Superseded));
            assert_eq!((a.request_id.as_str(), a.action_performed.as_str()), ("own-id", own.as_str()));
            assert_eq!(
                a.message,
                format!("superseded by the later {by} request later-id for the same target; not executed")
            );
        }
    }
}
