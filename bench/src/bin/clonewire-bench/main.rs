//! `clonewire-bench`: the end-to-end load benchmark (see `docs/benchmarks.md`).
//!
//! Starts K `clonewire-sim` suites, then for every cell (C clients, S distinct
//! subscriptions) of the grid and every round runs three sides in turn, each in a
//! fresh server process with the same client process in front of it:
//!
//! 1. `clonewire-relay` (release binary, bench config with raised limits);
//! 2. the ceiling, `clonewire-bench-ceiling`, sending frames of the relay's sizes at
//!    the relay's per-client rate (measured in the first cell);
//! 3. the naive Python relay, `bench/naive_relay.py`.
//!
//! Then the join-storm part: 100 clients measured alone and while 1,000 more join the
//! same relay (S = 3, then 100), against the same K suites.
//!
//! Then the scale part: a 100K-task and a 1K-task suite, each with a relay of its own
//! run side by side: per-delta relay cost, a new client's projection, and repairing
//! one lost delta by replay vs a snapshot.
//!
//! Then the stalled-clients part: two busy suites and one relay; a reading client's
//! rate and the relay's intake, first alone, then with five clients that subscribe
//! and never read (4 KiB receive buffers). Every child is killed on exit (and by the
//! kernel if this process dies), every wait is bounded, and all traffic stays on
//! loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use clonewire_bench::process::{free_port, sibling, wait_listening, Proc};
use clonewire_bench::suite::Suite;
use clonewire_bench::{cpu_secs, http, peak_rss_mib, ClientReport};
use serde_json::Value;

mod idle;
mod probe;
mod scale;
mod stalled;
mod storm;

use scale::scale;
use stalled::stalled;
use storm::storm;

/// Measures the relay against a bare websocket server and a naive relay, in one run.
#[derive(Parser, Debug, Clone)]
#[command(name = "clonewire-bench")]
struct Args {
    /// A short run (under a minute) that shows the benchmark works; figures only.
    #[arg(long)]
    quick: bool,
    /// Simulated suites (K).
    #[arg(long, default_value_t = 4)]
    suites: usize,
    /// Deltas per second of each suite (R).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Live tasks per suite.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Cells to run as C:S pairs, e.g. `1:1,100:3,1000:1000` (default: the full grid,
    /// or a small one with --quick).
    #[arg(long, value_delimiter = ',')]
    cells: Vec<String>,
    /// Rounds per cell (sides interleaved within each round).
    #[arg(long)]
    rounds: Option<usize>,
    /// Measuring window per side and round, in seconds.
    #[arg(long)]
    secs: Option<f64>,
    /// Skip the naive Python relay.
    #[arg(long)]
    no_naive: bool,
    /// Skip the scale part.
    #[arg(long)]
    no_scale: bool,
    /// Tasks of the large suite in the scale part (the small one has 1K).
    #[arg(long)]
    scale_tasks: Option<usize>,
    /// Skip the join-storm part (clients measured while 1,000 others join).
    #[arg(long)]
    no_storm: bool,
    /// Skip the idle part (a relay following suites that hold still).
    #[arg(long)]
    no_idle: bool,
    /// Skip the stalled-clients part.
    #[arg(long)]
    no_stalled: bool,
    /// Measuring window of each side of the stalled-clients part, in seconds.
    #[arg(long)]
    stalled_secs: Option<f64>,
}

/// The limits the bench raises (written to the relay's `--config` file).
const RELAY_CONFIG: &str = r#"# clonewire-bench: the relay's settings under load.
name = "clonewire-bench"
[limits]
# 1,000 clients plus probes, with room to spare.
max_clients = 5000
# A client gets 4 MiB before conflation and 32 MiB before a fresh snapshot, so a
# 100K-task projection (about 8 MiB) fits and bursts at join are not conflated.
client_queue_soft_bytes = 4194304
client_queue_hard_bytes = 33554432
# 1,000 clients joining at once each queue a command for every workflow.
workflow_commands = 16384
# Suites of 100K tasks answer snapshots of tens of MB.
suite_request_timeout_ms = 30000
"#;

