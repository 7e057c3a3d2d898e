//! flock(2), the only kind of lock in the project.
//!
//! Semantics every caller relies on:
//! - **Released on drop and on process death.** The kernel drops a flock when the last descriptor of
//!   its open file description closes, SIGKILL included. That is what makes a lock a lease: a dead
//!   holder cannot keep it.
//! - **Advisory.** Only processes that ask for the lock are excluded; nothing stops a plain `open`.
//! - **Node-local.** flock on NFS is emulated with POSIX byte-range locks, and on cluster file systems
//!   (GFS2, OCFS2) it is cluster-wide: either breaks the meaning of "a live process on this rabbit holds
//!   it". The spool refuses such file systems (see `spool`), and `ENOLCK`/`EOPNOTSUPP` from flock itself
//!   fail closed with [`HaError::LockUnsupported`].
//! - **Follows the file, not the name.** Renaming a locked file keeps it locked; a lock on a file that
//!   was unlinked and recreated protects nothing. Callers re-check the name after locking.
//! - `try_*` never blocks: `Ok(None)` means another process holds the lock; [`exclusive`] and
//!   [`wait_released`] wait, and the kernel wakes them the moment the holder releases or dies.
//! - Descriptors are close-on-exec: no fence command inherits a lock by accident.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{HaError, Result};

/// A held flock. Dropping it closes the descriptor: the kernel releases the lock when the last
/// descriptor of its open file description closes. It is never unlocked explicitly — nix's `Flock`
/// would `flock(LOCK_UN)` on drop (and panic if that failed), which also releases the lock for a
/// fence command that inherited the descriptor and may still be running (or an escaped descendant of
/// it): exclusion must last as long as any process holding it lives.
#[derive(Debug)]
pub struct Lock {
    flock: std::mem::ManuallyDrop<Flock<File>>,
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: `flock` is never used again after this.
        close_without_unlock(unsafe { std::mem::ManuallyDrop::take(&mut self.flock) });
    }
}

/// Closes a locked descriptor without `flock(LOCK_UN)`: the lock goes when the last descriptor of its
/// open file description closes, and nothing here can panic.
fn close_without_unlock(flock: Flock<File>) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let fd = flock.as_raw_fd();
    // Forgetting the `Flock` skips its unlock-on-drop (and the panic if that fails); the descriptor
    // it owned is taken back by a `File`, its sole owner now, whose drop closes it.
    std::mem::forget(flock);
    // SAFETY: `fd` was owned by the forgotten `Flock` and by nothing else.
    drop(unsafe { File::from_raw_fd(fd) });
}

impl Lock {
    /// The locked file (to write a heartbeat into it, or read it).
    pub fn file(&self) -> &File {
        &self.flock
    }

    /// The path the file had when it was locked.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that the locked file was moved, so messages name it where it now is.
    pub fn moved_to(&mut self, path: PathBuf) {
        self.path = path;
    }
}

/// Several held locks, by path: each taken once, all released together when the set is dropped.
#[derive(Debug, Default)]
pub struct LockSet(std::collections::HashMap<PathBuf, Lock>);

impl LockSet {
    /// Holds the lock of `path` (true at once when the set holds it already); false when another
    /// process holds it. Never blocks.
    pub fn try_hold(&mut self, path: &Path) -> Result<bool> {
        if self.0.contains_key(path) {
            return Ok(true);
        }
        let Some(lock) = try_exclusive(open_lock_file(path)?, path)? else { return Ok(false) };
        self.0.insert(path.to_path_buf(), lock);
        Ok(true)
    }
}

/// The first of `paths` whose lock is free, held (a slot of a limited resource: one lock file per
/// slot). `Ok(None)`: every slot is held by another process (or another open of this one). Never
/// blocks.
pub fn try_any(paths: impl IntoIterator<Item = PathBuf>) -> Result<Option<Lock>> {
    for path in paths {
        if let Some(lock) = try_exclusive(open_lock_file(&path)?, &path)? {
            return Ok(Some(lock));
        }
    }
    Ok(None)
}

/// Opens (creating if needed, mode 0600) a lock file without following symlinks.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(HaError::at("open lock file", path))
}

/// flock's failures other than "held by another": those meaning it does not work here fail closed.
fn lock_error(path: &Path, errno: Errno) -> HaError {
    match errno {
        Errno::ENOLCK | Errno::EOPNOTSUPP | Errno::EINVAL => {
            HaError::LockUnsupported { path: path.to_path_buf(), source: errno.into() }
        }
        e => HaError::errno("flock", path, e),
    }
}

