//! The clonewire model of a Cylc store (documented in `docs/cylc.md`).
//!
//! - One topic per element type ([`Kind::topic`](crate::element::Kind::topic)); the keyed topics hold
//!   `{relative id: element}`, the relative id being the part of the Cylc id after
//!   `//` (`1/foo`); the `workflow` topic is the workflow element itself.
//! - An element is its protobuf message in serde form: lowerCamelCase names, unset
//!   fields absent, maps as objects, other repeated fields as arrays (opaque leaves).
//! - The workflow's lists of every element are left out (the topics are those lists);
//!   the other id lists that grow with the workflow ([`Element::id_sets`]) are objects
//!   `{relative id: true}`, so adding or removing one id is a one-leaf change.

use serde::Serialize;
use serde_json::{Map, Value};

use clonewire_core::{Changes, Node, PatchError, Seq, Topic};

use crate::element::Element;

/// The part of a Cylc id after the workflow (`~me/flow//1/foo` → `1/foo`); an id
/// without `//` is returned whole.
pub fn relative_id(id: &str) -> &str {
    id.split_once("//").map_or(id, |(_, rest)| rest)
}

/// A message in its serde form, as a JSON object (an empty one for anything else),
/// without what a topic cannot hold: nulls (e.g. a NaN) and empty objects (e.g. an
/// empty `PbTaskProxyRefs`).
pub fn to_object(message: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(message) {
        Ok(Value::Object(mut map)) => {
            compact(&mut map);
            map
        }
        _ => Map::new(),
    }
}

/// Drops nulls and empty objects from `map`, recursively (arrays are leaves).
fn compact(map: &mut Map<String, Value>) {
    map.retain(|_, value| match value {
        Value::Null => false,
        Value::Object(inner) => {
            compact(inner);
            !inner.is_empty()
        }
        _ => true,
    });
}

/// `value` as a topic holds it: nulls and empty objects dropped, recursively;
/// `None` when nothing is left.
pub fn compact_value(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(mut map) => {
            compact(&mut map);
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other),
    }
}

/// The RFC 7386 merge patch that turns the topic's node `old` into `new` (`None`
/// when they are the same); `new` must be compact ([`compact_value`]). Costs
/// O(size of `new` + keys of `old` beside it): the rest of the topic is not read.
pub fn diff_node(old: Option<&Node>, new: Option<Value>) -> Option<Value> {
    match (old, new) {
        (None, None) => None,
        (Some(_), None) => Some(Value::Null),
        (None, Some(new)) => Some(new),
        (Some(Node::Object(old)), Some(Value::Object(new))) => {
            let mut patch = Map::new();
            for (key, _) in old.iter() {
                if !new.contains_key(key) {
                    patch.insert(key.to_owned(), Value::Null);
                }
            }
            for (key, value) in new {
                if let Some(change) = diff_node(old.get(&key), Some(value)) {
                    patch.insert(key, change);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Some(Node::Leaf(leaf)), Some(new)) if leaf.value == new => None,
        (Some(_), Some(new)) => Some(new),
    }
}

/// An id list as the model's set: `{relative id: true}`.
pub fn id_set(ids: &[String]) -> Map<String, Value> {
    ids.iter()
        .map(|id| (relative_id(id).to_owned(), Value::Bool(true)))
        .collect()
}

/// An element as the model shows it: its serde form plus its id sets.
pub fn element_value<E: Element>(element: &E) -> Value {
    let mut object = to_object(element);
    for (name, ids) in element.id_lists() {
        if !ids.is_empty() {
            object.insert(name.to_owned(), Value::Object(id_set(ids)));
        }
    }
    Value::Object(object)
}

/// True for what a merge patch and a topic treat as absent: null, `{}`.
fn is_absent(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(_) => false,
    }
}

/// The RFC 7386 merge patch that turns `old` into `new` (`None` when they are the
/// same), treating null and `{}` as absent. Arrays and scalars are leaves.
pub fn diff(old: Option<&Value>, new: Option<&Value>) -> Option<Value> {
    match (is_absent(old), is_absent(new)) {
        (true, true) => None,
        (false, true) => Some(Value::Null),
        (true, false) => new.cloned(),
        (false, false) => match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let patch = diff_objects(a, b);
                (!patch.is_empty()).then_some(Value::Object(patch))
            }
            (Some(a), Some(b)) if a == b => None,
            _ => new.cloned(),
        },
    }
}

/// [`diff`] of two objects, as the patch's object (empty when equal).
pub fn diff_objects(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, value) in old {
        if is_absent(new.get(key)) && !is_absent(Some(value)) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, value) in new {
        if let Some(change) = diff(old.get(key), Some(value)) {
            patch.insert(key.clone(), change);
        }
    }
    patch
}

/// One topic's share of a batch: element patches gathered into one merge patch,
/// applied when an element is touched twice (so each apply stays exact) and at the
/// end. Costs O(what the batch touched).
#[derive(Debug, Default)]
pub struct TopicBatch {
    patch: Map<String, Value>,
    changes: Option<Changes>,
}

