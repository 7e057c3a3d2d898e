//! Children that cannot outlive their owner: fence commands (watcher) and discovery tools (agent, leader).
//!
//! Every child is started by [`spawn`] in its own process group (so a timeout kills it and
//! everything it started with one `killpg`) with `PR_SET_PDEATHSIG(SIGKILL)`, and checks
//! `getppid()` right after setting it: if the owner died between `clone` and `prctl`, the child
//! exits instead of running unowned. The death signal fires when the *thread* that spawned exits,
//! so callers spawn from a thread that outlives the child (the watcher's single runtime thread, a
//! discovery thread that reaps its tools before returning). The caller is never forked (a watcher
//! may be large) and no intermediate program runs.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::libc;
use nix::sched::CloneFlags;
use nix::sys::signal::{killpg, pthread_sigmask, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

/// A command for [`spawn`]: the executable, its arguments and what it adds to the environment.
#[derive(Debug, Clone)]
pub struct Spawn<'a> {
    /// The executable: a path, or a bare name looked up in `PATH` (as `execvp` would).
    pub program: &'a Path,
    /// Its arguments after `argv[0]` (which is `program`).
    pub args: &'a [&'a OsStr],
    /// Variables set (or replaced) for the child.
    pub env: &'a [(&'a str, &'a str)],
    /// What the child gets of the caller's environment besides `env`.
    pub base_env: BaseEnv,
    /// A descriptor the child alone inherits (the caller's copy keeps `FD_CLOEXEC`).
    pub inherit: Option<RawFd>,
}

/// What a child gets of its caller's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseEnv {
    /// All of it (the discovery tools: kubectl needs `KUBECONFIG`, `HOME`, proxies).
    Inherit,
    /// Only [`MINIMAL_ENV`] (fence commands): nothing else of the watcher's environment leaks.
    Minimal,
}

/// The variables a fence command keeps from the watcher's environment: `PATH` (default
/// `/usr/sbin:/usr/bin:/sbin:/bin` when unset), the locale and the time zone.
pub const MINIMAL_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ"];

/// The `PATH` a fence command gets when the watcher has none.
pub const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Marks every descriptor this process inherited (3 and above) close-on-exec, so that no child
/// ever receives what the process's own parent left open (`7 -> /etc/hostname`, a pipe): only
/// stdio and a deliberately inherited descriptor reach a child. Run once at start, before any
/// thread; descriptors this process opens itself are close-on-exec already (Rust opens them so).
pub fn cloexec_inherited() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<RawFd> =
        dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number change only its close-on-exec flag (the
        // directory listing's own descriptor may be gone already: EBADF is ignored).
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// A child started by [`spawn`], with the caller's ends of its standard streams.
#[derive(Debug)]
pub struct Spawned {
    /// The child; dropping it kills its group and reaps it.
    pub child: HardenedChild,
    /// Write end of its stdin.
    pub stdin: OwnedFd,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
}

/// A process-group leader started by [`spawn`]. It is reaped by [`HardenedChild::try_wait`]; if
/// dropped before that, its group is SIGKILLed and it is reaped (by a short-lived thread if it does
/// not die at once), so no child of the caller is left running or unreaped.
#[derive(Debug)]
pub struct HardenedChild {
    pid: Pid,
    reaped: bool,
}

impl HardenedChild {
    /// Its pid (also its process group).
    pub fn id(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Reaps it if it has ended (`waitpid(WNOHANG)`): its exit status, or `None` while it runs.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if self.reaped {
            return Err(std::io::Error::other("child already reaped"));
        }
        let mut status = 0;
        // SAFETY: plain system call on our own child's pid.
        match unsafe { libc::waitpid(self.pid.as_raw(), &mut status, libc::WNOHANG) } {
            0 => Ok(None),
            -1 => Err(std::io::Error::last_os_error()),
            _ => {
                self.reaped = true;
                forget_spawned(self.pid.as_raw());
                Ok(Some(ExitStatus::from_raw(status)))
            }
        }
    }
}

impl Drop for HardenedChild {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        kill_group(self.id());
        if let Ok(Some(_)) = self.try_wait() {
            return;
        }
        reap_later(self.pid);
    }
}

