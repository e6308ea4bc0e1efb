//! A scripted relay for tests: keeps its own copy of each (workflow, topic) so the
//! hashes it sends are the ones a real relay would send.

#![allow(dead_code)]

use std::collections::BTreeMap;

use clonewire_core::Topic;
use serde_json::{json, Value};

/// Makes relay frames with correct hashes.
#[derive(Default)]
pub struct FakeRelay {
    copies: BTreeMap<(String, String), Topic>,
}

impl FakeRelay {
    pub fn new() -> FakeRelay {
        FakeRelay::default()
    }

    pub fn hello(&self) -> String {
        json!({"type": "hello", "protocol": "clonewire/1", "relay": "fake/0"}).to_string()
    }

    pub fn workflow(&self, workflow: &str, state: &str) -> String {
        json!({
            "type": "workflow", "workflow": workflow, "state": state,
            "schema": {"collections": [["taskProxies"], ["jobs"]]}
        })
        .to_string()
    }

    pub fn snapshot(&mut self, workflow: &str, topic: &str, seq: u64, value: Value) -> String {
        let copy = Topic::from_value(topic, &value).expect("object");
        let hash = copy.hash().to_string();
        self.copies.insert((workflow.into(), topic.into()), copy);
        json!({
            "type": "snapshot", "workflow": workflow, "topic": topic, "epoch": "e1",
            "seq": seq, "hash": hash, "value": value
        })
        .to_string()
    }

    pub fn delta(
        &mut self,
        workflow: &str,
        topic: &str,
        seq: u64,
        prev: Option<u64>,
        patch: Value,
    ) -> String {
        let copy = self
            .copies
            .entry((workflow.into(), topic.into()))
            .or_insert_with(|| Topic::new(topic));
        copy.apply(&patch).expect("object patch");
        let hash = copy.hash().to_string();
        json!({
            "type": "delta", "workflow": workflow, "topic": topic, "epoch": "e1",
            "seq": seq, "prev": prev, "hash": hash, "time": 1.0, "patch": patch
        })
        .to_string()
    }

    /// The relay's copy, as JSON.
    pub fn value(&self, workflow: &str, topic: &str) -> Value {
        self.copies
            .get(&(workflow.into(), topic.into()))
            .map_or(json!({}), Topic::to_value)
    }
}

/// Replaces the `hash` of a frame with a wrong one.
pub fn corrupt_hash(frame: &str) -> String {
    let mut value: Value = serde_json::from_str(frame).expect("json");
    value["hash"] = json!("00000000deadbeef");
    value.to_string()
}
