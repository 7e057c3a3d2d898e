//! `kill-watcher`: attacks a real cluster of `gfs2-fence-watcher` processes while real
//! `fence_gfs2_recorder` agents fence through it, then checks that nothing was lost (see `analysis`).
//!
//! On a seeded schedule it SIGKILLs watchers (the leader and claim holders on purpose, and at
//! random), SIGSTOPs them past the TTL and SIGCONTs them, restarts the dead, and makes the test
//! executor fail or hang for chosen targets. The seed replays the schedule (process timing varies).

pub mod analysis;
pub mod cluster;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use ha::os::clock::BootTime;
use ha::spool::{Dir, Spool};

use analysis::{AgentRun, ChaosEvent, Observations, Summary};
use cluster::{Cluster, WatcherSpec};

/// The attack's parameters.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "kill-watcher", about = "Attack a gfs2-fence-watcher cluster and check that nothing is lost")]
pub struct Config {
    /// Watchers W.
    #[arg(long, default_value = "3")]
    pub watchers: usize,
    /// Fence requests R, fired through the real agent.
    #[arg(long, default_value = "500")]
    pub requests: usize,
    /// Agents at once C.
    #[arg(long, default_value = "8")]
    pub concurrency: usize,
    /// Targets T the requests are spread over.
    #[arg(long, default_value = "20")]
    pub targets: usize,
    /// Seed of the schedule (random when absent; always printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Milliseconds between chaos events.
    #[arg(long, default_value = "300")]
    pub chaos_interval_ms: u64,
    /// Watchers' heartbeat TTL, seconds.
    #[arg(long, default_value = "1.0")]
    pub ttl: f64,
    /// The agents' fence_timeout, seconds.
    #[arg(long, default_value = "8")]
    pub fence_timeout: u64,
    /// Where to write the JSON summary.
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Directory of the binaries (default: this program's).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Keep the run's directory (spool, logs, ledger) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Put the run's directory (spool, logs, ledger) in this directory, e.g. on a disk file system
    /// (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Runs the attack; returns the verdict.
pub fn run(cfg: &Config) -> Result<Summary, Box<dyn std::error::Error>> {
    let seed = cfg.seed.unwrap_or_else(rand::random);
    eprintln!("kill-watcher: seed {seed} (replay with --seed {seed})");
    let bin_dir = match &cfg.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().ok_or("no bin dir")?.to_path_buf(),
    };
    let work = match &cfg.dir {
        Some(d) => tempfile::Builder::new().prefix("kill-watcher.").tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("kill-watcher.").tempdir()?,
    };
    let root = work.path().to_path_buf();
    match ha::spool::fs_name(&root) {
        Ok(fs) => eprintln!("kill-watcher: spool on {fs} at {}", root.display()),
        Err(e) => eprintln!("kill-watcher: {e}"),
    }
    let spool_dir = root.join("spool");
    let spool = Spool::new(&spool_dir);
    spool.prepare(&ha::spool::WATCHER_DIRS)?;
    let behavior = root.join("behavior.json");
    std::fs::write(&behavior, "{}")?;
    let spec = WatcherSpec {
        watcher_bin: bin_dir.join("gfs2-fence-watcher"),
        fence_command: bin_dir.join("gfs2-fence-test-executor"),
        fence_options: vec![
            format!("ledger={}", root.join("ledger.jsonl").display()),
            format!("behavior_file={}", behavior.display()),
        ],
        spool: spool_dir.clone(),
        log_dir: root.clone(),
        ttl: Duration::from_secs_f64(cfg.ttl),
        // Fewer executions at once than the default (16): claims contend and queue, which is where
        // a lost or doubled request would show.
        extra: ["--max-parallel", "4"].map(String::from).to_vec(),
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(spec.clone(), cfg.watchers)?));
    let members = spool.dir(Dir::Members);
    let ready = Instant::now();
    while files(&members).iter().filter(|n| n.ends_with(".json")).count() < cfg.watchers {
        if ready.elapsed() > Duration::from_secs(30) {
            return Err("the watchers did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let gap = leader_gap_monitor(&spool, stop.clone());
    let chaos = chaos_thread(cfg, seed, cluster.clone(), spool.clone(), behavior.clone(), stop.clone());
    let agents = fire(cfg, seed, &bin_dir.join("fence_gfs2_recorder"), &spool_dir, &root.join("logs"));
    stop.store(true, Ordering::SeqCst);
    let chaos_events = chaos.join().map_err(|_| "chaos thread panicked")?;
    let longest_gap = gap.join().map_err(|_| "gap monitor panicked")?;

    std::fs::write(&behavior, "{}")?;
    {
        let mut c = cluster.lock().unwrap();
        c.thaw_all();
        for i in 0..c.len() {
            c.restart(i)?;
        }
    }
    let mut obs = observe(&spool, &root, agents, chaos_events, longest_gap);
    let drained = Instant::now();
    while (!files(&spool.dir(Dir::Requests)).is_empty()
        || !files(&spool.dir(Dir::Claimed)).is_empty()
        || !files(&spool.dir(Dir::Tmp)).is_empty()
        || obs.published.iter().any(|id| !obs.responses.contains_key(id)))
        && drained.elapsed() < Duration::from_secs(90)
    {
        std::thread::sleep(Duration::from_millis(100));
        obs = observe(&spool, &root, std::mem::take(&mut obs.agents), std::mem::take(&mut obs.chaos), longest_gap);
    }
    cluster.lock().unwrap().stop();
    obs = observe(&spool, &root, std::mem::take(&mut obs.agents), std::mem::take(&mut obs.chaos), longest_gap);
    obs.leftovers = [Dir::Claimed, Dir::Tmp]
        .iter()
        .flat_map(|d| files(&spool.dir(*d)).into_iter().map(move |f| format!("{}/{f}", d.name())))
        .collect();
    let summary = analysis::analyse(&obs, seed);
    if cfg.keep || !summary.passed() {
        let kept = work.keep();
        eprintln!("kill-watcher: run directory kept at {}", kept.display());
    }
    Ok(summary)
}

/// Records the longest interval during which nobody held `leader.lock` (after the first leader).
fn leader_gap_monitor(spool: &Spool, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    let path = ha::cluster::leader::lock_path(spool);
    std::thread::spawn(move || {
        let (mut longest, mut since, mut seen) = (Duration::ZERO, None::<Instant>, false);
        while !stop.load(Ordering::SeqCst) {
            let held = ha::fsio::lock::held(&path, ha::fsio::lock::IfUnreadable::NotHeld);
            match (held, since) {
                (true, Some(s)) => {
                    longest = longest.max(s.elapsed());
                    since = None;
                }
                (true, None) => seen = true,
                (false, None) if seen => since = Some(Instant::now()),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        longest.max(since.map_or(Duration::ZERO, |s| s.elapsed()))
    })
}

/// How long an executor fault (fail or hang) lasts on a target.
const FAULT: Duration = Duration::from_secs(2);

/// Strikes the watchers and the fence device every `chaos_interval_ms`, on a random seed, until
/// `stop`; returns what it did.
fn chaos_thread(
    cfg: &Config,
    seed: u64,
    cluster: Arc<Mutex<Cluster>>,
    spool: Spool,
    behavior: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<ChaosEvent>> {
    let interval = Duration::from_millis(cfg.chaos_interval_ms);
    let mut chaos = Chaos {
        rng: StdRng::seed_from_u64(seed ^ 0xC4A05),
        spool,
        ttl: Duration::from_secs_f64(cfg.ttl),
        targets: cfg.targets,
        events: Vec::new(),
        thaw_at: Vec::new(),
        behaviors: HashMap::new(),
        heal_at: Vec::new(),
    };
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(interval);
            let mut c = cluster.lock().unwrap();
            let now = Instant::now();
            chaos.heal(&mut c, now);
            chaos.strike(&mut c, now);
            let _ = std::fs::write(&behavior, serde_json::to_vec(&chaos.behaviors).unwrap_or_default());
            chaos.restart_dead(&mut c);
        }
        chaos.events
    })
}

/// The chaos thread's state: what it did, and what it is to undo when.
struct Chaos {
    rng: StdRng,
    spool: Spool,
    ttl: Duration,
    targets: usize,
    events: Vec<ChaosEvent>,
    /// Frozen watchers and when they resume.
    thaw_at: Vec<(Instant, usize)>,
    /// The fence device's faults by target (`fail`, `hang`), as the test executor reads them.
    behaviors: HashMap<String, String>,
    /// When each fault ends.
    heal_at: Vec<(Instant, String)>,
}

impl Chaos {
    /// Recorded after the signal is sent: an event's time is never before its effect.
    fn record(&mut self, kind: &str, victim: Option<usize>) {
        self.events.push(ChaosEvent { at_ns: BootTime::now().0, kind: kind.into(), victim: victim.map(Cluster::id) })
    }

    /// Resumes the watchers and heals the faults whose time has come.
    fn heal(&mut self, c: &mut Cluster, now: Instant) {
        for (_, i) in self.thaw_at.iter().filter(|(t, _)| *t <= now) {
            c.signal(*i, Signal::SIGCONT);
        }
        self.thaw_at.retain(|(t, _)| *t > now);
        for (_, t) in self.heal_at.iter().filter(|(at, _)| *at <= now) {
            self.behaviors.remove(t);
        }
        self.heal_at.retain(|(at, _)| *at > now);
    }

    /// One random blow: kill the leader, a holder of a claim or anyone, freeze one or all, or a
    /// device fault (or nothing).
    fn strike(&mut self, c: &mut Cluster, now: Instant) {
        let alive = c.alive();
        match self.rng.random_range(0..10) {
            0 | 1 => {
                let leader = ha::cluster::leader::read(&self.spool).ok().flatten().and_then(|l| c.index_of_pid(l.pid));
                if let Some(i) = leader.filter(|i| alive.contains(i)) {
                    c.signal(i, Signal::SIGKILL);
                    self.record("kill-leader", Some(i));
                }
            }
            2 | 3 => {
                let holders: BTreeSet<String> = files(&self.spool.dir(Dir::Claimed))
                    .iter()
                    .filter_map(|n| ha::protocol::names::ClaimName::parse(n))
                    .map(|n| n.watcher)
                    .collect();
                let holders: Vec<usize> =
                    alive.iter().copied().filter(|i| holders.contains(&Cluster::id(*i))).collect();
                if !holders.is_empty() {
                    let i = holders[self.rng.random_range(0..holders.len())];
                    c.signal(i, Signal::SIGKILL);
                    self.record("kill-holder", Some(i));
                }
            }
            4 if !alive.is_empty() => {
                let i = alive[self.rng.random_range(0..alive.len())];
                c.signal(i, Signal::SIGKILL);
                self.record("kill-random", Some(i));
            }
            5 if alive.len() > 1 => {
                let i = alive[self.rng.random_range(0..alive.len())];
                c.signal(i, Signal::SIGSTOP);
                self.record("freeze", Some(i));
                self.thaw_at.push((now + self.ttl * 3, i));
            }
            6 | 7 => {
                // A device fault lasts a few seconds, then the device works again.
                let t = format!("t{}", self.rng.random_range(0..self.targets));
                let b = ["fail", "hang"][self.rng.random_range(0..2)];
                self.record(&format!("executor-{b}"), None);
                self.behaviors.insert(t.clone(), b.to_string());
                self.heal_at.push((now + FAULT, t));
            }
            // The whole host freezes (every watcher stopped past its TTL), then resumes: no watcher
            // may take its healthy peers for frozen when they all wake.
            9 => {
                let frozen: Vec<usize> = self.thaw_at.iter().map(|(_, i)| *i).collect();
                for &i in alive.iter().filter(|i| !frozen.contains(i)) {
                    c.signal(i, Signal::SIGSTOP);
                    self.record("freeze-all", Some(i));
                    self.thaw_at.push((now + self.ttl + self.ttl / 2, i));
                }
            }
            _ => {}
        }
    }

    /// Each dead watcher restarted, most of the time.
    fn restart_dead(&mut self, c: &mut Cluster) {
        for i in 0..c.len() {
            if !c.alive().contains(&i) && self.rng.random_bool(0.7) {
                self.record("restart", Some(i));
                let _ = c.restart(i);
            }
        }
    }
}

/// Fires the requests through the real agent, `concurrency` at a time.
fn fire(cfg: &Config, seed: u64, agent: &Path, spool: &Path, logs: &Path) -> Vec<AgentRun> {
    let next = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(Mutex::new(Vec::new()));
    let unheard = logs.parent().unwrap_or(logs).join("unheard.socket");
    std::thread::scope(|scope| {
        for _ in 0..cfg.concurrency {
            let (next, runs, unheard) = (next.clone(), runs.clone(), &unheard);
            scope.spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= cfg.requests {
                    break;
                }
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(n as u64));
                let target = format!("t{}", rng.random_range(0..cfg.targets));
                let action = ["off", "reboot"][rng.random_range(0..2)];
                let nodename = format!("req-{n}");
                // One agent in four is a protocol v2 client: our agent with an external responder
                // speaking upstream's names (hidden temporary, <target>-<uuid>.json, no waiting lock).
                let v2 = if n % 4 == 3 { "responder=external\nprotocol=2\n" } else { "" };
                let stdin = format!(
                    "action={action}\nport={target}\nnodename={nodename}\nspool_dir={}\nlog_dir={}\nno_gfs2_discovery=1\nfence_timeout={}\n{v2}",
                    spool.display(),
                    logs.display(),
                    cfg.fence_timeout
                );
                let started = Instant::now();
                let exit = Command::new(agent)
                    // Thousands of records' anchors and journal entries stay out of the host's
                    // syslog and journal: nothing listens on this socket.
                    .env("GFS2_FENCE_AUDIT_SOCKET", unheard)
                    .env("GFS2_FENCE_JOURNAL_SOCKET", unheard)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .and_then(|mut child| {
                        child.stdin.take().expect("piped").write_all(stdin.as_bytes())?;
                        child.wait()
                    })
                    .ok()
                    .and_then(|s| s.code());
                runs.lock().unwrap().push(AgentRun { nodename, exit, elapsed: started.elapsed() });
            });
        }
    });
    Arc::try_unwrap(runs).map(|m| m.into_inner().unwrap()).unwrap_or_default()
}

