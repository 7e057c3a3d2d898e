//! `gfs2-fence-events fenced`: the nodes nnf-sos holds fenced now, one row per standing record
//! (`agent::standing`), named and with their GFS2 file systems from the audit chain's records of the
//! same request when there are any. And [`plug_of`]: the plug a node was fenced by, as the chain
//! recorded it. Pure: the caller reads the directory and the chain.

use std::collections::BTreeMap;

use super::records::Record;
use super::report::{Column, Table};
use agent::standing::Standing;

/// What the chain says of a request: Pacemaker's name of the node and the GFS2 file systems.
#[derive(Debug, Default, Clone)]
struct Known {
    node: Option<String>,
    gfs2: Vec<String>,
}

fn known(records: &[Record]) -> BTreeMap<&str, Known> {
    let mut by_id: BTreeMap<&str, Known> = BTreeMap::new();
    for r in records {
        let Some(id) = r.request_id.as_deref() else { continue };
        let k = by_id.entry(id).or_default();
        if let Some(name) = r.raw.get("nodename").and_then(|v| v.as_str()) {
            k.node = Some(name.to_string());
        }
        if !r.gfs2.is_empty() {
            k.gfs2 = r.gfs2.clone();
        }
    }
    by_id
}

fn utc(t: Option<std::time::SystemTime>) -> String {
    t.map(|t| chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

/// One row per standing record, oldest first, those of `node` only when given (Pacemaker's name or
/// the plug).
pub fn table(standing: &[Standing], chain: &[Record], node: Option<&str>) -> Table {
    let known = known(chain);
    let mut rows: Vec<((String, String), Vec<String>)> = standing
        .iter()
        .map(|s| {
            let k = s.request_id.as_deref().and_then(|id| known.get(id)).cloned().unwrap_or_default();
            let row = vec![
                k.node.unwrap_or_else(|| s.target.clone()),
                s.target.clone(),
                utc(s.since),
                s.request_id.clone().unwrap_or_default(),
                s.action_performed.clone(),
                k.gfs2.join(" "),
                if s.holds_storage { "deleted".into() } else { "status only".into() },
                s.path.display().to_string(),
            ];
            ((row[2].clone(), row[7].clone()), row)
        })
        .filter(|(_, row)| node.is_none_or(|n| row[0] == n || row[1] == n))
        .collect();
    rows.sort();
    Table {
        columns: vec![
            Column::text("node"),
            Column::text("plug"),
            Column::text("since"),
            Column::id("request_id"),
            Column::text("action_performed"),
            Column::list("gfs2"),
            Column::text("storage"),
            Column::elastic("file"),
        ],
        rows: rows.into_iter().map(|(_, row)| row).collect(),
    }
}

/// The plug `node` (Pacemaker's name) was last fenced by, as the chain recorded it (`nodename` and
/// `target_node` of one record), if it was.
pub fn plug_of(chain: &[Record], node: &str) -> Option<String> {
    chain
        .iter()
        .rev()
        .filter(|r| r.raw.get("nodename").and_then(|v| v.as_str()) == Some(node))
        .find_map(|r| r.raw.get("target_node").and_then(|v| v.as_str()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(name: &str, target: &str, id: &str, success: bool) -> Standing {
        Standing {
            path: format!("/r/{name}").into(),
            id: (1, 2),
            target: target.into(),
            request_id: Some(id.into()),
            timestamp: None,
            action_performed: "off".into(),
            message: String::new(),
            since: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)),
            holds_storage: success,
        }
    }

    #[test]
    fn standing_records_are_named_by_the_chain_and_filtered_by_node_or_plug() {
        let chain: Vec<Record> = [
            r#"{"request_id":"a","nodename":"node1","target_node":"cn1","status":"requested","gfs2_filesystems":["/gfs/a"]}"#,
            r#"{"request_id":"a","nodename":"node1","target_node":"cn1","status":"completed"}"#,
        ]
        .iter()
        .map(|l| Record::parse(l).unwrap())
        .collect();
        let s = [standing("cn1-a.json", "cn1", "a", true), standing(".x.json", "cn2", "b", false)];
        let t = table(&s, &chain, None);
        // Oldest first, then by file.
        assert_eq!(t.rows[1][..3], ["node1", "cn1", "2027-01-15T08:00:00Z"]);
        assert_eq!((t.rows[1][5].as_str(), t.rows[1][6].as_str()), ("/gfs/a", "deleted"));
        assert_eq!((t.rows[0][0].as_str(), t.rows[0][6].as_str()), ("cn2", "status only"), "unknown to the chain");
        assert_eq!(table(&s, &chain, Some("node1")).rows.len(), 1);
        assert_eq!(table(&s, &chain, Some("cn1")).rows.len(), 1);
        assert!(table(&s, &chain, Some("node9")).rows.is_empty());
        assert_eq!(plug_of(&chain, "node1").as_deref(), Some("cn1"));
        assert_eq!(plug_of(&chain, "node2"), None);
    }
}
