//! Where one fence's wall time goes: the critical path of a fence, from the benchmark starting the
//! agent to reaping it, split into steps at kernel events read from a system-wide `perf record` of
//! scheduler and system-call tracepoints (`perf script` output: the events' own timestamps, not
//! estimates). Pure parsing and arithmetic; `bench` runs `perf` and the fences.
//!
//! The steps follow one request through the processes that carry it, each ending where the next
//! begins, so they add up to the traced fence: the agent's start (fork to its read of stdin); the
//! agent's work before the request exists (options, discovery lookup, first log line, the
//! watchers' liveness); the publish (its `renameat2` into `requests/`) to the claiming watcher's
//! wake-up; the claim (to that watcher's `renameat2` into `claimed/` returning); the attempt record
//! (to the fork of the fence command); the spawn (to the command's exec); the command itself (to
//! its `exit_group`); the reap (to the watcher's `wait4` returning it); the answer (to the one-byte
//! write to the agent's FIFO, durable publish included); the agent's wake (to its FIFO read
//! returning); the agent's records of the result (to its `exit_group`); and the exit (to the
//! benchmark's `wait4`). The agent's records of the request are written while the watcher works,
//! off this path.
//!
//! Only the events that mark steps are traced (forks, execs, exits, wake-ups, and the `read`,
//! `write`, `renameat2`, `wait4` and `exit_group` calls), so a traced fence costs about a third
//! more than an untraced one on the benchmark's 2-core VM; the shares are what the table is for.

/// One tracepoint hit as `perf script -F comm,tid,time,event,trace` printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Milliseconds (the trace clock).
    pub ms: f64,
    pub tid: u32,
    /// The tracepoint without its group: `sched_process_fork`, `sys_enter_read`, ….
    pub name: String,
    /// The tracepoint's fields as printed (`comm=… pid=…`, `fd: 0x…, …`, or a return value).
    pub fields: String,
}

impl Event {
    /// A `name=value` field (scheduler events).
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.split_whitespace().find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }

    /// A `name: 0x…` argument (system-call entries), as a number.
    fn arg(&self, name: &str) -> Option<u64> {
        let at = self.fields.find(&format!("{name}: 0x"))? + name.len() + 4;
        let hex: String = self.fields[at..].chars().take_while(char::is_ascii_hexdigit).collect();
        u64::from_str_radix(&hex, 16).ok()
    }

    /// A system-call exit's return value (`0x…`; errors are large values, never a pid).
    fn returned(&self) -> Option<u64> {
        u64::from_str_radix(self.fields.trim().strip_prefix("0x")?, 16).ok()
    }

    fn pid_field(&self, name: &str) -> Option<u32> {
        self.field(name)?.parse().ok()
    }
}

/// The steps, in order.
pub const STEPS: [&str; 12] = [
    "agent start: fork, exec, runtime, to its read of stdin",
    "agent before the request: options, discovery, first log line, watchers alive",
    "publish: the request renamed in, to the claiming watcher's wake-up",
    "claim: the claim lock, the request read, renamed into claimed/",
    "attempt record, to the fork of the fence command",
    "spawn: fork (vfork) to the command's exec",
    "the fence command (/bin/true) runs to its exit",
    "reap: the command's exit to the watcher's wait4",
    "answer: outcome checks, response written durably, the agent's FIFO written",
    "agent wake: FIFO write to the agent's read",
    "agent records the result, exits",
    "exit: exit_group to the benchmark's wait4",
];

/// Parses `perf script -F comm,tid,time,event,trace` output (comm may hold spaces).
pub fn parse(text: &str) -> Vec<Event> {
    let mut events: Vec<Event> = text
        .lines()
        .filter_map(|line| {
            let (head, rest) = line.split_once(": ")?;
            let (event, fields) = rest.trim_start().split_once(": ").unwrap_or((rest.trim(), ""));
            let (_, name) = event.trim_end_matches(':').split_once(':')?;
            let mut head = head.split_whitespace().rev();
            let ms = head.next()?.parse::<f64>().ok()? * 1000.0;
            let tid = head.next()?.parse().ok()?;
            Some(Event { ms, tid, name: name.to_string(), fields: fields.trim().to_string() })
        })
        .collect();
    events.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    events
}

/// One fence split into [`STEPS`], in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub ms: [f64; STEPS.len()],
}

impl Split {
    pub fn total(&self) -> f64 {
        self.ms.iter().sum()
    }
}

