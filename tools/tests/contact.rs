//! `clonewire-sim --contact-dir DIR` as a user runs it: the contact file is there
//! while the suite runs, says where it is, and goes when it stops on a signal.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clonewire_suite::contact::SuiteContact;
use clonewire_suite::{Follower, FollowerConfig};
use serde_json::Value;

fn contact_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clonewire-sim-contact-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Starts the simulator announcing itself in `dir` (made by it), stops it with
/// `signal`, and checks the file on the way.
fn announce_then_stop(signal: &str) {
    let dir = contact_dir(signal);
    let mut child = Command::new(env!("CARGO_BIN_EXE_clonewire-sim"))
        .args([
            "--name",
            "ops/main",
            "--pub",
            "tcp://127.0.0.1:0",
            "--rep",
            "tcp://127.0.0.1:0",
        ])
        .args(["--heartbeat-ms", "100", "--contact-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let printed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let file = dir.join("ops_main.json");
    assert_eq!(printed["contact"], file.to_str().unwrap(), "{printed}");
    let contact = SuiteContact::load(&file).unwrap();
    assert_eq!(contact.name, "ops/main");
    assert_eq!(contact.pid, child.id());
    assert_eq!(contact.pub_endpoint, printed["pub"].as_str().unwrap());
    assert_eq!(contact.rep_endpoint, printed["rep"].as_str().unwrap());
    assert_eq!(contact.curve_public_key, None);

    // What the file says is enough to follow the suite.
    let mut follower =
        Follower::connect(FollowerConfig::new(&contact.pub_endpoint, &contact.rep_endpoint)).unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !follower.is_synced() && Instant::now() < end {
        follower.next_event(Duration::from_millis(20)).unwrap();
    }
    assert!(follower.is_synced());
    assert_eq!(follower.name(), "ops/main");

    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{signal}: {status}");
    assert!(!file.exists(), "{signal}: the contact file outlived the suite");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_removes_the_contact_file() {
    announce_then_stop("-TERM");
}

#[test]
fn sigint_removes_the_contact_file() {
    announce_then_stop("-INT");
}

#[test]
fn a_curve_suite_announces_its_public_key_and_a_bad_folder_is_an_error() {
    let dir = contact_dir("curve");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = clonewire_zmq::sockets::CurveKeyPair::generate().unwrap();
    let secret = dir.join("suite.key");
    std::fs::write(&secret, &keys.secret.0).unwrap();
    let mut perms = std::fs::metadata(&secret).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(&secret, perms).unwrap();
    let sim = clonewire_suite::sim::Simulator::start(clonewire_suite::sim::SimConfig {
        curve_secret_key: Some(clonewire_zmq::sockets::CurveSecretKey::from_file(&secret).unwrap()),
        contact_dir: Some(dir.join("suites")),
        ..clonewire_suite::sim::SimConfig::new("secure")
    })
    .unwrap();
    let file = sim.contact_file().unwrap().to_owned();
    let contact = SuiteContact::load(&file).unwrap();
    assert_eq!(contact.curve_public_key.as_deref(), Some(keys.public.0.as_str()));
    sim.stop();
    assert!(!file.exists());

    let help = Command::new(env!("CARGO_BIN_EXE_clonewire-sim"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--contact-dir <DIR>") && help.contains("docs/discovery.md"),
        "{help}"
    );

    // A folder that cannot be made: a clear error, exit 2, nothing left bound.
    let out = Command::new(env!("CARGO_BIN_EXE_clonewire-sim"))
        .args([
            "--pub",
            "tcp://127.0.0.1:0",
            "--rep",
            "tcp://127.0.0.1:0",
            "--contact-dir",
        ])
        .arg(&secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("contact directory") && err.contains("suite.key"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
