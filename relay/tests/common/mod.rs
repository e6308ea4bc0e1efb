//! Helpers for relay tests over real sockets: suites on loopback, a relay on port 0,
//! and websocket clients that check every message with the browser client's store.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::fast;
use clonewire_core::protocol::client::{ClientMessage, RelayMessage, Resume, WorkflowState};
use clonewire_core::{Document, Projection, Schema, Subscription, SubscriptionLimits};
use clonewire_relay::config::{Config, SuiteConfig};
use clonewire_suite::{Publisher, PublisherConfig};
use clonewire_wasm::store::{new_store, ApplyOutcome, Store};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The schema the test suites report.
pub fn schema() -> Schema {
    Schema::new([
        vec!["taskProxies"],
        vec!["edges"],
        vec!["taskProxies", "*", "jobs"],
    ])
}

/// A publisher on free loopback ports with a fast heartbeat, and the suite config
/// that follows it.
pub fn suite(name: &str) -> (Publisher, SuiteConfig) {
    let mut config = PublisherConfig::new(name);
    config.schema = schema();
    config.heartbeat_ms = 100;
    let publisher = Publisher::start(config).expect("publisher starts");
    let follow = SuiteConfig {
        name: name.to_owned(),
        pub_endpoint: publisher.pub_endpoint().to_owned(),
        rep_endpoint: publisher.rep_endpoint().to_owned(),
        server_key: None,
    };
    (publisher, follow)
}

/// A relay config on port 0 following `suites`, with short linger for tests.
pub fn relay_config(suites: Vec<SuiteConfig>) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        suites,
        ..Config::default()
    };
    config.limits.topic_linger_secs = 1;
    config.limits.suite_request_timeout_ms = 1000;
    config
}

/// Publishes to a suite and mirrors the change in `mirror`.
pub fn publish(publisher: &Publisher, mirror: &mut Document, topic: &str, patch: Value) {
    mirror.apply(topic, &patch).expect("object patch");
    publisher.publish(topic, patch).expect("published");
}

/// What `query` selects of `mirror`'s topic, as workflow `workflow`.
pub fn projection(mirror: &Document, query: &str, workflow: &str, topic: &str) -> Value {
    let sub = Subscription::parse(query, &SubscriptionLimits::default()).expect("valid query");
    let Some(field) = sub.for_topic(workflow, topic) else {
        return json!({});
    };
    let Some(proj) = Projection::compile(field, topic, &schema()) else {
        return json!({});
    };
    mirror.topic(topic).map_or(json!({}), |t| proj.project(t).0)
}

/// A websocket client that applies and checks every message like the browser does.
pub struct TestClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The checked copies.
    pub store: Store,
    /// Workflow states as last told.
    pub states: HashMap<String, WorkflowState>,
    /// Every workflow state told, in order.
    pub state_history: Vec<(String, WorkflowState)>,
    /// The schema each `workflow` message carried, in order (`None`: left out).
    pub schema_history: Vec<(String, Option<clonewire_core::Schema>)>,
    /// Messages that failed a check (each also sent a resync).
    pub rejected: Vec<String>,
    /// Every message type received, with its size.
    pub received: Vec<(String, usize)>,
    /// `error` messages (code, message).
    pub errors: Vec<(String, String)>,
    /// `subscribed` echoes.
    pub subscribed: Vec<String>,
    /// True once the relay closed the connection.
    pub closed: bool,
    /// Per delta with a suite `time`: (workflow, milliseconds from publish to receipt).
    pub latencies: Vec<(String, f64)>,
    /// The close code, if the relay sent one.
    pub close_code: Option<u16>,
    /// The compression `subscribe` asks for (binary frames are inflated with it).
    pub compression: Option<String>,
    /// Bytes of every data frame as it arrived (compressed ones compressed).
    pub wire_bytes: usize,
    /// Binary (compressed) frames received.
    pub binary_frames: usize,
}

