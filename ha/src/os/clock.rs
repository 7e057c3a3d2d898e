//! Clocks: CLOCK_BOOTTIME for every decision, wall clock only for people.
//!
//! Deadlines are compared on CLOCK_BOOTTIME, which counts through suspend and is never stepped by NTP,
//! together with the kernel's boot id: a deadline taken in another boot is meaningless and treated as
//! past. Wall-clock strings (RFC 3339 UTC, and the local `YYYY-MM-DD HH:MM:SS` of the original logs) are
//! produced here and never parsed back for a decision.

use std::time::Duration;

use crate::error::{HaError, Result};

/// A point on CLOCK_BOOTTIME, in nanoseconds since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootTime(pub u64);

impl BootTime {
    /// Reads CLOCK_BOOTTIME.
    pub fn now() -> BootTime {
        let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .expect("CLOCK_BOOTTIME is available on every Linux since 2.6.39");
        BootTime(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
    }

    /// This instant plus `d`, saturating.
    pub fn after(self, d: Duration) -> BootTime {
        BootTime(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// Time from `self` until `later` (zero if `later` is not later).
    pub fn until(self, later: BootTime) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

/// Where a wall-clock time (a file's mtime) falls on this boot's CLOCK_BOOTTIME: `None` when it is
/// before this boot, or when it is well in the future (unknown, so counted as before this boot). For files written by programs that record no boot-time deadline; the wall clock
/// is read once, here, against the boot clock.
pub fn boottime_of(wall: std::time::SystemTime) -> Option<BootTime> {
    let now = BootTime::now();
    match std::time::SystemTime::now().duration_since(wall) {
        Ok(age) => now.0.checked_sub(age.as_nanos().min(u64::MAX as u128) as u64).map(BootTime),
        // Barely ahead: a file written an instant ago, seen across a small clock adjustment.
        Err(e) if e.duration() <= FUTURE_TOLERANCE => Some(now),
        // Well ahead: the wall clock went back since it was written (after a reboot, before NTP set
        // it, a clock behind the previous boot's), or the time is forged. When it was written is
        // unknown, so it counts as before this boot: its deadline is past, it is never run.
        Err(_) => None,
    }
}

/// How far ahead of the wall clock a file's time may be and still be taken as "now".
pub const FUTURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The kernel's boot id (a UUID that changes at every boot).
pub fn boot_id() -> Result<String> {
    let path = std::path::Path::new("/proc/sys/kernel/random/boot_id");
    let text = std::fs::read_to_string(path).map_err(HaError::at("read", path))?;
    Ok(text.trim().to_string())
}

/// Now, as RFC 3339 UTC with second precision (`2025-10-20T14:30:00Z`).
pub fn rfc3339_now() -> String {
    rfc3339_in(Duration::ZERO)
}

/// Now plus `d`, as RFC 3339 UTC with second precision.
pub fn rfc3339_in(d: Duration) -> String {
    let t = chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now in local time as the original logs print it: `YYYY-MM-DD HH:MM:SS`.
pub fn local_log_stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boottime_is_monotonic_and_arithmetic_saturates() {
        let a = BootTime::now();
        let b = BootTime::now();
        assert!(b >= a);
        assert_eq!(a.after(Duration::from_secs(1)).0, a.0 + 1_000_000_000);
        assert_eq!(b.until(a), Duration::ZERO.max(b.until(a)));
        assert_eq!(BootTime(u64::MAX).after(Duration::from_secs(5)), BootTime(u64::MAX));
    }

    #[test]
    fn stamps_have_the_documented_shape() {
        let r = rfc3339_now();
        assert_eq!(r.len(), 20, "{r}");
        assert!(r.ends_with('Z') && r.as_bytes()[10] == b'T');
        let l = local_log_stamp();
        assert_eq!(l.len(), 19, "{l}");
        assert_eq!(l.as_bytes()[10], b' ');
        assert_eq!(boot_id().unwrap().len(), 36);
        let now = std::time::SystemTime::now();
        let b = boottime_of(now - Duration::from_secs(1)).unwrap();
        assert!(BootTime::now().until(b).is_zero() && b.until(BootTime::now()) >= Duration::from_secs(1));
        assert_eq!(boottime_of(std::time::UNIX_EPOCH), None, "before this boot");
        assert!(boottime_of(now + Duration::from_millis(500)).unwrap() <= BootTime::now(), "barely ahead is now");
        assert_eq!(boottime_of(now + Duration::from_secs(3600)), None, "well ahead: the clock went back");
    }
}
