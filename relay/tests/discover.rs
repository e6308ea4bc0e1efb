//! `--discover DIR`: suites that announce themselves with contact files are followed
//! when they start, shown stopped then removed when they stop, and stale or broken
//! files are reported without being followed forever.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::Document;
use clonewire_relay::Running;
use clonewire_suite::contact::SuiteContact;
use clonewire_suite::{Publisher, PublisherConfig};
use clonewire_zmq::sockets::CurveKeyPair;
use common::{publish, TestClient};
use serde_json::{json, Value};

const QUERY: &str = "{ workflows { taskProxies { status } } }";

/// A fresh folder for contact files.
fn contact_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clonewire-discover-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A relay watching `dir`, with a short linger.
async fn relay(dir: &Path) -> Running {
    let mut config = common::relay_config(Vec::new());
    config.discover = vec![dir.to_owned()];
    config.discover_linger_secs = 2;
    clonewire_relay::start(config).await.unwrap()
}

/// A suite on free loopback ports announcing itself in `dir`.
fn suite(name: &str, dir: &Path, curve: Option<&CurveKeyPair>) -> Publisher {
    let mut config = PublisherConfig::new(name);
    config.schema = common::schema();
    config.heartbeat_ms = 100;
    config.contact_dir = Some(dir.to_owned());
    config.curve_secret_key = curve.map(|k| k.secret.clone());
    Publisher::start(config).expect("publisher starts")
}

/// `/healthz`'s entry for `workflow` (null when it is not listed).
async fn health(addr: SocketAddr, workflow: &str) -> Value {
    let text = common::http_get(addr, "/healthz").await;
    let health: Value = serde_json::from_str(&text).unwrap();
    health["workflows"][workflow].clone()
}

/// Polls until `done` holds or `limit` passes.
async fn eventually<F: std::future::Future<Output = bool>>(
    limit: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done().await
}

