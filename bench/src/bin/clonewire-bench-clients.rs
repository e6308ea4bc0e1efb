//! `clonewire-bench-clients`: C websocket clients in one process. Each subscribes
//! with one of S distinct queries; after a warm-up the process prints
//! `{"event":"measuring"}`, counts for `--secs` seconds, then prints one
//! [`ClientReport`] as JSON and exits. Every loop is bounded in time.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use clonewire_bench::{frame_time, frame_type, now_ms, query, useful, ClientReport, Judge, Latency};
use clonewire_core::Seq;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// What serves the clients, which decides how a frame is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Server {
    /// clonewire-relay: every delta it sends is already cut to the subscription.
    Relay,
    /// The naive relay: deltas are unfiltered, so each is checked against the query.
    Naive,
    /// The bare server: every frame counts.
    Ceiling,
}

/// Opens many websocket clients and measures what they receive.
#[derive(Parser, Debug)]
#[command(name = "clonewire-bench-clients")]
struct Args {
    /// The server's websocket URL (loopback only).
    #[arg(long)]
    url: String,
    /// How many connections.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// How many distinct subscriptions they share (client i uses query i mod S).
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    /// Seconds between the last client holding its projection and the window (the
    /// window starts anyway after 90 s of joining).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Length of the measuring window in seconds.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// What serves the clients.
    #[arg(long, value_enum, default_value = "relay")]
    server: Server,
    /// Workflows served: a client has joined once it holds a `taskProxies` snapshot
    /// of each.
    #[arg(long, default_value_t = 1)]
    workflows: usize,
    /// The subscription of every client instead of the S distinct queries.
    #[arg(long)]
    query: Option<String>,
    /// The topic whose snapshot (of every workflow) means a client has joined.
    #[arg(long, default_value = "taskProxies")]
    join_topic: String,
}

/// The fields of a naive relay's frame that say what it is about.
#[derive(Deserialize)]
struct About {
    #[serde(default)]
    workflow: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    seq: Seq,
    #[serde(default)]
    patch: Value,
    #[serde(default)]
    value: Value,
}

/// Whether a naive relay's delta frame is one the client's subscription needs.
fn judge_delta(judge: &Mutex<Judge>, text: &str) -> bool {
    let Ok(about) = serde_json::from_str::<About>(text) else {
        return false;
    };
    judge
        .lock()
        .map(|mut j| j.delta(&about.workflow, &about.topic, about.seq, &about.patch))
        .unwrap_or_else(|_| useful(&about.topic, &about.patch))
}

/// Starts the judge's replica from a naive relay's snapshot frame.
fn judge_snapshot(judge: &Mutex<Judge>, text: &str) {
    if let (Ok(about), Ok(mut j)) = (serde_json::from_str::<About>(text), judge.lock()) {
        j.snapshot(&about.workflow, &about.topic, about.seq, &about.value);
    }
}

const WARMUP: u8 = 0;
const MEASURING: u8 = 1;

/// One connection's tallies, returned when it ends.
#[derive(Default)]
struct Tally {
    connected: bool,
    deltas: u64,
    useful: u64,
    bytes: u64,
    snapshots: u64,
    latencies: Vec<f32>,
    /// The same latencies by whole second of the window.
    by_second: Vec<Vec<f32>>,
    join_ms: Option<f32>,
    join_bytes: u64,
    sizes: Vec<usize>,
}

