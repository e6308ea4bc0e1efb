//! One suite, followed on its own thread: the follower (join, apply, verify, repair)
//! owns the replicas; the thread also owns the workflow's [`Views`], so projecting a
//! delta and queueing it to clients happens right after applying it, in order, with
//! no lock shared with any other suite. A slow, busy, silent or lying suite therefore
//! delays only its own clients.
//!
//! Clients reach the thread through a bounded command queue (subscribe, leave,
//! resync). Upstream the thread follows only the topics some view wants, and keeps an
//! unwanted topic for `topic_linger_secs` before dropping it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::{ResumePoint, WorkflowState};
use clonewire_core::{Schema, Topic};
use clonewire_suite::sockets::{CurveClient, CurveKeyPair, CurvePublicKey};
use clonewire_suite::{Event, Follower, FollowerConfig, Rung};
use tokio::sync::mpsc;

use crate::config::{Limits, SuiteConfig};
use crate::metrics::{Kind, Metrics};
use crate::outbox::Outbox;
use crate::registry::Group;
use crate::views::{ClientId, RebindSlot, Store, Views};

/// Something a client asks of one workflow.
#[derive(Debug)]
pub enum Command {
    /// Sets the client's subscription (`None`: it sees nothing of this workflow).
    Rebind {
        /// The client.
        client: ClientId,
        /// Its send queue.
        outbox: Arc<Outbox>,
        /// Its (interned) subscription.
        group: Option<Arc<Group>>,
        /// What it holds, when it reconnects.
        resume: Option<BTreeMap<String, ResumePoint>>,
    },
    /// The client is gone.
    Leave {
        /// The client.
        client: ClientId,
    },
    /// Sets the client's subscription to the newest one waiting in `slot` (nothing
    /// when a previous command already took it): rebinds coalesce per client.
    RebindLatest {
        /// The client.
        client: ClientId,
        /// Its send queue.
        outbox: Arc<Outbox>,
        /// Where its newest subscription waits.
        slot: Arc<RebindSlot>,
    },
    /// A lagging client drained: queue it one bridging delta (or a snapshot) per
    /// topic, from what it holds (`None`: unknown).
    Bridge {
        /// The client.
        client: ClientId,
        /// Its send queue.
        outbox: Arc<Outbox>,
        /// Topics and what the client holds of each.
        topics: Vec<(String, Option<ResumePoint>)>,
    },
    /// The client wants a fresh snapshot of a topic.
    Resync {
        /// The client.
        client: ClientId,
        /// The topic.
        topic: String,
    },
}

/// What others may read about a link without asking its thread.
#[derive(Clone, Debug)]
pub struct LinkStatus {
    /// The state clients are told.
    pub state: WorkflowState,
    /// The suite's schema (empty until `hello`).
    pub schema: Schema,
    /// The epoch followed.
    pub epoch: Option<String>,
    /// Topics followed upstream.
    pub topics: usize,
    /// Clients that see the workflow.
    pub clients: usize,
}

