//! The agent's parameters: one table drives the metadata XML, the man page, the command-line flags
//! and the set of stdin keys the agent knows.
//!
//! Names follow fence-agents (fencing.py): `plug` obsoletes `port`, and the generic options every
//! fencing.py agent takes are accepted even where this agent has no use for them, so that a device
//! configured for another agent validates here too. Only `action` names the action: fencing.py has no
//! `option` alias (it warns and ignores the key), and Pacemaker passes a device's `option=` after its
//! own `action=`, so an alias would let a device attribute turn a `status` into an `off`.

/// The content type of a parameter in the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    String,
    /// A flag (`1`/`yes`/`on`/`true` on stdin).
    Boolean,
    /// A number of seconds (may be fractional).
    Second,
    /// A whole number.
    Integer,
    /// One of a fixed set of words.
    Select(&'static [&'static str]),
}

impl Kind {
    /// The metadata's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Second => "second",
            Kind::Integer => "integer",
            Kind::Select(_) => "select",
        }
    }
}

/// One parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The stdin key and metadata name.
    pub name: &'static str,
    /// Short flag, if any.
    pub short: Option<char>,
    /// Long flag (without `--`).
    pub long: &'static str,
    /// Placeholder of the flag's value; `None` for a boolean flag.
    pub value: Option<&'static str>,
    /// Metadata content type.
    pub kind: Kind,
    /// Default shown in the metadata.
    pub default: Option<&'static str>,
    /// Deprecated name (kept for old configurations).
    pub deprecated: bool,
    /// The name this one replaces.
    pub obsoletes: Option<&'static str>,
    /// One-line description.
    pub desc: &'static str,
}

const fn p(
    name: &'static str,
    short: Option<char>,
    long: &'static str,
    value: Option<&'static str>,
    kind: Kind,
    default: Option<&'static str>,
    desc: &'static str,
) -> Param {
    Param { name, short, long, value, kind, default, deprecated: false, obsoletes: None, desc }
}

const fn deprecated(mut param: Param, name: &'static str) -> Param {
    param.name = name;
    param.deprecated = true;
    param
}

/// A name of fence_dummy's recorder mode (ClusterLabs PR 647) for one of ours, with its own flag.
const fn upstream(mut param: Param, name: &'static str, long: &'static str) -> Param {
    param.name = name;
    param.long = long;
    param.deprecated = true;
    param
}

const fn obsoleting(mut param: Param, old: &'static str) -> Param {
    param.obsoletes = Some(old);
    param
}

/// The values of `responder`: who answers the spool's requests (see `options::Responder`).
pub const RESPONDERS: &[&str] = &["gfs2-fence-watcher", "nnf-sos", "external"];

/// The values of `type` (fence_dummy's): only its recorder mode is this agent.
pub const TYPES: &[&str] = &["recorder"];

/// The values of `protocol`: the file-name generation spoken with an external responder.
pub const PROTOCOLS: &[&str] = &["1", "2"];

const ACTION: Param = p("action", Some('o'), "action", Some("action"), Kind::String, Some("reboot"), "Fencing action");
const PLUG: Param = p(
    "plug",
    Some('n'),
    "plug",
    Some("id"),
    Kind::String,
    None,
    "Target to fence: the plug the watchers' configuration knows (Pacemaker passes the node name, or its pcmk_host_map alias)",
);

