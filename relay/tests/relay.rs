//! The relay end to end: suites on loopback, the relay on port 0, websocket clients
//! that check every message (prev chain and projection hash) like the browser does.

mod common;

use std::time::Duration;

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::Document;
use common::*;
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn tasks(cycle: u32, n: u32) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(
            format!("{cycle}/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting", "cyclePoint": cycle.to_string(),
                   "jobs": {"01": {"state": "submitted", "host": "h"}}}),
        );
    }
    serde_json::Value::Object(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_holds_the_projection_of_its_suites() {
    let (a, a_cfg) = suite("a");
    let (b, b_cfg) = suite("b");
    let (mut ma, mut mb) = (Document::new(), Document::new());
    publish(&a, &mut ma, "workflow", json!({"name": "a", "status": "running"}));
    publish(&a, &mut ma, "taskProxies", tasks(1, 20));
    publish(&b, &mut mb, "taskProxies", tasks(1, 10));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg, b_cfg]))
        .await
        .unwrap();
    let addr = relay.local_addr();
    let queries = [
        "{ workflows { taskProxies { status } } }",
        r#"{ workflows(ids: ["a"]) { taskProxies workflow } }"#,
        "subscription { workflows { workflow { name } edges } }",
    ];
    let mut clients = Vec::new();
    for q in queries {
        let mut c = TestClient::connect(addr).await;
        c.subscribe(q, None).await;
        clients.push(c);
    }
    for c in &mut clients {
        assert!(
            c.pump_until(SECS(5), |c| c.subscribed.len() == 1).await,
            "subscribed"
        );
    }
    // A stream of changes on both suites while clients are connected.
    for i in 0..150u32 {
        let status = ["preparing", "submitted", "running", "succeeded", "failed"][(i % 5) as usize];
        publish(
            &a,
            &mut ma,
            "taskProxies",
            json!({ format!("1/t{}", i % 20): {"status": status} }),
        );
        publish(
            &b,
            &mut mb,
            "taskProxies",
            json!({ format!("1/t{}", i % 10): {"status": status, "name": format!("n{i}")} }),
        );
        if i % 30 == 0 {
            publish(
                &a,
                &mut ma,
                "edges",
                json!({ format!("e{i}"): {"source": "1/t0", "target": format!("1/t{}", i % 20)} }),
            );
            publish(
                &a,
                &mut ma,
                "taskProxies",
                json!({ format!("2/t{i}"): {"name": "new", "status": "waiting"}, "1/t19": null }),
            );
        }
        if i % 10 == 0 {
            for c in &mut clients {
                c.pump(Duration::from_millis(5)).await;
            }
        }
    }
    for (c, q) in clients.iter_mut().zip(queries) {
        let ok = c
            .pump_until(SECS(10), |c| {
                ["workflow", "taskProxies", "edges"].iter().all(|t| {
                    c.copy("a", t) == projection(&ma, q, "a", t)
                        && c.copy("b", t) == projection(&mb, q, "b", t)
                })
            })
            .await;
        assert!(
            ok,
            "client {q} did not converge: a/taskProxies {} vs {}",
            c.copy("a", "taskProxies"),
            projection(&ma, q, "a", "taskProxies")
        );
        assert!(c.rejected.is_empty(), "every message verifies: {:?}", c.rejected);
        assert_eq!(c.states.get("a"), Some(&WorkflowState::Live), "{q}");
    }
    assert_eq!(
        clients[1].states.get("b"),
        None,
        "a client that asked only for a hears nothing of b"
    );
    assert_eq!(clients[1].copy("b", "taskProxies"), json!({}));
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_no_client_wants_is_not_received_at_all() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let addr = relay.local_addr();
    let mut c = TestClient::connect(addr).await;
    c.subscribe("{ workflows { taskProxies { status } } }", None)
        .await;
    assert!(
        c.pump_until(SECS(5), |c| c.states.get("a") == Some(&WorkflowState::Live))
            .await
    );
    c.pump(Duration::from_millis(300)).await; // let the upstream subscription settle
    for i in 0..40 {
        publish(
            &a,
            &mut m,
            "taskProxies",
            json!({ format!("1/t{}", i % 5): {"status": format!("s{i}")} }),
        );
        publish(
            &a,
            &mut m,
            "edges",
            json!({ format!("e{i}"): {"source": "x", "target": "y"} }),
        );
    }
    let q = "{ workflows { taskProxies { status } } }";
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    let deltas_in = metric(addr, "clonewire_deltas_in_total").await;
    assert!(
        deltas_in <= 40.0,
        "only taskProxies deltas reach the relay, got {deltas_in}"
    );
    assert!(
        deltas_in >= 30.0,
        "taskProxies deltas do reach it, got {deltas_in}"
    );
    // When the last client leaves, the topic is dropped after the linger.
    c.close().await;
    let mut dropped = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if http_get(addr, "/healthz").await.contains("\"topics\":0") {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "{}", http_get(addr, "/healthz").await);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_change_sends_only_what_is_new() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", tasks(1, 200));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let mut c = TestClient::connect(relay.local_addr()).await;
    let narrow = "{ workflows { taskProxies { name cyclePoint jobs } } }";
    let wide = "{ workflows { taskProxies { name cyclePoint jobs status } } }";
    c.subscribe(narrow, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, narrow, "a", "taskProxies"))
            .await
    );
    let first: usize = c
        .received
        .iter()
        .filter(|(k, _)| k == "snapshot")
        .map(|(_, n)| n)
        .sum();
    let before = c.received.len();
    c.subscribe(wide, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, wide, "a", "taskProxies"))
            .await
    );
    let after = &c.received[before..];
    assert!(
        after.iter().all(|(k, _)| k != "snapshot"),
        "no snapshot on a change: {after:?}"
    );
    let added: usize = after.iter().filter(|(k, _)| k == "delta").map(|(_, n)| n).sum();
    assert!(
        added * 2 < first,
        "the change ({added} B) is much smaller than a snapshot ({first} B)"
    );
    // Shrinking back removes the status leaves and nothing else.
    c.subscribe(narrow, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, narrow, "a", "taskProxies"))
            .await
    );
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_and_garbage_get_errors_and_keep_the_connection() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "workflow", json!({"name": "a"}));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let mut c = TestClient::connect(relay.local_addr()).await;
    assert!(c.pump_until(SECS(5), |_| true).await);
    c.subscribe("{ workflows { workflow { name } } }", None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "workflow") == json!({"name": "a"}))
            .await
    );
    c.subscribe("{ workflows { workflow { name }", None).await;
    c.send_text("not json").await;
    c.send_text(r#"{"type": "dance"}"#).await;
    c.subscribe("{ tasks { name } }", None).await;
    c.subscribe(r#"{ workflows { workflow(ids: ["x"]) { name } } }"#, None)
        .await;
    assert!(
        c.pump_until(SECS(5), |c| c.errors.len() == 5).await,
        "{:?}",
        c.errors
    );
    assert_eq!(
        c.errors.iter().filter(|(code, _)| code == "BadQuery").count(),
        3,
        "{:?}",
        c.errors
    );
    assert!(
        c.errors[0].1.contains("line"),
        "syntax errors say where: {}",
        c.errors[0].1
    );
    // The earlier subscription still holds.
    publish(&a, &mut m, "workflow", json!({"name": "renamed"}));
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "workflow") == json!({"name": "renamed"}))
            .await
    );
    assert!(!c.closed);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_restart_is_followed_into_the_new_epoch() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", tasks(1, 5));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let q = "{ workflows { taskProxies { status name } } }";
    let mut c = TestClient::connect(relay.local_addr()).await;
    c.subscribe(q, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    let old_epoch = c.store.get("a", "taskProxies").unwrap().epoch.clone();
    let epoch = a.restart();
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", tasks(2, 3));
    let ok = c
        .pump_until(SECS(10), |c| {
            c.store.get("a", "taskProxies").is_some_and(|r| r.epoch == epoch)
                && c.copy("a", "taskProxies") == projection(&m, q, "a", "taskProxies")
        })
        .await;
    assert!(ok, "old {old_epoch}, new {epoch}: {}", c.copy("a", "taskProxies"));
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_deltas_are_repaired_and_clients_never_see_wrong_data() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", tasks(1, 10));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let addr = relay.local_addr();
    let q = "{ workflows { taskProxies { status } } }";
    let mut c = TestClient::connect(addr).await;
    c.subscribe(q, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    for i in 0..100u32 {
        let patch = json!({ format!("1/t{}", i % 10): {"status": format!("s{i}")} });
        if i % 7 == 3 {
            m.apply("taskProxies", &patch).unwrap();
            a.publish_unsent("taskProxies", patch).unwrap();
        } else {
            publish(&a, &mut m, "taskProxies", patch);
        }
    }
    assert!(
        c.pump_until(SECS(10), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert!(metric(addr, "clonewire_repairs_total{kind=\"replay\"}").await >= 1.0);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_across_a_relay_restart() {
    let (a, a_cfg) = suite("a");
    let mut m = Document::new();
    publish(&a, &mut m, "taskProxies", tasks(1, 50));
    let config = relay_config(vec![a_cfg]);
    let relay = clonewire_relay::start(config.clone()).await.unwrap();
    let addr = relay.local_addr();
    let q = "{ workflows { taskProxies { status name } } }";
    let mut c = TestClient::connect(addr).await;
    c.subscribe(q, None).await;
    assert!(
        c.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    relay.shutdown().await.unwrap();
    c.pump(Duration::from_millis(300)).await;
    assert!(c.closed, "the relay closes its clients on shutdown");
    // The same port, a fresh relay with no history: the client resumes.
    let relay = clonewire_relay::start(clonewire_relay::Config {
        listen: addr,
        ..config
    })
    .await
    .unwrap();
    let mut back = TestClient::connect(addr).await;
    back.store = c.store.clone();
    back.subscribe(q, Some(c.store.resume_points())).await;
    assert!(
        back.pump_until(SECS(5), |c| !c.subscribed.is_empty()
            && c.states.contains_key("a"))
            .await
    );
    back.pump(Duration::from_millis(500)).await;
    assert_eq!(
        back.count("snapshot"),
        0,
        "nothing changed, so nothing is re-sent: {:?}",
        back.received
    );
    publish(&a, &mut m, "taskProxies", json!({"1/t3": {"status": "running"}}));
    assert!(
        back.pump_until(SECS(5), |c| c.copy("a", "taskProxies")
            == projection(&m, q, "a", "taskProxies"))
            .await
    );
    assert!(back.rejected.is_empty(), "{:?}", back.rejected);
    relay.shutdown().await.unwrap();
}
