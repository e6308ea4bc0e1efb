//! [`CheckedCopy`]: a copy of one topic kept from a relay's `snapshot` and `delta`
//! messages (docs/protocol.md, Client link), checked on every message, as the browser
//! client and a relay following another relay both keep them.
//!
//! - A snapshot replaces the copy when its hash checks, whatever came before, in any
//!   epoch; the change reported is the exact difference. An empty snapshot (`{}`,
//!   hash 0) drops the data but keeps the seq, so a delta chaining to it applies.
//! - A delta applies only when its `prev` is the seq of the last message applied (or
//!   `null` on an empty copy), in the copy's epoch, and the copy's hash afterwards is
//!   the message's; otherwise it is undone.
//! - After any failed check the copy waits for a snapshot: deltas are ignored until
//!   one checks. So the copy only ever holds verified data.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::{Changes, Hash, Seq, Topic};

/// Where a delta sits in its topic's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The seq it follows (`None`: the first message for this topic on this
    /// connection).
    pub prev: Option<Seq>,
    /// Its own seq.
    pub seq: Seq,
}

/// Why a message was not applied. The copy is left as it was before the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// The delta's `prev` is not the seq of the last message applied.
    WrongPrev {
        /// The seq of the last message applied (`None`: none yet).
        expected: Option<Seq>,
        /// The delta's `prev`.
        got: Option<Seq>,
    },
    /// A delta from an epoch other than the copy's (a new epoch comes as a snapshot).
    WrongEpoch,
    /// The patch or value is not a JSON object (or null).
    BadPatch,
    /// After applying, the copy's hash is not the message's `hash`.
    HashMismatch {
        /// The message's hash.
        expected: Hash,
        /// The copy's hash after applying.
        got: Hash,
    },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::WrongPrev {
                expected: None,
                got: Some(got),
            } => write!(f, "delta from {got} for a topic never sent"),
            Reject::WrongPrev { expected, got } => {
                let seq = |s: &Option<Seq>| s.map_or("null".to_owned(), |s| s.to_string());
                write!(f, "delta from {} does not follow {}", seq(got), seq(expected))
            }
            Reject::WrongEpoch => f.write_str("delta from another epoch"),
            Reject::BadPatch => f.write_str("value or patch is not a JSON object"),
            Reject::HashMismatch { expected, got } => write!(f, "hash {got} is not {expected}"),
        }
    }
}

/// What became of one snapshot or delta.
#[derive(Clone, Debug, PartialEq)]
pub enum ApplyOutcome {
    /// Applied and verified; these leaves changed (possibly none).
    Applied(Changes),
    /// Failed a check and was undone: the caller asks for a fresh snapshot.
    Rejected(Reject),
    /// A delta for a copy that awaits a snapshot: dropped.
    Ignored,
}

/// A checked copy of one topic.
///
/// The fields are public to read; [`CheckedCopy::snapshot`], [`CheckedCopy::delta`]
/// and the methods below are what keep them consistent.
#[derive(Clone, Debug)]
pub struct CheckedCopy {
    /// The topic value as the sender projected it.
    pub topic: Topic,
    /// The suite epoch of the last message applied (before any: the one it was made
    /// with).
    pub epoch: String,
    /// The seq of the last message applied, `None` before any.
    pub seq: Option<Seq>,
    /// False from a failed check until the next good snapshot: deltas are ignored then.
    pub verified: bool,
    /// Snapshots in a row whose hash did not check (to stop asking after a few).
    pub bad_snapshots: u32,
}

impl CheckedCopy {
    /// An empty, trusted copy of topic `name`, in `epoch` until a message is applied
    /// (`""` for none).
    pub fn new(name: &str, epoch: &str) -> CheckedCopy {
        CheckedCopy {
            topic: Topic::new(name),
            epoch: epoch.to_owned(),
            seq: None,
            verified: true,
            bad_snapshots: 0,
        }
    }

    /// Replaces the copy with a snapshot's value when its hash checks. A snapshot is
    /// taken whatever came before, in any epoch; one that fails leaves the data as it
    /// was, counts as a bad snapshot and makes the copy wait for another.
    pub fn snapshot(&mut self, epoch: &str, seq: Seq, hash: Hash, value: &Value) -> ApplyOutcome {
        let reject = match Topic::from_value(self.topic.name(), value) {
            Err(_) => Reject::BadPatch,
            Ok(fresh) if fresh.hash() != hash => Reject::HashMismatch {
                expected: hash,
                got: fresh.hash(),
            },
            Ok(fresh) => {
                // Checked: now take the exact difference (skipping equal subtrees),
                // which is what the views are told.
                let changes = self.topic.replace_with(fresh);
                self.epoch = epoch.to_owned();
                self.seq = Some(seq);
                self.verified = true;
                self.bad_snapshots = 0;
                return ApplyOutcome::Applied(changes);
            }
        };
        self.verified = false;
        self.bad_snapshots += 1;
        ApplyOutcome::Rejected(reject)
    }

