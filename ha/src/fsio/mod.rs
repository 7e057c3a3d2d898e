//! Every rename, fsync and flock of the project happens in this module and its `lock` child (and
//! `wake`, the agent's wake-up FIFO).
//!
//! Invariants it provides to the rest of the code:
//! - A file another process reads is first written under `tmp/` with `O_EXCL`, then moved into place
//!   with [`move_noreplace`]: readers never see a partial file.
//! - What must outlive a power cut is written [`Durability::Durable`]: the file is fsynced before its
//!   move and the destination directory after it, so it is there, whole, after any crash once the
//!   call returns. Only answers are (PROTOCOL.md, "What survives a crash", says which file and why).
//!   Everything else is [`Durability::Volatile`]: no fsync, so after a power cut on a disk spool it
//!   may be missing, back under its old name, or empty (a renamed file whose data never reached the
//!   disk); the readers of each such file handle those states. A process crash loses nothing: the
//!   page cache survives it.
//! - No move ever replaces a file: `renameat2(RENAME_NOREPLACE)`, or `link` + `unlink` on file
//!   systems that answer `EINVAL` to it. The caller learns whether the destination already existed.
//! - Files are opened with `O_NOFOLLOW | O_CLOEXEC`: a symlink planted in the spool is refused, and no
//!   descriptor leaks into a fence command unless a caller clears `FD_CLOEXEC` on purpose. System
//!   files outside the spool ([`open_system_file`]) may be links, and are opened non-blocking.
//! - Reads of files written by others are capped in size.
//!
//! Holds [`lock`] (flocks) and [`wake`] (the FIFO); this top holds the file operations, which its
//! children do not use. May use `error` only: the lowest layer but one.

pub mod lock;
pub mod wake;

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;

use crate::error::{HaError, Result};

/// Largest request or response file the project reads (the spool contract's limit).
pub const MAX_SPOOL_FILE: u64 = 64 * 1024;

/// What happened to a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The file is now at the destination.
    Done,
    /// The destination already existed; nothing was moved.
    DestinationExists,
    /// The source was gone (another process moved or removed it first).
    SourceGone,
}

/// Whether a write must outlive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before it is placed and its directory after: after any crash it is there,
    /// whole. One such publish costs two fsyncs; a fence's critical path has one (its answer).
    Durable,
    /// No fsync: readers see it at once; a power cut may lose it, undo its move or leave it empty.
    Volatile,
}

/// Moves `from` to `to` without ever replacing `to`. Volatile: it fsyncs nothing (a moved file
/// that must survive a power cut is placed with [`TempFile::place`] of a durable file).
pub fn move_noreplace(from: &Path, to: &Path) -> Result<Moved> {
    match rename_noreplace(from, to) {
        Ok(()) => Ok(Moved::Done),
        Err(Errno::EEXIST) => Ok(Moved::DestinationExists),
        Err(Errno::ENOENT) => Ok(Moved::SourceGone),
        Err(Errno::EINVAL) | Err(Errno::ENOSYS) => link_then_unlink(from, to),
        Err(e) => Err(HaError::errno("rename (RENAME_NOREPLACE)", to, e)),
    }
}

/// `renameat2(from, to, RENAME_NOREPLACE)` by its system call: the same code in the glibc and the
/// musl builds (nix wraps `renameat2` for glibc only). The paths reach the kernel as nix's own
/// wrappers pass them (`NixPath`): a path holding a NUL byte is `EINVAL`, as for a file system
/// without the flag.
fn rename_noreplace(from: &Path, to: &Path) -> std::result::Result<(), Errno> {
    use nix::libc::{syscall, SYS_renameat2, AT_FDCWD, RENAME_NOREPLACE};
    use nix::NixPath;
    let r = from.with_nix_path(|from| {
        to.with_nix_path(|to| {
            // SAFETY: both paths are NUL-terminated and outlive the call, which only reads them.
            unsafe { syscall(SYS_renameat2, AT_FDCWD, from.as_ptr(), AT_FDCWD, to.as_ptr(), RENAME_NOREPLACE) }
        })
    })??;
    Errno::result(r).map(drop)
}

