//! One websocket client: a reader that handles `subscribe` and `resync`, and a writer
//! that drains the client's bounded [`Outbox`]. A client that never reads backs up
//! only its own outbox (past its soft limit its topics lag and are bridged by one
//! delta each when it drains; it is dropped when a send blocks too long); one that
//! sends garbage gets errors and, past a limit, is disconnected.
//!
//! Every subscription, `resume` and `resync` is cut down to the connection's
//! [`Grant`]: a workflow outside it is treated exactly like one that does not exist,
//! and the connection is closed (policy violation, 1008) when its token expires.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use clonewire_core::protocol::client::{
    ClientErrorCode, ClientMessage, CloseCode, RelayMessage, Resume, ResumePoint, DEFLATE_RAW,
};
use clonewire_core::protocol::command::Outcome;
use clonewire_core::Subscription;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;

use crate::clients::auth::{Access, Grant};
use crate::clients::outbox::{Outbox, Outgoing};
use crate::clients::ClientId;
use crate::serve::metrics::KindLabel;
use crate::shared::Relay;
use crate::workflow::link::Command;
use crate::workflow::views::{PendingRebind, RebindSlot};

/// Serves one upgraded websocket, limited to what `grant` allows, until it closes,
/// its token expires or the relay shuts down.
pub async fn serve(relay: Arc<Relay>, socket: WebSocket, grant: Grant) {
    let limits = &relay.config().limits;
    let client = relay.next_client_id();
    let outbox = Arc::new(Outbox::new(
        limits.client_queue_soft_bytes,
        limits.client_queue_hard_bytes,
        relay.metrics().outboxes.clone(),
    ));
    relay.add_client(client, &outbox);
    outbox.push_text(text(&RelayMessage::Hello {
        protocol: clonewire_core::protocol::PROTOCOL.to_owned(),
        relay: format!("{}/{}", relay.config().name, env!("CARGO_PKG_VERSION")),
    }));
    let (sink, mut stream) = socket.split();
    let (done_tx, done_rx) = watch::channel(false);
    // Set by the latest `subscribe`: whether the client inflates large frames.
    let deflate = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write(
        relay.clone(),
        client,
        outbox.clone(),
        sink,
        done_tx,
        deflate.clone(),
    ));
    read(&relay, client, &outbox, &mut stream, done_rx, &grant, &deflate).await;
    for link in relay.links() {
        link.send(Command::Leave { client }).await;
    }
    // At shutdown the writer may see this close before the shutdown signal: say
    // "going away" either way.
    if *relay.shutdown_signal().borrow() {
        outbox.close(CloseCode::GoingAway, "relay shutting down");
    } else {
        outbox.close(CloseCode::Normal, "bye");
    }
    // Finish the closing handshake before the socket is dropped. When the relay
    // ends the connection the client may still be sending: reading (and discarding)
    // until its Close reply keeps unread input from resetting the socket, which would
    // lose our Close frame and its code. When the client closed, reading once more
    // sends the echo of its Close, which it waits for.
    let linger = async {
        let _ = tokio::time::timeout(CLOSE_LINGER, discard_until_closed(&mut stream)).await;
    };
    let (finished, ()) = tokio::join!(tokio::time::timeout(CLOSE_LINGER, writer), linger);
    if finished.is_err() {
        tracing::debug!(%client, "writer did not finish in time");
    }
    relay.remove_client(client);
}

/// How long a closing connection waits for its writer and for the client's Close reply.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Reads and drops frames until the client's Close, the end of the stream or an error.
async fn discard_until_closed(stream: &mut SplitStream<WebSocket>) {
    while let Some(Ok(message)) = stream.next().await {
        if matches!(message, Message::Close(_)) {
            return;
        }
    }
}

fn text(message: &RelayMessage) -> Arc<str> {
    message.to_text().into()
}

fn error(code: ClientErrorCode, message: impl Into<String>) -> Arc<str> {
    text(&RelayMessage::Error {
        code,
        message: message.into(),
    })
}

