//! Subscriptions as views write them: parse errors, merge, printing, projection.

use clonewire_core::{Projection, Schema, Subscription, SubscriptionLimits, Topic};
use serde_json::json;

fn parse(text: &str) -> Subscription {
    Subscription::parse(text, &SubscriptionLimits::default()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn schema() -> Schema {
    Schema::new([
        vec!["taskProxies"],
        vec!["jobs"],
        vec!["edges"],
        vec!["taskProxies", "*", "outputs"],
    ])
}

#[test]
fn the_protocol_example_parses_and_prints_normalized() {
    let s = parse(
        r#"subscription {
          workflows(ids: ["demo"]) {
            workflow { name status }
            taskProxies { name status firstParent { id } }
            edges
          }
        }"#,
    );
    assert_eq!(
        s.to_string(),
        r#"subscription { workflows(ids: ["demo"]) { edges taskProxies { firstParent { id } name status } workflow { name status } } }"#
    );
    assert_eq!(
        parse(&s.to_string()),
        s,
        "printed text parses back to the same subscription"
    );
    assert_eq!(parse(&s.print(true)), s);
    assert!(s.check(&schema()).is_ok());
}

#[test]
fn equal_subscriptions_written_differently_have_one_key() {
    let a = parse(r#"{ workflows { taskProxies { status name } } }"#);
    let b = parse(r#"subscription { workflows { taskProxies { name } taskProxies { status name } } }"#);
    assert_eq!(a.key(), b.key());
}

#[test]
fn syntax_errors_say_where_and_what() {
    let err = Subscription::parse(
        "subscription {\n  workflows {\n    taskProxies { name \n}",
        &SubscriptionLimits::default(),
    )
    .unwrap_err();
    assert!(err.line.is_some() && err.column.is_some(), "{err:?}");
    assert!(err.to_string().starts_with("line "), "{err}");
}

#[test]
fn semantic_errors_are_reported() {
    let limits = SubscriptionLimits::default();
    let e = Subscription::parse("{ tasks { name } }", &limits).unwrap_err();
    assert!(e.message.contains("`workflows`"), "{e}");
    assert_eq!((e.line, e.column), (Some(1), Some(3)));
    let e = Subscription::parse("{ workflows(names: [\"a\"]) { edges } }", &limits).unwrap_err();
    assert!(e.message.contains("only `ids`"), "{e}");
    let e = parse("{ workflows { workflow(ids: [\"x\"]) { name } } }")
        .check(&schema())
        .unwrap_err();
    assert!(e.message.contains("not a collection"), "{e}");
    let deep = format!("{{ workflows {} }}", "{ a ".repeat(40) + &"}".repeat(40));
    let e = Subscription::parse(&deep, &limits).unwrap_err();
    assert!(e.message.contains("deeper") || e.message.contains("nest"), "{e}");
    let e = Subscription::parse(&"x".repeat(70_000), &limits).unwrap_err();
    assert!(e.message.contains("limit"), "{e}");
    let e = Subscription::parse("query { workflows { edges } }", &limits).unwrap_err();
    assert!(e.message.contains("subscription"), "{e}");
}

#[test]
fn merge_is_the_union_and_keeps_per_id_selections_exact() {
    let a = parse(r#"{ workflows(ids: ["a"]) { taskProxies { name } } }"#);
    let b = parse(r#"{ workflows(ids: ["b"]) { taskProxies { status } } }"#);
    let m = a.merge(&b);
    assert_eq!(
        m.to_string(),
        r#"subscription { workflows(ids: ["a"]) { taskProxies { name } } workflows(ids: ["b"]) { taskProxies { status } } }"#
    );
    assert_eq!(parse(&m.to_string()), m);
    assert!(m.topics("a").contains("taskProxies") && !m.topics("c").contains("taskProxies"));
    let empty = Subscription::empty();
    assert_eq!(parse(&empty.to_string()), empty);
}

#[test]
fn projection_of_documents_and_deltas() {
    let schema = schema();
    let s = parse(r#"{ workflows { taskProxies(ids: ["1/a"]) { status jobs } } }"#);
    let field = s.for_topic("demo", "taskProxies").unwrap();
    let proj = Projection::compile(field, "taskProxies", &schema).unwrap();
    let mut t = Topic::from_value(
        "taskProxies",
        &json!({"1/a": {"status": "running", "name": "a", "jobs": {"01": {"state": "running"}}},
                "1/b": {"status": "waiting"}}),
    )
    .unwrap();
    let (value, hash) = proj.project(&t);
    assert_eq!(
        value,
        json!({"1/a": {"status": "running", "jobs": {"01": {"state": "running"}}}})
    );
    let copy = Topic::from_value("taskProxies", &value).unwrap();
    assert_eq!(
        copy.hash(),
        hash,
        "projection hash is the hash of the projected copy"
    );

    let changes = t
        .apply(&json!({"1/a": {"status": "succeeded", "name": "A"}, "1/b": null}))
        .unwrap();
    let projected = proj.project_changes(&changes);
    assert_eq!(projected.to_patch(), json!({"1/a": {"status": "succeeded"}}));
    assert_eq!(projected.apply_to_hash(hash), proj.project(&t).1);
}
