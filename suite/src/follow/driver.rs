//! The follower's ZeroMQ driver: a SUB socket for the stream and a REQ socket for
//! requests (CURVE when configured), feeding the sans-IO [`Machine`] and sending what
//! it asks. A request past its deadline has its REQ socket discarded and reopened (the
//! "Lazy Pirate" pattern).
//!
//! The SUB socket is read promptly, on every call, into an intake bounded in bytes
//! (its own queue is kept short, [`sockets::SUB_HWM`] messages); a message that does
//! not fit is dropped and reported to the machine as a gap, which it repairs.
//!
//! An answer of [`FollowerConfig::decode_elsewhere_bytes`] or more (a big snapshot)
//! is decoded, built and hash-checked on a thread of the follower's own ([`Decoder`]),
//! one at a time, while this thread keeps reading the stream and applying the other
//! topics' deltas (the fetched topic's are queued by the machine, as during any
//! fetch); the result is used as soon as it is back, and the request's deadline does
//! not run meanwhile.

use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clonewire_core::protocol::encode;
use clonewire_core::protocol::suite::{BYE_TOPIC, HEARTBEAT_TOPIC};
use clonewire_core::{Schema, Seq, Topic};

use super::intake::Intake;
use super::machine::Machine;
use super::{ArrivedReply, DecodedReply, FollowEvent, FollowStats, FollowerConfig};
use crate::error::Error;
use clonewire_zmq::sockets;

/// SUB messages handled per wake-up before events are handed out.
const SUB_BATCH: usize = 1000;

/// How often a decoded answer is looked for while one is being decoded (the poll
/// cannot wait on the decoding thread).
const DECODE_POLL_MS: i64 = 2;

/// A replica of a suite's topics kept in sync over the suite link.
///
/// Synchronous: one thread drives it by calling [`Follower::next_event`], which polls
/// the SUB socket and the one request out together.
pub struct Follower {
    config: FollowerConfig,
    machine: Machine,
    ctx: zmq::Context,
    sub: zmq::Socket,
    /// The REQ socket; `None` after a timeout or an error, reopened for the next request.
    req: Option<zmq::Socket>,
    /// PUB messages read and not yet handed to the machine.
    intake: Intake,
    /// The thread that decodes big answers (started on the first one).
    decoder: Option<Decoder>,
}

impl Follower {
    /// Subscribes (first, so nothing published from now on is missed) and connects
    /// the request socket. Joining happens as [`next_event`](Self::next_event) runs.
    pub fn connect(config: FollowerConfig) -> Result<Follower, Error> {
        let ctx = sockets::shared_context().clone();
        let sub = sockets::socket(&ctx, zmq::SUB, sockets::SUB_HWM)?;
        if let Some(curve) = &config.curve {
            sockets::curve_client(&sub, curve)?;
        }
        match &config.machine.topics {
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
        Ok(Follower {
            machine: Machine::new(config.machine.clone(), Instant::now()),
            intake: Intake::new(config.intake_bytes),
            config,
            ctx,
            sub,
            req: None,
            decoder: None,
        })
    }

    /// The state machine behind this follower (replicas, phase, totals).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Running totals.
    pub fn stats(&self) -> &FollowStats {
        self.machine.stats()
    }

    /// The epoch being followed, once known.
    pub fn epoch(&self) -> Option<&str> {
        self.machine.epoch()
    }

    /// The suite's name (from `hello`).
    pub fn name(&self) -> &str {
        self.machine.name()
    }

    /// The suite's schema (from `hello`).
    pub fn schema(&self) -> &Schema {
        self.machine.schema()
    }

    /// True when joined and every followed topic is trusted.
    pub fn is_synced(&self) -> bool {
        self.machine.is_synced()
    }

    /// Topics not (yet) trusted: joining or being repaired.
    pub fn untrusted(&self) -> Vec<String> {
        self.machine.untrusted()
    }

    /// A followed topic's replica.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.machine.topic(name)
    }

    /// A followed topic's seq.
    pub fn seq(&self, name: &str) -> Option<Seq> {
        self.machine.seq(name)
    }

    /// Every followed topic's replica and seq, by name.
    pub fn topics(&self) -> impl Iterator<Item = (&str, &Topic, Seq)> {
        self.machine.topics()
    }

    /// The suite's heartbeat interval (from `hello`; 1 s until then).
    pub fn heartbeat_interval(&self) -> Duration {
        self.machine.heartbeat_interval()
    }

    /// True while events are waiting to be handed out. The replicas already include
    /// the changes those events report, so a user that reads replicas directly
    /// should do so only when this is false.
    pub fn has_pending_events(&self) -> bool {
        self.machine.has_pending_events()
    }

