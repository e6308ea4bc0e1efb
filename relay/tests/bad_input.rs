//! Bad input from both sides: browsers that send malformed, truncated, oversized,
//! deeply nested or unknown frames and huge subscriptions, and suites whose PUB
//! frames are garbage. Each is refused with a clear error or dropped and counted;
//! the relay stays up, and clients still hold verified copies of the suite's truth.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use clonewire_core::protocol::client::CloseCode;
use clonewire_core::Document;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECS: fn(u64) -> Duration = Duration::from_secs;
const QUERY: &str = "{ workflows { workflow { name } taskProxies { status } } }";

fn tasks(n: u32, status: &str) -> Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": status}),
        );
    }
    Value::Object(m)
}

/// Waits until `client` holds exactly what `QUERY` selects of `mirror` for workflow `a`.
async fn converges(client: &mut TestClient, mirror: &Document) -> bool {
    client
        .pump_until(SECS(8), |c| {
            ["workflow", "taskProxies"]
                .iter()
                .all(|t| c.copy("a", t) == projection(mirror, QUERY, "a", t))
        })
        .await
}

/// A suite, a relay following it and a client that holds its projection.
async fn setup() -> (
    clonewire_suite::Publisher,
    Document,
    clonewire_relay::Running,
    TestClient,
) {
    let (a, a_cfg) = suite("a");
    let mut mirror = Document::new();
    publish(&a, &mut mirror, "workflow", json!({"name": "a"}));
    publish(&a, &mut mirror, "taskProxies", tasks(10, "waiting"));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let mut client = TestClient::connect(relay.local_addr()).await;
    client.subscribe(QUERY, None).await;
    assert!(converges(&mut client, &mirror).await, "the client joins");
    (a, mirror, relay, client)
}

