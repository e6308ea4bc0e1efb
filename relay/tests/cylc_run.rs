//! `--cylc-run`: real Cylc 8 workflows (simulation mode) through the relay, to a
//! websocket client that verifies every hash.

mod common;

use std::time::{Duration, Instant};

use clonewire_core::protocol::client::WorkflowState;
use clonewire_cylc::testing::{entire_workflow, swap_in_a_foreign_client_key, Sandbox, SMALL_FLOW};
use clonewire_cylc::{CylcStore, Kind};
use common::TestClient;

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

/// Receives until no delta has come for `quiet` (failing after a minute).
async fn settle(client: &mut TestClient, quiet: Duration) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut deltas, mut since) = (client.count("delta"), Instant::now());
    while since.elapsed() < quiet {
        assert!(Instant::now() < deadline, "the workflow never settled");
        client.pump(Duration::from_millis(100)).await;
        let now = client.count("delta") + client.count("snapshot");
        if now != deltas {
            (deltas, since) = (now, Instant::now());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_copy_equals_the_schedulers_own_store_after_a_pause() {
    let mut sandbox = Sandbox::new();
    let mut config = common::relay_config(Vec::new());
    config.cylc_run = Some(sandbox.run_dir());
    let relay = clonewire_relay::start(config).await.unwrap();
    let mut client = TestClient::connect(relay.local_addr()).await;
    client.subscribe("{ workflows }", None).await;
    let run = tokio::task::block_in_place(|| sandbox.play("same", SMALL_FLOW));

    // Let it run through a few cycles: tasks are added, run, get jobs and are pruned.
    let busy = client
        .pump_until(Duration::from_secs(60), |c| {
            c.states.get("same") == Some(&WorkflowState::Live)
                && c.copy("same", "jobs").as_object().is_some_and(|j| j.len() >= 4)
        })
        .await;
    assert!(
        busy,
        "states {:?}, jobs {}",
        client.states,
        client.copy("same", "jobs")
    );
    tokio::task::block_in_place(|| sandbox.cylc(&["pause", "same"]));
    // A batch may still be on its way when `cylc pause` returns: compare once quiet.
    settle(&mut client, Duration::from_secs(3)).await;

    let theirs = tokio::task::block_in_place(|| entire_workflow(&run));
    let theirs = CylcStore::from_entire_workflow_bytes(&theirs).expect("the scheduler's store maps");
    assert_eq!(theirs.workflow().status(), "paused");
    for kind in Kind::APPLY_ORDER {
        let ours = client.copy("same", kind.topic());
        assert_eq!(
            ours,
            theirs.topic_value(kind),
            "the client's {} differs",
            kind.topic()
        );
        let replica = client
            .store
            .get("same", kind.topic())
            .expect("the client holds every topic");
        assert!(replica.verified, "{} is not verified", kind.topic());
    }
    assert_eq!(client.copy("same", "workflow")["status"], "paused");
    assert!(client.rejected.is_empty(), "{:?}", client.rejected);
    assert!(client.count("delta") > 0);
    client.close().await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_client_key_is_a_clear_state_within_seconds_never_a_hang() {
    let mut sandbox = Sandbox::new();
    let run = tokio::task::block_in_place(|| sandbox.play("foreign", SMALL_FLOW));
    let original = swap_in_a_foreign_client_key(&run);

    let mut config = common::relay_config(Vec::new());
    config.cylc_run = Some(sandbox.run_dir());
    let relay = clonewire_relay::start(config).await.unwrap();
    let mut client = TestClient::connect(relay.local_addr()).await;
    client.subscribe("{ workflows }", None).await;
    let start = Instant::now();
    // Discovery takes up to a second, the first request's deadline one more.
    let stale = client
        .pump_until(Duration::from_secs(10), |c| {
            c.states.get("foreign") == Some(&WorkflowState::Stale)
        })
        .await;
    assert!(stale, "states {:?}", client.states);
    assert!(start.elapsed() < Duration::from_secs(6), "{:?}", start.elapsed());
    let health = common::http_get(relay.local_addr(), "/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["workflows"]["foreign"]["state"], "stale", "{health}");
    let metrics = common::http_get(relay.local_addr(), "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("suite_problems") && l.contains("refused")),
        "{metrics}"
    );
    // It stays so, keeps serving, and never shows data it could not have.
    client.pump(Duration::from_secs(3)).await;
    assert_eq!(client.states.get("foreign"), Some(&WorkflowState::Stale));
    assert!(client.store.get("foreign", "taskProxies").is_none());
    assert_eq!(client.count("delta"), 0);

    std::fs::write(run.join(".service/client.key_secret"), original).unwrap();
    client.close().await;
    relay.shutdown().await.unwrap();
}
