//! The checker, in the spirit of Jepsen's queue checker: what went in must come out, once. Pure: it
//! judges what the run observed (spool, ledger, logs, agents' exits, the chaos schedule).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::test_executor::LedgerLine;
use ha::protocol::response::{Outcome, Response};
use ha::spool::attempts::Attempt;

/// One agent run.
#[derive(Debug, Clone)]
pub struct AgentRun {
    /// Its unique `nodename` (how its request is found).
    pub nodename: String,
    /// Its exit code.
    pub exit: Option<i32>,
    /// Start to exit.
    pub elapsed: Duration,
}

/// One act of the attacker.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosEvent {
    /// CLOCK_BOOTTIME.
    pub at_ns: u64,
    /// What was done.
    pub kind: String,
    /// To which watcher.
    pub victim: Option<String>,
}

/// Everything the run saw.
#[derive(Debug, Default)]
pub struct Observations {
    /// Request ids the agents published (their `requested` records) or found as files.
    pub published: BTreeSet<String>,
    /// Request id by the agent's nodename.
    pub id_of_nodename: HashMap<String, String>,
    /// Responses by request id.
    pub responses: HashMap<String, Response>,
    /// The executor's ledger.
    pub ledger: Vec<LedgerLine>,
    /// `attempts/` by request id.
    pub attempts: HashMap<String, Vec<Attempt>>,
    /// Every agent run.
    pub agents: Vec<AgentRun>,
    /// The chaos schedule as carried out.
    pub chaos: Vec<ChaosEvent>,
    /// Files left in `claimed/` or `tmp/` after the drain.
    pub leftovers: Vec<String>,
    /// Longest time with nobody holding `leader.lock`.
    pub longest_leader_gap: Duration,
    /// Each request's submission time (its file's mtime, ns), target and action.
    pub submitted: HashMap<String, (u128, String, String)>,
    /// Requests their agent took back unanswered when it gave up (v2 clients, external responders).
    pub taken_back: BTreeSet<String>,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The seed that replays the run.
    pub seed: u64,
    /// Agents run.
    pub agents: usize,
    /// Agents that exited 0.
    pub agents_succeeded: usize,
    /// Requests published.
    pub requests: usize,
    /// Fence executions started.
    pub executions: usize,
    /// Chaos events by kind.
    pub chaos: BTreeMap<String, usize>,
    /// Published requests with no response.
    pub lost: Vec<String>,
    /// Extra executions explained by a retry after failure or a kill/freeze of the previous one's watcher.
    pub duplicated_explained: usize,
    /// Extra executions nothing explains.
    pub duplicated_unexplained: Vec<String>,
    /// Executions or responses for requests never made.
    pub unexpected: Vec<String>,
    /// Agents that exited 0 without a successful execution behind their answer.
    pub wrong_answer: Vec<String>,
    /// Agents that gave up (exit 1) although their request later succeeded.
    pub late_success: usize,
    /// Requests executed after a request of another action for the same target, written at least
    /// 100 ms after them, was acknowledged (agent exit 0): an earlier request undid an acknowledged
    /// result.
    pub order_violations: Vec<String>,
    /// Files left in `claimed/` or `tmp/`.
    pub leftovers: Vec<String>,
    /// Longest leader gap, ms.
    pub leader_gap_ms: u64,
    /// Agent latency percentiles, ms.
    pub latency_p50_ms: u64,
    /// p99.
    pub latency_p99_ms: u64,
    /// max.
    pub latency_max_ms: u64,
}

impl Summary {
    /// Whether the run found nothing wrong.
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated_unexplained.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_answer.is_empty()
            && self.order_violations.is_empty()
            && self.leftovers.is_empty()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_millis() as u64
}

/// How much earlier a request's file must have been written than another's to count as submitted
/// before it: an agent writes its request (the mtime), fsyncs it, then renames it into `requests/`, so
/// two agents racing for one target can publish in the other order within this slack — the watchers
/// can only order what has been published.
const PUBLICATION_SLACK_NS: u128 = 100_000_000;

