//! What a discovery source finds: file systems per compute node ([`NodeMap`], [`Found`]), how a
//! node is looked up by its names, and the list a record carries ([`recorded`], with the original
//! recorder's markers). No I/O.

use std::collections::{BTreeMap, BTreeSet};

/// The original recorder's marker when discovery found nothing.
pub const NONE_DETECTED: &str = "none-detected";
/// The original recorder's marker when discovery is switched off.
pub const DISABLED: &str = "discovery-disabled";

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
    fn recorded_lists_are_sorted_unique_or_the_original_marker() {
        assert_eq!(recorded(["b".to_string(), "a".into(), "b".into()]), ["a", "b"]);
        assert_eq!(recorded(Vec::new()), [NONE_DETECTED]);
    }
}
