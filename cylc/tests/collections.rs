//! `clonewire_cylc::schema()` covers every keyed collection the mapping produces on a
//! real scheduler's data: every object whose entries are ids (`true`) or elements
//! (objects) is declared, and nothing else that a real store holds is.

mod common;

use clonewire_cylc::{schema, Kind};
use serde_json::{Map, Value};

/// True for an object the mapping made keyed: a set (`{id: true}`) or a map of
/// messages (`{label: {...}}`).
fn is_keyed(object: &Map<String, Value>) -> bool {
    !object.is_empty()
        && (object.values().all(|v| v == &Value::Bool(true)) || object.values().all(Value::is_object))
}

/// Checks every field of `element` (at `path`), collecting the keyed ones' paths.
fn check(element: &Map<String, Value>, path: &[&str], found: &mut Vec<Vec<String>>) {
    let schema = schema();
    for (name, value) in element {
        let Value::Object(object) = value else { continue };
        let mut field: Vec<&str> = path.to_vec();
        field.push(name);
        if is_keyed(object) {
            assert!(
                schema.is_collection(&field),
                "{field:?} is keyed but not in the schema: {value}"
            );
            found.push(field.iter().map(|s| (*s).to_owned()).collect());
        } else {
            assert!(
                !schema.is_collection(&field),
                "{field:?} is in the schema but not keyed: {value}"
            );
        }
    }
}

#[test]
fn the_schema_declares_every_collection_of_a_real_store() {
    let mut replica = common::store("small/entire-before.pb");
    for frame in common::frames("small/all.frames") {
        replica.apply_bytes(&frame).expect("a captured batch applies");
    }
    let after = common::store("small/entire-after.pb");
    let schema = schema();
    let mut found = Vec::new();
    for store in [&replica, &after] {
        for kind in Kind::APPLY_ORDER {
            let Value::Object(topic) = store.topic(kind).to_value() else {
                panic!("{kind:?} is not an object")
            };
            if kind == Kind::Workflow {
                check(&topic, &["workflow"], &mut found);
                continue;
            }
            assert!(schema.is_collection(&[kind.topic()]), "{kind:?}");
            assert!(!topic.is_empty(), "the fixture has no {kind:?}");
            for element in topic.values() {
                let Value::Object(element) = element else {
                    panic!("an element of {kind:?} is not an object")
                };
                check(element, &[kind.topic(), "*"], &mut found);
            }
        }
    }
    // The fixture exercises the sets and the outputs, at least.
    for path in [
        ["taskProxies", "*", "jobs"],
        ["taskProxies", "*", "outputs"],
        ["familyProxies", "*", "childTasks"],
        ["tasks", "*", "proxies"],
    ] {
        assert!(
            found.iter().any(|f| f == &path),
            "{path:?} not seen in the fixture"
        );
    }
}
