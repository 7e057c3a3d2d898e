//! The command line of `gfs2-fence-watcher`. Every option has an environment form (`GFS2_FENCE_*`),
//! shown in `--help`; the command line wins over the environment, which wins over the default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use ha::discovery::run::Tools;

use crate::config::FenceConfig;
use crate::error::WatchError;
use crate::settings::{DiscoverySettings, Settings};

/// Highly available fencing watchers for gfs2-fencing spools.
#[derive(Debug, Parser)]
#[command(name = "gfs2-fence-watcher", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; boxing buys nothing
enum Command {
    /// Serve the spool: claim requests, run the fence command, write the responses.
    Run(RunArgs),
    /// Show the watcher cluster of a spool; exits non-zero when no watcher is alive.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Spool directory [default: /run/gfs2-fencing; aliases of the environment variable:
    /// GFS2_FENCING_DIR, the seed's REQUEST_DIR and RESPONSE_DIR naming its subdirectories].
    #[arg(long, env = "GFS2_FENCE_SPOOL_DIR", value_name = "DIR")]
    spool_dir: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Redraw the report every SECONDS in the terminal until interrupted.
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    watch: Option<Duration>,
    /// With --watch: stop after this many reports.
    #[arg(long, value_name = "N", requires = "watch")]
    frames: Option<u64>,
    /// Wait up to SECONDS for a live watcher (as the agent judges it) before reporting: for scripts
    /// that start watchers and then fence.
    #[arg(long, value_name = "SECONDS", value_parser = seconds, conflicts_with = "watch")]
    wait: Option<Duration>,
}

/// Seconds where 0 means "off".
fn seconds_or_off(s: &str) -> Result<Duration, String> {
    match ha::os::setting::seconds(s) {
        Ok(d) if d.is_zero() => Ok(d),
        _ => seconds(s),
    }
}

fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Seconds, more than 0 (`ha::os::setting::seconds`).
fn seconds(s: &str) -> Result<Duration, String> {
    match ha::os::setting::seconds(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Err(ha::os::setting::BadSeconds::NotANumber) => Err(format!("{s:?} is not a number of seconds")),
        _ => Err(format!("{s:?} must be more than 0 and at most {} seconds", ha::os::setting::MAX_SECONDS.as_secs())),
    }
}

