//! The spool directory: where it is, what it contains, and whether it can be trusted.
//!
//! Layout under the base (default `/run/gfs2-fencing`), Maildir style:
//! `tmp/` files being written · `requests/` pending · `claimed/` being executed · `responses/` answers ·
//! `done/` finished requests and superseded responses · `quarantine/` bad input with `.reason` files ·
//! `waiting/` one lock per waiting agent · `members/` one lock and heartbeat per live watcher ·
//! `attempts/` one line per execution · `locks/` one lock per target being fenced · `waivers/` the
//! watchers' own marks of requests re-dispatched from a stuck watcher.
//!
//! Trust: every directory is created 0700 and must be a real directory (not a symlink) owned by the
//! effective user and writable by nobody else, on a local file system where flock is a node-local lock.
//! Anything else is refused with a message saying what to fix. No locks are taken here.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{HaError, Result};
use crate::os::setting;

/// The spool format this build speaks: the names of files and locks and the moves between
/// directories that watchers of one spool must agree on (PROTOCOL.md, "Versions"). Each watcher's
/// heartbeat carries it; a heartbeat without it speaks format 1. Requests and responses keep their
/// own `version` (1), which older watchers check strictly.
/// - 1: per-target locks `locks/<requested name>.lock`.
/// - 2: per-key locks `locks/<sha256 of the exclusion key>.lock` (device and plug), an earlier claim
///   of a key served before the next, coalescing only the run of one action.
pub const SPOOL_FORMAT: u32 = 2;

/// Where the spool is when nothing says otherwise (the original used `/var/run/gfs2-fencing`, and
/// `/var/run` is a link to `/run`).
pub const DEFAULT_BASE: &str = "/run/gfs2-fencing";

/// One of the spool's sub-directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Files being written.
    Tmp,
    /// Pending requests.
    Requests,
    /// Requests being executed.
    Claimed,
    /// Responses.
    Responses,
    /// Finished requests and superseded responses.
    Done,
    /// Bad input, each file with a `.reason`.
    Quarantine,
    /// Agents' waiting locks.
    Waiting,
    /// Watchers' member locks and heartbeats.
    Members,
    /// Per-request execution records.
    Attempts,
    /// Per-target locks, held through each execution against the target.
    Locks,
    /// Watcher-owned markers `<request_id>`: a request re-dispatched from a watcher stuck in
    /// uninterruptible sleep runs without its target's lock. Never read from request files.
    Waivers,
}

impl Dir {
    /// The directory's name under the base.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Tmp => "tmp",
            Dir::Requests => "requests",
            Dir::Claimed => "claimed",
            Dir::Responses => "responses",
            Dir::Done => "done",
            Dir::Quarantine => "quarantine",
            Dir::Waiting => "waiting",
            Dir::Members => "members",
            Dir::Attempts => "attempts",
            Dir::Locks => "locks",
            Dir::Waivers => "waivers",
        }
    }
}

/// What a watcher creates and uses.
pub const WATCHER_DIRS: [Dir; 11] = [
    Dir::Tmp,
    Dir::Requests,
    Dir::Claimed,
    Dir::Responses,
    Dir::Done,
    Dir::Quarantine,
    Dir::Waiting,
    Dir::Members,
    Dir::Attempts,
    Dir::Locks,
    Dir::Waivers,
];

/// What an agent creates and uses (never `members/`, which belongs to the watchers).
pub const AGENT_DIRS: [Dir; 4] = [Dir::Tmp, Dir::Requests, Dir::Responses, Dir::Waiting];

/// A spool at a base directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    base: PathBuf,
}

