#![cfg(not(target_arch = "wasm32"))]
//! The session as a page sees it: one merged subscription, per-view notifications,
//! resync on bad data, reconnect and resume.

mod common;

use clonewire_core::{Seq, SubscriptionLimits};
use clonewire_wasm::events::{PageEvent, Status};
use clonewire_wasm::{Effects, Session};
use common::{corrupt_hash, FakeRelay};
use serde_json::{json, Value};

const TASKS: &str = "subscription { workflows(ids: [\"demo\"]) { taskProxies { status } } }";
const NAMES: &str = "{ workflows { workflow { name } taskProxies { name } } }";

fn connected() -> (Session, FakeRelay) {
    let mut session = Session::new(SubscriptionLimits::default());
    session.connecting();
    session.opened();
    let relay = FakeRelay::new();
    session.receive(&relay.hello());
    // The relay describes each workflow (with its schema) before sending its data.
    session.receive(&relay.workflow("demo", "live"));
    (session, relay)
}

fn sent(session: &mut Session) -> Vec<Value> {
    session
        .take_outgoing()
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

/// The changes each view was told about, by view id.
fn told(effects: &Effects) -> Vec<(u32, Vec<Value>)> {
    effects
        .notifications()
        .iter()
        .map(|n| (n.view, n.changes.iter().map(|c| c.patch.clone()).collect()))
        .collect()
}

#[test]
fn views_share_one_subscription_that_grows_and_shrinks() {
    let (mut session, _) = connected();
    assert!(sent(&mut session).is_empty(), "no views, nothing to subscribe");
    let tasks = session.add_view("tasks", TASKS).unwrap();
    let first = sent(&mut session);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["type"], "subscribe");
    assert_eq!(first[0]["query"], session.merged_query());

    let names = session.add_view("names", NAMES).unwrap();
    let grown = sent(&mut session);
    assert_eq!(grown.len(), 1);
    let merged = grown[0]["query"].as_str().unwrap().to_owned();
    assert!(merged.contains("status") && merged.contains("name"), "{merged}");

    // A third view asking for what is already covered sends nothing.
    let same = session.add_view("again", TASKS).unwrap();
    assert!(sent(&mut session).is_empty());
    assert!(session.remove_view(same));
    assert!(sent(&mut session).is_empty());

    // Closing a view shrinks the merged query back.
    assert!(session.remove_view(names));
    let shrunk = sent(&mut session);
    assert_eq!(shrunk.len(), 1);
    assert_eq!(shrunk[0]["query"], first[0]["query"]);
    assert!(session.remove_view(tasks));
    assert_eq!(
        sent(&mut session)[0]["query"],
        "subscription { workflows(ids: []) }"
    );
}

#[test]
fn each_view_is_told_only_about_its_own_fields() {
    let (mut session, mut relay) = connected();
    let tasks = session.add_view("tasks", TASKS).unwrap();
    let names = session.add_view("names", NAMES).unwrap();
    let snap = relay.snapshot(
        "demo",
        "taskProxies",
        1,
        json!({"1/foo": {"name": "foo", "status": "waiting"}}),
    );
    let effects = session.receive(&snap);
    assert_eq!(effects.notifications().len(), 2);

    // Only the status changes: the names view hears nothing.
    let d = relay.delta(
        "demo",
        "taskProxies",
        2,
        Some(1),
        json!({"1/foo": {"status": "running"}}),
    );
    let effects = session.receive(&d);
    assert_eq!(
        told(&effects),
        vec![(tasks, vec![json!({"1/foo": {"status": "running"}})])]
    );
    assert_eq!(effects.notifications()[0].changes[0].time, Some(1.0));

    // A change to both fields: each view gets its own part, one call each.
    let d = relay.delta(
        "demo",
        "taskProxies",
        3,
        Some(2),
        json!({"1/foo": {"status": "succeeded", "name": "foo2"}}),
    );
    let effects = session.receive(&d);
    assert_eq!(
        told(&effects),
        vec![
            (tasks, vec![json!({"1/foo": {"status": "succeeded"}})]),
            (names, vec![json!({"1/foo": {"name": "foo2"}})]),
        ]
    );
    // A topic neither view selects tells nobody.
    let d = relay.delta("demo", "jobs", 3, None, json!({"j1": {"state": "x"}}));
    assert!(session.receive(&d).notifications().is_empty());

    assert_eq!(
        session.view_data(tasks).unwrap(),
        json!({"workflows": {"demo": {"taskProxies": {"1/foo": {"status": "succeeded"}}}}})
    );
    assert_eq!(
        session.view_data(names).unwrap(),
        json!({"workflows": {"demo": {"taskProxies": {"1/foo": {"name": "foo2"}}}}})
    );
}

