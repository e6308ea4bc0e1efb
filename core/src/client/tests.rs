//! The link driven by hand: frames in, frames and events out, the clock injected.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::checked_copy::Reject;
use crate::protocol::client::RelayMessage;
use crate::{Hash, Seq, Subscription, SubscriptionLimits, Topic};

const W: &str = "demo";
const T: &str = "jobs";

fn config(copies: CopyPolicy, resume: ResumeFrom, pacing: SubscribePacing) -> LinkConfig {
    LinkConfig {
        copies,
        resume,
        pacing,
        compression: Some("deflate-raw".to_owned()),
        backoff: Backoff::default(),
    }
}

const ANY: CopyPolicy = CopyPolicy {
    new_copies: NewCopies::FromAnyMessage,
    first_epoch: FirstEpoch::Unknown,
};
const STARTING: CopyPolicy = CopyPolicy {
    new_copies: NewCopies::FromStartingMessage,
    first_epoch: FirstEpoch::OfMessage,
};

fn browser() -> ClientLink<Millis> {
    ClientLink::new(config(
        ANY,
        ResumeFrom::EveryVerifiedCopy,
        SubscribePacing::Unpaced,
    ))
}

fn query(text: &str) -> Subscription {
    Subscription::parse(text, &SubscriptionLimits::default()).unwrap()
}

fn hash_of(value: &Value) -> Hash {
    Topic::from_value(T, value).unwrap().hash()
}

/// The relay's side of one (workflow, topic): what it sent, to hash the next delta.
struct Sender {
    topic: Topic,
    seq: u64,
}

impl Sender {
    fn new() -> Sender {
        Sender {
            topic: Topic::new(T),
            seq: 0,
        }
    }

    fn snapshot(&mut self, epoch: &str, seq: u64, value: Value) -> String {
        self.topic = Topic::from_value(T, &value).unwrap();
        self.seq = seq;
        RelayMessage::Snapshot {
            workflow: W.into(),
            topic: T.into(),
            epoch: epoch.into(),
            seq: Seq(seq),
            hash: self.topic.hash(),
            value,
        }
        .to_text()
    }

    /// A delta from the last seq sent to `seq`; `good: false` gives it a wrong hash.
    fn delta(&mut self, seq: u64, patch: Value, good: bool) -> String {
        self.topic.apply(&patch).unwrap();
        let prev = (self.seq > 0).then_some(Seq(self.seq));
        self.seq = seq;
        let hash = if good { self.topic.hash() } else { Hash(12345) };
        RelayMessage::Delta {
            workflow: W.into(),
            topic: T.into(),
            epoch: "e1".into(),
            seq: Seq(seq),
            prev,
            hash,
            time: Some(1.5),
            patch,
        }
        .to_text()
    }
}

fn sent<M: Moment>(link: &mut ClientLink<M>) -> Vec<Value> {
    std::iter::from_fn(|| link.poll_transmit())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect()
}

fn events<M: Moment>(link: &mut ClientLink<M>) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn open_with_query(link: &mut ClientLink<Millis>, now: u64) {
    link.set_query(&query("{ workflows { jobs } }"), Millis(now));
    link.handle_open(Millis(now));
}

#[test]
fn subscribe_goes_when_the_query_changes_and_not_for_an_empty_first_query() {
    let mut link = browser();
    link.handle_open(Millis(0));
    assert!(sent(&mut link).is_empty(), "a fresh connection selects nothing");
    link.set_query(&query("{ workflows { jobs } }"), Millis(1));
    let out = sent(&mut link);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["type"], "subscribe");
    assert_eq!(out[0]["compression"], "deflate-raw");
    assert_eq!(out[0]["query"], query("{ workflows { jobs } }").key());
    link.set_query(&query("subscription { workflows { jobs } }"), Millis(2));
    assert!(sent(&mut link).is_empty(), "the same query, written otherwise");
    link.set_query(&Subscription::empty(), Millis(3));
    assert_eq!(sent(&mut link)[0]["query"], "subscription { workflows(ids: []) }");
    assert_eq!(link.stats().subscribes, 2);
}

