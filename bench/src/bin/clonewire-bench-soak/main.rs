//! `clonewire-bench-soak`: long-running memory, threads and descriptors of the relay
//! and its suites under a steady load (see the "Soak" section of `docs/benchmarks.md`).
//!
//! Simulated suites publish at a steady rate in their own processes (or one real Cylc
//! workflow cycles, with `--cylc-venv`), one relay follows them, and websocket clients
//! join, read, lag and leave in a steady churn. Every `--sample-secs` it prints, for
//! the relay and each suite: RSS, threads, open descriptors and what each long-lived
//! structure holds (the relay's `/metrics`, the suites' own reports). At the end: each
//! process's RSS slope over the second half, then the relay once every client has left
//! and once the workflows have stopped, against its size before the load. It never
//! fails on a figure; every wait is bounded and all traffic stays on loopback.

mod churn;
mod cylc;
mod report;

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use clonewire_bench::http::{get, metric_value};
use clonewire_bench::process::{free_port, sibling, wait_listening, Proc};
use clonewire_bench::suite::Suite;
use clonewire_bench::{footprint, Footprint};
use serde_json::Value;

use churn::ChurnCounts;
use report::{human, Sample, Series};

/// Soaks a relay and its suites under steady load and prints their footprint.
#[derive(Parser, Debug)]
#[command(name = "clonewire-bench-soak")]
struct Args {
    /// Minutes of load.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60.0)]
    sample_secs: f64,
    /// The short form for the test command: 2.5 minutes, a sample every 15 s.
    #[arg(long)]
    quick: bool,
    /// Simulated suites, each in its own process.
    #[arg(long, default_value_t = 3)]
    suites: usize,
    /// Live tasks per suite.
    #[arg(long, default_value_t = 500)]
    tasks: usize,
    /// Deltas per second per suite.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Clients kept connected.
    #[arg(long, default_value_t = 60)]
    clients: usize,
    /// A client's life in seconds, on average.
    #[arg(long, default_value_t = 60.0)]
    life_secs: f64,
    /// Follow one real Cylc workflow instead (simulation mode, cycling), run with the
    /// cylc-flow in this Python venv.
    #[arg(long, value_name = "VENV")]
    cylc_venv: Option<std::path::PathBuf>,
}

/// How long the relay keeps a topic no client wants (its `topic_linger_secs`), plus a
/// margin for the link to drop it.
const LINGER: Duration = Duration::from_secs(15);

/// What the relay follows.
enum Upstreams {
    /// Simulated suites.
    Sims(Vec<Suite>),
    /// A real Cylc workflow and its scheduler.
    Cylc(cylc::Workflow),
}

impl Upstreams {
    /// The relay's flags to follow them.
    fn relay_flags(&self) -> Vec<String> {
        match self {
            Upstreams::Sims(suites) => suites
                .iter()
                .flat_map(|s| ["--suite".to_owned(), s.flag()])
                .collect(),
            Upstreams::Cylc(workflow) => workflow.relay_flags(),
        }
    }

    /// (name, pid) of each upstream process.
    fn processes(&self) -> Vec<(String, u32)> {
        match self {
            Upstreams::Sims(suites) => suites.iter().map(|s| (s.name().to_owned(), s.pid())).collect(),
            Upstreams::Cylc(workflow) => vec![("scheduler".to_owned(), workflow.pid())],
        }
    }

