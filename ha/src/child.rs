//! Children that cannot outlive their owner: fence commands (watcher) and discovery tools (agent, leader).
//!
//! Every child is started in its own process group (so a timeout kills it and everything it
//! started with one `killpg`) with `PR_SET_PDEATHSIG(SIGKILL)`, and checks `getppid()` right after
//! setting it: if the owner died between `fork` and `prctl`, the child exits instead of running
//! unowned. The death signal fires when the *thread* that forked exits, so callers spawn from a
//! thread that outlives the child (the watcher's single runtime thread, the agent's discovery
//! thread that reaps its child before returning). The watcher starts its commands through itself as
//! a launcher (`posix_spawn`, no fork of a large process; see [`launcher_command`]).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Makes `cmd`'s child a process-group leader that is SIGKILLed when its parent thread dies.
///
/// This forks the caller (a `pre_exec` closure rules out `posix_spawn`), copying its page tables:
/// fine for a small process such as the agent. A large one (a watcher indexing many requests) uses
/// [`launcher_command`] instead.
pub fn harden(cmd: &mut Command) -> &mut Command {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system calls
    // (setpgid, prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            if nix::unistd::getppid() != parent {
                nix::libc::_exit(127);
            }
            Ok(())
        })
    }
}

/// A command that runs `program` hardened like [`harden`] without forking the caller: `launcher`
/// (an executable that calls [`exec_hardened`] with these arguments) is started with
/// `posix_spawn` in a new process group, sets its death signal, checks its parent, and execs
/// `program` in its own place (same pid, same group, same descriptors).
pub fn launcher_command(launcher: &Path, launcher_args: &[&str], program: &Path) -> Command {
    let mut cmd = Command::new(launcher);
    cmd.args(launcher_args).arg(nix::unistd::getpid().as_raw().to_string()).arg(program).process_group(0);
    cmd
}

/// The launcher's side of [`launcher_command`]: death signal, parent check, then exec. Returns only
/// on failure.
pub fn exec_hardened(parent: i32, program: &Path) -> std::io::Error {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return e.into();
    }
    if nix::unistd::getppid().as_raw() != parent {
        std::process::exit(127);
    }
    Command::new(program).exec()
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
