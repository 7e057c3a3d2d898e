//! Crash states of a disk spool, derived from the real sequence of writes, renames and fsyncs
//! checked against PROTOCOL.md's table ("What survives a crash").
//!
//! Real fences (the agent and a watcher, under `strace -ff`) leave a trace of every creation, write,
//! rename, link, unlink and fsync they made. From it, a power cut after any operation is modelled
//! the way a journaling file system (ext4 `data=ordered`, xfs) can leave the disk: the directory
//! operations up to a point between the last fsync and the cut (they reach the journal in order,
//! and an fsync commits all of them before it), and each file's data as of its last fsync (worst
//! case: a file never fsynced is empty), or all of it (best case). Each state is written out as a
//! real spool; then:
//! - every fence whose agent printed `Success` before the cut has its answer, whole;
//! - a real watcher started on the state (after the "reboot") runs no request that is answered
//!   there, does not panic, and stops cleanly.
//!
//! A loop-mounted image alone would show none of this: unmounting flushes everything. No
//! device-mapper here (dm-log-writes), so the trace is the record. Needs `strace` (Debian package
//! `strace`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ha::protocol::response::Response;
use harness::process::*;

const SYSCALLS: &str =
    "openat,write,rename,renameat,renameat2,link,linkat,unlink,unlinkat,fsync,fdatasync,mkdir,mkdirat";

/// One traced operation, in the order of the merged traces.
#[derive(Debug, Clone)]
enum Op {
    /// A file created (or opened with `O_CREAT`): exists, empty if new.
    Create(String),
    /// Bytes appended to the file at that path.
    Write(String, Vec<u8>),
    Rename(String, String),
    Link(String, String),
    Unlink(String),
    Mkdir(String),
    /// fsync of a file or directory.
    Fsync(String),
    /// An agent printed `Success` for request `id`.
    Ack(String),
}

/// Hex strings of a `strace -xx -yy` line: the quoted arguments and the `<path>` of descriptors, in
/// order.
fn strings(line: &str) -> (Vec<Vec<u8>>, Vec<String>) {
    let (mut quoted, mut paths) = (Vec::new(), Vec::new());
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let close = match b[i] {
            b'"' => b'"',
            b'<' if b.get(i + 1) == Some(&b'\\') => b'>',
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i + 1;
        let end = start + line[start..].find(close as char).unwrap_or(line.len() - start);
        let bytes: Vec<u8> = line[start..end]
            .split("\\x")
            .filter(|h| h.len() >= 2)
            .filter_map(|h| u8::from_str_radix(&h[..2], 16).ok())
            .collect();
        if close == b'"' {
            quoted.push(bytes);
        } else {
            paths.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        i = end + 1;
    }
    (quoted, paths)
}

fn parse_trace(text: &str, spool: &str) -> Vec<(f64, Op)> {
    let mut ops = Vec::new();
    let mut last_request = None;
    for line in text.lines() {
        let Some((ts, rest)) = line.split_once(' ') else { continue };
        let Ok(ts) = ts.parse::<f64>() else { continue };
        let Some((call, _)) = rest.split_once('(') else { continue };
        let ret = rest.rsplit_once(") = ").map_or("-1", |r| r.1);
        if ret.starts_with('-') || ret.starts_with('?') {
            continue;
        }
        let (q, fds) = strings(rest);
        let s = |i: usize| String::from_utf8_lossy(q.get(i).map_or(&[][..], |v| v)).into_owned();
        let op = match call {
            "openat" if rest.contains("O_CREAT") => fds.last().cloned().map(Op::Create),
            "write" if rest.starts_with("write(1<") && q.first().is_some_and(|d| d.starts_with(b"Success")) => {
                last_request.clone().map(Op::Ack)
            }
            "write" => fds.first().cloned().zip(q.first().cloned()).map(|(p, d)| Op::Write(p, d)),
            "rename" | "link" => Some(if call == "rename" { Op::Rename(s(0), s(1)) } else { Op::Link(s(0), s(1)) }),
            "renameat" | "renameat2" => Some(Op::Rename(s(0), s(1))),
            "linkat" => Some(Op::Link(s(0), s(1))),
            "unlink" | "unlinkat" if !rest.contains("AT_REMOVEDIR") => Some(Op::Unlink(s(0))),
            "mkdir" | "mkdirat" => Some(Op::Mkdir(s(0))),
            "fsync" | "fdatasync" => fds.first().cloned().map(Op::Fsync),
            _ => None,
        };
        if let Some(Op::Rename(_, to)) = &op {
            let name = Path::new(to).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if to.starts_with(&format!("{spool}/requests/")) {
                last_request = name.strip_suffix(".json").map(str::to_string);
            }
        }
        let in_spool = |p: &str| p.starts_with(spool);
        let keep = match &op {
            Some(Op::Create(p) | Op::Write(p, _) | Op::Unlink(p) | Op::Mkdir(p) | Op::Fsync(p)) => in_spool(p),
            Some(Op::Rename(a, b) | Op::Link(a, b)) => in_spool(a) || in_spool(b),
            Some(Op::Ack(_)) => true,
            None => false,
        };
        if keep {
            ops.push((ts, op.unwrap()));
        }
    }
    ops
}

/// The spool a power cut after `ops[..cut]` can leave: directory operations up to `meta` (between
/// the last fsync before the cut and the cut), file data as of its last fsync unless `keep_data`.
fn crash_state(ops: &[Op], cut: usize, meta: usize, keep_data: bool) -> BTreeMap<String, Vec<u8>> {
    // Inodes: path -> inode; inode -> (data written, data made durable).
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut data: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut durable_names = names.clone();
    for (i, op) in ops[..cut].iter().enumerate() {
        match op {
            Op::Create(p) => {
                if !names.contains_key(p) {
                    data.push((Vec::new(), Vec::new()));
                    names.insert(p.clone(), data.len() - 1);
                }
            }
            Op::Write(p, bytes) => {
                if let Some(&ino) = names.get(p) {
                    data[ino].0.extend_from_slice(bytes);
                }
            }
            Op::Rename(a, b) => {
                if let Some(ino) = names.remove(a) {
                    names.insert(b.clone(), ino);
                }
            }
            Op::Link(a, b) => {
                if let Some(&ino) = names.get(a) {
                    names.insert(b.clone(), ino);
                }
            }
            Op::Unlink(p) => {
                names.remove(p);
            }
            Op::Fsync(p) => {
                if let Some(&ino) = names.get(p) {
                    data[ino].1 = data[ino].0.clone();
                }
            }
            Op::Mkdir(_) | Op::Ack(_) => {}
        }
        if i + 1 == meta {
            durable_names = names.clone();
        }
    }
    if meta == cut {
        durable_names = names;
    }
    durable_names
        .into_iter()
        .map(|(p, ino)| (p, if keep_data { data[ino].0.clone() } else { data[ino].1.clone() }))
        .collect()
}

fn write_state(state: &BTreeMap<String, Vec<u8>>, from: &str, to: &Path) {
    ha::spool::Spool::new(to).prepare(&ha::spool::WATCHER_DIRS).unwrap();
    for (path, bytes) in state {
        let rel = path.strip_prefix(from).unwrap().trim_start_matches('/');
        let dest = to.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&dest, bytes).unwrap();
    }
}

