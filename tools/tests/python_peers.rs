//! Interoperability with peers written in Python from docs/protocol.md alone
//! (`tests/peers/`): a subscriber that verifies our simulator's hashes, and a suite
//! that our tap must follow. They need python3 with pyzmq, xxhash and rfc8785; when
//! those are missing these tests fail and say how to install them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clonewire_suite::sim::{SimConfig, Simulator};
use serde_json::Value;

fn peers() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

/// Fails (never skips) when the Python side cannot run.
fn require_python() {
    let probe = Command::new("python3")
        .args(["-c", "import zmq, xxhash, rfc8785"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 lacks the peer tests' packages ({}); install them with: \
             python3 -m pip install pyzmq xxhash rfc8785",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 is needed for the peer tests ({e}); install python3, then: \
             python3 -m pip install pyzmq xxhash rfc8785"
        ),
    }
}

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn python_subscriber_verifies_the_simulators_hashes() {
    require_python();
    let sim = Simulator::start(SimConfig {
        tasks: 150,
        rate: 300.0,
        heartbeat_ms: 200,
        drop: 0.01,
        ..SimConfig::new("py-checked")
    })
    .unwrap();
    let out = Command::new("python3")
        .arg(peers().join("subscriber.py"))
        .args([sim.pub_endpoint(), sim.rep_endpoint(), "--seconds", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python subscriber failed:\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert!(summary["deltas"].as_u64().unwrap() > 200, "{summary}");
    assert_eq!(summary["mismatches"], 0, "{summary}");
    assert!(summary["heartbeats"].as_u64().unwrap() > 5, "{summary}");
    sim.stop();
}

#[test]
fn tap_follows_and_repairs_a_python_suite() {
    require_python();
    let mut child = Command::new("python3")
        .arg(peers().join("suite.py"))
        .args(["--seconds", "10", "--rate", "100", "--drop-every", "40"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let suite = Reaped(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let endpoints: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new(env!("CARGO_BIN_EXE_clonewire-tap"))
        .args([
            endpoints["pub"].as_str().unwrap(),
            endpoints["rep"].as_str().unwrap(),
            "--check",
            "3",
            "--quiet",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tap failed on the python suite:\n{text}");
    let summary = text.lines().last().unwrap_or_default();
    assert!(summary.ends_with("OK"), "{summary}");
    assert!(summary.contains("mismatches 0"), "{summary}");
    // The Python suite has no replay: its drops must have been repaired by snapshot.
    assert!(!summary.contains("snapshot 0;"), "{summary}");
    assert!(text.contains("by snapshot"), "{text}");
    drop(suite);
}
