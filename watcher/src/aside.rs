//! Standing aside for older watchers during a rolling upgrade.
//!
//! Watchers of an older spool format (`ha::spool::SPOOL_FORMAT`, carried in each heartbeat; none
//! means 1) take other locks and follow other moves: format 1 locks `locks/<requested name>.lock`
//! and does not look for an earlier claim of a target. While a live peer speaks an older format,
//! this watcher claims, requeues, recovers and re-dispatches nothing, so the older watchers serve the
//! spool alone under their own contract; it goes on beating, leading and answering `status`. The
//! rule is `ha::cluster::members::stands_aside` (older only: two builds that both follow it never
//! both stand aside). The state is refreshed from `members/` at start, at every heartbeat, when a
//! peer joins and when one dies; the main loop and the tasks read it. Transitions are logged and
//! shown by `/metrics` (`gfs2_fence_standing_aside`) and `status`. No locks: `members/` is read with
//! the liveness probes of `ha::cluster::members`.

use std::sync::atomic::Ordering;

use ha::cluster::members;
use ha::os::clock::BootTime;

use crate::shared::Shared;

/// Reads `members/` and updates whether this watcher stands aside, logging a change. Returns the new
/// state. A `members/` that cannot be read keeps the previous state.
pub fn refresh(shared: &Shared) -> bool {
    let states = match members::member_states(&shared.settings.spool, BootTime::now(), &shared.boot_id) {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!("reading members/ to compare spool formats: {e}");
            return standing_aside(shared);
        }
    };
    let oldest = members::oldest_live(&states);
    let aside = members::stands_aside(ha::spool::SPOOL_FORMAT, oldest.map(|(_, f)| f));
    let was = shared.standing_aside.swap(aside, Ordering::Relaxed);
    match (was, aside, oldest) {
        (false, true, Some((peer, format))) => tracing::warn!(
            peer = %peer, peer_format = format, our_format = ha::spool::SPOOL_FORMAT,
            "standing aside: a live peer speaks an older spool format, so it alone claims, recovers and fences \
             until it stops (finish the rolling upgrade: restart the older watchers)"
        ),
        (true, false, _) => tracing::info!("no live peer speaks an older spool format any more: claiming again"),
        _ => {}
    }
    shared.metrics.set_standing_aside(aside);
    aside
}

/// Whether this watcher stands aside now (as of the last [`refresh`]).
pub fn standing_aside(shared: &Shared) -> bool {
    shared.standing_aside.load(Ordering::Relaxed)
}
