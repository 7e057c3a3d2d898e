//! Watcher membership: who is alive on this spool.
//!
//! Each watcher holds an exclusive flock on `members/<id>.lock` for its whole life and rewrites
//! `members/<id>.json` (a [`Heartbeat`]) periodically. A watcher is live exactly when its member lock
//! is held *and* its heartbeat, of this boot, is younger than the TTL the heartbeat itself carries: a
//! frozen watcher keeps its lock but its heartbeat ages, and a watcher that cannot write its heartbeat
//! (full or read-only spool) cannot write answers either. The lock is probed with a non-blocking
//! shared lock (see `fsio::lock`); the judgements are pure: [`is_live`], and [`judge_peer`] for a
//! peer that holds its lock with a stale heartbeat (frozen: kill it; unkillable: re-dispatch its
//! claims).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{HaError, Result};
use crate::fsio::lock::{probe, LockState};
use crate::os::clock::BootTime;
use crate::spool::{Dir, Spool};

/// A watcher's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The watcher's id.
    pub watcher_id: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// Incremented at every heartbeat.
    pub counter: u64,
    /// CLOCK_BOOTTIME of this heartbeat.
    pub boottime_ns: u64,
    /// The boot the clock belongs to.
    pub boot_id: String,
    /// The process's start time (`/proc/<pid>/stat` field 22), so a peer never kills a reused pid.
    #[serde(default)]
    pub start_time: u64,
    /// Process ids (= process-group ids) of the fence commands running now.
    #[serde(default)]
    pub children: Vec<u32>,
    /// The watcher's `--ttl` in milliseconds: a heartbeat older than this means the watcher is frozen
    /// or cannot write (absent in heartbeats of older versions: [`DEFAULT_TTL`] is assumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// The spool format the watcher speaks ([`crate::spool::SPOOL_FORMAT`]); absent in heartbeats of
    /// watchers older than the field, which speak format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_format: Option<u32>,
    /// The watcher's metrics server: its address, or why it is not served (`status` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
}

/// The watcher's default `--ttl`, assumed for a heartbeat that does not carry its own.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl Heartbeat {
    /// The TTL this heartbeat declares.
    pub fn ttl(&self) -> Duration {
        self.ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis)
    }

    /// The spool format the watcher speaks (1 when the heartbeat does not say).
    pub fn format(&self) -> u32 {
        self.spool_format.unwrap_or(1)
    }

    /// How old the heartbeat is at `now` on this boot (`None`: written in another boot).
    pub fn age(&self, now: BootTime, boot_id: &str) -> Option<Duration> {
        (self.boot_id == boot_id).then(|| BootTime(self.boottime_ns).until(now))
    }
}

/// Whether a member is live: its lock held, and its heartbeat of this boot younger than its TTL.
pub fn is_live(lock_held: bool, heartbeat: Option<&Heartbeat>, now: BootTime, boot_id: &str) -> bool {
    lock_held && heartbeat.and_then(|h| h.age(now, boot_id).map(|age| age < h.ttl())).unwrap_or(false)
}

/// One entry of `members/`, as read now.
#[derive(Debug, Clone)]
pub struct MemberState {
    /// The watcher's id.
    pub id: String,
    /// Whether its member lock is held.
    pub lock_held: bool,
    /// Its heartbeat, when readable.
    pub heartbeat: Option<Heartbeat>,
    /// [`is_live`] of the two.
    pub live: bool,
}

