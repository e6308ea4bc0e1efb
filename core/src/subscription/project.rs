//! Projection: a subscription compiled for one topic of one suite decides, per leaf
//! path, whether the leaf is selected. Projecting a document walks only what is
//! selected; projecting a delta looks at its changed leaves only.

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use super::{FieldSel, Sub};
use crate::changes::Changes;
use crate::document::{Node, Object, Topic};
use crate::hash::Hash;
use crate::schema::Schema;

/// A topic's selection compiled against the suite's schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    /// Everything below.
    All,
    /// Only these keys.
    Fields(FxHashMap<String, Projection>),
    /// A keyed collection: entries by id, else `every` (if any) for all entries.
    Entries {
        /// The selection of entries not listed in `ids`.
        every: Option<Box<Projection>>,
        /// The selection of listed entries.
        ids: FxHashMap<String, Projection>,
    },
}

impl Projection {
    /// Compiles the selection of topic `topic` (the field under a workflow). `ids` on a
    /// non-collection select nothing here; [`Subscription::check`](super::Subscription::check)
    /// reports them.
    pub fn compile(field: &FieldSel, topic: &str, schema: &Schema) -> Option<Projection> {
        compile_field(field, &mut vec![topic.to_owned()], schema)
    }

    /// True when the leaf at `path` (keys below the topic) is selected.
    pub fn selects<S: AsRef<str>>(&self, path: &[S]) -> bool {
        let mut proj = self;
        for key in path {
            proj = match proj {
                Projection::All => return true,
                Projection::Fields(fields) => match fields.get(key.as_ref()) {
                    Some(p) => p,
                    None => return false,
                },
                Projection::Entries { every, ids } => match ids.get(key.as_ref()).or(every.as_deref()) {
                    Some(p) => p,
                    None => return false,
                },
            };
        }
        matches!(proj, Projection::All)
    }

    /// The projection of a topic's value and its projection hash. Walks only what is
    /// selected (all entries of a collection selected as a whole or with `every`).
    pub fn project(&self, topic: &Topic) -> (Value, Hash) {
        let mut hash = Hash::EMPTY;
        let value =
            project_object(topic.root(), self, &mut hash).unwrap_or_else(|| Value::Object(Map::new()));
        (value, hash)
    }

    /// The selection of the top-level entry or field `key` (`None`: not selected).
    pub fn for_entry(&self, key: &str) -> Option<&Projection> {
        match self {
            Projection::All => Some(self),
            Projection::Fields(fields) => fields.get(key),
            Projection::Entries { every, ids } => ids.get(key).or(every.as_deref()),
        }
    }

    /// The top-level keys of `topic` that [`project`](Self::project) visits, for
    /// projecting a big topic a slice at a time ([`super::build::SnapshotBuild`]).
    pub fn entry_keys(&self, topic: &Topic) -> Vec<String> {
        let root = topic.root();
        match self {
            Projection::All | Projection::Entries { every: Some(_), .. } => {
                root.iter().map(|(k, _)| k.to_owned()).collect()
            }
            Projection::Fields(fields) => fields.keys().filter(|k| root.get(k).is_some()).cloned().collect(),
            Projection::Entries { every: None, ids } => {
                ids.keys().filter(|k| root.get(k).is_some()).cloned().collect()
            }
        }
    }

    /// What [`project`](Self::project) puts under the top-level `key` of `topic`
    /// (`None`: nothing).
    pub fn project_entry(&self, topic: &Topic, key: &str) -> Option<Value> {
        let node = topic.root().get(key)?;
        let mut hash = Hash::EMPTY;
        project_node(node, self.for_entry(key)?, &mut hash)
    }

    /// The projection hash alone, without building the projected value.
    pub fn project_hash(&self, topic: &Topic) -> Hash {
        Hash(hash_object(topic.root(), self))
    }

