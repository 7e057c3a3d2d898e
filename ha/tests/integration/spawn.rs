//! `ha::os::child::spawn` with real processes: streams, environment, process group, the descriptor the
//! child alone inherits, signal dispositions, the death signal when the spawning thread ends, and
//! a dropped child's group killed.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use ha::os::child::{spawn, BaseEnv, HardenedChild, Spawn, Spawned};

fn sh<'a>(script: &'a [&'a OsStr]) -> Spawn<'a> {
    Spawn { program: Path::new("sh"), args: script, env: &[], base_env: BaseEnv::Inherit, inherit: None }
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

fn wait(child: &mut HardenedChild) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "child {} still running", child.id());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `script` with `sh -c`, closes its stdin after `input`; its status, stdout and stderr.
fn run(script: &str, input: &str, env: &[(&str, &str)]) -> (ExitStatus, u32, String, String) {
    let args = [OsStr::new("-c"), OsStr::new(script)];
    let Spawned { mut child, stdin, stdout, stderr } = spawn(&Spawn { env, ..sh(&args) }).unwrap();
    std::fs::File::from(stdin).write_all(input.as_bytes()).unwrap();
    let (out, err) = (read_all(stdout), read_all(stderr));
    (wait(&mut child), child.id(), out, err)
}

#[test]
fn streams_environment_and_exit_status() {
    let (status, _, out, err) = run(
        "cat; echo \"id=$GFS2_FENCE_REQUEST_ID\"; echo oops >&2; exit 3",
        "action=off\n",
        &[("GFS2_FENCE_REQUEST_ID", "r-1")],
    );
    assert_eq!(status.code(), Some(3));
    assert_eq!(out, "action=off\nid=r-1\n");
    assert_eq!(err, "oops\n");
}

#[test]
fn the_child_leads_its_own_process_group() {
    let (status, pid, out, _) = run("cut -d' ' -f5 /proc/$$/stat", "", &[]);
    assert!(status.success());
    assert_eq!(out.trim(), pid.to_string(), "pgid of the child");
}

#[test]
fn a_missing_program_is_an_error_not_a_child() {
    let err = spawn(&Spawn {
        program: Path::new("/nonexistent/fence_x"),
        args: &[],
        env: &[],
        base_env: BaseEnv::Inherit,
        inherit: None,
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = spawn(&Spawn {
        program: Path::new("no-such-fence-agent"),
        args: &[],
        env: &[],
        base_env: BaseEnv::Inherit,
        inherit: None,
    })
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn only_the_named_descriptor_is_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let kept = std::fs::File::create(dir.path().join("kept")).unwrap();
    let other = std::fs::File::create(dir.path().join("other")).unwrap();
    let script = format!(
        "test -e /proc/self/fd/{k} && echo kept; test -e /proc/self/fd/{o} && echo leaked; true",
        k = kept.as_raw_fd(),
        o = other.as_raw_fd()
    );
    let args = [OsStr::new("-c"), OsStr::new(&script)];
    let Spawned { mut child, stdout, .. } = spawn(&Spawn { inherit: Some(kept.as_raw_fd()), ..sh(&args) }).unwrap();
    assert_eq!(read_all(stdout), "kept\n");
    assert!(wait(&mut child).success());
    // The caller's own copy is still closed on exec.
    let flags = nix::fcntl::fcntl(&kept, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & nix::libc::FD_CLOEXEC, 0);
}

#[test]
fn sigpipe_is_back_to_its_default_in_the_child() {
    // This test process ignores SIGPIPE, as every Rust program does.
    let args = [OsStr::new("/proc/self/status")];
    let Spawned { mut child, stdout, .. } = spawn(&Spawn {
        program: Path::new("/bin/cat"),
        args: &args,
        env: &[],
        base_env: BaseEnv::Inherit,
        inherit: None,
    })
    .unwrap();
    let status = read_all(stdout);
    assert!(wait(&mut child).success());
    let ignored = status.lines().find_map(|l| l.strip_prefix("SigIgn:")).unwrap().trim();
    let mask = u64::from_str_radix(ignored, 16).unwrap();
    assert_eq!(mask & (1 << (nix::libc::SIGPIPE - 1)), 0, "SigIgn {ignored}");
}

#[test]
fn the_child_dies_with_the_thread_that_spawned_it() {
    let args = [OsStr::new("30")];
    let spawned = std::thread::spawn(move || {
        spawn(&Spawn { program: Path::new("sleep"), args: &args, env: &[], base_env: BaseEnv::Inherit, inherit: None })
            .unwrap()
    })
    .join()
    .unwrap();
    let mut child = spawned.child;
    assert_eq!(wait(&mut child).signal(), Some(nix::libc::SIGKILL));
}

#[test]
fn dropping_the_child_kills_its_whole_group() {
    let args = [OsStr::new("-c"), OsStr::new("sleep 30 & echo $!; wait")];
    let Spawned { child, stdout, .. } = spawn(&sh(&args)).unwrap();
    let mut line = String::new();
    let mut out = std::fs::File::from(stdout);
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let grandchild: i32 = line.trim().parse().unwrap();
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    // Gone, or a zombie waiting for whoever adopted it.
    while std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the grandchild {grandchild} survived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_minimal_environment_keeps_only_path_locale_and_time_zone() {
    std::env::set_var("GFS2_SPAWN_TEST_SECRET", "hunter2");
    let args = [OsStr::new("-c"), OsStr::new("env")];
    let cmd = Spawn { base_env: BaseEnv::Minimal, env: &[("GFS2_FENCE_REQUEST_ID", "r1")], ..sh(&args) };
    let Spawned { mut child, stdout, .. } = spawn(&cmd).unwrap();
    let out = read_all(stdout);
    wait(&mut child);
    let names: Vec<&str> =
        out.lines().filter_map(|l| l.split('=').next()).filter(|n| *n != "PWD" && *n != "SHLVL" && *n != "_").collect();
    assert!(names.iter().all(|n| ["PATH", "LANG", "LC_ALL", "TZ", "GFS2_FENCE_REQUEST_ID"].contains(n)), "{out}");
    assert!(out.contains("GFS2_FENCE_REQUEST_ID=r1") && out.contains("PATH="), "{out}");
    assert!(!out.contains("hunter2"));
}

#[test]
fn descriptors_inherited_from_the_parent_never_reach_a_child() {
    // A descriptor without close-on-exec, as a careless parent of the watcher leaves one.
    let f = std::fs::File::open("/proc/self/stat").unwrap();
    let fd = 213;
    // SAFETY: dup2 onto a high descriptor number this test owns, without close-on-exec.
    assert_eq!(unsafe { nix::libc::dup2(f.as_raw_fd(), fd) }, fd);
    ha::os::child::cloexec_inherited();
    let args = [OsStr::new("-c"), OsStr::new("ls /proc/self/fd")];
    let Spawned { mut child, stdout, .. } = spawn(&sh(&args)).unwrap();
    let out = read_all(stdout);
    wait(&mut child);
    let fds: Vec<i32> = out.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    assert!(!fds.contains(&fd), "fd {fd} leaked into the child: {fds:?}");
    // SAFETY: closes the descriptor made above.
    unsafe { nix::libc::close(fd) };
    drop(f);
}
