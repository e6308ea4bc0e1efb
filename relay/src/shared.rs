//! The relay's shared state: the workflow links, the subscription registry, the clients
//! and the metrics. Everything per workflow lives on that workflow's link thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use tokio::sync::watch;

use crate::clients::auth::Access;
use crate::clients::outbox::Outbox;
use crate::clients::ClientId;
use crate::config::Config;
use crate::serve::metrics::{KindLabel, Metrics};
use crate::workflow::link::{Command, WorkflowLink};
use crate::workflow::registry::{Group, Registry};
use crate::workflow::threads::Threads;

/// What a link added at run time needs to serve a client already subscribed.
#[derive(Clone)]
struct Subscriber {
    outbox: Arc<Outbox>,
    group: Arc<Group>,
    access: Access,
}

/// Shared by the HTTP handlers and every session.
pub struct Relay {
    config: Config,
    /// Links come and go at run time (`--cylc-run` and `--discover` find workflows).
    links: RwLock<BTreeMap<Arc<str>, Arc<WorkflowLink>>>,
    /// Each subscribed client's current subscription, so a link added later
    /// serves it too.
    subscribers: Mutex<HashMap<ClientId, Subscriber>>,
    registry: Registry,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<ClientId, Weak<Outbox>>>,
    next_client: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Threads to wait for at shutdown: discovery, links replaced or removed.
    threads: Threads,
}

