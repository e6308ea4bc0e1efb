//! The publisher and the follower over real sockets on 127.0.0.1: joining,
//! following, hash checks, and every repair path of docs/protocol.md, Suite link › Joining.

use std::time::{Duration, Instant};

use clonewire_core::{Schema, Seq};
use clonewire_suite::{
    FollowEvent, Follower, FollowerConfig, GapFound, HistoryLimits, Publisher, PublisherConfig, Rung,
};
use serde_json::{json, Value};

fn publisher(history: HistoryLimits) -> Publisher {
    let mut config = PublisherConfig::new("test-suite");
    config.heartbeat_ms = 50;
    config.history = history;
    config.busy_retry_ms = 50;
    config.schema = Schema::new([vec!["taskProxies"]]);
    Publisher::start(config).expect("publisher starts")
}

fn follower(suite: &Publisher) -> Follower {
    let mut config = FollowerConfig::new(suite.pub_endpoint(), suite.rep_endpoint());
    config.machine.retry.request_timeout = Duration::from_millis(500);
    config.machine.retry.backoff_min = Duration::from_millis(20);
    config.machine.retry.backoff_max = Duration::from_millis(200);
    Follower::connect(config).expect("follower connects")
}

fn task(n: u64, status: &str) -> Value {
    json!({ format!("1/t{n}"): {"name": format!("t{n}"), "status": status} })
}

/// Drives the follower until `done` holds (true) or 5 s pass (false), collecting events.
fn run_until(f: &mut Follower, events: &mut Vec<FollowEvent>, done: impl Fn(&Follower) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Some(event) = f.next_event(Duration::from_millis(20)).expect("follower runs") {
            events.push(event);
        }
        if done(f) {
            // Hand out whatever is already due, then stop.
            while let Some(event) = f.next_event(Duration::ZERO).expect("follower runs") {
                events.push(event);
            }
            return true;
        }
    }
    false
}

/// True when the follower holds exactly what the suite holds for `topic`.
fn caught_up(f: &Follower, suite: &Publisher, topic: &str) -> bool {
    let want = suite.topic_state(topic);
    f.is_synced() && f.seq(topic) == Some(want.seq) && f.topic(topic).map(|t| t.hash()) == Some(want.hash)
}

/// Joins, and waits until the stream is heard too: joining takes only requests, and
/// a SUB subscription reaches the suite a little later (what is published before
/// then is not sent to this follower at all).
fn join(f: &mut Follower, suite: &Publisher) -> Vec<FollowEvent> {
    let mut events = Vec::new();
    let start = Instant::now();
    assert!(
        run_until(f, &mut events, |f| caught_up(f, suite, "taskProxies")
            && f.last_heard() > start),
        "joined: {events:?}"
    );
    events
}

#[test]
fn follower_joins_then_applies_and_verifies_every_delta() {
    let suite = publisher(HistoryLimits::default());
    for n in 0..20 {
        suite.publish("taskProxies", task(n, "waiting")).unwrap();
    }
    let mut f = follower(&suite);
    let mut events = join(&mut f, &suite);
    assert!(events.iter().any(|e| matches!(e, FollowEvent::Joined { .. })));
    assert_eq!(f.name(), "test-suite");
    assert_eq!(f.schema(), &Schema::new([vec!["taskProxies"]]));
    for n in 0..20 {
        suite.publish("taskProxies", task(n, "running")).unwrap();
        suite
            .publish("workflow", json!({"status": "running", "n": n}))
            .unwrap();
    }
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    ) && caught_up(
        f, &suite, "workflow"
    )));
    let applied = events
        .iter()
        .filter(|e| matches!(e, FollowEvent::Delta { .. }))
        .count();
    assert!(applied >= 40, "{applied} deltas applied");
    let stats = f.stats();
    assert_eq!((stats.gaps, stats.mismatches), (0, 0), "{stats:?}");
    assert_eq!(
        f.topic("taskProxies").unwrap().to_value()["1/t7"]["status"],
        "running"
    );
    // The maintained hash is the hash of what the replica holds.
    let replica = f.topic("taskProxies").unwrap();
    assert_eq!(replica.hash(), replica.recompute_hash());
}

