//! A Cylc-like workflow, played one event at a time, in the model a real Cylc 8
//! workflow has when the relay follows it (docs/cylc.md), so the demo and a real
//! workflow look alike. Every cycle runs the same graph:
//!
//! ```text
//! prep[-PT6H] => prep => get_obs => model_NNN (family MODEL) => post_NNN (family POST) => archive
//! ```
//!
//! Topics, keyed by the element's id after `//` (the full Cylc id is in `id`):
//!
//! - `workflow`: one object: `status` (running, paused, stopping), `statusMsg`,
//!   `stateTotals` (tasks per state), `oldestActiveCyclePoint`, ...
//! - `tasks`, `families`: the definitions (`$namespace|model_000`, `$namespace|MODEL`),
//!   sent once.
//! - `taskProxies` (`20260101T0000Z/model_000`): `state`, `firstParent` (its family
//!   proxy), `jobSubmits`, `jobs` (`{job key: true}`), ...
//! - `familyProxies` (`20260101T0000Z/MODEL`): `state`, `stateTotals`, `childTasks`,
//!   `childFamilies`, `firstParent`.
//! - `jobs` (`20260101T0000Z/model_000/01`): `submitNum`, `state`, `taskProxy`,
//!   `platform`, `submittedTime`, `startedTime`, `finishedTime`, ...
//! - `edges` (`$edge|20260101T0000Z/prep|20260101T0000Z/get_obs`): `source`, `target`.
//!
//! References to other elements (`firstParent`, `task`, `family`, `taskProxy`,
//! `source`, `target`) hold the full Cylc id, as a real workflow's do; the sets of
//! ids (`jobs`, `childTasks`, `childFamilies`) are keyed by the part after `//`.
//!
//! Tasks go waiting → preparing → submitted → running → succeeded, or failed (then
//! waiting again for a retry, at most three jobs); a submission may fail
//! (submit-failed, retried the same way) and an observation may expire. A few
//! cycles are live at once; when the oldest has finished it is pruned (its entries
//! deleted with `null`) and a new cycle is spawned. Now and then the workflow pauses
//! for a while: jobs already submitted carry on, nothing new is submitted. Each
//! event changes one task and yields small merge patches for `taskProxies`, `jobs`,
//! `familyProxies` and `workflow`; work per event does not depend on how many tasks
//! there are.

mod orders;

use serde_json::{json, Map, Value};

use super::calendar::{cycle_point, iso_time, START};
pub use orders::Order;

/// The workflow (one object).
pub const WORKFLOW: &str = "workflow";
/// Task definitions by name.
pub const TASKS: &str = "tasks";
/// Family definitions by name.
pub const FAMILIES: &str = "families";
/// Task proxies by `cycle/name`.
pub const TASK_PROXIES: &str = "taskProxies";
/// Family proxies by `cycle/FAMILY`.
pub const FAMILY_PROXIES: &str = "familyProxies";
/// Jobs by `cycle/name/NN` (NN: the submit number).
pub const JOBS: &str = "jobs";
/// Graph edges by `$edge|source|target`.
pub const EDGES: &str = "edges";

/// The schema's collections (paths from the suite root): every topic but `workflow`,
/// and the id sets inside entries.
pub fn collections() -> Vec<Vec<&'static str>> {
    vec![
        vec![TASKS],
        vec![FAMILIES],
        vec![TASK_PROXIES],
        vec![FAMILY_PROXIES],
        vec![JOBS],
        vec![EDGES],
        vec![TASK_PROXIES, "*", "jobs"],
        vec![FAMILY_PROXIES, "*", "childTasks"],
        vec![FAMILY_PROXIES, "*", "childFamilies"],
        vec![FAMILIES, "*", "childTasks"],
        vec![FAMILIES, "*", "childFamilies"],
    ]
}

