//! The campaign: start suites, forwarders, truth followers, the relay and clients;
//! inject faults for a while; at quiet checkpoints pause every suite (SIGSTOP) and
//! require every client's copy to equal the projection of its suite's state within
//! two seconds; sample the relay's RSS and scrape its `/metrics` throughout.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clonewire_core::{Projection, Subscription, SubscriptionLimits};
use serde_json::json;

use crate::clients::{flood_garbage, half_open, never_read, CheckedClient};
use crate::procs::{self, http_get, Proc};
use crate::proxy::{LinkFaults, Proxy};
use crate::truth::{Truth, TruthFollower};
use sampler::{relay_all_live, sample, scrape, Sampler};

mod sampler;

/// The subscriptions the checked clients hold (cycled when there are more clients).
pub const QUERIES: [&str; 5] = [
    "{ workflows { taskProxies { name state } } }",
    r#"{ workflows(ids: ["s0"]) { workflow taskProxies { jobs } edges } }"#,
    "{ workflows }",
    "subscription { workflows { familyProxies workflow { status } } }",
    r#"{ workflows(ids: ["s1", "s2"]) { taskProxies(ids: ["1/a", "2/b"]) { state } jobs } }"#,
];

/// Quiet time a checkpoint has to converge in, from the moment the suites pause.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Clone, Debug)]
pub struct CampaignConfig {
    /// How long faults are injected.
    pub duration: Duration,
    /// How many suites (`clonewire-sim` processes); every second one goes busy.
    pub suites: usize,
    /// How many checked clients.
    pub clients: usize,
    /// Tasks per suite.
    pub tasks: usize,
    /// Deltas per second per suite.
    pub rate: f64,
    /// A quiet checkpoint at least this often.
    pub checkpoint_every: Duration,
    /// The relay's RSS must stay under this.
    pub rss_bound_bytes: u64,
    /// `debug` or `release` binaries.
    pub profile: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// Faults on the suite-to-relay links.
    pub link: LinkFaults,
}

impl CampaignConfig {
    /// A campaign of `duration` with the defaults the README describes.
    pub fn new(duration: Duration) -> CampaignConfig {
        CampaignConfig {
            duration,
            suites: 3,
            clients: 5,
            tasks: 150,
            rate: 40.0,
            checkpoint_every: Duration::from_secs(30),
            rss_bound_bytes: 256 << 20,
            profile: "debug".into(),
            seed: 1,
            link: LinkFaults {
                drop: 0.02,
                duplicate: 0.02,
                delay: 0.02,
                max_delay: Duration::from_millis(400),
            },
        }
    }
}

/// One quiet checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// From pausing the suites to every client holding its projection.
    pub converged_in: Option<Duration>,
    /// From the last fault to convergence.
    pub since_last_fault: Option<Duration>,
    /// Pauses it took (each a fresh quiet period; more than one when a suite was busy).
    pub attempts: u32,
}

