//! Who answers the requests, and whether it can answer now.
//!
//! The `responder` parameter is configuration, never guessed from the spool's contents (a device
//! naming directories but no responder, as upstream's agents are configured, means the responder of
//! those directories: [`Responder::of_directories`], from the configuration alone): a spool
//! where no watcher ever started looks exactly like one an external program serves, and guessing
//! "external" there made `monitor` pass and every fence wait out its timeout. With our watchers
//! ([`Responder::Watchers`]) a fence fails at once and `monitor` fails unless a watcher is live (its
//! member lock held and its heartbeat younger than the TTL it declares: `ha::cluster::members::is_live`), so
//! Pacemaker moves to the next fencing level instead of waiting. With [`Responder::NnfSos`] (NNF's
//! node manager) and [`Responder::External`] the agent cannot judge liveness and waits for the
//! answer up to `fence_timeout`; `crate::exchange` says where their files go.

use ha::cluster::members::MemberState;
use ha::os::clock::BootTime;
use ha::protocol::names::Naming;
use ha::spool::{Dir, Spool};

use crate::failure::BadValue;
use crate::failure::Failure;
use crate::params::{PROTOCOLS, RESPONDERS};

/// Who answers the spool's requests: decides fast failure, the wake-up and what `monitor` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// This project's `gfs2-fence-watcher` processes: their liveness is judged from `members/`, and
    /// the answering watcher wakes the agent through its FIFO.
    Watchers,
    /// nnf-sos: every request is a fence (it removes the node's GFS2 storage groups), answered under
    /// the request's own name with `action_performed: "off"`; its success responses are its record of
    /// fenced nodes. `status` and `on` write no request (see `crate::nnf_sos`).
    NnfSos,
    /// Another program speaking the file protocol in the given naming generation (the seed's Python
    /// watchers: v1; upstream fence_recorder's responders: v2): no liveness judgement, the agent
    /// watches the response directory with inotify and waits up to `fence_timeout`.
    External(Naming),
}