async fn read(
    relay: &Arc<Relay>,
    client: ClientId,
    outbox: &Arc<Outbox>,
    stream: &mut SplitStream<WebSocket>,
    mut writer_done: watch::Receiver<bool>,
    grant: &Grant,
    deflate: &AtomicBool,
) {
    let mut shutdown = relay.shutdown_signal();
    let expires = grant.expires.map(|at| {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::Instant::now() + left
    });
    let expiry = async {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let mut bad_in_a_row = 0u32;
    let mut subscribed = false;
    let limits = &relay.config().limits;
    let max_bad = limits.max_bad_client_messages;
    let mut bucket = TokenBucket::new(limits.client_requests_per_sec, limits.client_request_burst);
    let mut limited_in_a_row = 0u32;
    let mut slots: BTreeMap<Arc<str>, Arc<RebindSlot>> = BTreeMap::new();
    loop {
        let message = tokio::select! {
            m = stream.next() => m,
            _ = shutdown.changed() => return,
            _ = writer_done.changed() => return,
            () = &mut expiry => {
                tracing::debug!(%client, "token expired; disconnecting");
                outbox.close(CloseCode::PolicyViolation, "token expired");
                return;
            }
        };
        let problem = match message {
            Some(Err(e)) if too_big(&e) => {
                // docs/protocol.md, Client link › Close codes: a frame over the size limit.
                relay.metrics().bad_client_messages.inc();
                outbox.close(CloseCode::MessageTooBig, "message too big");
                return;
            }
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => "binary frames are not part of the protocol".to_owned(),
            Some(Ok(Message::Text(body))) => match ClientMessage::decode(body.as_str()) {
                Ok(ClientMessage::Subscribe { .. } | ClientMessage::Resync { .. }) if !bucket.take() => {
                    // Subscription work is bounded per connection, so one client's churn
                    // cannot crowd out everybody's deltas on the link threads.
                    relay.metrics().rate_limited.inc();
                    limited_in_a_row += 1;
                    if limited_in_a_row >= limits.max_rate_limited {
                        tracing::info!(%client, "too many requests over the rate limit; disconnecting");
                        outbox.close(CloseCode::PolicyViolation, "too many requests");
                        return;
                    }
                    outbox.push_text(rate_limited(&bucket));
                    continue;
                }
                Ok(ClientMessage::Subscribe {
                    query,
                    resume,
                    compression,
                }) => {
                    limited_in_a_row = 0;
                    deflate.store(compression.as_deref() == Some(DEFLATE_RAW), Ordering::Relaxed);
                    let first = !subscribed;
                    subscribed |= subscribe(
                        relay,
                        client,
                        outbox,
                        &mut slots,
                        &query,
                        resume.filter(|_| first),
                        &grant.access,
                    )
                    .await;
                    bad_in_a_row = 0;
                    continue;
                }
                Ok(ClientMessage::Resync { workflow, topic }) => {
                    limited_in_a_row = 0;
                    // An unknown or forbidden workflow is ignored: nothing tells the
                    // client whether it exists.
                    if let Some(link) = relay.link(&workflow).filter(|_| grant.access.allows(&workflow)) {
                        link.send(Command::Resync { client, topic }).await;
                    }
                    bad_in_a_row = 0;
                    continue;
                }
                Ok(ClientMessage::Command {
                    id,
                    workflow,
                    command,
                    ..
                }) => {
                    // Commands are in the contract; this relay does not forward them
                    // yet. It answers each one, as the contract says, and sends nothing on.
                    outbox.push_text(text(&RelayMessage::CommandResult {
                        id,
                        workflow,
                        command,
                        outcome: Outcome::Unavailable,
                        message: "this relay does not forward commands yet".into(),
                        retry_ms: None,
                    }));
                    bad_in_a_row = 0;
                    continue;
                }
                Err(e) => e.to_string(),
            },
        };
        relay.metrics().bad_client_messages.inc();
        bad_in_a_row += 1;
        outbox.push_text(error(ClientErrorCode::BadMessage, problem));
        if bad_in_a_row >= max_bad {
            tracing::info!(%client, "too many malformed messages; disconnecting");
            outbox.close(CloseCode::PolicyViolation, "too many malformed messages");
            return;
        }
    }
}

/// Handles `subscribe`; true when it was accepted. The subscription is restricted to
/// `access` before anything looks at it, so schema checks, interning, the
/// `subscribed` echo and rebinding only ever meet allowed workflows.
async fn subscribe(
    relay: &Arc<Relay>,
    client: ClientId,
    outbox: &Arc<Outbox>,
    slots: &mut BTreeMap<Arc<str>, Arc<RebindSlot>>,
    query: &str,
    resume: Option<Resume>,
    access: &Access,
) -> bool {
    let sub = match Subscription::parse(query, &relay.config().limits.query) {
        Ok(sub) => access.restrict(sub),
        Err(e) => {
            outbox.push_text(error(ClientErrorCode::BadQuery, e.to_string()));
            return false;
        }
    };
    let allowed = move || relay.links().filter(move |link| access.allows(&link.id));
    for link in allowed() {
        // A suite not joined yet has no known schema to check `ids` against: the query
        // is accepted, and `ids` on what turns out not to be a collection select nothing.
        let schema = sub.for_workflow(&link.id).and(link.status().schema);
        if let Some(Err(e)) = schema.map(|schema| sub.check(&schema)) {
            outbox.push_text(error(ClientErrorCode::BadQuery, e.to_string()));
            return false;
        }
    }
    let group = relay.registry().intern(sub);
    relay.set_subscription(client, outbox, group.clone(), access);
    outbox.push_text(text(&RelayMessage::Subscribed {
        query: group.key.clone(),
    }));
    let mut resume: BTreeMap<String, _> = resume.unwrap_or_default();
    for link in allowed() {
        let slot = slots.entry(link.id.clone()).or_default();
        let rebind = PendingRebind {
            group: Some(group.clone()),
            resume: resume.remove(&*link.id),
        };
        // Only the newest subscription matters: while a rebind waits for the link
        // thread, a newer one replaces it instead of queueing behind it.
        if slot.put(rebind) {
            link.send(Command::RebindLatest {
                client,
                outbox: outbox.clone(),
                slot: slot.clone(),
            })
            .await;
        }
    }
    true
}

/// A token bucket: `burst` requests at once, `per_sec` on average.
struct TokenBucket {
    tokens: f64,
    per_sec: f64,
    burst: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    fn new(per_sec: u32, burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
            last: tokio::time::Instant::now(),
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let earned = now.duration_since(self.last).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token.
    fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.per_sec).max(0.0))
    }
}

