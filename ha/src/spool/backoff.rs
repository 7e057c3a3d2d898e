//! Retry schedule for failed fence executions: `backon`'s exponential backoff with jitter, bounded
//! by an attempt cap and by the request's deadline. No I/O and no clock reading: callers pass `now`.
//!
//! The jitter's seed comes from the caller (the watcher draws it from `rand` at start), so two
//! watchers never retry in lockstep, and a test can replay a schedule exactly.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::os::clock::BootTime;

/// How failed executions are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Executions in all, the first included (Pacemaker retries each device and escalates too).
    pub max_attempts: u32,
    /// First delay (before jitter).
    pub min_delay: Duration,
    /// Largest delay (before jitter).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 2, min_delay: Duration::from_millis(500), max_delay: Duration::from_secs(5) }
    }
}

/// The retry schedule of one request.
#[derive(Debug)]
pub struct Schedule {
    delays: ExponentialBackoff,
    policy: RetryPolicy,
    attempts: u32,
}

impl Schedule {
    /// A schedule for a request that has had `attempts_so_far` executions (across watchers).
    pub fn new(policy: RetryPolicy, seed: u64, attempts_so_far: u32) -> Schedule {
        let delays = ExponentialBuilder::new()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_factor(2.0)
            .without_max_times()
            .with_jitter()
            .with_jitter_seed(seed)
            .build();
        Schedule { delays, policy, attempts: attempts_so_far }
    }

    /// Records that an execution started; returns its 1-based number.
    pub fn started(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// The execution counted by the last [`Schedule::started`] never ran (its command could not be
    /// started for a passing reason): it does not count.
    pub fn not_started(&mut self) {
        self.attempts = self.attempts.saturating_sub(1);
    }

    /// Executions started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a failed execution ending at `now`: when the next one may start, or `None` when the cap is
    /// reached or the next start would leave less than `min_budget` before `deadline`.
    pub fn next_start(&mut self, now: BootTime, deadline: BootTime, min_budget: Duration) -> Option<BootTime> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let at = now.after(self.delays.next()?);
        (at.until(deadline) >= min_budget && at < deadline).then_some(at)
    }
}

/// How long to wait before starting again a command that could not be started for a passing reason
/// (descriptors, processes or memory short), after `tries` such failures in a row: 50 ms doubling
/// to at most 1 s. These retries are not attempts (the command never ran); the deadline bounds them.
pub fn start_again_after(tries: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << tries.min(5))).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_that_could_not_start_is_tried_again_soon_then_every_second_and_never_counted() {
        let delays: Vec<u64> = (0..8).map(|t| super::start_again_after(t).as_millis() as u64).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(super::start_again_after(u32::MAX).as_millis(), 1000);
        let mut s = super::Schedule::new(super::RetryPolicy::default(), 1, 0);
        assert_eq!(s.started(), 1);
        s.not_started();
        assert_eq!((s.attempts(), s.started()), (0, 1), "the next real start is attempt 1 again");
    }

    use super::*;

    #[test]
    fn stops_at_the_cap_and_before_the_deadline() {
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let now = BootTime(1_000_000_000);
        let far = now.after(Duration::from_secs(600));
        let mut s = Schedule::new(p, 7, 0);
        assert_eq!(s.started(), 1);
        let second = s.next_start(now, far, Duration::ZERO).unwrap();
        assert!(now.until(second) >= Duration::from_millis(500) && now.until(second) < Duration::from_secs(1));
        s.started();
        assert!(s.next_start(second, far, Duration::ZERO).is_some());
        s.started();
        assert_eq!(s.next_start(second, far, Duration::ZERO), None, "cap of 3 reached");
        let mut s = Schedule::new(p, 7, 1);
        assert_eq!(s.next_start(now, now.after(Duration::from_millis(400)), Duration::ZERO), None);
        let mut s = Schedule::new(p, 7, 1);
        assert_eq!(s.next_start(now, now.after(Duration::from_secs(2)), Duration::from_secs(2)), None);
    }

    #[test]
    fn the_same_seed_replays_the_same_schedule() {
        let p = RetryPolicy { max_attempts: 10, ..RetryPolicy::default() };
        let far = BootTime(u64::MAX / 2);
        let run = |seed| {
            let mut s = Schedule::new(p, seed, 0);
            (0..5).map(|_| s.next_start(BootTime(0), far, Duration::ZERO).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
