//! The `clonewire-relay` binary: flags, errors, and a graceful shutdown on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clonewire_core::protocol::client::CloseCode;
use common::TestClient;

const RELAY: &str = env!("CARGO_BIN_EXE_clonewire-relay");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(RELAY).args(args).output().expect("runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn help_explains_every_flag() {
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--suite",
        "--config",
        "--demo",
        "--www",
        "--log",
        "--curve-key-file",
        "--cylc-run",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}

#[test]
fn bad_flags_and_config_exit_2_with_a_clear_error() {
    let cases: [(&[&str], &str); 7] = [
        (&["--bogus"], "--bogus"),
        (&["--suite", "nameonly"], "NAME=PUB_ENDPOINT,REP_ENDPOINT"),
        (
            &["--config", "/nonexistent/relay.toml"],
            "cannot read config file",
        ),
        (&[], "nothing to follow"),
        (&["--cylc-run", "/nonexistent/cylc-run"], "not a folder"),
        (&["--listen", "not-an-address", "--demo"], "not-an-address"),
        (
            &["--demo", "--curve-key-file", "/nonexistent/relay.key"],
            "curve_key_file",
        ),
    ];
    for (args, says) in cases {
        let (code, text) = run(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(text.contains(says), "{args:?} should say {says:?}: {text}");
    }
    let dir = std::env::temp_dir().join(format!("clonewire-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[limits]\nclient_queue_soft_bytes = \"lots\"\n").unwrap();
    let (code, text) = run(&["--config", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("client_queue_soft_bytes"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_and_exits_0_within_2_s() {
    let mut child = Command::new(RELAY)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--suite",
            "gone=tcp://127.0.0.1:9,tcp://127.0.0.1:9",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let addr = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("http://").nth(1) {
                return rest.trim_end_matches('/').split('/').next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("the relay logs its address");
    let mut client = TestClient::connect(addr.parse().unwrap()).await;
    client.pump(Duration::from_millis(200)).await;
    let pid = child.id().to_string();
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    client.pump(Duration::from_secs(2)).await;
    assert_eq!(
        client.close_code,
        Some(CloseCode::GoingAway.code()),
        "a close frame, going away"
    );
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit 0, got {status}");
            break;
        }
        assert!(signalled.elapsed() < Duration::from_secs(2), "exits within 2 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