#[test]
fn ids_on_collections_follow_the_workflow_schema() {
    let (mut session, mut relay) = connected();
    let one = session
        .add_view(
            "one",
            "{ workflows(ids: \"demo\") { taskProxies(ids: [\"1/a\"]) { status } } }",
        )
        .unwrap();
    let snap = relay.snapshot(
        "demo",
        "taskProxies",
        1,
        json!({"1/a": {"status": "w"}, "1/b": {"status": "w"}}),
    );
    let effects = session.receive(&snap);
    assert_eq!(told(&effects), vec![(one, vec![json!({"1/a": {"status": "w"}})])]);
    let d = relay.delta("demo", "taskProxies", 2, Some(1), json!({"1/b": {"status": "r"}}));
    assert!(session.receive(&d).notifications().is_empty());
}

#[test]
fn a_corrupted_delta_asks_for_a_resync_and_views_keep_verified_data() {
    let (mut session, mut relay) = connected();
    let view = session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    session.receive(&relay.snapshot("demo", "taskProxies", 1, json!({"1/foo": {"status": "waiting"}})));
    let bad = corrupt_hash(&relay.delta(
        "demo",
        "taskProxies",
        2,
        Some(1),
        json!({"1/foo": {"status": "running"}}),
    ));
    let effects = session.receive(&bad);
    assert!(
        effects.notifications().is_empty(),
        "no notification for unverified data"
    );
    assert_eq!(
        sent(&mut session),
        vec![json!({"type": "resync", "workflow": "demo", "topic": "taskProxies"})]
    );
    assert_eq!(
        session.view_data(view).unwrap()["workflows"]["demo"]["taskProxies"]["1/foo"]["status"],
        "waiting"
    );
    // Deltas that follow are dropped quietly (one resync is enough) ...
    let next = relay.delta(
        "demo",
        "taskProxies",
        3,
        Some(2),
        json!({"1/bar": {"status": "waiting"}}),
    );
    assert!(session.receive(&next).notifications().is_empty());
    assert!(sent(&mut session).is_empty());
    // ... until the snapshot, which tells the view everything that changed.
    let fresh = relay.value("demo", "taskProxies");
    let effects = session.receive(&relay.snapshot("demo", "taskProxies", 3, fresh));
    assert_eq!(
        told(&effects),
        vec![(
            view,
            vec![json!({"1/foo": {"status": "running"}, "1/bar": {"status": "waiting"}})]
        )]
    );
    let c = session.counters();
    assert_eq!((c.hash_mismatches, c.resyncs, c.ignored), (1, 1, 1));
}

#[test]
fn a_wrong_prev_asks_for_a_resync() {
    let (mut session, mut relay) = connected();
    session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    session.receive(&relay.snapshot("demo", "taskProxies", 1, json!({"a": {"status": "w"}})));
    let wrong = relay.delta("demo", "taskProxies", 3, Some(2), json!({"a": {"status": "r"}}));
    session.receive(&wrong);
    assert_eq!(sent(&mut session)[0]["type"], "resync");
    assert_eq!(session.counters().chain_breaks, 1);
}

