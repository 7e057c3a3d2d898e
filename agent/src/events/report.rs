//! The events CLI's reports as tables (pure): list, count by node, file systems, timeline, latency.
//! [`Table::render`] prints a table as aligned text, JSON or CSV.

use std::collections::{BTreeMap, BTreeSet};

use super::records::Record;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    Table,
    /// A JSON array of objects.
    Json,
    /// Comma-separated values with a header.
    Csv,
}

/// Rows under headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Column names.
    pub headers: Vec<&'static str>,
    /// Rows, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Table {
    /// The table in `format`, ending with a newline.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let rows: Vec<serde_json::Map<String, serde_json::Value>> = self
                    .rows
                    .iter()
                    .map(|r| self.headers.iter().zip(r).map(|(h, v)| (h.to_string(), v.clone().into())).collect())
                    .collect();
                format!("{}\n", serde_json::to_string_pretty(&rows).expect("rows serialise"))
            }
            Format::Csv => std::iter::once(self.headers.iter().map(|h| csv_field(h)).collect::<Vec<_>>())
                .chain(self.rows.iter().map(|r| r.iter().map(|v| csv_field(v)).collect()))
                .map(|r| format!("{}\n", r.join(",")))
                .collect(),
            Format::Table => {
                if self.rows.is_empty() {
                    return "(no matching events)\n".into();
                }
                let widths: Vec<usize> = (0..self.headers.len())
                    .map(|i| {
                        self.rows.iter().map(|r| r[i].chars().count()).chain([self.headers[i].len()]).max().unwrap_or(0)
                    })
                    .collect();
                let line = |cells: Vec<&str>| {
                    let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
                    format!("{}\n", padded.join("  ").trim_end())
                };
                let mut out = line(
                    self.headers
                        .iter()
                        .map(|h| h.to_uppercase())
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                        .collect(),
                );
                for r in &self.rows {
                    out += &line(r.iter().map(String::as_str).collect());
                }
                out
            }
        }
    }
}

