//! Subscriptions (docs/protocol.md, Subscriptions): GraphQL selection sets over the
//! client document `{"workflows": {id: suite_document}}`.
//!
//! - [`parse`](Subscription::parse) turns text into a normalized [`Subscription`];
//! - [`merge`](Subscription::merge) is the union (every leaf either side selects);
//! - [`Display`](std::fmt::Display) prints the normalized text, which is also the
//!   interning key: equal subscriptions print equal text;
//! - [`project`] compiles a subscription against a suite's [`Schema`](crate::Schema)
//!   and projects documents and deltas.

pub mod build;
mod limits;
mod merge;
mod parse;
mod print;
pub mod project;
mod restrict;
pub mod trie;

use std::collections::{BTreeMap, BTreeSet};

pub use limits::SubscriptionLimits;
pub use parse::QueryError;

/// What is selected beneath one node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sub {
    /// The whole subtree (a field without a selection set).
    All,
    /// Only these fields (a selection set); never empty once normalized.
    Fields(BTreeMap<String, FieldSel>),
}

/// The selection of one field. On a keyed collection the selection applies to each
/// entry: `every` to all of them, `ids` to the listed ones (already including
/// `every`, so the effective selection of entry `k` is `ids[k]`, else `every`). On
/// any other field only `every` is used.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldSel {
    /// The selection for every entry (or for the field itself), if any.
    pub every: Option<Sub>,
    /// Selections for entries by id, each a superset of `every`.
    pub ids: BTreeMap<String, Sub>,
}

impl FieldSel {
    /// The effective selection for entry `id`.
    pub fn for_id(&self, id: &str) -> Option<&Sub> {
        self.ids.get(id).or(self.every.as_ref())
    }

    /// True when the field selects nothing at all.
    pub fn is_empty(&self) -> bool {
        self.every.is_none() && self.ids.is_empty()
    }
}

/// A parsed, normalized subscription: the selection of the root `workflows` field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The `workflows` collection's selection.
    pub workflows: FieldSel,
}

/// The topics a subscription wants from one workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topics {
    /// Every topic the suite has.
    All,
    /// Only these topics (possibly none).
    Only(BTreeSet<String>),
}

impl Topics {
    /// True when `topic` is wanted.
    pub fn contains(&self, topic: &str) -> bool {
        match self {
            Topics::All => true,
            Topics::Only(set) => set.contains(topic),
        }
    }
}

impl Subscription {
    /// The empty subscription: selects nothing.
    pub fn empty() -> Subscription {
        Subscription::default()
    }

    /// True when nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    /// The selection of one workflow's suite document, if the subscription touches it.
    pub fn for_workflow(&self, workflow: &str) -> Option<&Sub> {
        self.workflows.for_id(workflow)
    }

    /// The workflows this subscription names by id (`None`: it selects every workflow).
    pub fn named_workflows(&self) -> Option<impl Iterator<Item = &str>> {
        match self.workflows.every {
            Some(_) => None,
            None => Some(self.workflows.ids.keys().map(String::as_str)),
        }
    }

    /// The topics wanted from `workflow`.
    pub fn topics(&self, workflow: &str) -> Topics {
        match self.for_workflow(workflow) {
            None => Topics::Only(BTreeSet::new()),
            Some(Sub::All) => Topics::All,
            Some(Sub::Fields(fields)) => Topics::Only(
                fields
                    .iter()
                    .filter(|(_, f)| !f.is_empty())
                    .map(|(k, _)| k.clone())
                    .collect(),
            ),
        }
    }

    /// The selection of one topic of one workflow, if any.
    pub fn for_topic(&self, workflow: &str, topic: &str) -> Option<&FieldSel> {
        match self.for_workflow(workflow)? {
            Sub::All => Some(&ALL_FIELD),
            Sub::Fields(fields) => fields.get(topic),
        }
    }
}

/// The selection of a field under a whole-subtree selection.
static ALL_FIELD: FieldSel = FieldSel {
    every: Some(Sub::All),
    ids: BTreeMap::new(),
};