impl Responder {
    /// The `responder` value naming it.
    pub fn as_str(self) -> &'static str {
        match self {
            Responder::Watchers => RESPONDERS[0],
            Responder::NnfSos => RESPONDERS[1],
            Responder::External(_) => RESPONDERS[2],
        }
    }

    /// Parses the `responder` value and, for `external`, the `protocol` value (`1` unless given; it
    /// is refused with any other responder, whose naming is fixed).
    pub fn parse(value: &str, protocol: Option<&str>) -> Result<Responder, BadValue> {
        let bad = |name: &str, value: &str, why: String| BadValue { name: name.into(), value: value.into(), why };
        let naming = match protocol.map(str::trim) {
            None | Some("1") => Naming::V1,
            Some("2") => Naming::V2,
            Some(other) => return Err(bad("protocol", other, format!("expected one of {}", PROTOCOLS.join(", ")))),
        };
        let responder = match value.trim() {
            v if v == RESPONDERS[0] => Responder::Watchers,
            v if v == RESPONDERS[1] => Responder::NnfSos,
            v if v == RESPONDERS[2] => return Ok(Responder::External(naming)),
            _ => return Err(bad("responder", value, format!("expected one of {}", RESPONDERS.join(", ")))),
        };
        match protocol {
            Some(p) => Err(bad(
                "protocol",
                p,
                format!("protocol applies to responder=external only; {} has its own file names", responder.as_str()),
            )),
            None => Ok(responder),
        }
    }

    /// The responder a device means when it names directories but no `responder`, as upstream's
    /// agents are configured (fence_recorder's `request_dir`/`response_dir`, fence_dummy recorder's
    /// `request_path`/`response_path`): the responder of those directories. That is nnf-sos when every
    /// directory given is nnf-sos's own (`ha::protocol::nnf::dirs`, compared by device and inode), and
    /// otherwise an external program speaking upstream's names (protocol 2, unless `protocol` says
    /// otherwise). Decided from the configuration alone, never from what the directories hold.
    pub fn of_directories(
        request_dir: Option<&str>,
        response_dir: Option<&str>,
        protocol: Option<&str>,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Responder, BadValue> {
        let nnf = ha::protocol::nnf::dirs(env);
        let nnf_sos = [(request_dir, &nnf[0]), (response_dir, &nnf[1])]
            .iter()
            .all(|(given, theirs)| given.is_none_or(|g| ha::protocol::nnf::same_dir(std::path::Path::new(g), theirs)));
        match (nnf_sos, protocol) {
            (true, _) => Responder::parse(RESPONDERS[1], protocol),
            (false, None) => Ok(Responder::External(Naming::V2)),
            (false, Some(_)) => Responder::parse(RESPONDERS[2], protocol),
        }
    }

    /// The file names requests and answers carry.
    pub fn naming(self) -> Naming {
        match self {
            Responder::Watchers => Naming::V1,
            Responder::NnfSos => Naming::V2,
            Responder::External(n) => n,
        }
    }

    /// Whether this responder can answer `spool` now. `Ok` carries the ids of the live watchers able to
    /// fence (empty for an external responder): during a rolling upgrade, those that stand aside for a
    /// live peer of an older spool format count only through that peer, which claims
    /// (`ha::cluster::members::able_to_fence`). `Err` says what is wrong and what to do.
    pub fn check(self, spool: &Spool) -> Result<Vec<String>, Failure> {
        if self != Responder::Watchers {
            return Ok(Vec::new());
        }
        let members = spool.dir(Dir::Members);
        if members.symlink_metadata().is_err() {
            return Err(Failure::Fence(format!(
                "no gfs2-fence-watcher has run on spool {} ({} does not exist): fences would wait for an answer \
                 nobody gives; start the watchers ({}); if they run with another spool (their --spool-dir or \
                 GFS2_FENCE_SPOOL_DIR), set spool_dir on the device to theirs; or set responder=external if \
                 another program answers this spool",
                spool.base().display(),
                members.display(),
                restart_command(&[])
            )));
        }
        spool.inspect(&[Dir::Members])?;
        let (now, boot) = (BootTime::now(), ha::os::clock::boot_id()?);
        let states = ha::cluster::members::member_states(spool, now, &boot)?;
        let live: Vec<String> = ha::cluster::members::able_to_fence(&states).into_iter().map(str::to_string).collect();
        if live.is_empty() {
            let seen: Vec<String> = states.iter().map(|m| describe(m, now, &boot)).collect();
            return Err(Failure::Fence(format!(
                "no live gfs2-fence-watcher on spool {} ({}): failing at once so that Pacemaker can use the next \
                 fencing level; start or unfreeze the watchers ({}), or set responder=external on the device if \
                 another program answers this spool",
                spool.base().display(),
                if seen.is_empty() { "no member in members/".to_string() } else { seen.join("; ") },
                restart_command(&states.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
            )));
        }
        Ok(live)
    }
}

/// The command that starts the watchers: the shipped units of the members named (`<host>-<N>` is
/// instance N of `gfs2-fence-watcher@.service`), else the three instances the shipped layout enables.
fn restart_command(ids: &[&str]) -> String {
    let mut instances: Vec<u32> =
        ids.iter().filter_map(|id| id.rsplit_once('-').and_then(|(_, n)| n.parse().ok())).collect();
    instances.sort_unstable();
    instances.dedup();
    if instances.is_empty() {
        instances = vec![1, 2, 3];
    }
    let units: Vec<String> = instances.iter().map(|n| format!("gfs2-fence-watcher@{n}")).collect();
    format!("systemctl restart {}", units.join(" "))
}

/// One member, for the failure message: why it does not count as live.
fn describe(m: &MemberState, now: BootTime, boot: &str) -> String {
    let age = m.heartbeat.as_ref().and_then(|h| Some((h.age(now, boot)?, h.ttl())));
    match (m.lock_held, age) {
        (false, _) => format!("{}: not running (member lock free)", m.id),
        (true, None) => format!("{}: running, no heartbeat of this boot", m.id),
        (true, Some((age, ttl))) => format!(
            "{}: running, but its heartbeat is {:.1}s old, past its TTL of {:.1}s (frozen, or it cannot write the spool)",
            m.id,
            age.as_secs_f64(),
            ttl.as_secs_f64()
        ),
    }
}
