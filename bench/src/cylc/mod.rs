//! The parts of `clonewire-bench-cylc`: the raw ZeroMQ subscriber that is the floor
//! ([`floor`]), the websocket clients of both sides ([`clients`]), Chromium with the
//! wasm client ([`browser`]), the orchestrator
//! ([`run`]) and what they share here: how a change is named so that the same change
//! is recognised in a scheduler's protobuf batch, in a cylc-uiserver GraphQL message
//! and in a relay frame, and how latencies are matched batch by batch.
//!
//! A change is named by a *key*: `workflow//relative-id|state`, for task proxies and
//! jobs (e.g. `steady//20000101T04/post|running`). A scheduler batch's latency for a
//! client is the time from the batch's `time` to the moment the client had received
//! every key that batch was the first to publish (keys a server merged away, such as
//! a job's `submitted` when `running` followed at once, are left out).

pub mod browser;
pub mod clients;
pub mod floor;
pub mod proto;
pub mod run;
pub mod table;

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use clonewire_bench::Latency;
use serde::{Deserialize, Serialize};

/// A batch holding at least this many task and job changes counts as a burst.
pub const BURST_CHANGES: usize = 200;

/// The workflow part of a Cylc id: `~user/name//1/foo` gives `name`, `name` stays.
pub fn workflow_name(id: &str) -> &str {
    let head = id.split("//").next().unwrap_or(id);
    match head.strip_prefix('~') {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, name)| name),
        None => head,
    }
}

/// The key of the change "element `id` is now in `state`"; `id` is a full Cylc id
/// (`~user/wf//1/foo`), or a relative one when `workflow` is given.
pub fn key(workflow: Option<&str>, id: &str, state: &str) -> String {
    match workflow {
        Some(wf) => format!("{}//{id}|{state}", workflow_name(wf)),
        None => {
            let relative = id.split_once("//").map_or(id, |(_, r)| r);
            format!("{}//{relative}|{state}", workflow_name(id))
        }
    }
}

/// One scheduler batch as the floor received it (one JSON line of its output).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Batch {
    /// Workflow name.
    pub wf: String,
    /// The scheduler's delta `time`, Unix milliseconds.
    pub time: f64,
    /// When the raw subscriber received it, Unix milliseconds.
    pub recv: f64,
    /// Size of the protobuf message.
    pub bytes: usize,
    /// The task proxy and job changes it carries.
    pub keys: Vec<String>,
}

/// The floor's output file: batches, one per line, then `{"end":true}`.
pub fn read_batches(path: &Path, wait: Duration) -> Vec<Batch> {
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let ended = text.lines().any(|l| l.starts_with("{\"end\""));
        if ended || Instant::now() >= deadline {
            return std::io::BufReader::new(text.as_bytes())
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<Batch>(&l).ok())
                .filter(|b| !b.wf.is_empty())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Latency figures of one group of batches, for one side.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Group {
    /// Batches (times clients) matched.
    pub matched: usize,
    /// Batches (times clients) none of whose keys a client received.
    pub missed: usize,
    /// Scheduler `time` to client receipt, ms.
    pub latency: Latency,
    /// Scheduler `time` to the raw subscriber's receipt, ms (the floor).
    pub floor: Latency,
    /// Client receipt minus the raw subscriber's receipt, ms.
    pub added: Latency,
}

/// What one client process measured; printed as one JSON line.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// Clients that held the workflow(s).
    pub joined: usize,
    /// Clients that failed to connect or join.
    pub failed: usize,
    /// Time from connecting to holding every workflow, ms, over clients.
    pub join_ms: Latency,
    /// Task proxies the first client held when it joined.
    pub join_tasks: usize,
    /// Bytes a client received until it joined (mean).
    pub join_bytes: f64,
    /// Bytes a client received in all (mean).
    pub bytes_per_client: f64,
    /// Messages a client received in all (mean).
    pub messages_per_client: f64,
    /// Groups of batches by tag: `wf:all`, `wf:burst`, `wf:before`, `wf:during`.
    pub groups: HashMap<String, Group>,
    /// Why the process could not measure, if it could not.
    pub error: Option<String>,
}

/// What one client received: when it first held each key, and when it joined.
#[derive(Debug, Default)]
pub struct Received {
    /// Unix ms at which the client first held the whole store.
    pub joined_at: Option<f64>,
    /// Key to Unix ms of first receipt.
    pub first: HashMap<String, f64>,
}

