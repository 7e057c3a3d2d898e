//! What every task of a running watcher shares: the read-only settings, this boot's id, the
//! membership (tasks record their fence commands in its heartbeat), the metrics, the main loop's
//! note that a recovery was deferred, and whether this watcher stands aside for older peers. Created once by `daemon::run`, handed to tasks as an `Arc`;
//! each field's doc says who writes it and under which lock.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use crate::member::Member;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// What every task shares.
#[derive(Debug)]
pub struct Shared {
    /// Read-only settings.
    pub settings: Settings,
    /// This boot's id.
    pub boot_id: String,
    /// The membership; tasks record their fence commands in its heartbeat. Never held across an await.
    pub member: Mutex<Member>,
    /// Counters and gauges, updated by every task, read by `/metrics`.
    pub metrics: Metrics,
    /// Set by the last recovery when it left a dead claim because its key's lock was still held (the
    /// dead holder's fence command not gone yet): the main loop retries shortly. Main loop only.
    pub recovery_deferred: AtomicBool,
    /// Whether a live peer speaks an older spool format, so that this watcher stands aside (see
    /// `aside`, which alone writes it).
    pub standing_aside: AtomicBool,
}
