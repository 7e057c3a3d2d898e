//! `gfs2-fence-watcher status [--json]`: the state of a spool's watcher cluster, read from the spool
//! alone (no watcher is asked): leader and epoch, live members with heartbeat age, queue depth by
//! priority, in-flight claims with owner and age, fence path health, recent failures.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use ha::fsio::{self, lock};
use ha::os::clock::BootTime;
use ha::protocol::names::ClaimName;
use ha::protocol::request::Request;
use ha::protocol::response::Response;
use ha::spool::{Dir, Spool};

use crate::error::WatchError;

/// One member.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// Watcher id.
    pub id: String,
    /// Whether it is live: its member lock held and its heartbeat younger than its TTL (the rule the
    /// agent's fast failure and `monitor` apply).
    pub live: bool,
    /// Whether its member lock is held (held but not live: frozen, or unable to write).
    pub lock_held: bool,
    /// Its pid, from the heartbeat.
    pub pid: Option<u32>,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: Option<u64>,
    /// The TTL its heartbeat declares, in milliseconds.
    pub ttl_ms: Option<u64>,
    /// Fence commands running.
    pub children: Vec<u32>,
    /// The spool format it speaks (1 for a heartbeat that does not say: an older build).
    pub spool_format: Option<u32>,
    /// Its metrics server: the address it serves, or why it does not (as its heartbeat says).
    pub metrics: Option<String>,
    /// Live, but claiming nothing while a live peer speaks an older spool format (a rolling upgrade
    /// in progress: restart the older watchers).
    pub standing_aside: bool,
}

/// One claim.
#[derive(Debug, Serialize)]
pub struct ClaimStatus {
    /// Request id.
    pub request_id: String,
    /// Owner.
    pub watcher: String,
    /// Attempt number.
    pub attempt: u32,
    /// Whether the owner's lease is held.
    pub leased: bool,
    /// Milliseconds since the claim.
    pub age_ms: u64,
}

/// A recent failure.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// When.
    pub timestamp: String,
    /// Request id.
    pub request_id: String,
    /// Target.
    pub target: String,
    /// Action.
    pub action: String,
    /// Outcome.
    pub outcome: String,
    /// Why.
    pub message: String,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The spool.
    pub spool: String,
    /// The published leader, if its lock is held.
    pub leader: Option<ha::cluster::leader::LeaderRecord>,
    /// Members.
    pub members: Vec<MemberStatus>,
    /// Pending requests by queue priority.
    pub queue_by_priority: BTreeMap<i32, usize>,
    /// Claims in flight.
    pub claims: Vec<ClaimStatus>,
    /// Fence path health, if the leader published it.
    pub health: Option<ha::cluster::health::Health>,
    /// The last failures (newest first, at most 10).
    pub recent_failures: Vec<Failure>,
}

fn age_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).map_or(0, |d| d.as_millis() as u64)
}

fn files(dir: &std::path::Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir).map(|r| r.flatten().collect()).unwrap_or_default()
}

/// Reads the spool into a report.
pub fn report(spool: &Spool) -> Result<Report, WatchError> {
    spool.inspect(&[])?;
    let now = BootTime::now();
    let boot = ha::os::clock::boot_id()?;
    let leader_held = lock::probe(&ha::cluster::leader::lock_path(spool))? == lock::LockState::Held;
    let leader = if leader_held { ha::cluster::leader::read(spool)? } else { None };
    let states = ha::cluster::members::member_states(spool, now, &boot)?;
    let oldest = ha::cluster::members::oldest_live(&states).map(|(_, f)| f);
    let members = states
        .into_iter()
        .map(|m| MemberStatus {
            spool_format: m.heartbeat.as_ref().map(|h| h.format()),
            metrics: m.heartbeat.as_ref().and_then(|h| h.metrics.clone()),
            standing_aside: m.live
                && m.heartbeat.as_ref().is_some_and(|h| ha::cluster::members::stands_aside(h.format(), oldest)),
            live: m.live,
            lock_held: m.lock_held,
            pid: m.heartbeat.as_ref().map(|h| h.pid),
            heartbeat_age_ms: m.heartbeat.as_ref().and_then(|h| h.age(now, &boot)).map(|a| a.as_millis() as u64),
            ttl_ms: m.heartbeat.as_ref().map(|h| h.ttl().as_millis() as u64),
            children: m.heartbeat.map(|h| h.children).unwrap_or_default(),
            id: m.id,
        })
        .collect();
    let mut queue_by_priority = BTreeMap::new();
    for e in files(&spool.dir(Dir::Requests)) {
        if let Ok(r) = fsio::read_capped(&e.path(), fsio::MAX_SPOOL_FILE).map(|b| Request::parse(&b)) {
            *queue_by_priority.entry(r.map_or(0, |r| r.priority())).or_insert(0) += 1;
        }
    }
    let mut claims = Vec::new();
    for e in files(&spool.dir(Dir::Claimed)) {
        let Some(n) = ClaimName::parse(&e.file_name().to_string_lossy()) else {
            continue;
        };
        claims.push(ClaimStatus {
            request_id: n.id,
            watcher: n.watcher,
            attempt: n.attempt,
            leased: lock::probe(&e.path())? == lock::LockState::Held,
            age_ms: e.metadata().map(|m| age_ms(&m)).unwrap_or(0),
        });
    }
    let mut recent: Vec<(u64, Response)> = files(&spool.dir(Dir::Responses))
        .into_iter()
        .filter_map(|e| {
            let age = age_ms(&e.metadata().ok()?);
            let r = Response::parse(&fsio::read_capped(&e.path(), fsio::MAX_SPOOL_FILE).ok()?).ok()?;
            (!r.success && age < Duration::from_secs(86_400).as_millis() as u64).then_some((age, r))
        })
        .collect();
    recent.sort_by_key(|(age, _)| *age);
    let recent_failures = recent
        .into_iter()
        .take(10)
        .map(|(_, r)| Failure {
            timestamp: r.timestamp,
            request_id: r.request_id,
            target: r.target_node,
            action: r.action_performed,
            outcome: r.outcome.map_or("failed", |o| o.as_str()).to_string(),
            message: r.message,
        })
        .collect();
    Ok(Report {
        spool: spool.base().display().to_string(),
        leader,
        members,
        queue_by_priority,
        claims,
        health: ha::cluster::health::read(spool),
        recent_failures,
    })
}

