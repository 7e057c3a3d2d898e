//! The agent's options, from stdin `key=value` lines (how Pacemaker runs it) or from command-line
//! flags (how people run it), then completed from the environment and defaults.
//!
//! Precedence everywhere: stdin/argv option > environment > default. The environment is read
//! through [`ha::os::setting`]: one `GFS2_FENCE_*` name per setting, shared with the watcher, and the
//! original recorder's names (`FENCE_TIMEOUT`, `LOG_DIR`, `FENCE_LOG`, `GFS2_DISCOVERY_ENABLED`,
//! `KUBECTL_CMD`, `REQUEST_DIR`/`RESPONSE_DIR`) as aliases that must agree with it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Command};
use ha::os::setting;
use ha::protocol::provenance::Source;

use crate::failure::BadValue;
use crate::params::{self, Kind, PARAMS};
use crate::responder::Responder;

/// Options by canonical name, as given (booleans as `"1"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    /// Canonical name → value.
    pub values: BTreeMap<String, String>,
    /// Messages about stdin lines that were ignored (unknown keys, malformed lines).
    pub warnings: Vec<String>,
    /// Two names of one option (`plug` and `port`) given different values: the agent refuses to act.
    pub conflicts: Vec<BadValue>,
}

/// Why two names of one option that disagree are refused, and what to do. The target's pair is the
/// one Pacemaker itself makes: 3.0.1 and later send `plug=` even to a device configured with `port=`.
/// The others are fence_dummy recorder's names beside ours, both on one device.
fn conflict(alias: &str, alias_value: &str, name: &str, value: &str) -> BadValue {
    if alias != "port" {
        return BadValue {
            name: alias.to_string(),
            value: alias_value.to_string(),
            why: format!(
                "{alias} is fence_dummy's name for {name}, which is {value:?}: two different values, so neither is \
                 used; keep one of the two names on the device (pcs stonith update DEVICE {alias}=)"
            ),
        };
    }
    BadValue {
        name: alias.to_string(),
        value: alias_value.to_string(),
        why: format!(
            "{name} is {value:?}: two different targets, so neither is fenced. Pacemaker 3.0.1 and later pass the \
             node to fence as {name}=, so a device configured with {alias}= receives both: move that mapping into \
             the device's pcmk_host_map (for example pcs stonith update DEVICE pcmk_host_map=\"NODE:{alias_value}\") \
             and remove {alias} from the device"
        ),
    }
}

/// A command line fencing.py would refuse too.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "yes" | "on" | "true" | "y")
}

/// Reads options from stdin text. Unknown keys are ignored with a warning naming the key (never its
/// value, which may be a secret meant for another agent).
pub fn from_stdin(text: &str) -> Given {
    let parsed = ha::protocol::fence_args::parse(text);
    let mut given = Given::default();
    for (line, _) in &parsed.malformed {
        given.warnings.push(format!("Parse error: Ignoring malformed line {line} (expected key=value)"));
    }
    // Under both names of an option (an alias and its canonical name), one value or a refusal. An
    // empty value is no value (`plug=` names no target).
    for (alias, name) in params::ALIASES {
        match (parsed.values.get(*alias), parsed.values.get(*name)) {
            (Some(a), Some(n)) if !a.is_empty() && !n.is_empty() && a != n => {
                given.conflicts.push(conflict(alias, a, name, n));
            }
            _ => {}
        }
    }
    for key in &parsed.order {
        let value = &parsed.values[key];
        let name = params::canonical(key);
        match params::find(name) {
            Some(p) if p.kind == Kind::Boolean => {
                if truthy(value) {
                    given.values.insert(name.to_string(), "1".into());
                } else {
                    given.values.remove(name);
                }
            }
            Some(_) => {
                given.values.insert(name.to_string(), value.clone());
            }
            None => given.warnings.push(format!("Parse error: Ignoring unknown option '{key}'")),
        }
    }
    given
}