const REQUEST_DIR: Param = p("request_dir", None, "request-dir", Some("dir"), Kind::String, None, "With responder=nnf-sos or external: the directory requests are written to (nnf-sos: env NNF_FENCE_REQUEST_DIR, default /localdisk/fence-recorder/requests; external: <spool_dir>/requests)");
const RESPONSE_DIR: Param = p("response_dir", None, "response-dir", Some("dir"), Kind::String, None, "With responder=nnf-sos or external: the directory answers appear in (nnf-sos: env NNF_FENCE_RESPONSE_DIR, default /localdisk/fence-recorder/responses; external: <spool_dir>/responses)");
const FENCE_TIMEOUT: Param = p("fence_timeout", None, "fence-timeout", Some("seconds"), Kind::Second, Some("45"), "Seconds, counted from the agent's start after any delay, to wait for the answer (env GFS2_FENCE_TIMEOUT; at least 1.5). pcmk_off_timeout/pcmk_reboot_timeout must exceed delay plus this");
const LOG_DIR: Param = p(
    "log_dir",
    None,
    "log-dir",
    Some("dir"),
    Kind::String,
    Some("/var/log/gfs2-fencing"),
    "Directory of the three fence event logs (env GFS2_FENCE_LOG_DIR)",
);

/// Every parameter, in metadata order.
pub const PARAMS: &[Param] = &[
    ACTION,
    obsoleting(PLUG, "port"),
    deprecated(PLUG, "port"),
    p("nodename", None, "nodename", Some("nodename"), Kind::String, None, "Pacemaker's name of the node to fence (recorded with the request)"),
    p("spool_dir", None, "spool-dir", Some("dir"), Kind::String, Some("/run/gfs2-fencing"), "Spool directory shared with the gfs2-fence-watcher processes (env GFS2_FENCE_SPOOL_DIR)"),
    p("responder", None, "responder", Some("name"), Kind::Select(RESPONDERS), Some("gfs2-fence-watcher"), "Who answers the requests: gfs2-fence-watcher (this project's watchers: without a live one, monitor fails and a fence fails at once), nnf-sos (NNF's node manager fences by removing the node's GFS2 storage; its request and response directories), or external (another program speaking the file protocol, whose liveness the agent cannot judge: a fence waits up to fence_timeout)"),
    p("protocol", None, "protocol", Some("generation"), Kind::Select(PROTOCOLS), Some("1"), "With responder=external: the file names it speaks: 1 (<uuid>.json, the original Python watchers) or 2 (<target>-<uuid>.json, upstream fence_recorder's responders)"),
    REQUEST_DIR,
    RESPONSE_DIR,
    p("allow_unfencing", None, "allow-unfencing", None, Kind::Boolean, None, "With responder=nnf-sos: let on (Pacemaker's unfencing) clear nnf-sos's record of the node's fence, audited, so that nnf-sos re-creates its storage. Accepted only for a device with the meta attribute provides=unfencing in a cluster with fencing-reaction=panic (both read from the CIB at each on); off by default, when on fails"),
    FENCE_TIMEOUT,
    LOG_DIR,
    upstream(REQUEST_DIR, "request_path", "request-path"),
    upstream(RESPONSE_DIR, "response_path", "response-path"),
    upstream(LOG_DIR, "log_path", "log-path"),
    upstream(FENCE_TIMEOUT, "recorder_timeout", "recorder-timeout"),
    p("recorder_poll_interval", None, "recorder-poll-interval", Some("seconds"), Kind::Second, None, "Accepted for fence_dummy's recorder mode: the answer is awaited on inotify (or our watchers' wake-up), never polled"),
    p("type", None, "type", Some("type"), Kind::Select(TYPES), None, "Accepted for fence_dummy's recorder mode: only recorder, which this agent always is (fence_dummy's file and fail types fence nothing)"),
    p("no_gfs2_discovery", None, "no-gfs2-discovery", None, Kind::Boolean, None, "Do not discover the GFS2 file systems involved (env GFS2_FENCE_DISCOVERY=false)"),
    p("discovery_timeout", None, "discovery-timeout", Some("seconds"), Kind::Second, Some("2"), "Budget of GFS2 discovery; it runs beside the fence and never fails it"),
    p("discovery_sources", None, "discovery-sources", Some("list"), Kind::String, Some("kubernetes,dlm,cib"), "GFS2 discovery sources, comma-separated: kubernetes (NnfStorage), dlm (dlm_tool lockspaces), cib (Filesystem resources) (env GFS2_FENCE_DISCOVERY_SOURCES)"),
    p("discovery_max_age", None, "discovery-max-age", Some("seconds"), Kind::Second, Some("120"), "Oldest leader discovery snapshot (discovery.json in the spool) used at fence time; without a fresh one the agent discovers live within discovery_timeout"),
    p("kubectl_cmd", None, "kubectl-cmd", Some("command"), Kind::String, Some("kubectl"), "kubectl command used for NnfStorage discovery, split on white space, never run through a shell (env GFS2_FENCE_KUBECTL_CMD)"),
    p("kubeconfig", None, "kubeconfig", Some("file"), Kind::String, None, "kubeconfig file for kubectl (env GFS2_FENCE_KUBECONFIG; default: kubectl's own, KUBECONFIG or ~/.kube/config)"),
    p("queue_priority", None, "queue-priority", Some("number"), Kind::Integer, None, "Queue priority of this device's requests (higher first; default from the action: off 100, reboot 90, on 50, status 10)"),
    p("delay", None, "delay", Some("seconds"), Kind::Second, Some("0"), "Wait X seconds before fence is started"),
    p("verbose", Some('v'), "verbose", None, Kind::Boolean, None, "Verbose mode: diagnostics on stderr"),
    p("verbose_level", None, "verbose-level", Some("level"), Kind::Integer, None, "Level of debugging detail in output"),
    p("debug_file", Some('D'), "debug-file", Some("debugfile"), Kind::String, None, "Write debug information to given file"),
    p("quiet", Some('q'), "quiet", None, Kind::Boolean, None, "Disable logging to stderr. Does not affect --verbose or --debug-file or logging to syslog."),
    p("version", Some('V'), "version", None, Kind::Boolean, None, "Display version information and exit"),
    p("help", Some('h'), "help", None, Kind::Boolean, None, "Display help and exit"),
    p("separator", Some('C'), "separator", Some("char"), Kind::String, Some(","), "Separator for the output of the list action"),
    p("power_timeout", None, "power-timeout", Some("seconds"), Kind::Second, Some("20"), "Accepted for compatibility with fencing.py agents; the watcher's fence command has its own"),
    p("power_wait", None, "power-wait", Some("seconds"), Kind::Second, Some("0"), "Accepted for compatibility with fencing.py agents; the watcher's fence command has its own"),
    p("login_timeout", None, "login-timeout", Some("seconds"), Kind::Second, Some("5"), "Accepted for compatibility with fencing.py agents (unused: no login)"),
    p("shell_timeout", None, "shell-timeout", Some("seconds"), Kind::Second, Some("3"), "Accepted for compatibility with fencing.py agents (unused: no shell)"),
    p("retry_on", None, "retry-on", Some("attempts"), Kind::Integer, Some("1"), "Accepted for compatibility with fencing.py agents; the watchers retry within the deadline"),
    p("disable_timeout", None, "disable-timeout", Some("true/false"), Kind::String, None, "Accepted for compatibility with fencing.py agents"),
    p("stonith_status_sleep", None, "stonith-status-sleep", Some("seconds"), Kind::Second, Some("1"), "Accepted for compatibility with fencing.py agents"),
];

