//! Replays a recorded stream through a [`Session`] natively, for profiling the client's
//! per-message work without a browser (the same views as the browser benchmark).
//!
//! ```sh
//! cargo run -p clonewire-wasm --example record -- 500 5000 no > stream.json
//! cargo run --release -p clonewire-wasm --example replay -- stream.json [rounds]
//! ```

use std::time::Instant;

use clonewire_core::SubscriptionLimits;
use clonewire_wasm::Session;
use serde_json::Value;

const VIEWS: [(&str, &str); 3] = [
    (
        "tasks",
        "subscription { workflows(ids: [\"demo\"]) { taskProxies { status } } }",
    ),
    (
        "names",
        "{ workflows { workflow { name status } taskProxies { name } } }",
    ),
    ("both", "{ workflows { taskProxies { name status } } }"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().map_or("stream.json", String::as_str);
    let rounds: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let text = std::fs::read_to_string(path).expect("read the stream");
    let stream: Value = serde_json::from_str(&text).expect("a recorded stream");
    let frame = |v: &Value| v.to_string();
    let mut setup = vec![frame(&stream["workflow"])];
    setup.extend(stream["initial"].as_array().expect("initial").iter().map(frame));
    let deltas: Vec<String> = stream["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| frame(&s["delta"]))
        .collect();

    let mut best = f64::MAX;
    for _ in 0..rounds {
        let mut session = Session::new(SubscriptionLimits::default());
        for (name, query) in VIEWS {
            session.add_view(name, query).expect("query");
        }
        session.opened();
        for f in &setup {
            session.receive(f);
        }
        let start = Instant::now();
        let mut notified = 0usize;
        for f in &deltas {
            // What the binding hands the page: one JSON text per frame.
            notified += session.receive(f).to_json().len();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / deltas.len() as f64;
        best = best.min(us);
        let c = session.counters();
        assert_eq!(c.deltas as usize, deltas.len(), "the stream did not verify");
        assert_eq!(c.hash_mismatches, 0);
        std::hint::black_box(notified);
    }
    println!("{} deltas, best of {rounds}: {best:.2} us/delta", deltas.len());
}
