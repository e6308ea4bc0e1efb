//! A simulator that plays realistic Cylc-like workflows through a [`Publisher`], for
//! demos, tests and benchmarks, in the model a real Cylc 8 workflow has through the
//! relay (see [`workflow`]). Several can run side by side in one process:
//!
//! ```no_run
//! use clonewire_suite::sim::{SimConfig, Simulator};
//! let a = Simulator::start(SimConfig::new("alpha")).unwrap();
//! let b = Simulator::start(SimConfig::new("beta")).unwrap();
//! println!("{} {}", a.pub_endpoint(), a.rep_endpoint());
//! a.stop();
//! b.stop();
//! ```
//!
//! Besides playing the workflow (see [`workflow`]), it can misbehave on purpose:
//! answer `busy` for a while (a slow config reload), drop deltas (counted and
//! applied, never sent, so subscribers must repair) and restart (a new epoch).

pub mod calendar;
mod commands;
pub mod workflow;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clonewire_core::Schema;
use serde_json::Value;

use crate::commands::Commands;
use crate::error::Error;
use crate::held::Held;
use crate::history::HistoryLimits;
use crate::publisher::{Publisher, PublisherConfig};
use clonewire_zmq::sockets::{CurvePublicKey, CurveSecretKey};
pub use workflow::{Order, Workflow};

/// The longest the simulator sleeps at once, so `stop` is prompt.
const NAP: Duration = Duration::from_millis(20);
/// Falling further behind the rate than this resets the schedule instead of bursting.
const MAX_LAG: Duration = Duration::from_secs(1);
/// How often the player looks at what its publisher holds.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// How to run a simulated suite.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The suite's (workflow's) name.
    pub name: String,
    /// Where the PUB socket binds.
    pub pub_endpoint: String,
    /// Where the REP socket binds.
    pub rep_endpoint: String,
    /// About how many tasks are live at once.
    pub tasks: usize,
    /// Deltas per second, over all topics.
    pub rate: f64,
    /// Seed of the workflow's choices: the same seed plays the same workflow.
    pub seed: u64,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Every this often, become busy (a slow config reload)...
    pub busy_every: Option<Duration>,
    /// ...for this long: requests are answered `busy` (deltas keep flowing).
    pub busy_for: Duration,
    /// The fraction of deltas applied and counted but not sent.
    pub drop: f64,
    /// Every this often, restart: a new epoch, a fresh store, seqs from 1.
    pub restart_every: Option<Duration>,
    /// Publish the first state and then no events (heartbeats, busy periods and
    /// restarts go on): a workflow that holds its size, for measuring joins.
    pub still: bool,
    /// Replay history per topic.
    pub history: HistoryLimits,
    /// The CURVE server secret key: encrypted links, only to peers that know the
    /// matching public key (see [`PublisherConfig::curve_secret_key`]).
    pub curve_secret_key: Option<CurveSecretKey>,
    /// With a key: admit only followers with these CURVE public keys (see
    /// [`PublisherConfig::curve_allowed_clients`]).
    pub curve_allowed_clients: Option<Vec<CurvePublicKey>>,
    /// Announce the suite with a contact file in this directory (see
    /// [`PublisherConfig::contact_dir`]).
    pub contact_dir: Option<PathBuf>,
}

impl SimConfig {
    /// 200 tasks, 50 deltas/s, seed 1, ephemeral ports on 127.0.0.1, no misbehaviour.
    pub fn new(name: impl Into<String>) -> SimConfig {
        SimConfig {
            name: name.into(),
            pub_endpoint: "tcp://127.0.0.1:0".into(),
            rep_endpoint: "tcp://127.0.0.1:0".into(),
            tasks: 200,
            rate: 50.0,
            seed: 1,
            heartbeat_ms: 1000,
            busy_every: None,
            busy_for: Duration::from_secs(2),
            drop: 0.0,
            restart_every: None,
            still: false,
            history: HistoryLimits::default(),
            curve_secret_key: None,
            curve_allowed_clients: None,
            contact_dir: None,
        }
    }

