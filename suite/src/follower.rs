//! The subscriber side of the suite link, as section 3 of the protocol describes it
//! ("Joining and staying in sync"): subscribe first and queue, `hello` and `snapshot`,
//! drop stale deltas, apply the rest in order checking every hash, and repair any gap,
//! mismatch or new epoch (replay, else snapshot) while the stream keeps flowing.
//!
//! Synchronous: one thread drives it by calling [`Follower::next_event`], which polls
//! the SUB socket and the one request in flight together. Requests have deadlines; a
//! request that times out has its REQ socket discarded and reopened (the "Lazy
//! Pirate" pattern), and `busy` is retried with exponential backoff.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use clonewire_core::protocol::suite::{
    decode_reply, Delta, ErrorCode, ErrorReply, GetReply, HashesReply, Heartbeat, HelloReply, PubMessage,
    ReplayReply, Request, SnapshotReply, BYE_TOPIC, HEARTBEAT_TOPIC,
};
use clonewire_core::protocol::{encode, DecodeError};
use clonewire_core::{Changes, Hash, Schema, Topic};
use serde_json::Value;

use crate::error::Error;
use crate::sockets;

/// Epochs remembered as finished, so their late messages are ignored, not re-followed.
const RETIRED_EPOCHS: usize = 8;
/// SUB messages handled per wake-up before events are handed out.
const SUB_BATCH: usize = 1000;
/// Replays that bring no progress before the follower takes a snapshot instead.
const STUCK_REPLAYS: u32 = 2;
/// Differing children past which hash-guided repair fetches the whole topic instead.
const MAX_HASHED_CHILDREN: usize = 1_000;
/// How far the request deadline may grow after timeouts in a row.
const MAX_TIMEOUT_FACTOR: u32 = 16;
/// Hash-guided attempts that raced with new deltas before a snapshot is taken instead.
const HASH_ATTEMPTS: u32 = 3;

/// How to follow a suite.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The suite's PUB endpoint.
    pub sub_endpoint: String,
    /// The suite's REP endpoint.
    pub rep_endpoint: String,
    /// Topics to follow; `None` follows every topic.
    pub topics: Option<Vec<String>>,
    /// How long a request may take before its socket is discarded and it is retried.
    /// Each timeout in a row doubles it (up to 16×), so a big snapshot that takes
    /// longer than this still gets through; a reply resets it.
    pub request_timeout: Duration,
    /// The first retry delay after `busy`, a timeout or an error; doubles each time.
    pub backoff_min: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// Deltas queued per topic while it is being repaired; past it, take a snapshot.
    pub max_queued: usize,
    /// Encrypted links to a CURVE suite: its public key and ours. A suite with CURVE
    /// never answers a follower without it (nor one with a wrong server key).
    pub curve: Option<sockets::CurveClient>,
}

impl FollowerConfig {
    /// Follows every topic, with a 5 s request deadline and 100 ms..5 s backoff.
    pub fn new(sub_endpoint: impl Into<String>, rep_endpoint: impl Into<String>) -> FollowerConfig {
        FollowerConfig {
            sub_endpoint: sub_endpoint.into(),
            rep_endpoint: rep_endpoint.into(),
            topics: None,
            request_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_queued: 10_000,
            curve: None,
        }
    }
}

/// How a replica was put right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rung {
    /// The missing deltas, from the suite's history.
    Replay,
    /// Hash-guided: the children whose node hashes differ (`hashes`), fetched (`get`).
    Hashes,
    /// A fresh copy of the topic.
    Snapshot,
}

