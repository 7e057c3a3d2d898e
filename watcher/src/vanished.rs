//! Spool directories removed or replaced under a running watcher (an operator clearing
//! `requests/`, `rm -rf` of the spool and `systemd-tmpfiles --create`).
//!
//! The watcher keeps the device and inode of the spool's base and of each of its directories, and
//! looks at them at every rescan and whenever inotify says a watched directory went away. What it
//! does is [`judge`]'s, without I/O:
//! - a directory that holds no lock a running execution depends on (`requests/`, `responses/`,
//!   `done/`, `quarantine/`, `waiting/`, `tmp/`, `attempts/`, `waivers/`) is made again, and for
//!   `requests/` the inotify watch is put on the new one and the index reconciled at once: a fence is
//!   never left to the 30 s full listing;
//! - the base, `members/` (this watcher's liveness), `locks/` or `claimed/` (the exclusion and the
//!   leases of fences that may still run on the old files) gone or replaced: new lock files would not
//!   exclude executions holding the old ones, so the watcher claims nothing more, withholds its
//!   watchdog, lets its running fences end within `--shutdown-grace` and exits non-zero: systemd
//!   (`Restart=always`) starts it again on the spool as it now is.
//!
//! No locks.

use std::os::unix::fs::MetadataExt;

use ha::spool::{Dir, Spool, WATCHER_DIRS};

/// A directory's identity: device, inode and birth time (0 where the file system keeps none: a
/// directory made again often reuses the inode number of the one removed); `None` when it does not
/// exist.
type Identity = Option<(u64, u64, u128)>;

fn identity(path: &std::path::Path) -> Identity {
    let m = path.symlink_metadata().ok().filter(|m| m.is_dir())?;
    let born = m.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Some((m.dev(), m.ino(), born))
}

/// What to do about the spool's directories as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// All as they were.
    Intact,
    /// These directories were removed or replaced: make them again (and watch `requests/` anew).
    Remake(Vec<Dir>),
    /// The spool, or a directory running fences depend on, is gone or replaced: stop claiming, let
    /// the fences in flight end, exit for a restart. The text says what happened.
    Lost(String),
}

/// The directories whose removal a watcher cannot repair in place.
const LOAD_BEARING: [Dir; 3] = [Dir::Members, Dir::Locks, Dir::Claimed];

/// Judges the spool: `base_same` whether its base is the directory the watcher started on,
/// `changed` the directories removed or replaced since it last looked.
pub fn judge(base_same: bool, changed: &[Dir]) -> Verdict {
    if !base_same {
        return Verdict::Lost("the spool directory itself was removed or replaced".into());
    }
    if let Some(d) = changed.iter().find(|d| LOAD_BEARING.contains(d)) {
        return Verdict::Lost(format!(
            "{}/ was removed or replaced while fences may hold its files (member and target locks, leases)",
            d.name()
        ));
    }
    if changed.is_empty() {
        Verdict::Intact
    } else {
        Verdict::Remake(changed.to_vec())
    }
}

/// The identities: the base's as it was at start (never read again: the spool this watcher started
/// on), each directory's as last made.
#[derive(Debug)]
pub struct Spooled {
    base: Identity,
    dirs: Vec<(Dir, Identity)>,
}

fn dirs_of(spool: &Spool) -> Vec<(Dir, Identity)> {
    WATCHER_DIRS.iter().map(|d| (*d, identity(&spool.dir(*d)))).collect()
}

impl Spooled {
    /// The spool's identities at start, after `prepare`.
    pub fn read(spool: &Spool) -> Spooled {
        Spooled { base: identity(spool.base()), dirs: dirs_of(spool) }
    }

    /// After the directories were made again: their new identities (the base's stays the one of the
    /// start, so that a spool removed while they were being made is still seen as replaced).
    pub fn remade(&mut self, spool: &Spool) {
        self.dirs = dirs_of(spool);
    }

    /// Looks at the spool again and judges it, with `known`: directories inotify said were removed
    /// (whatever their identity now). A missing directory is always changed. After a
    /// [`Verdict::Remake`] the caller makes the directories again and calls [`Spooled::remade`].
    pub fn check(&self, spool: &Spool, known: &[Dir]) -> Verdict {
        let base_same = self.base.is_some() && identity(spool.base()) == self.base;
        let changed: Vec<Dir> = self
            .dirs
            .iter()
            .filter(|(d, id)| {
                let now = identity(&spool.dir(*d));
                known.contains(d) || now.is_none() || now != *id
            })
            .map(|(d, _)| *d)
            .collect();
        judge(base_same, &changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_can_be_remade_is_remade_and_what_fences_hold_ends_the_watcher() {
        assert_eq!(judge(true, &[]), Verdict::Intact);
        assert_eq!(judge(true, &[Dir::Requests, Dir::Tmp]), Verdict::Remake(vec![Dir::Requests, Dir::Tmp]));
        for d in LOAD_BEARING {
            assert!(matches!(judge(true, &[Dir::Requests, d]), Verdict::Lost(why) if why.contains(d.name())));
        }
        assert!(matches!(judge(false, &[]), Verdict::Lost(why) if why.contains("spool directory itself")));
    }

    #[test]
    fn a_removed_or_replaced_directory_is_seen() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path().join("s"));
        spool.prepare(&WATCHER_DIRS).unwrap();
        let seen = Spooled::read(&spool);
        assert_eq!(seen.check(&spool, &[]), Verdict::Intact);
        assert_eq!(seen.check(&spool, &[Dir::Requests]), Verdict::Remake(vec![Dir::Requests]), "inotify said so");
        std::fs::remove_dir(spool.dir(Dir::Requests)).unwrap();
        assert_eq!(seen.check(&spool, &[]), Verdict::Remake(vec![Dir::Requests]), "removed");
        spool.prepare(&WATCHER_DIRS).unwrap();
        assert_eq!(seen.check(&spool, &[]), Verdict::Remake(vec![Dir::Requests]), "replaced by another");
        let mut seen = seen;
        seen.remade(&spool);
        assert_eq!(seen.check(&spool, &[]), Verdict::Intact);
        // Made again while the spool itself was being removed: the base is still the one of the
        // start, so a new spool under the same name is seen as replaced, whatever was read between.
        std::fs::remove_dir_all(spool.base()).unwrap();
        seen.remade(&spool);
        assert!(matches!(seen.check(&spool, &[]), Verdict::Lost(_)), "gone");
        spool.prepare(&WATCHER_DIRS).unwrap();
        seen.remade(&spool);
        assert!(matches!(seen.check(&spool, &[]), Verdict::Lost(_)), "replaced");
    }
}
