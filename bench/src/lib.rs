//! An end-to-end load benchmark of `clonewire-relay`, with its baselines measured in
//! the same run (see `docs/benchmarks.md`).
//!
//! - `clonewire-bench` (the orchestrator) starts simulated suites, the relay under
//!   test, the baselines and the client process, samples their CPU and memory from
//!   `/proc`, and prints the tables;
//! - `clonewire-bench-clients` opens C websocket connections in one process,
//!   subscribes them with S distinct queries and reports counts and latencies as JSON;
//! - `clonewire-bench-ceiling` is the socket ceiling: a bare tokio-tungstenite server
//!   that sends frames of given sizes at a given rate with no work between;
//! - `bench/naive_relay.py` is the naive baseline (pyzmq + websockets): every delta,
//!   unfiltered, to every client, and a full snapshot to each joining client.
//!
//! This library holds what those binaries share: the queries, what makes a message
//! useful to a client, the report format, percentiles and `/proc` readings; their
//! child processes ([`process`]), the simulated suites they start ([`suite`]) and the
//! HTTP GET that reads a relay's `/metrics` and `/healthz` ([`http`]).

pub mod cylc_home;
pub mod http;
pub mod process;
pub mod suite;

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use clonewire_core::{Projection, Schema, Seq, Subscription, SubscriptionLimits, Topic};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The simulator's collections (as `clonewire_suite::sim::workflow::collections`).
pub fn schema() -> Schema {
    Schema::new([
        vec!["tasks"],
        vec!["families"],
        vec!["taskProxies"],
        vec!["familyProxies"],
        vec!["jobs"],
        vec!["edges"],
        vec!["taskProxies", "*", "jobs"],
        vec!["familyProxies", "*", "childTasks"],
        vec!["familyProxies", "*", "childFamilies"],
        vec!["families", "*", "childTasks"],
        vec!["families", "*", "childFamilies"],
    ])
}

/// The subscription of the `index`-th distinct query.
///
/// Every distinct query selects the same data (the workflow's status and totals,
/// each task's name and state, each family's state) plus one field no suite
/// publishes (`q<index>`). So S distinct queries cost the relay S projections and S
/// serializations per delta, while every client needs exactly the same messages,
/// which keeps rates comparable across S.
pub fn query(index: usize) -> String {
    format!(
        "subscription {{ workflows {{ workflow {{ status stateTotals }} \
         taskProxies {{ name state q{index} }} familyProxies {{ state }} }} }}"
    )
}

/// True when a suite delta of `topic` with `patch` may change something [`query`]
/// selects, judged from the patch alone (a leaf set to the value it had still
/// counts): the fallback of [`Judge`] when it holds no replica. A deleted entry
/// counts (its selected leaves go away).
pub fn useful(topic: &str, patch: &Value) -> bool {
    let Some(patch) = patch.as_object() else {
        return patch.is_null();
    };
    let entry_fields: &[&str] = match topic {
        "workflow" => return patch.contains_key("status") || patch.contains_key("stateTotals"),
        "taskProxies" => &["name", "state"],
        "familyProxies" => &["state"],
        _ => return false,
    };
    patch.values().any(|entry| match entry {
        Value::Null => true,
        Value::Object(fields) => entry_fields.iter().any(|f| fields.contains_key(*f)),
        _ => false,
    })
}

/// Decides exactly which unfiltered suite deltas a client of [`query`] needs: keeps
/// one replica per (workflow, topic), applies each delta once (all clients of the
/// naive relay get the same stream) and remembers whether its projection changed.
pub struct Judge {
    subscription: Subscription,
    schema: Schema,
    replicas: HashMap<(String, String), (Seq, Topic, Option<Projection>)>,
    verdicts: HashMap<(String, String, Seq), bool>,
}

impl Default for Judge {
    fn default() -> Judge {
        Judge::new()
    }
}

