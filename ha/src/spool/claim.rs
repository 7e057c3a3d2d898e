//! Claiming a request: the step that makes one watcher, and only one, responsible for it.
//!
//! Protocol (all I/O through `fsio`):
//! 1. Open `requests/<id>.json` without following symlinks and take `flock(LOCK_EX|LOCK_NB)` on it.
//!    Held by another: someone else is claiming it.
//! 2. Check the name still refers to the locked file (it may have been claimed and replaced).
//! 3. Refuse a file not owned by the spool's owner, writable by group or others, or with more than
//!    one link (quarantined, answered `rejected`). Read and parse it under the lock. A file that does not parse yet and is younger than
//!    [`IN_PLACE_GRACE`] may still be being written in place by the original agent: leave it. Any
//!    other bad file is moved to `quarantine/` with a `.reason` file: never dropped.
//! 4. Move it with `RENAME_NOREPLACE` to `claimed/<id>.<watcher>.<attempt>.json` (`….v2.json` for a
//!    request named `<target>-<id>.json`, whose content must name that target). The flock moves
//!    with the file and is the lease: held for the whole execution, dropped by the kernel if the
//!    holder dies. A failed move means another watcher won.
//!
//! Locks taken: the request file's flock (kept in the returned [`Claimed`]).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::layout::{Dir, Spool};
use crate::error::{HaError, Result};
use crate::fsio::lock::{self, Lock};
use crate::fsio::{self, Moved, ReadError};
use crate::protocol::names::{parse_request_file, ClaimName, RequestFile};
use crate::protocol::request::{Rejection, Request};

/// How long a request file that does not parse is assumed to be still being written in place.
pub const IN_PLACE_GRACE: Duration = Duration::from_secs(5);

/// A request this watcher holds the lease on.
#[derive(Debug)]
pub struct Claimed {
    /// The lease: the flock on the claimed file.
    pub lease: Lock,
    /// The claimed file's name.
    pub name: ClaimName,
    /// The parsed request.
    pub request: Request,
    /// The file's bytes, to requeue it unchanged.
    pub bytes: Vec<u8>,
}

impl Claimed {
    /// Where the claimed file is.
    pub fn path(&self, spool: &Spool) -> PathBuf {
        spool.dir(Dir::Claimed).join(self.name.to_string())
    }

    /// The request's own file name, which its answer carries too (`<id>.json`, or v2's
    /// `<target>-<id>.json`).
    pub fn file_name(&self) -> String {
        self.name.naming.file_name(&self.request.target_node, &self.name.id)
    }

    /// Whether the claim is still ours: the claimed name still refers to the file we hold locked.
    /// A watcher that was frozen and presumed dead finds it gone, and must not answer.
    pub fn still_ours(&self, spool: &Spool) -> bool {
        same_file(self.lease.file(), &self.path(spool))
    }
}

/// A quarantined request, with what can be read of it (to answer `rejected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The file's name in `requests/`.
    pub file: String,
    /// Where it went.
    pub moved_to: PathBuf,
    /// Why.
    pub reason: String,
    /// The request id, when the file name carries a valid one.
    pub id: Option<String>,
    /// `target_node`, when readable.
    pub target: Option<String>,
    /// `action`, when readable.
    pub action: Option<String>,
}

/// The result of one claim attempt.
#[derive(Debug)]
pub enum Claim {
    /// Ours now.
    Claimed(Box<Claimed>),
    /// Another watcher holds or took it, or it is gone.
    Busy,
    /// Does not parse yet but may still be being written: try again later.
    NotReady,
    /// A writer's hidden temporary file (`.name`): not a request.
    Skipped,
    /// Bad input, moved to `quarantine/`.
    Quarantined(Quarantined),
    /// Already answered (`responses/<its name>` holds a real answer to it): retired to `done/`
    /// without running. A power cut on a disk spool can lose the move that retired a request after
    /// its answer was made durable; a request placed again after its answer is the same case.
    Answered(String),
}