impl TopicBatch {
    /// Adds `patch` for the element at `key`, first applying what is pending if that
    /// element already has a patch in it.
    pub fn put(&mut self, topic: &mut Topic, key: &str, patch: Value) -> Result<(), PatchError> {
        if self.patch.contains_key(key) {
            self.flush(topic)?;
        }
        self.patch.insert(key.to_owned(), patch);
        Ok(())
    }

    /// Applies what is pending if the element at `key` has a patch in it, so the
    /// topic shows that element as it now is (to diff against it).
    pub fn settle(&mut self, topic: &mut Topic, key: &str) -> Result<(), PatchError> {
        if self.patch.contains_key(key) {
            self.flush(topic)?;
        }
        Ok(())
    }

    /// Applies a patch to the whole topic (the `workflow` topic, which is not keyed).
    pub fn put_whole(&mut self, topic: &mut Topic, patch: &Value) -> Result<(), PatchError> {
        self.flush(topic)?;
        let changes = topic.apply(patch)?;
        self.record(changes);
        Ok(())
    }

    /// Replaces the topic's value (a reload or a re-fetched type).
    pub fn replace(&mut self, topic: &mut Topic, value: &Value) -> Result<(), PatchError> {
        self.flush(topic)?;
        let changes = topic.replace(value)?;
        self.record(changes);
        Ok(())
    }

    /// Applies what is pending to `topic`.
    pub fn flush(&mut self, topic: &mut Topic) -> Result<(), PatchError> {
        if self.patch.is_empty() {
            return Ok(());
        }
        let patch = Value::Object(std::mem::take(&mut self.patch));
        let changes = topic.apply_owned(patch)?;
        self.record(changes);
        Ok(())
    }

    fn record(&mut self, changes: Changes) {
        self.changes = Some(match self.changes.take() {
            None => changes,
            Some(earlier) => earlier.then(changes),
        });
    }

    /// Applies what is pending and returns every leaf the batch changed.
    pub fn finish(mut self, topic: &mut Topic) -> Result<Changes, PatchError> {
        self.flush(topic)?;
        Ok(self.changes.unwrap_or_default())
    }
}

/// The seq a delta made at the scheduler's `time` (seconds since the epoch) gets:
/// whole microseconds. Two relays following one scheduler see the same `time` in
/// the same `all` message, so they number its deltas alike (see `docs/cylc.md`).
/// `None` for a time that is not a finite, non-negative number.
pub fn seq_for_time(time: f64) -> Option<Seq> {
    let micros = (time * 1e6).round();
    (micros.is_finite() && micros >= 0.0 && micros < u64::MAX as f64).then_some(Seq::new(micros as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_ids() {
        assert_eq!(relative_id("~me/flow//1/foo/01"), "1/foo/01");
        assert_eq!(relative_id("~me/a/b//$edge|1/a|1/b"), "$edge|1/a|1/b");
        assert_eq!(relative_id("plain"), "plain");
    }

    #[test]
    fn diff_is_a_merge_patch_from_old_to_new() {
        let old = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": true});
        let new = json!({"a": 1, "b": {"c": [1, 2, 3]}, "e": {"f": false}});
        let patch = diff(Some(&old), Some(&new)).unwrap();
        assert_eq!(
            patch,
            json!({"b": {"c": [1, 2, 3], "d": null}, "e": {"f": false}, "gone": null})
        );
        let mut topic = Topic::from_value("t", &old).unwrap();
        topic.apply(&patch).unwrap();
        assert_eq!(topic.to_value(), new);
        assert_eq!(diff(Some(&new), Some(&new)), None);
        assert_eq!(diff(Some(&json!({})), None), None);
    }

    #[test]
    fn diff_node_is_diff_against_what_the_topic_holds() {
        let old = json!({"e": {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": true, "o": {"p": 1}}});
        let new = json!({"a": 1, "b": {"c": [1, 2, 3], "n": null}, "e": {}, "o": 2});
        let mut topic = Topic::from_value("t", &old).unwrap();
        let patch = diff_node(topic.at(&["e"]), compact_value(new.clone())).unwrap();
        assert_eq!(
            patch,
            json!({"b": {"c": [1, 2, 3], "d": null}, "gone": null, "o": 2})
        );
        topic.apply(&json!({ "e": patch })).unwrap();
        assert_eq!(
            topic.to_value(),
            json!({"e": {"a": 1, "b": {"c": [1, 2, 3]}, "o": 2}})
        );
        assert_eq!(diff_node(topic.at(&["e"]), compact_value(new)), None);
        assert_eq!(diff_node(topic.at(&["e"]), None), Some(Value::Null));
        assert_eq!(diff_node(None, compact_value(json!({"x": {}}))), None);
    }

    #[test]
    fn seqs_are_microseconds() {
        assert_eq!(
            seq_for_time(1_764_311_742.123_456),
            Some(Seq::new(1_764_311_742_123_456))
        );
        assert_eq!(seq_for_time(f64::NAN), None);
        assert_eq!(seq_for_time(-1.0), None);
    }
}
