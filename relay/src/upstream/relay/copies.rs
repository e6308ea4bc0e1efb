//! The copies a relay following another relay keeps of one workflow's topics: each is
//! the upper relay's projection for this relay's merged subscription, checked like a
//! browser checks its copies. A delta applies only when its `prev` chains to the
//! copy's seq, in the copy's epoch; afterwards the copy's hash (suite-root paths, so
//! it is the projection hash the upper relay computed) must equal the message's.
//! A message that fails is undone, and the copy waits for a snapshot.

use std::collections::BTreeMap;

use clonewire_core::{Changes, Hash, Seq, Topic};
use serde_json::Value;

/// One topic's copy.
#[derive(Debug)]
pub struct Copy {
    /// The projected value.
    pub topic: Topic,
    /// The suite epoch of the last message applied.
    pub epoch: String,
    /// The suite seq of the last message applied.
    pub seq: Seq,
    /// False from a failed check until the next good snapshot (deltas are dropped).
    pub verified: bool,
    /// Snapshots in a row whose hash did not check.
    pub bad_snapshots: u32,
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
    Rejected(String),
    /// A delta for a copy that awaits a snapshot: dropped.
    Ignored,
}

/// Every topic copy of one workflow.
#[derive(Debug, Default)]
pub struct Copies {
    copies: BTreeMap<String, Copy>,
}

impl Copies {
    /// A copy, if held.
    pub fn get(&self, topic: &str) -> Option<&Copy> {
        self.copies.get(topic)
    }

    /// Every copy by topic.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Copy)> {
        self.copies.iter()
    }

    /// Keeps only the copies for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.copies.retain(|topic, _| keep(topic));
    }

    /// Replaces a copy with a snapshot's value when its hash checks (a snapshot is
    /// taken whatever came before, in any epoch).
    pub fn snapshot(&mut self, topic: &str, epoch: &str, seq: Seq, hash: Hash, value: &Value) -> Outcome {
        let fresh = match Topic::from_value(topic, value) {
            Ok(fresh) if fresh.hash() == hash => fresh,
            Ok(fresh) => {
                return self.bad_snapshot(topic, format!("snapshot hash {} is not {hash}", fresh.hash()))
            }
            Err(e) => return self.bad_snapshot(topic, format!("snapshot value: {e}")),
        };
        let copy = self.copies.entry(topic.to_owned()).or_insert_with(|| Copy {
            topic: Topic::new(topic),
            epoch: epoch.to_owned(),
            seq: Seq::ZERO,
            verified: true,
            bad_snapshots: 0,
        });
        let prev = copy.seq;
        let changes = copy.topic.replace_with(fresh);
        copy.epoch = epoch.to_owned();
        copy.seq = seq;
        copy.verified = true;
        copy.bad_snapshots = 0;
        Outcome::Applied { prev, changes }
    }

    fn bad_snapshot(&mut self, topic: &str, why: String) -> Outcome {
        if let Some(copy) = self.copies.get_mut(topic) {
            copy.verified = false;
            copy.bad_snapshots += 1;
        }
        Outcome::Rejected(why)
    }

    /// Applies a delta that chains to the copy (`prev` is its seq, or `None` on a copy
    /// not yet sent anything) in its epoch, when its hash checks afterwards.
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
            None if prev.is_none() => self.copies.entry(topic.to_owned()).or_insert_with(|| Copy {
                topic: Topic::new(topic),
                epoch: epoch.to_owned(),
                seq: Seq::ZERO,
                verified: true,
                bad_snapshots: 0,
            }),
            None => return Outcome::Rejected(format!("delta from {prev:?} for a topic never sent")),
        };
        if !copy.verified {
            return Outcome::Ignored;
        }
        let chains = match prev {
            Some(prev) => prev == copy.seq && copy.epoch == epoch,
            None => copy.topic.root().is_empty(),
        };
        if !chains {
            copy.verified = false;
            return Outcome::Rejected(format!(
                "delta {epoch}/{prev:?}→{seq} does not follow {}/{}",
                copy.epoch, copy.seq
            ));
        }
        let changes = match copy.topic.apply_owned(patch) {
            Ok(changes) => changes,
            Err(e) => {
                copy.verified = false;
                return Outcome::Rejected(format!("delta patch: {e}"));
            }
        };
        let got = copy.topic.hash();
        if got != hash {
            copy.topic.apply_changes(&changes.inverse());
            copy.verified = false;
            return Outcome::Rejected(format!("delta hash {got} is not {hash}"));
        }
        let before = copy.seq;
        copy.epoch = epoch.to_owned();
        copy.seq = seq;
        Outcome::Applied {
            prev: before,
            changes,
        }
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