/// The request whose execution answered `id` (itself, or the one a coalesced answer names).
fn executed_for(id: &str, r: &Response) -> String {
    if r.outcome == Some(Outcome::Coalesced) {
        if let Some(rest) = r.message.strip_prefix("answered from the execution of request ") {
            return rest.chars().take(36).collect();
        }
    }
    id.to_string()
}

/// Judges a run.
pub fn analyse(o: &Observations, seed: u64) -> Summary {
    let starts: Vec<&LedgerLine> = o.ledger.iter().filter(|l| l.event == "start").collect();
    let (by_id, unexpected) = executions_by_request(o, &starts);
    let (explained, unexplained) = repeated_executions(o, by_id);
    let lost: Vec<String> = o
        .published
        .iter()
        .filter(|id| !o.responses.contains_key(*id) && !o.taken_back.contains(*id))
        .cloned()
        .collect();
    let (wrong_answer, late_success) = agents_answers(o);
    let mut latencies: Vec<Duration> = o.agents.iter().map(|a| a.elapsed).collect();
    latencies.sort();
    let mut chaos = BTreeMap::new();
    for c in &o.chaos {
        *chaos.entry(c.kind.clone()).or_insert(0) += 1;
    }
    Summary {
        seed,
        agents: o.agents.len(),
        agents_succeeded: o.agents.iter().filter(|a| a.exit == Some(0)).count(),
        requests: o.published.len(),
        executions: starts.len(),
        chaos,
        lost,
        duplicated_explained: explained,
        duplicated_unexplained: unexplained,
        unexpected,
        wrong_answer,
        late_success,
        order_violations: order_violations(o, &starts),
        leftovers: o.leftovers.clone(),
        leader_gap_ms: o.longest_leader_gap.as_millis() as u64,
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        latency_max_ms: latencies.last().map_or(0, |d| d.as_millis() as u64),
    }
}

/// The executions of each published request, and what no published request explains (an
/// execution or a response for an unknown one).
fn executions_by_request<'a>(
    o: &Observations,
    starts: &[&'a LedgerLine],
) -> (BTreeMap<String, Vec<&'a LedgerLine>>, Vec<String>) {
    let mut by_id: BTreeMap<String, Vec<&LedgerLine>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for s in starts {
        match &s.request_id {
            Some(id) if o.published.contains(id) => by_id.entry(id.clone()).or_default().push(s),
            other => unexpected.push(format!("execution for unknown request {other:?}")),
        }
    }
    unexpected.extend(
        o.responses
            .keys()
            .filter(|id| !o.published.contains(*id))
            .map(|id| format!("response for unknown request {id}")),
    );
    (by_id, unexpected)
}

/// Each execution of a request after its first, explained (the one before failed, or its watcher
/// was hit by the chaos while it ran) or not: how many explained, and the requests of the others.
fn repeated_executions(o: &Observations, by_id: BTreeMap<String, Vec<&LedgerLine>>) -> (usize, Vec<String>) {
    // pids are reused over a long run: an execution's end has its pid, its request and a later time.
    let end_of = |start: &LedgerLine| {
        o.ledger.iter().find(|l| {
            l.event == "end"
                && l.pid == start.pid
                && l.request_id == start.request_id
                && l.boottime_ns >= start.boottime_ns
        })
    };
    let (mut explained, mut unexplained) = (0, Vec::new());
    for (id, mut runs) in by_id {
        runs.sort_by_key(|l| l.boottime_ns);
        for pair in runs.windows(2) {
            let prev = pair[0];
            let retry = end_of(prev).is_some_and(|e| e.exit != Some(0));
            // The watcher that ran it, and when it spawned it (a kill can land between the spawn and
            // the executor's first ledger line: the death signal reaches the child asynchronously).
            let attempt = o.attempts.get(&id).and_then(|a| a.iter().find(|a| a.pid == prev.pid));
            // (attempts are per request, so a pid found there is this execution's.)
            let hit = attempt.is_some_and(|a| {
                let from = a.started_boottime_ns.min(prev.boottime_ns);
                o.chaos.iter().any(|c| {
                    c.victim.as_deref() == Some(a.watcher_id.as_str())
                        && c.at_ns >= from
                        && c.at_ns <= pair[1].boottime_ns
                })
            });
            if retry || hit {
                explained += 1;
            } else {
                unexplained.push(id.clone());
            }
        }
    }
    (explained, unexplained)
}

