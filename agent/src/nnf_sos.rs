//! `status` and `on` with `responder=nnf-sos`, which write no request.
//!
//! nnf-sos takes every file in its request directory for a fence, whatever its `action`, so a
//! `status` or `on` request would fence the node. Instead:
//! - `status` reads nnf-sos's record (`crate::standing`): a node is fenced (OFF, exit 2) while a
//!   success answer for it is in the response directory, which is what nnf-sos itself consults before
//!   re-creating the node's storage; ON otherwise.
//! - `on` is Pacemaker's unfencing. With `allow_unfencing` set, and the CIB showing the device with
//!   `provides=unfencing` in a cluster whose fencing reaction is `panic` (`crate::unfence::allowed`),
//!   it performs the audited unfence (`crate::unfence`); a node with no standing record succeeds,
//!   touching nothing. Without `allow_unfencing` it fails (exit 1), saying how to unfence by hand:
//!   nnf-sos has no power-on.
//!
//! No locks here (the unfence takes its own).

use ha::protocol::request::Action;

use crate::exchange::Exchange;
use crate::exit::Exit;
use crate::failure::Failure;
use crate::options::Options;
use crate::unfence::{self, allowed, Outcome};

/// `status` or `on` of `target` (Pacemaker's name `nodename`), answered without a request.
pub fn without_request(opts: &Options, exchange: &Exchange, target: &str, action: Action) -> Result<Exit, Failure> {
    let records = crate::standing::of(&exchange.responses, target)?;
    let list = || records.iter().map(|r| r.path.display().to_string()).collect::<Vec<_>>().join(", ");
    let by_hand = format!(
        "after making sure the node has rebooted since its fence, unfence it with gfs2-fence-events unfence {} \
         --reason TEXT (audited), or set {} with provides=unfencing and fencing-reaction=panic for Pacemaker's \
         unfencing",
        opts.nodename.as_deref().unwrap_or(target),
        allowed::PARAM
    );
    match action {
        Action::Status if records.is_empty() => Ok(Exit { code: 0, stdout: "Status: ON".into() }),
        Action::Status => {
            tracing::info!("{target} is fenced by nnf-sos: {}", list());
            Ok(Exit { code: 2, stdout: "Status: OFF".into() })
        }
        _ if !opts.allow_unfencing && records.is_empty() => Err(Failure::Fence(format!(
            "responder=nnf-sos cannot power {target} on, and no success answer for it is in {}: nnf-sos does not \
             hold it fenced, so its storage is (or will be) attached already",
            exchange.responses.display()
        ))),
        _ if !opts.allow_unfencing => Err(Failure::Fence(format!(
            "responder=nnf-sos cannot power {target} on: nnf-sos holds it fenced by its record ({}); {by_hand}",
            list()
        ))),
        _ => {
            let devices = allowed::by_pacemaker(crate::metadata::NAME)
                .map_err(|why| Failure::Fence(format!("{target} is not unfenced, nothing was moved: {why}")))?;
            let reason = format!(
                "Pacemaker's unfencing (on) of {target}: {} sets {} with provides=unfencing, fencing-reaction=panic",
                devices.join(", "),
                allowed::PARAM
            );
            let who = unfence::who::now(&reason, &|k| std::env::var(k).ok());
            let order = unfence::Order {
                exchange,
                log_dir: &opts.log_dir,
                plug: target,
                nodename: opts.nodename.as_deref(),
                who,
            };
            match unfence::run(order)? {
                Outcome::Nothing | Outcome::Unfenced(_) => Ok(Exit { code: 0, stdout: "Success: Powered ON".into() }),
                Outcome::Refused(why) => Err(Failure::Fence(why)),
            }
        }
    }
}
