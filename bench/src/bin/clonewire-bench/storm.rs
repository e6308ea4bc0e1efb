//! The join-storm part: clients already connected to the relay, measured over one
//! window alone and over another while 1,000 more clients join at once. Joins should
//! not disturb the living: the first group's latency is what a user of an open page
//! notices when everybody else opens theirs.

use clonewire_bench::process::free_port;

use crate::probe::{Reading, Window};
use crate::{run_clients, run_clients_with, Bench, ClientRun};

/// Clients already connected, and their distinct subscriptions.
const LIVING: (usize, usize) = (100, 3);
/// Seconds from the living clients' window opening to the storm's start.
const STORM_AFTER: f64 = 1.0;

/// Runs the part: one fresh relay per row, the living clients measured alone and then
/// during a storm of joiners with S distinct subscriptions.
pub(crate) fn storm(bench: &Bench) -> Result<(), String> {
    let joiners = if bench.args.quick { 200 } else { 1000 };
    let secs = if bench.args.quick { 3.0 } else { 8.0 };
    let (living, living_subs) = LIVING;
    println!(
        "\n## Join storm: {living} clients (S = {living_subs}) while {joiners} more join, K = {} suites x R = {} deltas/s\n",
        bench.suites.len(),
        bench.args.rate
    );
    println!("| joiners C | joiners S | living clients alone: latency p50 / p99 / max ms | during the storm: p50 / p99 / max ms | during, p99 by second ms | relay-side during, p50 / p99 ms: queued, sent | joiners' join p50 / max ms |");
    println!("|---|---|---|---|---|---|---|");
    for subs in [3, 100] {
        let port = free_port()?;
        let relay = bench.start_relay(port, &bench.suites)?;
        let url = format!("ws://127.0.0.1:{port}/ws");
        let workflows = bench.suites.len();
        let shape = (workflows, living, living_subs);
        let alone = run_clients(
            &url,
            workflows,
            living,
            living_subs,
            bench.warmup(living),
            secs,
            "relay",
            &[],
        )?;
        let mut storm: Option<std::thread::JoinHandle<Result<ClientRun, String>>> = None;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut readings: Vec<Reading> = Vec::new();
        let during = run_clients_with(
            &url,
            shape,
            bench.warmup(living),
            secs,
            "relay",
            &[],
            &[],
            &mut |event| {
                readings.push(Reading::take(addr));
                if event == "measuring" && storm.is_none() {
                    let url = url.clone();
                    storm = Some(std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_secs_f64(STORM_AFTER));
                        run_clients(&url, workflows, joiners, subs, 0.2, 0.2, "relay", &[])
                    }));
                }
            },
        )?;
        let storm = storm
            .ok_or("the living clients' window never opened")?
            .join()
            .map_err(|_| "the joining clients' thread panicked")??;
        let relay_side = match readings.as_slice() {
            [open, close] => {
                let w = Window::between(open, close);
                format!("{}, {}", w.queued, w.sent)
            }
            _ => "-".to_owned(),
        };
        println!(
            "| {joiners} | {subs} | {} | {} | {} | {relay_side} | {:.0} / {:.0} |",
            alone.report.latency_ms,
            during.report.latency_ms,
            during.report.p99_by_second(),
            storm.report.join_ms.p50,
            storm.report.join_ms.max
        );
        drop(relay);
    }
    Ok(())
}
