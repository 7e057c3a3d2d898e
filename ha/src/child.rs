//! Children that cannot outlive their owner: fence commands (watcher) and discovery tools (agent).
//!
//! Every child is started in its own process group (so a timeout kills it and everything it
//! started with one `killpg`) with `PR_SET_PDEATHSIG(SIGKILL)`, and checks `getppid()` right after
//! setting it: if the owner died between `fork` and `prctl`, the child exits instead of running
//! unowned. The death signal fires when the *thread* that forked exits, so callers spawn from a
//! thread that outlives the child (the watcher's single runtime thread, the agent's discovery
//! thread that reaps its child before returning).

use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Makes `cmd`'s child a process-group leader that is SIGKILLed when its parent thread dies.
pub fn harden(cmd: &mut Command) -> &mut Command {
    harden_inheriting(cmd, None)
}

/// Like [`harden`], and the child alone (not its siblings) inherits descriptor `inherit`: the
/// per-target lock, so that exclusion on a target lasts as long as any process fencing it lives.
pub fn harden_inheriting(cmd: &mut Command, inherit: Option<RawFd>) -> &mut Command {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system calls
    // (setpgid, prctl, getppid, fcntl, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = inherit {
                let fd = BorrowedFd::borrow_raw(fd);
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
            }
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                nix::libc::_exit(127);
            }
            Ok(())
        })
    }
}

/// SIGKILLs the process group led by `pid` (a child started with [`harden`]). A group that is already
/// gone is not an error; pid 0 (a child that never started) is ignored, as `killpg(0)` would hit the
/// caller's own group.
pub fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}