#[test]
fn a_paced_link_holds_a_subscribe_until_its_deadline() {
    let pace = SubscribePacing::AtMostEvery(Duration::from_millis(300));
    let mut link = ClientLink::new(config(STARTING, ResumeFrom::LatestEpochOnly, pace));
    open_with_query(&mut link, 1000);
    assert_eq!(sent(&mut link).len(), 1);
    assert_eq!(link.poll_timeout(), None, "nothing waits");
    link.set_query(&query("{ workflows { jobs { state } } }"), Millis(1100));
    assert!(sent(&mut link).is_empty());
    assert_eq!(link.poll_timeout(), Some(Millis(1300)));
    link.handle_timeout(Millis(1299));
    assert!(sent(&mut link).is_empty());
    link.handle_timeout(Millis(1300));
    let out = sent(&mut link);
    assert_eq!(out[0]["query"], query("{ workflows { jobs { state } } }").key());
    assert!(out[0].get("resume").is_none(), "resume goes with the first only");
}

#[test]
fn applied_messages_say_where_the_copy_went_and_a_new_epoch_comes_first() {
    let (mut link, mut relay) = (browser(), Sender::new());
    open_with_query(&mut link, 0);
    events(&mut link);
    link.handle_frame(&relay.snapshot("e1", 4, json!({"j1": {"state": "waiting"}})));
    link.handle_frame(&relay.delta(6, json!({"j1": {"state": "running"}}), true));
    let [LinkEvent::Applied(snap), LinkEvent::Applied(delta)] = &events(&mut link)[..] else {
        panic!("two applied");
    };
    assert_eq!(
        (snap.kind, snap.before, snap.seq),
        (DataKind::Snapshot, None, Seq(4))
    );
    let delta_at = (delta.kind, delta.before, delta.seq, delta.time);
    assert_eq!(delta_at, (DataKind::Delta, Some(Seq(4)), Seq(6), Some(1.5)));
    assert_eq!(delta.changes.len(), 1);
    link.handle_frame(&relay.snapshot("e2", 1, json!({})));
    let after = events(&mut link);
    assert!(matches!(&after[0], LinkEvent::NewEpoch { epoch, .. } if epoch == "e2"));
    assert!(matches!(&after[1], LinkEvent::Applied(a) if a.changes.len() == 1));
    assert_eq!(link.latest_epoch(W), Some("e2"));
    assert_eq!((link.stats().snapshots, link.stats().deltas), (2, 1));
}

#[test]
fn a_hash_mismatch_or_a_gap_resyncs_and_later_deltas_wait_for_a_snapshot() {
    let (mut link, mut relay) = (browser(), Sender::new());
    open_with_query(&mut link, 0);
    sent(&mut link);
    events(&mut link);
    link.handle_frame(&relay.snapshot("e1", 1, json!({"j1": {"state": "waiting"}})));
    link.handle_frame(&relay.delta(2, json!({"j1": {"state": "running"}}), false));
    let rejected = events(&mut link);
    assert!(matches!(
        &rejected[1],
        LinkEvent::Rejected {
            reject: Reject::HashMismatch { .. },
            next: AfterReject::Resync,
            kind: DataKind::Delta,
            ..
        }
    ));
    assert_eq!(
        sent(&mut link),
        vec![json!({"type": "resync", "workflow": W, "topic": T})]
    );
    // The copy kept its verified data and ignores what follows until a snapshot.
    assert_eq!(
        link.copies().get(W, T).unwrap().topic.to_value(),
        json!({"j1": {"state": "waiting"}})
    );
    link.handle_frame(&relay.delta(3, json!({"j2": {"state": "waiting"}}), true));
    assert_eq!(link.stats().ignored, 1);
    link.handle_frame(&relay.snapshot("e1", 3, json!({"j1": {"state": "running"}})));
    // A gap: the delta's prev is not the copy's seq.
    relay.seq = 2;
    link.handle_frame(&relay.delta(4, json!({"j1": {"state": "done"}}), true));
    let last = events(&mut link).pop();
    assert!(matches!(
        last,
        Some(LinkEvent::Rejected {
            reject: Reject::WrongPrev { .. },
            ..
        })
    ));
    assert_eq!(sent(&mut link).len(), 1);
    assert_eq!((link.stats().hash_mismatches, link.stats().chain_breaks), (1, 1));
}

