//! Websocket clients. A [`CheckedClient`] applies and checks every message with the
//! browser client's own store (`prev` chain and projection hash), asks for `resync`
//! on a rejected message, and reconnects with `resume` when the relay goes away. The
//! bad clients: one that subscribes to everything and never reads (a 4 KiB receive
//! buffer), one that floods the relay with garbage frames, and half-open requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clonewire_core::protocol::client::{ClientMessage, RelayMessage};
use clonewire_wasm::store::{new_store, ApplyOutcome, Store};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a checked client holds and how it went.
pub struct ClientState {
    /// The checked copies.
    pub store: Store,
    /// Messages the store rejected (each answered with `resync`).
    pub rejected: u64,
    /// Connections made (the first one included).
    pub connections: u64,
    /// Messages that did not decode.
    pub undecodable: u64,
    /// `error` messages from the relay.
    pub errors: u64,
}

impl Default for ClientState {
    fn default() -> Self {
        ClientState {
            store: new_store(),
            rejected: 0,
            connections: 0,
            undecodable: 0,
            errors: 0,
        }
    }
}

/// A client that follows one query through relay restarts.
pub struct CheckedClient {
    /// Its subscription.
    pub query: String,
    state: Arc<Mutex<ClientState>>,
    stop: Arc<AtomicBool>,
}

impl CheckedClient {
    /// Starts following `query` at the relay on `addr`.
    pub fn start(addr: SocketAddr, query: &str) -> CheckedClient {
        let state = Arc::new(Mutex::new(ClientState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(follow(addr, query.to_owned(), state.clone(), stop.clone()));
        CheckedClient {
            query: query.to_owned(),
            state,
            stop,
        }
    }

    /// Its state, locked.
    pub fn state(&self) -> MutexGuard<'_, ClientState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for CheckedClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn connect(addr: SocketAddr) -> Option<Ws> {
    let attempt = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"));
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

async fn follow(addr: SocketAddr, query: String, state: Arc<Mutex<ClientState>>, stop: Arc<AtomicBool>) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    while !stop.load(Ordering::Relaxed) {
        let Some(mut ws) = connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let resume = {
            let mut s = lock();
            s.connections += 1;
            let points = s.store.resume_points();
            (!points.is_empty()).then_some(points)
        };
        let subscribe = ClientMessage::Subscribe {
            query: query.clone(),
            resume,
            compression: None,
        };
        let Ok(text) = serde_json::to_string(&subscribe) else {
            return;
        };
        if ws.send(Message::Text(text.into())).await.is_err() {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            let next = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(_))) => continue,
            };
            let resync = apply(&mut lock(), next.as_str());
            if let Some(message) = resync {
                let Ok(text) = serde_json::to_string(&message) else {
                    continue;
                };
                if ws.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Applies one relay message; returns the `resync` to send when it was rejected.
fn apply(state: &mut ClientState, text: &str) -> Option<ClientMessage> {
    let Ok(message) = RelayMessage::decode(text) else {
        state.undecodable += 1;
        return None;
    };
    if let RelayMessage::Error { .. } = message {
        state.errors += 1;
    }
    match state.store.apply_message(&message) {
        Some(((workflow, topic), ApplyOutcome::Rejected(_))) => {
            state.rejected += 1;
            Some(ClientMessage::Resync { workflow, topic })
        }
        _ => None,
    }
}

/// Opens a connection that subscribes to everything and then never reads. It holds
/// the socket until `stop` is set.
pub async fn never_read(addr: SocketAddr, stop: Arc<AtomicBool>) -> bool {
    // A small receive buffer, as a stalled browser tab on a slow link: the relay's
    // sends back up after a few KiB.
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return false;
    };
    let _ = socket.set_recv_buffer_size(4 * 1024);
    let Ok(Ok(tcp)) = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await else {
        return false;
    };
    let handshake = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp);
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(2), handshake).await else {
        return false;
    };
    let subscribe = r#"{"type":"subscribe","query":"{ workflows }"}"#;
    if ws.send(Message::Text(subscribe.into())).await.is_err() {
        return false;
    }
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(ws);
    });
    true
}

/// Opens `n` connections that send half a request (`GET /ws HTTP/1.1`, a Host header,
/// then nothing) and holds them until the relay closes them or `hold` passes; counts
/// in `closed` those the relay closed.
pub async fn half_open(addr: SocketAddr, n: usize, hold: Duration, closed: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for _ in 0..n {
        let Ok(Ok(mut tcp)) = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let closed = closed.clone();
        tokio::spawn(async move {
            if tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                return;
            }
            let mut buf = [0u8; 512];
            let end = tokio::time::Instant::now() + hold;
            loop {
                match tokio::time::timeout_at(end, tcp.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Ok(Ok(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }
}

/// Sends up to `max` garbage frames as fast as the socket takes them; returns how
/// many went out before the relay cut the connection.
pub async fn flood_garbage(addr: SocketAddr, max: u64, sent: &AtomicU64) -> u64 {
    let Some(mut ws) = connect(addr).await else {
        return 0;
    };
    let garbage = [
        "{",
        "not json",
        r#"{"type":"frobnicate"}"#,
        r#"{"type":"subscribe","query":"{ workflows { { } }"}"#,
        r#"{"type":"subscribe","query":7}"#,
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    let mut count = 0;
    for i in 0..max {
        let frame = garbage[(i as usize) % garbage.len()];
        if ws.send(Message::Text(frame.into())).await.is_err() {
            break;
        }
        count += 1;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    count
}
