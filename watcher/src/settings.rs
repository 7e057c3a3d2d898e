//! Everything a running watcher needs to know, resolved from the command line, the environment and
//! the configuration file before it starts.

use std::time::Duration;

use ha::spool::Spool;

use crate::config::FenceConfig;

/// A watcher's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The spool it serves.
    pub spool: Spool,
    /// Its id (member lock name, claim names, responses' `watcher_id`).
    pub id: String,
    /// Which command fences which target.
    pub fence: FenceConfig,
    /// Longest single execution (never past the request's deadline).
    pub exec_timeout: Duration,
    /// Deadline given to requests without one (the original format), from their claim.
    pub default_deadline: Duration,
    /// Least time worth starting a fence command with; less left means `expired`.
    pub min_budget: Duration,
    /// Period of the safety rescan of `requests/` and of dead-claim recovery.
    pub rescan_interval: Duration,
    /// Period of the heartbeat.
    pub heartbeat_interval: Duration,
    /// Executions at once.
    pub max_parallel: usize,
    /// How long in-flight executions may finish after SIGTERM before they are killed and requeued.
    pub shutdown_grace: Duration,
    /// Whether to watch `requests/` with inotify (otherwise the rescan alone finds requests).
    pub inotify: bool,
}
