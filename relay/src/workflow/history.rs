//! A bounded per-topic history of what changed, so a client that reconnects (to this
//! relay, or after it restarted and caught up) can resume with one delta instead of a
//! snapshot.

use std::collections::VecDeque;

use clonewire_core::{Changes, Seq};
use serde_json::Value;

/// How much history a topic keeps: at most `steps` steps and about `bytes` bytes of
/// them (a big batch, such as a Cylc burst, may hold megabytes in one step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimit {
    /// Steps kept at most.
    pub steps: usize,
    /// Bytes kept at most (an estimate of the changed leaves' paths and values).
    pub bytes: usize,
    /// No step published longer ago than this (milliseconds) before the newest: a
    /// client away longer takes a snapshot, and a rarely changed topic's history
    /// settles in minutes instead of filling toward the other bounds for hours.
    pub max_age_ms: u64,
}

impl HistoryLimit {
    /// The default byte bound per topic.
    pub const DEFAULT_BYTES: usize = 4 << 20;
    /// The default age bound: five minutes.
    pub const DEFAULT_MAX_AGE_MS: u64 = 5 * 60 * 1000;

    /// At most `steps` steps, within the default byte and age bounds.
    pub fn steps(steps: usize) -> HistoryLimit {
        HistoryLimit {
            steps,
            bytes: HistoryLimit::DEFAULT_BYTES,
            max_age_ms: HistoryLimit::DEFAULT_MAX_AGE_MS,
        }
    }
}

/// One step from `prev` to `seq` (several seqs when a repair jumped).
#[derive(Debug)]
struct Step {
    /// The suite's publish time (ms), when known.
    time: Option<f64>,
    prev: Seq,
    seq: Seq,
    changes: Changes,
    /// What it is counted as against the byte bound.
    bytes: usize,
}

/// The last few steps of one topic in the current epoch.
#[derive(Debug)]
pub struct TopicHistory {
    steps: VecDeque<Step>,
    limit: HistoryLimit,
    /// The steps' bytes, summed.
    bytes: usize,
}

/// Bytes a leaf change is counted as: its path, its old and new values, and a fixed
/// overhead for the allocations behind them.
const LEAF_OVERHEAD: usize = 96;

fn value_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 8,
        Value::Array(items) => items.iter().map(value_bytes).sum::<usize>() + 8,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + value_bytes(v)).sum::<usize>() + 8,
    }
}

fn changes_bytes(changes: &Changes) -> usize {
    changes
        .leaves
        .iter()
        .map(|leaf| {
            let path: usize = leaf.path.iter().map(|k| k.len() + 24).sum();
            let old = leaf.old.as_ref().map_or(0, |l| value_bytes(&l.value));
            let new = leaf.new.as_ref().map_or(0, |l| value_bytes(&l.value));
            LEAF_OVERHEAD + path + old + new
        })
        .sum()
}

impl TopicHistory {
    /// An empty history keeping at most what `limit` allows.
    pub fn new(limit: HistoryLimit) -> TopicHistory {
        TopicHistory {
            steps: VecDeque::new(),
            limit,
            bytes: 0,
        }
    }

    /// The bytes held, as counted against the bound.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records that the topic went from seq `prev` to `seq` with `changes`.
    /// `time` is the suite's publish time (ms), when known: steps older than the age
    /// bound before it go.
    pub fn record(&mut self, prev: Seq, seq: Seq, changes: &Changes, time: Option<f64>) {
        if let Some(last) = self.steps.back() {
            if last.seq != prev {
                // Not contiguous (a new epoch or a lost step): older steps cannot chain.
                self.clear();
            }
        }
        let bytes = changes_bytes(changes);
        if bytes > self.limit.bytes || self.limit.steps == 0 {
            // Too big to keep: a client behind it gets a snapshot, as it would once
            // the step had aged out.
            self.clear();
            return;
        }
        let too_old = time.map(|t| t - self.limit.max_age_ms as f64);
        let old = |s: &Step| matches!((s.time, too_old), (Some(t), Some(limit)) if t < limit);
        while self.steps.len() >= self.limit.steps
            || self.bytes + bytes > self.limit.bytes
            || self.steps.front().is_some_and(old)
        {
            match self.steps.pop_front() {
                Some(old) => self.bytes -= old.bytes,
                None => break,
            }
        }
        self.bytes += bytes;
        self.steps.push_back(Step {
            time,
            prev,
            seq,
            changes: changes.clone(),
            bytes,
        });
    }

    /// Forgets everything (a new epoch).
    pub fn clear(&mut self) {
        self.steps.clear();
        self.bytes = 0;
    }

