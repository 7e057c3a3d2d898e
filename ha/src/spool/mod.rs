//! The spool and a request's life cycle in it: [`layout`] (where the spool is, its directories, the
//! trust checks), the pure decisions ([`decide`]: deadlines, execute or not, recovery; [`queue`]:
//! claim order; [`backoff`]: the retry schedule), and the steps on disk ([`attempts`]: one line per
//! execution; [`claim`]: lease and no-replace rename; [`answer`]: the one response; [`recover`]:
//! dead watchers' claims).
//!
//! Locks: the claim lease and the target locks are taken by [`claim`] and [`recover`] through
//! `fsio::lock`. May use `error`, `fsio`, `os` and `protocol`. The layout's items are re-exported
//! here for the programs.

pub mod layout;
pub mod decide;
pub mod queue;
pub mod backoff;
pub mod attempts;
pub mod claim;
pub mod answer;
pub mod recover;

pub use layout::{
    check_local, classify_fs, ensure_private_dir, fs_name, resolve_base, Dir, Spool, AGENT_DIRS, DEFAULT_BASE,
    SPOOL_FORMAT, WATCHER_DIRS,
};
