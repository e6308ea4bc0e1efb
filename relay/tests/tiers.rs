//! Relay tiers: a relay that follows another relay (`follow_relay`) serves its clients
//! exactly what the upper relay would serve them, subscribes upstream to no more than
//! its clients need, passes workflow states on, resumes after losing the upper relay,
//! and lets clients resume at either tier.

mod common;

use std::time::Duration;

use clonewire_core::protocol::client::{Resume, WorkflowState};
use clonewire_core::Document;
use clonewire_relay::Running;
use common::*;
use serde_json::json;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn tasks(n: u32) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(
            format!("1/t{i}"),
            json!({"name": format!("t{i}"), "status": "waiting", "extra": 0,
                   "jobs": {"01": {"state": "submitted"}}}),
        );
    }
    serde_json::Value::Object(m)
}

/// A relay that follows `upper` (and `suites`).
async fn lower_relay(upper: &Running, suites: Vec<clonewire_relay::config::SuiteConfig>) -> Running {
    let mut config = relay_config(suites);
    config.follow_relays = vec![format!("ws://{}/ws", upper.local_addr())];
    config.name = "lower".into();
    clonewire_relay::start(config)
        .await
        .expect("the lower relay starts")
}

/// Waits until the relay lists `workflow`.
async fn until_listed(relay: &Running, workflow: &str) {
    let end = std::time::Instant::now() + SECS(10);
    while relay.status(workflow).is_none() {
        assert!(std::time::Instant::now() < end, "{workflow} is never listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to 5 s for `done`.
async fn eventually(done: impl Fn() -> bool) -> bool {
    let end = std::time::Instant::now() + SECS(5);
    while !done() && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// The seq of a client's copy.
fn seq_of(c: &TestClient, workflow: &str, topic: &str) -> Option<u64> {
    c.store.get(workflow, topic).and_then(|r| r.seq).map(|s| s.get())
}

/// True for a client holding what `query` selects of `mirror`'s tasks now.
fn holds(mirror: &Document, query: &str) -> impl Fn(&TestClient) -> bool {
    let expected = projection(mirror, query, "w", "taskProxies");
    move |c| c.copy("w", "taskProxies") == expected
}

/// Pumps every client for a while.
async fn pump_all(clients: &mut [&mut TestClient], time: Duration) {
    let end = std::time::Instant::now() + time;
    while std::time::Instant::now() < end {
        for c in clients.iter_mut() {
            c.pump(Duration::from_millis(20)).await;
        }
    }
}

/// True when `c` holds exactly the projection of `mw` under `q` for w's topics.
fn settled(c: &TestClient, mw: &Document, q: &str) -> bool {
    ["taskProxies", "edges"]
        .iter()
        .all(|t| c.copy("w", t) == projection(mw, q, "w", t))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_lower_relay_see_what_the_upper_relay_serves_and_suites_mix_with_relays() {
    let (w, w_cfg) = suite("w");
    let (local, local_cfg) = suite("local");
    let (mut mw, mut ml) = (Document::new(), Document::new());
    publish(&w, &mut mw, "taskProxies", tasks(12));
    publish(
        &w,
        &mut mw,
        "edges",
        json!({"e0": {"source": "1/t0", "target": "1/t1"}}),
    );
    publish(&local, &mut ml, "taskProxies", tasks(3));
    let upper = clonewire_relay::start(relay_config(vec![w_cfg])).await.unwrap();
    let lower = lower_relay(&upper, vec![local_cfg]).await;
    until_listed(&lower, "w").await;

    let narrow = r#"{ workflows(ids: ["w"]) { taskProxies { name status } } }"#;
    let wide = r#"{ workflows { taskProxies(ids: ["1/t1", "1/t2"]) { status jobs } edges } }"#;
    let mut at_upper = [
        TestClient::connect(upper.local_addr()).await,
        TestClient::connect(upper.local_addr()).await,
    ];
    let mut at_lower = [
        TestClient::connect(lower.local_addr()).await,
        TestClient::connect(lower.local_addr()).await,
    ];
    for (i, q) in [narrow, wide].into_iter().enumerate() {
        at_upper[i].subscribe(q, None).await;
        at_lower[i].subscribe(q, None).await;
    }
    // Every client holds exactly its projection before the changes start. How many
    // deltas came while joining depends on when each tier's subscriptions took effect
    // (the lower relay subscribes upstream paced, 300 ms apart); the deltas of the
    // changes below must be the same at both tiers.
    for (i, q) in [narrow, wide].into_iter().enumerate() {
        for c in [&mut at_upper[i], &mut at_lower[i]] {
            assert!(
                c.pump_until(SECS(10), |c| settled(c, &mw, q)).await,
                "client {i} joined"
            );
        }
    }
    let joined: Vec<(usize, usize)> = (0..2)
        .map(|i| (at_upper[i].count("delta"), at_lower[i].count("delta")))
        .collect();
    for i in 0..160u32 {
        let status = ["preparing", "submitted", "running", "succeeded"][(i / 12 % 4) as usize];
        let task = format!("1/t{}", i % 12);
        // Half the changes touch a field no client selects.
        let patch = if i % 2 == 0 {
            json!({ task.clone(): {"status": status} })
        } else {
            json!({ task.clone(): {"extra": i} })
        };
        publish(&w, &mut mw, "taskProxies", patch);
        if i % 40 == 0 {
            publish(
                &w,
                &mut mw,
                "edges",
                json!({ format!("e{i}"): {"source": task, "target": "1/t0"} }),
            );
            publish(
                &local,
                &mut ml,
                "taskProxies",
                json!({"1/t0": {"status": status}}),
            );
        }
        if i % 8 == 0 {
            let [a, b] = &mut at_upper;
            let [c, d] = &mut at_lower;
            pump_all(&mut [a, b, c, d], Duration::from_millis(20)).await;
        }
    }
    for (i, q) in [narrow, wide].into_iter().enumerate() {
        assert!(
            at_upper[i].pump_until(SECS(10), |c| settled(c, &mw, q)).await,
            "upper client {i} converges"
        );
        assert!(
            at_lower[i].pump_until(SECS(10), |c| settled(c, &mw, q)).await,
            "lower client {i} converges"
        );
        let wide_local =
            |c: &TestClient| c.copy("local", "taskProxies") == projection(&ml, wide, "local", "taskProxies");
        if i == 1 {
            assert!(
                at_lower[i].pump_until(SECS(10), wide_local).await,
                "the lower relay's own suite is served beside the upper relay's"
            );
        }
    }
    for i in 0..2 {
        let (u, l) = (&at_upper[i], &at_lower[i]);
        assert!(
            u.rejected.is_empty() && l.rejected.is_empty(),
            "{:?} {:?}",
            u.rejected,
            l.rejected
        );
        for topic in ["taskProxies", "edges"] {
            let (cu, cl) = (u.store.get("w", topic), l.store.get("w", topic));
            assert_eq!(
                cu.map(|r| r.topic.hash()),
                cl.map(|r| r.topic.hash()),
                "client {i}: the same projection hash of w/{topic} at both tiers"
            );
        }
        assert_eq!(
            seq_of(u, "w", "taskProxies"),
            seq_of(l, "w", "taskProxies"),
            "client {i}: the suite's seq of the last change it saw, at both tiers"
        );
        assert_eq!(u.states.get("w"), Some(&WorkflowState::Live));
        assert_eq!(l.states.get("w"), Some(&WorkflowState::Live));
        // Deltas only when the client's own projection changed, as at the upper relay.
        let (du, dl) = (u.count("delta") - joined[i].0, l.count("delta") - joined[i].1);
        println!("client {i}: {du} deltas from the upper relay, {dl} from the lower");
        assert!(
            du >= 10,
            "client {i}: a stream of deltas, not one snapshot ({du})"
        );
        assert_eq!(dl, du, "client {i}: as many deltas at both tiers");
    }
    lower.shutdown().await.unwrap();
    upper.shutdown().await.unwrap();
    w.shutdown();
    local.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_subscription_grows_and_shrinks_with_the_lower_relays_clients() {
    let (w, w_cfg) = suite("w");
    let mut mw = Document::new();
    publish(&w, &mut mw, "taskProxies", tasks(4));
    publish(
        &w,
        &mut mw,
        "edges",
        json!({"e0": {"source": "1/t0", "target": "1/t1"}}),
    );
    let upper = clonewire_relay::start(relay_config(vec![w_cfg])).await.unwrap();
    let lower = lower_relay(&upper, Vec::new()).await;
    until_listed(&lower, "w").await;
    let upper_topics = || upper.status("w").map_or(0, |s| s.topics);
    assert_eq!(
        upper_topics(),
        0,
        "nothing is followed upstream before a client asks"
    );

    let mut a = TestClient::connect(lower.local_addr()).await;
    a.subscribe(r#"{ workflows(ids: ["w"]) { taskProxies { status } } }"#, None)
        .await;
    assert!(a.pump_until(SECS(10), |c| c.count("snapshot") >= 1).await);
    assert!(
        eventually(|| upper_topics() == 1).await,
        "one topic upstream for one narrow client"
    );
    let deltas_in = || async { metric(lower.local_addr(), "clonewire_deltas_in_total").await };
    let before = deltas_in().await;
    for i in 0..5 {
        publish(&w, &mut mw, "taskProxies", json!({"1/t0": {"extra": i}}));
    }
    a.pump(Duration::from_millis(600)).await;
    assert_eq!(
        deltas_in().await,
        before,
        "changes to a field no lower client selects do not cross the tier"
    );

    let mut b = TestClient::connect(lower.local_addr()).await;
    let extra = r#"{ workflows(ids: ["w"]) { taskProxies { extra } edges } }"#;
    b.subscribe(extra, None).await;
    assert!(
        b.pump_until(SECS(10), |c| c.copy("w", "edges")
            == projection(&mw, extra, "w", "edges")
            && c.copy("w", "taskProxies") == projection(&mw, extra, "w", "taskProxies"))
            .await,
        "a second client's wider needs reach the upper relay"
    );
    assert!(eventually(|| upper_topics() == 2).await, "two topics upstream");
    let before = deltas_in().await;
    publish(&w, &mut mw, "taskProxies", json!({"1/t1": {"extra": 99}}));
    assert!(
        b.pump_until(SECS(5), |c| c.copy("w", "taskProxies")
            == projection(&mw, extra, "w", "taskProxies"))
            .await
    );
    assert!(deltas_in().await > before, "now they do");

    // The wide client leaves: after the lingering time, the upper relay is asked for
    // the narrow selection only, then nothing once the last client goes.
    b.close().await;
    let end = std::time::Instant::now() + SECS(15);
    while upper_topics() != 1 && std::time::Instant::now() < end {
        a.pump(Duration::from_millis(100)).await;
    }
    assert_eq!(upper_topics(), 1, "edges is no longer followed upstream");
    a.close().await;
    let end = std::time::Instant::now() + SECS(15);
    while upper_topics() != 0 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upper_topics(), 0, "no client: nothing followed upstream");
    lower.shutdown().await.unwrap();
    upper.shutdown().await.unwrap();
    w.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_at_either_tier_and_the_lower_relay_resumes_after_losing_the_upper() {
    let (w, w_cfg) = suite("w");
    let mut mw = Document::new();
    publish(&w, &mut mw, "taskProxies", tasks(6));
    let upper = clonewire_relay::start(relay_config(vec![w_cfg.clone()]))
        .await
        .unwrap();
    let upper_addr = upper.local_addr();
    let lower = lower_relay(&upper, Vec::new()).await;
    until_listed(&lower, "w").await;
    let q = r#"{ workflows(ids: ["w"]) { taskProxies { name status } } }"#;
    // A client that stays at the lower relay throughout.
    let mut stay = TestClient::connect(lower.local_addr()).await;
    stay.subscribe(q, None).await;
    assert!(stay.pump_until(SECS(10), |c| c.count("snapshot") == 1).await);

    // Upper → lower: the client's seq came from the upper relay, at a suite seq the
    // lower relay never stood at (changes it does not select came since).
    for i in 0..6 {
        publish(
            &w,
            &mut mw,
            "taskProxies",
            json!({ format!("1/t{i}"): {"extra": 1} }),
        );
    }
    stay.pump(Duration::from_millis(300)).await;
    // Its own query (a view of its own at the upper relay, labelled when it joined).
    let qm = r#"{ workflows(ids: ["w"]) { taskProxies { status } } }"#;
    let mut mover = TestClient::connect(upper_addr).await;
    mover.subscribe(qm, None).await;
    assert!(mover.pump_until(SECS(10), holds(&mw, qm)).await);
    assert_eq!(mover.count("delta"), 0);
    stay.pump(Duration::from_millis(300)).await;
    // Carried over as a browser's store would be.
    let (held, resume): (_, Resume) = (mover.store.clone(), mover.store.resume_points());
    mover.close().await;
    publish(
        &w,
        &mut mw,
        "taskProxies",
        json!({"1/t0": {"status": "succeeded"}}),
    );
    let mut moved = TestClient::connect(lower.local_addr()).await;
    moved.store = held;
    moved.subscribe(qm, Some(resume)).await;
    publish(
        &w,
        &mut mw,
        "taskProxies",
        json!({"1/t1": {"status": "succeeded"}}),
    );
    assert!(
        moved.pump_until(SECS(10), holds(&mw, qm)).await,
        "resumed at the lower tier"
    );
    assert_eq!(
        moved.count("snapshot"),
        0,
        "upper → lower: resumed without a snapshot"
    );
    assert!(moved.rejected.is_empty(), "{:?}", moved.rejected);

    // Lower → upper.
    let resume = moved.store.resume_points();
    let mut back = TestClient::connect(upper_addr).await;
    back.store = moved.store.clone();
    moved.close().await;
    publish(
        &w,
        &mut mw,
        "taskProxies",
        json!({"1/t2": {"status": "succeeded"}}),
    );
    back.subscribe(qm, Some(resume)).await;
    assert!(
        back.pump_until(SECS(10), holds(&mw, qm)).await,
        "resumed at the upper tier"
    );
    assert_eq!(
        back.count("snapshot"),
        0,
        "lower → upper: resumed without a snapshot"
    );
    assert!(back.rejected.is_empty(), "{:?}", back.rejected);
    back.close().await;

    // The upper relay goes away: the lower relay's clients see `stale`, and once a
    // relay is back at the same address, the lower relay resumes and data flows again.
    upper.shutdown().await.unwrap();
    assert!(
        stay.pump_until(SECS(10), |c| c.states.get("w") == Some(&WorkflowState::Stale))
            .await,
        "stale while the upper relay is gone: {:?}",
        stay.state_history
    );
    publish(&w, &mut mw, "taskProxies", json!({"1/t3": {"status": "failed"}}));
    let mut config = relay_config(vec![w_cfg]);
    config.listen = upper_addr;
    let upper = clonewire_relay::start(config)
        .await
        .expect("the upper relay starts again");
    let now = holds(&mw, q);
    assert!(
        stay.pump_until(SECS(15), |c| c.states.get("w") == Some(&WorkflowState::Live)
            && now(c))
            .await,
        "live and current again: {:?}",
        stay.state_history
    );
    publish(&w, &mut mw, "taskProxies", json!({"1/t4": {"status": "failed"}}));
    assert!(stay.pump_until(SECS(10), holds(&mw, q)).await);
    assert!(stay.rejected.is_empty(), "{:?}", stay.rejected);
    println!(
        "the client that stayed at the lower relay: {} snapshots, {} deltas",
        stay.count("snapshot"),
        stay.count("delta")
    );

    // The suite stops: `stopped` passes through both tiers.
    w.shutdown();
    assert!(
        stay.pump_until(SECS(10), |c| c.states.get("w") == Some(&WorkflowState::Stopped))
            .await,
        "stopped passes through: {:?}",
        stay.state_history
    );
    lower.shutdown().await.unwrap();
    upper.shutdown().await.unwrap();
}
