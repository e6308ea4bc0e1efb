//! The follower as a state machine with no sockets and no clock (the shape of
//! quinn-proto): the driver hands it what the suite sent and the current `Instant`,
//! and takes from it the requests to send, the next deadline and the events.
//!
//! - in: [`Machine::handle_stream`] (one PUB message), [`Machine::handle_reply`] (the
//!   answer to the request out; or [`Machine::take_reply`], decoding it elsewhere,
//!   and [`Machine::handle_decoded`]), [`Machine::handle_timeout`] (time passed),
//!   [`Machine::handle_unsent`] / [`Machine::handle_lost`] (the request could not be
//!   sent / its socket broke), [`Machine::handle_dropped`] (a PUB message the driver
//!   had no room for: a gap);
//! - out: [`Machine::poll_request`], [`Machine::poll_timeout`], [`Machine::poll_event`].
//!
//! Joining goes [`Phase::Greeting`] → [`Phase::Joining`] → [`Phase::Following`]; a new
//! epoch starts over. Each topic's replica is trusted or being repaired
//! ([`repair`](super::repair)); one request is out at a time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use clonewire_core::protocol::suite::{Delta, Heartbeat, PubMessage, Request};
use clonewire_core::protocol::DecodeError;
use clonewire_core::{Hash, Schema, Seq, Topic};
use clonewire_zmq::retry::Requests;
use serde_json::Value;

use super::arrived::{ArrivedReply, DecodedReply};
use super::config::MachineConfig;
use super::followed_topic::{FollowedTopic, Queued};
use super::request::{InFlight, Pending};
use super::{FollowEvent, FollowStats, GapFound, Rung};

/// Epochs remembered as finished, so their late messages are ignored, not re-followed.
const RETIRED_EPOCHS: usize = 8;

/// Where joining the suite's epoch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Asking `hello` (name, schema, heartbeat): at the start and after a new epoch.
    Greeting,
    /// Greeted; asking for the snapshot that joins the epoch (deltas are queued).
    Joining,
    /// Joined: applying the stream, repairing topics as needed.
    Following,
    /// Joined by a snapshot that answered for a new epoch before its `hello` did:
    /// following, and still asking `hello`.
    FollowingUngreeted,
}

impl Phase {
    /// `hello` has been answered for the current epoch.
    pub fn greeted(self) -> bool {
        matches!(self, Phase::Joining | Phase::Following)
    }

    /// The current epoch has been joined (its snapshot is in).
    pub fn joined(self) -> bool {
        matches!(self, Phase::Following | Phase::FollowingUngreeted)
    }
}

/// Whether the suite's silence has been reported.
#[derive(Clone, Copy, Debug)]
enum Hearing {
    /// Last heard then.
    Heard(Instant),
    /// Last heard then, and reported silent since.
    Silent(Instant),
}

/// A replica of a suite's topics kept in sync, without I/O.
pub struct Machine {
    pub(super) config: MachineConfig,
    pub(super) phase: Phase,
    pub(super) epoch: Option<String>,
    retired: VecDeque<String>,
    pub(super) name: String,
    pub(super) schema: Schema,
    pub(super) heartbeat_ms: u64,
    pub(super) topics: BTreeMap<String, FollowedTopic>,
    pub(super) requests: Requests<InFlight>,
    /// The `get` that follows a `hashes` reply.
    pub(super) next_get: Option<Pending>,
    pub(super) events: VecDeque<FollowEvent>,
    pub(super) stats: FollowStats,
    hearing: Hearing,
}

impl Machine {
    /// A machine that has heard nothing yet, at `now`.
    pub fn new(config: MachineConfig, now: Instant) -> Machine {
        let requests = Requests::new(config.retry.clone());
        Machine {
            config,
            phase: Phase::Greeting,
            epoch: None,
            retired: VecDeque::new(),
            name: String::new(),
            schema: Schema::default(),
            heartbeat_ms: 1000,
            topics: BTreeMap::new(),
            requests,
            next_get: None,
            events: VecDeque::new(),
            stats: FollowStats::default(),
            hearing: Hearing::Heard(now),
        }
    }

    // ---- reading ------------------------------------------------------------------

    /// Where joining stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Running totals.
    pub fn stats(&self) -> &FollowStats {
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
        self.phase.joined() && self.topics.values().all(|t| t.trusted)
    }

