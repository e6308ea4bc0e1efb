//! What one call into the session asks the page to be told, and its one JSON text.
//!
//! A message's changed leaves are kept once, with which leaves each view selects
//! (indices, never copies); the page gets everything a call produced as one JSON
//! text (see [`Effects::write_json`]), written straight from the leaves. Each touched
//! (workflow, topic) and each distinct patch is written once and views refer to them
//! by index, so views that select the same leaves share one patch, and a frame costs
//! one crossing out of wasm and one small `JSON.parse`, however many views it concerns.

use std::ops::Range;

use clonewire_core::changes::write_patch;
use clonewire_core::{Changes, LeafChange};
use serde::Serialize;
use serde_json::Value;

use crate::events::PageEvent;

/// One change a view is told about: a merge patch for its data of one (workflow, topic).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The workflow id.
    pub workflow: String,
    /// The topic.
    pub topic: String,
    /// The merge patch that turns the view's old data of this topic into the new.
    pub patch: Value,
    /// The suite's publish time (ms since the epoch) for deltas, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
}

/// All a view is told about one incoming message: one callback.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// The view.
    pub view: ViewId,
    /// Its changes, one per (workflow, topic) the message touched.
    pub changes: Vec<Change>,
}

/// A view's handle, unique within a client.
pub type ViewId = u32;

/// The changed leaves of one (workflow, topic) and which of them each view selects.
#[derive(Clone, Debug, PartialEq)]
pub struct Touched {
    /// The workflow id.
    pub workflow: String,
    /// The topic.
    pub topic: String,
    /// The suite's publish time, for deltas.
    pub time: Option<f64>,
    /// Every changed leaf (what the store applied).
    pub changes: Changes,
    /// Per view (ascending), the index in `patches` of the leaves it selects.
    views: Vec<(ViewId, u32)>,
    /// Each distinct set of selected leaves: a range of `picks`.
    patches: Vec<Range<usize>>,
    /// Indices into `changes.leaves`, patch after patch.
    picks: Vec<u32>,
}

impl Touched {
    /// A (workflow, topic) whose leaves `changes` changed; no view selects any yet.
    pub fn new(workflow: &str, topic: &str, time: Option<f64>, changes: Changes) -> Touched {
        Touched {
            workflow: workflow.to_owned(),
            topic: topic.to_owned(),
            time,
            changes,
            views: Vec::new(),
            patches: Vec::new(),
            picks: Vec::new(),
        }
    }

    /// Tells `view` about the leaves for which `selects` is true (nothing when none).
    pub fn select(&mut self, view: ViewId, mut selects: impl FnMut(&LeafChange) -> bool) {
        let start = self.picks.len();
        for (i, leaf) in self.changes.leaves.iter().enumerate() {
            if selects(leaf) {
                self.picks.push(i as u32);
            }
        }
        if self.picks.len() == start {
            return;
        }
        let fresh = start..self.picks.len();
        // Views that select the same leaves share one patch.
        let same = self
            .patches
            .iter()
            .position(|r| self.picks[r.clone()] == self.picks[fresh.clone()]);
        let patch = match same {
            Some(i) => {
                self.picks.truncate(start);
                i
            }
            None => {
                self.patches.push(fresh);
                self.patches.len() - 1
            }
        };
        self.views.push((view, patch as u32));
    }

    fn leaves(&self, range: &Range<usize>) -> impl Iterator<Item = &LeafChange> + Clone {
        self.picks[range.clone()]
            .iter()
            .filter_map(|&i| self.changes.leaves.get(i as usize))
    }
}

/// What a call asks the page to be told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effects {
    /// Per (workflow, topic) the call changed, the leaves and the views they concern.
    pub touched: Vec<Touched>,
    /// Status, workflow and error events.
    pub events: Vec<PageEvent>,
}

impl Effects {
    /// Adds what one (workflow, topic) changed, unless no view selects any of it.
    pub fn touch(&mut self, touched: Touched) {
        if !touched.views.is_empty() {
            self.touched.push(touched);
        }
    }

