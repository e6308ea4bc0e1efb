//! A Cylc-like workflow, played one event at a time. Every cycle runs the same graph:
//!
//! ```text
//! prep[-PT6H] => prep => get_obs => model_NNN (family MODEL) => post_NNN (family POST) => archive
//! ```
//!
//! Tasks go waiting → preparing → submitted → running → succeeded, or failed (then
//! waiting again for a retry, at most three jobs). A few cycles are live at once;
//! when the oldest has finished it is pruned (its entries deleted with `null`) and a
//! new cycle is spawned. Each event changes one task and yields small merge patches
//! for `taskProxies`, `familyProxies` and `workflow`; work per event does not depend
//! on how many tasks there are.

use serde_json::{json, Map, Value};

use super::calendar::{cycle_point, iso_time, START};

/// Topic names.
pub const WORKFLOW: &str = "workflow";
/// Tasks by id (`cycle/name`), with their jobs.
pub const TASK_PROXIES: &str = "taskProxies";
/// Families by id (`cycle/FAMILY`).
pub const FAMILY_PROXIES: &str = "familyProxies";
/// Graph edges by id (`source=>target`).
pub const EDGES: &str = "edges";

/// The schema's collections (paths from the suite root).
pub fn collections() -> Vec<Vec<&'static str>> {
    vec![
        vec![TASK_PROXIES],
        vec![FAMILY_PROXIES],
        vec![EDGES],
        vec![TASK_PROXIES, "*", "jobs"],
    ]
}

const STATUSES: [&str; 6] = [
    "waiting",
    "preparing",
    "submitted",
    "running",
    "succeeded",
    "failed",
];
const WAITING: usize = 0;
const PREPARING: usize = 1;
const SUBMITTED: usize = 2;
const RUNNING: usize = 3;
const SUCCEEDED: usize = 4;
const FAILED: usize = 5;
/// Families: every task is in `root`; members also in `MODEL` or `POST`.
const FAMILIES: [&str; 3] = ["root", "MODEL", "POST"];
const CYCLE_SECONDS: i64 = 6 * 3600;
const MAX_JOBS: u8 = 3;
const FAIL_PERCENT: u32 = 4;
const NOT_READY: u32 = u32::MAX;

/// The per-cycle graph, the same for every cycle.
struct Shape {
    names: Vec<String>,
    /// 0: directly under root; 1: MODEL; 2: POST.
    family: Vec<usize>,
    parents: Vec<Vec<u32>>,
    children: Vec<Vec<u32>>,
    /// Tasks per family (root: all).
    family_sizes: [u32; 3],
}

impl Shape {
    fn new(per_cycle: usize) -> Shape {
        let members = per_cycle.saturating_sub(3).max(2) / 2;
        let mut names = vec!["prep".to_owned(), "get_obs".to_owned()];
        let mut family = vec![0, 0];
        let mut parents: Vec<Vec<u32>> = vec![vec![], vec![0]];
        for i in 0..members {
            names.push(format!("model_{i:03}"));
            family.push(1);
            parents.push(vec![1]);
        }
        for i in 0..members {
            names.push(format!("post_{i:03}"));
            family.push(2);
            parents.push(vec![(2 + i) as u32]);
        }
        names.push("archive".to_owned());
        family.push(0);
        parents.push((0..members).map(|i| (2 + members + i) as u32).collect());
        let mut children = vec![Vec::new(); names.len()];
        for (child, ps) in parents.iter().enumerate() {
            for &p in ps {
                children[p as usize].push(child as u32);
            }
        }
        let family_sizes = [names.len() as u32, members as u32, members as u32];
        Shape {
            names,
            family,
            parents,
            children,
            family_sizes,
        }
    }
}

#[derive(Clone)]
struct Task {
    status: usize,
    /// Parents not yet succeeded.
    waiting_on: u32,
    /// Jobs submitted so far.
    jobs: u8,
    /// Its place in the ready list, or `NOT_READY`.
    ready_pos: u32,
    /// Will never run: an ancestor failed for good.
    blocked: bool,
}

