//! Reads the page's JSON text as the front-end's dispatcher (`js/index.js`) does.

use serde_json::{json, Value};

/// Expands a page text `{t, n, e}` into `{"n": [[view, [change, ...]], ...], "e": [...]}`,
/// each change `{workflow, topic, patch, time?}` as a view's callback gets it.
pub fn expand(text: &Value) -> Value {
    let touched = text["t"].as_array().cloned().unwrap_or_default();
    let views: Vec<Value> = text["n"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|pairs| {
            let pairs = pairs.as_array().expect("a view's entry is an array");
            let changes: Vec<Value> = pairs[1..]
                .chunks(2)
                .map(|pair| {
                    let (t, p) = (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap());
                    let entry = &touched[t as usize];
                    let mut change = json!({
                        "workflow": entry[0],
                        "topic": entry[1],
                        "patch": entry[3][p as usize],
                    });
                    if !entry[2].is_null() {
                        change["time"] = entry[2].clone();
                    }
                    change
                })
                .collect();
            json!([pairs[0], changes])
        })
        .collect();
    json!({ "n": views, "e": text["e"] })
}
