//! The orchestrator: for every workload, side and client count, a fresh throwaway
//! HOME with the workload's workflows, their schedulers (`cylc play --no-detach
//! --mode=simulation`), the floor, the server under test and one client process;
//! samples the server's CPU and memory from `/proc`, releases the burst, starts a late
//! client to time a join, then stops everything and prints one table.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clonewire_bench::cylc_home::{CylcHome, GRACE};
use clonewire_bench::process::{free_port, wait_for, Proc};
use clonewire_bench::{cpu_secs, now_ms, peak_rss_mib};

use super::browser::BrowserReport;
use super::clients::Side;
use super::Report;

/// What measures a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `clonewire-bench-cylc clients` processes (and a late client).
    Clients,
    /// Chromium running the wasm client with three views (the relay only).
    Browser,
}

/// One workflow of a workload: its name in `cylc-run` and its `flow.cylc`.
pub struct Flow {
    /// Name under `cylc-run`.
    pub name: &'static str,
    /// The `flow.cylc` text.
    pub text: &'static str,
    /// Start it paused (the burst resumes it).
    pub paused: bool,
}

/// What the orchestrator does at a given second of the window.
pub enum Release {
    /// `cylc set <arg>`: completes a task's outputs.
    Set(&'static str),
    /// `cylc play <workflow>`: resumes a paused workflow.
    Resume(&'static str),
}

/// A workload of the issue.
pub struct Workload {
    /// Short name, as `--workloads` takes it.
    pub name: &'static str,
    /// Its workflows.
    pub flows: Vec<Flow>,
    /// The burst, if any, and when (seconds into the window).
    pub release: Option<(f64, Release)>,
    /// When a late client joins (seconds into the window).
    pub late_join: f64,
    /// Length of the window in seconds.
    pub secs: f64,
    /// The workflow whose latency the table reports before and during the burst.
    pub watch: Option<&'static str>,
}

const STEADY: &str = include_str!("../../cylc/steady/flow.cylc");
const BURST: &str = include_str!("../../cylc/burst/flow.cylc");
const SNIFFER: &str = include_str!("../../cylc/sniffer/flow.cylc");
const SMALL: &str = include_str!("../../cylc/small/flow.cylc");

/// The workloads (`quick`: shorter windows).
pub fn workloads(quick: bool) -> Vec<Workload> {
    let flow = |name, text| Flow {
        name,
        text,
        paused: false,
    };
    vec![
        Workload {
            name: "steady",
            flows: vec![flow("steady", STEADY)],
            release: None,
            late_join: if quick { 12.0 } else { 40.0 },
            secs: if quick { 20.0 } else { 60.0 },
            watch: None,
        },
        Workload {
            name: "burst",
            flows: vec![flow("burst", BURST)],
            release: Some((15.0, Release::Set("burst//1/gate"))),
            late_join: 45.0,
            secs: 90.0,
            watch: None,
        },
        Workload {
            name: "sniffer",
            flows: vec![flow("sniffer", SNIFFER)],
            release: None,
            late_join: 120.0,
            secs: 150.0,
            watch: None,
        },
        Workload {
            name: "isolation",
            flows: vec![
                flow("small", SMALL),
                Flow {
                    name: "sniffer",
                    text: SNIFFER,
                    paused: true,
                },
            ],
            release: Some((50.0, Release::Resume("sniffer"))),
            late_join: 130.0,
            secs: 150.0,
            watch: Some("small"),
        },
    ]
}

/// Where things are.
pub struct Setup {
    /// The Python venv holding cylc-flow and cylc-uiserver.
    pub venv: PathBuf,
    /// This binary (spawned as the floor and the client processes).
    pub me: PathBuf,
    /// The relay binary, or why the clonewire side is skipped.
    pub relay: Result<PathBuf, String>,
    /// Scratch directory of this run.
    pub scratch: PathBuf,
}

/// The relay binary when it can follow Cylc schedulers (`--cylc-run` in its help).
pub fn find_relay() -> Result<PathBuf, String> {
    let path = match std::env::var_os("CLONEWIRE_RELAY") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("clonewire-relay"),
    };
    if !path.exists() {
        return Err("clonewire-relay is not built (cargo build --release -p clonewire-relay)".into());
    }
    let help = Command::new(&path)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run clonewire-relay --help: {e}"))?;
    if String::from_utf8_lossy(&help.stdout).contains("--cylc-run") {
        Ok(path)
    } else {
        Err("clonewire-relay has no --cylc-run yet".into())
    }
}

/// One cell's results.
pub struct Cell {
    /// Workload name.
    pub workload: &'static str,
    /// Side.
    pub side: Side,
    /// Client count.
    pub clients: usize,
    /// The client process's report, or why there is none.
    pub report: Result<Report, String>,
    /// The late client's report.
    pub late: Option<Report>,
    /// Server CPU s/s over the window, and the busiest 5 s.
    pub cpu: (f64, f64),
    /// Schedulers' CPU s/s over the window.
    pub sched_cpu: f64,
    /// Server peak RSS, MiB.
    pub rss: f64,
    /// Batches the floor received and their largest size, bytes.
    pub floor: (usize, usize),
    /// The client process's CPU s/s (to show it is not the bottleneck).
    pub client_cpu: f64,
    /// The machine's 1-minute load average at the end of the window.
    pub load: f64,
    /// What Chromium measured, for a [`Probe::Browser`] cell.
    pub browser: Option<BrowserReport>,
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Starts a child of a cell (see [`GRACE`]).
fn start_child(name: &str, command: &mut Command) -> Result<Proc, String> {
    Proc::spawn(name, command).map(|p| p.with_grace(GRACE))
}

/// How often a bounded wait asks again.
const POLL: Duration = Duration::from_millis(200);

/// A random-enough token for cylc-uiserver (loopback only, one run).
fn token() -> String {
    format!("{:x}{:x}", std::process::id(), (now_ms() * 1000.0) as u64)
}

/// Runs one cell.
pub fn cell(setup: &Setup, w: &Workload, side: Side, clients: usize, index: usize, probe: Probe) -> Cell {
    let mut out = Cell {
        workload: w.name,
        side,
        clients,
        report: Err(String::new()),
        late: None,
        cpu: (0.0, 0.0),
        sched_cpu: 0.0,
        rss: 0.0,
        floor: (0, 0),
        client_cpu: 0.0,
        load: 0.0,
        browser: None,
    };
    out.report = cell_inner(setup, w, side, clients, index, probe, &mut out);
    out
}

fn cell_inner(
    setup: &Setup,
    w: &Workload,
    side: Side,
    clients: usize,
    index: usize,
    probe: Probe,
    out: &mut Cell,
) -> Result<Report, String> {
    let dir = setup
        .scratch
        .join(format!("{index:02}-{}-{side:?}-{clients}-{probe:?}", w.name));
    let io = |e: std::io::Error| e.to_string();
    let cylc_home = CylcHome::new(&dir.join("home"), &setup.venv)?;
    let run = cylc_home.run_dir();
    // Schedulers first: they take seconds to start.
    let mut schedulers = Vec::new();
    for f in &w.flows {
        let log = dir.join(format!("{}.log", f.name));
        schedulers.push(cylc_home.play(f.name, f.text, f.paused, &log)?);
    }
    let mut owner = String::from("root");
    for f in &w.flows {
        owner = cylc_home.wait_publishing(f.name)?;
    }
    let ids: Vec<String> = w.flows.iter().map(|f| format!("~{owner}/{}", f.name)).collect();
    // The floor, for the whole cell.
    let floor_file = dir.join("floor.jsonl");
    let mut cmd = Command::new(&setup.me);
    cmd.arg("floor")
        .arg("--out")
        .arg(&floor_file)
        .args(["--secs", &(w.secs + 150.0).to_string()]);
    for f in &w.flows {
        cmd.arg("--run-dir").arg(run.join(f.name));
    }
    // Killed at once when dropped: its file is complete by then.
    let floor = Proc::spawn("floor", cmd.stdin(Stdio::null()))?.with_grace(Duration::ZERO);
    // The server.
    let port = free_port()?;
    let tok = token();
    let (server, url) = match side {
        Side::Uis => {
            let log_path = dir.join("uiserver.log");
            let log = std::fs::File::create(&log_path).map_err(io)?;
            let mut cmd = cylc_home.cylc();
            cmd.args([
                "gui",
                "--new",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
            ])
            .arg(format!("--ServerApp.port={port}"))
            .arg(format!("--IdentityProvider.token={tok}"))
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log);
            let p = start_child("cylc-uiserver", &mut cmd)?;
            // It scans cylc-run; wait until it has connected every workflow.
            wait_for("cylc-uiserver", Duration::from_secs(120), POLL, || {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                ids.iter()
                    .all(|id| log.contains(&format!("connect_workflow('{id}'")))
            })?;
            (p, format!("ws://127.0.0.1:{port}/cylc/subscriptions"))
        }
        Side::Relay => {
            let relay = setup.relay.as_ref().map_err(Clone::clone)?;
            let log = std::fs::File::create(dir.join("relay.log")).map_err(io)?;
            let mut cmd = Command::new(relay);
            cmd.arg("--cylc-run")
                .arg(&run)
                .args(["--listen", &format!("127.0.0.1:{port}"), "--log", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(io)?)
                .stderr(log);
            let p = start_child("clonewire-relay", &mut cmd)?;
            wait_for("clonewire-relay", Duration::from_secs(30), POLL, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            })?;
            (p, format!("ws://127.0.0.1:{port}/ws"))
        }
    };
    let client_cmd = |n: usize, secs: f64, join_only: bool| {
        let mut cmd = Command::new(&setup.me);
        cmd.args([
            "clients",
            "--side",
            if side == Side::Uis { "uis" } else { "relay" },
        ])
        .args(["--url", &url, "--token", &tok, "--workflows", &ids.join(",")])
        .args(["--clients", &n.to_string(), "--secs", &secs.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if join_only {
            cmd.arg("--join-only");
        } else {
            cmd.arg("--floor")
                .arg(&floor_file)
                .arg("--mark")
                .arg(dir.join("mark"));
        }
        cmd
    };
    let mut clients_proc = match probe {
        Probe::Clients => start_child("clients", &mut client_cmd(clients, w.secs, false))?,
        Probe::Browser => {
            let main = w
                .flows
                .iter()
                .rev()
                .find(|f| Some(f.name) != w.watch)
                .map_or(w.name, |f| f.name);
            let page = format!("http://127.0.0.1:{port}/");
            start_child("browser", &mut super::browser::command(&page, main, w.secs))?
        }
    };
    let rx = clients_proc.lines().ok_or("no stdout")?;
    // The window: sample CPU each second, release the burst, start the late client.
    let start = Instant::now();
    let server_pid = server.pid();
    let sched_pids: Vec<u32> = schedulers.iter().map(Proc::pid).collect();
    let sched_cpu = || sched_pids.iter().filter_map(|p| cpu_secs(*p)).sum::<f64>();
    let (cpu0, sched0) = (cpu_secs(server_pid).unwrap_or(0.0), sched_cpu());
    let client_pid = clients_proc.pid();
    let mut client_cpu = 0.0;
    let mut samples = vec![cpu0];
    let mut released = w.release.is_none();
    let mut late: Option<(Proc, mpsc::Receiver<String>)> = None;
    let mut report = None;
    let deadline = start + Duration::from_secs_f64(w.secs + 120.0);
    while Instant::now() < deadline && report.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        let t = start.elapsed().as_secs_f64();
        if t <= w.secs + 1.0 {
            samples.push(cpu_secs(server_pid).unwrap_or(0.0));
            client_cpu = cpu_secs(client_pid).unwrap_or(client_cpu);
            out.load = load_average();
        }
        if !released {
            if let Some((at, what)) = &w.release {
                if t >= *at {
                    released = true;
                    let _ = std::fs::write(dir.join("mark"), format!("{}", now_ms()));
                    let mut cmd = cylc_home.cylc();
                    match what {
                        Release::Set(arg) => cmd.args(["set", arg]),
                        Release::Resume(wf) => cmd.args(["play", wf]),
                    };
                    // In the background: the command takes a second or two.
                    if let Ok(mut p) = start_child("release", cmd.stdout(Stdio::null()).stderr(Stdio::null()))
                    {
                        std::thread::spawn(move || {
                            let deadline = Instant::now() + Duration::from_secs(60);
                            while Instant::now() < deadline && !p.exited() {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        });
                    }
                }
            }
        }
        if late.is_none() && t >= w.late_join && probe == Probe::Clients {
            if let Ok(mut p) = start_child("late client", &mut client_cmd(1, 60.0, true)) {
                if let Some(lrx) = p.lines() {
                    late = Some((p, lrx));
                }
            }
        }
        while let Ok(line) = rx.try_recv() {
            match probe {
                Probe::Clients => {
                    if let Ok(r) = serde_json::from_str::<Report>(&line) {
                        report = Some(r);
                    }
                }
                Probe::Browser => {
                    if let Ok(b) = serde_json::from_str::<BrowserReport>(&line) {
                        out.browser = Some(b);
                        report = Some(Report::default());
                    }
                }
            }
        }
    }
    let window = (samples.len() - 1).max(1) as f64;
    out.cpu.0 = (samples.last().copied().unwrap_or(cpu0) - cpu0) / window;
    out.cpu.1 = samples
        .windows(6)
        .map(|s| (s[5] - s[0]) / 5.0)
        .fold(out.cpu.0, f64::max);
    out.sched_cpu = (sched_cpu() - sched0) / start.elapsed().as_secs_f64();
    out.client_cpu = client_cpu / window;
    out.rss = peak_rss_mib(server_pid).unwrap_or(0.0);
    if let Some((_p, lrx)) = &late {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until && out.late.is_none() {
            if let Ok(line) = lrx.recv_timeout(Duration::from_millis(500)) {
                out.late = serde_json::from_str::<Report>(&line).ok();
            }
        }
    }
    drop(late);
    drop(server);
    drop(schedulers);
    drop(clients_proc);
    // The floor's file is complete once it says so; it was read by the clients.
    let batches = super::read_batches(&floor_file, Duration::from_secs(1));
    out.floor = (batches.len(), batches.iter().map(|b| b.bytes).max().unwrap_or(0));
    drop(floor);
    report.ok_or_else(|| "the client process gave no report".to_owned())
}