/// The children [`spawn`] started and nobody reaped yet: every other child of this process is an
/// escaped descendant adopted as its subreaper (see [`kill_escaped`]).
static SPAWNED: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn forget_spawned(pid: i32) {
    SPAWNED.lock().unwrap_or_else(|p| p.into_inner()).remove(&pid);
}

/// Reaps `pid` in a short-lived thread: a SIGKILLed process can take a moment (or, in
/// uninterruptible sleep, long) to die.
fn reap_later(pid: Pid) {
    std::thread::spawn(move || {
        let _ = nix::sys::wait::waitpid(pid, None);
        forget_spawned(pid.as_raw());
    });
}

/// Makes this process the subreaper of its descendants (`PR_SET_CHILD_SUBREAPER`): a descendant of
/// a fence command that escapes its process group (`setsid sleep 40 &`) and outlives the command is
/// adopted by this process instead of init, so that [`kill_escaped`] can find it.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// This process's children: from `/proc/self/task/<tid>/children` (a few small reads), or, where the
/// kernel lacks that file, every process in `/proc` (checked by its parent pid by the caller).
fn children() -> Vec<i32> {
    let parse = |text: &str| text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()).collect::<Vec<_>>();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        let mut found = Vec::new();
        let mut readable = false;
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                readable = true;
                found.extend(parse(&text));
            }
        }
        if readable {
            return found;
        }
    }
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs (with its process group, when it leads one) and reaps every child of this process that
/// [`spawn`] did not start: descendants of ended fence commands, adopted through
/// [`become_subreaper`]. They may still hold the fence's target lock or its output pipes; nothing of
/// an execution may outlive it. Returns how many were found.
pub fn kill_escaped() -> usize {
    let me = std::process::id() as i32;
    let spawned = SPAWNED.lock().unwrap_or_else(|p| p.into_inner());
    let mut n = 0;
    for pid in children() {
        let Some(stat) = crate::os::procfs::stat(pid as u32) else { continue };
        if stat.ppid as i32 != me || spawned.contains(&pid) {
            continue;
        }
        if stat.state == 'Z' {
            // An adopted descendant that died by itself: reap it.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            continue;
        }
        if stat.pgrp == pid as u32 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        tracing::warn!(pid, "killed a descendant of a fence command that outlived it");
        reap_later(Pid::from_raw(pid));
        n += 1;
    }
    n
}

/// Stack of the child between `clone` and `execve`: it only makes system calls.
const SPAWN_STACK: usize = 64 * 1024;

