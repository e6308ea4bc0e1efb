//! One followed topic's replica: its value and seq, whether it can be trusted, how it
//! is repaired next, and the deltas held back while it is repaired.

use std::collections::VecDeque;

use clonewire_core::protocol::suite::Delta;
use clonewire_core::{Seq, Topic};

use super::Rung;

/// A delta waiting for its topic to be repaired.
pub(super) struct Queued {
    pub(super) delta: Delta,
    /// Its body size on the wire.
    pub(super) bytes: usize,
}

/// One followed topic.
pub(super) struct FollowedTopic {
    pub(super) topic: Topic,
    pub(super) seq: Seq,
    /// Applying the next delta is safe; false while joining or repairing.
    pub(super) trusted: bool,
    /// How to repair it next.
    pub(super) rung: Rung,
    /// Deltas held back while joining or repairing, oldest first.
    queue: VecDeque<Queued>,
    /// Their body bytes.
    queued_bytes: usize,
    /// Replays in a row that brought no progress (or hash-guided attempts that raced).
    pub(super) stuck: u32,
}

impl FollowedTopic {
    /// An empty replica at seq 0; untrusted ones are fetched by snapshot.
    pub(super) fn new(name: &str, trusted: bool) -> FollowedTopic {
        FollowedTopic {
            topic: Topic::new(name),
            seq: Seq::ZERO,
            trusted,
            rung: Rung::Snapshot,
            queue: VecDeque::new(),
            queued_bytes: 0,
            stuck: 0,
        }
    }

    /// Stops applying deltas until the topic is repaired, at least by `rung`.
    pub(super) fn distrust(&mut self, rung: Rung) {
        // Rungs only climb while untrusted: replay, then hashes, then snapshot.
        if self.trusted || rung > self.rung {
            self.rung = rung;
        }
        self.trusted = false;
    }

    /// The replica is the suite's at `seq`: apply deltas again, replay first next time.
    pub(super) fn trust(&mut self, seq: Seq) {
        self.seq = seq;
        self.trusted = true;
        self.rung = Rung::Replay;
        self.stuck = 0;
    }

    /// Holds a delta until the topic is repaired. Past `max` deltas or `max_bytes`,
    /// the queue is dropped and the topic will be repaired by snapshot (which is
    /// newer than anything dropped); a delta bigger than `max_bytes` is not held.
    pub(super) fn hold(&mut self, item: Queued, max: usize, max_bytes: usize) {
        if self.queue.len() >= max || self.queued_bytes.saturating_add(item.bytes) > max_bytes {
            self.queue.clear();
            self.queued_bytes = 0;
            self.distrust(Rung::Snapshot);
        }
        if item.bytes <= max_bytes {
            self.queued_bytes += item.bytes;
            self.queue.push_back(item);
        }
    }

    /// The oldest delta held.
    pub(super) fn pop_queued(&mut self) -> Option<Queued> {
        let item = self.queue.pop_front()?;
        self.queued_bytes -= item.bytes;
        Some(item)
    }

    /// Puts back the delta just taken by [`pop_queued`](Self::pop_queued).
    pub(super) fn unpop(&mut self, item: Queued) {
        self.queued_bytes += item.bytes;
        self.queue.push_front(item);
    }

    /// Body bytes held.
    #[cfg(test)]
    pub(super) fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }
}
