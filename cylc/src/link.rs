//! The link to one Cylc scheduler, as a state machine with no I/O of its own (in the
//! manner of `quinn-proto`): published messages, replies and the time go in;
//! request frames, socket resets, a deadline and events come out. The
//! [`driver`](crate::driver) moves the bytes over ZeroMQ; tests drive it by hand.
//!
//! Joining: the driver subscribes to `all` and `shutdown` before the link asks for
//! `pb_entire_workflow`, and the link queues every `all` batch until the snapshot is
//! in the store; then it applies the queued batches in order (the store skips what
//! the snapshot already holds, by `stamp`). After each batch the store compares its
//! checksums with the scheduler's; a type that differs is re-fetched with
//! `pb_data_elements`, batches being queued again meanwhile. So are the types that
//! list its ids (Cylc prunes ids from those lists without a new `stamp`, which no
//! checksum shows) and the workflow element (it has no checksum at all). Cylc sends a type's checksum only in batches that change that type,
//! so a lost change is caught when the type next changes. `shutdown` stops it.
//!
//! Every request has a deadline ([`clonewire_zmq::retry`], the policy the suite
//! follower uses too). When it passes, the REQ socket is discarded and reopened and
//! the request sent again at once (the "Lazy Pirate" pattern), with a longer
//! deadline each time. A scheduler that does not admit our key never answers at
//! all, nor does a dead one, so the link says so in its state as soon as the first
//! deadline passes.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::{Duration, Instant};

use clonewire_zmq::retry::{Requests, RetryPolicy};

use crate::element::Kind;
use crate::request::{decode_reply, LinkRequest, ALL_TOPIC, SHUTDOWN_TOPIC};

/// Re-fetches in a row that leave a type still mismatched before the link takes a
/// whole new snapshot instead.
const MAX_REFETCH_ROUNDS: u32 = 3;
/// The longest shutdown reason kept (it comes from the network).
const MAX_REASON_CHARS: usize = 200;

/// Cylc's data store, as the link needs it: it loads and applies protobuf
/// payloads as Cylc does, checks the scheduler's checksums, and says what changed.
/// The link never looks inside the bytes.
pub trait DataStore {
    /// Why a payload could not be applied (it is undecodable, say). A payload that
    /// fails changes nothing.
    type Error: Display;
    /// What applying a payload changed, handed out in the link's events for
    /// whoever serves the store (the changed topics, say).
    type Changes;

    /// Replaces everything with a `pb_entire_workflow` reply (a `PbEntireWorkflow`).
    fn load_snapshot(&mut self, payload: &[u8]) -> Result<Self::Changes, Self::Error>;

    /// Applies an `all` message (an `AllDeltas`), skipping elements it already
    /// holds at the same `stamp`; `mismatched` lists the types whose checksum now
    /// differs from the one the batch carries.
    fn apply_deltas(&mut self, payload: &[u8]) -> Result<StoreOutcome<Self::Changes>, Self::Error>;

    /// Replaces every element of `kind` with a `pb_data_elements` reply (that
    /// type's delta message, everything in `added`); `mismatched` holds `kind` if
    /// its checksum still differs.
    fn replace_elements(
        &mut self,
        kind: Kind,
        payload: &[u8],
    ) -> Result<StoreOutcome<Self::Changes>, Self::Error>;
}

/// What the store did with a batch or a re-fetch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreOutcome<C> {
    /// What changed.
    pub changes: C,
    /// The types whose checksum differs from the scheduler's.
    pub mismatched: Vec<Kind>,
}

/// How the link behaves.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// The REP endpoint, for messages.
    pub endpoint: String,
    /// This machine's name, sent in each request's `meta` for the scheduler's log.
    pub host: String,
    /// Request deadlines and backoff. A request past its deadline has its socket
    /// reopened and is sent again at once; each timeout in a row doubles the deadline
    /// (up to 8×), so a snapshot of a big workflow that takes longer still gets
    /// through. An error reply or an undecodable payload waits a backoff before
    /// asking again.
    pub retry: RetryPolicy,
    /// Bytes of `all` messages queued while a snapshot or re-fetch is awaited; past
    /// it the queue is dropped and a fresh snapshot taken.
    pub max_queued_bytes: usize,
    /// After this long with nothing heard from a live scheduler, the link asks it
    /// for its workflow element (a small `pb_data_elements`), so a scheduler that
    /// died without saying so is noticed by the request's deadline. `None`: never.
    pub idle_probe: Option<Duration>,
}

