//! Records a client-link stream for the JS tests and the benchmark: a simulated suite
//! changes tasks, and each delta is projected with a merged query and framed exactly as
//! a relay would (prev chain, projection hash), with the snapshot after each step.
//!
//! `cargo run -p clonewire-wasm --example record -- [tasks] [steps] [snapshots: yes|no]`
//! prints JSON: `{query, views, workflow, schema, initial: [frame], steps: [{delta, snapshot}]}`.

use std::collections::BTreeMap;

use clonewire_core::{Projection, Schema, Subscription, SubscriptionLimits, Topic};
use serde_json::{json, Value};

/// The views the tests open, and so the query the stream is projected with.
const VIEWS: [(&str, &str); 2] = [
    (
        "tasks",
        "subscription { workflows(ids: [\"demo\"]) { taskProxies { status } } }",
    ),
    (
        "names",
        "{ workflows { workflow { name status } taskProxies { name } } }",
    ),
];

const STATUSES: [&str; 4] = ["waiting", "submitted", "running", "succeeded"];

/// A small deterministic PRNG (xorshift64*), so the stream is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The relay's view of one topic for this connection.
struct Link {
    suite: Topic,
    client: Topic,
    projection: Option<Projection>,
    last: Option<u64>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tasks: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(12);
    let steps: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let snapshots = args.get(2).is_none_or(|a| a != "no");

    let schema = Schema::new([vec!["taskProxies"], vec!["jobs"]]);
    let parts: Vec<Subscription> = VIEWS
        .iter()
        .map(|(_, q)| Subscription::parse(q, &SubscriptionLimits::default()).expect("query"))
        .collect();
    let merged = Subscription::merge_all(&parts);
    let mut links: BTreeMap<&str, Link> = ["workflow", "taskProxies", "jobs"]
        .into_iter()
        .map(|t| {
            let projection = merged
                .for_topic("demo", t)
                .and_then(|f| Projection::compile(f, t, &schema));
            let link = Link {
                suite: Topic::new(t),
                client: Topic::new(t),
                projection,
                last: None,
            };
            (t, link)
        })
        .collect();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seq = 0u64;
    let mut next_task = 0usize;
    let mut patches: Vec<(&str, Value)> = vec![(
        "workflow",
        json!({"name": "demo", "status": "running", "progress": 0}),
    )];
    let mut initial_tasks = serde_json::Map::new();
    for _ in 0..tasks {
        initial_tasks.insert(format!("1/t{next_task}"), task(next_task, "waiting"));
        next_task += 1;
    }
    patches.push(("taskProxies", Value::Object(initial_tasks)));
    let mut initial = Vec::new();
    for (topic, patch) in patches {
        seq += 1;
        let link = links.get_mut(topic).expect("topic");
        link.suite.apply(&patch).expect("patch");
        if let Some(p) = &link.projection {
            let (value, hash) = p.project(&link.suite);
            link.client = Topic::from_value(topic, &value).expect("value");
            link.last = Some(seq);
            initial.push(json!({
                "type": "snapshot", "workflow": "demo", "topic": topic, "epoch": "e1",
                "seq": seq, "hash": hash.to_string(), "value": value
            }));
        }
    }

    let mut out_steps = Vec::new();
    let mut live: Vec<usize> = (0..next_task).collect();
    while out_steps.len() < steps {
        seq += 1;
        let roll = rng.below(100);
        let (topic, patch) = if roll < 70 && !live.is_empty() {
            let id = live[rng.below(live.len() as u64) as usize];
            let status = STATUSES[rng.below(4) as usize];
            (
                "taskProxies",
                json!({ format!("1/t{id}"): {"status": status, "outputs": {status: true}} }),
            )
        } else if roll < 80 {
            let id = next_task;
            next_task += 1;
            live.push(id);
            ("taskProxies", json!({ format!("1/t{id}"): task(id, "waiting") }))
        } else if roll < 88 && live.len() > 1 {
            let id = live.swap_remove(rng.below(live.len() as u64) as usize);
            ("taskProxies", json!({ format!("1/t{id}"): null }))
        } else if roll < 94 {
            let status = if rng.below(2) == 0 { "running" } else { "paused" };
            ("workflow", json!({"progress": rng.below(100), "status": status}))
        } else {
            (
                "jobs",
                json!({ format!("j{}", rng.below(50)): {"state": "running"} }),
            )
        };
        let link = links.get_mut(topic).expect("topic");
        let changes = link.suite.apply(&patch).expect("patch");
        let Some(projection) = &link.projection else {
            continue;
        };
        let selected = projection.project_changes(&changes);
        if selected.is_empty() {
            continue; // the relay sends nothing when the projection did not change
        }
        let patch = selected.to_patch();
        link.client.apply(&patch).expect("patch");
        let prev = link.last.replace(seq);
        let hash = link.client.hash().to_string();
        let delta = json!({
            "type": "delta", "workflow": "demo", "topic": topic, "epoch": "e1", "seq": seq,
            "prev": prev, "hash": hash, "time": 1_700_000_000_000u64 + seq, "patch": patch
        });
        let snapshot = snapshots.then(|| {
            json!({
                "type": "snapshot", "workflow": "demo", "topic": topic, "epoch": "e1",
                "seq": seq, "hash": hash, "value": link.client.to_value()
            })
        });
        out_steps.push(json!({"delta": delta, "snapshot": snapshot}));
    }

    let record = json!({
        "query": merged.key(),
        "views": VIEWS.iter().map(|(n, q)| (n.to_string(), json!(q))).collect::<serde_json::Map<_, _>>(),
        "workflow": {"type": "workflow", "workflow": "demo", "state": "live", "schema": schema},
        "initial": initial,
        "steps": out_steps,
    });
    println!("{record}");
}

fn task(id: usize, status: &str) -> Value {
    json!({
        "name": format!("t{id}"), "status": status, "cyclePoint": "1", "isHeld": false,
        "flowNums": [1], "outputs": {"submitted": false, "started": false, "succeeded": false}
    })
}
