//! A new client joins a topic whose projection is far bigger than a client's queue
//! limits: the snapshot is still delivered, and deltas keep flowing after it.

mod common;

use std::time::{Duration, Instant};

use clonewire_core::Document;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_bigger_than_the_queue_limits_still_arrives() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    let mut tasks = serde_json::Map::new();
    for i in 0..20_000 {
        tasks.insert(
            format!("1/t{i:05}"),
            json!({"name": format!("t{i}"), "status": "waiting", "cyclePoint": "1"}),
        );
    }
    publish(&a, &mut m, "taskProxies", serde_json::Value::Object(tasks));
    let mut config = relay_config(vec![a_cfg]);
    config.limits.client_queue_soft_bytes = 64 * 1024;
    config.limits.client_queue_hard_bytes = 256 * 1024;
    let relay = clonewire_relay::start(config).await.unwrap();
    let q = "{ workflows { taskProxies { name status cyclePoint } } }";
    let mut c = TestClient::connect(relay.local_addr()).await;
    let start = Instant::now();
    c.subscribe(q, None).await;
    // Changes keep arriving while the client joins.
    for i in 0..50 {
        publish(
            &a,
            &mut m,
            "taskProxies",
            json!({ format!("1/t{i:05}"): {"status": "running"} }),
        );
        c.pump(Duration::from_millis(20)).await;
    }
    let ok = c
        .pump_until(Duration::from_secs(30), |c| {
            c.copy("a", "taskProxies") == projection(&m, q, "a", "taskProxies")
        })
        .await;
    let bytes: usize = c
        .received
        .iter()
        .filter(|(k, _)| k == "snapshot")
        .map(|(_, n)| n)
        .sum();
    println!(
        "joined 20K tasks ({} KiB of snapshots) in {:.2} s",
        bytes / 1024,
        start.elapsed().as_secs_f64()
    );
    if !ok {
        let health = http_get(relay.local_addr(), "/healthz").await;
        let metrics = http_get(relay.local_addr(), "/metrics").await;
        let problems: Vec<&str> = metrics
            .lines()
            .filter(|l| l.contains("suite_problems") || l.contains("repairs") || l.contains("deltas_in"))
            .collect();
        panic!(
            "the client got its projection: {:?}; {health}; {problems:?}",
            c.received
        );
    }
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert!(
        c.count("snapshot") <= 3,
        "no snapshot storm: {}",
        c.count("snapshot")
    );
    relay.shutdown().await.unwrap();
}
