//! The DLM source: one lockspace per mounted GFS2 file system, with its member node ids.
//!
//! - `dlm_tool ls` prints, per lockspace, `name`, `id`, `flags`, `change` and `members` lines, and
//!   while a membership change is pending (a failed node not yet fenced) `new change`,
//!   `new status` and `new members`. A node counts as a lockspace's member if either list has it:
//!   the node being fenced is typically in `members` and no longer in `new members`.
//! - `dlm_tool status` prints `node <id> <M|X> add … rem … fail … fence … at …` per node the DLM
//!   knows: those nodes get an entry even without a GFS2 lockspace (known, using none).
//! - Node ids become names through `crm_node -l` (`<id> <name> <state>`) or, when that fails,
//!   `corosync-cmapctl -b nodelist.node` (`nodelist.node.<i>.{nodeid,name,ring0_addr} (<type>) = <v>`).
//!
//! Lockspaces that are not GFS2 file systems are left out: lvmlockd's (`lvm_global`, `lvm_<vg>`) and
//! clvmd's (`clvmd`).

use std::collections::{BTreeMap, BTreeSet};

use super::found::Found;

/// One lockspace of `dlm_tool ls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockspace {
    /// Its name (for GFS2, the file system part of the lock table `cluster:fs`).
    pub name: String,
    /// Node ids of the current membership and of a pending change.
    pub members: BTreeSet<u32>,
}

/// Whether a lockspace belongs to a GFS2 file system rather than to lvmlockd or clvmd.
pub fn is_gfs2_lockspace(name: &str) -> bool {
    !(name.starts_with("lvm_") || name == "clvmd")
}

fn ids(words: &str) -> Result<BTreeSet<u32>, String> {
    if words.trim() == "error" {
        return Ok(BTreeSet::new());
    }
    words.split_whitespace().map(|w| w.parse::<u32>().map_err(|_| format!("node id {w:?} is not a number"))).collect()
}

/// Parses `dlm_tool ls`. Empty output (no lockspace) is an empty list.
pub fn parse_ls(text: &str) -> Result<Vec<Lockspace>, String> {
    let mut out: Vec<Lockspace> = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()) {
        if line == "dlm lockspaces" {
            continue;
        }
        let (key, rest) = if let Some(rest) = line.strip_prefix("new members") {
            ("new members", rest)
        } else {
            line.split_once(char::is_whitespace).unwrap_or((line, ""))
        };
        match key {
            "name" => out.push(Lockspace { name: rest.trim().to_string(), members: BTreeSet::new() }),
            "members" | "new members" => {
                let ls = out.last_mut().ok_or_else(|| format!("{key:?} line before any lockspace name"))?;
                ls.members.extend(ids(rest)?);
            }
            "id" | "flags" | "change" | "new" | "all" | "nodeid" => {}
            _ => return Err(format!("unrecognised dlm_tool ls line {:?}", truncate(line))),
        }
    }
    if out.iter().any(|l| l.name.is_empty()) {
        return Err("a lockspace without a name".into());
    }
    Ok(out)
}

/// Parses `dlm_tool status`: the node ids the DLM knows, with whether each is a member now.
pub fn parse_status(text: &str) -> Result<BTreeMap<u32, bool>, String> {
    let mut nodes = BTreeMap::new();
    let mut recognised = false;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("node") => {
                let id = w.next().and_then(|v| v.parse::<u32>().ok());
                let state = w.next();
                match (id, state) {
                    (Some(id), Some("M")) => nodes.insert(id, true),
                    (Some(id), Some("X")) => nodes.insert(id, false),
                    _ => return Err(format!("unrecognised dlm_tool status line {:?}", truncate(line))),
                };
            }
            Some("cluster" | "daemon") => recognised = true,
            _ => {}
        }
    }
    if !recognised && nodes.is_empty() {
        return Err("dlm_tool status printed no cluster or node line".into());
    }
    Ok(nodes)
}

/// Parses `crm_node -l`: node id → name.
pub fn parse_crm_node(text: &str) -> Result<BTreeMap<u32, String>, String> {
    let mut names = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = line.split_whitespace();
        match (w.next().and_then(|v| v.parse::<u32>().ok()), w.next()) {
            (Some(id), Some(name)) => names.insert(id, name.to_string()),
            _ => return Err(format!("unrecognised crm_node -l line {:?}", truncate(line))),
        };
    }
    Ok(names)
}

