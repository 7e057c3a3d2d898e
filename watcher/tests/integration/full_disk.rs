//! A full disk: logging never blocks or fails a fence, and a spool that cannot take the request makes
//! the agent fail with a message naming the file and the cause. A small tmpfs is mounted in a private
//! mount namespace (`unshare -rm`, so no root is needed and the host sees nothing) and filled.

use harness::process::*;

#[test]
fn a_full_log_disk_only_warns_and_a_full_spool_disk_fails_clearly() {
    let w = World::new();
    let d = w.dir.path().display().to_string();
    let script = format!(
        r#"
        mkdir -p {d}/full {d}/spool2
        mount -t tmpfs -o size=256k,mode=0700 tmpfs {d}/full
        mkdir -m 0700 {d}/full/logs {d}/full/spool
        {watcher} run --spool-dir {d}/spool2 --fence-command {exec} --fence-option ledger={d}/ledger --id a 2>/dev/null &
        {watcher} run --spool-dir {d}/full/spool --fence-command {exec} --fence-option ledger={d}/ledger --id b 2>/dev/null &
        for i in $(seq 200); do [ -e {d}/spool2/members/a.json ] && [ -e {d}/full/spool/members/b.json ] && break; sleep 0.05; done
        dd if=/dev/zero of={d}/full/filler bs=4k 2>/dev/null || true
        echo "== log disk full"
        printf 'action=off\nport=n1\nspool_dir={d}/spool2\nlog_dir={d}/full/logs\nno_gfs2_discovery=1\n' | {agent} && echo "exit=0"
        echo "== spool disk full"
        printf 'action=off\nport=n1\nspool_dir={d}/full/spool\nlog_dir={d}/logs\nno_gfs2_discovery=1\n' | {agent} || echo "exit=$?"
        kill %1 %2
        wait
        "#,
        watcher = watcher_bin(),
        exec = executor_bin(),
        agent = agent_bin().display(),
    );
    let out = in_namespace(&script);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (logs_full, spool_full) = stdout.split_once("== spool disk full").unwrap();
    assert!(logs_full.contains("Success: Powered OFF") && logs_full.contains("exit=0"), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "the log failure is reported: {stderr}");
    assert!(spool_full.contains("exit=1"), "{stdout}");
    let failed = stderr.lines().find(|l| l.starts_with("Failed:")).unwrap_or_default();
    assert!(
        failed.contains("/full/spool/tmp/")
            && failed.contains("No space left on device")
            && failed.contains("free space on that file system"),
        "the failure names the file and the cause: {stderr}"
    );
    // Finding: the fence that could not be asked left no record in the agent's logs (only its stderr
    // and the operational log said so): it is recorded as failed, never asked.
    let records = std::fs::read_to_string(w.dir.path().join("logs/fence-events-readable.log")).unwrap_or_default();
    assert!(
        records.contains("STATUS=failed") && records.contains("the request could not be published"),
        "the failed publish is in the agent's records: {records}"
    );
}
