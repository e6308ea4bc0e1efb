//! The scale part: a large and a 1K-task suite, each followed by a relay of its own,
//! run side by side under the same load.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clonewire_bench::process::{free_port, Proc};
use clonewire_bench::suite::Suite;
use serde_json::Value;

use crate::{median, metric, run_clients, run_clients_with, Bench, ClientRun};

/// A client that needs little of a workflow: its state and totals, the families'
/// states, and one task id no suite has (which keeps `taskProxies` followed, so
/// another client's join of it is warm).
const BYSTANDER: &str = r#"subscription { workflows { workflow { status stateTotals } familyProxies { state } taskProxies(ids: ["-"]) { state } } }"#;

/// The same client without `taskProxies`, so another client's join of it is cold:
/// the relay fetches the topic's snapshot from the suite first.
const COLD_BYSTANDER: &str =
    r#"subscription { workflows { workflow { status stateTotals } familyProxies { state } } }"#;

/// The scale part: per-delta relay cost on a 1K- and a large suite side by side, a
/// new client's projection, and repairing one lost delta by replay vs a snapshot.
pub(crate) fn scale(bench: &Bench) -> Result<(), String> {
    let big_tasks = bench
        .args
        .scale_tasks
        .unwrap_or(if bench.args.quick { 10_000 } else { 100_000 });
    let rate = if bench.args.quick { 100.0 } else { 200.0 };
    let clients = 10;
    let secs = if bench.args.quick { 3.0 } else { 20.0 };
    println!(
        "\n## Scale: 1K vs {}K tasks, {rate} deltas/s each, {clients} clients per relay\n",
        big_tasks / 1000
    );
    let started = Instant::now();
    let small = Suite::start("small", 1000, rate, 7)?;
    let big = Suite::start("big", big_tasks, rate, 7)?;
    let ctx = zmq::Context::new();
    // Wait until both suites answer (the large one fills its store first).
    for suite in [&small, &big] {
        suite.request(&ctx, r#"{"op":"hello"}"#)?;
    }
    // ...and has published its first cycles (a 100K-task store takes a while).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (v, _, _) = big.request(&ctx, r#"{"op":"verify","topics":["taskProxies"]}"#)?;
        if v.pointer("/topics/taskProxies/seq")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 1
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the large suite did not publish within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("suites up in {:.1} s", started.elapsed().as_secs_f64());
    let mut relays = Vec::new();
    for suite in [&small, &big] {
        relays.push(relay_of(bench, suite)?);
    }
    // Both relays under the same load at the same time, so noise hits both.
    let warmup = if bench.args.quick { 3.0 } else { 8.0 };
    let runs: Vec<_> = relays
        .iter()
        .map(|(proc, addr)| {
            let url = format!("ws://{addr}/ws");
            let pid = proc.pid();
            let addr = *addr;
            std::thread::spawn(move || -> Result<(ClientRun, f64), String> {
                let before = std::sync::Arc::new(std::sync::Mutex::new(None));
                let b2 = before.clone();
                let probe = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs_f64(warmup));
                    if let Ok(mut b) = b2.lock() {
                        *b = metric(addr, "deltas_in");
                    }
                });
                let run = run_clients(&url, 1, clients, 1, warmup, secs, "relay", &[pid])?;
                let _ = probe.join();
                let after = metric(addr, "deltas_in");
                let before = before.lock().ok().and_then(|b| *b);
                let deltas = after.zip(before).map_or(0.0, |(a, b)| a - b);
                Ok((run, deltas))
            })
        })
        .collect();
    let mut results = Vec::new();
    for run in runs {
        results.push(run.join().map_err(|_| "a client thread panicked")??);
    }
    let per_delta: Vec<f64> = results
        .iter()
        .map(|(run, deltas)| run.cpu[0] / deltas.max(1.0) * 1e6)
        .collect();
    println!("| suite | deltas in | relay CPU s | relay us/delta | clients' latency p50 / p99 ms | first join (cold) ms | join bytes |");
    println!("|---|---|---|---|---|---|---|");
    for ((label, (run, deltas)), us) in ["1K", "large"].iter().zip(&results).zip(&per_delta) {
        println!(
            "| {label} | {deltas:.0} | {:.2} | {us:.0} | {:.1} / {:.1} | {:.0} | {:.0} |",
            run.cpu[0],
            run.report.latency_ms.p50,
            run.report.latency_ms.p99,
            run.report.join_ms.max,
            run.report.join_bytes
        );
    }
    println!(
        "\nper-delta relay cost, {}K / 1K tasks: {:.2} (goal <= 1.2)",
        big_tasks / 1000,
        per_delta[1] / per_delta[0].max(1e-9)
    );
    // A new client on a relay that already follows the topic (within its linger).
    println!("\n| new client (warm relay) | time to projection ms | bytes |");
    println!("|---|---|---|");
    for (label, (_, addr)) in ["1K", "large"].iter().zip(&relays) {
        // The client process waits until its client holds the projection, so a short
        // warm-up keeps both measurements well within the relay's topic linger (10 s);
        // a longer one would let the large relay drop the topic and measure a cold join.
        let run = run_clients(&format!("ws://{addr}/ws"), 1, 1, 1, 0.5, 0.2, "relay", &[])?;
        println!(
            "| {label} | {:.0} | {:.0} |",
            run.report.join_ms.max, run.report.join_bytes
        );
    }
    let warm: Vec<(&str, SocketAddr)> = ["1K", "large"]
        .into_iter()
        .zip(relays.iter().map(|(_, addr)| *addr))
        .collect();
    bystander(bench, Join::Warm, &warm)?;
    // The cold join on a fresh relay of the large suite.
    let (fresh, addr) = relay_of(bench, &big)?;
    bystander(bench, Join::Cold, &[("large", addr)])?;
    drop(fresh);
    // Repairing one lost delta: replay (what the relay asks first) vs a snapshot.
    println!("\n| repair one lost delta of taskProxies | replay bytes | replay ms | snapshot bytes | snapshot ms | snapshot / replay bytes |");
    println!("|---|---|---|---|---|---|");
    for (label, suite) in [("1K", &small), ("large", &big)] {
        let mut replay = Vec::new();
        let mut snapshot = Vec::new();
        for _ in 0..3 {
            let (v, _, _) = suite.request(&ctx, r#"{"op":"verify","topics":["taskProxies"]}"#)?;
            let seq = v
                .pointer("/topics/taskProxies/seq")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            let (_, rb, rms) = suite.request(
                &ctx,
                &format!(r#"{{"op":"replay","topic":"taskProxies","from":{seq}}}"#),
            )?;
            let (_, sb, sms) = suite.request(&ctx, r#"{"op":"snapshot","topics":["taskProxies"]}"#)?;
            replay.push((rb as f64, rms));
            snapshot.push((sb as f64, sms));
        }
        let (rb, rms) = (
            median(replay.iter().map(|x| x.0).collect()),
            median(replay.iter().map(|x| x.1).collect()),
        );
        let (sb, sms) = (
            median(snapshot.iter().map(|x| x.0).collect()),
            median(snapshot.iter().map(|x| x.1).collect()),
        );
        println!(
            "| {label} | {rb:.0} | {rms:.2} | {sb:.0} | {sms:.1} | {:.0}x |",
            sb / rb.max(1.0)
        );
    }
    drop(relays);
    Ok(())
}

/// A relay of its own for `suite`, on a free loopback port.
fn relay_of(bench: &Bench, suite: &Suite) -> Result<(Proc, SocketAddr), String> {
    let port = free_port()?;
    let proc = bench.start_relay(port, [suite])?;
    Ok((proc, ([127, 0, 0, 1], port).into()))
}

/// How the relay stands to the topic another client joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Join {
    /// The relay already follows `taskProxies` (the small client keeps it followed).
    Warm,
    /// A fresh relay, whose small client does not follow `taskProxies`: the join
    /// fetches, decodes and builds the topic's snapshot.
    Cold,
}

impl Join {
    /// The small client's subscription.
    fn query(self) -> &'static str {
        match self {
            Join::Warm => BYSTANDER,
            Join::Cold => COLD_BYSTANDER,
        }
    }

    /// The table's header and separator lines.
    fn header(self) -> &'static str {
        match self {
            Join::Warm => "| another client of the workflow (small query) | alone: latency p50 / p99 / max ms | while a client joins all tasks: p50 / p99 / max ms | that join ms | its bytes |\n|---|---|---|---|---|",
            Join::Cold => "| another client of the workflow (small query), large suite, fresh relay | while a client joins all tasks (cold): p50 / p99 / max ms | that join ms | its bytes |\n|---|---|---|---|",
        }
    }
}

