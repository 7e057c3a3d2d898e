//! The events CLI's reports as tables (pure): list, count by node, rabbit or cluster, file systems,
//! timeline, latency. Every row says which rabbit and cluster it is from; a column added later goes
//! last, so that scripts reading the earlier ones by position keep working. The reports but `list`
//! are made of fences ([`super::fences`]: paired, then filtered by the caller); `count`, `latency`
//! and `filesystems` are given the fence actions only unless asked for others. [`Table::render`]
//! prints a table as aligned text (fitted to a terminal's width), typed JSON or CSV.

use std::collections::{BTreeMap, BTreeSet};

use super::fences::Fence;
use super::records::Record;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people (cut to the terminal's width when printed to one).
    Table,
    /// A JSON array of objects, numbers as numbers and lists as arrays.
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

    /// A grouped table's columns: the group, `middle`, then `rabbit` and `cluster` less the one grouped
    /// by (a column twice would be one JSON key twice), then `later` (a column added after those, last
    /// so that the earlier keep their places).
    fn columns(self, middle: &[Column], later: Column) -> Vec<Column> {
        let trailing =
            [Column::list("rabbit"), Column::text("cluster")].into_iter().filter(|c| c.name != self.header());
        std::iter::once(Column::text(self.header()))
            .chain(middle.iter().copied())
            .chain(trailing)
            .chain([later])
            .collect()
    }

    /// A grouped row, in [`By::columns`]' order.
    fn row(self, first: String, middle: Vec<String>, rabbits: String, cluster: String, later: String) -> Vec<String> {
        let trailing = match self {
            By::Node => vec![rabbits, cluster],
            By::Rabbit => vec![cluster],
            By::Cluster => vec![rabbits],
        };
        std::iter::once(first).chain(middle).chain(trailing).chain([later]).collect()
    }
}

/// The values of a set, in order and space-separated, the empty one left out.
fn joined(set: &BTreeSet<&str>) -> String {
    set.iter().copied().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// What a column holds: how JSON types it and how a table may shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, printed whole.
    Text,
    /// Free text a table cuts to fit the terminal.
    Elastic,
    /// A whole number (empty: none, JSON null).
    Number,
    /// Space-separated values (a JSON array); a table cuts it to fit.
    List,
    /// A request id (a table shows its first 8 characters, enough to find it, under `ID`).
    Id,
}

/// A named column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name (a CSV header, a JSON key; upper-cased over a table).
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
}

impl Column {
    /// A text column.
    pub fn text(name: &'static str) -> Column {
        Column { name, kind: Kind::Text }
    }
    /// A free-text column.
    pub fn elastic(name: &'static str) -> Column {
        Column { name, kind: Kind::Elastic }
    }
    /// A number column.
    pub fn number(name: &'static str) -> Column {
        Column { name, kind: Kind::Number }
    }
    /// A list column.
    pub fn list(name: &'static str) -> Column {
        Column { name, kind: Kind::List }
    }
    /// A request id column.
    pub fn id(name: &'static str) -> Column {
        Column { name, kind: Kind::Id }
    }
}

/// Rows under columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The columns.
    pub columns: Vec<Column>,
    /// Rows, each as long as `columns`, each cell as a table prints it whole.
    pub rows: Vec<Vec<String>>,
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The least a cut column keeps.
const MIN_CUT: usize = 6;

/// `s` in at most `w` characters, a cut one ending in `…`.
fn cut(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        s.chars().take(w.saturating_sub(1)).chain(['…']).collect()
    }
}

impl Table {
    fn json_value(kind: Kind, cell: &str) -> serde_json::Value {
        match kind {
            Kind::Number => cell.parse::<u64>().map_or(serde_json::Value::Null, Into::into),
            Kind::List => cell.split_whitespace().collect::<Vec<_>>().into(),
            Kind::Text | Kind::Elastic | Kind::Id => cell.into(),
        }
    }

    /// The table in `format`, ending with a newline. `width`: the terminal's columns, which a table
    /// fits by cutting its free-text and list columns (none: printed whole, as into a pipe).
    pub fn render(&self, format: Format, width: Option<usize>) -> String {
        match format {
            Format::Json => {
                let rows: Vec<serde_json::Map<String, serde_json::Value>> = self
                    .rows
                    .iter()
                    .map(|r| {
                        self.columns
                            .iter()
                            .zip(r)
                            .map(|(c, v)| (c.name.to_string(), Self::json_value(c.kind, v)))
                            .collect()
                    })
                    .collect();
                format!("{}\n", serde_json::to_string_pretty(&rows).expect("rows serialise"))
            }
            Format::Csv => std::iter::once(self.columns.iter().map(|c| csv_field(c.name)).collect::<Vec<_>>())
                .chain(self.rows.iter().map(|r| r.iter().map(|v| csv_field(v)).collect()))
                .map(|r| format!("{}\n", r.join(",")))
                .collect(),
            Format::Table => self.aligned(width),
        }
    }