impl TestClient {
    /// Connects to `/ws`.
    pub async fn connect(addr: SocketAddr) -> TestClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("ws connects");
        TestClient {
            ws,
            store: new_store(),
            states: HashMap::new(),
            state_history: Vec::new(),
            schema_history: Vec::new(),
            rejected: Vec::new(),
            received: Vec::new(),
            errors: Vec::new(),
            subscribed: Vec::new(),
            closed: false,
            latencies: Vec::new(),
            close_code: None,
            compression: None,
            wire_bytes: 0,
            binary_frames: 0,
        }
    }

    /// Sends a message.
    pub async fn send(&mut self, message: &ClientMessage) {
        let text = serde_json::to_string(message).expect("json");
        self.ws.send(Message::Text(text.into())).await.expect("sent");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        let _ = self.ws.send(Message::Text(text.to_owned().into())).await;
    }

    /// Sets the subscription.
    pub async fn subscribe(&mut self, query: &str, resume: Option<Resume>) {
        self.send(&ClientMessage::Subscribe {
            query: query.to_owned(),
            resume,
            compression: self.compression.clone(),
        })
        .await;
    }

    /// Receives and applies messages for `time`.
    pub async fn pump(&mut self, time: Duration) {
        let end = Instant::now() + time;
        while !self.closed && Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    self.wire_bytes += text.len();
                    self.handle(text.as_str()).await;
                }
                Ok(Some(Ok(Message::Binary(packed)))) => {
                    assert!(
                        self.compression.is_some(),
                        "a binary frame the client did not ask for"
                    );
                    self.wire_bytes += packed.len();
                    self.binary_frames += 1;
                    let mut text = String::new();
                    std::io::Read::read_to_string(
                        &mut flate2::read::DeflateDecoder::new(&packed[..]),
                        &mut text,
                    )
                    .expect("a binary frame inflates to UTF-8 text");
                    self.handle(&text).await;
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                    self.closed = true;
                }
                Ok(None) | Ok(Some(Err(_))) => self.closed = true,
                Ok(Some(Ok(_))) => {}
                Err(_) => break,
            }
        }
    }

    /// Receives until `done` holds (true) or `timeout` passes (false).
    pub async fn pump_until(&mut self, timeout: Duration, done: impl Fn(&TestClient) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if done(self) {
                return true;
            }
            self.pump(Duration::from_millis(50)).await;
        }
        done(self)
    }

    async fn handle(&mut self, text: &str) {
        // The browser client's decoder (core's fast path), so every frame the relay
        // sends in these tests is also read the way a browser reads it.
        let message = match fast::decode(text) {
            Ok(frame) => RelayMessage::from(frame),
            Err(e) => panic!("relay sent something that does not decode: {e}: {text}"),
        };
        self.received.push((message.kind().to_owned(), text.len()));
        match &message {
            RelayMessage::Workflow {
                workflow,
                state,
                schema,
            } => {
                self.states.insert(workflow.clone(), *state);
                self.state_history.push((workflow.clone(), *state));
                self.schema_history.push((workflow.clone(), schema.clone()));
            }
            RelayMessage::Error { code, message } => self.errors.push((format!("{code:?}"), message.clone())),
            RelayMessage::Subscribed { query } => self.subscribed.push(query.clone()),
            RelayMessage::Delta {
                workflow,
                time: Some(time),
                ..
            } => {
                self.latencies.push((workflow.clone(), now_ms() - time));
            }
            _ => {}
        }
        if let Some(((workflow, topic), ApplyOutcome::Rejected(why))) = self.store.apply_message(&message) {
            self.rejected.push(format!("{workflow}/{topic}: {why:?}"));
            self.send(&ClientMessage::Resync { workflow, topic }).await;
        }
    }

    /// The client's copy of one (workflow, topic).
    pub fn copy(&self, workflow: &str, topic: &str) -> Value {
        self.store
            .get(workflow, topic)
            .map_or(json!({}), |r| r.topic.to_value())
    }

    /// How many messages of `kind` arrived.
    pub fn count(&self, kind: &str) -> usize {
        self.received.iter().filter(|(k, _)| k == kind).count()
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The `q`-quantile (0..=1) of some values.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Reads `/metrics` and returns the value of one sample (0 if absent).
pub async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let text = http_get(addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// A plain HTTP GET on loopback, body only.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await.expect("read");
    let text = String::from_utf8_lossy(&body).to_string();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(_, b)| b.to_owned())
}
