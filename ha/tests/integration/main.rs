//! The library's integration tests, one module per behaviour: spawning children, and the properties
//! of the retry schedule, the claim order, the spool's files and the spool as a whole.

mod spawn;
mod backoff;
mod ordering;
mod spool_files;
mod spool_model;
