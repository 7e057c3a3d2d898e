//! The watcher's Prometheus metrics: the counters and gauges, and their text exposition (served by
//! `http`).
//!
//! Counters and gauges are updated where things happen (answers, executions, retries, recoveries,
//! the main loop's queue and in-flight counts) through atomics and short `std::sync::Mutex`es never
//! held across an `.await`; the leader record and `quarantine/` are read at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use ha::protocol::request::Action;
use ha::protocol::response::Outcome;
use ha::spool::Dir;

use crate::settings::Settings;

/// Upper bounds (seconds) of the execution time histogram's buckets.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The watcher's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Responses placed, by action and outcome; every action with every outcome an alert watches
    /// starts at 0, so that the first failure is an increase Prometheus sees (a series born at 1
    /// has no increase over any window, and the first failed fence would raise no alert).
    responses: Mutex<BTreeMap<(String, String), u64>>,
    /// Execution times: bucket counts (the last is +Inf), sum of seconds.
    executions: Mutex<([u64; BUCKETS.len() + 1], f64)>,
    retries: AtomicU64,
    recovered: AtomicU64,
    terms: AtomicU64,
    leader: AtomicBool,
    in_flight: AtomicU64,
    standing_aside: AtomicBool,
    heartbeat_failures: AtomicU64,
    metrics_bind_failures: AtomicU64,
    /// Pending requests by priority.
    queue: Mutex<BTreeMap<i32, u64>>,
}

/// Outcomes whose series exist from the start, for every action.
const ZEROED_OUTCOMES: [Outcome; 5] =
    [Outcome::Done, Outcome::Failed, Outcome::Expired, Outcome::Abandoned, Outcome::Rejected];

