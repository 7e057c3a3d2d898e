//! The pending queue's order, as a data structure with no I/O.
//!
//! Rules (the ordering contract, PROTOCOL.md "Claim order"):
//! - Requests for one target run in submission order (file mtime, then name).
//! - Across targets, each target's first pending request competes: higher `queue_priority` first,
//!   then the earlier deadline, then the older submission.
//! - A target whose first request is `on`/`status` while a later `off`/`reboot` is queued for it has
//!   that first request superseded (the caller answers it `superseded`).
//! - One execution of a target's first request also serves ([`Queue::run_of`]) the requests of the
//!   same action that directly follow it, never one queued behind another action: requests take
//!   effect in submission order, and an acknowledged result is never undone by an earlier request.
//!
//! Every operation is O(log n) in the number of pending requests: no rescan and re-sort per claim.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::request::Action;

/// One pending request, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name in `requests/`.
    pub name: String,
    /// Target (plug): the exclusion key.
    pub target: String,
    /// The name the request asked for (its `target_node`), which spool format 1 locked by.
    pub node: String,
    /// Action.
    pub action: Action,
    /// Queue priority (higher first).
    pub priority: i32,
    /// Deadline on CLOCK_BOOTTIME (0 when none is known yet: sorts first among equals).
    pub deadline_ns: u64,
    /// Submission time (file mtime, ns since the epoch).
    pub submitted_ns: u128,
    /// Re-dispatched from a stuck watcher: runs without the target lock.
    pub waived: bool,
}

type HeadKey = (Reverse<i32>, u64, u128, String);
type TargetKey = (u128, String);

fn head_key(e: &Entry) -> HeadKey {
    (Reverse(e.priority), e.deadline_ns, e.submitted_ns, e.name.clone())
}