#[test]
fn garbage_from_the_relay_is_counted_and_never_fatal() {
    let (mut session, mut relay) = connected();
    session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    for frame in [
        "",
        "not json",
        "[]",
        "{\"type\":\"nope\"}",
        "{\"type\":\"delta\"}",
    ] {
        assert_eq!(session.receive(frame), Effects::default());
    }
    assert!(sent(&mut session).is_empty());
    // A delta that names its (workflow, topic) but has a malformed hash is resynced.
    session.receive(
        r#"{"type":"delta","workflow":"demo","topic":"jobs","epoch":"e","seq":1,"prev":null,"hash":"xyz","patch":{}}"#,
    );
    assert_eq!(sent(&mut session)[0]["type"], "resync");
    assert_eq!(session.counters().bad_messages, 6);
    // The client still works.
    let ok = session.receive(&relay.snapshot("demo", "taskProxies", 1, json!({"a": {"status": "w"}})));
    assert_eq!(ok.notifications().len(), 1);
}

#[test]
fn a_bad_query_fails_that_view_only() {
    let (mut session, _) = connected();
    let good = session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    let err = session
        .add_view("bad", "subscription {\n  workflows { taskProxies { \n}")
        .unwrap_err();
    assert!(err.line.is_some() && err.column.is_some(), "{err:?}");
    let err = session.add_view("bad", "{ nope }").unwrap_err();
    assert!(err.message.contains("workflows"), "{err:?}");
    assert!(session.set_view_query(good, "query { x }").is_err());
    assert!(session.has_view(good));
    assert!(sent(&mut session).is_empty(), "the relay never hears a bad query");
    assert_eq!(session.inspect().views.len(), 1);
}

#[test]
fn ids_on_a_plain_field_are_refused_once_the_schema_is_known() {
    let (mut session, _) = connected();
    let err = session
        .add_view(
            "bad",
            "{ workflows(ids: [\"demo\"]) { workflow(ids: [\"x\"]) { name } } }",
        )
        .unwrap_err();
    assert!(err.message.contains("not a collection"), "{err:?}");
}

#[test]
fn changing_a_query_tells_the_view_what_it_now_shows() {
    let (mut session, mut relay) = connected();
    let view = session.add_view("tasks", TASKS).unwrap();
    session.add_view("names", NAMES).unwrap();
    session.receive(&relay.snapshot(
        "demo",
        "taskProxies",
        1,
        json!({"1/foo": {"name": "foo", "status": "waiting"}}),
    ));
    sent(&mut session);
    let effects = session
        .set_view_query(view, "{ workflows(ids: [\"demo\"]) { taskProxies { name } } }")
        .unwrap();
    assert_eq!(
        told(&effects),
        vec![(view, vec![json!({"1/foo": {"status": null, "name": "foo"}})])]
    );
    // The merged query lost `status`: the relay is told.
    let out = sent(&mut session);
    assert_eq!(out.len(), 1);
    assert!(!out[0]["query"].as_str().unwrap().contains("status"));
}

#[test]
fn a_schema_that_arrives_after_the_data_tells_views_what_they_now_show() {
    let mut session = Session::new(SubscriptionLimits::default());
    session.connecting();
    session.opened();
    let mut relay = FakeRelay::new();
    session.receive(&relay.hello());
    // Told about the workflow before the relay knows its schema.
    session.receive(&json!({"type": "workflow", "workflow": "demo", "state": "syncing"}).to_string());
    let view = session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    // Without a schema `taskProxies` is no collection, so the query selects nothing
    // of this snapshot.
    let early = session.receive(&relay.snapshot(
        "demo",
        "taskProxies",
        1,
        json!({"1/foo": {"name": "foo", "status": "waiting"}}),
    ));
    assert!(told(&early).is_empty());
    assert_eq!(session.view_data(view), Some(json!({"workflows": {}})));
    // The schema arrives: what the view shows changes, and it is told so.
    let effects = session.receive(&relay.workflow("demo", "live"));
    assert_eq!(
        told(&effects),
        vec![(view, vec![json!({"1/foo": {"status": "waiting"}})])]
    );
    assert_eq!(
        session.view_data(view),
        Some(json!({"workflows": {"demo": {"taskProxies": {"1/foo": {"status": "waiting"}}}}}))
    );
    // Told the same schema again, nothing changes.
    assert!(told(&session.receive(&relay.workflow("demo", "live"))).is_empty());
}

