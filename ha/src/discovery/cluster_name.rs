//! The Pacemaker cluster's name, so that fence records and metrics from many rabbits (one cluster
//! each) can be told apart and joined: `GFS2_FENCE_CLUSTER_NAME` when set, else corosync's
//! `totem.cluster_name` from its configuration file (`COROSYNC_MAIN_CONFIG_FILE`, corosync's own
//! variable, else `/etc/corosync/corosync.conf`), and, where running tools is affordable (the
//! watcher at start, not the agent at fence time), corosync's runtime value (`corosync-cmapctl -g
//! totem.cluster_name`) and then the CIB's `cluster-name` property (`cibadmin --query --scope
//! crm_config`), which Pacemaker's controller copies from corosync.
//!
//! Parsing is plain functions without I/O; [`find`] reads the file and runs the tools (bounded by a
//! deadline, see `run::run_tool`). No locks.

use std::path::PathBuf;
use std::time::Instant;

use super::run::run_tool;
use crate::os::setting;

/// corosync's configuration file when `COROSYNC_MAIN_CONFIG_FILE` does not name another.
pub const COROSYNC_CONF: &str = "/etc/corosync/corosync.conf";
/// Largest configuration file read.
const MAX_CONF: u64 = 1024 * 1024;

/// Where a cluster name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `GFS2_FENCE_CLUSTER_NAME`.
    Setting,
    /// `totem.cluster_name` in corosync's configuration file.
    CorosyncConf,
    /// `corosync-cmapctl -g totem.cluster_name`.
    Cmap,
    /// The CIB's `cluster-name` property.
    Cib,
}

impl Origin {
    /// How logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Setting => "GFS2_FENCE_CLUSTER_NAME",
            Origin::CorosyncConf => "corosync.conf totem.cluster_name",
            Origin::Cmap => "corosync-cmapctl totem.cluster_name",
            Origin::Cib => "the CIB's cluster-name",
        }
    }
}

/// `cluster_name` in the `totem { }` section of a corosync.conf (`#` comments, nested sections and
/// `key: value` or `key = value` as corosync's parser accepts them).
pub fn from_corosync_conf(text: &str) -> Option<String> {
    let mut path: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if let Some(section) = line.strip_suffix('{') {
            path.push(section.trim().to_string());
        } else if line == "}" {
            path.pop();
        } else if path.len() == 1 && path[0] == "totem" {
            let Some((key, value)) = line.split_once([':', '=']) else { continue };
            if key.trim() == "cluster_name" {
                return named(value);
            }
        }
    }
    None
}

/// The value of `corosync-cmapctl -g totem.cluster_name`: `totem.cluster_name (str) = NAME`.
pub fn from_cmap(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with("totem.cluster_name"))?;
    named(line.split_once('=')?.1)
}

/// The `cluster-name` property of a CIB (or of its `crm_config` section).
pub fn from_cib(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let pair = doc.descendants().find(|n| {
        n.has_tag_name("nvpair")
            && n.attribute("name") == Some("cluster-name")
            && n.ancestors().any(|a| a.has_tag_name("cluster_property_set"))
    })?;
    named(pair.attribute("value")?)
}

/// A usable name: trimmed, not empty, printable, at most 255 bytes.
fn named(value: &str) -> Option<String> {
    let v = value.trim().trim_matches('"');
    (!v.is_empty() && v.len() <= 255 && !v.chars().any(char::is_control)).then(|| v.to_string())
}

/// corosync's configuration file, as corosync itself finds it.
pub fn corosync_conf_path(env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    env("COROSYNC_MAIN_CONFIG_FILE").filter(|p| !p.is_empty()).map_or_else(|| COROSYNC_CONF.into(), PathBuf::from)
}

