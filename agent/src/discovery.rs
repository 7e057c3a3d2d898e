//! GFS2 discovery beside the fence: which GFS2 file systems the fenced node may have been using.
//!
//! It runs in its own thread from the agent's start, asks NNF through `kubectl get nnfstorage -A -o
//! json` (GFS2 `NnfStorage` resources), and never fails or delays a fence beyond its budget: the
//! kubectl child is in its own process group with a death signal, is killed at the budget, and its
//! output is capped. The original's markers stay: `["discovery-disabled"]` when switched off,
//! `["none-detected"]` when nothing was found.

use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Largest kubectl output read.
pub const MAX_OUTPUT: usize = 8 * 1024 * 1024;

/// A discovery running (or finished) in the background.
pub struct Discovery {
    rx: Option<Receiver<Vec<String>>>,
    result: Option<Vec<String>>,
    deadline: Instant,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default, rename = "fileSystemType")]
    file_system_type: String,
}

/// The GFS2 `NnfStorage` names in kubectl's JSON, sorted and de-duplicated.
pub fn gfs2_names(json: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let list: List = serde_json::from_slice(json)?;
    let mut names: Vec<String> =
        list.items.into_iter().filter(|i| i.spec.file_system_type == "gfs2").map(|i| i.metadata.name).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn marker(m: &str) -> Vec<String> {
    vec![m.to_string()]
}

impl Discovery {
    /// Starts discovery (or records that it is disabled).
    pub fn start(enabled: bool, kubectl_cmd: &str, budget: Duration) -> Discovery {
        let deadline = Instant::now() + budget;
        if !enabled {
            return Discovery { rx: None, result: Some(marker("discovery-disabled")), deadline };
        }
        let words: Vec<String> = kubectl_cmd.split_whitespace().map(str::to_string).collect();
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("gfs2-discovery".into()).spawn(move || {
            let _ = tx.send(run_kubectl(&words, deadline));
        });
        match spawned {
            Ok(_) => Discovery { rx: Some(rx), result: None, deadline },
            Err(e) => {
                tracing::warn!("GFS2 discovery not started: {e}");
                Discovery { rx: None, result: Some(marker("none-detected")), deadline }
            }
        }
    }

    /// The result if it is in, without waiting.
    pub fn now(&mut self) -> Option<&[String]> {
        if self.result.is_none() {
            if let Some(v) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
                self.result = Some(v);
            }
        }
        self.result.as_deref()
    }

    /// The result, waiting at most until the budget or `limit`, whichever is sooner.
    pub fn wait(&mut self, limit: Instant) -> Vec<String> {
        if let Some(r) = self.now() {
            return r.to_vec();
        }
        let until = limit.min(self.deadline + Duration::from_millis(100));
        let got = self.rx.as_ref().and_then(|rx| rx.recv_timeout(until.saturating_duration_since(Instant::now())).ok());
        let r = got.unwrap_or_else(|| {
            tracing::warn!("GFS2 discovery did not finish within its budget; recording none-detected");
            marker("none-detected")
        });
        self.result = Some(r.clone());
        r
    }
}

fn run_kubectl(words: &[String], deadline: Instant) -> Vec<String> {
    let Some((program, args)) = words.split_first() else {
        return marker("none-detected");
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .args(["get", "nnfstorage", "-A", "-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    ha::child::harden(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("kubectl not available ({program}: {e}), skipping Kubernetes discovery");
            return marker("none-detected");
        }
    };
    let out = read_until(child.stdout.take().expect("piped"), deadline);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline && out.is_some() => std::thread::sleep(Duration::from_millis(2)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        ha::child::kill_group(child.id());
        let _ = child.wait();
        tracing::warn!("kubectl discovery timed out or printed more than {MAX_OUTPUT} bytes; killed");
        return marker("none-detected");
    };
    let out = out.unwrap_or_default();
    if !status.success() {
        tracing::warn!("kubectl discovery failed ({status})");
        return marker("none-detected");
    }
    match gfs2_names(&out) {
        Ok(names) if !names.is_empty() => names,
        Ok(_) => marker("none-detected"),
        Err(e) => {
            tracing::warn!("cannot parse kubectl JSON output: {e}");
            marker("none-detected")
        }
    }
}

/// Reads a pipe to its end, or gives up (`None`) at the deadline or past [`MAX_OUTPUT`].
fn read_until(mut pipe: std::process::ChildStdout, deadline: Instant) -> Option<Vec<u8>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        match pipe.read(&mut chunk) {
            Ok(0) => return Some(buf),
            Ok(n) if buf.len() + n > MAX_OUTPUT => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gfs2_storages_are_named() {
        let json = br#"{"items":[
            {"metadata":{"name":"b-fs"},"spec":{"fileSystemType":"gfs2"}},
            {"metadata":{"name":"x"},"spec":{"fileSystemType":"lustre"}},
            {"metadata":{"name":"a-fs"},"spec":{"fileSystemType":"gfs2"}},
            {"metadata":{"name":"a-fs"},"spec":{"fileSystemType":"gfs2"}},
            {"metadata":{"name":"nospec"}}]}"#;
        assert_eq!(gfs2_names(json).unwrap(), ["a-fs", "b-fs"]);
        assert!(gfs2_names(b"garbage").is_err());
    }

    #[test]
    fn disabled_and_missing_tools_give_the_original_markers() {
        let mut d = Discovery::start(false, "kubectl", Duration::from_secs(1));
        assert_eq!(d.wait(Instant::now()), ["discovery-disabled"]);
        let mut d = Discovery::start(true, "/nonexistent/kubectl", Duration::from_secs(1));
        assert_eq!(d.wait(Instant::now() + Duration::from_secs(2)), ["none-detected"]);
    }

    #[test]
    fn a_hanging_tool_is_killed_at_the_budget_with_its_group() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("kubectl");
        let pidfile = d.path().join("pid");
        std::fs::write(&script, format!("#!/bin/sh\necho $$ > {}\nexec sleep 300\n", pidfile.display())).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let words = [script.to_str().unwrap().to_string()];
        assert_eq!(run_kubectl(&words, Instant::now() + Duration::from_millis(300)), ["none-detected"]);
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        assert!(!alive, "the hanging kubectl was killed and reaped");
    }
}
