//! The model clients see, on a real scheduler's data (`docs/cylc.md`).

mod common;

use clonewire_cylc::Kind;
use serde_json::json;

#[test]
fn a_task_proxy_looks_as_documented() {
    let replica = common::store("small/entire-after.pb");
    let topic = replica.topic(Kind::TaskProxies).to_value();
    let bar = &topic["2/bar"];
    assert_eq!(bar["id"], "~root/small//2/bar", "the full cylc id stays in `id`");
    assert_eq!(bar["state"], "succeeded");
    assert_eq!(bar["cyclePoint"], "2");
    assert_eq!(bar["firstParent"], "~root/small//2/FAM");
    assert_eq!(bar["task"], "~root/small//$namespace|bar");
    assert_eq!(bar["jobSubmits"], 1);
    assert_eq!(bar["isHeld"], false);
    // Id lists that grow are sets keyed by relative id; small lists stay arrays.
    assert_eq!(bar["jobs"], json!({"2/bar/01": true}));
    assert_eq!(bar["edges"], json!({"$edge|2/bar|2/post": true}));
    assert_eq!(bar["namespace"], json!(["root", "FAM", "bar"]));
    assert_eq!(
        bar["ancestors"],
        json!(["~root/small//2/FAM", "~root/small//2/root"])
    );
    // Maps are objects keyed as Cylc keys them; messages nest.
    assert_eq!(bar["outputs"]["succeeded"]["satisfied"], true);
    assert_eq!(bar["outputs"]["succeeded"]["label"], "succeeded");
    assert_eq!(bar["runtime"]["platform"], "localhost");
    let prerequisite = &bar["prerequisites"][0];
    assert_eq!(prerequisite["conditions"][0]["taskProxy"], "2/gate");
    assert_eq!(prerequisite["satisfied"], true);
    // Only set fields appear; snake_case never does.
    let keys: Vec<&String> = bar.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.contains('_')), "{keys:?}");
}

#[test]
fn families_jobs_edges_and_the_workflow_look_as_documented() {
    let replica = common::store("small/entire-after.pb");
    let fam = &replica.topic(Kind::FamilyProxies).to_value()["2/FAM"];
    assert_eq!(fam["childTasks"], json!({"2/bar": true, "2/foo": true}));
    assert_eq!(fam["stateTotals"]["succeeded"], 2);
    assert_eq!(fam["state"], "succeeded");
    let root = &replica.topic(Kind::FamilyProxies).to_value()["2/root"];
    assert_eq!(root["childFamilies"], json!({"2/FAM": true}));

    let job = &replica.topic(Kind::Jobs).to_value()["2/bar/01"];
    assert_eq!(job["submitNum"], 1);
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["taskProxy"], "~root/small//2/bar");
    assert_eq!(job["messages"], json!(["succeeded"]));

    let edge = &replica.topic(Kind::Edges).to_value()["$edge|2/bar|2/post"];
    assert_eq!(edge["source"], "~root/small//2/bar");
    assert_eq!(edge["target"], "~root/small//2/post");

    let task = &replica.topic(Kind::Tasks).to_value()["$namespace|bar"];
    assert_eq!(task["name"], "bar");
    assert!(
        task["proxies"]
            .as_object()
            .is_some_and(|p| p.contains_key("2/bar")),
        "{task}"
    );

    // The workflow topic is the workflow itself, without its lists of every element.
    let workflow = replica.topic(Kind::Workflow).to_value();
    assert_eq!(workflow["id"], "~root/small");
    assert_eq!(workflow["status"], "paused");
    assert_eq!(workflow["cylcVersion"], "8.5.4");
    assert!(workflow["stateTotals"].is_object());
    for gone in ["tasks", "families", "taskProxies", "familyProxies", "jobs"] {
        assert!(workflow.get(gone).is_none(), "workflow.{gone} is left out");
    }
    assert!(
        workflow["edges"].get("edges").is_none(),
        "workflow.edges.edges is left out"
    );
    assert!(workflow["edges"]["leaves"].is_array());
}

#[test]
fn pruning_a_task_proxy_removes_one_key_from_its_family() {
    let mut replica = common::store("small/entire-before.pb");
    let mut seen = 0;
    for frame in common::frames("small/all.frames") {
        let applied = replica.apply_bytes(&frame).unwrap();
        let Some(proxies) = applied.changes("taskProxies") else {
            continue;
        };
        let pruned: Vec<&String> = proxies
            .leaves
            .iter()
            .filter(|c| c.path.len() == 3 && c.path[2] == "id" && c.new.is_none())
            .map(|c| &c.path[1])
            .collect();
        for key in pruned {
            // Its family proxy lost exactly the key (or was pruned itself).
            let family = applied.changes("familyProxies").expect("the family changed");
            assert!(
                family.leaves.iter().any(|c| c.path.len() == 4
                    && c.path[2] == "childTasks"
                    && c.path[3] == *key
                    && c.new.is_none()),
                "{key} left its family"
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} prunes seen");
}

#[test]
fn a_state_change_is_a_few_leaves() {
    let mut replica = common::store("small/entire-before.pb");
    let frames = common::frames("small/all.frames");
    // The first batch: 1/gate's job is submitted and it starts running.
    let applied = replica.apply_bytes(&frames[0]).unwrap();
    let proxies = applied.changes("taskProxies").unwrap();
    let patch = proxies.to_patch();
    let gate = &patch["1/gate"];
    assert!(gate.is_object(), "{patch}");
    assert!(proxies.len() < 40, "{} leaves: {patch}", proxies.len());
    let jobs = applied.changes("jobs").unwrap().to_patch();
    assert_eq!(jobs["1/gate/01"]["submitNum"], 1, "{jobs}");
}