    /// Applies a delta when it chains (`prev` is the last seq applied in the same
    /// epoch, or `null` on an empty copy) and its hash checks afterwards; otherwise
    /// undoes it. An owned patch moves into the copy rather than being copied.
    pub fn delta(&mut self, epoch: &str, chain: Chain, hash: Hash, patch: Cow<'_, Value>) -> ApplyOutcome {
        if !self.verified {
            return ApplyOutcome::Ignored;
        }
        if let Err(reject) = self.check_chain(epoch, chain.prev) {
            self.verified = false;
            return ApplyOutcome::Rejected(reject);
        }
        let applied = match patch {
            Cow::Borrowed(patch) => self.topic.apply(patch),
            Cow::Owned(patch) => self.topic.apply_owned(patch),
        };
        let Ok(changes) = applied else {
            self.verified = false;
            return ApplyOutcome::Rejected(Reject::BadPatch);
        };
        let got = self.topic.hash();
        if got != hash {
            // Undo: the copy keeps the last verified data.
            self.topic.apply_changes(&changes.inverse());
            self.verified = false;
            return ApplyOutcome::Rejected(Reject::HashMismatch { expected: hash, got });
        }
        if self.epoch != epoch {
            self.epoch = epoch.to_owned();
        }
        self.seq = Some(chain.seq);
        ApplyOutcome::Applied(changes)
    }

    /// Whether a delta following `prev` in `epoch` may apply to the copy.
    fn check_chain(&self, epoch: &str, prev: Option<Seq>) -> Result<(), Reject> {
        // `prev: null` means the sender has sent nothing for this topic on this
        // connection; that is consistent with the copy only while it is empty.
        let chains = prev == self.seq || (prev.is_none() && self.topic.root().is_empty());
        if !chains {
            return Err(Reject::WrongPrev {
                expected: self.seq,
                got: prev,
            });
        }
        if prev.is_some() && self.epoch != epoch {
            return Err(Reject::WrongEpoch);
        }
        Ok(())
    }

    /// Makes the copy wait for a snapshot (e.g. its message could not be decoded).
    pub fn distrust(&mut self) {
        self.verified = false;
    }

