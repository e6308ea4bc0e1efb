//! The state machine driven with no sockets: a scripted suite hands it frames and
//! replies, and the test moves the clock by passing `Instant`s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clonewire_core::protocol::encode;
use clonewire_core::protocol::suite::{
    Delta, ErrorCode, ErrorReply, GetReply, HashesReply, Heartbeat, HelloReply, PubMessage, ReplayReply,
    ReplayedDelta, Request, SnapshotReply, TopicSnapshot,
};
use clonewire_core::{Hash, Schema, Seq, Topic};
use serde_json::{json, Value};

use super::{FollowEvent, GapFound, Machine, MachineConfig, Phase, Rung};

const TIMEOUT: Duration = Duration::from_secs(5);
const MS: fn(u64) -> Duration = Duration::from_millis;

/// The suite's side, kept by hand: topics, their seqs and every delta published.
struct Suite {
    epoch: String,
    topics: BTreeMap<String, (Topic, Seq)>,
    history: BTreeMap<String, Vec<ReplayedDelta>>,
}

impl Suite {
    fn new(epoch: &str) -> Suite {
        Suite {
            epoch: epoch.into(),
            topics: BTreeMap::new(),
            history: BTreeMap::new(),
        }
    }

    /// Applies `patch` to `topic` and returns the PUB message's frames.
    fn publish(&mut self, topic: &str, patch: Value) -> Vec<Vec<u8>> {
        let (t, seq) = self
            .topics
            .entry(topic.into())
            .or_insert_with(|| (Topic::new(topic), Seq::ZERO));
        t.apply(&patch).unwrap();
        *seq = seq.next();
        let delta = Delta {
            epoch: self.epoch.clone(),
            seq: *seq,
            hash: t.hash(),
            time: Some(1.0),
            patch: patch.clone(),
        };
        self.history.entry(topic.into()).or_default().push(ReplayedDelta {
            seq: *seq,
            hash: t.hash(),
            time: Some(1.0),
            patch,
        });
        frames(PubMessage::Delta {
            topic: topic.into(),
            delta,
        })
    }

    fn hello(&self) -> Vec<u8> {
        encode(&HelloReply {
            protocol: "clonewire/1".into(),
            name: "test".into(),
            epoch: self.epoch.clone(),
            heartbeat_ms: 1000,
            schema: Schema::default(),
            topics: BTreeMap::new(),
        })
    }

    fn snapshot(&self, names: Option<&[String]>) -> Vec<u8> {
        let topics = self
            .topics
            .iter()
            .filter(|(name, _)| names.is_none_or(|n| n.contains(name)))
            .map(|(name, (t, seq))| {
                let snap = TopicSnapshot {
                    seq: *seq,
                    hash: t.hash(),
                    value: t.to_value(),
                };
                (name.clone(), snap)
            })
            .collect();
        encode(&SnapshotReply {
            epoch: self.epoch.clone(),
            topics,
        })
    }

    fn replay(&self, topic: &str, from: Seq) -> Vec<u8> {
        let deltas = self.history[topic]
            .iter()
            .filter(|d| d.seq >= from)
            .cloned()
            .collect();
        encode(&ReplayReply {
            epoch: self.epoch.clone(),
            deltas,
        })
    }

    fn hashes(&self, topic: &str) -> Vec<u8> {
        let (t, seq) = &self.topics[topic];
        encode(&HashesReply {
            epoch: self.epoch.clone(),
            seq: *seq,
            hash: t.hash(),
            children: t
                .root()
                .iter()
                .map(|(k, n)| (k.to_owned(), Hash(n.hash())))
                .collect(),
        })
    }

    fn get(&self, topic: &str, paths: &[Vec<String>]) -> Vec<u8> {
        let (t, seq) = &self.topics[topic];
        let value = t.to_value();
        encode(&GetReply {
            epoch: self.epoch.clone(),
            seq: *seq,
            values: paths
                .iter()
                .map(|p| value.get(&p[0]).cloned().unwrap_or(Value::Null))
                .collect(),
        })
    }

    /// Answers `request` as a suite with its whole history would.
    fn answer(&self, request: &Request) -> Vec<u8> {
        match request {
            Request::Hello => self.hello(),
            Request::Snapshot { topics } => self.snapshot(topics.as_deref()),
            Request::Replay { topic, from } => self.replay(topic, *from),
            Request::Hashes { topic, .. } => self.hashes(topic),
            Request::Get { topic, paths } => self.get(topic, paths),
            Request::Verify { .. } | Request::Command { .. } => error(ErrorCode::Unsupported),
        }
    }