    /// The changed leaves this projection selects, in order. The patch that turns the
    /// old projection into the new one is `project_changes(c).to_patch()`, and the new
    /// projection hash is `old_hash` with these changes applied.
    pub fn project_changes(&self, changes: &Changes) -> Changes {
        Changes {
            leaves: changes
                .leaves
                .iter()
                .filter(|c| self.selects(&c.path[1..]))
                .cloned()
                .collect(),
        }
    }
}

fn compile_field(field: &FieldSel, pattern: &mut Vec<String>, schema: &Schema) -> Option<Projection> {
    if schema.is_collection(pattern) {
        pattern.push("*".to_owned());
        let every = field
            .every
            .as_ref()
            .map(|s| Box::new(compile_sub(s, pattern, schema)));
        let ids: FxHashMap<String, Projection> = field
            .ids
            .iter()
            .map(|(id, s)| (id.clone(), compile_sub(s, pattern, schema)))
            .collect();
        pattern.pop();
        if every.is_none() && ids.is_empty() {
            return None;
        }
        if matches!(every.as_deref(), Some(Projection::All)) {
            return Some(Projection::All);
        }
        Some(Projection::Entries { every, ids })
    } else {
        field.every.as_ref().map(|s| compile_sub(s, pattern, schema))
    }
}

fn compile_sub(sub: &Sub, pattern: &mut Vec<String>, schema: &Schema) -> Projection {
    match sub {
        Sub::All => Projection::All,
        Sub::Fields(fields) => Projection::Fields(
            fields
                .iter()
                .filter_map(|(name, field)| {
                    pattern.push(name.clone());
                    let compiled = compile_field(field, pattern, schema);
                    pattern.pop();
                    Some((name.clone(), compiled?))
                })
                .collect(),
        ),
    }
}

fn project_node(node: &Node, proj: &Projection, hash: &mut Hash) -> Option<Value> {
    match (node, proj) {
        (_, Projection::All) => {
            *hash = hash.plus(node.hash());
            Some(node.to_value())
        }
        (Node::Leaf(_), _) => None,
        (Node::Object(object), proj) => project_object(object, proj, hash),
    }
}

fn project_object(object: &Object, proj: &Projection, hash: &mut Hash) -> Option<Value> {
    let mut out = Map::new();
    let mut put = |key: &str, node: &Node, p: &Projection| {
        if let Some(v) = project_node(node, p, hash) {
            out.insert(key.to_owned(), v);
        }
    };
    match proj {
        Projection::All => {
            *hash = hash.plus(object.hash().0);
            return Some(object.to_value());
        }
        Projection::Fields(fields) => {
            for (name, p) in fields {
                if let Some(node) = object.get(name) {
                    put(name, node, p);
                }
            }
        }
        Projection::Entries {
            every: Some(every),
            ids,
        } => {
            for (key, node) in object.iter() {
                put(key, node, ids.get(key).unwrap_or(every));
            }
        }
        Projection::Entries { every: None, ids } => {
            for (id, p) in ids {
                if let Some(node) = object.get(id) {
                    put(id, node, p);
                }
            }
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn hash_node(node: &Node, proj: &Projection) -> u64 {
    match (node, proj) {
        (_, Projection::All) => node.hash(),
        (Node::Leaf(_), _) => 0,
        (Node::Object(object), proj) => hash_object(object, proj),
    }
}

fn hash_object(object: &Object, proj: &Projection) -> u64 {
    let sum = |pairs: &mut dyn Iterator<Item = (&Node, &Projection)>| {
        pairs.fold(0u64, |acc, (node, p)| acc.wrapping_add(hash_node(node, p)))
    };
    match proj {
        Projection::All => object.hash().0,
        Projection::Fields(fields) => sum(&mut fields.iter().filter_map(|(k, p)| Some((object.get(k)?, p)))),
        Projection::Entries {
            every: Some(every),
            ids,
        } => sum(&mut object.iter().map(|(k, node)| (node, ids.get(k).unwrap_or(every)))),
        Projection::Entries { every: None, ids } => {
            sum(&mut ids.iter().filter_map(|(k, p)| Some((object.get(k)?, p))))
        }
    }
}
