//! Model-based test of the spool with the real claim, answer and recovery code on a real directory,
//! real flocks and real renames. Random interleavings of submit, claim, execute, respond, crash (drop
//! every handle of a watcher without cleanup), freeze (a watcher stuck holding its locks, whose
//! requests peers re-dispatch), wake, recover and garbage-collect are checked after every step:
//! no request lost, at most one response per request, a response only after an execution or an
//! `expired` decision, and no claim left without a live owner once recovery ran.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use ha::fsio::{self, lock};
use ha::os::clock::BootTime;
use ha::protocol::request::{Action, Request};
use ha::protocol::response::{Outcome, Response};
use ha::spool::answer::{self, Placed};
use ha::spool::claim::{self, Claim, Claimed};
use ha::spool::{Dir, Spool, WATCHER_DIRS};

const WATCHERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Submit {
        target: u8,
        expired: bool,
    },
    Claim(usize),
    Execute(usize, usize),
    Respond(usize, usize),
    /// Respond, then die before retiring the claim.
    RespondThenDie(usize, usize),
    Crash(usize),
    Freeze(usize),
    Wake(usize),
    Recover,
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let w = 0..WATCHERS;
    prop_oneof![
        4 => (0u8..4, prop::bool::weighted(0.2)).prop_map(|(target, expired)| Op::Submit { target, expired }),
        4 => w.clone().prop_map(Op::Claim),
        3 => (w.clone(), 0usize..4).prop_map(|(w, k)| Op::Execute(w, k)),
        3 => (w.clone(), 0usize..4).prop_map(|(w, k)| Op::Respond(w, k)),
        1 => (w.clone(), 0usize..4).prop_map(|(w, k)| Op::RespondThenDie(w, k)),
        1 => w.clone().prop_map(Op::Crash),
        1 => w.clone().prop_map(Op::Freeze),
        1 => w.prop_map(Op::Wake),
        2 => Just(Op::Recover),
        1 => Just(Op::Gc),
    ]
}

struct Held {
    claimed: Claimed,
    executed: bool,
}

#[derive(Default)]
struct Watcher {
    claims: Vec<Held>,
    stuck: bool,
}

struct World {
    _dir: tempfile::TempDir,
    spool: Spool,
    boot: String,
    watchers: Vec<Watcher>,
    submitted: BTreeSet<String>,
    expired: HashSet<String>,
    executed: HashSet<String>,
    answered: HashSet<String>,
}