/// The `error` a client gets for a request over its rate.
fn rate_limited(bucket: &TokenBucket) -> Arc<str> {
    let message = format!(
        "too many subscribe/resync requests; retry in {} ms",
        bucket.wait().as_millis().max(1)
    );
    error(ClientErrorCode::RateLimited, message)
}

/// Most frames fed to a client's socket before one flush, and most bytes: whatever is
/// queued when the writer wakes goes out in one write, as far as these allow.
const BATCH_FRAMES: usize = 64;
const BATCH_BYTES: usize = 256 * 1024;

/// A frame fed but not yet flushed: what to count once it is out.
struct Fed {
    kind: &'static str,
    bytes: usize,
    time: Option<f64>,
}

async fn write(
    relay: Arc<Relay>,
    client: ClientId,
    outbox: Arc<Outbox>,
    mut sink: SplitSink<WebSocket, Message>,
    done: watch::Sender<bool>,
    deflate: Arc<AtomicBool>,
) {
    let timeout = Duration::from_millis(relay.config().limits.client_send_timeout_ms);
    let compress_min = relay.config().limits.compress_min_bytes;
    let frame = |text| frame(text, compress_min, &deflate);
    let mut shutdown = relay.shutdown_signal();
    let metrics = relay.metrics().clone();
    let mut fed: Vec<Fed> = Vec::with_capacity(BATCH_FRAMES);
    // Taken from the outbox while a batch was filling, handled after its flush.
    let mut held: Option<Outgoing> = None;
    'run: loop {
        let next = match held.take().or_else(|| outbox.pop()) {
            Some(next) => next,
            None if fed.is_empty() => {
                tokio::select! {
                    _ = outbox.ready() => continue,
                    _ = shutdown.changed() => {
                        let frame = CloseFrame { code: CloseCode::GoingAway.code(), reason: Utf8Bytes::from_static("relay shutting down") };
                        let _ = tokio::time::timeout(Duration::from_millis(200), sink.send(Message::Close(Some(frame)))).await;
                        break;
                    }
                }
            }
            None => {
                // Nothing more ready: what was fed goes out in one write.
                if flush(&mut sink, timeout, client).await.is_err() {
                    break;
                }
                count_sent(&metrics, &mut fed);
                continue;
            }
        };
        let (message, kind, time) = match next {
            Outgoing::Text(t) => (frame(t).await, "other", None),
            Outgoing::Snapshot(t) => (frame(t).await, "snapshot", None),
            Outgoing::Delta(d) => (frame(d.text.clone()).await, "delta", d.time),
            other @ (Outgoing::Bridge(_) | Outgoing::Close(..)) if !fed.is_empty() => {
                // Frames before it go out first.
                held = Some(other);
                if flush(&mut sink, timeout, client).await.is_err() {
                    break;
                }
                count_sent(&metrics, &mut fed);
                continue;
            }
            Outgoing::Bridge(asks) => {
                // One request per workflow; the link thread answers into the outbox.
                let mut by_workflow: BTreeMap<Arc<str>, Vec<(String, Option<ResumePoint>)>> = BTreeMap::new();
                for ((workflow, topic), held) in asks {
                    by_workflow
                        .entry(workflow)
                        .or_default()
                        .push((topic.to_string(), held));
                }
                for (workflow, topics) in by_workflow {
                    if let Some(link) = relay.link(&workflow) {
                        link.send(Command::Bridge {
                            client,
                            outbox: outbox.clone(),
                            topics,
                        })
                        .await;
                    }
                }
                continue;
            }
            Outgoing::Close(code, reason) => {
                let frame = CloseFrame {
                    code: code.code(),
                    reason: Utf8Bytes::from_static(reason),
                };
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), sink.send(Message::Close(Some(frame))))
                        .await;
                break;
            }
        };
        let bytes = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        match tokio::time::timeout(timeout, sink.feed(message)).await {
            Ok(Ok(())) => fed.push(Fed { kind, bytes, time }),
            Ok(Err(_)) => break 'run,
            Err(_) => {
                tracing::info!(%client, "send timed out; disconnecting");
                break 'run;
            }
        }
        let batch_bytes: usize = fed.iter().map(|f| f.bytes).sum();
        if fed.len() >= BATCH_FRAMES || batch_bytes >= BATCH_BYTES {
            if flush(&mut sink, timeout, client).await.is_err() {
                break;
            }
            count_sent(&metrics, &mut fed);
        }
    }
    let _ = done.send(true);
}

