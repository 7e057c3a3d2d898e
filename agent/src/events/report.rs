//! The events CLI's reports as tables (pure): list, count by node, rabbit or cluster, file systems,
//! timeline, latency. Every row says which rabbit and cluster it is from; a column added later goes
//! last, so that scripts reading the earlier ones by position keep working. [`Table::render`] prints
//! a table as aligned text, JSON or CSV.

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

/// What `count` and `latency` make one row of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// A node (Pacemaker's name, else the plug) as one rabbit fenced it.
    Node,
    /// A rabbit (`recorder_node`).
    Rabbit,
    /// A Pacemaker cluster.
    Cluster,
}

/// A row's key: (first column, rabbit, cluster), as far as the grouping keeps them.
type RowKey = (String, String, String);

impl By {
    /// The row key of `r`.
    fn key(self, r: &Record) -> RowKey {
        match self {
            By::Node => (r.node.clone(), r.rabbit.clone(), r.cluster.clone()),
            By::Rabbit => (r.rabbit.clone(), r.rabbit.clone(), r.cluster.clone()),
            By::Cluster => (r.cluster.clone(), String::new(), r.cluster.clone()),
        }
    }

    fn header(self) -> &'static str {
        match self {
            By::Node => "node",
            By::Rabbit => "rabbit",
            By::Cluster => "cluster",
        }
    }
}

/// The values of a set, in order and space-separated, the empty one left out.
fn joined(set: &BTreeSet<&str>) -> String {
    set.iter().copied().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
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
        headers: vec!["time", "node", "action", "status", "gfs2", "request_id", "details", "rabbit", "cluster"],
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
                    r.rabbit.clone(),
                    r.cluster.clone(),
                ]
            })
            .collect(),
    }
}

/// Fence requests per node (or rabbit, or cluster), with how they ended.
pub fn count(records: &[Record], by: By) -> Table {
    #[derive(Default)]
    struct C<'a> {
        requested: u64,
        completed: u64,
        failed: u64,
        unfenced: u64,
        last: String,
        rabbits: BTreeSet<&'a str>,
    }
    let mut rows: BTreeMap<RowKey, C> = BTreeMap::new();
    for r in records {
        let c = rows.entry(by.key(r)).or_default();
        // An unfence's records count as an unfence, never as a fence request or its end.
        match (r.action.as_str(), r.status.as_str()) {
            (_, "unfenced") => c.unfenced += 1,
            ("unfence", _) => {}
            (_, "requested") => c.requested += 1,
            (_, "completed") => c.completed += 1,
            (_, "failed") => c.failed += 1,
            _ => {}
        }
        c.last = c.last.clone().max(time(r));
        c.rabbits.insert(&r.rabbit);
    }
    Table {
        // `unfenced` came later than the rabbit and cluster: last, so that columns keep their places.
        headers: vec![by.header(), "requested", "completed", "failed", "last", "rabbit", "cluster", "unfenced"],
        rows: rows
            .into_iter()
            .map(|((first, _, cluster), c)| {
                vec![
                    first,
                    c.requested.to_string(),
                    c.completed.to_string(),
                    c.failed.to_string(),
                    c.last,
                    joined(&c.rabbits),
                    cluster,
                    c.unfenced.to_string(),
                ]
            })
            .collect(),
    }
}

/// Every GFS2 file system named by a completed fence: how many fences, which nodes, the last time.
pub fn filesystems(records: &[Record]) -> Table {
    #[derive(Default)]
    struct F<'a> {
        fences: u64,
        nodes: BTreeSet<&'a str>,
        last: String,
        rabbits: BTreeSet<&'a str>,
        clusters: BTreeSet<&'a str>,
    }
    let mut by: BTreeMap<&str, F> = BTreeMap::new();
    for r in records.iter().filter(|r| r.status == "completed") {
        for fs in r.filesystems() {
            let e = by.entry(fs).or_default();
            e.fences += 1;
            e.nodes.insert(&r.node);
            e.last = e.last.clone().max(time(r));
            e.rabbits.insert(&r.rabbit);
            e.clusters.insert(&r.cluster);
        }
    }
    Table {
        headers: vec!["filesystem", "fences", "nodes", "last", "rabbit", "cluster"],
        rows: by
            .into_iter()
            .map(|(fs, f)| {
                vec![fs.into(), f.fences.to_string(), joined(&f.nodes), f.last, joined(&f.rabbits), joined(&f.clusters)]
            })
            .collect(),
    }
}