/// Starts `cmd` hardened — its own process group, `PR_SET_PDEATHSIG(SIGKILL)`, the parent checked
/// after setting it — without forking the caller and without an intermediate program: `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does, with the death signal set in
/// the child before `execve`. The caller's thread is suspended until the child has executed the
/// program (or failed to, which is returned as the `execve` error); the caller's other threads run
/// on, and the child touches no memory they use: everything it needs is prepared beforehand, all
/// signals are blocked across the `clone`, and the child resets every handled signal (and
/// `SIGPIPE`, which Rust ignores) to its default before unblocking them. Stdin, stdout and stderr are
/// pipes; every other descriptor of the caller is closed on exec except `cmd.inherit`.
pub fn spawn(cmd: &Spawn<'_>) -> std::io::Result<Spawned> {
    let program = resolve(cmd.program)?;
    let c = |s: &OsStr| CString::new(s.as_bytes()).map_err(|_| std::io::Error::other("NUL byte in argument"));
    let path = c(program.as_os_str())?;
    let argv_c = std::iter::once(Ok(c(cmd.program.as_os_str())?))
        .chain(cmd.args.iter().map(|a| c(a)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let kept = |k: &OsStr| cmd.base_env == BaseEnv::Inherit || MINIMAL_ENV.iter().any(|m| k == *m);
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> =
        std::env::vars_os().filter(|(k, _)| kept(k) && !cmd.env.iter().any(|(n, _)| k == n)).collect();
    if cmd.base_env == BaseEnv::Minimal && !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env.extend(cmd.env.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let envp_c = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            c(&kv)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let argv: Vec<*const libc::c_char> =
        argv_c.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        envp_c.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let (stdin_r, stdin_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (stdout_r, stdout_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (stderr_r, stderr_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let wiring = [(stdin_r.as_raw_fd(), 0), (stdout_w.as_raw_fd(), 1), (stderr_w.as_raw_fd(), 2)];
    let inherit = cmd.inherit.unwrap_or(-1);
    let parent = nix::unistd::getpid().as_raw();
    let exec_errno = AtomicI32::new(0);
    let mut stack = vec![0u8; SPAWN_STACK];
    let child_main = Box::new(|| -> isize {
        // SAFETY: only system calls on values prepared above; no allocation, no lock, no unwinding.
        unsafe { exec_child(&path, &argv, &envp, &wiring, inherit, parent, &exec_errno) }
    });
    // Held across the clone: `kill_escaped` never sees this child before it is registered.
    let mut spawned = SPAWNED.lock().unwrap_or_else(|p| p.into_inner());
    let mut blocked = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut blocked))?;
    // SAFETY: CLONE_VM | CLONE_VFORK suspends this thread until the child has exec'd or exited, so
    // the child's stack and the data it reads outlive its use; the child runs `exec_child` only.
    let cloned = unsafe {
        nix::sched::clone(child_main, &mut stack, CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK, Some(libc::SIGCHLD))
    };
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&blocked), None)?;
    let pid = cloned?;
    spawned.insert(pid.as_raw());
    drop(spawned);
    let child = HardenedChild { pid, reaped: false };
    match exec_errno.load(Ordering::SeqCst) {
        0 => Ok(Spawned { child, stdin: stdin_w, stdout: stdout_r, stderr: stderr_r }),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// `program` as `execvp` would find it: as is when it names a path, else the first executable
/// `PATH` entry (`/bin:/usr/bin` without `PATH`).
fn resolve(program: &Path) -> std::io::Result<PathBuf> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return Ok(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file())
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
}

/// The child's side of [`spawn`], between `clone` and `execve`. Returns only by exiting.
///
/// # Safety
/// Runs in a `CLONE_VM` child while the parent thread is suspended: it must only make system
/// calls on the prepared values, never allocate or take a lock.
unsafe fn exec_child(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    wiring: &[(RawFd, RawFd); 3],
    inherit: RawFd,
    parent: libc::pid_t,
    exec_errno: &AtomicI32,
) -> isize {
    let fail = |errno: i32| -> ! {
        exec_errno.store(errno.max(1), Ordering::SeqCst);
        libc::_exit(127)
    };
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
    // A handler of the parent's must never run in this child, which shares its memory; ignored
    // signals stay ignored across exec, except SIGPIPE (Rust ignores it; programs expect the default).
    for sig in 1..libc::SIGRTMAX() + 1 {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            continue;
        }
        if old.sa_sigaction != libc::SIG_IGN || sig == libc::SIGPIPE {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
        }
    }
    if libc::setpgid(0, 0) != 0 || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
        fail(errno());
    }
    if libc::getppid() != parent {
        libc::_exit(127);
    }
    for &(from, to) in wiring {
        let wired = if from == to { libc::fcntl(from, libc::F_SETFD, 0) } else { libc::dup2(from, to) };
        if wired < 0 {
            fail(errno());
        }
    }
    if inherit >= 0 && libc::fcntl(inherit, libc::F_SETFD, 0) != 0 {
        fail(errno());
    }
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    fail(errno())
}

/// SIGKILLs the process group led by `pid` (a child started with [`spawn`]). A group that is already
/// gone is not an error; pid 0 (a child that never started) is ignored, as `killpg(0)` would hit the
/// caller's own group.
pub fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}
