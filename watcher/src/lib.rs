//! `gfs2-fence-watcher`: serves a gfs2-fencing spool. Several watchers share one spool; each
//! request is claimed by exactly one live watcher (flock lease + no-replace rename), executed with
//! the configured fence command, and answered once.
//!
//! - [`cli`]: command line and environment → [`settings::Settings`]; [`status`]: the status report.
//! - [`daemon`]: `run(settings, shutdown)`, the main loop; [`index`]: the ordered view of `requests/`.
//! - [`dispatch`]: what to run next (target locks, superseding, coalescing); [`serve`]: one job,
//!   with retries; [`reply`]: answers.
//! - [`execute`]: one command execution; [`fencepath`]: the leader's fence path health checks;
//!   [`discovery`]: the leader's GFS2 discovery rounds (`discovery.json`).
//! - [`member`]: the member lock and heartbeat; [`election`]: leader candidacy; [`sweep`]: recovery
//!   of dead claims, fencing of frozen peers, retention; [`peers`]: recovery the moment a peer dies;
//!   [`notify`]: systemd notifications; [`metrics`]: Prometheus metrics and `/healthz`.
//! - [`config`]: targets → fence commands; [`alerts`]: Pacemaker's fencing alerts into the audit trail.
//! - [`test_executor`]: the fence command used by tests, the demo and the chaos harness.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod dispatch;
pub mod election;
pub mod execute;
pub mod fencepath;
pub mod index;
pub mod member;
pub mod metrics;
pub mod notify;
pub mod peers;
pub mod reply;
pub mod serve;
pub mod settings;
pub mod status;
pub mod sweep;
pub mod test_executor;

/// This host's name (for heartbeats and the leader record).
pub fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Why a watcher cannot start or stops with an error.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The spool, a lock or a file.
    #[error(transparent)]
    Spool(#[from] ha::HaError),
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Another live watcher has this id.
    #[error("another watcher with id {id:?} is running (it holds {}); give each watcher its own --id", lock.display())]
    AlreadyRunning {
        /// The id.
        id: String,
        /// Its member lock.
        lock: std::path::PathBuf,
    },
    /// A bad command-line value.
    #[error("{0}")]
    Usage(String),
    /// The async runtime or signal handling could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
