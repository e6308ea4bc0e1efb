//! `clonewire-faults`: runs the fault campaign for a while and prints the figures.
//! Exits 1 when a check failed.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clonewire_faults::CampaignConfig;

/// Kills and restarts suites and the relay, makes suites busy, drops, duplicates and
/// delays their messages, runs clients that never read or send garbage; at quiet
/// checkpoints every client must hold the projection of its suite's state.
#[derive(Parser, Debug)]
#[command(name = "clonewire-faults")]
struct Args {
    /// How long to inject faults, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// A quiet checkpoint at least this often, in seconds.
    #[arg(long, default_value_t = 30.0)]
    checkpoint_every: f64,
    /// Checked clients.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// Suites (every second one has busy periods).
    #[arg(long, default_value_t = 3)]
    suites: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Use debug binaries instead of release ones.
    #[arg(long)]
    debug: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = CampaignConfig::new(Duration::from_secs_f64(args.minutes.max(0.0) * 60.0));
    config.checkpoint_every = Duration::from_secs_f64(args.checkpoint_every.max(1.0));
    config.clients = args.clients.max(1);
    config.suites = args.suites.max(1);
    config.seed = args.seed;
    config.profile = if args.debug { "debug" } else { "release" }.into();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(clonewire_faults::run(config));
    println!("{report}");
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
