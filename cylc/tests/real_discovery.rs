//! Discovery of real Cylc 8 schedulers (simulation mode) under a run directory.

use std::time::{Duration, Instant};

use clonewire_cylc::discovery::{Discovery, DiscoveryEvent, RunDir, SCAN_INTERVAL};
use clonewire_cylc::testing::{Sandbox, SMALL_FLOW};
use clonewire_zmq::discovery::Announcement;

/// Scans every `SCAN_INTERVAL` until an event comes, or `limit` passes.
fn next_events(discovery: &mut Discovery, limit: Duration) -> Vec<DiscoveryEvent> {
    let deadline = Instant::now() + limit;
    loop {
        let events = discovery.scan();
        if !events.is_empty() || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(SCAN_INTERVAL);
    }
}

#[test]
fn a_workflow_started_later_appears_and_its_stop_is_seen() {
    let mut sandbox = Sandbox::new();
    let mut discovery = Discovery::new(RunDir::new(sandbox.run_dir()));
    // A workflow installed but not running is not followed.
    sandbox.install("idle", SMALL_FLOW);
    assert!(discovery.scan().is_empty());

    let run = sandbox.play("late/run1", SMALL_FLOW);
    std::os::unix::fs::symlink(&run, sandbox.run_dir().join("late/runN")).unwrap();
    let started = Instant::now();
    let events = next_events(&mut discovery, Duration::from_secs(5));
    assert!(
        started.elapsed() <= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let [DiscoveryEvent::Added(found)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(
        found.id, "late/run1",
        "the id is relative to the run directory, runN not counted"
    );
    assert_eq!(found.path, run);
    assert_eq!(found.contact.version, "8.5.4");
    let process = found.contact.process().expect("Cylc writes its pid");
    assert!(!process.is_gone(), "the scheduler runs here: {process:?}");

    sandbox.stop("late/run1");
    let events = next_events(&mut discovery, Duration::from_secs(5));
    assert_eq!(
        events,
        [DiscoveryEvent::Removed {
            id: "late/run1".into(),
            path: run,
        }]
    );
}