    /// The views told something, ascending, each once.
    pub fn views(&self) -> Vec<ViewId> {
        let mut views: Vec<ViewId> = self
            .touched
            .iter()
            .flat_map(|t| t.views.iter().map(|(v, _)| *v))
            .collect();
        views.sort_unstable();
        views.dedup();
        views
    }

    /// How many views are told something (one callback each).
    pub fn view_count(&self) -> usize {
        match self.touched.as_slice() {
            // One (workflow, topic), as for every delta and snapshot: no need to sort.
            [one] => one.views.len(),
            _ => self.views().len(),
        }
    }

    /// True when there is nothing to tell the page.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty() && self.events.is_empty()
    }

    /// Per view (ascending), its changes as plain values: what its callback gets.
    pub fn notifications(&self) -> Vec<Notification> {
        let mut out: Vec<Notification> = Vec::new();
        for (view, ti, vi) in self.in_view_order() {
            let t = &self.touched[ti];
            let range = &t.patches[t.views[vi].1 as usize];
            let change = Change {
                workflow: t.workflow.clone(),
                topic: t.topic.clone(),
                patch: Changes {
                    leaves: t.leaves(range).cloned().collect(),
                }
                .to_patch(),
                time: t.time,
            };
            match out.last_mut() {
                Some(n) if n.view == view => n.changes.push(change),
                _ => out.push(Notification {
                    view,
                    changes: vec![change],
                }),
            }
        }
        out
    }

    /// (view, index in `touched`, index in its `views`) sorted by view, then in the
    /// order things happened.
    fn in_view_order(&self) -> Vec<(ViewId, usize, usize)> {
        let mut all: Vec<_> = self
            .touched
            .iter()
            .enumerate()
            .flat_map(|(ti, t)| {
                t.views
                    .iter()
                    .enumerate()
                    .map(move |(vi, (view, _))| (*view, ti, vi))
            })
            .collect();
        // Stable, and a no-op for one (workflow, topic), whose views are ascending.
        if self.touched.len() > 1 {
            all.sort_by_key(|(view, _, _)| *view);
        }
        all
    }

    /// Appends everything as one JSON text for the page's dispatcher:
    ///
    /// ```text
    /// {"t": [[workflow, topic, time or null, [patch, ...]], ...],
    ///  "n": [[view, t, p, t, p, ...], ...],
    ///  "e": [event, ...]}
    /// ```
    ///
    /// Each (workflow, topic) the call touched is written once, with one patch per
    /// distinct set of leaves its views select; each view (ascending) lists, in the
    /// order things happened, pairs of indices into `t` and into that entry's patches.
    /// Expanded, a view's pairs are exactly its [`Effects::notifications`] changes.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"t\":[");
        for (i, t) in self.touched.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_str(&t.workflow, out);
            out.push(b',');
            write_str(&t.topic, out);
            out.push(b',');
            match t.time {
                Some(time) => {
                    let _ = serde_json::to_writer(&mut *out, &time);
                }
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",[");
            for (k, range) in t.patches.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                write_patch(t.leaves(range), out);
            }
            out.extend_from_slice(b"]]");
        }
        out.extend_from_slice(b"],\"n\":[");
        let mut current: Option<ViewId> = None;
        for (view, ti, vi) in self.in_view_order() {
            if current != Some(view) {
                if current.is_some() {
                    out.extend_from_slice(b"],");
                }
                current = Some(view);
                out.push(b'[');
                write_u32(view, out);
            }
            out.push(b',');
            write_u32(ti as u32, out);
            out.push(b',');
            write_u32(self.touched[ti].views[vi].1, out);
        }
        if current.is_some() {
            out.push(b']');
        }
        out.extend_from_slice(b"],\"e\":");
        let _ = serde_json::to_writer(&mut *out, &self.events);
        out.push(b'}');
    }

    /// [`Effects::write_json`] as a string.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn write_u32(n: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_str(text: &str, out: &mut Vec<u8>) {
    // Serializing a `str` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}
