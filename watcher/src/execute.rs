//! Running one fence command: a real process speaking the fence-agents stdin protocol.
//!
//! The command runs directly (never through a shell) with `action=`, `plug=`, `port=` (older agents
//! read it), `nodename=` and the configured options on stdin, and `GFS2_FENCE_REQUEST_ID` in its
//! environment. It is its own process-group leader with `PR_SET_PDEATHSIG(SIGKILL)` (see
//! `ha::os::child`), spawned from the watcher's single runtime thread, which lives as long as the watcher:
//! a watcher's death never leaves a fence running unowned. At its timeout, or when the watcher aborts
//! it, the whole group is SIGKILLed and reaped. A command that exits without reading stdin is normal.

use std::os::fd::RawFd;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use ha::os::child::{BaseEnv, HardenedChild, Spawn};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

use ha::protocol::request::Request;

use crate::config::FenceCommand;

/// Output kept from each of stdout and stderr.
const MAX_OUTPUT: usize = 16 * 1024;

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by a signal it did not get from us.
    Signalled(i32),
    /// It ran past its timeout and was killed with its group.
    TimedOut(Duration),
    /// The watcher is shutting down and killed it.
    Aborted,
    /// It could not be started.
    SpawnFailed(String),
    /// It could not be started for a passing reason (EMFILE, ENFILE, EAGAIN, ENOMEM: descriptors,
    /// processes or memory short for a moment): it never ran, and may be started again.
    NotStarted(String),
}

impl std::fmt::Display for Ending {
    /// How it ended, in words (for messages and health reports).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Exited(code) => write!(f, "exited with status {code}"),
            Ending::Signalled(sig) => write!(f, "was killed by signal {sig}"),
            Ending::TimedOut(after) => write!(f, "ran past its {:.1}s timeout and was killed", after.as_secs_f64()),
            Ending::Aborted => write!(f, "was killed as the watcher shut down"),
            Ending::SpawnFailed(why) => write!(f, "could not be started: {why}"),
            Ending::NotStarted(why) => write!(f, "could not be started for now: {why}"),
        }
    }
}

/// One execution's result.
#[derive(Debug, Clone)]
pub struct Execution {
    /// How it ended.
    pub ending: Ending,
    /// Its process id (0 if it never started).
    pub pid: u32,
    /// The end of what it printed (stderr, else stdout), for the response's message.
    pub output: String,
    /// How long it ran.
    pub duration: Duration,
}

/// One run of a command: what to run, what to tell it.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The executable.
    pub program: &'a Path,
    /// Its stdin (`key=value` lines).
    pub stdin: String,
    /// `GFS2_FENCE_REQUEST_ID` in its environment.
    pub request_id: &'a str,
    /// The configuration's variables for it.
    pub environment: &'a std::collections::BTreeMap<String, String>,
}

/// The options of `cmd` as stdin lines.
fn option_pairs(cmd: &FenceCommand) -> impl Iterator<Item = (&str, &str)> {
    cmd.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// What the stdin of the `monitor` action says: the action and the configured options.
pub fn monitor_text(cmd: &FenceCommand) -> String {
    let pairs = std::iter::once(("action", "monitor")).chain(option_pairs(cmd));
    ha::protocol::fence_args::render(pairs).expect("configuration was validated")
}

/// What the stdin of the command says for a request.
pub fn stdin_text(cmd: &FenceCommand, req: &Request) -> String {
    let plug = cmd.plug.as_deref().unwrap_or(&req.target_node);
    let mut pairs: Vec<(&str, &str)> = vec![("action", req.action.as_str()), ("plug", plug), ("port", plug)];
    if let Some(n) = req.nodename.as_deref() {
        pairs.push(("nodename", n));
    }
    pairs.extend(option_pairs(cmd));
    ha::protocol::fence_args::render(pairs).expect("configuration and names were validated")
}

/// Up to [`MAX_OUTPUT`] bytes of what `r` gives until its end (nothing if it cannot be read).
async fn read_capped<R: AsyncRead + Unpin>(r: std::io::Result<R>) -> Vec<u8> {
    let Ok(mut r) = r else { return Vec::new() };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
    kept
}

/// Waits for `child` to end: reaps it at each SIGCHLD (`sigchld` must exist before the child does,
/// so that no signal is missed).
async fn exited(child: &mut HardenedChild, sigchld: &mut Signal) -> std::io::Result<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        sigchld.recv().await;
    }
}

