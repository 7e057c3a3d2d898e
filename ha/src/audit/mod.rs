//! The audit trail: what the agent and the leader watcher record of every fence, and the proof that
//! no record was changed or removed.
//!
//! Holds, lowest first: [`pyjson`] (JSON in Python's spacing), [`chain`] (the SHA-256 chain and its
//! verification, no I/O), [`notes`] (what the log's lock file keeps: the chain's end, the file it
//! went to, the appender's notes for `verify`), [`log`] (appending a chained record under the log's lock), [`journal`] (each record into journald
//! with structured fields), [`record`] (a
//! fence record's fields and readable line), [`alert`] (Pacemaker's fencing alerts dropped for the
//! leader). May use every folder below it: `fsio`, `os`, `protocol`, `spool`, `cluster`, `discovery`.
//! The chain's items are re-exported here for the programs.

pub mod pyjson;
pub mod chain;
pub mod notes;
pub mod log;
pub mod journal;
pub mod record;
pub mod alert;

pub use chain::{
    canonical, hash_of, link_of, parse_anchors, seal, verify, Break, Link, LogFile, Place, Report, GENESIS,
};