fn same_file(f: &std::fs::File, path: &Path) -> bool {
    match (f.metadata(), path.symlink_metadata()) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

fn field(bytes: &[u8], key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get(key)?.as_str().map(str::to_string)
}

/// Tries to claim `requests/<file_name>` for `watcher_id`: the steps of the module's doc, in order.
pub fn try_claim(spool: &Spool, file_name: &str, watcher_id: &str) -> Result<Claim> {
    if file_name.starts_with('.') {
        return Ok(Claim::Skipped);
    }
    let path = spool.dir(Dir::Requests).join(file_name);
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Claim::Busy),
        Err(e) => return Err(HaError::io("stat", &path, e)),
    };
    let c = Candidate { spool, file_name, path, meta, named: parse_request_file(file_name) };
    let id = match c.screen()? {
        Ok(id) => id,
        Err(end) => return Ok(end),
    };
    let Some(lease) = c.lease()? else {
        return Ok(Claim::Busy);
    };
    let (request, bytes) = match c.read(&lease, &id)? {
        Ok(read) => read,
        Err(end) => return Ok(end),
    };
    if let Some(answered) = c.retire_if_answered(&id)? {
        return Ok(answered);
    }
    c.take(lease, request, bytes, watcher_id)
}

/// A file in `requests/` on its way to being claimed. Each step returns `Err(claim)` (inside the
/// I/O result) when the attempt ends there.
struct Candidate<'a> {
    spool: &'a Spool,
    file_name: &'a str,
    path: PathBuf,
    /// As stat'ed before the lock (not followed: a symlink is seen as one).
    meta: std::fs::Metadata,
    named: Option<RequestFile>,
}

