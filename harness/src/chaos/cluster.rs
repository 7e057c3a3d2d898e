//! The watchers under attack: real `gfs2-fence-watcher` processes on one spool, started, killed,
//! frozen, thawed and restarted by id.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How every watcher is started.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    /// `gfs2-fence-watcher`.
    pub watcher_bin: PathBuf,
    /// The fence command.
    pub fence_command: PathBuf,
    /// `KEY=VALUE` options for it.
    pub fence_options: Vec<String>,
    /// The spool.
    pub spool: PathBuf,
    /// Where watchers' stderr goes.
    pub log_dir: PathBuf,
    /// Heartbeat TTL.
    pub ttl: Duration,
    /// Further options of `gfs2-fence-watcher run`.
    pub extra: Vec<String>,
}

/// The cluster.
pub struct Cluster {
    spec: WatcherSpec,
    procs: Vec<Option<Child>>,
    frozen: Vec<bool>,
}

impl Cluster {
    /// A cluster of `n` watchers `w1`..`wn`, none started yet.
    pub fn new(spec: WatcherSpec, n: usize) -> Cluster {
        Cluster { spec, procs: (0..n).map(|_| None).collect(), frozen: vec![false; n] }
    }

    /// Starts `n` watchers `w1`..`wn`.
    pub fn start(spec: WatcherSpec, n: usize) -> std::io::Result<Cluster> {
        let mut c = Cluster::new(spec, n);
        for i in 0..n {
            c.restart(i)?;
        }
        Ok(c)
    }

    /// Watcher `i`'s id.
    pub fn id(i: usize) -> String {
        format!("w{}", i + 1)
    }

    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Watcher `i`'s pid, if it runs.
    pub fn pid(&mut self, i: usize) -> Option<u32> {
        self.reap();
        self.procs[i].as_ref().map(Child::id)
    }

    /// The index of the watcher with `pid`.
    pub fn index_of_pid(&mut self, pid: u32) -> Option<usize> {
        (0..self.len()).find(|&i| self.pid(i) == Some(pid))
    }

    /// Forgets watchers that died (SIGKILLed by us or by a peer).
    fn reap(&mut self) {
        for (i, p) in self.procs.iter_mut().enumerate() {
            if let Some(child) = p {
                if let Ok(Some(_)) = child.try_wait() {
                    *p = None;
                    self.frozen[i] = false;
                }
            }
        }
    }

    /// Indices of running watchers.
    pub fn alive(&mut self) -> Vec<usize> {
        self.reap();
        (0..self.len()).filter(|&i| self.procs[i].is_some()).collect()
    }

    /// Starts watcher `i` if it is not running.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.reap();
        if self.procs[i].is_some() {
            return Ok(());
        }
        let s = &self.spec;
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(s.log_dir.join(format!("{}.stderr", Self::id(i))))?;
        let child = Command::new(&s.watcher_bin)
            .arg("run")
            .arg("--spool-dir")
            .arg(&s.spool)
            .arg("--fence-command")
            .arg(&s.fence_command)
            .args(s.fence_options.iter().map(|o| format!("--fence-option={o}")))
            .args(["--id", &Self::id(i), "--ttl", &format!("{}", s.ttl.as_secs_f64())])
            .args(["--heartbeat-interval", "0.2", "--rescan-interval", "0.3", "--health-interval", "0"])
            .args(["--shutdown-grace", "1"])
            .args(&s.extra)
            .env("GFS2_FENCE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()?;
        self.procs[i] = Some(child);
        self.frozen[i] = false;
        Ok(())
    }

    /// Sends `sig` to watcher `i`; returns its pid.
    pub fn signal(&mut self, i: usize, sig: Signal) -> Option<u32> {
        let pid = self.pid(i)?;
        kill(Pid::from_raw(pid as i32), sig).ok()?;
        match sig {
            Signal::SIGSTOP => self.frozen[i] = true,
            Signal::SIGCONT => self.frozen[i] = false,
            _ => {}
        }
        Some(pid)
    }

    /// Thaws every frozen watcher.
    pub fn thaw_all(&mut self) {
        for i in 0..self.len() {
            if self.frozen[i] {
                self.signal(i, Signal::SIGCONT);
            }
        }
    }

    /// Stops every watcher with SIGTERM and waits.
    pub fn stop(&mut self) {
        self.thaw_all();
        for p in self.procs.iter_mut().flatten() {
            let _ = kill(Pid::from_raw(p.id() as i32), Signal::SIGTERM);
        }
        for p in self.procs.iter_mut() {
            if let Some(mut c) = p.take() {
                let _ = c.wait();
            }
        }
    }

    /// The spool.
    pub fn spool(&self) -> &Path {
        &self.spec.spool
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
