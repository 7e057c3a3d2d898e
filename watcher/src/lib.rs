//! `gfs2-fence-watcher`: serves a gfs2-fencing spool. Several watchers share one spool; each
//! request is claimed by exactly one live watcher (flock lease + no-replace rename), executed with
//! the configured fence command, and answered once.
//!
//! - [`cli`]: command line and environment → [`settings::Settings`].
//! - [`daemon`]: `run(settings, shutdown)`, the main loop.
//! - [`execute`]: one fence command execution.
//! - [`member`]: the member lock and heartbeat.
//! - [`config`]: targets → fence commands.
//! - [`test_executor`]: the fence command used by tests, the demo and the chaos harness.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod execute;
pub mod member;
pub mod settings;
pub mod test_executor;

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
