//! One client's send queue, bounded in bytes.
//!
//! Frames are shared: a delta is serialized once per distinct subscription and the
//! same `Arc` sits in the outbox of every client that shares it. When a client falls
//! behind (queued bytes over the soft limit) its further deltas are conflated per
//! (workflow, topic) into one composed change set; past the hard limit its pending
//! deltas are dropped and it is sent fresh snapshots once it has caught up. Either way
//! a client that never reads cannot grow the relay without bound or slow anyone else.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use clonewire_core::protocol::client::RelayMessage;
use clonewire_core::{Changes, Hash};
use tokio::sync::Notify;

use crate::metrics::OutboxCounters;

/// A (workflow, topic) pair: the unit of ordering and conflation.
pub type TopicKey = (Arc<str>, Arc<str>);

/// A projected delta, serialized once and shared by every client of one subscription.
#[derive(Debug)]
pub struct SharedDelta {
    /// Workflow and topic.
    pub key: TopicKey,
    /// The suite epoch.
    pub epoch: Arc<str>,
    /// The suite seq.
    pub seq: u64,
    /// The seq of the subscription's previous message for this (workflow, topic).
    pub prev: Option<u64>,
    /// Projection hash after applying.
    pub hash: Hash,
    /// The suite's publish time (ms).
    pub time: Option<f64>,
    /// The projected changes, kept so the delta can be conflated (shared by every
    /// view whose projection of this change is the same).
    pub changes: Arc<Changes>,
    /// The serialized `delta` message.
    pub text: Arc<str>,
}

/// Deltas of one (workflow, topic) composed into one.
#[derive(Debug)]
pub struct Conflated {
    key: TopicKey,
    epoch: Arc<str>,
    first_prev: Option<u64>,
    seq: u64,
    hash: Hash,
    time: Option<f64>,
    changes: Changes,
    /// Deltas composed so far.
    pub count: usize,
}

impl Conflated {
    fn start(delta: &SharedDelta) -> Conflated {
        Conflated {
            key: delta.key.clone(),
            epoch: delta.epoch.clone(),
            first_prev: delta.prev,
            seq: delta.seq,
            hash: delta.hash,
            time: delta.time,
            changes: Changes::clone(&delta.changes),
            count: 1,
        }
    }

    fn add(&mut self, delta: &SharedDelta) {
        self.changes = std::mem::take(&mut self.changes).then(Changes::clone(&delta.changes));
        self.epoch = delta.epoch.clone();
        self.seq = delta.seq;
        self.hash = delta.hash;
        self.time = delta.time;
        self.count += 1;
    }

    /// The composed delta as one message.
    pub fn to_text(&self) -> String {
        RelayMessage::Delta {
            workflow: self.key.0.to_string(),
            topic: self.key.1.to_string(),
            epoch: self.epoch.to_string(),
            seq: self.seq,
            prev: self.first_prev,
            hash: self.hash,
            time: self.time,
            patch: self.changes.to_patch(),
        }
        .to_text()
    }

    /// The newest suite time among the composed deltas.
    pub fn time(&self) -> Option<f64> {
        self.time
    }
}

/// What the writer sends next.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame with no (workflow, topic) ordering: hello, subscribed, workflow, error.
    Text(Arc<str>),
    /// A snapshot frame.
    Snapshot(Arc<str>),
    /// A shared delta frame.
    Delta(Arc<SharedDelta>),
    /// Composed deltas, serialized for this client alone.
    Conflated(Conflated),
    /// These (workflow, topic)s lost deltas while the client was far behind; ask for
    /// fresh snapshots now that it has caught up.
    Resync(Vec<TopicKey>),
    /// Close the connection with this code and reason.
    Close(u16, &'static str),
}

