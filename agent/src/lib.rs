//! `fence_gfs2_recorder`: a Pacemaker fence agent, indistinguishable from a fence-agents one, that
//! fences through the gfs2-fencing spool and records every fence event.
//!
//! Without command-line arguments it reads `key=value` options on stdin (what Pacemaker does);
//! otherwise it takes fence-agents flags. stdout carries only what Pacemaker reads (metadata, list
//! lines, `Success:`/`Status:` lines); diagnostics go to stderr and `fence-events.log`. Exit codes:
//! 0 success (status ON), 1 failure, 2 status OFF. No async runtime: the agent starts in about a
//! millisecond and does one thing.

pub mod failure;
pub mod params;
pub mod metadata;
pub mod responder;
pub mod options;
pub mod exchange;
pub mod logs;
pub mod discovery;
pub mod abandoned;
pub mod known;
pub mod checks;
pub mod exit;
pub mod standing;
pub mod unfence;
pub mod nnf_sos;
pub mod wait;
pub mod fence;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use ha::protocol::request::Action;
use tracing_subscriber::layer::SubscriberExt;

use crate::failure::Failure;
use crate::options::{Given, Options, Start};

/// The most stdin the agent takes (Pacemaker sends well under 4 KiB). More is refused whole: a cut
/// could land inside `plug=node10` (fencing node1) or drop a later `action=` line.
pub const MAX_STDIN: u64 = 1024 * 1024;

fn read_options() -> Result<Given, Failure> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if !args.is_empty() {
        return options::from_argv(&args).map_err(|e| Failure::Usage(e.0));
    }
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::Usage(format!("cannot read options from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_STDIN {
        return Err(Failure::Usage(format!(
            "more than {MAX_STDIN} bytes of options on stdin: refusing to act on a part of them; \
             check what feeds this agent (Pacemaker sends a few key=value lines)"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::Usage(format!(
            "options on stdin are not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    Ok(options::from_stdin(&text))
}

fn out(text: &str) -> Result<ExitCode, Failure> {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    if !text.is_empty() && !text.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent. `Err` is reported by [`report`] and exits 1.
pub fn run() -> Result<ExitCode, Failure> {
    let start = Start { instant: Instant::now(), boot: ha::os::clock::BootTime::now() };
    let tz_warning = ha::os::tz::bound();
    // What Pacemaker's fencer left open never reaches a discovery tool.
    ha::os::child::cloexec_inherited();
    let given = read_options()?;
    let opts = Options::resolve(&given, |k| std::env::var(k).ok())?;
    if opts.help {
        return out(&options::usage());
    }
    if opts.version {
        return out(concat!("fence_gfs2_recorder ", env!("CARGO_PKG_VERSION")));
    }
    match opts.action.as_str() {
        "metadata" => return out(&metadata::xml()),
        "manpage" => return out(&metadata::manpage()),
        _ => {}
    }
    // The checks create nothing: run by hand, they leave the host as it was. (A status that goes on
    // to ask the watchers creates the log directory when it records itself.)
    let checking = matches!(opts.action.as_str(), "monitor" | "validate-all" | "list" | "status");
    let (layer, warnings) =
        logs::OpsLayer::new(&opts.ops_log, opts.debug_file.as_deref(), opts.verbose, opts.quiet, !checking);
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    for w in warnings.iter().chain(&given.warnings).chain(&tz_warning) {
        tracing::warn!("{w}");
    }
    match opts.action.as_str() {
        "monitor" => checks::monitor(&opts).map(|()| ExitCode::SUCCESS),
        "validate-all" => checks::validate(&opts).map(|()| ExitCode::SUCCESS),
        "list" => out(&checks::list(&opts)?),
        other => {
            let action = Action::parse(other).ok_or_else(|| Failure::UnknownAction(other.to_string()))?;
            let answer = fence::run(&opts, action, start)?;
            out(&answer.stdout)?;
            Ok(ExitCode::from(answer.code))
        }
    }
}

/// Reports a failure as fence-agents do (`Failed: …` on stderr) and in the operational log.
pub fn report(failure: &Failure) -> ExitCode {
    tracing::error!("{failure}");
    eprintln!("Failed: {failure}");
    ExitCode::FAILURE
}
