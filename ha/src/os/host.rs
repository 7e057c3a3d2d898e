//! This host's name, as fence records (`recorder_node`), heartbeats, the leader record and the
//! `rabbit` label of `gfs2_fencing_info` carry it: the kernel's (`gethostname`), `unknown` when it
//! cannot be read. No locks.

/// This host's name.
pub fn name() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "unknown".into())
}
