//! The library shared by `fence_gfs2_recorder` (the agent) and `gfs2-fence-watcher`.
//!
//! - [`spool`]: layout, location and trust checks of the spool directory.
//! - [`request`], [`response`]: the public file formats.
//! - [`fsio`]: the only module that renames, fsyncs and takes flocks.
//! - [`claim`], [`answer`], [`recover`], [`attempts`]: the request life cycle on disk.
//! - [`decide`], [`queue`], [`backoff`]: pure decisions (deadlines, execute or not, recovery, claim
//!   order, retry schedule).
//! - [`members`], [`targets`], [`leader`], [`health`]: what watchers publish; leader election.
//! - [`procfs`]: process identity from `/proc`, so no reused pid is ever signalled.
//! - [`fence_args`]: the fence-agents stdin protocol; [`names`]: which names are safe.
//! - [`child`]: process groups and death signals for children.
//! - [`setting`]: the environment variables the programs share, one name and one parser each.
//! - [`clock`]: CLOCK_BOOTTIME and wall-clock stamps; [`pyjson`]: Python-compatible JSON text.

pub mod alert;
pub mod answer;
pub mod attempts;
pub mod audit;
pub mod backoff;
pub mod child;
pub mod claim;
pub mod clock;
pub mod decide;
pub mod discovery;
pub mod error;
pub mod fence_args;
pub mod fsio;
pub mod health;
pub mod leader;
pub mod members;
pub mod names;
pub mod nnf;
pub mod procfs;
pub mod pyjson;
pub mod queue;
pub mod record;
pub mod recover;
pub mod request;
pub mod response;
pub mod setting;
pub mod spool;
pub mod targets;
pub mod tz;

pub use error::{HaError, Result};
