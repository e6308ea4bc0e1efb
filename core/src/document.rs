//! Leaf-set documents (docs/protocol.md, Data model) with hashes kept up to date on
//! every apply. A [`Topic`] is one topic's value; a [`Document`] is a suite's state,
//! topics by name.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::changes::{Changes, HashedLeaf, LeafChange};
use crate::hash::{leaf_hash, Hash};

/// Why a patch was refused. A refused patch changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// A topic's value is always an object, so its patch must be one (or null).
    #[error("a topic's patch must be a JSON object or null, got {0}")]
    NotAnObject(&'static str),
}

/// A node: a leaf value or an object of nodes.
#[derive(Clone, Debug)]
pub enum Node {
    /// A string, number, boolean or array, with its leaf hash.
    Leaf(HashedLeaf),
    /// A non-empty object.
    Object(Object),
}

impl Node {
    /// The node hash: a leaf's hash, or the sum beneath an object.
    pub fn hash(&self) -> u64 {
        match self {
            Node::Leaf(leaf) => leaf.hash,
            Node::Object(object) => object.hash.0,
        }
    }

    /// The node as plain JSON.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Leaf(leaf) => leaf.value.clone(),
            Node::Object(object) => object.to_value(),
        }
    }
}

/// An object node: children by key and the sum of the leaf hashes beneath.
#[derive(Clone, Debug, Default)]
pub struct Object {
    entries: FxHashMap<Box<str>, Node>,
    hash: Hash,
}

impl Object {
    /// The node hash: the sum of every leaf hash beneath.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// True when no leaf is beneath (such an object is never stored).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many children this object has (for a collection: its entries).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A child by key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.get(key)
    }

    /// Children in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    /// The node at `path` below this object.
    pub fn at<P: AsRef<str>>(&self, path: &[P]) -> Option<&Node> {
        let (first, rest) = path.split_first()?;
        let node = self.entries.get(first.as_ref())?;
        match (rest.is_empty(), node) {
            (true, node) => Some(node),
            (false, Node::Object(object)) => object.at(rest),
            (false, Node::Leaf(_)) => None,
        }
    }

    /// The object as plain JSON, keys sorted.
    pub fn to_value(&self) -> Value {
        let sorted: BTreeMap<&str, &Node> = self.iter().collect();
        Value::Object(
            sorted
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_value()))
                .collect(),
        )
    }

    /// Every leaf beneath, with its path (below `prefix`), in no particular order.
    pub fn for_each_leaf(&self, prefix: &mut Vec<String>, f: &mut impl FnMut(&[String], &HashedLeaf)) {
        for (key, node) in &self.entries {
            prefix.push(key.to_string());
            match node {
                Node::Leaf(leaf) => f(prefix, leaf),
                Node::Object(object) => object.for_each_leaf(prefix, f),
            }
            prefix.pop();
        }
    }

    /// The hash recomputed from scratch, rehashing every leaf at `path`. Exists only to
    /// check the incremental hash; never on a hot path.
    pub fn recompute_hash(&self, path: &mut Vec<String>) -> Hash {
        let mut sum = Hash::EMPTY;
        for (key, node) in &self.entries {
            path.push(key.to_string());
            sum = sum.plus(match node {
                Node::Leaf(leaf) => leaf_hash(path, &leaf.value),
                Node::Object(object) => object.recompute_hash(path).0,
            });
            path.pop();
        }
        sum
    }

    /// Merges `patch` into this object (RFC 7386), pruning empty objects and
    /// recording every changed leaf. `path` is this object's path from the suite root.
    fn merge(&mut self, patch: &Map<String, Value>, path: &mut Vec<String>, changes: &mut Vec<LeafChange>) {
        for (key, patch_value) in patch {
            match patch_value {
                Value::Null => {
                    if let Some(old) = self.entries.remove(key.as_str()) {
                        self.hash = self.hash.minus(old.hash());
                        path.push(key.clone());
                        report_removed(old, path, changes);
                        path.pop();
                    }
                }
                Value::Object(inner) => {
                    path.push(key.clone());
                    match self.entries.get_mut(key.as_str()) {
                        Some(Node::Object(child)) => {
                            let before = child.hash;
                            child.merge(inner, path, changes);
                            let (after, empty) = (child.hash, child.is_empty());
                            self.hash = self.hash.minus(before.0).plus(after.0);
                            if empty {
                                self.entries.remove(key.as_str());
                            }
                        }
                        _ => {
                            // A leaf in the way is replaced: the target becomes `{}` first.
                            if let Some(leaf) = self.entries.remove(key.as_str()) {
                                self.hash = self.hash.minus(leaf.hash());
                                report_removed(leaf, path, changes);
                            }
                            let mut child = Object::default();
                            child.merge(inner, path, changes);
                            if !child.is_empty() {
                                self.hash = self.hash.plus(child.hash.0);
                                self.entries.insert(key.as_str().into(), Node::Object(child));
                            }
                        }
                    }
                    path.pop();
                }
                value => {
                    // An unchanged leaf costs a lookup and a comparison, nothing more.
                    let old = match self.entries.get(key.as_str()) {
                        Some(Node::Leaf(leaf)) if &leaf.value == value => continue,
                        Some(Node::Leaf(leaf)) => Some(leaf.hash),
                        Some(Node::Object(_)) | None => None,
                    };
                    // The leaf's path is built once, for its hash and its change.
                    let mut leaf_path = Vec::with_capacity(path.len() + 1);
                    leaf_path.extend(path.iter().cloned());
                    leaf_path.push(key.clone());
                    let new = HashedLeaf {
                        value: value.clone(),
                        hash: leaf_hash(&leaf_path, value),
                    };
                    let old = match (old, self.entries.get_mut(key.as_str())) {
                        (Some(old_hash), Some(Node::Leaf(leaf))) => {
                            self.hash = self.hash.minus(old_hash).plus(new.hash);
                            Some(std::mem::replace(leaf, new.clone()))
                        }
                        _ => {
                            if let Some(object) = self.entries.remove(key.as_str()) {
                                self.hash = self.hash.minus(object.hash());
                                path.push(key.clone());
                                report_removed(object, path, changes);
                                path.pop();
                            }
                            self.hash = self.hash.plus(new.hash);
                            self.entries.insert(key.as_str().into(), Node::Leaf(new.clone()));
                            None
                        }
                    };
                    changes.push(LeafChange {
                        path: leaf_path,
                        old,
                        new: Some(new),
                    });
                }
            }
        }
    }
}

