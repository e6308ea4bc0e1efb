//! Shutdown waits: a relay with every kind of upstream and clients in every state
//! (reading, lagging, mid-join, mid-handshake) stops within its bound and leaves
//! nothing behind, neither threads nor a listening port nor descriptors; and the
//! binary exits within 2 s of SIGTERM during a subscription churn and during a
//! 100K-task join.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clonewire_core::Document;
use clonewire_relay::{start, SHUTDOWN_WITHIN};
use clonewire_suite::{Publisher, PublisherConfig};
use common::*;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const RELAY: &str = env!("CARGO_BIN_EXE_clonewire-relay");

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Threads the relay starts for itself (link threads are named after their workflow).
fn relay_threads() -> Vec<String> {
    thread_names()
        .into_iter()
        .filter(|n| n.starts_with("suite ") || n.starts_with("discovery") || n.starts_with("relay discovery"))
        .collect()
}

/// This process's open descriptors.
fn descriptors() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .map(|target| target.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `n` tasks as one patch.
fn tasks(n: u32) -> Value {
    let mut map = Map::new();
    for i in 0..n {
        map.insert(
            format!("1/t{i:06}"),
            json!({"status": "waiting", "name": format!("t{i:06}")}),
        );
    }
    Value::Object(map)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_every_kind_of_upstream_and_client_stops_in_bound_and_leaves_nothing() {
    let scratch = std::env::temp_dir().join(format!("clonewire-shutdown-{}", std::process::id()));
    let contacts = scratch.join("contacts");
    let cylc_run = scratch.join("cylc-run");
    std::fs::create_dir_all(&contacts).unwrap();
    std::fs::create_dir_all(&cylc_run).unwrap();
    // The process's ZeroMQ context for links outlives any one relay by design.
    let _ = clonewire_zmq::sockets::shared_context();
    let before = descriptors();

    // Upstreams: a suite named in the config, a suite found by its contact file, and an
    // upper relay; and a Cylc run directory to watch.
    let (a, a_cfg) = suite("a");
    let mut mirror = Document::new();
    publish(&a, &mut mirror, "taskProxies", tasks(20_000));
    let mut found = PublisherConfig::new("found");
    found.schema = schema();
    found.heartbeat_ms = 100;
    found.contact_dir = Some(contacts.clone());
    let found = Publisher::start(found).unwrap();
    found.publish("taskProxies", tasks(10)).unwrap();
    let (b, b_cfg) = suite("b");
    b.publish("taskProxies", tasks(10)).unwrap();
    let upper = start(relay_config(vec![b_cfg])).await.unwrap();

    let mut config = relay_config(vec![a_cfg]);
    config.discover = vec![contacts.clone()];
    config.cylc_run = Some(cylc_run.clone());
    config.follow_relays = vec![format!("ws://{}/ws", upper.local_addr())];
    let relay = start(config).await.unwrap();
    let addr = relay.local_addr();

    // A client that reads, one that never reads (lagging), one joining 20,000 tasks
    // as the relay stops, and a connection still in its handshake.
    let mut reading = TestClient::connect(addr).await;
    reading
        .subscribe("{ workflows { taskProxies { status } } }", None)
        .await;
    assert!(
        reading
            .pump_until(Duration::from_secs(20), |c| c.count("snapshot") >= 3)
            .await,
        "the reading client holds the suite, the found suite and the upper relay's"
    );
    let mut lagging = TestClient::connect(addr).await;
    lagging
        .subscribe("{ workflows { taskProxies { status name } } }", None)
        .await;
    for i in 0..50 {
        a.publish("taskProxies", json!({"1/t000001": {"status": format!("s{i}")}}))
            .unwrap();
    }
    let mut joining = TestClient::connect(addr).await;
    joining
        .subscribe("{ workflows { taskProxies { name } } }", None)
        .await;
    let mut handshaking = TcpStream::connect(addr).await.unwrap();
    handshaking
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(!relay_threads().is_empty());

    let started = Instant::now();
    relay.shutdown().await.unwrap();
    let took = started.elapsed();
    assert!(
        took <= SHUTDOWN_WITHIN + Duration::from_millis(500),
        "shutdown took {took:?}"
    );
    assert!(
        StdTcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "nothing listens on {addr} after shutdown"
    );
    upper.shutdown().await.unwrap();
    let still: Vec<String> = relay_threads();
    assert!(still.is_empty(), "relay threads left after shutdown: {still:?}");

    drop((reading, lagging, joining, handshaking));
    drop((a, b, found));
    // Closed sockets and contexts go at once; give the kernel a moment to reap.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = descriptors();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(left.is_empty(), "descriptors left open: {left:?}");
    let _ = std::fs::remove_dir_all(&scratch);
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the relay binary following `suite` on a free port; returns it and its address.
fn relay_binary(suite: &clonewire_relay::config::SuiteConfig) -> (Killed, std::net::SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(RELAY)
        .args(["--listen", &addr.to_string(), "--log", "warn"])
        .arg("--suite")
        .arg(format!(
            "{}={},{}",
            suite.name, suite.pub_endpoint, suite.rep_endpoint
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    while StdTcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < end, "the relay listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), addr)
}

/// Sends SIGTERM and returns how long the process took to exit (at most 10 s).
fn terminate(relay: &mut Killed) -> Duration {
    let started = Instant::now();
    let pid = rustix::process::Pid::from_raw(relay.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = relay.0.try_wait() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_subscription_churn_exits_within_two_seconds() {
    let (a, a_cfg) = suite("a");
    a.publish("taskProxies", tasks(2_000)).unwrap();
    let (mut relay, addr) = relay_binary(&a_cfg);
    let churn = tokio::spawn(async move {
        let queries = [
            "{ workflows { taskProxies { status } } }",
            "{ workflows { taskProxies { name } } }",
        ];
        // Bounded: it ends when the relay is gone, or after 20 s.
        let end = Instant::now() + Duration::from_secs(20);
        let mut i = 0;
        while Instant::now() < end {
            let Ok(Ok((mut ws, _))) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
            )
            .await
            else {
                return i;
            };
            use futures_util::SinkExt;
            let subscribe = json!({"type": "subscribe", "query": queries[i % 2]}).to_string();
            let _ = ws
                .send(tokio_tungstenite::tungstenite::Message::Text(subscribe.into()))
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            if i % 3 == 0 {
                let _ = ws.close(None).await;
            }
            i += 1;
        }
        i
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let took = tokio::task::spawn_blocking(move || terminate(&mut relay))
        .await
        .unwrap();
    let churned = churn.await.unwrap();
    assert!(churned > 10, "the churn ran ({churned} clients)");
    assert!(took <= Duration::from_secs(2), "exited {took:?} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_100k_task_join_exits_within_two_seconds() {
    let (a, a_cfg) = suite("big");
    a.publish("taskProxies", tasks(100_000)).unwrap();
    let (mut relay, addr) = relay_binary(&a_cfg);
    let mut client = TestClient::connect(addr).await;
    client
        .subscribe("{ workflows { taskProxies { status name } } }", None)
        .await;
    // The relay is joining the suite (100K tasks) when it is told to stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = tokio::task::spawn_blocking(move || terminate(&mut relay))
        .await
        .unwrap();
    assert!(took <= Duration::from_secs(2), "exited {took:?} after SIGTERM");
}
