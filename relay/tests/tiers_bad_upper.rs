//! A relay following an upper relay that misbehaves (a scripted fake): a delta whose
//! hash does not check, a delta that does not chain, a frame that is not JSON and a
//! binary frame that does not inflate. The lower relay never passes unverified data on,
//! asks for a fresh snapshot (`resync`), reconnects after the bad binary frame and
//! resumes from what it holds.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clonewire_core::protocol::client::{ClientMessage, RelayMessage, WorkflowState};
use clonewire_core::{Seq, Topic};
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn snapshot(value: &Value, seq: u64) -> String {
    let hash = Topic::from_value("taskProxies", value).unwrap().hash();
    RelayMessage::Snapshot {
        workflow: "w".into(),
        topic: "taskProxies".into(),
        epoch: "e1".into(),
        seq: Seq::new(seq),
        hash,
        value: value.clone(),
    }
    .to_text()
}

fn delta(prev: u64, seq: u64, after: &Value, patch: Value, good_hash: bool) -> String {
    let hash = if good_hash {
        Topic::from_value("taskProxies", after).unwrap().hash()
    } else {
        clonewire_core::Hash::EMPTY
    };
    RelayMessage::Delta {
        workflow: "w".into(),
        topic: "taskProxies".into(),
        epoch: "e1".into(),
        seq: Seq::new(seq),
        prev: Some(Seq::new(prev)),
        hash,
        time: None,
        patch,
    }
    .to_text()
}

/// What the fake upper relay heard on each websocket connection.
#[derive(Debug)]
enum Heard {
    Connected(usize),
    Message(usize, ClientMessage),
}

