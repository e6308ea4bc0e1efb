//! C websocket clients in one process, for either side:
//!
//! - cylc-uiserver: `graphql-ws` (`connection_init`, `start`, then `data` messages);
//!   the first `data` message of each workflow is its whole store;
//! - clonewire-relay: `/ws`, one `subscribe`, then `snapshot` and `delta` frames;
//!   the client holds the workflow once it has every workflow's `taskProxies`
//!   snapshot.
//!
//! Both select the same data: the workflow's status, each task proxy's name, state
//! and cycle point, each job's state. Every client notes when it first received
//! each change ([`super::key`]); at the end the process matches those notes with the
//! floor's batches and prints one [`Report`] line. Every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use clonewire_bench::{now_ms, Latency};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::{key, Received, Report};

/// Which server the clients talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Side {
    /// cylc-uiserver's GraphQL subscriptions.
    Uis,
    /// clonewire-relay's `/ws`.
    Relay,
}

/// What the client process is told.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Which server.
    pub side: Side,
    /// Websocket URL (loopback).
    pub url: String,
    /// cylc-uiserver's token.
    pub token: String,
    /// Full Cylc workflow ids (`~user/name`).
    pub workflows: Vec<String>,
    /// Connections.
    pub clients: usize,
    /// Seconds to receive after every client joined (or the join deadline).
    pub secs: f64,
    /// Only join, report the join and stop.
    pub join_only: bool,
}

/// The fields every client selects, as a GraphQL selection on cylc-uiserver.
const UIS_FIELDS: &str = "workflow { id status } taskProxies { id name state cyclePoint } jobs { id state }";

/// cylc-uiserver's subscription for `workflows`.
pub fn uis_query(workflows: &[String]) -> String {
    let ids: Vec<String> = workflows.iter().map(|w| format!("{w:?}")).collect();
    format!(
        "subscription {{ deltas(workflows: [{}], stripNull: true) {{ id shutdown \
         added {{ {UIS_FIELDS} }} updated {{ {UIS_FIELDS} }} pruned {{ taskProxies jobs }} }} }}",
        ids.join(", ")
    )
}

/// The relay's subscription selecting the same data.
pub const RELAY_QUERY: &str =
    "subscription { workflows { workflow { status } taskProxies { name state cyclePoint } jobs { state } } }";

/// One client's notes.
#[derive(Default)]
struct Tally {
    received: Received,
    connected_at: f64,
    join_tasks: usize,
    join_bytes: u64,
    bytes: u64,
    messages: u64,
}

/// Notes the `(id, state)` pairs of a cylc-uiserver `deltas` payload; returns the
/// number of task proxies it carried.
fn note_uis(deltas: &Value, at: f64, received: &mut Received) -> usize {
    let mut tasks = 0;
    for part in ["added", "updated"] {
        for topic in ["taskProxies", "jobs"] {
            let Some(list) = deltas
                .pointer(&format!("/{part}/{topic}"))
                .and_then(Value::as_array)
            else {
                continue;
            };
            if topic == "taskProxies" {
                tasks += list.len();
            }
            for e in list {
                if let (Some(id), Some(state)) = (e["id"].as_str(), e["state"].as_str()) {
                    received.first.entry(key(None, id, state)).or_insert(at);
                }
            }
        }
    }
    tasks
}

/// Notes the pairs of a relay `snapshot` (`value`) or `delta` (`patch`) frame;
/// returns its workflow and topic.
fn note_relay(frame: &Value, at: f64, received: &mut Received) -> (String, String, usize) {
    let wf = frame["workflow"].as_str().unwrap_or_default().to_owned();
    let topic = frame["topic"].as_str().unwrap_or_default().to_owned();
    let body = if frame["type"] == "snapshot" {
        &frame["value"]
    } else {
        &frame["patch"]
    };
    let mut n = 0;
    if topic == "taskProxies" || topic == "jobs" {
        if let Some(entries) = body.as_object() {
            n = entries.len();
            for (id, entry) in entries {
                if let Some(state) = entry.get("state").and_then(Value::as_str) {
                    received.first.entry(key(Some(&wf), id, state)).or_insert(at);
                }
            }
        }
    }
    (wf, topic, n)
}

async fn client(plan: Arc<Plan>, mut stop: watch::Receiver<bool>) -> Tally {
    let mut tally = Tally {
        connected_at: now_ms(),
        ..Tally::default()
    };
    let Ok(mut request) = plan.url.as_str().into_client_request() else {
        return tally;
    };
    if plan.side == Side::Uis {
        let headers = request.headers_mut();
        headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-ws"));
        if let Ok(auth) = HeaderValue::from_str(&format!("token {}", plan.token)) {
            headers.insert("Authorization", auth);
        }
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), false);
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(30), connect).await else {
        return tally;
    };
    let hello: Vec<Value> = match plan.side {
        Side::Uis => vec![
            json!({"type": "connection_init", "payload": {}}),
            json!({"id": "1", "type": "start", "payload": {"query": uis_query(&plan.workflows), "variables": {}}}),
        ],
        Side::Relay => vec![json!({"type": "subscribe", "query": RELAY_QUERY})],
    };
    for m in hello {
        if ws.send(Message::Text(m.to_string().into())).await.is_err() {
            return tally;
        }
    }
    let mut snapshots: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let frame = tokio::select! {
            f = ws.next() => f,
            _ = stop.changed() => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => break,
        };
        let at = now_ms();
        tally.bytes += text.len() as u64;
        tally.messages += 1;
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let joined_now = match plan.side {
            Side::Uis => {
                let Some(deltas) = value.pointer("/payload/data/deltas") else {
                    continue;
                };
                let tasks = note_uis(deltas, at, &mut tally.received);
                // Each workflow's first message is its whole store.
                let wf = deltas["id"].as_str().unwrap_or_default();
                if tally.received.joined_at.is_none() && snapshots.insert(super::workflow_name(wf).to_owned())
                {
                    tally.join_tasks += tasks;
                }
                plan.workflows
                    .iter()
                    .all(|w| snapshots.contains(super::workflow_name(w)))
            }
            Side::Relay => {
                let (wf, topic, n) = note_relay(&value, at, &mut tally.received);
                if value["type"] == "snapshot" && topic == "taskProxies" {
                    tally.join_tasks += n;
                    snapshots.insert(super::workflow_name(&wf).to_owned());
                }
                plan.workflows
                    .iter()
                    .all(|w| snapshots.contains(super::workflow_name(w)))
            }
        };
        if joined_now && tally.received.joined_at.is_none() {
            tally.received.joined_at = Some(at);
            tally.join_bytes = tally.bytes;
            if plan.join_only {
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(300), ws.close(None)).await;
    tally
}

