//! A spool on disk outlives a reboot: after one, nothing old runs, and an answered request is
//! never executed again. Real watcher, real spool; the states a power cut leaves are planted as the
//! files they are.

use std::time::{Duration, SystemTime};

use ha::protocol::response::{Outcome, Response};
use harness::process::*;

fn seed_request(w: &World, file: &str, id: &str, target: &str) -> std::path::PathBuf {
    let path = w.sub("requests").join(file);
    std::fs::write(&path, bare_request(id, "off", target)).unwrap();
    path
}

/// Finding: `try_claim` never looked for an existing response, so a request whose answer was made
/// durable but whose retiring move was lost in a power cut (or that was placed again after its
/// answer) was executed a second time, and its second answer kept as superseded. Now it is retired
/// without running, and the answer stays as it was. Both file-name generations.
#[test]
fn an_answered_request_is_never_executed_again() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let mut answered = Vec::new();
    for (i, v2) in [false, true].into_iter().enumerate() {
        let id = new_id();
        let target = format!("n{i}");
        let file = if v2 { format!("{target}-{id}.json") } else { format!("{id}.json") };
        seed_request(&w, &file, &id, &target);
        let answer = format!(
            r#"{{"request_id":"{id}","success":true,"action_performed":"off","target_node":"{target}","message":"fenced before the power cut","timestamp":"t"}}"#
        );
        std::fs::write(w.sub("responses").join(&file), &answer).unwrap();
        answered.push((file, answer));
    }
    let _w1 = w.watcher("w1", &[]);
    for (file, answer) in &answered {
        let left = wait_until(Duration::from_secs(20), || !w.sub("requests").join(file).exists());
        assert!(left, "{file} was never taken");
        assert_eq!(&std::fs::read_to_string(w.sub("responses").join(file)).unwrap(), answer, "the answer stands");
    }
    // A fence behind them proves the watcher went past them; then nothing else ran.
    assert_exit(&w.agent("action=off\nport=n9\n"), 0);
    let run: Vec<String> = w.ledger().into_iter().filter(|l| l.event == "start").map(|l| l.target).collect();
    assert_eq!(run, ["n9"], "only the new request ran");
    assert!(w.files("done").iter().all(|n| !n.contains("superseded")), "{:?}", w.files("done"));
}

/// Finding: a request without a boot-time deadline (the seed's, upstream v2's) whose mtime is ahead
/// of the wall clock counted as written now, with a full budget. After a reboot the wall clock can
/// be behind the previous boot's (before NTP sets it): a request from before the reboot then looks
/// like it is from the future. It is answered `expired`, never run.
#[test]
fn a_request_from_before_this_boot_is_expired_even_when_the_clock_went_back() {
    let w = World::new();
    w.spool().prepare(&ha::spool::WATCHER_DIRS).unwrap();
    let id = new_id();
    let file = format!("n1-{id}.json");
    let path = seed_request(&w, &file, &id, "n1");
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&path, ahead);
    let _w1 = w.watcher("w1", &[]);
    let answer = w.sub("responses").join(&file);
    assert!(wait_until(Duration::from_secs(20), || answer.exists()), "no answer");
    let resp = Response::parse(&std::fs::read(&answer).unwrap()).unwrap();
    assert_eq!(resp.outcome, Some(Outcome::Expired), "{resp:?}");
    assert!(w.ledger().is_empty(), "never executed");
}

/// The records are appended without fsync, the answer is durable. A power cut that
/// loses the chain's tail (the last record cut short) is reported as such, and with `--spool` the
/// answered fences whose records are gone are named (exit 3), never a broken chain; the next fence
/// after it chains on.
#[test]
fn a_chain_tail_lost_in_a_crash_is_records_missing_not_a_break() {
    let w = World::new();
    let _w1 = w.watcher("w1", &[]);
    for n in ["n1", "n2", "n3"] {
        assert_exit(&w.agent(&format!("action=off\nport={n}\n")), 0);
    }
    let spool = w.spool.display().to_string();
    let (code, said) = events(&w, &["verify", "--spool", &spool]);
    assert_eq!(code, 0, "{said}");
    // The power cut: n3's completed record half written, nothing after it.
    let log = w.logs.join("fence-events-detailed.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.trim_end().rsplit('\n').next().unwrap();
    assert!(last.contains("\"completed\"") && last.contains("n3"), "{last}");
    let kept = text.len() - last.len() - 1;
    std::fs::write(&log, format!("{}{}", &text[..kept], &last[..last.len() / 2])).unwrap();
    let record: serde_json::Value = serde_json::from_str(last).unwrap();
    let n3 = record["request_id"].as_str().unwrap().to_string();
    assert!(w.response(&n3).is_some_and(|r| r.success), "its answer is in the spool");
    let (code, said) = events(&w, &["verify"]);
    assert_eq!(code, 0, "a crash's cut is not a break: {said}");
    assert!(said.contains("record cut short by a crash"), "{said}");
    let (code, said) = events(&w, &["verify", "--spool", &spool]);
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("record missing after a crash") && said.contains(&n3), "{said}");
    // After the reboot the agent appends on a line of its own, chained from the last whole record.
    assert_exit(&w.agent("action=off\nport=n4\n"), 0);
    let (code, said) = events(&w, &["verify"]);
    assert!(code == 0 && said.contains("record cut short by a crash"), "{said}");
}
