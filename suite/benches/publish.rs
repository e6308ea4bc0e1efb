//! Sustained publish rate of the simulator's workload through a real publisher
//! (apply, incremental hash, JSON encoding, PUB send, the responder's replica and
//! history), for a 1K-task and a 100K-task store. Rounds of the two alternate so
//! that machine noise hits both alike; the ratio of their costs per delta should
//! stay near 1, since work per delta must not grow with the store.
//!
//! `cargo bench -p clonewire-suite --bench publish` (about 40 s). Environment:
//! No subscriber is connected (ZeroMQ drops at once), so the figures are the suite's
//! own cost. `ROUNDS` (default 5) and `ROUND_SECS` (default 2) per size.

use std::time::{Duration, Instant};

use clonewire_core::Schema;
use clonewire_suite::sim::{workflow, Workflow};
use clonewire_suite::{Publisher, PublisherConfig};

struct Bench {
    label: &'static str,
    workflow: Workflow,
    publisher: Publisher,
    /// Asks `verify`, which the responder answers only after applying every delta
    /// published before it: so a round's time includes the replica's work too.
    req: zmq::Socket,
    rates: Vec<f64>,
    bytes: u64,
    deltas: u64,
}

impl Bench {
    fn new(label: &'static str, tasks: usize) -> Bench {
        let started = Instant::now();
        let publisher = Publisher::start(PublisherConfig {
            schema: Schema::new(workflow::collections()),
            ..PublisherConfig::new(label)
        })
        .expect("publisher starts");
        let mut workflow = Workflow::new(label, tasks, 1);
        for (topic, patch) in workflow.start() {
            publisher.publish(topic, patch).expect("publishes");
        }
        println!(
            "{label}: {} live tasks set up in {:.1} s",
            workflow.live_tasks(),
            started.elapsed().as_secs_f64()
        );
        let req = ctx().socket(zmq::REQ).expect("a REQ socket");
        req.set_linger(0).expect("linger");
        req.set_rcvtimeo(60_000).expect("timeout");
        req.connect(publisher.rep_endpoint()).expect("connects");
        let bench = Bench {
            label,
            workflow,
            publisher,
            req,
            rates: Vec::new(),
            bytes: 0,
            deltas: 0,
        };
        bench.caught_up();
        bench
    }

    /// Waits until the responder has applied everything published so far.
    fn caught_up(&self) {
        let answered = self
            .req
            .send(&br#"{"op":"verify"}"#[..], 0)
            .and_then(|()| self.req.recv_bytes(0));
        if let Err(e) = answered {
            panic!("{}: verify failed: {e}", self.label);
        }
    }

    /// Publishes as fast as it can for `secs`; records deltas per second.
    fn round(&mut self, secs: Duration) {
        let started = Instant::now();
        let mut deltas = 0u64;
        while started.elapsed() < secs {
            for _ in 0..100 {
                for (topic, patch) in self.workflow.step() {
                    if let Ok(Some(p)) = self.publisher.publish(topic, patch) {
                        deltas += 1;
                        self.bytes += p.bytes as u64;
                    }
                }
            }
        }
        self.caught_up();
        self.deltas += deltas;
        self.rates.push(deltas as f64 / started.elapsed().as_secs_f64());
    }

    fn median(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    }

    fn report(&self) {
        let median = self.median();
        let rounds: Vec<String> = self.rates.iter().map(|r| format!("{:.0}", r)).collect();
        println!(
            "{:>5}: median {:>8.0} deltas/s = {:>5.1} us/delta, {:>4.0} B/delta  (rounds: {})",
            self.label,
            median,
            1e6 / median,
            self.bytes as f64 / self.deltas.max(1) as f64,
            rounds.join(", ")
        );
    }
}

fn ctx() -> zmq::Context {
    zmq::Context::new()
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One snapshot of the whole store over the REP socket, timed.
fn snapshot(bench: &Bench) {
    let Ok(req) = ctx().socket(zmq::REQ) else { return };
    let _ = req.set_linger(0);
    let _ = req.set_rcvtimeo(60_000);
    if req.connect(bench.publisher.rep_endpoint()).is_err() {
        return;
    }
    let started = Instant::now();
    let reply = req
        .send(&br#"{"op":"snapshot"}"#[..], 0)
        .and_then(|()| req.recv_bytes(0));
    if let Ok(reply) = reply {
        println!(
            "{:>5}: full snapshot {:.1} MB in {:.0} ms (answered by the responder thread)",
            bench.label,
            reply.len() as f64 / 1e6,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to run.
    }
    let rounds = env("ROUNDS", 5);
    let secs = Duration::from_secs(env("ROUND_SECS", 2));
    let mut small = Bench::new("1K", 1_000);
    let mut large = Bench::new("100K", 100_000);
    for _ in 0..rounds {
        small.round(secs);
        large.round(secs);
    }
    small.report();
    large.report();
    println!(
        "cost per delta, 100K / 1K: {:.2} (1.00 = independent of store size)",
        small.median() / large.median()
    );
    snapshot(&large);
}
