//! Tokens and origins on `/ws`: who may connect, and that a client never receives a
//! byte of a workflow outside its token's claims, nor learns that one exists. And a
//! suite followed over CURVE with its `server_key`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::{ClientMessage, CloseCode, ResumePoint};
use clonewire_core::{Document, Hash, Seq};
use clonewire_relay::config::{Config, Secret};
use clonewire_suite::Publisher;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "test-secret-test-secret-test-secret!";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A token signed with `secret` carrying `claims`.
fn token_with(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token encodes")
}

/// A valid token for an hour that may see `workflows` (a list, or `"*"`).
fn token(workflows: Value) -> String {
    token_with(SECRET, json!({"exp": now() + 3600, "workflows": workflows}))
}

/// Two suites, `a` and `b`, with data, and a relay that requires tokens.
async fn relay_with_auth(
    origins: Option<&[&str]>,
    allow_no_origin: bool,
) -> (clonewire_relay::Running, Publisher, Publisher) {
    let (a, a_cfg) = suite("a");
    let (b, b_cfg) = suite("b");
    let (mut ma, mut mb) = (Document::new(), Document::new());
    publish(&a, &mut ma, "workflow", json!({"name": "a", "status": "running"}));
    publish(&a, &mut ma, "taskProxies", json!({"1/x": {"status": "running"}}));
    publish(&b, &mut mb, "workflow", json!({"name": "b", "status": "running"}));
    publish(&b, &mut mb, "taskProxies", json!({"1/y": {"status": "waiting"}}));
    let mut config: Config = relay_config(vec![a_cfg, b_cfg]);
    config.auth.jwt_secret = Some(Secret::new(SECRET));
    config.auth.leeway_secs = 0;
    config.auth.allowed_origins = origins.map(|o| o.iter().map(|s| (*s).to_owned()).collect());
    config.auth.allow_no_origin = allow_no_origin;
    let relay = clonewire_relay::start(config).await.expect("relay starts");
    // Let both links join, so "b exists and has data" is true during every test.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !relay.statuses().iter().all(|(_, s)| s.epoch.is_some()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (relay, a, b)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws` (with `?token=` when given, and extra headers); the HTTP status on
/// refusal.
async fn open(addr: SocketAddr, token: Option<&str>, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let url = match token {
        Some(t) => format!("ws://{addr}/ws?token={t}"),
        None => format!("ws://{addr}/ws"),
    };
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

/// Every text frame for `time` (or until the relay closes), and the close code.
async fn collect(ws: &mut Ws, time: Duration) -> (Vec<String>, Option<u16>) {
    let end = Instant::now() + time;
    let mut texts = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => texts.push(t.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => return (texts, frame.map(|f| u16::from(f.code))),
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => return (texts, None),
            Err(_) => return (texts, None),
        }
    }
}

async fn send(ws: &mut Ws, message: &ClientMessage) {
    let text = serde_json::to_string(message).expect("json");
    ws.send(Message::Text(text.into())).await.expect("sent");
}

async fn subscribe(ws: &mut Ws, query: &str) {
    send(
        ws,
        &ClientMessage::Subscribe {
            query: query.to_owned(),
            resume: None,
            compression: None,
        },
    )
    .await;
}

/// The messages, each as JSON.
fn parsed(texts: &[String]) -> Vec<Value> {
    texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("relay sends JSON"))
        .collect()
}