#[derive(Debug, Args)]
#[command(args_override_self = true)]
struct RunArgs {
    /// Spool directory [default: /run/gfs2-fencing; aliases of the environment variable:
    /// GFS2_FENCING_DIR, the seed's REQUEST_DIR and RESPONSE_DIR naming its subdirectories].
    #[arg(long, env = "GFS2_FENCE_SPOOL_DIR", value_name = "DIR")]
    spool_dir: Option<String>,
    /// Default fence command (a fence-agents agent), when the configuration has no default entry.
    #[arg(long, env = "GFS2_FENCE_COMMAND", value_name = "PATH")]
    fence_command: Option<PathBuf>,
    /// Option sent to the default fence command on stdin (repeatable; the environment form is
    /// comma-separated).
    #[arg(long = "fence-option", env = "GFS2_FENCE_OPTIONS", value_name = "KEY=VALUE", value_delimiter = ',')]
    fence_options: Vec<String>,
    /// JSON configuration mapping targets to fence commands (see
    /// /usr/share/doc/gfs2-fencing/docs/operators/CONFIGURATION.md).
    #[arg(long, env = "GFS2_FENCE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// This watcher's id, unique on the spool (default: <hostname>-<pid>).
    #[arg(long, env = "GFS2_FENCE_ID", value_name = "NAME")]
    id: Option<String>,
    /// Longest single fence execution, in seconds (never past the request's deadline).
    #[arg(long, env = "GFS2_FENCE_EXEC_TIMEOUT", value_name = "SECONDS", default_value = "60", value_parser = seconds)]
    exec_timeout: Duration,
    /// Deadline for requests that carry none (the original format), counted from their claim.
    #[arg(long, env = "GFS2_FENCE_DEFAULT_DEADLINE", value_name = "SECONDS", default_value = "45", value_parser = seconds)]
    default_deadline: Duration,
    /// Least time worth starting a fence command with; a request with less left is answered expired.
    #[arg(long, env = "GFS2_FENCE_MIN_BUDGET", value_name = "SECONDS", default_value = "0.2", value_parser = seconds)]
    min_budget: Duration,
    /// Period of the safety rescan of requests/ and of dead-claim recovery.
    #[arg(long, env = "GFS2_FENCE_RESCAN_INTERVAL", value_name = "SECONDS", default_value = "2", value_parser = seconds)]
    rescan_interval: Duration,
    /// Period of the heartbeat in members/<id>.json.
    #[arg(long, env = "GFS2_FENCE_HEARTBEAT_INTERVAL", value_name = "SECONDS", default_value = "1", value_parser = seconds)]
    heartbeat_interval: Duration,
    /// Fence executions at once by this watcher: 16, so that each instance alone fences a chassis of 16
    /// compute nodes in one round (limit a device with `sessions` in the configuration instead).
    #[arg(long, env = "GFS2_FENCE_MAX_PARALLEL", value_name = "N", default_value = "16", value_parser = clap::value_parser!(u16).range(1..))]
    max_parallel: u16,
    /// Seconds in-flight executions may finish after SIGTERM before they are killed and requeued.
    #[arg(long, env = "GFS2_FENCE_SHUTDOWN_GRACE", value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    shutdown_grace: Duration,
    /// Do not use inotify: find requests by rescanning only (for file systems without inotify).
    #[arg(long, env = "GFS2_FENCE_NO_INOTIFY")]
    no_inotify: bool,
    /// A peer holding its member lock with a heartbeat older than this is frozen and is killed.
    #[arg(long, env = "GFS2_FENCE_TTL", value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    ttl: Duration,
    /// Executions per request in all, retries included (Pacemaker also retries and escalates).
    #[arg(long, env = "GFS2_FENCE_MAX_ATTEMPTS", value_name = "N", default_value = "2", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// First retry delay (exponential, with jitter), in seconds.
    #[arg(long, env = "GFS2_FENCE_RETRY_DELAY", value_name = "SECONDS", default_value = "0.5", value_parser = seconds)]
    retry_delay: Duration,
    /// Largest retry delay before jitter, in seconds.
    #[arg(long, env = "GFS2_FENCE_RETRY_MAX_DELAY", value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    retry_max_delay: Duration,
    /// Period of the leader's fence path health checks (each command's monitor action); 0: off.
    #[arg(long, env = "GFS2_FENCE_HEALTH_INTERVAL", value_name = "SECONDS", default_value = "60", value_parser = seconds_or_off)]
    health_interval: Duration,
    /// Age after which the leader removes finished records (done/, responses/, attempts/); 0: keep.
    /// Success answers to off and reboot (the record that a node was fenced) are kept: see
    /// --fenced-record-retention.
    #[arg(long, env = "GFS2_FENCE_RETENTION", value_name = "SECONDS", default_value = "0", value_parser = seconds_or_off)]
    retention: Duration,
    /// Age after which the leader also removes success answers to off and reboot, the record that a
    /// node was fenced (to nnf-sos such a record means "keep the node's storage detached"); 0: keep.
    #[arg(long, env = "GFS2_FENCE_FENCED_RECORD_RETENTION", value_name = "SECONDS", default_value = "0", value_parser = seconds_or_off)]
    fenced_record_retention: Duration,
    /// Period of the leader's GFS2 discovery rounds (discovery.json, read by agents); 0: off
    /// (GFS2_FENCE_DISCOVERY=false, or its alias GFS2_DISCOVERY_ENABLED=false, also switches it off).
    #[arg(long, env = "GFS2_FENCE_DISCOVERY_INTERVAL", value_name = "SECONDS", default_value = "30", value_parser = seconds_or_off)]
    discovery_interval: Duration,
    /// Budget of one discovery round (all sources in parallel; a tool still running is killed).
    #[arg(long, env = "GFS2_FENCE_DISCOVERY_TIMEOUT", value_name = "SECONDS", default_value = "10", value_parser = seconds)]
    discovery_timeout: Duration,
    /// How long a node that a source stops listing (a failed node leaving the DLM) keeps its last entry.
    #[arg(long, env = "GFS2_FENCE_DISCOVERY_MEMORY", value_name = "SECONDS", default_value = "600", value_parser = seconds)]
    discovery_memory: Duration,
    /// Discovery sources, comma-separated: kubernetes, dlm, cib [default: kubernetes,dlm,cib;
    /// alias of the environment variable: GFS2_DISCOVERY_SOURCES].
    #[arg(long, env = "GFS2_FENCE_DISCOVERY_SOURCES", value_name = "LIST")]
    discovery_sources: Option<String>,
    /// kubectl command line for the NNF source (split on white space, never run through a shell)
    /// [default: kubectl; alias of the environment variable: KUBECTL_CMD].
    #[arg(long, env = "GFS2_FENCE_KUBECTL_CMD", value_name = "COMMAND")]
    kubectl_cmd: Option<String>,
    /// Serve Prometheus /metrics and /healthz on this loopback address (e.g. 127.0.0.1:9851).
    #[arg(long, env = "GFS2_FENCE_METRICS_ADDR", value_name = "ADDR:PORT", value_parser = crate::http::parse_addr)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Serve metrics on 127.0.0.1 and this port plus the instance number (--instance): one setting
    /// for every gfs2-fence-watcher@N unit, each on its own port. --metrics-addr wins.
    #[arg(long, env = "GFS2_FENCE_METRICS_BASE_PORT", value_name = "PORT")]
    metrics_base_port: Option<u16>,
    /// The systemd unit's instance name (the shipped unit passes %i): a number, with --metrics-base-port.
    #[arg(long, value_name = "N")]
    instance: Option<String>,
    /// Directory of the fence event logs, where the leader records Pacemaker's fencing alerts
    /// [default: /var/log/gfs2-fencing; alias of the environment variable: LOG_DIR].
    #[arg(long, env = "GFS2_FENCE_LOG_DIR", value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Drop directory of gfs2-fence-alert (Pacemaker's alert agent); an empty value: no ingestion.
    #[arg(long, env = "GFS2_FENCE_ALERTS_DIR", value_name = "DIR", default_value = ha::audit::alert::DEFAULT_DIR)]
    alerts_dir: String,
    /// kubeconfig file for kubectl (default: kubectl's own).
    #[arg(long, env = "GFS2_FENCE_KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<String>,
}

