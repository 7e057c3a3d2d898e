//! Retention and the fenced record: `--retention` removes old answers but never a success answer to
//! `off` or `reboot` (the record that a node was fenced, which nnf-sos and operators read);
//! `--fenced-record-retention`, a separate option, removes those. Real watchers, real files with
//! their modification times set into the past.

use std::time::{Duration, SystemTime};

use harness::process::*;

fn age(w: &World, name: &str) {
    set_mtime(&w.sub("responses").join(name), SystemTime::now() - Duration::from_secs(3600));
}

#[test]
fn retention_never_removes_a_fenced_record() {
    let w = World::new();
    let watcher = w.watcher("w1", &["--retention", "60"]);
    w.behave("n2", "fail");
    assert_exit(&w.agent("action=off\nport=n1\n"), 0);
    assert_exit(&w.agent("action=status\nport=n1\n"), 0);
    assert_exit(&w.agent("action=reboot\nport=n2\n"), 1);
    let names = w.files("responses");
    assert_eq!(names.len(), 3, "{names:?}");
    for n in &names {
        age(&w, n);
    }
    let off =
        names.iter().find(|n| w.response(n.trim_end_matches(".json")).unwrap().action_performed == "off").cloned();
    let off = off.expect("the off's answer");
    assert!(
        wait_until(Duration::from_secs(20), || w.files("responses") == [off.clone()]),
        "retention must remove the status and the failure, and keep the fenced record: {:?}",
        w.files("responses")
    );
    drop(watcher);
    let _watcher = w.watcher("w2", &["--retention", "60", "--fenced-record-retention", "60"]);
    assert!(wait_until(Duration::from_secs(20), || w.files("responses").is_empty()), "{:?}", w.files("responses"));
}
