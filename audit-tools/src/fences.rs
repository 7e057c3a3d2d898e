//! Records paired into fences (pure): a fence is its `requested` record and its end (`completed` or
//! `failed`), an unfence its `unfencing` and `unfenced`, paired by request id. A record without a
//! request id is a fence of its own: one refused before any request was written (no live watcher,
//! a bad option) and one recorded from Pacemaker's alerts. The reports pair first and filter
//! after, so that a filter keeps or drops a whole fence: `--status failed` keeps the failed fences
//! with their request time and latency, and a window that holds a request keeps its end.

use std::collections::BTreeMap;

use super::records::{Filter, Record};

/// One fence or unfence as its records tell it.
#[derive(Debug, Clone, Copy)]
pub struct Fence<'a> {
    /// The record of the request (`requested`, `unfencing`), if there is one.
    pub asked: Option<&'a Record>,
    /// The record of its end, if there is one yet.
    pub ended: Option<&'a Record>,
}

impl<'a> Fence<'a> {
    /// The record it is known by first: the request's, else its end's.
    pub fn first(&self) -> &'a Record {
        self.asked.or(self.ended).expect("a fence has a record")
    }

    /// Milliseconds from the request to the end, on the agent's clock.
    pub fn latency_ms(&self) -> Option<u64> {
        Some(self.ended?.elapsed_ms?.saturating_sub(self.asked?.elapsed_ms?))
    }

    /// Its records.
    fn records(&self) -> impl Iterator<Item = &'a Record> {
        self.asked.into_iter().chain(self.ended)
    }

    /// Whether the fence passes `f`: its time is its first record's; it has a status when one of its
    /// records has it; it names a node, file system, rabbit or cluster when one of its records does.
    pub fn passes(&self, f: &Filter) -> bool {
        f.keeps_time(self.first())
            && f.keeps_action(self.first())
            && self.records().any(|r| f.keeps_status(r))
            && self.records().any(|r| f.keeps_names(r))
    }
}

/// The fences of `records` (in their order), each once, in the order of their first record.
pub fn pair(records: &[Record]) -> Vec<Fence<'_>> {
    let mut fences: Vec<Fence> = Vec::new();
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for r in records {
        let start = matches!(r.status.as_str(), "requested" | "unfencing");
        let i = match r.request_id.as_deref() {
            Some(id) => *by_id.entry(id).or_insert_with(|| {
                fences.push(Fence { asked: None, ended: None });
                fences.len() - 1
            }),
            None => {
                fences.push(Fence { asked: None, ended: None });
                fences.len() - 1
            }
        };
        if start {
            fences[i].asked = Some(r);
        } else {
            fences[i].ended = Some(r);
        }
    }
    fences
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(status: &str, id: Option<&str>, time: &str, ms: u64) -> Record {
        let mut line = serde_json::json!({"timestamp": time, "action": "off", "target_node": "n1", "status": status,
            "elapsed_ms": ms, "recorder_node": "r1"});
        if let Some(id) = id {
            line["request_id"] = id.into();
        }
        Record::parse(&line.to_string()).unwrap()
    }

    #[test]
    fn fences_pair_by_request_and_a_record_without_one_stands_alone() {
        let r = [
            rec("requested", Some("a"), "2026-11-25T10:00:00Z", 10),
            rec("failed", None, "2026-11-25T10:00:01Z", 5),
            rec("completed", Some("a"), "2026-11-25T10:00:03Z", 3010),
        ];
        let f = pair(&r);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].latency_ms(), Some(3000));
        assert_eq!((f[1].first().status.as_str(), f[1].latency_ms()), ("failed", None));
    }

    #[test]
    fn a_filter_keeps_or_drops_a_whole_fence() {
        let r = [
            rec("requested", Some("a"), "2026-11-25T10:00:00Z", 10),
            rec("failed", Some("a"), "2026-11-25T10:00:04Z", 4010),
        ];
        let f = pair(&r);
        let failed = Filter { status: vec!["failed".into()], ..Filter::default() };
        assert!(f[0].passes(&failed), "the failed fence with its request");
        let window = Filter {
            until: Some(chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:02Z").unwrap().into()),
            ..Filter::default()
        };
        assert!(f[0].passes(&window) && f[0].ended.is_some(), "its end, after the window, stays with it");
        let completed = Filter { status: vec!["completed".into()], ..Filter::default() };
        assert!(!f[0].passes(&completed));
    }
}
