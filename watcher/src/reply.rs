//! Answers: building a response, writing it once, retiring the claim.

use std::time::Instant;

use ha::os::clock::BootTime;
use ha::protocol::request::SPOOL_VERSION;
use ha::protocol::response::{Outcome, Response};
use ha::spool::answer::{self, Placed};
use ha::spool::claim::{Claimed, Quarantined};
use ha::spool::decide;

use crate::error::WatchError;
use crate::metrics::Reason;
use crate::shared::Shared;

/// A response from this watcher for a request, not yet filled in (failure by default).
pub fn response(shared: &Shared, id: &str, action: &str, target: &str) -> Response {
    Response {
        request_id: id.to_string(),
        success: false,
        action_performed: action.to_string(),
        target_node: target.to_string(),
        message: String::new(),
        timestamp: ha::os::clock::rfc3339_now(),
        version: Some(SPOOL_VERSION),
        power_state: None,
        watcher_id: Some(shared.settings.id.clone()),
        attempts: None,
        duration_ms: None,
        outcome: None,
        epoch: ha::cluster::leader::read(&shared.settings.spool).ok().flatten().map(|l| l.epoch),
    }
}

/// A response for a claimed request.
pub fn for_claim(shared: &Shared, c: &Claimed) -> Response {
    let r = &c.request;
    response(shared, &r.request_id, r.action.as_str(), &r.target_node)
}

/// Answers a quarantined request `rejected` when its id is known, so its agent fails fast.
pub fn reject(shared: &Shared, q: &Quarantined) {
    let Some(id) = &q.id else { return };
    let mut r = response(shared, id, q.action.as_deref().unwrap_or("unknown"), q.target.as_deref().unwrap_or(""));
    r.message = format!("request rejected and quarantined at {}: {}", q.moved_to.display(), q.reason);
    r.outcome = Some(Outcome::Rejected);
    // Under the file's own name: the name its client waits for.
    match answer::respond(&shared.settings.spool, &r, &q.file) {
        Ok(Placed::First) => {
            shared.metrics.answered(&r.target_node, &r.action_performed, "rejected", None, Some(Reason::rejected))
        }
        Ok(Placed::Superseded(_)) => {}
        Err(e) => tracing::error!(request_id = %id, "answering a rejected request: {e}"),
    }
}

/// When a claimed request was written (the claimed file keeps its mtime) and the deadline it carries.
pub fn written_and_deadline(shared: &Shared, c: &Claimed) -> (Option<BootTime>, BootTime) {
    let written = c
        .lease
        .file()
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .map_or(Some(BootTime::now()), ha::os::clock::boottime_of);
    let deadline = decide::deadline_of(&c.request, &shared.boot_id, written, shared.settings.default_deadline);
    (written, deadline)
}

/// Writes `resp` for `claimed` (unless the claim was taken over while this watcher was frozen) and
/// retires the claim; `why` it failed, when it did, for the metrics.
pub fn answer_and_retire(
    shared: &Shared,
    claimed: Claimed,
    mut resp: Response,
    started: Instant,
    why: Option<Reason>,
) -> Result<(), WatchError> {
    let spool = &shared.settings.spool;
    if !claimed.still_ours(spool) {
        tracing::warn!(request_id = %resp.request_id, "this claim was taken over while it ran; not answering");
        return Ok(());
    }
    resp.duration_ms = Some(started.elapsed().as_millis() as u64);
    resp.timestamp = ha::os::clock::rfc3339_now();
    let placed = answer::respond(spool, &resp, &claimed.file_name())?;
    if placed == Placed::First {
        let outcome = resp.outcome.map_or(if resp.success { "done" } else { "failed" }, Outcome::as_str);
        let (written, deadline) = written_and_deadline(shared, &claimed);
        let now = BootTime::now();
        let times = written.map(|w| (w.until(now), w.until(deadline)));
        shared.metrics.answered(&resp.target_node, &resp.action_performed, outcome, times, why);
    }
    tracing::info!(request_id = %resp.request_id, target = %resp.target_node, action = %resp.action_performed,
        success = resp.success, outcome = resp.outcome.map_or("", Outcome::as_str), attempts = resp.attempts,
        superseded = matches!(placed, Placed::Superseded(_)), "answered");
    answer::finish(spool, claimed)?;
    Ok(())
}
