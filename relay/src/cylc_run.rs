//! `--cylc-run DIR`: one link per running Cylc 8 workflow under DIR, added when its
//! contact file appears and removed a while after it goes.
//!
//! A thread scans DIR every second ([`clonewire_cylc::discovery`]). A new workflow
//! gets a link thread like any suite's, following a
//! [`CylcUpstream`](crate::upstream::cylc::CylcUpstream), and every client already
//! subscribed to it is bound. A workflow whose contact file went shows as `stopped`
//! (its scheduler said `shutdown`, or stops answering) for `cylc_linger_secs`, then
//! is `removed`; a new run of it replaces the link at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clonewire_cylc::discovery::{Discovery, DiscoveryEvent, SCAN_INTERVAL};

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::relay::Relay;
use crate::suite_link::SuiteLink;
use crate::upstream::cylc::CylcUpstream;

/// Starts the discovery thread for `dir`; it stops when the relay shuts down.
pub(crate) fn spawn(
    relay: Arc<Relay>,
    dir: PathBuf,
    limits: Limits,
    linger: Duration,
    metrics: Arc<Metrics>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("cylc discovery".into())
        .spawn(move || run(&relay, Discovery::new(dir), &limits, linger, &metrics))
}

fn run(relay: &Relay, mut discovery: Discovery, limits: &Limits, linger: Duration, metrics: &Arc<Metrics>) {
    let shutdown = relay.shutdown_signal();
    // Workflows whose contact file went, and when.
    let mut gone: BTreeMap<String, Instant> = BTreeMap::new();
    // The links this thread added (others are configured suites).
    let mut ours: BTreeSet<String> = BTreeSet::new();
    while !*shutdown.borrow() {
        for event in discovery.scan() {
            match event {
                DiscoveryEvent::Added { id, run_dir, contact } => {
                    gone.remove(&id);
                    if !ours.contains(&id) && relay.link(&id).is_some() {
                        tracing::warn!(workflow = %id, "a Cylc workflow has the name of a suite; not followed");
                        continue;
                    }
                    tracing::info!(workflow = %id, endpoint = %contact.req_endpoint(), "cylc workflow running");
                    let opening = run_dir.clone();
                    let link_limits = limits.clone();
                    let spawned = SuiteLink::spawn_upstream(&id, limits, metrics.clone(), move || {
                        CylcUpstream::open(&opening, &link_limits)
                    });
                    match spawned {
                        Ok(link) => {
                            ours.insert(id);
                            relay.add_link(link);
                        }
                        Err(e) => tracing::error!(workflow = %id, error = %e, "cannot start a link thread"),
                    }
                }
                DiscoveryEvent::Removed { id } => {
                    tracing::info!(workflow = %id, "cylc workflow no longer running");
                    gone.insert(id, Instant::now());
                }
            }
        }
        let now = Instant::now();
        gone.retain(|id, since| {
            let keep = now.duration_since(*since) < linger;
            if !keep {
                relay.remove_link(id);
                ours.remove(id);
            }
            keep
        });
        let until = Instant::now() + SCAN_INTERVAL;
        while Instant::now() < until && !*shutdown.borrow() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
