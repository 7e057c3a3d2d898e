//! The agent's wake-up FIFO, `waiting/<id>.fifo`: the watcher that places a response writes one byte
//! to it, so the waiting agent needs no inotify instance (whose teardown at the agent's exit costs
//! a synchronize_srcu, 8-14 ms measured, on every fence).
//!
//! - The agent creates the FIFO (0600) before it publishes its request and opens it read-write: a
//!   reader that is also a writer never sees `POLLHUP`, so `poll` wakes only for a byte. It removes
//!   the FIFO when it stops waiting ([`Fifo`]'s drop); watchers remove leftovers with the waiting lock.
//! - A watcher's [`wake`] opens the path write-only and non-blocking without following symlinks,
//!   checks it is a FIFO, writes one byte. No FIFO (an older agent, an external tool) or no reader
//!   (the agent is gone) is not an error: the response is in place either way, and the agent also
//!   re-reads its response path on a slow timer.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;

use crate::error::{HaError, Result};

/// A waiting agent's FIFO; removed on drop.
#[derive(Debug)]
pub struct Fifo {
    file: File,
    path: PathBuf,
}

impl Fifo {
    /// Creates the FIFO at `path` (nothing may exist there) and opens it read-write, non-blocking.
    pub fn create(path: &Path) -> Result<Fifo> {
        nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|e| HaError::errno("mkfifo", path, e))?;
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
            .open(path);
        match opened {
            Ok(file) => Ok(Fifo { file, path: path.to_path_buf() }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(HaError::io("open", path, e))
            }
        }
    }

    /// Reads every byte written so far; whether there was any.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut any = false;
        while let Ok(n @ 1..) = (&self.file).read(&mut buf) {
            any = true;
            if n < buf.len() {
                break;
            }
        }
        any
    }
}

impl AsFd for Fifo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Wakes the agent waiting on the FIFO at `path`, if there is one; never blocks, never fails.
pub fn wake(path: &Path) {
    let opened = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path);
    let Ok(mut f) = opened else { return };
    if f.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        let _ = f.write(b"!");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_one_readable_byte_and_the_fifo_goes_with_its_owner() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.fifo");
        let fifo = Fifo::create(&p).unwrap();
        assert!(!fifo.drain(), "nothing yet");
        wake(&p);
        wake(&p);
        assert!(fifo.drain());
        assert!(!fifo.drain(), "drained");
        assert!(Fifo::create(&p).is_err(), "one FIFO per path");
        drop(fifo);
        assert!(!p.exists());
        wake(&p); // no FIFO: nothing happens
    }

    #[test]
    fn wake_never_writes_into_a_regular_file_or_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("victim");
        std::fs::write(&file, "keep").unwrap();
        wake(&file);
        let link = d.path().join("link.fifo");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        wake(&link);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    }
}
