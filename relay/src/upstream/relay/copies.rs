//! The copies a relay following another relay keeps of one workflow's topics: each is
//! the upper relay's projection for this relay's merged subscription, a
//! [`CheckedCopy`] checked as a browser checks its copies. A delta applies only when
//! its `prev` chains to the copy's seq, in the copy's epoch; afterwards the copy's hash
//! (suite-root paths, so it is the projection hash the upper relay computed) must equal
//! the message's. A message that fails is undone, and the copy waits for a snapshot.
//!
//! Unlike the browser's store, a copy is made only by a message that can start one: a
//! snapshot that checks, or a delta with `prev: null` (which starts it in that delta's
//! epoch). A copy's seq before its first message reads as zero here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use clonewire_core::checked_copy::{ApplyOutcome, Chain, Reject};
use clonewire_core::{Changes, CheckedCopy, Hash, Seq, Topic};
use serde_json::Value;

/// How one topic's copy stands.
#[derive(Clone, Copy, Debug)]
pub struct CopyView<'a> {
    /// The projected value.
    pub topic: &'a Topic,
    /// The suite epoch of the last message applied (before any: the one that made it).
    pub epoch: &'a str,
    /// The suite seq of the last message applied (zero before any).
    pub seq: Seq,
    /// False from a failed check until the next good snapshot (deltas are dropped).
    pub verified: bool,
    /// Snapshots in a row whose hash did not check.
    pub bad_snapshots: u32,
}

impl<'a> CopyView<'a> {
    fn of(copy: &'a CheckedCopy) -> CopyView<'a> {
        CopyView {
            topic: &copy.topic,
            epoch: &copy.epoch,
            seq: seq_of(copy),
            verified: copy.verified,
            bad_snapshots: copy.bad_snapshots,
        }
    }
}

/// A copy's seq as this relay reports it: zero before its first message.
fn seq_of(copy: &CheckedCopy) -> Seq {
    copy.seq.unwrap_or(Seq::ZERO)
}

/// What became of one message.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Applied and verified: the copy went from `prev` to the message's seq, and
    /// these leaves changed.
    Applied {
        /// The copy's seq before (zero for a new copy).
        prev: Seq,
        /// The leaves that changed.
        changes: Changes,
    },
    /// A check failed; the copy is as before and awaits a snapshot.
    Rejected(Reject),
    /// A delta for a copy that awaits a snapshot: dropped.
    Ignored,
}

impl Outcome {
    /// The outcome of a message to a copy that stood at `prev`.
    fn after(prev: Seq, outcome: ApplyOutcome) -> Outcome {
        match outcome {
            ApplyOutcome::Applied(changes) => Outcome::Applied { prev, changes },
            ApplyOutcome::Rejected(reject) => Outcome::Rejected(reject),
            ApplyOutcome::Ignored => Outcome::Ignored,
        }
    }
}

/// Every topic copy of one workflow.
#[derive(Debug, Default)]
pub struct Copies {
    copies: BTreeMap<String, CheckedCopy>,
}