/// Something a follower's user may want to know about, in the order it happened.
#[derive(Clone, Debug)]
pub enum Event {
    /// Joined an epoch: hello and the first snapshot are in.
    Joined {
        /// The suite's name.
        name: String,
        /// The epoch joined.
        epoch: String,
        /// Topics in the snapshot.
        topics: usize,
    },
    /// A delta applied and its hash verified (from the stream, a queue or a replay).
    Delta {
        /// The topic.
        topic: String,
        /// Its seq.
        seq: u64,
        /// Body size (for replayed deltas, the patch size).
        bytes: usize,
        /// The leaves it changed.
        changes: Changes,
        /// The suite's publish time (Unix ms), if it said.
        time: Option<f64>,
    },
    /// A topic's replica was replaced by a snapshot (on joining, on a repair, or when
    /// a topic starts being followed): `changes` is exactly what differs from before.
    Reset {
        /// The topic.
        topic: String,
        /// The seq the replica had.
        prev: u64,
        /// The snapshot's seq.
        seq: u64,
        /// What differs from the replica before.
        changes: Changes,
    },
    /// A delta or heartbeat showed that deltas were missed.
    Gap {
        /// The topic.
        topic: String,
        /// The seq we have.
        have: u64,
        /// The seq seen.
        seen: u64,
        /// Seen in a heartbeat rather than a delta.
        heartbeat: bool,
    },
    /// After applying a delta, the topic hash was not the one the suite sent.
    Mismatch {
        /// The topic.
        topic: String,
        /// The delta's (or snapshot's) seq.
        seq: u64,
        /// The suite's hash.
        expected: Hash,
        /// Ours.
        got: Hash,
        /// What the mismatching delta changed in the replica (empty for a snapshot,
        /// which is not installed), so a user of the replica can follow it exactly.
        changes: Changes,
    },
    /// A topic is trusted again.
    Repaired {
        /// The topic.
        topic: String,
        /// Its seq now.
        seq: u64,
        /// How.
        rung: Rung,
    },
    /// The suite restarted: everything is followed afresh.
    NewEpoch {
        /// The new epoch.
        epoch: String,
    },
    /// The suite said goodbye (orderly shutdown).
    Bye {
        /// The epoch that ended.
        epoch: String,
    },
    /// The suite answered `busy`; the request is retried later.
    Busy {
        /// The op.
        op: &'static str,
        /// When it is retried.
        retry_in: Duration,
    },
    /// A request passed its deadline; its socket was replaced.
    Timeout {
        /// The op.
        op: &'static str,
    },
    /// The suite refused a request.
    Refused {
        /// The op.
        op: &'static str,
        /// The error code.
        code: ErrorCode,
        /// The suite's message.
        message: String,
    },
    /// A message or reply that could not be decoded (ignored).
    Malformed {
        /// Why.
        reason: String,
    },
    /// Nothing heard for three heartbeat intervals.
    Stale {
        /// Since when.
        silent_for: Duration,
    },
}

/// Running totals, for summaries and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Deltas applied and verified.
    pub deltas: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Gaps detected.
    pub gaps: u64,
    /// Hash mismatches detected.
    pub mismatches: u64,
    /// Topics repaired by replay.
    pub repairs_replay: u64,
    /// Topics repaired by snapshot (joins not counted).
    pub repairs_snapshot: u64,
    /// Topics repaired by fetching only the children whose hashes differ.
    pub repairs_hashes: u64,
    /// Epochs joined.
    pub joins: u64,
    /// New epochs seen after the first.
    pub new_epochs: u64,
    /// `busy` answers.
    pub busy: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Messages or replies that could not be decoded.
    pub malformed: u64,
    /// Goodbyes.
    pub byes: u64,
}

/// A delta waiting for its topic to be repaired.
struct Queued {
    delta: Delta,
    bytes: usize,
}

/// One followed topic.
struct Replica {
    topic: Topic,
    seq: u64,
    /// Applying the next delta is safe; false while joining or repairing.
    trusted: bool,
    /// How to repair it next.
    rung: Rung,
    queue: VecDeque<Queued>,
    /// Replays in a row that brought no progress (or hash-guided attempts that raced).
    stuck: u32,
}

impl Replica {
    fn new(name: &str, trusted: bool) -> Replica {
        Replica {
            topic: Topic::new(name),
            seq: 0,
            trusted,
            rung: Rung::Snapshot,
            queue: VecDeque::new(),
            stuck: 0,
        }
    }