#[test]
fn lost_connections_reconnect_with_backoff_and_resume() {
    let (mut session, mut relay) = connected();
    session.add_view("tasks", TASKS).unwrap();
    sent(&mut session);
    session.receive(&relay.snapshot("demo", "taskProxies", 4, json!({"a": {"status": "w"}})));
    session.receive(&relay.delta("demo", "taskProxies", 6, Some(4), json!({"a": {"status": "r"}})));

    let (effects, delay) = session.closed(0.5);
    let first = delay.unwrap();
    assert!((250..=500).contains(&first));
    assert!(matches!(
        effects.events[..],
        [PageEvent::Status {
            status: Status::Reconnecting,
            ..
        }]
    ));
    session.connecting();
    let (_, delay) = session.closed(0.5);
    assert!(delay.unwrap() > first, "backs off");

    session.connecting();
    session.opened();
    let out = sent(&mut session);
    assert_eq!(out.len(), 1);
    let resume = &out[0]["resume"]["demo"]["taskProxies"];
    let hash = session.store().get("demo", "taskProxies").unwrap().topic.hash();
    assert_eq!(
        resume,
        &json!({"epoch": "e1", "seq": 6, "hash": hash.to_string()})
    );
    // The relay resumes with one delta chained to the client's seq.
    let d = relay.delta("demo", "taskProxies", 9, Some(6), json!({"b": {"status": "w"}}));
    assert_eq!(session.receive(&d).notifications().len(), 1);
    assert_eq!(session.counters().reconnects, 1);
    assert_eq!(session.inspect().status, Status::Open);

    // Closed by the page: no more attempts.
    session.close();
    assert_eq!(session.closed(0.5).1, None);
}

#[test]
fn a_removed_workflow_disappears_from_views() {
    let (mut session, mut relay) = connected();
    let view = session.add_view("names", NAMES).unwrap();
    session.receive(&relay.snapshot("demo", "workflow", 1, json!({"name": "demo"})));
    let effects = session.receive(&relay.workflow("demo", "removed"));
    assert_eq!(told(&effects), vec![(view, vec![json!({"name": null})])]);
    assert!(matches!(&effects.events[0], PageEvent::Workflow { workflow, .. } if workflow == "demo"));
    assert_eq!(session.view_data(view).unwrap(), json!({"workflows": {}}));
}

#[test]
fn inspect_reports_views_topics_and_counters() {
    let (mut session, mut relay) = connected();
    session.add_view("tasks", TASKS).unwrap();
    session.receive(r#"{"type":"subscribed","query":"q"}"#);
    session.receive(&relay.snapshot("demo", "taskProxies", 1, json!({"a": {"status": "w"}})));
    session.receive(&relay.delta("demo", "taskProxies", 2, Some(1), json!({"a": {"status": "r"}})));
    let report = session.inspect();
    assert_eq!(report.relay.as_deref(), Some("fake/0"));
    assert_eq!(report.subscribed.as_deref(), Some("q"));
    assert_eq!(report.views[0].query, session.merged_query());
    let topic = &report.topics[0];
    assert_eq!(
        (topic.seq, topic.verified, topic.epoch.as_str()),
        (Some(Seq(2)), true, "e1")
    );
    assert_eq!(report.counters.deltas_by_topic["taskProxies"], 1);
    assert_eq!(report.counters.messages, 5);
    assert_eq!(report.workflows[0].schema.as_ref().unwrap().collections.len(), 2);
}
