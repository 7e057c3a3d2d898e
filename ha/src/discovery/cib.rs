//! The Pacemaker configuration source: `Filesystem` resources with `fstype=gfs2` in the CIB
//! (`cibadmin --query`), on the nodes they may run on.
//!
//! A GFS2 file system is named by its mount point (`directory`; the `device` or the resource id when
//! there is none). The nodes it may run on are the cluster's nodes (`<nodes>`, remote nodes
//! excepted) allowed by the location constraints of the resource, its group and clone, *and* of
//! every resource it depends on through order or colocation constraints (the DLM / lvmlockd clone):
//! a GFS2 mount cannot be on a node where its DLM cannot run. A ban is a `-INFINITY` location; in an
//! opt-in cluster (`symmetric-cluster=false`) a node must be enabled by a location with a score of
//! 0 or more. Rule-based locations cannot be evaluated from the configuration alone and are
//! ignored (the result errs on the side of naming more nodes), as are resources stopped on purpose
//! (`target-role=Stopped`), which are mounted nowhere.

use std::collections::BTreeSet;

use roxmltree::{Document, Node};

use super::found::Found;

/// A constraint's score: `-INFINITY` bans, anything else at 0 or more enables.
fn score(s: Option<&str>) -> Option<i64> {
    let s = s?.trim();
    match s.trim_start_matches('+').to_ascii_uppercase().as_str() {
        "INFINITY" | "INF" => Some(i64::MAX),
        "-INFINITY" | "-INF" => Some(i64::MIN),
        other => other.parse().ok(),
    }
}

/// The value of the `nvpair` named `name` in `el`'s `section` children (`instance_attributes`,
/// `meta_attributes`, `cluster_property_set`), the first one found.
pub fn nvpair<'a>(el: Node<'a, 'a>, section: &str, name: &str) -> Option<&'a str> {
    el.children()
        .filter(|c| c.has_tag_name(section))
        .flat_map(|s| s.children().filter(|c| c.has_tag_name("nvpair")))
        .find(|n| n.attribute("name") == Some(name))
        .and_then(|n| n.attribute("value"))
}

/// The ids a location constraint may name to affect `el`: itself, its ancestors (group, clone) and
/// its descendants.
fn affecting_ids<'a>(el: Node<'a, 'a>) -> BTreeSet<&'a str> {
    let mut ids: BTreeSet<&str> =
        el.ancestors().take_while(|a| !a.has_tag_name("resources")).filter_map(|a| a.attribute("id")).collect();
    ids.extend(el.descendants().filter(|d| d.is_element()).filter_map(|d| d.attribute("id")));
    ids
}

fn stopped(el: Node<'_, '_>) -> bool {
    el.ancestors()
        .take_while(|a| !a.has_tag_name("resources"))
        .any(|a| nvpair(a, "meta_attributes", "target-role").is_some_and(|v| v.eq_ignore_ascii_case("stopped")))
}

struct Cib<'a> {
    nodes: Vec<&'a str>,
    symmetric: bool,
    resources: Option<Node<'a, 'a>>,
    constraints: Vec<Node<'a, 'a>>,
}

impl<'a> Cib<'a> {
    fn resource(&self, id: &str) -> Option<Node<'a, 'a>> {
        self.resources?.descendants().find(|d| d.is_element() && d.attribute("id") == Some(id))
    }

    /// The nodes `el` may run on, as far as location constraints say; `rules` counts the rule-based
    /// constraints that were ignored.
    fn allowed(&self, el: Node<'a, 'a>, rules: &mut usize) -> BTreeSet<&'a str> {
        let ids = affecting_ids(el);
        let mut banned = BTreeSet::new();
        let mut enabled = BTreeSet::new();
        for c in self.constraints.iter().filter(|c| c.has_tag_name("rsc_location")) {
            if !c.attribute("rsc").is_some_and(|r| ids.contains(r)) {
                continue;
            }
            if c.children().any(|r| r.has_tag_name("rule")) {
                *rules += 1;
                if !self.symmetric {
                    enabled.extend(self.nodes.iter().copied());
                }
                continue;
            }
            let (Some(node), Some(s)) = (c.attribute("node"), score(c.attribute("score"))) else { continue };
            if s == i64::MIN {
                banned.insert(node);
            } else if s >= 0 {
                enabled.insert(node);
            }
        }
        self.nodes.iter().copied().filter(|n| !banned.contains(n) && (self.symmetric || enabled.contains(n))).collect()
    }

    /// The resources `el` depends on: `first` of orders whose `then` is `el` (or its group/clone),
    /// and `with-rsc` of positive colocations whose `rsc` is.
    fn dependencies(&self, el: Node<'a, 'a>) -> Vec<Node<'a, 'a>> {
        let ids = affecting_ids(el);
        let mut deps = Vec::new();
        for c in &self.constraints {
            let dep = if c.has_tag_name("rsc_order") && c.attribute("then").is_some_and(|t| ids.contains(t)) {
                c.attribute("first")
            } else if c.has_tag_name("rsc_colocation")
                && c.attribute("rsc").is_some_and(|r| ids.contains(r))
                && score(c.attribute("score")).is_some_and(|s| s > 0)
            {
                c.attribute("with-rsc")
            } else {
                None
            };
            if let Some(d) = dep.and_then(|id| self.resource(id)) {
                if !deps.contains(&d) {
                    deps.push(d);
                }
            }
        }
        deps
    }
}