/// The cluster's name and where it came from; `None` when nothing names it. With `tools_until` the
/// corosync and Pacemaker command-line tools are asked too, until that deadline.
pub fn find(
    env: &impl Fn(&str) -> Option<String>,
    tools_until: Option<Instant>,
) -> Result<Option<(String, Origin)>, crate::error::SettingError> {
    if let Some(found) = setting::CLUSTER_NAME.lookup(env)? {
        if let Some(name) = named(&found.value) {
            return Ok(Some((name, Origin::Setting)));
        }
    }
    let conf = corosync_conf_path(env);
    // A FIFO or a device there must not hang or flood the caller: regular files only, capped.
    let text = crate::fsio::open_system_file(&conf)
        .ok()
        .and_then(|f| crate::fsio::read_file_capped(&f, &conf, MAX_CONF).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(name) = text.as_deref().and_then(from_corosync_conf) {
        return Ok(Some((name, Origin::CorosyncConf)));
    }
    let Some(deadline) = tools_until else { return Ok(None) };
    let cmap = run_tool(&["corosync-cmapctl".to_string()], &["-g", "totem.cluster_name"], deadline);
    if let Some(name) = cmap.ok().and_then(|out| from_cmap(&String::from_utf8_lossy(&out))) {
        return Ok(Some((name, Origin::Cmap)));
    }
    let cib = run_tool(&["cibadmin".to_string()], &["--query", "--scope", "crm_config"], deadline);
    Ok(cib.ok().and_then(|out| from_cib(&String::from_utf8_lossy(&out))).map(|n| (n, Origin::Cib)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_conf_names_the_cluster_in_totem_only() {
        let conf = "# cluster_name: not-this\nlogging {\n    cluster_name: nor-this\n}\ntotem {\n    version: 2\n    \
                    interface {\n        cluster_name: inner\n    }\n    cluster_name: rabbit-7-cluster # a comment\n}\n";
        assert_eq!(from_corosync_conf(conf).as_deref(), Some("rabbit-7-cluster"));
        assert_eq!(from_corosync_conf("totem {\n cluster_name = eq\n}\n").as_deref(), Some("eq"));
        assert_eq!(from_corosync_conf("totem {\n version: 2\n}\n"), None);
        assert_eq!(from_corosync_conf("totem {\n cluster_name:   \n}\n"), None);
    }

    #[test]
    fn cmapctl_and_the_cib_name_it_too() {
        assert_eq!(from_cmap("totem.cluster_name (str) = gfs2ci\n").as_deref(), Some("gfs2ci"));
        assert_eq!(from_cmap("Can't get key totem.cluster_name. Error CS_ERR_NOT_EXIST\n"), None);
        let cib = r#"<crm_config><cluster_property_set id="cib-bootstrap-options">
            <nvpair id="o1" name="have-watchdog" value="false"/>
            <nvpair id="o2" name="cluster-name" value="rabbit-3"/></cluster_property_set></crm_config>"#;
        assert_eq!(from_cib(cib).as_deref(), Some("rabbit-3"));
        assert_eq!(from_cib("<crm_config/>"), None);
        assert_eq!(from_cib("not xml"), None);
    }

    #[test]
    fn the_setting_comes_first_then_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("corosync.conf");
        std::fs::write(&conf, "totem {\n cluster_name: from-file\n}\n").unwrap();
        let conf_s = conf.display().to_string();
        let env = |set: bool| {
            let conf_s = conf_s.clone();
            move |k: &str| match k {
                "GFS2_FENCE_CLUSTER_NAME" if set => Some("from-setting".to_string()),
                "COROSYNC_MAIN_CONFIG_FILE" => Some(conf_s.clone()),
                _ => None,
            }
        };
        assert_eq!(find(&env(true), None).unwrap(), Some(("from-setting".into(), Origin::Setting)));
        assert_eq!(find(&env(false), None).unwrap(), Some(("from-file".into(), Origin::CorosyncConf)));
        std::fs::remove_file(&conf).unwrap();
        assert_eq!(find(&env(false), None).unwrap(), None);
    }
}