/// Which server the clients talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Relay,
    Ceiling,
    Naive,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Relay => "clonewire-relay",
            Side::Ceiling => "ceiling",
            Side::Naive => "naive (Python)",
        }
    }
}

/// What one side measured in one round.
#[derive(Clone, Debug, Default)]
struct Sample {
    report: ClientReport,
    server_cpu: f64,
    suites_cpu: f64,
    clients_cpu: f64,
    peak_rss: f64,
    /// The relay's own figures over the window (relay side only).
    relay: Option<probe::Window>,
}

struct Bench {
    args: Args,
    dir: PathBuf,
    suites: Vec<Suite>,
    /// Per-client rate and frame sizes of the relay, for the ceiling.
    calibration: Option<(f64, Vec<usize>)>,
    python: bool,
}

impl Bench {
    fn warmup(&self, clients: usize) -> f64 {
        // Settling time after the last client has joined.
        let base = if self.args.quick { 1.0 } else { 2.0 };
        base + clients as f64 / 1000.0
    }

    fn secs(&self) -> f64 {
        self.args.secs.unwrap_or(if self.args.quick { 2.0 } else { 6.0 })
    }

    fn start_server(&self, side: Side, port: u16) -> Result<Option<Proc>, String> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let listen = addr.to_string();
        let proc = match side {
            Side::Relay => return self.start_relay(port, &self.suites).map(Some),
            Side::Ceiling => {
                let Some((rate, sizes)) = &self.calibration else {
                    return Ok(None);
                };
                let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
                Proc::spawn(
                    "ceiling",
                    Command::new(sibling("clonewire-bench-ceiling")?).args([
                        "--listen",
                        &listen,
                        "--rate",
                        &format!("{rate:.3}"),
                        "--sizes",
                        &sizes.join(","),
                        "--max-secs",
                        "600",
                    ]),
                )?
            }
            Side::Naive => {
                if !self.python {
                    return Ok(None);
                }
                let mut cmd = Command::new("python3");
                cmd.arg(naive_script())
                    .args(["--listen", &listen, "--max-secs", "600"]);
                for suite in &self.suites {
                    cmd.args(["--suite", &suite.flag()]);
                }
                Proc::spawn("naive relay", &mut cmd)?
            }
        };
        wait_listening(addr, side.name())?;
        Ok(Some(proc))
    }

    /// Starts `clonewire-relay` with the bench's settings on loopback `port`,
    /// following `suites`, and waits until it listens.
    fn start_relay<'a>(
        &self,
        port: u16,
        suites: impl IntoIterator<Item = &'a Suite>,
    ) -> Result<Proc, String> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(sibling("clonewire-relay")?);
        cmd.arg("--config").arg(self.dir.join("relay.toml")).args([
            "--listen",
            &addr.to_string(),
            "--log",
            "warn",
        ]);
        for suite in suites {
            cmd.args(["--suite", &suite.flag()]);
        }
        let relay = Proc::spawn("clonewire-relay", cmd.stderr(Stdio::inherit()))?;
        wait_listening(addr, Side::Relay.name())?;
        Ok(relay)
    }

    /// Runs one side for one round of one cell.
    fn run_side(&self, side: Side, clients: usize, subs: usize) -> Result<Option<Sample>, String> {
        let port = free_port()?;
        let Some(server) = self.start_server(side, port)? else {
            return Ok(None);
        };
        let server_kind = match side {
            Side::Relay => "relay",
            Side::Ceiling => "ceiling",
            Side::Naive => "naive",
        };
        let mut pids = vec![server.pid()];
        pids.extend(self.suites.iter().map(Suite::pid));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut readings: Vec<probe::Reading> = Vec::new();
        let mut on_event = |_: &str| {
            if side == Side::Relay {
                readings.push(probe::Reading::take(addr));
            }
        };
        let sample = run_clients_with(
            &format!("ws://127.0.0.1:{port}/ws"),
            (self.suites.len(), clients, subs),
            self.warmup(clients),
            self.secs(),
            server_kind,
            &pids,
            &[],
            &mut on_event,
        )?;
        let relay = match readings.as_slice() {
            [open, close] => Some(probe::Window::between(open, close)),
            _ => None,
        };
        let peak_rss = peak_rss_mib(server.pid()).unwrap_or(0.0);
        drop(server);
        let suites_cpu = sample.cpu[1..].iter().sum();
        Ok(Some(Sample {
            server_cpu: sample.cpu[0],
            suites_cpu,
            clients_cpu: sample.clients_cpu,
            peak_rss,
            report: sample.report,
            relay,
        }))
    }
}