/// Runs `inv` for at most `budget`; `abort` set to true kills it. `inherit` is a descriptor the child
/// alone inherits (the target lock). `on_start` gets the pid as soon as the process exists.
pub async fn execute(
    inv: Invocation<'_>,
    budget: Duration,
    inherit: Option<RawFd>,
    abort: &mut watch::Receiver<bool>,
    on_start: impl FnOnce(u32),
) -> Execution {
    let started = Instant::now();
    let program = inv.program;
    let failed = |e: std::io::Error| Execution {
        ending: if ha::error::transient(&e) {
            Ending::NotStarted(format!("cannot start {} now: {e}", program.display()))
        } else {
            Ending::SpawnFailed(format!("cannot run {}: {e}", program.display()))
        },
        pid: 0,
        output: String::new(),
        duration: started.elapsed(),
    };
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    // Started without forking the watcher (large when many requests are pending) and without an
    // intermediate program; the death signal is set before the exec (`ha::os::child::spawn`).
    let env: Vec<(&str, &str)> = inv
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once(("GFS2_FENCE_REQUEST_ID", inv.request_id)))
        .collect();
    let spawn = Spawn { program, args: &[], env: &env, base_env: BaseEnv::Minimal, inherit };
    let spawned = match ha::os::child::spawn(&spawn) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let mut child = spawned.child;
    let pid = child.id();
    on_start(pid);
    let input = inv.stdin;
    let stdin = pipe::Sender::from_owned_fd(spawned.stdin);
    let writer = tokio::spawn(async move {
        if let Ok(mut stdin) = stdin {
            let _ = stdin.write_all(input.as_bytes()).await;
        }
    });
    let out = tokio::spawn(read_capped(pipe::Receiver::from_owned_fd(spawned.stdout)));
    let err = tokio::spawn(read_capped(pipe::Receiver::from_owned_fd(spawned.stderr)));
    let ending = tokio::select! {
        status = exited(&mut child, &mut sigchld) => match status {
            Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(c), _) => Ending::Exited(c),
                (None, Some(sig)) => Ending::Signalled(sig),
                (None, None) => Ending::Signalled(0),
            },
            Err(e) => Ending::SpawnFailed(format!("waiting for {}: {e}", program.display())),
        },
        _ = tokio::time::sleep(budget) => Ending::TimedOut(budget),
        _ = abort.wait_for(|a| *a) => Ending::Aborted,
    };
    // Whatever happened, nothing of this execution may outlive it: kill the group, reap the leader,
    // and kill what escaped the group (adopted by this watcher, its subreaper).
    ha::os::child::kill_group(pid);
    if matches!(ending, Ending::TimedOut(_) | Ending::Aborted) {
        let _ = exited(&mut child, &mut sigchld).await;
    }
    ha::os::child::kill_escaped();
    writer.abort();
    // The output pipes close when every holder is gone; a descendant that escaped even the
    // subreaper (a double fork reparented elsewhere) could hold them open: never wait past a moment.
    let out = collect(out).await;
    let err = collect(err).await;
    let shown = if err.iter().any(|b| !b.is_ascii_whitespace()) { err } else { out };
    Execution { ending, pid, output: String::from_utf8_lossy(&shown).trim().to_string(), duration: started.elapsed() }
}

/// How long the output of an ended command is waited for after it ended.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

async fn collect(reader: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    let abort = reader.abort_handle();
    match tokio::time::timeout(OUTPUT_GRACE, reader).await {
        Ok(read) => read.unwrap_or_default(),
        Err(_) => {
            abort.abort();
            b"(output not complete: a descendant of the command kept its pipes open)".to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn stdin_carries_action_plug_port_nodename_and_options() {
        let cmd = FenceCommand {
            environment: BTreeMap::new(),
            program: "/bin/true".into(),
            options: BTreeMap::from([("ip".to_string(), "10.0.0.3".to_string())]),
            plug: None,
            sessions: None,
        };
        let req = Request::parse(
            br#"{"request_id":"0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c","timestamp":"t","action":"off","target_node":"n3","nodename":"node3"}"#,
        )
        .unwrap();
        assert_eq!(stdin_text(&cmd, &req), "action=off\nplug=n3\nport=n3\nnodename=node3\nip=10.0.0.3\n");
    }
}
