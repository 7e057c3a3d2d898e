//! What the watchers publish about themselves and how one of them leads: [`members`] (member locks,
//! heartbeats, liveness), [`targets`] (the fenceable targets for `list`), [`health`] (the fence
//! path checks' results) and [`leader`] (the leader lock and record).
//!
//! Locks: member locks and the leader lock, through `fsio::lock`. May use `error`, `fsio`, `os`,
//! `protocol` and `spool` (a bad leader file is quarantined like any bad spool file).

pub mod members;
pub mod targets;
pub mod health;
pub mod leader;
