//! Every selection of one topic in one structure, so a delta is projected for all
//! subscriptions at once: each changed leaf is walked once, down the keys of its path,
//! and the walk meets exactly the selections that pick it. The cost of a delta grows
//! with the selections it touches (and the distinct results), not with how many
//! selections exist.
//!
//! The trie merges the [`Projection`]s inserted into it key by key: a node lists the
//! members whose projection selects everything below it, and has a child per key that
//! some projection names (a field, or an id of a collection) plus one child for "any
//! key" (a collection's `every`). A leaf is selected by a member when the walk meets
//! the member on a node along the leaf's path.
//!
//! Taking the union of "this id" and "any key" is exact only when a projection's
//! selection of a listed id covers its `every` selection, which normalized
//! subscriptions guarantee ([`FieldSel`](super::FieldSel)). A projection that does not
//! (built by hand) is kept aside and asked leaf by leaf, so results are always those
//! of [`Projection::selects`].

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use super::project::Projection;
use crate::changes::Changes;

/// The selections of one topic by many members (e.g. one per distinct subscription).
#[derive(Clone, Debug)]
pub struct SelectionTrie<K> {
    root: Node<K>,
    /// Members whose projection the trie cannot merge exactly, asked one by one.
    aside: Vec<(K, Projection)>,
    /// Every member held.
    members: FxHashSet<K>,
}

#[derive(Clone, Debug)]
struct Node<K> {
    /// Members that select this whole subtree.
    all: Vec<K>,
    /// Children by key (a field name or an entry id).
    keys: FxHashMap<String, Node<K>>,
    /// The child for any key (a collection's selection of every entry).
    any: Option<Box<Node<K>>>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Node {
            all: Vec::new(),
            keys: FxHashMap::default(),
            any: None,
        }
    }
}

impl<K> Node<K> {
    fn is_empty(&self) -> bool {
        self.all.is_empty() && self.keys.is_empty() && self.any.is_none()
    }
}

/// Members that select the same changed leaves: projecting the delta for any of them
/// gives the same changes, `leaves` (indices into [`Changes::leaves`], ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected<K> {
    /// The selected leaves, as indices in the delta's order.
    pub leaves: Vec<usize>,
    /// The members selecting exactly these leaves.
    pub members: Vec<K>,
}

impl<K> Selected<K> {
    /// The projected changes (what [`Projection::project_changes`] gives each member).
    pub fn changes(&self, changes: &Changes) -> Changes {
        Changes {
            leaves: self.leaves.iter().map(|&i| changes.leaves[i].clone()).collect(),
        }
    }
}