/// Splits the fence whose agent had process id `agent`, or `None` when a boundary is missing
/// (events lost by the tracer, or a fence that did not take the watchers' path).
pub fn split(events: &[Event], agent: u32) -> Option<Split> {
    let first = |from: f64, f: &dyn Fn(&Event) -> bool| events.iter().find(|e| e.ms >= from && f(e));
    let fork_of = |e: &Event, child: Option<u32>, parent: Option<u32>| {
        e.name == "sched_process_fork"
            && child.is_none_or(|c| e.pid_field("child_pid") == Some(c))
            && parent.is_none_or(|p| e.pid_field("pid") == Some(p))
    };
    let forked = first(0.0, &|e| fork_of(e, Some(agent), None))?;
    let stdin = first(forked.ms, &|e| e.tid == agent && e.name == "sys_enter_read" && e.arg("fd") == Some(0))?;
    let publish = first(stdin.ms, &|e| e.tid == agent && e.name == "sys_enter_renameat2" && e.arg("flags") == Some(1))?;
    // The claim: the first no-replace rename of another process after the publish.
    let claim_call =
        first(publish.ms, &|e| e.tid != agent && e.name == "sys_enter_renameat2" && e.arg("flags") == Some(1))?;
    let w = claim_call.tid;
    let claimed = first(claim_call.ms, &|e| e.tid == w && e.name == "sys_exit_renameat2")?;
    let woke = first(publish.ms, &|e| e.name == "sched_wakeup" && e.pid_field("pid") == Some(w))?;
    let fork = first(claimed.ms, &|e| fork_of(e, None, Some(w)))?;
    let child = fork.pid_field("child_pid")?;
    let exec = first(fork.ms, &|e| e.tid == child && e.name == "sched_process_exec")?;
    let exit = first(exec.ms, &|e| e.tid == child && e.name == "sys_enter_exit_group")?;
    let reaped_by = |who: u32, pid: u32| {
        move |e: &Event| e.tid == who && e.name == "sys_exit_wait4" && e.returned() == Some(u64::from(pid))
    };
    let reap = first(exit.ms, &reaped_by(w, child))?;
    let fifo = first(reap.ms, &|e| e.tid == w && e.name == "sys_enter_write" && e.arg("count") == Some(1))?;
    let read = first(fifo.ms, &|e| e.tid == agent && e.name == "sys_exit_read" && e.returned() == Some(1))?;
    let gone = first(read.ms, &|e| e.tid == agent && e.name == "sys_enter_exit_group")?;
    let bench = forked.tid;
    let reaped = first(gone.ms, &reaped_by(bench, agent))?;
    let marks = [
        forked.ms, stdin.ms, publish.ms, woke.ms, claimed.ms, fork.ms, exec.ms, exit.ms, reap.ms, fifo.ms, read.ms,
        gone.ms, reaped.ms,
    ];
    let mut split = Split { ms: [0.0; STEPS.len()] };
    for (i, pair) in marks.windows(2).enumerate() {
        if pair[1] < pair[0] {
            return None;
        }
        split.ms[i] = pair[1] - pair[0];
    }
    Some(split)
}

