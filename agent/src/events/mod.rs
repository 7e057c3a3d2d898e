//! `gfs2-fence-events`: answers from the fence event records (current and rotated
//! `fence-events-detailed.jsonl`) the questions the original documentation answered with `jq`, and
//! verifies the audit chain. Reads only; never takes the log's lock.
//!
//! - [`error`]: what can go wrong; [`records`]: finding and parsing the files, filters; [`report`]: the tables and formats;
//!   [`answers`]: a spool's durable answers against the records (`verify --spool`).

pub mod error;
pub mod records;
pub mod report;
pub mod answers;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use error::EventsError;
use ha::audit::{self, LogFile};
use records::{Filter, Record};
use report::Format;

/// Fence events recorded by fence_gfs2_recorder: list, count, file systems, timeline, latency,
/// and verification of the tamper-evident audit chain.
#[derive(Debug, Parser)]
#[command(name = "gfs2-fence-events", version)]
struct Cli {
    /// Directory of the logs (current and rotated fence-events-detailed.jsonl) [default:
    /// /var/log/gfs2-fencing; alias of the environment variable: LOG_DIR].
    #[arg(long, env = "GFS2_FENCE_LOG_DIR", global = true)]
    log_dir: Option<PathBuf>,
    /// Read these files instead of the log directory's (repeatable).
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
    /// Every event, oldest first.
    List(FilterArgs),
    /// Events per node: requested, completed, failed, last.
    Count(FilterArgs),
    /// Every GFS2 file system named by a completed fence.
    Filesystems(FilterArgs),
    /// One line per fence request: when, who, how it ended, how long it took.
    Timeline(FilterArgs),
    /// Per node, request-to-completion latency percentiles of completed fences.
    Latency(FilterArgs),
    /// Check the audit chain: reports the first broken link (exit 1), across rotated files.
    Verify(VerifyArgs),
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

/// Largest (decompressed) log file read.
const MAX_LOG: u64 = 4 << 30;

fn read(path: &std::path::Path) -> Result<Vec<u8>, EventsError> {
    let mut bytes = Vec::new();
    let err = |source| EventsError::Read { path: path.to_path_buf(), source };
    let f = ha::fsio::open_nofollow(path).map_err(err)?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(f).take(MAX_LOG).read_to_end(&mut bytes).map_err(err)?;
    } else {
        f.take(MAX_LOG).read_to_end(&mut bytes).map_err(err)?;
    }
    Ok(bytes)
}

fn files(cli: &Cli) -> Result<Vec<LogFile>, EventsError> {
    let paths = if cli.files.is_empty() {
        let from_env = ha::os::setting::LOG_DIR.lookup(&|k| std::env::var(k).ok())?;
        let dir = cli.log_dir.clone().or(from_env.map(|f| PathBuf::from(f.value)));
        let dir = dir.unwrap_or_else(|| PathBuf::from("/var/log/gfs2-fencing"));
        let (plain, compressed) =
            records::log_files(&dir).map_err(|source| EventsError::Read { path: dir.clone(), source })?;
        for c in compressed {
            eprintln!(
                "gfs2-fence-events: skipping {} (only gzip is read: decompress it and pass it with --file)",
                c.display()
            );
        }
        plain
    } else {
        cli.files.clone()
    };
    paths.iter().map(|p| Ok(LogFile { name: p.display().to_string(), bytes: read(p)? })).collect()
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
    })
}

/// Every record of the files, in file order.
fn records_of(logs: &[LogFile]) -> Vec<Record> {
    logs.iter()
        .flat_map(|l| String::from_utf8_lossy(&l.bytes).lines().filter_map(Record::parse).collect::<Vec<_>>())
        .collect()
}

/// Runs the CLI.
pub fn run() -> Result<ExitCode, EventsError> {
    let cli = Cli::parse();
    let logs = files(&cli)?;
    let (args, make): (&FilterArgs, fn(&[Record]) -> report::Table) = match &cli.command {
        Command::Verify(v) => return verify(&logs, v),
        Command::List(a) => (a, report::list),
        Command::Count(a) => (a, report::count),
        Command::Filesystems(a) => (a, report::filesystems),
        Command::Timeline(a) => (a, report::timeline),
        Command::Latency(a) => (a, report::latency_by_node),
    };
    let f = filter(args)?;
    let recs: Vec<Record> = records_of(&logs).into_iter().filter(|r| f.keeps(r)).collect();
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

fn verify(logs: &[LogFile], v: &VerifyArgs) -> Result<ExitCode, EventsError> {
    let mut anchors = Vec::new();
    if let Some(path) = &v.anchors {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| EventsError::Read { path: path.clone(), source })?;
            s
        } else {
            String::from_utf8_lossy(&read(path)?).into_owned()
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
    let r = audit::verify(logs, &anchors);
    let span = r.span.map_or("no chained record".to_string(), |(a, b)| format!("seq {a} to {b}"));
    let summary = format!(
        "{} chained records ({span}) in {} files; {} before the chain; {} outside it; {} anchors checked",
        r.records,
        logs.len(),
        r.pre_chain,
        r.unchained.len(),
        r.anchors
    );
    for p in &r.unchained {
        println!("unchained record (written without the log's lock): {p}");
    }
    for (p, seq) in &r.crash_cuts {
        println!("record cut short by a crash: {p} (the record seq {seq} was being written; the chain continues from the one before it)");
    }
    let missing = match &v.spool {
        Some(spool) => answers::unrecorded(spool, &records_of(logs))?,
        None => Vec::new(),
    };
    for m in &missing {
        println!(
            "record missing after a crash: request {} ({}, answered {} at {}) has an answer in the spool but no outcome record",
            m.request_id, m.target, m.outcome, m.answered
        );
    }
    if let Some((first, _)) = r.span.filter(|(first, _)| *first > 1) {
        println!("note: the chain starts at seq {first} here (older files not given, or removed by rotation)");
    }
    match r.broken {
        None if !missing.is_empty() => {
            println!(
                "OK, RECORDS MISSING: {summary}; {} answered fences have no record (the chain's tail lost in a power cut, or the agent killed before it recorded)",
                missing.len()
            );
            Ok(ExitCode::from(3))
        }
        None => {
            println!("OK: {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!("BROKEN: {b}");
            println!("checked before the break: {summary}");
            Ok(ExitCode::FAILURE)
        }
    }
}
