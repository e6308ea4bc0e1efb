//! The cost of one delta against the number of distinct subscriptions.
//!
//! One workflow's [`SubscriptionViews`] with a 1,000-task `taskProxies` topic and
//! C = 1,000 clients (in-process, outboxes drained between batches, no sockets).
//! Timed: `on_changes` for a one-leaf and a two-leaf delta on a pseudo-random task,
//! that is projecting, hashing, serializing and queueing to every client, with
//!
//! - S = 1: every client has the same subscription;
//! - S = 1,000 alike: as in `clonewire-bench`, every client selects the same data
//!   plus a field no suite publishes (`q<i>`), so every subscription is touched;
//! - S = 1,000 by id: client *i* watches task *i* only, so a delta touches one.
//!
//! Then the projection step alone, for S = 1 and 1,000 distinct projections: each
//! projection walked on its own (what the relay did before the selection trie) against
//! one walk of a [`SelectionTrie`] holding them all, each followed by serializing one
//! patch per distinct result.
//!
//! `cargo bench -p clonewire-relay --bench fanout` (`-- --quick`: fewer rounds). It
//! prints figures and never fails on timing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use clonewire_core::{
    Changes, Projection, Schema, SelectionTrie, Seq, Subscription, SubscriptionLimits, Topic,
};
use clonewire_relay::internals::{
    ClientId, HistoryLimit, Outbox, OutboxCounters, Registry, ReplicaSource, SubscriptionViews,
};
use serde_json::{json, Value};

const WORKFLOW: &str = "fanout";
const TOPIC: &str = "taskProxies";
const TASKS: usize = 1_000;
const CLIENTS: usize = 1_000;

struct Store {
    schema: Schema,
    topic: Topic,
    seq: Seq,
}

impl ReplicaSource for Store {
    fn epoch(&self) -> &str {
        "bench"
    }
    fn schema(&self) -> Option<&Schema> {
        Some(&self.schema)
    }
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        (name == TOPIC).then_some((&self.topic, self.seq))
    }
    fn topic_names(&self) -> Vec<String> {
        vec![TOPIC.to_owned()]
    }
}

fn task_id(i: usize) -> String {
    format!("1/task{i:04}")
}

fn store() -> Store {
    let tasks: serde_json::Map<String, Value> = (0..TASKS)
        .map(|i| {
            (
                task_id(i),
                json!({"name": format!("task{i:04}"), "state": "waiting", "cyclePoint": "1"}),
            )
        })
        .collect();
    Store {
        schema: Schema::new([vec![TOPIC]]),
        topic: Topic::from_value(TOPIC, &Value::Object(tasks)).expect("an object"),
        seq: Seq::new(1),
    }
}

/// The subscription of client `i` in each case.
#[derive(Clone, Copy)]
enum Case {
    One,
    Alike,
    ById,
}

impl Case {
    fn query(self, i: usize) -> String {
        match self {
            Case::One => "{ workflows { taskProxies { name state } } }".to_owned(),
            Case::Alike => format!("{{ workflows {{ taskProxies {{ name state q{i} }} }} }}"),
            Case::ById => format!(
                "{{ workflows {{ taskProxies(ids: [\"{}\"]) {{ name state }} }} }}",
                task_id(i % TASKS)
            ),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Case::One => "S = 1",
            Case::Alike => "S = 1,000 alike",
            Case::ById => "S = 1,000 by id",
        }
    }
}

