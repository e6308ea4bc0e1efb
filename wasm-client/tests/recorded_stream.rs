#![cfg(not(target_arch = "wasm32"))]
//! The recorded stream the JS tests play (tests/node/fixtures/stream.json) checks out
//! in the session: every hash verifies and each view ends with the relay's data.

use clonewire_core::SubscriptionLimits;
use clonewire_wasm::{Effects, Session};
use serde_json::{json, Map, Value};

#[path = "common/page_text.rs"]
mod page_text;

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
    let mut session = Session::new(SubscriptionLimits::default());
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
        let effects = session.receive(&step["delta"].to_string());
        assert_eq!(page_text(&effects), expected_text(&effects), "{}", step["delta"]);
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

/// The one JSON text the page gets for a call, expanded as the page's dispatcher does.
fn page_text(effects: &Effects) -> Value {
    page_text::expand(&serde_json::from_str(&effects.to_json()).expect("the page's text is JSON"))
}

/// The same, built from the plain notifications: `{n: [[view, changes]], e: events}`.
fn expected_text(effects: &Effects) -> Value {
    let n: Vec<Value> = effects
        .notifications()
        .iter()
        .map(|n| json!([n.view, n.changes]))
        .collect();
    json!({ "n": n, "e": effects.events })
}

#[test]
fn views_selecting_the_same_leaves_get_equal_patches_in_one_text() {
    let stream = fixture();
    let mut session = Session::new(SubscriptionLimits::default());
    session.opened();
    let a = session
        .add_view("a", stream["views"]["tasks"].as_str().unwrap())
        .unwrap();
    let b = session
        .add_view("b", stream["views"]["tasks"].as_str().unwrap())
        .unwrap();
    session.receive(&stream["workflow"].to_string());
    for frame in stream["initial"].as_array().unwrap() {
        let effects = session.receive(&frame.to_string());
        assert_eq!(page_text(&effects), expected_text(&effects));
    }
    let step = stream["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["delta"]["patch"].to_string().contains("status"))
        .unwrap();
    let effects = session.receive(&step["delta"].to_string());
    let text = page_text(&effects);
    assert_eq!(text, expected_text(&effects));
    let n = text["n"].as_array().unwrap();
    assert_eq!((n.len(), &n[0][0], &n[1][0]), (2, &json!(a), &json!(b)));
    assert_eq!(n[0][1], n[1][1]);
    // One patch in the text, which both views refer to.
    let raw: Value = serde_json::from_str(&effects.to_json()).unwrap();
    assert_eq!(raw["t"][0][3].as_array().map(Vec::len), Some(1), "{raw}");
    assert_eq!(
        raw["n"][0].as_array().unwrap()[1..],
        raw["n"][1].as_array().unwrap()[1..],
        "{raw}"
    );
}
