//! The wasm binding driven through a scripted WebSocket, run by wasm-bindgen-test in
//! Node (`tests/binding.rs`) and in headless Chromium (`tests/browser.rs`).

use std::cell::RefCell;
use std::rc::Rc;

use clonewire_wasm::binding::WasmClient;
use js_sys::{Function, Promise, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

#[path = "../common/page_text.rs"]
mod page_text;

/// The recorded stream the JS tests play too (real projection hashes).
const STREAM: &str = include_str!("../../../tests/node/fixtures/stream.json");

#[wasm_bindgen(inline_js = r#"
export class FakeSocket {
  constructor(url) { this.url = url; this.sent = []; FakeSocket.all.push(this); }
  send(text) { this.sent.push(text); }
  close() { this.closed = true; }
}
FakeSocket.all = [];
export function socket_class() { return FakeSocket; }
export function socket_count() { return FakeSocket.all.length; }
export function last_socket() { return FakeSocket.all[FakeSocket.all.length - 1]; }
export function open(s) { s.onopen && s.onopen({ target: s }); }
export function deliver(s, text) { s.onmessage && s.onmessage({ target: s, data: text }); }
export function lose(s) { s.onclose && s.onclose({ target: s, code: 1006 }); }
export function sent(s) { return JSON.stringify(s.sent); }
export function sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }
"#)]
extern "C" {
    fn socket_class() -> Function;
    fn socket_count() -> u32;
    fn last_socket() -> JsValue;
    fn open(socket: &JsValue);
    fn deliver(socket: &JsValue, text: &str);
    fn lose(socket: &JsValue);
    fn sent(socket: &JsValue) -> String;
    fn sleep(ms: u32) -> Promise;
}

fn stream() -> Value {
    serde_json::from_str(STREAM).expect("fixture")
}

fn sent_messages(socket: &JsValue) -> Vec<Value> {
    let texts: Vec<String> = serde_json::from_str(&sent(socket)).expect("json");
    texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("json"))
        .collect()
}

/// What the client handed its dispatcher, one JSON value per call.
type Batches = Rc<RefCell<Vec<Value>>>;

/// A dispatcher that records the JSON text it is called with.
fn recorder() -> (Function, Batches) {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let sink = calls.clone();
    let closure = Closure::<dyn FnMut(String)>::new(move |json: String| {
        sink.borrow_mut()
            .push(page_text::expand(&serde_json::from_str(&json).expect("json")));
    });
    // Tests only: the closure must outlive the client.
    (closure.into_js_value().unchecked_into(), calls)
}

/// The calls a view's callback would get: its changes from each batch that has any.
fn calls_of(batches: &Batches, view: u32) -> Vec<Value> {
    batches
        .borrow()
        .iter()
        .flat_map(|b| b["n"].as_array().cloned().unwrap_or_default())
        .filter(|entry| entry[0] == view)
        .map(|entry| entry[1].clone())
        .collect()
}

fn options(base_ms: u32) -> JsValue {
    let options = js_sys::Object::new();
    let _ = Reflect::set(&options, &"reconnectBaseMs".into(), &base_ms.into());
    let _ = Reflect::set(&options, &"reconnectMaxMs".into(), &(base_ms * 4).into());
    options.into()
}

fn connected(base_ms: u32) -> (WasmClient, JsValue, Batches) {
    let (dispatcher, batches) = recorder();
    let client = WasmClient::new(
        "ws://relay.test/ws".into(),
        socket_class(),
        options(base_ms),
        dispatcher,
    );
    client.start().expect("start");
    let socket = last_socket();
    open(&socket);
    (client, socket, batches)
}