/// Runs the clients; with `floor` (the floor's output file) and `mark` (a file that
/// may hold the Unix ms at which a burst was released) it matches latencies.
pub fn run(plan: Plan, floor: Option<&std::path::Path>, mark: Option<&std::path::Path>) -> Report {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Report {
                error: Some(format!("cannot start the runtime: {e}")),
                ..Report::default()
            }
        }
    };
    let plan = Arc::new(plan);
    let tallies = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks: Vec<_> = (0..plan.clients)
            .map(|_| tokio::spawn(client(plan.clone(), stop_rx.clone())))
            .collect();
        if !plan.join_only {
            println!("{}", json!({"event": "measuring"}));
            tokio::time::sleep(Duration::from_secs_f64(plan.secs)).await;
            let _ = stop_tx.send(true);
        }
        let mut tallies = Vec::new();
        let bound = Duration::from_secs_f64(plan.secs.max(60.0) + 30.0);
        for t in tasks {
            if let Ok(Ok(t)) = tokio::time::timeout(bound, t).await {
                tallies.push(t);
            }
        }
        tallies
    });
    let mut report = Report::default();
    let mut joins = Vec::new();
    let mut join_bytes = 0u64;
    let (mut bytes, mut messages) = (0u64, 0u64);
    for t in &tallies {
        bytes += t.bytes;
        messages += t.messages;
        match t.received.joined_at {
            Some(at) => {
                report.joined += 1;
                joins.push((at - t.connected_at) as f32);
                join_bytes += t.join_bytes;
                if report.join_tasks == 0 {
                    report.join_tasks = t.join_tasks;
                }
            }
            None => report.failed += 1,
        }
    }
    report.failed += plan.clients - tallies.len();
    let n = plan.clients.max(1) as f64;
    report.join_ms = Latency::of(&mut joins);
    report.join_bytes = join_bytes as f64 / report.joined.max(1) as f64;
    report.bytes_per_client = bytes as f64 / n;
    report.messages_per_client = messages as f64 / n;
    if let Some(floor) = floor {
        // Tell the floor the window is over, then read what it wrote.
        let _ = std::fs::write(floor.with_extension("stop"), "");
        let batches = super::read_batches(floor, Duration::from_secs(30));
        let mark = mark
            .and_then(|m| std::fs::read_to_string(m).ok())
            .and_then(|t| t.trim().parse().ok());
        let received: Vec<Received> = tallies.into_iter().map(|t| t.received).collect();
        report.groups = super::analyse(&batches, &received, mark);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_name_the_same_changes_alike() {
        let mut uis = Received::default();
        let deltas = json!({
            "id": "~root/w",
            "added": {"taskProxies": [{"id": "~root/w//1/a", "name": "a", "state": "waiting"}]},
            "updated": {"jobs": [{"id": "~root/w//1/a/01", "state": "running"}, {"id": "~root/w//1/b/01"}]},
        });
        assert_eq!(note_uis(&deltas, 5.0, &mut uis), 1);
        let mut relay = Received::default();
        let snapshot = json!({"type": "snapshot", "workflow": "w", "topic": "taskProxies",
            "value": {"1/a": {"name": "a", "state": "waiting"}}});
        let delta = json!({"type": "delta", "workflow": "w", "topic": "jobs",
            "patch": {"1/a/01": {"state": "running"}, "1/b/01": null}});
        assert_eq!(note_relay(&snapshot, 5.0, &mut relay).2, 1);
        note_relay(&delta, 6.0, &mut relay);
        let mut a: Vec<_> = uis.first.keys().cloned().collect();
        let mut b: Vec<_> = relay.first.keys().cloned().collect();
        a.sort();
        b.sort();
        assert_eq!(a, vec!["w//1/a/01|running", "w//1/a|waiting"]);
        assert_eq!(a, b);
        // The first receipt stays.
        note_relay(&delta, 9.0, &mut relay);
        assert_eq!(relay.first["w//1/a/01|running"], 6.0);
    }

    #[test]
    fn the_uiserver_query_names_its_workflows() {
        let q = uis_query(&["~root/a".into(), "~root/b".into()]);
        assert!(q.starts_with(r#"subscription { deltas(workflows: ["~root/a", "~root/b"], stripNull: true)"#));
        assert!(q.contains(
            "updated { workflow { id status } taskProxies { id name state cyclePoint } jobs { id state } }"
        ));
    }
}