/// Agents told success that no successful execution backs (by node name), and how many agents
/// gave up on a request later answered success.
fn agents_answers(o: &Observations) -> (Vec<String>, usize) {
    let succeeded = |id: &str| {
        o.ledger.iter().any(|l| l.event == "end" && l.request_id.as_deref() == Some(id) && l.exit == Some(0))
    };
    let mut wrong_answer = Vec::new();
    let mut late_success = 0;
    for a in &o.agents {
        let id = o.id_of_nodename.get(&a.nodename);
        let resp = id.and_then(|id| o.responses.get(id).map(|r| (id, r)));
        let backed = resp.is_some_and(|(id, r)| r.success && succeeded(&executed_for(id, r)));
        if a.exit == Some(0) && !backed {
            wrong_answer.push(a.nodename.clone());
        }
        if a.exit != Some(0) && resp.is_some_and(|(_, r)| r.success) {
            late_success += 1;
        }
    }
    (wrong_answer, late_success)
}

/// Per target, no request submitted before an acknowledged one, of another action, may start
/// after the acknowledged one's execution started.
fn order_violations(o: &Observations, starts: &[&LedgerLine]) -> Vec<String> {
    let mut order_violations = Vec::new();
    for a in o.agents.iter().filter(|a| a.exit == Some(0)) {
        let Some(l) = o.id_of_nodename.get(&a.nodename) else { continue };
        let (Some((l_at, target, action)), Some(r)) = (o.submitted.get(l), o.responses.get(l)) else { continue };
        let primary = executed_for(l, r);
        let Some(l_start) =
            starts.iter().filter(|s| s.request_id.as_deref() == Some(&primary)).map(|s| s.boottime_ns).max()
        else {
            continue;
        };
        for s in starts.iter().filter(|s| s.target == *target && s.boottime_ns > l_start) {
            let Some(rid) = s.request_id.as_deref() else { continue };
            if let Some((r_at, _, r_action)) = o.submitted.get(rid) {
                if r_at.saturating_add(PUBLICATION_SLACK_NS) < *l_at && r_action != action {
                    order_violations
                        .push(format!("{rid} ({r_action}) ran after the acknowledged later {l} ({action})"));
                }
            }
        }
    }
    order_violations
}

