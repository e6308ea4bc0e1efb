//! The browser part: headless Chromium running the wasm client with the page's three
//! views on a workflow the relay follows (`bench/cylc/browser.mjs`, run with Node and
//! playwright-core), timing each frame from its websocket `message` event to the last
//! view callback it caused, inside the page.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// p50 / p99 / max of one set of frames, ms.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Frames.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The client's own counters at the end (from `client.inspect()`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Counters {
    /// Deltas applied.
    pub deltas: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Resyncs asked for.
    pub resyncs: u64,
    /// Hash mismatches found.
    pub hash_mismatches: u64,
}

/// Frames whose handling threw in the page.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Failed {
    /// How many.
    pub n: usize,
    /// The first error's message.
    pub first: Option<String>,
}

/// What the script prints: one JSON line.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrowserReport {
    /// `message` event to the last view told, every such frame.
    pub told: Option<Summary>,
    /// The same for burst frames (a view told of >= 200 task proxies or jobs).
    pub burst: Option<Summary>,
    /// Of that, `message` event to the text inflated, for deflated burst frames.
    pub burst_inflate: Option<Summary>,
    /// The largest frame's text, bytes.
    pub biggest: usize,
    /// The most task proxies or jobs one view was told of in one frame.
    pub biggest_entries: usize,
    /// The client's counters.
    pub counters: Counters,
    /// Frames the socket received.
    pub received: usize,
    /// Frames whose handling threw.
    pub failed: Failed,
    /// Why nothing was measured (the script's SKIPPED).
    pub skipped: Option<String>,
    /// Why the script failed.
    pub error: Option<String>,
}

/// The script, beside this crate's workloads.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cylc/browser.mjs")
}

/// Where Chromium is (`CHROMIUM`, as `scripts/lib/browser.mjs` reads it).
fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Ok when the browser part can run here, else why not.
pub fn available() -> Result<(), String> {
    if !script().exists() {
        return Err(format!("no {}", script().display()));
    }
    if !chromium().exists() {
        return Err(format!("no Chromium at {} (set CHROMIUM)", chromium().display()));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("no node: {e}"))?;
    if !node.status.success() {
        return Err("node --version failed".into());
    }
    let playwright = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node_modules/playwright-core");
    if !playwright.exists() {
        return Err("no node_modules/playwright-core (npm ci)".into());
    }
    Ok(())
}

/// The script's command: the page at `url` (the relay's, `http://127.0.0.1:P/`),
/// following `workflow` for `secs`.
pub fn command(url: &str, workflow: &str, secs: f64) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(script())
        .args(["--url", url, "--workflow", workflow])
        .args(["--secs", &format!("{secs:.0}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

fn ms(s: Option<&Summary>) -> String {
    s.map_or_else(
        || "–".into(),
        |s| format!("{:.0} / {:.0} / {:.0} ({})", s.p50, s.p99, s.max, s.n),
    )
}

/// The header of the browser table.
pub const HEADER: &str = "| workload | burst frames: message to every view told, ms p50 / p99 / max (frames) | of which inflating | all frames told, ms | largest frame | most tasks in one frame | client: deltas, snapshots, resyncs, hash mismatches | load avg |";

/// One workload's row.
pub fn row(workload: &str, report: &Result<BrowserReport, String>, load: f64) -> String {
    match report {
        Err(e) => format!("| {workload} | {e} | | | | | | |"),
        Ok(r) => match (&r.skipped, &r.error) {
            (Some(why), _) => format!("| {workload} | SKIPPED ({why}) | | | | | | |"),
            (_, Some(e)) => format!("| {workload} | error: {e} | | | | | | |"),
            _ if r.failed.n > 0 => format!(
                "| {workload} | {} of {} frames threw: {} | | | | | | {load:.1} |",
                r.failed.n,
                r.received,
                r.failed.first.as_deref().unwrap_or("?")
            ),
            _ => format!(
                "| {workload} | {} | {} | {} | {:.2} MB | {} | {}, {}, {}, {} | {load:.1} |",
                ms(r.burst.as_ref()),
                ms(r.burst_inflate.as_ref()),
                ms(r.told.as_ref()),
                r.biggest as f64 / 1e6,
                r.biggest_entries,
                r.counters.deltas,
                r.counters.snapshots,
                r.counters.resyncs,
                r.counters.hash_mismatches,
            ),
        },
    }
}
