//! Cylc's merge semantics on small hand-made batches, and a property: whatever the
//! batch, the topics equal the mapping of the store and the checksums are Cylc's.

use std::collections::HashMap;

use clonewire_cylc::checksum::checksum_of;
use clonewire_cylc::proto::{
    AllDeltas, EDeltas, FpDeltas, JDeltas, PbEdge, PbEntireWorkflow, PbFamily, PbFamilyProxy, PbJob,
    PbLogRecord, PbOutput, PbPrerequisite, PbTask, PbTaskProxy, PbWorkflow, TDeltas, TpDeltas, WDeltas,
};
use clonewire_cylc::{CylcStore, Kind};
use proptest::prelude::*;
use serde_json::json;

const W: &str = "~me/flow//";

fn full(rel: &str) -> String {
    format!("{W}{rel}")
}

fn tp(rel: &str, stamp: &str) -> PbTaskProxy {
    PbTaskProxy {
        id: Some(full(rel)),
        stamp: Some(format!("{}@{stamp}", full(rel))),
        ..Default::default()
    }
}

fn fp(rel: &str, stamp: &str) -> PbFamilyProxy {
    PbFamilyProxy {
        id: Some(full(rel)),
        stamp: Some(format!("{}@{stamp}", full(rel))),
        ..Default::default()
    }
}

/// A workflow with task `foo`, family `FAM`, proxies `1/foo` (in `1/FAM`), `1/bar`,
/// an edge `1/foo → 1/bar` and a job `1/foo/01`.
fn base() -> CylcStore {
    let mut first = tp("1/foo", "1");
    first.task = Some(full("$namespace|foo"));
    first.first_parent = Some(full("1/FAM"));
    first.state = Some("waiting".into());
    first.namespace = vec!["root".into(), "foo".into()];
    first.jobs = vec![full("1/foo/01")];
    first.edges = vec![full("$edge|1/foo|1/bar")];
    first.prerequisites = vec![PbPrerequisite {
        expression: Some("c0".into()),
        ..Default::default()
    }];
    first.outputs = HashMap::from([(
        "succeeded".to_owned(),
        PbOutput {
            label: Some("succeeded".into()),
            satisfied: Some(false),
            ..Default::default()
        },
    )]);
    let mut bar = tp("1/bar", "1");
    bar.edges = vec![full("$edge|1/foo|1/bar")];
    let mut fam = fp("1/FAM", "1");
    fam.family = Some(full("$namespace|FAM"));
    fam.first_parent = Some(full("1/root"));
    fam.child_tasks = vec![full("1/foo")];
    fam.state_totals = HashMap::from([("waiting".to_owned(), 1), ("running".to_owned(), 0)]);
    let mut root = fp("1/root", "1");
    root.child_families = vec![full("1/FAM")];
    let snapshot = PbEntireWorkflow {
        workflow: Some(PbWorkflow {
            id: Some("~me/flow".into()),
            stamp: Some("~me/flow@1".into()),
            status: Some("running".into()),
            state_totals: HashMap::from([("waiting".to_owned(), 2)]),
            task_proxies: vec![full("1/foo"), full("1/bar")],
            ..Default::default()
        }),
        tasks: vec![PbTask {
            id: Some(full("$namespace|foo")),
            stamp: Some("t@1".into()),
            proxies: vec![full("1/foo")],
            ..Default::default()
        }],
        task_proxies: vec![first, bar],
        jobs: vec![PbJob {
            id: Some(full("1/foo/01")),
            stamp: Some("j@1".into()),
            messages: vec!["started".into()],
            ..Default::default()
        }],
        families: vec![PbFamily {
            id: Some(full("$namespace|FAM")),
            stamp: Some("f@1".into()),
            proxies: vec![full("1/FAM")],
            ..Default::default()
        }],
        family_proxies: vec![fam, root],
        edges: vec![PbEdge {
            id: Some(full("$edge|1/foo|1/bar")),
            source: Some(full("1/foo")),
            target: Some(full("1/bar")),
            ..Default::default()
        }],
    };
    CylcStore::from_entire_workflow(&snapshot).unwrap()
}

fn value(store: &CylcStore, kind: Kind) -> serde_json::Value {
    store.topic(kind).to_value()
}

/// The invariants every batch keeps.
fn assert_consistent(store: &CylcStore) {
    for kind in Kind::APPLY_ORDER {
        assert_eq!(
            store.topic(kind).to_value(),
            store.topic_value(kind),
            "{}",
            kind.topic()
        );
        assert_eq!(store.topic(kind).hash(), store.topic(kind).recompute_hash());
    }
    let proxies = store.to_entire_workflow().task_proxies;
    let mut stamps: Vec<&str> = proxies.iter().map(|p| p.stamp()).collect();
    stamps.sort_unstable();
    assert_eq!(store.checksum(Kind::TaskProxies), Some(checksum_of(stamps)));
}