    fn heartbeat(&self) -> Vec<Vec<u8>> {
        frames(PubMessage::Heartbeat(Heartbeat {
            epoch: self.epoch.clone(),
            time: None,
            seqs: self.topics.iter().map(|(k, (_, s))| (k.clone(), *s)).collect(),
        }))
    }
}

fn frames(message: PubMessage) -> Vec<Vec<u8>> {
    let (topic, body) = message.encode();
    vec![topic, body]
}

fn error(code: ErrorCode) -> Vec<u8> {
    encode(&ErrorReply::new(code, "no"))
}

fn machine(now: Instant) -> Machine {
    let mut config = MachineConfig::default();
    config.retry.request_timeout = TIMEOUT;
    Machine::new(config, now)
}

fn events(m: &mut Machine) -> Vec<FollowEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// Answers every request as `suite` would until none is due; returns the events.
fn settle(m: &mut Machine, suite: &Suite, now: Instant) -> Vec<FollowEvent> {
    let mut out = Vec::new();
    for _ in 0..20 {
        let Some(request) = m.poll_request(now) else {
            break;
        };
        m.handle_reply(&suite.answer(&request), now);
        out.extend(events(m));
    }
    out
}

fn holds(m: &Machine, suite: &Suite, topic: &str) -> bool {
    let (t, seq) = &suite.topics[topic];
    m.topic(topic) == Some(t) && m.seq(topic) == Some(*seq)
}

fn joined(suite: &Suite, now: Instant) -> Machine {
    let mut m = machine(now);
    settle(&mut m, suite, now);
    assert_eq!(m.phase(), Phase::Following);
    assert!(m.is_synced());
    m
}

fn repaired(events: &[FollowEvent]) -> Vec<Rung> {
    events
        .iter()
        .filter_map(|e| match e {
            FollowEvent::Repaired { rung, .. } => Some(*rung),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_by_hello_then_snapshot_keeping_deltas_published_meanwhile() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = machine(t0);
    assert_eq!(m.poll_request(t0), Some(Request::Hello));
    assert_eq!(m.poll_request(t0), None, "one request out at a time");
    m.handle_reply(&suite.hello(), t0);
    assert_eq!(m.phase(), Phase::Joining);
    let snapshot = m.poll_request(t0).unwrap();
    assert_eq!(snapshot, Request::Snapshot { topics: None });
    let reply = suite.answer(&snapshot);
    // Published after the snapshot was taken, received before its reply.
    let late = suite.publish("tasks", json!({"b": 2}));
    m.handle_stream(&late, t0);
    assert!(events(&mut m).is_empty(), "held until joined");
    m.handle_reply(&reply, t0);
    let seen = events(&mut m);
    assert!(matches!(&seen[0], FollowEvent::Reset { seq: Seq(1), .. }));
    assert!(matches!(&seen[1], FollowEvent::Delta { seq: Seq(2), .. }));
    assert!(matches!(&seen[2], FollowEvent::Joined { topics: 1, .. }));
    assert!(m.is_synced());
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn a_gap_is_repaired_by_replay() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = joined(&suite, t0);
    let _lost = suite.publish("tasks", json!({"a": 2}));
    let third = suite.publish("tasks", json!({"c": 3}));
    m.handle_stream(&third, t0);
    let seen = events(&mut m);
    assert!(matches!(
        &seen[..],
        [FollowEvent::Gap {
            have: Seq(1),
            seen: Seq(3),
            ..
        }]
    ));
    assert!(!m.is_synced());
    assert_eq!(
        m.poll_request(t0),
        Some(Request::Replay {
            topic: "tasks".into(),
            from: Seq(2)
        })
    );
    m.handle_reply(&suite.replay("tasks", Seq(2)), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Replay]);
    assert!(holds(&m, &suite, "tasks"));
    assert_eq!(m.stats().repairs_replay, 1);
}

#[test]
fn a_hash_mismatch_fetches_only_the_differing_children() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": {"x": 1}, "b": {"y": 2}}));
    let mut m = joined(&suite, t0);
    let mut lying = suite.publish("tasks", json!({"a": {"x": 5}}));
    // The suite's hash says something else happened too.
    suite.publish("tasks", json!({"b": {"y": 7}}));
    let lie: Delta = serde_json::from_slice(&lying[1]).unwrap();
    let honest_hash = suite.topics["tasks"].0.hash();
    lying[1] = encode(&Delta {
        hash: honest_hash,
        ..lie
    });
    m.handle_stream(&lying, t0);
    assert!(matches!(
        &events(&mut m)[..],
        [FollowEvent::Mismatch { seq: Seq(2), .. }]
    ));
    let hashes = m.poll_request(t0).unwrap();
    assert!(matches!(&hashes, Request::Hashes { topic, .. } if topic == "tasks"));
    m.handle_reply(&suite.hashes("tasks"), t0);
    let get = m.poll_request(t0).unwrap();
    let Request::Get { paths, .. } = &get else {
        panic!("expected get, got {get:?}");
    };
    assert_eq!(paths, &[vec!["b".to_owned()]], "only the child that differs");
    m.handle_reply(&suite.answer(&get), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Hashes]);
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn busy_is_retried_after_the_suites_hint() {
    let t0 = Instant::now();
    let suite = Suite::new("e1");
    let mut m = machine(t0);
    assert_eq!(m.poll_request(t0), Some(Request::Hello));
    let busy = encode(&ErrorReply {
        retry_ms: Some(300),
        ..ErrorReply::new(ErrorCode::Busy, "later")
    });
    m.handle_reply(&busy, t0);
    assert!(
        matches!(&events(&mut m)[..], [FollowEvent::Busy { op: "hello", retry_in }] if *retry_in == MS(300))
    );
    assert_eq!(m.poll_timeout(), Some(t0 + MS(300)));
    assert_eq!(m.poll_request(t0 + MS(299)), None);
    assert_eq!(m.poll_request(t0 + MS(300)), Some(Request::Hello));
    m.handle_reply(&suite.hello(), t0 + MS(300));
    assert_eq!(m.phase(), Phase::Joining);
}