/// Cylc 8 task states, as `state` and `stateTotals` spell them.
pub const STATES: [&str; 8] = [
    "waiting",
    "preparing",
    "submitted",
    "running",
    "succeeded",
    "failed",
    "submit-failed",
    "expired",
];
const WAITING: usize = 0;
const PREPARING: usize = 1;
const SUBMITTED: usize = 2;
const RUNNING: usize = 3;
const SUCCEEDED: usize = 4;
const FAILED: usize = 5;
const SUBMIT_FAILED: usize = 6;
const EXPIRED: usize = 7;
const N_STATES: usize = STATES.len();
/// A family's state: the first of these its members are in (Cylc's order).
const GROUP_ORDER: [usize; 8] = [
    SUBMIT_FAILED,
    FAILED,
    EXPIRED,
    RUNNING,
    SUBMITTED,
    PREPARING,
    WAITING,
    SUCCEEDED,
];
/// Families: every task is in `root`; members also in `MODEL` or `POST`.
const FAMILY_NAMES: [&str; 3] = ["root", "MODEL", "POST"];
/// Whose workflows these are (the `~owner` of Cylc ids).
const OWNER: &str = "sim";
const CYCLE_SECONDS: i64 = 6 * 3600;
const MAX_JOBS: u8 = 3;
const FAIL_PERCENT: u32 = 4;
const SUBMIT_FAIL_PERCENT: u32 = 2;
const EXPIRE_PERCENT: u32 = 3;
const PLATFORMS: [&str; 4] = ["hpc1", "hpc2", "hpc3", "hpc4"];
const NOT_READY: u32 = u32::MAX;
/// Events between pauses, and how long a pause lasts (in events).
const RUN_EVENTS: std::ops::RangeInclusive<u32> = 600..=1500;
const PAUSE_EVENTS: std::ops::RangeInclusive<u32> = 40..=120;

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

    /// Only model and post tasks fail (so every cycle's prep, which the next cycle
    /// waits for, succeeds).
    fn may_fail(&self, task: u32) -> bool {
        self.family[task as usize] != 0
    }
}

#[derive(Clone)]
struct Task {
    state: usize,
    /// Parents not yet succeeded.
    waiting_on: u32,
    /// Jobs submitted so far.
    jobs: u8,
    /// Its place in the ready list, or `NOT_READY`.
    ready_pos: u32,
    /// Will never run: an ancestor did not succeed.
    blocked: bool,
    /// Held by a user: not submitted until released.
    held: bool,
}

struct Cycle {
    index: u64,
    point: String,
    tasks: Vec<Task>,
    /// State counts per family.
    counts: [[u32; N_STATES]; 3],
    /// Tasks that will still change.
    remaining: usize,
}

/// The key of a task's or family's definition (`$namespace|name`, as in Cylc's ids).
fn definition(name: &str) -> String {
    format!("$namespace|{name}")
}

/// The simulated workflow's state; see the module docs.
pub struct Workflow {
    /// The Cylc id, `~owner/name`.
    id: String,
    name: String,
    rng: fastrand::Rng,
    shape: Shape,
    live_cycles: usize,
    cycles: std::collections::VecDeque<Cycle>,
    next_cycle: u64,
    /// Tasks that can advance now: (cycle index, task).
    ready: Vec<(u64, u32)>,
    totals: [u64; N_STATES],
    clock: i64,
    /// Events left in the current pause (0: running).
    paused_for: u32,
    /// Events until the next pause.
    pause_in: u32,
    /// The job runner's id of the next job.
    next_job_id: u64,
    /// Paused by a user (until resumed; the workflow's own pauses wait meanwhile).
    user_paused: bool,
    /// Stopped by a user: nothing happens any more.
    stopped: bool,
    /// Tasks held by a user.
    held: u64,
}

impl Workflow {
    /// A workflow keeping about `tasks` tasks live, deterministic for a given `seed`.
    pub fn new(name: impl Into<String>, tasks: usize, seed: u64) -> Workflow {
        let name = name.into();
        let live_cycles = if tasks >= 40 { 4 } else { 2 };
        let mut rng = fastrand::Rng::with_seed(seed);
        let pause_in = rng.u32(RUN_EVENTS);
        Workflow {
            id: format!("~{OWNER}/{name}"),
            name,
            rng,
            shape: Shape::new(tasks.max(1) / live_cycles),
            live_cycles,
            cycles: Default::default(),
            next_cycle: 0,
            ready: Vec::new(),
            totals: [0; N_STATES],
            clock: START,
            paused_for: 0,
            pause_in,
            next_job_id: 100_000 + seed % 100_000 * 10,
            user_paused: false,
            stopped: false,
            held: 0,
        }
    }

    /// Tasks live now.
    pub fn live_tasks(&self) -> usize {
        self.cycles.len() * self.shape.names.len()
    }

