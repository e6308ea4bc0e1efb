//! [`ClientLink`]: the client end of the client link, with no sockets and no clock.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde_json::Value;

use super::backoff::Backoff;
use super::commands::{CommandRefused, PendingCommands};
use super::copies::Copies;
use super::events::{AfterReject, Applied, DataKind, LinkEvent, LinkStats, LinkStatus};
use super::policy::{LinkConfig, ResumeFrom, Scope, SubscribePacing};
use super::time::Moment;
use crate::checked_copy::{ApplyOutcome, Chain, Reject};
use crate::protocol::client::fast::{self, Data, Frame};
use crate::protocol::client::{ClientMessage, RelayMessage};
use crate::protocol::command::MAX_COMMAND_ID_BYTES;
use crate::{Seq, Subscription};

/// Snapshots in a row that fail their hash before the link stops asking again for
/// that (workflow, topic) until the next connection.
pub const MAX_BAD_SNAPSHOTS: u32 = 3;

/// The most bytes of frames waiting for the driver to send them. The driver takes
/// them after every call, so this only bounds one that does not.
pub const MAX_OUTGOING_BYTES: usize = 4 << 20;

/// What the link knows of the connection it is on.
#[derive(Clone, Debug)]
struct OnConnection<T> {
    /// The query sent on it (normalized text); `None` before the first.
    sent_query: Option<String>,
    /// True until the first `subscribe` goes (or is found not needed): it offers
    /// `resume`.
    resume_due: bool,
    /// When the next `subscribe` may go.
    next_subscribe: T,
    /// The query the relay last accepted.
    subscribed: Option<String>,
}

#[derive(Clone, Debug)]
enum Connection<T> {
    Connecting,
    Open(OnConnection<T>),
    Reconnecting { retry_at: T },
    Closed,
}

/// The client end of the client link (docs/protocol.md, Client link), as a state
/// machine: the driver hands it socket events, frames' text and the time; it keeps
/// the checked [`Copies`], and hands back the frames to send
/// ([`ClientLink::poll_transmit`]), its next deadline ([`ClientLink::poll_timeout`])
/// and what happened ([`ClientLink::poll_event`]).
///
/// - in: [`ClientLink::handle_connecting`], [`ClientLink::handle_open`],
///   [`ClientLink::handle_frame`], [`ClientLink::handle_lost`],
///   [`ClientLink::handle_timeout`], [`ClientLink::close`]; and what the owner wants:
///   [`ClientLink::set_query`], [`ClientLink::set_scope`].
/// - It subscribes with the wanted query (the first `subscribe` of a connection
///   offers `resume`), resyncs a copy after a failed check (but not after
///   [`MAX_BAD_SNAPSHOTS`] bad snapshots in a row), and asks again on a new connection
///   for the copies still awaiting a snapshot.
#[derive(Debug)]
pub struct ClientLink<T> {
    config: LinkConfig,
    copies: Copies,
    scope: Scope,
    connection: Connection<T>,
    /// Since when a connection has been wanted and missing.
    down_since: Option<T>,
    backoff: Backoff,
    /// The query wanted (normalized text), and whether it selects nothing.
    wanted: (String, bool),
    /// The epoch of the last snapshot heard, per workflow.
    latest_epochs: BTreeMap<String, String>,
    /// The relay's "name/version", once it said hello.
    relay: Option<String>,
    outgoing: VecDeque<String>,
    outgoing_bytes: usize,
    events: VecDeque<LinkEvent>,
    stats: LinkStats,
    commands: PendingCommands<T>,
}

impl<T: Moment> ClientLink<T> {
    /// A link not connected yet ([`LinkStatus::Connecting`]), keeping everything it is
    /// sent, and wanting nothing.
    pub fn new(config: LinkConfig) -> ClientLink<T> {
        let empty = Subscription::empty();
        ClientLink {
            copies: Copies::new(config.copies),
            backoff: config.backoff,
            config,
            scope: Scope::Everything,
            connection: Connection::Connecting,
            down_since: None,
            wanted: (empty.key(), true),
            latest_epochs: BTreeMap::new(),
            relay: None,
            outgoing: VecDeque::new(),
            outgoing_bytes: 0,
            events: VecDeque::new(),
            stats: LinkStats::default(),
            commands: PendingCommands::default(),
        }
    }