    /// What an upstream process holds, by its own report since the last call.
    fn held(&self, index: usize, last: &mut Vec<(String, f64)>) {
        let Upstreams::Sims(suites) = self else {
            return;
        };
        let Some(suite) = suites.get(index) else {
            return;
        };
        for line in suite.new_lines() {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(held) = value.get("held").and_then(Value::as_object) {
                *last = ["history_bytes", "history_deltas", "store_leaves", "feed_bytes"]
                    .into_iter()
                    .filter_map(|k| Some((k.replace("_bytes", ""), held.get(k)?.as_f64()?)))
                    .collect();
            }
        }
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.quick {
        args.minutes = 2.5;
        args.sample_secs = 15.0;
        args.clients = args.clients.min(30);
        args.life_secs = args.life_secs.min(30.0);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    if !(args.minutes > 0.0 && args.sample_secs > 0.0 && args.life_secs > 0.0) {
        return Err("--minutes, --sample-secs and --life-secs must be positive".into());
    }
    let report_every = args.sample_secs.to_string();
    let upstreams = match &args.cylc_venv {
        Some(venv) => Upstreams::Cylc(cylc::Workflow::start(venv)?),
        None => Upstreams::Sims(
            (0..args.suites)
                .map(|i| {
                    Suite::start_with(
                        &format!("soak{i}"),
                        args.tasks,
                        args.rate,
                        1 + i as u64,
                        &["--report-every", &report_every],
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let relay = Proc::spawn(
        "clonewire-relay",
        Command::new(sibling("clonewire-relay")?)
            .args(["--listen", &addr.to_string(), "--log", "warn"])
            .args(upstreams.relay_flags())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )?;
    wait_listening(addr, "clonewire-relay")?;
    let what = match &args.cylc_venv {
        Some(_) => "one real Cylc workflow (simulation mode, cycling)".to_owned(),
        None => format!(
            "{} suites of {} tasks at {} deltas/s, each in its own process",
            args.suites, args.tasks, args.rate
        ),
    };
    println!(
        "soak: {what}; one relay; {} clients in churn (life about {} s; 2 in 10 lag {} s, 1 in 10 vanishes, half take compressed frames); {} min, a sample every {} s\n",
        args.clients,
        args.life_secs,
        15,
        args.minutes,
        args.sample_secs
    );
    let mut relay_series = Series::new("relay");
    let mut suite_series: Vec<Series> = upstreams
        .processes()
        .iter()
        .map(|(n, _)| Series::new(n))
        .collect();
    let mut suite_held: Vec<Vec<(String, f64)>> = vec![Vec::new(); suite_series.len()];
    println!("| minute | process    | RSS MiB  | threads |  fds  | held |");
    println!("|---|---|---|---|---|---|");
    // Joined, no clients: the relay's idle size.
    std::thread::sleep(Duration::from_secs(3));
    let take = |minute: f64,
                relay_series: &mut Series,
                suite_series: &mut [Series],
                suite_held: &mut [Vec<(String, f64)>],
                counts: Option<&ChurnCounts>| {
        let processes = upstreams.processes();
        for (i, (_, pid)) in processes.iter().enumerate() {
            upstreams.held(i, &mut suite_held[i]);
            if let Some(f) = footprint(*pid) {
                let sample = Sample {
                    minute,
                    footprint: f,
                    held: suite_held[i].clone(),
                };
                println!("{}", suite_series[i].row(&sample));
                suite_series[i].samples.push(sample);
            }
        }
        if let Some(f) = footprint(relay.pid()) {
            let mut held = relay_held(addr);
            if let Some(c) = counts {
                held.push((
                    "clients".into(),
                    c.live.load(std::sync::atomic::Ordering::Relaxed) as f64,
                ));
            }
            let sample = Sample {
                minute,
                footprint: f,
                held,
            };
            println!("{}", relay_series.row(&sample));
            relay_series.samples.push(sample);
        }
    };
    take(0.0, &mut relay_series, &mut suite_series, &mut suite_held, None);
    let idle = relay_series.samples.last().map(|s| s.footprint);

    // The load.
    let counts = Arc::new(ChurnCounts::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let churn = {
        let counts = counts.clone();
        let url = format!("ws://{addr}/ws");
        let (population, life) = (args.clients, Duration::from_secs_f64(args.life_secs));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(churn::run(url, population, life, counts, stop_rx));
            }
        })
    };
    let started = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs_f64(args.sample_secs);
    let mut next = every;
    while next <= total + Duration::from_millis(10) {
        std::thread::sleep(next.saturating_sub(started.elapsed()));
        let minute = started.elapsed().as_secs_f64() / 60.0;
        take(
            minute,
            &mut relay_series,
            &mut suite_series,
            &mut suite_held,
            Some(&counts),
        );
        next += every;
    }
    let _ = stop_tx.send(true);
    let _ = churn.join();
    let load_minutes = started.elapsed().as_secs_f64() / 60.0;

    // Every client gone, topics past their linger.
    std::thread::sleep(LINGER);
    let left = footprint(relay.pid());
    let left_held = relay_held(addr);
    drop(upstreams);
    std::thread::sleep(Duration::from_secs(5));
    let stopped = footprint(relay.pid());
    let stopped_held = relay_held(addr);

    println!();
    println!(
        "clients: {} joined, {} failed, {} frames, {} received",
        counts.joined.load(std::sync::atomic::Ordering::Relaxed),
        counts.failed.load(std::sync::atomic::Ordering::Relaxed),
        counts.frames.load(std::sync::atomic::Ordering::Relaxed),
        human(counts.bytes.load(std::sync::atomic::Ordering::Relaxed) as f64),
    );
    let half = load_minutes / 2.0;
    println!("\nSecond half of the load (minute {half:.1} to {load_minutes:.1}):\n");
    println!(
        "| process | samples | RSS slope MiB/min | RSS change MiB (fitted / last - first) | threads | fds |"
    );
    println!("|---|---|---|---|---|---|");
    for series in std::iter::once(&relay_series).chain(&suite_series) {
        if let Some(v) = series.second_half(half, load_minutes) {
            println!(
                "| {} | {} | {:+.3} | {:+.2} / {:+.2} | {}-{} | {}-{} |",
                series.name,
                v.samples,
                v.slope_mib_per_min,
                v.fitted_mib,
                v.grown_mib,
                v.threads.0,
                v.threads.1,
                v.fds.0,
                v.fds.1
            );
        }
    }
    println!("\nThe relay against its size before the load:\n");
    println!("| when | RSS MiB | threads | fds | held |");
    println!("|---|---|---|---|---|");
    let line = |when: &str, f: Option<Footprint>, held: &[(String, f64)]| {
        if let Some(f) = f {
            let held: Vec<String> = held.iter().map(|(k, v)| format!("{k} {}", human(*v))).collect();
            println!(
                "| {when} | {:.1} | {} | {} | {} |",
                f.rss_mib,
                f.threads,
                f.fds,
                held.join(", ")
            );
        }
    };
    let idle_held = relay_series
        .samples
        .first()
        .map(|s| s.held.clone())
        .unwrap_or_default();
    line("joined, no clients yet", idle, &idle_held);
    line("every client left (after the topics' linger)", left, &left_held);
    line("workflows stopped", stopped, &stopped_held);
    Ok(())
}

/// What the relay says it holds (`/metrics`).
fn relay_held(addr: SocketAddr) -> Vec<(String, f64)> {
    let Some(text) = get(addr, "/metrics") else {
        return Vec::new();
    };
    let mut held: Vec<(String, f64)> = ["outboxes", "history", "compressed_frames"]
        .into_iter()
        .filter_map(|kind| {
            let v = metric_value(&text, &format!("clonewire_held_bytes{{kind=\"{kind}\"}}"))?;
            Some((kind.to_owned(), v))
        })
        .collect();
    for (name, series) in [
        ("replica_leaves", "clonewire_replica_leaves"),
        ("subscriptions", "clonewire_subscriptions"),
    ] {
        if let Some(v) = metric_value(&text, series) {
            held.push((name.into(), v));
        }
    }
    held
}
