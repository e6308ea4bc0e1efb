//! One suite busy for 30 s (a slow config reload: every request answered `busy`) while
//! it needs repairs and a new client wants a snapshot of it: the other suite's
//! delivery latency must not rise.

mod common;

use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::Document;
use common::*;
use serde_json::json;

const BUSY: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_suite_does_not_delay_the_others() {
    let (slow, slow_cfg) = suite("slow");
    let (fast, fast_cfg) = suite("fast");
    let (mut ms, mut mf) = (Document::new(), Document::new());
    publish(
        &slow,
        &mut ms,
        "taskProxies",
        json!({"1/a": {"status": "waiting"}}),
    );
    publish(
        &fast,
        &mut mf,
        "taskProxies",
        json!({"1/a": {"status": "waiting"}}),
    );
    let relay = clonewire_relay::start(relay_config(vec![slow_cfg, fast_cfg]))
        .await
        .unwrap();
    let addr = relay.local_addr();
    let q = "{ workflows { taskProxies { status } } }";
    let mut c = TestClient::connect(addr).await;
    c.subscribe(q, None).await;
    assert!(
        c.pump_until(Duration::from_secs(5), |c| c.copy("fast", "taskProxies")
            == projection(&mf, q, "fast", "taskProxies"))
            .await
    );

    // Baseline: 3 s of deltas from the fast suite at 50/s.
    let mut i = 0u32;
    let mut drive = |fast_only: bool, mf: &mut Document, ms: &mut Document| {
        i += 1;
        publish(
            &fast,
            mf,
            "taskProxies",
            json!({"1/a": {"status": format!("s{i}")}}),
        );
        if !fast_only && i % 10 == 0 {
            // The busy suite keeps publishing but some deltas are lost: it needs replays.
            let patch = json!({"1/a": {"status": format!("s{i}")}});
            ms.apply("taskProxies", &patch).unwrap();
            slow.publish_unsent("taskProxies", patch).unwrap();
        }
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        drive(true, &mut mf, &mut ms);
        c.pump(Duration::from_millis(20)).await;
    }
    let before: Vec<f64> = c
        .latencies
        .iter()
        .filter(|(w, _)| w == "fast")
        .map(|(_, l)| *l)
        .collect();
    c.latencies.clear();

    // 30 s busy: repairs are refused, and a new client asks for a snapshot of it.
    slow.set_busy(true);
    let mut late = TestClient::connect(addr).await;
    late.subscribe(r#"{ workflows(ids: ["slow"]) { taskProxies { status } } }"#, None)
        .await;
    let start = Instant::now();
    let mut saw_busy = false;
    while start.elapsed() < BUSY {
        drive(false, &mut mf, &mut ms);
        c.pump(Duration::from_millis(20)).await;
        late.pump(Duration::from_millis(1)).await;
        saw_busy |= c.states.get("slow") == Some(&WorkflowState::Busy);
    }
    let during: Vec<f64> = c
        .latencies
        .iter()
        .filter(|(w, _)| w == "fast")
        .map(|(_, l)| *l)
        .collect();
    slow.set_busy(false);

    let (b50, b99) = (quantile(&before, 0.5), quantile(&before, 0.99));
    let (d50, d99, dmax) = (
        quantile(&during, 0.5),
        quantile(&during, 0.99),
        quantile(&during, 1.0),
    );
    println!("fast suite latency ms: before p50 {b50:.1} p99 {b99:.1}; during the 30 s busy p50 {d50:.1} p99 {d99:.1} max {dmax:.1}");
    assert!(
        during.len() > 1000,
        "the fast suite kept delivering: {}",
        during.len()
    );
    assert!(
        d99 <= (b99 * 2.0).max(b99 + 50.0),
        "p99 rose from {b99:.1} ms to {d99:.1} ms"
    );
    assert!(saw_busy, "clients are told the slow suite is busy");

    // Afterwards the busy suite is repaired and the late client gets its data.
    assert!(
        c.pump_until(Duration::from_secs(10), |c| c.copy("slow", "taskProxies")
            == projection(&ms, q, "slow", "taskProxies"))
            .await
    );
    assert!(
        late.pump_until(Duration::from_secs(10), |c| c.copy("slow", "taskProxies")
            == projection(&ms, q, "slow", "taskProxies"))
            .await
    );
    assert!(c.rejected.is_empty() && late.rejected.is_empty());
    relay.shutdown().await.unwrap();
}