/// Serves `/healthz` (listing `w`) and `/ws`: on each websocket, `script` frames after
/// the first `subscribe`; reports what it hears.
async fn fake_upper(
    listener: TcpListener,
    listed: Listed,
    scripts: Vec<Vec<Message>>,
    heard: mpsc::UnboundedSender<Heard>,
) {
    let mut scripts = scripts.into_iter();
    let mut connection = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = [0u8; 16];
        let n = stream.peek(&mut head).await.unwrap_or(0);
        if head[..n].starts_with(b"GET /healthz") {
            tokio::spawn(healthz(stream, listed.clone()));
            continue;
        }
        connection += 1;
        let script = scripts.next().unwrap_or_default();
        let heard = heard.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let _ = heard.send(Heard::Connected(connection));
            let hello = RelayMessage::Hello {
                protocol: "clonewire/1".into(),
                relay: "fake/0".into(),
            };
            let _ = ws.send(Message::text(hello.to_text())).await;
            let mut script = Some(script);
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(text) = frame else { continue };
                let Ok(message) = ClientMessage::decode(text.as_str()) else {
                    continue;
                };
                let first = matches!(message, ClientMessage::Subscribe { .. });
                let _ = heard.send(Heard::Message(connection, message));
                if let (true, Some(script)) = (first, script.take()) {
                    for frame in script {
                        if ws.send(frame).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
}

/// The workflows the fake upper relay lists on `/healthz`.
type Listed = Arc<Mutex<Vec<&'static str>>>;

async fn healthz(mut stream: TcpStream, listed: Listed) {
    let mut buf = [0u8; 1024];
    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
    let workflows: serde_json::Map<String, Value> = listed
        .lock()
        .unwrap()
        .iter()
        .map(|w| ((*w).to_owned(), json!({"state": "live"})))
        .collect();
    let body = json!({"status": "ok", "workflows": workflows}).to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_upper_relay_changes_nothing_clients_see_and_is_resynced_and_reconnected() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upper = listener.local_addr().unwrap();
    let schema = json!({"collections": [["taskProxies"]]});
    let workflow = Message::text(
        json!({"type": "workflow", "workflow": "w", "state": "live", "schema": schema}).to_string(),
    );
    let v1 = json!({"1/a": {"state": "waiting"}});
    let v2 = json!({"1/a": {"state": "running"}});
    let v3 = json!({"1/a": {"state": "succeeded"}});
    let first = vec![
        workflow.clone(),
        Message::text(snapshot(&v1, 10)),
        // The right patch under a wrong hash: undone, resynced.
        Message::text(delta(10, 11, &v2, json!({"1/a": {"state": "running"}}), false)),
        // Does not chain (the copy waits for its snapshot anyway).
        Message::text(delta(7, 12, &v3, json!({"1/a": {"state": "succeeded"}}), true)),
        Message::text("{not json"),
        Message::text(snapshot(&v2, 12)),
        // A binary frame that does not inflate: the connection is dropped.
        Message::binary(vec![0xffu8; 64]),
    ];
    let second = vec![
        workflow,
        Message::text(delta(12, 13, &v3, json!({"1/a": {"state": "succeeded"}}), true)),
    ];
    let (tx, mut heard) = mpsc::unbounded_channel();
    let listed: Listed = Arc::new(Mutex::new(vec!["w"]));
    tokio::spawn(fake_upper(listener, listed, vec![first, second], tx));

    let mut config = relay_config(Vec::new());
    config.follow_relays = vec![format!("ws://{upper}/ws")];
    let lower = clonewire_relay::start(config).await.unwrap();
    let end = std::time::Instant::now() + SECS(10);
    while lower.status("w").is_none() {
        assert!(std::time::Instant::now() < end, "w is never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = TestClient::connect(lower.local_addr()).await;
    let q = r#"{ workflows(ids: ["w"]) { taskProxies } }"#;
    client.subscribe(q, None).await;
    assert!(
        client
            .pump_until(SECS(15), |c| c.copy("w", "taskProxies") == v3)
            .await,
        "the client ends with the last verified state: {}",
        client.copy("w", "taskProxies")
    );
    assert!(
        client.rejected.is_empty(),
        "nothing unverified reached the client: {:?}",
        client.rejected
    );
    assert!(
        client
            .pump_until(SECS(5), |c| c.states.get("w") == Some(&WorkflowState::Live))
            .await,
        "live again after the reconnect: {:?}",
        client.state_history
    );

    let mut log = Vec::new();
    while let Ok(h) = heard.try_recv() {
        log.push(h);
    }
    let resyncs = log
        .iter()
        .filter(|h| matches!(h, Heard::Message(1, ClientMessage::Resync { workflow, topic }) if workflow == "w" && topic == "taskProxies"))
        .count();
    assert!(resyncs >= 1, "the bad delta was answered with a resync: {log:?}");
    assert!(
        log.iter().any(|h| matches!(h, Heard::Connected(2))),
        "reconnected after the bad binary frame: {log:?}"
    );
    let resumed = log.iter().find_map(|h| match h {
        Heard::Message(2, ClientMessage::Subscribe { resume, .. }) => resume.clone(),
        _ => None,
    });
    let point = resumed
        .as_ref()
        .and_then(|r| r.get("w"))
        .and_then(|t| t.get("taskProxies"))
        .unwrap_or_else(|| panic!("the second connection resumes: {log:?}"));
    assert_eq!(point.seq, Seq::new(12), "from the last verified snapshot");
    lower.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_the_upper_relay_lists_come_and_go_at_the_lower_relay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upper = listener.local_addr().unwrap();
    let listed: Listed = Arc::new(Mutex::new(vec!["w"]));
    let live = |w: &str| {
        Message::text(
            json!({"type": "workflow", "workflow": w, "state": "live", "schema": {"collections": []}})
                .to_string(),
        )
    };
    let (tx, _heard) = mpsc::unbounded_channel();
    // The first connection is w's, the second x's.
    tokio::spawn(fake_upper(
        listener,
        listed.clone(),
        vec![vec![live("w")], vec![live("x")]],
        tx,
    ));
    let mut config = relay_config(Vec::new());
    config.follow_relays = vec![format!("ws://{upper}/ws")];
    let lower = clonewire_relay::start(config).await.unwrap();
    let mut client = TestClient::connect(lower.local_addr()).await;
    client.subscribe("{ workflows { taskProxies } }", None).await;
    assert!(
        client
            .pump_until(SECS(10), |c| c.states.get("w") == Some(&WorkflowState::Live))
            .await,
        "w is listed upstream, followed and live: {:?}",
        client.state_history
    );
    *listed.lock().unwrap() = vec!["x"];
    assert!(
        client
            .pump_until(SECS(10), |c| c.states.get("w") == Some(&WorkflowState::Removed)
                && c.states.get("x") == Some(&WorkflowState::Live))
            .await,
        "w is removed and x appears within a scan or two: {:?}",
        client.state_history
    );
    assert!(lower.status("w").is_none());
    lower.shutdown().await.unwrap();
}
