//! The watchers' integration tests, one module per behaviour: the real programs as separate
//! processes on real spools (`harness::process`); each module's doc says what it proves.

mod fence;
mod ha;
mod crash;
mod crash_states;
mod durable_spool;
mod late_fence;
mod bad_input;
mod spool_trust;
mod v2_clients;
mod full_disk;
mod watcher_faults;
mod watchers_over_time;
mod retention;
mod discovery;
mod metrics;
mod one_name;
mod docs;
mod rolling_upgrade;