#[test]
fn after_three_bad_snapshots_the_link_stops_asking_until_the_next_connection() {
    let (mut link, mut relay) = (browser(), Sender::new());
    open_with_query(&mut link, 0);
    sent(&mut link);
    events(&mut link);
    let bad = relay
        .snapshot("e1", 1, json!({"j1": {"state": "waiting"}}))
        .replace(
            &hash_of(&json!({"j1": {"state": "waiting"}})).to_string(),
            "0000000000000001",
        );
    for _ in 0..MAX_BAD_SNAPSHOTS {
        link.handle_frame(&bad);
    }
    let nexts: Vec<AfterReject> = events(&mut link)
        .into_iter()
        .filter_map(|e| match e {
            LinkEvent::Rejected { next, .. } => Some(next),
            _ => None,
        })
        .collect();
    let gave_up = AfterReject::GaveUp {
        failures: MAX_BAD_SNAPSHOTS,
    };
    assert_eq!(nexts, vec![AfterReject::Resync, AfterReject::Resync, gave_up]);
    assert_eq!(sent(&mut link).len(), 2);
    // A new connection forgives it and asks again.
    link.handle_lost(Millis(10), 0.0);
    link.handle_connecting();
    link.handle_open(Millis(600));
    let out = sent(&mut link);
    assert_eq!(out.last().unwrap()["type"], "resync");
    assert_eq!(link.copies().get(W, T).unwrap().bad_snapshots, 0);
}

#[test]
fn a_lost_connection_retries_at_its_deadline_and_resumes_the_verified_copies() {
    let (mut link, mut relay) = (browser(), Sender::new());
    open_with_query(&mut link, 0);
    link.handle_frame(&relay.snapshot("e1", 4, json!({"j1": {"state": "waiting"}})));
    link.handle_frame(&relay.delta(6, json!({"j1": {"state": "running"}}), true));
    events(&mut link);
    sent(&mut link);
    link.handle_lost(Millis(1000), 1.0);
    let retry_in = Duration::from_millis(500);
    let status = LinkEvent::Status {
        status: LinkStatus::Reconnecting,
        retry_in: Some(retry_in),
    };
    assert_eq!(events(&mut link), vec![status]);
    assert_eq!(link.poll_timeout(), Some(Millis(1500)));
    link.handle_timeout(Millis(1499));
    assert!(events(&mut link).is_empty());
    link.handle_timeout(Millis(1500));
    assert!(events(&mut link).contains(&LinkEvent::Connect));
    link.handle_lost(Millis(1510), 1.0);
    assert_eq!(link.poll_timeout(), Some(Millis(2510)), "backs off");
    assert_eq!(link.down_since(), Some(Millis(1000)));
    link.handle_connecting();
    link.handle_open(Millis(2600));
    assert_eq!(link.down_since(), None);
    let out = sent(&mut link);
    let hash = link.copies().get(W, T).unwrap().topic.hash();
    assert_eq!(
        out[0]["resume"],
        json!({W: {T: {"epoch": "e1", "seq": 6, "hash": hash.to_string()}}})
    );
    assert_eq!(link.stats().connections, 2);
    // Closed by its owner: losing the socket schedules nothing.
    link.close();
    link.handle_lost(Millis(3000), 0.5);
    assert_eq!((link.status(), link.poll_timeout()), (LinkStatus::Closed, None));
}

#[test]
fn resume_from_the_latest_epoch_only_leaves_out_older_copies() {
    let mut link = ClientLink::new(config(
        STARTING,
        ResumeFrom::LatestEpochOnly,
        SubscribePacing::Unpaced,
    ));
    open_with_query(&mut link, 0);
    let mut relay = Sender::new();
    link.handle_frame(&relay.snapshot("e1", 4, json!({"j1": {"state": "waiting"}})));
    // Another topic's snapshot in a new epoch makes e1 old.
    let other = RelayMessage::Snapshot {
        workflow: W.into(),
        topic: "edges".into(),
        epoch: "e2".into(),
        seq: Seq(1),
        hash: Hash::EMPTY,
        value: json!({}),
    };
    link.handle_frame(&other.to_text());
    sent(&mut link);
    link.handle_lost(Millis(1), 1.0);
    link.handle_open(Millis(600));
    let out = sent(&mut link);
    assert_eq!(
        out[0]["resume"],
        json!({W: {"edges": {"epoch": "e2", "seq": 1, "hash": "0000000000000000"}}})
    );
}

