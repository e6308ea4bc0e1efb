//! Subscription work cannot starve deltas: clients that change subscription as fast
//! as they can have their rebinds coalesced (only the newest counts) and, past a
//! per-connection rate, refused with `rate_limited`; a reader of the same workflow
//! keeps its latency.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::{CloseCode, WorkflowState};
use clonewire_core::Document;
use clonewire_suite::Publisher;
use common::*;
use serde_json::{json, Value};

const READER: &str = "{ workflows { taskProxies { status } } }";
const CHURN: usize = 3_000;

fn tasks(n: u32) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting"}),
        );
    }
    Value::Object(m)
}

/// Publishes a status change every 5 ms until `stop`; returns the mirror.
fn publish_until(publisher: &Publisher, mut mirror: Document, stop: &AtomicBool) -> Document {
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed) {
        publish(
            publisher,
            &mut mirror,
            "taskProxies",
            json!({ format!("1/t{}", i % 200): {"status": format!("s{i}")} }),
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    mirror
}

/// One churning client: `CHURN` distinct subscriptions back to back, then reads until
/// every one is acknowledged. Returns the last query and the client.
async fn churn(addr: std::net::SocketAddr, who: usize) -> (String, TestClient) {
    let mut c = TestClient::connect(addr).await;
    let mut last = String::new();
    for i in 0..CHURN {
        last = format!(
            r#"{{ workflows {{ taskProxies(ids: ["1/t{}"]) {{ status name }} }} }}"#,
            (i * 7 + who) % 200
        );
        c.subscribe(&last, None).await;
    }
    c.pump_until(Duration::from_secs(60), |c| c.subscribed.len() == CHURN)
        .await;
    (last, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_subscriptions_do_not_delay_a_reader() {
    let (a, a_cfg) = suite("a");
    let mut mirror = Document::new();
    publish(&a, &mut mirror, "taskProxies", tasks(200));
    let mut config = relay_config(vec![a_cfg]);
    // The rate limit is lifted here: coalescing alone must keep the link thread free.
    config.limits.client_requests_per_sec = 1_000_000;
    config.limits.client_request_burst = 1_000_000;
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let mut reader = TestClient::connect(addr).await;
    reader.subscribe(READER, None).await;
    assert!(
        reader
            .pump_until(Duration::from_secs(5), |c| c.copy("a", "taskProxies")
                == projection(&mirror, READER, "a", "taskProxies"))
            .await
    );
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let m = publish_until(&a, mirror, &stop);
            (a, m)
        })
    };

    reader.pump(Duration::from_secs(3)).await;
    let baseline: Vec<f64> = reader.latencies.iter().map(|(_, l)| *l).collect();
    let base_p99 = quantile(&baseline, 0.99);

    let started = Instant::now();
    let churners: Vec<_> = (0..4).map(|who| tokio::spawn(churn(addr, who))).collect();
    while !churners.iter().all(|c| c.is_finished()) {
        reader.pump(Duration::from_millis(50)).await;
    }
    let churn_secs = started.elapsed().as_secs_f64();
    reader.pump(Duration::from_millis(200)).await;
    let during: Vec<f64> = reader.latencies[baseline.len()..]
        .iter()
        .map(|(_, l)| *l)
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (_a, mirror) = publisher.join().expect("publisher");

    let churn_p99 = quantile(&during, 0.99);
    let bound = (4.0 * base_p99).max(base_p99 + 250.0);
    println!(
        "reader p99 {base_p99:.1} ms alone, {churn_p99:.1} ms while 4 clients sent {CHURN} subscribes each \
         ({:.0} subscribes/s over {churn_secs:.1} s); {} deltas during the churn",
        4.0 * CHURN as f64 / churn_secs,
        during.len()
    );
    assert!(during.len() > 50, "deltas kept flowing: {}", during.len());
    let told = &reader.state_history;
    assert!(
        !told.iter().any(|(_, state)| *state == WorkflowState::Stale),
        "the suite was never called silent while the relay was busy: {told:?}"
    );
    assert!(
        churn_p99 <= bound,
        "reader p99 {churn_p99:.1} ms over {bound:.1} ms"
    );
    assert!(
        reader
            .pump_until(Duration::from_secs(5), |c| c.copy("a", "taskProxies")
                == projection(&mirror, READER, "a", "taskProxies"))
            .await
    );
    for churner in churners {
        let (last, mut c) = churner.await.expect("churner");
        assert_eq!(c.subscribed.len(), CHURN, "every subscribe was acknowledged");
        assert!(
            c.pump_until(Duration::from_secs(5), |c| c.copy("a", "taskProxies")
                == projection(&mirror, &last, "a", "taskProxies"))
                .await,
            "a churner ends up holding its newest subscription"
        );
        assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_past_the_rate_get_rate_limited_and_persistent_abuse_is_closed() {
    let (a, a_cfg) = suite("a");
    let mut mirror = Document::new();
    publish(&a, &mut mirror, "taskProxies", tasks(10));
    let mut config = relay_config(vec![a_cfg]);
    config.limits.client_requests_per_sec = 5;
    config.limits.client_request_burst = 10;
    config.limits.max_rate_limited = 60;
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();

    // 50 at once: the burst is served, the rest refused, and the connection stays.
    let mut c = TestClient::connect(addr).await;
    for _ in 0..50 {
        c.subscribe(READER, None).await;
    }
    c.pump(Duration::from_millis(500)).await;
    let limited = c.errors.iter().filter(|(code, _)| code == "RateLimited").count();
    println!("{} accepted, {limited} rate-limited", c.subscribed.len());
    assert_eq!(c.subscribed.len() + limited, 50);
    assert!((10..=13).contains(&c.subscribed.len()), "{}", c.subscribed.len());
    assert!(!c.closed, "the connection stays");
    assert_eq!(
        c.copy("a", "taskProxies"),
        projection(&mirror, READER, "a", "taskProxies")
    );
    // After a pause a new subscribe is served again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = c.subscribed.len();
    c.subscribe("{ workflows { taskProxies { name } } }", None).await;
    assert!(
        c.pump_until(Duration::from_secs(2), |c| c.subscribed.len() == before + 1)
            .await
    );

    // Persistent abuse: past max_rate_limited refusals in a row, 1008.
    let mut abuser = TestClient::connect(addr).await;
    for _ in 0..200 {
        abuser
            .send_text(r#"{"type":"resync","workflow":"a","topic":"taskProxies"}"#)
            .await;
    }
    abuser.pump_until(Duration::from_secs(3), |c| c.closed).await;
    assert_eq!(abuser.close_code, Some(CloseCode::PolicyViolation.code()));
    assert!(metric(addr, "clonewire_rate_limited_total").await >= 60.0);
    relay.shutdown().await.unwrap();
}
