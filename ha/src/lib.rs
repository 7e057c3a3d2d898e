//! The library shared by `fence_gfs2_recorder` (the agent) and `gfs2-fence-watcher`.
//!
//! Folders by concept, declared lowest layer first. A module uses only modules declared before it
//! (in its own folder, or before its folder), never its own folder's `mod.rs`, never one above it:
//! `harness/tests/layering.rs` fails the build's tests otherwise.
//!
//! - [`error`]: the error every layer returns.
//! - [`fsio`]: the only module that renames, fsyncs and takes flocks.
//! - [`os`]: processes, clocks, the time zone, the environment.
//! - [`manpage`]: the programs' manual pages, from their clap definitions.
//! - [`protocol`]: the file formats and names other programs read and write.
//! - [`spool`]: the spool's layout and trust, and a request's life cycle in it.
//! - [`cluster`]: members, targets, fence path health, the leader.
//! - [`discovery`]: which GFS2 file systems a node has mounted.
//! - [`audit`]: fence records, the chained logs, Pacemaker's alerts.

pub mod error;
pub mod fsio;
pub mod os;
pub mod manpage;
pub mod protocol;
pub mod spool;
pub mod cluster;
pub mod discovery;
pub mod audit;

pub use error::{HaError, Result};