/// The settings of `run`: the arguments resolved (options, then variables, then aliases), checked
/// against each other, and the cluster's name looked up.
fn settings(mut a: RunArgs) -> Result<Settings, WatchError> {
    let base = ha::spool::resolve_base(a.spool_dir.as_deref(), |k| std::env::var(k).ok())?;
    let fence = FenceConfig::load(a.config.as_deref(), a.fence_command.as_deref(), &fence_options(&a.fence_options)?)?;
    let id = watcher_id(a.id.take())?;
    let env = |k: &str| std::env::var(k).ok();
    let log_dir = or_alias(&env, a.log_dir.take().map(|p| p.display().to_string()), &ha::os::setting::LOG_DIR)?;
    let discovery = discovery_settings(&mut a, &env)?;
    let spool = ha::spool::Spool::new(base);
    let dirs = [ha::spool::Dir::Requests, ha::spool::Dir::Responses].map(|d| spool.dir(d));
    ha::protocol::nnf::refuse_shared(&dirs[0], &dirs[1], "gfs2-fence-watcher", &env)?;
    let cluster = cluster_name(&env)?;
    check_ttl(a.ttl, a.heartbeat_interval)?;
    Ok(Settings {
        spool,
        id,
        fence,
        exec_timeout: a.exec_timeout,
        default_deadline: a.default_deadline,
        min_budget: a.min_budget,
        rescan_interval: a.rescan_interval,
        heartbeat_interval: a.heartbeat_interval,
        max_parallel: a.max_parallel.into(),
        shutdown_grace: a.shutdown_grace,
        inotify: !a.no_inotify,
        ttl: a.ttl,
        retry: ha::spool::backoff::RetryPolicy {
            max_attempts: a.max_attempts,
            min_delay: a.retry_delay,
            max_delay: a.retry_max_delay,
        },
        jitter_seed: rand::random(),
        health_interval: off_if_zero(a.health_interval),
        retention: off_if_zero(a.retention),
        fenced_record_retention: off_if_zero(a.fenced_record_retention),
        tmp_max_age: Duration::from_secs(3600),
        log_dir: PathBuf::from(log_dir.unwrap_or_else(|| "/var/log/gfs2-fencing".into())),
        metrics_addr: match (a.metrics_addr, a.metrics_base_port) {
            (Some(addr), _) => Some(addr),
            (None, Some(base)) => crate::http::instance_addr(base, a.instance.as_deref())
                .map_err(|why| tracing::error!("metrics not served: {why}; fencing goes on"))
                .ok(),
            (None, None) => None,
        },
        alerts_dir: (!a.alerts_dir.is_empty()).then(|| PathBuf::from(a.alerts_dir)),
        discovery,
        cluster,
    })
}

