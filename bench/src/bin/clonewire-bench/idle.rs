//! The idle part: one relay following suites that hold still (heartbeats only, no
//! clients). A relay's threads wake on work (a message, a command, a deadline), so
//! what it costs then is what following a quiet site costs.

use std::time::{Duration, Instant};

use clonewire_bench::process::free_port;
use clonewire_bench::suite::Suite;
use clonewire_bench::{cpu_secs, footprint};

use crate::Bench;

/// The relay's CPU seconds per second and its threads while it follows `count` still
/// suites and has no clients.
pub(crate) fn idle(bench: &Bench) -> Result<(), String> {
    let (count, secs) = if bench.args.quick { (20, 5.0) } else { (100, 20.0) };
    println!("\n## Idle: one relay following {count} suites that hold still (heartbeats only), no clients, {secs} s\n");
    let suites = (0..count)
        .map(|i| Suite::start_with(&format!("still{i}"), 10, 1.0, 100 + i as u64, &["--still"]))
        .collect::<Result<Vec<_>, _>>()?;
    let port = free_port()?;
    let relay = bench.start_relay(port, &suites)?;
    // Joined: every link has had its hello and first heartbeats.
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_secs(relay.pid()).unwrap_or(0.0);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let cpu = (cpu_secs(relay.pid()).unwrap_or(0.0) - before) / started.elapsed().as_secs_f64();
    let threads = footprint(relay.pid()).map_or(0, |f| f.threads);
    println!("| suites | relay CPU s/s | per suite, ms/s | relay threads |");
    println!("|---|---|---|---|");
    println!(
        "| {count} | {cpu:.4} | {:.3} | {threads} |",
        cpu * 1000.0 / count as f64
    );
    Ok(())
}
