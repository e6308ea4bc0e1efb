//! The bounded history behind `replay`: per topic, the latest deltas, limited both by
//! count and by the memory they hold, so a busy topic cannot grow the suite without
//! bound. A request reaching back past the oldest kept delta is answered `gone`.
//!
//! Patches are kept as the JSON text that was published, not as parsed values: a
//! parsed `serde_json::Value` takes several times its text's bytes in small
//! allocations, so a bound counted in text bytes did not bound memory. What a record
//! is counted as ([`Record::held_bytes`]) is what it holds.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use clonewire_core::{Hash, Seq};
use serde_json::value::RawValue;
use serde_json::Value;

/// How much history each topic keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// At most this many deltas per topic.
    pub max_deltas: usize,
    /// At most this many bytes of memory per topic, as a record's `held_bytes` counts them.
    pub max_bytes: usize,
    /// No delta published longer ago than this (milliseconds) before a topic's newest
    /// one. Replay repairs the short gaps of a follower that is following; one that
    /// was away longer takes a snapshot. So a quiet topic's history settles at what
    /// this much time brings, instead of growing for hours toward the other bounds.
    pub max_age_ms: u64,
}

impl Default for HistoryLimits {
    /// 10,000 deltas or 8 MiB per topic, whichever comes first, none older than five
    /// minutes.
    fn default() -> Self {
        HistoryLimits {
            max_deltas: 10_000,
            max_bytes: 8 << 20,
            max_age_ms: 5 * 60 * 1000,
        }
    }
}

/// One published delta as the history keeps it.
#[derive(Clone, Debug)]
pub struct Record {
    /// Its seq.
    pub seq: Seq,
    /// The topic hash after it.
    pub hash: Hash,
    /// When it was published (Unix ms).
    pub time: Option<f64>,
    /// The merge patch, as the compact JSON text that was published.
    pub patch: Box<RawValue>,
}

/// What one kept record costs besides its patch text: the record itself, the `Arc`'s
/// two counts, and the history's slot for it.
const RECORD_OVERHEAD: usize = std::mem::size_of::<Record>() + 2 * std::mem::size_of::<usize>() + 8;

impl Record {
    /// A record of `patch` (serialized here, once).
    pub fn new(seq: Seq, hash: Hash, time: Option<f64>, patch: &Value) -> Record {
        // A `Value` always serializes (its keys are strings); the default is `null`.
        let patch = serde_json::value::to_raw_value(patch).unwrap_or_default();
        Record {
            seq,
            hash,
            time,
            patch,
        }
    }

    /// The bytes of memory this record holds, which is what the byte limit counts.
    pub fn held_bytes(&self) -> usize {
        RECORD_OVERHEAD + self.patch.get().len()
    }
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
    /// Every topic's bytes, summed.
    bytes: usize,
    /// Every topic's records, counted.
    deltas: usize,
}

impl History {
    /// An empty history with these limits.
    pub fn new(limits: HistoryLimits) -> History {
        History {
            limits,
            ..History::default()
        }
    }

    /// Adds the next delta of `topic`. A delta that does not follow the last one kept
    /// (a hole, e.g. after the store was copied afresh) restarts that topic's history,
    /// so replays are always contiguous.
    pub fn push(&mut self, topic: &str, record: Arc<Record>) {
        let entry = match self.topics.get_mut(topic) {
            Some(entry) => entry,
            None => self.topics.entry(topic.to_owned()).or_default(),
        };
        if entry
            .records
            .back()
            .is_some_and(|last| !record.seq.follows(last.seq))
        {
            self.bytes -= entry.bytes;
            self.deltas -= entry.records.len();
            entry.records.clear();
            entry.bytes = 0;
        }
        let bytes = record.held_bytes();
        entry.bytes += bytes;
        self.bytes += bytes;
        self.deltas += 1;
        let too_old = record.time.map(|t| t - self.limits.max_age_ms as f64);
        entry.records.push_back(record);
        let old = |r: &Arc<Record>| matches!((r.time, too_old), (Some(t), Some(limit)) if t < limit);
        while entry.records.len() > self.limits.max_deltas
            || entry.bytes > self.limits.max_bytes
            || entry.records.front().is_some_and(old)
        {
            match entry.records.pop_front() {
                Some(old) => {
                    let bytes = old.held_bytes();
                    entry.bytes -= bytes;
                    self.bytes -= bytes;
                    self.deltas -= 1;
                }
                None => break,
            }
        }
    }

