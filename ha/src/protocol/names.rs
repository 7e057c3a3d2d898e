//! Which names the spool accepts: targets, watcher ids and request file names.
//!
//! Names become parts of file names and stdin lines of fence commands, so they are restricted to
//! `[A-Za-z0-9_.-]`, never `.` or `..`, and short enough that every file name derived from them fits
//! in 255 bytes (`NAME_MAX`) in every form the spool uses: a target or node name at most
//! [`MAX_NAME`] (128) bytes, a watcher id at most [`MAX_WATCHER_ID`] (64). The longest forms, checked
//! by a test against the functions that make them: our temporary file of a v2 response
//! (`.<target>-<uuid>.json.<pid>.<uuid32>.tmp`), a quarantined v2 request's `.reason` after a name
//! collision, and a stuck claim kept in `done/` (`<uuid>.<watcher>.<attempt>.json.stuck`). Per-target
//! lock files are named by a hash, whatever the name's length.

use uuid::Uuid;

/// Longest accepted target (plug) or node name.
pub const MAX_NAME: usize = 128;

/// Longest accepted watcher id.
pub const MAX_WATCHER_ID: usize = 64;

fn fits(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` is a safe target (plug) or node name: `[A-Za-z0-9_.-]`, at most [`MAX_NAME`] bytes.
pub fn is_safe_name(name: &str) -> bool {
    fits(name, MAX_NAME)
}

/// Whether `id` is a safe watcher id: `[A-Za-z0-9_.-]`, at most [`MAX_WATCHER_ID`] bytes.
pub fn is_safe_watcher_id(id: &str) -> bool {
    fits(id, MAX_WATCHER_ID)
}

/// Parses a canonical request id (lower-case hyphenated UUID).
pub fn parse_request_id(id: &str) -> Option<Uuid> {
    let uuid = Uuid::try_parse(id).ok()?;
    (uuid.hyphenated().to_string() == id).then_some(uuid)
}

/// The request id named by a spool file name `<uuid>.json`, or `None` when the name is anything else.
pub fn request_id_of_file(file_name: &str) -> Option<&str> {
    let id = file_name.strip_suffix(".json")?;
    parse_request_id(id).map(|_| id)
}

/// What a request file's name in `requests/` says, in either generation (see [`Naming`]). Its answer
/// carries the same name; the name must agree with the content (id, and for v2 the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFile {
    /// The request id.
    pub id: String,
    /// The generation of the name.
    pub naming: Naming,
    /// The target the name carries (v2 only).
    pub target: Option<String>,
}

/// Parses `<uuid>.json` (v1: the seed's and ours) or `<target>-<uuid>.json` (v2: upstream's clients).
pub fn parse_request_file(file_name: &str) -> Option<RequestFile> {
    let stem = file_name.strip_suffix(".json")?;
    if parse_request_id(stem).is_some() {
        return Some(RequestFile { id: stem.to_string(), naming: Naming::V1, target: None });
    }
    let split = stem.len().checked_sub(37)?;
    let (target, id) = (stem.get(..split)?, stem.get(split..)?.strip_prefix('-')?);
    (is_safe_name(target) && parse_request_id(id).is_some()).then(|| RequestFile {
        id: id.to_string(),
        naming: Naming::V2,
        target: Some(target.to_string()),
    })
}

/// The naming generation of a request file and of its answer, which carries the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `<uuid>.json`: the seed's Python tools and this project's agent and watchers.
    V1,
    /// `<target>-<uuid>.json`: upstream's `fence_recorder` and `fence_dummy --type=recorder` (which
    /// write a hidden `.<name>.tmp` beside it, then rename); nnf-sos answers under the request's name,
    /// whatever it is.
    V2,
}

impl Naming {
    /// The request's (and its response's) file name.
    pub fn file_name(self, target: &str, id: &str) -> String {
        match self {
            Naming::V1 => format!("{id}.json"),
            Naming::V2 => format!("{target}-{id}.json"),
        }
    }
}

/// The agent's hold on a request it placed for a responder other than our watchers (nnf-sos, an
/// external program): `.<request file>.lock`, beside the request. Hidden and not `*.json`, so no
/// responder reads it as a request (nnf-sos takes every `*.json` file; everyone skips hidden names).
/// The agent holds its flock from before the request exists until it exits, and removes it on every
/// way out but SIGKILL: a request beside a free one was left by a killed agent (`agent::abandoned`).
pub fn holder_lock_name(request_file: &str) -> String {
    format!(".{request_file}.lock")
}

/// The request file a [`holder_lock_name`] names, when `name` is one.
pub fn request_of_holder_lock(name: &str) -> Option<&str> {
    let file = name.strip_prefix('.')?.strip_suffix(".lock")?;
    parse_request_file(file).map(|_| file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_locks_name_their_request_and_nothing_else() {
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        for naming in [Naming::V1, Naming::V2] {
            let file = naming.file_name("cn-2", id);
            let lock = holder_lock_name(&file);
            assert_eq!(request_of_holder_lock(&lock), Some(file.as_str()));
            assert!(parse_request_file(&lock).is_none(), "never read as a request");
        }
        for other in [".x.lock", "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c.lock", ".cn-2.json.tmp", "a.json"] {
            assert_eq!(request_of_holder_lock(other), None, "{other}");
        }
    }

    #[test]
    fn names() {
        for ok in ["node2", "compute-node-3", "plug_7", "a.b", "x"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a b", "a\nb", "nöde", &"x".repeat(MAX_NAME + 1)] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name(&"x".repeat(MAX_NAME)));
        assert!(
            is_safe_watcher_id(&"w".repeat(MAX_WATCHER_ID)) && !is_safe_watcher_id(&"w".repeat(MAX_WATCHER_ID + 1))
        );
    }

    #[test]
    fn every_derived_file_name_fits_in_name_max() {
        const NAME_MAX: usize = 255;
        let (target, watcher) = ("t".repeat(MAX_NAME), "w".repeat(MAX_WATCHER_ID));
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        let uuid32 = "0".repeat(32);
        let pid_max = "4194304";
        let mut forms = Vec::new();
        for naming in [Naming::V1, Naming::V2] {
            let file = naming.file_name(&target, id);
            // Upstream's v2 clients write `.<name>.tmp` beside the request.
            forms.push(format!(".{file}.tmp"));
            forms.push(crate::fsio::temp_name(&file, pid_max.parse().unwrap(), &uuid32));
            forms.push(crate::fsio::temp_name(&format!("{file}.reason"), pid_max.parse().unwrap(), &uuid32));
            // Quarantine and done/ keep colliding names with a `.<uuid32>` suffix (fsio::move_into).
            forms.push(format!("{file}.{uuid32}.reason"));
            forms.push(format!("{id}.superseded.{watcher}.{}.json", u32::MAX));
            forms.push(holder_lock_name(&file));
            forms.push(file);
        }
        let claim =
            ClaimName { id: id.into(), watcher: watcher.clone(), attempt: u32::MAX, naming: Naming::V2 }.to_string();
        forms.push(format!("{claim}.stuck"));
        forms.push(format!("{claim}.{uuid32}"));
        forms.push(format!("{watcher}.lock"));
        forms.push(format!("{}{watcher}", crate::cluster::members::JOIN_PREFIX));
        for f in &forms {
            assert!(f.len() <= NAME_MAX, "{} bytes: {f}", f.len());
        }
    }

    #[test]
    fn request_file_names() {
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        assert_eq!(request_id_of_file(&format!("{id}.json")), Some(id));
        assert_eq!(request_id_of_file(id), None);
        assert_eq!(request_id_of_file(&format!("{}.json", id.to_uppercase())), None);
        assert_eq!(request_id_of_file("../x.json"), None);
        assert_eq!(request_id_of_file(&format!(".{id}.json")), None);
        assert_eq!(Naming::V1.file_name("n1", id), format!("{id}.json"));
        assert_eq!(Naming::V2.file_name("n1", id), format!("n1-{id}.json"));
        let v2 = parse_request_file(&format!("compute-1.rack-{id}.json")).unwrap();
        assert_eq!((v2.id.as_str(), v2.naming, v2.target.as_deref()), (id, Naming::V2, Some("compute-1.rack")));
        assert_eq!(parse_request_file(&format!("{id}.json")).unwrap().naming, Naming::V1);
        for bad in [
            format!("-{id}.json"),
            format!("a b-{id}.json"),
            format!("n1_{id}.json"),
            format!("n1-{id}"),
            "x.json".into(),
        ] {
            assert_eq!(parse_request_file(&bad), None, "{bad}");
        }
    }
}

/// The name of a claimed request: `<id>.<watcher>.<attempt>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimName {
    /// The request id.
    pub id: String,
    /// The claiming watcher.
    pub watcher: String,
    /// Which execution attempt (1-based).
    pub attempt: u32,
    /// The generation of the request's own name, kept so that its answer (and a requeued copy) carry
    /// the name its client reads: `.v2` before `.json` for v2 (unambiguous: an attempt is digits).
    pub naming: Naming,
}

impl ClaimName {
    /// Parses a file name in `claimed/`.
    pub fn parse(file_name: &str) -> Option<ClaimName> {
        let stem = file_name.strip_suffix(".json")?;
        let (stem, naming) = match stem.strip_suffix(".v2") {
            Some(s) => (s, Naming::V2),
            None => (stem, Naming::V1),
        };
        let (id, rest) = (stem.get(..36)?, stem.get(36..)?.strip_prefix('.')?);
        parse_request_id(id)?;
        let (watcher, attempt) = rest.rsplit_once('.')?;
        if !is_safe_name(watcher) {
            return None;
        }
        Some(ClaimName { id: id.to_string(), watcher: watcher.to_string(), attempt: attempt.parse().ok()?, naming })
    }
}

impl std::fmt::Display for ClaimName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = if self.naming == Naming::V2 { ".v2" } else { "" };
        write!(f, "{}.{}.{}{generation}.json", self.id, self.watcher, self.attempt)
    }
}

#[cfg(test)]
mod claim_name_tests {
    use super::*;

    #[test]
    fn claim_names_round_trip_even_with_dots_in_watcher_ids() {
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        for naming in [Naming::V1, Naming::V2] {
            let c = ClaimName { id: id.into(), watcher: "rabbit.w-1".into(), attempt: 3, naming };
            assert_eq!(ClaimName::parse(&c.to_string()), Some(c));
        }
        let odd = ClaimName { id: id.into(), watcher: "w.v2".into(), attempt: 1, naming: Naming::V1 };
        assert_eq!(ClaimName::parse(&odd.to_string()), Some(odd), "a watcher id ending in .v2 stays v1");
        assert_eq!(ClaimName::parse("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c.json"), None);
        assert_eq!(ClaimName::parse("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c.w.x.json"), None);
    }
}
