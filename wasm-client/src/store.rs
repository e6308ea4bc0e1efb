//! The client's one store: a [`CheckedCopy`] of each (workflow, topic) the merged
//! subscription selects, checked on every message. A delta is applied only when its
//! `prev` chains to the last message applied; after applying, the copy's topic hash
//! (suite-root paths, so it is the projection hash the relay computed) must equal the
//! message's `hash`. A message that fails either check is undone, so the store only
//! ever holds verified data, and the (workflow, topic) waits for a fresh snapshot.
//!
//! Any message makes a copy the client had not heard of, even one that fails (it
//! then waits for a snapshot, and `inspect` shows it).

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use clonewire_core::checked_copy::{ApplyOutcome, Chain, Reject};
use clonewire_core::protocol::client::{RelayMessage, Resume, ResumePoint};
use clonewire_core::{Changes, CheckedCopy, Hash, Seq, Topic};
use serde_json::Value;

/// A (workflow, topic) pair: the unit of chaining, hashing and resync.
pub type TopicKey = (String, String);

/// Every (workflow, topic) copy the client holds.
#[derive(Clone, Debug, Default)]
pub struct Store {
    /// By workflow, then topic: looked up by `&str` without allocating.
    replicas: BTreeMap<String, BTreeMap<String, CheckedCopy>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// One copy, if the client has heard of it.
    pub fn get(&self, workflow: &str, topic: &str) -> Option<&CheckedCopy> {
        self.replicas.get(workflow)?.get(topic)
    }

    /// Every copy, ordered by workflow then topic.
    pub fn iter(&self) -> impl Iterator<Item = ((&String, &String), &CheckedCopy)> {
        self.replicas
            .iter()
            .flat_map(|(w, topics)| topics.iter().map(move |(t, r)| ((w, t), r)))
    }

    /// A copy, made empty when the client had not heard of it.
    fn entry(&mut self, workflow: &str, topic: &str) -> &mut CheckedCopy {
        if self.get(workflow, topic).is_none() {
            // Only the first message of a (workflow, topic) pays for its keys.
            self.replicas
                .entry(workflow.to_owned())
                .or_default()
                .insert(topic.to_owned(), CheckedCopy::new(topic, ""));
        }
        match self
            .replicas
            .get_mut(workflow)
            .and_then(|topics| topics.get_mut(topic))
        {
            Some(replica) => replica,
            None => unreachable!("inserted just above"),
        }
    }

    /// Replaces a copy with a snapshot's value when its hash checks
    /// ([`CheckedCopy::snapshot`]).
    pub fn snapshot(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        seq: Seq,
        hash: Hash,
        value: &Value,
    ) -> ApplyOutcome {
        self.entry(workflow, topic).snapshot(epoch, seq, hash, value)
    }

    /// Applies a delta when it chains and its hash checks afterwards; otherwise undoes
    /// it ([`CheckedCopy::delta`]).
    pub fn delta(
        &mut self,
        workflow: &str,
        topic: &str,
        epoch: &str,
        chain: Chain,
        hash: Hash,
        patch: &Value,
    ) -> ApplyOutcome {
        self.entry(workflow, topic)
            .delta(epoch, chain, hash, Cow::Borrowed(patch))
    }

    /// Applies a decoded `snapshot` or `delta` with [`Store::snapshot`] or
    /// [`Store::delta`]; `None` for messages that are not about a copy. The key names
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
            } => (
                workflow,
                topic,
                self.delta(
                    workflow,
                    topic,
                    epoch,
                    Chain {
                        prev: *prev,
                        seq: *seq,
                    },
                    *hash,
                    patch,
                ),
            ),
            _ => return None,
        };
        Some(((workflow.clone(), topic.clone()), outcome))
    }

    /// Marks a copy as awaiting a snapshot (its message could not even be decoded).
    pub fn distrust(&mut self, workflow: &str, topic: &str) {
        self.entry(workflow, topic).distrust();
    }

    /// A new connection: copies whose snapshots kept failing may be asked for again.
    pub fn forgive(&mut self) {
        for replica in self.replicas.values_mut().flat_map(BTreeMap::values_mut) {
            replica.forgive();
        }
    }

    /// Forgets every copy of a workflow; returns, per topic, the leaves that went.
    pub fn remove_workflow(&mut self, workflow: &str) -> Vec<(String, Changes)> {
        let topics = self.replicas.remove(workflow).unwrap_or_default();
        topics
            .into_iter()
            .filter_map(|(topic, mut replica)| {
                let gone = replica.topic.replace_with(Topic::new(topic.as_str()));
                (!gone.is_empty()).then_some((topic, gone))
            })
            .collect()
    }

    /// Where each verified copy stands, for `subscribe` with `resume`.
    pub fn resume_points(&self) -> Resume {
        let mut resume = Resume::new();
        for ((workflow, topic), replica) in self.iter() {
            if let (true, Some(seq)) = (replica.verified, replica.seq) {
                resume.entry(workflow.clone()).or_default().insert(
                    topic.clone(),
                    ResumePoint {
                        epoch: replica.epoch.clone(),
                        seq,
                        hash: replica.topic.hash(),
                    },
                );
            }
        }
        resume
    }

    /// The copies that await a snapshot.
    pub fn unverified(&self) -> Vec<TopicKey> {
        self.iter()
            .filter(|(_, r)| !r.verified)
            .map(|((w, t), _)| (w.clone(), t.clone()))
            .collect()
    }
}
