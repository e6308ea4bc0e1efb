//! Benchmarks of the model's hot paths, printed as figures and ratios measured in one
//! run (the two sides are interleaved batch by batch, so machine noise hits both).
//!
//! `cargo bench -p clonewire-core --bench model` (add `-- --quick` for a short run).
//!
//! 1. apply + verify + project of a one-leaf delta on a 1K-task and a 100K-task topic:
//!    the cost must not grow with the store (target ratio ≤ 1.2);
//! 2. projecting one delta for 1 vs 100 distinct subscriptions (cost per subscription);
//! 3. parse + merge of three typical view subscriptions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::RelayMessage;
use clonewire_core::{Hash, Projection, Schema, Seq, Subscription, SubscriptionLimits, Topic};
use serde_json::{json, Value};

const TOPIC: &str = "taskProxies";

fn schema() -> Schema {
    Schema::new([vec!["taskProxies"], vec!["taskProxies", "*", "jobs"]])
}

fn task_id(i: usize) -> String {
    format!("{}/task{:06}", 20260101 + i / 100, i)
}

/// A taskProxies topic with `n` tasks of about ten leaves each.
fn tasks(n: usize) -> Topic {
    let mut entries = serde_json::Map::new();
    for i in 0..n {
        entries.insert(
            task_id(i),
            json!({
                "name": format!("task{i:06}"), "cyclePoint": format!("{}", 20260101 + i / 100),
                "status": "waiting", "firstParent": {"id": format!("FAM{}", i % 10)},
                "jobs": {"01": {"state": "submitted", "host": "localhost", "submitted": 1.7e12}},
                "isHeld": false, "flowNums": [1],
            }),
        );
    }
    Topic::from_value(TOPIC, &Value::Object(entries)).expect("an object")
}

/// One-leaf deltas on pseudo-random tasks among the first `active` of `n_tasks`
/// (all of them: uniform over the store, the worst case for caches; a window: the
/// live part of a workflow, where a scheduler's changes land), with the hash the
/// suite would send.
fn deltas(suite: &mut Topic, n_tasks: usize, active: usize, count: usize) -> Vec<(Value, Hash)> {
    let statuses = [
        "preparing",
        "submitted",
        "running",
        "succeeded",
        "failed",
        "waiting",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let base = n_tasks - active;
    (0..count)
        .map(|k| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = task_id(base + (x % active as u64) as usize);
            let patch = json!({ id: {"status": statuses[k % statuses.len()]} });
            suite.apply(&patch).expect("an object");
            (patch, suite.hash())
        })
        .collect()
}

/// What the relay does per delta: apply, verify the topic hash, project for one
/// subscription, serialize the client message.
fn relay_step(
    replica: &mut Topic,
    proj: &Projection,
    proj_hash: &mut Hash,
    patch: &Value,
    hash: Hash,
) -> usize {
    let changes = replica.apply(patch).expect("an object");
    assert_eq!(replica.hash(), hash, "hash verifies");
    let projected = proj.project_changes(&changes);
    *proj_hash = projected.apply_to_hash(*proj_hash);
    let message = RelayMessage::Delta {
        workflow: "demo".into(),
        topic: TOPIC.into(),
        epoch: "e1".into(),
        seq: Seq::new(1),
        prev: Some(Seq::ZERO),
        hash: *proj_hash,
        time: None,
        patch: projected.to_patch(),
    };
    message.to_text().len()
}

struct Side {
    replica: Topic,
    stream: Vec<(Value, Hash)>,
    proj: Projection,
    proj_hash: Hash,
    next: usize,
    samples: Vec<f64>,
}

impl Side {
    fn new(n: usize, active: usize, stream_len: usize, proj: &Projection) -> Side {
        let replica = tasks(n);
        let mut suite = replica.clone();
        let stream = deltas(&mut suite, n, active, stream_len);
        let proj_hash = proj.project(&replica).1;
        Side {
            replica,
            stream,
            proj: proj.clone(),
            proj_hash,
            next: 0,
            samples: Vec::new(),
        }
    }

