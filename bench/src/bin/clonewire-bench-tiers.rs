//! `clonewire-bench-tiers`: what relay tiers cost, in one run (see `docs/deploy.md`).
//!
//! One `clonewire-sim` suite, then three topologies in turn, each with fresh relays:
//!
//! 1. single: suite → relay → C clients (the baseline);
//! 2. one edge: suite → core relay → edge relay → C clients;
//! 3. two edges: suite → core relay → 2 edge relays → C/2 clients each.
//!
//! In 2 and 3 one more client reads the core directly, so each tier's latency (suite
//! publish to receipt, p50 and p99) is measured in the same run; the client groups'
//! windows overlap, and the servers are measured while every group is measuring. Per process over
//! the window: CPU seconds per second, peak RSS, and bytes received and sent on its
//! TCP sockets (the kernel's counters, read with `ss`); for the suite, the same, which shows what a second
//! edge costs it. All on loopback; every child is killed on exit.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use clonewire_bench::process::{each_line, sibling, wait_listening, Proc};
use clonewire_bench::suite::Suite;
use clonewire_bench::{cpu_secs, http, peak_rss_mib, ClientReport};
use serde_json::Value;

/// Measures relay tiers against a single relay, in one run.
#[derive(Parser, Debug)]
#[command(name = "clonewire-bench-tiers")]
struct Args {
    /// A short run (about a minute) that shows the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Clients at the edge (split between edges), or at the single relay.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Distinct subscriptions among them.
    #[arg(long, default_value_t = 3)]
    subscriptions: usize,
    /// Live tasks of the suite.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Deltas per second of the suite.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Measuring window per topology, in seconds.
    #[arg(long)]
    secs: Option<f64>,
}

/// Bytes each process has received and sent so far on its open TCP sockets (the
/// kernel's per-socket counters, as `ss -tinp` prints them), by pid. Sockets that
/// closed are not counted, so only steady connections are measured.
fn socket_bytes() -> BTreeMap<u32, (f64, f64)> {
    let mut out: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    let Ok(output) = Command::new("ss").args(["-tinpH"]).output() else {
        return out;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let mut owners: Vec<u32> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            owners = line
                .split("pid=")
                .skip(1)
                .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
                .collect();
            continue;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (received, sent) = (field("bytes_received:"), field("bytes_sent:"));
        for pid in &owners {
            let entry = out.entry(*pid).or_default();
            entry.0 += received;
            entry.1 += sent;
        }
    }
    out
}

/// What the relay that follows the suite asked of it: the topics it follows and its
/// fetches by rung (a join is a snapshot), from its `/healthz` and `/metrics`.
fn suite_requests(addr: SocketAddr) -> String {
    let get = |path| http::get(addr, path).unwrap_or_default();
    let health: Value = serde_json::from_str(&get("/healthz")).unwrap_or(Value::Null);
    let topics = health["workflows"]["tiers"]["topics"].as_u64().unwrap_or(0);
    let metrics = get("/metrics");
    let repairs: Vec<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("clonewire_repairs_total{kind=\""))
        .filter_map(|rest| {
            let (kind, n) = rest.split_once("\"} ")?;
            Some(format!("{kind} {n}"))
        })
        .collect();
    let repairs = if repairs.is_empty() {
        "none".to_owned()
    } else {
        repairs.join(", ")
    };
    format!(
        "asked by one relay, for {topics} topics; its fetches by rung (joins count as snapshot): {repairs}"
    )
}

/// The relay's settings for the bench: room for the clients.
const RELAY_CONFIG: &str = "[limits]\nmax_clients = 5000\nworkflow_commands = 16384\n";

fn relay(name: &str, dir: &std::path::Path, upstream: &[&str]) -> Result<(Proc, String, SocketAddr), String> {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, format!("name = {name:?}\n{RELAY_CONFIG}")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(sibling("clonewire-relay")?);
    cmd.arg("--config").arg(&config);
    // Port 0, and the address read from the relay's own log line: no other process
    // can take the port in between.
    cmd.args(["--listen", "127.0.0.1:0", "--log", "warn,clonewire_relay=info"]);
    for up in upstream {
        cmd.arg(if up.starts_with("ws://") {
            "--follow-relay"
        } else {
            "--suite"
        });
        cmd.arg(up);
    }
    // The relay logs to stdout. Killed at once when dropped, as each topology ends.
    let mut proc =
        Proc::spawn(name, cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()))?.with_grace(Duration::ZERO);
    let stdout = proc.stdout().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let label = name.to_owned();
    let mut told = false;
    each_line(stdout, move |line| {
        if !told {
            if let Some(rest) = line.split("the page at http://").nth(1) {
                let addr = rest.split('/').next().unwrap_or_default();
                told = tx.send(addr.to_owned()).is_ok();
                return true;
            }
        }
        if line.contains("WARN") || line.contains("ERROR") {
            eprintln!("{label}: {line}");
        }
        true
    });
    let addr: SocketAddr = rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| format!("{name} did not say where it listens"))?
        .parse()
        .map_err(|e| format!("{name}: {e}"))?;
    wait_listening(addr, name)?;
    Ok((proc, format!("ws://{addr}/ws"), addr))
}

