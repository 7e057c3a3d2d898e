//! Retry schedules: every delay stays within the policy's bounds (jitter at most doubles it), the
//! attempt cap holds, and no attempt is ever scheduled after the deadline or with less than the
//! minimum budget left. Protects "a late reboot of a node that already recovered does harm".

use std::time::Duration;

use proptest::prelude::*;

use ha::os::clock::BootTime;
use ha::spool::backoff::{RetryPolicy, Schedule};

proptest! {
    #[test]
    fn schedules_stay_in_bounds_and_before_the_deadline(
        max_attempts in 1u32..12, min_ms in 1u64..2_000, extra_ms in 0u64..10_000, seed in any::<u64>(),
        so_far in 0u32..3, budget_ms in 0u64..60_000, min_budget_ms in 0u64..3_000, run_ms in 0u64..5_000,
    ) {
        let policy = RetryPolicy {
            max_attempts,
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(min_ms + extra_ms),
        };
        let start = BootTime(1_000_000_000_000);
        let deadline = start.after(Duration::from_millis(budget_ms));
        let min_budget = Duration::from_millis(min_budget_ms);
        let mut s = Schedule::new(policy, seed, so_far);
        let mut now = start;
        loop {
            s.started();
            prop_assert!(s.attempts() <= max_attempts.max(so_far + 1));
            now = now.after(Duration::from_millis(run_ms));
            let Some(at) = s.next_start(now, deadline, min_budget) else { break };
            let delay = now.until(at);
            prop_assert!(delay >= policy.min_delay, "{delay:?} below the minimum");
            prop_assert!(delay <= policy.max_delay * 2, "{delay:?} above twice the maximum");
            prop_assert!(at < deadline && at.until(deadline) >= min_budget, "scheduled past the deadline");
            prop_assert!(s.attempts() < max_attempts);
            now = at;
        }
    }
}
