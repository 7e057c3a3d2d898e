//! `gfs2-fence-events unfence NODE --reason TEXT`: the audited unfence (`agent::unfence`) by an
//! operator. NODE is mapped to the plug as the fence was: `--plug` when given, else the plug the
//! chain last recorded a fence of NODE under (Pacemaker's `pcmk_host_map`), else NODE itself (the
//! agent's rule: the plug, or the node's name when no plug is given). The record is appended to the
//! first `--log-dir` (or the log directory's setting or default), as the agent appends its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::error::EventsError;
use super::fenced;
use super::nnf_dirs::NnfDirs;
use super::records::Record;
use super::report::Format;
use super::sources::Chain;
use agent::unfence::{self, Outcome};

/// The `unfence` command's arguments.
#[derive(Debug, Args)]
pub struct UnfenceArgs {
    /// Pacemaker's name of the node (or its plug).
    node: String,
    /// Why, for the record (required): who checked what, a ticket.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// The plug the node was fenced by, when the chain does not say (pcmk_host_map's alias).
    #[arg(long)]
    plug: Option<String>,
    #[command(flatten)]
    dirs: NnfDirs,
}

/// Runs `unfence`.
pub fn run(a: &UnfenceArgs, chains: &[Chain], log_dirs: &[PathBuf], format: Format) -> Result<ExitCode, EventsError> {
    if a.reason.trim().is_empty() {
        return Err(EventsError::Usage("--reason must say why the node is unfenced".into()));
    }
    let chain: Vec<Record> = chains.iter().flat_map(|c| c.records.iter().cloned()).collect();
    let plug = a.plug.clone().or_else(|| fenced::plug_of(&chain, &a.node)).unwrap_or_else(|| a.node.clone());
    if !ha::protocol::names::is_safe_name(&plug) {
        return Err(agent::failure::Failure::UnsafeTarget(plug).into());
    }
    let log_dir = match log_dirs.first() {
        Some(d) => d.clone(),
        None => ha::os::setting::LOG_DIR
            .lookup(&|k| std::env::var(k).ok())?
            .map_or_else(|| PathBuf::from("/var/log/gfs2-fencing"), |f| PathBuf::from(f.value)),
    };
    let exchange = a.dirs.exchange();
    exchange.prepare()?;
    let nodename = (plug != a.node).then_some(a.node.as_str());
    let who = unfence::who::now(&a.reason, &|k| std::env::var(k).ok());
    let order = unfence::Order { exchange: &exchange, log_dir: &log_dir, plug: &plug, nodename, who };
    let outcome = unfence::run(order)?;
    let (code, text) = match &outcome {
        Outcome::Nothing => {
            (0, format!("{plug}: no record of a fence stands in {}; nothing to do", exchange.responses.display()))
        }
        Outcome::Refused(why) => (1, why.clone()),
        Outcome::Unfenced(u) => (
            0,
            format!(
                "{plug} unfenced by {}: {} moved into {}{}; nnf-sos re-creates its storage at its next reconcile",
                u.by,
                u.records.iter().map(|k| k.from.as_str()).collect::<Vec<_>>().join(", "),
                exchange.responses.join(unfence::KEPT_DIR).display(),
                if u.set_aside.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} request(s) set aside)", u.set_aside.len())
                }
            ),
        ),
    };
    match (format, &outcome) {
        (Format::Json, _) => {
            let (result, unfence) = match &outcome {
                Outcome::Nothing => ("nothing", None),
                Outcome::Refused(_) => ("refused", None),
                Outcome::Unfenced(u) => ("unfenced", Some(u)),
            };
            let doc = serde_json::json!({"node": a.node, "plug": plug, "result": result, "message": text, "unfence": unfence});
            println!("{}", serde_json::to_string_pretty(&doc).expect("serialises"));
        }
        (_, Outcome::Refused(_)) => eprintln!("gfs2-fence-events: {text}"),
        _ => println!("{text}"),
    }
    Ok(ExitCode::from(code))
}
