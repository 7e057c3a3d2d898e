//! The actions that do not fence: `monitor`, `validate-all` and `list`.
//!
//! `monitor` is a real health check of what a fence needs: the spool exists, is local and safely
//! owned, the agent can create its files there (a read-only or full spool fails every fence), the
//! configured responder can answer (with our watchers: one is live, and the fence path the leader
//! checked last is not broken; an external responder's liveness cannot be judged and a warning says
//! so), and a fence could write its records in `log_dir` (a fence goes on unrecorded, so only the
//! monitor can tell; Pacemaker still fences through a device whose monitor failed). It creates
//! nothing. With another responder, `monitor` also
//! takes back the requests of agents Pacemaker killed (`crate::abandoned`).
//! `validate-all` (what `pcs` and `stonith_admin --validate` run, possibly on a node that is not a
//! rabbit) checks the options and, where the spool exists here, that it is safe. With nnf-sos, both
//! warn about targets GFS2 discovery does not know (`crate::known`).

use ha::cluster::targets::Targets;
use ha::fsio;
use ha::spool::{Spool, AGENT_DIRS};

use crate::exchange::Exchange;
use crate::failure::Failure;
use crate::options::Options;
use crate::responder::Responder;

/// `monitor`.
pub fn monitor(opts: &Options) -> Result<(), Failure> {
    // A fence goes on when it cannot be recorded (fencing comes first), so nothing else would tell.
    crate::logs::check_recordable(&opts.log_dir).map_err(|e| {
        Failure::Fence(format!(
            "fences cannot be recorded in log_dir {}: {e}; they still fence, but leave no record there \
             (the journal at most) until this is fixed",
            opts.log_dir.display()
        ))
    })?;
    let exchange = Exchange::resolve(opts, |k| std::env::var(k).ok())?;
    exchange.prepare()?;
    for d in exchange.written_dirs() {
        // What a fence writes first: its request's temporary file (and with our watchers its waiting
        // lock and FIFO).
        fsio::probe_writable(&d).map_err(|e| {
            Failure::Fence(format!(
                "the agent cannot create its files in {}, so every fence would fail: {e}",
                d.display()
            ))
        })?;
    }
    let Some(spool) = exchange.spool.as_ref().filter(|_| opts.responder == Responder::Watchers) else {
        // Pacemaker runs monitor every interval: the requests of agents it killed since are taken back.
        crate::abandoned::sweep(&exchange, &opts.log_dir, "monitor")?;
        if opts.responder == Responder::NnfSos {
            crate::known::warn_unknown(opts, &discovery_spool(opts)?, false);
        }
        tracing::warn!(
            "responder={}: {} is answered by another program whose liveness this agent cannot judge",
            opts.responder.as_str(),
            exchange.requests.display()
        );
        return Ok(());
    };
    let live = opts.responder.check(spool)?;
    tracing::debug!("monitor: live watchers {}", live.join(", "));
    fence_path(spool, opts.plug.as_deref())
}

/// Judges the fence path from the leader's last `health.json`, when it is fresh.
fn fence_path(spool: &Spool, plug: Option<&str>) -> Result<(), Failure> {
    let Some(health) = ha::cluster::health::read(spool) else {
        tracing::debug!("monitor: no fence path health report yet");
        return Ok(());
    };
    if !health.is_fresh(ha::os::clock::BootTime::now(), &ha::os::clock::boot_id()?) {
        tracing::warn!(
            "monitor: the fence path health report of {} is stale; is the leader's health check running?",
            health.checked
        );
        return Ok(());
    }
    let warnings = health.verdict(plug).map_err(|broken| {
        Failure::Fence(format!(
            "{broken} (checked {}); fix it, or fences through this device will fail",
            health.checked
        ))
    })?;
    for w in warnings {
        tracing::warn!("monitor: {w}");
    }
    Ok(())
}

/// `validate-all`.
pub fn validate(opts: &Options) -> Result<(), Failure> {
    let exchange = Exchange::resolve(opts, |k| std::env::var(k).ok())?;
    if !opts.log_dir.is_absolute() {
        return Err(Failure::Usage(format!(
            "log_dir {:?} is not an absolute path",
            opts.log_dir.display().to_string()
        )));
    }
    if let Some(t) = opts.plug.as_deref() {
        if !ha::protocol::names::is_safe_name(t) {
            return Err(Failure::UnsafeTarget(t.to_string()));
        }
    }
    let base: &std::path::Path = exchange.spool.as_ref().map_or(&exchange.requests, |s| s.base());
    match exchange.spool.as_ref() {
        Some(spool) if spool.base().symlink_metadata().is_ok() => {
            spool.inspect(&AGENT_DIRS)?;
        }
        None if exchange.requests.symlink_metadata().is_ok() => exchange.prepare()?,
        _ => tracing::warn!(
            "{} does not exist on this host (fine where no fence is run; its responder creates it)",
            base.display()
        ),
    }
    if opts.responder == Responder::NnfSos {
        crate::known::warn_unknown(opts, &discovery_spool(opts)?, true);
    }
    Ok(())
}

/// The spool whose `discovery.json` the leader watcher keeps (where watchers run beside nnf-sos).
fn discovery_spool(opts: &Options) -> Result<Spool, Failure> {
    Ok(Spool::new(ha::spool::resolve_base(opts.spool_dir.as_deref(), |k: &str| std::env::var(k).ok())?))
}

/// `list`: the targets the watchers' configuration knows, one `plug<separator>alias` per line.
pub fn list(opts: &Options) -> Result<String, Failure> {
    let exchange = Exchange::resolve(opts, |k| std::env::var(k).ok())?;
    let Some(spool) = exchange.spool.as_ref().filter(|_| opts.responder == Responder::Watchers) else {
        return Err(Failure::Fence(format!(
            "responder={} cannot list the nodes it fences (only the watchers publish their targets): set \
             pcmk_host_list or pcmk_host_map on the device, so that Pacemaker knows which nodes it can fence",
            opts.responder.as_str()
        )));
    };
    spool.inspect(&[])?;
    let path = ha::cluster::targets::path(spool);
    let bytes = fsio::read_capped(&path, fsio::MAX_SPOOL_FILE).map_err(|e| {
        Failure::Fence(format!(
            "cannot read {}: {e}; the watchers publish it at start (or set pcmk_host_list on the device)",
            path.display()
        ))
    })?;
    let targets: Targets =
        serde_json::from_slice(&bytes).map_err(|e| Failure::Fence(format!("{} is malformed: {e}", path.display())))?;
    if targets.has_default {
        tracing::warn!(
            "the watchers also fence unlisted targets through their default entry; list shows explicit ones only"
        );
    }
    Ok(targets
        .targets
        .iter()
        .map(|t| format!("{}{}{}\n", t.plug, opts.separator, t.alias.as_deref().unwrap_or("")))
        .collect())
}
