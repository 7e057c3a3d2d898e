//! What can go wrong in `gfs2-fence-events`: a file or directory that cannot be read (with its
//! path), a bad option, disagreeing environment variables, nnf-sos's directories, the journal.

use std::path::PathBuf;

/// Why `gfs2-fence-events` stops (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A file or directory.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bad option value.
    #[error("{0}")]
    Usage(String),
    /// The log directory's environment variables disagree.
    #[error(transparent)]
    Setting(#[from] ha::os::setting::SettingError),
    /// nnf-sos's directories, a record or the unfence's lock (`agent::standing`, `agent::unfence`).
    #[error(transparent)]
    WayBack(#[from] agent::failure::Failure),
    /// Drawing a chart (plotters).
    #[error("cannot draw the chart: {0}")]
    Chart(String),
    /// journalctl.
    #[error("cannot read the journal's anchors: {0}")]
    Journal(String),
}