#[test]
fn gone_history_falls_back_to_hashes_then_a_snapshot() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = joined(&suite, t0);
    suite.publish("tasks", json!({"a": 2}));
    suite.publish("tasks", json!({"a": 3}));
    m.handle_stream(&suite.heartbeat(), t0);
    assert!(matches!(
        &events(&mut m)[..],
        [FollowEvent::Gap {
            found: GapFound::ByHeartbeat,
            ..
        }]
    ));
    assert!(matches!(
        m.poll_request(t0),
        Some(Request::Replay { from: Seq(2), .. })
    ));
    m.handle_reply(&error(ErrorCode::Gone), t0);
    assert!(events(&mut m).is_empty(), "`gone` is routine, not a refusal");
    assert!(matches!(m.poll_request(t0), Some(Request::Hashes { .. })));
    m.handle_reply(&error(ErrorCode::Unsupported), t0);
    let snapshot = m.poll_request(t0).unwrap();
    assert_eq!(
        snapshot,
        Request::Snapshot {
            topics: Some(vec!["tasks".into()])
        }
    );
    m.handle_reply(&suite.answer(&snapshot), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Snapshot]);
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn a_new_epoch_starts_over_from_hello() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = joined(&suite, t0);
    let mut restarted = Suite::new("e2");
    let first = restarted.publish("tasks", json!({"z": 9}));
    m.handle_stream(&first, t0);
    let seen = events(&mut m);
    assert!(matches!(&seen[0], FollowEvent::NewEpoch { epoch } if epoch == "e2"));
    assert_eq!(m.phase(), Phase::Greeting);
    assert_eq!(m.poll_request(t0), Some(Request::Hello));
    m.handle_reply(&restarted.hello(), t0);
    let seen = settle(&mut m, &restarted, t0);
    assert!(seen
        .iter()
        .any(|e| matches!(e, FollowEvent::Joined { epoch, .. } if epoch == "e2")));
    assert!(holds(&m, &restarted, "tasks"));
    // The old epoch's late messages are ignored.
    m.handle_stream(&suite.publish("tasks", json!({"a": 2})), t0);
    assert!(events(&mut m).is_empty());
    assert!(holds(&m, &restarted, "tasks"));
}

#[test]
fn a_request_past_its_deadline_is_given_up_then_retried_with_a_longer_one() {
    let t0 = Instant::now();
    let mut m = machine(t0);
    assert_eq!(m.poll_request(t0), Some(Request::Hello));
    assert_eq!(m.poll_timeout(), Some(t0 + TIMEOUT));
    assert!(!m.handle_timeout(t0 + TIMEOUT - MS(1)));
    assert!(m.handle_timeout(t0 + TIMEOUT), "the socket must be discarded");
    assert!(matches!(
        &events(&mut m)[..],
        [FollowEvent::Timeout { op: "hello" }]
    ));
    // Backs off (100 ms at first), then asks again with twice the deadline.
    let t1 = t0 + TIMEOUT;
    assert_eq!(m.poll_request(t1), None);
    assert_eq!(m.poll_timeout(), Some(t1 + MS(100)));
    let t2 = t1 + MS(100);
    assert_eq!(m.poll_request(t2), Some(Request::Hello));
    assert_eq!(m.poll_timeout(), Some(t2 + TIMEOUT * 2));
    // An answer: the next request's deadline is back to normal.
    let suite = Suite::new("e1");
    m.handle_reply(&suite.hello(), t2);
    assert_eq!(m.poll_request(t2), Some(Request::Snapshot { topics: None }));
    assert_eq!(m.poll_timeout(), Some(t2 + TIMEOUT));
}

