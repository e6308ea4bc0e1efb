//! Five clients that never read cost a reading client nothing: while two suites
//! publish steadily, the stalled clients' topics lag (each further delta costs one
//! look-up and is dropped), their queues stay within the soft limit, the relay
//! applies every delta, and the reader gets every one of them.

mod common;

use std::time::{Duration, Instant};

use clonewire_core::Document;
use clonewire_suite::Publisher;
use common::*;
use serde_json::{json, Value};

const QUERY: &str = "{ workflows { taskProxies } }";
const TASKS: u32 = 2_000;
const RATE: u32 = 600;
const PHASE: Duration = Duration::from_secs(3);

fn tasks() -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..TASKS {
        m.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting"}),
        );
    }
    Value::Object(m)
}

/// Publishes `RATE` deltas a second (about 2 KB each) for `PHASE`; returns how many.
fn publish_phase(publisher: &Publisher, mirror: &mut Document, phase: u32) -> u32 {
    let filler = "x".repeat(2_000);
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < PHASE {
        let due = (start.elapsed().as_secs_f64() * f64::from(RATE)) as u32;
        while sent < due {
            // Fifty tasks carry the big field, so a join snapshot stays small.
            let task = format!("1/t{}", (sent + phase) % 50);
            publish(
                publisher,
                mirror,
                "taskProxies",
                json!({ task: {"status": format!("p{phase}-{sent}"), "log": format!("{sent}{filler}")} }),
            );
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sent
}

/// A websocket client with a 4 KiB receive buffer that subscribes and never reads.
async fn stalled_client(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures_util::SinkExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4 * 1024).expect("SO_RCVBUF");
    let tcp = socket.connect(addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .expect("handshake");
    let subscribe = json!({"type": "subscribe", "query": QUERY}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(subscribe.into()))
        .await
        .expect("subscribe");
    ws
}

/// RSS of this process (relay, suites and clients), in MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Phase {
    published: u32,
    received: usize,
    secs: f64,
    p99_ms: f64,
}

/// One phase: both suites publish while the reader reads; then the reader catches up.
async fn phase(suites: &mut [(Publisher, Document); 2], reader: &mut TestClient, n: u32) -> Phase {
    let deltas_before = reader.count("delta");
    let latencies_before = reader.latencies.len();
    let start = Instant::now();
    let rt = tokio::runtime::Handle::current();
    let published = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = suites
                .iter_mut()
                .map(|(p, m)| scope.spawn(move || publish_phase(p, m, n)))
                .collect();
            // The reader reads on this thread meanwhile.
            while !handles.iter().all(|h| h.is_finished()) {
                rt.block_on(reader.pump(Duration::from_millis(20)));
            }
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum::<u32>()
        })
    });
    let mirrors: Vec<Document> = suites.iter().map(|(_, m)| m.clone()).collect();
    let caught_up = reader
        .pump_until(Duration::from_secs(30), |c| {
            ["a", "b"]
                .iter()
                .zip(&mirrors)
                .all(|(w, m)| c.copy(w, "taskProxies") == projection(m, QUERY, w, "taskProxies"))
        })
        .await;
    assert!(caught_up, "the reader caught up; rejected {:?}", reader.rejected);
    let secs = start.elapsed().as_secs_f64();
    let lat: Vec<f64> = reader.latencies[latencies_before..]
        .iter()
        .map(|(_, l)| *l)
        .collect();
    Phase {
        published,
        received: reader.count("delta") - deltas_before,
        secs,
        p99_ms: quantile(&lat, 0.99),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_stalled_clients_cost_a_reader_nothing() {
    let (a, a_cfg) = suite("a");
    let (b, b_cfg) = suite("b");
    let mut suites = [(a, Document::new()), (b, Document::new())];
    for (p, m) in &mut suites {
        publish(p, m, "taskProxies", tasks());
    }
    let mut config = relay_config(vec![a_cfg, b_cfg]);
    config.limits.client_queue_soft_bytes = 256 * 1024;
    config.limits.client_queue_hard_bytes = 2 << 20;
    // Stalled clients stay connected for the whole test.
    config.limits.client_send_timeout_ms = 120_000;
    let soft = config.limits.client_queue_soft_bytes as f64;
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let mut reader = TestClient::connect(addr).await;
    reader.subscribe(QUERY, None).await;
    let mirrors: Vec<Document> = suites.iter().map(|(_, m)| m.clone()).collect();
    assert!(
        reader
            .pump_until(Duration::from_secs(10), |c| ["a", "b"].iter().zip(&mirrors).all(
                |(w, m)| c.copy(w, "taskProxies") == projection(m, QUERY, w, "taskProxies")
            ))
            .await
    );

    let alone = phase(&mut suites, &mut reader, 1).await;
    let rss_before = rss_mb();
    let mut stalled = Vec::new();
    for _ in 0..5 {
        stalled.push(stalled_client(addr).await);
    }
    let crowded = phase(&mut suites, &mut reader, 2).await;
    let rss_after = rss_mb();

    let deltas_in = metric(addr, "clonewire_deltas_in_total").await;
    let skipped = metric(addr, "clonewire_conflations_total").await;
    let peak = metric(addr, "clonewire_queue_bytes_max").await;
    for (name, p) in [("alone", &alone), ("with 5 stalled", &crowded)] {
        println!(
            "{name}: published {} in {:.1} s, reader got {} deltas ({:.0}/s), p99 {:.0} ms",
            p.published,
            p.secs,
            p.received,
            p.received as f64 / p.secs,
            p.p99_ms
        );
    }
    println!(
        "reader rate with stalled clients / alone: {:.2}",
        (crowded.received as f64 / crowded.secs) / (alone.received as f64 / alone.secs)
    );
    println!(
        "relay applied {deltas_in} deltas; {skipped} deltas skipped for stalled clients; \
         largest queue {:.0} KiB; RSS {rss_before:.0} -> {rss_after:.0} MB",
        peak / 1024.0
    );
    let published = 2 + alone.published + crowded.published;
    assert!(
        deltas_in >= f64::from(published) * 0.99,
        "the relay kept pace: applied {deltas_in} of {published}"
    );
    assert!(
        crowded.received as f64 >= f64::from(crowded.published) * 0.99,
        "the reader got every delta: {} of {}",
        crowded.received,
        crowded.published
    );
    assert!(reader.rejected.is_empty(), "{:?}", reader.rejected);
    // Stalled clients: once the socket buffers are full, at most the soft limit
    // queued each (plus the join snapshot); every further delta skipped at O(1).
    assert!(
        skipped >= f64::from(crowded.published),
        "the stalled clients' deltas were skipped, not queued: {skipped}"
    );
    assert!(peak <= soft + 1024.0 * 1024.0, "queues bounded: {peak}");
    assert!(
        rss_after - rss_before <= 100.0,
        "RSS grew {:.0} MB",
        rss_after - rss_before
    );
    relay.shutdown().await.unwrap();
}