/// One client that needs little of each workflow, measured while another client joins
/// the whole `taskProxies` of the same workflow, on each of `relays` (labelled); on
/// a warm relay it is measured alone first.
fn bystander(bench: &Bench, join: Join, relays: &[(&str, SocketAddr)]) -> Result<(), String> {
    let secs = if bench.args.quick { 3.0 } else { 8.0 };
    println!("\n{}", join.header());
    let extra = ["--query", join.query(), "--join-topic", "workflow"];
    let small =
        |url: &str, secs: f64| run_clients_with(url, (1, 1, 1), 0.5, secs, "relay", &[], &extra, &mut |_| {});
    for (label, addr) in relays {
        let url = format!("ws://{addr}/ws");
        let alone = match join {
            Join::Warm => format!("{} | ", small(&url, secs / 2.0)?.report.latency_ms),
            Join::Cold => String::new(),
        };
        let joiner = {
            let url = url.clone();
            std::thread::spawn(move || {
                // Into the small client's window (it opens about 0.5 s after it joins).
                std::thread::sleep(Duration::from_secs_f64(1.5));
                run_clients(&url, 1, 1, 1, 0.2, 0.2, "relay", &[])
            })
        };
        let during = small(&url, secs)?;
        let joined = joiner
            .join()
            .map_err(|_| "the joining client's thread panicked")??;
        println!(
            "| {label} | {alone}{} | {:.0} | {:.0} |",
            during.report.latency_ms, joined.report.join_ms.max, joined.report.join_bytes
        );
    }
    Ok(())
}