    /// Topics not (yet) trusted: joining or being repaired.
    pub fn untrusted(&self) -> Vec<String> {
        let joined = self.phase.joined();
        self.topics
            .iter()
            .filter(|(_, t)| !t.trusted || !joined)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// A followed topic's replica.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name).map(|t| &t.topic)
    }

    /// A followed topic's seq.
    pub fn seq(&self, name: &str) -> Option<Seq> {
        self.topics.get(name).map(|t| t.seq)
    }

    /// Every followed topic's replica and seq, by name.
    pub fn topics(&self) -> impl Iterator<Item = (&str, &Topic, Seq)> {
        self.topics
            .iter()
            .map(|(name, r)| (name.as_str(), &r.topic, r.seq))
    }

    /// The topics followed (`None`: every topic).
    pub fn followed(&self) -> Option<&[String]> {
        self.config.topics.as_deref()
    }

    /// The suite's heartbeat interval (from `hello`; 1 s until then).
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// True while events are waiting in [`poll_event`](Self::poll_event). The replicas
    /// already include the changes those events report.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// True while a request is out (its answer awaited).
    pub fn request_out(&self) -> bool {
        self.requests.in_flight().is_some()
    }

    /// When the suite was last heard on the stream.
    pub fn last_heard(&self) -> Instant {
        match self.hearing {
            Hearing::Heard(at) | Hearing::Silent(at) => at,
        }
    }

    // ---- out ----------------------------------------------------------------------

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<FollowEvent> {
        self.events.pop_front()
    }