#[test]
fn an_empty_change_sends_nothing() {
    let suite = publisher(HistoryLimits::default());
    assert!(suite
        .publish("taskProxies", task(1, "waiting"))
        .unwrap()
        .is_some());
    assert!(suite
        .publish("taskProxies", task(1, "waiting"))
        .unwrap()
        .is_none());
    assert!(suite
        .publish("taskProxies", json!({"1/nobody": null}))
        .unwrap()
        .is_none());
    assert_eq!(suite.topic_state("taskProxies").seq, Seq(1));
    assert!(
        suite.publish("_hb", json!({"x": 1})).is_err(),
        "reserved topic names are refused"
    );
}

#[test]
fn a_lost_delta_is_repaired_by_replay() {
    let suite = publisher(HistoryLimits::default());
    suite.publish("taskProxies", task(1, "waiting")).unwrap();
    let mut f = follower(&suite);
    let mut events = join(&mut f, &suite);
    suite.publish_unsent("taskProxies", task(2, "waiting")).unwrap();
    suite.publish("taskProxies", task(3, "waiting")).unwrap();
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        FollowEvent::Gap {
            have: Seq(1),
            seen: Seq(3),
            found: GapFound::ByDelta,
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        FollowEvent::Repaired {
            rung: Rung::Replay,
            seq: Seq(3),
            ..
        }
    )));
    assert_eq!(f.stats().repairs_replay, 1);
    assert_eq!(
        f.topic("taskProxies").unwrap().to_value()["1/t2"]["status"],
        "waiting"
    );
}

#[test]
fn a_heartbeat_reveals_a_lost_last_delta() {
    let suite = publisher(HistoryLimits::default());
    suite.publish("taskProxies", task(1, "waiting")).unwrap();
    let mut f = follower(&suite);
    let mut events = join(&mut f, &suite);
    suite.publish_unsent("taskProxies", task(1, "running")).unwrap();
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        FollowEvent::Gap {
            found: GapFound::ByHeartbeat,
            seen: Seq(2),
            ..
        }
    )));
    assert_eq!(f.stats().repairs_replay, 1);
}

#[test]
fn when_history_is_gone_only_the_differing_children_are_fetched() {
    let suite = publisher(HistoryLimits {
        max_deltas: 2,
        max_bytes: 1 << 20,
        ..HistoryLimits::default()
    });
    for n in 1..=50 {
        suite.publish("taskProxies", task(n, "waiting")).unwrap();
    }
    let mut f = follower(&suite);
    let mut events = join(&mut f, &suite);
    // Lost: a change to t2, a new t60, t3 deleted; then more than history keeps.
    suite.publish_unsent("taskProxies", task(2, "running")).unwrap();
    suite.publish_unsent("taskProxies", task(60, "waiting")).unwrap();
    suite
        .publish_unsent("taskProxies", json!({"1/t3": null}))
        .unwrap();
    for n in 4..9 {
        suite.publish("taskProxies", task(n, "submitted")).unwrap();
    }
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    )));
    let reset = events.iter().rev().find_map(|e| match e {
        FollowEvent::Reset { changes, .. } => Some(changes.len()),
        _ => None,
    });
    assert!(
        events.iter().any(|e| matches!(
            e,
            FollowEvent::Repaired {
                rung: Rung::Hashes,
                ..
            }
        )),
        "{events:?}"
    );
    // t2's status (1), t60's two leaves (2), t3's two leaves (2), and the statuses of
    // t4..t8 if the repair ran after they were published: never the 100 leaves held.
    assert!(
        reset.is_some_and(|n| (5..=10).contains(&n)),
        "only what differed was reported: {reset:?}"
    );
    assert_eq!((f.stats().repairs_hashes, f.stats().repairs_snapshot), (1, 0));
}

