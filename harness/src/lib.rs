//! The test harness of gfs2-fencing, never installed: `gfs2-fence-test-executor` (in `test_executor`),
//! the fence command of the tests, the demo and the chaos harness; the `kill-watcher` chaos harness
//! (in `chaos`), which proves the spool loses nothing and answers each request once, whatever is
//! killed when; the `fence-bench` benchmark (in `bench`, one fence's steps read from a trace in
//! `breakdown`); and `nnf-sos-standin` (in `nnf_standin`), nnf-sos's fence responder as its
//! documented behaviour describes it, for the tests and the Pacemaker suite; `process`, the process
//! test harness of every crate's integration tests. Its own test
//! (`tests/layering.rs`) checks the layering of every crate.

pub mod test_executor;
pub mod process;
pub mod chaos;
pub mod nnf_standin;
pub mod breakdown;
pub mod bench;