    fn distrust(&mut self, rung: Rung) {
        // Rungs only climb while untrusted: replay, then hashes, then snapshot.
        if self.trusted || rung > self.rung {
            self.rung = rung;
        }
        self.trusted = false;
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Hello,
    Snapshot {
        topics: Option<Vec<String>>,
    },
    Replay {
        topic: String,
        from: u64,
    },
    Hashes {
        topic: String,
    },
    Get {
        topic: String,
        seq: u64,
        hash: Hash,
        keys: Vec<String>,
    },
}

impl Pending {
    fn request(&self) -> Request {
        match self {
            Pending::Hello => Request::Hello,
            Pending::Snapshot { topics } => Request::Snapshot {
                topics: topics.clone(),
            },
            Pending::Replay { topic, from } => Request::Replay {
                topic: topic.clone(),
                from: *from,
            },
            Pending::Hashes { topic } => Request::Hashes {
                topic: topic.clone(),
                path: Vec::new(),
            },
            Pending::Get { topic, keys, .. } => Request::Get {
                topic: topic.clone(),
                paths: keys.iter().map(|k| vec![k.clone()]).collect(),
            },
        }
    }
}

struct InFlight {
    pending: Pending,
    /// The request's op name, for logs.
    op: &'static str,
    deadline: Instant,
}

/// A replica of a suite's topics kept in sync over the suite link.
pub struct Follower {
    config: FollowerConfig,
    ctx: zmq::Context,
    sub: zmq::Socket,
    req: Option<zmq::Socket>,
    epoch: Option<String>,
    retired: VecDeque<String>,
    name: String,
    schema: Schema,
    heartbeat_ms: u64,
    need_hello: bool,
    joined: bool,
    topics: BTreeMap<String, Replica>,
    inflight: Option<InFlight>,
    /// The request deadline's multiplier: doubles on each timeout, 1 after a reply.
    timeout_factor: u32,
    /// The `get` that follows a `hashes` reply.
    next_get: Option<Pending>,
    retry_at: Option<Instant>,
    backoff: Duration,
    events: VecDeque<Event>,
    stats: Stats,
    last_heard: Instant,
    stale_reported: bool,
}

impl Follower {
    /// Subscribes (first, so nothing published from now on is missed) and connects
    /// the request socket. Joining happens as [`next_event`](Self::next_event) runs.
    pub fn connect(config: FollowerConfig) -> Result<Follower, Error> {
        let ctx = zmq::Context::new();
        let sub = sockets::socket(&ctx, zmq::SUB, sockets::SUB_HWM)?;
        if let Some(curve) = &config.curve {
            sockets::curve_client(&sub, curve)?;
        }
        match &config.topics {
            None => sub.set_subscribe(b"").map_err(|e| Error::zmq("subscribe", e))?,
            Some(topics) => {
                for topic in topics
                    .iter()
                    .map(String::as_str)
                    .chain([HEARTBEAT_TOPIC, BYE_TOPIC])
                {
                    sub.set_subscribe(topic.as_bytes())
                        .map_err(|e| Error::zmq("subscribe", e))?;
                }
            }
        }
        sub.connect(&config.sub_endpoint)
            .map_err(|e| Error::zmq(format!("connect {}", config.sub_endpoint), e))?;
        let backoff = config.backoff_min;
        Ok(Follower {
            config,
            ctx,
            sub,
            req: None,
            epoch: None,
            retired: VecDeque::new(),
            name: String::new(),
            schema: Schema::default(),
            heartbeat_ms: 1000,
            need_hello: true,
            joined: false,
            topics: BTreeMap::new(),
            inflight: None,
            timeout_factor: 1,
            next_get: None,
            retry_at: None,
            backoff,
            events: VecDeque::new(),
            stats: Stats::default(),
            last_heard: Instant::now(),
            stale_reported: false,
        })
    }

    /// Running totals.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The epoch being followed, once known.
    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    /// The suite's name (from `hello`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The suite's schema (from `hello`).
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// True when joined and every followed topic is trusted.
    pub fn is_synced(&self) -> bool {
        self.joined && self.topics.values().all(|t| t.trusted)
    }

    /// Topics not (yet) trusted: joining or being repaired.
    pub fn untrusted(&self) -> Vec<String> {
        self.topics
            .iter()
            .filter(|(_, t)| !t.trusted || !self.joined)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A followed topic's replica.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name).map(|t| &t.topic)
    }

    /// A followed topic's seq.
    pub fn seq(&self, name: &str) -> Option<u64> {
        self.topics.get(name).map(|t| t.seq)
    }

    /// Every followed topic's replica and seq, by name.
    pub fn topics(&self) -> impl Iterator<Item = (&str, &Topic, u64)> {
        self.topics
            .iter()
            .map(|(name, r)| (name.as_str(), &r.topic, r.seq))
    }

    /// The suite's heartbeat interval (from `hello`; 1 s until then).
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// True while events are waiting to be handed out. The replicas already include
    /// the changes those events report, so a user that reads replicas directly
    /// should do so only when this is false.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When the suite was last heard on the PUB socket.
    pub fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Changes which topics are followed (`None`: every topic). The SUB filters change
    /// at once (new ones first, so nothing wanted is missed); a newly followed topic
    /// is fetched with a snapshot and reported with [`Event::Reset`]; a topic no longer
    /// followed is dropped without an event.
    pub fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), Error> {
        let old: Option<BTreeSet<String>> = self.config.topics.as_ref().map(|t| t.iter().cloned().collect());
        if old == topics {
            return Ok(());
        }
        let control = [HEARTBEAT_TOPIC.to_owned(), BYE_TOPIC.to_owned()];
        let sub = |t: &str| {
            self.sub
                .set_subscribe(t.as_bytes())
                .map_err(|e| Error::zmq("subscribe", e))
        };
        let unsub = |t: &str| {
            self.sub
                .set_unsubscribe(t.as_bytes())
                .map_err(|e| Error::zmq("unsubscribe", e))
        };
        match (&old, &topics) {
            (None, None) => {}
            (Some(before), None) => {
                sub("")?;
                for t in before.iter().chain(&control) {
                    unsub(t)?;
                }
            }
            (None, Some(after)) => {
                for t in after.iter().chain(&control) {
                    sub(t)?;
                }
                unsub("")?;
            }
            (Some(before), Some(after)) => {
                for t in after.difference(before) {
                    sub(t)?;
                }
                for t in before.difference(after) {
                    unsub(t)?;
                }
            }
        }
        match &topics {
            Some(after) => {
                self.topics.retain(|name, _| after.contains(name));
                if self.joined {
                    for name in after {
                        // Untrusted, so the next request is a snapshot of it.
                        self.topics
                            .entry(name.clone())
                            .or_insert_with(|| Replica::new(name, false));
                    }
                }
            }
            // Every topic: the suite's list is only known from a full snapshot.
            None if self.joined => self.joined = false,
            None => {}
        }
        self.config.topics = topics.map(|t| t.into_iter().collect());
        Ok(())
    }