/// `--fence-option KEY=VALUE`s, keys as fence-agents spell them.
fn fence_options(given: &[String]) -> Result<BTreeMap<String, String>, WatchError> {
    let mut extra = BTreeMap::new();
    for kv in given {
        let (k, v) =
            kv.split_once('=').ok_or_else(|| WatchError::Usage(format!("--fence-option {kv:?} is not KEY=VALUE")))?;
        extra.insert(ha::protocol::fence_args::normalize_key(k), v.to_string());
    }
    Ok(extra)
}

/// The watcher's id: given, or `<host>-<pid>`; refused unless safe in file names.
fn watcher_id(given: Option<String>) -> Result<String, WatchError> {
    let id = given.unwrap_or_else(|| {
        let host: String = ha::os::host::name().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        format!("{host}-{}", std::process::id())
    });
    if !ha::protocol::names::is_safe_watcher_id(&id) {
        return Err(WatchError::Usage(format!(
            "watcher id {id:?} is not [A-Za-z0-9_.-] of at most {} bytes",
            ha::protocol::names::MAX_WATCHER_ID
        )));
    }
    Ok(id)
}

/// One name per setting (ha::os::setting): the option or canonical variable, else an alias.
fn or_alias(
    env: &dyn Fn(&str) -> Option<String>,
    given: Option<String>,
    setting: &ha::os::setting::Setting,
) -> Result<Option<String>, WatchError> {
    let from_env = setting.lookup(env).map_err(ha::HaError::from)?;
    Ok(given.or(from_env.map(|f| f.value)))
}

/// The leader's discovery rounds, unless turned off (interval 0, discovery disabled, no source).
fn discovery_settings(
    a: &mut RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<DiscoverySettings>, WatchError> {
    let enabled = ha::os::setting::DISCOVERY.flag(env).map_err(ha::HaError::from)?.unwrap_or(true);
    let sources = or_alias(env, a.discovery_sources.take(), &ha::os::setting::DISCOVERY_SOURCES)?;
    let sources = ha::protocol::provenance::Source::parse_list(sources.as_deref().unwrap_or("kubernetes,dlm,cib"))
        .map_err(|e| WatchError::Usage(format!("--discovery-sources (GFS2_FENCE_DISCOVERY_SOURCES): {e}")))?;
    let kubectl =
        or_alias(env, a.kubectl_cmd.take(), &ha::os::setting::KUBECTL_CMD)?.unwrap_or_else(|| "kubectl".into());
    Ok(off_if_zero(a.discovery_interval).filter(|_| enabled && !sources.is_empty()).map(|interval| DiscoverySettings {
        interval,
        timeout: a.discovery_timeout,
        memory: a.discovery_memory,
        tools: Tools {
            sources,
            kubectl: kubectl.split_whitespace().map(str::to_string).collect(),
            kubeconfig: a.kubeconfig.clone(),
        },
    }))
}

/// The cluster's name for the records (see `ha::discovery::cluster_name`), said in the log either way.
fn cluster_name(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, WatchError> {
    let cluster = ha::discovery::cluster_name::find(&env, Some(std::time::Instant::now() + CLUSTER_NAME_BUDGET))
        .map_err(ha::HaError::from)?;
    match &cluster {
        Some((name, origin)) => tracing::info!(cluster = %name, "cluster name from {}", origin.as_str()),
        None => tracing::warn!(
            "no cluster name (no GFS2_FENCE_CLUSTER_NAME, corosync.conf, corosync-cmapctl or CIB cluster-name): \
             records and gfs2_fencing_info carry none; set GFS2_FENCE_CLUSTER_NAME for a site view"
        ),
    }
    Ok(cluster.map(|(name, _)| name))
}

/// Agents and peers count a watcher live while its heartbeat is younger than the TTL: one that does
/// not outlast two heartbeats makes every watcher look frozen, and every fence fail.
fn check_ttl(ttl: Duration, heartbeat: Duration) -> Result<(), WatchError> {
    if ttl >= 2 * heartbeat {
        return Ok(());
    }
    Err(WatchError::Usage(format!(
        "{}={:.3} is less than twice the heartbeat interval ({}={:.3}): every watcher would look \
         frozen to the agents and its peers, and every fence would fail; give a TTL of at least {:.3} s \
         (the default is 10 s with a 1 s heartbeat)",
        given_as("ttl", "GFS2_FENCE_TTL"),
        ttl.as_secs_f64(),
        given_as("heartbeat-interval", "GFS2_FENCE_HEARTBEAT_INTERVAL"),
        heartbeat.as_secs_f64(),
        (2 * heartbeat).as_secs_f64()
    )))
}

/// Parses the command line as clap does, except that a bad value read from the environment (what an
/// operator sets in /etc/sysconfig/gfs2-fence-watcher) is reported under the variable's name, not
/// under the flag the operator never typed.
fn parse_naming_the_environment() -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    let err = match cmd.try_get_matches_from_mut(std::env::args_os()) {
        Ok(m) => match Cli::from_arg_matches(&m) {
            Ok(cli) => return cli,
            Err(e) => e,
        },
        Err(e) => e,
    };
    if matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        if let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) {
            let long = shown.split_whitespace().next().unwrap_or_default().trim_start_matches("--");
            let env = cmd
                .get_subcommands()
                .flat_map(|c| c.get_arguments())
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_env())
                .map(|v| v.to_string_lossy().into_owned());
            if let Some(var) = env.filter(|v| given_as(long, v) == *v) {
                let said = err.render().to_string().replacen(
                    &format!("'{shown}'"),
                    &format!("{var} (set in the environment)"),
                    1,
                );
                eprintln!("{}", said.trim_end());
                std::process::exit(2);
            }
        }
    }
    err.exit()
}