/// The relay still serves: `/healthz` answers and a new client can subscribe.
async fn relay_is_up(relay: &clonewire_relay::Running, mirror: &Document) {
    let health = http_get(relay.local_addr(), "/healthz").await;
    assert!(!health.is_empty(), "/healthz answers");
    let mut fresh = TestClient::connect(relay.local_addr()).await;
    fresh.subscribe(QUERY, None).await;
    assert!(converges(&mut fresh, mirror).await, "a new client still joins");
    assert!(fresh.rejected.is_empty(), "{:?}", fresh.rejected);
    fresh.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_truncated_nested_and_unknown_frames_get_bad_message_and_the_connection_survives() {
    let (a, mut mirror, relay, mut client) = setup().await;
    let deep_json = format!(
        "{{\"type\":\"subscribe\",\"query\":\"{{ workflows }}\",\"resume\":{}{}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let frames = [
        "",
        "{",
        "not json at all",
        "\u{0}\u{1}\u{2}",
        r#"{"type":"subscribe","query":"{ workflows }""#,
        r#"{"type":"subscribe"}"#,
        r#"{"type":"frobnicate","query":"{ workflows }"}"#,
        r#"{"type":"subscribe","query":"{ workflows }","extra":1}"#,
        r#"{"type":"resync","workflow":"a"}"#,
        r#"{"type":"subscribe","query":7}"#,
        "[1,2,3]",
        "null",
        deep_json.as_str(),
    ];
    for frame in frames {
        client.send_text(frame).await;
    }
    assert!(
        client
            .pump_until(SECS(5), |c| c.errors.len() >= frames.len())
            .await,
        "one error per bad frame, got {:?}",
        client.errors
    );
    assert!(
        client.errors.iter().all(|(code, _)| code == "BadMessage"),
        "{:?}",
        client.errors
    );
    assert!(!client.closed, "the connection survives");
    // The subscription in force before the garbage still streams.
    publish(
        &a,
        &mut mirror,
        "taskProxies",
        json!({"1/t3": {"status": "running"}}),
    );
    assert!(
        converges(&mut client, &mirror).await,
        "still following after garbage"
    );
    assert!(client.rejected.is_empty(), "{:?}", client.rejected);
    assert!(metric(relay.local_addr(), "clonewire_bad_client_messages_total").await >= frames.len() as f64);
    relay_is_up(&relay, &mirror).await;
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_subscriptions_get_bad_query_and_the_previous_one_stays_in_force() {
    let (a, mut mirror, relay, mut client) = setup().await;
    let limits = clonewire_relay::Config::default().limits.query;
    let ids: Vec<String> = (0..=limits.max_ids).map(|i| format!("\"w{i}\"")).collect();
    let fields: Vec<String> = (0..=limits.max_fields).map(|i| format!("f{i}")).collect();
    let queries = [
        // Too long.
        format!("{{ workflows {{ {} }} }}", "x ".repeat(limits.max_query_bytes)),
        // Too deep.
        format!(
            "{{ workflows {}{} }}",
            "{ a ".repeat(limits.max_depth + 1),
            "}".repeat(limits.max_depth + 1)
        ),
        // Far too deep for a recursive parser, within the byte limit.
        format!("{{ workflows {} }}", "{ a ".repeat(15_000)),
        format!("{{ workflows(ids: {}) }}", "[".repeat(30_000)),
        // A comment that ends at a carriage return hides nothing from the depth check.
        format!("# note\r{{ workflows {} }}", "{ a ".repeat(15_000)),
        // Too many fields and too many ids.
        format!("{{ workflows {{ taskProxies {{ {} }} }} }}", fields.join(" ")),
        format!("{{ workflows(ids: [{}]) }}", ids.join(",")),
        // Not a subscription at all.
        "query { workflows }".to_owned(),
        "{ workflows(ids: $x) }".to_owned(),
        "{ tasks }".to_owned(),
    ];
    for q in &queries {
        client.subscribe(q, None).await;
    }
    assert!(
        client
            .pump_until(SECS(10), |c| c.errors.len() >= queries.len())
            .await,
        "one error per query, got {:?}",
        client.errors
    );
    assert!(
        client.errors.iter().all(|(code, _)| code == "BadQuery"),
        "{:?}",
        client.errors
    );
    assert!(!client.closed, "the connection survives");
    assert_eq!(
        client.subscribed.len(),
        1,
        "only the first subscription was accepted"
    );
    publish(
        &a,
        &mut mirror,
        "taskProxies",
        json!({"1/t4": {"status": "failed"}}),
    );
    assert!(
        converges(&mut client, &mirror).await,
        "the old subscription stays in force"
    );
    relay_is_up(&relay, &mirror).await;
    relay.shutdown().await.unwrap();
}

/// Sends one text frame just over the relay's limit on a fresh connection and returns
/// how the relay closed it (`None` inside: closed without a close frame).
async fn close_after_oversized_frame(relay: &clonewire_relay::Running) -> Option<Option<u16>> {
    let limit = clonewire_relay::Config::default().limits.max_client_message_bytes;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.local_addr()))
        .await
        .unwrap();
    let big = format!(
        "{{\"type\":\"subscribe\",\"query\":\"{}\"}}",
        "x".repeat(limit + 1)
    );
    let _ = ws.send(Message::Text(big.into())).await;
    let end = tokio::time::Instant::now() + SECS(5);
    while tokio::time::Instant::now() < end {
        match tokio::time::timeout(SECS(1), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return Some(frame.map(|f| u16::from(f.code))),
            Ok(None) | Ok(Some(Err(_))) => return Some(None),
            _ => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_connection() {
    let (a, mut mirror, relay, mut client) = setup().await;
    let close = close_after_oversized_frame(&relay).await;
    assert!(close.is_some(), "an oversized frame closes the connection");
    // Others are untouched.
    publish(
        &a,
        &mut mirror,
        "taskProxies",
        json!({"1/t5": {"status": "submitted"}}),
    );
    assert!(converges(&mut client, &mirror).await);
    assert!(!client.closed);
    relay_is_up(&relay, &mirror).await;
    relay.shutdown().await.unwrap();
}

/// docs/protocol.md, Decisions › Client link rules: "A frame over the relay's size
/// limit closes the connection with code 1009".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_closed_with_1009() {
    let (_a, _mirror, relay, _client) = setup().await;
    assert_eq!(
        close_after_oversized_frame(&relay).await,
        Some(Some(CloseCode::MessageTooBig.code())),
        "an oversized frame closes the connection with 1009"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_refused_and_a_flood_of_garbage_disconnects() {
    let (_a, mirror, relay, _client) = setup().await;
    let max_bad = clonewire_relay::Config::default().limits.max_bad_client_messages;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.local_addr()))
        .await
        .unwrap();
    // Binary frames are not part of the protocol: an error, not a disconnect.
    ws.send(Message::Binary(vec![0u8, 159, 146, 150].into()))
        .await
        .unwrap();
    let mut saw_bad_message = false;
    while !saw_bad_message {
        match tokio::time::timeout(SECS(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => saw_bad_message = t.contains("bad_message"),
            other => panic!("expected an error for a binary frame, got {other:?}"),
        }
    }
    // Garbage as fast as it can go, bounded: the relay cuts it off with 1008.
    let mut sent = 0u32;
    for i in 0..(max_bad * 20) {
        if ws
            .send(Message::Text(format!("{{garbage {i}").into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(sent >= max_bad, "sent {sent}");
    let mut close = None;
    let end = tokio::time::Instant::now() + SECS(5);
    while close.is_none() && tokio::time::Instant::now() < end {
        match tokio::time::timeout(SECS(1), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => close = Some(frame.map(|f| u16::from(f.code))),
            Ok(None) | Ok(Some(Err(_))) => close = Some(None),
            _ => {}
        }
    }
    assert_eq!(
        close,
        Some(Some(CloseCode::PolicyViolation.code())),
        "a garbage flood is cut off"
    );
    relay_is_up(&relay, &mirror).await;
    relay.shutdown().await.unwrap();
}

/// A ZeroMQ forwarder between a suite's PUB socket and the relay (XSUB/XPUB, so
/// subscriptions pass upstream) that can also inject raw frames.
struct Injector {
    endpoint: String,
    frames: mpsc::Sender<Vec<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Injector {
    fn start(upstream: &str) -> Injector {
        let ctx = zmq::Context::new();
        let xsub = ctx.socket(zmq::XSUB).unwrap();
        xsub.set_linger(0).unwrap();
        xsub.connect(upstream).unwrap();
        let xpub = ctx.socket(zmq::XPUB).unwrap();
        xpub.set_linger(0).unwrap();
        xpub.set_sndhwm(100_000).unwrap();
        xpub.bind("tcp://127.0.0.1:0").unwrap();
        let endpoint = xpub.get_last_endpoint().unwrap().unwrap();
        let (frames, raw) = mpsc::channel::<Vec<Vec<u8>>>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let mut items = [xsub.as_poll_item(zmq::POLLIN), xpub.as_poll_item(zmq::POLLIN)];
                if zmq::poll(&mut items, 5).is_err() {
                    break;
                }
                let (up, down) = (items[0].is_readable(), items[1].is_readable());
                if up {
                    while let Ok(parts) = xsub.recv_multipart(zmq::DONTWAIT) {
                        let _ = xpub.send_multipart(parts, 0);
                    }
                }
                if down {
                    while let Ok(parts) = xpub.recv_multipart(zmq::DONTWAIT) {
                        let _ = xsub.send_multipart(parts, 0);
                    }
                }
                while let Ok(parts) = raw.try_recv() {
                    let _ = xpub.send_multipart(parts, 0);
                }
            }
        });
        Injector {
            endpoint,
            frames,
            stop,
            thread: Some(thread),
        }
    }

    fn inject(&self, parts: Vec<Vec<u8>>) {
        self.frames.send(parts).unwrap();
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_suite_is_logged_and_repaired_never_a_crash() {
    let (a, mut a_cfg) = suite("a");
    let injector = Injector::start(a.pub_endpoint());
    a_cfg.pub_endpoint = injector.endpoint.clone();
    let mut mirror = Document::new();
    publish(&a, &mut mirror, "workflow", json!({"name": "a"}));
    publish(&a, &mut mirror, "taskProxies", tasks(10, "waiting"));
    let relay = clonewire_relay::start(relay_config(vec![a_cfg])).await.unwrap();
    let addr = relay.local_addr();
    let mut client = TestClient::connect(addr).await;
    client.subscribe(QUERY, None).await;
    assert!(
        converges(&mut client, &mirror).await,
        "joins through the forwarder"
    );
    // Let the relay's SUB subscriptions settle upstream.
    client.pump(Duration::from_millis(300)).await;

    let t = |s: &str| s.as_bytes().to_vec();
    let state = a.topic_state("taskProxies");
    let epoch = a.epoch();
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let deep_patch = format!(
        "{{\"epoch\":\"{epoch}\",\"seq\":{},\"hash\":\"0000000000000001\",\"patch\":{}1{}}}",
        state.seq.next(),
        "{\"x\":".repeat(100),
        "}".repeat(100)
    );
    let bad: Vec<Vec<Vec<u8>>> = vec![
        vec![t("taskProxies"), t("{")],
        vec![t("taskProxies"), t("not json")],
        vec![t("taskProxies"), vec![0xff, 0xfe, 0x00]],
        vec![t("taskProxies"), t(&deep)],
        vec![t("taskProxies"), vec![b'"'; 4 << 20]],
        vec![
            t("taskProxies"),
            t(r#"{"epoch":"x","seq":0,"hash":"0000000000000000","patch":{}}"#),
        ],
        vec![
            t("taskProxies"),
            t(r#"{"epoch":"x","seq":1,"hash":"zz","patch":{}}"#),
        ],
        vec![t("taskProxies")],
        vec![t("taskProxies"), t("{}"), t("{}")],
        vec![t("_hb"), t(r#"{"epoch":5}"#)],
        vec![t("_hb"), t(&deep)],
        vec![t("_bye"), t("[]")],
        vec![b"_hb\xff".to_vec(), t("{}")],
        vec![t("_hbx"), t("{}")],
        // Decodes, but lies about the hash at the next seq: a mismatch to repair.
        vec![t("taskProxies"), t(&deep_patch)],
    ];
    let injected = bad.len();
    for parts in bad {
        injector.inject(parts);
    }
    client.pump(Duration::from_millis(500)).await;
    // A real delta replaced on the wire by its truncated body: malformed, then a gap.
    mirror
        .apply("taskProxies", &json!({"1/t1": {"status": "running"}}))
        .unwrap();
    let lost = a
        .publish_unsent("taskProxies", json!({"1/t1": {"status": "running"}}))
        .unwrap()
        .unwrap();
    let truncated = format!("{{\"epoch\":\"{epoch}\",\"seq\":{},\"hash\":\"", lost.seq);
    injector.inject(vec![t("taskProxies"), t(&truncated)]);
    for i in 0..20u32 {
        let status = ["running", "succeeded"][(i % 2) as usize];
        publish(
            &a,
            &mut mirror,
            "taskProxies",
            json!({ format!("1/t{}", i % 10): {"status": status} }),
        );
    }
    assert!(
        converges(&mut client, &mirror).await,
        "the client ends on the suite's truth"
    );
    assert!(
        client.rejected.is_empty(),
        "every message verifies: {:?}",
        client.rejected
    );
    assert!(!client.closed);
    let malformed = metric(addr, "clonewire_suite_problems_total{kind=\"malformed\"}").await;
    assert!(
        malformed >= 8.0,
        "malformed frames are counted: {malformed} of {injected}"
    );
    let repairs = metric(addr, "clonewire_repairs_total{kind=\"replay\"}").await
        + metric(addr, "clonewire_repairs_total{kind=\"snapshot\"}").await;
    assert!(repairs >= 1.0, "the lost delta is repaired");
    relay_is_up(&relay, &mirror).await;
    relay.shutdown().await.unwrap();
    drop(injector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_gets_its_close_echoed() {
    let (_a, _mirror, relay, _client) = setup().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", relay.local_addr()))
        .await
        .unwrap();
    // Wait for hello, so the session is running before the client closes.
    match tokio::time::timeout(SECS(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => assert!(t.contains("hello"), "{t}"),
        other => panic!("expected hello, got {other:?}"),
    }
    ws.send(Message::Close(None)).await.unwrap();
    // RFC 6455: the relay answers with a Close frame of its own before the socket
    // closes; a client that waits for it (as browsers and most libraries do) is not
    // left hanging or told the connection dropped abnormally (1006).
    let mut echoed = false;
    let end = tokio::time::Instant::now() + SECS(2);
    while tokio::time::Instant::now() < end {
        match tokio::time::timeout(SECS(1), ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) => {
                echoed = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => break,
            Err(_) => {}
        }
    }
    assert!(echoed, "the relay echoes the client's Close");
    relay.shutdown().await.unwrap();
}