#[test]
fn silence_is_reported_once_after_three_heartbeats() {
    let t0 = Instant::now();
    let suite = Suite::new("e1");
    let mut m = joined(&suite, t0);
    assert!(!m.handle_timeout(t0 + MS(3000)));
    assert!(events(&mut m).is_empty());
    let due = m.poll_timeout().unwrap();
    assert!(due > t0 + MS(3000) && due <= t0 + MS(3001));
    m.handle_timeout(due);
    assert!(matches!(&events(&mut m)[..], [FollowEvent::Stale { .. }]));
    m.handle_timeout(due + MS(5000));
    assert!(events(&mut m).is_empty(), "reported once");
    m.handle_stream(&suite.heartbeat(), due + MS(5000));
    assert_eq!(m.last_heard(), due + MS(5000));
}

#[test]
fn a_queue_that_grows_past_its_bound_is_dropped_for_a_snapshot() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 0}));
    let config = MachineConfig {
        max_queued: 3,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(config, t0);
    settle(&mut m, &suite, t0);
    suite.publish("tasks", json!({"a": 1})); // lost
    for i in 2..8 {
        let frames = suite.publish("tasks", json!({ "a": i }));
        m.handle_stream(&frames, t0);
    }
    events(&mut m);
    let request = m.poll_request(t0).unwrap();
    assert!(
        matches!(&request, Request::Snapshot { topics: Some(t) } if t == &["tasks"]),
        "{request:?}"
    );
    m.handle_reply(&suite.answer(&request), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Snapshot]);
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn garbage_is_reported_and_changes_nothing() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = joined(&suite, t0);
    m.handle_stream(&[b"tasks".to_vec()], t0);
    m.handle_stream(&[b"tasks".to_vec(), b"{not json".to_vec()], t0);
    let seen = events(&mut m);
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|e| matches!(e, FollowEvent::Malformed { .. })));
    assert!(m.is_synced());
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn a_queue_past_its_bound_in_bytes_is_dropped_for_a_snapshot() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 0}));
    let config = MachineConfig {
        max_queued_bytes: 400,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(config, t0);
    settle(&mut m, &suite, t0);
    suite.publish("tasks", json!({"a": 1})); // lost
    let mut requested = None;
    for i in 2..20 {
        let frames = suite.publish("tasks", json!({ "a": i, "pad": "x".repeat(40) }));
        m.handle_stream(&frames, t0);
        assert!(m.topics["tasks"].queued_bytes() <= 400);
        requested = requested.or_else(|| m.poll_request(t0));
    }
    events(&mut m);
    // The replay asked at the gap is now moot; its answer changes nothing.
    let replay = requested.unwrap();
    assert!(matches!(replay, Request::Replay { from: Seq(2), .. }));
    m.handle_reply(&error(ErrorCode::Gone), t0);
    let request = m.poll_request(t0).unwrap();
    assert!(matches!(&request, Request::Snapshot { .. }), "{request:?}");
    m.handle_reply(&suite.answer(&request), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Snapshot]);
    assert!(holds(&m, &suite, "tasks"));
}

#[test]
fn a_message_dropped_unread_is_a_gap_repaired_by_replay() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("tasks", json!({"a": 1}));
    let mut m = joined(&suite, t0);
    let dropped = suite.publish("tasks", json!({"a": 2}));
    m.handle_dropped(&dropped[0], t0);
    m.handle_dropped(b"_hb", t0);
    assert!(matches!(
        &events(&mut m)[..],
        [FollowEvent::Gap {
            have: Seq(1),
            seen: Seq(2),
            ..
        }]
    ));
    assert_eq!(m.stats().dropped, 2);
    let replay = m.poll_request(t0).unwrap();
    assert!(matches!(&replay, Request::Replay { from: Seq(2), .. }));
    m.handle_reply(&suite.answer(&replay), t0);
    assert_eq!(repaired(&events(&mut m)), [Rung::Replay]);
    assert!(holds(&m, &suite, "tasks"));
}

/// The `Delta` events' (topic, seq, patch of the changes) in order.
fn deltas(events: &[FollowEvent]) -> Vec<(String, Seq, Value)> {
    events
        .iter()
        .filter_map(|e| match e {
            FollowEvent::Delta {
                topic, seq, changes, ..
            } => Some((topic.clone(), *seq, changes.to_patch())),
            _ => None,
        })
        .collect()
}