/// What happened, for printing and for the test's verdict.
#[derive(Debug, Default)]
pub struct Report {
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// The relay's counters, summed over its lifetimes.
    pub metrics: BTreeMap<String, f64>,
    /// Checkpoints in order; the last one follows the last fault.
    pub checkpoints: Vec<Checkpoint>,
    /// The relay's largest RSS seen.
    pub peak_rss: u64,
    /// The bound it had to stay under.
    pub rss_bound: u64,
    /// Messages the clients' stores rejected (each repaired by `resync`).
    pub rejected: u64,
    /// Client connections (reconnects after relay restarts included).
    pub connections: u64,
    /// What went wrong; empty when the campaign passed.
    pub failures: Vec<String>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Report {
    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault campaign: {:.0} s", self.elapsed.as_secs_f64())?;
        writeln!(f, "faults injected:")?;
        for (kind, n) in &self.faults {
            writeln!(f, "  {kind:<34} {n:>8}")?;
        }
        writeln!(f, "relay counters (summed over relay lifetimes):")?;
        for (name, v) in &self.metrics {
            writeln!(f, "  {name:<60} {v:>8}")?;
        }
        writeln!(
            f,
            "clients: {} connections, {} messages rejected and resynced",
            self.connections, self.rejected
        )?;
        for (i, c) in self.checkpoints.iter().enumerate() {
            let ms = |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()));
            writeln!(
                f,
                "checkpoint {i}: converged {} after the pause, {} after the last fault, {} pause(s)",
                ms(c.converged_in),
                ms(c.since_last_fault),
                c.attempts
            )?;
        }
        writeln!(
            f,
            "relay peak RSS: {:.1} MiB (bound {:.0} MiB)",
            self.peak_rss as f64 / 1048576.0,
            self.rss_bound as f64 / 1048576.0
        )?;
        if self.failures.is_empty() {
            writeln!(f, "PASSED")
        } else {
            writeln!(f, "FAILED:")?;
            for failure in &self.failures {
                writeln!(f, "  {failure}")?;
            }
            Ok(())
        }
    }
}

struct Suite {
    name: String,
    args: Vec<String>,
    pub_endpoint: String,
    rep_endpoint: String,
    proc: Option<Proc>,
    busy: bool,
}

struct Campaign {
    config: CampaignConfig,
    sim: PathBuf,
    relay_bin: PathBuf,
    dir: PathBuf,
    suites: Vec<Suite>,
    proxies: Vec<Proxy>,
    truths: Vec<TruthFollower>,
    relay: Option<Proc>,
    addr: SocketAddr,
    sampler: Arc<Sampler>,
    report: Report,
    last_fault: Instant,
    started: Instant,
    rng: fastrand::Rng,
}

/// Runs a campaign and reports. Needs a tokio runtime (the clients are tasks).
pub async fn run(config: CampaignConfig) -> Report {
    let start = Instant::now();
    let mut report = match Campaign::start(config).await {
        Ok(mut campaign) => {
            campaign.play().await;
            campaign.finish()
        }
        Err(e) => Report {
            failures: vec![format!("could not start: {e}")],
            ..Report::default()
        },
    };
    report.elapsed = start.elapsed();
    report
}