/// Stdin aliases: the other name and the name it means: fencing.py's deprecated `port`, and the
/// names of fence_dummy's recorder mode (ClusterLabs PR 647) for ours. NearNodeFlash's
/// fence_recorder already uses ours (`request_dir`, `response_dir`, `log_dir`; its `FENCE_TIMEOUT`
/// and `LOG_DIR` are our settings' aliases).
pub const ALIASES: &[(&str, &str)] = &[
    ("port", "plug"),
    ("request_path", "request_dir"),
    ("response_path", "response_dir"),
    ("log_path", "log_dir"),
    ("recorder_timeout", "fence_timeout"),
];

/// The parameter named `name` (after alias resolution).
pub fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name && !p.deprecated)
}

/// The canonical name of a stdin key (`port` → `plug`).
pub fn canonical(name: &str) -> &str {
    ALIASES.iter().find(|(old, _)| *old == name).map_or(name, |(_, new)| new)
}

/// The `getopt mixed` text of the metadata, as fencing.py prints it.
pub fn getopt_mixed(p: &Param) -> String {
    let long = match p.value {
        Some(v) => format!("--{}=[{v}]", p.long),
        None => format!("--{}", p.long),
    };
    match p.short {
        Some(s) => format!("-{s}, {long}"),
        None => long,
    }
}

