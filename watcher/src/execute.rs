//! Running one fence command: a real process speaking the fence-agents stdin protocol.
//!
//! The command runs directly (never through a shell) with `action=`, `plug=`, `port=` (older agents
//! read it), `nodename=` and the configured options on stdin, and `GFS2_FENCE_REQUEST_ID` in its
//! environment. It is its own process-group leader with `PR_SET_PDEATHSIG(SIGKILL)` (see
//! `ha::child`), spawned from the watcher's single runtime thread, which lives as long as the watcher:
//! a watcher's death never leaves a fence running unowned. At its timeout, or when the watcher aborts
//! it, the whole group is SIGKILLed and reaped. A command that exits without reading stdin is normal.

use std::os::fd::RawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use ha::request::Request;

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

/// The hidden subcommand of `gfs2-fence-watcher` that launches a fence command (see `ha::child`).
pub const LAUNCHER_ARG: &str = "exec-hardened";

/// Sets or clears `FD_CLOEXEC`; returns whether it succeeded.
fn set_cloexec(fd: RawFd, on: bool) -> bool {
    // SAFETY: `fd` is the target lock's descriptor, owned by the caller's `Lock` for this whole call.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = if on { nix::fcntl::FdFlag::FD_CLOEXEC } else { nix::fcntl::FdFlag::empty() };
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags)).is_ok()
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
}

/// The options of `cmd` as stdin lines.
fn option_pairs(cmd: &FenceCommand) -> impl Iterator<Item = (&str, &str)> {
    cmd.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// What the stdin of the `monitor` action says: the action and the configured options.
pub fn monitor_text(cmd: &FenceCommand) -> String {
    let pairs = std::iter::once(("action", "monitor")).chain(option_pairs(cmd));
    ha::fence_args::render(pairs).expect("configuration was validated")
}

/// What the stdin of the command says for a request.
pub fn stdin_text(cmd: &FenceCommand, req: &Request) -> String {
    let plug = cmd.plug.as_deref().unwrap_or(&req.target_node);
    let mut pairs: Vec<(&str, &str)> = vec![("action", req.action.as_str()), ("plug", plug), ("port", plug)];
    if let Some(n) = req.nodename.as_deref() {
        pairs.push(("nodename", n));
    }
    pairs.extend(option_pairs(cmd));
    ha::fence_args::render(pairs).expect("configuration and names were validated")
}

async fn read_capped<R: AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
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
    // Through this very executable as launcher: posix_spawn, so the watcher (large when many
    // requests are pending) is never forked; the launcher sets the death signal and execs.
    let launcher = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut std_cmd = ha::child::launcher_command(&launcher, &[LAUNCHER_ARG], program);
    std_cmd
        .env("GFS2_FENCE_REQUEST_ID", inv.request_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Only this child inherits the target lock: the descriptor is inheritable just for the spawn,
    // which nothing else in this single-threaded runtime can interleave with.
    let inherited = inherit.map(|fd| set_cloexec(fd, false));
    let spawned = tokio::process::Command::from(std_cmd).kill_on_drop(true).spawn();
    if let (Some(fd), Some(true)) = (inherit, inherited) {
        set_cloexec(fd, true);
    }
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            return Execution {
                ending: Ending::SpawnFailed(format!("cannot run {}: {e}", program.display())),
                pid: 0,
                output: String::new(),
                duration: started.elapsed(),
            }
        }
    };
    let pid = child.id().unwrap_or(0);
    on_start(pid);
    let input = inv.stdin;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let out = tokio::spawn(read_capped(child.stdout.take().expect("piped")));
    let err = tokio::spawn(read_capped(child.stderr.take().expect("piped")));
    let ending = tokio::select! {
        status = child.wait() => match status {
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
    // Whatever happened, nothing of this execution may outlive it: kill the group, reap the leader.
    ha::child::kill_group(pid);
    let _ = child.wait().await;
    writer.abort();
    let out = out.await.unwrap_or_default();
    let err = err.await.unwrap_or_default();
    let shown = if err.iter().any(|b| !b.is_ascii_whitespace()) { err } else { out };
    Execution { ending, pid, output: String::from_utf8_lossy(&shown).trim().to_string(), duration: started.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn stdin_carries_action_plug_port_nodename_and_options() {
        let cmd = FenceCommand {
            program: "/bin/true".into(),
            options: BTreeMap::from([("ip".to_string(), "10.0.0.3".to_string())]),
            plug: None,
        };
        let req = Request::parse(
            br#"{"request_id":"0b5f7c9a-1d2e-4f3a-8b4c-5d6e7f8a9b0c","timestamp":"t","action":"off","target_node":"n3","nodename":"node3"}"#,
        )
        .unwrap();
        assert_eq!(stdin_text(&cmd, &req), "action=off\nplug=n3\nport=n3\nnodename=node3\nip=10.0.0.3\n");
    }
}
