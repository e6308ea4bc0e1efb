//! `--cylc-run`: real Cylc 8 workflows (simulation mode) through the relay, to a
//! websocket client that verifies every hash.

mod common;
mod cylc;

use std::time::Duration;

use clonewire_core::protocol::client::WorkflowState;
use common::TestClient;
use cylc::{Sandbox, SMALL_FLOW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_started_later_appears_live_then_stops_and_is_removed() {
    let mut sandbox = Sandbox::new();
    let mut config = common::relay_config(Vec::new());
    config.cylc_run = Some(sandbox.run_dir());
    config.cylc_linger_secs = 2;
    let relay = clonewire_relay::start(config).await.unwrap();
    let mut client = TestClient::connect(relay.local_addr()).await;
    client
        .subscribe("{ workflows { taskProxies { state cyclePoint } } }", None)
        .await;

    let run = tokio::task::block_in_place(|| sandbox.play("demo/run1", SMALL_FLOW));
    assert!(run.ends_with("demo/run1"));
    let live = client
        .pump_until(Duration::from_secs(30), |c| {
            c.states.get("demo/run1") == Some(&WorkflowState::Live)
                && c.copy("demo/run1", "taskProxies").get("1/foo").is_some()
        })
        .await;
    assert!(
        live,
        "states {:?}, copy {}",
        client.states,
        client.copy("demo/run1", "taskProxies")
    );
    let foo = client.copy("demo/run1", "taskProxies")["1/foo"].clone();
    assert_eq!(foo["cyclePoint"], "1", "{foo}");
    assert!(foo["state"].is_string(), "{foo}");
    // Deltas keep coming and every one verifies.
    client.pump(Duration::from_secs(3)).await;
    assert!(client.rejected.is_empty(), "{:?}", client.rejected);
    assert!(client.count("delta") > 0);

    tokio::task::block_in_place(|| sandbox.stop("demo/run1"));
    let stopped = client
        .pump_until(Duration::from_secs(20), |c| {
            c.states.get("demo/run1") == Some(&WorkflowState::Stopped)
        })
        .await;
    assert!(stopped, "{:?}", client.states);
    let removed = client
        .pump_until(Duration::from_secs(15), |c| {
            c.states.get("demo/run1") == Some(&WorkflowState::Removed)
        })
        .await;
    assert!(removed, "{:?}", client.states);
    assert!(!common::http_get(relay.local_addr(), "/healthz")
        .await
        .contains("demo/run1"));
    client.close().await;
    relay.shutdown().await.unwrap();
}
