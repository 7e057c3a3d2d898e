//! Which names the spool accepts: targets, watcher ids and request file names.
//!
//! Names become parts of file names and stdin lines of fence commands, so they are restricted to what
//! Pacemaker itself allows for node names: `[A-Za-z0-9_.-]`, never `.` or `..`, at most 253 bytes.

use uuid::Uuid;

/// Longest accepted target or watcher name (a DNS name's limit).
pub const MAX_NAME: usize = 253;

/// Whether `name` is a safe target (plug), node or watcher name.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
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

/// The naming generation of a request file and of its answer, which carries the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `<uuid>.json`: the seed's Python tools and this project's agent and watchers.
    V1,
    /// `<target>-<uuid>.json`: upstream's `fence_recorder` and `fence_dummy --type=recorder`; nnf-sos
    /// answers under the request's name, whatever it is. Written as the hidden `.<name>.tmp` beside
    /// it, then renamed.
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

    /// The hidden temporary name a writer of this generation uses beside `file_name`: every reader
    /// of the protocol skips names starting with `.`.
    pub fn temp_name(file_name: &str) -> String {
        format!(".{file_name}.tmp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["node2", "compute-node-3", "plug_7", "a.b", "x"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../etc", "a/b", "a b", "a\nb", "nöde", &"x".repeat(254)] {
            assert!(!is_safe_name(bad), "{bad:?}");
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
        assert_eq!(Naming::temp_name("n1-x.json"), ".n1-x.json.tmp");
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
}

impl ClaimName {
    /// Parses a file name in `claimed/`.
    pub fn parse(file_name: &str) -> Option<ClaimName> {
        let stem = file_name.strip_suffix(".json")?;
        let (id, rest) = (stem.get(..36)?, stem.get(36..)?.strip_prefix('.')?);
        parse_request_id(id)?;
        let (watcher, attempt) = rest.rsplit_once('.')?;
        if !is_safe_name(watcher) {
            return None;
        }
        Some(ClaimName { id: id.to_string(), watcher: watcher.to_string(), attempt: attempt.parse().ok()? })
    }
}

impl std::fmt::Display for ClaimName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}.json", self.id, self.watcher, self.attempt)
    }
}

#[cfg(test)]
mod claim_name_tests {
    use super::*;

    #[test]
    fn claim_names_round_trip_even_with_dots_in_watcher_ids() {
        let c =
            ClaimName { id: "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c".into(), watcher: "rabbit.w-1".into(), attempt: 3 };
        assert_eq!(ClaimName::parse(&c.to_string()), Some(c));
        assert_eq!(ClaimName::parse("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c.json"), None);
        assert_eq!(ClaimName::parse("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c.w.x.json"), None);
    }
}
