//! A bounded per-topic history of what changed, so a client that reconnects (to this
//! relay, or after it restarted and caught up) can resume with one delta instead of a
//! snapshot.

use std::collections::VecDeque;

use clonewire_core::{Changes, Seq};

/// One step from `prev` to `seq` (several seqs when a repair jumped).
#[derive(Debug)]
struct Step {
    prev: Seq,
    seq: Seq,
    changes: Changes,
}

/// The last few steps of one topic in the current epoch.
#[derive(Debug)]
pub struct TopicHistory {
    steps: VecDeque<Step>,
    limit: usize,
}

impl TopicHistory {
    /// An empty history keeping at most `limit` steps.
    pub fn new(limit: usize) -> TopicHistory {
        TopicHistory {
            steps: VecDeque::new(),
            limit,
        }
    }

    /// Records that the topic went from seq `prev` to `seq` with `changes`.
    pub fn record(&mut self, prev: Seq, seq: Seq, changes: &Changes) {
        if let Some(last) = self.steps.back() {
            if last.seq != prev {
                // Not contiguous (a new epoch or a lost step): older steps cannot chain.
                self.steps.clear();
            }
        }
        if self.steps.len() == self.limit {
            self.steps.pop_front();
        }
        self.steps.push_back(Step {
            prev,
            seq,
            changes: changes.clone(),
        });
    }

    /// Forgets everything (a new epoch).
    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// Everything that changed after `from`, composed, if the history reaches back to
    /// it; `from` equal to `current` gives no changes.
    pub fn since(&self, from: Seq, current: Seq) -> Option<Changes> {
        if from == current {
            return Some(Changes::default());
        }
        let start = self.steps.iter().position(|s| s.prev == from)?;
        // One pass over every step's leaves (composing step by step would re-index
        // the growing result once per step).
        let leaves = self
            .steps
            .iter()
            .skip(start)
            .flat_map(|s| s.changes.leaves.iter().cloned())
            .collect();
        Some(Changes::default().then(Changes { leaves }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clonewire_core::Topic;
    use serde_json::json;

    #[test]
    fn composes_from_any_recorded_step_and_forgets_the_oldest() {
        let mut t = Topic::new("t");
        let mut h = TopicHistory::new(3);
        for seq in 1..=5u64 {
            let c = t.apply(&json!({ format!("k{seq}"): seq })).unwrap();
            h.record(Seq::new(seq - 1), Seq::new(seq), &c);
        }
        assert!(
            h.since(Seq::new(1), Seq::new(5)).is_none(),
            "only three steps are kept"
        );
        let c = h.since(Seq::new(2), Seq::new(5)).unwrap();
        assert_eq!(c.to_patch(), json!({"k3": 3, "k4": 4, "k5": 5}));
        assert!(h.since(Seq::new(5), Seq::new(5)).unwrap().is_empty());
        assert!(h.since(Seq::new(7), Seq::new(5)).is_none());
    }
}
