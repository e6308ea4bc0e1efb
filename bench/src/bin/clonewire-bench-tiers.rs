//! `clonewire-bench-tiers`: what relay tiers cost, in one run (see `docs/deploy.md`).
//!
//! One `clonewire-sim` suite, then three topologies in turn, each with fresh relays:
//!
//! 1. single: suite → relay → C clients (the baseline);
//! 2. one edge: suite → core relay → edge relay → C clients;
//! 3. two edges: suite → core relay → 2 edge relays → C/2 clients each.
//!
//! In 2 and 3 one more client reads the core directly, so each tier's latency (suite
//! publish to receipt, p50 and p99) is measured in the same window. Per process over
//! the window: CPU seconds per second, peak RSS, and bytes received and sent on its
//! TCP sockets (the kernel's counters, read with `ss`); for the suite, the same, which shows what a second
//! edge costs it. All on loopback; every child is killed on exit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use clonewire_bench::{cpu_secs, peak_rss_mib, ClientReport};
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

/// A child process, killed when dropped.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command) -> Result<Proc, String> {
        // SAFETY: prctl is async-signal-safe; the kernel kills the child if we die.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: cargo build --release -p clonewire-relay -p clonewire-suite -p clonewire-bench",
            path.display()
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn wait_listening(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on {addr} after 15 s"))
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

/// The relay's settings for the bench: room for the clients.
const RELAY_CONFIG: &str = "[limits]\nmax_clients = 5000\nworkflow_commands = 16384\n";

fn relay(name: &str, dir: &std::path::Path, upstream: &[&str]) -> Result<(Proc, String), String> {
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, format!("name = {name:?}\n{RELAY_CONFIG}")).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(sibling("clonewire-relay")?);
    cmd.arg("--config").arg(&config);
    cmd.args(["--listen", &addr.to_string(), "--log", "warn"]);
    for up in upstream {
        cmd.arg(if up.starts_with("ws://") {
            "--follow-relay"
        } else {
            "--suite"
        });
        cmd.arg(up);
    }
    let proc = Proc::spawn(name, cmd.stderr(Stdio::inherit()))?;
    wait_listening(addr)?;
    Ok((proc, format!("ws://{addr}/ws")))
}

/// One client process: its events arrive on a channel.
struct Clients {
    proc: Proc,
    lines: mpsc::Receiver<String>,
}

impl Clients {
    fn start(url: &str, clients: usize, subs: usize, warmup: f64, secs: f64) -> Result<Clients, String> {
        let mut proc = Proc::spawn(
            "clients",
            Command::new(sibling("clonewire-bench-clients")?)
                .args(["--url", url, "--clients", &clients.to_string()])
                .args(["--subscriptions", &subs.to_string()])
                .args(["--warmup", &warmup.to_string(), "--secs", &secs.to_string()])
                .stdout(Stdio::piped()),
        )?;
        let stdout = proc.child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Clients { proc, lines })
    }

    /// Waits for the next line: `Ok(event)` for an event, `Err(report)` for the report.
    fn next(&mut self, deadline: Instant) -> Result<Result<String, ClientReport>, String> {
        let line = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| format!("{} did not report in time", self.proc.name))?;
        let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        match value.get("event").and_then(Value::as_str) {
            Some(event) => Ok(Ok(event.to_owned())),
            None => serde_json::from_value(value)
                .map(Err)
                .map_err(|e| format!("client report: {e}: {line}")),
        }
    }
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
    let warmup = 2.0;
    let mut procs: Vec<(String, Clients)> = Vec::new();
    for (label, url, clients) in groups {
        procs.push((
            (*label).to_owned(),
            Clients::start(url, *clients, subs, warmup, secs)?,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(warmup + secs + 150.0);
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
    let mut reports = Vec::new();
    let (first, rest) = procs.split_first_mut().ok_or("no clients")?;
    let (mut started_at, mut window_end) = (Instant::now(), Instant::now());
    loop {
        match first.1.next(deadline)? {
            Ok(event) if event == "measuring" && start.is_none() => {
                // Sampled inside the clients' window: once it ends they disconnect,
                // and a closed socket's counters are gone.
                start = Some(snap());
                started_at = Instant::now();
                std::thread::sleep(Duration::from_secs_f64(secs * 0.9));
                end = Some(snap());
                window_end = Instant::now();
            }
            Ok(_) => {}
            Err(report) => {
                reports.push((first.0.clone(), report));
                break;
            }
        }
    }
    for (label, clients) in rest.iter_mut() {
        loop {
            if let Err(report) = clients.next(deadline)? {
                reports.push((label.clone(), report));
                break;
            }
        }
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(format!("{name}: the clients never measured"));
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
    let mut sim = Proc::spawn(
        "suite",
        Command::new(sibling("clonewire-sim")?)
            .args([
                "--name",
                "tiers",
                "--pub",
                "tcp://127.0.0.1:0",
                "--rep",
                "tcp://127.0.0.1:0",
            ])
            .args([
                "--tasks",
                &args.tasks.to_string(),
                "--rate",
                &args.rate.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    let mut line = String::new();
    let stdout = sim.child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let info: Value = serde_json::from_str(&line).map_err(|e| format!("suite: {e}: {line:?}"))?;
    let endpoint = |k: &str| info.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let suite = format!("tiers={},{}", endpoint("pub"), endpoint("rep"));
    let sim_pid = sim.pid();
    println!(
        "clonewire-bench-tiers: one suite ({} tasks, {} deltas/s), {clients} clients, {} subscriptions, {secs} s windows",
        args.tasks, args.rate, args.subscriptions
    );

    let mut runs = Vec::new();
    {
        let (single, url) = relay("single", &dir, &[&suite])?;
        let servers = [("suite", sim_pid), ("relay", single.pid())];
        runs.push(measure(
            "single relay",
            &servers,
            &[("relay", &url, clients)],
            args.subscriptions,
            secs,
        )?);
    }
    for edges in [1usize, 2] {
        let (core, core_url) = relay("core", &dir, &[&suite])?;
        let mut edge_procs = Vec::new();
        for i in 1..=edges {
            edge_procs.push(relay(&format!("edge{i}"), &dir, &[&core_url])?);
        }
        let mut servers = vec![("suite", sim_pid), ("core", core.pid())];
        let labels = ["edge 1", "edge 2"];
        for (i, (p, _)) in edge_procs.iter().enumerate() {
            servers.push((labels[i], p.pid()));
        }
        let mut groups: Vec<(&str, &str, usize)> = edge_procs
            .iter()
            .enumerate()
            .map(|(i, (_, url))| (labels[i], url.as_str(), clients / edges))
            .collect();
        groups.push(("core", core_url.as_str(), 1));
        let name = if edges == 1 {
            "core + 1 edge"
        } else {
            "core + 2 edges"
        };
        runs.push(measure(name, &servers, &groups, args.subscriptions, secs)?);
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
            "- {}: {:.3} CPU, {:.1} KB/s sent, {:.0} s window",
            run.name,
            s.cpu,
            s.written / 1e3,
            run.secs
        );
    }
}