impl LinkConfig {
    /// A 5 s request deadline (up to 8×), 200 ms..10 s backoff after errors, 64 MiB
    /// of queued deltas, an idle probe after 30 s of silence.
    pub fn new(endpoint: impl Into<String>, host: impl Into<String>) -> LinkConfig {
        LinkConfig {
            endpoint: endpoint.into(),
            host: host.into(),
            retry: RetryPolicy {
                request_timeout: Duration::from_secs(5),
                max_timeout_factor: 8,
                backoff_min: Duration::from_millis(200),
                backoff_max: Duration::from_secs(10),
                backoff_after_timeout: false,
            },
            max_queued_bytes: 64 << 20,
            idle_probe: Some(Duration::from_secs(30)),
        }
    }
}

/// Where the link stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Subscribed, waiting for the first snapshot.
    Joining,
    /// The store follows the scheduler.
    Live,
    /// The scheduler does not answer. `message` says what it may mean; the link
    /// keeps trying.
    NoAnswer {
        /// What is wrong, for people.
        message: String,
    },
    /// The scheduler turned down the CURVE handshake: it does not admit this
    /// client's key, or the server key is not this scheduler's. The link keeps
    /// trying (the key may be admitted later).
    Refused {
        /// What is wrong, for people.
        message: String,
    },
    /// The scheduler said it shuts down (or the driver gave up on it).
    Stopped {
        /// The scheduler's reason.
        reason: String,
    },
}

/// Something the link wants the driver to do with the REQ socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Discard the REQ socket and connect a new one (any reply to the old one is
    /// lost on purpose).
    ReopenRequestSocket,
    /// Send this request frame.
    Send(Vec<u8>),
}

/// How a connection's CURVE handshake ended, as the driver's socket monitor saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The scheduler accepted us.
    Succeeded,
    /// The scheduler's authenticator said no (ZAP status, 400 for a key it does not
    /// admit): our client key is not in `.service/client_public_keys`.
    Refused {
        /// The ZAP status code.
        status: u32,
    },
    /// The handshake broke off with no reason given: typically our idea of the
    /// server key is wrong (or the port is not this scheduler's).
    Failed,
}

/// What happened, for whoever serves the store. `C` is the store's
/// [`Changes`](DataStore::Changes).
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent<C> {
    /// The state changed to this.
    State(LinkState),
    /// A snapshot replaced the store.
    Snapshot(C),
    /// A batch of deltas was applied.
    Deltas(C),
    /// These types' checksums differ from the scheduler's; they are re-fetched.
    Mismatch(Vec<Kind>),
    /// A re-fetch replaced every element of this type.
    Refetched(Kind, C),
    /// Something went wrong that the link repairs by itself (a bad payload, an
    /// error reply).
    Problem(String),
}

/// Counters, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Snapshots loaded.
    pub snapshots: u64,
    /// `all` batches applied.
    pub batches: u64,
    /// Types re-fetched after a checksum mismatch.
    pub refetches: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Queued batches dropped because the queue was full.
    pub dropped_batches: u64,
}

/// The types whose elements list ids of `kind`, in lists that Cylc shortens
/// when it prunes `kind` without giving the lister a new `stamp` (so no checksum
/// shows a prune that went missing): edges are listed by task proxies, task
/// proxies by tasks and family proxies, family proxies by families and by their
/// parent family proxies.
fn listers(kind: Kind) -> &'static [Kind] {
    match kind {
        Kind::Edges => &[Kind::TaskProxies],
        Kind::TaskProxies => &[Kind::Tasks, Kind::FamilyProxies],
        Kind::FamilyProxies => &[Kind::Families],
        Kind::Workflow | Kind::Tasks | Kind::Families | Kind::Jobs => &[],
    }
}

