//! `clonewire-sim`: a simulated Cylc-like suite on a PUB and a REP socket.
//! Prints one JSON line with the bound endpoints, logs to stderr, and on Ctrl-C or
//! SIGTERM says goodbye (`_bye`) and exits 0. With `--contact-dir DIR` it announces
//! itself there for relays run with `--discover DIR`, and removes the file as it stops.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use clonewire_suite::sim::{SimConfig, Simulator};
use clonewire_zmq::sockets::{CurvePublicKey, CurveSecretKey};

/// Plays realistic workflows in the model of a real Cylc 8 workflow seen through the
/// relay (task proxies through waiting, preparing, submitted, running, succeeded or
/// failed, with their jobs; cycles spawned and pruned; pauses now and then) as a
/// clonewire suite.
#[derive(Parser, Debug)]
#[command(name = "clonewire-sim", version)]
struct Args {
    /// The suite's (workflow's) name, reported by `hello`.
    #[arg(long, default_value = "demo")]
    name: String,
    /// Where the PUB socket (deltas, heartbeats) binds; port 0 picks a free port.
    #[arg(long = "pub", value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:5560")]
    pub_endpoint: String,
    /// Where the REP socket (hello, snapshot, verify, replay, hashes, get) binds.
    #[arg(long = "rep", value_name = "ENDPOINT", default_value = "tcp://127.0.0.1:5561")]
    rep_endpoint: String,
    /// About how many tasks are live at once (spread over a few cycles).
    #[arg(long, value_name = "N", default_value_t = 200)]
    tasks: usize,
    /// Deltas per second, over all topics.
    #[arg(long, value_name = "DELTAS_PER_S", default_value_t = 50.0)]
    rate: f64,
    /// Seed of the workflow's choices: the same seed plays the same workflow.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Every SECS seconds, simulate a slow config reload: requests are answered
    /// `busy` for --busy-for seconds (deltas keep flowing).
    #[arg(long, value_name = "SECS")]
    busy_every: Option<f64>,
    /// How long each busy period lasts.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    busy_for: f64,
    /// Fraction of deltas (0..1) applied and counted but never sent, so subscribers
    /// must detect the gap and repair it.
    #[arg(long, value_name = "FRACTION", default_value_t = 0.0)]
    drop: f64,
    /// Every SECS seconds, restart: a new epoch, a fresh store, seqs from 1.
    #[arg(long, value_name = "SECS")]
    restart_every: Option<f64>,
    /// Publish the first state, then no events (heartbeats go on): a workflow of
    /// fixed size, for measuring joins. Logs "holding still" once it is published.
    #[arg(long)]
    still: bool,
    /// Interval between `_hb` heartbeats, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Encrypt both sockets with CURVE using the suite's secret key in FILE (Z85,
    /// mode 0600; make one with `clonewire-tap --generate-keys FILE`). Followers
    /// then need the public key (FILE.pub).
    #[arg(long, value_name = "FILE")]
    curve_secret_key_file: Option<PathBuf>,
    /// With --curve-secret-key-file: admit only followers whose CURVE public keys are
    /// listed in FILE, one per line (the first word; lines starting with "# " are
    /// comments). Without it, any follower
    /// that knows the suite's public key is admitted.
    #[arg(long, value_name = "FILE", requires = "curve_secret_key_file")]
    curve_allow_file: Option<PathBuf>,
    /// Announce the suite with a contact file in DIR (made if missing): DIR/NAME.json,
    /// JSON with the name, the PUB and REP endpoints as bound, the CURVE public key (if
    /// any), host and pid, written atomically once the sockets are bound and removed on
    /// Ctrl-C or SIGTERM. `clonewire-relay --discover DIR` follows every suite
    /// announced there (see docs/discovery.md).
    #[arg(long, value_name = "DIR")]
    contact_dir: Option<PathBuf>,
    /// Every SECS seconds, print what the publisher holds as one JSON line on stdout,
    /// `{"held": {"store_leaves", "history_bytes", "history_deltas", "feed_bytes"}}`,
    /// and log it.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    report_every: f64,
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--{flag} must be a positive number of seconds, got {secs}"))
}

fn config(args: Args) -> Result<(SimConfig, Duration), String> {
    let report_every = seconds("report-every", args.report_every)?;
    let curve_secret_key = args
        .curve_secret_key_file
        .as_deref()
        .map(CurveSecretKey::from_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    let curve_allowed_clients = args
        .curve_allow_file
        .as_deref()
        .map(CurvePublicKey::list_from_file)
        .transpose()
        .map_err(|e| e.to_string())?;
    let config = SimConfig {
        curve_secret_key,
        curve_allowed_clients,
        contact_dir: args.contact_dir,
        busy_every: args.busy_every.map(|s| seconds("busy-every", s)).transpose()?,
        busy_for: seconds("busy-for", args.busy_for)?,
        restart_every: args
            .restart_every
            .map(|s| seconds("restart-every", s))
            .transpose()?,
        pub_endpoint: args.pub_endpoint,
        rep_endpoint: args.rep_endpoint,
        tasks: args.tasks,
        rate: args.rate,
        seed: args.seed,
        drop: args.drop,
        still: args.still,
        heartbeat_ms: args.heartbeat_ms,
        ..SimConfig::new(args.name)
    };
    Ok((config, report_every))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let (config, report_every) = match config(Args::parse()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let (tx, rx) = mpsc::sync_channel(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    }) {
        eprintln!("error: cannot handle Ctrl-C: {e}");
        return ExitCode::from(1);
    }
    let sim = match Simulator::start(config) {
        Ok(sim) => sim,
        Err(clonewire_suite::Error::Link(clonewire_zmq::Error::Config(message))) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut announced =
        serde_json::json!({"name": sim.name(), "pub": sim.pub_endpoint(), "rep": sim.rep_endpoint()});
    if let Some(file) = sim.contact_file() {
        announced["contact"] = file.display().to_string().into();
    }
    println!("{announced}");
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(report_every) {
        let held = sim.held();
        tracing::info!(%held, "held");
        // A reader that went away is not the suite's problem: the line is dropped.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::json!({ "held": held })
        );
    }
    tracing::info!("stopping");
    sim.stop();
    ExitCode::SUCCESS
}