struct Cycle {
    index: u64,
    point: String,
    tasks: Vec<Task>,
    /// Status counts per family.
    counts: [[u32; 6]; 3],
    /// Tasks that will still change.
    remaining: usize,
}

/// The simulated workflow's state; see the module docs.
pub struct Workflow {
    name: String,
    rng: fastrand::Rng,
    shape: Shape,
    live_cycles: usize,
    cycles: std::collections::VecDeque<Cycle>,
    next_cycle: u64,
    /// Tasks that can advance now: (cycle index, task).
    ready: Vec<(u64, u32)>,
    totals: [u64; 6],
    clock: i64,
}

impl Workflow {
    /// A workflow keeping about `tasks` tasks live, deterministic for a given `seed`.
    pub fn new(name: impl Into<String>, tasks: usize, seed: u64) -> Workflow {
        let live_cycles = if tasks >= 40 { 4 } else { 2 };
        Workflow {
            name: name.into(),
            rng: fastrand::Rng::with_seed(seed),
            shape: Shape::new(tasks.max(1) / live_cycles),
            live_cycles,
            cycles: Default::default(),
            next_cycle: 0,
            ready: Vec::new(),
            totals: [0; 6],
            clock: START,
        }
    }

    /// Tasks live now.
    pub fn live_tasks(&self) -> usize {
        self.cycles.len() * self.shape.names.len()
    }

    /// The patches that bring an empty store to the workflow's first state: the
    /// workflow's description, then each live cycle spawned in turn.
    pub fn start(&mut self) -> Vec<(&'static str, Value)> {
        let mut out = vec![(
            WORKFLOW,
            json!({
                "id": self.name,
                "name": self.name,
                "status": "running",
                "meta": {"title": format!("{} (simulated)", self.name), "URL": ""},
                "runMode": "live",
            }),
        )];
        while self.cycles.len() < self.live_cycles {
            out.extend(self.spawn());
        }
        out.push((WORKFLOW, self.workflow_patch()));
        out
    }

    /// One event: a task moves on (and, when the oldest cycle has finished, it is
    /// pruned and a new one spawned). Returns the patches, topic by topic.
    pub fn step(&mut self) -> Vec<(&'static str, Value)> {
        self.clock += i64::from(self.rng.u32(1..=20));
        let mut out = Vec::with_capacity(4);
        if self.ready.is_empty() {
            out.extend(self.spawn());
        } else {
            let (cycle, task) = self.ready[self.rng.usize(..self.ready.len())];
            out.extend(self.advance(cycle, task));
        }
        while self.cycles.front().is_some_and(|c| c.remaining == 0) {
            out.extend(self.prune());
            out.extend(self.spawn());
        }
        out.push((WORKFLOW, self.workflow_patch()));
        out
    }

