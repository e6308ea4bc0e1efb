//! One workflow, followed on its own thread: its [`Upstream`] (for a clonewire suite,
//! the follower: join, apply, verify, repair) owns the replicas; the thread also owns
//! the workflow's [`SubscriptionViews`], so projecting a delta and queueing it to
//! clients happens right after applying it, in order, with no lock shared with any
//! other workflow. A slow, busy, silent or lying upstream therefore delays only its
//! own clients.
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
use clonewire_core::{Schema, Seq, Topic};
use clonewire_zmq::sockets::CurveKeyPair;
use tokio::sync::mpsc;

use crate::clients::outbox::Outbox;
use crate::config::{Limits, SuiteConfig};
use crate::serve::metrics::{seconds_since, KindLabel, Metrics};
use crate::workflow::history::HistoryLimit;
use crate::workflow::registry::Group;
use crate::workflow::upstream::clonewire::ClonewireUpstream;
use crate::workflow::upstream::{ChangeKind, Upstream, UpstreamEvent};
use crate::workflow::views::{ClientId, RebindSlot, ReplicaSource, SubscriptionViews};
use crate::workflow::wake::{Wake, Waker};

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
    /// Stop following, after the commands queued before this one (used when a
    /// workflow is removed at run time: its clients are told first).
    Stop,
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
    /// The workflow's schema; `None` until the link has first joined it, when the
    /// schema is not known (which is not the same as a schema without collections).
    pub schema: Option<Schema>,
    /// The epoch followed.
    pub epoch: Option<String>,
    /// Topics followed upstream.
    pub topics: usize,
    /// Clients that see the workflow.
    pub clients: usize,
    /// Leaves in the replica's topics.
    pub replica_leaves: usize,
    /// Bytes the views' resume histories hold.
    pub history_bytes: usize,
}