/// Reads what the spool, the ledger and the agents' logs say.
fn observe(spool: &Spool, root: &Path, agents: Vec<AgentRun>, chaos: Vec<ChaosEvent>, gap: Duration) -> Observations {
    let mut o = Observations { agents, chaos, longest_leader_gap: gap, ..Observations::default() };
    let jsonl = std::fs::read_to_string(root.join("logs/fence-events-detailed.jsonl")).unwrap_or_default();
    for line in jsonl.lines() {
        if let Ok(r) = serde_json::from_str::<agent::logs::EventRecord>(line) {
            // An agent without our watchers' waiting lock takes its unanswered request back when it
            // gives up: that request is not lost.
            if r.status == "failed" && r.details.contains("unanswered request") && r.details.contains("was removed") {
                o.taken_back.extend(r.request_id.clone());
            }
            if let (Some(id), Some(node)) = (r.request_id, r.nodename) {
                o.published.insert(id.clone());
                o.id_of_nodename.insert(node, id);
            }
        }
    }
    for dir in [Dir::Requests, Dir::Claimed, Dir::Done] {
        for name in files(&spool.dir(dir)) {
            if name.contains(".superseded.") {
                continue;
            }
            let path = spool.dir(dir).join(&name);
            if let Ok(Ok(r)) = std::fs::read(&path).map(|b| ha::protocol::request::Request::parse(&b)) {
                // A claimed or retired file keeps the request's mtime through its renames.
                let at = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                o.submitted.entry(r.request_id.clone()).or_insert((at, r.target_node.clone(), r.action.to_string()));
                if let Some(node) = r.nodename.clone() {
                    o.id_of_nodename.insert(node, r.request_id.clone());
                }
                o.published.insert(r.request_id);
            }
        }
    }
    for name in files(&spool.dir(Dir::Responses)) {
        if let Ok(Ok(r)) =
            std::fs::read(spool.dir(Dir::Responses).join(&name)).map(|b| ha::protocol::response::Response::parse(&b))
        {
            o.responses.insert(r.request_id.clone(), r);
        }
    }
    o.ledger = std::fs::read_to_string(root.join("ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for name in files(&spool.dir(Dir::Attempts)) {
        let text = std::fs::read_to_string(spool.dir(Dir::Attempts).join(&name)).unwrap_or_default();
        let list = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        o.attempts.insert(name.trim_end_matches(".jsonl").to_string(), list);
    }
    o
}