impl Relay {
    /// Assembles a relay around running links.
    pub(crate) fn new(
        config: Config,
        links: Vec<WorkflowLink>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Relay {
        Relay {
            config,
            links: RwLock::new(links.into_iter().map(|l| (l.id.clone(), Arc::new(l))).collect()),
            subscribers: Mutex::new(HashMap::new()),
            registry: Registry::default(),
            metrics,
            clients: Mutex::new(HashMap::new()),
            next_client: AtomicU64::new(1),
            shutdown,
            threads: Threads::default(),
        }
    }

    /// Waits for `handle` at shutdown.
    pub(crate) fn track_thread(&self, name: impl Into<String>, handle: std::thread::JoinHandle<()>) {
        self.threads.track(name, handle);
    }

    /// A link told to stop: its thread is waited for at shutdown.
    fn retire(&self, link: &WorkflowLink) {
        if let Some(thread) = link.take_thread() {
            self.threads.track(format!("link {}", link.id), thread);
        }
    }

    /// Stops every link and waits, until `deadline` at most, for every thread the
    /// relay started (links added meanwhile by discovery included); returns the names
    /// of those still running then.
    pub(crate) fn stop_and_join(&self, deadline: Instant) -> Vec<String> {
        loop {
            for link in self.links() {
                link.stop();
                self.retire(&link);
            }
            let round = (Instant::now() + Duration::from_millis(20)).min(deadline);
            let left = self.threads.join_until(round);
            let unstopped_links = self.links().any(|l| l.has_thread());
            if (left.is_empty() && !unstopped_links) || Instant::now() >= deadline {
                return left;
            }
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every workflow link now, by workflow id.
    pub fn links(&self) -> std::vec::IntoIter<Arc<WorkflowLink>> {
        let links = self.links.read().unwrap_or_else(|e| e.into_inner());
        links.values().cloned().collect::<Vec<_>>().into_iter()
    }

    /// One workflow link.
    pub fn link(&self, workflow: &str) -> Option<Arc<WorkflowLink>> {
        let links = self.links.read().unwrap_or_else(|e| e.into_inner());
        links.get(workflow).cloned()
    }

    /// Adds a link at run time and binds every subscribed client it may serve. A
    /// link with the id of one already there replaces it (the old one is stopped).
    /// Called from a plain thread: it waits while the link's command queue is full.
    pub(crate) fn add_link(&self, link: WorkflowLink) {
        let link = Arc::new(link);
        let old = {
            let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
            links.insert(link.id.clone(), link.clone())
        };
        if let Some(old) = old {
            old.stop();
            self.retire(&old);
        }
        for (client, sub) in self.subscribers_now() {
            if sub.access.allows(&link.id) && sub.group.sub.for_workflow(&link.id).is_some() {
                link.send_blocking(Command::Rebind {
                    client,
                    outbox: sub.outbox,
                    group: Some(sub.group),
                    resume: None,
                });
            }
        }
    }

    /// Removes a link at run time: its clients are told the workflow is `removed`
    /// and its thread stops. Called from a plain thread, like [`Relay::add_link`].
    pub(crate) fn remove_link(&self, workflow: &str) {
        let link = {
            let mut links = self.links.write().unwrap_or_else(|e| e.into_inner());
            links.remove(workflow)
        };
        let Some(link) = link else { return };
        // Unbinding a client that never saw this workflow sends it nothing.
        for (client, sub) in self.subscribers_now() {
            link.send_blocking(Command::Rebind {
                client,
                outbox: sub.outbox,
                group: None,
                resume: None,
            });
        }
        if !link.send_blocking(Command::Stop) {
            link.stop();
        }
        self.retire(&link);
    }

    /// A copy of the subscribed clients, so no lock is held while waiting on a link.
    fn subscribers_now(&self) -> Vec<(ClientId, Subscriber)> {
        let subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subscribers.iter().map(|(c, s)| (*c, s.clone())).collect()
    }

    /// Remembers a client's subscription for links added later.
    pub(crate) fn set_subscription(
        &self,
        client: ClientId,
        outbox: &Arc<Outbox>,
        group: Arc<Group>,
        access: &Access,
    ) {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).insert(
            client,
            Subscriber {
                outbox: outbox.clone(),
                group,
                access: access.clone(),
            },
        );
    }

    /// The interned subscriptions.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Changes to `true` when the relay is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// A new client id.
    pub fn next_client_id(&self) -> ClientId {
        ClientId(self.next_client.fetch_add(1, Ordering::Relaxed))
    }

    /// How many websocket clients are connected.
    pub fn client_count(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn add_client(&self, client: ClientId, outbox: &Arc<Outbox>) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client, Arc::downgrade(outbox));
        self.metrics.clients.inc();
    }

    pub(crate) fn remove_client(&self, client: ClientId) {
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client);
        if self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&client)
            .is_some()
        {
            self.metrics.clients.dec();
        }
    }

    /// The `/metrics` text, with the gauges that are read at scrape time refreshed.
    pub fn metrics_text(&self) -> String {
        let (total, max) = {
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            clients
                .values()
                .filter_map(Weak::upgrade)
                .map(|o| o.bytes())
                .fold((0usize, 0usize), |(t, m), b| (t + b, m.max(b)))
        };
        self.metrics.queue_bytes.set(total as i64);
        self.metrics.queue_bytes_max.set(max as i64);
        self.metrics.subscriptions.set(self.registry.live() as i64);
        // Every state a followed link can be in (a removed one is no longer here).
        let mut by_state: BTreeMap<&'static str, i64> = WorkflowState::ALL
            .into_iter()
            .filter(|s| *s != WorkflowState::Removed)
            .map(|s| (s.as_str(), 0))
            .collect();
        let (mut leaves, mut history) = (0, 0);
        for link in self.links() {
            let status = link.status();
            *by_state.entry(status.state.as_str()).or_default() += 1;
            leaves += status.replica_leaves;
            history += status.history_bytes;
        }
        for (state, n) in by_state {
            self.metrics.suites.get_or_create(&KindLabel::of(state)).set(n);
        }
        let held = [
            ("outboxes", total),
            ("history", history),
            ("compressed_frames", crate::clients::compress::SHARED.held_bytes()),
        ];
        for (kind, bytes) in held {
            self.metrics
                .held_bytes
                .get_or_create(&KindLabel::of(kind))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.metrics
            .replica_leaves
            .set(i64::try_from(leaves).unwrap_or(i64::MAX));
        self.metrics.encode()
    }
}