impl Candidate<'_> {
    /// Quarantines the file for `reason`, answering with what can be read of `bytes`.
    fn reject(&self, reason: Rejection, bytes: &[u8]) -> Result<Claim> {
        quarantine(self.spool, &self.path, &reason.to_string()).map(|moved| match moved {
            Some(moved_to) => Claim::Quarantined(Quarantined {
                file: self.file_name.to_string(),
                moved_to,
                reason: reason.to_string(),
                id: self.named.as_ref().map(|n| n.id.clone()),
                target: field(bytes, "target_node"),
                action: field(bytes, "action"),
            }),
            None => Claim::Busy,
        })
    }

    /// A regular file under a request's name: its id.
    fn screen(&self) -> Result<std::result::Result<String, Claim>> {
        let ft = self.meta.file_type();
        let refused = if ft.is_symlink() {
            Rejection::NotRegular("symbolic link")
        } else if !ft.is_file() {
            Rejection::NotRegular(if ft.is_dir() { "directory" } else { "special file" })
        } else if let Some(named) = &self.named {
            return Ok(Ok(named.id.clone()));
        } else {
            Rejection::BadFileName(self.file_name.to_string())
        };
        self.reject(refused, b"").map(Err)
    }

    /// Step 1 and 2: the file opened without following symlinks and locked, still under its name.
    /// `None`: another watcher holds or took it.
    fn lease(&self) -> Result<Option<Lock>> {
        let Ok(file) = fsio::open_nofollow(&self.path) else {
            return Ok(None);
        };
        Ok(lock::try_exclusive(file, &self.path)?.filter(|lease| same_file(lease.file(), &self.path)))
    }

    /// Step 3: the locked file trusted, read and parsed, its content agreeing with its name.
    fn read(&self, lease: &Lock, id: &str) -> Result<std::result::Result<(Request, Vec<u8>), Claim>> {
        // Only what this user wrote and nobody else can change is executed: the directory checks do not
        // cover a file planted (or hard-linked) by another user with write access to requests/.
        match untrusted(lease.file(), &self.path)? {
            // A writer without renameat2 places with link + unlink: two links for a moment.
            Some(Untrust::Links(_)) if young(&self.meta) => return Ok(Err(Claim::NotReady)),
            Some(why) => return self.reject(Rejection::Untrusted(why.to_string()), b"").map(Err),
            None => {}
        }
        let bytes = match fsio::read_file_capped(lease.file(), &self.path, fsio::MAX_SPOOL_FILE) {
            Ok(b) => b,
            Err(ReadError::TooLarge { limit }) => return self.reject(Rejection::TooLarge(limit), b"").map(Err),
            Err(ReadError::NotRegular(what)) => return self.reject(Rejection::NotRegular(what), b"").map(Err),
            Err(ReadError::Gone) => return Ok(Err(Claim::Busy)),
            Err(ReadError::Io(e)) => return Err(e),
        };
        let file = self.file_name.to_string();
        let refused = match Request::parse(&bytes) {
            Ok(r) if r.request_id != id => Rejection::NameMismatch { id: r.request_id, file },
            // A v2 client trusts only the file name: a request whose content names another node than its
            // name would be answered for the wrong node.
            Ok(r) if self.named.as_ref().and_then(|n| n.target.as_deref()).is_some_and(|t| t != r.target_node) => {
                Rejection::TargetMismatch { target: r.target_node, file }
            }
            Ok(r) => return Ok(Ok((r, bytes))),
            Err(Rejection::BadJson(_)) if young(&self.meta) => return Ok(Err(Claim::NotReady)),
            Err(r) => r,
        };
        self.reject(refused, &bytes).map(Err)
    }

    /// An answered request is never executed again (the answer is the durable record; the move that
    /// retired its request may not have been): retired to `done/`.
    fn retire_if_answered(&self, id: &str) -> Result<Option<Claim>> {
        let answer = self.spool.dir(Dir::Responses).join(self.file_name);
        if answer.symlink_metadata().is_err() || crate::protocol::response::not_an_answer(&answer, id).is_some() {
            return Ok(None);
        }
        fsio::move_into(&self.path, &self.spool.dir(Dir::Done), &format!("{id}.answered.json"))?;
        Ok(Some(Claim::Answered(id.to_string())))
    }

    /// Step 4: the no-replace move to `claimed/`, which the lease follows.
    fn take(self, mut lease: Lock, request: Request, bytes: Vec<u8>, watcher_id: &str) -> Result<Claim> {
        let id = request.request_id.clone();
        let name = ClaimName {
            attempt: crate::spool::attempts::count(self.spool, &id)? + 1,
            id,
            watcher: watcher_id.to_string(),
            naming: self.named.as_ref().map_or(crate::protocol::names::Naming::V1, |n| n.naming),
        };
        let dest = self.spool.dir(Dir::Claimed).join(name.to_string());
        match fsio::move_noreplace(&self.path, &dest)? {
            Moved::Done => {
                lease.moved_to(dest);
                Ok(Claim::Claimed(Box::new(Claimed { lease, name, request, bytes })))
            }
            Moved::SourceGone | Moved::DestinationExists => Ok(Claim::Busy),
        }
    }
}

/// Why a request file cannot be trusted.
enum Untrust {
    /// Owned by `(uid, euid)`.
    Owner(u32, u32),
    /// Writable by group or others: its mode.
    Mode(u32),
    /// More than one link.
    Links(u64),
}

impl std::fmt::Display for Untrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrust::Owner(uid, euid) => write!(f, "owned by uid {uid}, not by the spool's owner {euid}"),
            Untrust::Mode(mode) => write!(f, "writable by group or others (mode {mode:04o})"),
            Untrust::Links(n) => write!(f, "{n} links to it (a hard link from elsewhere)"),
        }
    }
}

/// Why an open request file cannot be trusted, if it cannot.
fn untrusted(f: &std::fs::File, path: &Path) -> Result<Option<Untrust>> {
    let meta = f.metadata().map_err(HaError::at("fstat", path))?;
    let euid = nix::unistd::geteuid().as_raw();
    Ok(if meta.uid() != euid {
        Some(Untrust::Owner(meta.uid(), euid))
    } else if meta.mode() & 0o022 != 0 {
        Some(Untrust::Mode(meta.mode() & 0o7777))
    } else if meta.nlink() != 1 {
        Some(Untrust::Links(meta.nlink()))
    } else {
        None
    })
}

