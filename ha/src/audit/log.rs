//! Appending to the chained log (`fence-events-detailed.jsonl`), from many processes at once.
//!
//! Locks taken: an exclusive flock on `<log>.lock`, waited for at most [`LOCK_WAIT`]: auditing never
//! blocks fencing. Under the lock, for each record: the log is opened by its path (so the record goes
//! to the file that is current now, whatever rotation happened while a fence waited), the chain's end
//! is read from its last complete record (or, in a fresh file after a rotation, from the copy kept in
//! the lock file), a record cut short by a crash (seen in the same read) is ended with a newline, the
//! sealed line is appended with one `write(2)`, and the lock file is rewritten in place with the new
//! end, the file it went to with the length its write left, and the appender's notes (`notes`): a log
//! found shorter than the end left it, or cut shorter between the appender's look at it and its write
//! (truncated in place: logrotate's `copytruncate`), or a record that could not be written whole (a
//! full disk). A rotation that moves the file between its open and the write is seen after
//! the write (the path names another file): the line is written again to the new file, and `verify`
//! passes over the exact repeat. Who creates the new file: logrotate's `create` makes it with
//! `O_EXCL`; when an agent created it first (between logrotate's rename and its create), logrotate
//! renames the agent's file to `<log>-<YYYYMMDDHH>.backup` and creates its own, and `verify` reads
//! the backup with the rotated copies. Without the lock in time the record is still appended,
//! without chain fields (reported as unchained by `verify`), and a warning says so. Nothing here
//! fsyncs: the log is as durable as it always was.
//!
//! After each chained append the record's `seq` and `hash` go to syslog (`/dev/log`, identifier
//! `gfs2-fence-audit`, facility authpriv), which journald keeps and sites forward off-host: the
//! anchors a local root cannot rewrite along with the file.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::chain::{link_of, Link};
use super::notes::{FileMark, Head, LogNote};
use crate::fsio::lock;

/// Longest wait for the log's lock.
pub const LOCK_WAIT: Duration = Duration::from_millis(100);
/// The syslog identifier of the anchors.
pub const ANCHOR_IDENT: &str = "gfs2-fence-audit";
/// Where anchors are sent unless `GFS2_FENCE_AUDIT_SOCKET` names another datagram socket.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Bytes read from the end of the log to find its last record: a short read first (records are a
/// few hundred bytes), a long one if no complete record ends in it.
const TAILS: [u64; 2] = [16 * 1024, 1024 * 1024];

/// How a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// In the chain.
    Chained(Link),
    /// Outside it: the lock was not had in time, or the chain's end could not be read.
    Unchained(String),
}

/// A chained log, appended to by its path.
#[derive(Debug)]
pub struct ChainedLog {
    path: PathBuf,
    lock_path: PathBuf,
}

/// The lock file's path of the log at `path`: `<log>.lock`.
pub fn lock_path_of(path: &Path) -> PathBuf {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    lock_path.into()
}

/// The mark of an open log file: inode, birth time where kept, length.
fn mark(file: &File) -> std::io::Result<FileMark> {
    let m = file.metadata()?;
    let btime_ns = m.created().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok(FileMark { ino: m.ino(), btime_ns, len: m.len() })
}