/// Flushes what was fed to the client's socket, waiting at most `timeout`; an error
/// when the connection failed or the client does not read (it is then dropped).
async fn flush(
    sink: &mut SplitSink<WebSocket, Message>,
    timeout: Duration,
    client: ClientId,
) -> Result<(), ()> {
    match tokio::time::timeout(timeout, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(()),
        Err(_) => {
            tracing::info!(%client, "send timed out; disconnecting");
            Err(())
        }
    }
}

/// Counts frames that went out, and the suite-to-send latency of deltas.
fn count_sent(metrics: &crate::serve::metrics::Metrics, fed: &mut Vec<Fed>) {
    for f in fed.drain(..) {
        metrics.messages_out.get_or_create(&KindLabel::of(f.kind)).inc();
        metrics.bytes_out.inc_by(f.bytes as u64);
        if let Some(time) = f.time {
            metrics
                .latency
                .observe(crate::serve::metrics::seconds_since(time));
        }
    }
}

/// A frame as it goes out: deflated (binary) when the client asked for that and it is
/// at least `min` bytes, once per shared frame; otherwise text.
async fn frame(text: Arc<str>, min: usize, deflate: &AtomicBool) -> Message {
    if text.len() >= min && deflate.load(Ordering::Relaxed) {
        if let Some(packed) = crate::clients::compress::SHARED.deflate(&text).await {
            return Message::Binary(packed);
        }
    }
    Message::Text(Utf8Bytes::from(&*text))
}

/// True when a read failed because the frame was over the size limit.
fn too_big(error: &axum::Error) -> bool {
    use std::error::Error as _;
    use tokio_tungstenite::tungstenite::Error;
    let mut cause = error.source();
    while let Some(e) = cause {
        if matches!(e.downcast_ref::<Error>(), Some(Error::Capacity(_))) {
            return true;
        }
        cause = e.source();
    }
    false
}
