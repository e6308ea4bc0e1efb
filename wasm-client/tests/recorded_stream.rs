#![cfg(not(target_arch = "wasm32"))]
//! The recorded stream the JS tests play (tests/node/fixtures/stream.json) checks out
//! in the session: every hash verifies and each view ends with the relay's data.

use clonewire_core::Limits;
use clonewire_wasm::Session;
use serde_json::{json, Map, Value};

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node/fixtures/stream.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn pick(value: &Value, field: &str) -> Value {
    let entries = value.as_object().expect("object");
    Value::Object(
        entries
            .iter()
            .map(|(id, e)| (id.clone(), json!({ field: e[field] })))
            .collect::<Map<_, _>>(),
    )
}

#[test]
fn the_recorded_stream_verifies_and_views_end_with_the_relay_data() {
    let stream = fixture();
    let mut session = Session::new(Limits::default());
    session.opened();
    let tasks = session
        .add_view("tasks", stream["views"]["tasks"].as_str().unwrap())
        .unwrap();
    session
        .add_view("names", stream["views"]["names"].as_str().unwrap())
        .unwrap();
    assert_eq!(session.merged_query(), stream["query"]);
    session.receive(&stream["workflow"].to_string());
    for frame in stream["initial"].as_array().unwrap() {
        session.receive(&frame.to_string());
    }
    let mut last = Value::Null;
    for step in stream["steps"].as_array().unwrap() {
        session.receive(&step["delta"].to_string());
        if step["delta"]["topic"] == "taskProxies" {
            last = step["snapshot"]["value"].clone();
        }
    }
    let counters = session.counters();
    assert_eq!((counters.hash_mismatches, counters.chain_breaks), (0, 0));
    assert_eq!(
        session.view_data(tasks).unwrap()["workflows"]["demo"]["taskProxies"],
        pick(&last, "status")
    );
}
