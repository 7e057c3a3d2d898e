//! `targets.json`: the targets the watchers' configuration knows, published for the agent's `list`
//! action (Pacemaker's `pcmk_host_check=dynamic-list`). Written atomically by each watcher at start;
//! watchers sharing a spool share a configuration, so the last writer's list is everyone's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spool::Spool;

/// One fenceable target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The plug name Pacemaker passes as `plug`/`port`.
    pub plug: String,
    /// The node name it belongs to, when configured (printed as the list's alias column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The published list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Explicitly configured targets, sorted by plug.
    pub targets: Vec<Target>,
    /// Whether a default entry fences any other target too.
    #[serde(default)]
    pub has_default: bool,
}

/// `<base>/targets.json`.
pub fn path(spool: &Spool) -> PathBuf {
    spool.base().join("targets.json")
}