async fn contact_files(addr: SocketAddr, kind: &str) -> f64 {
    common::metric(addr, &format!("clonewire_contact_files{{kind=\"{kind}\"}}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_started_later_is_followed_then_stopped_and_removed() {
    let dir = contact_dir("later");
    let relay = relay(&dir).await;
    let mut client = TestClient::connect(relay.local_addr()).await;
    client.subscribe(QUERY, None).await;
    client.pump(Duration::from_millis(300)).await;

    // A CURVE suite: its public key travels in the contact file.
    let keys = CurveKeyPair::generate().unwrap();
    let publisher = tokio::task::block_in_place(|| suite("late", &dir, Some(&keys)));
    let file = publisher.contact_file().expect("announced").to_owned();
    let contact = SuiteContact::load(&file).unwrap();
    assert_eq!(contact.curve_public_key.as_deref(), Some(keys.public.0.as_str()));
    assert_eq!(contact.pid, std::process::id());
    let mut mirror = Document::new();
    let live = client
        .pump_until(Duration::from_secs(15), |c| {
            c.states.get("late") == Some(&WorkflowState::Live)
        })
        .await;
    assert!(live, "states {:?}", client.states);
    publish(
        &publisher,
        &mut mirror,
        "taskProxies",
        json!({"1/a": {"status": "running"}}),
    );
    let copied = client
        .pump_until(Duration::from_secs(10), |c| {
            c.copy("late", "taskProxies") == json!({"1/a": {"status": "running"}})
        })
        .await;
    assert!(copied, "{}", client.copy("late", "taskProxies"));
    assert!(client.rejected.is_empty(), "{:?}", client.rejected);
    assert_eq!(contact_files(relay.local_addr(), "followed").await, 1.0);

    tokio::task::block_in_place(|| publisher.shutdown());
    assert!(!file.exists(), "an orderly shutdown removes the contact file");
    let stopped = client
        .pump_until(Duration::from_secs(10), |c| {
            c.states.get("late") == Some(&WorkflowState::Stopped)
        })
        .await;
    assert!(stopped, "{:?}", client.states);
    let removed = client
        .pump_until(Duration::from_secs(15), |c| {
            c.states.get("late") == Some(&WorkflowState::Removed)
        })
        .await;
    assert!(removed, "{:?}", client.states);
    assert!(health(relay.local_addr(), "late").await.is_null());
    assert_eq!(contact_files(relay.local_addr(), "followed").await, 0.0);

    // The same suite started again is followed again.
    let again = tokio::task::block_in_place(|| suite("late", &dir, Some(&keys)));
    let back = client
        .pump_until(Duration::from_secs(15), |c| {
            c.states.get("late") == Some(&WorkflowState::Live)
        })
        .await;
    assert!(back, "{:?}", client.states);
    tokio::task::block_in_place(|| again.shutdown());
    client.close().await;
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A pid no process has (a child that has finished and been reaped).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A loopback endpoint nothing listens on.
fn unused_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("tcp://{}", listener.local_addr().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_contact_file_is_reported_and_not_followed_forever() {
    let dir = contact_dir("stale");
    let stale = SuiteContact {
        pid: dead_pid(),
        ..SuiteContact::for_this_process("ghost", &unused_endpoint(), &unused_endpoint(), None)
    };
    std::fs::write(dir.join("ghost.json"), serde_json::to_string(&stale).unwrap()).unwrap();
    let relay = relay(&dir).await;
    let addr = relay.local_addr();

    // Nothing answers (stale within three missed heartbeats), and its process is gone.
    let reported = eventually(Duration::from_secs(20), || async {
        contact_files(addr, "stale").await == 1.0
    })
    .await;
    assert!(reported, "{}", common::http_get(addr, "/metrics").await);
    assert_eq!(health(addr, "ghost").await["state"], "stale");
    let dropped = eventually(Duration::from_secs(10), || async {
        health(addr, "ghost").await.is_null()
    })
    .await;
    assert!(dropped, "{}", health(addr, "ghost").await);
    // Not followed again while the file stays as it is.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(health(addr, "ghost").await.is_null());
    assert_eq!(contact_files(addr, "stale").await, 1.0);
    assert_eq!(contact_files(addr, "followed").await, 0.0);

    std::fs::remove_file(dir.join("ghost.json")).unwrap();
    let cleared = eventually(Duration::from_secs(5), || async {
        contact_files(addr, "stale").await == 0.0
    })
    .await;
    assert!(cleared);
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_contact_files_are_reported_and_change_nothing() {
    let dir = contact_dir("bad");
    let relay = relay(&dir).await;
    let addr = relay.local_addr();
    let mut client = TestClient::connect(addr).await;
    client.subscribe(QUERY, None).await;
    let publisher = tokio::task::block_in_place(|| suite("good", &dir, None));
    let live = client
        .pump_until(Duration::from_secs(15), |c| {
            c.states.get("good") == Some(&WorkflowState::Live)
        })
        .await;
    assert!(live, "{:?}", client.states);

    // The suite's own file garbled, and a new file that is no contact file.
    let file = publisher.contact_file().unwrap().to_owned();
    std::fs::write(&file, "{\"version\": 1, \"name\": ").unwrap();
    let mut junk = serde_json::to_value(SuiteContact::for_this_process(
        "junk",
        "tcp://h:1",
        "tcp://h:2",
        None,
    ))
    .unwrap();
    junk["pub"] = json!("http://h:1");
    std::fs::write(dir.join("junk.json"), junk.to_string()).unwrap();
    let reported = eventually(Duration::from_secs(10), || async {
        contact_files(addr, "unreadable").await == 2.0
    })
    .await;
    assert!(reported, "{}", common::http_get(addr, "/metrics").await);

    // The followed suite stays followed and live; nothing new is followed.
    let mut mirror = Document::new();
    publish(
        &publisher,
        &mut mirror,
        "taskProxies",
        json!({"1/b": {"status": "waiting"}}),
    );
    let copied = client
        .pump_until(Duration::from_secs(10), |c| {
            c.copy("good", "taskProxies") == json!({"1/b": {"status": "waiting"}})
        })
        .await;
    assert!(copied, "{}", client.copy("good", "taskProxies"));
    assert_eq!(client.states.get("good"), Some(&WorkflowState::Live));
    assert_eq!(health(addr, "good").await["state"], "live");
    assert!(health(addr, "junk").await.is_null());
    assert_eq!(contact_files(addr, "followed").await, 1.0);

    tokio::task::block_in_place(|| publisher.shutdown());
    client.close().await;
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_relay_explains_discover_and_refuses_a_missing_folder() {
    let relay = env!("CARGO_BIN_EXE_clonewire-relay");
    let help = std::process::Command::new(relay).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--discover <DIR>"), "{text}");
    assert!(text.contains("docs/discovery.md"), "{text}");
    let out = std::process::Command::new(relay)
        .args(["--listen", "127.0.0.1:0", "--discover", "/nonexistent/suites"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("discover /nonexistent/suites: not a folder"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cylc_contact_file_is_dropped_the_same_way() {
    // A Cylc run directory whose scheduler died without removing its contact file.
    let root = contact_dir("cylc");
    let run = root.join("dead/run1");
    std::fs::create_dir_all(run.join(".service")).unwrap();
    std::fs::write(run.join("flow.cylc"), "").unwrap();
    let port = |e: String| e.rsplit(':').next().unwrap().to_owned();
    let contact = format!(
        "CYLC_WORKFLOW_HOST=localhost\nCYLC_WORKFLOW_PORT={}\nCYLC_WORKFLOW_PUBLISH_PORT={}\n\
         CYLC_WORKFLOW_UUID=0f0f\nCYLC_WORKFLOW_PID={}\n",
        port(unused_endpoint()),
        port(unused_endpoint()),
        dead_pid()
    );
    std::fs::write(run.join(".service/contact"), contact).unwrap();
    let mut config = common::relay_config(Vec::new());
    config.cylc_run = Some(root.clone());
    config.cylc_linger_secs = 2;
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let reported = eventually(Duration::from_secs(20), || async {
        contact_files(addr, "stale").await == 1.0
    })
    .await;
    assert!(reported, "{}", common::http_get(addr, "/metrics").await);
    let dropped = eventually(Duration::from_secs(10), || async {
        health(addr, "dead/run1").await.is_null()
    })
    .await;
    assert!(dropped, "{}", health(addr, "dead/run1").await);
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_already_followed_is_not_followed_twice() {
    let dir = contact_dir("clash");
    let (configured, follow) = common::suite("dup");
    let mut config = common::relay_config(vec![follow]);
    config.discover = vec![dir.clone()];
    let relay = clonewire_relay::start(config).await.unwrap();
    let addr = relay.local_addr();
    let announced = tokio::task::block_in_place(|| suite("dup", &dir, None));
    let mut client = TestClient::connect(addr).await;
    client.subscribe(QUERY, None).await;
    let (mut a, mut b) = (Document::new(), Document::new());
    publish(
        &configured,
        &mut a,
        "taskProxies",
        json!({"1/x": {"status": "configured"}}),
    );
    publish(
        &announced,
        &mut b,
        "taskProxies",
        json!({"1/x": {"status": "announced"}}),
    );
    let copied = client
        .pump_until(Duration::from_secs(10), |c| {
            c.copy("dup", "taskProxies") == json!({"1/x": {"status": "configured"}})
        })
        .await;
    assert!(copied, "{}", client.copy("dup", "taskProxies"));
    // Several looks later, the configured suite is still the one followed.
    client.pump(Duration::from_secs(3)).await;
    assert_eq!(
        client.copy("dup", "taskProxies"),
        json!({"1/x": {"status": "configured"}})
    );
    assert_eq!(contact_files(addr, "followed").await, 0.0);
    tokio::task::block_in_place(|| announced.shutdown());
    client.close().await;
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
