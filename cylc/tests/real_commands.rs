//! Commands against a real Cylc 8 scheduler (simulation mode), sent as the relay sends
//! them: one `graphql` request of a fixed mutation with its arguments as variables.
//! `queued` and `refused` are the scheduler's own answers, and a held task is seen held
//! in the scheduler's own data.

use std::path::Path;
use std::time::{Duration, Instant};

use clonewire_core::protocol::command::{Command, Outcome};
use clonewire_cylc::command::{outcome, request};
use clonewire_cylc::contact::Contact;
use clonewire_cylc::testing::Sandbox;
use serde_json::{json, Value};

/// A workflow whose second task waits a long time for its first.
const FLOW: &str = "\
[scheduling]
    cycling mode = integer
    initial cycle point = 1
    final cycle point = 1
    [[graph]]
        R1 = \"slow => after\"
[runtime]
    [[slow]]
        [[[simulation]]]
            default run length = PT10M
    [[after]]
";

/// One request on a socket of our own with the workflow's keys; the reply.
fn ask(run: &Path, frame: &[u8]) -> Vec<u8> {
    let contact = Contact::load(run).unwrap();
    let curve = clonewire_cylc::keys::workflow_client(&run.join(".service")).unwrap();
    let ctx = zmq::Context::new();
    let req = clonewire_zmq::sockets::socket(&ctx, zmq::REQ, 4).unwrap();
    clonewire_zmq::sockets::curve_client(&req, &curve).unwrap();
    req.connect(&contact.req_endpoint()).unwrap();
    req.send(frame, 0).unwrap();
    assert_eq!(req.poll(zmq::POLLIN, 20_000).unwrap(), 1, "the scheduler answers");
    req.recv_bytes(0).unwrap()
}

fn run_command(run: &Path, workflow: &str, name: &str, args: Value) -> (Outcome, String) {
    let command = Command::check(name, &args).unwrap();
    outcome(
        command.name,
        &ask(run, &request(&command, workflow, "tester", "here")),
    )
}

/// `isHeld` of task `name` in the scheduler's own data (a GraphQL query).
fn is_held(run: &Path, name: &str) -> Option<bool> {
    let query = json!({
        "command": "graphql",
        "args": {"request_string": "query { workflows { taskProxies { name isHeld } } }", "variables": {}},
        "meta": {"prog": "clonewire-test", "host": "here", "comms_method": "zmq"},
    });
    let reply: Value = serde_json::from_slice(&ask(run, query.to_string().as_bytes())).unwrap();
    reply["data"]["workflows"][0]["taskProxies"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)?["isHeld"]
        .as_bool()
}

fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_real_scheduler_takes_hold_and_release_and_refuses_what_matches_nothing() {
    let mut sandbox = Sandbox::new();
    let run = sandbox.play("cmd/run1", FLOW);
    let workflow = "cmd/run1";
    assert!(
        eventually(Duration::from_secs(30), || is_held(&run, "after").is_some()),
        "the waiting task is in the scheduler's data"
    );

    let (held, message) = run_command(&run, workflow, "hold", json!({"tasks": ["1/after"]}));
    assert_eq!(held, Outcome::Queued, "{message}");
    assert!(
        eventually(Duration::from_secs(15), || is_held(&run, "after") == Some(true)),
        "held, as the scheduler itself reports"
    );
    let (released, message) = run_command(&run, workflow, "release", json!({"tasks": ["1/after"]}));
    assert_eq!(released, Outcome::Queued, "{message}");
    assert!(eventually(Duration::from_secs(15), || is_held(&run, "after") == Some(false)));

    // A value the scheduler's own schema rejects: refused with its message, and the
    // connection is fine for the next command.
    let (bad_point, message) = run_command(&run, workflow, "setHoldPoint", json!({"point": "not a point"}));
    println!("setHoldPoint with a bad point: {bad_point:?}: {message}");
    assert_eq!(bad_point, Outcome::Refused, "{message}");
    assert!(!message.is_empty());

    let (pause, message) = run_command(&run, workflow, "pause", json!({}));
    assert_eq!(pause, Outcome::Queued, "{message}");
    sandbox.stop(workflow);
}