/// Moves `from` into `dir` as `name`, or as `name.<uuid>` when `name` is taken there: nothing is ever
/// replaced. `Ok(None)`: the source was gone.
pub fn move_into(from: &Path, dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let mut dest = dir.join(name);
    loop {
        match move_noreplace(from, &dest)? {
            Moved::Done => return Ok(Some(dest)),
            Moved::SourceGone => return Ok(None),
            Moved::DestinationExists => dest = dir.join(format!("{name}.{}", uuid::Uuid::new_v4().simple())),
        }
    }
}

/// The fallback for file systems without `RENAME_NOREPLACE`: `link` fails with `EEXIST` instead of
/// replacing, then the source name is removed.
fn link_then_unlink(from: &Path, to: &Path) -> Result<Moved> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Moved::DestinationExists),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Moved::SourceGone),
        Err(e) => return Err(HaError::io("link", to, e)),
    }
    match std::fs::remove_file(from) {
        Ok(()) => Ok(Moved::Done),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Moved::Done),
        Err(e) => Err(HaError::io("unlink", from, e)),
    }
}

/// fsyncs a directory, making the names created or removed in it durable.
fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(HaError::at("open directory", dir))?;
    f.sync_all().map_err(HaError::at("fsync directory", dir))
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

/// Moves `from` into `dir` (as [`move_into`] names it) durably: both directories are fsynced, so
/// after a crash the file is in one of the two places, never lost and never in both. `Ok(None)`: the
/// source was gone.
pub fn move_into_durable(from: &Path, dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    let moved = move_into(from, dir, name)?;
    if moved.is_some() {
        sync_dir(dir)?;
        sync_parent(from)?;
    }
    Ok(moved)
}

/// A file's identity: device and inode.
pub type FileId = (u64, u64);

/// The identity of the file at `path` (not following a symlink).
pub fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = path.symlink_metadata()?;
    Ok((m.dev(), m.ino()))
}

/// What [`keep_aside`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptAside {
    /// The file is now only at this path in the keeping directory.
    Kept(PathBuf),
    /// Nothing is at the original name any more (removed by another process); nothing was kept.
    Gone,
    /// The original name now holds another file than `id`: left as it is, nothing kept.
    Changed,
}

/// Takes the file `id` out of its directory by hard link and unlink, keeping it in `dir`: a link
/// `dir/name` (or `dir/name.<uuid>` when `name` there is another file; a link there to this very file,
/// left by an interrupted earlier call, is used as it is), `dir` fsynced, then the original name
/// unlinked only while it is still that file and its directory fsynced. Watchers of the original
/// directory see a removal (`IN_DELETE`), which a rename out of it would not give them. After a crash
/// the file is at its original name, in `dir`, or both; never nowhere. The check that the name is
/// still the file and the unlink are two calls: a file renamed over that name between them would be
/// removed in its place (no writer of these directories replaces a name; documented for the caller).
pub fn keep_aside(from: &Path, id: FileId, dir: &Path) -> Result<KeptAside> {
    let name = from.file_name().and_then(OsStr::to_str).unwrap_or("file").to_string();
    let mut dest = dir.join(&name);
    loop {
        match std::fs::hard_link(from, &dest) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(if from.symlink_metadata().is_err() { KeptAside::Gone } else { KeptAside::Changed });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if file_id(&dest).ok() == Some(id) {
                    break;
                }
                dest = dir.join(format!("{name}.{}", uuid::Uuid::new_v4().simple()));
            }
            Err(e) => return Err(HaError::io("link", &dest, e)),
        }
    }
    if file_id(&dest).map_err(HaError::at("stat", &dest))? != id {
        // The original name held another file by the time of the link: undo it.
        std::fs::remove_file(&dest).map_err(HaError::at("unlink", &dest))?;
        return Ok(KeptAside::Changed);
    }
    sync_dir(dir)?;
    match file_id(from) {
        Ok(now) if now == id => {}
        Ok(_) => return Ok(KeptAside::Changed),
        Err(_) => return Ok(KeptAside::Kept(dest)),
    }
    match std::fs::remove_file(from) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HaError::io("unlink", from, e)),
    }
    sync_parent(from)?;
    Ok(KeptAside::Kept(dest))
}