    /// The copies held.
    pub fn copies(&self) -> &Copies {
        &self.copies
    }

    /// The copies, to change outside the protocol (e.g. forget a removed workflow).
    pub fn copies_mut(&mut self) -> &mut Copies {
        &mut self.copies
    }

    /// The connection's status.
    pub fn status(&self) -> LinkStatus {
        match self.connection {
            Connection::Connecting => LinkStatus::Connecting,
            Connection::Open(_) => LinkStatus::Open,
            Connection::Reconnecting { .. } => LinkStatus::Reconnecting,
            Connection::Closed => LinkStatus::Closed,
        }
    }

    /// Since when the connection has been lost (across failed attempts), while it is.
    pub fn down_since(&self) -> Option<T> {
        self.down_since
    }

    /// The counters so far.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// The relay's "name/version", once it said hello.
    pub fn relay(&self) -> Option<&str> {
        self.relay.as_deref()
    }

    /// The query the relay last accepted on this connection.
    pub fn subscribed(&self) -> Option<&str> {
        match &self.connection {
            Connection::Open(conn) => conn.subscribed.as_deref(),
            _ => None,
        }
    }

    /// The epoch of the last snapshot heard for `workflow`.
    pub fn latest_epoch(&self, workflow: &str) -> Option<&str> {
        self.latest_epochs.get(workflow).map(String::as_str)
    }

    /// The requests waiting for an answer by client id.
    pub fn commands_mut(&mut self) -> &mut PendingCommands<T> {
        &mut self.commands
    }

    /// Sends a `command` (docs/protocol.md, Commands) under the client's `id` and waits
    /// for its `command_result` until `now + timeout`: [`LinkEvent::CommandResult`]
    /// follows, or [`LinkEvent::CommandUnanswered`] past the deadline or when the
    /// connection goes. Nothing is sent when it is refused.
    pub fn send_command(
        &mut self,
        id: &str,
        workflow: &str,
        command: &str,
        args: Value,
        now: T,
        timeout: Duration,
    ) -> Result<(), CommandRefused> {
        if id.len() > MAX_COMMAND_ID_BYTES {
            return Err(CommandRefused::IdTooLong);
        }
        if !matches!(self.connection, Connection::Open(_)) {
            return Err(CommandRefused::NotConnected);
        }
        let message = ClientMessage::Command {
            id: id.to_owned(),
            workflow: workflow.to_owned(),
            command: command.to_owned(),
            args,
        };
        let text = String::from_utf8_lossy(&crate::protocol::encode(&message)).into_owned();
        self.commands.insert(id.to_owned(), text, now, timeout)?;
        self.send(&message);
        Ok(())
    }

    /// Names `compression` in every `subscribe` from now on (the driver inflates it),
    /// or none.
    pub fn set_compression(&mut self, compression: Option<String>) {
        self.config.compression = compression;
    }

    /// Sets the reconnect delays: the first, and the longest (milliseconds).
    pub fn set_reconnect_delays(&mut self, base_ms: u32, max_ms: u32) {
        self.backoff.base_ms = base_ms.max(1);
        self.backoff.max_ms = max_ms.max(self.backoff.base_ms);
    }

