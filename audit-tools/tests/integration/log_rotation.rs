//! The audit trail over time, with the real logrotate: a rotation while fences wait (create,
//! compress, delaycompress) leaves one chain that verifies; copytruncate's loss is named as such and
//! still fails `verify`; a record cut short by a full log disk (a small tmpfs in a private user and
//! mount namespace) is named for the full disk by `verify` and `verify --spool`, not for a crash.

use std::process::{Child, Command};
use std::time::Duration;

use harness::process::*;

/// Rotates the world's detailed log with the real logrotate (`-f`), `directives` in its stanza.
fn logrotate(w: &World, directives: &str) {
    let conf = w.dir.path().join("logrotate.conf");
    let log = w.logs.join("fence-events-detailed.jsonl");
    std::fs::write(&conf, format!("{} {{\n    rotate 1000\n    missingok\n{directives}\n}}\n", log.display())).unwrap();
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(w.dir.path().join("logrotate.state"))
        .arg(&conf)
        .output()
        .expect("logrotate (Debian's logrotate package) is needed");
    assert!(out.status.success(), "logrotate: {}", text(&out.stderr));
}

/// `gfs2-fence-events --log-dir <logs> verify <extra>`: (exit code, output).
fn verify(w: &World, extra: &[&str]) -> (i32, String) {
    events(w, &[&["verify"], extra].concat())
}

/// Agents fencing `nodes` in parallel, each waiting about a second for its fence command.
fn fences(w: &World, nodes: std::ops::Range<usize>) -> Vec<Child> {
    nodes.map(|n| w.spawn_agent(&format!("action=off\nport=node{n}\nfence_timeout=30\n"))).collect()
}

/// Waits until `n` requests are pending or claimed: their agents wrote their first record.
fn published(w: &World, n: usize) {
    let ok = wait_until(Duration::from_secs(20), || w.files("requests").len() + w.files("claimed").len() >= n);
    assert!(ok, "{n} requests were not published");
}

fn all_succeed(agents: Vec<Child>) {
    for a in agents {
        assert_exit(&a.wait_with_output().unwrap(), 0);
    }
}

fn rotation_while_fences_wait(directives: &str) {
    let w = World::new();
    let _watcher = w.watcher("w1", &["--max-parallel", "8"]);
    w.behave("*", "sleep:1000");
    // Three agents wait while the log rotates; three more start on the new file while the first
    // three still wait; a second rotation while all six wait.
    let mut agents = fences(&w, 0..3);
    published(&w, 3);
    logrotate(&w, directives);
    agents.extend(fences(&w, 3..6));
    published(&w, 6);
    logrotate(&w, directives);
    all_succeed(agents);
    // And many in parallel, rotations among them.
    for round in 0..3 {
        let agents = fences(&w, 10 * (round + 1)..10 * (round + 1) + 6);
        logrotate(&w, directives);
        all_succeed(agents);
    }
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, 0, "{directives}: {out}");
    assert!(out.contains("OK: 48 chained records"), "every fence's two records, in one chain: {out}");
}

#[test]
fn a_rotation_with_fences_in_flight_leaves_one_chain_that_verifies_with_create() {
    rotation_while_fences_wait("    create 0600");
}

#[test]
fn a_rotation_with_fences_in_flight_leaves_one_chain_that_verifies_with_compress() {
    rotation_while_fences_wait("    create 0600\n    compress");
}

#[test]
fn a_rotation_with_fences_in_flight_leaves_one_chain_that_verifies_with_delaycompress() {
    rotation_while_fences_wait("    create 0600\n    compress\n    delaycompress");
}

#[test]
fn whoever_creates_the_new_log_first_agent_or_logrotate_no_record_is_lost() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=off\nport=node1\n"), 0);
    // logrotate first (its rename, then its create), the agent after: the agent appends to
    // logrotate's file.
    logrotate(&w, "    create 0600");
    assert_exit(&w.agent("action=off\nport=node2\n"), 0);
    // The agent first: logrotate's create (its one open of the path, O_EXCL) held back 1.5 s by
    // strace after its rename, and a fence meanwhile: the agent creates the file, and logrotate
    // then moves the agent's file aside as <log>-<YYYYMMDDHH>.backup and creates its own.
    let log = w.logs.join("fence-events-detailed.jsonl");
    let conf = w.dir.path().join("logrotate.conf");
    let delayed = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "-P"])
        .arg(&log)
        .args(["-e", "trace=openat", "-e", "inject=openat:delay_enter=1500000", "logrotate", "-f", "-s"])
        .arg(w.dir.path().join("logrotate.state"))
        .arg(&conf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("strace is needed");
    assert!(wait_until(Duration::from_secs(20), || !log.exists()), "logrotate renamed the log");
    assert_exit(&w.agent("action=off\nport=node3\n"), 0);
    let out = delayed.wait_with_output().unwrap();
    assert!(text(&out.stderr).contains("already exists, renaming to"), "{}", text(&out.stderr));
    let backup = std::fs::read_dir(&w.logs)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".backup"))
        .expect("logrotate kept the agent's file as a .backup");
    assert!(std::fs::read_to_string(backup.path()).unwrap().contains("node3"));
    assert_exit(&w.agent("action=off\nport=node4\n"), 0);
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 8 chained records"), "{out}");
}

