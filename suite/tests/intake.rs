//! A follower that falls behind its suite holds a bounded number of bytes of the
//! stream, drops the rest, and repairs what it dropped.

use std::time::{Duration, Instant};

use clonewire_suite::{Follower, FollowerConfig, HistoryLimits, Publisher, PublisherConfig};
use serde_json::json;

const INTAKE: usize = 2048;

fn caught_up(f: &Follower, suite: &Publisher, topic: &str) -> bool {
    let want = suite.topic_state(topic);
    f.is_synced() && f.seq(topic) == Some(want.seq) && f.topic(topic).map(|t| t.hash()) == Some(want.hash)
}

/// Drives the follower until it holds what the suite holds (true) or 10 s pass.
fn run_until_caught_up(f: &mut Follower, suite: &Publisher) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        f.next_event(Duration::from_millis(20)).expect("follower runs");
        assert!(f.intake_bytes() <= INTAKE);
        if caught_up(f, suite, "taskProxies") && !f.has_pending_events() {
            return true;
        }
    }
    false
}

#[test]
fn a_burst_bigger_than_the_intake_is_dropped_then_repaired() {
    let mut config = PublisherConfig::new("burst");
    config.heartbeat_ms = 50;
    config.history = HistoryLimits::default();
    let suite = Publisher::start(config).expect("publisher starts");
    suite
        .publish("taskProxies", json!({"1/t0": {"status": "waiting"}}))
        .unwrap();
    let mut config = FollowerConfig::new(suite.pub_endpoint(), suite.rep_endpoint());
    config.machine.retry.request_timeout = Duration::from_millis(500);
    config.machine.retry.backoff_min = Duration::from_millis(20);
    config.intake_bytes = INTAKE;
    let mut f = Follower::connect(config).expect("follower connects");
    assert!(run_until_caught_up(&mut f, &suite), "joined");

    // While the follower is not reading, the suite publishes far more than fits.
    let mut burst = 0;
    for n in 1..=1000u64 {
        let status = if n % 2 == 0 { "running" } else { "succeeded" };
        let patch = json!({ format!("1/t{}", n % 50): {"status": status, "n": n} });
        burst += serde_json::to_vec(&patch).unwrap().len();
        suite.publish("taskProxies", patch).unwrap();
    }
    assert!(burst > 10 * INTAKE, "the burst ({burst} bytes) dwarfs the intake");
    std::thread::sleep(Duration::from_millis(200));

    assert!(run_until_caught_up(&mut f, &suite), "repaired: {:?}", f.stats());
    let stats = f.stats();
    assert!(stats.dropped > 0, "some of the burst was dropped: {stats:?}");
    assert!(stats.gaps > 0 && stats.repairs_replay + stats.repairs_snapshot + stats.repairs_hashes > 0);
    assert!(
        f.intake_peak() > 0 && f.intake_peak() <= INTAKE,
        "peak {}",
        f.intake_peak()
    );
}