#[test]
fn a_busy_suite_is_retried_until_it_answers() {
    let suite = publisher(HistoryLimits::default());
    suite.publish("taskProxies", task(1, "waiting")).unwrap();
    suite.set_busy(true);
    let mut f = follower(&suite);
    let mut events = Vec::new();
    run_until(&mut f, &mut events, |f| f.stats().busy >= 3);
    assert!(f.stats().busy >= 3, "{:?}", f.stats());
    assert!(!f.is_synced());
    assert!(events
        .iter()
        .any(|e| matches!(e, FollowEvent::Busy { op: "hello", .. })));
    suite.set_busy(false);
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    )));
}

#[test]
fn a_restart_is_followed_into_the_new_epoch() {
    let suite = publisher(HistoryLimits::default());
    for n in 0..5 {
        suite.publish("taskProxies", task(n, "running")).unwrap();
    }
    let mut f = follower(&suite);
    let mut events = join(&mut f, &suite);
    let old = f.epoch().unwrap().to_owned();
    let new = suite.restart();
    suite.publish("taskProxies", task(9, "waiting")).unwrap();
    assert!(run_until(&mut f, &mut events, |f| f.epoch()
        == Some(new.as_str())
        && caught_up(f, &suite, "taskProxies")));
    assert_ne!(old, new);
    assert!(events.iter().any(|e| matches!(e, FollowEvent::NewEpoch { .. })));
    assert_eq!(f.seq("taskProxies"), Some(Seq(1)));
    let value = f.topic("taskProxies").unwrap().to_value();
    assert_eq!(
        value.as_object().unwrap().len(),
        1,
        "the old epoch's tasks are gone: {value}"
    );
}

#[test]
fn a_suite_that_is_down_times_out_then_is_joined_when_it_comes_up() {
    let first = publisher(HistoryLimits::default());
    let (pub_ep, rep_ep) = (first.pub_endpoint().to_owned(), first.rep_endpoint().to_owned());
    drop(first);
    let mut config = FollowerConfig::new(&pub_ep, &rep_ep);
    config.machine.retry.request_timeout = Duration::from_millis(150);
    config.machine.retry.backoff_min = Duration::from_millis(20);
    config.machine.retry.backoff_max = Duration::from_millis(100);
    let mut f = Follower::connect(config).unwrap();
    let mut events = Vec::new();
    run_until(&mut f, &mut events, |f| f.stats().timeouts >= 2);
    assert!(f.stats().timeouts >= 2, "{:?}", f.stats());
    let mut again = PublisherConfig::new("test-suite");
    again.pub_endpoint = pub_ep;
    again.rep_endpoint = rep_ep;
    let suite = Publisher::start(again).expect("rebinds the same ports");
    suite.publish("taskProxies", task(1, "waiting")).unwrap();
    assert!(run_until(&mut f, &mut events, |f| caught_up(
        f,
        &suite,
        "taskProxies"
    )));
}

#[test]
fn malformed_requests_get_bad_request_and_the_suite_carries_on() {
    let suite = publisher(HistoryLimits::default());
    let ctx = zmq::Context::new();
    let ask = |frames: Vec<&[u8]>| -> Value {
        let req = ctx.socket(zmq::REQ).unwrap();
        req.set_linger(0).unwrap();
        req.set_rcvtimeo(2000).unwrap();
        req.connect(suite.rep_endpoint()).unwrap();
        req.send_multipart(frames, 0).unwrap();
        serde_json::from_slice(&req.recv_bytes(0).expect("a reply")).unwrap()
    };
    let reply = ask(vec![b"{not json"]);
    assert_eq!(reply["error"], "bad_request");
    assert!(reply["message"].as_str().unwrap().contains("not JSON"));
    assert_eq!(ask(vec![b"{}", b"{}"])["error"], "bad_request");
    assert_eq!(
        ask(vec![br#"{"op": "replay", "topic": 5, "from": 1}"#])["error"],
        "bad_request"
    );
    assert_eq!(ask(vec![br#"{"op": "launch"}"#])["error"], "unsupported");
    let hello = ask(vec![br#"{"op": "hello"}"#]);
    assert_eq!(hello["protocol"], "clonewire/1");
    assert_eq!(hello["heartbeat_ms"], 50);
}
