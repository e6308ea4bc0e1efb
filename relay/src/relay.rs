//! The relay's shared state: the suite links, the subscription registry, the clients
//! and the metrics. Everything per workflow lives on that workflow's link thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

use crate::config::Config;
use crate::metrics::{Kind, Metrics};
use crate::outbox::Outbox;
use crate::registry::Registry;
use crate::suite_link::SuiteLink;
use crate::views::ClientId;

/// Shared by the HTTP handlers and every session.
pub struct Relay {
    config: Config,
    links: BTreeMap<Arc<str>, SuiteLink>,
    registry: Registry,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<ClientId, Weak<Outbox>>>,
    next_client: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

impl Relay {
    /// Assembles a relay around running links.
    pub(crate) fn new(
        config: Config,
        links: Vec<SuiteLink>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Relay {
        Relay {
            config,
            links: links.into_iter().map(|l| (l.id.clone(), l)).collect(),
            registry: Registry::default(),
            metrics,
            clients: Mutex::new(HashMap::new()),
            next_client: AtomicU64::new(1),
            shutdown,
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every suite link, by workflow id.
    pub fn links(&self) -> impl Iterator<Item = &SuiteLink> {
        self.links.values()
    }

    /// One suite link.
    pub fn link(&self, workflow: &str) -> Option<&SuiteLink> {
        self.links.get(workflow)
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
        self.next_client.fetch_add(1, Ordering::Relaxed)
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
        let mut by_state: BTreeMap<&'static str, i64> = ["syncing", "live", "stale", "busy", "stopped"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
        for link in self.links() {
            *by_state.entry(link.status().state.as_str()).or_default() += 1;
        }
        for (state, n) in by_state {
            self.metrics.suites.get_or_create(&Kind::of(state)).set(n);
        }
        self.metrics.encode()
    }

    /// Stops every link thread, waiting a little for each.
    pub(crate) fn stop_links(self: Arc<Self>) {
        for link in self.links.values() {
            link.stop();
        }
    }
}