impl Object {
    /// [`Object::merge`] of a patch it may take apart: its keys and values move into
    /// the tree instead of being copied (one copy fewer per changed leaf).
    fn merge_owned(
        &mut self,
        patch: Map<String, Value>,
        path: &mut Vec<String>,
        changes: &mut Vec<LeafChange>,
    ) {
        for (key, patch_value) in patch {
            match patch_value {
                Value::Null => {
                    if let Some(old) = self.entries.remove(key.as_str()) {
                        self.hash = self.hash.minus(old.hash());
                        path.push(key);
                        report_removed(old, path, changes);
                        path.pop();
                    }
                }
                Value::Object(inner) => {
                    match self.entries.get_mut(key.as_str()) {
                        Some(Node::Object(child)) => {
                            let before = child.hash;
                            path.push(key);
                            child.merge_owned(inner, path, changes);
                            let (after, empty) = (child.hash, child.is_empty());
                            self.hash = self.hash.minus(before.0).plus(after.0);
                            if empty {
                                self.entries.remove(path.last().map_or("", String::as_str));
                            }
                        }
                        _ => {
                            path.push(key);
                            let key = path.last().map_or("", String::as_str);
                            // A leaf in the way is replaced: the target becomes `{}` first.
                            if let Some(leaf) = self.entries.remove(key) {
                                self.hash = self.hash.minus(leaf.hash());
                                report_removed(leaf, path, changes);
                            }
                            let mut child = Object::default();
                            child.merge_owned(inner, path, changes);
                            if !child.is_empty() {
                                self.hash = self.hash.plus(child.hash.0);
                                let key = path.last().map_or("", String::as_str);
                                self.entries.insert(key.into(), Node::Object(child));
                            }
                        }
                    }
                    path.pop();
                }
                value => {
                    let old = match self.entries.get(key.as_str()) {
                        Some(Node::Leaf(leaf)) if leaf.value == value => continue,
                        Some(Node::Leaf(leaf)) => Some(leaf.hash),
                        Some(Node::Object(_)) | None => None,
                    };
                    let mut leaf_path = Vec::with_capacity(path.len() + 1);
                    leaf_path.extend(path.iter().cloned());
                    leaf_path.push(key);
                    let hash = leaf_hash(&leaf_path, &value);
                    let new = HashedLeaf { value, hash };
                    let key = leaf_path.last().map_or("", String::as_str);
                    let old = match (old, self.entries.get_mut(key)) {
                        (Some(old_hash), Some(Node::Leaf(leaf))) => {
                            self.hash = self.hash.minus(old_hash).plus(new.hash);
                            Some(std::mem::replace(leaf, new.clone()))
                        }
                        _ => {
                            if let Some(object) = self.entries.remove(key) {
                                self.hash = self.hash.minus(object.hash());
                                report_removed(object, &mut leaf_path.clone(), changes);
                            }
                            self.hash = self.hash.plus(new.hash);
                            self.entries.insert(key.into(), Node::Leaf(new.clone()));
                            None
                        }
                    };
                    changes.push(LeafChange {
                        path: leaf_path,
                        old,
                        new: Some(new),
                    });
                }
            }
        }
    }
}