fn time(r: &Record) -> String {
    r.time.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

fn field(r: &Record, k: &str) -> String {
    r.raw.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

/// Every record.
pub fn list(records: &[Record]) -> Table {
    Table {
        headers: vec!["time", "node", "action", "status", "gfs2", "request_id", "details"],
        rows: records
            .iter()
            .map(|r| {
                vec![
                    time(r),
                    r.node.clone(),
                    r.action.clone(),
                    r.status.clone(),
                    r.gfs2.join(" "),
                    r.request_id.clone().unwrap_or_default(),
                    field(r, "details"),
                ]
            })
            .collect(),
    }
}

/// Fence requests per node, with how they ended.
pub fn count(records: &[Record]) -> Table {
    #[derive(Default)]
    struct C {
        requested: u64,
        completed: u64,
        failed: u64,
        last: String,
    }
    let mut by: BTreeMap<&str, C> = BTreeMap::new();
    for r in records {
        let c = by.entry(&r.node).or_default();
        match r.status.as_str() {
            "requested" => c.requested += 1,
            "completed" => c.completed += 1,
            "failed" => c.failed += 1,
            _ => {}
        }
        c.last = c.last.clone().max(time(r));
    }
    Table {
        headers: vec!["node", "requested", "completed", "failed", "last"],
        rows: by
            .into_iter()
            .map(|(n, c)| {
                vec![n.into(), c.requested.to_string(), c.completed.to_string(), c.failed.to_string(), c.last]
            })
            .collect(),
    }
}

/// Every GFS2 file system named by a completed fence: how many fences, which nodes, the last time.
pub fn filesystems(records: &[Record]) -> Table {
    let mut by: BTreeMap<&str, (u64, BTreeSet<&str>, String)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == "completed") {
        for fs in r.filesystems() {
            let e = by.entry(fs).or_default();
            e.0 += 1;
            e.1.insert(&r.node);
            e.2 = e.2.clone().max(time(r));
        }
    }
    Table {
        headers: vec!["filesystem", "fences", "nodes", "last"],
        rows: by
            .into_iter()
            .map(|(fs, (n, nodes, last))| {
                vec![fs.into(), n.to_string(), nodes.into_iter().collect::<Vec<_>>().join(" "), last]
            })
            .collect(),
    }
}

/// One row per fence request, in time order: when asked, how it ended, how long it took.
pub fn timeline(records: &[Record]) -> Table {
    let mut order: Vec<&str> = Vec::new();
    let mut by: BTreeMap<&str, (Option<&Record>, Option<&Record>)> = BTreeMap::new();
    for r in records {
        let Some(id) = r.request_id.as_deref() else { continue };
        let e = by.entry(id).or_insert_with(|| {
            order.push(id);
            (None, None)
        });
        if r.status == "requested" {
            e.0 = Some(r);
        } else {
            e.1 = Some(r);
        }
    }
    Table {
        headers: vec!["requested", "node", "action", "result", "latency_ms", "gfs2", "request_id"],
        rows: order
            .into_iter()
            .map(|id| {
                let (asked, ended) = by[id];
                let first = asked.or(ended).expect("an entry has a record");
                vec![
                    time(first),
                    first.node.clone(),
                    first.action.clone(),
                    ended.map_or("pending or lost".into(), |e| {
                        let outcome = field(e, "outcome");
                        if outcome.is_empty() {
                            e.status.clone()
                        } else {
                            format!("{} ({outcome})", e.status)
                        }
                    }),
                    latency(asked, ended).map_or(String::new(), |l| l.to_string()),
                    ended.unwrap_or(first).gfs2.join(" "),
                    id.into(),
                ]
            })
            .collect(),
    }
}

fn latency(asked: Option<&Record>, ended: Option<&Record>) -> Option<u64> {
    Some(ended?.elapsed_ms?.saturating_sub(asked?.elapsed_ms?))
}

/// Per node, completed fences' latency from request to completion (the agent's clock).
pub fn latency_by_node(records: &[Record]) -> Table {
    let mut asked: BTreeMap<&str, &Record> = BTreeMap::new();
    let mut by: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in records {
        let Some(id) = r.request_id.as_deref() else { continue };
        match r.status.as_str() {
            "requested" => {
                asked.insert(id, r);
            }
            "completed" => {
                if let Some(l) = latency(asked.get(id).copied(), Some(r)) {
                    by.entry(&r.node).or_default().push(l);
                }
            }
            _ => {}
        }
    }
    let pct = |v: &[u64], p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1].to_string();
    Table {
        headers: vec!["node", "fences", "p50_ms", "p90_ms", "p99_ms", "max_ms"],
        rows: by
            .into_iter()
            .map(|(n, mut v)| {
                v.sort_unstable();
                vec![n.into(), v.len().to_string(), pct(&v, 0.5), pct(&v, 0.9), pct(&v, 0.99), pct(&v, 1.0)]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node: &str, status: &str, id: &str, ms: u64, fs: &[&str]) -> Record {
        let line = serde_json::json!({"timestamp": "2026-11-25T10:00:00Z", "action": "off", "target_node": node,
            "gfs2_filesystems": fs, "status": status, "details": "a, \"b\"", "request_id": id, "elapsed_ms": ms});
        Record::parse(&line.to_string()).unwrap()
    }

    fn sample() -> Vec<Record> {
        vec![
            rec("n1", "requested", "a", 1, &["fs1"]),
            rec("n1", "completed", "a", 41, &["fs1"]),
            rec("n2", "requested", "b", 2, &["none-detected"]),
            rec("n2", "failed", "b", 902, &["none-detected"]),
            rec("n1", "requested", "c", 1, &["fs1", "fs2"]),
            rec("n1", "completed", "c", 11, &["fs1", "fs2"]),
        ]
    }

    #[test]
    fn reports_aggregate_per_node_and_file_system() {
        let r = sample();
        assert_eq!(count(&r).rows[0], ["n1", "2", "2", "0", "2026-11-25T10:00:00Z"]);
        assert_eq!(count(&r).rows[1][3], "1");
        let fs = filesystems(&r);
        assert_eq!(fs.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["fs1", "fs2"]);
        assert_eq!(fs.rows[0][1], "2");
        let t = timeline(&r);
        assert_eq!(t.rows[1][3], "failed");
        assert_eq!(t.rows[0][4], "40");
        let l = latency_by_node(&r);
        assert_eq!(l.rows, [["n1", "2", "10", "40", "40", "40"]]);
    }

    #[test]
    fn formats_render_tables_json_and_quoted_csv() {
        let t = list(&sample()[..1]);
        assert!(t.render(Format::Table).starts_with("TIME"));
        let csv = t.render(Format::Csv);
        assert!(csv.lines().nth(1).unwrap().ends_with(",\"a, \"\"b\"\"\""), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&t.render(Format::Json)).unwrap();
        assert_eq!(json[0]["node"], "n1");
        assert_eq!(Table { headers: vec!["x"], rows: vec![] }.render(Format::Table), "(no matching events)\n");
    }
}