/// How an operator gave the option `--<long>` whose variable is `var`: the flag when it is on the
/// command line (which wins), else the variable when it is set, else neither (the default).
fn given_as(long: &str, var: &str) -> String {
    let flag = format!("--{long}");
    if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
        flag
    } else if std::env::var_os(var).is_some() {
        var.to_string()
    } else {
        format!("{flag} (default)")
    }
}

/// How long the watcher's start may spend asking corosync and the CIB for the cluster's name.
const CLUSTER_NAME_BUDGET: Duration = Duration::from_secs(3);

/// Logs to journald with structured fields (`WATCHER_ID`, `REQUEST_ID`, `TARGET`, ... as the
/// events carry them) when systemd connected stderr to the journal (`JOURNAL_STREAM`), so a site's
/// log pipeline gets every rabbit's events as data; otherwise plain lines on stderr.
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GFS2_FENCE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("gfs2-fence-watcher".into()));
    let stderr = journald.is_none().then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    tracing_subscriber::registry().with(filter).with(journald).with(stderr).init();
}

/// Parses the command line and runs the watcher until SIGTERM or SIGINT (see [`signals`]).
pub fn run() -> Result<ExitCode, WatchError> {
    if ha::manpage::requested(std::env::args_os()) {
        print!("{}", ha::manpage::render(<Cli as clap::CommandFactory>::command(), &MANPAGE));
        return Ok(ExitCode::SUCCESS);
    }
    // Before any thread: what the watcher's parent left open never reaches a fence command.
    ha::os::child::cloexec_inherited();
    let tz_warning = ha::os::tz::bound();
    let args = match parse_naming_the_environment().command {
        Command::Run(args) => args,
        Command::Status(a) => {
            let base = ha::spool::resolve_base(a.spool_dir.as_deref(), |k| std::env::var(k).ok())?;
            return crate::status::run(&ha::spool::Spool::new(base), a.json, a.watch, a.frames, a.wait);
        }
    };
    init_tracing();
    if let Some(w) = tz_warning {
        tracing::warn!("{w}");
    }
    if let Err(e) = ha::os::child::become_subreaper() {
        tracing::warn!("cannot become the subreaper of fence commands' descendants ({e}); one that escapes its process group may outlive its fence");
    }
    let settings = settings(args)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(WatchError::Runtime)?;
    rt.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(signals(tx)?);
        crate::daemon::run(settings, rx).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// What `gfs2-fence-watcher`'s man page says beyond its options (`--generate man`, run by `make man`).
const MANPAGE: ha::manpage::Extra<'static> = ha::manpage::Extra {
    sections: &[
        (
            "Exit status",
            "run: 0 after an orderly stop (SIGTERM or SIGINT: claiming stops, fences in flight finish \
             within --shutdown-grace); 1 when it cannot start or must stop on an error, with the reason \
             on stderr or in the journal; 2 for a bad command line or setting.\n\n\
             status: 0 while a watcher of the spool is alive; 1 when none is, or the spool cannot be read.",
        ),
        (
            "Signals",
            "TERM and INT stop the watcher as above. HUP, USR1 and USR2 are logged and ignored: every \
             setting is read at start, so restart the instance to apply new ones. No signal kills a \
             fence in flight; a watcher killed with KILL or stopped with STOP has its claims recovered \
             by a live peer after --ttl.",
        ),
        (
            "Environment",
            "Every option has a GFS2_FENCE_* variable, named under the option above; the command line \
             wins over the environment, which wins over the default. GFS2_FENCE_LOG sets the log \
             filter (tracing's syntax; default info). Under systemd the unit reads \
             /etc/sysconfig/gfs2-fence-watcher, then /etc/default/gfs2-fence-watcher.",
        ),
        (
            "Files",
            "/run/gfs2-fencing: the default spool (tmpfs); /var/lib/gfs2-fencing for one on disk.\n\n\
             /etc/gfs2-fencing/watcher.json: the fence command configuration (mode 0600).\n\n\
             /var/log/gfs2-fencing: the fence records and the audit chain.\n\n\
             /usr/share/gfs2-fencing/examples: a settings file and a configuration to start from; \
             /usr/share/gfs2-fencing/prometheus and grafana: alert rules, a scrape configuration \
             and the dashboard.",
        ),
        (
            "Example",
            "Three watchers per rabbit, each fence through the site's fence command:\n\n\
             \x20 systemctl enable --now gfs2-fence-watcher@1 \\\n\
             \x20     gfs2-fence-watcher@2 gfs2-fence-watcher@3\n\
             \x20 gfs2-fence-watcher status",
        ),
    ],
    see_also: &[
        "fence_gfs2_recorder(8)",
        "gfs2-fence-events(8)",
        "gfs2-fence-alert(8)",
        "systemd.exec(5)",
        "/usr/share/doc/gfs2-fencing/docs/operators/CONFIGURATION.md",
        "/usr/share/doc/gfs2-fencing/docs/operators/OPERATIONS.md",
    ],
};

