//! Running the discovery tools: every source in its own thread, every tool in its own process
//! group with a death signal ([`crate::os::child::spawn`]), killed with its group at the deadline, its
//! output capped, never through a shell.
//!
//! Tools are found on `PATH` (`dlm_tool`, `crm_node`, `corosync-cmapctl`, `cibadmin`), except
//! kubectl whose command line is configurable (`KUBECTL_CMD` in the original). A source fails as a
//! whole with a message naming the tool and what went wrong; the other sources are unaffected.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::found::Found;
use super::{cib, dlm, nnf};
use crate::os::clock::BootTime;
use crate::protocol::provenance::Source;

/// Largest output read from one tool; more is an error (and the tool is killed).
pub const MAX_OUTPUT: usize = 32 * 1024 * 1024;
/// Bytes of a tool's stderr kept for its error message.
const STDERR_KEPT: usize = 2048;

/// What to ask and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The sources to run.
    pub sources: BTreeSet<Source>,
    /// kubectl's command line (program and leading arguments).
    pub kubectl: Vec<String>,
    /// `--kubeconfig` for kubectl, if any.
    pub kubeconfig: Option<String>,
}

/// One source's result.
#[derive(Debug, Clone)]
pub struct SourceResult {
    /// Which source.
    pub source: Source,
    /// When it started, RFC 3339.
    pub taken: String,
    /// When it started, CLOCK_BOOTTIME.
    pub taken_boottime_ns: u64,
    /// How long it took.
    pub duration: Duration,
    /// What it found, or why it failed.
    pub outcome: Result<Found, String>,
}

/// Why a tool gave no usable output.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Not installed (or not on `PATH`).
    #[error("{0} is not installed or not on PATH")]
    NotFound(String),
    /// Could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The command.
        program: String,
        /// The error.
        source: std::io::Error,
    },
    /// Still running at the deadline: killed with its process group.
    #[error("{program} did not finish within {after_ms} ms and was killed")]
    TimedOut {
        /// The command.
        program: String,
        /// Time allowed.
        after_ms: u128,
    },
    /// Printed more than [`MAX_OUTPUT`]: killed.
    #[error("{program} printed more than {limit} bytes and was killed")]
    TooLarge {
        /// The command.
        program: String,
        /// The limit.
        limit: usize,
    },
    /// Exited unsuccessfully.
    #[error("{program} failed ({status}){stderr}")]
    Failed {
        /// The command.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// `: <first line of stderr>` or nothing.
        stderr: String,
    },
}

/// Runs every source of `tools` in parallel, each within `timeout`; returns in source order.
pub fn discover(tools: &Tools, timeout: Duration) -> Vec<SourceResult> {
    let deadline = Instant::now() + timeout;
    std::thread::scope(|scope| {
        let handles: Vec<_> = tools
            .sources
            .iter()
            .map(|&source| {
                let handle = std::thread::Builder::new()
                    .name(format!("discovery-{source}"))
                    .spawn_scoped(scope, move || run_source(tools, source, deadline));
                (source, handle)
            })
            .collect();
        handles
            .into_iter()
            .map(|(source, handle)| {
                match handle.map_err(|e| e.to_string()).and_then(|h| h.join().map_err(|_| "panicked".into())) {
                    Ok(r) => r,
                    Err(e) => SourceResult {
                        source,
                        taken: crate::os::clock::rfc3339_now(),
                        taken_boottime_ns: BootTime::now().0,
                        duration: Duration::ZERO,
                        outcome: Err(format!("discovery thread: {e}")),
                    },
                }
            })
            .collect()
    })
}

