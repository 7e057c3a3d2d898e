//! The Kubernetes / NNF source: GFS2 `NnfStorage` resources, attributed to compute nodes through
//! their `NnfNodeBlockStorage` allocations.
//!
//! One `kubectl get nnfstorages.nnf.cray.hpe.com,nnfnodeblockstorages.nnf.cray.hpe.com -A -o json`
//! returns a `List` of both kinds. An `NnfStorage` with `.spec.fileSystemType == "gfs2"` names a GFS2
//! file system; its `.spec.allocationSets[].nodes[].name` are *rabbits*, not compute nodes. Each
//! rabbit's `NnfNodeBlockStorage` belongs to one `NnfStorage` — through the DWS owner labels
//! (`dataworkflowservices.github.io/owner.{kind,name,namespace}`, as it lives in the rabbit's
//! namespace) or an owner reference in the same namespace — and its
//! `.status.allocations[].accesses` map is keyed by the nodes that reach the allocation. A block
//! storage labelled `nnf.cray.hpe.com/allocationset` with a value other than `gfs2` is not GFS2.
//! Parsing is serde over the documented CRD fields; unknown fields are ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::found::Found;

/// The resource types asked for, fully qualified so that no other API group's kind matches.
pub const RESOURCES: &str = "nnfstorages.nnf.cray.hpe.com,nnfnodeblockstorages.nnf.cray.hpe.com";

const OWNER_KIND: &str = "dataworkflowservices.github.io/owner.kind";
const OWNER_NAME: &str = "dataworkflowservices.github.io/owner.name";
const OWNER_NAMESPACE: &str = "dataworkflowservices.github.io/owner.namespace";
const ALLOCATION_SET: &str = "nnf.cray.hpe.com/allocationset";

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    kind: String,
    metadata: Meta,
    #[serde(default)]
    spec: serde_json::Value,
    #[serde(default)]
    status: serde_json::Value,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerRef>,
}

#[derive(Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

/// `kubectl`'s JSON → GFS2 file systems per compute node.
pub fn parse(json: &[u8]) -> Result<Found, String> {
    let list: List = serde_json::from_slice(json).map_err(|e| format!("not a kubectl JSON list: {e}"))?;
    let mut gfs2: BTreeMap<(String, String), String> = BTreeMap::new();
    for item in list.items.iter().filter(|i| i.kind == "NnfStorage") {
        if item.spec.get("fileSystemType").and_then(|v| v.as_str()) == Some("gfs2") {
            let key = (item.metadata.namespace.clone(), item.metadata.name.clone());
            gfs2.insert(key, item.metadata.name.clone());
        }
    }
    let mut found = Found::default();
    let mut attributed = BTreeSet::new();
    for item in list.items.iter().filter(|i| i.kind == "NnfNodeBlockStorage") {
        let labels = &item.metadata.labels;
        if labels.get(ALLOCATION_SET).is_some_and(|set| set != "gfs2") {
            continue;
        }
        let Some(owner) = owner(&item.metadata) else { continue };
        let Some(fs) = gfs2.get(&owner) else { continue };
        for node in accesses(&item.status) {
            found.nodes.entry(node).or_default().insert(fs.clone());
            attributed.insert(owner.clone());
        }
    }
    for (key, name) in &gfs2 {
        if !attributed.contains(key) {
            found.notes.push(format!(
                "GFS2 NnfStorage {}/{name} has no NnfNodeBlockStorage access yet: attributed to no node",
                key.0
            ));
        }
    }
    Ok(found)
}

/// The `(namespace, name)` of the `NnfStorage` a block storage belongs to.
fn owner(meta: &Meta) -> Option<(String, String)> {
    let labels = &meta.labels;
    if labels.get(OWNER_KIND).map(String::as_str) == Some("NnfStorage") {
        if let Some(name) = labels.get(OWNER_NAME) {
            let ns = labels.get(OWNER_NAMESPACE).cloned().unwrap_or_else(|| meta.namespace.clone());
            return Some((ns, name.clone()));
        }
    }
    meta.owner_references.iter().find(|r| r.kind == "NnfStorage").map(|r| (meta.namespace.clone(), r.name.clone()))
}

/// The node names in `.status.allocations[].accesses`.
fn accesses(status: &serde_json::Value) -> Vec<String> {
    let allocations = status.get("allocations").and_then(|a| a.as_array()).map(Vec::as_slice).unwrap_or_default();
    allocations
        .iter()
        .filter_map(|a| a.get("accesses").and_then(|m| m.as_object()))
        .flat_map(|m| m.keys().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/discovery/kubectl-nnf.json");

    #[test]
    fn gfs2_storages_go_to_the_compute_nodes_that_reach_them() {
        let found = parse(FIXTURE.as_bytes()).unwrap();
        let fs = |n: &str| found.nodes.get(n).map(|s| s.iter().cloned().collect::<Vec<_>>());
        assert_eq!(fs("compute-01").unwrap(), ["gfs2-scratch"]);
        assert_eq!(fs("compute-02").unwrap(), ["gfs2-project", "gfs2-scratch"]);
        assert_eq!(fs("compute-03").unwrap(), ["gfs2-project"]);
        // compute-04 reaches only the XFS and Lustre allocations.
        assert_eq!(fs("compute-04"), None);
        assert!(found.notes.iter().any(|n| n.contains("gfs2-pending")), "{:?}", found.notes);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse(b"<html>").is_err());
        assert!(parse(br#"{"items":[{"kind":"NnfStorage"}]}"#).is_err());
        assert_eq!(parse(br#"{"items":[]}"#).unwrap(), Found::default());
    }
}
