//! The audit trail end to end: real agents append to one hash chain (anchored to a syslog socket),
//! `gfs2-fence-events verify` accepts it across a rotation and finds the first broken link after an
//! edit, a deletion, or a rewrite of the whole chain (caught by the anchors); the reports answer
//! from the same records.

use std::os::unix::net::UnixDatagram;

use harness::process::*;

fn fence(w: &World, node: &str) {
    assert_exit(&w.agent(&format!("action=off\nport={node}\nnodename={node}\n")), 0);
}

fn drain_anchors(sock: &UnixDatagram) -> String {
    sock.set_nonblocking(true).unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = sock.recv(&mut buf) {
        out += &String::from_utf8_lossy(&buf[..n]);
        out.push('\n');
    }
    out
}

#[test]
fn fences_make_one_verified_chain_and_tampering_is_the_first_broken_link() {
    let mut w = World::new();
    let sock_path = w.dir.path().join("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    w.agent_env.push(("GFS2_FENCE_AUDIT_SOCKET".into(), sock_path.display().to_string()));
    let _watcher = w.watcher("w1", &[]);
    for node in ["c1", "c2", "c3"] {
        fence(&w, node);
    }
    let (code, out) = events(&w, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 6 chained records (seq 1 to 6) in 1 files"), "{out}");

    // logrotate (create): the chain goes on in the new file.
    let jsonl = w.logs.join("fence-events-detailed.jsonl");
    let rotated = w.logs.join("fence-events-detailed.jsonl.1");
    std::fs::rename(&jsonl, &rotated).unwrap();
    fence(&w, "c4");
    let anchors = w.dir.path().join("anchors.txt");
    std::fs::write(&anchors, drain_anchors(&sock)).unwrap();
    let anchors_arg = anchors.display().to_string();
    let (code, out) = events(&w, &["verify", "--anchors", &anchors_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 chained records (seq 1 to 8) in 2 files") && out.contains("8 anchors checked"), "{out}");

    // The reports read both files.
    let (_, count) = events(&w, &["--format", "json", "count"]);
    let count: serde_json::Value = serde_json::from_str(&count).unwrap();
    assert_eq!(count.as_array().unwrap().len(), 4);
    let (_, latency) = events(&w, &["--format", "csv", "latency", "--node", "c4"]);
    assert!(latency.starts_with("node,fences,p50_ms") && latency.contains("\nc4,1,"), "{latency}");
    let (_, list) = events(&w, &["list", "--status", "completed", "--since", "1h"]);
    assert_eq!(list.lines().count(), 6, "a header, four fences, the one rabbit said once: {list}");
    assert!(list.lines().last().unwrap().starts_with("(all from rabbit "), "{list}");

    // logrotate compresses older copies: verify reads them as they are.
    let gz = w.logs.join("fence-events-detailed.jsonl.2.gz");
    let status = std::process::Command::new("gzip").arg("-c").arg(&rotated).output().unwrap();
    std::fs::write(&gz, status.stdout).unwrap();
    let plain_copy = std::fs::read(&rotated).unwrap();
    std::fs::remove_file(&rotated).unwrap();
    let (code, out) = events(&w, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 chained records (seq 1 to 8) in 2 files"), "{out}");
    std::fs::remove_file(&gz).unwrap();
    std::fs::write(&rotated, plain_copy).unwrap();

    let original = std::fs::read_to_string(&rotated).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    let put = |ls: &[&str]| std::fs::write(&rotated, ls.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();

    // An edited record.
    let edited = lines[2].replace("\"c2\"", "\"c9\"");
    assert_ne!(edited, lines[2]);
    put(&[lines[0], lines[1], &edited, lines[3], lines[4], lines[5]]);
    let (code, out) = events(&w, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN: ") && out.contains(".jsonl.1:3: record seq 3 was edited"), "{out}");

    // A deleted record.
    put(&[lines[0], lines[1], lines[3], lines[4], lines[5]]);
    let (code, out) = events(&w, &["verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("records seq 3 to 3 are missing"), "{out}");

    // The whole chain rewritten consistently (a local root's forgery): only the anchors tell.
    let mut end = ha::audit::Link::genesis();
    let forged: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut m: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&l.replace("c2", "c9")).unwrap();
            end = ha::audit::seal(&mut m, &end);
            serde_json::to_string(&m).unwrap()
        })
        .collect();
    let current = std::fs::read_to_string(&jsonl).unwrap();
    let mut m: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(current.lines().next().unwrap()).unwrap();
    ha::audit::seal(&mut m, &end);
    let second: Vec<String> = current.lines().skip(1).map(str::to_string).collect();
    std::fs::write(&jsonl, format!("{}\n{}\n", serde_json::to_string(&m).unwrap(), second.join("\n"))).unwrap();
    put(&forged.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out) = events(&w, &["verify"]);
    assert!(code == 1 && out.contains("does not link"), "the second file still links to the old chain: {out}");
    let (code, out) = events(&w, &["verify", "--file", &rotated.display().to_string()]);
    assert_eq!(code, 0, "a forged file is self-consistent on its own: {out}");
    let (code, out) = events(&w, &["verify", "--file", &rotated.display().to_string(), "--anchors", &anchors_arg]);
    assert_eq!(code, 1);
    assert!(out.contains("differs from its journal anchor"), "{out}");
}

#[test]
fn reports_pair_then_filter_count_only_fences_and_refuse_what_no_record_carries() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    w.behave("bad", "fail");
    fence(&w, "c1");
    assert_exit(&w.agent("action=status\nport=c1\n"), 0);
    assert_exit(&w.agent("action=off\nport=bad\nnodename=bad\n"), 1);
    // A failed fence: its row keeps its request's time and its latency.
    let (code, out) = events(&w, &["--format", "json", "timeline", "--status", "failed"]);
    assert_eq!(code, 0, "{out}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{out}");
    assert!(
        rows[0]["latency_ms"].as_u64().is_some() && rows[0]["result"].as_str().unwrap().starts_with("failed"),
        "{out}"
    );
    // count reports fences (a status is none), unless asked; filters take lists.
    let (_, out) = events(&w, &["--format", "json", "count", "--node", "c1"]);
    let counted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counted[0]["requested"], 1, "the status is not a fence: {out}");
    let (_, out) = events(&w, &["--format", "json", "count", "--node", "c1", "--action", "off,status"]);
    let counted: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counted[0]["requested"], 2, "{out}");
    let (_, out) = events(&w, &["--format", "csv", "count", "--node", "c1", "--node", "bad"]);
    assert_eq!(out.lines().count(), 3, "repeated: {out}");
    // A value no record carries is refused, naming those that are.
    for (flag, value) in [("--action", "bogus"), ("--status", "complete")] {
        let (code, out) = events(&w, &["list", flag, value]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("matches no record") && out.contains("completed") | out.contains("reboot"), "{out}");
    }
    // Asked to check against anchors, verify fails when it could read none.
    let anchors = w.dir.path().join("anchors.txt");
    std::fs::write(&anchors, "not an anchor\n").unwrap();
    let (code, out) = events(&w, &["verify", "--anchors", path_str(&anchors)]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("holds no anchor"), "{out}");
}

/// `gfs2-fence-events --log-dir <logs> chart <args>`: the SVG document on stdout, parsed; the marks
/// drawn in each colour (circles for the timeline, bars for the latency), legends included.
fn chart(w: &World, args: &[&str]) -> (String, usize, usize) {
    let out = scrub(&mut std::process::Command::new(events_bin()))
        .args(["--log-dir", path_str(&w.logs), "chart"])
        .args(args)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let svg = text(&out.stdout);
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("not an SVG document ({e}):\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let marks = |fill: &str| {
        doc.descendants()
            .filter(|n| matches!(n.tag_name().name(), "circle" | "rect") && n.attribute("fill") == Some(fill))
            .count()
    };
    (svg.clone(), marks("#2E7D32"), marks("#C62828"))
}

/// Finding: `gfs2-fence-events` had no picture of
/// what it reports. `chart timeline` draws a mark per fence the filters keep, per node, coloured by
/// how it ended; `chart latency` stacks completed and failed fences per bucket of time; a filter
/// that keeps nothing says so instead of drawing an empty frame.
#[test]
fn charts_draw_every_fence_the_filters_keep_coloured_by_how_it_ended() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    w.behave("bad", "fail");
    fence(&w, "c1");
    fence(&w, "c1");
    fence(&w, "c2");
    assert_exit(&w.agent("action=off\nport=bad\nnodename=bad\n"), 1);

    let (svg, completed, failed) = chart(&w, &["timeline"]);
    // A legend mark for each colour drawn.
    assert_eq!((completed, failed), (3 + 1, 1 + 1), "{svg}");
    for node in ["c1", "c2", "bad"] {
        assert!(svg.contains(&format!("\n{node}\n")), "no row for {node}:\n{svg}");
    }
    let (svg, completed, failed) = chart(&w, &["timeline", "--node", "c2"]);
    assert_eq!((completed, failed), (1 + 1, 0), "{svg}");

    let (svg, completed, failed) = chart(&w, &["latency"]);
    assert!(completed >= 2 && failed == 2, "bars: {completed} completed, {failed} failed:\n{svg}");

    let (svg, completed, failed) = chart(&w, &["timeline", "--node", "nobody-fenced-it"]);
    assert!(svg.contains("no fence matches the filters") && completed + failed == 0, "{svg}");
}
