//! The watcher's view of `requests/`: parsed pending requests in a [`Queue`], fed by inotify names
//! and reconciled with the directory by the periodic rescan. Files are read here without a lock, only
//! to order them; the claim reads them again under the file's flock.

use std::collections::{BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use ha::fsio::{self, ReadError};
use ha::protocol::request::Request;
use ha::spool::claim::IN_PLACE_GRACE;
use ha::spool::queue::{Entry, Queue};
use ha::spool::{Dir, Spool};

use crate::config::FenceConfig;

/// Pending requests by state.
#[derive(Debug, Default)]
pub struct Index {
    /// Parsed requests, in claim order, grouped by exclusion key (`FenceConfig::exclusion_key`).
    pub queue: Queue,
    /// The configuration the keys come from.
    keys: FenceConfig,
    /// Files that do not parse yet and may still be being written in place, and files that could
    /// not be read for a passing shortage (descriptors, memory): read again at every rescan.
    young: BTreeSet<String>,
    /// Files to quarantine (the claim step does it, under the file's lock).
    bad: BTreeSet<String>,
}

fn submitted_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
}

impl Index {
    /// An empty index whose requests are keyed by `keys`.
    pub fn new(keys: FenceConfig) -> Index {
        Index { keys, ..Index::default() }
    }

    /// The exclusion key of `target` (see `FenceConfig::exclusion_key`).
    pub fn key_of(&self, target: &str) -> String {
        self.keys.exclusion_key(target)
    }

    /// Forgets `name` wherever it is.
    pub fn forget(&mut self, name: &str) {
        self.queue.remove(name);
        self.young.remove(name);
        self.bad.remove(name);
    }

    /// Reads `requests/<name>` and files it as queued, young or bad.
    pub fn observe(&mut self, spool: &Spool, boot_id: &str, name: &str) {
        self.forget(name);
        if name.starts_with('.') {
            return;
        }
        let path = spool.dir(Dir::Requests).join(name);
        let Ok(meta) = path.symlink_metadata() else {
            return;
        };
        let Some(named) = ha::protocol::names::parse_request_file(name).filter(|_| meta.file_type().is_file()) else {
            self.bad.insert(name.to_string());
            return;
        };
        let bytes = match fsio::read_capped(&path, fsio::MAX_SPOOL_FILE) {
            Ok(b) => b,
            Err(ReadError::Gone) => return,
            Err(ReadError::Io(e)) if e.is_transient() => {
                tracing::warn!(file = %name, "reading a request: {e}");
                self.young.insert(name.to_string());
                return;
            }
            Err(_) => {
                self.bad.insert(name.to_string());
                return;
            }
        };
        let young =
            SystemTime::now().duration_since(meta.modified().unwrap_or(UNIX_EPOCH)).is_ok_and(|a| a < IN_PLACE_GRACE);
        match Request::parse(&bytes) {
            Ok(r) if named.naming.file_name(&r.target_node, &r.request_id) == name => {
                let deadline_ns = match (r.deadline_boottime_ns, r.boot_id.as_deref()) {
                    (Some(ns), Some(b)) if b == boot_id => ns,
                    (Some(_), Some(_)) => 0,
                    _ => u64::MAX,
                };
                self.queue.insert(Entry {
                    name: name.to_string(),
                    target: self.keys.exclusion_key(&r.target_node),
                    node: r.target_node.clone(),
                    action: r.action,
                    priority: r.priority(),
                    deadline_ns,
                    submitted_ns: submitted_ns(&meta),
                    waived: spool.waiver(&r.request_id).exists(),
                });
            }
            Err(ha::protocol::request::Rejection::BadJson(_)) if young => {
                self.young.insert(name.to_string());
            }
            _ => {
                self.bad.insert(name.to_string());
            }
        }
    }

    /// Re-reads the directory: forgets vanished files, reads new ones and retries young ones. Costs a
    /// listing of the whole directory: with inotify the daemon runs it rarely (see `daemon`).
    pub fn reconcile(&mut self, spool: &Spool, boot_id: &str) -> Result<(), ha::HaError> {
        let dir = spool.dir(Dir::Requests);
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&dir).map_err(ha::HaError::at("list", &dir))? {
            let entry = entry.map_err(ha::HaError::at("list", &dir))?;
            present.insert(entry.file_name().to_string_lossy().into_owned());
        }
        let vanished: Vec<String> = self
            .queue
            .names()
            .chain(self.young.iter())
            .chain(self.bad.iter())
            .filter(|n| !present.contains(*n))
            .cloned()
            .collect();
        for name in &vanished {
            self.forget(name);
        }
        // New files, and young ones again (they may be complete now).
        let unread: Vec<&String> =
            present.iter().filter(|n| !self.queue.contains(n) && !self.bad.contains(*n)).collect();
        for name in unread {
            self.observe(spool, boot_id, name);
        }
        Ok(())
    }

    /// Reads the young files again (complete now, or old enough to quarantine), without listing
    /// the directory.
    pub fn retry_young(&mut self, spool: &Spool, boot_id: &str) {
        let young: Vec<String> = self.young.iter().cloned().collect();
        for name in young {
            self.observe(spool, boot_id, &name);
        }
    }

    /// Takes the files to quarantine.
    pub fn take_bad(&mut self) -> Vec<String> {
        std::mem::take(&mut self.bad).into_iter().collect()
    }

    /// Parsed pending requests by queue priority (young files left out).
    pub fn depth_by_priority(&self) -> std::collections::BTreeMap<i32, u64> {
        let mut by = std::collections::BTreeMap::new();
        for name in self.queue.names() {
            if let Some(e) = self.queue.get(name) {
                *by.entry(e.priority).or_default() += 1;
            }
        }
        by
    }

    /// Pending requests (parsed and not yet parsed).
    pub fn depth(&self) -> usize {
        self.queue.len() + self.young.len()
    }
}
