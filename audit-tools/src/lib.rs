//! `gfs2-fence-events`: answers from the fence event records (current and rotated
//! `fence-events-detailed.jsonl`) the questions the original documentation answered with `jq`, and
//! verifies the audit chain; for one rabbit or for a whole site (several log directories, a
//! directory of gathered ones, journal files from systemd-journal-remote). And the way back from an
//! nnf-sos fence: `fenced` (who nnf-sos holds fenced now) and `unfence` (the audited unfence of
//! `agent::unfence`). Every command but `unfence` reads only and never takes the log's lock;
//! `unfence` appends to the chain as the agent does.
//!
//! - [`error`]: what can go wrong; [`records`]: finding and parsing the files, filters; [`fences`]:
//!   records paired into fences, which the reports but `list` filter; [`sources`]: one chain per
//!   rabbit from log directories, gathered directories and files;
//!   [`journal`]: chains from journal files; [`report`]: the tables and formats; [`answers`]: a
//!   spool's durable answers against the records (`verify --spool`); [`verify`]: each chain on its
//!   own; [`nnf_dirs`]: the options naming nnf-sos's directories; [`fenced`]: the standing records as a
//!   table; [`unfence`]: the `unfence` command; [`chart`]: `timeline` and `latency` drawn as SVG.

pub mod error;
pub mod records;
pub mod fences;
pub mod sources;
pub mod journal;
pub mod report;
pub mod answers;
pub mod verify;
pub mod nnf_dirs;
pub mod fenced;
pub mod unfence;
pub mod chart;

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

/// Fence events recorded by fence_gfs2_recorder, and their audit chain.
///
/// Reports from the records of one rabbit or a whole site: list, count, file systems, timeline,
/// latency; verification of the tamper-evident audit chain; the nodes nnf-sos holds fenced now and
/// the audited unfence.
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
    /// Draw the timeline (fences per node over time) or the latency (a histogram) as an SVG document
    /// on stdout, for a browser or a report: gfs2-fence-events chart timeline --since 7d > fences.svg
    Chart(ChartArgs),
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
struct ChartArgs {
    /// What to draw.
    #[arg(value_enum)]
    what: Chart,
    #[command(flatten)]
    filter: FilterArgs,
}

/// The pictures `chart` draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Chart {
    /// A row per node, a mark per fence at its request, coloured by how it ended.
    Timeline,
    /// Fences per bucket of request-to-end time, completed and failed stacked.
    Latency,
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
    /// A fence is kept or dropped whole, by the time of its request.
    #[arg(long)]
    since: Option<String>,
    /// Only events before (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only these nodes (Pacemaker's name or the plug; repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    node: Vec<String>,
    /// Only these actions: off, on, reboot, status, unfence (repeatable, or comma-separated).
    /// count, latency and filesystems report off, reboot and unfence unless given.
    #[arg(long, value_delimiter = ',')]
    action: Vec<String>,
    /// Only these statuses: requested, completed, failed, unfencing, unfenced (repeatable, or
    /// comma-separated); the reports but list keep a fence one of whose records has it.
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// Only events naming these GFS2 file systems (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    fs: Vec<String>,
    /// Only events recorded on these rabbits (recorder_node; repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    rabbit: Vec<String>,
    /// Only events of these Pacemaker clusters (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',')]
    cluster: Vec<String>,
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

/// The filter `a` gives; `fences_only`: the fence actions when no action is given. A value no
/// record can carry is refused, naming those that can.
fn filter(a: &FilterArgs, fences_only: bool) -> Result<Filter, EventsError> {
    let now = chrono::Utc::now();
    let t =
        |s: &Option<String>| s.as_deref().map(|s| records::parse_time(s, now)).transpose().map_err(EventsError::Usage);
    let known = |what: &str, given: &[String], valid: &[&str]| -> Result<Vec<String>, EventsError> {
        let given: Vec<String> = given.iter().map(|v| v.trim().to_ascii_lowercase()).collect();
        match given.iter().find(|v| !valid.contains(&v.as_str())) {
            Some(bad) => Err(EventsError::Usage(format!(
                "--{what} {bad:?} matches no record: records carry {}",
                valid.join(", ")
            ))),
            None => Ok(given),
        }
    };
    let mut action = known("action", &a.action, &records::ACTIONS)?;
    if action.is_empty() && fences_only {
        action = records::FENCE_ACTIONS.iter().map(|s| s.to_string()).collect();
    }
    Ok(Filter {
        since: t(&a.since)?,
        until: t(&a.until)?,
        node: a.node.clone(),
        action,
        status: known("status", &a.status, &records::STATUSES)?,
        fs: a.fs.clone(),
        rabbit: a.rabbit.clone(),
        cluster: a.cluster.clone(),
    })
}