/// True when any message names workflow `w` (anywhere in it).
fn mentions(texts: &[String], w: &str) -> bool {
    texts
        .iter()
        .any(|t| t.contains(&format!("\"workflow\":\"{w}\"")) || t.contains(&format!("\\\"{w}\\\"")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bad_or_expired_token_is_refused_before_the_upgrade() {
    let (relay, _a, _b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    assert_eq!(open(addr, None, &[]).await.err(), Some(401), "no token");
    let forged = token_with(
        "another-secret-another-secret-another",
        json!({"exp": now() + 3600, "workflows": "*"}),
    );
    assert_eq!(
        open(addr, Some(&forged), &[]).await.err(),
        Some(401),
        "bad signature"
    );
    let expired = token_with(SECRET, json!({"exp": now() - 10, "workflows": "*"}));
    assert_eq!(open(addr, Some(&expired), &[]).await.err(), Some(401), "expired");
    assert_eq!(
        open(addr, Some("not.a.jwt"), &[]).await.err(),
        Some(401),
        "garbage"
    );
    let no_exp = token_with(SECRET, json!({"workflows": "*"}));
    assert_eq!(open(addr, Some(&no_exp), &[]).await.err(), Some(401), "no exp");
    // A good token works in the query and, for non-browser clients, as a header.
    let good = token(json!("*"));
    assert!(open(addr, Some(&good), &[]).await.is_ok());
    let bearer = format!("Bearer {good}");
    assert!(open(addr, None, &[("authorization", &bearer)]).await.is_ok());
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_only_the_workflows_its_token_lists() {
    let (relay, _a, _b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    let mut only_a = open(addr, Some(&token(json!(["a"]))), &[])
        .await
        .expect("connects");
    subscribe(
        &mut only_a,
        "{ workflows { workflow { name } taskProxies { status } } }",
    )
    .await;
    let (texts, _) = collect(&mut only_a, Duration::from_secs(2)).await;
    assert!(mentions(&texts, "a"), "a is visible: {texts:?}");
    assert!(!mentions(&texts, "b"), "b leaked: {texts:?}");
    let echo = parsed(&texts)
        .into_iter()
        .find(|m| m["type"] == "subscribed")
        .expect("subscribed");
    assert!(!echo["query"].as_str().unwrap_or("").contains("\"b\""), "{echo}");
    // The wildcard sees both.
    let mut all = open(addr, Some(&token(json!("*"))), &[]).await.expect("connects");
    subscribe(&mut all, "{ workflows { workflow { name } } }").await;
    let (texts, _) = collect(&mut all, Duration::from_secs(2)).await;
    assert!(mentions(&texts, "a") && mentions(&texts, "b"), "{texts:?}");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_a_forbidden_workflow_looks_exactly_like_naming_a_missing_one() {
    let (relay, _a, _b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    let t = token(json!(["a"]));
    // The second query would be a bad_query for b's schema (ids on a non-collection),
    // which must not give b away either.
    for selection in [
        "{ taskProxies { status } }",
        r#"{ workflow(ids: ["x"]) { name } }"#,
    ] {
        let mut replies = Vec::new();
        for id in ["b", "does-not-exist"] {
            let mut ws = open(addr, Some(&t), &[]).await.expect("connects");
            subscribe(&mut ws, &format!("{{ workflows(ids: [\"{id}\"]) {selection} }}")).await;
            let (texts, _) = collect(&mut ws, Duration::from_millis(1500)).await;
            assert!(!mentions(&texts, "b"), "b leaked: {texts:?}");
            replies.push(parsed(&texts));
        }
        assert_eq!(
            replies[0], replies[1],
            "forbidden and missing differ for {selection}"
        );
        let types: Vec<&str> = replies[0].iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(types, ["hello", "subscribed"], "{:?}", replies[0]);
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_and_resync_of_a_forbidden_workflow_are_ignored() {
    let (relay, _a, b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    let mut ws = open(addr, Some(&token(json!(["a"]))), &[])
        .await
        .expect("connects");
    // Resume points for b: as if the client held b's data (with b's real epoch).
    let point = ResumePoint {
        epoch: b.epoch(),
        seq: Seq(1),
        hash: Hash::EMPTY,
    };
    let resume = BTreeMap::from([(
        "b".to_owned(),
        BTreeMap::from([
            ("taskProxies".to_owned(), point.clone()),
            ("workflow".to_owned(), point),
        ]),
    )]);
    send(
        &mut ws,
        &ClientMessage::Subscribe {
            query: r#"{ workflows(ids: ["a", "b"]) { taskProxies workflow } }"#.to_owned(),
            resume: Some(resume),
            compression: None,
        },
    )
    .await;
    for topic in ["taskProxies", "workflow"] {
        send(
            &mut ws,
            &ClientMessage::Resync {
                workflow: "b".into(),
                topic: topic.into(),
            },
        )
        .await;
    }
    let (texts, closed) = collect(&mut ws, Duration::from_secs(2)).await;
    assert_eq!(closed, None, "the connection stays open");
    assert!(mentions(&texts, "a"), "{texts:?}");
    assert!(!mentions(&texts, "b"), "b leaked: {texts:?}");
    assert!(
        !parsed(&texts).iter().any(|m| m["type"] == "error"),
        "no error tells b apart: {texts:?}"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_when_its_token_expires() {
    let (relay, _a, _b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    let short = token_with(SECRET, json!({"exp": now() + 2, "workflows": ["a"]}));
    let mut ws = open(addr, Some(&short), &[]).await.expect("connects");
    subscribe(&mut ws, "{ workflows { workflow } }").await;
    let (_, code) = collect(&mut ws, Duration::from_secs(6)).await;
    assert_eq!(code, Some(CloseCode::PolicyViolation.code()));
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_outside_the_allow_list_are_refused() {
    let t = token(json!("*"));
    let (strict, _a, _b) = relay_with_auth(Some(&["https://ops.example.org"]), false).await;
    let addr = strict.local_addr();
    assert_eq!(
        open(addr, Some(&t), &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        open(addr, Some(&t), &[("origin", "http://ops.example.org")])
            .await
            .err(),
        Some(403),
        "the scheme is part of the origin"
    );
    assert_eq!(open(addr, Some(&t), &[]).await.err(), Some(403), "no Origin");
    assert!(open(addr, Some(&t), &[("origin", "https://ops.example.org")])
        .await
        .is_ok());
    strict.shutdown().await.unwrap();

    let (lenient, _a, _b) = relay_with_auth(Some(&["https://ops.example.org"]), true).await;
    let addr = lenient.local_addr();
    assert!(
        open(addr, Some(&t), &[]).await.is_ok(),
        "no Origin, allowed by config"
    );
    assert_eq!(
        open(addr, Some(&t), &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    lenient.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_only_the_workflows_a_token_may_see() {
    let (relay, _a, _b) = relay_with_auth(None, false).await;
    let addr = relay.local_addr();
    let anonymous: Value = serde_json::from_str(&http_get(addr, "/healthz").await).expect("json");
    assert_eq!(anonymous, json!({"status": "ok"}));
    let path = format!("/healthz?token={}", token(json!(["a"])));
    let scoped: Value = serde_json::from_str(&http_get(addr, &path).await).expect("json");
    let names: Vec<&String> = scoped["workflows"]
        .as_object()
        .expect("workflows")
        .keys()
        .collect();
    assert_eq!(names, ["a"]);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curve_suite_is_followed_with_its_server_key_and_only_with_it() {
    use clonewire_suite::PublisherConfig;
    use clonewire_zmq::sockets::CurveKeyPair;
    let keys = CurveKeyPair::generate().expect("libzmq has CURVE");
    let mut config = PublisherConfig::new("sealed");
    config.schema = schema();
    config.heartbeat_ms = 100;
    config.curve_secret_key = Some(keys.secret.clone());
    let suite = Publisher::start(config).expect("publisher starts");
    suite.publish("workflow", json!({"name": "sealed"})).unwrap();
    let with_key = clonewire_relay::config::SuiteConfig {
        server_key: Some(keys.public.0.clone()),
        ..clonewire_relay::config::SuiteConfig::new("sealed", suite.pub_endpoint(), suite.rep_endpoint())
    };
    let without_key =
        clonewire_relay::config::SuiteConfig::new("plain", suite.pub_endpoint(), suite.rep_endpoint());
    let relay = clonewire_relay::start(relay_config(vec![with_key, without_key]))
        .await
        .expect("relay starts");
    let mut c = TestClient::connect(relay.local_addr()).await;
    c.subscribe("{ workflows { workflow } }", None).await;
    assert!(
        c.pump_until(Duration::from_secs(5), |c| c.copy("sealed", "workflow")
            == json!({"name": "sealed"}))
            .await,
        "followed over CURVE"
    );
    c.pump(Duration::from_secs(1)).await;
    assert_eq!(c.copy("plain", "workflow"), json!({}), "no key, no data");
    let plain = relay.status("plain").expect("link");
    assert!(plain.epoch.is_none(), "the keyless link never joined");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_that_admits_listed_followers_admits_the_relay_by_its_key_file() {
    use clonewire_suite::PublisherConfig;
    use clonewire_zmq::sockets::CurveKeyPair;
    let dir = std::env::temp_dir().join(format!("clonewire-relay-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let relay_keys = CurveKeyPair::generate().expect("libzmq has CURVE");
    let key_file = dir.join("relay.key");
    std::fs::write(&key_file, format!("{}\n", relay_keys.secret.0)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(dir.join("relay.key.pub"), format!("{}\n", relay_keys.public.0)).unwrap();

    // Two suites with allow-lists: one lists the relay, the other someone else.
    let start = |name: &str, allowed| {
        let keys = CurveKeyPair::generate().unwrap();
        let mut config = PublisherConfig::new(name);
        config.schema = schema();
        config.heartbeat_ms = 100;
        config.curve_secret_key = Some(keys.secret.clone());
        config.curve_allowed_clients = Some(vec![allowed]);
        let suite = Publisher::start(config).expect("publisher starts");
        suite.publish("workflow", json!({ "name": name })).unwrap();
        let link = clonewire_relay::config::SuiteConfig {
            server_key: Some(keys.public.0.clone()),
            ..clonewire_relay::config::SuiteConfig::new(name, suite.pub_endpoint(), suite.rep_endpoint())
        };
        (suite, link)
    };
    let (_listed, listed_link) = start("listed", relay_keys.public.clone());
    let (_other, other_link) = start("other", CurveKeyPair::generate().unwrap().public);
    let mut config = relay_config(vec![listed_link, other_link]);
    config.curve_key_file = Some(key_file);
    let relay = clonewire_relay::start(config).await.expect("relay starts");
    let mut c = TestClient::connect(relay.local_addr()).await;
    c.subscribe("{ workflows { workflow } }", None).await;
    assert!(
        c.pump_until(Duration::from_secs(5), |c| c.copy("listed", "workflow")
            == json!({"name": "listed"}))
            .await,
        "the suite that lists the relay's key is followed"
    );
    c.pump(Duration::from_secs(1)).await;
    assert_eq!(c.copy("other", "workflow"), json!({}), "not listed, no data");
    assert!(relay.status("other").expect("link").epoch.is_none());
    relay.shutdown().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
