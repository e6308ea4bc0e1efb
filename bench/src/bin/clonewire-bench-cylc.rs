//! `clonewire-bench-cylc`: clonewire-relay side by side with cylc-uiserver on real
//! Cylc workflows (see the "Cylc" section of `docs/benchmarks.md`).
//!
//! Without a subcommand it is the orchestrator (see `cylc::run`); `floor` and
//! `clients` are the processes it starts. Every child is stopped at the end, every
//! wait is bounded, all traffic stays on loopback, and timing never fails the run.

#[path = "../cylc/mod.rs"]
mod cylc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cylc::clients::{Plan, Side};
use cylc::run::{Cell, Probe, Setup};

/// Measures clonewire-relay and cylc-uiserver on the same real Cylc workflows.
#[derive(Parser, Debug)]
#[command(name = "clonewire-bench-cylc")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// A short run (under two minutes): the steady workload, one client.
    #[arg(long)]
    quick: bool,
    /// Workloads to run: steady, burst, sniffer, isolation (default: all).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Client counts (default 1,10,100).
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Sides to run: uis, relay, browser (default all three). `browser` is Chromium
    /// running the wasm client with three views through the relay, on the burst and
    /// sniffer workloads only (C = 1).
    #[arg(long, value_delimiter = ',')]
    sides: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// The raw ZeroMQ subscriber (the floor).
    Floor {
        /// A workflow's run directory (repeat for several).
        #[arg(long = "run-dir", required = true)]
        run_dirs: Vec<PathBuf>,
        /// Upper bound on the run, seconds.
        #[arg(long)]
        secs: f64,
        /// Where batches go, one JSON line each.
        #[arg(long)]
        out: PathBuf,
    },
    /// C websocket clients in one process.
    Clients {
        /// Which server.
        #[arg(long, value_enum)]
        side: Side,
        /// Its websocket URL (loopback).
        #[arg(long)]
        url: String,
        /// cylc-uiserver's token.
        #[arg(long, default_value = "")]
        token: String,
        /// Full workflow ids (`~user/name`), comma-separated.
        #[arg(long, value_delimiter = ',')]
        workflows: Vec<String>,
        /// Connections.
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Seconds to receive.
        #[arg(long, default_value_t = 30.0)]
        secs: f64,
        /// Only time the join of each client.
        #[arg(long)]
        join_only: bool,
        /// The floor's output, to match latencies.
        #[arg(long)]
        floor: Option<PathBuf>,
        /// A file that may hold the Unix ms of a burst's release.
        #[arg(long)]
        mark: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.mode {
        Some(Mode::Floor { run_dirs, secs, out }) => match cylc::floor::run(&run_dirs, secs, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: floor: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Mode::Clients {
            side,
            url,
            token,
            workflows,
            clients,
            secs,
            join_only,
            floor,
            mark,
        }) => {
            if !url.starts_with("ws://127.") {
                eprintln!("error: --url must be a loopback address");
                return ExitCode::from(2);
            }
            let plan = Plan {
                side,
                url,
                token,
                workflows,
                clients,
                secs: secs.clamp(0.0, 3600.0),
                join_only,
            };
            let report = cylc::clients::run(plan, floor.as_deref(), mark.as_deref());
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        None => orchestrate(&args),
    }
}

fn orchestrate(args: &Args) -> ExitCode {
    let venv = std::env::var_os("CLONEWIRE_CYLC_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/cylc-venv"),
        PathBuf::from,
    );
    if !venv.join("bin/cylc").exists() {
        println!(
            "clonewire-bench-cylc: SKIPPED: no Cylc at {} (run scripts/lib/setup.sh, or set CLONEWIRE_CYLC_VENV)",
            venv.display()
        );
        return ExitCode::SUCCESS;
    }
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scratch = std::env::temp_dir().join(format!("clonewire-bench-cylc-{}", std::process::id()));
    let setup = Setup {
        venv,
        me,
        relay: cylc::run::find_relay(),
        scratch: scratch.clone(),
    };
    let all = cylc::run::workloads(args.quick);
    let wanted: Vec<String> = if args.quick {
        vec!["steady".into()]
    } else if args.workloads.is_empty() {
        all.iter().map(|w| w.name.to_owned()).collect()
    } else {
        args.workloads.clone()
    };
    let counts = if args.quick {
        vec![1]
    } else if args.clients.is_empty() {
        vec![1, 10, 100]
    } else {
        args.clients.clone()
    };
    let sides: Vec<Side> = [Side::Uis, Side::Relay]
        .into_iter()
        .filter(|s| {
            args.sides.is_empty()
                || args
                    .sides
                    .iter()
                    .any(|a| a == if *s == Side::Uis { "uis" } else { "relay" })
        })
        .collect();
    for s in &args.sides {
        if !["uis", "relay", "browser"].contains(&s.as_str()) {
            eprintln!("error: unknown side {s} (uis, relay, browser)");
            return ExitCode::from(2);
        }
    }
    let browser = !args.quick && (args.sides.is_empty() || args.sides.iter().any(|s| s == "browser"));
    for w in &wanted {
        if !all.iter().any(|x| x.name == w) {
            eprintln!("error: unknown workload {w} (steady, burst, sniffer, isolation)");
            return ExitCode::from(2);
        }
    }
    println!("# clonewire-bench-cylc: Cylc workflows, cylc-uiserver vs clonewire-relay");
    println!("venv: {}", setup.venv.display());
    if let Err(why) = &setup.relay {
        println!("clonewire side: SKIPPED ({why})");
    }
    let mut cells: Vec<Cell> = Vec::new();
    let mut index = 0;
    for w in all.iter().filter(|w| wanted.iter().any(|n| n == w.name)) {
        for &c in &counts {
            for &side in &sides {
                index += 1;
                if side == Side::Relay {
                    if let Err(why) = &setup.relay {
                        cells.push(Cell::skipped(w.name, side, c, why));
                        continue;
                    }
                }
                eprintln!("[{}] {} C={c} ...", w.name, side_name(side));
                let cell = cylc::run::cell(&setup, w, side, c, index, Probe::Clients);
                // Each row as soon as it is measured, so a cut run keeps its figures.
                eprintln!("{}", cylc::table::row(w, &cell));
                cells.push(cell);
            }
        }
    }
    // The browser part: Chromium with the wasm client and three views, through the relay.
    let mut pages: Vec<(&str, Result<cylc::browser::BrowserReport, String>, f64)> = Vec::new();
    if browser {
        let ready = setup
            .relay
            .clone()
            .map(|_| ())
            .and_then(|()| cylc::browser::available());
        for w in all
            .iter()
            .filter(|w| wanted.iter().any(|n| n == w.name) && (w.name == "burst" || w.name == "sniffer"))
        {
            if let Err(why) = &ready {
                pages.push((w.name, Err(format!("SKIPPED ({why})")), 0.0));
                continue;
            }
            index += 1;
            eprintln!("[{}] browser (wasm client, three views) ...", w.name);
            let cell = cylc::run::cell(&setup, w, Side::Relay, 1, index, Probe::Browser);
            let report = match (cell.report, cell.browser) {
                (_, Some(b)) => Ok(b),
                (Err(e), None) => Err(e),
                (Ok(_), None) => Err("the browser gave no report".into()),
            };
            eprintln!("{}", cylc::browser::row(w.name, &report, cell.load));
            pages.push((w.name, report, cell.load));
        }
    }
    cylc::table::print(&all, &cells);
    if !pages.is_empty() {
        println!();
        println!("In Chromium: the wasm client with the page's tree, table and graph views, through the");
        println!("relay; per frame, from its websocket `message` event to the last view callback it caused.");
        println!("Burst frames tell a view of >= 200 task proxies or jobs. Goal: <= 50 ms.");
        println!();
        println!("{}", cylc::browser::HEADER);
        println!("|---|---|---|---|---|---|---|---|");
        for (name, report, load) in &pages {
            println!("{}", cylc::browser::row(name, report, *load));
        }
    }
    if std::env::var_os("CLONEWIRE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        println!("scratch kept at {}", scratch.display());
    }
    ExitCode::SUCCESS
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Uis => "cylc-uiserver",
        Side::Relay => "clonewire-relay",
    }
}