fn naive_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("naive_relay.py")
}

/// What a client run measured: the report and CPU seconds in the window of each pid
/// asked for, and of the client process itself.
struct ClientRun {
    report: ClientReport,
    cpu: Vec<f64>,
    clients_cpu: f64,
}

#[allow(clippy::too_many_arguments)]
fn run_clients(
    url: &str,
    workflows: usize,
    clients: usize,
    subs: usize,
    warmup: f64,
    secs: f64,
    server: &str,
    pids: &[u32],
) -> Result<ClientRun, String> {
    let shape = (workflows, clients, subs);
    run_clients_with(url, shape, warmup, secs, server, pids, &[], &mut |_| {})
}

/// [`run_clients`] with more arguments for the client process, calling `on_event`
/// with `measuring` when the window opens and `done` when it closes.
#[allow(clippy::too_many_arguments)]
fn run_clients_with(
    url: &str,
    (workflows, clients, subs): (usize, usize, usize),
    warmup: f64,
    secs: f64,
    server: &str,
    pids: &[u32],
    extra: &[&str],
    on_event: &mut dyn FnMut(&str),
) -> Result<ClientRun, String> {
    let mut proc = Proc::spawn(
        "clients",
        Command::new(sibling("clonewire-bench-clients")?)
            .args([
                "--url",
                url,
                "--server",
                server,
                "--workflows",
                &workflows.to_string(),
            ])
            .args([
                "--clients",
                &clients.to_string(),
                "--subscriptions",
                &subs.to_string(),
            ])
            .args(["--warmup", &warmup.to_string(), "--secs", &secs.to_string()])
            .args(extra)
            .stdout(Stdio::piped()),
    )?;
    let own = proc.pid();
    let rx = proc.lines().ok_or("no stdout")?;
    let deadline = Instant::now() + Duration::from_secs_f64(warmup + secs + 150.0);
    let cpu_all = |pids: &[u32]| -> Vec<f64> { pids.iter().map(|p| cpu_secs(*p).unwrap_or(0.0)).collect() };
    let mut start: Option<(Vec<f64>, f64)> = None;
    let mut cpu = vec![0.0; pids.len()];
    let mut clients_cpu = 0.0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| "the client process did not report in time".to_owned())?;
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        match value.get("event").and_then(Value::as_str) {
            Some("measuring") => {
                start = Some((cpu_all(pids), cpu_secs(own).unwrap_or(0.0)));
                on_event("measuring");
            }
            Some("done") => {
                on_event("done");
                if let Some((before, own_before)) = &start {
                    let after = cpu_all(pids);
                    cpu = after.iter().zip(before).map(|(a, b)| a - b).collect();
                    clients_cpu = cpu_secs(own).unwrap_or(0.0) - own_before;
                }
            }
            _ => {
                let report: ClientReport =
                    serde_json::from_value(value).map_err(|e| format!("client report: {e}: {line}"))?;
                return Ok(ClientRun {
                    report,
                    cpu,
                    clients_cpu,
                });
            }
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The medians of a side's rounds (max over rounds for the max latency and RSS).
fn summary(samples: &[Sample]) -> Sample {
    let med = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let mut s = Sample {
        server_cpu: med(&|s| s.server_cpu / s.report.window_secs),
        suites_cpu: med(&|s| s.suites_cpu / s.report.window_secs),
        clients_cpu: med(&|s| s.clients_cpu / s.report.window_secs),
        peak_rss: samples.iter().map(|s| s.peak_rss).fold(0.0, f64::max),
        ..Sample::default()
    };
    let r = &mut s.report;
    r.window_secs = 1.0;
    r.useful = med(&|s| s.report.useful_rate()) as u64;
    r.deltas = med(&|s| s.report.deltas as f64 / s.report.window_secs) as u64;
    r.bytes = med(&|s| s.report.byte_rate()) as u64;
    r.connected = med(&|s| s.report.connected as f64) as usize;
    r.latency_ms.p50 = med(&|s| s.report.latency_ms.p50);
    r.latency_ms.p99 = med(&|s| s.report.latency_ms.p99);
    r.latency_ms.max = samples
        .iter()
        .map(|s| s.report.latency_ms.max)
        .fold(0.0, f64::max);
    r.join_ms.p50 = med(&|s| s.report.join_ms.p50);
    r.join_ms.max = samples.iter().map(|s| s.report.join_ms.max).fold(0.0, f64::max);
    s
}

fn cells(args: &Args) -> Result<Vec<(usize, usize)>, String> {
    if args.cells.is_empty() {
        return Ok(if args.quick {
            vec![(1, 1), (100, 3)]
        } else {
            vec![
                (1, 1),
                (100, 1),
                (100, 3),
                (100, 100),
                (1000, 1),
                (1000, 3),
                (1000, 1000),
            ]
        });
    }
    args.cells
        .iter()
        .map(|c| {
            let (a, b) = c.split_once(':').ok_or(format!("cell {c:?}: expected C:S"))?;
            let parse = |x: &str| x.trim().parse::<usize>().map_err(|e| format!("cell {c:?}: {e}"));
            let (clients, subs) = (parse(a)?, parse(b)?);
            if clients == 0 || subs == 0 || subs > clients || clients > 4000 {
                return Err(format!("cell {c:?}: need 1 <= S <= C <= 4000"));
            }
            Ok((clients, subs))
        })
        .collect()
}

fn grid(bench: &mut Bench) -> Result<(), String> {
    let cells = cells(&bench.args)?;
    let rounds = bench.args.rounds.unwrap_or(if bench.args.quick { 1 } else { 2 });
    println!(
        "\n## Load: K={} suites x R={} deltas/s ({} tasks each), {} round(s) of {} s per side\n",
        bench.suites.len(),
        bench.args.rate,
        bench.args.tasks,
        rounds,
        bench.secs()
    );
    println!("| C | S | side | useful msg/s | MB/s | latency p50 / p99 / max ms | join p50 / max ms | server CPU s/s | suites CPU s/s | peak RSS MiB | vs relay |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let sides = [Side::Relay, Side::Ceiling, Side::Naive];
    let mut runs_table: Vec<String> = Vec::new();
    for (clients, subs) in cells {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sides.len()];
        for round in 0..rounds {
            // Rotate the order each round so drift in machine load hits every side;
            // the relay goes first until the ceiling has its rate and sizes.
            let mut order: Vec<usize> = (0..sides.len()).map(|k| (k + round) % sides.len()).collect();
            if bench.calibration.is_none() {
                order.sort_by_key(|&i| i != 0);
            }
            for i in order {
                if let Some(s) = bench.run_side(sides[i], clients, subs)? {
                    if sides[i] == Side::Relay && bench.calibration.is_none() && s.report.useful > 0 {
                        let rate = s.report.useful_rate() / s.report.connected.max(1) as f64;
                        bench.calibration = Some((rate, s.report.sample_sizes.clone()));
                    }
                    samples[i].push(s);
                }
            }
        }
        let ours = summary(&samples[0]);
        runs_table.extend(per_run_rows(clients, subs, &samples[0], &samples[1]));
        for (side, runs) in sides.iter().zip(&samples) {
            if runs.is_empty() {
                continue;
            }
            let s = summary(runs);
            let r = &s.report;
            let ratio = if *side == Side::Relay {
                "1".to_owned()
            } else if *side == Side::Ceiling {
                format!(
                    "relay/ceiling = {:.2}",
                    ours.report.useful as f64 / r.useful.max(1) as f64
                )
            } else {
                format!(
                    "relay/naive = {:.1}x",
                    ours.report.useful as f64 / r.useful.max(1) as f64
                )
            };
            println!(
                "| {clients} | {subs} | {} | {} | {:.2} | {:.1} / {:.1} / {:.0} | {:.0} / {:.0} | {:.2} | {:.3} | {:.0} | {} |",
                side.name(),
                r.useful,
                r.bytes as f64 / 1e6,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.latency_ms.max,
                r.join_ms.p50,
                r.join_ms.max,
                s.server_cpu,
                s.suites_cpu,
                s.peak_rss,
                ratio
            );
            if r.connected < clients {
                println!(
                    "|   |   | ({} of {clients} clients joined) | | | | | | | | |",
                    r.connected
                );
            }
        }
    }
    println!("\n### Every run: relay against the ceiling (rounds in order)\n");
    println!(
        "| C | S | round | relay latency p50 / p99 / max ms | ceiling p50 / p99 / max ms | p99 relay / ceiling | relay p99 by second of the window ms | relay-side p50 / p99 ms: arrived, queued, sent | relay join p50 / max ms | conflations / overflows / bridges / snapshots / snapshot waits in window | queued at open KiB (max client) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in runs_table {
        println!("{row}");
    }
    println!(
        "\n(relay-side, from the relay's histograms: suite time to the delta reaching its link \
         thread, to its being queued for every client, and to the frame's send; each the upper \
         bound of its bucket, buckets grow by 1.5x from 0.25 ms. The rest of a client's latency \
         is the client process and the kernel, which the ceiling has too.)"
    );
    Ok(())
}

/// One row per round: the relay's and the ceiling's latency in that round, their p99
/// ratio, and the relay's own figures over its window.
fn per_run_rows(clients: usize, subs: usize, relay: &[Sample], ceiling: &[Sample]) -> Vec<String> {
    relay
        .iter()
        .enumerate()
        .map(|(round, r)| {
            let c = ceiling.get(round);
            let ratio = c.map_or("-".to_owned(), |c| {
                format!("{:.2}", r.report.latency_ms.p99 / c.report.latency_ms.p99.max(1e-9))
            });
            let w = r.relay.unwrap_or_default();
            format!(
                "| {clients} | {subs} | {} | {} | {} | {ratio} | {} | {}, {}, {} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {:.0} ({:.0}) |",
                round + 1,
                r.report.latency_ms,
                c.map_or("-".to_owned(), |c| c.report.latency_ms.to_string()),
                r.report.p99_by_second(),
                w.arrived,
                w.queued,
                w.sent,
                r.report.join_ms.p50,
                r.report.join_ms.max,
                w.conflations,
                w.overflows,
                w.bridges,
                w.snapshots,
                w.snapshot_waits,
                w.queued_at_open / 1024.0,
                w.queued_max_at_open / 1024.0,
            )
        })
        .collect()
}

/// Reads the counter `clonewire_<name>_total` from the relay's `/metrics`.
fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    http::metric_value(&http::get(addr, "/metrics")?, &format!("clonewire_{name}_total"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    match run(args) {
        Ok(()) => {
            println!("\n(total {:.0} s)", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("clonewire-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("relay.toml"), RELAY_CONFIG).map_err(|e| e.to_string())?;
    let python = Command::new("python3")
        .args(["-c", "import zmq, websockets"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python && !args.no_naive {
        println!("(the naive relay is skipped: python3 with pyzmq and websockets is missing)");
    }
    let suites = (0..args.suites.max(1))
        .map(|i| Suite::start(&format!("sim{i}"), args.tasks, args.rate, 1 + i as u64))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bench = Bench {
        python: python && !args.no_naive,
        args: args.clone(),
        dir: dir.clone(),
        suites,
        calibration: None,
    };
    grid(&mut bench)?;
    if let Some((rate, sizes)) = &bench.calibration {
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
        println!("\n(ceiling: {rate:.1} frames/s per client of the relay's sizes, mean {mean:.0} B)");
    }
    if !args.no_storm {
        storm(&bench)?;
    }
    bench.suites.clear();
    if !args.no_scale {
        scale(&bench)?;
    }
    if !args.no_stalled {
        stalled(&bench)?;
    }
    if !args.no_idle {
        idle::idle(&bench)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
