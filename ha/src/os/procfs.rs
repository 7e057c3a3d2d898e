//! What `/proc/<pid>/stat` says about a process: enough to never signal a reused pid and to tell a
//! process stuck in uninterruptible sleep from a dead one.

/// A process's identity and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// State letter (`R`, `S`, `D`, `T`, `Z`, ...).
    pub state: char,
    /// Parent pid.
    pub ppid: u32,
    /// Process group.
    pub pgrp: u32,
    /// Start time after boot, in clock ticks (field 22).
    pub start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat` (the command name may contain spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Reads a process's stat; `None` when it does not exist.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parentheses() {
        let text = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        let s = parse_stat(text).unwrap();
        assert_eq!((s.state, s.ppid, s.pgrp, s.start_time), ('S', 1, 1234, 98765));
        assert!(parse_stat("garbage").is_none());
        let me = stat(std::process::id()).unwrap();
        assert_eq!(me.ppid as i32, nix::unistd::getppid().as_raw());
        assert_eq!(me.pgrp as i32, nix::unistd::getpgrp().as_raw());
        assert!(stat(u32::MAX / 2).is_none());
    }
}
