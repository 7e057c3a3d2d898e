//! The formats other programs read and write, with no I/O of their own: the spool's file names of
//! every generation ([`names`]: v1 `<uuid>.json`, v2 `<target>-<uuid>.json`, the claimed names
//! [`names::ClaimName`], and [`names::is_safe_name`], the rule for any name that becomes part of a
//! file name), the request ([`request`]) and response ([`response`]) documents, the fence-agents
//! stdin protocol ([`fence_args`]), nnf-sos's directories ([`nnf`]) and how a fence's file systems
//! were found ([`provenance`]).
//!
//! Takes no locks. May use `error`, `fsio` and `os` only: a format never knows where it is stored.

pub mod names;
pub mod fence_args;
pub mod nnf;
pub mod provenance;
pub mod request;
pub mod response;
