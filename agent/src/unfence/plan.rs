//! What an unfence of one plug does, decided from what was seen, without I/O.
//!
//! nnf-sos fences again whatever request for the node it still finds once the node's record is
//! gone: its block-storage reconcile (`scanFenceRequests`) takes a request as done only while an
//! answer of the same name stands. So:
//! - a request naming the node with no answer of its name is a fence still to come (whoever wrote
//!   it): the unfence is refused, nothing moves;
//! - an agent holding a request's holder lock for the node waits for a fence (its request may not be
//!   published yet): refused too;
//! - a request whose same-named answer is one of the records about to move was left behind by nnf-sos
//!   (a crash between its answer and the request's removal): it is set aside first, or it would be
//!   fenced again once its answer is gone;
//! - a request whose same-named answer stands but is not moved (a failure answer) stays: nnf-sos
//!   removes it as answered;
//! - with no record standing there is nothing to do, which is not an error (an unfence is
//!   idempotent).

use crate::standing::Standing;

/// A request file for the plug, as seen in nnf-sos's request directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// Its file name.
    pub name: String,
    /// Whether an answer of the same name is in the response directory.
    pub answered: bool,
}

/// Everything the decision needs, for one plug.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Its standing records, as listed at the start.
    pub records: Vec<Standing>,
    /// The requests naming it.
    pub requests: Vec<SeenRequest>,
    /// The request names whose agents hold their holder lock for it (fences being asked for).
    pub waiting: Vec<String>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No record stands: nothing to move.
    Nothing,
    /// A fence of the node is pending or being asked for: nothing may move.
    Refuse {
        /// Requests with no answer of their name.
        pending: Vec<String>,
        /// Requests whose agents wait.
        waiting: Vec<String>,
    },
    /// Set these requests aside, then move these records.
    Move {
        /// Requests nnf-sos left behind, answered by a record about to move.
        set_aside: Vec<String>,
        /// The records.
        records: Vec<Standing>,
    },
}

/// Decides what the unfence of what `seen` shows does.
pub fn decide(seen: Seen) -> Plan {
    let pending: Vec<String> = seen.requests.iter().filter(|r| !r.answered).map(|r| r.name.clone()).collect();
    if !pending.is_empty() || !seen.waiting.is_empty() {
        return Plan::Refuse { pending, waiting: seen.waiting };
    }
    if seen.records.is_empty() {
        return Plan::Nothing;
    }
    let moving: Vec<String> = seen.records.iter().map(Standing::name).collect();
    let set_aside = seen.requests.into_iter().filter(|r| moving.contains(&r.name)).map(|r| r.name).collect();
    Plan::Move { set_aside, records: seen.records }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Standing {
        Standing {
            path: format!("/r/{name}").into(),
            id: (1, name.len() as u64),
            target: "c1".into(),
            request_id: None,
            timestamp: None,
            action_performed: "off".into(),
            message: String::new(),
            since: None,
            holds_storage: true,
        }
    }

    fn request(name: &str, answered: bool) -> SeenRequest {
        SeenRequest { name: name.into(), answered }
    }

    #[test]
    fn an_unfence_moves_the_records_and_sets_aside_only_the_requests_they_answer() {
        let seen = Seen {
            records: vec![record("a.json"), record(".b.json")],
            requests: vec![request("a.json", true), request("failed.json", true)],
            waiting: vec![],
        };
        assert_eq!(
            decide(seen.clone()),
            Plan::Move { set_aside: vec!["a.json".into()], records: seen.records.clone() },
            "a request answered by a failure answer that stays is nnf-sos's to remove"
        );
    }

    #[test]
    fn a_pending_or_waited_for_fence_refuses_the_unfence_whatever_stands() {
        for records in [vec![], vec![record("a.json")]] {
            let seen = Seen { records: records.clone(), requests: vec![request("new.json", false)], waiting: vec![] };
            assert_eq!(decide(seen), Plan::Refuse { pending: vec!["new.json".into()], waiting: vec![] });
            let seen = Seen { records, requests: vec![], waiting: vec!["w.json".into()] };
            assert_eq!(decide(seen), Plan::Refuse { pending: vec![], waiting: vec!["w.json".into()] });
        }
    }

    #[test]
    fn no_standing_record_is_nothing_to_do() {
        assert_eq!(decide(Seen { requests: vec![request("x.json", true)], ..Seen::default() }), Plan::Nothing);
    }
}
