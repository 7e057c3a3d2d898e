//! One view over every rabbit: three rabbits, each a real watcher and real agents on a spool
//! and log directory of its own, under a host name of its own (a UTS namespace each) and a cluster
//! name of its own. Their records are gathered as a site gathers them — the log directories as
//! `clush --rcopy` and rsync leave them, and the journald entries the agents sent, turned into
//! journal files by the real `systemd-journal-remote` — and `gfs2-fence-events` answers over all of
//! them: one timeline, counts per rabbit and cluster, each rabbit's chain verified on its own, so a
//! tampered rabbit is named and the others stay OK.
//!
//! journald itself does not run here: each rabbit's journal socket is a datagram socket this test
//! binds, and each datagram (journald's native protocol, as the agent sends it) becomes an entry of
//! the journal export format with the fields journald adds (`_HOSTNAME`, `_BOOT_ID`,
//! `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP`, `_TRANSPORT`), as systemd's "Journal Export
//! Format" documents; that stream is what `systemd-journal-remote` reads.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harness::process::*;

/// A rabbit: its world (spool, logs, watcher) under its host name, and its journal socket.
struct Rabbit {
    name: String,
    world: World,
    journal: UnixDatagram,
    _watcher: Proc,
}

fn rabbit(name: &str, cluster: &str, nodes: &[&str]) -> Rabbit {
    let mut w = World::new();
    w.host = Some(name.into());
    w.agent_env.push(("GFS2_FENCE_CLUSTER_NAME".into(), cluster.into()));
    w.watcher_env.push(("GFS2_FENCE_CLUSTER_NAME".into(), cluster.into()));
    let journal = UnixDatagram::bind(w.journal_socket()).unwrap();
    journal.set_nonblocking(true).unwrap();
    let watcher = w.watcher("w1", &["--metrics-addr", "127.0.0.1:0"]);
    for node in nodes {
        assert_exit(&w.agent(&format!("action=off\nport={node}\nnodename={node}\n")), 0);
    }
    Rabbit { name: name.into(), world: w, journal, _watcher: watcher }
}

fn site() -> Vec<Rabbit> {
    vec![
        rabbit("rabbit-1", "cluster-a", &["c1", "c2"]),
        rabbit("rabbit-2", "cluster-b", &["c1", "c3"]),
        rabbit("rabbit-3", "cluster-c", &["c4"]),
    ]
}

/// `gfs2-fence-events --format json ARGS`'s stdout, parsed.
fn events_json(args: &[&str]) -> serde_json::Value {
    let out = scrub(&mut Command::new(events_bin())).args(args).arg("--format").arg("json").output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)))
}

