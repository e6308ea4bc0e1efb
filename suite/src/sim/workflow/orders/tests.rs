//! Orders change the simulated workflow as Cylc's commands change a real one.

use serde_json::{Map, Value};

use super::super::*;
use clonewire_core::Document;

struct Played {
    wf: Workflow,
    doc: Document,
}

impl Played {
    fn new(seed: u64) -> Played {
        let mut wf = Workflow::new("demo", 60, seed);
        let mut doc = Document::new();
        for (topic, patch) in wf.start() {
            doc.apply(topic, &patch).unwrap();
        }
        Played { wf, doc }
    }

    fn apply(&mut self, patches: Vec<(&'static str, Value)>) {
        for (topic, patch) in patches {
            self.doc.apply(topic, &patch).unwrap();
        }
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            let patches = self.wf.step();
            self.apply(patches);
        }
    }

    fn order(&mut self, order: Order) {
        let patches = self.wf.order(order);
        self.apply(patches);
    }

    fn proxies(&self) -> Map<String, Value> {
        match self.doc.topic(TASK_PROXIES).map(|t| t.to_value()) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// A task's state; `None` once its cycle is pruned.
    fn state(&self, key: &str) -> Option<String> {
        let proxies = self.proxies();
        Some(proxies.get(key)?["state"].as_str()?.to_owned())
    }

    /// Every job's key.
    fn jobs(&self) -> std::collections::BTreeSet<String> {
        self.doc
            .topic(JOBS)
            .map(|t| t.root().iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default()
    }

    fn workflow(&self, field: &str) -> Value {
        self.doc.topic(WORKFLOW).unwrap().to_value()[field].clone()
    }

    /// The tasks the workflow's `stateTotals` count, over every state.
    fn counted(&self) -> usize {
        let totals = self.workflow("stateTotals");
        let counts = totals.as_object().into_iter().flat_map(|m| m.values());
        counts.filter_map(Value::as_u64).sum::<u64>() as usize
    }

    /// The first task (in key order) in `state`.
    fn first_in(&self, state: &str) -> Option<String> {
        self.proxies()
            .iter()
            .find(|(_, t)| t["state"] == state)
            .map(|(k, _)| k.clone())
    }
}

#[test]
fn a_held_task_is_not_submitted_until_released() {
    let mut p = Played::new(3);
    let cycle = p.wf.cycles[0].point.clone();
    let prep = format!("{cycle}/prep");
    p.order(Order::Hold(vec![prep.clone()]));
    assert_eq!(p.proxies()[&prep]["isHeld"], true);
    assert_eq!(p.workflow("isHeldTotal"), 1);
    p.steps(300);
    assert_eq!(
        p.state(&prep).as_deref(),
        Some("waiting"),
        "held: never submitted"
    );
    p.order(Order::Release(vec![prep.clone()]));
    assert_eq!(p.proxies()[&prep]["isHeld"], false);
    assert_eq!(p.workflow("isHeldTotal"), 0);
    p.steps(300);
    // Ran, or ran and was pruned with its cycle.
    assert_ne!(p.state(&prep).as_deref(), Some("waiting"), "released: it ran");
}

#[test]
fn a_triggered_task_runs_now_even_while_its_parents_wait() {
    let mut p = Played::new(4);
    let cycle = p.wf.cycles[0].point.clone();
    let archive = format!("{cycle}/archive");
    assert_eq!(p.state(&archive).as_deref(), Some("waiting"));
    p.order(Order::Pause);
    p.order(Order::Trigger(vec![archive.clone()]));
    assert_eq!(
        p.state(&archive).as_deref(),
        Some("submitted"),
        "runs now, paused or not"
    );
    assert_eq!(p.proxies()[&archive]["jobSubmits"], 1);
}

#[test]
fn a_paused_workflow_submits_nothing_and_resumes() {
    let mut p = Played::new(5);
    p.steps(50);
    p.order(Order::Pause);
    assert_eq!(p.workflow("status"), "paused");
    let jobs_before = p.jobs();
    p.steps(400);
    let jobs_after = p.jobs();
    assert!(
        jobs_after.is_subset(&jobs_before),
        "no job submitted while paused"
    );
    assert_eq!(p.workflow("status"), "paused", "its own pauses do not end it");
    p.order(Order::Resume);
    assert_eq!(p.workflow("status"), "running");
    p.steps(400);
    assert!(!p.jobs().is_subset(&jobs_after), "jobs again after resume");
}

#[test]
fn kill_fails_an_active_task_and_set_ends_a_task_as_asked() {
    let mut p = Played::new(6);
    p.steps(200);
    let active = p
        .first_in("running")
        .or_else(|| p.first_in("submitted"))
        .expect("a task is active after 200 events");
    p.order(Order::Kill(vec![active.clone()]));
    assert_eq!(p.state(&active).as_deref(), Some("failed"));
    let waiting = p.first_in("waiting").expect("a task waits");
    p.order(Order::Succeed(vec![waiting.clone()]));
    assert_eq!(p.state(&waiting).as_deref(), Some("succeeded"));
    let waiting = p.first_in("waiting").expect("another task waits");
    p.order(Order::Fail(vec![waiting.clone()]));
    assert_eq!(p.state(&waiting).as_deref(), Some("failed"));
    // Totals still count the live tasks.
    assert_eq!(p.counted(), p.proxies().len());
}

#[test]
fn a_stopped_workflow_does_nothing_more() {
    let mut p = Played::new(8);
    p.order(Order::Stop);
    assert_eq!(p.workflow("status"), "stopped");
    assert!(p.wf.step().is_empty());
}

#[test]
fn any_orders_in_any_states_keep_the_workflow_consistent() {
    for seed in 0..6 {
        let mut p = Played::new(seed);
        let mut rng = fastrand::Rng::with_seed(seed);
        for round in 0..150 {
            p.steps(5);
            let keys: Vec<String> = p.proxies().keys().cloned().collect();
            let pick = vec![keys[rng.usize(..keys.len())].clone()];
            let order = match rng.u32(0..9) {
                0 => Order::Hold(pick.clone()),
                1 => Order::Release(pick.clone()),
                2 => Order::Trigger(pick.clone()),
                3 => Order::Kill(pick.clone()),
                4 => Order::Succeed(pick.clone()),
                5 => Order::Fail(pick.clone()),
                6 => Order::Pause,
                7 => Order::Resume,
                _ => Order::Trigger(keys.clone()),
            };
            p.order(order);
            assert_eq!(p.counted(), p.proxies().len(), "seed {seed}, round {round}");
            let held = p.proxies().values().filter(|t| t["isHeld"] == true).count();
            assert_eq!(p.workflow("isHeldTotal"), held, "seed {seed}, round {round}");
        }
    }
}