fn run_source(tools: &Tools, source: Source, deadline: Instant) -> SourceResult {
    let taken = crate::os::clock::rfc3339_now();
    let taken_boottime_ns = BootTime::now().0;
    let started = Instant::now();
    let outcome = match source {
        Source::Kubernetes => kubernetes(tools, deadline),
        Source::Dlm => dlm_source(deadline),
        Source::Cib => run_tool(&words("cibadmin"), &["--query"], deadline)
            .map_err(|e| e.to_string())
            .and_then(|out| cib::parse(&String::from_utf8_lossy(&out)).map_err(|e| format!("cibadmin --query: {e}"))),
    };
    SourceResult { source, taken, taken_boottime_ns, duration: started.elapsed(), outcome }
}

fn words(program: &str) -> Vec<String> {
    vec![program.to_string()]
}

fn kubernetes(tools: &Tools, deadline: Instant) -> Result<Found, String> {
    let mut args = vec!["get", nnf::RESOURCES, "--all-namespaces", "--output", "json"];
    if let Some(k) = &tools.kubeconfig {
        args.extend(["--kubeconfig", k.as_str()]);
    }
    let out = run_tool(&tools.kubectl, &args, deadline).map_err(|e| e.to_string())?;
    nnf::parse(&out).map_err(|e| format!("kubectl get {}: {e}", nnf::RESOURCES))
}

fn dlm_source(deadline: Instant) -> Result<Found, String> {
    let text = |program: &str, args: &[&str]| -> Result<String, String> {
        let out = run_tool(&words(program), args, deadline).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    };
    let lockspaces = dlm::parse_ls(&text("dlm_tool", &["ls"])?).map_err(|e| format!("dlm_tool ls: {e}"))?;
    let known = dlm::parse_status(&text("dlm_tool", &["status"])?).map_err(|e| format!("dlm_tool status: {e}"))?;
    let names = match text("crm_node", &["-l"])
        .and_then(|t| dlm::parse_crm_node(&t).map_err(|e| format!("crm_node -l: {e}")))
    {
        Ok(names) => names,
        Err(first) => {
            let t = text("corosync-cmapctl", &["-b", "nodelist.node"])
                .map_err(|e| format!("no node names: {first}; {e}"))?;
            dlm::parse_cmapctl(&t).map_err(|e| format!("no node names: {first}; corosync-cmapctl: {e}"))?
        }
    };
    Ok(dlm::combine(&lockspaces, &known, &names))
}