    /// The patches that bring an empty store to the workflow's first state: the
    /// workflow's description and definitions, then each live cycle spawned in turn.
    pub fn start(&mut self) -> Vec<(&'static str, Value)> {
        let mut out = vec![
            (
                WORKFLOW,
                json!({
                    "id": self.id,
                    "name": self.name,
                    "owner": OWNER,
                    "host": "localhost",
                    "status": "running",
                    "statusMsg": "running",
                    "runMode": "live",
                    "cyclingMode": "gregorian",
                    "treeDepth": 2,
                    "meta": {
                        "title": format!("{} (simulated)", self.name),
                        "description": "A simulated Cylc workflow: cycles of prep, get_obs, MODEL, POST and archive.",
                        "URL": "",
                    },
                    "isHeldTotal": 0,
                    "isQueuedTotal": 0,
                    "isRunaheadTotal": 0,
                }),
            ),
            (TASKS, self.task_definitions()),
            (FAMILIES, self.family_definitions()),
        ];
        while self.cycles.len() < self.live_cycles {
            out.extend(self.spawn());
        }
        out.push((WORKFLOW, self.workflow_patch()));
        out
    }

    /// The workflow stops (before a restart or a shutdown): the last word on its
    /// status.
    pub fn stopping(&self) -> (&'static str, Value) {
        (
            WORKFLOW,
            json!({"status": "stopping", "statusMsg": "stopping: shutting down", "lastUpdated": self.clock}),
        )
    }

    /// One event: a task moves on (and, when the oldest cycle has finished, it is
    /// pruned and a new one spawned), or the workflow pauses or resumes. Returns the
    /// patches, topic by topic.
    pub fn step(&mut self) -> Vec<(&'static str, Value)> {
        if self.stopped {
            return Vec::new();
        }
        self.clock += i64::from(self.rng.u32(1..=20));
        self.tick_pause();
        let mut out = Vec::with_capacity(5);
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

    /// True while nothing new is submitted.
    fn paused(&self) -> bool {
        self.paused_for > 0 || self.user_paused
    }

    fn tick_pause(&mut self) {
        if self.user_paused {
            return;
        }
        if self.paused_for > 0 {
            self.paused_for -= 1;
            if self.paused_for == 0 {
                self.pause_in = self.rng.u32(RUN_EVENTS);
            }
        } else if self.pause_in == 0 {
            self.paused_for = self.rng.u32(PAUSE_EVENTS);
        } else {
            self.pause_in -= 1;
        }
    }

    fn position(&self, cycle: u64) -> Option<usize> {
        let first = self.cycles.front()?.index;
        cycle
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.cycles.len())
    }

