//! Property tests (in `tests/`) and the `kill-watcher` chaos harness (in `chaos`) that prove the
//! gfs2-fencing spool loses nothing and answers each request once, whatever is killed when; and the
//! `fence-bench` benchmark (in `bench`).

pub mod bench;
pub mod chaos;
