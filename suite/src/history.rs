//! The bounded history behind `replay`: per topic, the latest deltas, limited both by
//! count and by bytes, so a busy topic cannot grow the suite without bound. A request
//! reaching back past the oldest kept delta is answered `gone`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use clonewire_core::{Hash, Seq};
use serde_json::Value;

/// How much history each topic keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// At most this many deltas per topic.
    pub max_deltas: usize,
    /// At most this many body bytes per topic.
    pub max_bytes: usize,
}

impl Default for HistoryLimits {
    /// 10 000 deltas or 8 MiB per topic, whichever comes first.
    fn default() -> Self {
        HistoryLimits {
            max_deltas: 10_000,
            max_bytes: 8 << 20,
        }
    }
}

/// One published delta as the history keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Its seq.
    pub seq: Seq,
    /// The topic hash after it.
    pub hash: Hash,
    /// When it was published (Unix ms).
    pub time: Option<f64>,
    /// The merge patch.
    pub patch: Value,
    /// The size of its PUB body, which is what the byte limit counts.
    pub bytes: usize,
}

/// Why a replay cannot be answered from history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// History no longer reaches back to the seq asked for.
    Gone {
        /// The oldest seq still kept, if any.
        oldest: Option<Seq>,
    },
    /// The seq asked for is past the topic's latest seq.
    Ahead {
        /// The topic's latest seq.
        latest: Seq,
    },
}

#[derive(Default)]
struct TopicHistory {
    records: VecDeque<Arc<Record>>,
    bytes: usize,
}

/// Per-topic delta history within [`HistoryLimits`].
#[derive(Default)]
pub struct History {
    limits: HistoryLimits,
    topics: HashMap<String, TopicHistory>,
}

impl History {
    /// An empty history with these limits.
    pub fn new(limits: HistoryLimits) -> History {
        History {
            limits,
            topics: HashMap::new(),
        }
    }

    /// Adds the next delta of `topic`. A delta that does not follow the last one kept
    /// (a hole, e.g. after the store was copied afresh) restarts that topic's history,
    /// so replays are always contiguous.
    pub fn push(&mut self, topic: &str, record: Arc<Record>) {
        let entry = self.topics.entry(topic.to_owned()).or_default();
        if entry
            .records
            .back()
            .is_some_and(|last| !record.seq.follows(last.seq))
        {
            entry.records.clear();
            entry.bytes = 0;
        }
        entry.bytes += record.bytes;
        entry.records.push_back(record);
        while entry.records.len() > self.limits.max_deltas || entry.bytes > self.limits.max_bytes {
            match entry.records.pop_front() {
                Some(old) => entry.bytes -= old.bytes,
                None => break,
            }
        }
    }

    /// The deltas of `topic` from seq `from` to `latest` (the topic's current seq).
    pub fn since(&self, topic: &str, from: Seq, latest: Seq) -> Result<Vec<Arc<Record>>, ReplayError> {
        if from > latest.next() {
            return Err(ReplayError::Ahead { latest });
        }
        if from == latest.next() {
            return Ok(Vec::new());
        }
        let records = self.topics.get(topic).map(|t| &t.records);
        let oldest = records.and_then(|r| r.front()).map(|r| r.seq);
        let newest = records.and_then(|r| r.back()).map(|r| r.seq);
        match (records, oldest, newest) {
            (Some(records), Some(oldest), Some(newest)) if oldest <= from && newest == latest => {
                let skip = usize::try_from(from.since(oldest)).unwrap_or(usize::MAX);
                Ok(records.iter().skip(skip).cloned().collect())
            }
            _ => Err(ReplayError::Gone { oldest }),
        }
    }

    /// Forgets everything (a new epoch, or the store copied afresh).
    pub fn clear(&mut self) {
        self.topics.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Seq {
        Seq::new(n)
    }

    fn record(seq: u64, bytes: usize) -> Arc<Record> {
        Arc::new(Record {
            seq: s(seq),
            hash: Hash(seq),
            time: None,
            patch: Value::Null,
            bytes,
        })
    }

    #[test]
    fn keeps_the_latest_within_count_and_bytes() {
        let mut h = History::new(HistoryLimits {
            max_deltas: 3,
            max_bytes: 100,
        });
        for seq in 1..=5 {
            h.push("t", record(seq, 10));
        }
        let seqs = |v: Vec<Arc<Record>>| v.iter().map(|r| r.seq.get()).collect::<Vec<_>>();
        assert_eq!(seqs(h.since("t", s(3), s(5)).unwrap()), vec![3, 4, 5]);
        assert_eq!(seqs(h.since("t", s(5), s(5)).unwrap()), vec![5]);
        assert_eq!(h.since("t", s(6), s(5)).unwrap(), Vec::new());
        assert_eq!(
            h.since("t", s(2), s(5)),
            Err(ReplayError::Gone { oldest: Some(s(3)) })
        );
        assert_eq!(h.since("t", s(9), s(5)), Err(ReplayError::Ahead { latest: s(5) }));
        h.push("t", record(6, 95));
        assert_eq!(seqs(h.since("t", s(6), s(6)).unwrap()), vec![6]);
        assert!(h.since("t", s(5), s(6)).is_err());
    }

    #[test]
    fn a_hole_restarts_the_topic_and_unknown_topics_are_gone() {
        let mut h = History::new(HistoryLimits::default());
        h.push("t", record(1, 1));
        h.push("t", record(3, 1));
        assert!(h.since("t", s(1), s(3)).is_err());
        assert_eq!(h.since("t", s(3), s(3)).unwrap().len(), 1);
        assert_eq!(h.since("u", s(1), s(4)), Err(ReplayError::Gone { oldest: None }));
        // History that stops short of the latest seq cannot answer either.
        assert!(h.since("t", s(3), s(4)).is_err());
    }
}
