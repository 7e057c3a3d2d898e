//! One name per setting: the environment variables the programs share, their aliases, one parser;
//! and the one reading of a number of seconds that every program's settings and options use.
//!
//! A setting read by more than one program (the agent, the watcher, `gfs2-fence-events`) has one
//! canonical `GFS2_FENCE_*` variable, spelled and parsed the same everywhere. The seed's names
//! (`LOG_DIR`, `REQUEST_DIR`, `GFS2_DISCOVERY_ENABLED`, ...) and this project's earlier ones
//! (`GFS2_FENCING_DIR`) stay accepted as aliases. When two of a setting's names are set they must mean
//! the same value, or the program stops with an error naming both: two variables that say different
//! things are a configuration mistake nobody should debug at fence time. An empty value is unset.
//! nnf-sos's `NNF_FENCE_*` variables are nnf-sos's own ([`crate::protocol::nnf`]) and not here.
//!
//! Pure: the environment comes in as a function; no I/O, no locks.

use std::path::Path;

pub use crate::error::SettingError;

/// How a setting's text is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text, compared as written (trimmed).
    Text,
    /// A path, compared component by component (`/a/b/` is `/a/b`).
    Path,
    /// A boolean: `true`, `yes`, `on`, `1` or `false`, `no`, `off`, `0`, in any case.
    Bool,
}

/// Another name of a setting.
#[derive(Debug)]
pub struct Alias {
    /// The variable.
    pub name: &'static str,
    /// Where the name comes from, for the documentation.
    pub origin: &'static str,
    /// How the alias's value becomes the setting's (`REQUEST_DIR` names the spool's `requests/`).
    derive: fn(&str) -> Result<String, String>,
}

/// A setting read from the environment.
#[derive(Debug)]
pub struct Setting {
    /// The canonical variable.
    pub name: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// The other accepted names, in the order they are consulted.
    pub aliases: &'static [Alias],
    /// The programs that read it, for the documentation.
    pub read_by: &'static str,
}

/// A setting's value and the variable it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The variable that set it (the canonical one when set, else the first alias set).
    pub name: &'static str,
    /// The value, as the canonical variable would carry it (trimmed; derived for some aliases).
    pub value: String,
}

const fn alias(name: &'static str, origin: &'static str) -> Alias {
    Alias { name, origin, derive: same }
}

fn same(v: &str) -> Result<String, String> {
    Ok(v.to_string())
}

fn parent_of(dir: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |v| {
        let p = Path::new(v);
        match (p.file_name(), p.parent()) {
            (Some(n), Some(parent)) if n == dir => Ok(parent.display().to_string()),
            _ => Err(format!("must end in /{dir}: the spool is its parent directory")),
        }
    }
}

fn parent_of_requests(v: &str) -> Result<String, String> {
    parent_of("requests")(v)
}

fn parent_of_responses(v: &str) -> Result<String, String> {
    parent_of("responses")(v)
}

/// The spool directory (agent, watcher).
pub const SPOOL_DIR: Setting = Setting {
    name: "GFS2_FENCE_SPOOL_DIR",
    kind: Kind::Path,
    aliases: &[
        alias("GFS2_FENCING_DIR", "this project's agent until names were unified"),
        Alias { name: "REQUEST_DIR", origin: "the seed: the spool's `requests/`", derive: parent_of_requests },
        Alias { name: "RESPONSE_DIR", origin: "the seed: the spool's `responses/`", derive: parent_of_responses },
    ],
    read_by: "agent, watcher",
};

/// The directory of the three event logs and the chain (agent, watcher, `gfs2-fence-events`).
pub const LOG_DIR: Setting = Setting {
    name: "GFS2_FENCE_LOG_DIR",
    kind: Kind::Path,
    aliases: &[alias("LOG_DIR", "the seed")],
    read_by: "agent, watcher, gfs2-fence-events",
};

/// The operational log's path (agent).
pub const OPS_LOG: Setting = Setting {
    name: "GFS2_FENCE_OPS_LOG",
    kind: Kind::Path,
    aliases: &[alias("FENCE_LOG", "the seed")],
    read_by: "agent",
};

/// How long the agent waits for an answer (agent).
pub const FENCE_TIMEOUT: Setting = Setting {
    name: "GFS2_FENCE_TIMEOUT",
    kind: Kind::Text,
    aliases: &[alias("FENCE_TIMEOUT", "the seed")],
    read_by: "agent",
};

/// Whether GFS2 discovery runs at all (agent, watcher).
pub const DISCOVERY: Setting = Setting {
    name: "GFS2_FENCE_DISCOVERY",
    kind: Kind::Bool,
    aliases: &[alias("GFS2_DISCOVERY_ENABLED", "the seed")],
    read_by: "agent, watcher",
};

