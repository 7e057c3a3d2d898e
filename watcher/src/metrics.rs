//! The watcher's Prometheus metrics: typed counters, gauges and histograms (`prometheus-client`),
//! and their exposition in Prometheus' text format (served by `http`).
//!
//! Metrics are updated where things happen (answers, executions, retries, recoveries, the main
//! loop's queue and in-flight counts); each is an atomic or a short lock of the crate's, never held
//! across an `.await`. The leader record and `quarantine/` are read at scrape time.
//!
//! Per-node series are bounded: a `target` label is one of the configured targets or `other` (an
//! NNF rabbit fences its 16 compute nodes: 17 values), whatever target names requests carry.
//! Every series an alert or a "fences per node" panel counts exists from the start at 0, so that the
//! first fence or failure is an increase Prometheus sees (a series born at 1 has no increase over
//! any window).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use ha::protocol::request::Action;
use ha::protocol::response::Outcome;
use ha::spool::Dir;

use crate::settings::Settings;

/// Upper bounds (seconds) of the execution time histogram's buckets.
const EXECUTION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds (seconds) of a fence's request-to-answer time: from well under a second (the
/// watchers' own path) to Pacemaker's usual device timeouts.
const FENCE_BUCKETS: [f64; 13] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0];
/// The `target` label of a target no configuration entry names.
const OTHER: &str = "other";

/// Outcomes whose series exist from the start.
const ZEROED_OUTCOMES: [Outcome; 5] =
    [Outcome::Done, Outcome::Failed, Outcome::Expired, Outcome::Abandoned, Outcome::Rejected];
/// The fence actions per-node series count.
const FENCE_ACTIONS: [Action; 2] = [Action::Off, Action::Reboot];

/// Why a fence failed: how its command ended, or why it never ran.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values, as Prometheus shows them
pub enum Reason {
    /// The command exited with a non-zero status.
    exit_status,
    /// The command was killed by a signal it did not get from us.
    signal,
    /// The command ran past its time and was killed.
    timeout,
    /// The command could not be started (or not before the deadline).
    not_started,
    /// The watcher was shutting down.
    aborted,
    /// No command is configured for the target.
    no_command,
    /// The deadline passed before the command could run.
    expired,
    /// The requesting agent was gone.
    abandoned,
    /// The request was invalid and quarantined.
    rejected,
}