fn files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        spool.prepare(&WATCHER_DIRS).unwrap();
        World {
            _dir: dir,
            spool,
            boot: ha::os::clock::boot_id().unwrap(),
            watchers: (0..WATCHERS).map(|_| Watcher::default()).collect(),
            submitted: BTreeSet::new(),
            expired: HashSet::new(),
            executed: HashSet::new(),
            answered: HashSet::new(),
        }
    }

    fn id(w: usize) -> String {
        format!("w{w}")
    }

    fn submit(&mut self, target: u8, expired: bool) {
        let id = uuid::Uuid::new_v4().to_string();
        let deadline = if expired { BootTime(1) } else { BootTime::now().after(Duration::from_secs(3600)) };
        let req = Request {
            request_id: id.clone(),
            timestamp: ha::os::clock::rfc3339_now(),
            action: Action::Off,
            target_node: format!("n{target}"),
            gfs2_filesystems: vec![],
            recorder_node: "model".into(),
            version: Some(1),
            nodename: None,
            queue_priority: None,
            deadline: None,
            deadline_boottime_ns: Some(deadline.0),
            boot_id: Some(self.boot.clone()),
            gfs2_discovery: None,
        };
        assert!(fsio::write_new(&self.spool.dir(Dir::Tmp), &self.spool.request_path(&id), &req.to_json()).unwrap());
        self.submitted.insert(id.clone());
        if expired {
            self.expired.insert(id);
        }
    }

    fn claim(&mut self, w: usize) {
        if self.watchers[w].stuck {
            return;
        }
        let mut names = files(&self.spool.dir(Dir::Requests));
        names.sort();
        for name in names {
            if let Claim::Claimed(c) = claim::try_claim(&self.spool, &name, &Self::id(w)).unwrap() {
                self.watchers[w].claims.push(Held { claimed: *c, executed: false });
                return;
            }
        }
    }

    fn execute(&mut self, w: usize, k: usize) {
        let watcher = &mut self.watchers[w];
        if watcher.stuck || watcher.claims.is_empty() {
            return;
        }
        let n = watcher.claims.len();
        let held = &mut watcher.claims[k % n];
        if !held.claimed.still_ours(&self.spool) {
            return;
        }
        let id = held.claimed.request.request_id.clone();
        let attempt = ha::spool::attempts::Attempt {
            attempt: ha::spool::attempts::count(&self.spool, &id).unwrap() + 1,
            watcher_id: Self::id(w),
            pid: std::process::id(),
            started_boottime_ns: BootTime::now().0,
            started: String::new(),
        };
        ha::spool::attempts::record(&self.spool, &id, &attempt).unwrap();
        held.executed = true;
        self.executed.insert(id);
    }

    fn respond(&mut self, w: usize, k: usize, die_before_retiring: bool) {
        let watcher = &mut self.watchers[w];
        if watcher.stuck || watcher.claims.is_empty() {
            return;
        }
        let n = watcher.claims.len();
        let held = watcher.claims.remove(k % n);
        if !held.claimed.still_ours(&self.spool) {
            // A holder that woke to find its claim re-dispatched does not answer; it lets go.
            return;
        }
        let id = held.claimed.request.request_id.clone();
        let outcome = match (held.executed, self.expired.contains(&id)) {
            (true, _) => Outcome::Done,
            (false, true) => Outcome::Expired,
            (false, false) => {
                watcher.claims.push(held);
                return;
            }
        };
        let resp = Response {
            request_id: id.clone(),
            success: outcome == Outcome::Done,
            action_performed: "off".into(),
            target_node: held.claimed.request.target_node.clone(),
            message: String::new(),
            timestamp: String::new(),
            version: Some(1),
            power_state: None,
            watcher_id: Some(Self::id(w)),
            attempts: None,
            duration_ms: None,
            outcome: Some(outcome),
            epoch: None,
        };
        let placed = answer::respond(&self.spool, &resp, &format!("{}.json", resp.request_id)).unwrap();
        assert_eq!(placed, Placed::First, "a second response for {id}");
        assert!(self.answered.insert(id));
        if die_before_retiring {
            self.watchers[w] = Watcher::default();
        } else {
            answer::finish(&self.spool, held.claimed).unwrap();
        }
    }

    fn freeze(&mut self, w: usize) {
        if self.watchers[w].stuck || self.watchers[w].claims.is_empty() {
            return;
        }
        self.watchers[w].stuck = true;
        ha::spool::recover::redispatch(&self.spool, &Self::id(w)).unwrap();
    }

    fn recover(&mut self) {
        ha::spool::recover::recover(&self.spool).unwrap();
        for name in files(&self.spool.dir(Dir::Claimed)) {
            let state = lock::probe(&self.spool.dir(Dir::Claimed).join(&name)).unwrap();
            assert_eq!(state, lock::LockState::Held, "{name} has no live owner after recovery");
        }
    }

    fn gc(&mut self) {
        for name in files(&self.spool.dir(Dir::Done)) {
            std::fs::remove_file(self.spool.dir(Dir::Done).join(name)).unwrap();
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Submit { target, expired } => self.submit(target, expired),
            Op::Claim(w) => self.claim(w),
            Op::Execute(w, k) => self.execute(w, k),
            Op::Respond(w, k) => self.respond(w, k, false),
            Op::RespondThenDie(w, k) => self.respond(w, k, true),
            Op::Crash(w) => self.watchers[w] = Watcher::default(),
            Op::Freeze(w) => self.freeze(w),
            Op::Wake(w) => self.watchers[w].stuck = false,
            Op::Recover => self.recover(),
            Op::Gc => self.gc(),
        }
    }

    fn check(&self) {
        let requests: HashSet<String> = files(&self.spool.dir(Dir::Requests)).into_iter().collect();
        let claimed: HashSet<String> =
            files(&self.spool.dir(Dir::Claimed)).iter().map(|n| n[..36].to_string()).collect();
        let responses: HashSet<String> =
            files(&self.spool.dir(Dir::Responses)).iter().map(|n| n.trim_end_matches(".json").to_string()).collect();
        for id in &self.submitted {
            let somewhere = responses.contains(id) || requests.contains(&format!("{id}.json")) || claimed.contains(id);
            assert!(somewhere, "request {id} was lost");
        }
        assert_eq!(responses, self.answered, "responses on disk are exactly the answers given");
        for id in &responses {
            let bytes = std::fs::read(self.spool.response_path(id)).unwrap();
            let r = Response::parse(&bytes).unwrap();
            match r.outcome {
                Some(Outcome::Done) => assert!(self.executed.contains(id), "{id} answered done, never executed"),
                Some(Outcome::Expired) => assert!(self.expired.contains(id)),
                other => panic!("unexpected outcome {other:?}"),
            }
        }
    }

    /// Everyone restarts, recovery runs, one watcher serves the rest: every request gets its answer.
    fn drain(&mut self) {
        for w in 0..WATCHERS {
            self.watchers[w] = Watcher::default();
        }
        self.recover();
        while !files(&self.spool.dir(Dir::Requests)).is_empty() {
            self.claim(0);
            let n = self.watchers[0].claims.len();
            assert!(n > 0, "a pending request could not be claimed");
            self.execute(0, n - 1);
            self.respond(0, n - 1, false);
        }
        self.check();
        assert_eq!(self.answered, self.submitted.iter().cloned().collect::<HashSet<_>>(), "every request answered");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn nothing_is_lost_and_nothing_is_answered_twice(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            world.check();
        }
        world.drain();
    }
}
