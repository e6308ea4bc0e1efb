//! A client that never reads cannot grow the relay without bound or slow anyone
//! else: past its soft limit its topics lag (further deltas are skipped, and it gets
//! one bridging delta per topic when it drains), within the limits.

mod common;

use std::time::{Duration, Instant};

use clonewire_core::Document;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_stays_within_its_limits() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", json!({"1/t0": {"status": "waiting"}}));
    let mut config = relay_config(vec![a_cfg]);
    config.limits.client_queue_soft_bytes = 64 * 1024;
    config.limits.client_queue_hard_bytes = 256 * 1024;
    let hard = config.limits.client_queue_hard_bytes as f64;
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let q = "{ workflows { taskProxies } }";
    let mut stuck = TestClient::connect(addr).await;
    stuck.subscribe(q, None).await;
    let mut good = TestClient::connect(addr).await;
    good.subscribe(q, None).await;
    assert!(
        good.pump_until(Duration::from_secs(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    // ~24 MB of changes (each delta ~8 KB), more than loopback socket buffers hold.
    let filler = "x".repeat(8_000);
    let mut peak_queue: f64 = 0.0;
    let start = Instant::now();
    for i in 0..3_000u32 {
        publish(
            &a,
            &mut m,
            "taskProxies",
            json!({ format!("1/t{}", i % 50): {"log": format!("{i}{filler}")} }),
        );
        if i % 100 == 0 {
            good.pump(Duration::from_millis(10)).await;
            peak_queue = peak_queue.max(metric(addr, "clonewire_queue_bytes_max").await);
        }
    }
    let caught_up = good
        .pump_until(Duration::from_secs(60), |c| {
            c.copy("a", "taskProxies") == projection(&m, q, "a", "taskProxies")
        })
        .await;
    assert!(
        caught_up,
        "the reading client caught up: {} messages, closed {}, rejected {:?}",
        good.received.len(),
        good.closed,
        good.rejected
    );
    let lat: Vec<f64> = good.latencies.iter().map(|(_, l)| *l).collect();
    println!(
        "{} deltas in {:.1} s; peak queued for one client {:.0} KiB (hard limit {:.0} KiB); reader p99 {:.1} ms",
        3_000,
        start.elapsed().as_secs_f64(),
        peak_queue / 1024.0,
        hard / 1024.0,
        quantile(&lat, 0.99)
    );
    // Past the limits only catch-up data may be queued: one snapshot or bridging
    // delta per topic, at most the projection's size.
    let catch_up =
        serde_json::to_string(&projection(&m, q, "a", "taskProxies")).map_or(0, |t| t.len()) as f64;
    assert!(
        peak_queue <= hard + catch_up + 16.0 * 1024.0,
        "queue bounded: {peak_queue} (projection {catch_up})"
    );
    assert!(
        metric(addr, "clonewire_conflations_total").await > 0.0,
        "the stuck client's deltas were skipped, not queued"
    );
    assert!(good.rejected.is_empty());
    relay.shutdown().await.unwrap();
}