fn copy_logs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn three_rabbits_make_one_site_view_and_a_tampered_rabbit_is_named_alone() {
    let rabbits = site();
    // Each watcher names its rabbit and cluster for a central Prometheus.
    for (r, cluster) in rabbits.iter().zip(["cluster-a", "cluster-b", "cluster-c"]) {
        let metrics = get(&served_at(&r._watcher), "/metrics");
        let info = format!("gfs2_fencing_info{{cluster=\"{cluster}\",rabbit=\"{}\"}} 1", r.name);
        assert!(metrics.contains(&info), "{}: {metrics}", r.name);
    }

    // Several --log-dir: every chain intact.
    let dirs: Vec<String> = rabbits.iter().map(|r| r.world.logs.display().to_string()).collect();
    let mut args: Vec<&str> = dirs.iter().flat_map(|d| ["--log-dir", d.as_str()]).collect();
    args.push("verify");
    let (code, out) = events_cli(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 chains: 0 BROKEN, 0 with records missing, 3 OK"), "{out}");
    for r in &rabbits {
        assert!(out.contains(&format!("rabbit {} ({}): OK: ", r.name, r.world.logs.display())), "{out}");
    }

    // Gathered as a site gathers them: rsync's rabbit-1/, clush's gfs2-fencing.rabbit-2, and a link
    // named for the wrong rabbit to a copy kept elsewhere.
    let site = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let gathered: Vec<PathBuf> = ["rabbit-1", "gfs2-fencing.rabbit-2"].iter().map(|d| site.path().join(d)).collect();
    for (r, to) in rabbits.iter().zip(&gathered) {
        copy_logs(&r.world.logs, to);
    }
    copy_logs(&rabbits[2].world.logs, &elsewhere.path().join("copy"));
    std::os::unix::fs::symlink(elsewhere.path().join("copy"), site.path().join("rabbit-9")).unwrap();
    let site_arg = site.path().display().to_string();
    let (code, out) = events_cli(&["--site-dir", &site_arg, "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is named \"rabbit-9\" but holds the records of rabbit rabbit-3"), "{out}");
    assert!(!out.contains("gfs2-fencing.rabbit-2 is named"), "clush's suffix names its rabbit: {out}");

    // One merged timeline, counts per rabbit and per cluster, latency per rabbit.
    let (code, csv) = events_cli(&["--site-dir", &site_arg, "--format", "csv", "count", "--by", "rabbit"]);
    assert_eq!(code, 0, "{csv}");
    let rows: Vec<&str> = csv.lines().filter(|l| !l.starts_with("gfs2-fence-events: note")).collect();
    // Columns added later (unfenced) come after the rabbit and cluster: the earlier keep their places.
    // Grouped by rabbit, the rabbit is the first column only (one JSON key, one CSV header each).
    assert_eq!(rows[0], "rabbit,requested,completed,failed,last,cluster,unfenced", "{csv}");
    assert!(rows[1].starts_with("rabbit-1,2,2,0,") && rows[1].ends_with(",cluster-a,0"), "{csv}");
    assert!(rows[3].starts_with("rabbit-3,1,1,0,") && rows[3].ends_with(",cluster-c,0"), "{csv}");
    let by_node = events_json(&["--site-dir", &site_arg, "count"]);
    // c1 was fenced by two rabbits: two rows.
    assert_eq!(by_node.as_array().unwrap().iter().filter(|r| r["node"] == "c1").count(), 2, "{by_node}");
    let (_, clusters) = events_cli(&["--site-dir", &site_arg, "--format", "csv", "count", "--by", "cluster"]);
    assert_eq!(clusters.lines().filter(|l| l.starts_with("cluster-")).count(), 3, "{clusters}");
    let timeline = events_json(&["--site-dir", &site_arg, "timeline"]);
    let rows = timeline.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{timeline}");
    let times: Vec<&str> = rows.iter().map(|r| r["requested"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "one timeline, in time order: {times:?}");
    let (_, latency) = events_cli(&["--site-dir", &site_arg, "--format", "csv", "latency", "--by", "rabbit"]);
    assert_eq!(latency.lines().filter(|l| l.starts_with("rabbit-")).count(), 3, "{latency}");
    let (_, only) = events_cli(&["--site-dir", &site_arg, "list", "--cluster", "cluster-b", "--status", "completed"]);
    assert_eq!(only.lines().filter(|l| l.starts_with("20")).count(), 2, "{only}");
    assert!(only.contains("(all from rabbit rabbit-2, cluster cluster-b)"), "{only}");

    // rabbit-2's gathered copy is edited: rabbit-2 is BROKEN, the other two are still OK.
    let jsonl = gathered[1].join("fence-events-detailed.jsonl");
    let original = std::fs::read_to_string(&jsonl).unwrap();
    let edited = original.replacen("\"target_node\": \"c3\"", "\"target_node\": \"c9\"", 1);
    assert_ne!(edited, original);
    std::fs::write(&jsonl, edited).unwrap();
    let (code, out) = events_cli(&["--site-dir", &site_arg, "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("3 chains: 1 BROKEN, 0 with records missing, 2 OK"), "{out}");
    let line = |rabbit: &str| out.lines().find(|l| l.starts_with(&format!("rabbit {rabbit} "))).unwrap_or_default();
    assert!(line("rabbit-2").contains("BROKEN:") && line("rabbit-2").contains("was edited"), "{out}");
    assert!(line("rabbit-1").contains("OK: 4 chained records") && line("rabbit-3").contains("OK: 2 chained"), "{out}");

    // A directory holding no rabbit's records is a usage error, not an empty success.
    let empty = tempfile::tempdir().unwrap();
    let (code, out) = events_cli(&["--journal-dir", &empty.path().display().to_string(), "verify"]);
    assert!(code == 2 && out.contains("hold no fence record"), "{out}");
}

/// The fields journald adds to an entry it receives, in the export format, before the sender's.
fn received(host: &str, payload: &[u8], n: u64) -> Vec<u8> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim().replace('-', "");
    let realtime = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let mut entry = format!(
        "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\n_HOSTNAME={host}\n_TRANSPORT=journal\n",
        realtime + n,
        1_000_000 + n
    )
    .into_bytes();
    entry.extend_from_slice(payload);
    entry.push(b'\n');
    entry
}

fn journal_remote() -> PathBuf {
    ["/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("systemd-journal-remote is needed: apt-get install systemd-journal-remote")
}

/// Turns `entries` (export format) into the journal file `out` with the real systemd-journal-remote.
fn write_journal(out: &Path, entries: &[u8]) {
    let mut child = Command::new(journal_remote())
        .arg(format!("--output={}", out.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(entries).unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "systemd-journal-remote: {}", text(&done.stderr));
}

fn drain(sock: &UnixDatagram) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    while let Ok(n) = sock.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn records_sent_to_journald_come_back_from_systemd_journal_remote_one_chain_per_rabbit() {
    let rabbits = site();
    let journals = tempfile::tempdir().unwrap();
    let mut forged = None;
    let mut first_rabbit = Vec::new();
    for r in &rabbits {
        let datagrams = drain(&r.journal);
        if r.name == "rabbit-1" {
            first_rabbit = datagrams.clone();
        }
        // Two records per fence, one entry per record.
        assert_eq!(datagrams.len(), r.world.log("fence-events-detailed.jsonl").lines().count(), "{}", r.name);
        let first = String::from_utf8_lossy(&datagrams[0]).into_owned();
        assert!(first.contains("SYSLOG_IDENTIFIER=gfs2-fence-record\n"), "{first}");
        assert!(
            first.contains(&format!("GFS2_FENCE_RABBIT={}\n", r.name)) && first.contains("GFS2_FENCE_SEQ=1\n"),
            "{first}"
        );
        let entries: Vec<u8> = datagrams.iter().enumerate().flat_map(|(n, d)| received(&r.name, d, n as u64)).collect();
        write_journal(&journals.path().join(format!("remote-{}.journal", r.name)), &entries);
        if r.name == "rabbit-3" {
            forged = Some(datagrams[1].clone());
        }
    }
    let dir = journals.path().display().to_string();
    let (code, out) = events_cli(&["--journal-dir", &dir, "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 chains: 0 BROKEN, 0 with records missing, 3 OK"), "{out}");
    assert!(
        out.contains(&format!("rabbit rabbit-1 (journal {dir} (rabbit rabbit-1)): OK: 4 chained records")),
        "{out}"
    );
    // An entry lost on its way (journald's rate limit, say) is a gap in that rabbit's chain, said
    // to be possibly the transport's.
    let lossy = tempfile::tempdir().unwrap();
    let datagrams = &first_rabbit;
    let kept: Vec<u8> = datagrams
        .iter()
        .enumerate()
        .filter(|(n, _)| *n != 1)
        .flat_map(|(n, d)| received("rabbit-1", d, n as u64))
        .collect();
    write_journal(&lossy.path().join("remote-rabbit-1.journal"), &kept);
    let (code, out) = events_cli(&["--journal-dir", &lossy.path().display().to_string(), "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("records seq 2 to 2 are missing") && out.contains("lost on its way"), "{out}");

    let (_, list) = events_cli(&["--journal-dir", &dir, "--format", "csv", "list", "--status", "completed"]);
    assert_eq!(list.lines().filter(|l| l.ends_with(",cluster-a") || l.ends_with(",cluster-b")).count(), 4, "{list}");

    // A journal that carries an edited copy of rabbit-3's completed record, from another host.
    let forged =
        String::from_utf8(forged.unwrap()).unwrap().replace("\"target_node\": \"c4\"", "\"target_node\": \"c8\"");
    assert!(forged.contains("c8"), "{forged}");
    write_journal(&journals.path().join("remote-rabbit-9.journal"), &received("rabbit-9", forged.as_bytes(), 99));
    let (code, out) = events_cli(&["--journal-dir", &dir, "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("3 chains: 1 BROKEN, 0 with records missing, 2 OK"), "{out}");
    let rabbit3 = out.lines().find(|l| l.starts_with("rabbit rabbit-3 ") && l.contains("BROKEN")).unwrap_or_default();
    assert!(!rabbit3.is_empty(), "{out}");
    assert!(out.contains("entries from host rabbit-9 carry records of rabbit rabbit-3"), "{out}");
}

/// Finding: the journald entry was sent only after a successful append, so a rabbit
/// whose log directory could not be written (full, read-only, not a directory) left no record in
/// the journal either. The journal now keeps the record, outside the chain.
#[test]
fn a_record_reaches_the_journal_when_the_log_directory_cannot_be_written() {
    let w = World::new();
    let journal = UnixDatagram::bind(w.journal_socket()).unwrap();
    journal.set_nonblocking(true).unwrap();
    let _watcher = w.watcher("w1", &[]);
    let not_a_dir = w.dir.path().join("a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let out = w.agent(&format!("action=off\nport=c1\nlog_dir={}\n", not_a_dir.join("logs").display()));
    assert_exit(&out, 0);
    let entries: Vec<String> = drain(&journal).iter().map(|d| String::from_utf8_lossy(d).into_owned()).collect();
    assert_eq!(entries.len(), 2, "requested and completed: {entries:?}");
    for e in &entries {
        assert!(e.contains("GFS2_FENCE_TARGET=c1\n") && !e.contains("GFS2_FENCE_SEQ="), "{e}");
    }
}