enum Item {
    Text(Arc<str>),
    Snapshot(TopicKey, Arc<str>),
    Delta(Arc<SharedDelta>),
    /// Where the conflated deltas of this key go out; the deltas are in `conflated`.
    ConflatedSlot(TopicKey),
    Close(u16, &'static str),
}

impl Item {
    fn key(&self) -> Option<&TopicKey> {
        match self {
            Item::Snapshot(key, _) | Item::ConflatedSlot(key) => Some(key),
            Item::Delta(d) => Some(&d.key),
            Item::Text(_) | Item::Close(..) => None,
        }
    }
}

#[derive(Default)]
struct Inner {
    items: VecDeque<(Item, usize)>,
    bytes: usize,
    /// The part of `bytes` that is snapshots: catch-up data, bounded by the store and
    /// not counted against the limits (else a big snapshot could never be sent).
    snapshot_bytes: usize,
    conflated: HashMap<TopicKey, (Conflated, usize)>,
    /// Keys whose deltas are dropped until a snapshot; `true` once asked for.
    needs_snapshot: BTreeMap<TopicKey, bool>,
    closed: bool,
}

/// One client's bounded send queue.
pub struct Outbox {
    inner: Mutex<Inner>,
    notify: Notify,
    soft_bytes: usize,
    hard_bytes: usize,
    counters: Arc<OutboxCounters>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An empty outbox with the two limits (bytes), counting into `counters`.
    pub fn new(soft_bytes: usize, hard_bytes: usize, counters: Arc<OutboxCounters>) -> Outbox {
        Outbox {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            soft_bytes,
            hard_bytes,
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves a queue that is still sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queued bytes now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Queues a frame that is not tied to a (workflow, topic).
    pub fn push_text(&self, text: Arc<str>) {
        let len = text.len();
        self.push(Item::Text(text), len);
    }

    /// Queues a close frame; nothing is queued after it.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.items.push_back((Item::Close(code, reason), 0));
            inner.closed = true;
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Queues a snapshot, which supersedes everything still queued for its key.
    pub fn push_snapshot(&self, key: TopicKey, text: Arc<str>) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        let (mut freed, mut freed_snapshots) = (0, 0);
        inner.items.retain(|(item, len)| {
            let stale = item.key() == Some(&key);
            if stale {
                freed += len;
                if matches!(item, Item::Snapshot(..)) {
                    freed_snapshots += len;
                }
            }
            !stale
        });
        inner.snapshot_bytes -= freed_snapshots;
        if let Some((_, len)) = inner.conflated.remove(&key) {
            freed += len;
        }
        inner.bytes -= freed;
        inner.needs_snapshot.remove(&key);
        let len = text.len();
        inner.items.push_back((Item::Snapshot(key, text), len));
        inner.bytes += len;
        inner.snapshot_bytes += len;
        self.settle(inner);
    }

    /// Queues a shared delta, conflating it when the client is behind.
    pub fn push_delta(&self, delta: &Arc<SharedDelta>) {
        let mut inner = self.lock();
        if inner.closed || inner.needs_snapshot.contains_key(&delta.key) {
            return;
        }
        let len = delta.text.len();
        if let Some((conflated, bytes)) = inner.conflated.get_mut(&delta.key) {
            conflated.add(delta);
            *bytes += len;
            OutboxCounters::bump(&self.counters.conflated);
        } else if inner.bytes - inner.snapshot_bytes + len > self.soft_bytes {
            inner
                .conflated
                .insert(delta.key.clone(), (Conflated::start(delta), len));
            inner.items.push_back((Item::ConflatedSlot(delta.key.clone()), 0));
            OutboxCounters::bump(&self.counters.conflated);
        } else {
            inner.items.push_back((Item::Delta(delta.clone()), len));
        }
        inner.bytes += len;
        self.settle(inner);
    }

    fn push(&self, item: Item, len: usize) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        inner.items.push_back((item, len));
        inner.bytes += len;
        self.settle(inner);
    }

