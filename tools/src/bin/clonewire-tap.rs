//! `clonewire-tap`: follows a suite like a relay does (subscribe, hello, snapshot,
//! apply in order, verify every hash, repair gaps) and prints one line per delta.
//! With `--check SECS` it exits non-zero if anything is left unrepaired.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use clonewire_core::Changes;
use clonewire_suite::{FollowEvent, FollowStats, Follower, FollowerConfig, GapFound, Rung};
use clonewire_zmq::sockets::{CurveClient, CurveKeyPair, CurvePublicKey};

/// How long `--check` waits past its end for repairs under way to finish.
const GRACE: Duration = Duration::from_secs(5);
/// Changed paths shown per delta line.
const PATHS_SHOWN: usize = 3;
/// Characters shown per path.
const PATH_CHARS: usize = 60;

/// Follows a clonewire suite and prints its stream, verifying every hash.
#[derive(Parser, Debug)]
#[command(name = "clonewire-tap", version)]
struct Args {
    /// The suite's PUB endpoint, e.g. tcp://127.0.0.1:5560.
    #[arg(required_unless_present = "generate_keys")]
    sub_endpoint: Option<String>,
    /// The suite's REP endpoint, e.g. tcp://127.0.0.1:5561.
    #[arg(required_unless_present = "generate_keys")]
    rep_endpoint: Option<String>,
    /// The suite uses CURVE: its public key (Z85, 40 characters). The tap uses an
    /// ephemeral key pair of its own unless --client-key-file is given.
    #[arg(long, value_name = "KEY", conflicts_with = "server_key_file")]
    server_key: Option<String>,
    /// Like --server-key, read from a file (e.g. one written by --generate-keys).
    #[arg(long, value_name = "FILE")]
    server_key_file: Option<PathBuf>,
    /// With a server key: the tap's own CURVE key pair, as --generate-keys writes it
    /// (FILE and FILE.pub), for suites that admit only listed followers.
    #[arg(long, value_name = "FILE")]
    client_key_file: Option<PathBuf>,
    /// Write a new CURVE key pair (for a suite or a follower) and exit: the secret key to FILE (mode
    /// 0600, never overwritten) and the public key to FILE.pub, also printed.
    #[arg(long, value_name = "FILE", exclusive = true)]
    generate_keys: Option<PathBuf>,
    /// Run this many seconds, print a one-line summary and exit 1 if any topic is
    /// left unrepaired (or the suite was never joined).
    #[arg(long, value_name = "SECS")]
    check: Option<f64>,
    /// Follow only this topic (repeatable); default: every topic.
    #[arg(long = "topic", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Print only repairs, epochs and the summary, not every delta.
    #[arg(short, long)]
    quiet: bool,
    /// Deadline of each request, in milliseconds; a late request is retried on a
    /// fresh socket.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    timeout_ms: u64,
}

fn abbreviate(changes: &Changes) -> String {
    let mut shown: Vec<String> = changes
        .leaves
        .iter()
        .take(PATHS_SHOWN)
        .map(|c| {
            let path = c.path.get(1..).unwrap_or_default().join(".");
            let sign = match (&c.old, &c.new) {
                (None, _) => "+",
                (_, None) => "-",
                _ => "",
            };
            let mut text: String = path.chars().take(PATH_CHARS).collect();
            if path.chars().count() > PATH_CHARS {
                text.push('…');
            }
            format!("{sign}{text}")
        })
        .collect();
    if changes.len() > PATHS_SHOWN {
        shown.push(format!("(+{} more)", changes.len() - PATHS_SHOWN));
    }
    shown.join(" ")
}

/// The line for an event, or `None` when `quiet` hides it.
fn line(event: &FollowEvent, quiet: bool) -> Option<String> {
    Some(match event {
        FollowEvent::Delta {
            topic,
            seq,
            bytes,
            changes,
            ..
        } => {
            if quiet {
                return None;
            }
            format!(
                "{topic} #{seq} {bytes}B {}: {}",
                changes.len(),
                abbreviate(changes)
            )
        }
        FollowEvent::Reset {
            topic, seq, changes, ..
        } => {
            if quiet {
                return None;
            }
            format!("{topic} #{seq} snapshot: {} leaves differ", changes.len())
        }
        FollowEvent::Joined { name, epoch, topics } => {
            format!("* joined {name} epoch {epoch} ({topics} topics)")
        }
        FollowEvent::NewEpoch { epoch } => format!("* new epoch {epoch}: following afresh"),
        FollowEvent::Bye { epoch } => format!("* goodbye from epoch {epoch}"),
        FollowEvent::Gap {
            topic,
            have,
            seen,
            found,
        } => format!(
            "! gap in {topic}: have #{have}, {} #{seen}",
            match found {
                GapFound::ByHeartbeat => "heartbeat says",
                GapFound::ByDelta => "received",
            }
        ),
        FollowEvent::Mismatch {
            topic,
            seq,
            expected,
            got,
            ..
        } => format!("! hash mismatch in {topic} #{seq}: suite {expected}, ours {got}"),
        FollowEvent::Repaired { topic, seq, rung } => format!(
            "+ repaired {topic} at #{seq} by {}",
            match rung {
                Rung::Replay => "replay",
                Rung::Hashes => "hashes",
                Rung::Snapshot => "snapshot",
            }
        ),
        FollowEvent::Busy { op, retry_in } => {
            format!("~ suite busy ({op}); retry in {} ms", retry_in.as_millis())
        }
        FollowEvent::Timeout { op } => format!("~ {op} timed out; reconnecting"),
        FollowEvent::Refused { op, code, message } => format!("! {op} refused: {code:?}: {message}"),
        FollowEvent::Malformed { reason } => format!("! malformed: {reason}"),
        FollowEvent::Stale { silent_for } => format!("~ nothing heard for {:.1} s", silent_for.as_secs_f64()),
    })
}

