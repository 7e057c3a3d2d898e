//! The process test harness: the real programs as separate processes on a real temporary spool,
//! for the integration tests of every crate.
//!
//! The programs (the agent, the watcher, the audit tools, the test executor) are found in the target
//! directory the test runs from (`cargo test --workspace` builds every package's programs before it
//! runs any test; a test run alone without one stops and says so). Waiting is always a poll with a
//! deadline, never a bare sleep.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::test_executor::LedgerLine;
use ha::protocol::response::Response;

/// Runs `gfs2-fence-events --log-dir <logs> <args>`: (exit code, stdout and stderr).
pub fn events(w: &World, args: &[&str]) -> (i32, String) {
    let logs = path_str(&w.logs);
    events_cli(&[&["--log-dir", logs], args].concat())
}

/// Runs `gfs2-fence-events <args>`: (exit code, stdout and stderr).
pub fn events_cli(args: &[&str]) -> (i32, String) {
    let out = scrub(&mut Command::new(events_bin())).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out.stdout) + &text(&out.stderr))
}

/// Environment variables that would change the binaries' behaviour if inherited: every name of
/// every shared setting ([`ha::os::setting::ALL`]) and the watcher's own.
const SCRUB: &[&str] = &[
    "GFS2_FENCE_DISCOVERY_INTERVAL",
    "KUBECONFIG",
    "GFS2_FENCE_AUDIT_SOCKET",
    "GFS2_FENCE_JOURNAL_SOCKET",
    "COROSYNC_MAIN_CONFIG_FILE",
    "GFS2_FENCE_COMMAND",
    "GFS2_FENCE_OPTIONS",
    "GFS2_FENCE_CONFIG",
    "GFS2_FENCE_ID",
];

/// Sets `path`'s modification time: a file's age in the spool (submission order, staleness, which
/// boot wrote it).
pub fn set_mtime(path: &Path, when: std::time::SystemTime) {
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

/// A request as the seed's agent and upstream's v2 clients write it: no deadline, no boot.
pub fn bare_request(id: &str, action: &str, target: &str) -> String {
    format!(r#"{{"request_id":"{id}","timestamp":"t","action":"{action}","target_node":"{target}"}}"#)
}

/// Removes the inherited settings ([`SCRUB`]) from `cmd`'s environment.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for k in SCRUB.iter().copied().chain(ha::os::setting::ALL.iter().flat_map(|s| s.names())) {
        cmd.env_remove(k);
    }
    cmd
}

