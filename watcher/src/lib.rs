//! `gfs2-fence-watcher`: serves a gfs2-fencing spool. Several watchers share one spool; each
//! request is claimed by exactly one live watcher (flock lease + no-replace rename), executed with
//! the configured fence command, and answered once.
//!
//! Modules are declared lowest first; each uses only those declared before it
//! (`harness/tests/layering.rs` checks it):
//! - [`config`]: targets → fence commands; [`error`]: why a watcher stops; [`settings`]: everything
//!   resolved before it starts; [`metrics`]: the counters; [`member`]: the member lock and heartbeat.
//! - [`shared`]: what every task shares (settings, membership, metrics).
//! - [`notify`]: systemd notifications; [`election`]: leader candidacy; [`peers`]: recovery the
//!   moment a peer dies; [`index`]: the ordered view of `requests/`; [`execute`]: one command
//!   execution.
//! - [`reply`]: answers; [`serve`]: one job, with retries; [`recovery`]: dead claims requeued under
//!   their target's lock; [`dispatch`]: what to run next (target locks, superseding, coalescing).
//! - The leader's duties: [`fencepath`] (fence path health checks), [`discovery`] (GFS2 discovery
//!   rounds, `discovery.json`), [`alerts`] (Pacemaker's fencing alerts into the audit trail),
//!   [`sweep`] (recovery of dead claims, fencing of frozen peers, retention; every watcher sweeps).
//! - [`http`]: `/metrics` and `/healthz`; [`daemon`]: `run(settings, shutdown)`, the main loop that
//!   wires the parts; [`status`]: the status report; [`cli`]: command line and environment →
//!   settings, on top.

pub mod config;
pub mod error;
pub mod settings;
pub mod metrics;
pub mod member;
pub mod shared;
pub mod notify;
pub mod election;
pub mod peers;
pub mod aside;
pub mod vanished;
pub mod index;
pub mod intake;
pub mod execute;
pub mod verdict;
pub mod reply;
pub mod serve;
pub mod recovery;
pub mod dispatch;
pub mod fencepath;
pub mod discovery;
pub mod alerts;
pub mod sweep;
pub mod http;
pub mod office;
pub mod daemon;
pub mod status;
pub mod cli;