#[test]
fn copytruncate_is_named_and_a_record_it_loses_is_a_possible_copytruncate_loss() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    assert_exit(&w.agent("action=off\nport=node1\n"), 0);
    // copytruncate with nothing appended between its copy and its truncation: nothing lost, but
    // the truncation in place is named.
    logrotate(&w, "    copytruncate");
    assert_exit(&w.agent("action=off\nport=node2\n"), 0);
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("truncated in place") && out.contains("copytruncate"), "{out}");
    // copytruncate's two steps with a fence between them, as happens when one is appended then:
    // logrotate's `copy` (the copy alone), the fence, then the truncation.
    logrotate(&w, "    copy");
    assert_exit(&w.agent("action=off\nport=node3\n"), 0);
    std::fs::File::options().write(true).open(w.logs.join("fence-events-detailed.jsonl")).unwrap().set_len(0).unwrap();
    assert_exit(&w.agent("action=off\nport=node4\n"), 0);
    let (code, out) = verify(&w, &[]);
    assert_eq!(code, 1, "a truncation is also what tampering looks like: {out}");
    assert!(out.contains("BROKEN") && out.contains("possible copytruncate loss"), "{out}");
}

#[test]
fn real_copytruncate_under_parallel_fences_either_loses_nothing_or_is_named() {
    let w = World::new();
    let _watcher = w.watcher("w1", &["--max-parallel", "8"]);
    for round in 0..10 {
        let agents = fences(&w, 6 * round..6 * round + 6);
        std::thread::sleep(Duration::from_millis(5));
        logrotate(&w, "    copytruncate");
        all_succeed(agents);
    }
    let (code, out) = verify(&w, &[]);
    assert!(
        code == 0 || (code == 1 && out.contains("possible copytruncate loss")),
        "a break after copytruncate is named as its possible loss: {out}"
    );
}

#[test]
fn a_record_cut_short_by_a_full_log_disk_is_named_so_by_verify_and_verify_spool() {
    let w = World::new();
    let _watcher = w.watcher("w1", &[]);
    std::fs::create_dir_all(&w.logs).unwrap();
    let agent = |node: &str| {
        format!(
            "printf \"action=off\\nport={node}\\nspool_dir={}\\nlog_dir={}\\nno_gfs2_discovery=1\\n\" | env -i PATH=\"$PATH\" \
             GFS2_FENCE_JOURNAL_SOCKET={} {} >/dev/null 2>&1",
            w.spool.display(),
            w.logs.display(),
            w.journal_socket().display(),
            agent_bin().display()
        )
    };
    let events = |args: &str| format!("{} --log-dir {} {args}", events_bin().display(), w.logs.display());
    // In a private mount namespace: the log directory is a 64 KiB tmpfs; one fence, then the disk
    // filled, then fences until the detailed log's last record is cut short, then room again.
    let script = format!(
        "mount -t tmpfs -o size=64k,mode=0700 tmpfs {logs}\n\
         {first}\n\
         head -c 1048576 /dev/zero > {logs}/filler 2>/dev/null || true\n\
         for n in $(seq 2 6); do {fence}; done\n\
         echo '== verify'; {verify} || echo \"exit $?\"\n\
         echo '== verify --spool'; {verify_spool} || echo \"exit $?\"\n\
         rm {logs}/filler\n\
         {last}\n\
         echo '== after'; {verify} || echo \"exit $?\"\n",
        logs = w.logs.display(),
        first = agent("node1"),
        fence = agent("node$n"),
        verify = events("verify"),
        verify_spool = events(&format!("verify --spool {}", w.spool.display())),
        last = agent("node99"),
    );
    let out = in_namespace(&script);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{said}");
    let section = |name: &str| said.split(&format!("== {name}\n")).nth(1).unwrap_or("").split("\n== ").next().unwrap();
    let full = section("verify");
    assert!(full.contains("record cut short by a failed write") && full.contains("disk was full"), "{said}");
    assert!(!full.contains("cut short by a crash"), "{said}");
    let spool = section("verify --spool");
    assert!(spool.contains("record not written") && spool.contains("disk was full"), "{said}");
    assert!(!spool.contains("record missing after a crash") && !spool.contains("power cut"), "{said}");
    assert!(section("after").contains("OK:"), "the chain goes on once there is room: {said}");
}
