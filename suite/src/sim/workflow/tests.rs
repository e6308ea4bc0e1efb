//! The simulated workflow's unit tests: the graph plays out as Cylc's would.

use super::*;
use clonewire_core::Document;

fn play_with(wf: &mut Workflow, doc: &mut Document, steps: usize) {
    for _ in 0..steps {
        for (topic, patch) in wf.step() {
            doc.apply(topic, &patch).unwrap();
        }
    }
}

fn play(seed: u64, steps: usize) -> Document {
    let mut wf = Workflow::new("demo", 60, seed);
    let mut doc = Document::new();
    for (topic, patch) in wf.start() {
        doc.apply(topic, &patch).unwrap();
    }
    play_with(&mut wf, &mut doc, steps);
    doc
}

fn topic(doc: &Document, name: &str) -> Map<String, Value> {
    match doc.topic(name).map(|t| t.to_value()) {
        Some(Value::Object(map)) => map,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn cycles_run_through_and_are_pruned_and_spawned() {
    let doc = play(7, 3000);
    let tasks = topic(&doc, TASK_PROXIES);
    // Still about 60 tasks live, and cycles have moved on from the first.
    assert!((40..=80).contains(&tasks.len()), "{} tasks", tasks.len());
    assert!(
        !tasks.contains_key("20260101T0000Z/prep"),
        "the first cycle was pruned"
    );
    let states: std::collections::BTreeSet<&str> =
        tasks.values().filter_map(|t| t["state"].as_str()).collect();
    assert!(states.len() >= 3, "{states:?}");
    assert!(states.iter().all(|s| STATES.contains(s)), "{states:?}");
    let workflow = doc.topic(WORKFLOW).unwrap().to_value();
    let totals = workflow["stateTotals"].as_object().unwrap();
    assert_eq!(totals.len(), STATES.len(), "every state is counted: {totals:?}");
    let total: u64 = totals.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total as usize, tasks.len(), "totals count the live tasks");
    let edges = topic(&doc, EDGES);
    assert!(edges.len() >= tasks.len() - 4);
    // A job was submitted, ran and finished somewhere.
    assert!(topic(&doc, JOBS)
        .values()
        .any(|j| j.get("finishedTime").is_some()));
}

/// The key a reference (a full Cylc id of this workflow) names.
fn short(reference: &Value) -> &str {
    let full = reference.as_str().unwrap();
    full.strip_prefix("~sim/demo//")
        .unwrap_or_else(|| panic!("a full id: {full}"))
}

#[test]
fn references_name_entries_that_exist() {
    let doc = play(3, 2000);
    let tasks = topic(&doc, TASK_PROXIES);
    let families = topic(&doc, FAMILY_PROXIES);
    let jobs = topic(&doc, JOBS);
    let edges = topic(&doc, EDGES);
    let definitions = topic(&doc, TASKS);
    for (key, task) in &tasks {
        assert_eq!(task["id"], format!("~sim/demo//{key}"));
        assert!(definitions.contains_key(short(&task["task"])), "{key}");
        let family = &families[short(&task["firstParent"])];
        assert!(topic(&doc, FAMILIES).contains_key(short(&family["family"])));
        let parent = short(&task["firstParent"]);
        assert!(families[parent]["childTasks"][key] == true, "{key} in {parent}");
        let submits = task["jobSubmits"].as_u64().unwrap();
        let own = task.get("jobs").and_then(Value::as_object).map_or(0, |j| j.len());
        assert_eq!(own as u64, submits, "{key}");
        for job in task.get("jobs").and_then(Value::as_object).into_iter().flatten() {
            assert_eq!(short(&jobs[job.0]["taskProxy"]), key.as_str(), "{key}");
        }
    }
    for (key, job) in &jobs {
        assert!(tasks.contains_key(short(&job["taskProxy"])), "{key}");
        assert_eq!(job["id"], format!("~sim/demo//{key}"));
        assert!(
            ["submitted", "submit-failed", "running", "succeeded", "failed"]
                .contains(&job["state"].as_str().unwrap()),
            "{key}: {job}"
        );
    }
    for (key, family) in &families {
        if let Some(parent) = family.get("firstParent") {
            assert!(families.contains_key(short(parent)), "{key}");
        }
        let sum: u64 = family["stateTotals"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(sum > 0, "{key}");
    }
    let oldest = doc.topic(WORKFLOW).unwrap().to_value()["oldestActiveCyclePoint"].clone();
    for (key, edge) in &edges {
        for end in ["source", "target"] {
            let task = short(&edge[end]);
            // Only the previous cycle's prep, already pruned, may be missing.
            assert!(
                tasks.contains_key(task) || (end == "source" && task.ends_with("/prep")),
                "{key}: {task}, oldest {oldest}"
            );
        }
        assert_eq!(
            *key,
            format!("$edge|{}|{}", short(&edge["source"]), short(&edge["target"]))
        );
    }
}

#[test]
fn it_pauses_now_and_then_and_submits_nothing_while_paused() {
    let mut wf = Workflow::new("demo", 60, 11);
    let mut doc = Document::new();
    for (topic, patch) in wf.start() {
        doc.apply(topic, &patch).unwrap();
    }
    let (mut paused, mut resumed) = (0, 0);
    let mut status = "running".to_owned();
    for _ in 0..4000 {
        let patches = wf.step();
        let now = patches
            .iter()
            .rev()
            .find(|(t, _)| *t == WORKFLOW)
            .map(|(_, p)| p["status"].as_str().unwrap().to_owned())
            .unwrap();
        if now == "paused" {
            for (topic, patch) in &patches {
                if *topic == JOBS {
                    for job in patch.as_object().unwrap().values() {
                        assert!(
                            job.get("submitNum").is_none() || job.is_null(),
                            "submitted while paused: {patch}"
                        );
                    }
                }
            }
        }
        match (status.as_str(), now.as_str()) {
            ("running", "paused") => paused += 1,
            ("paused", "running") => resumed += 1,
            _ => {}
        }
        status = now;
        for (topic, patch) in patches {
            doc.apply(topic, &patch).unwrap();
        }
    }
    assert!(paused >= 2 && resumed >= 2, "paused {paused}, resumed {resumed}");
}

#[test]
fn an_event_touches_one_task_whatever_the_size() {
    let mut wf = Workflow::new("big", 20_000, 5);
    wf.start();
    let mut small = 0;
    for _ in 0..500 {
        let patches = wf.step();
        if patches.iter().all(|(t, _)| *t != EDGES) {
            small += 1;
            for (topic, patch) in &patches {
                let n = patch.as_object().map_or(0, |p| p.len());
                assert!(n <= if *topic == FAMILY_PROXIES { 2 } else { 8 }, "{topic}: {n}");
            }
        }
    }
    assert!(small > 450, "{small} of 500 events without a spawn");
}

#[test]
fn the_same_seed_plays_the_same_workflow() {
    let a = play(42, 500);
    assert_eq!(a, play(42, 500));
    assert_ne!(a, play(43, 500));
}
