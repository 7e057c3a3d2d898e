//! The periodic sweep, run by every watcher at each rescan (leadership only avoids duplicate work):
//! recover dead watchers' claims, fence frozen peers, re-dispatch the work of unkillable ones. The
//! leader also records Pacemaker's fencing alerts (see `alerts`), clears temporary files whose
//! writer died (or older than an hour) and applies the retention of `done/`, `responses/` and
//! `attempts/`.
//!
//! A frozen watcher (SIGSTOP, livelock) keeps its locks, so nothing else would ever free its claims:
//! a peer whose member lock is held but whose heartbeat is older than the TTL is SIGKILLed, with the
//! process groups of the fence commands its heartbeat lists; the kernel then frees its locks and
//! ordinary recovery runs. Pids are checked against the start time in the heartbeat first, so a
//! reused pid is never signalled.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use ha::cluster::members::Heartbeat;
use ha::cluster::members::{judge_peer, PeerVerdict};
use ha::os::clock::BootTime;
use ha::spool::Dir;

use crate::shared::Shared;

/// What the sweeper remembers between sweeps.
#[derive(Debug, Default)]
pub struct Sweeper {
    /// Peers this watcher SIGKILLed: which process (pid, start time) and when.
    killed: HashMap<String, (u32, u64, Instant)>,
    /// Stuck peers whose requests were re-dispatched.
    redispatched: HashSet<String>,
    /// The last problem with the alerts drop directory (said once, not at every sweep).
    alerts_problem: Option<String>,
}

/// Whether the process `pid` started at `start_time` still exists (a zombie does not count).
fn still_there(pid: u32, start_time: u64) -> bool {
    ha::os::procfs::stat(pid).is_some_and(|s| s.state != 'Z' && (start_time == 0 || s.start_time == start_time))
}

/// SIGKILLs a frozen peer and its fence commands' groups; false when the process is not there any more.
fn fence_peer(hb: &Heartbeat, age: Duration) -> bool {
    if !still_there(hb.pid, hb.start_time) {
        return false;
    }
    tracing::error!(peer = %hb.watcher_id, pid = hb.pid, heartbeat_age_ms = age.as_millis() as u64, children = ?hb.children,
        "peer watcher is frozen (lock held, heartbeat stale): killing it and its fence commands");
    let _ = kill(Pid::from_raw(hb.pid as i32), Signal::SIGKILL);
    for &child in &hb.children {
        if ha::os::procfs::stat(child).is_some_and(|s| s.pgrp == child) {
            ha::os::child::kill_group(child);
        }
    }
    true
}

impl Sweeper {
    /// One sweep.
    pub fn sweep(&mut self, shared: &Shared, leader: bool) {
        let s = &shared.settings;
        crate::recovery::recover(shared);
        self.judge_peers(shared);
        if leader {
            if let Some(dir) = &s.alerts_dir {
                match crate::alerts::ingest(shared, dir) {
                    Ok(_) => {
                        // An alert agent killed mid-write leaves its temporary file (never an alert).
                        remove_dead_writers_temps(dir);
                        self.alerts_problem = None;
                    }
                    Err(why) if self.alerts_problem.as_ref() != Some(&why) => {
                        tracing::error!("not recording Pacemaker's fencing alerts: {why}");
                        self.alerts_problem = Some(why);
                    }
                    Err(_) => {}
                }
            }
            clear_tmp(&s.spool.dir(Dir::Tmp), s.tmp_max_age);
            // Writers' hidden temporaries in requests/ (upstream's v2 clients write `.<name>.tmp`
            // there, and so does our agent for an external responder): left alone while their writer
            // may still be writing, removed once it cannot be.
            let requests = s.spool.dir(Dir::Requests);
            remove_dead_writers_temps(&requests);
            // An agent's holder lock (`.<request>.lock`, for an external responder on this spool)
            // stays while its agent holds it, however long it waits: it is how a killed agent is told.
            remove_older_than(&requests, REQUESTS_TEMP_MAX_AGE, |p| {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                name.starts_with('.')
                    && (ha::protocol::names::request_of_holder_lock(&name).is_none()
                        || !ha::fsio::lock::held(p, ha::fsio::lock::IfUnreadable::NotHeld))
            });
            clear_waiting(&s.spool);
            if let Some(keep) = s.retention {
                for d in [Dir::Done, Dir::Attempts] {
                    remove_older_than(&s.spool.dir(d), keep, |_| true);
                }
                remove_older_than(&s.spool.dir(Dir::Responses), keep, |path| !is_fenced_record(path));
            }
            if let Some(keep) = s.fenced_record_retention {
                remove_older_than(&s.spool.dir(Dir::Responses), keep, is_fenced_record);
            }
        }
    }

