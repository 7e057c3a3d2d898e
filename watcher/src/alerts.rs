//! The leader's ingestion of Pacemaker's fencing alerts (dropped by `gfs2-fence-alert`, see
//! `ha::audit::alert`) into the audit trail: each valid alert becomes a chained record of the detailed log
//! (`source: "pacemaker-alert"`, with the node's GFS2 file systems from the discovery snapshot) and
//! a readable-log line, then its file is removed; an invalid one is quarantined in the spool with
//! its reason. A record that cannot be written leaves its file for the next sweep.
//!
//! The drop directory must be a real directory owned by this process's user and not writable by
//! others (group write is the point: `1730 root haclient`); otherwise nothing is ingested and the
//! sweep says why. Locks taken: the detailed log's (see `ha::audit::log`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use ha::audit::alert::Alert;
use ha::audit::log::{Appended, ChainedLog};
use ha::audit::record::EventRecord;
use ha::discovery::snapshot;
use ha::os::clock::BootTime;

use crate::shared::Shared;

/// A snapshot older than this does not name an alert's file systems.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(600);

/// Why the drop directory is not used, if it is not.
fn untrusted(dir: &Path) -> Option<String> {
    let meta = match dir.symlink_metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot inspect {}: {e}", dir.display())),
    };
    if !meta.file_type().is_dir() {
        return Some(format!("{} is not a directory (a symlink?)", dir.display()));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Some(format!("{} is owned by uid {}, not by this watcher's user", dir.display(), meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Some(format!("{} is writable by everyone; use 1730 root:haclient", dir.display()));
    }
    None
}

/// Ingests every alert waiting in the drop directory. Returns a problem with the directory, if any.
pub fn ingest(shared: &Shared, dir: &Path) -> Result<usize, String> {
    if let Some(why) = untrusted(dir) {
        return Err(why);
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut done = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        let parsed = ha::fsio::read_capped(&path, ha::audit::alert::MAX_SIZE)
            .map_err(|e| format!("unreadable alert: {e}"))
            .and_then(|b| Alert::parse(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(alert) => match record(shared, &alert) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&path);
                    done += 1;
                }
                Err(e) => {
                    tracing::error!(alert = %path.display(), "cannot record a fencing alert (kept for the next sweep): {e}")
                }
            },
            Err(reason) => {
                if let Err(e) = ha::spool::claim::quarantine(&shared.settings.spool, &path, &reason) {
                    tracing::error!(alert = %path.display(), "cannot quarantine a bad alert ({reason}): {e}; renaming it .bad");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
    }
    Ok(done)
}

fn record(shared: &Shared, alert: &Alert) -> Result<(), String> {
    let s = &shared.settings;
    ha::spool::ensure_private_dir(&s.log_dir, true).map_err(|e| e.to_string())?;
    let names = [alert.node.as_str()];
    let (gfs2, provenance) = match snapshot::read_for(&s.spool, &names) {
        Ok(Some(snap)) => match snap.age(BootTime::now(), &shared.boot_id).filter(|a| *a <= SNAPSHOT_MAX_AGE) {
            Some(age) => {
                let (list, p) = snap.for_node(&names, age);
                (list, Some(p))
            }
            None => (vec![ha::discovery::NONE_DETECTED.to_string()], None),
        },
        _ => (vec![ha::discovery::NONE_DETECTED.to_string()], None),
    };
    let status = if alert.rc == 0 { "completed" } else { "failed" };
    let rec = EventRecord {
        timestamp: alert.received.clone(),
        action: alert.task.clone(),
        target_node: alert.node.clone(),
        gfs2_filesystems: gfs2.clone(),
        status: status.into(),
        details: alert.desc.clone(),
        recorder_node: alert.host.clone(),
        pacemaker_action: alert.task.clone(),
        request_id: None,
        nodename: Some(alert.node.clone()),
        outcome: None,
        watcher_id: Some(s.id.clone()),
        elapsed_ms: None,
        gfs2_discovery: provenance,
        cluster: s.cluster.clone(),
        source: Some("pacemaker-alert".into()),
        alert: Some(serde_json::to_value(&alert.env).expect("a map serialises")),
        unfence: None,
        seq: None,
        prev_hash: None,
        hash: None,
    };
    let line = ha::audit::record::readable_line(
        &ha::os::clock::local_log_stamp(),
        &alert.task,
        &alert.node,
        &gfs2,
        status,
        &format!("Pacemaker alert: {}", alert.desc),
    );
    let log = ChainedLog::open(&s.log_dir.join("fence-events-detailed.jsonl")).map_err(|e| e.to_string())?;
    match rec.append_to(&log, &line).map_err(|e| e.to_string())? {
        Appended::Chained(_) => {}
        Appended::Unchained(why) => tracing::warn!("fencing alert recorded outside the audit chain: {why}"),
    }
    let readable = s.log_dir.join("fence-events-readable.log");
    ha::fsio::open_append(&readable)
        .and_then(|f| ha::fsio::append_record(&f, line.as_bytes()))
        .map_err(|e| format!("{}: {e}", readable.display()))?;
    tracing::info!(node = %alert.node, task = %alert.task, rc = alert.rc, "recorded a fencing alert from Pacemaker");
    Ok(())
}
