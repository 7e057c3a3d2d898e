//! `gfs2-fence-events`: answers from the fence event records (current and rotated
//! `fence-events-detailed.jsonl`) the questions the original documentation answered with `jq`, and
//! verifies the audit chain; for one rabbit or for a whole site (several log directories, a
//! directory of gathered ones, journal files from systemd-journal-remote). And the way back from an
//! nnf-sos fence: `fenced` (who nnf-sos holds fenced now) and `unfence` (the audited unfence of
//! `crate::unfence`). Every command but `unfence` reads only and never takes the log's lock;
//! `unfence` appends to the chain as the agent does.
//!
//! - [`error`]: what can go wrong; [`records`]: finding and parsing the files, filters;
//!   [`sources`]: one chain per rabbit from log directories, gathered directories and files;
//!   [`journal`]: chains from journal files; [`report`]: the tables and formats; [`answers`]: a
//!   spool's durable answers against the records (`verify --spool`); [`verify`]: each chain on its
//!   own; [`nnf_dirs`]: the options naming nnf-sos's directories; [`fenced`]: the standing records as a
//!   table; [`unfence`]: the `unfence` command.

pub mod error;
pub mod records;
pub mod sources;
pub mod journal;
pub mod report;
pub mod answers;
pub mod verify;
pub mod nnf_dirs;
pub mod fenced;
pub mod unfence;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use error::EventsError;
use ha::audit;
use records::{Filter, Record};
use report::{By, Format};
use sources::Chain;

/// Fence events recorded by fence_gfs2_recorder: list, count, file systems, timeline, latency,
/// and verification of the tamper-evident audit chain.
#[derive(Debug, Parser)]
#[command(name = "gfs2-fence-events", version)]
struct Cli {
    /// Directory of a rabbit's logs (current and rotated fence-events-detailed.jsonl); repeatable,
    /// one rabbit each [default, when no source is given: $GFS2_FENCE_LOG_DIR (alias LOG_DIR), else
    /// /var/log/gfs2-fencing].
    #[arg(long = "log-dir", value_name = "DIR", global = true)]
    log_dirs: Vec<PathBuf>,
    /// A directory of rabbits' log directories, one subdirectory each, as clush's reverse copy or
    /// rsync gathers them (repeatable).
    #[arg(long = "site-dir", value_name = "DIR", global = true)]
    site_dirs: Vec<PathBuf>,
    /// A directory of journal files (systemd-journal-remote's, or a copy of /var/log/journal):
    /// the records the agents and watchers sent to journald, one chain per rabbit (repeatable).
    #[arg(long = "journal-dir", value_name = "DIR", global = true)]
    journal_dirs: Vec<PathBuf>,
    /// Read these files, one chain, instead of the log directories' (repeatable).
    #[arg(long = "file", value_name = "FILE", global = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every event, oldest first, every source merged.
    List(FilterArgs),
    /// Events per node (or rabbit, or cluster): requested, completed, failed, last.
    Count(ByArgs),
    /// Every GFS2 file system named by a completed fence.
    Filesystems(FilterArgs),
    /// One line per fence request: when, who, how it ended, how long it took.
    Timeline(FilterArgs),
    /// Per node (or rabbit, or cluster), request-to-completion latency percentiles of completed fences.
    Latency(ByArgs),
    /// Check each rabbit's audit chain: reports its first broken link (exit 1), across rotated files.
    Verify(VerifyArgs),
    /// The nodes nnf-sos holds fenced now: each success answer standing in its response directory
    /// (exit 0 when one is listed, 1 when none, 2 on error).
    Fenced(FencedArgs),
    /// Unfence NODE: move nnf-sos's record of its fence into unfenced/ of the response directory,
    /// audited in the chain, so that nnf-sos re-creates its storage at its next reconcile. Only once
    /// the node is known to have rebooted since its fence (exit 0 unfenced or nothing to do, 1
    /// refused, 2 on error).
    Unfence(unfence::UnfenceArgs),
}