/// Starts one client process; its output lines arrive on `lines`, tagged `index`.
fn start_clients(
    url: &str,
    clients: usize,
    subs: usize,
    (warmup, secs): (f64, f64),
    index: usize,
    lines: &mpsc::Sender<(usize, String)>,
) -> Result<Proc, String> {
    let mut proc = Proc::spawn(
        "clients",
        Command::new(sibling("clonewire-bench-clients")?)
            .args(["--url", url, "--clients", &clients.to_string()])
            .args(["--subscriptions", &subs.to_string()])
            .args(["--warmup", &warmup.to_string(), "--secs", &secs.to_string()])
            .stdout(Stdio::piped()),
    )?
    .with_grace(Duration::ZERO);
    let stdout = proc.stdout().ok_or("no stdout")?;
    let tx = lines.clone();
    each_line(stdout, move |line| tx.send((index, line)).is_ok());
    Ok(proc)
}

/// What one process did over the window.
#[derive(Clone, Debug, Default)]
struct Usage {
    cpu: f64,
    rss: f64,
    read: f64,
    written: f64,
}

/// One topology's figures.
struct Run {
    name: &'static str,
    usage: BTreeMap<String, Usage>,
    /// What the suite was asked, as the relay following it counts.
    asked: String,
    /// Per client group: (where, report).
    clients: Vec<(String, ClientReport)>,
    secs: f64,
}

