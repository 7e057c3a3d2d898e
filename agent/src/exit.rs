//! What the fence-agents caller sees of a fence: the exit code (0 success or ON, 2 OFF) and the
//! stdout line (`Success: Powered OFF`, `Status: ON`, ...), and how a response becomes one
//! ([`verdict`]): a failure, an expired, abandoned or rejected request, or an unknown power state for
//! `status` is not a success. No I/O.

use ha::protocol::request::Action;
use ha::protocol::response::{Outcome, PowerState, Response};

/// What the fence-agents caller sees: the exit code and the stdout line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (0 success / ON, 2 OFF).
    pub code: u8,
    /// What to print on stdout.
    pub stdout: String,
}

fn success_text(action: Action) -> &'static str {
    match action {
        Action::Off => "Success: Powered OFF",
        Action::On => "Success: Powered ON",
        Action::Reboot => "Success: Rebooted",
        Action::Status => "Status: ON",
    }
}

/// Interprets a matching response.
pub fn verdict(action: Action, r: &Response) -> Result<Exit, String> {
    let why = || {
        let outcome = r.outcome.map(|o| format!(", outcome {}", o.as_str()));
        let by = r.watcher_id.as_deref().map(|w| format!(", watcher {w}")).unwrap_or_default();
        format!("{}{}{}", r.message, outcome.unwrap_or_default(), by)
    };
    if !r.success || matches!(r.outcome, Some(Outcome::Expired | Outcome::Abandoned | Outcome::Rejected)) {
        return Err(why());
    }
    match (action, r.power_state) {
        (Action::Status, Some(PowerState::Off)) => Ok(Exit { code: 2, stdout: "Status: OFF".into() }),
        (Action::Status, Some(PowerState::On)) => Ok(Exit { code: 0, stdout: "Status: ON".into() }),
        (Action::Status, _) => Err(format!("the power state is unknown: {}", why())),
        _ => Ok(Exit { code: 0, stdout: success_text(action).into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(success: bool, outcome: Option<Outcome>, power: Option<PowerState>) -> Response {
        Response {
            request_id: "x".into(),
            success,
            action_performed: "off".into(),
            target_node: "n".into(),
            message: "m".into(),
            timestamp: "t".into(),
            version: None,
            power_state: power,
            watcher_id: Some("w1".into()),
            attempts: None,
            duration_ms: None,
            outcome,
            epoch: None,
        }
    }

    #[test]
    fn verdicts_follow_fence_agents_conventions() {
        assert_eq!(verdict(Action::Reboot, &resp(true, None, None)).unwrap().stdout, "Success: Rebooted");
        assert_eq!(verdict(Action::Status, &resp(true, None, Some(PowerState::Off))).unwrap().code, 2);
        assert_eq!(verdict(Action::Status, &resp(true, None, Some(PowerState::On))).unwrap().code, 0);
        assert!(verdict(Action::Status, &resp(true, None, None)).is_err());
        let err = verdict(Action::Off, &resp(false, Some(Outcome::Failed), None)).unwrap_err();
        assert_eq!(err, "m, outcome failed, watcher w1");
        assert!(verdict(Action::Off, &resp(true, Some(Outcome::Expired), None)).is_err());
    }
}
