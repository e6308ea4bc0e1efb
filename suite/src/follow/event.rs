//! What a follower reports: events in the order they happened, how a replica was put
//! right, and running totals.

use std::time::Duration;

use clonewire_core::protocol::suite::ErrorCode;
use clonewire_core::{Changes, Hash, Seq};

/// How a replica was put right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rung {
    /// The missing deltas, from the suite's history.
    Replay,
    /// Hash-guided: the children whose node hashes differ (`hashes`), fetched (`get`).
    Hashes,
    /// A fresh copy of the topic.
    Snapshot,
}

/// Something a follower's user may want to know about, in the order it happened.
#[derive(Clone, Debug)]
pub enum FollowEvent {
    /// Joined an epoch: hello and the first snapshot are in.
    Joined {
        /// The suite's name.
        name: String,
        /// The epoch joined.
        epoch: String,
        /// Topics in the snapshot.
        topics: usize,
    },
    /// A delta applied and its hash verified (from the stream, a queue or a replay).
    Delta {
        /// The topic.
        topic: String,
        /// Its seq.
        seq: Seq,
        /// Body size (for replayed deltas, the patch size).
        bytes: usize,
        /// The leaves it changed.
        changes: Changes,
        /// The suite's publish time (Unix ms), if it said.
        time: Option<f64>,
    },
    /// A topic's replica was replaced by a snapshot (on joining, on a repair, or when
    /// a topic starts being followed): `changes` is exactly what differs from before.
    Reset {
        /// The topic.
        topic: String,
        /// The seq the replica had.
        prev: Seq,
        /// The snapshot's seq.
        seq: Seq,
        /// What differs from the replica before.
        changes: Changes,
    },
    /// A delta or heartbeat showed that deltas were missed.
    Gap {
        /// The topic.
        topic: String,
        /// The seq we have.
        have: Seq,
        /// The seq seen (for a message dropped unread, `have.next()`: at least that).
        seen: Seq,
        /// What showed it: a heartbeat or a delta.
        found: GapFound,
    },
    /// After applying a delta, the topic hash was not the one the suite sent.
    Mismatch {
        /// The topic.
        topic: String,
        /// The delta's (or snapshot's) seq.
        seq: Seq,
        /// The suite's hash.
        expected: Hash,
        /// Ours.
        got: Hash,
        /// What the mismatching delta changed in the replica (empty for a snapshot,
        /// which is not installed), so a user of the replica can follow it exactly.
        changes: Changes,
    },
    /// A topic is trusted again.
    Repaired {
        /// The topic.
        topic: String,
        /// Its seq now.
        seq: Seq,
        /// How.
        rung: Rung,
    },
    /// The suite restarted: everything is followed afresh.
    NewEpoch {
        /// The new epoch.
        epoch: String,
    },
    /// The suite said goodbye (orderly shutdown).
    Bye {
        /// The epoch that ended.
        epoch: String,
    },
    /// The suite answered `busy`; the request is retried later.
    Busy {
        /// The op.
        op: &'static str,
        /// When it is retried.
        retry_in: Duration,
    },
    /// A request passed its deadline; its socket was replaced.
    Timeout {
        /// The op.
        op: &'static str,
    },
    /// The suite refused a request.
    Refused {
        /// The op.
        op: &'static str,
        /// The error code.
        code: ErrorCode,
        /// The suite's message.
        message: String,
    },
    /// A message or reply that could not be decoded (ignored).
    Malformed {
        /// Why.
        reason: String,
    },
    /// Nothing heard for three heartbeat intervals.
    Stale {
        /// Since when.
        silent_for: Duration,
    },
}

/// Running totals, for summaries and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowStats {
    /// Deltas applied and verified.
    pub deltas: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Gaps detected.
    pub gaps: u64,
    /// Hash mismatches detected.
    pub mismatches: u64,
    /// Topics repaired by replay.
    pub repairs_replay: u64,
    /// Topics repaired by snapshot (joins not counted).
    pub repairs_snapshot: u64,
    /// Topics repaired by fetching only the children whose hashes differ.
    pub repairs_hashes: u64,
    /// Epochs joined.
    pub joins: u64,
    /// New epochs seen after the first.
    pub new_epochs: u64,
    /// `busy` answers.
    pub busy: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Messages or replies that could not be decoded.
    pub malformed: u64,
    /// Goodbyes.
    pub byes: u64,
    /// PUB messages dropped unread because the intake was full.
    pub dropped: u64,
}

/// What showed a [`FollowEvent::Gap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapFound {
    /// A delta whose seq is past the next one (or one dropped unread).
    ByDelta,
    /// A heartbeat announcing a later seq.
    ByHeartbeat,
}
