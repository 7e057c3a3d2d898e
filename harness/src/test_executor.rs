//! A fence command for tests, the demo and the chaos harness: it speaks the fence-agents stdin
//! protocol like any agent, fences nothing, and appends what it was asked to a ledger.
//!
//! Stdin options: `ledger=PATH` (required), `behavior_file=PATH` (JSON object target → behavior,
//! `"@monitor"` for the `monitor` action, `"*"` for any other; re-read at every execution so a test
//! can change it while watchers run), and
//! `default_behavior` (`succeed` unless set). Behaviors: `succeed`; `fail` (exit 1); `hang` (sleep
//! until killed); `off` (power actions succeed, `status` reports OFF, exit 2); `sleep:MS` (wait, then
//! succeed); `flaky` (the first execution of each request fails, a retry succeeds: the ledger
//! holds no earlier start with its `GFS2_FENCE_REQUEST_ID`).
//!
//! Ledger lines (JSON, one `O_APPEND` write each): `{"event":"start", "request_id", "pid", "action",
//! "target", "nodename", "boottime_ns"}` when it starts and `{"event":"end", …, "result", "exit"}`
//! when it finishes (a killed execution has no end line).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    /// `start` or `end`.
    pub event: String,
    /// `GFS2_FENCE_REQUEST_ID` from the environment.
    pub request_id: Option<String>,
    /// This process.
    pub pid: u32,
    /// The action asked for.
    pub action: String,
    /// The plug.
    pub target: String,
    /// Pacemaker's node name, if sent.
    pub nodename: Option<String>,
    /// CLOCK_BOOTTIME.
    pub boottime_ns: u64,
    /// On `end`: `success`, `failure` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// On `end`: the exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<u8>,
}

fn append(ledger: &Path, line: &LedgerLine) {
    let mut bytes = serde_json::to_vec(line).expect("ledger lines serialise");
    bytes.push(b'\n');
    match ha::fsio::open_append(ledger) {
        Ok(mut f) => {
            if let Err(e) = f.write_all(&bytes) {
                eprintln!("test executor: cannot append to {}: {e}", ledger.display());
            }
        }
        Err(e) => eprintln!("test executor: cannot open {}: {e}", ledger.display()),
    }
}

/// Whether the ledger already has a start of `request_id`.
fn started_before(ledger: &Path, request_id: &str) -> bool {
    let text = std::fs::read_to_string(ledger).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<LedgerLine>(l).ok())
        .any(|l| l.event == "start" && l.request_id.as_deref() == Some(request_id))
}

fn behavior(values: &BTreeMap<String, String>, key: &str) -> String {
    let from_file = values.get("behavior_file").and_then(|p| {
        let text = std::fs::read(p).ok()?;
        let map: BTreeMap<String, String> = serde_json::from_slice(&text).ok()?;
        map.get(key).or_else(|| map.get("*")).cloned()
    });
    from_file.or_else(|| values.get("default_behavior").cloned()).unwrap_or_else(|| "succeed".into())
}

/// Runs the test executor.
pub fn run() -> ExitCode {
    let mut text = String::new();
    let _ = std::io::stdin().take(1024 * 1024).read_to_string(&mut text);
    let args = ha::protocol::fence_args::parse(&text);
    let v = &args.values;
    let action = v.get("action").cloned().unwrap_or_else(|| "reboot".into());
    let target = v.get("plug").or_else(|| v.get("port")).cloned().unwrap_or_default();
    let Some(ledger) = v.get("ledger").map(Path::new) else {
        eprintln!("Failed: test executor needs ledger=PATH on stdin");
        return ExitCode::FAILURE;
    };
    let mut line = LedgerLine {
        event: "start".into(),
        request_id: std::env::var("GFS2_FENCE_REQUEST_ID").ok(),
        pid: std::process::id(),
        action: action.clone(),
        target: target.clone(),
        nodename: v.get("nodename").cloned(),
        boottime_ns: ha::os::clock::BootTime::now().0,
        result: None,
        exit: None,
    };
    let first = line.request_id.as_ref().is_none_or(|id| !started_before(ledger, id));
    append(ledger, &line);
    let b = behavior(v, if action == "monitor" { "@monitor" } else { &target });
    let (result, code) = match b.as_str() {
        "fail" => ("failure", 1),
        "flaky" if first => ("failure", 1),
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "off" if action == "status" => ("off", 2),
        s => {
            if let Some(ms) = s.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            }
            ("success", 0)
        }
    };
    match (result, action.as_str()) {
        ("off", _) => println!("Status: OFF"),
        ("success", "status") => println!("Status: ON"),
        ("success", _) => println!("Success: {action} {target}"),
        _ => eprintln!("Failed: test executor told to fail for target {target}"),
    }
    line.event = "end".into();
    line.boottime_ns = ha::os::clock::BootTime::now().0;
    line.result = Some(result.into());
    line.exit = Some(code);
    append(ledger, &line);
    ExitCode::from(code)
}