    /// Aligned columns: ids shortened; a rabbit or cluster column with one value in every row said
    /// once below instead; free text and lists cut, widest first, until the rows fit `width`.
    fn aligned(&self, width: Option<usize>) -> String {
        if self.rows.is_empty() {
            return "(no matching events)\n".into();
        }
        let mut said = Vec::new();
        let keep: Vec<usize> = (0..self.columns.len())
            .filter(|&i| {
                let c = self.columns[i];
                let first = &self.rows[0][i];
                let constant =
                    matches!(c.name, "rabbit" | "cluster") && i > 0 && self.rows.iter().all(|r| &r[i] == first);
                if constant && !first.is_empty() {
                    said.push(format!("{} {first}", c.name));
                }
                !constant
            })
            .collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                keep.iter()
                    .map(|&i| match self.columns[i].kind {
                        Kind::Id => r[i].chars().take(8).collect(),
                        _ => r[i].clone(),
                    })
                    .collect()
            })
            .collect();
        // An id column, shortened, is headed `ID`.
        let headers: Vec<String> = keep
            .iter()
            .map(|&i| match self.columns[i].kind {
                Kind::Id => "ID".to_string(),
                _ => self.columns[i].name.to_uppercase(),
            })
            .collect();
        let mut widths: Vec<usize> = (0..keep.len())
            .map(|j| cells.iter().map(|r| r[j].chars().count()).chain([headers[j].len()]).max().unwrap_or(0))
            .collect();
        if let Some(width) = width {
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * w.len().saturating_sub(1);
            while total(&widths) > width {
                let cuttable = (0..keep.len())
                    .filter(|&j| matches!(self.columns[keep[j]].kind, Kind::Elastic | Kind::List))
                    .filter(|&j| widths[j] > MIN_CUT.max(headers[j].len()))
                    .max_by_key(|&j| widths[j]);
                let Some(j) = cuttable else { break };
                widths[j] -= 1;
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{:<w$}", cut(c, *w))).collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&headers);
        for r in &cells {
            out += &line(r);
        }
        if !said.is_empty() {
            out += &format!("(all from {})\n", said.join(", "));
        }
        out
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
        columns: vec![
            Column::text("time"),
            Column::text("node"),
            Column::text("action"),
            Column::text("status"),
            Column::list("gfs2"),
            Column::id("request_id"),
            Column::elastic("details"),
            Column::text("rabbit"),
            Column::text("cluster"),
        ],
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

/// Fences per node (or rabbit, or cluster): how many were requested, how they ended, the last.
pub fn count(fences: &[Fence], by: By) -> Table {
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
    for f in fences {
        let first = f.first();
        let c = rows.entry(by.key(first)).or_default();
        // An unfence counts as an unfence, never as a fence request or its end.
        if first.action == "unfence" {
            c.unfenced += u64::from(f.ended.is_some_and(|e| e.status == "unfenced"));
        } else {
            c.requested += u64::from(f.asked.is_some());
            match f.ended.map(|e| e.status.as_str()) {
                Some("completed") => c.completed += 1,
                Some("failed") => c.failed += 1,
                _ => {}
            }
        }
        for r in f.asked.iter().chain(&f.ended) {
            c.last = c.last.clone().max(time(r));
            c.rabbits.insert(&r.rabbit);
        }
    }
    let middle =
        [Column::number("requested"), Column::number("completed"), Column::number("failed"), Column::text("last")];
    Table {
        // `unfenced` came later than the rabbit and cluster.
        columns: by.columns(&middle, Column::number("unfenced")),
        rows: rows
            .into_iter()
            .map(|((first, _, cluster), c)| {
                let middle = vec![c.requested.to_string(), c.completed.to_string(), c.failed.to_string(), c.last];
                by.row(first, middle, joined(&c.rabbits), cluster, c.unfenced.to_string())
            })
            .collect(),
    }
}

/// Every GFS2 file system named by a completed fence: how many fences, which nodes, the last time.
pub fn filesystems(fences: &[Fence]) -> Table {
    #[derive(Default)]
    struct F<'a> {
        fences: u64,
        nodes: BTreeSet<&'a str>,
        last: String,
        rabbits: BTreeSet<&'a str>,
        clusters: BTreeSet<&'a str>,
    }
    let mut by: BTreeMap<&str, F> = BTreeMap::new();
    for r in fences.iter().filter_map(|f| f.ended).filter(|r| r.status == "completed") {
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
        columns: vec![
            Column::text("filesystem"),
            Column::number("fences"),
            Column::list("nodes"),
            Column::text("last"),
            Column::list("rabbit"),
            Column::list("cluster"),
        ],
        rows: by
            .into_iter()
            .map(|(fs, f)| {
                vec![fs.into(), f.fences.to_string(), joined(&f.nodes), f.last, joined(&f.rabbits), joined(&f.clusters)]
            })
            .collect(),
    }
}

/// One row per fence (and per unfence), in time order: when asked, how it ended, how long it took.
/// A fence refused before any request, or recorded from Pacemaker's alerts, is a row of its own
/// (no request id, no latency).
pub fn timeline(fences: &[Fence]) -> Table {
    Table {
        columns: vec![
            Column::text("requested"),
            Column::text("node"),
            Column::text("action"),
            Column::text("result"),
            Column::number("latency_ms"),
            Column::list("gfs2"),
            Column::id("request_id"),
            Column::text("rabbit"),
            Column::text("cluster"),
        ],
        rows: fences
            .iter()
            .map(|f| {
                let first = f.first();
                vec![
                    time(first),
                    first.node.clone(),
                    first.action.clone(),
                    f.ended.map_or("pending or lost".into(), |e| {
                        let outcome = field(e, "outcome");
                        let source = field(e, "source");
                        match (outcome.is_empty(), source.is_empty()) {
                            (false, _) => format!("{} ({outcome})", e.status),
                            (true, false) => format!("{} ({source})", e.status),
                            (true, true) => e.status.clone(),
                        }
                    }),
                    f.latency_ms().map_or(String::new(), |l| l.to_string()),
                    f.ended.unwrap_or(first).gfs2.join(" "),
                    first.request_id.clone().unwrap_or_default(),
                    first.rabbit.clone(),
                    first.cluster.clone(),
                ]
            })
            .collect(),
    }
}

/// Per node (or rabbit, or cluster), the latency from request to end of the fences that ended
/// (the agent's clock), completed or failed: a fence that failed at its timeout counts too, and
/// `failed` says how many did.
pub fn latency(fences: &[Fence], by: By) -> Table {
    let mut rows: BTreeMap<RowKey, (Vec<u64>, u64, BTreeSet<&str>)> = BTreeMap::new();
    for f in fences {
        let Some(ended) = f.ended.filter(|e| matches!(e.status.as_str(), "completed" | "failed")) else { continue };
        let Some(l) = f.latency_ms() else { continue };
        let row = rows.entry(by.key(ended)).or_default();
        row.0.push(l);
        row.1 += u64::from(ended.status == "failed");
        row.2.insert(&ended.rabbit);
    }
    let pct = |v: &[u64], p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1].to_string();
    let middle = [
        Column::number("fences"),
        Column::number("p50_ms"),
        Column::number("p90_ms"),
        Column::number("p99_ms"),
        Column::number("max_ms"),
    ];
    Table {
        // `failed` came later than the rabbit and cluster.
        columns: by.columns(&middle, Column::number("failed")),
        rows: rows
            .into_iter()
            .map(|((first, _, cluster), (mut v, failed, rabbits))| {
                v.sort_unstable();
                let middle = vec![v.len().to_string(), pct(&v, 0.5), pct(&v, 0.9), pct(&v, 0.99), pct(&v, 1.0)];
                by.row(first, middle, joined(&rabbits), cluster, failed.to_string())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fences::pair;
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
        let f = pair(&r);
        let nodes = count(&f, By::Node);
        assert_eq!(nodes.rows.len(), 4, "{:?}", nodes.rows);
        assert_eq!(nodes.rows[1], ["n1", "1", "1", "0", "2026-11-25T10:00:00Z", "r2", "c2", "0"]);
        let rabbits = count(&f, By::Rabbit);
        let names: Vec<&str> = rabbits.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["rabbit", "requested", "completed", "failed", "last", "cluster", "unfenced"],
            "no column twice"
        );
        assert_eq!(rabbits.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["r1", "r2", "r3"]);
        let clusters = count(&f, By::Cluster);
        assert_eq!(clusters.rows[1], ["c2", "1", "1", "1", "2026-11-25T10:00:00Z", "r2 r3", "0"]);
        let l = latency(&f, By::Cluster);
        assert_eq!(l.rows[1], ["c2", "1", "100", "100", "100", "100", "r2", "0"]);
        let fs = filesystems(&f);
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
        let f = pair(&r);
        assert_eq!(count(&f, By::Node).rows[0], ["n1", "2", "2", "0", "2026-11-25T10:00:00Z", "r1", "c1", "0"]);
        assert_eq!(count(&f, By::Node).rows[1][3], "1");
        let fs = filesystems(&f);
        assert_eq!(fs.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["fs1", "fs2"]);
        assert_eq!(fs.rows[0][1], "2");
        let t = timeline(&f);
        assert_eq!(t.rows[1][3], "failed");
        assert_eq!(t.rows[0][4], "40");
        let l = latency(&f, By::Node);
        assert_eq!(l.rows[0], ["n1", "2", "10", "40", "40", "40", "r1", "c1", "0"]);
        assert_eq!(
            l.rows[1],
            ["n2", "1", "900", "900", "900", "900", "r1", "c1", "1"],
            "a failed fence has a latency too"
        );
    }

    #[test]
    fn a_fence_without_a_request_and_an_alerts_record_are_rows_of_the_timeline() {
        let mut r = sample();
        let line = |source: Option<&str>| {
            let mut v = serde_json::json!({"timestamp": "2026-11-25T12:00:00Z", "action": "reboot", "target_node": "n3",
                "status": "failed", "recorder_node": "r1", "cluster": "c1"});
            if let Some(s) = source {
                v["source"] = s.into();
            }
            Record::parse(&v.to_string()).unwrap()
        };
        r.push(line(None));
        r.push(line(Some("pacemaker-alert")));
        let t = timeline(&pair(&r));
        let last: Vec<&str> = t.rows.iter().rev().take(2).map(|row| row[3].as_str()).collect();
        assert_eq!(last, ["failed (pacemaker-alert)", "failed"]);
        assert_eq!(count(&pair(&r), By::Node).rows[2][..4], ["n3", "0", "0", "2"]);
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
        let f = pair(&r);
        assert_eq!(count(&f, By::Node).rows[0], ["n1", "2", "2", "0", "2026-11-25T11:00:00Z", "r1", "c1", "1"]);
        let t = timeline(&f);
        let row = t.rows.iter().find(|row| row[6] == "u").unwrap();
        assert_eq!(
            (row[0].as_str(), row[2].as_str(), row[3].as_str()),
            ("2026-11-25T11:00:00Z", "unfence", "unfenced")
        );
        assert_eq!(latency(&f, By::Node).rows[0][1], "2", "no latency of its own");
        assert_eq!(filesystems(&f).rows[0][1], "2");
    }

    #[test]
    fn formats_render_tables_json_typed_and_quoted_csv() {
        let t = list(&sample()[..1]);
        assert!(t.render(Format::Table, None).starts_with("TIME"));
        let csv = t.render(Format::Csv, None);
        assert!(csv.lines().nth(1).unwrap().ends_with(",\"a, \"\"b\"\"\",r1,c1"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&t.render(Format::Json, None)).unwrap();
        assert_eq!(json[0]["node"], "n1");
        assert_eq!(json[0]["gfs2"], serde_json::json!(["fs1"]), "a list is an array");
        let counted: serde_json::Value =
            serde_json::from_str(&count(&pair(&sample()), By::Node).render(Format::Json, None)).unwrap();
        assert_eq!(counted[0]["requested"], 2, "a number is a number");
        let empty = Table { columns: vec![Column::text("x")], rows: vec![] };
        assert_eq!(empty.render(Format::Table, None), "(no matching events)\n");
    }

    #[test]
    fn a_table_fits_the_terminal_by_cutting_free_text_and_says_a_single_rabbit_once() {
        let mut r = sample();
        let long = serde_json::json!({"timestamp": "2026-11-25T10:00:00Z", "action": "reboot", "target_node": "compute-12",
            "gfs2_filesystems": ["/mnt/gfs2/scratch-a", "/mnt/gfs2/scratch-b"], "status": "failed",
            "details": "x".repeat(450), "request_id": "0123456789abcdef", "recorder_node": "r1", "cluster": "c1"});
        r.push(Record::parse(&long.to_string()).unwrap());
        let out = list(&r).render(Format::Table, Some(80));
        assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
        assert!(out.contains("01234567 ") && !out.contains("0123456789"), "ids shortened: {out}");
        assert!(out.ends_with("(all from rabbit r1, cluster c1)\n"), "{out}");
        assert!(list(&r).render(Format::Table, None).contains(&"x".repeat(450)), "whole into a pipe");
    }
}