#[derive(Debug, Args)]
struct FencedArgs {
    #[command(flatten)]
    dirs: nnf_dirs::NnfDirs,
    /// Only this node (Pacemaker's name or the plug).
    #[arg(long)]
    node: Option<String>,
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// Only events at or after: 90s, 30m, 12h, 7d, 2w ago, a date (2026-11-25) or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only events before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only this node (Pacemaker's name or the plug).
    #[arg(long)]
    node: Option<String>,
    /// Only this action (off, on, reboot, status).
    #[arg(long)]
    action: Option<String>,
    /// Only this status (requested, completed, failed).
    #[arg(long)]
    status: Option<String>,
    /// Only events naming this GFS2 file system.
    #[arg(long)]
    fs: Option<String>,
    /// Only events recorded on this rabbit (recorder_node).
    #[arg(long)]
    rabbit: Option<String>,
    /// Only events of this Pacemaker cluster.
    #[arg(long)]
    cluster: Option<String>,
}

#[derive(Debug, Args)]
struct ByArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// One row per node, rabbit or cluster.
    #[arg(long, value_enum, default_value = "node")]
    by: By,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Also check the records against journal anchors: a file of `seq=N hash=H` lines (`-` for
    /// stdin), e.g. from `journalctl -t gfs2-fence-audit -o cat`.
    #[arg(long, value_name = "FILE")]
    anchors: Option<PathBuf>,
    /// Also check against the anchors in the local journal (runs journalctl).
    #[arg(long)]
    journal: bool,
    /// Also compare with this spool's answers: fences our agent had answered whose outcome record
    /// is not in the chain are reported as records missing after a crash (exit 3).
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
}

/// Every chain the command line names: each --log-dir (or, instead, the --files), each gathered
/// rabbit of --site-dir, each rabbit of --journal-dir; the log directory's setting or default when
/// none.
fn chains(cli: &Cli) -> Result<Vec<Chain>, EventsError> {
    // Read even when options decide: two names of the setting that disagree are an error anyway.
    let from_env = ha::os::setting::LOG_DIR.lookup(&|k| std::env::var(k).ok())?;
    let mut chains = Vec::new();
    // --file stands for a log directory's files: the log directories are then not read.
    for dir in cli.log_dirs.iter().filter(|_| cli.files.is_empty()) {
        chains.push(sources::log_dir(dir)?);
    }
    for dir in &cli.site_dirs {
        let found = sources::site(dir)?;
        if found.is_empty() {
            return Err(EventsError::Usage(format!(
                "{} has no subdirectory holding {}: give the directory the rabbits' log directories were gathered into",
                dir.display(),
                records::DETAILED
            )));
        }
        chains.extend(found);
    }
    for dir in &cli.journal_dirs {
        chains.extend(journal::chains(dir)?);
    }
    if !cli.files.is_empty() {
        let shown: Vec<String> = cli.files.iter().map(|f| f.display().to_string()).collect();
        chains.push(sources::files(shown.join(" "), &cli.files)?);
    }
    if cli.log_dirs.is_empty() && cli.site_dirs.is_empty() && cli.journal_dirs.is_empty() && cli.files.is_empty() {
        let dir = from_env.map_or_else(|| PathBuf::from("/var/log/gfs2-fencing"), |f| PathBuf::from(f.value));
        chains.push(sources::log_dir(&dir)?);
    }
    Ok(chains)
}

fn filter(a: &FilterArgs) -> Result<Filter, EventsError> {
    let now = chrono::Utc::now();
    let t =
        |s: &Option<String>| s.as_deref().map(|s| records::parse_time(s, now)).transpose().map_err(EventsError::Usage);
    Ok(Filter {
        since: t(&a.since)?,
        until: t(&a.until)?,
        node: a.node.clone(),
        action: a.action.clone(),
        status: a.status.clone(),
        fs: a.fs.clone(),
        rabbit: a.rabbit.clone(),
        cluster: a.cluster.clone(),
    })
}