impl Reason {
    const ALL: [Reason; 9] = [
        Reason::exit_status,
        Reason::signal,
        Reason::timeout,
        Reason::not_started,
        Reason::aborted,
        Reason::no_command,
        Reason::expired,
        Reason::abandoned,
        Reason::rejected,
    ];
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionOutcome {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeFence {
    target: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Node {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeFailure {
    target: String,
    reason: Reason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Priority {
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaderId {
    leader: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn fence_histogram() -> Histogram {
    Histogram::new(FENCE_BUCKETS)
}

/// The watcher's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The configured targets: the values of `target` besides [`OTHER`].
    targets: BTreeSet<String>,
    responses: Family<ActionOutcome, Counter>,
    node_fences: Family<NodeFence, Counter>,
    node_failures: Family<NodeFailure, Counter>,
    node_fence_seconds: HistogramFamily<Node>,
    node_deadline_seconds: Family<Node, Gauge<f64, AtomicU64>>,
    executions: Histogram,
    retries: Counter,
    recovered: Counter,
    terms: Counter,
    leader: Gauge,
    in_flight: Gauge,
    standing_aside: Gauge,
    heartbeat_failures: Counter,
    metrics_bind_failures: Counter,
    queue: Family<Priority, Gauge>,
    leader_epoch: Family<LeaderId, Gauge<i64, AtomicI64>>,
    quarantined: Gauge,
}

impl Metrics {
    /// The metrics of a watcher with these settings (its id, its rabbit and cluster, its targets).
    pub fn new(s: &Settings) -> Metrics {
        let mut m = Metrics {
            targets: s.fence.target_names().map(str::to_string).collect(),
            responses: Family::default(),
            node_fences: Family::default(),
            node_failures: Family::default(),
            node_fence_seconds: Family::new_with_constructor(fence_histogram as fn() -> Histogram),
            node_deadline_seconds: Family::default(),
            executions: Histogram::new(EXECUTION_BUCKETS),
            retries: Counter::default(),
            recovered: Counter::default(),
            terms: Counter::default(),
            leader: Gauge::default(),
            in_flight: Gauge::default(),
            standing_aside: Gauge::default(),
            heartbeat_failures: Counter::default(),
            metrics_bind_failures: Counter::default(),
            queue: Family::default(),
            leader_epoch: Family::default(),
            quarantined: Gauge::default(),
            registry: Registry::default(),
        };
        m.register_identity(s);
        m.register_fences();
        m.register_watcher();
        m.zero();
        m
    }

    /// Who this watcher is, and where: for joining every rabbit's series on a site view.
    fn register_identity(&mut self, s: &Settings) {
        let r = &mut self.registry;
        r.register(
            "gfs2_fence_watcher",
            "This watcher",
            Info::new(vec![("watcher_id", s.id.clone()), ("version", env!("CARGO_PKG_VERSION").to_string())]),
        );
        r.register(
            "gfs2_fencing",
            "The rabbit this watcher runs on and its Pacemaker cluster, for joining every rabbit's series on a site view",
            Info::new(vec![
                ("cluster", s.cluster.clone().unwrap_or_default()),
                ("rabbit", ha::os::host::name()),
            ]),
        );
    }

    /// What the fences asked of this watcher came to.
    fn register_fences(&mut self) {
        let r = &mut self.registry;
        r.register(
            "gfs2_fence_responses",
            "Responses this watcher placed, by action and outcome (done, failed, expired, abandoned, rejected)",
            self.responses.clone(),
        );
        r.register(
            "gfs2_fence_node_fences",
            "Fences (off, reboot) this watcher answered, by target (a configured one, or other) and outcome",
            self.node_fences.clone(),
        );
        r.register(
            "gfs2_fence_node_failures",
            "Fences this watcher answered failed, by target and reason (exit_status, signal, timeout, not_started, aborted, no_command, expired, abandoned, rejected)",
            self.node_failures.clone(),
        );
        r.register(
            "gfs2_fence_node_fence_seconds",
            "Time from a fence's request to this watcher's answer, by target",
            self.node_fence_seconds.clone(),
        );
        r.register(
            "gfs2_fence_node_deadline_seconds",
            "Time the last fence of a target gave the watchers: its request's deadline, the agent's fence_timeout less the margin it keeps to answer Pacemaker",
            self.node_deadline_seconds.clone(),
        );
    }

    /// This watcher's own work and health: executions, claims, heartbeats, leadership, the queue.
    fn register_watcher(&mut self) {
        let r = &mut self.registry;
        r.register("gfs2_fence_execution_seconds", "Fence command run times", self.executions.clone());
        r.register("gfs2_fence_retries", "Failed executions retried", self.retries.clone());
        r.register(
            "gfs2_fence_recovered_claims",
            "Dead watchers' claims recovered by this watcher",
            self.recovered.clone(),
        );
        r.register("gfs2_fence_in_flight", "Claims this watcher is executing", self.in_flight.clone());
        r.register(
            "gfs2_fence_heartbeat_failures",
            "Heartbeats this watcher could not write (a full or read-only spool): agents and peers then see it as not live",
            self.heartbeat_failures.clone(),
        );
        r.register(
            "gfs2_fence_metrics_bind_failures",
            "Times this watcher could not bind its metrics address before it could (another process held the port); fencing went on",
            self.metrics_bind_failures.clone(),
        );
        r.register(
            "gfs2_fence_standing_aside",
            "1 while this watcher claims nothing because a live peer speaks an older spool format (a rolling upgrade in progress)",
            self.standing_aside.clone(),
        );
        r.register(
            "gfs2_fence_queue_depth",
            "Pending requests in this watcher's index, by queue priority",
            self.queue.clone(),
        );
        r.register("gfs2_fence_leader", "1 while this watcher is the leader", self.leader.clone());
        r.register("gfs2_fence_leader_terms", "Times this watcher took office", self.terms.clone());
        r.register(
            "gfs2_fence_leader_epoch",
            "The spool's leader epoch (it grows by one at every leader change)",
            self.leader_epoch.clone(),
        );
        r.register(
            "gfs2_fence_quarantined_files",
            "Files in quarantine/ (bad requests and alerts)",
            self.quarantined.clone(),
        );
    }

    /// The series that exist from the start at 0.
    fn zero(&self) {
        for a in Action::ALL {
            for o in ZEROED_OUTCOMES {
                let _ = self
                    .responses
                    .get_or_create(&ActionOutcome { action: a.as_str().into(), outcome: o.as_str().into() });
            }
        }
        for target in self.targets.iter().map(String::as_str).chain([OTHER]) {
            for a in FENCE_ACTIONS {
                for o in ZEROED_OUTCOMES {
                    let _ = self.node_fences.get_or_create(&NodeFence {
                        target: target.into(),
                        action: a.as_str().into(),
                        outcome: o.as_str().into(),
                    });
                }
            }
            for reason in Reason::ALL {
                let _ = self.node_failures.get_or_create(&NodeFailure { target: target.into(), reason });
            }
            // A histogram is counters too: its first fence must be an increase a rate sees.
            let _ = self.node_fence_seconds.get_or_create(&Node { target: target.into() });
        }
    }

    /// The `target` label of `target`: itself when configured, else [`OTHER`].
    fn target_label<'a>(&self, target: &'a str) -> &'a str {
        if self.targets.contains(target) {
            target
        } else {
            OTHER
        }
    }

    /// A response was placed for `target`. A fence action's also counts for the node, with how long
    /// it took from its request (`took`), what its deadline allowed (`allowed`) and, when it failed,
    /// why.
    pub fn answered(
        &self,
        target: &str,
        action: &str,
        outcome: &str,
        times: Option<(Duration, Duration)>,
        why: Option<Reason>,
    ) {
        self.responses.get_or_create(&ActionOutcome { action: action.into(), outcome: outcome.into() }).inc();
        if !FENCE_ACTIONS.iter().any(|a| a.as_str() == action) {
            return;
        }
        let target = self.target_label(target).to_string();
        self.node_fences
            .get_or_create(&NodeFence { target: target.clone(), action: action.into(), outcome: outcome.into() })
            .inc();
        if let Some(reason) = why {
            self.node_failures.get_or_create(&NodeFailure { target: target.clone(), reason }).inc();
        }
        if let Some((took, allowed)) = times {
            let node = Node { target };
            self.node_fence_seconds.get_or_create(&node).observe(took.as_secs_f64());
            self.node_deadline_seconds.get_or_create(&node).set(allowed.as_secs_f64());
        }
    }

    /// A fence command ran for `d`.
    pub fn executed(&self, d: Duration) {
        self.executions.observe(d.as_secs_f64());
    }

    /// A failed execution will be retried.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// Dead watchers' claims were recovered.
    pub fn recovered(&self, n: usize) {
        self.recovered.inc_by(n as u64);
    }

    /// This watcher took office.
    pub fn took_office(&self) {
        self.terms.inc();
        self.leader.set(1);
    }

    /// Claims being executed now.
    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.set(n as i64);
    }

    /// A heartbeat could not be written (a full or read-only spool).
    pub fn heartbeat_failed(&self) {
        self.heartbeat_failures.inc();
    }

    /// The metrics address could not be bound (tried again later).
    pub fn metrics_bind_failed(&self) {
        self.metrics_bind_failures.inc();
    }

    /// Whether this watcher stands aside for a live peer of an older spool format.
    pub fn set_standing_aside(&self, aside: bool) {
        self.standing_aside.set(i64::from(aside));
    }

    /// Pending requests by priority (set at each rescan).
    pub fn set_queue(&self, queue: BTreeMap<i32, u64>) {
        self.queue.clear();
        for (p, n) in queue {
            self.queue.get_or_create(&Priority { priority: p.to_string() }).set(n as i64);
        }
    }

    /// The Prometheus text exposition, with the values read at scrape time brought up to date.
    pub fn render(&self, s: &Settings) -> String {
        self.leader_epoch.clear();
        if let Ok(Some(l)) = ha::cluster::leader::read(&s.spool) {
            self.leader_epoch.get_or_create(&LeaderId { leader: l.watcher_id }).set(l.epoch as i64);
        }
        let quarantined = std::fs::read_dir(s.spool.dir(Dir::Quarantine))
            .map(|r| r.flatten().filter(|e| !e.file_name().to_string_lossy().ends_with(".reason")).count())
            .unwrap_or(0);
        self.quarantined.set(quarantined as i64);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