/// What to re-fetch when `mismatched` differ: those types; the types that list
/// their ids, and so on (a re-fetch drops elements the way a prune does, so their
/// listers must follow); and the workflow element, which has no checksum to
/// show what the missing batch did to it.
fn repair_set(mismatched: &[Kind]) -> Vec<Kind> {
    let mut set: Vec<Kind> = mismatched.to_vec();
    let mut i = 0;
    while let Some(&kind) = set.get(i) {
        for &lister in listers(kind) {
            if !set.contains(&lister) {
                set.push(lister);
            }
        }
        i += 1;
    }
    if !set.contains(&Kind::Workflow) {
        set.push(Kind::Workflow);
    }
    set
}

/// The link to one scheduler. See the module docs.
pub struct Link<S: DataStore> {
    config: LinkConfig,
    store: S,
    state: LinkState,
    /// Requests to make, in order, after the one in flight.
    pending: VecDeque<LinkRequest>,
    /// The request in flight, its deadline and the backoff.
    requests: Requests<LinkRequest>,
    /// Whether the scheduler has ever answered this link.
    answered: bool,
    /// When the scheduler was last heard from (a message or a reply).
    last_heard: Option<Instant>,
    /// `all` payloads awaiting a snapshot or re-fetch, and their bytes.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// The queue overflowed while a snapshot was in flight: take another after it.
    lost_batches: bool,
    /// Re-fetch rounds in a row that ended in a mismatch.
    refetch_rounds: u32,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LinkEvent<S::Changes>>,
    stats: LinkStats,
}

