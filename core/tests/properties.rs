//! Property tests on random documents, patches and subscriptions.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use clonewire_core::subscription::{FieldSel, Sub};
use clonewire_core::{Projection, Schema, Subscription, SubscriptionLimits, Topic};
use proptest::prelude::*;
use serde_json::{Map, Value};

const TOPIC: &str = "t";

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_owned)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i16>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "[a-z\"\\\\é]{0,3}".prop_map(Value::from),
        prop::collection::vec(any::<u8>(), 0..3).prop_map(Value::from),
    ]
}

/// A document value: objects of up to three levels, arrays as leaves.
fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop::collection::btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
    })
}

/// A merge patch: like a document, but with nulls to delete.
fn patch() -> impl Strategy<Value = Value> {
    let node = prop_oneof![4 => leaf(), 1 => Just(Value::Null)].prop_recursive(3, 24, 4, |inner| {
        prop::collection::btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    prop::collection::btree_map(key(), node, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// RFC 7386 as the RFC writes it, then the leaf-set model's reading of the result:
/// nulls and empty objects are absent.
fn reference_merge(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = reference_merge(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

fn pruned(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let kept: Map<_, _> = map
                .iter()
                .filter_map(|(k, v)| pruned(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        other => Some(other.clone()),
    }
}

fn object(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        Value::Object(Map::new())
    }
}

/// A selection below a node; ids are offered everywhere (used only on collections).
fn sub() -> BoxedStrategy<Sub> {
    Just(Sub::All)
        .prop_recursive(3, 16, 3, |inner| {
            prop::collection::btree_map(key(), field(inner), 1..3).prop_map(Sub::Fields)
        })
        .boxed()
}

fn field(inner: BoxedStrategy<Sub>) -> impl Strategy<Value = FieldSel> {
    (
        prop::option::of(inner.clone()),
        prop::collection::btree_map(key(), inner, 0..2),
    )
        .prop_map(|(every, ids)| FieldSel { every, ids }.union(&FieldSel::default()))
        .prop_filter("a field selects something", |f| !f.is_empty())
}

fn subscription() -> impl Strategy<Value = Subscription> {
    field(sub()).prop_map(|topic_sel| {
        let mut fields = BTreeMap::new();
        fields.insert(TOPIC.to_owned(), topic_sel);
        Subscription {
            workflows: FieldSel {
                every: Some(Sub::Fields(fields)),
                ids: BTreeMap::new(),
            },
        }
    })
}

fn schema() -> Schema {
    Schema::new([vec![TOPIC], vec![TOPIC, "*", "c"]])
}

fn compile(s: &Subscription) -> Option<Projection> {
    Projection::compile(s.for_topic("w", TOPIC)?, TOPIC, &schema())
}

fn leaf_paths(t: &Topic) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    t.root()
        .for_each_leaf(&mut Vec::new(), &mut |p, _| out.push(p.to_vec()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_hash_equals_full_recompute(start in tree(), patches in prop::collection::vec(patch(), 1..6)) {
        let mut t = Topic::from_value(TOPIC, &object(start)).unwrap();
        prop_assert_eq!(t.hash(), t.recompute_hash());
        for p in &patches {
            let before = t.hash();
            let changes = t.apply(p).unwrap();
            prop_assert_eq!(t.hash(), t.recompute_hash());
            prop_assert_eq!(changes.apply_to_hash(before), t.hash());
            prop_assert_eq!(t.leaf_count(), leaf_paths(&t).len());
        }
    }

    #[test]
    fn projecting_the_delta_equals_projecting_the_result(start in tree(), p in patch(), s in subscription()) {
        let mut t = Topic::from_value(TOPIC, &object(start)).unwrap();
        let Some(proj) = compile(&s) else { return Ok(()) };
        let (old_value, old_hash) = proj.project(&t);
        prop_assert_eq!(proj.project_hash(&t), old_hash);
        let changes = t.apply(&p).unwrap();
        let projected = proj.project_changes(&changes);
        let mut client = Topic::from_value(TOPIC, &old_value).unwrap();
        prop_assert_eq!(client.hash(), old_hash);
        client.apply(&projected.to_patch()).unwrap();
        let (new_value, new_hash) = proj.project(&t);
        prop_assert_eq!(client.to_value(), new_value);
        prop_assert_eq!(client.hash(), new_hash);
        prop_assert_eq!(projected.apply_to_hash(old_hash), new_hash);
    }

    #[test]
    fn merge_selects_exactly_what_either_side_selects(doc in tree(), a in subscription(), b in subscription()) {
        let t = Topic::from_value(TOPIC, &object(doc)).unwrap();
        let m = a.merge(&b);
        let (pa, pb, pm) = (compile(&a), compile(&b), compile(&m));
        let sel = |p: &Option<Projection>, path: &[String]| p.as_ref().is_some_and(|p| p.selects(path));
        for path in leaf_paths(&t) {
            prop_assert_eq!(sel(&pm, &path), sel(&pa, &path) || sel(&pb, &path), "path {:?} merged {}", path, m);
        }
    }

    #[test]
    fn normalized_text_parses_back_to_the_same_subscription(s in subscription()) {
        let text = s.to_string();
        let back = Subscription::parse(&text, &SubscriptionLimits::default()).unwrap();
        prop_assert_eq!(&back, &s, "{}", text);
        prop_assert_eq!(Subscription::parse(&s.print(true), &SubscriptionLimits::default()).unwrap(), s);
    }

    #[test]
    fn replacing_reports_exactly_the_difference(a in tree(), b in tree()) {
        let (a, b) = (object(a), object(b));
        let mut t = Topic::from_value(TOPIC, &a).unwrap();
        let before = t.hash();
        let changes = t.replace(&b).unwrap();
        let mut patched = Topic::from_value(TOPIC, &a).unwrap();
        patched.apply(&changes.to_patch()).unwrap();
        prop_assert_eq!(patched.to_value(), t.to_value());
        prop_assert_eq!(changes.apply_to_hash(before), t.hash());
        prop_assert_eq!(t.hash(), t.recompute_hash());
        prop_assert_eq!(t.leaf_count(), leaf_paths(&t).len());
    }

    #[test]
    fn composed_changes_equal_applying_patches_in_turn(start in tree(), p1 in patch(), p2 in patch()) {
        let start = object(start);
        let mut t = Topic::from_value(TOPIC, &start).unwrap();
        let c1 = t.apply(&p1).unwrap();
        let c2 = t.apply(&p2).unwrap();
        let mut once = Topic::from_value(TOPIC, &start).unwrap();
        let before = once.hash();
        let composed = c1.then(c2);
        once.apply(&composed.to_patch()).unwrap();
        prop_assert_eq!(once.to_value(), t.to_value());
        prop_assert_eq!(composed.apply_to_hash(before), t.hash());
    }

    #[test]
    fn applying_follows_rfc_7386(start in tree(), p in patch()) {
        let start = object(start);
        let mut t = Topic::from_value(TOPIC, &start).unwrap();
        t.apply(&p).unwrap();
        let want = pruned(&reference_merge(&start, &p)).unwrap_or_else(|| Value::Object(Map::new()));
        prop_assert_eq!(t.to_value(), want);
    }

    #[test]
    fn applying_an_owned_patch_is_applying_it(start in tree(), p1 in patch(), p2 in patch()) {
        let start = object(start);
        let mut borrowed = Topic::from_value(TOPIC, &start).unwrap();
        let mut owned = Topic::from_value(TOPIC, &start).unwrap();
        for p in [p1, p2] {
            let want = borrowed.apply(&p).unwrap();
            let got = owned.apply_owned(p).unwrap();
            prop_assert_eq!(got, want);
            prop_assert_eq!(owned.leaf_count(), leaf_paths(&owned).len());
            prop_assert_eq!(owned.to_value(), borrowed.to_value());
            prop_assert_eq!(owned.hash(), borrowed.hash());
        }
        prop_assert_eq!(owned.hash(), owned.recompute_hash());
    }

    #[test]
    fn the_patch_text_is_the_patch(start in tree(), p1 in patch(), p2 in patch()) {
        let mut t = Topic::from_value(TOPIC, &object(start)).unwrap();
        let changes = t.apply(&p1).unwrap().then(t.apply(&p2).unwrap());
        let text: Value = serde_json::from_str(&changes.patch_text()).unwrap();
        prop_assert_eq!(text, changes.to_patch());
    }
}
