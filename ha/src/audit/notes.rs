//! What the chained log's lock file (`<log>.lock`) holds beside the lock, parsed and rendered without
//! I/O: the chain's end (`seq=N hash=H`, the anchor's form, so that a rotation to an empty file loses
//! nothing), which file that end was written to and how long it was then, and the notes the appender
//! leaves for `verify` about what it saw go wrong — a log truncated in place (logrotate's
//! `copytruncate`) and a record cut short because the disk was full. The appender knows both at the
//! time; afterwards the file alone would look like tampering or a power cut. Kept small (at most
//! [`MAX_NOTES`] notes, the oldest dropped) so that rewriting it in place needs no new block on a
//! full disk. Older agents wrote only the first line; every line is optional.

use super::chain::{parse_anchors, Link};

/// Notes kept, newest last.
pub const MAX_NOTES: usize = 16;

/// Which file the chain's end was written to: inode, birth time (0 where the file system keeps
/// none), and its length just after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMark {
    /// Inode number.
    pub ino: u64,
    /// Birth time in nanoseconds since the epoch (0: unknown).
    pub btime_ns: u128,
    /// Length in bytes after the append.
    pub len: u64,
}

/// Something the appender saw go wrong, for `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogNote {
    /// The log (the same file) was shorter than the chain's end had left it: truncated in place,
    /// as logrotate's `copytruncate` does; records appended between its copy and its truncation
    /// are lost.
    Truncated {
        /// When it was seen (RFC 3339).
        at: String,
        /// The chain's last seq before it.
        after_seq: u64,
        /// The length the chain's end had left.
        expected_bytes: u64,
        /// The length found.
        found_bytes: u64,
    },
    /// A record could not be written whole (the disk full, or another write error).
    Short {
        /// When (RFC 3339).
        at: String,
        /// The seq the record was sealed with.
        seq: u64,
        /// Its request id, when it had one.
        request: Option<String>,
        /// The error, on one line.
        error: String,
    },
}

/// The lock file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The chain's end, when one was written.
    pub end: Option<Link>,
    /// The file it was written to.
    pub file: Option<FileMark>,
    /// The notes, oldest first.
    pub notes: Vec<LogNote>,
}

fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl Head {
    /// Parses a lock file's text; lines it does not know are skipped.
    pub fn parse(text: &str) -> Head {
        let mut head = Head { end: parse_anchors(text).pop().map(|(seq, hash)| Link { seq, hash }), ..Head::default() };
        for line in text.lines() {
            let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
            let words: Vec<&str> = rest.split(' ').collect();
            let num = |k: &str| field(&words, k).and_then(|v| v.parse::<u64>().ok());
            match (first, words.first().copied()) {
                ("file", _) => {
                    if let (Some(ino), Some(len)) = (num("ino"), num("len")) {
                        let btime_ns = field(&words, "btime").and_then(|v| v.parse().ok()).unwrap_or(0);
                        head.file = Some(FileMark { ino, btime_ns, len });
                    }
                }
                ("note", Some("truncated")) => {
                    if let (Some(after_seq), Some(expected_bytes), Some(found_bytes)) =
                        (num("after_seq"), num("expected_bytes"), num("found_bytes"))
                    {
                        let at = field(&words, "at").unwrap_or_default().to_string();
                        head.notes.push(LogNote::Truncated { at, after_seq, expected_bytes, found_bytes });
                    }
                }
                ("note", Some("short")) => {
                    if let Some(seq) = num("cut_seq") {
                        let at = field(&words, "at").unwrap_or_default().to_string();
                        let request = field(&words, "request").filter(|r| *r != "-").map(str::to_string);
                        let error = rest.split_once(" error=").map_or("", |(_, e)| e).to_string();
                        head.notes.push(LogNote::Short { at, seq, request, error });
                    }
                }
                _ => {}
            }
        }
        head
    }

    /// The text of the lock file.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(end) = &self.end {
            s += &format!("seq={} hash={}\n", end.seq, end.hash);
        }
        if let Some(f) = &self.file {
            s += &format!("file ino={} btime={} len={}\n", f.ino, f.btime_ns, f.len);
        }
        for n in &self.notes {
            match n {
                LogNote::Truncated { at, after_seq, expected_bytes, found_bytes } => {
                    s += &format!(
                        "note truncated at={at} after_seq={after_seq} expected_bytes={expected_bytes} \
                         found_bytes={found_bytes}\n"
                    )
                }
                LogNote::Short { at, seq, request, error } => {
                    let error: String = error.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                    s += &format!(
                        "note short at={at} cut_seq={seq} request={} error={error}\n",
                        request.as_deref().unwrap_or("-")
                    )
                }
            }
        }
        s
    }

    /// Adds a note, dropping the oldest beyond [`MAX_NOTES`].
    pub fn note(&mut self, note: LogNote) {
        self.notes.push(note);
        let excess = self.notes.len().saturating_sub(MAX_NOTES);
        self.notes.drain(..excess);
    }

    /// Whether the log, now at `now`, is the file the chain's end was written to, truncated in place
    /// since: the same inode (and birth time, where kept), shorter than the end left it.
    pub fn truncated(&self, now: &FileMark) -> bool {
        self.file.is_some_and(|then| {
            then.ino == now.ino
                && (then.btime_ns == 0 || now.btime_ns == 0 || then.btime_ns == now.btime_ns)
                && now.len < then.len
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_round_trips_and_reads_what_older_agents_wrote() {
        let old = format!("seq=7 hash={}\n", "a".repeat(64));
        let h = Head::parse(&old);
        assert_eq!(h.end, Some(Link { seq: 7, hash: "a".repeat(64) }));
        assert_eq!((h.file, h.notes.len()), (None, 0));
        let mut h = Head { file: Some(FileMark { ino: 12, btime_ns: 34, len: 560 }), ..h };
        h.note(LogNote::Truncated { at: "t1".into(), after_seq: 7, expected_bytes: 560, found_bytes: 0 });
        h.note(LogNote::Short {
            at: "t2".into(),
            seq: 8,
            request: Some("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c".into()),
            error: "No space left on device (os error 28)\nsecond line".into(),
        });
        let text = h.render();
        assert_eq!(parse_anchors(&text), [(7, "a".repeat(64))], "anchors read as before");
        let back = Head::parse(&text);
        assert_eq!(back.file, h.file);
        assert_eq!(back.notes[0], h.notes[0]);
        let LogNote::Short { error, request, seq, .. } = &back.notes[1] else { panic!("{back:?}") };
        assert_eq!((*seq, request.as_deref()), (8, Some("0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c")));
        assert_eq!(error, "No space left on device (os error 28) second line", "one line");
    }

    #[test]
    fn notes_are_capped_and_truncation_is_the_same_file_grown_shorter() {
        let mut h = Head::default();
        for i in 0..40 {
            h.note(LogNote::Truncated { at: "t".into(), after_seq: i, expected_bytes: 1, found_bytes: 0 });
        }
        assert_eq!(h.notes.len(), MAX_NOTES);
        assert!(matches!(h.notes[0], LogNote::Truncated { after_seq: 24, .. }), "the oldest dropped");
        h.file = Some(FileMark { ino: 5, btime_ns: 100, len: 1000 });
        assert!(h.truncated(&FileMark { ino: 5, btime_ns: 100, len: 10 }));
        assert!(!h.truncated(&FileMark { ino: 5, btime_ns: 100, len: 1000 }), "not shorter");
        assert!(!h.truncated(&FileMark { ino: 6, btime_ns: 100, len: 0 }), "a new file (rotated with create)");
        assert!(!h.truncated(&FileMark { ino: 5, btime_ns: 200, len: 0 }), "a new file that reused the inode");
        assert!(h.truncated(&FileMark { ino: 5, btime_ns: 0, len: 0 }), "no birth time kept: the inode decides");
    }
}