/// What the watcher does with each signal an operator or a tool may send; none of them kills a fence
/// in flight:
/// - TERM, INT: stop claiming, let running fences finish within `--shutdown-grace`, then exit
///   (INT behaves as TERM).
/// - HUP: nothing to reload (every setting is read at start): logged and ignored, so that a reload
///   habit (`systemctl reload`, `kill -HUP`) never kills fence commands. Restart the instance to
///   apply new settings.
/// - USR1, USR2: logged and ignored.
/// - QUIT keeps its default (a core dump: a deliberate kill); KILL and STOP cannot be caught, and a
///   peer recovers such a watcher's claims.
fn signals(shutdown: tokio::sync::watch::Sender<bool>) -> Result<impl std::future::Future<Output = ()>, WatchError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(WatchError::Runtime)?;
    let mut int = signal(SignalKind::interrupt()).map_err(WatchError::Runtime)?;
    let mut hup = signal(SignalKind::hangup()).map_err(WatchError::Runtime)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(WatchError::Runtime)?;
    let mut usr2 = signal(SignalKind::user_defined2()).map_err(WatchError::Runtime)?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received: finishing the fences in flight, then stopping"),
                _ = int.recv() => tracing::info!("SIGINT received: finishing the fences in flight, then stopping"),
                _ = hup.recv() => {
                    tracing::warn!("SIGHUP received and ignored: the watcher has nothing to reload (its settings are read at start); restart the instance to apply new settings");
                    continue;
                }
                _ = usr1.recv() => {
                    tracing::warn!("SIGUSR1 received and ignored");
                    continue;
                }
                _ = usr2.recv() => {
                    tracing::warn!("SIGUSR2 received and ignored");
                    continue;
                }
            }
            let _ = shutdown.send(true);
            return;
        }
    })
}