/// One action of the agent: its name, the metadata's `automatic` attribute, and what it does (the man
/// page's ACTIONS section, as fence-agents' pages describe each).
#[derive(Debug)]
pub struct ActionInfo {
    pub name: &'static str,
    pub automatic: Option<bool>,
    pub what: &'static str,
}

const fn action(name: &'static str, automatic: Option<bool>, what: &'static str) -> ActionInfo {
    ActionInfo { name, automatic, what }
}

/// The actions the agent implements.
pub const ACTIONS: &[ActionInfo] = &[
    action(
        "on",
        Some(false),
        "Unfence the node: with the watchers, their fence command's on; with nnf-sos, where nothing is \
         switched on, the audited unfence that moves nnf-sos's records of the node aside, only with \
         allow_unfencing and never while a fence of the node is pending (refused otherwise).",
    ),
    action(
        "off",
        None,
        "Fence the node: record the event, name its GFS2 file systems, write a fence request and wait up \
         to fence_timeout for the responder's answer; success only on an answer that the node was fenced.",
    ),
    action(
        "reboot",
        None,
        "Fence the node as off does, asking the responder for a reboot; a reboot that leaves the node \
         off has fenced it (the records say what was performed).",
    ),
    action(
        "status",
        None,
        "Report the node's state: exit 0 (ON) or 2 (OFF). With the watchers, their fence command's \
         status; with nnf-sos, OFF while one of its success answers for the node stands, and no \
         request is written (nnf-sos would fence).",
    ),
    action(
        "list",
        None,
        "Print the nodes the watchers' configuration names, one per line as plug and alias; fails for \
         other responders (set pcmk_host_list or pcmk_host_map on the device).",
    ),
    action(
        "monitor",
        None,
        "Check the fence path without fencing: a live watcher and its last health check (or the \
         responder's directories), and that fences can be recorded in log_dir; fails otherwise.",
    ),
    action("metadata", None, "Print the agent's metadata (XML) for Pacemaker."),
    action("manpage", None, "Print this page."),
    action(
        "validate-all",
        None,
        "Check the parameters given and the directories they name, creating nothing; fails with the \
         reason.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_flags_do_not_collide() {
        let mut names: Vec<_> = PARAMS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PARAMS.len());
        let mut shorts: Vec<_> = PARAMS.iter().filter(|p| !p.deprecated).filter_map(|p| p.short).collect();
        shorts.sort();
        let n = shorts.len();
        shorts.dedup();
        assert_eq!(n, shorts.len());
        assert_eq!(canonical("port"), "plug");
        assert_eq!(getopt_mixed(find("plug").unwrap()), "-n, --plug=[id]");
        assert!(find("priority").is_none(), "Pacemaker owns `priority`");
        assert!(find("option").is_none() && canonical("option") == "option", "fencing.py has no `option` alias");
    }

    #[test]
    fn docs_list_every_agent_parameter() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operators/CONFIGURATION.md"))
            .unwrap();
        for p in PARAMS {
            assert!(
                doc.contains(&format!("`{}`", p.name)),
                "docs/operators/CONFIGURATION.md does not document `{}`",
                p.name
            );
        }
    }
}
