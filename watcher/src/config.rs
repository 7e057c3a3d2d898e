//! The watcher's configuration: which fence command fences which target, with which options.
//!
//! The file is JSON (the spool's format, no extra parser):
//! ```json
//! {
//!   "default": {"command": "/usr/sbin/fence_ipmilan", "options": {"username": "admin", "password": "…", "lanplus": "1"}},
//!   "targets": {
//!     "compute-node-3": {"options": {"ip": "10.1.0.3"}},
//!     "compute-node-4": {"command": "/usr/sbin/fence_nnf", "plug": "node4", "alias": "compute-node-4"}
//!   }
//! }
//! ```
//! A target entry without `command` inherits the default's command and options, its own options
//! winning; with `command` it stands alone. `plug` overrides the plug sent to the command; `alias` is
//! what the agent's `list` prints beside the target. `sessions` is the most executions the device
//! takes at once across every watcher of the spool (a PDU or BMC that accepts one session: 1); a target
//! entry without `command` inherits the default's. A target with no entry uses the default; with no
//! default it is refused. Options whose names look secret (`passwd`, `password`, `secret`, `token`,
//! `key`, `credential`) are never logged or printed. `environment` (an object of strings) adds
//! variables to the command's environment, which is otherwise only `PATH`, `LANG`, `LC_ALL`, `TZ` and
//! `GFS2_FENCE_REQUEST_ID` (for instance `KUBECONFIG` for `fence_nnf`); a target entry's win over the
//! default's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use ha::cluster::targets::{Target, Targets};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not the documented format.
    #[error("configuration {}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    command: Option<PathBuf>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    plug: Option<String>,
    alias: Option<String>,
    sessions: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Option<Entry>,
    #[serde(default)]
    targets: BTreeMap<String, Entry>,
}

/// How to fence one target.
#[derive(Clone, PartialEq, Eq)]
pub struct FenceCommand {
    /// The executable (run directly, never through a shell).
    pub program: PathBuf,
    /// Options sent on stdin after `action`, `plug`, `port` and `nodename`.
    pub options: BTreeMap<String, String>,
    /// Environment variables set for the command, beyond the minimal set (`ha::os::child::MINIMAL_ENV`).
    pub environment: BTreeMap<String, String>,
    /// The plug to send (the target's name unless overridden).
    pub plug: Option<String>,
    /// The most executions the device takes at once, across every watcher of the spool (a PDU or
    /// BMC that accepts one session); `None`: no limit.
    pub sessions: Option<u32>,
}

/// Options that tune how a fence-agents command runs, not which device it acts upon.
pub const NOT_IDENTITY: &[&str] = &[
    "power_timeout",
    "power_wait",
    "login_timeout",
    "shell_timeout",
    "retry_on",
    "delay",
    "verbose",
    "verbose_level",
    "debug_file",
    "quiet",
    "stonith_status_sleep",
    "disable_timeout",
];

/// Whether an option's name says it holds a secret.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["passwd", "password", "secret", "token", "key", "credential"].iter().any(|s| k.contains(s))
}

/// The device a command acts upon: its program and options, less secrets and the options that do not
/// change which device is acted upon ([`NOT_IDENTITY`]). Two entries with the same key share the
/// device's `sessions`.
pub fn device_key(cmd: &FenceCommand) -> String {
    let mut key = format!("{}\0", cmd.program.display());
    for (k, v) in cmd.options.iter().filter(|(k, _)| !is_secret(k) && !NOT_IDENTITY.contains(&k.as_str())) {
        key.push_str(&format!("{k}={v}\0"));
    }
    key
}

/// Warns when a configuration holding a secret (a fence device's password) can be read by users
/// other than its owner. A warning, not a refusal: watchers that refused their configuration after an
/// upgrade would stop every fence.
fn warn_if_others_read_secrets(path: &Path, config: &FenceConfig) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else { return };
    let mode = meta.permissions().mode() & 0o777;
    let secret = config.commands().flat_map(|c| c.options.keys()).find(|k| is_secret(k));
    if let (true, Some(key)) = (mode & 0o077 != 0, secret) {
        tracing::warn!(
            "{} holds a secret ({key}) and is readable by others (mode {mode:04o}): chmod 0600 {}",
            path.display(),
            path.display()
        );
    }
}

impl std::fmt::Debug for FenceCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("FenceCommand")
            .field("program", &self.program)
            .field("options", &shown)
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("plug", &self.plug)
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FenceConfig {
    default: Option<FenceCommand>,
    targets: BTreeMap<String, (FenceCommand, Option<String>)>,
}

