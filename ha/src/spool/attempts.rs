//! `attempts/<id>.jsonl`: one line per execution of a request, appended when it starts, whoever runs
//! it. The number of lines is how many executions began, across watchers and crashes; it numbers the
//! next claim.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::layout::{Dir, Spool};
use crate::error::{HaError, Result};

/// One execution's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// The watcher that ran it.
    pub watcher_id: String,
    /// The fence command's process id.
    pub pid: u32,
    /// CLOCK_BOOTTIME at start.
    pub started_boottime_ns: u64,
    /// RFC 3339 start, for people.
    pub started: String,
}

/// `attempts/<id>.jsonl`.
pub fn path(spool: &Spool, id: &str) -> PathBuf {
    spool.dir(Dir::Attempts).join(format!("{id}.jsonl"))
}

/// How many executions of `id` have begun.
pub fn count(spool: &Spool, id: &str) -> Result<u32> {
    let p = path(spool, id);
    match std::fs::read(&p) {
        Ok(b) => Ok(b.iter().filter(|c| **c == b'\n').count() as u32),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(HaError::io("read", &p, e)),
    }
}

/// Appends one attempt (a single `O_APPEND` write).
pub fn record(spool: &Spool, id: &str, a: &Attempt) -> Result<()> {
    let p = path(spool, id);
    let mut line = serde_json::to_vec(a).expect("an attempt always serialises");
    line.push(b'\n');
    crate::fsio::open_append(&p).and_then(|mut f| f.write_all(&line)).map_err(HaError::at("append to", &p))
}
