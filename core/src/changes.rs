//! What a delta did, leaf by leaf: the currency of incremental work. Applying a patch
//! reports its changed leaves; hashes, projections, view notifications and conflation
//! are all computed from these, in O(changed leaves).

use std::collections::BTreeMap;

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
        patch_tree(self.leaves.iter()).to_value()
    }

    /// [`Changes::to_patch`] as JSON text, written straight from the leaves.
    pub fn patch_text(&self) -> String {
        let mut out = Vec::with_capacity(64 * self.leaves.len() + 2);
        write_patch(self.leaves.iter(), &mut out);
        // Only serde_json's output and ASCII punctuation were written.
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A merge patch under construction, borrowing keys and values from the leaves.
enum PatchNode<'a> {
    /// A leaf value, or `None` for a removal (`null`).
    Value(Option<&'a Value>),
    /// An object, keys sorted.
    Object(BTreeMap<&'a str, PatchNode<'a>>),
}

impl PatchNode<'_> {
    fn to_value(&self) -> Value {
        match self {
            PatchNode::Value(value) => value.cloned().unwrap_or(Value::Null),
            PatchNode::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_value()))
                    .collect::<Map<_, _>>(),
            ),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        // Writing serde_json values and strings into a Vec cannot fail.
        match self {
            PatchNode::Value(None) => out.extend_from_slice(b"null"),
            PatchNode::Value(Some(value)) => {
                let _ = serde_json::to_writer(&mut *out, value);
            }
            PatchNode::Object(entries) => {
                out.push(b'{');
                for (i, (key, node)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *out, key);
                    out.push(b':');
                    node.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// The merge patch of `leaves` (relative to the topic) with exactly their effect on a
/// document that holds every `old` leaf: removals first, as nulls, then the new
/// leaves, which overwrite any null or leaf in their way.
fn patch_tree<'a>(leaves: impl Iterator<Item = &'a LeafChange> + Clone) -> PatchNode<'a> {
    let mut root = BTreeMap::new();
    for leaf in leaves.clone().filter(|l| l.new.is_none()) {
        set_path(&mut root, &leaf.path[1..], None);
    }
    for leaf in leaves {
        if let Some(new) = &leaf.new {
            set_path(&mut root, &leaf.path[1..], Some(&new.value));
        }
    }
    PatchNode::Object(root)
}

/// Puts `value` at `path` in a patch, turning anything in the way into an object.
fn set_path<'a>(root: &mut BTreeMap<&'a str, PatchNode<'a>>, path: &'a [String], value: Option<&'a Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for key in parents {
        let slot = node
            .entry(key.as_str())
            .or_insert_with(|| PatchNode::Object(BTreeMap::new()));
        if !matches!(slot, PatchNode::Object(_)) {
            *slot = PatchNode::Object(BTreeMap::new());
        }
        let PatchNode::Object(next) = slot else {
            return;
        };
        node = next;
    }
    node.insert(last.as_str(), PatchNode::Value(value));
}

/// Writes, as JSON text, the patch [`Changes::to_patch`] makes of `leaves` (e.g. the
/// part of a delta one view selects), without building it as a `Value`. Keys come out
/// sorted, as serde_json's `Map` prints them.
pub fn write_patch<'a>(leaves: impl Iterator<Item = &'a LeafChange> + Clone, out: &mut Vec<u8>) {
    patch_tree(leaves).write(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The patch of `leaves` built the plain way: a JSON tree, path by path.
    fn reference(leaves: &[LeafChange]) -> Value {
        fn set(root: &mut Map<String, Value>, path: &[String], value: Value) {
            let Some((last, parents)) = path.split_last() else {
                return;
            };
            let mut node = root;
            for key in parents {
                let slot = node
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(next) = slot else { return };
                node = next;
            }
            node.insert(last.clone(), value);
        }
        let mut root = Map::new();
        for leaf in leaves.iter().filter(|l| l.new.is_none()) {
            set(&mut root, &leaf.path[1..], Value::Null);
        }
        for leaf in leaves {
            if let Some(new) = &leaf.new {
                set(&mut root, &leaf.path[1..], new.value.clone());
            }
        }
        Value::Object(root)
    }

    fn leaf() -> impl Strategy<Value = LeafChange> {
        let key = prop::sample::select(vec!["a", "b", "c", "é\"", "a/b"]);
        (prop::collection::vec(key, 1..4), prop::option::of(0..3i64)).prop_map(|(keys, value)| {
            let mut path = vec!["t".to_owned()];
            path.extend(keys.into_iter().map(str::to_owned));
            let leaf = |v: i64| HashedLeaf {
                value: Value::from(v),
                hash: 0,
            };
            LeafChange {
                path,
                old: Some(leaf(9)),
                new: value.map(leaf),
            }
        })
    }

    proptest! {
        /// Any leaves, even ones no document could produce, give the plain patch, as
        /// a value and as text.
        #[test]
        fn the_patch_is_the_plain_one(leaves in prop::collection::vec(leaf(), 0..24)) {
            let changes = Changes { leaves };
            let want = reference(&changes.leaves);
            prop_assert_eq!(&changes.to_patch(), &want);
            prop_assert_eq!(changes.patch_text(), serde_json::to_string(&want).unwrap());
        }
    }
}