    fn judge_peers(&mut self, shared: &Shared) {
        let s = &shared.settings;
        if !shared.member.lock().unwrap().may_judge() {
            return;
        }
        let Ok(members) = ha::cluster::members::members(&s.spool) else {
            return;
        };
        let now = BootTime::now();
        for (id, lock) in members.iter().filter(|(id, _)| *id != s.id) {
            let id = id.as_str();
            let held = ha::fsio::lock::held(lock, ha::fsio::lock::IfUnreadable::NotHeld);
            let hb = ha::cluster::members::read_heartbeat(&s.spool, id);
            let age = hb.as_ref().and_then(|h| h.age(now, &shared.boot_id));
            // A kill counts only while the very process that was killed is still there: a watcher
            // restarted under the same id between two sweeps is a new process, not a stuck one.
            if let Some(&(pid, start, _)) = self.killed.get(id) {
                if !still_there(pid, start) {
                    self.killed.remove(id);
                    self.redispatched.remove(id);
                }
            }
            let killed_ago = self.killed.get(id).map(|(_, _, at)| at.elapsed());
            match judge_peer(held, age, killed_ago, s.ttl) {
                PeerVerdict::Leave if !held => {
                    self.killed.remove(id);
                    self.redispatched.remove(id);
                }
                PeerVerdict::Leave => {}
                PeerVerdict::Kill => {
                    if let Some(hb) = &hb {
                        if fence_peer(hb, age.unwrap_or_default()) {
                            self.killed.insert(id.to_string(), (hb.pid, hb.start_time, Instant::now()));
                        }
                    }
                }
                // Standing aside, the older watchers deal with their stuck peer.
                PeerVerdict::Redispatch if crate::aside::standing_aside(shared) => {}
                PeerVerdict::Redispatch => {
                    if self.redispatched.insert(id.to_string()) {
                        if let Err(e) = ha::spool::recover::redispatch(&s.spool, id) {
                            tracing::error!(peer = %id, "re-dispatching a stuck watcher's requests: {e}");
                        }
                    }
                }
            }
        }
    }
}

/// The pid of the writer of a temporary file, from its name `.<stem>.<pid>.<uuid>.tmp`.
fn writer_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_suffix(".tmp")?.rsplitn(3, '.');
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Removes temporary files whose writer is dead (it will never place them) or that are older than
/// `age` (a writer whose pid was reused).
fn clear_tmp(dir: &std::path::Path, age: Duration) {
    remove_dead_writers_temps(dir);
    remove_older_than(dir, age, |_| true);
}

/// Removes the temporary files (`.<name>.<pid>.<uuid>.tmp`) in `dir` whose writer is dead.
fn remove_dead_writers_temps(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let orphan = writer_pid(&name).is_some_and(|pid| ha::os::procfs::stat(pid).is_none_or(|s| s.state == 'Z'));
        if orphan {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a temporary file whose writer died"),
                Err(err) => tracing::warn!(file = %name, "removing a dead writer's temporary file: {err}"),
            }
        }
    }
}

/// Age after which a hidden file in `requests/` is a dead writer's (upstream clients give up after
/// their 60 s timeout).
const REQUESTS_TEMP_MAX_AGE: Duration = Duration::from_secs(600);

/// How old an unlocked waiting lock must be before it is removed: the file exists unlocked for a
/// moment between the agent's open and its flock.
const WAITING_GUARD: Duration = Duration::from_secs(60);

/// Removes `waiting/<id>.lock` and `.fifo` of agents that are gone (SIGKILLed before they published,
/// or after their request was retired): the lock free, older than [`WAITING_GUARD`], and no request
/// or claim of that id left. (A pending request's waiting lock is how the watchers know its agent is
/// gone and answer it `abandoned`: that one stays until the request is retired.)
fn clear_waiting(spool: &ha::spool::Spool) {
    let dir = spool.dir(Dir::Waiting);
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let claimed: Vec<String> = std::fs::read_dir(spool.dir(Dir::Claimed))
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let cutoff = SystemTime::now() - WAITING_GUARD;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".lock").or_else(|| name.strip_suffix(".fifo")) else { continue };
        let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < cutoff);
        // Our agents' requests are v1-named; a v2 client has no waiting files.
        let pending = spool.request_path(id).symlink_metadata().is_ok() || claimed.iter().any(|c| c.starts_with(id));
        // Probed last: a young lock may not be locked by its agent yet, and a probe at that instant
        // would make the agent's own lock fail.
        if old && !pending && !ha::fsio::lock::held(&spool.waiting_lock(id), ha::fsio::lock::IfUnreadable::NotHeld) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a gone agent's waiting file"),
                Err(err) => tracing::warn!(file = %name, "removing a gone agent's waiting file: {err}"),
            }
        }
    }
}

/// Whether the response at `path` is a record that a node was fenced: a success answer to `off` or
/// `reboot`. Such records are what nnf-sos (and an operator) read to know a node is fenced, so plain
/// retention keeps them; an unreadable file counts as one (kept rather than lost).
fn is_fenced_record(path: &std::path::Path) -> bool {
    match ha::fsio::read_capped(path, ha::fsio::MAX_SPOOL_FILE).map(|b| ha::protocol::response::Response::parse(&b)) {
        Ok(Ok(r)) => r.success && matches!(r.action_performed.as_str(), "off" | "reboot"),
        Ok(Err(_)) => false,
        Err(_) => true,
    }
}

/// Removes the files in `dir` last modified more than `age` ago that `select` picks.
fn remove_older_than(dir: &std::path::Path, age: Duration, select: impl Fn(&std::path::Path) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let cutoff = SystemTime::now() - age;
    for e in entries.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < cutoff);
        if old && select(&e.path()) {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::debug!(file = %e.path().display(), "removed by retention"),
                Err(err) => tracing::warn!(file = %e.path().display(), "retention: {err}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn temporary_file_names_give_their_writer() {
        assert_eq!(super::writer_pid(".x.json.1234.0f0f.tmp"), Some(1234));
        assert_eq!(super::writer_pid(".w3.json.28524.e4de924ac2ec.tmp"), Some(28524));
        assert_eq!(super::writer_pid("garbage"), None);
    }
}
