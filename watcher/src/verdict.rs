//! What an execution of the fence command means, decided without I/O: whether it carried out the
//! action, the response it gives, and the failure reason the metrics count. Plain functions of the
//! execution's ending and the action, table-tested here; `serve` applies them.

use ha::protocol::request::Action;
use ha::protocol::response::{Outcome, PowerState, Response};

use crate::execute::{Ending, Execution};
use crate::metrics::Reason;

/// Why an execution that ended so failed, for the metrics.
pub fn reason(ending: &Ending) -> Reason {
    match ending {
        Ending::Exited(_) => Reason::exit_status,
        Ending::Signalled(_) => Reason::signal,
        Ending::TimedOut(_) => Reason::timeout,
        Ending::SpawnFailed(_) | Ending::NotStarted(_) => Reason::not_started,
        Ending::Aborted => Reason::aborted,
    }
}

/// Whether the execution carried out `action` (fence-agents' status: 0 is ON, 2 is OFF).
pub fn succeeded(action: Action, exec: &Execution) -> bool {
    matches!((&exec.ending, action), (Ending::Exited(0), _) | (Ending::Exited(2), Action::Status))
}

/// Fills the response from an execution's result.
pub fn judge(action: Action, exec: &Execution, resp: &mut Response) {
    let detail = if exec.output.is_empty() { String::new() } else { format!(": {}", exec.output) };
    let (success, power, message) = match (&exec.ending, action) {
        (Ending::Exited(0), Action::Status) => (true, PowerState::On, "status: ON".to_string()),
        (Ending::Exited(2), Action::Status) => (true, PowerState::Off, "status: OFF".to_string()),
        (Ending::Exited(0), Action::Off) => (true, PowerState::Off, "fenced: powered OFF".to_string()),
        (Ending::Exited(0), Action::On) => (true, PowerState::On, "unfenced: powered ON".to_string()),
        (Ending::Exited(0), Action::Reboot) => (true, PowerState::Unknown, "fenced: rebooted".to_string()),
        (Ending::Exited(c), _) => (false, PowerState::Unknown, format!("fence command exited with status {c}{detail}")),
        (Ending::Signalled(sig), _) => {
            (false, PowerState::Unknown, format!("fence command killed by signal {sig}{detail}"))
        }
        (Ending::TimedOut(d), _) => (
            false,
            PowerState::Unknown,
            format!(
                "fence command timed out after {:.1}s and was killed with its process group{detail}",
                d.as_secs_f64()
            ),
        ),
        (Ending::SpawnFailed(why), _) => (false, PowerState::Unknown, why.clone()),
        (Ending::NotStarted(why), _) => (
            false,
            PowerState::Unknown,
            format!("{why}, again and again until the deadline: the fence command never ran"),
        ),
        (Ending::Aborted, _) => (false, PowerState::Unknown, "aborted".to_string()),
    };
    resp.success = success;
    resp.power_state = Some(power);
    resp.outcome = Some(if success { Outcome::Done } else { Outcome::Failed });
    resp.message = message;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exec(ending: Ending, output: &str) -> Execution {
        Execution { ending, pid: 7, output: output.to_string(), duration: Duration::from_millis(5) }
    }

    fn judged(action: Action, e: &Execution) -> Response {
        let blank = br#"{"request_id":"i","success":false,"action_performed":"","target_node":"n","message":"","timestamp":"t"}"#;
        let mut r = Response::parse(blank).expect("a blank response");
        judge(action, e, &mut r);
        r
    }

    #[test]
    fn an_execution_is_judged_by_its_ending_and_the_action() {
        use Action::{Off, On, Reboot, Status};
        let timed_out = Ending::TimedOut(Duration::from_millis(2500));
        for (action, ending, success, power, message) in [
            (Off, Ending::Exited(0), true, PowerState::Off, "fenced: powered OFF"),
            (Reboot, Ending::Exited(0), true, PowerState::Unknown, "fenced: rebooted"),
            (On, Ending::Exited(0), true, PowerState::On, "unfenced: powered ON"),
            (Status, Ending::Exited(0), true, PowerState::On, "status: ON"),
            (Status, Ending::Exited(2), true, PowerState::Off, "status: OFF"),
            (Off, Ending::Exited(2), false, PowerState::Unknown, "fence command exited with status 2: why"),
            (Status, Ending::Exited(1), false, PowerState::Unknown, "fence command exited with status 1: why"),
            (Off, Ending::Signalled(9), false, PowerState::Unknown, "fence command killed by signal 9: why"),
            (
                Reboot,
                timed_out,
                false,
                PowerState::Unknown,
                "fence command timed out after 2.5s and was killed with its process group: why",
            ),
            (Off, Ending::SpawnFailed("no such file".into()), false, PowerState::Unknown, "no such file"),
            (
                Off,
                Ending::NotStarted("EMFILE".into()),
                false,
                PowerState::Unknown,
                "EMFILE, again and again until the deadline: the fence command never ran",
            ),
            (Off, Ending::Aborted, false, PowerState::Unknown, "aborted"),
        ] {
            let e = exec(ending, "why");
            let r = judged(action, &e);
            let case = format!("{action:?} {:?}", e.ending);
            assert_eq!((r.success, r.power_state, r.message.as_str()), (success, Some(power), message), "{case}");
            assert_eq!(r.outcome, Some(if success { Outcome::Done } else { Outcome::Failed }), "{case}");
            assert_eq!(succeeded(action, &e), success, "judge and succeeded agree: {case}");
        }
    }

    #[test]
    fn a_command_that_printed_nothing_adds_nothing_to_the_message() {
        let r = judged(Action::Off, &exec(Ending::Exited(1), ""));
        assert_eq!(r.message, "fence command exited with status 1");
    }

    #[test]
    fn every_failed_ending_has_its_reason() {
        for (ending, want) in [
            (Ending::Exited(1), Reason::exit_status),
            (Ending::Signalled(15), Reason::signal),
            (Ending::TimedOut(Duration::from_secs(1)), Reason::timeout),
            (Ending::SpawnFailed(String::new()), Reason::not_started),
            (Ending::NotStarted(String::new()), Reason::not_started),
            (Ending::Aborted, Reason::aborted),
        ] {
            assert_eq!(reason(&ending), want, "{ending:?}");
        }
    }
}
