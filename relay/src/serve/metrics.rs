//! Prometheus metrics for `/metrics`: suites by state, deltas and bytes, clients,
//! distinct subscriptions, queue depths, conflations, repairs by rung and latency.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label naming one thing (a state, a rung, a kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The name.
    pub kind: String,
}

impl KindLabel {
    /// The label `kind="…"`.
    pub fn of(kind: &str) -> KindLabel {
        KindLabel {
            kind: kind.to_owned(),
        }
    }
}

/// Counters shared by every client's outbox (they outlive the clients).
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Deltas not queued because their client was behind on their topic (it gets one
    /// bridging delta instead when it drains).
    pub conflated: AtomicU64,
    /// Bridging deltas queued for clients that drained after lagging.
    pub bridges: AtomicU64,
    /// Times a client's hard limit dropped its pending deltas.
    pub overflows: AtomicU64,
    /// Times a writer found its next frame a snapshot still being written.
    pub snapshot_waits: AtomicU64,
}

impl OutboxCounters {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every metric the relay exports.
pub struct Metrics {
    registry: Registry,
    /// Suites by state (set at scrape time).
    pub suites: Family<KindLabel, Gauge>,
    /// Deltas received from suites and applied.
    pub deltas_in: Counter,
    /// Frames sent to clients by kind (delta, conflated, snapshot, other).
    pub messages_out: Family<KindLabel, Counter>,
    /// Bytes sent to clients.
    pub bytes_out: Counter,
    /// Connected websocket clients.
    pub clients: Gauge,
    /// Distinct subscriptions held (set at scrape time).
    pub subscriptions: Gauge,
    /// Bytes queued for all clients (set at scrape time).
    pub queue_bytes: Gauge,
    /// Bytes queued for the most backed-up client (set at scrape time).
    pub queue_bytes_max: Gauge,
    /// Deltas skipped for lagging clients (set at scrape time from `outboxes`).
    pub conflations: Counter,
    /// Bridging deltas queued for clients that caught up (set at scrape time).
    pub bridges: Counter,
    /// Times a client fell past its hard limit (set at scrape time from `outboxes`).
    pub overflows: Counter,
    /// Times a writer found a snapshot still being written in front of its queue
    /// (set at scrape time from `outboxes`).
    pub snapshot_waits: Counter,
    /// Repairs of suite replicas by rung (replay, snapshot).
    pub repairs: Family<KindLabel, Counter>,
    /// Problems on suite links by kind (gap, mismatch, malformed, timeout, busy).
    pub suite_problems: Family<KindLabel, Counter>,
    /// Contact files in watched directories (`--cylc-run`, `--discover`) by kind:
    /// followed, stale, unreadable.
    pub contact_files: Family<KindLabel, Gauge>,
    /// Messages from clients that were refused.
    pub bad_client_messages: Counter,
    /// `subscribe` and `resync` messages refused for exceeding a connection's rate.
    pub rate_limited: Counter,
    /// Failed accepts (most often: out of file descriptors).
    pub accept_errors: Counter,
    /// Connections refused by the per-address cap.
    pub connections_refused: Counter,
    /// Connections closed while still in their handshake to admit newer ones.
    pub handshakes_evicted: Counter,
    /// Bytes held by each kind of long-lived structure (refreshed at scrape time).
    pub held_bytes: Family<KindLabel, Gauge>,
    /// Leaves held in the workflows' replicas (refreshed at scrape time).
    pub replica_leaves: Gauge,
    /// Seconds from the suite's `time` to the frame's send to a client.
    pub latency: Histogram,
    /// Seconds from the suite's `time` to the delta reaching its link thread (the
    /// upstream hop, decoding and applying).
    pub arrival: Histogram,
    /// Seconds from the suite's `time` to the delta being queued for every client of
    /// its workflow (arrival plus projection and queueing); the rest of
    /// [`Metrics::latency`] is the writers'.
    pub queued: Histogram,
    /// Shared by every outbox.
    pub outboxes: std::sync::Arc<OutboxCounters>,
    seen_conflated: AtomicU64,
    seen_bridges: AtomicU64,
    seen_overflows: AtomicU64,
    seen_snapshot_waits: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("clonewire");
        let m = Metrics {
            suites: Family::default(),
            deltas_in: Counter::default(),
            messages_out: Family::default(),
            bytes_out: Counter::default(),
            clients: Gauge::default(),
            subscriptions: Gauge::default(),
            queue_bytes: Gauge::default(),
            queue_bytes_max: Gauge::default(),
            conflations: Counter::default(),
            bridges: Counter::default(),
            overflows: Counter::default(),
            snapshot_waits: Counter::default(),
            repairs: Family::default(),
            suite_problems: Family::default(),
            contact_files: Family::default(),
            bad_client_messages: Counter::default(),
            rate_limited: Counter::default(),
            accept_errors: Counter::default(),
            connections_refused: Counter::default(),
            handshakes_evicted: Counter::default(),
            held_bytes: Family::default(),
            replica_leaves: Gauge::default(),
            latency: latency_histogram(),
            arrival: latency_histogram(),
            queued: latency_histogram(),
            outboxes: Default::default(),
            seen_conflated: AtomicU64::new(0),
            seen_bridges: AtomicU64::new(0),
            seen_overflows: AtomicU64::new(0),
            seen_snapshot_waits: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register("suites", "Suites by link state", m.suites.clone());
        registry.register(
            "deltas_in",
            "Deltas received from suites and applied",
            m.deltas_in.clone(),
        );
        registry.register(
            "messages_out",
            "Frames sent to clients, by kind",
            m.messages_out.clone(),
        );
        registry.register("bytes_out", "Bytes sent to clients", m.bytes_out.clone());
        registry.register("clients", "Connected websocket clients", m.clients.clone());
        registry.register(
            "subscriptions",
            "Distinct subscriptions held",
            m.subscriptions.clone(),
        );
        registry.register(
            "queue_bytes",
            "Bytes queued for all clients",
            m.queue_bytes.clone(),
        );
        registry.register(
            "held_bytes",
            "Bytes held, by kind of structure: client queues (outboxes), resume history, compressed frames",
            m.held_bytes.clone(),
        );
        registry.register(
            "replica_leaves",
            "Leaves held in the replicas of every followed workflow",
            m.replica_leaves.clone(),
        );
        registry.register(
            "queue_bytes_max",
            "Bytes queued for the most backed-up client",
            m.queue_bytes_max.clone(),
        );
        registry.register(
            "conflations",
            "Deltas not queued for clients behind on their topic (bridged later by one delta)",
            m.conflations.clone(),
        );
        registry.register(
            "bridges",
            "Bridging deltas queued for clients that caught up after lagging",
            m.bridges.clone(),
        );
        registry.register(
            "overflows",
            "Times a client's queue passed its hard limit",
            m.overflows.clone(),
        );
        registry.register(
            "snapshot_waits",
            "Times a client's writer found a snapshot still being written in front of its queue",
            m.snapshot_waits.clone(),
        );
        registry.register("repairs", "Suite replica repairs by rung", m.repairs.clone());
        registry.register(
            "suite_problems",
            "Problems on suite links by kind",
            m.suite_problems.clone(),
        );
        registry.register(
            "contact_files",
            "Contact files in watched directories by kind: followed, stale (its process is gone and nothing answers), unreadable",
            m.contact_files.clone(),
        );
        registry.register(
            "bad_client_messages",
            "Client messages refused",
            m.bad_client_messages.clone(),
        );
        registry.register(
            "rate_limited",
            "Client subscribe and resync messages refused for their rate",
            m.rate_limited.clone(),
        );
        registry.register(
            "accept_errors",
            "Failed accepts (often: out of file descriptors)",
            m.accept_errors.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused by the per-address cap",
            m.connections_refused.clone(),
        );
        registry.register(
            "handshakes_evicted",
            "Connections closed in their handshake to admit newer ones",
            m.handshakes_evicted.clone(),
        );
        registry.register(
            "delta_latency_seconds",
            "Suite publish time to send to a client",
            m.latency.clone(),
        );
        registry.register(
            "delta_arrival_seconds",
            "Suite publish time to the delta reaching its link thread",
            m.arrival.clone(),
        );
        registry.register(
            "delta_queued_seconds",
            "Suite publish time to the delta queued for every client of its workflow",
            m.queued.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        // Counters kept by the outboxes are folded in at scrape time.
        let total = self.outboxes.conflated.load(Ordering::Relaxed);
        let seen = self.seen_conflated.swap(total, Ordering::Relaxed);
        self.conflations.inc_by(total.saturating_sub(seen));
        let total = self.outboxes.bridges.load(Ordering::Relaxed);
        let seen = self.seen_bridges.swap(total, Ordering::Relaxed);
        self.bridges.inc_by(total.saturating_sub(seen));
        let total = self.outboxes.overflows.load(Ordering::Relaxed);
        let seen = self.seen_overflows.swap(total, Ordering::Relaxed);
        self.overflows.inc_by(total.saturating_sub(seen));
        let total = self.outboxes.snapshot_waits.load(Ordering::Relaxed);
        let seen = self.seen_snapshot_waits.swap(total, Ordering::Relaxed);
        self.snapshot_waits.inc_by(total.saturating_sub(seen));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Buckets for a latency: from 0.25 ms, each 1.5 times the one before, up to about 3 s
/// (fine enough to tell a 4 ms median from an 8 ms one).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00025, 1.5, 24))
}

/// Seconds from `ms` (milliseconds since the Unix epoch, a suite's `time`) to now; 0
/// when `ms` is in the future (clocks of other hosts).
pub(crate) fn seconds_since(ms: f64) -> f64 {
    ((clonewire_zmq::unix_ms() - ms) / 1e3).max(0.0)
}