    /// Runs one batch, recording nanoseconds per delta.
    fn batch(&mut self, size: usize) {
        let start = Instant::now();
        for _ in 0..size {
            let (patch, hash) = &self.stream[self.next];
            black_box(relay_step(
                &mut self.replica,
                &self.proj,
                &mut self.proj_hash,
                patch,
                *hash,
            ));
            self.next += 1;
        }
        self.samples.push(start.elapsed().as_nanos() as f64 / size as f64);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_store_size(quick: bool) {
    let (batches, size) = if quick { (10, 500) } else { (40, 2_000) };
    let sub = Subscription::parse(
        "{ workflows { taskProxies { name status cyclePoint } } }",
        &SubscriptionLimits::default(),
    )
    .expect("valid");
    let proj = Projection::compile(sub.for_topic("demo", TOPIC).expect("selected"), TOPIC, &schema())
        .expect("compiles");
    let mut small = Side::new(1_000, 1_000, batches * size + size, &proj);
    let mut big = Side::new(100_000, 100_000, batches * size + size, &proj);
    let mut live = Side::new(100_000, 1_000, batches * size + size, &proj);
    for side in [&mut small, &mut big, &mut live] {
        side.batch(size); // warm-up
        side.samples.clear();
    }
    for _ in 0..batches {
        small.batch(size);
        big.batch(size);
        live.batch(size);
    }
    let (s, b, l) = (
        median(&mut small.samples),
        median(&mut big.samples),
        median(&mut live.samples),
    );
    println!("apply + verify + project + serialize, one-leaf delta (median of {batches} batches of {size}):");
    println!("  1K-task topic                          {:>8.0} ns/delta", s);
    println!("  100K-task topic, any task              {:>8.0} ns/delta", b);
    println!("  100K-task topic, changes in 1K live    {:>8.0} ns/delta", l);
    println!(
        "  ratio 100K/1K, any task                {:>8.2}   (target <= 1.2)",
        b / s
    );
    println!(
        "  ratio 100K/1K, live window             {:>8.2}   (target <= 1.2)",
        l / s
    );
}

fn bench_distinct_subscriptions(quick: bool) {
    let rounds = if quick { 200 } else { 2_000 };
    let fields = [
        "name",
        "status",
        "cyclePoint",
        "isHeld",
        "flowNums",
        "firstParent",
        "jobs",
    ];
    // 100 distinct subscriptions: field subsets and id filters.
    let subs: Vec<Projection> = (0..100)
        .map(|i| {
            let chosen: Vec<&str> = fields
                .iter()
                .enumerate()
                .filter(|(k, _)| (i >> k) & 1 == 1 || *k == 1)
                .map(|(_, f)| *f)
                .collect();
            let ids = if i % 2 == 0 {
                String::new()
            } else {
                format!("(ids: [\"{}\"])", task_id(i))
            };
            let text = format!(
                "{{ workflows {{ taskProxies{ids} {{ {} }} }} }}",
                chosen.join(" ")
            );
            let sub = Subscription::parse(&text, &SubscriptionLimits::default()).expect("valid");
            Projection::compile(sub.for_topic("demo", TOPIC).expect("selected"), TOPIC, &schema())
                .expect("compiles")
        })
        .collect();
    let mut suite = tasks(1_000);
    let stream = deltas(&mut suite.clone(), 1_000, 1_000, rounds);
    let changes: Vec<_> = stream
        .iter()
        .map(|(p, _)| suite.apply(p).expect("object"))
        .collect();
    let time = |n: usize| {
        let start = Instant::now();
        for c in &changes {
            for proj in &subs[..n] {
                let projected = proj.project_changes(c);
                if !projected.is_empty() {
                    black_box(projected.patch_text());
                }
            }
        }
        start.elapsed().as_nanos() as f64 / changes.len() as f64
    };
    let (mut one, mut hundred) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        one.push(time(1));
        hundred.push(time(100));
    }
    let (o, h) = (median(&mut one), median(&mut hundred));
    println!("projecting one delta for distinct subscriptions:");
    println!("  1 subscription     {:>8.0} ns/delta", o);
    println!(
        "  100 subscriptions  {:>8.0} ns/delta  ({:.0} ns per subscription)",
        h,
        h / 100.0
    );
    println!(
        "  ratio 100/1        {:>8.1}   (linear in distinct subscriptions, independent of clients)",
        h / o
    );
}

fn bench_parse_merge(quick: bool) {
    let views = [
        "subscription { workflows { familyProxies { name firstParent { id } } taskProxies { name cyclePoint status firstParent { id } jobs { state } } } }",
        "subscription { workflows(ids: [\"demo\", \"other\"]) { taskProxies { name cyclePoint status isHeld } } }",
        "subscription { workflows { taskProxies { name status } edges { source target } workflow { name status } } }",
    ];
    let rounds = if quick { 2_000 } else { 20_000 };
    let start = Instant::now();
    let mut key_len = 0;
    for _ in 0..rounds {
        let parsed: Vec<Subscription> = views
            .iter()
            .map(|v| Subscription::parse(v, &SubscriptionLimits::default()).expect("valid"))
            .collect();
        key_len += Subscription::merge_all(&parsed).key().len();
    }
    black_box(key_len);
    let per = start.elapsed() / rounds;
    println!(
        "parse + merge + normalize three typical view subscriptions: {:.1} µs",
        micros(per)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1_000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    bench_store_size(quick);
    bench_distinct_subscriptions(quick);
    bench_parse_merge(quick);
}