    /// Everything that changed after `from`, composed, if the history reaches back to
    /// it; `from` equal to `current` gives no changes.
    ///
    /// A seq this relay never stood at is met too, as a client moving between relays
    /// or tiers brings one (a relay following another sees only the seqs at which its
    /// selection changed; a peer may be a little ahead): a `from` inside a step is
    /// answered from that step's start, and a `from` past `current` with no changes.
    /// Either is right only when the client's copy equals that state, which the caller
    /// checks with the client's hash (the views' resume does).
    pub fn since(&self, from: Seq, current: Seq) -> Option<Changes> {
        let last = self.steps.back().map_or(current, |s| s.seq);
        if from == current || (from > current && from > last) {
            return Some(Changes::default());
        }
        let start = self
            .steps
            .iter()
            .position(|s| s.prev == from)
            .or_else(|| self.steps.iter().position(|s| s.prev < from && from < s.seq))?;
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
        let mut h = TopicHistory::new(HistoryLimit::steps(3));
        for seq in 1..=5u64 {
            let c = t.apply(&json!({ format!("k{seq}"): seq })).unwrap();
            h.record(Seq::new(seq - 1), Seq::new(seq), &c, None);
        }
        assert!(
            h.since(Seq::new(1), Seq::new(5)).is_none(),
            "only three steps are kept"
        );
        let c = h.since(Seq::new(2), Seq::new(5)).unwrap();
        assert_eq!(c.to_patch(), json!({"k3": 3, "k4": 4, "k5": 5}));
        assert!(h.since(Seq::new(5), Seq::new(5)).unwrap().is_empty());
        // A seq ahead of the history is no change here (the caller checks the hash).
        assert!(h.since(Seq::new(7), Seq::new(5)).unwrap().is_empty());
    }

    #[test]
    fn a_seq_inside_a_step_or_past_the_end_is_answered_from_the_step_start_or_with_nothing() {
        let mut t = Topic::new("t");
        let mut h = TopicHistory::new(HistoryLimit::steps(8));
        // Steps as a relay following another relay sees them: only some seqs.
        for (prev, seq) in [(0, 10), (10, 25), (25, 40)] {
            let c = t.apply(&json!({ format!("k{seq}"): seq })).unwrap();
            h.record(Seq::new(prev), Seq::new(seq), &c, None);
        }
        let c = h.since(Seq::new(17), Seq::new(40)).unwrap();
        assert_eq!(
            c.to_patch(),
            json!({"k25": 25, "k40": 40}),
            "from 17: the step 10→25 on"
        );
        assert_eq!(
            h.since(Seq::new(10), Seq::new(40)),
            h.since(Seq::new(17), Seq::new(40))
        );
        assert!(
            h.since(Seq::new(44), Seq::new(40)).unwrap().is_empty(),
            "ahead: nothing to send"
        );
    }

    #[test]
    fn a_history_holds_no_more_bytes_than_its_bound_and_forgets_the_oldest_first() {
        let mut t = Topic::new("t");
        let limit = HistoryLimit {
            bytes: 4_000,
            ..HistoryLimit::steps(1_000)
        };
        let mut h = TopicHistory::new(limit);
        let big = "x".repeat(500);
        for seq in 1..=50u64 {
            let c = t.apply(&json!({ format!("k{seq}"): big })).unwrap();
            h.record(Seq::new(seq - 1), Seq::new(seq), &c, None);
            assert!(h.bytes() <= limit.bytes, "{} bytes after step {seq}", h.bytes());
        }
        assert!(
            h.since(Seq::new(49), Seq::new(50)).is_some(),
            "the newest step is kept"
        );
        assert!(
            h.since(Seq::new(1), Seq::new(50)).is_none(),
            "the oldest are forgotten"
        );
        // One step bigger than the whole bound is not kept: resuming across it is a snapshot.
        let huge = "y".repeat(10_000);
        let c = t.apply(&json!({ "huge": huge })).unwrap();
        h.record(Seq::new(50), Seq::new(51), &c, None);
        assert_eq!(h.bytes(), 0);
        assert!(h.since(Seq::new(50), Seq::new(51)).is_none());
        assert!(h.since(Seq::new(51), Seq::new(51)).unwrap().is_empty());
    }

    #[test]
    fn steps_older_than_the_age_bound_go() {
        let mut t = Topic::new("t");
        let mut h = TopicHistory::new(HistoryLimit {
            max_age_ms: 1_000,
            ..HistoryLimit::steps(1_000)
        });
        for (seq, time) in [(1u64, 10_000.0), (2, 10_600.0), (3, 11_000.0), (4, 11_500.0)] {
            let c = t.apply(&json!({ format!("k{seq}"): seq })).unwrap();
            h.record(Seq::new(seq - 1), Seq::new(seq), &c, Some(time));
        }
        // Resuming from seq 0 needs step 1, which is too old; from seq 1, step 2 on.
        assert!(h.since(Seq::new(0), Seq::new(4)).is_none(), "step 1 is too old");
        assert!(
            h.since(Seq::new(1), Seq::new(4)).is_some(),
            "step 2 is within a second"
        );
    }
}