impl Spool {
    /// A spool at `base` (nothing is checked yet).
    pub fn new(base: impl Into<PathBuf>) -> Spool {
        Spool { base: base.into() }
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// A sub-directory.
    pub fn dir(&self, d: Dir) -> PathBuf {
        self.base.join(d.name())
    }

    /// `requests/<id>.json`.
    pub fn request_path(&self, id: &str) -> PathBuf {
        self.dir(Dir::Requests).join(format!("{id}.json"))
    }

    /// `responses/<id>.json`.
    pub fn response_path(&self, id: &str) -> PathBuf {
        self.dir(Dir::Responses).join(format!("{id}.json"))
    }

    /// `waiting/<id>.lock`, held by the agent while it waits.
    pub fn waiting_lock(&self, id: &str) -> PathBuf {
        self.dir(Dir::Waiting).join(format!("{id}.lock"))
    }

    /// `waiting/<id>.fifo`, the agent's wake-up FIFO (see `fsio::wake`).
    pub fn waiting_fifo(&self, id: &str) -> PathBuf {
        self.dir(Dir::Waiting).join(format!("{id}.fifo"))
    }

    /// `locks/<hash>.lock`: the lock of one exclusion key (the device and plug a fence acts upon).
    /// Named by the key's SHA-256, so that its length never depends on the names inside.
    pub fn target_lock(&self, key: &str) -> PathBuf {
        self.dir(Dir::Locks).join(format!("{}.lock", hex_digest(key)))
    }

    /// `locks/device-<hash>.<slot>.lock`: slot `slot` of a fence device that takes a limited number of
    /// sessions at once (`sessions` in the watchers' configuration): an execution on that device holds
    /// one slot, whichever watcher runs it. Named by the device key's SHA-256.
    pub fn device_slot(&self, device: &str, slot: u32) -> PathBuf {
        self.dir(Dir::Locks).join(format!("device-{}.{slot}.lock", hex_digest(device)))
    }

    /// `locks/<requested name>.lock`: the per-target lock of spool format 1, which watchers of that
    /// format take before every execution. Held beside [`Spool::target_lock`] through every execution
    /// while such watchers may share the spool (an upgrade, a downgrade, a frozen one that thaws).
    pub fn format1_target_lock(&self, node: &str) -> PathBuf {
        self.dir(Dir::Locks).join(format!("{node}.lock"))
    }

    /// `waivers/<id>`: a watcher's mark that request `id` runs without its target's lock.
    pub fn waiver(&self, id: &str) -> PathBuf {
        self.dir(Dir::Waivers).join(id)
    }

    /// Creates what is missing of the base and `dirs` (0700), then checks all of them and the file
    /// system. The base's parent must exist.
    pub fn prepare(&self, dirs: &[Dir]) -> Result<()> {
        ensure_private_dir(&self.base, true)?;
        check_local(&self.base)?;
        for d in dirs {
            ensure_private_dir(&self.dir(*d), true)?;
        }
        Ok(())
    }

    /// Checks the base and those of `dirs` that exist, creating nothing. Missing ones are returned.
    pub fn inspect(&self, dirs: &[Dir]) -> Result<Vec<Dir>> {
        ensure_private_dir(&self.base, false)?;
        check_local(&self.base)?;
        let mut missing = Vec::new();
        for d in dirs {
            let p = self.dir(*d);
            if p.symlink_metadata().is_ok() {
                ensure_private_dir(&p, false)?;
            } else {
                missing.push(*d);
            }
        }
        Ok(missing)
    }
}

/// Finds the spool base. Precedence: the option, then the environment ([`setting::SPOOL_DIR`]:
/// `GFS2_FENCE_SPOOL_DIR`, or its aliases `GFS2_FENCING_DIR`, the seed's `REQUEST_DIR` and
/// `RESPONSE_DIR` naming its subdirectories; all that are set must agree), then [`DEFAULT_BASE`].
pub fn resolve_base(option: Option<&str>, env: impl Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let from_env = setting::SPOOL_DIR.lookup(&env)?;
    let base = match option.filter(|o| !o.is_empty()) {
        Some(o) => PathBuf::from(o),
        None => from_env.map_or_else(|| PathBuf::from(DEFAULT_BASE), |f| PathBuf::from(f.value)),
    };
    if !base.is_absolute() {
        return Err(HaError::Config(format!(
            "spool directory {:?} is not an absolute path",
            base.display().to_string()
        )));
    }
    Ok(base)
}

/// Makes sure `path` is a directory this user owns and nobody else can write, creating it (0700)
/// when `create` is set and it is missing.
pub fn ensure_private_dir(path: &Path, create: bool) -> Result<()> {
    let meta = match path.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(HaError::io("create directory", path, e)),
            }
            path.symlink_metadata().map_err(HaError::at("stat", path))?
        }
        Err(e) => return Err(HaError::io("stat", path, e)),
    };
    let unsafe_dir = |why: String, fix: String| HaError::Unsafe { path: path.to_path_buf(), why, fix };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(
            "it is a symbolic link".into(),
            "replace it with a real directory (mkdir -m 0700)".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into(), "remove it or choose another path".into()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(unsafe_dir(
            format!("it is owned by uid {}, not by this process's uid {euid}", meta.uid()),
            ownership_fix(path, meta.uid(), euid),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(
            format!("it is group- or world-writable (mode {mode:04o})"),
            format!("chmod 0700 {}", path.display()),
        ));
    }
    Ok(())
}

/// What to do about a directory owned by `owner` found by a process of `euid`. Root's directories
/// are the daemons' (the watchers and Pacemaker run as root): one run by hand as another user must
/// not take them over, which would make the daemons refuse them in turn.
fn ownership_fix(path: &Path, owner: u32, euid: u32) -> String {
    match (owner, euid) {
        (0, _) => format!(
            "run this as root, as Pacemaker and the watchers do, or give it a directory of its own (not {})",
            path.display()
        ),
        (_, 0) => format!("chown root {} (the daemons run as root)", path.display()),
        (_, _) => format!("run this as uid {owner}, or give it a directory of its own"),
    }
}