impl Judge {
    /// A judge for the benchmark's query (every distinct one selects the same data).
    pub fn new() -> Judge {
        let subscription = Subscription::parse(&query(0), &SubscriptionLimits::default())
            .unwrap_or_else(|_| Subscription::empty());
        Judge {
            subscription,
            schema: schema(),
            replicas: HashMap::new(),
            verdicts: HashMap::new(),
        }
    }

    /// A snapshot a client received: starts the replica of (workflow, topic) if
    /// there is none yet.
    pub fn snapshot(&mut self, workflow: &str, topic: &str, seq: Seq, value: &Value) {
        let key = (workflow.to_owned(), topic.to_owned());
        if self.replicas.contains_key(&key) {
            return;
        }
        let Ok(replica) = Topic::from_value(topic, value) else {
            return;
        };
        let projection = self
            .subscription
            .for_topic(workflow, topic)
            .and_then(|field| Projection::compile(field, topic, &self.schema));
        self.replicas.insert(key, (seq, replica, projection));
    }

    /// True when the delta `seq` of (workflow, topic) changes the projection.
    pub fn delta(&mut self, workflow: &str, topic: &str, seq: Seq, patch: &Value) -> bool {
        let key = (workflow.to_owned(), topic.to_owned(), seq);
        if let Some(verdict) = self.verdicts.get(&key) {
            return *verdict;
        }
        // Deltas are applied in the order the first client sees them. Past a gap (the
        // naive relay loses what is published while it sends a snapshot) the replica
        // goes on from there: only leaves the lost deltas touched can be misjudged.
        let verdict = match self.replicas.get_mut(&(key.0.clone(), key.1.clone())) {
            Some((last, replica, projection)) if seq > *last => {
                *last = seq;
                match (replica.apply(patch), projection) {
                    (Ok(changes), Some(p)) => !p.project_changes(&changes).is_empty(),
                    (Ok(_), None) => false,
                    (Err(_), _) => useful(topic, patch),
                }
            }
            _ => useful(topic, patch),
        };
        if self.verdicts.len() > 1_000_000 {
            self.verdicts.clear();
        }
        self.verdicts.insert(key, verdict);
        verdict
    }
}

/// Latency figures in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl std::fmt::Display for Latency {
    /// `p50 / p99 / max`, as the benchmarks' tables print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} / {:.1} / {:.0}", self.p50, self.p99, self.max)
    }
}