/// Runs `program args` (no shell) until `deadline`; its stdout, or why there is none.
pub fn run_tool(program: &[String], args: &[&str], deadline: Instant) -> Result<Vec<u8>, ToolError> {
    let (name, leading) = program.split_first().ok_or_else(|| ToolError::NotFound("(empty command)".into()))?;
    let shown = std::iter::once(name.as_str()).chain(leading.iter().map(String::as_str)).chain(args.iter().copied());
    let shown: String = shown.collect::<Vec<_>>().join(" ");
    let argv: Vec<&OsStr> = leading.iter().map(OsStr::new).chain(args.iter().map(OsStr::new)).collect();
    let tool = crate::os::child::Spawn {
        program: Path::new(name),
        args: &argv,
        env: &[],
        base_env: crate::os::child::BaseEnv::Inherit,
        inherit: None,
    };
    // Its stdin is a pipe closed at once: a tool that reads it sees the end. Dropping the child
    // (every early return) kills its group and reaps it.
    let crate::os::child::Spawned { mut child, stdout, stderr, .. } =
        crate::os::child::spawn(&tool).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::NotFound(name.clone()),
            _ => ToolError::Spawn { program: shown.clone(), source: e },
        })?;
    let started = Instant::now();
    let (out, err) = match read_both(File::from(stdout), File::from(stderr), deadline) {
        Reading::Done(out, err) => (out, err),
        stopped => {
            return Err(match stopped {
                Reading::Overflow => ToolError::TooLarge { program: shown, limit: MAX_OUTPUT },
                _ => ToolError::TimedOut {
                    program: shown,
                    after_ms: deadline.saturating_duration_since(started).as_millis(),
                },
            });
        }
    };
    // Both pipes closed: the tool is exiting (or daemonized a child that closed them).
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                return Err(ToolError::TimedOut {
                    program: shown,
                    after_ms: deadline.saturating_duration_since(started).as_millis(),
                });
            }
        }
    };
    if !status.success() {
        let first = String::from_utf8_lossy(&err).lines().find(|l| !l.trim().is_empty()).map(str::to_string);
        return Err(ToolError::Failed {
            program: shown,
            status,
            stderr: first.map(|l| format!(": {l}")).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// How reading a tool's pipes ended.
enum Reading {
    /// Both pipes reached their end: stdout and the start of stderr.
    Done(Vec<u8>, Vec<u8>),
    /// stdout passed [`MAX_OUTPUT`].
    Overflow,
    /// The deadline passed first (or the pipes failed).
    Deadline,
}

/// Reads stdout and stderr to their ends, or until the cap or the deadline.
fn read_both(mut out: File, mut err: File, deadline: Instant) -> Reading {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let (mut obuf, mut ebuf) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    let mut chunk = vec![0u8; 64 * 1024];
    while out_open || err_open {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Reading::Deadline;
        }
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX);
        let flags = |open: bool| if open { PollFlags::POLLIN } else { PollFlags::empty() };
        let mut fds = [PollFd::new(out.as_fd(), flags(out_open)), PollFd::new(err.as_fd(), flags(err_open))];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return Reading::Deadline,
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        let (out_ready, err_ready) = (out_open && ready(&fds[0]), err_open && ready(&fds[1]));
        if out_ready {
            match out.read(&mut chunk) {
                Ok(0) => out_open = false,
                Ok(n) if obuf.len() + n > MAX_OUTPUT => return Reading::Overflow,
                Ok(n) => obuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Reading::Deadline,
            }
        }
        if err_ready {
            match err.read(&mut chunk) {
                Ok(0) => err_open = false,
                Ok(n) => ebuf.extend_from_slice(&chunk[..n.min(STDERR_KEPT.saturating_sub(ebuf.len()))]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Reading::Deadline,
            }
        }
    }
    Reading::Done(obuf, ebuf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, name: &str, body: &str) -> Vec<String> {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![path.to_string_lossy().into_owned()]
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn a_hanging_tool_is_killed_with_its_group_at_the_deadline() {
        let d = tempfile::tempdir().unwrap();
        let pids = d.path().join("pids");
        // The tool and a grandchild that would keep the pipe open.
        let tool = script(d.path(), "hang", &format!("sleep 300 & echo $! $$ > {}\nwait", pids.display()));
        let err = run_tool(&tool, &[], soon(300)).unwrap_err();
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err}");
        for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
            // Killed; init reaps the orphaned grandchild soon after (a zombie still answers kill 0).
            let stat = format!("/proc/{pid}/stat");
            let until = Instant::now() + Duration::from_secs(10);
            let alive = || std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z "));
            while alive() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(!alive(), "process {pid} was killed");
        }
    }

    #[test]
    fn endless_output_is_cut_at_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let tool = script(d.path(), "yes", "exec yes gfs2");
        let err = run_tool(&tool, &[], soon(30_000)).unwrap_err();
        assert!(matches!(err, ToolError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn failures_name_the_tool_and_its_message() {
        let d = tempfile::tempdir().unwrap();
        let tool = script(d.path(), "kubectl", "echo 'error: You must be logged in to the server' >&2\nexit 1");
        let err = run_tool(&tool, &["get", "x"], soon(10_000)).unwrap_err().to_string();
        assert!(err.contains("kubectl get x failed") && err.contains("You must be logged in"), "{err}");
        let missing = run_tool(&["/nonexistent/dlm_tool".to_string()], &["ls"], soon(10_000)).unwrap_err();
        assert!(missing.to_string().contains("not installed"), "{missing}");
        let ok = script(d.path(), "ok", "echo hello; echo noise >&2");
        assert_eq!(run_tool(&ok, &[], soon(10_000)).unwrap(), b"hello\n");
    }
}
