//! GFS2 discovery: which GFS2 file systems each compute node may be using, so that every fence
//! record can say which file systems the fence protected.
//!
//! Three sources, each optional, each giving a [`NodeMap`] (compute node → GFS2 file system names):
//! - [`nnf`]: Kubernetes / NNF (`NnfStorage` with `fileSystemType: gfs2`, attributed to compute
//!   nodes through `NnfNodeBlockStorage` accesses);
//! - [`dlm`]: the DLM lockspaces (`dlm_tool ls`/`status`) and their member node ids, named through
//!   `crm_node -l` or `corosync-cmapctl`;
//! - [`cib`]: Pacemaker's configuration (`Filesystem` resources with `fstype=gfs2`, on the nodes they
//!   may run on, together with the DLM/lvmlockd resources they depend on).
//!
//! Parsing and merging are plain functions without I/O; [`run`] owns the tool processes (each in
//! its own process group with a death signal, killed at its deadline, output capped); [`snapshot`]
//! is the `discovery.json` format the leader watcher keeps fresh and the agent reads at fence time.

pub mod cib;
pub mod dlm;
pub mod nnf;
pub mod run;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The original recorder's marker when discovery found nothing.
pub const NONE_DETECTED: &str = "none-detected";
/// The original recorder's marker when discovery is switched off.
pub const DISABLED: &str = "discovery-disabled";

/// A discovery source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Kubernetes / NNF custom resources through `kubectl`.
    Kubernetes,
    /// DLM lockspaces through `dlm_tool`.
    Dlm,
    /// Pacemaker's CIB through `cibadmin --query`.
    Cib,
}

impl Source {
    /// Every source, in the order they are reported.
    pub const ALL: [Source; 3] = [Source::Kubernetes, Source::Dlm, Source::Cib];

    /// The name used in options, files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kubernetes => "kubernetes",
            Source::Dlm => "dlm",
            Source::Cib => "cib",
        }
    }

    /// Parses a comma-separated list (`kubernetes,dlm,cib`; `k8s`/`nnf` and `pacemaker` are
    /// accepted aliases; empty means none).
    pub fn parse_list(s: &str) -> Result<BTreeSet<Source>, String> {
        let mut set = BTreeSet::new();
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let source = match word.to_ascii_lowercase().as_str() {
                "kubernetes" | "k8s" | "nnf" | "kubectl" => Source::Kubernetes,
                "dlm" => Source::Dlm,
                "cib" | "pacemaker" => Source::Cib,
                _ => return Err(format!("unknown discovery source {word:?} (expected kubernetes, dlm or cib)")),
            };
            set.insert(source);
        }
        Ok(set)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GFS2 file system names per compute node, as one source sees them. A node with an empty set is
/// known to the source and uses no GFS2 file system.
pub type NodeMap = BTreeMap<String, BTreeSet<String>>;

/// What one source found: its node map and notes for people (e.g. which node ids had no name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// File systems per node.
    pub nodes: NodeMap,
    /// Remarks worth keeping in the snapshot.
    pub notes: Vec<String>,
}

/// The file systems of the first of `names` that `nodes` knows (Pacemaker's node name first, then
/// the plug), or `None` when it knows none of them.
pub fn lookup<'a>(nodes: &'a NodeMap, names: &[&str]) -> Option<&'a BTreeSet<String>> {
    names.iter().find_map(|n| nodes.get(*n))
}

/// The list recorded for a node: the names sorted and de-duplicated, or the original
/// `["none-detected"]` marker when there are none.
pub fn recorded(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = names.into_iter().collect();
    if set.is_empty() {
        vec![NONE_DETECTED.to_string()]
    } else {
        set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_lists_parse_with_aliases_and_reject_unknown_names() {
        assert_eq!(Source::parse_list("kubernetes, dlm,cib").unwrap().len(), 3);
        assert_eq!(Source::parse_list("nnf,pacemaker").unwrap(), BTreeSet::from([Source::Kubernetes, Source::Cib]));
        assert!(Source::parse_list("").unwrap().is_empty());
        assert!(Source::parse_list("dlm,ldap").unwrap_err().contains("\"ldap\""));
    }

    #[test]
    fn recorded_lists_are_sorted_unique_or_the_original_marker() {
        assert_eq!(recorded(["b".to_string(), "a".into(), "b".into()]), ["a", "b"]);
        assert_eq!(recorded(Vec::new()), [NONE_DETECTED]);
    }
}
