//! Reading the fence event records: `fence-events-detailed.jsonl` and its rotated copies in a log
//! directory, each record's rabbit (`recorder_node`) and cluster, and the filters the events CLI
//! applies. No output here.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// The detailed log's file name; rotated copies start with it.
pub const DETAILED: &str = "fence-events-detailed.jsonl";

/// One record, with the fields the CLI uses and the raw JSON.
#[derive(Debug, Clone)]
pub struct Record {
    /// When (UTC).
    pub time: Option<DateTime<Utc>>,
    /// The node: Pacemaker's name when recorded, else the plug.
    pub node: String,
    /// The action.
    pub action: String,
    /// `requested`, `completed`, `failed`.
    pub status: String,
    /// GFS2 file systems (markers included).
    pub gfs2: Vec<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Milliseconds from the agent's start.
    pub elapsed_ms: Option<u64>,
    /// The rabbit that recorded it (`recorder_node`).
    pub rabbit: String,
    /// Its Pacemaker cluster (`cluster`; empty when the record names none).
    pub cluster: String,
    /// The whole record.
    pub raw: Value,
}

impl Record {
    /// A record from a JSONL line (`None` for a line that is not a JSON object).
    pub fn parse(line: &str) -> Option<Record> {
        let raw: Value = serde_json::from_str(line).ok()?;
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        let time = s("timestamp").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc));
        Some(Record {
            time,
            node: s("nodename").or_else(|| s("target_node")).unwrap_or_default(),
            action: s("action").unwrap_or_default(),
            status: s("status").unwrap_or_default(),
            gfs2: raw
                .get("gfs2_filesystems")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            request_id: s("request_id"),
            elapsed_ms: raw.get("elapsed_ms").and_then(Value::as_u64),
            rabbit: s("recorder_node").unwrap_or_default(),
            cluster: s("cluster").unwrap_or_default(),
            raw,
        })
    }

    /// The real file systems (without the original markers).
    pub fn filesystems(&self) -> impl Iterator<Item = &String> {
        self.gfs2.iter().filter(|f| !matches!(f.as_str(), "none-detected" | "discovery-disabled"))
    }
}

/// The detailed log and its rotated copies in `dir` (gzip-compressed ones included), oldest first
/// by rotation order (`.N` and `.N.gz`: higher is older; other suffixes such as dates sort by name).
/// Copies compressed otherwise (xz, bzip2, zstd) are listed in the second value: they are not read.
pub fn log_files(dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut plain: Vec<(i64, String, PathBuf)> = Vec::new();
    let mut compressed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = name.strip_prefix(DETAILED) else { continue };
        if suffix == ".lock" || !entry.file_type()?.is_file() {
            continue;
        }
        if [".xz", ".bz2", ".zst"].iter().any(|z| suffix.ends_with(z)) {
            compressed.push(entry.path());
            continue;
        }
        // "" (current) is newest; ".1" newer than ".2"; dated copies by name.
        let number = suffix.strip_suffix(".gz").unwrap_or(suffix);
        let rank = match number.strip_prefix('.').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => -n,
            None if suffix.is_empty() => i64::MAX,
            None => 0,
        };
        plain.push((rank, name, entry.path()));
    }
    plain.sort();
    Ok((plain.into_iter().map(|p| p.2).collect(), compressed))
}

/// The actions records carry: the agent's and Pacemaker's alerts' (`off`, `on`, `reboot`, `status`)
/// and the way back's (`unfence`).
pub const ACTIONS: [&str; 5] = ["off", "on", "reboot", "status", "unfence"];
/// The fence actions: what `count`, `latency` and `filesystems` report unless asked for others
/// (`status` and `on` take no node out), with the unfences that undo them.
pub const FENCE_ACTIONS: [&str; 3] = ["off", "reboot", "unfence"];
/// The statuses records carry.
pub const STATUSES: [&str; 5] = ["requested", "completed", "failed", "unfencing", "unfenced"];

/// Which records to keep. A list filter keeps a record that matches any of its values (none: any).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Nodes (Pacemaker name or plug).
    pub node: Vec<String>,
    /// Actions.
    pub action: Vec<String>,
    /// Statuses.
    pub status: Vec<String>,
    /// File systems the record names.
    pub fs: Vec<String>,
    /// The rabbits that recorded it.
    pub rabbit: Vec<String>,
    /// Its clusters.
    pub cluster: Vec<String>,
}

fn any_of(want: &[String], have: &str) -> bool {
    want.is_empty() || want.iter().any(|w| w.eq_ignore_ascii_case(have))
}

impl Filter {
    /// Whether `r` passes every part of the filter.
    pub fn keeps(&self, r: &Record) -> bool {
        self.keeps_time(r) && self.keeps_action(r) && self.keeps_status(r) && self.keeps_names(r)
    }

    /// Whether `r`'s time is in the window.
    pub fn keeps_time(&self, r: &Record) -> bool {
        self.since.is_none_or(|s| r.time.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| r.time.is_some_and(|t| t < u))
    }

    /// Whether `r`'s action is one asked for.
    pub fn keeps_action(&self, r: &Record) -> bool {
        any_of(&self.action, &r.action)
    }

    /// Whether `r`'s status is one asked for.
    pub fn keeps_status(&self, r: &Record) -> bool {
        any_of(&self.status, &r.status)
    }

    /// Whether `r` names a node, file system, rabbit and cluster asked for.
    pub fn keeps_names(&self, r: &Record) -> bool {
        let target = r.raw.get("target_node").and_then(Value::as_str).unwrap_or_default();
        (any_of(&self.node, &r.node) || any_of(&self.node, target))
            && (self.fs.is_empty() || r.gfs2.iter().any(|g| self.fs.contains(g)))
            && any_of(&self.rabbit, &r.rabbit)
            && any_of(&self.cluster, &r.cluster)
    }
}

/// Parses `--since`/`--until`: `90s`, `30m`, `12h`, `7d`, `2w` ago, a date (`2026-11-25`, UTC
/// midnight) or an RFC 3339 time.
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().map_err(|_| format!("{s:?} is not a duration (90s, 30m, 12h, 7d, 2w), a date or a time"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d, w)")),
    };
    Ok(now - chrono::Duration::seconds(n * secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_durations_dates_and_instants() {
        let now = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_time("1h", now).unwrap().to_rfc3339(), "2026-11-25T11:00:00+00:00");
        assert_eq!(parse_time("2d", now).unwrap().to_rfc3339(), "2026-11-23T12:00:00+00:00");
        assert_eq!(parse_time("2026-11-20", now).unwrap().to_rfc3339(), "2026-11-20T00:00:00+00:00");
        assert!(parse_time("soon", now).is_err());
        assert!(parse_time("5y", now).unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn rotated_copies_are_read_oldest_first_and_compressed_ones_listed() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            DETAILED,
            "fence-events-detailed.jsonl.1",
            "fence-events-detailed.jsonl.2",
            "fence-events-detailed.jsonl.3.gz",
            "fence-events-detailed.jsonl.4.xz",
            "fence-events-detailed.jsonl.lock",
            "other.log",
        ] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        let (plain, compressed) = log_files(d.path()).unwrap();
        let names: Vec<String> = plain.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            names,
            [
                "fence-events-detailed.jsonl.3.gz",
                "fence-events-detailed.jsonl.2",
                "fence-events-detailed.jsonl.1",
                DETAILED
            ]
        );
        assert_eq!(compressed.len(), 1);
    }
}