/// Parses a CIB (`cibadmin --query` output) into GFS2 mount points per node.
pub fn parse(xml: &str) -> Result<Found, String> {
    let doc = Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("cib") {
        return Err(format!("the document's root is <{}>, not <cib>", root.tag_name().name()));
    }
    let config = root.children().find(|c| c.has_tag_name("configuration")).ok_or("no <configuration> in the CIB")?;
    let section = |name: &str| config.children().find(|c| c.has_tag_name(name));
    let nodes = section("nodes")
        .map(|n| {
            n.children()
                .filter(|c| c.has_tag_name("node") && c.attribute("type").is_none_or(|t| t != "remote"))
                .filter_map(|c| c.attribute("uname"))
                .collect()
        })
        .unwrap_or_default();
    let symmetric = section("crm_config")
        .into_iter()
        .flat_map(|c| c.descendants().filter(|d| d.has_tag_name("nvpair")))
        .find(|n| n.attribute("name") == Some("symmetric-cluster"))
        .and_then(|n| n.attribute("value"))
        .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "no" | "off" | "0"));
    let constraints =
        section("constraints").map(|c| c.children().filter(Node::is_element).collect()).unwrap_or_default();
    let cib = Cib { nodes, symmetric, resources: section("resources"), constraints };

    let mut found = Found::default();
    for n in &cib.nodes {
        found.nodes.entry(n.to_string()).or_default();
    }
    let mut rules = 0;
    let filesystems = cib.resources.into_iter().flat_map(|r| r.descendants()).filter(|d| {
        d.has_tag_name("primitive")
            && d.attribute("type") == Some("Filesystem")
            && nvpair(*d, "instance_attributes", "fstype").is_some_and(|t| t.eq_ignore_ascii_case("gfs2"))
    });
    for fs in filesystems {
        let id = fs.attribute("id").unwrap_or("?");
        let directory = nvpair(fs, "instance_attributes", "directory");
        let device = nvpair(fs, "instance_attributes", "device");
        let name = directory.or(device).unwrap_or(id);
        if stopped(fs) {
            found.notes.push(format!("GFS2 Filesystem {id} ({name}) has target-role=Stopped: mounted nowhere"));
            continue;
        }
        let mut allowed = cib.allowed(fs, &mut rules);
        let deps = cib.dependencies(fs);
        for d in &deps {
            let on = cib.allowed(*d, &mut rules);
            allowed.retain(|n| on.contains(n));
        }
        let dep_names: Vec<String> = deps
            .iter()
            .map(|d| {
                let kinds: BTreeSet<&str> = d
                    .descendants()
                    .filter(|p| p.has_tag_name("primitive"))
                    .filter_map(|p| p.attribute("type"))
                    .collect();
                let kinds: Vec<&str> = kinds.into_iter().collect();
                format!("{} ({})", d.attribute("id").unwrap_or("?"), kinds.join(", "))
            })
            .collect();
        found.notes.push(format!(
            "GFS2 Filesystem {id}: {} on {name}, depends on [{}], may run on [{}]",
            device.unwrap_or("?"),
            dep_names.join("; "),
            allowed.iter().copied().collect::<Vec<_>>().join(", ")
        ));
        for n in allowed {
            found.nodes.entry(n.to_string()).or_default().insert(name.to_string());
        }
    }
    if rules > 0 {
        found.notes.push(format!("{rules} rule-based location constraint(s) not evaluated (treated as allowing)"));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CIB: &str = include_str!("../../tests/fixtures/discovery/cib.xml");

    fn fs(found: &Found, node: &str) -> Vec<String> {
        found.nodes[node].iter().cloned().collect()
    }

    #[test]
    fn gfs2_mounts_follow_locations_and_their_dlm_dependency() {
        let found = parse(CIB).unwrap();
        assert_eq!(fs(&found, "compute-01"), ["/home/shared", "/mnt/gfs1"]);
        assert_eq!(fs(&found, "compute-02"), ["/home/shared", "/mnt/gfs1"]);
        // compute-03: /home/shared banned there.
        assert_eq!(fs(&found, "compute-03"), ["/mnt/gfs1"]);
        // compute-04: the locking clone (DLM) is banned there, so no GFS2 mount can run.
        assert!(fs(&found, "compute-04").is_empty());
        // rabbit-01: /mnt/gfs1 banned; /home/shared allowed.
        assert_eq!(fs(&found, "rabbit-01"), ["/home/shared"]);
        assert!(!found.nodes.contains_key("remote-01"));
        let note = found.notes.iter().find(|n| n.contains("sharedfs1")).unwrap();
        assert!(note.contains("locking-clone (LVM-activate") || note.contains("locking-clone (controld"), "{note}");
        assert!(found.notes.iter().any(|n| n.contains("oldfs") && n.contains("Stopped")), "{:?}", found.notes);
    }

    #[test]
    fn opt_in_clusters_need_an_enabling_location() {
        let xml = CIB.replace(r#"name="symmetric-cluster" value="true""#, r#"name="symmetric-cluster" value="false""#);
        let found = parse(&xml).unwrap();
        // Only compute-01 is enabled for shared_vg1-clone, and locking-clone is enabled everywhere but compute-04.
        assert_eq!(fs(&found, "compute-01"), ["/mnt/gfs1"]);
        assert!(fs(&found, "compute-02").is_empty());
    }

    #[test]
    fn non_cib_input_is_an_error() {
        assert!(parse("not xml").unwrap_err().contains("not XML"));
        assert!(parse("<html/>").unwrap_err().contains("<html>"));
        assert!(parse("<cib/>").unwrap_err().contains("configuration"));
    }
}