#[test]
fn other_topics_deltas_flow_while_a_fetched_snapshot_is_decoded_elsewhere() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("b", json!({"n": 0}));
    for i in 0..2000 {
        suite.publish("a", json!({ format!("t{i}"): {"state": "waiting", "i": i} }));
    }
    let mut m = machine(t0);
    m.set_topics(Some(["b".to_owned()].into()));
    settle(&mut m, &suite, t0);
    assert!(m.is_synced() && holds(&m, &suite, "b"));

    // A client wants "a" too: it is fetched by snapshot, and its answer is taken out
    // of the machine to be decoded elsewhere.
    m.set_topics(Some(["a".to_owned(), "b".to_owned()].into()));
    let request = m.poll_request(t0).unwrap();
    assert_eq!(
        request,
        Request::Snapshot {
            topics: Some(vec!["a".into()])
        }
    );
    let reply = suite.answer(&request);
    let fetched = suite.topics["a"].0.to_value();
    let arrived = m.take_reply().unwrap();
    assert!(m.decoding() && !m.request_out());

    // Meanwhile both topics keep publishing, far past the request's deadline.
    let mut published_b = Vec::new();
    for n in 1..=5u64 {
        let b = suite.publish("b", json!({ "n": n }));
        let a = suite.publish("a", json!({ "t0": {"state": format!("s{n}")} }));
        let now = t0 + TIMEOUT * n as u32;
        m.handle_stream(&a, now);
        m.handle_stream(&b, now);
        assert!(
            !m.handle_timeout(now),
            "no deadline runs while the answer is decoded"
        );
        assert_eq!(m.poll_request(now), None, "nothing else is asked meanwhile");
        published_b.push(("b".to_owned(), Seq(n + 1), json!({ "n": n })));
    }
    let during = events(&mut m);
    assert_eq!(deltas(&during), published_b, "b's deltas, in order, as published");
    assert!(during.iter().all(|e| !matches!(e, FollowEvent::Timeout { .. })));
    assert!(holds(&m, &suite, "b"));

    // The decoded answer comes back: "a" is installed, then its queued deltas.
    let later = t0 + TIMEOUT * 6;
    m.handle_decoded(arrived.decode(&reply), later);
    let after = events(&mut m);
    let FollowEvent::Reset {
        topic, seq, changes, ..
    } = &after[0]
    else {
        panic!("{:?}", after[0]);
    };
    assert_eq!((topic.as_str(), *seq), ("a", Seq(2000)));
    assert_eq!(changes.to_patch(), fetched, "every leaf of the snapshot, added");
    let a_seqs: Vec<Seq> = deltas(&after).iter().map(|d| d.1).collect();
    assert_eq!(a_seqs, (2001..=2005).map(Seq).collect::<Vec<_>>());
    assert!(!m.decoding() && m.is_synced());
    assert!(holds(&m, &suite, "a") && holds(&m, &suite, "b"));
}

#[test]
fn a_bad_answer_decoded_elsewhere_is_reported_and_changes_nothing() {
    let t0 = Instant::now();
    let mut suite = Suite::new("e1");
    suite.publish("a", json!({"x": 1}));
    suite.publish("b", json!({"y": 1}));
    let mut m = machine(t0);
    m.set_topics(Some(["b".to_owned()].into()));
    settle(&mut m, &suite, t0);
    m.set_topics(Some(["a".to_owned(), "b".to_owned()].into()));
    assert!(m.poll_request(t0).is_some());
    let arrived = m.take_reply().unwrap();
    m.handle_decoded(
        arrived.decode(b"{\"epoch\":\"e1\",\"topics\":{\"a\":{\"seq\":9"),
        t0,
    );
    let seen = events(&mut m);
    assert!(
        matches!(&seen[..], [FollowEvent::Malformed { reason }] if reason.contains("snapshot reply")),
        "{seen:?}"
    );
    assert_eq!(m.seq("a"), Some(Seq::ZERO));
    assert!(m.topic("a").is_some_and(|t| t.root().iter().next().is_none()));
    assert!(!m.decoding() && m.untrusted() == ["a"]);
    // Asked again after the backoff, and joined then.
    let events = settle(&mut m, &suite, t0 + Duration::from_secs(60));
    assert!(events
        .iter()
        .any(|e| matches!(e, FollowEvent::Reset { topic, .. } if topic == "a")));
    assert!(m.is_synced() && holds(&m, &suite, "a"));
}
