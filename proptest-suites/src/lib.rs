//! Property tests (in `tests/`) and the `kill-watcher` chaos harness (in `chaos`) that prove the
//! gfs2-fencing spool loses nothing and answers each request once, whatever is killed when; and the
//! `fence-bench` benchmark (in `bench`, one fence's steps read from a trace in `breakdown`); and `nnf-sos-standin` (in `nnf_standin`), nnf-sos's fence
//! responder as its documented behaviour describes it, for the tests and the Pacemaker suite.

pub mod chaos;
pub mod nnf_standin;
pub mod breakdown;
pub mod bench;
