//! The simulator as the relay embeds it, and the `clonewire-sim` / `clonewire-tap`
//! binaries as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clonewire_suite::sim::{SimConfig, Simulator};
use clonewire_suite::{Follower, FollowerConfig};
use serde_json::Value;

fn quick(name: &str) -> SimConfig {
    SimConfig {
        tasks: 100,
        rate: 300.0,
        heartbeat_ms: 100,
        ..SimConfig::new(name)
    }
}

#[test]
fn two_simulators_in_one_process_are_each_followed_and_verified() {
    let sims = [
        Simulator::start(quick("alpha")).unwrap(),
        Simulator::start(quick("beta")).unwrap(),
    ];
    assert_ne!(sims[0].pub_endpoint(), sims[1].pub_endpoint());
    let mut followers: Vec<Follower> = sims
        .iter()
        .map(|s| Follower::connect(FollowerConfig::new(s.pub_endpoint(), s.rep_endpoint())).unwrap())
        .collect();
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        for f in &mut followers {
            while f.next_event(Duration::from_millis(5)).unwrap().is_some() {}
        }
    }
    for (f, name) in followers.iter().zip(["alpha", "beta"]) {
        let stats = f.stats();
        assert_eq!(f.name(), name);
        assert!(f.is_synced(), "{name}: {stats:?}");
        assert!(stats.deltas > 100, "{name}: {stats:?}");
        assert_eq!((stats.mismatches, stats.gaps), (0, 0), "{name}: {stats:?}");
        let workflow = f.topic("workflow").unwrap().to_value();
        assert!(
            ["running", "paused"].contains(&workflow["status"].as_str().unwrap_or_default()),
            "{workflow}"
        );
        assert!(f.topic("taskProxies").unwrap().root().len() >= 50);
        assert!(!f.topic("jobs").unwrap().root().is_empty());
        assert!(f.schema().is_collection(&["jobs"]));
        assert!(f.schema().is_collection(&["taskProxies", "x", "jobs"]));
    }
    for sim in sims {
        sim.stop();
    }
}

fn summary_number(summary: &str, label: &str) -> u64 {
    let at = summary
        .find(label)
        .unwrap_or_else(|| panic!("{label:?} in {summary:?}"))
        + label.len();
    summary[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after {label:?} in {summary:?}"))
}

#[test]
fn tap_check_repairs_drops_rides_out_busy_and_follows_restarts() {
    let sim = Simulator::start(SimConfig {
        drop: 0.05,
        busy_every: Some(Duration::from_millis(700)),
        busy_for: Duration::from_millis(300),
        restart_every: Some(Duration::from_millis(1500)),
        ..quick("flaky")
    })
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_clonewire-tap"))
        .args([sim.pub_endpoint(), sim.rep_endpoint(), "--check", "3", "--quiet"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    assert!(out.status.success(), "tap failed: {stdout}");
    assert!(summary.ends_with("OK"), "{summary}");
    assert!(
        summary_number(&summary, "gaps") > 0,
        "drops were noticed: {summary}"
    );
    assert!(summary_number(&summary, "replay") > 0, "{summary}");
    assert_eq!(summary_number(&summary, "mismatches"), 0, "{summary}");
    assert!(
        summary_number(&summary, "epochs") >= 2,
        "the restart was followed: {summary}"
    );
    assert!(stdout.contains("* new epoch"), "{stdout}");
    sim.stop();
}

#[test]
fn sim_help_explains_every_flag_and_bad_flags_exit_2() {
    let sim = env!("CARGO_BIN_EXE_clonewire-sim");
    let help = Command::new(sim).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--name",
        "--pub",
        "--rep",
        "--tasks",
        "--rate",
        "--seed",
        "--busy-every",
        "--busy-for",
        "--drop",
        "--restart-every",
        "--heartbeat-ms",
        "--curve-secret-key-file",
        "--curve-allow-file",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    for bad in [
        vec!["--rate", "fast"],
        vec!["--drop", "2"],
        vec!["--busy-every", "-1"],
        vec!["--nope"],
        // An allow-list means nothing without the suite's own key.
        vec!["--curve-allow-file", "/dev/null"],
    ] {
        let out = Command::new(sim).args(&bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("error"), "{bad:?}");
    }
}

#[test]
fn sim_binary_says_goodbye_and_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clonewire-sim"))
        .args([
            "--pub",
            "tcp://127.0.0.1:0",
            "--rep",
            "tcp://127.0.0.1:0",
            "--name",
            "bye-test",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let endpoints: Value = serde_json::from_str(&first).unwrap();
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_linger(0).unwrap();
    sub.set_subscribe(b"_bye").unwrap();
    sub.set_rcvtimeo(3000).unwrap();
    sub.connect(endpoints["pub"].as_str().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let the subscription arrive
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let bye = sub.recv_multipart(0).expect("a goodbye");
    assert_eq!(bye[0], b"_bye");
    let body: Value = serde_json::from_slice(&bye[1]).unwrap();
    assert!(body["epoch"].is_string());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_still_simulator_publishes_its_first_state_and_then_nothing() {
    let sim = Simulator::start(SimConfig {
        still: true,
        ..quick("still")
    })
    .unwrap();
    // The first state: the workflow, definitions, one delta per live cycle per topic.
    let end = Instant::now() + Duration::from_secs(10);
    let mut first = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        let now = sim.counters().deltas.load(std::sync::atomic::Ordering::Relaxed);
        if now > 0 && now == first {
            break;
        }
        first = now;
    }
    assert!(first > 3, "the first state was published: {first} deltas");
    // At 300 deltas/s a moving simulator would publish about 150 more by now.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sim.counters().deltas.load(std::sync::atomic::Ordering::Relaxed),
        first
    );
    sim.stop();
}