/// Records every leaf of a removed node as gone.
fn report_removed(node: Node, path: &mut Vec<String>, changes: &mut Vec<LeafChange>) {
    match node {
        Node::Leaf(leaf) => changes.push(LeafChange {
            path: path.clone(),
            old: Some(leaf),
            new: None,
        }),
        Node::Object(object) => {
            for (key, child) in object.entries {
                path.push(key.into());
                report_removed(child, path, changes);
                path.pop();
            }
        }
    }
}

/// Records the leaves that differ between two objects at `path`.
fn diff_objects(old: &Object, new: &Object, path: &mut Vec<String>, changes: &mut Vec<LeafChange>) {
    for (key, old_node) in &old.entries {
        path.push(key.to_string());
        match (old_node, new.entries.get(key)) {
            (_, None) => report_removed(old_node.clone(), path, changes),
            (Node::Leaf(a), Some(Node::Leaf(b))) => {
                if a.value != b.value {
                    changes.push(LeafChange {
                        path: path.clone(),
                        old: Some(a.clone()),
                        new: Some(b.clone()),
                    });
                }
            }
            (Node::Object(a), Some(Node::Object(b))) => {
                // Equal node hashes are taken as equal subtrees, as hash-guided repair does.
                if a.hash != b.hash {
                    diff_objects(a, b, path, changes);
                }
            }
            (_, Some(new_node)) => {
                report_removed(old_node.clone(), path, changes);
                report_added(new_node, path, changes);
            }
        }
        path.pop();
    }
    for (key, new_node) in &new.entries {
        if !old.entries.contains_key(key) {
            path.push(key.to_string());
            report_added(new_node, path, changes);
            path.pop();
        }
    }
}

/// Records every leaf of an added node as new.
fn report_added(node: &Node, path: &mut Vec<String>, changes: &mut Vec<LeafChange>) {
    match node {
        Node::Leaf(leaf) => changes.push(LeafChange {
            path: path.clone(),
            old: None,
            new: Some(leaf.clone()),
        }),
        Node::Object(object) => {
            for (key, child) in &object.entries {
                path.push(key.to_string());
                report_added(child, path, changes);
                path.pop();
            }
        }
    }
}

impl Serialize for Object {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, node) in &self.entries {
            match node {
                Node::Leaf(leaf) => map.serialize_entry(&**key, &leaf.value)?,
                Node::Object(object) => map.serialize_entry(&**key, object)?,
            }
        }
        map.end()
    }
}

/// One topic's value, with its topic hash maintained on every apply.
#[derive(Clone, Debug)]
pub struct Topic {
    name: String,
    root: Object,
    /// Leaves in `root`, kept from every change reported.
    leaves: usize,
}

/// How many leaves `changes` add (positive) or remove (negative), net.
fn net_leaves(changes: &[LeafChange]) -> isize {
    changes
        .iter()
        .map(|c| isize::from(c.new.is_some()) - isize::from(c.old.is_some()))
        .sum()
}

impl Topic {
    /// An empty topic (hash 0).
    pub fn new(name: impl Into<String>) -> Topic {
        Topic {
            name: name.into(),
            root: Object::default(),
            leaves: 0,
        }
    }

    /// A topic holding `value` (nulls and empty objects in it mean absent).
    pub fn from_value(name: impl Into<String>, value: &Value) -> Result<Topic, PatchError> {
        let mut topic = Topic::new(name);
        topic.apply(value)?;
        Ok(topic)
    }

    /// The topic's name (the first key of every path in it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic hash.
    pub fn hash(&self) -> Hash {
        self.root.hash
    }

    /// The topic's value as a tree.
    pub fn root(&self) -> &Object {
        &self.root
    }

    /// The topic's value as plain JSON, keys sorted.
    pub fn to_value(&self) -> Value {
        self.root.to_value()
    }

    /// Applies an RFC 7386 merge patch to the topic's value and reports every changed
    /// leaf with its old and new value and hash. Costs O(size of the patch + leaves it
    /// removes), never O(size of the topic). A `null` patch empties the topic.
    pub fn apply(&mut self, patch: &Value) -> Result<Changes, PatchError> {
        let mut changes = Vec::new();
        let mut path = vec![self.name.clone()];
        match patch {
            Value::Object(map) => self.root.merge(map, &mut path, &mut changes),
            Value::Null => {
                let old = std::mem::take(&mut self.root);
                report_removed(Node::Object(old), &mut path, &mut changes);
            }
            Value::Array(_) => return Err(PatchError::NotAnObject("an array")),
            Value::String(_) => return Err(PatchError::NotAnObject("a string")),
            Value::Number(_) => return Err(PatchError::NotAnObject("a number")),
            Value::Bool(_) => return Err(PatchError::NotAnObject("a boolean")),
        }
        self.count(&changes);
        Ok(Changes { leaves: changes })
    }

