//! `clonewire-relay`: command-line parsing, logging and signals around
//! [`clonewire_relay::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clonewire_relay::config::{Config, SuiteConfig};

/// mimalloc: a large Cylc burst allocates and frees per changed leaf, and mimalloc
/// makes that path about a quarter faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Follows clonewire suites over ZeroMQ and serves their live state to browsers.
///
/// HTTP and websockets share one port: `/` is the page, `/ws` the client link,
/// `/healthz` a JSON health report and `/metrics` Prometheus metrics.
#[derive(Parser, Debug)]
#[command(name = "clonewire-relay", version, about, long_about)]
struct Args {
    /// Address for HTTP and websockets [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// A suite to follow, as NAME=PUB_ENDPOINT,REP_ENDPOINT (repeatable), e.g.
    /// demo=tcp://127.0.0.1:5560,tcp://127.0.0.1:5561.
    #[arg(long = "suite", value_name = "NAME=PUB,REP", value_parser = SuiteConfig::parse_flag)]
    suites: Vec<SuiteConfig>,
    /// A TOML file with the same settings plus limits; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also run simulated suites in this process and follow them.
    #[arg(long)]
    demo: bool,
    /// Follow every running Cylc 8 workflow under this run directory (e.g.
    /// ~/cylc-run), started before or after the relay. Overrides cylc_run.
    #[arg(long, value_name = "DIR")]
    cylc_run: Option<PathBuf>,
    /// Follow every clonewire suite announced by a contact file in DIR (repeatable;
    /// added to discover): suites run with `--contact-dir DIR` (or the library's
    /// contact_dir) write DIR/NAME.json with their endpoints, CURVE public key, host
    /// and pid. New ones are followed within about a second; one whose file goes is
    /// shown stopped, then removed after discover_linger_secs; a stale file (its
    /// process gone, nothing answering) is reported, then dropped. See
    /// docs/discovery.md.
    #[arg(long = "discover", value_name = "DIR")]
    discover: Vec<PathBuf>,
    /// Follow another relay as its client (relay tiers): every workflow it lists, as
    /// ws://HOST:PORT/ws (repeatable; a ?token=... is sent on). Adds to follow_relay.
    #[arg(long = "follow-relay", value_name = "URL")]
    follow_relays: Vec<String>,
    /// Serve the page from this folder instead of the copy built into the binary.
    #[arg(long, value_name = "DIR")]
    www: Option<PathBuf>,
    /// Require a signed token on /ws: a file holding the HMAC secret (at least 32
    /// bytes, mode 0600). Overrides [auth] jwt_secret / jwt_secret_file.
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Only pages from this exact origin (e.g. https://ops.example.org) may open /ws
    /// (repeatable); replaces [auth] allowed_origins.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// With --allowed-origin, also accept clients that send no Origin header
    /// (non-browser clients).
    #[arg(long)]
    allow_no_origin: bool,
    /// The relay's own CURVE key pair for CURVE suites (FILE: secret key, mode 0600;
    /// FILE.pub: public key; make them with `clonewire-tap --generate-keys FILE`), for
    /// suites that admit only listed followers. Overrides curve_key_file.
    #[arg(long, value_name = "FILE")]
    curve_key_file: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log: String,
}

fn config(args: Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    for suite in args.suites {
        config.suites.retain(|s| s.name != suite.name);
        config.suites.push(suite);
    }
    config.demo |= args.demo;
    if let Some(dir) = args.cylc_run {
        config.cylc_run = Some(dir);
    }
    for dir in args.discover {
        if !config.discover.contains(&dir) {
            config.discover.push(dir);
        }
    }
    for url in args.follow_relays {
        if !config.follow_relays.contains(&url) {
            config.follow_relays.push(url);
        }
    }
    if let Some(www) = args.www {
        if !www.is_dir() {
            return Err(format!("--www {}: not a folder", www.display()));
        }
        config.www = Some(www);
    }
    if let Some(file) = args.jwt_secret_file {
        config.auth.jwt_secret = None;
        config.auth.jwt_secret_file = Some(file);
    }
    if !args.allowed_origins.is_empty() {
        config.auth.allowed_origins = Some(args.allowed_origins);
    }
    config.auth.allow_no_origin |= args.allow_no_origin;
    if let Some(file) = args.curve_key_file {
        config.curve_key_file = Some(file);
    }
    if config.suites.is_empty()
        && !config.demo
        && config.cylc_run.is_none()
        && config.discover.is_empty()
        && config.follow_relays.is_empty()
    {
        return Err(
            "nothing to follow: give --suite NAME=PUB,REP (or --config FILE), --cylc-run DIR, --discover DIR, --follow-relay URL, or --demo"
                .into(),
        );
    }
    // Reads the secret and key files now, so a missing or short one is a config error.
    config.check().map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&args.log));
    let filter = match filter {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: --log {:?}: {e}", args.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    let config = match config(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if config.demo {
        tracing::warn!(
            "--demo: following {} simulated suites run in this process",
            config.demo_suites
        );
    }
    if !config.auth.requires_token() {
        tracing::warn!(
            "no [auth] jwt_secret: /ws needs no token, so anyone who can reach {} sees every workflow",
            config.listen
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(clonewire_relay::run(config, shutdown_signal()));
    // The relay has waited for what it started; a blocking task still running (a
    // frame being deflated) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