impl Latency {
    /// The figures of `samples` (milliseconds); zeros when there are none.
    pub fn of(samples: &mut [f32]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable_by(f32::total_cmp);
        let at = |q: f64| f64::from(samples[((samples.len() - 1) as f64 * q).round() as usize]);
        Latency {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What the client process measured during its window; printed as one JSON line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClientReport {
    /// Connections that subscribed.
    pub connected: usize,
    /// Connections that could not connect or were closed early.
    pub failed: usize,
    /// Length of the measuring window in seconds.
    pub window_secs: f64,
    /// Delta frames received in the window (all clients).
    pub deltas: u64,
    /// Of those, the ones the client's subscription needs.
    pub useful: u64,
    /// Bytes of all frames received in the window.
    pub bytes: u64,
    /// Snapshot frames received in the window.
    pub snapshots: u64,
    /// Latency from the suite's `time` to receipt, over useful deltas in the window.
    pub latency_ms: Latency,
    /// Time from `subscribe` until the client holds its projection: a `taskProxies`
    /// snapshot of every workflow (the ceiling: its first frame).
    pub join_ms: Latency,
    /// Bytes each client received until then, averaged over clients.
    pub join_bytes: f64,
    /// Sizes of the first delta frames one client received (a sample, for the
    /// ceiling to send frames of the same sizes).
    pub sample_sizes: Vec<usize>,
    /// Latency by whole second of the window (where in the window the tail is).
    #[serde(default)]
    pub latency_by_second: Vec<Latency>,
}

impl ClientReport {
    /// Useful messages per second.
    pub fn useful_rate(&self) -> f64 {
        self.useful as f64 / self.window_secs.max(1e-9)
    }

    /// Bytes per second.
    pub fn byte_rate(&self) -> f64 {
        self.bytes as f64 / self.window_secs.max(1e-9)
    }

    /// The p99 of each second of the window, in ms, space-separated (a table cell).
    pub fn p99_by_second(&self) -> String {
        let p99s: Vec<String> = self
            .latency_by_second
            .iter()
            .map(|l| format!("{:.0}", l.p99))
            .collect();
        p99s.join(" ")
    }
}

/// Unix time in milliseconds, as suites stamp `time`.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The `"type"` of a relay message, found without parsing the whole frame.
pub fn frame_type(text: &str) -> Option<&str> {
    let start = text.find("\"type\":\"")? + 8;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

/// The top-level `"time"` number of a frame (the suite's publish time), found
/// without parsing the patch. Suites' patches have no key named exactly `time`.
pub fn frame_time(text: &str) -> Option<f64> {
    let start = text.find("\"time\":")? + 7;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Kernel clock ticks per second (`getconf CLK_TCK`); 100 on Linux.
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Peak resident memory in MiB (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_field(pid, "VmHWM:").map(|kib| kib / 1024.0)
}

/// A number field of `/proc/PID/status` (e.g. `VmRSS:` in KiB, `Threads:`).
fn status_field(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a long-running process holds now, from `/proc`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Footprint {
    /// Resident memory, MiB (`VmRSS`).
    pub rss_mib: f64,
    /// Threads.
    pub threads: u32,
    /// Open file descriptors.
    pub fds: u32,
}

/// The footprint of process `pid`, or `None` once it is gone.
pub fn footprint(pid: u32) -> Option<Footprint> {
    let rss_kib = status_field(pid, "VmRSS:")?;
    let threads = status_field(pid, "Threads:")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Footprint {
        rss_mib: rss_kib / 1024.0,
        threads: threads as u32,
        fds: u32::try_from(fds).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_are_read_without_parsing() {
        let text =
            r#"{"type":"delta","workflow":"w","time":1700000000123.5,"patch":{"a/b":{"submittedTime":"x"}}}"#;
        assert_eq!(frame_type(text), Some("delta"));
        assert_eq!(frame_time(text), Some(1_700_000_000_123.5));
        assert_eq!(frame_time(r#"{"type":"snapshot"}"#), None);
    }

    #[test]
    fn usefulness_follows_the_query() {
        assert!(useful("taskProxies", &json!({"1/a": {"state": "running"}})));
        assert!(useful("taskProxies", &json!({"1/a": null})));
        assert!(!useful(
            "taskProxies",
            &json!({"1/a": {"jobs": {"1/a/01": true}}})
        ));
        assert!(!useful("jobs", &json!({"1/a/01": {"state": "running"}})));
        assert!(!useful("edges", &json!({"$edge|1/a|1/b": {"source": "1/a"}})));
        assert!(useful("workflow", &json!({"stateTotals": {"running": 3}})));
        assert!(!useful("workflow", &json!({"lastUpdated": "x"})));
    }

    #[test]
    fn percentiles() {
        let mut samples: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        let l = Latency::of(&mut samples);
        assert_eq!((l.p50, l.max), (51.0, 100.0));
        assert_eq!(l.p99, 99.0);
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_leaf_set_to_its_value_is_not_needed() {
        let mut judge = Judge::new();
        judge.snapshot(
            "w",
            "familyProxies",
            Seq(4),
            &json!({"1/root": {"state": "running", "stateTotals": {"running": 1}}}),
        );
        let same = json!({"1/root": {"state": "running", "stateTotals": {"running": 2}}});
        assert!(!judge.delta("w", "familyProxies", Seq(5), &same));
        assert!(judge.delta(
            "w",
            "familyProxies",
            Seq(6),
            &json!({"1/root": {"state": "failed"}})
        ));
        // Asked again by another client: the same verdict, applied once.
        assert!(!judge.delta("w", "familyProxies", Seq(5), &same));
    }
}