impl ChainedLog {
    /// The log at `path`, created (0600) if missing: an error here says early that records cannot go
    /// there.
    pub fn open(path: &Path) -> std::io::Result<ChainedLog> {
        drop(crate::fsio::open_append(path)?);
        Ok(ChainedLog { path: path.to_path_buf(), lock_path: lock_path_of(path) })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record: `seal(end)` gives the line sealed after the chain's `end` and the new
    /// end; `unsealed()` the line without chain fields, used when the lock is not had in time.
    pub fn append(
        &self,
        seal: impl FnOnce(&Link) -> (String, Link),
        unsealed: impl FnOnce() -> String,
    ) -> std::io::Result<Appended> {
        let held = match self.lock() {
            Ok(Some(l)) => l,
            Ok(None) => {
                write_line(&crate::fsio::open_append(&self.path)?, &unsealed())?;
                return Ok(Appended::Unchained(format!(
                    "{} was busy for {} ms",
                    self.lock_path.display(),
                    LOCK_WAIT.as_millis()
                )));
            }
            Err(e) => {
                write_line(&crate::fsio::open_append(&self.path)?, &unsealed())?;
                return Ok(Appended::Unchained(format!("cannot lock {}: {e}", self.lock_path.display())));
            }
        };
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut held.file(), &mut text);
        let mut head = Head::parse(&text);
        // The file current now, under the lock: whatever rotation happened since this process started.
        let file = crate::fsio::open_append(&self.path)?;
        let now = mark(&file)?;
        if head.truncated(&now) {
            head.note(LogNote::Truncated {
                at: crate::os::clock::rfc3339_now(),
                after_seq: head.end.as_ref().map_or(0, |e| e.seq),
                expected_bytes: head.file.map_or(0, |f| f.len),
                found_bytes: now.len,
            });
        }
        let (end, cut) = end_of(&file, now.len, head.end.clone());
        // A record cut short by a crash is ended first, so that this one starts a line of its own;
        // `verify` reports the cut one as a crash's (or a full disk's, when a note says so).
        let (line, link) = seal(&end);
        let written =
            (if cut { write_line(&file, "\n").map(drop) } else { Ok(()) }).and_then(|()| write_line(&file, &line));
        let at = match written {
            Ok(at) => at,
            Err(e) => {
                let request = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("request_id").and_then(|r| r.as_str()).map(str::to_string));
                head.note(LogNote::Short {
                    at: crate::os::clock::rfc3339_now(),
                    seq: link.seq,
                    request,
                    error: e.to_string(),
                });
                rewrite(held.file(), &head);
                return Err(e);
            }
        };
        // Cut in place between the look at its length and the write (a copytruncate's truncation
        // landing inside this append): the line went to a shorter file than the one looked at.
        let looked_at = now.len + u64::from(cut);
        if at < looked_at {
            head.note(LogNote::Truncated {
                at: crate::os::clock::rfc3339_now(),
                after_seq: end.seq,
                expected_bytes: now.len,
                found_bytes: at.saturating_sub(u64::from(cut)),
            });
        }
        let mut left = Some(FileMark { len: at + line.len() as u64, ..now });
        // Rotated between the open and the write: the line went to the moved file (which a
        // `compress` without `delaycompress` may already have read); write it again where it is current.
        if crate::fsio::open_nofollow(&self.path).and_then(|f| mark(&f)).is_ok_and(|m| m.ino != now.ino) {
            let file = crate::fsio::open_append(&self.path)?;
            let at = write_line(&file, &line)?;
            left = mark(&file).ok().map(|m| FileMark { len: at + line.len() as u64, ..m });
        }
        head.end = Some(link.clone());
        // The file and the length this record left, from the write itself, not a look afterwards: a
        // truncation right after the write is then seen by the next append.
        head.file = left;
        rewrite(held.file(), &head);
        drop(held);
        anchor(&link, &self.path);
        Ok(Appended::Chained(link))
    }

    fn lock(&self) -> crate::error::Result<Option<lock::Lock>> {
        let until = Instant::now() + LOCK_WAIT;
        loop {
            if let Some(l) = lock::try_exclusive(lock::open_lock_file(&self.lock_path)?, &self.lock_path)? {
                return Ok(Some(l));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Rewrites the lock file with `head`, in place (written over, then cut to length: on a full disk
/// the block it has is reused).
fn rewrite(lock_file: &File, head: &Head) {
    let text = head.render();
    let _ = lock_file.write_all_at(text.as_bytes(), 0).and_then(|()| lock_file.set_len(text.len() as u64));
}

/// The chain's end: the log's last complete chained record, else `kept` (the lock file's copy), else
/// the genesis; and whether the log's last record was cut short (it does not end with a newline: a
/// power cut or a full disk during the last append, or NUL bytes of a file extended but never
/// written), read from the same tail. `len` is the file's length.
fn end_of(file: &File, len: u64, kept: Option<Link>) -> (Link, bool) {
    let mut cut = false;
    for tail in TAILS {
        let start = len.saturating_sub(tail);
        let mut buf = vec![0u8; (len - start) as usize];
        if file.read_exact_at(&mut buf, start).is_err() {
            break;
        }
        if tail == TAILS[0] {
            cut = buf.last().is_some_and(|b| *b != b'\n');
        }
        let text = String::from_utf8_lossy(&buf);
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        if let Some(link) = complete.lines().rev().find_map(link_of) {
            return (link, cut);
        }
        if start == 0 {
            break;
        }
    }
    (kept.unwrap_or_else(Link::genesis), cut)
}

/// Appends `line` in one write; where it landed (its first byte's offset).
fn write_line(file: &File, line: &str) -> std::io::Result<u64> {
    crate::fsio::append_record_at(file, line.as_bytes())
}

/// Sends a record's anchor to syslog (`GFS2_FENCE_AUDIT_SOCKET` or [`SYSLOG_SOCKET`]).
pub fn anchor(link: &Link, log: &Path) {
    let socket = std::env::var_os("GFS2_FENCE_AUDIT_SOCKET").unwrap_or_else(|| SYSLOG_SOCKET.into());
    anchor_to(Path::new(&socket), link, log);
}

/// Sends a record's anchor to the datagram socket `socket`; nothing when there is none.
pub fn anchor_to(socket: &Path, link: &Link, log: &Path) {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let _ = sock.set_nonblocking(true);
    // authpriv (10) * 8 + info (6)
    let msg = format!(
        "<86>{ANCHOR_IDENT}[{}]: seq={} hash={} log={}",
        std::process::id(),
        link.seq,
        link.hash,
        log.display()
    );
    let _ = sock.send_to(msg.as_bytes(), socket);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::notes::{Head, LogNote};
    use crate::audit::{seal, verify, LogFile};

    fn append(log: &ChainedLog, n: u64) -> Appended {
        log.append(|end| sealed(n, end), || format!("{{\"n\": {n}}}\n")).unwrap()
    }

    /// A chained log in a new temporary directory (kept alive by the first value) and its path.
    fn fresh_log() -> (tempfile::TempDir, PathBuf, ChainedLog) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let log = ChainedLog::open(&path).unwrap();
        (d, path, log)
    }

    /// logrotate's copytruncate's cut: the log truncated in place to nothing.
    fn cut_to_nothing(path: &Path) {
        std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
    }

    /// What the lock file beside the log holds: its end, its file and its notes.
    fn head_of(path: &Path) -> Head {
        Head::parse(&std::fs::read_to_string(lock_path_of(path)).unwrap())
    }

    /// Record `n` sealed after `end`: its line and its link.
    fn sealed(n: u64, end: &Link) -> (String, Link) {
        let mut m = serde_json::Map::new();
        m.insert("n".into(), n.into());
        let link = seal(&mut m, end);
        (format!("{}\n", serde_json::to_string(&m).unwrap()), link)
    }

    #[test]
    fn the_chain_continues_across_processes_and_a_rotation() {
        let (d, path, log) = fresh_log();
        assert!(matches!(append(&log, 1), Appended::Chained(Link { seq: 1, .. })));
        drop(log);
        let log = ChainedLog::open(&path).unwrap();
        assert!(matches!(append(&log, 2), Appended::Chained(Link { seq: 2, .. })));
        // logrotate (create): the file moves away, a new one starts empty.
        std::fs::rename(&path, d.path().join("events.jsonl.1")).unwrap();
        let log = ChainedLog::open(&path).unwrap();
        assert!(matches!(append(&log, 3), Appended::Chained(Link { seq: 3, .. })));
        let files: Vec<LogFile> = ["events.jsonl", "events.jsonl.1"]
            .iter()
            .map(|n| LogFile { name: n.to_string(), bytes: std::fs::read(d.path().join(n)).unwrap() })
            .collect();
        let r = verify(&files, &[]);
        assert_eq!((r.records, r.broken), (3, None));
    }

    /// After a power cut cut the log's last record short, the next append starts a line of
    /// its own and chains from the last whole record: the chain verifies, with the cut reported.
    #[test]
    fn appending_after_a_crash_cut_keeps_the_chain_whole() {
        let (_dir, path, log) = fresh_log();
        append(&log, 1);
        append(&log, 2);
        let len = std::fs::metadata(&path).unwrap().len();
        drop(log);
        for tail in [&b"{\"n\":3,\"seq\":3"[..], b"\0\0\0\0"] {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(len).unwrap();
            f.write_all_at(tail, len).unwrap();
            let log = ChainedLog::open(&path).unwrap();
            assert!(matches!(append(&log, 3), Appended::Chained(Link { seq: 3, .. })));
            let r = verify(&[LogFile { name: "f".into(), bytes: std::fs::read(&path).unwrap() }], &[]);
            assert_eq!((r.records, r.crash_cuts.len(), r.broken), (3, 1, None), "{tail:?}");
        }
    }

    /// logrotate's copytruncate copies the log, then cuts it to nothing; a record appended between
    /// the two is lost. Its truncation can land anywhere in an append, here between the appender's
    /// look at the file's length and its write (the seal runs there): it is noted all the same,
    /// after the lost record, so `verify` names the break a possible copytruncate loss.
    #[test]
    fn a_truncation_inside_an_append_is_noted_after_the_record_it_loses() {
        let (d, path, log) = fresh_log();
        append(&log, 1);
        std::fs::copy(&path, d.path().join("events.jsonl.1")).unwrap();
        append(&log, 2);
        let cut = log
            .append(
                |end| {
                    cut_to_nothing(&path);
                    sealed(3, end)
                },
                || unreachable!("the lock is free"),
            )
            .unwrap();
        assert!(matches!(cut, Appended::Chained(Link { seq: 3, .. })));
        let head = head_of(&path);
        assert!(matches!(head.notes.as_slice(), [LogNote::Truncated { after_seq: 2, found_bytes: 0, .. }]), "{head:?}");
        // And one between appends: the length the last append recorded (now its write's own end,
        // not a look at the file after it) is what the next append finds the file shorter than.
        cut_to_nothing(&path);
        append(&log, 4);
        let head = head_of(&path);
        assert!(matches!(head.notes.last(), Some(LogNote::Truncated { after_seq: 3, found_bytes: 0, .. })), "{head:?}");
    }

    #[test]
    fn without_the_lock_in_time_the_record_is_still_written_unchained() {
        let (d, path, log) = fresh_log();
        append(&log, 1);
        let lock_path = d.path().join("events.jsonl.lock");
        let _held = lock::try_exclusive(lock::open_lock_file(&lock_path).unwrap(), &lock_path).unwrap().unwrap();
        assert!(matches!(append(&log, 2), Appended::Unchained(why) if why.contains("busy")));
        let r = verify(&[LogFile { name: "f".into(), bytes: std::fs::read(&path).unwrap() }], &[]);
        assert_eq!((r.records, r.unchained.len(), r.broken), (1, 1, None));
    }

    #[test]
    fn anchors_reach_the_syslog_socket() {
        let d = tempfile::tempdir().unwrap();
        let sock_path = d.path().join("log.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        anchor_to(&sock_path, &Link { seq: 7, hash: "a".repeat(64) }, Path::new("/var/log/x"));
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.starts_with("<86>gfs2-fence-audit["), "{msg}");
        assert_eq!(crate::audit::parse_anchors(&msg), [(7, "a".repeat(64))]);
    }
}
