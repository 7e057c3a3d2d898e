//! `fence-bench`: the cost the fencing path adds, measured with the real binaries on a tmpfs spool
//! and a fence command that does nothing (`/bin/true`, or the test executor where a ledger is
//! needed). It prints one table with the machine it ran on. No test asserts any of these figures:
//! they go to `docs/maintainers/BENCHMARKS.md` with the command that produced them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use ha::os::clock::BootTime;
use ha::spool::{Dir, Spool};

use crate::chaos::cluster::{Cluster, WatcherSpec};

/// What to run.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "fence-bench",
    about = "Measure the overhead, throughput, failover, footprint and scale of gfs2-fencing"
)]
pub struct Config {
    /// Fences timed in the overhead run (inotify).
    #[arg(long, default_value = "500")]
    pub fences: usize,
    /// Fences timed in the polling run (rescan every 500 ms, no inotify).
    #[arg(long, default_value = "100")]
    pub polled_fences: usize,
    /// Requests drained in the throughput run.
    #[arg(long, default_value = "10000")]
    pub queued: usize,
    /// Failover trials.
    #[arg(long, default_value = "50")]
    pub trials: usize,
    /// Pending requests in the large scale run.
    #[arg(long, default_value = "100000")]
    pub scale: usize,
    /// Directory of the binaries (default: this program's).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where the spools go (tmpfs).
    #[arg(long, default_value = "/dev/shm")]
    pub tmpfs: PathBuf,
    /// Also measure the fence overhead with the spool on this directory of a disk file system
    /// (ext4, xfs): the durable answer's fsyncs reach a disk there. `make bench` run as root
    /// loop-mounts an ext4 image for it; without it the row says it was not measured.
    #[arg(long, value_name = "DIR")]
    pub disk: Option<PathBuf>,
    /// Fences split into their steps under a system-wide `perf record` of tracepoints (needs perf
    /// and the right to trace: root, or kernel.perf_event_paranoid at -1); 0 leaves it out.
    #[arg(long, default_value = "50")]
    pub breakdown: usize,
}

/// The binaries.
struct Bins {
    agent: PathBuf,
    watcher: PathBuf,
    executor: PathBuf,
    nnf_standin: PathBuf,
}

/// The disk spool's file system and its fence by step (the table, or why there is none).
type DiskSteps = (String, Result<String, String>);

/// Fences' times with the agent's peak RSS, and the spawns timed beside them (sorted).
type FencesAndSpawns = (Vec<(Duration, i64)>, Vec<Duration>);

/// p50 (ms) of `n` runs of the command `make` gives, each started and waited for.
fn status_p50(n: usize, make: impl Fn() -> Command) -> f64 {
    let mut t: Vec<Duration> = (0..n.max(1))
        .filter_map(|_| {
            let t0 = Instant::now();
            make().status().ok().map(|_| t0.elapsed())
        })
        .collect();
    t.sort();
    pct(&t, 0.5)
}

/// Durable publishes in a directory of their own, as a watcher's answer is placed (PROTOCOL.md,
/// "What survives a crash"): a small file written and fsynced, renamed into place, its directory
/// fsynced. The file system's own floor for the disk spool, measured with std alone.
struct Publisher {
    work: tempfile::TempDir,
    done: usize,
}

impl Publisher {
    fn new(dir: &Path) -> std::io::Result<Publisher> {
        Ok(Publisher { work: tempfile::Builder::new().prefix("fence-bench-publish.").tempdir_in(dir)?, done: 0 })
    }