/// A handle on one workflow's link thread (a clonewire suite, a Cylc workflow or an
/// upper relay's workflow).
pub struct WorkflowLink {
    /// The workflow id clients see.
    pub id: Arc<str>,
    commands: mpsc::Sender<Command>,
    status: Arc<Mutex<LinkStatus>>,
    stop: Arc<AtomicBool>,
    /// Wakes the thread for a command (it sleeps until there is work).
    waker: Waker,
    /// The link's thread, until whoever waits for it takes it.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WorkflowLink {
    /// Starts following the clonewire suite `suite` on a new thread.
    pub fn spawn(
        suite: &SuiteConfig,
        limits: &Limits,
        curve_keys: Option<&CurveKeyPair>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<WorkflowLink> {
        let config = ClonewireUpstream::config(suite, limits, curve_keys)?;
        WorkflowLink::spawn_upstream(&suite.name, limits, metrics, move || {
            ClonewireUpstream::connect(config.clone())
        })
    }

    /// Starts following a workflow on a new thread, through the upstream `open`
    /// returns (retried every second until it succeeds or the link is stopped).
    pub fn spawn_upstream<U, E>(
        name: &str,
        limits: &Limits,
        metrics: Arc<Metrics>,
        open: impl FnMut() -> Result<U, E> + Send + 'static,
    ) -> std::io::Result<WorkflowLink>
    where
        U: Upstream,
        E: std::fmt::Display,
    {
        let id: Arc<str> = Arc::from(name);
        let (commands, rx) = mpsc::channel(limits.workflow_commands);
        let status = Arc::new(Mutex::new(LinkStatus {
            state: WorkflowState::Syncing,
            schema: None,
            epoch: None,
            topics: 0,
            clients: 0,
            replica_leaves: 0,
            history_bytes: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Wake::new()?;
        let waker = wake.waker();
        let worker = Worker {
            wake,
            id: id.clone(),
            views: SubscriptionViews::new(
                id.clone(),
                HistoryLimit {
                    steps: limits.history_deltas,
                    bytes: limits.history_bytes,
                    max_age_ms: limits.history_max_age_secs.saturating_mul(1000),
                },
            ),
            rx,
            status: status.clone(),
            stop: stop.clone(),
            metrics,
            linger: Duration::from_secs(limits.topic_linger_secs),
            unwanted: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("suite {name}"))
            .spawn(move || worker.run(open))?;
        Ok(WorkflowLink {
            id,
            commands,
            status,
            stop,
            waker,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a command, waiting while the queue is full.
    pub async fn send(&self, command: Command) {
        // The thread only stops at shutdown; a command then has nobody to serve.
        if self.commands.send(command).await.is_ok() {
            self.waker.wake();
        }
    }

    /// Queues a command if there is room (used where waiting is not possible).
    pub fn try_send(&self, command: Command) -> bool {
        let sent = self.commands.try_send(command).is_ok();
        if sent {
            self.waker.wake();
        }
        sent
    }

    /// The link's state as last published by its thread.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues a command from a plain thread (never from async code), waiting while
    /// the queue is full; false if the link thread is gone.
    pub fn send_blocking(&self, command: Command) -> bool {
        let sent = self.commands.blocking_send(command).is_ok();
        if sent {
            self.waker.wake();
        }
        sent
    }

    /// Asks the thread to stop (sockets close with linger 0).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
    }

    /// True until its thread is taken.
    pub(crate) fn has_thread(&self) -> bool {
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Its thread, to wait for once stopped (`None` once taken).
    pub(crate) fn take_thread(&self) -> Option<JoinHandle<()>> {
        self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The followed upstream with the schema the views were last told about (`None` until
/// the workflow is first joined): what the views read, owned by the link thread.
struct Followed<U> {
    upstream: U,
    schema: Option<Schema>,
}

impl<U: Upstream> ReplicaSource for Followed<U> {
    fn epoch(&self) -> &str {
        self.upstream.epoch().unwrap_or("")
    }
    fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        self.upstream.topic(name)
    }
    fn topic_names(&self) -> Vec<String> {
        self.upstream.topic_names()
    }
}

/// Changes of at least this many leaves are freed off the link thread.
const DROP_ELSEWHERE_LEAVES: usize = 10_000;

/// How often the state, lingering topics and status are looked at while clients
/// watch the workflow...
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// ...and while none do (the link thread otherwise sleeps until a message, a command
/// or a deadline).
const HOUSEKEEPING_UNWATCHED: Duration = Duration::from_secs(1);
/// Client commands served between two reads of the upstream at most, and the time
/// they may take: a storm of joins (each first member of a view makes its snapshots
/// here) is paced so that it never keeps the upstream's stream, and so the clients
/// already connected, waiting for more than a few milliseconds.
const COMMANDS_PER_TURN: usize = 64;
const COMMAND_TIME_PER_TURN: Duration = Duration::from_millis(3);

struct Worker {
    /// Readable when a command waits or the thread should stop.
    wake: Wake,
    id: Arc<str>,
    views: SubscriptionViews,
    rx: mpsc::Receiver<Command>,
    status: Arc<Mutex<LinkStatus>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    linger: Duration,
    /// Topics still followed though no view wants them, since when.
    unwanted: HashMap<String, Instant>,
}

impl Worker {
    fn run<U: Upstream, E: std::fmt::Display>(mut self, mut open: impl FnMut() -> Result<U, E>) {
        let mut followed = loop {
            match open() {
                Ok(upstream) => {
                    break Followed {
                        upstream,
                        schema: None,
                    }
                }
                Err(e) => {
                    tracing::error!(workflow = %self.id, error = %e, "cannot open the workflow link; retrying");
                    self.publish_status(None::<&Followed<U>>, WorkflowState::Stale);
                    if self.sleep_unless_stopped(Duration::from_secs(1)) {
                        return;
                    }
                }
            }
        };
        let mut next_housekeeping = Instant::now() + self.housekeeping_every();
        while !self.stop.load(Ordering::Relaxed) {
            // True when commands may be left for the next turn.
            let mut more_commands = false;
            // Views read the replicas only when they reflect every event handled.
            if !followed.upstream.has_pending_events() {
                self.views.flush(&followed);
                let mut rebound = false;
                let started = Instant::now();
                more_commands = true;
                // Wake-ups so far are for the commands read now; a later one stays.
                self.wake.drain();
                for _ in 0..COMMANDS_PER_TURN {
                    if started.elapsed() >= COMMAND_TIME_PER_TURN {
                        break;
                    }
                    match self.rx.try_recv() {
                        Ok(command) => rebound |= self.command(&followed, command),
                        Err(mpsc::error::TryRecvError::Empty) => {
                            more_commands = false;
                            break;
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                }
                if rebound {
                    self.linger_unwanted(&followed.upstream);
                    self.follow_upstream(&mut followed.upstream);
                }
            }
            // While a big snapshot is built a slice per turn, or commands wait, turns
            // do not wait.
            let wait = if self.views.building() || more_commands {
                Duration::ZERO
            } else {
                next_housekeeping.saturating_duration_since(Instant::now())
            };
            match followed.upstream.next_event(wait, self.wake.fd()) {
                Ok(Some(event)) => self.event(&mut followed, event),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(workflow = %self.id, error = %e, "workflow link error");
                    if self.sleep_unless_stopped(Duration::from_millis(200)) {
                        return;
                    }
                }
            }
            let now = Instant::now();
            if now >= next_housekeeping {
                next_housekeeping = now + self.housekeeping_every();
                self.housekeeping(&mut followed);
            }
        }
        tracing::debug!(workflow = %self.id, "workflow link stopped");
    }

    /// How often the state, lingering topics and status are looked at: often while
    /// clients watch the workflow, rarely when none do.
    fn housekeeping_every(&self) -> Duration {
        if self.views.member_count() > 0 {
            HOUSEKEEPING
        } else {
            HOUSEKEEPING_UNWATCHED
        }
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
    fn command(&mut self, store: &Followed<impl Upstream>, command: Command) -> bool {
        match command {
            Command::Rebind {
                client,
                outbox,
                group,
                resume,
            } => {
                self.views.rebind(store, client, outbox, group, resume.as_ref());
                true
            }
            Command::Leave { client } => {
                self.views.leave(client);
                true
            }
            Command::Stop => {
                self.stop.store(true, Ordering::Relaxed);
                false
            }
            Command::Resync { client, topic } => {
                self.views.resync(store, client, &topic);
                false
            }
            Command::RebindLatest { client, outbox, slot } => match slot.take() {
                Some(next) => {
                    self.views
                        .rebind(store, client, outbox, next.group, next.resume.as_ref());
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
                        .bridge_lagging(store, client, &outbox, &topic, held.as_ref());
                }
                false
            }
        }
    }

    fn event(&mut self, followed: &mut Followed<impl Upstream>, event: UpstreamEvent) {
        let id = &self.id;
        match event {
            UpstreamEvent::Changed {
                topic,
                prev,
                seq,
                changes,
                time,
                kind,
            } => {
                let published = time.filter(|_| kind == ChangeKind::Delta);
                if kind == ChangeKind::Delta {
                    self.metrics.deltas_in.inc();
                }
                if let Some(t) = published {
                    self.metrics.arrival.observe(seconds_since(t));
                }
                self.views.on_changes(followed, &topic, prev, seq, &changes, time);
                if let Some(t) = published {
                    self.metrics.queued.observe(seconds_since(t));
                }
                if changes.leaves.len() >= DROP_ELSEWHERE_LEAVES {
                    // A reset of a big topic: freeing its leaves here would hold up
                    // the workflow's next deltas.
                    clonewire_zmq::background::drop_elsewhere(changes);
                }
            }
            UpstreamEvent::Joined { detail } => {
                tracing::info!(workflow = %id, %detail, "joined");
                // Until the first join, the views were compiled against no collections.
                let published = followed.upstream.schema();
                let changed = followed.schema.as_ref().unwrap_or(&Schema::default()) != published;
                if changed || followed.schema.is_none() {
                    followed.schema = Some(published.clone());
                }
                if changed {
                    self.views.on_schema();
                }
                // Subscriptions are checked against the published schema, and clients
                // read data through it: publish it, and tell the members, before any
                // client can see the joined workflow's data.
                let state = followed.upstream.state(Instant::now());
                self.views.set_state(state, followed.schema.as_ref());
                self.publish_status(Some(&*followed), state);
                self.views.after_join(followed);
            }
            UpstreamEvent::NewEpoch { epoch } => {
                tracing::info!(workflow = %id, %epoch, "suite restarted: new epoch");
                self.views.on_new_epoch();
            }
            UpstreamEvent::Repaired { topic, seq, how } => {
                tracing::info!(workflow = %id, %topic, %seq, how, "repaired");
                self.metrics.repairs.get_or_create(&KindLabel::of(how)).inc();
            }
            UpstreamEvent::Problem { kind, detail } => {
                if kind.is_serious() {
                    tracing::warn!(workflow = %id, problem = kind.as_str(), "{detail}");
                } else {
                    tracing::debug!(workflow = %id, problem = kind.as_str(), "{detail}");
                }
                self.metrics
                    .suite_problems
                    .get_or_create(&KindLabel::of(kind.as_str()))
                    .inc();
            }
            UpstreamEvent::Notice { detail } => {
                tracing::info!(workflow = %id, "{detail}");
            }
        }
    }

    /// Topics followed now that no view wants start to linger.
    fn linger_unwanted(&mut self, upstream: &impl Upstream) {
        let now = Instant::now();
        match self.views.wanted() {
            None => self.unwanted.clear(),
            Some(wanted) => {
                for name in upstream.topic_names() {
                    if !wanted.contains(&name) {
                        self.unwanted.entry(name).or_insert(now);
                    }
                }
                self.unwanted.retain(|name, _| !wanted.contains(name));
            }
        }
    }

    /// Follows upstream exactly the topics the views want, plus lingering ones.
    fn follow_upstream(&mut self, upstream: &mut impl Upstream) {
        let target = self.views.wanted().map(|mut wanted| {
            wanted.extend(self.unwanted.keys().cloned());
            wanted
        });
        let before: BTreeSet<String> = upstream.topic_names().into_iter().collect();
        if upstream.follows_selections() {
            upstream.set_selection(&self.views.selection());
        }
        if let Err(e) = upstream.set_topics(target) {
            tracing::warn!(workflow = %self.id, error = %e, "cannot change upstream topics");
        }
        let after: BTreeSet<String> = upstream.topic_names().into_iter().collect();
        for gone in before.difference(&after) {
            self.views.on_dropped(gone);
        }
    }

    fn housekeeping(&mut self, followed: &mut Followed<impl Upstream>) {
        let now = Instant::now();
        let expired = self
            .unwanted
            .values()
            .any(|since| now.duration_since(*since) >= self.linger);
        if expired && !followed.upstream.has_pending_events() {
            let linger = self.linger;
            self.unwanted
                .retain(|_, since| now.duration_since(*since) < linger);
            self.follow_upstream(&mut followed.upstream);
        }
        let state = followed.upstream.state(now);
        self.views.set_state(state, followed.schema.as_ref());
        self.publish_status(Some(&*followed), state);
    }

    fn publish_status<U: Upstream>(&self, followed: Option<&Followed<U>>, state: WorkflowState) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.state = state;
        status.schema = followed.and_then(|f| f.schema.clone());
        let upstream = followed.map(|f| &f.upstream);
        status.epoch = upstream.and_then(|u| u.epoch().map(str::to_owned));
        let names = upstream.map(Upstream::topic_names).unwrap_or_default();
        status.topics = names.len();
        status.replica_leaves = upstream.map_or(0, |u| {
            names
                .iter()
                .filter_map(|name| u.topic(name))
                .map(|(topic, _)| topic.leaf_count())
                .sum()
        });
        status.clients = self.views.member_count();
        status.history_bytes = self.views.history_bytes();
    }
}