    /// The next frame to send, oldest first.
    pub fn poll_transmit(&mut self) -> Option<String> {
        let frame = self.outgoing.pop_front()?;
        self.outgoing_bytes -= frame.len();
        Some(frame)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// When [`ClientLink::handle_timeout`] next has something to do: a reconnect, a
    /// paced `subscribe`, or a request's deadline.
    pub fn poll_timeout(&self) -> Option<T> {
        let due = match &self.connection {
            Connection::Reconnecting { retry_at } => Some(*retry_at),
            Connection::Open(conn) if conn.sent_query.as_deref() != Some(self.wanted.0.as_str()) => {
                Some(conn.next_subscribe)
            }
            _ => None,
        };
        [due, self.commands.next_deadline()].into_iter().flatten().min()
    }

    /// Time passed: at the reconnect deadline, says [`LinkEvent::Connect`]; sends a
    /// `subscribe` its pacing held back; gives up on requests past their deadline.
    pub fn handle_timeout(&mut self, now: T) {
        if let Connection::Reconnecting { retry_at } = self.connection {
            if now >= retry_at {
                self.set_status(Connection::Connecting, None);
                self.events.push_back(LinkEvent::Connect);
            }
        }
        self.sync_subscription(now);
        for id in self.commands.expire(now) {
            self.events.push_back(LinkEvent::CommandUnanswered { id });
        }
    }

    /// The driver is opening a socket.
    pub fn handle_connecting(&mut self) {
        self.set_status(Connection::Connecting, None);
    }

    /// The socket opened: subscribe (resuming the verified copies) and ask again for
    /// the copies still awaiting a snapshot. Copies whose snapshots kept failing may
    /// be asked for again.
    pub fn handle_open(&mut self, now: T) {
        self.stats.connections += 1;
        self.down_since = None;
        let conn = OnConnection {
            sent_query: None,
            resume_due: true,
            next_subscribe: now,
            subscribed: None,
        };
        self.set_status(Connection::Open(conn), None);
        self.copies.forgive();
        self.sync_subscription(now);
        for (workflow, topic) in self.copies.unverified() {
            if self.scope.covers(&workflow, &topic) {
                self.resync(workflow, topic);
            }
        }
    }

    /// The socket closed or failed (or could not be opened). Unless the owner closed
    /// the link, the next attempt is due after a backoff delay (`jitter`, in `[0, 1)`,
    /// picks it within its band; 1 takes the whole delay).
    pub fn handle_lost(&mut self, now: T, jitter: f64) {
        self.clear_outgoing();
        if matches!(self.connection, Connection::Closed) {
            return;
        }
        self.down_since.get_or_insert(now);
        let delay = Duration::from_millis(u64::from(self.backoff.next_delay(jitter)));
        self.set_status(
            Connection::Reconnecting {
                retry_at: now + delay,
            },
            Some(delay),
        );
        self.abandon_commands();
    }

    /// The owner closed the link (or, for a relay, wants nothing): no attempt until
    /// it connects again.
    pub fn close(&mut self) {
        self.clear_outgoing();
        self.down_since = None;
        if !matches!(self.connection, Connection::Closed) {
            self.set_status(Connection::Closed, None);
        }
        self.abandon_commands();
    }

    /// The query the relay should hold (the owner's merged needs); `subscribe` goes
    /// when it differs from the one sent on this connection, as pacing allows.
    pub fn set_query(&mut self, query: &Subscription, now: T) {
        self.wanted = (query.key(), query.is_empty());
        self.sync_subscription(now);
    }

    /// Keeps copies only of what `scope` covers, dropping the others.
    pub fn set_scope(&mut self, scope: Scope) {
        self.copies
            .retain(|workflow, topic| scope.covers(workflow, topic));
        self.scope = scope;
    }

    /// Handles one text frame from the relay (inflated by the driver if it came
    /// compressed). Never panics on bad input: a frame that does not decode is
    /// counted and, when it names a (workflow, topic), that copy is resynced.
    pub fn handle_frame(&mut self, text: &str) {
        self.stats.messages += 1;
        self.stats.bytes += text.len() as u64;
        match fast::decode(text) {
            Err(error) => self.undecodable(text, error.to_string()),
            Ok(Frame::Snapshot(data)) => {
                if !self.scope.covers(&data.workflow, &data.topic) {
                    return;
                }
                self.note_epoch(&data.workflow, &data.epoch);
                let before = self.seq_of(&data);
                let outcome = self.copies.snapshot(
                    &data.workflow,
                    &data.topic,
                    &data.epoch,
                    data.seq,
                    data.hash,
                    &data.body,
                );
                self.settle(DataKind::Snapshot, data, before, outcome);
            }
            Ok(Frame::Delta(mut data)) => {
                if !self.scope.covers(&data.workflow, &data.topic) {
                    return;
                }
                let before = self.seq_of(&data);
                let chain = Chain {
                    prev: data.prev,
                    seq: data.seq,
                };
                let patch = Cow::Owned(std::mem::take(&mut data.body));
                let outcome =
                    self.copies
                        .delta(&data.workflow, &data.topic, &data.epoch, chain, data.hash, patch);
                self.settle(DataKind::Delta, data, before, outcome);
            }
            Ok(Frame::Other(message)) => self.message(message),
        }
    }

    fn seq_of(&self, data: &Data<'_>) -> Option<Seq> {
        self.copies.get(&data.workflow, &data.topic).and_then(|c| c.seq)
    }

    fn set_status(&mut self, connection: Connection<T>, retry_in: Option<Duration>) {
        self.connection = connection;
        let status = self.status();
        self.events.push_back(LinkEvent::Status { status, retry_in });
    }

    fn abandon_commands(&mut self) {
        for id in self.commands.abandon() {
            self.events.push_back(LinkEvent::CommandUnanswered { id });
        }
    }

    fn clear_outgoing(&mut self) {
        self.outgoing.clear();
        self.outgoing_bytes = 0;
    }

    /// Queues a frame while the socket is open.
    fn send(&mut self, message: &ClientMessage) {
        if !matches!(self.connection, Connection::Open(_)) {
            return;
        }
        let text = String::from_utf8_lossy(&crate::protocol::encode(message)).into_owned();
        if self.outgoing_bytes + text.len() > MAX_OUTGOING_BYTES {
            self.stats.dropped_frames += 1;
            return;
        }
        self.outgoing_bytes += text.len();
        self.outgoing.push_back(text);
    }

    /// Sends `subscribe` when the wanted query differs from the one sent on this
    /// connection and pacing allows. A fresh connection selects nothing, so an empty
    /// query needs no first `subscribe` (and then no `resume` goes on it).
    fn sync_subscription(&mut self, now: T) {
        let Connection::Open(conn) = &mut self.connection else {
            return;
        };
        let (key, empty) = &self.wanted;
        if conn.sent_query.is_none() && *empty {
            conn.sent_query = Some(key.clone());
            conn.resume_due = false;
            return;
        }
        if conn.sent_query.as_deref() == Some(key.as_str()) || now < conn.next_subscribe {
            return;
        }
        conn.sent_query = Some(key.clone());
        if let SubscribePacing::AtMostEvery(interval) = self.config.pacing {
            conn.next_subscribe = now + interval;
        }
        let resume = std::mem::take(&mut conn.resume_due)
            .then(|| self.resume_points())
            .filter(|r| !r.is_empty());
        let message = ClientMessage::Subscribe {
            query: key.clone(),
            resume,
            compression: self.config.compression.clone(),
        };
        self.stats.subscribes += 1;
        self.send(&message);
    }

    fn resume_points(&self) -> crate::protocol::client::Resume {
        match self.config.resume {
            ResumeFrom::EveryVerifiedCopy => self.copies.resume_points(),
            ResumeFrom::LatestEpochOnly => self.copies.resume_points_where(|workflow, copy| {
                self.latest_epoch(workflow) == Some(copy.epoch.as_str())
            }),
        }
    }

    fn resync(&mut self, workflow: String, topic: String) {
        if matches!(self.connection, Connection::Open(_)) {
            self.stats.resyncs += 1;
            self.send(&ClientMessage::Resync { workflow, topic });
        }
    }

    /// A snapshot's epoch: a new one for its workflow is a [`LinkEvent::NewEpoch`].
    fn note_epoch(&mut self, workflow: &str, epoch: &str) {
        match self.latest_epochs.get_mut(workflow) {
            Some(latest) if latest == epoch => {}
            Some(latest) => {
                epoch.clone_into(latest);
                self.events.push_back(LinkEvent::NewEpoch {
                    workflow: workflow.to_owned(),
                    epoch: epoch.to_owned(),
                });
            }
            None => {
                self.latest_epochs.insert(workflow.to_owned(), epoch.to_owned());
            }
        }
    }

    /// Counts what became of a message, resyncs a copy that failed, and says so.
    fn settle(&mut self, kind: DataKind, data: Data<'_>, before: Option<Seq>, outcome: ApplyOutcome) {
        let reject = match outcome {
            ApplyOutcome::Applied(changes) => {
                match kind {
                    DataKind::Snapshot => self.stats.snapshots += 1,
                    DataKind::Delta => self.stats.deltas += 1,
                }
                self.events.push_back(LinkEvent::Applied(Applied {
                    workflow: data.workflow.into_owned(),
                    topic: data.topic.into_owned(),
                    kind,
                    before,
                    seq: data.seq,
                    time: data.time,
                    changes,
                }));
                return;
            }
            ApplyOutcome::Ignored => {
                self.stats.ignored += 1;
                return;
            }
            ApplyOutcome::Rejected(reject) => reject,
        };
        match reject {
            Reject::HashMismatch { .. } => self.stats.hash_mismatches += 1,
            Reject::WrongPrev { .. } | Reject::WrongEpoch => self.stats.chain_breaks += 1,
            Reject::BadPatch => self.stats.bad_messages += 1,
        }
        let (workflow, topic) = (data.workflow.into_owned(), data.topic.into_owned());
        let failures = self.copies.get(&workflow, &topic).map_or(0, |c| c.bad_snapshots);
        let next = if failures >= MAX_BAD_SNAPSHOTS {
            AfterReject::GaveUp { failures }
        } else {
            self.resync(workflow.clone(), topic.clone());
            AfterReject::Resync
        };
        self.events.push_back(LinkEvent::Rejected {
            workflow,
            topic,
            kind,
            reject,
            next,
        });
    }

    /// A frame that is not a relay message: count it; if it names a (workflow, topic)
    /// as a snapshot or delta would, that copy can no longer be trusted.
    fn undecodable(&mut self, text: &str, error: String) {
        self.stats.bad_messages += 1;
        self.events.push_back(LinkEvent::Undecodable { error });
        let Some((_, workflow, topic)) = fast::data_topic(text) else {
            return;
        };
        if self.scope.covers(&workflow, &topic) && self.copies.distrust(&workflow, &topic) {
            self.resync(workflow.into_owned(), topic.into_owned());
        }
    }

    fn message(&mut self, message: RelayMessage) {
        let event = match message {
            RelayMessage::Hello { relay, .. } => {
                self.relay = Some(relay.clone());
                self.backoff.reset();
                LinkEvent::Hello { relay }
            }
            RelayMessage::Subscribed { query } => {
                if let Connection::Open(conn) = &mut self.connection {
                    conn.subscribed = Some(query);
                }
                return;
            }
            RelayMessage::Error { code, message } => LinkEvent::RelayError { code, message },
            RelayMessage::CommandResult {
                id,
                workflow,
                command,
                outcome,
                message,
                retry_ms,
            } => {
                // An answer to nothing waiting (late, or not ours) is dropped.
                if self.commands.answer(&id).is_none() {
                    return;
                }
                LinkEvent::CommandResult {
                    id,
                    workflow,
                    command,
                    outcome,
                    message,
                    retry_ms,
                }
            }
            RelayMessage::Workflow {
                workflow,
                state,
                schema,
            } if self.scope.covers_workflow(&workflow) => LinkEvent::Workflow {
                workflow,
                state,
                schema,
            },
            // Another workflow's; snapshots and deltas are `Frame::Snapshot` and
            // `Frame::Delta`.
            RelayMessage::Workflow { .. } | RelayMessage::Snapshot { .. } | RelayMessage::Delta { .. } => {
                return
            }
        };
        self.events.push_back(event);
    }
}