#[wasm_bindgen_test]
fn each_view_is_called_once_per_message_with_only_its_fields() {
    let stream = stream();
    let (client, socket, batches) = connected(1000);
    let tasks = client
        .view("tasks", stream["views"]["tasks"].as_str().unwrap())
        .unwrap();
    let names = client
        .view("names", stream["views"]["names"].as_str().unwrap())
        .unwrap();
    let subscribes = sent_messages(&socket);
    assert_eq!(
        subscribes.len(),
        2,
        "one subscribe per change of the merged query"
    );
    assert_eq!(subscribes[1]["query"], stream["query"]);

    deliver(&socket, &stream["workflow"].to_string());
    for frame in stream["initial"].as_array().unwrap() {
        deliver(&socket, &frame.to_string());
    }
    let steps = stream["steps"].as_array().unwrap();
    let before = batches.borrow().len();
    for step in steps {
        deliver(&socket, &step["delta"].to_string());
    }
    assert!(
        batches.borrow().len() - before <= steps.len(),
        "at most one call out per frame"
    );
    let tasks_calls = calls_of(&batches, tasks.id());
    let names_calls = calls_of(&batches, names.id());
    // Each call carries one change; the tasks view only ever sees `status`.
    for call in &tasks_calls {
        let changes = call.as_array().unwrap();
        assert_eq!(changes.len(), 1);
        for entry in changes[0]["patch"].as_object().unwrap().values() {
            if let Some(fields) = entry.as_object() {
                assert!(fields.keys().all(|k| k == "status"), "{entry}");
            }
        }
    }
    let status_steps = steps
        .iter()
        .filter(|s| {
            s["delta"]["topic"] == "taskProxies" && s["delta"]["patch"].to_string().contains("status")
        })
        .count();
    assert_eq!(tasks_calls.len(), 1 + status_steps);
    assert!(names_calls.len() < steps.len() + 2);

    let data: Value = serde_json::from_str(&tasks.data()).unwrap();
    let last = steps
        .iter()
        .rev()
        .find(|s| s["delta"]["topic"] == "taskProxies")
        .unwrap();
    let expected = last["snapshot"]["value"].as_object().unwrap();
    let shown = data["workflows"]["demo"]["taskProxies"].as_object().unwrap();
    assert_eq!(shown.len(), expected.len());
    for (id, entry) in expected {
        assert_eq!(shown[id]["status"], entry["status"]);
    }
    let report: Value = serde_json::from_str(&client.inspect()).unwrap();
    assert_eq!(report["counters"]["hashMismatches"], 0);
    client.close();
}

#[wasm_bindgen_test]
fn a_bad_query_throws_a_query_error_with_its_position() {
    let (client, socket, _) = connected(1000);
    let error = client
        .view("bad", "subscription {\n  workflows { taskProxies {\n}")
        .err()
        .expect("refused");
    let name = Reflect::get(&error, &"name".into()).unwrap();
    assert_eq!(name.as_string().as_deref(), Some("QueryError"));
    assert_eq!(Reflect::get(&error, &"line".into()).unwrap().as_f64(), Some(3.0));
    assert!(Reflect::get(&error, &"column".into()).unwrap().as_f64().is_some());
    assert!(
        sent_messages(&socket).is_empty(),
        "the relay never hears a bad query"
    );
    client.close();
}

#[wasm_bindgen_test]
async fn corrupt_data_is_resynced_and_a_lost_connection_resumes() {
    let stream = stream();
    let (client, socket, batches) = connected(5);
    let view = client
        .view("tasks", stream["views"]["tasks"].as_str().unwrap())
        .unwrap();
    deliver(&socket, &stream["workflow"].to_string());
    for frame in stream["initial"].as_array().unwrap() {
        deliver(&socket, &frame.to_string());
    }
    let steps: Vec<&Value> = stream["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["delta"]["topic"] == "taskProxies")
        .collect();
    deliver(&socket, &steps[0]["delta"].to_string());
    let before = calls_of(&batches, view.id()).len();
    let mut bad = steps[1]["delta"].clone();
    bad["hash"] = "00000000deadbeef".into();
    deliver(&socket, &bad.to_string());
    assert_eq!(
        calls_of(&batches, view.id()).len(),
        before,
        "unverified data is not shown"
    );
    let last = sent_messages(&socket).pop().unwrap();
    assert_eq!(last["type"], "resync");
    assert_eq!(last["topic"], "taskProxies");
    deliver(&socket, &steps[1]["snapshot"].to_string());

    let count = socket_count();
    lose(&socket);
    JsFuture::from(sleep(100)).await.unwrap();
    assert_eq!(socket_count(), count + 1, "reconnected after the backoff delay");
    let fresh = last_socket();
    open(&fresh);
    let subscribe = sent_messages(&fresh).remove(0);
    let point = &subscribe["resume"]["demo"]["taskProxies"];
    assert_eq!(point["seq"], steps[1]["delta"]["seq"]);
    assert_eq!(point["hash"], steps[1]["snapshot"]["hash"]);
    client.close();
}