    /// Times one publish.
    fn once(&mut self) -> std::io::Result<Duration> {
        use std::io::Write;
        let i = self.done;
        self.done += 1;
        let (tmp, dest) = (self.work.path().join(format!(".{i}.tmp")), self.work.path().join(format!("{i}.json")));
        let t0 = Instant::now();
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(br#"{"request_id":"00000000-0000-4000-8000-000000000000","success":true}"#)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(self.work.path())?.sync_all()?;
        Ok(t0.elapsed())
    }
}

/// p50 (ms) of `n` durable publishes in `dir`, one after the other.
fn durable_publish_p50(dir: &Path, n: usize) -> std::io::Result<f64> {
    let mut publisher = Publisher::new(dir)?;
    let mut t = (0..n.max(1)).map(|_| publisher.once()).collect::<std::io::Result<Vec<_>>>()?;
    t.sort();
    Ok(pct(&t, 0.5))
}

/// p50 (ms) of the agent's start alone: `-o metadata` reads nothing and writes only its XML.
fn agent_start_p50(agent: &Path, n: usize) -> f64 {
    status_p50(n, || {
        let mut c = Command::new(agent);
        c.args(["-o", "metadata"]).stdout(Stdio::null());
        c
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// `p50 …, p99 …, max …` of sorted times, in ms.
fn spread(sorted: &[Duration]) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(sorted, 0.5), pct(sorted, 0.99), pct(sorted, 1.0))
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

/// Polls `cond` every 200 µs (cheap conditions timed to the millisecond) until `limit`.
fn wait(what: &str, limit: Duration, cond: impl FnMut() -> bool) -> Result<(), String> {
    wait_every(what, limit, Duration::from_micros(200), cond)
}

/// Polls `cond` every `interval` until `limit`.
fn wait_every(what: &str, limit: Duration, interval: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let end = Instant::now() + limit;
    while !cond() {
        if Instant::now() > end {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(interval);
    }
    Ok(())
}

/// A spool on tmpfs with a cluster of `n` watchers.
struct Rig {
    _dir: tempfile::TempDir,
    spool: Spool,
    root: PathBuf,
    cluster: Cluster,
}

impl Rig {
    /// `n` watcher slots, all started (and waited for) unless `idle`.
    fn new(
        base: &Path,
        bins: &Bins,
        n: usize,
        idle: bool,
        executor: bool,
        extra: &[&str],
    ) -> Result<Rig, Box<dyn std::error::Error>> {
        let dir = tempfile::Builder::new().prefix("fence-bench.").tempdir_in(base)?;
        let root = dir.path().to_path_buf();
        let spool = Spool::new(root.join("spool"));
        spool.prepare(&ha::spool::WATCHER_DIRS)?;
        std::fs::write(root.join("behavior.json"), "{}")?;
        let (fence_command, fence_options) = if executor {
            let opts = vec![
                format!("ledger={}", root.join("ledger.jsonl").display()),
                format!("behavior_file={}", root.join("behavior.json").display()),
            ];
            (bins.executor.clone(), opts)
        } else {
            (PathBuf::from("/bin/true"), Vec::new())
        };
        let spec = WatcherSpec {
            watcher_bin: bins.watcher.clone(),
            fence_command,
            fence_options,
            spool: spool.base().to_path_buf(),
            log_dir: root.clone(),
            ttl: Duration::from_secs(5),
            // The leader's discovery rounds would run tools beside the measurement; the snapshot
            // row writes its own discovery.json.
            extra: ["--discovery-interval", "0"].iter().chain(extra).map(|s| s.to_string()).collect(),
        };
        if idle {
            return Ok(Rig { _dir: dir, spool, root, cluster: Cluster::new(spec, n) });
        }
        let cluster = Cluster::start(spec, n)?;
        let members = spool.dir(Dir::Members);
        wait("watchers", Duration::from_secs(60), || {
            std::fs::read_dir(&members)
                .map(|r| r.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
                .unwrap_or(0)
                >= n
        })?;
        Ok(Rig { _dir: dir, spool, root, cluster })
    }

    /// Twenty untimed fences, then `n` timed ones on targets `n0..`: (time, agent peak RSS) each.
    /// `n` fences after 20 to warm up, each after one spawn of `/bin/true` timed on the same rig at
    /// the same moment: the fences' times (with the agent's peak RSS) and the spawns' times, so that
    /// their ratio compares like with like (a spawn measured apart drifts with the machine's state).
    fn warmed_fences(&self, bins: &Bins, n: usize) -> Result<FencesAndSpawns, Box<dyn std::error::Error>> {
        for i in 0..20 {
            self.fence(bins, &format!("warm{i}"), false)?;
        }
        let mut spawns = Vec::with_capacity(n);
        let mut fences = Vec::with_capacity(n);
        for i in 0..n {
            let t0 = Instant::now();
            Command::new("/bin/true").status()?;
            spawns.push(t0.elapsed());
            fences.push(self.fence(bins, &format!("n{i}"), false)?);
        }
        spawns.sort();
        Ok((fences, spawns))
    }

    /// Times one fence; with `discovery`, the agent looks the target up in `discovery.json`.
    /// Returns the time and the agent's peak RSS in KiB.
    fn fence(&self, bins: &Bins, target: &str, discovery: bool) -> Result<(Duration, i64), Box<dyn std::error::Error>> {
        self.fence_with(bins, target, if discovery { "discovery_timeout=0.5\n" } else { "no_gfs2_discovery=1\n" })
    }

    /// Times one fence with `extra` stdin lines (see [`Rig::fence`]).
    fn fence_with(
        &self,
        bins: &Bins,
        target: &str,
        extra: &str,
    ) -> Result<(Duration, i64), Box<dyn std::error::Error>> {
        self.fence_traced(bins, target, extra).map(|(took, peak, _)| (took, peak))
    }

    /// [`Rig::fence_with`], also returning the agent's process id (to find it in a trace).
    fn fence_traced(
        &self,
        bins: &Bins,
        target: &str,
        extra: &str,
    ) -> Result<(Duration, i64, u32), Box<dyn std::error::Error>> {
        let stdin = format!(
            "action=off\nport={target}\nspool_dir={}\nlog_dir={}\n{extra}",
            self.spool.base().display(),
            self.root.join("logs").display(),
        );
        let started = Instant::now();
        let mut child =
            Command::new(&bins.agent).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        child.stdin.take().expect("piped").write_all(stdin.as_bytes())?;
        let (code, peak_kib) = wait_with_peak(child.id())?;
        let took = started.elapsed();
        if code != 0 {
            return Err(format!("a fence failed (wait status {code})").into());
        }
        Ok((took, peak_kib, child.id()))
    }

    /// Queues `n` requests as the agent writes them (over `targets` targets), without agents.
    fn queue(&self, n: usize, targets: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let boot = ha::os::clock::boot_id()?;
        let deadline = BootTime::now().after(Duration::from_secs(3600)).0;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let id = uuid::Uuid::new_v4().to_string();
            let json = format!(
                r#"{{"request_id":"{id}","timestamp":"t","action":"off","target_node":"n{}","version":1,"deadline_boottime_ns":{deadline},"boot_id":"{boot}"}}"#,
                i % targets
            );
            ha::fsio::write_new(&self.spool.dir(Dir::Tmp), &self.spool.request_path(&id), json.as_bytes())?;
            ids.push(id);
        }
        Ok(ids)
    }
}

/// Times `cfg.fences` fences (`off`) through the agent with `responder=nnf-sos` and the nnf-sos
/// stand-in: each fence's time, and the agent's share of it (from the moment the stand-in's answer
/// was complete to the agent reaped), both sorted. With `storage`, every target has storage groups
/// (nnf-sos's rename path).
fn nnf_fences(
    cfg: &Config,
    bins: &Bins,
    storage: bool,
) -> Result<(Vec<Duration>, Vec<Duration>), Box<dyn std::error::Error>> {
    let dir = tempfile::Builder::new().prefix("fence-bench-nnf.").tempdir_in(&cfg.tmpfs)?;
    let (requests, responses) = (dir.path().join("requests"), dir.path().join("responses"));
    let groups: serde_json::Map<String, serde_json::Value> = (0..cfg.fences + 20)
        .filter(|_| storage)
        .map(|i| (format!("c{i}"), serde_json::json!([format!("sg-c{i}")])))
        .collect();
    std::fs::write(dir.path().join("storage.json"), serde_json::Value::Object(groups).to_string())?;
    let mut standin = Command::new(&bins.nnf_standin)
        .arg("--requests")
        .arg(&requests)
        .arg("--responses")
        .arg(&responses)
        .arg("--storage")
        .arg(dir.path().join("storage.json"))
        .arg("--ledger")
        .arg(dir.path().join("fences.jsonl"))
        .arg("--answered")
        .arg(dir.path().join("answered"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait("the nnf-sos stand-in", Duration::from_secs(20), || responses.is_dir())?;
    let fence = |i: usize| -> Result<(Duration, u64), Box<dyn std::error::Error>> {
        let stdin = format!(
            "action=off\nport=c{i}\nresponder=nnf-sos\nrequest_dir={}\nresponse_dir={}\nlog_dir={}\nno_gfs2_discovery=1\n",
            requests.display(),
            responses.display(),
            dir.path().join("logs").display()
        );
        let started = Instant::now();
        let mut child =
            Command::new(&bins.agent).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        child.stdin.take().expect("piped").write_all(stdin.as_bytes())?;
        let status = child.wait()?;
        let reaped = BootTime::now().0;
        let took = started.elapsed();
        if !status.success() {
            return Err(format!("a fence through the nnf-sos stand-in failed ({status})").into());
        }
        Ok((took, reaped))
    };
    let result = (0..cfg.fences + 20).map(&fence).collect::<Result<Vec<_>, _>>();
    let _ = standin.kill();
    let _ = standin.wait();
    let fences = result?.split_off(20);
    // The stand-in's answers in order: one per fence, the warm-up's first.
    let answered: Vec<u64> = std::fs::read_to_string(dir.path().join("answered"))?
        .lines()
        .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .collect();
    let answered = answered.get(20..).ok_or("the stand-in noted fewer answers than fences")?;
    let mut shares: Vec<Duration> =
        fences.iter().zip(answered).map(|((_, reaped), at)| Duration::from_nanos(reaped.saturating_sub(*at))).collect();
    let mut times: Vec<Duration> = fences.into_iter().map(|(t, _)| t).collect();
    times.sort();
    shares.sort();
    Ok((times, shares))
}

/// The tracepoints [`crate::breakdown`] reads.
const TRACEPOINTS: &str = "sched:sched_process_fork,sched:sched_process_exec,sched:sched_wakeup,\
    syscalls:sys_enter_read,syscalls:sys_exit_read,syscalls:sys_enter_write,syscalls:sys_enter_renameat2,\
    syscalls:sys_exit_renameat2,syscalls:sys_exit_wait4,syscalls:sys_enter_exit_group";

/// `n` fences on `rig` under a system-wide `perf record` of [`TRACEPOINTS`], each split into its
/// steps ([`crate::breakdown`]): the table, or why there is none.
fn breakdown(rig: &Rig, bins: &Bins, n: usize) -> Result<String, String> {
    let data = rig.root.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "-q", "-a", "-e", TRACEPOINTS, "-o"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("perf could not be started ({e}); install perf (linux-perf, perf)"))?;
    // perf creates its file once the events are armed.
    let armed = wait_every("perf record", Duration::from_secs(30), Duration::from_millis(50), || {
        std::fs::metadata(&data).is_ok_and(|m| m.len() > 0) || perf.try_wait().ok().flatten().is_some()
    });
    if let Some(status) = perf.try_wait().ok().flatten() {
        let mut why = String::new();
        let _ = std::io::Read::read_to_string(&mut perf.stderr.take().expect("piped"), &mut why);
        return Err(format!("perf record ended at once ({status}): {}", why.trim()));
    }
    std::thread::sleep(Duration::from_millis(500));
    let fences = armed.map_err(|e| e.to_string()).and_then(|()| {
        (0..n)
            .map(|i| {
                // Apart, so that each fence's watchers are idle again when the next one starts.
                std::thread::sleep(Duration::from_millis(20));
                rig.fence_traced(bins, &format!("traced{i}"), "no_gfs2_discovery=1\n")
                    .map(|(_, _, pid)| pid)
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<u32>, String>>()
    });
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(perf.id() as i32), Signal::SIGINT);
    let _ = perf.wait();
    let script = Command::new("perf")
        .args(["script", "-F", "comm,tid,time,event,trace", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    let events = crate::breakdown::parse(&String::from_utf8_lossy(&script.stdout));
    let splits: Vec<_> = fences?.into_iter().filter_map(|pid| crate::breakdown::split(&events, pid)).collect();
    if splits.is_empty() {
        return Err(format!("no fence of {n} could be followed through the trace in {}", data.display()));
    }
    Ok(crate::breakdown::table(&splits))
}

/// Reaps `pid` with wait4(2): its wait status and the peak RSS of that process alone (KiB).
fn wait_with_peak(pid: u32) -> std::io::Result<(i32, i64)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types.
        let r = unsafe { nix::libc::wait4(pid as i32, &mut status, 0, &mut usage) };
        if r == pid as i32 {
            return Ok((status, usage.ru_maxrss));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A leader snapshot of `nodes` nodes `n0…`, four GFS2 file systems each from two sources.
fn write_snapshot(spool: &Spool, nodes: usize) -> Result<(), Box<dyn std::error::Error>> {
    use ha::discovery::run::SourceResult;
    use ha::discovery::snapshot::{self, Round, Snapshot};
    use ha::discovery::Found;
    use ha::protocol::provenance::Source;
    let now = BootTime::now();
    let found = |prefix: &str| Found {
        nodes: (0..nodes)
            .map(|i| (format!("n{i}"), (0..4).map(|f| format!("{prefix}-{}", (i + f) % 64)).collect()))
            .collect(),
        notes: Vec::new(),
    };
    let result = |source, prefix| SourceResult {
        source,
        taken: ha::os::clock::rfc3339_now(),
        taken_boottime_ns: now.0,
        duration: Duration::from_millis(30),
        outcome: Ok(found(prefix)),
    };
    let round = Round {
        taken: now,
        taken_rfc3339: ha::os::clock::rfc3339_now(),
        boot_id: ha::os::clock::boot_id()?,
        watcher_id: Some("bench".into()),
        epoch: Some(1),
        interval: Duration::from_secs(30),
        memory: Duration::from_secs(600),
    };
    let snap = Snapshot::update(None, &round, &[result(Source::Kubernetes, "nnf"), result(Source::Dlm, "ls")]);
    ha::fsio::write_replace(&spool.dir(Dir::Tmp), &snapshot::path(spool), &serde_json::to_vec(&snap)?)?;
    Ok(())
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The machine, for the table's header.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} cores ({cpu}), {:.1} GiB, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        total as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The result table, and a copy of each row on stderr as it is measured.
struct Table {
    text: String,
}

impl Table {
    fn new(bin_dir: &Path) -> Table {
        Table {
            text: format!(
                "machine: {}\nbinaries: {}\n\n| measure | result |\n|---|---|\n",
                machine(),
                bin_dir.display()
            ),
        }
    }

    fn row(&mut self, name: &str, value: String) {
        eprintln!("{name}: {value}");
        self.text += &format!("| {name} | {value} |\n");
    }
}

/// What the fence-overhead rows leave for the later ones.
struct FenceRun {
    /// The tmpfs fence's p50 (ms) and one spawn's (ms).
    p50: f64,
    spawn: f64,
    /// Peak RSS of the agent (KiB), without and with the discovery snapshot.
    agent_peak: i64,
    agent_peak_snapshot: i64,
    /// The idle watchers' RSS (KiB).
    idle: Vec<u64>,
    /// The breakdown of one fence by step, or why there is none; `None` when not asked.
    steps: Option<Result<String, String>>,
}

/// Runs every benchmark and returns the table.
pub fn run(cfg: &Config) -> Result<String, Box<dyn std::error::Error>> {
    let dir = match &cfg.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().ok_or("no bin dir")?.to_path_buf(),
    };
    let bins = Bins {
        agent: dir.join("fence_gfs2_recorder"),
        watcher: dir.join("gfs2-fence-watcher"),
        executor: dir.join("gfs2-fence-test-executor"),
        nnf_standin: dir.join("nnf-sos-standin"),
    };
    let mut t = Table::new(&dir);
    let fence = fence_rows(cfg, &bins, &mut t)?;
    nnf_rows(cfg, &bins, &mut t)?;
    let disk_steps = disk_rows(cfg, &bins, &fence, &mut t)?;
    let loaded_rss = throughput_rows(cfg, &bins, &mut t)?;
    chassis_rows(&bins, cfg, &mut t)?;
    ceiling_rows(cfg, &mut t)?;
    failover_rows(cfg, &bins, &mut t)?;
    footprint_rows(&bins, &fence, loaded_rss, &mut t)?;
    scale_rows(cfg, &bins, &mut t)?;
    // One fence's wall time by step (traced on the rig of the fence-overhead rows).
    match fence.steps {
        Some(Ok(table)) => {
            t.text +=
                &format!("\nOne fence by step, under perf record ({:.2} ms untraced, p50 above):\n\n{table}", fence.p50)
        }
        Some(Err(why)) => t.text += &format!("\nOne fence by step: not measured: {why}\n"),
        None => {}
    }
    match disk_steps {
        Some((fs, Ok(table))) => t.text += &format!("\nThe same with the spool on {fs}, under perf record:\n\n{table}"),
        Some((fs, Err(why))) => t.text += &format!("\nOne fence by step with the spool on {fs}: not measured: {why}\n"),
        None => {}
    }
    Ok(t.text)
}

/// Fence overhead on tmpfs: with inotify, from the discovery snapshot, a v2 client, polling; the
/// agent's start, one spawn, one durable publish; the breakdown's fences on the same rig.
fn fence_rows(cfg: &Config, bins: &Bins, t: &mut Table) -> Result<FenceRun, Box<dyn std::error::Error>> {
    // 1. Fence overhead, inotify and polling.
    let rig = Rig::new(&cfg.tmpfs, bins, 3, false, false, &[])?;
    let (runs, spawns) = rig.warmed_fences(bins, cfg.fences)?;
    let agent_peak = runs.iter().map(|r| r.1).max().unwrap_or(0);
    let mut times: Vec<Duration> = runs.into_iter().map(|r| r.0).collect();
    times.sort();
    write_snapshot(&rig.spool, cfg.fences)?;
    let runs: Vec<(Duration, i64)> =
        (0..cfg.fences).map(|i| rig.fence(bins, &format!("n{i}"), true)).collect::<Result<_, _>>()?;
    let agent_peak_snapshot = runs.iter().map(|r| r.1).max().unwrap_or(0);
    // A protocol v2 client (our agent speaking upstream's names to an external responder, which our
    // watchers are here): hidden temporary, <target>-<uuid>.json, inotify on responses/.
    let mut v2times: Vec<Duration> = (0..cfg.fences)
        .map(|i| {
            rig.fence_with(bins, &format!("v2n{i}"), "no_gfs2_discovery=1\nresponder=external\nprotocol=2\n")
                .map(|r| r.0)
        })
        .collect::<Result<_, _>>()?;
    v2times.sort();
    let steps = match cfg.breakdown {
        0 => None,
        n => Some(breakdown(&rig, bins, n)),
    };
    let mut dtimes: Vec<Duration> = runs.into_iter().map(|r| r.0).collect();
    dtimes.sort();
    let idle: Vec<u64> = {
        let mut c = rig.cluster;
        std::thread::sleep(Duration::from_secs(1));
        let pids: Vec<u32> = (0..c.len()).filter_map(|i| c.pid(i)).collect();
        let r = pids.iter().map(|p| rss_kib(*p, "VmRSS:")).collect();
        c.stop();
        r
    };
    let p50 = pct(&times, 0.5);
    let spawn = pct(&spawns, 0.5);
    t.row(
        &format!("one process spawn: /bin/true started and reaped ({} times, each before a fence)", cfg.fences),
        format!("p50 {spawn:.2} ms"),
    );
    let agent_start = agent_start_p50(&bins.agent, cfg.fences);
    t.row(
        &format!("the agent's start alone: fence_gfs2_recorder -o metadata ({} times)", cfg.fences),
        format!("p50 {agent_start:.2} ms; {:.1}x one spawn", agent_start / spawn),
    );
    let tmpfs_publish = durable_publish_p50(&cfg.tmpfs, cfg.fences)?;
    t.row(
        &format!(
            "one durable publish on {} at {} ({} times)",
            ha::spool::fs_name(&cfg.tmpfs)?,
            cfg.tmpfs.display(),
            cfg.fences
        ),
        format!("p50 {tmpfs_publish:.3} ms"),
    );
    t.row(
        &format!("fence overhead, inotify ({} fences, 3 idle watchers, /bin/true)", cfg.fences),
        format!("{}; p50 {:.1}x one spawn", spread(&times), p50 / spawn),
    );
    t.row(
        &format!("fence overhead, discovery from the leader's snapshot ({} nodes, same run)", cfg.fences),
        spread(&dtimes),
    );
    t.row(
        &format!("fence overhead, a protocol v2 client through the watchers ({} fences, same run)", cfg.fences),
        spread(&v2times),
    );
    let polled = Rig::new(&cfg.tmpfs, bins, 3, false, false, &["--no-inotify", "--rescan-interval", "0.5"])?;
    let mut ptimes: Vec<Duration> = (0..cfg.polled_fences)
        .map(|i| polled.fence(bins, &format!("p{i}"), false).map(|r| r.0))
        .collect::<Result<_, _>>()?;
    ptimes.sort();
    drop(polled);
    let pp50 = pct(&ptimes, 0.5);
    t.row(
        &format!("fence overhead, polling every 500 ms ({} fences)", cfg.polled_fences),
        format!(
            "p50 {pp50:.2} ms, p99 {:.2} ms, max {:.2} ms; ratio of p50s {:.0}x",
            pct(&ptimes, 0.99),
            pct(&ptimes, 1.0),
            pp50 / p50
        ),
    );

    Ok(FenceRun { p50, spawn, agent_peak, agent_peak_snapshot, idle, steps })
}

/// The agent in front of nnf-sos (its stand-in).
fn nnf_rows(cfg: &Config, bins: &Bins, t: &mut Table) -> Result<(), Box<dyn std::error::Error>> {
    // 1b. The agent in front of nnf-sos (its stand-in): a node with storage (answer renamed into
    // place) and one without (answered in place).
    for (storage, label) in [
        (true, "node with storage: answer renamed into place"),
        (false, "node without storage: answer written in place"),
    ] {
        let (times, shares) = nnf_fences(cfg, bins, storage)?;
        t.row(&format!("fence overhead, responder=nnf-sos stand-in ({} fences, {label})", cfg.fences), spread(&times));
        t.row(
            &format!("the agent's share: the stand-in's answer complete to the agent reaped ({label})"),
            spread(&shares),
        );
    }
    Ok(())
}

/// The same fence with the spool on a disk; with `--breakdown`, its steps too (the file system's
/// name and the table, or why there is none), to set beside the tmpfs fence's.
fn disk_rows(
    cfg: &Config,
    bins: &Bins,
    fence: &FenceRun,
    t: &mut Table,
) -> Result<Option<DiskSteps>, Box<dyn std::error::Error>> {
    // 1c. The same fence with the spool on a disk, last of the per-fence rows: the disk's
    // writeback after it would disturb the rows measured after it.
    let Some(disk) = &cfg.disk else {
        t.row(
            "fence overhead, spool on a disk file system",
            "not measured: give --disk DIR (as root, `make bench` loop-mounts an ext4 image for it)".into(),
        );
        return Ok(None);
    };
    let fs = ha::spool::fs_name(disk)?;
    let DiskRun { times, tmpfs_times, publishes, rig } = paired_disk_fences(cfg, bins, disk)?;
    let (d50, p50, publish) = (pct(&times, 0.5), pct(&tmpfs_times, 0.5), pct(&publishes, 0.5));
    t.row(
        &format!(
            "one durable publish on {fs} at {} ({} times, each before a pair of fences)",
            disk.display(),
            cfg.fences
        ),
        format!("p50 {publish:.3} ms"),
    );
    t.row(
        &format!("the tmpfs fence again, each beside a fence on {fs} ({} fences)", cfg.fences),
        format!("{}; p50 {:.2}x the first tmpfs rows' p50", spread(&tmpfs_times), p50 / fence.p50),
    );
    t.row(
        &format!("fence overhead, inotify, spool on {fs} at {} ({} fences, same run)", disk.display(), cfg.fences),
        format!(
            "{}; p50 {:.1}x one spawn, {:.2}x the tmpfs fence beside it; p50 minus that tmpfs p50 = {:.1} durable publishes",
            spread(&times),
            d50 / fence.spawn,
            d50 / p50,
            (d50 - p50) / publish
        ),
    );
    let steps = (cfg.breakdown > 0).then(|| (fs.to_string(), breakdown(&rig, bins, cfg.breakdown)));
    Ok(steps)
}

/// Sorted times of `cfg.fences` fences on `disk` (after 20 untimed), each after one durable publish
/// on `disk` and one fence on a tmpfs rig, timed at the same moment: the disk's extra over tmpfs, in
/// publishes, compares like with like (the disk's flushes drift with the host's state, as a spawn
/// does). Also returns the disk rig, for the breakdown.
fn paired_disk_fences(cfg: &Config, bins: &Bins, disk: &Path) -> Result<DiskRun, Box<dyn std::error::Error>> {
    let tmpfs = Rig::new(&cfg.tmpfs, bins, 3, false, false, &[])?;
    let rig = Rig::new(disk, bins, 3, false, false, &[])?;
    let mut publisher = Publisher::new(disk)?;
    for i in 0..20 {
        tmpfs.fence(bins, &format!("warm{i}"), false)?;
        rig.fence(bins, &format!("warm{i}"), false)?;
    }
    let (mut times, mut tmpfs_times, mut publishes) = (Vec::new(), Vec::new(), Vec::new());
    // Each after a pause, so that none starts while the one before still settles (its watchers'
    // clean-up, the disk's writeback): a fence comes to an idle rabbit.
    let settle = || std::thread::sleep(Duration::from_millis(10));
    for i in 0..cfg.fences {
        settle();
        publishes.push(publisher.once()?);
        settle();
        tmpfs_times.push(tmpfs.fence(bins, &format!("n{i}"), false)?.0);
        settle();
        times.push(rig.fence(bins, &format!("n{i}"), false)?.0);
    }
    drop(tmpfs);
    for v in [&mut times, &mut tmpfs_times, &mut publishes] {
        v.sort();
    }
    Ok(DiskRun { times, tmpfs_times, publishes, rig })
}

/// What [`paired_disk_fences`] measured, each sorted, and its disk rig.
struct DiskRun {
    times: Vec<Duration>,
    tmpfs_times: Vec<Duration>,
    publishes: Vec<Duration>,
    rig: Rig,
}

/// Throughput: queued requests drained by 1, 2, 4 watchers. Returns the watchers' peak RSS (KiB).
fn throughput_rows(cfg: &Config, bins: &Bins, t: &mut Table) -> Result<u64, Box<dyn std::error::Error>> {
    // 2. Throughput: queued requests drained by 1, 2, 4 watchers (distinct targets: no coalescing).
    let mut loaded_rss = 0;
    for n in [1, 2, 4] {
        for (targets, label) in [(cfg.queued, "distinct targets"), (16, "16 targets, coalescing")] {
            let mut rig = Rig::new(&cfg.tmpfs, bins, n, true, false, &[])?;
            rig.queue(cfg.queued, targets)?;
            let responses = rig.spool.dir(Dir::Responses);
            let started = Instant::now();
            for i in 0..n {
                rig.cluster_start(i)?;
            }
            // Listing a directory of up to 10,000 responses costs about a millisecond: polled every
            // 200 µs it took most of a core from the watchers being measured. Every 10 ms it costs
            // under 10% of one, and at most 10 ms of a drain that takes seconds.
            wait_every("the drain", Duration::from_secs(600), Duration::from_millis(10), || {
                for i in 0..n {
                    if let Some(p) = rig.cluster.pid(i) {
                        loaded_rss = loaded_rss.max(rss_kib(p, "VmHWM:"));
                    }
                }
                files(&responses) >= cfg.queued
            })?;
            let secs = started.elapsed().as_secs_f64();
            rig.cluster.stop();
            t.row(
                &format!("throughput, {} queued, {n} watcher(s), {label}", cfg.queued),
                format!("{:.0} requests/s ({secs:.2} s)", cfg.queued as f64 / secs),
            );
        }
    }

    Ok(loaded_rss)
}

/// A chassis lost at once.
fn chassis_rows(bins: &Bins, cfg: &Config, t: &mut Table) -> Result<(), Box<dyn std::error::Error>> {
    // A chassis lost at once: 16 distinct targets, a fence command that takes 1 s, the shipped
    // defaults (--max-parallel 16): one watcher, then three (the shipped units). One fence time is
    // the floor; each round more is a fence time more.
    for n in [1, 3] {
        let mut rig = Rig::new(&cfg.tmpfs, bins, n, true, true, &[])?;
        std::fs::write(rig.root.join("behavior.json"), r#"{"*": "sleep:1000"}"#)?;
        rig.queue(16, 16)?;
        let responses = rig.spool.dir(Dir::Responses);
        let started = Instant::now();
        for i in 0..n {
            rig.cluster_start(i)?;
        }
        wait_every("the chassis", Duration::from_secs(120), Duration::from_millis(10), || files(&responses) >= 16)?;
        let secs = started.elapsed().as_secs_f64();
        rig.cluster.stop();
        t.row(
            &format!("a chassis lost at once: 16 targets, a 1 s fence command, {n} watcher(s) with the defaults"),
            format!("{secs:.2} s (one fence: 1 s)"),
        );
    }

    Ok(())
}

/// The spawn ceiling.
fn ceiling_rows(cfg: &Config, t: &mut Table) -> Result<(), Box<dyn std::error::Error>> {
    // The machine's ceiling for distinct targets: every request runs one process, so no number of
    // watchers drains faster than this machine starts and reaps /bin/true with nothing else to do.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2, cores];
    counts.dedup();
    counts.sort_unstable();
    counts.dedup();
    for threads in counts {
        let per_thread = cfg.queued / threads;
        let started = Instant::now();
        let spawners: Vec<_> = (0..threads)
            .map(|_| {
                std::thread::spawn(move || -> std::io::Result<()> {
                    for _ in 0..per_thread {
                        Command::new("/bin/true").status()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for s in spawners {
            s.join().map_err(|_| "a spawner panicked")??;
        }
        let secs = started.elapsed().as_secs_f64();
        t.row(
            &format!("ceiling: /bin/true started and reaped by {threads} thread(s), nothing else"),
            format!("{:.0} processes/s", (per_thread * threads) as f64 / secs),
        );
    }

    Ok(())
}

/// Failover: leader takeover, and re-execution after a holder's death.
fn failover_rows(cfg: &Config, bins: &Bins, t: &mut Table) -> Result<(), Box<dyn std::error::Error>> {
    // 3. Failover: leader takeover, and re-execution after a holder's death.
    let mut rig = Rig::new(&cfg.tmpfs, bins, 3, false, true, &[])?;
    let mut takeovers = Vec::new();
    for _ in 0..cfg.trials {
        // Members are up before one of them is elected: wait for the leader (a slow disk spool
        // showed the race).
        let mut leader = None;
        wait("a leader", Duration::from_secs(30), || {
            leader = ha::cluster::leader::read(&rig.spool).ok().flatten();
            leader.is_some()
        })?;
        let before = leader.ok_or("no leader")?;
        let i = rig.cluster.index_of_pid(before.pid).ok_or("leader not ours")?;
        rig.cluster.signal(i, Signal::SIGKILL);
        let t0 = Instant::now();
        wait("a new leader", Duration::from_secs(30), || {
            ha::cluster::leader::read(&rig.spool).ok().flatten().is_some_and(|l| l.epoch > before.epoch)
        })?;
        takeovers.push(t0.elapsed());
        rig.cluster_restart_all()?;
    }
    takeovers.sort();
    t.row(
        &format!("leader takeover after SIGKILL ({} trials)", cfg.trials),
        format!("p50 {:.2} ms, p99 {:.2} ms", pct(&takeovers, 0.5), pct(&takeovers, 0.99)),
    );
    let behavior = rig.root.join("behavior.json");
    let ledger = rig.root.join("ledger.jsonl");
    let mut reexec = Vec::new();
    for trial in 0..cfg.trials {
        std::fs::write(&behavior, r#"{"*": "hang"}"#)?;
        let id = rig.queue(1, 1_000_000 + trial)?.remove(0);
        let starts = |id: &str| {
            std::fs::read_to_string(&ledger)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(id) && l.contains("\"start\""))
                .count()
        };
        wait("the first execution", Duration::from_secs(30), || starts(&id) >= 1)?;
        std::fs::write(&behavior, "{}")?;
        let claim = std::fs::read_dir(rig.spool.dir(Dir::Claimed))?
            .flatten()
            .find_map(|e| ha::protocol::names::ClaimName::parse(&e.file_name().to_string_lossy()))
            .ok_or("no claim")?;
        let i: usize = claim.watcher.trim_start_matches('w').parse::<usize>()? - 1;
        rig.cluster.signal(i, Signal::SIGKILL);
        let t0 = Instant::now();
        wait("the re-execution", Duration::from_secs(30), || starts(&id) >= 2)?;
        reexec.push(t0.elapsed());
        wait("the answer", Duration::from_secs(30), || rig.spool.response_path(&id).exists())?;
        rig.cluster_restart_all()?;
    }
    reexec.sort();
    t.row(
        &format!("re-execution after SIGKILL of the holder ({} trials)", cfg.trials),
        format!("p50 {:.2} ms, p99 {:.2} ms", pct(&reexec, 0.5), pct(&reexec, 0.99)),
    );
    rig.cluster.stop();

    Ok(())
}

/// Footprint: RSS and sizes.
fn footprint_rows(
    bins: &Bins,
    fence: &FenceRun,
    loaded_rss: u64,
    t: &mut Table,
) -> Result<(), Box<dyn std::error::Error>> {
    let (idle, agent_peak, agent_peak_snapshot) = (&fence.idle, fence.agent_peak, fence.agent_peak_snapshot);
    // 4. Footprint.
    t.row("watcher RSS, idle", format!("{} KiB (max of {})", idle.iter().max().unwrap_or(&0), idle.len()));
    t.row("watcher peak RSS under the throughput load", format!("{loaded_rss} KiB"));
    t.row("agent peak RSS", format!("{agent_peak} KiB; {agent_peak_snapshot} KiB reading the discovery snapshot"));
    for b in [&bins.agent, &bins.watcher] {
        t.row(
            &format!("size of {}", b.file_name().unwrap_or_default().to_string_lossy()),
            format!("{} KiB", std::fs::metadata(b)?.len() / 1024),
        );
    }

    Ok(())
}

/// Scale: claim cost with many pending requests.
fn scale_rows(cfg: &Config, bins: &Bins, t: &mut Table) -> Result<(), Box<dyn std::error::Error>> {
    // 5. Scale: claim cost with many pending requests.
    for pending in [100, cfg.scale] {
        let mut rig = Rig::new(&cfg.tmpfs, bins, 1, true, false, &[])?;
        rig.queue(pending, pending)?;
        let responses = rig.spool.dir(Dir::Responses);
        rig.cluster_start(0)?;
        let first = 10.min(pending / 2);
        let measured = (pending / 2).min(1000);
        wait("the first answers", Duration::from_secs(600), || files(&responses) >= first)?;
        let t0 = Instant::now();
        wait("the measured answers", Duration::from_secs(600), || files(&responses) >= first + measured)?;
        let per = t0.elapsed().as_secs_f64() * 1e6 / measured as f64;
        rig.cluster.stop();
        t.row(
            &format!("claim-to-answer cost per request, {pending} pending (1 watcher)"),
            format!("{per:.0} µs over {measured} requests"),
        );
    }
    Ok(())
}

impl Rig {
    fn cluster_start(&mut self, i: usize) -> std::io::Result<()> {
        self.cluster.restart(i)
    }

    /// Restarts the dead watchers (a killed one is restarted once it has been reaped) and waits until
    /// every one holds its member lock.
    fn cluster_restart_all(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let n = self.cluster.len();
        let members = self.spool.dir(Dir::Members);
        let cluster = &mut self.cluster;
        wait("watchers back", Duration::from_secs(30), || {
            (0..n).all(|i| {
                let _ = cluster.restart(i);
                ha::fsio::lock::held(
                    &members.join(format!("{}.lock", Cluster::id(i))),
                    ha::fsio::lock::IfUnreadable::NotHeld,
                )
            })
        })?;
        Ok(())
    }
}
