//! [`Copies`]: a [`CheckedCopy`] of each (workflow, topic) a client holds, checked on
//! every message. A delta applies only when its `prev` chains to the last message
//! applied; after applying, the copy's topic hash (suite-root paths, so it is the
//! projection hash the relay computed) must equal the message's `hash`. A message
//! that fails either check is undone, so the copies only ever hold verified data,
//! and the (workflow, topic) waits for a fresh snapshot.
//!
//! Which message may make a copy not held yet is the owner's [`CopyPolicy`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use super::policy::{CopyPolicy, FirstEpoch, NewCopies};
use crate::checked_copy::{ApplyOutcome, Chain, Reject};
use crate::protocol::client::{RelayMessage, Resume, ResumePoint};
use crate::{Changes, CheckedCopy, Hash, Seq, Topic};

/// A (workflow, topic) pair: the unit of chaining, hashing and resync.
pub type TopicKey = (String, String);

/// Every (workflow, topic) copy a client holds.
#[derive(Clone, Debug)]
pub struct Copies {
    policy: CopyPolicy,
    /// By workflow, then topic: looked up by `&str` without allocating.
    copies: BTreeMap<String, BTreeMap<String, CheckedCopy>>,
}

impl Copies {
    /// No copies; new ones are made as `policy` says.
    pub fn new(policy: CopyPolicy) -> Copies {
        Copies {
            policy,
            copies: BTreeMap::new(),
        }
    }

    /// One copy, if held.
    pub fn get(&self, workflow: &str, topic: &str) -> Option<&CheckedCopy> {
        self.copies.get(workflow)?.get(topic)
    }

    fn get_mut(&mut self, workflow: &str, topic: &str) -> Option<&mut CheckedCopy> {
        self.copies.get_mut(workflow)?.get_mut(topic)
    }

    /// Every copy, ordered by workflow then topic.
    pub fn iter(&self) -> impl Iterator<Item = ((&String, &String), &CheckedCopy)> {
        self.copies
            .iter()
            .flat_map(|(w, topics)| topics.iter().map(move |(t, c)| ((w, t), c)))
    }

    /// An empty copy of a (workflow, topic) not held, as the policy starts it.
    fn fresh(&self, topic: &str, epoch: &str) -> CheckedCopy {
        match self.policy.first_epoch {
            FirstEpoch::Unknown => CheckedCopy::new(topic, ""),
            FirstEpoch::OfMessage => CheckedCopy::new(topic, epoch),
        }
    }

    fn insert(&mut self, workflow: &str, topic: &str, copy: CheckedCopy) -> &mut CheckedCopy {
        // Only the first message of a (workflow, topic) pays for its keys.
        self.copies
            .entry(workflow.to_owned())
            .or_default()
            .entry(topic.to_owned())
            .or_insert(copy)
    }

    /// Replaces a copy with a snapshot's value when its hash checks
    /// ([`CheckedCopy::snapshot`]). For a (workflow, topic) not held, the policy
    /// says whether a snapshot that fails still makes a copy.
    pub fn snapshot(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        seq: Seq,
        hash: Hash,
        value: &Value,
    ) -> ApplyOutcome {
        if let Some(copy) = self.get_mut(workflow, topic) {
            return copy.snapshot(epoch, seq, hash, value);
        }
        let mut copy = self.fresh(topic, epoch);
        let outcome = copy.snapshot(epoch, seq, hash, value);
        let keep = match self.policy.new_copies {
            NewCopies::FromAnyMessage => true,
            NewCopies::FromStartingMessage => matches!(outcome, ApplyOutcome::Applied(_)),
        };
        if keep {
            self.insert(workflow, topic, copy);
        }
        outcome
    }

    /// Applies a delta when it chains and its hash checks afterwards; otherwise undoes
    /// it ([`CheckedCopy::delta`]). For a (workflow, topic) not held, the policy says
    /// whether a delta with a `prev` makes a copy (it cannot chain to an empty one).
    pub fn delta(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        chain: Chain,
        hash: Hash,
        patch: Cow<'_, Value>,
    ) -> ApplyOutcome {
        if let Some(copy) = self.get_mut(workflow, topic) {
            return copy.delta(epoch, chain, hash, patch);
        }
        if chain.prev.is_some() && self.policy.new_copies == NewCopies::FromStartingMessage {
            return ApplyOutcome::Rejected(Reject::WrongPrev {
                expected: None,
                got: chain.prev,
            });
        }
        let copy = self.fresh(topic, epoch);
        self.insert(workflow, topic, copy)
            .delta(epoch, chain, hash, patch)
    }

