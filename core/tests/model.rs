//! Documents, deltas and hashes as a suite, relay or browser sees them.

use clonewire_core::{Changes, Document, Hash, Topic};
use serde_json::{json, Value};

fn topic(value: Value) -> Topic {
    Topic::from_value("taskProxies", &value).unwrap()
}

#[test]
fn example_document_has_the_published_topic_hash() {
    let t = topic(json!({"1/foo": {"status": "running", "name": "foo"}, "1/bar": {"status": "waiting"}}));
    assert_eq!(t.hash().to_string(), "0149f998f8252d36");
    assert_eq!(t.recompute_hash(), t.hash());
}

#[test]
fn null_and_empty_objects_mean_absent() {
    let a = topic(json!({"x": {"y": 1, "z": null, "e": {}}}));
    let b = topic(json!({"x": {"y": 1}}));
    assert_eq!(a, b);
    assert_eq!(a.to_value(), json!({"x": {"y": 1}}));
}

#[test]
fn apply_reports_each_changed_leaf_with_old_and_new_values() {
    let mut t = topic(json!({"1/foo": {"status": "waiting", "jobs": {"01": {"state": "submitted"}}}}));
    let changes = t
        .apply(&json!({"1/foo": {"status": "running", "jobs": null}, "1/bar": {"status": "waiting"}}))
        .unwrap();
    let mut seen: Vec<(String, Option<Value>, Option<Value>)> = changes
        .leaves
        .iter()
        .map(|c| {
            (
                c.path.join("."),
                c.old.as_ref().map(|l| l.value.clone()),
                c.new.as_ref().map(|l| l.value.clone()),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("taskProxies.1/bar.status".into(), None, Some(json!("waiting"))),
            (
                "taskProxies.1/foo.jobs.01.state".into(),
                Some(json!("submitted")),
                None
            ),
            (
                "taskProxies.1/foo.status".into(),
                Some(json!("waiting")),
                Some(json!("running"))
            ),
        ]
    );
    assert_eq!(t.hash(), t.recompute_hash());
}

#[test]
fn setting_an_equal_value_is_no_change_and_emptied_objects_are_pruned() {
    let mut t = topic(json!({"a": {"b": 1}, "c": [1, {"d": null}]}));
    assert!(t
        .apply(&json!({"a": {"b": 1}, "c": [1, {"d": null}]}))
        .unwrap()
        .is_empty());
    t.apply(&json!({"a": {"b": null}})).unwrap();
    assert_eq!(
        t.to_value(),
        json!({"c": [1, {"d": null}]}),
        "arrays are opaque leaves"
    );
    assert!(t.at(&["a"]).is_none());
}

#[test]
fn leaves_and_objects_replace_each_other() {
    let mut t = topic(json!({"a": 1}));
    t.apply(&json!({"a": {"b": 2}})).unwrap();
    assert_eq!(t.to_value(), json!({"a": {"b": 2}}));
    t.apply(&json!({"a": 3})).unwrap();
    assert_eq!(t.to_value(), json!({"a": 3}));
    t.apply(&json!({"a": {}})).unwrap();
    assert_eq!(
        t.to_value(),
        json!({}),
        "RFC 7386: {{}} over a leaf leaves an empty object, pruned"
    );
    assert_eq!(t.hash(), Hash::EMPTY);
}

#[test]
fn a_non_object_patch_is_refused_and_changes_nothing() {
    let mut t = topic(json!({"a": 1}));
    let before = t.clone();
    for bad in [json!([1]), json!("x"), json!(3), json!(true)] {
        let err = t.apply(&bad).unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");
        assert_eq!(t, before);
    }
}

#[test]
fn composed_changes_make_one_patch_with_the_same_effect() {
    let start = json!({"a": {"x": 1, "y": 2}, "b": 5});
    let mut t = topic(start.clone());
    let first = t.apply(&json!({"a": 1})).unwrap();
    let second = t.apply(&json!({"a": {"z": 3}, "b": null})).unwrap();
    let both: Changes = first.then(second);
    let mut replay = topic(start);
    replay.apply(&both.to_patch()).unwrap();
    assert_eq!(replay, t, "patch was {}", both.to_patch());
    assert_eq!(
        both.apply_to_hash(topic(json!({"a": {"x": 1, "y": 2}, "b": 5})).hash()),
        t.hash()
    );
}

#[test]
fn documents_apply_per_topic_and_snapshots_replace() {
    let mut doc = Document::new();
    doc.apply("workflow", &json!({"name": "demo", "status": "running"}))
        .unwrap();
    doc.apply("edges", &json!({"e1": {"source": "a", "target": "b"}}))
        .unwrap();
    let changes = doc
        .replace("workflow", &json!({"name": "demo", "status": "paused"}))
        .unwrap();
    assert_eq!(changes.len(), 1, "only the status leaf differs: {changes:?}");
    doc.apply("edges", &Value::Null).unwrap();
    assert_eq!(
        doc.to_value(),
        json!({"workflow": {"name": "demo", "status": "paused"}})
    );
}