/// Names file systems by statfs magic: `Ok` for local ones where flock is a real node-local lock,
/// `Err(name)` for everything else (network, cluster, FUSE, unknown): fail closed.
pub fn classify_fs(f_type: i64) -> std::result::Result<&'static str, &'static str> {
    match f_type {
        0xEF53 => Ok("ext2/3/4"),
        0x5846_5342 => Ok("xfs"),
        0x9123_683E => Ok("btrfs"),
        0x0102_1994 => Ok("tmpfs"),
        0x8584_58F6 => Ok("ramfs"),
        0x794C_7630 => Ok("overlayfs"),
        0x2FC1_2FC1 => Ok("zfs"),
        0xF2F5_2010 => Ok("f2fs"),
        0xCA45_1A4E => Ok("bcachefs"),
        0x6969 => Err("NFS"),
        0x517B => Err("SMB"),
        0xFF53_4D42 => Err("CIFS"),
        0xFE53_4D42 => Err("SMB2"),
        0x00C3_6400 => Err("CephFS"),
        0x6573_5546 => Err("FUSE"),
        0x0102_1997 => Err("9p"),
        0x0116_1970 => Err("GFS2 (flock is cluster-wide there)"),
        0x7461_636F => Err("OCFS2 (flock is cluster-wide there)"),
        0x0BD0_0BD0 => Err("Lustre"),
        0x5346_414F => Err("AFS"),
        0x4750_4653 => Err("GPFS"),
        0x1983_0326 => Err("BeeGFS"),
        _ => Err("an unrecognised file system"),
    }
}

/// Refuses a spool whose file system is not known to be local.
pub fn check_local(path: &Path) -> Result<()> {
    fs_name(path).map(drop)
}

/// The name of the local file system `path` is on; a non-local or unknown one is an error.
pub fn fs_name(path: &Path) -> Result<&'static str> {
    let st = nix::sys::statfs::statfs(path).map_err(|e| HaError::errno("statfs", path, e))?;
    let f_type = st.filesystem_type().0 as i64;
    classify_fs(f_type).map_err(|fs_name| HaError::NotLocal { path: path.to_path_buf(), fs_type: f_type, fs_name })
}

/// A key's SHA-256 in hex: a file name whose length never depends on the names inside the key.
fn hex_digest(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn base_precedence_option_env_original_default() {
        assert_eq!(resolve_base(None, env(&[])).unwrap(), PathBuf::from(DEFAULT_BASE));
        assert_eq!(resolve_base(None, env(&[("REQUEST_DIR", "/x/requests")])).unwrap(), PathBuf::from("/x"));
        let agree = env(&[("REQUEST_DIR", "/y/requests"), ("GFS2_FENCING_DIR", "/y"), ("GFS2_FENCE_SPOOL_DIR", "/y/")]);
        assert_eq!(resolve_base(None, agree).unwrap(), PathBuf::from("/y"));
        let apart = resolve_base(None, env(&[("REQUEST_DIR", "/x/requests"), ("GFS2_FENCING_DIR", "/y")])).unwrap_err();
        assert!(apart.to_string().contains("GFS2_FENCING_DIR=\"/y\" and REQUEST_DIR=\"/x/requests\""), "{apart}");
        assert_eq!(resolve_base(Some("/z"), env(&[("GFS2_FENCING_DIR", "/y")])).unwrap(), PathBuf::from("/z"));
        assert!(resolve_base(Some("/z"), env(&[("RESPONSE_DIR", "/z/responses")])).is_ok());
        let err = resolve_base(Some("/z"), env(&[("RESPONSE_DIR", "/elsewhere")])).unwrap_err();
        assert!(err.to_string().contains("RESPONSE_DIR=\"/elsewhere\""), "{err}");
        assert!(resolve_base(Some("relative"), env(&[])).is_err());
        assert!(resolve_base(None, env(&[("REQUEST_DIR", "/x/reqs")])).is_err());
    }

    #[test]
    fn unsafe_directories_are_refused_with_a_fix() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::new(d.path().join("spool"));
        s.prepare(&WATCHER_DIRS).unwrap();
        let mode = s.dir(Dir::Requests).symlink_metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(s.dir(Dir::Requests), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = s.inspect(&WATCHER_DIRS).unwrap_err().to_string();
        assert!(err.contains("world-writable") && err.contains("chmod 0700"), "{err}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(s.base(), &link).unwrap();
        assert!(Spool::new(&link).inspect(&[]).unwrap_err().to_string().contains("symbolic link"));
    }

    #[test]
    fn only_local_file_systems_pass() {
        assert!(classify_fs(0xEF53).is_ok());
        assert!(classify_fs(0x0102_1994).is_ok());
        assert_eq!(classify_fs(0x6969), Err("NFS"));
        assert!(classify_fs(0x1234).is_err());
        check_local(Path::new("/tmp")).unwrap();
        assert!(check_local(Path::new("/proc")).is_err());
    }
}
