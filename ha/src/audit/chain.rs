//! The tamper-evident audit trail: every record of `fence-events-detailed.jsonl` carries `seq`,
//! `prev_hash` and `hash`, a SHA-256 chain over the records' canonical form.
//!
//! - **Canonical form** of a record: the JSON object without its `hash` key, keys sorted at every
//!   level, no white space, strings escaped as serde_json does (`"`, `\`, control characters; other
//!   characters as UTF-8). In Python: `json.dumps(r, sort_keys=True, separators=(",", ":"),
//!   ensure_ascii=False)` after `r.pop("hash")`. `hash` is the lower-case hex SHA-256 of its UTF-8
//!   bytes; `prev_hash` is the previous record's `hash` ([`GENESIS`] for the first); `seq` counts
//!   from 1. The presentation of a line (key order, spacing) is not covered; every value is.
//! - The chain continues across rotated files; [`verify`] orders files by their first `seq`.
//! - Records without `hash` are pre-chain (before the first chained record: the original
//!   recorder's) or unchained (written when the log's lock could not be had in time): reported,
//!   never silently accepted.
//!
//! This module decides (hashing, verification) without I/O; [`super::log`] appends under the lock.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The end of a chain: what the next record links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its `seq`.
    pub seq: u64,
    /// Its `hash`.
    pub hash: String,
}

impl Link {
    /// The link before the first record.
    pub fn genesis() -> Link {
        Link { seq: 0, hash: GENESIS.to_string() }
    }
}

fn canonical_into(v: &Value, top: bool, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().filter(|k| !(top && *k == "hash")).collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serialises"));
                out.push(':');
                canonical_into(&m[k], false, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_into(x, false, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).expect("a JSON value serialises")),
    }
}

/// The canonical form of a record (without its `hash`).
pub fn canonical(record: &Value) -> String {
    let mut s = String::new();
    canonical_into(record, true, &mut s);
    s
}

/// The hash a record must carry.
pub fn hash_of(record: &Value) -> String {
    Sha256::digest(canonical(record).as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `seq`, `prev_hash` and `hash` after `prev` to a record object; returns the new end.
pub fn seal(record: &mut serde_json::Map<String, Value>, prev: &Link) -> Link {
    let seq = prev.seq + 1;
    record.insert("seq".into(), seq.into());
    record.insert("prev_hash".into(), prev.hash.clone().into());
    record.remove("hash");
    let hash = hash_of(&Value::Object(record.clone()));
    record.insert("hash".into(), hash.clone().into());
    Link { seq, hash }
}

/// The link a parsed line ends with, if it is a chained record.
pub fn link_of(line: &str) -> Option<Link> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(Link { seq: v.get("seq")?.as_u64()?, hash: v.get("hash")?.as_str()?.to_string() })
}

/// One log file's content, for [`verify`].
#[derive(Debug, Clone)]
pub struct LogFile {
    /// Its name (for messages).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The line is not a JSON object.
    #[error("{0}: not a JSON record (damaged or truncated)")]
    Damaged(Place),
    /// The last line has no newline: cut off.
    #[error("{0}: the last record is cut off (no end of line)")]
    Truncated(Place),
    /// The record's content does not match its hash.
    #[error("{place}: record seq {seq} was edited (its hash does not match its content)")]
    Edited {
        /// Where.
        place: Place,
        /// Its seq.
        seq: u64,
    },
    /// Records are missing between two.
    #[error("{place}: records seq {from} to {to} are missing (deleted) before seq {found}")]
    Missing {
        /// Where the gap was found.
        place: Place,
        /// First missing.
        from: u64,
        /// Last missing.
        to: u64,
        /// The record found.
        found: u64,
    },
    /// A record out of order or repeated.
    #[error("{place}: record seq {found} comes after seq {after} (inserted, duplicated or reordered)")]
    OutOfOrder {
        /// Where.
        place: Place,
        /// The record found.
        found: u64,
        /// The record before it.
        after: u64,
    },
    /// `prev_hash` does not name the previous record.
    #[error("{place}: record seq {seq} does not link to the record before it (inserted or replaced)")]
    Unlinked {
        /// Where.
        place: Place,
        /// Its seq.
        seq: u64,
    },
    /// The file differs from a journal anchor.
    #[error("record seq {seq} differs from its journal anchor{}", place.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
    AnchorMismatch {
        /// The record, if present.
        place: Option<Place>,
        /// Its seq.
        seq: u64,
    },
    /// A record the journal anchored is not in the files.
    #[error(
        "record seq {seq} is anchored in the journal but is not in the files (deleted, or the chain was rewritten)"
    )]
    AnchorMissing {
        /// Its seq.
        seq: u64,
    },
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Chained records checked.
    pub records: u64,
    /// First and last seq.
    pub span: Option<(u64, u64)>,
    /// Records before the chain began (the original recorder's).
    pub pre_chain: u64,
    /// Records without a hash after the chain began.
    pub unchained: Vec<Place>,
    /// Anchors checked.
    pub anchors: u64,
    /// Records cut short by a crash: a line that is the start of a record (or NUL bytes) where
    /// the chain then continues from the record before it, or at the very end. A power cut while
    /// the agent appended leaves one; the agent that appends next starts a new line and chains
    /// from the last whole record. With the seq the cut record would have had.
    pub crash_cuts: Vec<(Place, u64)>,
    /// Exact repeats of a record already verified (same seq and hash), passed over: the appender
    /// writes a record again when a rotation moved the file as it wrote.
    pub repeats: Vec<Place>,
    /// The first broken link, if any.
    pub broken: Option<Break>,
}