fn answered(spool: &Path) -> BTreeSet<String> {
    let dir = spool.join("responses");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| ha::fsio::read_capped(&e.path(), ha::fsio::MAX_SPOOL_FILE).ok())
        .filter_map(|b| Response::parse(&b).ok())
        .map(|r| r.request_id)
        .collect()
}

#[test]
fn no_power_cut_loses_an_acknowledged_answer_or_runs_an_answered_request() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success()),
        "strace is missing: apt-get install strace"
    );
    let w = World::new();
    let ops = traced_fences(&w);
    let acks = ops.iter().filter(|o| matches!(o, Op::Ack(_))).count();
    assert_eq!(acks, 3, "three fences acknowledged in the trace");
    let base = w.spool.display().to_string();
    let mut states = 0;
    for cut in cut_points(&ops) {
        let last_sync = ops[..cut].iter().rposition(|o| matches!(o, Op::Fsync(_))).map_or(0, |i| i + 1);
        let acked: Vec<String> =
            ops[..cut].iter().filter_map(|o| if let Op::Ack(id) = o { Some(id.clone()) } else { None }).collect();
        for (meta, keep_data) in [(last_sync, false), (cut, false), (cut, true)] {
            states += 1;
            let state = crash_state(&ops, cut, meta, keep_data);
            let dir = tempfile::tempdir().unwrap();
            let after = dir.path().join("spool");
            write_state(&state, &base, &after);
            let what =
                format!("power cut after op {cut} of {} (directories to op {meta}, data kept: {keep_data})", ops.len());
            reboot_and_check(dir.path(), &after, &acked, &what);
        }
    }
    eprintln!("{states} crash states of {} traced operations checked", ops.len());
    assert!(states >= 30, "only {states} crash states");
    // And no more than that: one durable publish (two fsyncs) per fence.
    let fsyncs = ops.iter().filter(|o| matches!(o, Op::Fsync(_))).count();
    assert_eq!(fsyncs, 6, "one durable publish (two fsyncs) per fence, nothing else: {ops:#?}");
}

