//! Projecting a big topic a slice of entries at a time while it keeps changing, with
//! the result the projection as it was when the build started: changes to entries not
//! yet projected are remembered (their leaves' values before) and undone on those
//! entries when they are projected. So the thread that owns the topic never stops for
//! the whole projection, and the result still matches the projection hash and seq of
//! its start.

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};

use super::project::Projection;
use crate::changes::Changes;
use crate::document::Topic;

/// Changed leaves of one entry (paths from the topic) and their values when the build
/// started (`None`: absent), first change first.
type Undo = Vec<(Vec<String>, Option<Value>)>;

/// A projection being built, a slice at a time (see the module documentation).
#[derive(Debug)]
pub struct SnapshotBuild {
    keys: Vec<String>,
    next: usize,
    done: FxHashSet<String>,
    /// Per entry not yet projected: what changed in it since the start.
    undo: FxHashMap<String, Undo>,
    out: Map<String, Value>,
}

impl SnapshotBuild {
    /// Starts projecting `topic` as it is now.
    pub fn new(proj: &Projection, topic: &Topic) -> SnapshotBuild {
        SnapshotBuild {
            keys: proj.entry_keys(topic),
            next: 0,
            done: FxHashSet::default(),
            undo: FxHashMap::default(),
            out: Map::new(),
        }
    }

    /// Entries still to project.
    pub fn remaining(&self) -> usize {
        self.keys.len() - self.next
    }

    /// The topic changed (leaf paths start with the topic's name): remember what the
    /// build must undo on entries it has not projected yet.
    pub fn record(&mut self, changes: &Changes) {
        for change in &changes.leaves {
            let Some(key) = change.path.get(1) else {
                continue;
            };
            if self.done.contains(key) {
                continue;
            }
            let list = self.undo.entry(key.clone()).or_default();
            if !list.iter().any(|(path, _)| *path == change.path) {
                list.push((change.path.clone(), change.old.as_ref().map(|l| l.value.clone())));
            }
        }
    }

    /// Projects up to `entries` more entries of `topic` (which must have been given
    /// every change since the start through [`record`](Self::record)); true when all
    /// are done.
    pub fn step(&mut self, proj: &Projection, topic: &Topic, entries: usize) -> bool {
        let end = (self.next + entries).min(self.keys.len());
        for i in self.next..end {
            let key = std::mem::take(&mut self.keys[i]);
            let mut value = proj.project_entry(topic, &key);
            if let Some(undo) = self.undo.remove(&key) {
                undo_entry(proj, &mut value, &undo);
            }
            if let Some(value) = value {
                self.out.insert(key.clone(), value);
            }
            self.done.insert(key);
        }
        self.next = end;
        self.next == self.keys.len()
    }

    /// The projection as it was at the start (call once [`step`](Self::step) is done).
    pub fn finish(self) -> Value {
        Value::Object(self.out)
    }
}

/// Puts the selected leaves of one entry back to their values at the start: removals
/// first (pruning objects left empty), then the old values.
fn undo_entry(proj: &Projection, value: &mut Option<Value>, undo: &Undo) {
    let selected = |path: &[String]| proj.selects(&path[1..]);
    for (path, _) in undo.iter().filter(|(p, old)| old.is_none() && selected(p)) {
        let rest = &path[2..];
        if rest.is_empty() {
            *value = None;
        } else if let Some(Value::Object(map)) = value.as_mut() {
            remove_leaf(map, rest);
            if map.is_empty() {
                *value = None;
            }
        }
    }
    for (path, old) in undo.iter().filter(|(p, old)| old.is_some() && selected(p)) {
        let rest = &path[2..];
        if rest.is_empty() {
            value.clone_from(old);
            continue;
        }
        if !matches!(value, Some(Value::Object(_))) {
            *value = Some(Value::Object(Map::new()));
        }
        if let (Some(Value::Object(map)), Some(old)) = (value.as_mut(), old) {
            set_leaf(map, rest, old.clone());
        }
    }
}

fn remove_leaf(map: &mut Map<String, Value>, path: &[String]) {
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.remove(key);
        return;
    }
    if let Some(Value::Object(child)) = map.get_mut(key) {
        remove_leaf(child, rest);
        if child.is_empty() {
            map.remove(key);
        }
    }
}

fn set_leaf(map: &mut Map<String, Value>, path: &[String], leaf: Value) {
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(key.clone(), leaf);
        return;
    }
    let child = map
        .entry(key.clone())
        .and_modify(|v| {
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
        })
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(child) = child {
        set_leaf(child, rest, leaf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use crate::subscription::{Subscription, SubscriptionLimits};
    use serde_json::json;

    fn projection(text: &str) -> Projection {
        let schema = Schema::new([vec!["taskProxies"], vec!["taskProxies", "*", "jobs"]]);
        let sub = Subscription::parse(text, &SubscriptionLimits::default()).expect("valid");
        Projection::compile(
            sub.for_topic("w", "taskProxies").expect("selected"),
            "taskProxies",
            &schema,
        )
        .expect("selects something")
    }

    fn tasks(n: usize) -> Value {
        let entries: Map<String, Value> = (0..n)
            .map(|i| {
                (
                    format!("1/t{i:02}"),
                    json!({"name": format!("t{i}"), "state": "waiting", "x": i, "jobs": {"01": {"state": "submitted"}}}),
                )
            })
            .collect();
        Value::Object(entries)
    }

    /// Patches touching entries before and after the build's cursor: values, new and
    /// removed leaves and entries, a leaf that becomes an object and back.
    fn patches() -> Vec<Value> {
        vec![
            json!({"1/t00": {"state": "running"}, "1/t15": {"state": "running"}}),
            json!({"1/t16": null, "1/t01": null}),
            json!({"1/t17": {"jobs": {"02": {"state": "submitted"}}, "name": null}}),
            json!({"1/new": {"name": "new", "state": "waiting"}}),
            json!({"1/t18": {"state": {"deep": 1}}, "1/t02": {"state": {"deep": 1}}}),
            json!({"1/t18": {"state": "failed"}, "1/t19": {"x": null, "y": 2}}),
            json!({"1/t15": {"state": "succeeded"}, "1/new": null, "1/t16": {"name": "back"}}),
        ]
    }

    #[test]
    fn a_build_across_changes_gives_the_projection_at_its_start() {
        for query in [
            "{ workflows { taskProxies { name state jobs { state } } } }",
            "{ workflows { taskProxies } }",
            r#"{ workflows { taskProxies { state } taskProxies(ids: ["1/t17", "1/t16"]) { name jobs } } }"#,
        ] {
            let proj = projection(query);
            for slice in [1, 3, 7, 100] {
                let mut topic = Topic::from_value("taskProxies", &tasks(20)).expect("an object");
                let want = proj.project(&topic).0;
                let mut build = SnapshotBuild::new(&proj, &topic);
                let mut done = build.step(&proj, &topic, slice);
                for patch in patches() {
                    let changes = topic.apply(&patch).expect("an object");
                    build.record(&changes);
                    if !done {
                        done = build.step(&proj, &topic, slice);
                    }
                }
                while !build.step(&proj, &topic, slice) {}
                assert_eq!(build.finish(), want, "{query}, slices of {slice}");
            }
        }
    }
}
