//! The union of subscriptions: the merged subscription selects every leaf that any of
//! its parts selects, and nothing else.

use std::collections::BTreeMap;

use super::{FieldSel, Sub, Subscription};

impl Subscription {
    /// The union of two subscriptions.
    #[must_use]
    pub fn merge(&self, other: &Subscription) -> Subscription {
        Subscription {
            workflows: self.workflows.union(&other.workflows),
        }
    }

    /// The union of many subscriptions (the empty subscription for none).
    pub fn merge_all<'a>(parts: impl IntoIterator<Item = &'a Subscription>) -> Subscription {
        parts
            .into_iter()
            .fold(Subscription::empty(), |acc, s| acc.merge(s))
    }
}

impl Sub {
    /// The union of two selections.
    #[must_use]
    pub fn union(&self, other: &Sub) -> Sub {
        match (self, other) {
            (Sub::All, _) | (_, Sub::All) => Sub::All,
            (Sub::Fields(a), Sub::Fields(b)) => {
                let mut out = a.clone();
                for (name, field) in b {
                    let merged = match out.get(name) {
                        Some(mine) => mine.union(field),
                        None => field.clone(),
                    };
                    out.insert(name.clone(), merged);
                }
                Sub::Fields(out)
            }
        }
    }
}

/// The union of two optional selections.
fn union_opt(a: Option<&Sub>, b: Option<&Sub>) -> Option<Sub> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b)),
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (None, None) => None,
    }
}

impl FieldSel {
    /// The union of two field selections, normalized.
    #[must_use]
    pub fn union(&self, other: &FieldSel) -> FieldSel {
        let every = union_opt(self.every.as_ref(), other.every.as_ref());
        let mut ids = BTreeMap::new();
        for id in self.ids.keys().chain(other.ids.keys()) {
            if ids.contains_key(id) {
                continue;
            }
            if let Some(sub) = union_opt(self.for_id(id), other.for_id(id)) {
                ids.insert(id.clone(), sub);
            }
        }
        FieldSel::normalized(every, ids)
    }

    /// Builds a field selection in normal form: each id's selection includes `every`,
    /// and ids that select no more than `every` are dropped.
    pub(super) fn normalized(every: Option<Sub>, ids: BTreeMap<String, Sub>) -> FieldSel {
        let ids = ids
            .into_iter()
            .filter_map(|(id, sub)| {
                let sub = union_opt(Some(&sub), every.as_ref())?;
                (Some(&sub) != every.as_ref()).then_some((id, sub))
            })
            .collect();
        FieldSel { every, ids }
    }
}