#[allow(clippy::too_many_arguments)]
async fn client(
    url: String,
    index: usize,
    args: Arc<Args>,
    phase: Arc<AtomicU8>,
    mut stop: watch::Receiver<bool>,
    joined: Arc<AtomicUsize>,
    permit: Option<OwnedSemaphorePermit>,
    judge: Arc<Mutex<Judge>>,
    window_opened: Arc<std::sync::OnceLock<Instant>>,
) -> Tally {
    let mut tally = Tally::default();
    let connect = tokio::time::timeout(Duration::from_secs(20), tokio_tungstenite::connect_async(url));
    let Ok(Ok((mut ws, _))) = connect.await else {
        return tally;
    };
    let text = args
        .query
        .clone()
        .unwrap_or_else(|| query(index % args.subscriptions.max(1)));
    let subscribe = json!({"type": "subscribe", "query": text});
    let join_topic = format!("\"topic\":\"{}\"", args.join_topic);
    if ws
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .is_err()
    {
        return tally;
    }
    tally.connected = true;
    drop(permit);
    let subscribed = Instant::now();
    let mut before_join = 0u64;
    let mut task_snapshots = 0;
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            _ = stop.changed() => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => {
                tally.connected = *stop.borrow();
                break;
            }
        };
        let text = text.as_str();
        let kind = if args.server == Server::Ceiling {
            "delta"
        } else {
            frame_type(text).unwrap_or("")
        };
        if args.server == Server::Naive && kind == "snapshot" {
            judge_snapshot(&judge, text);
        }
        if tally.join_ms.is_none() {
            before_join += text.len() as u64;
            if kind == "snapshot" && text.contains(&join_topic) {
                task_snapshots += 1;
            }
            if task_snapshots >= args.workflows || args.server == Server::Ceiling {
                tally.join_ms = Some(subscribed.elapsed().as_secs_f32() * 1000.0);
                tally.join_bytes = before_join;
                joined.fetch_add(1, Ordering::Relaxed);
            }
        }
        if phase.load(Ordering::Relaxed) != MEASURING {
            continue;
        }
        tally.bytes += text.len() as u64;
        match kind {
            "snapshot" => tally.snapshots += 1,
            "delta" => {
                tally.deltas += 1;
                if tally.sizes.len() < 500 {
                    tally.sizes.push(text.len());
                }
                let needed = match args.server {
                    Server::Naive => judge_delta(&judge, text),
                    Server::Relay | Server::Ceiling => true,
                };
                if needed {
                    tally.useful += 1;
                    if let Some(time) = frame_time(text) {
                        let latency = (now_ms() - time) as f32;
                        tally.latencies.push(latency);
                        let second = window_opened
                            .get()
                            .map_or(0, |t| t.elapsed().as_secs() as usize)
                            .min(600);
                        if tally.by_second.len() <= second {
                            tally.by_second.resize_with(second + 1, Vec::new);
                        }
                        tally.by_second[second].push(latency);
                    }
                }
            }
            _ => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
    tally
}

fn main() -> std::process::ExitCode {
    let args = Arc::new(Args::parse());
    if !args.url.starts_with("ws://127.") && !args.url.starts_with("ws://localhost") {
        eprintln!("error: --url must be a loopback address");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(run(args));
    println!("{}", serde_json::to_string(&report).unwrap_or_default());
    std::process::ExitCode::SUCCESS
}

async fn run(args: Arc<Args>) -> ClientReport {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let judge = Arc::new(Mutex::new(Judge::new()));
    let joined = Arc::new(AtomicUsize::new(0));
    let window_opened = Arc::new(std::sync::OnceLock::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    // Connect in bounded bursts so the accept queue never overflows.
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let permit = gate.clone().acquire_owned().await.ok();
        let (args2, phase, stop) = (args.clone(), phase.clone(), stop_rx.clone());
        let url = args.url.clone();
        tasks.push(tokio::spawn(client(
            url,
            index,
            args2,
            phase,
            stop,
            joined.clone(),
            permit,
            judge.clone(),
            window_opened.clone(),
        )));
        if index % 64 == 63 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // Measure the steady state: after every client holds its projection (bounded).
    let joining = Instant::now() + Duration::from_secs(90);
    while joined.load(Ordering::Relaxed) < args.clients && Instant::now() < joining {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let _ = window_opened.set(Instant::now());
    phase.store(MEASURING, Ordering::Relaxed);
    println!("{}", json!({"event": "measuring"}));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    phase.store(WARMUP, Ordering::Relaxed);
    let window_secs = started.elapsed().as_secs_f64();
    println!("{}", json!({"event": "done"}));
    let _ = stop_tx.send(true);
    let mut report = ClientReport {
        window_secs,
        ..ClientReport::default()
    };
    let mut latencies = Vec::new();
    let mut by_second: Vec<Vec<f32>> = Vec::new();
    let mut joins = Vec::new();
    let mut join_bytes = 0u64;
    for task in tasks {
        let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(10), task).await else {
            report.failed += 1;
            continue;
        };
        if !t.connected {
            report.failed += 1;
            continue;
        }
        report.connected += 1;
        report.deltas += t.deltas;
        report.useful += t.useful;
        report.bytes += t.bytes;
        report.snapshots += t.snapshots;
        latencies.extend(t.latencies);
        if by_second.len() < t.by_second.len() {
            by_second.resize_with(t.by_second.len(), Vec::new);
        }
        for (all, mine) in by_second.iter_mut().zip(t.by_second) {
            all.extend(mine);
        }
        joins.extend(t.join_ms);
        join_bytes += t.join_bytes;
        if report.sample_sizes.len() < t.sizes.len() {
            report.sample_sizes = t.sizes;
        }
    }
    report.latency_ms = Latency::of(&mut latencies);
    report.latency_by_second = by_second.iter_mut().map(|l| Latency::of(l)).collect();
    report.join_ms = Latency::of(&mut joins);
    report.join_bytes = join_bytes as f64 / report.connected.max(1) as f64;
    report
}