struct Line<'a> {
    place: Place,
    text: &'a str,
    terminated: bool,
}

/// Verifies a set of log files (current and rotated, in any order) and, optionally, journal anchors
/// (`(seq, hash)` pairs).
pub fn verify(files: &[LogFile], anchors: &[(u64, String)]) -> Report {
    // Files in chain order: by their first seq (files without a chained record first).
    let mut ordered: Vec<(Option<u64>, &LogFile)> =
        files.iter().map(|f| (String::from_utf8_lossy(&f.bytes).lines().find_map(link_of).map(|l| l.seq), f)).collect();
    ordered.sort_by_key(|(first, f)| (*first, f.name.clone()));
    let mut report = Report::default();
    let mut prev: Option<Link> = None;
    let mut seen: std::collections::HashMap<u64, (Place, String)> = std::collections::HashMap::new();
    // A damaged line that may be a crash's cut: its break, where, the seq it would have had.
    let mut pending: Option<(Break, Place, u64)> = None;
    for (_, f) in ordered {
        let text = String::from_utf8_lossy(&f.bytes).into_owned();
        let lines: Vec<Line<'_>> = text
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, l)| Line {
                place: Place { file: f.name.clone(), line: i + 1 },
                text: l.trim_end_matches('\n'),
                terminated: l.ends_with('\n'),
            })
            .collect();
        let mut chained_here = false;
        for l in lines {
            let before = (report.records, report.repeats.len());
            let first_in_file = !chained_here;
            let found = check_line(&l, first_in_file, &mut prev, &mut report, &mut seen);
            chained_here |= (report.records, report.repeats.len()) != before;
            match found {
                Some(b)
                    if pending.is_none()
                        && looks_cut(l.text)
                        && matches!(b, Break::Damaged(_) | Break::Truncated(_)) =>
                {
                    pending = Some((b, l.place.clone(), prev.as_ref().map_or(1, |p| p.seq + 1)));
                }
                Some(b) => {
                    report.broken = Some(pending.map_or(b, |(first, ..)| first));
                    return report;
                }
                // A chained record continuing from the last whole one: what came between was cut.
                None if report.records > before.0 => {
                    if let Some((_, place, seq)) = pending.take() {
                        report.crash_cuts.push((place, seq));
                    }
                }
                None if pending.is_some() && !l.text.trim().is_empty() => {
                    report.broken = pending.map(|(first, ..)| first);
                    return report;
                }
                None => {}
            }
        }
    }
    // Nothing after it: the end of the chain was being written.
    if let Some((_, place, seq)) = pending {
        report.crash_cuts.push((place, seq));
    }
    for (seq, hash) in anchors {
        report.anchors += 1;
        // The anchor of a record lost in a crash reached the journal, the record did not: the
        // next record took its seq.
        if report.crash_cuts.iter().any(|(_, s)| s == seq) {
            continue;
        }
        let broken = match seen.get(seq) {
            None if report.span.is_some_and(|(first, _)| *seq >= first) => Some(Break::AnchorMissing { seq: *seq }),
            None => None,
            Some((place, h)) if h != hash => Some(Break::AnchorMismatch { place: Some(place.clone()), seq: *seq }),
            Some(_) => None,
        };
        if broken.is_some() {
            report.broken = broken;
            return report;
        }
    }
    report
}