impl Default for Metrics {
    fn default() -> Metrics {
        let responses = Action::ALL
            .iter()
            .flat_map(|a| ZEROED_OUTCOMES.iter().map(|o| ((a.as_str().to_string(), o.as_str().to_string()), 0)))
            .collect();
        Metrics {
            responses: Mutex::new(responses),
            executions: Mutex::default(),
            retries: AtomicU64::default(),
            recovered: AtomicU64::default(),
            terms: AtomicU64::default(),
            leader: AtomicBool::default(),
            in_flight: AtomicU64::default(),
            standing_aside: AtomicBool::default(),
            heartbeat_failures: AtomicU64::default(),
            metrics_bind_failures: AtomicU64::default(),
            queue: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A response was placed.
    pub fn answered(&self, action: &str, outcome: &str) {
        *self.responses.lock().unwrap().entry((action.to_string(), outcome.to_string())).or_default() += 1;
    }

    /// A fence command ran for `d`.
    pub fn executed(&self, d: Duration) {
        let mut h = self.executions.lock().unwrap();
        let i = BUCKETS.iter().position(|b| d.as_secs_f64() <= *b).unwrap_or(BUCKETS.len());
        h.0[i] += 1;
        h.1 += d.as_secs_f64();
    }

    /// A failed execution will be retried.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Dead watchers' claims were recovered.
    pub fn recovered(&self, n: usize) {
        self.recovered.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// This watcher took office.
    pub fn took_office(&self) {
        self.terms.fetch_add(1, Ordering::Relaxed);
        self.leader.store(true, Ordering::Relaxed);
    }

    /// Claims being executed now.
    pub fn set_in_flight(&self, n: usize) {
        self.in_flight.store(n as u64, Ordering::Relaxed);
    }

    /// A heartbeat could not be written (a full or read-only spool).
    pub fn heartbeat_failed(&self) {
        self.heartbeat_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics address could not be bound (tried again later).
    pub fn metrics_bind_failed(&self) {
        self.metrics_bind_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether this watcher stands aside for a live peer of an older spool format.
    pub fn set_standing_aside(&self, aside: bool) {
        self.standing_aside.store(aside, Ordering::Relaxed);
    }

    /// Pending requests by priority (set at each rescan).
    pub fn set_queue(&self, queue: BTreeMap<i32, u64>) {
        *self.queue.lock().unwrap() = queue;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, s: &Settings) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            out += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for l in lines {
                out += &format!("{name}{l}\n");
            }
        };
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        metric(
            "gfs2_fence_watcher_info",
            "gauge",
            "This watcher.",
            vec![format!("{{watcher_id=\"{}\",version=\"{}\"}} 1", esc(&s.id), env!("CARGO_PKG_VERSION"))],
        );
        metric(
            "gfs2_fencing_info",
            "gauge",
            "The rabbit this watcher runs on and its Pacemaker cluster, for joining every rabbit's series on a site view.",
            vec![format!(
                "{{cluster=\"{}\",rabbit=\"{}\"}} 1",
                esc(s.cluster.as_deref().unwrap_or_default()),
                esc(&ha::os::host::name())
            )],
        );
        let responses = self.responses.lock().unwrap().clone();
        metric(
            "gfs2_fence_responses_total",
            "counter",
            "Responses this watcher placed, by action and outcome (done, failed, expired, abandoned, rejected).",
            responses
                .iter()
                .map(|((a, o), n)| format!("{{action=\"{}\",outcome=\"{}\"}} {n}", esc(a), esc(o)))
                .collect(),
        );
        let (buckets, sum) = *self.executions.lock().unwrap();
        let mut cumulative = 0;
        let mut lines: Vec<String> = BUCKETS
            .iter()
            .zip(buckets)
            .map(|(b, n)| {
                cumulative += n;
                format!("_bucket{{le=\"{b}\"}} {cumulative}")
            })
            .collect();
        cumulative += buckets[BUCKETS.len()];
        lines.push(format!("_bucket{{le=\"+Inf\"}} {cumulative}"));
        lines.push(format!("_sum {sum}"));
        lines.push(format!("_count {cumulative}"));
        metric("gfs2_fence_execution_seconds", "histogram", "Fence command run times.", lines);
        let counter = |v: &AtomicU64| vec![format!(" {}", v.load(Ordering::Relaxed))];
        metric("gfs2_fence_retries_total", "counter", "Failed executions retried.", counter(&self.retries));
        metric(
            "gfs2_fence_recovered_claims_total",
            "counter",
            "Dead watchers' claims recovered by this watcher.",
            counter(&self.recovered),
        );
        metric("gfs2_fence_in_flight", "gauge", "Claims this watcher is executing.", counter(&self.in_flight));
        metric(
            "gfs2_fence_heartbeat_failures_total",
            "counter",
            "Heartbeats this watcher could not write (a full or read-only spool): agents and peers then see it as not live.",
            counter(&self.heartbeat_failures),
        );
        metric(
            "gfs2_fence_metrics_bind_failures_total",
            "counter",
            "Times this watcher could not bind its metrics address before it could (another process held the port); fencing went on.",
            counter(&self.metrics_bind_failures),
        );
        metric(
            "gfs2_fence_standing_aside",
            "gauge",
            "1 while this watcher claims nothing because a live peer speaks an older spool format (a rolling upgrade in progress).",
            vec![format!(" {}", self.standing_aside.load(Ordering::Relaxed) as u8)],
        );
        let queue = self.queue.lock().unwrap().clone();
        metric(
            "gfs2_fence_queue_depth",
            "gauge",
            "Pending requests in this watcher's index, by queue priority.",
            queue.iter().map(|(p, n)| format!("{{priority=\"{p}\"}} {n}")).collect(),
        );
        metric(
            "gfs2_fence_leader",
            "gauge",
            "1 while this watcher is the leader.",
            vec![format!(" {}", self.leader.load(Ordering::Relaxed) as u8)],
        );
        metric("gfs2_fence_leader_terms_total", "counter", "Times this watcher took office.", counter(&self.terms));
        if let Ok(Some(l)) = ha::cluster::leader::read(&s.spool) {
            metric(
                "gfs2_fence_leader_epoch",
                "gauge",
                "The spool's leader epoch (it grows by one at every leader change).",
                vec![format!("{{leader=\"{}\"}} {}", esc(&l.watcher_id), l.epoch)],
            );
        }
        let quarantined = std::fs::read_dir(s.spool.dir(Dir::Quarantine))
            .map(|r| r.flatten().filter(|e| !e.file_name().to_string_lossy().ends_with(".reason")).count())
            .unwrap_or(0);
        metric(
            "gfs2_fence_quarantined_files",
            "gauge",
            "Files in quarantine/ (bad requests and alerts).",
            vec![format!(" {quarantined}")],
        );
        out
    }
}