/// The median of each step over `splits`, as markdown rows `| step | ms | share |` and a total
/// row. Medians of parts do not add up to the median total exactly; both are given.
pub fn table(splits: &[Split]) -> String {
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let total = median(splits.iter().map(Split::total).collect());
    let mut out = String::from("| step (traced) | median ms | share |\n|---|---|---|\n");
    for (i, step) in STEPS.iter().enumerate() {
        let ms = median(splits.iter().map(|s| s.ms[i]).collect());
        out += &format!("| {step} | {ms:.3} | {:.0}% |\n", 100.0 * ms / total.max(f64::EPSILON));
    }
    out += &format!("| the whole fence, traced ({} fences) | {total:.3} | 100% |\n", splits.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One fence as `perf script` printed it (the events that matter, with some that do not),
    /// abridged from a real trace of the benchmark's rig: agent 1000, watchers 200 and 300, the
    /// fence command 1001.
    const TRACE: &str = "\
     fence-bench   900 58252.000000:      sched:sched_process_fork: comm=fence-bench pid=900 child_comm=fence-bench child_pid=1000
 fence_gfs2_reco  1000 58252.000500:      sched:sched_process_exec: filename=/x/fence_gfs2_recorder pid=1000 old_pid=1000
 fence_gfs2_reco  1000 58252.000900:       syscalls:sys_enter_read: fd: 0x00000003, buf: 0x5555721a7b10, count: 0x00000400
 fence_gfs2_reco  1000 58252.001000:       syscalls:sys_enter_read: fd: 0x00000000, buf: 0x5555721a83c0, count: 0x00002000
 fence_gfs2_reco  1000 58252.001001:        syscalls:sys_exit_read: 0x5c
 fence_gfs2_reco  1000 58252.002000:  syscalls:sys_enter_renameat2: olddfd: 0xffffff9c, oldname: 0x7fff, newdfd: 0xffffff9c, newname: 0x7ffe, flags: 0x00000001
 fence_gfs2_reco  1000 58252.002030:            sched:sched_wakeup: comm=gfs2-fence-watc pid=300 prio=120 target_cpu=000
 fence_gfs2_reco  1000 58252.002040:            sched:sched_wakeup: comm=gfs2-fence-watc pid=200 prio=120 target_cpu=001
 fence_gfs2_reco  1000 58252.002050:   syscalls:sys_exit_renameat2: 0x0
 gfs2-fence-watc   200 58252.002300:  syscalls:sys_enter_renameat2: olddfd: 0xffffff9c, oldname: 0x7ffd, newdfd: 0xffffff9c, newname: 0x7ffc, flags: 0x00000001
 gfs2-fence-watc   200 58252.002400:   syscalls:sys_exit_renameat2: 0x0
 gfs2-fence-watc   200 58252.002500:      syscalls:sys_enter_write: fd: 0x00000002, buf: 0x5555604dd790, count: 0x000000b9
 gfs2-fence-watc   200 58252.002600:      sched:sched_process_fork: comm=gfs2-fence-watc pid=200 child_comm=gfs2-fence-watc child_pid=1001
 fence_gfs2_reco  1000 58252.002700:      sched:sched_process_fork: comm=fence_gfs2_reco pid=1000 child_comm=fence_gfs2_reco child_pid=1002
            true  1001 58252.002900:      sched:sched_process_exec: filename=/bin/true pid=1001 old_pid=1001
            true  1001 58252.003300: syscalls:sys_enter_exit_group: error_code: 0x00000000
 gfs2-fence-watc   200 58252.003400:       syscalls:sys_exit_wait4: 0x0
 gfs2-fence-watc   200 58252.003500:       syscalls:sys_exit_wait4: 0x3e9
 gfs2-fence-watc   200 58252.003550:      syscalls:sys_enter_write: fd: 0x00000015, buf: 0x5555604da6e0, count: 0x0000001b
 gfs2-fence-watc   200 58252.003800:      syscalls:sys_enter_write: fd: 0x00000014, buf: 0x7fbc92e4ab3b, count: 0x00000001
 fence_gfs2_reco  1000 58252.003850:        syscalls:sys_exit_read: 0xfffffffffffffff5
 fence_gfs2_reco  1000 58252.003900:        syscalls:sys_exit_read: 0x1
 fence_gfs2_reco  1000 58252.004400: syscalls:sys_enter_exit_group: error_code: 0x00000000
     fence-bench   900 58252.004500:       syscalls:sys_exit_wait4: 0x3e8
";

    #[test]
    fn every_line_is_an_event_with_its_time_process_and_fields() {
        let events = parse(TRACE);
        assert_eq!(events.len(), TRACE.lines().count());
        let fork = &events[0];
        assert_eq!(
            (fork.tid, fork.name.as_str(), fork.pid_field("child_pid")),
            (900, "sched_process_fork", Some(1000))
        );
        assert!((fork.ms - 58_252_000.0).abs() < 1e-6);
        let rename = events.iter().find(|e| e.name == "sys_enter_renameat2").expect("the publish");
        assert_eq!(rename.arg("flags"), Some(1));
        assert_eq!(events.last().expect("events").returned(), Some(1000));
    }

    #[test]
    fn a_fence_splits_into_steps_that_add_up_to_it() {
        let split = split(&parse(TRACE), 1000).expect("every boundary is in the trace");
        let expect = [1.0, 1.0, 0.040, 0.360, 0.200, 0.300, 0.400, 0.200, 0.300, 0.100, 0.500, 0.100];
        for (i, (got, want)) in split.ms.iter().zip(expect).enumerate() {
            assert!((got - want).abs() < 1e-6, "step {i} ({}): {got} ms, expected {want}", STEPS[i]);
        }
        assert!((split.total() - 4.5).abs() < 1e-6);
    }

    #[test]
    fn a_fence_with_a_boundary_missing_is_not_split() {
        let without_fifo: String =
            TRACE.lines().filter(|l| !l.contains("count: 0x00000001")).map(|l| format!("{l}\n")).collect();
        assert_eq!(split(&parse(&without_fifo), 1000), None);
        assert_eq!(split(&parse(TRACE), 4242), None, "another agent's fence is not in this trace");
    }

    #[test]
    fn the_table_gives_every_step_and_the_total() {
        let s = split(&parse(TRACE), 1000).expect("split");
        let t = table(&[s.clone(), s]);
        assert_eq!(t.lines().count(), 2 + STEPS.len() + 1);
        assert!(t.contains("| the whole fence, traced (2 fences) | 4.500 | 100% |"), "{t}");
    }
}