impl<K> Default for SelectionTrie<K> {
    fn default() -> Self {
        SelectionTrie {
            root: Node::default(),
            aside: Vec::new(),
            members: FxHashSet::default(),
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> SelectionTrie<K> {
    /// An empty trie.
    pub fn new() -> SelectionTrie<K> {
        SelectionTrie::default()
    }

    /// How many members were inserted (and not removed).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no member is held.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when `member` is held.
    pub fn contains(&self, member: K) -> bool {
        self.members.contains(&member)
    }

    /// Adds `member` selecting `proj`; a member already held is left as it is (remove
    /// it first to change its projection).
    pub fn insert(&mut self, member: K, proj: &Projection) {
        if !self.members.insert(member) {
            return;
        }
        if mergeable(proj) {
            insert(&mut self.root, member, proj);
        } else {
            self.aside.push((member, proj.clone()));
        }
    }

    /// Removes `member`, which was inserted with `proj`.
    pub fn remove(&mut self, member: K, proj: &Projection) {
        if !self.members.remove(&member) {
            return;
        }
        if let Some(i) = self.aside.iter().position(|(m, _)| *m == member) {
            self.aside.swap_remove(i);
        } else {
            remove(&mut self.root, member, proj);
        }
    }

    /// The members that select any of the changed leaves, grouped by the leaves they
    /// select. Members that select none are not listed.
    pub fn select(&self, changes: &Changes) -> Vec<Selected<K>> {
        // Per node met, the leaves that met it (ascending, as visited).
        let mut nodes: Vec<(&[K], Vec<usize>)> = Vec::new();
        let mut index: FxHashMap<*const Node<K>, usize> = FxHashMap::default();
        let mut found: Vec<&Node<K>> = Vec::new();
        for (leaf, change) in changes.leaves.iter().enumerate() {
            found.clear();
            walk(&self.root, change.path.get(1..).unwrap_or_default(), &mut found);
            for node in &found {
                let at = *index.entry(std::ptr::from_ref(*node)).or_insert_with(|| {
                    nodes.push((&node.all, Vec::new()));
                    nodes.len() - 1
                });
                let leaves = &mut nodes[at].1;
                if leaves.last() != Some(&leaf) {
                    leaves.push(leaf);
                }
            }
        }
        let mut out = Self::group(nodes);
        for (member, proj) in &self.aside {
            let leaves: Vec<usize> = changes
                .leaves
                .iter()
                .enumerate()
                .filter(|(_, c)| proj.selects(c.path.get(1..).unwrap_or_default()))
                .map(|(i, _)| i)
                .collect();
            if leaves.is_empty() {
                continue;
            }
            match out.iter_mut().find(|s| s.leaves == leaves) {
                Some(group) => group.members.push(*member),
                None => out.push(Selected {
                    leaves,
                    members: vec![*member],
                }),
            }
        }
        out
    }

    /// Groups members by the union of the leaves of the nodes they are on.
    fn group(mut nodes: Vec<(&[K], Vec<usize>)>) -> Vec<Selected<K>> {
        // Nodes listing the same members merge their leaves (the usual multi-leaf
        // delta: every subscription selects both fields that changed).
        let mut merged: Vec<(&[K], Vec<usize>)> = Vec::with_capacity(nodes.len());
        for (members, leaves) in nodes.drain(..) {
            match merged.iter_mut().find(|(m, _)| *m == members) {
                Some((_, acc)) => acc.extend(leaves),
                None => merged.push((members, leaves)),
            }
        }
        if let [(members, leaves)] = merged.as_mut_slice() {
            leaves.sort_unstable();
            leaves.dedup();
            return vec![Selected {
                leaves: std::mem::take(leaves),
                members: members.to_vec(),
            }];
        }
        // The general case: per member, the union of its nodes' leaves.
        let mut per_member: FxHashMap<K, Vec<usize>> = FxHashMap::default();
        for (members, leaves) in &merged {
            for member in *members {
                per_member.entry(*member).or_default().extend(leaves);
            }
        }
        let mut groups: FxHashMap<Vec<usize>, Vec<K>> = FxHashMap::default();
        for (member, mut leaves) in per_member {
            leaves.sort_unstable();
            leaves.dedup();
            groups.entry(leaves).or_default().push(member);
        }
        let mut out: Vec<Selected<K>> = groups
            .into_iter()
            .map(|(leaves, mut members)| {
                members.sort_unstable();
                Selected { leaves, members }
            })
            .collect();
        out.sort_unstable_by(|a, b| a.leaves.cmp(&b.leaves));
        out
    }
}

/// The nodes along `path` that list members (selecting the whole subtree there).
fn walk<'a, K, S: AsRef<str>>(node: &'a Node<K>, path: &[S], found: &mut Vec<&'a Node<K>>) {
    if !node.all.is_empty() {
        found.push(node);
    }
    let Some((key, rest)) = path.split_first() else {
        return;
    };
    if let Some(child) = node.keys.get(key.as_ref()) {
        walk(child, rest, found);
    }
    if let Some(child) = &node.any {
        walk(child, rest, found);
    }
}

fn insert<K: Copy + Ord>(node: &mut Node<K>, member: K, proj: &Projection) {
    match proj {
        Projection::All => {
            if let Err(at) = node.all.binary_search(&member) {
                node.all.insert(at, member);
            }
        }
        Projection::Fields(fields) => {
            for (key, p) in fields {
                insert(node.keys.entry(key.clone()).or_default(), member, p);
            }
        }
        Projection::Entries { every, ids } => {
            if let Some(p) = every {
                insert(node.any.get_or_insert_with(Box::default), member, p);
            }
            for (key, p) in ids {
                insert(node.keys.entry(key.clone()).or_default(), member, p);
            }
        }
    }
}

/// Removes `member` along `proj`, pruning nodes left empty.
fn remove<K: Copy + Ord>(node: &mut Node<K>, member: K, proj: &Projection) {
    let child = |keys: &mut FxHashMap<String, Node<K>>, key: &str, p: &Projection| {
        if let Some(c) = keys.get_mut(key) {
            remove(c, member, p);
            if c.is_empty() {
                keys.remove(key);
            }
        }
    };
    match proj {
        Projection::All => {
            if let Ok(at) = node.all.binary_search(&member) {
                node.all.remove(at);
            }
        }
        Projection::Fields(fields) => {
            for (key, p) in fields {
                child(&mut node.keys, key, p);
            }
        }
        Projection::Entries { every, ids } => {
            for (key, p) in ids {
                child(&mut node.keys, key, p);
            }
            if let (Some(p), Some(any)) = (every, node.any.as_mut()) {
                remove(any, member, p);
                if any.is_empty() {
                    node.any = None;
                }
            }
        }
    }
}

fn selects_anything(proj: &Projection) -> bool {
    match proj {
        Projection::All => true,
        Projection::Fields(fields) => fields.values().any(selects_anything),
        Projection::Entries { every, ids } => {
            every.as_deref().is_some_and(selects_anything) || ids.values().any(selects_anything)
        }
    }
}

/// True when the trie's union of "this key" and "any key" is exact for `proj`: each
/// listed entry's selection covers the selection of every entry.
fn mergeable(proj: &Projection) -> bool {
    match proj {
        Projection::All => true,
        Projection::Fields(fields) => fields.values().all(mergeable),
        Projection::Entries { every, ids } => {
            every.as_deref().is_none_or(mergeable)
                && ids
                    .values()
                    .all(|p| mergeable(p) && every.as_deref().is_none_or(|e| covers(p, e)))
        }
    }
}

/// True when `a` selects every leaf `b` selects (conservative: false when unsure).
fn covers(a: &Projection, b: &Projection) -> bool {
    match (a, b) {
        (Projection::All, _) => true,
        (_, Projection::All) => false,
        (Projection::Fields(fa), Projection::Fields(fb)) => fb
            .iter()
            .all(|(k, pb)| !selects_anything(pb) || fa.get(k).is_some_and(|pa| covers(pa, pb))),
        (Projection::Entries { every: ea, ids: ia }, Projection::Entries { every: eb, ids: ib }) => {
            let every_ok = match (ea.as_deref(), eb.as_deref()) {
                (_, None) => true,
                (Some(pa), Some(pb)) => covers(pa, pb),
                (None, Some(pb)) => !selects_anything(pb),
            };
            every_ok
                && ia.iter().chain(ib.iter()).all(|(k, _)| {
                    match (ia.get(k).or(ea.as_deref()), ib.get(k).or(eb.as_deref())) {
                        (_, None) => true,
                        (Some(pa), Some(pb)) => covers(pa, pb),
                        (None, Some(pb)) => !selects_anything(pb),
                    }
                })
        }
        (_, b) => !selects_anything(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Topic;
    use crate::schema::Schema;
    use crate::subscription::{Subscription, SubscriptionLimits};
    use serde_json::json;

    const QUERIES: [&str; 8] = [
        "{ workflows { taskProxies { name state } } }",
        "{ workflows { taskProxies { state } } }",
        r#"{ workflows { taskProxies(ids: ["1/a"]) { name } } }"#,
        r#"{ workflows { taskProxies { state } taskProxies(ids: ["1/b"]) { name jobs { state } } } }"#,
        "{ workflows { taskProxies } }",
        "{ workflows { taskProxies { jobs } } }",
        "{ workflows { taskProxies { q7 } } }",
        "{ workflows { taskProxies { jobs { state } } } }",
    ];

    fn schema() -> Schema {
        Schema::new([vec!["taskProxies"], vec!["taskProxies", "*", "jobs"]])
    }

    fn projection(text: &str) -> Projection {
        let sub = Subscription::parse(text, &SubscriptionLimits::default()).expect("valid");
        Projection::compile(
            sub.for_topic("w", "taskProxies").expect("selected"),
            "taskProxies",
            &schema(),
        )
        .expect("selects something")
    }

    fn topic() -> Topic {
        Topic::from_value(
            "taskProxies",
            &json!({
                "1/a": {"name": "a", "state": "waiting", "jobs": {"01": {"state": "submitted"}}},
                "1/b": {"name": "b", "state": "waiting", "jobs": {"01": {"state": "submitted"}}},
            }),
        )
        .expect("an object")
    }

    /// What each member's own projection gives, grouped as the trie groups it.
    fn one_by_one(projs: &[Projection], changes: &Changes) -> Vec<Selected<usize>> {
        let mut out: Vec<Selected<usize>> = Vec::new();
        for (member, proj) in projs.iter().enumerate() {
            let leaves: Vec<usize> = (0..changes.leaves.len())
                .filter(|&i| proj.selects(&changes.leaves[i].path[1..]))
                .collect();
            if leaves.is_empty() {
                continue;
            }
            match out.iter_mut().find(|s| s.leaves == leaves) {
                Some(s) => s.members.push(member),
                None => out.push(Selected {
                    leaves,
                    members: vec![member],
                }),
            }
        }
        out.sort_by(|a, b| a.leaves.cmp(&b.leaves));
        out
    }

    fn sorted(mut v: Vec<Selected<usize>>) -> Vec<Selected<usize>> {
        for s in &mut v {
            s.members.sort_unstable();
        }
        v.sort_by(|a, b| a.leaves.cmp(&b.leaves));
        v
    }

    fn patches() -> Vec<serde_json::Value> {
        vec![
            json!({"1/a": {"state": "running"}}),
            json!({"1/b": {"name": "B", "state": "running"}}),
            json!({"1/a": {"jobs": {"01": {"state": "running"}}}, "1/b": {"state": "failed"}}),
            json!({"1/c": {"name": "c", "state": "waiting", "q7": 1}}),
            json!({"1/a": null}),
            json!({"1/b": {"jobs": {"02": {"state": "submitted"}}}}),
        ]
    }

    /// A trie holding `projs`, member i being `projs[i]`.
    fn trie_of(projs: &[Projection]) -> SelectionTrie<usize> {
        let mut trie = SelectionTrie::new();
        for (member, proj) in projs.iter().enumerate() {
            trie.insert(member, proj);
        }
        trie
    }

    /// Applies every patch to a fresh replica and checks that the trie meets, for each,
    /// exactly the members `projs` (walked one by one) say are touched.
    fn meets_as_one_by_one(trie: &SelectionTrie<usize>, projs: &[Projection]) {
        let mut replica = topic();
        for patch in patches() {
            let changes = replica.apply(&patch).expect("an object");
            assert_eq!(
                sorted(trie.select(&changes)),
                one_by_one(projs, &changes),
                "{patch}"
            );
        }
    }

    #[test]
    fn selects_what_each_projection_selects() {
        let projs: Vec<Projection> = QUERIES.iter().map(|q| projection(q)).collect();
        let trie = trie_of(&projs);
        assert_eq!(trie.len(), QUERIES.len());
        meets_as_one_by_one(&trie, &projs);
        let mut replica = topic();
        for patch in patches() {
            let changes = replica.apply(&patch).expect("an object");
            for group in trie.select(&changes) {
                for member in &group.members {
                    assert_eq!(group.changes(&changes), projs[*member].project_changes(&changes));
                }
            }
        }
    }

    #[test]
    fn removed_members_are_no_longer_met_and_empty_nodes_go() {
        let projs: Vec<Projection> = QUERIES.iter().map(|q| projection(q)).collect();
        let mut trie = trie_of(&projs);
        for (member, proj) in projs.iter().enumerate().filter(|(m, _)| m % 2 == 0) {
            trie.remove(member, proj);
        }
        assert_eq!(trie.len(), QUERIES.len() / 2);
        let kept: Vec<Projection> = projs
            .iter()
            .enumerate()
            .map(|(m, p)| {
                if m % 2 == 0 {
                    Projection::Fields(FxHashMap::default())
                } else {
                    p.clone()
                }
            })
            .collect();
        meets_as_one_by_one(&trie, &kept);
        for (member, proj) in projs.iter().enumerate().filter(|(m, _)| m % 2 == 1) {
            trie.remove(member, proj);
        }
        assert!(trie.is_empty());
        assert!(trie.root.is_empty(), "every node was pruned");
    }

    #[test]
    fn a_listed_entry_narrower_than_every_entry_stays_exact() {
        // Not normalized: entry "1/a" selects less than every entry does.
        let mut ids = FxHashMap::default();
        ids.insert("1/a".to_owned(), Projection::Fields(FxHashMap::default()));
        let mut fields = FxHashMap::default();
        fields.insert("state".to_owned(), Projection::All);
        let narrow = Projection::Entries {
            every: Some(Box::new(Projection::Fields(fields))),
            ids,
        };
        let projs = vec![narrow, projection(QUERIES[1])];
        let mut trie = trie_of(&projs);
        meets_as_one_by_one(&trie, &projs);
        trie.remove(0, &projs[0]);
        assert_eq!(trie.len(), 1);
    }

    #[test]
    fn many_members_with_equal_selections_make_one_group() {
        let mut trie = SelectionTrie::new();
        let projs: Vec<Projection> = (0..1000)
            .map(|i| {
                projection(&format!(
                    "{{ workflows {{ taskProxies {{ name state q{i} }} }} }}"
                ))
            })
            .collect();
        for (member, proj) in projs.iter().enumerate() {
            trie.insert(member, proj);
        }
        let changes = topic()
            .apply(&json!({"1/b": {"name": "B", "state": "running"}}))
            .expect("an object");
        let groups = trie.select(&changes);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].leaves, vec![0, 1]);
        assert_eq!(groups[0].members, (0..1000).collect::<Vec<_>>());
    }
}
