//! One client's send queue, bounded in bytes.
//!
//! Frames are shared: a delta is serialized once per distinct subscription and the
//! same `Arc` sits in the outbox of every client that shares it. When a client falls
//! behind (queued bytes over the soft limit) the outbox stops queueing deltas for a
//! (workflow, topic) and only remembers what the client will hold once the queue in
//! front drains: its seq and projection hash ([`ResumePoint`]). Each later delta for
//! that key costs one map look-up and is dropped. When the writer reaches the spot,
//! it asks the workflow's link thread for the one delta that bridges the client from
//! what it holds to what it should hold ([`Outgoing::Bridge`]); the link thread
//! answers with [`Outbox::push_bridge`] (or a snapshot). Past the hard limit the queued
//! deltas themselves are dropped the same way. A client that never reads therefore
//! costs O(1) per delta and at most its limits in memory, and slows nobody else.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use clonewire_core::protocol::client::{CloseCode, ResumePoint};
use clonewire_core::{Changes, Hash, Seq};
use tokio::sync::Notify;

use crate::serve::metrics::OutboxCounters;

/// A (workflow, topic) pair: the unit of ordering and bridging.
pub type SharedTopicKey = (Arc<str>, Arc<str>);

/// A projected delta, serialized once and shared by every client of one subscription.
#[derive(Debug)]
pub struct SharedDelta {
    /// Workflow and topic.
    pub key: SharedTopicKey,
    /// The suite epoch.
    pub epoch: Arc<str>,
    /// The suite seq.
    pub seq: Seq,
    /// The seq of the subscription's previous message for this (workflow, topic).
    pub prev: Option<Seq>,
    /// Projection hash after applying.
    pub hash: Hash,
    /// The suite's publish time (ms).
    pub time: Option<f64>,
    /// The projected changes (shared by every view whose projection of this change is
    /// the same); they give the hash before the delta when a client starts lagging.
    pub changes: Arc<Changes>,
    /// The serialized `delta` message.
    pub text: Arc<str>,
}

impl SharedDelta {
    /// What a client holds just before this delta: `None` when the delta starts the
    /// subscription's sequence (no `prev`).
    fn held_before(&self) -> Option<ResumePoint> {
        Some(ResumePoint {
            epoch: self.epoch.to_string(),
            seq: self.prev?,
            hash: self.changes.unapply_from_hash(self.hash),
        })
    }
}

/// A snapshot's text, possibly still being written (off the link thread, see
/// `views::snapshots`). An outbox holding one that is not ready sends nothing past it,
/// so a client never gets a delta before the snapshot it applies to; the outboxes
/// waiting on it are woken when it is filled.
#[derive(Debug, Default)]
pub struct SnapshotFrame {
    text: OnceLock<Arc<str>>,
    /// Outboxes to wake once the text is there.
    waiters: Mutex<Vec<Weak<Outbox>>>,
}

impl SnapshotFrame {
    /// A frame whose text is ready.
    pub fn ready(text: Arc<str>) -> Arc<SnapshotFrame> {
        let frame = SnapshotFrame::default();
        let _ = frame.text.set(text);
        Arc::new(frame)
    }

    /// A frame whose text comes later ([`SnapshotFrame::fill`]).
    pub fn pending() -> Arc<SnapshotFrame> {
        Arc::new(SnapshotFrame::default())
    }

    /// The text, once written.
    pub fn text(&self) -> Option<&Arc<str>> {
        self.text.get()
    }

    /// Sets the text (once; later calls change nothing) and wakes the outboxes
    /// holding the frame.
    pub fn fill(&self, text: Arc<str>) {
        let _ = self.text.set(text);
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for outbox in waiters.iter().filter_map(Weak::upgrade) {
            outbox.notify.notify_one();
        }
    }

    /// Asks to wake `outbox` when the text is filled; false if it is already there.
    fn wake_later(&self, outbox: &Arc<Outbox>) -> bool {
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if self.text.get().is_some() {
            return false;
        }
        waiters.push(Arc::downgrade(outbox));
        true
    }
}