    fn position(&self, cycle: u64) -> Option<usize> {
        let first = self.cycles.front()?.index;
        cycle
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.cycles.len())
    }

    fn task_id(&self, cycle: &Cycle, task: u32) -> String {
        format!("{}/{}", cycle.point, self.shape.names[task as usize])
    }

    fn make_ready(&mut self, pos: usize, task: u32) {
        let cycle = &mut self.cycles[pos];
        let t = &mut cycle.tasks[task as usize];
        if t.ready_pos == NOT_READY {
            t.ready_pos = self.ready.len() as u32;
            self.ready.push((cycle.index, task));
        }
    }

    fn unready(&mut self, pos: usize, task: u32) {
        let slot = std::mem::replace(&mut self.cycles[pos].tasks[task as usize].ready_pos, NOT_READY);
        if slot == NOT_READY {
            return;
        }
        self.ready.swap_remove(slot as usize);
        if let Some(&(moved_cycle, moved_task)) = self.ready.get(slot as usize) {
            if let Some(p) = self.position(moved_cycle) {
                self.cycles[p].tasks[moved_task as usize].ready_pos = slot;
            }
        }
    }

    fn set_status(&mut self, pos: usize, task: u32, status: usize) -> [usize; 2] {
        let family = self.shape.family[task as usize];
        let cycle = &mut self.cycles[pos];
        let old = std::mem::replace(&mut cycle.tasks[task as usize].status, status);
        for f in [0, family] {
            cycle.counts[f][old] -= 1;
            cycle.counts[f][status] += 1;
            if family == 0 {
                break;
            }
        }
        self.totals[old] -= 1;
        self.totals[status] += 1;
        [old, status]
    }

    fn advance(&mut self, cycle_index: u64, task: u32) -> Vec<(&'static str, Value)> {
        let Some(pos) = self.position(cycle_index) else {
            return Vec::new();
        };
        let now = iso_time(self.clock);
        let id = self.task_id(&self.cycles[pos], task);
        let status = self.cycles[pos].tasks[task as usize].status;
        let fails = task as usize >= 2
            && (task as usize) < self.shape.names.len() - 1
            && self.rng.u32(0..100) < FAIL_PERCENT;
        let jobs = self.cycles[pos].tasks[task as usize].jobs;
        let job_id = |n: u8| format!("{id}/{n:02}");
        let mut entry = Map::new();
        let next = match status {
            WAITING => PREPARING,
            PREPARING => {
                let n = jobs + 1;
                self.cycles[pos].tasks[task as usize].jobs = n;
                let host = format!("hpc{}", self.rng.u32(1..=4));
                entry.insert("submitNum".into(), json!(n));
                entry.insert(
                    "jobs".into(),
                    json!({ job_id(n): {
                        "id": job_id(n), "submitNum": n, "state": "submitted",
                        "host": host, "submittedTime": now,
                    }}),
                );
                SUBMITTED
            }
            SUBMITTED => {
                entry.insert(
                    "jobs".into(),
                    json!({ job_id(jobs): {"state": "running", "startedTime": now}}),
                );
                RUNNING
            }
            _ => {
                let state = if fails { "failed" } else { "succeeded" };
                entry.insert(
                    "jobs".into(),
                    json!({ job_id(jobs): {"state": state, "finishedTime": now}}),
                );
                match (fails, jobs < MAX_JOBS) {
                    (false, _) => SUCCEEDED,
                    (true, true) => WAITING, // a retry
                    (true, false) => FAILED,
                }
            }
        };
        let [old, new] = self.set_status(pos, task, next);
        entry.insert("status".into(), json!(STATUSES[new]));
        let mut out = vec![(TASK_PROXIES, json!({ id: entry }))];
        match new {
            SUCCEEDED => {
                self.unready(pos, task);
                self.cycles[pos].remaining -= 1;
                self.release_children(pos, task);
            }
            FAILED => {
                self.unready(pos, task);
                self.cycles[pos].remaining -= 1;
                self.block_descendants(pos, task);
            }
            _ => {}
        }
        out.push((FAMILY_PROXIES, self.family_patch(pos, task, old, new)));
        out
    }

    fn release_children(&mut self, pos: usize, task: u32) {
        let children = self.shape.children[task as usize].clone();
        for child in children {
            let t = &mut self.cycles[pos].tasks[child as usize];
            t.waiting_on -= 1;
            if t.waiting_on == 0 && !t.blocked {
                self.make_ready(pos, child);
            }
        }
        // prep of the next cycle waits for this cycle's prep.
        if task == 0 && pos + 1 < self.cycles.len() {
            let t = &mut self.cycles[pos + 1].tasks[0];
            t.waiting_on = t.waiting_on.saturating_sub(1);
            if t.waiting_on == 0 {
                self.make_ready(pos + 1, 0);
            }
        }
    }

    fn block_descendants(&mut self, pos: usize, task: u32) {
        let mut stack = self.shape.children[task as usize].clone();
        while let Some(child) = stack.pop() {
            let t = &mut self.cycles[pos].tasks[child as usize];
            if t.blocked || t.status != WAITING {
                continue;
            }
            t.blocked = true;
            self.cycles[pos].remaining -= 1;
            self.unready(pos, child);
            stack.extend(self.shape.children[child as usize].iter().copied());
        }
    }

    fn family_status(counts: &[u32; 6], size: u32) -> &'static str {
        if counts[RUNNING] > 0 {
            "running"
        } else if counts[SUBMITTED] > 0 {
            "submitted"
        } else if counts[PREPARING] > 0 {
            "preparing"
        } else if counts[FAILED] > 0 {
            "failed"
        } else if counts[SUCCEEDED] == size {
            "succeeded"
        } else {
            "waiting"
        }
    }

    fn family_size(&self, family: usize) -> u32 {
        self.shape.family_sizes[family]
    }

    fn family_patch(&self, pos: usize, task: u32, old: usize, new: usize) -> Value {
        let cycle = &self.cycles[pos];
        let family = self.shape.family[task as usize];
        let mut patch = Map::new();
        for f in [0, family] {
            let counts = &cycle.counts[f];
            patch.insert(
                format!("{}/{}", cycle.point, FAMILIES[f]),
                json!({
                    "status": Self::family_status(counts, self.family_size(f)),
                    "stateTotals": { STATUSES[old]: counts[old], STATUSES[new]: counts[new] },
                }),
            );
            if family == 0 {
                break;
            }
        }
        Value::Object(patch)
    }

    fn workflow_patch(&self) -> Value {
        let totals: Map<String, Value> = STATUSES
            .iter()
            .zip(self.totals)
            .map(|(s, n)| ((*s).to_owned(), json!(n)))
            .collect();
        json!({
            "stateTotals": totals,
            "cyclePoint": self.cycles.front().map(|c| c.point.clone()),
            "newestCyclePoint": self.cycles.back().map(|c| c.point.clone()),
            "lastUpdated": iso_time(self.clock),
        })
    }

    /// Spawns the next cycle: its tasks, families and edges.
    fn spawn(&mut self) -> Vec<(&'static str, Value)> {
        let index = self.next_cycle;
        self.next_cycle += 1;
        let point = cycle_point(START + index as i64 * CYCLE_SECONDS);
        let previous = self
            .cycles
            .back()
            .map(|c| (c.point.clone(), c.tasks[0].status == SUCCEEDED));
        let n = self.shape.names.len();
        let mut tasks: Vec<Task> = (0..n)
            .map(|i| Task {
                status: WAITING,
                waiting_on: self.shape.parents[i].len() as u32,
                jobs: 0,
                ready_pos: NOT_READY,
                blocked: false,
            })
            .collect();
        if previous.as_ref().is_some_and(|(_, done)| !done) {
            tasks[0].waiting_on = 1;
        }
        let mut counts = [[0u32; 6]; 3];
        for (f, family) in counts.iter_mut().enumerate() {
            family[WAITING] = self.family_size(f);
        }
        self.totals[WAITING] += n as u64;
        self.cycles.push_back(Cycle {
            index,
            point: point.clone(),
            tasks,
            counts,
            remaining: n,
        });
        let pos = self.cycles.len() - 1;
        if self.cycles[pos].tasks[0].waiting_on == 0 {
            self.make_ready(pos, 0);
        }

        let mut task_patch = Map::with_capacity(n);
        let mut edge_patch = Map::new();
        for (i, name) in self.shape.names.iter().enumerate() {
            let id = format!("{point}/{name}");
            task_patch.insert(
                id.clone(),
                json!({
                    "id": id, "name": name, "cyclePoint": point, "status": "waiting",
                    "firstParent": {"id": format!("{point}/{}", FAMILIES[self.shape.family[i]])},
                    "flowNums": [1], "isHeld": false, "submitNum": 0,
                }),
            );
            for &p in &self.shape.parents[i] {
                let source = format!("{point}/{}", self.shape.names[p as usize]);
                edge_patch.insert(format!("{source}=>{id}"), json!({"source": source, "target": id}));
            }
        }
        if let Some((prev_point, _)) = previous {
            let (source, target) = (format!("{prev_point}/prep"), format!("{point}/prep"));
            edge_patch.insert(
                format!("{source}=>{target}"),
                json!({"source": source, "target": target}),
            );
        }
        let mut family_patch = Map::new();
        for (f, fam) in FAMILIES.iter().enumerate() {
            let children: Vec<String> = (0..n)
                .filter(|&i| self.shape.family[i] == f)
                .map(|i| format!("{point}/{}", self.shape.names[i]))
                .collect();
            let mut entry = json!({
                "id": format!("{point}/{fam}"), "name": fam, "cyclePoint": point,
                "status": "waiting", "childTasks": children,
                "stateTotals": {"waiting": self.family_size(f)},
            });
            if f == 0 {
                entry["childFamilies"] = json!([format!("{point}/MODEL"), format!("{point}/POST")]);
            } else {
                entry["firstParent"] = json!({"id": format!("{point}/root")});
            }
            family_patch.insert(format!("{point}/{fam}"), entry);
        }
        vec![
            (TASK_PROXIES, Value::Object(task_patch)),
            (FAMILY_PROXIES, Value::Object(family_patch)),
            (EDGES, Value::Object(edge_patch)),
        ]
    }

    /// Prunes the oldest cycle: every entry it owns is deleted with `null`.
    fn prune(&mut self) -> Vec<(&'static str, Value)> {
        let Some(cycle) = self.cycles.front() else {
            return Vec::new();
        };
        let point = cycle.point.clone();
        let previous_point = cycle_point(START + (cycle.index as i64 - 1) * CYCLE_SECONDS);
        let mut task_patch = Map::new();
        let mut edge_patch = Map::new();
        for (i, name) in self.shape.names.iter().enumerate() {
            let id = format!("{point}/{name}");
            for &p in &self.shape.parents[i] {
                edge_patch.insert(
                    format!("{point}/{}=>{id}", self.shape.names[p as usize]),
                    Value::Null,
                );
            }
            task_patch.insert(id, Value::Null);
        }
        edge_patch.insert(format!("{previous_point}/prep=>{point}/prep"), Value::Null);
        let family_patch: Map<String, Value> = FAMILIES
            .iter()
            .map(|f| (format!("{point}/{f}"), Value::Null))
            .collect();
        for t in 0..self.shape.names.len() as u32 {
            self.unready(0, t);
        }
        if let Some(cycle) = self.cycles.pop_front() {
            for t in &cycle.tasks {
                self.totals[t.status] -= 1;
            }
        }
        vec![
            (TASK_PROXIES, Value::Object(task_patch)),
            (FAMILY_PROXIES, Value::Object(family_patch)),
            (EDGES, Value::Object(edge_patch)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clonewire_core::Document;

    fn play(seed: u64, steps: usize) -> Document {
        let mut wf = Workflow::new("demo", 60, seed);
        let mut doc = Document::new();
        for (topic, patch) in wf.start() {
            doc.apply(topic, &patch).unwrap();
        }
        for _ in 0..steps {
            for (topic, patch) in wf.step() {
                doc.apply(topic, &patch).unwrap();
            }
        }
        doc
    }

    #[test]
    fn cycles_run_through_and_are_pruned_and_spawned() {
        let doc = play(7, 3000);
        let tasks = doc.topic(TASK_PROXIES).unwrap().to_value();
        let tasks = tasks.as_object().unwrap();
        // Still about 60 tasks live, and cycles have moved on from the first.
        assert!((40..=80).contains(&tasks.len()), "{} tasks", tasks.len());
        assert!(
            !tasks.contains_key("20260101T00/prep"),
            "the first cycle was pruned"
        );
        let statuses: std::collections::BTreeSet<&str> =
            tasks.values().filter_map(|t| t["status"].as_str()).collect();
        assert!(statuses.len() >= 3, "{statuses:?}");
        let workflow = doc.topic(WORKFLOW).unwrap().to_value();
        let total: u64 = workflow["stateTotals"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total as usize, tasks.len(), "totals count the live tasks");
        // Every edge joins tasks that exist (or the previous cycle's prep).
        let edges = doc.topic(EDGES).unwrap().to_value();
        assert!(edges.as_object().unwrap().len() >= tasks.len() - 4);
        // A job was submitted, ran and finished somewhere.
        assert!(tasks.values().any(|t| t["jobs"]
            .as_object()
            .is_some_and(|j| j.values().any(|j| j.get("finishedTime").is_some()))));
    }

    #[test]
    fn the_same_seed_plays_the_same_workflow() {
        let a = play(42, 500);
        assert_eq!(a, play(42, 500));
        assert_ne!(a, play(43, 500));
    }
}
