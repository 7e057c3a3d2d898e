//! Fence records from journal files, as systemd-journal-remote (or any journal transport) gathers
//! every rabbit's journal in one place: `journalctl --directory DIR` reads the entries the agent and
//! the leader watcher sent (`SYSLOG_IDENTIFIER=gfs2-fence-record`, see `ha::audit::journal`), whose
//! `GFS2_FENCE_RECORD` is the record's line exactly as appended to the rabbit's detailed log.
//!
//! The entries become one chain per rabbit (the record's `recorder_node`, else the entry's
//! `_HOSTNAME`), in `seq` order: two agents of one rabbit may send their entries in the other order
//! than they appended, which is transport, not tampering (a record outside the chain keeps its place
//! after the record before it). An entry whose `_HOSTNAME` is not the rabbit its record names is
//! noted: a journal that carries another rabbit's records is worth a look. Runs `journalctl`
//! (systemd's), reading its output as it comes; never writes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use ha::audit::LogFile;
use serde_json::Value;

use super::error::EventsError;
use super::records::Record;
use super::sources::Chain;

/// A field's value in `journalctl -o json`: a string, or an array of bytes when not printable.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        _ => None,
    }
}

/// One rabbit's entries: its records' lines with their place in `seq` order and the record parsed
/// from each (once), and the hosts that sent them.
#[derive(Default)]
struct Entries {
    lines: Vec<(u64, String, Option<Record>)>,
    hosts: BTreeSet<String>,
}

/// Groups `journalctl -o json` lines into one chain per rabbit; `origin` names the journal directory.
pub fn chains_of(origin: &str, output: impl BufRead) -> Result<Vec<Chain>, EventsError> {
    let mut by: BTreeMap<String, Entries> = BTreeMap::new();
    for line in output.lines() {
        let line = line.map_err(|e| EventsError::Journal(format!("reading journalctl's output: {e}")))?;
        let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
        let Some(record) = entry.get(ha::audit::journal::RECORD_FIELD).and_then(text) else { continue };
        let host = entry.get("_HOSTNAME").and_then(text).unwrap_or_default();
        let parsed = Record::parse(&record);
        let rabbit =
            parsed.as_ref().map(|r| r.rabbit.clone()).filter(|r| !r.is_empty()).unwrap_or_else(|| host.clone());
        let e = by.entry(rabbit).or_default();
        let seq = parsed.as_ref().and_then(|r| r.raw.get("seq").and_then(Value::as_u64));
        let place = seq.unwrap_or_else(|| e.lines.last().map_or(0, |l| l.0));
        e.lines.push((place, record, parsed));
        if !host.is_empty() {
            e.hosts.insert(host);
        }
    }
    Ok(by
        .into_iter()
        .map(|(rabbit, mut e)| {
            e.lines.sort_by_key(|l| l.0);
            let bytes: String = e.lines.iter().map(|(_, l, _)| format!("{l}\n")).collect();
            let origin = format!("journal {origin} (rabbit {rabbit})");
            let notes = e
                .hosts
                .iter()
                .filter(|h| **h != rabbit)
                .map(|h| format!("{origin}: entries from host {h} carry records of rabbit {rabbit}"))
                .collect();
            Chain {
                files: vec![LogFile { name: origin.clone(), bytes: bytes.into_bytes() }],
                records: e.lines.into_iter().filter_map(|(_, _, r)| r).collect(),
                origin,
                dir_name: None,
                notes,
                from_journal: true,
                log_notes: Vec::new(),
            }
        })
        .collect())
}

/// The chains of the journal files in `dir` (`journalctl --directory`).
pub fn chains(dir: &Path) -> Result<Vec<Chain>, EventsError> {
    let ident = format!("SYSLOG_IDENTIFIER={}", ha::audit::journal::IDENT);
    let fields = format!("--output-fields={},_HOSTNAME", ha::audit::journal::RECORD_FIELD);
    let mut child = Command::new("journalctl")
        .arg("--directory")
        .arg(dir)
        .args(["--output=json", "--all", "--no-pager", "--quiet", &fields, &ident])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EventsError::Journal(format!("cannot run journalctl ({e}): it comes with systemd")))?;
    let stdout = child.stdout.take().expect("piped");
    let chains = chains_of(&dir.display().to_string(), std::io::BufReader::new(stdout));
    let out = child.wait_with_output().map_err(|e| EventsError::Journal(format!("journalctl: {e}")))?;
    if !out.status.success() {
        return Err(EventsError::Journal(format!(
            "journalctl --directory {} failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    chains
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_one_chain_per_rabbit_in_seq_order() {
        let entry = |host: &str, rabbit: &str, seq: Option<u64>| {
            let seq = seq.map(|s| format!(", \"seq\": {s}")).unwrap_or_default();
            let record = format!("{{\"recorder_node\": \"{rabbit}\", \"status\": \"completed\"{seq}}}");
            serde_json::json!({ "GFS2_FENCE_RECORD": record, "_HOSTNAME": host }).to_string()
        };
        let bytes: Vec<u8> = "{\"GFS2_FENCE_RECORD\": [123, 125], \"_HOSTNAME\": \"r1\"}".bytes().collect();
        let out = [
            entry("r1", "r1", Some(2)),
            entry("r2", "r2", Some(1)),
            entry("r1", "r1", Some(1)),
            entry("r1", "r1", None),
            entry("r9", "r2", Some(2)),
            "not json".into(),
            String::from_utf8(bytes).unwrap(),
        ]
        .join("\n");
        let chains = chains_of("/j", out.as_bytes()).unwrap();
        assert_eq!(chains.len(), 2);
        let seqs = |c: &Chain| -> Vec<Option<u64>> {
            c.records.iter().map(|r| r.raw.get("seq").and_then(Value::as_u64)).collect()
        };
        assert_eq!(chains[0].origin, "journal /j (rabbit r1)");
        assert_eq!(seqs(&chains[0]), [Some(1), None, None, Some(2)]);
        assert_eq!(seqs(&chains[1]), [Some(1), Some(2)]);
        assert_eq!(chains[1].notes, ["journal /j (rabbit r2): entries from host r9 carry records of rabbit r2"]);
    }
}
