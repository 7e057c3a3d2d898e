//! This watcher's membership: the member lock held for life, and the heartbeat beside it.
//!
//! Locks taken: `members/<id>.lock`, exclusive, for the whole life of the process (dropped by the
//! kernel when it dies, SIGKILL included). The agent's liveness probe can make our first
//! `try_exclusive` fail for an instant, so joining retries briefly before concluding that another
//! watcher with the same id is alive.
//!
//! The heartbeat lists the fence commands running now; it is rewritten at once when one starts or
//! ends, so a peer that fences this watcher while it is frozen kills exactly those process groups.
//! Shared between the main loop and the serving tasks behind a `std::sync::Mutex` that is never held
//! across an `.await`.

use std::time::Duration;

use ha::cluster::members::{heartbeat_path, lock_path, Heartbeat};
use ha::fsio::lock::{self, Lock};
use ha::os::clock::BootTime;
use ha::spool::{Dir, Spool};

use crate::error::WatchError;

/// A joined member.
#[derive(Debug)]
pub struct Member {
    /// Held for the process's life: what makes this watcher "live" to agents and peers.
    _lock: Lock,
    spool: Spool,
    beat: Heartbeat,
    /// Self-judgement before judging peers (see [`Member::may_judge`]).
    stall: Stall,
}

/// What this watcher knows of its own progress, on CLOCK_BOOTTIME (which counts through SIGSTOP and
/// suspend).
#[derive(Debug)]
struct Stall {
    /// The TTL peers judge by.
    ttl: Duration,
    /// When this watcher last tried to beat.
    last_attempt: BootTime,
    /// Until when it judges no peer: it stalled, or could not write its heartbeat.
    quiet_until: BootTime,
}

impl Member {
    /// Takes the member lock for `id` and writes the first heartbeat, which declares `ttl`: agents
    /// count this watcher live only while its latest heartbeat is younger than that.
    pub fn join(spool: &Spool, id: &str, boot_id: &str, ttl: Duration) -> Result<Member, WatchError> {
        let path = lock_path(spool, id);
        let mut tries = 0;
        let lock = loop {
            if let Some(l) = lock::try_exclusive(lock::open_lock_file(&path)?, &path)? {
                break l;
            }
            tries += 1;
            if tries >= 50 {
                return Err(WatchError::AlreadyRunning { id: id.to_string(), lock: path });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let pid = std::process::id();
        let now = BootTime::now();
        let mut member = Member {
            _lock: lock,
            stall: Stall { ttl, last_attempt: now, quiet_until: now },
            spool: spool.clone(),
            beat: Heartbeat {
                watcher_id: id.to_string(),
                pid,
                host: ha::os::host::name(),
                counter: 0,
                boottime_ns: 0,
                boot_id: boot_id.to_string(),
                start_time: ha::os::procfs::stat(pid).map_or(0, |s| s.start_time),
                children: Vec::new(),
                ttl_ms: Some(ttl.as_millis().min(u64::MAX as u128) as u64),
                spool_format: Some(ha::spool::SPOOL_FORMAT),
                metrics: None,
            },
        };
        member.beat()?;
        ha::cluster::members::announce(spool, id)?;
        Ok(member)
    }

    /// Records the metrics server's state (its address, or why it is not served) in the heartbeat,
    /// from the next beat on.
    pub fn set_metrics(&mut self, state: String) {
        self.beat.metrics = Some(state);
    }

    /// Writes the next heartbeat (atomically: readers never see a partial one). A failed write, or a
    /// gap since the last attempt over half the TTL (this process was stopped or starved), makes the
    /// watcher judge no peer for one TTL: its own heartbeat is as stale as the others' then.
    pub fn beat(&mut self) -> Result<(), WatchError> {
        let now = BootTime::now();
        self.stall.note(now);
        self.beat.counter += 1;
        self.beat.boottime_ns = now.0;
        let bytes = serde_json::to_vec(&self.beat).expect("a heartbeat always serialises");
        let dest = heartbeat_path(&self.spool, &self.beat.watcher_id);
        if let Err(e) = ha::fsio::write_replace(&self.spool.dir(Dir::Tmp), &dest, &bytes) {
            self.stall.quiet_until = self.stall.quiet_until.max(now.after(self.stall.ttl));
            return Err(e.into());
        }
        Ok(())
    }

    /// Whether this watcher may judge its peers now (kill a frozen one): not while, or until one TTL
    /// after, it was stalled itself or could not write its heartbeat. After a whole-host freeze every
    /// heartbeat is stale at once; the first to wake must not take its healthy peers for frozen.
    pub fn may_judge(&mut self) -> bool {
        let now = BootTime::now();
        self.stall.note(now);
        now >= self.stall.quiet_until
    }

    /// Records a fence command that started (its pid is its process group) and beats at once.
    pub fn child_started(&mut self, pid: u32) {
        self.beat.children.push(pid);
        self.beat_or_log();
    }

    /// Records a fence command that ended and beats at once.
    pub fn child_ended(&mut self, pid: u32) {
        self.beat.children.retain(|c| *c != pid);
        self.beat_or_log();
    }

    fn beat_or_log(&mut self) {
        if let Err(e) = self.beat() {
            tracing::error!("heartbeat: {e}");
        }
    }
}

impl Stall {
    /// Records a sign of life at `now`; a gap since the last one over half the TTL is a stall.
    fn note(&mut self, now: BootTime) {
        if self.last_attempt.until(now) > self.ttl / 2 {
            tracing::warn!(
                stalled_ms = self.last_attempt.until(now).as_millis() as u64,
                "this watcher was stalled (stopped or starved): judging no peer for one TTL"
            );
            self.quiet_until = self.quiet_until.max(now.after(self.ttl));
        }
        self.last_attempt = now;
    }
}
