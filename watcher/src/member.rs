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

use ha::fsio::lock::{self, Lock};
use ha::members::{heartbeat_path, lock_path, Heartbeat};
use ha::spool::{Dir, Spool};

use crate::WatchError;

/// A joined member.
#[derive(Debug)]
pub struct Member {
    /// Held for the process's life: what makes this watcher "live" to agents and peers.
    _lock: Lock,
    spool: Spool,
    beat: Heartbeat,
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
        let mut member = Member {
            _lock: lock,
            spool: spool.clone(),
            beat: Heartbeat {
                watcher_id: id.to_string(),
                pid,
                host: crate::hostname(),
                counter: 0,
                boottime_ns: 0,
                boot_id: boot_id.to_string(),
                start_time: ha::procfs::stat(pid).map_or(0, |s| s.start_time),
                children: Vec::new(),
                ttl_ms: Some(ttl.as_millis().min(u64::MAX as u128) as u64),
            },
        };
        member.beat()?;
        ha::members::announce(spool, id)?;
        Ok(member)
    }

    /// Writes the next heartbeat (atomically: readers never see a partial one).
    pub fn beat(&mut self) -> Result<(), WatchError> {
        self.beat.counter += 1;
        self.beat.boottime_ns = ha::clock::BootTime::now().0;
        let bytes = serde_json::to_vec(&self.beat).expect("a heartbeat always serialises");
        let dest = heartbeat_path(&self.spool, &self.beat.watcher_id);
        ha::fsio::write_replace(&self.spool.dir(Dir::Tmp), &dest, &bytes)?;
        Ok(())
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