#[test]
fn which_message_makes_a_copy_is_the_owners_policy() {
    let bad_snapshot = RelayMessage::Snapshot {
        workflow: W.into(),
        topic: T.into(),
        epoch: "e1".into(),
        seq: Seq(1),
        hash: Hash(1),
        value: json!({"j1": {"state": "waiting"}}),
    }
    .to_text();
    let mut relay = Sender::new();
    relay.seq = 3;
    let chained = relay.delta(4, json!({"j1": {"state": "waiting"}}), true);
    let mut first = Sender::new();
    let starting = first.delta(4, json!({"j1": {"state": "waiting"}}), true);

    let mut tier = ClientLink::<Millis>::new(config(
        STARTING,
        ResumeFrom::LatestEpochOnly,
        SubscribePacing::Unpaced,
    ));
    tier.handle_frame(&bad_snapshot);
    tier.handle_frame(&chained);
    assert!(tier.copies().get(W, T).is_none(), "neither can start a copy");
    tier.handle_frame(&starting);
    let copy = tier.copies().get(W, T).unwrap();
    assert_eq!(
        (copy.seq, copy.epoch.as_str(), copy.verified),
        (Some(Seq(4)), "e1", true)
    );

    let mut page = browser();
    page.handle_frame(&bad_snapshot);
    let copy = page.copies().get(W, T).unwrap();
    assert_eq!((copy.seq, copy.epoch.as_str(), copy.verified), (None, "", false));
}

#[test]
fn a_scope_keeps_only_its_topics() {
    let mut link = ClientLink::<Millis>::new(config(
        STARTING,
        ResumeFrom::LatestEpochOnly,
        SubscribePacing::Unpaced,
    ));
    let mut relay = Sender::new();
    link.handle_frame(&relay.snapshot("e1", 1, json!({"j1": {"state": "waiting"}})));
    assert!(link.copies().get(W, T).is_some());
    let only_edges = Scope::Workflow {
        workflow: W.into(),
        topics: Some(["edges".to_owned()].into()),
    };
    link.set_scope(only_edges);
    assert!(link.copies().get(W, T).is_none(), "dropped with its topic");
    link.handle_frame(&relay.snapshot("e1", 2, json!({"j1": {"state": "running"}})));
    assert!(
        link.copies().get(W, T).is_none(),
        "a late message for it is dropped"
    );
}

