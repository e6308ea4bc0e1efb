//! What a delta did, leaf by leaf: the currency of incremental work. Applying a patch
//! reports its changed leaves; hashes, projections, view notifications and conflation
//! are all computed from these, in O(changed leaves).

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::hash::Hash;

/// A leaf's value together with its leaf hash.
#[derive(Clone, Debug, PartialEq)]
pub struct HashedLeaf {
    /// The value (never an object, never null).
    pub value: Value,
    /// `leaf_hash(path, value)`.
    pub hash: u64,
}

/// One changed leaf: absent → present, present → absent, or a new value.
#[derive(Clone, Debug, PartialEq)]
pub struct LeafChange {
    /// Keys from the suite root; the topic name first.
    pub path: Vec<String>,
    /// The leaf before, if there was one.
    pub old: Option<HashedLeaf>,
    /// The leaf after, if there is one.
    pub new: Option<HashedLeaf>,
}

/// The changed leaves of one or more deltas on one topic, in the order they happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changes {
    /// One entry per changed leaf.
    pub leaves: Vec<LeafChange>,
}

impl Changes {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// How many leaves changed.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// The changes that undo these: each leaf back to its old value, newest first.
    pub fn inverse(&self) -> Changes {
        Changes {
            leaves: self
                .leaves
                .iter()
                .rev()
                .map(|c| LeafChange {
                    path: c.path.clone(),
                    old: c.new.clone(),
                    new: c.old.clone(),
                })
                .collect(),
        }
    }

    /// The change to a node hash that covers all of these leaves.
    pub fn apply_to_hash(&self, hash: Hash) -> Hash {
        self.leaves.iter().fold(hash, |h, c| {
            let h = c.old.as_ref().map_or(h, |o| h.minus(o.hash));
            c.new.as_ref().map_or(h, |n| h.plus(n.hash))
        })
    }

    /// The inverse of [`Changes::apply_to_hash`]: the hash before these changes.
    pub fn unapply_from_hash(&self, hash: Hash) -> Hash {
        self.leaves.iter().fold(hash, |h, c| {
            let h = c.new.as_ref().map_or(h, |n| h.minus(n.hash));
            c.old.as_ref().map_or(h, |o| h.plus(o.hash))
        })
    }

    /// These changes followed by `later`, as one: per leaf the first old value and
    /// the last new one; leaves that end where they began drop out. Exact, unlike
    /// composing RFC 7386 patches, which cannot say "replace this object".
    pub fn then(self, later: Changes) -> Changes {
        let mut index: FxHashMap<Vec<String>, usize> = FxHashMap::default();
        let mut leaves: Vec<LeafChange> = Vec::with_capacity(self.leaves.len() + later.leaves.len());
        for change in self.leaves.into_iter().chain(later.leaves) {
            match index.get(&change.path) {
                Some(&i) => leaves[i].new = change.new,
                None => {
                    index.insert(change.path.clone(), leaves.len());
                    leaves.push(change);
                }
            }
        }
        leaves.retain(|c| c.old.as_ref().map(|l| &l.value) != c.new.as_ref().map(|l| &l.value));
        Changes { leaves }
    }

    /// The merge patch (relative to the topic's value) with exactly this effect on
    /// a document that holds every `old` leaf: removals first, as nulls, then the
    /// new leaves, which overwrite any null or leaf in their way.
    pub fn to_patch(&self) -> Value {
        let mut patch = Map::new();
        for change in self.leaves.iter().filter(|c| c.new.is_none()) {
            set_path(&mut patch, &change.path[1..], Value::Null);
        }
        for change in &self.leaves {
            if let Some(new) = &change.new {
                set_path(&mut patch, &change.path[1..], new.value.clone());
            }
        }
        Value::Object(patch)
    }
}

/// Puts `value` at `path` in a patch, turning anything in the way into an object.
fn set_path(patch: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = patch;
    for key in parents {
        let slot = node
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            unreachable!("made an object just above")
        };
        node = next;
    }
    node.insert(last.clone(), value);
}