/// Three fences through the traced agent and one traced watcher (one of them retried: a failed
/// first run), the watcher then stopped: every process's operations on the spool, in time order.
fn traced_fences(w: &World) -> Vec<Op> {
    let traces = w.dir.path().join("traces");
    std::fs::create_dir(&traces).unwrap();
    let strace = |program: &Path| {
        let mut c = Command::new("strace");
        c.args(["-ff", "-ttt", "-s", "100000", "-xx", "-yy", "-e", &format!("trace={SYSCALLS}"), "-o"])
            .arg(traces.join("t"))
            .arg(program);
        c
    };
    let mut cmd = strace(Path::new(watcher_bin()));
    scrub(&mut cmd)
        .args(["run", "--spool-dir"])
        .arg(&w.spool)
        .args(["--fence-command", executor_bin(), "--id", "traced"])
        .arg(format!("--fence-option=ledger={}", w.ledger.display()))
        .arg(format!("--fence-option=behavior_file={}", w.behavior.display()))
        .args(["--rescan-interval", "0.3", "--heartbeat-interval", "0.3", "--discovery-interval", "0"])
        .args(["--health-interval", "0", "--retry-delay", "0.05", "--alerts-dir", ""])
        .arg("--log-dir")
        .arg(&w.logs)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut watcher = cmd.spawn().unwrap();
    let spool = w.spool();
    assert!(
        wait_until(Duration::from_secs(30), || ha::cluster::members::live_members(&spool).is_ok_and(|m| !m.is_empty()))
    );
    w.behave("n2", "flaky");
    for n in ["n1", "n2", "n3"] {
        let mut agent = strace(&agent_bin());
        scrub(&mut agent).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = agent.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(w.stdin_for(&format!("action=off\nport={n}\n")).as_bytes()).unwrap();
        assert_exit(&child.wait_with_output().unwrap(), 0);
    }
    // SIGTERM to the watcher itself (strace's child); strace ends when it does.
    for (pid, _) in children(watcher.id() as i32) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    watcher.wait().unwrap();
    let base = w.spool.display().to_string();
    let mut timed: Vec<(f64, Op)> = Vec::new();
    for f in std::fs::read_dir(&traces).unwrap().flatten() {
        timed.extend(parse_trace(&std::fs::read_to_string(f.path()).unwrap(), &base));
    }
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    timed.into_iter().map(|t| t.1).collect()
}

/// Where the power is cut: after every fsync and acknowledgement, before every fsync, every 7th
/// operation, and at the end.
fn cut_points(ops: &[Op]) -> BTreeSet<usize> {
    let mut cuts = BTreeSet::new();
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::Fsync(_) | Op::Ack(_)) {
            cuts.insert(i);
            cuts.insert(i + 1);
        }
        if i % 7 == 0 {
            cuts.insert(i);
        }
    }
    cuts.insert(ops.len());
    cuts
}

/// After the power cut (`after`, the spool as it came back, in `dir`): every acknowledged answer
/// (`acked`) is there and whole; the reboot's watcher serves what is left and runs nothing answered
/// again; the acknowledged answers are still there after it.
fn reboot_and_check(dir: &Path, after: &Path, acked: &[String], what: &str) {
    let answers = answered(after);
    for id in acked {
        assert!(answers.contains(id), "{what}: the acknowledged answer to {id} is lost or torn");
    }
    let ledger = dir.join("ledger.jsonl");
    let mut cmd = Command::new(watcher_bin());
    scrub(&mut cmd)
        .args(["run", "--spool-dir"])
        .arg(after)
        .args(["--fence-command", executor_bin(), "--id", "after"])
        .arg(format!("--fence-option=ledger={}", ledger.display()))
        .args(["--rescan-interval", "0.1", "--discovery-interval", "0", "--health-interval", "0"])
        .args(["--alerts-dir", ""])
        .arg("--log-dir")
        .arg(dir.join("logs"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut after_w = cmd.spawn().unwrap();
    let s = ha::spool::Spool::new(after);
    let settled = wait_until(Duration::from_secs(20), || {
        let pending = |d: &str| {
            std::fs::read_dir(after.join(d))
                .map(|r| r.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".json")))
                .unwrap_or(false)
        };
        ha::cluster::members::live_members(&s).is_ok_and(|m| !m.is_empty())
            && !pending("requests")
            && !pending("claimed")
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(after_w.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = after_w.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(after_w.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(settled, "{what}: the watcher did not settle the spool: {err}");
    assert!(status.success() && !err.contains("panicked"), "{what}: {status}: {err}");
    let ran: Vec<String> = std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["event"] == "start")
        .filter_map(|l| l["request_id"].as_str().map(str::to_string))
        .collect();
    for id in &ran {
        assert!(!answers.contains(id), "{what}: answered request {id} ran again");
    }
    let answers_after = answered(after);
    for id in acked {
        assert!(answers_after.contains(id), "{what}: the answer to {id} is gone after recovery");
    }
}
