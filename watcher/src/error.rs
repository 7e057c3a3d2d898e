//! Why a watcher cannot start or stops with an error: the one error type of the watcher's modules,
//! below all of them but the configuration it wraps.

/// Why a watcher cannot start or stops with an error.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The spool, a lock or a file.
    #[error(transparent)]
    Spool(#[from] ha::HaError),
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
    /// The spool, or a directory running fences depend on, was removed or replaced.
    #[error("{0}: stopped claiming, let the fences in flight end and exited, so that systemd starts the watcher again on the spool as it is now")]
    SpoolLost(String),
    /// The async runtime or signal handling could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
