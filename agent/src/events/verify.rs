//! `verify`: each chain checked on its own (`ha::audit::verify`) and reported on its own, so one
//! rabbit's intact chain never hides another's damage: breaks (edits, insertions, deletions, cuts),
//! gaps, records outside the chain or cut short by a crash, and where a chain starts after seq 1
//! (older files not given, or removed by rotation). With one chain the report is the rabbit's own
//! view, unprefixed; with several each line names its rabbit and source, and a last line sums up.
//! Exit: 0 every chain intact, 1 one is broken, 3 intact but answered fences have no record
//! (`--spool`).

use std::path::Path;
use std::process::ExitCode;

use ha::audit;

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
    for p in &r.unchained {
        println!("{prefix}unchained record (written without the log's lock): {p}");
    }
    for (p, seq) in &r.crash_cuts {
        println!("{prefix}record cut short by a crash: {p} (the record seq {seq} was being written; the chain continues from the one before it)");
    }
    let missing = match spool {
        Some(spool) => answers::unrecorded(spool, &c.records)?,
        None => Vec::new(),
    };
    for m in &missing {
        println!(
            "{prefix}record missing after a crash: request {} ({}, answered {} at {}) has an answer in the spool but no outcome record",
            m.request_id, m.target, m.outcome, m.answered
        );
    }
    if let Some((first, _)) = r.span.filter(|(first, _)| *first > 1) {
        println!("{prefix}note: the chain starts at seq {first} here (older files not given, or removed by rotation)");
    }
    Ok(match r.broken {
        None if !missing.is_empty() => {
            println!(
                "{prefix}OK, RECORDS MISSING: {summary}; {} answered fences have no record (the chain's tail lost in a power cut, or the agent killed before it recorded)",
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
            if c.from_journal && matches!(b, audit::Break::Missing { .. }) {
                println!(
                    "{prefix}note: read from a journal, where an entry can also be lost on its way (journald's rate limit, a full socket): verify this rabbit's log directory before calling it a deletion"
                );
            }
            Verdict::Broken
        }
    })
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