/// Whether a line that is not a record has the shape a crash leaves: the start of a record (an
/// unterminated JSON object) or NUL bytes (a file extended but not written).
fn looks_cut(text: &str) -> bool {
    let t = text.trim_end_matches('\0');
    t.is_empty() || (t.starts_with('{') && serde_json::from_str::<Value>(t).is_err())
}

fn check_line(
    l: &Line<'_>,
    first_in_file: bool,
    prev: &mut Option<Link>,
    report: &mut Report,
    seen: &mut std::collections::HashMap<u64, (Place, String)>,
) -> Option<Break> {
    if l.text.trim().is_empty() {
        return None;
    }
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(l.text) else {
        return Some(if l.terminated { Break::Damaged(l.place.clone()) } else { Break::Truncated(l.place.clone()) });
    };
    if !l.terminated {
        return Some(Break::Truncated(l.place.clone()));
    }
    let (Some(seq), Some(hash), Some(prev_hash)) = (
        record.get("seq").and_then(Value::as_u64),
        record.get("hash").and_then(Value::as_str),
        record.get("prev_hash").and_then(Value::as_str),
    ) else {
        if prev.is_none() {
            report.pre_chain += 1;
        } else {
            report.unchained.push(l.place.clone());
        }
        return None;
    };
    let value = Value::Object(record.clone());
    if hash_of(&value) != hash {
        return Some(Break::Edited { place: l.place.clone(), seq });
    }
    if let Some(p) = prev.as_ref() {
        // The last record of the previous file, again as the first of this one (same seq and hash:
        // the same content and link): written again by an appender whose file a rotation moved
        // between its open and its write. Anywhere else a repeat is a break.
        if first_in_file && seq == p.seq && hash == p.hash {
            report.repeats.push(l.place.clone());
            return None;
        }
        if seq <= p.seq {
            return Some(Break::OutOfOrder { place: l.place.clone(), found: seq, after: p.seq });
        }
        if seq > p.seq + 1 {
            return Some(Break::Missing { place: l.place.clone(), from: p.seq + 1, to: seq - 1, found: seq });
        }
        if prev_hash != p.hash {
            return Some(Break::Unlinked { place: l.place.clone(), seq });
        }
    } else if seq == 1 && prev_hash != GENESIS {
        return Some(Break::Unlinked { place: l.place.clone(), seq });
    }
    report.records += 1;
    report.span = Some((report.span.map_or(seq, |s| s.0), seq));
    seen.insert(seq, (l.place.clone(), hash.to_string()));
    *prev = Some(Link { seq, hash: hash.to_string() });
    None
}

