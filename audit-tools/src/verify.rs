//! `verify`: each chain checked on its own (`ha::audit::verify`) and reported on its own, so one
//! rabbit's intact chain never hides another's damage: breaks (edits, insertions, deletions, cuts),
//! gaps, records outside the chain or cut short by a crash, and where a chain starts after seq 1
//! (older files not given, or removed by rotation). With one chain the report is the rabbit's own
//! view, unprefixed; with several each line names its rabbit and source, and a last line sums up.
//! Where the appender left a note in the log's lock file (`ha::audit::notes`), a cut record or a
//! missing one is named for what the agent saw at the time — a full disk — instead of a crash, and a
//! gap after a truncation in place is named as a possible `copytruncate` loss (still broken: a
//! truncation is also what tampering looks like).
//! Exit: 0 every chain intact, 1 one is broken, 3 intact but answered fences have no record
//! (`--spool`).

use std::path::Path;
use std::process::ExitCode;

use ha::audit;
use ha::audit::notes::LogNote;

use super::answers;
use super::error::EventsError;
use super::sources::Chain;

/// How one chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Missing,
    Broken,
}

/// What a failed write's error says of its cause.
fn cause(error: &str) -> &'static str {
    if error.contains("No space left") || error.contains("short write") || error.contains("quota") {
        "the log's disk was full"
    } else {
        "a write error the agent noted at the time"
    }
}

/// What the agent noted in the log's lock file of a write it could not finish: the first note of a
/// short write that `want` (its seq, its request) picks, as (when, the error).
fn short_write<'a>(c: &'a Chain, want: &dyn Fn(u64, Option<&str>) -> bool) -> Option<(&'a String, &'a String)> {
    c.log_notes.iter().find_map(|n| match n {
        LogNote::Short { at, seq, request, error } if want(*seq, request.as_deref()) => Some((at, error)),
        _ => None,
    })
}

/// Checks one chain against `anchors` and the spool's answers; prints its lines with `prefix`.
fn chain(c: &Chain, anchors: &[(u64, String)], spool: Option<&Path>, prefix: &str) -> Result<Verdict, EventsError> {
    let r = audit::verify(&c.files, anchors);
    let span = r.span.map_or("no chained record".to_string(), |(a, b)| format!("seq {a} to {b}"));
    let summary = format!(
        "{} chained records ({span}) in {} files; {} before the chain; {} outside it; {} anchors checked",
        r.records,
        c.files.len(),
        r.pre_chain,
        r.unchained.len(),
        r.anchors
    );
    report_damage(c, &r, prefix);
    let missing = match spool {
        Some(spool) => answers::unrecorded(spool, &c.records)?,
        None => Vec::new(),
    };
    let disk_full = report_missing(c, &missing, prefix);
    for n in &c.log_notes {
        if let LogNote::Truncated { at, after_seq, expected_bytes, found_bytes } = n {
            println!(
                "{prefix}note: the log was found truncated in place at {at}, after seq {after_seq} ({expected_bytes} bytes expected, {found_bytes} found): logrotate's copytruncate does that, and loses what is appended between its copy and its truncation (OPERATIONS.md: use create, never copytruncate)"
            );
        }
    }
    if let Some((first, _)) = r.span.filter(|(first, _)| *first > 1) {
        println!("{prefix}note: the chain starts at seq {first} here (older files not given, or removed by rotation)");
    }
    Ok(match r.broken {
        None if !missing.is_empty() => {
            let why = match missing.len() - disk_full {
                0 => "not written: the agent could not write them (the log's disk was full), as it noted at the time".to_string(),
                n if disk_full > 0 => format!(
                    "{disk_full} not written: the agent could not write them, as it noted; {n} lost in a power cut, or the agent killed before it recorded"
                ),
                _ => "the chain's tail lost in a power cut, or the agent killed before it recorded".to_string(),
            };
            println!(
                "{prefix}OK, RECORDS MISSING: {summary}; {} answered fences have no record ({why})",
                missing.len()
            );
            Verdict::Missing
        }
        None => {
            println!("{prefix}OK: {summary}");
            Verdict::Ok
        }
        Some(b) => {
            println!("{prefix}BROKEN: {b}");
            println!("{prefix}checked before the break: {summary}");
            report_break(c, &b, prefix);
            Verdict::Broken
        }
    })
}

