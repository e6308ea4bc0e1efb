//! Clients that subscribe before the relay has joined a suite: the relay does not
//! know the suite's schema yet, so it cannot check `ids` against it. A query that is
//! valid for the suite must be accepted, not refused as if the suite had no
//! collections, and its data must arrive once the suite is joined. `ids` that turn
//! out to be on a non-collection select nothing.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::Document;
use clonewire_relay::config::SuiteConfig;
use clonewire_suite::{Publisher, PublisherConfig};
use common::*;
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A loopback endpoint on a port that was free a moment ago.
fn free_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    format!("tcp://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_with_ids_made_before_the_suite_is_joined_is_accepted_and_served() {
    // The relay follows a suite that is not running yet: it has no schema for it.
    let (pub_endpoint, rep_endpoint) = (free_endpoint(), free_endpoint());
    let follow = SuiteConfig {
        name: "a".into(),
        pub_endpoint: pub_endpoint.clone(),
        rep_endpoint: rep_endpoint.clone(),
        server_key: None,
    };
    let relay = clonewire_relay::start(relay_config(vec![follow])).await.unwrap();
    let query = r#"{ workflows(ids: ["a"]) { taskProxies(ids: ["1/t0", "1/t2"]) { status } edges } }"#;
    let mut c = TestClient::connect(relay.local_addr()).await;
    c.subscribe(query, None).await;
    let answered = c
        .pump_until(SECS(5), |c| !c.subscribed.is_empty() || !c.errors.is_empty())
        .await;
    assert!(answered, "the relay answered the subscription");
    assert!(
        c.errors.is_empty(),
        "a query that is valid for the suite is not refused: {:?}",
        c.errors
    );
    // Unchecked too: `ids` on `workflow`, which the suite will say is no collection.
    let odd = r#"{ workflows { workflow(ids: ["x"]) { name } edges } }"#;
    let mut d = TestClient::connect(relay.local_addr()).await;
    d.subscribe(odd, None).await;
    assert!(
        d.pump_until(SECS(5), |d| !d.subscribed.is_empty() || !d.errors.is_empty())
            .await
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // Told about the workflow, but not an empty schema it would check `ids` against.
    assert!(
        c.pump_until(SECS(5), |c| !c.schema_history.is_empty()).await,
        "the relay tells the client about the workflow before it is joined"
    );
    assert_eq!(
        c.schema_history[0],
        ("a".to_owned(), None),
        "before the join the relay does not know the schema and says none"
    );

    // The suite starts; once joined, the client gets what its query selects.
    let mut config = PublisherConfig::new("a");
    config.schema = schema();
    config.heartbeat_ms = 100;
    config.pub_endpoint = pub_endpoint;
    config.rep_endpoint = rep_endpoint;
    let publisher = Publisher::start(config).expect("publisher starts");
    let mut mirror = Document::new();
    let mut tasks = serde_json::Map::new();
    for i in 0..4 {
        tasks.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting"}),
        );
    }
    publish(&publisher, &mut mirror, "taskProxies", tasks.into());
    publish(
        &publisher,
        &mut mirror,
        "edges",
        json!({"e1": {"source": "1/t0", "target": "1/t1"}}),
    );
    publish(
        &publisher,
        &mut mirror,
        "workflow",
        json!({"name": "a", "status": "running"}),
    );
    assert!(
        c.pump_until(SECS(10), |c| c.states.get("a") == Some(&WorkflowState::Live))
            .await,
        "the relay joins the suite"
    );
    publish(
        &publisher,
        &mut mirror,
        "taskProxies",
        json!({"1/t2": {"status": "running"}}),
    );
    let converged = c
        .pump_until(SECS(10), |c| {
            ["taskProxies", "edges"]
                .iter()
                .all(|t| c.copy("a", t) == projection(&mirror, query, "a", t))
        })
        .await;
    assert!(
        converged,
        "the client holds its projection: taskProxies {} (want {})",
        c.copy("a", "taskProxies"),
        projection(&mirror, query, "a", "taskProxies")
    );
    assert_eq!(
        c.copy("a", "taskProxies"),
        json!({"1/t0": {"status": "waiting"}, "1/t2": {"status": "running"}})
    );
    assert!(c.rejected.is_empty(), "every message verifies: {:?}", c.rejected);
    // A client reads data through the schema (which fields are collections): the
    // schema comes before the first data.
    let mut told = 0;
    let mut schema_before_data = None;
    for (kind, _) in &c.received {
        match kind.as_str() {
            "workflow" => told += 1,
            "snapshot" | "delta" => {
                schema_before_data = Some(c.schema_history[..told].iter().any(|(_, s)| s.is_some()));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(
        schema_before_data,
        Some(true),
        "the schema is told before the first data: {:?}",
        c.received
    );
    assert_eq!(
        c.schema_history.last().and_then(|(_, s)| s.clone()),
        Some(schema()),
        "once joined, the workflow message carries the suite's schema"
    );
    assert!(
        d.pump_until(SECS(10), |d| d.copy("a", "edges")
            == projection(&mirror, odd, "a", "edges"))
            .await
    );
    assert_eq!(
        d.copy("a", "workflow"),
        json!({}),
        "`ids` on a non-collection select nothing"
    );
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    relay.shutdown().await.unwrap();
}