impl Copies {
    /// A copy, if held.
    pub fn get(&self, topic: &str) -> Option<CopyView<'_>> {
        self.copies.get(topic).map(CopyView::of)
    }

    /// Every copy by topic.
    pub fn iter(&self) -> impl Iterator<Item = (&String, CopyView<'_>)> {
        self.copies.iter().map(|(name, copy)| (name, CopyView::of(copy)))
    }

    /// Keeps only the copies for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.copies.retain(|topic, _| keep(topic));
    }

    /// Replaces a copy with a snapshot's value when its hash checks (a snapshot is
    /// taken whatever came before, in any epoch). A snapshot that fails for a topic
    /// not held makes no copy.
    pub fn snapshot(&mut self, topic: &str, epoch: &str, seq: Seq, hash: Hash, value: &Value) -> Outcome {
        if let Some(copy) = self.copies.get_mut(topic) {
            let prev = seq_of(copy);
            return Outcome::after(prev, copy.snapshot(epoch, seq, hash, value));
        }
        let mut copy = CheckedCopy::new(topic, epoch);
        let outcome = copy.snapshot(epoch, seq, hash, value);
        if matches!(outcome, ApplyOutcome::Applied(_)) {
            self.copies.insert(topic.to_owned(), copy);
        }
        Outcome::after(Seq::ZERO, outcome)
    }

    /// Applies a delta that chains to the copy (`prev` is its seq, or `None` on a copy
    /// not yet sent anything) in its epoch, when its hash checks afterwards. A delta
    /// with a `prev` for a topic not held is refused and makes no copy.
    pub fn delta(
        &mut self,
        topic: &str,
        epoch: &str,
        prev: Option<Seq>,
        seq: Seq,
        hash: Hash,
        patch: Value,
    ) -> Outcome {
        let copy = match self.copies.get_mut(topic) {
            Some(copy) => copy,
            None if prev.is_none() => self
                .copies
                .entry(topic.to_owned())
                .or_insert_with(|| CheckedCopy::new(topic, epoch)),
            None => {
                return Outcome::Rejected(Reject::WrongPrev {
                    expected: None,
                    got: prev,
                })
            }
        };
        let before = seq_of(copy);
        let outcome = copy.delta(epoch, Chain { prev, seq }, hash, Cow::Owned(patch));
        Outcome::after(before, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hash_of(topic: &str, value: &Value) -> Hash {
        Topic::from_value(topic, value).unwrap().hash()
    }

    #[test]
    fn a_delta_applies_only_when_it_chains_and_its_hash_checks() {
        let mut c = Copies::default();
        let v = json!({"a": {"x": 1}});
        let out = c.snapshot("t", "e1", Seq::new(5), hash_of("t", &v), &v);
        assert!(matches!(out, Outcome::Applied { prev, .. } if prev == Seq::ZERO));
        let after = json!({"a": {"x": 2}});
        let good = hash_of("t", &after);
        // Wrong prev: refused, copy unchanged, then deltas are ignored until a snapshot.
        let out = c.delta(
            "t",
            "e1",
            Some(Seq::new(4)),
            Seq::new(6),
            good,
            json!({"a": {"x": 2}}),
        );
        assert!(matches!(out, Outcome::Rejected(_)));
        assert_eq!(c.get("t").unwrap().topic.to_value(), v);
        let out = c.delta(
            "t",
            "e1",
            Some(Seq::new(5)),
            Seq::new(6),
            good,
            json!({"a": {"x": 2}}),
        );
        assert_eq!(out, Outcome::Ignored);
        c.snapshot("t", "e1", Seq::new(5), hash_of("t", &v), &v);
        // A wrong hash is undone.
        let out = c.delta(
            "t",
            "e1",
            Some(Seq::new(5)),
            Seq::new(6),
            Hash::EMPTY,
            json!({"a": {"x": 2}}),
        );
        assert!(matches!(out, Outcome::Rejected(_)));
        assert_eq!(c.get("t").unwrap().topic.to_value(), v);
        c.snapshot("t", "e1", Seq::new(5), hash_of("t", &v), &v);
        // Another epoch's delta does not chain.
        let out = c.delta(
            "t",
            "e2",
            Some(Seq::new(5)),
            Seq::new(6),
            good,
            json!({"a": {"x": 2}}),
        );
        assert!(matches!(out, Outcome::Rejected(_)));
        c.snapshot("t", "e1", Seq::new(5), hash_of("t", &v), &v);
        let out = c.delta(
            "t",
            "e1",
            Some(Seq::new(5)),
            Seq::new(6),
            good,
            json!({"a": {"x": 2}}),
        );
        assert!(matches!(out, Outcome::Applied { prev, .. } if prev == Seq::new(5)));
        assert_eq!(c.get("t").unwrap().seq, Seq::new(6));
    }

    #[test]
    fn a_bad_snapshot_changes_nothing() {
        let mut c = Copies::default();
        let v = json!({"a": 1});
        c.snapshot("t", "e", Seq::new(1), hash_of("t", &v), &v);
        let out = c.snapshot("t", "e", Seq::new(2), Hash::EMPTY, &json!({"a": 2}));
        assert!(matches!(out, Outcome::Rejected(_)));
        assert_eq!(c.get("t").unwrap().topic.to_value(), v);
        assert_eq!(c.get("t").unwrap().bad_snapshots, 1);
        assert!(matches!(
            c.snapshot("u", "e", Seq::new(1), Hash::EMPTY, &json!([1])),
            Outcome::Rejected(_)
        ));
        assert!(c.get("u").is_none());
    }

    #[test]
    fn a_first_delta_without_prev_starts_an_empty_copy() {
        let mut c = Copies::default();
        let after = json!({"a": 1});
        let out = c.delta("t", "e", None, Seq::new(3), hash_of("t", &after), after.clone());
        assert!(matches!(out, Outcome::Applied { .. }));
        assert_eq!(c.get("t").unwrap().topic.to_value(), after);
    }
}