/// A program of another package of the workspace, in the target directory the tests run from.
fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace`, which builds it", bin.display());
    bin
}

pub fn agent_bin() -> PathBuf {
    workspace_bin("fence_gfs2_recorder")
}

/// `gfs2-fence-events`, beside the agent.
pub fn events_bin() -> PathBuf {
    agent_bin().with_file_name("gfs2-fence-events")
}

/// `gfs2-fence-alert`, beside the agent.
pub fn alert_bin() -> PathBuf {
    agent_bin().with_file_name("gfs2-fence-alert")
}

/// `gfs2-fence-watcher`.
pub fn watcher_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("gfs2-fence-watcher").display().to_string())
}

/// `gfs2-fence-test-executor`, of the harness package.
pub fn executor_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| workspace_bin("gfs2-fence-test-executor").display().to_string())
}

/// Polls `cond` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.child.wait().unwrap()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// The processes whose parent is `pid`, with their state letter (`Z`: a zombie nobody reaped).
pub fn children(pid: i32) -> Vec<(i32, char)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let mut rest = stat.rsplit(')').next()?.split_whitespace();
            let state = rest.next()?.chars().next()?;
            (rest.next()?.parse::<i32>().ok()? == pid).then_some((p, state))
        })
        .collect()
}

/// Asserts that `pid` is left with no child process, live or zombie (a leader's health check may be
/// running one for a moment: it is waited for, a leaked one is not).
pub fn assert_no_children(pid: i32, what: &str) {
    wait_until(Duration::from_secs(5), || children(pid).is_empty());
    assert_eq!(children(pid), vec![], "{what}");
}

/// One test's world: a temporary spool, log directory, ledger and behavior file.
pub struct World {
    pub dir: tempfile::TempDir,
    pub spool: PathBuf,
    pub logs: PathBuf,
    pub ledger: PathBuf,
    pub behavior: PathBuf,
    /// A directory put first on the binaries' `PATH` (fake discovery tools).
    pub path_prefix: Option<PathBuf>,
    /// More environment for the agents.
    pub agent_env: Vec<(String, String)>,
    /// More environment for the watchers.
    pub watcher_env: Vec<(String, String)>,
    /// The host name the world's agents and watchers see: set, they run in a UTS namespace of their
    /// own (`unshare --user --map-root-user --uts`) under that name, as on a rabbit of that name.
    pub host: Option<String>,
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let logs = dir.path().join("logs");
        let ledger = dir.path().join("ledger.jsonl");
        let behavior = dir.path().join("behavior.json");
        std::fs::write(&behavior, "{}").unwrap();
        World {
            dir,
            spool,
            logs,
            ledger,
            behavior,
            path_prefix: None,
            agent_env: Vec::new(),
            watcher_env: Vec::new(),
            host: None,
        }
    }

    pub fn spool(&self) -> ha::spool::Spool {
        ha::spool::Spool::new(&self.spool)
    }

    pub fn sub(&self, d: &str) -> PathBuf {
        self.spool.join(d)
    }

    /// Writes a watcher configuration (`--config`): the test executor as the default command, with
    /// this world's ledger and behavior file and the default entry's `extra` fields (JSON members,
    /// each followed by a comma), and the `targets` object's members. Returns its path.
    pub fn config_file(&self, extra: &str, targets: &str) -> PathBuf {
        let path = self.dir.path().join("config.json");
        let json = format!(
            r#"{{"default":{{"command":"{}",{extra}"options":{{"ledger":"{}","behavior_file":"{}"}}}},"targets":{{{targets}}}}}"#,
            executor_bin(),
            self.ledger.display(),
            self.behavior.display()
        );
        std::fs::write(&path, json).unwrap();
        path
    }

    /// Sets the test executor's behavior for `target` (`*` for all others).
    pub fn behave(&self, target: &str, behavior: &str) {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&self.behavior).unwrap()).unwrap();
        map.insert(target.into(), behavior.into());
        std::fs::write(&self.behavior, serde_json::to_vec(&map).unwrap()).unwrap();
    }

    /// Starts a watcher with the test executor and waits until it holds its member lock.
    /// A command running `program` as this world's host ([`World::host`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.host {
            None => Command::new(program),
            Some(host) => {
                let mut cmd = Command::new("unshare");
                cmd.args(["--user", "--map-root-user", "--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host]);
                cmd.arg(program);
                cmd
            }
        }
    }

    pub fn watcher(&self, id: &str, extra: &[&str]) -> Proc {
        self.watcher_of(Path::new(watcher_bin()), id, extra)
    }

    /// [`World::watcher`] with the watcher binary `bin` (another build's).
    pub fn watcher_of(&self, bin: &Path, id: &str, extra: &[&str]) -> Proc {
        let stderr = self.dir.path().join(format!("{id}.stderr"));
        let mut cmd = self.command(bin);
        scrub(&mut cmd);
        cmd.args(["run", "--spool-dir"])
            .arg(&self.spool)
            .args(["--fence-command", executor_bin(), "--id", id])
            .arg(format!("--fence-option=ledger={}", self.ledger.display()))
            .arg(format!("--fence-option=behavior_file={}", self.behavior.display()))
            .args(["--rescan-interval", "0.3", "--heartbeat-interval", "0.3", "--shutdown-grace", "2"])
            .args(["--discovery-interval", "0"])
            .arg("--log-dir")
            .arg(&self.logs)
            .arg("--alerts-dir")
            .arg(self.dir.path().join("alerts"))
            .args(extra)
            .env("GFS2_FENCE_LOG", "debug")
            .env("PATH", self.path())
            .env("GFS2_FENCE_JOURNAL_SOCKET", self.journal_socket())
            .envs(self.watcher_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let proc = Proc { child: cmd.spawn().unwrap(), stderr };
        // Live as the agent judges it: member lock held and a fresh heartbeat written.
        let spool = self.spool();
        let started = wait_until(Duration::from_secs(20), || {
            self.sub("members").is_dir()
                && ha::cluster::members::live_members(&spool).is_ok_and(|l| l.iter().any(|m| m == id))
        });
        assert!(started, "watcher {id} did not start: {}", proc.stderr_text());
        proc
    }

    /// Waits until some watcher of this spool is live (a watcher started by hand, not by
    /// [`World::watcher`]); `proc` is shown when none becomes live.
    pub fn await_live(&self, proc: &Proc) {
        let spool = self.spool();
        let live = wait_until(Duration::from_secs(20), || {
            ha::cluster::members::live_members(&spool).is_ok_and(|m| !m.is_empty())
        });
        assert!(live, "no watcher became live: {}", proc.stderr_text());
    }

    /// Runs a watcher that must refuse to start; returns what it said.
    pub fn watcher_refused(&self, args: &[&str]) -> String {
        self.watcher_refused_with(&[], args)
    }

    /// [`World::watcher_refused`] with `env` set (as the unit's EnvironmentFile would).
    pub fn watcher_refused_with(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut cmd = Command::new(watcher_bin());
        scrub(&mut cmd).envs(env.iter().copied());
        let out = cmd.arg("run").args(args).output().unwrap();
        assert!(!out.status.success(), "the watcher should have refused to start");
        text(&out.stderr)
    }

    /// Waits for the first execution start in the ledger.
    pub fn first_start(&self) -> LedgerLine {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(20), || {
            found = self.ledger().into_iter().find(|l| l.event == "start");
            found.is_some()
        });
        assert!(ok, "no execution started");
        found.unwrap()
    }

    /// The agent with the world's environment, its stdin, stdout and stderr piped, nothing written.
    pub fn agent_command(&self) -> Command {
        self.agent_command_of(&agent_bin())
    }

    fn agent_command_of(&self, bin: &Path) -> Command {
        let mut cmd = self.command(bin);
        scrub(&mut cmd);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("PATH", self.path());
        cmd.env("GFS2_FENCE_JOURNAL_SOCKET", self.journal_socket());
        // Stdin without log_dir (raw stdin, a refused option) logs here, never into the host's
        // default log directory; a log_dir on stdin still wins.
        cmd.env("GFS2_FENCE_LOG_DIR", &self.logs);
        cmd.envs(self.agent_env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Where this world's agents and watchers send their journald entries: a socket in the world's
    /// directory (nothing listens unless a test binds it), never the host's journal.
    pub fn journal_socket(&self) -> PathBuf {
        self.dir.path().join("journal.socket")
    }

    /// `PATH` for the binaries: [`World::path_prefix`] first.
    pub fn path(&self) -> std::ffi::OsString {
        let system = std::env::var_os("PATH").unwrap_or_default();
        match &self.path_prefix {
            Some(p) => std::env::join_paths(std::iter::once(p.clone()).chain(std::env::split_paths(&system))).unwrap(),
            None => system,
        }
    }

    /// The stdin lines every test agent gets (spool, logs, no discovery) plus `lines`.
    pub fn stdin_for(&self, lines: &str) -> String {
        format!("spool_dir={}\nlog_dir={}\nno_gfs2_discovery=1\n{lines}", self.spool.display(), self.logs.display())
    }

    /// Starts the agent as Pacemaker does: no arguments, options on stdin.
    pub fn spawn_agent(&self, lines: &str) -> Child {
        self.spawn_agent_of(&agent_bin(), lines)
    }

    /// [`World::spawn_agent`] with the agent binary `bin` (another build's).
    pub fn spawn_agent_of(&self, bin: &Path, lines: &str) -> Child {
        let mut child = self.agent_command_of(bin).spawn().unwrap();
        child.stdin.take().unwrap().write_all(self.stdin_for(lines).as_bytes()).unwrap();
        child
    }

    /// Runs the agent with `lines` on stdin (after the world's own options).
    pub fn agent(&self, lines: &str) -> Output {
        self.spawn_agent(lines).wait_with_output().unwrap()
    }

    /// Runs the agent with raw stdin (nothing added).
    pub fn agent_raw_stdin(&self, text: &str) -> Output {
        let mut child = self.agent_command().spawn().unwrap();
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs the agent with command-line flags.
    pub fn agent_args(&self, args: &[&str]) -> Output {
        let mut cmd = self.agent_command();
        cmd.args(args).stdin(Stdio::null());
        cmd.output().unwrap()
    }

    /// The executor's ledger lines for fence actions (the leader's `monitor` health checks left out).
    pub fn ledger(&self) -> Vec<LedgerLine> {
        std::fs::read_to_string(&self.ledger)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<LedgerLine>(l).unwrap())
            .filter(|l| l.action != "monitor")
            .collect()
    }

    /// Execution starts recorded for `request_id`.
    pub fn starts(&self, request_id: &str) -> usize {
        self.ledger().iter().filter(|l| l.event == "start" && l.request_id.as_deref() == Some(request_id)).count()
    }

    pub fn files(&self, d: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.sub(d))
            .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn response(&self, id: &str) -> Option<Response> {
        let bytes = std::fs::read(self.sub("responses").join(format!("{id}.json"))).ok()?;
        Some(Response::parse(&bytes).unwrap())
    }

    /// Waits for the response to `id`.
    pub fn await_response(&self, id: &str) -> Response {
        let mut got = None;
        let ok = wait_until(Duration::from_secs(20), || {
            got = self.response(id);
            got.is_some()
        });
        assert!(ok, "no response for {id}; requests={:?} claimed={:?}", self.files("requests"), self.files("claimed"));
        got.unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.logs.join(name)).unwrap_or_default()
    }

    /// Writes a request file the way the agent does (tmp + rename), returning its id.
    pub fn put_request(&self, json: &str) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let id = v["request_id"].as_str().unwrap();
        let tmp = self.sub("tmp").join(format!(".{id}.test"));
        std::fs::write(&tmp, json).unwrap();
        std::fs::rename(&tmp, self.sub("requests").join(format!("{id}.json"))).unwrap();
    }

    /// Queues a request as the agent writes it (version 1, deadline `secs` from now, this boot), with
    /// its file's mtime `age_ms` in the past so tests can fix the submission order. Returns its id.
    pub fn queue(&self, action: &str, target: &str, priority: i32, secs: u64, age_ms: u64) -> String {
        let id = new_id();
        let deadline = ha::os::clock::BootTime::now().after(Duration::from_secs(secs)).0;
        let boot = ha::os::clock::boot_id().unwrap();
        let json = format!(
            r#"{{"request_id":"{id}","timestamp":"t","action":"{action}","target_node":"{target}","version":1,
                "queue_priority":{priority},"deadline_boottime_ns":{deadline},"boot_id":"{boot}"}}"#
        );
        let tmp = self.sub("tmp").join(format!(".{id}.test"));
        std::fs::write(&tmp, json).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_millis(age_ms)).unwrap();
        std::fs::rename(&tmp, self.sub("requests").join(format!("{id}.json"))).unwrap();
        id
    }

    /// Starts of fence executions, in ledger order.
    pub fn start_order(&self) -> Vec<String> {
        self.ledger().into_iter().filter(|l| l.event == "start").filter_map(|l| l.request_id).collect()
    }

    /// The single request published so far (waits for it).
    pub fn published_request(&self) -> ha::protocol::request::Request {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(20), || {
            found = self.files("requests").into_iter().find(|n| n.ends_with(".json"));
            found.is_some()
        });
        assert!(ok, "no request was published");
        let bytes = std::fs::read(self.sub("requests").join(found.unwrap())).unwrap();
        ha::protocol::request::Request::parse(&bytes).unwrap()
    }
}

/// Runs `script` with `bash -euc` in a private user and mount namespace (`unshare -rm`), where it
/// may mount a small or read-only tmpfs without root.
/// `GET path` from a watcher's metrics server at `addr`: the whole HTTP reply.
pub fn get(addr: &str, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// The address a watcher started with `--metrics-addr 127.0.0.1:0` serves on, from its log.
pub fn served_at(watcher: &Proc) -> String {
    let mut addr = String::new();
    let found = wait_until(Duration::from_secs(20), || {
        let log = watcher.stderr_text();
        match log.lines().find(|l| l.contains("serving /metrics")).and_then(|l| l.split("addr=").nth(1)) {
            Some(a) => {
                addr = a.split_whitespace().next().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    assert!(found, "{}", watcher.stderr_text());
    addr
}

/// The members `gfs2-fence-watcher status --json` reports for the world's spool.
pub fn status_members(w: &World) -> Vec<serde_json::Value> {
    let out = Command::new(watcher_bin()).args(["status", "--json", "--spool-dir"]).arg(&w.spool).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    report["members"].as_array().cloned().unwrap_or_default()
}

pub fn in_namespace(script: &str) -> Output {
    Command::new("unshare").args(["-rm", "bash", "-euc", script]).output().expect("unshare (util-linux) is needed")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Asserts that an agent run exited with `code`, showing its output when it did not.
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