/// How a subcommand makes its table from the fences its filter keeps.
type MakeTable<'a> = Box<dyn Fn(&[fences::Fence]) -> report::Table + 'a>;

/// The width to fit a table to: the terminal's, when stdout is one (as `ps` does); none into a pipe
/// or a file, where every character is kept.
fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut ws = nix::libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills the winsize it is given; stdout stays open for the call.
    let ok = unsafe { nix::libc::ioctl(nix::libc::STDOUT_FILENO, nix::libc::TIOCGWINSZ, &mut ws) } == 0;
    Some(if ok && ws.ws_col > 0 { usize::from(ws.ws_col) } else { 80 })
}

/// What `gfs2-fence-events`'s man page says beyond its options (`--generate man`, run by `make man`).
const MANPAGE: ha::manpage::Extra<'static> = ha::manpage::Extra {
    sections: &[
        (
            "Exit status",
            "0: the report was made (verify: every chain read verifies; fenced: a record stands; \
             unfence: unfenced, or nothing to do). 1: verify found a broken link or read no anchor it \
             was asked for; fenced found no record; unfence was refused. 2: an error, a bad command \
             line, or a filter value no record carries.",
        ),
        ("Environment", "GFS2_FENCE_LOG_DIR (alias LOG_DIR): the log directory when no source is given."),
        (
            "Files",
            "/var/log/gfs2-fencing/fence-events-detailed.jsonl and its rotated copies (compressed or \
             not): the records and the audit chain read by every command.",
        ),
        (
            "Examples",
            "The last day's fences, the fences per node of the past month, the chain checked:\n\n\
             \x20 gfs2-fence-events timeline --since 1d\n\
             \x20 gfs2-fence-events count --since 30d\n\
             \x20 gfs2-fence-events verify",
        ),
    ],
    see_also: &[
        "fence_gfs2_recorder(8)",
        "gfs2-fence-watcher(8)",
        "gfs2-fence-alert(8)",
        "logrotate(8)",
        "/usr/share/doc/gfs2-fencing/docs/operators/OPERATIONS.md",
    ],
};

/// Runs the CLI.
pub fn run() -> Result<ExitCode, EventsError> {
    if ha::manpage::requested(std::env::args_os()) {
        print!("{}", ha::manpage::render(<Cli as clap::CommandFactory>::command(), &MANPAGE));
        return Ok(ExitCode::SUCCESS);
    }
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
    let (args, fences_only, make): (&FilterArgs, bool, MakeTable) = match &cli.command {
        Command::Verify(v) => return verify_command(&chains, v),
        Command::Fenced(a) => return fenced_command(&chains, a, cli.format),
        Command::Unfence(a) => return unfence::run(a, &chains, &cli.log_dirs, cli.format),
        Command::List(a) => return list_command(chains, a, cli.format),
        Command::Chart(a) => return chart_command(chains, a),
        Command::Count(a) => (&a.filter, true, Box::new(|f: &[fences::Fence]| report::count(f, a.by))),
        Command::Filesystems(a) => (a, true, Box::new(report::filesystems)),
        Command::Timeline(a) => (a, false, Box::new(report::timeline)),
        Command::Latency(a) => (&a.filter, true, Box::new(|f: &[fences::Fence]| report::latency(f, a.by))),
    };
    let f = filter(args, fences_only)?;
    let recs = merged(chains);
    // Paired first, then filtered: a fence is kept or dropped whole.
    let kept: Vec<fences::Fence> = fences::pair(&recs).into_iter().filter(|fence| fence.passes(&f)).collect();
    print!("{}", make(&kept).render(cli.format, terminal_width()));
    Ok(ExitCode::SUCCESS)
}

