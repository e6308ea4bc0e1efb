#![cfg(not(target_arch = "wasm32"))]
//! The store applies snapshots and deltas in order and only ever holds verified data.

mod common;

use clonewire_core::{Hash, Seq};
use std::borrow::Cow;

use clonewire_wasm::store::{new_store, ApplyOutcome, Chain, Reject, Store};
use common::FakeRelay;
use serde_json::{json, Value};

/// Feeds a relay frame (snapshot or delta) to the store the way the session does.
fn feed(store: &mut Store, frame: &str) -> ApplyOutcome {
    let m: Value = serde_json::from_str(frame).unwrap();
    let (w, t, e) = (
        m["workflow"].as_str().unwrap(),
        m["topic"].as_str().unwrap(),
        m["epoch"].as_str().unwrap(),
    );
    let hash: Hash = m["hash"].as_str().unwrap().parse().unwrap();
    let seq = Seq(m["seq"].as_u64().unwrap());
    match m["type"].as_str().unwrap() {
        "snapshot" => store.snapshot(w, t, e, seq, hash, &m["value"]),
        _ => {
            let chain = Chain {
                prev: m["prev"].as_u64().map(Seq),
                seq,
            };
            store.delta(w, t, e, chain, hash, Cow::Borrowed(&m["patch"]))
        }
    }
}

fn value(store: &Store, w: &str, t: &str) -> Value {
    store.get(w, t).map_or(json!({}), |r| r.topic.to_value())
}

#[test]
fn snapshot_then_chained_deltas_track_the_relay_copy() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    let snap = relay.snapshot("demo", "taskProxies", 5, json!({"1/foo": {"status": "waiting"}}));
    assert!(matches!(feed(&mut store, &snap), ApplyOutcome::Applied(c) if c.len() == 1));
    let d1 = relay.delta(
        "demo",
        "taskProxies",
        7,
        Some(5),
        json!({"1/foo": {"status": "running"}}),
    );
    let d2 = relay.delta(
        "demo",
        "taskProxies",
        9,
        Some(7),
        json!({"1/bar": {"status": "waiting"}}),
    );
    assert!(matches!(feed(&mut store, &d1), ApplyOutcome::Applied(_)));
    assert!(matches!(feed(&mut store, &d2), ApplyOutcome::Applied(_)));
    assert_eq!(
        value(&store, "demo", "taskProxies"),
        relay.value("demo", "taskProxies")
    );
    let replica = store.get("demo", "taskProxies").unwrap();
    assert_eq!((replica.seq, replica.verified), (Some(Seq(9)), true));
}

#[test]
fn a_first_delta_with_null_prev_needs_no_snapshot() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    let d = relay.delta("demo", "workflow", 3, None, json!({"name": "demo"}));
    assert!(matches!(feed(&mut store, &d), ApplyOutcome::Applied(_)));
    assert_eq!(value(&store, "demo", "workflow"), json!({"name": "demo"}));
}

#[test]
fn a_missing_message_is_detected_by_prev_and_nothing_applies_until_a_snapshot() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    feed(
        &mut store,
        &relay.snapshot("demo", "jobs", 1, json!({"j1": {"state": "submitted"}})),
    );
    let _lost = relay.delta("demo", "jobs", 2, Some(1), json!({"j1": {"state": "running"}}));
    let after = relay.delta("demo", "jobs", 3, Some(2), json!({"j2": {"state": "submitted"}}));
    assert_eq!(
        feed(&mut store, &after),
        ApplyOutcome::Rejected(Reject::WrongPrev {
            expected: Some(Seq(1)),
            got: Some(Seq(2))
        })
    );
    assert_eq!(
        value(&store, "demo", "jobs"),
        json!({"j1": {"state": "submitted"}})
    );
    let next = relay.delta("demo", "jobs", 4, Some(3), json!({"j3": {"state": "submitted"}}));
    assert_eq!(feed(&mut store, &next), ApplyOutcome::Ignored);
    let fresh = relay.value("demo", "jobs");
    assert!(matches!(
        feed(&mut store, &relay.snapshot("demo", "jobs", 4, fresh.clone())),
        ApplyOutcome::Applied(_)
    ));
    assert_eq!(value(&store, "demo", "jobs"), fresh);
    assert!(store.get("demo", "jobs").unwrap().verified);
}

