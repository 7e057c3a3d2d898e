//! Errors of the shared library: the lowest layer, used by every other and using none.
//!
//! Every I/O variant carries the operation and the path it was applied to, so a message reaching an
//! operator says what happened, to what, and (in the variants that can be fixed by hand) what to do.

use std::path::{Path, PathBuf};

/// An error from the spool, its files or its locks.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// A system call on a path failed.
    #[error("cannot {op} {}: {source}{}", path.display(), hint(source))]
    Io {
        /// What was being done ("open", "rename", "fsync", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// The spool or log directory is not safe to trust (permissions, owner, symlink, type).
    #[error("refusing {}: {why}; {fix}", path.display())]
    Unsafe {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
        /// What the operator should do.
        fix: String,
    },
    /// The spool is on a file system where flock(2) is emulated, cluster-wide or unsupported.
    #[error(
        "refusing spool {}: it is on {fs_name} (statfs f_type 0x{fs_type:x}), where flock is not a \
         reliable node-local lock; put the spool on a local file system (tmpfs such as /run, ext4, xfs, btrfs)",
        path.display()
    )]
    NotLocal {
        /// The spool directory.
        path: PathBuf,
        /// The file system's magic number.
        fs_type: i64,
        /// A human name for it, when known.
        fs_name: &'static str,
    },
    /// flock(2) itself failed in a way that means locking does not work here: fail closed.
    #[error("flock is unsupported on {}: {source}; the spool must be on a local file system", path.display())]
    LockUnsupported {
        /// The lock file.
        path: PathBuf,
        /// The errno flock returned.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value (option, environment variable) is wrong.
    #[error("{0}")]
    Config(String),
    /// A setting's environment variables disagree or cannot be read.
    #[error(transparent)]
    Setting(#[from] SettingError),
}

impl HaError {
    /// Wraps an `io::Error` with the operation and path it concerns.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        HaError::Io { op, path: path.to_path_buf(), source }
    }

    /// A closure for `map_err` that wraps an `io::Error` with `op` and `path`.
    pub fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HaError + 'a {
        move |source| HaError::io(op, path, source)
    }

    /// Wraps an errno from nix.
    pub fn errno(op: &'static str, path: &Path, errno: nix::errno::Errno) -> Self {
        HaError::io(op, path, std::io::Error::from(errno))
    }

    /// Whether this is a passing shortage (see [`transient`]): the same call may succeed a moment
    /// later, so the work is tried again soon rather than given up or judged.
    pub fn is_transient(&self) -> bool {
        matches!(self, HaError::Io { source, .. } if transient(source))
    }
}

/// Whether an I/O error is a passing shortage of descriptors, processes or memory (EMFILE, ENFILE,
/// EAGAIN, ENOMEM) rather than something wrong with the file or the call.
pub fn transient(e: &std::io::Error) -> bool {
    use nix::libc::{EAGAIN, EMFILE, ENFILE, ENOMEM};
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE | EAGAIN | ENOMEM))
}

/// What an operator can do about the common causes of an I/O error.
fn hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(nix::libc::ENOSPC) | Some(nix::libc::EDQUOT) => "; free space on that file system",
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) | Some(nix::libc::EROFS) => {
            "; check its owner, mode and mount options"
        }
        Some(nix::libc::ELOOP) => "; it is a symbolic link, which the spool never follows",
        Some(nix::libc::EMFILE) | Some(nix::libc::ENFILE) => {
            "; the process or the system is out of file descriptors (LimitNOFILE, fs.file-max); tried again shortly"
        }
        _ => "",
    }
}

/// The library's result type.
pub type Result<T, E = HaError> = std::result::Result<T, E>;

/// What went wrong with a setting's variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// Two names of one setting are set to different values.
    #[error(
        "{first}={first_value:?} and {second}={second_value:?} name the same setting but disagree; \
         unset {second} (the older name) or give both the same value"
    )]
    Conflict {
        /// The name consulted first (the canonical one when it is set).
        first: &'static str,
        /// Its value.
        first_value: String,
        /// The disagreeing name.
        second: &'static str,
        /// Its value.
        second_value: String,
    },
    /// A variable's value cannot be read.
    #[error("{name}={value:?}: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong and what is expected.
        why: String,
    },
}