/// Reads a heartbeat file (capped; `None` when missing or unreadable).
pub fn read_heartbeat(spool: &Spool, id: &str) -> Option<Heartbeat> {
    let bytes = crate::fsio::read_capped(&heartbeat_path(spool, id), crate::fsio::MAX_SPOOL_FILE).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `members/<id>.lock`.
pub fn lock_path(spool: &Spool, id: &str) -> PathBuf {
    spool.dir(Dir::Members).join(format!("{id}.lock"))
}

/// `members/<id>.json`.
pub fn heartbeat_path(spool: &Spool, id: &str) -> PathBuf {
    spool.dir(Dir::Members).join(format!("{id}.json"))
}

/// The prefix of the transient file a joining watcher creates in `members/` (see [`announce`]).
pub const JOIN_PREFIX: &str = ".join.";

/// Tells peers watching `members/` for `IN_CREATE` that `id` has joined: creates and removes
/// `members/.join.<id>`. Heartbeats (rewritten by rename) never create an entry, so peers wake for
/// joins only, not at every heartbeat or fence.
pub fn announce(spool: &Spool, id: &str) -> Result<()> {
    let path = spool.dir(Dir::Members).join(format!("{JOIN_PREFIX}{id}"));
    let _ = std::fs::remove_file(&path);
    drop(crate::fsio::create_new(&path)?);
    std::fs::remove_file(&path).map_err(HaError::at("remove", &path))
}

/// The members of `members/`: one per `<id>.lock` (the id, the lock's path), sorted by id. The one
/// listing of the directory every reader of it uses.
pub fn members(spool: &Spool) -> Result<Vec<(String, PathBuf)>> {
    let dir = spool.dir(Dir::Members);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(HaError::at("list", &dir))? {
        let entry = entry.map_err(HaError::at("list", &dir))?;
        let name = entry.file_name();
        if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) {
            found.push((id.to_string(), entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Every member of `members/` (see [`members`]), sorted by id, judged at `now`.
pub fn member_states(spool: &Spool, now: BootTime, boot_id: &str) -> Result<Vec<MemberState>> {
    let mut states = Vec::new();
    for (id, lock) in members(spool)? {
        let lock_held = probe(&lock)? == LockState::Held;
        let heartbeat = read_heartbeat(spool, &id);
        let live = is_live(lock_held, heartbeat.as_ref(), now, boot_id);
        states.push(MemberState { id, lock_held, heartbeat, live });
    }
    Ok(states)
}

/// The ids of the live watchers now (see [`is_live`]), sorted.
pub fn live_members(spool: &Spool) -> Result<Vec<String>> {
    let states = member_states(spool, BootTime::now(), &crate::os::clock::boot_id()?)?;
    Ok(states.into_iter().filter(|m| m.live).map(|m| m.id).collect())
}

/// The oldest spool format a live member speaks, and the first member (by id) that speaks it.
pub fn oldest_live(states: &[MemberState]) -> Option<(&str, u32)> {
    states
        .iter()
        .filter(|m| m.live)
        .filter_map(|m| Some((m.id.as_str(), m.heartbeat.as_ref()?.format())))
        .min_by_key(|(_, format)| *format)
}

/// Whether a watcher speaking format `ours` stands aside (claims, requeues, recovers and
/// re-dispatches nothing) while the oldest live member speaks `oldest`: only for an *older* format,
/// never a newer one, so two builds that both follow this rule never both stand aside, and the
/// oldest live watchers always serve.
pub fn stands_aside(ours: u32, oldest: Option<u32>) -> bool {
    oldest.is_some_and(|o| o < ours)
}

/// The live members able to fence now: those speaking the oldest format among the live ones (the
/// others stand aside while those claim). Empty only when no member is live.
pub fn able_to_fence(states: &[MemberState]) -> Vec<&str> {
    let Some((_, oldest)) = oldest_live(states) else { return Vec::new() };
    states
        .iter()
        .filter(|m| m.live && m.heartbeat.as_ref().is_some_and(|h| !stands_aside(h.format(), Some(oldest))))
        .map(|m| m.id.as_str())
        .collect()
}

/// What to do about a peer watcher, judged from its member lock and heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerVerdict {
    /// Alive and making progress, or dead (recovery handles dead ones), or not yet judged.
    Leave,
    /// Holds its lock but its heartbeat is older than the TTL: frozen. SIGKILL it and its children.
    Kill,
    /// Was killed at least a TTL ago and still holds its lock: stuck in uninterruptible sleep.
    /// Re-dispatch its requests; target exclusion is not guaranteed for them.
    Redispatch,
}

/// Judges a peer. `heartbeat_age` is `None` when it has not written one yet; `killed_ago` is how long
/// ago this watcher sent it SIGKILL, if it did.
pub fn judge_peer(
    lock_held: bool,
    heartbeat_age: Option<Duration>,
    killed_ago: Option<Duration>,
    ttl: Duration,
) -> PeerVerdict {
    match (lock_held, heartbeat_age, killed_ago) {
        (false, _, _) => PeerVerdict::Leave,
        (true, _, Some(ago)) if ago >= ttl => PeerVerdict::Redispatch,
        (true, _, Some(_)) => PeerVerdict::Leave,
        (true, Some(age), None) if age > ttl => PeerVerdict::Kill,
        (true, _, None) => PeerVerdict::Leave,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsio::lock::{open_lock_file, try_exclusive};

    fn beat_at(now: BootTime, age: Duration, ttl_ms: Option<u64>) -> Heartbeat {
        Heartbeat {
            watcher_id: "w1".into(),
            pid: std::process::id(),
            host: "h".into(),
            counter: 1,
            boottime_ns: now.0.saturating_sub(age.as_nanos() as u64),
            boot_id: crate::os::clock::boot_id().unwrap(),
            start_time: 0,
            children: vec![],
            ttl_ms,
            spool_format: None,
            metrics: None,
        }
    }

    fn beat(age: Duration, ttl_ms: Option<u64>) -> Heartbeat {
        beat_at(BootTime::now(), age, ttl_ms)
    }

    #[test]
    fn a_member_is_live_while_its_lock_is_held_and_its_heartbeat_is_fresh() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path());
        s.prepare(&[Dir::Members]).unwrap();
        assert!(live_members(&s).unwrap().is_empty());
        let p = lock_path(&s, "w1");
        let held = try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().unwrap();
        assert!(live_members(&s).unwrap().is_empty(), "a held lock without a heartbeat is not live");
        std::fs::write(heartbeat_path(&s, "w1"), serde_json::to_vec(&beat(Duration::ZERO, Some(3000))).unwrap())
            .unwrap();
        assert_eq!(live_members(&s).unwrap(), ["w1"]);
        std::fs::write(
            heartbeat_path(&s, "w1"),
            serde_json::to_vec(&beat(Duration::from_secs(4), Some(3000))).unwrap(),
        )
        .unwrap();
        assert!(live_members(&s).unwrap().is_empty(), "a frozen watcher (heartbeat older than its TTL) is not live");
        std::fs::write(heartbeat_path(&s, "w1"), serde_json::to_vec(&beat(Duration::ZERO, Some(3000))).unwrap())
            .unwrap();
        drop(held);
        assert!(live_members(&s).unwrap().is_empty(), "a dead watcher's fresh heartbeat does not make it live");
    }

    #[test]
    fn liveness_follows_the_ttl_the_heartbeat_carries() {
        let now = BootTime::now();
        let boot = crate::os::clock::boot_id().unwrap();
        let live =
            |age: u64, ttl: Option<u64>| is_live(true, Some(&beat_at(now, Duration::from_secs(age), ttl)), now, &boot);
        assert!(live(2, Some(3000)) && !live(3, Some(3000)));
        assert!(live(9, None) && !live(11, None), "older heartbeats: the default TTL");
        let mut other_boot = beat(Duration::ZERO, None);
        other_boot.boot_id = "another boot".into();
        assert!(!is_live(true, Some(&other_boot), now, &boot));
        assert!(!is_live(false, Some(&beat(Duration::ZERO, None)), now, &boot));
    }
}

#[cfg(test)]
mod peer_tests {
    use super::*;

    fn member(id: &str, live: bool, format: Option<u32>) -> MemberState {
        let heartbeat = Heartbeat {
            watcher_id: id.into(),
            pid: 1,
            host: "h".into(),
            counter: 1,
            boottime_ns: 0,
            boot_id: "b".into(),
            start_time: 0,
            children: vec![],
            ttl_ms: None,
            spool_format: format,
            metrics: None,
        };
        MemberState { id: id.into(), lock_held: live, heartbeat: Some(heartbeat), live }
    }

    #[test]
    fn newer_watchers_stand_aside_for_live_older_ones_only() {
        let ours = crate::spool::SPOOL_FORMAT;
        let mixed = [member("new-1", true, Some(ours)), member("old-1", true, None), member("old-2", false, None)];
        assert_eq!(oldest_live(&mixed), Some(("old-1", 1)), "a heartbeat without a format speaks 1");
        assert!(stands_aside(ours, oldest_live(&mixed).map(|(_, f)| f)));
        assert_eq!(able_to_fence(&mixed), ["old-1"], "the older live watcher claims");
        let dead_old = [member("new-1", true, Some(ours)), member("old-2", false, None)];
        assert!(!stands_aside(ours, oldest_live(&dead_old).map(|(_, f)| f)), "a dead older peer holds nobody back");
        assert_eq!(able_to_fence(&dead_old), ["new-1"]);
        let newer = [member("new-1", true, Some(ours)), member("next-1", true, Some(ours + 1))];
        assert!(!stands_aside(ours, oldest_live(&newer).map(|(_, f)| f)), "never for a newer peer");
        assert_eq!(able_to_fence(&newer), ["new-1"], "the newer one stands aside for us");
        // Whatever the mix, some live watcher is able to fence, and never both generations.
        for formats in [[1, 2], [2, 2], [2, 3], [1, 3]] {
            let states = [member("a", true, Some(formats[0])), member("b", true, Some(formats[1]))];
            let able = able_to_fence(&states);
            assert!(!able.is_empty());
            let min = formats.iter().min().unwrap();
            assert!(able.iter().all(|id| formats[(*id == "b") as usize] == *min), "{formats:?}: {able:?}");
        }
        assert!(able_to_fence(&[member("a", false, None)]).is_empty());
    }

    #[test]
    fn frozen_peers_are_killed_and_unkillable_ones_redispatched() {
        let ttl = Duration::from_secs(5);
        let s = Duration::from_secs;
        assert_eq!(judge_peer(false, Some(s(99)), None, ttl), PeerVerdict::Leave);
        assert_eq!(judge_peer(true, Some(s(1)), None, ttl), PeerVerdict::Leave);
        assert_eq!(judge_peer(true, None, None, ttl), PeerVerdict::Leave);
        assert_eq!(judge_peer(true, Some(s(6)), None, ttl), PeerVerdict::Kill);
        assert_eq!(judge_peer(true, Some(s(9)), Some(s(2)), ttl), PeerVerdict::Leave);
        assert_eq!(judge_peer(true, Some(s(20)), Some(s(5)), ttl), PeerVerdict::Redispatch);
    }
}
