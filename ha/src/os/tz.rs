//! The time zone of the local log stamps, loaded with bounded work whatever `TZ` holds.
//!
//! chrono's `Local` (like glibc) reads the file `TZ` names — `:path`, an absolute path, or a name
//! under the zoneinfo directories — to its end, and opens it blocking: `TZ=/dev/zero` grows the
//! process without bound, `TZ=<a FIFO>` hangs it, `TZ=<a 10 GB log>` reads 10 GB. [`bound`] runs
//! once, first thing in each program, before any thread exists: when `TZ` names a file it reads that
//! file itself (non-blocking open, regular files only, at most [`MAX_TZ_FILE`] bytes) and replaces
//! `TZ` with the POSIX rule of the TZif footer, which chrono evaluates without opening anything
//! outside the root-owned zoneinfo directories. A file that is not a usable TZif file makes the stamps
//! UTC, with a warning for the caller to log. A `TZ` that names no file is a POSIX rule already and
//! is left alone (an environment string is bounded by the kernel). No locks.

use std::path::{Path, PathBuf};

use crate::fsio;

/// Largest time zone file read (real TZif files are under 4 KiB).
pub const MAX_TZ_FILE: u64 = 64 * 1024;

/// Where chrono and glibc look up a relative zone name, in their order.
const ZONEINFO: [&str; 4] = ["/usr/share/zoneinfo", "/share/zoneinfo", "/etc/zoneinfo", "/usr/share/lib/zoneinfo"];

/// The `TZ` used when the named file is unusable: UTC, as a POSIX rule.
const UTC_RULE: &str = "UTC0";

/// What [`decide`] makes of a `TZ` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave `TZ` as it is (unset, empty, or a POSIX rule naming no file).
    Keep,
    /// Set `TZ` to this rule; with a warning when the file was unusable.
    Replace {
        /// The new value.
        rule: String,
        /// Why the stamps fall back to UTC, if they do.
        warning: Option<String>,
    },
}

/// The files a `TZ` value may name, in the order chrono tries them.
fn candidates(tz: &str) -> Vec<PathBuf> {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return Vec::new();
    }
    if Path::new(name).is_absolute() {
        return vec![PathBuf::from(name)];
    }
    ZONEINFO.iter().map(|d| Path::new(d).join(name)).collect()
}

/// The POSIX rule in a TZif (version 2 or later) file's footer, if it is one chrono can take as a
/// rule without opening a file outside the zoneinfo directories.
pub fn footer_rule(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"TZif") || bytes.get(4).is_none_or(|v| !(b'2'..=b'9').contains(v)) {
        return None;
    }
    let body = bytes.strip_suffix(b"\n")?;
    let start = body.iter().rposition(|b| *b == b'\n')? + 1;
    let rule = std::str::from_utf8(&body[start..]).ok()?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "<>+-,.:/".contains(c);
    let safe = !rule.is_empty()
        && rule.chars().all(allowed)
        && !rule.contains("..")
        && !rule.starts_with(['/', ':'])
        && (rule.as_bytes()[0].is_ascii_alphabetic() || rule.as_bytes()[0] == b'<');
    safe.then(|| rule.to_string())
}

/// Decides what to do with `tz` (the value of `TZ`), reading at most [`MAX_TZ_FILE`] bytes of the
/// first file it names that opens.
pub fn decide(tz: Option<&str>) -> Decision {
    let Some(tz) = tz.filter(|t| !t.is_empty()) else {
        return Decision::Keep;
    };
    let forced_file = tz.starts_with(':');
    for path in candidates(tz) {
        let Ok(file) = fsio::open_system_file(&path) else {
            continue;
        };
        let unusable = |why: String| Decision::Replace {
            rule: UTC_RULE.into(),
            warning: Some(format!("TZ={tz:?} names {}, {why}: local times in the logs are UTC", path.display())),
        };
        return match fsio::read_file_capped(&file, &path, MAX_TZ_FILE) {
            Ok(bytes) => match footer_rule(&bytes) {
                Some(rule) => Decision::Replace { rule, warning: None },
                None => unusable("which is not a TZif time zone file with a rule".into()),
            },
            Err(e) => unusable(format!("which cannot be used as a time zone file ({e})")),
        };
    }
    if forced_file {
        return Decision::Replace {
            rule: UTC_RULE.into(),
            warning: Some(format!("TZ={tz:?} names no time zone file: local times in the logs are UTC")),
        };
    }
    Decision::Keep
}

/// Applies [`decide`] to this process's `TZ`. Call it first in `main`, before any thread starts (it
/// may set an environment variable). Returns a warning to log, if any.
pub fn bound() -> Option<String> {
    let tz = std::env::var("TZ").ok();
    match decide(tz.as_deref()) {
        Decision::Keep => None,
        Decision::Replace { rule, warning } => {
            std::env::set_var("TZ", rule);
            warning
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tzif(footer: &str) -> Vec<u8> {
        let mut b = b"TZif2".to_vec();
        b.extend([0u8; 39]);
        b.extend(format!("\n{footer}\n").as_bytes());
        b
    }

    #[test]
    fn the_footer_rule_is_taken_only_when_it_opens_no_file() {
        assert_eq!(footer_rule(&tzif("CET-1CEST,M3.5.0,M10.5.0/3")).as_deref(), Some("CET-1CEST,M3.5.0,M10.5.0/3"));
        assert_eq!(footer_rule(&tzif("<+0330>-3:30")).as_deref(), Some("<+0330>-3:30"));
        for bad in ["", "../../../dev/zero", "/dev/zero", ":x", "a b", "0abc"] {
            assert_eq!(footer_rule(&tzif(bad)), None, "{bad:?}");
        }
        assert_eq!(footer_rule(b"TZif\0rest\nUTC0\n"), None, "version 1 has no footer");
        assert_eq!(footer_rule(b"not a zone file\nUTC0\n"), None);
    }

    #[test]
    fn special_large_and_foreign_files_give_utc_and_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_TZ_FILE as usize + 1]).unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let zone = d.path().join("zone");
        std::fs::write(&zone, tzif("EST5EDT,M3.2.0,M11.1.0")).unwrap();
        let text = d.path().join("text");
        std::fs::write(&text, "not a time zone\n").unwrap();
        let (big, fifo, text) = (format!(":{}", big.display()), fifo.display().to_string(), text.display().to_string());
        for tz in ["/dev/zero", &big, &fifo, &text, ":nonexistent/x"] {
            match decide(Some(tz)) {
                Decision::Replace { rule, warning: Some(w) } => {
                    assert_eq!(rule, UTC_RULE);
                    assert!(w.contains("UTC"), "{w}");
                }
                other => panic!("{tz}: {other:?}"),
            }
        }
        let want = Decision::Replace { rule: "EST5EDT,M3.2.0,M11.1.0".into(), warning: None };
        assert_eq!(decide(Some(zone.to_str().unwrap())), want);
        assert_eq!(decide(Some(&format!(":{}", zone.display()))), want);
        assert_eq!(decide(None), Decision::Keep);
        assert_eq!(decide(Some("")), Decision::Keep);
        assert_eq!(decide(Some("XYZ5")), Decision::Keep, "a POSIX rule naming no file");
    }
}