    /// Enforces the hard limit, then wakes the writer.
    fn settle(&self, mut inner: MutexGuard<'_, Inner>) {
        if inner.bytes - inner.snapshot_bytes > self.hard_bytes {
            // Drop every pending delta; their keys get fresh snapshots once the client
            // has caught up. Queued snapshots stay: they are how it catches up, and one
            // larger than the limit must still be deliverable (it is bounded by the
            // store, which the relay holds anyway).
            let mut dropped = Vec::new();
            inner.items.retain(|(item, _)| match item {
                Item::Delta(d) => {
                    dropped.push(d.key.clone());
                    false
                }
                Item::ConflatedSlot(key) => {
                    dropped.push(key.clone());
                    false
                }
                Item::Snapshot(..) | Item::Text(_) | Item::Close(..) => true,
            });
            inner.conflated.clear();
            for key in dropped {
                inner.needs_snapshot.insert(key, false);
            }
            inner.bytes = inner.items.iter().map(|(_, len)| len).sum();
            OutboxCounters::bump(&self.counters.overflows);
            let unordered: usize = inner
                .items
                .iter()
                .filter(|(item, _)| matches!(item, Item::Text(_)))
                .map(|(_, len)| len)
                .sum();
            if unordered > self.hard_bytes && !inner.closed {
                // Unordered frames alone are too many: give up on this client.
                inner.items.clear();
                inner.bytes = 0;
                inner.snapshot_bytes = 0;
                inner
                    .items
                    .push_back((Item::Close(1008, "too slow: send queue full"), 0));
                inner.closed = true;
            }
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Takes the next thing to send, or `None` when the queue is empty and nothing
    /// waits for a resync.
    pub fn pop(&self) -> Option<Outgoing> {
        let mut inner = self.lock();
        match inner.items.pop_front() {
            Some((item, len)) => {
                inner.bytes -= len;
                Some(match item {
                    Item::Text(text) => Outgoing::Text(text),
                    Item::Snapshot(_, text) => {
                        inner.snapshot_bytes -= len;
                        Outgoing::Snapshot(text)
                    }
                    Item::Delta(delta) => Outgoing::Delta(delta),
                    Item::Close(code, reason) => Outgoing::Close(code, reason),
                    Item::ConflatedSlot(key) => match inner.conflated.remove(&key) {
                        Some((conflated, bytes)) => {
                            inner.bytes -= bytes;
                            Outgoing::Conflated(conflated)
                        }
                        // Superseded by a snapshot or an overflow: nothing to send.
                        None => return self.pop_after(inner),
                    },
                })
            }
            None => self.pop_after(inner),
        }
    }

    fn pop_after(&self, mut inner: MutexGuard<'_, Inner>) -> Option<Outgoing> {
        if !inner.items.is_empty() {
            drop(inner);
            return self.pop();
        }
        let asks: Vec<TopicKey> = inner
            .needs_snapshot
            .iter_mut()
            .filter(|(_, asked)| !**asked)
            .map(|(key, asked)| {
                *asked = true;
                key.clone()
            })
            .collect();
        (!asks.is_empty()).then_some(Outgoing::Resync(asks))
    }

    /// Waits until there may be something to pop.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clonewire_core::{HashedLeaf, LeafChange};
    use serde_json::json;

    fn key(t: &str) -> TopicKey {
        (Arc::from("w"), Arc::from(t))
    }

    fn delta(t: &str, seq: u64, leaf: &str, value: i64) -> Arc<SharedDelta> {
        let changes = Changes {
            leaves: vec![LeafChange {
                path: vec![t.into(), leaf.into()],
                old: None,
                new: Some(HashedLeaf {
                    value: json!(value),
                    hash: seq,
                }),
            }],
        };
        Arc::new(SharedDelta {
            key: key(t),
            epoch: Arc::from("e"),
            seq,
            prev: Some(seq - 1),
            hash: Hash(seq),
            time: None,
            changes: Arc::new(changes),
            text: Arc::from("x".repeat(100)),
        })
    }

    #[test]
    fn under_the_soft_limit_frames_are_shared_and_in_order() {
        let out = Outbox::new(1_000, 10_000, Default::default());
        let d = delta("t", 1, "a", 1);
        out.push_delta(&d);
        out.push_text(Arc::from("hi"));
        match out.pop() {
            Some(Outgoing::Delta(got)) => assert!(Arc::ptr_eq(&got, &d), "the same bytes, not a copy"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(out.pop(), Some(Outgoing::Text(_))));
        assert!(out.pop().is_none());
        assert_eq!(out.bytes(), 0);
    }

    #[test]
    fn a_slow_client_gets_one_composed_delta_per_topic() {
        let counters: Arc<OutboxCounters> = Default::default();
        let out = Outbox::new(250, 100_000, counters.clone());
        for seq in 1..=10 {
            out.push_delta(&delta("t", seq, if seq % 2 == 0 { "a" } else { "b" }, seq as i64));
        }
        let mut got = Vec::new();
        while let Some(item) = out.pop() {
            got.push(item);
        }
        assert_eq!(got.len(), 3, "two plain deltas, then one conflated: {got:?}");
        let Outgoing::Conflated(c) = &got[2] else {
            panic!("{:?}", got[2])
        };
        assert_eq!((c.first_prev, c.seq, c.count), (Some(2), 10, 8));
        let text: serde_json::Value = serde_json::from_str(&c.to_text()).unwrap();
        assert_eq!(text["patch"], json!({"a": 10, "b": 9}));
        assert_eq!(counters.conflated.load(std::sync::atomic::Ordering::Relaxed), 8);
    }

    #[test]
    fn past_the_hard_limit_deltas_drop_and_a_snapshot_is_asked_for() {
        let out = Outbox::new(150, 400, Default::default());
        for seq in 1..=50 {
            out.push_delta(&delta("t", seq, &format!("k{seq}"), 1));
        }
        assert!(out.bytes() <= 400, "bounded: {}", out.bytes());
        match out.pop() {
            Some(Outgoing::Resync(keys)) => assert_eq!(keys, vec![key("t")]),
            other => panic!("{other:?}"),
        }
        assert!(out.pop().is_none(), "asked once");
        out.push_delta(&delta("t", 51, "x", 1));
        assert!(out.pop().is_none(), "deltas wait for the snapshot");
        out.push_snapshot(key("t"), Arc::from("snap"));
        out.push_delta(&delta("t", 52, "x", 2));
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(_))));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(_))));
    }

    #[test]
    fn a_snapshot_supersedes_what_is_queued_for_its_topic_only() {
        let out = Outbox::new(10_000, 100_000, Default::default());
        out.push_delta(&delta("t", 1, "a", 1));
        out.push_delta(&delta("u", 1, "a", 1));
        out.push_snapshot(key("t"), Arc::from("snap"));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.key == key("u")));
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(_))));
    }

    #[test]
    fn a_snapshot_larger_than_the_hard_limit_is_still_delivered() {
        let out = Outbox::new(100, 200, Default::default());
        out.push_delta(&delta("t", 1, "a", 1));
        out.push_snapshot(key("t"), Arc::from("s".repeat(1_000)));
        out.push_delta(&delta("t", 2, "a", 2));
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(t)) if t.len() == 1_000));
        assert!(
            matches!(out.pop(), Some(Outgoing::Delta(_))),
            "deltas after it still flow"
        );
        assert!(out.pop().is_none());
    }

    #[test]
    fn unordered_frames_past_the_hard_limit_close_the_client() {
        let out = Outbox::new(100, 200, Default::default());
        for _ in 0..10 {
            out.push_text(Arc::from("e".repeat(50)));
        }
        assert!(matches!(out.pop(), Some(Outgoing::Close(1008, _))));
        out.push_text(Arc::from("late"));
        assert!(out.pop().is_none());
    }
}