    fn check(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::config(m.to_owned()));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad("rate must be a positive number of deltas per second");
        }
        if !(0.0..=1.0).contains(&self.drop) {
            return bad("drop must be a fraction between 0 and 1");
        }
        if self.tasks == 0 {
            return bad("tasks must be at least 1");
        }
        if self.busy_every.is_some_and(|e| e.is_zero()) || self.restart_every.is_some_and(|e| e.is_zero()) {
            return bad("busy-every and restart-every must be longer than 0");
        }
        Ok(())
    }
}

/// What a simulator did, counted since it started.
#[derive(Debug, Default)]
pub struct SimCounters {
    /// Deltas published (sent or dropped).
    pub deltas: AtomicU64,
    /// Deltas deliberately not sent.
    pub dropped: AtomicU64,
    /// Body bytes of published deltas.
    pub bytes: AtomicU64,
    /// Restarts (new epochs).
    pub restarts: AtomicU64,
    /// Busy periods begun.
    pub busy_periods: AtomicU64,
    /// What its publisher held when last looked at (about once a second).
    held: Mutex<Held>,
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds the suite's sockets and starts playing on a thread of its own.
    pub fn start(config: SimConfig) -> Result<SimHandle, Error> {
        config.check()?;
        let (orders_tx, orders) = std::sync::mpsc::sync_channel(commands::ORDERS_WAITING);
        let handler = commands::SimCommands { orders: orders_tx };
        let publisher = Publisher::start(PublisherConfig {
            commands: Some(Commands(Arc::new(handler))),
            heartbeat_ms: config.heartbeat_ms,
            schema: Schema::new(workflow::collections()),
            history: config.history,
            pub_endpoint: config.pub_endpoint.clone(),
            rep_endpoint: config.rep_endpoint.clone(),
            curve_secret_key: config.curve_secret_key.clone(),
            curve_allowed_clients: config.curve_allowed_clients.clone(),
            contact_dir: config.contact_dir.clone(),
            ..PublisherConfig::new(config.name.clone())
        })?;
        let pub_endpoint = publisher.pub_endpoint().to_owned();
        let rep_endpoint = publisher.rep_endpoint().to_owned();
        let contact_file = publisher.contact_file().map(PathBuf::from);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SimCounters::default());
        let player = Player {
            workflow: Workflow::new(config.name.clone(), config.tasks, config.seed),
            drops: fastrand::Rng::with_seed(config.seed ^ 0x5eed_d509),
            publisher,
            orders,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            restarts: 0,
            config,
        };
        let name = player.config.name.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sim-{name}"))
            .spawn(move || player.run())?;
        Ok(SimHandle {
            name,
            pub_endpoint,
            rep_endpoint,
            contact_file,
            stop,
            counters,
            thread: Some(thread),
        })
    }
}

/// A running simulator. Dropping it stops it (with `_bye`), like [`SimHandle::stop`].
pub struct SimHandle {
    name: String,
    pub_endpoint: String,
    rep_endpoint: String,
    contact_file: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    counters: Arc<SimCounters>,
    thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The suite's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound PUB endpoint (real port).
    pub fn pub_endpoint(&self) -> &str {
        &self.pub_endpoint
    }

    /// The bound REP endpoint (real port).
    pub fn rep_endpoint(&self) -> &str {
        &self.rep_endpoint
    }

    /// Its contact file, when it announces itself (`contact_dir`).
    pub fn contact_file(&self) -> Option<&std::path::Path> {
        self.contact_file.as_deref()
    }

    /// What it has done so far.
    pub fn counters(&self) -> &SimCounters {
        &self.counters
    }