/// One row per fence request (and per unfence), in time order: when asked, how it ended, how long it
/// took.
pub fn timeline(records: &[Record]) -> Table {
    let mut order: Vec<&str> = Vec::new();
    let mut by: BTreeMap<&str, (Option<&Record>, Option<&Record>)> = BTreeMap::new();
    for r in records {
        let Some(id) = r.request_id.as_deref() else { continue };
        let e = by.entry(id).or_insert_with(|| {
            order.push(id);
            (None, None)
        });
        // A fence starts `requested`, an unfence `unfencing`.
        if matches!(r.status.as_str(), "requested" | "unfencing") {
            e.0 = Some(r);
        } else {
            e.1 = Some(r);
        }
    }
    Table {
        headers: vec!["requested", "node", "action", "result", "latency_ms", "gfs2", "request_id", "rabbit", "cluster"],
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
                    latency_of(asked, ended).map_or(String::new(), |l| l.to_string()),
                    ended.unwrap_or(first).gfs2.join(" "),
                    id.into(),
                    first.rabbit.clone(),
                    first.cluster.clone(),
                ]
            })
            .collect(),
    }
}

fn latency_of(asked: Option<&Record>, ended: Option<&Record>) -> Option<u64> {
    Some(ended?.elapsed_ms?.saturating_sub(asked?.elapsed_ms?))
}

