//! The relay's per-workflow views, driven with an in-memory store and checked with the
//! browser client's own store logic (prev chain and projection hash on every message).

use std::collections::BTreeMap;
use std::sync::Arc;

use clonewire_core::protocol::client::{RelayMessage, ResumePoint};
use clonewire_core::{Changes, Projection, Schema, Seq, Subscription, SubscriptionLimits, Topic};
use clonewire_wasm::store::{new_store, ApplyOutcome, Store};
use serde_json::{json, Value};

use super::{ClientId, ReplicaSource, SubscriptionViews};
use crate::clients::outbox::{Outbox, Outgoing};
use crate::serve::metrics::OutboxCounters;
use crate::workflow::history::HistoryLimit;
use crate::workflow::registry::{Group, Registry};

const W: &str = "demo";

struct Fake {
    epoch: String,
    schema: Schema,
    topics: BTreeMap<String, (Topic, Seq)>,
}

impl ReplicaSource for Fake {
    fn epoch(&self) -> &str {
        &self.epoch
    }
    fn schema(&self) -> Option<&Schema> {
        Some(&self.schema)
    }
    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        self.topics.get(name).map(|(t, s)| (t, *s))
    }
    fn topic_names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

impl Fake {
    fn new() -> Fake {
        Fake {
            epoch: "e1".into(),
            schema: Schema::new([vec!["taskProxies"]]),
            topics: BTreeMap::new(),
        }
    }

    /// Applies a patch as a suite delta would, and tells the views.
    fn apply(&mut self, views: &mut SubscriptionViews, topic: &str, patch: Value) -> Changes {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| (Topic::new(topic), Seq::ZERO));
        let changes = entry.0.apply(&patch).unwrap();
        let prev = entry.1;
        entry.1 = entry.1.next();
        let seq = entry.1;
        views.on_changes(self, topic, prev, seq, &changes, Some(1.0));
        views.flush(self);
        changes
    }
}

struct Client {
    outbox: Arc<Outbox>,
    store: Store,
    frames: Vec<String>,
}

impl Client {
    fn new() -> Client {
        Client {
            outbox: Arc::new(Outbox::new(1 << 20, 8 << 20, Default::default())),
            store: new_store(),
            frames: Vec::new(),
        }
    }

    /// Applies everything queued, asserting every message verifies.
    fn drain(&mut self) -> usize {
        self.drain_bridging(|_| panic!("no client here lags"))
    }

    /// [`Client::drain`], handing requests for bridging deltas to `bridge` (which
    /// answers into the outbox, as the link thread does).
    fn drain_bridging(&mut self, mut bridge: impl FnMut(Vec<(String, Option<ResumePoint>)>)) -> usize {
        let mut n = 0;
        while let Some(out) = self.outbox.pop() {
            let text = match out {
                Outgoing::Text(t) | Outgoing::Snapshot(t) => t.to_string(),
                Outgoing::Delta(d) => d.text.to_string(),
                Outgoing::Bridge(asks) => {
                    bridge(
                        asks.into_iter()
                            .map(|((_, t), held)| (t.to_string(), held))
                            .collect(),
                    );
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            };
            self.frames.push(text.clone());
            n += 1;
            let Some((_, outcome)) = self.store.apply_message(&RelayMessage::decode(&text).unwrap()) else {
                continue;
            };
            assert!(
                matches!(outcome, ApplyOutcome::Applied(_)),
                "{outcome:?} for {text}"
            );
        }
        n
    }

    fn copy(&self, topic: &str) -> Value {
        self.store.get(W, topic).map_or(json!({}), |r| r.topic.to_value())
    }
}

fn group(registry: &Registry, text: &str) -> Arc<Group> {
    registry.intern(Subscription::parse(text, &SubscriptionLimits::default()).unwrap())
}

fn projection(store: &Fake, group: &Group, topic: &str) -> Value {
    let Some(field) = group.sub.for_topic(W, topic) else {
        return json!({});
    };
    let Some(proj) = Projection::compile(field, topic, &store.schema) else {
        return json!({});
    };
    store.topic(topic).map_or(json!({}), |(t, _)| proj.project(t).0)
}

fn tasks(n: usize) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting", "host": "h"}),
        );
    }
    Value::Object(m)
}

