//! Everything a running watcher needs to know, resolved from the command line, the environment and
//! the configuration file before it starts.

use std::time::Duration;

use ha::discovery::run::Tools;
use ha::spool::backoff::RetryPolicy;
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
    /// Period of the safety rescan of `requests/`, dead-claim recovery and peer checks.
    pub rescan_interval: Duration,
    /// Period of the heartbeat.
    pub heartbeat_interval: Duration,
    /// A peer whose heartbeat is older than this while it holds its lock is frozen and is killed.
    pub ttl: Duration,
    /// Jobs at once.
    pub max_parallel: usize,
    /// How failed executions are retried.
    pub retry: RetryPolicy,
    /// Seed of this watcher's retry jitter (random per process).
    pub jitter_seed: u64,
    /// How long in-flight executions may finish after SIGTERM before they are killed and requeued.
    pub shutdown_grace: Duration,
    /// Whether to watch `requests/` with inotify (otherwise the rescan alone finds requests).
    pub inotify: bool,
    /// Period of the leader's fence path health checks (`None`: off).
    pub health_interval: Option<Duration>,
    /// Age past which the leader removes files from `done/`, `responses/`, `attempts/` (`None`: keep).
    pub retention: Option<Duration>,
    /// Age after which success answers to off/reboot (fenced records) are removed too; `None`: kept.
    pub fenced_record_retention: Option<Duration>,
    /// Age past which the leader removes leftovers in `tmp/`.
    pub tmp_max_age: Duration,
    /// Where the leader appends fencing alerts (the agent's `log_dir`).
    pub log_dir: std::path::PathBuf,
    /// The drop directory of `gfs2-fence-alert` (`None`: not ingested).
    pub alerts_dir: Option<std::path::PathBuf>,
    /// Loopback address of `/metrics` and `/healthz` (`None`: not served).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The leader's GFS2 discovery rounds (`None`: off).
    pub discovery: Option<DiscoverySettings>,
    /// The Pacemaker cluster's name, found once at start (`ha::discovery::cluster_name`), for the
    /// records of fencing alerts and `gfs2_fencing_info`.
    pub cluster: Option<String>,
}

/// How the leader discovers.
#[derive(Debug, Clone)]
pub struct DiscoverySettings {
    /// Period of the rounds.
    pub interval: Duration,
    /// Budget of one round (every source in parallel).
    pub timeout: Duration,
    /// How long a node that a source stops listing keeps that source's last entry.
    pub memory: Duration,
    /// The sources and kubectl.
    pub tools: Tools,
}