    /// The bytes every topic's records hold, as the limits count them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many deltas are kept, over every topic.
    pub fn deltas(&self) -> usize {
        self.deltas
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
        self.bytes = 0;
        self.deltas = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Seq {
        Seq::new(n)
    }

    /// A record whose patch text is `text` bytes long (a JSON string of `text - 2` x's).
    fn record(seq: u64, text: usize) -> Arc<Record> {
        let patch = Value::String("x".repeat(text - 2));
        Arc::new(Record::new(s(seq), Hash(seq), None, &patch))
    }

    fn seqs(kept: Result<Vec<Arc<Record>>, ReplayError>) -> Result<Vec<u64>, ReplayError> {
        kept.map(|v| v.iter().map(|r| r.seq.get()).collect())
    }

    #[test]
    fn keeps_the_latest_within_count_and_bytes() {
        let small = RECORD_OVERHEAD + 10;
        let mut h = History::new(HistoryLimits {
            max_deltas: 3,
            max_bytes: 10 * small,
            max_age_ms: u64::MAX,
        });
        for seq in 1..=5 {
            h.push("t", record(seq, 10));
        }
        assert_eq!(seqs(h.since("t", s(3), s(5))), Ok(vec![3, 4, 5]));
        assert_eq!(seqs(h.since("t", s(5), s(5))), Ok(vec![5]));
        assert_eq!(seqs(h.since("t", s(6), s(5))), Ok(vec![]));
        assert_eq!(
            seqs(h.since("t", s(2), s(5))),
            Err(ReplayError::Gone { oldest: Some(s(3)) })
        );
        assert_eq!(
            seqs(h.since("t", s(9), s(5))),
            Err(ReplayError::Ahead { latest: s(5) })
        );
        assert_eq!((h.deltas(), h.bytes()), (3, 3 * small));
        // One record as big as the whole bound pushes every older one out.
        h.push("t", record(6, 10 * small - RECORD_OVERHEAD));
        assert_eq!(seqs(h.since("t", s(6), s(6))), Ok(vec![6]));
        assert!(h.since("t", s(5), s(6)).is_err());
        assert_eq!((h.deltas(), h.bytes()), (1, 10 * small));
    }

    #[test]
    fn a_record_counts_the_memory_it_holds() {
        let patch = serde_json::json!({"a": {"b": [1, 2, 3]}, "c": "text"});
        let record = Record::new(s(1), Hash(1), Some(1.0), &patch);
        assert_eq!(record.patch.get(), r#"{"a":{"b":[1,2,3]},"c":"text"}"#);
        assert_eq!(record.held_bytes(), RECORD_OVERHEAD + record.patch.get().len());
        let back: Value = serde_json::from_str(record.patch.get()).unwrap();
        assert_eq!(back, patch);
    }

    #[test]
    fn totals_follow_every_topic_through_holes_and_clears() {
        let mut h = History::new(HistoryLimits::default());
        h.push("t", record(1, 10));
        h.push("t", record(2, 10));
        h.push("u", record(1, 20));
        assert_eq!(h.deltas(), 3);
        assert_eq!(h.bytes(), 3 * RECORD_OVERHEAD + 40);
        // A hole in "t" restarts it: its two records go, the new one stays.
        h.push("t", record(5, 10));
        assert_eq!((h.deltas(), h.bytes()), (2, 2 * RECORD_OVERHEAD + 30));
        h.clear();
        assert_eq!((h.deltas(), h.bytes()), (0, 0));
    }

    #[test]
    fn a_hole_restarts_the_topic_and_unknown_topics_are_gone() {
        let mut h = History::new(HistoryLimits::default());
        h.push("t", record(1, 3));
        h.push("t", record(3, 3));
        assert!(h.since("t", s(1), s(3)).is_err());
        assert_eq!(seqs(h.since("t", s(3), s(3))), Ok(vec![3]));
        assert_eq!(
            seqs(h.since("u", s(1), s(4))),
            Err(ReplayError::Gone { oldest: None })
        );
        // History that stops short of the latest seq cannot answer either.
        assert!(h.since("t", s(3), s(4)).is_err());
    }

    #[test]
    fn deltas_older_than_the_age_bound_go() {
        let mut h = History::new(HistoryLimits {
            max_age_ms: 1_000,
            ..HistoryLimits::default()
        });
        let at = |seq: u64, time: f64| Arc::new(Record::new(s(seq), Hash(seq), Some(time), &Value::Null));
        h.push("t", at(1, 10_000.0));
        h.push("t", at(2, 10_500.0));
        h.push("t", at(3, 11_000.0));
        assert_eq!(
            seqs(h.since("t", s(1), s(3))),
            Ok(vec![1, 2, 3]),
            "1 s old is kept"
        );
        h.push("t", at(4, 11_200.0));
        assert_eq!(seqs(h.since("t", s(2), s(4))), Ok(vec![2, 3, 4]));
        assert_eq!(h.deltas(), 3, "seq 1 is older than a second before the newest");
        // Deltas without a time are kept by count and bytes only.
        h.push("u", Arc::new(Record::new(s(1), Hash(1), None, &Value::Null)));
        h.push("u", at(2, 99_999.0));
        assert_eq!(h.since("u", s(1), s(2)).map(|r| r.len()), Ok(2));
    }
}
