//! Descriptor pressure: the relay binary, started with a hard open-file limit of 1,024
//! (common in containers and on HPC nodes), is flooded with 2,000 half-open requests
//! held open. Half-open connections are capped below its descriptors, so it keeps
//! serving the client it has, does not spin, and a new client gets `hello` within a
//! second, long before any handshake timeout.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clonewire_core::Document;
use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const RELAY: &str = env!("CARGO_BIN_EXE_clonewire-relay");
const FD_LIMIT: u32 = 1_024;
const HALF_OPEN: usize = 2_000;

/// The relay's user + system CPU seconds so far.
fn cpu_secs(child: &Child) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_requests_past_the_descriptor_limit_never_lock_clients_out() {
    // This process holds the 2,000 half-open requests: it needs the descriptors.
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let own = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: own.maximum,
            maximum: own.maximum,
        },
    );
    let own = getrlimit(Resource::Nofile).current;
    assert!(
        own.is_none_or(|n| n > 2 * HALF_OPEN as u64),
        "the test needs more than {} descriptors, has {own:?}",
        2 * HALF_OPEN
    );
    let (a, a_cfg) = suite("a");
    let mut mirror = Document::new();
    publish(
        &a,
        &mut mirror,
        "taskProxies",
        json!({"1/t0": {"status": "waiting"}}),
    );
    let dir = std::env::temp_dir().join(format!("clonewire-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n[limits]\nhandshake_timeout_ms = 60000\n\n[[suite]]\nname = \"a\"\npub = \"{}\"\nrep = \"{}\"\n",
            a_cfg.pub_endpoint, a_cfg.rep_endpoint
        ),
    )
    .unwrap();
    // `ulimit -n` sets the soft and the hard limit, so the relay cannot raise it.
    let script = format!("ulimit -n {FD_LIMIT} && exec \"$0\" --config \"$1\"");
    let mut child = Command::new("sh")
        .args(["-c", &script, RELAY, config.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let relay = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    let mut limit_logged = None;
    let end = Instant::now() + Duration::from_secs(10);
    while addr.is_none() && Instant::now() < end {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if line.contains("open-file limit") {
            limit_logged = Some(line.clone());
        }
        if let Some(rest) = line.split("http://").nth(1) {
            addr = rest.trim_end_matches('/').split('/').next().map(str::to_owned);
        }
    }
    let addr: std::net::SocketAddr = addr.expect("the relay logs its address").parse().unwrap();
    let limit_logged = limit_logged.expect("the relay logs its open-file limit");
    assert!(limit_logged.contains(&FD_LIMIT.to_string()), "{limit_logged}");

    let mut reader = TestClient::connect(addr).await;
    reader.subscribe("{ workflows { taskProxies } }", None).await;
    assert!(
        reader
            .pump_until(Duration::from_secs(5), |c| c.count("snapshot") >= 1)
            .await
    );

    // More half-open requests than the relay has descriptors, all held open (the
    // handshake timeout is a minute away).
    let mut half_open = Vec::new();
    for _ in 0..HALF_OPEN {
        let mut s = TcpStream::connect(addr)
            .await
            .expect("the kernel's backlog takes it");
        let _ = s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").await;
        half_open.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // While it cannot accept, it still serves its client and does not spin.
    let cpu_before = cpu_secs(&relay.0);
    let window = Instant::now();
    for i in 0..10 {
        publish(
            &a,
            &mut mirror,
            "taskProxies",
            json!({"1/t0": {"status": format!("s{i}")}}),
        );
        reader.pump(Duration::from_millis(80)).await;
    }
    let cpu = (cpu_secs(&relay.0) - cpu_before) / window.elapsed().as_secs_f64();
    assert!(
        reader
            .pump_until(Duration::from_secs(2), |c| c.copy("a", "taskProxies")
                == projection(
                    &mirror,
                    "{ workflows { taskProxies } }",
                    "a",
                    "taskProxies"
                ))
            .await,
        "the connected client is still served"
    );
    println!("relay CPU while out of descriptors: {cpu:.2} s/s");
    assert!(cpu < 0.5, "no busy loop: {cpu:.2} CPU s/s");

    // A new client gets in at once: the oldest half-open requests made room.
    let start = Instant::now();
    let late = async {
        let mut c = TestClient::connect(addr).await;
        c.pump_until(Duration::from_secs(10), |c| c.count("hello") == 1)
            .await
    };
    let got_hello = tokio::time::timeout(Duration::from_secs(10), late).await;
    let took = start.elapsed();
    println!(
        "a new client got hello {:.0} ms after 2,000 half-open requests",
        took.as_secs_f64() * 1000.0
    );
    assert!(matches!(got_hello, Ok(true)), "the new client got hello");
    assert!(took <= Duration::from_secs(1), "hello took {took:?}");
    let evicted = metric(addr, "clonewire_handshakes_evicted_total").await;
    println!("half-open connections closed to make room: {evicted}");
    assert!(evicted >= 1.0, "the flood went past the cap");
    drop(half_open);
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
}
