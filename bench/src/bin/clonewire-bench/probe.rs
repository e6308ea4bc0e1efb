//! What the relay itself says about a measuring window: read from its `/metrics` when
//! the window opens and when it closes. The relay-side latency (suite time to the
//! frame's send, `delta_latency_seconds`) tells the relay's part of the tail from the
//! client process's and the kernel's; the counters tell which mechanism was at work
//! (conflation, hard-limit overflows, snapshots still being sent, snapshot writes).

use std::net::SocketAddr;

use clonewire_bench::http;

/// What the relay's metric names start with.
const PREFIX: &str = "clonewire_";

/// One reading of the relay's metrics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reading {
    /// `(name with labels, value)` of every sample line.
    samples: Vec<(String, f64)>,
}

impl Reading {
    /// Reads `/metrics` (nothing when the relay does not answer within seconds).
    pub(crate) fn take(addr: SocketAddr) -> Reading {
        let text = http::get(addr, "/metrics").unwrap_or_default();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Reading { samples }
    }

    /// A sample by its name without the relay's `clonewire_` prefix.
    fn get(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .find(|(n, _)| n.strip_prefix(PREFIX) == Some(name))
            .map_or(0.0, |(_, v)| *v)
    }

    /// A latency histogram's cumulative buckets: (upper bound in ms, count).
    fn buckets(&self, histogram: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{PREFIX}{histogram}_bucket{{le=\"");
        let mut out: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(n, v)| {
                let le = n.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>().ok()? * 1e3
                };
                Some((le, *v))
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// p50 and p99 of a relay latency histogram over a window, in ms: the upper bound of
/// the bucket holding each (buckets grow by 1.5× from 0.25 ms).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quantiles {
    pub p50: f64,
    pub p99: f64,
}

impl Quantiles {
    fn between(open: &Reading, close: &Reading, histogram: &str) -> Quantiles {
        let (a, b) = (open.buckets(histogram), close.buckets(histogram));
        let counts: Vec<(f64, f64)> = b
            .iter()
            .map(|(le, n)| (*le, n - a.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1)))
            .collect();
        let total = counts.last().map_or(0.0, |x| x.1);
        let at = |q: f64| {
            counts
                .iter()
                .find(|(_, n)| *n >= q * total && total > 0.0)
                .map_or(0.0, |x| x.0)
        };
        Quantiles {
            p50: at(0.5),
            p99: at(0.99),
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} / {:.1}", self.p50, self.p99)
    }
}

/// The relay's figures over one window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Window {
    /// Suite time to the delta reaching its link thread.
    pub arrived: Quantiles,
    /// Suite time to the delta queued for every client.
    pub queued: Quantiles,
    /// Suite time to the frame's send to a client.
    pub sent: Quantiles,
    /// Deltas not queued for clients behind on their topic.
    pub conflations: f64,
    /// Times a client's queue passed its hard limit.
    pub overflows: f64,
    /// Bridging deltas queued after a lag.
    pub bridges: f64,
    /// Snapshot frames sent.
    pub snapshots: f64,
    /// Times a client's writer found a snapshot still being written in front.
    pub snapshot_waits: f64,
    /// Bytes queued for all clients, and for the most backed-up one, when the window
    /// opened.
    pub queued_at_open: f64,
    pub queued_max_at_open: f64,
}

impl Window {
    /// The figures between two readings.
    pub(crate) fn between(open: &Reading, close: &Reading) -> Window {
        let d = |name: &str| close.get(name) - open.get(name);
        Window {
            arrived: Quantiles::between(open, close, "delta_arrival_seconds"),
            queued: Quantiles::between(open, close, "delta_queued_seconds"),
            sent: Quantiles::between(open, close, "delta_latency_seconds"),
            conflations: d("conflations_total"),
            overflows: d("overflows_total"),
            bridges: d("bridges_total"),
            snapshots: d("messages_out_total{kind=\"snapshot\"}"),
            snapshot_waits: d("snapshot_waits_total"),
            queued_at_open: open.get("queue_bytes"),
            queued_max_at_open: open.get("queue_bytes_max"),
        }
    }
}
