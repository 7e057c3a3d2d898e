//! The file formats: requests, responses and both readable logs round-trip, and no byte string makes
//! a parser panic (discovery tools' output included). Protects the spool's public contract and the audit trail's readability.

use proptest::prelude::*;

use agent::logs::{json_line, parse_readable, readable_line, Event, EventRecord, Status};
use ha::discovery;
use ha::protocol::provenance::{Provenance, Source};
use ha::protocol::request::{Action, Request};
use ha::protocol::response::{Outcome, PowerState, Response};

fn safe_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,30}".prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

prop_compose! {
    fn request()(
        id in any::<u128>(), timestamp in ".*", action in action(), target in safe_name(),
        gfs2 in prop::collection::vec(".*", 0..4), recorder in ".*", versioned in any::<bool>(),
        nodename in prop::option::of(safe_name()), priority in prop::option::of(any::<i32>()),
        deadline in prop::option::of(".*"), ns in prop::option::of(any::<u64>()), boot in prop::option::of(".*"),
    ) -> Request {
        Request {
            request_id: uuid::Uuid::from_u128(id).hyphenated().to_string(),
            timestamp, action, target_node: target, gfs2_filesystems: gfs2, recorder_node: recorder,
            version: versioned.then_some(1), nodename, queue_priority: priority, deadline,
            deadline_boottime_ns: ns, boot_id: boot, gfs2_discovery: None,
        }
    }
}

prop_compose! {
    fn response()(
        id in ".*", success in any::<bool>(), action in ".*", target in ".*", message in ".*", ts in ".*",
        power in prop::option::of(prop::sample::select(vec![PowerState::On, PowerState::Off, PowerState::Unknown])),
        outcome in prop::option::of(prop::sample::select(vec![
            Outcome::Done, Outcome::Failed, Outcome::Expired, Outcome::Abandoned, Outcome::Rejected,
            Outcome::Coalesced, Outcome::Superseded, Outcome::Other])),
        watcher in prop::option::of(".*"), attempts in prop::option::of(any::<u32>()),
        duration in prop::option::of(any::<u64>()), epoch in prop::option::of(any::<u64>()),
    ) -> Response {
        Response {
            request_id: id, success, action_performed: action, target_node: target, message, timestamp: ts,
            version: Some(1), power_state: power, watcher_id: watcher, attempts, duration_ms: duration,
            outcome, epoch,
        }
    }
}

proptest! {
    /// A request the agent writes is read back identically by every watcher.
    #[test]
    fn requests_round_trip(r in request()) {
        prop_assert_eq!(Request::parse(&r.to_json()), Ok(r));
    }

    /// A response a watcher writes is read back identically by every agent.
    #[test]
    fn responses_round_trip(r in response()) {
        prop_assert_eq!(Response::parse(&r.to_json()), Ok(r));
    }

    /// A readable-log line gives back every field it was written from (newlines in details become spaces).
    #[test]
    fn readable_log_lines_round_trip(
        a in action(), target in safe_name(), gfs2 in prop::collection::vec(".*", 0..4),
        status in prop::sample::select(vec![Status::Requested, Status::Completed, Status::Failed]),
        details in ".*",
    ) {
        let e = Event { action: a.as_str(), target_node: &target, gfs2: &gfs2, status, details: &details,
            request_id: None, nodename: None, outcome: None, watcher_id: None, elapsed_ms: None, gfs2_discovery: None };
        let line = readable_line("2025-01-10 14:23:16", &e);
        let gfs2_part = &line[line.find(" GFS2=").unwrap()..line.find(" STATUS=").unwrap()];
        prop_assert!(gfs2_part.is_ascii(), "GFS2 names are written as json.dumps does: {}", gfs2_part);
        let back = parse_readable(&line).unwrap();
        prop_assert_eq!(back.action, a.as_str());
        prop_assert_eq!(back.target_node, target);
        prop_assert_eq!(back.gfs2, gfs2);
        prop_assert_eq!(back.status, status.as_str());
        prop_assert_eq!(back.details, details.replace(['\n', '\r'], " "));
    }

    /// A JSONL record gives back every field it was written from.
    #[test]
    fn jsonl_records_round_trip(
        a in action(), target in safe_name(), gfs2 in prop::collection::vec(".*", 0..4), details in ".*",
        id in prop::option::of(".*"), elapsed in prop::option::of(any::<u64>()),
        age in prop::option::of(any::<u64>()), dlm in prop::collection::vec(".*", 0..3), error in ".*",
    ) {
        let provenance = Provenance {
            method: "snapshot".into(), taken: Some("2025-01-10T14:23:00Z".into()), age_ms: age, duration_ms: None,
            by_source: [(Source::Dlm, dlm)].into(), errors: [(Source::Cib, error)].into(),
        };
        let e = Event { action: a.as_str(), target_node: &target, gfs2: &gfs2, status: Status::Completed,
            details: &details, request_id: id.as_deref(), nodename: None, outcome: None, watcher_id: None,
            elapsed_ms: elapsed, gfs2_discovery: Some(&provenance) };
        let line = json_line("2025-01-10T14:23:16Z".into(), "rabbit", &e);
        prop_assert!(line.is_ascii(), "json.dumps escapes everything outside ASCII");
        let back: EventRecord = serde_json::from_str(&line).unwrap();
        prop_assert_eq!(back.gfs2_filesystems, gfs2);
        prop_assert_eq!(back.details, details);
        prop_assert_eq!(back.request_id, id);
        prop_assert_eq!(back.elapsed_ms, elapsed);
        prop_assert_eq!(back.gfs2_discovery, Some(provenance));
    }

    /// Whatever is in a file or on stdin, parsers answer with a value or a typed error, never a panic.
    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = Request::parse(&bytes);
        let _ = Response::parse(&bytes);
        let _ = parse_readable(&text);
        let _ = discovery::nnf::parse(&bytes);
        let _ = discovery::dlm::parse_ls(&text);
        let _ = discovery::dlm::parse_status(&text);
        let _ = discovery::dlm::parse_crm_node(&text);
        let _ = discovery::dlm::parse_cmapctl(&text);
        let _ = discovery::cib::parse(&text);
        let _ = serde_json::from_slice::<EventRecord>(&bytes);
        let _ = ha::protocol::names::ClaimName::parse(&text);
        let _ = ha::protocol::names::request_id_of_file(&text);
        let given = agent::options::from_stdin(&text);
        let _ = agent::options::Options::resolve(&given, |_| None);
    }

    /// Near-misses of valid JSON (truncations) are typed errors too.
    #[test]
    fn truncated_requests_are_typed_errors(r in request(), cut in any::<prop::sample::Index>()) {
        let json = r.to_json();
        let at = cut.index(json.len());
        prop_assert!(Request::parse(&json[..at]).is_err());
    }
}