/// The index of pending requests.
#[derive(Debug, Default, Clone)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    by_target: HashMap<String, BTreeMap<TargetKey, String>>,
    heads: BTreeSet<HeadKey>,
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Queue {
        Queue::default()
    }

    /// Number of pending requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `name` is indexed.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    fn first_of(&self, target: &str) -> Option<&Entry> {
        let name = self.by_target.get(target)?.values().next()?;
        self.entries.get(name)
    }

    /// Adds (or replaces) an entry.
    pub fn insert(&mut self, e: Entry) {
        self.remove(&e.name);
        let old_head = self.first_of(&e.target).map(head_key);
        self.by_target.entry(e.target.clone()).or_default().insert((e.submitted_ns, e.name.clone()), e.name.clone());
        self.entries.insert(e.name.clone(), e.clone());
        let new_head = self.first_of(&e.target).map(head_key);
        if old_head != new_head {
            if let Some(k) = old_head {
                self.heads.remove(&k);
            }
            if let Some(k) = new_head {
                self.heads.insert(k);
            }
        }
    }

    /// Removes an entry; returns it.
    pub fn remove(&mut self, name: &str) -> Option<Entry> {
        let e = self.entries.get(name)?.clone();
        let was_head = self.first_of(&e.target).map(|h| h.name == e.name).unwrap_or(false);
        if was_head {
            self.heads.remove(&head_key(&e));
        }
        self.entries.remove(name);
        if let Some(t) = self.by_target.get_mut(&e.target) {
            t.remove(&(e.submitted_ns, e.name.clone()));
            if t.is_empty() {
                self.by_target.remove(&e.target);
            }
        }
        if was_head {
            if let Some(k) = self.first_of(&e.target).map(head_key) {
                self.heads.insert(k);
            }
        }
        Some(e)
    }

    /// Each target's first request, in claim order.
    pub fn heads(&self) -> impl Iterator<Item = &Entry> {
        self.heads.iter().filter_map(|(_, _, _, name)| self.entries.get(name))
    }

    /// The pending requests of `target`, in submission order.
    pub fn of_target<'a>(&'a self, target: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_target.get(target).into_iter().flat_map(|m| m.values()).filter_map(|n| self.entries.get(n))
    }

    /// The request that supersedes the first request of `target`, if one does: the first is `on` or
    /// `status` and a later `off`/`reboot` is queued for the same target (the first of those). A
    /// power-on or a status read behind a fence already asked for would only delay it, or undo it.
    pub fn superseding(&self, target: &str) -> Option<&Entry> {
        let mut it = self.of_target(target);
        match it.next() {
            Some(first) if matches!(first.action, Action::On | Action::Status) => {
                it.find(|e| matches!(e.action, Action::Off | Action::Reboot))
            }
            _ => None,
        }
    }

    /// The pending requests of `target` that one execution of `action` serves with the request just
    /// taken from the front: the run of `action` at the front of the target's queue, up to the first
    /// request of another action.
    pub fn run_of<'a>(&'a self, target: &str, action: Action) -> impl Iterator<Item = &'a Entry> + 'a {
        self.of_target(target).take_while(move |e| e.action == action)
    }

    /// Names of every indexed request (for reconciliation with the directory).
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, target: &str, action: Action, priority: i32, deadline: u64, at: u128) -> Entry {
        Entry {
            node: target.to_string(),
            name: name.into(),
            target: target.into(),
            action,
            priority,
            deadline_ns: deadline,
            submitted_ns: at,
            waived: false,
        }
    }

    fn heads(q: &Queue) -> Vec<&str> {
        q.heads().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn priority_then_deadline_then_age_across_targets() {
        let mut q = Queue::new();
        q.insert(e("a", "t1", Action::Status, 10, 50, 1));
        q.insert(e("b", "t2", Action::Off, 100, 90, 2));
        q.insert(e("c", "t3", Action::Off, 100, 80, 3));
        q.insert(e("d", "t4", Action::Off, 100, 80, 0));
        assert_eq!(heads(&q), ["d", "c", "b", "a"]);
    }

    #[test]
    fn one_target_runs_in_submission_order_whatever_the_priority() {
        let mut q = Queue::new();
        q.insert(e("late-off", "t", Action::Off, 100, 1, 20));
        q.insert(e("early-on", "t", Action::On, 50, 1, 10));
        q.insert(e("other", "u", Action::Reboot, 90, 1, 30));
        assert_eq!(heads(&q), ["other", "early-on"], "t competes with its first request");
        assert_eq!(q.superseding("t").map(|e| e.name.as_str()), Some("late-off"));
        q.remove("early-on");
        assert_eq!(heads(&q), ["late-off", "other"]);
        assert_eq!(q.superseding("t"), None);
        assert_eq!(q.len(), 2);
        q.remove("late-off");
        q.remove("other");
        assert!(q.is_empty() && heads(&q).is_empty());
    }

    /// Which request supersedes the first, and which join its execution, for each queue of one
    /// target (actions in submission order).
    #[test]
    fn supersession_and_the_run_that_joins_an_execution() {
        use Action::{Off as F, On as N, Reboot as R, Status as S};
        #[rustfmt::skip]
        let table: [(&[Action], Option<usize>, &[usize]); 10] = [
            // queue                 superseded by   run joining the first
            (&[F],                   None,           &[]),
            (&[F, F, F],             None,           &[1, 2]),
            (&[F, F, R, F],          None,           &[1]),
            (&[F, N, F],             None,           &[]),
            (&[N, F],                Some(1),        &[]),
            (&[S, S, R],             Some(2),        &[1]),
            (&[N, N, S, R, F],       Some(3),        &[1]),
            (&[N, N, S],             None,           &[1]),
            (&[R, N, F],             None,           &[]),
            (&[S, N, N, F],          Some(3),        &[]),
        ];
        for (actions, superseded_by, run) in table {
            let mut q = Queue::new();
            for (i, a) in actions.iter().enumerate() {
                q.insert(e(&format!("r{i}"), "t", *a, 0, 1, i as u128));
            }
            let name = |i: &usize| format!("r{i}");
            assert_eq!(q.superseding("t").map(|e| e.name.clone()), superseded_by.as_ref().map(name), "{actions:?}");
            q.remove("r0");
            let joined: Vec<String> = q.run_of("t", actions[0]).map(|e| e.name.clone()).collect();
            assert_eq!(joined, run.iter().map(name).collect::<Vec<_>>(), "{actions:?}");
        }
    }

    #[test]
    fn reinserting_and_removing_unknown_names_is_harmless() {
        let mut q = Queue::new();
        q.insert(e("a", "t", Action::Off, 1, 1, 1));
        q.insert(e("a", "t", Action::Off, 5, 1, 1));
        assert_eq!(q.len(), 1);
        assert_eq!(q.heads().next().unwrap().priority, 5);
        assert_eq!(q.remove("zzz"), None);
        assert_eq!(q.of_target("t").count(), 1);
    }
}