impl<S: DataStore> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("endpoint", &self.config.endpoint)
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<S: DataStore> Link<S> {
    /// A link that will fill `store`. The driver must already be subscribed: the
    /// first transmit is the snapshot request.
    pub fn new(config: LinkConfig, store: S) -> Link<S> {
        let mut link = Link {
            requests: Requests::new(config.retry.clone()),
            config,
            store,
            state: LinkState::Joining,
            pending: VecDeque::new(),
            answered: false,
            last_heard: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            lost_batches: false,
            refetch_rounds: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: LinkStats::default(),
        };
        link.pending.push_back(LinkRequest::EntireWorkflow);
        link
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to take what changed out of it.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Where the link stands.
    pub fn state(&self) -> &LinkState {
        &self.state
    }

    /// The counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Whether the scheduler has stopped (nothing more will happen).
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, LinkState::Stopped { .. })
    }

    /// The next thing to do with the REQ socket, given the time.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.transmits.is_empty() && !self.is_stopped() && self.requests.ready(now) {
            if let Some(request) = self.pending.pop_front() {
                self.requests.send(request, now);
                self.transmits
                    .push_back(Transmit::Send(request.encode(&self.config.host)));
            }
        }
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent<S::Changes>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called (a
    /// request's deadline, or the end of a backoff), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_stopped() {
            return None;
        }
        if self.requests.in_flight().is_some() || !self.pending.is_empty() {
            self.requests.next_deadline()
        } else {
            self.probe_at()
        }
    }

    /// When an idle live link asks whether the scheduler is still there.
    fn probe_at(&self) -> Option<Instant> {
        match (self.config.idle_probe, self.last_heard) {
            (Some(idle), Some(heard)) if self.stats.snapshots > 0 => Some(heard + idle),
            _ => None,
        }
    }

    /// The time passed: a request whose deadline passed is abandoned, its socket
    /// reopened and the request queued again.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_stopped() {
            return;
        }
        if self.requests.in_flight().is_none()
            && self.pending.is_empty()
            && self.probe_at().is_some_and(|at| now >= at)
        {
            // Silence: ask for something small; its deadline tells a dead scheduler.
            self.last_heard = Some(now);
            self.pending.push_back(LinkRequest::DataElements(Kind::Workflow));
            return;
        }
        let Some(request) = self.requests.expire(now) else {
            return;
        };
        self.stats.timeouts += 1;
        self.transmits.push_back(Transmit::ReopenRequestSocket);
        self.pending.push_front(request);
        // Worded from the first deadline, so retries do not change the state again.
        let waited = self.config.retry.request_timeout;
        let message = if self.answered {
            format!(
                "the scheduler at {} stopped answering (a request got no reply in {waited:?}); retrying",
                self.config.endpoint,
            )
        } else {
            format!(
                "no answer from the scheduler at {} in {waited:?}: is this client's key admitted \
                 (in the workflow's .service/client_public_keys), and is the scheduler alive? retrying",
                self.config.endpoint
            )
        };
        if !matches!(self.state, LinkState::Refused { .. }) {
            // A refusal says more than the silence that follows it.
            self.set_state(LinkState::NoAnswer { message });
        }
    }

    /// The driver saw a connection's CURVE handshake end.
    pub fn handle_handshake(&mut self, handshake: Handshake) {
        if self.is_stopped() {
            return;
        }
        let endpoint = &self.config.endpoint;
        let message = match handshake {
            Handshake::Succeeded => return,
            Handshake::Refused { status } => format!(
                "the scheduler at {endpoint} refused this client's key (status {status}): \
                 it is not in the workflow's .service/client_public_keys"
            ),
            Handshake::Failed => format!(
                "the CURVE handshake with {endpoint} failed: is the server key (the workflow's \
                 .service/server.key) this scheduler's?"
            ),
        };
        self.set_state(LinkState::Refused { message });
    }

    /// A published message arrived: `[topic, payload]`.
    pub fn handle_published(&mut self, topic: &[u8], payload: &[u8], now: Instant) {
        if self.is_stopped() {
            return;
        }
        self.last_heard = Some(now);
        if topic == SHUTDOWN_TOPIC {
            let reason = String::from_utf8_lossy(payload)
                .chars()
                .take(MAX_REASON_CHARS)
                .collect();
            self.stop(reason);
        } else if topic == ALL_TOPIC {
            if self.awaiting_data() {
                self.enqueue(payload);
            } else {
                self.apply_batch(payload);
            }
        }
    }

    /// A reply arrived on the REQ socket.
    pub fn handle_reply(&mut self, reply: &[u8], now: Instant) {
        let Some(request) = self.requests.answered() else {
            // A reply with nothing in flight cannot come from a REQ socket; ignore it.
            return;
        };
        if self.is_stopped() {
            return;
        }
        self.answered = true;
        self.last_heard = Some(now);
        if matches!(self.state, LinkState::NoAnswer { .. } | LinkState::Refused { .. }) {
            let back = if self.stats.snapshots == 0 {
                LinkState::Joining
            } else {
                LinkState::Live
            };
            self.set_state(back);
        }
        let payload = match decode_reply(request, reply) {
            Ok(payload) => payload,
            Err(why) => return self.retry_later(request, why.to_string(), now),
        };
        match request {
            LinkRequest::EntireWorkflow => {
                let changes = match self.store.load_snapshot(payload) {
                    Ok(changes) => changes,
                    Err(why) => {
                        let why = format!("a snapshot that cannot be read: {why}");
                        return self.retry_later(request, why, now);
                    }
                };
                self.stats.snapshots += 1;
                self.requests.reset_backoff();
                self.refetch_rounds = 0;
                // A snapshot replaces every type: re-fetches asked before it are moot.
                self.pending.retain(|r| *r == LinkRequest::EntireWorkflow);
                self.events.push_back(LinkEvent::Snapshot(changes));
                if self.state == LinkState::Joining {
                    self.set_state(LinkState::Live);
                }
                if std::mem::take(&mut self.lost_batches) {
                    self.events.push_back(LinkEvent::Problem(
                        "deltas were dropped while joining; joining again".into(),
                    ));
                    self.request(LinkRequest::EntireWorkflow);
                }
            }
            LinkRequest::DataElements(kind) => {
                match self.store.replace_elements(kind, payload) {
                    Ok(outcome) => {
                        self.stats.refetches += 1;
                        self.requests.reset_backoff();
                        self.events.push_back(LinkEvent::Refetched(kind, outcome.changes));
                        if outcome.mismatched.contains(&kind) {
                            // It moved on since; the queued batches should bring it level.
                            self.events.push_back(LinkEvent::Problem(format!(
                                "{} still differs right after its re-fetch",
                                kind.cylc_name()
                            )));
                        }
                    }
                    Err(why) => {
                        let why = format!("{} elements that cannot be read: {why}", kind.cylc_name());
                        return self.retry_later(request, why, now);
                    }
                }
            }
        }
        self.drain_queue();
    }

    /// The driver could not go on (its sockets failed, or whoever runs it gave up):
    /// the link stops with `reason`.
    pub fn stop(&mut self, reason: String) {
        self.requests.lost();
        self.pending.clear();
        self.transmits.clear();
        self.queue.clear();
        self.queued_bytes = 0;
        self.set_state(LinkState::Stopped { reason });
    }

    /// Whether `all` batches must wait: for the first snapshot, or a re-fetch.
    fn awaiting_data(&self) -> bool {
        self.stats.snapshots == 0 || self.requests.in_flight().is_some() || !self.pending.is_empty()
    }

    fn enqueue(&mut self, payload: &[u8]) {
        if self.queued_bytes + payload.len() > self.config.max_queued_bytes {
            self.stats.dropped_batches += self.queue.len() as u64 + 1;
            self.queue.clear();
            self.queued_bytes = 0;
            let snapshot_flying = self.snapshot_in_flight();
            if snapshot_flying {
                // The snapshot on its way predates what was lost: take one more.
                self.lost_batches = true;
            } else {
                self.request(LinkRequest::EntireWorkflow);
            }
            return;
        }
        self.queued_bytes += payload.len();
        self.queue.push_back(payload.to_vec());
    }

    /// Applies queued batches, unless a request still has to come back first.
    fn drain_queue(&mut self) {
        while !self.awaiting_data() {
            let Some(payload) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= payload.len();
            self.apply_batch(&payload);
        }
    }

    fn apply_batch(&mut self, payload: &[u8]) {
        match self.store.apply_deltas(payload) {
            Ok(StoreOutcome { changes, mismatched }) => {
                self.stats.batches += 1;
                self.events.push_back(LinkEvent::Deltas(changes));
                if mismatched.is_empty() {
                    self.refetch_rounds = 0;
                    return;
                }
                self.events.push_back(LinkEvent::Mismatch(mismatched.clone()));
                self.refetch_rounds += 1;
                if self.refetch_rounds > MAX_REFETCH_ROUNDS {
                    self.refetch_rounds = 0;
                    self.request(LinkRequest::EntireWorkflow);
                } else {
                    for kind in repair_set(&mismatched) {
                        self.request(LinkRequest::DataElements(kind));
                    }
                }
            }
            Err(why) => {
                self.events.push_back(LinkEvent::Problem(format!(
                    "a delta batch that cannot be read: {why}; rejoining"
                )));
                self.request(LinkRequest::EntireWorkflow);
            }
        }
    }

    /// Asks for `request` unless it (or a snapshot, which covers everything) is
    /// already asked for.
    fn request(&mut self, request: LinkRequest) {
        let covered = |r: &LinkRequest| *r == request || *r == LinkRequest::EntireWorkflow;
        if !self.snapshot_in_flight() && !self.pending.iter().any(covered) {
            if request == LinkRequest::EntireWorkflow {
                self.pending.retain(|r| *r == LinkRequest::EntireWorkflow);
            }
            self.pending.push_back(request);
        }
    }

    fn retry_later(&mut self, request: LinkRequest, why: String, now: Instant) {
        self.events.push_back(LinkEvent::Problem(why));
        self.pending.push_front(request);
        self.requests.back_off(now);
    }

    /// Whether the request in flight is a snapshot.
    fn snapshot_in_flight(&self) -> bool {
        self.requests.in_flight() == Some(&LinkRequest::EntireWorkflow)
    }

    fn set_state(&mut self, state: LinkState) {
        if self.state != state {
            self.state = state.clone();
            self.events.push_back(LinkEvent::State(state));
        }
    }
}