/// Samples of one group, in ms.
#[derive(Default)]
struct Samples {
    latency: Vec<f32>,
    floor: Vec<f32>,
    added: Vec<f32>,
    missed: usize,
}

/// Matches every client's receipts with the floor's batches. `mark` (Unix ms)
/// splits batches into `before` and `during` (workload 4's burst).
pub fn analyse(batches: &[Batch], clients: &[Received], mark: Option<f64>) -> HashMap<String, Group> {
    // The batch that first published each key.
    let mut first_batch: HashMap<&str, usize> = HashMap::new();
    for (i, b) in batches.iter().enumerate() {
        for k in &b.keys {
            first_batch.entry(k.as_str()).or_insert(i);
        }
    }
    let mut own: Vec<Vec<&str>> = vec![Vec::new(); batches.len()];
    for (k, i) in &first_batch {
        own[*i].push(k);
    }
    let mut samples: HashMap<String, Samples> = HashMap::new();
    for (b, keys) in batches.iter().zip(&own) {
        if keys.is_empty() {
            continue;
        }
        let mut tags = vec![format!("{}:all", b.wf)];
        if b.keys.len() >= BURST_CHANGES {
            tags.push(format!("{}:burst", b.wf));
        }
        if let Some(m) = mark {
            tags.push(format!(
                "{}:{}",
                b.wf,
                if b.time < m { "before" } else { "during" }
            ));
        }
        for c in clients {
            // Batches the client got inside its first whole store are not deltas to it.
            let Some(joined) = c.joined_at else { continue };
            if b.recv <= joined {
                continue;
            }
            let got = keys
                .iter()
                .filter_map(|k| c.first.get(*k))
                .fold(None, |m: Option<f64>, t| Some(m.map_or(*t, |m| m.max(*t))));
            for tag in &tags {
                let entry = samples.entry(tag.clone()).or_default();
                match got {
                    Some(t) => {
                        entry.latency.push((t - b.time) as f32);
                        entry.floor.push((b.recv - b.time) as f32);
                        entry.added.push((t - b.recv) as f32);
                    }
                    None => entry.missed += 1,
                }
            }
        }
    }
    samples
        .into_iter()
        .map(|(tag, mut s)| {
            let group = Group {
                matched: s.latency.len(),
                missed: s.missed,
                latency: Latency::of(&mut s.latency),
                floor: Latency::of(&mut s.floor),
                added: Latency::of(&mut s.added),
            };
            (tag, group)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_agree_across_sides() {
        assert_eq!(workflow_name("~root/steady//1/a"), "steady");
        assert_eq!(workflow_name("steady"), "steady");
        assert_eq!(workflow_name("~root/steady"), "steady");
        let uis = key(None, "~root/steady//1/a/01", "running");
        assert_eq!(uis, "steady//1/a/01|running");
        assert_eq!(key(Some("steady"), "1/a/01", "running"), uis);
        assert_eq!(key(Some("~root/steady"), "1/a/01", "running"), uis);
    }

    #[test]
    fn a_batch_is_received_when_its_last_first_key_is() {
        let batch = |time: f64, keys: &[&str]| Batch {
            wf: "w".into(),
            time,
            recv: time + 10.0,
            bytes: 0,
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let batches = vec![
            batch(1000.0, &["a|x", "b|x"]),
            batch(2000.0, &["a|x", "c|x"]),
            batch(3000.0, &["d|x"]),
        ];
        let client = Received {
            joined_at: Some(500.0),
            first: [("a|x", 1100.0), ("b|x", 1300.0), ("c|x", 2050.0)]
                .into_iter()
                .map(|(k, t)| (k.to_string(), t))
                .collect(),
        };
        let groups = analyse(&batches, &[client], Some(2500.0));
        let all = &groups["w:all"];
        // Batch 1: 300 ms (its last key); batch 2: only `c` is its own, 50 ms;
        // batch 3: never received.
        assert_eq!((all.matched, all.missed), (2, 1));
        assert_eq!(all.latency.max, 300.0);
        assert_eq!(all.added.max, 290.0);
        assert_eq!(groups["w:before"].matched, 2);
        assert_eq!(groups["w:during"].missed, 1);
    }
}