    /// Keeps the leaf count in step with changes just made.
    fn count(&mut self, changes: &[LeafChange]) {
        self.leaves = self.leaves.saturating_add_signed(net_leaves(changes));
    }

    /// [`Topic::apply`] of a patch the caller no longer needs: its keys and values
    /// move into the topic rather than being copied, which matters for big patches.
    pub fn apply_owned(&mut self, patch: Value) -> Result<Changes, PatchError> {
        match patch {
            Value::Object(map) => {
                let mut changes = Vec::new();
                let mut path = vec![self.name.clone()];
                self.root.merge_owned(map, &mut path, &mut changes);
                self.count(&changes);
                Ok(Changes { leaves: changes })
            }
            other => self.apply(&other),
        }
    }

    /// Replaces the topic's value wholesale (a snapshot) and reports exactly the
    /// leaves that differ, as if one patch had been applied. Costs O(old + new size).
    pub fn replace(&mut self, value: &Value) -> Result<Changes, PatchError> {
        let fresh = Topic::from_value(self.name.clone(), value)?;
        Ok(self.replace_with(fresh))
    }

    /// Replaces the topic's value with `fresh`'s (already built, e.g. to check its
    /// hash first) and reports exactly the leaves that differ.
    pub fn replace_with(&mut self, fresh: Topic) -> Changes {
        let mut changes = Vec::new();
        diff_objects(
            &self.root,
            &fresh.root,
            &mut vec![self.name.clone()],
            &mut changes,
        );
        self.root = fresh.root;
        self.leaves = fresh.leaves;
        Changes { leaves: changes }
    }

    /// Applies changes computed elsewhere (e.g. a conflated batch) by way of their patch.
    pub fn apply_changes(&mut self, changes: &Changes) -> Changes {
        match self.apply(&changes.to_patch()) {
            Ok(done) => done,
            Err(_) => unreachable!("Changes::to_patch always makes an object"),
        }
    }

    /// The hash recomputed from every leaf: only to check the maintained one.
    pub fn recompute_hash(&self) -> Hash {
        self.root.recompute_hash(&mut vec![self.name.clone()])
    }

    /// The node at `path` below the topic (keys after the topic name).
    pub fn at<P: AsRef<str>>(&self, path: &[P]) -> Option<&Node> {
        self.root.at(path)
    }

    /// How many leaves the topic holds (kept up to date: O(1)).
    pub fn leaf_count(&self) -> usize {
        self.leaves
    }
}

impl PartialEq for Topic {
    /// Two topics are equal when they hold the same leaves.
    fn eq(&self, other: &Topic) -> bool {
        self.name == other.name && self.root.hash == other.root.hash && self.to_value() == other.to_value()
    }
}

/// A suite's whole state: topics by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    topics: BTreeMap<String, Topic>,
}

impl Document {
    /// An empty document.
    pub fn new() -> Document {
        Document::default()
    }

    /// A topic, if it holds anything.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.get(name).filter(|t| !t.root.is_empty())
    }

    /// Topics by name (empty ones included until they are applied to again).
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.values()
    }

    /// Leaves over every topic (O(topics)).
    pub fn leaf_count(&self) -> usize {
        self.topics.values().map(Topic::leaf_count).sum()
    }

    /// Applies a patch to one topic, creating it if needed; an emptied topic is removed.
    pub fn apply(&mut self, topic: &str, patch: &Value) -> Result<Changes, PatchError> {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| Topic::new(topic));
        let changes = entry.apply(patch)?;
        if entry.root.is_empty() {
            self.topics.remove(topic);
        }
        Ok(changes)
    }

    /// Replaces a topic's value wholesale (a snapshot) and returns what changed.
    pub fn replace(&mut self, topic: &str, value: &Value) -> Result<Changes, PatchError> {
        let entry = self
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| Topic::new(topic));
        let changes = entry.replace(value)?;
        if entry.root.is_empty() {
            self.topics.remove(topic);
        }
        Ok(changes)
    }

    /// The whole document as plain JSON, `{topic: value}`.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.topics
                .iter()
                .filter(|(_, t)| !t.root.is_empty())
                .map(|(k, t)| (k.clone(), t.to_value()))
                .collect(),
        )
    }
}