fn summary(stats: &FollowStats, unrepaired: usize) -> String {
    format!(
        "deltas {}, {:.1} KiB, gaps {}, repairs: replay {}, hashes {}, snapshot {}; mismatches {}, unrepaired {}, \
         epochs {}, busy {}, timeouts {}, dropped unread {}",
        stats.deltas,
        stats.bytes as f64 / 1024.0,
        stats.gaps,
        stats.repairs_replay,
        stats.repairs_hashes,
        stats.repairs_snapshot,
        stats.mismatches,
        unrepaired,
        stats.joins,
        stats.busy,
        stats.timeouts,
        stats.dropped,
    )
}

/// Writes a new key pair: the secret to `path` (0600, created, never replaced), the
/// public key to `path.pub`. Returns the public key.
fn generate_keys(path: &Path) -> Result<String, String> {
    let pair = CurveKeyPair::generate().map_err(|e| e.to_string())?;
    let mut public_path = path.as_os_str().to_owned();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut secret = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(secret, "{}", pair.secret.0).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&public_path, format!("{}\n", pair.public.0))
        .map_err(|e| format!("{}: {e}", public_path.display()))?;
    Ok(pair.public.0)
}

/// The CURVE settings the flags ask for, if any.
fn curve(args: &Args) -> Result<Option<CurveClient>, String> {
    let text = match (&args.server_key, &args.server_key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("--server-key-file {}: {e}", path.display()))?
        }
        (None, None) if args.client_key_file.is_some() => {
            return Err("--client-key-file needs --server-key or --server-key-file".into())
        }
        (None, None) => return Ok(None),
    };
    let server_key = CurvePublicKey::parse(&text).map_err(|why| format!("server key: {why}"))?;
    match &args.client_key_file {
        Some(path) => CurveKeyPair::from_file(path)
            .map(|keys| Some(CurveClient { server_key, keys }))
            .map_err(|e| e.to_string()),
        None => CurveClient::ephemeral(server_key)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(path) = &args.generate_keys {
        return match generate_keys(path) {
            Ok(public) => {
                println!("{public}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let curve = match curve(&args) {
        Ok(curve) => curve,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (Some(sub_endpoint), Some(rep_endpoint)) = (&args.sub_endpoint, &args.rep_endpoint) else {
        eprintln!("error: give the suite's PUB and REP endpoints");
        return ExitCode::from(2);
    };
    let check = match args.check.map(Duration::try_from_secs_f64) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            eprintln!("error: --check must be a number of seconds");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, Ordering::Release)) {
        eprintln!("error: cannot handle Ctrl-C: {e}");
        return ExitCode::from(1);
    }
    let mut config = FollowerConfig::new(sub_endpoint, rep_endpoint);
    config.curve = curve;
    config.machine.topics = (!args.topics.is_empty()).then_some(args.topics);
    config.machine.retry.request_timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut follower = match Follower::connect(config) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = BufWriter::new(std::io::stdout().lock());
    let end = check.map(|d| Instant::now() + d);
    let mut pending_lines = 0;
    loop {
        let now = Instant::now();
        let past_end = end.is_some_and(|e| now >= e);
        let past_grace = end.is_some_and(|e| now >= e + GRACE);
        if stop.load(Ordering::Acquire) || past_grace || (past_end && follower.is_synced()) {
            break;
        }
        match follower.next_event(Duration::from_millis(100)) {
            Ok(Some(event)) => {
                if let Some(text) = line(&event, args.quiet) {
                    if writeln!(out, "{text}").is_err() {
                        return ExitCode::SUCCESS; // stdout closed: nobody is reading
                    }
                    pending_lines += 1;
                }
                if pending_lines >= 100 {
                    let _ = out.flush();
                    pending_lines = 0;
                }
            }
            Ok(None) => {
                let _ = out.flush();
                pending_lines = 0;
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let unrepaired = follower.untrusted().len();
    let joined = follower.stats().joins > 0;
    let ok = joined && unrepaired == 0;
    let verdict = match (check.is_some(), ok, joined) {
        (false, _, _) => "",
        (true, true, _) => " - OK",
        (true, false, false) => " - FAILED: never joined the suite",
        (true, false, true) => " - FAILED: unrepaired topics",
    };
    let _ = writeln!(out, "{}{verdict}", summary(follower.stats(), unrepaired));
    let _ = out.flush();
    if check.is_some() && !ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