/// Runs client groups against `servers`, measuring the servers over the window of the
/// first group.
fn measure(
    name: &'static str,
    servers: &[(&str, u32)],
    groups: &[(&str, &str, usize)],
    subs: usize,
    secs: f64,
) -> Result<Run, String> {
    // Every group's window is longer than the servers' by PAD, so the servers are
    // sampled while every group is measuring (they join at different times), and
    // before any disconnects (a closed socket's counters are gone).
    const PAD: f64 = 10.0;
    let warmup = 2.0;
    let (tx, lines) = mpsc::channel();
    let began = Instant::now();
    let mut procs = Vec::new();
    for (index, (_, url, clients)) in groups.iter().enumerate() {
        procs.push(start_clients(
            url,
            *clients,
            subs,
            (warmup, secs + PAD),
            index,
            &tx,
        )?);
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs_f64(warmup + secs + PAD + 150.0);
    let snap = || -> Vec<(f64, (f64, f64))> {
        let bytes = socket_bytes();
        servers
            .iter()
            .map(|(_, pid)| {
                let io = bytes.get(pid).copied().unwrap_or_default();
                (cpu_secs(*pid).unwrap_or(0.0), io)
            })
            .collect()
    };
    let (mut start, mut end) = (None, None);
    let (mut started_at, mut window_end) = (Instant::now(), Instant::now());
    let mut measuring = vec![false; groups.len()];
    let mut reports: Vec<Option<ClientReport>> = vec![None; groups.len()];
    while reports.iter().any(Option::is_none) {
        let (index, line) = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| format!("{name}: the clients did not report in time"))?;
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        match value.get("event").and_then(Value::as_str) {
            Some("measuring") => {
                eprintln!(
                    "{name}: {} measuring after {:.1} s",
                    groups[index].0,
                    began.elapsed().as_secs_f64()
                );
                measuring[index] = true;
                if start.is_none() && measuring.iter().all(|m| *m) {
                    start = Some(snap());
                    started_at = Instant::now();
                    std::thread::sleep(Duration::from_secs_f64(secs));
                    end = Some(snap());
                    window_end = Instant::now();
                }
            }
            Some(_) => {}
            None => {
                let report: ClientReport =
                    serde_json::from_value(value).map_err(|e| format!("client report: {e}: {line}"))?;
                reports[index] = Some(report);
            }
        }
    }
    drop(procs);
    let reports: Vec<(String, ClientReport)> = groups
        .iter()
        .zip(reports)
        .map(|((label, _, _), r)| ((*label).to_owned(), r.unwrap_or_default()))
        .collect();
    let (Some(start), Some(end)) = (start, end) else {
        return Err(format!("{name}: the client groups were never measuring at once"));
    };
    let window = window_end.duration_since(started_at).as_secs_f64().max(1e-3);
    let usage = servers
        .iter()
        .zip(start.iter().zip(&end))
        .map(|((label, pid), ((c0, (r0, w0)), (c1, (r1, w1))))| {
            (
                (*label).to_owned(),
                Usage {
                    cpu: (c1 - c0) / window,
                    rss: peak_rss_mib(*pid).unwrap_or(0.0),
                    read: (r1 - r0) / window,
                    written: (w1 - w0) / window,
                },
            )
        })
        .collect();
    Ok(Run {
        name,
        asked: String::new(),
        usage,
        clients: reports,
        secs: window,
    })
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let secs = args.secs.unwrap_or(if args.quick { 3.0 } else { 10.0 });
    let clients = if args.quick {
        args.clients.min(20)
    } else {
        args.clients
    };
    let dir = std::env::temp_dir().join(format!("clonewire-bench-tiers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // The suite's default seed.
    let sim = Suite::start("tiers", args.tasks, args.rate, 1)?;
    let suite = sim.flag();
    let sim_pid = sim.pid();
    println!(
        "clonewire-bench-tiers: one suite ({} tasks, {} deltas/s), {clients} clients, {} subscriptions, {secs} s windows",
        args.tasks, args.rate, args.subscriptions
    );

    let mut runs = Vec::new();
    {
        let (single, url, addr) = relay("single", &dir, &[&suite])?;
        let servers = [("suite", sim_pid), ("relay", single.pid())];
        let groups = [("relay", url.as_str(), clients)];
        let mut run = measure("single relay", &servers, &groups, args.subscriptions, secs)?;
        run.asked = suite_requests(addr);
        runs.push(run);
    }
    for edges in [1usize, 2] {
        let (core, core_url, core_addr) = relay("core", &dir, &[&suite])?;
        let mut edge_procs = Vec::new();
        for i in 1..=edges {
            edge_procs.push(relay(&format!("edge{i}"), &dir, &[&core_url])?);
        }
        let mut servers = vec![("suite", sim_pid), ("core", core.pid())];
        let labels = ["edge 1", "edge 2"];
        for (i, (p, _, _)) in edge_procs.iter().enumerate() {
            servers.push((labels[i], p.pid()));
        }
        let mut groups: Vec<(&str, &str, usize)> = edge_procs
            .iter()
            .enumerate()
            .map(|(i, (_, url, _))| (labels[i], url.as_str(), clients / edges))
            .collect();
        groups.push(("core", core_url.as_str(), 1));
        let name = if edges == 1 {
            "core + 1 edge"
        } else {
            "core + 2 edges"
        };
        let mut run = measure(name, &servers, &groups, args.subscriptions, secs)?;
        run.asked = suite_requests(core_addr);
        runs.push(run);
    }
    let _ = std::fs::remove_dir_all(&dir);
    print_tables(&runs);
    Ok(())
}

fn print_tables(runs: &[Run]) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nPer process over the window (bytes: its TCP sockets, as `ss -tinp` counts them):\n"
    );
    let _ = writeln!(
        out,
        "| topology | process | CPU (s/s) | peak RSS (MiB) | in (KB/s) | out (KB/s) |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: |");
    for run in runs {
        for (label, u) in &run.usage {
            let _ = writeln!(
                out,
                "| {} | {label} | {:.3} | {:.1} | {:.1} | {:.1} |",
                run.name,
                u.cpu,
                u.rss,
                u.read / 1e3,
                u.written / 1e3
            );
        }
    }
    let _ = writeln!(
        out,
        "\nClients (latency: suite publish to receipt, over deltas they need):\n"
    );
    let _ = writeln!(
        out,
        "| topology | clients at | clients | deltas/s each | p50 (ms) | p99 (ms) | snapshots in window |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for run in runs {
        for (label, r) in &run.clients {
            let each = r.useful_rate() / r.connected.max(1) as f64;
            let _ = writeln!(
                out,
                "| {} | {label} | {} | {each:.1} | {:.2} | {:.2} | {} |",
                run.name, r.connected, r.latency_ms.p50, r.latency_ms.p99, r.snapshots
            );
        }
    }
    let base = runs
        .first()
        .and_then(|r| r.clients.first())
        .map(|(_, r)| r.latency_ms);
    if let Some(base) = base {
        let _ = writeln!(out, "\nLatency added against the single relay (p50 / p99, ms):\n");
        for run in runs.iter().skip(1) {
            for (label, r) in &run.clients {
                let _ = writeln!(
                    out,
                    "- {}, clients at {label}: {:+.2} / {:+.2}",
                    run.name,
                    r.latency_ms.p50 - base.p50,
                    r.latency_ms.p99 - base.p99
                );
            }
        }
    }
    let suite = |run: &Run| run.usage.get("suite").cloned().unwrap_or_default();
    let _ = writeln!(out, "\nThe suite's cost (CPU s/s, KB/s sent: PUB and REP):\n");
    for run in runs {
        let s = suite(run);
        let _ = writeln!(
            out,
            "- {}: {:.3} CPU, {:.1} KB/s sent, {:.0} s window; {}",
            run.name,
            s.cpu,
            s.written / 1e3,
            run.secs,
            run.asked
        );
    }
}
