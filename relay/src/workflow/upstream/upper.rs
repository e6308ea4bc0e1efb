//! Another clonewire relay as an [`Upstream`] (`--follow-relay ws://host:port/ws`):
//! relay tiers. One workflow of the upper relay, followed over its own websocket as a
//! client of that relay.
//!
//! This file is the driver: the websocket, its frames, inflating, and turning what
//! core's client link ([`clonewire_core::client::ClientLink`]) says into
//! [`UpstreamEvent`]s. The protocol (subscribe, resume, resync, checking every message
//! as a browser checks it) is the link's, with this relay's policies: a copy is made
//! only by a message that can start one, in that message's epoch; only copies of the
//! latest epoch are resumed; `subscribe` is paced.
//!
//! - It subscribes to this workflow with the merged needs of this relay's views (the
//!   union of their selections, given by [`Upstream::set_selection`]), plus the
//!   selection of topics still lingering, and changes that subscription on the same
//!   connection as views come and go (at most one `subscribe` per
//!   [`SUBSCRIBE_INTERVAL`], within the upper relay's request rate).
//! - Every snapshot and delta is checked: `prev` chains, the projection hash matches.
//!   A failure is undone and the topic resynced.
//! - The suite's epoch and seqs are kept as they came, so clients can resume at either
//!   tier. A topic's copy is the upper relay's projection for the merged selection; a
//!   view here projects it again, which gives exactly what the upper relay would have
//!   sent it, since every leaf a view selects is in the merged selection. A copy's seq
//!   before its first message reads as zero here.
//! - The workflow state is the upper relay's (`workflow` messages), `stale` while the
//!   connection is lost. After a loss it reconnects (with backoff) and resumes from
//!   every copy it holds.
//! - With nothing wanted it holds no connection; the state is then what discovery
//!   (`crate::workflow::upper_list`) last read from the upper relay's `/healthz`.
//!
//! One websocket per workflow, not one per upper relay: each workflow keeps its own
//! link thread, so a workflow with a big snapshot or a slow burst delays only its own
//! clients here, as with suites; the cost is one idle connection per followed workflow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clonewire_core::client::{
    Backoff, ClientLink, CopyPolicy, DataKind, FirstEpoch, LinkConfig, LinkEvent, LinkStatus, NewCopies,
    ResumeFrom, Scope, SubscribePacing,
};
use clonewire_core::protocol::client::{WorkflowState, DEFLATE_RAW};
use clonewire_core::subscription::{FieldSel, Sub};
use clonewire_core::{Schema, Seq, Subscription, Topic};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::workflow::wake::wait_readable;

use super::{ChangeKind, Problem, Upstream, UpstreamError, UpstreamEvent};

/// The fewest milliseconds between two `subscribe` messages to the upper relay.
pub const SUBSCRIBE_INTERVAL: Duration = Duration::from_millis(300);
/// Connecting and the websocket handshake must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A write that blocks longer than this fails the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect delays: the first and the longest.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The backoff jitter: the whole delay every time (one relay reconnecting, not a
/// crowd of pages to spread out).
const NO_JITTER: f64 = 1.0;
/// The largest frame taken from the upper relay, and the largest text a compressed
/// frame may inflate to.
const MAX_FRAME_BYTES: usize = 64 << 20;
const MAX_TEXT_BYTES: usize = 256 << 20;

/// How a relay tier keeps copies: only a snapshot that checks or a delta with
/// `prev: null` makes one (it serves only data it holds), in that message's epoch.
const COPY_POLICY: CopyPolicy = CopyPolicy {
    new_copies: NewCopies::FromStartingMessage,
    first_epoch: FirstEpoch::OfMessage,
};

/// The workflow states an upper relay's `/healthz` last reported, by workflow id:
/// shared by its discovery thread and its workflows' links.
pub type Directory = Arc<Mutex<BTreeMap<String, WorkflowState>>>;

/// An upper relay's websocket address, `ws://host:port/path?query`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayUrl {
    text: String,
    host: String,
    port: u16,
    query: Option<String>,
}

