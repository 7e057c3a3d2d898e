//! GFS2 discovery at fence time: which GFS2 file systems the fenced node was using.
//!
//! The leader watcher keeps `discovery.json` fresh in the spool (see `ha::discovery::snapshot`);
//! the agent reads it before publishing the request, so the request and every log record carry the
//! node's file systems and the snapshot's age at no cost to the fence. Only without a snapshot, or
//! with one older than `discovery_max_age` or from another boot, does the agent discover live:
//! every enabled source in parallel in a background thread, started before the fence is published
//! and bounded by `discovery_timeout` (each tool in its own process group with a death signal,
//! killed at the budget, output capped). A live discovery never delays the answer beyond its
//! budget and never fails a fence. The original's markers stay: `["discovery-disabled"]` when
//! switched off, `["none-detected"]` when nothing was found.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use ha::discovery::run::{self, Tools};
use ha::discovery::snapshot;
use ha::discovery::{DISABLED, NONE_DETECTED};
use ha::os::clock::BootTime;
use ha::protocol::provenance::{Provenance, Source};
use ha::spool::Spool;

use crate::options::Options;

/// The file systems and how they were found.
pub type Result = (Vec<String>, Provenance);

/// A discovery running (or finished) in the background.
pub struct Discovery {
    rx: Option<Receiver<Result>>,
    result: Option<Result>,
    deadline: Instant,
    sources: BTreeSet<Source>,
}

impl Discovery {
    /// Discovery switched off.
    pub fn disabled() -> Discovery {
        Discovery::ready((vec![DISABLED.to_string()], Provenance::disabled()))
    }

    fn ready(result: Result) -> Discovery {
        Discovery { rx: None, result: Some(result), deadline: Instant::now(), sources: BTreeSet::new() }
    }

    /// The snapshot's answer for `names` when it is fresh; otherwise a live discovery, started now.
    /// `spool` is `None` for a responder without our spool (nnf-sos): no snapshot, live discovery.
    pub fn start(opts: &Options, spool: Option<&Spool>, names: Vec<String>) -> Discovery {
        if !opts.discovery || opts.discovery_sources.is_empty() {
            return Discovery::disabled();
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        match spool.map_or(Ok(None), |s| snapshot::read_for(s, &refs)) {
            Ok(Some(snap)) => match ha::os::clock::boot_id().ok().and_then(|boot| snap.age(BootTime::now(), &boot)) {
                Some(age) if age <= opts.discovery_max_age => return Discovery::ready(snap.for_node(&refs, age)),
                Some(age) => tracing::info!(
                    "discovery snapshot is {:.0}s old (discovery_max_age {:.0}s): discovering live",
                    age.as_secs_f64(),
                    opts.discovery_max_age.as_secs_f64()
                ),
                None => tracing::info!("discovery snapshot is from another boot: discovering live"),
            },
            Ok(None) => tracing::debug!("no discovery snapshot in the spool: discovering live"),
            Err(e) => tracing::warn!("cannot use the discovery snapshot ({e}): discovering live"),
        }
        let tools = Tools {
            sources: opts.discovery_sources.clone(),
            kubectl: opts.kubectl_cmd.split_whitespace().map(str::to_string).collect(),
            kubeconfig: opts.kubeconfig.clone(),
        };
        let budget = opts.discovery_timeout;
        let deadline = Instant::now() + budget;
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("gfs2-discovery".into()).spawn(move || {
            let started = Instant::now();
            let results = run::discover(&tools, budget);
            for r in results.iter() {
                if let Err(e) = &r.outcome {
                    tracing::warn!("GFS2 discovery source {} failed: {e}", r.source);
                }
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let _ = tx.send(snapshot::live_for_node(&results, &refs, started.elapsed()));
        });
        match spawned {
            Ok(_) => Discovery { rx: Some(rx), result: None, deadline, sources: opts.discovery_sources.clone() },
            Err(e) => {
                tracing::warn!("GFS2 discovery not started: {e}");
                Discovery::ready(none_detected(&opts.discovery_sources, &format!("not started: {e}")))
            }
        }
    }

    /// The result if it is in, without waiting.
    pub fn now(&mut self) -> Option<&Result> {
        if self.result.is_none() {
            if let Some(v) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
                self.result = Some(v);
            }
        }
        self.result.as_ref()
    }

    /// The result, waiting at most until the budget (plus the time to reap killed tools) or
    /// `limit`, whichever is sooner.
    pub fn wait(&mut self, limit: Instant) -> Result {
        if let Some(r) = self.now() {
            return r.clone();
        }
        let until = limit.min(self.deadline + Duration::from_millis(100));
        let got = self.rx.as_ref().and_then(|rx| rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok());
        let r = got.unwrap_or_else(|| {
            tracing::warn!("GFS2 discovery did not finish within its budget; recording none-detected");
            none_detected(&self.sources, "did not finish within discovery_timeout")
        });
        self.result = Some(r.clone());
        r
    }
}

fn none_detected(sources: &BTreeSet<Source>, why: &str) -> Result {
    let errors = sources.iter().map(|s| (*s, why.to_string())).collect();
    (vec![NONE_DETECTED.to_string()], Provenance { method: "live".into(), errors, ..Provenance::default() })
}