fn tp_batch(added: Vec<PbTaskProxy>, updated: Vec<PbTaskProxy>, pruned: Vec<String>) -> AllDeltas {
    AllDeltas {
        task_proxies: Some(TpDeltas {
            time: Some(2.0),
            added,
            updated,
            pruned,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn updates_append_except_to_the_fields_cylc_clears() {
    let mut store = base();
    let mut update = tp("1/foo", "2");
    update.state = Some("running".into());
    update.namespace = vec!["extra".into()];
    update.prerequisites = vec![PbPrerequisite {
        expression: Some("c1".into()),
        ..Default::default()
    }];
    update.outputs = HashMap::from([(
        "started".to_owned(),
        PbOutput {
            label: Some("started".into()),
            satisfied: Some(true),
            ..Default::default()
        },
    )]);
    update.jobs = vec![full("1/foo/01"), full("1/foo/02")];
    let applied = store
        .apply_deltas(tp_batch(vec![], vec![update], vec![]))
        .unwrap();
    let proxy = &value(&store, Kind::TaskProxies)["1/foo"];
    assert_eq!(proxy["state"], "running", "scalars overwrite");
    assert_eq!(
        proxy["namespace"],
        json!(["root", "foo", "extra"]),
        "repeated fields append"
    );
    assert_eq!(
        proxy["prerequisites"],
        json!([{"expression": "c1"}]),
        "prerequisites are cleared first"
    );
    assert_eq!(
        proxy["outputs"]["succeeded"]["satisfied"], false,
        "maps merge by key"
    );
    assert_eq!(proxy["outputs"]["started"]["satisfied"], true);
    assert_eq!(
        proxy["jobs"],
        json!({"1/foo/01": true, "1/foo/02": true}),
        "id sets take no copies"
    );
    let patch = applied.changes("taskProxies").unwrap().to_patch();
    assert_eq!(
        patch["1/foo"]["jobs"],
        json!({"1/foo/02": true}),
        "one key added: {patch}"
    );
    assert_consistent(&store);

    // Jobs' messages and family proxies' state totals are replaced too.
    let batch = AllDeltas {
        jobs: Some(JDeltas {
            updated: vec![PbJob {
                id: Some(full("1/foo/01")),
                stamp: Some("j@2".into()),
                messages: vec!["succeeded".into()],
                ..Default::default()
            }],
            ..Default::default()
        }),
        family_proxies: Some(FpDeltas {
            updated: vec![PbFamilyProxy {
                state_totals: HashMap::from([("succeeded".to_owned(), 1)]),
                ..fp("1/FAM", "2")
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    store.apply_deltas(batch).unwrap();
    assert_eq!(
        value(&store, Kind::Jobs)["1/foo/01"]["messages"],
        json!(["succeeded"])
    );
    assert_eq!(
        value(&store, Kind::FamilyProxies)["1/FAM"]["stateTotals"],
        json!({"succeeded": 1})
    );
    assert_consistent(&store);
}

#[test]
fn pruning_removes_the_id_from_its_parents() {
    let mut store = base();
    let mut batch = tp_batch(vec![], vec![], vec![full("1/foo")]);
    batch.edges = Some(EDeltas {
        pruned: vec![full("$edge|1/foo|1/bar")],
        ..Default::default()
    });
    batch.family_proxies = Some(FpDeltas {
        pruned: vec![full("1/FAM")],
        ..Default::default()
    });
    let applied = store.apply_deltas(batch).unwrap();
    assert!(value(&store, Kind::TaskProxies).get("1/foo").is_none());
    assert!(
        value(&store, Kind::TaskProxies)["1/bar"].get("edges").is_none(),
        "the edge left its target"
    );
    assert!(
        value(&store, Kind::Tasks)["$namespace|foo"]
            .get("proxies")
            .is_none(),
        "the proxy left its task"
    );
    assert!(value(&store, Kind::Families)["$namespace|FAM"]
        .get("proxies")
        .is_none());
    assert!(value(&store, Kind::FamilyProxies)["1/root"]
        .get("childFamilies")
        .is_none());
    assert!(value(&store, Kind::Edges).as_object().unwrap().is_empty() || store.len(Kind::Edges) == 0);
    let tasks = applied.changes("tasks").unwrap();
    assert_eq!(tasks.len(), 1, "one leaf: {:?}", tasks.to_patch());
    assert_eq!(
        tasks.to_patch(),
        json!({"$namespace|foo": {"proxies": {"1/foo": null}}})
    );
    assert_consistent(&store);
}

#[test]
fn an_element_already_held_is_skipped_by_its_stamp() {
    let mut store = base();
    let mut same = tp("1/foo", "1");
    same.namespace = vec!["would-append".into()];
    let applied = store
        .apply_deltas(tp_batch(vec![tp("1/bar", "1")], vec![same], vec![]))
        .unwrap();
    assert!(applied.topics.is_empty(), "{:?}", applied.topics);
    assert_eq!(
        value(&store, Kind::TaskProxies)["1/foo"]["namespace"],
        json!(["root", "foo"])
    );
    // An update of an element not held is ignored, as Cylc does.
    let applied = store
        .apply_deltas(tp_batch(vec![], vec![tp("9/ghost", "2")], vec![]))
        .unwrap();
    assert!(applied.topics.is_empty());
    assert_consistent(&store);
}

#[test]
fn reloaded_resets_a_type() {
    let mut store = base();
    let mut batch = tp_batch(vec![tp("2/new", "5")], vec![tp("1/foo", "5")], vec![]);
    if let Some(d) = &mut batch.task_proxies {
        d.reloaded = Some(true);
    }
    let applied = store.apply_deltas(batch).unwrap();
    let proxies = value(&store, Kind::TaskProxies);
    assert_eq!(
        proxies.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["2/new"]
    );
    assert!(applied
        .changes("taskProxies")
        .unwrap()
        .leaves
        .iter()
        .any(|c| c.path[1] == "1/foo"));
    assert_consistent(&store);
}

#[test]
fn workflow_updates_replace_state_fields_and_cap_log_records() {
    let mut store = base();
    for i in 0..12 {
        let batch = AllDeltas {
            workflow: Some(WDeltas {
                updated: Some(PbWorkflow {
                    stamp: Some(format!("~me/flow@{}", i + 2)),
                    states_updated: Some(true),
                    states: vec!["running".into()],
                    log_records: vec![PbLogRecord {
                        level: Some("INFO".into()),
                        message: Some(format!("m{i}")),
                    }],
                    task_proxies: vec![full(&format!("{i}/x"))],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        store.apply_deltas(batch).unwrap();
    }
    let workflow = value(&store, Kind::Workflow);
    assert!(
        workflow.get("stateTotals").is_none(),
        "states_updated clears the totals: {workflow}"
    );
    assert_eq!(workflow["states"], json!(["running"]));
    let records = workflow["logRecords"].as_array().unwrap();
    assert_eq!(records.len(), 10);
    assert_eq!(records[0]["message"], "m2");
    assert!(
        store.workflow().task_proxies.is_empty(),
        "element lists are not kept"
    );
    assert_consistent(&store);
}

#[test]
fn a_wrong_checksum_is_reported_for_its_type_only() {
    let mut store = base();
    let mut batch = tp_batch(vec![tp("2/a", "3")], vec![], vec![]);
    if let Some(d) = &mut batch.task_proxies {
        d.checksum = Some(7);
    }
    batch.tasks = Some(TDeltas {
        checksum: Some(i64::from(store.checksum(Kind::Tasks).unwrap())),
        ..Default::default()
    });
    let applied = store.apply_deltas(batch).unwrap();
    assert_eq!(applied.mismatches().collect::<Vec<_>>(), vec![Kind::TaskProxies]);
    assert_eq!(applied.checks.len(), 2);
}

/// One random operation on task proxies `0..6` of cycle 1.
#[derive(Clone, Debug)]
enum Op {
    Add(u8, u8),
    Update(u8, u8, bool, bool),
    Prune(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u8, 0..3u8).prop_map(|(n, s)| Op::Add(n, s)),
        (0..6u8, 0..3u8, any::<bool>(), any::<bool>()).prop_map(|(n, s, a, b)| Op::Update(n, s, a, b)),
        (0..6u8).prop_map(Op::Prune),
    ]
}

proptest! {
    #[test]
    fn topics_always_equal_the_mapping_of_the_store(batches in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..8)) {
        let mut store = base();
        for (b, ops) in batches.into_iter().enumerate() {
            let (mut added, mut updated, mut pruned) = (vec![], vec![], vec![]);
            for op in ops {
                match op {
                    Op::Add(n, s) => {
                        let mut p = tp(&format!("1/t{n}"), &format!("{b}.{s}"));
                        p.first_parent = Some(full("1/FAM"));
                        p.state = Some(["waiting", "running"][usize::from(s % 2)].into());
                        added.push(p);
                    }
                    Op::Update(n, s, with_prereq, with_job) => {
                        let mut p = tp(&format!("1/t{n}"), &format!("{b}.{s}u"));
                        p.is_held = Some(s == 1);
                        if with_prereq {
                            p.prerequisites = vec![PbPrerequisite { satisfied: Some(s == 2), ..Default::default() }];
                        }
                        if with_job {
                            p.jobs = vec![full(&format!("1/t{n}/0{s}"))];
                        }
                        updated.push(p);
                    }
                    Op::Prune(n) => pruned.push(full(&format!("1/t{n}"))),
                }
            }
            let mut fam_update = fp("1/FAM", &format!("{b}"));
            fam_update.child_tasks = added.iter().map(|p| p.id().to_owned()).collect();
            let batch = AllDeltas {
                family_proxies: Some(FpDeltas { updated: vec![fam_update], ..Default::default() }),
                ..tp_batch(added, updated, pruned)
            };
            store.apply_deltas(batch).unwrap();
            assert_consistent(&store);
        }
    }
}