/// How a subcommand makes its table from the records.
type MakeTable<'a> = Box<dyn Fn(&[Record]) -> report::Table + 'a>;

/// Runs the CLI.
pub fn run() -> Result<ExitCode, EventsError> {
    let cli = Cli::parse();
    let chains = match (&cli.command, chains(&cli)) {
        (_, Ok(chains)) => chains,
        // The way back reads the chain only to name nodes: without it, it still works.
        (Command::Fenced(_) | Command::Unfence(_), Err(e)) => {
            eprintln!("gfs2-fence-events: note: {e}; nodes are named by their plugs only");
            Vec::new()
        }
        (_, Err(e)) => return Err(e),
    };
    let (args, make): (&FilterArgs, MakeTable) = match &cli.command {
        Command::Verify(v) => return verify_command(&chains, v),
        Command::Fenced(a) => return fenced_command(&chains, a, cli.format),
        Command::Unfence(a) => return unfence::run(a, &chains, &cli.log_dirs, cli.format),
        Command::List(a) => (a, Box::new(report::list)),
        Command::Count(a) => (&a.filter, Box::new(|r: &[Record]| report::count(r, a.by))),
        Command::Filesystems(a) => (a, Box::new(report::filesystems)),
        Command::Timeline(a) => (a, Box::new(report::timeline)),
        Command::Latency(a) => (&a.filter, Box::new(|r: &[Record]| report::latency(r, a.by))),
    };
    for note in sources::notes(&chains) {
        eprintln!("gfs2-fence-events: note: {note}");
    }
    let f = filter(args)?;
    let several = chains.len() > 1;
    let mut recs: Vec<Record> = chains.into_iter().flat_map(|c| c.records).filter(|r| f.keeps(r)).collect();
    // One timeline over every source; a rabbit's own records keep their order within a second.
    if several {
        recs.sort_by_key(|r| r.time);
    }
    let out = match (&cli.command, cli.format) {
        (Command::List(_), Format::Json) => {
            let raw: Vec<&serde_json::Value> = recs.iter().map(|r| &r.raw).collect();
            format!("{}\n", serde_json::to_string_pretty(&raw).expect("records serialise"))
        }
        _ => make(&recs).render(cli.format),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn verify_command(chains: &[Chain], v: &VerifyArgs) -> Result<ExitCode, EventsError> {
    let mut anchors = Vec::new();
    if let Some(path) = &v.anchors {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| EventsError::Read { path: path.clone(), source })?;
            s
        } else {
            String::from_utf8_lossy(&sources::read(path)?).into_owned()
        };
        anchors.extend(audit::parse_anchors(&text));
    }
    if v.journal {
        let args = ["-t", audit::log::ANCHOR_IDENT, "-o", "cat", "--no-pager"];
        let out =
            ha::discovery::run::run_tool(&["journalctl".to_string()], &args, Instant::now() + Duration::from_secs(60))
                .map_err(|e| EventsError::Journal(e.to_string()))?;
        anchors.extend(audit::parse_anchors(&String::from_utf8_lossy(&out)));
    }
    verify::run(chains, &anchors, v.spool.as_deref())
}

fn fenced_command(chains: &[Chain], a: &FencedArgs, format: Format) -> Result<ExitCode, EventsError> {
    let exchange = a.dirs.exchange();
    let standing = crate::standing::list(&exchange.responses)?;
    let chain: Vec<Record> = chains.iter().flat_map(|c| c.records.iter().cloned()).collect();
    let table = fenced::table(&standing, &chain, a.node.as_deref());
    match (format, table.rows.is_empty()) {
        (Format::Table, true) => println!(
            "(no node is held fenced: no success answer{} stands in {})",
            a.node.as_deref().map(|n| format!(" for {n}")).unwrap_or_default(),
            exchange.responses.display()
        ),
        _ => print!("{}", table.render(format)),
    }
    Ok(if table.rows.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
