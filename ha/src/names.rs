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
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["node2", "compute-node-3", "plug_7", "a.b", "x"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a b",
            "a\nb",
            "nöde",
            &"x".repeat(254),
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn request_file_names() {
        let id = "0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c";
        assert_eq!(request_id_of_file(&format!("{id}.json")), Some(id));
        assert_eq!(request_id_of_file(id), None);
        assert_eq!(
            request_id_of_file(&format!("{}.json", id.to_uppercase())),
            None
        );
        assert_eq!(request_id_of_file("../x.json"), None);
        assert_eq!(request_id_of_file(&format!(".{id}.json")), None);
    }
}
