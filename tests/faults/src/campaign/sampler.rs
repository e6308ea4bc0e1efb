//! Watching the relay during a campaign: its peak RSS and its last `/metrics` scrape
//! per process, sampled on a thread of their own, and whether `/healthz` says every
//! workflow is live.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::procs::{http_get, rss_bytes};

/// What the sampling thread records, shared with the campaign.
pub(super) struct Sampler {
    /// The relay process being watched (it changes when the relay restarts).
    pub(super) pid: AtomicU32,
    /// The highest RSS seen, in bytes.
    pub(super) peak: AtomicU64,
    /// The last scrape of each relay process, by pid.
    pub(super) scrapes: Mutex<BTreeMap<u32, BTreeMap<String, f64>>>,
}

/// Samples the relay's RSS every 200 ms (its peak is kept) and scrapes its
/// `/metrics` every second, until `stop`.
pub(super) fn sample(sampler: &Sampler, stop: &AtomicBool, addr: SocketAddr, _bound: u64) {
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if let Some(rss) = rss_bytes(sampler.pid.load(Ordering::Relaxed)) {
            sampler.peak.fetch_max(rss, Ordering::Relaxed);
        }
        if tick % 5 == 0 {
            scrape(sampler, addr);
        }
        tick += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// True when the relay's `/healthz` says every workflow is `live`.
pub(super) fn relay_all_live(addr: SocketAddr) -> bool {
    let Some(text) = http_get(addr, "/healthz") else {
        return false;
    };
    let Ok(health) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    health["workflows"]
        .as_object()
        .is_some_and(|w| !w.is_empty() && w.values().all(|s| s["state"] == "live"))
}

/// Scrapes `/metrics` into the current relay process's slot.
pub(super) fn scrape(sampler: &Sampler, addr: SocketAddr) {
    let pid = sampler.pid.load(Ordering::Relaxed);
    let Some(text) = http_get(addr, "/metrics") else {
        return;
    };
    let wanted = [
        "clonewire_repairs_total",
        "clonewire_suite_problems_total",
        "clonewire_conflations_total",
        "clonewire_bridges_total",
        "clonewire_overflows_total",
        "clonewire_handshakes_evicted_total",
        "clonewire_rate_limited_total",
        "clonewire_bad_client_messages_total",
        "clonewire_deltas_in_total",
    ];
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if wanted.iter().any(|w| name.starts_with(w)) {
            if let Ok(v) = value.parse::<f64>() {
                values.insert(name.to_owned(), v);
            }
        }
    }
    // The pid is read before the scrape: a scrape that raced a restart is dropped.
    if sampler.pid.load(Ordering::Relaxed) == pid {
        sampler
            .scrapes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, values);
    }
}
