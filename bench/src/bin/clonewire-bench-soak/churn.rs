//! A steady churn of websocket clients: a population held at a target size, each
//! client joining, reading, sometimes lagging (it stops reading, so the relay's queue
//! for it fills and it is bridged when it reads again) or vanishing without a close
//! frame, then leaving. Every other client asks for compressed frames, so the relay's
//! cache of deflated frames is exercised too. Every client's life is bounded in time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::DEFLATE_RAW;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The two subscriptions of the soak: a page with three panels, and a bare table.
pub const QUERIES: [&str; 2] = [
    "subscription { workflows { workflow { status } taskProxies { state name } jobs { state } } }",
    "subscription { workflows { taskProxies { state } } }",
];

/// How one client behaves, in turn: mostly readers.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Reads everything until its life ends, then closes.
    Reader,
    /// Reads, stops reading for a while, then reads again until its life ends.
    Lagger,
    /// Reads for a moment, then drops the connection without a close frame.
    Vanisher,
}

const KINDS: [Kind; 10] = [
    Kind::Reader,
    Kind::Reader,
    Kind::Lagger,
    Kind::Reader,
    Kind::Reader,
    Kind::Vanisher,
    Kind::Reader,
    Kind::Lagger,
    Kind::Reader,
    Kind::Reader,
];

/// How long a lagger stops reading.
const LAG: Duration = Duration::from_secs(15);
/// How long a connection may take to open.
const CONNECT: Duration = Duration::from_secs(10);

/// What the churn has done so far, shared with the sampler.
#[derive(Debug, Default)]
pub struct ChurnCounts {
    /// Clients connected now.
    pub live: AtomicUsize,
    /// Clients that have joined since the start.
    pub joined: AtomicU64,
    /// Clients that could not connect or subscribe.
    pub failed: AtomicU64,
    /// Frames received.
    pub frames: AtomicU64,
    /// Bytes received.
    pub bytes: AtomicU64,
}

/// Keeps `population` clients of `url` alive, each living `life` seconds (spread
/// from half to one and a half times it), until `stop` turns true.
pub async fn run(
    url: String,
    population: usize,
    life: Duration,
    counts: Arc<ChurnCounts>,
    stop: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    while !*stop.borrow() {
        tick.tick().await;
        while counts.live.load(Ordering::Relaxed) < population {
            // Spread of lives: deterministic, from 0.5 to 1.5 times `life`.
            let spread = 0.5 + (next * 37 % 100) as f64 / 100.0;
            let kind = KINDS[next % KINDS.len()];
            let query = QUERIES[next % QUERIES.len()];
            // Paired with the query so both queries see both kinds of client.
            let compressed = (next / QUERIES.len()) % 2 == 1;
            counts.live.fetch_add(1, Ordering::Relaxed);
            tasks.spawn(client(
                url.clone(),
                kind,
                query,
                compressed,
                life.mul_f64(spread),
                counts.clone(),
                stop.clone(),
            ));
            next += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    // Every client sees `stop` and closes; none outlives a bounded wait.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

async fn client(
    url: String,
    kind: Kind,
    query: &'static str,
    compressed: bool,
    life: Duration,
    counts: Arc<ChurnCounts>,
    mut stop: watch::Receiver<bool>,
) {
    let _live = Live(counts.clone());
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(CONNECT, tokio_tungstenite::connect_async(&url)).await
    else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut subscribe = json!({"type": "subscribe", "query": query});
    if compressed {
        subscribe["compression"] = DEFLATE_RAW.into();
    }
    let subscribe = subscribe.to_string();
    if ws.send(Message::Text(subscribe.into())).await.is_err() {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    counts.joined.fetch_add(1, Ordering::Relaxed);
    let born = Instant::now();
    let end = born + life;
    let lag_at = match kind {
        Kind::Lagger => Some(born + life / 3),
        Kind::Reader | Kind::Vanisher => None,
    };
    let vanish_at = match kind {
        Kind::Vanisher => Some(born + Duration::from_secs(2).min(life)),
        Kind::Reader | Kind::Lagger => None,
    };
    let mut lagged = false;
    loop {
        let now = Instant::now();
        if now >= end || *stop.borrow() {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            return;
        }
        if vanish_at.is_some_and(|t| now >= t) {
            // Dropped without a close frame: the relay finds out from the socket.
            return;
        }
        if !lagged && lag_at.is_some_and(|t| now >= t) {
            lagged = true;
            tokio::select! {
                () = tokio::time::sleep(LAG) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let wait = end.saturating_duration_since(now).min(Duration::from_secs(1));
        let frame = tokio::select! {
            f = tokio::time::timeout(wait, ws.next()) => f,
            _ = stop.changed() => continue,
        };
        match frame {
            Err(_) => {}
            Ok(Some(Ok(message))) => {
                counts.frames.fetch_add(1, Ordering::Relaxed);
                counts.bytes.fetch_add(message.len() as u64, Ordering::Relaxed);
            }
            Ok(None | Some(Err(_))) => return,
        }
    }
}

/// Counts a client as live until it is dropped.
struct Live(Arc<ChurnCounts>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::Relaxed);
    }
}