    /// The full Cylc id of the element keyed `short`: what entries hold in `id` and in
    /// references to other elements (`firstParent`, `taskProxy`, `source`...).
    fn full_id(&self, short: &str) -> String {
        format!("{}//{short}", self.id)
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

    fn set_state(&mut self, pos: usize, task: u32, state: usize) -> [usize; 2] {
        let family = self.shape.family[task as usize];
        let cycle = &mut self.cycles[pos];
        let old = std::mem::replace(&mut cycle.tasks[task as usize].state, state);
        for f in [0, family] {
            cycle.counts[f][old] -= 1;
            cycle.counts[f][state] += 1;
            if family == 0 {
                break;
            }
        }
        self.totals[old] -= 1;
        self.totals[state] += 1;
        [old, state]
    }

    fn advance(&mut self, cycle_index: u64, task: u32) -> Vec<(&'static str, Value)> {
        let Some(pos) = self.position(cycle_index) else {
            return Vec::new();
        };
        let t = &self.cycles[pos].tasks[task as usize];
        if (self.paused() || t.held) && matches!(t.state, WAITING | PREPARING) {
            // Paused or held: nothing new is submitted; jobs out there carry on.
            return Vec::new();
        }
        self.advance_now(pos, task, true)
    }

    /// The task moves on one state, paused or not; a first `get_obs` may expire
    /// instead when `may_expire`.
    fn advance_now(&mut self, pos: usize, task: u32, may_expire: bool) -> Vec<(&'static str, Value)> {
        let state = self.cycles[pos].tasks[task as usize].state;
        let now = iso_time(self.clock);
        let id = format!("{}/{}", self.cycles[pos].point, self.shape.names[task as usize]);
        let may_fail = self.shape.may_fail(task);
        let jobs = self.cycles[pos].tasks[task as usize].jobs;
        let job_key = |n: u8| format!("{id}/{n:02}");
        let mut proxy = Map::new();
        let mut job: Option<(String, Value)> = None;
        let next = match state {
            WAITING if may_expire && task == 1 && jobs == 0 && self.rng.u32(0..100) < EXPIRE_PERCENT => {
                EXPIRED
            }
            WAITING => {
                if jobs > 0 {
                    proxy.insert("isRetry".into(), json!(false));
                }
                PREPARING
            }
            PREPARING => {
                let n = jobs + 1;
                self.cycles[pos].tasks[task as usize].jobs = n;
                let key = job_key(n);
                proxy.insert("jobSubmits".into(), json!(n));
                proxy.insert("jobs".into(), json!({ key.clone(): true }));
                let fails = may_fail && self.rng.u32(0..100) < SUBMIT_FAIL_PERCENT;
                let mut entry = json!({
                    "id": self.full_id(&key),
                    "submitNum": n,
                    "state": if fails { "submit-failed" } else { "submitted" },
                    "taskProxy": self.full_id(&id),
                    "name": self.shape.names[task as usize],
                    "cyclePoint": self.cycles[pos].point,
                    "platform": PLATFORMS[self.rng.usize(..PLATFORMS.len())],
                    "jobRunnerName": "slurm",
                    "submittedTime": now,
                });
                if !fails {
                    self.next_job_id += 1;
                    entry["jobId"] = json!(self.next_job_id.to_string());
                }
                job = Some((key, entry));
                Self::after_job(fails, n, SUBMIT_FAILED, SUBMITTED, &mut proxy)
            }
            SUBMITTED => {
                job = Some((job_key(jobs), json!({"state": "running", "startedTime": now})));
                RUNNING
            }
            _ => {
                let fails = may_fail && self.rng.u32(0..100) < FAIL_PERCENT;
                let state = if fails { "failed" } else { "succeeded" };
                job = Some((job_key(jobs), json!({"state": state, "finishedTime": now})));
                Self::after_job(fails, jobs, FAILED, SUCCEEDED, &mut proxy)
            }
        };
        let [old, new] = self.set_state(pos, task, next);
        proxy.insert("state".into(), json!(STATES[new]));
        let mut out = vec![(TASK_PROXIES, json!({ id: proxy }))];
        if let Some((key, entry)) = job {
            out.push((JOBS, json!({ key: entry })));
        }
        match new {
            SUCCEEDED => {
                self.unready(pos, task);
                self.cycles[pos].remaining -= 1;
                self.release_children(pos, task);
            }
            FAILED | SUBMIT_FAILED | EXPIRED => {
                self.unready(pos, task);
                self.cycles[pos].remaining -= 1;
                self.block_descendants(pos, task);
            }
            _ => {}
        }
        out.push((FAMILY_PROXIES, self.family_patch(pos, task, old, new)));
        out
    }

    /// The task's next state after its job `n` ended well (`ok`) or not: a failure
    /// with jobs to spare is retried (waiting again, `isRetry`).
    fn after_job(failed: bool, n: u8, bad: usize, ok: usize, proxy: &mut Map<String, Value>) -> usize {
        match (failed, n < MAX_JOBS) {
            (false, _) => ok,
            (true, true) => {
                proxy.insert("isRetry".into(), json!(true));
                WAITING
            }
            (true, false) => bad,
        }
    }

    fn release_children(&mut self, pos: usize, task: u32) {
        let children = self.shape.children[task as usize].clone();
        for child in children {
            let t = &mut self.cycles[pos].tasks[child as usize];
            // A task a user triggered or set waits for nothing any more.
            t.waiting_on = t.waiting_on.saturating_sub(1);
            if t.waiting_on == 0 && !t.blocked && t.state == WAITING {
                self.make_ready(pos, child);
            }
        }
        // prep of the next cycle waits for this cycle's prep.
        if task == 0 && pos + 1 < self.cycles.len() {
            let t = &mut self.cycles[pos + 1].tasks[0];
            t.waiting_on = t.waiting_on.saturating_sub(1);
            if t.waiting_on == 0 && t.state == WAITING {
                self.make_ready(pos + 1, 0);
            }
        }
    }

    fn block_descendants(&mut self, pos: usize, task: u32) {
        let mut stack = self.shape.children[task as usize].clone();
        while let Some(child) = stack.pop() {
            let t = &mut self.cycles[pos].tasks[child as usize];
            if t.blocked || t.state != WAITING {
                continue;
            }
            t.blocked = true;
            self.cycles[pos].remaining -= 1;
            self.unready(pos, child);
            stack.extend(self.shape.children[child as usize].iter().copied());
        }
    }

    fn family_state(counts: &[u32; N_STATES]) -> &'static str {
        GROUP_ORDER
            .iter()
            .find(|&&s| counts[s] > 0)
            .map_or("waiting", |&s| STATES[s])
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
                format!("{}/{}", cycle.point, FAMILY_NAMES[f]),
                json!({
                    "state": Self::family_state(counts),
                    "stateTotals": { STATES[old]: counts[old], STATES[new]: counts[new] },
                }),
            );
            if family == 0 {
                break;
            }
        }
        Value::Object(patch)
    }

    fn workflow_patch(&self) -> Value {
        let totals: Map<String, Value> = STATES
            .iter()
            .zip(self.totals)
            .map(|(s, n)| ((*s).to_owned(), json!(n)))
            .collect();
        let status = if self.stopped {
            "stopped"
        } else if self.paused() {
            "paused"
        } else {
            "running"
        };
        json!({
            "status": status,
            "statusMsg": status,
            "stateTotals": totals,
            "oldestActiveCyclePoint": self.cycles.front().map(|c| c.point.clone()),
            "newestActiveCyclePoint": self.cycles.back().map(|c| c.point.clone()),
            "lastUpdated": self.clock,
            "isHeldTotal": self.held,
        })
    }

    fn task_definitions(&self) -> Value {
        let tasks: Map<String, Value> = self
            .shape
            .names
            .iter()
            .zip(&self.shape.family)
            .map(|(name, &f)| {
                let entry = json!({
                    "id": self.full_id(&definition(name)), "name": name,
                    "firstParent": self.full_id(&definition(FAMILY_NAMES[f])), "depth": if f == 0 { 1 } else { 2 },
                });
                (definition(name), entry)
            })
            .collect();
        Value::Object(tasks)
    }

    fn family_definitions(&self) -> Value {
        let mut families = Map::new();
        for (f, fam) in FAMILY_NAMES.iter().enumerate() {
            let children: Map<String, Value> = (0..self.shape.names.len())
                .filter(|&i| self.shape.family[i] == f)
                .map(|i| (definition(&self.shape.names[i]), Value::Bool(true)))
                .collect();
            let mut entry = json!({
                "id": self.full_id(&definition(fam)), "name": fam, "depth": if f == 0 { 0 } else { 1 },
                "childTasks": children,
            });
            if f == 0 {
                entry["childFamilies"] = json!({definition("MODEL"): true, definition("POST"): true});
            } else {
                entry["firstParent"] = json!(self.full_id(&definition("root")));
            }
            families.insert(definition(fam), entry);
        }
        Value::Object(families)
    }

    fn edge(&self, source: &str, target: &str) -> (String, Value) {
        let key = format!("$edge|{source}|{target}");
        let entry = json!({
            "id": self.full_id(&key), "source": self.full_id(source), "target": self.full_id(target),
        });
        (key, entry)
    }

    /// Spawns the next cycle: its task proxies, family proxies and edges.
    fn spawn(&mut self) -> Vec<(&'static str, Value)> {
        let index = self.next_cycle;
        self.next_cycle += 1;
        let point = cycle_point(START + index as i64 * CYCLE_SECONDS);
        let previous = self
            .cycles
            .back()
            .map(|c| (c.point.clone(), c.tasks[0].state == SUCCEEDED));
        let n = self.shape.names.len();
        let mut tasks: Vec<Task> = (0..n)
            .map(|i| Task {
                state: WAITING,
                waiting_on: self.shape.parents[i].len() as u32,
                jobs: 0,
                ready_pos: NOT_READY,
                blocked: false,
                held: false,
            })
            .collect();
        if previous.as_ref().is_some_and(|(_, done)| !done) {
            tasks[0].waiting_on = 1;
        }
        let mut counts = [[0u32; N_STATES]; 3];
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
            let family = self.shape.family[i];
            task_patch.insert(
                id.clone(),
                json!({
                    "id": self.full_id(&id), "task": self.full_id(&definition(name)), "name": name, "cyclePoint": point,
                    "state": "waiting",
                    "firstParent": self.full_id(&format!("{point}/{}", FAMILY_NAMES[family])),
                    "depth": if family == 0 { 1 } else { 2 }, "graphDepth": 0,
                    "jobSubmits": 0, "flowNums": "[1]",
                    "isHeld": false, "isQueued": false, "isRunahead": false, "isRetry": false,
                }),
            );
            for &p in &self.shape.parents[i] {
                let (key, entry) = self.edge(&format!("{point}/{}", self.shape.names[p as usize]), &id);
                edge_patch.insert(key, entry);
            }
        }
        if let Some((prev_point, _)) = previous {
            let (key, entry) = self.edge(&format!("{prev_point}/prep"), &format!("{point}/prep"));
            edge_patch.insert(key, entry);
        }
        let mut family_patch = Map::new();
        for (f, fam) in FAMILY_NAMES.iter().enumerate() {
            let children: Map<String, Value> = (0..n)
                .filter(|&i| self.shape.family[i] == f)
                .map(|i| (format!("{point}/{}", self.shape.names[i]), Value::Bool(true)))
                .collect();
            let totals: Map<String, Value> = STATES
                .iter()
                .enumerate()
                .map(|(s, name)| {
                    let count = if s == WAITING { self.family_size(f) } else { 0 };
                    ((*name).to_owned(), json!(count))
                })
                .collect();
            let key = format!("{point}/{fam}");
            let mut entry = json!({
                "id": self.full_id(&key), "name": fam, "family": self.full_id(&definition(fam)), "cyclePoint": point,
                "state": "waiting", "depth": if f == 0 { 0 } else { 1 },
                "childTasks": children, "stateTotals": totals,
                "isHeld": false, "isHeldTotal": 0,
            });
            if f == 0 {
                entry["childFamilies"] =
                    json!({format!("{point}/MODEL"): true, format!("{point}/POST"): true});
            } else {
                entry["firstParent"] = json!(self.full_id(&format!("{point}/root")));
            }
            family_patch.insert(key, entry);
        }
        vec![
            (TASK_PROXIES, Value::Object(task_patch)),
            (FAMILY_PROXIES, Value::Object(family_patch)),
            (EDGES, Value::Object(edge_patch)),
        ]
    }

    /// Prunes the oldest cycle: every entry it owns (proxies, jobs, edges) is
    /// deleted with `null`.
    fn prune(&mut self) -> Vec<(&'static str, Value)> {
        let Some(cycle) = self.cycles.front() else {
            return Vec::new();
        };
        let point = cycle.point.clone();
        let previous_point = cycle_point(START + (cycle.index as i64 - 1) * CYCLE_SECONDS);
        let mut task_patch = Map::new();
        let mut job_patch = Map::new();
        let mut edge_patch = Map::new();
        for (i, name) in self.shape.names.iter().enumerate() {
            let id = format!("{point}/{name}");
            for &p in &self.shape.parents[i] {
                let source = format!("{point}/{}", self.shape.names[p as usize]);
                edge_patch.insert(format!("$edge|{source}|{id}"), Value::Null);
            }
            for n in 1..=cycle.tasks[i].jobs {
                job_patch.insert(format!("{id}/{n:02}"), Value::Null);
            }
            task_patch.insert(id, Value::Null);
        }
        edge_patch.insert(format!("$edge|{previous_point}/prep|{point}/prep"), Value::Null);
        let family_patch: Map<String, Value> = FAMILY_NAMES
            .iter()
            .map(|f| (format!("{point}/{f}"), Value::Null))
            .collect();
        for t in 0..self.shape.names.len() as u32 {
            self.unready(0, t);
        }
        if let Some(cycle) = self.cycles.pop_front() {
            for t in &cycle.tasks {
                self.totals[t.state] -= 1;
                self.held -= u64::from(t.held);
            }
        }
        let mut out = vec![
            (TASK_PROXIES, Value::Object(task_patch)),
            (FAMILY_PROXIES, Value::Object(family_patch)),
            (EDGES, Value::Object(edge_patch)),
        ];
        if !job_patch.is_empty() {
            out.push((JOBS, Value::Object(job_patch)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