/// Parses `corosync-cmapctl -b nodelist.node`: node id → name (`ring0_addr` when unnamed).
pub fn parse_cmapctl(text: &str) -> Result<BTreeMap<u32, String>, String> {
    let mut entries: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once(" = ").ok_or_else(|| format!("unrecognised line {:?}", truncate(line)))?;
        let key = key.split_whitespace().next().unwrap_or_default();
        let Some(rest) = key.strip_prefix("nodelist.node.") else { continue };
        if let Some((index, field)) = rest.split_once('.') {
            entries.entry(index.to_string()).or_default().insert(field.to_string(), value.trim().to_string());
        }
    }
    let mut names = BTreeMap::new();
    for fields in entries.values() {
        let id = fields.get("nodeid").and_then(|v| v.parse::<u32>().ok());
        let name = fields.get("name").or_else(|| fields.get("ring0_addr"));
        if let (Some(id), Some(name)) = (id, name) {
            names.insert(id, name.clone());
        }
    }
    Ok(names)
}

/// Combines the lockspaces, the known nodes and the names into file systems per node.
pub fn combine(lockspaces: &[Lockspace], known: &BTreeMap<u32, bool>, names: &BTreeMap<u32, String>) -> Found {
    let mut found = Found::default();
    let mut unnamed = BTreeSet::new();
    let known_ids = known.keys().copied().map(|id| (id, None));
    let member_ids = lockspaces
        .iter()
        .filter(|l| is_gfs2_lockspace(&l.name))
        .flat_map(|ls| ls.members.iter().map(move |&id| (id, Some(ls.name.as_str()))));
    for (id, lockspace) in known_ids.chain(member_ids) {
        match names.get(&id) {
            Some(n) => {
                let set = found.nodes.entry(n.clone()).or_default();
                set.extend(lockspace.map(str::to_string));
            }
            None => {
                unnamed.insert(id);
            }
        }
    }
    if !unnamed.is_empty() {
        let list: Vec<String> = unnamed.iter().map(u32::to_string).collect();
        found.notes.push(format!("DLM node ids without a name in the membership: {}", list.join(", ")));
    }
    found
}

fn truncate(line: &str) -> String {
    line.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = include_str!("../../tests/fixtures/discovery/dlm_tool-ls.txt");
    const STATUS: &str = include_str!("../../tests/fixtures/discovery/dlm_tool-status.txt");
    const CRM_NODE: &str = include_str!("../../tests/fixtures/discovery/crm_node-l.txt");
    const CMAP: &str = include_str!("../../tests/fixtures/discovery/corosync-cmapctl.txt");

    #[test]
    fn lockspaces_members_and_a_pending_change_are_read() {
        let ls = parse_ls(LS).unwrap();
        let names: Vec<&str> = ls.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lvm_global", "lvm_vg_scratch", "scratch", "project"]);
        // compute-01 (1) failed: still in `members`, gone from `new members`.
        assert_eq!(ls[2].members, BTreeSet::from([1, 2, 5]));
        assert_eq!(ls[3].members, BTreeSet::from([2, 3, 5]));
        assert!(parse_ls("").unwrap().is_empty());
        assert!(parse_ls("Segmentation fault\n").is_err());
        assert!(parse_ls("members 1 2\n").is_err());
    }

    #[test]
    fn names_come_from_crm_node_or_corosync() {
        let a = parse_crm_node(CRM_NODE).unwrap();
        let b = parse_cmapctl(CMAP).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[&5], "rabbit-01");
        assert!(parse_crm_node("garbage here\n").is_err());
    }

    #[test]
    fn gfs2_lockspaces_go_to_their_members_by_name() {
        let found = combine(&parse_ls(LS).unwrap(), &parse_status(STATUS).unwrap(), &parse_crm_node(CRM_NODE).unwrap());
        let fs = |n: &str| found.nodes[n].iter().cloned().collect::<Vec<_>>();
        assert_eq!(fs("compute-01"), ["scratch"]);
        assert_eq!(fs("compute-02"), ["project", "scratch"]);
        assert_eq!(fs("compute-03"), ["project"]);
        assert!(fs("compute-04").is_empty(), "known to the DLM, in no GFS2 lockspace");
        assert!(found.notes.is_empty(), "{:?}", found.notes);
        let partial = combine(&parse_ls(LS).unwrap(), &BTreeMap::new(), &BTreeMap::from([(2, "compute-02".into())]));
        assert_eq!(partial.nodes.len(), 1);
        // Node 4 is only in lvmlockd's lockspaces, which are not GFS2.
        assert!(partial.notes[0].ends_with(": 1, 3, 5"), "{:?}", partial.notes);
    }

    #[test]
    fn status_lines_are_checked() {
        let known = parse_status(STATUS).unwrap();
        assert_eq!(known.get(&1), Some(&false));
        assert_eq!(known.get(&2), Some(&true));
        assert!(parse_status("hello\n").is_err());
        assert!(parse_status("node x M\n").is_err());
    }
}