#[test]
fn clients_hold_exactly_their_projection_and_share_frames() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(5));
    let names = group(&registry, "{ workflows { taskProxies { name } } }");
    let status = group(&registry, "{ workflows { taskProxies { status } workflow } }");
    let mut a = Client::new();
    let mut b = Client::new();
    let mut c = Client::new();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(names.clone()), None);
    views.rebind(&store, ClientId(2), b.outbox.clone(), Some(status.clone()), None);
    views.rebind(&store, ClientId(3), c.outbox.clone(), Some(status.clone()), None);
    for (i, s) in ["running", "succeeded"].iter().enumerate() {
        store.apply(
            &mut views,
            "taskProxies",
            json!({ format!("1/t{i}"): {"status": s} }),
        );
    }
    store.apply(
        &mut views,
        "workflow",
        json!({"name": "demo", "status": "running"}),
    );
    store.apply(&mut views, "taskProxies", json!({"1/t4": null}));
    for client in [&mut a, &mut b, &mut c] {
        client.drain();
    }
    for topic in ["taskProxies", "workflow"] {
        assert_eq!(a.copy(topic), projection(&store, &names, topic), "{topic}");
        assert_eq!(c.copy(topic), projection(&store, &status, topic), "{topic}");
    }
    assert_eq!(a.copy("workflow"), json!({}), "a never selected workflow");
    assert_eq!(c.copy("workflow"), json!({"name": "demo", "status": "running"}));
    // names: the t4 removal (1); status: two statuses and the t4 removal (3). The new
    // workflow topic goes out as a snapshot. Three clients, four deltas made.
    assert_eq!(views.stats().deltas_made, 4, "once per view, not per client");
}

#[test]
fn clients_sharing_a_subscription_are_sent_the_same_bytes() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(3));
    let sub = group(&registry, "{ workflows { taskProxies { status } } }");
    let (b, c) = (Client::new(), Client::new());
    views.rebind(&store, ClientId(2), b.outbox.clone(), Some(sub.clone()), None);
    views.rebind(&store, ClientId(3), c.outbox.clone(), Some(sub.clone()), None);
    for out in [&b.outbox, &c.outbox] {
        assert!(
            matches!(out.pop(), Some(Outgoing::Text(_))),
            "the workflow state first"
        );
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(_))));
    }
    store.apply(&mut views, "taskProxies", json!({"1/t0": {"status": "running"}}));
    match (b.outbox.pop(), c.outbox.pop()) {
        (Some(Outgoing::Delta(x)), Some(Outgoing::Delta(y))) => {
            assert!(Arc::ptr_eq(&x, &y), "one allocation")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_subscription_change_sends_only_what_is_new() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(50));
    let names = group(&registry, "{ workflows { taskProxies { name } } }");
    let more = group(&registry, "{ workflows { taskProxies { name status } } }");
    let mut a = Client::new();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(names.clone()), None);
    a.drain();
    let before = a.frames.len();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(more.clone()), None);
    a.drain();
    let bridge = &a.frames[before..];
    assert_eq!(bridge.len(), 1, "{bridge:?}");
    assert!(
        bridge[0].contains("\"type\":\"delta\"") && !bridge[0].contains("\"name\""),
        "only status: {}",
        bridge[0]
    );
    assert_eq!(a.copy("taskProxies"), projection(&store, &more, "taskProxies"));
    // And back: the status leaves go, nothing else is sent.
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(names.clone()), None);
    a.drain();
    assert_eq!(a.copy("taskProxies"), projection(&store, &names, "taskProxies"));
    store.apply(
        &mut views,
        "taskProxies",
        json!({"1/t1": {"name": "renamed", "status": "running"}}),
    );
    a.drain();
    assert_eq!(a.copy("taskProxies"), projection(&store, &names, "taskProxies"));
}

#[test]
fn resume_sends_one_delta_when_history_and_hash_allow() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(20));
    let sub = group(&registry, "{ workflows { taskProxies { status } } }");
    let mut a = Client::new();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(sub.clone()), None);
    a.drain();
    views.leave(ClientId(1));
    // While it is away, things change.
    for i in 0..5 {
        store.apply(
            &mut views,
            "taskProxies",
            json!({ format!("1/t{i}"): {"status": "running"} }),
        );
    }
    let points = a.store.resume_points();
    let mut back = Client {
        outbox: Arc::new(Outbox::new(1 << 20, 8 << 20, Default::default())),
        store: a.store.clone(),
        frames: vec![],
    };
    views.rebind(
        &store,
        ClientId(2),
        back.outbox.clone(),
        Some(sub.clone()),
        points.get(W),
    );
    back.drain();
    let sent: Vec<&String> = back
        .frames
        .iter()
        .filter(|f| !f.contains("\"type\":\"workflow\""))
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("\"type\":\"delta\""), "{}", sent[0]);
    assert_eq!(back.copy("taskProxies"), projection(&store, &sub, "taskProxies"));

    // A resume point whose hash does not check gets a snapshot.
    let mut wrong: BTreeMap<String, ResumePoint> = points.get(W).cloned().unwrap();
    if let Some(p) = wrong.get_mut("taskProxies") {
        p.hash = clonewire_core::Hash(p.hash.0 ^ 1);
    }
    let mut other = Client::new();
    views.rebind(
        &store,
        ClientId(3),
        other.outbox.clone(),
        Some(sub.clone()),
        Some(&wrong),
    );
    other.drain();
    assert!(other.frames.iter().any(|f| f.contains("\"type\":\"snapshot\"")));
}