    /// Runs for `duration`, handing every event to `on_event`.
    pub fn run_for(&mut self, duration: Duration, mut on_event: impl FnMut(&Event)) -> Result<(), Error> {
        let end = Instant::now() + duration;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(event) => on_event(&event),
                None if left.is_zero() => return Ok(()),
                None => {}
            }
        }
    }

    /// Does the work that is due (receive, apply, request, repair) and returns the
    /// next event, or `None` if none happened within `max_wait`.
    pub fn next_event(&mut self, max_wait: Duration) -> Result<Option<Event>, Error> {
        let end = Instant::now() + max_wait;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            self.check_deadline(now);
            self.check_stale(now);
            self.send_request(now)?;
            if !self.events.is_empty() {
                continue;
            }
            if now >= end {
                return Ok(None);
            }
            let mut wake = end;
            if let Some(inflight) = &self.inflight {
                wake = wake.min(inflight.deadline);
            } else if let Some(at) = self.retry_at {
                wake = wake.min(at);
            }
            let timeout = i64::try_from(wake.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
            let (sub_ready, req_ready) = self.poll(timeout.max(if wake > now { 1 } else { 0 }))?;
            if sub_ready {
                self.receive_stream();
            }
            if req_ready {
                self.receive_reply();
            }
        }
    }

    fn poll(&self, timeout_ms: i64) -> Result<(bool, bool), Error> {
        let mut items = vec![self.sub.as_poll_item(zmq::POLLIN)];
        if let (Some(req), Some(_)) = (&self.req, &self.inflight) {
            items.push(req.as_poll_item(zmq::POLLIN));
        }
        match zmq::poll(&mut items, timeout_ms) {
            Ok(_) => Ok((
                items[0].is_readable(),
                items.get(1).is_some_and(|i| i.is_readable()),
            )),
            Err(zmq::Error::EINTR) => Ok((false, false)),
            Err(e) => Err(Error::zmq("poll", e)),
        }
    }

    fn wants(&self, topic: &str) -> bool {
        self.config
            .topics
            .as_ref()
            .is_none_or(|t| t.iter().any(|w| w == topic))
    }

    // ---- the stream -------------------------------------------------------------

    fn receive_stream(&mut self) {
        for _ in 0..SUB_BATCH {
            let frames = match self.sub.recv_multipart(zmq::DONTWAIT) {
                Ok(frames) => frames,
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "SUB receive failed");
                    return;
                }
            };
            self.last_heard = Instant::now();
            self.stale_reported = false;
            let [topic, body] = frames.as_slice() else {
                self.malformed(format!("a PUB message has 2 frames, got {}", frames.len()));
                continue;
            };
            match PubMessage::decode(topic, body) {
                Ok(PubMessage::Delta { topic, delta }) => self.on_delta(topic, delta, body.len()),
                Ok(PubMessage::Heartbeat(hb)) => self.on_heartbeat(hb),
                Ok(PubMessage::Bye(bye)) => {
                    if self.accept_epoch(&bye.epoch) {
                        self.stats.byes += 1;
                        self.events.push_back(Event::Bye { epoch: bye.epoch });
                    }
                }
                Err(e) => self.malformed(e.to_string()),
            }
        }
    }

    fn malformed(&mut self, reason: String) {
        self.stats.malformed += 1;
        self.events.push_back(Event::Malformed { reason });
    }

    /// True if a message of `epoch` should be used. A new epoch resets every topic.
    fn accept_epoch(&mut self, epoch: &str) -> bool {
        match &self.epoch {
            Some(current) if current == epoch => true,
            _ if self.retired.iter().any(|e| e == epoch) => false,
            None => {
                self.epoch = Some(epoch.to_owned());
                true
            }
            Some(current) => {
                let old = current.clone();
                if self.retired.len() == RETIRED_EPOCHS {
                    self.retired.pop_front();
                }
                self.retired.push_back(old);
                self.epoch = Some(epoch.to_owned());
                self.topics.clear();
                self.joined = false;
                self.need_hello = true;
                self.stats.new_epochs += 1;
                self.events.push_back(Event::NewEpoch {
                    epoch: epoch.to_owned(),
                });
                true
            }
        }
    }

    fn replica(&mut self, name: &str) -> &mut Replica {
        let joined = self.joined;
        // A topic first seen after joining was absent from the join snapshot: seq 0.
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| Replica::new(name, joined))
    }

    fn on_delta(&mut self, topic: String, delta: Delta, bytes: usize) {
        if !self.wants(&topic) || !self.accept_epoch(&delta.epoch) {
            return;
        }
        let max_queued = self.config.max_queued;
        let replica = self.replica(&topic);
        if replica.trusted {
            if delta.seq <= replica.seq {
                return; // a duplicate
            }
            if delta.seq == replica.seq + 1 {
                self.apply(&topic, delta.seq, &delta.patch, delta.hash, bytes, delta.time);
                return;
            }
        }
        // Joining or repairing, or a gap: hold it until the replica is trusted again.
        let gap = replica.trusted.then_some((replica.seq, delta.seq));
        if gap.is_some() {
            replica.distrust(Rung::Replay);
        }
        queue(replica, Queued { delta, bytes }, max_queued);
        if let Some((have, seen)) = gap {
            self.gap(topic, have, seen, false);
        }
    }

    fn gap(&mut self, topic: String, have: u64, seen: u64, heartbeat: bool) {
        self.stats.gaps += 1;
        self.events.push_back(Event::Gap {
            topic,
            have,
            seen,
            heartbeat,
        });
    }

    /// Applies the next delta of a trusted topic and checks its hash; a mismatch or a
    /// refused patch distrusts the topic (repaired by snapshot). Returns true if applied.
    fn apply(
        &mut self,
        name: &str,
        seq: u64,
        patch: &Value,
        hash: Hash,
        bytes: usize,
        time: Option<f64>,
    ) -> bool {
        let Some(replica) = self.topics.get_mut(name) else {
            return false;
        };
        match replica.topic.apply(patch) {
            Ok(changes) => {
                replica.seq = seq;
                let got = replica.topic.hash();
                if got != hash {
                    replica.distrust(Rung::Hashes);
                    self.stats.mismatches += 1;
                    self.events.push_back(Event::Mismatch {
                        topic: name.to_owned(),
                        seq,
                        expected: hash,
                        got,
                        changes,
                    });
                    return false;
                }
                self.stats.deltas += 1;
                self.stats.bytes += bytes as u64;
                self.events.push_back(Event::Delta {
                    topic: name.to_owned(),
                    seq,
                    bytes,
                    changes,
                    time,
                });
                true
            }
            Err(e) => {
                replica.distrust(Rung::Snapshot);
                self.malformed(format!("{name} delta {seq}: {e}"));
                false
            }
        }
    }

    /// Applies queued deltas that follow the topic's seq; stops at a gap or mismatch.
    fn drain_queue(&mut self, name: &str) {
        loop {
            let Some(replica) = self.topics.get_mut(name) else {
                return;
            };
            if !replica.trusted {
                return;
            }
            let Some(next) = replica.queue.pop_front() else {
                return;
            };
            let seq = next.delta.seq;
            if seq <= replica.seq {
                continue;
            }
            if seq > replica.seq + 1 {
                let have = replica.seq;
                replica.distrust(Rung::Replay);
                replica.queue.push_front(next);
                self.gap(name.to_owned(), have, seq, false);
                return;
            }
            self.apply(
                name,
                seq,
                &next.delta.patch,
                next.delta.hash,
                next.bytes,
                next.delta.time,
            );
        }
    }

    fn on_heartbeat(&mut self, hb: Heartbeat) {
        if !self.accept_epoch(&hb.epoch) || !self.joined {
            return;
        }
        for (topic, seq) in hb.seqs {
            if !self.wants(&topic) {
                continue;
            }
            let replica = self.replica(&topic);
            if replica.trusted && seq > replica.seq {
                let have = replica.seq;
                replica.distrust(Rung::Replay);
                self.gap(topic, have, seq, true);
            }
        }
    }

    fn check_stale(&mut self, now: Instant) {
        let limit = Duration::from_millis(self.heartbeat_ms.saturating_mul(3));
        let silent_for = now.saturating_duration_since(self.last_heard);
        if self.joined && !self.stale_reported && silent_for > limit {
            self.stale_reported = true;
            self.events.push_back(Event::Stale { silent_for });
        }
    }

    // ---- requests ---------------------------------------------------------------

    /// What to ask the suite next, if anything.
    fn next_request(&self) -> Option<Pending> {
        if self.need_hello {
            return Some(Pending::Hello);
        }
        if !self.joined {
            return Some(Pending::Snapshot {
                topics: self.config.topics.clone(),
            });
        }
        let untrusted = || self.topics.iter().filter(|(_, t)| !t.trusted);
        if let Some((name, t)) = untrusted().find(|(_, t)| t.rung == Rung::Replay) {
            return Some(Pending::Replay {
                topic: name.clone(),
                from: t.seq + 1,
            });
        }
        if let Some(get) = &self.next_get {
            return Some(get.clone());
        }
        if let Some((name, _)) = untrusted().find(|(_, t)| t.rung == Rung::Hashes) {
            return Some(Pending::Hashes { topic: name.clone() });
        }
        let names: Vec<String> = untrusted().map(|(k, _)| k.clone()).collect();
        (!names.is_empty()).then_some(Pending::Snapshot { topics: Some(names) })
    }

    fn send_request(&mut self, now: Instant) -> Result<(), Error> {
        if self.inflight.is_some() || self.retry_at.is_some_and(|at| now < at) {
            return Ok(());
        }
        self.retry_at = None;
        let Some(pending) = self.next_request() else {
            return Ok(());
        };
        if self.req.is_none() {
            let req = sockets::socket(&self.ctx, zmq::REQ, sockets::REQREP_HWM)?;
            if let Some(curve) = &self.config.curve {
                sockets::curve_client(&req, curve)?;
            }
            req.connect(&self.config.rep_endpoint)
                .map_err(|e| Error::zmq(format!("connect {}", self.config.rep_endpoint), e))?;
            self.req = Some(req);
        }
        let Some(req) = &self.req else {
            return Ok(());
        };
        let request = pending.request();
        let body = encode(&request);
        match req.send(body, zmq::DONTWAIT) {
            Ok(()) => {
                self.inflight = Some(InFlight {
                    pending,
                    op: request.op(),
                    deadline: now + self.config.request_timeout * self.timeout_factor,
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "request not sent; retrying on a fresh socket");
                self.req = None;
                self.back_off(now);
            }
        }
        Ok(())
    }

    fn back_off(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.retry_at = Some(now + wait);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
        wait
    }

    fn check_deadline(&mut self, now: Instant) {
        let Some(inflight) = &self.inflight else {
            return;
        };
        if now < inflight.deadline {
            return;
        }
        let op = inflight.op;
        self.inflight = None;
        // A REQ socket whose reply never came cannot send again: discard it.
        self.req = None;
        self.stats.timeouts += 1;
        self.timeout_factor = (self.timeout_factor * 2).min(MAX_TIMEOUT_FACTOR);
        self.back_off(now);
        self.events.push_back(Event::Timeout { op });
    }

    fn receive_reply(&mut self) {
        let Some(req) = &self.req else {
            return;
        };
        let bytes = match req.recv_bytes(zmq::DONTWAIT) {
            Ok(bytes) => bytes,
            Err(zmq::Error::EAGAIN) => return,
            Err(e) => {
                tracing::warn!(error = %e, "REQ receive failed; reopening");
                self.req = None;
                self.inflight = None;
                return;
            }
        };
        let Some(InFlight { pending, op, .. }) = self.inflight.take() else {
            return;
        };
        // The suite answered: deadlines go back to normal.
        self.timeout_factor = 1;
        let now = Instant::now();
        let outcome = match &pending {
            Pending::Hello => decode_reply::<HelloReply>("hello reply", &bytes).map(|r| r.map(Reply::Hello)),
            Pending::Snapshot { .. } => {
                decode_reply::<SnapshotReply>("snapshot reply", &bytes).map(|r| r.map(Reply::Snapshot))
            }
            Pending::Replay { .. } => {
                decode_reply::<ReplayReply>("replay reply", &bytes).map(|r| r.map(Reply::Replay))
            }
            Pending::Hashes { .. } => {
                decode_reply::<HashesReply>("hashes reply", &bytes).map(|r| r.map(Reply::Hashes))
            }
            Pending::Get { .. } => decode_reply::<GetReply>("get reply", &bytes).map(|r| r.map(Reply::Get)),
        };
        match outcome {
            Err(DecodeError { what, reason }) => {
                self.malformed(format!("{what}: {reason}"));
                self.back_off(now);
            }
            Ok(Err(error)) => self.on_error_reply(&pending, op, error, now),
            Ok(Ok(reply)) => {
                self.backoff = self.config.backoff_min;
                self.on_reply(pending, reply, now);
            }
        }
    }

    fn on_error_reply(&mut self, pending: &Pending, op: &'static str, error: ErrorReply, now: Instant) {
        match (error.error, pending) {
            (ErrorCode::Busy, _) => {
                self.stats.busy += 1;
                let hint = Duration::from_millis(error.retry_ms.unwrap_or(0));
                let wait = self
                    .back_off(now)
                    .max(hint)
                    .min(self.config.backoff_max.max(hint));
                self.retry_at = Some(now + wait);
                self.events.push_back(Event::Busy { op, retry_in: wait });
            }
            (code, Pending::Replay { topic, .. }) => {
                // `gone`, `unsupported` or anything else: the next rung is hash-guided.
                if let Some(replica) = self.topics.get_mut(topic) {
                    replica.distrust(Rung::Hashes);
                }
                if code != ErrorCode::Gone {
                    self.refused(op, code, error.message);
                }
            }
            (code, Pending::Hashes { topic } | Pending::Get { topic, .. }) => {
                // `hashes` and `get` are optional: the last rung is a snapshot.
                self.next_get = None;
                if let Some(replica) = self.topics.get_mut(topic) {
                    replica.distrust(Rung::Snapshot);
                }
                if code != ErrorCode::Unsupported {
                    self.refused(op, code, error.message);
                }
            }
            (code, _) => {
                self.refused(op, code, error.message);
                self.back_off(now);
            }
        }
    }

    fn refused(&mut self, op: &'static str, code: ErrorCode, message: String) {
        self.events.push_back(Event::Refused { op, code, message });
    }

    fn on_reply(&mut self, pending: Pending, reply: Reply, now: Instant) {
        let epoch = match &reply {
            Reply::Hello(r) => &r.epoch,
            Reply::Snapshot(r) => &r.epoch,
            Reply::Replay(r) => &r.epoch,
            Reply::Hashes(r) => &r.epoch,
            Reply::Get(r) => &r.epoch,
        };
        let same_epoch = self.epoch.as_deref() == Some(epoch.as_str());
        let epoch = epoch.clone();
        if !self.accept_epoch(&epoch) {
            return; // an old epoch's answer: the next request asks again
        }
        match reply {
            Reply::Hello(hello) => {
                self.name = hello.name;
                self.schema = hello.schema;
                self.heartbeat_ms = hello.heartbeat_ms.max(1);
                self.need_hello = false;
            }
            // Answers from before a new epoch was noticed describe nothing we hold.
            _ if !same_epoch => {}
            Reply::Snapshot(snapshot) => {
                let requested = match pending {
                    Pending::Snapshot { topics } => topics,
                    _ => None,
                };
                self.on_snapshot(snapshot, requested, now);
            }
            Reply::Replay(replay) => {
                if let Pending::Replay { topic, .. } = pending {
                    self.on_replay(&topic, replay);
                }
            }
            Reply::Hashes(hashes) => {
                if let Pending::Hashes { topic } = pending {
                    self.on_hashes(topic, hashes);
                }
            }
            Reply::Get(get) => {
                self.next_get = None;
                if let Pending::Get {
                    topic,
                    seq,
                    hash,
                    keys,
                } = pending
                {
                    self.on_get(&topic, seq, hash, &keys, get);
                }
            }
        }
    }

    /// Hash-guided repair, first step: the suite's node hash of every child of the
    /// topic. Children whose hashes differ from ours (or exist on one side only) are
    /// fetched next with `get`; too many, and a snapshot is cheaper.
    fn on_hashes(&mut self, topic: String, reply: HashesReply) {
        let Some(replica) = self.topics.get_mut(&topic) else {
            return;
        };
        if replica.trusted {
            return; // repaired meanwhile
        }
        let ours = replica.topic.root();
        let mut keys: Vec<String> = reply
            .children
            .iter()
            .filter(|(k, h)| ours.get(k).map(|n| n.hash()) != Some(h.0))
            .map(|(k, _)| k.clone())
            .collect();
        keys.extend(
            ours.iter()
                .filter(|(k, _)| !reply.children.contains_key(*k))
                .map(|(k, _)| k.to_owned()),
        );
        if keys.len() > MAX_HASHED_CHILDREN {
            replica.distrust(Rung::Snapshot);
            return;
        }
        if keys.is_empty() && replica.topic.hash() == reply.hash {
            // Nothing differs: only the seq moves.
            self.settle(&topic, reply.seq, Changes::default());
            return;
        }
        self.next_get = Some(Pending::Get {
            topic,
            seq: reply.seq,
            hash: reply.hash,
            keys,
        });
    }

    /// Hash-guided repair, second step: the differing children's values replace ours;
    /// the topic hash must then be the one `hashes` reported at the same seq.
    fn on_get(&mut self, topic: &str, seq: u64, hash: Hash, keys: &[String], reply: GetReply) {
        let Some(replica) = self.topics.get_mut(topic) else {
            return;
        };
        if replica.trusted {
            return;
        }
        if reply.seq != seq || reply.values.len() != keys.len() {
            // The topic moved between the two requests: try again, a few times.
            replica.stuck += 1;
            if replica.stuck >= HASH_ATTEMPTS {
                replica.distrust(Rung::Snapshot);
            }
            return;
        }
        // Each child is replaced whole: remove, then set (a merge patch cannot say
        // "replace this object").
        let removal: serde_json::Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::Null)).collect();
        let fresh: serde_json::Map<String, Value> = keys
            .iter()
            .cloned()
            .zip(reply.values)
            .filter(|(_, v)| !v.is_null())
            .collect();
        let mut candidate = replica.topic.clone();
        let changes = match (
            candidate.apply(&Value::Object(removal)),
            candidate.apply(&Value::Object(fresh)),
        ) {
            (Ok(a), Ok(b)) => a.then(b),
            _ => {
                replica.distrust(Rung::Snapshot);
                return;
            }
        };
        if candidate.hash() != hash {
            replica.distrust(Rung::Snapshot);
            return;
        }
        replica.topic = candidate;
        self.settle(topic, seq, changes);
    }

    /// A hash-guided repair succeeded: the replica is the suite's at `seq`.
    fn settle(&mut self, topic: &str, seq: u64, changes: Changes) {
        let Some(replica) = self.topics.get_mut(topic) else {
            return;
        };
        let prev = replica.seq;
        replica.seq = seq;
        replica.trusted = true;
        replica.rung = Rung::Replay;
        replica.stuck = 0;
        self.stats.repairs_hashes += 1;
        self.events.push_back(Event::Reset {
            topic: topic.to_owned(),
            prev,
            seq,
            changes,
        });
        self.events.push_back(Event::Repaired {
            topic: topic.to_owned(),
            seq,
            rung: Rung::Hashes,
        });
        self.drain_queue(topic);
    }

    fn on_snapshot(&mut self, snapshot: SnapshotReply, requested: Option<Vec<String>>, now: Instant) {
        let join = !self.joined;
        let mut bad = false;
        // Topics asked for but not in the reply hold nothing (seq 0), and so do, on a
        // join, topics we queued deltas for that the suite does not list.
        let mut absent: Vec<String> = match &requested {
            Some(names) => names.clone(),
            None => self.topics.keys().cloned().collect(),
        };
        absent.retain(|t| !snapshot.topics.contains_key(t));
        let listed = snapshot.topics.len();
        for (name, snap) in snapshot.topics {
            if !self.wants(&name) {
                continue;
            }
            let topic = match Topic::from_value(name.clone(), &snap.value) {
                Ok(topic) => topic,
                Err(e) => {
                    self.malformed(format!("snapshot of {name}: {e}"));
                    bad = true;
                    continue;
                }
            };
            if topic.hash() != snap.hash {
                self.stats.mismatches += 1;
                self.events.push_back(Event::Mismatch {
                    topic: name.clone(),
                    seq: snap.seq,
                    expected: snap.hash,
                    got: topic.hash(),
                    changes: Changes::default(),
                });
                self.replica(&name).distrust(Rung::Snapshot);
                bad = true;
                continue;
            }
            self.restore(&name, topic, snap.seq, join);
        }
        absent.retain(|n| self.wants(n));
        for name in absent {
            self.restore(&name, Topic::new(name.clone()), 0, join);
        }
        if join {
            self.joined = true;
            self.stats.joins += 1;
            self.events.push_back(Event::Joined {
                name: self.name.clone(),
                epoch: self.epoch.clone().unwrap_or_default(),
                topics: listed,
            });
        }
        if bad {
            self.back_off(now);
        }
    }

    /// Installs a topic's value at `seq`, then applies what was queued after it.
    fn restore(&mut self, name: &str, topic: Topic, seq: u64, join: bool) {
        let replica = self.replica(name);
        let was_trusted = replica.trusted && !join;
        let prev = replica.seq;
        let changes = replica.topic.replace_with(topic);
        replica.seq = seq;
        replica.trusted = true;
        replica.rung = Rung::Replay;
        replica.stuck = 0;
        self.events.push_back(Event::Reset {
            topic: name.to_owned(),
            prev,
            seq,
            changes,
        });
        if !join && !was_trusted {
            self.stats.repairs_snapshot += 1;
            self.events.push_back(Event::Repaired {
                topic: name.to_owned(),
                seq,
                rung: Rung::Snapshot,
            });
        }
        self.drain_queue(name);
    }

    fn on_replay(&mut self, name: &str, replay: ReplayReply) {
        let Some(replica) = self.topics.get_mut(name) else {
            return;
        };
        if replica.trusted {
            return; // repaired meanwhile
        }
        let before = replica.seq;
        let mut current = before;
        replica.trusted = true;
        for delta in replay.deltas {
            if delta.seq <= current {
                continue;
            }
            if delta.seq != current + 1 {
                if let Some(r) = self.topics.get_mut(name) {
                    r.distrust(Rung::Hashes);
                }
                self.malformed(format!("replay of {name} skips from {current} to {}", delta.seq));
                return;
            }
            let bytes = encode(&delta.patch).len();
            if !self.apply(name, delta.seq, &delta.patch, delta.hash, bytes, delta.time) {
                return; // distrusted, next rung chosen by apply
            }
            current = delta.seq;
        }
        self.drain_queue(name);
        let Some(replica) = self.topics.get_mut(name) else {
            return;
        };
        if replica.trusted {
            self.stats.repairs_replay += 1;
            self.events.push_back(Event::Repaired {
                topic: name.to_owned(),
                seq: replica.seq,
                rung: Rung::Replay,
            });
        } else if replica.seq == before {
            replica.stuck += 1;
            if replica.stuck >= STUCK_REPLAYS {
                replica.distrust(Rung::Hashes);
            }
        }
    }
}

enum Reply {
    Hello(HelloReply),
    Snapshot(SnapshotReply),
    Replay(ReplayReply),
    Hashes(HashesReply),
    Get(GetReply),
}

/// Queues a delta for a topic under repair; past the limit the queue is dropped and
/// the topic will be repaired by snapshot.
fn queue(replica: &mut Replica, item: Queued, max: usize) {
    if replica.queue.len() >= max {
        replica.queue.clear();
        replica.distrust(Rung::Snapshot);
    }
    replica.queue.push_back(item);
}