/// Records outside the chain, cut short (by a crash, or by a failed write the agent noted), or
/// written twice.
fn report_damage(c: &Chain, r: &audit::Report, prefix: &str) {
    for p in &r.unchained {
        println!("{prefix}unchained record (written without the log's lock): {p}");
    }
    for (p, seq) in &r.crash_cuts {
        match short_write(c, &|s, _| s == *seq) {
            Some((at, error)) => println!(
                "{prefix}record cut short by a failed write: {p} (the record seq {seq} could not be written whole at {at}: {error} — {}; the chain continues from the one before it)",
                cause(error)
            ),
            None => println!(
                "{prefix}record cut short by a crash: {p} (the record seq {seq} was being written; the chain continues from the one before it)"
            ),
        }
    }
    for p in &r.repeats {
        println!("{prefix}note: {p} repeats the record before it (written again after a rotation moved the file during the append)");
    }
}

/// Each answered fence without a record, named for what the agent noted (a full disk) or for a
/// crash. Returns how many the agent noted it could not write.
fn report_missing(c: &Chain, missing: &[answers::Unrecorded], prefix: &str) -> usize {
    let mut disk_full = 0;
    for m in missing {
        match short_write(c, &|_, request| request == Some(m.request_id.as_str())) {
            Some((at, error)) => {
                disk_full += 1;
                println!(
                    "{prefix}record not written: request {} ({}, answered {} at {}) has an answer in the spool; the agent could not write its record at {at}: {error} — {}",
                    m.request_id, m.target, m.outcome, m.answered, cause(error)
                );
            }
            None => println!(
                "{prefix}record missing after a crash: request {} ({}, answered {} at {}) has an answer in the spool but no outcome record",
                m.request_id, m.target, m.outcome, m.answered
            ),
        }
    }
    disk_full
}

/// What else may explain a break: a truncation in place noted just there, a journal's lost entry.
fn report_break(c: &Chain, b: &audit::Break, prefix: &str) {
    if let audit::Break::Missing { from, to, .. } = b {
        let truncated = c
            .log_notes
            .iter()
            .any(|n| matches!(n, LogNote::Truncated { after_seq, .. } if *after_seq + 1 >= *from && *after_seq <= *to));
        if truncated {
            println!(
                "{prefix}possible copytruncate loss: the log was truncated in place just there (see the note above); records appended between logrotate's copy and its truncation are gone. A truncation is also what tampering looks like: compare with the journal's anchors (verify --journal) before calling it either"
            );
        }
    }
    if c.from_journal && matches!(b, audit::Break::Missing { .. }) {
        println!(
            "{prefix}note: read from a journal, where an entry can also be lost on its way (journald's rate limit, a full socket): verify this rabbit's log directory before calling it a deletion"
        );
    }
}

/// Verifies every chain; `anchors` and `spool` belong to the one chain there must then be.
pub fn run(chains: &[Chain], anchors: &[(u64, String)], spool: Option<&Path>) -> Result<ExitCode, EventsError> {
    if chains.is_empty() {
        return Err(EventsError::Usage(
            "the sources given hold no fence record (a journal directory without gfs2-fence-record entries?)".into(),
        ));
    }
    if chains.len() > 1 && (!anchors.is_empty() || spool.is_some()) {
        return Err(EventsError::Usage(format!(
            "--anchors, --journal and --spool check one rabbit's chain, and {} chains were given: verify that rabbit's log directory alone",
            chains.len()
        )));
    }
    let mut verdicts = Vec::new();
    for c in chains {
        let prefix = if chains.len() > 1 { format!("rabbit {} ({}): ", c.name(), c.origin) } else { String::new() };
        verdicts.push(chain(c, anchors, spool, &prefix)?);
    }
    for note in super::sources::notes(chains) {
        println!("note: {note}");
    }
    let count = |v: Verdict| verdicts.iter().filter(|x| **x == v).count();
    if chains.len() > 1 {
        println!(
            "{} chains: {} BROKEN, {} with records missing, {} OK",
            chains.len(),
            count(Verdict::Broken),
            count(Verdict::Missing),
            count(Verdict::Ok)
        );
    }
    Ok(if count(Verdict::Broken) > 0 {
        ExitCode::FAILURE
    } else if count(Verdict::Missing) > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