#[test]
fn a_new_epoch_arrives_as_a_snapshot() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(3));
    let sub = group(&registry, "{ workflows { taskProxies } }");
    let mut a = Client::new();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(sub.clone()), None);
    a.drain();
    store.epoch = "e2".into();
    views.on_new_epoch();
    let entry = store.topics.get_mut("taskProxies").unwrap();
    let changes = entry.0.replace(&json!({"2/x": {"status": "waiting"}})).unwrap();
    entry.1 = Seq::new(1);
    views.on_changes(&store, "taskProxies", Seq::ZERO, Seq::new(1), &changes, None);
    views.flush(&store);
    a.drain();
    assert!(a.frames.last().unwrap().contains("\"type\":\"snapshot\""));
    assert_eq!(a.store.get(W, "taskProxies").unwrap().epoch, "e2");
    assert_eq!(a.copy("taskProxies"), json!({"2/x": {"status": "waiting"}}));
}

#[test]
fn a_lagging_client_gets_one_bridging_delta_and_converges() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(1_000));
    store.apply(&mut views, "taskProxies", tasks(10));
    let sub = group(&registry, "{ workflows { taskProxies { status } } }");
    let counters: Arc<OutboxCounters> = Default::default();
    let outbox = Arc::new(Outbox::new(2_000, 1 << 20, counters.clone()));
    let mut slow = Client {
        outbox,
        store: new_store(),
        frames: vec![],
    };
    views.rebind(&store, ClientId(1), slow.outbox.clone(), Some(sub.clone()), None);
    let joined = slow.outbox.bytes();
    for round in 0..200 {
        store.apply(
            &mut views,
            "taskProxies",
            json!({ format!("1/t{}", round % 10): {"status": format!("s{round}")} }),
        );
    }
    let queued = slow.outbox.bytes() - joined;
    assert!(queued <= 2_000, "{queued} bytes of deltas queued");
    let outbox = slow.outbox.clone();
    let sent = slow.drain_bridging(|asks| {
        for (topic, held) in asks {
            views.bridge_lagging(&store, ClientId(1), &outbox, &topic, held.as_ref());
        }
    });
    assert!(sent < 30, "{sent} messages for 200 deltas");
    assert!(counters.conflated.load(std::sync::atomic::Ordering::Relaxed) > 170);
    assert_eq!(counters.bridges.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(views.stats().bridged, 1, "a delta, not a snapshot");
    assert_eq!(slow.copy("taskProxies"), projection(&store, &sub, "taskProxies"));
    // Once bridged it follows deltas again.
    store.apply(&mut views, "taskProxies", json!({"1/t0": {"status": "done"}}));
    slow.drain();
    assert_eq!(slow.copy("taskProxies"), projection(&store, &sub, "taskProxies"));
}

#[test]
fn a_lagging_client_beyond_history_or_rebound_gets_a_snapshot() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(5));
    store.apply(&mut views, "taskProxies", tasks(10));
    let narrow = group(&registry, "{ workflows { taskProxies { status } } }");
    let wide = group(&registry, "{ workflows { taskProxies { status name } } }");
    let mut slow = Client {
        outbox: Arc::new(Outbox::new(1_000, 1 << 20, Default::default())),
        store: new_store(),
        frames: vec![],
    };
    views.rebind(
        &store,
        ClientId(1),
        slow.outbox.clone(),
        Some(narrow.clone()),
        None,
    );
    for round in 0..50 {
        store.apply(
            &mut views,
            "taskProxies",
            json!({ format!("1/t{}", round % 10): {"status": format!("s{round}")} }),
        );
    }
    // It changes subscription while lagging: what it holds is not the new view's.
    views.rebind(&store, ClientId(1), slow.outbox.clone(), Some(wide.clone()), None);
    store.apply(&mut views, "taskProxies", json!({"1/t1": {"name": "renamed"}}));
    let outbox = slow.outbox.clone();
    slow.drain_bridging(|asks| {
        for (topic, held) in asks {
            views.bridge_lagging(&store, ClientId(1), &outbox, &topic, held.as_ref());
        }
    });
    assert_eq!(views.stats().bridged, 0, "history too short and the view changed");
    assert!(slow.frames.iter().any(|f| f.contains("\"type\":\"snapshot\"")));
    assert_eq!(slow.copy("taskProxies"), projection(&store, &wide, "taskProxies"));
}