    /// What its publisher held about a second ago or less (see [`Publisher::held`]).
    pub fn held(&self) -> Held {
        *self.counters.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops playing, sends `_bye` and closes the sockets.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!(name = %self.name, "simulator thread panicked");
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The simulator's thread: plays the workflow at the configured rate.
struct Player {
    config: SimConfig,
    workflow: Workflow,
    drops: fastrand::Rng,
    publisher: Publisher,
    /// What users ordered (commands), carried out before the next event.
    orders: Receiver<Order>,
    stop: Arc<AtomicBool>,
    counters: Arc<SimCounters>,
    restarts: u64,
}

impl Player {
    fn run(mut self) {
        let interval = Duration::from_secs_f64(1.0 / self.config.rate);
        let started = Instant::now();
        let mut next_busy = self.config.busy_every.map(|e| started + e);
        let mut busy_until: Option<Instant> = None;
        let mut next_restart = self.config.restart_every.map(|e| started + e);
        let patches = self.workflow.start();
        self.publish_all(patches, false);
        if self.config.still {
            tracing::info!(name = %self.config.name, tasks = self.workflow.live_tasks(), "holding still: the first state is published and no events follow");
        }
        let mut due = Instant::now();
        let mut next_look = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if now >= next_look {
                next_look = now + LOOK_EVERY;
                *self.counters.held.lock().unwrap_or_else(|p| p.into_inner()) = self.publisher.held();
            }
            if busy_until.is_some_and(|t| now >= t) {
                busy_until = None;
                self.publisher.set_busy(false);
                tracing::info!(name = %self.config.name, "no longer busy");
            }
            if let (Some(at), Some(every)) = (next_busy, self.config.busy_every) {
                if now >= at {
                    next_busy = Some(at + every);
                    busy_until = Some(now + self.config.busy_for);
                    self.publisher.set_busy(true);
                    self.counters.busy_periods.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(name = %self.config.name, "busy (simulated reload)");
                }
            }
            if let (Some(at), Some(every)) = (next_restart, self.config.restart_every) {
                if now >= at {
                    next_restart = Some(now + every);
                    self.restart();
                }
            }
            while let Ok(order) = self.orders.try_recv() {
                tracing::info!(name = %self.config.name, ?order, "order");
                let patches = self.workflow.order(order);
                self.publish_all(patches, false);
            }
            if self.config.still || self.workflow.is_stopped() {
                std::thread::sleep(NAP);
                continue;
            }
            if now < due {
                std::thread::sleep((due - now).min(NAP));
                continue;
            }
            if now - due > MAX_LAG {
                due = now;
            }
            let patches = self.workflow.step();
            let sent = self.publish_all(patches, true);
            due += interval * sent.max(1);
        }
        let last = vec![self.workflow.stopping()];
        self.publish_all(last, false);
        self.publisher.shutdown();
    }

    /// Starts a new epoch with a fresh workflow (a different seed each time).
    fn restart(&mut self) {
        self.restarts += 1;
        let last = vec![self.workflow.stopping()];
        self.publish_all(last, false);
        let epoch = self.publisher.restart();
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!(name = %self.config.name, %epoch, "restarted");
        self.workflow = Workflow::new(
            self.config.name.clone(),
            self.config.tasks,
            self.config.seed.wrapping_add(self.restarts),
        );
        let patches = self.workflow.start();
        self.publish_all(patches, false);
    }

    /// Publishes patches, dropping some if asked; returns how many deltas were made.
    fn publish_all(&mut self, patches: Vec<(&'static str, Value)>, may_drop: bool) -> u32 {
        let mut made = 0;
        for (topic, patch) in patches {
            let drop = may_drop && self.config.drop > 0.0 && self.drops.f64() < self.config.drop;
            let result = if drop {
                self.publisher.publish_unsent(topic, patch)
            } else {
                self.publisher.publish(topic, patch)
            };
            match result {
                Ok(Some(published)) => {
                    made += 1;
                    self.counters.deltas.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .bytes
                        .fetch_add(published.bytes as u64, Ordering::Relaxed);
                    if drop {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(topic, error = %e, "could not publish"),
            }
        }
        made
    }
}