/// Takes an exclusive lock on `file` without blocking. `Ok(None)`: another process holds it.
pub fn try_exclusive(file: File, path: &Path) -> Result<Option<Lock>> {
    try_lock(file, path, FlockArg::LockExclusiveNonblock)
}

/// Takes an exclusive lock, waiting as long as another process holds it (for a standby waiting to
/// become leader: the kernel wakes it the moment the holder releases or dies).
pub fn exclusive(file: File, path: &Path) -> Result<Lock> {
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(flock) => return Ok(Lock { flock: std::mem::ManuallyDrop::new(flock), path: path.to_path_buf() }),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(lock_error(path, e)),
        }
    }
}

/// Blocks until nobody holds an exclusive lock on the file at `path` (its holder released it or
/// died), then returns at once without keeping any lock. For watching a peer's member lock.
pub fn wait_released(path: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(HaError::at("open lock file", path))?;
    loop {
        match Flock::lock(file, FlockArg::LockShared) {
            Ok(granted) => {
                close_without_unlock(granted);
                return Ok(());
            }
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(lock_error(path, e)),
        }
    }
}

fn try_lock(file: File, path: &Path, arg: FlockArg) -> Result<Option<Lock>> {
    match Flock::lock(file, arg) {
        Ok(flock) => Ok(Some(Lock { flock: std::mem::ManuallyDrop::new(flock), path: path.to_path_buf() })),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(lock_error(path, e)),
    }
}

/// What a probe of a lock file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Some process holds a lock on it.
    Held,
    /// Nobody holds it.
    Free,
    /// There is no such file.
    Absent,
}

/// What a caller takes a lock whose state cannot be read for (opening or probing it failed): its
/// policy, stated where it probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfUnreadable {
    Held,
    NotHeld,
}

/// Whether some process holds a lock on the file at `path`, probed with a non-blocking shared lock
/// that is released at once.
///
/// The probe can make a concurrent `try_exclusive` by the file's owner fail for an instant; owners
/// that must take their own lock at start-up retry briefly (see the watcher's member lock).
pub fn probe(path: &Path) -> Result<LockState> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockState::Absent),
        Err(e) => return Err(HaError::io("open lock file", path, e)),
    };
    Ok(match try_lock(file, path, FlockArg::LockSharedNonblock)? {
        None => LockState::Held,
        Some(_) => LockState::Free,
    })
}

/// Whether the lock at `path` is held ([`probe`]): an absent file is not, an unreadable one is what
/// `if_unreadable` says.
pub fn held(path: &Path, if_unreadable: IfUnreadable) -> bool {
    match probe(path) {
        Ok(state) => state == LockState::Held,
        Err(_) => if_unreadable == IfUnreadable::Held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_set_holds_each_lock_once_and_releases_them_together() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.lock"), d.path().join("b.lock"));
        let mut set = LockSet::default();
        assert!(set.try_hold(&a).unwrap());
        assert!(set.try_hold(&a).unwrap(), "held by the set already");
        let other = try_exclusive(open_lock_file(&b).unwrap(), &b).unwrap().unwrap();
        assert!(!set.try_hold(&b).unwrap(), "another holder keeps it");
        drop(other);
        assert!(set.try_hold(&b).unwrap());
        assert_eq!((probe(&a).unwrap(), probe(&b).unwrap()), (LockState::Held, LockState::Held));
        drop(set);
        assert_eq!((probe(&a).unwrap(), probe(&b).unwrap()), (LockState::Free, LockState::Free));
    }

    #[test]
    fn exclusive_excludes_and_drop_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.lock");
        let held = try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().expect("free lock");
        assert!(try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().is_none());
        assert_eq!(probe(&p).unwrap(), LockState::Held);
        drop(held);
        assert_eq!(probe(&p).unwrap(), LockState::Free);
        assert!(try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().is_some());
        assert_eq!(probe(&d.path().join("none")).unwrap(), LockState::Absent);
        assert!(!super::held(&d.path().join("none"), IfUnreadable::Held), "an absent lock is not held");
    }

    #[test]
    fn lock_follows_the_file_across_a_rename() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        let q = d.path().join("b");
        let _held = try_exclusive(open_lock_file(&p).unwrap(), &p).unwrap().unwrap();
        std::fs::rename(&p, &q).unwrap();
        assert_eq!(probe(&q).unwrap(), LockState::Held);
    }
}