fn young(meta: &std::fs::Metadata) -> bool {
    meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).is_none_or(|age| age < IN_PLACE_GRACE)
}

/// Moves `from` (a file in `requests/`, `claimed/` or `responses/`) to `quarantine/` under a unique
/// name and writes `<name>.reason` beside it. `Ok(None)`: the file was already gone.
pub fn quarantine(spool: &Spool, from: &Path, reason: &str) -> Result<Option<PathBuf>> {
    let file_name = from.file_name().map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
    let file_name = file_name.as_str();
    let Some(dest) = fsio::move_into(from, &spool.dir(Dir::Quarantine), file_name)? else {
        return Ok(None);
    };
    let mut reason_path = dest.clone().into_os_string();
    reason_path.push(".reason");
    fsio::write_new(&spool.dir(Dir::Tmp), Path::new(&reason_path), format!("{reason}\n").as_bytes())?;
    tracing::warn!(file = %from.display(), to = %dest.display(), "quarantined: {reason}");
    Ok(Some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::layout::WATCHER_DIRS;

    const ID: &str = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";

    fn spool() -> (tempfile::TempDir, Spool) {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path().join("s"));
        s.prepare(&WATCHER_DIRS).unwrap();
        (d, s)
    }

    fn good() -> String {
        format!(r#"{{"request_id":"{ID}","timestamp":"t","action":"off","target_node":"n1"}}"#)
    }

    #[test]
    fn exactly_one_claim_wins_and_holds_the_lease() {
        let (_d, s) = spool();
        std::fs::write(s.request_path(ID), good()).unwrap();
        let Claim::Claimed(c) = try_claim(&s, &format!("{ID}.json"), "w1").unwrap() else { panic!() };
        assert!(matches!(try_claim(&s, &format!("{ID}.json"), "w2").unwrap(), Claim::Busy));
        assert_eq!(c.name.to_string(), format!("{ID}.w1.1.json"));
        assert!(c.still_ours(&s));
        assert_eq!(lock::probe(&c.path(&s)).unwrap(), lock::LockState::Held);
        drop(c);
        assert_eq!(lock::probe(&s.dir(Dir::Claimed).join(format!("{ID}.w1.1.json"))).unwrap(), lock::LockState::Free);
    }

    #[test]
    fn bad_files_are_quarantined_with_reasons_and_young_partial_files_wait() {
        let (_d, s) = spool();
        std::fs::write(s.request_path(ID), "{\"request_id\":").unwrap();
        assert!(matches!(try_claim(&s, &format!("{ID}.json"), "w").unwrap(), Claim::NotReady));
        std::fs::write(s.dir(Dir::Requests).join("evil.json"), good()).unwrap();
        let Claim::Quarantined(q) = try_claim(&s, "evil.json", "w").unwrap() else { panic!() };
        assert!(q.reason.contains("not <request-uuid>.json"));
        let reason = std::fs::read_to_string(s.dir(Dir::Quarantine).join("evil.json.reason")).unwrap();
        assert_eq!(reason.trim(), q.reason);
        let other = "1b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        std::fs::write(s.request_path(other), good()).unwrap();
        let Claim::Quarantined(q) = try_claim(&s, &format!("{other}.json"), "w").unwrap() else { panic!() };
        assert!(q.reason.contains("does not match"), "{}", q.reason);
        assert_eq!(q.target.as_deref(), Some("n1"));
        std::os::unix::fs::symlink("/etc/passwd", s.dir(Dir::Requests).join("x.json")).unwrap();
        assert!(matches!(try_claim(&s, "x.json", "w").unwrap(), Claim::Quarantined(_)));
        assert!(matches!(try_claim(&s, ".tmp-file", "w").unwrap(), Claim::Skipped));
    }
}