/// Checks that files can be created and written in `dir` now: writes a hidden, pid-named file of
/// [`PROBE_BYTES`] (about a request's size), fsyncs it (so that a disk that cannot take the data
/// says so now) and removes it. A read-only or full file system, or a directory without write
/// permission, fails with the operation and the cause.
pub fn probe_writable(dir: &Path) -> Result<()> {
    drop(TempFile::write(dir, "probe", &[b' '; PROBE_BYTES], Durability::Durable)?);
    Ok(())
}

/// Removes the request at `request` unless its answer at `response` exists: an agent that gives up
/// takes back what nobody answered. `Ok(false)`: answered, or already taken by the responder.
pub fn remove_unanswered(request: &Path, response: &Path) -> Result<bool> {
    if response.symlink_metadata().is_ok() {
        return Ok(false);
    }
    match std::fs::remove_file(request) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HaError::io("remove", request, e)),
    }
}

/// The size of [`probe_writable`]'s file.
pub const PROBE_BYTES: usize = 1024;

/// The name of a temporary file: hidden, with its writer's pid (so the leader can remove the files of
/// dead writers) and a unique part: `.<stem>.<pid>.<unique>.tmp`.
pub fn temp_name(stem: &str, pid: u32, unique: &str) -> String {
    format!(".{stem}.{pid}.{unique}.tmp")
}

/// A file fully written under `tmp/` (and fsynced, when durable), not yet visible anywhere else.
/// Dropping it unplaced removes it.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
    durability: Durability,
}

impl TempFile {
    /// Writes `bytes` to a new file in `tmp_dir` (name derived from `stem`, unique); fsyncs it when
    /// `durability` is [`Durability::Durable`].
    pub fn write(tmp_dir: &Path, stem: &str, bytes: &[u8], durability: Durability) -> Result<TempFile> {
        TempFile::write_dated(tmp_dir, stem, bytes, None, durability)
    }

    /// Like [`TempFile::write`], with the file's modification time set to `modified` when given (a
    /// requeued request keeps its submission time: the queue orders a target's requests by it).
    pub fn write_dated(
        tmp_dir: &Path,
        stem: &str,
        bytes: &[u8],
        modified: Option<SystemTime>,
        durability: Durability,
    ) -> Result<TempFile> {
        let name = temp_name(stem, std::process::id(), &uuid::Uuid::new_v4().simple().to_string());
        let path = tmp_dir.join(name);
        let mut f = create_new(&path)?;
        let guard = TempFile { path: Some(path), durability };
        let p = guard.path();
        f.write_all(bytes).map_err(HaError::at("write", p))?;
        if let Some(t) = modified {
            f.set_modified(t).map_err(HaError::at("set the modification time of", p))?;
        }
        if durability == Durability::Durable {
            f.sync_all().map_err(HaError::at("fsync", p))?;
        }
        Ok(guard)
    }

