//! `chart`: what `timeline` and `latency` report, drawn where a picture reads better than a table,
//! as an SVG document on stdout (plotters' SVG backend: no native library, no font files; text is
//! left to the viewer's fonts).
//!
//! - timeline: one row per node, a mark per fence at the time of its request, coloured by how it
//!   ended (completed, failed, still pending or lost), so that a burst across nodes or a node fenced
//!   again and again stands out.
//! - latency: how many fences took how long from request to end, in buckets from a tenth of a second
//!   to minutes, completed and failed stacked.
//!
//! The fences are those the command's filters keep (paired, then filtered, as the tables are).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::fences::Fence;

/// How a fence ended, as the charts colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Completed,
    Failed,
    Open,
}

impl End {
    fn of(f: &Fence) -> End {
        match f.ended.map(|e| e.status.as_str()) {
            Some("completed" | "unfenced") => End::Completed,
            Some(_) => End::Failed,
            None => End::Open,
        }
    }

    fn colour(self) -> RGBColor {
        match self {
            End::Completed => RGBColor(0x2e, 0x7d, 0x32),
            End::Failed => RGBColor(0xc6, 0x28, 0x28),
            End::Open => RGBColor(0x75, 0x75, 0x75),
        }
    }

    fn label(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Failed => "failed",
            End::Open => "pending or lost",
        }
    }
}

const WIDTH: u32 = 1000;

/// The row or column a mesh position stands on (the charts place their categories, nodes or buckets,
/// at whole coordinates; label positions between them get no label).
fn index_at(v: f64) -> Option<usize> {
    let i = v.round();
    ((v - i).abs() < 0.01 && i >= 0.0).then_some(i as usize)
}

/// A document saying there is nothing to draw, rather than an empty frame.
fn nothing(title: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 120)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        root.draw_text("no fence matches the filters", &("sans-serif", 16).into_text_style(&root), (20, 60))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The timeline: nodes down the side, time across, a mark per fence.
pub fn timeline(fences: &[Fence]) -> Result<String, String> {
    let marks: Vec<(DateTime<Utc>, &str, End)> =
        fences.iter().filter_map(|f| Some((f.first().time?, f.first().node.as_str(), End::of(f)))).collect();
    let title = "Fences per node over time";
    let (Some(first), Some(last)) = (marks.iter().map(|m| m.0).min(), marks.iter().map(|m| m.0).max()) else {
        return nothing(title);
    };
    let nodes: Vec<&str> = marks.iter().map(|m| m.1).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let row = |node: &str| nodes.iter().position(|n| *n == node).unwrap_or_default() as f64;
    // A span of at least a minute, padded by a twentieth each side, so a lone fence is not on an edge.
    let (from, to) = (first.timestamp() as f64, last.timestamp() as f64);
    let pad = ((to - from) / 20.0).max(30.0);
    let x = (from - pad)..(to + pad);
    let height = 140 + 30 * nodes.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let longest = nodes.iter().map(|n| n.chars().count()).max().unwrap_or(4) as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(20 + 8 * longest.min(40))
            .build_cartesian_2d(x, -0.5..(nodes.len() as f64 - 0.5))
            .map_err(|e| e.to_string())?;
        // Labels as fine as the span needs: seconds within two hours, minutes within three days.
        let span = to - from + 2.0 * pad;
        let shape = if span < 7200.0 {
            "%H:%M:%S"
        } else if span < 3.0 * 86400.0 {
            "%m-%d %H:%M"
        } else {
            "%Y-%m-%d"
        };
        let stamp = |t: &f64| {
            DateTime::<Utc>::from_timestamp(*t as i64, 0).map_or(String::new(), |d| d.format(shape).to_string())
        };
        let node_at = |y: &f64| index_at(*y).and_then(|i| nodes.get(i)).map_or(String::new(), |n| n.to_string());
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&stamp)
            .y_labels(nodes.len() * 2 + 1)
            .y_label_formatter(&node_at)
            .x_desc("requested (UTC)")
            .disable_y_mesh()
            .draw()
            .map_err(|e| e.to_string())?;
        for end in [End::Completed, End::Failed, End::Open] {
            let colour = end.colour();
            let points: Vec<(f64, f64)> =
                marks.iter().filter(|m| m.2 == end).map(|m| (m.0.timestamp() as f64, row(m.1))).collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 5, colour.filled())))
                .map_err(|e| e.to_string())?
                .label(end.label())
                .legend(move |(x, y)| Circle::new((x + 6, y), 5, colour.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Upper bounds (seconds) of the latency buckets; the last catches the rest.
const BUCKETS: [f64; 11] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

fn bucket_label(i: usize) -> String {
    match BUCKETS.get(i) {
        Some(b) => format!("≤{b}s"),
        None => format!(">{}s", BUCKETS[BUCKETS.len() - 1]),
    }
}

/// The latency histogram: fences per bucket of request-to-end time, completed and failed stacked.
pub fn latency(fences: &[Fence]) -> Result<String, String> {
    let mut counts: BTreeMap<(usize, End), u32> = BTreeMap::new();
    for f in fences {
        let (Some(l), end @ (End::Completed | End::Failed)) = (f.latency_ms(), End::of(f)) else { continue };
        let secs = l as f64 / 1000.0;
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        *counts.entry((i, end)).or_default() += 1;
    }
    let title = "Fence latency, request to end";
    if counts.is_empty() {
        return nothing(title);
    }
    let n = BUCKETS.len() + 1;
    let top = (0..n)
        .map(|i| counts.get(&(i, End::Completed)).unwrap_or(&0) + counts.get(&(i, End::Failed)).unwrap_or(&0))
        .max()
        .unwrap_or(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0u32..(top + top / 10 + 1))
            .map_err(|e| e.to_string())?;
        let bucket_at = |x: &f64| index_at(*x).map_or(String::new(), bucket_label);
        chart
            .configure_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&bucket_at)
            .y_label_formatter(&|c: &u32| c.to_string())
            .x_desc("time from request to end")
            .y_desc("fences")
            .disable_x_mesh()
            .draw()
            .map_err(|e| e.to_string())?;
        for end in [End::Completed, End::Failed] {
            let colour = end.colour();
            let bars: Vec<Rectangle<(f64, u32)>> = (0..n)
                .filter_map(|i| {
                    let below = if end == End::Failed { *counts.get(&(i, End::Completed)).unwrap_or(&0) } else { 0 };
                    let c = *counts.get(&(i, end))?;
                    Some(Rectangle::new([(i as f64 - 0.4, below), (i as f64 + 0.4, below + c)], colour.filled()))
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            chart
                .draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(end.label())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
