//! `discovery.json`: the leader watcher's per-node snapshot of GFS2 file systems, read by the agent
//! at fence time so that discovery costs the fence nothing.
//!
//! Each round the leader runs every enabled source and merges the results into the previous
//! snapshot ([`Snapshot::update`], no I/O): a source that answered replaces what it said before;
//! a node it no longer lists keeps its last entry for `memory` (a failed node leaves the DLM member
//! lists before it is fenced, and the record needs its state *before* the failure); a source that
//! failed keeps its previous entries (they age, with their time). Times are CLOCK_BOOTTIME of the
//! boot named in the file (plus RFC 3339 for people): a snapshot from another boot is not used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::run::SourceResult;
use crate::fsio::{self, ReadError};
use crate::os::clock::BootTime;
use crate::protocol::provenance::{Provenance, Source};
use crate::spool::Spool;

/// The snapshot's format version.
pub const VERSION: u32 = 1;
/// Largest snapshot read.
pub const MAX_SIZE: u64 = 16 * 1024 * 1024;

/// The snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`VERSION`].
    pub version: u32,
    /// When this round started, RFC 3339.
    pub taken: String,
    /// When this round started, CLOCK_BOOTTIME.
    pub taken_boottime_ns: u64,
    /// The boot of that clock.
    pub boot_id: String,
    /// The leader that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watcher_id: Option<String>,
    /// Its leader epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The period of the rounds.
    pub interval_ms: u64,
    /// How each source did in this round.
    pub sources: BTreeMap<Source, SourceReport>,
    /// Per compute node: the merged list and each source's part.
    pub nodes: BTreeMap<String, NodeEntry>,
}

/// One source's last round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Whether it answered.
    pub ok: bool,
    /// When it ran, RFC 3339.
    pub taken: String,
    /// When it ran, CLOCK_BOOTTIME.
    pub taken_boottime_ns: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Remarks (unattributed file systems, unnamed node ids, dependencies...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One node's file systems.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// All sources' names, sorted and de-duplicated (empty: none known).
    pub gfs2_filesystems: Vec<String>,
    /// What each source said, and when.
    pub sources: BTreeMap<Source, Seen>,
}

/// What one source said about a node, and when it last said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The file systems.
    pub filesystems: Vec<String>,
    /// When, RFC 3339.
    pub seen: String,
    /// When, CLOCK_BOOTTIME.
    pub seen_boottime_ns: u64,
}

/// Who takes a round and when.
#[derive(Debug, Clone)]
pub struct Round {
    /// When it started.
    pub taken: BootTime,
    /// The same, RFC 3339.
    pub taken_rfc3339: String,
    /// This boot.
    pub boot_id: String,
    /// The leader.
    pub watcher_id: Option<String>,
    /// Its epoch.
    pub epoch: Option<u64>,
    /// The period of the rounds.
    pub interval: Duration,
    /// How long a node no longer listed by an answering source keeps its entry.
    pub memory: Duration,
}

/// The snapshot's path.
pub fn path(spool: &Spool) -> PathBuf {
    spool.base().join("discovery.json")
}

/// Reads the snapshot: `Ok(None)` when there is none.
pub fn read(spool: &Spool) -> Result<Option<Snapshot>, String> {
    read_with(spool, |bytes| serde_json::from_slice(bytes))
}

/// Reads the snapshot keeping only the entries of `names` (the agent's lookup at fence time): the
/// other nodes are skipped by the parser without being built, so the cost stays near a plain read
/// of the file however many nodes it holds.
pub fn read_for(spool: &Spool, names: &[&str]) -> Result<Option<Snapshot>, String> {
    read_with(spool, |bytes| {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let snap = serde::de::DeserializeSeed::deserialize(Only(names), &mut de)?;
        de.end()?;
        Ok(snap)
    })
}