    /// Where the temporary file is.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("a TempFile has a path until placed")
    }

    /// Moves the file to `dest` unless `dest` exists; a durable file's new directory entry is then
    /// fsynced (the rename and the source's removal are one journal transaction: the destination's
    /// fsync commits both). On `Err(self)` the file stays in `tmp/` for the caller to put elsewhere
    /// (nothing is lost).
    pub fn place(mut self, dest: &Path) -> Result<std::result::Result<(), TempFile>> {
        match move_noreplace(self.path(), dest)? {
            Moved::Done => {
                self.path = None;
                if self.durability == Durability::Durable {
                    sync_parent(dest)?;
                }
                Ok(Ok(()))
            }
            Moved::DestinationExists => Ok(Err(self)),
            Moved::SourceGone => Err(HaError::io(
                "place temporary file",
                self.path(),
                std::io::Error::new(std::io::ErrorKind::NotFound, "removed by another process"),
            )),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `bytes` atomically at `dest` (through `tmp_dir`), refusing to replace an existing file.
/// Volatile. Returns `false` when `dest` already existed (the temporary file is then removed).
pub fn write_new(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<bool> {
    write_new_dated(tmp_dir, dest, bytes, None)
}

/// Like [`write_new`], the new file's modification time set to `modified` when given.
pub fn write_new_dated(tmp_dir: &Path, dest: &Path, bytes: &[u8], modified: Option<SystemTime>) -> Result<bool> {
    let stem = dest.file_name().and_then(OsStr::to_str).unwrap_or("file");
    Ok(TempFile::write_dated(tmp_dir, stem, bytes, modified, Durability::Volatile)?.place(dest)?.is_ok())
}

/// Writes `bytes` atomically at `dest`, replacing what is there: only for files this process owns
/// alone (its heartbeat, its published status), never for requests or responses. Volatile.
pub fn write_replace(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let stem = dest.file_name().and_then(OsStr::to_str).unwrap_or("file");
    let tmp = TempFile::write(tmp_dir, stem, bytes, Durability::Volatile)?;
    std::fs::rename(tmp.path(), dest).map_err(HaError::at("rename", dest))?;
    let mut tmp = tmp;
    tmp.path = None;
    Ok(())
}

/// Creates a new file (0600), failing if anything exists at `path`, never following a symlink.
pub fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(HaError::at("create", path))
}

/// Opens a file for appending (created 0600), never through a symlink. Each `write(2)` on it lands
/// whole at the end, so concurrent appenders of single-write records never interleave. Readable too:
/// the chained log reads its own tail through the descriptor it appends with.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Appends `record` to a file opened with [`open_append`] in one `write(2)`, so concurrent appenders'
/// records never interleave; a short write (a full disk) is an error.
pub fn append_record(file: &File, record: &[u8]) -> std::io::Result<()> {
    let n = (&*file).write(record)?;
    if n != record.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write ({n} of {} bytes): is the disk full?", record.len()),
        ));
    }
    Ok(())
}

/// [`append_record`], returning where the record landed: the offset of its first byte. After an
/// `O_APPEND` write the descriptor's offset is the end of what that write placed, whatever other
/// processes appended or cut before or since, so a file cut shorter between a look at its length
/// and this write shows here.
pub fn append_record_at(file: &File, record: &[u8]) -> std::io::Result<u64> {
    append_record(file, record)?;
    let end = std::io::Seek::stream_position(&mut &*file)?;
    Ok(end.saturating_sub(record.len() as u64))
}

/// Opens an existing regular file for reading without following a symlink.
pub fn open_nofollow(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)
}

/// Opens a system file outside the spool for reading (a time zone file, corosync's configuration):
/// following a symlink (such files often are one), never blocking on a FIFO, close-on-exec. Read it
/// with [`read_file_capped`], which refuses anything but a regular file.
pub fn open_system_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK).open(path)
}

/// Why a capped read did not return the file's bytes.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is larger than the cap.
    #[error("file is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// The path is not a regular file (symlink, directory, fifo, ...).
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// The file does not exist (any more).
    #[error("file is gone")]
    Gone,
    /// Another I/O error.
    #[error(transparent)]
    Io(#[from] HaError),
}

/// Reads at most `limit` bytes of a regular file at `path`, refusing symlinks and larger files.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let f = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Gone),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Err(ReadError::NotRegular("symlink")),
        Err(e) => return Err(HaError::io("open", path, e).into()),
    };
    read_file_capped(&f, path, limit)
}