fn command() -> Command {
    let mut cmd =
        Command::new("fence_gfs2_recorder").disable_help_flag(true).disable_version_flag(true).no_binary_name(true);
    for p in PARAMS.iter().filter(|p| !p.deprecated) {
        let mut arg = Arg::new(p.name).long(p.long);
        if let Some(s) = p.short {
            arg = arg.short(s);
        }
        arg = match p.value {
            Some(v) => arg.value_name(v).action(ArgAction::Set),
            None => arg.action(ArgAction::SetTrue),
        };
        // The other names' flags: `--port`, fence_dummy's `--request-path`...
        for (old, _) in params::ALIASES.iter().filter(|(_, new)| *new == p.name) {
            let long =
                PARAMS.iter().find(|o| o.deprecated && o.name == *old && o.long != p.long).map_or(*old, |o| o.long);
            arg = arg.alias(long);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

/// Reads options from command-line arguments (without the program name).
pub fn from_argv(args: &[OsString]) -> Result<Given, UsageError> {
    let matches =
        command().try_get_matches_from(args).map_err(|e| UsageError(first_line(&e.to_string()).to_string()))?;
    let mut given = Given::default();
    for p in PARAMS.iter().filter(|p| !p.deprecated) {
        if p.value.is_none() {
            if matches.get_flag(p.name) {
                given.values.insert(p.name.to_string(), "1".into());
            }
        } else if let Some(v) = matches.get_one::<String>(p.name) {
            given.values.insert(p.name.to_string(), v.clone());
        }
    }
    Ok(given)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim_start_matches("error: ")
}

/// The resolved options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The action, lower-cased (validated by the dispatcher).
    pub action: String,
    /// The target plug (`plug`, or the deprecated `port`).
    pub plug: Option<String>,
    /// Pacemaker's node name.
    pub nodename: Option<String>,
    /// The spool option as given (resolved with the environment by `ha::spool::resolve_base`).
    pub spool_dir: Option<String>,
    /// Who answers the requests.
    pub responder: Responder,
    /// `request_dir` as given (responder nnf-sos or external; see `crate::exchange`).
    pub request_dir: Option<String>,
    /// `response_dir` as given.
    pub response_dir: Option<String>,
    /// Whether `on` may clear nnf-sos's record of a fence (`crate::unfence`).
    pub allow_unfencing: bool,
    /// How long to wait for the answer, after the delay.
    pub fence_timeout: Duration,
    /// Where the three logs go.
    pub log_dir: PathBuf,
    /// The operational log (`FENCE_LOG`, default `<log_dir>/fence-events.log`).
    pub ops_log: PathBuf,
    /// Whether to discover GFS2 file systems.
    pub discovery: bool,
    /// Discovery's budget.
    pub discovery_timeout: Duration,
    /// The discovery sources (empty: discovery off).
    pub discovery_sources: BTreeSet<Source>,
    /// Oldest leader snapshot used at fence time.
    pub discovery_max_age: Duration,
    /// The kubectl command line.
    pub kubectl_cmd: String,
    /// kubectl's `--kubeconfig`.
    pub kubeconfig: Option<String>,
    /// Queue priority override.
    pub queue_priority: Option<i32>,
    /// Delay before fencing.
    pub delay: Duration,
    /// Diagnostics on stderr.
    pub verbose: bool,
    /// No warnings on stderr.
    pub quiet: bool,
    /// Extra diagnostics file.
    pub debug_file: Option<PathBuf>,
    /// Separator of the list output.
    pub separator: String,
    /// `-h`.
    pub help: bool,
    /// `-V`.
    pub version: bool,
}

/// When the agent started, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Monotonic, for waiting.
    pub instant: std::time::Instant,
    /// CLOCK_BOOTTIME, for the request's deadline.
    pub boot: ha::os::clock::BootTime,
}

/// Parses a number of seconds in `min..=86400` (`ha::os::setting::seconds`).
fn seconds(name: &str, value: &str, min: Duration) -> Result<Duration, BadValue> {
    use ha::os::setting::{BadSeconds, MAX_SECONDS};
    let bad = |why: String| BadValue { name: name.to_string(), value: value.to_string(), why };
    let range = || format!("expected {} to {} seconds", min.as_secs_f64(), MAX_SECONDS.as_secs());
    match ha::os::setting::seconds(value) {
        Ok(d) if d >= min => Ok(d),
        Ok(_) | Err(BadSeconds::OutOfRange) => Err(bad(range())),
        Err(BadSeconds::NotANumber) => Err(bad(format!("not a number of seconds ({})", range()))),
    }
}

/// Parses `fence_timeout`: it must leave the watchers their answer margin and a fence command at
/// least [`ha::spool::decide::MIN_EXECUTION_BUDGET`]; the message gives the smallest value that does.
fn fence_timeout(name: &str, value: &str) -> Result<Duration, BadValue> {
    use ha::spool::decide::{answer_margin, MIN_EXECUTION_BUDGET, MIN_FENCE_TIMEOUT};
    let below = value.trim().trim_end_matches('s').parse::<f64>().ok().filter(|v| *v < MIN_FENCE_TIMEOUT.as_secs_f64());
    if let Some(v) = below {
        return Err(BadValue {
            name: name.to_string(),
            value: value.to_string(),
            why: format!(
                "a fence cannot work with it: the watchers answer {:.1}s before the agent gives up and a fence \
                 command needs at least {:.1}s, so the smallest fence_timeout is {} seconds",
                answer_margin(Duration::from_secs_f64(v.max(0.0))).as_secs_f64(),
                MIN_EXECUTION_BUDGET.as_secs_f64(),
                MIN_FENCE_TIMEOUT.as_secs_f64()
            ),
        });
    }
    seconds(name, value, MIN_FENCE_TIMEOUT)
}

/// Where an option's value comes from: the agent's own options first, then the environment's
/// settings (`ha::os::setting`), then the default.
struct Lookup<'a> {
    given: &'a Given,
    var: &'a dyn Fn(&str) -> Option<String>,
}