/// Anchors in text: every `seq=<n> hash=<hex>` pair (as the agent sends them to the journal;
/// `journalctl -t gfs2-fence-audit -o cat` prints one per line).
pub fn parse_anchors(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .filter_map(|line| {
            let seq = line.split_whitespace().find_map(|w| w.strip_prefix("seq="))?.parse().ok()?;
            let hash = line.split_whitespace().find_map(|w| w.strip_prefix("hash="))?;
            (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| (seq, hash.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<String> {
        let mut prev = Link::genesis();
        (0..n)
            .map(|i| {
                let mut m = serde_json::Map::new();
                m.insert("timestamp".into(), format!("2026-11-25T10:00:{i:02}Z").into());
                m.insert("target_node".into(), format!("n{i}").into());
                m.insert("details".into(), "é \"quoted\"\n".into());
                prev = seal(&mut m, &prev);
                serde_json::to_string(&m).unwrap()
            })
            .collect()
    }

    fn file(name: &str, lines: &[String]) -> LogFile {
        LogFile { name: name.into(), bytes: lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes() }
    }

    #[test]
    fn canonical_form_is_sorted_compact_and_independent_of_presentation() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, "x"], "x": null}, "hash": "zz"}"#).unwrap();
        assert_eq!(canonical(&a), r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
        let b: Value = serde_json::from_str(r#"{"a":{"y":[1,"x"],"x":null},"b":1}"#).unwrap();
        assert_eq!(hash_of(&a), hash_of(&b));
    }

    #[test]
    fn an_intact_chain_across_rotated_files_verifies() {
        let c = chain(6);
        let files = [file("log", &c[4..]), file("log.1", &c[2..4]), file("log.2", &c[..2])];
        let r = verify(&files, &[(3, link_of(&c[2]).unwrap().hash)]);
        assert_eq!((r.records, r.span, r.broken, r.anchors), (6, Some((1, 6)), None, 1));
    }

    #[test]
    fn every_kind_of_tampering_is_the_first_broken_link() {
        let c = chain(5);
        let edited = c[2].replace("n2", "n9");
        let b = verify(&[file("f", &[c[0].clone(), c[1].clone(), edited, c[3].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::Edited { seq: 3, .. })), "{b:?}");
        let b = verify(&[file("f", &[c[0].clone(), c[1].clone(), c[3].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::Missing { from: 3, to: 3, found: 4, .. })), "{b:?}");
        let b = verify(&[file("f", &[c[0].clone(), c[2].clone(), c[1].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::Missing { .. }) | Some(Break::OutOfOrder { .. })), "{b:?}");
        let b = verify(&[file("f", &[c[0].clone(), c[1].clone(), c[1].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::OutOfOrder { found: 2, after: 2, .. })), "{b:?}");
        // Across files a repeat is passed over only as the first record of a file repeating the
        // last of the one before (a rotation during an append); any other repeat is a break.
        let r = verify(&[file("log.1", &c[..2]), file("log", &c[1..3])], &[]);
        assert_eq!((r.broken, r.records, r.repeats.len()), (None, 3, 1));
        let b = verify(&[file("log.1", &c[..3]), file("log", &[c[1].clone(), c[3].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::OutOfOrder { found: 2, after: 3, .. })), "{b:?}");
        let b = verify(&[file("log.1", &c[..2]), file("log", &[c[2].clone(), c[1].clone()])], &[]).broken;
        assert!(matches!(b, Some(Break::OutOfOrder { .. })), "{b:?}");
        // A forged record with a valid hash of its own but the wrong link.
        let mut forged: serde_json::Map<String, Value> = serde_json::from_str(&c[1]).unwrap();
        seal(&mut forged, &Link { seq: 1, hash: "f".repeat(64) });
        let forged = serde_json::to_string(&forged).unwrap();
        let b = verify(&[file("f", &[c[0].clone(), forged])], &[]).broken;
        assert!(matches!(b, Some(Break::Unlinked { seq: 2, .. })), "{b:?}");
        let damaged = file("f", &[c[0].clone(), "not a record".into(), c[1].clone()]);
        assert!(matches!(verify(&[damaged], &[]).broken, Some(Break::Damaged(_))));
    }

    /// A power cut while the agent appends leaves the last record cut short (or NUL bytes);
    /// the next agent starts a new line and chains from the last whole record. That is a crash's
    /// mark, reported as such, not a broken chain; anything else around a damaged line still is.
    #[test]
    fn a_record_cut_short_by_a_crash_is_not_a_break() {
        let c = chain(4);
        let lines = |v: &[&str]| LogFile { name: "f".into(), bytes: v.concat().into_bytes() };
        let nl = |l: &String| format!("{l}\n");
        let (r0, r1, r2) = (nl(&c[0]), nl(&c[1]), nl(&c[2]));
        let r = verify(&[lines(&[&r0, &r1, &c[2][..40]])], &[]);
        assert_eq!((r.broken, r.records, r.crash_cuts.len()), (None, 2, 1), "cut at the end");
        let r = verify(&[lines(&[&r0, &r1, "\0\0\0\0"])], &[]);
        assert_eq!((r.broken, r.crash_cuts.len()), (None, 1), "NUL bytes at the end");
        // The next record took the lost one's seq, chained from the last whole record.
        let mut next: serde_json::Map<String, Value> = serde_json::from_str(&c[3]).unwrap();
        seal(&mut next, &link_of(&c[1]).unwrap());
        let next = nl(&serde_json::to_string(&next).unwrap());
        let cut = format!("{}\n", &c[2][..40]);
        let lost_anchor = (3, link_of(&c[2]).unwrap().hash);
        let r = verify(&[lines(&[&r0, &r1, &cut, &next])], &[lost_anchor]);
        assert_eq!((r.broken, r.records), (None, 3));
        assert_eq!(r.crash_cuts, vec![(Place { file: "f".into(), line: 3 }, 3)]);
        // A cut the chain does not continue past (the record after it links elsewhere): broken.
        let r = verify(&[lines(&[&r0, &cut, &r2])], &[]);
        assert!(matches!(r.broken, Some(Break::Damaged(Place { line: 2, .. }))), "{:?}", r.broken);
    }

    #[test]
    fn a_rewritten_chain_is_caught_by_the_journal_anchors() {
        let real = chain(3);
        let mut prev = Link::genesis();
        let rewritten: Vec<String> = real
            .iter()
            .map(|l| {
                let mut m: serde_json::Map<String, Value> = serde_json::from_str(&l.replace("n1", "nX")).unwrap();
                prev = seal(&mut m, &prev);
                serde_json::to_string(&m).unwrap()
            })
            .collect();
        let anchors = parse_anchors(
            &real
                .iter()
                .filter_map(|l| link_of(l))
                .map(|k| format!("seq={} hash={}\n", k.seq, k.hash))
                .collect::<String>(),
        );
        assert_eq!(anchors.len(), 3);
        assert_eq!(verify(&[file("f", &rewritten)], &[]).broken, None, "self-consistent on its own");
        let b = verify(&[file("f", &rewritten)], &anchors).broken;
        assert!(matches!(b, Some(Break::AnchorMismatch { seq: 2, .. })), "{b:?}");
        let b = verify(&[file("f", &real[..1])], &anchors).broken;
        assert_eq!(b, Some(Break::AnchorMissing { seq: 2 }));
    }

    #[test]
    fn pre_chain_and_unchained_records_are_counted() {
        let c = chain(2);
        let old = r#"{"timestamp": "2025-01-01T00:00:00Z", "action": "off"}"#.to_string();
        let r = verify(&[file("f", &[old.clone(), c[0].clone(), old, c[1].clone()])], &[]);
        assert_eq!((r.pre_chain, r.unchained.len(), r.records, r.broken), (1, 1, 2, None));
    }
}