/// A handle on one suite's link thread.
pub struct SuiteLink {
    /// The workflow id clients see.
    pub id: Arc<str>,
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<LinkStatus>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SuiteLink {
    /// Starts following `suite` on a new thread.
    pub fn spawn(
        suite: &SuiteConfig,
        limits: &Limits,
        curve_keys: Option<&CurveKeyPair>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<SuiteLink> {
        let id: Arc<str> = Arc::from(suite.name.as_str());
        let (commands, rx) = mpsc::channel(limits.workflow_commands);
        let status = Arc::new(Mutex::new(LinkStatus {
            state: WorkflowState::Syncing,
            schema: Schema::default(),
            epoch: None,
            topics: 0,
            clients: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut config = FollowerConfig::new(&suite.pub_endpoint, &suite.rep_endpoint);
        config.topics = Some(Vec::new());
        config.request_timeout = Duration::from_millis(limits.suite_request_timeout_ms);
        config.max_queued = limits.suite_max_queued;
        if let Some(key) = &suite.server_key {
            let server_key = CurvePublicKey::parse(key).map_err(std::io::Error::other)?;
            config.curve = Some(match curve_keys {
                Some(keys) => CurveClient {
                    server_key,
                    keys: keys.clone(),
                },
                None => CurveClient::ephemeral(server_key).map_err(std::io::Error::other)?,
            });
        }
        let worker = Worker {
            id: id.clone(),
            views: Views::new(id.clone(), limits.history_deltas),
            rx,
            status: status.clone(),
            stop: stop.clone(),
            metrics,
            linger: Duration::from_secs(limits.topic_linger_secs),
            unwanted: HashMap::new(),
            bye: false,
            busy_until: None,
            schema: Schema::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("suite {}", suite.name))
            .spawn(move || worker.run(config))?;
        Ok(SuiteLink {
            id,
            commands,
            status,
            stop,
            thread: Some(thread),
        })
    }

    /// Queues a command, waiting while the queue is full.
    pub async fn send(&self, command: Command) {
        // The thread only stops at shutdown; a command then has nobody to serve.
        let _ = self.commands.send(command).await;
    }

    /// Queues a command if there is room (used where waiting is not possible).
    pub fn try_send(&self, command: Command) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// The link's state as last published by its thread.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the thread to stop (sockets close with linger 0).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the thread, at most `timeout`.
    pub fn join(mut self, timeout: Duration) {
        self.stop();
        let Some(thread) = self.thread.take() else { return };
        let end = Instant::now() + timeout;
        while !thread.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

/// The follower's replicas, as the views read them.
struct Replicas<'a>(&'a Follower, &'a Schema);

impl Store for Replicas<'_> {
    fn epoch(&self) -> &str {
        self.0.epoch().unwrap_or("")
    }
    fn schema(&self) -> &Schema {
        self.1
    }
    fn topic(&self, name: &str) -> Option<(&Topic, u64)> {
        self.0.topic(name).zip(self.0.seq(name))
    }
    fn topic_names(&self) -> Vec<String> {
        self.0.topics().map(|(name, _, _)| name.to_owned()).collect()
    }
}

/// How long one wait for suite messages lasts before commands are looked at again.
const TICK: Duration = Duration::from_millis(10);
/// How often the state, lingering topics and status are looked at.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

struct Worker {
    id: Arc<str>,
    views: Views,
    rx: mpsc::Receiver<Command>,
    status: Arc<Mutex<LinkStatus>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    linger: Duration,
    /// Topics still followed though no view wants them, since when.
    unwanted: HashMap<String, Instant>,
    bye: bool,
    busy_until: Option<Instant>,
    schema: Schema,
}

impl Worker {
    fn run(mut self, config: FollowerConfig) {
        let mut follower = loop {
            match Follower::connect(config.clone()) {
                Ok(f) => break f,
                Err(e) => {
                    tracing::error!(workflow = %self.id, error = %e, "cannot open the suite link; retrying");
                    self.publish_status(None, WorkflowState::Stale);
                    if self.sleep_unless_stopped(Duration::from_secs(1)) {
                        return;
                    }
                }
            }
        };
        let mut last_housekeeping = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            // Views read the replicas only when they reflect every event handled.
            if !follower.has_pending_events() {
                self.views.flush(&Replicas(&follower, &self.schema));
                let mut rebound = false;
                loop {
                    match self.rx.try_recv() {
                        Ok(command) => rebound |= self.command(&follower, command),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                if rebound {
                    self.linger_unwanted(&follower);
                    self.follow_upstream(&mut follower);
                }
            }
            match follower.next_event(TICK) {
                Ok(Some(event)) => self.event(&mut follower, event),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(workflow = %self.id, error = %e, "suite link error");
                    if self.sleep_unless_stopped(Duration::from_millis(200)) {
                        return;
                    }
                }
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING {
                last_housekeeping = Instant::now();
                self.housekeeping(&mut follower);
            }
        }
        tracing::debug!(workflow = %self.id, "suite link stopped");
    }

    fn sleep_unless_stopped(&self, time: Duration) -> bool {
        let end = Instant::now() + time;
        while Instant::now() < end {
            if self.stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop.load(Ordering::Relaxed)
    }

    /// Handles a client's command; true when the wanted topics may have changed.
    fn command(&mut self, follower: &Follower, command: Command) -> bool {
        let store = Replicas(follower, &self.schema);
        match command {
            Command::Rebind {
                client,
                outbox,
                group,
                resume,
            } => {
                self.views.rebind(&store, client, outbox, group, resume.as_ref());
                true
            }
            Command::Leave { client } => {
                self.views.leave(client);
                true
            }
            Command::Resync { client, topic } => {
                self.views.resync(&store, client, &topic);
                false
            }
            Command::RebindLatest { client, outbox, slot } => match slot.take() {
                Some(next) => {
                    self.views
                        .rebind(&store, client, outbox, next.group, next.resume.as_ref());
                    true
                }
                None => false,
            },
            Command::Bridge {
                client,
                outbox,
                topics,
            } => {
                for (topic, held) in topics {
                    self.views
                        .bridge_lagging(&store, client, &outbox, &topic, held.as_ref());
                }
                false
            }
        }
    }

    fn event(&mut self, follower: &mut Follower, event: Event) {
        let id = &self.id;
        match event {
            Event::Delta {
                topic,
                seq,
                changes,
                time,
                ..
            } => {
                self.metrics.deltas_in.inc();
                let store = Replicas(follower, &self.schema);
                self.views
                    .on_changes(&store, &topic, seq.saturating_sub(1), seq, &changes, time);
            }
            Event::Reset {
                topic,
                prev,
                seq,
                changes,
            } => {
                let store = Replicas(follower, &self.schema);
                self.views.on_changes(&store, &topic, prev, seq, &changes, None);
            }
            Event::Mismatch {
                topic,
                seq,
                expected,
                got,
                changes,
            } => {
                tracing::warn!(workflow = %id, %topic, seq, %expected, %got, "hash mismatch; repairing");
                self.metrics
                    .suite_problems
                    .get_or_create(&Kind::of("mismatch"))
                    .inc();
                // The replica took the delta; clients follow the replica exactly.
                let store = Replicas(follower, &self.schema);
                self.views
                    .on_changes(&store, &topic, seq.saturating_sub(1), seq, &changes, None);
            }
            Event::Joined { name, epoch, topics } => {
                tracing::info!(workflow = %id, suite = %name, %epoch, topics, "joined");
                if follower.schema() != &self.schema {
                    self.schema = follower.schema().clone();
                    self.views.on_schema();
                }
                let store = Replicas(follower, &self.schema);
                self.views.after_join(&store);
            }
            Event::NewEpoch { epoch } => {
                tracing::info!(workflow = %id, %epoch, "suite restarted: new epoch");
                self.bye = false;
                self.views.on_new_epoch();
            }
            Event::Bye { epoch } => {
                tracing::info!(workflow = %id, %epoch, "suite said goodbye");
                self.bye = true;
            }
            Event::Repaired { topic, seq, rung } => {
                let rung = match rung {
                    Rung::Replay => "replay",
                    Rung::Hashes => "hashes",
                    Rung::Snapshot => "snapshot",
                };
                tracing::info!(workflow = %id, %topic, seq, rung, "repaired");
                self.metrics.repairs.get_or_create(&Kind::of(rung)).inc();
            }
            Event::Gap {
                topic,
                have,
                seen,
                heartbeat,
            } => {
                tracing::debug!(workflow = %id, %topic, have, seen, heartbeat, "gap");
                self.metrics.suite_problems.get_or_create(&Kind::of("gap")).inc();
            }
            Event::Busy { op, retry_in } => {
                tracing::debug!(workflow = %id, op, ?retry_in, "suite busy");
                self.metrics.suite_problems.get_or_create(&Kind::of("busy")).inc();
                self.busy_until = Some(Instant::now() + retry_in + Duration::from_millis(500));
            }
            Event::Timeout { op } => {
                tracing::debug!(workflow = %id, op, "request timed out; socket reopened");
                self.metrics
                    .suite_problems
                    .get_or_create(&Kind::of("timeout"))
                    .inc();
            }
            Event::Refused { op, code, message } => {
                tracing::warn!(workflow = %id, op, ?code, %message, "suite refused a request");
                self.metrics
                    .suite_problems
                    .get_or_create(&Kind::of("refused"))
                    .inc();
            }
            Event::Malformed { reason } => {
                tracing::warn!(workflow = %id, %reason, "malformed message from suite");
                self.metrics
                    .suite_problems
                    .get_or_create(&Kind::of("malformed"))
                    .inc();
            }
            Event::Stale { silent_for } => {
                tracing::info!(workflow = %id, ?silent_for, "suite silent");
            }
        }
    }

    /// Topics followed now that no view wants start to linger.
    fn linger_unwanted(&mut self, follower: &Follower) {
        let now = Instant::now();
        match self.views.wanted() {
            None => self.unwanted.clear(),
            Some(wanted) => {
                for (name, _, _) in follower.topics() {
                    if !wanted.contains(name) {
                        self.unwanted.entry(name.to_owned()).or_insert(now);
                    }
                }
                self.unwanted.retain(|name, _| !wanted.contains(name));
            }
        }
    }

    /// Follows upstream exactly the topics the views want, plus lingering ones.
    fn follow_upstream(&mut self, follower: &mut Follower) {
        let target = self.views.wanted().map(|mut wanted| {
            wanted.extend(self.unwanted.keys().cloned());
            wanted
        });
        let before: BTreeSet<String> = follower.topics().map(|(n, _, _)| n.to_owned()).collect();
        if let Err(e) = follower.set_topics(target) {
            tracing::warn!(workflow = %self.id, error = %e, "cannot change upstream topics");
        }
        let after: BTreeSet<String> = follower.topics().map(|(n, _, _)| n.to_owned()).collect();
        for gone in before.difference(&after) {
            self.views.on_dropped(gone);
        }
    }

    fn housekeeping(&mut self, follower: &mut Follower) {
        let now = Instant::now();
        let expired = self
            .unwanted
            .values()
            .any(|since| now.duration_since(*since) >= self.linger);
        if expired && !follower.has_pending_events() {
            let linger = self.linger;
            self.unwanted
                .retain(|_, since| now.duration_since(*since) < linger);
            self.follow_upstream(follower);
        }
        let silent = now.saturating_duration_since(follower.last_heard());
        let state = if self.bye {
            WorkflowState::Stopped
        } else if silent > follower.heartbeat_interval() * 3 {
            WorkflowState::Stale
        } else if self.busy_until.is_some_and(|t| now < t) {
            WorkflowState::Busy
        } else if !follower.is_synced() {
            WorkflowState::Syncing
        } else {
            WorkflowState::Live
        };
        self.views.set_state(state, &self.schema);
        self.publish_status(Some(follower), state);
    }

    fn publish_status(&self, follower: Option<&Follower>, state: WorkflowState) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.state = state;
        status.schema = self.schema.clone();
        status.epoch = follower.and_then(|f| f.epoch().map(str::to_owned));
        status.topics = follower.map_or(0, |f| f.topics().count());
        status.clients = self.views.member_count();
    }
}