/// Per node (or rabbit, or cluster), completed fences' latency from request to completion (the
/// agent's clock).
pub fn latency(records: &[Record], by: By) -> Table {
    let mut asked: BTreeMap<&str, &Record> = BTreeMap::new();
    let mut rows: BTreeMap<RowKey, (Vec<u64>, BTreeSet<&str>)> = BTreeMap::new();
    for r in records {
        let Some(id) = r.request_id.as_deref() else { continue };
        match r.status.as_str() {
            "requested" => {
                asked.insert(id, r);
            }
            "completed" => {
                if let Some(l) = latency_of(asked.get(id).copied(), Some(r)) {
                    let row = rows.entry(by.key(r)).or_default();
                    row.0.push(l);
                    row.1.insert(&r.rabbit);
                }
            }
            _ => {}
        }
    }
    let pct = |v: &[u64], p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1].to_string();
    Table {
        headers: vec![by.header(), "fences", "p50_ms", "p90_ms", "p99_ms", "max_ms", "rabbit", "cluster"],
        rows: rows
            .into_iter()
            .map(|((first, _, cluster), (mut v, rabbits))| {
                v.sort_unstable();
                vec![
                    first,
                    v.len().to_string(),
                    pct(&v, 0.5),
                    pct(&v, 0.9),
                    pct(&v, 0.99),
                    pct(&v, 1.0),
                    joined(&rabbits),
                    cluster,
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(node: &str, status: &str, id: &str, ms: u64, fs: &[&str]) -> Record {
        rec_on("r1", "c1", node, status, id, ms, fs)
    }

    fn rec_on(rabbit: &str, cluster: &str, node: &str, status: &str, id: &str, ms: u64, fs: &[&str]) -> Record {
        let line = serde_json::json!({"timestamp": "2026-11-25T10:00:00Z", "action": "off", "target_node": node,
            "gfs2_filesystems": fs, "status": status, "details": "a, \"b\"", "request_id": id, "elapsed_ms": ms,
            "recorder_node": rabbit, "cluster": cluster});
        Record::parse(&line.to_string()).unwrap()
    }

    #[test]
    fn site_reports_count_per_rabbit_and_cluster_and_keep_nodes_of_two_rabbits_apart() {
        let mut r = sample();
        r.push(rec_on("r2", "c2", "n1", "requested", "d", 1, &["fs9"]));
        r.push(rec_on("r2", "c2", "n1", "completed", "d", 101, &["fs9"]));
        r.push(rec_on("r3", "c2", "n7", "failed", "e", 5, &[]));
        let nodes = count(&r, By::Node);
        assert_eq!(nodes.rows.len(), 4, "{:?}", nodes.rows);
        assert_eq!(nodes.rows[1], ["n1", "1", "1", "0", "2026-11-25T10:00:00Z", "r2", "c2", "0"]);
        let rabbits = count(&r, By::Rabbit);
        assert_eq!(rabbits.headers[0], "rabbit");
        assert_eq!(rabbits.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["r1", "r2", "r3"]);
        let clusters = count(&r, By::Cluster);
        assert_eq!(clusters.rows[1], ["c2", "1", "1", "1", "2026-11-25T10:00:00Z", "r2 r3", "c2", "0"]);
        let l = latency(&r, By::Cluster);
        assert_eq!(l.rows[1], ["c2", "1", "100", "100", "100", "100", "r2", "c2"]);
        let fs = filesystems(&r);
        assert_eq!(fs.rows[2], ["fs9", "1", "n1", "2026-11-25T10:00:00Z", "r2", "c2"]);
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
        assert_eq!(count(&r, By::Node).rows[0], ["n1", "2", "2", "0", "2026-11-25T10:00:00Z", "r1", "c1", "0"]);
        assert_eq!(count(&r, By::Node).rows[1][3], "1");
        let fs = filesystems(&r);
        assert_eq!(fs.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["fs1", "fs2"]);
        assert_eq!(fs.rows[0][1], "2");
        let t = timeline(&r);
        assert_eq!(t.rows[1][3], "failed");
        assert_eq!(t.rows[0][4], "40");
        let l = latency(&r, By::Node);
        assert_eq!(l.rows, [["n1", "2", "10", "40", "40", "40", "r1", "c1"]]);
    }

    #[test]
    fn an_unfence_counts_as_an_unfence_and_shows_in_the_timeline_but_never_as_a_fence() {
        let mut r = sample();
        let unfence = |status: &str| {
            let line = serde_json::json!({"timestamp": "2026-11-25T11:00:00Z", "action": "unfence", "target_node": "n1",
                "gfs2_filesystems": [], "status": status, "request_id": "u", "recorder_node": "r1", "cluster": "c1"});
            Record::parse(&line.to_string()).unwrap()
        };
        r.push(unfence("unfencing"));
        r.push(unfence("unfenced"));
        assert_eq!(count(&r, By::Node).rows[0], ["n1", "2", "2", "0", "2026-11-25T11:00:00Z", "r1", "c1", "1"]);
        let t = timeline(&r);
        let row = t.rows.iter().find(|row| row[6] == "u").unwrap();
        assert_eq!(
            (row[0].as_str(), row[2].as_str(), row[3].as_str()),
            ("2026-11-25T11:00:00Z", "unfence", "unfenced")
        );
        assert_eq!(latency(&r, By::Node).rows[0][1], "2", "no latency of its own");
        assert_eq!(filesystems(&r).rows[0][1], "2");
    }

    #[test]
    fn formats_render_tables_json_and_quoted_csv() {
        let t = list(&sample()[..1]);
        assert!(t.render(Format::Table).starts_with("TIME"));
        let csv = t.render(Format::Csv);
        assert!(csv.lines().nth(1).unwrap().ends_with(",\"a, \"\"b\"\"\",r1,c1"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&t.render(Format::Json)).unwrap();
        assert_eq!(json[0]["node"], "n1");
        assert_eq!(Table { headers: vec!["x"], rows: vec![] }.render(Format::Table), "(no matching events)\n");
    }
}