impl FenceConfig {
    /// Reads a configuration file; `fallback` (from `--fence-command`) is the default entry's command
    /// when the file has none, and `extra` (`--fence-option`) are added to the default's options.
    pub fn load(
        path: Option<&Path>,
        fallback: Option<&Path>,
        extra: &BTreeMap<String, String>,
    ) -> Result<FenceConfig, ConfigError> {
        let file: File = match path {
            Some(p) => {
                let text = std::fs::read(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                serde_json::from_slice(&text)
                    .map_err(|e| ConfigError::Invalid { path: p.into(), why: e.to_string() })?
            }
            None => File::default(),
        };
        let invalid =
            |why: String| ConfigError::Invalid { path: path.unwrap_or(Path::new("<command line>")).into(), why };
        let mut default_entry = file.default.clone().unwrap_or_default();
        if default_entry.command.is_none() {
            default_entry.command = fallback.map(Path::to_path_buf);
        }
        default_entry.options.extend(extra.clone());
        let default = match default_entry.command.clone() {
            Some(program) => Some(FenceCommand {
                program,
                options: default_entry.options.clone(),
                environment: default_entry.environment.clone(),
                plug: None,
                sessions: default_entry.sessions,
            }),
            None if !default_entry.options.is_empty() => {
                return Err(invalid("the default entry has options but no command".into()))
            }
            None => None,
        };
        if default_entry.sessions == Some(0) || file.targets.values().any(|e| e.sessions == Some(0)) {
            return Err(invalid("sessions must be at least 1 (leave it out for no limit)".into()));
        }
        let mut targets = BTreeMap::new();
        for (name, entry) in file.targets {
            for (what, n) in [("target name", Some(&name)), ("plug", entry.plug.as_ref())] {
                if let Some(n) = n.filter(|n| !ha::protocol::names::is_safe_name(n)) {
                    return Err(invalid(format!(
                        "{what} {n:?} is not [A-Za-z0-9_.-] of at most {} bytes",
                        ha::protocol::names::MAX_NAME
                    )));
                }
            }
            let cmd = match (&entry.command, &default) {
                (Some(program), _) => FenceCommand {
                    program: program.clone(),
                    options: entry.options,
                    environment: entry.environment,
                    plug: entry.plug,
                    sessions: entry.sessions,
                },
                (None, Some(d)) => {
                    let mut options = d.options.clone();
                    options.extend(entry.options);
                    let mut environment = d.environment.clone();
                    environment.extend(entry.environment);
                    let sessions = entry.sessions.or(d.sessions);
                    FenceCommand { program: d.program.clone(), options, environment, plug: entry.plug, sessions }
                }
                (None, None) => return Err(invalid(format!("target {name:?} has no command and there is no default"))),
            };
            targets.insert(name, (cmd, entry.alias));
        }
        let config = FenceConfig { default, targets };
        if config.default.is_none() && config.targets.is_empty() {
            return Err(invalid("no fence command: give --fence-command or a configuration file".into()));
        }
        for cmd in config.commands() {
            let rendered = ha::protocol::fence_args::render(cmd.options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            rendered.map_err(|e| invalid(e.to_string()))?;
        }
        if let Some(p) = path {
            warn_if_others_read_secrets(p, &config);
        }
        Ok(config)
    }

    /// The command for `target`, if any entry covers it.
    pub fn command_for(&self, target: &str) -> Option<&FenceCommand> {
        self.targets.get(target).map(|(c, _)| c).or(self.default.as_ref())
    }

    /// What exclusion, ordering, coalescing and supersession are keyed on for `target`: the device
    /// the fence command acts upon and the plug on it, not the name Pacemaker asked for. Two names
    /// that reach the same plug of the same device (a `plug` mapping and the plug itself) share a key;
    /// one plug name on two devices (plug 1 of two PDUs) does not. The device is the command and its
    /// options, less secrets and the fencing.py timing and logging options that do not change which
    /// device is acted upon ([`NOT_IDENTITY`]). A target no entry covers is keyed on its name.
    pub fn exclusion_key(&self, target: &str) -> String {
        let Some(cmd) = self.command_for(target) else {
            return format!("unconfigured\0{target}");
        };
        device_key(cmd) + cmd.plug.as_deref().unwrap_or(target)
    }

    /// The targets the configuration names, in order (a default entry covers the others).
    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// Every configured command (default first).
    pub fn commands(&self) -> impl Iterator<Item = &FenceCommand> {
        self.default.iter().chain(self.targets.values().map(|(c, _)| c))
    }

    /// Every distinct fence path, with the targets configured for it and whether it is the default
    /// (for the leader's health checks).
    pub fn paths(&self) -> Vec<(FenceCommand, Vec<String>, bool)> {
        let mut paths: Vec<(FenceCommand, Vec<String>, bool)> =
            self.default.iter().map(|d| (d.clone(), Vec::new(), true)).collect();
        for (target, (cmd, _)) in &self.targets {
            let same = |c: &FenceCommand| c.program == cmd.program && c.options == cmd.options;
            match paths.iter_mut().find(|(c, _, _)| same(c)) {
                Some((_, targets, _)) => targets.push(target.clone()),
                None => paths.push((cmd.clone(), vec![target.clone()], false)),
            }
        }
        paths
    }

    /// What the watchers publish for the agent's `list`.
    pub fn published_targets(&self) -> Targets {
        Targets {
            targets: self
                .targets
                .iter()
                .map(|(plug, (_, alias))| Target { plug: plug.clone(), alias: alias.clone() })
                .collect(),
            has_default: self.default.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_inherit_the_default_and_secrets_stay_hidden() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"default":{"command":"/usr/sbin/fence_ipmilan","options":{"username":"admin","password":"hunter2"}},
                "targets":{"n3":{"options":{"ip":"10.0.0.3"}},"n4":{"command":"/usr/sbin/fence_nnf","plug":"p4","alias":"node4"}}}"#,
        )
        .unwrap();
        let c = FenceConfig::load(Some(&p), None, &BTreeMap::new()).unwrap();
        let n3 = c.command_for("n3").unwrap();
        assert_eq!(n3.program, PathBuf::from("/usr/sbin/fence_ipmilan"));
        assert_eq!(n3.options["ip"], "10.0.0.3");
        assert_eq!(n3.options["password"], "hunter2");
        assert!(!format!("{n3:?}").contains("hunter2"));
        assert_eq!(c.command_for("n4").unwrap().options.len(), 0);
        assert_eq!(c.command_for("other").unwrap().program, PathBuf::from("/usr/sbin/fence_ipmilan"));
        let t = c.published_targets();
        assert_eq!(t.targets.len(), 2);
        assert_eq!(t.targets[1].alias.as_deref(), Some("node4"));
    }

    #[test]
    fn a_device_s_sessions_are_inherited_with_its_command_and_zero_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        let load = |json: &str| {
            std::fs::write(&p, json).unwrap();
            FenceConfig::load(Some(&p), None, &BTreeMap::new())
        };
        let c = load(
            r#"{"default":{"command":"/usr/sbin/fence_apc","sessions":1,"options":{"ip":"10.0.0.50"}},
                "targets":{"n3":{"plug":"3"},"n4":{"command":"/usr/sbin/fence_ipmilan"},"n5":{"sessions":2}}}"#,
        )
        .unwrap();
        let sessions = |t: &str| c.command_for(t).unwrap().sessions;
        assert_eq!(
            (sessions("n3"), sessions("n4"), sessions("n5"), sessions("other")),
            (Some(1), None, Some(2), Some(1))
        );
        // The plugs of one PDU are one device; the plug is not part of it.
        assert_eq!(device_key(c.command_for("n3").unwrap()), device_key(c.command_for("other").unwrap()));
        let err = load(r#"{"default":{"command":"/usr/sbin/fence_apc","sessions":0}}"#).unwrap_err();
        assert!(err.to_string().contains("sessions must be at least 1"), "{err}");
    }

    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        for (text, want) in [
            (r#"{"targets":{"n1":{}}}"#, "no command"),
            (r#"{"default":{"command":"/x","optoins":{}}}"#, "unknown field"),
            (r#"{"targets":{"../x":{"command":"/x"}}}"#, "not [A-Za-z0-9_.-]"),
            (r#"{"default":{"command":"/x","options":{"a":"b\nc"}}}"#, "newline"),
            ("{}", "no fence command"),
        ] {
            std::fs::write(&p, text).unwrap();
            let err = FenceConfig::load(Some(&p), None, &BTreeMap::new()).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        assert!(FenceConfig::load(None, Some(Path::new("/bin/true")), &BTreeMap::new()).is_ok());
    }
}