fn read_with(
    spool: &Spool,
    parse: impl FnOnce(&[u8]) -> Result<Snapshot, serde_json::Error>,
) -> Result<Option<Snapshot>, String> {
    let p = path(spool);
    match fsio::read_capped(&p, MAX_SIZE) {
        Ok(bytes) => parse(&bytes).map(Some).map_err(|e| format!("{}: {e}", p.display())),
        Err(ReadError::Gone) => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// A snapshot's fields other than `nodes`.
#[derive(Deserialize)]
struct Head {
    version: u32,
    taken: String,
    taken_boottime_ns: u64,
    boot_id: String,
    #[serde(default)]
    watcher_id: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
    interval_ms: u64,
    sources: BTreeMap<Source, SourceReport>,
}

/// Deserializes a snapshot keeping only the nodes named.
struct Only<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for Only<'_> {
    type Value = Snapshot;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Snapshot, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Only<'_> {
    type Value = Snapshot;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a discovery snapshot")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Snapshot, A::Error> {
        let mut head = serde_json::Map::new();
        let mut nodes = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "nodes" {
                nodes = map.next_value_seed(Nodes(self.0))?;
            } else {
                head.insert(key, map.next_value()?);
            }
        }
        let h: Head = serde_json::from_value(head.into()).map_err(serde::de::Error::custom)?;
        Ok(Snapshot {
            version: h.version,
            taken: h.taken,
            taken_boottime_ns: h.taken_boottime_ns,
            boot_id: h.boot_id,
            watcher_id: h.watcher_id,
            epoch: h.epoch,
            interval_ms: h.interval_ms,
            sources: h.sources,
            nodes,
        })
    }
}

/// The `nodes` map, keeping the entries named.
struct Nodes<'a>(&'a [&'a str]);

impl<'de> serde::de::DeserializeSeed<'de> for Nodes<'_> {
    type Value = BTreeMap<String, NodeEntry>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Nodes<'_> {
    type Value = BTreeMap<String, NodeEntry>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map of nodes")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.0.contains(&key.as_str()) {
                kept.insert(key, map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(kept)
    }
}

impl Snapshot {
    /// The next snapshot: `previous` (if from this boot) updated with a round's `results`.
    pub fn update(previous: Option<&Snapshot>, round: &Round, results: &[SourceResult]) -> Snapshot {
        let previous = previous.filter(|p| p.boot_id == round.boot_id && p.version == VERSION);
        let mut per_source: BTreeMap<String, BTreeMap<Source, Seen>> = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for r in results {
            let kept =
                |seen: &Seen| round.taken.0.saturating_sub(seen.seen_boottime_ns) <= round.memory.as_nanos() as u64;
            // What this source said before, about nodes it no longer lists (or all, if it failed).
            if let Some(p) = previous {
                for (node, entry) in &p.nodes {
                    if let Some(seen) = entry.sources.get(&r.source) {
                        let relisted = r.outcome.as_ref().is_ok_and(|f| f.nodes.contains_key(node));
                        if !relisted && kept(seen) {
                            per_source.entry(node.clone()).or_default().insert(r.source, seen.clone());
                        }
                    }
                }
            }
            if let Ok(found) = &r.outcome {
                for (node, fs) in &found.nodes {
                    let seen = Seen {
                        filesystems: fs.iter().cloned().collect(),
                        seen: r.taken.clone(),
                        seen_boottime_ns: r.taken_boottime_ns,
                    };
                    per_source.entry(node.clone()).or_default().insert(r.source, seen);
                }
            }
            sources.insert(
                r.source,
                SourceReport {
                    ok: r.outcome.is_ok(),
                    taken: r.taken.clone(),
                    taken_boottime_ns: r.taken_boottime_ns,
                    duration_ms: r.duration.as_millis() as u64,
                    error: r.outcome.as_ref().err().cloned(),
                    notes: r.outcome.as_ref().map(|f| f.notes.clone()).unwrap_or_default(),
                },
            );
        }
        let nodes = per_source
            .into_iter()
            .map(|(node, sources)| {
                let mut all: Vec<String> = sources.values().flat_map(|s| s.filesystems.iter().cloned()).collect();
                all.sort();
                all.dedup();
                (node, NodeEntry { gfs2_filesystems: all, sources })
            })
            .collect();
        Snapshot {
            version: VERSION,
            taken: round.taken_rfc3339.clone(),
            taken_boottime_ns: round.taken.0,
            boot_id: round.boot_id.clone(),
            watcher_id: round.watcher_id.clone(),
            epoch: round.epoch,
            interval_ms: round.interval.as_millis() as u64,
            sources,
            nodes,
        }
    }