/// Pseudo-random one- or two-leaf patches.
fn patches(count: usize, two_leaves: bool) -> Vec<Value> {
    let states = [
        "preparing",
        "submitted",
        "running",
        "succeeded",
        "failed",
        "waiting",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = task_id((x % TASKS as u64) as usize);
            let state = states[k % states.len()];
            if two_leaves {
                json!({ id: {"state": state, "name": format!("n{k}")} })
            } else {
                json!({ id: {"state": state} })
            }
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per delta of `on_changes` (median of batches) and messages queued.
fn time_views(case: Case, patches: &[Value], batch: usize) -> (f64, usize) {
    let mut store = store();
    let mut views = SubscriptionViews::new(Arc::from(WORKFLOW), HistoryLimit::steps(64));
    let registry = Registry::default();
    let counters = Arc::new(OutboxCounters::default());
    let limits = SubscriptionLimits::default();
    let mut groups = BTreeMap::new();
    let outboxes: Vec<Arc<Outbox>> = (0..CLIENTS)
        .map(|i| {
            let query = case.query(i);
            let group = groups
                .entry(query.clone())
                .or_insert_with(|| registry.intern(Subscription::parse(&query, &limits).expect("valid")))
                .clone();
            let outbox = Arc::new(Outbox::new(256 << 20, 512 << 20, counters.clone()));
            views.rebind(&store, ClientId(i as u64), outbox.clone(), Some(group), None);
            outbox
        })
        .collect();
    views.flush(&store);
    let drain = |outboxes: &[Arc<Outbox>]| {
        let mut n = 0;
        for outbox in outboxes {
            while outbox.pop().is_some() {
                n += 1;
            }
        }
        n
    };
    drain(&outboxes);
    let (mut samples, mut queued) = (Vec::new(), 0);
    for chunk in patches.chunks(batch) {
        let mut spent = 0u128;
        for patch in chunk {
            let changes = store.topic.apply(patch).expect("an object");
            let prev = store.seq;
            store.seq = prev.next();
            let start = Instant::now();
            views.on_changes(&store, TOPIC, prev, store.seq, &changes, Some(1.0));
            spent += start.elapsed().as_nanos();
        }
        samples.push(spent as f64 / chunk.len() as f64);
        queued += drain(&outboxes);
    }
    (median(&mut samples[1..]), queued)
}

fn projections(case: Case, n: usize) -> Vec<Projection> {
    let schema = Schema::new([vec![TOPIC]]);
    (0..n)
        .map(|i| {
            let sub = Subscription::parse(&case.query(i), &SubscriptionLimits::default()).expect("valid");
            Projection::compile(sub.for_topic(WORKFLOW, TOPIC).expect("selected"), TOPIC, &schema)
                .expect("compiles")
        })
        .collect()
}

/// Nanoseconds per delta to find what each projection selects and serialize one patch
/// per distinct result: each projection on its own, and all of them in one trie.
fn time_projection(case: Case, n: usize, all_changes: &[Changes]) -> (f64, f64) {
    let projs = projections(case, n);
    let mut trie = SelectionTrie::new();
    for (i, p) in projs.iter().enumerate() {
        trie.insert(i, p);
    }
    let (mut apart, mut together) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let start = Instant::now();
        for changes in all_changes {
            let mut patches: Vec<(Vec<bool>, String)> = Vec::new();
            for proj in &projs {
                let mask: Vec<bool> = changes
                    .leaves
                    .iter()
                    .map(|c| proj.selects(&c.path[1..]))
                    .collect();
                if mask.contains(&true) && !patches.iter().any(|(m, _)| *m == mask) {
                    let patch = proj.project_changes(changes).patch_text();
                    patches.push((mask, patch));
                }
            }
            black_box(patches);
        }
        apart.push(start.elapsed().as_nanos() as f64 / all_changes.len() as f64);
        let start = Instant::now();
        for changes in all_changes {
            let patches: Vec<String> = trie
                .select(changes)
                .iter()
                .map(|g| g.changes(changes).patch_text())
                .collect();
            black_box(patches);
        }
        together.push(start.elapsed().as_nanos() as f64 / all_changes.len() as f64);
    }
    (median(&mut apart), median(&mut together))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (count, batch) = if quick { (2_100, 100) } else { (20_100, 500) };
    println!("one delta on a {TASKS}-task topic, {CLIENTS} clients: `SubscriptionViews::on_changes` (median of batches of {batch})");
    for two in [false, true] {
        let stream = patches(count, two);
        let leaves = if two { "two-leaf" } else { "one-leaf" };
        let mut base = 0.0;
        for case in [Case::One, Case::Alike, Case::ById] {
            let (ns, queued) = time_views(case, &stream, batch);
            if matches!(case, Case::One) {
                base = ns;
            }
            println!(
                "  {leaves} delta, {:<16} {:>9.0} ns/delta  {:>5.1}x S = 1  ({queued} messages queued)",
                case.label(),
                ns,
                ns / base
            );
        }
    }
    println!("projection alone: find each distinct subscription's leaves and serialize one patch per distinct result");
    let mut replica = store().topic;
    for two in [false, true] {
        let changes: Vec<Changes> = patches(if quick { 500 } else { 5_000 }, two)
            .iter()
            .map(|p| replica.apply(p).expect("an object"))
            .collect();
        let leaves = if two { "two-leaf" } else { "one-leaf" };
        let (one_apart, one_trie) = time_projection(Case::One, 1, &changes);
        for case in [Case::Alike, Case::ById] {
            let (apart, trie) = time_projection(case, 1_000, &changes);
            println!(
                "  {leaves} delta, {:<16} each on its own {:>9.0} ns ({:>6.1}x S = 1: {:.0} ns)   one trie {:>7.0} ns ({:>5.1}x S = 1: {:.0} ns)",
                case.label(),
                apart,
                apart / one_apart,
                one_apart,
                trie,
                trie / one_trie,
                one_trie
            );
        }
    }
}
