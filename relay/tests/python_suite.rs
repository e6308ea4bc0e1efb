//! A suite written in Python from docs/protocol.md alone (`tests/peers/suite.py`, which
//! drops deltas and answers `replay` with `unsupported`) is followed correctly through
//! the relay to a websocket client. An independent follower of the same suite gives
//! the truth to compare with. Needs python3 with pyzmq, xxhash and rfc8785; fails
//! (never skips) without them.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clonewire_core::protocol::client::WorkflowState;
use clonewire_core::{Document, Projection, Subscription, SubscriptionLimits};
use clonewire_relay::config::SuiteConfig;
use clonewire_suite::{Follower, FollowerConfig};
use common::*;
use serde_json::{json, Value};

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_suite_reaches_a_websocket_client_intact() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/suite.py");
    let mut child = match Command::new("python3")
        .arg(&script)
        .args([
            "--seconds",
            "5",
            "--rate",
            "100",
            "--drop-every",
            "25",
            "--heartbeat-ms",
            "200",
        ])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => Reaped(child),
        Err(e) => panic!("python3 is needed ({e}); then: python3 -m pip install pyzmq xxhash rfc8785"),
    };
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .unwrap();
    let endpoints: Value = serde_json::from_str(&first).unwrap_or_else(|e| {
        panic!("the Python suite did not start ({e}: {first:?}); python3 -m pip install pyzmq xxhash rfc8785")
    });
    let (pub_ep, rep_ep) = (
        endpoints["pub"].as_str().unwrap().to_owned(),
        endpoints["rep"].as_str().unwrap().to_owned(),
    );

    // The truth: an independent follower of the same suite, verifying every hash.
    let (p, r) = (pub_ep.clone(), rep_ep.clone());
    let truth = std::thread::spawn(move || {
        let mut follower = Follower::connect(FollowerConfig::new(p, r)).unwrap();
        follower.run_for(Duration::from_secs(7), |_| {}).unwrap();
        let mut doc = Document::new();
        for (name, topic, _) in follower.topics() {
            doc.apply(name, &topic.to_value()).unwrap();
        }
        doc
    });

    let suite = SuiteConfig::new("py", pub_ep, rep_ep);
    let relay = clonewire_relay::start(relay_config(vec![suite])).await.unwrap();
    let addr = relay.local_addr();
    let q = "{ workflows { taskProxies { status name } workflow } }";
    let mut c = TestClient::connect(addr).await;
    c.subscribe(q, None).await;
    assert!(
        c.pump_until(Duration::from_secs(10), |c| c.states.get("py")
            == Some(&WorkflowState::Stopped))
            .await,
        "{:?}",
        c.states
    );
    let truth = tokio::task::spawn_blocking(move || truth.join().unwrap())
        .await
        .unwrap();
    let sub = Subscription::parse(q, &SubscriptionLimits::default()).unwrap();
    let schema = clonewire_core::Schema::new([vec!["taskProxies"]]);
    for topic in ["taskProxies", "workflow"] {
        let want = truth
            .topic(topic)
            .and_then(|t| {
                Some(
                    Projection::compile(sub.for_topic("py", topic)?, topic, &schema)?
                        .project(t)
                        .0,
                )
            })
            .unwrap_or(json!({}));
        assert_ne!(want, json!({}), "the suite published {topic}");
        let ok = c
            .pump_until(Duration::from_secs(5), |c| c.copy("py", topic) == want)
            .await;
        assert!(ok, "{topic}: client {} vs suite {}", c.copy("py", topic), want);
    }
    assert!(c.rejected.is_empty(), "{:?}", c.rejected);
    assert!(
        metric(addr, "clonewire_repairs_total{kind=\"snapshot\"}").await >= 1.0,
        "drops were repaired by snapshot"
    );
    relay.shutdown().await.unwrap();
}