    /// Applies a decoded `snapshot` or `delta` with [`Copies::snapshot`] or
    /// [`Copies::delta`]; `None` for messages that are not about a copy. The key names
    /// the copy, e.g. for the `resync` a rejection calls for.
    pub fn apply_message(&mut self, message: &RelayMessage) -> Option<(TopicKey, ApplyOutcome)> {
        let (workflow, topic, outcome) = match message {
            RelayMessage::Snapshot {
                workflow,
                topic,
                epoch,
                seq,
                hash,
                value,
            } => (
                workflow,
                topic,
                self.snapshot(workflow, topic, epoch, *seq, *hash, value),
            ),
            RelayMessage::Delta {
                workflow,
                topic,
                epoch,
                seq,
                prev,
                hash,
                patch,
                ..
            } => {
                let chain = Chain {
                    prev: *prev,
                    seq: *seq,
                };
                let outcome = self.delta(workflow, topic, epoch, chain, *hash, Cow::Borrowed(patch));
                (workflow, topic, outcome)
            }
            _ => return None,
        };
        Some(((workflow.clone(), topic.clone()), outcome))
    }

    /// Marks a copy as awaiting a snapshot (its message could not even be decoded).
    /// Returns true when it was trusted until now. A copy not held is made for it only
    /// when any message may make one.
    pub fn distrust(&mut self, workflow: &str, topic: &str) -> bool {
        if let Some(copy) = self.get_mut(workflow, topic) {
            let was = copy.verified;
            copy.distrust();
            return was;
        }
        if self.policy.new_copies == NewCopies::FromAnyMessage {
            let copy = self.fresh(topic, "");
            self.insert(workflow, topic, copy).distrust();
        }
        true
    }

    /// A new connection: copies whose snapshots kept failing may be asked for again.
    pub fn forgive(&mut self) {
        for copy in self.copies.values_mut().flat_map(BTreeMap::values_mut) {
            copy.forgive();
        }
    }

    /// Keeps only the copies for which `keep(workflow, topic)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        for (workflow, topics) in &mut self.copies {
            topics.retain(|topic, _| keep(workflow, topic));
        }
        self.copies.retain(|_, topics| !topics.is_empty());
    }

    /// Forgets every copy of a workflow; returns, per topic, the leaves that went.
    pub fn remove_workflow(&mut self, workflow: &str) -> Vec<(String, Changes)> {
        let topics = self.copies.remove(workflow).unwrap_or_default();
        topics
            .into_iter()
            .filter_map(|(topic, mut copy)| {
                let gone = copy.topic.replace_with(Topic::new(topic.as_str()));
                (!gone.is_empty()).then_some((topic, gone))
            })
            .collect()
    }

    /// Where each verified copy stands, for `subscribe` with `resume`.
    pub fn resume_points(&self) -> Resume {
        self.resume_points_where(|_, _| true)
    }

    /// Where each verified copy for which `offer(workflow, copy)` is true stands.
    pub fn resume_points_where(&self, mut offer: impl FnMut(&str, &CheckedCopy) -> bool) -> Resume {
        let mut resume = Resume::new();
        for ((workflow, topic), copy) in self.iter() {
            let Some(seq) = copy.seq else { continue };
            if copy.verified && offer(workflow, copy) {
                resume.entry(workflow.clone()).or_default().insert(
                    topic.clone(),
                    ResumePoint {
                        epoch: copy.epoch.clone(),
                        seq,
                        hash: copy.topic.hash(),
                    },
                );
            }
        }
        resume
    }

    /// The copies that await a snapshot.
    pub fn unverified(&self) -> Vec<TopicKey> {
        self.iter()
            .filter(|(_, c)| !c.verified)
            .map(|((w, t), _)| (w.clone(), t.clone()))
            .collect()
    }
}