#[test]
fn a_delta_whose_hash_does_not_check_is_undone_exactly() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    let start =
        json!({"1/foo": {"status": "waiting", "flowNums": [1], "outputs": {"a": true}}, "1/x": {"n": 1}});
    feed(
        &mut store,
        &relay.snapshot("demo", "taskProxies", 1, start.clone()),
    );
    let before_hash = store.get("demo", "taskProxies").unwrap().topic.hash();
    // Replaces a leaf by an object and an object by a leaf, deletes and adds.
    let patch = json!({"1/foo": {"status": {"deep": 1}, "outputs": "gone", "flowNums": null}, "1/x": null, "1/y": {"n": 2}});
    let bad = common::corrupt_hash(&relay.delta("demo", "taskProxies", 2, Some(1), patch));
    assert!(matches!(
        feed(&mut store, &bad),
        ApplyOutcome::Rejected(Reject::HashMismatch { .. })
    ));
    let replica = store.get("demo", "taskProxies").unwrap();
    assert_eq!(replica.topic.to_value(), start);
    assert_eq!(replica.topic.hash(), before_hash);
    assert_eq!((replica.seq, replica.verified), (Some(Seq(1)), false));
}

#[test]
fn a_snapshot_whose_hash_does_not_check_keeps_the_old_data() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    feed(
        &mut store,
        &relay.snapshot("demo", "workflow", 1, json!({"name": "demo"})),
    );
    let bad = common::corrupt_hash(&relay.snapshot("demo", "workflow", 2, json!({"name": "other"})));
    assert!(matches!(feed(&mut store, &bad), ApplyOutcome::Rejected(_)));
    assert_eq!(value(&store, "demo", "workflow"), json!({"name": "demo"}));
    assert_eq!(store.get("demo", "workflow").unwrap().bad_snapshots, 1);
}

#[test]
fn an_empty_snapshot_drops_the_data_but_keeps_the_chain() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    feed(
        &mut store,
        &relay.snapshot("demo", "edges", 4, json!({"e1": {"s": "a"}})),
    );
    assert!(matches!(
        feed(&mut store, &relay.snapshot("demo", "edges", 6, json!({}))),
        ApplyOutcome::Applied(c) if c.len() == 1
    ));
    assert_eq!(value(&store, "demo", "edges"), json!({}));
    let d = relay.delta("demo", "edges", 8, Some(6), json!({"e2": {"s": "b"}}));
    assert!(matches!(feed(&mut store, &d), ApplyOutcome::Applied(_)));
}

#[test]
fn patches_that_are_not_objects_are_refused() {
    let mut store = new_store();
    let outcome = store.delta(
        "demo",
        "jobs",
        "e1",
        Chain {
            prev: None,
            seq: Seq(1),
        },
        Hash::EMPTY,
        Cow::Owned(json!([1, 2])),
    );
    assert_eq!(outcome, ApplyOutcome::Rejected(Reject::BadPatch));
    let outcome = store.snapshot("demo", "jobs", "e1", Seq(1), Hash::EMPTY, &json!("x"));
    assert_eq!(outcome, ApplyOutcome::Rejected(Reject::BadPatch));
}

#[test]
fn a_delta_from_another_epoch_breaks_the_chain() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    feed(
        &mut store,
        &relay.snapshot("demo", "workflow", 1, json!({"name": "demo"})),
    );
    let d = relay.delta("demo", "workflow", 2, Some(1), json!({"status": "running"}));
    let d = d.replace("\"e1\"", "\"e2\"");
    assert_eq!(feed(&mut store, &d), ApplyOutcome::Rejected(Reject::WrongEpoch));
}

#[test]
fn resume_points_cover_verified_copies_only() {
    let (mut relay, mut store) = (FakeRelay::new(), new_store());
    feed(
        &mut store,
        &relay.snapshot("demo", "workflow", 3, json!({"name": "demo"})),
    );
    feed(
        &mut store,
        &relay.snapshot("demo", "jobs", 5, json!({"j": {"s": 1}})),
    );
    store.distrust("demo", "jobs");
    let resume = store.resume_points();
    let point = &resume["demo"]["workflow"];
    assert_eq!((point.epoch.as_str(), point.seq), ("e1", Seq(3)));
    assert_eq!(point.hash, store.get("demo", "workflow").unwrap().topic.hash());
    assert!(!resume["demo"].contains_key("jobs"));
}
