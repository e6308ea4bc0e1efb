//! Commands on a suite's REP socket, as a relay forwards them: a simulated workflow
//! takes `pause`, `resume`, `hold`, `release`, `trigger`, `kill` and `set`, answers at
//! once (`queued` or `refused`), and the effect shows in its store; a suite without a
//! command handler answers `unsupported`.

use std::time::{Duration, Instant};

use clonewire_suite::{Publisher, PublisherConfig, SimConfig, Simulator};
use serde_json::{json, Value};

/// One request to the REP socket at `endpoint`; its reply.
fn ask(endpoint: &str, request: &Value) -> Value {
    let ctx = zmq::Context::new();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.set_rcvtimeo(10_000).unwrap();
    req.connect(endpoint).unwrap();
    req.send(request.to_string().as_bytes(), 0).unwrap();
    serde_json::from_slice(&req.recv_bytes(0).expect("a reply within 10 s")).unwrap()
}

fn command(endpoint: &str, name: &str, args: Value) -> Value {
    ask(
        endpoint,
        &json!({"op": "command", "command": name, "args": args, "user": "alice"}),
    )
}

/// The suite's current value of `topic`.
fn snapshot(endpoint: &str, topic: &str) -> Value {
    let reply = ask(endpoint, &json!({"op": "snapshot", "topics": [topic]}));
    reply["topics"][topic]["value"].clone()
}

/// Waits (up to 10 s) until `check` holds for the snapshot of `topic`.
fn eventually(endpoint: &str, topic: &str, check: impl Fn(&Value) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if check(&snapshot(endpoint, topic)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_simulated_workflow_does_what_it_is_told_and_says_so_at_once() {
    let mut config = SimConfig::new("commanded");
    config.tasks = 60;
    config.rate = 200.0;
    let sim = Simulator::start(config).unwrap();
    let rep = sim.rep_endpoint().to_owned();
    assert!(eventually(&rep, "taskProxies", |v| v
        .as_object()
        .is_some_and(|m| !m.is_empty())));
    let proxies = snapshot(&rep, "taskProxies");
    let archive = proxies
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, t)| k.ends_with("/archive") && t["state"] == "waiting")
        .map(|(k, _)| k.clone())
        .expect("an archive task waits");

    // hold, then release.
    let reply = command(&rep, "hold", json!({"tasks": [archive]}));
    assert_eq!(reply["outcome"], "queued", "{reply}");
    assert!(eventually(&rep, "taskProxies", |v| v[&archive]["isHeld"] == true));
    let reply = command(&rep, "release", json!({"tasks": [archive]}));
    assert_eq!(reply["outcome"], "queued", "{reply}");
    assert!(eventually(&rep, "taskProxies", |v| v[&archive]
        .get("isHeld")
        .is_none_or(|h| h == false)));

    // pause, then resume.
    assert_eq!(command(&rep, "pause", Value::Null)["outcome"], "queued");
    assert!(eventually(&rep, "workflow", |v| v["status"] == "paused"));
    assert_eq!(command(&rep, "resume", json!({}))["outcome"], "queued");
    assert!(eventually(&rep, "workflow", |v| v["status"] == "running"));

    // trigger: the waiting archive task runs now.
    let reply = command(&rep, "trigger", json!({"tasks": [archive]}));
    assert_eq!(reply["outcome"], "queued", "{reply}");
    assert!(eventually(&rep, "taskProxies", |v| v
        .get(&archive)
        .is_none_or(|t| t["state"] != "waiting")));

    // set: a whole cycle's waiting tasks succeed (a family id and a glob resolve).
    let cycle = archive.split('/').next().unwrap().to_owned();
    let reply = command(
        &rep,
        "set",
        json!({"tasks": [format!("{cycle}/POST")], "outputs": ["succeeded"]}),
    );
    assert_eq!(reply["outcome"], "queued", "{reply}");
    let reply = command(&rep, "kill", json!({"tasks": [format!("{cycle}/model_*")]}));
    assert_eq!(reply["outcome"], "queued", "{reply}");

    // Refused at once, with the reason: ids that match nothing, commands and outputs
    // the simulator does not take, and arguments outside the protocol's table.
    let refused = |name: &str, args: Value| {
        let reply = command(&rep, name, args);
        assert_eq!(reply["outcome"], "refused", "{name}: {reply}");
        reply["message"].as_str().unwrap_or_default().to_owned()
    };
    assert!(refused("hold", json!({"tasks": ["1999/nothing"]})).contains("no task matches"));
    assert!(refused("broadcast", json!({"mode": "Set"})).contains("does not take"));
    assert!(
        refused("set", json!({"tasks": [archive], "outputs": ["x", "y"]})).contains("succeeded or failed")
    );
    assert!(refused("hold", json!({"tasks": "not a list"})).contains("list of strings"));
    assert!(refused("launch", json!({})).contains("unknown command"));

    // Stopped: nothing more is done, and commands say so.
    assert_eq!(command(&rep, "stop", json!({}))["outcome"], "queued");
    assert!(eventually(&rep, "workflow", |v| v["status"] == "stopped"));
    assert!(refused("resume", json!({})).contains("stopped"));
    sim.stop();
}

#[test]
fn a_suite_without_commands_says_unsupported() {
    let suite = Publisher::start(PublisherConfig::new("plain")).unwrap();
    let reply = command(suite.rep_endpoint(), "pause", json!({}));
    assert_eq!(reply["error"], "unsupported", "{reply}");
}

#[test]
fn a_busy_suite_answers_busy_at_once() {
    let mut config = SimConfig::new("busy");
    config.tasks = 20;
    // A slow reload from 200 ms on, for 10 s.
    config.busy_every = Some(Duration::from_millis(200));
    config.busy_for = Duration::from_secs(10);
    let sim = Simulator::start(config).unwrap();
    let rep = sim.rep_endpoint().to_owned();
    std::thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    let reply = command(&rep, "pause", json!({}));
    assert_eq!(reply["error"], "busy", "{reply}");
    assert!(started.elapsed() < Duration::from_secs(1));
    sim.stop();
}
