//! Appending to the chained log (`fence-events-detailed.jsonl`), from many processes at once.
//!
//! Locks taken: an exclusive flock on `<log>.lock`, waited for at most [`LOCK_WAIT`]: auditing never
//! blocks fencing. Under the lock: the chain's end is read from the last complete record of the log
//! (or, in a fresh file after a rotation, from the copy kept in the lock file), a record cut short
//! by a crash (seen in the same read) is ended with a newline, the sealed line is appended with one
//! `write(2)`, and the new end is written into the lock file. Without the lock in
//! time the record is still appended, without chain fields (reported as unchained by `verify`),
//! and a warning says so. Neither path fsyncs: the log is as durable as it always was.
//!
//! After each chained append the record's `seq` and `hash` go to syslog (`/dev/log`, identifier
//! `gfs2-fence-audit`, facility authpriv), which journald keeps and sites forward off-host: the
//! anchors a local root cannot rewrite along with the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::chain::{link_of, Link};
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

/// A chained log, open for appending.
#[derive(Debug)]
pub struct ChainedLog {
    file: File,
    path: PathBuf,
    lock_path: PathBuf,
}

impl ChainedLog {
    /// Opens (creating 0600) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<ChainedLog> {
        let file = crate::fsio::open_append(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        Ok(ChainedLog { file, path: path.to_path_buf(), lock_path: lock_path.into() })
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
                self.write_line(&unsealed())?;
                return Ok(Appended::Unchained(format!(
                    "{} was busy for {} ms",
                    self.lock_path.display(),
                    LOCK_WAIT.as_millis()
                )));
            }
            Err(e) => {
                self.write_line(&unsealed())?;
                return Ok(Appended::Unchained(format!("cannot lock {}: {e}", self.lock_path.display())));
            }
        };
        let (end, cut) = self.end(held.file());
        // A record cut short by a crash is ended first, so that this one starts a line of its own;
        // `verify` reports the cut one as a crash's.
        if cut {
            self.write_line("\n")?;
        }
        let (line, link) = seal(&end);
        self.write_line(&line)?;
        let head = format!("seq={} hash={}\n", link.seq, link.hash);
        let _ = held.file().set_len(0).and_then(|()| held.file().write_all_at(head.as_bytes(), 0));
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

    /// The chain's end: the log's last complete chained record, else the lock file's copy, else
    /// the genesis; and whether the log's last record was cut short (it does not end with a
    /// newline: a power cut during the last append, or NUL bytes of a file extended but never
    /// written), read from the same tail.
    fn end(&self, lock_file: &File) -> (Link, bool) {
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut cut = false;
        if let Ok(reader) = self.file_for_read() {
            for tail in TAILS {
                let start = len.saturating_sub(tail);
                let mut buf = vec![0u8; (len - start) as usize];
                if reader.read_exact_at(&mut buf, start).is_err() {
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
        }
        let mut head = String::new();
        let _ = std::io::Read::read_to_string(&mut &*lock_file, &mut head);
        (super::chain::parse_anchors(&head).pop().map_or_else(Link::genesis, |(seq, hash)| Link { seq, hash }), cut)
    }

    fn file_for_read(&self) -> std::io::Result<File> {
        crate::fsio::open_nofollow(&self.path)
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        crate::fsio::append_record(&self.file, line.as_bytes())
    }
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
    use crate::audit::{seal, verify, LogFile};

    fn append(log: &ChainedLog, n: u64) -> Appended {
        log.append(
            |end| {
                let mut m = serde_json::Map::new();
                m.insert("n".into(), n.into());
                let link = seal(&mut m, end);
                (format!("{}\n", serde_json::to_string(&m).unwrap()), link)
            },
            || format!("{{\"n\": {n}}}\n"),
        )
        .unwrap()
    }

    #[test]
    fn the_chain_continues_across_processes_and_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let log = ChainedLog::open(&path).unwrap();
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

    /// #19: after a power cut cut the log's last record short, the next append starts a line of
    /// its own and chains from the last whole record: the chain verifies, with the cut reported.
    #[test]
    fn appending_after_a_crash_cut_keeps_the_chain_whole() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let log = ChainedLog::open(&path).unwrap();
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

    #[test]
    fn without_the_lock_in_time_the_record_is_still_written_unchained() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.jsonl");
        let log = ChainedLog::open(&path).unwrap();
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