/// The discovery sources (agent, watcher).
pub const DISCOVERY_SOURCES: Setting = Setting {
    name: "GFS2_FENCE_DISCOVERY_SOURCES",
    kind: Kind::Text,
    aliases: &[alias("GFS2_DISCOVERY_SOURCES", "the seed")],
    read_by: "agent, watcher",
};

/// The kubectl command line (agent, watcher).
pub const KUBECTL_CMD: Setting = Setting {
    name: "GFS2_FENCE_KUBECTL_CMD",
    kind: Kind::Text,
    aliases: &[alias("KUBECTL_CMD", "the seed")],
    read_by: "agent, watcher",
};

/// The kubeconfig passed to kubectl (agent, watcher); kubectl's own `KUBECONFIG` is kubectl's.
pub const KUBECONFIG: Setting =
    Setting { name: "GFS2_FENCE_KUBECONFIG", kind: Kind::Path, aliases: &[], read_by: "agent, watcher" };

/// The Pacemaker cluster's name in records and metrics, when corosync's and the CIB's are not to be
/// used (agent, watcher; see `discovery::cluster_name`).
pub const CLUSTER_NAME: Setting =
    Setting { name: "GFS2_FENCE_CLUSTER_NAME", kind: Kind::Text, aliases: &[], read_by: "agent, watcher" };

/// Every setting with more than one reader or an alias, for the documentation and its test.
pub const ALL: [&Setting; 9] = [
    &SPOOL_DIR,
    &LOG_DIR,
    &OPS_LOG,
    &FENCE_TIMEOUT,
    &DISCOVERY,
    &DISCOVERY_SOURCES,
    &KUBECTL_CMD,
    &KUBECONFIG,
    &CLUSTER_NAME,
];

fn parse_bool(name: &'static str, value: &str) -> Result<String, SettingError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok("true".into()),
        "false" | "no" | "off" | "0" => Ok("false".into()),
        _ => Err(SettingError::Invalid {
            name,
            value: value.into(),
            why: "expected true, yes, on, 1 or false, no, off, 0".into(),
        }),
    }
}

fn agree(kind: Kind, a: &str, b: &str) -> bool {
    match kind {
        Kind::Path => Path::new(a) == Path::new(b),
        Kind::Text | Kind::Bool => a == b,
    }
}