#[test]
fn different_subscriptions_that_see_the_same_change_share_its_patch() {
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(3));
    let narrow = group(&registry, "{ workflows { taskProxies { status } } }");
    let wide = group(&registry, "{ workflows { taskProxies { status name } } }");
    let (mut a, mut b) = (Client::new(), Client::new());
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(narrow.clone()), None);
    views.rebind(&store, ClientId(2), b.outbox.clone(), Some(wide.clone()), None);
    a.drain();
    b.drain();
    store.apply(&mut views, "taskProxies", json!({"1/t0": {"status": "running"}}));
    match (a.outbox.pop(), b.outbox.pop()) {
        (Some(Outgoing::Delta(x)), Some(Outgoing::Delta(y))) => {
            assert!(
                !Arc::ptr_eq(&x, &y),
                "two subscriptions, two messages (their hashes differ)"
            );
            assert!(Arc::ptr_eq(&x.changes, &y.changes), "one projected patch");
            let decoded = RelayMessage::decode(&x.text).unwrap();
            assert!(
                matches!(
                    decoded,
                    RelayMessage::Delta { seq, prev, .. }
                        if seq == Seq::new(2) && prev == Some(Seq::new(1))
                ),
                "{decoded:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A change only the wide one selects goes to it alone.
    store.apply(&mut views, "taskProxies", json!({"1/t0": {"name": "renamed"}}));
    assert!(a.outbox.pop().is_none());
    assert!(matches!(b.outbox.pop(), Some(Outgoing::Delta(_))));
}

#[test]
fn a_big_join_made_off_the_link_thread_holds_up_only_the_joining_clients() {
    use super::snapshots::{HOLD, OFF_THREAD_ENTRIES};
    let registry = Registry::default();
    let mut store = Fake::new();
    let mut views = SubscriptionViews::new(Arc::from(W), HistoryLimit::steps(100));
    store.apply(&mut views, "taskProxies", tasks(OFF_THREAD_ENTRIES + 10));
    let few = group(
        &registry,
        r#"{ workflows { taskProxies(ids: ["1/t0", "1/t1"]) { status } } }"#,
    );
    let all = group(&registry, "{ workflows { taskProxies { name status } } }");
    let mut a = Client::new();
    views.rebind(&store, ClientId(1), a.outbox.clone(), Some(few.clone()), None);
    a.drain();
    assert_eq!(a.copy("taskProxies"), projection(&store, &few, "taskProxies"));

    // The big snapshot cannot be finished while the test holds the writers.
    let held = HOLD.lock().unwrap_or_else(|e| e.into_inner());
    let (mut b, mut c) = (Client::new(), Client::new());
    views.rebind(&store, ClientId(2), b.outbox.clone(), Some(all.clone()), None);
    for (i, status) in ["running", "succeeded", "failed"].iter().enumerate() {
        store.apply(
            &mut views,
            "taskProxies",
            json!({ format!("1/t{}", i % 2): {"status": status} }),
        );
        if i == 1 {
            // Another client joins the same view before the first snapshot is written.
            views.rebind(&store, ClientId(3), c.outbox.clone(), Some(all.clone()), None);
        }
        // The connected client keeps getting every delta, in order, meanwhile.
        assert_eq!(a.drain(), 1, "one delta for a");
        assert_eq!(a.copy("taskProxies"), projection(&store, &few, "taskProxies"));
    }
    for joining in [&mut b, &mut c] {
        assert_eq!(joining.drain(), 1, "only the workflow frame before the snapshot");
        assert_eq!(joining.copy("taskProxies"), json!({}));
    }
    drop(held);

    // Once written, each joining client gets its snapshot first, then the deltas
    // queued behind it (every message is checked by the client's own store).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for joining in [&mut b, &mut c] {
        while joining.drain() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the snapshot is never written"
            );
            // The link thread's turns: a big snapshot is projected a slice per turn.
            views.flush(&store);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            joining.copy("taskProxies"),
            projection(&store, &all, "taskProxies")
        );
    }
    assert!(
        b.frames[1].starts_with(r#"{"type":"snapshot""#),
        "{}",
        &b.frames[1][..40]
    );
    assert_eq!(b.frames.len(), 2 + 3, "workflow, snapshot, three deltas");
    // The second join, two deltas later, shares the first one's snapshot (one build
    // per view) and gets one bridging delta from it, then the last delta.
    assert_eq!(
        c.frames.len(),
        2 + 2,
        "workflow, snapshot, bridging delta, the last delta"
    );
    assert_eq!(b.frames[1], c.frames[1]);
}