/// One (workflow, topic) of a lagging client: what it holds, and whether its link
/// thread was asked for the bridging delta yet.
#[derive(Debug)]
struct Lag {
    /// `None`: unknown (it gets a snapshot).
    held: Option<ResumePoint>,
    asked: bool,
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
    /// Everything queued before these (workflow, topic)s' lag went out: ask their link
    /// threads for one bridging delta each, from what the client holds (`None`:
    /// unknown, so a snapshot).
    Bridge(Vec<(SharedTopicKey, Option<ResumePoint>)>),
    /// Close the connection with this code and reason.
    Close(CloseCode, &'static str),
}

enum Item {
    Text(Arc<str>),
    Snapshot(SharedTopicKey, Arc<SnapshotFrame>),
    Delta(Arc<SharedDelta>),
    /// A bridging delta: catch-up data like a snapshot, so never dropped for the limits
    /// (else one larger than the hard limit would be dropped and asked for forever).
    Bridge(Arc<SharedDelta>),
    /// Where this key's lag is to be bridged, once everything before it went out.
    LagSlot(SharedTopicKey),
    Close(CloseCode, &'static str),
}

impl Item {
    fn key(&self) -> Option<&SharedTopicKey> {
        match self {
            Item::Snapshot(key, _) | Item::LagSlot(key) => Some(key),
            Item::Delta(d) | Item::Bridge(d) => Some(&d.key),
            Item::Text(_) | Item::Close(..) => None,
        }
    }
}

#[derive(Default)]
struct Inner {
    items: VecDeque<(Item, usize)>,
    bytes: usize,
    /// The part of `bytes` that is snapshots and bridging deltas: catch-up data,
    /// bounded by the store and not counted against the limits (else a big one could
    /// never be sent).
    snapshot_bytes: usize,
    /// Keys whose deltas are not queued until they are bridged.
    lagging: HashMap<SharedTopicKey, Lag>,
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

    /// How many (workflow, topic)s are lagging (their deltas are not queued).
    pub fn lagging(&self) -> usize {
        self.lock().lagging.len()
    }

    /// Queues a frame that is not tied to a (workflow, topic).
    pub fn push_text(&self, text: Arc<str>) {
        let len = text.len();
        self.push(Item::Text(text), len);
    }

    /// Queues a close frame; nothing is queued after it.
    pub fn close(&self, code: CloseCode, reason: &'static str) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.items.push_back((Item::Close(code, reason), 0));
            inner.closed = true;
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Queues a snapshot, which supersedes everything still queued for its key and
    /// ends its lag.
    pub fn push_snapshot(&self, key: SharedTopicKey, text: Arc<str>) {
        self.push_frame(key, SnapshotFrame::ready(text));
    }

    /// Queues a snapshot whose text may still be being written, as
    /// [`push_snapshot`](Self::push_snapshot) does; nothing queued after it is sent
    /// before it. Until its text is there it counts as no bytes (snapshots never count
    /// against the limits).
    pub fn push_snapshot_frame(self: &Arc<Self>, key: SharedTopicKey, frame: Arc<SnapshotFrame>) {
        frame.wake_later(self);
        self.push_frame(key, frame);
    }

    fn push_frame(&self, key: SharedTopicKey, frame: Arc<SnapshotFrame>) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        let (mut freed, mut freed_snapshots) = (0, 0);
        inner.items.retain(|(item, len)| {
            let stale = item.key() == Some(&key);
            if stale {
                freed += len;
                if matches!(item, Item::Snapshot(..) | Item::Bridge(_)) {
                    freed_snapshots += len;
                }
            }
            !stale
        });
        inner.snapshot_bytes -= freed_snapshots;
        inner.bytes -= freed;
        inner.lagging.remove(&key);
        let len = frame.text().map_or(0, |t| t.len());
        inner.items.push_back((Item::Snapshot(key, frame), len));
        inner.bytes += len;
        inner.snapshot_bytes += len;
        self.settle(inner);
    }