/// The one table the harness prints.
pub fn table(s: &Summary) -> String {
    let row = |name: &str, value: String, ok: bool| {
        format!("| {name:<22} | {value:<40} | {:<4} |\n", if ok { "ok" } else { "FAIL" })
    };
    let mut t =
        String::from("| check                  | value                                    |      |\n|---|---|---|\n");
    t += &row("seed", s.seed.to_string(), true);
    t += &row("agents (exit 0)", format!("{} ({})", s.agents, s.agents_succeeded), true);
    t += &row("requests published", s.requests.to_string(), true);
    t += &row("executions", s.executions.to_string(), true);
    t += &row("chaos events", format!("{:?}", s.chaos), true);
    t += &row("lost", s.lost.len().to_string(), s.lost.is_empty());
    t += &row("duplicated (explained)", s.duplicated_explained.to_string(), true);
    t +=
        &row("duplicated unexplained", s.duplicated_unexplained.len().to_string(), s.duplicated_unexplained.is_empty());
    t += &row("unexpected", s.unexpected.len().to_string(), s.unexpected.is_empty());
    t += &row("wrong answer", s.wrong_answer.len().to_string(), s.wrong_answer.is_empty());
    t += &row("late success", s.late_success.to_string(), true);
    t += &row("order violations", s.order_violations.len().to_string(), s.order_violations.is_empty());
    t += &row("leftovers", s.leftovers.len().to_string(), s.leftovers.is_empty());
    t += &row("longest leader gap", format!("{} ms", s.leader_gap_ms), true);
    t +=
        &row("latency p50/p99/max", format!("{}/{}/{} ms", s.latency_p50_ms, s.latency_p99_ms, s.latency_max_ms), true);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(event: &str, id: &str, pid: u32, at: u64, exit: Option<u8>) -> LedgerLine {
        LedgerLine {
            event: event.into(),
            request_id: Some(id.into()),
            pid,
            action: "off".into(),
            target: "t".into(),
            nodename: None,
            boottime_ns: at,
            result: None,
            exit,
        }
    }

    fn response(id: &str, success: bool) -> Response {
        Response::parse(
            format!(r#"{{"request_id":"{id}","success":{success},"action_performed":"off","target_node":"t","message":"","timestamp":""}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn each_kind_of_failure_is_caught_and_explained_duplicates_are_not_failures() {
        let mut o = Observations {
            published: ["a", "b", "c"].iter().map(|s| s.to_string()).collect(),
            ..Observations::default()
        };
        o.responses.insert("a".into(), response("a", true));
        o.responses.insert("b".into(), response("b", true));
        o.responses.insert("zzz".into(), response("zzz", true));
        o.ledger = vec![
            line("start", "a", 10, 100, None),
            line("start", "a", 11, 300, None),
            line("end", "a", 11, 400, Some(0)),
            line("start", "b", 20, 100, None),
            line("end", "b", 20, 150, Some(1)),
            line("start", "b", 21, 200, None),
            line("start", "b", 22, 500, None),
        ];
        o.attempts.insert(
            "a".into(),
            vec![Attempt {
                attempt: 1,
                watcher_id: "w1".into(),
                pid: 10,
                started_boottime_ns: 100,
                started: String::new(),
            }],
        );
        o.chaos.push(ChaosEvent { at_ns: 200, kind: "kill-holder".into(), victim: Some("w1".into()) });
        o.id_of_nodename.insert("req-b".into(), "b".into());
        o.agents.push(AgentRun { nodename: "req-b".into(), exit: Some(0), elapsed: Duration::from_millis(5) });
        let s = analyse(&o, 7);
        assert_eq!(s.lost, ["c"]);
        assert_eq!(s.duplicated_explained, 2, "a: holder killed; b: retry after failure");
        assert_eq!(s.duplicated_unexplained, ["b"], "b's third start follows one that never ended, unhit");
        assert_eq!(s.unexpected.len(), 1);
        assert_eq!(s.wrong_answer, ["req-b"], "b never succeeded in the ledger");
        assert!(!s.passed());
        assert!(table(&s).contains("| lost "));
    }

    #[test]
    fn an_earlier_request_run_after_an_acknowledged_later_one_is_an_order_violation() {
        let mut o = Observations {
            published: ["early", "late"].iter().map(|s| s.to_string()).collect(),
            ..Observations::default()
        };
        o.submitted.insert("early".into(), (1, "t".into(), "reboot".into()));
        o.submitted.insert("late".into(), (1 + 2 * PUBLICATION_SLACK_NS, "t".into(), "off".into()));
        o.responses.insert("early".into(), response("early", true));
        o.responses.insert("late".into(), response("late", true));
        o.id_of_nodename.insert("req-late".into(), "late".into());
        o.agents.push(AgentRun { nodename: "req-late".into(), exit: Some(0), elapsed: Duration::from_millis(5) });
        o.ledger = vec![
            line("start", "late", 1, 100, None),
            line("end", "late", 1, 200, Some(0)),
            line("start", "early", 2, 300, None),
            line("end", "early", 2, 400, Some(0)),
        ];
        let s = analyse(&o, 1);
        assert_eq!(s.order_violations.len(), 1, "{:?}", s.order_violations);
        assert!(!s.passed());
        o.ledger.swap(0, 2);
        o.ledger.swap(1, 3);
        for (l, at) in o.ledger.iter_mut().zip([100, 200, 300, 400]) {
            l.boottime_ns = at;
        }
        assert!(analyse(&o, 1).order_violations.is_empty(), "in submission order: no violation");
    }
}