#[test]
fn an_undecodable_frame_distrusts_the_copy_it_names_and_resyncs_it_once() {
    let (mut link, mut relay) = (browser(), Sender::new());
    open_with_query(&mut link, 0);
    link.handle_frame(&relay.snapshot("e1", 1, json!({"j1": {"state": "waiting"}})));
    sent(&mut link);
    let broken = format!(r#"{{"type":"delta","workflow":"{W}","topic":"{T}","seq":"x"}}"#);
    link.handle_frame(&broken);
    link.handle_frame(&broken);
    link.handle_frame("not json");
    assert_eq!(sent(&mut link).len(), 1);
    assert!(!link.copies().get(W, T).unwrap().verified);
    assert_eq!(link.stats().bad_messages, 3);
}

#[test]
fn requests_by_client_id_are_answered_expired_or_abandoned() {
    let mut link = browser();
    open_with_query(&mut link, 0);
    events(&mut link);
    let second = Duration::from_secs(1);
    let commands = link.commands_mut();
    commands
        .insert("a".into(), "{}".into(), Millis(0), second)
        .unwrap();
    commands
        .insert("b".into(), "{}".into(), Millis(0), second * 2)
        .unwrap();
    assert_eq!(
        commands.insert("a".into(), "{}".into(), Millis(0), second),
        Err(CommandRefused::DuplicateId)
    );
    assert!(commands.answer("a").is_some());
    assert!(commands.answer("a").is_none(), "answered once");
    commands
        .insert("c".into(), "{}".into(), Millis(0), second)
        .unwrap();
    assert_eq!(link.poll_timeout(), Some(Millis(1000)));
    link.handle_timeout(Millis(1000));
    assert_eq!(
        events(&mut link),
        vec![LinkEvent::CommandUnanswered { id: "c".into() }]
    );
    link.handle_lost(Millis(1001), 0.5);
    assert!(events(&mut link).contains(&LinkEvent::CommandUnanswered { id: "b".into() }));
    assert!(link.commands_mut().is_empty());
}

#[test]
fn nothing_is_queued_to_send_while_not_open() {
    let mut link = browser();
    link.set_query(&query("{ workflows { jobs } }"), Millis(0));
    let mut relay = Sender::new();
    relay.seq = 3;
    link.handle_frame(&relay.delta(4, json!({"j1": {"state": "waiting"}}), true));
    assert!(link.poll_transmit().is_none());
    assert_eq!(link.stats().resyncs, 0);
}

#[test]
fn millis_add_and_compare_without_overflow() {
    assert_eq!(Millis(5) + Duration::from_millis(7), Millis(12));
    assert_eq!(Millis(u64::MAX) + Duration::from_secs(1), Millis(u64::MAX));
    assert_eq!(Millis(10).since(Millis(20)), Duration::ZERO);
    assert_eq!(Millis::from_f64(f64::NAN), Millis(0));
    assert_eq!(Millis::from_f64(12.7), Millis(12));
}

#[test]
fn a_command_goes_out_once_and_its_result_comes_back_by_id() {
    use crate::protocol::command::Outcome;
    let mut link = browser();
    // Not connected: refused, nothing queued.
    assert_eq!(
        link.send_command(
            "c1",
            W,
            "hold",
            json!({"tasks": ["1/a"]}),
            Millis(0),
            Duration::from_secs(5)
        ),
        Err(CommandRefused::NotConnected)
    );
    open_with_query(&mut link, 0);
    sent(&mut link);
    events(&mut link);
    let long_id = "x".repeat(65);
    assert_eq!(
        link.send_command(
            &long_id,
            W,
            "pause",
            Value::Null,
            Millis(0),
            Duration::from_secs(5)
        ),
        Err(CommandRefused::IdTooLong)
    );
    link.send_command(
        "c1",
        W,
        "hold",
        json!({"tasks": ["1/a"]}),
        Millis(0),
        Duration::from_secs(5),
    )
    .unwrap();
    let frames = sent(&mut link);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        frames[0],
        json!({"type": "command", "id": "c1", "workflow": W, "command": "hold", "args": {"tasks": ["1/a"]}})
    );
    assert_eq!(
        link.send_command(
            "c1",
            W,
            "hold",
            json!({"tasks": ["1/a"]}),
            Millis(0),
            Duration::from_secs(5)
        ),
        Err(CommandRefused::DuplicateId)
    );
    let result = |id: &str| {
        RelayMessage::CommandResult {
            id: id.into(),
            workflow: W.into(),
            command: "hold".into(),
            outcome: Outcome::Queued,
            message: "held 1 task".into(),
            retry_ms: None,
        }
        .to_text()
    };
    // An answer to an id not waiting is dropped; the right one is told once.
    link.handle_frame(&result("other"));
    assert_eq!(events(&mut link), vec![]);
    link.handle_frame(&result("c1"));
    assert_eq!(
        events(&mut link),
        vec![LinkEvent::CommandResult {
            id: "c1".into(),
            workflow: W.into(),
            command: "hold".into(),
            outcome: Outcome::Queued,
            message: "held 1 task".into(),
            retry_ms: None,
        }]
    );
    link.handle_frame(&result("c1"));
    assert_eq!(events(&mut link), vec![], "answered once");
    assert_eq!(link.poll_timeout(), None, "nothing left waiting");
}