    /// Bytes of PUB messages read and not yet handled.
    pub fn intake_bytes(&self) -> usize {
        self.intake.bytes()
    }

    /// The most bytes of PUB messages ever held at once (never above
    /// [`FollowerConfig::intake_bytes`]).
    pub fn intake_peak(&self) -> usize {
        self.intake.peak()
    }

    /// When the suite was last heard on the PUB socket.
    pub fn last_heard(&self) -> Instant {
        self.machine.last_heard()
    }

    /// Changes which topics are followed (`None`: every topic). The SUB filters change
    /// at once (new ones first, so nothing wanted is missed); a newly followed topic
    /// is fetched with a snapshot and reported with [`FollowEvent::Reset`]; a topic no longer
    /// followed is dropped without an event.
    pub fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), Error> {
        let old: Option<BTreeSet<String>> = self.machine.followed().map(|t| t.iter().cloned().collect());
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
        self.config.machine.topics = topics.as_ref().map(|t| t.iter().cloned().collect());
        self.machine.set_topics(topics);
        Ok(())
    }

    /// Runs for `duration`, handing every event to `on_event`.
    pub fn run_for(
        &mut self,
        duration: Duration,
        mut on_event: impl FnMut(&FollowEvent),
    ) -> Result<(), Error> {
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
    pub fn next_event(&mut self, max_wait: Duration) -> Result<Option<FollowEvent>, Error> {
        self.next_event_or_wake(max_wait, None)
    }

    /// [`next_event`](Self::next_event) that also returns `None` as soon as `wake` is
    /// readable: a thread that waits here when idle can be woken for other work.
    pub fn next_event_or_wake(
        &mut self,
        max_wait: Duration,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<Option<FollowEvent>, Error> {
        let end = Instant::now() + max_wait;
        loop {
            // Even while events wait, the stream is read (and what does not fit dropped).
            self.receive_stream();
            self.collect_decoded();
            if let Some(event) = self.machine.poll_event() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            if self.machine.handle_timeout(now) {
                // A REQ socket whose reply never came cannot send again: discard it.
                self.req = None;
            }
            self.send_request(now)?;
            self.handle_intake();
            if self.machine.has_pending_events() || (!self.intake.is_empty() && now < end) {
                continue;
            }
            if now >= end {
                return Ok(None);
            }
            let until = self.machine.poll_timeout().map_or(end, |t| t.min(end));
            let mut timeout =
                i64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
            if self.machine.decoding() {
                timeout = timeout.min(DECODE_POLL_MS);
            }
            let (sub_ready, req_ready, woken) =
                self.poll(timeout.max(if until > now { 1 } else { 0 }), wake)?;
            if woken {
                return Ok(None);
            }
            if sub_ready {
                self.receive_stream();
                self.handle_intake();
            }
            if req_ready {
                self.receive_reply();
            }
        }
    }

    /// Waits for the SUB socket, the REQ socket (while a request is out) and `wake`;
    /// says which are readable.
    fn poll(&self, timeout_ms: i64, wake: Option<BorrowedFd<'_>>) -> Result<(bool, bool, bool), Error> {
        let mut items = vec![self.sub.as_poll_item(zmq::POLLIN)];
        let wake_at = wake.map(|fd| {
            items.push(zmq::PollItem::from_fd(fd.as_raw_fd(), zmq::POLLIN));
            items.len() - 1
        });
        let req_at = match (&self.req, self.machine.request_out()) {
            (Some(req), true) => {
                items.push(req.as_poll_item(zmq::POLLIN));
                Some(items.len() - 1)
            }
            _ => None,
        };
        let readable = |items: &[zmq::PollItem<'_>], at: Option<usize>| {
            at.and_then(|i| items.get(i))
                .is_some_and(zmq::PollItem::is_readable)
        };
        match zmq::poll(&mut items, timeout_ms) {
            Ok(_) => Ok((
                items[0].is_readable(),
                readable(&items, req_at),
                readable(&items, wake_at),
            )),
            Err(zmq::Error::EINTR) => Ok((false, false, false)),
            Err(e) => Err(Error::zmq("poll", e)),
        }
    }

    /// Reads what the SUB socket holds (at most a batch) into the intake; a message
    /// that does not fit is dropped, and its topic repaired.
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
            if let Err(frames) = self.intake.push(frames) {
                let topic = frames.first().map_or(&[][..], Vec::as_slice);
                self.machine.handle_dropped(topic, Instant::now());
            }
        }
    }

    /// Hands the machine a batch of messages from the intake, unless events wait.
    fn handle_intake(&mut self) {
        if self.machine.has_pending_events() {
            return;
        }
        for _ in 0..SUB_BATCH {
            let Some(frames) = self.intake.pop() else {
                return;
            };
            self.machine.handle_stream(&frames, Instant::now());
        }
    }

    fn receive_reply(&mut self) {
        let Some(req) = &self.req else {
            return;
        };
        match req.recv_bytes(zmq::DONTWAIT) {
            Ok(bytes) if bytes.len() >= self.config.decode_elsewhere_bytes => self.decode_elsewhere(bytes),
            Ok(bytes) => self.machine.handle_reply(&bytes, Instant::now()),
            Err(zmq::Error::EAGAIN) => {}
            Err(e) => {
                tracing::warn!(error = %e, "REQ receive failed; reopening");
                self.req = None;
                self.machine.handle_lost();
            }
        }
    }

    /// Hands a big answer to the decoding thread (here, if that thread cannot run).
    fn decode_elsewhere(&mut self, bytes: Vec<u8>) {
        let Some(arrived) = self.machine.take_reply() else {
            return;
        };
        if self.decoder.is_none() {
            self.decoder = Decoder::start();
        }
        let job = match &self.decoder {
            Some(decoder) => match decoder.jobs.send((arrived, bytes)) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => (arrived, bytes),
        };
        // No decoding thread: decode here, as without one.
        self.decoder = None;
        let (arrived, bytes) = job;
        self.machine
            .handle_decoded(arrived.decode(&bytes), Instant::now());
    }

    /// Uses the decoding thread's result, if it is back.
    fn collect_decoded(&mut self) {
        let Some(decoder) = &self.decoder else {
            return;
        };
        if !self.machine.decoding() {
            return;
        }
        match decoder.results.try_recv() {
            Ok((decoded, took)) => {
                let started = Instant::now();
                self.machine.handle_decoded(decoded, started);
                tracing::debug!(
                    decode_ms = took.as_millis() as u64,
                    use_ms = started.elapsed().as_millis() as u64,
                    "big answer decoded off the follower's thread, then used"
                );
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                self.decoder = None;
                self.machine
                    .handle_undecoded("an answer's decoding thread failed".into(), Instant::now());
            }
        }
    }

    /// Sends the request the machine wants sent, on a fresh REQ socket if needed.
    fn send_request(&mut self, now: Instant) -> Result<(), Error> {
        let Some(request) = self.machine.poll_request(now) else {
            return Ok(());
        };
        let req = match self.req.take() {
            Some(req) => req,
            None => match self.open_req() {
                Ok(req) => req,
                Err(e) => {
                    // Not sent, and nothing changed: asked again next time.
                    self.machine.handle_lost();
                    return Err(e);
                }
            },
        };
        match req.send(encode(&request), zmq::DONTWAIT) {
            Ok(()) => self.req = Some(req),
            Err(e) => {
                tracing::debug!(error = %e, "request not sent; retrying on a fresh socket");
                self.machine.handle_unsent(now);
            }
        }
        Ok(())
    }

    fn open_req(&self) -> Result<zmq::Socket, Error> {
        let req = sockets::socket(&self.ctx, zmq::REQ, sockets::REQREP_HWM)?;
        if let Some(curve) = &self.config.curve {
            sockets::curve_client(&req, curve)?;
        }
        req.connect(&self.config.rep_endpoint)
            .map_err(|e| Error::zmq(format!("connect {}", self.config.rep_endpoint), e))?;
        Ok(req)
    }
}

/// A big answer and its bytes, to decode.
type Job = (ArrivedReply, Vec<u8>);

/// The follower's decoding thread: one answer at a time (the machine has at most one
/// taken out), so it holds at most one answer's bytes and what they decode to.
struct Decoder {
    jobs: mpsc::SyncSender<Job>,
    results: mpsc::Receiver<(DecodedReply, Duration)>,
}

impl Decoder {
    /// Starts the thread; `None` if it cannot be started. It ends when the follower
    /// drops its end (after the answer in hand, if any).
    fn start() -> Option<Decoder> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(1);
        let (result_tx, results) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("clonewire-decode".into())
            .spawn(move || {
                // Big answers are decoded here while the follower's thread keeps
                // delivering the workflow's deltas: those come first.
                clonewire_zmq::background::lower_this_thread();
                while let Ok((arrived, bytes)) = job_rx.recv() {
                    let started = Instant::now();
                    let decoded = arrived.decode(&bytes);
                    drop(bytes);
                    if result_tx.send((decoded, started.elapsed())).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Some(Decoder { jobs, results }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a decoding thread; decoding on the follower's");
                None
            }
        }
    }
}