fn text(r: &Report) -> String {
    let mut s = format!("spool {}\n", r.spool);
    match &r.leader {
        Some(l) => s += &format!("leader {} (pid {}, epoch {}, since {})\n", l.watcher_id, l.pid, l.epoch, l.since),
        None => s += "leader NONE\n",
    }
    s += "members:\n";
    for m in &r.members {
        let age = m.heartbeat_age_ms.map_or("-".into(), |a| format!("{a} ms"));
        let state = match (m.live, m.lock_held) {
            (true, _) if m.standing_aside => "ASIDE",
            (true, _) => "live",
            (false, true) => "STALE",
            (false, false) => "dead",
        };
        let format = m.spool_format.map_or("-".into(), |f| f.to_string());
        s += &format!(
            "  {:<24} {:<5} pid {:<8} heartbeat {:>10}  format {format}  running {:?}\n",
            m.id,
            state,
            m.pid.unwrap_or(0),
            age,
            m.children
        );
        if let Some(metrics) = &m.metrics {
            s += &format!("  {:<24} metrics {metrics}\n", "");
        }
    }
    if r.members.iter().any(|m| m.standing_aside) {
        s += "  rolling upgrade in progress: ASIDE members claim nothing while a live member speaks an older spool \
              format; restart the older watchers one at a time (DEPLOYMENT.md, \"Upgrading\")\n";
    }
    let depth: usize = r.queue_by_priority.values().sum();
    s += &format!("queue: {depth} pending {:?}\n", r.queue_by_priority);
    s += &format!("claims: {}\n", r.claims.len());
    for c in &r.claims {
        let lease = if c.leased { "leased" } else { "ORPHANED" };
        s += &format!("  {} by {} attempt {} {} {} ms\n", c.request_id, c.watcher, c.attempt, lease, c.age_ms);
    }
    match &r.health {
        Some(h) => {
            s += &format!("fence paths (checked {}):\n", h.checked);
            for p in &h.paths {
                let who = if p.default { "default".to_string() } else { p.targets.join(" ") };
                s += &format!("  {:<6} {} [{}] {}\n", if p.ok { "OK" } else { "BROKEN" }, p.command, who, p.message);
            }
        }
        None => s += "fence paths: not checked yet\n",
    }
    s += &format!("recent failures: {}\n", r.recent_failures.len());
    for f in &r.recent_failures {
        s += &format!("  {} {} {} {} {}: {}\n", f.timestamp, f.action, f.target, f.outcome, f.request_id, f.message);
    }
    s
}

/// Prints the report; exits non-zero when no watcher is alive.
pub fn run(
    spool: &Spool,
    json: bool,
    watch: Option<std::time::Duration>,
    frames: Option<u64>,
    wait: Option<std::time::Duration>,
) -> Result<ExitCode, WatchError> {
    if let Some(limit) = wait {
        // Polled: the spool may not exist yet when the watchers were just started.
        let deadline = std::time::Instant::now() + limit;
        let live = || ha::cluster::members::live_members(spool).is_ok_and(|m| !m.is_empty());
        while !live() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    if let Some(every) = watch {
        // A terminal view for hosts without Grafana: redraw until interrupted (or `frames` times).
        // Into a pipe or a file, frames follow one another, with no terminal escapes among them.
        let clear = if std::io::IsTerminal::is_terminal(&std::io::stdout()) { "\x1b[H\x1b[2J" } else { "" };
        let mut n = 0;
        loop {
            let body = match report(spool) {
                Ok(r) => text(&r),
                Err(e) => format!("cannot read the spool: {e}\n"),
            };
            print!(
                "{clear}{} — every {:.1}s (Ctrl-C to stop)\n\n{body}",
                ha::os::clock::rfc3339_now(),
                every.as_secs_f64()
            );
            let _ = std::io::Write::flush(&mut std::io::stdout());
            n += 1;
            if frames.is_some_and(|f| n >= f) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(every);
        }
    }
    let r = report(spool)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("the report serialises"));
    } else {
        print!("{}", text(&r));
    }
    Ok(if r.members.iter().any(|m| m.live) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
