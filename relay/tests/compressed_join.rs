//! Compressed frames (docs/protocol.md, Client link): a client that names
//! `deflate-raw` in `subscribe` gets frames over the relay's threshold as raw DEFLATE
//! binary frames and the same verified copy; a client that does not gets text only.
//! Prints the join's bytes on the wire both ways (`CLONEWIRE_JOIN_TASKS` sets the
//! size; docs/benchmarks.md quotes a 100K-task run).

mod common;

use std::time::{Duration, Instant};

use clonewire_core::protocol::client::DEFLATE_RAW;
use clonewire_core::Document;
use common::*;
use serde_json::json;

const QUERY: &str = "{ workflows { taskProxies { name status cyclePoint } } }";

/// Joins with or without compression; returns the client once its copy is right.
async fn join(addr: std::net::SocketAddr, m: &Document, compression: Option<&str>) -> (TestClient, Duration) {
    let mut c = TestClient::connect(addr).await;
    c.compression = compression.map(str::to_owned);
    let start = Instant::now();
    c.subscribe(QUERY, None).await;
    let want = projection(m, QUERY, "a", "taskProxies");
    let ok = c
        .pump_until(Duration::from_secs(120), |c| c.copy("a", "taskProxies") == want)
        .await;
    assert!(ok, "the client got its projection: {:?}", c.received);
    (c, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_join_goes_deflated_to_clients_that_ask_and_as_text_to_others() {
    let tasks: usize = std::env::var("CLONEWIRE_JOIN_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    let mut proxies = serde_json::Map::new();
    for i in 0..tasks {
        proxies.insert(
            format!("1/t{i:06}"),
            json!({"name": format!("t{i}"), "status": "waiting", "cyclePoint": "1"}),
        );
    }
    publish(&a, &mut m, "taskProxies", serde_json::Value::Object(proxies));
    let config = relay_config(vec![a_cfg]);
    let threshold = config.limits.compress_min_bytes;
    let relay = clonewire_relay::start(config).await.unwrap();

    let (mut plain, plain_time) = join(relay.local_addr(), &m, None).await;
    let (mut packed, packed_time) = join(relay.local_addr(), &m, Some(DEFLATE_RAW)).await;
    assert_eq!(plain.binary_frames, 0, "a client that did not ask gets text only");
    assert!(packed.binary_frames >= 1, "the snapshot went out deflated");
    assert!(plain.rejected.is_empty() && packed.rejected.is_empty());
    println!(
        "join of {tasks} tasks: {} B as text in {:.2} s, {} B deflated in {:.2} s ({:.1}x smaller)",
        plain.wire_bytes,
        plain_time.as_secs_f64(),
        packed.wire_bytes,
        packed_time.as_secs_f64(),
        plain.wire_bytes as f64 / packed.wire_bytes as f64
    );
    assert!(
        packed.wire_bytes * 4 < plain.wire_bytes,
        "{} vs {}",
        packed.wire_bytes,
        plain.wire_bytes
    );

    // Small frames stay text, in order with the deflated ones: deltas keep applying
    // and checking after the deflated snapshot.
    let binary_before = packed.binary_frames;
    for i in 0..20 {
        publish(
            &a,
            &mut m,
            "taskProxies",
            json!({ format!("1/t{i:06}"): {"status": "running"} }),
        );
    }
    let want = projection(&m, QUERY, "a", "taskProxies");
    let ok = packed
        .pump_until(Duration::from_secs(30), |c| c.copy("a", "taskProxies") == want)
        .await;
    assert!(ok, "deltas after the deflated snapshot apply");
    plain
        .pump_until(Duration::from_secs(30), |c| c.copy("a", "taskProxies") == want)
        .await;
    assert!(packed.count("delta") >= 1);
    assert_eq!(
        packed.binary_frames, binary_before,
        "deltas under {threshold} B stay text"
    );
    assert!(packed.rejected.is_empty(), "{:?}", packed.rejected);
    relay.shutdown().await.unwrap();
}