/// Every record of `chains` (their notes said on stderr), in time order across sources; a rabbit's
/// own records keep their order within a second.
fn merged(chains: Vec<Chain>) -> Vec<Record> {
    for note in sources::notes(&chains) {
        eprintln!("gfs2-fence-events: note: {note}");
    }
    let several = chains.len() > 1;
    let mut recs: Vec<Record> = chains.into_iter().flat_map(|c| c.records).collect();
    if several {
        recs.sort_by_key(|r| r.time);
    }
    recs
}

/// `chart`: the picture of the fences the filter keeps, as SVG on stdout.
fn chart_command(chains: Vec<Chain>, a: &ChartArgs) -> Result<ExitCode, EventsError> {
    let f = filter(&a.filter, a.what == Chart::Latency)?;
    let recs = merged(chains);
    let kept: Vec<fences::Fence> = fences::pair(&recs).into_iter().filter(|fence| fence.passes(&f)).collect();
    let drawn = match a.what {
        Chart::Timeline => chart::timeline(&kept),
        Chart::Latency => chart::latency(&kept),
    };
    print!("{}", drawn.map_err(EventsError::Chart)?);
    Ok(ExitCode::SUCCESS)
}

/// `list`: each record the filter keeps (JSON: the records as written).
fn list_command(chains: Vec<Chain>, a: &FilterArgs, format: Format) -> Result<ExitCode, EventsError> {
    let f = filter(a, false)?;
    let recs: Vec<Record> = merged(chains).into_iter().filter(|r| f.keeps(r)).collect();
    let out = match format {
        Format::Json => {
            let raw: Vec<&serde_json::Value> = recs.iter().map(|r| &r.raw).collect();
            format!("{}\n", serde_json::to_string_pretty(&raw).expect("records serialise"))
        }
        _ => report::list(&recs).render(format, terminal_width()),
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
        let read = audit::parse_anchors(&text);
        // Asked to check against anchors, verify never says OK having checked none.
        if read.is_empty() {
            return Err(EventsError::Usage(format!(
                "{} holds no anchor (a `seq=N hash=H` line, as `journalctl -t {} -o cat` prints them): nothing \
                 could be checked against it; give the anchors of this rabbit's journal",
                path.display(),
                audit::log::ANCHOR_IDENT
            )));
        }
        anchors.extend(read);
    }
    if v.journal {
        let args = ["-t", audit::log::ANCHOR_IDENT, "-o", "cat", "--no-pager"];
        let out =
            ha::discovery::run::run_tool(&["journalctl".to_string()], &args, Instant::now() + Duration::from_secs(60))
                .map_err(|e| EventsError::Journal(e.to_string()))?;
        let read = audit::parse_anchors(&String::from_utf8_lossy(&out));
        if read.is_empty() {
            return Err(EventsError::Journal(format!(
                "the local journal holds no {} anchor: nothing could be checked against it (is this the rabbit \
                 whose records these are, and does its journal keep them?)",
                audit::log::ANCHOR_IDENT
            )));
        }
        anchors.extend(read);
    }
    verify::run(chains, &anchors, v.spool.as_deref())
}

fn fenced_command(chains: &[Chain], a: &FencedArgs, format: Format) -> Result<ExitCode, EventsError> {
    let exchange = a.dirs.exchange();
    let standing = agent::standing::list(&exchange.responses)?;
    let chain: Vec<Record> = chains.iter().flat_map(|c| c.records.iter().cloned()).collect();
    let table = fenced::table(&standing, &chain, a.node.as_deref());
    match (format, table.rows.is_empty()) {
        (Format::Table, true) => println!(
            "(no node is held fenced: no success answer{} stands in {})",
            a.node.as_deref().map(|n| format!(" for {n}")).unwrap_or_default(),
            exchange.responses.display()
        ),
        _ => print!("{}", table.render(format, terminal_width())),
    }
    Ok(if table.rows.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
