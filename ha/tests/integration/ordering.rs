//! Claim order: the queue index agrees with a naive model after any sequence of inserts and removes —
//! requests for one target come out in submission order, and among targets, heads follow
//! (queue_priority, deadline, age). Protects "an urgent off is never stuck behind a flood" and
//! "a target's requests run in the order Pacemaker made them".

use std::cmp::Reverse;

use proptest::prelude::*;

use ha::protocol::request::Action;
use ha::spool::queue::{Entry, Queue};

#[derive(Debug, Clone)]
enum Op {
    Insert { name: u8, target: u8, prio: i32, deadline: u64, at: u16, action: Action },
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..40, 0u8..5, -2i32..3, 0u64..4, 0u16..50, prop::sample::select(Action::ALL.to_vec()))
            .prop_map(|(name, target, prio, deadline, at, action)| Op::Insert { name, target, prio, deadline, at, action }),
        1 => (0u8..40).prop_map(Op::Remove),
    ]
}

/// The naive model: every target's earliest entry, sorted by the documented key.
fn model_heads(entries: &[Entry]) -> Vec<String> {
    let mut heads: Vec<&Entry> = Vec::new();
    for e in entries {
        let first =
            entries.iter().filter(|x| x.target == e.target).min_by_key(|x| (x.submitted_ns, x.name.clone())).unwrap();
        if first.name == e.name {
            heads.push(e);
        }
    }
    heads.sort_by_key(|e| (Reverse(e.priority), e.deadline_ns, e.submitted_ns, e.name.clone()));
    heads.into_iter().map(|e| e.name.clone()).collect()
}

proptest! {
    #[test]
    fn the_index_agrees_with_the_naive_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut q = Queue::new();
        let mut model: Vec<Entry> = Vec::new();
        for op in ops {
            match op {
                Op::Insert { name, target, prio, deadline, at, action } => {
                    let e = Entry { name: format!("r{name}"), target: format!("t{target}"), node: format!("t{target}"), action, priority: prio,
                        deadline_ns: deadline, submitted_ns: at as u128, waived: false };
                    model.retain(|x| x.name != e.name);
                    model.push(e.clone());
                    q.insert(e);
                }
                Op::Remove(name) => {
                    let name = format!("r{name}");
                    model.retain(|x| x.name != name);
                    q.remove(&name);
                }
            }
            let heads: Vec<String> = q.heads().map(|e| e.name.clone()).collect();
            prop_assert_eq!(heads, model_heads(&model));
            prop_assert_eq!(q.len(), model.len());
        }
        // Draining by always taking the first head runs each target in submission order.
        let mut last_at: std::collections::HashMap<String, (u128, String)> = Default::default();
        loop {
            let Some(e) = q.heads().next().cloned() else { break };
            let key = (e.submitted_ns, e.name.clone());
            if let Some(prev) = last_at.get(&e.target) {
                prop_assert!(*prev < key, "{} ran out of order", e.name);
            }
            last_at.insert(e.target.clone(), key);
            q.remove(&e.name);
        }
    }
}

/// What happened to one request in the model of a target's execution loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Executed as the primary of execution `n`.
    Executed(usize),
    /// Answered from execution `n`.
    Coalesced(usize),
    /// Answered `superseded`, not executed (not an acknowledgement).
    Superseded,
}

proptest! {
    /// Per target, whatever the sequence of actions: executions take requests in submission order,
    /// a request joins an execution only across requests of the same action, and the last
    /// acknowledged power action is the last one executed. This is the watcher's loop (dispatch:
    /// supersede the head or execute it with `run_of`), over the real queue.
    #[test]
    fn requests_for_one_target_take_effect_in_submission_order(
        actions in prop::collection::vec(prop::sample::select(Action::ALL.to_vec()), 1..24),
    ) {
        let mut q = Queue::new();
        for (i, action) in actions.iter().enumerate() {
            q.insert(Entry { name: format!("r{i:02}"), target: "t".into(), node: "t".into(), action: *action, priority: 0,
                deadline_ns: 0, submitted_ns: i as u128, waived: false });
        }
        let index = |name: &str| name[1..].parse::<usize>().unwrap();
        let mut fate = vec![None; actions.len()];
        let mut executions: Vec<Action> = Vec::new();
        loop {
            let Some(first) = q.of_target("t").next().cloned() else { break };
            let superseded = q.superseding("t").is_some();
            q.remove(&first.name);
            if superseded {
                fate[index(&first.name)] = Some(Fate::Superseded);
                continue;
            }
            let n = executions.len();
            executions.push(first.action);
            fate[index(&first.name)] = Some(Fate::Executed(n));
            let run: Vec<String> = q.run_of("t", first.action).map(|e| e.name.clone()).collect();
            for name in run {
                q.remove(&name);
                fate[index(&name)] = Some(Fate::Coalesced(n));
            }
        }
        let fate: Vec<Fate> = fate.into_iter().map(|f| f.expect("every request answered")).collect();
        // A request joins an execution only across requests of its own action.
        for (i, f) in fate.iter().enumerate() {
            if let Fate::Coalesced(n) = f {
                let primary = fate.iter().position(|g| *g == Fate::Executed(*n)).unwrap();
                prop_assert!(primary < i);
                prop_assert!(actions[primary..=i].iter().all(|a| *a == actions[i]), "{actions:?} {fate:?}");
            }
        }
        // Executions follow submission order.
        let primaries: Vec<usize> = (0..executions.len())
            .map(|n| fate.iter().position(|g| *g == Fate::Executed(n)).unwrap())
            .collect();
        prop_assert!(primaries.windows(2).all(|w| w[0] < w[1]));
        // The last acknowledged power action is the last one executed.
        let power = |a: &Action| *a != Action::Status;
        let last_acked = (0..actions.len())
            .filter(|i| power(&actions[*i]) && fate[*i] != Fate::Superseded)
            .max();
        let last_executed = executions.iter().rev().find(|a| power(a));
        prop_assert_eq!(last_acked.map(|i| actions[i]), last_executed.copied(), "{:?} {:?}", actions, fate);
    }
}
