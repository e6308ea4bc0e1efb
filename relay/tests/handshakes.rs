//! Connections that never finish their request cost the relay a bounded amount for a
//! bounded time: a flood of half-open requests does not lock out a normal client, and
//! each half-open one is closed after the handshake timeout. A per-address cap, when
//! set, refuses connections past it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HALF_OPEN: usize = 2_000;

/// Reads until the peer closes; true when it did within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_requests_neither_lock_out_clients_nor_stay_open() {
    let (_a, a_cfg) = suite("a");
    let mut config = relay_config(vec![a_cfg]);
    config.limits.handshake_timeout_ms = 1_500;
    config.limits.max_handshakes = 1_000;
    let timeout = Duration::from_millis(config.limits.handshake_timeout_ms);
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();

    let opened = Instant::now();
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        half_open.push(s);
    }
    println!(
        "{HALF_OPEN} half-open requests opened in {:.2} s",
        opened.elapsed().as_secs_f64()
    );

    // A normal client still gets its hello at once.
    let start = Instant::now();
    let mut client = tokio::time::timeout(Duration::from_secs(1), TestClient::connect(addr))
        .await
        .expect("the websocket handshake completes within 1 s");
    assert!(
        client
            .pump_until(Duration::from_secs(1), |c| c.count("hello") == 1)
            .await,
        "hello within 1 s"
    );
    let hello = start.elapsed();
    assert!(hello < Duration::from_secs(1), "hello after {hello:?}");

    // Every half-open request is closed: the oldest to admit newer ones, the rest
    // once the header timeout passes.
    let mut closed = 0;
    for s in &mut half_open {
        if closed_within(s, timeout + Duration::from_secs(3)).await {
            closed += 1;
        }
    }
    let evicted = metric(addr, "clonewire_handshakes_evicted_total").await;
    println!(
        "hello after {:.1} ms; {closed} of {HALF_OPEN} half-open closed within {:.1} s ({evicted} to admit newer ones)",
        hello.as_secs_f64() * 1e3,
        opened.elapsed().as_secs_f64()
    );
    assert_eq!(closed, HALF_OPEN, "every half-open request is closed");
    assert!(
        evicted >= (HALF_OPEN - 1_000) as f64,
        "the cap held: {evicted} evicted"
    );

    // The client that finished its handshake is still served.
    client.pump(Duration::from_millis(200)).await;
    assert!(!client.closed, "the upgraded connection stays");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_address_cap_refuses_connections_past_it() {
    let (_a, a_cfg) = suite("a");
    let mut config = relay_config(vec![a_cfg]);
    config.limits.max_connections_per_ip = Some(3);
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TestClient::connect(addr).await;
        assert!(
            c.pump_until(Duration::from_secs(2), |c| c.count("hello") == 1)
                .await
        );
        held.push(c);
    }
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "a fourth connection from the same address is closed"
    );
    // A slot frees when a websocket closes.
    if let Some(c) = held.pop() {
        c.close().await;
    }
    let free = async {
        loop {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut body = Vec::new();
            let _ = s.read_to_end(&mut body).await;
            if body.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), free)
        .await
        .expect("a freed slot admits a new connection");
    let refused = http_get_lenient(addr, "/metrics")
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix("clonewire_connections_refused_total")
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "refusals are counted: {refused}");
    relay.shutdown().await.unwrap();
}

/// A GET that returns whatever arrived, even nothing (a refused connection).
async fn http_get_lenient(addr: std::net::SocketAddr, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body).await;
    String::from_utf8_lossy(&body).into_owned()
}