    /// Forgets the snapshots that failed (e.g. on a new connection, where they may be
    /// asked for again).
    pub fn forgive(&mut self) {
        self.bad_snapshots = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NAME: &str = "jobs";

    fn hash_of(value: &Value) -> Hash {
        match Topic::from_value(NAME, value) {
            Ok(topic) => topic.hash(),
            Err(e) => panic!("test value {value}: {e}"),
        }
    }

    /// A copy holding `value` at `seq` in epoch "e1".
    fn copy_at(seq: u64, value: &Value) -> CheckedCopy {
        let mut copy = CheckedCopy::new(NAME, "");
        let outcome = copy.snapshot("e1", Seq(seq), hash_of(value), value);
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
        copy
    }

    /// Sends the copy a delta with the hash a sender holding what the copy holds
    /// would give it.
    fn send(copy: &mut CheckedCopy, epoch: &str, prev: Option<u64>, seq: u64, patch: Value) -> ApplyOutcome {
        let mut sender = copy.topic.clone();
        let hash = match sender.apply(&patch) {
            Ok(_) => sender.hash(),
            Err(_) => Hash::EMPTY,
        };
        let chain = Chain {
            prev: prev.map(Seq),
            seq: Seq(seq),
        };
        copy.delta(epoch, chain, hash, Cow::Owned(patch))
    }

    fn state(job: &str, state: &str) -> Value {
        json!({ job: { "state": state } })
    }

    #[test]
    fn deltas_that_chain_apply_in_turn() {
        let mut copy = copy_at(5, &state("j1", "submitted"));
        let outcome = send(&mut copy, "e1", Some(5), 6, state("j1", "running"));
        assert!(matches!(outcome, ApplyOutcome::Applied(c) if c.len() == 1));
        let outcome = send(&mut copy, "e1", Some(6), 7, state("j2", "waiting"));
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
        let both = json!({"j1": {"state": "running"}, "j2": {"state": "waiting"}});
        assert_eq!(copy.topic.to_value(), both);
        let at = (copy.seq, copy.verified, copy.epoch.as_str());
        assert_eq!(at, (Some(Seq(7)), true, "e1"));
    }

    #[test]
    fn a_wrong_prev_is_refused_and_later_deltas_are_ignored_until_a_snapshot() {
        let start = state("j1", "submitted");
        let mut copy = copy_at(5, &start);
        let outcome = send(&mut copy, "e1", Some(4), 6, state("j1", "running"));
        let wrong = Reject::WrongPrev {
            expected: Some(Seq(5)),
            got: Some(Seq(4)),
        };
        assert_eq!(outcome, ApplyOutcome::Rejected(wrong));
        let now = (copy.topic.to_value(), copy.seq, copy.verified);
        assert_eq!(now, (start.clone(), Some(Seq(5)), false));
        // Even a delta that would chain waits for the snapshot.
        let outcome = send(&mut copy, "e1", Some(5), 6, state("j1", "running"));
        assert_eq!(outcome, ApplyOutcome::Ignored);
        assert_eq!(copy.topic.to_value(), start);
        let fresh = state("j1", "running");
        let outcome = copy.snapshot("e1", Seq(6), hash_of(&fresh), &fresh);
        assert!(matches!(outcome, ApplyOutcome::Applied(c) if c.len() == 1));
        let outcome = send(&mut copy, "e1", Some(6), 7, state("j1", "succeeded"));
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
    }

    #[test]
    fn a_delta_from_another_epoch_does_not_chain() {
        let start = state("j1", "submitted");
        let mut copy = copy_at(5, &start);
        let outcome = send(&mut copy, "e2", Some(5), 6, state("j1", "running"));
        assert_eq!(outcome, ApplyOutcome::Rejected(Reject::WrongEpoch));
        let now = (copy.topic.to_value(), copy.epoch.as_str(), copy.verified);
        assert_eq!(now, (start, "e1", false));
    }

    #[test]
    fn a_delta_whose_hash_does_not_check_is_undone_exactly() {
        let start = json!({"j1": {"state": "waiting", "flows": [1], "out": {"a": true}}, "j2": {"n": 1}});
        let mut copy = copy_at(1, &start);
        let before = copy.topic.hash();
        // Replaces a leaf by an object and an object by a leaf, deletes and adds.
        let patch =
            json!({"j1": {"state": {"deep": 1}, "out": "gone", "flows": null}, "j2": null, "j3": {"n": 2}});
        let chain = Chain {
            prev: Some(Seq(1)),
            seq: Seq(2),
        };
        let outcome = copy.delta("e1", chain, Hash::EMPTY, Cow::Borrowed(&patch));
        assert!(matches!(
            outcome,
            ApplyOutcome::Rejected(Reject::HashMismatch {
                expected: Hash::EMPTY,
                ..
            })
        ));
        assert_eq!(copy.topic.to_value(), start);
        assert_eq!(copy.topic.hash(), before);
        assert_eq!((copy.seq, copy.verified), (Some(Seq(1)), false));
    }

    #[test]
    fn a_borrowed_and_an_owned_patch_apply_alike() {
        let start = json!({"j1": {"state": "submitted", "n": 1}});
        let patch = json!({"j1": {"n": null, "state": "running"}, "j2": {"n": 2}});
        let after = json!({"j1": {"state": "running"}, "j2": {"n": 2}});
        let chain = Chain {
            prev: Some(Seq(1)),
            seq: Seq(2),
        };
        let (mut borrowed, mut owned) = (copy_at(1, &start), copy_at(1, &start));
        let a = borrowed.delta("e1", chain, hash_of(&after), Cow::Borrowed(&patch));
        let b = owned.delta("e1", chain, hash_of(&after), Cow::Owned(patch));
        assert!(matches!(&a, ApplyOutcome::Applied(c) if c.len() == 3));
        assert_eq!(a, b);
        assert_eq!(borrowed.topic.to_value(), after);
        assert_eq!(owned.topic.to_value(), after);
    }

    #[test]
    fn a_distrusted_copy_ignores_deltas_until_a_snapshot() {
        let start = state("j1", "submitted");
        let mut copy = copy_at(5, &start);
        copy.distrust();
        let outcome = send(&mut copy, "e1", Some(5), 6, state("j1", "running"));
        assert_eq!(outcome, ApplyOutcome::Ignored);
        assert_eq!((copy.topic.to_value(), copy.seq), (start, Some(Seq(5))));
        let fresh = state("j1", "running");
        let outcome = copy.snapshot("e1", Seq(6), hash_of(&fresh), &fresh);
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
        assert!(copy.verified);
    }

    #[test]
    fn an_empty_snapshot_drops_the_data_but_keeps_the_chain() {
        let mut copy = copy_at(4, &json!({"e1": {"s": "a"}, "e2": {"s": "b"}}));
        let outcome = copy.snapshot("e1", Seq(6), Hash::EMPTY, &json!({}));
        assert!(matches!(outcome, ApplyOutcome::Applied(c) if c.len() == 2));
        assert_eq!((copy.topic.to_value(), copy.seq), (json!({}), Some(Seq(6))));
        let outcome = send(&mut copy, "e1", Some(6), 8, state("j3", "waiting"));
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
        assert_eq!(copy.topic.to_value(), state("j3", "waiting"));
    }

    #[test]
    fn a_null_prev_chains_only_to_an_empty_copy() {
        // A new copy: the first delta on a connection needs no snapshot, in any epoch.
        let mut copy = CheckedCopy::new(NAME, "");
        let outcome = send(&mut copy, "e9", None, 3, state("j1", "waiting"));
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
        assert_eq!((copy.seq, copy.epoch.as_str()), (Some(Seq(3)), "e9"));
        // Once it holds data, `prev: null` no longer fits.
        let outcome = send(&mut copy, "e9", None, 4, state("j1", "running"));
        let wrong = Reject::WrongPrev {
            expected: Some(Seq(3)),
            got: None,
        };
        assert_eq!(outcome, ApplyOutcome::Rejected(wrong));
        assert_eq!(copy.topic.to_value(), state("j1", "waiting"));
        // After an empty snapshot it fits again.
        let mut copy = copy_at(4, &state("j1", "waiting"));
        copy.snapshot("e1", Seq(5), Hash::EMPTY, &json!({}));
        let outcome = send(&mut copy, "e1", None, 6, state("j1", "running"));
        assert!(matches!(outcome, ApplyOutcome::Applied(_)));
    }

    #[test]
    fn a_bad_snapshot_keeps_the_data_and_is_counted_until_a_good_one() {
        let start = state("j1", "submitted");
        let mut copy = copy_at(1, &start);
        let outcome = copy.snapshot("e1", Seq(2), Hash::EMPTY, &state("j1", "running"));
        assert!(matches!(
            outcome,
            ApplyOutcome::Rejected(Reject::HashMismatch { .. })
        ));
        let outcome = copy.snapshot("e1", Seq(2), Hash::EMPTY, &json!([1]));
        assert_eq!(outcome, ApplyOutcome::Rejected(Reject::BadPatch));
        assert_eq!((copy.topic.to_value(), copy.seq), (start.clone(), Some(Seq(1))));
        assert_eq!((copy.verified, copy.bad_snapshots), (false, 2));
        copy.forgive();
        assert_eq!(copy.bad_snapshots, 0);
        copy.snapshot("e1", Seq(3), Hash::EMPTY, &json!("x"));
        // A good one, in any epoch, is taken and clears the count.
        let outcome = copy.snapshot("e2", Seq(1), hash_of(&start), &start);
        assert!(matches!(outcome, ApplyOutcome::Applied(c) if c.is_empty()));
        let now = (copy.verified, copy.bad_snapshots, copy.epoch.as_str());
        assert_eq!(now, (true, 0, "e2"));
    }

    #[test]
    fn a_patch_that_is_not_an_object_is_refused() {
        let mut copy = CheckedCopy::new(NAME, "");
        let outcome = send(&mut copy, "e1", None, 1, json!([1, 2]));
        assert_eq!(outcome, ApplyOutcome::Rejected(Reject::BadPatch));
        assert!(!copy.verified);
    }

    #[test]
    fn a_reason_reads_as_what_went_wrong() {
        let never = Reject::WrongPrev {
            expected: None,
            got: Some(Seq(4)),
        };
        assert_eq!(never.to_string(), "delta from 4 for a topic never sent");
        let gap = Reject::WrongPrev {
            expected: Some(Seq(5)),
            got: None,
        };
        assert_eq!(gap.to_string(), "delta from null does not follow 5");
    }
}