impl Lookup<'_> {
    fn opt(&self, k: &str) -> Option<String> {
        self.given.values.get(k).cloned()
    }

    /// A value given and not empty: an empty directory or name is none.
    fn given(&self, k: &str) -> Option<String> {
        self.opt(k).filter(|s| !s.is_empty())
    }

    fn env(&self, s: &setting::Setting) -> Result<Option<setting::Found>, BadValue> {
        Ok(s.lookup(self.var)?)
    }

    /// A duration option in seconds, `default` when not given.
    fn seconds(&self, k: &str, default: &str) -> Result<Duration, BadValue> {
        seconds(k, &self.opt(k).unwrap_or_else(|| default.into()), Duration::ZERO)
    }

    /// fence_dummy's `type`: only its recorder mode is what this agent does.
    fn check_type(&self) -> Result<(), BadValue> {
        match self.opt("type").filter(|t| !params::TYPES.contains(&t.trim())) {
            Some(t) => Err(BadValue {
                name: "type".into(),
                value: t,
                why: "fence_dummy's file and fail types fence nothing (file mode succeeds without writing any \
                      request); this agent always records and fences like fence_dummy's recorder mode: remove type \
                      from the device, or set it to recorder"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    fn fence_timeout(&self) -> Result<Duration, BadValue> {
        Ok(match (self.opt("fence_timeout"), self.env(&setting::FENCE_TIMEOUT)?) {
            (Some(v), _) => fence_timeout("fence_timeout", &v)?,
            (None, Some(f)) => fence_timeout(f.name, &f.value)?,
            (None, None) => Duration::from_secs(45),
        })
    }

    /// The log directory and the operational log (which `log_dir` given as an option moves too).
    fn logs(&self) -> Result<(PathBuf, PathBuf), BadValue> {
        let log_dir = PathBuf::from(
            self.opt("log_dir")
                .or(self.env(&setting::LOG_DIR)?.map(|f| f.value))
                .unwrap_or_else(|| "/var/log/gfs2-fencing".into()),
        );
        let ops_log = match (self.opt("log_dir"), self.env(&setting::OPS_LOG)?) {
            (None, Some(f)) => PathBuf::from(f.value),
            _ => log_dir.join("fence-events.log"),
        };
        Ok((log_dir, ops_log))
    }

    /// Whether the GFS2 file systems are looked for, and where.
    fn discovery(&self) -> Result<(bool, BTreeSet<Source>), BadValue> {
        let discovery_on = setting::DISCOVERY.flag(self.var)?;
        let discovery = self.opt("no_gfs2_discovery").is_none() && discovery_on.unwrap_or(true);
        let (sources_name, sources) = match (self.opt("discovery_sources"), self.env(&setting::DISCOVERY_SOURCES)?) {
            (Some(v), _) => ("discovery_sources", v),
            (None, Some(f)) => (f.name, f.value),
            (None, None) => ("discovery_sources", "kubernetes,dlm,cib".into()),
        };
        let sources = Source::parse_list(&sources).map_err(|_| BadValue {
            name: sources_name.into(),
            value: sources.clone(),
            why: "expected a comma-separated list of kubernetes, dlm, cib".into(),
        })?;
        Ok((discovery, sources))
    }

    fn queue_priority(&self) -> Result<Option<i32>, BadValue> {
        self.opt("queue_priority")
            .map(|v| {
                v.trim().parse::<i32>().map_err(|_| BadValue {
                    name: "queue_priority".into(),
                    value: v.clone(),
                    why: "expected a whole number".into(),
                })
            })
            .transpose()
    }

    /// Who answers: named, or told by the directories given (an empty directory is none).
    fn responder(&self) -> Result<Responder, BadValue> {
        let protocol = self.opt("protocol");
        match (self.opt("responder"), self.given("request_dir"), self.given("response_dir")) {
            (Some(r), _, _) => Responder::parse(&r, protocol.as_deref()),
            (None, None, None) => Responder::parse(params::RESPONDERS[0], protocol.as_deref()),
            (None, req, resp) => {
                Responder::of_directories(req.as_deref(), resp.as_deref(), protocol.as_deref(), &self.var)
            }
        }
    }
}

impl Options {
    /// Completes `given` with the environment (`env`) and defaults.
    pub fn resolve(given: &Given, var: impl Fn(&str) -> Option<String>) -> Result<Options, BadValue> {
        if let Some(c) = given.conflicts.first() {
            return Err(c.clone());
        }
        let from = Lookup { given, var: &var };
        // In this order, the first bad value being the one reported.
        from.check_type()?;
        let fence_timeout = from.fence_timeout()?;
        let (log_dir, ops_log) = from.logs()?;
        let (discovery, discovery_sources) = from.discovery()?;
        let queue_priority = from.queue_priority()?;
        let opt = |k: &str| from.opt(k);
        Ok(Options {
            action: opt("action").unwrap_or_else(|| "reboot".into()).to_ascii_lowercase(),
            nodename: from.given("nodename"),
            plug: from.given("plug"),
            spool_dir: opt("spool_dir"),
            responder: from.responder()?,
            request_dir: from.given("request_dir"),
            response_dir: from.given("response_dir"),
            allow_unfencing: opt("allow_unfencing").is_some(),
            fence_timeout,
            log_dir,
            ops_log,
            discovery,
            discovery_timeout: from.seconds("discovery_timeout", "2")?,
            discovery_sources,
            discovery_max_age: from.seconds("discovery_max_age", "120")?,
            kubectl_cmd: opt("kubectl_cmd")
                .or(from.env(&setting::KUBECTL_CMD)?.map(|f| f.value))
                .unwrap_or_else(|| "kubectl".into()),
            kubeconfig: from.given("kubeconfig").or(from.env(&setting::KUBECONFIG)?.map(|f| f.value)),
            queue_priority,
            delay: from.seconds("delay", "0")?,
            verbose: opt("verbose").is_some(),
            quiet: opt("quiet").is_some(),
            debug_file: opt("debug_file").map(PathBuf::from),
            separator: opt("separator").unwrap_or_else(|| ",".into()),
            help: opt("help").is_some(),
            version: opt("version").is_some(),
        })
    }

    /// When the agent gives up (on the monotonic clock) and the request's deadline (on
    /// CLOCK_BOOTTIME): `start + delay + fence_timeout`, and that less the watchers' answer margin.
    /// Saturating arithmetic: no option value can make it panic.
    pub fn timing(&self, start: Start) -> (std::time::Instant, ha::os::clock::BootTime) {
        let wait = self.delay.saturating_add(self.fence_timeout);
        let give_up = start.instant.checked_add(wait).unwrap_or(start.instant);
        let deadline =
            start.boot.after(self.delay.saturating_add(ha::spool::decide::execution_budget(self.fence_timeout)));
        (give_up, deadline)
    }

    /// The target to fence: the plug, or Pacemaker's node name when no plug was given.
    pub fn target(&self) -> Option<&str> {
        self.plug.as_deref().or(self.nodename.as_deref())
    }
}

/// The usage text for `-h`, generated from the parameter table.
/// Width of the usage text, as fence-agents print it for an 80-column terminal.
const USAGE_WIDTH: usize = 80;

/// The usage text for `-h`, generated from the parameter table, laid out as fence-agents lay it out:
/// the flag in a 30-column field, the description wrapped at 80 columns with continuation lines
/// indented 40, the actions listed for `-o`, defaults shown.
pub fn usage() -> String {
    let mut s = String::from("Usage:\n\tfence_gfs2_recorder [options]\nOptions:\n");
    for p in PARAMS.iter().filter(|p| !p.deprecated) {
        let mut text = if p.name == "action" {
            let names: Vec<String> = params::ACTIONS
                .iter()
                .map(|a| if Some(a.name) == p.default { format!("{} (default)", a.name) } else { a.name.to_string() })
                .collect();
            let (last, rest) = names.split_last().expect("actions");
            format!("Action: {} or {last}", rest.join(", "))
        } else {
            p.desc.to_string()
        };
        if let Some(d) = p.default.filter(|_| p.name != "action") {
            text.push_str(&format!(" (Default: {d})"));
        }
        let head = format!("   {:<30} ", params::getopt_mixed(p));
        s.push_str(&wrap(&head, &text, &" ".repeat(40)));
    }
    s
}

/// `text` after `head`, wrapped at [`USAGE_WIDTH`] with continuation lines after `indent`.
fn wrap(head: &str, text: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = head.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > USAGE_WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn stdin_aliases_unknown_keys_and_booleans() {
        let g =
            from_stdin("action=off\nport=node2\nnodename=node2\nmystery=secret\nno-gfs2-discovery=yes\nverbose=0\n");
        assert_eq!(g.values["plug"], "node2");
        assert_eq!(g.values["no_gfs2_discovery"], "1");
        assert!(!g.values.contains_key("verbose"));
        assert_eq!(g.warnings, ["Parse error: Ignoring unknown option 'mystery'"]);
        let o = Options::resolve(&g, no_env).unwrap();
        assert_eq!((o.action.as_str(), o.target(), o.discovery), ("off", Some("node2"), false));
    }

    #[test]
    fn plug_and_port_name_one_target_or_are_refused() {
        let target = |text: &str| Options::resolve(&from_stdin(text), no_env).map(|o| o.target().map(str::to_string));
        assert_eq!(target("plug=cn-2\nport=cn-2\nnodename=node2\n").unwrap().as_deref(), Some("cn-2"));
        assert_eq!(target("plug=cn-3\nnodename=node3\n").unwrap().as_deref(), Some("cn-3"), "plug alone");
        assert_eq!(target("port=cn-4\nnodename=node4\n").unwrap().as_deref(), Some("cn-4"), "port alone");
        assert_eq!(target("nodename=node5\n").unwrap().as_deref(), Some("node5"), "neither: the node name");
        assert_eq!(target("plug=\nport=cn-6\n").unwrap().as_deref(), Some("cn-6"), "an empty plug names nothing");
        for text in ["port=cn-2\nplug=cn-3\n", "plug=cn-3\nport=cn-2\nnodename=cn-3\n"] {
            let err = target(text).unwrap_err().to_string();
            assert!(err.contains("\"cn-2\"") && err.contains("\"cn-3\""), "both values named: {err}");
            assert!(err.contains("pcmk_host_map") && err.contains("3.0.1"), "and the fix: {err}");
        }
    }

    #[test]
    fn argv_flags_and_their_errors() {
        let args: Vec<OsString> =
            ["-o", "status", "-n", "n7", "--fence-timeout=3", "-v"].iter().map(Into::into).collect();
        let o = Options::resolve(&from_argv(&args).unwrap(), no_env).unwrap();
        assert_eq!((o.action.as_str(), o.plug.as_deref(), o.verbose), ("status", Some("n7"), true));
        assert_eq!(o.fence_timeout, Duration::from_secs(3));
        let port: Vec<OsString> = ["--port=n8"].iter().map(Into::into).collect();
        assert_eq!(from_argv(&port).unwrap().values["plug"], "n8");
        let bad: Vec<OsString> = ["--frobnicate"].iter().map(Into::into).collect();
        assert!(from_argv(&bad).unwrap_err().0.contains("--frobnicate"));
    }

    #[test]
    fn option_beats_environment_beats_default() {
        let env = |k: &str| match k {
            "FENCE_TIMEOUT" => Some("12".to_string()),
            "LOG_DIR" => Some("/l".to_string()),
            "GFS2_DISCOVERY_ENABLED" => Some("false".to_string()),
            _ => None,
        };
        let o = Options::resolve(&from_stdin(""), env).unwrap();
        assert_eq!(o.fence_timeout, Duration::from_secs(12));
        assert_eq!(o.ops_log, PathBuf::from("/l/fence-events.log"));
        assert!(!o.discovery);
        let o = Options::resolve(&from_stdin("fence_timeout=7\n"), env).unwrap();
        assert_eq!(o.fence_timeout, Duration::from_secs(7));
        assert_eq!(Options::resolve(&from_stdin(""), no_env).unwrap().fence_timeout, Duration::from_secs(45));
        for bad in ["fence_timeout=0", "fence_timeout=abc", "delay=-1", "queue_priority=high", "responder=nobody"] {
            assert!(Options::resolve(&from_stdin(bad), no_env).is_err(), "{bad}");
        }
        assert_eq!(Options::resolve(&from_stdin(""), no_env).unwrap().responder, Responder::Watchers);
        let o = Options::resolve(&from_stdin("responder=external\n"), no_env).unwrap();
        assert_eq!(o.responder, Responder::External(ha::protocol::names::Naming::V1));
        let o = Options::resolve(&from_stdin("responder=external\nprotocol=2\n"), no_env).unwrap();
        assert_eq!(o.responder, Responder::External(ha::protocol::names::Naming::V2));
        let o = Options::resolve(&from_stdin("responder=nnf-sos\n"), no_env).unwrap();
        assert_eq!(o.responder.naming(), ha::protocol::names::Naming::V2);
        for bad in ["responder=nnf-sos\nprotocol=1\n", "protocol=2\n", "responder=external\nprotocol=3\n"] {
            assert!(Options::resolve(&from_stdin(bad), no_env).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstream_names_mean_ours_and_the_responder_of_their_directories() {
        use ha::protocol::names::Naming;
        // fence_dummy's recorder mode, as its devices are configured: nnf-sos's own directories.
        let d = tempfile::tempdir().unwrap();
        let (req, resp) = (d.path().join("req"), d.path().join("resp"));
        std::fs::create_dir(&req).unwrap();
        std::fs::create_dir(&resp).unwrap();
        let (r, s) = (req.display().to_string(), resp.display().to_string());
        let nnf_env = |k: &str| match k {
            "NNF_FENCE_REQUEST_DIR" => Some(r.clone()),
            "NNF_FENCE_RESPONSE_DIR" => Some(s.clone()),
            _ => None,
        };
        let dummy = format!(
            "type=recorder\nport=c1\nrequest_path={r}\nresponse_path={s}\nlog_path=/l\nrecorder_timeout=30\n\
             recorder_poll_interval=0.5\n"
        );
        let o = Options::resolve(&from_stdin(&dummy), nnf_env).unwrap();
        assert_eq!((o.responder, o.request_dir.as_deref()), (Responder::NnfSos, Some(r.as_str())));
        assert_eq!((o.fence_timeout, o.log_dir.clone()), (Duration::from_secs(30), PathBuf::from("/l")));
        // The same names on other directories: an external program of upstream's generation.
        let o = Options::resolve(&from_stdin(&dummy), no_env).unwrap();
        assert_eq!(o.responder, Responder::External(Naming::V2));
        // fence_recorder's names are ours; only one of nnf-sos's directories named is still nnf-sos's.
        let o = Options::resolve(&from_stdin(&format!("request_dir={r}\n")), nnf_env).unwrap();
        assert_eq!(o.responder, Responder::NnfSos);
        let o = Options::resolve(&from_stdin("request_dir=/x\nprotocol=1\n"), no_env).unwrap();
        assert_eq!(o.responder, Responder::External(Naming::V1));
        // responder= wins, and the watchers still refuse directories (in `exchange`).
        let o = Options::resolve(&from_stdin(&format!("responder=external\nrequest_dir={r}\n")), nnf_env).unwrap();
        assert_eq!(o.responder, Responder::External(Naming::V1));
        // Two names of one setting that disagree, and fence_dummy's types that fence nothing: refused.
        for (text, name) in [
            ("request_dir=/a\nrequest_path=/b\n", "request_path"),
            ("fence_timeout=20\nrecorder_timeout=30\n", "recorder_timeout"),
            ("log_dir=/a\nlog_path=/b\n", "log_path"),
            ("type=file\n", "type"),
            ("type=fail\n", "type"),
        ] {
            let e = Options::resolve(&from_stdin(text), no_env).unwrap_err();
            assert_eq!(e.name, name, "{text}: {e}");
        }
        assert!(Options::resolve(&from_stdin("request_dir=/a\nrequest_path=/a\n"), no_env).is_ok(), "agreeing");
        let argv: Vec<OsString> =
            ["--request-path", "/q", "--recorder-timeout", "9"].iter().map(OsString::from).collect();
        let g = from_argv(&argv).unwrap();
        assert_eq!((g.values["request_dir"].as_str(), g.values["fence_timeout"].as_str()), ("/q", "9"));
    }
}
