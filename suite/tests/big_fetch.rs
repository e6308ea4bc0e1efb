//! A follower that starts following a big topic keeps applying the other topics'
//! deltas while the big topic's snapshot is decoded and built (on the follower's
//! decoding thread), and then holds both topics exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clonewire_core::Seq;
use clonewire_suite::{FollowEvent, Follower, FollowerConfig, Publisher, PublisherConfig};
use serde_json::json;

/// Tasks in the big topic: a snapshot of a few MB.
const TASKS: u64 = 30_000;

fn caught_up(f: &Follower, suite: &Publisher, topic: &str) -> bool {
    let want = suite.topic_state(topic);
    f.seq(topic) == Some(want.seq) && f.topic(topic).map(|t| t.hash()) == Some(want.hash)
}

#[test]
fn other_topics_deltas_keep_flowing_while_a_big_snapshot_is_built() {
    let mut config = PublisherConfig::new("big-fetch");
    config.heartbeat_ms = 100;
    let suite = Publisher::start(config).expect("publisher starts");
    let mut big_bytes = 0;
    for chunk in 0..TASKS / 1000 {
        let patch: serde_json::Map<String, serde_json::Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|n| {
                let task = json!({"name": format!("t{n}"), "state": "waiting", "cycle": "1", "n": n});
                (format!("1/t{n}"), task)
            })
            .collect();
        let patch = serde_json::Value::Object(patch);
        big_bytes += serde_json::to_vec(&patch).unwrap().len();
        suite.publish("taskProxies", patch).unwrap();
    }
    let config = FollowerConfig::new(suite.pub_endpoint(), suite.rep_endpoint());
    assert!(
        big_bytes > config.decode_elsewhere_bytes * 3 / 2,
        "the big topic ({big_bytes} bytes) is decoded off the follower's thread"
    );
    suite
        .publish("workflow", json!({"status": "running", "n": 0}))
        .unwrap();

    let mut config = config;
    config.machine.topics = Some(vec!["workflow".into()]);
    config.machine.retry.request_timeout = Duration::from_secs(20);
    let mut f = Follower::connect(config).expect("follower connects");
    let start = Instant::now();
    let end = start + Duration::from_secs(10);
    while !(f.is_synced() && caught_up(&f, &suite, "workflow") && f.last_heard() > start) {
        assert!(Instant::now() < end, "joined the small topic");
        f.next_event(Duration::from_millis(20)).expect("follower runs");
    }

    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The small topic changes every 2 ms (for at most 60 s) while the big one is fetched.
        scope.spawn(|| {
            for n in 1..=30_000u64 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                suite.publish("workflow", json!({ "n": n })).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fetch_big_topic_while_small_one_flows(&mut f)
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
    // Both topics end exactly as the suite holds them.
    let end = Instant::now() + Duration::from_secs(10);
    while !(f.is_synced() && caught_up(&f, &suite, "workflow") && caught_up(&f, &suite, "taskProxies")) {
        assert!(Instant::now() < end, "caught up on both topics: {:?}", f.stats());
        f.next_event(Duration::from_millis(20)).expect("follower runs");
    }
    let stats = f.stats();
    assert_eq!(
        (stats.malformed, stats.timeouts, stats.mismatches),
        (0, 0, 0),
        "{stats:?}"
    );
}

/// Follows the big topic too, and checks what arrives until its snapshot is in.
fn fetch_big_topic_while_small_one_flows(f: &mut Follower) {
    let mut last = f.seq("workflow").expect("the small topic is followed");
    f.set_topics(Some(["taskProxies".to_owned(), "workflow".to_owned()].into()))
        .expect("topics change");
    let mut while_building = 0;
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        assert!(Instant::now() < end, "the big topic is fetched: {:?}", f.stats());
        let Some(event) = f.next_event(Duration::from_millis(20)).expect("follower runs") else {
            continue;
        };
        match event {
            FollowEvent::Delta {
                topic, seq, changes, ..
            } if topic == "workflow" => {
                // Every delta of the small topic, in order, with what was published.
                assert_eq!(seq, last.next(), "no delta skipped or reordered");
                last = seq;
                let n = seq.0 - 1;
                assert_eq!(changes.to_patch(), json!({ "n": n }));
                if f.machine().decoding() {
                    while_building += 1;
                }
            }
            FollowEvent::Reset { topic, seq, .. } if topic == "taskProxies" => {
                assert!(seq >= Seq(TASKS / 1000));
                break;
            }
            FollowEvent::Delta { topic, .. } | FollowEvent::Reset { topic, .. } => {
                panic!("an unexpected change of {topic}")
            }
            FollowEvent::Malformed { .. }
            | FollowEvent::Mismatch { .. }
            | FollowEvent::Timeout { .. }
            | FollowEvent::Refused { .. } => panic!("{event:?}"),
            _ => {}
        }
    }
    assert!(
        while_building > 0,
        "the small topic's deltas were applied while the big snapshot was built"
    );
}