/// Like [`read_capped`] on an already open file (read from its current offset).
pub fn read_file_capped(f: &File, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = f.metadata().map_err(HaError::at("fstat", path))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotRegular(if ft.is_dir() { "directory" } else { "special file" }));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(limit + 1).read_to_end(&mut buf).map_err(HaError::at("read", path))?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_never_replaces_and_reports_each_case() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        assert_eq!(move_noreplace(&a, &b).unwrap(), Moved::DestinationExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "b");
        std::fs::remove_file(&b).unwrap();
        assert_eq!(move_noreplace(&a, &b).unwrap(), Moved::Done);
        assert_eq!(move_noreplace(&a, &b).unwrap(), Moved::SourceGone);
        assert_eq!(link_then_unlink(&b, &a).unwrap(), Moved::Done);
        std::fs::write(&b, "again").unwrap();
        assert_eq!(link_then_unlink(&b, &a).unwrap(), Moved::DestinationExists);
        let into = move_into(&b, d.path(), "a").unwrap().unwrap();
        assert!(into.file_name().unwrap().to_string_lossy().starts_with("a."), "{into:?}");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "a", "the existing file was not replaced");
        assert_eq!(move_into(&b, d.path(), "a").unwrap(), None);
    }

    #[test]
    fn keep_aside_moves_exactly_the_file_it_was_given_and_resumes_an_interrupted_move() {
        let d = tempfile::tempdir().unwrap();
        let kept = d.path().join("kept");
        std::fs::create_dir(&kept).unwrap();
        let rec = d.path().join("r.json");
        std::fs::write(&rec, "1").unwrap();
        let id = file_id(&rec).unwrap();
        // Interrupted after its link: the link is used again, the original removed.
        std::fs::hard_link(&rec, kept.join("r.json")).unwrap();
        assert_eq!(keep_aside(&rec, id, &kept).unwrap(), KeptAside::Kept(kept.join("r.json")));
        assert!(rec.symlink_metadata().is_err());
        assert_eq!(keep_aside(&rec, id, &kept).unwrap(), KeptAside::Gone);
        // The same name again, another file: kept beside the first, never over it.
        std::fs::write(&rec, "2").unwrap();
        let id2 = file_id(&rec).unwrap();
        let KeptAside::Kept(second) = keep_aside(&rec, id2, &kept).unwrap() else { panic!() };
        assert_ne!(second, kept.join("r.json"));
        assert_eq!(std::fs::read_to_string(&second).unwrap(), "2");
        assert_eq!(std::fs::read_to_string(kept.join("r.json")).unwrap(), "1");
        // The name now holds another file than the one listed: nothing moves.
        std::fs::write(&rec, "3").unwrap();
        assert_eq!(keep_aside(&rec, id, &kept).unwrap(), KeptAside::Changed);
        assert_eq!(std::fs::read_to_string(&rec).unwrap(), "3");
        assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 2, "no link left behind");
    }

    #[test]
    fn temp_files_place_once_and_vanish_when_dropped() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.json");
        assert!(write_new(d.path(), &dest, b"1").unwrap());
        assert!(!write_new(d.path(), &dest, b"2").unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"1");
        write_replace(d.path(), &dest, b"3").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"3");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")], "no temporary file left behind");
    }

    #[test]
    fn capped_reads_refuse_symlinks_big_files_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, vec![b'x'; 100]).unwrap();
        assert_eq!(read_capped(&f, 100).unwrap().len(), 100);
        assert!(matches!(read_capped(&f, 99), Err(ReadError::TooLarge { limit: 99 })));
        let l = d.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(matches!(read_capped(&l, 1000), Err(ReadError::NotRegular("symlink"))));
        assert!(matches!(read_capped(d.path(), 1000), Err(ReadError::NotRegular("directory"))));
        assert!(matches!(read_capped(&d.path().join("none"), 1), Err(ReadError::Gone)));
    }
}