    /// Queues a shared delta; when the client is behind, its key starts lagging and
    /// the delta (like every later one for that key until it is bridged) is dropped.
    pub fn push_delta(&self, delta: &Arc<SharedDelta>) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if inner.lagging.contains_key(&delta.key) {
            OutboxCounters::bump(&self.counters.conflated);
            return;
        }
        let len = delta.text.len();
        if inner.bytes - inner.snapshot_bytes + len > self.soft_bytes {
            let held = delta.held_before();
            inner
                .lagging
                .insert(delta.key.clone(), Lag { held, asked: false });
            inner.items.push_back((Item::LagSlot(delta.key.clone()), 0));
            OutboxCounters::bump(&self.counters.conflated);
            drop(inner);
            self.notify.notify_one();
            return;
        }
        inner.items.push_back((Item::Delta(delta.clone()), len));
        inner.bytes += len;
        self.settle(inner);
    }

    /// The link thread's answer to [`Outgoing::Bridge`] for `key`: the one delta from
    /// what the client held to what it should hold (`None`: it already holds that).
    /// It ends the lag. An answer that a snapshot overtook is dropped: the snapshot
    /// already moved the client on.
    pub fn push_bridge(&self, key: &SharedTopicKey, delta: Option<Arc<SharedDelta>>) {
        let mut inner = self.lock();
        if inner.closed || !inner.lagging.get(key).is_some_and(|lag| lag.asked) {
            return;
        }
        inner.lagging.remove(key);
        if let Some(delta) = delta {
            let len = delta.text.len();
            inner.items.push_back((Item::Bridge(delta), len));
            inner.bytes += len;
            inner.snapshot_bytes += len;
            OutboxCounters::bump(&self.counters.bridges);
        }
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
            // Every queued delta goes; its key lags from what the client holds before
            // the first one dropped. Queued snapshots stay: they are how it catches up,
            // and one larger than the limit must still be deliverable (it is bounded by
            // the store, which the relay holds anyway).
            let mut first: Vec<(SharedTopicKey, Option<ResumePoint>)> = Vec::new();
            inner.items.retain(|(item, _)| match item {
                Item::Delta(d) => {
                    if !first.iter().any(|(k, _)| *k == d.key) {
                        first.push((d.key.clone(), d.held_before()));
                    }
                    false
                }
                Item::Snapshot(..) | Item::Bridge(_) | Item::LagSlot(_) | Item::Text(_) | Item::Close(..) => {
                    true
                }
            });
            for (key, held) in first {
                // A key already asked for has no slot left: it needs a new one.
                let slotted = inner.lagging.get(&key).is_some_and(|lag| !lag.asked);
                inner.lagging.insert(key.clone(), Lag { held, asked: false });
                if !slotted {
                    inner.items.push_back((Item::LagSlot(key), 0));
                }
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
                inner.lagging.clear();
                inner.bytes = 0;
                inner.snapshot_bytes = 0;
                inner.items.push_back((
                    Item::Close(CloseCode::PolicyViolation, "too slow: send queue full"),
                    0,
                ));
                inner.closed = true;
            }
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Takes the next thing to send, or `None` when the queue is empty or its front is
    /// a snapshot still being written ([`Outbox::ready`] wakes when it is done).
    pub fn pop(&self) -> Option<Outgoing> {
        let mut inner = self.lock();
        loop {
            if let Some((Item::Snapshot(_, frame), _)) = inner.items.front() {
                if frame.text().is_none() {
                    OutboxCounters::bump(&self.counters.snapshot_waits);
                    return None;
                }
            }
            let (item, len) = inner.items.pop_front()?;
            inner.bytes -= len;
            return Some(match item {
                Item::Text(text) => Outgoing::Text(text),
                Item::Snapshot(_, frame) => {
                    inner.snapshot_bytes -= len;
                    // Checked at the front above; a filled frame stays filled.
                    let Some(text) = frame.text() else { continue };
                    Outgoing::Snapshot(text.clone())
                }
                Item::Delta(delta) => Outgoing::Delta(delta),
                Item::Bridge(delta) => {
                    inner.snapshot_bytes -= len;
                    Outgoing::Delta(delta)
                }
                Item::Close(code, reason) => Outgoing::Close(code, reason),
                Item::LagSlot(key) => {
                    // Every lag slot at the front goes in one request.
                    let mut asks = Vec::new();
                    let mut next = Some(key);
                    while let Some(key) = next.take() {
                        if let Some(lag) = inner.lagging.get_mut(&key).filter(|lag| !lag.asked) {
                            lag.asked = true;
                            asks.push((key, lag.held.clone()));
                        }
                        if matches!(inner.items.front(), Some((Item::LagSlot(_), _))) {
                            if let Some((Item::LagSlot(key), _)) = inner.items.pop_front() {
                                next = Some(key);
                            }
                        }
                    }
                    if asks.is_empty() {
                        // Superseded by a snapshot: nothing to ask.
                        continue;
                    }
                    Outgoing::Bridge(asks)
                }
            });
        }
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
    use std::sync::atomic::{AtomicBool, Ordering};

    fn key(t: &str) -> SharedTopicKey {
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
        // The hash before is `seq - 1` plus nothing removed: after is before + seq.
        let before = Hash(seq * 1_000);
        Arc::new(SharedDelta {
            key: key(t),
            epoch: Arc::from("e"),
            seq: Seq::new(seq),
            prev: Some(Seq::new(seq - 1)),
            hash: changes.apply_to_hash(before),
            time: None,
            changes: Arc::new(changes),
            text: Arc::from("x".repeat(100)),
        })
    }

    impl SharedDelta {
        fn clone_for_test(d: &SharedDelta) -> SharedDelta {
            SharedDelta {
                key: d.key.clone(),
                epoch: d.epoch.clone(),
                seq: d.seq,
                prev: d.prev,
                hash: d.hash,
                time: d.time,
                changes: d.changes.clone(),
                text: d.text.clone(),
            }
        }
    }

    fn drain(out: &Outbox) -> Vec<Outgoing> {
        std::iter::from_fn(|| out.pop()).collect()
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
    fn a_lagging_key_queues_nothing_and_asks_once_for_a_bridge() {
        let counters: Arc<OutboxCounters> = Default::default();
        let out = Outbox::new(250, 100_000, counters.clone());
        for seq in 1..=1_000 {
            out.push_delta(&delta("t", seq, "a", seq as i64));
        }
        assert_eq!(out.bytes(), 200, "two deltas queued, the rest only remembered");
        assert_eq!(counters.conflated.load(Ordering::Relaxed), 998);
        let got = drain(&out);
        assert_eq!(got.len(), 3, "{got:?}");
        let Outgoing::Bridge(asks) = &got[2] else {
            panic!("{:?}", got[2])
        };
        let third = delta("t", 3, "a", 3);
        let held = asks[0].1.as_ref().unwrap();
        assert_eq!(
            (held.seq, held.hash),
            (Seq::new(2), third.changes.unapply_from_hash(third.hash))
        );
        out.push_delta(&delta("t", 1_001, "a", 1));
        assert!(out.pop().is_none(), "still lagging until the answer");
        out.push_bridge(&key("t"), Some(delta("t", 1_002, "a", 2)));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.seq == Seq::new(1_002)));
        out.push_delta(&delta("t", 1_003, "a", 3));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.seq == Seq::new(1_003)));
        assert_eq!(counters.bridges.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn slots_at_the_front_go_in_one_request_and_a_snapshot_ends_a_lag() {
        let out = Outbox::new(150, 100_000, Default::default());
        out.push_delta(&delta("t", 1, "a", 1));
        out.push_delta(&delta("t", 2, "a", 2));
        out.push_delta(&delta("u", 2, "a", 2));
        out.push_delta(&delta("v", 2, "a", 2));
        out.push_snapshot(key("v"), Arc::from("snap"));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(_))));
        match out.pop() {
            Some(Outgoing::Bridge(asks)) => {
                let keys: Vec<_> = asks.into_iter().map(|(k, _)| k).collect();
                assert_eq!(keys, vec![key("t"), key("u")]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(_))));
        assert!(out.pop().is_none());
        out.push_snapshot(key("t"), Arc::from("snap"));
        out.push_bridge(&key("t"), Some(delta("t", 9, "a", 9)));
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(_))));
        assert!(
            out.pop().is_none(),
            "an answer overtaken by a snapshot is dropped"
        );
    }

    #[test]
    fn past_the_hard_limit_queued_deltas_drop_and_lag_from_the_first() {
        let counters: Arc<OutboxCounters> = Default::default();
        let out = Outbox::new(10_000, 20_000, counters.clone());
        for seq in 1..=50 {
            out.push_delta(&delta("t", seq, &format!("k{seq}"), 1));
        }
        // A huge unordered frame pushes the queue past the hard limit.
        out.push_text(Arc::from("e".repeat(16_000)));
        assert_eq!(counters.overflows.load(Ordering::Relaxed), 1);
        assert!(out.bytes() <= 20_000, "bounded: {}", out.bytes());
        assert!(matches!(out.pop(), Some(Outgoing::Text(_))));
        match out.pop() {
            Some(Outgoing::Bridge(asks)) => assert_eq!(asks[0].1.as_ref().map(|p| p.seq), Some(Seq::ZERO)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bridge_larger_than_the_hard_limit_is_still_delivered() {
        let out = Outbox::new(150, 300, Default::default());
        for seq in 1..=5 {
            out.push_delta(&delta("t", seq, "a", 1));
        }
        assert!(matches!(out.pop(), Some(Outgoing::Delta(_))));
        assert!(matches!(out.pop(), Some(Outgoing::Bridge(_))));
        let mut big = SharedDelta::clone_for_test(&delta("t", 9, "a", 9));
        big.text = Arc::from("b".repeat(1_000));
        out.push_bridge(&key("t"), Some(Arc::new(big)));
        out.push_delta(&delta("t", 10, "a", 10));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.text.len() == 1_000));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.seq == Seq::new(10)));
        assert_eq!(out.bytes(), 0);
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
        assert!(matches!(
            out.pop(),
            Some(Outgoing::Close(CloseCode::PolicyViolation, _))
        ));
        out.push_text(Arc::from("late"));
        assert!(out.pop().is_none());
    }

    #[test]
    fn nothing_passes_a_snapshot_still_being_written_and_filling_it_wakes_the_writer() {
        let counters = Arc::new(OutboxCounters::default());
        let out = Arc::new(Outbox::new(150, 1_000, counters.clone()));
        let frame = SnapshotFrame::pending();
        out.push_snapshot_frame(key("t"), frame.clone());
        out.push_delta(&delta("t", 2, "a", 2));
        out.push_text(Arc::from("later"));
        assert!(out.pop().is_none(), "the snapshot is not written yet");
        // Deltas queued behind it stay bounded: past the soft limit the key lags.
        out.push_delta(&delta("t", 3, "a", 3));
        assert_eq!(out.lagging(), 1);
        assert!(out.pop().is_none());
        assert_eq!(counters.snapshot_waits.load(Ordering::Relaxed), 2);
        let woken = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            // Take the wake-up the pushes left, so only filling can wake the writer.
            out.ready().await;
            let waiter = {
                let (out, woken) = (out.clone(), woken.clone());
                tokio::spawn(async move {
                    out.ready().await;
                    woken.store(true, Ordering::Relaxed);
                })
            };
            tokio::task::yield_now().await;
            assert!(!woken.load(Ordering::Relaxed), "nothing to send yet");
            frame.fill(Arc::from("snap"));
            waiter.await.unwrap();
        });
        assert!(woken.load(Ordering::Relaxed));
        assert!(matches!(out.pop(), Some(Outgoing::Snapshot(t)) if &*t == "snap"));
        assert!(matches!(out.pop(), Some(Outgoing::Delta(d)) if d.seq == Seq::new(2)));
        assert!(matches!(out.pop(), Some(Outgoing::Text(t)) if &*t == "later"));
        assert!(matches!(out.pop(), Some(Outgoing::Bridge(_))));
    }
}