impl RelayUrl {
    /// Parses `ws://host[:port][/path][?query]` (the port defaults to 80). `wss` is
    /// refused: terminate TLS in front of the upper relay's network instead.
    pub fn parse(text: &str) -> Result<RelayUrl, String> {
        let uri: tungstenite::http::Uri = text.parse().map_err(|e| format!("follow_relay {text:?}: {e}"))?;
        if uri.scheme_str() != Some("ws") {
            return Err(format!("follow_relay {text:?}: only ws:// URLs are supported"));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("follow_relay {text:?}: no host"))?;
        Ok(RelayUrl {
            text: text.to_owned(),
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: uri.port_u16().unwrap_or(80),
            query: uri.query().map(str::to_owned),
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `host:port` the URL names (brackets kept off IPv6 hosts).
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The `/healthz` path with the URL's query (a `token` carries over).
    pub fn healthz_path(&self) -> String {
        match &self.query {
            Some(q) => format!("/healthz?{q}"),
            None => "/healthz".to_owned(),
        }
    }

    /// A TCP connection to the upper relay, within `timeout`.
    pub fn tcp(&self, timeout: Duration) -> std::io::Result<TcpStream> {
        let mut last = None;
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the host has no address")))
    }
}

impl std::fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// One connection to the upper relay and what was heard on it.
struct Connection {
    ws: WebSocket<TcpStream>,
    /// The state the upper relay last told on this connection.
    state: Option<WorkflowState>,
    /// The last read gave a frame: more may wait in the websocket's own buffer, where
    /// polling the socket would not see them.
    maybe_buffered: bool,
}

/// One workflow of an upper relay.
pub struct RelayUpstream {
    url: RelayUrl,
    workflow: String,
    directory: Directory,
    connection: Option<Connection>,
    /// The client link: copies, subscription, resume, resync, reconnect deadlines.
    link: ClientLink<Instant>,
    schema: Schema,
    joined: bool,
    /// The merged selection of this relay's views for this workflow.
    selection: Option<Sub>,
    /// The topics followed (`None`: every topic).
    topics: Option<BTreeSet<String>>,
    /// Each followed topic's selection as last wanted, so a lingering topic keeps it.
    remembered: BTreeMap<String, FieldSel>,
    ready: VecDeque<UpstreamEvent>,
}

impl RelayUpstream {
    /// Follows `workflow` at the relay `url`; connects once something is wanted.
    pub fn new(url: RelayUrl, workflow: &str, directory: Directory) -> RelayUpstream {
        let config = LinkConfig {
            copies: COPY_POLICY,
            resume: ResumeFrom::LatestEpochOnly,
            pacing: SubscribePacing::AtMostEvery(SUBSCRIBE_INTERVAL),
            compression: Some(DEFLATE_RAW.to_owned()),
            backoff: Backoff {
                base_ms: millis(RETRY_FIRST),
                max_ms: millis(RETRY_MAX),
                attempt: 0,
            },
        };
        let mut link = ClientLink::new(config);
        link.set_scope(Scope::Workflow {
            workflow: workflow.to_owned(),
            topics: Some(BTreeSet::new()),
        });
        RelayUpstream {
            url,
            workflow: workflow.to_owned(),
            directory,
            connection: None,
            link,
            schema: Schema::default(),
            joined: false,
            selection: None,
            topics: Some(BTreeSet::new()),
            remembered: BTreeMap::new(),
            ready: VecDeque::new(),
        }
    }

    /// The subscription to hold upstream: the views' selection, cut to the followed
    /// topics, plus the remembered selection of lingering ones.
    fn query(&self) -> Subscription {
        let sub = match (&self.selection, &self.topics) {
            (_, Some(topics)) if topics.is_empty() => None,
            (Some(Sub::All), None) => Some(Sub::All),
            (selection, topics) => {
                let mut fields = match selection {
                    Some(Sub::Fields(fields)) => fields.clone(),
                    _ => BTreeMap::new(),
                };
                if let Some(topics) = topics {
                    fields.retain(|name, _| topics.contains(name));
                    for name in topics {
                        if let (false, Some(old)) = (fields.contains_key(name), self.remembered.get(name)) {
                            fields.insert(name.clone(), old.clone());
                        }
                    }
                }
                (!fields.is_empty()).then_some(Sub::Fields(fields))
            }
        };
        match sub {
            None => Subscription::empty(),
            Some(sub) => Subscription {
                workflows: FieldSel {
                    every: None,
                    ids: BTreeMap::from([(self.workflow.clone(), sub)]),
                },
            },
        }
    }

    fn connect(&mut self) -> Result<Connection, UpstreamError> {
        let stream = self.url.tcp(CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let (ws, _) = tungstenite::client::client_with_config(self.url.as_str(), stream, Some(config))
            .map_err(|e| format!("websocket handshake with {}: {e}", self.url))?;
        Ok(Connection {
            ws,
            state: None,
            maybe_buffered: false,
        })
    }

    /// Drops the connection; the link sets when to try again.
    fn lose(&mut self, kind: Problem, detail: String) {
        self.connection = None;
        self.link.handle_lost(Instant::now(), NO_JITTER);
        self.ready.push_back(UpstreamEvent::Problem { kind, detail });
    }

    /// Sends the frames the link queued, then turns its events into upstream events.
    fn drive(&mut self) {
        while let Some(text) = self.link.poll_transmit() {
            let Some(conn) = &mut self.connection else { break };
            if let Err(e) = conn.ws.send(Message::text(text)) {
                self.lose(Problem::Timeout, format!("send to {}: {e}", self.url));
            }
        }
        while let Some(event) = self.link.poll_event() {
            self.event(event);
        }
    }

    fn event(&mut self, event: LinkEvent) {
        let ready = match event {
            LinkEvent::Applied(applied) => UpstreamEvent::Changed {
                topic: applied.topic,
                // This relay reports a copy's seq before its first message as zero.
                prev: applied.before.unwrap_or(Seq::ZERO),
                seq: applied.seq,
                changes: applied.changes,
                time: applied.time,
                kind: match applied.kind {
                    DataKind::Snapshot => ChangeKind::Reset,
                    DataKind::Delta => ChangeKind::Delta,
                },
            },
            LinkEvent::Rejected { topic, reject, .. } => UpstreamEvent::Problem {
                kind: Problem::Mismatch,
                detail: format!("{topic}: {reject}; resyncing"),
            },
            LinkEvent::NewEpoch { epoch, .. } => UpstreamEvent::NewEpoch { epoch },
            LinkEvent::Undecodable { error } => UpstreamEvent::Problem {
                kind: Problem::Malformed,
                detail: format!("{}: {error}", self.url),
            },
            LinkEvent::RelayError { code, message } => UpstreamEvent::Problem {
                kind: Problem::Refused,
                detail: format!("{} answered {}: {message}", self.url, code.as_str()),
            },
            LinkEvent::Hello { relay } => UpstreamEvent::Notice {
                detail: format!("connected to {relay} at {}", self.url),
            },
            LinkEvent::Workflow { state, schema, .. } => {
                if let Some(conn) = &mut self.connection {
                    conn.state = Some(state);
                }
                let Some(schema) = schema else { return };
                if self.joined && schema == self.schema {
                    return;
                }
                self.joined = true;
                self.schema = schema;
                UpstreamEvent::Joined {
                    detail: format!("{} at {}", self.workflow, self.url),
                }
            }
            // The connection is the driver's to watch; no commands are sent here.
            LinkEvent::Status { .. }
            | LinkEvent::Connect
            | LinkEvent::CommandUnanswered { .. }
            | LinkEvent::CommandResult { .. } => return,
        };
        self.ready.push_back(ready);
    }

    /// Reads at most one frame, waiting up to `max_wait` for one, or until `wake` is
    /// readable.
    fn read(&mut self, max_wait: Duration, wake: BorrowedFd<'_>) {
        let Some(conn) = &mut self.connection else { return };
        if !conn.maybe_buffered {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let socket = conn.ws.get_ref();
            let mut fds = [
                PollFd::new(socket, PollFlags::IN),
                PollFd::new(&wake, PollFlags::IN),
            ];
            let timeout = Timespec::try_from(max_wait).ok();
            let _ = poll(&mut fds, timeout.as_ref());
            if fds[0].revents().is_empty() {
                // Woken, or nothing came in time.
                return;
            }
        }
        // Readable (or frames buffered): a frame split across packets may still take
        // a moment to complete.
        if let Err(e) = conn.ws.get_ref().set_read_timeout(Some(Duration::from_millis(1))) {
            self.lose(Problem::Timeout, format!("{}: {e}", self.url));
            return;
        }
        let read = conn.ws.read();
        conn.maybe_buffered = read.is_ok();
        match read {
            Ok(Message::Text(text)) => self.link.handle_frame(text.as_str()),
            Ok(Message::Binary(packed)) => {
                let mut text = String::new();
                let inflated = flate2::read::DeflateDecoder::new(&packed[..])
                    .take(MAX_TEXT_BYTES as u64 + 1)
                    .read_to_string(&mut text);
                match inflated {
                    Ok(n) if n <= MAX_TEXT_BYTES => self.link.handle_frame(&text),
                    Ok(_) => self.lose(
                        Problem::Malformed,
                        format!("{}: a frame inflates past {MAX_TEXT_BYTES} bytes", self.url),
                    ),
                    Err(e) => self.lose(
                        Problem::Malformed,
                        format!("{}: a binary frame does not inflate: {e}", self.url),
                    ),
                }
            }
            Ok(Message::Close(frame)) => {
                let why = frame.map_or_else(
                    || "no reason".to_owned(),
                    |f| format!("{} {}", u16::from(f.code), f.reason),
                );
                self.lose(
                    Problem::Timeout,
                    format!("{} closed the connection: {why}", self.url),
                );
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => self.lose(Problem::Timeout, format!("connection to {} lost: {e}", self.url)),
        }
        self.drive();
    }

    /// Whether a connection is wanted: some topic is followed.
    fn wants_connection(&self) -> bool {
        self.topics.as_ref().is_none_or(|t| !t.is_empty())
    }

    /// Tells the link the query wanted now, and sends what that calls for.
    fn sync_query(&mut self) {
        let query = self.query();
        self.link.set_query(&query, Instant::now());
        self.drive();
    }
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

impl Upstream for RelayUpstream {
    fn next_event(
        &mut self,
        max_wait: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<UpstreamEvent>, UpstreamError> {
        if let Some(event) = self.ready.pop_front() {
            return Ok(Some(event));
        }
        if !self.wants_connection() {
            // Idle: no connection is wanted, so none is missing either.
            self.connection = None;
            self.link.close();
            self.drive();
            wait_readable(wake, max_wait);
            return Ok(None);
        }
        if self.connection.is_none() {
            let now = Instant::now();
            self.link.handle_timeout(now);
            if let (LinkStatus::Reconnecting, Some(at)) = (self.link.status(), self.link.poll_timeout()) {
                wait_readable(wake, max_wait.min(at.saturating_duration_since(now)));
                return Ok(None);
            }
            self.link.handle_connecting();
            match self.connect() {
                Ok(conn) => {
                    self.connection = Some(conn);
                    self.link.handle_open(Instant::now());
                }
                Err(e) => {
                    self.lose(Problem::Timeout, format!("cannot connect to {}: {e}", self.url));
                    self.drive();
                    return Ok(self.ready.pop_front());
                }
            }
        }
        // A `subscribe` its pacing held back, once due.
        self.link.handle_timeout(Instant::now());
        self.drive();
        if let Some(conn) = &mut self.connection {
            // Finishes a send a full socket buffer held back.
            match conn.ws.flush() {
                Ok(()) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => self.lose(Problem::Timeout, format!("connection to {} lost: {e}", self.url)),
            }
        }
        // The link's own deadlines (a paced `subscribe`, a command's) end the wait too.
        let now = Instant::now();
        let wait = self
            .link
            .poll_timeout()
            .map_or(max_wait, |at| max_wait.min(at.saturating_duration_since(now)));
        self.read(wait, wake);
        Ok(self.ready.pop_front())
    }

    fn has_pending_events(&self) -> bool {
        !self.ready.is_empty()
    }

    fn state(&self, now: Instant) -> WorkflowState {
        let listed = || {
            let directory = self.directory.lock().unwrap_or_else(|e| e.into_inner());
            directory.get(&self.workflow).copied()
        };
        match (&self.connection, self.link.down_since()) {
            (Some(conn), _) => match conn.state {
                Some(WorkflowState::Removed) => WorkflowState::Stopped,
                Some(state) => state,
                None => WorkflowState::Syncing,
            },
            // Lost: stale once the first reconnect had its chance.
            (None, Some(since)) if now.saturating_duration_since(since) > RETRY_FIRST * 4 => {
                WorkflowState::Stale
            }
            (None, Some(_)) => WorkflowState::Syncing,
            (None, None) => match listed() {
                Some(WorkflowState::Removed) | None => WorkflowState::Stopped,
                Some(state) => state,
            },
        }
    }

    fn epoch(&self) -> Option<&str> {
        self.link.latest_epoch(&self.workflow)
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn topic(&self, name: &str) -> Option<(&Topic, Seq)> {
        // A copy still in an older epoch is not this epoch's data.
        let copy = self.link.copies().get(&self.workflow, name)?;
        let seq = copy.seq.unwrap_or(Seq::ZERO);
        (Some(copy.epoch.as_str()) == self.epoch()).then_some((&copy.topic, seq))
    }

    fn topic_names(&self) -> Vec<String> {
        self.link
            .copies()
            .iter()
            .map(|((_, name), _)| name.clone())
            .collect()
    }

    fn follows_selections(&self) -> bool {
        true
    }

    fn set_selection(&mut self, selection: &Subscription) {
        self.selection = selection.for_workflow(&self.workflow).cloned();
        match &self.selection {
            Some(Sub::Fields(fields)) => {
                for (name, field) in fields {
                    self.remembered.insert(name.clone(), field.clone());
                }
            }
            Some(Sub::All) => {
                let every = FieldSel {
                    every: Some(Sub::All),
                    ids: BTreeMap::new(),
                };
                for name in self.topic_names() {
                    self.remembered.insert(name, every.clone());
                }
            }
            None => {}
        }
    }

    fn set_topics(&mut self, topics: Option<BTreeSet<String>>) -> Result<(), UpstreamError> {
        if let Some(keep) = &topics {
            self.remembered.retain(|name, _| keep.contains(name));
        }
        self.link.set_scope(Scope::Workflow {
            workflow: self.workflow.clone(),
            topics: topics.clone(),
        });
        self.topics = topics;
        self.sync_query();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_keep_their_token_for_healthz() {
        let url = RelayUrl::parse("ws://127.0.0.1:9000/ws?token=abc").unwrap();
        assert_eq!(url.host_port(), ("127.0.0.1", 9000));
        assert_eq!(url.healthz_path(), "/healthz?token=abc");
        let url = RelayUrl::parse("ws://[::1]:81/ws").unwrap();
        assert_eq!(url.host_port(), ("::1", 81));
        assert_eq!(RelayUrl::parse("ws://core/ws").unwrap().host_port(), ("core", 80));
        for bad in ["http://h/ws", "wss://h/ws", "h:1/ws", "ws:///ws", "not a url"] {
            assert!(RelayUrl::parse(bad).is_err(), "{bad}");
        }
    }

    fn sub(text: &str) -> Subscription {
        Subscription::parse(text, &clonewire_core::SubscriptionLimits::default()).unwrap()
    }

    #[test]
    fn the_query_is_the_views_selection_plus_lingering_topics_of_this_workflow_only() {
        let directory = Directory::default();
        let mut up = RelayUpstream::new(RelayUrl::parse("ws://h:1/ws").unwrap(), "w", directory);
        assert!(up.query().is_empty(), "nothing wanted yet");
        up.set_selection(&sub(
            r#"{ workflows(ids: ["w"]) { taskProxies { name } edges } workflows(ids: ["x"]) { jobs } }"#,
        ));
        up.set_topics(Some(BTreeSet::from(["taskProxies".into(), "edges".into()])))
            .unwrap();
        assert_eq!(
            up.query(),
            sub(r#"{ workflows(ids: ["w"]) { taskProxies { name } edges } }"#)
        );
        // A client goes: edges lingers with its old selection, then goes too.
        up.set_selection(&sub(
            r#"{ workflows(ids: ["w"]) { taskProxies { name status } } }"#,
        ));
        up.set_topics(Some(BTreeSet::from(["taskProxies".into(), "edges".into()])))
            .unwrap();
        assert_eq!(
            up.query(),
            sub(r#"{ workflows(ids: ["w"]) { taskProxies { name status } edges } }"#)
        );
        up.set_topics(Some(BTreeSet::from(["taskProxies".into()])))
            .unwrap();
        assert_eq!(
            up.query(),
            sub(r#"{ workflows(ids: ["w"]) { taskProxies { name status } } }"#)
        );
        up.set_selection(&sub("{ workflows }"));
        up.set_topics(None).unwrap();
        assert_eq!(up.query(), sub(r#"{ workflows(ids: ["w"]) }"#));
        up.set_selection(&Subscription::empty());
        up.set_topics(Some(BTreeSet::new())).unwrap();
        assert!(up.query().is_empty());
        assert!(!up.wants_connection());
    }
}