impl Campaign {
    async fn start(config: CampaignConfig) -> Result<Campaign, String> {
        let profile = config.profile.clone();
        let (sim, relay_bin) = tokio::task::spawn_blocking(move || procs::build_binaries(&profile))
            .await
            .map_err(|e| e.to_string())??;
        let dir = procs::target_dir(&config.profile).join(format!("faults-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let port = |_| procs::free_port().map_err(|e| e.to_string());
        let mut suites = Vec::new();
        for i in 0..config.suites {
            let busy = i % 2 == 1;
            let (p, r) = (port(())?, port(())?);
            let name = format!("s{i}");
            let args = [
                "--name",
                &name,
                "--tasks",
                &config.tasks.to_string(),
                "--rate",
                &config.rate.to_string(),
                "--seed",
                &(config.seed + i as u64).to_string(),
                "--heartbeat-ms",
                "200",
            ]
            .map(str::to_owned)
            .to_vec();
            suites.push(Suite {
                name,
                args,
                pub_endpoint: format!("tcp://127.0.0.1:{p}"),
                rep_endpoint: format!("tcp://127.0.0.1:{r}"),
                proc: None,
                busy,
            });
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", port(())?).parse().map_err(|_| "addr")?;
        let sampler = Arc::new(Sampler {
            pid: AtomicU32::new(0),
            peak: AtomicU64::new(0),
            scrapes: Mutex::new(BTreeMap::new()),
        });
        let mut campaign = Campaign {
            rng: fastrand::Rng::with_seed(config.seed),
            report: Report {
                rss_bound: config.rss_bound_bytes,
                ..Report::default()
            },
            config,
            sim,
            relay_bin,
            dir,
            suites,
            proxies: Vec::new(),
            truths: Vec::new(),
            relay: None,
            addr,
            sampler,
            last_fault: Instant::now(),
            started: Instant::now(),
        };
        for i in 0..campaign.suites.len() {
            campaign.start_suite(i)?;
            let s = &campaign.suites[i];
            let proxy = Proxy::start(
                &s.pub_endpoint,
                campaign.config.link,
                campaign.config.seed + 100 + i as u64,
            )
            .map_err(|e| format!("proxy: {e}"))?;
            campaign
                .truths
                .push(TruthFollower::start(&s.pub_endpoint, &s.rep_endpoint)?);
            campaign.proxies.push(proxy);
        }
        campaign.write_relay_config()?;
        campaign.start_relay().await?;
        Ok(campaign)
    }

    fn start_suite(&mut self, i: usize) -> Result<(), String> {
        let suite = &mut self.suites[i];
        let mut last = String::new();
        // A killed suite's ports are free at once, but allow a moment.
        for _ in 0..50 {
            let mut command = Command::new(&self.sim);
            command
                .args(&suite.args)
                .args(["--pub", &suite.pub_endpoint, "--rep", &suite.rep_endpoint])
                .env("RUST_LOG", "warn");
            if suite.busy {
                command.args(["--busy-every", "6", "--busy-for", "2"]);
            }
            let log = self.dir.join(format!("{}.log", suite.name));
            let mut proc =
                Proc::spawn(&suite.name, command, &log).map_err(|e| format!("{}: {e}", suite.name))?;
            last = proc.first_line().unwrap_or_default();
            if last.contains("\"pub\"") {
                suite.proc = Some(proc);
                return Ok(());
            }
            drop(proc);
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{} would not start: {last:?}", suite.name))
    }

    fn write_relay_config(&self) -> Result<(), String> {
        let mut toml = format!(
            "listen = \"{}\"\nname = \"faults\"\n\n[limits]\ntopic_linger_secs = 2\nsuite_request_timeout_ms = 1000\n\
             client_queue_soft_bytes = 65536\nclient_queue_hard_bytes = 524288\nclient_send_timeout_ms = 2000\n\
             handshake_timeout_ms = 2000\nclient_send_buffer_bytes = 16384\n",
            self.addr
        );
        for (suite, proxy) in self.suites.iter().zip(&self.proxies) {
            toml.push_str(&format!(
                "\n[[suite]]\nname = \"{}\"\npub = \"{}\"\nrep = \"{}\"\n",
                suite.name, proxy.endpoint, suite.rep_endpoint
            ));
        }
        std::fs::write(self.dir.join("relay.toml"), toml).map_err(|e| e.to_string())
    }

    async fn start_relay(&mut self) -> Result<(), String> {
        let mut command = Command::new(&self.relay_bin);
        command
            .arg("--config")
            .arg(self.dir.join("relay.toml"))
            .env("RUST_LOG", "warn");
        let proc =
            Proc::spawn("relay", command, &self.dir.join("relay.log")).map_err(|e| format!("relay: {e}"))?;
        self.sampler.pid.store(proc.pid(), Ordering::Relaxed);
        self.relay = Some(proc);
        let addr = self.addr;
        for _ in 0..100 {
            if tokio::task::spawn_blocking(move || http_get(addr, "/healthz"))
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return Ok(());
            }
            if self.relay.as_mut().is_some_and(|r| !r.alive()) {
                return Err(format!(
                    "the relay exited; see {}",
                    self.dir.join("relay.log").display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the relay did not answer /healthz in 10 s".into())
    }

    fn fault(&mut self, kind: &str, n: u64) {
        *self.report.faults.entry(kind.to_owned()).or_default() += n;
        self.last_fault = Instant::now();
    }

    fn links(&self, on: bool) {
        for p in &self.proxies {
            p.faults_on.store(on, Ordering::Relaxed);
        }
    }

    async fn play(&mut self) {
        let stop = Arc::new(AtomicBool::new(false));
        let sampling = std::thread::spawn({
            let (sampler, stop, addr, bound) = (
                self.sampler.clone(),
                stop.clone(),
                self.addr,
                self.config.rss_bound_bytes,
            );
            move || sample(&sampler, &stop, addr, bound)
        });
        let clients: Vec<CheckedClient> = (0..self.config.clients)
            .map(|i| CheckedClient::start(self.addr, QUERIES[i % QUERIES.len()]))
            .collect();
        // A first checkpoint with no faults: the harness itself must converge.
        self.checkpoint(&clients, false).await;
        // Five clients that subscribe to everything and never read, from the start:
        // the checked clients must not notice them.
        for _ in 0..5 {
            if never_read(self.addr, stop.clone()).await {
                self.fault("never-reading client", 1);
            }
        }
        let garbage = Arc::new(AtomicU64::new(0));
        let half_open_closed = Arc::new(AtomicU64::new(0));
        let end = Instant::now() + self.config.duration;
        let mut next_checkpoint = Instant::now() + self.config.checkpoint_every;
        while Instant::now() < end && self.report.failures.len() < 5 {
            self.links(true);
            tokio::time::sleep(Duration::from_millis(self.rng.u64(1000..3000))).await;
            match self.rng.u32(0..100) {
                0..=34 => {
                    let i = self.rng.usize(0..self.suites.len());
                    if let Some(p) = self.suites[i].proc.take() {
                        p.kill();
                    }
                    self.fault("suite SIGKILL + restart", 1);
                    tokio::time::sleep(Duration::from_millis(self.rng.u64(100..1000))).await;
                    if let Err(e) = self.start_suite(i) {
                        self.report.failures.push(e);
                    }
                }
                35..=54 => {
                    if let Some(p) = self.relay.take() {
                        self.scrape_now().await;
                        p.kill();
                    }
                    self.fault("relay SIGKILL + restart", 1);
                    tokio::time::sleep(Duration::from_millis(self.rng.u64(200..1000))).await;
                    if let Err(e) = self.start_relay().await {
                        self.report.failures.push(e);
                        break;
                    }
                }
                55..=79 => {
                    let (addr, garbage) = (self.addr, garbage.clone());
                    tokio::spawn(async move { flood_garbage(addr, 5_000, &garbage).await });
                    self.fault("garbage flood (connections)", 1);
                }
                80..=89 => {
                    if never_read(self.addr, stop.clone()).await {
                        self.fault("never-reading client", 1);
                    }
                }
                _ => {
                    // Held for longer than the relay's handshake timeout (2 s).
                    let (addr, closed) = (self.addr, half_open_closed.clone());
                    tokio::spawn(async move { half_open(addr, 200, Duration::from_secs(6), closed).await });
                    self.fault("half-open requests", 200);
                }
            }
            if Instant::now() >= next_checkpoint {
                self.checkpoint(&clients, false).await;
                next_checkpoint = Instant::now() + self.config.checkpoint_every;
            }
        }
        // The last fault: every busy suite is killed and restarted without its busy
        // periods, so the final check cannot be blocked by a suite that refuses to answer.
        for i in 0..self.suites.len() {
            if self.suites[i].busy {
                if let Some(p) = self.suites[i].proc.take() {
                    p.kill();
                }
                self.suites[i].busy = false;
                self.fault("suite SIGKILL + restart", 1);
                if let Err(e) = self.start_suite(i) {
                    self.report.failures.push(e);
                }
            }
        }
        self.checkpoint(&clients, true).await;
        self.fault_counts(garbage.load(Ordering::Relaxed));
        let closed = half_open_closed.load(Ordering::Relaxed);
        if closed > 0 {
            *self
                .report
                .faults
                .entry("half-open requests closed by the relay".to_owned())
                .or_default() += closed;
        }
        for c in &clients {
            let s = c.state();
            self.report.rejected += s.rejected;
            self.report.connections += s.connections;
            if s.undecodable > 0 {
                self.report.failures.push(format!(
                    "client {:?}: {} messages did not decode",
                    c.query, s.undecodable
                ));
            }
            // Every checked query is valid: an `error` means the relay refused it, and a
            // refused client holds nothing, which can pass for convergence.
            if s.errors > 0 {
                self.report.failures.push(format!(
                    "client {:?}: the relay answered {} time(s) with an error",
                    c.query, s.errors
                ));
            }
        }
        self.scrape_now().await;
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || sampling.join()).await;
    }

    fn fault_counts(&mut self, garbage: u64) {
        *self
            .report
            .faults
            .entry("garbage frames sent".into())
            .or_default() += garbage;
        let (mut dd, mut dh, mut dup, mut delay) = (0, 0, 0, 0);
        for p in &self.proxies {
            dd += p.stats.dropped_deltas.load(Ordering::Relaxed);
            dh += p.stats.dropped_heartbeats.load(Ordering::Relaxed);
            dup += p.stats.duplicated.load(Ordering::Relaxed);
            delay += p.stats.delayed.load(Ordering::Relaxed);
        }
        for (kind, n) in [
            ("link: deltas dropped", dd),
            ("link: heartbeats dropped", dh),
            ("link: messages duplicated", dup),
            ("link: messages delayed/reordered", delay),
        ] {
            self.report.faults.insert(kind.into(), n);
        }
        // Busy suites refuse requests for 2 s of every 6 (`--busy-every 6 --busy-for 2`).
        let busy = (self.config.suites / 2) as u64;
        let periods = (self.started.elapsed().as_secs_f64() / 6.0) as u64 * busy;
        self.report
            .faults
            .insert("suite busy periods of 2 s (about)".into(), periods);
    }

    async fn scrape_now(&self) {
        let (sampler, addr) = (self.sampler.clone(), self.addr);
        let _ = tokio::task::spawn_blocking(move || scrape(&sampler, addr)).await;
    }

    /// Faults off, a quiet moment, then the suites paused: every client must hold the
    /// projection of its suites' state within [`CONVERGE_WITHIN`].
    async fn checkpoint(&mut self, clients: &[CheckedClient], last: bool) {
        self.links(false);
        let mut problem = String::new();
        for attempt in 1..=4u32 {
            tokio::time::sleep(Duration::from_millis(if last { 500 } else { 1500 })).await;
            // The truth followers must hold the suites' state before the pause.
            let synced_by = Instant::now() + Duration::from_secs(10);
            while Instant::now() < synced_by && !self.truths().iter().all(|t| t.synced) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // ...and the relay must have joined every suite: a suite restarted just
            // before would otherwise be paused mid-join, and nothing could converge
            // until it runs again (a limit of pausing, not of the relay).
            let addr = self.addr;
            while Instant::now() < synced_by {
                let live = tokio::task::spawn_blocking(move || relay_all_live(addr))
                    .await
                    .unwrap_or(false);
                if live {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for s in &self.suites {
                if let Some(p) = &s.proc {
                    p.signal("STOP");
                }
            }
            let paused = Instant::now();
            // Let the followers drain what was in flight.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let truths = self.truths();
            let mut converged = None;
            if truths.iter().all(|t| t.synced) {
                while paused.elapsed() < CONVERGE_WITHIN {
                    match mismatch(clients, &self.suites, &truths) {
                        None => {
                            converged = Some(Instant::now());
                            break;
                        }
                        Some(why) => problem = why,
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            } else {
                problem = "a truth follower was not in sync".into();
            }
            for s in &self.suites {
                if let Some(p) = &s.proc {
                    p.signal("CONT");
                }
            }
            if let Some(at) = converged {
                self.report.checkpoints.push(Checkpoint {
                    converged_in: Some(at - paused),
                    since_last_fault: Some(at - self.last_fault),
                    attempts: attempt,
                });
                if last && attempt > 1 {
                    self.report.failures.push(format!(
                        "after the last fault it took {attempt} quiet periods to converge"
                    ));
                }
                return;
            }
        }
        self.report.checkpoints.push(Checkpoint {
            converged_in: None,
            since_last_fault: None,
            attempts: 4,
        });
        self.report.failures.push(format!(
            "checkpoint {} never converged: {problem}",
            self.report.checkpoints.len() - 1
        ));
    }

    fn truths(&self) -> Vec<Truth> {
        self.truths
            .iter()
            .map(|t| {
                t.truth().unwrap_or(Truth {
                    synced: false,
                    epoch: None,
                    schema: Default::default(),
                    topics: Vec::new(),
                })
            })
            .collect()
    }

    fn finish(mut self) -> Report {
        for (pid, scrape) in self
            .sampler
            .scrapes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = pid;
            for (name, v) in scrape {
                *self.report.metrics.entry(name.clone()).or_default() += v;
            }
        }
        self.report.peak_rss = self.sampler.peak.load(Ordering::Relaxed);
        if self.report.peak_rss > self.report.rss_bound {
            self.report.failures.push(format!(
                "the relay's RSS reached {} bytes, over the bound {}",
                self.report.peak_rss, self.report.rss_bound
            ));
        }
        if self.report.peak_rss == 0 {
            self.report
                .failures
                .push("the relay's RSS was never sampled".into());
        }
        let deltas = self
            .report
            .metrics
            .get("clonewire_deltas_in_total")
            .copied()
            .unwrap_or(0.0);
        if deltas == 0.0 {
            self.report
                .failures
                .push("the relay applied no deltas at all".into());
        }
        // Children die with the campaign (their guards), and so do the logs' owner.
        self.relay.take();
        for s in &mut self.suites {
            s.proc.take();
        }
        let failed = !self.report.failures.is_empty();
        if !failed {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            self.report
                .failures
                .push(format!("logs kept in {}", self.dir.display()));
        }
        self.report
    }
}

/// The first difference between a client's copy and the projection of its suite's
/// state, or `None` when every client holds exactly its projection, verified.
fn mismatch(clients: &[CheckedClient], suites: &[Suite], truths: &[Truth]) -> Option<String> {
    let roomy = SubscriptionLimits {
        max_query_bytes: usize::MAX,
        max_depth: 64,
        max_fields: usize::MAX,
        max_ids: usize::MAX,
    };
    for client in clients {
        let Ok(sub) = Subscription::parse(&client.query, &roomy) else {
            return Some(format!("query {:?} does not parse", client.query));
        };
        let state = client.state();
        for (suite, truth) in suites.iter().zip(truths) {
            let mut topics: Vec<&str> = truth.topics.iter().map(|t| t.name()).collect();
            for ((w, t), _) in state.store.iter() {
                if w == &suite.name && !topics.contains(&t.as_str()) {
                    topics.push(t);
                }
            }
            for name in topics {
                let expected = truth
                    .topics
                    .iter()
                    .find(|t| t.name() == name)
                    .and_then(|topic| {
                        let field = sub.for_topic(&suite.name, name)?;
                        let projection = Projection::compile(field, name, &truth.schema)?;
                        Some(projection.project(topic).0)
                    })
                    .unwrap_or_else(|| json!({}));
                let replica = state.store.get(&suite.name, name);
                let actual = replica.map_or(json!({}), |r| r.topic.to_value());
                if actual != expected {
                    return Some(format!(
                        "client {:?} {}/{name}: the copy differs ({} vs {} bytes of JSON)",
                        client.query,
                        suite.name,
                        actual.to_string().len(),
                        expected.to_string().len()
                    ));
                }
                if let Some(r) = replica {
                    if !r.verified && actual != json!({}) {
                        return Some(format!(
                            "client {:?} {}/{name}: not verified",
                            client.query, suite.name
                        ));
                    }
                }
            }
        }
    }
    None
}