impl Setting {
    /// Reads the setting: its canonical variable, else the first alias set, after checking that
    /// every name set agrees with the first.
    pub fn lookup(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Found>, SettingError> {
        let names = std::iter::once((self.name, same as fn(&str) -> Result<String, String>))
            .chain(self.aliases.iter().map(|a| (a.name, a.derive)));
        let mut first: Option<(Found, String)> = None;
        for (name, derive) in names {
            let Some(raw) = env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else { continue };
            let value = derive(&raw).map_err(|why| SettingError::Invalid { name, value: raw.clone(), why })?;
            let value = if self.kind == Kind::Bool { parse_bool(name, &value)? } else { value };
            match &first {
                None => first = Some((Found { name, value }, raw)),
                Some((f, f_raw)) if !agree(self.kind, &f.value, &value) => {
                    return Err(SettingError::Conflict {
                        first: f.name,
                        first_value: f_raw.clone(),
                        second: name,
                        second_value: raw,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(first.map(|(f, _)| f))
    }

    /// Reads a [`Kind::Bool`] setting.
    pub fn flag(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<bool>, SettingError> {
        Ok(self.lookup(env)?.map(|f| f.value == "true"))
    }

    /// Every name of the setting, canonical first.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.name).chain(self.aliases.iter().map(|a| a.name))
    }
}

/// The longest number of seconds any setting or option takes (a day).
pub const MAX_SECONDS: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Why a number of seconds was refused; the caller words the message with its own range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSeconds {
    /// Not a decimal number (with an optional trailing `s`).
    NotANumber,
    /// Negative, not finite, or more than [`MAX_SECONDS`].
    OutOfRange,
}

/// Reads a number of seconds as every program does: a decimal number, an optional trailing `s`,
/// surrounding blanks ignored, `0` to [`MAX_SECONDS`] (`-0` is `0`). Callers refuse what their
/// own range excludes (a timeout of 0, say).
pub fn seconds(value: &str) -> Result<std::time::Duration, BadSeconds> {
    let secs: f64 = value.trim().trim_end_matches('s').parse().map_err(|_| BadSeconds::NotANumber)?;
    if secs == 0.0 {
        return Ok(std::time::Duration::ZERO);
    }
    if !secs.is_finite() || secs < 0.0 || secs > MAX_SECONDS.as_secs_f64() {
        return Err(BadSeconds::OutOfRange);
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn canonical_then_aliases_in_order() {
        assert_eq!(LOG_DIR.lookup(&env(&[])).unwrap(), None);
        let f = LOG_DIR.lookup(&env(&[("LOG_DIR", "/old")])).unwrap().unwrap();
        assert_eq!((f.name, f.value.as_str()), ("LOG_DIR", "/old"));
        let f = LOG_DIR.lookup(&env(&[("LOG_DIR", "/l/"), ("GFS2_FENCE_LOG_DIR", "/l")])).unwrap().unwrap();
        assert_eq!((f.name, f.value.as_str()), ("GFS2_FENCE_LOG_DIR", "/l"));
        assert_eq!(LOG_DIR.lookup(&env(&[("LOG_DIR", " "), ("GFS2_FENCE_LOG_DIR", "")])).unwrap(), None);
    }

    #[test]
    fn a_disagreeing_alias_names_both() {
        let e = LOG_DIR.lookup(&env(&[("LOG_DIR", "/a"), ("GFS2_FENCE_LOG_DIR", "/b")])).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("GFS2_FENCE_LOG_DIR=\"/b\"") && text.contains("LOG_DIR=\"/a\""), "{text}");
        let e = SPOOL_DIR.lookup(&env(&[("GFS2_FENCING_DIR", "/s"), ("REQUEST_DIR", "/t/requests")])).unwrap_err();
        assert!(matches!(e, SettingError::Conflict { first: "GFS2_FENCING_DIR", second: "REQUEST_DIR", .. }), "{e}");
    }

    #[test]
    fn the_seeds_request_and_response_dirs_name_the_spool() {
        let both = env(&[("REQUEST_DIR", "/s/requests"), ("RESPONSE_DIR", "/s/responses")]);
        assert_eq!(SPOOL_DIR.lookup(&both).unwrap().unwrap().value, "/s");
        let bad = SPOOL_DIR.lookup(&env(&[("REQUEST_DIR", "/s/queue")])).unwrap_err();
        assert!(bad.to_string().contains("must end in /requests"), "{bad}");
        let apart = SPOOL_DIR.lookup(&env(&[("GFS2_FENCE_SPOOL_DIR", "/s"), ("RESPONSE_DIR", "/r/responses")]));
        assert!(matches!(apart, Err(SettingError::Conflict { second: "RESPONSE_DIR", .. })), "{apart:?}");
    }

    #[test]
    fn booleans_read_one_way_everywhere() {
        for (v, want) in [("true", true), ("1", true), ("Yes", true), ("ON", true), ("false", false), ("0", false)] {
            assert_eq!(DISCOVERY.flag(&env(&[("GFS2_DISCOVERY_ENABLED", v)])).unwrap(), Some(want), "{v}");
            assert_eq!(DISCOVERY.flag(&env(&[("GFS2_FENCE_DISCOVERY", v)])).unwrap(), Some(want), "{v}");
        }
        assert!(DISCOVERY.flag(&env(&[("GFS2_FENCE_DISCOVERY", "1"), ("GFS2_DISCOVERY_ENABLED", "true")])).is_ok());
        let e = DISCOVERY.flag(&env(&[("GFS2_FENCE_DISCOVERY", "1"), ("GFS2_DISCOVERY_ENABLED", "no")])).unwrap_err();
        assert!(matches!(e, SettingError::Conflict { .. }), "{e}");
        let e = DISCOVERY.flag(&env(&[("GFS2_DISCOVERY_ENABLED", "enabled")])).unwrap_err();
        assert!(e.to_string().contains("GFS2_DISCOVERY_ENABLED=\"enabled\""), "{e}");
    }

    #[test]
    fn no_name_belongs_to_two_settings() {
        let mut seen = std::collections::BTreeSet::new();
        for s in ALL {
            for n in s.names() {
                assert!(seen.insert(n), "{n} is a name of two settings");
            }
        }
    }

    #[test]
    fn a_number_of_seconds_reads_the_same_in_every_program() {
        use std::time::Duration;
        for (text, want) in [
            ("2", Ok(Duration::from_secs(2))),
            (" 0.5s ", Ok(Duration::from_millis(500))),
            ("86400", Ok(MAX_SECONDS)),
            ("0", Ok(Duration::ZERO)),
            ("-0", Ok(Duration::ZERO)),
            ("86400.5", Err(BadSeconds::OutOfRange)),
            ("-1", Err(BadSeconds::OutOfRange)),
            ("inf", Err(BadSeconds::OutOfRange)),
            ("NaN", Err(BadSeconds::OutOfRange)),
            ("ten", Err(BadSeconds::NotANumber)),
            ("", Err(BadSeconds::NotANumber)),
            ("5m", Err(BadSeconds::NotANumber)),
        ] {
            assert_eq!(seconds(text), want, "{text:?}");
        }
    }
}