    /// The snapshot's age at `now`, or `None` if it belongs to another boot.
    pub fn age(&self, now: BootTime, boot_id: &str) -> Option<Duration> {
        (self.boot_id == boot_id).then(|| Duration::from_nanos(now.0.saturating_sub(self.taken_boottime_ns)))
    }

    /// The file systems of the first of `names` the snapshot knows (the original
    /// `["none-detected"]` when none or empty), with their provenance.
    pub fn for_node(&self, names: &[&str], age: Duration) -> (Vec<String>, Provenance) {
        let entry = names.iter().find_map(|n| self.nodes.get(*n));
        let list = super::found::recorded(entry.map(|e| e.gfs2_filesystems.clone()).unwrap_or_default());
        let by_source = entry.map(|e| e.sources.iter().map(|(s, seen)| (*s, seen.filesystems.clone())).collect());
        let errors = self.sources.iter().filter_map(|(s, r)| r.error.clone().map(|e| (*s, e))).collect();
        let provenance = Provenance {
            method: "snapshot".into(),
            taken: Some(self.taken.clone()),
            age_ms: Some(age.as_millis() as u64),
            duration_ms: None,
            by_source: by_source.unwrap_or_default(),
            errors,
        };
        (list, provenance)
    }
}

/// The file systems of the first of `names` in a live discovery's results, with their provenance.
pub fn live_for_node(results: &[SourceResult], names: &[&str], duration: Duration) -> (Vec<String>, Provenance) {
    let mut provenance =
        Provenance { method: "live".into(), duration_ms: Some(duration.as_millis() as u64), ..Provenance::default() };
    let mut all = Vec::new();
    for r in results {
        match &r.outcome {
            Ok(found) => {
                if let Some(fs) = super::found::lookup(&found.nodes, names) {
                    all.extend(fs.iter().cloned());
                    provenance.by_source.insert(r.source, fs.iter().cloned().collect());
                }
            }
            Err(e) => {
                provenance.errors.insert(r.source, e.clone());
            }
        }
    }
    (super::found::recorded(all), provenance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Found;
    use std::collections::BTreeSet;

    const S: u64 = 1_000_000_000;

    fn round(at_s: u64) -> Round {
        Round {
            taken: BootTime(at_s * S),
            taken_rfc3339: format!("t{at_s}"),
            boot_id: "boot".into(),
            watcher_id: Some("w1".into()),
            epoch: Some(3),
            interval: Duration::from_secs(30),
            memory: Duration::from_secs(600),
        }
    }

    fn result(source: Source, at_s: u64, nodes: &[(&str, &[&str])]) -> SourceResult {
        let nodes = nodes
            .iter()
            .map(|(n, fs)| (n.to_string(), fs.iter().map(|f| f.to_string()).collect::<BTreeSet<_>>()))
            .collect();
        SourceResult {
            source,
            taken: format!("t{at_s}"),
            taken_boottime_ns: at_s * S,
            duration: Duration::from_millis(5),
            outcome: Ok(Found { nodes, notes: vec![] }),
        }
    }

    fn failed(source: Source, at_s: u64) -> SourceResult {
        SourceResult { outcome: Err("dlm_tool ls failed".into()), ..result(source, at_s, &[]) }
    }

    #[test]
    fn sources_merge_per_node_sorted_and_unique() {
        let s = Snapshot::update(
            None,
            &round(100),
            &[
                result(Source::Kubernetes, 100, &[("c1", &["fs-b"]), ("c2", &["fs-a"])]),
                result(Source::Dlm, 100, &[("c1", &["fs-b", "fs-a"]), ("c3", &[])]),
            ],
        );
        assert_eq!(s.nodes["c1"].gfs2_filesystems, ["fs-a", "fs-b"]);
        assert_eq!(s.nodes["c1"].sources[&Source::Kubernetes].filesystems, ["fs-b"]);
        assert!(s.nodes["c3"].gfs2_filesystems.is_empty());
        let (list, p) = s.for_node(&["nope", "c1"], Duration::from_secs(2));
        assert_eq!(list, ["fs-a", "fs-b"]);
        assert_eq!((p.method.as_str(), p.age_ms), ("snapshot", Some(2000)));
        assert_eq!(s.for_node(&["c3"], Duration::ZERO).0, [super::super::NONE_DETECTED]);
        assert_eq!(s.for_node(&["c9"], Duration::ZERO).0, [super::super::NONE_DETECTED]);
    }

    #[test]
    fn reading_for_some_nodes_keeps_exactly_those() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::new(d.path());
        std::fs::create_dir(d.path().join("tmp")).unwrap();
        let s = Snapshot::update(
            None,
            &round(100),
            &[result(Source::Dlm, 100, &[("c1", &["fs-b"]), ("c2", &["fs-a"]), ("c3", &[])]), failed(Source::Cib, 100)],
        );
        assert_eq!(read_for(&spool, &["c2"]).unwrap(), None);
        fsio::write_replace(&d.path().join("tmp"), &path(&spool), &serde_json::to_vec(&s).unwrap()).unwrap();
        let all = read(&spool).unwrap().unwrap();
        assert_eq!(all, s);
        let some = read_for(&spool, &["c2", "c9"]).unwrap().unwrap();
        assert_eq!(some.nodes.keys().collect::<Vec<_>>(), ["c2"]);
        assert_eq!(Snapshot { nodes: s.nodes.clone(), ..some.clone() }, s, "everything else is read in full");
        std::fs::write(path(&spool), b"{\"version\":1,\"nodes\":{}} trailing").unwrap();
        assert!(read_for(&spool, &["c2"]).is_err());
    }

    #[test]
    fn a_node_that_left_the_dlm_keeps_its_state_from_before_for_the_memory() {
        let first =
            Snapshot::update(None, &round(100), &[result(Source::Dlm, 100, &[("c1", &["fs-a"]), ("c2", &["fs-a"])])]);
        // c1 failed and left the lockspace.
        let second = Snapshot::update(Some(&first), &round(130), &[result(Source::Dlm, 130, &[("c2", &["fs-a"])])]);
        assert_eq!(second.nodes["c1"].gfs2_filesystems, ["fs-a"]);
        assert_eq!(second.nodes["c1"].sources[&Source::Dlm].seen_boottime_ns, 100 * S);
        assert_eq!(second.nodes["c2"].sources[&Source::Dlm].seen_boottime_ns, 130 * S);
        // Past the memory, it is gone.
        let late = Snapshot::update(Some(&second), &round(701), &[result(Source::Dlm, 701, &[("c2", &["fs-a"])])]);
        assert!(!late.nodes.contains_key("c1"));
    }

    #[test]
    fn a_failed_source_keeps_its_previous_entries_and_reports_why() {
        let first = Snapshot::update(None, &round(100), &[result(Source::Dlm, 100, &[("c1", &["fs-a"])])]);
        let second = Snapshot::update(Some(&first), &round(130), &[failed(Source::Dlm, 130)]);
        assert_eq!(second.nodes["c1"].gfs2_filesystems, ["fs-a"]);
        assert!(!second.sources[&Source::Dlm].ok);
        let (_, p) = second.for_node(&["c1"], Duration::ZERO);
        assert_eq!(p.errors[&Source::Dlm], "dlm_tool ls failed");
        // A source switched off forgets; a snapshot from another boot is not carried over.
        assert!(Snapshot::update(Some(&second), &round(160), &[]).nodes.is_empty());
        let other_boot = Round { boot_id: "other".into(), ..round(160) };
        assert!(Snapshot::update(Some(&second), &other_boot, &[failed(Source::Dlm, 160)]).nodes.is_empty());
        assert_eq!(second.age(BootTime(131 * S), "boot"), Some(Duration::from_secs(1)));
        assert_eq!(second.age(BootTime(131 * S), "other"), None);
    }

    #[test]
    fn live_results_give_the_node_and_the_errors() {
        let results = [result(Source::Kubernetes, 1, &[("c1", &["fs-b"])]), failed(Source::Dlm, 1)];
        let (list, p) = live_for_node(&results, &["c1"], Duration::from_millis(40));
        assert_eq!(list, ["fs-b"]);
        assert_eq!(p.method, "live");
        assert!(p.errors.contains_key(&Source::Dlm));
        assert_eq!(live_for_node(&results, &["c2"], Duration::ZERO).0, [super::super::NONE_DETECTED]);
    }
}
