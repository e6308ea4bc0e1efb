//! Cutting a subscription down to the workflows a client may see, so everything
//! downstream (interning, projection, resume) only ever meets allowed workflows.

use std::collections::{BTreeMap, BTreeSet};

use super::{FieldSel, Subscription};

impl Subscription {
    /// The part of this subscription that touches only the workflows in `allowed`.
    ///
    /// A selection for every workflow becomes the same selection for each allowed id;
    /// ids outside `allowed` are dropped, whether or not such a workflow exists, so
    /// the result (and its normalized text) never depends on which forbidden
    /// workflows exist. Selections within a workflow are kept as they are.
    #[must_use]
    pub fn restrict_workflows(&self, allowed: &BTreeSet<String>) -> Subscription {
        let ids: BTreeMap<String, _> = allowed
            .iter()
            .filter_map(|id| Some((id.clone(), self.workflows.for_id(id)?.clone())))
            .collect();
        Subscription {
            workflows: FieldSel::normalized(None, ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::SubscriptionLimits;

    fn sub(text: &str) -> Subscription {
        Subscription::parse(text, &SubscriptionLimits::default()).expect("valid query")
    }

    fn allowed(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_workflow_becomes_the_allowed_ones() {
        let s = sub("{ workflows { taskProxies { name } } }").restrict_workflows(&allowed(&["a", "c"]));
        assert_eq!(
            s,
            sub(r#"{ workflows(ids: ["a", "c"]) { taskProxies { name } } }"#)
        );
        assert!(s.for_workflow("b").is_none());
    }

    #[test]
    fn forbidden_and_unknown_ids_restrict_alike() {
        let a = allowed(&["a"]);
        let forbidden = sub(r#"{ workflows(ids: ["b"]) { edges } }"#).restrict_workflows(&a);
        let unknown = sub(r#"{ workflows(ids: ["nope"]) { edges } }"#).restrict_workflows(&a);
        assert!(forbidden.is_empty());
        assert_eq!(forbidden.key(), unknown.key());
        assert_eq!(forbidden.key(), Subscription::empty().key());
    }

    #[test]
    fn allowed_selections_are_kept_exactly() {
        let text = r#"{
            workflows { workflow { name } }
            workflows(ids: ["a"]) { taskProxies(ids: ["1/x"]) { status } }
            workflows(ids: ["b"]) { edges }
        }"#;
        let s = sub(text).restrict_workflows(&allowed(&["a", "z"]));
        let original = sub(text);
        assert_eq!(s.for_workflow("a"), original.for_workflow("a"));
        assert_eq!(s.for_workflow("z"), original.for_workflow("z"));
        assert!(s.for_workflow("b").is_none());
        assert_eq!(s.for_topic("a", "edges"), None);
    }

    #[test]
    fn nothing_allowed_is_the_empty_subscription() {
        let s = sub("{ workflows }").restrict_workflows(&BTreeSet::new());
        assert!(s.is_empty());
    }
}