    /// The request to send now, if one is due; it counts as out (with its deadline)
    /// from `now`. Send it on a fresh REQ socket if the last one was discarded.
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        if !self.requests.ready(now) {
            return None;
        }
        let pending = self.next_request()?;
        let request = pending.request();
        let op = request.op();
        self.requests.send(InFlight { pending, op }, now);
        Some(request)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the deadline of the
    /// request out, else the end of a backoff, else when silence would be reported.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let silence = match self.hearing {
            Hearing::Heard(at) if self.phase.joined() => {
                Some(at + self.silence_limit() + Duration::from_millis(1))
            }
            _ => None,
        };
        match (self.requests.next_deadline(), silence) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- in -----------------------------------------------------------------------

    /// Time has passed: a request past its deadline is given up (true: its REQ socket
    /// can never send again and must be discarded, the Lazy Pirate way), and a suite
    /// silent for three heartbeats is reported.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let expired = self.requests.expire(now);
        if let Some(InFlight { op, .. }) = &expired {
            self.stats.timeouts += 1;
            self.events.push_back(FollowEvent::Timeout { op });
        }
        if let Hearing::Heard(at) = self.hearing {
            let silent_for = now.saturating_duration_since(at);
            if self.phase.joined() && silent_for > self.silence_limit() {
                self.hearing = Hearing::Silent(at);
                self.events.push_back(FollowEvent::Stale { silent_for });
            }
        }
        expired.is_some()
    }

    /// The request handed out could not be sent: it is retried after a backoff.
    pub fn handle_unsent(&mut self, now: Instant) {
        self.requests.lost();
        self.requests.back_off(now);
    }

    /// The request out will never be answered (its socket failed): the next one may go.
    pub fn handle_lost(&mut self) {
        self.requests.lost();
    }

    /// One PUB message (its frames), received at `now`.
    pub fn handle_stream(&mut self, frames: &[Vec<u8>], now: Instant) {
        self.hearing = Hearing::Heard(now);
        let [topic, body] = frames else {
            self.malformed(format!("a PUB message has 2 frames, got {}", frames.len()));
            return;
        };
        match PubMessage::decode(topic, body) {
            Ok(PubMessage::Delta { topic, delta }) => self.on_delta(topic, delta, body.len()),
            Ok(PubMessage::Heartbeat(hb)) => self.on_heartbeat(hb),
            Ok(PubMessage::Bye(bye)) => {
                if self.accept_epoch(&bye.epoch) {
                    self.stats.byes += 1;
                    self.events.push_back(FollowEvent::Bye { epoch: bye.epoch });
                }
            }
            Err(e) => self.malformed(e.to_string()),
        }
    }

    /// The answer to the request out, received at `now`: decoded and used at once.
    /// A driver that would rather decode a big answer elsewhere, while the stream
    /// keeps being applied, uses [`take_reply`](Self::take_reply) and
    /// [`handle_decoded`](Self::handle_decoded) instead.
    pub fn handle_reply(&mut self, bytes: &[u8], now: Instant) {
        if let Some(arrived) = self.take_reply() {
            self.handle_decoded(arrived.decode(bytes), now);
        }
    }

    /// The answer to the request out has arrived: it is taken out to be decoded
    /// (with [`ArrivedReply::decode`], anywhere), and until its result comes back by
    /// [`handle_decoded`](Self::handle_decoded) the request cannot time out and no
    /// other request is sent. Stream messages are handled meanwhile as usual (a
    /// topic being fetched keeps queueing its deltas). `None` if no request was out.
    pub fn take_reply(&mut self) -> Option<ArrivedReply> {
        let inflight = self.requests.hold()?;
        Some(ArrivedReply { inflight })
    }

    /// True while an answer taken by [`take_reply`](Self::take_reply) has not been
    /// handed back.
    pub fn decoding(&self) -> bool {
        self.requests.held()
    }

    /// Uses a decoded answer (from [`ArrivedReply::decode`]) at `now`, as
    /// [`handle_reply`](Self::handle_reply) would have: a bad one is reported and
    /// changes nothing.
    pub fn handle_decoded(&mut self, decoded: DecodedReply, now: Instant) {
        self.requests.release();
        let DecodedReply { inflight, result } = decoded;
        match result {
            Err(DecodeError { what, reason }) => {
                self.malformed(format!("{what}: {reason}"));
                self.requests.back_off(now);
            }
            Ok(Err(error)) => self.on_error_reply(&inflight.pending, inflight.op, error, now),
            Ok(Ok(reply)) => {
                self.requests.reset_backoff();
                self.on_reply(inflight.pending, reply, now);
            }
        }
    }

    /// An answer taken by [`take_reply`](Self::take_reply) could not be decoded at
    /// all (its decoding thread failed): reported, changes nothing, and the next
    /// request backs off.
    pub fn handle_undecoded(&mut self, reason: String, now: Instant) {
        self.requests.release();
        self.malformed(reason);
        self.requests.back_off(now);
    }

    /// A PUB message on `topic` (its first frame) that the driver received at `now`
    /// but had no room for, dropped unread: the topic has a gap, repaired like any
    /// other (replay, else snapshot). Heartbeats and goodbyes are simply missed.
    pub fn handle_dropped(&mut self, topic: &[u8], now: Instant) {
        self.hearing = Hearing::Heard(now);
        self.stats.dropped += 1;
        let Ok(topic) = std::str::from_utf8(topic) else {
            return;
        };
        if topic.starts_with('_') || !self.wants(topic) || !self.phase.joined() {
            // While joining, the hole shows in the queue once the snapshot is in.
            return;
        }
        let replica = self.replica(topic);
        if replica.trusted {
            let have = replica.seq;
            replica.distrust(Rung::Replay);
            self.gap(topic.to_owned(), have, have.next(), GapFound::ByDelta);
        }
    }

    /// Changes which topics are followed (`None`: every topic). A newly followed topic
    /// is fetched with a snapshot and reported with [`FollowEvent::Reset`]; a topic no longer
    /// followed is dropped without an event. (The driver changes its SUB filters.)
    pub fn set_topics(&mut self, topics: Option<BTreeSet<String>>) {
        match &topics {
            Some(after) => {
                self.topics.retain(|name, _| after.contains(name));
                if self.phase.joined() {
                    for name in after {
                        // Untrusted, so the next request is a snapshot of it.
                        self.topics
                            .entry(name.clone())
                            .or_insert_with(|| FollowedTopic::new(name, false));
                    }
                }
            }
            // Every topic: the suite's list is only known from a full snapshot.
            None => self.unjoin(),
        }
        self.config.topics = topics.map(|t| t.into_iter().collect());
    }

    // ---- the stream ---------------------------------------------------------------

    fn silence_limit(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.saturating_mul(3))
    }

    /// Back to asking for a join snapshot (keeping `hello` if it is in).
    fn unjoin(&mut self) {
        self.phase = match self.phase {
            Phase::Following => Phase::Joining,
            Phase::FollowingUngreeted => Phase::Greeting,
            other => other,
        };
    }

    pub(super) fn wants(&self, topic: &str) -> bool {
        self.config
            .topics
            .as_ref()
            .is_none_or(|t| t.iter().any(|w| w == topic))
    }

    pub(super) fn malformed(&mut self, reason: String) {
        self.stats.malformed += 1;
        self.events.push_back(FollowEvent::Malformed { reason });
    }

    /// True if a message of `epoch` should be used. A new epoch resets every topic.
    pub(super) fn accept_epoch(&mut self, epoch: &str) -> bool {
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
                self.phase = Phase::Greeting;
                self.stats.new_epochs += 1;
                self.events.push_back(FollowEvent::NewEpoch {
                    epoch: epoch.to_owned(),
                });
                true
            }
        }
    }

    pub(super) fn replica(&mut self, name: &str) -> &mut FollowedTopic {
        let joined = self.phase.joined();
        // A topic first seen after joining was absent from the join snapshot: seq 0.
        self.topics
            .entry(name.to_owned())
            .or_insert_with(|| FollowedTopic::new(name, joined))
    }

    fn on_delta(&mut self, topic: String, delta: Delta, bytes: usize) {
        if !self.wants(&topic) || !self.accept_epoch(&delta.epoch) {
            return;
        }
        let (max_queued, max_queued_bytes) = (self.config.max_queued, self.config.max_queued_bytes);
        let replica = self.replica(&topic);
        if replica.trusted {
            if delta.seq <= replica.seq {
                return; // a duplicate
            }
            if delta.seq.follows(replica.seq) {
                self.apply(&topic, delta.seq, &delta.patch, delta.hash, bytes, delta.time);
                return;
            }
        }
        // Joining or repairing, or a gap: hold it until the replica is trusted again.
        let gap = replica.trusted.then_some((replica.seq, delta.seq));
        if gap.is_some() {
            replica.distrust(Rung::Replay);
        }
        replica.hold(Queued { delta, bytes }, max_queued, max_queued_bytes);
        if let Some((have, seen)) = gap {
            self.gap(topic, have, seen, GapFound::ByDelta);
        }
    }

    pub(super) fn gap(&mut self, topic: String, have: Seq, seen: Seq, found: GapFound) {
        self.stats.gaps += 1;
        self.events.push_back(FollowEvent::Gap {
            topic,
            have,
            seen,
            found,
        });
    }

    /// Applies the next delta of a trusted topic and checks its hash; a mismatch or a
    /// refused patch distrusts the topic (repaired by snapshot). Returns true if applied.
    pub(super) fn apply(
        &mut self,
        name: &str,
        seq: Seq,
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
                    self.events.push_back(FollowEvent::Mismatch {
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
                self.events.push_back(FollowEvent::Delta {
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
    pub(super) fn drain_queue(&mut self, name: &str) {
        loop {
            let Some(replica) = self.topics.get_mut(name) else {
                return;
            };
            if !replica.trusted {
                return;
            }
            let Some(next) = replica.pop_queued() else {
                return;
            };
            let seq = next.delta.seq;
            if seq <= replica.seq {
                continue;
            }
            if seq > replica.seq.next() {
                let have = replica.seq;
                replica.distrust(Rung::Replay);
                replica.unpop(next);
                self.gap(name.to_owned(), have, seq, GapFound::ByDelta);
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
        if !self.accept_epoch(&hb.epoch) || !self.phase.joined() {
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
                self.gap(topic, have, seq, GapFound::ByHeartbeat);
            }
        }
    }

    // ---- requests -----------------------------------------------------------------

    /// What to ask the suite next, if anything.
    fn next_request(&self) -> Option<Pending> {
        if !self.phase.greeted() {
            return Some(Pending::Hello);
        }
        if !self.phase.joined() {
            return Some(Pending::Snapshot {
                topics: self.config.topics.clone(),
            });
        }
        let untrusted = || self.topics.iter().filter(|(_, t)| !t.trusted);
        if let Some((name, t)) = untrusted().find(|(_, t)| t.rung == Rung::Replay) {
            return Some(Pending::Replay {
                topic: name.clone(),
                from: t.seq.next(),
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
}
