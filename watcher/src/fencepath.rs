//! The leader's health check of the real fence path: each configured command's `monitor` action,
//! with its options, run like a fence (own process group, death signal, timeout); the results go to
//! `health.json` for the agent's `monitor`, and changes are logged.

use std::time::Duration;

use tokio::sync::watch;

use ha::cluster::health::{Health, PathHealth};
use ha::os::clock::BootTime;

use crate::execute::{self, Ending, Invocation};
use crate::shared::Shared;

/// How long one `monitor` may take.
const MONITOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks every fence path and publishes the report.
pub async fn check(shared: &Shared) -> Health {
    let s = &shared.settings;
    let (_keep, mut never) = watch::channel(false);
    let mut paths = Vec::new();
    for (cmd, targets, default) in s.fence.paths() {
        let inv = Invocation {
            program: &cmd.program,
            stdin: execute::monitor_text(&cmd),
            request_id: "health-check",
            environment: &cmd.environment,
        };
        let exec = execute::execute(inv, MONITOR_TIMEOUT, None, &mut never, |_| {}).await;
        let ok = exec.ending == Ending::Exited(0);
        let message = match (&exec.ending, exec.output.is_empty()) {
            (Ending::Exited(0), _) => "monitor succeeded".to_string(),
            (Ending::Exited(c), true) => format!("monitor exited with status {c}"),
            (Ending::Exited(c), false) => {
                format!("monitor exited with status {c}: {}", exec.output)
            }
            (other, _) => format!("monitor {other}"),
        };
        paths.push(PathHealth { command: cmd.program.display().to_string(), targets, default, ok, message });
    }
    let report = Health {
        checked: ha::os::clock::rfc3339_now(),
        checked_boottime_ns: BootTime::now().0,
        boot_id: shared.boot_id.clone(),
        interval_ms: s.health_interval.map_or(0, |d| d.as_millis() as u64),
        paths,
    };
    let previous = ha::cluster::health::read(&s.spool);
    for p in &report.paths {
        let was_ok = previous
            .as_ref()
            .and_then(|h| h.paths.iter().find(|q| q.command == p.command && q.targets == p.targets))
            .map(|q| q.ok);
        if was_ok != Some(p.ok) {
            if p.ok {
                tracing::info!(command = %p.command, targets = ?p.targets, "fence path healthy");
            } else {
                tracing::error!(command = %p.command, targets = ?p.targets, "fence path broken: {}", p.message);
            }
        }
    }
    let bytes = serde_json::to_vec(&report).expect("a health report serialises");
    if let Err(e) =
        ha::fsio::write_replace(&s.spool.dir(ha::spool::Dir::Tmp), &ha::cluster::health::path(&s.spool), &bytes)
    {
        tracing::error!("publishing health.json: {e}");
    }
    report
}
