//! What users order a simulated workflow to do (the commands it takes, see
//! [`crate::sim::commands`]): pause and resume it, stop it, and hold, release,
//! trigger, kill or set its tasks. Each order yields the patches of what it changed,
//! like an event does.

use serde_json::{json, Value};

use super::{
    Workflow, EXPIRED, FAILED, FAMILY_PROXIES, JOBS, PREPARING, RUNNING, STATES, SUBMITTED, SUBMIT_FAILED,
    SUCCEEDED, TASK_PROXIES, WAITING, WORKFLOW,
};
use crate::sim::calendar::iso_time;

/// One order, its tasks named by `cycle/name` keys (as `taskProxies` keys them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    /// Submit nothing new until resumed (jobs out there carry on).
    Pause,
    /// Undo `Pause`.
    Resume,
    /// Stop: nothing happens any more.
    Stop,
    /// These tasks are not submitted until released.
    Hold(Vec<String>),
    /// Undo `Hold`.
    Release(Vec<String>),
    /// These tasks run now, whatever they wait for (active ones are left alone).
    Trigger(Vec<String>),
    /// These tasks' jobs are killed: the tasks fail.
    Kill(Vec<String>),
    /// These tasks' `succeeded` output is set: they succeed.
    Succeed(Vec<String>),
    /// These tasks' `failed` output is set: they fail.
    Fail(Vec<String>),
}

/// A task state after which nothing more happens to the task.
fn finished(state: usize) -> bool {
    matches!(state, SUCCEEDED | FAILED | SUBMIT_FAILED | EXPIRED)
}

impl Workflow {
    /// True once stopped by an order.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Carries out `order`; returns the patches, topic by topic.
    pub fn order(&mut self, order: Order) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        match order {
            Order::Pause => self.user_paused = true,
            Order::Resume => {
                self.user_paused = false;
                self.paused_for = 0;
            }
            Order::Stop => self.stopped = true,
            Order::Hold(keys) => self.each(&keys, &mut out, |w, pos, task| w.hold(pos, task, true)),
            Order::Release(keys) => self.each(&keys, &mut out, |w, pos, task| w.hold(pos, task, false)),
            Order::Trigger(keys) => self.each(&keys, &mut out, Workflow::trigger),
            Order::Kill(keys) => self.each(&keys, &mut out, Workflow::kill),
            Order::Succeed(keys) => {
                self.each(&keys, &mut out, |w, pos, task| w.set_output(pos, task, SUCCEEDED))
            }
            Order::Fail(keys) => self.each(&keys, &mut out, |w, pos, task| w.set_output(pos, task, FAILED)),
        }
        while self.cycles.front().is_some_and(|c| c.remaining == 0) {
            out.extend(self.prune());
            out.extend(self.spawn());
        }
        out.push((WORKFLOW, self.workflow_patch()));
        out
    }

    /// Calls `f` for each task of `keys` still in the workflow (pruned ones are gone).
    fn each(
        &mut self,
        keys: &[String],
        out: &mut Vec<(&'static str, Value)>,
        mut f: impl FnMut(&mut Workflow, usize, u32) -> Vec<(&'static str, Value)>,
    ) {
        for key in keys {
            if let Some((pos, task)) = self.locate(key) {
                out.extend(f(self, pos, task));
            }
        }
    }

    /// The live task keyed `cycle/name`: its cycle's position and its index.
    fn locate(&self, key: &str) -> Option<(usize, u32)> {
        let (point, name) = key.split_once('/')?;
        let pos = self.cycles.iter().position(|c| c.point == point)?;
        let task = self.shape.names.iter().position(|n| n == name)?;
        Some((pos, u32::try_from(task).ok()?))
    }

    fn key(&self, pos: usize, task: u32) -> String {
        format!("{}/{}", self.cycles[pos].point, self.shape.names[task as usize])
    }

    fn hold(&mut self, pos: usize, task: u32, held: bool) -> Vec<(&'static str, Value)> {
        let t = &mut self.cycles[pos].tasks[task as usize];
        if t.held == held {
            return Vec::new();
        }
        t.held = held;
        if held {
            self.held += 1;
        } else {
            self.held -= 1;
        }
        vec![(TASK_PROXIES, json!({ self.key(pos, task): {"isHeld": held} }))]
    }

    /// Runs the task now: back to waiting if it had finished, free of what it waited
    /// for, then prepared and submitted at once (even while paused or held, as Cylc
    /// triggers do).
    fn trigger(&mut self, pos: usize, task: u32) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        let state = self.cycles[pos].tasks[task as usize].state;
        if matches!(state, PREPARING | SUBMITTED | RUNNING) {
            return out;
        }
        if finished(state) {
            let [old, new] = self.set_state(pos, task, WAITING);
            self.cycles[pos].remaining += 1;
            out.push((
                TASK_PROXIES,
                json!({ self.key(pos, task): {"state": STATES[new]} }),
            ));
            out.push((FAMILY_PROXIES, self.family_patch(pos, task, old, new)));
        }
        let t = &mut self.cycles[pos].tasks[task as usize];
        t.waiting_on = 0;
        if std::mem::take(&mut t.blocked) {
            self.cycles[pos].remaining += 1;
        }
        self.make_ready(pos, task);
        // Waiting to preparing, then preparing to submitted.
        out.extend(self.advance_now(pos, task, false));
        out.extend(self.advance_now(pos, task, false));
        out
    }

    /// Kills the task's job, if it has one out: the task fails, with no retry.
    fn kill(&mut self, pos: usize, task: u32) -> Vec<(&'static str, Value)> {
        let t = &self.cycles[pos].tasks[task as usize];
        if !matches!(t.state, SUBMITTED | RUNNING) {
            return Vec::new();
        }
        let job = format!("{}/{:02}", self.key(pos, task), t.jobs);
        let mut out = self.finish(pos, task, FAILED);
        let now = iso_time(self.clock);
        out.push((JOBS, json!({ job: {"state": "failed", "finishedTime": now} })));
        out
    }

    /// Sets the task's `succeeded` or `failed` output: it ends so, unless it has
    /// ended already.
    fn set_output(&mut self, pos: usize, task: u32, state: usize) -> Vec<(&'static str, Value)> {
        let t = &mut self.cycles[pos].tasks[task as usize];
        if finished(t.state) {
            return Vec::new();
        }
        if std::mem::take(&mut t.blocked) {
            self.cycles[pos].remaining += 1;
        }
        self.finish(pos, task, state)
    }

    /// Ends an unfinished task in `state` (succeeded or failed), with what follows
    /// from it downstream.
    fn finish(&mut self, pos: usize, task: u32, state: usize) -> Vec<(&'static str, Value)> {
        let [old, new] = self.set_state(pos, task, state);
        self.unready(pos, task);
        self.cycles[pos].remaining -= 1;
        if new == SUCCEEDED {
            self.release_children(pos, task);
        } else {
            self.block_descendants(pos, task);
        }
        vec![
            (
                TASK_PROXIES,
                json!({ self.key(pos, task): {"state": STATES[new]} }),
            ),
            (FAMILY_PROXIES, self.family_patch(pos, task, old, new)),
        ]
    }
}

#[cfg(test)]
mod tests;
